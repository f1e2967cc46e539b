/* server.c - libmicrohttpd glue: the daemon, its access and completion callbacks, HEAVY
 * requests on the compute pool with suspend/resume, deadlines (the reaper thread), and the
 * graceful drain.
 *
 * libmicrohttpd calls the access callback several times per request: once when the headers
 * are in (we run route match, auth and the rate limit then), once per chunk of body, and once
 * more with no data when the request is complete. We answer on that last call: answering on
 * the first one makes libmicrohttpd close a keep-alive connection. The only early answers are
 * refusals of a request that still has a body to send (413, 401...), where closing is wanted.
 *
 * A HEAVY request is detached (headers copied into its arena), suspended and queued; see the
 * invariants and the state diagram of http_int.h for who owns it while it is away. Past its
 * deadline (the reaper) or when a drain runs out of time (close_watch), the request is answered
 * at once and its cancel token is set, so the worker stops at its next md_cancel_check instead
 * of finishing work nobody will read: the pool slot frees and a drain ends on time.
 */
#include "http/http_int.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

const char *http__conn_value(struct MHD_Connection *c, int kind, const char *name)
{
    return MHD_lookup_connection_value(c, (enum MHD_ValueKind)kind, name);
}

/* ---- detaching a request from its connection ---- */

typedef struct kv_copy {
    md_arena *a;
    http_kv *kv;
    size_t n, cap;
    bool oom;
} kv_copy;

static enum MHD_Result copy_kv(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    (void)kind;
    kv_copy *c = cls;
    if (c->n == c->cap)
        return MHD_NO;
    c->kv[c->n].k = md_arena_strdup(c->a, k ? k : "");
    c->kv[c->n].v = md_arena_strdup(c->a, v ? v : "");
    c->oom |= !c->kv[c->n].k || !c->kv[c->n].v;
    c->n++;
    return MHD_YES;
}

static int copy_kind(http_req *r, enum MHD_ValueKind kind, http_kv **out, size_t *n)
{
    int count = MHD_get_connection_values(r->conn, kind, NULL, NULL);
    kv_copy c = {r->arena, NULL, 0, count > 0 ? (size_t)count : 0, false};
    c.kv = md_arena_calloc(r->arena, c.cap + 1, sizeof *c.kv);
    if (!c.kv)
        return MD_E_NOMEM;
    if (c.cap)
        MHD_get_connection_values(r->conn, kind, copy_kv, &c);
    *out = c.kv;
    *n = c.n;
    return c.oom ? MD_E_NOMEM : MD_OK;
}

int http__req_detach(http_req *r)
{
    if (r->detached || !r->conn)
        return MD_OK;
    int rc = copy_kind(r, MHD_HEADER_KIND, &r->hdrs, &r->nhdrs);
    if (rc == MD_OK)
        rc = copy_kind(r, MHD_GET_ARGUMENT_KIND, &r->query, &r->nquery);
    if (rc == MD_OK)
        r->detached = true;
    return rc;
}

/* ---- building and queueing the answer ---- */

static void add_hdr(void *cls, const char *k, const char *v) { MHD_add_response_header(cls, k, v); }

