/* gradient.c - find smooth linear and radial gradients and give each one path and one fill.
 *
 * Clustering cuts a smooth gradient into bands (one region per layer_difference step). Two
 * bands of one gradient meet at a soft boundary: the pixels on either side differ by a few
 * levels, while at a real edge they differ by about half the colours' difference. So:
 *   1. Regions joined by soft boundaries form candidate groups (union-find).
 *   2. For each group, least squares on pixel moments fits a linear ramp c = a + g.(x,y) and an
 *      isotropic quadratic c = a + g.(x,y) + q|(x,y)|^2 per channel; a clearly better quadratic
 *      fit means a radial gradient, whose centre is the quadratic's vertex.
 *   3. Pixels are binned along the gradient coordinate (projection or radius); the bin means
 *      are reduced to at most VEC_MAX_STOPS stops by greedy piecewise-linear fitting.
 *   4. A group whose binned model explains its pixels (small residual) becomes one region with
 *      a LINEAR/RADIAL paint; the others stay as they were.
 * Coordinates inside this file are normalised to the group's box (centre 0, half-size 1) so
 * the normal equations stay well conditioned.
 */
#include "vec_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NBINS 32
#define SOFT_STEP 24.0    /* largest mean max-channel step across a soft boundary, in levels */
#define MAX_RMS 9.0       /* largest accepted residual of a gradient model, in levels */
#define MIN_AREA 64       /* smaller groups are not worth a gradient */

