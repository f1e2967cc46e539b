/* predict_table.c - pl_table (pipelines.h): rows of text cells (a CSV file's) predicted by a
 * tabular predict model without a JSON object per row, the fast path of bulk prediction.
 *
 * Why: a bulk job of a million rows through pl_csv_object + pl_predict_batch built a jansson
 * object per row (a hash table, a value per cell), looked every schema column up by name in it
 * and compared every key with every column name: about 15 us of CPU per row, ten times what
 * walking the trees costs. Here the header's columns are matched to the schema once, at open,
 * and each row's cells go straight into the model's float row.
 *
 *   cells --cell_of--> pr_cell --pr__cell_value--> float row --pr__run_good--> prediction
 *
 * Invariants:
 *   1. The same answer as pl_csv_object + pl_predict_batch (cx->no_explain or not) row for row:
 *      a cell is what pl_csv_object makes of it (empty: absent; a whole finite number: a
 *      number; else a string, absent when it is not UTF-8 as jansson refuses it), the unknown
 *      columns of a row are refused first in the header's order, then the schema's columns
 *      are checked in the schema's order by pr__cell_value (the one set of rules and messages).
 *   2. The model version is acquired at open and held until close: every row of a job is
 *      answered by one version.
 *   3. At most PL_PREDICT_BATCH_MAX rows are held between runs (rows are n floats each), in
 *      one of two slots: pl_table_add fills slot t->fill, pl_table_seal hands it over and
 *      switches to the other, so one thread can add rows while another runs the sealed slot
 *      (the two touch disjoint slots; the rest of the table is read-only after open).
 *   4. A share cx->log_sample of the good rows is logged as pl_predict_batch logs (inputs
 *      {"features": the row as pl_csv_object makes it}); only those rows get a JSON object.
 */
#include "pipelines/predict_int.h"

#include "base/trace.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct pl_table {
    pl_ctx cx;
    mdl_version *v; /* held (invariant 2) */
    const char *task;
    pr_schema sc;
    const char *const *names; /* the header (borrowed) */
    size_t ncols;
    ssize_t *col_of; /* header column -> schema column, -1 when the model has none */
    bool *name_ok;   /* header column names jansson accepts as keys (UTF-8) */
    pr_cell *cells;  /* one row's cells by schema column (scratch of pl_table_add) */
    struct pl_slot {
        float *rows;     /* PL_PREDICT_BATCH_MAX rows of sc.n floats */
        md_err *errs;    /* the held rows' errors (code MD_OK: good) */
        json_t **logged; /* the held rows picked for the log: their feature objects, else NULL */
        size_t n;        /* rows held */
    } slot[2];
    int fill;        /* the slot pl_table_add fills (invariant 3) */
    uint64_t rnd;    /* xorshift state of the log sampling (pl_table_add's) */
};

/* 1 when s (n bytes) is text jansson takes as a string (ASCII is; the rest it checks). */
static int jansson_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80 || !s[i]) {
            json_t *t = json_stringn(s, n);
            json_decref(t);
            return t != NULL;
        }
    return 1;
}

/* A cell as pl_csv_object makes it (invariant 1). */
static pr_cell cell_of(const char *s, size_t n)
{
    if (n == 0)
        return (pr_cell){.kind = PR_CELL_ABSENT};
    if (isdigit((unsigned char)s[0]) || s[0] == '-' || s[0] == '+' || s[0] == '.') {
        char *end = NULL;
        double d = strtod(s, &end);
        if (end == s + n && isfinite(d))
            return (pr_cell){.kind = PR_CELL_NUMBER, .d = d};
    }
    if (!jansson_text(s, n))
        return (pr_cell){.kind = PR_CELL_ABSENT};
    return (pr_cell){.kind = PR_CELL_STRING, .s = s};
}

static double next_unit(pl_table *t)
{
    t->rnd ^= t->rnd << 13;
    t->rnd ^= t->rnd >> 7;
    t->rnd ^= t->rnd << 17;
    return (double)(t->rnd >> 11) * 0x1p-53;
}

