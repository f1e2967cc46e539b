/* convert_cache_test.c - the conversion cache: hits and misses are counted, the least recently
 * used entry goes first, entries expire by TTL and by their result's expiry, and the byte
 * limit holds. Time comes from a manual clock, so nothing sleeps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/convert_cache.h"
#include "base/err.h"

static md_manual_clock clk;

static cv_cache *make(size_t entries, size_t bytes, int64_t ttl)
{
    md_manual_clock_init(&clk, 0, 1000000);
    cv_cache_opts o = {
        .max_entries = entries, .max_bytes = bytes, .ttl_ms = ttl, .clock = &clk.clock};
    cv_cache *c = NULL;
    assert_int_equal(cv_cache_new(&o, &c), MD_OK);
    return c;
}

static void key(char out[CV_KEY_LEN + 1], int i)
{
    snprintf(out, CV_KEY_LEN + 1, "%064d", i);
}

static int has(cv_cache *c, int i)
{
    char k[CV_KEY_LEN + 1], *v = NULL;
    size_t n = 0;
    key(k, i);
    int hit = cv_cache_get(c, k, &v, &n);
    free(v);
    return hit;
}

static void put(cv_cache *c, int i, const char *v, int64_t expires)
{
    char k[CV_KEY_LEN + 1];
    key(k, i);
    assert_int_equal(cv_cache_put(c, k, v, strlen(v), expires), MD_OK);
}

static void test_hit_miss_counts(void **state)
{
    (void)state;
    cv_cache *c = make(4, 0, 1000);
    char k[CV_KEY_LEN + 1], *v = NULL;
    size_t n = 0;
    key(k, 1);
    assert_int_equal(cv_cache_get(c, k, &v, &n), 0);
    put(c, 1, "{\"svg\":\"a\"}", 0);
    assert_int_equal(cv_cache_get(c, k, &v, &n), 1);
    assert_int_equal(n, 11);
    assert_string_equal(v, "{\"svg\":\"a\"}");
    free(v);
    put(c, 1, "replaced", 0); /* same key: replaced, not duplicated */
    cv_cache_stats s;
    cv_cache_stats_get(c, &s);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.bytes, 8);
    cv_cache_free(c);
}

static void test_lru_eviction(void **state)
{
    (void)state;
    cv_cache *c = make(3, 0, 1000);
    put(c, 1, "a", 0);
    put(c, 2, "b", 0);
    put(c, 3, "c", 0);
    assert_true(has(c, 1)); /* 1 is now the most recent; 2 the least */
    put(c, 4, "d", 0);
    assert_false(has(c, 2));
    assert_true(has(c, 1));
    assert_true(has(c, 3));
    assert_true(has(c, 4));
    cv_cache_stats s;
    cv_cache_stats_get(c, &s);
    assert_int_equal(s.evictions, 1);
    assert_int_equal(s.entries, 3);
    cv_cache_free(c);
}

static void test_ttl_and_result_expiry(void **state)
{
    (void)state;
    cv_cache *c = make(8, 0, 1000);
    put(c, 1, "a", 0);            /* expires by TTL at +1000 ms */
    put(c, 2, "b", clk.ms + 300); /* its result expires sooner */
    clk.ms += 299;
    assert_true(has(c, 1));
    assert_true(has(c, 2));
    clk.ms += 1;
    assert_false(has(c, 2));
    assert_true(has(c, 1));
    clk.ms += 700;
    assert_false(has(c, 1));
    cv_cache_stats s;
    cv_cache_stats_get(c, &s);
    assert_int_equal(s.entries, 0); /* expired entries are dropped when seen */
    cv_cache_free(c);
}

static void test_byte_limit(void **state)
{
    (void)state;
    cv_cache *c = make(100, 10, 1000);
    put(c, 1, "12345", 0);
    put(c, 2, "12345", 0);
    put(c, 3, "123", 0); /* 13 bytes > 10: the oldest goes */
    assert_false(has(c, 1));
    assert_true(has(c, 2));
    put(c, 4, "this value is longer than the whole cache", 0); /* not cached at all */
    assert_false(has(c, 4));
    assert_true(has(c, 2));
    assert_true(has(c, 3));
    cv_cache_stats s;
    cv_cache_stats_get(c, &s);
    assert_true(s.bytes <= 10);
    cv_cache_free(c);
}

