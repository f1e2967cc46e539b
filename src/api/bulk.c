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
 *      result lines go to a blob writer as chunks are predicted (held in memory only until the
 *      first good row fixes the header, at most SPILL_AT bytes, then spilled to a second
 *      writer read back behind the header at the end) and the writer is committed as the
 *      result blob. Blob writers encrypt as they write when the store encrypts at rest, so
 *      neither the result nor the spill is ever on disk in plaintext.
 *   7. Rows are logged to the prediction history like single predictions (a share
 *      predict_bulk_log_sample of them, default 0.01, through pl_predict_batch's log), so
 *      drift and history see bulk traffic too without a million-row file costing a million
 *      log rows.
 *   8. A CSV on a tabular model goes through pl_table (no JSON object per row; one version for
 *      the whole file), other inputs through pl_predict_batch; both write the same lines. A
 *      line's prediction columns are written by walking the prediction in flatten()'s order
 *      when its leaves are exactly the columns, else by name (invariant 5).
 *   9. Two threads on the table path: the job's thread reads the file and turns rows into the
 *      table's float rows; a predicting thread (started at the first chunk, joined at the end
 *      of the input or on any error) runs each chunk and writes its lines, one chunk at a time,
 *      in order (pl_table's two slots: one filled while the other runs). Only the predicting
 *      thread writes the result while it runs; its first error stops both and is the job's.
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
#include <pthread.h>
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
    md_err *err;                  /* borrowed; the reading thread's errors (see werr) */
    json_t *items;                /* the chunk being filled (array of feature objects) */
    json_t *pre[API_BULK_CHUNK];  /* slot i's parse error {code, field, message} (new) or NULL */
    json_t *pred[API_BULK_CHUNK]; /* borrowed from the batch answer while a chunk is written */
    json_t *fail[API_BULK_CHUNK];
    size_t first_row; /* input row index of the chunk's slot 0 */
    json_t *cols;     /* the prediction columns (invariant 5); NULL before a good row */
    char version[64];
    md_buf body;    /* result lines not written yet (invariant 6) */
    job_run *run;   /* borrowed: the result files come from it */
    store_blob_writer *out;   /* the result (new), written from its start: header, lines */
    store_blob_writer *spill; /* lines written before the header was known (new), or NULL */
    bool header;    /* the header line is in the result file */
    uint64_t written; /* result bytes out so far (RESULT_MAX) */
    md_csv *csv;    /* CSV: the reader (its column names) */
    pl_table *table;  /* CSV on a tabular model: the rows' fast path (invariant 8); else NULL */
    bool table_tried; /* pl_table_open was tried (at the first row) */
    size_t held;      /* rows held by the table */
    json_t *tpred[API_BULK_CHUNK]; /* pl_table_run's predictions (new) while a chunk is written */
    md_err terr[API_BULK_CHUNK];   /* ... and its row errors */
    /* The predicting thread (invariant 9); mu guards slot, stop, crc, cerr, handed_bytes. */
    pthread_t th;
    bool consumer;       /* th runs */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int slot;            /* the table slot handed over and not done yet; -1: none */
    bool stop;           /* no more slots will come */
    int crc;             /* the thread's first error (MD_OK) */
    md_err cerr;         /* ... its detail */
    double handed_bytes; /* input bytes read when the slot was handed over (progress) */
    md_err *werr;        /* where the writing functions put errors: b->err, or cerr while th
                            writes (only one thread writes the result at a time) */
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
        return md_buf_put_g(b, json_real_value(v), 9); /* "%.9g" without printf */
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

/* The scalars of v in flatten()'s order as the columns b->cols from column *j on, each
 * ",value"; 0 (and nothing written) as soon as a leaf is not the next column or a path would
 * be cut by flatten (the caller then fills by name). *rc gets a write error. */
static int walk_cols(bulk *b, const json_t *v, char *path, size_t plen, size_t *j, int *rc)
{
    if (json_is_object(v) || json_is_array(v)) {
        char idx[24];
        const char *k;
        json_t *x;
        for (void *it = json_object_iter((json_t *)v); json_is_object(v) && it;
             it = json_object_iter_next((json_t *)v, it)) {
            k = json_object_iter_key(it);
            x = json_object_iter_value(it);
            size_t kl = strlen(k), nl = plen + (plen ? 1 : 0) + kl;
            if (nl >= 255)
                return 0;
            if (plen)
                path[plen] = '.';
            memcpy(path + nl - kl, k, kl + 1);
            if (!walk_cols(b, x, path, nl, j, rc))
                return 0;
        }
        for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
            size_t kl = (size_t)snprintf(idx, sizeof idx, "%zu", i), nl = plen + (plen ? 1 : 0) + kl;
            if (nl >= 255)
                return 0;
            if (plen)
                path[plen] = '.';
            memcpy(path + nl - kl, idx, kl + 1);
            if (!walk_cols(b, json_array_get(v, i), path, nl, j, rc))
                return 0;
        }
        path[plen] = '\0';
        return 1;
    }
    const char *name = plen ? path : "prediction";
    if (*j >= json_array_size(b->cols) || strcmp(name, json_string_value(json_array_get(b->cols, *j))))
        return 0;
    (*j)++;
    *rc = md_buf_putc(&b->body, ',');
    if (*rc == MD_OK)
        *rc = put_value(&b->body, v);
    return *rc == MD_OK;
}

