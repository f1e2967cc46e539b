/* budget.c - admission by cost (pipelines.h, pl_budget): a per-conversion pixel maximum and a
 * pixel budget shared by every conversion in flight.
 *
 * Invariants:
 *   1. in_flight is the sum of the pixels of admitted, unreleased conversions, and never goes
 *      above max_in_flight (when set): admission is one compare-and-swap, so two threads
 *      cannot both squeeze into the last slice.
 *   2. max_in_flight >= max_pixels when both are set (pl_budget_new raises it), so a conversion
 *      within the per-conversion maximum is never refused forever, only until others finish.
 */
#include "pipelines/pipelines.h"

#include <stdatomic.h>
#include <stdlib.h>

struct pl_budget {
    pl_budget_opts o;
    _Atomic uint64_t in_flight;
};

pl_budget_opts pl_budget_opts_default(void)
{
    pl_budget_opts o = {.max_pixels = 16000000u, .max_in_flight = 32000000u};
    return o;
}

int pl_budget_new(const pl_budget_opts *o, pl_budget **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return MD_E_NOMEM;
    (*out)->o = *o;
    if (o->max_pixels && o->max_in_flight && o->max_in_flight < o->max_pixels)
        (*out)->o.max_in_flight = o->max_pixels; /* invariant 2 */
    atomic_init(&(*out)->in_flight, 0);
    return MD_OK;
}

void pl_budget_free(pl_budget *b)
{
    free(b);
}

int pl_budget_acquire(pl_budget *b, uint64_t pixels, md_err *err)
{
    if (!b)
        return MD_OK;
    if (b->o.max_pixels && pixels > b->o.max_pixels)
        return md_fail(err, MD_E_IMAGE_TOO_LARGE, "pixels",
                       "the image has %llu pixels; this server converts at most %llu pixels "
                       "(width x height) per image",
                       (unsigned long long)pixels, (unsigned long long)b->o.max_pixels);
    uint64_t cur = atomic_load(&b->in_flight);
    do {
        if (b->o.max_in_flight && cur + pixels > b->o.max_in_flight)
            return md_fail(err, MD_E_OVERLOADED, NULL,
                           "the conversions running now hold %llu of the %llu pixels the server "
                           "converts at once; retry later",
                           (unsigned long long)cur, (unsigned long long)b->o.max_in_flight);
    } while (!atomic_compare_exchange_weak(&b->in_flight, &cur, cur + pixels));
    return MD_OK;
}

void pl_budget_release(pl_budget *b, uint64_t pixels)
{
    if (b)
        atomic_fetch_sub(&b->in_flight, pixels);
}

uint64_t pl_budget_in_flight(const pl_budget *b)
{
    return b ? atomic_load(&((pl_budget *)b)->in_flight) : 0;
}

pl_budget_opts pl_budget_limits(const pl_budget *b)
{
    pl_budget_opts none = {0, 0};
    return b ? b->o : none;
}