int pl_table_open(const pl_ctx *cx, const char *model, const char *const *names, size_t ncols,
                  pl_table **out, md_err *err)
{
    *out = NULL;
    pl_table *t = calloc(1, sizeof *t);
    if (!t)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    t->cx = *cx;
    t->cx.no_explain = true; /* bulk answers carry no explanation */
    t->names = names;
    t->ncols = ncols;
    int rc = pr__acquire(&t->cx, model, &t->v, &t->task, err);
    if (rc == MD_OK && !pr__is_tabular(t->task))
        rc = md_fail(err, MD_E_UNSUPPORTED, "model", "%.64s does not predict rows", model);
    if (rc == MD_OK)
        rc = pr__schema_load(mdl_version_manifest(t->v), &t->sc, err);
    if (rc != MD_OK) {
        pl_table_close(t);
        return rc;
    }
    t->col_of = malloc((ncols ? ncols : 1) * sizeof *t->col_of);
    t->name_ok = malloc((ncols ? ncols : 1) * sizeof *t->name_ok);
    t->cells = malloc(t->sc.n * sizeof *t->cells);
    int ok = t->col_of && t->name_ok && t->cells;
    for (int k = 0; k < 2; k++) {
        struct pl_slot *sl = &t->slot[k];
        sl->rows = malloc((size_t)PL_PREDICT_BATCH_MAX * t->sc.n * sizeof *sl->rows);
        sl->errs = calloc(PL_PREDICT_BATCH_MAX, sizeof *sl->errs);
        sl->logged = calloc(PL_PREDICT_BATCH_MAX, sizeof *sl->logged);
        ok = ok && sl->rows && sl->errs && sl->logged;
    }
    if (!ok || getrandom(&t->rnd, sizeof t->rnd, 0) != (ssize_t)sizeof t->rnd) {
        pl_table_close(t);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    t->rnd |= 1; /* xorshift needs a non-zero state */
    for (size_t j = 0; j < ncols; j++) {
        t->col_of[j] = pr__schema_find(&t->sc, names[j]);
        t->name_ok[j] = jansson_text(names[j], strlen(names[j]));
    }
    *out = t;
    return MD_OK;
}

/* One row's cells into row (invariant 1); errors as pr__schema_row's. */
static int row_of(pl_table *t, const char *const *fields, const size_t *lens, size_t n, float *row,
                  md_err *err)
{
    pr_cell *cells = t->cells;
    for (size_t i = 0; i < t->sc.n; i++)
        cells[i] = (pr_cell){.kind = PR_CELL_ABSENT};
    for (size_t j = 0; j < n && j < t->ncols; j++) {
        if (!lens[j] || !t->name_ok[j])
            continue;
        pr_cell c = cell_of(fields[j], lens[j]);
        if (c.kind == PR_CELL_ABSENT)
            continue;
        if (t->col_of[j] < 0)
            return md_fail(err, MD_E_INVALID_PARAM, t->names[j], "%.48s is not a field of this model",
                           t->names[j]);
        cells[t->col_of[j]] = c;
    }
    for (size_t i = 0; i < t->sc.n; i++) {
        int rc = pr__cell_value(&t->sc.cols[i], &cells[i], &row[i], err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

int pl_table_add(pl_table *t, const char *const *fields, const size_t *lens, size_t n, md_err *err)
{
    struct pl_slot *sl = &t->slot[t->fill];
    if (sl->n == PL_PREDICT_BATCH_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, "items", "more than %d rows held",
                       PL_PREDICT_BATCH_MAX);
    md_err *e = &sl->errs[sl->n];
    md_err_clear(e);
    row_of(t, fields, lens, n, sl->rows + sl->n * t->sc.n, e);
    if (e->code == MD_OK && t->cx.st && t->cx.log_sample > 0 &&
        (t->cx.log_sample >= 1.0 || next_unit(t) < t->cx.log_sample)) {
        sl->logged[sl->n] = pl_csv_object(t->names, t->ncols, fields, lens, n);
        if (!sl->logged[sl->n])
            return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    sl->n++;
    return MD_OK;
}

int pl_table_seal(pl_table *t)
{
    int sealed = t->fill;
    t->fill = 1 - t->fill;
    return sealed;
}

/* Log the picked rows of sl that got a prediction (invariant 4). */
static void log_picked(pl_table *t, const struct pl_slot *sl, json_t *const *preds)
{
    size_t k = 0;
    const json_t **feats = malloc((sl->n ? sl->n : 1) * sizeof *feats);
    json_t **answers = malloc((sl->n ? sl->n : 1) * sizeof *answers);
    for (size_t i = 0; feats && answers && i < sl->n; i++) {
        if (!sl->logged[i] || !preds[i])
            continue;
        answers[k] = json_pack("{s:O, s:n}", "prediction", preds[i], "explanation");
        if (answers[k])
            feats[k++] = sl->logged[i];
    }
    if (k)
        pr__log_rows(&t->cx, t->v, feats, answers, k);
    for (size_t i = 0; answers && i < k; i++)
        json_decref(answers[i]);
    free(feats);
    free(answers);
}

int pl_table_run_slot(pl_table *t, int slot, json_t **preds, md_err *errs, size_t *n, md_err *err)
{
    struct pl_slot *sl = &t->slot[slot & 1];
    *n = sl->n;
    json_t **expls = calloc(sl->n ? sl->n : 1, sizeof *expls);
    if (!expls)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    memcpy(errs, sl->errs, sl->n * sizeof *errs);
    tr_span *s = tr_span_start("model run", TR_KIND_INTERNAL, t->cx.trace);
    tr_span_attr_str(s, "modeld.model", mdl_version_name(t->v));
    tr_span_attr_int(s, "modeld.rows", (int64_t)sl->n);
    int rc = pr__run_good(&t->cx, t->v, t->task, &t->sc, sl->rows, sl->n, NULL, preds, expls,
                          errs, err);
    tr_span_status(s, rc);
    tr_span_end(s);
    if (rc == MD_OK)
        log_picked(t, sl, preds);
    for (size_t i = 0; i < sl->n; i++) {
        json_decref(expls[i]); /* bulk answers carry no explanation */
        json_decref(sl->logged[i]);
        sl->logged[i] = NULL;
        if (rc != MD_OK) {
            json_decref(preds[i]);
            preds[i] = NULL;
        }
    }
    free(expls);
    sl->n = 0;
    return rc;
}

int pl_table_run(pl_table *t, json_t **preds, md_err *errs, size_t *n, md_err *err)
{
    return pl_table_run_slot(t, pl_table_seal(t), preds, errs, n, err);
}

const char *pl_table_version(const pl_table *t)
{
    return mdl_version_id(t->v);
}

void pl_table_close(pl_table *t)
{
    if (!t)
        return;
    for (int k = 0; k < 2; k++) {
        struct pl_slot *sl = &t->slot[k];
        for (size_t i = 0; sl->logged && i < sl->n; i++)
            json_decref(sl->logged[i]);
        free(sl->logged);
        free(sl->errs);
        free(sl->rows);
    }
    free(t->cells);
    free(t->name_ok);
    free(t->col_of);
    pr__schema_free(&t->sc);
    mdl_release(t->v);
    free(t);
}
