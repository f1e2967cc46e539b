/* store_int.h - internals shared by the files of the store (store.h): the store handle, the
 * connection it lends to each call, and the statement helpers over the database layer (db.h).
 * Nothing outside src/store/ includes this header; <sqlite3.h> and <libpq-fe.h> are seen only by
 * the two drivers, db_sqlite.c and db_pg.c.
 *
 * Back ends: store_opts.url picks SQLite (default: <data_dir>/modeld.db, one connection) or
 * PostgreSQL (a pool of pool_size connections). Every table file is written once against db.h;
 * see db.h for the SQL dialect both accept.
 *
 * Invariants:
 *   1. A connection is used only between store__lock and store__unlock, by the thread that
 *      locked: SQLite's one connection under s->mu (opened NOMUTEX, so SQLite does not lock a
 *      second time); a PostgreSQL connection checked out of the pool for the call.
 *      store__db(s) is that connection. Store calls never nest a second store__lock.
 *   2. Cached statements are reset and unbound by store__done before the unlock, so no
 *      statement keeps a read transaction open between calls.
 *   3. Every database failure is logged once with its detail by store__sqlfail and surfaces to
 *      callers as MD_E_IO with a generic message, MD_E_STORAGE_FULL when the disk (or the
 *      quota) is full: SQLITE_FULL, PostgreSQL's disk_full, or an OS error ENOSPC / EDQUOT from
 *      SQLite or from a blob write, fsync, mkdir or rename (store__errno_code), so that clients
 *      get 507 + Retry-After for a condition that passes, and operators a distinct error; or
 *      MD_E_UNAVAILABLE (503 + Retry-After) when the PostgreSQL server cannot be reached.
 *   4. A connection goes back to the pool outside any transaction: store__unlock rolls back
 *      one that a failed path left open.
 *   5. Blob puts and the sweeper's unlink are ordered by s->blob_mu (taken inside the store
 *      lock), not by the store lock, since PostgreSQL calls run in parallel.
 */
#ifndef MD_STORE_STORE_INT_H
#define MD_STORE_STORE_INT_H

#include "store/db.h"
#include "store/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct store {
    pthread_mutex_t mu;              /* SQLite: the connection; PostgreSQL: the pool's state */
    pthread_cond_t cv;               /* PostgreSQL: a pooled connection came back */
    pthread_mutex_t blob_mu;         /* invariant 5 */
    db_kind kind;
    db_conn **pool;                  /* owned: npool connections (1 for SQLite) */
    bool *busy;                      /* owned: pool[i] is lent out */
    unsigned *gen;                   /* owned: pool generation pool[i] was last checked at */
    unsigned pool_gen;               /* bumped when a lent connection came back broken or
                                      * reconnected: the server may have restarted */
    unsigned *seen;                  /* owned: pool[i]->reconnects when it was lent */
    int npool;
    char *data_dir;                  /* owned */
    char *blob_dir;                  /* owned: <data_dir>/blobs or store_opts.blob_dir */
    const md_clock *clock;           /* borrowed */
    int64_t upload_ttl_ms;
    int64_t blob_grace_ms;           /* a blob put this recently is never swept */
    bool results_fsync;              /* result blobs durable like uploads (store_opts) */
    const store_keyring *keyring;    /* borrowed: blobs encrypted at rest when set */
    struct store__plog *plog;        /* owned: the write-behind prediction log (predlog.c);
                                      * NULL = rows written in the request */
    atomic_int refs;
};

/* ---- the write-behind prediction log (predlog.c) ---- */
typedef struct store__plog store__plog;
/* Queue copies of n rows (s->plog set), or write them inline when the queue stays full or the
 * writer has stopped (predlog.c invariant 2). */
int store__plog_add(store *s, const store_prediction *rows, size_t n, md_err *err);
/* Wait until every row queued before this call is committed or failed (invariant 4). Lock not
 * held. No-op without a write-behind log. */
void store__plog_sync(store *s);
/* Free a stopped log (store_destroy). NULL is a no-op. */
void store__plog_free(store__plog *p);
/* Insert n rows in one transaction (predictions.c); takes and releases the lock. */
int store__predictions_insert(store *s, const store_prediction *p, size_t n, md_err *err);

void store__lock(store *s);
void store__unlock(store *s);
/* The connection lent to this thread by store__lock (invariant 1). */
db_conn *store__db(store *s);

/* A prepared statement for the static string sql, cached per connection. Lock held.
 * Returns NULL on failure (already logged, err filled with MD_E_IO). */
db_stmt *store__stmt(store *s, const char *sql, md_err *err);
/* The same for a statement whose dialects differ. */
db_stmt *store__stmt2(store *s, const db_sql2 *sql, md_err *err);
/* Reset and unbind a cached statement after use. NULL is a no-op. */
void store__done(db_stmt *st);

/* Begin a write transaction: BEGIN IMMEDIATE (SQLite: take the write lock now) or BEGIN
 * (PostgreSQL, READ COMMITTED: each statement is a compare-and-set on its rows). Lock held. */
