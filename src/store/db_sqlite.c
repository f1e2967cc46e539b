/* db_sqlite.c - the SQLite driver of db.h: the embedded default back end.
 *
 * One connection, opened NOMUTEX (the store's mutex serialises it), in WAL mode so readers in
 * other processes (and the `modeld keys` CLI) never block the server, synchronous=NORMAL (a
 * crash may lose the last transactions but never corrupts the database) and a busy timeout for
 * cross-process writers.
 *
 * Invariants:
 *   1. Statements are prepared once (SQLITE_PREPARE_PERSISTENT) and cached by the address of
 *      their SQL text (db.h invariant 1); the cache only grows, up to the fixed set of
 *      statements in the code.
 *   2. SQLITE_FULL, or an I/O error whose OS errno is ENOSPC/EDQUOT, is MD_E_STORAGE_FULL;
 *      every other failure is MD_E_IO.
 */
#include "store/db.h"

#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct lite_stmt {
    db_stmt base;
    const char *sql; /* borrowed, static: the cache key */
    sqlite3_stmt *st;
} lite_stmt;

typedef struct lite_conn {
    db_conn base;
    sqlite3 *db;
    lite_stmt **stmts; /* owned */
    int nstmts, capstmts;
} lite_conn;

#define LC(c) ((lite_conn *)(c))
#define LS(s) (((lite_stmt *)(s))->st)

static int errno_code(int e)
{
    return e == ENOSPC || e == EDQUOT ? MD_E_STORAGE_FULL : MD_E_IO;
}

/* Record the connection's last error (invariant 2). */
static int fail(lite_conn *c, const char *detail)
{
    int primary = sqlite3_errcode(c->db);
    c->base.errcode = primary == SQLITE_FULL    ? MD_E_STORAGE_FULL
                      : primary == SQLITE_IOERR ? errno_code(sqlite3_system_errno(c->db))
                                                : MD_E_IO;
    snprintf(c->base.errmsg, sizeof c->base.errmsg, "%s (sqlite %d)",
             detail ? detail : sqlite3_errmsg(c->db), sqlite3_extended_errcode(c->db));
    return c->base.errcode;
}

static db_stmt *l_prepare(db_conn *dc, const char *sql)
{
    lite_conn *c = LC(dc);
    for (int i = 0; i < c->nstmts; i++)
        if (c->stmts[i]->sql == sql)
            return &c->stmts[i]->base;
    if (c->nstmts == c->capstmts) {
        int cap = c->capstmts ? 2 * c->capstmts : 64;
        lite_stmt **g = realloc(c->stmts, (size_t)cap * sizeof *g);
        if (!g)
            return NULL;
        c->stmts = g;
        c->capstmts = cap;
    }
    lite_stmt *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st, NULL) != SQLITE_OK) {
        fail(c, NULL);
        free(s);
        return NULL;
    }
    s->base.c = dc;
    s->sql = sql;
    c->stmts[c->nstmts++] = s;
    return &s->base;
}

static int l_exec(db_conn *dc, const char *sql)
{
    lite_conn *c = LC(dc);
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return MD_OK;
    int rc = fail(c, msg);
    sqlite3_free(msg);
    return rc;
}

static void l_bind_int64(db_stmt *s, int i, int64_t v)
{
    sqlite3_bind_int64(LS(s), i, v);
}
static void l_bind_double(db_stmt *s, int i, double v)
{
    sqlite3_bind_double(LS(s), i, v);
}
static void l_bind_text(db_stmt *s, int i, const char *v, int n)
{
    if (v)
        sqlite3_bind_text(LS(s), i, v, n, SQLITE_STATIC);
    else
        sqlite3_bind_null(LS(s), i);
}
static void l_bind_blob(db_stmt *s, int i, const void *v, size_t n)
{
    sqlite3_bind_blob(LS(s), i, v, (int)n, SQLITE_STATIC);
}
static void l_bind_null(db_stmt *s, int i)
{
    sqlite3_bind_null(LS(s), i);
}
static int l_param_count(db_stmt *s)
{
    return sqlite3_bind_parameter_count(LS(s));
}

