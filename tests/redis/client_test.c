/* client_test.c - the Redis client without a server: URLs (accepted forms and every refusal
 * naming "redis"), the backoff sequence, and a client pointed at a socket nobody listens on:
 * it opens DOWN (not an error), fails every command with MD_E_UNAVAILABLE without waiting
 * (the backoff), counts the failures and renders modeld_redis_up 0. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "redis/redis.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void test_url_forms(void **state)
{
    (void)state;
    rds_url u;
    md_err e;
    assert_int_equal(rds_url_parse("redis://cache.internal", &u, &e), MD_OK);
    assert_string_equal(u.host, "cache.internal");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_int_equal(rds_url_parse("redis://10.0.0.7:6380/3", &u, &e), MD_OK);
    assert_string_equal(u.host, "10.0.0.7");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    assert_int_equal(rds_url_parse("redis://[::1]:7000/", &u, &e), MD_OK);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(rds_url_parse("unix:///run/redis/redis.sock?db=2", &u, &e), MD_OK);
    assert_string_equal(u.path, "/run/redis/redis.sock");
    assert_string_equal(u.host, "");
    assert_int_equal(u.db, 2);
}

static void test_url_refusals(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "http://host",
                         "redis://",
                         "redis://host:0",
                         "redis://host:65536",
                         "redis://host:12ab",
                         "redis://host/16",
                         "redis://host/x",
                         "redis://user:secret@host",
                         "redis://[::1",
                         "unix://relative.sock",
                         "unix:///tmp/r.sock?db=99",
                         "unix:///tmp/r.sock?timeout=1",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        rds_url u;
        md_err e;
        md_err_clear(&e);
        assert_int_equal(rds_url_parse(bad[i], &u, &e), MD_E_INVALID_PARAM);
        assert_string_equal(e.field, "redis");
        assert_null(strstr(e.msg, "secret")); /* a URL's password is never echoed */
    }
    rds_url u;
    assert_int_equal(rds_url_parse(NULL, &u, NULL), MD_E_INVALID_PARAM);
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(rds_backoff_ms(1, 100, 5000), 100);
    assert_int_equal(rds_backoff_ms(2, 100, 5000), 200);
    assert_int_equal(rds_backoff_ms(3, 100, 5000), 400);
    assert_int_equal(rds_backoff_ms(6, 100, 5000), 3200);
    assert_int_equal(rds_backoff_ms(7, 100, 5000), 5000);
    assert_int_equal(rds_backoff_ms(1000, 100, 5000), 5000);
}

/* A unix socket path in a fresh directory where nothing listens. */
static void nowhere(char *url, size_t cap, char *dir, size_t dcap)
{
    snprintf(dir, dcap, "%s/rds-test-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(url, cap, "unix://%s/none.sock", dir);
}

static void test_down_client(void **state)
{
    (void)state;
    char url[512], dir[300];
    nowhere(url, sizeof url, dir, sizeof dir);
    rds_client *c = NULL;
    md_err e;
    md_err_clear(&e);
    rds_opts o = {.url = url, .backoff_min_ms = 60000}; /* no retry during the test */
    assert_int_equal(rds_open(&o, &c, &e), MD_OK);
    assert_false(rds_up(c));
    rds_reply *r = (rds_reply *)1;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(rds_command(c, 1, (const char *const[]){"PING"}, NULL, &r, &e),
                         MD_E_UNAVAILABLE);
        assert_null(r);
    }
    assert_string_equal(e.field, "redis");
    static rds_script s = RDS_SCRIPT("return 1");
    assert_int_equal(rds_eval(c, &s, 0, 0, NULL, NULL, &r, NULL), MD_E_UNAVAILABLE);
    assert_string_equal(s.sha, "");
    assert_int_equal(rds_publish(c, "ch", "m", 1, NULL), MD_E_UNAVAILABLE);
    assert_false(rds_ping(c));
    md_buf b;
    md_buf_init(&b, 1 << 16);
    rds_metrics(&b, c);
    assert_non_null(strstr(b.data, "\nmodeld_redis_up 0\n"));
    assert_non_null(
        strstr(b.data, "\nmodeld_redis_errors_total 1\n")); /* one connect: backoff since */
    md_buf_free(&b);
    rds_close(c);
    rds_close(NULL);
    rmdir(dir);
}

