/* jobs.c - the jobs and batches tables: the durable queue under src/jobs (issue 10).
 *
 * The state machine is drawn and checked in src/jobs/jobs.c; here each transition is one
 * compare-and-set statement, so that it holds across processes sharing the data dir (the
 * server's workers and `modeld worker` processes), with SQLite's write lock as the arbiter.
 *
 * Invariants:
 *   1. Every transition out of PROCESSING names the lease owner in its WHERE clause: a worker
 *      whose lease expired (and whose job another worker claimed) cannot finish it; its
 *      statement matches no row and answers MD_E_CONFLICT.
 *   2. A claim is one UPDATE ... WHERE id = (SELECT oldest QUEUED) ... RETURNING: it runs under
 *      the database's write lock, so two claimers never get the same job.
 *   3. Every statement that changes a row bumps seq, so a poller in another process sees each
 *      change by comparing one integer.
 *   4. A terminal row gets expires_ms (its deletion time: completion + result TTL) and
 *      input_expires_ms (when its input blob is released: creation + input TTL, not before
 *      completion); rows that are not terminal have expires_ms 0 and are never swept.
 *   5. A batch and its jobs are inserted in one transaction: no batch without its jobs.
 */
#include "store/store_int.h"

#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[STORE_JOB__NSTATES] = {"QUEUED", "PROCESSING", "SUCCESS",
                                                            "FAILURE", "CANCELLED"};

const char *store_job_state_name(int state)
{
    if (state < 0 || state >= STORE_JOB__NSTATES)
        return "UNKNOWN";
    return state_names[state];
}

int store_job_state_parse(const char *s)
{
    for (int i = 0; s && i < STORE_JOB__NSTATES; i++)
        if (strcmp(s, state_names[i]) == 0)
            return i;
    return -1;
}

#define JOB_COLS                                                                                   \
    "id, kind, owner, batch_id, params, input_sha256, input_bytes, input_name, state,"             \
    " progress, stage, attempts, max_attempts, lease_owner, lease_expires_ms,"                     \
    " cancel_requested, created_ms, started_ms, completed_ms, error_code, error_message,"          \
    " result_sha256, result_bytes, result_meta, input_ttl_ms, result_ttl_ms, expires_ms, seq"

/* The later of the input's own expiry and now (?N): when a finished job lets go of its input.
 * (A CASE, since scalar max() is SQLite's and GREATEST PostgreSQL's.) */
#define LATER(now)                                                                                 \
    "CASE WHEN created_ms + input_ttl_ms > " #now " THEN created_ms + input_ttl_ms ELSE " #now " END"

static const char SQL_INSERT[] =
    "INSERT INTO jobs(id, kind, owner, batch_id, params, input_sha256, input_bytes, input_name,"
    " state, max_attempts, created_ms, input_ttl_ms, result_ttl_ms)"
    " VALUES(?,?,?,?,?,?,?,?,'QUEUED',?,?,?,?)";
static const char SQL_INSERT_BATCH[] =
    "INSERT INTO batches(id, owner, kind, total, created_ms) VALUES(?,?,?,?,?)";
static const char SQL_ACTIVE[] = "SELECT count(*) FROM jobs WHERE state IN ('QUEUED','PROCESSING')";
static const char SQL_GET[] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?";
/* ?1 kinds as a JSON array, ?2 worker, ?3 now, ?4 lease expiry. SQLite: the claim runs under
 * the database's write lock. PostgreSQL: the oldest queued row is locked FOR UPDATE, and SKIP
 * LOCKED lets a concurrent claimer on another node take the next one instead of waiting for
 * (and then losing) this one (invariant 2). */
#define CLAIM_SET                                                                                  \
    "UPDATE jobs SET state = 'PROCESSING', lease_owner = ?2, lease_expires_ms = ?4,"               \
    " attempts = attempts + 1, started_ms = ?3, cancel_requested = 0, seq = seq + 1"