/* Index of key in the sorted array e[0..n). */
static size_t find_pair(const uint64_t *e, size_t n, uint64_t key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int32_t uf(int32_t *par, int32_t x)
{
    while (par[x] != x) {
        par[x] = par[par[x]];
        x = par[x];
    }
    return x;
}

static double mean_dist(const vec__region *a, const vec__region *b)
{
    double d = 0;
    for (int k = 0; k < 3; k++) {
        double x = fabs(a->sum[k] / (double)a->area - b->sum[k] / (double)b->area);
        d = x > d ? x : d;
    }
    return d;
}

/* Largest channel difference between two pixels. */
static int px_step(const uint8_t *p, const uint8_t *q)
{
    int d = 0;
    for (int ch = 0; ch < 3; ch++) {
        int v = abs((int)p[ch] - (int)q[ch]);
        d = v > d ? v : d;
    }
    return d;
}

/* Boundary statistics per region pair: step sums (integers, so the order of the additions
 * does not matter) and counts. The last pair's index is cached: a boundary is met many times
 * in a row, so most binary searches are skipped. */
typedef struct pairstat {
    const uint64_t *e;
    size_t n, last;
    uint64_t last_key;
    double *sum;
    uint32_t *cnt;
} pairstat;

static void pair_add(pairstat *ps, const vec__clusters *c, int32_t a, int32_t b, int d)
{
    if (c->reg[a].transparent || c->reg[b].transparent)
        return;
    int32_t lo = a < b ? a : b, hi = a < b ? b : a;
    uint64_t key = (uint64_t)(uint32_t)lo << 32 | (uint32_t)hi;
    if (key != ps->last_key) {
        ps->last_key = key;
        ps->last = find_pair(ps->e, ps->n, key);
    }
    ps->sum[ps->last] += d;
    ps->cnt[ps->last]++;
}

/* Every 4-adjacent pixel pair with different labels, right and down neighbours. */
static void boundary_steps(const vec__clusters *c, pairstat *ps)
{
    size_t w = (size_t)c->w;
    for (int y = 0; y < c->h; y++) {
        const int32_t *lab = c->label + (size_t)y * w;
        const uint8_t *px = c->rgb + 3 * (size_t)y * w;
        for (size_t x = 0; x + 1 < w; x++)
            if (lab[x] != lab[x + 1])
                pair_add(ps, c, lab[x], lab[x + 1], px_step(px + 3 * x, px + 3 * x + 3));
        if (y + 1 == c->h)
            break;
        for (size_t x = 0; x < w; x++)
            if (lab[x] != lab[x + w])
                pair_add(ps, c, lab[x], lab[x + w], px_step(px + 3 * x, px + 3 * (x + w)));
    }
}

/* Step 1: union regions across soft boundaries. par must hold c->n entries. */
static int soft_groups(const vec__clusters *c, int32_t *par)
{
    uint64_t *e = NULL;
    size_t n = 0;
    int rc = vec__region_pairs(c, &e, &n);
    double *sum = rc == MD_OK ? calloc(n + 1, sizeof *sum) : NULL;
    uint32_t *cnt = rc == MD_OK ? calloc(n + 1, sizeof *cnt) : NULL;
    if (rc == MD_OK && (sum == NULL || cnt == NULL))
        rc = MD_E_NOMEM;
    if (rc == MD_OK) {
        pairstat ps = {.e = e, .n = n, .last_key = UINT64_MAX, .sum = sum, .cnt = cnt};
        boundary_steps(c, &ps);
    }
    for (size_t j = 0; rc == MD_OK && j < n; j++) {
        int32_t a = (int32_t)(e[j] >> 32), b = (int32_t)(uint32_t)e[j];
        if (cnt[j] < 4 || !vec__region_opaque(&c->reg[a]) || !vec__region_opaque(&c->reg[b]))
            continue; /* too short to judge; gradients are fitted to opaque layers only */
        double step = sum[j] / cnt[j];
        /* Soft: small pixel steps, much smaller than the bands' colour difference. */
        if (step <= SOFT_STEP && step <= 0.4 * mean_dist(&c->reg[a], &c->reg[b]) + 2) {
            int32_t ra = uf(par, a), rb = uf(par, b);
            if (ra != rb)
                par[ra > rb ? ra : rb] = ra < rb ? ra : rb;
        }
    }
    free(e);
    free(sum);
    free(cnt);
    return rc;
}

/* Per-group accumulators; u, v are normalised coordinates and r = u^2 + v^2. */
typedef struct gacc {
    double cx, cy, s;                   /* normalisation: u = (x - cx) / s */
    double inv_s, inv_dt;               /* 1 / s and 1 / (t1 - t0): per-pixel products */
    int x0, y0, x1, y1, members;
    double m[15];                       /* sums of products of the basis 1,u,v,r */
    double mc[3][4], cc[3];             /* sums of c*basis and c^2 per channel */
    int model;                          /* 0 none, 1 linear, 2 radial */
    double dir[2], ctr[2], t0, t1;      /* gradient coordinate */
    int64_t bn[NBINS], bc[NBINS][3], bcc[NBINS][3]; /* integer bin sums */
    int32_t target;                     /* region the accepted group merges into */
} gacc;

/* Index of basis product (i,j), i <= j, in gacc.m (upper triangle of a 4x4). */
static int mi(int i, int j)
{
    static const int idx[4][4] = {{0, 1, 2, 3}, {1, 4, 5, 6}, {2, 5, 7, 8}, {3, 6, 8, 9}};
    return idx[i][j];
}

/* Solve the k x k system A x = b (Gaussian elimination with pivoting); 0 on success. */
static int solve(double A[4][4], double *b, int k, double *x)
{
    for (int col = 0; col < k; col++) {
        int piv = col;
        for (int r = col + 1; r < k; r++)
            if (fabs(A[r][col]) > fabs(A[piv][col]))
                piv = r;
        if (fabs(A[piv][col]) < 1e-9)
            return -1;
        for (int j = 0; j < k; j++) {
            double t = A[col][j];
            A[col][j] = A[piv][j];
            A[piv][j] = t;
        }
        double t = b[col];
        b[col] = b[piv];
        b[piv] = t;
        for (int r = col + 1; r < k; r++) {
            double f = A[r][col] / A[col][col];
            for (int j = col; j < k; j++)
                A[r][j] -= f * A[col][j];
            b[r] -= f * b[col];
        }
    }
    for (int r = k - 1; r >= 0; r--) {
        double s = b[r];
        for (int j = r + 1; j < k; j++)
            s -= A[r][j] * x[j];
        x[r] = s / A[r][r];
    }
    return 0;
}

/* Least squares with the first k basis functions; returns the residual sum over channels
 * and the coefficients per channel in coef. Negative when singular. */
static double fit_model(const gacc *g, int k, double coef[3][4])
{
    double sse = 0;
    for (int ch = 0; ch < 3; ch++) {
        double A[4][4], b[4];
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < k; j++)
                A[i][j] = g->m[mi(i < j ? i : j, i < j ? j : i)];
            b[i] = g->mc[ch][i];
        }
        if (solve(A, b, k, coef[ch]) != 0)
            return -1;
        double explained = 0;
        for (int i = 0; i < k; i++)
            explained += coef[ch][i] * g->mc[ch][i];
        sse += g->cc[ch] - explained;
    }
    return sse > 0 ? sse : 0;
}