static enum MHD_Result send_response(http_req *r, struct MHD_Response *resp, int status, uint64_t bytes)
{
    if (!resp)
        return MHD_NO;
    http__std_headers(r, add_hdr, resp);
    r->fin_status = status;
    r->fin_bytes = bytes;
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The handler's answer. Bodies are in the arena (or r->out_malloced), which lives until the
 * completion callback, after the last byte is sent: so libmicrohttpd need not copy them. */
/* libmicrohttpd sent the 101 answer: the socket now belongs to the WebSocket hub (ws.c). */
static void on_upgrade(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    (void)c;
    (void)con_cls;
    http__ws_upgraded(cls, sock, urh, extra_in, extra_in_size);
}

/* ---- streamed bodies (http_reply_stream) ---- */

void http__stream_done(void *cls)
{
    http__stream_free(cls);
}

ssize_t http__stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos; /* libmicrohttpd reads sequentially: pos == st->sent */
    http__stream *st = cls;
    if (st->sent >= st->size)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t want = st->size - st->sent < max ? (size_t)(st->size - st->sent) : max;
    size_t got = 0;
    int rc = st->read(st->ctx, buf, want, &got);
    if (rc != MD_OK || got == 0) {
        md_log(MD_LOG_ERROR, "http: request %s: streamed body failed after %llu of %llu bytes (%s); closing",
               st->req_id, (unsigned long long)st->sent, (unsigned long long)st->size,
               rc != MD_OK ? md_err_name(rc) : "ended early");
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    st->sent += got;
    return (ssize_t)got;
}

static enum MHD_Result queue_reply(http_req *r)
{
    struct MHD_Response *resp;
    uint64_t bytes = r->out_len;
    if (r->ws && r->status == 101) {
        resp = MHD_create_response_for_upgrade(on_upgrade, r->ws); /* r holds a reference to ws */
    } else if (r->out_fd >= 0) {
        resp = MHD_create_response_from_fd64(r->out_fd_size, r->out_fd);
        if (resp)
            r->out_fd = -1; /* libmicrohttpd closes it now */
        bytes = r->out_fd_size;
    } else if (r->out_stream) {
        resp = MHD_create_response_from_callback(r->out_stream->size, 64 * 1024,
                                                 http__stream_read, r->out_stream,
                                                 http__stream_done);
        bytes = r->out_stream->size;
        if (resp)
            r->out_stream = NULL; /* libmicrohttpd releases it now */
    } else {
        resp = MHD_create_response_from_buffer(r->out_len, (void *)(uintptr_t)r->out, MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return MHD_NO;
    if (r->ctype)
        MHD_add_response_header(resp, "Content-Type", r->ctype);
    if (r->gzipped)
        MHD_add_response_header(resp, "Content-Encoding", "gzip");
    if (r->vary_ae)
        MHD_add_response_header(resp, "Vary", "Accept-Encoding");
    for (const http_hdr *h = r->rhdrs; h; h = h->next)
        MHD_add_response_header(resp, h->k, h->v);
    return send_response(r, resp, r->status, bytes);
}

/* An answer decided by the I/O thread while a worker may still own the arena (504, shutdown). */
static enum MHD_Result queue_detached_error(http_req *r, int code, const char *msg)
{
    char buf[1024];
    size_t n = http__error_json(buf, sizeof buf, code, NULL, msg, r->id, http__err_oip(r));
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, buf, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    const char *retry = http__retry_after(code);
    if (retry)
        MHD_add_response_header(resp, "Retry-After", retry);
    return send_response(r, resp, md_err_status(code), n);
}

static enum MHD_Result answer_now(http_req *r)
{
    http__req_to(r, REQ_RUNNING);
    http__req_run(r);
    http__req_finalize(r);
    http__req_to(r, REQ_REPLIED);
    return queue_reply(r);
}

/* A state move of a request that went to the compute pool (http_int.h: under watch_mu). */
static void heavy_to(http_req *r, req_state to)
{
    pthread_mutex_lock(&r->srv->watch_mu);
    http__req_to(r, to);
    pthread_mutex_unlock(&r->srv->watch_mu);
}

/* ---- the watch list (queued heavy requests) and the reaper ---- */

static void watch_add(http_server *s, http_req *r)
{
    r->wprev = NULL;
    r->wnext = s->watch;
    if (s->watch)
        s->watch->wprev = r;
    s->watch = r;
}

static void watch_remove(http_server *s, http_req *r)
{
    if (r->wprev)
        r->wprev->wnext = r->wnext;
    else
        s->watch = r->wnext;
    if (r->wnext)
        r->wnext->wprev = r->wprev;
    r->wnext = r->wprev = NULL;
}

/* Hand a queued request back to its I/O thread in a final state (DONE, TIMEDOUT, SHUTDOWN).
 * Caller holds watch_mu. */
static void give_back(http_server *s, http_req *r, req_state st)
{
    http__req_to(r, st);
    watch_remove(s, r);
    MHD_resume_connection(r->conn);
}

static void *reaper(void *arg)
{
    http_server *s = arg;
    pthread_mutex_lock(&s->watch_mu);
    while (!s->reaper_stop) {
        uint64_t now = md_now_ns(), next = UINT64_MAX;
        for (http_req *r = s->watch, *n; r; r = n) {
            n = r->wnext;
            if (r->deadline_ns <= now) {
                atomic_fetch_add(&s->timeouts, 1);
                md_cancel_request(&r->cancel); /* the worker stops at its next check */
                give_back(s, r, REQ_TIMEDOUT);
            } else if (r->deadline_ns < next) {
                next = r->deadline_ns;
            }
        }
        if (next == UINT64_MAX) {
            pthread_cond_wait(&s->watch_cv, &s->watch_mu);
            continue;
        }
        struct timespec ts = {(time_t)(next / 1000000000u), (long)(next % 1000000000u)};
        pthread_cond_timedwait(&s->watch_cv, &s->watch_mu, &ts);
    }
    pthread_mutex_unlock(&s->watch_mu);
    return NULL;
}

static void run_heavy(void *arg)
{
    http_req *r = arg;
    http_server *s = r->srv;
    pthread_mutex_lock(&s->watch_mu);
    bool go = r->state == REQ_QUEUED; /* else the reaper or the drain answered it already */
    if (go)
        http__req_to(r, REQ_RUNNING);
    pthread_mutex_unlock(&s->watch_mu);
    if (go && !md_cancel_stopped(&r->cancel)) {
        http__req_run(r);
        http__req_finalize(r);
    }
    pthread_mutex_lock(&s->watch_mu);
    if (r->state == REQ_RUNNING) {
        /* A handler that saw its deadline pass before the reaper did answers 504 itself: the
         * metric counts every request answered 504 at its deadline, whoever noticed first. */
        if (!r->replied || r->status == 504)
            atomic_fetch_add(&s->timeouts, 1);
        give_back(s, r, r->replied ? REQ_DONE : REQ_TIMEDOUT);
    }
    pthread_mutex_unlock(&s->watch_mu);
    http__req_unref(r);
}

static enum MHD_Result start_heavy(http_req *r)
{
    http_server *s = r->srv;
    if (http__req_detach(r) != MD_OK) {
        md_fail(&r->err, MD_E_NOMEM, NULL, NULL);
        r->pending = MD_E_NOMEM;
        return answer_now(r);
    }
    atomic_fetch_add(&r->refs, 1);
    pthread_mutex_lock(&s->watch_mu);
    req_state was = r->state;
    r->heavy = true;
    http__req_to(r, REQ_QUEUED);
    int rc = s->closing ? MD_E_UNAVAILABLE : md_pool_submit(s->pool, run_heavy, r);
    if (rc != MD_OK) { /* nobody else saw it: back to the I/O thread alone */
        http__req_to(r, was);
        r->heavy = false;
        pthread_mutex_unlock(&s->watch_mu);
        atomic_fetch_sub(&r->refs, 1);
        if (rc == MD_E_OVERLOADED)
            atomic_fetch_add(&s->queue_rejected, 1);
        r->pending = md_fail(&r->err, rc, NULL, rc == MD_E_OVERLOADED ? "the compute queue is full, retry later"
                                                                    : "the server is shutting down");
        return answer_now(r); /* the error answer adds Retry-After (http__retry_after) */
    }
    /* Suspend while holding watch_mu: the worker resumes only under it, so never before this. */
    watch_add(s, r);
    MHD_suspend_connection(r->conn);
    pthread_cond_signal(&s->watch_cv);
    pthread_mutex_unlock(&s->watch_mu);
    return MHD_YES;
}

/* ---- libmicrohttpd callbacks ---- */

static void client_ip(struct MHD_Connection *c, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, cap, "unknown");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, (socklen_t)cap);
}

/* Declared Content-Length (libmicrohttpd has validated its syntax), -1 when absent. */
static long long content_length(struct MHD_Connection *c, bool *chunked)
{
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");
    *chunked = te && strcasecmp(te, "identity") != 0;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    return cl ? strtoll(cl, NULL, 10) : -1;
}

/* Bad framing (framing.c) is answered at once, before route, auth or body, and the connection
 * closed: libmicrohttpd closes after an early answer to a POST/PUT only, hence the header. */
static bool refuse_framing(http_req *r, struct MHD_Connection *c, const char *version)
{
    int rc = http__check_framing(c, version, &r->err);
    if (rc == MD_OK)
        return false;
    r->pending = rc;
    http_reply_header(r, "Connection", "close");
    return true;
}

static enum MHD_Result first_call(http_server *s, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, void **con_cls)
{
    http_req *r = http__req_new(s);
    if (!r)
        return MHD_NO;
    r->conn = c;
    *con_cls = r;
    client_ip(c, r->ip, sizeof r->ip);
    r->http10 = version && strcmp(version, "HTTP/1.0") == 0;
    http__req_begin(r, method, url);
    if (refuse_framing(r, c, version))
        return answer_now(r);
    bool chunked;
    long long cl = content_length(c, &chunked);
    http__req_headers_in(r, cl);
    if (r->pending && (cl > 0 || chunked))
        return answer_now(r); /* refuse before the body is sent; the connection closes */
    return MHD_YES;
}

/* HEAVY routes go to the compute pool unless their inline predicate says this one is tiny. */
static bool goes_to_pool(http_req *r)
{
    const http_route *rt = r->match.route;
    if (!(rt->flags & HTTP_HEAVY))
        return false;
    if (!rt->inline_fn || !rt->inline_fn(r, rt->ctx))
        return true;
    atomic_fetch_add_explicit(&r->srv->ran_inline, 1, memory_order_relaxed);
    return false;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *data, size_t *size, void **con_cls)
{
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r)
        return first_call(s, c, url, method, version, con_cls);
    if (*size) {
        bool keep = http__req_body_in(r, data, *size);
        *size = 0;
        return keep ? MHD_YES : MHD_NO;
    }
    switch (r->state) {
    case REQ_AUTHED:
    case REQ_BODY:
        http__req_body_end(r);
        if (!r->replied && !r->pending && goes_to_pool(r))
            return start_heavy(r);
        return answer_now(r);
    case REQ_DONE:
        heavy_to(r, REQ_REPLIED);
        return queue_reply(r);
    case REQ_TIMEDOUT:
        heavy_to(r, REQ_REPLIED);
        return queue_detached_error(r, MD_E_TIMEOUT, NULL);
    case REQ_SHUTDOWN:
        heavy_to(r, REQ_REPLIED);
        return queue_detached_error(r, MD_E_UNAVAILABLE, "the server is shutting down");
    case REQ_REPLIED: /* answered early (a refusal before the body): queueing again fails */
        return MHD_NO;
    default: /* QUEUED, RUNNING: suspended, so never called here */
        break;
    }
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    http_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && r->fin_status == 0)
        r->fin_status = 499; /* client went away before an answer (nginx's convention) */
    if (r->heavy)
        heavy_to(r, REQ_COMPLETED);
    else
        http__req_to(r, REQ_COMPLETED);
    http__req_complete(r);
    http__req_unref(r);
}

