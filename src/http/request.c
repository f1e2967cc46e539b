/* request.c - the request object as handlers see it: accessors, the reply helpers, the one
 * error renderer, request ids, response finalisation (gzip, standard headers) and the end of a
 * request (metrics, access log, audit). Nothing here knows libmicrohttpd except through
 * http__conn_value(), so the loopback runner (loopback.c) shares all of it.
 */
#include "http/http_int.h"

#include "base/json_out.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* libmicrohttpd's enum MHD_ValueKind values, kept here so this file need not include it. */
#define KIND_HEADER 1
#define KIND_QUERY 8

const char *http_role_name(http_role r)
{
    static const char *const names[] = {"public", "read", "write", "admin"};
    return (unsigned)r < 4 ? names[r] : "unknown";
}

int http_role_parse(const char *s, http_role *out)
{
    for (int i = HTTP_ROLE_READ; i <= HTTP_ROLE_ADMIN; i++)
        if (s && strcmp(s, http_role_name((http_role)i)) == 0) {
            *out = (http_role)i;
            return 0;
        }
    return -1;
}

/* ---- request ids ---- */

bool http__valid_request_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == ':';
        if (!ok || n >= HTTP_ID_MAX)
            return false;
    }
    return n > 0;
}

/* xoshiro128-style generator per thread, seeded from getrandom(): ids must be unique, not
 * secret, and a syscall per request would cost more than the rest of GET /api/health. */
static _Thread_local uint64_t rng_s[2];

static uint64_t rng_next(void)
{
    if (!rng_s[0] && !rng_s[1]) {
        if (getrandom(rng_s, sizeof rng_s, 0) != (ssize_t)sizeof rng_s || (!rng_s[0] && !rng_s[1])) {
            rng_s[0] = (uint64_t)md_now_ns() ^ (uint64_t)(uintptr_t)&rng_s;
            rng_s[1] = 0x9e3779b97f4a7c15ull;
        }
    }
    uint64_t s1 = rng_s[0];
    const uint64_t s0 = rng_s[1];
    const uint64_t result = s0 + s1;
    rng_s[0] = s0;
    s1 ^= s1 << 23;
    rng_s[1] = s1 ^ s0 ^ (s1 >> 18) ^ (s0 >> 5);
    return result;
}

void http__new_request_id(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    for (int w = 0; w < 2; w++) {
        uint64_t v = rng_next();
        for (int i = 0; i < 16; i++)
            out[w * 16 + i] = hex[(v >> (i * 4)) & 15];
    }
    out[32] = '\0';
}

/* ---- accessors ---- */

const char *http_req_method(const http_req *r) { return r->method; }
const char *http_req_path(const http_req *r) { return r->path; }
const char *http_req_route(const http_req *r) { return r->match.route ? r->match.route->pattern : ""; }
const char *http_req_id(const http_req *r) { return r->id; }

const tr_ctx *http_req_trace(const http_req *r) { return &r->tctx; }
const char *http_req_client_ip(const http_req *r) { return r->ip; }
md_arena *http_req_arena(http_req *r) { return r->arena; }
md_err *http_req_err(http_req *r) { return &r->err; }
const http_identity *http_req_identity(const http_req *r) { return &r->ident; }
uint64_t http_req_start_ns(const http_req *r) { return r->start_ns; }
uint64_t http_req_deadline_ns(const http_req *r) { return r->deadline_ns; }
bool http_req_expired(const http_req *r) { return md_now_ns() >= r->deadline_ns; }
const md_cancel *http_req_cancel(http_req *r) { return &r->cancel; }
void http_req_set_user(http_req *r, void *p) { r->user = p; }
void *http_req_user(const http_req *r) { return r->user; }

const char *http_req_param(const http_req *r, const char *name)
{
    for (size_t i = 0; i < r->match.nparams; i++)
        if (strcmp(r->match.params[i].k, name) == 0)
            return r->match.params[i].v;
    return NULL;
}

static const char *kv_find(const http_kv *kv, size_t n, const char *name, bool icase)
{
    for (size_t i = 0; i < n; i++)
        if ((icase ? strcasecmp(kv[i].k, name) : strcmp(kv[i].k, name)) == 0)
            return kv[i].v;
    return NULL;
}

const char *http_req_query(const http_req *r, const char *name)
{
    if (r->detached || !r->conn)
        return kv_find(r->query, r->nquery, name, false);
    return http__conn_value(r->conn, KIND_QUERY, name);
}

const char *http_req_header(const http_req *r, const char *name)
{
    if (r->detached || !r->conn)
        return kv_find(r->hdrs, r->nhdrs, name, true);
    return http__conn_value(r->conn, KIND_HEADER, name);
}

const void *http_req_body(const http_req *r, size_t *len)
{
    if (len)
        *len = r->body.len;
    return r->body.len ? r->body.data : NULL;
}

