/* resize_test.c - img_fit: the result fits the box with the aspect kept (each side rounded, at
 * least 1), an image that fits is copied unchanged, area averaging gives the exact mean of
 * each block on an integer ratio, transparent pixels do not bleed their colour into opaque
 * ones, and a box under 1 x 1 is refused naming "size". */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "image/image.h"

#include <string.h>

static md_image *solid(int w, int h, uint8_t r, uint8_t g, uint8_t b, uint8_t a)
{
    md_image *img = img_new(w, h);
    assert_non_null(img);
    for (int i = 0; i < w * h; i++) {
        uint8_t *p = img->rgba + i * 4;
        p[0] = r, p[1] = g, p[2] = b, p[3] = a;
    }
    img->has_alpha = a < 255;
    return img;
}

static void check_size(int w, int h, int bw, int bh, int ew, int eh)
{
    md_image *img = solid(w, h, 1, 2, 3, 255), *out = NULL;
    assert_int_equal(img_fit(img, bw, bh, &out, NULL), MD_OK);
    assert_int_equal(out->width, ew);
    assert_int_equal(out->height, eh);
    assert_int_equal(out->rgba[0], 1);
    assert_int_equal(out->rgba[2], 3);
    assert_int_equal(out->has_alpha, 0);
    img_free(out);
    img_free(img);
}

static void test_sizes(void **state)
{
    (void)state;
    check_size(600, 240, 400, 400, 400, 160);
    check_size(240, 600, 400, 400, 160, 400);
    check_size(1000, 1000, 400, 400, 400, 400);
    check_size(96, 64, 400, 400, 96, 64);   /* fits: unchanged */
    check_size(4000, 3, 400, 400, 400, 1);  /* never 0 */
}

static void test_block_means(void **state)
{
    (void)state;
    /* 4x2 -> 2x1: each output pixel is the mean of a 2x2 block. */
    md_image *img = img_new(4, 2), *out = NULL;
    const uint8_t v[8] = {0, 100, 200, 50, 20, 40, 60, 250};
    for (int i = 0; i < 8; i++) {
        uint8_t *p = img->rgba + i * 4;
        p[0] = p[1] = p[2] = v[i];
        p[3] = 255;
    }
    assert_int_equal(img_fit(img, 2, 2, &out, NULL), MD_OK);
    assert_int_equal(out->width, 2);
    assert_int_equal(out->height, 1);
    assert_int_equal(out->rgba[0], (0 + 100 + 20 + 40) / 4);
    assert_int_equal(out->rgba[4], (200 + 50 + 60 + 250) / 4);
    img_free(out);
    img_free(img);
}

static void test_alpha_weighting(void **state)
{
    (void)state;
    /* Left half opaque red, right half fully transparent green: the merged pixel is red at half
     * opacity, with no green in it. */
    md_image *img = img_new(2, 1), *out = NULL;
    memcpy(img->rgba, (uint8_t[]){255, 0, 0, 255, 0, 255, 0, 0}, 8);
    img->has_alpha = 1;
    assert_int_equal(img_fit(img, 1, 1, &out, NULL), MD_OK);
    assert_int_equal(out->rgba[0], 255);
    assert_int_equal(out->rgba[1], 0);
    assert_int_equal(out->rgba[3], 128);
    assert_int_equal(out->has_alpha, 1);
    img_free(out);
    md_err e;
    assert_int_equal(img_fit(img, 0, 10, &out, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "size");
    assert_null(out);
    img_free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_block_means),
        cmocka_unit_test(test_alpha_weighting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
