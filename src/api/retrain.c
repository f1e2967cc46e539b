/* retrain.c - POST /api/admin/retrain (admission: pl_retrain_check, then one durable job) and
 * the "retrain" job kind's run (pl_retrain on a worker thread); see retrain.h.
 *
 * Invariants:
 *   1. Nothing is queued unless pl_retrain_check passed: the errors a client can fix (model,
 *      data, columns, params) come back synchronously; the job only meets what can change in
 *      between (a dataset deleted, feedback rows that turn out unusable) or training failures.
 *   2. The job's parameters are plain JSON ({model, data, params, canary_percent}); the run
 *      reads nothing else from the request, so a `modeld worker` runs it the same way.
 *   3. Training uses one thread (nthread 1): a retraining job shares the machine with requests.
 */
#include "api/retrain.h"

#include "api/api_int.h"
#include "api/jobs_api.h"
#include "pipelines/pipelines.h"

#include <stdlib.h>
#include <string.h>

struct api_retrain {
    api_retrain_opts o;
};

/* ---- the run ------------------------------------------------------------------------------ */

static int in_from_params(const json_t *p, pl_retrain_in *in)
{
    memset(in, 0, sizeof *in);
    in->model = json_string_value(json_object_get(p, "model"));
    in->data = json_string_value(json_object_get(p, "data"));
    in->params = json_object_get(p, "params");
    in->canary_percent = json_number_value(json_object_get(p, "canary_percent"));
    in->nthread = 1; /* invariant 3 */
    return in->model && in->data ? MD_OK : MD_E_MISSING_FIELD;
}

int api_retrain_run(job_run *r, void *user)
{
    api_bulk_kind *k = user;
    md_err *err = job_run_err(r);
    json_t *p = json_loads(job_run_info(r)->params, 0, NULL);
    pl_retrain_in in;
    if (!p || in_from_params(p, &in) != MD_OK) {
        json_decref(p);
        return md_fail(err, MD_E_MISSING_FIELD, "model", "the job names no model or data");
    }
    pl_ctx cx = {.st = k->st,
                 .models = k->models,
                 .cancel = job_run_cancel(r),
                 .trace = job_run_trace(r)};
    json_t *out = NULL;
    int rc = pl_retrain(&cx, &in, &out, err);
    char *text = rc == MD_OK ? json_dumps(out, JSON_COMPACT) : NULL;
    /* the metadata is the outcome too, with the format that makes the result's media type */
    if (text)
        json_object_set_new(out, "format", json_string("json"));
    char *meta = text ? json_dumps(out, JSON_COMPACT) : NULL;
    if (rc == MD_OK && !meta)
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK)
        rc = job_run_set_result(r, text, strlen(text), meta, err);
    free(text);
    free(meta);
    json_decref(out);
    json_decref(p);
    return rc;
}

/* ---- admission ---------------------------------------------------------------------------- */

static int opt_type(const json_t *body, const char *name, int (*is)(const json_t *),
                    const char *what, md_err *err)
{
    const json_t *v = json_object_get(body, name);
    if (v && !json_is_null(v) && !is(v))
        return md_fail(err, MD_E_INVALID_PARAM, name, "must be %s", what);
    return MD_OK;
}

static int is_string(const json_t *v)
{
    return json_is_string(v);
}
static int is_object(const json_t *v)
{
    return json_is_object(v);
}
static int is_number(const json_t *v)
{
    return json_is_number(v);
}

