/* db.h - the thin database layer under the store: one small interface, two drivers.
 *
 * The store (store.h) keeps ONE copy of its business SQL, in the per-table files. Under it this
 * layer runs that SQL on either back end:
 *
 *     store_*.c (SQL text, binds, row readers)
 *          |  db_prepare / db_bind_* / db_step / db_col_* / db_exec
 *          v
 *     db_conn ---- db_sqlite.c  (sqlite3; one connection, the store's mutex serialises it)
 *             \--- db_pg.c      (libpq; a pool of connections in store.c, one per lock holder)
 *
 * The SQL dialect is the common subset of SQLite 3.40 and PostgreSQL 15:
 *   - parameters are written ?N (or ?, numbered in order like SQLite does); the PostgreSQL
 *     driver rewrites each to $N when it prepares the statement (outside quoted text). Binding
 *     an index the statement does not use is a no-op on both;
 *   - parameters carry the type of their bind (int64 -> int8, double -> float8, text -> text,
 *     blob -> bytea); a NULL has no type, so SQL whose NULL parameter has no other typed use
 *     casts it (CAST(?2 AS TEXT));
 *   - no SQLite-only functions (scalar max(), GLOB, json_each) and no PostgreSQL-only ones
 *     (GREATEST) in common text: CASE, substr/length, ON CONFLICT ... DO UPDATE and RETURNING
 *     work in both;
 *   - where the dialects must differ (job claim with FOR UPDATE SKIP LOCKED, the data version
 *     probe, BEGIN IMMEDIATE vs BEGIN, DDL types) the two texts sit side by side in one
 *     db_sql2 value, picked by db_pick(), so nobody edits one and forgets the other.
 *   - DDL (migrations) is written once for SQLite; db_pg_ddl() rewrites it for PostgreSQL with
 *     four word substitutions (see migrate.c), or a migration gives its own PostgreSQL text.
 *
 * Invariants:
 *   1. A db_stmt belongs to one connection and is cached there by the ADDRESS of its static SQL
 *      text: db_prepare(c, sql) for the same pointer returns the same statement. SQL passed to
 *      db_prepare must therefore be a string with static storage.
 *   2. Binds (text and blob pointers are borrowed) stay valid until db_reset; db_reset is
 *      called after every use so no statement keeps a read open between store calls.
 *   3. Column getters read the current row (after db_step returned DB_ROW); their pointers are
 *      valid until the next db_step or db_reset.
 *   4. A failure of db_step/db_exec leaves its detail in db_errmsg(c) and its md code (MD_E_IO,
 *      MD_E_STORAGE_FULL, or MD_E_UNAVAILABLE for a lost PostgreSQL connection) in db_errcode(c).
 */
#ifndef MD_STORE_DB_H
#define MD_STORE_DB_H

#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct db_conn db_conn;
typedef struct db_stmt db_stmt;

typedef enum db_kind { DB_SQLITE, DB_PG } db_kind;

/* Results of db_step. */
enum { DB_DONE = 0, DB_ROW = 1, DB_ERROR = -1, DB_CONSTRAINT = -2 };

/* One statement in both dialects; db_pick chooses. */
typedef struct db_sql2 {
    const char *lite;
    const char *pg;
} db_sql2;

/* The driver's functions; every db_conn and db_stmt starts with what reaches them. */
typedef struct db_ops {
    db_stmt *(*prepare)(db_conn *c, const char *sql);
    int (*exec)(db_conn *c, const char *sql);
    void (*bind_int64)(db_stmt *st, int i, int64_t v);
    void (*bind_double)(db_stmt *st, int i, double v);
    void (*bind_text)(db_stmt *st, int i, const char *v, int n);
    void (*bind_blob)(db_stmt *st, int i, const void *v, size_t n);
    void (*bind_null)(db_stmt *st, int i);
    int (*param_count)(db_stmt *st);
    int (*step)(db_stmt *st);
    int64_t (*col_int64)(db_stmt *st, int i);
    double (*col_double)(db_stmt *st, int i);
    const char *(*col_text)(db_stmt *st, int i);
    const void *(*col_blob)(db_stmt *st, int i, size_t *n);
    bool (*col_null)(db_stmt *st, int i);
    int64_t (*changes)(db_stmt *st);
    void (*reset)(db_stmt *st);
    bool (*in_tx)(db_conn *c);
    bool (*broken)(db_conn *c);
    void (*close)(db_conn *c);
} db_ops;

struct db_conn {
    const db_ops *ops;
    db_kind kind;
    int errcode;         /* md code of the last failure (invariant 4) */
    unsigned reconnects; /* PostgreSQL: how many times the session was re-established */
    char errmsg[256];    /* its detail, for the log only */
};

