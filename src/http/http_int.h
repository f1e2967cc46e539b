/* http_int.h - internals shared by the files of src/http/ (not for handlers: use http.h).
 *
 * Invariants:
 *   1. A request is touched by one thread at a time: the I/O thread until a HEAVY handler is
 *      queued, then the compute worker until it hands the request back under s->watch_mu (state
 *      RUNNING -> DONE) and resumes the connection. If the deadline passes first, the reaper moves
 *      the request QUEUED|RUNNING -> TIMEDOUT, cancels its token (r->cancel) and resumes it; from
 *      then on the worker still owns the arena and the response fields, and the I/O thread
 *      answers 504 using only the fin_* fields and memory of its own. The worker's handler sees
 *      the cancel at its next md_cancel_check and returns, which frees its pool slot.
 *   2. A request is freed when its last reference goes: one held by libmicrohttpd until the
 *      completion callback, one by the compute pool while a job is queued or running.
 *   3. Strings in a request (method, path, params, headers of a detached request) live in its
 *      arena or in libmicrohttpd's connection, both valid until the request is freed.
 */
#ifndef MD_HTTP_INT_H
#define MD_HTTP_INT_H

#include "base/cancel.h"
#include "base/clock.h"
#include "base/pool.h"
#include "base/trace.h"
#include "http/http.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

struct MHD_Connection;
struct MHD_Daemon;

#define HTTP_MAX_SEGS 32
#define HTTP_MAX_PARAMS 8
#define HTTP_ID_MAX 64

typedef struct http_kv {
    const char *k, *v;
} http_kv;

/* ---- router (router.c) ---- */
typedef enum { SEG_LIT, SEG_PARAM, SEG_REST } seg_kind;

typedef struct http_seg {
    seg_kind kind;
    char *text; /* literal text or parameter name; owned */
} http_seg;

typedef struct http__route_stats http__route_stats;

struct http_route {
    char *method, *pattern; /* owned */
    http_role role;
    int flags;
    http_handler_fn fn;
    void *ctx;
    size_t body_limit;
    http_body_fn sink;
    bool spool;               /* http_route_body_to_file: the body goes to a file (spool.c) */
    http_inline_fn inline_fn; /* HEAVY routes: may this request run on the I/O thread? */
    http_seg segs[HTTP_MAX_SEGS];
    size_t nsegs;
    char spec[HTTP_MAX_SEGS + 1]; /* specificity key: 'c' literal, 'b' param, 'a' rest */
    http__route_stats *stats;     /* owned by the metrics registry */
    const http_doc *doc;          /* borrowed (http_route_doc); NULL = undocumented */
};

typedef struct http_router {
    http_route **routes;
    size_t n, cap;
} http_router;

typedef struct http_match {
    http_route *route;
    size_t nparams;
    http_kv params[HTTP_MAX_PARAMS]; /* values in the arena */
    char allow[96];                  /* for 405: "GET, HEAD, POST" */
} http_match;

void http__router_init(http_router *rt);
void http__router_free(http_router *rt);
/* Parse and add; NULL with a log line on a bad pattern or duplicate. Ownership: kept by rt. */
http_route *http__router_add(http_router *rt, const char *method, const char *pattern);
/* Match a decoded path. 0: m->route set, params copied into a; MD_E_NOT_FOUND; or
 * MD_E_METHOD_NOT_ALLOWED with m->allow filled. OPTIONS matches nothing but fills m->allow
 * (returns MD_E_METHOD_NOT_ALLOWED) so the caller can answer a preflight. */
int http__router_match(const http_router *rt, const char *method, const char *path, md_arena *a,
                       http_match *m);

/* ---- metrics (metrics.c) ---- */
typedef struct http_metrics http_metrics;
/* Ownership: *out is new; free with http__metrics_free (which frees every stats block,
 * counter, gauge and collector registered in it). */