static void test_bad_args(void **state)
{
    (void)state;
    rds_client *c = NULL;
    md_err e;
    assert_int_equal(rds_open(&(rds_opts){.url = "redis://host:99999"}, &c, &e),
                     MD_E_INVALID_PARAM);
    assert_null(c);
    char url[512], dir[300];
    nowhere(url, sizeof url, dir, sizeof dir);
    assert_int_equal(rds_open(&(rds_opts){.url = url, .backoff_min_ms = 60000}, &c, &e), MD_OK);
    rds_reply *r = NULL;
    assert_int_equal(rds_command(c, 0, NULL, NULL, &r, &e), MD_E_INVALID_PARAM);
    assert_int_equal(rds_eval(c, &(rds_script)RDS_SCRIPT("return 1"), 2, 1,
                              (const char *const[]){"k"}, NULL, &r, &e),
                     MD_E_INVALID_PARAM);
    rds_close(c);
    rmdir(dir);
}

static void on_msg(void *ctx, const char *ch, const char *msg, size_t len)
{
    (void)ch;
    (void)msg;
    (void)len;
    (*(int *)ctx)++;
}

/* A subscriber with no server keeps retrying in its thread and stops promptly when closed. */
static void test_sub_without_server(void **state)
{
    (void)state;
    char url[512], dir[300];
    nowhere(url, sizeof url, dir, sizeof dir);
    int got = 0;
    rds_sub *s = NULL;
    md_err e;
    const char *chans[] = {"a", "b"};
    rds_sub_opts so = {.channels = chans, .n = 2, .on_message = on_msg, .ctx = &got};
    assert_int_equal(
        rds_sub_open(&(rds_opts){.url = url, .backoff_min_ms = 10, .backoff_max_ms = 20}, &so, &s,
                     &e),
        MD_OK);
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    assert_false(rds_sub_up(s));
    rds_sub_close(s);
    assert_int_equal(got, 0);
    so.n = 0;
    assert_int_equal(rds_sub_open(&(rds_opts){.url = url}, &so, &s, &e), MD_E_INVALID_PARAM);
    rmdir(dir);
}

/* A one-connection fake server on a unix socket: it answers one command with +PONG, then
 * closes the connection. The client must go UP, then DOWN with the reason logged (the reason
 * is hiredis's error text, which lives in the context the failure frees: a regression test of
 * a use-after-free that ASan caught), and fail fast afterwards. */
static void test_server_goes_away(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* the server ignores it too (cli_startup) */
    char url[512], dir[300], path[400];
    nowhere(url, sizeof url, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/none.sock", dir);
    int ls = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(ls, 4), 0);
    rds_client *c = NULL;
    md_err e;
    assert_int_equal(rds_open(&(rds_opts){.url = url, .backoff_min_ms = 60000}, &c, &e), MD_OK);
    assert_true(rds_up(c)); /* connected (still in the listen queue) */
    int cs = accept(ls, NULL, NULL);
    assert_true(cs >= 0);
    /* one answer: the PING below reads it */
    assert_int_equal(write(cs, "+PONG\r\n", 7), 7);
    assert_true(rds_ping(c));
    char buf[256];
    assert_true(read(cs, buf, sizeof buf) > 0); /* the PING's bytes */
    close(cs);
    close(ls);
    rds_reply *r = NULL;
    assert_int_equal(rds_command(c, 1, (const char *const[]){"PING"}, NULL, &r, &e), MD_E_UNAVAILABLE);
    assert_false(rds_up(c));
    assert_int_equal(rds_command(c, 1, (const char *const[]){"PING"}, NULL, &r, &e), MD_E_UNAVAILABLE);
    md_buf b;
    md_buf_init(&b, 1 << 16);
    rds_metrics(&b, c);
    assert_non_null(strstr(b.data, "\nmodeld_redis_errors_total 1\n")); /* the second failed fast */
    md_buf_free(&b);
    rds_close(c);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_forms), cmocka_unit_test(test_url_refusals),
        cmocka_unit_test(test_backoff),   cmocka_unit_test(test_down_client),
        cmocka_unit_test(test_bad_args),  cmocka_unit_test(test_sub_without_server),
        cmocka_unit_test(test_server_goes_away),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
