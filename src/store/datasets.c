/* datasets.c - the datasets table (migration 10, issue 11 §4): CSV and JSON-lines files kept
 * until someone deletes them, for schedules (their input) and retraining (its data).
 *
 * Uploads expire an hour after their last use, which is right for a file a client converts
 * once and wrong for the input of a nightly schedule; a dataset is the durable kind.
 *
 * Invariants:
 *   1. A row names its blob by SHA-256. store_datasets_create writes the blob (tmp + fsync +
 *      rename) and inserts the row under one hold of the store lock; store_datasets_add names
 *      a blob its caller put moments before (a spooled upload adopted in blocks), which the
 *      sweeper's grace period protects until the row exists (sweep.c invariant 1; this table
 *      is among its blob references).
 *   2. Rows never expire; store_datasets_delete is the only way one goes, and it refuses while
 *      a schedule names the dataset: the check and the delete run in one transaction, so a
 *      schedule added at the same time either sees the dataset or makes the delete fail.
 *   3. The store does not read the file (the caller counted rows and parsed the header).
 */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COLS "id, owner, name, format, rows_count, columns, size, sha256, created_ms"

static const char SQL_INSERT[] = "INSERT INTO datasets(" COLS ") VALUES(?,?,?,?,?,?,?,?,?)";
static const char SQL_GET[] = "SELECT " COLS " FROM datasets WHERE id = ?";
static const char SQL_LIST[] =
    "SELECT " COLS " FROM datasets ORDER BY created_ms DESC, id DESC LIMIT ? OFFSET ?";
static const char SQL_COUNT[] = "SELECT count(*) FROM datasets";
static const char SQL_USED[] = "SELECT 1 FROM schedules WHERE input = ? LIMIT 1";
static const char SQL_DELETE[] = "DELETE FROM datasets WHERE id = ?";

/* A store__row_fn: dst is a store_dataset. */
static void read_row(db_stmt *st, void *dst)
{
    store_dataset *d = dst;
    memset(d, 0, sizeof *d);
    store__col_text(st, 0, d->id, sizeof d->id);
    store__col_text(st, 1, d->owner, sizeof d->owner);
    store__col_text(st, 2, d->name, sizeof d->name);
    store__col_text(st, 3, d->format, sizeof d->format);
    d->rows = db_col_int64(st, 4);
    store__col_text(st, 5, d->columns, sizeof d->columns);
    d->size = db_col_int64(st, 6);
    store__col_text(st, 7, d->sha256, sizeof d->sha256);
    d->created_ms = db_col_int64(st, 8);
}

static int check_meta(const store_dataset *m, md_err *err)
{
    if (!m)
        return md_fail(err, MD_E_INVALID_PARAM, NULL, "dataset metadata is required");
    if (strnlen(m->owner, sizeof m->owner) == sizeof m->owner)
        return md_fail(err, MD_E_INVALID_PARAM, "owner", "too long");
    if (strnlen(m->name, sizeof m->name) == sizeof m->name)
        return md_fail(err, MD_E_INVALID_PARAM, "name", "longer than %zu bytes",
                       sizeof m->name - 1);
    size_t f = strnlen(m->format, sizeof m->format);
    if (f == 0 || f == sizeof m->format)
        return md_fail(err, MD_E_INVALID_PARAM, "format", "required, at most %zu bytes",
                       sizeof m->format - 1);
    size_t c = strnlen(m->columns, sizeof m->columns);
    if (c == 0 || c == sizeof m->columns)
        return md_fail(err, MD_E_INVALID_PARAM, "columns",
                       "the header must be 1 to %zu bytes as JSON", sizeof m->columns - 1);
    if (m->rows < 0)
        return md_fail(err, MD_E_INVALID_PARAM, "rows", "must not be negative");
    return MD_OK;
}

static int insert_row(store *s, const store_dataset *d, md_err *err)
{
    db_stmt *st = store__stmt(s, SQL_INSERT, err);
    if (!st)
        return MD_E_IO;
    db_bind_text(st, 1, d->id);
    db_bind_text(st, 2, d->owner);
    db_bind_text(st, 3, d->name);
    db_bind_text(st, 4, d->format);
    db_bind_int64(st, 5, d->rows);
    db_bind_text(st, 6, d->columns);
    db_bind_int64(st, 7, d->size);
    db_bind_text(st, 8, d->sha256);
    db_bind_int64(st, 9, d->created_ms);
    int rc = db_step(st) == DB_DONE ? MD_OK : store__sqlfail(s, "insert dataset", err);
    store__done(st);
    return rc;
}

