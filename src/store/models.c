/* models.c - the models table: what the model registry (src/models) remembers of each model
 * across restarts: its active version, its canary (version and percentage) and the version
 * that was active before (what a rollback returns to when no standby is loaded).
 *
 * Invariants:
 *   1. One row per model name; store_models_set replaces the whole row, so a reader never sees
 *      the active version of one change with the canary of another.
 *   2. The store does not interpret versions: the registry checks them against what is on disk
 *      when it restores them.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

static const char SQL_GET[] = "SELECT name, active_version, canary_version, canary_percent, "
                              "updated_ms, previous_version FROM models WHERE name = ?";
static const char SQL_SET[] =
    "INSERT INTO models(name, active_version, canary_version, canary_percent, "
    "updated_ms, previous_version) VALUES(?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET "
    "active_version = excluded.active_version, canary_version = excluded.canary_version, "
    "canary_percent = excluded.canary_percent, updated_ms = excluded.updated_ms, "
    "previous_version = excluded.previous_version";
static const char SQL_LIST[] = "SELECT name, active_version, canary_version, canary_percent, "
                               "updated_ms, previous_version FROM models ORDER BY name";
static const char SQL_DELETE[] = "DELETE FROM models WHERE name = ?";

/* A store__row_fn: dst is a store_model_state. */
static void read_row(db_stmt *st, void *dst)
{
    store_model_state *m = dst;
    memset(m, 0, sizeof *m);
    store__col_text(st, 0, m->name, sizeof m->name);
    store__col_text(st, 1, m->active_version, sizeof m->active_version);
    store__col_text(st, 2, m->canary_version, sizeof m->canary_version);
    m->canary_percent = db_col_double(st, 3);
    m->updated_ms = db_col_int64(st, 4);
    store__col_text(st, 5, m->previous_version, sizeof m->previous_version);
}

int store_models_get(store *s, const char *name, store_model_state *out, md_err *err)
{
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_GET, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        db_bind_text(st, 1, name);
        int r = db_step(st);
        if (r == DB_ROW)
            read_row(st, out);
        else if (r == DB_DONE)
            rc = md_fail(err, MD_E_NOT_FOUND, "name", "no state remembered for this model");
        else
            rc = store__sqlfail(s, "get model state", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

static int check_state(const store_model_state *m, md_err *err)
{
    if (!m->name[0] || strnlen(m->name, sizeof m->name) == sizeof m->name)
        return md_fail(err, MD_E_INVALID_PARAM, "name", "a model name of 1..63 bytes is required");
    if (strnlen(m->active_version, sizeof m->active_version) == sizeof m->active_version)
        return md_fail(err, MD_E_INVALID_PARAM, "active_version", "too long");
    if (strnlen(m->canary_version, sizeof m->canary_version) == sizeof m->canary_version)
        return md_fail(err, MD_E_INVALID_PARAM, "canary_version", "too long");
    if (strnlen(m->previous_version, sizeof m->previous_version) == sizeof m->previous_version)
        return md_fail(err, MD_E_INVALID_PARAM, "previous_version", "too long");
    if (!(m->canary_percent >= 0 && m->canary_percent <= 100))
        return md_fail(err, MD_E_INVALID_PARAM, "canary_percent", "must be in 0..100");
    return MD_OK;
}

int store_models_set(store *s, const store_model_state *m, md_err *err)
{
    int rc = check_state(m, err);
    if (rc != MD_OK)
        return rc;
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_SET, err);
    rc = st ? MD_OK : MD_E_IO;
    if (st) {
        db_bind_text(st, 1, m->name);
        db_bind_text(st, 2, m->active_version);
        db_bind_text(st, 3, m->canary_version);
        db_bind_double(st, 4, m->canary_percent);
        db_bind_int64(st, 5, md_clock_wall_ms(s->clock));
        db_bind_text(st, 6, m->previous_version);
        if (db_step(st) != DB_DONE)
            rc = store__sqlfail(s, "set model state", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}

int store_models_list(store *s, store_model_state **out, size_t *n, md_err *err)
{
    void *rows = NULL;
    int rc = store__list_rows(s, SQL_LIST, sizeof **out, read_row, "list model states", &rows, n,
                              err);
    *out = rows;
    return rc;
}

int store_models_delete(store *s, const char *name, md_err *err)
{
    store__lock(s);
    db_stmt *st = store__stmt(s, SQL_DELETE, err);
    int rc = st ? MD_OK : MD_E_IO;
    if (st) {
        db_bind_text(st, 1, name);
        if (db_step(st) != DB_DONE)
            rc = store__sqlfail(s, "delete model state", err);
        store__done(st);
    }
    store__unlock(s);
    return rc;
}
