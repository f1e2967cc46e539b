/* chain_test.c - the middleware chain through the loopback runner (no socket): error bodies,
 * 404/405/413, auth matrix with a fake auth hook, 429 and rate headers, request ids, gzip,
 * CORS, handler errors rendered from the error table, body sinks, file replies, audit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "http/http_loopback.h"

#include <fcntl.h>

typedef struct fake {
    int rate_calls, rate_limit;
    int audits;
    char last_audit_route[64];
    int last_audit_status;
    size_t sink_bytes;
    int sink_calls;
} fake;

static fake F;

static int fake_auth(void *ctx, const char *authz, const char *xkey, http_identity *id, md_err *err)
{
    (void)ctx;
    const char *k = authz && strncmp(authz, "Bearer ", 7) == 0 ? authz + 7 : xkey;
    if (!k)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "missing credentials");
    if (strcmp(k, "read-key") == 0 || strcmp(k, "admin-key") == 0) {
        snprintf(id->key_id, sizeof id->key_id, "%s", k);
        id->role = k[0] == 'r' ? HTTP_ROLE_READ : HTTP_ROLE_ADMIN;
        return MD_OK;
    }
    return md_fail(err, MD_E_UNAUTHORIZED, NULL, "invalid API key");
}

static int fake_rate(void *ctx, const http_identity *id, const char *ip, http_rate_info *info)
{
    (void)ctx;
    (void)id;
    (void)ip;
    F.rate_calls++;
    info->limit = F.rate_limit;
    info->remaining = F.rate_limit - F.rate_calls > 0 ? F.rate_limit - F.rate_calls : 0;
    info->reset_s = 3;
    info->retry_s = 2;
    return F.rate_calls > F.rate_limit ? MD_E_RATE_LIMITED : MD_OK;
}

static void fake_audit(void *ctx, const http_audit_entry *e)
{
    (void)ctx;
    F.audits++;
    snprintf(F.last_audit_route, sizeof F.last_audit_route, "%s", e->route);
    F.last_audit_status = e->status;
}

static int h_hello(http_req *r, void *ctx)
{
    (void)ctx;
    const char *who = http_req_query(r, "who");
    return http_reply_json(r, 200, json_pack("{s:s, s:s}", "hello", who ? who : "world", "id",
                                             http_req_param(r, "id") ? http_req_param(r, "id") : ""));
}

static int h_fail(http_req *r, void *ctx)
{
    (void)ctx;
    return md_fail(http_req_err(r), MD_E_INVALID_PARAM, "threshold", "must be in 0..1, got %d", 7);
}

static int h_full(http_req *r, void *ctx)
{
    (void)ctx;
    return md_fail(http_req_err(r), MD_E_STORAGE_FULL, NULL, NULL);
}

/* A 503 whose handler knows when to come back: its Retry-After is kept, not doubled. */
static int h_busy(http_req *r, void *ctx)
{
    (void)ctx;
    http_reply_header(r, "Retry-After", "7");
    return md_fail(http_req_err(r), MD_E_UNAVAILABLE, NULL, "warming up");
}

static int h_noreply(http_req *r, void *ctx)
{
    (void)r;
    (void)ctx;
    return MD_OK;
}

static int h_big(http_req *r, void *ctx)
{
    (void)ctx;
    char *s = malloc(20000);
    for (int i = 0; i < 20000; i++)
        s[i] = "abcdefgh"[i % 8];
    return http_reply_take(r, 200, "text/plain", s, 20000);
}

static int h_echo(http_req *r, void *ctx)
{
    (void)ctx;
    json_t *j;
    int rc = http_req_json(r, &j);
    if (rc != MD_OK)
        return rc;
    return http_reply_json(r, 201, j);
}

static int h_sink_done(http_req *r, void *ctx)
{
    (void)ctx;
    size_t n;
    assert_null(http_req_body(r, &n));
    return http_reply_json(r, 200, json_pack("{s:I}", "bytes", (json_int_t)F.sink_bytes));
}

