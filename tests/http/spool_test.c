/* spool_test.c - bodies spooled to a file (http_route_body_to_file): the handler sees the whole
 * body in the file and none in memory, the file goes away after the request unless the handler
 * took it, refused requests (auth, Content-Length, a chunked body past the limit) leave no file,
 * a chunked body past the limit gets 413 (and an endless one is cut off), and the server removes a
 * crash's stale spool files at start. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "http/http_int.h"
#include "http/http_loopback.h"

static char dir[64];

/* What the handler saw. */
static struct {
    uint64_t size;
    uint32_t sum; /* of the file's bytes, read with pread */
    bool had_memory_body;
    char path[512];
} seen;

static uint32_t sum_of(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static int read_file(http_req *r, http_body_file *f)
{
    int rc = http_req_body_file(r, f);
    if (rc != MD_OK)
        return rc;
    size_t len = 0;
    seen.had_memory_body = http_req_body(r, &len) != NULL || len != 0;
    seen.size = f->size;
    snprintf(seen.path, sizeof seen.path, "%s", f->path ? f->path : "");
    uint8_t *buf = malloc(f->size + 1);
    assert_non_null(buf);
    assert_int_equal(pread(f->fd, buf, f->size + 1, 0), (ssize_t)f->size);
    seen.sum = sum_of(buf, f->size);
    free(buf);
    return MD_OK;
}

static int h_read(http_req *r, void *ctx)
{
    (void)ctx;
    http_body_file f;
    int rc = read_file(r, &f);
    if (rc != MD_OK)
        return rc;
    char msg[32];
    int n = snprintf(msg, sizeof msg, "%llu", (unsigned long long)f.size);
    return http_reply_bytes(r, 200, "text/plain", msg, (size_t)n);
}

static int h_take(http_req *r, void *ctx)
{
    (void)ctx;
    http_body_file f;
    int rc = read_file(r, &f);
    char *path = NULL;
    if (rc == MD_OK)
        rc = http_req_body_take(r, &path);
    if (rc != MD_OK)
        return rc;
    assert_string_equal(path, seen.path);
    char *again = NULL;
    assert_int_equal(http_req_body_take(r, &again), MD_E_CONFLICT);
    free(path);
    return http_reply_empty(r, 204);
}

static int h_plain(http_req *r, void *ctx)
{
    (void)ctx;
    http_body_file f;
    return http_req_body_file(r, &f); /* not a spooled route: an error */
}

/* Refuses every credential but "good". */
static int auth(void *ctx, const char *authorization, const char *x_api_key, http_identity *id,
                md_err *err)
{
    (void)ctx;
    (void)authorization;
    if (!x_api_key || strcmp(x_api_key, "good") != 0)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "no");
    snprintf(id->key_id, sizeof id->key_id, "k1");
    id->role = HTTP_ROLE_ADMIN;
    return MD_OK;
}

static size_t files_in_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Over a real socket the server removes the spool file when libmicrohttpd reports the request
 * complete, which may come after the client has read the answer or closed: wait for it (10 s at
 * most, a deadline for a hang, not a timing check). */
static size_t files_in_dir_settled(void)
{
    size_t n = files_in_dir();
    for (int i = 0; i < 1000 && n != 0; i++) {
        usleep(10000);
        n = files_in_dir();
    }
    return n;
}

static http_server *make(bool with_auth)
{
    http_server *s;
    http_opts o = {.host = "127.0.0.1",
                   .io_threads = 2,
                   .compute_threads = 1,
                   .body_limit = 1000,
                   .spool_dir = dir};
    if (with_auth)
        o.hooks.authenticate = auth;
    assert_int_equal(http_server_new(&o, &s, NULL), MD_OK);
    http_route_body_to_file(
        http_route_add(s, "POST", "/read", HTTP_ROLE_WRITE, HTTP_HEAVY, h_read, NULL), 300000);
    http_route_body_to_file(
        http_route_add(s, "POST", "/take", HTTP_ROLE_WRITE, HTTP_LIGHT, h_take, NULL), 300000);
    assert_non_null(
        http_route_add(s, "POST", "/plain", HTTP_ROLE_WRITE, HTTP_LIGHT, h_plain, NULL));
    return s;
}

