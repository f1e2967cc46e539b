/* predict_api.c - POST /api/{model}, POST /api/{model}/batch and the per-model info and health
 * routes (predict_api.h): parse, one pipeline call (pl_predict / pl_predict_batch), render.
 *
 * Invariants:
 *   1. Handlers never choose a status: every failure is the md code of the pipeline or of the
 *      body's parsing, with the field named.
 *   2. Only family "predict" is served (pl_predict refuses others as MD_E_MODEL_NOT_FOUND; the
 *      info and health routes check the family themselves).
 *   3. Every answer carries a prediction_id (single) and the request_id, so a client can send
 *      feedback about one prediction later.
 */
#include "api/predict_api.h"

#include "api/api_int.h"
#include "pipelines/pipelines.h"

#include "base/clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct api_predict {
    mdl_registry *reg; /* borrowed */
    store *st;         /* borrowed; NULL: no log, history, feedback or drift */
    double log_sample;
    /* The drift families of /metrics, rendered at most every DRIFT_CACHE_MS (each render reads
     * the last hour of every predict model's log) and shared by every scrape in between. */
    pthread_mutex_t drift_mu;
    char *drift_text; /* owned; NULL until the first scrape */
    int64_t drift_at_ms;
};

static pl_ctx ctx_of(const api_predict *a)
{
    return (pl_ctx){.models = a->reg, .st = a->st, .log_sample = a->log_sample};
}

/* The body {key: <required>, "options"?: {...}}; *body new, *main and *opts borrowed from it. */
static int read_body(http_req *req, const char *key, json_t **body, json_t **main, json_t **opts)
{
    md_err *e = http_req_err(req);
    int rc = http_req_json(req, body);
    if (rc != MD_OK)
        return rc;
    const char *k;
    json_t *v;
    json_object_foreach(*body, k, v)
    {
        if (strcmp(k, key) && strcmp(k, "options"))
            return md_fail(e, MD_E_INVALID_PARAM, k, "unknown field \"%.40s\"", k);
    }
    *main = json_object_get(*body, key);
    *opts = json_object_get(*body, "options");
    if (!*main)
        return md_fail(e, MD_E_MISSING_FIELD, key, "%s is required", key);
    if (*opts && json_is_null(*opts))
        *opts = NULL;
    if (*opts && !json_is_object(*opts))
        return md_fail(e, MD_E_INVALID_PARAM, "options", "options must be an object");
    return MD_OK;
}

/* Both prediction routes: body key "features" (pl_predict) or "items" (pl_predict_batch). */
static int predict(http_req *req, void *ctx, int batch)
{
    json_t *body = NULL, *main = NULL, *opts = NULL, *out = NULL;
    pl_ctx cx = ctx_of(ctx);
    cx.trace = http_req_trace(req);
    const char *model = http_req_param(req, "model");
    int rc = read_body(req, batch ? "items" : "features", &body, &main, &opts);
    if (rc == MD_OK)
        rc = batch ? pl_predict_batch(&cx, model, main, opts, &out, http_req_err(req))
                   : pl_predict(&cx, model, main, opts, &out, http_req_err(req));
    json_decref(body);
    if (rc != MD_OK)
        return rc;
    json_object_set_new(out, "request_id", json_string(http_req_id(req)));
    return http_reply_json(req, 200, out);
}

static int predict_one(http_req *req, void *ctx)
{
    return predict(req, ctx, 0);
}

static int predict_batch(http_req *req, void *ctx)
{
    return predict(req, ctx, 1);
}

/* The predict model {model}, version {name} ("active" or the model's name: the serving one). */
static int acquire(http_req *req, const api_predict *a, mdl_version **v)
{
    mdl_registry *reg = a->reg;
    const char *model = http_req_param(req, "model"), *name = http_req_param(req, "name");
    const char *version = !strcmp(name, "active") || !strcmp(name, model) ? NULL : name;
    int rc = mdl_acquire(reg, model, version, v, http_req_err(req));
    if (rc == MD_OK && !pl_predict_task(mdl_version_manifest(*v))) {
        mdl_release(*v);
        *v = NULL;
        rc = md_fail(http_req_err(req), MD_E_MODEL_NOT_FOUND, "model",
                     "%.64s is not a prediction model", model);
    }
    return rc;
}

