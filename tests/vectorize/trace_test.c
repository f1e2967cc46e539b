/* trace_test.c - vec_trace end to end: input errors, transparency (no shapes, no halos, RGBA
 * as good as RGB), gradients, layering, modes and binary mode. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vectorize/vec_int.h"

typedef uint32_t (*paint_fn)(int x, int y, uint8_t *alpha);

static md_image *make(int w, int h, paint_fn f)
{
    md_image *im = img_new(w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t a = 255;
            uint32_t c = f(x, y, &a);
            uint8_t *p = im->rgba + 4 * (y * w + x);
            p[0] = (uint8_t)(c >> 16), p[1] = (uint8_t)(c >> 8), p[2] = (uint8_t)c, p[3] = a;
            im->has_alpha |= a < 255;
        }
    return im;
}

static vec_doc *trace(const md_image *im, const vec_params *p)
{
    vec_doc *d = NULL;
    md_err e;
    assert_int_equal(vec_trace(im, p, &d, NULL, &e), MD_OK);
    return d;
}

/* SSIM of the doc's rendering against the image composited on white. */
static double quality(const md_image *im, const vec_doc *d)
{
    size_t n = (size_t)im->width * (size_t)im->height;
    uint8_t *a = malloc(3 * n), *b = malloc(3 * n);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 3; k++)
            a[3 * i + k] = (uint8_t)((im->rgba[4 * i + k] * im->rgba[4 * i + 3] +
                                      255 * (255 - im->rgba[4 * i + 3]) + 127) / 255);
    md_err e;
    assert_int_equal(vec_render(d, b, &e), MD_OK);
    vec_ssim_result r;
    assert_int_equal(vec_ssim(a, b, im->width, im->height, &r, &e), MD_OK);
    free(a);
    free(b);
    return r.rgb;
}

