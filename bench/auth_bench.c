/* auth_bench.c - cost per call of what every authenticated request pays in src/auth and
 * src/store: checking an API key (cached), checking a JWT, a rate-limit take, an audit append,
 * and storing a 4 KiB upload. Not a test: it prints nanoseconds per call (bench/auth.sh), both
 * CPU time of the calling thread (stable on a busy machine) and wall time (includes waiting
 * for the disk, e.g. fsync). */
#include "auth/auth.h"
#include "auth/ratelimit.h"
#include "base/log.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define BENCH(label, iters, stmt)                                                        \
    do {                                                                                 \
        double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID);         \
        for (long i_ = 0; i_ < (iters); i_++) {                                          \
            stmt;                                                                        \
        }                                                                                \
        double c = now_s(CLOCK_THREAD_CPUTIME_ID) - c0, w = now_s(CLOCK_MONOTONIC) - w0; \
        printf("%-38s %9.0f ns CPU %10.0f ns wall  (%ld calls)\n", label,                \
               c * 1e9 / (double)(iters), w * 1e9 / (double)(iters), (long)(iters));     \
    } while (0)

static int fail(const char *what, const md_err *e)
{
    fprintf(stderr, "auth_bench: %s: %s\n", what, md_err_message(e));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: auth_bench DATA_DIR\n");
        return 2;
    }
    md_log_set_level(MD_LOG_WARN);
    md_err e;
    store *st = NULL;
    auth *a = NULL;
    rl_limiter *rl = NULL;
    store_opts so = {.data_dir = argv[1]};
    if (store_open(&so, &st, &e) != MD_OK)
        return fail("store_open", &e);
    auth_opts ao = {.store = st, .jwt_secret = "bench-secret-bench-secret-bench-secret"};
    if (auth_open(&ao, &a, &e) != MD_OK || rl_new(NULL, &rl) != MD_OK)
        return fail("auth_open", &e);
    auth_new_key k;
    if (auth_key_create(st, AUTH_ROLE_WRITE, "bench", &k, &e) != MD_OK)
        return fail("key", &e);
    auth_principal p;
    char hdr[128], tok[AUTH_JWT_MAX];
    snprintf(hdr, sizeof hdr, "Bearer %s", k.key);
    auth_check_headers(a, hdr, NULL, &p, &e);
    auth_issue_token(a, &p, tok, sizeof tok, NULL, &e);
    size_t tlen = strlen(tok);
    rl_result res;
    rl_rate rate = {.per_sec = 1e9, .burst = 1000000};
    char ip[32];
    static char blob[4096];

    BENCH("auth_check_headers (API key)", 500000, auth_check_headers(a, hdr, NULL, &p, &e));
    BENCH("auth_check_credential (JWT)", 200000, auth_check_credential(a, tok, tlen, &p, &e));
    BENCH("rl_take (one key)", 2000000, rl_take(rl, "k:bench", 7, rate, &res));
    BENCH("rl_take (10k distinct IPs)", 2000000,
          (snprintf(ip, sizeof ip, "ip:10.0.%ld.%ld", (i_ / 100) % 100, i_ % 100),
           rl_take(rl, ip, strlen(ip), rate, &res)));
    BENCH("store_audit_append", 20000,
          store_audit_append(st, p.key_id, "POST", "/api/x", 200, "req", 1, &e));
    store_upload meta = {.filename = "b.png", .format = "png", .width = 1, .height = 1}, up;
    BENCH("store_uploads_create (4 KiB, fsync)", 300,
          (memcpy(blob, &i_, sizeof i_), store_uploads_create(st, blob, sizeof blob, &meta, &up, &e)));
    auth_new_key_wipe(&k);
    rl_free(rl);
    auth_close(a);
    store_unref(st);
    return 0;
}