static int sink(http_req *r, const char *data, size_t len, void *ctx)
{
    (void)r;
    (void)ctx;
    (void)data;
    F.sink_calls++;
    F.sink_bytes += len;
    return MD_OK;
}

static char file_path[64];

static int h_file(http_req *r, void *ctx)
{
    (void)ctx;
    http_reply_header(r, "Cache-Control", "max-age=60");
    return http_reply_file(r, 200, "text/plain", http_req_param(r, "name")[0] == 'x' ? file_path : "/nonexistent");
}

/* A streamed body: "0123456789" repeated, 3 bytes per read call (a stream may give fewer than
 * asked only at its end, so the loopback and libmicrohttpd loop); /stream/fail stops after 4
 * bytes with an error; releases are counted. */
typedef struct gen {
    size_t pos, size, fail_at;
} gen;
static int released;

static int gen_read(void *ctx, void *buf, size_t cap, size_t *got)
{
    gen *g = ctx;
    *got = 0;
    char *out = buf;
    while (*got < cap && g->pos < g->size) {
        if (g->pos == g->fail_at)
            return *got ? MD_OK : MD_E_IO; /* what came before, then the failure */
        out[(*got)++] = (char)('0' + g->pos++ % 10);
    }
    return MD_OK;
}

static void gen_release(void *ctx)
{
    released++;
    free(ctx);
}

static int h_stream(http_req *r, void *ctx)
{
    (void)ctx;
    gen *g = calloc(1, sizeof *g);
    *g = (gen){.size = 25, .fail_at = strcmp(http_req_param(r, "how"), "fail") == 0 ? 4 : 99};
    int rc = http_reply_stream(r, 200, "text/plain", g->size, gen_read, gen_release, g);
    if (rc == MD_OK && strcmp(http_req_param(r, "how"), "twice") == 0) {
        gen *g2 = calloc(1, sizeof *g2); /* a second reply is refused, its stream released */
        assert_int_equal(http_reply_stream(r, 200, "text/plain", 1, gen_read, gen_release, g2),
                         MD_E_INTERNAL);
    }
    return rc;
}

static int h_fd(http_req *r, void *ctx)
{
    (void)ctx;
    int fd = open(file_path, O_RDONLY);
    return http_reply_fd(r, 200, "text/plain", fd, 4); /* the first 4 bytes: "file" */
}

static http_server *srv;

static int setup(void **state)
{
    (void)state;
    http_opts o = {.body_limit = 1000, .cors_origins = "https://app.example", .gzip_min = 100};
    o.hooks = (http_hooks){.authenticate = fake_auth, .rate_limit = fake_rate, .audit = fake_audit};
    assert_int_equal(http_server_new(&o, &srv, NULL), MD_OK);
    assert_non_null(http_route_add(srv, "GET", "/hello/{id}", HTTP_ROLE_PUBLIC, HTTP_NO_RATELIMIT, h_hello, NULL));
    assert_non_null(http_route_add(srv, "GET", "/read", HTTP_ROLE_READ, HTTP_LIGHT, h_hello, NULL));
    assert_non_null(http_route_add(srv, "POST", "/admin", HTTP_ROLE_ADMIN, HTTP_HEAVY, h_echo, NULL));
    assert_non_null(http_route_add(srv, "POST", "/echo", HTTP_ROLE_PUBLIC, HTTP_NO_RATELIMIT, h_echo, NULL));
    assert_non_null(http_route_add(srv, "GET", "/fail", HTTP_ROLE_PUBLIC, HTTP_NO_RATELIMIT, h_fail, NULL));
    assert_non_null(http_route_add(srv, "GET", "/noreply", HTTP_ROLE_PUBLIC, HTTP_NO_RATELIMIT, h_noreply, NULL));
    assert_non_null(http_route_add(srv, "GET", "/full", HTTP_ROLE_PUBLIC, HTTP_NO_RATELIMIT, h_full, NULL));
    assert_non_null(http_route_add(srv, "GET", "/busy", HTTP_ROLE_PUBLIC, HTTP_NO_RATELIMIT, h_busy, NULL));
    assert_non_null(http_route_add(srv, "GET", "/big", HTTP_ROLE_PUBLIC, HTTP_NO_RATELIMIT, h_big, NULL));
    assert_non_null(http_route_add(srv, "GET", "/file/{name}", HTTP_ROLE_PUBLIC, HTTP_NO_RATELIMIT, h_file, NULL));
    assert_non_null(http_route_add(srv, "GET", "/stream/{how}", HTTP_ROLE_PUBLIC, HTTP_NO_RATELIMIT, h_stream, NULL));
    assert_non_null(http_route_add(srv, "GET", "/fd", HTTP_ROLE_PUBLIC, HTTP_NO_RATELIMIT, h_fd, NULL));
    http_route *up = http_route_add(srv, "POST", "/upload", HTTP_ROLE_PUBLIC, HTTP_NO_RATELIMIT, h_sink_done, NULL);
    assert_non_null(up);
    http_route_body_limit(up, 300000);
    http_route_body_sink(up, sink);
    assert_null(http_route_add(srv, "GET", "/hello/{id}", HTTP_ROLE_PUBLIC, 0, h_hello, NULL));
    snprintf(file_path, sizeof file_path, "/tmp/modeld_chain_test_%d.txt", (int)getpid());
    FILE *f = fopen(file_path, "w");
    fputs("file body", f);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    http_server_free(srv);
    unlink(file_path);
    return 0;
}

