/* http.h - modeld's HTTP layer: libmicrohttpd glue, router, request context, replies, compute pool,
 * metrics. Everything a route handler needs is in this header; src/api/ files include only this
 * (plus jansson) to add routes.
 *
 * Adding a route (one line, from the resource's own file in src/api/):
 *
 *     http_route_add(srv, "POST", "/api/convert", HTTP_ROLE_WRITE, HTTP_HEAVY, convert_handler, ctx);
 *     http_route_add(srv, "GET", "/api/v1/jobs/{id}", HTTP_ROLE_READ, HTTP_LIGHT, job_get, ctx);
 *     http_route_add(srv, "GET", "/{path*}", HTTP_ROLE_PUBLIC, HTTP_LIGHT, static_files, ctx);
 *
 * Patterns: literal segments, "{name}" (one segment, any bytes but '/'), and a final "{name*}"
 * (the rest of the path, possibly empty, slashes included). When several routes match a path the
 * most specific wins, segment by segment (literal > {param} > {rest*}); a route whose pattern
 * matches but whose method differs is skipped in favour of a less specific one with the method.
 * No route matches the path: 404. Routes match the path but none has the method: 405 with Allow.
 * HEAD is served by the GET route (libmicrohttpd drops the body).
 *
 * What happens to a request, in order (the middleware chain, see server.c):
 *   0. framing (framing.c, real server only): Content-Length with Transfer-Encoding, differing
 *      Content-Lengths or Transfer-Encoding in HTTP/1.0 get 400, a transfer coding other than
 *      chunked 501, answered at once and the connection closed.
 *   1. request id: X-Request-ID is kept when it is 1..64 chars of [A-Za-z0-9._:-], else a fresh
 *      32-hex-char id is made; it is echoed on every response and in every log line.
 *   2. route match (404 / 405 + Allow); CORS preflight (OPTIONS) is answered here when enabled.
 *   3. body: streamed in as it arrives, up to the route's limit (default: server body_limit,
 *      25 MB); past it 413 (at once when Content-Length says so). Gathered in memory, handed to
 *      the route's sink, or written to a spool file (http_route_body_to_file: large uploads).
 *   4. auth: the route's role; HTTP_ROLE_PUBLIC routes skip it. Credentials come from
 *      "Authorization: Bearer <key or JWT>" or "X-API-Key: <key>" (both with different
 *      credentials: 400). 401 / 403.
 *   5. rate limit: per API key (limit by role) or, for anonymous callers, per client IP; 429 with
 *      Retry-After; X-RateLimit-Limit/Remaining/Reset on every limited route (HTTP_NO_RATELIMIT off).
 *   6. handler: HTTP_LIGHT ones run on the I/O thread and must not block (> ~1 ms of work is
 *      HEAVY). HTTP_HEAVY ones run on the compute pool while the connection is suspended; a full
 *      queue gives 503 + Retry-After at once; a request still running at its deadline gets 504
 *      (the handler's late answer is dropped; long handlers pass http_req_cancel() to their work,
 *      which is cancelled at that moment, or poll http_req_expired()).
 *   7. response: gzip when the client accepts it and the body is compressible and big enough;
 *      X-Request-ID, CORS and rate-limit headers added; metrics and one access-log line at the end;
 *      an audit entry for authenticated requests that change state (not GET/HEAD/OPTIONS).
 *      Every 503 and 507 (storage full) answer carries Retry-After (1 s and 30 s unless the
 *      code that failed set its own).
 *
 * Handlers: int fn(http_req *req, void *ctx). Return 0 after calling exactly one http_reply_*;
 * or return an md_code (usually via md_fail(http_req_err(req), ...)) and the server renders the
 * error body {"success":false,"error":{"code","message","field"?},"request_id"} with the status
 * from the error table. Handlers never choose error statuses themselves.
 *
 * Threads: request objects are used by one thread at a time (the I/O thread, or the compute
 * worker while the connection is suspended). Routes are added before http_server_start() only.
 * Ownership words: new (caller frees), borrowed (valid until the stated moment), steals.
 */
#ifndef MD_HTTP_H
#define MD_HTTP_H

