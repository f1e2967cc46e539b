/* predict_drift.c - what the prediction log (store/predictions.c) is read for: the paged
 * history of a predict model, the feedback of outcomes, and drift of the logged inputs against
 * the manifest's training distribution (pipelines.h, pl_predict_drift: PSI and KS per column).
 *
 * Invariants:
 *   1. Drift reads the logged request features back through the model's input_schema (the
 *      same row pl_predict built), so a category is binned by its label index and an absent
 *      optional column counts as missing, never as a value.
 *   2. Empty bins on either side are clamped to PL_DRIFT_EPS, so PSI is finite.
 *   3. Only models of family "predict" are read (others MD_E_MODEL_NOT_FOUND), as for
 *      pl_predict.
 *   4. Drift compares what the model is fed for a request with what it was trained on. For
 *      row models that is the request's features; for budget_allocation the allocation's
 *      spends and the week (from week_of_year; missing when not given) plus the requested
 *      total (against the training weeks' total spend, preprocessing.training_distribution
 *      .features.total); for forecast the first forecast day's row (lag ratios, mean7,
 *      calendar, weather), the one made of the caller's history alone. A column without a
 *      training distribution is left out.
 */
#include "pipelines/predict_int.h"

#include "base/clock.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int need_store(pl_ctx *cx, md_err *err)
{
    return cx->st ? MD_OK
                  : md_fail(err, MD_E_UNAVAILABLE, NULL, "the prediction log needs a store");
}

/* The predict model's serving version (for its name check and manifest). */
static int predict_version(pl_ctx *cx, const char *model, mdl_version **v, md_err *err)
{
    *v = NULL;
    if (!cx->models)
        return md_fail(err, MD_E_MODEL_UNAVAILABLE, "model", "no model registry");
    int rc = mdl_acquire(cx->models, model, NULL, v, err);
    if (rc == MD_OK && !pl_predict_task(mdl_version_manifest(*v))) {
        mdl_release(*v);
        *v = NULL;
        rc = md_fail(err, MD_E_MODEL_NOT_FOUND, "model", "%.64s is not a prediction model", model);
    }
    return rc;
}

/* ---- history and feedback ---- */

static json_t *history_item(const store_prediction *p)
{
    json_t *in = json_loads(p->inputs, 0, NULL), *out = json_loads(p->outputs, 0, NULL);
    json_t *act = p->actual ? json_loads(p->actual, JSON_DECODE_ANY, NULL) : NULL;
    return json_pack("{s:s, s:s, s:I, s:o, s:o, s:o}", "prediction_id", p->id, "version",
                     p->version, "time_ms", (json_int_t)p->time_ms, "inputs", in ? in : json_null(),
                     "outputs", out ? out : json_null(), "actual", act ? act : json_null());
}

int pl_predict_history(pl_ctx *cx, const char *model, int64_t from_ms, int64_t to_ms, size_t offset,
                       size_t limit, json_t **out, md_err *err)
{
    *out = NULL;
    mdl_version *v = NULL;
    int rc = need_store(cx, err);
    if (rc == MD_OK && (limit < 1 || limit > 1000))
        rc = md_fail(err, MD_E_INVALID_PARAM, "limit", "limit must be in 1..1000");
    if (rc == MD_OK && to_ms && to_ms <= from_ms)
        rc = md_fail(err, MD_E_INVALID_PARAM, "to", "to must be after from");
    if (rc == MD_OK)
        rc = predict_version(cx, model, &v, err);
    mdl_release(v);
    store_prediction *rows = NULL;
    size_t n = 0;
    if (rc == MD_OK) /* one more than asked: is there a next page? */
        rc = store_predictions_list(cx->st, model, from_ms, to_ms, offset, limit + 1, &rows, &n,
                                    err);
    if (rc != MD_OK)
        return rc;
    json_t *items = json_array();
    for (size_t i = 0; i < n && i < limit; i++)
        json_array_append_new(items, history_item(&rows[i]));
    *out = json_pack("{s:s, s:o, s:I, s:I, s:I, s:o}", "model", model, "items", items, "count",
                     (json_int_t)json_array_size(items), "offset", (json_int_t)offset, "limit",
                     (json_int_t)limit, "next_offset",
                     n > limit ? json_integer((json_int_t)(offset + limit)) : json_null());
    store_predictions_free(rows, n);
    return MD_OK;
}

