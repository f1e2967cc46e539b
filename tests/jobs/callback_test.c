/* callback_test.c - completion callbacks (src/jobs/callback.c): the allow-list (schemes, hosts,
 * ports, IPv6, refusals naming "callback_url"), the signature against a vector computed with
 * Python's hmac, and delivery to a receiver thread on 127.0.0.1 with a manual clock: nothing
 * before the job ends, a 500 retried after the backoff (also by a reopened queue), the
 * signature and body as documented, FAILED after the last attempt, a refused connection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "jobs/jobs.h"
#include "common/store_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define SECRET "whsec_test"

/* ---- allow-list and signature ------------------------------------------------------------ */

static void expect_url(const char *allow, const char *url, int code, const char *needle)
{
    md_err e = {0};
    int rc = job_callback_check_url(allow, url, &e);
    if (rc != code)
        fail_msg("\"%s\" under \"%s\": want %d, got %d (%s)", url, allow ? allow : "(null)", code,
                 rc, e.msg);
    if (code != MD_OK) {
        assert_string_equal(e.field, "callback_url");
        if (needle && !strstr(e.msg, needle))
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", url, e.msg, needle);
    }
}

static void test_allow_list(void **state)
{
    (void)state;
    const char *allow = "127.0.0.1, hooks.example.com:8443 ,[::1],10.0.0.1:80";
    expect_url(allow, "http://127.0.0.1:9/cb", MD_OK, NULL);
    expect_url(allow, "https://127.0.0.1/x?y=1", MD_OK, NULL);
    expect_url(allow, "HTTP://HOOKS.example.com:8443/", MD_OK, NULL);
    expect_url(allow, "http://[::1]:8080/", MD_OK, NULL);
    expect_url(allow, "http://10.0.0.1/", MD_OK, NULL); /* 80 is http's port */
    expect_url(allow, "https://10.0.0.1/", MD_E_INVALID_PARAM, "not on the callback allow-list");
    expect_url(allow, "https://hooks.example.com/", MD_E_INVALID_PARAM, "allow-list");
    expect_url(allow, "http://evil.com/", MD_E_INVALID_PARAM, "host evil.com is not");
    expect_url(allow, "http://127.0.0.1.evil.com/", MD_E_INVALID_PARAM, "allow-list");
    expect_url(allow, "ftp://127.0.0.1/", MD_E_INVALID_PARAM, "http:// or https://");
    expect_url(allow, "127.0.0.1/cb", MD_E_INVALID_PARAM, "http:// or https://");
    expect_url(allow, "http://user@127.0.0.1/", MD_E_INVALID_PARAM, "user information");
    expect_url(allow, "http://evil.com#@127.0.0.1/", MD_E_INVALID_PARAM, "allow-list");
    expect_url(allow, "http://127.0.0.1:0/", MD_E_INVALID_PARAM, "port");
    expect_url(allow, "http://127.0.0.1:99999/", MD_E_INVALID_PARAM, "port");
    expect_url(allow, "http://127.0.0.1:/", MD_E_INVALID_PARAM, "port");
    expect_url(allow, "http://127.0.0.1:8x/", MD_E_INVALID_PARAM, "port");
    expect_url(allow, "http:///path", MD_E_INVALID_PARAM, "no host");
    expect_url(allow, "http://[::1/", MD_E_INVALID_PARAM, "unclosed");
    expect_url(allow, "http://127.0.0.1/a b", MD_E_INVALID_PARAM, "spaces");
    expect_url(allow, "", MD_E_MISSING_FIELD, NULL);
    expect_url("", "http://127.0.0.1/", MD_E_INVALID_PARAM, "callbacks are disabled");
    expect_url(NULL, "http://127.0.0.1/", MD_E_INVALID_PARAM, "callbacks are disabled");
}

static void test_signature_vector(void **state)
{
    (void)state;
    char sig[JOB_CB_SIG_MAX];
    const char *body = "{\"a\":1}";
    assert_int_equal(job_callback_sign(SECRET, 1700000000, body, strlen(body), sig, sizeof sig),
                     MD_OK);
    /* python3: hmac.new(b"whsec_test", b"1700000000." + body, hashlib.sha256).hexdigest() */
    assert_string_equal(sig, "t=1700000000,v1="
                             "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789");
    assert_int_equal(job_callback_sign(SECRET, 1, body, 1, sig, 10), MD_E_INTERNAL);
}

/* ---- a receiver on 127.0.0.1 --------------------------------------------------------------- */

typedef struct receiver {
    int fd, port;
    pthread_t th;
    int statuses[4]; /* the answer to request i (the last one repeats) */
    int nstatus;
    atomic_int count;
    atomic_bool stop;
    pthread_mutex_t mu;
    char body[8192];
    char sig[128];
    char job_id[64];
} receiver;

