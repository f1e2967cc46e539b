/* server_test.c - the real libmicrohttpd server on a loopback port: keep-alive across
 * requests, HEAD, heavy handlers through suspend/resume, 503 + Retry-After when the compute
 * queue is full, 504 at the deadline, early 413 from Content-Length, and a drain that lets an
 * in-flight request finish. Handlers are held with condition variables, never with sleeps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "http/http_int.h"

/* ---- a gate that holds handlers ---- */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int started, open_gate;

static void gate_reset(void)
{
    pthread_mutex_lock(&mu);
    started = 0;
    open_gate = 0;
    pthread_mutex_unlock(&mu);
}

static void gate_open(void)
{
    pthread_mutex_lock(&mu);
    open_gate = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void gate_wait_started(int n)
{
    pthread_mutex_lock(&mu);
    while (started < n)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static int h_held(http_req *r, void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&mu);
    started++;
    pthread_cond_broadcast(&cv);
    while (!open_gate)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return http_reply_bytes(r, 200, "text/plain", "held", 4);
}

/* Waits until its request's cancel token is cancelled (by the reaper or the drain, not by its
 * deadline alone: that is the point), at most 20 s, and records that it saw the cancel. */
static atomic_int saw_cancel;

static int h_until_cancelled(http_req *r, void *ctx)
{
    (void)ctx;
    md_cancel *c = (md_cancel *)http_req_cancel(r);
    pthread_mutex_lock(&mu);
    started++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 20000 && !atomic_load(&c->cancelled); i++)
        usleep(1000);
    atomic_store(&saw_cancel, atomic_load(&c->cancelled));
    int rc = md_cancel_check(c, "test", http_req_err(r));
    return rc != MD_OK ? rc : http_reply_bytes(r, 200, "text/plain", "late", 4);
}

static int h_fast(http_req *r, void *ctx)
{
    (void)ctx;
    return http_reply_bytes(r, 200, "text/plain", "fast", 4);
}

/* ---- a minimal HTTP/1.1 client ---- */
typedef struct resp {
    int status;
    char head[4096];
    char body[4096];
    size_t body_len;
} resp;

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void say(int fd, const char *s) { assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s)); }

static const char *hdr(const resp *r, const char *name)
{
    static _Thread_local char v[256]; /* per thread: background clients read at once */
    size_t n = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *s = p + 3 + n + strspn(p + 3 + n, " ");
            size_t l = strcspn(s, "\r");
            snprintf(v, sizeof v, "%.*s", (int)l, s);
            return v;
        }
    }
    return NULL;
}

/* Read one response (head + Content-Length body). 0 on success, -1 on EOF/timeout. */
static int hear(int fd, resp *r, bool head_only)
{
    memset(r, 0, sizeof *r);
    size_t n = 0;
    while (!strstr(r->head, "\r\n\r\n")) {
        if (n + 1 >= sizeof r->head || read(fd, r->head + n, 1) != 1)
            return -1;
        n++;
    }
    sscanf(r->head, "HTTP/1.1 %d", &r->status);
    const char *cl = hdr(r, "Content-Length");
    size_t want = cl && !head_only ? (size_t)atol(cl) : 0;
    while (r->body_len < want && r->body_len < sizeof r->body - 1) {
        ssize_t k = read(fd, r->body + r->body_len, want - r->body_len);
        if (k <= 0)
            return -1;
        r->body_len += (size_t)k;
    }
    return 0;
}

static resp ask(uint16_t port, const char *req)
{
    resp r;
    int fd = dial(port);
    assert_true(fd >= 0);
    say(fd, req);
    assert_int_equal(hear(fd, &r, false), 0);
    close(fd);
    return r;
}

/* The inline predicate of /maybe: run on the I/O thread when the client says the work is small. */
static int small_if_asked(http_req *req, void *ctx)
{
    (void)ctx;
    const char *v = http_req_header(req, "X-Small");
    return v && strcmp(v, "1") == 0;
}

