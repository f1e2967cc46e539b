/* store_fixture.c - the shared store test fixture; see store_fixture.h. */
#include "common/store_fixture.h"

#include <libpq-fe.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

bool tu_store_pg(void)
{
    const char *u = getenv("MODELD_TEST_PG");
    return u && u[0];
}

int tu_pg_exec(const char *sql)
{
    PGconn *c = PQconnectdb(getenv("MODELD_TEST_PG"));
    int ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PGresult *r = PQexec(c, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            fprintf(stderr, "store_fixture: %s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    } else {
        fprintf(stderr, "store_fixture: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return ok ? 0 : -1;
}

char *tu_pg_schema_new(char schema[32])
{
    unsigned char rnd[6];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return NULL;
    snprintf(schema, 32, "t_%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
             rnd[5]);
    char sql[64];
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
    if (tu_pg_exec(sql) != 0)
        return NULL;
    const char *base = getenv("MODELD_TEST_PG");
    size_t n = strlen(base) + 64;
    char *url = malloc(n);
    if (url)
        snprintf(url, n, "%s%soptions=-csearch_path%%3D%s", base, strchr(base, '?') ? "&" : "?",
                 schema);
    return url;
}

void tu_pg_schema_drop(const char *schema)
{
    char sql[64];
    snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
    tu_pg_exec(sql);
}

static void fixture_free(tu_store *f)
{
    if (f->url)
        tu_pg_schema_drop(f->schema);
    free(f->url);
    tu_rmdir(f->dir);
    free(f);
}

int tu_store_setup_with(void **state, const store_opts *o, bool manual_clock)
{
    tu_store *f = calloc(1, sizeof *f);
    if (!f || !(f->dir = tu_mkdir())) {
        free(f);
        return -1;
    }
    if (tu_store_pg() && !(f->url = tu_pg_schema_new(f->schema))) {
        fixture_free(f);
        return -1;
    }
    md_manual_clock_init(&f->clk, TU_CLOCK_NS, TU_CLOCK_MS);
    store_opts so = o ? *o : (store_opts){0};
    so.data_dir = f->dir;
    so.clock = manual_clock ? &f->clk.clock : NULL;
    if (f->url)
        so.url = f->url;
    if (store_open(&so, &f->s, NULL) != MD_OK) {
        fixture_free(f);
        return -1;
    }
    *state = f;
    return 0;
}

int tu_store_setup(void **state)
{
    return tu_store_setup_with(state, NULL, true);
}

int tu_store_teardown(void **state)
{
    tu_store *f = *state;
    store_unref(f->s);
    fixture_free(f);
    return 0;
}

store_keyring *tu_keyring(const char *first, const char *second)
{
    store_keyring *kr = NULL;
    assert_int_equal(store_keyring_new(&kr, NULL), MD_OK);
    if (first)
        assert_int_equal(store_keyring_add(kr, first, strlen(first), "k", NULL), MD_OK);
    if (second)
        assert_int_equal(store_keyring_add(kr, second, strlen(second), "k", NULL), MD_OK);
    return kr;
}
