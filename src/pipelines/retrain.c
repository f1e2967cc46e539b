/* retrain.c - pl_retrain_check / pl_retrain (pipelines.h): a new version of a predict model,
 * trained in process on a stored dataset or on feedback, judged against the active version on
 * the held test split, and installed as a CANARY (better) or a STANDBY (not better).
 *
 *   spec (manifest "training") ─▶ rows (retrain_data.c) ─▶ test rows dropped, validation split
 *     held back (retrain_calib.c) ─▶ xgb_train ─▶ threshold / intervals calibrated on the
 *     validation split ─▶ evaluate new + active on the test split ─▶ manifest of the new
 *     version ─▶ mdl_install_as(CANARY | STANDBY)
 *
 * Invariants:
 *   1. A retrained version is never activated here: the better one serves canary_percent of
 *      the requests until an operator promotes it (or the canary rules end it), the other one
 *      serves nothing. Both are judged on the same rows (the active version's test split).
 *   2. Everything about how to train comes from the manifest (objective, parameters, rounds,
 *      label, metric); the caller may override a listed set of hyper-parameters only, so a
 *      request cannot change the objective, the number of classes or the thread count.
 *   3. The new version's directory is written whole or not at all (mdl_install_as: a temporary
 *      directory renamed into place); its manifest validates against its own booster (the
 *      validation outputs are recomputed by it), so the registry's load check passes.
 *   4. The version references taken here are released on every path.
 *   5. Leakage: training rows identical to rows of the held test split are dropped (counted in
 *      the result's test_overlap_rows and the manifest's training section), not refused: real
 *      data holds natural duplicates (2 of churn's 1,409 validation rows equal test rows), and
 *      feedback is whatever clients sent. What is left must still be enough to train on
 *      (datasets: one row; feedback: min_feedback_rows), else the job fails naming `data`.
 *   6. What version 1's script calibrated on its validation split is calibrated again on this
 *      retrain's (a seeded 20 % of the rows, never trained on) and written to the new manifest,
 *      where serving reads it: the F1-optimal threshold (classifiers with a threshold: churn,
 *      revenue-leak's leak probability), the residual quantiles of the interval (profitability),
 *      the willingness-to-pay fit (pricing). With too few rows for a validation split
 *      (RT_VAL_MIN_ROWS) or one class only, the parent's values are kept and the result says so.
 *   7. The version number is the next free one when the install happens: a concurrent retrain
 *      of the same model that took it first (MD_E_CONFLICT) makes this one take the next.
 */
#include "pipelines/retrain_int.h"
#include "pipelines/pipelines_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "xgb/xgb.h"

#include <limits.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_CANARY 10.0
#define TEST_MAX_BYTES ((size_t)64 << 20)
#define DATA_MAX_BYTES ((size_t)100 << 20)

/* ---- the manifest's training section ------------------------------------------------------ */

static int spec_bad(md_err *err, const char *key)
{
    return md_fail(err, MD_E_MODEL_INVALID, "training",
                   "the manifest's training.%s is missing or "
                   "malformed",
                   key);
}

static int spec_load(const mdl_manifest *mf, rt_spec *sp, md_err *err)
{
    memset(sp, 0, sizeof *sp);
    const json_t *t = json_object_get(mf->doc, "training");
    if (mf->family != MDL_PREDICT || !json_is_object(t))
        return md_fail(err, MD_E_UNSUPPORTED, "model",
                       "%s cannot be retrained: its manifest "
                       "has no training section",
                       mf->name);
    if (!json_is_true(json_object_get(t, "retrainable")))
        return md_fail(err, MD_E_UNSUPPORTED, "model", "%s cannot be retrained: %.200s", mf->name,
                       json_string_value(json_object_get(t, "reason")) ?: "not retrainable");
    const json_t *label = json_object_get(t, "label");
    const json_t *rounds = json_object_get(t, "rounds");
    sp->objective = json_string_value(json_object_get(t, "objective"));
    sp->params = json_object_get(t, "params");
    sp->label = json_string_value(json_object_get(label, "column"));
    sp->label_values = json_object_get(label, "values");
    const char *tr = json_string_value(json_object_get(label, "transform"));
    sp->log_label = tr && strcmp(tr, "log") == 0;
    sp->metric = json_string_value(json_object_get(t, "metric"));
    sp->test_split = json_string_value(json_object_get(t, "test_split"));
    json_t *mfb = json_object_get(t, "min_feedback_rows");
    sp->min_feedback = json_is_integer(mfb) && json_integer_value(mfb) > 0
                           ? (size_t)json_integer_value(mfb)
                           : PL_RETRAIN_MIN_FEEDBACK;
    if (!sp->objective || !json_is_object(sp->params))
        return spec_bad(err, "objective / params");
    if (!json_is_integer(rounds) || json_integer_value(rounds) < 1 ||
        json_integer_value(rounds) > XGB_TRAIN_MAX_ROUNDS)
        return spec_bad(err, "rounds");
    sp->rounds = (int)json_integer_value(rounds);
    if (!sp->label || (sp->label_values && !json_is_array(sp->label_values)) ||
        (tr && !sp->log_label))
        return spec_bad(err, "label");
    if (!sp->metric || (strcmp(sp->metric, "roc_auc") && strcmp(sp->metric, "roc_auc_leak") &&
                        strcmp(sp->metric, "mae")))
        return spec_bad(err, "metric");
    if (!sp->test_split || strchr(sp->test_split, '/') || sp->test_split[0] == '.')
        return spec_bad(err, "test_split");
    return MD_OK;
}

/* ---- parameters ---------------------------------------------------------------------------- */

#define MAX_PARAMS XGB_TRAIN_MAX_PARAMS

