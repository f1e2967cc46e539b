/* keys.c - the api_keys table: one row per API key, holding its public id, name, role and the
 * hash of the secret. The secret itself is never stored; src/auth makes and checks it. */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

static const char SQL_INSERT[] =
    "INSERT INTO api_keys(id, name, role, hash, created_ms, revoked_ms) VALUES(?,?,?,?,?,0)";
static const char SQL_GET[] =
    "SELECT id, name, role, hash, created_ms, revoked_ms FROM api_keys WHERE id = ?";
static const char SQL_LIST[] =
    "SELECT id, name, role, hash, created_ms, revoked_ms FROM api_keys ORDER BY created_ms, id";
static const char SQL_REVOKE[] =
    "UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms = 0";
static const char SQL_REVOKE_REFRESH[] =
    "UPDATE refresh_tokens SET revoked_ms = ? WHERE key_id = ? AND revoked_ms = 0";
static const char SQL_EXISTS[] = "SELECT count(*) FROM api_keys WHERE id = ?";
static const char SQL_COUNT_ACTIVE[] = "SELECT count(*) FROM api_keys WHERE revoked_ms = 0";

/* A store__row_fn: dst is a store_key. */
static void read_row(db_stmt *st, void *dst)
{
    store_key *k = dst;
    memset(k, 0, sizeof *k);
    store__col_text(st, 0, k->id, sizeof k->id);
    store__col_text(st, 1, k->name, sizeof k->name);
    k->role = db_col_int(st, 2);
    size_t hn = 0;
    const void *h = db_col_blob(st, 3, &hn);
    if (h && hn == STORE_HASH_LEN)
        memcpy(k->hash, h, STORE_HASH_LEN);
    k->created_ms = db_col_int64(st, 4);
    k->revoked_ms = db_col_int64(st, 5);
}

int store_keys_insert(store *s, const store_key *k, md_err *err)
{
    if (!k->id[0])
        return md_fail(err, MD_E_INVALID_PARAM, "id", "a key id is required");
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_INSERT, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        db_bind_text(st, 1, k->id);
        db_bind_text(st, 2, k->name);
        db_bind_int64(st, 3, k->role);
        db_bind_blob(st, 4, k->hash, STORE_HASH_LEN);
        db_bind_int64(st, 5, k->created_ms);
        int r = db_step(st);
        if (r == DB_CONSTRAINT)
            rc = md_fail(err, MD_E_CONFLICT, "id", "a key with this id exists");
        else if (r != DB_DONE)
            rc = store__sqlfail(s, "insert key", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

int store_keys_get(store *s, const char *id, store_key *out, md_err *err)
{
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_GET, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        db_bind_text(st, 1, id);
        int r = db_step(st);
        if (r == DB_ROW)
            read_row(st, out);
        else if (r == DB_DONE)
            rc = md_fail(err, MD_E_NOT_FOUND, "id", "no such key");
        else
            rc = store__sqlfail(s, "get key", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

int store_keys_list(store *s, store_key **out, size_t *n, md_err *err)
{
    void *rows = NULL;
    int rc = store__list_rows(s, SQL_LIST, sizeof **out, read_row, "list keys", &rows, n, err);
    *out = rows;
    return rc;
}

static int count_where(store *s, const char *sql, const char *id, int64_t *out, md_err *err)
{
    db_stmt *st = store__stmt(s, sql, err);
    if (!st)
        return MD_E_IO;
    if (id)
        db_bind_text(st, 1, id);
    int rc = MD_OK;
    if (db_step(st) == DB_ROW)
        *out = db_col_int64(st, 0);
    else
        rc = store__sqlfail(s, "count keys", err);
    store__done(st);
    return rc;
}

/* Bind now and id to a revocation statement and run it; lock held. */
static int revoke_step(store *s, const char *sql, const char *id, int64_t now, const char *what,
                       md_err *err)
{
    db_stmt *st = store__stmt(s, sql, err);
    if (!st)
        return MD_E_IO;
    db_bind_int64(st, 1, now);
    db_bind_text(st, 2, id);
    int rc = db_step(st) == DB_DONE ? MD_OK : store__sqlfail(s, what, err);
    store__done(st);
    return rc;
}

/* The key row and its refresh tokens in one transaction: a key never comes back revoked
 * while a token of it still refreshes. Lock held, transaction open. */
static int revoke_locked(store *s, const char *id, md_err *err)
{
    int64_t exists = 0;
    int rc = count_where(s, SQL_EXISTS, id, &exists, err);
    if (rc == MD_OK && exists == 0)
        rc = md_fail(err, MD_E_NOT_FOUND, "id", "no such key");
    /* 0 means "active", so a clock at the epoch (tests) still records a revocation. */
    int64_t now = md_clock_wall_ms(s->clock);
    now = now > 0 ? now : 1;
    if (rc == MD_OK)
        rc = revoke_step(s, SQL_REVOKE, id, now, "revoke key", err);
    if (rc == MD_OK)
        rc = revoke_step(s, SQL_REVOKE_REFRESH, id, now, "revoke refresh tokens", err);
    return rc;
}

int store_keys_revoke(store *s, const char *id, md_err *err)
{
    store__lock(s);
    int rc = store__begin(s, "begin revoke key", err);
    if (rc == MD_OK)
        rc = revoke_locked(s, id, err);
    if (rc == MD_OK)
        rc = store__commit(s, "commit revoke key", err);
    if (rc != MD_OK)
        store__rollback(s);
    store__unlock(s);
    return rc;
}

int store_keys_count_active(store *s, size_t *n, md_err *err)
{
    int64_t v = 0;
    store__lock(s);
    int rc = count_where(s, SQL_COUNT_ACTIVE, NULL, &v, err);
    store__unlock(s);
    *n = (size_t)v;
    return rc;
}
