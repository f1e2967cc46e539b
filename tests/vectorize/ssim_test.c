/* ssim_test.c - vec_ssim agrees with scikit-image's structural_similarity.
 *
 * tests/fixtures/ssim/expected.txt holds values computed by gen.py (next to it) with
 * scikit-image 0.19, the way ../shared/tools/score_svg.py scores SVGs: synthetic pairs stored as
 * PNGs, and every good image of the dev corpus against a degraded copy this test rebuilds.
 * The issue asks for agreement within 0.002; we hold the implementation to 1e-6, since it
 * follows the same arithmetic and any larger gap means a real difference (window, border mode,
 * crop or the grey conversion).
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

#define TOL 1e-6

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* RGB bytes of an image file composited on white (as the scorer does). New (free). */
static uint8_t *load_on_white(const char *path, int *w, int *h)
{
    md_image *img = NULL;
    md_err err;
    int rc = img_load_file(path, NULL, &img, &err);
    if (rc != MD_OK)
        fail_msg("cannot load %s: %s", path, md_err_message(&err));
    img_composite(img, 255, 255, 255);
    size_t n = (size_t)img->width * (size_t)img->height;
    uint8_t *rgb = malloc(n * 3);
    assert_non_null(rgb);
    for (size_t i = 0; i < n; i++)
        memcpy(rgb + i * 3, img->rgba + i * 4, 3);
    *w = img->width;
    *h = img->height;
    img_free(img);
    return rgb;
}

/* The degraded copy gen.py builds: right neighbour's colour, low 5 bits cleared. */
static uint8_t *degrade(const uint8_t *rgb, int w, int h)
{
    uint8_t *out = malloc((size_t)w * (size_t)h * 3);
    assert_non_null(out);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int sx = x + 1 < w ? x + 1 : x;
                size_t src = ((size_t)y * (size_t)w + (size_t)sx) * 3 + (size_t)c;
                out[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] = rgb[src] & 0xE0;
            }
    return out;
}

static void check_case(const char *kind, const char *name, int ew, int eh, double ergb,
                       double egrey, int *checked)
{
    char pa[1024], pb[1024];
    uint8_t *a, *b;
    int w, h, w2, h2;
    if (strcmp(kind, "pair") == 0) {
        const char *src = env_or("MODELD_SOURCE_DIR", ".");
        snprintf(pa, sizeof pa, "%s/tests/fixtures/ssim/pair_%s_a.png", src, name);
        snprintf(pb, sizeof pb, "%s/tests/fixtures/ssim/pair_%s_b.png", src, name);
        a = load_on_white(pa, &w, &h);
        b = load_on_white(pb, &w2, &h2);
        assert_int_equal(w, w2);
        assert_int_equal(h, h2);
    } else {
        const char *shared = env_or("MODELD_CORPUS_DIR", "tests/fixtures/corpus");
        snprintf(pa, sizeof pa, "%s/%s", shared, name);
        a = load_on_white(pa, &w, &h);
        b = degrade(a, w, h);
    }
    assert_int_equal(w, ew);
    assert_int_equal(h, eh);
    vec_ssim_result r;
    md_err err;
    assert_int_equal(vec_ssim(a, b, w, h, &r, &err), MD_OK);
    if (r.rgb < ergb - TOL || r.rgb > ergb + TOL || r.luma < egrey - TOL || r.luma > egrey + TOL)
        fail_msg("%s %s: ours rgb %.9f grey %.9f, skimage rgb %.9f grey %.9f", kind, name, r.rgb,
                 r.luma, ergb, egrey);
    (*checked)++;
    free(a);
    free(b);
}

static void test_against_skimage(void **state)
{
    (void)state;
    char path[1024], kind[16], name[256];
    snprintf(path, sizeof path, "%s/tests/fixtures/ssim/expected.txt",
             env_or("MODELD_SOURCE_DIR", "."));
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    int w, h, checked = 0, corpus = 0;
    double rgb, grey;
    while (fscanf(f, "%15s %255s %d %d %lf %lf", kind, name, &w, &h, &rgb, &grey) == 6) {
        check_case(kind, name, w, h, rgb, grey, &checked);
        corpus += strcmp(kind, "corpus") == 0;
    }
    fclose(f);
    assert_int_equal(checked, 63); /* 3 synthetic pairs + the 60 good dev-corpus images */
    assert_int_equal(corpus, 60);
}

static void test_identical_is_one(void **state)
{
    (void)state;
    /* Also smaller than the 11x11 window: we average over the whole image instead of failing. */
    int sizes[][2] = {{1, 1}, {5, 9}, {11, 11}, {40, 17}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int w = sizes[s][0], h = sizes[s][1];
        uint8_t *a = malloc((size_t)w * (size_t)h * 3);
        assert_non_null(a);
        for (int i = 0; i < w * h * 3; i++)
            a[i] = (uint8_t)(i * 37 % 251);
        vec_ssim_result r;
        assert_int_equal(vec_ssim(a, a, w, h, &r, NULL), MD_OK);
        assert_true(r.rgb > 1 - 1e-12 && r.rgb < 1 + 1e-12);
        assert_true(r.luma > 1 - 1e-12 && r.luma < 1 + 1e-12);
        free(a);
    }
}

static void test_bad_arguments(void **state)
{
    (void)state;
    uint8_t px[3] = {0, 0, 0};
    vec_ssim_result r;
    md_err err;
    assert_int_equal(vec_ssim(px, px, 0, 1, &r, &err), MD_E_INVALID_PARAM);
    assert_int_equal(vec_ssim(NULL, px, 1, 1, &r, &err), MD_E_INVALID_PARAM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_skimage),
        cmocka_unit_test(test_identical_is_one),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
