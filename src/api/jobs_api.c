/* jobs_api.c - the job, batch and service routes of /api/v1 (see jobs_api.h).
 *
 * Invariants:
 *   1. Every answer about a job or batch first checks that the caller may see it
 *      (api_jobs_visible); one it may not see is answered exactly like an unknown id (404), so
 *      ids of other keys cannot be probed.
 *   2. Handlers read rows through src/jobs only; results are streamed from their blobs
 *      (job_result_open + api__reply_blob: decrypted while sent when encrypted at rest; the
 *      file is opened before the handler returns, so a sweep deleting it afterwards does not
 *      cut the answer).
 *   3. A batch ZIP is built while it is sent (api__reply_zip): the results are stored, not
 *      recompressed (images are compressed already), read from their blobs (decrypted when
 *      encrypted at rest) into the response; no copy on disk, one block of memory. The results
 *      are opened before the handler returns, so a sweep meanwhile does not cut the archive.
 */
#include "api/jobs_api.h"

#include "api/api_int.h"
#include "api/convert_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

struct api_jobs {
    jobs *jq;
    _Atomic int64_t held;
};

void api_jobs_hold(api_jobs *a, int64_t delta)
{
    atomic_fetch_add(&a->held, delta);
}
int64_t api_jobs_held(const api_jobs *a)
{
    return atomic_load(&((api_jobs *)a)->held);
}

int api_jobs_visible(const http_req *req, const char *owner)
{
    const http_identity *id = http_req_identity(req);
    if (!id || id->role == HTTP_ROLE_ADMIN)
        return 1;
    return id->key_id[0] && strcmp(id->key_id, owner) == 0;
}

/* ---- rendering ---------------------------------------------------------------------------- */

static json_t *time_or_null(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char buf[32];
    api__iso_time(ms, buf);
    return json_string(buf);
}

/* {width, height, bytes, format} from the result's metadata, or null without a result. */
static json_t *result_json(const job_info *j)
{
    if (j->state != JOB_SUCCESS || !j->result_sha256[0])
        return json_null();
    json_t *meta = json_loads(j->result_meta, 0, NULL);
    json_t *r = json_pack("{s:O?, s:O?, s:I, s:O?, s:O*}", "width", json_object_get(meta, "width"),
                          "height", json_object_get(meta, "height"), "bytes",
                          (json_int_t)j->result_bytes, "format", json_object_get(meta, "format"),
                          "faces_found", json_object_get(meta, "faces_found"));
    json_decref(meta);
    return r;
}

static json_t *links_json(const char *id)
{
    char self[96], result[112], preview[112], status[112];
    snprintf(self, sizeof self, "/api/v1/jobs/%s", id);
    snprintf(result, sizeof result, "%s/result", self);
    snprintf(preview, sizeof preview, "%s/preview", self);
    snprintf(status, sizeof status, "%s/status", self);
    return json_pack("{s:s, s:s, s:s, s:s}", "self", self, "result", result, "preview", preview,
                     "status", status);
}

json_t *api_job_json(const job_info *j)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:i, s:s, s:o, s:o, s:o, s:s?, s:s?, s:i, s:o, s:o}", "job_id",
                  j->id, "kind", j->kind, "status", job_state_name(j->state), "progress",
                  (int)(j->progress * 100.0 + 0.5), "stage", j->stage, "created_at",
                  time_or_null(j->created_ms), "started_at", time_or_null(j->started_ms),
                  "completed_at", time_or_null(j->completed_ms), "error_message",
                  j->error_message[0] && j->state != JOB_SUCCESS ? j->error_message : NULL,
                  "error_code", j->error_code[0] && j->state != JOB_SUCCESS ? j->error_code : NULL,
                  "attempts", j->attempts, "result", result_json(j), "links", links_json(j->id));
    if (!o)
        return NULL;
    if (j->batch_id[0])
        json_object_set_new(o, "batch_id", json_string(j->batch_id));
    /* The job's parameters (quality, upscale, ...) are fields of the job itself. */
    json_t *params = json_loads(j->params, 0, NULL);
    const char *k;
    json_t *v;
    json_object_foreach(params, k, v)
    {
        if (!json_object_get(o, k))
            json_object_set(o, k, v);
    }
    json_decref(params);
    return o;
}