static void reset(void)
{
    memset(&F, 0, sizeof F);
    F.rate_limit = 100;
}

/* Send and parse the JSON body (NULL when not JSON). */
static json_t *send(const char *m, const char *target, const char *const *h, const char *body, http_loopback_resp *out)
{
    assert_int_equal(http_loopback(srv, m, target, h, body, body ? strlen(body) : 0, out), MD_OK);
    return json_loads(out->body, 0, NULL);
}

static void assert_error(json_t *j, const char *code, const http_loopback_resp *r)
{
    assert_non_null(j);
    assert_false(json_is_true(json_object_get(j, "success")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), code);
    assert_non_null(json_string_value(json_object_get(json_object_get(j, "error"), "message")));
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), http_loopback_header(r, "X-Request-ID"));
}

static void test_ok_params_query(void **state)
{
    (void)state;
    reset();
    http_loopback_resp r;
    json_t *j = send("GET", "/hello/42?who=a%20b&x", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(j, "hello")), "a b");
    assert_string_equal(json_string_value(json_object_get(j, "id")), "42");
    assert_string_equal(http_loopback_header(&r, "Content-Type"), "application/json");
    assert_int_equal(strlen(http_loopback_header(&r, "X-Request-ID")), 32);
    json_decref(j);
    http_loopback_resp_free(&r);
}

static void test_not_found_and_method(void **state)
{
    (void)state;
    reset();
    http_loopback_resp r;
    json_t *j = send("GET", "/nothing/here", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_error(j, "not_found", &r);
    json_decref(j);
    http_loopback_resp_free(&r);
    j = send("DELETE", "/hello/1", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(http_loopback_header(&r, "Allow"), "GET, HEAD");
    assert_error(j, "method_not_allowed", &r);
    json_decref(j);
    http_loopback_resp_free(&r);
}

static void test_body_limit(void **state)
{
    (void)state;
    reset();
    char *big = malloc(1502);
    memset(big, ' ', 1501);
    big[0] = '{';
    big[1500] = '}';
    big[1501] = '\0';
    http_loopback_resp r;
    json_t *j = send("POST", "/echo", (const char *[]){"Content-Type", "application/json", NULL}, big, &r);
    assert_int_equal(r.status, 413);
    assert_error(j, "payload_too_large", &r);
    json_decref(j);
    http_loopback_resp_free(&r);
    big[999] = '}';
    big[1000] = '\0';
    j = send("POST", "/echo", (const char *[]){"Content-Type", "application/json", NULL}, big, &r);
    assert_int_equal(r.status, 201);
    json_decref(j);
    http_loopback_resp_free(&r);
    free(big);
}

static void test_json_errors_name_field(void **state)
{
    (void)state;
    reset();
    http_loopback_resp r;
    json_t *j = send("POST", "/echo", (const char *[]){"Content-Type", "application/json", NULL}, "{\"a\":", &r);
    assert_int_equal(r.status, 400);
    assert_error(j, "invalid_json", &r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "field")), "body");
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "line 1"));
    json_decref(j);
    http_loopback_resp_free(&r);
    j = send("POST", "/echo", (const char *[]){"Content-Type", "text/plain", NULL}, "{}", &r);
    assert_int_equal(r.status, 415);
    json_decref(j);
    http_loopback_resp_free(&r);
}

