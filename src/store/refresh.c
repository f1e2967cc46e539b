/* refresh.c - the refresh_tokens table: one row per refresh token ever issued (until it
 * expires and the sweeper deletes it), holding the hash of the token, its key, its family and
 * its state. The token itself is never stored; src/auth makes it and decides what a state means.
 *
 * Each row moves through:
 *
 *     (insert) --> LIVE --store_refresh_rotate--> USED
 *                   |                               |
 *                   +--store_refresh_revoke_family--+--> REVOKED
 *                   +--store_keys_revoke (keys.c)---+
 *
 * Invariants:
 *   1. A row is marked used only by store_refresh_rotate's compare-and-set (used_ms = 0 AND
 *      revoked_ms = 0 in the WHERE), in the same transaction that inserts its successor: a
 *      token yields at most one successor, whatever the concurrency, on both back ends.
 *   2. used_ms and revoked_ms, once set, never change (updates only touch rows where they are 0).
 */
#include "store/store_int.h"

#include <string.h>

static const char SQL_INSERT[] =
    "INSERT INTO refresh_tokens(hash, family, key_id, created_ms, expires_ms, used_ms, revoked_ms)"
    " VALUES(?1, ?2, ?3, ?4, ?5, 0, 0)";
static const char SQL_GET[] =
    "SELECT hash, family, key_id, created_ms, expires_ms, used_ms, revoked_ms FROM refresh_tokens"
    " WHERE hash = ?1";
static const char SQL_USE[] =
    "UPDATE refresh_tokens SET used_ms = ?2 WHERE hash = ?1 AND used_ms = 0 AND revoked_ms = 0";
static const char SQL_REVOKE_FAMILY[] =
    "UPDATE refresh_tokens SET revoked_ms = ?2 WHERE family = ?1 AND revoked_ms = 0";
static const char SQL_SWEEP[] = "DELETE FROM refresh_tokens WHERE expires_ms < ?1";

/* 0 means "not yet", so a clock at the epoch (tests) still records the event. */
static int64_t stamp(int64_t now_ms)
{
    return now_ms > 0 ? now_ms : 1;
}

static void bind_row(db_stmt *st, const store_refresh *r)
{
    db_bind_blob(st, 1, r->hash, STORE_HASH_LEN);
    db_bind_text(st, 2, r->family);
    db_bind_text(st, 3, r->key_id);
    db_bind_int64(st, 4, r->created_ms);
    db_bind_int64(st, 5, r->expires_ms);
}

static int check_row(const store_refresh *r, md_err *err)
{
    if (!r->family[0] || !r->key_id[0])
        return md_fail(err, MD_E_INVALID_PARAM, r->family[0] ? "key_id" : "family",
                       "a refresh token needs a family and a key");
    return MD_OK;
}

int store_refresh_insert(store *s, const store_refresh *r, md_err *err)
{
    int rc = check_row(r, err);
    if (rc != MD_OK)
        return rc;
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_INSERT, err);
    rc = st ? MD_OK : MD_E_IO;
    if (st) {
        bind_row(st, r);
        rc = store__step_write(s, st, MD_E_IO, NULL, "refresh token not stored",
                               "insert refresh token", err);
    }
    store__unlock(s);
    return rc;
}

static void read_row(db_stmt *st, void *dst)
{
    store_refresh *r = dst;
    memset(r, 0, sizeof *r);
    size_t hn = 0;
    const void *h = db_col_blob(st, 0, &hn);
    if (h && hn == STORE_HASH_LEN)
        memcpy(r->hash, h, STORE_HASH_LEN);
    store__col_text(st, 1, r->family, sizeof r->family);
    store__col_text(st, 2, r->key_id, sizeof r->key_id);
    r->created_ms = db_col_int64(st, 3);
    r->expires_ms = db_col_int64(st, 4);
    r->used_ms = db_col_int64(st, 5);
    r->revoked_ms = db_col_int64(st, 6);
}

int store_refresh_get(store *s, const uint8_t hash[STORE_HASH_LEN], store_refresh *out, md_err *err)
{
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_GET, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        db_bind_blob(st, 1, hash, STORE_HASH_LEN);
        int r = db_step(st);
        if (r == DB_ROW)
            read_row(st, out);
        else if (r == DB_DONE)
            rc = md_fail(err, MD_E_NOT_FOUND, "refresh_token", "no such refresh token");
        else
            rc = store__sqlfail(s, "get refresh token", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

/* The two writes of a rotation; lock held, transaction open. */
static int rotate_locked(store *s, const uint8_t old_hash[STORE_HASH_LEN], int64_t now_ms,
                         const store_refresh *next, md_err *err)
{
    db_stmt *st = store__stmt(s, SQL_USE, err);
    if (!st)
        return MD_E_IO;
    db_bind_blob(st, 1, old_hash, STORE_HASH_LEN);
    db_bind_int64(st, 2, stamp(now_ms));
    int rc = store__step_write(s, st, MD_E_CONFLICT, "refresh_token",
                               "the refresh token was already used or revoked", "use refresh token",
                               err);
    if (rc != MD_OK)
        return rc;
    st = store__stmt(s, SQL_INSERT, err);
    if (!st)
        return MD_E_IO;
    bind_row(st, next);
    return store__step_write(s, st, MD_E_IO, NULL, "refresh token not stored",
                             "insert refresh token", err);
}

int store_refresh_rotate(store *s, const uint8_t old_hash[STORE_HASH_LEN], int64_t now_ms,
                         const store_refresh *next, md_err *err)
{
    int rc = check_row(next, err);
    if (rc != MD_OK)
        return rc;
    store__lock(s);
    rc = store__begin(s, "begin refresh rotation", err);
    if (rc == MD_OK)
        rc = rotate_locked(s, old_hash, now_ms, next, err);
    if (rc == MD_OK)
        rc = store__commit(s, "commit refresh rotation", err);
    if (rc != MD_OK)
        store__rollback(s);
    store__unlock(s);
    return rc;
}

/* Run a one-text-or-int64 parameter write and report the rows it changed. */
static int write_count(store *s, const char *sql, const char *text, int64_t v, size_t *n,
                       const char *what, md_err *err)
{
    store__lock(s);
    db_stmt *st = store__stmt(s, sql, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        if (text) {
            db_bind_text(st, 1, text);
            db_bind_int64(st, 2, v);
        } else {
            db_bind_int64(st, 1, v);
        }
        if (db_step(st) != DB_DONE)
            rc = store__sqlfail(s, what, err);
        else if (n)
            *n = (size_t)db_changes(st);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

int store_refresh_revoke_family(store *s, const char *family, int64_t now_ms, size_t *n,
                                md_err *err)
{
    if (!family || !family[0])
        return md_fail(err, MD_E_INVALID_PARAM, "family", "a family id is required");
    return write_count(s, SQL_REVOKE_FAMILY, family, stamp(now_ms), n, "revoke refresh family",
                       err);
}

int store_refresh_sweep(store *s, int64_t before_ms, size_t *n, md_err *err)
{
    return write_count(s, SQL_SWEEP, NULL, before_ms, n, "sweep refresh tokens", err);
}
