/* xgb_native_bench.c - timings for bench/xgb_native.sh: every shipped XGBoost model through
 * xgb_predict (our tree walk, src/xgb/forest.c) and xgb_predict_reference (libxgboost), one
 * thread, for 1 row and for 1000 rows: the median CPU time (of this thread) per call and the
 * ratio; the same
 * for the TreeSHAP contributions (xgb_contributions, src/xgb/treeshap.c, against
 * xgb_contributions_reference, libxgboost's pred_contribs, also compared, 1e-5). Rows are
 * the manifest's validation rows repeated; both engines are first compared on them (1e-5).
 * Usage: xgb_native_bench MODELS_DIR NAME... */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xgb/xgb.h"

#define BATCH 1000

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); /* CPU time: the machine may be shared */
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef int (*predict_fn)(const xgb_model *, const float *, size_t, size_t, float *, size_t,
                          md_err *);

/* Median microseconds of reps calls on rows rows (per_row floats out each), after a warm-up. */
static double median_us(predict_fn fn, const xgb_model *m, const float *x, size_t rows, float *out,
                        size_t per_row, int reps)
{
    const xgb_info *in = xgb_model_info(m);
    double *w = malloc((size_t)reps * sizeof *w);
    md_err err = {0};
    for (int i = -20; i < reps; i++) {
        double t0 = now_us();
        if (fn(m, x, rows, in->num_features, out, rows * per_row, &err) != MD_OK) {
            fprintf(stderr, "xgb_native_bench: %s\n", md_err_message(&err));
            exit(1);
        }
        if (i >= 0)
            w[i] = now_us() - t0;
    }
    qsort(w, (size_t)reps, sizeof *w, cmp);
    double med = w[reps / 2];
    free(w);
    return med;
}

/* BATCH rows: the manifest's validation rows, repeated. */
static float *rows_of(const char *dir, const char *name, size_t nf)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s/1/modeld.json", dir, name);
    json_error_t je;
    json_t *mf = json_load_file(p, 0, &je);
    const json_t *samples = json_object_get(json_object_get(mf, "validation"), "samples");
    float *x = malloc(BATCH * nf * sizeof *x), *seed = malloc(64 * nf * sizeof *seed);
    size_t n = 0, i, r;
    const json_t *s, *row;
    json_array_foreach(samples, i, s)
    {
        json_array_foreach(json_object_get(json_object_get(s, "inputs"), "features"), r, row)
        {
            for (size_t j = 0; j < nf && n < 64; j++)
                seed[n * nf + j] = (float)json_number_value(json_array_get(row, j));
            n += n < 64;
        }
    }
    if (!mf || n == 0) {
        fprintf(stderr, "xgb_native_bench: no validation rows in %s\n", p);
        exit(2);
    }
    for (size_t k = 0; k < BATCH; k++)
        memcpy(x + k * nf, seed + (k % n) * nf, nf * sizeof *x);
    free(seed);
    json_decref(mf);
    return x;
}

static void bench(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s/1/model.json", dir, name);
    xgb_model *m = NULL;
    md_err err = {0};
    if (xgb_model_load(p, NULL, &m, &err) != MD_OK) {
        fprintf(stderr, "xgb_native_bench: %s: %s\n", p, md_err_message(&err));
        exit(1);
    }
    const xgb_info *in = xgb_model_info(m);
    float *x = rows_of(dir, name, in->num_features);
    float *a = malloc(BATCH * in->num_outputs * sizeof *a);
    float *b = malloc(BATCH * in->num_outputs * sizeof *b);
    xgb_predict(m, x, BATCH, in->num_features, a, BATCH * in->num_outputs, &err);
    xgb_predict_reference(m, x, BATCH, in->num_features, b, BATCH * in->num_outputs, &err);
    for (size_t i = 0; i < BATCH * in->num_outputs; i++)
        if (fabs((double)a[i] - b[i]) > 1e-5 * fmax(1.0, fabs((double)b[i]))) {
            fprintf(stderr, "xgb_native_bench: %s: output %zu differs\n", name, i);
            exit(1);
        }
    size_t no = in->num_outputs;
    double n1 = median_us(xgb_predict, m, x, 1, a, no, 2000);
    double l1 = median_us(xgb_predict_reference, m, x, 1, b, no, 2000);
    double nb = median_us(xgb_predict, m, x, BATCH, a, no, 50);
    double lb = median_us(xgb_predict_reference, m, x, BATCH, b, no, 50);
    printf("%-18s %5d trees %-7s  1 row: %8.2f us vs %8.2f us (%5.1fx)   %d rows: %9.1f us vs "
           "%9.1f us (%5.1fx)\n",
           name, in->boosted_rounds * (int)(in->num_class > 1 ? in->num_class : 1),
           xgb_model_engine(m), n1, l1, l1 / n1, BATCH, nb, lb, lb / nb);
    /* TreeSHAP (xgb_contributions): ours against libxgboost's pred_contribs */
    size_t nc = (in->num_class > 1 ? in->num_class : 1) * (in->num_features + 1);
    float *ca = malloc(BATCH * nc * sizeof *ca), *cb = malloc(BATCH * nc * sizeof *cb);
    n1 = median_us(xgb_contributions, m, x, 1, ca, nc, 200);
    l1 = median_us(xgb_contributions_reference, m, x, 1, cb, nc, 200);
    nb = median_us(xgb_contributions, m, x, BATCH, ca, nc, 5);
    lb = median_us(xgb_contributions_reference, m, x, BATCH, cb, nc, 5);
    for (size_t i = 0; i < BATCH * nc; i++)
        if (fabs((double)ca[i] - cb[i]) > 1e-5 * fmax(1.0, fabs((double)cb[i]))) {
            fprintf(stderr, "xgb_native_bench: %s: contribution %zu differs\n", name, i);
            exit(1);
        }
    printf("%-18s   TreeSHAP  %-7s  1 row: %8.2f us vs %8.2f us (%5.1fx)   %d rows: %9.1f us vs "
           "%9.1f us (%5.1fx)\n",
           name, xgb_model_shap_engine(m), n1, l1, l1 / n1, BATCH, nb, lb, lb / nb);
    free(ca);
    free(cb);
    free(x);
    free(a);
    free(b);
    xgb_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: xgb_native_bench MODELS_DIR NAME...\n");
        return 2;
    }
    printf("model                    engine   ours vs libxgboost (median per call, one thread)\n");
    for (int i = 2; i < argc; i++)
        bench(argv[1], argv[i]);
    return 0;
}
