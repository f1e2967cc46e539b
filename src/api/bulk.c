/* bulk.c - POST /api/{model}/bulk (admission: model, upload, callback_url, then one durable job)
 * and the "predict-bulk" job kind's run, which streams the upload through pl_predict_batch in
 * chunks and stores the predictions as one CSV (see bulk.h).
 *
 * Invariants:
 *   1. Nothing is stored before every check passed: the model is a predict model, the upload is
 *      non-empty and at most max_bytes, callback_url is on the allow-list (job_submit).
 *   2. The job's parameters are plain JSON ({model, format}); the run reads nothing else from
 *      the request, so a job accepted by one process runs the same in a `modeld worker`.
 *   3. The input is read in blocks (never whole): CSV through md_csv, JSON lines split here;
 *      at most API_BULK_CHUNK rows are held as JSON at once.
 *   4. Every input row gives exactly one result line, in input order: a row that cannot be
 *      parsed or predicted gets its error columns filled, it never fails the job. Only a
 *      malformed CSV (md_csv: the line is named), an over-long JSON line, a cancel or a model
 *      error end the job.
 *   5. The result's prediction columns are those of the first good row (flattened); later rows
 *      fill them by name (a field a later row lacks stays empty).
 *   6. Memory is constant in the upload and the result: the upload is renamed from the HTTP
 *      layer's spool file into the blob store (a multipart `file` part is copied in blocks); the
 *      result lines go to a file on the blob store's file system as chunks are predicted (held
 *      in memory only until the first good row fixes the header, at most SPILL_AT bytes, then
 *      spilled to a second file put behind the header at the end) and the file is adopted as
 *      the result blob by rename.
 *   7. Rows are logged to the prediction history like single predictions (a share
 *      predict_bulk_log_sample of them, default 0.01, through pl_predict_batch's log), so
 *      drift and history see bulk traffic too without a million-row file costing a million
 *      log rows.
 */
#include "api/bulk.h"

#include "api/admin_jobs.h"
#include "api/api_int.h"
#include "api/jobs_api.h"
#include "api/multipart.h"
#include "base/buf.h"
#include "base/csv.h"
#include "pipelines/pipelines.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK ((size_t)1 << 20)          /* bytes read from the input at a time */
#define LINE_MAX_BYTES ((size_t)1 << 20) /* one JSON line at most */
#define RESULT_MAX ((size_t)1 << 30)     /* the result CSV at most */
#define WRITE_AT ((size_t)1 << 18)       /* result bytes gathered before a write */
#define SPILL_AT ((size_t)1 << 20)       /* result bytes held while the header is unknown */

struct api_bulk {
    api_bulk_opts o;
};

/* ---- the run: state ----------------------------------------------------------------------- */

typedef struct bulk {
    pl_ctx cx;
    const char *model;            /* borrowed from params */
    md_cancel *cancel;            /* borrowed */
    md_err *err;                  /* borrowed */
    json_t *items;                /* the chunk being filled (array of feature objects) */
    json_t *pre[API_BULK_CHUNK];  /* slot i's parse error {code, field, message} (new) or NULL */
    json_t *pred[API_BULK_CHUNK]; /* borrowed from the batch answer while a chunk is written */
    json_t *fail[API_BULK_CHUNK];
    size_t first_row; /* input row index of the chunk's slot 0 */
    json_t *cols;     /* the prediction columns (invariant 5); NULL before a good row */
    char version[64];
    md_buf body;    /* result lines not written yet (invariant 6) */
    job_run *run;   /* borrowed: the result files come from it */
    char *path;     /* the result file (new), written from its start: header, then lines */
    int fd;         /* open on path, -1 before */
    char *spill;    /* lines written before the header was known (new), NULL when none */
    int spill_fd;
    bool header;    /* the header line is in the result file */
    uint64_t written; /* result bytes out so far (RESULT_MAX) */
    md_csv *csv;    /* CSV: the reader (its column names) */
    md_buf line;    /* JSON lines: the partial line carried between blocks */
    size_t line_no; /* JSON lines: lines seen */
    size_t failed;
    double total_bytes, done_bytes;
} bulk;

