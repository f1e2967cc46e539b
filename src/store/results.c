/* results.c - the results table: one row per finished conversion (issue 4), naming the SVG
 * blob it produced and keeping its metadata JSON verbatim. Rows live ttl_ms (24 h by the
 * server's default), are invisible once expired and are deleted, with their blob when no other
 * row needs it, by the sweeper.
 *
 * Durability (store.h, store_results_create): result blobs are derived data and are not
 * fsync'd unless store_opts.results_fsync; a get checks the blob's size against svg_bytes so a
 * file torn by a power loss reads as "not found", never as a truncated SVG. */
#include "store/store_int.h"

#include "base/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char SQL_INSERT[] =
    "INSERT INTO results(result_id, file_id, svg_sha256, svg_bytes, meta, created_ms, expires_ms)"
    " VALUES(?,?,?,?,?,?,?)";
static const char SQL_GET[] =
    "SELECT result_id, file_id, svg_sha256, svg_bytes, meta, created_ms, expires_ms FROM results"
    " WHERE result_id = ? AND expires_ms > ?";

static int check_args(const char *file_id, const char *meta, int64_t ttl_ms, md_err *err)
{
    if (ttl_ms <= 0)
        return md_fail(err, MD_E_INVALID_PARAM, "ttl_ms", "must be positive");
    if (file_id && strlen(file_id) >= STORE_FILE_ID_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, "file_id", "too long");
    if (meta && strnlen(meta, STORE_RESULT_META_MAX + 1) > STORE_RESULT_META_MAX)
        return md_fail(err, MD_E_TOO_LARGE, "meta", "result metadata exceeds %d bytes",
                       STORE_RESULT_META_MAX);
    return MD_OK;
}

static int insert_row(store *s, const store_result *r, const char *meta, md_err *err)
{
    db_stmt *st = store__stmt(s, SQL_INSERT, err);
    if (!st)
        return MD_E_IO;
    db_bind_text(st, 1, r->result_id);
    db_bind_text(st, 2, r->file_id);
    db_bind_text(st, 3, r->svg_sha256);
    db_bind_int64(st, 4, r->svg_bytes);
    db_bind_text(st, 5, meta);
    db_bind_int64(st, 6, r->created_ms);
    db_bind_int64(st, 7, r->expires_ms);
    int rc = db_step(st) == DB_DONE ? MD_OK : store__sqlfail(s, "insert result", err);
    store__done(st);
    return rc;
}

int store_results_create(store *s, const char *file_id, const void *svg, size_t n,
                         const char *meta_json, int64_t ttl_ms, store_result *out, md_err *err)
{
    int rc = check_args(file_id, meta_json, ttl_ms, err);
    if (rc != MD_OK)
        return rc;
    store_result r = {0};
    memcpy(r.result_id, "r_", 2);
    store__random_hex(r.result_id + 2, 12);
    snprintf(r.file_id, sizeof r.file_id, "%s", file_id ? file_id : "");
    store__sha256_hex(svg, n, r.svg_sha256);
    r.svg_bytes = (int64_t)n;
    char *tmp = NULL;
    rc = store__blob_write_tmp(s, svg, n, s->results_fsync, &tmp, err);
    if (rc != MD_OK)
        return rc;
    store__lock(s);
    r.created_ms = md_clock_wall_ms(s->clock);
    r.expires_ms = r.created_ms + ttl_ms;
    rc = store__blob_commit(s, tmp, r.svg_sha256, n, s->results_fsync, err);
    if (rc == MD_OK)
        rc = insert_row(s, &r, meta_json ? meta_json : "{}", err);
    store__unlock(s);
    free(tmp);
    if (rc == MD_OK)
        *out = r;
    return rc;
}

static int read_row(db_stmt *st, store_result *r, char **meta)
{
    memset(r, 0, sizeof *r);
    store__col_text(st, 0, r->result_id, sizeof r->result_id);
    store__col_text(st, 1, r->file_id, sizeof r->file_id);
    store__col_text(st, 2, r->svg_sha256, sizeof r->svg_sha256);
    r->svg_bytes = db_col_int64(st, 3);
    r->created_ms = db_col_int64(st, 5);
    r->expires_ms = db_col_int64(st, 6);
    if (!meta)
        return MD_OK;
    const char *m = db_col_text(st, 4);
    *meta = strdup(m ? m : "{}");
    return *meta ? MD_OK : MD_E_NOMEM;
}

/* The row's blob must be there with svg_bytes bytes: a non-durable blob torn by a power loss
 * (empty or short) makes the result "not found" rather than a bad SVG. Any other stat failure is
 * an I/O error. No lock: a sweep deleting the blob meanwhile also means the result is gone. */
static int check_blob(store *s, const store_result *r, md_err *err)
{
    char path[4096];
    int rc = store_blob_path(s, r->svg_sha256, path, sizeof path, err);
    if (rc != MD_OK)
        return rc;
    struct stat sb;
    int found = stat(path, &sb) == 0;
    /* encrypted at rest (blob.c invariant 4) or a plain blob from before; an encrypted one is
     * "found" even without a keyring, so that reading it gives the clear key error (blob_read.c)
     * rather than a "not found" */
    uint64_t enc = store__crypt_file_size((uint64_t)r->svg_bytes);
    if (found && (sb.st_size == r->svg_bytes || (uint64_t)sb.st_size == enc))
        return MD_OK;
    if (!found && errno != ENOENT) {
        md_log(MD_LOG_ERROR, "store: stat %s: %s", path, strerror(errno));
        return md_fail(err, MD_E_IO, NULL, "storage error");
    }
    md_log(MD_LOG_WARN, "store: result %s: its SVG blob is missing or torn; reporting not found",
           r->result_id);
    return md_fail(err, MD_E_NOT_FOUND, "result_id", "no such result (or it expired)");
}

int store_results_get(store *s, const char *result_id, store_result *out, char **meta_json,
                      md_err *err)
{
    if (meta_json)
        *meta_json = NULL;
    if (!result_id || !result_id[0])
        return md_fail(err, MD_E_MISSING_FIELD, "result_id", "a result id is required");
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_GET, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        db_bind_text(st, 1, result_id);
        db_bind_int64(st, 2, md_clock_wall_ms(s->clock));
        int r = db_step(st);
        if (r == DB_ROW && read_row(st, out, meta_json) != MD_OK)
            rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
        else if (r == DB_DONE)
            rc = md_fail(err, MD_E_NOT_FOUND, "result_id", "no such result (or it expired)");
        else if (r != DB_ROW)
            rc = store__sqlfail(s, "get result", err);
        store__done(st);
    }
    store__unlock(s);
    if (rc == MD_OK)
        rc = check_blob(s, out, err);
    if (rc != MD_OK && meta_json) {
        free(*meta_json);
        *meta_json = NULL;
    }
    return rc;
}