static int model_info(http_req *req, void *ctx)
{
    mdl_version *v = NULL;
    int rc = acquire(req, ctx, &v);
    if (rc != MD_OK)
        return rc;
    const mdl_manifest *mf = mdl_version_manifest(v);
    json_t *doc = mf->doc;
    json_t *out = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:O*, s:O*, s:O*, s:O*, s:O*}", "model", mf->name, "version",
        mf->version, "state", mdl_state_name(mdl_version_state(v)), "task", pl_predict_task(mf),
        "runtime", mf->runtime, "description", json_object_get(doc, "description"), "input_schema",
        json_object_get(doc, "input_schema"), "outputs", json_object_get(doc, "outputs"), "metrics",
        json_object_get(doc, "metrics"), "model_card", json_object_get(doc, "model_card"));
    mdl_release(v);
    return http_reply_json(req, 200, out);
}

static int model_health(http_req *req, void *ctx)
{
    mdl_version *v = NULL;
    int rc = acquire(req, ctx, &v);
    if (rc != MD_OK)
        return rc;
    json_t *d = NULL, *stats = NULL;
    char ver[MDL_VERSION_MAX];
    snprintf(ver, sizeof ver, "%s", mdl_version_id(v));
    mdl_state st = mdl_version_state(v);
    rc = mdl_describe(((api_predict *)ctx)->reg, mdl_version_name(v), ver, &d, http_req_err(req));
    if (rc == MD_OK)
        stats = json_object_get(json_object_get(d, "stats"), ver);
    json_t *out = rc == MD_OK
                      ? json_pack("{s:s, s:s, s:s, s:b, s:O*, s:O*, s:O*}", "model",
                                  mdl_version_name(v), "version", ver, "state", mdl_state_name(st),
                                  "serving", st == MDL_ACTIVE || st == MDL_CANARY, "requests",
                                  json_object_get(stats, "requests"), "failures",
                                  json_object_get(stats, "failures"), "latency_seconds",
                                  json_object_get(stats, "latency_seconds"))
                      : NULL;
    json_decref(d);
    mdl_release(v);
    if (rc != MD_OK)
        return rc;
    return http_reply_json(req, 200, out);
}

/* ---- history, feedback, drift, metrics ---- */

static int history(http_req *req, void *ctx)
{
    long long from = 0, to = 0, limit = 50, offset = 0;
    int rc = api__query_int(req, "from", 0, INT64_MAX, 0, &from);
    if (rc == MD_OK)
        rc = api__query_int(req, "to", 0, INT64_MAX, 0, &to);
    if (rc == MD_OK)
        rc = api__query_int(req, "limit", 1, 1000, 50, &limit);
    if (rc == MD_OK)
        rc = api__query_int(req, "offset", 0, 1000000000, 0, &offset);
    json_t *out = NULL;
    pl_ctx cx = ctx_of(ctx);
    if (rc == MD_OK)
        rc = pl_predict_history(&cx, http_req_param(req, "model"), from, to, (size_t)offset,
                                (size_t)limit, &out, http_req_err(req));
    return rc == MD_OK ? http_reply_json(req, 200, out) : rc;
}

static int feedback(http_req *req, void *ctx)
{
    json_t *body = NULL;
    md_err *e = http_req_err(req);
    int rc = http_req_json(req, &body);
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        if (rc == MD_OK && strcmp(k, "prediction_id") && strcmp(k, "actual"))
            rc = md_fail(e, MD_E_INVALID_PARAM, k, "unknown field \"%.40s\"", k);
    }
    const char *id = json_string_value(json_object_get(body, "prediction_id"));
    json_t *actual = json_object_get(body, "actual");
    if (rc == MD_OK && !json_object_get(body, "prediction_id"))
        rc = md_fail(e, MD_E_MISSING_FIELD, "prediction_id", "prediction_id is required");
    if (rc == MD_OK && !id)
        rc = md_fail(e, MD_E_INVALID_PARAM, "prediction_id", "prediction_id must be a string");
    if (rc == MD_OK && !actual)
        rc = md_fail(e, MD_E_MISSING_FIELD, "actual", "actual is required");
    pl_ctx cx = ctx_of(ctx);
    if (rc == MD_OK)
        rc = pl_predict_feedback(&cx, http_req_param(req, "model"), id, actual, e);
    json_t *out = rc == MD_OK ? json_pack("{s:b, s:s}", "success", 1, "prediction_id", id) : NULL;
    json_decref(body);
    return rc == MD_OK ? http_reply_json(req, 200, out) : rc;
}

