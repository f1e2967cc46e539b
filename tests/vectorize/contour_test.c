/* contour_test.c - boundary loops: holes, touching regions, 1-pixel features, image edges. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vectorize/vec_int.h"

/* Build clusters straight from a label picture: '.' is transparent, other letters regions. */
static void from_picture(vec__clusters *c, const char *const *rows, int w, int h)
{
    memset(c, 0, sizeof *c);
    c->w = w;
    c->h = h;
    c->label = malloc((size_t)w * (size_t)h * sizeof *c->label);
    c->rgb = calloc((size_t)w * (size_t)h, 3);
    c->trans = calloc((size_t)w * (size_t)h, 1);
    assert_non_null(c->label);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            char ch = rows[y][x];
            c->label[y * w + x] = ch == '.' ? 0 : ch - 'a' + 1;
            c->trans[y * w + x] = ch == '.';
        }
    assert_int_equal(vec__clusters_relabel(c, 32), MD_OK);
}

static long area2(const vec__loop *l)
{
    long a = 0;
    for (int i = 0; i < l->n; i++) {
        int j = (i + 1) % l->n;
        a += (long)l->pts[2 * i] * l->pts[2 * j + 1] - (long)l->pts[2 * j] * l->pts[2 * i + 1];
    }
    return a;
}

/* Every loop is closed with unit steps, outer loops have positive area, holes negative, and
 * each region's loops add up to its pixel count. */
static void check_loops(const vec__clusters *c, const vec__loops *L)
{
    long *sum = calloc((size_t)c->n, sizeof *sum);
    for (int k = 0; k < L->n; k++) {
        const vec__loop *l = &L->loop[k];
        for (int i = 0; i < l->n; i++) {
            int j = (i + 1) % l->n;
            int dx = abs(l->pts[2 * j] - l->pts[2 * i]), dy = abs(l->pts[2 * j + 1] - l->pts[2 * i + 1]);
            assert_int_equal(dx + dy, 1);
        }
        long a = area2(l);
        assert_true(l->hole ? a < 0 : a > 0);
        sum[l->region] += a / 2;
    }
    for (int r = 0; r < c->n; r++)
        if (!c->reg[r].transparent)
            assert_int_equal(sum[r], c->reg[r].area);
    free(sum);
}

static int count(const vec__loops *L, int holes)
{
    int n = 0;
    for (int k = 0; k < L->n; k++)
        n += L->loop[k].hole == holes;
    return n;
}

static void test_ring_with_hole_and_island(void **state)
{
    (void)state;
    const char *pic[] = {"aaaaaaa", "abbbbba", "abcccba", "abcacba", "abcccba", "abbbbba", "aaaaaaa"};
    vec__clusters c;
    from_picture(&c, pic, 7, 7);
    vec__loops L;
    assert_int_equal(vec__contours(&c, &L), MD_OK);
    check_loops(&c, &L);
    assert_int_equal(count(&L, 0), 4); /* a's border, b, c, the single a in the middle */
    assert_int_equal(count(&L, 1), 3); /* holes in a, b and c */
    vec__loops_free(&L);
    vec__clusters_free(&c);
}

/* Regions that touch only at a corner are separate loops; a region touching itself at a
 * corner (4-connectivity) is two components anyway, and its neighbour's loop is pinched. */
static void test_touching_diagonals(void **state)
{
    (void)state;
    const char *pic[] = {"ab", "ba"};
    vec__clusters c;
    from_picture(&c, pic, 2, 2);
    vec__loops L;
    assert_int_equal(vec__contours(&c, &L), MD_OK);
    check_loops(&c, &L);
    assert_int_equal(L.n, 4); /* four single pixels */
    for (int k = 0; k < L.n; k++)
        assert_int_equal(L.loop[k].n, 4);
    vec__loops_free(&L);
    vec__clusters_free(&c);

    const char *pic2[] = {"aaaa", "abaa", "aaba", "aaaa"};
    from_picture(&c, pic2, 4, 4);
    assert_int_equal(vec__contours(&c, &L), MD_OK);
    check_loops(&c, &L);
    assert_int_equal(count(&L, 0), 3);
    assert_int_equal(count(&L, 1), 1); /* one pinched hole holding both b pixels */
    vec__loops_free(&L);
    vec__clusters_free(&c);
}

static void test_one_pixel_and_edges(void **state)
{
    (void)state;
    const char *pic[] = {"b....", ".....", "..c..", ".....", "....d"};
    vec__clusters c;
    from_picture(&c, pic, 5, 5);
    vec__loops L;
    assert_int_equal(vec__contours(&c, &L), MD_OK);
    check_loops(&c, &L);
    assert_int_equal(L.n, 3); /* transparent areas get no loop */
    int corner_seen = 0;
    for (int k = 0; k < L.n; k++) {
        assert_int_equal(L.loop[k].n, 4);
        corner_seen |= L.loop[k].x1 == 5 && L.loop[k].y1 == 5;
    }
    assert_true(corner_seen); /* the bottom-right pixel's loop runs along the image edge */
    vec__loops_free(&L);
    vec__clusters_free(&c);

    const char *full[] = {"aaa", "aaa"};
    from_picture(&c, full, 3, 2);
    assert_int_equal(vec__contours(&c, &L), MD_OK);
    assert_int_equal(L.n, 1);
    assert_int_equal(L.loop[0].n, 10);
    assert_true(vec__loop_contains(&L.loop[0], 1.5, 0.5));
    assert_false(vec__loop_contains(&L.loop[0], 3.5, 0.5));
    vec__loops_free(&L);
    vec__clusters_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_with_hole_and_island),
        cmocka_unit_test(test_touching_diagonals),
        cmocka_unit_test(test_one_pixel_and_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
