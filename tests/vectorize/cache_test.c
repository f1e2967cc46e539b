/* cache_test.c - vec_cache: a search's conversions give the same SVG and SSIM (bit for bit) with
 * the cache as without, the region stage and the measurements are really reused, another image
 * empties it, and measure_max_bytes skips the measurement of an SVG past it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "image/image.h"
#include "vectorize/vec.h"

static md_image *load(const char *name)
{
    const char *dir = getenv("MODELD_CORPUS_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "tests/fixtures/corpus", name);
    md_image *img = NULL;
    md_err err;
    if (img_load_file(path, NULL, &img, &err) != MD_OK)
        fail_msg("%s: %s", path, md_err_message(&err));
    return img;
}

/* A search's sequence: sets that share region parameters (fitting moves), a repeat of an
 * earlier one, binary mode, and more region settings than the cache keeps. */
static void search_sets(vec_params *p, int *n)
{
    static const float enc[][10] = {
        {4, 6, 16, 60, 4, 10, 45, 2, 0, 0},  {4, 6, 16, 0, 4, 10, 45, 2, 0, 0},
        {4, 6, 16, 60, 4, 10, 45, 2, 0, 1},  {4, 6, 16, 60, 4, 3, 45, 1, 0, 0},
        {2, 8, 8, 0, 3.5f, 10, 45, 1, 0, 0}, {3, 6, 8, 60, 3.5f, 10, 45, 1, 1, 0},
        {2, 6, 4, 0, 3.5f, 10, 45, 1, 0, 0}, {2, 7, 12, 0, 3.5f, 10, 45, 1, 0, 0},
        {1, 5, 20, 30, 6, 10, 90, 1, 0, 0},  {4, 6, 16, 60, 4, 10, 45, 2, 0, 1},
        {2, 8, 8, 0, 3.5f, 10, 45, 1, 0, 1},
    };
    *n = (int)(sizeof enc / sizeof enc[0]);
    for (int i = 0; i < *n; i++)
        vec_params_decode(enc[i], &p[i]);
    p[*n] = p[0];
    p[*n].colormode = VEC_BINARY;
    (*n)++;
}

static void same_result(const vec_result *a, const vec_result *b, const char *what)
{
    if (a->svg_bytes != b->svg_bytes || memcmp(a->svg, b->svg, a->svg_bytes) != 0)
        fail_msg("%s: the SVGs differ (%zu and %zu bytes)", what, a->svg_bytes, b->svg_bytes);
    if (memcmp(&a->ssim, &b->ssim, sizeof a->ssim) != 0)
        fail_msg("%s: SSIM %.17g / %.17g against %.17g / %.17g", what, a->ssim.rgb, a->ssim.luma,
                 b->ssim.rgb, b->ssim.luma);
    assert_int_equal(a->path_count, b->path_count);
}

static void test_cached_equals_uncached(void **state)
{
    (void)state;
    static const char *const files[] = {"papirus_famitracker_64.png", "gradient_02.png",
                                        "text_based_05.png"};
    vec_params sets[16];
    int nsets;
    search_sets(sets, &nsets);
    vec_cache *cache = NULL;
    assert_int_equal(vec_cache_new(&cache), MD_OK);
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        md_image *img = load(files[f]);
        vec_cache_stats before = vec_cache_get_stats(cache);
        for (int i = 0; i < nsets; i++) {
            for (int rgb_only = 0; rgb_only <= 1; rgb_only++) {
                vec_convert_opts plain = {.measure_quality = 1, .rgb_only = rgb_only};
                vec_convert_opts cached = plain;
                cached.cache = cache;
                vec_result *a = NULL, *b = NULL;
                assert_int_equal(vec_convert(img, &sets[i], &plain, &a, NULL), MD_OK);
                assert_int_equal(vec_convert(img, &sets[i], &cached, &b, NULL), MD_OK);
                char what[128];
                snprintf(what, sizeof what, "%s set %d rgb_only %d", files[f], i, rgb_only);
                same_result(a, b, what);
                vec_result_free(a);
                vec_result_free(b);
            }
        }
        vec_cache_stats after = vec_cache_get_stats(cache);
        /* every set's second conversion (rgb_only) reuses its stage and its measurement */
        assert_true(after.stage_hits - before.stage_hits >= nsets);
        assert_true(after.ssim_hits - before.ssim_hits >= nsets);
        /* 12 conversions of 8 region settings: never all hits, never all misses */
        assert_true(after.stage_misses - before.stage_misses >= 8);
        img_free(img);
    }
    vec_cache_free(cache);
    vec_cache_free(NULL);
}

static void test_another_image_empties_it(void **state)
{
    (void)state;
    md_image *a = load("text_based_05.png"), *b = load("gradient_05.png");
    vec_params p;
    vec_params_default(&p);
    vec_cache *cache = NULL;
    assert_int_equal(vec_cache_new(&cache), MD_OK);
    vec_convert_opts o = {.measure_quality = 1, .cache = cache};
    vec_result *r = NULL;
    assert_int_equal(vec_convert(a, &p, &o, &r, NULL), MD_OK);
    vec_result_free(r);
    vec_cache_stats s0 = vec_cache_get_stats(cache);
    assert_int_equal(vec_convert(b, &p, &o, &r, NULL), MD_OK); /* same parameters, new image */
    vec_cache_stats s1 = vec_cache_get_stats(cache);
    assert_int_equal(s1.stage_hits, s0.stage_hits);
    assert_int_equal(s1.stage_misses, s0.stage_misses + 1);
    assert_int_equal(s1.ssim_hits, s0.ssim_hits);
    vec_result *plain = NULL;
    vec_convert_opts po = {.measure_quality = 1};
    assert_int_equal(vec_convert(b, &p, &po, &plain, NULL), MD_OK);
    same_result(plain, r, "second image");
    vec_result_free(plain);
    vec_result_free(r);
    vec_cache_free(cache);
    img_free(a);
    img_free(b);
}

static void test_measure_max_bytes(void **state)
{
    (void)state;
    md_image *img = load("papirus_famitracker_64.png");
    vec_params p;
    vec_params_default(&p);
    vec_convert_opts o = {.measure_quality = 1};
    vec_result *full = NULL, *r = NULL;
    assert_int_equal(vec_convert(img, &p, &o, &full, NULL), MD_OK);
    assert_true(full->ssim.rgb > 0);
    o.measure_max_bytes = full->svg_bytes - 1; /* just below: not measured */
    assert_int_equal(vec_convert(img, &p, &o, &r, NULL), MD_OK);
    assert_true(r->ssim.rgb == -1 && r->ssim.luma == -1);
    assert_int_equal(r->svg_bytes, full->svg_bytes);
    vec_result_free(r);
    o.measure_max_bytes = full->svg_bytes; /* at the limit: measured */
    assert_int_equal(vec_convert(img, &p, &o, &r, NULL), MD_OK);
    same_result(full, r, "at the limit");
    vec_result_free(r);
    vec_result_free(full);
    img_free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cached_equals_uncached),
        cmocka_unit_test(test_another_image_empties_it),
        cmocka_unit_test(test_measure_max_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
