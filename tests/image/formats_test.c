/* formats_test.c - each format round-trips: an image is encoded in the test (libspng,
 * TurboJPEG, libwebp, libtiff, or BMP bytes written by hand), decoded by us and compared; then
 * the same bytes cut short must give MD_E_IMAGE_TRUNCATED and damaged ones MD_E_IMAGE_CORRUPT.
 * A CMYK JPEG comes from a fixture (tests/fixtures/image/gen.py, Pillow).
 * Every BMP variant we claim to read is covered: 1/4/8-bit palettes, 16-bit 5-6-5 bit fields,
 * 24-bit, 32-bit BI_RGB (padding byte, not alpha) and 32-bit bit fields with alpha, bottom-up
 * and top-down, and the OS/2 core header.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <spng.h>
#include <tiffio.h>
#include <turbojpeg.h>
#include <webp/encode.h>

#include "image/image.h"

#define W 13
#define H 7

/* A test pattern with every channel varying, alpha too when with_alpha. */
static void pattern(uint8_t *rgba, int with_alpha)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = rgba + (y * W + x) * 4;
            p[0] = (uint8_t)(x * 19);
            p[1] = (uint8_t)(y * 36);
            p[2] = (uint8_t)(255 - x * 7 - y * 11);
            p[3] = with_alpha ? (uint8_t)((x + y) % 3 == 0 ? 0 : 255 - x * 9) : 255;
        }
}

static md_image *decode_ok(const void *d, size_t n, img_format want)
{
    md_image *img = NULL;
    md_err err;
    int rc = img_decode(d, n, NULL, &img, &err);
    if (rc != MD_OK)
        fail_msg("%s: %s", img_format_name(want), md_err_message(&err));
    img_format f;
    int w, h;
    assert_int_equal(img_probe(d, n, NULL, &f, &w, &h, &err), MD_OK);
    assert_int_equal(f, want);
    assert_int_equal(w, img->width);
    assert_int_equal(h, img->height);
    return img;
}

static void expect_code(const void *d, size_t n, int code)
{
    md_image *img = NULL;
    md_err err;
    int rc = img_decode(d, n, NULL, &img, &err);
    if (rc != code)
        fail_msg("expected %s, got %s (%s)", md_err_name(code), md_err_name(rc),
                 md_err_message(&err));
    assert_null(img);
}

static void compare(const md_image *img, const uint8_t *want, int tol, int check_alpha)
{
    assert_int_equal(img->width, W);
    assert_int_equal(img->height, H);
    for (int i = 0; i < W * H * 4; i++) {
        if (i % 4 == 3 && !check_alpha)
            continue;
        if (want[i % 4 == 3 ? i : i - i % 4 + 3] == 0 && i % 4 != 3)
            continue; /* colour under alpha 0 is undefined */
        if (abs(img->rgba[i] - want[i]) > tol)
            fail_msg("byte %d (pixel %d, channel %d): got %d, want %d", i, i / 4, i % 4,
                     img->rgba[i], want[i]);
    }
}

static void test_png(void **state)
{
    (void)state;
    uint8_t px[W * H * 4];
    pattern(px, 1);
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    struct spng_ihdr ihdr = {.width = W, .height = H, .bit_depth = 8,
                             .color_type = SPNG_COLOR_TYPE_TRUECOLOR_ALPHA};
    spng_set_ihdr(ctx, &ihdr);
    assert_int_equal(spng_encode_image(ctx, px, sizeof px, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE), 0);
    size_t n;
    int e;
    uint8_t *png = spng_get_png_buffer(ctx, &n, &e);
    assert_non_null(png);
    md_image *img = decode_ok(png, n, IMG_FMT_PNG);
    compare(img, px, 0, 1);
    assert_int_equal(img->has_alpha, 1);
    img_free(img);
    expect_code(png, n - 20, MD_E_IMAGE_TRUNCATED);
    png[40] ^= 0x55; /* inside IDAT: CRC mismatch */
    expect_code(png, n, MD_E_IMAGE_CORRUPT);
    free(png);
    spng_ctx_free(ctx);
}