static int l_step(db_stmt *s)
{
    int r = sqlite3_step(LS(s));
    if (r == SQLITE_ROW)
        return DB_ROW;
    if (r == SQLITE_DONE)
        return DB_DONE;
    fail(LC(s->c), NULL);
    return (r & 0xff) == SQLITE_CONSTRAINT ? DB_CONSTRAINT : DB_ERROR;
}

static int64_t l_col_int64(db_stmt *s, int i)
{
    return sqlite3_column_int64(LS(s), i);
}
static double l_col_double(db_stmt *s, int i)
{
    return sqlite3_column_double(LS(s), i);
}
static const char *l_col_text(db_stmt *s, int i)
{
    return (const char *)sqlite3_column_text(LS(s), i);
}
static const void *l_col_blob(db_stmt *s, int i, size_t *n)
{
    const void *p = sqlite3_column_blob(LS(s), i);
    *n = (size_t)sqlite3_column_bytes(LS(s), i);
    return p;
}
static bool l_col_null(db_stmt *s, int i)
{
    return sqlite3_column_type(LS(s), i) == SQLITE_NULL;
}
static int64_t l_changes(db_stmt *s)
{
    return sqlite3_changes64(LC(s->c)->db);
}
static void l_reset(db_stmt *s)
{
    sqlite3_reset(LS(s));
    sqlite3_clear_bindings(LS(s));
}
static bool l_in_tx(db_conn *c)
{
    return !sqlite3_get_autocommit(LC(c)->db);
}
static bool l_broken(db_conn *c)
{
    (void)c;
    return false;
}

static void l_close(db_conn *dc)
{
    lite_conn *c = LC(dc);
    for (int i = 0; i < c->nstmts; i++) {
        sqlite3_finalize(c->stmts[i]->st);
        free(c->stmts[i]);
    }
    free(c->stmts);
    if (c->db && sqlite3_close(c->db) != SQLITE_OK)
        md_log(MD_LOG_ERROR, "store: close failed: %s", sqlite3_errmsg(c->db));
    free(c);
}

static const db_ops lite_ops = {
    .prepare = l_prepare,
    .exec = l_exec,
    .bind_int64 = l_bind_int64,
    .bind_double = l_bind_double,
    .bind_text = l_bind_text,
    .bind_blob = l_bind_blob,
    .bind_null = l_bind_null,
    .param_count = l_param_count,
    .step = l_step,
    .col_int64 = l_col_int64,
    .col_double = l_col_double,
    .col_text = l_col_text,
    .col_blob = l_col_blob,
    .col_null = l_col_null,
    .changes = l_changes,
    .reset = l_reset,
    .in_tx = l_in_tx,
    .broken = l_broken,
    .close = l_close,
};

int db_sqlite_open(const char *path, int busy_timeout_ms, db_conn **out, md_err *err)
{
    *out = NULL;
    lite_conn *c = calloc(1, sizeof *c);
    if (!c)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    c->base.ops = &lite_ops;
    c->base.kind = DB_SQLITE;
    /* The database holds key hashes and the audit log: create it 0600 ourselves (SQLite would
     * use 0644), and SQLite gives its -wal and -shm files the same mode. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(c->base.errmsg, sizeof c->base.errmsg, "cannot open %s: %s", path,
                 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        md_log(MD_LOG_ERROR, "store: %s", c->base.errmsg);
        md_fail(err, MD_E_IO, NULL, "cannot open the database");
        l_close(&c->base);
        return MD_E_IO;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, busy_timeout_ms > 0 ? busy_timeout_ms : 5000);
    rc = l_exec(&c->base, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          "PRAGMA foreign_keys=ON;");
    if (rc != MD_OK) {
        md_log(MD_LOG_ERROR, "store: pragmas failed: %s", c->base.errmsg);
        md_fail(err, rc, NULL,
                rc == MD_E_STORAGE_FULL ? "the server's storage is full" : "storage error");
        l_close(&c->base);
        return rc;
    }
    *out = &c->base;
    return MD_OK;
}
