/* chain.c - the middleware chain every request goes through, independent of libmicrohttpd:
 * request id -> route match (404/405, OPTIONS) -> body limit -> auth -> rate limit -> handler
 * -> finalisation (error body, gzip) -> completion (metrics, access log, audit).
 *
 * server.c drives it from libmicrohttpd's callbacks and loopback.c from a test; both call the
 * same functions in the same order, so a loopback test exercises the real chain.
 * Auth and the rate limit run as soon as the headers are in (before the body is read), so an
 * unauthenticated client cannot make the server buffer a 25 MB body; their verdict is kept in
 * r->pending and answered when the request is complete (answering earlier would make
 * libmicrohttpd close a keep-alive connection).
 */
#include "http/http_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

http_req *http__req_new(http_server *s)
{
    md_arena *a = md_arena_new(8192);
    if (!a)
        return NULL;
    http_req *r = md_arena_calloc(a, 1, sizeof *r);
    if (!r) {
        md_arena_free(a);
        return NULL;
    }
    r->srv = s;
    r->arena = a;
    atomic_init(&r->refs, 1);
    r->out_fd = -1;
    r->spool_fd = -1;
    r->start_ns = md_now_ns();
    r->deadline_ns = r->start_ns + (uint64_t)s->o.request_timeout_ms * 1000000u;
    md_cancel_init(&r->cancel, r->deadline_ns);
    r->state = REQ_NEW;
    assert(http__assert_req_state(r));
    md_err_clear(&r->err);
    md_buf_init(&r->body, 0);
    atomic_fetch_add(&s->inflight, 1);
    return r;
}

void http__req_unref(http_req *r)
{
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    atomic_fetch_sub(&r->srv->inflight, 1);
    http__ws_req_end(r->ws);
    tr_span_end(r->span); /* when it never completed (NULL when it did, or tracing is off) */
    md_buf_free(&r->body);
    http__spool_discard(r); /* unless the handler took it (spool.c, invariant 2) */
    free(r->out_malloced);
    if (r->out_fd >= 0)
        close(r->out_fd);
    http__stream_free(r->out_stream); /* a stream never handed to libmicrohttpd */
    md_arena_free(r->arena); /* r itself lives in the arena */
}

/* ---- the state machine of http_int.h ---- */

#ifndef NDEBUG
/* Bit i of allowed_from[to] is set when state i may move to `to`. */
#define B(s) (1u << (s))
static const unsigned allowed_from[] = {
    [REQ_NEW] = 0,
    [REQ_ROUTED] = B(REQ_NEW),
    [REQ_AUTHED] = B(REQ_ROUTED) | B(REQ_QUEUED),
    [REQ_BODY] = B(REQ_AUTHED) | B(REQ_QUEUED),
    [REQ_RUNNING] = B(REQ_ROUTED) | B(REQ_AUTHED) | B(REQ_BODY) | B(REQ_QUEUED),
    [REQ_QUEUED] = B(REQ_AUTHED) | B(REQ_BODY),
    [REQ_DONE] = B(REQ_RUNNING),
    [REQ_TIMEDOUT] = B(REQ_QUEUED) | B(REQ_RUNNING),
    [REQ_SHUTDOWN] = B(REQ_QUEUED) | B(REQ_RUNNING),
    [REQ_REPLIED] = B(REQ_RUNNING) | B(REQ_DONE) | B(REQ_TIMEDOUT) | B(REQ_SHUTDOWN),
    [REQ_COMPLETED] = ~(B(REQ_QUEUED) | B(REQ_RUNNING) | B(REQ_COMPLETED)),
};
#undef B
#endif

int http__assert_req_state(const http_req *r)
{
#ifndef NDEBUG
    assert(r->state <= REQ_COMPLETED);
    assert(r->state == REQ_NEW || (r->method && r->path));                     /* ROUTED on */
    /* a handler runs only for a matched route; errors and preflights carry their verdict */
    assert(r->state < REQ_RUNNING || r->state > REQ_SHUTDOWN || r->pending || r->match.route ||
           r->replied);
    assert(r->state != REQ_QUEUED || (r->heavy && r->detached && !r->replied));
    assert(r->state != REQ_DONE || r->replied);
    assert(r->state != REQ_REPLIED || r->heavy || r->replied);
    assert(r->state < REQ_QUEUED || r->state > REQ_SHUTDOWN || r->heavy);
#else
    (void)r;
#endif
    return 1;
}

void http__req_to(http_req *r, req_state to)
{
#ifndef NDEBUG
    assert((size_t)to < sizeof allowed_from / sizeof allowed_from[0]);
    assert(allowed_from[to] & (1u << r->state));
#endif
    r->state = to;
    assert(http__assert_req_state(r));
}

