/* predict.c - pl_predict / pl_predict_batch (pipelines.h): a request's features checked against
 * a predict model's input_schema, turned into the model's float row, run through the registry
 * and postprocessed per task as training/predict/README.md says ("the contract"), matching the
 * reference training/predict/postprocess.py.
 *
 *   features --schema_row--> float row --mdl_run--> raw output --post_<task>--> prediction
 *                                        --mdl_contribs--> explanation (xgboost_treeshap)
 *   budget_allocation and forecast requests are not rows: budget.c-like optimiser and the
 *   recursive forecast live in predict_tasks.c.
 *
 * Invariants:
 *   1. Every constant comes from the manifest (postprocessing, input_schema); nothing here knows
 *      a model by name.
 *   2. Bad input is an md error naming the field (the column name, or "features" / "items" /
 *      the option), never a crash: every manifest read is type-checked, a malformed manifest is
 *      MD_E_MODEL_INVALID.
 *   3. A batch runs its good rows through the model in one call; a bad row costs only itself.
 *   4. The version reference taken by mdl_acquire is released on every path.
 *   5. Every answered prediction has a prediction_id; the log (when sampled) has the same id,
 *      so feedback can name it. Logging never fails a prediction (it is a warning).
 */
#include "pipelines/predict_int.h"

#include "base/clock.h"
#include "base/json_out.h"
#include "base/log.h"
#include "models/models.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- the manifest's input_schema ---- */

int pr__schema_load(const mdl_manifest *mf, pr_schema *sc, md_err *err)
{
    memset(sc, 0, sizeof *sc);
    json_t *cols = json_object_get(json_object_get(mf->doc, "input_schema"), "columns");
    if (!json_is_array(cols) || json_array_size(cols) == 0)
        return md_fail(err, MD_E_MODEL_INVALID, "input_schema", "the model has no input_schema");
    sc->n = json_array_size(cols);
    sc->cols = calloc(sc->n, sizeof *sc->cols);
    if (!sc->cols)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    for (size_t i = 0; i < sc->n; i++) {
        json_t *c = json_array_get(cols, i);
        json_t *ix = json_object_get(c, "index");
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *type = json_string_value(json_object_get(c, "type"));
        if (!json_is_integer(ix) || json_integer_value(ix) != (json_int_t)i || !name || !type)
            return md_fail(err, MD_E_MODEL_INVALID, "input_schema.columns",
                           "column %zu is malformed", i);
        pr_col *pc = &sc->cols[i];
        pc->name = name;
        pc->kind = !strcmp(type, "integer")    ? PR_INTEGER
                   : !strcmp(type, "category") ? PR_CATEGORY
                                               : PR_NUMBER;
        pc->required = json_is_true(json_object_get(c, "required"));
        json_t *mn = json_object_get(c, "minimum"), *mx = json_object_get(c, "maximum");
        pc->min = json_is_number(mn) ? json_number_value(mn) : -INFINITY;
        pc->max = json_is_number(mx) ? json_number_value(mx) : INFINITY;
        pc->values = json_object_get(c, "values");
        if (pc->kind == PR_CATEGORY && !json_is_array(pc->values))
            return md_fail(err, MD_E_MODEL_INVALID, "input_schema.columns",
                           "category column %s has no values", name);
    }
    return MD_OK;
}

void pr__schema_free(pr_schema *sc)
{
    free(sc->cols);
    sc->cols = NULL;
    sc->n = 0;
}

ssize_t pr__schema_find(const pr_schema *sc, const char *name)
{
    for (size_t i = 0; i < sc->n; i++)
        if (!strcmp(sc->cols[i].name, name))
            return (ssize_t)i;
    return -1;
}

/* One column's value into *out (NaN for an absent optional one). The one place the value
 * rules and their messages live: JSON values (pr__schema_row) and text cells (predict_table.c)
 * both come here as a pr_cell. */