static void test_auth_matrix(void **state)
{
    (void)state;
    reset();
    http_loopback_resp r;
    json_t *j = send("GET", "/read", NULL, NULL, &r);
    assert_int_equal(r.status, 401);
    assert_error(j, "unauthorized", &r);
    json_decref(j);
    http_loopback_resp_free(&r);
    j = send("GET", "/read", (const char *[]){"Authorization", "Bearer wrong", NULL}, NULL, &r);
    assert_int_equal(r.status, 401);
    json_decref(j);
    http_loopback_resp_free(&r);
    j = send("GET", "/read", (const char *[]){"X-API-Key", "read-key", NULL}, NULL, &r);
    assert_int_equal(r.status, 200);
    json_decref(j);
    http_loopback_resp_free(&r);
    j = send("POST", "/admin", (const char *[]){"Authorization", "Bearer read-key", NULL}, "{}", &r);
    assert_int_equal(r.status, 403);
    assert_error(j, "forbidden", &r);
    json_decref(j);
    http_loopback_resp_free(&r);
    j = send("POST", "/admin", (const char *[]){"Authorization", "Bearer admin-key", "Content-Type", "application/json", NULL},
             "{\"k\":1}", &r);
    assert_int_equal(r.status, 201);
    json_decref(j);
    http_loopback_resp_free(&r);
}

static void test_rate_limit_headers(void **state)
{
    (void)state;
    reset();
    F.rate_limit = 1;
    http_loopback_resp r;
    json_t *j = send("GET", "/read", (const char *[]){"X-API-Key", "read-key", NULL}, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(http_loopback_header(&r, "X-RateLimit-Limit"), "1");
    assert_string_equal(http_loopback_header(&r, "X-RateLimit-Remaining"), "0");
    assert_string_equal(http_loopback_header(&r, "X-RateLimit-Reset"), "3");
    json_decref(j);
    http_loopback_resp_free(&r);
    j = send("GET", "/read", (const char *[]){"X-API-Key", "read-key", NULL}, NULL, &r);
    assert_int_equal(r.status, 429);
    assert_error(j, "rate_limited", &r);
    assert_string_equal(http_loopback_header(&r, "Retry-After"), "2");
    assert_non_null(http_loopback_header(&r, "X-RateLimit-Limit"));
    json_decref(j);
    http_loopback_resp_free(&r);
    /* routes flagged HTTP_NO_RATELIMIT never reach the limiter */
    int calls = F.rate_calls;
    j = send("GET", "/hello/1", NULL, NULL, &r);
    assert_int_equal(F.rate_calls, calls);
    assert_null(http_loopback_header(&r, "X-RateLimit-Limit"));
    json_decref(j);
    http_loopback_resp_free(&r);
}

static void test_request_id(void **state)
{
    (void)state;
    reset();
    http_loopback_resp r;
    json_t *j = send("GET", "/nope", (const char *[]){"X-Request-ID", "client-id_1.2:3", NULL}, NULL, &r);
    assert_string_equal(http_loopback_header(&r, "X-Request-ID"), "client-id_1.2:3");
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "client-id_1.2:3");
    json_decref(j);
    http_loopback_resp_free(&r);
    j = send("GET", "/hello/1", (const char *[]){"X-Request-ID", "bad id\"<script>", NULL}, NULL, &r);
    assert_int_equal(strlen(http_loopback_header(&r, "X-Request-ID")), 32);
    json_decref(j);
    http_loopback_resp_free(&r);
}

