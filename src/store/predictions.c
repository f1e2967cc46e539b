/* predictions.c - the predictions and feedback tables (migration 8): the sampled log of the
 * predict routes (id, model, version, inputs and outputs as JSON, time) that GET
 * /api/{model}/history pages through and GET /api/{model}/drift reads, and the outcomes that
 * POST /api/{model}/feedback records against a logged prediction.
 *
 * Invariants:
 *   1. Rows are appended, never updated; a feedback row exists only for a logged prediction of
 *      the same model (checked in the same locked section as the insert).
 *   2. A batch of predictions is one transaction: one commit for a whole /batch request.
 *   3. Write-behind: store_predictions_add keeps copies of the rows in s->pend (under the
 *      store lock) and writes them in one transaction once PEND_MAX rows wait or the oldest
 *      waited PEND_MAX_MS (checked at the next add); every reader of the tables here
 *      (store_predictions_list, store_feedback_put) and store_unref's close write them first,
 *      so the API always sees every accepted row. Why: one transaction per single prediction
 *      was about 40 % of its CPU (WAL writes, checkpoints); a crash may lose the rows still
 *      waiting, as synchronous=NORMAL may lose the last commits (and sampling skips rows).
 */
#include "store/store_int.h"

#include "base/clock.h"
#include "base/log.h"

#include <stdlib.h>
#include <string.h>

static const char SQL_ADD[] =
    "INSERT INTO predictions(id, model, version, inputs, outputs, time_ms) VALUES(?,?,?,?,?,?)";
static const char SQL_LIST[] =
    "SELECT p.id, p.model, p.version, p.inputs, p.outputs, p.time_ms, f.actual"
    " FROM predictions p LEFT JOIN feedback f ON f.prediction_id = p.id"
    " WHERE p.model = ?1 AND p.time_ms >= ?2 AND (?3 = 0 OR p.time_ms < ?3)"
    " ORDER BY p.time_ms DESC, p.id DESC LIMIT ?4 OFFSET ?5";
static const char SQL_HAS[] = "SELECT 1 FROM predictions WHERE id = ? AND model = ?";
static const char SQL_FEEDBACK[] =
    "INSERT OR REPLACE INTO feedback(prediction_id, actual, time_ms) VALUES(?,?,?)";

void store_prediction_id(char out[STORE_PREDICTION_ID_MAX])
{
    out[0] = 'p';
    out[1] = '_';
    store__random_hex(out + 2, 16);
}

static int add_one(store *s, sqlite3_stmt *st, const store_prediction *p, md_err *err)
{
    if (strnlen(p->inputs, STORE_PREDICTION_JSON_MAX + 1) > STORE_PREDICTION_JSON_MAX)
        return md_fail(err, MD_E_TOO_LARGE, "inputs", "inputs too large to log");
    if (strnlen(p->outputs, STORE_PREDICTION_JSON_MAX + 1) > STORE_PREDICTION_JSON_MAX)
        return md_fail(err, MD_E_TOO_LARGE, "outputs", "outputs too large to log");
    sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->version, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, p->inputs, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, p->outputs, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, p->time_ms);
    int rc = sqlite3_step(st) == SQLITE_DONE ? MD_OK : store__sqlfail(s, "log prediction", err);
    store__done(st);
    return rc;
}

#define PEND_MAX 256
#define PEND_MAX_MS 1000

static void free_rows(store_prediction *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].inputs);
        free(p[i].outputs);
    }
}

/* Invariant 3: write the waiting rows in one transaction (lock held). They are dropped either
 * way: a failure is the caller's to report. */
