/* models_api.c - GET /api/models, GET /api/models/{name} and the admin routes that activate,
 * canary, promote and roll back versions (see models_api.h).
 *
 * Invariants:
 *   1. Handlers only parse, call one registry function and render; the registry serialises
 *      management calls and persists their result, so two admins racing get a consistent
 *      outcome (the later call wins) and the answer shows the state after the caller's change.
 *   2. Management routes run on the compute pool (HTTP_HEAVY): activating a version loads and
 *      validates it, which may take far longer than an I/O thread may block.
 */
#include "api/models_api.h"

#include "api/api_int.h"

#include <stdio.h>
#include <string.h>

static int list_models(http_req *req, void *ctx)
{
    json_t *all = mdl_describe_all(ctx);
    if (!all)
        return md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    return http_reply_json(req, 200, json_pack("{s:b, s:o}", "success", 1, "models", all));
}

/* {"success": true, "model": <mdl_describe of name>}. */
static int reply_model(http_req *req, mdl_registry *reg, const char *name, const char *version)
{
    json_t *d = NULL;
    int rc = mdl_describe(reg, name, version, &d, http_req_err(req));
    if (rc != MD_OK)
        return rc;
    return http_reply_json(req, 200, json_pack("{s:b, s:o}", "success", 1, "model", d));
}

static int get_model(http_req *req, void *ctx)
{
    const char *version = http_req_query(req, "version");
    if (version && !*version)
        return md_fail(http_req_err(req), MD_E_INVALID_PARAM, "version", "version must not be empty");
    return reply_model(req, ctx, http_req_param(req, "name"), version);
}

static int activate(http_req *req, void *ctx)
{
    const char *name = http_req_param(req, "name"), *v = http_req_param(req, "v");
    int rc = mdl_activate(ctx, name, v, http_req_err(req));
    if (rc != MD_OK)
        return rc;
    http_req_log(req, MD_LOG_INFO, "model %s: version %s activated", name, v);
    return reply_model(req, ctx, name, NULL);
}

/* {"percent": 0..100} (a JSON number; nothing else). */
static int canary_percent(http_req *req, double *out)
{
    json_t *body = NULL;
    int rc = http_req_json(req, &body);
    if (rc != MD_OK)
        return rc;
    json_t *p = json_object_get(body, "percent");
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "percent") != 0) {
            char field[64];
            snprintf(field, sizeof field, "%s", key);
            json_decref(body);
            return md_fail(http_req_err(req), MD_E_INVALID_PARAM, field, "unknown field \"%s\"", field);
        }
    }
    if (!p)
        rc = md_fail(http_req_err(req), MD_E_MISSING_FIELD, "percent", "percent (0..100) is required");
    else if (!json_is_number(p) || json_number_value(p) < 0 || json_number_value(p) > 100)
        rc = md_fail(http_req_err(req), MD_E_INVALID_PARAM, "percent", "percent must be a number in 0..100");
    else
        *out = json_number_value(p);
    json_decref(body);
    return rc;
}

static int canary(http_req *req, void *ctx)
{
    const char *name = http_req_param(req, "name"), *v = http_req_param(req, "v");
    double pct = 0;
    int rc = canary_percent(req, &pct);
    if (rc == MD_OK)
        rc = mdl_canary(ctx, name, v, pct, http_req_err(req));
    if (rc != MD_OK)
        return rc;
    http_req_log(req, MD_LOG_INFO, "model %s: version %s canary at %g%%", name, v, pct);
    return reply_model(req, ctx, name, NULL);
}

static int promote(http_req *req, void *ctx)
{
    const char *name = http_req_param(req, "name");
    int rc = mdl_promote(ctx, name, http_req_err(req));
    if (rc != MD_OK)
        return rc;
    http_req_log(req, MD_LOG_INFO, "model %s: canary promoted", name);
    return reply_model(req, ctx, name, NULL);
}

static int rollback(http_req *req, void *ctx)
{
    const char *name = http_req_param(req, "name");
    int rc = mdl_rollback(ctx, name, http_req_err(req));
    if (rc != MD_OK)
        return rc;
    http_req_log(req, MD_LOG_INFO, "model %s: rolled back", name);
    return reply_model(req, ctx, name, NULL);
}

int api_models_ready(void *reg, md_err *err)
{
    char missing[MDL_NAME_MAX] = "";
    if (mdl_ready(reg, missing))
        return MD_OK;
    return md_fail(err, MD_E_MODEL_UNAVAILABLE, NULL, "required model '%s' is not active", missing);
}

#ifndef MODELD_SOURCE_MODELS_DIR
#define MODELD_SOURCE_MODELS_DIR NULL
#endif

int api_models_find_dir(const char *dir, char *out, size_t cap, md_err *err)
{
    static const char *const beside_exe[] = {"../../models", "../models", "../share/modeld/models",
                                             NULL};
    static const api__dir_search where = {.beside_exe = beside_exe,
                                          .source = MODELD_SOURCE_MODELS_DIR};
    if (api__find_dir(dir, &where, out, cap))
        return MD_OK;
    return md_fail(err, MD_E_FILE_NOT_FOUND, "models_dir", dir && *dir ? "the models_dir is not a directory"
                                                                       : "no shipped models/ directory found");
}

/* ---- registration ---- */