static void test_jpeg(void **state)
{
    (void)state;
    uint8_t px[W * H * 4];
    pattern(px, 0);
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    assert_int_equal(tjCompress2(tj, px, W, 0, H, TJPF_RGBA, &jpg, &n, TJSAMP_444, 100, 0), 0);
    md_image *img = decode_ok(jpg, n, IMG_FMT_JPEG);
    compare(img, px, 6, 1); /* lossy, but quality 100 without subsampling stays close */
    assert_int_equal(img->has_alpha, 0);
    img_free(img);
    expect_code(jpg, n / 2, MD_E_IMAGE_TRUNCATED);
    uint8_t bad[64];
    memcpy(bad, jpg, 4);
    memset(bad + 4, 0x11, sizeof bad - 4); /* SOI, then a marker segment of nonsense */
    bad[sizeof bad - 2] = 0xff, bad[sizeof bad - 1] = 0xd9;
    expect_code(bad, sizeof bad, MD_E_IMAGE_CORRUPT);
    /* Greyscale */
    tjFree(jpg);
    jpg = NULL;
    assert_int_equal(tjCompress2(tj, px, W, 0, H, TJPF_RGBA, &jpg, &n, TJSAMP_GRAY, 90, 0), 0);
    img = decode_ok(jpg, n, IMG_FMT_JPEG);
    assert_int_equal(img->rgba[0], img->rgba[1]);
    assert_int_equal(img->rgba[1], img->rgba[2]);
    img_free(img);
    tjFree(jpg);
    tjDestroy(tj);
}

/* An Adobe CMYK JPEG written by Pillow (tests/fixtures/image/gen.py): inverted inks to RGB,
 * R = (255 - C)(255 - K) / 255 as Pillow converts. */
static void test_jpeg_cmyk(void **state)
{
    (void)state;
    const char *src = getenv("MODELD_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/image/cmyk.jpg", src && *src ? src : ".");
    md_image *img = NULL;
    md_err err;
    if (img_load_file(path, NULL, &img, &err) != MD_OK)
        fail_msg("%s: %s", path, md_err_message(&err));
    uint8_t want[W * H * 4];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int ink[3] = {x * 19, y * 36, 255 - x * 7 - y * 11}, k = 12 * (x + y);
            for (int c = 0; c < 3; c++)
                want[(y * W + x) * 4 + c] = (uint8_t)((255 - ink[c]) * (255 - k) / 255);
            want[(y * W + x) * 4 + 3] = 255;
        }
    compare(img, want, 8, 1);
    img_free(img);
}

/* A 1.7 KB cut of a 6000x6000 JPEG with an EOI glued on (tests/fixtures/image/gen.py): the
 * header is whole, so the probe passes, but the pixels must be refused as truncated, with and
 * without the EOI, and the probe must not allocate the 144 MB the header asks for. */
static void test_jpeg_cut_with_eoi(void **state)
{
    (void)state;
    const char *src = getenv("MODELD_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/image/cut6000.jpg", src && *src ? src : ".");
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_int_equal(n, 1702);
    img_format fmt;
    int w, h;
    md_err err;
    assert_int_equal(img_probe(buf, n, NULL, &fmt, &w, &h, &err), MD_OK);
    assert_int_equal(w, 6000);
    assert_int_equal(h, 6000);
    md_image *img = NULL;
    assert_int_equal(img_decode(buf, n, NULL, &img, &err), MD_E_IMAGE_TRUNCATED);
    assert_null(img);
    assert_string_equal(md_err_name(err.code), "truncated_image");
    assert_int_equal(img_decode(buf, n - 2, NULL, &img, &err), MD_E_IMAGE_TRUNCATED);
    assert_null(img);
}

static void test_webp(void **state)
{
    (void)state;
    uint8_t px[W * H * 4];
    pattern(px, 1);
    WebPConfig cfg;
    WebPConfigInit(&cfg);
    cfg.lossless = 1;
    cfg.exact = 1; /* keep RGB under alpha 0, so the comparison is exact */
    WebPPicture pic;
    WebPPictureInit(&pic);
    pic.use_argb = 1, pic.width = W, pic.height = H;
    WebPPictureImportRGBA(&pic, px, W * 4);
    WebPMemoryWriter wr;
    WebPMemoryWriterInit(&wr);
    pic.writer = WebPMemoryWrite, pic.custom_ptr = &wr;
    assert_true(WebPEncode(&cfg, &pic));
    md_image *img = decode_ok(wr.mem, wr.size, IMG_FMT_WEBP);
    compare(img, px, 0, 1);
    img_free(img);
    expect_code(wr.mem, wr.size - 8, MD_E_IMAGE_TRUNCATED);
    memset(wr.mem + 21, 0, wr.size - 21);
    expect_code(wr.mem, wr.size, MD_E_IMAGE_CORRUPT);
    WebPPictureFree(&pic);
    WebPMemoryWriterClear(&wr);
}

/* Write a TIFF with libtiff to a temporary file and read its bytes back. New (free). */
static uint8_t *make_tiff(const uint8_t *px, int spp, size_t *n)
{
    char path[] = "/tmp/modeld_tiff_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    TIFF *t = TIFFOpen(path, "w");
    assert_non_null(t);
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, W);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, H);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, spp);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 2);
    if (spp == 4) {
        uint16_t extra = EXTRASAMPLE_UNASSALPHA;
        TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &extra);
    }
    uint8_t row[W * 4];
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++)
            memcpy(row + x * spp, px + (y * W + x) * 4, (size_t)spp);
        assert_int_equal(TIFFWriteScanline(t, row, (uint32_t)y, 0), 1);
    }
    TIFFClose(t);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *buf = malloc(1 << 16);
    *n = fread(buf, 1, 1 << 16, f);
    fclose(f);
    unlink(path);
    return buf;
}

