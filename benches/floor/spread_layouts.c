/* The floor of the spread (back-to-back) LP round trip under each layout of
 * its four processes on two CPUs (issue 12, lat7; benches/README.md, "Back
 * to back: the layout of the four processes"). A token passes
 * ping -> manager a -> pong -> manager b -> ping through shared-memory
 * words: no crypto, no rings, no routing. Each process is pinned by hand.
 *
 *   cc -O2 -o /tmp/spread_layouts benches/floor/spread_layouts.c
 *   /tmp/spread_layouts LAYOUT WAIT WORK_NS AFTER_NS ROUNDS
 *
 * LAYOUT (CPU 0 | CPU 1):
 *   a  ping, pong    | manager a, manager b   (today's spread: every hop crosses)
 *   b  ping, mgr b   | pong, mgr a            (each LP with the other side's manager)
 *   c  ping, mgr a   | pong, mgr b            (each LP with its own manager)
 *   d  ping, mgr a, pong | mgr b              (three and one)
 *   n  unpinned
 *   s  no token ring: a Unix stream socket round trip of 64 B, both
 *      processes on CPU 0 (the e2e bench's unix_socket_1cpu)
 * WAIT (how a process waits for its word):
 *   spin    spin only (pause)
 *   yield   sched_yield in a loop
 *   respin  sched_yield, then spin 5 us after each yield (what `launch` sets
 *           with more processes than CPUs: SHMCOLAB_SPIN_US=0, RESPIN_US=5)
 *   hand    respin, plus a sched_yield right after each publish (spread's
 *           hand-over after a publish, shmcollab_shm::handover)
 * WORK_NS: busy work per hop before the publish (a hop's own work: open,
 *   route, seal, write); AFTER_NS: after it (a manager's rest of the turn).
 * Prints p50 / p99 of ROUNDS round trips (after ROUNDS/10 unmeasured).
 * A 120 s alarm turns a hang into an exit.
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

#include "floor.h"

static void busy(double ns) {
    if (ns <= 0) return;
    double t = now_ns();
    while (now_ns() - t < ns) {}
}

typedef struct {
    _Atomic long v;
    char pad[120];
} word;

enum { SPIN, YIELD, RESPIN, HAND };
static int wmode;

/* Wait until *w != seen; returns the new value. */
static long wait_word(word *w, long seen) {
    long x;
    for (;;) {
        if ((x = atomic_load(&w->v)) != seen) return x;
        if (wmode == SPIN) {
            __builtin_ia32_pause();
            continue;
        }
        sched_yield();
        if (wmode == YIELD) continue;
        double t = now_ns();
        int n = 0;
        do {
            if ((x = atomic_load(&w->v)) != seen) return x;
            __builtin_ia32_pause();
        } while ((++n & 7) || now_ns() - t < 5000);
    }
}

static void publish(word *w, long v, double after) {
    atomic_store(&w->v, v);
    if (wmode == HAND) sched_yield();
    busy(after);
}

static void report(const char *what, double *lat, int n) {
    qsort(lat, n, sizeof(double), cmp);
    printf("%s: p50 %7.2f us p99 %8.2f us\n", what, lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3);
}

static void socket_rtt(int n) {
    double *lat = malloc(sizeof(double) * n);
    int sv[2];
    char b[64] = {0};
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) exit(1);
    pin(0);
    if (fork() == 0) {
        close(sv[0]);
        echo_64(sv[1]);
    }
    close(sv[1]);
    for (int r = -n / 10; r < n; r++) {
        double t = now_ns();
        if (write(sv[0], b, 64) != 64) exit(1);
        int got = 0;
        while (got < 64) {
            ssize_t k = read(sv[0], b + got, 64 - got);
            if (k <= 0) exit(1);
            got += k;
        }
        if (r >= 0) lat[r] = now_ns() - t;
    }
    close(sv[0]);
    wait(0);
    report("layout s (unix socket, 1 CPU)", lat, n);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s a|b|c|d|n|s spin|yield|respin|hand WORK_NS AFTER_NS ROUNDS\n", argv[0]);
        return 2;
    }
    char lay = argv[1][0];
    const char *w = argv[2];
    wmode = !strcmp(w, "spin") ? SPIN : !strcmp(w, "yield") ? YIELD : !strcmp(w, "respin") ? RESPIN : HAND;
    double work = atof(argv[3]), after = atof(argv[4]);
    int n = atoi(argv[5]);
    if (n < 10) return 2;
    alarm(120);
    setvbuf(stdout, 0, _IOLBF, 0);
    if (lay == 's') {
        socket_rtt(n);
        return 0;
    }
    /* CPU of ping, manager a, pong, manager b. */
    static const int layouts[5][4] = {
        {0, 1, 0, 1}, {0, 1, 1, 0}, {0, 0, 1, 1}, {0, 0, 0, 1}, {-1, -1, -1, -1}};
    const char *names = "abcdn";
    const char *at = strchr(names, lay);
    if (!at || !lay) return 2;
    const int *cpu = layouts[at - names];
    word *t = mmap(0, sizeof(word) * 4, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED) return 1;
    memset(t, 0, sizeof(word) * 4);
    for (int i = 1; i < 4; i++) {
        if (fork() == 0) {
            pin(cpu[i]);
            long seen = 0, v;
            for (;;) {
                v = wait_word(&t[i], seen);
                seen = v;
                if (v < 0) {
                    if (i < 3) atomic_store(&t[i + 1].v, -1);
                    _exit(0);
                }
                busy(work);
                publish(&t[(i + 1) % 4], v, after);
            }
        }
    }
    pin(cpu[0]);
    double *lat = malloc(sizeof(double) * n);
    long seen = 0;
    usleep(100000);
    for (int r = -n / 10; r < n; r++) {
        double t0 = now_ns();
        busy(work);
        publish(&t[1], r + n + 1, after);
        seen = wait_word(&t[0], seen);
        if (r >= 0) lat[r] = now_ns() - t0;
    }
    atomic_store(&t[1].v, -1);
    while (wait(0) > 0) {}
    char what[96];
    snprintf(what, sizeof what, "layout %c wait %-6s work %4.0f after %4.0f", lay, w, work, after);
    report(what, lat, n);
    return 0;
}
