/* audit_test.c - the audit log: append, newest-first pages by cursor and by offset, the last
 * page has no cursor, limits are checked, long values are truncated, not rejected; batches
 * (store_audit_append_many) keep their order and are stored all or none. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store.h"
#include "common/store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>
#include <sqlite3.h>

/* Each test gets a store on a fresh data dir (system clock): the fixture's s. */
static int setup(void **state)
{
    return tu_store_setup_with(state, NULL, false);
}

static store *fixture_store(void **state)
{
    return ((tu_store *)*state)->s;
}

static void fill(store *s, int n)
{
    for (int i = 1; i <= n; i++) {
        char rid[32];
        snprintf(rid, sizeof rid, "req-%d", i);
        assert_int_equal(store_audit_append(s, "key1", "POST", "/api/things", 200 + i % 3, rid,
                                            1000 + i, NULL),
                         MD_OK);
    }
}

static void test_cursor_pages(void **state)
{
    store *s = fixture_store(state);
    fill(s, 120);
    store_audit_page p = {.limit = 50};
    store_audit_entry *page = NULL;
    size_t n = 0;
    int64_t next = 0, prev_id = INT64_MAX, seen = 0;
    md_err e;
    for (int round = 0; round < 3; round++) {
        assert_int_equal(store_audit_list(s, &p, &page, &n, &next, &e), MD_OK);
        assert_int_equal(n, round < 2 ? 50 : 20);
        for (size_t i = 0; i < n; i++) {
            assert_true(page[i].id < prev_id);   /* strictly newest first, no repeats */
            prev_id = page[i].id;
        }
        seen += (int64_t)n;
        if (round == 0) {
            assert_string_equal(page[0].request_id, "req-120");
            assert_int_equal(page[0].time_ms, 1120);
            assert_string_equal(page[0].who, "key1");
            assert_string_equal(page[0].method, "POST");
            assert_string_equal(page[0].route, "/api/things");
            assert_int_equal(page[0].status, 200 + 120 % 3);
        }
        free(page);
        p.before_id = next;
        if (round < 2)
            assert_true(next > 0);
    }
    assert_int_equal(next, 0);   /* last page */
    assert_int_equal(seen, 120);
}

static void test_offset_and_limits(void **state)
{
    store *s = fixture_store(state);
    fill(s, 10);
    store_audit_page p = {.limit = 3, .offset = 8};
    store_audit_entry *page = NULL;
    size_t n = 0;
    int64_t next = -1;
    md_err e;
    assert_int_equal(store_audit_list(s, &p, &page, &n, &next, &e), MD_OK);
    assert_int_equal(n, 2);
    assert_string_equal(page[0].request_id, "req-2");
    assert_string_equal(page[1].request_id, "req-1");
    assert_int_equal(next, 0);
    free(page);
    p = (store_audit_page){.limit = 1001};
    assert_int_equal(store_audit_list(s, &p, &page, &n, &next, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "limit");
    p = (store_audit_page){.before_id = -5};
    assert_int_equal(store_audit_list(s, &p, &page, &n, &next, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "before");
    /* NULL page = the 50 newest. */
    assert_int_equal(store_audit_list(s, NULL, &page, &n, &next, &e), MD_OK);
    assert_int_equal(n, 10);
    free(page);
    int64_t count = 0;
    assert_int_equal(store_audit_count(s, &count, &e), MD_OK);
    assert_int_equal(count, 10);
}

static void test_truncation_and_nulls(void **state)
{
    store *s = fixture_store(state);
    char route[1000];
    memset(route, 'r', sizeof route - 1);
    route[sizeof route - 1] = '\0';
    assert_int_equal(store_audit_append(s, NULL, NULL, route, 500, NULL, 5, NULL), MD_OK);
    store_audit_entry *page = NULL;
    size_t n = 0;
    int64_t next;
    assert_int_equal(store_audit_list(s, NULL, &page, &n, &next, NULL), MD_OK);
    assert_int_equal(n, 1);
    assert_string_equal(page[0].who, "");
    assert_int_equal(strlen(page[0].route), sizeof page[0].route - 1);
    free(page);
}

static void test_empty(void **state)
{
    store *s = fixture_store(state);
    store_audit_entry *page = (store_audit_entry *)1;
    size_t n = 1;
    int64_t next = 1;
    assert_int_equal(store_audit_list(s, NULL, &page, &n, &next, NULL), MD_OK);
    assert_null(page);
    assert_int_equal(n, 0);
    assert_int_equal(next, 0);
}

static void *append_many(void *arg)
{
    store *s = arg;
    for (int i = 0; i < 200; i++)
        if (store_audit_append(s, "t", "DELETE", "/api/x", 204, "r", i, NULL) != MD_OK)
            return (void *)1;
    return NULL;
}

/* One store handle shared by threads (the server's case): every append lands, once. */
static void test_threads_share_a_handle(void **state)
{
    store *s = fixture_store(state);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, append_many, s);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_null(r);
    }
    int64_t count = 0;
    assert_int_equal(store_audit_count(s, &count, NULL), MD_OK);
    assert_int_equal(count, 800);
    store_audit_page p = {.limit = 1000};
    store_audit_entry *page = NULL;
    size_t n = 0;
    int64_t next;
    assert_int_equal(store_audit_list(s, &p, &page, &n, &next, NULL), MD_OK);
    assert_int_equal(n, 800);
    for (size_t i = 1; i < n; i++)
        assert_true(page[i].id < page[i - 1].id);
    free(page);
}

