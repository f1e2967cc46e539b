/* cluster_test.c - colour clustering: flat regions, layer merging, speckles, anti-aliased
 * edges and transparency. Uses the tracer's internal interface (vec_int.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vectorize/vec_int.h"

static void put(md_image *im, int x, int y, uint8_t r, uint8_t g, uint8_t b, uint8_t a)
{
    uint8_t *p = im->rgba + 4 * ((size_t)y * (size_t)im->width + (size_t)x);
    p[0] = r, p[1] = g, p[2] = b, p[3] = a;
}

static void fill(md_image *im, int x0, int y0, int x1, int y1, uint32_t rgb, uint8_t a)
{
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            put(im, x, y, (uint8_t)(rgb >> 16), (uint8_t)(rgb >> 8), (uint8_t)rgb, a);
}

static int label_at(const vec__clusters *c, int x, int y)
{
    return c->label[(size_t)y * (size_t)c->w + (size_t)x];
}

static vec__clusters cluster(const md_image *im, const vec_params *p)
{
    vec__clusters c;
    md_err e;
    assert_int_equal(vec__cluster_color(im, p, NULL, &c, &e), MD_OK);
    return c;
}

static void test_two_flat_halves(void **state)
{
    (void)state;
    md_image *im = img_new(20, 10);
    fill(im, 0, 0, 10, 10, 0xff0000, 255);
    fill(im, 10, 0, 20, 10, 0x0000ff, 255);
    vec_params p;
    vec_params_default(&p);
    vec__clusters c = cluster(im, &p);
    assert_int_equal(c.n, 2);
    assert_int_not_equal(label_at(&c, 0, 0), label_at(&c, 19, 9));
    const vec__region *r = &c.reg[label_at(&c, 0, 0)];
    assert_int_equal(r->area, 100);
    assert_true(r->sum[0] / r->area == 255.0 && r->sum[2] == 0);
    assert_int_equal(r->x1, 9);
    vec__clusters_free(&c);
    img_free(im);
}

/* Colours closer than layer_difference become one layer; farther ones stay apart. */
static void test_layer_difference(void **state)
{
    (void)state;
    md_image *im = img_new(30, 10);
    fill(im, 0, 0, 10, 10, 0x808080, 255);
    fill(im, 10, 0, 20, 10, 0x888888, 255); /* 8 levels away */
    fill(im, 20, 0, 30, 10, 0xc0c0c0, 255); /* 56 levels away */
    vec_params p;
    vec_params_default(&p);
    vec__clusters c = cluster(im, &p);
    assert_int_equal(c.n, 2);
    assert_int_equal(label_at(&c, 0, 0), label_at(&c, 15, 5));
    vec__clusters_free(&c);
    p.layer_difference = 4;
    c = cluster(im, &p);
    assert_int_equal(c.n, 3);
    vec__clusters_free(&c);
    img_free(im);
}

/* A 3x3 speck (9 px < 4*4) joins its surroundings; a 5x5 square (25 px) stays. */
static void test_speckles(void **state)
{
    (void)state;
    md_image *im = img_new(40, 20);
    fill(im, 0, 0, 40, 20, 0xffffff, 255);
    fill(im, 5, 5, 8, 8, 0x000000, 255);
    fill(im, 20, 5, 25, 10, 0x000000, 255);
    vec_params p;
    vec_params_default(&p);
    vec__clusters c = cluster(im, &p);
    assert_int_equal(c.n, 2);
    assert_int_equal(label_at(&c, 6, 6), label_at(&c, 0, 0));
    assert_int_not_equal(label_at(&c, 22, 7), label_at(&c, 0, 0));
    vec__clusters_free(&c);
    p.filter_speckle = 0; /* off: the speck is kept */
    c = cluster(im, &p);
    assert_int_equal(c.n, 3);
    vec__clusters_free(&c);
    img_free(im);
}

/* A one-pixel grey ring between black and white (an anti-aliased edge) is long enough to stay
 * a thin layer of its own, which reproduces the soft edge; a black 1-px stroke on white stays
 * too, and touching the image edge does not matter. */
static void test_thin_ring_and_stroke_stay(void **state)
{
    (void)state;
    md_image *im = img_new(40, 40);
    fill(im, 0, 0, 40, 40, 0xffffff, 255);
    fill(im, 9, 9, 31, 31, 0x808080, 255);
    fill(im, 10, 10, 30, 30, 0x000000, 255);
    fill(im, 0, 35, 40, 36, 0x000000, 255); /* the stroke, edge to edge */
    vec_params p;
    vec_params_default(&p);
    vec__clusters c = cluster(im, &p);
    assert_int_equal(c.n, 5); /* white is cut in two by the stroke */
    int ring = label_at(&c, 9, 20);
    assert_int_not_equal(ring, label_at(&c, 0, 0));
    assert_int_not_equal(ring, label_at(&c, 20, 20));
    assert_int_equal(c.reg[ring].area, 22 * 4 - 4);
    assert_int_equal(c.reg[label_at(&c, 20, 35)].area, 40);
    vec__clusters_free(&c);
    img_free(im);
}

