"""shmcollab for Python: the LP API over the C ABI (ctypes; nothing to compile).

An LP started by a shmcollab manager::

    import shmcollab

    with shmcollab.Lp.connect() as lp:          # from the environment the manager set
        lp.ready()
        for m in lp.messages(timeout=5.0):     # stops after 5 s without a message
            if m.kind == shmcollab.REQUEST:
                lp.reply(m, m.data)            # bytes in, bytes out
            elif m.kind == shmcollab.BROADCAST:
                break
        with lp.transaction() as t:            # commits at the end of the block,
            n = t.get("counter", b"n")         # aborts if it raises
            t.put("counter", b"n", b"1" if n is None else n + b"1")

Errors are exceptions: every status code of the C ABI has a class, all
subclasses of :class:`ShmcError` (``Timeout``, ``WouldBlock``, ``Conflict``,
...), carrying the code (``.status``) and the library's message.

The shared library is ``$SHMCOLLAB_LIB`` if set, else
``../../target/release/libshmcollab.so`` relative to this file (built by
``cargo build --release -p shmcollab-c``). It is loaded on first use, so the
pure parts (the exception classes, argument checks) work without it.

Thread-safety: an :class:`Lp` belongs to the thread that connected it; a
call from another thread raises :class:`WrongThread` (the library checks).
"""

import ctypes
import json
import os
import time

__all__ = [
    "Lp", "Message", "Transaction", "Commit", "ShmcError", "DATA", "REQUEST", "REPLY",
    "BROADCAST", "load_library", "STATUS_NAMES",
]

# ---- status codes and exceptions -------------------------------------------

#: The status codes of include/shmcollab.h, by value (a unit test compares).
STATUS_NAMES = [
    "SHMC_OK",
    "SHMC_ERR_INVALID_ARGUMENT",
    "SHMC_ERR_CLOSED",
    "SHMC_ERR_WRONG_THREAD",
    "SHMC_ERR_ENVIRONMENT",
    "SHMC_ERR_ATTACH",
    "SHMC_ERR_UNKNOWN_SUBFN",
    "SHMC_ERR_WOULD_BLOCK",
    "SHMC_ERR_TIMEOUT",
    "SHMC_ERR_TOO_LARGE",
    "SHMC_ERR_CORRUPT",
    "SHMC_ERR_STATE",
    "SHMC_ERR_BUFFER_TOO_SMALL",
    "SHMC_ERR_CONFLICT",
    "SHMC_ERR_TXN_FAILED",
    "SHMC_ERR_BAD_REPLY",
    "SHMC_ERR_NO_SUCH_ID",
    "SHMC_ERR_PENDING",
    "SHMC_ERR_PANIC",
    "SHMC_ERR_OTHER",
]


class ShmcError(Exception):
    """A call of the C ABI failed: ``status`` is the code, ``args[0]`` the message."""

    status = None

    def __init__(self, message="", status=None):
        super().__init__(message)
        if status is not None:
            self.status = status

    def __str__(self):
        # The message alone (KeyError, a base of UnknownSubfunction, would quote it).
        return str(self.args[0]) if self.args else ""


class InvalidArgument(ShmcError, ValueError):
    status = 1
class Closed(ShmcError):
    status = 2
class WrongThread(ShmcError):
    status = 3
class NotUnderManager(ShmcError):
    status = 4
class AttachFailed(ShmcError):
    status = 5
class UnknownSubfunction(ShmcError, KeyError):
    status = 6
class WouldBlock(ShmcError):
    status = 7
class Timeout(ShmcError, TimeoutError):
    status = 8
class TooLarge(ShmcError, ValueError):
    status = 9
class Corrupt(ShmcError):
    status = 10
class StateUnavailable(ShmcError):
    status = 11
class BufferTooSmall(ShmcError):
    status = 12
class Conflict(ShmcError):
    status = 13
class TxnFailed(ShmcError):
    status = 14
class BadReply(ShmcError):
    status = 15
class NoSuchId(ShmcError):
    status = 16
class Pending(ShmcError):
    status = 17
class Panic(ShmcError):
    status = 18
class Other(ShmcError):
    status = 19

_EXCEPTIONS = {
    c.status: c
    for c in [
        InvalidArgument, Closed, WrongThread, NotUnderManager, AttachFailed, UnknownSubfunction,
        WouldBlock, Timeout, TooLarge, Corrupt, StateUnavailable, BufferTooSmall, Conflict,
        TxnFailed, BadReply, NoSuchId, Pending, Panic, Other,
    ]
}
__all__ += [c.__name__ for c in _EXCEPTIONS.values()]