/* ---- jobs --------------------------------------------------------------------------------- */

/* The job of the request's {id}, if the caller may see it (invariant 1). */
static int load_job(http_req *req, api_jobs *a, job_info *out)
{
    md_err *e = http_req_err(req);
    int rc = job_get(a->jq, http_req_param(req, "id"), out, e);
    if (rc == MD_OK && !api_jobs_visible(req, out->owner))
        rc = md_fail(e, MD_E_NOT_FOUND, "job_id", "no such job");
    return rc;
}

static int get_job(http_req *req, void *ctx)
{
    job_info *j = md_arena_alloc(http_req_arena(req), sizeof *j);
    if (!j)
        return md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    int rc = load_job(req, ctx, j);
    if (rc != MD_OK)
        return rc;
    return api_job_reply(req, 200, j);
}

int api_job_reply(http_req *req, int status, const job_info *j)
{
    json_t *o = api_job_json(j);
    if (!o)
        return md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    json_object_set_new(o, "success", json_true());
    return http_reply_json(req, status, o);
}

typedef struct fmt_type {
    const char *format, *ext, *type;
} fmt_type;

static const fmt_type TYPES[] = {
    {"jpg", "jpg", "image/jpeg"}, {"jpeg", "jpg", "image/jpeg"},
    {"png", "png", "image/png"},  {"webp", "webp", "image/webp"},
    {"csv", "csv", "text/csv"},   {"json", "json", "application/json"},
};

