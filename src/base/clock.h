/* clock.h - time sources, injectable so that rate limiters, deadlines and retention can be
 * tested without sleeping. Code that needs "now" takes an md_clock and calls md_clock_now_ns();
 * production passes md_clock_system(), tests pass a clock whose now() they control. */
#ifndef MD_BASE_CLOCK_H
#define MD_BASE_CLOCK_H

#include <stdint.h>

typedef struct md_clock {
    /* Monotonic nanoseconds; only differences are meaningful. */
    uint64_t (*now_ns)(void *ctx);
    /* Wall-clock milliseconds since the Unix epoch. */
    int64_t (*wall_ms)(void *ctx);
    void *ctx;
} md_clock;

/* The real clocks (CLOCK_MONOTONIC, CLOCK_REALTIME). Borrowed, static storage. */
const md_clock *md_clock_system(void);

static inline uint64_t md_clock_now_ns(const md_clock *c) { return c->now_ns(c->ctx); }
static inline int64_t md_clock_wall_ms(const md_clock *c) { return c->wall_ms(c->ctx); }

/* Shorthands for the system clock. */
uint64_t md_now_ns(void);
int64_t md_wall_ms(void);

/* A manual clock for tests: now_ns and wall_ms return the fields, which the test advances. */
typedef struct md_manual_clock {
    md_clock clock;
    uint64_t ns;
    int64_t ms;
} md_manual_clock;
void md_manual_clock_init(md_manual_clock *m, uint64_t ns, int64_t ms);

#endif
