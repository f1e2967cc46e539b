/* datasets.c - the stored-dataset routes (see datasets.h): read the upload, check that it is a
 * CSV with a header (or JSON lines of objects), count its rows, store it; list, get, delete.
 *
 * Invariants:
 *   1. Nothing is stored unless the whole file parsed: every row of a CSV has the header's width
 *      and every non-blank JSON line is an object, so a job that reads a dataset later meets
 *      no syntax error (it may still meet values its model refuses).
 *   2. The upload is spooled to a file by the HTTP layer and read back in blocks (md_csv for
 *      CSV, a carried line for JSON lines): memory stays constant in the file's size. A raw
 *      body is then renamed into the blob store (store_blob_adopt), a form's file part copied
 *      in blocks (store_blob_put_range); the row names the blob right after.
 *   3. Deleting is refused while a schedule names the dataset (store_datasets_delete checks it
 *      in the transaction of the delete); retraining jobs read the dataset when they start, so
 *      a dataset deleted before then fails that job with a 404-class error naming "data".
 */
#include "api/datasets.h"

#include "api/api_int.h"
#include "api/convert_int.h"
#include "api/multipart.h"
#include "base/buf.h"
#include "base/csv.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define JSONL_LINE_MAX ((size_t)1 << 20) /* one JSON line at most */
#define SCAN_BLOCK ((size_t)1 << 20)     /* bytes read from the body at a time */

struct api_datasets {
    api_datasets_opts o;
};

json_t *api_dataset_json(const store_dataset *d)
{
    char at[32];
    api__iso_time(d->created_ms, at);
    json_t *cols = json_loads(d->columns, 0, NULL);
    return json_pack("{s:s, s:s, s:s, s:I, s:o, s:I, s:s, s:s, s:s}", "dataset_id", d->id, "name",
                     d->name, "format", d->format, "rows", (json_int_t)d->rows, "columns",
                     cols ? cols : json_array(), "size", (json_int_t)d->size, "sha256", d->sha256,
                     "owner", d->owner, "created_at", at);
}

/* ---- the upload, in the spooled body ---------------------------------------------------- */

/* The upload (api__read_upload, with the form's `name` field) and the name to list it by: the
 * `name` query parameter or form field, else the form part's file name. */
static int read_upload(api_datasets *a, http_req *req, api__upload *u, const char **name)
{
    int rc = api__read_upload(req, a->o.max_bytes, "name", u);
    const char *q = http_req_query(req, "name");
    *name = q ? q : u->field ? u->field : u->name;
    return rc;
}

/* ---- checking the file, block by block (invariant 1) ---------------------------------------- */

typedef struct scan {
    md_csv *csv;    /* CSV: the reader */
    md_buf line;    /* JSON lines: the partial line carried between blocks */
    size_t line_no; /* JSON lines: lines seen */
    json_t *cols;   /* the column names */
    int64_t rows;
} scan;

static int count_row(void *user, const char *const *fields, const size_t *lens, size_t n,
                     size_t line, md_err *err)
{
    (void)user, (void)fields, (void)lens, (void)n, (void)line, (void)err;
    return MD_OK;
}

/* One JSON line (no line end): an object (the first one gives the columns) or blank. An
 * api__line_fn: user is the scan. */
static int scan_line(void *user, const char *s, size_t n, md_err *err)
{
    scan *sc = user;
    size_t line = ++sc->line_no, k = 0;
    while (k < n && isspace((unsigned char)s[k]))
        k++;
    if (k == n)
        return MD_OK;
    json_error_t je;
    json_t *o = json_loadb(s, n, 0, &je);
    int rc = MD_OK;
    if (!o)
        rc = md_fail(err, MD_E_INVALID_PARAM, "file", "line %zu: not JSON: %s", line, je.text);
    else if (!json_is_object(o))
        rc = md_fail(err, MD_E_INVALID_PARAM, "file", "line %zu: must be a JSON object", line);
    if (rc == MD_OK && sc->rows == 0) {
        json_t *keys = api__json_keys(o);
        json_array_extend(sc->cols, keys);
        json_decref(keys);
    }
    json_decref(o);
    if (rc == MD_OK)
        sc->rows++;
    return rc;
}