typedef struct rt_params {
    xgb_train_param p[MAX_PARAMS];
    char key[MAX_PARAMS][48];
    char val[MAX_PARAMS][48];
    size_t n;
    int rounds;
} rt_params;

/* The overrides a caller may give, with their ranges (invariant 2). */
typedef struct override_rule {
    const char *key;
    double lo, hi;
    int integer;
} override_rule;

static const override_rule OVERRIDES[] = {
    {"rounds", 1, XGB_TRAIN_MAX_ROUNDS, 1},
    {"eta", 1e-6, 1, 0},
    {"max_depth", 1, 16, 1},
    {"subsample", 1e-6, 1, 0},
    {"colsample_bytree", 1e-6, 1, 0},
    {"min_child_weight", 0, 1e6, 0},
    {"lambda", 0, 1e6, 0},
    {"alpha", 0, 1e6, 0},
    {"gamma", 0, 1e6, 0},
    {"seed", 0, 2147483647, 1},
};
#define N_OVERRIDES (sizeof OVERRIDES / sizeof OVERRIDES[0])

static int check_overrides(const json_t *o, md_err *err)
{
    if (!o || json_is_null(o))
        return MD_OK;
    if (!json_is_object(o))
        return md_fail(err, MD_E_INVALID_PARAM, "params", "must be an object");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        size_t i = 0;
        while (i < N_OVERRIDES && strcmp(OVERRIDES[i].key, k) != 0)
            i++;
        char field[64];
        snprintf(field, sizeof field, "params.%.48s", k);
        if (i == N_OVERRIDES)
            return md_fail(err, MD_E_INVALID_PARAM, field, "not a parameter retraining may set");
        double d = json_number_value(v);
        if (!json_is_number(v) || !(d >= OVERRIDES[i].lo && d <= OVERRIDES[i].hi) ||
            (OVERRIDES[i].integer && d != floor(d)))
            return md_fail(err, MD_E_INVALID_PARAM, field, "must be %s in %g..%g",
                           OVERRIDES[i].integer ? "an integer" : "a number", OVERRIDES[i].lo,
                           OVERRIDES[i].hi);
    }
    return MD_OK;
}

static int put_param(rt_params *rp, const char *key, const json_t *v, md_err *err)
{
    size_t i = 0;
    while (i < rp->n && strcmp(rp->key[i], key) != 0)
        i++;
    if (i == MAX_PARAMS)
        return md_fail(err, MD_E_MODEL_INVALID, "training", "too many training parameters");
    if (i == rp->n)
        rp->n++;
    snprintf(rp->key[i], sizeof rp->key[i], "%s", key);
    if (json_is_integer(v))
        snprintf(rp->val[i], sizeof rp->val[i], "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(rp->val[i], sizeof rp->val[i], "%.17g", json_real_value(v));
    else if (json_is_string(v))
        snprintf(rp->val[i], sizeof rp->val[i], "%s", json_string_value(v));
    else
        return md_fail(err, MD_E_MODEL_INVALID, "training", "parameter %.40s is not a scalar", key);
    rp->p[i] = (xgb_train_param){rp->key[i], rp->val[i]};
    return MD_OK;
}

/* objective, the manifest's parameters, then the caller's overrides (rounds apart). */
static int build_params(const rt_spec *sp, const json_t *over, rt_params *rp, md_err *err)
{
    memset(rp, 0, sizeof *rp);
    rp->rounds = sp->rounds;
    json_t *obj = json_string(sp->objective);
    int rc = put_param(rp, "objective", obj, err);
    json_decref(obj);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)sp->params, k, v)
    {
        if (rc == MD_OK && strcmp(k, "nthread") != 0)
            rc = put_param(rp, k, v, err);
    }
    json_object_foreach((json_t *)over, k, v)
    {
        if (rc == MD_OK && strcmp(k, "rounds") == 0)
            rp->rounds = (int)json_integer_value(v) ?: (int)json_number_value(v);
        else if (rc == MD_OK)
            rc = put_param(rp, k, v, err);
    }
    return rc;
}

/* ---- the active version and the check ----------------------------------------------------- */

/* The ACTIVE version of model (not a canary: the comparison is with what serves); a model
 * nothing published yet (a registry that loads on demand) is loaded by mdl_acquire, which then
 * has no canary to pick. *v new. */
static int acquire_active(pl_ctx *cx, const char *model, mdl_version **v, md_err *err)
{
    *v = NULL;
    if (!cx->models)
        return md_fail(err, MD_E_MODEL_UNAVAILABLE, "model", "no model registry");
    json_t *d = NULL;
    int rc = mdl_describe(cx->models, model, NULL, &d, err);
    const char *active =
        rc == MD_OK ? json_string_value(json_object_get(d, "active_version")) : NULL;
    const char *state = rc == MD_OK ? json_string_value(json_object_get(d, "state")) : NULL;
    if (rc == MD_OK && (!active || !*active || (state && strcmp(state, "UNLOADED") == 0)))
        active = NULL;
    if (rc == MD_OK)
        rc = mdl_acquire(cx->models, model, active, v, err);
    json_decref(d);
    return rc;
}

static int check_data(pl_ctx *cx, const pl_retrain_in *in, const pr_schema *sc, const rt_spec *sp,
                      md_err *err)
{
    if (!in->data || !*in->data)
        return md_fail(err, MD_E_MISSING_FIELD, "data", "a dataset id or \"feedback\" is needed");
    if (strcmp(in->data, PL_RETRAIN_FEEDBACK) == 0) {
        int64_t n = 0;
        int rc = store_feedback_count(cx->st, in->model, &n, err);
        if (rc == MD_OK && n < (int64_t)sp->min_feedback)
            rc = md_fail(err, MD_E_UNSUPPORTED, "data",
                         "%lld predictions of %.64s have feedback, "
                         "at least %zu are needed",
                         (long long)n, in->model, sp->min_feedback);
        return rc;
    }
    store_dataset *d = malloc(sizeof *d);
    if (!d)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = store_datasets_get(cx->st, in->data, d, err);
    if (rc == MD_E_NOT_FOUND)
        rc = md_fail(err, MD_E_NOT_FOUND, "data", "no dataset %.40s", in->data);
    json_t *cols = rc == MD_OK ? json_loads(d->columns, 0, NULL) : NULL;
    if (rc == MD_OK)
        rc = rt__check_header(cols, sc, sp, err);
    json_decref(cols);
    free(d);
    return rc;
}

