/* ml_bench.c - timings for bench/ml.sh: the XGBoost adapter (src/xgb) and our ai.onnx.ml
 * TreeEnsembleClassifier (src/onnx/ops/ml_tree.c) on the same 300-tree model, for one row and
 * for 1000 rows: median wall time and CPU time per call, plus load times. It first checks that
 * both give XGBoost's own probabilities (want.f32) within 1e-5, so the numbers are for correct
 * answers. Usage: ml_bench DIR (from bench/ml_model.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "onnx/onnx.h"
#include "xgb/xgb.h"

#define ROWS 1000
#define FEAT 20
#define CLS 3

static double now(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *read_f32(const char *dir, const char *name, size_t n)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    float *v = malloc(n * sizeof *v);
    if (!f || !v || fread(v, sizeof *v, n, f) != n) {
        fprintf(stderr, "ml_bench: cannot read %s\n", p);
        exit(2);
    }
    fclose(f);
    return v;
}

typedef int (*call_fn)(void *ctx, size_t rows);

/* Median wall ms and mean CPU ms of reps calls of fn(ctx, rows), after a warm-up. */
static void timeit(const char *what, call_fn fn, void *ctx, size_t rows, int reps)
{
    double *w = malloc((size_t)reps * sizeof *w);
    for (int i = 0; i < 20; i++)
        fn(ctx, rows);
    double c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < reps; i++) {
        double t0 = now(CLOCK_MONOTONIC);
        if (fn(ctx, rows) != MD_OK) {
            fprintf(stderr, "ml_bench: %s failed\n", what);
            exit(1);
        }
        w[i] = now(CLOCK_MONOTONIC) - t0;
    }
    double cpu = (now(CLOCK_PROCESS_CPUTIME_ID) - c0) / reps;
    qsort(w, (size_t)reps, sizeof *w, cmp);
    if (rows == 1)
        printf("  %-34s 1 row      %8.1f us wall  %8.1f us cpu\n", what, w[reps / 2] * 1e3,
               cpu * 1e3);
    else
        printf("  %-34s %zu rows  %8.3f ms wall  %8.3f ms cpu\n", what, rows, w[reps / 2], cpu);
    free(w);
}

typedef struct xctx {
    const xgb_model *m;
    const float *x;
    float *out;
} xctx;

static int xgb_call(void *p, size_t rows)
{
    xctx *c = p;
    return xgb_predict(c->m, c->x, rows, FEAT, c->out, ROWS * CLS, NULL);
}

typedef struct octx {
    const onnx_model *m;
    const float *x;
    float *out;
} octx;

static int onnx_call(void *p, size_t rows)
{
    octx *c = p;
    onnx_tensor in = {
        .dtype = ONNX_FLOAT, .rank = 2, .dims = {(int64_t)rows, FEAT}, .data = (void *)c->x};
    onnx_result *r = NULL;
    int rc = onnx_run(c->m, &in, 1, NULL, &r, NULL);
    if (rc == MD_OK)
        memcpy(c->out, onnx_result_output(r, 1)->data, rows * CLS * sizeof(float));
    onnx_result_free(r);
    return rc;
}

static void check(const char *what, const float *got, const float *want)
{
    for (size_t i = 0; i < ROWS * CLS; i++)
        if (got[i] - want[i] > 1e-5f || want[i] - got[i] > 1e-5f) {
            fprintf(stderr, "ml_bench: %s differs from XGBoost at %zu: %g vs %g\n", what, i, got[i],
                    want[i]);
            exit(1);
        }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ml_bench DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    float *x = read_f32(dir, "x.f32", ROWS * FEAT), *want = read_f32(dir, "want.f32", ROWS * CLS);
    float *out = calloc(ROWS * CLS, sizeof *out);
    char p[4096];
    md_err err = {0};
    xgb_model *xm = NULL;
    for (int f = 0; f < 2; f++) {
        snprintf(p, sizeof p, "%s/model.%s", dir, f ? "ubj" : "json");
        double t0 = now(CLOCK_MONOTONIC);
        xgb_model_free(xm);
        if (xgb_model_load(p, NULL, &xm, &err) != MD_OK) {
            fprintf(stderr, "ml_bench: %s\n", md_err_message(&err));
            return 1;
        }
        printf("  xgb_model_load (%s)               %8.2f ms\n", f ? "ubj " : "json",
               now(CLOCK_MONOTONIC) - t0);
    }
    snprintf(p, sizeof p, "%s/model.onnx", dir);
    double t0 = now(CLOCK_MONOTONIC);
    onnx_model *om = NULL;
    if (onnx_model_load_file(p, NULL, &om, &err) != MD_OK) {
        fprintf(stderr, "ml_bench: %s\n", md_err_message(&err));
        return 1;
    }
    printf("  onnx_model_load_file (TreeEnsemble) %8.2f ms\n", now(CLOCK_MONOTONIC) - t0);
    xctx xc = {xm, x, out};
    octx oc = {om, x, out};
    if (xgb_call(&xc, ROWS) != MD_OK)
        return 1;
    check("xgb_predict", out, want);
    if (onnx_call(&oc, ROWS) != MD_OK)
        return 1;
    check("TreeEnsembleClassifier", out, want);
    timeit("xgb_predict (libxgboost, 1 thread)", xgb_call, &xc, 1, 5000);
    timeit("onnx_run TreeEnsembleClassifier", onnx_call, &oc, 1, 5000);
    timeit("xgb_predict (libxgboost, 1 thread)", xgb_call, &xc, ROWS, 100);
    timeit("onnx_run TreeEnsembleClassifier", onnx_call, &oc, ROWS, 100);
    xgb_model_free(xm);
    onnx_model_free(om);
    free(x);
    free(want);
    free(out);
    return 0;
}