def exception_for(status, message=""):
    """The exception for a status code (``ShmcError`` for one this module does not know)."""
    cls = _EXCEPTIONS.get(status)
    if cls is None:
        return ShmcError("status %d: %s" % (status, message), status)
    return cls(message)


# ---- the library ------------------------------------------------------------

DATA, REQUEST, REPLY, BROADCAST = 0, 1, 2, 3
_KIND_NAMES = {DATA: "data", REQUEST: "request", REPLY: "reply", BROADCAST: "broadcast"}
SUBFN_NAME_CAP = 56


class _Message(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.POINTER(ctypes.c_uint8)),
        ("len", ctypes.c_size_t),
        ("from_", ctypes.c_uint32),
        ("kind", ctypes.c_uint32),
        ("corr", ctypes.c_uint32),
        ("to", ctypes.c_char * SUBFN_NAME_CAP),
    ]


class _Bytes(ctypes.Structure):
    _fields_ = [("data", ctypes.POINTER(ctypes.c_uint8)), ("len", ctypes.c_size_t)]


class _Entry(ctypes.Structure):
    _fields_ = [("key", _Bytes), ("value", _Bytes)]


class _Entries(ctypes.Structure):
    _fields_ = [("items", ctypes.POINTER(_Entry)), ("count", ctypes.c_size_t)]


_P = ctypes.c_void_p
_S = ctypes.c_char_p
_BUF = ctypes.c_char_p
_U8P = ctypes.c_char_p  # bytes objects pass as const uint8_t *
_SZ = ctypes.c_size_t
_U64 = ctypes.c_uint64
_SZP = ctypes.POINTER(ctypes.c_size_t)
_U64P = ctypes.POINTER(ctypes.c_uint64)

_SIGNATURES = {
    "shmc_last_error": (ctypes.c_char_p, []),
    "shmc_status_name": (ctypes.c_char_p, [ctypes.c_int32]),
    "shmc_version": (ctypes.c_char_p, []),
    "shmc_under_manager": (ctypes.c_int32, []),
    "shmc_connect": (ctypes.c_int, [ctypes.POINTER(_P)]),
    "shmc_close": (ctypes.c_int, [_P]),
    "shmc_name": (ctypes.c_int, [_P, _BUF, _SZ, _SZP]),
    "shmc_slot": (ctypes.c_int, [_P, ctypes.POINTER(ctypes.c_uint32)]),
    "shmc_subfunction_count": (ctypes.c_int, [_P, _SZP]),
    "shmc_subfunction": (ctypes.c_int, [_P, _SZ, _BUF, _SZ, _SZP]),
    "shmc_send": (ctypes.c_int, [_P, _S, _U8P, _SZ]),
    "shmc_try_send": (ctypes.c_int, [_P, _S, _U8P, _SZ]),
    "shmc_send_timeout": (ctypes.c_int, [_P, _S, _U8P, _SZ, _U64]),
    "shmc_broadcast": (ctypes.c_int, [_P, _U8P, _SZ]),
    "shmc_recv_timeout": (ctypes.c_int, [_P, _U64, ctypes.POINTER(_Message)]),
    "shmc_request": (ctypes.c_int, [_P, _S, _U8P, _SZ, _U64, ctypes.POINTER(_Message)]),
    "shmc_reply": (ctypes.c_int, [_P, ctypes.POINTER(_Message), _U8P, _SZ]),
    "shmc_message_free": (ctypes.c_int, [ctypes.POINTER(_Message)]),
    "shmc_ready": (ctypes.c_int, [_P]),
    "shmc_report": (ctypes.c_int, [_P, _S, _S]),
    "shmc_collaboration_state": (ctypes.c_int, [_P, _BUF, _SZ, _SZP]),
    "shmc_txn_begin": (ctypes.c_int, [_P, _U64P]),
    "shmc_txn_get": (
        ctypes.c_int,
        [_P, _U64, _S, _U8P, _SZ, ctypes.POINTER(_Bytes), ctypes.POINTER(ctypes.c_int32)],
    ),
    "shmc_txn_put": (ctypes.c_int, [_P, _U64, _S, _U8P, _SZ, _U8P, _SZ]),
    "shmc_txn_delete": (ctypes.c_int, [_P, _U64, _S, _U8P, _SZ]),
    "shmc_txn_scan": (
        ctypes.c_int,
        [_P, _U64, _S, _U8P, _SZ, ctypes.c_uint32, ctypes.POINTER(_Entries)],
    ),
    "shmc_txn_commit": (ctypes.c_int, [_P, _U64, _U64P]),
    "shmc_txn_commit_async": (ctypes.c_int, [_P, _U64, _U64P]),
    "shmc_txn_abort": (ctypes.c_int, [_P, _U64]),
    "shmc_commit_poll": (ctypes.c_int, [_P, _U64, _U64P]),
    "shmc_commit_wait": (ctypes.c_int, [_P, _U64, _U64, _U64P]),
    "shmc_bytes_free": (ctypes.c_int, [ctypes.POINTER(_Bytes)]),
    "shmc_entries_free": (ctypes.c_int, [ctypes.POINTER(_Entries)]),
}