#define DAY_MS (24LL * 3600 * 1000)

static int drift(http_req *req, void *ctx)
{
    long long now = md_clock_wall_ms(md_clock_system()), from = 0, to = 0;
    int rc = api__query_int(req, "from", 0, INT64_MAX, now - DAY_MS, &from);
    if (rc == MD_OK)
        rc = api__query_int(req, "to", 0, INT64_MAX, 0, &to);
    json_t *out = NULL;
    pl_ctx cx = ctx_of(ctx);
    if (rc == MD_OK)
        rc = pl_predict_drift(&cx, http_req_param(req, "model"), from, to, &out, http_req_err(req));
    return rc == MD_OK ? http_reply_json(req, 200, out) : rc;
}

/* One predict model's line of /api/admin/metrics: its active version's counts, latency and
 * failures, and the drift status of the last 24 h. */
static json_t *model_metrics(const api_predict *a, const char *name)
{
    json_t *d = NULL, *dr = NULL;
    if (mdl_describe(a->reg, name, NULL, &d, NULL) != MD_OK)
        return NULL;
    const char *ver = json_string_value(json_object_get(d, "active_version"));
    json_t *stats = ver ? json_object_get(json_object_get(d, "stats"), ver) : NULL;
    pl_ctx cx = ctx_of(a);
    md_err e = {0};
    int64_t now = md_clock_wall_ms(md_clock_system());
    int rc = a->st ? pl_predict_drift(&cx, name, now - DAY_MS, 0, &dr, &e) : MD_E_UNAVAILABLE;
    json_t *o = json_pack("{s:s, s:s?, s:O*, s:O*, s:O*, s:O*}", "model", name, "version", ver,
                          "requests", json_object_get(stats, "requests"), "successes",
                          json_object_get(stats, "successes"), "failures",
                          json_object_get(stats, "failures"), "latency_seconds",
                          json_object_get(stats, "latency_seconds"));
    json_object_set_new(o, "drift",
                        rc == MD_OK
                            ? json_pack("{s:O, s:O}", "status", json_object_get(dr, "status"),
                                        "rows", json_object_get(dr, "rows"))
                            : json_null());
    json_decref(dr);
    json_decref(d);
    return o;
}

static int admin_metrics(http_req *req, void *ctx)
{
    const api_predict *a = ctx;
    json_t *all = mdl_describe_all(a->reg), *models = json_array(), *m;
    size_t i;
    if (!all)
        return md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    json_array_foreach(all, i, m)
    {
        const char *fam = json_string_value(json_object_get(m, "family"));
        json_t *line = fam && !strcmp(fam, "predict")
                           ? model_metrics(a, json_string_value(json_object_get(m, "name")))
                           : NULL;
        if (line)
            json_array_append_new(models, line);
    }
    json_decref(all);
    return http_reply_json(req, 200, json_pack("{s:o}", "models", models));
}

/* ---- drift for Prometheus ---- */

#define DRIFT_WINDOW_MS (3600LL * 1000)
#define DRIFT_CACHE_MS 15000

/* The largest PSI over the columns of one drift answer (pl_predict_drift's "features"). */
static double worst_psi(const json_t *dr)
{
    const char *col;
    const json_t *f;
    double worst = 0.0;
    json_object_foreach((json_t *)json_object_get(dr, "features"), col, f)
    {
        double p = json_number_value(json_object_get(f, "psi"));
        worst = p > worst ? p : worst;
    }
    return worst;
}

/* Every predict model's drift over the last hour, as two gauges (each family's samples
 * together, as the text format requires). A model whose drift cannot be computed (no training
 * distribution, store error) is left out rather than reported as 0. */
