/* convert_cache.c - LRU + TTL cache of conversion answers (see convert_cache.h).
 *
 * Layout: a chained hash table (power-of-two buckets, at least twice max_entries, so chains stay
 * short) for lookup, and one doubly linked list in recency order (head = most recent) for
 * eviction. Each entry is one allocation: header plus value bytes.
 *
 * Invariants (under c->mu):
 *   1. An entry is in exactly one bucket chain and in the recency list, or in neither (freed).
 *   2. c->bytes is the sum of the value lengths of the entries; c->entries their count; both stay
 *      within the limits after every put.
 *   3. Expiry is by wall-clock milliseconds, the same clock the stored results expire by, so a
 *      cached answer never outlives the result it names; an answer copied from the L2 keeps
 *      the L2 entry's expiry (which put bounded by the result's) as its bound.
 *   4. The L2 is called without c->mu held (it is a network round trip).
 */
#include "api/convert_cache.h"

#include "base/err.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next_in_bucket;
    struct entry *prev, *next; /* recency list */
    char key[CV_KEY_LEN + 1];
    int64_t expires_ms;
    size_t len;
    char value[]; /* len bytes + NUL */
} entry;

struct cv_cache {
    pthread_mutex_t mu;
    cv_cache_opts o;
    entry **buckets;
    size_t nbuckets; /* power of two */
    entry *head, *tail;
    size_t entries, bytes;
    uint64_t hits, misses, evictions, l2_hits;
};

static uint64_t hash_key(const char *k)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return h;
}

int cv_cache_new(const cv_cache_opts *o, cv_cache **out)
{
    cv_cache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return MD_E_NOMEM;
    c->o = *o;
    if (c->o.max_entries == 0)
        c->o.max_entries = 256;
    if (c->o.max_bytes == 0)
        c->o.max_bytes = 64u << 20;
    if (c->o.ttl_ms <= 0)
        c->o.ttl_ms = 10 * 60 * 1000;
    if (c->o.clock == NULL)
        c->o.clock = md_clock_system();
    if (c->o.l2_ttl_ms <= 0)
        c->o.l2_ttl_ms = 3600 * 1000;
    c->nbuckets = 16;
    while (c->nbuckets < 2 * c->o.max_entries)
        c->nbuckets *= 2;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    if (c->buckets == NULL) {
        free(c);
        return MD_E_NOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return MD_OK;
}

void cv_cache_free(cv_cache *c)
{
    if (c == NULL)
        return;
    for (entry *e = c->head, *n; e; e = n) {
        n = e->next;
        free(e);
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static entry **bucket_of(cv_cache *c, const char *key)
{
    return &c->buckets[hash_key(key) & (c->nbuckets - 1)];
}

static void list_unlink(cv_cache *c, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(cv_cache *c, entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (c->tail == NULL)
        c->tail = e;
}

/* Remove e from its chain and the list, and free it. */
static void drop(cv_cache *c, entry *e)
{
    for (entry **pp = bucket_of(c, e->key); *pp; pp = &(*pp)->next_in_bucket)
        if (*pp == e) {
            *pp = e->next_in_bucket;
            break;
        }
    list_unlink(c, e);
    c->entries--;
    c->bytes -= e->len;
    free(e);
}

static entry *find(cv_cache *c, const char *key)
{
    for (entry *e = *bucket_of(c, key); e; e = e->next_in_bucket)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static int l1_put(cv_cache *c, const char *key, const char *value, size_t len, int64_t expires_wall_ms);

/* An L1 miss: ask the L2 (invariant 4) and keep its answer in memory. */
static int l2_get(cv_cache *c, const char *key, char **value, size_t *len)
{
    int64_t expires = 0;
    if (!c->o.l2 || !c->o.l2->get(c->o.l2->ctx, key, value, len, &expires))
        return 0;
    l1_put(c, key, *value, *len, expires);
    pthread_mutex_lock(&c->mu);
    c->misses--; /* counted as a miss by the L1 lookup; it is a hit */
    c->hits++;
    c->l2_hits++;
    pthread_mutex_unlock(&c->mu);
    return 1;
}

int cv_cache_get(cv_cache *c, const char *key, char **value, size_t *len)
{
    int64_t now = md_clock_wall_ms(c->o.clock);
    int hit = 0;
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, key);
    if (e && e->expires_ms <= now) {
        drop(c, e);
        e = NULL;
    }
    if (e) {
        *value = malloc(e->len + 1);
        if (*value) {
            memcpy(*value, e->value, e->len + 1);
            *len = e->len;
            list_unlink(c, e);
            list_push_front(c, e);
            hit = 1;
        }
    }
    if (hit)
        c->hits++;
    else
        c->misses++;
    pthread_mutex_unlock(&c->mu);
    return hit ? 1 : l2_get(c, key, value, len);
}

int cv_cache_put(cv_cache *c, const char *key, const char *value, size_t len,
                 int64_t expires_wall_ms)
{
    if (c->o.l2 && strlen(key) <= CV_KEY_LEN) {
        int64_t ttl = c->o.l2_ttl_ms;
        if (expires_wall_ms > 0 && expires_wall_ms - md_clock_wall_ms(c->o.clock) < ttl)
            ttl = expires_wall_ms - md_clock_wall_ms(c->o.clock);
        if (ttl > 0)
            c->o.l2->put(c->o.l2->ctx, key, value, len, ttl);
    }
    return l1_put(c, key, value, len, expires_wall_ms);
}

static int l1_put(cv_cache *c, const char *key, const char *value, size_t len, int64_t expires_wall_ms)
{
    if (len > c->o.max_bytes || strlen(key) > CV_KEY_LEN)
        return MD_OK; /* too big to be worth a slot; the stored result still has it */
    entry *n = malloc(sizeof *n + len + 1);
    if (n == NULL)
        return MD_E_NOMEM;
    memset(n, 0, sizeof *n);
    strcpy(n->key, key);
    memcpy(n->value, value, len);
    n->value[len] = '\0';
    n->len = len;
    n->expires_ms = md_clock_wall_ms(c->o.clock) + c->o.ttl_ms;
    if (expires_wall_ms > 0 && expires_wall_ms < n->expires_ms)
        n->expires_ms = expires_wall_ms;
    pthread_mutex_lock(&c->mu);
    entry *old = find(c, key);
    if (old)
        drop(c, old);
    while (c->tail && (c->entries + 1 > c->o.max_entries || c->bytes + len > c->o.max_bytes)) {
        drop(c, c->tail);
        c->evictions++;
    }
    entry **b = bucket_of(c, key);
    n->next_in_bucket = *b;
    *b = n;
    list_push_front(c, n);
    c->entries++;
    c->bytes += len;
    pthread_mutex_unlock(&c->mu);
    return MD_OK;
}

void cv_cache_stats_get(cv_cache *c, cv_cache_stats *out)
{
    pthread_mutex_lock(&c->mu);
    out->hits = c->hits;
    out->misses = c->misses;
    out->evictions = c->evictions;
    out->l2_hits = c->l2_hits;
    out->entries = c->entries;
    out->bytes = c->bytes;
    pthread_mutex_unlock(&c->mu);
}
