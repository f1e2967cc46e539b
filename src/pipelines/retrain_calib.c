/* retrain_calib.c - what keeps a retraining honest (retrain.c calls these between reading the
 * rows and installing the version): the rows of the held test split are taken out of the
 * training rows, a seeded validation split is held back from training, and the decisions the
 * manifest calibrates on a validation split (the F1-optimal threshold of churn and
 * revenue-leak, profitability's residual quantiles, pricing's willingness-to-pay fit) are
 * computed again on it, as the scripts of training/predict/ do for version 1.
 *
 * Invariants:
 *   1. A training row identical to a test row (every feature float and the label, bit for bit
 *      after the schema's encoding, NaN and -0 folded) is dropped and counted: the test split
 *      judges the new version, so it must not have learnt those rows. Identity is on the
 *      encoded row, so "70.7" and "70.70", another column order or extra columns do not hide a
 *      test row.
 *   2. The validation split is a seeded (the training seed) 20 % of the remaining rows in
 *      their order, disjoint from the training rows; the same data and seed give the same
 *      split, so a retrain is reproducible.
 *   3. The threshold grid and rule are churn.py's best_threshold: t in 0.10, 0.11, ..., 0.90,
 *      predicted when score >= t (compared as float32, as numpy does), the first t of the
 *      highest F1. Quantiles interpolate linearly between order statistics (numpy's default).
 */
#include "pipelines/retrain_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- test rows out of the training rows --------------------------------------------------- */

/* A float with every NaN one pattern and -0 as 0 (invariant 1). */
static uint32_t canon(float f)
{
    uint32_t u;
    if (isnan(f))
        return 0x7fc00000u;
    if (f == 0.0f)
        return 0;
    memcpy(&u, &f, sizeof u);
    return u;
}

static uint64_t row_hash(const float *x, size_t ncols, float y)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the canonical words */
    for (size_t i = 0; i <= ncols; i++) {
        uint32_t w = canon(i < ncols ? x[i] : y);
        for (int b = 0; b < 4; b++) {
            h ^= (w >> (8 * b)) & 0xff;
            h *= 1099511628211ull;
        }
    }
    return h ? h : 1; /* 0 marks an empty slot */
}

static int same_row(const float *a, float ya, const float *b, float yb, size_t ncols)
{
    for (size_t i = 0; i < ncols; i++)
        if (canon(a[i]) != canon(b[i]))
            return 0;
    return canon(ya) == canon(yb);
}

typedef struct row_set {
    uint64_t *hash; /* open addressing, 0 = empty */
    size_t *row;    /* the test row of each slot */
    size_t cap;     /* a power of two, at least twice the rows */
} row_set;

static int set_build(row_set *s, const rt_rows *t)
{
    s->cap = 16;
    while (s->cap < 2 * t->n)
        s->cap *= 2;
    s->hash = calloc(s->cap, sizeof *s->hash);
    s->row = malloc(s->cap * sizeof *s->row);
    if (!s->hash || !s->row)
        return MD_E_NOMEM;
    for (size_t i = 0; i < t->n; i++) {
        uint64_t h = row_hash(t->x + i * t->ncols, t->ncols, t->y[i]);
        size_t k = (size_t)h & (s->cap - 1);
        while (s->hash[k])
            k = (k + 1) & (s->cap - 1);
        s->hash[k] = h;
        s->row[k] = i;
    }
    return MD_OK;
}

static int set_has(const row_set *s, const rt_rows *t, const float *x, float y)
{
    uint64_t h = row_hash(x, t->ncols, y);
    for (size_t k = (size_t)h & (s->cap - 1); s->hash[k]; k = (k + 1) & (s->cap - 1))
        if (s->hash[k] == h &&
            same_row(t->x + s->row[k] * t->ncols, t->y[s->row[k]], x, y, t->ncols))
            return 1;
    return 0;
}

int rt__drop_overlap(rt_rows *r, const rt_rows *test, size_t *dropped, md_err *err)
{
    *dropped = 0;
    row_set s = {0};
    int rc = set_build(&s, test) == MD_OK ? MD_OK : md_fail(err, MD_E_NOMEM, NULL, NULL);
    size_t w = 0;
    for (size_t i = 0; rc == MD_OK && i < r->n; i++) {
        if (set_has(&s, test, r->x + i * r->ncols, r->y[i])) {
            (*dropped)++;
            continue;
        }
        if (w != i) {
            memmove(r->x + w * r->ncols, r->x + i * r->ncols, r->ncols * sizeof *r->x);
            r->y[w] = r->y[i];
        }
        w++;
    }
    if (rc == MD_OK)
        r->n = w;
    free(s.hash);
    free(s.row);
    return rc;
}