static void test_handler_errors(void **state)
{
    (void)state;
    reset();
    http_loopback_resp r;
    json_t *j = send("GET", "/fail", NULL, NULL, &r);
    assert_int_equal(r.status, 400);
    assert_error(j, "invalid_parameter", &r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "field")), "threshold");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "must be in 0..1, got 7");
    json_decref(j);
    http_loopback_resp_free(&r);
    j = send("GET", "/noreply", NULL, NULL, &r);
    assert_int_equal(r.status, 500);
    assert_error(j, "internal_error", &r);
    assert_null(http_loopback_header(&r, "Retry-After"));
    json_decref(j);
    http_loopback_resp_free(&r);
    /* 507 and 503 say when to retry; a handler's own Retry-After wins */
    j = send("GET", "/full", NULL, NULL, &r);
    assert_int_equal(r.status, 507);
    assert_error(j, "insufficient_storage", &r);
    assert_string_equal(http_loopback_header(&r, "Retry-After"), "30");
    json_decref(j);
    http_loopback_resp_free(&r);
    j = send("GET", "/busy", NULL, NULL, &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(http_loopback_header(&r, "Retry-After"), "7");
    json_decref(j);
    http_loopback_resp_free(&r);
}

static void test_gzip(void **state)
{
    (void)state;
    reset();
    http_loopback_resp r;
    json_decref(send("GET", "/big", (const char *[]){"Accept-Encoding", "br, gzip;q=0.8", NULL}, NULL, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(http_loopback_header(&r, "Content-Encoding"), "gzip");
    assert_string_equal(http_loopback_header(&r, "Vary"), "Accept-Encoding");
    assert_true(r.len < 20000);
    unsigned char out[20001];
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, 31), Z_OK);
    z.next_in = (unsigned char *)r.body;
    z.avail_in = (uInt)r.len;
    z.next_out = out;
    z.avail_out = sizeof out;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(z.total_out, 20000);
    assert_memory_equal(out, "abcdefghabcdefgh", 16);
    inflateEnd(&z);
    http_loopback_resp_free(&r);
    json_decref(send("GET", "/big", (const char *[]){"Accept-Encoding", "gzip;q=0", NULL}, NULL, &r));
    assert_null(http_loopback_header(&r, "Content-Encoding"));
    assert_int_equal(r.len, 20000);
    http_loopback_resp_free(&r);
}

static void test_cors(void **state)
{
    (void)state;
    reset();
    http_loopback_resp r;
    json_decref(send("GET", "/hello/1", (const char *[]){"Origin", "https://app.example", NULL}, NULL, &r));
    assert_string_equal(http_loopback_header(&r, "Access-Control-Allow-Origin"), "https://app.example");
    http_loopback_resp_free(&r);
    json_decref(send("GET", "/hello/1", (const char *[]){"Origin", "https://evil.example", NULL}, NULL, &r));
    assert_null(http_loopback_header(&r, "Access-Control-Allow-Origin"));
    http_loopback_resp_free(&r);
    json_decref(send("OPTIONS", "/hello/1",
         (const char *[]){"Origin", "https://app.example", "Access-Control-Request-Method", "GET", NULL}, NULL, &r));
    assert_int_equal(r.status, 204);
    assert_string_equal(http_loopback_header(&r, "Access-Control-Allow-Methods"), "GET, HEAD");
    assert_non_null(http_loopback_header(&r, "Access-Control-Allow-Headers"));
    http_loopback_resp_free(&r);
}

static void test_body_sink(void **state)
{
    (void)state;
    reset();
    size_t n = 200000;
    char *b = malloc(n + 1);
    memset(b, 'x', n);
    b[n] = '\0';
    http_loopback_resp r;
    json_t *j = send("POST", "/upload", NULL, b, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), (json_int_t)n);
    assert_true(F.sink_calls >= 2);
    json_decref(j);
    http_loopback_resp_free(&r);
    free(b);
}