/* One CSV field: quoted when it holds a delimiter, quote or line end. */
static int put_field(md_buf *b, const char *s, size_t n)
{
    int quote = 0;
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote)
        return md_buf_append(b, s, n);
    int rc = md_buf_putc(b, '"');
    for (size_t i = 0; i < n && rc == MD_OK; i++)
        rc = s[i] == '"' ? md_buf_append(b, "\"\"", 2) : md_buf_putc(b, s[i]);
    return rc == MD_OK ? md_buf_putc(b, '"') : rc;
}

/* A scalar JSON value as a field (null and absent: empty). */
static int put_value(md_buf *b, const json_t *v)
{
    if (json_is_string(v))
        return put_field(b, json_string_value(v), json_string_length(v));
    if (json_is_integer(v))
        return md_buf_printf(b, "%lld", (long long)json_integer_value(v));
    if (json_is_real(v))
        return md_buf_printf(b, "%.9g", json_real_value(v));
    if (json_is_boolean(v))
        return md_buf_puts(b, json_is_true(v) ? "true" : "false");
    return MD_OK;
}

/* The scalars of v into flat, keyed by their dotted path ("probabilities.yes", "band.0"). */
static void flatten(const json_t *v, const char *path, json_t *flat)
{
    char sub[256];
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", k);
            flatten(x, sub, flat);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            snprintf(sub, sizeof sub, "%s%s%zu", path, *path ? "." : "", i);
            flatten(json_array_get(v, i), sub, flat);
        }
    } else {
        json_object_set(flat, *path ? path : "prediction", (json_t *)v);
    }
}

/* One result line: row index, the prediction columns, the error columns. */
static int write_line(bulk *b, size_t slot, const json_t *pred, const json_t *e)
{
    md_buf *o = &b->body;
    int rc = md_buf_printf(o, "%zu", b->first_row + slot);
    json_t *flat = json_object();
    if (pred)
        flatten(pred, "", flat);
    for (size_t i = 0; rc == MD_OK && i < json_array_size(b->cols); i++) {
        rc = md_buf_putc(o, ',');
        if (rc == MD_OK)
            rc = put_value(o, json_object_get(flat, json_string_value(json_array_get(b->cols, i))));
    }
    json_decref(flat);
    static const char *const ekeys[] = {"code", "field", "message"};
    for (size_t i = 0; rc == MD_OK && i < 3; i++) {
        rc = md_buf_putc(o, ',');
        if (rc == MD_OK && e)
            rc = put_value(o, json_object_get(e, ekeys[i]));
    }
    return rc == MD_OK ? md_buf_putc(o, '\n') : rc;
}

/* The columns of the first good row of the chunk (invariant 5). */
static void pick_columns(bulk *b, size_t n)
{
    for (size_t i = 0; i < n && !b->cols; i++) {
        if (!b->pred[i] || b->pre[i])
            continue;
        json_t *flat = json_object();
        flatten(b->pred[i], "", flat);
        b->cols = api__json_keys(flat);
        json_decref(flat);
    }
}

/* Index the batch answer's predictions and failures by slot. */
static void index_answer(bulk *b, const json_t *out, size_t n)
{
    memset(b->pred, 0, sizeof b->pred);
    memset(b->fail, 0, sizeof b->fail);
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(out, "predictions"), i, x)
    {
        json_int_t k = json_integer_value(json_object_get(x, "index"));
        if (k >= 0 && (size_t)k < n)
            b->pred[k] = json_object_get(x, "prediction");
    }
    json_array_foreach(json_object_get(out, "failed"), i, x)
    {
        json_int_t k = json_integer_value(json_object_get(x, "index"));
        if (k >= 0 && (size_t)k < n)
            b->fail[k] = json_object_get(x, "error");
    }
}

/* ---- the run: the result file (invariant 6) --------------------------------------------- */

static int write_fd(bulk *b, int fd, const void *data, size_t n)
{
    const char *p = data;
    b->written += n;
    if (b->written > RESULT_MAX)
        return md_fail(b->err, MD_E_TOO_LARGE, "file", "the result passed %zu bytes", RESULT_MAX);
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return md_fail(b->err, w < 0 && (errno == ENOSPC || errno == EDQUOT) ? MD_E_STORAGE_FULL : MD_E_IO,
                           "result", "cannot write the result");
        p += w;
        n -= (size_t)w;
    }
    return MD_OK;
}