static const db_sql2 SQL_CLAIM = {
    .lite = CLAIM_SET " WHERE id = (SELECT id FROM jobs WHERE state = 'QUEUED'"
            "   AND kind IN (SELECT value FROM json_each(?1)) ORDER BY created_ms, rowid LIMIT 1)"
            " RETURNING " JOB_COLS,
    .pg = CLAIM_SET " WHERE id = (SELECT id FROM jobs WHERE state = 'QUEUED'"
          "   AND kind IN (SELECT jsonb_array_elements_text(CAST(?1 AS jsonb)))"
          "   ORDER BY created_ms, rowid LIMIT 1 FOR UPDATE SKIP LOCKED)"
          " RETURNING " JOB_COLS,
};
static const char SQL_RENEW[] =
    "UPDATE jobs SET lease_expires_ms = ?3,"
    " progress = CASE WHEN ?4 < 0 THEN progress ELSE ?4 END,"
    " stage = coalesce(?5, stage),"
    " seq = seq + (CASE WHEN (?4 >= 0 AND ?4 <> progress) OR (?5 IS NOT NULL AND ?5 <> stage)"
    "              THEN 1 ELSE 0 END)"
    " WHERE id = ?1 AND state = 'PROCESSING' AND lease_owner = ?2 RETURNING cancel_requested";
static const char SQL_SUCCEED[] =
    "UPDATE jobs SET state = 'SUCCESS', progress = 1, stage = 'done', lease_owner = '',"
    " lease_expires_ms = 0, completed_ms = ?3, result_sha256 = ?4, result_bytes = ?5,"
    " result_meta = ?6, expires_ms = ?3 + result_ttl_ms,"
    " input_expires_ms = " LATER(?3) ", seq = seq + 1"
    " WHERE id = ?1 AND state = 'PROCESSING' AND lease_owner = ?2";
/* ?3 now, ?4 target state, ?5 code, ?6 message, ?7 refund (0/1). A move back to QUEUED keeps
 * the row alive (expires_ms 0); a terminal one starts its retention. */
static const char SQL_FINISH[] =
    "UPDATE jobs SET state = ?4, lease_owner = '', lease_expires_ms = 0,"
    " error_code = ?5, error_message = ?6, attempts = attempts - ?7,"
    " stage = CASE WHEN ?4 = 'QUEUED' THEN 'queued' ELSE stage END,"
    " completed_ms = CASE WHEN ?4 = 'QUEUED' THEN 0 ELSE ?3 END,"
    " expires_ms = CASE WHEN ?4 = 'QUEUED' THEN 0 ELSE ?3 + result_ttl_ms END,"
    " input_expires_ms = " LATER(?3) ", seq = seq + 1"
    " WHERE id = ?1 AND state = 'PROCESSING' AND lease_owner = ?2";
static const char SQL_CANCEL_QUEUED[] =
    "UPDATE jobs SET state = 'CANCELLED', completed_ms = ?2, stage = 'cancelled',"
    " error_code = 'cancelled', error_message = 'cancelled by its owner',"
    " expires_ms = ?2 + result_ttl_ms, input_expires_ms = " LATER(?2) ","
    " seq = seq + 1 WHERE id = ?1 AND state = 'QUEUED'";
static const char SQL_CANCEL_RUNNING[] =
    "UPDATE jobs SET cancel_requested = 1, seq = seq + 1"
    " WHERE id = ?1 AND state = 'PROCESSING' AND cancel_requested = 0";
static const char SQL_STATE[] = "SELECT state FROM jobs WHERE id = ?";
/* ?1 now, ?2 owner prefix (NULL = none): leases run out, or held by a dead process. */
static const char SQL_EXPIRE_RETRY[] =
    "UPDATE jobs SET state = 'QUEUED', lease_owner = '', lease_expires_ms = 0, stage = 'queued',"
    " cancel_requested = 0, seq = seq + 1"
    " WHERE state = 'PROCESSING' AND (lease_expires_ms <= ?1 OR substr(lease_owner, 1, length(CAST(?2 AS TEXT))) = ?2)"
    " AND attempts < max_attempts";