static http_server *start(unsigned threads, unsigned queue, unsigned timeout_ms)
{
    http_server *s;
    http_opts o = {.host = "127.0.0.1", .port = 0, .io_threads = 2, .compute_threads = threads,
                   .compute_queue = queue, .request_timeout_ms = timeout_ms, .body_limit = 1000};
    assert_int_equal(http_server_new(&o, &s, NULL), MD_OK);
    assert_non_null(http_route_add(s, "GET", "/fast", HTTP_ROLE_PUBLIC, HTTP_LIGHT, h_fast, NULL));
    assert_non_null(http_route_add(s, "GET", "/heavy", HTTP_ROLE_PUBLIC, HTTP_HEAVY, h_fast, NULL));
    assert_non_null(http_route_add(s, "GET", "/held", HTTP_ROLE_PUBLIC, HTTP_HEAVY, h_held, NULL));
    http_route *maybe = http_route_add(s, "GET", "/maybe", HTTP_ROLE_PUBLIC, HTTP_HEAVY, h_fast, NULL);
    assert_non_null(maybe);
    http_route_inline_if(maybe, small_if_asked);
    assert_non_null(
        http_route_add(s, "GET", "/cancel", HTTP_ROLE_PUBLIC, HTTP_HEAVY, h_until_cancelled, NULL));
    assert_non_null(http_route_add(s, "POST", "/post", HTTP_ROLE_PUBLIC, HTTP_LIGHT, h_fast, NULL));
    md_err e;
    assert_int_equal(http_server_start(s, &e), MD_OK);
    assert_true(http_server_port(s) > 0);
    return s;
}

