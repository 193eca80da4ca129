"""polyglot, the Python LP: hosts the sub-function "python".

Through bindings/python/shmcollab.py (ctypes over the C ABI) it does what
the Rust and the C LP do (see README.md): N transactions that each add 1 to
its own counter ("python"/"count") and to the shared total
("tally"/"total"), retried on conflict; N pipelined commits of log entries;
a put and a delete; greetings to the other two LPs; then it serves
requests until the Rust LP broadcasts "finish", taking its turn (requests
to the other two) when told.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python"))
import shmcollab  # noqa: E402

N = 50        # counter transactions
HELLOS = 20   # greetings to each other LP
ME = "python"
OTHERS = ["rust", "c"]


def u64(b):
    return 0 if b is None else struct.unpack("<Q", b)[0]


def increment(t):
    mine = u64(t.get(ME, b"count")) + 1
    total = u64(t.get("tally", b"total")) + 1
    t.put(ME, b"count", struct.pack("<Q", mine))
    t.put("tally", b"total", struct.pack("<Q", total))
    return mine - 1


def take_turn(lp):
    for other in OTHERS:
        r = lp.request(other, b"ping", timeout=30.0)
        want = ("pong from %s" % other).encode()
        if r.data != want:
            sys.exit("python: %s answered %r" % (other, r.data))
    print("python: requests to rust and c answered", flush=True)


def main():
    with shmcollab.Lp.connect() as lp:
        print("python: hosts %s (slot %d, LP %s)" % (", ".join(lp.subfunctions), lp.slot, lp.name), flush=True)
        lp.ready()

        # The state outlives a run: the counter's value before this one.
        before = lp.transact(increment, attempts=1000)
        for _ in range(N - 1):
            lp.transact(increment, attempts=1000)
        # Pipelined: every commit in flight, then each waited for.
        pending = []
        for i in range(N):
            t = lp.begin()
            t.put(ME, b"log/%04d" % i, ME)
            pending.append(t.commit_async())
        for c in pending:
            lp.wait_commit(c, timeout=10.0)
        with lp.transaction() as t:
            t.put(ME, b"tmp", b"x")
        with lp.transaction() as t:
            t.delete(ME, b"tmp")
        for i in range(HELLOS):
            for other in OTHERS:
                lp.send(other, "hello from python #%d" % i)
        lp.send("rust", "done %d" % before)

        hellos = 0
        for m in lp.messages(timeout=60.0):
            if m.kind == shmcollab.BROADCAST:
                print("python: got %s; %d greetings received" % (m.data.decode(), hellos), flush=True)
                break
            elif m.kind == shmcollab.REQUEST and m.data == b"ping":
                lp.reply(m, b"pong from python")
            elif m.kind == shmcollab.REQUEST and m.data == b"stats":
                lp.reply(m, str(hellos))
            elif m.kind == shmcollab.DATA and m.data == b"turn":
                take_turn(lp)
                lp.send("rust", b"turn")
            elif m.kind == shmcollab.DATA and m.data.startswith(b"hello "):
                hellos += 1
            else:
                sys.exit("python: unexpected %r" % (m,))
        else:
            sys.exit("python: no message for 60 s")
        state = lp.collaboration_state()
        lp.report("greetings", "all" if hellos == 2 * HELLOS else "missing")
        print("python: the coordinator sees %d LPs" % len(state["lps"]), flush=True)


if __name__ == "__main__":
    main()