int pl_predict_feedback(pl_ctx *cx, const char *model, const char *prediction_id,
                        const json_t *actual, md_err *err)
{
    mdl_version *v = NULL;
    int rc = need_store(cx, err);
    if (rc == MD_OK)
        rc = predict_version(cx, model, &v, err);
    mdl_release(v);
    if (rc != MD_OK)
        return rc;
    char *text = json_dumps(actual, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    rc = store_feedback_put(cx->st, model, prediction_id, text, md_clock_wall_ms(md_clock_system()),
                            err);
    free(text);
    return rc;
}

/* ---- drift ---- */

/* PSI of live counts (n live rows) against training proportions, both clamped (invariant 2). */
static double psi(const double *live, size_t bins, size_t n, const json_t *train)
{
    double s = 0.0;
    for (size_t k = 0; k < bins; k++) {
        double pl = n ? live[k] / (double)n : 0.0;
        double pt = json_number_value(json_array_get(train, k));
        pl = pl > PL_DRIFT_EPS ? pl : PL_DRIFT_EPS;
        pt = pt > PL_DRIFT_EPS ? pt : PL_DRIFT_EPS;
        s += (pl - pt) * log(pl / pt);
    }
    return s;
}

/* The training CDF at x: piecewise linear through (min, 0), the quantiles, (max, 1). */
static double train_cdf(const double *qv, const double *qp, size_t nq, double x)
{
    if (x < qv[0])
        return 0.0;
    if (x >= qv[nq - 1])
        return 1.0;
    size_t k = 0;
    while (k + 1 < nq && qv[k + 1] <= x)
        k++;
    double span = qv[k + 1] - qv[k];
    return span > 0 ? qp[k] + (qp[k + 1] - qp[k]) * (x - qv[k]) / span : qp[k + 1];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* KS statistic of the sorted live values x (n) against the training CDF of dist. */
static double ks(const json_t *dist, double *x, size_t n)
{
    const json_t *q = json_object_get(dist, "quantiles");
    double qv[32], qp[32];
    size_t nq = 0;
    qv[nq] = json_number_value(json_object_get(dist, "min"));
    qp[nq++] = 0.0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)q, key, val)
    {
        if (nq >= 31)
            break;
        qv[nq] = json_number_value(val);
        qp[nq++] = strtod(key, NULL);
    }
    qv[nq] = json_number_value(json_object_get(dist, "max"));
    qp[nq++] = 1.0;
    qsort(x, n, sizeof *x, cmp_double);
    double d = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && x[i + 1] == x[i])
            continue; /* the live CDF jumps once per distinct value */
        size_t lo = i;
        while (lo > 0 && x[lo - 1] == x[i])
            lo--;
        double f = train_cdf(qv, qp, nq, x[i]);
        double a = fabs((double)(i + 1) / (double)n - f), b = fabs((double)lo / (double)n - f);
        d = fmax(d, fmax(a, b));
    }
    return d;
}

static const char *level_of(double p)
{
    return p < 0.1 ? "none" : p < 0.25 ? "warn" : "alert";
}

/* One column's drift over rows (n of them, sc->n floats each). */
static json_t *column_drift(const pr_col *c, const json_t *dist, const float *rows, size_t n,
                            size_t ncols, size_t col, double *worst)
{
    const json_t *props = json_object_get(dist, "proportions"),
                 *edges = json_object_get(dist, "edges");
    size_t bins = json_array_size(props), ne = json_array_size(edges), present = 0, missing = 0;
    double *cnt = calloc(bins ? bins : 1, sizeof *cnt), *vals = malloc((n ? n : 1) * sizeof *vals);
    if (!cnt || !vals) {
        free(cnt);
        free(vals);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        double x = (double)rows[i * ncols + col];
        if (isnan(x)) {
            missing++;
            continue;
        }
        size_t b = 0;
        if (c->kind == PR_CATEGORY)
            b = (size_t)x;
        else
            while (b < ne && x >= json_number_value(json_array_get(edges, b)))
                b++;
        if (b < bins)
            cnt[b] += 1.0;
        vals[present++] = x;
    }
    double p = psi(cnt, bins, present, props);
    int numeric = c->kind != PR_CATEGORY && present > 0;
    json_t *o = json_pack("{s:f, s:o, s:f, s:s}", "psi", p, "ks",
                          numeric ? json_real(ks(dist, vals, present)) : json_null(), "missing",
                          n ? (double)missing / (double)n : 0.0, "level", level_of(p));
    *worst = fmax(*worst, p);
    free(cnt);
    free(vals);
    return o;
}

/* What drift compares for one task (invariant 4): the columns (the schema's, plus budget's
 * requested total) and how a logged request becomes a row of them. */
typedef struct drift_view {
    const mdl_manifest *mf;
    const char *task;
    pr_schema sc;
    pr_col *cols; /* sc.cols then the extras; new */
    size_t n;     /* columns in a row */
} drift_view;

