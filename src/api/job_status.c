/* job_status.c - GET /api/v1/jobs/{id}/status: a job's status over a WebSocket (see job_status.h).
 *
 * The handler (I/O thread) looks the job up and checks its owner, so that an unknown job and
 * another key's job get the same 404 before any upgrade. Once the socket is open (on_open, on
 * the WebSocket thread) the current row is sent, then the job is followed with job_subscribe:
 * every change arrives from the jobs library's threads (a worker here, or the keeper's poll of
 * the store when another process runs the job) and is sent from there; the WebSocket thread's
 * tick sends the last status again every second while the job is not finished.
 *
 * Invariants:
 *   1. w->last, w->done and the order of messages are under w->mu: a status is never sent after
 *      the terminal one, and the same text is never sent twice in a row by a change event (the
 *      tick repeats it on purpose).
 *   2. After the terminal status the socket is closed with 1000 (http_ws_close sends the queued
 *      status first).
 *   3. on_close unsubscribes before freeing w: job_unsubscribe returns only when the callback is
 *      not running and will not run again, so no event touches a freed watch.
 */
#include "api/job_status.h"

#include "api/api_int.h"
#include "api/convert_int.h"
#include "base/log.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 1000

struct api_job_status {
    jobs *jq;
    api_job_render_fn render;
};

/* One open socket following one job. */
typedef struct watch {
    jobs *jq;
    api_job_render_fn render;
    char id[JOB_ID_MAX];
    http_ws *ws;  /* borrowed: valid from on_open until on_close returns */
    job_sub *sub; /* NULL until subscribed */
    pthread_mutex_t mu;
    char *last; /* the last status sent (malloc), NULL before the first */
    bool done;  /* the terminal status is sent */
} watch;

/* ---- the status object ---- */

static json_t *time_or_null(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char t[32];
    api__iso_time(ms, t);
    return json_string(t);
}

/* {width, height, bytes, format} from the result's metadata; null without a result. */
static json_t *result_of(const job_info *info)
{
    if (info->state != JOB_SUCCESS || !info->result_sha256[0])
        return json_null();
    json_t *meta = json_loads(info->result_meta, 0, NULL);
    json_t *r =
        json_pack("{s:O?, s:O?, s:I, s:O?, s:O*}", "width", json_object_get(meta, "width"), "height",
                  json_object_get(meta, "height"), "bytes", (json_int_t)info->result_bytes,
                  "format", json_object_get(meta, "format"), "faces_found",
                  json_object_get(meta, "faces_found"));
    json_decref(meta);
    return r;
}

static json_t *links_of(const char *id)
{
    char self[96], result[112], preview[112], status[112];
    snprintf(self, sizeof self, "/api/v1/jobs/%s", id);
    snprintf(result, sizeof result, "%s/result", self);
    snprintf(preview, sizeof preview, "%s/preview", self);
    snprintf(status, sizeof status, "%s/status", self);
    return json_pack("{s:s, s:s, s:s, s:s}", "self", self, "result", result, "preview", preview,
                     "status", status);
}

json_t *api_job_status_json(const job_info *info)
{
    double p = info->progress < 0 ? 0 : info->progress > 1 ? 1 : info->progress;
    bool failed = info->state != JOB_SUCCESS;
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:I, s:s, s:o, s:o, s:o, s:s?, s:s?, s:i, s:o, s:o}", "job_id",
                  info->id, "kind", info->kind, "status", job_state_name(info->state), "progress",
                  (json_int_t)lround(p * 100), "stage", info->stage, "created_at",
                  time_or_null(info->created_ms), "started_at", time_or_null(info->started_ms),
                  "completed_at", time_or_null(info->completed_ms), "error_message",
                  failed && info->error_message[0] ? info->error_message : NULL, "error_code",
                  failed && info->error_code[0] ? info->error_code : NULL, "attempts",
                  info->attempts, "result", result_of(info), "links", links_of(info->id));
    if (!o)
        return NULL;
    if (info->batch_id[0])
        json_object_set_new(o, "batch_id", json_string(info->batch_id));
    /* The job's options (quality, upscale, ...) are fields of the job itself. */
    json_t *params = json_loads(info->params, 0, NULL);
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

