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
 *   4. No audit entry is lost silently. A batch that cannot be written (disk full, database
 *      locked) stays at the head of the queue and is tried again every AUDIT_RETRY_MS, while new
 *      entries queue behind it. An entry is dropped only when the queue is full and it cannot
 *      be written at once either, or when it is still unwritable at shutdown; every drop is
 *      logged as an error with the whole entry (so the log keeps the trail) and counted in
 *      modeld_audit_dropped_total.
 */
#include "api/platform.h"

#include "base/log.h"

#include <errno.h>
#include <pthread.h>
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
    void *ctx;
} ready_check;

struct api_platform {
    api_platform_opts o;
    ready_check checks[READY_MAX];
    size_t nchecks;
    http_server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    store_audit_entry *q;     /* ring of AUDIT_QUEUE entries */
    store_audit_entry *batch; /* AUDIT_BATCH entries, the writer's own */
    size_t head, count;
    bool stop;
    bool failing;            /* under mu: the last write failed; the queue is being kept */
    uint64_t dropped;        /* under mu: entries lost (invariant 4) */
    pthread_t writer;
    bool writer_running;
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
    return rc == MD_E_RATE_LIMITED ? rc : MD_OK; /* a limiter failure never blocks traffic */
}

/* Invariant 4: the last resort, an entry that cannot be stored. Called without mu held. */
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

/* One transaction for the batch (all or none are stored). */
static int audit_write_batch(api_platform *p, const store_audit_entry *b, size_t n, md_err *e)
{
    return store_audit_append_many(p->o.store, b, n, e);
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
    if (p->count < AUDIT_QUEUE && p->writer_running) {
        p->q[(p->head + p->count) % AUDIT_QUEUE] = it;
        p->count++;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        return;
    }
    bool failing = p->failing;
    pthread_mutex_unlock(&p->mu);
    /* Queue full. A healthy but slow store: slow down this request rather than lose the entry.
     * A failing one (the queue filled while it could not write): do not make every request wait
     * on it too. */
    md_err err;
    if (failing)
        audit_drop(p, &it, "the audit queue is full and the store cannot be written");
    else if (audit_write_batch(p, &it, 1, &err) != MD_OK)
        audit_drop(p, &it, md_err_message(&err));
}

/* After a failed batch: log once per outage, then wait AUDIT_RETRY_MS (or the stop signal).
 * mu held. */
