/* multipart.c - multipart/form-data parsing for POST /api/upload.
 *
 * Invariants:
 *   1. Every read is bounded by the body length: delimiters are found with memmem over the
 *      remaining bytes, never with string functions on the body (which may hold NULs).
 *   2. Limits (MP_*) are checked before the work they bound, so a malformed body is refused
 *      after at most one pass over it.
 *   3. Nothing is allocated; parts point into the caller's body.
 */
#include "api/multipart.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* ---- Content-Type ---------------------------------------------------------------------- */

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

int mp_boundary(const char *content_type, char *out, size_t cap, md_err *err)
{
    static const char type[] = "multipart/form-data";
    if (content_type == NULL || strncasecmp(skip_ws(content_type), type, sizeof type - 1) != 0)
        return md_fail(
            err, MD_E_UNSUPPORTED_MEDIA, "Content-Type",
            "send the image as multipart/form-data (field \"file\") or as a raw image/* body");
    const char *p = skip_ws(content_type) + sizeof type - 1;
    while ((p = strchr(p, ';')) != NULL) {
        p = skip_ws(p + 1);
        if (strncasecmp(p, "boundary=", 9) != 0)
            continue;
        p += 9;
        size_t n = 0;
        if (*p == '"') {
            const char *end = strchr(++p, '"');
            n = end ? (size_t)(end - p) : 0;
        } else {
            n = strcspn(p, "; \t");
        }
        if (n == 0 || n > MP_BOUNDARY_MAX || n + 1 > cap)
            break;
        memcpy(out, p, n);
        out[n] = '\0';
        return MD_OK;
    }
    return md_fail(err, MD_E_BAD_REQUEST, "Content-Type",
                   "multipart/form-data needs a boundary of 1..%d characters", MP_BOUNDARY_MAX);
}

/* ---- filenames ------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t need;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        need = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        need = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        need = 4;
    else
        return 0;
    if (need > n)
        return 0;
    for (size_t i = 1; i < need; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    /* Overlong 3/4-byte forms, UTF-16 surrogates and code points past U+10FFFF. */
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0) ||
        (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90))
        return 0;
    return need;
}

void mp_sanitize_filename(const char *in, size_t n, char *out, size_t cap)
{
    /* Keep the last path component: browsers on Windows used to send "C:\dir\x.png". */
    for (size_t i = n; i > 0; i--)
        if (in[i - 1] == '/' || in[i - 1] == '\\') {
            in += i;
            n -= i;
            break;
        }
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)in;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(s + i, n - i);
        if (k == 0 || (k == 1 && (s[i] < 0x20 || s[i] == 0x7F || s[i] == '"'))) {
            k = k ? k : 1;
            if (o + 1 >= cap)
                break;
            out[o++] = '_';
        } else {
            if (o + k >= cap)
                break;
            memcpy(out + o, s + i, k);
            o += k;
        }
        i += k;
    }
    out[o] = '\0';
    if (strspn(out, ".") == o)
        out[0] = '\0';
}

/* ---- part headers ---------------------------------------------------------------------- */

/* Value of parameter `key` in a header like `form-data; name="file"; filename="a.png"`,
 * unquoted (backslash escapes honoured) into out. Returns 1 when present, 0 when not. */
static int header_param(const char *h, size_t hlen, const char *key, char *raw, size_t cap,
                        size_t *rawlen)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i + klen + 1 <= hlen; i++) {
        if (i > 0 && h[i - 1] != ';' && h[i - 1] != ' ' && h[i - 1] != '\t')
            continue;
        if (strncasecmp(h + i, key, klen) != 0 || h[i + klen] != '=')
            continue;
        size_t p = i + klen + 1, o = 0;
        if (p < hlen && h[p] == '"') {
            for (p++; p < hlen && h[p] != '"'; p++) {
                if (h[p] == '\\' && p + 1 < hlen)
                    p++;
                if (o + 1 < cap)
                    raw[o++] = h[p];
            }
        } else {
            for (; p < hlen && h[p] != ';' && h[p] != ' ' && h[p] != '\t'; p++)
                if (o + 1 < cap)
                    raw[o++] = h[p];
        }
        raw[o] = '\0';
        *rawlen = o;
        return 1;
    }
    return 0;
}

