/* platform.c - health, readiness, metrics, token exchange and the audit log over HTTP, plus
 * the hooks that let src/http call src/auth and src/store; see platform.h.
 *
 * Invariants:
 *   1. The hot path (GET /api/health, authenticated requests) touches no SQLite: credentials go
 *      through auth's in-memory cache and audit entries through the writer queue.
 *   2. Every queued audit entry is written before api_platform_free returns.
 *   3. The writer commits whatever is queued (up to AUDIT_BATCH entries) in one transaction
 *      (store_audit_append_many), so under load one commit serves many requests; entries are
 *      stored in the order their requests finished.
 *   4. The writer is a job on a one-thread md_pool (base/pool.h, the pool every worker of
 *      modeld uses): at most one writer job is queued or running (writer_armed); it drains the
 *      ring until empty and disarms under mu, so an entry queued after its last look arms a new
 *      job and is never stranded.
 *   5. No audit entry is lost silently. A batch that cannot be written (disk full, database
 *      locked) stays at the head of the queue and the writer job tries it again every
 *      AUDIT_RETRY_MS (it owns its one thread, so it may wait), while new entries queue behind
 *      it. An entry is dropped only when the queue is full and it cannot be written at once
 *      either, or when it is still unwritable at shutdown; every drop is logged as an error with
 *      the whole entry (so the log keeps the trail) and counted in modeld_audit_dropped_total.
 */
#include "api/platform.h"

#include "api/api_int.h"
#include "base/log.h"
#include "base/pool.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define AUDIT_QUEUE 4096
#define AUDIT_BATCH 256
#define AUDIT_RETRY_MS 1000

#define READY_MAX 8

typedef struct ready_check {
    char name[32];
    api_ready_fn fn;
    api_ready_info_fn info; /* instead of fn: reported, never failing */
    void *ctx;
} ready_check;

struct api_platform {
    api_platform_opts o;
    ready_check checks[READY_MAX];
    size_t nchecks;
    http_server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* wakes a writer waiting out its retry delay at shutdown */
    store_audit_entry *q;     /* ring of AUDIT_QUEUE entries */
    store_audit_entry *batch; /* AUDIT_BATCH entries, the writer's own */
    size_t head, count;
    md_pool *writer;   /* one thread; NULL without a store (or when it cannot start) */
    bool writer_armed; /* a writer job is queued or running (invariant 4) */
    bool stop;         /* under mu: api_platform_free has begun */
    bool failing;      /* under mu: the last write failed; the queue is being kept */
    uint64_t dropped;  /* under mu: entries lost (invariant 5) */
};

/* ---- hooks ---- */

static int hook_auth(void *ctx, const char *authorization, const char *x_api_key, http_identity *id, md_err *err)
{
    api_platform *p = ctx;
    auth_principal pr;
    int rc = auth_check_headers(p->o.auth, authorization, x_api_key, &pr, err);
    if (rc != MD_OK)
        return rc == MD_E_IO ? md_fail(err, MD_E_UNAUTHORIZED, NULL, "credentials cannot be checked now") : rc;
    snprintf(id->key_id, sizeof id->key_id, "%s", pr.key_id);
    id->role = (http_role)pr.role;
    id->via_jwt = pr.via_jwt;
    id->expires_ms = pr.expires_ms;
    return MD_OK;
}

static int hook_rate(void *ctx, const http_identity *id, const char *ip, http_rate_info *info)
{
    api_platform *p = ctx;
    char key[96];
    md_rate r = p->o.rate_anon;
    if (id) {
        r = id->role >= HTTP_ROLE_ADMIN ? p->o.rate_admin : id->role >= HTTP_ROLE_WRITE ? p->o.rate_write : p->o.rate_read;
        snprintf(key, sizeof key, "k:%s", id->key_id);
    } else {
        snprintf(key, sizeof key, "ip:%s", ip);
    }
    rl_result res;
    int rc = rl_take(p->o.limiter, key, strlen(key), (rl_rate){r.per_sec, r.burst}, &res);
    info->limit = res.limit;
    info->remaining = res.remaining;
    info->reset_s = res.reset_s;
    info->retry_s = res.retry_after_s;
    /* A limiter failure never blocks traffic, except a shared limiter that is down with the
     * refuse policy (--redis-down=refuse): that one is a deliberate 503. */
    return rc == MD_E_RATE_LIMITED || rc == MD_E_UNAVAILABLE ? rc : MD_OK;
}

/* Invariant 5: the last resort, an entry that cannot be stored. Called without mu held. */
static void audit_drop(api_platform *p, const store_audit_entry *it, const char *why)
{
    pthread_mutex_lock(&p->mu);
    uint64_t n = ++p->dropped;
    pthread_mutex_unlock(&p->mu);
    char status[16], total[24];
    snprintf(status, sizeof status, "%d", it->status);
    snprintf(total, sizeof total, "%llu", (unsigned long long)n);
    md_log_fields(MD_LOG_ERROR, "AUDIT ENTRY DROPPED",
                  (const char *const[]){"why", why, "request_id", it->request_id, "who", it->who, "method",
                                        it->method, "route", it->route, "status", status, "dropped_total", total,
                                        NULL});
}