static void test_tiff(void **state)
{
    (void)state;
    uint8_t px[W * H * 4];
    pattern(px, 0);
    size_t n;
    uint8_t *tif = make_tiff(px, 3, &n);
    md_image *img = decode_ok(tif, n, IMG_FMT_TIFF);
    compare(img, px, 0, 1);
    img_free(img);
    free(tif);
    /* Unassociated alpha: libtiff premultiplies, we undo it (exact up to rounding). */
    pattern(px, 1);
    tif = make_tiff(px, 4, &n);
    img = decode_ok(tif, n, IMG_FMT_TIFF);
    /* premultiplying by a small alpha loses colour precision; allow what 8 bits keep */
    for (int i = 0; i < W * H; i++) {
        int a = px[i * 4 + 3];
        assert_int_equal(img->rgba[i * 4 + 3], a);
        for (int c = 0; c < 3 && a > 0; c++)
            assert_true(abs(img->rgba[i * 4 + c] - px[i * 4 + c]) <= 255 / a + 1);
    }
    assert_int_equal(img->has_alpha, 1);
    img_free(img);
    /* libtiff writes the directory after the strips: a cut file loses its directory. */
    expect_code(tif, 20, MD_E_IMAGE_TRUNCATED);
    uint8_t bad[16] = "II*\0\x08\0\0\0\xff\xff";
    expect_code(bad, sizeof bad, MD_E_IMAGE_CORRUPT);
    free(tif);
}

/* ---- BMP, written by hand ------------------------------------------------------------------ */

typedef struct bmpw {
    uint8_t d[4096];
    size_t n;
} bmpw;

static void le(uint8_t *p, uint32_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Headers for a W x H image; hsize 12 (core) or 40/108; returns the offset of the pixel data,
 * which starts after extra bytes (masks or palette) the caller fills at d + 14 + hsize. */
static size_t bmp_header(bmpw *b, unsigned hsize, unsigned bpp, unsigned comp, int topdown,
                         size_t extra, size_t stride)
{
    memset(b, 0, sizeof *b);
    size_t off = 14 + hsize + extra;
    b->n = off + stride * H;
    assert_true(b->n <= sizeof b->d);
    memcpy(b->d, "BM", 2);
    le(b->d + 2, (uint32_t)b->n, 4);
    le(b->d + 10, (uint32_t)off, 4);
    le(b->d + 14, hsize, 4);
    if (hsize == 12) {
        le(b->d + 18, W, 2), le(b->d + 20, H, 2), le(b->d + 22, 1, 2), le(b->d + 24, bpp, 2);
        return off;
    }
    le(b->d + 18, W, 4);
    le(b->d + 22, topdown ? (uint32_t)-H : H, 4);
    le(b->d + 26, 1, 2), le(b->d + 28, bpp, 2), le(b->d + 30, comp, 4);
    return off;
}

static uint8_t *bmp_row(bmpw *b, size_t off, size_t stride, int y, int topdown)
{
    return b->d + off + stride * (size_t)(topdown ? y : H - 1 - y);
}

static void test_bmp_24_and_32(void **state)
{
    (void)state;
    uint8_t px[W * H * 4];
    pattern(px, 1);
    bmpw b;
    for (int td = 0; td < 2; td++) {
        size_t stride = (W * 3 + 3) / 4 * 4, off = bmp_header(&b, 40, 24, 0, td, 0, stride);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                uint8_t *p = bmp_row(&b, off, stride, y, td) + x * 3, *s = px + (y * W + x) * 4;
                p[0] = s[2], p[1] = s[1], p[2] = s[0];
            }
        md_image *img = decode_ok(b.d, b.n, IMG_FMT_BMP);
        compare(img, px, 0, 0);
        assert_int_equal(img->has_alpha, 0);
        img_free(img);
        expect_code(b.d, b.n - 1, MD_E_IMAGE_TRUNCATED);
    }
    /* 32-bit: BI_RGB ignores the fourth byte; V4 header with bit fields keeps alpha. */
    for (int v4 = 0; v4 < 2; v4++) {
        size_t stride = W * 4, off = bmp_header(&b, v4 ? 108 : 40, 32, v4 ? 3 : 0, 1, 0, stride);
        if (v4) {
            le(b.d + 54, 0x00ff0000, 4), le(b.d + 58, 0x0000ff00, 4);
            le(b.d + 62, 0x000000ff, 4), le(b.d + 66, 0xff000000, 4);
        }
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                uint8_t *p = bmp_row(&b, off, stride, y, 1) + x * 4, *s = px + (y * W + x) * 4;
                p[0] = s[2], p[1] = s[1], p[2] = s[0], p[3] = s[3];
            }
        md_image *img = decode_ok(b.d, b.n, IMG_FMT_BMP);
        compare(img, px, 0, v4);
        assert_int_equal(img->has_alpha, v4);
        img_free(img);
    }
}

