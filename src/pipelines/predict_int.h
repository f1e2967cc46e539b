/* predict_int.h - what predict.c (requests, schema, batch) and predict_tasks.c (the per-task
 * postprocessing of training/predict/README.md) share. Private to src/pipelines. */
#ifndef MD_PIPELINES_PREDICT_INT_H
#define MD_PIPELINES_PREDICT_INT_H

#include "models/models.h"
#include "pipelines/pipelines.h"

#include <sys/types.h>

typedef enum pr_kind { PR_NUMBER, PR_INTEGER, PR_CATEGORY } pr_kind;

typedef struct pr_col {
    const char *name; /* borrowed from the manifest */
    pr_kind kind;
    int required;
    double min, max;      /* inclusive; +-INFINITY when absent */
    const json_t *values; /* category labels (borrowed), NULL otherwise */
} pr_col;

typedef struct pr_schema {
    pr_col *cols; /* new (pr__schema_free); index i = the row's float i */
    size_t n;
} pr_schema;

/* input_schema.columns of mf (borrowed names: mf must outlive sc). MD_E_MODEL_INVALID. */
int pr__schema_load(const mdl_manifest *mf, pr_schema *sc, md_err *err);
void pr__schema_free(pr_schema *sc);
/* Column index of name, -1 when none. */
ssize_t pr__schema_find(const pr_schema *sc, const char *name);
/* features (an object) into row (sc->n floats; NaN for absent optional columns). Errors name
 * the column: MD_E_MISSING_FIELD, MD_E_INVALID_PARAM (type, range, label, unknown field). */
int pr__schema_row(const pr_schema *sc, const json_t *features, float *row, md_err *err);

/* One column's value as the request gave it: a JSON value (pr__schema_row) or a CSV cell
 * (predict_table.c), so that both follow one set of rules and messages. */
typedef struct pr_cell {
    enum { PR_CELL_ABSENT, PR_CELL_NUMBER, PR_CELL_STRING, PR_CELL_OTHER } kind;
    double d;      /* PR_CELL_NUMBER */
    const char *s; /* PR_CELL_STRING (NUL-terminated, borrowed) */
} pr_cell;
/* The cell of column c into *out (NaN for an absent optional one); errors as pr__schema_row. */
int pr__cell_value(const pr_col *c, const pr_cell *v, float *out, md_err *err);

/* A number of the manifest at obj[key]; MD_E_MODEL_INVALID naming key when absent. */
int pr__mf_num(const json_t *obj, const char *key, double *out, md_err *err);
/* An optional finite caller number at obj[key] (obj may be NULL); *set 0 when absent or null;
 * MD_E_INVALID_PARAM naming key when not a number. */
int pr__opt_num(const json_t *obj, const char *key, double *out, int *set, md_err *err);
/* Only the NULL-terminated keys may appear in obj; else MD_E_INVALID_PARAM naming the other. */
int pr__known_keys(const json_t *obj, const char *what, const char *const *keys, md_err *err);

/* mdl_acquire of a predict model: *v a new reference, *task its postprocessing task (borrowed
 * from *v); MD_E_MODEL_NOT_FOUND for a model of another family. */
int pr__acquire(pl_ctx *cx, const char *model, mdl_version **v, const char **task, md_err *err);
/* 1 for the tasks whose request is one model row (classification, regression, price_response,
 * anomaly), 0 for the others (budget_allocation, forecast). */
int pr__is_tabular(const char *task);
/* The good rows (errs[i].code == MD_OK) of n checked rows (sc->n floats each, borrowed): run
 * in one call, postprocessed into preds[i] (new), explained into expls[i] (new) unless
 * cx->no_explain; the others get NULL. A row's own postprocessing fault goes to errs[i]. */
int pr__run_good(pl_ctx *cx, mdl_version *v, const char *task, const pr_schema *sc,
                 const float *rows, size_t n, const json_t *options, json_t **preds,
                 json_t **expls, md_err *errs, md_err *err);
/* Log n answers ({prediction, explanation}, each gets its prediction_id) of feats[i] (borrowed),
 * every one of them: the caller did the sampling. */
void pr__log_rows(pl_ctx *cx, mdl_version *v, const json_t *const *feats, json_t *const *answers,
                  size_t n);

/* Run n rows through v; *out new (free()), n * *width floats. */
int pr__run_rows(pl_ctx *cx, mdl_version *v, const float *rows, size_t n, size_t ncols, float **out,
                 size_t *width, md_err *err);

/* price_response options {min_price, max_price, steps, unit_cost, quantity} (NULL = none):
 * types and the checks that do not need the model's value. */
int pr__price_check(const mdl_manifest *mf, const json_t *options, md_err *err);
/* One row's prediction from its raw output (w floats) per task. *pred new; *group the output
 * group its explanation is about (the flagged pattern's class; else 0). */
int pr__post_row(const mdl_manifest *mf, const char *task, const pr_schema *sc, const float *row,
                 const float *raw, size_t w, const json_t *options, json_t **pred, size_t *group,
                 md_err *err);
/* Explanations of n good rows (row g is result map[g], group grp[g]) into expls[map[g]] (new),
 * per postprocessing.explanation.method; nothing for other methods. */
int pr__explain(mdl_version *v, const pr_schema *sc, const float *rows, size_t n, const size_t *map,
                const size_t *grp, json_t **expls, md_err *err);

/* budget_allocation and forecast requests (pipelines.h). *pred new. */
int pr__budget(pl_ctx *cx, mdl_version *v, const json_t *req, json_t **pred, md_err *err);
int pr__forecast(pl_ctx *cx, mdl_version *v, const json_t *req, json_t **pred, md_err *err);

/* Drift rows (predict_drift.c) of the tasks whose request is not one model row: what the
 * model is fed for the request, in the input_schema's nschema columns, from the logged request
 * (req) and answer (pred, the logged "prediction"). Budget: the allocation's spends, week_sin and
 * week_cos from week_of_year (NaN, i.e. missing, when the caller gave none), then the requested
 * total at row[nschema] (one extra column). Forecast: the first forecast day's row, the only
 * one made of the caller's data alone (later days' lags include forecasts). Errors as the
 * requests' own (a row logged under another manifest is skipped by the caller). */
int pr__budget_drift_row(const mdl_manifest *mf, const json_t *req, const json_t *pred, float *row,
                         size_t nschema, md_err *err);
int pr__forecast_drift_row(const mdl_manifest *mf, const json_t *req, float *row, size_t nschema,
                           md_err *err);

/* The budget optimiser itself (marginal-return greedy), exposed for the brute-force test:
 * n channels with curves a[c] (1 - exp(-b[c] x)), bounds lo[c] <= x[c] <= hi[c], spending
 * total in increments (total - sum lo) / steps; x gets the spends. */
void pr__greedy(size_t n, const double *a, const double *b, const double *lo, const double *hi,
                double total, int steps, double *x);

#endif
