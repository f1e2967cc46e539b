/* predictions.c - the predictions and feedback tables (migration 8): the sampled log of the
 * predict routes (id, model, version, inputs and outputs as JSON, time) that GET
 * /api/{model}/history pages through and GET /api/{model}/drift reads, and the outcomes that
 * POST /api/{model}/feedback records against a logged prediction.
 *
 * Invariants:
 *   1. Rows are appended, never updated; a feedback row exists only for a logged prediction of
 *      the same model (checked in the same locked section as the insert).
 *   2. A batch of predictions is one transaction: one commit for a whole /batch request (with
 *      the write-behind log, predlog.c, a transaction holds whole groups: several requests'
 *      rows, never part of one).
 *   3. Every reader of the two tables first waits for the rows the write-behind log holds
 *      (store__plog_sync), so a prediction answered before the read is seen by it.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

static const char SQL_ADD[] =
    "INSERT INTO predictions(id, model, version, inputs, outputs, time_ms) VALUES(?,?,?,?,?,?)";
static const char SQL_LIST[] =
    "SELECT p.id, p.model, p.version, p.inputs, p.outputs, p.time_ms, f.actual"
    " FROM predictions p LEFT JOIN feedback f ON f.prediction_id = p.id"
    " WHERE p.model = ?1 AND p.time_ms >= ?2 AND (?3 = 0 OR p.time_ms < ?3)"
    " ORDER BY p.time_ms DESC, p.id DESC LIMIT ?4 OFFSET ?5";
/* The predictions that have feedback (retraining's data), oldest first so that pages are
 * stable while new ones arrive. ?2 and ?3 are bound but unused (list_rows binds five). */
static const char SQL_WITH_FEEDBACK[] =
    "SELECT p.id, p.model, p.version, p.inputs, p.outputs, p.time_ms, f.actual"
    " FROM predictions p JOIN feedback f ON f.prediction_id = p.id"
    " WHERE p.model = ?1 AND ?2 = ?2 AND ?3 = ?3"
    " ORDER BY p.time_ms, p.id LIMIT ?4 OFFSET ?5";
static const char SQL_COUNT_FEEDBACK[] =
    "SELECT count(*) FROM predictions p JOIN feedback f ON f.prediction_id = p.id"
    " WHERE p.model = ?1";
static const char SQL_HAS[] = "SELECT 1 FROM predictions WHERE id = ? AND model = ?";
static const char SQL_FEEDBACK[] =
    "INSERT INTO feedback(prediction_id, actual, time_ms) VALUES(?,?,?) ON CONFLICT(prediction_id)"
    " DO UPDATE SET actual = excluded.actual, time_ms = excluded.time_ms";

void store_prediction_id(char out[STORE_PREDICTION_ID_MAX])
{
    out[0] = 'p';
    out[1] = '_';
    store__random_hex(out + 2, 16);
}

/* One row (sizes checked by store_predictions_add). */
static int add_one(store *s, db_stmt *st, const store_prediction *p, md_err *err)
{
    db_bind_text(st, 1, p->id);
    db_bind_text(st, 2, p->model);
    db_bind_text(st, 3, p->version);
    db_bind_text(st, 4, p->inputs);
    db_bind_text(st, 5, p->outputs);
    db_bind_int64(st, 6, p->time_ms);
    int rc = db_step(st) == DB_DONE ? MD_OK : store__sqlfail(s, "log prediction", err);
    store__done(st);
    return rc;
}

int store__predictions_insert(store *s, const store_prediction *p, size_t n, md_err *err)
{
    if (n == 0)
        return MD_OK;
    store__lock(s);
    int rc = store__begin(s, "begin prediction log", err);
    db_stmt *st = rc == MD_OK ? store__stmt(s, SQL_ADD, err) : NULL;
    if (rc == MD_OK && !st)
        rc = MD_E_IO;
    for (size_t i = 0; rc == MD_OK && i < n; i++)
        rc = add_one(s, st, &p[i], err);
    if (rc == MD_OK)
        rc = store__commit(s, "commit prediction log", err);
    if (rc != MD_OK && db_in_tx(store__db(s)))
        store__rollback(s);
    store__unlock(s);
    return rc;
}

int store_predictions_add(store *s, const store_prediction *p, size_t n, md_err *err)
{
    /* checked here, so that a queued row is one the writer can insert */
    for (size_t i = 0; i < n; i++) {
        if (strnlen(p[i].inputs, STORE_PREDICTION_JSON_MAX + 1) > STORE_PREDICTION_JSON_MAX)
            return md_fail(err, MD_E_TOO_LARGE, "inputs", "inputs too large to log");
        if (strnlen(p[i].outputs, STORE_PREDICTION_JSON_MAX + 1) > STORE_PREDICTION_JSON_MAX)
            return md_fail(err, MD_E_TOO_LARGE, "outputs", "outputs too large to log");
    }
    if (n == 0)
        return MD_OK;
    return s->plog ? store__plog_add(s, p, n, err) : store__predictions_insert(s, p, n, err);
}

