"""Unit tests of bindings/python/shmcollab.py that need no collaboration:
the status codes against the header, the exceptions, the argument checks,
and, when the shared library is there ($SHMCOLLAB_LIB, or
target/release/libshmcollab.so), calls into it from outside a manager.

Run: python3 -m unittest discover -s bindings/python/tests
(`cargo test -p shmcollab-c --test python` runs it with the library of
that build; the real LP path is the polyglot example's end-to-end test.)
"""
import os
import re
import sys
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import shmcollab  # noqa: E402

HEADER = os.path.join(HERE, "..", "..", "..", "include", "shmcollab.h")


class StatusCodes(unittest.TestCase):
    def header_statuses(self):
        with open(HEADER) as f:
            text = f.read()
        return {int(v): n for n, v in re.findall(r"^\s*(SHMC_(?:OK|ERR_\w+)) = (\d+),", text, re.M)}

    def test_names_match_the_header(self):
        codes = self.header_statuses()
        self.assertEqual(len(codes), len(shmcollab.STATUS_NAMES))
        for value, name in codes.items():
            self.assertEqual(shmcollab.STATUS_NAMES[value], name)

    def test_every_error_code_has_its_exception(self):
        for value, name in enumerate(shmcollab.STATUS_NAMES):
            if value == 0:
                continue
            e = shmcollab.exception_for(value, "msg")
            self.assertIsInstance(e, shmcollab.ShmcError)
            self.assertEqual(e.status, value, name)
            self.assertEqual(str(e), "msg")

    def test_some_exceptions_are_also_builtin_kinds(self):
        self.assertIsInstance(shmcollab.exception_for(8), TimeoutError)
        self.assertIsInstance(shmcollab.exception_for(1), ValueError)
        self.assertIsInstance(shmcollab.exception_for(13), shmcollab.Conflict)

    def test_an_unknown_code_is_a_plain_shmc_error(self):
        e = shmcollab.exception_for(999, "what")
        self.assertIs(type(e), shmcollab.ShmcError)
        self.assertEqual(e.status, 999)


class Arguments(unittest.TestCase):
    def test_bytes_like_and_text_become_bytes(self):
        self.assertEqual(shmcollab._bytes_arg(b"ab"), b"ab")
        self.assertEqual(shmcollab._bytes_arg(bytearray(b"ab")), b"ab")
        self.assertEqual(shmcollab._bytes_arg(memoryview(b"ab")), b"ab")
        self.assertEqual(shmcollab._bytes_arg("é"), "é".encode())

    def test_other_payloads_are_refused(self):
        for bad in [None, 3, 1.5, [1]]:
            with self.assertRaises(shmcollab.InvalidArgument):
                shmcollab._bytes_arg(bad)

    def test_names(self):
        self.assertEqual(shmcollab._name_arg("count/3"), b"count/3")
        with self.assertRaises(shmcollab.InvalidArgument):
            shmcollab._name_arg("a\0b")
        with self.assertRaises(shmcollab.InvalidArgument):
            shmcollab._name_arg(7)

    def test_timeouts(self):
        self.assertEqual(shmcollab._timeout_ms(0), 0)
        self.assertEqual(shmcollab._timeout_ms(0.0015), 2)
        self.assertEqual(shmcollab._timeout_ms(None), 24 * 3600 * 1000)
        with self.assertRaises(shmcollab.InvalidArgument):
            shmcollab._timeout_ms(-1)

    def test_a_finished_transaction_refuses_more(self):
        t = shmcollab.Transaction(lp=None, id=5)
        t._open = False
        with self.assertRaises(shmcollab.NoSuchId):
            t.put("s", b"k", b"v")


def library_or_skip(test):
    path = shmcollab.default_library_path()
    if not os.path.exists(path):
        test.skipTest("no shared library at %s (cargo build --release -p shmcollab-c)" % path)
    return shmcollab.load_library()


class Library(unittest.TestCase):
    def setUp(self):
        self.lib = library_or_skip(self)

    def test_status_names_come_from_the_library(self):
        for value, name in enumerate(shmcollab.STATUS_NAMES):
            self.assertEqual(self.lib.shmc_status_name(value).decode(), name)
        self.assertEqual(self.lib.shmc_status_name(-1).decode(), "SHMC_ERR_UNKNOWN")

    def test_version(self):
        self.assertRegex(self.lib.shmc_version().decode(), r"^\d+\.\d+\.\d+$")

    def test_connect_outside_a_manager_raises(self):
        if self.lib.shmc_under_manager():
            self.skipTest("running under a shmcollab manager")
        with self.assertRaises(shmcollab.NotUnderManager) as cm:
            shmcollab.Lp.connect()
        self.assertIn("SHMCOLAB", str(cm.exception))

    def test_a_null_handle_is_an_error_not_a_crash(self):
        lp = shmcollab.Lp(None)
        with self.assertRaises(shmcollab.InvalidArgument) as cm:
            lp.send("x", b"y")
        self.assertIn("null", str(cm.exception))
        with self.assertRaises(shmcollab.InvalidArgument):
            lp.recv(0)
        with self.assertRaises(shmcollab.InvalidArgument):
            lp.begin()
        with self.assertRaises(shmcollab.InvalidArgument):
            lp.subfunctions

    def test_messages_are_per_thread(self):
        lp = shmcollab.Lp(None)
        seen = []

        def other():
            try:
                lp.ready()
            except shmcollab.ShmcError as e:
                seen.append(str(e))

        th = threading.Thread(target=other)
        th.start()
        th.join()
        self.assertEqual(len(seen), 1)
        self.assertIn("null", seen[0])


if __name__ == "__main__":
    unittest.main()
