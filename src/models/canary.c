/* canary.c - routing a share of a model's requests to a canary version, and judging it.
 *
 * Routing is deterministic, not random: the serving set counts the requests it routes, and
 * request n (from 0) goes to the canary when floor((n+1)*p) > floor(n*p), p = percent/100 in
 * basis points. Over any first N requests exactly floor(N*p) went to the canary, spread
 * evenly (Bresenham), so a test can check proportions exactly and no random source is shared
 * between threads.
 *
 * Judging: each serving set that has a canary keeps window counters for the active version
 * ([0]) and the canary ([1]): requests, failures and a latency histogram. Only failures that
 * are the server's (status >= 500: internal error, out of memory, timeout...) count against a
 * version: a client sending a wrong shape must not roll a good canary back. Once the canary has
 * min_requests in the window it is rolled back when its error rate exceeds the active's by
 * max_error_margin, or (with min_requests on both sides) when its p99 exceeds the active's
 * times max_p99_ratio. It is promoted after promote_after successes since it started. Every
 * window_s (by the registry's clock, injectable) the window counters start again, so old
 * traffic does not outweigh the present.
 *
 * Invariants:
 *   1. At most one automatic decision per serving set (s->decided), taken inside the reader
 *      epoch, acted on outside it (publishing waits for readers, so acting inside would
 *      deadlock on ourselves).
 *   2. The action re-checks, under the management lock, that the version is still the canary,
 *      so a decision that raced with a manual change does nothing.
 */
#include "models/models_int.h"

#include <stdio.h>
#include <string.h>

enum { KEEP = 0, PROMOTE, ROLLBACK };

int mdl__route_canary(mdl_serving *s)
{
    if (!s->canary || s->basis_points == 0)
        return 0;
    if (s->basis_points >= 10000)
        return 1;
    uint64_t n = atomic_fetch_add_explicit(&s->route, 1, memory_order_relaxed);
    uint64_t p = s->basis_points;
    return (n + 1) * p / 10000 > n * p / 10000;
}

static void judge_reset(mdl_judge *j)
{
    atomic_store_explicit(&j->req, 0, memory_order_relaxed);
    atomic_store_explicit(&j->fail, 0, memory_order_relaxed);
    for (int i = 0; i <= MDL_NBUCKETS; i++)
        atomic_store_explicit(&j->lat.count[i], 0, memory_order_relaxed);
    atomic_store_explicit(&j->lat.n, 0, memory_order_relaxed);
    atomic_store_explicit(&j->lat.sum_ns, 0, memory_order_relaxed);
}

/* Start a new window when the current one is older than window_s. One thread wins the CAS and
 * clears; a request counted concurrently may land in either window (statistics, not money). */
static void maybe_roll(mdl_registry *r, mdl_serving *s, uint64_t now)
{
    uint64_t start = atomic_load(&s->window_start_ns);
    if (now < start || now - start < r->canary_window_ns) /* another thread read later */
        return;
    if (!atomic_compare_exchange_strong(&s->window_start_ns, &start, now))
        return;
    judge_reset(&s->judge[0]);
    judge_reset(&s->judge[1]);
}

static int decide(const mdl_registry *r, mdl_serving *s, char *why, size_t cap)
{
    const mdl_canary_opts *o = &r->canary;
    uint64_t min = o->min_requests ? o->min_requests : 20;
    double margin = o->max_error_margin > 0 ? o->max_error_margin : 0.05;
    double ratio = o->max_p99_ratio > 0 ? o->max_p99_ratio : 2.0;
    uint64_t cr = atomic_load(&s->judge[1].req), cf = atomic_load(&s->judge[1].fail);
    uint64_t ar = atomic_load(&s->judge[0].req), af = atomic_load(&s->judge[0].fail);
    if (cr >= min) {
        double ce = (double)cf / (double)cr, ae = ar ? (double)af / (double)ar : 0;
        if (ce > ae + margin) {
            snprintf(why, cap, "canary error rate %.3f > active %.3f + %.3f", ce, ae, margin);
            return ROLLBACK;
        }
        double cp = mdl__hist_quantile(&s->judge[1].lat, 0.99);
        double ap = mdl__hist_quantile(&s->judge[0].lat, 0.99);
        if (ar >= min && ap > 0 && cp > ap * ratio) {
            snprintf(why, cap, "canary p99 %.6fs > active p99 %.6fs x %.2f", cp, ap, ratio);
            return ROLLBACK;
        }
    }
    if (o->promote_after && atomic_load(&s->canary_ok) >= o->promote_after)
        return PROMOTE;
    return KEEP;
}

void mdl__canary_observe(mdl_registry *r, mdl_model *m, mdl_version *v, int rc, uint64_t ns)
{
    int action = KEEP;
    char why[160] = "";
    mdl_version *canary = NULL;
    unsigned e = mdl__enter(m);
    mdl_serving *s = atomic_load(&m->serving);
    if (s && s->canary && (v == s->canary || v == s->active) && !atomic_load(&s->decided)) {
        maybe_roll(r, s, md_clock_now_ns(r->clock));
        mdl_judge *j = &s->judge[v == s->canary];
        atomic_fetch_add(&j->req, 1);
        if (rc != MD_OK && md_err_status(rc) >= 500)
            atomic_fetch_add(&j->fail, 1);
        else if (v == s->canary)
            atomic_fetch_add(&s->canary_ok, 1);
        mdl__hist_add(&j->lat, ns);
        if (v == s->canary)
            action = decide(r, s, why, sizeof why);
        if (action != KEEP && atomic_exchange(&s->decided, 1) == 0) {
            canary = s->canary;
            mdl__ref(canary);
        } else {
            action = KEEP;
        }
    }
    mdl__exit(m, e);
    if (action == PROMOTE)
        mdl__auto_promote(r, m, canary);
    else if (action == ROLLBACK)
        mdl__auto_rollback(r, m, canary, why);
    mdl_release(canary);
}
