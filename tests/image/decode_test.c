/* decode_test.c - the decoders against the dev corpus, the three broken files, limits checked
 * before allocating, short and empty inputs, and compositing that matches Pillow.
 *
 * The "claims 100000x100000" cases prove the check comes before the allocation twice over: the
 * files hold no pixel data (a decoder that went on would fail differently), and under ASan an
 * attempt to allocate 40 GB aborts the test instead of returning NULL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <turbojpeg.h>
#include <webp/encode.h>
#include <zlib.h>

#include "image/image.h"

static const char *shared_dir(void)
{
    const char *v = getenv("MODELD_CORPUS_DIR");
    return v && *v ? v : "tests/fixtures/corpus";
}

static void put32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}
static void put32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}
static void put16le(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }

static void expect_error(const void *d, size_t n, int code, const char *field)
{
    md_image *img = (md_image *)1;
    md_err err;
    md_err_clear(&err);
    int rc = img_decode(d, n, NULL, &img, &err);
    if (rc != code)
        fail_msg("expected %s, got %s: %s", md_err_name(code), md_err_name(rc),
                 md_err_message(&err));
    assert_null(img);
    assert_int_equal(err.code, code);
    assert_true(err.msg[0] != '\0');
    if (field)
        assert_string_equal(err.field, field);
    /* The header-only probe agrees on refusals that its header already shows. */
    img_format f;
    int w = -1, h = -1;
    rc = img_probe(d, n, NULL, &f, &w, &h, &err);
    if (code == MD_E_IMAGE_TOO_LARGE || code == MD_E_UNSUPPORTED_FORMAT)
        assert_int_equal(rc, code);
    if (rc != MD_OK)
        assert_true(w == 0 && h == 0);
}