/* Step 2: choose linear or radial from the moments. */
static void choose_model(gacc *g)
{
    double lin[3][4], quad[3][4];
    double sl = fit_model(g, 3, lin), sq = fit_model(g, 4, quad);
    g->model = 0;
    if (sl < 0)
        return;
    if (sq >= 0 && sq < 0.5 * sl) {
        double wu = 0, wv = 0, w = 0;
        for (int ch = 0; ch < 3; ch++) {
            double q = quad[ch][3];
            if (fabs(q) < 1e-6)
                continue;
            double wt = q * q;
            wu += wt * (-quad[ch][1] / (2 * q));
            wv += wt * (-quad[ch][2] / (2 * q));
            w += wt;
        }
        if (w > 0 && fabs(wu / w) < 4 && fabs(wv / w) < 4) {
            g->model = 2;
            g->ctr[0] = wu / w;
            g->ctr[1] = wv / w;
            return;
        }
    }
    /* Principal direction of the three channels' slope vectors. */
    double a = 0, b = 0, d = 0;
    for (int ch = 0; ch < 3; ch++) {
        a += lin[ch][1] * lin[ch][1];
        b += lin[ch][1] * lin[ch][2];
        d += lin[ch][2] * lin[ch][2];
    }
    double ang = 0.5 * atan2(2 * b, a - d);
    g->dir[0] = cos(ang);
    g->dir[1] = sin(ang);
    g->model = a + d > 1e-6 ? 1 : 0;
}

static double coord(const gacc *g, double u, double v)
{
    if (g->model == 2)
        return vec__hypot(u - g->ctr[0], v - g->ctr[1]);
    return u * g->dir[0] + v * g->dir[1];
}

/* Range of the gradient coordinate over the group's box. */
static void coord_range(gacc *g)
{
    double lo = 1e18, hi = -1e18;
    for (int k = 0; k < 4; k++) {
        double u = ((k & 1 ? g->x1 + 1 : g->x0) - g->cx) / g->s;
        double v = ((k & 2 ? g->y1 + 1 : g->y0) - g->cy) / g->s;
        double t = coord(g, u, v);
        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
    }
    if (g->model == 2) {
        double u0 = g->ctr[0], v0 = g->ctr[1];
        int inside = u0 >= (g->x0 - g->cx) / g->s && u0 <= (g->x1 + 1 - g->cx) / g->s &&
                     v0 >= (g->y0 - g->cy) / g->s && v0 <= (g->y1 + 1 - g->cy) / g->s;
        lo = inside ? 0 : lo * 0.5;
    }
    g->t0 = lo;
    g->t1 = hi > lo ? hi : lo + 1e-6;
    g->inv_dt = 1.0 / (g->t1 - g->t0);
}

/* Moments of one run of pixels x0..x1-1 of row y. The sums are kept in locals over the run
 * (the row's bytes could alias them otherwise) and are added in the same order as pixel by
 * pixel, so the result is bit-for-bit that of a per-pixel loop. */
static void acc_moments(gacc *g, int y, int x0, int x1, const uint8_t *rgb)
{
    double mc[3][4], cc[3], *m = g->m;
    memcpy(mc, g->mc, sizeof mc);
    memcpy(cc, g->cc, sizeof cc);
    double v = (y + 0.5 - g->cy) * g->inv_s, vv = v * v;
    /* Sums of integers (count, colours, squared colours) are exact in a double in any order:
     * they are kept as integers over the run and added once. */
    int64_t cnt = 0, ci[3] = {0, 0, 0}, cci[3] = {0, 0, 0};
    /* m[mi(i,j)] for the basis 1,u,v,r; the constant products v and v*v are still added
     * pixel by pixel, which keeps the sums bit-identical */
    double m0 = m[0], m1 = m[1], m2 = m[2], m3 = m[3], m4 = m[4], m5 = m[5], m6 = m[6];
    double m7 = m[7], m8 = m[8], m9 = m[9];
    for (int x = x0; x < x1; x++, rgb += 3) {
        double u = (x + 0.5 - g->cx) * g->inv_s, r = u * u + vv;
        cnt++;
        m1 += u;
        m2 += v;
        m3 += r;
        m4 += u * u;
        m5 += u * v;
        m6 += u * r;
        m7 += vv;
        m8 += v * r;
        m9 += r * r;
        for (int ch = 0; ch < 3; ch++) {
            double cv = rgb[ch];
            ci[ch] += rgb[ch];
            mc[ch][1] += cv * u;
            mc[ch][2] += cv * v;
            mc[ch][3] += cv * r;
            cci[ch] += rgb[ch] * rgb[ch];
        }
    }
    m0 += (double)cnt;
    for (int ch = 0; ch < 3; ch++) {
        mc[ch][0] += (double)ci[ch];
        cc[ch] += (double)cci[ch];
    }
    m[0] = m0, m[1] = m1, m[2] = m2, m[3] = m3, m[4] = m4;
    m[5] = m5, m[6] = m6, m[7] = m7, m[8] = m8, m[9] = m9;
    memcpy(g->mc, mc, sizeof mc);
    memcpy(g->cc, cc, sizeof cc);
}