static void test_file_reply(void **state)
{
    (void)state;
    reset();
    http_loopback_resp r;
    json_decref(send("GET", "/file/x", NULL, NULL, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "file body");
    assert_string_equal(http_loopback_header(&r, "Cache-Control"), "max-age=60");
    http_loopback_resp_free(&r);
    json_t *j = send("GET", "/file/y", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_error(j, "file_not_found", &r);
    json_decref(j);
    http_loopback_resp_free(&r);
}

/* http_reply_stream and http_reply_fd: the body pulled through the read callback (never
 * gzipped: it is not in memory), released once; a failed read cuts the body short. */
static void test_stream_and_fd_replies(void **state)
{
    (void)state;
    reset();
    released = 0;
    http_loopback_resp r;
    const char *const gz[] = {"Accept-Encoding", "gzip", NULL};
    assert_int_equal(http_loopback(srv, "GET", "/stream/ok", gz, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 25);
    assert_string_equal(r.body, "0123456789012345678901234");
    assert_null(http_loopback_header(&r, "Content-Encoding"));
    http_loopback_resp_free(&r);
    assert_int_equal(released, 1);
    assert_int_equal(http_loopback(srv, "GET", "/stream/fail", NULL, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 200); /* the status line went first: the body is cut */
    assert_int_equal(r.len, 4);
    http_loopback_resp_free(&r);
    assert_int_equal(released, 2);
    assert_int_equal(http_loopback(srv, "GET", "/stream/twice", NULL, NULL, 0, &r), MD_OK);
    assert_int_equal(r.len, 25);
    http_loopback_resp_free(&r);
    assert_int_equal(released, 4);
    assert_int_equal(http_loopback(srv, "GET", "/fd", NULL, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "file");
    http_loopback_resp_free(&r);
}

static void test_audit_only_state_changes(void **state)
{
    (void)state;
    reset();
    http_loopback_resp r;
    json_decref(send("GET", "/read", (const char *[]){"X-API-Key", "read-key", NULL}, NULL, &r));
    http_loopback_resp_free(&r);
    assert_int_equal(F.audits, 0);
    json_decref(send("POST", "/echo", (const char *[]){"Content-Type", "application/json", NULL}, "{}", &r));
    http_loopback_resp_free(&r);
    assert_int_equal(F.audits, 0); /* public: nobody to record */
    json_decref(send("POST", "/admin", (const char *[]){"X-API-Key", "admin-key", "Content-Type", "application/json", NULL}, "{}", &r));
    http_loopback_resp_free(&r);
    assert_int_equal(F.audits, 1);
    assert_string_equal(F.last_audit_route, "/admin");
    assert_int_equal(F.last_audit_status, 201);
}

static void test_metrics_render(void **state)
{
    (void)state;
    md_buf b;
    md_buf_init(&b, 1 << 20);
    assert_int_equal(http_metrics_render(srv, &b), MD_OK);
    assert_non_null(strstr(b.data, "modeld_http_requests_total{route=\"/hello/{id}\",method=\"GET\",status=\"200\"}"));
    assert_non_null(strstr(b.data, "modeld_http_requests_total{route=\"unmatched\",method=\"ANY\",status=\"404\"}"));
    assert_non_null(strstr(b.data, "modeld_rate_limit_rejections_total 1"));
    assert_non_null(strstr(b.data, "# TYPE modeld_http_request_duration_seconds histogram"));
    md_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok_params_query),    cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_body_limit),         cmocka_unit_test(test_json_errors_name_field),
        cmocka_unit_test(test_auth_matrix),        cmocka_unit_test(test_rate_limit_headers),
        cmocka_unit_test(test_request_id),         cmocka_unit_test(test_handler_errors),
        cmocka_unit_test(test_gzip),               cmocka_unit_test(test_cors),
        cmocka_unit_test(test_body_sink),          cmocka_unit_test(test_file_reply),
        cmocka_unit_test(test_stream_and_fd_replies),
        cmocka_unit_test(test_audit_only_state_changes), cmocka_unit_test(test_metrics_render),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