#include "base/arena.h"
#include "base/buf.h"
#include "base/cancel.h"
#include "base/err.h"
#include "base/log.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct http_server http_server;
typedef struct http_route http_route;
typedef struct http_req http_req;

/* Roles, weakest first. A route needs at least its role; PUBLIC needs no credentials. */
typedef enum http_role { HTTP_ROLE_PUBLIC = 0, HTTP_ROLE_READ, HTTP_ROLE_WRITE, HTTP_ROLE_ADMIN } http_role;
/* "read" / "write" / "admin" / "public"; borrowed, static. */
const char *http_role_name(http_role r);
/* Parse "read|write|admin" into *out; -1 when unknown. */
int http_role_parse(const char *s, http_role *out);

/* Route flags (bit set). */
enum {
    HTTP_LIGHT = 0,             /* handler runs on the I/O thread */
    HTTP_HEAVY = 1 << 0,        /* handler runs on the compute pool, connection suspended */
    HTTP_NO_RATELIMIT = 1 << 1, /* skip the rate limiter (health, metrics) */
    HTTP_NO_AUDIT = 1 << 2,     /* never write an audit entry for this route */
    HTTP_NO_GZIP = 1 << 3,      /* never compress this route's answers (already compressed data) */
    HTTP_ERR_OIP = 1 << 4,      /* errors render the Open Inference Protocol way, {"error": "<message>"}
                                   (status still from the error table; the request id stays in
                                   the X-Request-ID header) */
    HTTP_WS = 1 << 5,           /* a WebSocket route (GET only): the handshake headers are checked
                                   before the handler (400 naming the header), credentials may come
                                   as ?token=<JWT>, and the handler answers with http_reply_ws() or
                                   an error (see "WebSocket routes" below) */
};

typedef int (*http_handler_fn)(http_req *req, void *ctx);

/* Streaming body sink (optional, per route): called on the I/O thread for every chunk of the
 * body as it arrives, before auth has run, so it must only buffer or parse, never act. With a
 * sink the body is NOT buffered (http_req_body gives NULL); the total is still capped by the
 * route's body limit. A non-zero return (md_code) stops the upload and that error is answered. */
typedef int (*http_body_fn)(http_req *req, const char *data, size_t len, void *ctx);

/* ---- the caller's identity, filled by the auth hook ---- */
typedef struct http_identity {
    char key_id[64]; /* API key id ("" when anonymous or --no-auth) */
    http_role role;  /* PUBLIC when anonymous */
    bool via_jwt;    /* credential was a JWT issued by POST /api/auth/token */
    int64_t expires_ms; /* the JWT's expiry (ms since the epoch), 0 for keys */
} http_identity;

typedef struct http_rate_info {
    long limit;     /* bucket size (X-RateLimit-Limit) */
    long remaining; /* whole tokens left after this request */
    long reset_s;   /* seconds until the bucket is full again (X-RateLimit-Reset) */
    long retry_s;   /* when limited: seconds until one token is back (Retry-After) */
} http_rate_info;

typedef struct http_audit_entry {
    const char *request_id, *key_id, *method, *route, *path, *client_ip; /* borrowed for the call */
    int status;
    int64_t time_ms; /* wall clock at the end of the request */
} http_audit_entry;

/* Hooks that connect the HTTP layer to src/auth and src/store without depending on them
 * (serve.c wires them). All are called on I/O threads concurrently: thread-safe, non-blocking. */
typedef struct http_hooks {
    void *ctx;
    /* Check the credentials of a request: the Authorization and X-API-Key header values (either
     * may be NULL). Fill *id and return 0, or return MD_E_UNAUTHORIZED with a client-facing
     * message in err. NULL hook: every caller is admin (--no-auth). */
    int (*authenticate)(void *ctx, const char *authorization, const char *x_api_key,
                        http_identity *id, md_err *err);
    /* Take one token. id is NULL for anonymous callers (then client_ip is the bucket key).
     * Fill *info; return 0 or MD_E_RATE_LIMITED (429), or MD_E_UNAVAILABLE when the limits
     * cannot be checked and must not be skipped (503, Retry-After 1). NULL hook: no rate
     * limiting. */
    int (*rate_limit)(void *ctx, const http_identity *id, const char *client_ip, http_rate_info *info);
    /* Record one audit entry (an authenticated request that changed state). May queue it. */
    void (*audit)(void *ctx, const http_audit_entry *e);
} http_hooks;

