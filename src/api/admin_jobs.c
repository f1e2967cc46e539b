/* admin_jobs.c - the admin routes over schedules and jobs (see admin_jobs.h): parse, one call
 * into src/jobs, render.
 *
 * Invariants:
 *   1. Every field of a schedule is validated by src/jobs (job_schedule_add: cron, kind, sizes,
 *      the callback allow-list); this file only checks the JSON types, so a bad value is
 *      refused with the same message whoever creates the schedule.
 *   2. Listing filtered by model filters each page of the store's listing (the model is a job
 *      parameter, not a column): a page may hold fewer than limit jobs, and next_cursor still
 *      continues exactly where the page ended.
 */
#include "api/admin_jobs.h"

#include "api/api_int.h"
#include "api/convert_int.h"
#include "api/jobs_api.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- schedules --------------------------------------------------------------------------------
 */

static json_t *time_or_null(int64_t ms)
{
    if (ms <= 0 || ms == INT64_MAX)
        return json_null();
    char buf[32];
    api__iso_time(ms, buf);
    return json_string(buf);
}

static json_t *schedule_json(const job_schedule *s)
{
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s?, s:s, s:o, s:o, s:s?, s:o}", "schedule_id", s->id, "model",
        s->model, "cron", s->cron, "input", s->input, "kind", s->kind, "callback_url",
        s->callback_url[0] ? s->callback_url : NULL, "owner", s->owner, "next_run",
        time_or_null(s->next_run_ms), "last_run", time_or_null(s->last_run_ms), "last_job_id",
        s->last_job_id[0] ? s->last_job_id : NULL, "created_at", time_or_null(s->created_ms));
}