/* After a failed batch: log once per outage, then wait AUDIT_RETRY_MS (or the stop signal).
 * mu held. */
static void audit_backoff(api_platform *p, const md_err *e)
{
    if (!p->failing)
        md_log_fields(MD_LOG_ERROR, "audit entries cannot be written; keeping them queued and retrying",
                      (const char *const[]){"error", md_err_message(e), NULL});
    p->failing = true;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += AUDIT_RETRY_MS / 1000;
    until.tv_nsec += (long)(AUDIT_RETRY_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &until) != ETIMEDOUT)
        ;
}

/* At shutdown with the store still failing: what is left is dropped, each entry logged. mu held. */
static void audit_drop_queue(api_platform *p)
{
    while (p->count > 0) {
        store_audit_entry it = p->q[p->head];
        p->head = (p->head + 1) % AUDIT_QUEUE;
        p->count--;
        pthread_mutex_unlock(&p->mu);
        audit_drop(p, &it, "still unwritable at shutdown");
        pthread_mutex_lock(&p->mu);
    }
}

/* Write what is queued, a batch at a time (one transaction each), until the ring is empty;
 * called with mu held, returns with it released. A failed batch stays at the head and is tried
 * again after a delay (invariant 5). disarm: clear writer_armed once empty (invariant 4).
 * p->batch is used by one drainer at a time: the writer job (one thread), or api_platform_free
 * after the pool has stopped. */
static void drain_locked(api_platform *p, bool disarm)
{
    while (p->count > 0) {
        size_t n = p->count < AUDIT_BATCH ? p->count : AUDIT_BATCH;
        for (size_t i = 0; i < n; i++)
            p->batch[i] = p->q[(p->head + i) % AUDIT_QUEUE];
        bool stopping = p->stop;
        pthread_mutex_unlock(&p->mu);
        md_err e;
        int rc = store_audit_append_many(p->o.store, p->batch, n, &e);
        pthread_mutex_lock(&p->mu);
        if (rc == MD_OK) {
            /* only the drainer takes entries off the queue, so these n are still its head */
            p->head = (p->head + n) % AUDIT_QUEUE;
            p->count -= n;
            if (p->failing)
                md_log(MD_LOG_WARN, "audit entries are written again");
            p->failing = false;
            continue;
        }
        if (stopping) {
            audit_drop_queue(p);
            break;
        }
        audit_backoff(p, &e);
    }
    if (disarm)
        p->writer_armed = false;
    pthread_mutex_unlock(&p->mu);
}

/* The writer job, on p->writer. */
static void audit_writer(void *arg)
{
    api_platform *p = arg;
    pthread_mutex_lock(&p->mu);
    drain_locked(p, true);
}

static void hook_audit(void *ctx, const http_audit_entry *e)
{
    api_platform *p = ctx;
    store_audit_entry it = {.status = e->status, .time_ms = e->time_ms};
    snprintf(it.who, sizeof it.who, "%s", e->key_id && e->key_id[0] ? e->key_id : "anonymous");
    snprintf(it.method, sizeof it.method, "%s", e->method);
    snprintf(it.route, sizeof it.route, "%s", e->route);
    snprintf(it.request_id, sizeof it.request_id, "%s", e->request_id);
    pthread_mutex_lock(&p->mu);
    if (p->count < AUDIT_QUEUE && p->writer) {
        p->q[(p->head + p->count) % AUDIT_QUEUE] = it;
        p->count++;
        /* One slot and at most one armed job: the submit cannot fail while the pool lives;
         * were it to, the entry would wait in the ring for the next armed job or for
         * api_platform_free, which drains it last. */
        if (!p->writer_armed && md_pool_submit(p->writer, audit_writer, p) == MD_OK)
            p->writer_armed = true;
        pthread_mutex_unlock(&p->mu);
        return;
    }
    bool failing = p->failing;
    pthread_mutex_unlock(&p->mu);
    /* Queue full (or shutting down). A healthy but slow store: slow down this request rather
     * than lose the entry. A failing one: do not make every request wait on it too. */
    md_err err;
    if (failing)
        audit_drop(p, &it, "the audit queue is full and the store cannot be written");
    else if (store_audit_append_many(p->o.store, &it, 1, &err) != MD_OK)
        audit_drop(p, &it, md_err_message(&err));
}

void api_platform_hooks(api_platform *p, http_hooks *h)
{
    memset(h, 0, sizeof *h);
    h->ctx = p;
    h->authenticate = p->o.auth ? hook_auth : NULL;
    h->rate_limit = p->o.limiter ? hook_rate : NULL;
    h->audit = p->o.store ? hook_audit : NULL;
}