/* Bin index of pixel (x, y) along g's gradient coordinate. */
static int bin_of(const gacc *g, int x, int y)
{
    double u = (x + 0.5 - g->cx) * g->inv_s, v = (y + 0.5 - g->cy) * g->inv_s;
    double t = (coord(g, u, v) - g->t0) * g->inv_dt;
    int b = (int)(t * NBINS);
    return b < 0 ? 0 : b >= NBINS ? NBINS - 1 : b;
}

/* Bin sums of one run, in integers (the doubles they replace held the same exact values). */
static void acc_bins(gacc *g, int y, int x0, int x1, const uint8_t *rgb)
{
    if (g->model == 0)
        return;
    for (int x = x0; x < x1; x++, rgb += 3) {
        int b = bin_of(g, x, y);
        g->bn[b]++;
        for (int ch = 0; ch < 3; ch++) {
            g->bc[b][ch] += rgb[ch];
            g->bcc[b][ch] += rgb[ch] * rgb[ch];
        }
    }
}

typedef void (*run_fn)(gacc *g, int y, int x0, int x1, const uint8_t *rgb);

/* Call fn for every run of equal labels of every candidate group (cand[root] = index or -1):
 * a run lies in one region, so the group lookup is done once per run, not per pixel. */
static void each_run(const vec__clusters *c, const int32_t *par, const int32_t *cand, gacc *g,
                     run_fn fn)
{
    for (int y = 0; y < c->h; y++) {
        const int32_t *lab = c->label + (size_t)y * (size_t)c->w;
        const uint8_t *px = c->rgb + 3 * (size_t)y * (size_t)c->w;
        for (int x0 = 0, x1; x0 < c->w; x0 = x1) {
            for (x1 = x0 + 1; x1 < c->w && lab[x1] == lab[x0]; x1++)
                ;
            int32_t k = cand[par[lab[x0]]];
            if (k >= 0)
                fn(&g[k], y, x0, x1, px + 3 * x0);
        }
    }
}

/* Step 3: stops from the bin means; returns the residual RMS of the binned model. */
static double make_stops(const gacc *g, vec_paint *paint)
{
    double sse = 0, n = 0, mean[NBINS][3], tc[NBINS];
    int nb = 0;
    for (int b = 0; b < NBINS; b++) {
        if (g->bn[b] < 1)
            continue;
        for (int ch = 0; ch < 3; ch++) {
            mean[nb][ch] = (double)g->bc[b][ch] / (double)g->bn[b];
            sse += (double)g->bcc[b][ch] - (double)g->bc[b][ch] * mean[nb][ch];
        }
        tc[nb++] = (b + 0.5) / NBINS;
        n += (double)g->bn[b];
    }
    if (nb < 2)
        return 1e9;
    /* Greedy piecewise-linear: add the worst-fitting bin until all are within 3 levels. */
    int keep[NBINS] = {0};
    keep[0] = keep[nb - 1] = 1;
    for (int nk = 2; nk < VEC_MAX_STOPS; nk++) {
        int worst = -1;
        double we = 3.0;
        for (int i = 1, a = 0; i < nb - 1; i++) {
            if (keep[i]) {
                a = i;
                continue;
            }
            int b = i + 1;
            while (!keep[b])
                b++;
            double f = (tc[i] - tc[a]) / (tc[b] - tc[a]);
            for (int ch = 0; ch < 3; ch++) {
                double e = fabs(mean[i][ch] - (mean[a][ch] + f * (mean[b][ch] - mean[a][ch])));
                if (e > we) {
                    we = e;
                    worst = i;
                }
            }
        }
        if (worst < 0)
            break;
        keep[worst] = 1;
    }
    paint->nstops = 0;
    for (int i = 0; i < nb; i++) {
        if (!keep[i])
            continue;
        vec_stop *s = &paint->stops[paint->nstops++];
        s->offset = (float)tc[i];
        for (int ch = 0; ch < 3; ch++)
            s->rgba[ch] = (uint8_t)lround(mean[i][ch] < 0 ? 0 : mean[i][ch] > 255 ? 255 : mean[i][ch]);
        s->rgba[3] = 255;
    }
    return sqrt(sse / (3 * n));
}