#define S_VERSION                                                                                               \
    "{\"type\":\"object\",\"required\":[\"version\",\"state\"],\"properties\":{\"version\":{\"type\":\"string\"}," \
    "\"state\":{\"type\":\"string\",\"enum\":[\"UNLOADED\",\"LOADING\",\"VALIDATING\",\"READY\",\"ACTIVE\","     \
    "\"CANARY\",\"STANDBY\",\"RETIRED\",\"FAILED\"]},\"reason\":{\"type\":\"string\"}}}"
#define S_MODEL_PROPS                                                                                           \
    "\"name\":{\"type\":\"string\"},\"family\":{\"type\":\"string\",\"enum\":[\"generic\",\"vectorize\","       \
    "\"enhance\",\"predict\"]},\"runtime\":{\"type\":\"string\"},\"active_version\":{\"type\":[\"string\","      \
    "\"null\"]},\"canary_version\":{\"type\":[\"string\",\"null\"]},\"canary_percent\":{\"type\":\"number\"},"   \
    "\"state\":{\"type\":\"string\"},\"required\":{\"type\":\"boolean\"},\"versions\":{\"type\":\"array\","      \
    "\"items\":" S_VERSION "}"
#define S_MODEL                                                                                                 \
    "{\"type\":\"object\",\"required\":[\"name\",\"family\",\"state\",\"versions\"],\"properties\":{" S_MODEL_PROPS "}}"
#define S_MODEL_FULL                                                                                            \
    "{\"type\":\"object\",\"required\":[\"name\",\"family\",\"state\",\"versions\"],\"properties\":{" S_MODEL_PROPS \
    ",\"manifest\":{\"type\":\"object\",\"description\":\"the version's modeld.json\"},\"stats\":{\"type\":"    \
    "\"object\",\"description\":\"per version: requests, successes, failures by reason, latency, queue time, "   \
    "memory, load and validation time\"}}}"

static const char S_LIST[] = "{\"type\":\"object\",\"required\":[\"success\",\"models\"],\"properties\":{\"success\":"
                             "{\"type\":\"boolean\"},\"models\":{\"type\":\"array\",\"items\":" S_MODEL "}}}";
static const char S_ONE[] = "{\"type\":\"object\",\"required\":[\"success\",\"model\"],\"properties\":{\"success\":"
                            "{\"type\":\"boolean\"},\"model\":" S_MODEL_FULL "}}";
static const char S_CANARY_REQ[] = "{\"type\":\"object\",\"required\":[\"percent\"],\"additionalProperties\":false,"
                                   "\"properties\":{\"percent\":{\"type\":\"number\",\"minimum\":0,\"maximum\":100}}}";
static const http_doc_param Q_VERSION[] = {{"version", "string", "describe this version (default: the active one)", 0},
                                           {NULL, NULL, NULL, 0}};
static const int E_GET[] = {MD_E_MODEL_NOT_FOUND, MD_E_INVALID_PARAM, 0};
static const int E_CHANGE[] = {MD_E_MODEL_NOT_FOUND, MD_E_MODEL_INVALID, MD_E_CONFLICT, 0};
static const int E_CANARY[] = {MD_E_MODEL_NOT_FOUND, MD_E_MODEL_INVALID, MD_E_CONFLICT, MD_E_INVALID_JSON,
                               MD_E_MISSING_FIELD, MD_E_INVALID_PARAM, 0};

static const api__route ROUTES[] = {
    {"GET", "/api/models", HTTP_ROLE_READ, 0, list_models,
     {.summary = "Every model: family, active version, canary, state and versions", .tag = "models",
      .response = S_LIST}},
    {"GET", "/api/models/{name}", HTTP_ROLE_READ, 0, get_model,
     {.summary = "One model with its manifest and statistics", .tag = "models", .response = S_ONE,
      .query = Q_VERSION, .errors = E_GET}},
    {"POST", "/api/models/{name}/versions/{v}/activate", HTTP_ROLE_ADMIN, HTTP_HEAVY, activate,
     {.summary = "Load, validate and publish a version as ACTIVE (the previous one stays as STANDBY)",
      .tag = "models", .response = S_ONE, .errors = E_CHANGE}},
    {"POST", "/api/models/{name}/versions/{v}/canary", HTTP_ROLE_ADMIN, HTTP_HEAVY, canary,
     {.summary = "Route a percentage of the model's requests to a version (0 ends the canary)", .tag = "models",
      .request = S_CANARY_REQ, .response = S_ONE, .errors = E_CANARY}},
    {"POST", "/api/models/{name}/promote", HTTP_ROLE_ADMIN, HTTP_HEAVY, promote,
     {.summary = "Make the canary version the active one", .tag = "models", .response = S_ONE,
      .errors = E_CHANGE}},
    {"POST", "/api/models/{name}/rollback", HTTP_ROLE_ADMIN, HTTP_HEAVY, rollback,
     {.summary = "Make the previous active version active again (a canary is ended first)", .tag = "models",
      .description = "The newest STANDBY version; with none loaded (after a restart), the version the store "
                     "remembers as active before the current one, loaded and validated first (a failure "
                     "leaves the active version serving).",
      .response = S_ONE, .errors = E_CHANGE}},
};

int api_models_register(http_server *srv, mdl_registry *reg, md_err *err)
{
    return api__add_routes(srv, ROUTES, sizeof ROUTES / sizeof ROUTES[0], 0, reg, NULL, err);
}
