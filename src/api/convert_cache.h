/* convert_cache.h - the in-memory LRU + TTL cache of conversion answers, in front of the stored
 * results: the same image content with the same converter and parameters answers from memory,
 * which is what makes a repeated convert cost about a millisecond instead of a trace.
 *
 * Keys are 64-char hex digests (api computes them from the image hash and the parameters);
 * values are the finished JSON answers. Thread-safe (one mutex; every operation is O(1) plus
 * the copy of one value).
 */
#ifndef MD_API_CONVERT_CACHE_H
#define MD_API_CONVERT_CACHE_H

#include "base/clock.h"

#include <stddef.h>
#include <stdint.h>

#define CV_KEY_LEN 64

typedef struct cv_cache cv_cache;

/* A second-level cache shared by several nodes (Redis, wired by the CLI; api does not know
 * Redis). get: 1 on a hit with *value new (malloc()ed, NUL-terminated, *len bytes) and
 * *expires_wall_ms when the shared entry expires; 0 on a miss or when the store cannot answer
 * (a down store is a miss: the cache is skipped). put: store a copy for ttl_ms (> 0); failures
 * are the store's to count, never the caller's. Both are called from any thread, without the
 * cache's lock. */
typedef struct cv_l2 {
    int (*get)(void *ctx, const char *key, char **value, size_t *len, int64_t *expires_wall_ms);
    void (*put)(void *ctx, const char *key, const char *value, size_t len, int64_t ttl_ms);
    void *ctx;
} cv_l2;

typedef struct cv_cache_opts {
    size_t max_entries;    /* 0 = 256 */
    size_t max_bytes;      /* total value bytes; 0 = 64 MB */
    int64_t ttl_ms;        /* 0 = 10 minutes */
    const md_clock *clock; /* NULL = system clock; borrowed until cv_cache_free */
    const cv_l2 *l2;       /* NULL = memory only; borrowed until cv_cache_free */
    int64_t l2_ttl_ms;     /* lifetime of L2 entries (also bounded by expires_wall_ms);
                              0 = 3600 s */
} cv_cache_opts;

typedef struct cv_cache_stats {
    uint64_t hits, misses, evictions;
    uint64_t l2_hits; /* of hits, those answered by the L2 (then copied into memory) */
    size_t entries, bytes;
} cv_cache_stats;

/* New cache. *out is new (cv_cache_free). MD_E_NOMEM. */
int cv_cache_new(const cv_cache_opts *o, cv_cache **out);
/* NULL is a no-op. */
void cv_cache_free(cv_cache *c);

/* Look key up in memory, then in the L2 (whose hit is copied into memory, expiring when the L2
 * entry does). On a live hit *value is a new copy (free() it; NUL-terminated), *len its length,
 * and the entry becomes most recently used; returns 1. Returns 0 on a miss (also for an expired
 * entry, which is dropped) and counts it. */
int cv_cache_get(cv_cache *c, const char *key, char **value, size_t *len);
/* Insert or replace key with a copy of value, expiring at the earlier of now + ttl and
 * expires_wall_ms (wall clock ms; 0 = no extra bound), evicting least recently used entries
 * to stay within the limits; and in the L2 for the earlier of l2_ttl and expires_wall_ms. A
 * value larger than max_bytes is not cached in memory. MD_OK or MD_E_NOMEM. */
int cv_cache_put(cv_cache *c, const char *key, const char *value, size_t len,
                 int64_t expires_wall_ms);
void cv_cache_stats_get(cv_cache *c, cv_cache_stats *out);

#endif
