/* callbacks.c - the callbacks table (migration 9, issue 11 §4): for each job that asked for a
 * callback, where to POST it, whether it was delivered, and when to try next. src/jobs
 * (callback.c) does the POSTs; this file only keeps the state, so a restart keeps retrying.
 *
 * Invariants:
 *   1. A try is claimed by compare-and-set on attempts (store_callback_claim), which also moves
 *      next_try_ms to the end of the try's lease: of several processes only one makes a given
 *      try, and a try whose process died is made again once its lease ran out.
 *   2. A callback becomes due only once its job is terminal (the due query joins jobs), so it
 *      may be recorded before or after the job finishes.
 *   3. DELIVERED and FAILED are final: claim and due only ever see PENDING rows.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const cb_states[] = {"pending", "delivered", "failed"};

#define COLS                                                                                       \
    "c.job_id, c.url, c.state, c.attempts, c.next_try_ms, c.last_error, c.created_ms, "            \
    "c.done_ms"

static const char SQL_INSERT[] = "INSERT INTO callbacks(job_id, url, created_ms) VALUES(?,?,?)";
static const char SQL_GET[] = "SELECT " COLS " FROM callbacks c WHERE c.job_id = ?";
static const char SQL_DUE[] =
    "SELECT " COLS " FROM callbacks c JOIN jobs j ON j.id = c.job_id "
    "WHERE c.state = 'pending' AND c.next_try_ms <= ? "
    "AND j.state IN ('SUCCESS', 'FAILURE', 'CANCELLED') ORDER BY c.next_try_ms, c.job_id LIMIT ?";
static const char SQL_CLAIM[] = "UPDATE callbacks SET attempts = attempts + 1, next_try_ms = ? "
                                "WHERE job_id = ? AND attempts = ? AND state = 'pending'";
static const char SQL_FINISH[] = "UPDATE callbacks SET state = ?, next_try_ms = ?, last_error = ?, "
                                 "done_ms = ? WHERE job_id = ?";

/* A store__row_fn: dst is a store_callback. */
static void read_row(db_stmt *st, void *dst)
{
    store_callback *c = dst;
    memset(c, 0, sizeof *c);
    store__col_text(st, 0, c->job_id, sizeof c->job_id);
    store__col_text(st, 1, c->url, sizeof c->url);
    const char *state = db_col_text(st, 2);
    for (int i = 0; state && i < 3; i++) {
        if (strcmp(state, cb_states[i]) == 0)
            c->state = i;
    }
    c->attempts = db_col_int(st, 3);
    c->next_try_ms = db_col_int64(st, 4);
    store__col_text(st, 5, c->last_error, sizeof c->last_error);
    c->created_ms = db_col_int64(st, 6);
    c->done_ms = db_col_int64(st, 7);
}

int store_callback_add(store *st, const char *job_id, const char *url, md_err *err)
{
    if (!job_id || !job_id[0] || strlen(job_id) >= STORE_JOB_ID_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, "job_id", "a job id is required");
    if (!url || !url[0] || strlen(url) >= STORE_SCHED_URL_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, "callback_url", "1..%d bytes",
                       STORE_SCHED_URL_MAX - 1);
    store__arg a[] = {STORE_S(job_id), STORE_S(url), STORE_I(md_clock_wall_ms(st->clock))};
    return store__write(st, SQL_INSERT, a, 3, MD_E_INTERNAL, "job_id", "not inserted", "insert callback", err);
}

int store_callback_get(store *st, const char *job_id, store_callback *out, md_err *err)
{
    return store__get_row(st, SQL_GET, job_id, read_row, out, "job_id", "the job has no callback",
                          "get callback", err);
}

int store_callback_due(store *st, int64_t now_ms, size_t max, store_callback **out, size_t *n,
                       md_err *err)
{
    void *rows = NULL;
    int rc = store__list_due(st, SQL_DUE, now_ms, max, sizeof **out, read_row, "list due callbacks",
                             &rows, n, err);
    *out = rows;
    return rc;
}

int store_callback_claim(store *st, const char *job_id, int expect_attempts, int64_t lease_until_ms,
                         md_err *err)
{
    store__arg a[] = {STORE_I(lease_until_ms), STORE_S(job_id), STORE_I(expect_attempts)};
    return store__write(st, SQL_CLAIM, a, 3, MD_E_CONFLICT, "job_id", "this try was already claimed",
                        "claim callback", err);
}

int store_callback_finish(store *st, const char *job_id, int state, int64_t next_try_ms,
                          const char *error, md_err *err)
{
    if (state < STORE_CB_PENDING || state > STORE_CB_FAILED)
        return md_fail(err, MD_E_INTERNAL, "state", "no such callback state");
    store__arg a[] = {STORE_S(cb_states[state]), STORE_I(next_try_ms), STORE_S(error ? error : ""),
                      STORE_I(state == STORE_CB_PENDING ? 0 : md_clock_wall_ms(st->clock)), STORE_S(job_id)};
    return store__write(st, SQL_FINISH, a, 5, MD_E_NOT_FOUND, "job_id", "the job has no callback",
                        "finish callback", err);
}