/* The active version, its spec and schema, checked with the request (pl_retrain_check). */
static int prepare(pl_ctx *cx, const pl_retrain_in *in, mdl_version **v, rt_spec *sp, pr_schema *sc,
                   md_err *err)
{
    if (!cx->st)
        return md_fail(err, MD_E_UNAVAILABLE, "data", "retraining needs the store");
    if (!in->model || !*in->model)
        return md_fail(err, MD_E_MISSING_FIELD, "model", "the model to retrain is needed");
    if (in->canary_percent < 0 || in->canary_percent > 100 || in->nthread < 0 || in->nthread > 2)
        return md_fail(err, MD_E_INVALID_PARAM,
                       in->nthread < 0 || in->nthread > 2 ? "nthread" : "canary_percent",
                       "out of range");
    int rc = acquire_active(cx, in->model, v, err);
    if (rc == MD_OK)
        rc = spec_load(mdl_version_manifest(*v), sp, err);
    if (rc == MD_OK)
        rc = pr__schema_load(mdl_version_manifest(*v), sc, err);
    if (rc == MD_OK)
        rc = check_overrides(in->params, err);
    if (rc == MD_OK)
        rc = check_data(cx, in, sc, sp, err);
    return rc;
}

int pl_retrain_check(pl_ctx *cx, const pl_retrain_in *in, md_err *err)
{
    mdl_version *v = NULL;
    rt_spec sp;
    pr_schema sc = {0};
    int rc = prepare(cx, in, &v, &sp, &sc, err);
    pr__schema_free(&sc);
    mdl_release(v);
    return rc;
}

/* ---- the metric --------------------------------------------------------------------------- */

static int cmp_score(const void *a, const void *b)
{
    const double *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

/* Area under the ROC curve of scores s against 0/1 truths t (ties share their rank). NAN when
 * one class is absent. */
static double auc(const double *s, const int *t, size_t n)
{
    double *p = malloc(n * 2 * sizeof *p);
    if (!p)
        return NAN;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        p[2 * i] = s[i];
        p[2 * i + 1] = t[i];
        pos += t[i] != 0;
    }
    qsort(p, n, 2 * sizeof *p, cmp_score);
    double rank_sum = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        double pos_here = 0;
        while (j < n && p[2 * j] == p[2 * i])
            pos_here += p[2 * j++ + 1];
        rank_sum += pos_here * (double)(i + j + 1) / 2.0; /* mean rank of the tie, 1-based */
        i = j;
    }
    free(p);
    size_t neg = n - pos;
    if (pos == 0 || neg == 0)
        return NAN;
    return (rank_sum - (double)pos * (double)(pos + 1) / 2.0) / ((double)pos * (double)neg);
}

/* The spec's metric of outputs out (w floats per row) against the labels. */
static double metric(const rt_spec *sp, const float *out, size_t w, const rt_rows *t)
{
    if (strcmp(sp->metric, "mae") == 0) {
        double sum = 0;
        for (size_t i = 0; i < t->n; i++)
            sum += fabs((double)out[i * w] - (double)t->y[i]);
        return t->n ? sum / (double)t->n : NAN;
    }
    double *s = malloc((t->n ? t->n : 1) * sizeof *s);
    int *y = malloc((t->n ? t->n : 1) * sizeof *y);
    double a = NAN;
    if (s && y) {
        int leak = strcmp(sp->metric, "roc_auc_leak") == 0;
        for (size_t i = 0; i < t->n; i++) {
            s[i] = leak ? 1.0 - (double)out[i * w] : (double)out[i * w + (w > 1)];
            y[i] = t->y[i] != 0.0f;
        }
        a = auc(s, y, t->n);
    }
    free(s);
    free(y);
    return a;
}

static int better(const rt_spec *sp, double new_v, double old_v)
{
    if (isnan(new_v))
        return 0;
    if (isnan(old_v))
        return 1;
    return strcmp(sp->metric, "mae") == 0 ? new_v < old_v : new_v > old_v;
}

/* ---- training and evaluation --------------------------------------------------------------- */

typedef struct rt_job {
    pl_ctx *cx;
    const pl_retrain_in *in;
    mdl_version *active; /* held */
    rt_spec sp;
    pr_schema sc;
    rt_params rp;
    rt_rows train, test, val; /* val: the validation split (invariant 6) */
    size_t overlap;           /* training rows dropped: equal to test rows (invariant 5) */
    char *model;              /* new: the booster's JSON */
    size_t model_len;
    xgb_model *booster; /* new: model loaded back (evaluation, validation outputs) */
    double new_metric, active_metric, train_s;
    double thr, parent_thr, test_f1; /* invariant 6: NAN when the model has no threshold */
    json_t *rq;                      /* new: recalibrated residual quantiles, or NULL */
    double wtp_mu, wtp_s;            /* recalibrated willingness to pay (NAN: kept) */
    char version[MDL_VERSION_MAX];
} rt_job;

static int on_round(void *user, int round, int rounds, md_err *err)
{
    rt_job *j = user;
    md_cancel_progress(j->cx->cancel, 0.1 + 0.8 * (double)round / (double)rounds, "training");
    return md_cancel_check(j->cx->cancel, "training", err);
}