/* ---- lifecycle ---- */

static unsigned ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

int http_server_new(const http_opts *o, http_server **out, md_err *err)
{
    *out = NULL;
    http_server *s = calloc(1, sizeof *s);
    if (!s)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    s->o = *o;
    s->o.io_threads = o->io_threads ? o->io_threads : (ncpu() < 4 ? ncpu() : 4);
    s->o.compute_threads = o->compute_threads ? o->compute_threads : ncpu();
    s->o.compute_queue = o->compute_queue ? o->compute_queue : 256;
    s->o.body_limit = o->body_limit ? o->body_limit : 25u * 1024 * 1024;
    s->o.request_timeout_ms = o->request_timeout_ms ? o->request_timeout_ms : 30000;
    s->o.conn_timeout_s = o->conn_timeout_s ? o->conn_timeout_s : 30;
    s->o.max_connections = o->max_connections ? o->max_connections : 1024;
    s->o.gzip_min = o->gzip_min ? o->gzip_min : 1024;
    s->host = strdup(o->host && *o->host ? o->host : "127.0.0.1");
    s->cors = o->cors_origins && *o->cors_origins ? strdup(o->cors_origins) : NULL;
    const char *tmp = getenv("TMPDIR");
    s->spool = strdup(o->spool_dir && *o->spool_dir ? o->spool_dir : tmp && *tmp ? tmp : "/tmp");
    s->listen_fd = s->stop_fd = -1;
    http__router_init(&s->router);
    pthread_mutex_init(&s->watch_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* deadlines are monotonic ns */
    pthread_cond_init(&s->watch_cv, &ca);
    pthread_condattr_destroy(&ca);
    s->started_ns = md_now_ns();
    int rc = s->host && s->spool && (!o->cors_origins || !*o->cors_origins || s->cors) ? http__metrics_new(&s->metrics) : MD_E_NOMEM;
    if (rc == MD_OK)
        s->unmatched = http__metrics_route(s->metrics, "ANY", "unmatched");
    if (rc != MD_OK || !s->unmatched) {
        http_server_free(s);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    *out = s;
    return MD_OK;
}

http_route *http_route_add(http_server *s, const char *method, const char *pattern, http_role role, int flags,
                           http_handler_fn fn, void *ctx)
{
    http_route *r = NULL;
    bool ws_ok = !(flags & HTTP_WS) || (strcmp(method, "GET") == 0 && !(flags & HTTP_HEAVY) &&
                                         http__ws_hub_new(s) == MD_OK);
    if (!atomic_load(&s->started) && fn && ws_ok)
        r = http__router_add(&s->router, method, pattern);
    if (r)
        r->stats = http__metrics_route(s->metrics, method, pattern);
    if (!r || !r->stats) {
        md_log(MD_LOG_ERROR, "cannot add route %s %s (malformed, duplicate, or server started)", method, pattern);
        return NULL;
    }
    r->role = role;
    r->flags = flags;
    r->fn = fn;
    r->ctx = ctx;
    r->body_limit = (flags & HTTP_WS) ? 0 : s->o.body_limit; /* a WebSocket handshake has no body */
    return r;
}

void http_route_body_limit(http_route *r, size_t max) { r->body_limit = max; }
void http_route_body_sink(http_route *r, http_body_fn fn) { r->sink = fn; }
void http_route_inline_if(http_route *r, http_inline_fn fn) { r->inline_fn = fn; }
void http_route_doc(http_route *r, const http_doc *d)
{
    if (r)
        r->doc = d;
}

void http_routes_visit(const http_server *s, http_route_visit_fn fn, void *ctx)
{
    for (size_t i = 0; i < s->router.n; i++) {
        const http_route *r = s->router.routes[i];
        fn(ctx, r->method, r->pattern, r->role, r->flags, r->doc);
    }
}

/* Resolve host (a name or a numeric address) into a socket address for libmicrohttpd. */
static int resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, md_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return md_fail(err, MD_E_INVALID_PARAM, "host", "cannot resolve host '%s'", host);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons(port);
    return MD_OK;
}

static bool any_spool(const http_server *s)
{
    for (size_t i = 0; i < s->router.n; i++)
        if (s->router.routes[i]->spool)
            return true;
    return false;
}

int http_server_start(http_server *s, md_err *err)
{
    struct sockaddr_storage ss;
    int rc = resolve(s->host, s->o.port, &ss, err);
    if (rc != MD_OK)
        return rc;
    if (any_spool(s)) {
        rc = http__spool_prepare(s, err);
        if (rc != MD_OK)
            return rc;
    }
    rc = md_pool_new(s->o.compute_threads, s->o.compute_queue, &s->pool);
    if (rc != MD_OK)
        return md_fail(err, rc, NULL, "cannot start the compute pool");
    if (pthread_create(&s->reaper, NULL, reaper, s) != 0)
        return md_fail(err, MD_E_NOMEM, NULL, "cannot start the deadline thread");
    s->reaper_running = true;
    bool any_ws = s->ws_hub != NULL;
    rc = http__ws_hub_start(s, err);
    if (rc != MD_OK)
        return rc;
    s->started_ns = md_now_ns(); /* before the I/O threads exist: they read it (uptime) */
    rc = http__listener_open(s, &ss, 1024, err);
    if (rc != MD_OK)
        return rc;
    /* MHD_USE_NO_LISTEN_SOCKET: accept.c accepts and hands connections over (why: see there). */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_NO_LISTEN_SOCKET | (any_ws ? MHD_ALLOW_UPGRADE : 0);
    /* At least two: libmicrohttpd 0.9.75's single-thread epoll loop (pool size < 2) stops
     * reading ready sockets with a hundred or more connections open (measured with its own
     * hello-world under wrk -c256), while its thread pool does not. */
    unsigned pool = s->o.io_threads < 2 ? 2 : s->o.io_threads;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_access, s, MHD_OPTION_THREAD_POOL_SIZE, pool,
                            MHD_OPTION_CONNECTION_TIMEOUT, s->o.conn_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                            s->o.max_connections, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            /* Headers and read buffer of one connection. libmicrohttpd zeroes the
                             * whole pool after every request; 16 KiB (not its 32 KiB) halves that
                             * and still holds nginx's default large-header size. */
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384, MHD_OPTION_END);
    if (!s->d) {
        http__acceptor_stop(s);
        return md_fail(err, MD_E_IO, NULL, "cannot start the HTTP daemon");
    }
    rc = http__acceptor_start(s, err);
    if (rc != MD_OK)
        return rc;
    atomic_store(&s->started, true);
    return MD_OK;
}