/* Colour of the binned model at normalised coordinate t (stops still in bin space); the
 * segment search starts at stop index from, which must have every earlier stop below t.
 * Returns the segment's first stop. */
static int model_color(const vec_paint *p, double t, int from, double *out)
{
    int i = from;
    while (i + 1 < p->nstops && p->stops[i + 1].offset < t)
        i++;
    const vec_stop *a = &p->stops[i], *b = &p->stops[i + 1 < p->nstops ? i + 1 : i];
    double f = b->offset > a->offset ? (t - a->offset) / (b->offset - a->offset) : 0;
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    for (int ch = 0; ch < 3; ch++)
        out[ch] = a->rgba[ch] + f * (b->rgba[ch] - a->rgba[ch]);
    return i;
}

/* Squared error of every region of a candidate group against its group's model. Run by run
 * (one region per run), each region's sum kept in a local in pixel order. */
static void region_errors(const vec__clusters *c, const int32_t *par, const int32_t *cand,
                          const gacc *g, const vec_paint *paints, double *sse)
{
    for (int y = 0; y < c->h; y++) {
        const int32_t *lab = c->label + (size_t)y * (size_t)c->w;
        const uint8_t *px = c->rgb + 3 * (size_t)y * (size_t)c->w;
        for (int x0 = 0, x1; x0 < c->w; x0 = x1) {
            int32_t r = lab[x0], k = cand[par[r]];
            for (x1 = x0 + 1; x1 < c->w && lab[x1] == r; x1++)
                ;
            if (k < 0 || g[k].model == 0 || paints[k].nstops < 2)
                continue;
            const gacc *a = &g[k];
            double e = sse[r], prev_t = -INFINITY;
            int stop = 0;
            for (int x = x0; x < x1; x++) {
                double u = (x + 0.5 - a->cx) * a->inv_s, v = (y + 0.5 - a->cy) * a->inv_s, m[3];
                double t = (coord(a, u, v) - a->t0) * a->inv_dt;
                /* stops below the previous t are below this one too: resume the search */
                stop = model_color(&paints[k], t, t >= prev_t ? stop : 0, m);
                prev_t = t;
                for (int ch = 0; ch < 3; ch++)
                    e += (m[ch] - px[3 * x + ch]) * (m[ch] - px[3 * x + ch]);
            }
            sse[r] = e;
        }
    }
}

/* Drop the regions the model does not explain (a shape lying on the gradient) and decide
 * whether the rest of each group is a gradient. */
static void judge_groups(const vec__clusters *c, const int32_t *par, const int32_t *cand,
                         int ng, const double *sse, uint8_t *excl, uint8_t *ok)
{
    double *gs = calloc((size_t)ng + 1, sizeof *gs), *ga = calloc((size_t)ng + 1, sizeof *ga);
    int *gm = calloc((size_t)ng + 1, sizeof *gm);
    if (gs && ga && gm) {
        for (int32_t r = 0; r < c->n; r++) {
            int32_t k = cand[par[r]];
            if (k < 0 || !ok[k])
                continue;
            double rms = sqrt(sse[r] / (3.0 * (double)c->reg[r].area));
            excl[r] = rms > 1.5 * MAX_RMS;
            if (excl[r])
                continue;
            gs[k] += sse[r];
            ga[k] += (double)c->reg[r].area;
            gm[k]++;
        }
        for (int k = 0; k < ng; k++)
            ok[k] = ok[k] && gm[k] >= 2 && ga[k] >= MIN_AREA && sqrt(gs[k] / (3 * ga[k])) <= MAX_RMS;
    } else {
        memset(ok, 0, (size_t)ng); /* out of memory: simply no gradients */
    }
    free(gs);
    free(ga);
    free(gm);
}