/* The string field name of o: NULL when absent or null; MD_E_INVALID_PARAM when not a string. */
static int opt_string(json_t *o, const char *name, const char **out, md_err *err)
{
    json_t *v = json_object_get(o, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return MD_OK;
    if (!json_is_string(v))
        return md_fail(err, MD_E_INVALID_PARAM, name, "must be a string");
    *out = json_string_value(v);
    return MD_OK;
}

static int post_schedule(http_req *req, void *ctx)
{
    md_err *err = http_req_err(req);
    json_t *body = NULL;
    int rc = http_req_json(req, &body);
    if (rc != MD_OK)
        return rc;
    job_schedule_in in = {.owner = http_req_identity(req)->key_id, .kind = API_BULK_KIND};
    rc = opt_string(body, "model", &in.model, err);
    rc = rc ? rc : opt_string(body, "cron", &in.cron, err);
    rc = rc ? rc : opt_string(body, "input", &in.input, err);
    rc = rc ? rc : opt_string(body, "callback_url", &in.callback_url, err);
    job_schedule s;
    if (rc == MD_OK)
        rc = job_schedule_add(ctx, &in, &s, err);
    json_decref(body);
    if (rc != MD_OK)
        return rc;
    json_t *o = schedule_json(&s);
    return o ? http_reply_json(req, 201, o) : md_fail(err, MD_E_NOMEM, NULL, NULL);
}

static int list_schedules(http_req *req, void *ctx)
{
    job_schedule *list = NULL;
    size_t n = 0;
    int rc = job_schedule_list(ctx, &list, &n, http_req_err(req));
    if (rc != MD_OK)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (json_array_append_new(arr, schedule_json(&list[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(list);
    json_t *o = arr ? json_pack("{s:o, s:I}", "schedules", arr, "count", (json_int_t)n) : NULL;
    return o ? http_reply_json(req, 200, o) : md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
}

static int delete_schedule(http_req *req, void *ctx)
{
    const char *id = http_req_param(req, "id");
    int rc = job_schedule_delete(ctx, id, http_req_err(req));
    if (rc != MD_OK)
        return rc;
    json_t *o = json_pack("{s:s, s:b}", "schedule_id", id, "deleted", 1);
    return o ? http_reply_json(req, 200, o) : md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
}

/* ---- jobs -------------------------------------------------------------------------------------
 */

/* limit, cursor, state and kind of the query into f. */
static int parse_filter(http_req *req, job_filter *f)
{
    md_err *err = http_req_err(req);
    const char *limit = http_req_query(req, "limit"), *cursor = http_req_query(req, "cursor");
    const char *state = http_req_query(req, "state"), *kind = http_req_query(req, "kind");
    char *end = NULL;
    *f = (job_filter){.state = -1, .limit = 50, .kind = kind && kind[0] ? kind : NULL};
    if (limit) {
        long v = strtol(limit, &end, 10);
        if (!limit[0] || *end || v < 1 || v > 1000)
            return md_fail(err, MD_E_INVALID_PARAM, "limit", "must be an integer in 1..1000");
        f->limit = (size_t)v;
    }
    if (cursor) {
        long long v = strtoll(cursor, &end, 10);
        if (!cursor[0] || *end || v < 0)
            return md_fail(err, MD_E_INVALID_PARAM, "cursor", "must be a next_cursor given before");
        f->before = v;
    }
    if (state && state[0]) {
        f->state = store_job_state_parse(state);
        if (f->state < 0)
            return md_fail(err, MD_E_INVALID_PARAM, "state",
                           "must be QUEUED, PROCESSING, SUCCESS, FAILURE or CANCELLED");
    }
    return MD_OK;
}

/* Does job j's "model" parameter equal model (invariant 2)? */
static int model_matches(const job_info *j, const char *model)
{
    json_t *p = json_loads(j->params, 0, NULL);
    const char *m = json_string_value(json_object_get(p, "model"));
    int ok = m && strcmp(m, model) == 0;
    json_decref(p);
    return ok;
}

static int list_jobs(http_req *req, void *ctx)
{
    job_filter f;
    int rc = parse_filter(req, &f);
    if (rc != MD_OK)
        return rc;
    const char *model = http_req_query(req, "model");
    job_info *list = NULL;
    size_t n = 0;
    int64_t next = 0;
    rc = job_list(ctx, &f, &list, &n, &next, http_req_err(req));
    if (rc != MD_OK)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (model && model[0] && !model_matches(&list[i], model))
            continue;
        json_array_append_new(arr, api_job_json(&list[i]));
    }
    free(list);
    json_t *o = arr ? json_pack("{s:o, s:o}", "jobs", arr, "next_cursor",
                                next > 0 ? json_integer(next) : json_null())
                    : NULL;
    return o ? http_reply_json(req, 200, o) : md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
}

static json_t *callback_json(jobs *jq, const char *id)
{
    static const char *const states[] = {"pending", "delivered", "failed"};
    job_callback cb;
    if (job_callback_get(jq, id, &cb, NULL) != MD_OK)
        return json_null();
    return json_pack("{s:s, s:s, s:i, s:s?, s:o}", "url", cb.url, "state",
                     states[cb.state >= 0 && cb.state < 3 ? cb.state : 0], "attempts", cb.attempts,
                     "last_error", cb.last_error[0] ? cb.last_error : NULL, "next_try",
                     cb.state == STORE_CB_PENDING ? time_or_null(cb.next_try_ms) : json_null());
}

static int get_job(http_req *req, void *ctx)
{
    job_info *j = md_arena_alloc(http_req_arena(req), sizeof *j);
    if (!j)
        return md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    int rc = job_get(ctx, http_req_param(req, "id"), j, http_req_err(req));
    if (rc != MD_OK)
        return rc;
    json_t *o = api_job_json(j);
    if (o)
        json_object_set_new(o, "callback", callback_json(ctx, j->id));
    return o ? http_reply_json(req, 200, o) : md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
}

/* ---- route table ------------------------------------------------------------------------------
 */

#define S_TIME "{\"type\":[\"string\",\"null\"],\"format\":\"date-time\"}"
#define S_SCHEDULE                                                                                 \
    "{\"type\":\"object\",\"properties\":{\"schedule_id\":{\"type\":\"string\"},"                  \
    "\"model\":{\"type\":\"string\"},\"cron\":{\"type\":\"string\"},"                              \
    "\"input\":{\"type\":\"string\"},\"kind\":{\"type\":\"string\"},"                              \
    "\"callback_url\":{\"type\":[\"string\",\"null\"]},\"owner\":{\"type\":\"string\"},"           \
    "\"next_run\":" S_TIME ",\"last_run\":" S_TIME ","                                             \
    "\"last_job_id\":{\"type\":[\"string\",\"null\"]},\"created_at\":" S_TIME "}}"

static const char S_SCHEDULE_IN[] =
    "{\"type\":\"object\",\"required\":[\"model\",\"cron\",\"input\"],\"properties\":{"
    "\"model\":{\"type\":\"string\",\"description\":\"the model the bulk jobs run\"},"
    "\"cron\":{\"type\":\"string\",\"description\":\"5 fields, UTC: minute hour day-of-month "
    "month day-of-week (lists, ranges, steps, jan..dec, sun..sat, @daily...)\","
    "\"examples\":[\"0 3 * * mon-fri\"]},"
    "\"input\":{\"type\":\"string\",\"description\":\"a stored dataset id\"},"
    "\"callback_url\":{\"type\":\"string\",\"description\":\"POSTed to, signed, when each run's "
    "job ends; its host must be on callback_allow_hosts\"}}}";
static const char S_SCHEDULE_DOC[] = S_SCHEDULE;
static const char S_SCHEDULES[] =
    "{\"type\":\"object\",\"properties\":{\"schedules\":{\"type\":"
    "\"array\",\"items\":" S_SCHEDULE "},\"count\":{\"type\":\"integer\"}}}";
static const char S_DELETED[] = "{\"type\":\"object\",\"properties\":{\"schedule_id\":{\"type\":"
                                "\"string\"},\"deleted\":{\"type\":\"boolean\"}}}";
static const char S_JOBS[] =
    "{\"type\":\"object\",\"properties\":{\"jobs\":{\"type\":\"array\",\"items\":{\"type\":"
    "\"object\"}},\"next_cursor\":{\"type\":[\"integer\",\"null\"]}}}";
static const char S_JOB[] =
    "{\"type\":\"object\",\"properties\":{\"job_id\":{\"type\":\"string\"},\"status\":{\"type\":"
    "\"string\"},\"callback\":{\"type\":[\"object\",\"null\"],\"properties\":{\"url\":{\"type\":"
    "\"string\"},\"state\":{\"type\":\"string\",\"enum\":[\"pending\",\"delivered\",\"failed\"]},"
    "\"attempts\":{\"type\":\"integer\"},\"last_error\":{\"type\":[\"string\",\"null\"]},"
    "\"next_try\":" S_TIME "}}}}";

static const http_doc_param P_SCHEDULE[] = {{"id", "string", "the schedule id (s_...)", 1}, {0}};
static const http_doc_param P_JOB[] = {{"id", "string", "the job id (j_...)", 1}, {0}};
static const http_doc_param Q_JOBS[] = {
    {"limit", "{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,\"default\":50}",
     "jobs per page", 0},
    {"cursor", "integer", "next_cursor of the previous page", 0},
    {"state",
     "{\"type\":\"string\",\"enum\":[\"QUEUED\",\"PROCESSING\",\"SUCCESS\",\"FAILURE\","
     "\"CANCELLED\"]}",
     "only jobs in this state", 0},
    {"kind", "string", "only jobs of this kind (predict-bulk, enhance...)", 0},
    {"model", "string", "only jobs whose model parameter is this (a page may then be short)", 0},
    {0}};
static const int E_SCHEDULE[] = {MD_E_INVALID_JSON,      MD_E_MISSING_FIELD, MD_E_INVALID_PARAM,
                                 MD_E_UNSUPPORTED_MEDIA, MD_E_NOT_FOUND,     0};
static const int E_NOT_FOUND[] = {MD_E_NOT_FOUND, 0};
static const int E_LIST[] = {MD_E_INVALID_PARAM, 0};

static const api__route ROUTES[] = {
    {"POST",
     "/api/admin/schedule",
     HTTP_ROLE_ADMIN,
     0,
     post_schedule,
     {.summary = "Schedule a bulk prediction job by a cron expression",
      .tag = "jobs",
      .request = S_SCHEDULE_IN,
      .response = S_SCHEDULE_DOC,
      .status = 201,
      .errors = E_SCHEDULE,
      .description = "Each time the cron expression fires (UTC) one predict-bulk job runs "
                     "`model` over the dataset `input` (a stored dataset id d_..., 404 naming "
                     "`input` when there is none, or an upload id), once across every process "
                     "on the data "
                     "dir and across restarts; a fire missed while the server was down runs "
                     "once at start. Bad fields answer 400 naming the field (for cron, which of "
                     "the 5 fields)."}},
    {"GET",
     "/api/admin/schedules",
     HTTP_ROLE_ADMIN,
     0,
     list_schedules,
     {.summary = "Every schedule with its next and last run",
      .tag = "jobs",
      .response = S_SCHEDULES}},
    {"DELETE",
     "/api/admin/schedules/{id}",
     HTTP_ROLE_ADMIN,
     0,
     delete_schedule,
     {.summary = "Remove a schedule (the jobs it submitted stay)",
      .tag = "jobs",
      .response = S_DELETED,
      .path = P_SCHEDULE,
      .errors = E_NOT_FOUND}},
    {"GET",
     "/api/admin/jobs",
     HTTP_ROLE_ADMIN,
     0,
     list_jobs,
     {.summary = "Jobs of every key, newest first, paged and filtered",
      .tag = "jobs",
      .response = S_JOBS,
      .query = Q_JOBS,
      .errors = E_LIST,
      .description = "Each job as GET /api/v1/jobs/{id} renders it. Pass next_cursor back as "
                     "cursor for the next page (null: the last page)."}},
    {"GET",
     "/api/admin/jobs/{id}",
     HTTP_ROLE_ADMIN,
     0,
     get_job,
     {.summary = "One job of any key, with its callback's delivery state",
      .tag = "jobs",
      .response = S_JOB,
      .path = P_JOB,
      .errors = E_NOT_FOUND}},
};

int api_admin_jobs_register(http_server *srv, jobs *jq, md_err *err)
{
    return api__add_routes(srv, ROUTES, sizeof ROUTES / sizeof ROUTES[0], 0, jq, NULL, err);
}