int store__begin(store *s, const char *what, md_err *err);
int store__commit(store *s, const char *what, md_err *err);
/* Roll back when a transaction is open (after a failure); no error to report. */
void store__rollback(store *s);

/* MD_E_STORAGE_FULL for errno ENOSPC or EDQUOT, else MD_E_IO. */
int store__errno_code(int e);
/* Fill err with code (MD_E_IO, MD_E_STORAGE_FULL or MD_E_UNAVAILABLE) and its client-safe
 * message; returns code. */
int store__fail_code(int code, md_err *err);
/* Log the last database error of store__db(s) for operation `what` and return its md code
 * (invariant 3) in err. */
int store__sqlfail(store *s, const char *what, md_err *err);
/* Execute SQL without results (migrations, BEGIN/COMMIT). Lock held. */
int store__exec(store *s, const char *sql, const char *what, md_err *err);

/* Copy a TEXT column into a fixed buffer, truncating; NULL columns give "". */
void store__col_text(db_stmt *st, int col, char *out, size_t cap);

/* Fill the element at dst (of the caller's row type) from the current row of st. */
typedef void (*store__row_fn)(db_stmt *st, void *dst);
/* Run the cached statement sql (no parameters) and collect every row, each filled by read, into
 * a new array of elem-byte elements (*out: new, free()). Takes and releases the lock. On failure
 * *out is NULL and *n 0; `what` names the operation in the log. */
int store__list_rows(store *s, const char *sql, size_t elem, store__row_fn read, const char *what,
                     void **out, size_t *n, md_err *err);

/* The same with one text parameter bound to ?1 (param borrowed for the call; NULL: none). */
int store__list_rows_p(store *s, const char *sql, const char *param, size_t elem,
                       store__row_fn read, const char *what, void **out, size_t *n, md_err *err);
/* Step the bound statement st (lock held; the caller resets it) and collect at most max rows,
 * like store__list_rows. */
int store__collect_rows(store *s, db_stmt *st, size_t elem, store__row_fn read, size_t max,
                        const char *what, void **out, size_t *n, md_err *err);

/* The rows of sql with now_ms bound to ?1 and max to ?2 (its LIMIT), at most max of them, like
 * store__list_rows: the due schedules and callbacks. Takes and releases the lock. */
int store__list_due(store *s, const char *sql, int64_t now_ms, size_t max, size_t elem,
                    store__row_fn read, const char *what, void **out, size_t *n, md_err *err);
/* Run the cached statement sql with id bound to ?1 and read its one row into out. MD_E_NOT_FOUND
 * (field nf_field, message nf_msg) when there is none. Takes and releases the lock. */
int store__get_row(store *s, const char *sql, const char *id, store__row_fn read, void *out,
                   const char *nf_field, const char *nf_msg, const char *what, md_err *err);
/* Step the bound write st (lock held) and reset it: MD_E_CONFLICT for a constraint violation,
 * none_code (field none_field, message none_msg) when it changed no row. */
int store__step_write(store *s, db_stmt *st, int none_code, const char *none_field,
                      const char *none_msg, const char *what, md_err *err);

/* One parameter of store__write: an integer or a text (borrowed for the call; NULL binds NULL). */
typedef struct {
    bool text;
    int64_t i;
    const char *s;
} store__arg;
#define STORE_I(v) ((store__arg){.text = false, .i = (v)})
#define STORE_S(v) ((store__arg){.text = true, .s = (v)})
/* Run the cached write sql with args[0..n) bound to ?1..?n: takes the lock, then like
 * store__step_write. */
int store__write(store *s, const char *sql, const store__arg *args, int n, int none_code,
                 const char *none_field, const char *none_msg, const char *what, md_err *err);

/* Apply migrations up to `target` (0 = latest) in one immediate transaction. Lock held. */
int store__migrate(store *s, int target, md_err *err);

/* Random lower-case hex string of 2*nbytes digits into out (cap >= 2*nbytes+1). */
void store__random_hex(char *out, size_t nbytes);

/* Size on disk of an encrypted blob of n plaintext bytes (blob_crypt.c's format). */
uint64_t store__crypt_file_size(uint64_t n);

/* Blob internals (blob.c), lock held where noted. */
void store__sha256_hex(const void *data, size_t n, char hex[STORE_SHA256_HEX]);
int store__blob_valid_hex(const char *hex);
/* Write data to a temporary file under blobs/tmp, fsync'd when durable. *tmp_path is new
 * (free()). */
int store__blob_write_tmp(store *s, const void *data, size_t n, bool durable, char **tmp_path,
                          md_err *err);
/* Move a tmp file of n bytes into place as blob hex (fsyncing the directory when durable), or
 * discard it when a non-durable put finds the blob with the right size already there; either
 * way the blob's mtime is set to the store clock's now so the sweeper's grace period protects
 * it. Store lock held; takes s->blob_mu, which orders puts against the sweeper (invariant 5). */
int store__blob_commit(store *s, const char *tmp_path, const char *hex, size_t n, bool durable,
                       md_err *err);

#endif
