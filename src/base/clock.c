/* clock.c - the system clock and a manual clock for tests. */
#include "base/clock.h"

#include <time.h>

static uint64_t sys_now_ns(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t sys_wall_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const md_clock system_clock = {sys_now_ns, sys_wall_ms, NULL};

const md_clock *md_clock_system(void) { return &system_clock; }
uint64_t md_now_ns(void) { return sys_now_ns(NULL); }
int64_t md_wall_ms(void) { return sys_wall_ms(NULL); }

static uint64_t manual_now_ns(void *ctx) { return ((md_manual_clock *)ctx)->ns; }
static int64_t manual_wall_ms(void *ctx) { return ((md_manual_clock *)ctx)->ms; }

void md_manual_clock_init(md_manual_clock *m, uint64_t ns, int64_t ms)
{
    m->clock.now_ns = manual_now_ns;
    m->clock.wall_ms = manual_wall_ms;
    m->clock.ctx = m;
    m->ns = ns;
    m->ms = ms;
}
