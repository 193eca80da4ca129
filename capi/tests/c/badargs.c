/* The C ABI against bad arguments: every entry point is called with a null
 * LP handle, from the wrong thread, after close, and with null pointers,
 * non-UTF-8 strings, impossible lengths and ids that are not open. Each call
 * must return its error code (never crash). Run as an LP hosting "badargs"
 * by tests/e2e_capi.rs; prints "badargs: N checks passed" and exits 0, or
 * names the first failed check and exits 1. */
#include <shmcollab.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks;

static void expect(shmc_status got, shmc_status want, const char *what, int line) {
    checks++;
    if (got != want) {
        printf("badargs: line %d: %s returned %s, expected %s (%s)\n", line, what,
               shmc_status_name(got), shmc_status_name(want), shmc_last_error());
        exit(1);
    }
    if (want != SHMC_OK && shmc_last_error()[0] == '\0') {
        printf("badargs: line %d: %s: no message for %s\n", line, what, shmc_status_name(want));
        exit(1);
    }
}
#define EXPECT(call, want) expect((call), (want), #call, __LINE__)

static const uint8_t K[] = "k";

/* Every function that takes an LP handle, with arguments that are fine
 * otherwise: each must return `want` (the handle is what is wrong). */
static void every_call(shmc_lp *lp, shmc_status want) {
    char buf[256];
    size_t n;
    uint32_t slot;
    uint64_t v;
    int32_t found;
    shmc_txn t = 1;
    shmc_commit c = 1;
    shmc_message m = {0};
    shmc_message req = {0};
    shmc_bytes b = {0};
    shmc_entries e = {0};
    req.kind = SHMC_KIND_REQUEST;
    EXPECT(shmc_name(lp, buf, sizeof buf, &n), want);
    EXPECT(shmc_slot(lp, &slot), want);
    EXPECT(shmc_subfunction_count(lp, &n), want);
    EXPECT(shmc_subfunction(lp, 0, buf, sizeof buf, &n), want);
    EXPECT(shmc_send(lp, "badargs", K, 1), want);
    EXPECT(shmc_try_send(lp, "badargs", K, 1), want);
    EXPECT(shmc_send_timeout(lp, "badargs", K, 1, 10), want);
    EXPECT(shmc_broadcast(lp, K, 1), want);
    EXPECT(shmc_recv_timeout(lp, 0, &m), want);
    EXPECT(shmc_request(lp, "badargs", K, 1, 10, &m), want);
    EXPECT(shmc_reply(lp, &req, K, 1), want);
    EXPECT(shmc_ready(lp), want);
    EXPECT(shmc_report(lp, "k", "v"), want);
    EXPECT(shmc_collaboration_state(lp, buf, sizeof buf, &n), want);
    EXPECT(shmc_txn_begin(lp, &t), want);
    EXPECT(shmc_txn_get(lp, t, "badargs", K, 1, &b, &found), want);
    EXPECT(shmc_txn_put(lp, t, "badargs", K, 1, K, 1), want);
    EXPECT(shmc_txn_delete(lp, t, "badargs", K, 1), want);
    EXPECT(shmc_txn_scan(lp, t, "badargs", K, 1, 10, &e), want);
    EXPECT(shmc_txn_commit(lp, t, &v), want);
    EXPECT(shmc_txn_commit_async(lp, t, &c), want);
    EXPECT(shmc_txn_abort(lp, t), want);
    EXPECT(shmc_commit_poll(lp, c, &v), want);
    EXPECT(shmc_commit_wait(lp, c, 10, &v), want);
    EXPECT(shmc_close(lp), want);
    /* Nothing was handed out: the frees have nothing to do. */
    EXPECT(shmc_message_free(&m), SHMC_OK);
    EXPECT(shmc_bytes_free(&b), SHMC_OK);
    EXPECT(shmc_entries_free(&e), SHMC_OK);
}

static void *other_thread(void *lp) {
    every_call((shmc_lp *)lp, SHMC_ERR_WRONG_THREAD);
    return NULL;
}

