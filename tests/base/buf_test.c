/* buf_test.c - the bounded buffer refuses to grow past its maximum. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>

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

/* md_buf_put_g9 writes what printf("%.9g") writes: edge values (powers of ten and the
 * neighbours where %g switches notation or rounding carries) and a million random bit patterns. */
static void expect_g9(float v)
{
    if (!isfinite(v))
        return;
    char want[64];
    snprintf(want, sizeof want, "%.9g", (double)v);
    md_buf b;
    md_buf_init(&b, 64);
    assert_int_equal(md_buf_put_g9(&b, v), MD_OK);
    if (strcmp(b.data, want) != 0)
        fail_msg("%a: got %s, printf %s", (double)v, b.data, want);
    md_buf_free(&b);
}

static void test_g9_matches_printf(void **state)
{
    (void)state;
    const float edge[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.1f, 0.5f, 1e-4f, 9.99999e-5f, 1e-5f, 123456789.0f,
                          999999999.0f, 1e9f, 1e10f, 3.4028235e38f, 1.17549435e-38f, 1.4e-45f,
                          0.30000001f, 2.5f, 1e8f, 99999.99f, 0.000123f};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        expect_g9(edge[i]);
        expect_g9(nextafterf(edge[i], INFINITY));
        expect_g9(nextafterf(edge[i], -INFINITY));
    }
    for (int p = -45; p <= 38; p++) {
        float v = (float)pow(10, p);
        expect_g9(v);
        expect_g9(nextafterf(v, 0));
        expect_g9(nextafterf(v, INFINITY));
    }
    uint64_t s = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 1000000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        uint32_t bits = (uint32_t)(s >> 16);
        float v;
        memcpy(&v, &bits, sizeof v);
        if (isfinite(v))
            expect_g9(v);
    }
}

/* md_buf_put_g17 writes what printf("%.17g") writes: edges, ties at the 17th digit (2^-25 =
 * 2.98023223876953125e-08 rounds to even), float-valued doubles (what answers hold), doubles of
 * few significant bits, and random bit patterns (mostly printf's own path). */
static void expect_g17(double v)
{
    if (!isfinite(v))
        return;
    char want[64];
    snprintf(want, sizeof want, "%.17g", v);
    md_buf b;
    md_buf_init(&b, 64);
    assert_int_equal(md_buf_put_g17(&b, v), MD_OK);
    if (strcmp(b.data, want) != 0)
        fail_msg("%a: got %s, printf %s", v, b.data, want);
    md_buf_free(&b);
}

static void test_g17_matches_printf(void **state)
{
    (void)state;
    const double edge[] = {0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1e-4, 1e-5, 1e16, 1e17, 99999999999999999.0,
                           0x1p-25, 0x1p-26 * 3, 1e21, 1e22, 1e-300, 5e-324, 1.7976931348623157e308,
                           0.30000000000000004, 2.5, 123456.789, 0.00012345678901234567};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        expect_g17(edge[i]);
        expect_g17(nextafter(edge[i], INFINITY));
        expect_g17(nextafter(edge[i], -INFINITY));
    }
    for (int p = -40; p <= 40; p++) {
        expect_g17(pow(10, p));
        expect_g17((float)pow(10, p));
        expect_g17(nextafter(pow(10, p), 0));
    }
    uint64_t s = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 300000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double v;
        uint32_t bits = (uint32_t)(s >> 16);
        float f;
        memcpy(&f, &bits, sizeof f);
        switch (i % 3) {
        case 0:
            memcpy(&v, &s, sizeof v);
            break;
        case 1:
            v = f;
            break;
        default:
            v = ldexp((double)(s >> (24 + s % 32)), (int)(s % 100) - 80);
        }
        expect_g17(v);
        expect_g17(-v);
    }
}

/* md_buf_put_g writes what printf("%.<prec>g") writes for every precision, on doubles that are
 * not float-valued (prices, revenues: the multi-limb path), ties included (0.125 at 2 digits,
 * 2.5 at 1), and on the magnitudes at both ends of that path. */
static void expect_g(double v, int prec)
{
    char want[64];
    snprintf(want, sizeof want, "%.*g", prec, v);
    md_buf b;
    md_buf_init(&b, 64);
    assert_int_equal(md_buf_put_g(&b, v, prec), MD_OK);
    if (strcmp(b.data, want) != 0)
        fail_msg("%a at %d: got %s, printf %s", v, prec, b.data, want);
    md_buf_free(&b);
}

static void test_g_matches_printf(void **state)
{
    (void)state;
    const double edge[] = {0.125, 2.5,    0.5,    1.5,    1e-142, 1e-150, 1e300, 1.7976931348623157e308,
                           5e-324, 123.456, 0.1,   9.5,    99.95,  0.0001, 1e-5,   12345678.9};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        for (int prec = 1; prec <= 17; prec++) {
            expect_g(edge[i], prec);
            expect_g(-edge[i], prec);
            expect_g(nextafter(edge[i], INFINITY), prec);
        }
    uint64_t s = 0x2545F4914F6CDD1Du;
    for (int i = 0; i < 100000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double u = (double)(s >> 11) * 0x1p-53; /* uniform in [0, 1): 53 significant bits */
        double v = u * pow(10, (int)(s % 24) - 8);
        expect_g(v, 17);
        expect_g(v, 9);
        expect_g(v, 1 + (int)(s % 17));
        double w;
        memcpy(&w, &s, sizeof w);
        if (isfinite(w))
            expect_g(w, 17);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_append_and_limit),
                                       cmocka_unit_test(test_json_str),
                                       cmocka_unit_test(test_g9_matches_printf),
                                       cmocka_unit_test(test_g_matches_printf),
                                       cmocka_unit_test(test_g17_matches_printf)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