/* The prediction columns of one line (empty for a row without a prediction). */
static int write_cols(bulk *b, const json_t *pred)
{
    md_buf *o = &b->body;
    size_t start = o->len, j = 0, ncols = json_array_size(b->cols);
    char path[256] = "";
    int rc = MD_OK;
    for (size_t i = 0; !pred && rc == MD_OK && i < ncols; i++)
        rc = md_buf_putc(o, ',');
    if (!pred || (walk_cols(b, pred, path, 0, &j, &rc) && j == ncols))
        return rc;
    if (rc != MD_OK)
        return rc;
    o->len = start; /* not the columns' shape: by name */
    if (o->data)
        o->data[start] = '\0';
    json_t *flat = json_object();
    if (pred)
        flatten(pred, "", flat);
    for (size_t i = 0; rc == MD_OK && i < ncols; i++) {
        rc = md_buf_putc(o, ',');
        if (rc == MD_OK)
            rc = put_value(o, json_object_get(flat, json_string_value(json_array_get(b->cols, i))));
    }
    json_decref(flat);
    return rc;
}

/* One result line: row index, the prediction columns, the error columns (code, field,
 * message; NULL: empty). */
static int write_line_s(bulk *b, size_t slot, const json_t *pred, const char *code,
                        const char *field, const char *msg)
{
    md_buf *o = &b->body;
    int rc = md_buf_printf(o, "%zu", b->first_row + slot);
    if (rc == MD_OK)
        rc = write_cols(b, pred);
    const char *e[3] = {code, field, msg};
    for (size_t i = 0; rc == MD_OK && i < 3; i++) {
        rc = md_buf_putc(o, ',');
        if (rc == MD_OK && e[i])
            rc = put_field(o, e[i], strlen(e[i]));
    }
    return rc == MD_OK ? md_buf_putc(o, '\n') : rc;
}

