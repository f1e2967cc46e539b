/* refresh_test.c - the refresh_tokens table: insert and get by hash, rotation as a
 * compare-and-set (a token yields one successor), family revocation, revocation with the key,
 * the sweeper's deletion of expired rows. Runs on SQLite and, under store_pg, PostgreSQL. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store.h"
#include "common/store_fixture.h"

#include <stdio.h>
#include <string.h>

typedef tu_store fixture;

static store_refresh mk(uint8_t seed, const char *family, const char *key, int64_t expires)
{
    store_refresh r = {.created_ms = 10, .expires_ms = expires};
    for (int i = 0; i < STORE_HASH_LEN; i++)
        r.hash[i] = (uint8_t)(i * 7 + seed);
    snprintf(r.family, sizeof r.family, "%s", family);
    snprintf(r.key_id, sizeof r.key_id, "%s", key);
    return r;
}

static void test_insert_get(void **state)
{
    fixture *f = *state;
    md_err e;
    store_refresh a = mk(1, "fam1", "k1", 1000), got;
    assert_int_equal(store_refresh_insert(f->s, &a, &e), MD_OK);
    assert_int_equal(store_refresh_get(f->s, a.hash, &got, &e), MD_OK);
    assert_memory_equal(got.hash, a.hash, STORE_HASH_LEN);
    assert_string_equal(got.family, "fam1");
    assert_string_equal(got.key_id, "k1");
    assert_int_equal(got.expires_ms, 1000);
    assert_int_equal(got.used_ms, 0);
    assert_int_equal(got.revoked_ms, 0);
    assert_int_equal(store_refresh_insert(f->s, &a, &e), MD_E_CONFLICT);
    store_refresh b = mk(2, "", "k1", 1000);
    assert_int_equal(store_refresh_insert(f->s, &b, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "family");
    assert_int_equal(store_refresh_get(f->s, b.hash, &got, &e), MD_E_NOT_FOUND);
    assert_string_equal(e.field, "refresh_token");
}

static void test_rotate_once(void **state)
{
    fixture *f = *state;
    md_err e;
    store_refresh a = mk(1, "fam", "k1", 1000), b = mk(2, "fam", "k1", 2000),
                  c = mk(3, "fam", "k1", 2000), got;
    assert_int_equal(store_refresh_insert(f->s, &a, &e), MD_OK);
    assert_int_equal(store_refresh_rotate(f->s, a.hash, 500, &b, &e), MD_OK);
    assert_int_equal(store_refresh_get(f->s, a.hash, &got, &e), MD_OK);
    assert_int_equal(got.used_ms, 500);
    /* the second use loses the compare-and-set, and its successor is not stored */
    assert_int_equal(store_refresh_rotate(f->s, a.hash, 600, &c, &e), MD_E_CONFLICT);
    assert_int_equal(store_refresh_get(f->s, c.hash, &got, &e), MD_E_NOT_FOUND);
    assert_int_equal(store_refresh_get(f->s, a.hash, &got, &e), MD_OK);
    assert_int_equal(got.used_ms, 500); /* the first use time stays */
    assert_int_equal(store_refresh_get(f->s, b.hash, &got, &e), MD_OK);
    assert_int_equal(got.used_ms, 0);
}

static void test_revoke_family_and_key(void **state)
{
    fixture *f = *state;
    md_err e;
    store_refresh a = mk(1, "fam", "k1", 1000), b = mk(2, "fam", "k1", 1000),
                  other = mk(3, "fam2", "k2", 1000), got;
    assert_int_equal(store_refresh_insert(f->s, &a, &e), MD_OK);
    assert_int_equal(store_refresh_insert(f->s, &b, &e), MD_OK);
    assert_int_equal(store_refresh_insert(f->s, &other, &e), MD_OK);
    size_t n = 0;
    assert_int_equal(store_refresh_revoke_family(f->s, "fam", 700, &n, &e), MD_OK);
    assert_int_equal(n, 2);
    assert_int_equal(store_refresh_revoke_family(f->s, "fam", 800, &n, &e), MD_OK);
    assert_int_equal(n, 0); /* already revoked: the first time stays */
    assert_int_equal(store_refresh_get(f->s, b.hash, &got, &e), MD_OK);
    assert_int_equal(got.revoked_ms, 700);
    /* a revoked token cannot be rotated */
    store_refresh c = mk(4, "fam", "k1", 1000);
    assert_int_equal(store_refresh_rotate(f->s, b.hash, 900, &c, &e), MD_E_CONFLICT);
    /* revoking key k2 revokes its tokens */
    store_key k = {.role = 1, .created_ms = 1};
    snprintf(k.id, sizeof k.id, "k2");
    assert_int_equal(store_keys_insert(f->s, &k, &e), MD_OK);
    assert_int_equal(store_refresh_get(f->s, other.hash, &got, &e), MD_OK);
    assert_int_equal(got.revoked_ms, 0);
    assert_int_equal(store_keys_revoke(f->s, "k2", &e), MD_OK);
    assert_int_equal(store_refresh_get(f->s, other.hash, &got, &e), MD_OK);
    assert_true(got.revoked_ms != 0);
    assert_int_equal(store_refresh_revoke_family(f->s, "", 1, NULL, &e), MD_E_INVALID_PARAM);
}

static void test_sweep(void **state)
{
    fixture *f = *state;
    md_err e;
    store_refresh old = mk(1, "fam", "k1", 100), live = mk(2, "fam", "k1", 5000), got;
    assert_int_equal(store_refresh_insert(f->s, &old, &e), MD_OK);
    assert_int_equal(store_refresh_insert(f->s, &live, &e), MD_OK);
    size_t n = 0;
    assert_int_equal(store_refresh_sweep(f->s, 1000, &n, &e), MD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_refresh_get(f->s, old.hash, &got, &e), MD_E_NOT_FOUND);
    assert_int_equal(store_refresh_get(f->s, live.hash, &got, &e), MD_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_get, tu_store_setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_rotate_once, tu_store_setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_revoke_family_and_key, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_sweep, tu_store_setup, tu_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
