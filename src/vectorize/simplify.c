/* simplify.c - from a pixel staircase to a polygon with classified vertices.
 *
 * A traced loop has one vertex per pixel side. The edge the pixels sample runs through the
 * middles of the staircase runs, not through the staircase corners (which zig-zag half a pixel
 * around it), so the loop is first resampled: the middle of every run, plus the corners that
 * are features of the shape rather than of the pixel grid. A closed Douglas-Peucker pass then
 * keeps the samples that the shape needs within a tolerance, and each kept sample is classified
 * by how sharply the outline turns there: a corner (tangent breaks: polygons, sharp logo
 * corners), a splice point (the spline is split but stays smooth) or a plain curve point.
 */
#include "vec_int.h"

#include <math.h>
#include <stdlib.h>

/* Points sampling the edge along the staircase run from a to b, at most 2 px apart: all of it
 * but a margin of a quarter of its length (at most 2 px) at each end. A short run's ends are
 * staircase corners, up to half a pixel off the edge the pixels sample while its middle lies
 * on it; a long run is the edge itself and is sampled nearly to its ends, so no curve can
 * bulge away from it unchecked. */
static int run_points(vec__pt a, vec__pt b, vec__pt *out)
{
    double len = vec__hypot(b.x - a.x, b.y - a.y);
    double margin = len / 4 < 2 ? len / 4 : 2, span = len - 2 * margin;
    int n = 1 + (int)(span / 2);
    for (int k = 0; k < n; k++) {
        double d = n == 1 ? len / 2 : margin + span * k / (n - 1);
        double f = len > 0 ? d / len : 0;
        out[k] = (vec__pt){a.x + f * (b.x - a.x), a.y + f * (b.y - a.y)};
    }
    return n;
}

/* Turn at vertex i of the closed loop: +1 right, -1 left, 0 straight on. */
static int turn_at(const int32_t *pts, int n, int i)
{
    int ip = i == 0 ? n - 1 : i - 1, in = i + 1 == n ? 0 : i + 1;
    int dx0 = pts[2 * i] - pts[2 * ip], dy0 = pts[2 * i + 1] - pts[2 * ip + 1];
    int dx1 = pts[2 * in] - pts[2 * i], dy1 = pts[2 * in + 1] - pts[2 * i + 1];
    int cross = dx0 * dy1 - dy0 * dx1;
    return cross > 0 ? 1 : cross < 0 ? -1 : 0;
}

int vec__edge_samples(const int32_t *pts, int n, vec__pt *out)
{
    int *v = malloc((size_t)n * sizeof *v), *tv = malloc((size_t)n * sizeof *tv), m = 0, k = 0;
    if (v == NULL || tv == NULL) {
        free(v);
        free(tv);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int t = turn_at(pts, n, i);
        if (t != 0) {
            tv[m] = t;
            v[m++] = i;
        }
    }
    for (int j = 0; j < m; j++) {
        int jp = j == 0 ? m - 1 : j - 1, jn = j + 1 == m ? 0 : j + 1;
        vec__pt a = {pts[2 * v[j]], pts[2 * v[j] + 1]}, b = {pts[2 * v[jn]], pts[2 * v[jn] + 1]};
        vec__pt z = {pts[2 * v[jp]], pts[2 * v[jp] + 1]};
        double lin = fabs(a.x - z.x) + fabs(a.y - z.y), lout = fabs(b.x - a.x) + fabs(b.y - a.y);
        /* A staircase alternates left and right turns over short runs; a vertex between two
         * long runs, or turning the same way as a neighbour (a cap, a notch, a pixel), is a
         * real feature of the shape and is kept as a sample. */
        if ((lin >= 2 && lout >= 2) || tv[j] == tv[jp] || tv[j] == tv[jn])
            out[k++] = a;
        k += run_points(a, b, out + k);
    }
    free(v);
    free(tv);
    return k;
}

/* Distance from p to the line through a and b (to a when a == b). */
static double line_dist(vec__pt p, vec__pt a, vec__pt b)
{
    double dx = b.x - a.x, dy = b.y - a.y, l = vec__hypot(dx, dy);
    if (l < 1e-12)
        return vec__hypot(p.x - a.x, p.y - a.y);
    return fabs((p.x - a.x) * dy - (p.y - a.y) * dx) / l;
}

/* Douglas-Peucker on indices lo..hi (hi may exceed n: indices wrap). */
static int dp_range(const vec__pt *p, int n, int lo, int hi, double tol, uint8_t *flags)
{
    int *stack = malloc(2 * (size_t)(hi - lo + 2) * sizeof *stack);
    if (stack == NULL)
        return MD_E_NOMEM;
    int sp = 0;
    stack[sp++] = lo;
    stack[sp++] = hi;
    while (sp > 0) {
        int b = stack[--sp], a = stack[--sp];
        int best = -1;
        double bestd = tol;
        for (int i = a + 1; i < b; i++) {
            double d = line_dist(p[i % n], p[a % n], p[b % n]);
            if (d > bestd) {
                bestd = d;
                best = i;
            }
        }
        if (best < 0)
            continue;
        flags[best % n] |= VEC__PF_KEEP;
        stack[sp++] = a;
        stack[sp++] = best;
        stack[sp++] = best;
        stack[sp++] = b;
    }
    free(stack);
    return MD_OK;
}

/* Turning angle in degrees at b coming from a and going to c (0 = straight on). */
static double turn_deg(vec__pt a, vec__pt b, vec__pt c)
{
    double ux = b.x - a.x, uy = b.y - a.y, vx = c.x - b.x, vy = c.y - b.y;
    double lu = vec__hypot(ux, uy), lv = vec__hypot(vx, vy);
    if (lu < 1e-12 || lv < 1e-12)
        return 0;
    double cs = (ux * vx + uy * vy) / (lu * lv);
    cs = cs > 1 ? 1 : cs < -1 ? -1 : cs;
    return acos(cs) * 180.0 / M_PI;
}

int vec__polygon(const vec__pt *p, int n, double tol, double corner_deg, double splice_deg,
                 uint8_t *flags)
{
    for (int i = 0; i < n; i++)
        flags[i] = 0;
    if (n <= 0)
        return 0;
    /* Split the loop at its first point and the point farthest from it. */
    int far = 0;
    double fd = -1;
    for (int i = 1; i < n; i++) {
        double d = vec__hypot(p[i].x - p[0].x, p[i].y - p[0].y);
        if (d > fd) {
            fd = d;
            far = i;
        }
    }
    flags[0] |= VEC__PF_KEEP;
    flags[far] |= VEC__PF_KEEP;
    if (dp_range(p, n, 0, far, tol, flags) != MD_OK || dp_range(p, n, far, n, tol, flags) != MD_OK)
        return -1;
    int *kept = malloc((size_t)n * sizeof *kept), m = 0;
    if (kept == NULL)
        return -1;
    for (int i = 0; i < n; i++)
        if (flags[i] & VEC__PF_KEEP)
            kept[m++] = i;
    for (int k = 0; k < m && m >= 3; k++) {
        int a = kept[(k + m - 1) % m], b = kept[k], c = kept[(k + 1) % m];
        double t = turn_deg(p[a], p[b], p[c]);
        if (t >= corner_deg)
            flags[b] |= VEC__PF_CORNER;
        else if (t >= splice_deg)
            flags[b] |= VEC__PF_SPLICE;
    }
    if (m < 3) /* a degenerate sliver: every vertex is a corner */
        for (int k = 0; k < m; k++)
            flags[kept[k]] |= VEC__PF_CORNER;
    free(kept);
    return m;
}