/* The end of the file: the last JSON line or the CSV's last row, and the columns. */
static int scan_finish(scan *sc, md_err *err)
{
    if (!sc->csv) {
        int rc = sc->line.len ? scan_line(sc, sc->line.data, sc->line.len, err) : MD_OK;
        if (rc == MD_OK && sc->rows == 0)
            rc = md_fail(err, MD_E_INVALID_PARAM, "file", "no JSON object in the file");
        return rc;
    }
    int rc = md_csv_finish(sc->csv, err);
    size_t n = 0;
    const char *const *names = rc == MD_OK ? md_csv_columns(sc->csv, &n) : NULL;
    for (size_t i = 0; names && i < n; i++)
        json_array_append_new(sc->cols, json_string(names[i]));
    if (rc == MD_OK)
        sc->rows = (int64_t)md_csv_rows(sc->csv);
    return rc;
}

/* Read the file's bytes in blocks (memory constant in its size) through the checker. */
static int scan_file(const api__upload *u, scan *sc, md_err *err)
{
    char *block = malloc(SCAN_BLOCK);
    md_csv_opts co = {.header = true, .field = "file"};
    int rc = block ? MD_OK : md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK && strcmp(u->format, "csv") == 0)
        rc = md_csv_new(&co, count_row, NULL, &sc->csv, err);
    for (uint64_t at = 0; rc == MD_OK && at < u->len;) {
        size_t want = u->len - at < SCAN_BLOCK ? (size_t)(u->len - at) : SCAN_BLOCK;
        if (pread(u->body.fd, block, want, (off_t)(u->off + at)) != (ssize_t)want)
            rc = md_fail(err, MD_E_IO, "body", "cannot read the upload");
        else
            rc = sc->csv
                     ? md_csv_feed(sc->csv, block, want, err)
                     : api__jsonl_feed(&sc->line, &sc->line_no, block, want, scan_line, sc, err);
        at += want;
    }
    if (rc == MD_OK)
        rc = scan_finish(sc, err);
    free(block);
    return rc;
}

/* ---- handlers ---------------------------------------------------------------------------- */

/* Check the upload (invariant 1) and fill the metadata of its row. */
static int describe_upload(http_req *req, const api__upload *u, const char *name, store_dataset *m)
{
    md_err *err = http_req_err(req);
    scan sc = {.cols = json_array()};
    md_buf_init(&sc.line, JSONL_LINE_MAX);
    int rc = sc.cols ? scan_file(u, &sc, err) : md_fail(err, MD_E_NOMEM, NULL, NULL);
    char *text = rc == MD_OK ? json_dumps(sc.cols, JSON_COMPACT) : NULL;
    if (rc == MD_OK && !text)
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK && strlen(text) >= sizeof m->columns)
        rc = md_fail(err, MD_E_INVALID_PARAM, "file", "the header is longer than %zu bytes",
                     sizeof m->columns - 1);
    if (rc == MD_OK)
        memcpy(m->columns, text, strlen(text) + 1);
    free(text);
    json_decref(sc.cols);
    md_csv_free(sc.csv);
    md_buf_free(&sc.line);
    m->rows = sc.rows;
    snprintf(m->format, sizeof m->format, "%s", u->format);
    snprintf(m->name, sizeof m->name, "%.*s", (int)sizeof m->name - 1, name);
    snprintf(m->owner, sizeof m->owner, "%.*s", (int)sizeof m->owner - 1,
             http_req_identity(req)->key_id);
    return rc;
}

/* The upload into the blob store (invariant 2): the whole body is renamed into place, a form's
 * file part copied in blocks; then its row. */
static int keep_upload(api_datasets *a, http_req *req, const api__upload *u, const store_dataset *m,
                       store_dataset *out)
{
    md_err *err = http_req_err(req);
    char hex[STORE_SHA256_HEX];
    uint64_t size = u->len;
    char *taken = NULL;
    int rc = u->whole ? http_req_body_take(req, &taken) : MD_OK;
    if (rc == MD_OK && taken)
        rc = store_blob_adopt(a->o.st, taken, hex, &size, err);
    else if (rc == MD_OK)
        rc = store_blob_put_range(a->o.st, u->body.fd, u->off, u->len, hex, err);
    if (rc != MD_OK && taken)
        unlink(taken); /* not adopted: ours to remove (a no-op when the store removed it) */
    free(taken);
    if (rc == MD_OK)
        rc = store_datasets_add(a->o.st, hex, (int64_t)size, m, out, err);
    return rc;
}