/* The value of header name in the head (NUL-terminated) into out. */
static void header_value(const char *head, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    for (const char *p = head; (p = strstr(p, "\r\n")) != NULL;) {
        p += 2;
        size_t n = strlen(name);
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r\n");
            snprintf(out, cap, "%.*s", (int)(len < cap ? len : cap - 1), v);
            return;
        }
    }
}

static void serve_one(receiver *r, int c)
{
    char buf[16384];
    size_t n = 0;
    char *end = NULL;
    long want = -1;
    while (n < sizeof buf - 1) {
        ssize_t got = read(c, buf + n, sizeof buf - 1 - n);
        if (got <= 0)
            break;
        n += (size_t)got;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end && want < 0) {
            char cl[32];
            header_value(buf, "Content-Length", cl, sizeof cl);
            want = atol(cl);
        }
        if (end && (long)(n - (size_t)(end + 4 - buf)) >= want)
            break;
    }
    int i = atomic_load(&r->count);
    int status = r->statuses[i < r->nstatus ? i : r->nstatus - 1];
    pthread_mutex_lock(&r->mu);
    if (end) {
        *end = '\0';
        header_value(buf, "X-Modeld-Signature", r->sig, sizeof r->sig);
        header_value(buf, "X-Modeld-Job-Id", r->job_id, sizeof r->job_id);
        snprintf(r->body, sizeof r->body, "%s", end + 4);
    }
    pthread_mutex_unlock(&r->mu);
    char answer[128];
    int an = snprintf(answer, sizeof answer,
                      "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
    /* counted before the answer leaves: the client may check the count as soon as it has it */
    atomic_fetch_add(&r->count, 1);
    if (write(c, answer, (size_t)an) != an)
        perror("receiver write");
}

static void *receiver_main(void *arg)
{
    receiver *r = arg;
    while (!atomic_load(&r->stop)) {
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            continue;
        serve_one(r, c);
        close(c);
    }
    return NULL;
}

static void receiver_start(receiver *r, const int *statuses, int n)
{
    memset(r, 0, sizeof *r);
    memcpy(r->statuses, statuses, (size_t)n * sizeof *statuses);
    r->nstatus = n;
    pthread_mutex_init(&r->mu, NULL);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(r->fd, 8), 0);
    assert_int_equal(getsockname(r->fd, (struct sockaddr *)&a, &len), 0);
    r->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&r->th, NULL, receiver_main, r), 0);
}

static void receiver_stop(receiver *r)
{
    atomic_store(&r->stop, true);
    pthread_join(r->th, NULL);
    close(r->fd);
    pthread_mutex_destroy(&r->mu);
}

/* ---- delivery -------------------------------------------------------------------------------- */

static jobs *open_jobs(tu_store *ts, int attempts)
{
    jobs *j = NULL;
    job_opts o = {.store = ts->s,
                  .clock = &ts->clk.clock,
                  .schedule_ms = -1,
                  .callback_allow_hosts = "127.0.0.1",
                  .callback_secret = SECRET,
                  .callback_attempts = attempts,
                  .callback_backoff_ms = 1000,
                  .callback_timeout_ms = 5000,
                  .callback_poll_ms = -1};
    assert_int_equal(job_open(&o, &j, NULL), MD_OK);
    return j;
}

/* Submit a job with a callback to r and end it (CANCELLED: a queued job ends at once). */
static job_info submit_and_end(jobs *j, int port)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
    job_submit_in in = {
        .kind = "predict-bulk", .params_json = "{\"model\":\"m\"}", .callback_url = url};
    job_info info;
    md_err e = {0};
    assert_int_equal(job_submit(j, &in, &info, &e), MD_OK);
    size_t n = 9;
    assert_int_equal(job_callback_tick(j, &n, &e), MD_OK); /* not ended: nothing */
    assert_int_equal(n, 0);
    assert_int_equal(job_cancel(j, info.id, NULL, &e), MD_OK);
    return info;
}

static size_t tick(jobs *j)
{
    size_t n = 99;
    md_err e = {0};
    assert_int_equal(job_callback_tick(j, &n, &e), MD_OK);
    return n;
}

