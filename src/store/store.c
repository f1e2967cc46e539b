/* store.c - opening and closing the SQLite back end of store.h, and the helpers the per-table
 * files share (statement cache, error logging).
 *
 * One SQLite connection per store handle, in WAL mode so readers in other processes (and the
 * `modeld keys` CLI) never block the server, with synchronous=NORMAL (a crash may lose the last
 * transactions but never corrupts the database) and a busy timeout for cross-process writers.
 * The handle is reference-counted: the server, its sweeper thread and auth each hold one, and
 * the last store_unref closes the database.
 */
#include "store/store_int.h"

#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

void store__lock(store *s) { pthread_mutex_lock(&s->mu); }
void store__unlock(store *s) { pthread_mutex_unlock(&s->mu); }

int store__errno_code(int e)
{
    return e == ENOSPC || e == EDQUOT ? MD_E_STORAGE_FULL : MD_E_IO;
}

int store__fail_code(int code, md_err *err)
{
    return md_fail(err, code, NULL,
                   code == MD_E_STORAGE_FULL ? "the server's storage is full" : "storage error");
}

/* SQLITE_FULL is SQLite's own "disk full" (a write or a WAL/journal growth hit ENOSPC); an fsync
 * or other I/O error whose OS errno is ENOSPC/EDQUOT is the same condition. */
static int sqlite_code(sqlite3 *db)
{
    int primary = sqlite3_errcode(db);
    if (primary == SQLITE_FULL)
        return MD_E_STORAGE_FULL;
    return primary == SQLITE_IOERR ? store__errno_code(sqlite3_system_errno(db)) : MD_E_IO;
}

int store__sqlfail(store *s, const char *what, md_err *err)
{
    md_log(MD_LOG_ERROR, "store: %s failed: %s (sqlite %d)", what, sqlite3_errmsg(s->db),
           sqlite3_extended_errcode(s->db));
    return store__fail_code(sqlite_code(s->db), err);
}