/* ---- server ---- */
typedef struct http_opts {
    const char *host;          /* bind address, "127.0.0.1"; borrowed until http_server_free */
    uint16_t port;             /* 0 = any free port, see http_server_port() */
    unsigned io_threads;       /* libmicrohttpd thread pool size (0 = CPUs, max 4; at least 2) */
    unsigned compute_threads;  /* compute pool workers (0 = number of CPUs) */
    unsigned compute_queue;    /* queued heavy requests beyond the running ones (0 = 256) */
    size_t body_limit;         /* default request-body limit in bytes (0 = 25 MB) */
    unsigned request_timeout_ms; /* deadline per request (0 = 30000) */
    unsigned conn_timeout_s;   /* idle keep-alive connection timeout (0 = 30) */
    unsigned max_connections;  /* (0 = 1024) */
    const char *cors_origins;  /* comma-separated allow-list, "*" for any; NULL/"" = CORS off */
    bool access_log;           /* one JSON line per request at info level */
    unsigned ws_max;           /* open WebSockets at most; more get 503 before the upgrade (0 = 256) */
    unsigned ws_ping_ms;       /* ping every open WebSocket this often; one that has not answered
                                  the previous ping by then is dropped (0 = 20000) */
    size_t ws_queue_max;       /* bytes queued to one WebSocket at most; a reader that falls this far
                                  behind is closed (1008) (0 = 1 MiB) */
    size_t ws_msg_max;         /* longest message a client may send (0 = 64 KiB; longer: close 1009) */
    size_t gzip_min;           /* smallest body worth compressing (0 = 1024) */
    const char *spool_dir;     /* where http_route_body_to_file routes write their bodies (made at
                                  start, 0700; spool files older than an hour, left by a crash,
                                  are removed then); NULL/"" = $TMPDIR or /tmp. Put it on the
                                  data dir's file system so a handler can rename a body into the
                                  blob store. Borrowed until http_server_free */
    http_hooks hooks;
} http_opts;

/* New server (not listening yet). Ownership: new, free with http_server_free. */
int http_server_new(const http_opts *o, http_server **out, md_err *err);
/* Start listening and serving. After this no route may be added. */
int http_server_start(http_server *s, md_err *err);
/* The port actually bound (useful with port 0). */
uint16_t http_server_port(const http_server *s);
/* Graceful stop: stop accepting connections, let in-flight requests finish for up to
 * timeout_ms (answers during the drain carry "Connection: close"), then answer 503 to heavy
 * requests still waiting, close all connections and stop the compute pool. Returns the number of
 * requests that were still in flight when the timeout hit (0 = clean drain). Idempotent. */
int http_server_drain(http_server *s, unsigned timeout_ms);
/* Stop (draining with timeout 0 when still running) and free everything. NULL is a no-op. */
void http_server_free(http_server *s);
/* Requests started and not yet completed. */
long http_server_inflight(const http_server *s);
/* Monotonic ns at which the server started (for uptime). */
uint64_t http_server_started_ns(const http_server *s);

/* Add a route. method: "GET", "POST", "PUT", "DELETE", "PATCH". pattern: see above; copied.
 * ctx is borrowed until http_server_free. Returns the route (borrowed, for the setters below)
 * or NULL on a malformed pattern or a duplicate method+pattern (a programming error: logged). */
http_route *http_route_add(http_server *s, const char *method, const char *pattern, http_role role,
                           int flags, http_handler_fn fn, void *ctx);
