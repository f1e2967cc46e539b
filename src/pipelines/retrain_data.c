/* retrain_data.c - the rows a retraining job learns from and is judged on: a stored dataset or
 * a held test split (CSV or JSON lines, read whole: both are bounded files), or the logged
 * predictions that got feedback. Each row becomes the model's float row through the same schema
 * code as a prediction request (pr__schema_row), so a retrained model sees exactly the encoding
 * the served one does.
 *
 * Invariants:
 *   1. Only the schema's columns are features; the label column and any other column of a file
 *      are ignored for the row (a dataset may carry ids or notes).
 *   2. A file row that does not fit the schema fails the read with its line and column (a
 *      dataset is curated input: silently dropping rows would train on a different set than
 *      the operator thinks); a feedback row that does not fit is skipped and counted (feedback
 *      is what clients happened to send).
 *   3. At most max_rows rows are held; the buffers grow geometrically and are freed on every
 *      error path by the caller's rt__rows_free.
 */
#include "pipelines/retrain_int.h"

#include "base/csv.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void rt__rows_free(rt_rows *r)
{
    free(r->x);
    free(r->y);
    memset(r, 0, sizeof *r);
}

static int rows_push(rt_rows *r, const float *row, float y, size_t max_rows, const char *field,
                     md_err *err)
{
    if (r->n == max_rows)
        return md_fail(err, MD_E_TOO_LARGE, field, "more than %zu rows", max_rows);
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        float *x = realloc(r->x, cap * r->ncols * sizeof *x);
        if (x)
            r->x = x;
        float *yy = x ? realloc(r->y, cap * sizeof *yy) : NULL;
        if (!x || !yy)
            return md_fail(err, MD_E_NOMEM, NULL, NULL);
        r->y = yy;
        r->cap = cap;
    }
    memcpy(r->x + r->n * r->ncols, row, r->ncols * sizeof *row);
    r->y[r->n++] = y;
    return MD_OK;
}

