/* framing_test.c - the RFC 9112 framing verdict of src/http/framing.c on header values, one
 * rule at a time (the raw-socket behaviour is tests/e2e/test_http_framing.py). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http/http_int.h"

static int verdict(const char *version, const char *cl0, const char *cl1, const char *te0,
                   const char *te1, md_err *e)
{
    const char *cl[2] = {cl0, cl1}, *te[2] = {te0, te1};
    size_t ncl = cl1 ? 2 : cl0 ? 1 : 0, nte = te1 ? 2 : te0 ? 1 : 0;
    return http__framing_verdict(version, cl, ncl, te, nte, e);
}

static void test_clean_framing_passes(void **state)
{
    (void)state;
    md_err e;
    assert_int_equal(verdict("HTTP/1.1", NULL, NULL, NULL, NULL, &e), MD_OK);
    assert_int_equal(verdict("HTTP/1.1", "12", NULL, NULL, NULL, &e), MD_OK);
    assert_int_equal(verdict("HTTP/1.0", "12", NULL, NULL, NULL, &e), MD_OK);
    assert_int_equal(verdict("HTTP/1.1", "12", "12", NULL, NULL, &e), MD_OK);
    assert_int_equal(verdict("HTTP/1.1", NULL, NULL, "chunked", NULL, &e), MD_OK);
    assert_int_equal(verdict("HTTP/1.1", NULL, NULL, " Chunked\t", NULL, &e), MD_OK);
    assert_int_equal(verdict("HTTP/1.1", NULL, NULL, "CHUNKED", NULL, &e), MD_OK);
}

static void test_conflicting_lengths_are_400(void **state)
{
    (void)state;
    md_err e;
    assert_int_equal(verdict("HTTP/1.1", "4", NULL, "chunked", NULL, &e), MD_E_BAD_REQUEST);
    assert_string_equal(e.field, "Content-Length");
    assert_int_equal(verdict("HTTP/1.1", "4", "5", NULL, NULL, &e), MD_E_BAD_REQUEST);
    assert_string_equal(e.field, "Content-Length");
    assert_int_equal(verdict("HTTP/1.1", "4", "04", NULL, NULL, &e), MD_E_BAD_REQUEST);
    assert_int_equal(verdict("HTTP/1.0", NULL, NULL, "chunked", NULL, &e), MD_E_BAD_REQUEST);
    assert_string_equal(e.field, "Transfer-Encoding");
}

static void test_transfer_codings(void **state)
{
    (void)state;
    md_err e;
    /* codings we do not implement: 501 naming the coding */
    const char *unimpl[] = {"gzip",          "identity",    "deflate", "gzip, chunked",
                            "chunked, gzip", "chunked;x=1", "x-custom"};
    for (size_t i = 0; i < sizeof unimpl / sizeof unimpl[0]; i++) {
        assert_int_equal(verdict("HTTP/1.1", NULL, NULL, unimpl[i], NULL, &e),
                         MD_E_NOT_IMPLEMENTED);
        assert_string_equal(e.field, "Transfer-Encoding");
    }
    assert_non_null(strstr(md_err_message(&e), "x-custom"));
    /* a second Transfer-Encoding line adds codings (RFC 9110 5.3) */
    assert_int_equal(verdict("HTTP/1.1", NULL, NULL, "chunked", "gzip", &e), MD_E_NOT_IMPLEMENTED);
    /* chunked twice, or no coding at all: 400 */
    assert_int_equal(verdict("HTTP/1.1", NULL, NULL, "chunked", "chunked", &e), MD_E_BAD_REQUEST);
    assert_int_equal(verdict("HTTP/1.1", NULL, NULL, "chunked, chunked", NULL, &e),
                     MD_E_BAD_REQUEST);
    assert_int_equal(verdict("HTTP/1.1", NULL, NULL, "", NULL, &e), MD_E_BAD_REQUEST);
    assert_int_equal(verdict("HTTP/1.1", NULL, NULL, " , ,", NULL, &e), MD_E_BAD_REQUEST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_framing_passes),
        cmocka_unit_test(test_conflicting_lengths_are_400),
        cmocka_unit_test(test_transfer_codings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