static void drift_render(const api_predict *a, md_buf *b, int64_t now)
{
    json_t *all = mdl_describe_all(a->reg), *m;
    md_buf rows;
    md_buf_init(&rows, 1u << 20);
    md_buf_puts(b, "# HELP modeld_predict_drift_psi Largest PSI of a prediction model's logged "
                   "inputs (last hour) against its training distribution (>= 0.25: drift).\n"
                   "# TYPE modeld_predict_drift_psi gauge\n");
    md_buf_puts(&rows, "# HELP modeld_predict_drift_rows Logged rows the drift was computed over.\n"
                       "# TYPE modeld_predict_drift_rows gauge\n");
    size_t i;
    json_array_foreach(all, i, m)
    {
        const char *fam = json_string_value(json_object_get(m, "family"));
        const char *name = json_string_value(json_object_get(m, "name"));
        json_t *dr = NULL;
        md_err e = {0};
        pl_ctx cx = ctx_of(a);
        if (!fam || strcmp(fam, "predict") != 0 || !name ||
            pl_predict_drift(&cx, name, now - DRIFT_WINDOW_MS, 0, &dr, &e) != MD_OK)
            continue;
        md_buf_printf(b, "modeld_predict_drift_psi{model=\"%s\"} %.6f\n", name, worst_psi(dr));
        md_buf_printf(&rows, "modeld_predict_drift_rows{model=\"%s\"} %lld\n", name,
                      (long long)json_integer_value(json_object_get(dr, "rows")));
        json_decref(dr);
    }
    json_decref(all);
    md_buf_append(b, rows.data ? rows.data : "", rows.len);
    md_buf_free(&rows);
}

static void drift_metrics(md_buf *out, void *ctx)
{
    api_predict *a = ctx;
    int64_t now = md_clock_wall_ms(md_clock_system());
    pthread_mutex_lock(&a->drift_mu);
    if (!a->drift_text || now - a->drift_at_ms >= DRIFT_CACHE_MS) {
        md_buf b;
        size_t n = 0;
        md_buf_init(&b, 4u << 20);
        drift_render(a, &b, now);
        free(a->drift_text);
        a->drift_text = md_buf_steal(&b, &n);
        a->drift_at_ms = now;
    }
    if (a->drift_text)
        md_buf_puts(out, a->drift_text);
    pthread_mutex_unlock(&a->drift_mu);
}

/* ---- registration ---- */

#define S_ERROR                                                                                    \
    "{\"type\":\"object\",\"required\":[\"code\",\"message\"],\"properties\":{\"code\":{\"type\":" \
    "\"string\"},\"field\":{\"type\":\"string\"},\"message\":{\"type\":\"string\"}}}"
#define S_EXPLANATION                                                                              \
    "{\"type\":[\"object\",\"null\"],\"description\":\"xgboost_treeshap: {method, contributions "  \
    "(per input column, in the model's margin), bias, reasons: [{feature, value, "                 \
    "contribution}]}; null for tasks whose reasons are in the prediction (anomaly) or that run "   \
    "no tree row (budget, forecast)\"}"
#define S_OPTIONS                                                                                  \
    "\"options\":{\"type\":\"object\",\"description\":\"price_response models (pricing): "         \
    "min_price, max_price, steps, unit_cost, quantity\",\"properties\":{\"min_price\":{\"type\":"  \
    "\"number\"},\"max_price\":{\"type\":\"number\"},\"steps\":{\"type\":\"integer\"},"            \
    "\"unit_cost\":{\"type\":\"number\"},\"quantity\":{\"type\":\"number\"}}}"
static const char S_ONE_REQ[] =
    "{\"type\":\"object\",\"required\":[\"features\"],\"additionalProperties\":false,"
    "\"properties\":{\"features\":{\"type\":\"object\",\"description\":\"the model's input_schema "
    "columns by name (GET /api/{model}/models/active/info or GET /api/models/{name}): numbers, "
    "integers, category labels; optional columns may be null. budget: {total, channels?, steps?, "
    "week_of_year?}; demand: {history, last_date, horizon?, weather?, holidays?, "
    "level?}\"}," S_OPTIONS "}}";