static void test_bad_input(void **state)
{
    (void)state;
    vec_params p;
    vec_params_default(&p);
    vec_doc *d = (vec_doc *)1;
    md_err e;
    assert_int_equal(vec_trace(NULL, &p, &d, NULL, &e), MD_E_BAD_REQUEST);
    assert_null(d);
    md_image empty = {0, 0, 0, (uint8_t[4]){0}};
    assert_int_equal(vec_trace(&empty, &p, &d, NULL, &e), MD_E_IMAGE_TOO_LARGE);
    md_image *im = img_new(4, 4);
    p.filter_speckle = 500;
    assert_int_equal(vec_trace(im, &p, &d, NULL, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "filter_speckle");
    img_free(im);
}

static uint32_t disc_aa(int x, int y, uint8_t *a)
{
    /* a blue disc whose edge coverage goes into alpha, on transparency */
    double d = hypot(x + 0.5 - 32, y + 0.5 - 32) - 20;
    double cov = d < -0.5 ? 1 : d > 0.5 ? 0 : 0.5 - d;
    *a = (uint8_t)lround(cov * 255);
    return 0x2040d0;
}

static uint32_t disc_on_white(int x, int y, uint8_t *a)
{
    uint8_t cov;
    disc_aa(x, y, &cov);
    *a = 255;
    int r = (0x20 * cov + 255 * (255 - cov)) / 255, g = (0x40 * cov + 255 * (255 - cov)) / 255,
        b = (0xd0 * cov + 255 * (255 - cov)) / 255;
    return (uint32_t)(r << 16 | g << 8 | b);
}

static uint32_t clear(int x, int y, uint8_t *a)
{
    (void)x, (void)y;
    *a = 0;
    return 0x123456;
}

static uint32_t half_red(int x, int y, uint8_t *a)
{
    *a = x >= 4 && x < 28 && y >= 4 && y < 28 ? 128 : 0;
    return 0xff0000;
}

static void test_transparency(void **state)
{
    (void)state;
    vec_params p;
    vec_params_default(&p);
    md_image *im = make(16, 16, clear);
    vec_doc *d = trace(im, &p);
    assert_int_equal(d->npaths, 0); /* transparent areas get no shape */
    vec_doc_free(d);
    img_free(im);

    md_image *rgba = make(64, 64, disc_aa), *rgb = make(64, 64, disc_on_white);
    vec_doc *da = trace(rgba, &p), *db = trace(rgb, &p);
    assert_int_equal(da->npaths, 1); /* the disc only: no halo ring, no background */
    assert_int_equal(da->paths[0].fill.rgba[0], 0x20);
    assert_int_equal(da->paths[0].fill.rgba[2], 0xd0);
    double qa = quality(rgba, da), qb = quality(rgb, db);
    assert_true(qa > 0.97);
    assert_true(fabs(qa - qb) < 0.01);
    vec_doc_free(da);
    vec_doc_free(db);
    img_free(rgba);
    img_free(rgb);

    /* A translucent square keeps its straight colour and its coverage, not a pink opaque fill */
    im = make(32, 32, half_red);
    d = trace(im, &p);
    assert_int_equal(d->npaths, 1);
    assert_int_equal(d->paths[0].fill.rgba[0], 255);
    assert_int_equal(d->paths[0].fill.rgba[1], 0);
    assert_int_equal(d->paths[0].fill.rgba[3], 128);
    assert_true(quality(im, d) > 0.99);
    vec_doc_free(d);
    img_free(im);
}

static uint32_t linear_with_square(int x, int y, uint8_t *a)
{
    (void)a;
    if (x >= 40 && x < 60 && y >= 20 && y < 40)
        return 0x000000;
    int v = x * 255 / 127;
    return (uint32_t)(v << 16 | 0x30 << 8 | (255 - v));
}

static uint32_t radial(int x, int y, uint8_t *a)
{
    (void)a;
    double r = hypot(x + 0.5 - 50, y + 0.5 - 40) / 70.0;
    int v = (int)lround(255 * (r > 1 ? 1 : r));
    return (uint32_t)(255 << 16 | v << 8 | v);
}

static int count_kind(const vec_doc *d, vec_paint_kind k)
{
    int n = 0;
    for (size_t i = 0; i < d->npaths; i++)
        n += d->paths[i].fill.kind == k;
    return n;
}

static void test_gradients(void **state)
{
    (void)state;
    vec_params p;
    vec_params_default(&p);
    md_image *im = make(128, 64, linear_with_square);
    vec_doc *d = trace(im, &p);
    assert_int_equal(count_kind(d, VEC_PAINT_LINEAR), 1);
    assert_true(d->npaths <= 3); /* the ramp and the square, not bands */
    assert_true(quality(im, d) > 0.95);
    for (size_t i = 0; i < d->npaths; i++) {
        const vec_paint *f = &d->paths[i].fill;
        if (f->kind != VEC_PAINT_LINEAR)
            continue;
        assert_true(fabs(f->y2 - f->y1) < 0.1 * fabs(f->x2 - f->x1)); /* horizontal */
        assert_true(f->stops[0].rgba[0] < f->stops[f->nstops - 1].rgba[0]);
    }
    vec_doc_free(d);
    p.gradients = 0; /* off: bands of solid colour */
    d = trace(im, &p);
    assert_int_equal(count_kind(d, VEC_PAINT_LINEAR), 0);
    assert_true(d->npaths > 3);
    vec_doc_free(d);
    img_free(im);

    vec_params_default(&p);
    im = make(100, 80, radial);
    d = trace(im, &p);
    assert_int_equal(count_kind(d, VEC_PAINT_RADIAL), 1);
    for (size_t i = 0; i < d->npaths; i++)
        if (d->paths[i].fill.kind == VEC_PAINT_RADIAL)
            assert_true(fabs(d->paths[i].fill.x1 - 50) < 3 && fabs(d->paths[i].fill.y1 - 40) < 3);
    assert_true(quality(im, d) > 0.95);
    vec_doc_free(d);
    img_free(im);
}

static uint32_t ring(int x, int y, uint8_t *a)
{
    (void)a;
    double r = hypot(x + 0.5 - 24, y + 0.5 - 24);
    return r < 8 ? 0x00a000 : r < 16 ? 0xc00000 : 0xffffff;
}

static int moves(const vec_path *p)
{
    int n = 0;
    for (size_t i = 0; i < p->nseg; i++)
        n += p->segs[i].kind == VEC_SEG_MOVE;
    return n;
}

static int cubics(const vec_doc *d)
{
    int n = 0;
    for (size_t i = 0; i < d->npaths; i++)
        for (size_t k = 0; k < d->paths[i].nseg; k++)
            n += d->paths[i].segs[k].kind == VEC_SEG_CUBIC;
    return n;
}

/* Stacked: the ring is painted whole and the centre on top; cutout: the ring has a hole. */
static void test_layering_and_modes(void **state)
{
    (void)state;
    vec_params p;
    vec_params_default(&p);
    md_image *im = make(48, 48, ring);
    vec_doc *d = trace(im, &p);
    assert_int_equal(d->npaths, 3);
    assert_int_equal(moves(&d->paths[1]), 1);
    assert_true(cubics(d) > 0);
    /* the source is aliased (hard pixel steps) and the curves are smooth: close, not exact */
    assert_true(quality(im, d) > 0.92);
    vec_doc_free(d);
    p.hierarchical = VEC_CUTOUT;
    d = trace(im, &p);
    assert_int_equal(moves(&d->paths[1]), 2);
    assert_true(quality(im, d) > 0.8); /* both sides of a shared edge are fitted separately */
    vec_doc_free(d);
    p.hierarchical = VEC_STACKED;
    p.mode = VEC_POLYGON;
    d = trace(im, &p);
    assert_int_equal(cubics(d), 0);
    assert_true(quality(im, d) > 0.9);
    vec_doc_free(d);
    p.mode = VEC_PIXEL; /* exact pixel outlines render back exactly */
    d = trace(im, &p);
    assert_int_equal(cubics(d), 0);
    assert_true(quality(im, d) > 0.999);
    vec_doc_free(d);
    img_free(im);
}

static void test_binary_mode(void **state)
{
    (void)state;
    vec_params p;
    md_err e;
    assert_int_equal(vec_params_preset("bw", &p, &e), MD_OK);
    md_image *im = make(48, 48, ring);
    vec_doc *d = trace(im, &p);
    assert_true(d->npaths >= 1);
    for (size_t i = 0; i < d->npaths; i++) {
        assert_int_equal(d->paths[i].fill.kind, VEC_PAINT_SOLID);
        assert_int_equal(d->paths[i].fill.rgba[0] | d->paths[i].fill.rgba[1], 0);
    }
    vec_doc_free(d);
    img_free(im);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input),     cmocka_unit_test(test_transparency),
        cmocka_unit_test(test_gradients),     cmocka_unit_test(test_layering_and_modes),
        cmocka_unit_test(test_binary_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
