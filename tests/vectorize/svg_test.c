/* svg_test.c - the SVG writer: compact relative path data, shortest numbers, colours,
 * gradients, determinism, SVGZ, and that rsvg-convert renders our SVG like the source image. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "vectorize/vec_int.h"

static vec_seg seg(vec_seg_kind k, float a, float b, float c, float d, float e, float f)
{
    vec_seg s = {k, {{a, b}, {c, d}, {e, f}}};
    return s;
}

static char *write_doc(vec_doc *d, int precision)
{
    vec_params p;
    vec_params_default(&p);
    p.path_precision = precision;
    md_buf b;
    md_buf_init(&b, 1 << 20);
    md_err e;
    assert_int_equal(vec_svg_write(d, &p, &b, &e), MD_OK);
    return md_buf_steal(&b, NULL);
}

static void test_path_data_is_compact(void **state)
{
    (void)state;
    vec_seg s[] = {seg(VEC_SEG_MOVE, 1, 2, 0, 0, 0, 0),       seg(VEC_SEG_LINE, 11, 2, 0, 0, 0, 0),
                   seg(VEC_SEG_LINE, 11, 12.5f, 0, 0, 0, 0),   seg(VEC_SEG_LINE, 1.25f, 12, 0, 0, 0, 0),
                   seg(VEC_SEG_CUBIC, 1, 10, 0.5f, 5, 1, 2),  seg(VEC_SEG_CLOSE, 0, 0, 0, 0, 0, 0),
                   seg(VEC_SEG_MOVE, 4, 4, 0, 0, 0, 0),       seg(VEC_SEG_LINE, 5, 5, 0, 0, 0, 0),
                   seg(VEC_SEG_LINE, 6, 4, 0, 0, 0, 0),       seg(VEC_SEG_LINE, 4, 4, 0, 0, 0, 0),
                   seg(VEC_SEG_CLOSE, 0, 0, 0, 0, 0, 0)};
    vec_path path = {.fill = {.kind = VEC_PAINT_SOLID, .rgba = {0x11, 0x22, 0x33, 255}},
                     .nseg = sizeof s / sizeof s[0], .segs = s};
    vec_doc d = {.width = 20, .height = 15, .npaths = 1, .paths = &path};
    char *svg = write_doc(&d, 2);
    assert_non_null(strstr(svg, "width=\"20\" height=\"15\" viewBox=\"0 0 20 15\""));
    /* h/v for axis-aligned lines, relative numbers, shortest forms, implicit repeats, the
     * closing line left to z, relative m after z */
    assert_non_null(strstr(svg, "d=\"M1 2h10v10.5l-9.75-.5c-.25-2-.75-7-.25-10zm3 2 1 1 1-1z\""));
    assert_non_null(strstr(svg, "fill=\"#123\""));
    free(svg);
    svg = write_doc(&d, 0); /* rounding happens on absolute values: no drift */
    assert_non_null(strstr(svg, "d=\"M1 2h10v11l-10-1c0-2 0-7 0-10z"));
    free(svg);
}

static void test_colours_and_defaults(void **state)
{
    (void)state;
    vec_seg s[] = {seg(VEC_SEG_MOVE, 0, 0, 0, 0, 0, 0), seg(VEC_SEG_LINE, 1, 0, 0, 0, 0, 0),
                   seg(VEC_SEG_LINE, 1, 1, 0, 0, 0, 0), seg(VEC_SEG_CLOSE, 0, 0, 0, 0, 0, 0)};
    vec_path paths[3] = {
        {.fill = {.kind = VEC_PAINT_SOLID, .rgba = {0, 0, 0, 255}}, .nseg = 4, .segs = s},
        {.fill = {.kind = VEC_PAINT_SOLID, .rgba = {0x12, 0x34, 0x56, 128}}, .nseg = 4, .segs = s},
        {.fill = {.kind = VEC_PAINT_LINEAR, .x1 = 0, .y1 = 0, .x2 = 10, .y2 = 0.5f, .nstops = 2,
                  .stops = {{0, {255, 0, 0, 255}}, {1, {0, 0, 255, 255}}}},
         .nseg = 4, .segs = s},
    };
    vec_doc d = {.width = 2, .height = 2, .npaths = 3, .paths = paths};
    char *svg = write_doc(&d, 1);
    assert_non_null(strstr(svg, "<path d=\"M0 0h1v1z\"/>")); /* black is the default fill */
    assert_non_null(strstr(svg, "fill=\"#123456\" fill-opacity=\".502\""));
    assert_non_null(strstr(svg, "<defs><linearGradient id=\"g0\" gradientUnits=\"userSpaceOnUse\" "
                                "x1=\"0\" y1=\"0\" x2=\"10\" y2=\".5\"><stop offset=\"0\" "
                                "stop-color=\"#f00\"/><stop offset=\"1\" stop-color=\"#00f\"/>"
                                "</linearGradient></defs>"));
    assert_non_null(strstr(svg, "fill=\"url(#g0)\""));
    assert_null(strstr(svg, "fill-rule"));
    free(svg);
}