/* The header line: row, the prediction columns, the error columns. */
static int write_header(bulk *b)
{
    md_buf h;
    md_buf_init(&h, LINE_MAX_BYTES); /* column names are short: far less */
    int rc = md_buf_puts(&h, "row");
    for (size_t i = 0; rc == MD_OK && i < json_array_size(b->cols); i++) {
        const json_t *c = json_array_get(b->cols, i);
        rc = md_buf_putc(&h, ',');
        if (rc == MD_OK)
            rc = put_field(&h, json_string_value(c), json_string_length(c));
    }
    if (rc == MD_OK)
        rc = md_buf_puts(&h, ",error_code,error_field,error\n");
    if (rc == MD_OK)
        rc = write_fd(b, b->fd, h.data, h.len);
    else
        rc = md_fail(b->err, rc, "result", "cannot build the header line");
    md_buf_free(&h);
    b->header = rc == MD_OK;
    return rc;
}

/* Lines written before the columns were known ("short": row and error columns only, all of
 * them bad rows) get the prediction columns, empty, after their row index, so every line has
 * the header's columns (invariant 5). A streaming rewrite: the state carries across blocks. */
typedef struct widen {
    size_t ncols;
    bool in_quote, comma_done; /* inside a quoted field; this line's first comma seen */
} widen;

static int write_widened(bulk *b, widen *w, const char *p, size_t n, md_buf *tmp)
{
    md_buf_reset(tmp);
    int rc = MD_OK;
    for (size_t i = 0; i < n && rc == MD_OK; i++) {
        char c = p[i];
        if (c == ',' && !w->in_quote && !w->comma_done) {
            for (size_t k = 0; k < w->ncols && rc == MD_OK; k++)
                rc = md_buf_putc(tmp, ',');
            w->comma_done = true;
        }
        w->in_quote ^= c == '"';
        if (c == '\n' && !w->in_quote)
            w->comma_done = false;
        if (rc == MD_OK)
            rc = md_buf_putc(tmp, c);
    }
    if (rc != MD_OK)
        return md_fail(b->err, rc, "result", "cannot widen the result lines");
    return write_fd(b, b->fd, tmp->data, tmp->len);
}

