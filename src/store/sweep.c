/* sweep.c - retention: deletes expired rows and the blobs nothing references any more.
 *
 * The server calls store_sweep() from a timer (every minute or so). Each table whose rows
 * expire and name a blob is listed in `tables` below (uploads, conversion results, jobs), with
 * the rows that live and die with them (batches, callbacks); a new kind joins by adding one
 * line.
 *
 * Invariants:
 *   1. A blob is deleted only when (a) no row of any listed table names it and (b) its mtime,
 *      stamped with the store clock at every put, is older than the grace period. (b) covers
 *      the window between a put and the insert of the row naming it (blob.c invariant 2).
 *   2. The reference check, the re-check of the mtime and the unlink happen under the store's
 *      blob lock, the same lock a put holds to move a blob into place; so a put of the same bytes
 *      either lands before the check (and is seen by it) or after the unlink (and re-creates
 *      the file).
 *   3. The walk over the blob tree takes the lock per blob, not for the whole walk, so requests
 *      are never stalled behind a long sweep.
 *   4. Key rotation is finished here: with a keyring, a blob the walk keeps that is still plain
 *      or under an older key is rewritten under the write key (store_blob_open's lazy
 *      re-encryption, blob_read.c), at most REENCRYPT_BYTES of blobs per sweep, so a rotation
 *      completes in the background without a sweep ever taking long. Blobs under a key the
 *      keyring lacks are counted and left alone (they stay unreadable until it is configured).
 */
#include "store/store_int.h"

#include "base/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct blob_table {
    const char *delete_expired;   /* one parameter: now_ms; NULL for rows that never expire */
    const char *references;       /* one parameter: sha256; a row when referenced; NULL for
                                   * a statement whose table names no blob */
} blob_table;

static const blob_table tables[] = {
    {"DELETE FROM uploads WHERE expires_ms <= ?", "SELECT 1 FROM uploads WHERE sha256 = ? LIMIT 1"},
    {"DELETE FROM results WHERE expires_ms <= ?",
     "SELECT 1 FROM results WHERE svg_sha256 = ? LIMIT 1"},
    /* Jobs (jobs.c): a terminal job lets go of its input after the upload retention (the row
     * stays, so its status and result remain readable), and the whole row goes after the
     * result retention. Running and queued jobs always keep their input. */
    {"UPDATE jobs SET input_sha256 = '' WHERE expires_ms > 0 AND input_sha256 <> ''"
     " AND input_expires_ms <= ?",
     "SELECT 1 FROM jobs WHERE input_sha256 = ?1 OR result_sha256 = ?1 LIMIT 1"},
    {"DELETE FROM jobs WHERE expires_ms > 0 AND expires_ms <= ?", NULL},
    /* Callbacks (callbacks.c) go with their job, after the line above: a delivered or finally
     * failed one is kept as long as its job's row (the result retention), and a pending one
     * whose job is gone (deleted by its owner) could never be due (the due query joins jobs). */
    {"DELETE FROM callbacks WHERE created_ms <= ?"
     " AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = callbacks.job_id)",
     NULL},
    /* A batch goes with its last job (a batch and its jobs are inserted in one transaction,
     * so a batch is never seen without them). */
    {"DELETE FROM batches WHERE created_ms <= ?"
     " AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = batches.id)",
     NULL},
    /* Datasets (datasets.c) never expire: only DELETE removes one; their blobs stay while a
     * row names them. */
    {NULL, "SELECT 1 FROM datasets WHERE sha256 = ? LIMIT 1"},
};
#define N_TABLES (sizeof tables / sizeof tables[0])

/* A temporary file older than this was left by a crash (a put takes milliseconds). Compared
 * with the real clock, because tmp files carry real mtimes. */
#define TMP_MAX_AGE_S 3600

/* Bytes of blobs re-encrypted by one sweep at most (invariant 4): ~0.3 s of CPU at the
 * ~1 GB/s that decrypting and encrypting again run at here (README, "Encryption at rest"). */
#define REENCRYPT_BYTES ((uint64_t)256 << 20)

typedef struct sweep_walk {
    int64_t now_ms;
    size_t deleted;
    uint64_t budget;       /* re-encryption bytes left this sweep */
    size_t reencrypted;    /* rewritten under the write key */
    size_t old_left;       /* still plain or under an older key (past the budget) */
    size_t unknown;        /* under a key the keyring lacks */
} sweep_walk;

