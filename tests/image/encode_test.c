/* encode_test.c - img_encode round trips (PNG exact with and without alpha, JPEG and WebP close),
 * its refusals, and EXIF orientation: every one of the 8 orientations maps pixels as the EXIF
 * table says, and malformed EXIF blocks read as orientation 1. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "image/image.h"

static md_image *grid(int w, int h, int alpha)
{
    md_image *img = img_new(w, h);
    assert_non_null(img);
    for (int i = 0; i < w * h; i++) {
        img->rgba[4 * i] = (uint8_t)(i * 7);
        img->rgba[4 * i + 1] = (uint8_t)(i * 13 + 5);
        img->rgba[4 * i + 2] = (uint8_t)(i * 29 + 11);
        img->rgba[4 * i + 3] = alpha ? (uint8_t)(i * 3) : 255;
    }
    img->has_alpha = alpha;
    return img;
}

static md_image *round_trip(const md_image *img, img_format f, size_t *len)
{
    md_buf b;
    md_buf_init(&b, 1 << 24);
    assert_int_equal(img_encode(img, f, 95, &b, NULL), MD_OK);
    assert_int_equal(img_sniff(b.data, b.len), f);
    md_image *out = NULL;
    assert_int_equal(img_decode(b.data, b.len, NULL, &out, NULL), MD_OK);
    *len = b.len;
    md_buf_free(&b);
    return out;
}

static void test_png_exact(void **state)
{
    (void)state;
    for (int alpha = 0; alpha <= 1; alpha++) {
        md_image *img = grid(13, 7, alpha);
        size_t len;
        md_image *back = round_trip(img, IMG_FMT_PNG, &len);
        assert_int_equal(back->width, 13);
        assert_int_equal(back->has_alpha, alpha);
        assert_memory_equal(back->rgba, img->rgba, 13 * 7 * 4);
        img_free(back);
        img_free(img);
    }
}

static void test_lossy_close(void **state)
{
    (void)state;
    md_image *img = img_new(32, 32);
    for (int i = 0; i < 32 * 32; i++) {
        img->rgba[4 * i] = (uint8_t)(i % 32 * 8), img->rgba[4 * i + 1] = 100;
        img->rgba[4 * i + 2] = (uint8_t)(i / 32 * 8), img->rgba[4 * i + 3] = 255;
    }
    const img_format f[] = {IMG_FMT_JPEG, IMG_FMT_WEBP};
    for (int k = 0; k < 2; k++) {
        size_t len;
        md_image *back = round_trip(img, f[k], &len);
        assert_int_equal(back->width, 32);
        assert_int_equal(back->height, 32);
        long err = 0;
        for (int i = 0; i < 32 * 32 * 4; i++)
            err += labs((long)back->rgba[i] - img->rgba[i]);
        assert_true(err / (32 * 32 * 4) < 6);
        img_free(back);
    }
    img_free(img);
}

static void test_refusals(void **state)
{
    (void)state;
    md_image *img = grid(4, 4, 0);
    md_buf b;
    md_buf_init(&b, 1 << 20);
    md_err e;
    assert_int_equal(img_encode(img, IMG_FMT_TIFF, 90, &b, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "output_format");
    assert_int_equal(img_encode(img, IMG_FMT_JPEG, 101, &b, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "jpeg_quality");
    md_buf_init(&b, 10); /* too small a maximum: refused, nothing left behind */
    assert_int_equal(img_encode(img, IMG_FMT_PNG, 0, &b, &e), MD_E_TOO_LARGE);
    assert_int_equal(b.len, 0);
    md_buf_free(&b);
    img_free(img);
}

/* 3 x 2 source, pixels numbered 0..5 in the red channel; expected layouts per orientation. */
static void test_orientations(void **state)
{
    (void)state;
    static const int want[9][6] = {
        {0},
        {0, 1, 2, 3, 4, 5},
        {2, 1, 0, 5, 4, 3},
        {5, 4, 3, 2, 1, 0},
        {3, 4, 5, 0, 1, 2},
        {0, 3, 1, 4, 2, 5},
        {3, 0, 4, 1, 5, 2},
        {5, 2, 4, 1, 3, 0},
        {2, 5, 1, 4, 0, 3},
    };
    for (int o = 1; o <= 8; o++) {
        md_image *img = img_new(3, 2);
        for (int i = 0; i < 6; i++)
            img->rgba[4 * i] = (uint8_t)i;
        assert_int_equal(img_apply_orientation(&img, o, NULL), MD_OK);
        assert_int_equal(img->width, o >= 5 ? 2 : 3);
        for (int i = 0; i < 6; i++)
            assert_int_equal(img->rgba[4 * i], want[o][i]);
        img_free(img);
    }
    md_image *img = img_new(3, 2);
    md_err e;
    assert_int_equal(img_apply_orientation(&img, 9, &e), MD_E_INVALID_PARAM);
    img_free(img);
}

static void test_exif_malformed(void **state)
{
    (void)state;
    /* SOI, APP1 "Exif" whose IFD offset points past the end, then SOS */
    static const uint8_t bad[] = {0xff, 0xd8, 0xff, 0xe1, 0, 16,   'E',  'x', 'i', 'f',  0,
                                  0,    'I',  'I',  42,   0, 0xff, 0xff, 0,   0,   0xff, 0xda};
    assert_int_equal(img_exif_orientation(bad, sizeof bad), 1);
    /* a segment length running past the end */
    static const uint8_t cut[] = {0xff, 0xd8, 0xff, 0xe1, 0x7f, 0xff, 'E', 'x'};
    assert_int_equal(img_exif_orientation(cut, sizeof cut), 1);
    assert_int_equal(img_exif_orientation("\x89PNG\r\n\x1a\n", 8), 1);
    assert_int_equal(img_exif_orientation(NULL, 0), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_exact),      cmocka_unit_test(test_lossy_close),
        cmocka_unit_test(test_refusals),       cmocka_unit_test(test_orientations),
        cmocka_unit_test(test_exif_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