static int read_rows(rt_job *j, md_err *err)
{
    pl_ctx *cx = j->cx;
    size_t max = j->in->max_rows ? j->in->max_rows : PL_RETRAIN_MAX_ROWS;
    md_cancel_progress(cx->cancel, 0.02, "reading");
    if (strcmp(j->in->data, PL_RETRAIN_FEEDBACK) == 0) {
        int rc = rt__read_feedback(cx->st, j->in->model, &j->sc, &j->sp, max, &j->train, err);
        if (rc == MD_OK && j->train.n < j->sp.min_feedback)
            rc = md_fail(err, MD_E_UNSUPPORTED, "data",
                         "%zu usable feedback rows (%zu skipped), "
                         "at least %zu are needed",
                         j->train.n, j->train.skipped, j->sp.min_feedback);
        return rc;
    }
    store_dataset *d = malloc(sizeof *d);
    char path[4096];
    int rc =
        d ? store_datasets_get(cx->st, j->in->data, d, err) : md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_E_NOT_FOUND)
        rc = md_fail(err, MD_E_NOT_FOUND, "data", "no dataset %.40s (deleted?)", j->in->data);
    if (rc == MD_OK)
        rc = store_blob_path(cx->st, d->sha256, path, sizeof path, err);
    if (rc == MD_OK)
        rc = rt__read_file(path, d->format, DATA_MAX_BYTES, &j->sc, &j->sp, max, "data", &j->train,
                           err);
    free(d);
    return rc;
}

static int read_test(rt_job *j, md_err *err)
{
    char path[PATH_MAX + 80];
    snprintf(path, sizeof path, "%s/%s", mdl_version_dir(j->active), j->sp.test_split);
    int rc = rt__read_file(path, "csv", TEST_MAX_BYTES, &j->sc, &j->sp, PL_RETRAIN_MAX_ROWS,
                           "test_split", &j->test, err);
    if (rc == MD_OK && j->test.n == 0)
        rc = md_fail(err, MD_E_MODEL_INVALID, "test_split", "the test split has no rows");
    return rc;
}

/* The seed of the training parameters (manifest or override), for the validation split. */
static uint64_t train_seed(const rt_job *j)
{
    for (size_t i = 0; i < j->rp.n; i++)
        if (strcmp(j->rp.key[i], "seed") == 0)
            return strtoull(j->rp.val[i], NULL, 10);
    return 0;
}

/* Invariant 5, then the validation split (invariant 6). */
static int hold_out(rt_job *j, md_err *err)
{
    size_t before = j->train.n;
    int rc = rt__drop_overlap(&j->train, &j->test, &j->overlap, err);
    int fb = strcmp(j->in->data, PL_RETRAIN_FEEDBACK) == 0;
    size_t need = fb ? j->sp.min_feedback : 1;
    if (rc == MD_OK && j->overlap)
        md_log(MD_LOG_WARN,
               "retrain: %s: %zu of %zu rows of %s equal rows of the held test split; "
               "left out",
               j->in->model, j->overlap, before, j->in->data);
    if (rc == MD_OK && j->train.n < need)
        rc = md_fail(err, MD_E_UNSUPPORTED, "data",
                     "%zu of the %zu rows of %.40s are rows of %.64s version %.32s's held test "
                     "split (%.64s) and are left out; %zu remain, at least %zu are needed",
                     j->overlap, before, fb ? "the feedback" : j->in->data, j->in->model,
                     mdl_version_id(j->active), j->sp.test_split, j->train.n, need);
    if (rc == MD_OK)
        rc = rt__split_validation(&j->train, train_seed(j), &j->val, err);
    return rc;
}

static int train(rt_job *j, md_err *err)
{
    xgb_train_opts o = {.params = j->rp.p,
                        .nparams = j->rp.n,
                        .rounds = j->rp.rounds,
                        .nthread = j->in->nthread,
                        .on_round = on_round,
                        .user = j};
    uint64_t t0 = md_clock_now_ns(md_clock_system());
    int rc = xgb_train(j->train.x, j->train.n, j->train.ncols, j->train.y, &o, &j->model,
                       &j->model_len, NULL, err);
    j->train_s = (double)(md_clock_now_ns(md_clock_system()) - t0) / 1e9;
    if (rc == MD_OK)
        rc = xgb_model_load_bytes(j->model, j->model_len, NULL, &j->booster, err);
    return rc;
}

/* The outputs of booster m on rows r: *out new (free()), *w floats per row. */
static int predict_rows(const rt_rows *r, const xgb_model *m, float **out, size_t *w, md_err *err)
{
    *w = (size_t)xgb_model_info(m)->num_outputs;
    *out = malloc((r->n ? r->n : 1) * *w * sizeof **out);
    if (!*out)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    return xgb_predict(m, r->x, r->n, r->ncols, *out, r->n * *w, err);
}

static int predict_test(const rt_job *j, const xgb_model *m, float **out, size_t *w, md_err *err)
{
    return predict_rows(&j->test, m, out, w, err);
}

/* The score a classifier's threshold applies to, row i of out (w per row): the probability of
 * the positive class (one output), or revenue-leak's leak probability 1 - p(none); truth:
 * label != 0. scores, truth: n each. */
static void threshold_scores(const float *out, size_t w, const rt_rows *r, float *scores,
                             int *truth)
{
    for (size_t i = 0; i < r->n; i++) {
        scores[i] = w == 1 ? out[i] : 1.0f - out[i * w];
        truth[i] = r->y[i] != 0.0f;
    }
}