/* The body's fields into in (borrowed from body); types checked here, values by pl_retrain. */
static int parse_body(const json_t *body, double def_pct, pl_retrain_in *in, md_err *err)
{
    static const char *const known[] = {"model", "data", "params", "canary_percent"};
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        size_t i = 0;
        while (i < 4 && strcmp(known[i], k) != 0)
            i++;
        if (i == 4)
            return md_fail(err, MD_E_INVALID_PARAM, k, "%.48s is not a field of this request", k);
    }
    int rc = opt_type(body, "model", is_string, "a string", err);
    rc = rc ? rc : opt_type(body, "data", is_string, "a string", err);
    rc = rc ? rc : opt_type(body, "params", is_object, "an object", err);
    rc = rc ? rc : opt_type(body, "canary_percent", is_number, "a number", err);
    if (rc != MD_OK)
        return rc;
    memset(in, 0, sizeof *in);
    in->model = json_string_value(json_object_get(body, "model"));
    in->data = json_string_value(json_object_get(body, "data"));
    in->params = json_object_get(body, "params");
    json_t *pct = json_object_get(body, "canary_percent");
    in->canary_percent = json_is_number(pct) ? json_number_value(pct) : def_pct;
    if (!in->model)
        return md_fail(err, MD_E_MISSING_FIELD, "model", "the model to retrain is needed");
    if (json_is_number(pct) && !(in->canary_percent > 0 && in->canary_percent <= 100))
        return md_fail(err, MD_E_INVALID_PARAM, "canary_percent", "must be in (0, 100]");
    return MD_OK;
}

static int submit(api_retrain *a, http_req *req, const pl_retrain_in *in, job_info *j)
{
    md_err *err = http_req_err(req);
    json_t *p =
        json_pack("{s:s, s:s, s:O?, s:f}", "model", in->model, "data", in->data, "params",
                  in->params, "canary_percent", in->canary_percent > 0 ? in->canary_percent : 10.0);
    char *params = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    if (!params)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (strlen(params) >= STORE_JOB_PARAMS_MAX) {
        free(params);
        return md_fail(err, MD_E_INVALID_PARAM, "params", "too large");
    }
    job_submit_in s = {
        .kind = API_RETRAIN_KIND, .owner = http_req_identity(req)->key_id, .params_json = params,
        .trace = http_req_trace(req)};
    int rc = job_submit(a->o.jq, &s, j, err);
    free(params);
    return rc;
}

static int post_retrain(http_req *req, void *ctx)
{
    api_retrain *a = ctx;
    md_err *err = http_req_err(req);
    json_t *body = NULL;
    int rc = http_req_json(req, &body);
    if (rc != MD_OK)
        return rc;
    pl_retrain_in in;
    pl_ctx cx = {.st = a->o.st, .models = a->o.reg};
    rc = parse_body(body, a->o.canary_percent, &in, err);
    if (rc == MD_OK)
        rc = pl_retrain_check(&cx, &in, err); /* invariant 1 */
    job_info *j = md_arena_alloc(http_req_arena(req), sizeof *j);
    if (rc == MD_OK && !j)
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK)
        rc = submit(a, req, &in, j);
    if (rc == MD_OK)
        http_req_log(req, MD_LOG_INFO, "retrain job %s queued (%s from %s)", j->id, in.model,
                     in.data);
    json_decref(body);
    if (rc != MD_OK)
        return rc;
    return api_job_reply(req, 202, j);
}

/* ---- the route table ------------------------------------------------------------------------ */

static const char S_REQ[] =
    "{\"type\":\"object\",\"required\":[\"model\",\"data\"],\"additionalProperties\":false,"
    "\"properties\":{"
    "\"model\":{\"type\":\"string\",\"description\":\"a retrainable predict model (its manifest's "
    "training.retrainable): churn, profitability, pricing, revenue-leak\"},"
    "\"data\":{\"type\":\"string\",\"description\":\"a stored dataset id (d_..., POST "
    "/api/admin/datasets) with the model's columns and its label column, or \\\"feedback\\\": "
    "the logged predictions with feedback (at least training.min_feedback_rows, 50)\"},"
    "\"params\":{\"type\":\"object\",\"description\":\"overrides of the manifest's "
    "hyper-parameters\",\"additionalProperties\":false,\"properties\":{"
    "\"rounds\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":5000},"
    "\"eta\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":1},"
    "\"max_depth\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":16},"
    "\"subsample\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":1},"
    "\"colsample_bytree\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":1},"
    "\"min_child_weight\":{\"type\":\"number\",\"minimum\":0},"
    "\"lambda\":{\"type\":\"number\",\"minimum\":0},\"alpha\":{\"type\":\"number\",\"minimum\":0},"
    "\"gamma\":{\"type\":\"number\",\"minimum\":0},\"seed\":{\"type\":\"integer\",\"minimum\":0}}},"
    "\"canary_percent\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":100,"
    "\"description\":\"share of requests the new version gets when it is better (default "
    "10)\"}}}";
