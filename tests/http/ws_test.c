/* ws_test.c - WebSocket routes: the handshake checks and ?token= through the loopback chain, and
 * the real server on a loopback port with a minimal RFC 6455 client written here: messages both
 * ways, a producer thread whose messages all arrive before its close frame, ping/pong and a peer
 * that stops answering, the socket limit (503 before the upgrade), a slow reader closed with 1008,
 * the drain's 1001, and on_close exactly once in every case. Waits are condition variables with
 * generous caps, never timing thresholds. The WS route exists only in these test servers. */
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
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/ws_client.h"
#include "http/http_int.h"
#include "http/http_loopback.h"

/* ---- what the server side saw ---- */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int opens, closes, last_code, messages;
static char last_msg[256];

static void rec_reset(void)
{
    pthread_mutex_lock(&mu);
    opens = closes = last_code = messages = 0;
    last_msg[0] = '\0';
    pthread_mutex_unlock(&mu);
}

/* *v, read under the lock (the hub thread writes it). */
static int rec(const int *v)
{
    pthread_mutex_lock(&mu);
    int x = *v;
    pthread_mutex_unlock(&mu);
    return x;
}

/* Wait (at most 20 s) until *v reaches n; returns its value. */
static int rec_wait(int *v, int n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    pthread_mutex_lock(&mu);
    while (*v < n && pthread_cond_timedwait(&cv, &mu, &ts) == 0) {
    }
    int got = *v;
    pthread_mutex_unlock(&mu);
    return got;
}

static void *producer(void *arg)
{
    http_ws *ws = arg;
    char m[32];
    for (int i = 0; i < 200; i++) {
        int n = snprintf(m, sizeof m, "m%d", i);
        assert_int_equal(http_ws_send_text(ws, m, (size_t)n), MD_OK);
    }
    http_ws_close(ws, 1000, "done");
    assert_int_equal(http_ws_send_text(ws, "late", 4), MD_E_CONFLICT);
    http_ws_unref(ws);
    return NULL;
}

static void on_open(http_ws *ws, void *user)
{
    pthread_mutex_lock(&mu);
    opens++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    if (user && strcmp(user, "produce") == 0) { /* a producer on its own thread, as jobs do */
        pthread_t t;
        http_ws_ref(ws);
        assert_int_equal(pthread_create(&t, NULL, producer, ws), 0);
        pthread_detach(t);
        return;
    }
    http_ws_send_text(ws, "hello", 5);
}

static void on_message(http_ws *ws, const char *data, size_t len, bool binary, void *user)
{
    (void)user;
    pthread_mutex_lock(&mu);
    messages++;
    snprintf(last_msg, sizeof last_msg, "%.*s", (int)len, data);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    if (len == 5 && memcmp(data, "close", 5) == 0) {
        http_ws_send_text(ws, "bye", 3);
        http_ws_close(ws, 1000, "asked");
    } else if (len == 5 && memcmp(data, "flood", 5) == 0) {
        static char big[16384];
        memset(big, 'x', sizeof big);
        int rc = MD_OK;
        for (int i = 0; i < 10000 && rc == MD_OK; i++)
            rc = http_ws_send_text(ws, big, sizeof big);
        assert_int_equal(rc, MD_E_OVERLOADED);
    } else if (!binary) {
        http_ws_send_text(ws, data, len); /* echo */
    }
}

