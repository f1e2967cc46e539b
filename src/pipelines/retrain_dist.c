/* retrain_dist.c - the training distribution of a retrained version's rows, for drift
 * (preprocessing.training_distribution, the format of training/README's contract and of
 * pcommon.distribution, which makes it for the shipped versions): per number column ten bins
 * on the training deciles with their proportions, quantiles, mean, std, min, max and the share
 * missing; per category column the proportion of each value index.
 *
 * Invariants:
 *   1. Quantiles are numpy's default (linear interpolation between order statistics), the
 *      inner edges are the deciles with duplicates dropped, a value v falls in bin k = the
 *      number of edges <= v (searchsorted "right"), and numbers are rounded to 6 significant
 *      digits: a version retrained on the shipped training rows gets the shipped numbers.
 *   2. NaN (missing) values count only in "missing"; a column with no value gets zeros.
 */
#include "pipelines/retrain_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BINS 10

static const double QUANTILES[] = {0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99};
#define N_QUANTILES (sizeof QUANTILES / sizeof QUANTILES[0])

/* A statistic rounded to 6 significant digits (pcommon._r). */
static json_t *r6(double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.6g", v);
    return json_real(strtod(buf, NULL));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.quantile of sorted v (n > 0), linear method. */
static double quantile(const double *v, size_t n, double q)
{
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (pos - (double)lo) * (v[hi] - v[lo]);
}

static json_t *number_column(const double *v, size_t n, double missing)
{
    double edges[BINS - 1];
    size_t ne = 0;
    for (size_t k = 1; k < BINS && n; k++) {
        double e = quantile(v, n, (double)k / BINS);
        if (ne == 0 || e != edges[ne - 1])
            edges[ne++] = e;
    }
    size_t counts[BINS] = {0};
    double sum = 0, sq = 0;
    for (size_t i = 0, b = 0; i < n; i++) { /* v is sorted: the bin only grows */
        while (b < ne && edges[b] <= v[i])
            b++;
        counts[b]++;
        sum += v[i];
    }
    double mean = n ? sum / (double)n : 0;
    for (size_t i = 0; i < n; i++)
        sq += (v[i] - mean) * (v[i] - mean);
    json_t *e = json_array(), *p = json_array(), *q = json_object();
    for (size_t k = 0; k < ne; k++)
        json_array_append_new(e, r6(edges[k]));
    for (size_t k = 0; k <= ne; k++)
        json_array_append_new(p, r6(n ? (double)counts[k] / (double)n : 0));
    for (size_t k = 0; k < N_QUANTILES; k++) {
        char key[16];
        snprintf(key, sizeof key, "%g", QUANTILES[k]);
        json_object_set_new(q, key, r6(n ? quantile(v, n, QUANTILES[k]) : 0));
    }
    return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "kind", "number", "missing",
                     r6(missing), "edges", e, "proportions", p, "quantiles", q, "mean", r6(mean),
                     "std", r6(n ? sqrt(sq / (double)n) : 0), "min", r6(n ? v[0] : 0), "max",
                     r6(n ? v[n - 1] : 0));
}

static json_t *category_column(const double *v, size_t n, size_t nvalues, double missing)
{
    json_t *p = json_array();
    for (size_t k = 0; k < nvalues; k++) {
        size_t c = 0;
        for (size_t i = 0; i < n; i++)
            c += v[i] == (double)k;
        json_array_append_new(p, r6(n ? (double)c / (double)n : 0));
    }
    return json_pack("{s:s, s:o, s:o}", "kind", "category", "missing", r6(missing), "proportions",
                     p);
}

json_t *rt__distribution(const pr_schema *sc, const rt_rows *r)
{
    double *v = malloc((r->n ? r->n : 1) * sizeof *v);
    json_t *feats = json_object();
    for (size_t c = 0; v && feats && c < sc->n; c++) {
        size_t n = 0;
        for (size_t i = 0; i < r->n; i++)
            if (!isnan(r->x[i * r->ncols + c]))
                v[n++] = (double)r->x[i * r->ncols + c];
        double missing = r->n ? (double)(r->n - n) / (double)r->n : 0;
        qsort(v, n, sizeof *v, cmp_double);
        json_t *col = sc->cols[c].kind == PR_CATEGORY
                          ? category_column(v, n, json_array_size(sc->cols[c].values), missing)
                          : number_column(v, n, missing);
        json_object_set_new(feats, sc->cols[c].name, col);
    }
    free(v);
    if (!v) {
        json_decref(feats);
        return NULL;
    }
    return json_pack("{s:s, s:I, s:o}", "rule",
                     "bins: value < edges[0] -> bin 0, edges[k-1] <= value < edges[k] -> bin k, "
                     "value >= edges[-1] -> last bin; categories by value index",
                     "train_rows", (json_int_t)r->n, "features", feats);
}