int rt__label(const rt_spec *sp, const json_t *v, float *out, md_err *err)
{
    size_t k = json_array_size(sp->label_values);
    if (sp->label_values && json_is_string(v)) {
        for (size_t i = 0; i < k; i++)
            if (strcmp(json_string_value(json_array_get(sp->label_values, i)),
                       json_string_value(v)) == 0) {
                *out = (float)i;
                return MD_OK;
            }
        return md_fail(err, MD_E_INVALID_PARAM, sp->label, "%.40s is not one of the labels",
                       json_string_value(v));
    }
    if (json_is_boolean(v) && k == 2) {
        *out = json_is_true(v) ? 1.0f : 0.0f;
        return MD_OK;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return md_fail(err, MD_E_INVALID_PARAM, sp->label, "the label must be %s",
                       sp->label_values ? "one of the labels" : "a number");
    double d = json_number_value(v);
    if (sp->label_values && (d != floor(d) || d < 0 || d >= (double)k))
        return md_fail(err, MD_E_INVALID_PARAM, sp->label, "a class index must be in 0..%zu",
                       k - 1);
    if (sp->log_label && !(d > 0))
        return md_fail(err, MD_E_INVALID_PARAM, sp->label,
                       "must be > 0 (the model learns its log)");
    *out = (float)(sp->log_label ? log(d) : d);
    return MD_OK;
}

/* The schema's columns of obj (invariant 1) as a features object. New reference. */
static json_t *features_of(const json_t *obj, const pr_schema *sc)
{
    json_t *f = json_object();
    for (size_t i = 0; f && i < sc->n; i++) {
        json_t *v = json_object_get(obj, sc->cols[i].name);
        if (v && !json_is_null(v))
            json_object_set(f, sc->cols[i].name, v);
    }
    return f;
}

/* One row object (a CSV row as cells, or a JSON line) into r; errors carry line and column. */
static int add_object(rt_rows *r, const json_t *obj, const pr_schema *sc, const rt_spec *sp,
                      size_t max_rows, const char *field, size_t line, md_err *err)
{
    float *row = malloc(sc->n * sizeof *row);
    json_t *f = features_of(obj, sc);
    float y = 0;
    md_err e = {0};
    int rc = row && f ? pr__schema_row(sc, f, row, &e) : md_fail(&e, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK)
        rc = rt__label(sp, json_object_get(obj, sp->label), &y, &e);
    if (rc == MD_OK)
        rc = rows_push(r, row, y, max_rows, field, err);
    else if (rc == MD_E_NOMEM)
        md_fail(err, MD_E_NOMEM, NULL, NULL);
    else
        rc = md_fail(err, MD_E_INVALID_PARAM, field, "line %zu: %s: %s", line,
                     e.field[0] ? e.field : "row", md_err_message(&e));
    json_decref(f);
    free(row);
    return rc;
}

/* ---- CSV ---------------------------------------------------------------------------------- */

typedef struct csv_ctx {
    md_csv *csv;
    rt_rows *r;
    const pr_schema *sc;
    const rt_spec *sp;
    size_t max_rows;
    const char *field;
} csv_ctx;

static int csv_row(void *user, const char *const *fields, const size_t *lens, size_t n, size_t line,
                   md_err *err)
{
    csv_ctx *c = user;
    size_t ncols = 0;
    const char *const *names = md_csv_columns(c->csv, &ncols);
    json_t *o = pl_csv_object(names, ncols, fields, lens, n);
    if (!o)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = add_object(c->r, o, c->sc, c->sp, c->max_rows, c->field, line, err);
    json_decref(o);
    return rc;
}

static int read_csv(const char *data, size_t len, csv_ctx *c, md_err *err)
{
    md_csv_opts co = {.header = true, .field = c->field};
    int rc = md_csv_new(&co, csv_row, c, &c->csv, err);
    if (rc == MD_OK)
        rc = md_csv_feed(c->csv, data, len, err);
    if (rc == MD_OK)
        rc = md_csv_finish(c->csv, err);
    size_t n = 0;
    const char *const *names = rc == MD_OK ? md_csv_columns(c->csv, &n) : NULL;
    if (rc == MD_OK) {
        json_t *h = json_array();
        for (size_t i = 0; h && i < n; i++)
            json_array_append_new(h, json_string(names[i]));
        rc = h ? rt__check_header(h, c->sc, c->sp, err) : md_fail(err, MD_E_NOMEM, NULL, NULL);
        json_decref(h);
    }
    md_csv_free(c->csv);
    c->csv = NULL;
    return rc;
}

/* ---- JSON lines --------------------------------------------------------------------------- */

static int read_jsonl(const char *data, size_t len, csv_ctx *c, md_err *err)
{
    size_t line = 0;
    int rc = MD_OK;
    while (rc == MD_OK && len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len, k = 0;
        line++;
        while (k < take && isspace((unsigned char)data[k]))
            k++;
        if (k < take) {
            json_t *o = json_loadb(data, take, 0, NULL);
            rc = json_is_object(o)
                     ? add_object(c->r, o, c->sc, c->sp, c->max_rows, c->field, line, err)
                     : md_fail(err, MD_E_INVALID_PARAM, c->field, "line %zu: not a JSON object",
                               line);
            json_decref(o);
        }
        data += take + (nl != NULL);
        len -= take + (nl != NULL);
    }
    return rc;
}

int rt__slurp(const char *path, size_t max_bytes, const char *field, char **out, size_t *len,
              md_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return md_fail(err, errno == ENOENT ? MD_E_NOT_FOUND : MD_E_IO, field,
                       "the file cannot be opened");
    struct stat sb;
    int rc = fstat(fileno(f), &sb) == 0 ? MD_OK : md_fail(err, MD_E_IO, field, "cannot stat");
    if (rc == MD_OK && (uint64_t)sb.st_size > max_bytes)
        rc = md_fail(err, MD_E_TOO_LARGE, field, "more than %zu bytes", max_bytes);
    size_t size = rc == MD_OK ? (size_t)sb.st_size : 0;
    char *buf = rc == MD_OK ? malloc(size + 1) : NULL;
    if (rc == MD_OK && !buf)
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    size_t n = buf ? fread(buf, 1, size, f) : 0;
    if (rc == MD_OK && (ferror(f) || n != size))
        rc = md_fail(err, MD_E_IO, field, "the file cannot be read");
    fclose(f);
    if (rc != MD_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return MD_OK;
}

int rt__read_data(const char *data, size_t len, const char *format, const pr_schema *sc,
                  const rt_spec *sp, size_t max_rows, const char *field, rt_rows *r, md_err *err)
{
    r->ncols = sc->n;
    csv_ctx c = {.r = r, .sc = sc, .sp = sp, .max_rows = max_rows, .field = field};
    return strcmp(format, "jsonl") == 0 ? read_jsonl(data, len, &c, err)
                                        : read_csv(data, len, &c, err);
}

int rt__read_file(const char *path, const char *format, size_t max_bytes, const pr_schema *sc,
                  const rt_spec *sp, size_t max_rows, const char *field, rt_rows *r, md_err *err)
{
    char *data = NULL;
    size_t len = 0;
    r->ncols = sc->n;
    int rc = rt__slurp(path, max_bytes, field, &data, &len, err);
    if (rc != MD_OK)
        return rc;
    rc = rt__read_data(data, len, format, sc, sp, max_rows, field, r, err);
    free(data);
    return rc;
}

int rt__check_header(const json_t *names, const pr_schema *sc, const rt_spec *sp, md_err *err)
{
    for (size_t i = 0; i <= sc->n; i++) {
        const char *want = i < sc->n ? sc->cols[i].name : sp->label;
        if (i < sc->n && !sc->cols[i].required)
            continue;
        int found = 0;
        for (size_t k = 0; k < json_array_size(names) && !found; k++)
            found = strcmp(json_string_value(json_array_get(names, k)) ?: "", want) == 0;
        if (!found)
            return md_fail(err, MD_E_UNSUPPORTED, want, "the data has no column %.60s (the %s)",
                           want, i < sc->n ? "model needs it" : "label to learn");
    }
    return MD_OK;
}

/* ---- feedback ----------------------------------------------------------------------------- */

/* The label of a feedback's actual: the value itself, or its label column when an object. */
static int feedback_row(const store_prediction *p, const pr_schema *sc, const rt_spec *sp,
                        float *row, float *y)
{
    md_err e = {0};
    json_t *in = json_loads(p->inputs ? p->inputs : "", 0, NULL);
    json_t *act = json_loads(p->actual ? p->actual : "", JSON_DECODE_ANY, NULL);
    const json_t *label = json_is_object(act) ? json_object_get(act, sp->label) : act;
    int rc = in && label ? pr__schema_row(sc, json_object_get(in, "features"), row, &e)
                         : MD_E_INVALID_PARAM;
    if (rc == MD_OK)
        rc = rt__label(sp, label, y, &e);
    json_decref(in);
    json_decref(act);
    return rc;
}

int rt__read_feedback(store *st, const char *model, const pr_schema *sc, const rt_spec *sp,
                      size_t max_rows, rt_rows *r, md_err *err)
{
    r->ncols = sc->n;
    float *row = malloc(sc->n * sizeof *row);
    if (!row)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = MD_OK;
    for (size_t off = 0; rc == MD_OK && r->n < max_rows;) {
        store_prediction *page = NULL;
        size_t n = 0;
        rc = store_feedback_list(st, model, off, 10000, &page, &n, err);
        for (size_t i = 0; rc == MD_OK && i < n && r->n < max_rows; i++) {
            float y = 0;
            if (feedback_row(&page[i], sc, sp, row, &y) == MD_OK)
                rc = rows_push(r, row, y, max_rows, "data", err);
            else
                r->skipped++;
        }
        store_predictions_free(page, n);
        off += n;
        if (n < 10000)
            break;
    }
    free(row);
    return rc;
}