/* Append the spill file's lines to the result, widened, in blocks; then drop the spill. */
static int copy_spill(bulk *b, widen *w, md_buf *tmp)
{
    char *block = malloc(BLOCK);
    if (!block)
        return md_fail(b->err, MD_E_NOMEM, NULL, NULL);
    int rc = MD_OK;
    for (off_t off = 0; rc == MD_OK;) {
        ssize_t got = pread(b->spill_fd, block, BLOCK, off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            rc = md_fail(b->err, MD_E_IO, "result", "cannot read the spilled result");
        if (got <= 0)
            break;
        rc = write_widened(b, w, block, (size_t)got, tmp);
        off += got;
    }
    free(block);
    close(b->spill_fd);
    b->spill_fd = -1;
    unlink(b->spill);
    free(b->spill);
    b->spill = NULL;
    return rc;
}

/* The columns are known now (or never will be: the end): the header, then the short lines held
 * (spilled, then in memory), widened. From then on lines go straight to the result file. */
static int settle(bulk *b)
{
    widen w = {.ncols = json_array_size(b->cols)};
    md_buf tmp;
    md_buf_init(&tmp, 2 * BLOCK + BLOCK * json_array_size(b->cols));
    int rc = write_header(b);
    if (rc == MD_OK && b->spill)
        rc = copy_spill(b, &w, &tmp);
    if (rc == MD_OK)
        rc = write_widened(b, &w, (const char *)b->body.data, b->body.len, &tmp);
    md_buf_reset(&b->body);
    md_buf_free(&tmp);
    return rc;
}

/* Move the lines gathered in b->body out (invariant 6): to the result file once the header is
 * in it; while it is not, to the spill file past SPILL_AT bytes; at the end (last) all of them. */
static int drain(bulk *b, bool last)
{
    int rc = MD_OK;
    if (!b->header && !b->spill && b->body.len >= SPILL_AT) {
        rc = job_run_result_tmp(b->run, &b->spill, b->err);
        b->spill_fd = rc == MD_OK ? open(b->spill, O_RDWR | O_CLOEXEC) : -1;
        if (rc == MD_OK && b->spill_fd < 0)
            rc = md_fail(b->err, MD_E_IO, "result", "cannot open the spill file");
    }
    int to = b->header ? b->fd : b->spill ? b->spill_fd : -1;
    if (rc == MD_OK && to >= 0 && (last || b->body.len >= WRITE_AT)) {
        b->written -= b->header ? 0 : b->body.len; /* spilled bytes are counted when copied */
        rc = write_fd(b, to, b->body.data, b->body.len);
        md_buf_reset(&b->body);
    }
    if (rc == MD_OK && last && !b->header)
        rc = settle(b);
    return rc;
}

/* Predict the rows held, write their lines, report progress, check for a cancel. */
static int flush(bulk *b)
{
    size_t n = json_array_size(b->items);
    if (n == 0)
        return MD_OK;
    json_t *out = NULL;
    int rc = pl_predict_batch(&b->cx, b->model, b->items, NULL, &out, b->err);
    if (rc == MD_OK) {
        snprintf(b->version, sizeof b->version, "%s",
                 json_string_value(json_object_get(out, "version")) ?: "");
        index_answer(b, out, n);
        pick_columns(b, n);
    }
    if (rc == MD_OK && b->cols && !b->header)
        rc = settle(b); /* before this chunk's lines, which have the columns */
    for (size_t i = 0; rc == MD_OK && i < n; i++) {
        const json_t *e = b->pre[i] ? b->pre[i] : b->fail[i];
        b->failed += e || !b->pred[i];
        rc = write_line(b, i, e ? NULL : b->pred[i], e);
    }
    json_decref(out);
    for (size_t i = 0; i < n; i++) {
        json_decref(b->pre[i]);
        b->pre[i] = NULL;
    }
    json_array_clear(b->items);
    b->first_row += n;
    if (rc == MD_OK)
        rc = drain(b, false);
    if (rc == MD_OK && b->total_bytes > 0)
        md_cancel_progress(b->cancel, b->done_bytes / b->total_bytes, "predict");
    return rc == MD_OK ? md_cancel_check(b->cancel, "predict", b->err) : rc;
}

/* Hold one row (steals item; pre: its parse error, stolen, or NULL); a full chunk is flushed. */
static int add_row(bulk *b, json_t *item, json_t *pre)
{
    b->pre[json_array_size(b->items)] = pre;
    json_array_append_new(b->items, item ? item : json_null());
    return json_array_size(b->items) == API_BULK_CHUNK ? flush(b) : MD_OK;
}

/* ---- the run: CSV and JSON lines ---------------------------------------------------------- */

/* One CSV row as a feature object {column: cell} (pl_csv_object: empty cells left out). */
static int csv_row(void *user, const char *const *fields, const size_t *lens, size_t n, size_t line,
                   md_err *err)
{
    (void)line;
    (void)err;
    bulk *b = user;
    size_t ncols = 0;
    const char *const *names = md_csv_columns(b->csv, &ncols);
    json_t *o = pl_csv_object(names, ncols, fields, lens, n);
    if (!o)
        return md_fail(b->err, MD_E_NOMEM, NULL, NULL);
    return add_row(b, o, NULL);
}

/* An error object for a row that could not be read. */
static json_t *row_error(int code, const char *field, const char *msg)
{
    return json_pack("{s:s, s:s, s:s}", "code", md_err_name(code), "field", field, "message", msg);
}

/* One JSON line (no line end): a feature object, or a row with its error; blank lines skipped.
 * An api__line_fn: user is the bulk, whose own err is used. */
static int json_line(void *user, const char *s, size_t n, md_err *err)
{
    (void)err;
    bulk *b = user;
    b->line_no++;
    if (n && s[n - 1] == '\r')
        n--;
    size_t k = 0;
    while (k < n && isspace((unsigned char)s[k]))
        k++;
    if (k == n)
        return MD_OK;
    json_error_t je;
    json_t *o = json_loadb(s, n, 0, &je);
    char field[32], msg[200];
    snprintf(field, sizeof field, "line %zu", b->line_no);
    if (!o) {
        snprintf(msg, sizeof msg, "not JSON: %s", je.text);
        return add_row(b, NULL, row_error(MD_E_INVALID_PARAM, field, msg));
    }
    if (!json_is_object(o)) {
        json_decref(o);
        return add_row(b, NULL, row_error(MD_E_INVALID_PARAM, field, "must be a JSON object"));
    }
    return add_row(b, o, NULL);
}

/* ---- the run: input, result --------------------------------------------------------------- */

/* The blob of stored dataset id (a schedule's input, kept until deleted). */
static int dataset_path(store *st, const char *id, char *out, size_t cap, md_err *err)
{
    store_dataset *d = malloc(sizeof *d);
    if (!d)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = store_datasets_get(st, id, d, err);
    if (rc == MD_E_NOT_FOUND)
        rc = md_fail(err, MD_E_NOT_FOUND, "input", "no dataset %.40s (deleted?)", id);
    if (rc == MD_OK)
        rc = store_blob_path(st, d->sha256, out, cap, err);
    free(d);
    return rc;
}

/* The file to read: the job's input blob, or the stored dataset ("d_...") or upload a schedule
 * names (params.input). */
static int input_path(job_run *r, api_bulk_kind *k, const json_t *params, char *out, size_t cap,
                      md_err *err)
{
    if (*job_run_input_path(r)) {
        snprintf(out, cap, "%s", job_run_input_path(r));
        return MD_OK;
    }
    const char *id = json_string_value(json_object_get(params, "input"));
    if (!id || !*id)
        return md_fail(err, MD_E_MISSING_FIELD, "input", "the job has no input");
    if (!k->st)
        return md_fail(err, MD_E_UNAVAILABLE, "input", "no store to read input %.40s from", id);
    if (strncmp(id, "d_", 2) == 0)
        return dataset_path(k->st, id, out, cap, err);
    store_upload up;
    int rc = store_uploads_get(k->st, id, &up, err);
    if (rc == MD_E_FILE_NOT_FOUND)
        return md_fail(err, MD_E_NOT_FOUND, "input", "no upload %.40s (expired?)", id);
    return rc == MD_OK ? store_blob_path(k->st, up.sha256, out, cap, err) : rc;
}

/* "csv" or "jsonl": params.format, else the first byte that is not white space ('{': JSON). */
static int is_jsonl(const json_t *params, const char *block, size_t n)
{
    const char *f = json_string_value(json_object_get(params, "format"));
    if (f)
        return strcmp(f, "jsonl") == 0;
    return api__looks_jsonl(block, n);
}

/* Read the file in blocks through the CSV reader or the line splitter, then the last rows. */
static int read_rows(bulk *b, FILE *f, const json_t *params)
{
    char *block = malloc(BLOCK);
    if (!block)
        return md_fail(b->err, MD_E_NOMEM, NULL, NULL);
    size_t n = fread(block, 1, BLOCK, f);
    int jsonl = is_jsonl(params, block, n);
    md_csv_opts co = {.header = true, .field = "file"};
    int rc = jsonl ? MD_OK : md_csv_new(&co, csv_row, b, &b->csv, b->err);
    while (rc == MD_OK && n > 0) {
        b->done_bytes += (double)n;
        rc = jsonl ? api__jsonl_feed(&b->line, &b->line_no, block, n, json_line, b, b->err)
                   : md_csv_feed(b->csv, block, n, b->err);
        n = rc == MD_OK ? fread(block, 1, BLOCK, f) : 0;
    }
    if (rc == MD_OK && ferror(f))
        rc = md_fail(b->err, MD_E_IO, "input", "cannot read the input");
    if (rc == MD_OK && jsonl && b->line.len)
        rc = json_line(b, b->line.data, b->line.len, b->err);
    if (rc == MD_OK && !jsonl)
        rc = md_csv_finish(b->csv, b->err);
    if (rc == MD_OK)
        rc = flush(b);
    free(block);
    return rc;
}

/* The last lines, then the file and its metadata as the job's result (adopted by rename). */
static int save_result(bulk *b, job_run *r)
{
    int rc = drain(b, true);
    if (rc == MD_OK && fsync(b->fd) != 0)
        rc = md_fail(b->err, MD_E_IO, "result", "cannot write the result");
    json_t *m =
        json_pack("{s:s, s:s, s:s, s:I, s:I}", "format", "csv", "model", b->model, "version",
                  b->version, "rows", (json_int_t)b->first_row, "failed", (json_int_t)b->failed);
    char *meta = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    if (rc == MD_OK && !meta)
        rc = md_fail(b->err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK) {
        rc = job_run_set_result_file(r, b->path, meta, b->err); /* steals the file */
        free(b->path);
        b->path = NULL;
    }
    free(meta);
    return rc;
}

/* Close the result files and remove what was not adopted. */
static void bulk_free(bulk *b)
{
    for (size_t i = 0; i < API_BULK_CHUNK; i++)
        json_decref(b->pre[i]);
    json_decref(b->items);
    json_decref(b->cols);
    md_csv_free(b->csv);
    md_buf_free(&b->body);
    md_buf_free(&b->line);
    if (b->fd >= 0)
        close(b->fd);
    if (b->path)
        unlink(b->path);
    free(b->path);
    if (b->spill_fd >= 0)
        close(b->spill_fd);
    if (b->spill)
        unlink(b->spill);
    free(b->spill);
    free(b);
}

/* The result file the lines go to. */
static int open_result(bulk *b)
{
    int rc = job_run_result_tmp(b->run, &b->path, b->err);
    b->fd = rc == MD_OK ? open(b->path, O_WRONLY | O_CLOEXEC) : -1;
    if (rc == MD_OK && b->fd < 0)
        rc = md_fail(b->err, MD_E_IO, "result", "cannot open the result file");
    return rc;
}

int api_bulk_run(job_run *r, void *user)
{
    api_bulk_kind *k = user;
    md_err *err = job_run_err(r);
    json_t *params = json_loads(job_run_info(r)->params, 0, NULL);
    bulk *b = calloc(1, sizeof *b);
    if (!b || !params) {
        free(b);
        json_decref(params);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    b->cx = (pl_ctx){.models = k->models,
                     .st = k->st,
                     .log_sample = k->log_sample,
                     .cancel = job_run_cancel(r),
                     .trace = job_run_trace(r),
                     .no_explain = true};
    b->run = r;
    b->fd = b->spill_fd = -1;
    b->model = json_string_value(json_object_get(params, "model"));
    b->cancel = job_run_cancel(r);
    b->err = err;
    b->items = json_array();
    md_buf_init(&b->body, RESULT_MAX);
    int orc = open_result(b);
    md_buf_init(&b->line, LINE_MAX_BYTES);
    char path[4096];
    int rc = !b->model ? md_fail(err, MD_E_MISSING_FIELD, "model", "the job names no model")
             : orc != MD_OK ? orc
                            : input_path(r, k, params, path, sizeof path, err);
    FILE *f = rc == MD_OK ? fopen(path, "rb") : NULL;
    if (rc == MD_OK && !f)
        rc = md_fail(err, MD_E_IO, "input", "cannot open the input");
    struct stat st;
    if (f && fstat(fileno(f), &st) == 0)
        b->total_bytes = (double)st.st_size;
    if (rc == MD_OK)
        rc = read_rows(b, f, params);
    if (f)
        fclose(f);
    if (rc == MD_OK)
        rc = save_result(b, r);
    bulk_free(b);
    json_decref(params);
    return rc;
}

/* ---- admission ---------------------------------------------------------------------------- */

/* 404 unless model is a predict model (a bulk job of anything else could only fail). */
static int check_model(api_bulk *a, http_req *req, const char *model)
{
    mdl_version *v = NULL;
    int rc = mdl_acquire(a->o.reg, model, NULL, &v, http_req_err(req));
    if (rc == MD_OK && !pl_predict_task(mdl_version_manifest(v)))
        rc = md_fail(http_req_err(req), MD_E_MODEL_NOT_FOUND, "model",
                     "%.64s is not a prediction model", model);
    if (v)
        mdl_release(v);
    return rc;
}

static int bulk_submit(http_req *req, void *ctx)
{
    api_bulk *a = ctx;
    md_err *err = http_req_err(req);
    const char *model = http_req_param(req, "model");
    api__upload u; /* in the spooled body (invariant 6) */
    int rc = check_model(a, req, model);
    if (rc == MD_OK)
        rc = api__read_upload(req, a->o.max_bytes, "callback_url", &u);
    if (rc != MD_OK)
        return rc;
    const char *cb = u.field ? u.field : http_req_query(req, "callback_url");
    json_t *p = json_pack("{s:s, s:s}", "model", model, "format", u.format);
    char *params = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    job_info *j = md_arena_alloc(http_req_arena(req), sizeof *j);
    if (!params || !j) {
        free(params);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    job_input_range range = {.fd = u.body.fd, .offset = u.off};
    job_submit_in in = {.kind = API_BULK_KIND,
                        .owner = http_req_identity(req)->key_id,
                        .params_json = params,
                        .input_len = (size_t)u.len,
                        .input_range = u.whole ? NULL : &range,
                        .input_name = u.name,
                        .callback_url = cb && *cb ? cb : NULL,
                        .trace = http_req_trace(req)};
    char *taken = NULL; /* the whole body: renamed into the blob store, never copied */
    rc = u.whole ? http_req_body_take(req, &taken) : MD_OK;
    in.input_file = taken;
    if (rc == MD_OK)
        rc = job_submit(a->o.jq, &in, j, err);
    free(taken);
    free(params);
    if (rc != MD_OK)
        return rc;
    http_req_log(req, MD_LOG_INFO, "bulk job %s queued (%s, %llu bytes)", j->id, u.format,
                 (unsigned long long)u.len);
    return api_job_reply(req, 202, j);
}

/* ---- the route table ---------------------------------------------------------------------- */

static const char S_REQ[] =
    "{\"multipart/form-data\":{\"type\":\"object\",\"required\":[\"file\"],\"properties\":{"
    "\"file\":{\"type\":\"string\",\"format\":\"binary\",\"description\":\"CSV with a header row "
    "of column names, or JSON lines of feature objects; at most bulk_max_bytes (100 MB)\"},"
    "\"callback_url\":{\"type\":\"string\",\"format\":\"uri\"}}},"
    "\"text/csv\":{\"type\":\"string\"},\"application/x-ndjson\":{\"type\":\"string\"}}";
static const char S_RESP[] =
    "{\"type\":\"object\",\"required\":[\"job_id\",\"status\",\"links\"],\"properties\":{"
    "\"job_id\":{\"type\":\"string\"},\"status\":{\"const\":\"QUEUED\"},"
    "\"links\":{\"type\":\"object\",\"properties\":{\"self\":{\"type\":\"string\"},"
    "\"result\":{\"type\":\"string\",\"description\":\"the predictions as CSV (text/csv)\"}}}}}";
static const http_doc_param P_MODEL[] = {{"model", "string", "a prediction model's name", 1}, {0}};
static const http_doc_param Q_BULK[] = {
    {"callback_url", "{\"type\":\"string\",\"format\":\"uri\"}",
     "POSTed to (signed) when the job ends; its host must be on callback_allow_hosts", 0},
    {0}};
static const int E_BULK[] = {MD_E_BAD_REQUEST,     MD_E_MISSING_FIELD,     MD_E_INVALID_PARAM,
                             MD_E_TOO_LARGE,       MD_E_UNSUPPORTED_MEDIA, MD_E_OVERLOADED,
                             MD_E_MODEL_NOT_FOUND, MD_E_MODEL_UNAVAILABLE, 0};

static const api__route ROUTES[] = {
    {"POST",
     "/api/{model}/bulk",
     HTTP_ROLE_WRITE,
     HTTP_HEAVY,
     bulk_submit,
     {.summary = "Predict every row of a CSV or JSON-lines upload as a durable job",
      .tag = "predict",
      .description =
          "The upload is a multipart `file` part or the raw body (text/csv or "
          "application/x-ndjson; otherwise told apart by its first byte: '{' is JSON lines). "
          "413 past bulk_max_bytes. The result (GET /api/v1/jobs/{id}/result, text/csv) has one "
          "line per input row in order: row, the prediction's fields flattened, error_code, "
          "error_field, error (bad rows do not fail the job). callback_url (form field or query) "
          "must be on callback_allow_hosts.",
      .request = S_REQ,
      .response = S_RESP,
      .status = 202,
      .path = P_MODEL,
      .query = Q_BULK,
      .errors = E_BULK}},
};

int api_bulk_register(http_server *srv, const api_bulk_opts *o, api_bulk **out, md_err *err)
{
    *out = NULL;
    api_bulk *a = calloc(1, sizeof *a);
    if (!a)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    a->o = *o;
    if (!a->o.max_bytes)
        a->o.max_bytes = API_BULK_MAX_BYTES;
    http_route *added[1];
    int rc = api__add_routes(srv, ROUTES, 1, 0, a, added, err);
    if (rc != MD_OK) {
        free(a);
        return rc;
    }
    api__route_spool_upload(added[0], a->o.max_bytes); /* invariant 6 */
    *out = a;
    return MD_OK;
}

void api_bulk_free(api_bulk *a)
{
    free(a);
}
