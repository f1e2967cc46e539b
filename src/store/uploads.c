/* uploads.c - the uploads table: one row per file a client uploaded (POST /api/upload), with
 * its metadata and the hash naming its blob. Several rows may share a blob (same bytes
 * uploaded twice). A row expires upload_ttl after its last use; expired rows are invisible
 * at once and deleted, with their blob when no other row needs it, by the sweeper. */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

static const char SQL_INSERT[] =
    "INSERT INTO uploads(file_id, sha256, filename, format, width, height, size, created_ms,"
    " last_used_ms, expires_ms) VALUES(?,?,?,?,?,?,?,?,?,?)";
static const char SQL_GET[] =
    "SELECT file_id, sha256, filename, format, width, height, size, created_ms, last_used_ms,"
    " expires_ms FROM uploads WHERE file_id = ? AND expires_ms > ?";
static const char SQL_TOUCH[] =
    "UPDATE uploads SET last_used_ms = ?1, expires_ms = ?1 + ?2 WHERE file_id = ?3 AND"
    " expires_ms > ?1";

static int check_meta(const store_upload *m, md_err *err)
{
    if (!m)
        return md_fail(err, MD_E_INVALID_PARAM, NULL, "upload metadata is required");
    if (strnlen(m->filename, sizeof m->filename) == sizeof m->filename)
        return md_fail(err, MD_E_INVALID_PARAM, "filename", "too long");
    if (strnlen(m->format, sizeof m->format) == sizeof m->format)
        return md_fail(err, MD_E_INVALID_PARAM, "format", "too long");
    if (m->width < 0 || m->height < 0)
        return md_fail(err, MD_E_INVALID_PARAM, m->width < 0 ? "width" : "height",
                       "must not be negative");
    return MD_OK;
}

static int insert_row(store *s, const store_upload *u, md_err *err)
{
    db_stmt *st = store__stmt(s, SQL_INSERT, err);
    if (!st)
        return MD_E_IO;
    db_bind_text(st, 1, u->file_id);
    db_bind_text(st, 2, u->sha256);
    db_bind_text(st, 3, u->filename);
    db_bind_text(st, 4, u->format);
    db_bind_int64(st, 5, u->width);
    db_bind_int64(st, 6, u->height);
    db_bind_int64(st, 7, u->size);
    db_bind_int64(st, 8, u->created_ms);
    db_bind_int64(st, 9, u->last_used_ms);
    db_bind_int64(st, 10, u->expires_ms);
    int rc = db_step(st) == DB_DONE ? MD_OK : store__sqlfail(s, "insert upload", err);
    store__done(st);
    return rc;
}

int store_uploads_create(store *s, const void *data, size_t n, const store_upload *meta,
                         store_upload *out, md_err *err)
{
    int rc = check_meta(meta, err);
    if (rc != MD_OK)
        return rc;
    store_upload u = *meta;
    memcpy(u.file_id, "f_", 2);
    store__random_hex(u.file_id + 2, 12);
    store__sha256_hex(data, n, u.sha256);
    u.size = (int64_t)n;
    char *tmp = NULL;
    rc = store__blob_write_tmp(s, data, n, true, &tmp, err);
    if (rc != MD_OK)
        return rc;
    store__lock(s);
    u.created_ms = u.last_used_ms = md_clock_wall_ms(s->clock);
    u.expires_ms = u.created_ms + s->upload_ttl_ms;
    rc = store__blob_commit(s, tmp, u.sha256, n, true, err);
    if (rc == MD_OK)
        rc = insert_row(s, &u, err);
    store__unlock(s);
    free(tmp);
    if (rc == MD_OK)
        *out = u;
    return rc;
}

static void read_row(db_stmt *st, store_upload *u)
{
    memset(u, 0, sizeof *u);
    store__col_text(st, 0, u->file_id, sizeof u->file_id);
    store__col_text(st, 1, u->sha256, sizeof u->sha256);
    store__col_text(st, 2, u->filename, sizeof u->filename);
    store__col_text(st, 3, u->format, sizeof u->format);
    u->width = db_col_int(st, 4);
    u->height = db_col_int(st, 5);
    u->size = db_col_int64(st, 6);
    u->created_ms = db_col_int64(st, 7);
    u->last_used_ms = db_col_int64(st, 8);
    u->expires_ms = db_col_int64(st, 9);
}

int store_uploads_get(store *s, const char *file_id, store_upload *out, md_err *err)
{
    if (!file_id || !file_id[0])
        return md_fail(err, MD_E_MISSING_FIELD, "file_id", "a file id is required");
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_GET, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        db_bind_text(st, 1, file_id);
        db_bind_int64(st, 2, md_clock_wall_ms(s->clock));
        int r = db_step(st);
        if (r == DB_ROW)
            read_row(st, out);
        else if (r == DB_DONE)
            rc = md_fail(err, MD_E_FILE_NOT_FOUND, "file_id", "no such file (or it expired)");
        else
            rc = store__sqlfail(s, "get upload", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

int store_uploads_touch(store *s, const char *file_id, md_err *err)
{
    if (!file_id || !file_id[0])
        return md_fail(err, MD_E_MISSING_FIELD, "file_id", "a file id is required");
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_TOUCH, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        db_bind_int64(st, 1, md_clock_wall_ms(s->clock));
        db_bind_int64(st, 2, s->upload_ttl_ms);
        db_bind_text(st, 3, file_id);
        if (db_step(st) != DB_DONE)
            rc = store__sqlfail(s, "touch upload", err);
        else if (db_changes(st) == 0)
            rc = md_fail(err, MD_E_FILE_NOT_FOUND, "file_id", "no such file (or it expired)");
        store__done(st);
    }
    store__unlock(s);
    return rc;
}