static void test_bmp_16_bitfields(void **state)
{
    (void)state;
    uint8_t px[W * H * 4];
    pattern(px, 0);
    bmpw b;
    size_t stride = (W * 2 + 3) / 4 * 4, off = bmp_header(&b, 40, 16, 3, 0, 12, stride);
    le(b.d + 54, 0xf800, 4), le(b.d + 58, 0x07e0, 4), le(b.d + 62, 0x001f, 4);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *s = px + (y * W + x) * 4;
            unsigned v = (s[0] >> 3) << 11 | (s[1] >> 2) << 5 | s[2] >> 3;
            le(bmp_row(&b, off, stride, y, 0) + x * 2, v, 2);
        }
    md_image *img = decode_ok(b.d, b.n, IMG_FMT_BMP);
    compare(img, px, 8, 0); /* 5/6 bits per channel, scaled back to 8 */
    img_free(img);
    le(b.d + 58, 0x0500, 4); /* a mask with a gap in it */
    expect_code(b.d, b.n, MD_E_IMAGE_CORRUPT);
}

/* 1, 4 and 8 bits with a palette that maps index i to a distinct grey-ish colour. */
static void test_bmp_palettes(void **state)
{
    (void)state;
    static const unsigned bpps[] = {1, 4, 8};
    for (size_t k = 0; k < 3; k++) {
        unsigned bpp = bpps[k], ncol = 1u << bpp;
        for (int core = 0; core < 2; core++) {
            bmpw b;
            unsigned entry = core ? 3 : 4, hsize = core ? 12 : 40;
            size_t stride = ((size_t)W * bpp + 31) / 32 * 4;
            size_t off = bmp_header(&b, hsize, bpp, 0, 0, ncol * entry, stride);
            uint8_t *pal = b.d + 14 + hsize;
            for (unsigned i = 0; i < ncol; i++)
                pal[i * entry] = (uint8_t)(i * 3), pal[i * entry + 1] = (uint8_t)(255 - i),
                pal[i * entry + 2] = (uint8_t)(i * 7);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    unsigned idx = (unsigned)(x + y * 3) % ncol;
                    uint8_t *row = bmp_row(&b, off, stride, y, 0);
                    row[x * bpp / 8] |= (uint8_t)(idx << (8 - bpp - (x * bpp) % 8));
                }
            md_image *img = decode_ok(b.d, b.n, IMG_FMT_BMP);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    unsigned idx = (unsigned)(x + y * 3) % ncol;
                    const uint8_t *p = img->rgba + (y * W + x) * 4;
                    assert_int_equal(p[0], (uint8_t)(idx * 7));
                    assert_int_equal(p[1], (uint8_t)(255 - idx));
                    assert_int_equal(p[2], (uint8_t)(idx * 3));
                    assert_int_equal(p[3], 255);
                }
            img_free(img);
            expect_code(b.d, 14 + hsize + 2, MD_E_IMAGE_TRUNCATED); /* inside the palette */
        }
    }
}

static void test_bmp_unsupported(void **state)
{
    (void)state;
    bmpw b;
    bmp_header(&b, 40, 8, 1, 0, 1024, 16); /* RLE8 */
    expect_code(b.d, b.n, MD_E_UNSUPPORTED_FORMAT);
    bmp_header(&b, 40, 2, 0, 0, 16, 4); /* 2 bits per pixel */
    expect_code(b.d, b.n, MD_E_UNSUPPORTED_FORMAT);
    bmp_header(&b, 40, 24, 0, 0, 0, 40);
    le(b.d + 10, 4000, 4); /* pixel data offset beyond the file */
    expect_code(b.d, b.n, MD_E_IMAGE_CORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png),           cmocka_unit_test(test_jpeg),
        cmocka_unit_test(test_jpeg_cmyk),
        cmocka_unit_test(test_jpeg_cut_with_eoi),
        cmocka_unit_test(test_webp),          cmocka_unit_test(test_tiff),
        cmocka_unit_test(test_bmp_24_and_32), cmocka_unit_test(test_bmp_16_bitfields),
        cmocka_unit_test(test_bmp_palettes),  cmocka_unit_test(test_bmp_unsupported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