/* ---- sending (any thread) ---- */

/* Send info's status unless it repeats the last one or the terminal one went already; close
 * after a terminal state. */
static void publish(watch *w, const job_info *info)
{
    json_t *j = w->render(info);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) {
        http_ws_close(w->ws, 1011, "cannot render the job status");
        return;
    }
    bool terminal = job_state_terminal(info->state);
    pthread_mutex_lock(&w->mu);
    if (!w->done && (!w->last || strcmp(w->last, text) != 0)) {
        http_ws_send_text(w->ws, text, strlen(text)); /* a refusal closes the socket itself */
        free(w->last);
        w->last = text;
        text = NULL;
        if (terminal) {
            w->done = true;
            http_ws_close(w->ws, 1000, job_state_name(info->state));
        }
    }
    pthread_mutex_unlock(&w->mu);
    free(text);
}

/* job_subscribe's callback (a jobs thread, under the subscription's lock: only queues). */
static void on_event(const job_info *info, void *user)
{
    publish(user, info);
}

/* ---- the socket's callbacks (the WebSocket thread) ---- */

static void ws_open(http_ws *ws, void *user)
{
    watch *w = user;
    w->ws = ws;
    job_info info;
    md_err e;
    if (job_get(w->jq, w->id, &info, &e) != MD_OK) { /* swept between the check and the open */
        http_ws_close(ws, 1011, "the job is gone");
        return;
    }
    publish(w, &info);
    if (job_state_terminal(info.state))
        return;
    /* A change between job_get and now is not lost: the subscription delivers the current row
     * within its poll interval, and publish drops it when it repeats what was sent. */
    if (job_subscribe(w->jq, w->id, on_event, w, &w->sub, &e) != MD_OK) {
        md_log_fields(MD_LOG_WARN, "cannot follow a job over its WebSocket",
                      (const char *const[]){"request_id", http_ws_id(ws), "job_id", w->id, "error",
                                            md_err_message(&e), NULL});
        http_ws_close(ws, 1011, "cannot follow the job");
    }
}

/* Every second: the last status again while the job is not finished. */
static void ws_tick(http_ws *ws, void *user)
{
    watch *w = user;
    pthread_mutex_lock(&w->mu);
    if (!w->done && w->last)
        http_ws_send_text(ws, w->last, strlen(w->last));
    pthread_mutex_unlock(&w->mu);
}

