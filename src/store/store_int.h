/* store_int.h - internals shared by the files of the SQLite back end of store.h.
 * Nothing outside src/store/ includes this header (it is the only place <sqlite3.h> is seen).
 *
 * Invariants:
 *   1. s->db is used only while s->mu is held (one connection, serialised by us; SQLite is
 *      opened NOMUTEX so it does not lock a second time).
 *   2. Cached statements (store__stmt) are reset and unbound by store__done before the lock
 *      is released, so no statement keeps a read transaction open between calls.
 *   3. Every SQLite failure is logged once with its detail by store__sqlfail and surfaces to
 *      callers as MD_E_IO with a generic message, or MD_E_STORAGE_FULL when the disk (or the
 *      quota) is full: SQLITE_FULL, or an OS error ENOSPC / EDQUOT from SQLite or from a blob
 *      write, fsync, mkdir or rename (store__errno_code), so that clients get 507 + Retry-After
 *      for a condition that passes, and operators a distinct error.
 */
#ifndef MD_STORE_STORE_INT_H
#define MD_STORE_STORE_INT_H

#include "store/store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>

/* One prepared statement of the cache, keyed by the address of its static SQL text. */
typedef struct store__stmt_slot {
    const char *sql;
    sqlite3_stmt *st;
} store__stmt_slot;

struct store {
    pthread_mutex_t mu;
    sqlite3 *db;
    char *data_dir;                  /* owned */
    char *blob_dir;                  /* owned: <data_dir>/blobs */
    const md_clock *clock;           /* borrowed */
    int64_t upload_ttl_ms;
    int64_t blob_grace_ms;           /* a blob put this recently is never swept */
    bool results_fsync;              /* result blobs durable like uploads (store_opts) */
    atomic_int refs;
    store__stmt_slot *stmts;         /* owned; grows: every statement the back end ever ran */
    /* The prediction log's write-behind buffer (predictions.c, invariant 3): rows accepted
     * but not yet written, owned copies; pend_first_ms: when the oldest was accepted. */
    struct store_prediction *pend;
    size_t npend, cappend;
    int64_t pend_first_ms;
    int nstmts, capstmts;
};

/* The prediction log's waiting rows written (predictions.c, invariant 3); lock held. */
int store__predictions_flush(store *s, md_err *err);

void store__lock(store *s);
void store__unlock(store *s);

/* A prepared statement for the static string sql, cached per connection. Lock held.
 * Returns NULL on failure (already logged, err filled with MD_E_IO). */
sqlite3_stmt *store__stmt(store *s, const char *sql, md_err *err);
/* Reset and unbind a cached statement after use. */
void store__done(sqlite3_stmt *st);

/* MD_E_STORAGE_FULL for errno ENOSPC or EDQUOT, else MD_E_IO. */
int store__errno_code(int e);
/* Fill err with code (MD_E_IO or MD_E_STORAGE_FULL) and its client-safe message; returns code. */
int store__fail_code(int code, md_err *err);
/* Log the SQLite error of s->db for operation `what` and return MD_E_IO (MD_E_STORAGE_FULL when
 * the disk is full) in err. */
int store__sqlfail(store *s, const char *what, md_err *err);
/* Execute SQL without results (migrations, BEGIN/COMMIT). Lock held. */
int store__exec(store *s, const char *sql, const char *what, md_err *err);

/* Copy a TEXT column into a fixed buffer, truncating; NULL columns give "". */
void store__col_text(sqlite3_stmt *st, int col, char *out, size_t cap);

/* Fill the element at dst (of the caller's row type) from the current row of st. */
typedef void (*store__row_fn)(sqlite3_stmt *st, void *dst);
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
int store__collect_rows(store *s, sqlite3_stmt *st, size_t elem, store__row_fn read, size_t max,
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
int store__step_write(store *s, sqlite3_stmt *st, int none_code, const char *none_field,
                      const char *none_msg, const char *what, md_err *err);

/* Apply migrations up to `target` (0 = latest) in one immediate transaction. Lock held. */
int store__migrate(store *s, int target, md_err *err);

/* Random lower-case hex string of 2*nbytes digits into out (cap >= 2*nbytes+1). */
void store__random_hex(char *out, size_t nbytes);

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
 * it. Lock held (this is what orders puts against the sweeper). */
int store__blob_commit(store *s, const char *tmp_path, const char *hex, size_t n, bool durable,
                       md_err *err);

#endif