static int post_dataset(http_req *req, void *ctx)
{
    api_datasets *a = ctx;
    md_err *err = http_req_err(req);
    api__upload u;
    const char *name = "";
    int rc = read_upload(a, req, &u, &name);
    store_dataset *m = rc == MD_OK ? calloc(2, sizeof *m) : NULL;
    if (rc == MD_OK && !m)
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK)
        rc = describe_upload(req, &u, name, m);
    if (rc == MD_OK)
        rc = keep_upload(a, req, &u, m, m + 1);
    json_t *o = rc == MD_OK ? api_dataset_json(m + 1) : NULL;
    if (rc == MD_OK)
        http_req_log(req, MD_LOG_INFO, "dataset %s stored (%s, %lld rows, %llu bytes)", m[1].id,
                     m[1].format, (long long)m[1].rows, (unsigned long long)u.len);
    free(m);
    if (rc != MD_OK)
        return rc;
    return o ? http_reply_json(req, 201, o) : md_fail(err, MD_E_NOMEM, NULL, NULL);
}

static int list_datasets(http_req *req, void *ctx)
{
    api_datasets *a = ctx;
    md_err *err = http_req_err(req);
    long long limit = 0, offset = 0;
    int rc = api__query_int(req, "limit", 1, 1000, 50, &limit);
    if (rc == MD_OK)
        rc = api__query_int(req, "offset", 0, INT32_MAX, 0, &offset);
    store_dataset *list = NULL;
    size_t n = 0;
    int64_t total = 0;
    if (rc == MD_OK)
        rc = store_datasets_list(a->o.st, (size_t)offset, (size_t)limit, &list, &n, &total, err);
    if (rc != MD_OK)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, api_dataset_json(&list[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    free(list);
    long long next = offset + (long long)n;
    json_t *o = arr ? json_pack("{s:o, s:I, s:I, s:o}", "datasets", arr, "count", (json_int_t)n,
                                "total", (json_int_t)total, "next_offset",
                                next < total ? json_integer(next) : json_null())
                    : NULL;
    return o ? http_reply_json(req, 200, o) : md_fail(err, MD_E_NOMEM, NULL, NULL);
}

static int get_dataset(http_req *req, void *ctx)
{
    api_datasets *a = ctx;
    md_err *err = http_req_err(req);
    store_dataset *d = malloc(sizeof *d);
    if (!d)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = store_datasets_get(a->o.st, http_req_param(req, "id"), d, err);
    json_t *o = rc == MD_OK ? api_dataset_json(d) : NULL;
    free(d);
    if (rc != MD_OK)
        return rc;
    return o ? http_reply_json(req, 200, o) : md_fail(err, MD_E_NOMEM, NULL, NULL);
}

static int delete_dataset(http_req *req, void *ctx)
{
    api_datasets *a = ctx;
    const char *id = http_req_param(req, "id");
    int rc = store_datasets_delete(a->o.st, id, http_req_err(req));
    if (rc != MD_OK)
        return rc;
    json_t *o = json_pack("{s:s, s:b}", "dataset_id", id, "deleted", 1);
    return o ? http_reply_json(req, 200, o) : md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
}

/* ---- the route table ------------------------------------------------------------------------ */

#define S_DATASET                                                                                  \
    "{\"type\":\"object\",\"required\":[\"dataset_id\",\"name\",\"format\",\"rows\",\"columns\","  \
    "\"size\",\"sha256\",\"created_at\"],\"properties\":{"                                         \
    "\"dataset_id\":{\"type\":\"string\",\"description\":\"d_...\"},"                              \
    "\"name\":{\"type\":\"string\"},\"format\":{\"enum\":[\"csv\",\"jsonl\"]},"                    \
    "\"rows\":{\"type\":\"integer\",\"description\":\"data rows (the header not counted)\"},"      \
    "\"columns\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"                            \
    "\"size\":{\"type\":\"integer\",\"description\":\"bytes\"},"                                   \
    "\"sha256\":{\"type\":\"string\"},\"owner\":{\"type\":\"string\"},"                            \
    "\"created_at\":{\"type\":\"string\",\"format\":\"date-time\"}}}"

static const char S_REQ[] =
    "{\"multipart/form-data\":{\"type\":\"object\",\"required\":[\"file\"],\"properties\":{"
    "\"file\":{\"type\":\"string\",\"format\":\"binary\",\"description\":\"CSV with a header row "
    "of column names, or JSON lines of objects; at most 100 MB\"},"
    "\"name\":{\"type\":\"string\",\"description\":\"a name for listings (default: the file "
    "name)\"}}},"
    "\"text/csv\":{\"type\":\"string\"},\"application/x-ndjson\":{\"type\":\"string\"}}";
static const char S_ONE[] = S_DATASET;
static const char S_LIST[] =
    "{\"type\":\"object\",\"required\":[\"datasets\",\"count\",\"total\"],\"properties\":{"
    "\"datasets\":{\"type\":\"array\",\"items\":" S_DATASET "},"
    "\"count\":{\"type\":\"integer\"},\"total\":{\"type\":\"integer\"},"
    "\"next_offset\":{\"type\":[\"integer\",\"null\"],\"description\":\"offset of the next page, "
    "null on the last\"}}}";
static const char S_DELETED[] =
    "{\"type\":\"object\",\"properties\":{\"dataset_id\":{\"type\":\"string\"},"
    "\"deleted\":{\"type\":\"boolean\"}}}";

static const http_doc_param P_ID[] = {{"id", "string", "the dataset id (d_...)", 1}, {0}};
static const http_doc_param Q_POST[] = {
    {"name", "string", "a name for listings (raw bodies; a form uses its name field)", 0}, {0}};
static const http_doc_param Q_LIST[] = {
    {"limit", "{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,\"default\":50}",
     "datasets per page", 0},
    {"offset", "{\"type\":\"integer\",\"minimum\":0,\"default\":0}", "datasets to skip", 0},
    {0}};
static const int E_POST[] = {
    MD_E_BAD_REQUEST, MD_E_MISSING_FIELD,     MD_E_INVALID_PARAM, MD_E_TOO_LARGE,
    MD_E_FORBIDDEN,   MD_E_UNSUPPORTED_MEDIA, MD_E_STORAGE_FULL,  0};
static const int E_LIST[] = {MD_E_INVALID_PARAM, MD_E_FORBIDDEN, 0};
static const int E_ONE[] = {MD_E_NOT_FOUND, MD_E_FORBIDDEN, 0};
static const int E_DELETE[] = {MD_E_NOT_FOUND, MD_E_CONFLICT, MD_E_FORBIDDEN, 0};

static const api__route ROUTES[] = {
    {"POST",
     "/api/admin/datasets",
     HTTP_ROLE_ADMIN,
     HTTP_HEAVY,
     post_dataset,
     {.summary = "Store a CSV or JSON-lines dataset (kept until deleted)",
      .tag = "predict",
      .description = "The file is a multipart `file` part or the raw body (text/csv or "
                     "application/x-ndjson; otherwise told apart by its first byte: '{' is JSON "
                     "lines). The whole file is checked first: a CSV needs a header of distinct "
                     "names and rows of its width, JSON lines must be objects; anything else is "
                     "a 400 naming `file` and the line. Use its id as a schedule's `input` or as "
                     "retraining's `data`.",
      .request = S_REQ,
      .response = S_ONE,
      .status = 201,
      .query = Q_POST,
      .errors = E_POST}},
    {"GET",
     "/api/admin/datasets",
     HTTP_ROLE_ADMIN,
     0,
     list_datasets,
     {.summary = "Stored datasets, newest first (paged)",
      .tag = "predict",
      .response = S_LIST,
      .query = Q_LIST,
      .errors = E_LIST}},
    {"GET",
     "/api/admin/datasets/{id}",
     HTTP_ROLE_ADMIN,
     0,
     get_dataset,
     {.summary = "One stored dataset",
      .tag = "predict",
      .response = S_ONE,
      .path = P_ID,
      .errors = E_ONE}},
    {"DELETE",
     "/api/admin/datasets/{id}",
     HTTP_ROLE_ADMIN,
     0,
     delete_dataset,
     {.summary = "Delete a stored dataset (409 while a schedule uses it)",
      .tag = "predict",
      .response = S_DELETED,
      .path = P_ID,
      .errors = E_DELETE}},
};
#define N_ROUTES (sizeof ROUTES / sizeof ROUTES[0])

int api_datasets_register(http_server *srv, const api_datasets_opts *o, api_datasets **out,
                          md_err *err)
{
    *out = NULL;
    if (!o || !o->st)
        return md_fail(err, MD_E_INVALID_PARAM, "store", "the dataset routes need a store");
    api_datasets *a = calloc(1, sizeof *a);
    if (!a)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    a->o = *o;
    if (!a->o.max_bytes)
        a->o.max_bytes = API_DATASET_MAX_BYTES;
    http_route *added[N_ROUTES];
    int rc = api__add_routes(srv, ROUTES, N_ROUTES, 0, a, added, err);
    if (rc != MD_OK) {
        free(a);
        return rc;
    }
    api__route_spool_upload(added[0], a->o.max_bytes); /* constant memory in the file's size */
    *out = a;
    return MD_OK;
}

void api_datasets_free(api_datasets *d)
{
    free(d);
}