static void test_keepalive_head_heavy(void **state)
{
    (void)state;
    http_server *s = start(2, 4, 10000);
    int fd = dial(http_server_port(s));
    resp r;
    say(fd, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(hear(fd, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "fast");
    assert_non_null(hdr(&r, "X-Request-ID"));
    /* the same connection serves the next requests: keep-alive survived */
    say(fd, "GET /heavy HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\r\n\r\n");
    assert_int_equal(hear(fd, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "X-Request-ID"), "abc");
    say(fd, "HEAD /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(hear(fd, &r, true), 0);
    assert_int_equal(r.status, 200);
    say(fd, "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(hear(fd, &r, false), 0);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"not_found\""));
    say(fd, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(hear(fd, &r, false), 0);
    assert_int_equal(r.status, 200);
    close(fd);
    http_server_free(s);
}

static void test_early_413(void **state)
{
    (void)state;
    http_server *s = start(1, 1, 10000);
    /* headers only: the answer must come before any body byte is sent */
    resp r = ask(http_server_port(s), "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n");
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "payload_too_large"));
    r = ask(http_server_port(s), "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert_int_equal(r.status, 200);
    http_server_free(s);
}

typedef struct bg {
    uint16_t port;
    const char *req;
    resp r;
    pthread_t t;
} bg;

static void *bg_run(void *arg)
{
    bg *b = arg;
    int fd = dial(b->port);
    if (fd >= 0) {
        say(fd, b->req);
        hear(fd, &b->r, false);
        close(fd);
    }
    return NULL;
}

static void bg_start(bg *b, uint16_t port, const char *req)
{
    b->port = port;
    b->req = req;
    pthread_create(&b->t, NULL, bg_run, b);
}

static bool queue_depth_is(http_server *s, const char *want)
{
    md_buf m;
    md_buf_init(&m, 1 << 20);
    http_metrics_render(s, &m);
    bool ok = strstr(m.data, want) != NULL;
    md_buf_free(&m);
    return ok;
}

static void test_overload_503(void **state)
{
    (void)state;
    gate_reset();
    http_server *s = start(1, 1, 60000);
    uint16_t port = http_server_port(s);
    bg a, b;
    bg_start(&a, port, "GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
    gate_wait_started(1); /* the only worker is busy */
    bg_start(&b, port, "GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
    while (!queue_depth_is(s, "modeld_compute_queue_depth 1\n"))
        usleep(1000); /* the queue (size 1) is full */
    resp r = ask(port, "GET /heavy HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(r.status, 503);
    assert_string_equal(hdr(&r, "Retry-After"), "1");
    assert_non_null(strstr(r.body, "\"overloaded\""));
    r = ask(port, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"); /* light routes are unaffected */
    assert_int_equal(r.status, 200);
    gate_open();
    pthread_join(a.t, NULL);
    pthread_join(b.t, NULL);
    assert_int_equal(a.r.status, 200);
    assert_int_equal(b.r.status, 200);
    assert_true(queue_depth_is(s, "modeld_compute_rejections_total 1\n"));
    http_server_free(s);
}

/* A heavy route's inline predicate keeps a small request on the I/O thread: it is answered while
 * the only compute worker is held, and counted; a request the predicate declines takes the pool. */
static void test_inline_predicate(void **state)
{
    (void)state;
    gate_reset();
    http_server *s = start(1, 4, 60000);
    uint16_t port = http_server_port(s);
    bg a;
    bg_start(&a, port, "GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
    gate_wait_started(1); /* the only worker is busy */
    resp r = ask(port, "GET /maybe HTTP/1.1\r\nHost: x\r\nX-Small: 1\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "fast");
    assert_true(queue_depth_is(s, "modeld_compute_inline_total 1\n"));
    assert_true(queue_depth_is(s, "modeld_compute_workers_busy 1\n"));
    gate_open();
    pthread_join(a.t, NULL);
    assert_int_equal(a.r.status, 200);
    r = ask(port, "GET /maybe HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_true(queue_depth_is(s, "modeld_compute_inline_total 1\n"));
    http_server_free(s);
}

static void test_deadline_504(void **state)
{
    (void)state;
    gate_reset();
    http_server *s = start(1, 4, 200);
    resp r = ask(http_server_port(s), "GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(r.status, 504);
    assert_non_null(strstr(r.body, "\"timeout\""));
    assert_non_null(hdr(&r, "X-Request-ID"));
    gate_open(); /* the handler finishes late; its answer is dropped */
    r = ask(http_server_port(s), "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_true(queue_depth_is(s, "modeld_request_timeouts_total 1\n"));
    http_server_free(s);
}

/* Past the deadline the reaper answers 504 and cancels the request's token: the worker sees it,
 * stops, and its pool slot (the only one) serves the next request. */
static void test_deadline_cancels_the_worker(void **state)
{
    (void)state;
    gate_reset();
    atomic_store(&saw_cancel, 0);
    http_server *s = start(1, 4, 300);
    resp r = ask(http_server_port(s), "GET /cancel HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(r.status, 504);
    r = ask(http_server_port(s), "GET /heavy HTTP/1.1\r\nHost: x\r\n\r\n"); /* queued behind it */
    assert_int_equal(r.status, 200);
    assert_int_equal(atomic_load(&saw_cancel), 1);
    http_server_free(s);
}

typedef struct drainer {
    http_server *s;
    int left;
    pthread_t t;
} drainer;

static void *drain_run(void *arg)
{
    drainer *d = arg;
    d->left = http_server_drain(d->s, 30000);
    return NULL;
}

static void test_drain_finishes_inflight(void **state)
{
    (void)state;
    gate_reset();
    http_server *s = start(2, 4, 60000);
    uint16_t port = http_server_port(s);
    bg a;
    bg_start(&a, port, "GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
    gate_wait_started(1);
    drainer d = {s, -1, 0};
    pthread_create(&d.t, NULL, drain_run, &d);
    while (!atomic_load(&s->draining))
        usleep(1000);
    gate_open();
    pthread_join(a.t, NULL);
    pthread_join(d.t, NULL);
    assert_int_equal(a.r.status, 200);
    assert_string_equal(a.r.body, "held");
    assert_string_equal(hdr(&a.r, "Connection"), "close");
    assert_int_equal(d.left, 0);
    assert_true(dial(port) < 0); /* no longer listening */
    http_server_free(s);
}

/* A drain that runs out of time answers 503 to what still runs and cancels it, so the drain
 * (which joins the workers) ends without waiting for the work. */
static void test_drain_timeout_cancels(void **state)
{
    (void)state;
    gate_reset();
    atomic_store(&saw_cancel, 0);
    http_server *s = start(1, 4, 60000);
    bg a;
    bg_start(&a, http_server_port(s), "GET /cancel HTTP/1.1\r\nHost: x\r\n\r\n");
    gate_wait_started(1);
    assert_int_equal(http_server_drain(s, 100), 1); /* one request was still running */
    assert_int_equal(atomic_load(&saw_cancel), 1); /* the worker stopped on the cancel */
    pthread_join(a.t, NULL);
    assert_int_equal(a.r.status, 503);
    assert_non_null(strstr(a.r.body, "shutting down"));
    http_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keepalive_head_heavy), cmocka_unit_test(test_early_413),
        cmocka_unit_test(test_overload_503),         cmocka_unit_test(test_deadline_504),
        cmocka_unit_test(test_inline_predicate),
        cmocka_unit_test(test_drain_finishes_inflight),
        cmocka_unit_test(test_deadline_cancels_the_worker),
        cmocka_unit_test(test_drain_timeout_cancels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
