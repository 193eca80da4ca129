/* pingpong, the "ping" LP in C (the C ABI, include/shmcollab.h).
 *
 * `ping-c rtt N [SIZE]`: N request/reply round trips of SIZE bytes (64) to
 * the sub-function "pong" after N/10 warm-up ones; prints p50 and p99 (a
 * line and a JSON line with "system":"shmcollab_c"), then ends pong. The
 * same protocol as ping.rs, so any pong (Rust, C, Python) answers it. */
#include <shmcollab.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void check(shmc_status s, const char *what) {
    if (s != SHMC_OK) {
        fprintf(stderr, "ping-c: %s: %s: %s\n", what, shmc_status_name(s), shmc_last_error());
        exit(1);
    }
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "rtt";
    long n = argc > 2 ? atol(argv[2]) : 10000;
    long size = argc > 3 ? atol(argv[3]) : 64;
    if (strcmp(mode, "rtt") != 0 || n <= 0 || size < 0) {
        fprintf(stderr, "usage: ping-c rtt N [SIZE]\n");
        return 2;
    }
    shmc_lp *lp;
    check(shmc_connect(&lp), "connect");
    check(shmc_ready(lp), "ready");
    uint8_t *msg = malloc((size_t)size + 1);
    memset(msg, 0x42, (size_t)size);
    uint64_t *samples = malloc(sizeof(uint64_t) * (size_t)n);
    long warm = n / 10 > 0 ? n / 10 : 1;
    shmc_message r = {0};
    for (long i = 0; i < warm + n; i++) {
        uint64_t t = now_ns();
        check(shmc_request(lp, "pong", msg, (size_t)size, 10000, &r), "request");
        if (r.len != (size_t)size) {
            fprintf(stderr, "ping-c: reply of %zu bytes, not %ld\n", r.len, size);
            return 1;
        }
        shmc_message_free(&r);
        if (i >= warm) samples[i - warm] = now_ns() - t;
    }
    qsort(samples, (size_t)n, sizeof *samples, cmp_u64);
    double p50 = (double)samples[(size_t)((double)(n - 1) * 0.5)];
    double p99 = (double)samples[(size_t)((double)(n - 1) * 0.99)];
    printf("%ld round trips of %ld B through both managers (C): p50 %.1f µs, p99 %.1f µs\n", n, size,
           p50 / 1e3, p99 / 1e3);
    printf("{\"bench\":\"lp_rtt_%ld\",\"system\":\"shmcollab_c\",\"p50_ns\":%.0f,\"p99_ns\":%.0f}\n", size,
           p50, p99);
    check(shmc_request(lp, "pong", (const uint8_t *)"end", 3, 10000, &r), "request end");
    shmc_message_free(&r);
    free(samples);
    free(msg);
    check(shmc_close(lp), "close");
    return 0;
}