/* Transparent pixels form regions marked transparent, with no halo from the half-covered
 * edge: pixels at alpha >= 50% count as the shape, below as the background. */
static void test_transparency(void **state)
{
    (void)state;
    md_image *im = img_new(20, 20);
    fill(im, 0, 0, 20, 20, 0x000000, 0);
    fill(im, 5, 5, 15, 15, 0x0000ff, 255);
    fill(im, 4, 5, 5, 15, 0x0000ff, 200); /* mostly covered: part of the shape */
    fill(im, 15, 5, 16, 15, 0x0000ff, 40); /* barely covered: background */
    vec_params p;
    vec_params_default(&p);
    vec__clusters c = cluster(im, &p);
    assert_int_equal(c.n, 2);
    assert_true(c.reg[label_at(&c, 0, 0)].transparent);
    assert_false(c.reg[label_at(&c, 10, 10)].transparent);
    assert_true(c.reg[label_at(&c, 15, 10)].transparent);
    /* the edge column joins the square, which stays pure blue (no dark halo colour) */
    assert_int_equal(label_at(&c, 4, 10), label_at(&c, 10, 10));
    const vec__region *r = &c.reg[label_at(&c, 10, 10)];
    assert_true(r->sum[2] / (double)r->area > 250);
    vec__clusters_free(&c);
    img_free(im);
}

static void test_binary(void **state)
{
    (void)state;
    md_image *im = img_new(20, 20);
    fill(im, 0, 0, 20, 20, 0xf0f0f0, 255);
    fill(im, 2, 2, 18, 18, 0x202020, 255);
    fill(im, 6, 6, 14, 14, 0xd0d0ff, 255);
    vec_params p;
    vec_params_default(&p);
    md_err e;
    vec__clusters c;
    assert_int_equal(vec__cluster_binary(im, &p, NULL, &c, &e), MD_OK);
    assert_false(c.reg[label_at(&c, 3, 3)].transparent);
    assert_true(c.reg[label_at(&c, 0, 0)].transparent);
    assert_true(c.reg[label_at(&c, 10, 10)].transparent);
    vec__clusters_free(&c);
    img_free(im);
}

/* vec__clusters_merge: the merged regions' summed statistics equal those recomputed from the
 * pixels, and newid tells where each target went. */
static void test_merge_matches_recount(void **state)
{
    (void)state;
    md_image *im = img_new(30, 8);
    fill(im, 0, 0, 10, 8, 0xff0000, 255);
    fill(im, 10, 0, 20, 8, 0x00ff00, 255);
    fill(im, 20, 0, 30, 8, 0x0000ff, 200);
    fill(im, 12, 2, 15, 5, 0xffffff, 255); /* a hole in the green stripe */
    vec_params p;
    vec_params_default(&p);
    p.filter_speckle = 1;
    vec__clusters c = cluster(im, &p);
    assert_int_equal(c.n, 4);
    int32_t red = label_at(&c, 0, 0), green = label_at(&c, 10, 0), blue = label_at(&c, 29, 7);
    int32_t to[4], newid[4];
    for (int32_t r = 0; r < 4; r++)
        to[r] = r;
    to[blue] = red; /* not adjacent: merging does not need it */
    assert_int_equal(vec__clusters_merge(&c, to, newid), MD_OK);
    assert_int_equal(c.n, 3);
    assert_int_equal(newid[blue], -1);
    assert_int_equal(newid[red], label_at(&c, 29, 7));
    assert_int_equal(newid[red], label_at(&c, 0, 0));
    assert_int_equal(newid[green], label_at(&c, 10, 0));
    vec__region merged[3];
    memcpy(merged, c.reg, sizeof merged);
    assert_int_equal(vec__clusters_relabel(&c, c.n), MD_OK);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(merged[r].area, c.reg[r].area);
        assert_true(merged[r].asum == c.reg[r].asum);
        for (int k = 0; k < 3; k++)
            assert_true(merged[r].sum[k] == c.reg[r].sum[k] && merged[r].psum[k] == c.reg[r].psum[k]);
        assert_true(merged[r].x0 == c.reg[r].x0 && merged[r].x1 == c.reg[r].x1 &&
                    merged[r].y0 == c.reg[r].y0 && merged[r].y1 == c.reg[r].y1);
    }
    assert_int_equal(c.reg[newid[red]].area, 160);
    assert_int_equal(c.reg[newid[red]].x1, 29);
    vec__clusters_free(&c);
    img_free(im);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_flat_halves),
        cmocka_unit_test(test_layer_difference),
        cmocka_unit_test(test_speckles),
        cmocka_unit_test(test_thin_ring_and_stroke_stay),
        cmocka_unit_test(test_transparency),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_merge_matches_recount),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