int pr__cell_value(const pr_col *c, const pr_cell *v, float *out, md_err *err)
{
    if (v->kind == PR_CELL_ABSENT) {
        if (c->required)
            return md_fail(err, MD_E_MISSING_FIELD, c->name, "%s is required", c->name);
        *out = NAN;
        return MD_OK;
    }
    if (c->kind == PR_CATEGORY) {
        if (v->kind != PR_CELL_STRING)
            return md_fail(err, MD_E_INVALID_PARAM, c->name, "%s must be a string (a label)",
                           c->name);
        for (size_t k = 0; k < json_array_size(c->values); k++)
            if (!strcmp(v->s, json_string_value(json_array_get(c->values, k)) ?: "")) {
                *out = (float)k;
                return MD_OK;
            }
        return md_fail(err, MD_E_INVALID_PARAM, c->name, "%s: unknown label \"%.64s\"", c->name,
                       v->s);
    }
    if (v->kind != PR_CELL_NUMBER)
        return md_fail(err, MD_E_INVALID_PARAM, c->name, "%s must be a number", c->name);
    double d = v->d;
    if (!isfinite(d))
        return md_fail(err, MD_E_INVALID_PARAM, c->name, "%s must be finite", c->name);
    if (c->kind == PR_INTEGER && d != floor(d))
        return md_fail(err, MD_E_INVALID_PARAM, c->name, "%s must be an integer", c->name);
    if (d < c->min || d > c->max)
        return md_fail(err, MD_E_INVALID_PARAM, c->name, "%s must be in [%g, %g], got %g", c->name,
                       c->min, c->max, d);
    *out = (float)d;
    return MD_OK;
}

/* A JSON value as a cell (NULL and null: absent). */
static pr_cell json_cell(const json_t *v)
{
    if (!v || json_is_null(v))
        return (pr_cell){.kind = PR_CELL_ABSENT};
    if (json_is_string(v))
        return (pr_cell){.kind = PR_CELL_STRING, .s = json_string_value(v)};
    if (json_is_number(v))
        return (pr_cell){.kind = PR_CELL_NUMBER, .d = json_number_value(v)};
    return (pr_cell){.kind = PR_CELL_OTHER};
}

