/* httpc.c - the CLI's minimal HTTP/1.1 client (see httpc.h).
 *
 * Invariants:
 *   1. The whole answer is read into one md_buf capped at HTTPC_MAX_BODY plus room for headers;
 *      a longer answer fails with MD_E_TOO_LARGE instead of growing without bound.
 *   2. Every socket read and write has a timeout (SO_RCVTIMEO / SO_SNDTIMEO, which also bound
 *      connect on Linux), so a silent server cannot hang the CLI.
 *   3. The answer is parsed only from the bytes received: a chunk size or Content-Length that
 *      points past them is a malformed answer, never a read out of bounds.
 */
#include "cli/httpc.h"

#include "base/buf.h"

#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct url_parts {
    char host[256], port[8], prefix[512];
} url_parts;

static int parse_url(const char *url, url_parts *u, md_err *err)
{
    if (strncmp(url, "http://", 7) != 0)
        return md_fail(err, MD_E_INVALID_PARAM, "url", "the URL must start with http:// (https: put a proxy in front)");
    const char *h = url + 7, *end = h + strcspn(h, "/"), *colon;
    if (*h == '[') { /* [v6]:port */
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb)
            return md_fail(err, MD_E_INVALID_PARAM, "url", "unterminated [IPv6] host in the URL");
        snprintf(u->host, sizeof u->host, "%.*s", (int)(rb - h - 1), h + 1);
        colon = rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        snprintf(u->host, sizeof u->host, "%.*s", (int)((colon ? colon : end) - h), h);
    }
    snprintf(u->port, sizeof u->port, "%.*s", colon ? (int)(end - colon - 1) : 2, colon ? colon + 1 : "80");
    if (!u->host[0] || !u->port[0] || strspn(u->port, "0123456789") != strlen(u->port))
        return md_fail(err, MD_E_INVALID_PARAM, "url", "the URL needs a host and a numeric port");
    snprintf(u->prefix, sizeof u->prefix, "%s", end);
    size_t n = strlen(u->prefix);
    while (n && u->prefix[n - 1] == '/')
        u->prefix[--n] = '\0';
    return MD_OK;
}

/* A connected socket into *out. */
static int dial(const url_parts *u, int timeout_s, int *out, md_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    *out = -1;
    if (getaddrinfo(u->host, u->port, &hints, &res) != 0)
        return md_fail(err, MD_E_UNAVAILABLE, "url", "cannot resolve %s", u->host);
    int fd = -1;
    struct timeval tv = {.tv_sec = timeout_s};
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return md_fail(err, MD_E_UNAVAILABLE, "url", "cannot connect to %s:%s", u->host, u->port);
    *out = fd;
    return MD_OK;
}

static int send_all(int fd, const char *p, size_t n, md_err *err)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return md_fail(err, MD_E_UNAVAILABLE, NULL, "the connection to the server broke while sending");
        p += k;
        n -= (size_t)k;
    }
    return MD_OK;
}

static int recv_all(int fd, md_buf *b, md_err *err)
{
    char chunk[16384];
    for (;;) {
        ssize_t k = recv(fd, chunk, sizeof chunk, 0);
        if (k == 0)
            return MD_OK;
        if (k < 0)
            return md_fail(err, MD_E_UNAVAILABLE, NULL, "no complete answer from the server (timeout or reset)");
        if (md_buf_append(b, chunk, (size_t)k) != MD_OK)
            return md_fail(err, MD_E_TOO_LARGE, NULL, "the answer is larger than %u bytes", HTTPC_MAX_BODY);
    }
}

/* Value of header name in the header block [h, end), or NULL. */
static const char *find_header(const char *h, const char *end, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = h; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            return v;
        }
        p = eol + 1;
    }
    return NULL;
}