/* One result line from a JSON error object {code, field?, message} (or none). */
static int write_line(bulk *b, size_t slot, const json_t *pred, const json_t *e)
{
    if (!e)
        return write_line_s(b, slot, pred, NULL, NULL, NULL);
    md_buf *o = &b->body;
    int rc = md_buf_printf(o, "%zu", b->first_row + slot);
    if (rc == MD_OK)
        rc = write_cols(b, pred);
    static const char *const ekeys[] = {"code", "field", "message"};
    for (size_t i = 0; rc == MD_OK && i < 3; i++) {
        rc = md_buf_putc(o, ',');
        if (rc == MD_OK)
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

/* Through a blob writer: encrypted as written when the store encrypts at rest. */
static int write_to(bulk *b, store_blob_writer *to, const void *data, size_t n)
{
    b->written += n;
    if (b->written > RESULT_MAX)
        return md_fail(b->werr, MD_E_TOO_LARGE, "file", "the result passed %zu bytes", RESULT_MAX);
    return store_blob_writer_write(to, data, n, b->werr);
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
        rc = write_to(b, b->out, h.data, h.len);
    else
        rc = md_fail(b->werr, rc, "result", "cannot build the header line");
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
        return md_fail(b->werr, rc, "result", "cannot widen the result lines");
    return write_to(b, b->out, tmp->data, tmp->len);
}

/* Append the spill file's lines to the result, widened, in blocks; then drop the spill. */
static int copy_spill(bulk *b, widen *w, md_buf *tmp)
{
    char *block = malloc(BLOCK);
    if (!block)
        return md_fail(b->werr, MD_E_NOMEM, NULL, NULL);
    store_blob_reader *in = NULL; /* the spill, read back once and gone (unlinked) */
    int rc = store_blob_writer_reopen(b->spill, &in, b->werr);
    b->spill = NULL;
    for (size_t got = 1; rc == MD_OK && got > 0;) {
        rc = store_blob_reader_read(in, block, BLOCK, &got, b->werr);
        if (rc == MD_OK && got > 0)
            rc = write_widened(b, w, block, got, tmp);
    }
    store_blob_reader_free(in);
    free(block);
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
        rc = job_run_result_writer(b->run, &b->spill, b->werr);
    }
    store_blob_writer *to = b->header ? b->out : b->spill;
    if (rc == MD_OK && to && (last || b->body.len >= WRITE_AT)) {
        b->written -= b->header ? 0 : b->body.len; /* spilled bytes are counted when copied */
        rc = write_to(b, to, b->body.data, b->body.len);
        md_buf_reset(&b->body);
    }
    if (rc == MD_OK && last && !b->header)
        rc = settle(b);
    return rc;
}

/* The end of a chunk: lines out, progress (done_bytes of the input read), a cancel check. */
static int chunk_done(bulk *b, size_t n, int rc, double done_bytes)
{
    b->first_row += n;
    if (rc == MD_OK)
        rc = drain(b, false);
    if (rc == MD_OK && b->total_bytes > 0)
        md_cancel_progress(b->cancel, done_bytes / b->total_bytes, "predict");
    return rc == MD_OK ? md_cancel_check(b->cancel, "predict", b->werr) : rc;
}

/* ---- the run: the predicting thread (invariant 9) ----------------------------------------- */

/* Run sealed slot `slot` and write its lines; on the predicting thread. */
static int run_chunk(bulk *b, int slot, double done_bytes)
{
    size_t n = 0;
    int rc = pl_table_run_slot(b->table, slot, b->tpred, b->terr, &n, b->werr);
    if (rc != MD_OK || n == 0)
        return rc;
    snprintf(b->version, sizeof b->version, "%s", pl_table_version(b->table));
    memcpy(b->pred, b->tpred, n * sizeof *b->pred);
    pick_columns(b, n);
    if (b->cols && !b->header)
        rc = settle(b);
    for (size_t i = 0; rc == MD_OK && i < n; i++) {
        const md_err *e = b->tpred[i] ? NULL : &b->terr[i];
        b->failed += e != NULL;
        rc = e ? write_line_s(b, i, NULL, md_err_name(e->code), e->field[0] ? e->field : NULL,
                              md_err_message(e))
               : write_line_s(b, i, b->tpred[i], NULL, NULL, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        json_decref(b->tpred[i]);
        b->tpred[i] = b->pred[i] = NULL;
    }
    return chunk_done(b, n, rc, done_bytes);
}

static void *consume(void *arg)
{
    bulk *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (b->slot < 0 && !b->stop)
            pthread_cond_wait(&b->cv, &b->mu);
        if (b->slot < 0)
            break;
        int slot = b->slot, rc = b->crc;
        double done = b->handed_bytes;
        pthread_mutex_unlock(&b->mu);
        if (rc == MD_OK) /* after an error the chunks are only dropped */
            rc = run_chunk(b, slot, done);
        pthread_mutex_lock(&b->mu);
        b->crc = rc;
        b->slot = -1;
        pthread_cond_broadcast(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* Hand the rows the table holds to the predicting thread (started at the first chunk), once it
 * is done with the chunk before; its first error comes back here (into b->err). */
static int hand_off(bulk *b)
{
    if (!b->consumer) {
        b->werr = &b->cerr;
        if (pthread_create(&b->th, NULL, consume, b) != 0) {
            b->werr = b->err;
            return md_fail(b->err, MD_E_NOMEM, NULL, "cannot start the predicting thread");
        }
        b->consumer = true;
    }
    pthread_mutex_lock(&b->mu);
    while (b->slot >= 0)
        pthread_cond_wait(&b->cv, &b->mu);
    int rc = b->crc;
    if (rc == MD_OK) {
        b->slot = pl_table_seal(b->table);
        b->handed_bytes = b->done_bytes;
        pthread_cond_broadcast(&b->cv);
    } else if (b->err) {
        *b->err = b->cerr;
    }
    pthread_mutex_unlock(&b->mu);
    b->held = 0;
    return rc;
}

/* The end of the input (or of the run): the last chunk done, the thread joined; from here the
 * writer's errors go to b->err again. Returns the predicting thread's first error. */
static int join_consumer(bulk *b)
{
    if (!b->consumer)
        return MD_OK;
    pthread_mutex_lock(&b->mu);
    while (b->slot >= 0)
        pthread_cond_wait(&b->cv, &b->mu);
    b->stop = true;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->th, NULL);
    b->consumer = false;
    b->werr = b->err;
    if (b->crc != MD_OK && b->err)
        *b->err = b->cerr;
    return b->crc;
}

/* The rows held by the table to the predicting thread (invariants 8, 9). */
static int flush_table(bulk *b)
{
    return b->held ? hand_off(b) : MD_OK;
}

/* Predict the rows held, write their lines, report progress, check for a cancel. */
static int flush(bulk *b)
{
    if (b->table)
        return flush_table(b);
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
    return chunk_done(b, n, rc, b->done_bytes);
}

/* Hold one row (steals item; pre: its parse error, stolen, or NULL); a full chunk is flushed. */
static int add_row(bulk *b, json_t *item, json_t *pre)
{
    b->pre[json_array_size(b->items)] = pre;
    json_array_append_new(b->items, item ? item : json_null());
    return json_array_size(b->items) == API_BULK_CHUNK ? flush(b) : MD_OK;
}

/* ---- the run: CSV and JSON lines ---------------------------------------------------------- */

/* At the first CSV row: the table of a tabular model (invariant 8); none (the JSON way) for
 * the others. */
static int open_table(bulk *b)
{
    size_t ncols = 0;
    const char *const *names = md_csv_columns(b->csv, &ncols);
    md_err e = {0};
    b->table_tried = true;
    int rc = pl_table_open(&b->cx, b->model, names, ncols, &b->table, &e);
    if (rc == MD_E_UNSUPPORTED)
        return MD_OK;
    if (rc != MD_OK && b->err)
        *b->err = e;
    return rc;
}

/* One CSV row: into the table, or as a feature object {column: cell} (pl_csv_object: empty
 * cells left out). */
static int csv_row(void *user, const char *const *fields, const size_t *lens, size_t n, size_t line,
                   md_err *err)
{
    (void)line;
    (void)err;
    bulk *b = user;
    int rc = b->table_tried ? MD_OK : open_table(b);
    if (rc != MD_OK)
        return rc;
    if (b->table) {
        rc = pl_table_add(b->table, fields, lens, n, b->err);
        return rc == MD_OK && ++b->held == API_BULK_CHUNK ? flush(b) : rc;
    }
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
static int dataset_blob(store *st, const char *id, char hex[STORE_SHA256_HEX], md_err *err)
{
    store_dataset *d = malloc(sizeof *d);
    if (!d)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = store_datasets_get(st, id, d, err);
    if (rc == MD_E_NOT_FOUND)
        rc = md_fail(err, MD_E_NOT_FOUND, "input", "no dataset %.40s (deleted?)", id);
    if (rc == MD_OK)
        memcpy(hex, d->sha256, STORE_SHA256_HEX);
    free(d);
    return rc;
}

/* The input to read, opened (decrypted when encrypted at rest): the job's input blob, or the
 * stored dataset ("d_...") or upload a schedule names (params.input). */
static int open_input(job_run *r, api_bulk_kind *k, const json_t *params,
                      store_blob_reader **out, md_err *err)
{
    if (job_run_info(r)->input_sha256[0])
        return job_run_input_open(r, out, err);
    const char *id = json_string_value(json_object_get(params, "input"));
    if (!id || !*id)
        return md_fail(err, MD_E_MISSING_FIELD, "input", "the job has no input");
    if (!k->st)
        return md_fail(err, MD_E_UNAVAILABLE, "input", "no store to read input %.40s from", id);
    char hex[STORE_SHA256_HEX];
    store_upload up;
    int rc = MD_OK;
    if (strncmp(id, "d_", 2) == 0) {
        rc = dataset_blob(k->st, id, hex, err);
    } else {
        rc = store_uploads_get(k->st, id, &up, err);
        if (rc == MD_E_FILE_NOT_FOUND)
            rc = md_fail(err, MD_E_NOT_FOUND, "input", "no upload %.40s (expired?)", id);
        if (rc == MD_OK)
            memcpy(hex, up.sha256, STORE_SHA256_HEX);
    }
    return rc == MD_OK ? store_blob_open(k->st, hex, out, err) : rc;
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
static int read_rows(bulk *b, store_blob_reader *in, const json_t *params)
{
    char *block = malloc(BLOCK);
    if (!block)
        return md_fail(b->err, MD_E_NOMEM, NULL, NULL);
    size_t n = 0;
    int rc = store_blob_reader_read(in, block, BLOCK, &n, b->err);
    int jsonl = is_jsonl(params, block, n);
    md_csv_opts co = {.header = true, .field = "file"};
    if (rc == MD_OK && !jsonl)
        rc = md_csv_new(&co, csv_row, b, &b->csv, b->err);
    while (rc == MD_OK && n > 0) {
        b->done_bytes += (double)n;
        rc = jsonl ? api__jsonl_feed(&b->line, &b->line_no, block, n, json_line, b, b->err)
                   : md_csv_feed(b->csv, block, n, b->err);
        if (rc == MD_OK)
            rc = store_blob_reader_read(in, block, BLOCK, &n, b->err);
    }
    if (rc == MD_OK && jsonl && b->line.len)
        rc = json_line(b, b->line.data, b->line.len, b->err);
    if (rc == MD_OK && !jsonl)
        rc = md_csv_finish(b->csv, b->err);
    if (rc == MD_OK)
        rc = flush(b);
    int jrc = join_consumer(b); /* also after an error: the thread must be gone */
    if (rc == MD_OK)
        rc = jrc;
    free(block);
    return rc;
}

/* The last lines, then the file and its metadata as the job's result (adopted by rename). */
static int save_result(bulk *b, job_run *r)
{
    int rc = drain(b, true);
    json_t *m =
        json_pack("{s:s, s:s, s:s, s:I, s:I}", "format", "csv", "model", b->model, "version",
                  b->version, "rows", (json_int_t)b->first_row, "failed", (json_int_t)b->failed);
    char *meta = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    if (rc == MD_OK && !meta)
        rc = md_fail(b->err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK) {
        rc = job_run_set_result_writer(r, b->out, meta, b->err); /* steals the writer */
        b->out = NULL;
    }
    free(meta);
    return rc;
}

/* Close the result files and remove what was not adopted. */
static void bulk_free(bulk *b)
{
    join_consumer(b);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    for (size_t i = 0; i < API_BULK_CHUNK; i++)
        json_decref(b->pre[i]);
    json_decref(b->items);
    json_decref(b->cols);
    for (size_t i = 0; i < API_BULK_CHUNK; i++)
        json_decref(b->tpred[i]);
    pl_table_close(b->table);
    md_csv_free(b->csv);
    md_buf_free(&b->body);
    md_buf_free(&b->line);
    store_blob_writer_free(b->out);
    store_blob_writer_free(b->spill);
    free(b);
}

/* The result file the lines go to. */
static int open_result(bulk *b)
{
    return job_run_result_writer(b->run, &b->out, b->err);
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
    b->slot = -1;
    b->werr = err;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->model = json_string_value(json_object_get(params, "model"));
    b->cancel = job_run_cancel(r);
    b->err = err;
    b->items = json_array();
    md_buf_init(&b->body, RESULT_MAX);
    int orc = open_result(b);
    md_buf_init(&b->line, LINE_MAX_BYTES);
    store_blob_reader *in = NULL;
    int rc = !b->model ? md_fail(err, MD_E_MISSING_FIELD, "model", "the job names no model")
             : orc != MD_OK ? orc
                            : open_input(r, k, params, &in, err);
    if (rc == MD_E_FILE_NOT_FOUND)
        rc = md_fail(err, MD_E_NOT_FOUND, "input", "the input is gone (expired?)");
    if (rc == MD_OK) {
        b->total_bytes = (double)store_blob_reader_size(in);
        rc = read_rows(b, in, params);
    }
    store_blob_reader_free(in);
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