uint16_t http_server_port(const http_server *s) { return s->port; }
long http_server_inflight(const http_server *s) { return atomic_load(&s->inflight); }
uint64_t http_server_started_ns(const http_server *s) { return s->started_ns; }

static void wait_idle(http_server *s, uint64_t until_ns)
{
    while (atomic_load(&s->inflight) > 0 && md_now_ns() < until_ns)
        usleep(5000);
}

/* Answer 503 to heavy requests still queued or running, cancel their work (so the workers
 * free up and md_pool_free does not wait for it) and refuse new ones. */
static void close_watch(http_server *s)
{
    pthread_mutex_lock(&s->watch_mu);
    s->closing = true;
    while (s->watch) {
        md_cancel_request(&s->watch->cancel);
        give_back(s, s->watch, REQ_SHUTDOWN);
    }
    pthread_mutex_unlock(&s->watch_mu);
}

static void stop_reaper(http_server *s)
{
    if (!s->reaper_running)
        return;
    pthread_mutex_lock(&s->watch_mu);
    s->reaper_stop = true;
    pthread_cond_signal(&s->watch_cv);
    pthread_mutex_unlock(&s->watch_mu);
    pthread_join(s->reaper, NULL);
    s->reaper_running = false;
}

int http_server_drain(http_server *s, unsigned timeout_ms)
{
    if (!s->d)
        return 0;
    atomic_store(&s->draining, true);
    http__acceptor_stop(s); /* new connections are refused from here on */
    /* WebSockets first: each is a request in flight until its socket closes. Their close frames
     * (1001) need a round trip, so even a zero timeout waits a little for them. */
    http__ws_hub_drain(s, timeout_ms < 200 ? 200 : timeout_ms < 2000 ? timeout_ms : 2000);
    wait_idle(s, md_now_ns() + (uint64_t)timeout_ms * 1000000u);
    long left = atomic_load(&s->inflight);
    close_watch(s);
    wait_idle(s, md_now_ns() + 1000000000u); /* let the 503s above go out */
    stop_reaper(s);
    MHD_stop_daemon(s->d);
    s->d = NULL;
    md_pool_free(s->pool); /* joins workers; requests they still hold are freed there */
    s->pool = NULL;
    return (int)left;
}