static uint8_t *pattern(size_t n)
{
    uint8_t *b = malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 7 + (i >> 9));
    return b;
}

static void test_handler_reads_the_file(void **state)
{
    (void)state;
    http_server *s = make(false);
    size_t n = 200001; /* several 64 KiB chunks */
    uint8_t *body = pattern(n);
    http_loopback_resp out;
    memset(&seen, 0, sizeof seen);
    assert_int_equal(http_loopback(s, "POST", "/read", NULL, body, n, &out), MD_OK);
    assert_int_equal(out.status, 200);
    assert_string_equal(out.body, "200001");
    assert_int_equal(seen.size, n);
    assert_int_equal(seen.sum, sum_of(body, n));
    assert_false(seen.had_memory_body);
    assert_int_equal(strncmp(seen.path, dir, strlen(dir)), 0);
    assert_int_equal(access(seen.path, F_OK), -1); /* removed at the end of the request */
    assert_int_equal(files_in_dir(), 0);
    http_loopback_resp_free(&out);
    /* an empty body: an empty file */
    assert_int_equal(http_loopback(s, "POST", "/read", NULL, NULL, 0, &out), MD_OK);
    assert_int_equal(out.status, 200);
    assert_string_equal(out.body, "0");
    assert_int_equal(files_in_dir(), 0);
    http_loopback_resp_free(&out);
    free(body);
    http_server_free(s);
}

static void test_take_keeps_the_file(void **state)
{
    (void)state;
    http_server *s = make(false);
    uint8_t *body = pattern(70000);
    http_loopback_resp out;
    assert_int_equal(http_loopback(s, "POST", "/take", NULL, body, 70000, &out), MD_OK);
    assert_int_equal(out.status, 204);
    struct stat st;
    assert_int_equal(stat(seen.path, &st), 0); /* the handler owns it now */
    assert_int_equal(st.st_size, 70000);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(unlink(seen.path), 0);
    http_loopback_resp_free(&out);
    /* a route that does not spool has no body file */
    assert_int_equal(http_loopback(s, "POST", "/plain", NULL, "x", 1, &out), MD_OK);
    assert_int_equal(out.status, 500);
    http_loopback_resp_free(&out);
    free(body);
    http_server_free(s);
}

static void test_refused_requests_leave_no_file(void **state)
{
    (void)state;
    http_server *s = make(true);
    uint8_t *body = pattern(400000);
    http_loopback_resp out;
    /* no credentials: 401, and no file was ever made (spool.c, invariant 1) */
    assert_int_equal(http_loopback(s, "POST", "/read", NULL, body, 1000, &out), MD_OK);
    assert_int_equal(out.status, 401);
    assert_int_equal(files_in_dir(), 0);
    http_loopback_resp_free(&out);
    /* over the limit */
    const char *const key[] = {"X-API-Key", "good", NULL};
    assert_int_equal(http_loopback(s, "POST", "/read", key, body, 400000, &out), MD_OK);
    assert_int_equal(out.status, 413);
    assert_non_null(strstr(out.body, "payload_too_large"));
    assert_int_equal(files_in_dir(), 0);
    http_loopback_resp_free(&out);
    /* and a good one passes */
    assert_int_equal(http_loopback(s, "POST", "/read", key, body, 300000, &out), MD_OK);
    assert_int_equal(out.status, 200);
    assert_int_equal(seen.sum, sum_of(body, 300000));
    http_loopback_resp_free(&out);
    free(body);
    http_server_free(s);
}

/* ---- the real server ---- */

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Read what the server says until it closes or a whole answer with its body is in. */
static size_t hear(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        buf[n] = '\0';
        const char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "Content-Length:");
        if (end && cl && (size_t)(end + 4 - buf) + (size_t)atol(cl + 15) <= n)
            return n;
        ssize_t k = n + 1 < cap ? read(fd, buf + n, cap - 1 - n) : 0;
        if (k <= 0)
            return n;
        n += (size_t)k;
    }
}

