/* pingpong, the "pong" LP in C: answers every request with its payload;
 * counts one-way messages; on the request "end" answers with the count and
 * exits 0 (as pong.rs does). */
#include <shmcollab.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void check(shmc_status s, const char *what) {
    if (s != SHMC_OK) {
        fprintf(stderr, "pong-c: %s: %s: %s\n", what, shmc_status_name(s), shmc_last_error());
        exit(1);
    }
}

int main(void) {
    shmc_lp *lp;
    check(shmc_connect(&lp), "connect");
    check(shmc_ready(lp), "ready");
    unsigned long long count = 0;
    shmc_message m = {0};
    for (;;) {
        shmc_status s = shmc_recv_timeout(lp, 3600 * 1000, &m);
        if (s == SHMC_ERR_TIMEOUT) continue;
        check(s, "recv");
        if (m.kind == SHMC_KIND_REQUEST && m.len == 3 && memcmp(m.data, "end", 3) == 0) {
            char out[32];
            int n = snprintf(out, sizeof out, "%llu", count);
            check(shmc_reply(lp, &m, (const uint8_t *)out, (size_t)n), "reply");
            shmc_message_free(&m);
            usleep(50000); /* let the reply leave before we go */
            break;
        } else if (m.kind == SHMC_KIND_REQUEST) {
            check(shmc_reply(lp, &m, m.data, m.len), "reply");
        } else {
            count++;
        }
        shmc_message_free(&m);
    }
    check(shmc_close(lp), "close");
    return 0;
}