/* Step 4: the paint in pixel coordinates; stops' offsets rescaled to the end stops. */
static void make_paint(const gacc *g, vec_paint *p)
{
    double f0 = p->stops[0].offset, f1 = p->stops[p->nstops - 1].offset;
    double ta = g->t0 + f0 * (g->t1 - g->t0), tb = g->t0 + f1 * (g->t1 - g->t0);
    p->rgba[0] = p->rgba[1] = p->rgba[2] = 0;
    p->rgba[3] = 255;
    if (g->model == 1) {
        p->kind = VEC_PAINT_LINEAR;
        p->x1 = (float)(g->cx + g->s * g->dir[0] * ta);
        p->y1 = (float)(g->cy + g->s * g->dir[1] * ta);
        p->x2 = (float)(g->cx + g->s * g->dir[0] * tb);
        p->y2 = (float)(g->cy + g->s * g->dir[1] * tb);
        for (int i = 0; i < p->nstops; i++)
            p->stops[i].offset = (float)((p->stops[i].offset - f0) / (f1 - f0));
    } else {
        p->kind = VEC_PAINT_RADIAL;
        p->x1 = (float)(g->cx + g->s * g->ctr[0]);
        p->y1 = (float)(g->cy + g->s * g->ctr[1]);
        p->x2 = (float)(g->s * tb);
        for (int i = 0; i < p->nstops; i++) {
            double t = g->t0 + p->stops[i].offset * (g->t1 - g->t0);
            p->stops[i].offset = (float)(t / tb);
        }
    }
}

/* Candidate groups: roots with two or more regions and enough pixels. */
static int find_candidates(const vec__clusters *c, int32_t *par, int32_t *cand, gacc **out, int *nout)
{
    int *members = calloc((size_t)c->n, sizeof *members);
    int64_t *area = calloc((size_t)c->n, sizeof *area);
    if (members == NULL || area == NULL) {
        free(members);
        free(area);
        return MD_E_NOMEM;
    }
    for (int32_t r = 0; r < c->n; r++) {
        int32_t g = uf(par, r);
        par[r] = g;
        members[g]++;
        area[g] += c->reg[r].area;
    }
    int n = 0;
    for (int32_t r = 0; r < c->n; r++) {
        cand[r] = -1;
        if (par[r] == r && members[r] >= 2 && area[r] >= MIN_AREA)
            cand[r] = n++;
    }
    gacc *g = calloc((size_t)(n ? n : 1), sizeof *g);
    if (g != NULL) {
        for (int k = 0; k < n; k++)
            g[k].x0 = g[k].y0 = 1 << 30, g[k].x1 = g[k].y1 = -1, g[k].target = -1;
        for (int32_t r = 0; r < c->n; r++) {
            int32_t k = cand[par[r]];
            if (k < 0)
                continue;
            const vec__region *rr = &c->reg[r];
            g[k].x0 = rr->x0 < g[k].x0 ? rr->x0 : g[k].x0;
            g[k].y0 = rr->y0 < g[k].y0 ? rr->y0 : g[k].y0;
            g[k].x1 = rr->x1 > g[k].x1 ? rr->x1 : g[k].x1;
            g[k].y1 = rr->y1 > g[k].y1 ? rr->y1 : g[k].y1;
        }
        for (int k = 0; k < n; k++) {
            g[k].cx = (g[k].x0 + g[k].x1 + 1) / 2.0;
            g[k].cy = (g[k].y0 + g[k].y1 + 1) / 2.0;
            double hw = (g[k].x1 + 1 - g[k].x0) / 2.0, hh = (g[k].y1 + 1 - g[k].y0) / 2.0;
            g[k].s = hw > hh ? hw : hh;
            g[k].inv_s = 1.0 / g[k].s;
        }
    }
    free(members);
    free(area);
    *out = g;
    *nout = n;
    return g ? MD_OK : MD_E_NOMEM;
}