int http__metrics_new(http_metrics **out);
void http__metrics_free(http_metrics *m);
/* Stats block for one route; owned by m (borrowed until http__metrics_free). */
http__route_stats *http__metrics_route(http_metrics *m, const char *method, const char *pattern);
void http__metrics_observe(http__route_stats *st, int status, uint64_t dur_ns);
typedef struct http__server_gauges {
    long inflight;
    size_t queue_depth, workers_busy;
    uint64_t queue_rejected, rate_limited, timeouts, ran_inline;
    double uptime_s;
} http__server_gauges;
int http__metrics_render(http_metrics *m, const http__server_gauges *g, md_buf *out);
/* Only the registration part is thread-unsafe; these are used from server.c. */
http_counter *http__metrics_counter(http_metrics *m, const char *name, const char *help);
http_gauge *http__metrics_gauge(http_metrics *m, const char *name, const char *help);
int http__metrics_collector(http_metrics *m, http_collector_fn fn, void *ctx);

/* ---- gzip (gzip.c) ---- */
/* Does an Accept-Encoding value allow gzip (token present, q not 0)? */
bool http__accepts_gzip(const char *accept_encoding);
/* Is a content type worth compressing (text, JSON, SVG, JS, XML)? */
bool http__compressible(const char *content_type);
/* gzip src into the arena (*out borrowed until the arena is freed): 0 with *out and *out_len set, or MD_E_NOMEM / MD_E_INTERNAL. */
int http__gzip(md_arena *a, const void *src, size_t len, void **out, size_t *out_len);

/* ---- request ids (request.c) ---- */
bool http__valid_request_id(const char *s);
void http__new_request_id(char out[33]);

/* ---- the request (request.c, server.c) ----
 *
 * The life cycle of one request (r->state), as SQLite's pager.c draws its own. Each transition
 * is made by the function in brackets, through http__req_to(), which checks in debug builds that
 * the transition is one of these and that the request looks the way its new state promises
 * (http__assert_req_state).
 *
 *   (none)            -> NEW         [http__req_new]         arena, id slot, deadline, cancel token
 *   NEW               -> ROUTED      [http__req_begin]       method/path copied, route matched (or
 *                                                            404/405 kept in r->pending)
 *   ROUTED            -> AUTHED      [http__req_headers_in]  body limit, auth, rate limit ran when
 *                                                            the headers came in, before any body
 *                                                            byte is buffered; a refusal waits in
 *                                                            r->pending (answering now would close
 *                                                            a keep-alive connection)
 *   AUTHED            -> BODY        [http__req_body_in]     the first body bytes (discarded when
 *                                                            pending; the body of an early refusal,
 *                                                            REPLIED already, is discarded too)
 *   AUTHED|BODY       -> RUNNING     [answer_now, http_loopback]  LIGHT route or a pending error:
 *                                                            the handler runs on the I/O thread
 *   ROUTED            -> RUNNING     [first_call]            bad message framing (framing.c):
 *                                                            answered at once, before auth or body,
 *                                                            and the connection closed
 *   AUTHED|BODY       -> QUEUED      [start_heavy]           HEAVY route: connection suspended, job
 *                                                            on the compute pool (r->heavy set)
 *   QUEUED            -> AUTHED|BODY [start_heavy]           the pool refused it (full: 503, or
 *                                                            draining): back where it was, and
 *                                                            answered on the I/O thread
 *   QUEUED            -> RUNNING     [run_heavy]             a worker took it (the handler runs)
 *   RUNNING (heavy)   -> DONE        [run_heavy]             the handler replied; connection resumed
 *   QUEUED|RUNNING    -> TIMEDOUT    [reaper, run_heavy]     deadline passed: 504 from fin_* only,
 *                                                            and md_cancel_request(&r->cancel) so
 *                                                            the worker stops at its next check
 *   QUEUED|RUNNING    -> SHUTDOWN    [close_watch]           drain timeout: 503, work cancelled
 *   RUNNING (light)   -> REPLIED     [answer_now, http_loopback]  reply finalized and queued
 *   DONE|TIMEDOUT|SHUTDOWN -> REPLIED [on_access]            the I/O thread queues the answer
 *   any but QUEUED/RUNNING -> COMPLETED [on_completed, http_loopback]  metrics, access log, audit
 *
 * Once r->heavy is set, r->state is read and written under srv->watch_mu only (the reaper and
 * the worker race for it); before that only the I/O thread touches it.
 */