/* Copy a header value (after "Name:") trimmed into out, truncated to cap-1. */
static void header_value(const char *v, size_t n, char *out, size_t cap)
{
    while (n > 0 && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

/* Parse the header block [h, h+n) (lines separated by CRLF) into part. */
int mp__parse_headers(const char *h, size_t n, mp_part *part, md_err *err)
{
    int has_disposition = 0;
    while (n > 0) {
        const char *eol = memmem(h, n, "\r\n", 2);
        size_t len = eol ? (size_t)(eol - h) : n;
        const char *colon = memchr(h, ':', len);
        if (colon == NULL)
            return md_fail(err, MD_E_BAD_REQUEST, "file", "malformed multipart part header");
        size_t nlen = (size_t)(colon - h), vlen = len - nlen - 1;
        if (nlen == 19 && strncasecmp(h, "Content-Disposition", 19) == 0) {
            char raw[1024];
            size_t rl = 0;
            has_disposition = 1;
            if (header_param(colon + 1, vlen, "name", raw, sizeof raw, &rl))
                header_value(raw, rl, part->name, sizeof part->name);
            if (header_param(colon + 1, vlen, "filename", raw, sizeof raw, &rl))
                mp_sanitize_filename(raw, rl, part->filename, sizeof part->filename);
        } else if (nlen == 12 && strncasecmp(h, "Content-Type", 12) == 0) {
            header_value(colon + 1, vlen, part->content_type, sizeof part->content_type);
        }
        if (eol == NULL)
            break;
        n -= len + 2;
        h = eol + 2;
    }
    if (!has_disposition)
        return md_fail(err, MD_E_BAD_REQUEST, "file", "multipart part without Content-Disposition");
    return MD_OK;
}

/* ---- the envelope ---------------------------------------------------------------------- */

typedef struct scan {
    const char *start, *p, *end;
    char delim[MP_BOUNDARY_MAX + 5]; /* "\r\n--" + boundary */
    size_t dlen;
} scan;

/* Position just after the first delimiter; the body may start with it or have a preamble. */
static const char *first_delimiter(const scan *s)
{
    size_t n = (size_t)(s->end - s->p);
    if (n >= s->dlen - 2 && memcmp(s->p, s->delim + 2, s->dlen - 2) == 0)
        return s->p + s->dlen - 2;
    const char *d = memmem(s->p, n, s->delim, s->dlen);
    return d ? d + s->dlen : NULL;
}

/* After a delimiter: "--" ends the body (*done = 1), else skip transport padding and CRLF. */
static int after_delimiter(scan *s, int *done, md_err *err)
{
    *done = s->end - s->p >= 2 && s->p[0] == '-' && s->p[1] == '-';
    if (*done)
        return MD_OK;
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t'))
        s->p++;
    if (s->end - s->p < 2 || s->p[0] != '\r' || s->p[1] != '\n')
        return md_fail(err, MD_E_BAD_REQUEST, "file", "malformed multipart delimiter line");
    s->p += 2;
    return MD_OK;
}

/* One part starting at s->p: headers then data up to the next delimiter. */
static int next_part(scan *s, mp_part *part, md_err *err)
{
    size_t n = (size_t)(s->end - s->p);
    const char *hend = memmem(s->p, n < MP_HEADERS_MAX + 4 ? n : MP_HEADERS_MAX + 4, "\r\n\r\n", 4);
    memset(part, 0, sizeof *part);
    /* A part must have header lines (at least Content-Disposition): a bare CRLF is refused. */
    if (hend == NULL || (n >= 2 && s->p[0] == '\r' && s->p[1] == '\n'))
        return md_fail(err, MD_E_BAD_REQUEST, "file",
                       "multipart part headers missing or longer than %d bytes", MP_HEADERS_MAX);
    int rc = mp__parse_headers(s->p, (size_t)(hend - s->p), part, err);
    if (rc != MD_OK)
        return rc;
    const char *data = hend + 4;
    const char *d = memmem(data, (size_t)(s->end - data), s->delim, s->dlen);
    if (d == NULL)
        return md_fail(err, MD_E_BAD_REQUEST, "file",
                       "multipart body ends before its closing boundary");
    part->data = (const uint8_t *)data;
    part->len = (size_t)(d - data);
    part->offset = (uint64_t)(data - s->start);
    s->p = d + s->dlen;
    return MD_OK;
}

/* Start a scan of body: the delimiter and the first boundary line. */
static int scan_start(scan *s, const void *body, size_t len, const char *boundary, md_err *err)
{
    size_t blen = boundary ? strlen(boundary) : 0;
    /* checked before any pointer arithmetic: NULL + 0 is undefined behaviour in C */
    if (body == NULL || blen == 0 || blen > MP_BOUNDARY_MAX)
        return md_fail(err, MD_E_BAD_REQUEST, "file", "empty or malformed multipart body");
    s->p = body;
    s->start = body;
    s->end = (const char *)body + len;
    memcpy(s->delim, "\r\n--", 4);
    memcpy(s->delim + 4, boundary, blen);
    s->dlen = blen + 4;
    s->p = first_delimiter(s);
    if (s->p == NULL)
        return md_fail(err, MD_E_BAD_REQUEST, "file", "multipart body has no boundary line");
    return MD_OK;
}

int mp_find(const void *body, size_t len, const char *boundary, const char *field, mp_part *out,
            md_err *err)
{
    scan s = {0};
    int rc = scan_start(&s, body, len, boundary, err);
    if (rc != MD_OK)
        return rc;
    for (int i = 0; i < MP_PARTS_MAX; i++) {
        int done = 0;
        rc = after_delimiter(&s, &done, err);
        if (rc != MD_OK)
            return rc;
        if (done)
            return md_fail(err, MD_E_MISSING_FIELD, field, "the form has no \"%s\" field", field);
        rc = next_part(&s, out, err);
        if (rc != MD_OK)
            return rc;
        if (strcmp(out->name, field) == 0)
            return MD_OK;
    }
    return md_fail(err, MD_E_BAD_REQUEST, "file", "more than %d multipart parts", MP_PARTS_MAX);
}

int mp_parse(const void *body, size_t len, const char *boundary, mp_part *parts, size_t max,
             size_t *n, md_err *err)
{
    *n = 0;
    scan s = {0};
    int rc = scan_start(&s, body, len, boundary, err);
    if (rc != MD_OK)
        return rc;
    if (max > MP_PARTS_MAX)
        max = MP_PARTS_MAX;
    for (;;) {
        int done = 0;
        rc = after_delimiter(&s, &done, err);
        if (rc != MD_OK || done)
            return rc;
        if (*n == max)
            return md_fail(err, MD_E_BAD_REQUEST, "files", "more than %zu multipart parts", max);
        rc = next_part(&s, &parts[*n], err);
        if (rc != MD_OK)
            return rc;
        (*n)++;
    }
}