static const char S_ONE_RESP[] =
    "{\"type\":\"object\",\"required\":[\"model\",\"version\",\"prediction\",\"explanation\","
    "\"prediction_id\",\"request_id\"],\"properties\":{\"model\":{\"type\":\"string\"},"
    "\"version\":{\"type\":\"string\"},\"prediction\":{\"type\":\"object\",\"description\":\"per "
    "task: classification {probability, predicted, band} or {leak_probability, flagged, pattern, "
    "estimated_amount, band}; regression {value, band, interval_90}; price_response {value, "
    "objective, grid, optimum}; anomaly {score, anomalous, reasons}; budget_allocation {total, "
    "allocation, curves_return, model_prediction, predicted_total, warnings}; forecast "
    "{forecast: [{date, forecast, lower, upper}], level}\"},\"explanation\":" S_EXPLANATION ","
    "\"prediction_id\":{\"type\":\"string\"},\"request_id\":{\"type\":\"string\"}}}";
static const char S_BATCH_REQ[] =
    "{\"type\":\"object\",\"required\":[\"items\"],\"additionalProperties\":false,"
    "\"properties\":{\"items\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":10000,\"items\":"
    "{\"type\":\"object\",\"description\":\"one features object\"}}," S_OPTIONS "}}";
static const char S_BATCH_RESP[] =
    "{\"type\":\"object\",\"required\":[\"model\",\"version\",\"predictions\",\"count\","
    "\"failed\"],\"properties\":{\"model\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},"
    "\"count\":{\"type\":\"integer\",\"description\":\"rows answered\"},\"predictions\":{\"type\":"
    "\"array\",\"items\":{\"type\":\"object\",\"required\":[\"index\",\"prediction\"],"
    "\"properties\":{\"index\":{\"type\":\"integer\"},\"prediction\":{\"type\":\"object\"},"
    "\"explanation\":" S_EXPLANATION "}}},\"failed\":{\"type\":\"array\",\"items\":{\"type\":"
    "\"object\",\"required\":[\"index\",\"error\"],\"properties\":{\"index\":{\"type\":"
    "\"integer\"},\"error\":" S_ERROR "}}},\"request_id\":{\"type\":\"string\"}}}";
static const char S_INFO[] =
    "{\"type\":\"object\",\"required\":[\"model\",\"version\",\"state\",\"task\"],\"properties\":"
    "{\"model\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},\"state\":{\"type\":"
    "\"string\"},\"task\":{\"type\":\"string\"},\"runtime\":{\"type\":\"string\"},\"description\":"
    "{\"type\":\"string\"},\"input_schema\":{\"type\":\"object\"},\"outputs\":{\"type\":\"array\"},"
    "\"metrics\":{\"type\":\"object\"},\"model_card\":{\"type\":\"object\"}}}";
static const char S_HEALTH[] =
    "{\"type\":\"object\",\"required\":[\"model\",\"version\",\"state\",\"serving\"],"
    "\"properties\":{\"model\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},\"state\":"
    "{\"type\":\"string\"},\"serving\":{\"type\":\"boolean\"},\"requests\":{\"type\":\"integer\"},"
    "\"failures\":{\"type\":\"object\"},\"latency_seconds\":{\"type\":\"object\"}}}";
static const http_doc_param P_MODEL[] = {
    {"model", "string", "a model of family predict (churn, pricing, ...)", 1}, {0}};
static const http_doc_param P_MODEL_NAME[] = {
    {"model", "string", "a model of family predict", 1},
    {"name", "string", "a version id, or \"active\" (or the model's name): the serving version", 1},
    {0}};
static const int E_PREDICT[] = {MD_E_MODEL_NOT_FOUND,
                                MD_E_MODEL_UNAVAILABLE,
                                MD_E_INVALID_JSON,
                                MD_E_MISSING_FIELD,
                                MD_E_INVALID_PARAM,
                                MD_E_MODEL_INVALID,
                                0};
