/* fit.c - least-squares cubic Bézier fitting with an error bound (after Schneider, "An
 * Algorithm for Automatically Fitting Digitized Curves", Graphics Gems, 1990).
 *
 * A chain of points between two corners is fitted with one cubic whose end tangents are fixed;
 * when the largest distance from a point to the curve (at the point's parameter) exceeds the
 * tolerance, the parameters are refined by Newton steps (max_iterations rounds) and, failing
 * that, the chain is split at its worst point with a shared tangent there. Invariant: every
 * input point is within tol of the emitted curves (measured at its parameter, an upper bound
 * of its true distance). Near-straight cubics are emitted as lines, which are shorter in SVG.
 */
#include "vec_int.h"

#include <math.h>
#include <stdlib.h>

int vec__segs_push(vec__segs *v, vec_seg_kind k, const double *pts, int npts)
{
    if (v->n == v->cap) {
        size_t ncap = v->cap ? 2 * v->cap : 16;
        vec_seg *ns = realloc(v->s, ncap * sizeof *ns);
        if (ns == NULL)
            return MD_E_NOMEM;
        v->s = ns;
        v->cap = ncap;
    }
    vec_seg *s = &v->s[v->n++];
    s->kind = k;
    for (int i = 0; i < 3; i++) {
        s->pt[i][0] = i < npts ? (float)pts[2 * i] : 0.0f;
        s->pt[i][1] = i < npts ? (float)pts[2 * i + 1] : 0.0f;
    }
    return MD_OK;
}

static vec__pt add(vec__pt a, vec__pt b) { return (vec__pt){a.x + b.x, a.y + b.y}; }
static vec__pt sub(vec__pt a, vec__pt b) { return (vec__pt){a.x - b.x, a.y - b.y}; }
static vec__pt scl(vec__pt a, double s) { return (vec__pt){a.x * s, a.y * s}; }
static double dot(vec__pt a, vec__pt b) { return a.x * b.x + a.y * b.y; }

static vec__pt unit(vec__pt a)
{
    double l = vec__hypot(a.x, a.y);
    return l > 1e-12 ? scl(a, 1.0 / l) : (vec__pt){0, 0};
}

vec__pt vec__bezier(const vec__pt *b, double t)
{
    double s = 1 - t;
    double b0 = s * s * s, b1 = 3 * s * s * t, b2 = 3 * s * t * t, b3 = t * t * t;
    return (vec__pt){b0 * b[0].x + b1 * b[1].x + b2 * b[2].x + b3 * b[3].x,
                     b0 * b[0].y + b1 * b[1].y + b2 * b[2].y + b3 * b[3].y};
}

/* Control points with the end tangents fixed, the two lengths by least squares. The
 * Bernstein weights of every u[i] are left in bas[4i..4i+3] for max_error and
 * reparameterize, which evaluate the curve at the same parameters. */
static void generate(const vec__pt *p, int n, const double *u, vec__pt t1, vec__pt t2, vec__pt *b,
                     double *bas)
{
    double c00 = 0, c01 = 0, c11 = 0, x0 = 0, x1 = 0;
    vec__pt p0 = p[0], pn = p[n - 1];
    for (int i = 0; i < n; i++) {
        double t = u[i], s = 1 - t;
        double b0 = s * s * s, b1 = 3 * s * s * t, b2 = 3 * s * t * t, b3 = t * t * t;
        bas[4 * i] = b0, bas[4 * i + 1] = b1, bas[4 * i + 2] = b2, bas[4 * i + 3] = b3;
        vec__pt a1 = scl(t1, b1), a2 = scl(t2, b2);
        c00 += dot(a1, a1);
        c01 += dot(a1, a2);
        c11 += dot(a2, a2);
        vec__pt tmp = sub(p[i], add(scl(p0, b0 + b1), scl(pn, b2 + b3)));
        x0 += dot(a1, tmp);
        x1 += dot(a2, tmp);
    }
    double det = c00 * c11 - c01 * c01;
    double al1 = fabs(det) > 1e-12 ? (x0 * c11 - x1 * c01) / det : 0;
    double al2 = fabs(det) > 1e-12 ? (c00 * x1 - c01 * x0) / det : 0;
    double seg = vec__hypot(pn.x - p0.x, pn.y - p0.y), eps = 1e-6 * seg;
    if (al1 < eps || al2 < eps || al1 > 2 * seg + 2 || al2 > 2 * seg + 2)
        al1 = al2 = seg / 3; /* the Wu/Barsky heuristic when least squares is unreliable */
    b[0] = p0;
    b[1] = add(p0, scl(t1, al1));
    b[2] = add(pn, scl(t2, al2));
    b[3] = pn;
}

/* The curve b at the parameter whose Bernstein weights are w (as vec__bezier computes it). */
static vec__pt bezier_w(const vec__pt *b, const double *w)
{
    return (vec__pt){w[0] * b[0].x + w[1] * b[1].x + w[2] * b[2].x + w[3] * b[3].x,
                     w[0] * b[0].y + w[1] * b[1].y + w[2] * b[2].y + w[3] * b[3].y};
}