static int view_open(const mdl_manifest *mf, const char *task, drift_view *dv, md_err *err)
{
    memset(dv, 0, sizeof *dv);
    dv->mf = mf;
    dv->task = task;
    int rc = pr__schema_load(mf, &dv->sc, err);
    if (rc != MD_OK)
        return rc;
    size_t extra = !strcmp(task, "budget_allocation");
    dv->n = dv->sc.n + extra;
    dv->cols = calloc(dv->n, sizeof *dv->cols);
    if (!dv->cols)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    memcpy(dv->cols, dv->sc.cols, dv->sc.n * sizeof *dv->cols);
    if (extra)
        dv->cols[dv->sc.n] =
            (pr_col){.name = "total", .kind = PR_NUMBER, .min = 0, .max = INFINITY};
    return MD_OK;
}

static void view_close(drift_view *dv)
{
    free(dv->cols);
    pr__schema_free(&dv->sc);
}

/* One logged prediction ({features, options} in, {prediction, ...} out) as a row of dv. */
static int view_row(const drift_view *dv, const json_t *in, const json_t *out, float *row,
                    md_err *err)
{
    const json_t *feats = json_object_get(in, "features");
    if (!strcmp(dv->task, "budget_allocation"))
        return pr__budget_drift_row(dv->mf, feats, json_object_get(out, "prediction"), row,
                                    dv->sc.n, err);
    if (!strcmp(dv->task, "forecast"))
        return pr__forecast_drift_row(dv->mf, feats, row, dv->sc.n, err);
    return pr__schema_row(&dv->sc, feats, row, err);
}

/* The logged rows of the window, read back through the view (invariant 1): *rows new. */
static int window_rows(pl_ctx *cx, const char *model, const drift_view *dv, int64_t from_ms,
                       int64_t to_ms, float **rows, size_t *n, md_err *err)
{
    store_prediction *log = NULL;
    size_t got = 0;
    *rows = NULL;
    *n = 0;
    int rc = store_predictions_list(cx->st, model, from_ms, to_ms, 0, PL_DRIFT_MAX_ROWS, &log, &got,
                                    err);
    if (rc != MD_OK)
        return rc;
    *rows = malloc((got ? got : 1) * dv->n * sizeof **rows);
    if (!*rows) {
        store_predictions_free(log, got);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    for (size_t i = 0; i < got; i++) {
        json_t *in = json_loads(log[i].inputs, 0, NULL), *out = json_loads(log[i].outputs, 0, NULL);
        md_err skip = {0};
        if (view_row(dv, in, out, *rows + *n * dv->n, &skip) == MD_OK)
            (*n)++; /* a row logged under another schema version is left out */
        json_decref(in);
        json_decref(out);
    }
    store_predictions_free(log, got);
    return MD_OK;
}

static int drift_of(pl_ctx *cx, mdl_version *v, const char *task, int64_t from_ms, int64_t to_ms,
                    json_t **out, md_err *err)
{
    const mdl_manifest *mf = mdl_version_manifest(v);
    const json_t *feats = json_object_get(
        json_object_get(json_object_get(mf->doc, "preprocessing"), "training_distribution"),
        "features");
    drift_view dv;
    float *rows = NULL;
    size_t n = 0;
    int rc = view_open(mf, task, &dv, err);
    if (rc == MD_OK && !json_is_object(feats))
        rc = md_fail(err, MD_E_MODEL_INVALID, "preprocessing.training_distribution",
                     "the model has no training distribution");
    if (rc == MD_OK)
        rc = window_rows(cx, mf->name, &dv, from_ms, to_ms, &rows, &n, err);
    json_t *per = json_object();
    double worst = 0.0;
    for (size_t c = 0; rc == MD_OK && n > 0 && c < dv.n; c++) {
        const json_t *d = json_object_get(feats, dv.cols[c].name);
        json_t *o = d ? column_drift(&dv.cols[c], d, rows, n, dv.n, c, &worst) : NULL;
        if (d && !o)
            rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
        if (o)
            json_object_set_new(per, dv.cols[c].name, o);
    }
    if (rc == MD_OK)
        *out = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:O}", "model", mf->name, "version",
                         mf->version, "rows", (json_int_t)n, "from_ms", (json_int_t)from_ms,
                         "to_ms", (json_int_t)to_ms, "status", n == 0 ? "no_data" : level_of(worst),
                         "features", per);
    json_decref(per);
    free(rows);
    view_close(&dv);
    return rc;
}

int pl_predict_drift(pl_ctx *cx, const char *model, int64_t from_ms, int64_t to_ms, json_t **out,
                     md_err *err)
{
    *out = NULL;
    mdl_version *v = NULL;
    int rc = need_store(cx, err);
    if (rc == MD_OK && to_ms && to_ms <= from_ms)
        rc = md_fail(err, MD_E_INVALID_PARAM, "to", "to must be after from");
    if (rc == MD_OK)
        rc = predict_version(cx, model, &v, err);
    if (rc == MD_OK)
        rc = drift_of(cx, v, pl_predict_task(mdl_version_manifest(v)), from_ms, to_ms, out, err);
    mdl_release(v);
    return rc;
}
