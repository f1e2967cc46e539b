/* schedules.c - the schedules table (migration 9, issue 11 §4): what the scheduler of src/jobs
 * fires, one row per schedule, with its next fire time and its last run.
 *
 * Invariants:
 *   1. next_run_ms changes only through store_schedule_claim, a compare-and-set on its old
 *      value: of any number of processes sharing the data dir (and of any number of ticks in
 *      one), exactly one claims a given (schedule, next_run_ms), so each fire is claimed once.
 *   2. The store does not interpret cron, model or input (src/jobs validates them).
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#define COLS                                                                                       \
    "id, owner, kind, model, cron, input, callback_url, last_run_ms, last_job_id, next_run_ms, "   \
    "created_ms"

static const char SQL_INSERT[] = "INSERT INTO schedules(" COLS ") VALUES(?,?,?,?,?,?,?,?,?,?,?)";
static const char SQL_GET[] = "SELECT " COLS " FROM schedules WHERE id = ?";
static const char SQL_LIST[] = "SELECT " COLS " FROM schedules ORDER BY created_ms, id";
static const char SQL_DUE[] =
    "SELECT " COLS " FROM schedules WHERE next_run_ms <= ? ORDER BY next_run_ms, id LIMIT ?";
static const char SQL_CLAIM[] = "UPDATE schedules SET next_run_ms = ?, last_run_ms = ? "
                                "WHERE id = ? AND next_run_ms = ?";
static const char SQL_SET_JOB[] = "UPDATE schedules SET last_job_id = ? WHERE id = ?";
static const char SQL_DELETE[] = "DELETE FROM schedules WHERE id = ?";

/* A store__row_fn: dst is a store_schedule. */
static void read_row(db_stmt *st, void *dst)
{
    store_schedule *s = dst;
    memset(s, 0, sizeof *s);
    store__col_text(st, 0, s->id, sizeof s->id);
    store__col_text(st, 1, s->owner, sizeof s->owner);
    store__col_text(st, 2, s->kind, sizeof s->kind);
    store__col_text(st, 3, s->model, sizeof s->model);
    store__col_text(st, 4, s->cron, sizeof s->cron);
    store__col_text(st, 5, s->input, sizeof s->input);
    store__col_text(st, 6, s->callback_url, sizeof s->callback_url);
    s->last_run_ms = db_col_int64(st, 7);
    store__col_text(st, 8, s->last_job_id, sizeof s->last_job_id);
    s->next_run_ms = db_col_int64(st, 9);
    s->created_ms = db_col_int64(st, 10);
}

static int check_text(const char *v, size_t cap, bool required, const char *field, md_err *err)
{
    size_t n = strnlen(v, cap);
    if (n == cap)
        return md_fail(err, MD_E_INVALID_PARAM, field, "longer than %zu bytes", cap - 1);
    if (required && n == 0)
        return md_fail(err, MD_E_MISSING_FIELD, field, "required");
    return MD_OK;
}

static int check_schedule(const store_schedule *s, md_err *err)
{
    int rc = check_text(s->owner, sizeof s->owner, false, "owner", err);
    if (rc == MD_OK)
        rc = check_text(s->kind, sizeof s->kind, true, "kind", err);
    if (rc == MD_OK)
        rc = check_text(s->model, sizeof s->model, true, "model", err);
    if (rc == MD_OK)
        rc = check_text(s->cron, sizeof s->cron, true, "cron", err);
    if (rc == MD_OK)
        rc = check_text(s->input, sizeof s->input, true, "input", err);
    if (rc == MD_OK)
        rc = check_text(s->callback_url, sizeof s->callback_url, false, "callback_url", err);
    return rc;
}

static void bind_row(db_stmt *st, const store_schedule *s)
{
    db_bind_text(st, 1, s->id);
    db_bind_text(st, 2, s->owner);
    db_bind_text(st, 3, s->kind);
    db_bind_text(st, 4, s->model);
    db_bind_text(st, 5, s->cron);
    db_bind_text(st, 6, s->input);
    db_bind_text(st, 7, s->callback_url);
    db_bind_int64(st, 8, s->last_run_ms);
    db_bind_text(st, 9, s->last_job_id);
    db_bind_int64(st, 10, s->next_run_ms);
    db_bind_int64(st, 11, s->created_ms);
}

int store_schedule_add(store *st, store_schedule *s, md_err *err)
{
    int rc = check_schedule(s, err);
    if (rc != MD_OK)
        return rc;
    memcpy(s->id, "s_", 3);
    store__random_hex(s->id + 2, 12);
    s->created_ms = md_clock_wall_ms(st->clock);
    store__lock(st);
    db_stmt *q = store__stmt(st, SQL_INSERT, err);
    rc = q ? MD_OK : MD_E_IO;
    if (q) {
        bind_row(q, s);
        if (db_step(q) != DB_DONE)
            rc = store__sqlfail(st, "insert schedule", err);
        store__done(q);
    }
    store__unlock(st);
    return rc;
}

int store_schedule_get(store *st, const char *id, store_schedule *out, md_err *err)
{
    return store__get_row(st, SQL_GET, id, read_row, out, "schedule_id", "no such schedule",
                          "get schedule", err);
}

int store_schedule_list(store *st, store_schedule **out, size_t *n, md_err *err)
{
    void *rows = NULL;
    int rc =
        store__list_rows(st, SQL_LIST, sizeof **out, read_row, "list schedules", &rows, n, err);
    *out = rows;
    return rc;
}

int store_schedule_due(store *st, int64_t now_ms, size_t max, store_schedule **out, size_t *n,
                       md_err *err)
{
    void *rows = NULL;
    int rc = store__list_due(st, SQL_DUE, now_ms, max, sizeof **out, read_row, "list due schedules",
                             &rows, n, err);
    *out = rows;
    return rc;
}

int store_schedule_claim(store *st, const char *id, int64_t expect_next_ms, int64_t new_next_ms,
                         int64_t run_ms, md_err *err)
{
    store__arg a[] = {STORE_I(new_next_ms), STORE_I(run_ms), STORE_S(id), STORE_I(expect_next_ms)};
    return store__write(st, SQL_CLAIM, a, 4, MD_E_CONFLICT, "schedule_id", "this run was already claimed",
                        "claim schedule", err);
}

int store_schedule_set_job(store *st, const char *id, const char *job_id, md_err *err)
{
    store__arg a[] = {STORE_S(job_id), STORE_S(id)};
    return store__write(st, SQL_SET_JOB, a, 2, MD_E_NOT_FOUND, "schedule_id", "no such schedule",
                        "set schedule job", err);
}

int store_schedule_delete(store *st, const char *id, md_err *err)
{
    store__arg a[] = {STORE_S(id)};
    return store__write(st, SQL_DELETE, a, 1, MD_E_NOT_FOUND, "schedule_id", "no such schedule",
                        "delete schedule", err);
}