static const char SQL_EXPIRE_FAIL[] =
    "UPDATE jobs SET state = 'FAILURE', lease_owner = '', lease_expires_ms = 0,"
    " error_code = 'internal_error',"
    " error_message = 'the worker running this job stopped ' || attempts || ' times',"
    " completed_ms = ?1, expires_ms = ?1 + result_ttl_ms,"
    " input_expires_ms = " LATER(?1) ", seq = seq + 1"
    " WHERE state = 'PROCESSING' AND (lease_expires_ms <= ?1 OR substr(lease_owner, 1, length(CAST(?2 AS TEXT))) = ?2)"
    " AND attempts >= max_attempts";
static const char SQL_OWNERS[] = "SELECT DISTINCT lease_owner FROM jobs WHERE state = 'PROCESSING'";
static const char SQL_LIST_BATCH[] =
    "SELECT " JOB_COLS " FROM jobs WHERE batch_id = ? ORDER BY created_ms, rowid";
static const char SQL_GET_BATCH[] =
    "SELECT id, owner, kind, total, created_ms FROM batches WHERE id = ?";
static const char SQL_COUNT[] =
    "SELECT state, count(*) FROM jobs WHERE CAST(?1 AS TEXT) IS NULL OR kind = ?1 GROUP BY state";
/* ?1 kind, ?2 owner, ?3 state (NULL = any), ?4 cursor (rowid, 0 = none), ?5 limit + 1. */
static const char SQL_LIST[] =
    "SELECT " JOB_COLS ", rowid FROM jobs WHERE (CAST(?1 AS TEXT) IS NULL OR kind = ?1)"
    " AND (CAST(?2 AS TEXT) IS NULL OR owner = ?2) AND (CAST(?3 AS TEXT) IS NULL OR state = ?3)"
    " AND (?4 = 0 OR rowid < ?4) ORDER BY rowid DESC LIMIT ?5";
static const char SQL_SEQ[] = "SELECT seq FROM jobs WHERE id = ?";
static const char SQL_DELETE[] =
    "DELETE FROM jobs WHERE id = ? AND state IN ('SUCCESS','FAILURE','CANCELLED')";

static void bind_text(db_stmt *st, int i, const char *v)
{
    db_bind_text(st, i, v ? v : "");
}

static void read_job(db_stmt *st, void *dst)
{
    store_job *j = dst;
    memset(j, 0, sizeof *j);
    store__col_text(st, 0, j->id, sizeof j->id);
    store__col_text(st, 1, j->kind, sizeof j->kind);
    store__col_text(st, 2, j->owner, sizeof j->owner);
    store__col_text(st, 3, j->batch_id, sizeof j->batch_id);
    store__col_text(st, 4, j->params, sizeof j->params);
    store__col_text(st, 5, j->input_sha256, sizeof j->input_sha256);
    j->input_bytes = db_col_int64(st, 6);
    store__col_text(st, 7, j->input_name, sizeof j->input_name);
    j->state = store_job_state_parse(db_col_text(st, 8));
    j->progress = db_col_double(st, 9);
    store__col_text(st, 10, j->stage, sizeof j->stage);
    j->attempts = db_col_int(st, 11);
    j->max_attempts = db_col_int(st, 12);
    store__col_text(st, 13, j->lease_owner, sizeof j->lease_owner);
    j->lease_expires_ms = db_col_int64(st, 14);
    j->cancel_requested = db_col_int(st, 15);
    j->created_ms = db_col_int64(st, 16);
    j->started_ms = db_col_int64(st, 17);
    j->completed_ms = db_col_int64(st, 18);
    store__col_text(st, 19, j->error_code, sizeof j->error_code);
    store__col_text(st, 20, j->error_message, sizeof j->error_message);
    store__col_text(st, 21, j->result_sha256, sizeof j->result_sha256);
    j->result_bytes = db_col_int64(st, 22);
    store__col_text(st, 23, j->result_meta, sizeof j->result_meta);
    j->input_ttl_ms = db_col_int64(st, 24);
    j->result_ttl_ms = db_col_int64(st, 25);
    j->expires_ms = db_col_int64(st, 26);
    j->seq = db_col_int64(st, 27);
}