int http_req_json(http_req *r, json_t **out)
{
    *out = NULL;
    const char *ct = http_req_header(r, "Content-Type");
    if (ct && strncasecmp(ct, "application/json", 16) != 0 && !strstr(ct, "+json"))
        return md_fail(&r->err, MD_E_UNSUPPORTED_MEDIA, "Content-Type",
                       "expected application/json");
    if (r->body.len == 0)
        return md_fail(&r->err, MD_E_INVALID_JSON, "body", "the body is empty, expected a JSON object");
    json_error_t je;
    json_t *j = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return md_fail(&r->err, MD_E_INVALID_JSON, "body", "invalid JSON at line %d column %d: %s",
                       je.line, je.column, je.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return md_fail(&r->err, MD_E_INVALID_JSON, "body", "expected a JSON object");
    }
    *out = j;
    return MD_OK;
}

void http_req_log(const http_req *r, md_log_level lvl, const char *fmt, ...)
{
    if (lvl < md_log_get_level())
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    md_log_fields(lvl, msg, (const char *const[]){"request_id", r->id, "method", r->method, "route",
                                                   http_req_route(r), NULL});
}

/* ---- replies ---- */

static bool begin_reply(http_req *r)
{
    if (r->replied) {
        http_req_log(r, MD_LOG_ERROR, "handler replied twice; second reply ignored");
        return false;
    }
    return true;
}

static int set_reply(http_req *r, int status, const char *ct, const void *data, size_t len)
{
    r->ctype = ct ? md_arena_strdup(r->arena, ct) : NULL;
    if (ct && !r->ctype)
        return MD_E_NOMEM;
    r->status = status;
    r->out = data;
    r->out_len = len;
    r->replied = true;
    return MD_OK;
}

int http_reply_bytes(http_req *r, int status, const char *content_type, const void *data, size_t len)
{
    if (!begin_reply(r))
        return MD_E_INTERNAL;
    void *copy = md_arena_alloc(r->arena, len);
    if (!copy)
        return MD_E_NOMEM;
    if (len)
        memcpy(copy, data, len);
    return set_reply(r, status, content_type, copy, len);
}

int http_reply_take(http_req *r, int status, const char *content_type, void *data, size_t len)
{
    if (!begin_reply(r)) {
        free(data);
        return MD_E_INTERNAL;
    }
    free(r->out_malloced);
    r->out_malloced = data;
    return set_reply(r, status, content_type, data, len);
}

int http_reply_json(http_req *r, int status, json_t *body)
{
    if (!body)
        return MD_E_NOMEM;
    if (!begin_reply(r)) {
        json_decref(body);
        return MD_E_INTERNAL;
    }
    /* md_json_out: json_dumpb's compact text byte for byte, without its printf per real (most
     * of an answer's rendering: predictions and contributions are numbers). */
    md_buf b;
    md_buf_init(&b, SIZE_MAX / 2);
    int rc = md_json_out(&b, body);
    json_decref(body);
    size_t n = 0;
    char *text = rc == MD_OK ? md_buf_steal(&b, &n) : NULL;
    md_buf_free(&b);
    if (!text)
        return MD_E_NOMEM;
    free(r->out_malloced);
    r->out_malloced = text;
    return set_reply(r, status, "application/json", text, n);
}

int http_reply_empty(http_req *r, int status)
{
    if (!begin_reply(r))
        return MD_E_INTERNAL;
    return set_reply(r, status, NULL, NULL, 0);
}

/* After begin_reply: the reply's body is fd's first size bytes (steals fd, closed on failure). */
static int reply_with_fd(http_req *r, int status, const char *content_type, int fd, uint64_t size)
{
    int rc = set_reply(r, status, content_type, NULL, 0);
    if (rc != MD_OK) {
        close(fd);
        r->replied = false;
        return rc;
    }
    r->out_fd = fd;
    r->out_fd_size = size;
    return MD_OK;
}

int http_reply_file(http_req *r, int status, const char *content_type, const char *path)
{
    if (!begin_reply(r))
        return MD_E_INTERNAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return md_fail(&r->err, MD_E_FILE_NOT_FOUND, NULL, NULL);
    }
    return reply_with_fd(r, status, content_type, fd, (uint64_t)st.st_size);
}

int http_reply_fd(http_req *r, int status, const char *content_type, int fd, uint64_t size)
{
    if (!begin_reply(r)) {
        close(fd);
        return MD_E_INTERNAL;
    }
    return reply_with_fd(r, status, content_type, fd, size);
}

void http__stream_free(http__stream *st)
{
    if (!st)
        return;
    if (st->release)
        st->release(st->ctx);
    free(st);
}

int http_reply_stream(http_req *r, int status, const char *content_type, uint64_t size,
                      http_read_fn read, void (*release)(void *ctx), void *ctx)
{
    http__stream *st = calloc(1, sizeof *st);
    if (st) {
        *st = (http__stream){.read = read, .release = release, .ctx = ctx, .size = size};
        snprintf(st->req_id, sizeof st->req_id, "%s", r->id);
    } else if (release) {
        release(ctx);
    }
    if (!st)
        return MD_E_NOMEM;
    if (!begin_reply(r)) {
        http__stream_free(st);
        return MD_E_INTERNAL;
    }
    int rc = set_reply(r, status, content_type, NULL, 0);
    if (rc != MD_OK) {
        http__stream_free(st);
        r->replied = false;
        return rc;
    }
    r->out_stream = st;
    return MD_OK;
}

