/* ratelimit.c - token buckets keyed by client, in a sharded hash table with LRU eviction.
 *
 * Invariants:
 *   1. A shard holds at most max_buckets / SHARDS buckets; inserting into a full shard evicts
 *      its least recently used bucket first.
 *   2. A bucket that has refilled to its burst behaves exactly like a missing one, so such
 *      buckets at the cold end of the LRU list are dropped on every call (idle eviction costs
 *      nothing in accuracy). Only when a shard is full of active buckets does eviction forget
 *      a debt, and then it forgets the oldest one.
 *   3. All fields of a shard, its buckets included, are touched only under the shard's mutex.
 *   4. Time is the injected monotonic clock; a clock that steps back refills nothing.
 *   5. With a shared store, the local buckets are touched only while it is down (and the
 *      policy is RL_DOWN_LOCAL): they start full, so a node never refuses more than the shared
 *      limit would have.
 */
#include "auth/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 16
#define KEY_MAX 256
#define IDLE_SCAN 2   /* full buckets dropped from the LRU tail per call (invariant 2) */

typedef struct bucket {
    struct bucket *hnext;              /* hash chain */
    struct bucket *prev, *next;        /* LRU list: head = most recent */
    double tokens;
    uint64_t last_ns;
    rl_rate rate;
    uint64_t hash;
    size_t klen;
    char key[];
} bucket;

typedef struct shard {
    pthread_mutex_t mu;
    bucket **table;
    size_t nslots;                     /* power of two */
    size_t count, max;
    bucket *head, *tail;
} shard;

struct rl_limiter {
    const md_clock *clock;
    const rl_shared *shared;
    rl_down_policy when_down;
    uint8_t hkey[crypto_shorthash_KEYBYTES];   /* random: keys (IPs) are client-chosen */
    shard shards[SHARDS];
};

static void shard_free(shard *s)
{
    bucket *b = s->head;
    while (b) {
        bucket *n = b->next;
        free(b);
        b = n;
    }
    free(s->table);
    pthread_mutex_destroy(&s->mu);
}

int rl_new(const rl_opts *o, rl_limiter **out)
{
    *out = NULL;
    if (sodium_init() < 0)
        return MD_E_INTERNAL;
    rl_limiter *l = calloc(1, sizeof *l);
    if (!l)
        return MD_E_NOMEM;
    l->clock = o && o->clock ? o->clock : md_clock_system();
    l->shared = o ? o->shared : NULL;
    l->when_down = o ? o->when_down : RL_DOWN_LOCAL;
    randombytes_buf(l->hkey, sizeof l->hkey);
    size_t max = o && o->max_buckets ? o->max_buckets : 65536;
    size_t per = (max + SHARDS - 1) / SHARDS;
    for (int i = 0; i < SHARDS; i++) {
        shard *s = &l->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->max = per;
        s->nslots = 16;
        while (s->nslots < per)
            s->nslots <<= 1;
        s->table = calloc(s->nslots, sizeof *s->table);
        if (!s->table) {
            for (int j = 0; j <= i; j++)
                shard_free(&l->shards[j]);
            free(l);
            return MD_E_NOMEM;
        }
    }
    *out = l;
    return MD_OK;
}

void rl_free(rl_limiter *l)
{
    if (!l)
        return;
    for (int i = 0; i < SHARDS; i++)
        shard_free(&l->shards[i]);
    free(l);
}

static void lru_unlink(shard *s, bucket *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        s->head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    else
        s->tail = b->prev;
    b->prev = b->next = NULL;
}

static void lru_push_front(shard *s, bucket *b)
{
    b->next = s->head;
    b->prev = NULL;
    if (s->head)
        s->head->prev = b;
    s->head = b;
    if (!s->tail)
        s->tail = b;
}

/* Remove b from its chain and the LRU list and free it. */
static void evict(shard *s, bucket *b)
{
    bucket **pp = &s->table[b->hash & (s->nslots - 1)];
    while (*pp != b)
        pp = &(*pp)->hnext;
    *pp = b->hnext;
    lru_unlink(s, b);
    s->count--;
    free(b);
}

