"""pingpong, the "ping" LP in Python (bindings/python/shmcollab.py).

``ping.py rtt N [SIZE]``: N request/reply round trips of SIZE bytes (64) to
the sub-function "pong" after N/10 warm-up ones; prints p50 and p99 (a line
and a JSON line with "system":"shmcollab_python"), then ends pong. The same
protocol as ping.rs.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python"))
import shmcollab  # noqa: E402


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "rtt"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    if mode != "rtt":
        sys.exit("usage: ping.py rtt N [SIZE]")
    lp = shmcollab.Lp.connect()
    lp.ready()
    msg = b"\x42" * size
    warm = max(n // 10, 1)
    samples = []
    clock = time.perf_counter_ns
    for i in range(warm + n):
        t = clock()
        r = lp.request("pong", msg, timeout=10.0)
        if len(r.data) != size:
            sys.exit("ping.py: reply of %d bytes, not %d" % (len(r.data), size))
        if i >= warm:
            samples.append(clock() - t)
    samples.sort()
    p50 = samples[int((len(samples) - 1) * 0.5)]
    p99 = samples[int((len(samples) - 1) * 0.99)]
    print("%d round trips of %d B through both managers (Python): p50 %.1f µs, p99 %.1f µs"
          % (n, size, p50 / 1e3, p99 / 1e3), flush=True)
    print('{"bench":"lp_rtt_%d","system":"shmcollab_python","p50_ns":%d,"p99_ns":%d}'
          % (size, p50, p99), flush=True)
    lp.request("pong", b"end", timeout=10.0)
    lp.close()


if __name__ == "__main__":
    main()
