/* The floor under the LP round trip: K processes passing a token around a
 * ring of shared-memory words, each waiting by sched_yield (what shmcollab's
 * processes do with more processes than cores), next to a Unix socket round
 * trip between two processes. No crypto, no routing, no rings.
 *
 *   cc -O2 -o /tmp/yield_chain benches/floor/yield_chain.c && /tmp/yield_chain
 *
 * Prints p50/p99 of 20,000 rounds each: socket, token ring of 2 (the two
 * processes pinned to one CPU), 4 and 6 processes (unpinned), then 4
 * processes with 500 ns of work per hop waiting the old way (yield in a
 * loop) and the way shmcollab waits with more processes than CPUs (yield
 * once, then spin 5 us after every yield: WaitStrategy::respin), and the
 * socket again.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N 20000

#include "floor.h"

static void report(const char *what, double *lat) {
    qsort(lat, N, sizeof(double), cmp);
    printf("%-32s p50 %6.2f us  p99 %6.2f us\n", what, lat[N / 2] / 1e3, lat[N * 99 / 100] / 1e3);
}


typedef struct {
    _Atomic long v;
    char pad[56];
} word;

/* Process i waits for its word to change, then writes the next one. */
static void token_ring(int k, int pin_cpu, const char *what) {
    static double lat[N];
    word *w = mmap(0, sizeof(word) * 16, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(w, 0, sizeof(word) * 16);
    for (int i = 1; i < k; i++) {
        if (fork() == 0) {
            if (pin_cpu >= 0) pin(pin_cpu);
            long seen = 0, v;
            for (;;) {
                while ((v = atomic_load(&w[i].v)) == seen) sched_yield();
                seen = v;
                if (v < 0) {
                    if (i + 1 < k) atomic_store(&w[i + 1].v, -1);
                    _exit(0);
                }
                atomic_store(&w[(i + 1) % k].v, v);
            }
        }
    }
    if (pin_cpu >= 0) pin(pin_cpu);
    long seen = 0, v;
    for (int r = 0; r < N; r++) {
        double t = now_ns();
        atomic_store(&w[1].v, r + 1);
        while ((v = atomic_load(&w[0].v)) == seen) sched_yield();
        seen = v;
        lat[r] = now_ns() - t;
    }
    atomic_store(&w[1].v, -1);
    while (wait(0) > 0) {}
    if (pin_cpu >= 0) {
        cpu_set_t all;
        CPU_ZERO(&all);
        for (int c = 0; c < CPU_SETSIZE; c++) CPU_SET(c, &all);
        sched_setaffinity(0, sizeof all, &all);
    }
    report(what, lat);
}

static void busy(double ns) {
    double t = now_ns();
    while (now_ns() - t < ns) {}
}

/* Wait until *v != seen: yield-only, or (respin_ns > 0) yield once, then
 * spin respin_ns after every yield. */
static long wait_word(word *v, long seen, double respin_ns) {
    long x;
    if ((x = atomic_load(&v->v)) != seen) return x;
    for (;;) {
        sched_yield();
        double t = now_ns();
        int n = 0;
        do {
            if ((x = atomic_load(&v->v)) != seen) return x;
            __builtin_ia32_pause();
        } while (respin_ns > 0 && ((++n & 7) || now_ns() - t < respin_ns));
    }
}

/* Token ring of k unpinned processes, work_ns of work per hop. */
static void work_ring(int k, double work_ns, double respin_ns, const char *what) {
    static double lat[N];
    word *w = mmap(0, sizeof(word) * 16, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(w, 0, sizeof(word) * 16);
    for (int i = 1; i < k; i++) {
        if (fork() == 0) {
            long seen = 0, v;
            for (;;) {
                v = wait_word(&w[i], seen, respin_ns);
                seen = v;
                if (v < 0) {
                    if (i + 1 < k) atomic_store(&w[i + 1].v, -1);
                    _exit(0);
                }
                busy(work_ns);
                atomic_store(&w[(i + 1) % k].v, v);
            }
        }
    }
    long seen = 0, v;
    for (int r = 0; r < N; r++) {
        double t = now_ns();
        busy(work_ns);
        atomic_store(&w[1].v, r + 1);
        v = wait_word(&w[0], seen, respin_ns);
        seen = v;
        lat[r] = now_ns() - t;
    }
    atomic_store(&w[1].v, -1);
    while (wait(0) > 0) {}
    munmap(w, sizeof(word) * 16);
    report(what, lat);
}

static void socket_rtt(void) {
    static double lat[N];
    int sv[2];
    char b[64] = {0};
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    if (fork() == 0) {
        close(sv[0]);
        echo_64(sv[1]);
    }
    close(sv[1]);
    for (int r = 0; r < N; r++) {
        double t = now_ns();
        if (write(sv[0], b, 64) != 64) exit(1);
        int got = 0;
        while (got < 64) got += read(sv[0], b + got, 64 - got);
        lat[r] = now_ns() - t;
    }
    close(sv[0]);
    wait(0);
    report("unix socket round trip, 64 B", lat);
}

int main(void) {
    setvbuf(stdout, 0, _IOLBF, 0);
    socket_rtt();
    token_ring(2, 0, "yield token ring, 2 on one CPU");
    token_ring(4, -1, "yield token ring, 4 processes");
    token_ring(6, -1, "yield token ring, 6 processes");
    work_ring(4, 500, 0, "4 procs, 500 ns/hop, yield loop");
    work_ring(4, 500, 5000, "4 procs, 500 ns/hop, hand-over");
    socket_rtt();
    return 0;
}