/* Extension and media type of a result from its metadata's "format". */
static const fmt_type *result_type(const job_info *j)
{
    static const fmt_type other = {"", "bin", "application/octet-stream"};
    json_t *meta = json_loads(j->result_meta, 0, NULL);
    const char *f = json_string_value(json_object_get(meta, "format"));
    const fmt_type *t = &other;
    for (size_t i = 0; f && i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (strcmp(TYPES[i].format, f) == 0)
            t = &TYPES[i];
    json_decref(meta);
    return t;
}

/* "enhanced_<id>.png" for enhancement jobs, "<kind>_<id>.<ext>" for others. */
static void result_name(const job_info *j, char *out, size_t cap)
{
    const fmt_type *t = result_type(j);
    if (strcmp(j->kind, "enhance") == 0)
        snprintf(out, cap, "enhanced_%s.%s", j->id, t->ext);
    else
        snprintf(out, cap, "%s_%s.%s", j->kind, j->id, t->ext);
}

static int get_result(http_req *req, void *ctx)
{
    api_jobs *a = ctx;
    job_info *j = md_arena_alloc(http_req_arena(req), sizeof *j);
    if (!j)
        return md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    int rc = load_job(req, a, j);
    char name[128], disp[192];
    store_blob_reader *br = NULL;
    if (rc == MD_OK)
        rc = job_result_open(a->jq, j, &br, http_req_err(req));
    if (rc == MD_E_FILE_NOT_FOUND)
        return md_fail(http_req_err(req), MD_E_NOT_FOUND, "job_id", "the result has expired");
    if (rc != MD_OK)
        return rc;
    result_name(j, name, sizeof name);
    snprintf(disp, sizeof disp, "attachment; filename=%s", name);
    rc = api__reply_blob(req, 200, result_type(j)->type, br);
    if (rc == MD_OK)
        http_reply_header(req, "Content-Disposition", disp);
    return rc;
}

static int delete_job(http_req *req, void *ctx)
{
    api_jobs *a = ctx;
    job_info *j = md_arena_alloc(http_req_arena(req), sizeof *j);
    if (!j)
        return md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    int state = 0;
    int rc = load_job(req, a, j);
    if (rc == MD_OK)
        rc = job_cancel(a->jq, j->id, &state, http_req_err(req));
    if (rc != MD_OK)
        return rc;
    /* Terminal now: remove it (its files go at the next sweep). Still running: it stops at its
     * next check and is swept with the finished jobs. */
    int deleted = job_state_terminal(state) && job_delete(a->jq, j->id, NULL) == MD_OK;
    http_req_log(req, MD_LOG_INFO, "job %s: cancel asked (%s)%s", j->id, job_state_name(state),
                 deleted ? ", removed" : "");
    return http_reply_json(req, deleted ? 200 : 202,
                           json_pack("{s:b, s:s, s:s, s:b, s:b}", "success", 1, "job_id", j->id,
                                     "status", deleted ? "CANCELLED" : job_state_name(state),
                                     "deleted", deleted, "cancel_requested",
                                     state == JOB_PROCESSING));
}

/* ---- batches ------------------------------------------------------------------------------ */

typedef struct batch_view {
    job_batch b;
    job_info *list; /* new (free) */
    size_t n;
} batch_view;

static int load_batch(http_req *req, api_jobs *a, batch_view *v)
{
    md_err *e = http_req_err(req);
    int rc = job_batch_get(a->jq, http_req_param(req, "id"), &v->b, &v->list, &v->n, e);
    if (rc == MD_OK && !api_jobs_visible(req, v->b.owner)) {
        free(v->list);
        v->list = NULL;
        rc = md_fail(e, MD_E_NOT_FOUND, "batch_id", "no such batch");
    }
    return rc;
}

/* QUEUED (nothing started), PROCESSING (something not finished), SUCCESS (all succeeded),
 * FAILURE (none did), PARTIAL (finished, some failed or were cancelled). */
static const char *batch_status(const batch_view *v, size_t done_ok, size_t done_bad)
{
    size_t queued = 0;
    for (size_t i = 0; i < v->n; i++)
        queued += v->list[i].state == JOB_QUEUED;
    if (queued == v->n)
        return "QUEUED";
    if (done_ok + done_bad < v->n)
        return "PROCESSING";
    if (done_bad == 0)
        return "SUCCESS";
    return done_ok == 0 ? "FAILURE" : "PARTIAL";
}

static int get_batch(http_req *req, void *ctx)
{
    batch_view v = {0};
    int rc = load_batch(req, ctx, &v);
    if (rc != MD_OK)
        return rc;
    size_t ok = 0, bad = 0;
    double progress = 0;
    json_t *arr = json_array();
    for (size_t i = 0; i < v.n; i++) {
        ok += v.list[i].state == JOB_SUCCESS;
        bad += v.list[i].state == JOB_FAILURE || v.list[i].state == JOB_CANCELLED;
        progress += job_state_terminal(v.list[i].state) ? 1.0 : v.list[i].progress;
        json_array_append_new(arr, api_job_json(&v.list[i]));
    }
    json_t *o = json_pack("{s:b, s:s, s:s, s:i, s:i, s:i, s:i, s:o, s:o}", "success", 1, "batch_id",
                          v.b.id, "status", batch_status(&v, ok, bad), "total", (int)v.n,
                          "completed", (int)ok, "failed", (int)bad, "progress",
                          v.n ? (int)(progress * 100.0 / (double)v.n + 0.5) : 100, "created_at",
                          time_or_null(v.b.created_ms), "jobs", arr);
    free(v.list);
    return http_reply_json(req, 200, o);
}

/* The finished results of v, opened (a swept one is left out); *n of them in e (caller's
 * array of v->n; names in the arena). */
static int open_results(http_req *req, api_jobs *a, const batch_view *v, api__zip_entry *e,
                        size_t *n)
{
    *n = 0;
    for (size_t i = 0; i < v->n; i++) {
        store_blob_reader *r = NULL;
        char *name = md_arena_alloc(http_req_arena(req), API_ZIP_NAME_MAX);
        if (!name)
            return md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
        if (job_result_open(a->jq, &v->list[i], &r, NULL) != MD_OK)
            continue; /* not finished, failed, or swept */
        result_name(&v->list[i], name, API_ZIP_NAME_MAX);
        e[(*n)++] = (api__zip_entry){.name = name, .r = r, .mtime_ms = v->list[i].completed_ms};
    }
    return MD_OK;
}

static int get_batch_results(http_req *req, void *ctx)
{
    api_jobs *a = ctx;
    batch_view v = {0};
    int rc = load_batch(req, a, &v);
    if (rc != MD_OK)
        return rc;
    api__zip_entry *e = calloc(v.n ? v.n : 1, sizeof *e);
    size_t n = 0;
    rc = e ? open_results(req, a, &v, e, &n) : md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK && n == 0)
        rc = md_fail(http_req_err(req), MD_E_CONFLICT, "batch_id",
                     "no job of the batch has finished yet");
    char disp[128];
    snprintf(disp, sizeof disp, "attachment; filename=batch_%s.zip", v.b.id);
    if (rc == MD_OK) {
        rc = api__reply_zip(req, e, n); /* steals the readers (invariant 3) */
        n = 0;
    }
    if (rc == MD_OK)
        http_reply_header(req, "Content-Disposition", disp);
    for (size_t i = 0; i < n; i++)
        store_blob_reader_free(e[i].r);
    free(e);
    free(v.list);
    return rc;
}

