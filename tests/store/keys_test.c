/* keys_test.c - the api_keys table: insert, get, conflict, list order, revoke (idempotent,
 * keeps the first time), active count. */
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

typedef tu_store fixture;

static store_key mk(const char *id, const char *name, int role, int64_t created)
{
    store_key k = {.role = role, .created_ms = created};
    snprintf(k.id, sizeof k.id, "%s", id);
    snprintf(k.name, sizeof k.name, "%s", name);
    for (int i = 0; i < STORE_HASH_LEN; i++)
        k.hash[i] = (uint8_t)(i + role);
    return k;
}

static void test_insert_get(void **state)
{
    fixture *f = *state;
    md_err e;
    store_key k = mk("aaa", "ci", 2, 10), got;
    assert_int_equal(store_keys_insert(f->s, &k, &e), MD_OK);
    assert_int_equal(store_keys_get(f->s, "aaa", &got, &e), MD_OK);
    assert_string_equal(got.name, "ci");
    assert_int_equal(got.role, 2);
    assert_int_equal(got.created_ms, 10);
    assert_int_equal(got.revoked_ms, 0);
    assert_memory_equal(got.hash, k.hash, STORE_HASH_LEN);
    assert_int_equal(store_keys_insert(f->s, &k, &e), MD_E_CONFLICT);
    assert_int_equal(store_keys_get(f->s, "nope", &got, &e), MD_E_NOT_FOUND);
    store_key empty = {0};
    assert_int_equal(store_keys_insert(f->s, &empty, &e), MD_E_INVALID_PARAM);
}

static void test_list_revoke(void **state)
{
    fixture *f = *state;
    md_err e;
    store_key a = mk("a1", "first", 1, 100), b = mk("b2", "second", 3, 200);
    assert_int_equal(store_keys_insert(f->s, &b, &e), MD_OK);
    assert_int_equal(store_keys_insert(f->s, &a, &e), MD_OK);
    store_key *list = NULL;
    size_t n = 0;
    assert_int_equal(store_keys_list(f->s, &list, &n, &e), MD_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, "a1");   /* oldest first */
    assert_string_equal(list[1].id, "b2");
    free(list);
    size_t active = 0;
    assert_int_equal(store_keys_count_active(f->s, &active, &e), MD_OK);
    assert_int_equal(active, 2);

    assert_int_equal(store_keys_revoke(f->s, "a1", &e), MD_OK);
    store_key got;
    assert_int_equal(store_keys_get(f->s, "a1", &got, &e), MD_OK);
    assert_int_equal(got.revoked_ms, 1700000000000);
    f->clk.ms += 5000;
    assert_int_equal(store_keys_revoke(f->s, "a1", &e), MD_OK);   /* again: no change */
    assert_int_equal(store_keys_get(f->s, "a1", &got, &e), MD_OK);
    assert_int_equal(got.revoked_ms, 1700000000000);
    assert_int_equal(store_keys_revoke(f->s, "zz", &e), MD_E_NOT_FOUND);
    assert_string_equal(e.field, "id");
    assert_int_equal(store_keys_count_active(f->s, &active, &e), MD_OK);
    assert_int_equal(active, 1);
}

static void test_empty_list(void **state)
{
    fixture *f = *state;
    store_key *list = (store_key *)1;
    size_t n = 9;
    assert_int_equal(store_keys_list(f->s, &list, &n, NULL), MD_OK);
    assert_null(list);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_get, tu_store_setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_list_revoke, tu_store_setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_empty_list, tu_store_setup, tu_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
