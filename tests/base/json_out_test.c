/* json_out_test.c - md_json_out (src/base/json_out.c) writes json_dumpb's compact text byte for
 * byte: hand-picked values (escapes, UTF-8, empty containers, reals that need ".0" or an
 * exponent, integer extremes) and thousands of generated documents. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/err.h"
#include "base/json_out.h"

static void expect_same(const json_t *v)
{
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    char *want = malloc(n + 1);
    assert_non_null(want);
    assert_int_equal(json_dumpb(v, want, n, JSON_COMPACT | JSON_ENCODE_ANY), n);
    want[n] = '\0';
    md_buf b;
    md_buf_init(&b, 1 << 24);
    assert_int_equal(md_json_out(&b, v), MD_OK);
    if (b.len != n || memcmp(b.data, want, n) != 0)
        fail_msg("got  %.300s\nwant %.300s", b.data ? b.data : "", want);
    md_buf_free(&b);
    free(want);
}

static void test_values(void **state)
{
    (void)state;
    const char *texts[] = {"{}",
                           "[]",
                           "[{},[],null,true,false]",
                           "\"\"",
                           "{\"a\\\"b\":\"x\\\\y\\n\\r\\t\\b\\f\\u0001\\u001f\\u007f/\"}",
                           "{\"k\":\"\\u00e9\\u4e2d\\ud83d\\ude00\"}",
                           "[0.0,-0.0,1.0,-1.5,100000000000000000000.0]",
                           "[1e-7,1.5e-300,1e300,123456789012345678,0.1,0.30000000000000004]",
                           "[9223372036854775807,-9223372036854775808,0,-1]",
                           "{\"z\":1,\"a\":2,\"m\":{\"y\":[1,{\"b\":null}]}}"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_error_t je;
        json_t *v = json_loads(texts[i], JSON_DECODE_ANY, &je);
        if (!v)
            fail_msg("%s: %s", texts[i], je.text);
        expect_same(v);
        json_decref(v);
    }
    json_t *o = json_object(); /* insertion order, not sorted */
    json_object_set_new(o, "zeta", json_real(1e21));
    json_object_set_new(o, "alpha", json_real(2.98023223876953125e-08));
    json_object_set_new(o, "mid", json_real((float)0.1));
    json_object_setn_new(o, "nul\0key", 7, json_integer(3));
    expect_same(o);
    json_decref(o);
}

static uint64_t rng = 0x2545F4914F6CDD1Du;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static json_t *gen(int depth)
{
    uint64_t r = next();
    switch (depth > 3 ? 2 + r % 5 : r % 7) {
    case 0: {
        json_t *o = json_object();
        for (uint64_t i = 0, n = next() % 6; i < n; i++) {
            char key[8];
            snprintf(key, sizeof key, "k%u", (unsigned)(next() % 50));
            json_object_set_new(o, key, gen(depth + 1));
        }
        return o;
    }
    case 1: {
        json_t *a = json_array();
        for (uint64_t i = 0, n = next() % 6; i < n; i++)
            json_array_append_new(a, gen(depth + 1));
        return a;
    }
    case 2: {
        char s[12];
        for (int i = 0; i < 11; i++)
            s[i] = (char)(1 + next() % 127);
        s[11] = '\0';
        return json_string(s);
    }
    case 3:
        return json_integer((json_int_t)next() >> (next() % 64));
    case 4: {
        uint32_t bits = (uint32_t)next();
        float f;
        memcpy(&f, &bits, sizeof f);
        return isfinite(f) ? json_real(f) : json_null();
    }
    case 5: {
        uint64_t bits = next();
        double d;
        memcpy(&d, &bits, sizeof d);
        return isfinite(d) ? json_real(d) : json_real((double)(next() % 1000) / 8);
    }
    default:
        return r & 8 ? json_true() : json_false();
    }
}

static void test_generated(void **state)
{
    (void)state;
    for (int i = 0; i < 3000; i++) {
        json_t *v = gen(0);
        expect_same(v);
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_values),
                                       cmocka_unit_test(test_generated)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