/* One statement that changes at most one row; MD_E_CONFLICT when it matched none. Lock held. */
static int step_change(store *s, db_stmt *st, const char *what, md_err *err)
{
    int r = db_step(st);
    int rc = MD_OK;
    if (r != DB_DONE)
        rc = store__sqlfail(s, what, err);
    else if (db_changes(st) == 0)
        rc = md_fail(err, MD_E_CONFLICT, "job_id", "the job is not in a state that allows this");
    store__done(st);
    return rc;
}

static int check_job(const store_job *j, md_err *err)
{
    if (!j->kind[0])
        return md_fail(err, MD_E_MISSING_FIELD, "kind", "a job needs a kind");
    if (j->input_sha256[0] && !store__blob_valid_hex(j->input_sha256))
        return md_fail(err, MD_E_INVALID_PARAM, "input_sha256", "not a SHA-256 hex digest");
    if (j->max_attempts < 1 || j->input_ttl_ms <= 0 || j->result_ttl_ms <= 0)
        return md_fail(err, MD_E_INVALID_PARAM, "max_attempts",
                       "attempts and retention times must be positive");
    return MD_OK;
}

static int insert_batch(store *s, store_batch *b, size_t n, int64_t now, md_err *err)
{
    db_stmt *st = store__stmt(s, SQL_INSERT_BATCH, err);
    if (!st)
        return MD_E_IO;
    memcpy(b->id, "b_", 3);
    store__random_hex(b->id + 2, 12);
    b->total = (int)n;
    b->created_ms = now;
    bind_text(st, 1, b->id);
    bind_text(st, 2, b->owner);
    bind_text(st, 3, b->kind);
    db_bind_int64(st, 4, b->total);
    db_bind_int64(st, 5, now);
    return step_change(s, st, "insert batch", err);
}

static int insert_job(store *s, store_job *j, int64_t now, md_err *err)
{
    db_stmt *st = store__stmt(s, SQL_INSERT, err);
    if (!st)
        return MD_E_IO;
    memcpy(j->id, "j_", 3);
    store__random_hex(j->id + 2, 12);
    j->state = STORE_JOB_QUEUED;
    j->created_ms = now;
    j->seq = 1;
    bind_text(st, 1, j->id);
    bind_text(st, 2, j->kind);
    bind_text(st, 3, j->owner);
    bind_text(st, 4, j->batch_id);
    bind_text(st, 5, j->params[0] ? j->params : "{}");
    bind_text(st, 6, j->input_sha256);
    db_bind_int64(st, 7, j->input_bytes);
    bind_text(st, 8, j->input_name);
    db_bind_int64(st, 9, j->max_attempts);
    db_bind_int64(st, 10, now);
    db_bind_int64(st, 11, j->input_ttl_ms);
    db_bind_int64(st, 12, j->result_ttl_ms);
    return step_change(s, st, "insert job", err);
}

static int count_active(store *s, int64_t *n, md_err *err)
{
    db_stmt *st = store__stmt(s, SQL_ACTIVE, err);
    if (!st)
        return MD_E_IO;
    int rc = MD_OK;
    if (db_step(st) == DB_ROW)
        *n = db_col_int64(st, 0);
    else
        rc = store__sqlfail(s, "count active jobs", err);
    store__done(st);
    return rc;
}

static int insert_locked(store *s, store_job *jobs, size_t n, store_batch *batch, size_t max_queued,
                         md_err *err)
{
    int64_t now = md_clock_wall_ms(s->clock);
    int64_t active = 0;
    int rc = max_queued ? count_active(s, &active, err) : MD_OK;
    if (rc == MD_OK && max_queued && (size_t)active + n > max_queued)
        rc = md_fail(err, MD_E_OVERLOADED, NULL, "the job queue is full (%lld waiting or running)",
                     (long long)active);
    if (rc == MD_OK && batch)
        rc = insert_batch(s, batch, n, now, err);
    for (size_t i = 0; i < n && rc == MD_OK; i++) {
        if (batch)
            snprintf(jobs[i].batch_id, sizeof jobs[i].batch_id, "%s", batch->id);
        rc = insert_job(s, &jobs[i], now, err);
    }
    return rc;
}