/* The request's trace context: a valid incoming traceparent is the parent (an invalid one
 * starts a new trace, never an error); the SERVER span, when tracing is on, is the context the
 * handler's spans, the jobs it submits and the response's traceparent carry. */
static void req_trace_begin(http_req *r)
{
    const char *tp = http_req_header(r, "traceparent");
    tr_ctx in;
    int has_in = tp != NULL && tr_parse(tp, strlen(tp), &in);
    char name[80];
    snprintf(name, sizeof name, "%s", r->method ? r->method : "HTTP");
    r->span = tr_span_start(name, TR_KIND_SERVER, has_in ? &in : NULL);
    if (r->span != NULL)
        r->tctx = *tr_span_ctx(r->span);
    else if (has_in)
        r->tctx = in;
    else
        tr_ctx_new(&r->tctx);
}

void http__req_begin(http_req *r, const char *method, const char *path)
{
    r->method = md_arena_strdup(r->arena, method);
    r->path = md_arena_strdup(r->arena, path);
    const char *id = http_req_header(r, "X-Request-ID");
    if (id && http__valid_request_id(id))
        snprintf(r->id, sizeof r->id, "%s", id);
    else
        http__new_request_id(r->id);
    req_trace_begin(r);
    if (!r->method || !r->path) {
        r->method = r->method ? r->method : "";
        r->path = r->path ? r->path : "";
        r->pending = MD_E_NOMEM;
        http__req_to(r, REQ_ROUTED);
        return;
    }
    r->match_rc = http__router_match(&r->srv->router, r->method, r->path, r->arena, &r->match);
    http__req_to(r, REQ_ROUTED);
}

/* A WebSocket route's ?token=<JWT> (browsers cannot set headers on a WebSocket), as the
 * Authorization value it stands for. NULL when there is none; sets r->pending when it comes
 * with header credentials too (which one counts would be a guess). */
static const char *query_token(http_req *r, const http_route *rt, bool has_headers)
{
    const char *tok = (rt->flags & HTTP_WS) ? http_req_query(r, "token") : NULL;
    if (!tok)
        return NULL;
    if (has_headers) {
        r->pending = md_fail(&r->err, MD_E_BAD_REQUEST, "token", "give credentials once: ?token= or a header");
        return NULL;
    }
    char *v = md_arena_alloc(r->arena, strlen(tok) + 8);
    if (!v) {
        r->pending = MD_E_NOMEM;
        return NULL;
    }
    memcpy(v, "Bearer ", 7);
    strcpy(v + 7, tok);
    return v;
}

/* Credentials -> identity; sets r->pending on failure. */
static void stage_auth(http_req *r, const http_route *rt)
{
    const http_hooks *h = &r->srv->o.hooks;
    if (rt->role == HTTP_ROLE_PUBLIC)
        return;
    r->authed = true;
    if (!h->authenticate) { /* --no-auth: everyone is admin */
        r->ident.role = HTTP_ROLE_ADMIN;
        return;
    }
    const char *authz = http_req_header(r, "Authorization"), *xkey = http_req_header(r, "X-API-Key");
    const char *tok = query_token(r, rt, authz || xkey);
    if (r->pending) {
        r->authed = false;
        return;
    }
    tr_span *sp = tr_span_start("auth", TR_KIND_INTERNAL, &r->tctx);
    int rc = h->authenticate(h->ctx, tok ? tok : authz, tok ? NULL : xkey, &r->ident, &r->err);
    tr_span_status(sp, rc);
    tr_span_end(sp);
    if (rc == MD_OK && tok && !r->ident.via_jwt) /* a key in a URL ends up in proxy logs */
        rc = md_fail(&r->err, MD_E_UNAUTHORIZED, "token",
                     "?token= takes a JWT from POST /api/auth/token, not an API key");
    if (rc != MD_OK) {
        r->authed = false;
        /* BAD_REQUEST: Authorization and X-API-Key carry different credentials */
        r->pending = rc == MD_E_UNAUTHORIZED || rc == MD_E_FORBIDDEN || rc == MD_E_BAD_REQUEST
                         ? rc
                         : MD_E_UNAUTHORIZED;
        return;
    }
    if (r->ident.role < rt->role)
        r->pending = md_fail(&r->err, MD_E_FORBIDDEN, NULL, "this route needs the %s role, the key has %s",
                             http_role_name(rt->role), http_role_name(r->ident.role));
}