/* Chunked body [p, end) decoded into out. */
static int dechunk(const char *p, const char *end, md_buf *out, md_err *err)
{
    for (;;) {
        char *after;
        unsigned long n = strtoul(p, &after, 16);
        const char *eol = memchr(after, '\n', (size_t)(end - after));
        if (after == p || !eol || n > (unsigned long)(end - eol - 1))
            return md_fail(err, MD_E_BAD_REQUEST, NULL, "malformed chunked answer from the server");
        if (n == 0)
            return MD_OK;
        if (md_buf_append(out, eol + 1, n) != MD_OK)
            return md_fail(err, MD_E_TOO_LARGE, NULL, "the answer is too large");
        p = eol + 1 + n;
        if (end - p < 2)
            return md_fail(err, MD_E_BAD_REQUEST, NULL, "malformed chunked answer from the server");
        p += 2;
    }
}

static int parse_answer(const md_buf *raw, httpc_resp *out, md_err *err)
{
    const char *s = raw->data ? raw->data : "", *end = s + raw->len;
    const char *hend = strstr(s, "\r\n\r\n");
    if (strncmp(s, "HTTP/1.", 7) != 0 || raw->len < 12 || !hend || !isdigit((unsigned char)s[9]))
        return md_fail(err, MD_E_BAD_REQUEST, NULL, "the server's answer is not HTTP/1.x");
    out->status = atoi(s + 9);
    const char *body = hend + 4;
    md_buf b;
    md_buf_init(&b, HTTPC_MAX_BODY);
    const char *te = find_header(s, hend, "Transfer-Encoding"), *cl = find_header(s, hend, "Content-Length");
    int rc = MD_OK;
    if (te && strncasecmp(te, "chunked", 7) == 0) {
        rc = dechunk(body, end, &b, err);
    } else {
        size_t n = (size_t)(end - body);
        if (cl && strtoull(cl, NULL, 10) < n)
            n = (size_t)strtoull(cl, NULL, 10);
        rc = md_buf_append(&b, body, n) == MD_OK ? MD_OK : md_fail(err, MD_E_TOO_LARGE, NULL, NULL);
    }
    if (rc == MD_OK) {
        out->body = md_buf_steal(&b, &out->len);
        rc = out->body ? MD_OK : md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    md_buf_free(&b);
    return rc;
}

int httpc_request(const char *base_url, const char *method, const char *path, const char *key, const char *body,
                  int timeout_s, httpc_resp *out, md_err *err)
{
    url_parts u;
    memset(out, 0, sizeof *out);
    int rc = parse_url(base_url, &u, err);
    if (rc != MD_OK)
        return rc;
    md_buf req, raw;
    md_buf_init(&req, 1u << 20);
    md_buf_init(&raw, HTTPC_MAX_BODY + 65536);
    size_t blen = body ? strlen(body) : 0;
    rc = md_buf_printf(&req, "%s %s%s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: modeld-cli/%s\r\nAccept: "
                             "application/json\r\nConnection: close\r\nContent-Length: %zu\r\n",
                       method, u.prefix, path, u.host, u.port, MODELD_VERSION, blen);
    if (rc == MD_OK && key)
        rc = md_buf_printf(&req, "Authorization: Bearer %s\r\n", key);
    if (rc == MD_OK && body)
        rc = md_buf_puts(&req, "Content-Type: application/json\r\n");
    if (rc == MD_OK)
        rc = md_buf_puts(&req, "\r\n");
    if (rc == MD_OK && body)
        rc = md_buf_append(&req, body, blen);
    if (rc != MD_OK)
        rc = md_fail(err, rc, NULL, "the request is too large");
    int fd = -1;
    if (rc == MD_OK)
        rc = dial(&u, timeout_s, &fd, err);
    if (rc == MD_OK)
        rc = send_all(fd, req.data, req.len, err);
    if (rc == MD_OK)
        rc = recv_all(fd, &raw, err);
    if (fd >= 0)
        close(fd);
    if (rc == MD_OK)
        rc = parse_answer(&raw, out, err);
    md_buf_free(&req);
    md_buf_free(&raw);
    return rc;
}

void httpc_resp_free(httpc_resp *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