static const char S_RESP[] =
    "{\"type\":\"object\",\"required\":[\"job_id\",\"status\",\"links\"],\"properties\":{"
    "\"job_id\":{\"type\":\"string\"},\"status\":{\"const\":\"QUEUED\"},"
    "\"links\":{\"type\":\"object\",\"properties\":{\"self\":{\"type\":\"string\"},"
    "\"result\":{\"type\":\"string\",\"description\":\"the outcome as JSON: model, version, "
    "parent_version, state (CANARY or STANDBY), metric, new, active, better, trained_from, "
    "train_rows, validation_rows (held back to calibrate), test_overlap_rows (rows equal to "
    "test-split rows, left out), test_rows, rounds, train_seconds, and for models with a "
    "decision threshold: threshold (recalibrated) and parent_threshold\"}}}}}";
static const int E_RETRAIN[] = {MD_E_INVALID_JSON,      MD_E_MISSING_FIELD,
                                MD_E_INVALID_PARAM,     MD_E_NOT_FOUND,
                                MD_E_MODEL_NOT_FOUND,   MD_E_UNSUPPORTED,
                                MD_E_FORBIDDEN,         MD_E_OVERLOADED,
                                MD_E_MODEL_UNAVAILABLE, 0};

static const api__route ROUTES[] = {
    {"POST",
     "/api/admin/retrain",
     HTTP_ROLE_ADMIN,
     HTTP_HEAVY, /* the check may load the model and count the feedback rows */
     post_retrain,
     {.summary = "Retrain a predict model on a stored dataset or on feedback (a durable job)",
      .tag = "predict",
      .description =
          "Trains a new version in process with libxgboost (the manifest's objective, "
          "parameters and rounds), evaluates it and the active version on the active version's "
          "held test split with the model's metric (AUC for classifiers, MAE for regressors), "
          "and installs it as CANARY (canary_percent of the requests) when it is better, else as "
          "STANDBY. It is never activated automatically: promote it with the model routes. "
          "Rows equal to rows of the held test split are left out (counted in "
          "test_overlap_rows; a dataset with nothing else fails naming `data`), a seeded 20 % "
          "of the rest is held back as a validation split, and what the manifest calibrates on "
          "it is recomputed there and served by the new version: the F1-optimal decision "
          "threshold (churn, revenue-leak), profitability's interval quantiles, pricing's "
          "willingness-to-pay fit. "
          "Follow the job at GET /api/v1/jobs/{id} (stages reading, training, evaluating, "
          "installing); models whose training is not one booster on their schema (budget, "
          "demand, anomaly) answer 422 naming `model`.",
      .request = S_REQ,
      .response = S_RESP,
      .status = 202,
      .errors = E_RETRAIN}},
};

int api_retrain_register(http_server *srv, const api_retrain_opts *o, api_retrain **out,
                         md_err *err)
{
    *out = NULL;
    api_retrain *a = calloc(1, sizeof *a);
    if (!a)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    a->o = *o;
    int rc = api__add_routes(srv, ROUTES, 1, 0, a, NULL, err);
    if (rc != MD_OK) {
        free(a);
        return rc;
    }
    *out = a;
    return MD_OK;
}

void api_retrain_free(api_retrain *a)
{
    free(a);
}
