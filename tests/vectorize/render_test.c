/* render_test.c - vec_render draws documents built by hand the way an SVG renderer would:
 * fill rules, alpha on white, linear and radial gradients, paint order, and SSIM of a render
 * against itself and against a shifted copy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <math.h>

#include "vectorize/vec.h"

/* A closed polygon: MOVE, LINEs, CLOSE, appended to segs (room for n + 1 entries). */
static size_t add_poly(vec_seg *segs, const float (*pt)[2], int n)
{
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        segs[k].kind = i == 0 ? VEC_SEG_MOVE : VEC_SEG_LINE;
        segs[k].pt[0][0] = pt[i][0];
        segs[k].pt[0][1] = pt[i][1];
        k++;
    }
    segs[k++].kind = VEC_SEG_CLOSE;
    return k;
}

static void rect(vec_path *p, float x0, float y0, float x1, float y1, int reverse)
{
    const float cw[4][2] = {{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}};
    const float ccw[4][2] = {{x0, y0}, {x0, y1}, {x1, y1}, {x1, y0}};
    size_t at = p->nseg;
    p->segs = realloc(p->segs, (at + 5) * sizeof *p->segs);
    assert_non_null(p->segs);
    memset(p->segs + at, 0, 5 * sizeof *p->segs);
    p->nseg += add_poly(p->segs + at, reverse ? ccw : cw, 4);
}

static void solid(vec_path *p, uint8_t r, uint8_t g, uint8_t b, uint8_t a)
{
    p->fill.kind = VEC_PAINT_SOLID;
    p->fill.rgba[0] = r;
    p->fill.rgba[1] = g;
    p->fill.rgba[2] = b;
    p->fill.rgba[3] = a;
}

static vec_doc *new_doc(int w, int h, size_t npaths)
{
    vec_doc *d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->width = w;
    d->height = h;
    d->npaths = npaths;
    d->paths = calloc(npaths, sizeof *d->paths);
    assert_non_null(d->paths);
    return d;
}

static void free_doc(vec_doc *d)
{
    for (size_t i = 0; i < d->npaths; i++)
        free(d->paths[i].segs);
    free(d->paths);
    free(d);
}

static const uint8_t *px(const uint8_t *rgb, int w, int x, int y)
{
    return rgb + ((size_t)y * (size_t)w + (size_t)x) * 3;
}

static void assert_px(const uint8_t *rgb, int w, int x, int y, int r, int g, int b, int tol)
{
    const uint8_t *p = px(rgb, w, x, y);
    if (abs(p[0] - r) > tol || abs(p[1] - g) > tol || abs(p[2] - b) > tol)
        fail_msg("pixel (%d,%d) is %d,%d,%d, expected %d,%d,%d (+-%d)", x, y, p[0], p[1], p[2], r,
                 g, b, tol);
}

static void test_empty_is_white(void **state)
{
    (void)state;
    vec_doc d = {.width = 7, .height = 5};
    uint8_t rgb[7 * 5 * 3];
    assert_int_equal(vec_render(&d, rgb, NULL), MD_OK);
    for (size_t i = 0; i < sizeof rgb; i++)
        assert_int_equal(rgb[i], 255);
}

static void test_fill_rules_and_order(void **state)
{
    (void)state;
    vec_doc *d = new_doc(20, 20, 3);
    /* Path 0: a blue square with a same-direction inner square, nonzero: no hole. */
    rect(&d->paths[0], 0, 0, 10, 10, 0);
    rect(&d->paths[0], 3, 3, 7, 7, 0);
    solid(&d->paths[0], 0, 0, 255, 255);
    /* Path 1: the same shape even-odd: a hole shows the white below. */
    rect(&d->paths[1], 10, 0, 20, 10, 0);
    rect(&d->paths[1], 13, 3, 17, 7, 0);
    d->paths[1].evenodd = 1;
    solid(&d->paths[1], 255, 0, 0, 255);
    /* Path 2: painted last, half over path 0, half-transparent green. */
    rect(&d->paths[2], 0, 10, 20, 20, 0);
    solid(&d->paths[2], 0, 128, 0, 128);
    uint8_t rgb[20 * 20 * 3];
    assert_int_equal(vec_render(d, rgb, NULL), MD_OK);
    assert_px(rgb, 20, 5, 5, 0, 0, 255, 0);     /* nonzero: inner square filled */
    assert_px(rgb, 20, 1, 1, 0, 0, 255, 0);
    assert_px(rgb, 20, 15, 5, 255, 255, 255, 0); /* even-odd hole */
    assert_px(rgb, 20, 11, 1, 255, 0, 0, 0);
    /* 50% green over white: (0,128,0)*a + 255*(1-a) with a = 128/255. */
    assert_px(rgb, 20, 5, 15, 127, 191, 127, 2);
    free_doc(d);
}

static void test_antialiased_edge(void **state)
{
    (void)state;
    vec_doc *d = new_doc(10, 4, 1);
    rect(&d->paths[0], 0, 0, 4.5f, 4, 0); /* the edge splits column 4 in half */
    solid(&d->paths[0], 0, 0, 0, 255);
    uint8_t rgb[10 * 4 * 3];
    assert_int_equal(vec_render(d, rgb, NULL), MD_OK);
    assert_px(rgb, 10, 3, 1, 0, 0, 0, 0);
    assert_px(rgb, 10, 4, 1, 128, 128, 128, 3);
    assert_px(rgb, 10, 5, 1, 255, 255, 255, 0);
    free_doc(d);
}