/* Null pointers, bad strings and lengths, ids not open, on a live handle. */
static void bad_arguments(shmc_lp *lp) {
    char buf[256];
    size_t need = 0;
    uint64_t v;
    int32_t found;
    shmc_txn t, gone;
    shmc_commit c;
    shmc_message m = {0};
    shmc_bytes b = {0};
    shmc_entries e = {0};
    const char not_utf8[] = {(char)0xff, (char)0xfe, 0};

    EXPECT(shmc_name(lp, NULL, sizeof buf, NULL), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_name(lp, buf, 2, &need), SHMC_ERR_BUFFER_TOO_SMALL);
    EXPECT(need == strlen("badargs") + 1 ? SHMC_OK : SHMC_ERR_OTHER, SHMC_OK);
    EXPECT(shmc_name(lp, NULL, 0, &need), SHMC_ERR_BUFFER_TOO_SMALL);
    EXPECT(shmc_name(lp, buf, need, NULL), SHMC_OK);
    EXPECT(strcmp(buf, "badargs") == 0 ? SHMC_OK : SHMC_ERR_OTHER, SHMC_OK);
    EXPECT(shmc_slot(lp, NULL), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_subfunction_count(lp, NULL), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_subfunction(lp, 1, buf, sizeof buf, NULL), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_subfunction(lp, SIZE_MAX, buf, sizeof buf, NULL), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_subfunction(lp, 0, NULL, 64, NULL), SHMC_ERR_INVALID_ARGUMENT);

    EXPECT(shmc_send(lp, NULL, K, 1), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_send(lp, "badargs", NULL, 5), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_send(lp, "badargs", K, SIZE_MAX), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_send(lp, not_utf8, K, 1), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_send(lp, "nobody", K, 1), SHMC_ERR_UNKNOWN_SUBFN);
    EXPECT(shmc_try_send(lp, NULL, K, 1), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_try_send(lp, "nobody", K, 1), SHMC_ERR_UNKNOWN_SUBFN);
    EXPECT(shmc_send_timeout(lp, "badargs", NULL, 1, 10), SHMC_ERR_INVALID_ARGUMENT);
    uint8_t *big = calloc(1, 4 << 20);
    EXPECT(shmc_send(lp, "badargs", big, 4 << 20), SHMC_ERR_TOO_LARGE);
    EXPECT(shmc_broadcast(lp, big, 4 << 20), SHMC_ERR_TOO_LARGE);
    free(big);
    EXPECT(shmc_broadcast(lp, NULL, 3), SHMC_ERR_INVALID_ARGUMENT);

    EXPECT(shmc_recv_timeout(lp, 0, NULL), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_recv_timeout(lp, 0, &m), SHMC_ERR_TIMEOUT);
    EXPECT(m.data == NULL && m.len == 0 ? SHMC_OK : SHMC_ERR_OTHER, SHMC_OK);
    EXPECT(shmc_request(lp, "badargs", K, 1, 10, NULL), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_request(lp, NULL, K, 1, 10, &m), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_request(lp, "nobody", K, 1, 10, &m), SHMC_ERR_UNKNOWN_SUBFN);
    EXPECT(shmc_reply(lp, NULL, K, 1), SHMC_ERR_INVALID_ARGUMENT);
    m.kind = SHMC_KIND_DATA;
    EXPECT(shmc_reply(lp, &m, K, 1), SHMC_ERR_INVALID_ARGUMENT);
    m.kind = SHMC_KIND_REQUEST;
    EXPECT(shmc_reply(lp, &m, NULL, 1), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_message_free(NULL), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_report(lp, NULL, "v"), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_report(lp, "k", NULL), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_report(lp, "k", not_utf8), SHMC_ERR_INVALID_ARGUMENT);
    shmc_status s = shmc_collaboration_state(lp, NULL, 0, &need);
    EXPECT(s == SHMC_ERR_BUFFER_TOO_SMALL || s == SHMC_ERR_STATE ? SHMC_OK : s, SHMC_OK);
    EXPECT(shmc_collaboration_state(lp, buf, 1, NULL) == SHMC_OK ? SHMC_ERR_OTHER : SHMC_OK, SHMC_OK);

    EXPECT(shmc_txn_begin(lp, NULL), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_txn_begin(lp, &t), SHMC_OK);
    EXPECT(shmc_txn_get(lp, t + 1000, "badargs", K, 1, &b, &found), SHMC_ERR_NO_SUCH_ID);
    EXPECT(shmc_txn_get(lp, t, NULL, K, 1, &b, &found), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_txn_get(lp, t, "badargs", NULL, 1, &b, &found), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_txn_get(lp, t, "badargs", K, 1, NULL, &found), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_txn_get(lp, t, "badargs", K, 1, &b, NULL), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_txn_get(lp, t, "nobody", K, 1, &b, &found), SHMC_ERR_UNKNOWN_SUBFN);
    EXPECT(shmc_txn_put(lp, t, "badargs", NULL, 1, K, 1), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_txn_put(lp, t, "badargs", K, 1, NULL, 1), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_txn_put(lp, t, "badargs", K, SIZE_MAX, K, 1), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_txn_put(lp, t, not_utf8, K, 1, K, 1), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_txn_delete(lp, t, "badargs", NULL, 1), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_txn_delete(lp, t + 1000, "badargs", K, 1), SHMC_ERR_NO_SUCH_ID);
    EXPECT(shmc_txn_scan(lp, t, "badargs", K, 1, 10, NULL), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_txn_scan(lp, t, "badargs", NULL, 1, 10, &e), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_entries_free(NULL), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_bytes_free(NULL), SHMC_ERR_INVALID_ARGUMENT);
    /* The transaction survived all that: it still works. */
    EXPECT(shmc_txn_put(lp, t, "badargs", K, 1, (const uint8_t *)"v", 1), SHMC_OK);
    EXPECT(shmc_txn_get(lp, t, "badargs", K, 1, &b, &found), SHMC_OK);
    EXPECT(found == 1 && b.len == 1 && b.data[0] == 'v' ? SHMC_OK : SHMC_ERR_OTHER, SHMC_OK);
    EXPECT(shmc_bytes_free(&b), SHMC_OK);
    EXPECT(shmc_bytes_free(&b), SHMC_OK); /* a second free does nothing */
    EXPECT(shmc_txn_scan(lp, t, "badargs", NULL, 0, 10, &e), SHMC_OK);
    EXPECT(e.count >= 1 ? SHMC_OK : SHMC_ERR_OTHER, SHMC_OK);
    EXPECT(shmc_entries_free(&e), SHMC_OK);
    EXPECT(shmc_entries_free(&e), SHMC_OK);
    EXPECT(shmc_txn_commit(lp, t, &v), SHMC_OK);
    /* Ids that are gone. */
    EXPECT(shmc_txn_commit(lp, t, &v), SHMC_ERR_NO_SUCH_ID);
    EXPECT(shmc_txn_abort(lp, t), SHMC_ERR_NO_SUCH_ID);
    EXPECT(shmc_txn_abort(lp, 0), SHMC_ERR_NO_SUCH_ID);
    EXPECT(shmc_txn_begin(lp, &gone), SHMC_OK);
    EXPECT(shmc_txn_abort(lp, gone), SHMC_OK);
    EXPECT(shmc_txn_put(lp, gone, "badargs", K, 1, K, 1), SHMC_ERR_NO_SUCH_ID);
    EXPECT(shmc_txn_commit_async(lp, gone, &c), SHMC_ERR_NO_SUCH_ID);
    EXPECT(shmc_txn_begin(lp, &t), SHMC_OK);
    EXPECT(shmc_txn_commit_async(lp, t, NULL), SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(shmc_txn_put(lp, t, "badargs", K, 1, (const uint8_t *)"w", 1), SHMC_OK);
    EXPECT(shmc_txn_commit_async(lp, t, &c), SHMC_OK);
    EXPECT(shmc_commit_wait(lp, c, 10000, &v), SHMC_OK);
    EXPECT(shmc_commit_wait(lp, c, 10, &v), SHMC_ERR_NO_SUCH_ID);
    EXPECT(shmc_commit_poll(lp, c, &v), SHMC_ERR_NO_SUCH_ID);
    EXPECT(shmc_commit_poll(lp, 0, NULL), SHMC_ERR_NO_SUCH_ID);

    /* One connection per process. */
    shmc_lp *second = (shmc_lp *)1;
    EXPECT(shmc_connect(&second), SHMC_ERR_ENVIRONMENT);
    EXPECT(second == NULL ? SHMC_OK : SHMC_ERR_OTHER, SHMC_OK);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    shmc_lp *lp = NULL;
    EXPECT(shmc_connect(NULL), SHMC_ERR_INVALID_ARGUMENT);
    every_call(NULL, SHMC_ERR_INVALID_ARGUMENT);
    EXPECT(strcmp(shmc_status_name(-1), "SHMC_ERR_UNKNOWN") == 0 ? SHMC_OK : SHMC_ERR_OTHER, SHMC_OK);
    EXPECT(strcmp(shmc_status_name(SHMC_ERR_CLOSED), "SHMC_ERR_CLOSED") == 0 ? SHMC_OK : SHMC_ERR_OTHER, SHMC_OK);
    EXPECT(shmc_under_manager() == 1 ? SHMC_OK : SHMC_ERR_OTHER, SHMC_OK);
    EXPECT(shmc_connect(&lp), SHMC_OK);
    EXPECT(shmc_ready(lp), SHMC_OK);

    bad_arguments(lp);

    pthread_t th;
    if (pthread_create(&th, NULL, other_thread, lp) != 0 || pthread_join(th, NULL) != 0) {
        printf("badargs: pthread failed\n");
        return 1;
    }
    /* The owner thread still has a working handle. */
    size_t n;
    EXPECT(shmc_subfunction_count(lp, &n), SHMC_OK);

    EXPECT(shmc_close(lp), SHMC_OK);
    every_call(lp, SHMC_ERR_CLOSED);
    printf("badargs: %d checks passed (version %s)\n", checks, shmc_version());
    return 0;
}