static int calib_threshold(rt_job *j, const float *out, size_t w, md_err *err)
{
    float *sc = malloc(j->val.n * sizeof *sc);
    int *t = malloc(j->val.n * sizeof *t);
    if (!sc || !t) {
        free(sc);
        free(t);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    threshold_scores(out, w, &j->val, sc, t);
    j->thr = rt__best_threshold(sc, t, j->val.n, NULL);
    free(sc);
    free(t);
    return MD_OK;
}

/* The residuals (label - output) on the validation rows, sorted: *res new (free()). */
static int val_residuals(const rt_job *j, const float *out, size_t w, double **res, md_err *err)
{
    *res = malloc(j->val.n * sizeof **res);
    if (!*res)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    for (size_t i = 0; i < j->val.n; i++)
        (*res)[i] = (double)j->val.y[i] - (double)out[i * w];
    rt__sort(*res, j->val.n);
    return MD_OK;
}

/* A statistic as the training scripts round those they store (pcommon._r: 6 digits). */
static double r6(double v)
{
    char b[32];
    snprintf(b, sizeof b, "%.6g", v);
    return strtod(b, NULL);
}

/* profitability: each quantile the parent's interval lists, of the new residuals. */
static int calib_quantiles(rt_job *j, const json_t *rq, const double *res, md_err *err)
{
    j->rq = json_object();
    if (!j->rq)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)rq, k, v)
    {
        char *end = NULL;
        double q = strtod(k, &end);
        if (*end || !(q >= 0 && q <= 1))
            return md_fail(err, MD_E_MODEL_INVALID, "postprocessing.interval",
                           "a residual quantile key is not a number in 0..1");
        json_object_set_new(j->rq, k, json_real(r6(rt__quantile(res, j->val.n, q))));
    }
    return MD_OK;
}

/* Invariant 6: the new booster on the validation split, and what its manifest calibrates. */
static int calibrate(rt_job *j, md_err *err)
{
    const json_t *post = json_object_get(mdl_version_manifest(j->active)->doc, "postprocessing");
    const char *task = json_string_value(json_object_get(post, "task")) ?: "";
    const json_t *pt = json_object_get(post, "threshold");
    const json_t *rq = json_object_get(json_object_get(post, "interval"), "residual_quantiles");
    const json_t *wtp = json_object_get(post, "willingness_to_pay");
    j->thr = j->test_f1 = j->wtp_mu = j->wtp_s = NAN;
    j->parent_thr = json_is_number(pt) ? json_number_value(pt) : NAN;
    if (j->val.n == 0)
        return MD_OK;
    float *out = NULL;
    double *res = NULL;
    size_t w = 0;
    int rc = predict_rows(&j->val, j->booster, &out, &w, err);
    if (rc == MD_OK && strcmp(task, "classification") == 0 && json_is_number(pt))
        rc = calib_threshold(j, out, w, err);
    if (rc == MD_OK && (json_is_object(rq) || json_is_object(wtp)))
        rc = val_residuals(j, out, w, &res, err);
    if (rc == MD_OK && strcmp(task, "regression") == 0 && json_is_object(rq))
        rc = calib_quantiles(j, rq, res, err);
    if (rc == MD_OK && strcmp(task, "price_response") == 0 && json_is_object(wtp) &&
        rt__logistic_fit(res, j->val.n, &j->wtp_mu, &j->wtp_s) != MD_OK)
        j->wtp_mu = j->wtp_s = NAN; /* no spread: the parent's fit is kept */
    free(out);
    free(res);
    return rc;
}

/* F1 of the new version on the test split at its (new) threshold. */
static void test_f1(rt_job *j, const float *mine, size_t w)
{
    float *sc = malloc((j->test.n ? j->test.n : 1) * sizeof *sc);
    int *t = malloc((j->test.n ? j->test.n : 1) * sizeof *t);
    double thr = isnan(j->thr) ? j->parent_thr : j->thr;
    if (sc && t && !isnan(thr)) {
        threshold_scores(mine, w, &j->test, sc, t);
        j->test_f1 = rt__f1_at(sc, t, j->test.n, thr);
    }
    free(sc);
    free(t);
}

/* Both versions on the test split (invariant 1). The active one is loaded from its artefact
 * rather than run through the registry: an evaluation is not a request, and must not count in
 * the statistics that judge a canary. */
static int evaluate(rt_job *j, md_err *err)
{
    md_cancel_progress(j->cx->cancel, 0.92, "evaluating");
    const mdl_manifest *mf = mdl_version_manifest(j->active);
    char path[PATH_MAX + 80];
    snprintf(path, sizeof path, "%s/%s", mdl_version_dir(j->active), mf->artefact);
    xgb_model *active = NULL;
    float *mine = NULL, *theirs = NULL;
    size_t w = 0, aw = 0;
    int rc = strcmp(mf->runtime, "xgboost") == 0
                 ? xgb_model_load(path, NULL, &active, err)
                 : md_fail(err, MD_E_UNSUPPORTED, "model", "%s is not an XGBoost model", mf->name);
    if (rc == MD_OK)
        rc = predict_test(j, j->booster, &mine, &w, err);
    if (rc == MD_OK)
        rc = predict_test(j, active, &theirs, &aw, err);
    if (rc == MD_OK && aw != w)
        rc = md_fail(err, MD_E_MODEL_INVALID, "model",
                     "the new model gives %zu outputs per row, the active one %zu", w, aw);
    if (rc == MD_OK) {
        j->new_metric = metric(&j->sp, mine, w, &j->test);
        j->active_metric = metric(&j->sp, theirs, w, &j->test);
        if (!isnan(j->parent_thr))
            test_f1(j, mine, w);
    }
    xgb_model_free(active);
    free(mine);
    free(theirs);
    return rc;
}

/* ---- the new version ------------------------------------------------------------------------ */

