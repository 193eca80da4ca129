/* What the floor programs share: the clock, the order of a sort of
 * latencies, pinning to a CPU, and the 64-byte echo of a socket pair's
 * child. Included by each program (`#include "floor.h"`: found next to
 * the .c file, so each still builds with the one `cc` line in its
 * comment). Needs _GNU_SOURCE before the first system header.
 */
#ifndef SHMC_FLOOR_H
#define SHMC_FLOOR_H
#include <sched.h>
#include <time.h>
#include <unistd.h>

static inline double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* qsort order of doubles. */
static inline int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Pin the calling process to `cpu` (a negative one: leave it). */
static inline void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof s, &s);
}

/* A socket pair's child: read 64 bytes whole, write them back; exit at
 * the end of the stream. */
static inline void echo_64(int fd) {
    char b[64];
    for (;;) {
        int got = 0;
        while (got < 64) {
            ssize_t r = read(fd, b + got, 64 - got);
            if (r <= 0) _exit(0);
            got += r;
        }
        if (write(fd, b, 64) != 64) _exit(1);
    }
}
#endif