static const int E_GET[] = {MD_E_MODEL_NOT_FOUND, MD_E_MODEL_UNAVAILABLE, 0};
static const int E_LOG[] = {
    MD_E_MODEL_NOT_FOUND, MD_E_MODEL_UNAVAILABLE, MD_E_INVALID_PARAM, MD_E_UNAVAILABLE, MD_E_IO, 0};
static const int E_FEEDBACK[] = {
    MD_E_MODEL_NOT_FOUND, MD_E_NOT_FOUND,   MD_E_INVALID_JSON, MD_E_MISSING_FIELD,
    MD_E_INVALID_PARAM,   MD_E_UNAVAILABLE, MD_E_IO,           0};
static const int E_DRIFT[] = {MD_E_MODEL_NOT_FOUND,
                              MD_E_MODEL_UNAVAILABLE,
                              MD_E_INVALID_PARAM,
                              MD_E_UNSUPPORTED,
                              MD_E_UNAVAILABLE,
                              MD_E_IO,
                              0};
static const http_doc_param Q_HISTORY[] = {
    {"from", "integer", "oldest time, ms since 1970 (inclusive; default 0)", 0},
    {"to", "integer", "newest time, ms since 1970 (exclusive; default: no bound)", 0},
    {"limit", "{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,\"default\":50}",
     "entries per page", 0},
    {"offset", "integer", "entries to skip (next_offset of the previous page)", 0},
    {0}};
static const http_doc_param Q_DRIFT[] = {
    {"from", "integer", "window start, ms since 1970 (default: 24 h ago)", 0},
    {"to", "integer", "window end, ms since 1970 (exclusive; default: now)", 0},
    {0}};
static const char S_HISTORY[] =
    "{\"type\":\"object\",\"required\":[\"model\",\"items\",\"count\"],\"properties\":{"
    "\"model\":{\"type\":\"string\"},\"count\":{\"type\":\"integer\"},\"offset\":{\"type\":"
    "\"integer\"},\"limit\":{\"type\":\"integer\"},\"next_offset\":{\"type\":[\"integer\","
    "\"null\"]},\"items\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
    "\"prediction_id\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},\"time_ms\":"
    "{\"type\":\"integer\"},\"inputs\":{\"type\":\"object\"},\"outputs\":{\"type\":"
    "\"object\"},\"actual\":{\"description\":\"the feedback, null when none\"}}}}}}";
static const char S_FEEDBACK_REQ[] =
    "{\"type\":\"object\",\"required\":[\"prediction_id\",\"actual\"],"
    "\"additionalProperties\":false,\"properties\":{\"prediction_id\":{\"type\":\"string\"},"
    "\"actual\":{\"description\":\"the observed outcome (any JSON value)\"}}}";
static const char S_FEEDBACK_RESP[] =
    "{\"type\":\"object\",\"required\":[\"success\",\"prediction_id\"],\"properties\":{"
    "\"success\":{\"type\":\"boolean\"},\"prediction_id\":{\"type\":\"string\"}}}";
static const char S_DRIFT[] =
    "{\"type\":\"object\",\"required\":[\"model\",\"rows\",\"status\",\"features\"],"
    "\"properties\":{\"model\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},"
    "\"rows\":{\"type\":\"integer\"},\"from_ms\":{\"type\":\"integer\"},\"to_ms\":{"
    "\"type\":\"integer\"},\"status\":{\"type\":\"string\",\"enum\":[\"no_data\",\"none\","
    "\"warn\",\"alert\"]},\"features\":{\"type\":\"object\",\"additionalProperties\":{"
    "\"type\":\"object\",\"properties\":{\"psi\":{\"type\":\"number\"},\"ks\":{\"type\":["
    "\"number\",\"null\"]},\"missing\":{\"type\":\"number\"},\"level\":{\"type\":"
    "\"string\"}}}}}}";
static const char S_METRICS[] =
    "{\"type\":\"object\",\"required\":[\"models\"],\"properties\":{\"models\":{\"type\":"
    "\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"model\":{\"type\":"
    "\"string\"},\"version\":{\"type\":\"string\"},\"requests\":{\"type\":\"integer\"},"
    "\"successes\":{\"type\":\"integer\"},\"failures\":{\"type\":\"object\"},"
    "\"latency_seconds\":{\"type\":\"object\"},\"drift\":{\"type\":[\"object\",\"null\"]}}}}}}";