/* One more than the largest integer version of the model (either root, loaded or not). */
static int next_version(rt_job *j, md_err *err)
{
    json_t *d = NULL;
    int rc = mdl_describe(j->cx->models, j->in->model, NULL, &d, err);
    long long top = 0;
    size_t i;
    json_t *v;
    json_array_foreach(rc == MD_OK ? json_object_get(d, "versions") : NULL, i, v)
    {
        const char *s = json_string_value(json_object_get(v, "version"));
        char *end = NULL;
        long long n = s ? strtoll(s, &end, 10) : 0;
        if (s && *s && !*end && n > top)
            top = n;
    }
    json_decref(d);
    if (rc == MD_OK)
        snprintf(j->version, sizeof j->version, "%lld", top + 1);
    return rc;
}

/* The validation samples' expected outputs, recomputed by the new booster (invariant 3). */
static int revalidate(rt_job *j, json_t *doc, md_err *err)
{
    const char *out_name = mdl_version_manifest(j->active)->outputs[0].name;
    size_t w = (size_t)xgb_model_info(j->booster)->num_outputs, i;
    json_t *s;
    json_array_foreach(json_object_get(json_object_get(doc, "validation"), "samples"), i, s)
    {
        json_t *rows = json_object_get(json_object_get(s, "inputs"), "features");
        size_t n = json_array_size(rows), ncols = j->sc.n;
        float *x = malloc((n ? n : 1) * ncols * sizeof *x),
              *y = malloc((n ? n : 1) * w * sizeof *y);
        int rc = x && y ? MD_OK : md_fail(err, MD_E_NOMEM, NULL, NULL);
        for (size_t r = 0; rc == MD_OK && r < n * ncols; r++) {
            json_t *c = json_array_get(json_array_get(rows, r / ncols), r % ncols);
            x[r] = json_is_number(c) ? (float)json_number_value(c) : NAN;
        }
        if (rc == MD_OK)
            rc = xgb_predict(j->booster, x, n, ncols, y, n * w, err);
        json_t *outs = json_array();
        for (size_t r = 0; rc == MD_OK && r < n; r++) {
            json_t *row = json_array();
            for (size_t k = 0; k < w; k++)
                json_array_append_new(row, json_real((double)y[r * w + k]));
            json_array_append_new(outs, row);
        }
        free(x);
        free(y);
        if (rc != MD_OK) {
            json_decref(outs);
            return rc;
        }
        json_object_set_new(json_object_get(s, "outputs"), out_name, outs);
    }
    return MD_OK;
}

static json_t *metrics_json(const rt_job *j)
{
    json_t *m = json_object();
    char parent[64];
    snprintf(parent, sizeof parent, "parent_%s", j->sp.metric);
    if (!isnan(j->new_metric))
        json_object_set_new(m, j->sp.metric, json_real(j->new_metric));
    if (!isnan(j->active_metric))
        json_object_set_new(m, parent, json_real(j->active_metric));
    if (!isnan(j->test_f1))
        json_object_set_new(m, strcmp(j->sp.metric, "roc_auc_leak") == 0 ? "f1_leak" : "f1",
                            json_real(round(j->test_f1 * 1e4) / 1e4));
    if (!isnan(j->thr) || !isnan(j->parent_thr))
        json_object_set_new(m, "threshold", json_real(isnan(j->thr) ? j->parent_thr : j->thr));
    json_object_set_new(m, "test_samples", json_integer((json_int_t)j->test.n));
    json_object_set_new(m, "validation_samples", json_integer((json_int_t)j->val.n));
    json_object_set_new(m, "train_samples", json_integer((json_int_t)j->train.n));
    json_object_set_new(m, "train_seconds", json_real(round(j->train_s * 1000) / 1000));
    return m;
}