/* Per-route body limit in bytes (e.g. 20 MB for uploads); 0 = no body accepted (413). */
void http_route_body_limit(http_route *r, size_t max);
/* Stream the body into fn instead of buffering it (multipart uploads). */
void http_route_body_sink(http_route *r, http_body_fn fn);
/* Spool the body to a file instead of memory (bulk CSVs, photo batches: the memory a request
 * holds stays constant in its body size). Sets the route's body limit to max (0 = no body).
 *   - The file is made in http_opts.spool_dir (0600, a random name) at the first body byte of
 *     a request that passed auth and the rate limit (a refused request never gets one), and
 *     each chunk is written to it on the I/O thread as it arrives.
 *   - The limit is enforced while streaming: a Content-Length above max is answered 413 before
 *     any byte is read (and the connection closed); a chunked body that passes max has its file
 *     removed at once and the rest drained into nothing (no memory, no disk), the 413 going out
 *     when it ends, and one that goes on past 4 limits has its connection dropped. (The 413
 *     cannot go out mid-body: libmicrohttpd 0.9.75 queues an answer only right after the
 *     headers or after the whole body.)
 *   - The route's deadline (request_timeout_ms) starts again when the whole body is in, so a
 *     slow upload does not eat the handler's time.
 *   - The handler reads the body with http_req_body_file() (http_req_body() gives NULL). When
 *     the request ends the file is closed and removed, unless the handler took it with
 *     http_req_body_take().
 * Not with a sink (the last call wins). */
void http_route_body_to_file(http_route *r, size_t max);
/* A HEAVY route whose work is sometimes tiny (an MLP answers in microseconds, a CNN in
 * milliseconds) asks fn, on the I/O thread once the body is in, whether this request may run
 * there: 1 = run the handler inline like a LIGHT route, 0 = the compute pool. Handing a request
 * to the pool and back costs two thread wake-ups and a suspend/resume, more than such work
 * itself. fn must be cheap and non-blocking and answer 1 only for work well under a millisecond
 * (step 6 above); ctx is the route's. */
typedef int (*http_inline_fn)(http_req *req, void *ctx);
void http_route_inline_if(http_route *r, http_inline_fn fn);

/* ---- route descriptors: what GET /openapi.json and /docs are made of ----
 * Every route is described where it is registered, right after http_route_add:
 *
 *     http_route_doc(r, &(http_doc){
 *         .summary = "Convert an uploaded image to SVG", .tag = "vectorize",
 *         .request = "{\"type\":\"object\",\"required\":[\"file_id\"],\"properties\":{...}}",
 *         .response = "{\"type\":\"object\",...}",
 *         .query = (const http_doc_param[]){{"limit", "integer", "entries per page (1..1000)", 0},
 *                                           {0}},
 *         .errors = (const int[]){MD_E_FILE_NOT_FOUND, MD_E_INVALID_PARAM, 0}});
 *
 * Schemas are JSON Schema texts (OpenAPI 3.1 dialect) kept in string literals beside the
 * handler; they are parsed when the document is built, and a test fails on any that does not
 * parse. Path parameters come from the pattern; the route's role says which security applies;
 * every error code listed becomes a response with the common error body (its status from the
 * error table). All pointers are borrowed until http_server_free (use static storage).
 * Two longer forms, when one schema is not enough (src/api/openapi.c reads them):
 *   - a parameter's type may be a whole JSON Schema text instead of a type name
 *     ("{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,\"default\":50}");
 *   - request or response may be a map from media type to schema, for a body that comes in
 *     several forms: "{\"multipart/form-data\": {...}, \"image/png\": {...}}" (every key holds a
 *     '/'; request_type / response_type are then not used). */
typedef struct http_doc_param {
    const char *name;        /* NULL ends a list: write the end as {0} (clang warns on {NULL}) */
    const char *type;        /* JSON Schema type: "string", "integer", "number", "boolean";
                              * or a JSON Schema text starting with '{' */
    const char *description;
    int required;
} http_doc_param;

typedef struct http_doc {
    const char *summary;      /* one line */
    const char *description;  /* optional, longer (Markdown) */
    const char *tag;          /* group on the docs page: "platform", "vectorize", "models", "inference" */
    const char *request;      /* JSON Schema of the request body; NULL = no body */
    const char *request_type; /* its media type; NULL = "application/json" */
    const char *response;     /* JSON Schema of the success answer; NULL = no documented body */
    const char *response_type; /* NULL = "application/json" */
    int status;               /* success status; 0 = 200 */
    const http_doc_param *query;   /* query parameters, ended by {0}; may be NULL */
    const http_doc_param *headers; /* request headers, ended by {0}; may be NULL */
    const int *errors;        /* md codes this route may answer, ended by 0 (MD_OK); may be NULL */
    const http_doc_param *path; /* what the pattern's {params} mean, ended by {0}; may be NULL
                                 * (then they are plain strings); "required" is implied */
} http_doc;