static void stage_rate(http_req *r, const http_route *rt)
{
    const http_hooks *h = &r->srv->o.hooks;
    if (!h->rate_limit || (rt->flags & HTTP_NO_RATELIMIT))
        return;
    const http_identity *id = r->ident.key_id[0] ? &r->ident : NULL;
    int rc = h->rate_limit(h->ctx, id, r->ip, &r->rate);
    r->rate_set = true;
    if (rc == MD_E_RATE_LIMITED) {
        atomic_fetch_add(&r->srv->rate_limited, 1);
        r->pending = md_fail(&r->err, MD_E_RATE_LIMITED, NULL, "rate limit of %ld requests exceeded, retry in %ld s",
                             r->rate.limit, r->rate.retry_s);
        char v[24];
        snprintf(v, sizeof v, "%ld", r->rate.retry_s > 0 ? r->rate.retry_s : 1);
        http_reply_header(r, "Retry-After", v);
    } else if (rc == MD_E_UNAVAILABLE) {
        r->pending = md_fail(&r->err, MD_E_UNAVAILABLE, NULL, "rate limits cannot be checked now, retry in 1 s");
        http_reply_header(r, "Retry-After", "1");
    }
}

bool http__req_headers_in(http_req *r, long long content_length)
{
    http__req_to(r, REQ_AUTHED);
    if (r->pending)
        return false;
    if (r->match_rc != MD_OK) {
        if (strcmp(r->method, "OPTIONS") == 0 && r->match_rc == MD_E_METHOD_NOT_ALLOWED) {
            http_reply_header(r, "Allow", r->match.allow);
            http_reply_empty(r, 204);
            return true;
        }
        if (r->match_rc == MD_E_METHOD_NOT_ALLOWED) {
            http_reply_header(r, "Allow", r->match.allow);
            r->pending = md_fail(&r->err, MD_E_METHOD_NOT_ALLOWED, NULL, "%s is not allowed here; allowed: %s",
                                 r->method, r->match.allow);
        } else {
            r->pending = md_fail(&r->err, r->match_rc, NULL, r->match_rc == MD_E_NOT_FOUND ? "no route for %s" : NULL,
                                 r->path);
        }
        return false;
    }
    const http_route *rt = r->match.route;
    r->body_limit = rt->body_limit;
    if (content_length > 0 && (unsigned long long)content_length > r->body_limit) {
        r->pending = md_fail(&r->err, MD_E_TOO_LARGE, "body", "the body is %lld bytes, the limit is %zu",
                             content_length, r->body_limit);
        return false;
    }
    r->body.max = r->body_limit;
    stage_auth(r, rt);
    /* Failed credentials still spend the client IP's bucket: key guessing is rate limited. */
    if (!r->pending || r->pending == MD_E_UNAUTHORIZED)
        stage_rate(r, rt);
    if (!r->pending && (rt->flags & HTTP_WS))
        r->pending = http__ws_handshake(r);
    if (!r->pending && (rt->flags & HTTP_WS))
        r->pending = http__ws_room(r->srv, &r->err);
    return false;
}

bool http__req_body_in(http_req *r, const char *data, size_t len)
{
    if (r->state == REQ_AUTHED) /* (an early refusal is REPLIED already: its body is discarded) */
        http__req_to(r, REQ_BODY);
    if (r->pending) {
        /* Drain a refused body, but do not read an endless one: past 4 limits, drop the connection. */
        r->discarded += len;
        return r->discarded <= 4 * (r->body_limit + 65536);
    }
    const http_route *rt = r->match.route;
    r->body_seen += len;
    if (r->body_seen > r->body_limit) {
        r->pending = md_fail(&r->err, MD_E_TOO_LARGE, "body", "the body is larger than the limit of %zu bytes",
                             r->body_limit);
        md_buf_free(&r->body);
        http__spool_discard(r); /* the file goes at once; the rest is drained into nothing */
        return true;
    }
    int rc = rt->spool  ? http__spool_write(r, data, len)
             : rt->sink ? rt->sink(r, data, len, rt->ctx)
                        : md_buf_append(&r->body, data, len);
    if (rc != MD_OK) {
        if (r->err.code != rc)
            md_fail(&r->err, rc, "body", NULL);
        r->pending = rc;
    }
    return true;
}

void http__req_run(http_req *r)
{
    if (r->replied)
        return;
    if (r->pending) {
        if (r->err.code != r->pending)
            md_fail(&r->err, r->pending, NULL, NULL);
        http_reply_error(r, &r->err);
        return;
    }
    const http_route *rt = r->match.route;
    int rc = rt->fn(r, rt->ctx);
    if (rc == MD_OK && r->replied)
        return;
    if (r->replied) {
        http_req_log(r, MD_LOG_WARN, "handler returned %s after replying; reply kept", md_err_name(rc));
        return;
    }
    if (rc == MD_OK) {
        http_req_log(r, MD_LOG_ERROR, "handler returned without a reply");
        rc = md_fail(&r->err, MD_E_INTERNAL, NULL, NULL);
    }
    if (r->err.code != rc)
        md_fail(&r->err, rc, NULL, NULL);
    if (md_err_status(rc) >= 500)
        http_req_log(r, MD_LOG_ERROR, "handler failed: %s: %s", md_err_name(rc), md_err_message(&r->err));
    if (http_reply_error(r, &r->err) != MD_OK)
        r->replied = false; /* out of memory even for the error: finalize sends a static one */
}

