/* multipart_stream.c - the multipart/form-data grammar of multipart.c, fed in pieces: for bodies
 * spooled to a file (http_route_body_to_file), whose parts must be found without loading them.
 *
 * The parser is a byte-driven state machine; only a part's header block is ever held:
 *
 *   PRE ──delimiter──▶ AFTER ──'-'──▶ DASH ──'-'──▶ END   (closing delimiter; epilogue ignored)
 *                        │ ' ' '\t' ─▶ WS ─┐
 *                        │ '\r' ───────────┴▶ CR ──'\n'──▶ HEAD ──"\r\n\r\n"──▶ DATA
 *                        ▲                                                       │
 *                        └──────────────────────── delimiter ────────────────────┘
 *   any state ──bad byte / limit / callback error──▶ ERR (sticky)
 *
 * Invariants:
 *   1. It accepts what mp_parse accepts and reports the same parts at the same offsets
 *      (tests/fuzz/multipart_stream_fuzz.c feeds both the same bytes in random pieces):
 *      PRE starts as if "\r\n" had been fed, which makes "--boundary" at offset 0 and
 *      "\r\n--boundary" later the same search, as in multipart.c's first_delimiter.
 *   2. Memory is constant: the delimiter ("\r\n--" + boundary) is matched with KMP, so the
 *      bytes held back while a delimiter might be starting are a prefix of the delimiter itself
 *      and are re-emitted from it when the match fails; nothing of the body is copied but the
 *      header block (at most MP_HEADERS_MAX + 4 bytes).
 *   3. Every byte fed is examined once (plus KMP's amortised fallbacks): linear in the body.
 */
#include "api/multipart.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DLEN_MAX (MP_BOUNDARY_MAX + 4)

typedef enum { S_PRE, S_AFTER, S_DASH, S_WS, S_CR, S_HEAD, S_DATA, S_END, S_ERR } mp_state;

struct mp_stream {
    mp_stream_cb cb;
    void *user;
    char delim[DLEN_MAX];
    size_t dlen;
    uint8_t fail[DLEN_MAX]; /* KMP: longest proper prefix of delim[0..i] that is also a suffix */
    size_t m;               /* delimiter bytes matched so far */
    mp_state st;
    int rc;       /* the sticky error (S_ERR) */
    uint64_t pos; /* offset in the body of the next byte fed */
    size_t nparts, max;
    mp_part part;
    char head[MP_HEADERS_MAX + 4];
    size_t hlen;
};

static int fail_at(mp_stream *s, int rc)
{
    s->st = S_ERR;
    s->rc = rc;
    return rc;
}

static int bad(mp_stream *s, md_err *err, const char *field, const char *msg)
{
    return fail_at(s, md_fail(err, MD_E_BAD_REQUEST, field, "%s", msg));
}

/* One KMP step: the new match length after byte c. */
static size_t kmp_step(const mp_stream *s, size_t m, char c)
{
    while (m > 0 && s->delim[m] != c)
        m = s->fail[m - 1];
    return s->delim[m] == c ? m + 1 : 0;
}

int mp_stream_new(const char *boundary, size_t max_parts, const mp_stream_cb *cb, void *user,
                  mp_stream **out, md_err *err)
{
    *out = NULL;
    size_t blen = boundary ? strlen(boundary) : 0;
    if (blen == 0 || blen > MP_BOUNDARY_MAX)
        return md_fail(err, MD_E_BAD_REQUEST, "file", "empty or malformed multipart body");
    mp_stream *s = calloc(1, sizeof *s);
    if (!s)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (cb)
        s->cb = *cb;
    s->user = user;
    memcpy(s->delim, "\r\n--", 4);
    memcpy(s->delim + 4, boundary, blen);
    s->dlen = blen + 4;
    for (size_t i = 1, k = 0; i < s->dlen; i++) {
        while (k > 0 && s->delim[i] != s->delim[k])
            k = s->fail[k - 1];
        k += s->delim[i] == s->delim[k];
        s->fail[i] = (uint8_t)k;
    }
    s->max = max_parts > MP_PARTS_MAX ? MP_PARTS_MAX : max_parts;
    s->st = S_PRE;
    s->m = kmp_step(s, kmp_step(s, 0, '\r'), '\n'); /* invariant 1 */
    *out = s;
    return MD_OK;
}