/* ---- service ------------------------------------------------------------------------------ */

static int health(http_req *req, void *ctx)
{
    (void)ctx;
    return http_reply_json(
        req, 200,
        json_pack("{s:b, s:s, s:s}", "success", 1, "status", "healthy", "version", MODELD_VERSION));
}

/* MemTotal and MemAvailable of /proc/meminfo in bytes (0 when unreadable). */
static void meminfo(uint64_t *total, uint64_t *avail)
{
    *total = *avail = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long long kb = 0;
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
            *total = kb * 1024ULL;
        else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            *avail = kb * 1024ULL;
    }
    if (f)
        fclose(f);
}

static int status(http_req *req, void *ctx)
{
    api_jobs *a = ctx;
    job_counts c;
    int rc = job_counts_get(a->jq, NULL, &c, http_req_err(req));
    if (rc != MD_OK)
        return rc;
    uint64_t total, avail;
    meminfo(&total, &avail);
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) < 0)
        load[0] = load[1] = load[2] = 0;
    json_t *o = json_pack(
        "{s:b, s:{s:I, s:I, s:I}, s:{s:i, s:[f,f,f]}, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:i, s:i}}",
        "success", 1, "memory", "total_bytes", (json_int_t)total, "available_bytes",
        (json_int_t)avail, "held_by_jobs_bytes", (json_int_t)api_jobs_held(a), "cpu", "count",
        get_nprocs(), "load", load[0], load[1], load[2], "jobs", "queued",
        (json_int_t)c.by_state[JOB_QUEUED], "running", (json_int_t)c.by_state[JOB_PROCESSING],
        "succeeded", (json_int_t)c.by_state[JOB_SUCCESS], "failed",
        (json_int_t)c.by_state[JOB_FAILURE], "cancelled", (json_int_t)c.by_state[JOB_CANCELLED],
        "workers", "threads", c.workers, "running_here", c.running_here);
    return http_reply_json(req, 200, o);
}

/* ---- the route table ---------------------------------------------------------------------- */

#define S_RESULT                                                                                   \
    "{\"type\":[\"object\",\"null\"],\"properties\":{\"width\":{\"type\":\"integer\"},"            \
    "\"height\":{\"type\":\"integer\"},\"bytes\":{\"type\":\"integer\"},"                          \
    "\"format\":{\"type\":\"string\"},\"faces_found\":{\"type\":\"integer\"}}}"
#define S_STATUS_ENUM                                                                              \
    "{\"type\":\"string\",\"enum\":[\"QUEUED\",\"PROCESSING\",\"SUCCESS\",\"FAILURE\","            \
    "\"CANCELLED\"]}"
