/* datasets.c - the stored-dataset routes (see datasets.h): read the upload, check that it is a
 * CSV with a header (or JSON lines of objects), count its rows, store it; list, get, delete.
 *
 * Invariants:
 *   1. Nothing is stored unless the whole file parsed: every row of a CSV has the header's width
 *      and every non-blank JSON line is an object, so a job that reads a dataset later meets
 *      no syntax error (it may still meet values its model refuses).
 *   2. The upload is parsed from the buffered body in one pass (md_csv for CSV) and never copied
 *      whole; the store writes the same bytes as the blob.
 *   3. Deleting is refused while a schedule names the dataset (store_datasets_delete checks it
 *      in the transaction of the delete); retraining jobs read the dataset when they start, so
 *      a dataset deleted before then fails that job with a 404-class error naming "data".
 */
#include "api/datasets.h"

#include "api/api_int.h"
#include "api/convert_int.h"
#include "api/multipart.h"
#include "base/csv.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JSONL_LINE_MAX ((size_t)1 << 20)

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

/* ---- checking the file ------------------------------------------------------------------- */

static int count_row(void *user, const char *const *fields, const size_t *lens, size_t n,
                     size_t line, md_err *err)
{
    (void)user, (void)fields, (void)lens, (void)n, (void)line, (void)err;
    return MD_OK;
}

/* A CSV: the header's names into cols, the data rows counted (md_csv names the bad line). */
static int scan_csv(const void *data, size_t len, json_t *cols, int64_t *rows, md_err *err)
{
    md_csv_opts co = {.header = true, .field = "file"};
    md_csv *c = NULL;
    int rc = md_csv_new(&co, count_row, NULL, &c, err);
    if (rc == MD_OK)
        rc = md_csv_feed(c, data, len, err);
    if (rc == MD_OK)
        rc = md_csv_finish(c, err);
    size_t n = 0;
    const char *const *names = rc == MD_OK ? md_csv_columns(c, &n) : NULL;
    for (size_t i = 0; names && i < n; i++)
        json_array_append_new(cols, json_string(names[i]));
    if (rc == MD_OK)
        *rows = (int64_t)md_csv_rows(c);
    md_csv_free(c);
    return rc;
}

/* One JSON line (no line end): an object (the first one gives the columns) or blank. */
static int scan_line(const char *s, size_t n, size_t line, json_t *cols, int64_t *rows, md_err *err)
{
    size_t k = 0;
    while (k < n && isspace((unsigned char)s[k]))
        k++;
    if (k == n)
        return MD_OK;
    if (n > JSONL_LINE_MAX)
        return md_fail(err, MD_E_TOO_LARGE, "file", "line %zu: longer than %zu bytes", line,
                       JSONL_LINE_MAX);
    json_error_t je;
    json_t *o = json_loadb(s, n, 0, &je);
    int rc = MD_OK;
    if (!o)
        rc = md_fail(err, MD_E_INVALID_PARAM, "file", "line %zu: not JSON: %s", line, je.text);
    else if (!json_is_object(o))
        rc = md_fail(err, MD_E_INVALID_PARAM, "file", "line %zu: must be a JSON object", line);
    if (rc == MD_OK && *rows == 0) {
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v)
        {
            (void)v;
            json_array_append_new(cols, json_string(key));
        }
    }
    json_decref(o);
    if (rc == MD_OK)
        (*rows)++;
    return rc;
}

static int scan_jsonl(const char *data, size_t len, json_t *cols, int64_t *rows, md_err *err)
{
    size_t line = 0;
    int rc = MD_OK;
    while (rc == MD_OK && len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        rc = scan_line(data, take, ++line, cols, rows, err);
        data += take + (nl != NULL);
        len -= take + (nl != NULL);
    }
    if (rc == MD_OK && *rows == 0)
        rc = md_fail(err, MD_E_INVALID_PARAM, "file", "no JSON object in the file");
    return rc;
}

/* ---- the upload -------------------------------------------------------------------------- */

typedef struct upload {
    const uint8_t *data;
    size_t len;
    const char *format; /* "csv" | "jsonl" | NULL (by the first byte) */
    char name[STORE_DATASET_NAME_MAX];
} upload;

static const char *format_of(const char *ct)
{
    if (!ct || !*ct)
        return NULL;
    if (strncasecmp(ct, "text/csv", 8) == 0)
        return "csv";
    if (strncasecmp(ct, "application/x-ndjson", 20) == 0 ||
        strncasecmp(ct, "application/jsonl", 17) == 0 ||
        strncasecmp(ct, "application/ndjson", 18) == 0)
        return "jsonl";
    return NULL;
}

static void set_name(upload *u, const void *s, size_t n)
{
    if (n >= sizeof u->name)
        n = sizeof u->name - 1;
    memcpy(u->name, s, n);
    u->name[n] = '\0';
}

