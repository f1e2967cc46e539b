/* ratelimit_test.c - token buckets with an injected clock: burst then refusal, the header
 * values (limit, remaining, reset, retry-after), refill over time, separate buckets per key,
 * a changed rate, bounded memory with idle and LRU eviction, argument checks, and exact
 * accounting under threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "auth/ratelimit.h"

#include <pthread.h>
#include <stdio.h>

#define SEC 1000000000ull

static int take(rl_limiter *l, const char *k, rl_rate r, rl_result *res)
{
    return rl_take(l, k, strlen(k), r, res);
}

/* A new limiter (rl_free) on clk, which starts at start_ns (wall 0); max_buckets 0 = default. */
static rl_limiter *limiter_at(md_manual_clock *clk, uint64_t start_ns, size_t max_buckets)
{
    md_manual_clock_init(clk, start_ns, 0);
    rl_opts o = {.clock = &clk->clock, .max_buckets = max_buckets};
    rl_limiter *l = NULL;
    assert_int_equal(rl_new(&o, &l), MD_OK);
    return l;
}

static void test_burst_and_headers(void **state)
{
    (void)state;
    md_manual_clock clk;
    rl_limiter *l = limiter_at(&clk, 5 * SEC, 0);
    rl_rate r = {.per_sec = 2, .burst = 5};
    rl_result res;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(take(l, "k:a", r, &res), MD_OK);
        assert_int_equal(res.limit, 5);
        assert_int_equal(res.remaining, 4 - i);
        assert_int_equal(res.retry_after_s, 0);
    }
    assert_int_equal(res.reset_s, 3);   /* 5 tokens missing at 2/s: 2.5 s, rounded up */
    assert_int_equal(take(l, "k:a", r, &res), MD_E_RATE_LIMITED);
    assert_int_equal(res.remaining, 0);
    assert_int_equal(res.retry_after_s, 1);
    /* Another client is not affected. */
    assert_int_equal(take(l, "ip:10.0.0.1", r, &res), MD_OK);
    assert_int_equal(res.remaining, 4);
    /* Half a second later one token has come back, and only one. */
    clk.ns += SEC / 2;
    assert_int_equal(take(l, "k:a", r, &res), MD_OK);
    assert_int_equal(res.remaining, 0);
    assert_int_equal(take(l, "k:a", r, &res), MD_E_RATE_LIMITED);
    /* A long pause refills to the burst, never beyond. */
    clk.ns += 3600 * SEC;
    for (int i = 0; i < 5; i++)
        assert_int_equal(take(l, "k:a", r, &res), MD_OK);
    assert_int_equal(take(l, "k:a", r, &res), MD_E_RATE_LIMITED);
    rl_free(l);
}

static void test_slow_rate_retry_after(void **state)
{
    (void)state;
    md_manual_clock clk;
    rl_limiter *l = limiter_at(&clk, SEC, 0);
    rl_rate r = {.per_sec = 0.1, .burst = 1};   /* one per 10 s */
    rl_result res;
    assert_int_equal(take(l, "k", r, &res), MD_OK);
    assert_int_equal(res.reset_s, 10);
    clk.ns += 4 * SEC;
    assert_int_equal(take(l, "k", r, &res), MD_E_RATE_LIMITED);
    assert_int_equal(res.retry_after_s, 6);
    clk.ns -= 2 * SEC;   /* a clock stepping back refills nothing and breaks nothing */
    assert_int_equal(take(l, "k", r, &res), MD_E_RATE_LIMITED);
    rl_free(l);
}

static void test_rate_change(void **state)
{
    (void)state;
    md_manual_clock clk;
    rl_limiter *l = limiter_at(&clk, SEC, 0);
    rl_result res;
    rl_rate big = {.per_sec = 1, .burst = 100}, small = {.per_sec = 1, .burst = 3};
    assert_int_equal(take(l, "k", big, &res), MD_OK);
    assert_int_equal(res.remaining, 99);
    assert_int_equal(take(l, "k", small, &res), MD_OK);   /* role lowered: capped at once */
    assert_int_equal(res.limit, 3);
    assert_int_equal(res.remaining, 2);
    rl_free(l);
}

static void test_bounded_memory(void **state)
{
    (void)state;
    md_manual_clock clk;
    rl_limiter *l = limiter_at(&clk, SEC, 64);
    rl_rate r = {.per_sec = 1, .burst = 10};
    rl_result res;
    char key[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "ip:%d", i);
        assert_int_equal(take(l, key, r, &res), MD_OK);
        assert_true(rl_size(l) <= 64);
    }
    /* Once every bucket has refilled, each call drops idle ones: the table drains. */
    clk.ns += 60 * SEC;
    for (int i = 0; i < 200; i++)
        assert_int_equal(take(l, "k:steady", r, &res), i < 10 ? MD_OK : MD_E_RATE_LIMITED);
    assert_true(rl_size(l) < 64);
    rl_free(l);
}

static void test_bad_args(void **state)
{
    (void)state;
    rl_limiter *l = NULL;
    assert_int_equal(rl_new(NULL, &l), MD_OK);   /* system clock, default size */
    rl_result res;
    assert_int_equal(take(l, "", (rl_rate){1, 1}, &res), MD_E_INVALID_PARAM);
    assert_int_equal(take(l, "k", (rl_rate){0, 1}, &res), MD_E_INVALID_PARAM);
    assert_int_equal(take(l, "k", (rl_rate){-1, 1}, &res), MD_E_INVALID_PARAM);
    assert_int_equal(take(l, "k", (rl_rate){1, 0}, &res), MD_E_INVALID_PARAM);
    char big[300];
    memset(big, 'x', sizeof big);
    assert_int_equal(rl_take(l, big, sizeof big, (rl_rate){1, 1}, &res), MD_E_INVALID_PARAM);
    assert_int_equal(rl_size(l), 0);
    rl_free(l);
    rl_free(NULL);
}