typedef enum {
    REQ_NEW,
    REQ_ROUTED,
    REQ_AUTHED,
    REQ_BODY,
    REQ_RUNNING,
    REQ_QUEUED,
    REQ_DONE,
    REQ_TIMEDOUT,
    REQ_SHUTDOWN,
    REQ_REPLIED,
    REQ_COMPLETED,
} req_state;

typedef struct http_hdr {
    struct http_hdr *next;
    const char *k, *v;
} http_hdr;

struct http_req {
    http_server *srv;
    struct MHD_Connection *conn; /* NULL for loopback */
    md_arena *arena;
    atomic_int refs;
    const char *method, *path;
    char id[HTTP_ID_MAX + 1];
    char ip[48];
    http_match match;
    int match_rc;
    /* headers/query copied into the arena: loopback requests and detached (heavy) ones */
    bool detached;
    bool http10; /* an HTTP/1.0 request (it cannot be upgraded to a WebSocket) */
    http_kv *hdrs, *query;
    size_t nhdrs, nquery;
    /* body */
    md_buf body;
    size_t body_limit, body_seen, discarded;
    int spool_fd;      /* spooled body (spool.c): -1 until the first byte */
    char *spool_path;  /* malloc()ed; NULL until made; removed at the end unless taken */
    bool spool_taken;  /* the handler took the file (http_req_body_take) */
    int pending; /* md_code decided before the handler (auth, limits, body), 0 = none */
    http_identity ident;
    bool authed;   /* passed the auth stage of a non-public route */
    bool rate_set; /* rate headers to add */
    http_rate_info rate;
    md_err err;
    /* trace context (trace.h): the incoming traceparent's, or a new trace; `span` is the
     * request's SERVER span (NULL when tracing is off), ended in http__req_complete/unref */
    tr_ctx tctx;
    tr_span *span;
    uint64_t start_ns, deadline_ns;
    md_cancel cancel; /* deadline_ns + cancelled by the reaper or the drain; http_req_cancel */
    req_state state;  /* under srv->watch_mu once heavy (see the diagram above) */
    bool heavy;       /* went to the compute pool (set before it is submitted) */
    struct http_req *wnext, *wprev;
    void *user;
    /* response as the handler built it (owned by whichever thread owns the request) */
    bool replied;
    int status;
    const char *ctype;
    const void *out;
    size_t out_len;
    void *out_malloced; /* free()d when the request is freed */
    int out_fd;         /* -1 when none */
    uint64_t out_fd_size;
    struct http__stream *out_stream; /* http_reply_stream's body (owned until queued); NULL */
    http_hdr *rhdrs;
    bool gzipped, vary_ae;
    http_ws *ws; /* accepted WebSocket (http_reply_ws): a reference, dropped when r is freed */
    /* what was actually sent (written by the I/O thread only) */
    int fin_status;
    uint64_t fin_bytes;
};

/* ---- streamed bodies (request.c: http_reply_stream) ---- */
typedef struct http__stream {
    http_read_fn read;
    void (*release)(void *ctx);
    void *ctx;
    uint64_t size, sent;
    char req_id[HTTP_ID_MAX + 1]; /* for the log line of a failed read */
} http__stream;
/* Release a stream that was never handed to libmicrohttpd (NULL is a no-op). */
void http__stream_free(http__stream *st);
/* libmicrohttpd's content reader and free callbacks over an http__stream (cls). */
ssize_t http__stream_read(void *cls, uint64_t pos, char *buf, size_t max);
void http__stream_done(void *cls);

/* ---- WebSockets (ws.c; the socket's life cycle is drawn there) ---- */
typedef struct http__ws_hub http__ws_hub;
struct MHD_UpgradeResponseHandle;
/* The hub's books (limit, options), made when the first HTTP_WS route is added, so loopback
 * requests can be accepted too; MD_E_NOMEM. */
