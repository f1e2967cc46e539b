/* pool_test.c - the worker pool (base/pool.h): every job runs, a full queue refuses at once with
 * MD_E_OVERLOADED (workers held busy with a condition variable, no timing), and free drains. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, open, done;
} gate;

static void held_job(void *arg)
{
    gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->started++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    g->done++;
    pthread_mutex_unlock(&g->mu);
}

static void test_overload_and_drain(void **state)
{
    (void)state;
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    md_pool *p;
    assert_int_equal(md_pool_new(2, 3, &p), MD_OK);
    /* two running (wait until both started), three queued, the sixth refused */
    assert_int_equal(md_pool_submit(p, held_job, &g), MD_OK);
    assert_int_equal(md_pool_submit(p, held_job, &g), MD_OK);
    pthread_mutex_lock(&g.mu);
    while (g.started < 2)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    for (int i = 0; i < 3; i++)
        assert_int_equal(md_pool_submit(p, held_job, &g), MD_OK);
    assert_int_equal(md_pool_depth(p), 3);
    assert_int_equal(md_pool_busy(p), 2);
    assert_int_equal(md_pool_submit(p, held_job, &g), MD_E_OVERLOADED);
    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    md_pool_free(p); /* runs the queued jobs before joining */
    assert_int_equal(g.done, 5);
}

static void count_job(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void test_many_jobs(void **state)
{
    (void)state;
    atomic_int n = 0;
    md_pool *p;
    assert_int_equal(md_pool_new(4, 10000, &p), MD_OK);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(md_pool_submit(p, count_job, &n), MD_OK);
    md_pool_free(p);
    assert_int_equal(atomic_load(&n), 5000);
    md_pool_free(NULL);
}

/* A job may submit another job to its own pool (the audit writer re-arms itself this way). */
typedef struct chain {
    md_pool *p;
    atomic_int left, ran;
} chain;

static void chain_job(void *arg)
{
    chain *c = arg;
    atomic_fetch_add(&c->ran, 1);
    if (atomic_fetch_sub(&c->left, 1) > 1)
        assert_int_equal(md_pool_submit(c->p, chain_job, c), MD_OK);
}

static void test_submit_from_job(void **state)
{
    (void)state;
    chain c = {.left = 100};
    assert_int_equal(md_pool_new(1, 1, &c.p), MD_OK);
    assert_int_equal(md_pool_threads(c.p), 1);
    assert_int_equal(md_pool_submit(c.p, chain_job, &c), MD_OK);
    while (atomic_load(&c.left) > 0)
        sched_yield();
    md_pool_free(c.p);
    assert_int_equal(atomic_load(&c.ran), 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overload_and_drain),
        cmocka_unit_test(test_many_jobs),
        cmocka_unit_test(test_submit_from_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
