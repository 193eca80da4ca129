"""pingpong, the "pong" LP in Python: answers every request with its payload;
counts one-way messages; on the request "end" answers with the count and
exits 0 (as pong.rs does)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python"))
import shmcollab  # noqa: E402


def main():
    with shmcollab.Lp.connect() as lp:
        lp.ready()
        count = 0
        for m in lp:
            if m.kind == shmcollab.REQUEST and m.data == b"end":
                lp.reply(m, str(count))
                time.sleep(0.05)  # let the reply leave before we go
                return
            elif m.kind == shmcollab.REQUEST:
                lp.reply(m, m.data)
            else:
                count += 1


if __name__ == "__main__":
    main()
