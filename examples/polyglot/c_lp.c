/* polyglot, the C LP: hosts the sub-functions "c" and "tally".
 *
 * Through the C ABI (include/shmcollab.h) it does what the Rust and the
 * Python LP do (see README.md): N transactions that each add 1 to its own
 * counter ("c"/"count") and to the shared total ("tally"/"total"), retried
 * on conflict; N pipelined commits of log entries; a put and a delete;
 * greetings to the other two LPs; then it serves requests until the Rust
 * LP broadcasts "finish", taking its turn (requests to the other two) when
 * told. */
#include <shmcollab.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 50       /* counter transactions */
#define HELLOS 20  /* greetings to each other LP */

static shmc_lp *lp;
static const char *ME = "c";
static const char *OTHERS[2] = {"rust", "python"};

static void check(shmc_status s, const char *what) {
    if (s != SHMC_OK) {
        fprintf(stderr, "c: %s: %s: %s\n", what, shmc_status_name(s), shmc_last_error());
        exit(1);
    }
}

static uint64_t u64_of(const shmc_bytes *b, int found) {
    uint64_t v = 0;
    if (found && b->len == 8) memcpy(&v, b->data, 8); /* little-endian host */
    return v;
}

/* A read: its value (0 if absent). A read of a key that a prepared
 * two-phase commit holds answers SHMC_ERR_CONFLICT, as a commit may:
 * returns that status so the caller begins again; any other error ends. */
static shmc_status get_u64(shmc_txn t, const char *subfn, const char *key, uint64_t *out) {
    shmc_bytes v = {0};
    int found;
    shmc_status s = shmc_txn_get(lp, t, subfn, (const uint8_t *)key, strlen(key), &v, &found);
    if (s == SHMC_ERR_CONFLICT) return s;
    check(s, "get");
    *out = u64_of(&v, found);
    shmc_bytes_free(&v);
    return SHMC_OK;
}

/* One increment of "c"/"count" and "tally"/"total", begun again on a
 * conflict at any step (a read or the commit); returns the count before it. */
static uint64_t increment(void) {
    for (int attempt = 1;; attempt++) {
        shmc_txn t;
        uint64_t mine, total;
        check(shmc_txn_begin(lp, &t), "begin");
        shmc_status s = get_u64(t, ME, "count", &mine);
        if (s == SHMC_OK) s = get_u64(t, "tally", "total", &total);
        if (s == SHMC_OK) {
            mine += 1;
            total += 1;
            check(shmc_txn_put(lp, t, ME, (const uint8_t *)"count", 5, (uint8_t *)&mine, 8), "put count");
            check(shmc_txn_put(lp, t, "tally", (const uint8_t *)"total", 5, (uint8_t *)&total, 8), "put total");
            s = shmc_txn_commit(lp, t, NULL);
        } else {
            check(shmc_txn_abort(lp, t), "abort");
        }
        if (s == SHMC_ERR_CONFLICT && attempt < 1000) continue;
        check(s, "commit");
        return mine - 1;
    }
}

/* N blind writes "log/NNNN" committed pipelined: all in flight, then waited for. */
static void pipelined_log(void) {
    shmc_commit pending[N];
    for (int i = 0; i < N; i++) {
        shmc_txn t;
        char key[16];
        int n = snprintf(key, sizeof key, "log/%04d", i);
        check(shmc_txn_begin(lp, &t), "begin");
        check(shmc_txn_put(lp, t, ME, (const uint8_t *)key, (size_t)n, (const uint8_t *)ME, 1), "put log");
        check(shmc_txn_commit_async(lp, t, &pending[i]), "commit_async");
    }
    for (int i = 0; i < N; i++) check(shmc_commit_wait(lp, pending[i], 10000, NULL), "commit_wait");
}

