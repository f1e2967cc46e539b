/* spooled_upload.c - api__read_upload (api_int.h): a CSV or JSON-lines file sent as the raw
 * body or as a form's `file` part, located in the body the HTTP layer spooled to a file.
 * POST /api/{model}/bulk and POST /api/admin/datasets take their files this way, and split
 * their JSON lines with api__jsonl_feed.
 *
 * Invariants:
 *   1. The file's bytes are never read here beyond its first 4 KiB (the format sniff): the
 *      caller streams them (pread in blocks) or moves them into the blob store, so memory stays
 *      constant in the upload's size.
 *   2. The size limit is the file's, not the envelope's: a form's file part over max_bytes is a
 *      413 naming "file" like a raw body (the route lets the envelope 1 MB more).
 *   3. A small form field (callback_url, a name) is read into the request's arena, at most
 *      API__UPLOAD_FIELD_MAX bytes (400 naming it beyond).
 */
#include "api/api_int.h"

#include "api/multipart.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* What a form may add around its file part (boundaries, part headers, small fields): the
 * route's limit is the file's plus this (invariant 2). */
#define UPLOAD_ENVELOPE ((size_t)1 << 20)

const char *api__upload_format(const char *ct)
{
    if (!ct)
        return NULL;
    if (strncasecmp(ct, "text/csv", 8) == 0)
        return "csv";
    static const char *const jl[] = {"application/x-ndjson", "application/ndjson",
                                     "application/jsonl", "application/x-jsonlines",
                                     "application/json-lines"};
    for (size_t i = 0; i < sizeof jl / sizeof jl[0]; i++)
        if (strncasecmp(ct, jl[i], strlen(jl[i])) == 0)
            return "jsonl";
    return NULL;
}

int api__looks_jsonl(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && isspace((unsigned char)p[i]))
        i++;
    return i < n && p[i] == '{';
}

void api__route_spool_upload(http_route *r, size_t max_bytes)
{
    http_route_body_to_file(r, max_bytes + UPLOAD_ENVELOPE);
}

int api__jsonl_feed(md_buf *line, const size_t *line_no, const char *p, size_t n,
                    api__line_fn on_line, void *user, md_err *err)
{
    int rc = MD_OK;
    while (rc == MD_OK && n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        rc = md_buf_append(line, p, take);
        if (rc == MD_E_TOO_LARGE)
            return md_fail(err, MD_E_TOO_LARGE, "file", "line %zu: longer than %zu bytes",
                           *line_no + 1, line->max);
        if (rc != MD_OK || !nl)
            return rc;
        rc = on_line(user, line->data, line->len, err);
        md_buf_reset(line);
        p += take + 1;
        n -= take + 1;
    }
    return rc;
}

/* A small form field's value, read from the body file into the arena (invariant 3). */
static int form_value(http_req *req, const api__upload *u, const mp_part *p, const char **out)
{
    md_err *err = http_req_err(req);
    if (p->len > API__UPLOAD_FIELD_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, p->name, "longer than %d bytes",
                       API__UPLOAD_FIELD_MAX);
    char *s = md_arena_alloc(http_req_arena(req), p->len + 1);
    if (!s)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (pread(u->body.fd, s, p->len, (off_t)p->offset) != (ssize_t)p->len)
        return md_fail(err, MD_E_IO, "body", "cannot read the upload");
    s[p->len] = '\0';
    *out = s;
    return MD_OK;
}

/* The `file` part and the field named `field` of a multipart body, found in the file. */
static int form_upload(http_req *req, const char *ct, const char *field, api__upload *u)
{
    md_err *err = http_req_err(req);
    char boundary[MP_BOUNDARY_MAX + 1];
    int rc = mp_boundary(ct, boundary, sizeof boundary, err);
    mp_part *parts = md_arena_alloc(http_req_arena(req), MP_PARTS_MAX * sizeof *parts);
    size_t n = 0;
    if (rc == MD_OK && !parts)
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK)
        rc = mp_file_parse(u->body.fd, u->body.size, boundary, parts, MP_PARTS_MAX, &n, err);
    bool found = false;
    for (size_t i = 0; rc == MD_OK && i < n; i++) {
        if (strcmp(parts[i].name, "file") == 0 && !found) {
            found = true;
            u->off = parts[i].offset;
            u->len = parts[i].len;
            u->name = parts[i].filename;
            u->format = api__upload_format(parts[i].content_type);
        } else if (field && strcmp(parts[i].name, field) == 0) {
            rc = form_value(req, u, &parts[i], &u->field);
        }
    }
    if (rc == MD_OK && !found)
        rc = md_fail(err, MD_E_MISSING_FIELD, "file", "the form has no \"file\" part");
    return rc;
}

/* The format from the upload's first bytes when its media type does not say (invariant 1). */
static int sniff(http_req *req, api__upload *u)
{
    char head[4096];
    size_t want = u->len < sizeof head ? (size_t)u->len : sizeof head;
    ssize_t got = pread(u->body.fd, head, want, (off_t)u->off);
    if (got != (ssize_t)want)
        return md_fail(http_req_err(req), MD_E_IO, "body", "cannot read the upload");
    u->format = api__looks_jsonl(head, want) ? "jsonl" : "csv";
    return MD_OK;
}

int api__read_upload(http_req *req, size_t max_bytes, const char *field, api__upload *u)
{
    md_err *err = http_req_err(req);
    const char *ct = http_req_header(req, "Content-Type");
    memset(u, 0, sizeof *u);
    int rc = http_req_body_file(req, &u->body);
    if (rc == MD_OK && ct && strncasecmp(ct, "multipart/", 10) == 0) {
        rc = form_upload(req, ct, field, u);
    } else if (rc == MD_OK) {
        u->whole = true;
        u->len = u->body.size;
        u->name = "";
        u->format = api__upload_format(ct);
    }
    if (rc == MD_OK && u->len > max_bytes) /* invariant 2 */
        rc = md_fail(err, MD_E_TOO_LARGE, "file", "the upload is %llu bytes, more than %zu",
                     (unsigned long long)u->len, max_bytes);
    if (rc == MD_OK && u->len == 0)
        rc = md_fail(err, MD_E_MISSING_FIELD, "file", "the upload is empty");
    if (rc == MD_OK && !u->format)
        rc = sniff(req, u);
    return rc;
}

json_t *api__json_keys(const json_t *o)
{
    json_t *keys = json_array();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        (void)v;
        json_array_append_new(keys, json_string(k));
    }
    return keys;
}