/* Step 4: merge accepted groups into single regions carrying their paints. */
static int apply_groups(vec__clusters *c, const int32_t *par, const int32_t *cand, gacc *g,
                        const uint8_t *ok, const uint8_t *excl, int32_t *newid)
{
    int32_t *target = malloc(((size_t)c->n + 1) * sizeof *target);
    int32_t *to = malloc(((size_t)c->n + 1) * sizeof *to);
    if (target == NULL || to == NULL) {
        free(target);
        free(to);
        return MD_E_NOMEM;
    }
    /* The group's label is its first kept member, so an excluded root does not capture it. */
    for (int32_t r = 0; r < c->n; r++)
        target[r] = -1;
    for (int32_t r = 0; r < c->n; r++) {
        int32_t k = cand[par[r]];
        to[r] = r;
        if (k < 0 || !ok[k] || excl[r])
            continue;
        if (target[par[r]] < 0)
            target[par[r]] = g[k].target = r;
        to[r] = target[par[r]];
    }
    free(target);
    int rc = vec__clusters_merge(c, to, newid);
    free(to);
    return rc;
}

/* Steps 2-4 for the ng candidate groups: fit, judge; ok[k] says which groups are gradients,
 * paints[k] holds their fills, excl[r] the regions left out of their group. */
static int fit_groups(const vec__clusters *c, const int32_t *par, const int32_t *cand, gacc *g,
                      int ng, vec_paint *paints, uint8_t *ok, uint8_t *excl)
{
    each_run(c, par, cand, g, acc_moments);
    for (int k = 0; k < ng; k++) {
        choose_model(&g[k]);
        if (g[k].model)
            coord_range(&g[k]);
    }
    each_run(c, par, cand, g, acc_bins);
    for (int k = 0; k < ng; k++)
        ok[k] = g[k].model != 0 && make_stops(&g[k], &paints[k]) < 1e9 && paints[k].nstops >= 2;
    double *sse = calloc((size_t)c->n, sizeof *sse);
    if (sse == NULL)
        return MD_E_NOMEM;
    region_errors(c, par, cand, g, paints, sse);
    judge_groups(c, par, cand, ng, sse, excl, ok);
    free(sse);
    for (int k = 0; k < ng; k++)
        if (ok[k])
            make_paint(&g[k], &paints[k]);
    return MD_OK;
}

/* Merge the accepted groups and keep their fills beside the regions. */
static int store_gradients(vec__clusters *c, const int32_t *par, const int32_t *cand, gacc *g,
                           int ng, const vec_paint *paints, const uint8_t *ok, const uint8_t *excl)
{
    int nok = 0;
    for (int k = 0; k < ng; k++)
        nok += ok[k];
    if (nok == 0)
        return MD_OK;
    int32_t *newid = malloc(((size_t)c->n + 1) * sizeof *newid);
    int rc = newid ? apply_groups(c, par, cand, g, ok, excl, newid) : MD_E_NOMEM;
    free(c->grad);
    c->ngrad = 0;
    c->grad = rc == MD_OK ? malloc((size_t)nok * sizeof *c->grad) : NULL;
    if (rc == MD_OK && c->grad == NULL)
        rc = MD_E_NOMEM;
    for (int k = 0; rc == MD_OK && k < ng; k++) {
        if (!ok[k])
            continue;
        c->reg[newid[g[k].target]].gradient = c->ngrad;
        c->grad[c->ngrad++] = paints[k];
    }
    free(newid);
    return rc;
}

int vec__gradients(vec__clusters *c)
{
    if (c->n < 2)
        return MD_OK;
    int32_t *par = malloc((size_t)c->n * sizeof *par), *cand = malloc((size_t)c->n * sizeof *cand);
    gacc *g = NULL;
    vec_paint *paints = NULL;
    uint8_t *ok = NULL, *excl = NULL;
    int ng = 0, rc = par && cand ? MD_OK : MD_E_NOMEM;
    for (int32_t r = 0; rc == MD_OK && r < c->n; r++)
        par[r] = r;
    if (rc == MD_OK)
        rc = soft_groups(c, par);
    if (rc == MD_OK)
        rc = find_candidates(c, par, cand, &g, &ng);
    if (rc == MD_OK && ng > 0) {
        paints = calloc((size_t)ng, sizeof *paints);
        ok = calloc((size_t)ng, 1);
        excl = calloc((size_t)c->n, 1);
        rc = paints && ok && excl ? fit_groups(c, par, cand, g, ng, paints, ok, excl) : MD_E_NOMEM;
        if (rc == MD_OK)
            rc = store_gradients(c, par, cand, g, ng, paints, ok, excl);
    }
    free(par);
    free(cand);
    free(g);
    free(paints);
    free(ok);
    free(excl);
    return rc;
}
