/* ratelimit.h - token buckets per client (API key or IP) for the X-RateLimit-* headers and 429.
 *
 * A bucket holds up to `burst` tokens and refills at `per_sec` tokens a second; a request
 * takes one. The caller names the bucket (e.g. "k:<key id>" or "ip:<addr>") and passes the
 * rate to use, so limits per role live in the server's config, not here.
 *
 * Time comes from an injected md_clock (monotonic now_ns), so tests step time by hand.
 * Memory is bounded: at most max_buckets buckets; buckets that have refilled completely are
 * indistinguishable from new ones and are dropped first, then the least recently used.
 * Thread-safe (the table is split in shards, each with its own mutex).
 *
 * Shared buckets (scale-out): with rl_opts.shared set, every take goes first to that shared
 * store (Redis, wired by the CLI: auth does not know Redis), which applies the same semantics
 * across every node. When it cannot answer (MD_E_UNAVAILABLE), when_down decides: the local
 * buckets of this node answer (RL_DOWN_LOCAL: each node then allows the full rate), or the
 * request is refused with MD_E_UNAVAILABLE (RL_DOWN_REFUSE, 503 + Retry-After).
 */
#ifndef MD_AUTH_RATELIMIT_H
#define MD_AUTH_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "base/clock.h"
#include "base/err.h"

typedef struct rl_limiter rl_limiter;

typedef struct rl_rate {
    double per_sec;     /* refill rate, > 0 */
    uint32_t burst;     /* capacity, >= 1; also the X-RateLimit-Limit value */
} rl_rate;

typedef struct rl_result rl_result;

/* A bucket store shared by several processes. take: the same contract as rl_take (MD_OK or
 * MD_E_RATE_LIMITED with *res filled), or MD_E_UNAVAILABLE when the store cannot answer now.
 * Called from any thread. */
typedef struct rl_shared {
    int (*take)(void *ctx, const char *key, size_t len, rl_rate rate, rl_result *res);
    void *ctx;
} rl_shared;

typedef enum rl_down_policy {
    RL_DOWN_LOCAL = 0, /* the shared store is down: this node's own buckets answer */
    RL_DOWN_REFUSE,    /* the shared store is down: MD_E_UNAVAILABLE (503) */
} rl_down_policy;

typedef struct rl_opts {
    const md_clock *clock;   /* NULL = md_clock_system(); borrowed for the limiter's life */
    size_t max_buckets;      /* 0 = 65536 */
    const rl_shared *shared; /* NULL = local buckets only; borrowed for the limiter's life */
    rl_down_policy when_down;
} rl_opts;

struct rl_result {
    uint32_t limit;          /* X-RateLimit-Limit: the burst */
    uint32_t remaining;      /* X-RateLimit-Remaining: whole tokens left after this request */
    uint32_t reset_s;        /* X-RateLimit-Reset: seconds until the bucket is full again */
    uint32_t retry_after_s;  /* Retry-After when limited (>= 1); 0 when allowed */
};

/* *out is new; free with rl_free(). MD_E_NOMEM on allocation failure. */
int rl_new(const rl_opts *o, rl_limiter **out);
void rl_free(rl_limiter *l);   /* NULL is a no-op */

/* Take one token from the bucket `key` (len bytes, need not be NUL-terminated). MD_OK when
 * allowed, MD_E_RATE_LIMITED when empty (nothing taken), MD_E_INVALID_PARAM for a bad rate or
 * empty key. *res is filled in both allowed and limited cases. If a bucket's rate changes
 * (e.g. the key's role changed) the new rate applies from now on. With a shared store that is
 * down and RL_DOWN_REFUSE: MD_E_UNAVAILABLE (res->retry_after_s 1). */
int rl_take(rl_limiter *l, const char *key, size_t len, rl_rate rate, rl_result *res);

/* Buckets now held (for metrics and tests). */
size_t rl_size(rl_limiter *l);


#endif