int store_jobs_insert(store *s, store_job *jobs, size_t n, store_batch *batch, size_t max_queued,
                      md_err *err)
{
    if (n == 0)
        return md_fail(err, MD_E_MISSING_FIELD, "files", "no job to submit");
    for (size_t i = 0; i < n; i++) {
        int rc = check_job(&jobs[i], err);
        if (rc != MD_OK)
            return rc;
    }
    store__lock(s);
    int rc = store__begin(s, "begin job insert", err);
    if (rc == MD_OK) {
        rc = insert_locked(s, jobs, n, batch, max_queued, err);
        if (rc == MD_OK)
            rc = store__commit(s, "commit job insert", err);
        if (rc != MD_OK)
            store__rollback(s);
    }
    store__unlock(s);
    return rc;
}

/* Run a statement with the id bound at 1 that returns at most one job row. */
static int get_one(store *s, const char *sql, const char *id, store_job *out, md_err *err)
{
    if (!id || !id[0])
        return md_fail(err, MD_E_MISSING_FIELD, "job_id", "a job id is required");
    store__lock(s);
    db_stmt *st = store__stmt(s, sql, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        bind_text(st, 1, id);
        int r = db_step(st);
        if (r == DB_ROW)
            read_job(st, out);
        else if (r == DB_DONE)
            rc = md_fail(err, MD_E_NOT_FOUND, "job_id", "no such job");
        else
            rc = store__sqlfail(s, "get job", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

int store_jobs_get(store *s, const char *id, store_job *out, md_err *err)
{
    return get_one(s, SQL_GET, id, out, err);
}

/* kinds as a JSON array of strings; kind names are plain identifiers (checked). */
static int kinds_json(const char *const *kinds, size_t n, char *out, size_t cap, md_err *err)
{
    size_t len = 0;
    out[len++] = '[';
    for (size_t i = 0; i < n; i++) {
        if (strcspn(kinds[i], "\"\\") != strlen(kinds[i]) || len + strlen(kinds[i]) + 4 >= cap)
            return md_fail(err, MD_E_INVALID_PARAM, "kind", "bad or too many job kinds");
        len += (size_t)snprintf(out + len, cap - len, "%s\"%s\"", i ? "," : "", kinds[i]);
    }
    out[len++] = ']';
    out[len] = '\0';
    return MD_OK;
}

int store_jobs_claim(store *s, const char *const *kinds, size_t nkinds, const char *worker,
                     int64_t lease_ms, store_job *out, md_err *err)
{
    char kj[1024];
    int rc = kinds_json(kinds, nkinds, kj, sizeof kj, err);
    if (rc != MD_OK)
        return rc;
    store__lock(s);
    db_stmt *st = store__stmt2(s, &SQL_CLAIM, err);
    rc = st ? MD_OK : MD_E_IO;
    if (st) {
        int64_t now = md_clock_wall_ms(s->clock);
        bind_text(st, 1, kj);
        bind_text(st, 2, worker);
        db_bind_int64(st, 3, now);
        db_bind_int64(st, 4, now + lease_ms);
        int r = db_step(st);
        if (r == DB_ROW) {
            read_job(st, out);
            r = db_step(st); /* finish the statement so the UPDATE commits */
        } else if (r == DB_DONE) {
            rc = md_fail(err, MD_E_NOT_FOUND, "job_id", "no queued job");
        }
        if (r != DB_DONE)
            rc = store__sqlfail(s, "claim job", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

int store_jobs_renew(store *s, const char *id, const char *worker, int64_t lease_ms,
                     double progress, const char *stage, int *cancel_requested, md_err *err)
{
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_RENEW, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        bind_text(st, 1, id);
        bind_text(st, 2, worker);
        db_bind_int64(st, 3, md_clock_wall_ms(s->clock) + lease_ms);
        db_bind_double(st, 4, progress);
        if (stage)
            bind_text(st, 5, stage);
        int r = db_step(st);
        if (r == DB_ROW) {
            if (cancel_requested)
                *cancel_requested = db_col_int(st, 0);
            r = db_step(st);
        } else if (r == DB_DONE) {
            rc = md_fail(err, MD_E_CONFLICT, "job_id", "the lease on this job was lost");
        }
        if (r != DB_DONE)
            rc = store__sqlfail(s, "renew job lease", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

int store_jobs_succeed(store *s, const char *id, const char *worker, const char *result_hex,
                       int64_t result_bytes, const char *meta, md_err *err)
{
    if (result_hex && result_hex[0] && !store__blob_valid_hex(result_hex))
        return md_fail(err, MD_E_INVALID_PARAM, "result", "not a SHA-256 hex digest");
    if (meta && strnlen(meta, STORE_JOB_META_MAX) >= STORE_JOB_META_MAX)
        return md_fail(err, MD_E_TOO_LARGE, "result_meta", "result metadata too long");
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_SUCCEED, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        bind_text(st, 1, id);
        bind_text(st, 2, worker);
        db_bind_int64(st, 3, md_clock_wall_ms(s->clock));
        bind_text(st, 4, result_hex);
        db_bind_int64(st, 5, result_bytes);
        bind_text(st, 6, meta ? meta : "{}");
        rc = step_change(s, st, "finish job", err);
    }
    store__unlock(s);
    return rc;
}

int store_jobs_finish(store *s, const char *id, const char *worker, int to_state,
                      const char *error_code, const char *error_message, int refund, md_err *err)
{
    if (to_state != STORE_JOB_QUEUED && to_state != STORE_JOB_FAILURE &&
        to_state != STORE_JOB_CANCELLED)
        return md_fail(err, MD_E_INTERNAL, NULL, "bad job transition");
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_FINISH, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        bind_text(st, 1, id);
        bind_text(st, 2, worker);
        db_bind_int64(st, 3, md_clock_wall_ms(s->clock));
        bind_text(st, 4, store_job_state_name(to_state));
        bind_text(st, 5, error_code);
        bind_text(st, 6, error_message);
        db_bind_int64(st, 7, refund ? 1 : 0);
        rc = step_change(s, st, "finish job", err);
    }
    store__unlock(s);
    return rc;
}

static int read_state(store *s, const char *id, int *state, md_err *err)
{
    db_stmt *st = store__stmt(s, SQL_STATE, err);
    if (!st)
        return MD_E_IO;
    bind_text(st, 1, id);
    int r = db_step(st);
    int rc = MD_OK;
    if (r == DB_ROW)
        *state = store_job_state_parse(db_col_text(st, 0));
    else if (r == DB_DONE)
        rc = md_fail(err, MD_E_NOT_FOUND, "job_id", "no such job");
    else
        rc = store__sqlfail(s, "read job state", err);
    store__done(st);
    return rc;
}

/* Try the statement (id ?1, now ?2 when it has one); 1 when it changed the row. Lock held. */
static int try_change(store *s, const char *sql, const char *id, int *changed, md_err *err)
{
    db_stmt *st = store__stmt(s, sql, err);
    if (!st)
        return MD_E_IO;
    bind_text(st, 1, id);
    if (db_param_count(st) >= 2)
        db_bind_int64(st, 2, md_clock_wall_ms(s->clock));
    int rc = MD_OK;
    if (db_step(st) == DB_DONE)
        *changed = db_changes(st) > 0;
    else
        rc = store__sqlfail(s, "cancel job", err);
    store__done(st);
    return rc;
}

int store_jobs_cancel(store *s, const char *id, int *state_out, md_err *err)
{
    if (!id || !id[0])
        return md_fail(err, MD_E_MISSING_FIELD, "job_id", "a job id is required");
    int changed = 0;
    store__lock(s);
    int rc = try_change(s, SQL_CANCEL_QUEUED, id, &changed, err);
    if (rc == MD_OK && !changed)
        rc = try_change(s, SQL_CANCEL_RUNNING, id, &changed, err);
    if (rc == MD_OK)
        rc = read_state(s, id, state_out, err);
    store__unlock(s);
    return rc;
}

static int expire_one(store *s, const char *sql, int64_t now, const char *prefix, size_t *count,
                      md_err *err)
{
    db_stmt *st = store__stmt(s, sql, err);
    if (!st)
        return MD_E_IO;
    db_bind_int64(st, 1, now);
    if (prefix)
        db_bind_text(st, 2, prefix);
    int rc = MD_OK;
    if (db_step(st) == DB_DONE) {
        if (count)
            *count = (size_t)db_changes(st);
    } else {
        rc = store__sqlfail(s, "expire job leases", err);
    }
    store__done(st);
    return rc;
}

int store_jobs_expire(store *s, const char *owner_prefix, size_t *requeued, size_t *failed,
                      md_err *err)
{
    if (owner_prefix && (!owner_prefix[0] || strpbrk(owner_prefix, "*?[]") ||
                         strlen(owner_prefix) >= STORE_JOB_WORKER_MAX))
        return md_fail(err, MD_E_INVALID_PARAM, "owner_prefix", "bad worker prefix");
    store__lock(s);
    int64_t now = md_clock_wall_ms(s->clock);
    int rc = store__begin(s, "begin lease expiry", err);
    if (rc == MD_OK) {
        rc = expire_one(s, SQL_EXPIRE_FAIL, now, owner_prefix, failed, err);
        if (rc == MD_OK)
            rc = expire_one(s, SQL_EXPIRE_RETRY, now, owner_prefix, requeued, err);
        if (rc == MD_OK)
            rc = store__commit(s, "commit lease expiry", err);
        if (rc != MD_OK)
            store__rollback(s);
    }
    store__unlock(s);
    return rc;
}

static void read_owner(db_stmt *st, void *dst)
{
    store__col_text(st, 0, dst, STORE_JOB_WORKER_MAX);
}

int store_jobs_lease_owners(store *s, char (**out)[STORE_JOB_WORKER_MAX], size_t *n, md_err *err)
{
    void *arr = NULL;
    int rc = store__list_rows(s, SQL_OWNERS, STORE_JOB_WORKER_MAX, read_owner, "list leases", &arr,
                              n, err);
    *out = arr;
    return rc;
}

int store_jobs_list_batch(store *s, const char *batch_id, store_job **out, size_t *n,
                          md_err *err)
{
    *out = NULL;
    *n = 0;
    if (!batch_id || !batch_id[0])
        return md_fail(err, MD_E_MISSING_FIELD, "batch_id", "a batch id is required");
    void *arr = NULL;
    int rc = store__list_rows_p(s, SQL_LIST_BATCH, batch_id, sizeof(store_job), read_job,
                                "list batch jobs", &arr, n, err);
    *out = arr;
    return rc;
}

int store_batches_get(store *s, const char *id, store_batch *out, md_err *err)
{
    if (!id || !id[0])
        return md_fail(err, MD_E_MISSING_FIELD, "batch_id", "a batch id is required");
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_GET_BATCH, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        bind_text(st, 1, id);
        int r = db_step(st);
        if (r == DB_ROW) {
            memset(out, 0, sizeof *out);
            store__col_text(st, 0, out->id, sizeof out->id);
            store__col_text(st, 1, out->owner, sizeof out->owner);
            store__col_text(st, 2, out->kind, sizeof out->kind);
            out->total = db_col_int(st, 3);
            out->created_ms = db_col_int64(st, 4);
        } else if (r == DB_DONE) {
            rc = md_fail(err, MD_E_NOT_FOUND, "batch_id", "no such batch");
        } else {
            rc = store__sqlfail(s, "get batch", err);
        }
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

int store_jobs_count(store *s, const char *kind, int64_t counts[STORE_JOB__NSTATES], md_err *err)
{
    memset(counts, 0, sizeof(int64_t) * STORE_JOB__NSTATES);
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_COUNT, err);
    int rc = st ? MD_OK : MD_E_IO;
    int r = DB_DONE;
    if (st && kind)
        bind_text(st, 1, kind);
    while (rc == MD_OK && (r = db_step(st)) == DB_ROW) {
        int state = store_job_state_parse(db_col_text(st, 0));
        if (state >= 0)
            counts[state] = db_col_int64(st, 1);
    }
    if (rc == MD_OK && r != DB_DONE)
        rc = store__sqlfail(s, "count jobs", err);
    store__done(st);
    store__unlock(s);
    return rc;
}

int store_jobs_seqs(store *s, const char *const *ids, size_t n, int64_t *seqs, md_err *err)
{
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_SEQ, err);
    int rc = st ? MD_OK : MD_E_IO;
    for (size_t i = 0; i < n && rc == MD_OK; i++) {
        bind_text(st, 1, ids[i]);
        int r = db_step(st);
        seqs[i] = r == DB_ROW ? db_col_int64(st, 0) : 0;
        if (r != DB_ROW && r != DB_DONE)
            rc = store__sqlfail(s, "poll job changes", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

int store_jobs_delete(store *s, const char *id, md_err *err)
{
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_DELETE, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        bind_text(st, 1, id);
        rc = step_change(s, st, "delete job", err);
    }
    store__unlock(s);
    return rc;
}

static int list_bind(db_stmt *st, const store_job_filter *f, size_t limit)
{
    if (f->kind)
        bind_text(st, 1, f->kind);
    if (f->owner)
        bind_text(st, 2, f->owner);
    if (f->state >= 0)
        bind_text(st, 3, store_job_state_name(f->state));
    db_bind_int64(st, 4, f->before);
    db_bind_int64(st, 5, (int64_t)limit + 1);
    return MD_OK;
}

/* Rows of the list statement into *out (at most limit; *more when there was one beyond). */
static int list_rows(store *s, db_stmt *st, size_t limit, store_job **out, size_t *n,
                     int64_t *last_rowid, int *more, md_err *err)
{
    store_job *arr = calloc(limit, sizeof *arr);
    if (!arr)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int r = DB_DONE;
    *more = 0;
    while ((r = db_step(st)) == DB_ROW) {
        if (*n == limit) {
            *more = 1;
            break;
        }
        read_job(st, &arr[*n]);
        *last_rowid = db_col_int64(st, 28);
        (*n)++;
    }
    if (r != DB_ROW && r != DB_DONE) {
        free(arr);
        *n = 0;
        return store__sqlfail(s, "list jobs", err);
    }
    *out = arr;
    return MD_OK;
}

int store_jobs_list(store *s, const store_job_filter *f, store_job **out, size_t *n,
                    int64_t *next_cursor, md_err *err)
{
    *out = NULL;
    *n = 0;
    if (next_cursor)
        *next_cursor = 0;
    size_t limit = f->limit ? f->limit : 50;
    if (limit > 1000)
        return md_fail(err, MD_E_INVALID_PARAM, "limit", "limit must be in 1..1000");
    if (f->state < -1 || f->state >= STORE_JOB__NSTATES || f->before < 0)
        return md_fail(err, MD_E_INVALID_PARAM, f->before < 0 ? "before" : "state",
                       "bad job filter");
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_LIST, err);
    int rc = st ? list_bind(st, f, limit) : MD_E_IO;
    int64_t last = 0;
    int more = 0;
    if (rc == MD_OK)
        rc = list_rows(s, st, limit, out, n, &last, &more, err);
    store__done(st);
    store__unlock(s);
    if (rc == MD_OK && *n == 0) {
        free(*out);
        *out = NULL;
    }
    if (rc == MD_OK && more && next_cursor)
        *next_cursor = last;
    return rc;
}