static void test_many_keys(void **state)
{
    (void)state;
    cv_cache *c = make(64, 0, 1000);
    for (int i = 0; i < 1000; i++)
        put(c, i, "v", 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(has(c, i), i >= 1000 - 64);
    cv_cache_free(c);
    cv_cache_free(NULL);
}

/* An L2 in memory: one slot per key index, with the TTL it was given. */
typedef struct fake_l2 {
    int up;
    char key[CV_KEY_LEN + 1];
    char value[64];
    size_t len;
    int64_t ttl_ms;
    int gets, puts;
} fake_l2;

static int l2_get(void *ctx, const char *k, char **value, size_t *len, int64_t *expires)
{
    fake_l2 *f = ctx;
    f->gets++;
    if (!f->up || strcmp(f->key, k) != 0)
        return 0;
    *value = strdup(f->value);
    *len = f->len;
    *expires = md_clock_wall_ms(&clk.clock) + f->ttl_ms;
    return 1;
}

static void l2_put(void *ctx, const char *k, const char *value, size_t len, int64_t ttl_ms)
{
    fake_l2 *f = ctx;
    f->puts++;
    if (!f->up)
        return;
    snprintf(f->key, sizeof f->key, "%s", k);
    snprintf(f->value, sizeof f->value, "%.*s", (int)len, value);
    f->len = len;
    f->ttl_ms = ttl_ms;
}

/* A put writes through to the L2 (TTL: the earlier of l2_ttl and the result's expiry); a
 * second cache (another node) misses in memory, hits in the L2, keeps the answer in memory
 * until the L2 entry expires; a down L2 is a miss. */
static void test_l2(void **state)
{
    (void)state;
    fake_l2 f = {.up = 1};
    cv_l2 tab = {.get = l2_get, .put = l2_put, .ctx = &f};
    md_manual_clock_init(&clk, 0, 1000000);
    cv_cache_opts o = {.ttl_ms = 600000, .clock = &clk.clock, .l2 = &tab, .l2_ttl_ms = 3600000};
    cv_cache *node1 = NULL, *node2 = NULL;
    assert_int_equal(cv_cache_new(&o, &node1), MD_OK);
    assert_int_equal(cv_cache_new(&o, &node2), MD_OK);
    char k[CV_KEY_LEN + 1];
    key(k, 1);
    assert_int_equal(cv_cache_put(node1, k, "{\"svg\":1}", 9, 0), MD_OK);
    assert_int_equal(f.ttl_ms, 3600000);
    assert_int_equal(cv_cache_put(node1, k, "{\"svg\":1}", 9, 1000000 + 5000), MD_OK);
    assert_int_equal(f.ttl_ms, 5000); /* bounded by the result's expiry */
    char *v = NULL;
    size_t n = 0;
    assert_int_equal(cv_cache_get(node2, k, &v, &n), 1);
    assert_string_equal(v, "{\"svg\":1}");
    assert_int_equal(n, 9);
    free(v);
    cv_cache_stats st;
    cv_cache_stats_get(node2, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.l2_hits, 1);
    assert_int_equal(st.misses, 0);
    assert_int_equal(st.entries, 1);
    /* now in node 2's memory: no L2 round trip */
    int gets = f.gets;
    assert_int_equal(has(node2, 1), 1);
    assert_int_equal(f.gets, gets);
    /* the memory copy ends with the L2 entry (5 s), not after node 2's own 10 min */
    f.up = 0;
    clk.ms += 5001;
    assert_int_equal(has(node2, 1), 0);
    cv_cache_stats_get(node2, &st);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.l2_hits, 1);
    cv_cache_free(node1);
    cv_cache_free(node2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_miss_counts),
        cmocka_unit_test(test_lru_eviction),
        cmocka_unit_test(test_ttl_and_result_expiry),
        cmocka_unit_test(test_byte_limit),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_l2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