int http__ws_hub_new(http_server *s);
/* Start the hub thread (http_server_start; nothing without a hub). */
int http__ws_hub_start(http_server *s, md_err *err);
/* Close every open socket with 1001, wait up to timeout_ms for the close handshakes, drop the
 * rest and stop the thread; refuse new sockets from then on. Before MHD_stop_daemon. */
void http__ws_hub_drain(http_server *s, unsigned timeout_ms);
void http__ws_hub_free(http_server *s);
/* Whether one more socket may open: MD_OK, MD_E_OVERLOADED (ws_max open) or MD_E_UNAVAILABLE
 * (draining), with err filled. The chain asks before the handler runs, so a full server answers
 * 503 without the handler's work; http_reply_ws still takes the slot for real. */
int http__ws_room(http_server *s, md_err *err);
/* The chain's handshake check for HTTP_WS routes: MD_OK or MD_E_BAD_REQUEST naming the header. */
int http__ws_handshake(http_req *r);
/* Sec-WebSocket-Accept for a key (RFC 6455 section 4.2.2): 28 characters and a NUL. */
int http__ws_accept_key(const char *key, char out[29]);
/* libmicrohttpd's upgrade handler: the socket is ours (PENDING -> OPEN). */
void http__ws_upgraded(http_ws *ws, int fd, struct MHD_UpgradeResponseHandle *urh, const char *extra,
                       size_t extra_len);
/* The request that accepted ws is freed: a socket never upgraded ends here (on_close 1006). */
void http__ws_req_end(http_ws *ws);
/* A socket without a server or a file descriptor, for the frame reader's fuzz target and tests:
 * http__ws_detached_input feeds it bytes as if they came from the peer (callbacks run inside
 * the call; what it would send is discarded). Returns MD_E_CONFLICT once the socket is closed
 * (on_close ran). Ownership: *out new, free with http__ws_detached_free. */
int http__ws_detached_new(const http_ws_handler *h, void *user, size_t msg_max, http_ws **out);
int http__ws_detached_input(http_ws *ws, const void *data, size_t len);
void http__ws_detached_free(http_ws *ws);

/* Shared by server.c (MHD) and loopback.c. */
struct http_server {
    http_opts o;
    char *host, *cors;
    char *spool; /* the spool directory (http_opts.spool_dir or $TMPDIR or /tmp), owned */
    http_router router;
    http_metrics *metrics;
    http__route_stats *unmatched;
    md_pool *pool; /* the compute pool (base/pool.h) */
    struct MHD_Daemon *d;
    uint16_t port;
    uint64_t started_ns;
    atomic_long inflight;
    atomic_bool draining, started;
    _Atomic uint64_t rate_limited, timeouts, queue_rejected;
    _Atomic uint64_t ran_inline; /* heavy-route requests their inline predicate kept on the I/O thread */
    pthread_mutex_t watch_mu;
    pthread_cond_t watch_cv;
    http_req *watch; /* queued heavy requests, for the reaper */
    pthread_t reaper;
    bool reaper_running, reaper_stop;
    bool closing; /* under watch_mu: the final phase of a drain, no new suspensions */
    http__ws_hub *ws_hub; /* the WebSocket hub; NULL when no route is HTTP_WS */
    int listen_fd, stop_fd; /* accept.c: the listening socket and the acceptor's wake-up; -1 when closed */
    pthread_t acceptor;
    bool acceptor_running;
};

/* Move r to state `to` (the diagram above); in debug builds asserts that the move is allowed
 * and that r fits its new state. The caller holds srv->watch_mu when r->heavy. */
void http__req_to(http_req *r, req_state to);
/* Debug check of what r's state promises (always 1, so it can sit in assert()); the body is
 * compiled out with NDEBUG. */
int http__assert_req_state(const http_req *r);

/* Request lifetime. New request with one reference and its own arena (the request lives in it);
 * http__req_unref drops a reference and frees everything with the last one. NULL on OOM. */
http_req *http__req_new(http_server *s);
void http__req_unref(http_req *r);
/* Stages of the chain that do not depend on libmicrohttpd. */
void http__req_begin(http_req *r, const char *method, const char *path);
/* The stages run when headers are in: route, OPTIONS, body limit (content_length < 0: unknown),
 * auth, rate limit. Sets r->pending on failure. Returns true when the request is answered
 * already (preflight). */