/* Add the tokens earned since b->last_ns (invariant 4). */
static void refill(bucket *b, uint64_t now)
{
    if (now > b->last_ns) {
        double add = (double)(now - b->last_ns) / 1e9 * b->rate.per_sec;
        b->tokens = fmin((double)b->rate.burst, b->tokens + add);
        b->last_ns = now;
    }
}

/* Invariant 2: drop refilled buckets from the cold end. */
static void drop_idle(shard *s, uint64_t now)
{
    for (int i = 0; i < IDLE_SCAN && s->tail; i++) {
        bucket *b = s->tail;
        refill(b, now);
        if (b->tokens < (double)b->rate.burst)
            return;
        evict(s, b);
    }
}

static bucket *find_or_add(shard *s, uint64_t h, const char *key, size_t len, rl_rate rate,
                           uint64_t now)
{
    size_t slot = h & (s->nslots - 1);
    for (bucket *b = s->table[slot]; b; b = b->hnext)
        if (b->hash == h && b->klen == len && memcmp(b->key, key, len) == 0)
            return b;
    if (s->count >= s->max && s->tail)
        evict(s, s->tail);   /* invariant 1 */
    bucket *b = calloc(1, sizeof *b + len);
    if (!b)
        return NULL;
    memcpy(b->key, key, len);
    b->klen = len;
    b->hash = h;
    b->rate = rate;
    b->tokens = (double)rate.burst;
    b->last_ns = now;
    b->hnext = s->table[slot];
    s->table[slot] = b;
    lru_push_front(s, b);
    s->count++;
    return b;
}

static uint32_t ceil_s(double x)
{
    if (x <= 0)
        return 0;
    double c = ceil(x - 1e-9);
    return c > 4e9 ? 4000000000u : (uint32_t)c;
}

/* Take a token from b and describe the bucket in *res. */
static int take(bucket *b, rl_rate rate, rl_result *res)
{
    if (b->rate.burst != rate.burst || b->rate.per_sec != rate.per_sec) {
        b->rate = rate;
        b->tokens = fmin(b->tokens, (double)rate.burst);
    }
    int rc = MD_OK;
    if (b->tokens >= 1.0)
        b->tokens -= 1.0;
    else
        rc = MD_E_RATE_LIMITED;
    res->limit = rate.burst;
    res->remaining = (uint32_t)floor(b->tokens);
    res->reset_s = ceil_s(((double)rate.burst - b->tokens) / rate.per_sec);
    res->retry_after_s = 0;
    if (rc != MD_OK) {
        uint32_t ra = ceil_s((1.0 - b->tokens) / rate.per_sec);
        res->retry_after_s = ra ? ra : 1;
    }
    return rc;
}

int rl_take(rl_limiter *l, const char *key, size_t len, rl_rate rate, rl_result *res)
{
    memset(res, 0, sizeof *res);
    if (!key || len == 0 || len > KEY_MAX || !(rate.per_sec > 0) || !isfinite(rate.per_sec) ||
        rate.burst < 1)
        return MD_E_INVALID_PARAM;
    if (l->shared) {
        int src = l->shared->take(l->shared->ctx, key, len, rate, res);
        if (src != MD_E_UNAVAILABLE)
            return src;
        if (l->when_down == RL_DOWN_REFUSE) {
            *res = (rl_result){.limit = rate.burst, .retry_after_s = 1};
            return MD_E_UNAVAILABLE;
        }
        memset(res, 0, sizeof *res); /* invariant 5: this node's buckets answer */
    }
    uint8_t hb[crypto_shorthash_BYTES];
    uint64_t h;
    crypto_shorthash(hb, (const unsigned char *)key, len, l->hkey);
    memcpy(&h, hb, sizeof h);
    shard *s = &l->shards[h % SHARDS];
    uint64_t now = md_clock_now_ns(l->clock);
    pthread_mutex_lock(&s->mu);
    drop_idle(s, now);
    bucket *b = find_or_add(s, h >> 4, key, len, rate, now);
    int rc = MD_E_NOMEM;
    if (b) {
        refill(b, now);
        lru_unlink(s, b);
        lru_push_front(s, b);
        rc = take(b, rate, res);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

size_t rl_size(rl_limiter *l)
{
    size_t n = 0;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&l->shards[i].mu);
        n += l->shards[i].count;
        pthread_mutex_unlock(&l->shards[i].mu);
    }
    return n;
}