void mp_stream_free(mp_stream *s)
{
    free(s);
}

static int emit(mp_stream *s, const void *p, size_t n)
{
    if (n == 0 || !s->cb.on_data)
        return MD_OK;
    int rc = s->cb.on_data(s->user, p, n);
    return rc == MD_OK ? MD_OK : fail_at(s, rc);
}

/* A delimiter ended the current part at body offset end. */
static int part_done(mp_stream *s, uint64_t end)
{
    s->part.len = (size_t)(end - s->part.offset);
    s->nparts++;
    s->st = S_AFTER;
    s->m = 0;
    int rc = s->cb.on_end ? s->cb.on_end(s->user, &s->part) : MD_OK;
    return rc == MD_OK ? MD_OK : fail_at(s, rc);
}

/* PRE and DATA: scan for the delimiter; DATA hands on the bytes that cannot be part of it.
 * Returns bytes consumed (up to and including a delimiter), or -1 on error (s->rc). */
static ssize_t scan(mp_stream *s, const uint8_t *p, size_t n)
{
    bool data = s->st == S_DATA;
    size_t i = 0;
    while (i < n) {
        if (s->m == 0) { /* the fast path: skip to the next byte that could start a delimiter */
            const uint8_t *hit = memchr(p + i, s->delim[0], n - i);
            size_t run = hit ? (size_t)(hit - (p + i)) : n - i;
            if (data && emit(s, p + i, run) != MD_OK)
                return -1;
            i += run;
            if (!hit)
                break;
            s->m = 1;
            i++;
            continue;
        }
        size_t old = s->m, m = kmp_step(s, old, (char)p[i]);
        i++;
        if (m == s->dlen) {
            uint64_t end = s->pos + i - s->dlen; /* where the delimiter starts */
            if (!data) {
                s->st = S_AFTER;
                s->m = 0;
            } else if (part_done(s, end) != MD_OK) {
                return -1;
            }
            return (ssize_t)i;
        }
        /* old held bytes plus this one, less the m still held: they are data (invariant 2) */
        size_t released = old + 1 - m;
        if (data) {
            int rc = emit(s, s->delim, released <= old ? released : old);
            if (rc == MD_OK && released > old)
                rc = emit(s, p + i - 1, 1); /* this byte too: nothing is held any more */
            if (rc != MD_OK)
                return -1;
        }
        s->m = m;
    }
    return (ssize_t)n;
}

/* After a delimiter: "--" ends the body, else transport padding and CRLF start a part. */
static int after(mp_stream *s, char c, md_err *err)
{
    static const char msg[] = "malformed multipart delimiter line";
    switch (s->st) {
    case S_AFTER:
        s->st = c == '-' ? S_DASH : c == ' ' || c == '\t' ? S_WS : c == '\r' ? S_CR : S_ERR;
        break;
    case S_DASH:
        s->st = c == '-' ? S_END : S_ERR;
        break;
    case S_WS:
        s->st = c == ' ' || c == '\t' ? S_WS : c == '\r' ? S_CR : S_ERR;
        break;
    default: /* S_CR */
        s->st = c == '\n' ? S_HEAD : S_ERR;
        break;
    }
    if (s->st == S_ERR)
        return bad(s, err, "file", msg);
    if (s->st == S_HEAD && s->nparts == s->max)
        return fail_at(
            s, md_fail(err, MD_E_BAD_REQUEST, "files", "more than %zu multipart parts", s->max));
    s->hlen = 0;
    return MD_OK;
}

