/* stats.c - per-version request statistics: requests, successes, failures by reason (the md
 * error name), latency and queue-time histograms with Prometheus buckets, the last error.
 *
 * Every request updates these from whichever thread ran it, so the counters are relaxed C11
 * atomics (exact totals, no ordering between them needed: a reader may see a request counted
 * before its latency, never a torn number). Only the last-error text takes a mutex, and only
 * on a failure.
 *
 * Invariants:
 *   1. requests == successes + sum(failures) once no request is in flight.
 *   2. Histogram counts are per bucket (not cumulative); rendering makes them cumulative.
 */
#include "models/models_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const double mdl__bucket_le[MDL_NBUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                             0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                             1,      2.5,     5,      10};

void mdl__stats_init(mdl_stats *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->err_mu, NULL);
}

void mdl__stats_destroy(mdl_stats *s)
{
    pthread_mutex_destroy(&s->err_mu);
}

void mdl__hist_add(mdl_hist *h, uint64_t ns)
{
    double sec = (double)ns / 1e9;
    int i = 0;
    while (i < MDL_NBUCKETS && sec > mdl__bucket_le[i])
        i++;
    atomic_fetch_add_explicit(&h->count[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->n, 1, memory_order_relaxed);
}

double mdl__hist_quantile(const mdl_hist *h, double q)
{
    uint64_t c[MDL_NBUCKETS + 1], n = 0;
    for (int i = 0; i <= MDL_NBUCKETS; i++) {
        c[i] = atomic_load_explicit(&h->count[i], memory_order_relaxed);
        n += c[i];
    }
    if (n == 0)
        return 0;
    double target = q * (double)n, cum = 0;
    for (int i = 0; i < MDL_NBUCKETS; i++) {
        if (c[i] && cum + (double)c[i] >= target) {
            double lo = i ? mdl__bucket_le[i - 1] : 0, hi = mdl__bucket_le[i];
            return lo + (hi - lo) * fmax(0, target - cum) / (double)c[i];
        }
        cum += (double)c[i];
    }
    return mdl__bucket_le[MDL_NBUCKETS - 1];
}

void mdl__stats_record(mdl_stats *s, int rc, const md_err *err, uint64_t ns, int64_t wall_ms)
{
    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
    atomic_store_explicit(&s->last_ms, wall_ms, memory_order_relaxed);
    mdl__hist_add(&s->latency, ns);
    if (rc == MD_OK) {
        atomic_fetch_add_explicit(&s->successes, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->success_ns, ns, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&s->failure_ns, ns, memory_order_relaxed);
    if (rc <= 0 || rc >= MD_E__COUNT)
        rc = MD_E_INTERNAL;
    atomic_fetch_add_explicit(&s->failures[rc], 1, memory_order_relaxed);
    pthread_mutex_lock(&s->err_mu);
    snprintf(s->last_error, sizeof s->last_error, "%s: %s", md_err_name(rc),
             err ? md_err_message(err) : md_err_default_msg(rc));
    pthread_mutex_unlock(&s->err_mu);
}

static json_t *hist_json(const mdl_hist *h)
{
    json_t *b = json_array();
    uint64_t cum = 0;
    for (int i = 0; i <= MDL_NBUCKETS; i++) {
        cum += atomic_load_explicit(&h->count[i], memory_order_relaxed);
        json_array_append_new(b, json_pack("{s:f,s:I}", "le",
                                           i < MDL_NBUCKETS ? mdl__bucket_le[i] : 0.0, "count",
                                           (json_int_t)cum));
    }
    /* JSON has no infinity: the last bucket's bound is written as null. */
    json_object_set_new(json_array_get(b, MDL_NBUCKETS), "le", json_null());
    return json_pack("{s:f,s:f,s:o}", "p50", mdl__hist_quantile(h, 0.5), "p99",
                     mdl__hist_quantile(h, 0.99), "buckets", b);
}

json_t *mdl__stats_json(mdl_stats *s)
{
    json_t *fail = json_object();
    for (int c = 1; c < MD_E__COUNT; c++) {
        uint64_t k = atomic_load_explicit(&s->failures[c], memory_order_relaxed);
        if (k)
            json_object_set_new(fail, md_err_name(c), json_integer((json_int_t)k));
    }
    char last[sizeof s->last_error];
    pthread_mutex_lock(&s->err_mu);
    memcpy(last, s->last_error, sizeof last);
    pthread_mutex_unlock(&s->err_mu);
    double ok_s = (double)atomic_load(&s->success_ns) / 1e9;
    double bad_s = (double)atomic_load(&s->failure_ns) / 1e9;
    return json_pack(
        "{s:I,s:I,s:o,s:o,s:f,s:f,s:f,s:I,s:I,s:f,s:o}", "requests",
        (json_int_t)atomic_load_explicit(&s->requests, memory_order_relaxed), "successes",
        (json_int_t)atomic_load_explicit(&s->successes, memory_order_relaxed), "failures", fail,
        "latency_seconds", hist_json(&s->latency), "latency_seconds_total", ok_s + bad_s,
        "success_seconds_total", ok_s, "failure_seconds_total", bad_s, "queue_count",
        (json_int_t)atomic_load(&s->queue.n), "last_inference_ms",
        (json_int_t)atomic_load(&s->last_ms), "queue_seconds_total",
        (double)atomic_load_explicit(&s->queue.sum_ns, memory_order_relaxed) / 1e9, "last_error",
        last[0] ? json_string(last) : json_null());
}