#define S_JOB_PROPS                                                                                \
    "\"job_id\":{\"type\":\"string\"},\"kind\":{\"type\":\"string\"},\"status\":" S_STATUS_ENUM    \
    ",\"progress\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100},"                          \
    "\"stage\":{\"type\":\"string\"},"                                                             \
    "\"created_at\":{\"type\":\"string\",\"format\":\"date-time\"},"                               \
    "\"started_at\":{\"type\":[\"string\",\"null\"],\"format\":\"date-time\"},"                    \
    "\"completed_at\":{\"type\":[\"string\",\"null\"],\"format\":\"date-time\"},"                  \
    "\"error_message\":{\"type\":[\"string\",\"null\"]},"                                          \
    "\"error_code\":{\"type\":[\"string\",\"null\"]},\"attempts\":{\"type\":\"integer\"},"         \
    "\"batch_id\":{\"type\":\"string\"},"                                                          \
    "\"quality\":{\"type\":\"string\",\"enum\":[\"fast\",\"balanced\",\"best\"]},"                 \
    "\"upscale\":{\"type\":\"integer\",\"enum\":[2,3,4,8]},"                                       \
    "\"face_enhance\":{\"type\":\"boolean\"},\"ensemble\":{\"type\":\"boolean\"},"                 \
    "\"output_format\":{\"type\":\"string\",\"enum\":[\"jpg\",\"png\",\"webp\"]},"                 \
    "\"input_width\":{\"type\":\"integer\"},\"input_height\":{\"type\":\"integer\"},"              \
    "\"result\":" S_RESULT ",\"links\":{\"type\":\"object\"}"
#define S_JOB                                                                                      \
    "{\"type\":\"object\",\"required\":[\"job_id\",\"status\",\"progress\"],"                      \
    "\"properties\":{" S_JOB_PROPS "}}"

static const char S_JOB_DOC[] = S_JOB;
static const char S_DELETE[] = "{\"type\":\"object\",\"properties\":{\"job_id\":{\"type\":"
                               "\"string\"},\"status\":" S_STATUS_ENUM
                               ",\"deleted\":{\"type\":\"boolean\"},\"cancel_requested\":{\"type\":"
                               "\"boolean\"}}}";
static const char S_BATCH[] =
    "{\"type\":\"object\",\"properties\":{\"batch_id\":{\"type\":\"string\"},"
    "\"status\":{\"type\":\"string\",\"enum\":[\"QUEUED\",\"PROCESSING\",\"SUCCESS\","
    "\"FAILURE\",\"PARTIAL\"]},\"total\":{\"type\":\"integer\"},"
    "\"completed\":{\"type\":\"integer\"},\"failed\":{\"type\":\"integer\"},"
    "\"progress\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100},"
    "\"created_at\":{\"type\":\"string\",\"format\":\"date-time\"},"
    "\"jobs\":{\"type\":\"array\",\"items\":" S_JOB "}}}";
static const char S_HEALTH[] =
    "{\"type\":\"object\",\"properties\":{\"status\":{\"type\":\"string\"},"
    "\"version\":{\"type\":\"string\"}}}";
static const char S_SERVICE_STATUS[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"memory\":{\"type\":\"object\",\"properties\":{\"total_bytes\":{\"type\":\"integer\"},"
    "\"available_bytes\":{\"type\":\"integer\"},\"held_by_jobs_bytes\":{\"type\":\"integer\"}}},"
    "\"cpu\":{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"},"
    "\"load\":{\"type\":\"array\",\"items\":{\"type\":\"number\"}}}},"
    "\"jobs\":{\"type\":\"object\",\"properties\":{\"queued\":{\"type\":\"integer\"},"
    "\"running\":{\"type\":\"integer\"},\"succeeded\":{\"type\":\"integer\"},"
    "\"failed\":{\"type\":\"integer\"},\"cancelled\":{\"type\":\"integer\"}}},"
    "\"workers\":{\"type\":\"object\",\"properties\":{\"threads\":{\"type\":\"integer\"},"
    "\"running_here\":{\"type\":\"integer\"}}}}}";
static const char S_BINARY[] = "{\"type\":\"string\",\"format\":\"binary\"}";

