/* pg_test.c - what only the PostgreSQL back end has: the SQL rewrites of db_pg.c (always run),
 * and, against a live server (MODELD_TEST_PG, set by tests/pg/pgtmp.sh; skipped without it):
 * nodes racing to migrate one database, concurrent job claims from several store handles, the
 * pool under more threads than connections, and a server restart in the middle of a run. */
#include "common/store_fixture.h"
#include "store/db.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static void test_params_rewrite(void **state)
{
    (void)state;
    int n = 0;
    char *t = db_pg_params("SELECT a FROM x WHERE b = ?2 AND c = ?1 AND d = '?' AND e = ?", &n);
    assert_non_null(t);
    assert_string_equal(t, "SELECT a FROM x WHERE b = $2 AND c = $1 AND d = '?' AND e = $3");
    assert_int_equal(n, 3);
    free(t);
    t = db_pg_params("VALUES(?,?,'it''s ?',?)", &n);
    assert_string_equal(t, "VALUES($1,$2,'it''s ?',$3)");
    assert_int_equal(n, 3);
    free(t);
}

static void test_ddl_rewrite(void **state)
{
    (void)state;
    char *t = db_pg_ddl("CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL,"
                        " r REAL, h BLOB, s TEXT DEFAULT 'INTEGER', INTEGERS INTEGER)");
    assert_non_null(t);
    assert_string_equal(t, "CREATE TABLE a (id BIGSERIAL PRIMARY KEY, n BIGINT NOT NULL,"
                           " r DOUBLE PRECISION, h BYTEA, s TEXT DEFAULT 'INTEGER',"
                           " INTEGERS BIGINT)");
    free(t);
}

/* The store URL picks the back end; a bad one is refused naming the field, an unreachable
 * server is MD_E_UNAVAILABLE (503) within the connect timeout, not a hang. */
static void test_store_urls(void **state)
{
    (void)state;
    char *dir = tu_mkdir();
    md_err e = {0};
    store *s = NULL;
    store_opts bad = {.data_dir = dir, .url = "mysql://localhost/modeld"};
    assert_int_equal(store_open(&bad, &s, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "store");
    store_opts gone = {.data_dir = dir, .url = "postgresql://modeld@/nodb?host=/nonexistent-dir"};
    assert_int_equal(store_open(&gone, &s, &e), MD_E_UNAVAILABLE);
    assert_null(s);
    char file[1100];
    snprintf(file, sizeof file, "sqlite:%s/elsewhere.db", dir);
    store_opts lite = {.data_dir = dir, .url = file};
    assert_int_equal(store_open(&lite, &s, &e), MD_OK);
    assert_string_equal(store_backend(s), "sqlite");
    store_unref(s);
    char path[1100];
    snprintf(path, sizeof path, "%s/elsewhere.db", dir);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/modeld.db", dir);
    assert_int_equal(access(path, F_OK), -1);
    tu_rmdir(dir);
}

static int need_pg(void **state)
{
    (void)state;
    return 0;
}

#define REQUIRE_PG()                                                                               \
    do {                                                                                           \
        if (!tu_store_pg())                                                                        \
            skip();                                                                                \
    } while (0)

typedef struct opener {
    const char *url;
    const char *dir;
    store *s;
    int rc;
} opener;

static void *open_one(void *arg)
{
    opener *o = arg;
    store_opts so = {.data_dir = o->dir, .url = o->url, .pool_size = 1};
    o->rc = store_open(&so, &o->s, NULL);
    return NULL;
}

/* Four nodes start at once on an empty database: all open it, each migration is applied once
 * (schema_version has one row per version, or a duplicate key would have failed an open). */
static void test_racing_migrations(void **state)
{
    (void)state;
    REQUIRE_PG();
    char schema[32];
    char *url = tu_pg_schema_new(schema);
    assert_non_null(url);
    char *dir = tu_mkdir();
    opener o[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        o[i] = (opener){.url = url, .dir = dir};
        pthread_create(&th[i], NULL, open_one, &o[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(o[i].rc, MD_OK);
        int v = 0;
        assert_int_equal(store_schema_version(o[i].s, &v, NULL), MD_OK);
        assert_int_equal(v, store_schema_latest());
        store_unref(o[i].s);
    }
    tu_pg_schema_drop(schema);
    free(url);
    tu_rmdir(dir);
}

#define NJOBS 120
#define NCLAIMERS 4

typedef struct claimer {
    store *s;
    char name[16];
    char ids[NJOBS][STORE_JOB_ID_MAX];
    int n;
    int rc;
} claimer;

static void *claim_all(void *arg)
{
    claimer *c = arg;
    const char *kinds[] = {"k"};
    for (;;) {
        store_job j;
        md_err e = {0};
        int rc = store_jobs_claim(c->s, kinds, 1, c->name, 60000, &j, &e);
        if (rc == MD_E_NOT_FOUND)
            return NULL;
        if (rc != MD_OK) {
            c->rc = rc;
            return NULL;
        }
        snprintf(c->ids[c->n++], STORE_JOB_ID_MAX, "%s", j.id);
    }
}

static store *open_url(tu_store *f, int pool)
{
    store_opts so = {.data_dir = f->dir, .url = f->url, .pool_size = pool};
    store *s = NULL;
    assert_int_equal(store_open(&so, &s, NULL), MD_OK);
    return s;
}

static void insert_jobs(store *s, int n)
{
    for (int i = 0; i < n; i++) {
        store_job j = {.max_attempts = 3, .input_ttl_ms = 60000, .result_ttl_ms = 60000};
        strcpy(j.kind, "k");
        md_err e = {0};
        assert_int_equal(store_jobs_insert(s, &j, 1, NULL, 0, &e), MD_OK);
    }
}

/* Four "workers" (each its own store, as separate processes would be) claim every job exactly
 * once between them: FOR UPDATE SKIP LOCKED never hands one row to two claimers. */
static void test_concurrent_claims_disjoint(void **state)
{
    REQUIRE_PG();
    tu_store *f = *state;
    insert_jobs(f->s, NJOBS);
    static claimer c[NCLAIMERS];
    pthread_t th[NCLAIMERS];
    for (int i = 0; i < NCLAIMERS; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].s = open_url(f, 1);
        snprintf(c[i].name, sizeof c[i].name, "w%d", i);
        pthread_create(&th[i], NULL, claim_all, &c[i]);
    }
    int total = 0;
    for (int i = 0; i < NCLAIMERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(c[i].rc, MD_OK);
        total += c[i].n;
    }
    assert_int_equal(total, NJOBS);
    for (int a = 0; a < NCLAIMERS; a++)
        for (int i = 0; i < c[a].n; i++)
            for (int b = a; b < NCLAIMERS; b++)
                for (int k = b == a ? i + 1 : 0; k < c[b].n; k++)
                    assert_string_not_equal(c[a].ids[i], c[b].ids[k]);
    for (int i = 0; i < NCLAIMERS; i++)
        store_unref(c[i].s);
}

/* One store, a pool of 2, eight threads: every call gets a connection (they wait their turn),
 * and the claims stay disjoint. */
static void test_pool_shared_by_threads(void **state)
{
    REQUIRE_PG();
    tu_store *f = *state;
    insert_jobs(f->s, NJOBS);
    store *s = open_url(f, 2);
    static claimer c[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].s = s;
        snprintf(c[i].name, sizeof c[i].name, "t%d", i);
        pthread_create(&th[i], NULL, claim_all, &c[i]);
    }
    int total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(c[i].rc, MD_OK);
        total += c[i].n;
    }
    assert_int_equal(total, NJOBS);
    int64_t counts[STORE_JOB__NSTATES];
    assert_int_equal(store_jobs_count(s, NULL, counts, NULL), MD_OK);
    assert_int_equal(counts[STORE_JOB_PROCESSING], NJOBS);
    store_unref(s);
}

