/* migrate_test.c - store open and migrations: a fresh data dir gets the latest schema, an
 * existing database at an older version is migrated without losing rows, reopening applies
 * nothing twice, two openers racing on a fresh dir both succeed, a file that is not a
 * database fails cleanly with MD_E_IO and a client-safe message, and migration 6 keeps the
 * models rows of schema 5. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store.h"
#include "common/tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>
#include <pthread.h>
/* Only to forge a database from a future modeld; the code under test never shows SQLite. */
#include <sqlite3.h>
#include <sys/stat.h>

static void test_fresh(void **state)
{
    (void)state;
    char *dir = tu_mkdir();
    char sub[600];
    snprintf(sub, sizeof sub, "%s/nested/data/", dir);   /* created, trailing slash ignored */
    store_opts o = {.data_dir = sub};
    store *s = NULL;
    md_err e;
    assert_int_equal(store_open(&o, &s, &e), MD_OK);
    int v = 0;
    assert_int_equal(store_schema_version(s, &v, &e), MD_OK);
    assert_int_equal(v, store_schema_latest());
    assert_true(v >= 3);
    assert_int_equal(store_ping(s, &e), MD_OK);
    char want[600];
    snprintf(want, sizeof want, "%s/nested/data", dir);
    assert_string_equal(store_data_dir(s), want);
    /* WAL mode leaves a -wal file beside the database once written. */
    assert_int_equal(store_audit_append(s, "k", "POST", "/x", 200, "r1", 1, &e), MD_OK);
    char wal[700];
    snprintf(wal, sizeof wal, "%s/modeld.db-wal", want);
    assert_int_equal(access(wal, F_OK), 0);
    struct stat sb;   /* key hashes and the audit log are not for other users */
    assert_int_equal(stat(wal, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    store_unref(s);
    tu_rmdir(dir);
}

static void test_existing(void **state)
{
    (void)state;
    char *dir = tu_mkdir();
    md_err e;
    store *s = NULL;
    /* Build the database an older modeld would have left: only migration 1 applied. */
    store_opts old = {.data_dir = dir, .migrate_to = 1};
    assert_int_equal(store_open(&old, &s, &e), MD_OK);
    int v = 0;
    assert_int_equal(store_schema_version(s, &v, &e), MD_OK);
    assert_int_equal(v, 1);
    store_key k = {.id = "abc123", .name = "old key", .role = 2, .created_ms = 42};
    k.hash[0] = 7;
    assert_int_equal(store_keys_insert(s, &k, &e), MD_OK);
    /* The audit table does not exist yet at version 1. */
    assert_int_equal(store_audit_append(s, "k", "POST", "/x", 200, "r", 1, &e), MD_E_IO);
    assert_string_equal(md_err_message(&e), "storage error");
    store_unref(s);

    store_opts now = {.data_dir = dir};
    assert_int_equal(store_open(&now, &s, &e), MD_OK);
    assert_int_equal(store_schema_version(s, &v, &e), MD_OK);
    assert_int_equal(v, store_schema_latest());
    store_key got;
    assert_int_equal(store_keys_get(s, "abc123", &got, &e), MD_OK);
    assert_string_equal(got.name, "old key");
    assert_int_equal(got.hash[0], 7);
    assert_int_equal(store_audit_append(s, "k", "POST", "/x", 200, "r", 1, &e), MD_OK);
    store_unref(s);

    /* Reopening at the latest version applies nothing and keeps the rows. */
    assert_int_equal(store_open(&now, &s, &e), MD_OK);
    int64_t n = 0;
    assert_int_equal(store_audit_count(s, &n, &e), MD_OK);
    assert_int_equal(n, 1);
    store_unref(s);
    tu_rmdir(dir);
}

static void *open_close(void *arg)
{
    store_opts o = {.data_dir = arg};
    store *s = NULL;
    int rc = store_open(&o, &s, NULL);
    store_unref(s);
    return (void *)(intptr_t)rc;
}

static void test_racing_openers(void **state)
{
    (void)state;
    char *dir = tu_mkdir();
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, open_close, dir);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_int_equal((int)(intptr_t)r, MD_OK);
    }
    store_opts o = {.data_dir = dir};
    store *s = NULL;
    int v = 0;
    assert_int_equal(store_open(&o, &s, NULL), MD_OK);
    assert_int_equal(store_schema_version(s, &v, NULL), MD_OK);
    assert_int_equal(v, store_schema_latest());
    store_unref(s);
    tu_rmdir(dir);
}