static void audit_backoff(api_platform *p, const md_err *e)
{
    if (!p->failing)
        md_log_fields(MD_LOG_ERROR, "audit entries cannot be written; keeping them queued and retrying",
                      (const char *const[]){"error", md_err_message(e), NULL});
    p->failing = true;
    if (p->stop)
        return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += AUDIT_RETRY_MS / 1000;
    until.tv_nsec += (long)(AUDIT_RETRY_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    /* new entries signal cv too: keep waiting, or a busy server would retry per request */
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

static void *audit_writer(void *arg)
{
    api_platform *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->count == 0 && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->count == 0)
            break;
        size_t n = p->count < AUDIT_BATCH ? p->count : AUDIT_BATCH;
        for (size_t i = 0; i < n; i++)
            p->batch[i] = p->q[(p->head + i) % AUDIT_QUEUE];
        bool stopping = p->stop;
        pthread_mutex_unlock(&p->mu);
        md_err e;
        int rc = audit_write_batch(p, p->batch, n, &e);
        pthread_mutex_lock(&p->mu);
        if (rc == MD_OK) {
            /* only the writer takes entries off the queue, so these n are still its head */
            p->head = (p->head + n) % AUDIT_QUEUE;
            p->count -= n;
            if (p->failing)
                md_log(MD_LOG_WARN, "audit entries are written again");
            p->failing = false;
            continue;
        }
        audit_backoff(p, &e);
        if (stopping)
            audit_drop_queue(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
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
    if (o->store && pthread_create(&p->writer, NULL, audit_writer, p) == 0)
        p->writer_running = true;
    *out = p;
    return MD_OK;
}

void api_platform_free(api_platform *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->writer_running)
        pthread_join(p->writer, NULL);
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
        snprintf(failed, sizeof failed, "database: not reachable");
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
        http_req_log(req, MD_LOG_WARN, "not ready: %s", failed);
        http_reply_header(req, "Retry-After", "1");
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
    return http_reply_json(req, 200, json_pack("{s:b, s:s, s:s, s:I, s:s}", "success", 1, "access_token", tok,
                                               "token_type", "Bearer", "expires_in", (json_int_t)ttl, "role",
                                               http_role_name(id->role)));
}

/* Optional non-negative integer query argument; MD_E_INVALID_PARAM naming it otherwise. */
static int query_int(http_req *req, const char *name, long long lo, long long hi, long long def, long long *out)
{
    const char *v = http_req_query(req, name);
    *out = def;
    if (!v)
        return MD_OK;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || n < lo || n > hi || v[0] == '-' || v[0] == '+')
        return md_fail(http_req_err(req), MD_E_INVALID_PARAM, name, "%s must be an integer in %lld..%lld", name, lo, hi);
    *out = n;
    return MD_OK;
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
    int rc = query_int(req, "limit", 1, 1000, 50, &limit);
    if (rc == MD_OK)
        rc = query_int(req, "offset", 0, 1000000, 0, &offset);
    if (rc == MD_OK)
        rc = query_int(req, "before", 0, INT64_MAX, 0, &before);
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
 * waking every 10 ms to give up at the deadline like a real long handler should. */
static int test_slow(http_req *req, void *ctx)
{
    (void)ctx;
    long long ms;
    int rc = query_int(req, "ms", 0, 60000, 100, &ms);
    if (rc != MD_OK)
        return rc;
    uint64_t end = md_now_ns() + (uint64_t)ms * 1000000u;
    while (md_now_ns() < end && !http_req_expired(req))
        usleep(10000);
    if (http_req_expired(req))
        return md_fail(http_req_err(req), MD_E_TIMEOUT, NULL, NULL);
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

int api_platform_register(api_platform *p, http_server *srv, md_err *err)
{
    p->srv = srv;
    const int pub = HTTP_LIGHT | HTTP_NO_RATELIMIT | HTTP_NO_AUDIT;
    bool ok = http_route_add(srv, "GET", "/api/health", HTTP_ROLE_PUBLIC, pub, health, p) &&
              http_route_add(srv, "GET", "/api/ready", HTTP_ROLE_PUBLIC, pub | HTTP_HEAVY, ready, p) &&
              http_route_add(srv, "GET", "/metrics", p->o.metrics_public ? HTTP_ROLE_PUBLIC : HTTP_ROLE_ADMIN, pub,
                             metrics, p) &&
              http_route_add(srv, "GET", "/api/admin/audit", HTTP_ROLE_ADMIN, HTTP_HEAVY, audit_list, p);
    /* Issuing a JWT changes no stored state (tokens are stateless), so it is not audited. */
    ok = ok && http_route_add(srv, "POST", "/api/auth/token", HTTP_ROLE_READ, HTTP_NO_AUDIT, token, p);
    if (ok && p->o.test_routes) {
        md_log(MD_LOG_WARN, "test routes enabled (/api/test/*): not for production");
        ok = http_route_add(srv, "GET", "/api/test/slow", HTTP_ROLE_PUBLIC, HTTP_HEAVY | HTTP_NO_RATELIMIT, test_slow,
                            p) != NULL &&
             http_route_add(srv, "POST", "/api/test/echo", HTTP_ROLE_WRITE, HTTP_LIGHT, test_echo, p) != NULL;
    }
    if (ok && p->o.store)
        ok = http_metrics_collector(srv, audit_metrics, p) == MD_OK;
    return ok ? MD_OK : md_fail(err, MD_E_INTERNAL, NULL, "cannot register the platform routes");
}