/* Attach a descriptor to a route (r may be NULL: then nothing happens, so the result of
 * http_route_add can be passed straight in). d and everything it points to are borrowed until
 * http_server_free. */
void http_route_doc(http_route *r, const http_doc *d);

/* Visit every registered route in registration order (the OpenAPI builder and its test).
 * The descriptor is NULL for undocumented routes. Strings borrowed until http_server_free. */
typedef void (*http_route_visit_fn)(void *ctx, const char *method, const char *pattern, http_role role,
                                    int flags, const http_doc *doc);
void http_routes_visit(const http_server *s, http_route_visit_fn fn, void *ctx);

/* ---- the request, as a handler sees it (all strings borrowed until the request ends) ---- */
const char *http_req_method(const http_req *r);     /* "GET"... (HEAD shows as "HEAD") */
const char *http_req_path(const http_req *r);       /* decoded path, no query */
const char *http_req_route(const http_req *r);      /* matched pattern, "/api/v1/jobs/{id}" */
const char *http_req_id(const http_req *r);         /* request id */
/* The request's trace context (trace.h): the parent of the spans a handler opens and what a job
 * it submits carries. Borrowed until the request ends. */
const struct tr_ctx *http_req_trace(const http_req *r);
const char *http_req_client_ip(const http_req *r);  /* peer address, text */
/* Path parameter by name ("id" for {id}); NULL when the pattern has none of that name. */
const char *http_req_param(const http_req *r, const char *name);
/* Query-string argument (decoded); NULL when absent, "" when given without a value. */
const char *http_req_query(const http_req *r, const char *name);
/* Request header, case-insensitive; NULL when absent. */
const char *http_req_header(const http_req *r, const char *name);
/* The buffered body (NUL-terminated for convenience, len excludes it); NULL/0 when empty,
 * streamed to a sink or spooled to a file (http_req_body_file). Borrowed until the request
 * ends. */
const void *http_req_body(const http_req *r, size_t *len);
/* The spooled body of an http_route_body_to_file route. */
typedef struct http_body_file {
    const char *path; /* the file (borrowed until the request ends, or until taken) */
    int fd;           /* open on it, borrowed: read with pread() (the offset is not ours), never
                         close it; valid until the request ends, also after a take */
    uint64_t size;    /* bytes in it: the whole body */
} http_body_file;
/* Fill *out with the body file (an empty body gets an empty file). MD_E_INTERNAL when the route
 * does not spool, MD_E_IO / MD_E_STORAGE_FULL when the file cannot be made. */
int http_req_body_file(http_req *r, http_body_file *out);
/* Take the body file: steals the file at *path_out (new string, free() it): the layer will not
 * remove it any more, so the caller renames it into place (store_blob_adopt) or unlinks it.
 * The fd stays the layer's and open until the request ends. MD_E_INTERNAL when the route does
 * not spool, MD_E_CONFLICT when taken already. */
int http_req_body_take(http_req *r, char **path_out);
/* Parse the body as a JSON object. *out: new reference (json_decref it). Errors name the line
 * and column: MD_E_INVALID_JSON, or MD_E_UNSUPPORTED_MEDIA when the Content-Type is not JSON. */
int http_req_json(http_req *r, json_t **out);
/* Per-request arena: freed when the request completes. Borrowed. */
md_arena *http_req_arena(http_req *r);
/* Error slot for md_fail(); a handler may return md_fail(http_req_err(r), ...). Borrowed. */
md_err *http_req_err(http_req *r);
/* The authenticated caller (role PUBLIC and key_id "" when anonymous). Borrowed. */
const http_identity *http_req_identity(const http_req *r);
/* Monotonic ns at which the request started (its first byte was seen): queue-time metrics. */
uint64_t http_req_start_ns(const http_req *r);
/* Deadline (monotonic ns) and whether it has passed. */
uint64_t http_req_deadline_ns(const http_req *r);
bool http_req_expired(const http_req *r);
/* The request's cancel token: its deadline, cancelled when the request is answered 504 by the
 * deadline reaper or 503 by a drain that ran out of time. Pass it to long work (pl_ctx.cancel,
 * vec_convert_opts.cancel, onnx_run_opts.cancel) so that work stops when nobody waits for it.
 * Borrowed until the handler returns. */