static char *col_dup(db_stmt *st, int col)
{
    const char *t = db_col_text(st, col);
    return t ? strdup(t) : NULL;
}

/* One row into p; MD_E_NOMEM when a copy fails. */
static int read_row(db_stmt *st, store_prediction *p)
{
    memset(p, 0, sizeof *p);
    store__col_text(st, 0, p->id, sizeof p->id);
    store__col_text(st, 1, p->model, sizeof p->model);
    store__col_text(st, 2, p->version, sizeof p->version);
    p->inputs = col_dup(st, 3);
    p->outputs = col_dup(st, 4);
    p->time_ms = db_col_int64(st, 5);
    p->actual = col_dup(st, 6);
    int ok = p->inputs && p->outputs && (p->actual || db_col_null(st, 6));
    return ok ? MD_OK : MD_E_NOMEM;
}

/* Run the cached statement sql with ?1 model, ?2 from_ms, ?3 to_ms, ?4 limit, ?5 offset and
 * collect its rows (at most limit) into a new array. */
static int list_rows(store *s, const char *sql, const char *model, int64_t from_ms, int64_t to_ms,
                     size_t offset, size_t limit, store_prediction **out, size_t *n, md_err *err)
{
    *out = NULL;
    *n = 0;
    if (limit < 1 || limit > 10000)
        return md_fail(err, MD_E_INVALID_PARAM, "limit", "limit must be in 1..10000");
    store_prediction *arr = calloc(limit, sizeof *arr);
    if (!arr)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    store__plog_sync(s); /* invariant 3 */
    store__lock(s);
    db_stmt *st = store__stmt(s, sql, err);
    int rc = st ? MD_OK : MD_E_IO, r = DB_DONE;
    if (st) {
        db_bind_text(st, 1, model);
        db_bind_int64(st, 2, from_ms);
        db_bind_int64(st, 3, to_ms);
        db_bind_int64(st, 4, (int64_t)limit);
        db_bind_int64(st, 5, (int64_t)offset);
    }
    while (rc == MD_OK && *n < limit && (r = db_step(st)) == DB_ROW)
        rc = read_row(st, &arr[(*n)++]);
    if (rc == MD_E_NOMEM)
        md_fail(err, MD_E_NOMEM, NULL, NULL);
    else if (rc == MD_OK && r != DB_DONE && r != DB_ROW)
        rc = store__sqlfail(s, "list predictions", err);
    store__done(st);
    store__unlock(s);
    if (rc != MD_OK) {
        store_predictions_free(arr, *n);
        *n = 0;
        return rc;
    }
    *out = arr;
    return MD_OK;
}

int store_predictions_list(store *s, const char *model, int64_t from_ms, int64_t to_ms,
                           size_t offset, size_t limit, store_prediction **out, size_t *n,
                           md_err *err)
{
    return list_rows(s, SQL_LIST, model, from_ms, to_ms, offset, limit, out, n, err);
}

int store_feedback_list(store *s, const char *model, size_t offset, size_t limit,
                        store_prediction **out, size_t *n, md_err *err)
{
    return list_rows(s, SQL_WITH_FEEDBACK, model, 0, 0, offset, limit, out, n, err);
}

int store_feedback_count(store *s, const char *model, int64_t *n, md_err *err)
{
    store__plog_sync(s); /* invariant 3 */
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_COUNT_FEEDBACK, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        db_bind_text(st, 1, model);
        if (db_step(st) == DB_ROW)
            *n = db_col_int64(st, 0);
        else
            rc = store__sqlfail(s, "count feedback", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

void store_predictions_free(store_prediction *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++) {
        free(p[i].inputs);
        free(p[i].outputs);
        free(p[i].actual);
    }
    free(p);
}

int store_feedback_put(store *s, const char *model, const char *prediction_id, const char *actual,
                       int64_t time_ms, md_err *err)
{
    if (strnlen(actual, STORE_PREDICTION_JSON_MAX + 1) > STORE_PREDICTION_JSON_MAX)
        return md_fail(err, MD_E_TOO_LARGE, "actual", "actual is too large");
    store__plog_sync(s); /* invariant 3: the prediction may still be queued */
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_HAS, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        db_bind_text(st, 1, prediction_id);
        db_bind_text(st, 2, model);
        int r = db_step(st);
        rc = r == DB_ROW    ? MD_OK
             : r == DB_DONE ? md_fail(err, MD_E_NOT_FOUND, "prediction_id",
                                          "no logged prediction of this model has that id")
                                : store__sqlfail(s, "find prediction", err);
        store__done(st);
    }
    st = rc == MD_OK ? store__stmt(s, SQL_FEEDBACK, err) : NULL;
    if (rc == MD_OK && !st)
        rc = MD_E_IO;
    if (st) {
        db_bind_text(st, 1, prediction_id);
        db_bind_text(st, 2, actual);
        db_bind_int64(st, 3, time_ms);
        rc = db_step(st) == DB_DONE ? MD_OK : store__sqlfail(s, "store feedback", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}