int api_platform_new(const api_platform_opts *o, api_platform **out, md_err *err)
{
    *out = NULL;
    api_platform *p = calloc(1, sizeof *p);
    if (!p || !(p->q = calloc(AUDIT_QUEUE, sizeof *p->q)) || !(p->batch = calloc(AUDIT_BATCH, sizeof *p->batch))) {
        if (p)
            free(p->q);
        free(p);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    p->o = *o;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (o->store && md_pool_new(1, 1, &p->writer) != MD_OK)
        p->writer = NULL; /* entries are then written by the requests themselves */
    *out = p;
    return MD_OK;
}

void api_platform_free(api_platform *p)
{
    if (!p)
        return;
    /* From here on hooks write their own entries; the pool runs the writer job still queued
     * (invariant 2), and whatever is left in the ring is written last, here. */
    pthread_mutex_lock(&p->mu);
    md_pool *w = p->writer;
    p->writer = NULL;
    p->stop = true;
    pthread_cond_broadcast(&p->cv); /* a writer waiting to retry tries once more, then drops */
    pthread_mutex_unlock(&p->mu);
    md_pool_free(w);
    pthread_mutex_lock(&p->mu);
    drain_locked(p, false);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->q);
    free(p->batch);
    free(p);
}

/* ---- routes ---- */

static int health(http_req *req, void *ctx)
{
    api_platform *p = ctx;
    json_int_t up = (json_int_t)((md_now_ns() - http_server_started_ns(p->srv)) / 1000000000u);
    return http_reply_json(req, 200, json_pack("{s:b, s:s, s:s, s:I}", "success", 1, "status", "ok", "version",
                                               MODELD_VERSION, "uptime_s", up));
}