int store__exec(store *s, const char *sql, const char *what, md_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return MD_OK;
    md_log(MD_LOG_ERROR, "store: %s failed: %s", what, msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return store__fail_code(sqlite_code(s->db), err);
}

sqlite3_stmt *store__stmt(store *s, const char *sql, md_err *err)
{
    for (int i = 0; i < s->nstmts; i++)
        if (s->stmts[i].sql == sql)
            return s->stmts[i].st;
    /* The set of statements is fixed by the code (static strings), so the cache only grows until
     * every one has run once; it grows rather than having a size that each new feature must
     * remember to raise. */
    if (s->nstmts == s->capstmts) {
        int cap = s->capstmts ? 2 * s->capstmts : 64;
        store__stmt_slot *g = realloc(s->stmts, (size_t)cap * sizeof *g);
        if (!g) {
            md_fail(err, MD_E_NOMEM, NULL, NULL);
            return NULL;
        }
        s->stmts = g;
        s->capstmts = cap;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        store__sqlfail(s, "prepare", err);
        return NULL;
    }
    s->stmts[s->nstmts].sql = sql;
    s->stmts[s->nstmts++].st = st;
    return st;
}

void store__done(sqlite3_stmt *st)
{
    if (!st)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

void store__col_text(sqlite3_stmt *st, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

/* Append one row to a growing array (doubling from 16); MD_E_NOMEM when it cannot grow. */
static int push_row(char **arr, size_t *n, size_t *cap, size_t elem, store__row_fn read,
                    sqlite3_stmt *st)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        char *na = realloc(*arr, nc * elem);
        if (!na)
            return MD_E_NOMEM;
        *arr = na;
        *cap = nc;
    }
    read(st, *arr + (*n)++ * elem);
    return MD_OK;
}

int store__collect_rows(store *s, sqlite3_stmt *st, size_t elem, store__row_fn read, size_t max,
                        const char *what, void **out, size_t *n, md_err *err)
{
    char *arr = NULL;
    size_t cap = 0;
    *n = 0;
    int rc = MD_OK;
    int r = SQLITE_DONE;
    while (rc == MD_OK && *n < max) {
        r = sqlite3_step(st);
        if (r != SQLITE_ROW)
            break;
        rc = push_row(&arr, n, &cap, elem, read, st);
    }
    if (rc == MD_E_NOMEM)
        md_fail(err, MD_E_NOMEM, NULL, NULL);
    else if (rc == MD_OK && r != SQLITE_DONE && r != SQLITE_ROW)
        rc = store__sqlfail(s, what, err);
    if (rc != MD_OK) {
        free(arr);
        arr = NULL;
        *n = 0;
    }
    *out = arr;
    return rc;
}

int store__list_rows(store *s, const char *sql, size_t elem, store__row_fn read, const char *what,
                     void **out, size_t *n, md_err *err)
{
    return store__list_rows_p(s, sql, NULL, elem, read, what, out, n, err);
}

int store__list_rows_p(store *s, const char *sql, const char *param, size_t elem,
                       store__row_fn read, const char *what, void **out, size_t *n, md_err *err)
{
    *out = NULL;
    *n = 0;
    store__lock(s);
    sqlite3_stmt *st = store__stmt(s, sql, err);
    int rc = MD_E_IO;
    if (st) {
        if (param)
            sqlite3_bind_text(st, 1, param, -1, SQLITE_STATIC);
        rc = store__collect_rows(s, st, elem, read, SIZE_MAX, what, out, n, err);
    }
    store__done(st);
    store__unlock(s);
    return rc;
}

int store__list_due(store *s, const char *sql, int64_t now_ms, size_t max, size_t elem,
                    store__row_fn read, const char *what, void **out, size_t *n, md_err *err)
{
    *out = NULL;
    *n = 0;
    store__lock(s);
    sqlite3_stmt *st = store__stmt(s, sql, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
        rc = store__collect_rows(s, st, elem, read, max, what, out, n, err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

int store__get_row(store *s, const char *sql, const char *id, store__row_fn read, void *out,
                   const char *nf_field, const char *nf_msg, const char *what, md_err *err)
{
    store__lock(s);
    sqlite3_stmt *st = store__stmt(s, sql, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW)
            read(st, out);
        else if (r == SQLITE_DONE)
            rc = md_fail(err, MD_E_NOT_FOUND, nf_field, "%s", nf_msg);
        else
            rc = store__sqlfail(s, what, err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

int store__step_write(store *s, sqlite3_stmt *st, int none_code, const char *none_field,
                      const char *none_msg, const char *what, md_err *err)
{
    int r = sqlite3_step(st);
    int rc = MD_OK;
    if ((r & 0xff) == SQLITE_CONSTRAINT)
        rc = md_fail(err, MD_E_CONFLICT, none_field, "it exists already");
    else if (r != SQLITE_DONE)
        rc = store__sqlfail(s, what, err);
    else if (sqlite3_changes(s->db) == 0)
        rc = md_fail(err, none_code, none_field, "%s", none_msg);
    store__done(st);
    return rc;
}

void store__random_hex(char *out, size_t nbytes)
{
    unsigned char raw[32];
    if (nbytes > sizeof raw)
        nbytes = sizeof raw;
    randombytes_buf(raw, nbytes);
    sodium_bin2hex(out, 2 * nbytes + 1, raw, nbytes);
}

/* mkdir -p with mode 0700 for the components we create. */
static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int open_db(store *s, const store_opts *o, md_err *err)
{
    size_t n = strlen(s->data_dir) + sizeof "/modeld.db";
    char *path = malloc(n);
    if (!path)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    snprintf(path, n, "%s/modeld.db", s->data_dir);
    /* The database holds key hashes and the audit log: create it 0600 ourselves (SQLite would
     * use 0644), and SQLite gives its -wal and -shm files the same mode. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
    free(path);
    if (rc != SQLITE_OK) {
        md_log(MD_LOG_ERROR, "store: cannot open %s/modeld.db: %s", s->data_dir,
               s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        return md_fail(err, MD_E_IO, NULL, "cannot open the database");
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, o->busy_timeout_ms > 0 ? o->busy_timeout_ms : 5000);
    return store__exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          "PRAGMA foreign_keys=ON;",
                       "pragmas", err);
}

static store *store_alloc(const store_opts *o)
{
    store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    size_t n = strlen(o->data_dir);
    while (n > 1 && o->data_dir[n - 1] == '/')
        n--;   /* "var/" and "var" name the same store */
    s->data_dir = strndup(o->data_dir, n);
    s->blob_dir = malloc(n + sizeof "/blobs");
    if (!s->data_dir || !s->blob_dir) {
        free(s->data_dir);
        free(s->blob_dir);
        free(s);
        return NULL;
    }
    snprintf(s->blob_dir, n + sizeof "/blobs", "%s/blobs", s->data_dir);
    pthread_mutex_init(&s->mu, NULL);
    s->clock = o->clock ? o->clock : md_clock_system();
    s->upload_ttl_ms = o->upload_ttl_ms > 0 ? o->upload_ttl_ms : 3600 * 1000;
    s->blob_grace_ms = 10 * 60 * 1000;
    s->results_fsync = o->results_fsync;
    atomic_init(&s->refs, 1);
    return s;
}

static void store_destroy(store *s)
{
    md_err e = {0};
    size_t n = s->npend;
    if (s->db && store__predictions_flush(s, &e) != MD_OK)
        md_log(MD_LOG_WARN, "store: %zu logged predictions lost at close: %s", n,
               md_err_message(&e));
    free(s->pend);
    for (int i = 0; i < s->nstmts; i++)
        sqlite3_finalize(s->stmts[i].st);
    free(s->stmts);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        md_log(MD_LOG_ERROR, "store: close failed: %s", sqlite3_errmsg(s->db));
    pthread_mutex_destroy(&s->mu);
    free(s->data_dir);
    free(s->blob_dir);
    free(s);
}

int store_open(const store_opts *o, store **out, md_err *err)
{
    *out = NULL;
    if (!o || !o->data_dir || !o->data_dir[0])
        return md_fail(err, MD_E_INVALID_PARAM, "data_dir", "a data directory is required");
    if (o->migrate_to < 0 || o->migrate_to > store_schema_latest())
        return md_fail(err, MD_E_INVALID_PARAM, "migrate_to", "no such schema version");
    if (sodium_init() < 0)
        return md_fail(err, MD_E_INTERNAL, NULL, "crypto library failed to start");
    if (mkdir_p(o->data_dir) != 0) {
        md_log(MD_LOG_ERROR, "store: cannot create %s: %s", o->data_dir, strerror(errno));
        return md_fail(err, MD_E_IO, "data_dir", "cannot create the data directory");
    }
    store *s = store_alloc(o);
    if (!s)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = open_db(s, o, err);
    if (rc == MD_OK) {
        store__lock(s);
        rc = store__migrate(s, o->migrate_to, err);
        store__unlock(s);
    }
    if (rc != MD_OK) {
        store_destroy(s);
        return rc;
    }
    *out = s;
    return MD_OK;
}

store *store_ref(store *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void store_unref(store *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    store_destroy(s);
}

const char *store_data_dir(const store *s) { return s->data_dir; }

/* Run a one-integer query under the lock. */
static int query_int(store *s, const char *sql, const char *what, int64_t *out, md_err *err)
{
    store__lock(s);
    sqlite3_stmt *st = store__stmt(s, sql, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW)
            *out = sqlite3_column_int64(st, 0);
        else
            rc = store__sqlfail(s, what, err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

int store_ping(store *s, md_err *err)
{
    int64_t v = 0;
    return query_int(s, "SELECT 1", "ping", &v, err);
}

/* Invariant of the probe: it writes a whole block (a file of one byte could fit in an inode's
 * slack on some file systems and not prove that data can be written). */
#define PROBE_BYTES 4096

static int write_probe(store *s, md_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/.write-probe", s->data_dir);
    static const char zeros[PROBE_BYTES];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ssize_t w = fd >= 0 ? write(fd, zeros, sizeof zeros) : -1;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (w == (ssize_t)sizeof zeros)
        return MD_OK;
    e = w >= 0 ? ENOSPC : e; /* a short write is a full disk */
    md_log(MD_LOG_WARN, "store: write probe %s: %s", path, strerror(e));
    int code = store__errno_code(e);
    return md_fail(err, code, "store",
                   code == MD_E_STORAGE_FULL ? "unwritable: the disk is full" : "unwritable: %s",
                   strerror(e));
}

int store_check_writable(store *s, uint64_t min_free_bytes, md_err *err)
{
    struct statvfs v;
    if (statvfs(s->data_dir, &v) != 0) {
        md_log(MD_LOG_WARN, "store: statvfs %s: %s", s->data_dir, strerror(errno));
        return md_fail(err, MD_E_IO, "store", "unwritable: cannot read the free space");
    }
    uint64_t avail = (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
    if (avail < min_free_bytes)
        return md_fail(err, MD_E_STORAGE_FULL, "store",
                       "unwritable: %llu KiB free, below the %llu KiB minimum",
                       (unsigned long long)(avail >> 10),
                       (unsigned long long)(min_free_bytes >> 10));
    return write_probe(s, err);
}

int store_schema_version(store *s, int *out, md_err *err)
{
    int64_t v = 0;
    int rc = query_int(s, "SELECT coalesce(max(version), 0) FROM schema_version",
                       "schema version", &v, err);
    *out = (int)v;
    return rc;
}

int store_data_version(store *s, uint64_t *out, md_err *err)
{
    int64_t v = 0;
    int rc = query_int(s, "PRAGMA data_version", "data version", &v, err);
    *out = (uint64_t)v;
    return rc;
}