static void test_corpus_bad_files(void **state)
{
    (void)state;
    static const struct { const char *file; int code; } cases[] = {
        {"corrupted_truncated.png", MD_E_IMAGE_TRUNCATED},
        {"corrupted_magic_garbage.png", MD_E_IMAGE_CORRUPT},
        {"non_image_text.png", MD_E_UNSUPPORTED_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", shared_dir(), cases[i].file);
        md_image *img = NULL;
        md_err err;
        int rc = img_load_file(path, NULL, &img, &err);
        if (rc != cases[i].code)
            fail_msg("%s: expected %s, got %s (%s)", cases[i].file, md_err_name(cases[i].code),
                     md_err_name(rc), md_err_message(&err));
        assert_null(img);
        assert_string_equal(err.field, "image");
    }
}

/* Every good corpus image decodes to its labelled size; alpha is seen where it is used. */
static void test_corpus_good_files(void **state)
{
    (void)state;
    char path[1024], line[512];
    snprintf(path, sizeof path, "%s/labels.csv", shared_dir());
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    int good = 0, with_alpha = 0;
    while (fgets(line, sizeof line, f)) {
        char file[256], cls[64], src[256];
        int w, h;
        if (sscanf(line, "%255[^,],%63[^,],%255[^,],%d,%d", file, cls, src, &w, &h) != 5 ||
            strcmp(cls, "corrupted") == 0 || strcmp(cls, "non_image") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", shared_dir(), file);
        md_image *img = NULL;
        md_err err;
        if (img_load_file(path, NULL, &img, &err) != MD_OK)
            fail_msg("%s: %s", file, md_err_message(&err));
        assert_int_equal(img->width, w);
        assert_int_equal(img->height, h);
        with_alpha += img->has_alpha;
        img_free(img);
        good++;
    }
    fclose(f);
    assert_int_equal(good, 60);
    /* 30 corpus images are RGBA with a transparent background (README). */
    assert_int_equal(with_alpha, 30);
}

static void test_missing_file(void **state)
{
    (void)state;
    md_image *img = NULL;
    md_err err;
    assert_int_equal(img_load_file("/nonexistent/x.png", NULL, &img, &err), MD_E_FILE_NOT_FOUND);
    assert_null(img);
    assert_int_equal(img_load_file("/", NULL, &img, &err), MD_E_IO);
}

static void test_short_inputs(void **state)
{
    (void)state;
    expect_error("", 0, MD_E_UNSUPPORTED_FORMAT, "image");
    expect_error("\x89PN", 3, MD_E_IMAGE_TRUNCATED, "image");
    expect_error("RIFF\0\0\0\0WE", 10, MD_E_IMAGE_TRUNCATED, "image");
    expect_error("\xff\xd8\xff", 3, MD_E_IMAGE_TRUNCATED, "image");
    expect_error("BM\x10\0", 4, MD_E_IMAGE_TRUNCATED, "image");
    expect_error("II*\0\x08\0\0\0", 8, MD_E_IMAGE_TRUNCATED, "image");
    expect_error("GIF89a", 6, MD_E_UNSUPPORTED_FORMAT, "image");
}

/* ---- files that claim an enormous size ---------------------------------------------------- */

static void test_huge_png(void **state)
{
    (void)state;
    uint8_t png[8 + 25 + 12] = "\x89PNG\r\n\x1a\n";
    uint8_t *c = png + 8;
    put32be(c, 13);
    memcpy(c + 4, "IHDR", 4);
    put32be(c + 8, 100000);
    put32be(c + 12, 100000);
    c[16] = 8, c[17] = 6, c[18] = 0, c[19] = 0, c[20] = 0;
    put32be(c + 21, (uint32_t)crc32(0, c + 4, 17));
    c += 25;
    put32be(c, 0);
    memcpy(c + 4, "IEND", 4);
    put32be(c + 8, (uint32_t)crc32(0, c + 4, 4));
    expect_error(png, sizeof png, MD_E_IMAGE_TOO_LARGE, "width");
    /* Within the sides but over the pixel budget. */
    img_limits lim = img_limits_default();
    lim.max_width = lim.max_height = 200000;
    md_image *img = NULL;
    md_err err;
    assert_int_equal(img_decode(png, sizeof png, &lim, &img, &err), MD_E_IMAGE_TOO_LARGE);
    assert_string_equal(err.field, "pixels");
}

static void test_huge_bmp(void **state)
{
    (void)state;
    uint8_t bmp[54] = "BM";
    put32le(bmp + 2, sizeof bmp);
    put32le(bmp + 10, 54);
    put32le(bmp + 14, 40);
    put32le(bmp + 18, 100000);
    put32le(bmp + 22, (uint32_t)-100000); /* top-down */
    put16le(bmp + 26, 1);
    put16le(bmp + 28, 24);
    expect_error(bmp, sizeof bmp, MD_E_IMAGE_TOO_LARGE, "width");
}

static void test_huge_tiff(void **state)
{
    (void)state;
    /* Classic little-endian TIFF, one IFD of 8 entries, one 8-bit grey strip. */
    static const uint16_t tags[8][2] = {{256, 4}, {257, 4}, {258, 3}, {259, 3},
                                        {262, 3}, {273, 4}, {278, 4}, {279, 4}};
    const uint32_t vals[8] = {100000, 100000, 8, 1, 1, 8, 100000, 100};
    uint8_t t[8 + 2 + 8 * 12 + 4] = "II*";
    put32le(t + 4, 8);
    put16le(t + 8, 8);
    for (int i = 0; i < 8; i++) {
        uint8_t *e = t + 10 + 12 * i;
        put16le(e, tags[i][0]);
        put16le(e + 2, tags[i][1]);
        put32le(e + 4, 1);
        if (tags[i][1] == 3)
            put16le(e + 8, vals[i]);
        else
            put32le(e + 8, vals[i]);
    }
    expect_error(t, sizeof t, MD_E_IMAGE_TOO_LARGE, "width");
}

static void test_huge_jpeg(void **state)
{
    (void)state;
    uint8_t px[16 * 16 * 3];
    memset(px, 90, sizeof px);
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    assert_int_equal(tjCompress2(tj, px, 16, 0, 16, TJPF_RGB, &jpg, &n, TJSAMP_444, 90, 0), 0);
    size_t i = 2;
    while (i + 9 < n && !(jpg[i] == 0xff && jpg[i + 1] == 0xc0))
        i++;
    assert_true(i + 9 < n);
    /* 60000 x 60000 (libjpeg itself stops at 65500) */
    jpg[i + 5] = jpg[i + 7] = 0xea;
    jpg[i + 6] = jpg[i + 8] = 0x60;
    expect_error(jpg, n, MD_E_IMAGE_TOO_LARGE, "width");
    tjFree(jpg);
    tjDestroy(tj);
}

static void test_huge_webp(void **state)
{
    (void)state;
    uint8_t px[8 * 8 * 4];
    memset(px, 200, sizeof px);
    uint8_t *webp = NULL;
    size_t n = WebPEncodeLosslessRGBA(px, 8, 8, 32, &webp);
    assert_true(n > 25);
    assert_memory_equal(webp + 12, "VP8L", 4);
    /* VP8L: 14 bits width-1 and 14 bits height-1 after the 0x2f signature byte. */
    webp[21] = webp[22] = webp[23] = 0xff;
    webp[24] |= 0x0f;
    expect_error(webp, n, MD_E_IMAGE_TOO_LARGE, "width");
    WebPFree(webp);
}

static void test_sniff_and_names(void **state)
{
    (void)state;
    assert_int_equal(img_sniff("\x89PNG\r\n\x1a\nxxxx", 12), IMG_FMT_PNG);
    assert_int_equal(img_sniff("RIFF\0\0\0\0WEBPVP8 ", 16), IMG_FMT_WEBP);
    assert_int_equal(img_sniff("RIFF\0\0\0\0WAVEfmt ", 16), IMG_FMT_UNKNOWN);
    assert_int_equal(img_sniff("MM\0*\0\0\0\x08", 8), IMG_FMT_TIFF);
    assert_int_equal(img_sniff(NULL, 0), IMG_FMT_UNKNOWN);
    assert_string_equal(img_format_name(IMG_FMT_JPEG), "jpeg");
    assert_string_equal(img_format_name(IMG_FMT_UNKNOWN), "unknown");
}

static void test_composite_matches_pillow(void **state)
{
    (void)state;
    /* Values from Pillow 9.4: Image.alpha_composite over opaque white. */
    md_image *img = img_new(3, 1);
    assert_non_null(img);
    const uint8_t in[12] = {255, 0, 0, 128, 10, 200, 30, 1, 0, 0, 0, 254};
    const uint8_t want[12] = {255, 127, 127, 255, 254, 255, 254, 255, 1, 1, 1, 255};
    memcpy(img->rgba, in, sizeof in);
    img->has_alpha = 1;
    img_composite(img, 255, 255, 255);
    assert_memory_equal(img->rgba, want, sizeof want);
    assert_int_equal(img->has_alpha, 0);
    img_free(img);
    assert_null(img_new(0, 5));
    img_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_bad_files), cmocka_unit_test(test_corpus_good_files),
        cmocka_unit_test(test_missing_file),     cmocka_unit_test(test_short_inputs),
        cmocka_unit_test(test_huge_png),         cmocka_unit_test(test_huge_bmp),
        cmocka_unit_test(test_huge_tiff),        cmocka_unit_test(test_huge_jpeg),
        cmocka_unit_test(test_huge_webp),        cmocka_unit_test(test_sniff_and_names),
        cmocka_unit_test(test_composite_matches_pillow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
