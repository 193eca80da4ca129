/* Is one log shared by the managers of a host worth it on this disk? The
 * floor under `commit_8lp` both ways, with no runtime at all: N processes
 * appending 128-byte records, each acknowledged after an fdatasync,
 *
 *   files:  one preallocated (zero-filled) file per process, write +
 *           fdatasync in a loop (today's layout: one log per manager);
 *   shared: ONE preallocated file, appends under a process-shared robust
 *           mutex held for the pwrite only, then a cross-process group
 *           commit: a process whose record ends at e waits while an
 *           fdatasync that began after its write is in flight (futex on a
 *           shared word), else becomes the syncer (reads the end,
 *           fdatasyncs, publishes durable = that end, wakes everyone).
 *
 *   cc -O2 -o /tmp/shared_log benches/floor/shared_log.c -lpthread
 *   /tmp/shared_log [N=8] [SECS=3] [ROUNDS=5] [DIR=.] [YIELDERS=0] [THINK_US=0]
 *
 * YIELDERS > 0 adds that many processes that wait the way the bench's LPs
 * wait for a commit's answer (sched_yield in a loop), so that the CPUs are
 * as contended as in `commit_8lp` (16 processes on 2 CPUs). THINK_US > 0
 * makes each writer yield in a loop that long between its commits: the
 * runtime's own part of a commit in `commit_8lp` (its get and commit round
 * trips; about 115 µs at p50 with `sync = "off"`).
 *
 * Runs the two modes alternately ROUNDS times (so that the noise of a shared
 * machine hits both alike) and prints, per mode, the median and the range of
 * commits/s, fdatasyncs/s, CPU per commit (of every child, yielders too),
 * and the p50/p99 commit latency of
 * the median round. Figures measured on this VM are in the module docs of
 * runtime/src/txn/wal/mod.rs ("Why one log per manager").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXP 64
#define FILE_BYTES (256u << 20)
#define LAT_MAX 200000

typedef struct {
    pthread_mutex_t append;   /* held for the pwrite only */
    _Atomic uint64_t end;     /* end of the completed writes */
    _Atomic uint64_t durable; /* end made durable by the last fdatasync */
    _Atomic uint32_t syncing; /* 1 while a syncer is in fdatasync */
    _Atomic uint32_t seq;     /* futex word: bumped after every fdatasync */
    _Atomic uint64_t syncs;
    _Atomic uint64_t commits[MAXP];
    _Atomic uint32_t go;
    double lat[MAXP][1024]; /* a sample of each process's latencies (µs) */
    _Atomic uint32_t nlat[MAXP];
} Shared;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void futex_wait(_Atomic uint32_t *w, uint32_t v) {
    struct timespec to = {0, 50 * 1000 * 1000}; /* a hang guard only */
    syscall(SYS_futex, w, FUTEX_WAIT, v, &to, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *w) {
    syscall(SYS_futex, w, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int make_file(const char *dir, int i) {
    char path[4096];
    snprintf(path, sizeof path, "%s/shared_log.%d", dir, i);
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    if (fd < 0)
        die("open");
    static char zeros[1 << 20];
    for (uint64_t off = 0; off < FILE_BYTES; off += sizeof zeros)
        if (pwrite(fd, zeros, sizeof zeros, off) != (ssize_t)sizeof zeros)
            die("pwrite zeros");
    if (fsync(fd))
        die("fsync");
    return fd;
}

static void lock(Shared *sh) {
    int r = pthread_mutex_lock(&sh->append);
    if (r == EOWNERDEAD) /* a dead writer: its bytes are past `end`, rewritten */
        pthread_mutex_consistent(&sh->append);
    else if (r)
        die("lock");
}

/* One commit into the shared file: append, then wait until durable. */
static void commit_shared(Shared *sh, int fd, const char *rec) {
    lock(sh);
    uint64_t off = atomic_load(&sh->end);
    if (off + 128 > FILE_BYTES)
        die("the file is full (fewer SECS)");
    if (pwrite(fd, rec, 128, off) != 128)
        die("pwrite");
    uint64_t e = off + 128;
    atomic_store(&sh->end, e);
    pthread_mutex_unlock(&sh->append);
    for (;;) {
        if (atomic_load(&sh->durable) >= e)
            return;
        uint32_t seq = atomic_load(&sh->seq);
        uint32_t idle = 0;
        if (atomic_compare_exchange_strong(&sh->syncing, &idle, 1)) {
            uint64_t covers = atomic_load(&sh->end);
            if (fdatasync(fd))
                die("fdatasync");
            atomic_fetch_add(&sh->syncs, 1);
            atomic_store(&sh->durable, covers);
            atomic_store(&sh->syncing, 0);
            atomic_fetch_add(&sh->seq, 1);
            futex_wake(&sh->seq);
            if (covers >= e)
                return;
            continue;
        }
        futex_wait(&sh->seq, seq);
    }
}

static double think = 0; /* seconds */

static void child(Shared *sh, int i, int shared, int fd, double secs) {
    char rec[128];
    memset(rec, i + 1, sizeof rec);
    uint64_t off = 0, n = 0;
    while (!atomic_load(&sh->go))
        ;
    double t0 = now(), end = t0 + secs;
    for (double t = t0; t < end;) {
        if (shared) {
            commit_shared(sh, fd, rec);
        } else {
            if (pwrite(fd, rec, 128, off) != 128 || fdatasync(fd))
                die("write/fdatasync");
            off = (off + 128) % FILE_BYTES;
        }
        double t1 = now();
        if ((n++ & 7) == 0 && sh->nlat[i] < 1024)
            sh->lat[i][sh->nlat[i]++] = (t1 - t) * 1e6;
        while (think > 0 && now() < t1 + think)
            sched_yield();
        t = now();
    }
    atomic_store(&sh->commits[i], n);
    _exit(0);
}

typedef struct {
    double rate, syncs, cpu_us, p50, p99;
} Result;

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double cpu_now(void) {
    struct rusage r;
    getrusage(RUSAGE_CHILDREN, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6 + r.ru_stime.tv_sec +
           r.ru_stime.tv_usec * 1e-6;
}

/* A process waiting like an LP that waits for its commit's answer. */
static void yielder(Shared *sh, double secs) {
    while (!atomic_load(&sh->go))
        ;
    double end = now() + secs;
    while (now() < end)
        sched_yield();
    _exit(0);
}

static Result run(int n, double secs, int shared, const char *dir, int yielders) {
    Shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap");
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&sh->append, &a);
    int fds[MAXP];
    for (int i = 0; i < (shared ? 1 : n); i++)
        fds[i] = make_file(dir, i);
    double cpu0 = cpu_now();
    for (int i = 0; i < n; i++)
        if (fork() == 0)
            child(sh, i, shared, fds[shared ? 0 : i], secs);
    for (int i = 0; i < yielders; i++)
        if (fork() == 0)
            yielder(sh, secs);
    usleep(100000);
    atomic_store(&sh->go, 1);
    while (wait(NULL) > 0)
        ;
    double cpu = cpu_now() - cpu0;
    uint64_t total = 0;
    static double lat[MAXP * 1024];
    int nl = 0;
    for (int i = 0; i < n; i++) {
        total += sh->commits[i];
        for (uint32_t j = 0; j < sh->nlat[i]; j++)
            lat[nl++] = sh->lat[i][j];
    }
    qsort(lat, nl, sizeof *lat, cmpd);
    Result r = {total / secs, (shared ? sh->syncs : total) / secs, cpu / total * 1e6,
                nl ? lat[nl / 2] : 0, nl ? lat[nl * 99 / 100] : 0};
    for (int i = 0; i < (shared ? 1 : n); i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/shared_log.%d", dir, i);
        close(fds[i]);
        unlink(path);
    }
    munmap(sh, sizeof *sh);
    return r;
}

static void report(const char *mode, int n, Result *r, int rounds) {
    double rates[64];
    for (int i = 0; i < rounds; i++)
        rates[i] = r[i].rate;
    qsort(rates, rounds, sizeof *rates, cmpd);
    double med = rates[rounds / 2];
    Result m = r[0];
    for (int i = 0; i < rounds; i++)
        if (r[i].rate == med)
            m = r[i];
    printf("%-7s n=%d  commits/s median %6.0f (range %6.0f-%6.0f)  fdatasync/s %6.0f  "
           "cpu %.1f us/commit  latency p50 %.0f us p99 %.0f us\n",
           mode, n, med, rates[0], rates[rounds - 1], m.syncs, m.cpu_us, m.p50, m.p99);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 8;
    double secs = argc > 2 ? atof(argv[2]) : 3;
    int rounds = argc > 3 ? atoi(argv[3]) : 5;
    const char *dir = argc > 4 ? argv[4] : ".";
    int yielders = argc > 5 ? atoi(argv[5]) : 0;
    think = argc > 6 ? atof(argv[6]) * 1e-6 : 0;
    if (n < 1 || n > MAXP || rounds < 1 || rounds > 64)
        return 2;
    Result files[64], shared[64];
    for (int i = 0; i < rounds; i++) {
        files[i] = run(n, secs, 0, dir, yielders);
        shared[i] = run(n, secs, 1, dir, yielders);
    }
    report("files", n, files, rounds);
    report("shared", n, shared, rounds);
    return 0;
}
