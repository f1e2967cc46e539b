/* buf_test.c - the bounded buffer refuses to grow past its maximum. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/err.h"

static void test_append_and_limit(void **state)
{
    (void)state;
    md_buf b;
    md_buf_init(&b, 10);
    assert_int_equal(md_buf_puts(&b, "hello"), MD_OK);
    assert_int_equal(md_buf_printf(&b, "%d", 1234), MD_OK);
    assert_string_equal(b.data, "hello1234");
    assert_int_equal(md_buf_puts(&b, "ab"), MD_E_TOO_LARGE);
    assert_string_equal(b.data, "hello1234"); /* unchanged after a refused append */
    assert_int_equal(md_buf_putc(&b, '!'), MD_OK);
    assert_int_equal(b.len, 10);
    assert_int_equal(md_buf_append(&b, "x", SIZE_MAX), MD_E_TOO_LARGE);
    size_t n;
    char *s = md_buf_steal(&b, &n);
    assert_int_equal(n, 10);
    assert_string_equal(s, "hello1234!");
    free(s);
    assert_null(b.data);
    s = md_buf_steal(&b, &n);
    assert_string_equal(s, "");
    free(s);
    md_buf_free(&b);
}

static void test_json_str(void **state)
{
    (void)state;
    md_buf b;
    md_buf_init(&b, 64);
    assert_int_equal(md_buf_put_json_str(&b, "a\"b\\c\n\t\x01\xc3\xa9"), MD_OK);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\t\\u0001\xc3\xa9\"");
    md_buf_reset(&b);
    /* past the maximum: the error comes back, nothing beyond the limit is written */
    char big[100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(md_buf_put_json_str(&b, big), MD_E_TOO_LARGE);
    assert_true(b.len <= 64);
    md_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_append_and_limit),
                                       cmocka_unit_test(test_json_str)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