bool http__req_headers_in(http_req *r, long long content_length);
/* Feed body bytes (after headers_in). Returns false when the connection should be dropped. */
bool http__req_body_in(http_req *r, const char *data, size_t len);
/* Run the handler (or render the pending error); ends with a reply set. */
void http__req_run(http_req *r);
/* After the reply: error body rendering, gzip, standard headers. Runs on the thread that owns
 * the request (the worker for HEAVY routes). */
void http__req_finalize(http_req *r);
/* Render the error JSON into buf (no arena). Returns length. oip: the Open Inference Protocol's
 * form {"error": "<message>"} (routes flagged HTTP_ERR_OIP) instead of modeld's own. */
size_t http__error_json(char *buf, size_t cap, int code, const char *field, const char *msg,
                        const char *request_id, bool oip);
/* Whether r's errors render the OIP way (its route has HTTP_ERR_OIP). */
bool http__err_oip(const http_req *r);
/* The Retry-After value an error answer carries ("1" for 503, "30" for 507), NULL for others.
 * Static storage. */
const char *http__retry_after(int code);
/* Headers every answer carries (request id, CORS, rate limit, Connection: close when draining),
 * passed to add(name, value, cls). Uses no arena memory. */
void http__std_headers(http_req *r, void (*add)(void *cls, const char *k, const char *v), void *cls);
/* One JSON access-log line on stderr (accesslog.c). */
void http__access_log(const http_req *r, const char *route, uint64_t dur_ns);
/* The end of a request: metrics, access log, audit. */
void http__req_complete(http_req *r);
/* Look up a header/query argument of a request attached to a connection (server.c). */
const char *http__conn_value(struct MHD_Connection *c, int kind, const char *name);
/* framing.c: RFC 9112 section 6 framing of a request whose headers are in (see the file's
 * invariants and what libmicrohttpd does not let us check). MD_OK, MD_E_BAD_REQUEST (conflicting
 * or repeated lengths, Transfer-Encoding in HTTP/1.0) or MD_E_NOT_IMPLEMENTED (a transfer coding
 * other than chunked), with err naming the header. The caller answers at once and closes. */
int http__check_framing(struct MHD_Connection *c, const char *version, md_err *err);
/* The same verdict from the header values themselves (borrowed): cl[0..ncl) the Content-Length
 * lines, te[0..nte) the Transfer-Encoding lines, version "HTTP/1.1" or "HTTP/1.0" (or NULL). */
int http__framing_verdict(const char *version, const char *const *cl, size_t ncl,
                          const char *const *te, size_t nte, md_err *err);
/* ---- spooled bodies (spool.c) ---- */
/* Make the spool directory and remove spool files older than an hour (a crash's leftovers);
 * the directory is s->spool (set by http_server_new). MD_E_IO naming "spool_dir". */
int http__spool_prepare(http_server *s, md_err *err);

/* accept.c: the listening socket and the thread that hands connections to libmicrohttpd (why:
 * see the file). Open binds and listens on ss (sets s->listen_fd and s->port); start runs the
 * thread once s->d exists; stop joins it and closes the socket (idempotent). */
struct sockaddr_storage;
int http__listener_open(http_server *s, const struct sockaddr_storage *ss, int backlog, md_err *err);
int http__acceptor_start(http_server *s, md_err *err);
void http__acceptor_stop(http_server *s);
/* Append body bytes to r's spool file (made at the first call). MD_E_IO / MD_E_STORAGE_FULL
 * with r->err filled. */
int http__spool_write(http_req *r, const char *data, size_t len);
/* Drop r's spool file now (a refused body); the end of the request does it otherwise. */
void http__spool_discard(http_req *r);
/* The whole body is in: a spooled route's deadline starts again (http_route_body_to_file). */
void http__req_body_end(http_req *r);

/* Copy all headers and query args into the arena (before handing r to another thread). */
int http__req_detach(http_req *r);

#endif