static const http_doc_param P_JOB[] = {{"id", "string", "the job id (j_...)", 1}, {0}};
static const http_doc_param P_BATCH[] = {{"id", "string", "the batch id (b_...)", 1}, {0}};
static const int E_GET[] = {MD_E_NOT_FOUND, 0};
static const int E_RESULT[] = {MD_E_NOT_FOUND, MD_E_CONFLICT, 0};
static const int E_ZIP[] = {MD_E_NOT_FOUND, MD_E_CONFLICT, MD_E_IO, 0};

static const api__route ROUTES[] = {
    {"GET",
     "/api/v1/jobs/{id}",
     HTTP_ROLE_READ,
     0,
     get_job,
     {.summary = "A job: status, progress (0-100), stage, times, error, options and result",
      .tag = "jobs",
      .response = S_JOB_DOC,
      .path = P_JOB,
      .errors = E_GET,
      .description = "Another key's job answers 404 like an unknown one; admin keys see all."}},
    {"GET",
     "/api/v1/jobs/{id}/result",
     HTTP_ROLE_READ,
     HTTP_NO_GZIP,
     get_result,
     {.summary = "The finished job's result file, streamed as an attachment",
      .tag = "jobs",
      .response = S_BINARY,
      .response_type = "application/octet-stream",
      .path = P_JOB,
      .errors = E_RESULT,
      .description = "Content-Disposition: attachment; filename=enhanced_<id>.<ext>. 409 while "
                     "the job is not SUCCESS."}},
    {"DELETE",
     "/api/v1/jobs/{id}",
     HTTP_ROLE_WRITE,
     0,
     delete_job,
     {.summary = "Cancel a job and remove it with its files",
      .tag = "jobs",
      .response = S_DELETE,
      .path = P_JOB,
      .errors = E_GET,
      .description = "A queued (or finished) job is cancelled and removed at once (200); a "
                     "running one is asked to stop at its next check (202) and ends CANCELLED."}},
    {"GET",
     "/api/v1/batch/{id}",
     HTTP_ROLE_READ,
     0,
     get_batch,
     {.summary = "A batch: status, totals, progress and its jobs",
      .tag = "jobs",
      .response = S_BATCH,
      .path = P_BATCH,
      .errors = E_GET}},
    {"GET",
     "/api/v1/batch/{id}/results",
     HTTP_ROLE_READ,
     HTTP_HEAVY | HTTP_NO_GZIP,
     get_batch_results,
     {.summary = "A ZIP of the batch's finished results, streamed",
      .tag = "jobs",
      .response = S_BINARY,
      .response_type = "application/zip",
      .path = P_BATCH,
      .errors = E_ZIP,
      .description = "Holds the results of the jobs that are SUCCESS now (409 when none is)."}},
    {"GET",
     "/api/v1/health",
     HTTP_ROLE_PUBLIC,
     HTTP_NO_RATELIMIT | HTTP_NO_AUDIT,
     health,
     {.summary = "Liveness of the job service", .tag = "jobs", .response = S_HEALTH}},
    {"GET",
     "/api/v1/status",
     HTTP_ROLE_READ,
     0,
     status,
     {.summary = "Memory, CPU, queue length, running jobs and workers",
      .tag = "jobs",
      .response = S_SERVICE_STATUS,
      .description = "Queue counts are of the whole data dir (every process); workers and "
                     "held_by_jobs_bytes (admission estimates of running jobs) of this process."}},
};

int api_jobs_register(http_server *srv, jobs *jq, api_jobs **out, md_err *err)
{
    *out = NULL;
    api_jobs *a = calloc(1, sizeof *a);
    if (!a)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    a->jq = jq;
    int rc = api__add_routes(srv, ROUTES, sizeof ROUTES / sizeof ROUTES[0], 0, a, NULL, err);
    if (rc != MD_OK) {
        free(a);
        return rc;
    }
    *out = a;
    return MD_OK;
}

void api_jobs_free(api_jobs *a)
{
    free(a);
}
