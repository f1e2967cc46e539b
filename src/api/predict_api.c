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

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

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

/* "p_" + 32 hex digits from the kernel's random source. */
static int prediction_id(char out[40], md_err *err)
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        return md_fail(err, MD_E_INTERNAL, NULL, "no random source");
    out[0] = 'p';
    out[1] = '_';
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 + 2 * i, 3, "%02x", b[i]);
    return MD_OK;
}

static int predict_one(http_req *req, void *ctx)
{
    json_t *body = NULL, *features = NULL, *opts = NULL, *out = NULL;
    pl_ctx cx = {.models = ctx};
    char pid[40];
    int rc = read_body(req, "features", &body, &features, &opts);
    if (rc == MD_OK)
        rc = pl_predict(&cx, http_req_param(req, "model"), features, opts, &out,
                        http_req_err(req));
    if (rc == MD_OK)
        rc = prediction_id(pid, http_req_err(req));
    json_decref(body);
    if (rc != MD_OK) {
        json_decref(out);
        return rc;
    }
    json_object_set_new(out, "prediction_id", json_string(pid));
    json_object_set_new(out, "request_id", json_string(http_req_id(req)));
    return http_reply_json(req, 200, out);
}

static int predict_batch(http_req *req, void *ctx)
{
    json_t *body = NULL, *items = NULL, *opts = NULL, *out = NULL;
    pl_ctx cx = {.models = ctx};
    int rc = read_body(req, "items", &body, &items, &opts);
    if (rc == MD_OK)
        rc = pl_predict_batch(&cx, http_req_param(req, "model"), items, opts, &out,
                              http_req_err(req));
    json_decref(body);
    if (rc != MD_OK)
        return rc;
    json_object_set_new(out, "request_id", json_string(http_req_id(req)));
    return http_reply_json(req, 200, out);
}

/* The predict model {model}, version {name} ("active" or the model's name: the serving one). */
static int acquire(http_req *req, mdl_registry *reg, mdl_version **v)
{
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
        mf->version, "state", mdl_state_name(mdl_version_state(v)), "task",
        pl_predict_task(mf), "runtime", mf->runtime, "description",
        json_object_get(doc, "description"), "input_schema", json_object_get(doc, "input_schema"),
        "outputs", json_object_get(doc, "outputs"), "metrics", json_object_get(doc, "metrics"),
        "model_card", json_object_get(doc, "model_card"));
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
    rc = mdl_describe(ctx, mdl_version_name(v), ver, &d, http_req_err(req));
    if (rc == MD_OK)
        stats = json_object_get(json_object_get(d, "stats"), ver);
    json_t *out = rc == MD_OK ? json_pack("{s:s, s:s, s:s, s:b, s:O*, s:O*, s:O*}", "model",
                                          mdl_version_name(v), "version", ver, "state",
                                          mdl_state_name(st), "serving",
                                          st == MDL_ACTIVE || st == MDL_CANARY, "requests",
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

/* ---- registration ---- */

#define S_ERROR                                                                                    \
    "{\"type\":\"object\",\"required\":[\"code\",\"message\"],\"properties\":{\"code\":{\"type\":" \
    "\"string\"},\"field\":{\"type\":\"string\"},\"message\":{\"type\":\"string\"}}}"
#define S_EXPLANATION                                                                              \
    "{\"type\":[\"object\",\"null\"],\"description\":\"xgboost_treeshap: {method, contributions " \
    "(per input column, in the model's margin), bias, reasons: [{feature, value, "                 \
    "contribution}]}; null for tasks whose reasons are in the prediction (anomaly) or that run "   \
    "no tree row (budget, forecast)\"}"
#define S_OPTIONS                                                                                  \
    "\"options\":{\"type\":\"object\",\"description\":\"price_response models (pricing): "         \
    "min_price, max_price, steps, unit_cost, quantity\",\"properties\":{\"min_price\":{\"type\":"  \
    "\"number\"},\"max_price\":{\"type\":\"number\"},\"steps\":{\"type\":\"integer\"},"             \
    "\"unit_cost\":{\"type\":\"number\"},\"quantity\":{\"type\":\"number\"}}}"
static const char S_ONE_REQ[] =
    "{\"type\":\"object\",\"required\":[\"features\"],\"additionalProperties\":false,"
    "\"properties\":{\"features\":{\"type\":\"object\",\"description\":\"the model's input_schema "
    "columns by name (GET /api/{model}/models/active/info or GET /api/models/{name}): numbers, "
    "integers, category labels; optional columns may be null. budget: {total, channels?, steps?, "
    "week_of_year?}; demand: {history, last_date, horizon?, weather?, holidays?, level?}\"},"
    S_OPTIONS "}}";
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
static const int E_PREDICT[] = {MD_E_MODEL_NOT_FOUND, MD_E_MODEL_UNAVAILABLE, MD_E_INVALID_JSON,
                                MD_E_MISSING_FIELD, MD_E_INVALID_PARAM, MD_E_MODEL_INVALID, 0};
static const int E_GET[] = {MD_E_MODEL_NOT_FOUND, MD_E_MODEL_UNAVAILABLE, 0};

static const api__route ROUTES[] = {
    {"POST", "/api/{model}", HTTP_ROLE_WRITE, HTTP_HEAVY | HTTP_NO_AUDIT, predict_one,
     {.summary = "One business prediction with its reasons", .tag = "predict",
      .description = "Validated against the model's input_schema (a 400 names the field: "
                     "missing, wrong type, out of range, unknown field, unknown label).",
      .request = S_ONE_REQ, .response = S_ONE_RESP, .errors = E_PREDICT, .path = P_MODEL}},
    {"POST", "/api/{model}/batch", HTTP_ROLE_WRITE, HTTP_HEAVY | HTTP_NO_AUDIT, predict_batch,
     {.summary = "Up to 10,000 predictions: good rows answered, bad rows listed", .tag = "predict",
      .request = S_BATCH_REQ, .response = S_BATCH_RESP, .errors = E_PREDICT, .path = P_MODEL}},
    {"GET", "/api/{model}/models/{name}/info", HTTP_ROLE_READ, 0, model_info,
     {.summary = "A prediction model's version: task, input schema, metrics, card",
      .tag = "predict", .response = S_INFO, .errors = E_GET, .path = P_MODEL_NAME}},
    {"GET", "/api/{model}/models/{name}/health", HTTP_ROLE_READ, 0, model_health,
     {.summary = "A prediction model's version: state, requests, failures, latency",
      .tag = "predict", .response = S_HEALTH, .errors = E_GET, .path = P_MODEL_NAME}},
};

int api_predict_register(http_server *srv, mdl_registry *reg, md_err *err)
{
    return api__add_routes(srv, ROUTES, sizeof ROUTES / sizeof ROUTES[0], 0, reg, NULL, err);
}