static bool has_header(const http_req *r, const char *name)
{
    for (const http_hdr *h = r->rhdrs; h; h = h->next)
        if (strcasecmp(h->k, name) == 0)
            return true;
    return false;
}

void http__req_finalize(http_req *r)
{
    if (!r->replied) {
        static const char oom[] = "{\"success\":false,\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";
        r->status = 500;
        r->ctype = "application/json";
        r->out = oom;
        r->out_len = sizeof oom - 1;
        r->replied = true;
        return;
    }
    const http_route *rt = r->match.route;
    if (r->out_fd >= 0 || r->out_stream || r->out_len < r->srv->o.gzip_min || !http__compressible(r->ctype) ||
        (rt && (rt->flags & HTTP_NO_GZIP)) || has_header(r, "Content-Encoding"))
        return;
    r->vary_ae = true;
    if (!http__accepts_gzip(http_req_header(r, "Accept-Encoding")))
        return;
    void *z;
    size_t zn;
    if (http__gzip(r->arena, r->out, r->out_len, &z, &zn) == MD_OK && zn < r->out_len) {
        r->out = z;
        r->out_len = zn;
        r->gzipped = true;
    }
}

/* Is the request's Origin in the allow-list? */
static const char *cors_origin(const http_req *r)
{
    const char *list = r->srv->cors;
    const char *origin = list ? http_req_header(r, "Origin") : NULL;
    if (!origin)
        return NULL;
    size_t ol = strlen(origin);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if ((n == 1 && *p == '*') || (n == ol && memcmp(p, origin, n) == 0))
            return origin;
        p += n;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return NULL;
}

void http__std_headers(http_req *r, void (*add)(void *cls, const char *k, const char *v), void *cls)
{
    add(cls, "X-Request-ID", r->id);
    char tp[TR_TRACEPARENT_LEN + 1];
    tr_format(&r->tctx, tp);
    add(cls, "traceparent", tp);
    const char *origin = cors_origin(r);
    if (origin) {
        add(cls, "Access-Control-Allow-Origin", origin);
        add(cls, "Vary", "Origin");
        add(cls, "Access-Control-Expose-Headers",
            "X-Request-ID, traceparent, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, "
            "X-RateLimit-Reset");
        if (strcmp(r->method, "OPTIONS") == 0) {
            add(cls, "Access-Control-Allow-Methods", r->match.allow[0] ? r->match.allow : "GET");
            add(cls, "Access-Control-Allow-Headers",
                "Authorization, X-API-Key, Content-Type, X-Request-ID, traceparent");
            add(cls, "Access-Control-Max-Age", "600");
        }
    }
    if (r->rate_set) {
        char v[24];
        snprintf(v, sizeof v, "%ld", r->rate.limit);
        add(cls, "X-RateLimit-Limit", v);
        snprintf(v, sizeof v, "%ld", r->rate.remaining);
        add(cls, "X-RateLimit-Remaining", v);
        snprintf(v, sizeof v, "%ld", r->rate.reset_s);
        add(cls, "X-RateLimit-Reset", v);
    }
    if (atomic_load(&r->srv->draining))
        add(cls, "Connection", "close");
}

static bool changes_state(const char *m)
{
    return strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0 && strcmp(m, "OPTIONS") != 0;
}

static void req_trace_end(http_req *r, const char *route)
{
    if (r->span == NULL)
        return;
    tr_span_attr_str(r->span, "http.request.method", r->method);
    tr_span_attr_str(r->span, "http.route", route);
    tr_span_attr_int(r->span, "http.response.status_code", r->fin_status);
    tr_span_attr_str(r->span, "modeld.request_id", r->id);
    if (r->fin_status >= 500)
        tr_span_status(r->span, MD_E_INTERNAL);
    tr_span_end(r->span);
    r->span = NULL;
}

void http__req_complete(http_req *r)
{
    http_server *s = r->srv;
    uint64_t dur = md_now_ns() - r->start_ns;
    const http_route *rt = r->match.route;
    http__metrics_observe(rt ? rt->stats : s->unmatched, r->fin_status, dur);
    const char *route = rt ? rt->pattern : "";
    req_trace_end(r, route);
    if (s->o.access_log && md_log_get_level() <= MD_LOG_INFO)
        http__access_log(r, route, dur);
    if (rt && r->authed && s->o.hooks.audit && !(rt->flags & HTTP_NO_AUDIT) && changes_state(r->method)) {
        http_audit_entry e = {r->id, r->ident.key_id, r->method, route, r->path, r->ip, r->fin_status, md_wall_ms()};
        s->o.hooks.audit(s->o.hooks.ctx, &e);
    }
}