/* Send n chunks of 16 KiB ('a'), then the last chunk when end; stops when the server closes
 * the connection. Returns the bytes sent. */
static size_t send_chunks(int fd, size_t n, bool end)
{
    static char chunk[16384 + 32];
    int h = snprintf(chunk, sizeof chunk, "4000\r\n");
    memset(chunk + h, 'a', 16384);
    memcpy(chunk + h + 16384, "\r\n", 2);
    size_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        if (send(fd, chunk, (size_t)h + 16386, MSG_NOSIGNAL) != (ssize_t)h + 16386)
            return sent; /* the server dropped the connection */
        sent += 16384;
    }
    if (end && send(fd, "0\r\n\r\n", 5, MSG_NOSIGNAL) != 5)
        return 0;
    return sent;
}

static void test_chunked_past_the_limit(void **state)
{
    (void)state;
    http_server *s = make(false);
    md_err e;
    assert_int_equal(http_server_start(s, &e), MD_OK);
    uint16_t port = http_server_port(s);
    char buf[8192];
    /* a chunked body within the limit */
    int fd = dial(port);
    const char *ok = "POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    assert_int_equal(write(fd, ok, strlen(ok)), (ssize_t)strlen(ok));
    hear(fd, buf, sizeof buf);
    assert_int_equal(strncmp(buf, "HTTP/1.1 200", 12), 0);
    assert_non_null(strstr(buf, "\r\n\r\n11"));
    close(fd);
    /* 480 KiB chunked against a 300000-byte limit: 413 when it ends, and no file left behind */
    fd = dial(port);
    const char *head = "POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(write(fd, head, strlen(head)), (ssize_t)strlen(head));
    assert_int_equal(send_chunks(fd, 30, true), 30 * 16384);
    hear(fd, buf, sizeof buf);
    assert_int_equal(strncmp(buf, "HTTP/1.1 413", 12), 0);
    assert_non_null(strstr(buf, "payload_too_large"));
    close(fd);
    assert_int_equal(files_in_dir_settled(), 0);
    /* a body that never ends is cut off after 4 limits, not read forever */
    fd = dial(port);
    assert_int_equal(write(fd, head, strlen(head)), (ssize_t)strlen(head));
    assert_true(send_chunks(fd, 4096, false) < (size_t)4096 * 16384);
    close(fd);
    assert_int_equal(files_in_dir_settled(), 0);
    /* the server is fine afterwards */
    fd = dial(port);
    assert_int_equal(write(fd, ok, strlen(ok)), (ssize_t)strlen(ok));
    hear(fd, buf, sizeof buf);
    assert_int_equal(strncmp(buf, "HTTP/1.1 200", 12), 0);
    close(fd);
    http_server_free(s);
    assert_int_equal(files_in_dir(), 0);
}

static void test_stale_files_removed_at_start(void **state)
{
    (void)state;
    char old[256], fresh[256], other[256];
    snprintf(old, sizeof old, "%s/body-00000000000000000000000000000001.part", dir);
    snprintf(fresh, sizeof fresh, "%s/body-00000000000000000000000000000002.part", dir);
    snprintf(other, sizeof other, "%s/keep.txt", dir);
    const char *paths[] = {old, fresh, other};
    for (int i = 0; i < 3; i++)
        close(open(paths[i], O_WRONLY | O_CREAT, 0600));
    struct timespec ts[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
    assert_int_equal(utimensat(AT_FDCWD, old, ts, 0), 0);
    assert_int_equal(utimensat(AT_FDCWD, other, ts, 0), 0);
    http_server *s = make(false);
    md_err e;
    assert_int_equal(http_server_start(s, &e), MD_OK);
    assert_int_equal(access(old, F_OK), -1);
    assert_int_equal(access(fresh, F_OK), 0);
    assert_int_equal(access(other, F_OK), 0); /* not ours */
    http_server_free(s);
    unlink(fresh);
    unlink(other);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/spool_test_XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handler_reads_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_take_keeps_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_requests_leave_no_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_past_the_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_files_removed_at_start, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
