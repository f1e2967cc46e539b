/* store.c - opening and closing the store, lending its connections, and the helpers the
 * per-table files share (statement cache, error logging).
 *
 * SQLite (the default): one connection to <data_dir>/modeld.db (db_sqlite.c), serialised by
 * s->mu. PostgreSQL (store_opts.url postgres://...): a pool of connections (db_pg.c); each
 * store call checks one out for its duration, so calls from different threads run in
 * parallel. A connection that comes back broken (the server restarted) bumps the pool's
 * generation; every other pooled connection is then probed on its next checkout and
 * reconnected, so one failed call is all a restart costs.
 *
 * The handle is reference-counted: the server, its sweeper thread and auth each hold one, and
 * the last store_unref closes the database.
 */
#include "store/store_int.h"

#include "base/log.h"

#include <assert.h>
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

/* The connection this thread holds (invariant 1 of store_int.h: locks never nest). */
static _Thread_local db_conn *tl_conn;

/* A pooled PostgreSQL connection (slot i):
 *
 *            store__lock                      store__unlock
 *   FREE ---------------------> LENT ------------------------------> FREE
 *   busy=0   (broken: reconnect;     (rolls back an open transaction;
 *            suspect: probe)          broken or reconnected: pool_gen++,
 *                                     so every other slot is suspect)
 *
 * A slot is suspect when its gen differs from pool_gen: some other connection found the server
 * gone since this one was last lent, so it is probed before use. */
static void assert_pool(const store *s)
{
#ifndef NDEBUG
    int lent = 0;
    for (int k = 0; k < s->npool; k++) {
        assert(s->pool[k]);
        lent += s->busy[k];
        assert(s->gen[k] <= s->pool_gen);
    }
    assert(lent <= s->npool);
#else
    (void)s;
#endif
}

/* A PostgreSQL connection that another one's failure makes suspect: probe it, reconnect when
 * the probe fails. */
static void pg_check(db_conn *c)
{
    static const char probe[] = "SELECT 1";
    db_stmt *st = db_prepare(c, probe);
    int r = st ? db_step(st) : DB_ERROR;
    db_reset(st);
    if (r != DB_ROW && db_broken(c) && db_pg_reconnect(c) == MD_OK)
        md_log(MD_LOG_INFO, "store: reconnected to PostgreSQL");
}

void store__lock(store *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->kind == DB_SQLITE) {
        tl_conn = s->pool[0];
        return;
    }
    assert_pool(s);
    int i = -1;
    while (i < 0) {
        for (int k = 0; k < s->npool && i < 0; k++)
            if (!s->busy[k])
                i = k;
        if (i < 0)
            pthread_cond_wait(&s->cv, &s->mu);
    }
    s->busy[i] = true;
    bool suspect = s->gen[i] != s->pool_gen;
    s->gen[i] = s->pool_gen;
    pthread_mutex_unlock(&s->mu);
    tl_conn = s->pool[i];
    if (db_broken(tl_conn))
        db_pg_reconnect(tl_conn);
    else if (suspect)
        pg_check(tl_conn);
    s->seen[i] = tl_conn->reconnects;
}

