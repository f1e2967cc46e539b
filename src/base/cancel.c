/* cancel.c - the cancel-and-progress token of cancel.h. */
#include "base/cancel.h"

#include "base/clock.h"

void md_cancel_init(md_cancel *c, uint64_t deadline_ns)
{
    atomic_init(&c->cancelled, 0);
    c->deadline_ns = deadline_ns;
    c->progress = NULL;
    c->progress_ctx = NULL;
}

void md_cancel_request(md_cancel *c)
{
    if (c)
        atomic_store_explicit(&c->cancelled, 1, memory_order_relaxed);
}

int md_cancel_stopped(const md_cancel *c)
{
    if (c == NULL)
        return 0;
    if (atomic_load_explicit(&((md_cancel *)c)->cancelled, memory_order_relaxed))
        return 1;
    return c->deadline_ns != 0 && md_now_ns() >= c->deadline_ns;
}

int md_cancel_check(const md_cancel *c, const char *stage, md_err *err)
{
    if (c == NULL)
        return MD_OK;
    if (atomic_load_explicit(&((md_cancel *)c)->cancelled, memory_order_relaxed))
        return md_fail(err, MD_E_CANCELLED, NULL, "the work was cancelled%s%s", stage ? " during " : "",
                       stage ? stage : "");
    if (c->deadline_ns != 0 && md_now_ns() >= c->deadline_ns)
        return md_fail(err, MD_E_TIMEOUT, NULL, "the work passed its deadline%s%s", stage ? " during " : "",
                       stage ? stage : "");
    return MD_OK;
}

void md_cancel_progress(const md_cancel *c, double fraction, const char *stage)
{
    if (c && c->progress)
        c->progress(c->progress_ctx, fraction < 0 ? 0 : fraction > 1 ? 1 : fraction, stage);
}