static void test_gradients(void **state)
{
    (void)state;
    vec_doc *d = new_doc(100, 60, 2);
    vec_path *lin = &d->paths[0], *rad = &d->paths[1];
    rect(lin, 0, 0, 100, 30, 0);
    lin->fill.kind = VEC_PAINT_LINEAR;
    lin->fill.x1 = 10, lin->fill.y1 = 0, lin->fill.x2 = 90, lin->fill.y2 = 0;
    lin->fill.nstops = 2;
    lin->fill.stops[0] = (vec_stop){0.0f, {0, 0, 0, 255}};
    lin->fill.stops[1] = (vec_stop){1.0f, {255, 255, 255, 255}};
    rect(rad, 0, 30, 100, 60, 0);
    rad->fill.kind = VEC_PAINT_RADIAL;
    rad->fill.x1 = 50, rad->fill.y1 = 45, rad->fill.x2 = 20;
    rad->fill.nstops = 2;
    rad->fill.stops[0] = (vec_stop){0.0f, {255, 0, 0, 255}};
    rad->fill.stops[1] = (vec_stop){1.0f, {0, 0, 255, 255}};
    uint8_t rgb[100 * 60 * 3];
    assert_int_equal(vec_render(d, rgb, NULL), MD_OK);
    assert_px(rgb, 100, 2, 10, 0, 0, 0, 0);         /* pad before the first stop */
    assert_px(rgb, 100, 97, 10, 255, 255, 255, 0);  /* pad after the last */
    assert_px(rgb, 100, 49, 10, 124, 124, 124, 4);  /* pixel centre 49.5: t = 0.49 */
    assert_px(rgb, 100, 50, 45, 248, 0, 6, 8);      /* centre of the radial: red */
    assert_px(rgb, 100, 95, 45, 0, 0, 255, 0);      /* beyond the radius: blue */
    assert_px(rgb, 100, 60, 45, 127, 0, 128, 8);    /* halfway out */
    free_doc(d);
}

static void test_curves_and_ssim(void **state)
{
    (void)state;
    /* A circle of four cubics; the rendering must be mirror-symmetric and SSIM(self) = 1, while a copy
     * moved by 3 px scores clearly lower. */
    const float k = 0.5523f * 10;
    vec_doc *d = new_doc(32, 32, 1);
    vec_path *p = &d->paths[0];
    p->segs = calloc(6, sizeof *p->segs);
    assert_non_null(p->segs);
    p->nseg = 6;
    p->segs[0] = (vec_seg){VEC_SEG_MOVE, {{16, 6}}};
    p->segs[1] = (vec_seg){VEC_SEG_CUBIC, {{16 + k, 6}, {26, 16 - k}, {26, 16}}};
    p->segs[2] = (vec_seg){VEC_SEG_CUBIC, {{26, 16 + k}, {16 + k, 26}, {16, 26}}};
    p->segs[3] = (vec_seg){VEC_SEG_CUBIC, {{16 - k, 26}, {6, 16 + k}, {6, 16}}};
    p->segs[4] = (vec_seg){VEC_SEG_CUBIC, {{6, 16 - k}, {16 - k, 6}, {16, 6}}};
    p->segs[5] = (vec_seg){VEC_SEG_CLOSE, {{0}}};
    solid(p, 20, 60, 200, 255);
    uint8_t a[32 * 32 * 3], b[32 * 32 * 3];
    assert_int_equal(vec_render(d, a, NULL), MD_OK);
    assert_px(a, 32, 16, 16, 20, 60, 200, 0);
    assert_px(a, 32, 1, 1, 255, 255, 255, 0);
    for (int y = 0; y < 32; y++) /* symmetric up to anti-aliasing rounding */
        for (int x = 0; x < 32; x++) {
            const uint8_t *m = px(a, 32, 31 - x, y);
            assert_px(a, 32, x, y, m[0], m[1], m[2], 8);
        }
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 3; j++)
            p->segs[i].pt[j][0] += 3;
    assert_int_equal(vec_render(d, b, NULL), MD_OK);
    vec_ssim_result self, moved;
    assert_int_equal(vec_ssim(a, a, 32, 32, &self, NULL), MD_OK);
    assert_int_equal(vec_ssim(a, b, 32, 32, &moved, NULL), MD_OK);
    assert_true(self.rgb > 0.999999);
    assert_true(moved.rgb < 0.9 && moved.luma < 0.9);
    free_doc(d);
}

static void test_bad_document(void **state)
{
    (void)state;
    vec_doc d = {.width = 0, .height = 5};
    uint8_t rgb[4 * 4 * 3];
    md_err err;
    assert_int_equal(vec_render(&d, rgb, &err), MD_E_INVALID_PARAM);
    assert_int_equal(vec_render(NULL, rgb, &err), MD_E_INVALID_PARAM);
    /* A NaN or huge coordinate (a fitting bug upstream) is refused, not handed to cairo. */
    vec_doc *bad = new_doc(4, 4, 1);
    rect(&bad->paths[0], 0, 0, 3, 3, 0);
    bad->paths[0].segs[2].pt[0][1] = NAN;
    assert_int_equal(vec_render(bad, rgb, &err), MD_E_INTERNAL);
    bad->paths[0].segs[2].pt[0][1] = 1e9f;
    assert_int_equal(vec_render(bad, rgb, &err), MD_E_INTERNAL);
    bad->paths[0].segs[2].pt[0][1] = 2;
    bad->paths[0].fill.kind = VEC_PAINT_RADIAL;
    bad->paths[0].fill.x2 = INFINITY;
    assert_int_equal(vec_render(bad, rgb, &err), MD_E_INTERNAL);
    free_doc(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_is_white),       cmocka_unit_test(test_fill_rules_and_order),
        cmocka_unit_test(test_antialiased_edge),     cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_curves_and_ssim),      cmocka_unit_test(test_bad_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