static void ws_close(http_ws *ws, int code, void *user)
{
    (void)ws;
    (void)code;
    watch *w = user;
    job_unsubscribe(w->sub); /* NULL (never opened or subscribed) is a no-op */
    free(w->last);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static const http_ws_handler status_handler = {
    .on_open = ws_open, .on_close = ws_close, .on_tick = ws_tick, .tick_ms = TICK_MS};

/* ---- the route ---- */

static int job_status(http_req *r, void *ctx)
{
    const api_job_status *rt = ctx;
    const char *id = http_req_param(r, "id");
    const http_identity *who = http_req_identity(r);
    job_info info;
    int rc = job_get(rt->jq, id, &info, http_req_err(r));
    /* Another key's job looks exactly like an unknown one. */
    if (rc == MD_OK && who->role != HTTP_ROLE_ADMIN && strcmp(info.owner, who->key_id) != 0)
        rc = MD_E_NOT_FOUND;
    if (rc == MD_E_NOT_FOUND)
        return md_fail(http_req_err(r), MD_E_NOT_FOUND, "job_id", "no job %s", id);
    if (rc != MD_OK)
        return rc;
    watch *w = calloc(1, sizeof *w);
    if (!w)
        return md_fail(http_req_err(r), MD_E_NOMEM, NULL, NULL);
    w->jq = rt->jq;
    w->render = rt->render;
    snprintf(w->id, sizeof w->id, "%s", info.id);
    pthread_mutex_init(&w->mu, NULL);
    rc = http_reply_ws(r, &status_handler, w);
    if (rc != MD_OK) { /* not accepted: w is still ours */
        pthread_mutex_destroy(&w->mu);
        free(w);
    }
    return rc;
}

#define STATUS_SCHEMA                                                                              \
    "{\"type\":\"object\",\"description\":\"Not an HTTP body: after the 101 answer, each "         \
    "WebSocket text "                                                                              \
    "message is one of these (the object GET /api/v1/jobs/{id} answers), at once, on every "       \
    "change and every "                                                                            \
    "second while the job runs; after SUCCESS, FAILURE or CANCELLED the server closes with "       \
    "1000.\","                                                                                     \
    "\"required\":[\"job_id\",\"status\",\"progress\",\"stage\"],\"properties\":{"                 \
    "\"job_id\":{\"type\":\"string\"},"                                                            \
    "\"status\":{\"enum\":[\"QUEUED\",\"PROCESSING\",\"SUCCESS\",\"FAILURE\",\"CANCELLED\"]},"     \
    "\"progress\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100},\"stage\":{\"type\":"       \
    "\"string\"},"                                                                                 \
    "\"created_at\":{\"type\":[\"string\",\"null\"]},\"started_at\":{\"type\":[\"string\","        \
    "\"null\"]},"                                                                                  \
    "\"completed_at\":{\"type\":[\"string\",\"null\"]},\"error_message\":{\"type\":[\"string\","   \
    "\"null\"]},"                                                                                  \
    "\"result\":{\"type\":[\"object\",\"null\"]}}}"

static const api__route routes[] = {
    {"GET",
     "/api/v1/jobs/{id}/status",
     HTTP_ROLE_READ,
     HTTP_WS,
     job_status,
     {.summary = "Follow a job's status over a WebSocket",
      .description =
          "Upgrades to a WebSocket (RFC 6455). Browsers, which cannot set headers on a WebSocket, "
          "pass a JWT from POST /api/auth/token as `?token=`. The server pings every `ws_ping`; "
          "at most `ws_max` sockets are open (503 before the upgrade beyond it).",
      .tag = "enhance",
      .status = 101,
      .response = STATUS_SCHEMA,
      .query =
          (const http_doc_param[]){
              {"token", "string", "a JWT (instead of the Authorization header)", 0}, {0}},
      .headers =
          (const http_doc_param[]){{"Upgrade", "string", "websocket", 1},
                                   {"Connection", "string", "Upgrade", 1},
                                   {"Sec-WebSocket-Version", "string", "13", 1},
                                   {"Sec-WebSocket-Key", "string", "base64 of 16 random bytes", 1},
                                   {0}},
      .path = (const http_doc_param[]){{"id", "string", "the job id from POST /api/v1/enhance", 0},
                                       {0}},
      .errors = (const int[]){MD_E_BAD_REQUEST, MD_E_UNAUTHORIZED, MD_E_FORBIDDEN, MD_E_NOT_FOUND,
                              MD_E_RATE_LIMITED, MD_E_OVERLOADED, MD_E_UNAVAILABLE, 0}}},
};

int api_job_status_register(http_server *srv, jobs *jq, api_job_render_fn render,
                            api_job_status **out, md_err *err)
{
    *out = NULL;
    api_job_status *rt = calloc(1, sizeof *rt);
    if (!rt)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    rt->jq = jq;
    rt->render = render ? render : api_job_status_json;
    int rc = api__add_routes(srv, routes, sizeof routes / sizeof routes[0], 0, rt, NULL, err);
    if (rc != MD_OK) {
        free(rt);
        return rc;
    }
    *out = rt;
    return MD_OK;
}

void api_job_status_free(api_job_status *rt)
{
    free(rt);
}
