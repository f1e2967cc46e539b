/* fit_test.c - Bézier fitting keeps every input point within the error bound; the polygon
 * stage finds corners; straight runs come out as lines. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vectorize/vec_int.h"

/* Distance from q to the chain of segments that starts at p0, sampled finely. */
static double dist_to_curve(vec__pt q, vec__pt p0, const vec__segs *s)
{
    double best = 1e18;
    vec__pt cur = p0;
    for (size_t i = 0; i < s->n; i++) {
        const vec_seg *g = &s->s[i];
        vec__pt b[4] = {cur, {g->pt[0][0], g->pt[0][1]}, {g->pt[1][0], g->pt[1][1]},
                        {g->pt[2][0], g->pt[2][1]}};
        if (g->kind == VEC_SEG_LINE) {
            b[3] = b[1];
            b[1] = (vec__pt){cur.x + (b[3].x - cur.x) / 3, cur.y + (b[3].y - cur.y) / 3};
            b[2] = (vec__pt){cur.x + 2 * (b[3].x - cur.x) / 3, cur.y + 2 * (b[3].y - cur.y) / 3};
        }
        for (int k = 0; k <= 400; k++) {
            vec__pt c = vec__bezier(b, k / 400.0);
            double d = hypot(c.x - q.x, c.y - q.y);
            best = d < best ? d : best;
        }
        cur = b[3];
    }
    return best;
}

static void check_bound(const vec__pt *p, int n, double tol, vec__segs *s)
{
    for (int i = 0; i < n; i++)
        assert_true(dist_to_curve(p[i], p[0], s) <= tol + 1e-3);
    /* the chain ends where the points end */
    const vec_seg *last = &s->s[s->n - 1];
    int k = last->kind == VEC_SEG_LINE ? 0 : 2;
    assert_true(fabs(last->pt[k][0] - p[n - 1].x) < 1e-3 && fabs(last->pt[k][1] - p[n - 1].y) < 1e-3);
}

static void test_error_bound_on_wavy_and_noisy_chains(void **state)
{
    (void)state;
    srand(7);
    double tols[] = {0.25, 0.5, 1.0};
    for (int trial = 0; trial < 30; trial++) {
        int n = 10 + rand() % 150;
        vec__pt *p = malloc((size_t)n * sizeof *p);
        double amp = 1 + rand() % 20, freq = 0.02 + (rand() % 100) / 500.0;
        for (int i = 0; i < n; i++)
            p[i] = (vec__pt){i * 0.9, amp * sin(i * freq) + (rand() % 100) / 150.0};
        double tol = tols[trial % 3];
        vec__segs s = {0};
        vec__pt t1 = {p[1].x - p[0].x, p[1].y - p[0].y};
        vec__pt t2 = {p[n - 2].x - p[n - 1].x, p[n - 2].y - p[n - 1].y};
        assert_int_equal(vec__fit_cubic(p, n, t1, t2, tol, 4, &s), MD_OK);
        check_bound(p, n, tol, &s);
        free(s.s);
        free(p);
    }
}

/* A quarter circle of radius 50 needs very few cubics; a straight run is one line. */
static void test_economy(void **state)
{
    (void)state;
    vec__pt p[100];
    for (int i = 0; i < 100; i++) {
        double a = i / 99.0 * M_PI / 2;
        p[i] = (vec__pt){50 * cos(a), 50 * sin(a)};
    }
    vec__segs s = {0};
    assert_int_equal(vec__fit_cubic(p, 100, (vec__pt){0, 1}, (vec__pt){1, 0}, 0.5, 10, &s), MD_OK);
    check_bound(p, 100, 0.5, &s);
    assert_true(s.n <= 2);
    free(s.s);
    for (int i = 0; i < 100; i++)
        p[i] = (vec__pt){i, 0.5 * i};
    s = (vec__segs){0};
    assert_int_equal(vec__fit_cubic(p, 100, (vec__pt){2, 1}, (vec__pt){-2, -1}, 0.5, 10, &s), MD_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.s[0].kind, VEC_SEG_LINE);
    free(s.s);
}

/* The corners of a square staircase are corners; points along a large circle are not. */
static void test_polygon_corners(void **state)
{
    (void)state;
    vec__pt sq[8] = {{0, 0}, {5, 0}, {10, 0}, {10, 5}, {10, 10}, {5, 10}, {0, 10}, {0, 5}};
    uint8_t fl[64];
    assert_int_equal(vec__polygon(sq, 8, 0.5, 60, 45, fl), 4);
    for (int i = 0; i < 8; i += 2)
        assert_true(fl[i] & VEC__PF_CORNER);
    for (int i = 1; i < 8; i += 2)
        assert_false(fl[i] & VEC__PF_KEEP);
    vec__pt circ[64];
    for (int i = 0; i < 64; i++)
        circ[i] = (vec__pt){100 * cos(i * M_PI / 32), 100 * sin(i * M_PI / 32)};
    int m = vec__polygon(circ, 64, 0.7, 60, 45, fl);
    assert_true(m > 8);
    for (int i = 0; i < 64; i++)
        assert_false(fl[i] & (VEC__PF_CORNER | VEC__PF_SPLICE));
}

/* Edge samples: a staircase is sampled at its runs' middles (on the edge it approximates),
 * while real corners (a rectangle's, a single pixel's) are kept. */
static void test_edge_samples(void **state)
{
    (void)state;
    /* a 45-degree staircase of 1-px steps closed by a long bottom: the diagonal's samples are
     * the runs' middles, all on the line x - y = 0.5 */
    int32_t st[64];
    int n = 0;
    for (int i = 0; i < 4; i++) {
        st[2 * n] = i, st[2 * n + 1] = i, n++;     /* (i,i) -> (i+1,i) */
        st[2 * n] = i + 1, st[2 * n + 1] = i, n++; /* (i+1,i) -> (i+1,i+1) */
    }
    for (int x = 4; x > 0; x--)
        st[2 * n] = x, st[2 * n + 1] = 4, n++;
    for (int y = 4; y > 0; y--)
        st[2 * n] = 0, st[2 * n + 1] = y, n++;
    vec__pt out[128];
    int m = vec__edge_samples(st, n, out);
    assert_true(m > 0);
    int on_line = 0;
    for (int i = 0; i < m; i++) {
        if (out[i].x > 1.2 && out[i].x < 3.2 && out[i].y > 0.8 && out[i].y < 2.8)
            assert_true(fabs(out[i].x - out[i].y - 0.5) < 1e-9);
        on_line += fabs(out[i].x - out[i].y - 0.5) < 1e-9;
    }
    assert_true(on_line >= 4);
    /* a single pixel keeps its four corners */
    int32_t px[] = {0, 0, 1, 0, 1, 1, 0, 1};
    m = vec__edge_samples(px, 4, out);
    int corners = 0;
    for (int i = 0; i < m; i++)
        corners += (out[i].x == 0 || out[i].x == 1) && (out[i].y == 0 || out[i].y == 1);
    assert_int_equal(corners, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_bound_on_wavy_and_noisy_chains),
        cmocka_unit_test(test_economy),
        cmocka_unit_test(test_polygon_corners),
        cmocka_unit_test(test_edge_samples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