static int pg_ctl(const char *what)
{
    const char *ctl = getenv("PGTMP_CTL");
    if (!ctl)
        return -1;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1", ctl, what);
    return system(cmd);
}

/* The server goes away: calls fail with MD_E_UNAVAILABLE (503), not a crash or a hang; it comes
 * back: the pool reconnects, and the jobs accepted before are all there. */
static void test_server_restart(void **state)
{
    REQUIRE_PG();
    if (!getenv("PGTMP_CTL"))
        skip();
    tu_store *f = *state;
    insert_jobs(f->s, 5);
    assert_int_equal(pg_ctl("stop -m fast"), 0);
    md_err e = {0};
    assert_int_equal(store_ping(f->s, &e), MD_E_UNAVAILABLE);
    store_job j = {.max_attempts = 3, .input_ttl_ms = 60000, .result_ttl_ms = 60000};
    strcpy(j.kind, "k");
    assert_int_equal(store_jobs_insert(f->s, &j, 1, NULL, 0, &e), MD_E_UNAVAILABLE);
    assert_int_equal(pg_ctl("start"), 0);
    assert_int_equal(store_ping(f->s, &e), MD_OK);
    int64_t counts[STORE_JOB__NSTATES];
    assert_int_equal(store_jobs_count(f->s, "k", counts, &e), MD_OK);
    assert_int_equal(counts[STORE_JOB_QUEUED], 5);
    /* A restart while connections sit idle in the pool: a read is retried on a new session,
     * a write fails at most once (it may have run) and then works. */
    assert_int_equal(pg_ctl("restart -m fast"), 0);
    assert_int_equal(store_jobs_count(f->s, "k", counts, &e), MD_OK);
    int rc = store_jobs_insert(f->s, &j, 1, NULL, 0, &e);
    if (rc == MD_E_UNAVAILABLE)
        rc = store_jobs_insert(f->s, &j, 1, NULL, 0, &e);
    assert_int_equal(rc, MD_OK);
    assert_int_equal(store_jobs_count(f->s, "k", counts, &e), MD_OK);
    assert_int_equal(counts[STORE_JOB_QUEUED], 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_rewrite),
        cmocka_unit_test(test_ddl_rewrite),
        cmocka_unit_test(test_store_urls),
        cmocka_unit_test_setup(test_racing_migrations, need_pg),
        cmocka_unit_test_setup_teardown(test_concurrent_claims_disjoint, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_pool_shared_by_threads, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_server_restart, tu_store_setup, tu_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