/* A test picture: background, a ring with a hole, a disc, a thin bar and a transparent notch. */
static md_image *picture(void)
{
    md_image *im = img_new(96, 64);
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 96; x++) {
            uint8_t *p = im->rgba + 4 * (y * 96 + x);
            uint32_t c = 0x3070c0;
            double dr = hypot(x + 0.5 - 30, y + 0.5 - 32);
            if (dr < 20 && dr >= 10)
                c = 0xf0d020;
            if (hypot(x + 0.5 - 70, y + 0.5 - 20) < 12)
                c = 0xe02020;
            if (y >= 50 && y < 53 && x >= 55 && x < 90)
                c = 0x101010;
            p[0] = (uint8_t)(c >> 16), p[1] = (uint8_t)(c >> 8), p[2] = (uint8_t)c, p[3] = 255;
            if (x >= 80 && y >= 56)
                p[3] = 0;
        }
    return im;
}

static void on_white(const md_image *im, uint8_t *rgb)
{
    for (int i = 0; i < im->width * im->height; i++) {
        const uint8_t *s = im->rgba + 4 * i;
        for (int k = 0; k < 3; k++)
            rgb[3 * i + k] = (uint8_t)((s[k] * s[3] + 255 * (255 - s[3]) + 127) / 255);
    }
}

static void test_rsvg_renders_like_the_source(void **state)
{
    (void)state;
    md_image *im = picture();
    vec_params p;
    md_err e;
    assert_int_equal(vec_params_preset("default", &p, &e), MD_OK);
    vec_doc *d = NULL;
    assert_int_equal(vec_trace(im, &p, &d, NULL, &e), MD_OK);
    md_buf b;
    md_buf_init(&b, 1 << 22);
    assert_int_equal(vec_svg_write(d, &p, &b, &e), MD_OK);
    char svg_path[] = "/tmp/vec_svg_test_XXXXXX";
    int fd = mkstemp(svg_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
    close(fd);
    char png_path[64], cmd[256];
    snprintf(png_path, sizeof png_path, "%s.png", svg_path);
    snprintf(cmd, sizeof cmd, "rsvg-convert -w 96 -h 64 -f png -o %s %s", png_path, svg_path);
    assert_int_equal(system(cmd), 0);
    md_image *r = NULL;
    assert_int_equal(img_load_file(png_path, NULL, &r, &e), MD_OK);
    uint8_t a[96 * 64 * 3], c[96 * 64 * 3];
    on_white(im, a);
    on_white(r, c);
    long far = 0, sum = 0;
    for (int i = 0; i < 96 * 64 * 3; i++) {
        int diff = abs(a[i] - c[i]);
        sum += diff;
        far += diff > 96;
    }
    /* Differences only along anti-aliased edges: small on average, few pixels far off. */
    assert_true(sum / (96.0 * 64 * 3) < 4.0);
    assert_true(far < 96 * 64 * 3 / 50);
    /* The transparent notch stays empty (white), the disc red. */
    assert_int_equal(c[3 * (62 * 96 + 94)], 255);
    assert_int_equal(c[3 * (62 * 96 + 94) + 2], 255);
    assert_true(c[3 * (20 * 96 + 70)] > 200 && c[3 * (20 * 96 + 70) + 1] < 60);
    /* Our own cairo rendering of the doc agrees with rsvg's of the text. */
    uint8_t *own = malloc(sizeof a);
    assert_int_equal(vec_render(d, own, &e), MD_OK);
    long owndiff = 0;
    for (int i = 0; i < 96 * 64 * 3; i++)
        owndiff += abs(own[i] - c[i]);
    assert_true(owndiff / (96.0 * 64 * 3) < 1.5);
    free(own);
    unlink(svg_path);
    unlink(png_path);
    img_free(r);
    md_buf_free(&b);
    vec_doc_free(d);
    img_free(im);
}

static void test_deterministic_and_svgz(void **state)
{
    (void)state;
    md_image *im = picture();
    vec_params p;
    md_err e;
    vec_params_default(&p);
    md_buf out[2], gz;
    for (int k = 0; k < 2; k++) {
        vec_doc *d = NULL;
        assert_int_equal(vec_trace(im, &p, &d, NULL, &e), MD_OK);
        md_buf_init(&out[k], 1 << 22);
        assert_int_equal(vec_svg_write(d, &p, &out[k], &e), MD_OK);
        if (k == 1) {
            vec_params pz = p;
            pz.svgz = 1;
            md_buf_init(&gz, 1 << 22);
            assert_int_equal(vec_svg_write(d, &pz, &gz, &e), MD_OK);
        }
        vec_doc_free(d);
    }
    assert_int_equal(out[0].len, out[1].len);
    assert_memory_equal(out[0].data, out[1].data, out[0].len);
    assert_int_equal((uint8_t)gz.data[0], 0x1f);
    assert_int_equal((uint8_t)gz.data[1], 0x8b);
    uLongf n = (uLongf)out[0].len + 16;
    char *plain = malloc(n);
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)gz.data;
    z.avail_in = (uInt)gz.len;
    z.next_out = (Bytef *)plain;
    z.avail_out = (uInt)n;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(z.total_out, out[0].len);
    assert_memory_equal(plain, out[0].data, out[0].len);
    inflateEnd(&z);
    free(plain);
    md_buf_free(&out[0]);
    md_buf_free(&out[1]);
    md_buf_free(&gz);
    img_free(im);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_data_is_compact),
        cmocka_unit_test(test_colours_and_defaults),
        cmocka_unit_test(test_rsvg_renders_like_the_source),
        cmocka_unit_test(test_deterministic_and_svgz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