static const api__route ROUTES[] = {
    {"POST",
     "/api/{model}",
     HTTP_ROLE_WRITE,
     HTTP_HEAVY | HTTP_NO_AUDIT,
     predict_one,
     {.summary = "One business prediction with its reasons",
      .tag = "predict",
      .description = "Validated against the model's input_schema (a 400 names the field: "
                     "missing, wrong type, out of range, unknown field, unknown label).",
      .request = S_ONE_REQ,
      .response = S_ONE_RESP,
      .errors = E_PREDICT,
      .path = P_MODEL}},
    {"POST",
     "/api/{model}/batch",
     HTTP_ROLE_WRITE,
     HTTP_HEAVY | HTTP_NO_AUDIT,
     predict_batch,
     {.summary = "Up to 10,000 predictions: good rows answered, bad rows listed",
      .tag = "predict",
      .request = S_BATCH_REQ,
      .response = S_BATCH_RESP,
      .errors = E_PREDICT,
      .path = P_MODEL}},
    {"GET",
     "/api/{model}/models/{name}/info",
     HTTP_ROLE_READ,
     0,
     model_info,
     {.summary = "A prediction model's version: task, input schema, metrics, card",
      .tag = "predict",
      .response = S_INFO,
      .errors = E_GET,
      .path = P_MODEL_NAME}},
    {"GET",
     "/api/{model}/models/{name}/health",
     HTTP_ROLE_READ,
     0,
     model_health,
     {.summary = "A prediction model's version: state, requests, failures, latency",
      .tag = "predict",
      .response = S_HEALTH,
      .errors = E_GET,
      .path = P_MODEL_NAME}},
    {"GET",
     "/api/{model}/history",
     HTTP_ROLE_READ,
     HTTP_HEAVY,
     history,
     {.summary = "The logged predictions of a model, newest first (paged)",
      .tag = "predict",
      .description = "Predictions are logged with their inputs, outputs and version; the "
                     "share logged is the predict_log_sample setting.",
      .query = Q_HISTORY,
      .response = S_HISTORY,
      .errors = E_LOG,
      .path = P_MODEL}},
    {"POST",
     "/api/{model}/feedback",
     HTTP_ROLE_WRITE,
     HTTP_HEAVY | HTTP_NO_AUDIT,
     feedback,
     {.summary = "Record the observed outcome of a logged prediction",
      .tag = "predict",
      .request = S_FEEDBACK_REQ,
      .response = S_FEEDBACK_RESP,
      .errors = E_FEEDBACK,
      .path = P_MODEL}},
    {"GET",
     "/api/{model}/drift",
     HTTP_ROLE_READ,
     HTTP_HEAVY,
     drift,
     {.summary = "Per-feature PSI and KS of the logged inputs against the training data",
      .tag = "predict",
      .description = "Alert levels by PSI: none < 0.1 <= warn < 0.25 <= alert.",
      .query = Q_DRIFT,
      .response = S_DRIFT,
      .errors = E_DRIFT,
      .path = P_MODEL}},
    {"GET",
     "/api/admin/metrics",
     HTTP_ROLE_ADMIN,
     HTTP_HEAVY,
     admin_metrics,
     {.summary = "Per prediction model: requests, failures, latency and drift status (24 h)",
      .tag = "predict",
      .response = S_METRICS}},
};

int api_predict_register(http_server *srv, const api_predict_opts *o, api_predict **out,
                         md_err *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    (*out)->reg = o->reg;
    (*out)->st = o->st;
    (*out)->log_sample = o->log_sample;
    pthread_mutex_init(&(*out)->drift_mu, NULL);
    int rc = api__add_routes(srv, ROUTES, sizeof ROUTES / sizeof ROUTES[0], 0, *out, NULL, err);
    if (rc == MD_OK && o->st && http_metrics_collector(srv, drift_metrics, *out) != MD_OK)
        rc = md_fail(err, MD_E_INTERNAL, NULL, "cannot register the drift metrics");
    return rc;
}

void api_predict_free(api_predict *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->drift_mu);
    free(a->drift_text);
    free(a);
}
