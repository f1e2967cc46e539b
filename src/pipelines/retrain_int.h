/* retrain_int.h - what retrain.c (the job: spec, parameters, training, evaluation, install) and
 * retrain_data.c (rows from datasets, test splits and feedback) share. Private to
 * src/pipelines. */
#ifndef MD_PIPELINES_RETRAIN_INT_H
#define MD_PIPELINES_RETRAIN_INT_H

#include "pipelines/predict_int.h"

#include <stddef.h>
#include <stdint.h>

/* The manifest's "training" section of a retrainable model (strings borrowed from it). */
typedef struct rt_spec {
    const char *objective;
    const json_t *params; /* object of parameters (numbers or strings) */
    int rounds;
    const char *label;          /* the label column */
    const json_t *label_values; /* class labels in index order, or NULL (a number) */
    int log_label;              /* transform "log": the label is ln(value), value > 0 */
    const char *metric;         /* "roc_auc" | "roc_auc_leak" | "mae" */
    const char *test_split;     /* file beside the artefact */
    size_t min_feedback;
} rt_spec;

/* Rows of floats (the schema's columns in index order) and their labels. */
typedef struct rt_rows {
    float *x; /* new: n * ncols */
    float *y; /* new: n */
    size_t n, cap, ncols;
    size_t skipped; /* feedback rows left out (no usable label or features) */
} rt_rows;

void rt__rows_free(rt_rows *r);

/* The label of a value as the model learns it (class index, number, or ln of it).
 * MD_E_INVALID_PARAM naming sp->label otherwise. */
int rt__label(const rt_spec *sp, const json_t *v, float *out, md_err *err);

/* The whole file at path (at most max_bytes: MD_E_TOO_LARGE naming field beyond; a file that
 * cannot be opened: MD_E_NOT_FOUND or MD_E_IO naming field). *out new (free()), NUL not added. */
int rt__slurp(const char *path, size_t max_bytes, const char *field, char **out, size_t *len,
              md_err *err);

/* Every row of the CSV or JSON-lines file at path (format "csv" | "jsonl"; at most max_rows,
 * MD_E_TOO_LARGE naming field beyond) into r (r->ncols = sc->n). A row that is not valid for the
 * schema or has no valid label fails with MD_E_INVALID_PARAM naming `field`, the line and the
 * column. max_bytes bounds the file. */
int rt__read_file(const char *path, const char *format, size_t max_bytes, const pr_schema *sc,
                  const rt_spec *sp, size_t max_rows, const char *field, rt_rows *r, md_err *err);

/* The logged predictions of model with feedback (pages of store_feedback_list) into r; rows
 * whose features or actual do not fit are skipped (counted in r->skipped). */
int rt__read_feedback(store *st, const char *model, const pr_schema *sc, const rt_spec *sp,
                      size_t max_rows, rt_rows *r, md_err *err);

/* The training distribution of r's rows (retrain_dist.c): what
 * preprocessing.training_distribution holds for drift. New reference; NULL when out of memory. */
json_t *rt__distribution(const pr_schema *sc, const rt_rows *r);

/* ---- retrain_calib.c: leakage, the validation split, calibration ---- */

#define RT_VAL_SHARE 0.2    /* of the training rows, held back to calibrate */
#define RT_VAL_MIN_ROWS 20  /* fewer training rows: no validation split (the parent's kept) */

/* Drop from r every row identical to a row of test (encoded features and label; invariant 1);
 * *dropped: how many. */
int rt__drop_overlap(rt_rows *r, const rt_rows *test, size_t *dropped, md_err *err);
/* Move a seeded RT_VAL_SHARE of r's rows into val (new, rt__rows_free), keeping both in order;
 * val stays empty when r has fewer than RT_VAL_MIN_ROWS rows. */
int rt__split_validation(rt_rows *r, uint64_t seed, rt_rows *val, md_err *err);
/* The F1-optimal threshold of scores s against 0/1 truths t on the grid 0.10..0.90 (churn.py's
 * best_threshold); NAN when one class is absent. *f1_out (may be NULL): its F1. */
double rt__best_threshold(const float *s, const int *t, size_t n, double *f1_out);
/* F1 of predicting s >= thr. */
double rt__f1_at(const float *s, const int *t, size_t n, double thr);
void rt__sort(double *v, size_t n);
/* The q-quantile of n sorted values, linear between order statistics (numpy's default). */
double rt__quantile(const double *sorted, size_t n, double q);
/* Maximum-likelihood location and scale of a logistic distribution of the n values r
 * (scipy.stats.logistic.fit's estimate). MD_E_INVALID_PARAM for fewer than 2 values or no
 * spread. */
int rt__logistic_fit(const double *r, size_t n, double *mu, double *s);

/* Whether a header (JSON array of names) has every required schema column and the label:
 * MD_E_UNSUPPORTED naming the first missing one. */
int rt__check_header(const json_t *names, const pr_schema *sc, const rt_spec *sp, md_err *err);

#endif