typedef struct racer {
    rl_limiter *l;
    int allowed;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    rl_result res;
    for (int i = 0; i < 2000; i++) {
        if (rl_take(r->l, "k:shared", 8, (rl_rate){.per_sec = 1, .burst = 1000}, &res) == MD_OK)
            r->allowed++;
        char own[16];
        snprintf(own, sizeof own, "ip:%d", i % 50);
        rl_take(r->l, own, strlen(own), (rl_rate){.per_sec = 1, .burst = 5}, &res);
    }
    return NULL;
}

static void test_threads_exact(void **state)
{
    (void)state;
    md_manual_clock clk;   /* frozen: no refill, so exactly the burst may pass */
    rl_limiter *l = limiter_at(&clk, SEC, 0);
    racer r[4] = {{l, 0}, {l, 0}, {l, 0}, {l, 0}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, race, &r[i]);
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        total += r[i].allowed;
    }
    assert_int_equal(total, 1000);
    rl_free(l);
}

/* A shared store that answers from a script: up (allow `left` more, then limit) or down. */
typedef struct fake_shared {
    int up;
    int left;
    int calls;
} fake_shared;

static int fake_take(void *ctx, const char *key, size_t len, rl_rate rate, rl_result *res)
{
    fake_shared *f = ctx;
    (void)key;
    (void)len;
    f->calls++;
    if (!f->up)
        return MD_E_UNAVAILABLE;
    *res = (rl_result){.limit = rate.burst, .remaining = f->left > 0 ? (uint32_t)f->left - 1 : 0};
    if (f->left-- > 0)
        return MD_OK;
    res->retry_after_s = 7;
    return MD_E_RATE_LIMITED;
}

static rl_limiter *shared_limiter(md_manual_clock *clk, fake_shared *f, rl_shared *tab, rl_down_policy p)
{
    md_manual_clock_init(clk, SEC, 0);
    *tab = (rl_shared){.take = fake_take, .ctx = f};
    rl_opts o = {.clock = &clk->clock, .shared = tab, .when_down = p};
    rl_limiter *l = NULL;
    assert_int_equal(rl_new(&o, &l), MD_OK);
    return l;
}

/* Up: the shared store decides (its answer and headers pass through; no local bucket). */
static void test_shared_decides_when_up(void **state)
{
    (void)state;
    md_manual_clock clk;
    fake_shared f = {.up = 1, .left = 2};
    rl_shared tab;
    rl_limiter *l = shared_limiter(&clk, &f, &tab, RL_DOWN_LOCAL);
    rl_rate r = {.per_sec = 1, .burst = 100};
    rl_result res;
    assert_int_equal(take(l, "k:a", r, &res), MD_OK);
    assert_int_equal(take(l, "k:a", r, &res), MD_OK);
    assert_int_equal(take(l, "k:a", r, &res), MD_E_RATE_LIMITED);
    assert_int_equal(res.retry_after_s, 7);
    assert_int_equal(res.limit, 100);
    assert_int_equal(f.calls, 3);
    assert_int_equal(rl_size(l), 0);
    rl_free(l);
}

/* Down, local policy: this node's buckets answer with the usual semantics; back up, the
 * shared store decides again. */
static void test_shared_down_falls_back_to_local(void **state)
{
    (void)state;
    md_manual_clock clk;
    fake_shared f = {.up = 0};
    rl_shared tab;
    rl_limiter *l = shared_limiter(&clk, &f, &tab, RL_DOWN_LOCAL);
    rl_rate r = {.per_sec = 1, .burst = 3};
    rl_result res;
    for (int i = 0; i < 3; i++)
        assert_int_equal(take(l, "k:a", r, &res), MD_OK);
    assert_int_equal(res.remaining, 0);
    assert_int_equal(take(l, "k:a", r, &res), MD_E_RATE_LIMITED);
    assert_int_equal(res.retry_after_s, 1);
    assert_int_equal(rl_size(l), 1);
    f.up = 1;
    f.left = 5;
    assert_int_equal(take(l, "k:a", r, &res), MD_OK);
    assert_int_equal(res.remaining, 4);
    rl_free(l);
}

/* Down, refuse policy: MD_E_UNAVAILABLE with Retry-After 1, nothing taken locally. */
static void test_shared_down_refuses(void **state)
{
    (void)state;
    md_manual_clock clk;
    fake_shared f = {.up = 0};
    rl_shared tab;
    rl_limiter *l = shared_limiter(&clk, &f, &tab, RL_DOWN_REFUSE);
    rl_rate r = {.per_sec = 1, .burst = 3};
    rl_result res;
    assert_int_equal(take(l, "k:a", r, &res), MD_E_UNAVAILABLE);
    assert_int_equal(res.retry_after_s, 1);
    assert_int_equal(res.limit, 3);
    assert_int_equal(rl_size(l), 0);
    /* bad arguments are still refused before the store is asked */
    assert_int_equal(take(l, "", r, &res), MD_E_INVALID_PARAM);
    assert_int_equal(f.calls, 1);
    rl_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_and_headers), cmocka_unit_test(test_slow_rate_retry_after),
        cmocka_unit_test(test_rate_change),       cmocka_unit_test(test_bounded_memory),
        cmocka_unit_test(test_bad_args),          cmocka_unit_test(test_threads_exact),
        cmocka_unit_test(test_shared_decides_when_up), cmocka_unit_test(test_shared_down_falls_back_to_local),
        cmocka_unit_test(test_shared_down_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
