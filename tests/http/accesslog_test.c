/* accesslog_test.c - the access-log line: valid JSON with the documented keys, escaped values
 * (quotes, control bytes in the path), numbers as numbers, one line per request. stderr is
 * redirected to a temporary file for the test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "http/http_loopback.h"

static int h_ok(http_req *r, void *ctx)
{
    (void)ctx;
    return http_reply_bytes(r, 200, "text/plain", "hello", 5);
}

/* Run one loopback request with stderr captured; returns what was written (new). */
static char *capture(http_server *s, const char *target, const char *rid)
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    http_loopback_resp r;
    int rc = http_loopback(s, "GET", target, (const char *[]){"X-Request-ID", rid, NULL}, NULL, 0, &r);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_int_equal(rc, MD_OK);
    http_loopback_resp_free(&r);
    long n = ftell(tmp);
    char *text = calloc(1, (size_t)n + 1);
    rewind(tmp);
    assert_int_equal(fread(text, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return text;
}

static void test_line(void **state)
{
    (void)state;
    http_server *s;
    http_opts o = {.access_log = true};
    assert_int_equal(http_server_new(&o, &s, NULL), MD_OK);
    assert_non_null(http_route_add(s, "GET", "/files/{name}", HTTP_ROLE_PUBLIC, HTTP_LIGHT, h_ok, NULL));
    char *text = capture(s, "/files/a%22b%5Cc%01d", "log-test-1");
    assert_int_equal(strchr(text, '\n') - text, (long)strlen(text) - 1); /* exactly one line */
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("not JSON (%s): %s", je.text, text);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "request");
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "log-test-1");
    assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(j, "route")), "/files/{name}");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/files/a\"b\\c\001d");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), 5);
    assert_true(json_is_real(json_object_get(j, "duration_ms")));
    assert_string_equal(json_string_value(json_object_get(j, "client_ip")), "127.0.0.1");
    const char *t = json_string_value(json_object_get(j, "time"));
    assert_int_equal(strlen(t), 24); /* 2026-11-23T21:02:03.123Z */
    assert_int_equal(t[23], 'Z');
    json_decref(j);
    free(text);
    /* a 404 is logged too, with an empty route */
    text = capture(s, "/nothing", "log-test-2");
    j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 404);
    assert_string_equal(json_string_value(json_object_get(j, "route")), "");
    json_decref(j);
    free(text);
    http_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_line)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