static double max_error(const vec__pt *p, int n, const double *bas, const vec__pt *b, int *split)
{
    double worst = 0;
    *split = n / 2;
    for (int i = 1; i < n - 1; i++) {
        vec__pt q = bezier_w(b, bas + 4 * i);
        double d = vec__hypot(q.x - p[i].x, q.y - p[i].y);
        if (d >= worst) {
            worst = d;
            *split = i;
        }
    }
    return worst;
}

/* One Newton step per point on f(u) = (Q(u) - P) . Q'(u). */
static void reparameterize(const vec__pt *p, int n, double *u, const double *bas, const vec__pt *b)
{
    vec__pt d1[3] = {scl(sub(b[1], b[0]), 3), scl(sub(b[2], b[1]), 3), scl(sub(b[3], b[2]), 3)};
    vec__pt d2[2] = {scl(sub(d1[1], d1[0]), 2), scl(sub(d1[2], d1[1]), 2)};
    for (int i = 1; i < n - 1; i++) {
        double t = u[i], s = 1 - t;
        vec__pt q = bezier_w(b, bas + 4 * i);
        vec__pt q1 = add(add(scl(d1[0], s * s), scl(d1[1], 2 * s * t)), scl(d1[2], t * t));
        vec__pt q2 = add(scl(d2[0], s), scl(d2[1], t));
        vec__pt diff = sub(q, p[i]);
        double num = dot(diff, q1), den = dot(q1, q1) + dot(diff, q2);
        if (fabs(den) > 1e-12) {
            double nu = t - num / den;
            u[i] = nu < 0 ? 0 : nu > 1 ? 1 : nu;
        }
    }
}

static void chord_params(const vec__pt *p, int n, double *u)
{
    u[0] = 0;
    for (int i = 1; i < n; i++)
        u[i] = u[i - 1] + vec__hypot(p[i].x - p[i - 1].x, p[i].y - p[i - 1].y);
    double total = u[n - 1] > 0 ? u[n - 1] : 1;
    for (int i = 1; i < n; i++)
        u[i] /= total;
}

static int emit(const vec__pt *b, double tol, vec__segs *out)
{
    /* Straight enough: both control points near the chord and between its ends. */
    vec__pt ch = sub(b[3], b[0]);
    double l = vec__hypot(ch.x, ch.y);
    int straight = 0;
    if (l > 1e-9) {
        double s1 = dot(sub(b[1], b[0]), ch) / (l * l), s2 = dot(sub(b[2], b[0]), ch) / (l * l);
        double d1 = fabs((b[1].x - b[0].x) * ch.y - (b[1].y - b[0].y) * ch.x) / l;
        double d2 = fabs((b[2].x - b[0].x) * ch.y - (b[2].y - b[0].y) * ch.x) / l;
        straight = d1 < 0.25 * tol && d2 < 0.25 * tol && s1 >= 0 && s1 <= 1 && s2 >= 0 && s2 <= 1;
    }
    if (straight)
        return vec__segs_push(out, VEC_SEG_LINE, (const double[]){b[3].x, b[3].y}, 1);
    return vec__segs_push(out, VEC_SEG_CUBIC,
                          (const double[]){b[1].x, b[1].y, b[2].x, b[2].y, b[3].x, b[3].y}, 3);
}

typedef struct fitctx {
    double tol;
    int max_iter;
    double *u;
    double *bas;            /* 4 Bernstein weights per point */
    vec__segs *out;
} fitctx;

static int fit_rec(fitctx *f, const vec__pt *p, int n, vec__pt t1, vec__pt t2, int depth)
{
    vec__pt b[4];
    if (n == 2 || depth > 64) {
        /* Two points, or a pathological chain: lines through the points are exact. */
        int rc = MD_OK;
        for (int i = 1; i < n && rc == MD_OK; i++)
            rc = vec__segs_push(f->out, VEC_SEG_LINE, (const double[]){p[i].x, p[i].y}, 1);
        return rc;
    }
    double *u = f->u;
    chord_params(p, n, u);
    generate(p, n, u, t1, t2, b, f->bas);
    int split;
    double e = max_error(p, n, f->bas, b, &split);
    for (int it = 0; e > f->tol && e < 4 * f->tol && it < f->max_iter; it++) {
        reparameterize(p, n, u, f->bas, b);
        generate(p, n, u, t1, t2, b, f->bas);
        e = max_error(p, n, f->bas, b, &split);
    }
    if (e <= f->tol)
        return emit(b, f->tol, f->out);
    split = split < 1 ? 1 : split > n - 2 ? n - 2 : split;
    vec__pt tc = unit(sub(p[split - 1], p[split + 1]));
    if (tc.x == 0 && tc.y == 0)
        tc = unit(sub(p[split - 1], p[split]));
    int rc = fit_rec(f, p, split + 1, t1, tc, depth + 1);
    return rc == MD_OK ? fit_rec(f, p + split, n - split, scl(tc, -1), t2, depth + 1) : rc;
}

int vec__fit_cubic(const vec__pt *p, int n, vec__pt t1, vec__pt t2, double tol, int max_iter,
                   vec__segs *out)
{
    if (n < 2)
        return MD_OK;
    fitctx f = {tol, max_iter, malloc((size_t)n * sizeof(double)),
                malloc(4 * (size_t)n * sizeof(double)), out};
    int rc = f.u && f.bas ? fit_rec(&f, p, n, unit(t1), unit(t2), 0) : MD_E_NOMEM;
    free(f.u);
    free(f.bas);
    return rc;
}