static void on_close(http_ws *ws, int code, void *user)
{
    (void)ws;
    (void)user;
    pthread_mutex_lock(&mu);
    closes++;
    last_code = code;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void on_tick(http_ws *ws, void *user)
{
    (void)user;
    http_ws_send_text(ws, "tick", 4);
}

static const http_ws_handler handler = {on_open, on_message, on_close, NULL, 0};
static const http_ws_handler tick_handler = {on_open, on_message, on_close, on_tick, 20};

static int h_ws(http_req *r, void *ctx)
{
    (void)ctx;
    if (http_req_query(r, "deny"))
        return md_fail(http_req_err(r), MD_E_NOT_FOUND, NULL, "no such thing");
    const char *mode = http_req_query(r, "mode");
    if (mode && strcmp(mode, "tick") == 0)
        return http_reply_ws(r, &tick_handler, NULL);
    return http_reply_ws(r, &handler, mode && strcmp(mode, "produce") == 0 ? "produce" : NULL);
}

static int h_plain(http_req *r, void *ctx)
{
    (void)ctx;
    return http_reply_bytes(r, 200, "text/plain", "ok", 2);
}

/* Credentials: "jwt-ok" is a JWT, "key-ok" an API key. */
static int fake_auth(void *ctx, const char *authz, const char *xkey, http_identity *id, md_err *err)
{
    (void)ctx;
    const char *k = authz && strncmp(authz, "Bearer ", 7) == 0 ? authz + 7 : xkey;
    if (!k || (strcmp(k, "jwt-ok") != 0 && strcmp(k, "key-ok") != 0))
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "invalid credentials");
    snprintf(id->key_id, sizeof id->key_id, "k1");
    id->role = HTTP_ROLE_READ;
    id->via_jwt = k[0] == 'j';
    return MD_OK;
}

static http_server *server(unsigned ws_max, unsigned ping_ms, size_t queue_max, bool auth)
{
    http_opts o = {.host = "127.0.0.1",
                   .io_threads = 2,
                   .compute_threads = 1,
                   .ws_max = ws_max,
                   .ws_ping_ms = ping_ms,
                   .ws_queue_max = queue_max,
                   .conn_timeout_s = 1};
    if (auth)
        o.hooks.authenticate = fake_auth;
    http_server *s = NULL;
    md_err e;
    assert_int_equal(http_server_new(&o, &s, &e), MD_OK);
    assert_non_null(http_route_add(s, "GET", "/ws", HTTP_ROLE_READ, HTTP_WS, h_ws, NULL));
    assert_non_null(http_route_add(s, "GET", "/plain", HTTP_ROLE_READ, HTTP_LIGHT, h_plain, NULL));
    assert_null(http_route_add(s, "POST", "/wspost", HTTP_ROLE_READ, HTTP_WS, h_ws, NULL));
    return s;
}

/* ---- loopback: the chain's checks ---- */

static const char *const HS[] = {"Upgrade",
                                 "websocket",
                                 "Connection",
                                 "keep-alive, Upgrade",
                                 "Sec-WebSocket-Version",
                                 "13",
                                 "Sec-WebSocket-Key",
                                 "dGhlIHNhbXBsZSBub25jZQ==",
                                 NULL};

static void expect(http_server *s, const char *target, const char *const *h, int status,
                   const char *needle)
{
    http_loopback_resp r;
    assert_int_equal(http_loopback(s, "GET", target, h, NULL, 0, &r), MD_OK);
    if (r.status != status || (needle && !strstr(r.body, needle)))
        fail_msg("%s: got %d %s, want %d with %s", target, r.status, r.body, status,
                 needle ? needle : "-");
    http_loopback_resp_free(&r);
}

static void test_accept_key(void **state)
{
    (void)state;
    char out[29];
    assert_int_equal(http__ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), MD_OK);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="); /* RFC 6455 section 1.3 */
}