/* The training section of the new version: the parameters as trained, and where it came from. */
static void training_json(const rt_job *j, json_t *t)
{
    json_t *p = json_object();
    for (size_t i = 0; i < j->rp.n; i++)
        if (strcmp(j->rp.key[i], "objective") != 0) {
            char *end = NULL;
            double d = strtod(j->rp.val[i], &end);
            json_object_set_new(p, j->rp.key[i],
                                *end                              ? json_string(j->rp.val[i])
                                : d == floor(d) && fabs(d) < 1e15 ? json_integer((json_int_t)d)
                                                                  : json_real(d));
        }
    char at[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_set_new(t, "params", p);
    json_object_set_new(t, "rounds", json_integer(j->rp.rounds));
    json_object_set_new(t, "trained_from", json_string(j->in->data));
    json_object_set_new(t, "parent_version", json_string(mdl_version_id(j->active)));
    json_object_set_new(t, "trained_at", json_string(at));
    json_object_set_new(t, "validation_rows", json_integer((json_int_t)j->val.n));
    json_object_set_new(t, "test_overlap_rows", json_integer((json_int_t)j->overlap));
}

/* Invariant 6: the recalibrated postprocessing (what is not recalibrated stays the parent's),
 * and where it came from. */
static void calibration_json(const rt_job *j, json_t *post)
{
    if (!json_is_object(post))
        return;
    const char *how = !j->val.n ? "kept from the parent version: too few rows to hold out a "
                                  "validation split"
                      : !isnan(j->parent_thr) && isnan(j->thr)
                          ? "the validation split of this retrain; the threshold is the "
                            "parent's (the split has one class only)"
                          : "the validation split of this retrain";
    if (!isnan(j->thr))
        json_object_set_new(post, "threshold", json_real(j->thr));
    json_object_set_new(post, "calibrated_on", json_string(how));
    json_object_set_new(post, "calibration_rows", json_integer((json_int_t)j->val.n));
    if (j->rq)
        json_object_set(json_object_get(post, "interval"), "residual_quantiles", j->rq);
    json_t *wtp = json_object_get(post, "willingness_to_pay");
    if (!isnan(j->wtp_mu) && json_is_object(wtp)) {
        json_object_set_new(wtp, "location", json_real(r6(j->wtp_mu)));
        json_object_set_new(wtp, "scale", json_real(r6(j->wtp_s)));
    }
}

/* a's rows then b's into out (new, rt__rows_free). */
static int rows_concat(const rt_rows *a, const rt_rows *b, rt_rows *out, md_err *err)
{
    size_t n = a->n + b->n;
    out->ncols = a->ncols;
    out->x = malloc((n ? n : 1) * a->ncols * sizeof *out->x);
    out->y = malloc((n ? n : 1) * sizeof *out->y);
    if (!out->x || !out->y)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (a->n) {
        memcpy(out->x, a->x, a->n * a->ncols * sizeof *out->x);
        memcpy(out->y, a->y, a->n * sizeof *out->y);
    }
    if (b->n) {
        memcpy(out->x + a->n * a->ncols, b->x, b->n * b->ncols * sizeof *out->x);
        memcpy(out->y + a->n, b->y, b->n * sizeof *out->y);
    }
    out->n = out->cap = n;
    return MD_OK;
}

/* The parent's manifest with the new version, sha256, metrics, validation and lineage. New. */
static int manifest_text(rt_job *j, char **text, md_err *err)
{
    json_t *doc = json_deep_copy(mdl_version_manifest(j->active)->doc);
    if (!doc)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    unsigned char h[crypto_hash_sha256_BYTES];
    char hex[65];
    crypto_hash_sha256(h, (const unsigned char *)j->model, j->model_len);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    json_object_set_new(doc, "version", json_string(j->version));
    json_object_set_new(doc, "sha256", json_string(hex));
    json_object_set_new(doc, "metrics", metrics_json(j));
    training_json(j, json_object_get(doc, "training"));
    calibration_json(j, json_object_get(doc, "postprocessing"));
    /* Drift of the new version is judged against the rows it was built from: the training and
     * the validation rows, one population (the test rows it never saw are left out). */
    json_t *pre = json_object_get(doc, "preprocessing");
    rt_rows all = {0};
    int rc = rows_concat(&j->train, &j->val, &all, err);
    json_t *dist = rc == MD_OK ? rt__distribution(&j->sc, &all) : NULL;
    rt__rows_free(&all);
    if (json_is_object(pre) && dist)
        json_object_set(pre, "training_distribution", dist);
    json_decref(dist);
    if (rc != MD_OK) {
        json_decref(doc);
        return rc;
    }
    /* TreeSHAP samples belong to the parent's trees; the new booster explains itself live. */
    json_object_del(json_object_get(json_object_get(doc, "postprocessing"), "explanation"),
                    "samples");
    rc = revalidate(j, doc, err);
    *text = rc == MD_OK ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    json_decref(doc);
    if (rc == MD_OK && !*text)
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    return rc;
}

/* Write and install the version: CANARY when better, else STANDBY (invariant 1). */
static int install(rt_job *j, int is_better, md_err *err)
{
    md_cancel_progress(j->cx->cancel, 0.95, "installing");
    char *mf = NULL, *test = NULL;
    size_t test_len = 0;
    char p_model[MDL_VERSION_MAX + 16], p_mf[MDL_VERSION_MAX + 16], p_test[MDL_VERSION_MAX + 80];
    char test_path[PATH_MAX + 80];
    snprintf(test_path, sizeof test_path, "%s/%s", mdl_version_dir(j->active), j->sp.test_split);
    int rc = rt__slurp(test_path, TEST_MAX_BYTES, "test_split", &test, &test_len, err);
    double pct = j->in->canary_percent > 0 ? j->in->canary_percent : DEFAULT_CANARY;
    /* invariant 7: a version taken meanwhile by a concurrent retrain: the next one */
    for (int attempt = 0; rc == MD_OK; attempt++) {
        rc = next_version(j, err);
        if (rc == MD_OK)
            rc = manifest_text(j, &mf, err);
        snprintf(p_model, sizeof p_model, "%s/model.json", j->version);
        snprintf(p_mf, sizeof p_mf, "%s/modeld.json", j->version);
        snprintf(p_test, sizeof p_test, "%s/%s", j->version, j->sp.test_split);
        mdl_file files[] = {{p_model, j->model, j->model_len},
                            {p_mf, mf, mf ? strlen(mf) : 0},
                            {p_test, test, test_len}};
        if (rc == MD_OK)
            rc = mdl_install_as(j->cx->models, j->in->model, files, 3,
                                is_better ? MDL_INSTALL_CANARY : MDL_INSTALL_STANDBY, pct, err);
        free(mf);
        mf = NULL;
        if (rc != MD_E_CONFLICT || attempt == 4)
            break;
        rc = MD_OK;
    }
    free(test);
    return rc;
}

static json_t *result_json(const rt_job *j, int is_better)
{
    double pct = j->in->canary_percent > 0 ? j->in->canary_percent : DEFAULT_CANARY;
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:f, s:s, s:b, s:s, s:I, s:I, s:I, s:i, s:f}", "model",
                  j->in->model, "version", j->version, "parent_version", mdl_version_id(j->active),
                  "state", is_better ? "CANARY" : "STANDBY", "canary_percent",
                  is_better ? pct : 0.0, "metric", j->sp.metric, "better", is_better,
                  "trained_from", j->in->data, "train_rows", (json_int_t)j->train.n, "skipped_rows",
                  (json_int_t)j->train.skipped, "test_rows", (json_int_t)j->test.n, "rounds",
                  j->rp.rounds, "train_seconds", round(j->train_s * 1000) / 1000);
    if (o) {
        json_object_set_new(o, "new",
                            isnan(j->new_metric) ? json_null() : json_real(j->new_metric));
        json_object_set_new(o, "active",
                            isnan(j->active_metric) ? json_null() : json_real(j->active_metric));
        json_object_set_new(o, "validation_rows", json_integer((json_int_t)j->val.n));
        json_object_set_new(o, "test_overlap_rows", json_integer((json_int_t)j->overlap));
        if (!isnan(j->parent_thr)) {
            json_object_set_new(o, "threshold", json_real(isnan(j->thr) ? j->parent_thr : j->thr));
            json_object_set_new(o, "parent_threshold", json_real(j->parent_thr));
        }
    }
    return o;
}

