/* migrate.c - the numbered schema migrations of the store, for both back ends.
 *
 * Each migration is written once, in SQLite's DDL; its PostgreSQL text is that DDL through
 * db_pg_ddl() (INTEGER PRIMARY KEY AUTOINCREMENT -> BIGSERIAL PRIMARY KEY, INTEGER -> BIGINT,
 * REAL -> DOUBLE PRECISION, BLOB -> BYTEA: SQLite's INTEGER is 64-bit, PostgreSQL's is not),
 * plus, where PostgreSQL needs more, its statements in pg_after (the jobs table's rowid, which
 * SQLite gives every table). Same numbers, same names on both.
 *
 * Invariants:
 *   1. Migrations are append-only: a released migration is never edited; a change to the
 *      schema is a new row at the end of the table below with the next version number.
 *   2. All pending migrations run in one transaction together with their schema_version rows,
 *      so a database is always exactly at some version, never between two. Two processes
 *      opening the same database at once cannot both apply a migration: SQLite's BEGIN
 *      IMMEDIATE takes the write lock first; on PostgreSQL the transaction first takes
 *      pg_advisory_xact_lock(MIGRATE_LOCK), and the second node reads the version after the
 *      first committed.
 *   3. A database at a version newer than this build knows is refused, not downgraded.
 *
 * To add a table: append {N+1, "name", "CREATE TABLE ..."} below, add src/store/<name>.c,
 * and list the table in sweep.c if its rows reference blobs and expire (as results do).
 */
#include "store/store_int.h"

#include "base/log.h"

#include <stdlib.h>

/* The advisory lock key of migrations on PostgreSQL ("modeld" in ASCII). */
#define MIGRATE_LOCK "109111100101108100"

typedef struct migration {
    int version;
    const char *name;
    const char *sql;      /* SQLite DDL; PostgreSQL runs db_pg_ddl(sql) */
    const char *pg_after; /* NULL, or PostgreSQL statements run after that */
} migration;

