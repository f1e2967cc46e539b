/* api_int.h - internals shared by several files of src/api (not part of any resource's
 * interface; nothing outside src/api includes it).
 */
#ifndef MD_API_API_INT_H
#define MD_API_API_INT_H

#include "base/buf.h"
#include "http/http.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a directory of files the server reads at start (web page, swagger-ui-dist, shipped
 * models) is looked for when no setting names it. All strings borrowed, static in practice. */
typedef struct api__dir_search {
    const char *const *beside_exe; /* NULL-terminated paths relative to the binary's directory */
    const char *cwd;               /* one path relative to the working directory, or NULL */
    const char *source;            /* the source tree's copy (a build-time path), or NULL */
    const char *marker;            /* a regular file the directory must hold; NULL: any directory */
} api__dir_search;

/* The directory to use: dir itself when non-NULL and non-empty, else the first place of s in
 * the order beside_exe, cwd, source. A place counts when it is a directory (holding marker as a
 * regular file when marker is set) and its path is shorter than cap. Copies it into out and
 * returns true; false when none counts (the caller names the setting in its error). */
bool api__find_dir(const char *dir, const api__dir_search *s, char *out, size_t cap);

/* One row of a resource's route table (models_api.c, oip.c): the route and its descriptor. */
typedef struct api__route {
    const char *method, *pattern;
    http_role role;
    int flags;
    http_handler_fn fn;
    http_doc doc;
} api__route;

/* Add the n routes of table rt (borrowed: static) with ctx as their handlers' context, each with
 * extra_flags added and its descriptor. When added is not NULL, added[i] (n slots) receives row
 * i's route (borrowed, for the setters of http.h such as a body limit). MD_E_INTERNAL naming the
 * first route that cannot be added. Before the server starts. */
int api__add_routes(http_server *srv, const api__route *rt, size_t n, int extra_flags, void *ctx,
                    http_route **added, md_err *err);

/* A CSV or JSON-lines upload in a spooled body (spooled_upload.c; routes made with
 * http_route_body_to_file): POST /api/{model}/bulk and POST /api/admin/datasets. */
#define API__UPLOAD_FIELD_MAX 2048
typedef struct api__upload {
    http_body_file body; /* the spooled body (http_req_body_file) */
    bool whole;          /* the whole body is the file (a raw body): it may be taken and renamed */
    uint64_t off, len;   /* the file's bytes in the body */
    const char *format;  /* "csv" | "jsonl": by media type, else by its first byte ('{') */
    const char *name;    /* the form part's sanitised file name; "" for a raw body */
    const char *field;   /* the value of the form field asked for; NULL when absent */
} api__upload;
/* Locate the upload: a multipart body's `file` part (and the small text field named field,
 * may be NULL, into the arena: at most API__UPLOAD_FIELD_MAX bytes) or the raw body.
 * MD_E_TOO_LARGE (field "file") past max_bytes, MD_E_MISSING_FIELD ("file") for an empty
 * upload or a form without a file part, multipart errors as mp_file_parse's. Strings borrowed
 * until the request ends. */
int api__read_upload(http_req *req, size_t max_bytes, const char *field, api__upload *u);
/* Make route r (borrowed) spool its body to a file for api__read_upload: a raw body over
 * max_bytes is refused while it streams; a form's envelope gets 1 MB more, its file part its own
 * 413 from api__read_upload. */
void api__route_spool_upload(http_route *r, size_t max_bytes);
/* "csv" / "jsonl" by media type (text/csv, application/x-ndjson and its aliases); NULL when it
 * does not say. Static strings. */
const char *api__upload_format(const char *ct);
/* 1 when the first byte of p[0..n) that is not white space is '{' (JSON lines). */
int api__looks_jsonl(const char *p, size_t n);
/* The keys of JSON object o, in order, as a new array of strings (the columns of a JSON-lines
 * row); an empty array for a non-object. */
json_t *api__json_keys(const json_t *o);
/* What api__jsonl_feed hands each line to: s[0..n) without its '\n' (borrowed for the call). */
typedef int (*api__line_fn)(void *user, const char *s, size_t n, md_err *err);
/* The next block p[0..n) of a JSON-lines file read in blocks (bulk.c, datasets.c): each complete
 * line goes to on_line, stopping at its first error; a partial last line is carried in line
 * (md_buf_init'd with the longest line allowed) for the next block, and the caller hands what is
 * left in it to on_line at the end of the file. *line_no: the lines on_line has counted (it
 * counts them); a line longer than line->max is MD_E_TOO_LARGE naming "file" and line
 * *line_no + 1. */
int api__jsonl_feed(md_buf *line, const size_t *line_no, const char *p, size_t n,
                    api__line_fn on_line, void *user, md_err *err);

/* Query-string integer argument `name` of req in lo..hi into *out; def when absent.
 * MD_E_INVALID_PARAM naming it for anything else (signs, junk, out of range). (query.c) */
int api__query_int(http_req *req, const char *name, long long lo, long long hi, long long def,
                   long long *out);

#endif