static void put_json_str(char *buf, size_t cap, size_t *n, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p && *n + 7 < cap; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            buf[(*n)++] = '\\';
            buf[(*n)++] = (char)c;
        } else if (c < 0x20) {
            memcpy(buf + *n, "\\u00", 4);
            buf[*n + 4] = hex[c >> 4];
            buf[*n + 5] = hex[c & 15];
            *n += 6;
        } else {
            buf[(*n)++] = (char)c;
        }
    }
}

static void put_raw(char *buf, size_t cap, size_t *n, const char *s)
{
    size_t l = strlen(s);
    if (*n + l + 1 < cap) {
        memcpy(buf + *n, s, l);
        *n += l;
    }
}

/* OIP clients read {"error": ...}: routes say so with HTTP_ERR_OIP, and a path under /v2 that
 * matched no route (404) or not with this method (405) is answered the same way, since only the
 * Open Inference Protocol lives there. */
bool http__err_oip(const http_req *r)
{
    if (r->match.route)
        return (r->match.route->flags & HTTP_ERR_OIP) != 0;
    const char *p = r->path ? r->path : "";
    return strncmp(p, "/v2", 3) == 0 && (p[3] == '\0' || p[3] == '/');
}

size_t http__error_json(char *buf, size_t cap, int code, const char *field, const char *msg,
                        const char *request_id, bool oip)
{
    size_t n = 0;
    if (oip) {
        put_raw(buf, cap, &n, "{\"error\":\"");
        put_json_str(buf, cap, &n, msg && *msg ? msg : md_err_default_msg(code));
        put_raw(buf, cap, &n, "\"}");
        buf[n] = '\0';
        return n;
    }
    put_raw(buf, cap, &n, "{\"success\":false,\"error\":{\"code\":\"");
    put_json_str(buf, cap, &n, md_err_name(code));
    put_raw(buf, cap, &n, "\",\"message\":\"");
    put_json_str(buf, cap, &n, msg && *msg ? msg : md_err_default_msg(code));
    if (field && *field) {
        put_raw(buf, cap, &n, "\",\"field\":\"");
        put_json_str(buf, cap, &n, field);
    }
    put_raw(buf, cap, &n, "\"},\"request_id\":\"");
    put_json_str(buf, cap, &n, request_id);
    put_raw(buf, cap, &n, "\"}");
    buf[n] = '\0';
    return n;
}

/* 503 and 507 tell the client when to come back (RFC 9110 section 10.2.3); a full disk is not
 * freed in a second, hence the longer wait. NULL for every other code. */
const char *http__retry_after(int code)
{
    int status = md_err_status(code);
    return status == 507 ? "30" : status == 503 ? "1" : NULL;
}

/* The error's Retry-After, unless the code that failed set its own first (the rate limiter). */
static void add_retry_after(http_req *r, int code)
{
    const char *v = http__retry_after(code);
    if (!v)
        return;
    for (const http_hdr *h = r->rhdrs; h; h = h->next)
        if (strcasecmp(h->k, "Retry-After") == 0)
            return;
    http_reply_header(r, "Retry-After", v);
}

int http_reply_error(http_req *r, const md_err *e)
{
    if (!begin_reply(r))
        return MD_E_INTERNAL;
    int code = e->code == MD_OK ? MD_E_INTERNAL : e->code;
    add_retry_after(r, code);
    char buf[2600];
    size_t n = http__error_json(buf, sizeof buf, code, e->field, md_err_message(e), r->id, http__err_oip(r));
    if (e != &r->err)
        r->err = *e;
    r->err.code = code;
    void *copy = md_arena_alloc(r->arena, n);
    if (!copy)
        return MD_E_NOMEM;
    memcpy(copy, buf, n);
    return set_reply(r, md_err_status(code), "application/json", copy, n);
}

int http_reply_fail(http_req *r, int code, const char *field, const char *fmt, ...)
{
    md_err e;
    md_err_clear(&e);
    e.code = code;
    if (field)
        snprintf(e.field, sizeof e.field, "%s", field);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e.msg, sizeof e.msg, fmt, ap);
        va_end(ap);
    }
    return http_reply_error(r, &e);
}

int http_reply_header(http_req *r, const char *name, const char *value)
{
    http_hdr *h = md_arena_alloc(r->arena, sizeof *h);
    if (!h)
        return MD_E_NOMEM;
    h->k = md_arena_strdup(r->arena, name);
    h->v = md_arena_strdup(r->arena, value);
    if (!h->k || !h->v)
        return MD_E_NOMEM;
    h->next = r->rhdrs;
    r->rhdrs = h;
    return MD_OK;
}
