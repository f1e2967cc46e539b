/* err_test.c - the error table: statuses, names, md_fail detail. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/err.h"

static void test_table(void **state)
{
    (void)state;
    assert_int_equal(md_err_status(MD_OK), 200);
    assert_int_equal(md_err_status(MD_E_NOT_FOUND), 404);
    assert_int_equal(md_err_status(MD_E_TOO_LARGE), 413);
    assert_int_equal(md_err_status(MD_E_RATE_LIMITED), 429);
    assert_int_equal(md_err_status(MD_E_OVERLOADED), 503);
    assert_int_equal(md_err_status(MD_E_TIMEOUT), 504);
    assert_int_equal(md_err_status(-1), 500);
    assert_int_equal(md_err_status(MD_E__COUNT), 500);
    assert_string_equal(md_err_name(MD_E_FILE_NOT_FOUND), "file_not_found");
    assert_string_equal(md_err_name(12345), "internal_error");
}

static void test_every_code_has_a_row(void **state)
{
    (void)state;
    for (int c = 0; c < MD_E__COUNT; c++) {
        assert_non_null(md_err_name(c));
        assert_true(strlen(md_err_default_msg(c)) > 0);
        int s = md_err_status(c);
        assert_true(c == MD_OK ? s == 200 : (s >= 400 && s < 600));
        for (int d = 0; d < c; d++)
            assert_string_not_equal(md_err_name(c), md_err_name(d));
    }
}

static void test_fail(void **state)
{
    (void)state;
    md_err e;
    md_err_clear(&e);
    assert_string_equal(md_err_message(&e), "success");
    int rc = md_fail(&e, MD_E_INVALID_PARAM, "filter_speckle", "must be in 0..128, got %d", 500);
    assert_int_equal(rc, MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "filter_speckle");
    assert_string_equal(md_err_message(&e), "must be in 0..128, got 500");
    assert_int_equal(md_fail(NULL, MD_E_IO, NULL, NULL), MD_E_IO);
    md_fail(&e, MD_E_IO, NULL, NULL);
    assert_string_equal(e.field, "");
    assert_string_equal(md_err_message(&e), "storage error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_every_code_has_a_row),
        cmocka_unit_test(test_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