static int delete_expired(store *s, int64_t now_ms, size_t *rows, md_err *err)
{
    int rc = MD_OK;
    store__lock(s);
    for (size_t i = 0; i < N_TABLES && rc == MD_OK; i++) {
        if (!tables[i].delete_expired)
            continue;
        db_stmt *st = store__stmt(s, tables[i].delete_expired, err);
        if (!st) {
            rc = MD_E_IO;
            break;
        }
        db_bind_int64(st, 1, now_ms);
        if (db_step(st) == DB_DONE)
            *rows += (size_t)db_changes(st);
        else
            rc = store__sqlfail(s, "delete expired rows", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

/* 1 when some row names hex, 0 when none, -1 on error. Lock held. */
static int referenced(store *s, const char *hex, md_err *err)
{
    for (size_t i = 0; i < N_TABLES; i++) {
        if (!tables[i].references)
            continue;
        db_stmt *st = store__stmt(s, tables[i].references, err);
        if (!st)
            return -1;
        db_bind_text(st, 1, hex);
        int r = db_step(st);
        store__done(st);
        if (r == DB_ROW)
            return 1;
        if (r != DB_DONE) {
            store__sqlfail(s, "check blob reference", err);
            return -1;
        }
    }
    return 0;
}

static int64_t mtime_ms(const struct stat *sb)
{
    return (int64_t)sb->st_mtim.tv_sec * 1000 + sb->st_mtim.tv_nsec / 1000000;
}

/* Consider one blob file for deletion (invariants 1 and 2). */
static int sweep_blob(store *s, const char *dir, const char *hex, int64_t now_ms, size_t *n,
                      md_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, hex);
    struct stat sb;
    if (stat(path, &sb) != 0 || mtime_ms(&sb) + s->blob_grace_ms > now_ms)
        return MD_OK;   /* fresh (or gone): cheap early out without the lock */
    int rc = MD_OK;
    store__lock(s);
    pthread_mutex_lock(&s->blob_mu); /* store_int.h invariant 5 */
    int ref = referenced(s, hex, err);
    if (ref < 0)
        rc = MD_E_IO;
    else if (ref == 0 && stat(path, &sb) == 0 && mtime_ms(&sb) + s->blob_grace_ms <= now_ms) {
        if (unlink(path) == 0)
            (*n)++;
        else
            md_log(MD_LOG_WARN, "store: cannot delete blob %s: %s", hex, strerror(errno));
    }
    pthread_mutex_unlock(&s->blob_mu);
    store__unlock(s);
    return rc;
}

/* Rewrite one kept blob under the write key when it is plain or under an older key, within
 * the sweep's budget (invariant 4). */
static void rotate_blob(store *s, const char *dir, const char *hex, sweep_walk *w)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, hex);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0)
        return; /* deleted just now */
    store__crypt_kind k = store__crypt_kind_of(s->keyring, fd, NULL);
    int sized = fstat(fd, &sb) == 0;
    close(fd);
    if (k == STORE__CRYPT_UNKNOWN_KEY)
        w->unknown++;
    if (k != STORE__CRYPT_PLAIN && k != STORE__CRYPT_OLD_KEY)
        return;
    if (!sized || (uint64_t)sb.st_size > w->budget) {
        w->old_left++;
        return;
    }
    w->budget -= (uint64_t)sb.st_size;
    store_blob_reader *r = NULL;
    md_err e;
    if (store_blob_open(s, hex, &r, &e) == MD_OK) /* rewrites it (blob_read.c) */
        w->reencrypted++;
    store_blob_reader_free(r);
}

/* Walk blobs/ab/cd/; levels 0 and 1 are the two fan-out directories. */
static int walk(store *s, const char *dir, int level, sweep_walk *w, md_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return MD_OK;   /* no blobs yet */
    int rc = MD_OK;
    struct dirent *e;
    while (rc == MD_OK && (e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (level < 2) {
            if (strlen(name) != 2 || !strchr("0123456789abcdef", name[0]) ||
                !strchr("0123456789abcdef", name[1]))
                continue;   /* ".", "..", "tmp" */
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", dir, name);
            rc = walk(s, sub, level + 1, w, err);
            if (rc == MD_OK) {
                store__lock(s);
                rmdir(sub);   /* only succeeds when empty; a put mkdirs under the lock */
                store__unlock(s);
            }
        } else if (store__blob_valid_hex(name)) {
            size_t before = w->deleted;
            rc = sweep_blob(s, dir, name, w->now_ms, &w->deleted, err);
            if (rc == MD_OK && w->deleted == before && s->keyring)
                rotate_blob(s, dir, name, w);
        }
    }
    closedir(d);
    return rc;
}

static void sweep_tmp(store *s, size_t *n)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tmp", s->blob_dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[4096 + 256];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name[0] == '.' || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if (now - sb.st_mtim.tv_sec > TMP_MAX_AGE_S && unlink(path) == 0)
            (*n)++;
    }
    closedir(d);
}

int store_sweep(store *s, store_sweep_stats *st, md_err *err)
{
    store_sweep_stats local = {0};
    int64_t now_ms = md_clock_wall_ms(s->clock);
    int rc = delete_expired(s, now_ms, &local.rows_deleted, err);
    /* Refresh tokens reference no blob; a row past its expiry only refuses, so it goes. */
    size_t nref = 0;
    if (rc == MD_OK)
        rc = store_refresh_sweep(s, now_ms, &nref, err);
    local.rows_deleted += nref;
    sweep_walk w = {.now_ms = now_ms, .budget = REENCRYPT_BYTES};
    if (rc == MD_OK)
        rc = walk(s, s->blob_dir, 0, &w, err);
    local.blobs_deleted = w.deleted;
    local.blobs_reencrypted = w.reencrypted;
    local.blobs_old_key = w.old_left;
    local.blobs_unknown_key = w.unknown;
    if (w.reencrypted || w.old_left || w.unknown)
        md_log(w.unknown ? MD_LOG_WARN : MD_LOG_INFO,
               "store: key rotation: %zu blobs re-encrypted under the write key, %zu left for "
               "the next sweeps, %zu under keys not configured",
               w.reencrypted, w.old_left, w.unknown);
    sweep_tmp(s, &local.tmp_deleted);
    if (local.rows_deleted || local.blobs_deleted || local.tmp_deleted)
        md_log(MD_LOG_DEBUG, "store: swept %zu rows, %zu blobs, %zu temporary files",
               local.rows_deleted, local.blobs_deleted, local.tmp_deleted);
    if (st)
        *st = local;
    return rc;
}