int api_platform_ready_check(api_platform *p, const char *name, api_ready_fn fn, void *ctx)
{
    if (p->nchecks == READY_MAX || !fn)
        return MD_E_INVALID_PARAM;
    ready_check *c = &p->checks[p->nchecks++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->fn = fn;
    c->ctx = ctx;
    return MD_OK;
}

int api_platform_ready_info(api_platform *p, const char *name, api_ready_info_fn fn, void *ctx)
{
    if (p->nchecks == READY_MAX || !fn)
        return MD_E_INVALID_PARAM;
    ready_check *c = &p->checks[p->nchecks++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->info = fn;
    c->ctx = ctx;
    return MD_OK;
}

/* Every check runs. All pass: 200 with each check "ok". Otherwise MD_E_UNAVAILABLE (503) whose
 * message lists the failing checks and whose field names the first one. */
static int ready(http_req *req, void *ctx)
{
    api_platform *p = ctx;
    md_err e;
    md_err_clear(&e);
    char failed[256] = "", first[32] = "";
    if (!p->o.store || store_ping(p->o.store, &e) != MD_OK) {
        snprintf(first, sizeof first, "database");
        snprintf(failed, sizeof failed, "database%s%s%s: not reachable", p->o.store ? " (" : "",
                 p->o.store ? store_backend(p->o.store) : "", p->o.store ? ")" : "");
    }
    /* the store takes writes: a full disk answers 507 to every upload, so stop routing here */
    md_err_clear(&e);
    if (p->o.store && store_check_writable(p->o.store, p->o.store_min_free, &e) != MD_OK) {
        size_t n = strlen(failed);
        snprintf(failed + n, sizeof failed - n, "%sstore: %s", n ? "; " : "", md_err_message(&e));
        if (!first[0])
            snprintf(first, sizeof first, "store");
    }
    json_t *checks = json_pack("{s:s, s:s}", "database", "ok", "store", "ok");
    for (size_t i = 0; i < p->nchecks; i++) {
        md_err_clear(&e);
        if (p->checks[i].info) {
            json_object_set_new(checks, p->checks[i].name, json_string(p->checks[i].info(p->checks[i].ctx)));
            continue;
        }
        if (p->checks[i].fn(p->checks[i].ctx, &e) == MD_OK) {
            json_object_set_new(checks, p->checks[i].name, json_string("ok"));
            continue;
        }
        size_t n = strlen(failed);
        snprintf(failed + n, sizeof failed - n, "%s%s: %s", n ? "; " : "", p->checks[i].name, md_err_message(&e));
        if (!first[0])
            snprintf(first, sizeof first, "%s", p->checks[i].name);
    }
    if (first[0]) {
        json_decref(checks);
        http_req_log(req, MD_LOG_WARN, "not ready: %s", failed); /* the 503 carries Retry-After */
        return md_fail(http_req_err(req), MD_E_UNAVAILABLE, first, "not ready: %s", failed);
    }
    return http_reply_json(req, 200, json_pack("{s:b, s:s, s:o}", "success", 1, "status", "ready", "checks", checks));
}

static void audit_metrics(md_buf *out, void *ctx)
{
    api_platform *p = ctx;
    pthread_mutex_lock(&p->mu);
    unsigned long long dropped = p->dropped, queued = p->count;
    pthread_mutex_unlock(&p->mu);
    md_buf_printf(out,
                  "# HELP modeld_audit_dropped_total Audit entries lost: the queue was full while the store "
                  "could not be written, or they were still unwritable at shutdown.\n"
                  "# TYPE modeld_audit_dropped_total counter\nmodeld_audit_dropped_total %llu\n"
                  "# HELP modeld_audit_queued Audit entries waiting to be written.\n"
                  "# TYPE modeld_audit_queued gauge\nmodeld_audit_queued %llu\n",
                  dropped, queued);
    /* Free space and the database, as the readiness probe sees them: what the disk-full and
     * database-unreachable alerts watch (a failed statvfs leaves the free-space gauge out). */
    md_err e = {0};
    uint64_t avail = 0;
    if (store_free_bytes(p->o.store, &avail, &e) == MD_OK)
        md_buf_printf(out,
                      "# HELP modeld_store_free_bytes Bytes free on the data (or blob) dir's file system.\n"
                      "# TYPE modeld_store_free_bytes gauge\nmodeld_store_free_bytes %llu\n",
                      (unsigned long long)avail);
    md_buf_printf(out,
                  "# HELP modeld_store_min_free_bytes Free space below which the store refuses writes (507).\n"
                  "# TYPE modeld_store_min_free_bytes gauge\nmodeld_store_min_free_bytes %llu\n"
                  "# HELP modeld_store_up 1 when the database answers a trivial query.\n"
                  "# TYPE modeld_store_up gauge\nmodeld_store_up{backend=\"%s\"} %d\n",
                  (unsigned long long)p->o.store_min_free, store_backend(p->o.store),
                  store_ping(p->o.store, &e) == MD_OK);
}

static int metrics(http_req *req, void *ctx)
{
    api_platform *p = ctx;
    md_buf b;
    md_buf_init(&b, 16u << 20);
    int rc = http_metrics_render(p->srv, &b);
    if (rc != MD_OK) {
        md_buf_free(&b);
        return md_fail(http_req_err(req), rc, NULL, NULL);
    }
    size_t n;
    char *text = md_buf_steal(&b, &n);
    if (!text)
        return md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    return http_reply_take(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, n);
}

/* The body is optional; when present it must be a JSON object with no fields (room to grow:
 * a requested scope or lifetime would go here). */
static int check_token_body(http_req *req)
{
    size_t len;
    http_req_body(req, &len);
    if (len == 0)
        return MD_OK;
    json_t *j;
    int rc = http_req_json(req, &j);
    if (rc != MD_OK)
        return rc;
    const char *key = json_object_iter(j) ? json_object_iter_key(json_object_iter(j)) : NULL;
    char field[64];
    snprintf(field, sizeof field, "%s", key ? key : "");
    json_decref(j);
    if (key)
        return md_fail(http_req_err(req), MD_E_INVALID_PARAM, field, "unknown field \"%s\"", field);
    return MD_OK;
}

static int token(http_req *req, void *ctx)
{
    api_platform *p = ctx;
    int rc = check_token_body(req);
    if (rc != MD_OK)
        return rc;
    const http_identity *id = http_req_identity(req);
    if (!p->o.auth || !id->key_id[0])
        return md_fail(http_req_err(req), MD_E_UNSUPPORTED, NULL, "tokens are not issued when auth is off (--no-auth)");
    auth_principal pr = {.role = (auth_role)id->role, .via_jwt = id->via_jwt, .expires_ms = id->expires_ms};
    snprintf(pr.key_id, sizeof pr.key_id, "%.31s", id->key_id);
    char tok[AUTH_JWT_MAX];
    int64_t ttl = 0;
    rc = auth_issue_token(p->o.auth, &pr, tok, sizeof tok, &ttl, http_req_err(req));
    if (rc != MD_OK)
        return rc;
    json_t *body = json_pack("{s:b, s:s, s:s, s:I, s:s}", "success", 1, "access_token", tok, "token_type",
                             "Bearer", "expires_in", (json_int_t)ttl, "role", http_role_name(id->role));
    /* A refresh token only for an API key: one minted from a JWT would outlive the JWT. */
    if (body && !id->via_jwt) {
        char rt[AUTH_REFRESH_MAX];
        int64_t rttl = 0;
        rc = auth_refresh_issue(p->o.auth, &pr, rt, sizeof rt, &rttl, NULL, http_req_err(req));
        if (rc != MD_OK) {
            json_decref(body);
            return rc;
        }
        json_object_set_new(body, "refresh_token", json_string(rt));
        json_object_set_new(body, "refresh_expires_in", json_integer((json_int_t)rttl));
        sodium_memzero(rt, sizeof rt);
    }
    return http_reply_json(req, 200, body);
}

/* The refresh route is public (the token in the body is the credential), so the HTTP layer
 * does not audit it: record each outcome here under the key the token belongs to. */
static void audit_refresh(api_platform *p, http_req *req, const auth_refresh_result *r, int status)
{
    if (!p->o.store || !r->key_id[0])
        return;
    http_audit_entry e = {.request_id = http_req_id(req), .key_id = r->key_id, .method = "POST",
                          .route = r->reuse ? "/api/auth/refresh (reuse: family revoked)" : "/api/auth/refresh",
                          .status = status, .time_ms = md_clock_wall_ms(md_clock_system())};
    hook_audit(p, &e);
}

/* {"refresh_token": "mdr_..."} and nothing else: the token into tok (wiped by the caller). */
static int refresh_body(http_req *req, char *tok, size_t cap)
{
    json_t *j;
    int rc = http_req_json(req, &j);
    if (rc != MD_OK)
        return rc;
    md_err *err = http_req_err(req);
    json_t *v = json_object_get(j, "refresh_token");
    const char *unknown = NULL, *key;
    json_t *val;
    json_object_foreach(j, key, val)
    {
        if (!unknown && strcmp(key, "refresh_token") != 0)
            unknown = key;
    }
    if (!json_is_object(j))
        rc = md_fail(err, MD_E_INVALID_PARAM, "body", "must be a JSON object with refresh_token");
    else if (unknown)
        rc = md_fail(err, MD_E_INVALID_PARAM, unknown, "unknown field \"%.64s\"", unknown);
    else if (!v)
        rc = md_fail(err, MD_E_INVALID_PARAM, "refresh_token", "is required");
    else if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= cap)
        rc = md_fail(err, MD_E_INVALID_PARAM, "refresh_token", "must be a refresh token string from POST /api/auth/token");
    else
        memcpy(tok, json_string_value(v), json_string_length(v) + 1);
    json_decref(j);
    return rc;
}

static int refresh(http_req *req, void *ctx)
{
    api_platform *p = ctx;
    if (!p->o.auth)
        return md_fail(http_req_err(req), MD_E_UNSUPPORTED, NULL, "tokens are not issued when auth is off (--no-auth)");
    char tok[AUTH_REFRESH_MAX];
    int rc = refresh_body(req, tok, sizeof tok);
    if (rc != MD_OK)
        return rc;
    auth_refresh_result *r = calloc(1, sizeof *r);
    if (!r) {
        sodium_memzero(tok, sizeof tok);
        return md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    }
    rc = auth_refresh(p->o.auth, tok, strlen(tok), r, http_req_err(req));
    sodium_memzero(tok, sizeof tok);
    audit_refresh(p, req, r, rc == MD_OK ? 200 : md_err_status(rc));
    if (rc == MD_OK)
        rc = http_reply_json(req, 200,
                             json_pack("{s:b, s:s, s:s, s:I, s:s, s:s, s:I}", "success", 1, "access_token",
                                       r->access_token, "token_type", "Bearer", "expires_in",
                                       (json_int_t)r->expires_in_s, "role", auth_role_name(r->role),
                                       "refresh_token", r->refresh_token, "refresh_expires_in",
                                       (json_int_t)r->refresh_expires_in_s));
    sodium_memzero(r, sizeof *r);
    free(r);
    return rc;
}

static json_t *audit_json(const store_audit_entry *e)
{
    return json_pack("{s:I, s:I, s:s, s:s, s:s, s:i, s:s}", "id", (json_int_t)e->id, "time_ms",
                     (json_int_t)e->time_ms, "who", e->who, "method", e->method, "route", e->route, "status",
                     e->status, "request_id", e->request_id);
}

static int audit_list(http_req *req, void *ctx)
{
    api_platform *p = ctx;
    long long limit, offset, before;
    int rc = api__query_int(req, "limit", 1, 1000, 50, &limit);
    if (rc == MD_OK)
        rc = api__query_int(req, "offset", 0, 1000000, 0, &offset);
    if (rc == MD_OK)
        rc = api__query_int(req, "before", 0, INT64_MAX, 0, &before);
    if (rc != MD_OK)
        return rc;
    store_audit_page pg = {.before_id = before, .offset = (size_t)offset, .limit = (size_t)limit};
    store_audit_entry *es = NULL;
    size_t n = 0;
    int64_t next = 0, total = 0;
    rc = store_audit_list(p->o.store, &pg, &es, &n, &next, http_req_err(req));
    if (rc == MD_OK)
        rc = store_audit_count(p->o.store, &total, http_req_err(req));
    json_t *arr = json_array();
    for (size_t i = 0; rc == MD_OK && i < n; i++)
        json_array_append_new(arr, audit_json(&es[i]));
    free(es);
    if (rc != MD_OK) {
        json_decref(arr);
        return rc;
    }
    json_t *next_j = next ? json_integer(next) : json_null();
    return http_reply_json(req, 200, json_pack("{s:b, s:o, s:o, s:I, s:I}", "success", 1, "entries", arr,
                                               "next_before", next_j, "total", (json_int_t)total, "limit",
                                               (json_int_t)limit));
}

/* Debug route for the end-to-end tests: occupies a compute worker for ?ms= (at most 60 s),
 * waking every 10 ms to give up at the deadline or when cancelled (a drain out of time), like
 * a real long handler should. */
static int test_slow(http_req *req, void *ctx)
{
    (void)ctx;
    long long ms;
    int rc = api__query_int(req, "ms", 0, 60000, 100, &ms);
    if (rc != MD_OK)
        return rc;
    const md_cancel *cancel = http_req_cancel(req);
    uint64_t end = md_now_ns() + (uint64_t)ms * 1000000u;
    while (md_now_ns() < end && !md_cancel_stopped(cancel))
        usleep(10000);
    rc = md_cancel_check(cancel, "sleep", http_req_err(req));
    if (rc != MD_OK)
        return rc;
    return http_reply_json(req, 200, json_pack("{s:b, s:I}", "success", 1, "slept_ms", (json_int_t)ms));
}

/* Debug route for the tests: a write-role POST (so it is audited) that echoes its JSON body. */
static int test_echo(http_req *req, void *ctx)
{
    (void)ctx;
    json_t *j;
    int rc = http_req_json(req, &j);
    if (rc != MD_OK)
        return rc;
    return http_reply_json(req, 200, json_pack("{s:b, s:o}", "success", 1, "echo", j));
}

/* ---- descriptors (GET /openapi.json) ---- */

#define OK_FIELD "\"success\":{\"const\":true}"

static const http_doc HEALTH_DOC = {
    .summary = "Liveness: the process answers",
    .description = "Cheap and public: answered on the I/O thread without touching the database, so a "
                   "load balancer may call it often. Use /api/ready to know whether requests will "
                   "succeed.",
    .tag = "platform",
    .response = "{\"type\":\"object\",\"required\":[\"success\",\"status\",\"version\",\"uptime_s\"],"
                "\"properties\":{" OK_FIELD ",\"status\":{\"const\":\"ok\"},"
                "\"version\":{\"type\":\"string\",\"description\":\"modeld's version\"},"
                "\"uptime_s\":{\"type\":\"integer\",\"minimum\":0,\"description\":\"seconds since start\"}}}",
};

static const http_doc READY_DOC = {
    .summary = "Readiness: every dependency answers",
    .description = "Runs every readiness check (the database, and those other subsystems add, such as "
                   "required models) and answers 200 only when all pass. Otherwise 503 "
                   "`unavailable` with Retry-After; the message lists the failing checks and `field` "
                   "names the first. Dependencies a node can serve without are reported but never "
                   "fail it: `redis` is `up`, `down` or `not configured`.",
    .tag = "platform",
    .response = "{\"type\":\"object\",\"required\":[\"success\",\"status\",\"checks\"],"
                "\"properties\":{" OK_FIELD ",\"status\":{\"const\":\"ready\"},"
                "\"checks\":{\"type\":\"object\",\"description\":\"each check by name: ok, or the "
                "state of a dependency that does not decide readiness (redis: up | down | not configured)\","
                "\"additionalProperties\":{\"enum\":[\"ok\",\"up\",\"down\",\"not configured\"]}}}}",
    .errors = (const int[]){MD_E_UNAVAILABLE, 0},
};

static const http_doc METRICS_DOC = {
    .summary = "Prometheus metrics",
    .description = "Prometheus text format 0.0.4: requests by route, method and status, latency "
                   "histograms, in-flight requests, compute-pool queue and rejections, rate-limit "
                   "rejections, process RSS/CPU/open files, and what the subsystems add (conversion "
                   "cache, models). Public unless the server runs with metrics_public false.",
    .tag = "platform",
    .response = "{\"type\":\"string\"}",
    .response_type = "text/plain",
    .errors = (const int[]){MD_E_NOMEM, 0},
};

static const http_doc AUDIT_DOC = {
    .summary = "The audit log, newest first",
    .description = "One entry per authenticated request that changed state (every method but GET, "
                   "HEAD and OPTIONS): who (key id), method, route pattern, status and request id. "
                   "Page with `limit` and either `offset` or `before` (the `next_before` of the "
                   "previous page, stable while entries are added).",
    .tag = "platform",
    .query = (const http_doc_param[]){
        {"limit", "{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,\"default\":50}",
         "entries per page", 0},
        {"offset", "{\"type\":\"integer\",\"minimum\":0,\"maximum\":1000000,\"default\":0}",
         "entries to skip", 0},
        {"before", "{\"type\":\"integer\",\"minimum\":0,\"default\":0}",
         "only entries with a smaller id (0 = from the newest)", 0},
        {0}},
    .response = "{\"type\":\"object\",\"required\":[\"success\",\"entries\",\"next_before\",\"total\",\"limit\"],"
                "\"properties\":{" OK_FIELD ",\"entries\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
                "\"required\":[\"id\",\"time_ms\",\"who\",\"method\",\"route\",\"status\",\"request_id\"],"
                "\"properties\":{\"id\":{\"type\":\"integer\"},"
                "\"time_ms\":{\"type\":\"integer\",\"description\":\"ms since the epoch, UTC\"},"
                "\"who\":{\"type\":\"string\",\"description\":\"API key id, or anonymous\"},"
                "\"method\":{\"type\":\"string\"},\"route\":{\"type\":\"string\",\"description\":\"route pattern\"},"
                "\"status\":{\"type\":\"integer\"},\"request_id\":{\"type\":\"string\"}}}},"
                "\"next_before\":{\"type\":[\"integer\",\"null\"],\"description\":\"before= for the next page; null at the end\"},"
                "\"total\":{\"type\":\"integer\",\"description\":\"entries in the log\"},"
                "\"limit\":{\"type\":\"integer\"}}}",
    .errors = (const int[]){MD_E_INVALID_PARAM, MD_E_IO, 0},
};

static const http_doc TOKEN_DOC = {
    .summary = "Exchange an API key for a short-lived token",
    .description = "Authenticate with an API key (or a token) and get a JWT (HS256) of the same role "
                   "and key id, valid for jwt_ttl (15 minutes by default). Send it as "
                   "`Authorization: Bearer <token>`. Authenticated with an API key, the answer also "
                   "carries a refresh_token (single use, for POST /api/auth/refresh; valid refresh_ttl); "
                   "authenticated with a JWT it does not (a refresh token would outlive the JWT). "
                   "The body is optional; when sent it must be an "
                   "empty JSON object. Tokens are not issued when the server runs with --no-auth.",
    .tag = "platform",
    .response = "{\"type\":\"object\",\"required\":[\"success\",\"access_token\",\"token_type\",\"expires_in\",\"role\"],"
                "\"properties\":{" OK_FIELD ",\"access_token\":{\"type\":\"string\",\"description\":\"the JWT\"},"
                "\"token_type\":{\"const\":\"Bearer\"},"
                "\"expires_in\":{\"type\":\"integer\",\"description\":\"seconds until it expires\"},"
                "\"role\":{\"type\":\"string\",\"enum\":[\"read\",\"write\",\"admin\"]},"
                "\"refresh_token\":{\"type\":\"string\",\"description\":\"only when authenticated with an API key\"},"
                "\"refresh_expires_in\":{\"type\":\"integer\",\"description\":\"seconds until the refresh token expires\"}}}",
    .errors = (const int[]){MD_E_INVALID_JSON, MD_E_INVALID_PARAM, MD_E_UNSUPPORTED_MEDIA, MD_E_UNSUPPORTED,
                            MD_E_FORBIDDEN, MD_E_IO, 0},
};

static const http_doc REFRESH_DOC = {
    .summary = "Trade a refresh token for a new access token and a new refresh token",
    .description = "No credentials header: the refresh token in the body is the credential. Answers a new JWT "
                   "(of the key's current role) and the next refresh token of the same family; the presented "
                   "one is used up (single use, rotating). Presenting a used refresh token again revokes its "
                   "whole family (every token rotated from the same POST /api/auth/token) and answers 401, so "
                   "a stolen token dies as soon as either holder uses it twice. Revoking the API key revokes "
                   "its refresh tokens. Each refresh token lives refresh_ttl (30 days by default) from its "
                   "issue. Every outcome is written to the audit log under the token's key.",
    .tag = "platform",
    .request = "{\"type\":\"object\",\"required\":[\"refresh_token\"],\"additionalProperties\":false,"
               "\"properties\":{\"refresh_token\":{\"type\":\"string\",\"pattern\":\"^mdr_[A-Za-z0-9_-]{43}$\","
               "\"description\":\"from POST /api/auth/token or the previous refresh\"}}}",
    .response = "{\"type\":\"object\",\"required\":[\"success\",\"access_token\",\"token_type\",\"expires_in\",\"role\","
                "\"refresh_token\",\"refresh_expires_in\"],"
                "\"properties\":{" OK_FIELD ",\"access_token\":{\"type\":\"string\",\"description\":\"the JWT\"},"
                "\"token_type\":{\"const\":\"Bearer\"},"
                "\"expires_in\":{\"type\":\"integer\",\"description\":\"seconds until the JWT expires\"},"
                "\"role\":{\"type\":\"string\",\"enum\":[\"read\",\"write\",\"admin\"]},"
                "\"refresh_token\":{\"type\":\"string\",\"description\":\"the next refresh token (single use)\"},"
                "\"refresh_expires_in\":{\"type\":\"integer\",\"description\":\"seconds until it expires\"}}}",
    .errors = (const int[]){MD_E_INVALID_JSON, MD_E_INVALID_PARAM, MD_E_UNSUPPORTED_MEDIA, MD_E_UNAUTHORIZED,
                            MD_E_UNSUPPORTED, MD_E_IO, 0},
};

static const http_doc TEST_SLOW_DOC = {
    .summary = "Test: occupy a compute worker",
    .description = "Only with --test-routes. Sleeps `ms` milliseconds on the compute pool, giving up "
                   "at the request deadline (504).",
    .tag = "test",
    .query = (const http_doc_param[]){
        {"ms", "{\"type\":\"integer\",\"minimum\":0,\"maximum\":60000,\"default\":100}", "how long", 0},
        {0}},
    .response = "{\"type\":\"object\",\"required\":[\"success\",\"slept_ms\"],"
                "\"properties\":{" OK_FIELD ",\"slept_ms\":{\"type\":\"integer\"}}}",
    .errors = (const int[]){MD_E_INVALID_PARAM, MD_E_TIMEOUT, 0},
};

static const http_doc TEST_ECHO_DOC = {
    .summary = "Test: echo a JSON body",
    .description = "Only with --test-routes. A write-role request (so it is audited) that answers the "
                   "JSON object it was sent.",
    .tag = "test",
    .request = "{\"type\":\"object\"}",
    .response = "{\"type\":\"object\",\"required\":[\"success\",\"echo\"],"
                "\"properties\":{" OK_FIELD ",\"echo\":{\"type\":\"object\"}}}",
    .errors = (const int[]){MD_E_INVALID_JSON, MD_E_UNSUPPORTED_MEDIA, 0},
};

/* Add a route with its descriptor; false when the route could not be added. */
static bool add(http_server *srv, const char *method, const char *pattern, http_role role, int flags,
                http_handler_fn fn, api_platform *p, const http_doc *doc)
{
    http_route *r = http_route_add(srv, method, pattern, role, flags, fn, p);
    http_route_doc(r, doc);
    return r != NULL;
}

int api_platform_register_probes(api_platform *p, http_server *srv, md_err *err)
{
    p->srv = srv;
    const int pub = HTTP_LIGHT | HTTP_NO_RATELIMIT | HTTP_NO_AUDIT;
    bool ok = add(srv, "GET", "/api/health", HTTP_ROLE_PUBLIC, pub, health, p, &HEALTH_DOC) &&
              add(srv, "GET", "/api/ready", HTTP_ROLE_PUBLIC, pub | HTTP_HEAVY, ready, p, &READY_DOC) &&
              add(srv, "GET", "/metrics", HTTP_ROLE_PUBLIC, pub, metrics, p, &METRICS_DOC);
    if (ok && p->o.store)
        ok = http_metrics_collector(srv, audit_metrics, p) == MD_OK;
    return ok ? MD_OK : md_fail(err, MD_E_INTERNAL, NULL, "cannot register the probe routes");
}

int api_platform_register(api_platform *p, http_server *srv, md_err *err)
{
    p->srv = srv;
    const int pub = HTTP_LIGHT | HTTP_NO_RATELIMIT | HTTP_NO_AUDIT;
    bool ok = add(srv, "GET", "/api/health", HTTP_ROLE_PUBLIC, pub, health, p, &HEALTH_DOC) &&
              add(srv, "GET", "/api/ready", HTTP_ROLE_PUBLIC, pub | HTTP_HEAVY, ready, p, &READY_DOC) &&
              add(srv, "GET", "/metrics", p->o.metrics_public ? HTTP_ROLE_PUBLIC : HTTP_ROLE_ADMIN, pub,
                  metrics, p, &METRICS_DOC) &&
              add(srv, "GET", "/api/admin/audit", HTTP_ROLE_ADMIN, HTTP_HEAVY, audit_list, p, &AUDIT_DOC);
    /* Issuing tokens stores a refresh token (a new family), so it is audited like any write. */
    ok = ok && add(srv, "POST", "/api/auth/token", HTTP_ROLE_READ, 0, token, p, &TOKEN_DOC);
    /* Public: the refresh token is the credential; refresh() writes its own audit entries. */
    ok = ok && add(srv, "POST", "/api/auth/refresh", HTTP_ROLE_PUBLIC, HTTP_NO_AUDIT, refresh, p, &REFRESH_DOC);
    if (ok && p->o.test_routes) {
        md_log(MD_LOG_WARN, "test routes enabled (/api/test/*): not for production");
        ok = add(srv, "GET", "/api/test/slow", HTTP_ROLE_PUBLIC, HTTP_HEAVY | HTTP_NO_RATELIMIT, test_slow, p,
                 &TEST_SLOW_DOC) &&
             add(srv, "POST", "/api/test/echo", HTTP_ROLE_WRITE, HTTP_LIGHT, test_echo, p, &TEST_ECHO_DOC);
    }
    if (ok && p->o.store)
        ok = http_metrics_collector(srv, audit_metrics, p) == MD_OK;
    return ok ? MD_OK : md_fail(err, MD_E_INTERNAL, NULL, "cannot register the platform routes");
}