static void test_handshake_checks(void **state)
{
    (void)state;
    http_server *s = server(4, 0, 0, false);
    expect(s, "/ws", NULL, 400, "\"field\":\"Upgrade\"");
    const char *const no_conn[] = {"Upgrade", "websocket", NULL};
    expect(s, "/ws", no_conn, 400, "\"field\":\"Connection\"");
    const char *const v8[] = {
        "Upgrade", "WebSocket", "Connection", "Upgrade", "Sec-WebSocket-Version", "8", NULL};
    expect(s, "/ws", v8, 400, "\"field\":\"Sec-WebSocket-Version\"");
    const char *const badkey[] = {
        "Upgrade", "websocket",         "Connection", "Upgrade", "Sec-WebSocket-Version",
        "13",      "Sec-WebSocket-Key", "short==",    NULL};
    expect(s, "/ws", badkey, 400, "\"field\":\"Sec-WebSocket-Key\"");
    expect(s, "/ws?deny=1", HS, 404, "no such thing"); /* the handler refuses before the upgrade */
    /* Accepted on a loopback request: 101, and since no socket ever comes, on_close(1006) once. */
    rec_reset();
    http_loopback_resp r;
    assert_int_equal(http_loopback(s, "GET", "/ws", HS, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 101);
    assert_string_equal(http_loopback_header(&r, "Sec-WebSocket-Accept"),
                        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    http_loopback_resp_free(&r);
    assert_int_equal(rec(&opens), 0);
    assert_int_equal(rec(&closes), 1);
    assert_int_equal(rec(&last_code), 1006);
    http_server_free(s);
}

static void test_token_auth(void **state)
{
    (void)state;
    http_server *s = server(4, 0, 0, true);
    expect(s, "/ws", HS, 401, NULL);
    expect(s, "/ws?token=jwt-ok&deny=1", HS, 404, NULL); /* a JWT in the query passes auth */
    expect(s, "/ws?token=key-ok", HS, 401,
           "\"field\":\"token\""); /* an API key in a URL does not */
    expect(s, "/ws?token=nope", HS, 401, NULL);
    const char *const both[] = {"Authorization", "Bearer jwt-ok", NULL};
    expect(s, "/ws?token=jwt-ok", both, 400, "\"field\":\"token\"");
    expect(s, "/plain?token=jwt-ok", NULL, 401, NULL); /* only WebSocket routes read ?token= */
    const char *const hdr_auth[] = {"Authorization", "Bearer key-ok", NULL};
    expect(s, "/plain", hdr_auth, 200, "ok");
    http_server_free(s);
}

/* ---- the real server ---- */

static void test_echo_and_close(void **state)
{
    (void)state;
    rec_reset();
    http_server *s = server(4, 0, 0, false);
    md_err e;
    assert_int_equal(http_server_start(s, &e), MD_OK);
    int fd = tu_ws_dial(http_server_port(s));
    char head[2048], buf[512];
    size_t n;
    assert_int_equal(tu_ws_open(fd, "/ws", NULL, head, sizeof head), 101);
    assert_non_null(strstr(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert_int_equal(tu_ws_next(fd, buf, sizeof buf, &n), 0x1);
    assert_string_equal(buf, "hello");
    sleep(2); /* past conn_timeout_s (1): libmicrohttpd's idle timeout must not touch the socket */
    tu_ws_send(fd, 0x1, "ping me", 7);
    assert_int_equal(tu_ws_next(fd, buf, sizeof buf, &n), 0x1);
    assert_string_equal(buf, "ping me");
    /* The server closes after its last message: "bye" comes before the close frame. */
    tu_ws_send(fd, 0x1, "close", 5);
    assert_int_equal(tu_ws_next(fd, buf, sizeof buf, &n), 0x1);
    assert_string_equal(buf, "bye");
    assert_int_equal(tu_ws_next(fd, buf, sizeof buf, &n), 0x8);
    assert_int_equal(tu_ws_close_code(buf, n), 1000);
    tu_ws_send(fd, 0x8, buf, 2);
    assert_int_equal(rec_wait(&closes, 1), 1);
    assert_int_equal(rec(&last_code), 1000);
    assert_int_equal(tu_ws_recv(fd, buf, sizeof buf, &n), -1); /* the server closed the TCP side */
    close(fd);
    /* A client that closes first: on_close reports its code. */
    fd = tu_ws_dial(http_server_port(s));
    assert_int_equal(tu_ws_open(fd, "/ws", NULL, head, sizeof head), 101);
    assert_int_equal(tu_ws_next(fd, buf, sizeof buf, &n), 0x1);
    tu_ws_send(fd, 0x8, "\x0f\xa0", 2); /* 4000 */
    assert_int_equal(tu_ws_next(fd, buf, sizeof buf, &n), 0x8);
    assert_int_equal(tu_ws_close_code(buf, n), 4000);
    assert_int_equal(rec_wait(&closes, 2), 2);
    assert_int_equal(rec(&last_code), 4000);
    close(fd);
    http_server_free(s);
    assert_int_equal(rec(&opens), 2);
    assert_int_equal(rec(&closes), 2);
}

static void test_producer_thread(void **state)
{
    (void)state;
    rec_reset();
    http_server *s = server(4, 0, 0, false);
    md_err e;
    assert_int_equal(http_server_start(s, &e), MD_OK);
    int fd = tu_ws_dial(http_server_port(s));
    char head[2048], buf[512], want[32];
    size_t n;
    assert_int_equal(tu_ws_open(fd, "/ws?mode=produce", NULL, head, sizeof head), 101);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(tu_ws_next(fd, buf, sizeof buf, &n), 0x1);
        snprintf(want, sizeof want, "m%d", i);
        assert_string_equal(buf, want);
    }
    assert_int_equal(tu_ws_next(fd, buf, sizeof buf, &n), 0x8);
    assert_int_equal(tu_ws_close_code(buf, n), 1000);
    tu_ws_send(fd, 0x8, buf, 2);
    assert_int_equal(rec_wait(&closes, 1), 1);
    assert_int_equal(rec(&last_code), 1000);
    close(fd);
    http_server_free(s);
}

static void test_ticks(void **state)
{
    (void)state;
    rec_reset();
    http_server *s = server(4, 0, 0, false);
    md_err e;
    assert_int_equal(http_server_start(s, &e), MD_OK);
    int fd = tu_ws_dial(http_server_port(s));
    char head[2048], buf[512];
    size_t n;
    assert_int_equal(tu_ws_open(fd, "/ws?mode=tick", NULL, head, sizeof head), 101);
    assert_int_equal(tu_ws_next(fd, buf, sizeof buf, &n), 0x1);
    assert_string_equal(buf, "hello");
    for (int i = 0; i < 3; i++) { /* the client says nothing: the ticks come by themselves */
        assert_int_equal(tu_ws_next(fd, buf, sizeof buf, &n), 0x1);
        assert_string_equal(buf, "tick");
    }
    close(fd);
    http_server_free(s);
    assert_int_equal(rec(&closes), 1);
}

static void test_limit_503(void **state)
{
    (void)state;
    rec_reset();
    http_server *s = server(2, 0, 0, false);
    md_err e;
    assert_int_equal(http_server_start(s, &e), MD_OK);
    char head[2048], buf[512];
    size_t n;
    int a = tu_ws_dial(http_server_port(s)), b = tu_ws_dial(http_server_port(s)),
        c = tu_ws_dial(http_server_port(s));
    assert_int_equal(tu_ws_open(a, "/ws", NULL, head, sizeof head), 101);
    assert_int_equal(tu_ws_open(b, "/ws", NULL, head, sizeof head), 101);
    assert_int_equal(tu_ws_open(c, "/ws", NULL, head, sizeof head), 503);
    assert_non_null(strcasestr(head, "Retry-After: 1"));
    close(c);
    /* One closes: its slot is free again. */
    assert_int_equal(tu_ws_next(a, buf, sizeof buf, &n), 0x1);
    tu_ws_send(a, 0x8, "\x03\xe8", 2);
    assert_int_equal(tu_ws_next(a, buf, sizeof buf, &n), 0x8);
    assert_int_equal(rec_wait(&closes, 1), 1);
    close(a);
    c = tu_ws_dial(http_server_port(s));
    assert_int_equal(tu_ws_open(c, "/ws", NULL, head, sizeof head), 101);
    close(b);
    close(c);
    assert_int_equal(rec_wait(&closes, 3), 3); /* dropped peers are noticed and counted too */
    http_server_free(s);
}

static void test_ping_and_silent_peer(void **state)
{
    (void)state;
    rec_reset();
    http_server *s = server(4, 50, 0, false);
    md_err e;
    assert_int_equal(http_server_start(s, &e), MD_OK);
    char head[2048], buf[512];
    size_t n;
    int fd = tu_ws_dial(http_server_port(s));
    assert_int_equal(tu_ws_open(fd, "/ws", NULL, head, sizeof head), 101);
    assert_int_equal(tu_ws_recv(fd, buf, sizeof buf, &n), 0x1); /* hello */
    /* Answer three pings: still open (the echo proves it). */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tu_ws_recv(fd, buf, sizeof buf, &n), 0x9);
        tu_ws_send(fd, 0xA, buf, n);
    }
    tu_ws_send(fd, 0x1, "alive", 5);
    assert_int_equal(tu_ws_next(fd, buf, sizeof buf, &n), 0x1);
    assert_string_equal(buf, "alive");
    assert_int_equal(rec(&closes), 0);
    /* Now stop answering: the server drops the socket (1006) and on_close runs. */
    int op;
    do {
        op = tu_ws_recv(fd, buf, sizeof buf, &n);
    } while (op == 0x9);
    assert_int_equal(op, -1);
    assert_int_equal(rec_wait(&closes, 1), 1);
    assert_int_equal(rec(&last_code), 1006);
    close(fd);
    http_server_free(s);
}

static void test_slow_reader(void **state)
{
    (void)state;
    rec_reset();
    http_server *s = server(4, 0, 64 * 1024, false);
    md_err e;
    assert_int_equal(http_server_start(s, &e), MD_OK);
    char head[2048];
    int fd = tu_ws_dial(http_server_port(s));
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    assert_int_equal(tu_ws_open(fd, "/ws", NULL, head, sizeof head), 101);
    tu_ws_send(fd, 0x1, "flood", 5); /* the handler asserts that a send was refused */
    /* Without reading a byte, the socket is closed for us within the close deadline. */
    assert_int_equal(rec_wait(&closes, 1), 1);
    int code = rec(&last_code);
    assert_true(code == 1008 || code == 1006);
    close(fd);
    http_server_free(s);
}

static void test_drain_1001(void **state)
{
    (void)state;
    rec_reset();
    http_server *s = server(4, 0, 0, false);
    md_err e;
    assert_int_equal(http_server_start(s, &e), MD_OK);
    char head[2048], buf[512];
    size_t n;
    int fd = tu_ws_dial(http_server_port(s));
    assert_int_equal(tu_ws_open(fd, "/ws", NULL, head, sizeof head), 101);
    assert_int_equal(tu_ws_next(fd, buf, sizeof buf, &n), 0x1);
    /* The drain closes it with 1001 and waits for our close frame, answered from this thread
     * after the drain returns (it does not wait forever for it). */
    assert_int_equal(http_server_drain(s, 2000), 0);
    assert_int_equal(rec(&closes), 1);
    assert_int_equal(tu_ws_next(fd, buf, sizeof buf, &n), 0x8);
    assert_int_equal(tu_ws_close_code(buf, n), 1001);
    close(fd);
    http_server_free(s);
}

/* ---- the frame reader alone (what the fuzz target drives) ---- */

static void test_detached_reader(void **state)
{
    (void)state;
    rec_reset();
    http_ws *ws;
    assert_int_equal(http__ws_detached_new(&handler, NULL, 1024, &ws), MD_OK);
    /* "Hello" masked, split across two inputs (RFC 6455 section 5.7). */
    const unsigned char hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    assert_int_equal(http__ws_detached_input(ws, hello, 4), MD_OK);
    assert_int_equal(rec(&messages), 0);
    assert_int_equal(http__ws_detached_input(ws, hello + 4, sizeof hello - 4), MD_OK);
    assert_int_equal(rec(&messages), 1);
    assert_string_equal(last_msg, "Hello");
    /* An unmasked frame from a client is a protocol error: closed (1002), on_close once. */
    const unsigned char unmasked[] = {0x81, 0x02, 'h', 'i'};
    assert_int_equal(http__ws_detached_input(ws, unmasked, sizeof unmasked), MD_E_CONFLICT);
    assert_int_equal(rec(&closes), 1);
    assert_int_equal(rec(&last_code), 1002);
    http__ws_detached_free(ws);
    assert_int_equal(rec(&closes), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key),      cmocka_unit_test(test_handshake_checks),
        cmocka_unit_test(test_token_auth),      cmocka_unit_test(test_echo_and_close),
        cmocka_unit_test(test_producer_thread), cmocka_unit_test(test_ticks),
        cmocka_unit_test(test_limit_503),       cmocka_unit_test(test_ping_and_silent_peer),
        cmocka_unit_test(test_slow_reader),     cmocka_unit_test(test_drain_1001),
        cmocka_unit_test(test_detached_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