int store_datasets_create(store *s, const void *data, size_t n, const store_dataset *meta,
                          store_dataset *out, md_err *err)
{
    int rc = check_meta(meta, err);
    if (rc != MD_OK)
        return rc;
    store_dataset *d = malloc(sizeof *d);
    if (!d)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    *d = *meta;
    memcpy(d->id, "d_", 2);
    store__random_hex(d->id + 2, 12);
    store__sha256_hex(data, n, d->sha256);
    d->size = (int64_t)n;
    char *tmp = NULL;
    rc = store__blob_write_tmp(s, data, n, true, &tmp, err);
    if (rc == MD_OK) {
        store__lock(s); /* invariant 1 */
        d->created_ms = md_clock_wall_ms(s->clock);
        rc = store__blob_commit(s, tmp, d->sha256, n, true, err);
        if (rc == MD_OK)
            rc = insert_row(s, d, err);
        store__unlock(s);
    }
    free(tmp);
    if (rc == MD_OK)
        *out = *d;
    free(d);
    return rc;
}

int store_datasets_add(store *s, const char *sha256, int64_t size, const store_dataset *meta,
                       store_dataset *out, md_err *err)
{
    int rc = check_meta(meta, err);
    if (rc != MD_OK)
        return rc;
    if (!sha256 || !store__blob_valid_hex(sha256) || size < 0)
        return md_fail(err, MD_E_INVALID_PARAM, "sha256", "not a blob name");
    store_dataset *d = malloc(sizeof *d);
    if (!d)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    *d = *meta;
    memcpy(d->id, "d_", 2);
    store__random_hex(d->id + 2, 12);
    snprintf(d->sha256, sizeof d->sha256, "%s", sha256);
    d->size = size;
    store__lock(s);
    d->created_ms = md_clock_wall_ms(s->clock);
    rc = insert_row(s, d, err);
    store__unlock(s);
    if (rc == MD_OK)
        *out = *d;
    free(d);
    return rc;
}

int store_datasets_get(store *s, const char *id, store_dataset *out, md_err *err)
{
    return store__get_row(s, SQL_GET, id ? id : "", read_row, out, "dataset_id", "no such dataset",
                          "get dataset", err);
}

static int count_locked(store *s, int64_t *total, md_err *err)
{
    db_stmt *st = store__stmt(s, SQL_COUNT, err);
    if (!st)
        return MD_E_IO;
    int rc = MD_OK;
    if (db_step(st) == DB_ROW)
        *total = db_col_int64(st, 0);
    else
        rc = store__sqlfail(s, "count datasets", err);
    store__done(st);
    return rc;
}

int store_datasets_list(store *s, size_t offset, size_t limit, store_dataset **out, size_t *n,
                        int64_t *total, md_err *err)
{
    *out = NULL;
    *n = 0;
    if (limit == 0 || limit > 1000)
        return md_fail(err, MD_E_INVALID_PARAM, "limit", "must be in 1..1000");
    if (offset > (size_t)INT64_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, "offset", "too large");
    void *rows = NULL;
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_LIST, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        db_bind_int64(st, 1, (int64_t)limit);
        db_bind_int64(st, 2, (int64_t)offset);
        rc = store__collect_rows(s, st, sizeof **out, read_row, limit, "list datasets", &rows, n,
                                 err);
        store__done(st);
    }
    if (rc == MD_OK && total)
        rc = count_locked(s, total, err);
    store__unlock(s);
    if (rc != MD_OK) {
        free(rows);
        *n = 0;
        return rc;
    }
    *out = rows;
    return MD_OK;
}

/* *used: 1 when a schedule names id as its input, else 0. */
static int used_by_schedule(store *s, const char *id, int *used, md_err *err)
{
    db_stmt *st = store__stmt(s, SQL_USED, err);
    if (!st)
        return MD_E_IO;
    db_bind_text(st, 1, id);
    int r = db_step(st);
    int rc = MD_OK;
    if (r == DB_ROW)
        *used = 1;
    else if (r == DB_DONE)
        *used = 0;
    else
        rc = store__sqlfail(s, "check dataset use", err);
    store__done(st);
    return rc;
}

static int delete_locked(store *s, const char *id, md_err *err)
{
    int used = 0;
    int rc = used_by_schedule(s, id, &used, err);
    if (rc == MD_OK && used)
        return md_fail(err, MD_E_CONFLICT, "dataset_id",
                       "a schedule uses this dataset as its input; delete the schedule first");
    db_stmt *st = rc == MD_OK ? store__stmt(s, SQL_DELETE, err) : NULL;
    if (rc == MD_OK && !st)
        rc = MD_E_IO;
    if (st) {
        db_bind_text(st, 1, id);
        rc = store__step_write(s, st, MD_E_NOT_FOUND, "dataset_id", "no such dataset",
                               "delete dataset", err);
    }
    return rc;
}

int store_datasets_delete(store *s, const char *id, md_err *err)
{
    if (!id || !*id)
        return md_fail(err, MD_E_NOT_FOUND, "dataset_id", "no such dataset");
    store__lock(s);
    int rc = store__begin(s, "begin delete dataset", err); /* invariant 2 */
    if (rc == MD_OK) {
        rc = delete_locked(s, id, err);
        if (rc == MD_OK)
            rc = store__commit(s, "commit delete dataset", err);
        if (rc != MD_OK)
            store__rollback(s);
    }
    store__unlock(s);
    return rc;
}