/* fn(j) under a span named name; its attributes are added by add (may be NULL) after fn. */
static int stage(rt_job *j, const char *name, int (*fn)(rt_job *, md_err *),
                 void (*add)(const rt_job *, tr_span *), md_err *err)
{
    tr_span *span = pl__span(j->cx, name);
    int rc = fn(j, err);
    if (rc == MD_OK && add)
        add(j, span);
    return pl__span_end(span, rc);
}

static void rows_attrs(const rt_job *j, tr_span *s)
{
    tr_span_attr_str(s, "modeld.data", j->in->data);
    tr_span_attr_int(s, "modeld.rows", (int64_t)j->train.n);
    tr_span_attr_int(s, "modeld.skipped_rows", (int64_t)j->train.skipped);
}

static void test_attrs(const rt_job *j, tr_span *s)
{
    tr_span_attr_int(s, "modeld.rows", (int64_t)j->test.n);
}

static void train_attrs(const rt_job *j, tr_span *s)
{
    tr_span_attr_int(s, "modeld.rounds", j->rp.rounds);
    tr_span_attr_int(s, "modeld.rows", (int64_t)j->train.n);
    tr_span_attr_int(s, "modeld.model_bytes", (int64_t)j->model_len);
}

static void calib_attrs(const rt_job *j, tr_span *s)
{
    tr_span_attr_int(s, "modeld.validation_rows", (int64_t)j->val.n);
    tr_span_attr_int(s, "modeld.test_overlap_rows", (int64_t)j->overlap);
    if (!isnan(j->thr))
        tr_span_attr_double(s, "modeld.threshold", j->thr);
}

static void eval_attrs(const rt_job *j, tr_span *s)
{
    tr_span_attr_str(s, "modeld.metric", j->sp.metric);
    tr_span_attr_double(s, "modeld.new", j->new_metric);
    tr_span_attr_double(s, "modeld.active", j->active_metric);
    tr_span_attr_str(s, "modeld.active_version", mdl_version_id(j->active));
}

/* Install under the span "retrain register". */
static int register_stage(rt_job *j, int is_better, md_err *err)
{
    tr_span *span = pl__span(j->cx, "retrain register");
    int rc = install(j, is_better, err);
    tr_span_attr_str(span, "modeld.model", j->in->model);
    tr_span_attr_str(span, "modeld.version", j->version);
    tr_span_attr_str(span, "modeld.state", is_better ? "CANARY" : "STANDBY");
    return pl__span_end(span, rc);
}

static int retrain(pl_ctx *cx, const pl_retrain_in *in, json_t **out, md_err *err);

/* The pipeline's span around the work; its stages are spans under it (spans.c). */
int pl_retrain(pl_ctx *cx, const pl_retrain_in *in, json_t **out, md_err *err)
{
    tr_span *span = pl__span(cx, "pipeline retrain");
    pl_ctx inner = pl__ctx_under(cx, span);
    tr_span_attr_str(span, "modeld.model", in->model);
    return pl__span_end(span, retrain(&inner, in, out, err));
}

static int retrain(pl_ctx *cx, const pl_retrain_in *in, json_t **out, md_err *err)
{
    *out = NULL;
    rt_job *j = calloc(1, sizeof *j);
    if (!j)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    j->cx = cx;
    j->in = in;
    int rc = prepare(cx, in, &j->active, &j->sp, &j->sc, err);
    if (rc == MD_OK)
        rc = build_params(&j->sp, in->params, &j->rp, err);
    if (rc == MD_OK)
        rc = stage(j, "retrain load dataset", read_rows, rows_attrs, err);
    if (rc == MD_OK)
        rc = stage(j, "retrain load test split", read_test, test_attrs, err);
    if (rc == MD_OK)
        rc = hold_out(j, err);
    if (rc == MD_OK)
        rc = md_cancel_check(cx->cancel, "reading", err);
    if (rc == MD_OK)
        rc = stage(j, "retrain train", train, train_attrs, err);
    if (rc == MD_OK)
        rc = stage(j, "retrain calibrate", calibrate, calib_attrs, err);
    if (rc == MD_OK)
        rc = stage(j, "retrain validate", evaluate, eval_attrs, err);
    int is_better = rc == MD_OK && better(&j->sp, j->new_metric, j->active_metric);
    if (rc == MD_OK)
        rc = register_stage(j, is_better, err);
    if (rc == MD_OK && !(*out = result_json(j, is_better)))
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK)
        md_log(MD_LOG_INFO,
               "retrain: %s version %s (%s) %s %.4f vs active %s %.4f, %zu rows, %.2f s", in->model,
               j->version, is_better ? "CANARY" : "STANDBY", j->sp.metric, j->new_metric,
               mdl_version_id(j->active), j->active_metric, j->train.n, j->train_s);
    xgb_model_free(j->booster);
    free(j->model);
    rt__rows_free(&j->train);
    rt__rows_free(&j->test);
    rt__rows_free(&j->val);
    json_decref(j->rq);
    pr__schema_free(&j->sc);
    mdl_release(j->active);
    free(j);
    return rc;
}
