#!/usr/bin/env python3
"""Per-hop breakdown of a compact (paced) LP round trip, from a syscall
trace of unmodified binaries (benches/hops.md).

    perf record -o /tmp/t.data -e raw_syscalls:sys_enter,raw_syscalls:sys_exit,\
        sched:sched_switch,sched:sched_wakeup -- shmcollab launch CONFIG
    perf script -i /tmp/t.data --ns -F comm,pid,tid,cpu,time,event,trace \
        | grep -E 'pingpong|shmcollab' > /tmp/t.txt
    python3 benches/trace/hops.py /tmp/t.txt

CONFIG: a pingpong collaboration whose ping runs `paced N 1000 64` (the
e2e bench's `pingpong_config`). For each round trip that starts when ping
leaves its pacing sleep (clock_nanosleep), the 8 segments between: ping's
FUTEX_WAKE of manager a, manager a's return from futex_waitv, its
FUTEX_WAKE of pong, pong's return from its futex wait, pong's FUTEX_WAKE of
manager b, manager b's return, its FUTEX_WAKE of ping, ping's return.
Prints each segment's median and p90 (µs; the tracing itself adds about
half a µs per event), and L: the share of round trips in which ping
entered its wait only after pong's wake-up of manager b (ping, preempted
at its own wake-up, ran the rest of its way into the wait on the path).
"""
import re
import statistics as st
import sys

lines = open(sys.argv[1]).read().splitlines()
ev = []
pat = re.compile(r'^\s*(\S+)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)$')
comm_of = {}
for l in lines:
    m = pat.match(l)
    if not m: continue
    comm, pid, tid, cpu, t, e, rest = m.groups()
    pid, tid = int(pid), int(tid)
    if pid != tid: continue
    t = float(t) * 1e6  # us
    if e.endswith('sys_enter'):
        nr = int(rest.split()[1]); args = rest[rest.find('(')+1:].split(',')
        ev.append((t, pid, 'enter', nr, args[1].strip() if len(args) > 1 else ''))
    elif e.endswith('sys_exit'):
        nr = int(rest.split()[1]); ev.append((t, pid, 'exit', nr, ''))
    comm_of[pid] = comm
ping = [p for p, c in comm_of.items() if c == 'pingpong-ping'][0]
pong = [p for p, c in comm_of.items() if c == 'pingpong-pong'][0]
# managers: the one ping wakes is mga: find futex_waitv exits right after ping's wake
ev.sort()
segs = {k: [] for k in 'A B C D E F G H L R'.split()}
i = 0
n = len(ev)
def nxt(j, pid, kind, nrs, op=None):
    while j < n:
        t, p, k, nr, a = ev[j]
        if p == pid and k == kind and nr in nrs and (op is None or a == op):
            return j
        j += 1
    return None
mgrs = sorted(set(p for _, p, k, nr, _a in ev if nr == 449))
while True:
    # ping wakes from its pacing sleep
    j0 = nxt(i, ping, 'exit', (230,))
    if j0 is None: break
    j1 = nxt(j0, ping, 'enter', (202,), '1')  # ping's wake of mga
    if j1 is None: break
    # next waitv exit of any manager
    j2 = j1
    while j2 < n and not (ev[j2][2] == 'exit' and ev[j2][3] == 449 and ev[j2][1] in mgrs): j2 += 1
    if j2 >= n: break
    mga = ev[j2][1]; mgb = [m for m in mgrs if m != mga][0] if len(mgrs) > 1 else None
    j3 = nxt(j2, mga, 'enter', (202,), '1')
    j4 = nxt(j3, pong, 'exit', (202,))
    j5 = nxt(j4, pong, 'enter', (202,), '1')
    j6 = nxt(j5, mgb, 'exit', (449,))
    j7 = nxt(j6, mgb, 'enter', (202,), '1')
    j8 = nxt(j7, ping, 'exit', (202,))
    jl = nxt(j1, ping, 'enter', (202,), '0')  # ping goes to wait
    js = [j0, j1, j2, j3, j4, j5, j6, j7, j8]
    if None in js or jl is None: break
    T = [ev[j][0] for j in js]
    if T[8] - T[0] < 200:
        for k, name in enumerate('A B C D E F G H'.split()):
            segs[name].append(T[k+1] - T[k])
        segs['R'].append(T[8] - T[0])
        # ping's leftover on the critical path: ping entered its wait after pong's wake of mgb
        segs['L'].append(1 if ev[jl][0] > T[5] else 0)
    i = j8 + 1
names = {'A': 'ping: sleep exit -> wake mgr a (send)', 'B': 'wake -> mgr a returns', 'C': 'mgr a: return -> wake pong',
         'D': 'wake -> pong returns', 'E': 'pong: return -> wake mgr b', 'F': 'wake -> mgr b returns',
         'G': 'mgr b: return -> wake ping', 'H': 'wake -> ping returns', 'R': 'total', 'L': 'ping leftover after pong wake (share)'}
for k in 'A B C D E F G H R'.split():
    v = sorted(segs[k]); 
    if not v: continue
    print(f"{k} {names[k]:40s} n={len(v)} p50={st.median(v):6.2f} p90={v[int(len(v)*0.9)]:6.2f}")
print('L', names['L'], sum(segs['L']) / max(1, len(segs['L'])))