static const migration migrations[] = {
    {1, "api_keys",
     "CREATE TABLE api_keys ("
     "  id TEXT PRIMARY KEY,"
     "  name TEXT NOT NULL,"
     "  role INTEGER NOT NULL,"
     "  hash BLOB NOT NULL,"
     "  created_ms INTEGER NOT NULL,"
     "  revoked_ms INTEGER NOT NULL DEFAULT 0);", NULL},
    {2, "audit_log",
     "CREATE TABLE audit_log ("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  time_ms INTEGER NOT NULL,"
     "  who TEXT NOT NULL,"
     "  method TEXT NOT NULL,"
     "  route TEXT NOT NULL,"
     "  status INTEGER NOT NULL,"
     "  request_id TEXT NOT NULL);", NULL},
    {3, "uploads",
     "CREATE TABLE uploads ("
     "  file_id TEXT PRIMARY KEY,"
     "  sha256 TEXT NOT NULL,"
     "  filename TEXT NOT NULL,"
     "  format TEXT NOT NULL,"
     "  width INTEGER NOT NULL,"
     "  height INTEGER NOT NULL,"
     "  size INTEGER NOT NULL,"
     "  created_ms INTEGER NOT NULL,"
     "  last_used_ms INTEGER NOT NULL,"
     "  expires_ms INTEGER NOT NULL);"
     "CREATE INDEX uploads_expires ON uploads(expires_ms);"
     "CREATE INDEX uploads_sha256 ON uploads(sha256);", NULL},
    {4, "results",
     "CREATE TABLE results ("
     "  result_id TEXT PRIMARY KEY,"
     "  file_id TEXT NOT NULL,"
     "  svg_sha256 TEXT NOT NULL,"
     "  svg_bytes INTEGER NOT NULL,"
     "  meta TEXT NOT NULL,"
     "  created_ms INTEGER NOT NULL,"
     "  expires_ms INTEGER NOT NULL);"
     "CREATE INDEX results_expires ON results(expires_ms);"
     "CREATE INDEX results_sha256 ON results(svg_sha256);", NULL},
    {5, "models",
     "CREATE TABLE models ("
     "  name TEXT PRIMARY KEY,"
     "  active_version TEXT NOT NULL,"
     "  canary_version TEXT NOT NULL,"
     "  canary_percent REAL NOT NULL,"
     "  updated_ms INTEGER NOT NULL);", NULL},
    /* The version that was active before the current one, so that a registry with nothing
     * loaded (the CLI, a server after a restart) can still roll back. Rows of schema 5 keep
     * their values and get '' (nothing to roll back to). */
    {6, "models_previous_version",
     "ALTER TABLE models ADD COLUMN previous_version TEXT NOT NULL DEFAULT '';", NULL},
    /* The durable job queue of src/jobs (issue 10): one row per job, leases and progress in
     * the row; batches group jobs submitted together. States are the API's names. */
    {7, "jobs",
     "CREATE TABLE batches ("
     "  id TEXT PRIMARY KEY,"
     "  owner TEXT NOT NULL,"
     "  kind TEXT NOT NULL,"
     "  total INTEGER NOT NULL,"
     "  created_ms INTEGER NOT NULL);"
     "CREATE TABLE jobs ("
     "  id TEXT PRIMARY KEY,"
     "  kind TEXT NOT NULL,"
     "  owner TEXT NOT NULL,"
     "  batch_id TEXT NOT NULL DEFAULT '',"
     "  params TEXT NOT NULL,"
     "  input_sha256 TEXT NOT NULL DEFAULT '',"
     "  input_bytes INTEGER NOT NULL DEFAULT 0,"
     "  input_name TEXT NOT NULL DEFAULT '',"
     "  state TEXT NOT NULL,"
     "  progress REAL NOT NULL DEFAULT 0,"
     "  stage TEXT NOT NULL DEFAULT '',"
     "  attempts INTEGER NOT NULL DEFAULT 0,"
     "  max_attempts INTEGER NOT NULL,"
     "  lease_owner TEXT NOT NULL DEFAULT '',"
     "  lease_expires_ms INTEGER NOT NULL DEFAULT 0,"
     "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
     "  created_ms INTEGER NOT NULL,"
     "  started_ms INTEGER NOT NULL DEFAULT 0,"
     "  completed_ms INTEGER NOT NULL DEFAULT 0,"
     "  error_code TEXT NOT NULL DEFAULT '',"
     "  error_message TEXT NOT NULL DEFAULT '',"
     "  result_sha256 TEXT NOT NULL DEFAULT '',"
     "  result_bytes INTEGER NOT NULL DEFAULT 0,"
     "  result_meta TEXT NOT NULL DEFAULT '{}',"
     "  input_ttl_ms INTEGER NOT NULL,"
     "  result_ttl_ms INTEGER NOT NULL,"
     "  input_expires_ms INTEGER NOT NULL DEFAULT 0,"
     "  expires_ms INTEGER NOT NULL DEFAULT 0,"
     "  seq INTEGER NOT NULL DEFAULT 1);"
     "CREATE INDEX jobs_claim ON jobs(state, created_ms);"
     "CREATE INDEX jobs_batch ON jobs(batch_id);"
     "CREATE INDEX jobs_input ON jobs(input_sha256);"
     "CREATE INDEX jobs_result ON jobs(result_sha256);"
     "CREATE INDEX jobs_expires ON jobs(expires_ms);",
     /* SQLite's implicit rowid orders jobs created in the same millisecond and is the list
      * cursor; PostgreSQL gets it as a column, and the claim index ends with it (SQLite's
      * indexes end with the rowid anyway) so that the claim's ORDER BY created_ms, rowid
      * LIMIT 1 reads one index entry instead of sorting every job of the oldest millisecond:
      * bench/store_claim.sh, 1.8 ms -> 0.15 ms per claim. */
     "ALTER TABLE jobs ADD COLUMN rowid BIGSERIAL;"
     "CREATE UNIQUE INDEX jobs_rowid ON jobs(rowid);"
     "DROP INDEX jobs_claim; CREATE INDEX jobs_claim ON jobs(state, created_ms, rowid);"},
    /* The prediction log of the predict routes (issue 11 §4, history and drift): a sampled row
     * per prediction with its inputs and outputs as JSON, and the outcomes fed back later. */
    {8, "predictions",
     "CREATE TABLE predictions ("
     "  id TEXT PRIMARY KEY,"
     "  model TEXT NOT NULL,"
     "  version TEXT NOT NULL,"
     "  inputs TEXT NOT NULL,"
     "  outputs TEXT NOT NULL,"
     "  time_ms INTEGER NOT NULL);"
     "CREATE INDEX predictions_model_time ON predictions(model, time_ms);"
     "CREATE TABLE feedback ("
     "  prediction_id TEXT PRIMARY KEY,"
     "  actual TEXT NOT NULL,"
     "  time_ms INTEGER NOT NULL);", NULL},
    /* Schedules of issue 11 §4 (version 8 is the predictions log of the same issue): one row
     * per schedule; next_run_ms is what the scheduler claims by compare-and-set. */
    {9, "schedules_callbacks",
     "CREATE TABLE schedules ("
     "  id TEXT PRIMARY KEY,"
     "  owner TEXT NOT NULL,"
     "  kind TEXT NOT NULL,"
     "  model TEXT NOT NULL,"
     "  cron TEXT NOT NULL,"
     "  input TEXT NOT NULL,"
     "  callback_url TEXT NOT NULL DEFAULT '',"
     "  last_run_ms INTEGER NOT NULL DEFAULT 0,"
     "  last_job_id TEXT NOT NULL DEFAULT '',"
     "  next_run_ms INTEGER NOT NULL,"
     "  created_ms INTEGER NOT NULL);"
     "CREATE INDEX schedules_due ON schedules(next_run_ms);"
     /* Callbacks of finished jobs (issue 11 §4): one row per job that asked for one, the
      * delivery state and the retry clock, so a restart keeps retrying. */
     "CREATE TABLE callbacks ("
     "  job_id TEXT PRIMARY KEY,"
     "  url TEXT NOT NULL,"
     "  state TEXT NOT NULL DEFAULT 'pending',"
     "  attempts INTEGER NOT NULL DEFAULT 0,"
     "  next_try_ms INTEGER NOT NULL DEFAULT 0,"
     "  last_error TEXT NOT NULL DEFAULT '',"
     "  created_ms INTEGER NOT NULL,"
     "  done_ms INTEGER NOT NULL DEFAULT 0);"
     "CREATE INDEX callbacks_due ON callbacks(state, next_try_ms);", NULL},
    /* Stored datasets (issue 11 §4, retraining and schedules): a CSV or JSON-lines blob kept
     * until deleted (never swept by the upload TTL), with its header and row count. Written
     * portably (TEXT / BIGINT, no AUTOINCREMENT) for the PostgreSQL back end to port. */
    {10, "datasets",
     "CREATE TABLE datasets ("
     "  id TEXT PRIMARY KEY,"
     "  owner TEXT NOT NULL,"
     "  name TEXT NOT NULL,"
     "  format TEXT NOT NULL,"
     "  rows_count BIGINT NOT NULL,"
     "  columns TEXT NOT NULL,"
     "  size BIGINT NOT NULL,"
     "  sha256 TEXT NOT NULL,"
     "  created_ms BIGINT NOT NULL);"
     "CREATE INDEX datasets_created ON datasets(created_ms);"
     "CREATE INDEX datasets_sha256 ON datasets(sha256);", NULL},
    /* Refresh tokens (issue 13): one row per token ever issued, keyed by the BLAKE2b-256 of
     * the token (the token itself is never stored), bound to its API key and to the family of
     * tokens rotated from one POST /api/auth/token. used_ms / revoked_ms 0 = not yet. Version
     * 11 belongs to another branch; versions are applied by number, so either order merges. */
    {11, "refresh_tokens",
     "CREATE TABLE refresh_tokens ("
     "  hash BLOB PRIMARY KEY,"
     "  family TEXT NOT NULL,"
     "  key_id TEXT NOT NULL,"
     "  created_ms BIGINT NOT NULL,"
     "  expires_ms BIGINT NOT NULL,"
     "  used_ms BIGINT NOT NULL DEFAULT 0,"
     "  revoked_ms BIGINT NOT NULL DEFAULT 0);"
     "CREATE INDEX refresh_tokens_family ON refresh_tokens(family);"
     "CREATE INDEX refresh_tokens_key ON refresh_tokens(key_id);", NULL},
    /* Tracing (issue 13): the W3C traceparent of the request that submitted a job, so the
     * worker's "queue wait" and "job run" spans join the submitter's trace ("" = none). */
    {12, "job traceparent", "ALTER TABLE jobs ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';", NULL},
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int store_schema_latest(void) { return migrations[N_MIGRATIONS - 1].version; }

static int current_version(store *s, int *out, md_err *err)
{
    static const char sql[] = "SELECT coalesce(max(version), 0) FROM schema_version";
    db_stmt *st = store__stmt(s, sql, err);
    if (!st)
        return MD_E_IO;
    int rc = MD_OK;
    if (db_step(st) == DB_ROW)
        *out = db_col_int(st, 0);
    else
        rc = store__sqlfail(s, "read schema version", err);
    store__done(st);
    return rc;
}

/* The DDL of m for this connection's back end. */
static int run_ddl(store *s, const migration *m, md_err *err)
{
    db_conn *c = store__db(s);
    if (c->kind == DB_SQLITE)
        return store__exec(s, m->sql, m->name, err);
    char *pg = db_pg_ddl(m->sql);
    if (!pg)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = store__exec(s, pg, m->name, err);
    free(pg);
    if (rc == MD_OK && m->pg_after)
        rc = store__exec(s, m->pg_after, m->name, err);
    return rc;
}

static int apply_one(store *s, const migration *m, md_err *err)
{
    static const char sql[] =
        "INSERT INTO schema_version(version, name, applied_ms) VALUES(?1, ?2, ?3)";
    int rc = run_ddl(s, m, err);
    if (rc != MD_OK)
        return rc;
    db_stmt *st = store__stmt(s, sql, err);
    if (!st)
        return MD_E_IO;
    db_bind_int64(st, 1, m->version);
    db_bind_text(st, 2, m->name);
    db_bind_int64(st, 3, md_clock_wall_ms(s->clock));
    if (db_step(st) != DB_DONE)
        rc = store__sqlfail(s, "record migration", err);
    store__done(st);
    if (rc == MD_OK)
        md_log(MD_LOG_INFO, "store: applied migration %d (%s)", m->version, m->name);
    return rc;
}

static int migrate_locked(store *s, int target, md_err *err)
{
    int cur = 0;
    int rc = current_version(s, &cur, err);
    if (rc != MD_OK)
        return rc;
    if (cur > store_schema_latest()) {
        md_log(MD_LOG_ERROR, "store: database schema %d is newer than this build (%d)", cur,
               store_schema_latest());
        return md_fail(err, MD_E_IO, NULL, "the database was written by a newer modeld");
    }
    for (int i = 0; i < N_MIGRATIONS && rc == MD_OK; i++)
        if (migrations[i].version > cur && migrations[i].version <= target)
            rc = apply_one(s, &migrations[i], err);
    return rc;
}

int store__migrate(store *s, int target, md_err *err)
{
    static const db_sql2 lock = {
        .lite = "SELECT 1", /* BEGIN IMMEDIATE took the write lock */
        .pg = "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")",
    };
    static const db_sql2 create = {
        .lite = "CREATE TABLE IF NOT EXISTS schema_version ("
                "  version INTEGER PRIMARY KEY,"
                "  name TEXT NOT NULL,"
                "  applied_ms INTEGER NOT NULL)",
        .pg = "CREATE TABLE IF NOT EXISTS schema_version ("
              "  version BIGINT PRIMARY KEY,"
              "  name TEXT NOT NULL,"
              "  applied_ms BIGINT NOT NULL)",
    };
    if (target <= 0)
        target = store_schema_latest();
    int rc = store__begin(s, "begin migration", err);
    if (rc != MD_OK)
        return rc;
    db_conn *c = store__db(s);
    rc = store__exec(s, db_pick(c, &lock), "lock migrations", err);
    if (rc == MD_OK)
        rc = store__exec(s, db_pick(c, &create), "create schema_version", err);
    if (rc == MD_OK)
        rc = migrate_locked(s, target, err);
    if (rc == MD_OK)
        rc = store__commit(s, "commit migration", err);
    if (rc != MD_OK)
        store__rollback(s);
    return rc;
}