int pr__schema_row(const pr_schema *sc, const json_t *features, float *row, md_err *err)
{
    if (!json_is_object(features))
        return md_fail(err, MD_E_INVALID_PARAM, "features", "features must be an object");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)features, key, val)
    {
        (void)val;
        if (!key[0])
            return md_fail(err, MD_E_INVALID_PARAM, "features", "features has a field with an empty name");
        if (pr__schema_find(sc, key) < 0)
            return md_fail(err, MD_E_INVALID_PARAM, key, "%.48s is not a field of this model", key);
    }
    for (size_t i = 0; i < sc->n; i++) {
        pr_cell cell = json_cell(json_object_get(features, sc->cols[i].name));
        int rc = pr__cell_value(&sc->cols[i], &cell, &row[i], err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

/* ---- acquiring the model ---- */

const char *pl_predict_task(const mdl_manifest *mf)
{
    if (mf->family != MDL_PREDICT)
        return NULL;
    return json_string_value(json_object_get(json_object_get(mf->doc, "postprocessing"), "task"));
}

int pr__acquire(pl_ctx *cx, const char *model, mdl_version **v, const char **task, md_err *err)
{
    *v = NULL;
    if (!cx->models)
        return md_fail(err, MD_E_MODEL_UNAVAILABLE, "model", "no model registry");
    int rc = mdl_acquire(cx->models, model, NULL, v, err);
    if (rc != MD_OK)
        return rc;
    *task = pl_predict_task(mdl_version_manifest(*v));
    if (!*task) {
        mdl_release(*v);
        *v = NULL;
        return md_fail(err, MD_E_MODEL_NOT_FOUND, "model", "%.64s is not a prediction model",
                       model);
    }
    return MD_OK;
}

/* Run n rows of ncols floats; *out is new (free()), n * *width floats. */
int pr__run_rows(pl_ctx *cx, mdl_version *v, const float *rows, size_t n, size_t ncols, float **out,
                 size_t *width, md_err *err)
{
    *out = NULL;
    const mdl_manifest *mf = mdl_version_manifest(v);
    mdl_tensor in = {.name = mf->inputs[0].name,
                     .dtype = mf->inputs[0].dtype,
                     .rank = 2,
                     .dims = {(int64_t)n, (int64_t)ncols},
                     .data = rows};
    mdl_result *res = NULL;
    int rc = mdl_run(v, &in, 1, cx->cancel, &res, err);
    if (rc != MD_OK)
        return rc;
    const mdl_tensor *o = mdl_result_output(res, 0);
    size_t w = o->rank == 2 ? (size_t)o->dims[1] : 1;
    size_t cells = n * w;
    *out = malloc((cells ? cells : 1) * sizeof **out);
    if (!*out) {
        mdl_result_free(res);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    memcpy(*out, o->data, n * w * sizeof **out);
    *width = w;
    mdl_result_free(res);
    return MD_OK;
}

/* ---- the prediction log ---- */

static int sampled(double share)
{
    uint32_t r = 0;
    if (share >= 1.0)
        return 1;
    if (share <= 0.0 || getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        return 0;
    return (double)r < share * 4294967296.0;
}

/* v's compact JSON text (new, free()), json_dumps(v, JSON_COMPACT)'s bytes at a fraction of its
 * cost (base/json_out.h); NULL on failure. */
static char *dump(const json_t *v)
{
    md_buf b;
    md_buf_init(&b, SIZE_MAX / 2);
    char *s = v && md_json_out(&b, v) == MD_OK ? md_buf_steal(&b, NULL) : NULL;
    md_buf_free(&b);
    return s;
}

/* Give each answer (an object with prediction and explanation, n of them, answering feats[i])
 * its prediction_id, and log the sampled ones. */
static void log_answers(pl_ctx *cx, mdl_version *v, const json_t *const *feats,
                        const json_t *options, json_t *const *answers, size_t n)
{
    store_prediction *rows = cx->st ? calloc(n, sizeof *rows) : NULL;
    size_t k = 0;
    int64_t now = md_clock_wall_ms(md_clock_system());
    for (size_t i = 0; i < n; i++) {
        char id[STORE_PREDICTION_ID_MAX];
        store_prediction_id(id);
        json_object_set_new(answers[i], "prediction_id", json_string(id));
        if (!rows || !sampled(cx->log_sample))
            continue;
        store_prediction *p = &rows[k];
        memcpy(p->id, id, sizeof id);
        snprintf(p->model, sizeof p->model, "%s", mdl_version_name(v));
        snprintf(p->version, sizeof p->version, "%s", mdl_version_id(v));
        json_t *in = json_pack("{s:O, s:O*}", "features", feats[i], "options", options);
        json_t *o = json_pack("{s:O, s:O}", "prediction", json_object_get(answers[i], "prediction"),
                              "explanation", json_object_get(answers[i], "explanation"));
        p->inputs = dump(in);
        p->outputs = dump(o);
        p->time_ms = now;
        json_decref(in);
        json_decref(o);
        if (p->inputs && p->outputs)
            k++;
        else {
            free(p->inputs);
            free(p->outputs);
        }
    }
    md_err e = {0};
    if (k && store_predictions_add(cx->st, rows, k, &e) != MD_OK)
        md_log(MD_LOG_WARN, "predict: %zu predictions of %s not logged: %s", k, mdl_version_name(v),
               md_err_message(&e));
    for (size_t i = 0; i < k; i++) {
        free(rows[i].inputs);
        free(rows[i].outputs);
    }
    free(rows);
}

/* ---- single and batch ---- */

static json_t *envelope(mdl_version *v)
{
    return json_pack("{s:s, s:s}", "model", mdl_version_name(v), "version", mdl_version_id(v));
}

/* The good rows (errs[i].code == MD_OK) of n checked rows of sc->n floats: run through v in
 * one call, postprocessed per task into preds[i], explained into expls[i] unless
 * cx->no_explain. A row whose postprocessing fails by its own fault (a price option) gets its
 * error in errs[i]; anything else fails the call. */
int pr__run_good(pl_ctx *cx, mdl_version *v, const char *task, const pr_schema *sc,
                 const float *rows, size_t n, const json_t *options, json_t **preds,
                 json_t **expls, md_err *errs, md_err *err)
{
    const mdl_manifest *mf = mdl_version_manifest(v);
    float *good = malloc((n ? n : 1) * sc->n * sizeof *good), *out = NULL;
    size_t *map = malloc((n ? n : 1) * sizeof *map), *grp = calloc(n ? n : 1, sizeof *grp);
    size_t ng = 0, w = 0;
    int rc = MD_OK;
    if (!good || !map || !grp) {
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        preds[i] = expls[i] = NULL;
        if (errs[i].code != MD_OK)
            continue;
        if (!strcmp(task, "price_response") && pr__price_check(mf, options, &errs[i]) != MD_OK)
            continue;
        memcpy(good + ng * sc->n, rows + i * sc->n, sc->n * sizeof *rows);
        map[ng++] = i;
    }
    if (ng == 0)
        goto out;
    rc = pr__run_rows(cx, v, good, ng, sc->n, &out, &w, err);
    if (rc != MD_OK)
        goto out;
    for (size_t g = 0; g < ng && rc == MD_OK; g++) {
        size_t i = map[g];
        rc = pr__post_row(mf, task, sc, good + g * sc->n, out + g * w, w, options, &preds[i],
                          &grp[g], &errs[i]);
        if (rc != MD_OK && errs[i].code != MD_E_NOMEM && errs[i].code != MD_E_MODEL_INVALID)
            rc = MD_OK; /* the row's own fault (a price option): listed, not fatal */
        else if (rc != MD_OK && err)
            *err = errs[i];
    }
    if (rc == MD_OK && !cx->no_explain)
        rc = pr__explain(v, sc, good, ng, map, grp, expls, err);
out:
    free(good);
    free(map);
    free(grp);
    free(out);
    return rc;
}

/* Rows of tabular tasks: check, run, postprocess every row of feats (n objects). Bad rows get
 * their error in errs[i] (code != MD_OK) and a NULL result. */
static int tabular(pl_ctx *cx, mdl_version *v, const char *task, const json_t *const *feats,
                   size_t n, const json_t *options, json_t **preds, json_t **expls, md_err *errs,
                   md_err *err)
{
    pr_schema sc;
    int rc = pr__schema_load(mdl_version_manifest(v), &sc, err);
    float *rows = NULL;
    if (rc != MD_OK)
        goto out;
    rows = malloc((n ? n : 1) * sc.n * sizeof *rows);
    if (!rows) {
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        md_err_clear(&errs[i]);
        pr__schema_row(&sc, feats[i], rows + i * sc.n, &errs[i]);
    }
    rc = pr__run_good(cx, v, task, &sc, rows, n, options, preds, expls, errs, err);
out:
    free(rows);
    pr__schema_free(&sc);
    return rc;
}

/* Non-tabular tasks (budget_allocation, forecast) answer one request at a time. */
static int one_request(pl_ctx *cx, mdl_version *v, const char *task, const json_t *features,
                       json_t **pred, md_err *err)
{
    if (!strcmp(task, "budget_allocation"))
        return pr__budget(cx, v, features, pred, err);
    if (!strcmp(task, "forecast"))
        return pr__forecast(cx, v, features, pred, err);
    return md_fail(err, MD_E_MODEL_INVALID, "postprocessing.task", "unknown task %.32s", task);
}

int pr__is_tabular(const char *task)
{
    return !strcmp(task, "classification") || !strcmp(task, "regression") ||
           !strcmp(task, "price_response") || !strcmp(task, "anomaly");
}

/* The "model run" span (trace.h) of n rows through model, a child of parent. */
static tr_span *model_span(const tr_ctx *parent, const char *model, size_t n)
{
    tr_span *s = tr_span_start("model run", TR_KIND_INTERNAL, parent);
    tr_span_attr_str(s, "modeld.model", model);
    tr_span_attr_int(s, "modeld.rows", (int64_t)n);
    return s;
}

int pl_predict(pl_ctx *cx, const char *model, const json_t *features, const json_t *options,
               json_t **out, md_err *err)
{
    *out = NULL;
    mdl_version *v = NULL;
    const char *task = NULL;
    int rc = pr__acquire(cx, model, &v, &task, err);
    if (rc != MD_OK)
        return rc;
    json_t *pred = NULL, *expl = NULL;
    md_err row_err = {0};
    tr_span *run = model_span(cx->trace, model, 1);
    if (pr__is_tabular(task)) {
        rc = tabular(cx, v, task, &features, 1, options, &pred, &expl, &row_err, err);
        if (rc == MD_OK && row_err.code != MD_OK) {
            rc = row_err.code;
            if (err)
                *err = row_err;
        }
    } else {
        rc = one_request(cx, v, task, features, &pred, err);
    }
    tr_span_status(run, rc);
    tr_span_end(run);
    if (rc == MD_OK) {
        *out = envelope(v);
        json_object_set_new(*out, "prediction", pred);
        json_object_set_new(*out, "explanation", expl ? expl : json_null());
        pred = expl = NULL;
        log_answers(cx, v, &features, options, out, 1);
    }
    json_decref(pred);
    json_decref(expl);
    mdl_release(v);
    return rc;
}

static json_t *error_json(const md_err *e)
{
    return json_pack("{s:s, s:s?, s:s}", "code", md_err_name(e->code), "field",
                     e->field[0] ? e->field : NULL, "message", md_err_message(e));
}

/* The batch answer from per-row results (steals preds and expls). */
static json_t *batch_answer(mdl_version *v, size_t n, json_t **preds, json_t **expls,
                            const md_err *errs)
{
    json_t *o = envelope(v), *ok = json_array(), *bad = json_array();
    for (size_t i = 0; i < n; i++) {
        if (preds[i])
            json_array_append_new(ok, json_pack("{s:I, s:o, s:o}", "index", (json_int_t)i,
                                                "prediction", preds[i], "explanation",
                                                expls[i] ? expls[i] : json_null()));
        else
            json_array_append_new(bad, json_pack("{s:I, s:o}", "index", (json_int_t)i, "error",
                                                 error_json(&errs[i])));
    }
    json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(ok)));
    json_object_set_new(o, "predictions", ok);
    json_object_set_new(o, "failed", bad);
    return o;
}

/* log_answers over a batch answer's predictions (each knows its item's index). */
static void log_batch(pl_ctx *cx, mdl_version *v, const json_t **feats, const json_t *options,
                      json_t *answer)
{
    json_t *preds = json_object_get(answer, "predictions");
    size_t n = json_array_size(preds);
    const json_t **f = malloc((n ? n : 1) * sizeof *f);
    json_t **a = malloc((n ? n : 1) * sizeof *a);
    for (size_t i = 0; f && a && i < n; i++) {
        a[i] = json_array_get(preds, i);
        f[i] = feats[json_integer_value(json_object_get(a[i], "index"))];
    }
    if (f && a)
        log_answers(cx, v, f, options, a, n);
    free(f);
    free(a);
}

static int predict_batch(pl_ctx *cx, const tr_ctx *parent, const char *model, const json_t *items,
                         const json_t *options, json_t **out, md_err *err);

int pl_predict_batch(pl_ctx *cx, const char *model, const json_t *items, const json_t *options,
                     json_t **out, md_err *err)
{
    tr_span *s = tr_span_start("pipeline predict batch", TR_KIND_INTERNAL, cx->trace);
    tr_span_attr_str(s, "modeld.model", model);
    int rc = predict_batch(cx, s ? tr_span_ctx(s) : cx->trace, model, items, options, out, err);
    tr_span_status(s, rc);
    tr_span_end(s);
    return rc;
}

static int predict_batch(pl_ctx *cx, const tr_ctx *parent, const char *model, const json_t *items,
                         const json_t *options, json_t **out, md_err *err)
{
    *out = NULL;
    if (!json_is_array(items))
        return md_fail(err, MD_E_INVALID_PARAM, "items", "items must be an array");
    size_t n = json_array_size(items);
    if (n == 0 || n > PL_PREDICT_BATCH_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, "items", "items must hold 1 to %d rows",
                       PL_PREDICT_BATCH_MAX);
    mdl_version *v = NULL;
    const char *task = NULL;
    int rc = pr__acquire(cx, model, &v, &task, err);
    if (rc != MD_OK)
        return rc;
    const json_t **feats = malloc(n * sizeof *feats);
    json_t **preds = calloc(n, sizeof *preds), **expls = calloc(n, sizeof *expls);
    md_err *errs = calloc(n, sizeof *errs);
    if (!feats || !preds || !expls || !errs) {
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        feats[i] = json_array_get(items, i);
    tr_span *run = model_span(parent, model, n);
    if (pr__is_tabular(task)) {
        rc = tabular(cx, v, task, feats, n, options, preds, expls, errs, err);
    } else {
        for (size_t i = 0; i < n && rc == MD_OK; i++) {
            int r = one_request(cx, v, task, feats[i], &preds[i], &errs[i]);
            if (r == MD_E_NOMEM || r == MD_E_MODEL_INVALID || r == MD_E_CANCELLED ||
                r == MD_E_TIMEOUT) {
                rc = r;
                if (err)
                    *err = errs[i];
            }
        }
    }
    tr_span_status(run, rc);
    tr_span_end(run);
    if (rc == MD_OK) {
        *out = batch_answer(v, n, preds, expls, errs);
        log_batch(cx, v, feats, options, *out);
        n = 0; /* stolen */
    }
out:
    for (size_t i = 0; i < n && preds && expls; i++) {
        json_decref(preds[i]);
        json_decref(expls[i]);
    }
    free(feats);
    free(preds);
    free(expls);
    free(errs);
    mdl_release(v);
    return rc;
}

/* ---- for predict_table.c ---- */

void pr__log_rows(pl_ctx *cx, mdl_version *v, const json_t *const *feats, json_t *const *answers,
                  size_t n)
{
    pl_ctx all = *cx;
    all.log_sample = 1.0; /* the caller sampled them */
    log_answers(&all, v, feats, NULL, answers, n);
}