int store__predictions_flush(store *s, md_err *err)
{
    if (s->npend == 0)
        return MD_OK;
    int rc = store__exec(s, "BEGIN IMMEDIATE", "begin prediction log", err);
    sqlite3_stmt *st = rc == MD_OK ? store__stmt(s, SQL_ADD, err) : NULL;
    if (rc == MD_OK && !st)
        rc = MD_E_IO;
    for (size_t i = 0; rc == MD_OK && i < s->npend; i++)
        rc = add_one(s, st, &s->pend[i], err);
    if (rc == MD_OK)
        rc = store__exec(s, "COMMIT", "commit prediction log", err);
    if (rc != MD_OK && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    free_rows(s->pend, s->npend);
    s->npend = 0;
    return rc;
}

/* Room for n more waiting rows (lock held). */
static int pend_reserve(store *s, size_t n, md_err *err)
{
    if (s->cappend - s->npend >= n)
        return MD_OK;
    size_t cap = s->npend + n < PEND_MAX ? PEND_MAX : s->npend + n;
    store_prediction *p = realloc(s->pend, cap * sizeof *p);
    if (!p)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    s->pend = p;
    s->cappend = cap;
    return MD_OK;
}

int store_predictions_add(store *s, const store_prediction *p, size_t n, md_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (strnlen(p[i].inputs, STORE_PREDICTION_JSON_MAX + 1) > STORE_PREDICTION_JSON_MAX)
            return md_fail(err, MD_E_TOO_LARGE, "inputs", "inputs too large to log");
        if (strnlen(p[i].outputs, STORE_PREDICTION_JSON_MAX + 1) > STORE_PREDICTION_JSON_MAX)
            return md_fail(err, MD_E_TOO_LARGE, "outputs", "outputs too large to log");
    }
    if (n == 0)
        return MD_OK;
    int64_t now = (int64_t)(md_clock_now_ns(s->clock) / 1000000);
    store__lock(s);
    int rc = pend_reserve(s, n, err);
    for (size_t i = 0; rc == MD_OK && i < n; i++) {
        store_prediction *q = &s->pend[s->npend];
        *q = p[i];
        q->actual = NULL;
        q->inputs = strdup(p[i].inputs);
        q->outputs = strdup(p[i].outputs);
        if (!q->inputs || !q->outputs) {
            free_rows(q, 1);
            rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
            break;
        }
        if (s->npend++ == 0)
            s->pend_first_ms = now;
    }
    if (s->npend >= PEND_MAX || now - s->pend_first_ms >= PEND_MAX_MS)
        rc = store__predictions_flush(s, rc == MD_OK ? err : NULL) == MD_OK ? rc : MD_E_IO;
    store__unlock(s);
    return rc;
}

/* Before a read of the tables (lock held): the waiting rows written; a failure is logged (the
 * rows are lost, the read goes on). */
static void flush_for_read(store *s)
{
    md_err e = {0};
    size_t n = s->npend;
    if (store__predictions_flush(s, &e) != MD_OK)
        md_log(MD_LOG_WARN, "store: %zu logged predictions lost: %s", n, md_err_message(&e));
}

static char *col_dup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? strdup((const char *)t) : NULL;
}

/* One row into p; MD_E_NOMEM when a copy fails. */
static int read_row(sqlite3_stmt *st, store_prediction *p)
{
    memset(p, 0, sizeof *p);
    store__col_text(st, 0, p->id, sizeof p->id);
    store__col_text(st, 1, p->model, sizeof p->model);
    store__col_text(st, 2, p->version, sizeof p->version);
    p->inputs = col_dup(st, 3);
    p->outputs = col_dup(st, 4);
    p->time_ms = sqlite3_column_int64(st, 5);
    p->actual = col_dup(st, 6);
    int ok = p->inputs && p->outputs && (p->actual || sqlite3_column_type(st, 6) == SQLITE_NULL);
    return ok ? MD_OK : MD_E_NOMEM;
}

int store_predictions_list(store *s, const char *model, int64_t from_ms, int64_t to_ms,
                           size_t offset, size_t limit, store_prediction **out, size_t *n,
                           md_err *err)
{
    *out = NULL;
    *n = 0;
    if (limit < 1 || limit > 10000)
        return md_fail(err, MD_E_INVALID_PARAM, "limit", "limit must be in 1..10000");
    store_prediction *arr = calloc(limit, sizeof *arr);
    if (!arr)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    store__lock(s);
    flush_for_read(s);
    sqlite3_stmt *st = store__stmt(s, SQL_LIST, err);
    int rc = st ? MD_OK : MD_E_IO, r = SQLITE_DONE;
    if (st) {
        sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, from_ms);
        sqlite3_bind_int64(st, 3, to_ms);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)limit);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)offset);
    }
    while (rc == MD_OK && *n < limit && (r = sqlite3_step(st)) == SQLITE_ROW)
        rc = read_row(st, &arr[(*n)++]);
    if (rc == MD_E_NOMEM)
        md_fail(err, MD_E_NOMEM, NULL, NULL);
    else if (rc == MD_OK && r != SQLITE_DONE && r != SQLITE_ROW)
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
    store__lock(s);
    flush_for_read(s);
    sqlite3_stmt *st = store__stmt(s, SQL_HAS, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        sqlite3_bind_text(st, 1, prediction_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
        int r = sqlite3_step(st);
        rc = r == SQLITE_ROW    ? MD_OK
             : r == SQLITE_DONE ? md_fail(err, MD_E_NOT_FOUND, "prediction_id",
                                          "no logged prediction of this model has that id")
                                : store__sqlfail(s, "find prediction", err);
        store__done(st);
    }
    st = rc == MD_OK ? store__stmt(s, SQL_FEEDBACK, err) : NULL;
    if (rc == MD_OK && !st)
        rc = MD_E_IO;
    if (st) {
        sqlite3_bind_text(st, 1, prediction_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, actual, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, time_ms);
        rc = sqlite3_step(st) == SQLITE_DONE ? MD_OK : store__sqlfail(s, "store feedback", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}
