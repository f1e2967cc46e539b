/* gzip_test.c - Accept-Encoding parsing (q values, wildcards, case), compressible types, and
 * a compress/inflate round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>
#include <cmocka.h>

#include "http/http_int.h"

static void test_accepts(void **state)
{
    (void)state;
    assert_true(http__accepts_gzip("gzip"));
    assert_true(http__accepts_gzip("deflate, GZIP"));
    assert_true(http__accepts_gzip("br;q=1.0, gzip;q=0.5"));
    assert_true(http__accepts_gzip("*"));
    assert_false(http__accepts_gzip(NULL));
    assert_false(http__accepts_gzip(""));
    assert_false(http__accepts_gzip("gzip;q=0"));
    assert_false(http__accepts_gzip("identity"));
    assert_false(http__accepts_gzip("gzipx, xgzip"));
    assert_false(http__accepts_gzip(";;;,,, ;q="));
}

static void test_compressible(void **state)
{
    (void)state;
    assert_true(http__compressible("application/json"));
    assert_true(http__compressible("text/html; charset=utf-8"));
    assert_true(http__compressible("image/svg+xml"));
    assert_false(http__compressible("image/png"));
    assert_false(http__compressible("application/zip"));
    assert_false(http__compressible(NULL));
}

static void test_roundtrip(void **state)
{
    (void)state;
    md_arena *a = md_arena_new(0);
    char src[10000];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (char)("{\"k\":[1,2,3]}"[i % 13]);
    void *z;
    size_t zn;
    assert_int_equal(http__gzip(a, src, sizeof src, &z, &zn), MD_OK);
    assert_true(zn < sizeof src / 10);
    assert_int_equal(((unsigned char *)z)[0], 0x1f); /* gzip magic */
    assert_int_equal(((unsigned char *)z)[1], 0x8b);
    char out[10000];
    uLongf on = sizeof out;
    z_stream s = {0};
    assert_int_equal(inflateInit2(&s, 31), Z_OK);
    s.next_in = z;
    s.avail_in = (uInt)zn;
    s.next_out = (Bytef *)out;
    s.avail_out = (uInt)on;
    assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
    assert_int_equal(s.total_out, sizeof src);
    inflateEnd(&s);
    assert_memory_equal(out, src, sizeof src);
    assert_int_equal(http__gzip(a, "", 0, &z, &zn), MD_OK); /* empty body is still valid gzip */
    md_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_compressible),
        cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