static int form_upload(http_req *req, const char *ct, const void *body, size_t len, upload *u)
{
    md_err *err = http_req_err(req);
    char boundary[MP_BOUNDARY_MAX + 1];
    int rc = mp_boundary(ct, boundary, sizeof boundary, err);
    mp_part *parts = md_arena_alloc(http_req_arena(req), MP_PARTS_MAX * sizeof *parts);
    size_t n = 0;
    if (rc == MD_OK && !parts)
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK)
        rc = mp_parse(body, len, boundary, parts, MP_PARTS_MAX, &n, err);
    for (size_t i = 0; rc == MD_OK && i < n; i++) {
        if (strcmp(parts[i].name, "file") == 0) {
            u->data = parts[i].data;
            u->len = parts[i].len;
            u->format = format_of(parts[i].content_type);
            if (!u->name[0])
                set_name(u, parts[i].filename, strlen(parts[i].filename));
        } else if (strcmp(parts[i].name, "name") == 0) {
            set_name(u, parts[i].data, parts[i].len);
        }
    }
    if (rc == MD_OK && !u->data)
        rc = md_fail(err, MD_E_MISSING_FIELD, "file", "the form has no \"file\" part");
    return rc;
}

static int read_upload(api_datasets *a, http_req *req, upload *u)
{
    md_err *err = http_req_err(req);
    const char *ct = http_req_header(req, "Content-Type");
    size_t len = 0;
    const void *body = http_req_body(req, &len);
    memset(u, 0, sizeof *u);
    const char *qname = http_req_query(req, "name");
    if (qname)
        set_name(u, qname, strlen(qname));
    int rc = MD_OK;
    if (ct && strncasecmp(ct, "multipart/", 10) == 0) {
        rc = form_upload(req, ct, body, len, u);
    } else {
        u->data = body;
        u->len = len;
        u->format = format_of(ct);
    }
    if (rc == MD_OK && u->len > a->o.max_bytes)
        rc = md_fail(err, MD_E_TOO_LARGE, "file", "the upload is %zu bytes, more than %zu", u->len,
                     a->o.max_bytes);
    if (rc == MD_OK && u->len == 0)
        rc = md_fail(err, MD_E_MISSING_FIELD, "file", "the upload is empty");
    if (rc == MD_OK && !u->format) {
        size_t i = 0;
        while (i < u->len && isspace(u->data[i]))
            i++;
        u->format = i < u->len && u->data[i] == '{' ? "jsonl" : "csv";
    }
    return rc;
}

/* ---- handlers ---------------------------------------------------------------------------- */

/* Parse the upload (invariant 1) and fill the metadata of its row. */
static int describe_upload(http_req *req, const upload *u, store_dataset *m)
{
    md_err *err = http_req_err(req);
    json_t *cols = json_array();
    if (!cols)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = strcmp(u->format, "csv") == 0
                 ? scan_csv(u->data, u->len, cols, &m->rows, err)
                 : scan_jsonl((const char *)u->data, u->len, cols, &m->rows, err);
    char *text = rc == MD_OK ? json_dumps(cols, JSON_COMPACT) : NULL;
    json_decref(cols);
    if (rc == MD_OK && !text)
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK && strlen(text) >= sizeof m->columns)
        rc = md_fail(err, MD_E_INVALID_PARAM, "file", "the header is longer than %zu bytes",
                     sizeof m->columns - 1);
    if (rc == MD_OK)
        memcpy(m->columns, text, strlen(text) + 1);
    free(text);
    snprintf(m->format, sizeof m->format, "%s", u->format);
    snprintf(m->name, sizeof m->name, "%s", u->name);
    snprintf(m->owner, sizeof m->owner, "%.*s", (int)sizeof m->owner - 1,
             http_req_identity(req)->key_id);
    return rc;
}

static int post_dataset(http_req *req, void *ctx)
{
    api_datasets *a = ctx;
    md_err *err = http_req_err(req);
    upload u;
    int rc = read_upload(a, req, &u);
    store_dataset *m = rc == MD_OK ? calloc(2, sizeof *m) : NULL;
    if (rc == MD_OK && !m)
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK)
        rc = describe_upload(req, &u, m);
    if (rc == MD_OK)
        rc = store_datasets_create(a->o.st, u.data, u.len, m, m + 1, err);
    json_t *o = rc == MD_OK ? api_dataset_json(m + 1) : NULL;
    if (rc == MD_OK)
        http_req_log(req, MD_LOG_INFO, "dataset %s stored (%s, %lld rows, %zu bytes)", m[1].id,
                     m[1].format, (long long)m[1].rows, u.len);
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
    /* A raw body over the limit is refused by the server; a form's envelope gets 1 MB more,
     * its file part its own 413 (read_upload). */
    http_route_body_limit(added[0], a->o.max_bytes + ((size_t)1 << 20));
    *out = a;
    return MD_OK;
}

void api_datasets_free(api_datasets *d)
{
    free(d);
}