/* One byte of a part's header block; at its blank line the headers are parsed. */
static int head(mp_stream *s, char c, md_err *err)
{
    s->head[s->hlen++] = c;
    /* no header lines at all (a bare CRLF) is refused like an over-long block, as mp_parse does */
    bool bare = s->hlen == 2 && s->head[0] == '\r' && s->head[1] == '\n';
    bool end = !bare && s->hlen >= 4 && memcmp(s->head + s->hlen - 4, "\r\n\r\n", 4) == 0;
    if (bare || (!end && s->hlen >= sizeof s->head))
        return fail_at(s, md_fail(err, MD_E_BAD_REQUEST, "file",
                                  "multipart part headers missing or longer than %d bytes",
                                  MP_HEADERS_MAX));
    if (!end)
        return MD_OK;
    memset(&s->part, 0, sizeof s->part);
    int rc = mp__parse_headers(s->head, s->hlen - 4, &s->part, err);
    if (rc != MD_OK)
        return fail_at(s, rc);
    s->part.offset = s->pos + 1; /* the byte after this one */
    s->st = S_DATA;
    s->m = 0;
    rc = s->cb.on_part ? s->cb.on_part(s->user, &s->part) : MD_OK;
    return rc == MD_OK ? MD_OK : fail_at(s, rc);
}

int mp_stream_feed(mp_stream *s, const void *data, size_t n, md_err *err)
{
    const uint8_t *p = data;
    size_t i = 0;
    while (i < n && s->st != S_ERR) {
        if (s->st == S_END) /* the epilogue is ignored */
            break;
        if (s->st == S_PRE || s->st == S_DATA) {
            ssize_t k = scan(s, p + i, n - i);
            if (k < 0)
                break;
            s->pos += (uint64_t)k;
            i += (size_t)k;
            continue;
        }
        int rc = s->st == S_HEAD ? head(s, (char)p[i], err) : after(s, (char)p[i], err);
        s->pos++;
        i++;
        if (rc != MD_OK)
            break;
    }
    if (s->st == S_ERR && err && err->code != s->rc)
        md_fail(err, s->rc, "file", NULL);
    return s->st == S_ERR ? s->rc : MD_OK;
}

int mp_stream_finish(mp_stream *s, md_err *err)
{
    switch (s->st) {
    case S_END:
        return MD_OK;
    case S_ERR:
        return s->rc;
    case S_PRE:
        return bad(s, err, "file", "multipart body has no boundary line");
    case S_HEAD: {
        char msg[80];
        snprintf(msg, sizeof msg, "multipart part headers missing or longer than %d bytes",
                 MP_HEADERS_MAX);
        return bad(s, err, "file", msg);
    }
    case S_DATA:
        return bad(s, err, "file", "multipart body ends before its closing boundary");
    default:
        return bad(s, err, "file", "malformed multipart delimiter line");
    }
}

/* ---- a spooled body ----------------------------------------------------------------------- */

typedef struct file_parts {
    mp_part *parts;
} file_parts;

static int keep_part(void *user, const mp_part *part)
{
    file_parts *f = user;
    f->parts[0] = *part; /* the slot of the part being read; mp_stream caps the count */
    return MD_OK;
}

static int next_slot(void *user, const mp_part *part)
{
    file_parts *f = user;
    f->parts[0] = *part;
    f->parts++;
    return MD_OK;
}

int mp_file_parse(int fd, uint64_t size, const char *boundary, mp_part *parts, size_t max,
                  size_t *n, md_err *err)
{
    *n = 0;
    file_parts f = {parts};
    mp_stream_cb cb = {.on_part = keep_part, .on_end = next_slot};
    mp_stream *s = NULL;
    int rc = mp_stream_new(boundary, max, &cb, &f, &s, err);
    size_t cap = (size_t)1 << 18;
    uint8_t *buf = rc == MD_OK ? malloc(cap) : NULL;
    if (rc == MD_OK && !buf)
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    for (uint64_t off = 0; rc == MD_OK && off < size && s->st != S_END;) {
        size_t want = size - off < cap ? (size_t)(size - off) : cap;
        ssize_t got = pread(fd, buf, want, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            rc = md_fail(err, MD_E_IO, "file", "cannot read the upload");
        else
            rc = mp_stream_feed(s, buf, (size_t)got, err);
        off += got > 0 ? (uint64_t)got : 0;
    }
    if (rc == MD_OK)
        rc = mp_stream_finish(s, err);
    if (rc == MD_OK)
        *n = (size_t)(f.parts - parts);
    free(buf);
    mp_stream_free(s);
    return rc;
}