/* ---- the validation split ----------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int rows_reserve(rt_rows *r, size_t n, size_t ncols)
{
    r->ncols = ncols;
    r->x = malloc((n ? n : 1) * ncols * sizeof *r->x);
    r->y = malloc((n ? n : 1) * sizeof *r->y);
    r->cap = n;
    return r->x && r->y ? MD_OK : MD_E_NOMEM;
}

int rt__split_validation(rt_rows *r, uint64_t seed, rt_rows *val, md_err *err)
{
    memset(val, 0, sizeof *val);
    val->ncols = r->ncols;
    if (r->n < RT_VAL_MIN_ROWS)
        return MD_OK;
    size_t nv = (size_t)llround((double)r->n * RT_VAL_SHARE);
    unsigned char *pick = calloc(r->n, 1);
    size_t *idx = malloc(r->n * sizeof *idx);
    int rc = pick && idx && rows_reserve(val, nv, r->ncols) == MD_OK
                 ? MD_OK
                 : md_fail(err, MD_E_NOMEM, NULL, NULL);
    /* the first nv of a seeded Fisher-Yates shuffle (invariant 2) */
    uint64_t st = seed;
    for (size_t i = 0; rc == MD_OK && i < r->n; i++)
        idx[i] = i;
    for (size_t i = 0; rc == MD_OK && i < nv; i++) {
        size_t j = i + (size_t)(splitmix(&st) % (r->n - i));
        size_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        pick[idx[i]] = 1;
    }
    size_t w = 0;
    for (size_t i = 0; rc == MD_OK && i < r->n; i++) {
        rt_rows *dst = pick[i] ? val : r;
        size_t k = pick[i] ? val->n++ : w++;
        memmove(dst->x + k * r->ncols, r->x + i * r->ncols, r->ncols * sizeof *r->x);
        dst->y[k] = r->y[i];
    }
    if (rc == MD_OK)
        r->n = w;
    free(pick);
    free(idx);
    return rc;
}

/* ---- calibration -------------------------------------------------------------------------- */

double rt__best_threshold(const float *s, const int *t, size_t n, double *f1_out)
{
    size_t pos = 0;
    for (size_t i = 0; i < n; i++)
        pos += t[i] != 0;
    if (pos == 0 || pos == n)
        return NAN; /* one class only: F1 cannot choose */
    double best = NAN, best_f1 = -1;
    for (int k = 0; k <= 80; k++) {
        double thr = (10 + k) / 100.0;
        float tf = (float)thr;
        size_t tp = 0, fp = 0, fn = 0;
        for (size_t i = 0; i < n; i++) {
            int p = s[i] >= tf;
            tp += p && t[i];
            fp += p && !t[i];
            fn += !p && t[i];
        }
        double f1 = tp ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 0.0;
        if (f1 > best_f1) {
            best_f1 = f1;
            best = thr;
        }
    }
    if (f1_out)
        *f1_out = best_f1;
    return best;
}

double rt__f1_at(const float *s, const int *t, size_t n, double thr)
{
    size_t tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < n; i++) {
        int p = s[i] >= (float)thr;
        tp += p && t[i];
        fp += p && !t[i];
        fn += !p && t[i];
    }
    return tp ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 0.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void rt__sort(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
}

double rt__quantile(const double *sorted, size_t n, double q)
{
    if (n == 0)
        return NAN;
    double h = (double)(n - 1) * q;
    size_t lo = (size_t)floor(h);
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    return sorted[lo] + (h - (double)lo) * (sorted[hi] - sorted[lo]);
}

/* The mu that solves sum tanh((r - mu) / 2s) = 0 (d log L / d mu = 0; decreasing in mu). */
static double solve_mu(const double *r, size_t n, double s, double lo, double hi)
{
    for (int it = 0; it < 200 && hi - lo > 1e-15 * (fabs(lo) + fabs(hi) + 1e-300); it++) {
        double mid = (lo + hi) / 2, g = 0;
        for (size_t i = 0; i < n; i++)
            g += tanh((r[i] - mid) / (2 * s));
        if (g > 0)
            lo = mid;
        else
            hi = mid;
    }
    return (lo + hi) / 2;
}

/* The s that solves sum z tanh(z / 2) = n, z = (r - mu) / s (d log L / d s = 0; the sum falls
 * as s grows), by bisection on log s. */
static double solve_s(const double *r, size_t n, double mu, double lo, double hi)
{
    for (int it = 0; it < 200 && hi / lo > 1 + 1e-14; it++) {
        double mid = sqrt(lo * hi), g = -(double)n;
        for (size_t i = 0; i < n; i++) {
            double z = (r[i] - mu) / mid;
            g += z * tanh(z / 2);
        }
        if (g > 0)
            lo = mid;
        else
            hi = mid;
    }
    return sqrt(lo * hi);
}

int rt__logistic_fit(const double *r, size_t n, double *mu, double *s)
{
    if (n < 2)
        return MD_E_INVALID_PARAM;
    double lo = r[0], hi = r[0], m = 0, v = 0;
    for (size_t i = 0; i < n; i++) {
        lo = r[i] < lo ? r[i] : lo;
        hi = r[i] > hi ? r[i] : hi;
        m += r[i];
    }
    m /= (double)n;
    for (size_t i = 0; i < n; i++)
        v += (r[i] - m) * (r[i] - m);
    double sc = sqrt(v / (double)n) * sqrt(3.0) / M_PI; /* the moments' scale to start from */
    if (!(sc > 0) || !isfinite(sc))
        return MD_E_INVALID_PARAM;
    /* coordinate ascent: each step solves one score equation exactly, the log-likelihood rises */
    for (int it = 0; it < 100; it++) {
        double m2 = solve_mu(r, n, sc, lo, hi);
        double s2 = solve_s(r, n, m2, sc * 1e-6, sc * 1e6);
        int done = fabs(m2 - m) <= 1e-12 * (fabs(m) + sc) && fabs(s2 - sc) <= 1e-12 * sc;
        m = m2;
        sc = s2;
        if (done)
            break;
    }
    *mu = m;
    *s = sc;
    return MD_OK;
}