void http_server_free(http_server *s)
{
    if (!s)
        return;
    http_server_drain(s, 0);
    http__acceptor_stop(s);
    stop_reaper(s);
    md_pool_free(s->pool);
    http__ws_hub_free(s);
    http__router_free(&s->router);
    http__metrics_free(s->metrics);
    pthread_cond_destroy(&s->watch_cv);
    pthread_mutex_destroy(&s->watch_mu);
    free(s->host);
    free(s->cors);
    free(s->spool);
    free(s);
}

/* ---- metrics glue ---- */

http_counter *http_metrics_counter(http_server *s, const char *name, const char *help)
{
    return atomic_load(&s->started) ? NULL : http__metrics_counter(s->metrics, name, help);
}

http_gauge *http_metrics_gauge(http_server *s, const char *name, const char *help)
{
    return atomic_load(&s->started) ? NULL : http__metrics_gauge(s->metrics, name, help);
}

int http_metrics_collector(http_server *s, http_collector_fn fn, void *ctx)
{
    return atomic_load(&s->started) ? MD_E_INTERNAL : http__metrics_collector(s->metrics, fn, ctx);
}

int http_metrics_render(http_server *s, md_buf *out)
{
    http__server_gauges g = {
        .inflight = atomic_load(&s->inflight),
        .queue_depth = s->pool ? md_pool_depth(s->pool) : 0,
        .workers_busy = s->pool ? md_pool_busy(s->pool) : 0,
        .queue_rejected = atomic_load(&s->queue_rejected),
        .rate_limited = atomic_load(&s->rate_limited),
        .timeouts = atomic_load(&s->timeouts),
        .ran_inline = atomic_load(&s->ran_inline),
        .uptime_s = (double)(md_now_ns() - s->started_ns) / 1e9,
    };
    return http__metrics_render(s->metrics, &g, out);
}