void store__unlock(store *s)
{
    db_conn *c = tl_conn;
    tl_conn = NULL;
    if (s->kind == DB_SQLITE) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (!db_broken(c) && db_in_tx(c))
        db_exec(c, "ROLLBACK"); /* invariant 4 */
    pthread_mutex_lock(&s->mu);
    for (int k = 0; k < s->npool; k++) {
        if (s->pool[k] != c)
            continue;
        assert(s->busy[k]); /* LENT -> FREE */
        s->busy[k] = false;
        if (db_broken(c) || c->reconnects != s->seen[k])
            s->gen[k] = ++s->pool_gen;
    }
    assert_pool(s);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

db_conn *store__db(store *s)
{
    (void)s;
    return tl_conn;
}

int store__errno_code(int e)
{
    return e == ENOSPC || e == EDQUOT ? MD_E_STORAGE_FULL : MD_E_IO;
}

int store__fail_code(int code, md_err *err)
{
    if (code == MD_E_UNAVAILABLE)
        return md_fail(err, code, "store", "the database cannot be reached");
    if (code != MD_E_STORAGE_FULL)
        code = MD_E_IO;
    return md_fail(err, code, NULL,
                   code == MD_E_STORAGE_FULL ? "the server's storage is full" : "storage error");
}

int store__sqlfail(store *s, const char *what, md_err *err)
{
    db_conn *c = store__db(s);
    md_log(MD_LOG_ERROR, "store: %s failed: %s", what, db_errmsg(c));
    return store__fail_code(db_errcode(c), err);
}

int store__exec(store *s, const char *sql, const char *what, md_err *err)
{
    if (db_exec(store__db(s), sql) == MD_OK)
        return MD_OK;
    return store__sqlfail(s, what, err);
}

int store__begin(store *s, const char *what, md_err *err)
{
    static const db_sql2 begin = {.lite = "BEGIN IMMEDIATE", .pg = "BEGIN"};
    return store__exec(s, db_pick(store__db(s), &begin), what, err);
}

int store__commit(store *s, const char *what, md_err *err)
{
    return store__exec(s, "COMMIT", what, err);
}

void store__rollback(store *s)
{
    db_conn *c = store__db(s);
    if (db_in_tx(c))
        db_exec(c, "ROLLBACK");
}

db_stmt *store__stmt(store *s, const char *sql, md_err *err)
{
    db_conn *c = store__db(s);
    db_stmt *st = db_prepare(c, sql);
    if (!st) {
        if (db_errcode(c) == MD_OK)
            md_fail(err, MD_E_NOMEM, NULL, NULL);
        else
            store__sqlfail(s, "prepare", err);
    }
    return st;
}

db_stmt *store__stmt2(store *s, const db_sql2 *sql, md_err *err)
{
    return store__stmt(s, db_pick(store__db(s), sql), err);
}

void store__done(db_stmt *st) { db_reset(st); }

void store__col_text(db_stmt *st, int col, char *out, size_t cap)
{
    const char *t = db_col_text(st, col);
    snprintf(out, cap, "%s", t ? t : "");
}

/* Append one row to a growing array (doubling from 16); MD_E_NOMEM when it cannot grow. */
static int push_row(char **arr, size_t *n, size_t *cap, size_t elem, store__row_fn read,
                    db_stmt *st)
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

int store__collect_rows(store *s, db_stmt *st, size_t elem, store__row_fn read, size_t max,
                        const char *what, void **out, size_t *n, md_err *err)
{
    char *arr = NULL;
    size_t cap = 0;
    *n = 0;
    int rc = MD_OK;
    int r = DB_DONE;
    while (rc == MD_OK && *n < max) {
        r = db_step(st);
        if (r != DB_ROW)
            break;
        rc = push_row(&arr, n, &cap, elem, read, st);
    }
    if (rc == MD_E_NOMEM)
        md_fail(err, MD_E_NOMEM, NULL, NULL);
    else if (rc == MD_OK && r != DB_DONE && r != DB_ROW)
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
    db_stmt *st = store__stmt(s, sql, err);
    int rc = MD_E_IO;
    if (st) {
        if (param)
            db_bind_text(st, 1, param);
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
    db_stmt *st = store__stmt(s, sql, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        db_bind_int64(st, 1, now_ms);
        db_bind_int64(st, 2, (int64_t)max);
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
    db_stmt *st = store__stmt(s, sql, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        db_bind_text(st, 1, id);
        int r = db_step(st);
        if (r == DB_ROW)
            read(st, out);
        else if (r == DB_DONE)
            rc = md_fail(err, MD_E_NOT_FOUND, nf_field, "%s", nf_msg);
        else
            rc = store__sqlfail(s, what, err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

int store__step_write(store *s, db_stmt *st, int none_code, const char *none_field,
                      const char *none_msg, const char *what, md_err *err)
{
    int r = db_step(st);
    int rc = MD_OK;
    if (r == DB_CONSTRAINT)
        rc = md_fail(err, MD_E_CONFLICT, none_field, "it exists already");
    else if (r != DB_DONE)
        rc = store__sqlfail(s, what, err);
    else if (db_changes(st) == 0)
        rc = md_fail(err, none_code, none_field, "%s", none_msg);
    store__done(st);
    return rc;
}

int store__write(store *s, const char *sql, const store__arg *args, int n, int none_code,
                 const char *none_field, const char *none_msg, const char *what, md_err *err)
{
    store__lock(s);
    db_stmt *q = store__stmt(s, sql, err);
    int rc = q ? MD_OK : MD_E_IO;
    if (q) {
        for (int i = 0; i < n; i++) {
            if (args[i].text)
                db_bind_text(q, i + 1, args[i].s);
            else
                db_bind_int64(q, i + 1, args[i].i);
        }
        rc = store__step_write(s, q, none_code, none_field, none_msg, what, err);
    }
    store__unlock(s);
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

/* The back end named by a store URL: NULL, "" or "sqlite:[path]" is SQLite (path: the database
 * file, default <data_dir>/modeld.db), postgres:// or postgresql:// is PostgreSQL. */
static int parse_url(const char *url, db_kind *kind, const char **lite_path, md_err *err)
{
    *lite_path = NULL;
    *kind = DB_SQLITE;
    if (!url || !url[0])
        return MD_OK;
    if (strncmp(url, "sqlite:", 7) == 0) {
        *lite_path = url[7] ? url + 7 : NULL;
        return MD_OK;
    }
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0) {
        *kind = DB_PG;
        return MD_OK;
    }
    return md_fail(err, MD_E_INVALID_PARAM, "store",
                   "the store must be sqlite:[path] or postgres://...");
}

static int open_sqlite(store *s, const store_opts *o, const char *lite_path, md_err *err)
{
    size_t n = strlen(s->data_dir) + sizeof "/modeld.db";
    char *path = lite_path ? strdup(lite_path) : malloc(n);
    if (!path)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (!lite_path)
        snprintf(path, n, "%s/modeld.db", s->data_dir);
    int rc = db_sqlite_open(path, o->busy_timeout_ms, &s->pool[0], err);
    free(path);
    return rc;
}

static int open_pool(store *s, const store_opts *o, md_err *err)
{
    int rc = MD_OK;
    for (int i = 0; i < s->npool && rc == MD_OK; i++)
        rc = db_pg_open(o->url, &s->pool[i], err);
    return rc;
}

static int open_db(store *s, const store_opts *o, md_err *err)
{
    const char *lite_path = NULL;
    int rc = parse_url(o->url, &s->kind, &lite_path, err);
    if (rc != MD_OK)
        return rc;
    s->npool = s->kind == DB_PG ? (o->pool_size > 0 ? o->pool_size : 4) : 1;
    s->pool = calloc((size_t)s->npool, sizeof *s->pool);
    s->busy = calloc((size_t)s->npool, sizeof *s->busy);
    s->gen = calloc((size_t)s->npool, sizeof *s->gen);
    s->seen = calloc((size_t)s->npool, sizeof *s->seen);
    if (!s->pool || !s->busy || !s->gen || !s->seen)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    return s->kind == DB_PG ? open_pool(s, o, err) : open_sqlite(s, o, lite_path, err);
}

/* <dir>/blobs, or the configured shared directory. New, or NULL without memory. */
static char *blob_dir_of(const store_opts *o, const char *data_dir, size_t n)
{
    if (o->blob_dir && o->blob_dir[0])
        return strdup(o->blob_dir);
    char *p = malloc(n + sizeof "/blobs");
    if (p)
        snprintf(p, n + sizeof "/blobs", "%s/blobs", data_dir);
    return p;
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
    s->blob_dir = s->data_dir ? blob_dir_of(o, s->data_dir, n) : NULL;
    if (!s->data_dir || !s->blob_dir) {
        free(s->data_dir);
        free(s->blob_dir);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->blob_mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->clock = o->clock ? o->clock : md_clock_system();
    s->upload_ttl_ms = o->upload_ttl_ms > 0 ? o->upload_ttl_ms : 3600 * 1000;
    s->blob_grace_ms = 10 * 60 * 1000;
    s->results_fsync = o->results_fsync;
    s->keyring = o->keyring;
    atomic_init(&s->refs, 1);
    return s;
}

static void store_destroy(store *s)
{
    store_predlog_stop(s); /* the last queued rows, before the connections close */
    store__plog_free(s->plog);
    for (int i = 0; s->pool && i < s->npool; i++)
        db_close(s->pool[i]);
    free(s->pool);
    free(s->busy);
    free(s->gen);
    free(s->seen);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->blob_mu);
    pthread_cond_destroy(&s->cv);
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
    if (o->blob_dir && o->blob_dir[0] && mkdir_p(o->blob_dir) != 0) {
        md_log(MD_LOG_ERROR, "store: cannot create %s: %s", o->blob_dir, strerror(errno));
        return md_fail(err, MD_E_IO, "blob_dir", "cannot create the blob directory");
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
    db_stmt *st = store__stmt(s, sql, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        int r = db_step(st);
        if (r == DB_ROW)
            *out = db_col_int64(st, 0);
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

static int write_probe(const char *dir, md_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/.write-probe", dir);
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

static int dir_free(const char *dir, uint64_t *avail, md_err *err)
{
    struct statvfs v;
    if (statvfs(dir, &v) != 0) {
        md_log(MD_LOG_WARN, "store: statvfs %s: %s", dir, strerror(errno));
        return md_fail(err, MD_E_IO, "store", "unwritable: cannot read the free space");
    }
    *avail = (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
    return MD_OK;
}

static int check_dir(const char *dir, uint64_t min_free_bytes, md_err *err)
{
    uint64_t avail = 0;
    int rc = dir_free(dir, &avail, err);
    if (rc != MD_OK)
        return rc;
    if (avail < min_free_bytes)
        return md_fail(err, MD_E_STORAGE_FULL, "store",
                       "unwritable: %llu KiB free, below the %llu KiB minimum",
                       (unsigned long long)(avail >> 10),
                       (unsigned long long)(min_free_bytes >> 10));
    return write_probe(dir, err);
}

/* The data dir, and the blob dir when it is elsewhere (a shared volume of a cluster). */
int store_check_writable(store *s, uint64_t min_free_bytes, md_err *err)
{
    int rc = check_dir(s->data_dir, min_free_bytes, err);
    size_t n = strlen(s->data_dir);
    bool inside = strncmp(s->blob_dir, s->data_dir, n) == 0 && s->blob_dir[n] == '/';
    if (rc == MD_OK && !inside)
        rc = check_dir(s->blob_dir, min_free_bytes, err);
    return rc;
}

int store_free_bytes(store *s, uint64_t *out, md_err *err)
{
    uint64_t a = 0, b = UINT64_MAX;
    int rc = dir_free(s->data_dir, &a, err);
    size_t n = strlen(s->data_dir);
    bool inside = strncmp(s->blob_dir, s->data_dir, n) == 0 && s->blob_dir[n] == '/';
    if (rc == MD_OK && !inside) /* <data_dir>/blobs is made on the first write */
        rc = dir_free(s->blob_dir, &b, err);
    *out = a < b ? a : b;
    return rc;
}

const char *store_backend(const store *s) { return s->kind == DB_PG ? "postgresql" : "sqlite"; }

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
    /* SQLite counts commits of other connections; PostgreSQL has no such counter, so there it
     * is a digest of api_keys, the table auth caches: a new key changes the count, a revocation
     * the sum of revocation times. */
    static const db_sql2 sql = {
        .lite = "PRAGMA data_version",
        .pg = "SELECT count(*) + coalesce(sum(revoked_ms), 0) FROM api_keys",
    };
    int rc = query_int(s, s->kind == DB_PG ? sql.pg : sql.lite, "data version", &v, err);
    *out = (uint64_t)v;
    return rc;
}
