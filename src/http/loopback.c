/* loopback.c - one request through the real middleware chain without a socket; see
 * http_loopback.h. The target is split and percent-decoded here the way libmicrohttpd does it
 * for real connections, so route and query tests see the same strings.
 */
#include "http/http_loopback.h"

#include "http/http_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode n bytes of s into the arena ('+' is a space in query strings only). */
static char *decode(md_arena *a, const char *s, size_t n, bool plus)
{
    char *out = md_arena_alloc(a, n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            *o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            *o++ = plus && s[i] == '+' ? ' ' : s[i];
        }
    }
    *o = '\0';
    return out;
}

static int parse_query(http_req *r, const char *q)
{
    size_t n = 1;
    for (const char *p = q; *p; p++)
        n += *p == '&';
    r->query = md_arena_calloc(r->arena, n, sizeof *r->query);
    if (!r->query)
        return MD_E_NOMEM;
    for (const char *p = q; *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t kl = eq ? (size_t)(eq - p) : len;
        if (kl) {
            r->query[r->nquery].k = decode(r->arena, p, kl, true);
            r->query[r->nquery].v = eq ? decode(r->arena, eq + 1, len - kl - 1, true) : "";
            if (!r->query[r->nquery].k || !r->query[r->nquery].v)
                return MD_E_NOMEM;
            r->nquery++;
        }
        p += len + (p[len] == '&');
    }
    return MD_OK;
}

static int copy_headers(http_req *r, const char *const *h)
{
    size_t n = 0;
    while (h && h[2 * n] && h[2 * n + 1])
        n++;
    r->hdrs = md_arena_calloc(r->arena, n + 1, sizeof *r->hdrs);
    if (!r->hdrs)
        return MD_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        r->hdrs[i].k = md_arena_strdup(r->arena, h[2 * i]);
        r->hdrs[i].v = md_arena_strdup(r->arena, h[2 * i + 1]);
        if (!r->hdrs[i].k || !r->hdrs[i].v)
            return MD_E_NOMEM;
    }
    r->nhdrs = n;
    return MD_OK;
}

typedef struct hlist {
    char **v;
    size_t n, cap;
    bool oom;
} hlist;

static void hl_add(void *cls, const char *k, const char *v)
{
    hlist *l = cls;
    if (l->n + 3 > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        char **nv = realloc(l->v, cap * sizeof *nv);
        if (!nv) {
            l->oom = true;
            return;
        }
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n] = strdup(k);
    l->v[l->n + 1] = strdup(v);
    l->oom |= !l->v[l->n] || !l->v[l->n + 1];
    l->n += 2;
    l->v[l->n] = NULL;
}

/* Read a file reply into memory (what libmicrohttpd would stream). */
static char *slurp_fd(int fd, uint64_t size)
{
    char *b = malloc(size + 1);
    size_t got = 0;
    while (b && got < size) {
        ssize_t n = pread(fd, b + got, size - got, (off_t)got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (b)
        b[got] = '\0';
    return b;
}

/* Read a streamed reply into memory (what libmicrohttpd would pull); *len gets the bytes
 * read, short when the stream failed (the client would see the connection cut). */
static char *slurp_stream(http__stream *st, size_t *len)
{
    char *b = malloc(st->size + 1);
    size_t got = 0;
    while (b && got < st->size) {
        size_t k = 0;
        if (st->read(st->ctx, b + got, (size_t)st->size - got, &k) != MD_OK || k == 0)
            break;
        got += k;
    }
    if (b)
        b[got] = '\0';
    *len = got;
    return b;
}

static int collect(http_req *r, http_loopback_resp *out)
{
    hlist l = {0};
    if (r->ctype)
        hl_add(&l, "Content-Type", r->ctype);
    if (r->gzipped)
        hl_add(&l, "Content-Encoding", "gzip");
    if (r->vary_ae)
        hl_add(&l, "Vary", "Accept-Encoding");
    for (const http_hdr *h = r->rhdrs; h; h = h->next)
        hl_add(&l, h->k, h->v);
    http__std_headers(r, hl_add, &l);
    out->headers = l.v;
    out->status = r->status;
    if (r->out_fd >= 0) {
        out->body = slurp_fd(r->out_fd, r->out_fd_size);
        out->len = out->body ? r->out_fd_size : 0;
    } else if (r->out_stream) {
        out->body = slurp_stream(r->out_stream, &out->len);
    } else {
        out->body = malloc(r->out_len + 1);
        out->len = r->out_len;
        if (out->body) {
            if (r->out_len)
                memcpy(out->body, r->out, r->out_len);
            out->body[r->out_len] = '\0';
        }
    }
    r->fin_status = r->status;
    r->fin_bytes = out->len;
    return l.oom || !l.v || !out->body ? MD_E_NOMEM : MD_OK;
}

static void feed_body(http_req *r, const void *body, size_t len)
{
    const char *p = body;
    /* Chunks of 64 KiB, as a socket would deliver them, so body sinks see several calls. */
    for (size_t off = 0; off < len; off += 65536) {
        size_t n = len - off < 65536 ? len - off : 65536;
        if (!http__req_body_in(r, p + off, n))
            break;
    }
}

int http_loopback(http_server *s, const char *method, const char *target, const char *const *headers,
                  const void *body, size_t len, http_loopback_resp *out)
{
    memset(out, 0, sizeof *out);
    http_req *r = http__req_new(s);
    if (!r)
        return MD_E_NOMEM;
    r->detached = true;
    strcpy(r->ip, "127.0.0.1");
    size_t plen = strcspn(target, "?");
    char *path = decode(r->arena, target, plen, false);
    int rc = path ? copy_headers(r, headers) : MD_E_NOMEM;
    if (rc == MD_OK)
        rc = parse_query(r, target[plen] ? target + plen + 1 : "");
    if (rc != MD_OK) {
        http__req_unref(r);
        return rc;
    }
    http__req_begin(r, method, path);
    http__req_headers_in(r, body ? (long long)len : -1);
    if (body && len)
        feed_body(r, body, len);
    if (r->state == REQ_AUTHED || r->state == REQ_BODY)
        http__req_body_end(r);
    http__req_to(r, REQ_RUNNING);
    http__req_run(r);
    http__req_finalize(r);
    http__req_to(r, REQ_REPLIED);
    rc = collect(r, out);
    http__req_to(r, REQ_COMPLETED);
    http__req_complete(r);
    http__req_unref(r);
    if (rc != MD_OK)
        http_loopback_resp_free(out);
    return rc;
}

void http_loopback_resp_free(http_loopback_resp *r)
{
    for (size_t i = 0; r->headers && r->headers[i]; i++)
        free(r->headers[i]);
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof *r);
}

const char *http_loopback_header(const http_loopback_resp *r, const char *name)
{
    for (size_t i = 0; r->headers && r->headers[i] && r->headers[i + 1]; i += 2)
        if (strcasecmp(r->headers[i], name) == 0)
            return r->headers[i + 1];
    return NULL;
}