struct db_stmt {
    db_conn *c;
};

/* Open <path> (created 0600 when missing) in WAL mode. *out is new (db_close). */
int db_sqlite_open(const char *path, int busy_timeout_ms, db_conn **out, md_err *err);
/* Connect to PostgreSQL with a libpq conninfo or postgres:// URI (borrowed). *out is new. A
 * connection that cannot be made gives MD_E_UNAVAILABLE. */
int db_pg_open(const char *conninfo, db_conn **out, md_err *err);
/* Re-establish a broken PostgreSQL connection (its prepared statements are re-prepared on next
 * use). MD_OK, or MD_E_UNAVAILABLE. */
int db_pg_reconnect(db_conn *c);
/* The PostgreSQL text of SQLite DDL (new, free()): INTEGER PRIMARY KEY AUTOINCREMENT ->
 * BIGSERIAL PRIMARY KEY, INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, BLOB -> BYTEA. */
char *db_pg_ddl(const char *sqlite_ddl);
/* The same ?N -> $N rewrite the driver applies; *nparams gets the highest N. New, free(). */
char *db_pg_params(const char *sql, int *nparams);

static inline void db_close(db_conn *c)
{
    if (c)
        c->ops->close(c);
}
static inline const char *db_pick(const db_conn *c, const db_sql2 *q)
{
    return c->kind == DB_PG ? q->pg : q->lite;
}
/* NULL on failure (detail in c). sql: static storage (invariant 1). */
static inline db_stmt *db_prepare(db_conn *c, const char *sql)
{
    return c->ops->prepare(c, sql);
}
/* Run SQL that returns no rows (one or more statements). MD_OK or the md code. */
static inline int db_exec(db_conn *c, const char *sql)
{
    return c->ops->exec(c, sql);
}
static inline void db_bind_int64(db_stmt *st, int i, int64_t v)
{
    st->c->ops->bind_int64(st, i, v);
}
static inline void db_bind_double(db_stmt *st, int i, double v)
{
    st->c->ops->bind_double(st, i, v);
}
/* v borrowed until db_reset; NULL binds NULL. */
static inline void db_bind_text(db_stmt *st, int i, const char *v)
{
    st->c->ops->bind_text(st, i, v, -1);
}
/* The first n bytes of v (n >= 0), for a truncated string. */
static inline void db_bind_textn(db_stmt *st, int i, const char *v, int n)
{
    st->c->ops->bind_text(st, i, v, n);
}
static inline void db_bind_blob(db_stmt *st, int i, const void *v, size_t n)
{
    st->c->ops->bind_blob(st, i, v, n);
}
static inline void db_bind_null(db_stmt *st, int i)
{
    st->c->ops->bind_null(st, i);
}
static inline int db_param_count(db_stmt *st)
{
    return st->c->ops->param_count(st);
}
/* DB_ROW, DB_DONE, DB_CONSTRAINT (a unique/primary key violation) or DB_ERROR. */
static inline int db_step(db_stmt *st)
{
    return st->c->ops->step(st);
}
static inline int64_t db_col_int64(db_stmt *st, int i)
{
    return st->c->ops->col_int64(st, i);
}
static inline int db_col_int(db_stmt *st, int i)
{
    return (int)st->c->ops->col_int64(st, i);
}
static inline double db_col_double(db_stmt *st, int i)
{
    return st->c->ops->col_double(st, i);
}
/* NULL for a NULL column. */
static inline const char *db_col_text(db_stmt *st, int i)
{
    return st->c->ops->col_text(st, i);
}
static inline const void *db_col_blob(db_stmt *st, int i, size_t *n)
{
    return st->c->ops->col_blob(st, i, n);
}
static inline bool db_col_null(db_stmt *st, int i)
{
    return st->c->ops->col_null(st, i);
}
/* Rows changed by the last completed write of st. */
static inline int64_t db_changes(db_stmt *st)
{
    return st->c->ops->changes(st);
}
/* Reset st and clear its bindings. NULL is a no-op. */
static inline void db_reset(db_stmt *st)
{
    if (st)
        st->c->ops->reset(st);
}
static inline bool db_in_tx(db_conn *c)
{
    return c->ops->in_tx(c);
}
/* True when the connection was lost (PostgreSQL); never for SQLite. */
static inline bool db_broken(db_conn *c)
{
    return c->ops->broken(c);
}
static inline int db_errcode(const db_conn *c)
{
    return c->errcode;
}
static inline const char *db_errmsg(const db_conn *c)
{
    return c->errmsg;
}

#endif
