/* store_fixture.h - the cmocka fixture most store tests share: a store opened on a fresh
 * temporary data dir, optionally driven by a manual clock, closed and removed by the teardown.
 * Compiled (with tmpdir.c) into the tests that use it by their CMakeLists.
 *
 * Back ends: by default the store is SQLite in the data dir. With MODELD_TEST_PG set to a
 * PostgreSQL URI (tests/pg/pgtmp.sh starts a throwaway server and sets it), every fixture store
 * lives in a fresh schema of that database instead, dropped by the teardown: the same tests
 * then run against PostgreSQL (the `store_pg` CTest runs them so). */
#ifndef MD_TESTS_COMMON_STORE_FIXTURE_H
#define MD_TESTS_COMMON_STORE_FIXTURE_H

#include "base/clock.h"
#include "common/tmpdir.h"
#include "store/store.h"

#include <stdbool.h>

#define TU_CLOCK_NS 1
#define TU_CLOCK_MS 1700000000000LL /* 2023-11-14T22:13:20Z */

typedef struct tu_store {
    char *dir;           /* the data dir (new; removed by the teardown) */
    char *url;           /* PostgreSQL only: the store URL with its schema (new), else NULL */
    char schema[32];     /* PostgreSQL only: the schema to drop */
    md_manual_clock clk; /* starts at TU_CLOCK_NS / TU_CLOCK_MS; tests advance it */
    store *s;
} tu_store;

/* Setup: *state = a new tu_store whose store is opened with o (NULL = defaults; its data_dir
 * and clock are replaced) on a fresh dir, with the fixture's manual clock when manual_clock,
 * else the system clock. Returns 0, or -1 (cmocka then fails the test) when it cannot. */
int tu_store_setup_with(void **state, const store_opts *o, bool manual_clock);
/* tu_store_setup_with(state, NULL, true). */
int tu_store_setup(void **state);
/* Closes the store, removes the dir and frees the fixture. */
int tu_store_teardown(void **state);

/* True when MODELD_TEST_PG is set: the fixture's stores are PostgreSQL ones. */
bool tu_store_pg(void);
/* A keyring (new, store_keyring_free) holding first as the write key (none when NULL) and
 * second as an older one (when not NULL); fails the test if a key is refused. */
store_keyring *tu_keyring(const char *first, const char *second);
/* PostgreSQL only: create a fresh schema (its name into schema[32]) and return the store URL
 * that uses it (new, free()), or NULL when that fails. */
char *tu_pg_schema_new(char schema[32]);
/* PostgreSQL only: run SQL (no rows) on the test database; 0 when it worked. */
int tu_pg_exec(const char *sql);
/* Drop the schema made by tu_pg_schema_new (and everything in it). */
void tu_pg_schema_drop(const char *schema);

#endif