const md_cancel *http_req_cancel(http_req *r);
/* A log line carrying the request id, method and route (md_log_fields underneath). */
void http_req_log(const http_req *r, md_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Opaque per-request slot for a body sink's parser state; freed by nobody: put it in the arena. */
void http_req_set_user(http_req *r, void *p);
void *http_req_user(const http_req *r);

/* ---- replies: exactly one per request; all return 0 or MD_E_NOMEM / MD_E_INTERNAL (second reply) ---- */
/* JSON body. Steals body (decref'd by the call, also on failure). */
int http_reply_json(http_req *r, int status, json_t *body);
/* Body bytes copied into the arena. content_type borrowed for the call. */
int http_reply_bytes(http_req *r, int status, const char *content_type, const void *data, size_t len);
/* Body that is malloc()ed by the caller: steals data (free()d when the request ends). */
int http_reply_take(http_req *r, int status, const char *content_type, void *data, size_t len);
/* Body from a file (static files, results): path borrowed for the call; the file is opened now
 * and streamed by libmicrohttpd. MD_E_FILE_NOT_FOUND when it cannot be opened (nothing queued). */
int http_reply_file(http_req *r, int status, const char *content_type, const char *path);
/* Body from an open regular file of size bytes, read from offset 0 (sendfile when the
 * connection allows): steals fd (closed by the server, also when the call fails). */
int http_reply_fd(http_req *r, int status, const char *content_type, int fd, uint64_t size);
/* Body pulled from a stream while libmicrohttpd sends it (a blob decrypted chunk by chunk):
 * exactly size bytes (the Content-Length). read fills up to cap bytes of buf and sets *got
 * (fewer than cap only at the end) or returns an MD_E_* code: the connection is then closed
 * with the body cut short (the status line is gone already), and the error logged. read runs
 * on an I/O thread, so each call must be quick (one chunk of a file). Steals ctx: release
 * (may be NULL) is called once when the response is done with it, also when this call fails. */
typedef int (*http_read_fn)(void *ctx, void *buf, size_t cap, size_t *got);
int http_reply_stream(http_req *r, int status, const char *content_type, uint64_t size,
                      http_read_fn read, void (*release)(void *ctx), void *ctx);
/* No body (204, 304). */
int http_reply_empty(http_req *r, int status);
/* The error answer for e (status from the error table). e borrowed for the call. */
int http_reply_error(http_req *r, const md_err *e);
/* Shorthand: md_fail + http_reply_error. */
int http_reply_fail(http_req *r, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Add a response header (Cache-Control, ETag, Retry-After...); may be called before or after
 * the reply. name and value are copied. */
int http_reply_header(http_req *r, const char *name, const char *value);

/* ---- WebSocket routes (ws.c) ----
 * A route added with HTTP_WS (method GET) takes RFC 6455 upgrades. Before its handler runs, the
 * chain has checked the handshake (Upgrade: websocket, Connection: Upgrade, Sec-WebSocket-Version:
 * 13, a Sec-WebSocket-Key) and the credentials: the usual headers, or ?token=<JWT> for browsers,
 * which cannot set headers on a WebSocket (only a JWT there: an API key in a URL would end up in
 * proxy logs). The handler then either refuses like any handler (return an md_code: 404 for
 * another key's job...) or accepts with http_reply_ws(); the socket opens once the 101 answer is
 * out. From then on the server owns the socket: one thread (the hub) reads, writes, pings every
 * ws_ping_ms and drops a peer that stopped answering, closes a reader that lets more than
 * ws_queue_max bytes pile up, and closes every socket with 1001 when the server drains.
 *
 * Callbacks run on the hub thread, one at a time per server, and must not block; they may call
 * http_ws_send_text / http_ws_close. on_close is called exactly once for every accepted socket,
 * also when the upgrade never happens (client gone, loopback request): free `user` there. */
typedef struct http_ws http_ws;

typedef struct http_ws_handler {
    /* The socket is open (may be NULL). */
    void (*on_open)(http_ws *ws, void *user);
    /* A whole message from the client (may be NULL: messages are then ignored). data borrowed
     * for the call; text messages are valid UTF-8 (others closed the socket with 1007). */
    void (*on_message)(http_ws *ws, const char *data, size_t len, bool binary, void *user);
    /* The socket is closed: code is the close code the peer sent (or we sent, when we closed
     * first), 1006 when it was dropped without a close handshake. Not NULL. */
    void (*on_close)(http_ws *ws, int code, void *user);
    /* Called every tick_ms while the socket is open (both may be 0/NULL): a producer that must
     * say something at least that often (a running job's status once a second). */
    void (*on_tick)(http_ws *ws, void *user);
    unsigned tick_ms;
} http_ws_handler;

/* Accept the upgrade (only from the handler of an HTTP_WS route): queues the 101 answer. h is
 * borrowed until on_close returns (static storage); user is handed to every callback. 0: the
 * layer now owns the socket's life and will call on_close once; MD_E_OVERLOADED (503 + Retry-After)
 * when ws_max sockets are open, MD_E_UNAVAILABLE while draining, MD_E_INTERNAL on a non-WS route:
 * then no callback is ever called and user stays the caller's. Return the error from the handler. */
int http_reply_ws(http_req *r, const http_ws_handler *h, void *user);
/* Queue one text message (copied). Thread-safe, any thread, never blocks. 0; MD_E_CONFLICT when
 * the socket is closing or closed (the message is dropped; not an error worth logging);
 * MD_E_OVERLOADED when the client is ws_queue_max bytes behind: the socket is then closed with
 * 1008. Messages queued before http_ws_close() are delivered before its close frame. */
int http_ws_send_text(http_ws *ws, const char *text, size_t len);
/* Start the close handshake with code (1000 normal, 1001 going away, 1008 policy, 1011 server
 * error) and a short reason (may be NULL; cut at 120 bytes), after the messages already queued.
 * Thread-safe; a second call or a call on a closed socket does nothing. */
void http_ws_close(http_ws *ws, int code, const char *reason);
/* A producer on another thread holds the handle with a reference: http_ws_ref when it takes the
 * handle (in on_open), http_ws_unref when done (the memory goes with the last reference; the
 * server holds one until on_close has returned). */
void http_ws_ref(http_ws *ws);
void http_ws_unref(http_ws *ws);
/* The request id of the upgrade request (for log lines). Borrowed until the last unref. */
const char *http_ws_id(const http_ws *ws);
/* The identity that opened the socket (key id, role). Borrowed until the last unref. */
const http_identity *http_ws_identity(const http_ws *ws);

/* ---- metrics (Prometheus text at GET /metrics) ----
 * The server itself counts requests by route/method/status, a latency histogram by route,
 * in-flight requests, compute queue depth and rejections, rate-limit rejections and process
 * RSS/CPU/open fds. Other subsystems add counters and gauges, or a collector that writes its own
 * lines (for labelled families). Names must be valid Prometheus names, registered before start. */
typedef struct http_counter http_counter;
typedef struct http_gauge http_gauge;
/* Borrowed until http_server_free; NULL on OOM. name and help are copied. */
http_counter *http_metrics_counter(http_server *s, const char *name, const char *help);
http_gauge *http_metrics_gauge(http_server *s, const char *name, const char *help);
void http_counter_add(http_counter *c, uint64_t n);
void http_gauge_set(http_gauge *g, double v);
void http_gauge_add(http_gauge *g, double d);
/* fn appends complete Prometheus lines (with # HELP / # TYPE) to out at each scrape. */
typedef void (*http_collector_fn)(md_buf *out, void *ctx);
int http_metrics_collector(http_server *s, http_collector_fn fn, void *ctx);
/* Render all metrics into out (what GET /metrics answers). */
int http_metrics_render(http_server *s, md_buf *out);

#endif
