/* audit.c - the audit_log table: one row per state-changing authenticated request (who,
 * method, route, status, request id, time), appended by the server and read back, newest
 * first, by GET /api/admin/audit. Rows are never updated; the id orders them and is the paging
 * cursor, so pages stay stable while new rows arrive. */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

static const char SQL_APPEND[] =
    "INSERT INTO audit_log(time_ms, who, method, route, status, request_id) VALUES(?,?,?,?,?,?)";
/* limit+1 rows are fetched to know whether another page follows. */
static const char SQL_PAGE[] =
    "SELECT id, time_ms, who, method, route, status, request_id FROM audit_log"
    " WHERE (?1 = 0 OR id < ?1) ORDER BY id DESC LIMIT ?2 OFFSET ?3";
static const char SQL_COUNT[] = "SELECT count(*) FROM audit_log";

#define AUDIT_MAX_PAGE 1000

/* Bind a string truncated to the size of the field it will be read back into. */
static void bind_trunc(db_stmt *st, int i, const char *v, size_t cap)
{
    v = v ? v : "";
    size_t n = strnlen(v, cap - 1);
    /* Never cut a UTF-8 sequence in two: PostgreSQL refuses text that is not UTF-8. */
    while (n > 0 && v[n] && ((unsigned char)v[n] & 0xc0) == 0x80)
        n--;
    db_bind_textn(st, i, v, (int)n);
}

/* Bind one record and run the cached insert. Lock held. */
static int insert_one(store *s, db_stmt *st, const char *who, const char *method,
                      const char *route, int status, const char *request_id, int64_t time_ms,
                      md_err *err)
{
    store_audit_entry *e = NULL;   /* only for sizeof of the fields */
    db_bind_int64(st, 1, time_ms);
    bind_trunc(st, 2, who, sizeof e->who);
    bind_trunc(st, 3, method, sizeof e->method);
    bind_trunc(st, 4, route, sizeof e->route);
    db_bind_int64(st, 5, status);
    bind_trunc(st, 6, request_id, sizeof e->request_id);
    int rc = db_step(st) == DB_DONE ? MD_OK : store__sqlfail(s, "append audit", err);
    store__done(st);
    return rc;
}

int store_audit_append(store *s, const char *who, const char *method, const char *route,
                       int status, const char *request_id, int64_t time_ms, md_err *err)
{
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_APPEND, err);
    int rc = st ? insert_one(s, st, who, method, route, status, request_id, time_ms, err)
                : MD_E_IO;
    store__unlock(s);
    return rc;
}

/* One transaction for the whole batch: one commit (WAL append + locks) instead of n. */
int store_audit_append_many(store *s, const store_audit_entry *e, size_t n, md_err *err)
{
    if (n == 0)
        return MD_OK;
    if (!e)
        return md_fail(err, MD_E_INVALID_PARAM, "entries", "NULL entries with n > 0");
    store__lock(s);
    int rc = store__begin(s, "begin audit batch", err);
    db_stmt *st = rc == MD_OK ? store__stmt(s, SQL_APPEND, err) : NULL;
    if (rc == MD_OK && !st)
        rc = MD_E_IO;
    for (size_t i = 0; rc == MD_OK && i < n; i++)
        rc = insert_one(s, st, e[i].who, e[i].method, e[i].route, e[i].status, e[i].request_id,
                        e[i].time_ms, err);
    if (rc == MD_OK)
        rc = store__commit(s, "commit audit batch", err);
    if (rc != MD_OK && db_in_tx(store__db(s)))
        store__rollback(s);
    store__unlock(s);
    return rc;
}

static void read_entry(db_stmt *st, store_audit_entry *e)
{
    memset(e, 0, sizeof *e);
    e->id = db_col_int64(st, 0);
    e->time_ms = db_col_int64(st, 1);
    store__col_text(st, 2, e->who, sizeof e->who);
    store__col_text(st, 3, e->method, sizeof e->method);
    store__col_text(st, 4, e->route, sizeof e->route);
    e->status = db_col_int(st, 5);
    store__col_text(st, 6, e->request_id, sizeof e->request_id);
}

/* Step through the page query into arr (room for limit+1). */
static int read_page(store *s, db_stmt *st, store_audit_entry *arr, size_t max, size_t *n,
                     md_err *err)
{
    int r = DB_DONE;
    *n = 0;
    while (*n < max && (r = db_step(st)) == DB_ROW)
        read_entry(st, &arr[(*n)++]);
    if (*n < max && r != DB_DONE)
        return store__sqlfail(s, "list audit", err);
    return MD_OK;
}

int store_audit_list(store *s, const store_audit_page *p, store_audit_entry **out, size_t *n,
                     int64_t *next_before, md_err *err)
{
    *out = NULL;
    *n = 0;
    *next_before = 0;
    size_t limit = p && p->limit ? p->limit : 50;
    if (limit > AUDIT_MAX_PAGE)
        return md_fail(err, MD_E_INVALID_PARAM, "limit", "must be in 1..%d", AUDIT_MAX_PAGE);
    if (p && (p->before_id < 0 || p->offset > (size_t)INT64_MAX))
        return md_fail(err, MD_E_INVALID_PARAM, p->before_id < 0 ? "before" : "offset",
                       "must not be negative");
    store_audit_entry *arr = malloc((limit + 1) * sizeof *arr);
    if (!arr)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_PAGE, err);
    int rc = st ? MD_OK : MD_E_IO;
    size_t got = 0;
    if (st) {
        db_bind_int64(st, 1, p ? p->before_id : 0);
        db_bind_int64(st, 2, (int64_t)limit + 1);
        db_bind_int64(st, 3, p ? (int64_t)p->offset : 0);
        rc = read_page(s, st, arr, limit + 1, &got, err);
        store__done(st);
    }
    store__unlock(s);
    if (rc != MD_OK || got == 0) {
        free(arr);
        return rc;
    }
    if (got > limit) {
        got = limit;
        *next_before = arr[limit - 1].id;
    }
    *out = arr;
    *n = got;
    return MD_OK;
}

int store_audit_count(store *s, int64_t *n, md_err *err)
{
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_COUNT, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        if (db_step(st) == DB_ROW)
            *n = db_col_int64(st, 0);
        else
            rc = store__sqlfail(s, "count audit", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}