static void test_append_many(void **state)
{
    store *s = fixture_store(state);
    store_audit_entry b[3] = {
        {.id = 99, .time_ms = 7, .who = "k1", .method = "POST", .route = "/a", .status = 201,
         .request_id = "r1"},
        {.time_ms = 8, .method = "DELETE", .route = "/b", .status = 204, .request_id = "r2"},
        {.time_ms = 9, .who = "k3", .method = "PUT", .status = 500, .request_id = "r3"},
    };
    memset(b[2].route, 'x', sizeof b[2].route - 1);   /* full field, no NUL: cut to fit */
    b[2].route[sizeof b[2].route - 1] = 'y';
    md_err e;
    assert_int_equal(store_audit_append_many(s, b, 3, &e), MD_OK);
    assert_int_equal(store_audit_append_many(s, NULL, 0, &e), MD_OK);
    assert_int_equal(store_audit_append_many(s, NULL, 2, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "entries");
    store_audit_entry *page = NULL;
    size_t n = 0;
    int64_t next;
    assert_int_equal(store_audit_list(s, NULL, &page, &n, &next, &e), MD_OK);
    assert_int_equal(n, 3);
    /* newest first = array order reversed; ids assigned by the store, not taken from .id */
    assert_string_equal(page[2].request_id, "r1");
    assert_string_equal(page[2].who, "k1");
    assert_int_equal(page[2].status, 201);
    assert_int_equal(page[2].time_ms, 7);
    assert_true(page[2].id != 99);
    assert_string_equal(page[1].who, "");
    assert_string_equal(page[1].method, "DELETE");
    assert_string_equal(page[0].request_id, "r3");
    assert_int_equal(strlen(page[0].route), sizeof page[0].route - 1);
    assert_int_equal(page[0].route[0], 'x');
    assert_true(page[0].id > page[1].id && page[1].id > page[2].id);
    free(page);
}

/* A failure inside a batch (here a trigger refusing one row) stores none of it, leaves no
 * transaction open, and the next append works. */
/* The trigger that refuses request_id 'boom', in each back end's dialect. */
static void add_refusing_trigger(tu_store *f, sqlite3 **db)
{
    char sql[1024];
    if (tu_store_pg()) {
        snprintf(sql, sizeof sql,
                 "CREATE FUNCTION %s.refuse() RETURNS trigger LANGUAGE plpgsql AS"
                 " $$BEGIN RAISE EXCEPTION 'no'; END$$;"
                 "CREATE TRIGGER refuse BEFORE INSERT ON %s.audit_log FOR EACH ROW"
                 " WHEN (NEW.request_id = 'boom') EXECUTE FUNCTION %s.refuse()",
                 f->schema, f->schema, f->schema);
        assert_int_equal(tu_pg_exec(sql), 0);
        return;
    }
    snprintf(sql, sizeof sql, "%s/modeld.db", f->dir);
    assert_int_equal(sqlite3_open(sql, db), SQLITE_OK);
    const char *trigger = "CREATE TRIGGER refuse BEFORE INSERT ON audit_log"
                          " WHEN NEW.request_id = 'boom' BEGIN SELECT RAISE(ABORT, 'no'); END";
    assert_int_equal(sqlite3_exec(*db, trigger, NULL, NULL, NULL), SQLITE_OK);
}

static void test_append_many_all_or_none(void **state)
{
    store *s = fixture_store(state);
    sqlite3 *db = NULL;
    add_refusing_trigger(*state, &db);
    store_audit_entry b[3] = {
        {.request_id = "ok1"}, {.request_id = "boom"}, {.request_id = "ok2"}};
    md_err e;
    assert_int_equal(store_audit_append_many(s, b, 3, &e), MD_E_IO);
    int64_t count = -1;
    assert_int_equal(store_audit_count(s, &count, NULL), MD_OK);
    assert_int_equal(count, 0);
    assert_int_equal(store_audit_append_many(s, b, 1, &e), MD_OK);
    assert_int_equal(store_audit_append(s, "k", "POST", "/x", 200, "ok3", 1, &e), MD_OK);
    assert_int_equal(store_audit_count(s, &count, NULL), MD_OK);
    assert_int_equal(count, 2);
    sqlite3_close(db); /* NULL (PostgreSQL) is a no-op */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cursor_pages, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_offset_and_limits, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_truncation_and_nulls, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_empty, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_threads_share_a_handle, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_append_many, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_append_many_all_or_none, setup, tu_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