_lib = None


def default_library_path():
    """Where the shared library is looked for: ``$SHMCOLLAB_LIB``, else
    ``target/release/libshmcollab.so`` of the repository this file is in."""
    env = os.environ.get("SHMCOLLAB_LIB")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "target", "release", "libshmcollab.so"))


def load_library(path=None):
    """Loads the C ABI (once; later calls return the same library)."""
    global _lib
    if _lib is not None:
        return _lib
    path = path or default_library_path()
    if not os.path.exists(path):
        raise ShmcError(
            "%s not found: run `cargo build --release -p shmcollab-c` or set SHMCOLLAB_LIB" % path
        )
    lib = ctypes.CDLL(path)
    for name, (res, args) in _SIGNATURES.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args
    _lib = lib
    return lib


def _check(status):
    if status != 0:
        msg = _lib.shmc_last_error() or b""
        raise exception_for(status, msg.decode("utf-8", "replace"))


def _bytes_arg(data, what="data"):
    """``data`` as bytes (bytes, bytearray, memoryview, or str encoded as UTF-8)."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise InvalidArgument("%s must be bytes, not %s" % (what, type(data).__name__))


def _name_arg(name, what="subfn"):
    if isinstance(name, bytes):
        s = name
    elif isinstance(name, str):
        s = name.encode("utf-8")
    else:
        raise InvalidArgument("%s must be a str, not %s" % (what, type(name).__name__))
    if b"\0" in s:
        raise InvalidArgument("%s contains a NUL" % what)
    return s


def _timeout_ms(timeout):
    """Seconds (float) to whole milliseconds; ``None`` is a day."""
    if timeout is None:
        return 24 * 3600 * 1000
    if timeout < 0:
        raise InvalidArgument("timeout must not be negative")
    return int(round(timeout * 1000))


def _text(call, *args):
    """A NUL-terminated string from a call with (buf, cap, needed) output."""
    need = ctypes.c_size_t(0)
    cap = SUBFN_NAME_CAP
    while True:
        buf = ctypes.create_string_buffer(cap)
        st = call(*args, buf, cap, ctypes.byref(need))
        if st == 12 and need.value > cap:  # SHMC_ERR_BUFFER_TOO_SMALL
            cap = need.value
            continue
        _check(st)
        return buf.value.decode("utf-8")


def _take_bytes(b):
    """The bytes of a ``_Bytes`` (copied), which is freed."""
    out = ctypes.string_at(b.data, b.len) if b.len else b""
    _lib.shmc_bytes_free(ctypes.byref(b))
    return out


# ---- messages ---------------------------------------------------------------

class Message:
    """A received message: ``data`` (bytes), ``sender`` (the sending LP's slot),
    ``kind`` (DATA, REQUEST, REPLY, BROADCAST), ``to`` (the sub-function it
    was addressed to, or None), ``corr`` (correlation id)."""

    __slots__ = ("data", "sender", "kind", "to", "corr")

    def __init__(self, data, sender, kind, to, corr):
        self.data, self.sender, self.kind, self.to, self.corr = data, sender, kind, to, corr

    @classmethod
    def _take(cls, m):
        data = ctypes.string_at(m.data, m.len) if m.len else b""
        to = m.to.decode("utf-8") or None
        out = cls(data, m.from_, m.kind, to, m.corr)
        _lib.shmc_message_free(ctypes.byref(m))
        return out

    def __repr__(self):
        return "Message(%s from %d to %r, %r)" % (
            _KIND_NAMES.get(self.kind, self.kind), self.sender, self.to, self.data)


class Commit:
    """A commit on its way (:meth:`Transaction.commit_async`)."""

    __slots__ = ("id",)

    def __init__(self, id):
        self.id = id


# ---- the LP -----------------------------------------------------------------

class Lp:
    """A connection of this process to its manager. Use :meth:`connect`."""

    def __init__(self, handle):
        self._h = handle

    @classmethod
    def connect(cls):
        """Connects from the environment the manager set (once per process)."""
        lib = load_library()
        h = ctypes.c_void_p()
        _check(lib.shmc_connect(ctypes.byref(h)))
        return cls(h)

    def close(self):
        """Closes the connection; later calls raise :class:`Closed`."""
        if self._h is not None:
            _check(_lib.shmc_close(self._h))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.close()
        except Closed:
            pass
        return False

    # who we are

    @property
    def name(self):
        """This LP's name."""
        return _text(_lib.shmc_name, self._h)

    @property
    def slot(self):
        """This LP's registry slot (``Message.sender`` of what it sends)."""
        out = ctypes.c_uint32()
        _check(_lib.shmc_slot(self._h, ctypes.byref(out)))
        return out.value

    @property
    def subfunctions(self):
        """The sub-functions this LP hosts."""
        n = ctypes.c_size_t()
        _check(_lib.shmc_subfunction_count(self._h, ctypes.byref(n)))
        return [_text(_lib.shmc_subfunction, self._h, i) for i in range(n.value)]

    # messages

    def send(self, subfn, data, timeout=None):
        """Sends ``data`` to sub-function ``subfn``; waits while the ring is
        full, at most ``timeout`` seconds if given (:class:`WouldBlock`)."""
        s, b = _name_arg(subfn), _bytes_arg(data)
        if timeout is None:
            _check(_lib.shmc_send(self._h, s, b, len(b)))
        else:
            _check(_lib.shmc_send_timeout(self._h, s, b, len(b), _timeout_ms(timeout)))

    def try_send(self, subfn, data):
        """Sends, or raises :class:`WouldBlock` at once if the ring is full."""
        s, b = _name_arg(subfn), _bytes_arg(data)
        _check(_lib.shmc_try_send(self._h, s, b, len(b)))

    def broadcast(self, data):
        """Sends ``data`` to every other LP."""
        b = _bytes_arg(data)
        _check(_lib.shmc_broadcast(self._h, b, len(b)))

    def recv(self, timeout=None):
        """The next message, waiting up to ``timeout`` seconds (None: a day);
        ``None`` if nothing came."""
        m = _Message()
        st = _lib.shmc_recv_timeout(self._h, _timeout_ms(timeout), ctypes.byref(m))
        if st == Timeout.status:
            return None
        _check(st)
        return Message._take(m)

    def messages(self, timeout=None):
        """An iterator over received messages; it ends when none came for
        ``timeout`` seconds (None: never)."""
        while True:
            m = self.recv(timeout if timeout is not None else 3600.0)
            if m is None:
                if timeout is None:
                    continue
                return
            yield m

    __iter__ = messages

    def request(self, subfn, data, timeout=10.0):
        """Sends a request and returns its reply (a :class:`Message`);
        :class:`Timeout` if none came within ``timeout`` seconds."""
        s, b = _name_arg(subfn), _bytes_arg(data)
        m = _Message()
        _check(_lib.shmc_request(self._h, s, b, len(b), _timeout_ms(timeout), ctypes.byref(m)))
        return Message._take(m)

    def reply(self, request, data):
        """Answers ``request`` (a :class:`Message` of kind REQUEST)."""
        if not isinstance(request, Message):
            raise InvalidArgument("request must be a Message")
        b = _bytes_arg(data)
        m = _Message()
        m.from_, m.kind, m.corr = request.sender, request.kind, request.corr
        _check(_lib.shmc_reply(self._h, ctypes.byref(m), b, len(b)))

    # state and supervision

    def ready(self):
        """Tells the supervisor this LP is ready."""
        _check(_lib.shmc_ready(self._h))

    def report(self, key, value):
        """Publishes ``key = value`` in this LP's state report."""
        _check(_lib.shmc_report(self._h, _name_arg(key, "key"), _name_arg(str(value), "value")))

    def collaboration_state(self):
        """The coordinator's view of the collaboration (a dict, the document of
        ``shmcollab status --json``); :class:`StateUnavailable` until published."""
        return json.loads(_text(_lib.shmc_collaboration_state, self._h))

    # transactions

    def begin(self):
        """A new :class:`Transaction` (prefer ``with lp.transaction() as t``)."""
        t = ctypes.c_uint64()
        _check(_lib.shmc_txn_begin(self._h, ctypes.byref(t)))
        return Transaction(self, t.value)

    def transaction(self):
        """A transaction as a context manager: committed (waiting until durable)
        when the block ends, aborted if it raises."""
        return self.begin()

    def transact(self, fn, attempts=32):
        """Runs ``fn(t)`` in a transaction and commits it; on :class:`Conflict`
        runs it again (up to ``attempts`` times). Returns what ``fn`` returned."""
        for attempt in range(1, attempts + 1):
            t = self.begin()
            try:
                out = fn(t)
                t.commit()
                return out
            except Conflict:
                if attempt == attempts:
                    raise
                time.sleep(20e-6 * (1 << min(attempt, 8)))
            finally:
                t._abort_quietly()

    def poll_commit(self, commit):
        """The commit's version once durable; ``None`` while not known; raises
        its error (:class:`Conflict`, :class:`TxnFailed`, ...) if it failed."""
        v = ctypes.c_uint64()
        st = _lib.shmc_commit_poll(self._h, commit.id, ctypes.byref(v))
        if st == Pending.status:
            return None
        _check(st)
        return v.value

    def wait_commit(self, commit, timeout=10.0):
        """Waits up to ``timeout`` seconds for the commit to be durable; its
        version. :class:`Timeout` if its outcome is still unknown."""
        v = ctypes.c_uint64()
        _check(_lib.shmc_commit_wait(self._h, commit.id, _timeout_ms(timeout), ctypes.byref(v)))
        return v.value


class Transaction:
    """A transaction of an :class:`Lp`: reads go to the hosts, writes are
    buffered until commit; serializable (a commit may raise :class:`Conflict`)."""

    def __init__(self, lp, id):
        self._lp, self.id, self._open = lp, id, True

    def _h(self):
        if not self._open:
            raise NoSuchId("the transaction is already committed or aborted")
        return self._lp._h

    def get(self, subfn, key):
        """The value of ``key`` in ``subfn`` (bytes), or ``None``."""
        h, s, k = self._h(), _name_arg(subfn), _bytes_arg(key, "key")
        v, found = _Bytes(), ctypes.c_int32()
        _check(_lib.shmc_txn_get(h, self.id, s, k, len(k), ctypes.byref(v), ctypes.byref(found)))
        data = _take_bytes(v)
        return data if found.value else None

    def put(self, subfn, key, value):
        """Sets ``key`` of ``subfn`` to ``value`` at commit."""
        h, s = self._h(), _name_arg(subfn)
        k, v = _bytes_arg(key, "key"), _bytes_arg(value, "value")
        _check(_lib.shmc_txn_put(h, self.id, s, k, len(k), v, len(v)))

    def delete(self, subfn, key):
        """Removes ``key`` from ``subfn`` at commit."""
        h, s, k = self._h(), _name_arg(subfn), _bytes_arg(key, "key")
        _check(_lib.shmc_txn_delete(h, self.id, s, k, len(k)))

    def scan(self, subfn, prefix=b"", limit=1000):
        """The (key, value) pairs of ``subfn`` whose key starts with ``prefix``,
        in key order (at most ``limit`` from the host), own writes included."""
        h, s, p = self._h(), _name_arg(subfn), _bytes_arg(prefix, "prefix")
        if not 0 <= limit < 2**32:
            raise InvalidArgument("limit must fit 32 bits")
        e = _Entries()
        _check(_lib.shmc_txn_scan(h, self.id, s, p, len(p), limit, ctypes.byref(e)))
        try:
            out = []
            for i in range(e.count):
                it = e.items[i]
                k = ctypes.string_at(it.key.data, it.key.len) if it.key.len else b""
                v = ctypes.string_at(it.value.data, it.value.len) if it.value.len else b""
                out.append((k, v))
            return out
        finally:
            _lib.shmc_entries_free(ctypes.byref(e))

    def commit(self):
        """Commits and waits until durable; returns the commit's version."""
        h, self._open = self._h(), False
        v = ctypes.c_uint64()
        _check(_lib.shmc_txn_commit(h, self.id, ctypes.byref(v)))
        return v.value

    def commit_async(self):
        """Hands the transaction to the manager and returns a :class:`Commit`
        at once (pipelined: many may be in flight)."""
        h, self._open = self._h(), False
        c = ctypes.c_uint64()
        _check(_lib.shmc_txn_commit_async(h, self.id, ctypes.byref(c)))
        return Commit(c.value)

    def abort(self):
        """Drops the transaction: nothing of it is applied."""
        h, self._open = self._h(), False
        _check(_lib.shmc_txn_abort(h, self.id))

    def _abort_quietly(self):
        if self._open:
            self._open = False
            _lib.shmc_txn_abort(self._lp._h, self.id)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            if self._open:
                self.commit()
        else:
            self._abort_quietly()
        return False