static void test_not_a_database(void **state)
{
    (void)state;
    char *dir = tu_mkdir();
    char p[600];
    snprintf(p, sizeof p, "%s/modeld.db", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not an SQLite database. ", f);
    fclose(f);
    store_opts o = {.data_dir = dir};
    store *s = (store *)1;
    md_err e;
    assert_int_equal(store_open(&o, &s, &e), MD_E_IO);
    assert_null(s);
    assert_null(strstr(md_err_message(&e), dir));   /* no path reaches a client */
    tu_rmdir(dir);
}

static void test_newer_schema_refused(void **state)
{
    (void)state;
    char *dir = tu_mkdir();
    store_opts o = {.data_dir = dir};
    store *s = NULL;
    assert_int_equal(store_open(&o, &s, NULL), MD_OK);
    store_unref(s);
    char path[600];
    snprintf(path, sizeof path, "%s/modeld.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO schema_version VALUES(999, 'future', 0)", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    md_err e;
    assert_int_equal(store_open(&o, &s, &e), MD_E_IO);
    assert_string_equal(md_err_message(&e), "the database was written by a newer modeld");
    assert_null(s);
    tu_rmdir(dir);
}

static void test_bad_options(void **state)
{
    (void)state;
    store *s = NULL;
    md_err e;
    store_opts none = {0};
    assert_int_equal(store_open(&none, &s, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "data_dir");
    store_opts future = {.data_dir = "/tmp", .migrate_to = 999};
    assert_int_equal(store_open(&future, &s, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "migrate_to");
    store_unref(NULL);
}

static void test_refcount(void **state)
{
    (void)state;
    char *dir = tu_mkdir();
    store_opts o = {.data_dir = dir};
    store *s = NULL;
    assert_int_equal(store_open(&o, &s, NULL), MD_OK);
    store *s2 = store_ref(s);
    assert_ptr_equal(s, s2);
    store_unref(s);
    assert_int_equal(store_ping(s2, NULL), MD_OK);   /* still open: one reference left */
    store_unref(s2);
    tu_rmdir(dir);
}

/* Migration 6 adds models.previous_version: a schema-5 row (written here with SQL, as a
 * modeld of that schema would have) keeps its values and gets "" as its previous version. */
static void test_models_previous_version_added(void **state)
{
    (void)state;
    char *dir = tu_mkdir();
    store *s = NULL;
    store_opts old = {.data_dir = dir, .migrate_to = 5};
    assert_int_equal(store_open(&old, &s, NULL), MD_OK);
    store_unref(s);
    char path[700];
    snprintf(path, sizeof path, "%s/modeld.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO models(name, active_version, canary_version, "
                                  "canary_percent, updated_ms) VALUES('iris','3','4',12.5,99)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    store_opts now = {.data_dir = dir};
    assert_int_equal(store_open(&now, &s, NULL), MD_OK);
    int v = 0;
    assert_int_equal(store_schema_version(s, &v, NULL), MD_OK);
    assert_true(v >= 6);
    store_model_state m;
    assert_int_equal(store_models_get(s, "iris", &m, NULL), MD_OK);
    assert_string_equal(m.active_version, "3");
    assert_string_equal(m.canary_version, "4");
    assert_float_equal(m.canary_percent, 12.5, 1e-12);
    assert_int_equal(m.updated_ms, 99);
    assert_string_equal(m.previous_version, "");
    strcpy(m.previous_version, "2");
    assert_int_equal(store_models_set(s, &m, NULL), MD_OK);
    assert_int_equal(store_models_get(s, "iris", &m, NULL), MD_OK);
    assert_string_equal(m.previous_version, "2");
    store_unref(s);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh),          cmocka_unit_test(test_existing),
        cmocka_unit_test(test_racing_openers), cmocka_unit_test(test_not_a_database),
        cmocka_unit_test(test_bad_options),    cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_newer_schema_refused),
        cmocka_unit_test(test_models_previous_version_added),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