/* A key put, then deleted, in two transactions. */
static void put_then_delete(void) {
    shmc_txn t;
    check(shmc_txn_begin(lp, &t), "begin");
    check(shmc_txn_put(lp, t, ME, (const uint8_t *)"tmp", 3, (const uint8_t *)"x", 1), "put tmp");
    check(shmc_txn_commit(lp, t, NULL), "commit tmp");
    check(shmc_txn_begin(lp, &t), "begin");
    check(shmc_txn_delete(lp, t, ME, (const uint8_t *)"tmp", 3), "delete tmp");
    check(shmc_txn_commit(lp, t, NULL), "commit delete");
}

/* Requests "ping" to both other LPs; each must answer "pong from <it>". */
static void take_turn(void) {
    for (int i = 0; i < 2; i++) {
        shmc_message r = {0};
        char want[64];
        snprintf(want, sizeof want, "pong from %s", OTHERS[i]);
        check(shmc_request(lp, OTHERS[i], (const uint8_t *)"ping", 4, 30000, &r), "request");
        if (r.len != strlen(want) || memcmp(r.data, want, r.len) != 0) {
            fprintf(stderr, "c: %s answered %.*s\n", OTHERS[i], (int)r.len, (const char *)r.data);
            exit(1);
        }
        shmc_message_free(&r);
    }
    printf("c: requests to rust and python answered\n");
}

static int is(const shmc_message *m, const char *s) {
    return m->len == strlen(s) && memcmp(m->data, s, m->len) == 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    check(shmc_connect(&lp), "connect");
    char name[SHMC_SUBFN_NAME_CAP];
    size_t count;
    check(shmc_subfunction_count(lp, &count), "subfunction_count");
    for (size_t i = 0; i < count; i++) {
        check(shmc_subfunction(lp, i, name, sizeof name, NULL), "subfunction");
        printf("c: hosts %s\n", name);
    }
    check(shmc_ready(lp), "ready");

    uint64_t before = increment();
    for (int i = 1; i < N; i++) increment();
    pipelined_log();
    put_then_delete();
    for (int i = 0; i < HELLOS; i++)
        for (int j = 0; j < 2; j++) {
            char msg[64];
            int n = snprintf(msg, sizeof msg, "hello from c #%d", i);
            check(shmc_send(lp, OTHERS[j], (const uint8_t *)msg, (size_t)n), "send");
        }
    char done[32];
    int dn = snprintf(done, sizeof done, "done %llu", (unsigned long long)before);
    check(shmc_send(lp, "rust", (const uint8_t *)done, (size_t)dn), "send done");

    int hellos = 0;
    for (;;) {
        shmc_message m = {0};
        shmc_status s = shmc_recv_timeout(lp, 60000, &m);
        check(s, "recv");
        if (m.kind == SHMC_KIND_BROADCAST) {
            printf("c: got %.*s; %d greetings received\n", (int)m.len, (const char *)m.data, hellos);
            shmc_message_free(&m);
            break;
        } else if (m.kind == SHMC_KIND_REQUEST && is(&m, "ping")) {
            check(shmc_reply(lp, &m, (const uint8_t *)"pong from c", 11), "reply");
        } else if (m.kind == SHMC_KIND_REQUEST && is(&m, "stats")) {
            char out[32];
            int n = snprintf(out, sizeof out, "%d", hellos);
            check(shmc_reply(lp, &m, (const uint8_t *)out, (size_t)n), "reply stats");
        } else if (m.kind == SHMC_KIND_DATA && is(&m, "turn")) {
            take_turn();
            check(shmc_send(lp, "python", (const uint8_t *)"turn", 4), "pass turn");
        } else if (m.kind == SHMC_KIND_DATA && m.len > 6 && memcmp(m.data, "hello ", 6) == 0) {
            hellos++;
        } else {
            fprintf(stderr, "c: unexpected message of kind %u: %.*s\n", m.kind, (int)m.len, (const char *)m.data);
            exit(1);
        }
        shmc_message_free(&m);
    }
    check(shmc_report(lp, "greetings", hellos == 2 * HELLOS ? "all" : "missing"), "report");
    check(shmc_close(lp), "close");
    return 0;
}