static void test_retry_then_delivered(void **state)
{
    tu_store *ts = *state;
    receiver r;
    receiver_start(&r, (int[]){500, 200}, 2);
    jobs *j = open_jobs(ts, 5);
    job_info info = submit_and_end(j, r.port);

    assert_int_equal(tick(j), 0); /* the 500 */
    assert_int_equal(atomic_load(&r.count), 1);
    job_callback cb;
    assert_int_equal(job_callback_get(j, info.id, &cb, NULL), MD_OK);
    assert_int_equal(cb.state, STORE_CB_PENDING);
    assert_int_equal(cb.attempts, 1);
    assert_int_equal(cb.next_try_ms, ts->clk.ms + 1000);
    assert_string_equal(cb.last_error, "the receiver answered 500");
    assert_int_equal(tick(j), 0); /* not due yet */
    assert_int_equal(atomic_load(&r.count), 1);

    /* a restart keeps the retry */
    job_close(j);
    j = open_jobs(ts, 5);
    ts->clk.ms += 1000;
    assert_int_equal(tick(j), 1);
    assert_int_equal(atomic_load(&r.count), 2);
    assert_int_equal(tick(j), 0);
    assert_int_equal(job_callback_get(j, info.id, &cb, NULL), MD_OK);
    assert_int_equal(cb.state, STORE_CB_DELIVERED);
    assert_int_equal(cb.attempts, 2);

    /* what the receiver got: the documented body, signed */
    pthread_mutex_lock(&r.mu);
    assert_string_equal(r.job_id, info.id);
    char want[512], sig[JOB_CB_SIG_MAX];
    snprintf(want, sizeof want,
             "{\"job_id\":\"%s\",\"kind\":\"predict-bulk\",\"state\":\"CANCELLED\",", info.id);
    assert_memory_equal(r.body, want, strlen(want));
    assert_non_null(strstr(r.body, "\"params\":{\"model\":\"m\"},\"result_meta\":{}}"));
    assert_int_equal(
        job_callback_sign(SECRET, ts->clk.ms / 1000, r.body, strlen(r.body), sig, sizeof sig),
        MD_OK);
    assert_string_equal(r.sig, sig);
    pthread_mutex_unlock(&r.mu);
    job_close(j);
    receiver_stop(&r);
}

static void test_attempts_run_out(void **state)
{
    tu_store *ts = *state;
    receiver r;
    receiver_start(&r, (int[]){503}, 1);
    jobs *j = open_jobs(ts, 3);
    job_info info = submit_and_end(j, r.port);
    job_callback cb;
    int64_t delays[] = {1000, 2000}; /* doubling */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tick(j), 0);
        assert_int_equal(job_callback_get(j, info.id, &cb, NULL), MD_OK);
        if (i < 2) {
            assert_int_equal(cb.next_try_ms, ts->clk.ms + delays[i]);
            ts->clk.ms = cb.next_try_ms;
        }
    }
    assert_int_equal(atomic_load(&r.count), 3);
    assert_int_equal(cb.state, STORE_CB_FAILED);
    assert_string_equal(cb.last_error, "the receiver answered 503");
    ts->clk.ms += 3600 * 1000;
    assert_int_equal(tick(j), 0);
    assert_int_equal(atomic_load(&r.count), 3);
    job_close(j);
    receiver_stop(&r);
}

static void test_refused_connection_and_submission(void **state)
{
    tu_store *ts = *state;
    receiver r;
    receiver_start(&r, (int[]){200}, 1);
    int port = r.port;
    receiver_stop(&r); /* nothing listens on port any more */
    jobs *j = open_jobs(ts, 2);
    job_info info = submit_and_end(j, port);
    assert_int_equal(tick(j), 0);
    job_callback cb;
    assert_int_equal(job_callback_get(j, info.id, &cb, NULL), MD_OK);
    assert_int_equal(cb.state, STORE_CB_PENDING);
    assert_true(cb.last_error[0] != '\0');

    /* refused at submission: no job */
    md_err e = {0};
    job_submit_in in = {.kind = "predict-bulk", .callback_url = "http://example.com/hook"};
    assert_int_equal(job_submit(j, &in, NULL, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "callback_url");
    job_submit_in batch[1] = {{.kind = "predict-bulk", .callback_url = "http://127.0.0.1/x"}};
    job_batch b;
    assert_int_equal(job_submit_batch(j, batch, 1, &b, NULL, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "callback_url");
    job_filter flt = {.state = -1};
    job_info *list = NULL;
    size_t n = 0;
    assert_int_equal(job_list(j, &flt, &list, &n, NULL, NULL), MD_OK);
    assert_int_equal(n, 1);
    free(list);
    assert_int_equal(job_callback_get(j, "j_none", &cb, &e), MD_E_NOT_FOUND);
    job_close(j);

    /* hosts allowed without a secret to sign with: refused at open */
    job_opts o = {.store = ts->s, .callback_allow_hosts = "127.0.0.1"};
    jobs *bad = NULL;
    assert_int_equal(job_open(&o, &bad, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "callback_secret");
    assert_null(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_signature_vector),
        cmocka_unit_test_setup_teardown(test_retry_then_delivered, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_attempts_run_out, tu_store_setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_refused_connection_and_submission, tu_store_setup,
                                        tu_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
