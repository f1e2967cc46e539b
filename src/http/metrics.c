/* metrics.c - the metrics registry and its Prometheus text rendering (GET /metrics).
 *
 * Per-route statistics are fixed arrays of atomic counters, so recording a request costs a few
 * relaxed atomic adds and no lock or allocation on the hot path. Status codes are folded into a
 * fixed set of slots (plus "other") so a client cannot grow the label set.
 * Invariants:
 *   1. Registration (routes, counters, gauges, collectors) happens before the server starts;
 *      after that the lists are read-only and only the atomic values change.
 *   2. Every family is written with # HELP and # TYPE once, in a stable order.
 */
#include "http/http_int.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const int status_slots[] = {200, 201, 202, 204, 206, 301, 302, 304, 400, 401, 403, 404,
                                   405, 409, 413, 415, 422, 429, 500, 502, 503, 504};
#define NSTATUS (sizeof status_slots / sizeof status_slots[0])
/* Latency buckets in seconds; the last slot is +Inf. */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

struct http__route_stats {
    char *method, *pattern;
    _Atomic uint64_t by_status[NSTATUS + 1]; /* last: other */
    _Atomic uint64_t hist[NBUCKETS + 1];     /* last: +Inf only */
    _Atomic uint64_t sum_ns, count;
    struct http__route_stats *next;
};

typedef enum { M_COUNTER, M_GAUGE } mkind;

typedef struct metric {
    mkind kind;
    char *name, *help;
    _Atomic uint64_t v; /* counter value, or the bits of a double for gauges */
    struct metric *next;
} metric;

struct http_counter {
    metric m;
};
struct http_gauge {
    metric m;
};

typedef struct collector {
    http_collector_fn fn;
    void *ctx;
    struct collector *next;
} collector;

struct http_metrics {
    http__route_stats *routes, **routes_tail;
    metric *list, **list_tail;
    collector *collectors, **coll_tail;
};

int http__metrics_new(http_metrics **out)
{
    http_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return MD_E_NOMEM;
    m->routes_tail = &m->routes;
    m->list_tail = &m->list;
    m->coll_tail = &m->collectors;
    *out = m;
    return MD_OK;
}

void http__metrics_free(http_metrics *m)
{
    if (!m)
        return;
    for (http__route_stats *r = m->routes, *n; r; r = n) {
        n = r->next;
        free(r->method);
        free(r->pattern);
        free(r);
    }
    for (metric *x = m->list, *n; x; x = n) {
        n = x->next;
        free(x->name);
        free(x->help);
        free(x);
    }
    for (collector *c = m->collectors, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(m);
}

http__route_stats *http__metrics_route(http_metrics *m, const char *method, const char *pattern)
{
    http__route_stats *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->method = strdup(method);
    r->pattern = strdup(pattern);
    if (!r->method || !r->pattern) {
        free(r->method);
        free(r->pattern);
        free(r);
        return NULL;
    }
    *m->routes_tail = r;
    m->routes_tail = &r->next;
    return r;
}

void http__metrics_observe(http__route_stats *st, int status, uint64_t dur_ns)
{
    size_t s = NSTATUS;
    for (size_t i = 0; i < NSTATUS; i++)
        if (status_slots[i] == status) {
            s = i;
            break;
        }
    atomic_fetch_add_explicit(&st->by_status[s], 1, memory_order_relaxed);
    double secs = (double)dur_ns / 1e9;
    size_t b = 0;
    while (b < NBUCKETS && secs > buckets[b])
        b++;
    /* Stored per bucket (not cumulative); the renderer sums them. */
    atomic_fetch_add_explicit(&st->hist[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->sum_ns, dur_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->count, 1, memory_order_relaxed);
}

/* Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*. */
static bool valid_name(const char *s)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == ':'))
            return false;
    return true;
}

static metric *metric_new(http_metrics *m, mkind kind, const char *name, const char *help)
{
    if (!valid_name(name))
        return NULL;
    /* http_counter / http_gauge are a metric with a distinct type for the caller. */
    metric *x = calloc(1, sizeof(struct http_counter));
    if (!x)
        return NULL;
    x->kind = kind;
    x->name = strdup(name);
    x->help = strdup(help ? help : name);
    if (!x->name || !x->help) {
        free(x->name);
        free(x->help);
        free(x);
        return NULL;
    }
    *m->list_tail = x;
    m->list_tail = &x->next;
    return x;
}

http_counter *http__metrics_counter(http_metrics *m, const char *name, const char *help)
{
    return (http_counter *)metric_new(m, M_COUNTER, name, help);
}

http_gauge *http__metrics_gauge(http_metrics *m, const char *name, const char *help)
{
    return (http_gauge *)metric_new(m, M_GAUGE, name, help);
}

int http__metrics_collector(http_metrics *m, http_collector_fn fn, void *ctx)
{
    collector *c = calloc(1, sizeof *c);
    if (!c)
        return MD_E_NOMEM;
    c->fn = fn;
    c->ctx = ctx;
    *m->coll_tail = c;
    m->coll_tail = &c->next;
    return MD_OK;
}

void http_counter_add(http_counter *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->m.v, n, memory_order_relaxed);
}

static double bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

void http_gauge_set(http_gauge *g, double v)
{
    if (g)
        atomic_store_explicit(&g->m.v, double_to_bits(v), memory_order_relaxed);
}

void http_gauge_add(http_gauge *g, double d)
{
    if (!g)
        return;
    uint64_t old = atomic_load_explicit(&g->m.v, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&g->m.v, &old, double_to_bits(bits_to_double(old) + d),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

static void put_label(md_buf *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            md_buf_putc(o, '\\');
        if (*s == '\n') {
            md_buf_puts(o, "\\n");
            continue;
        }
        md_buf_putc(o, *s);
    }
}

static void route_labels(md_buf *o, const http__route_stats *r)
{
    md_buf_puts(o, "route=\"");
    put_label(o, r->pattern);
    md_buf_puts(o, "\",method=\"");
    put_label(o, r->method);
    md_buf_putc(o, '"');
}

static void render_counts(http_metrics *m, md_buf *o)
{
    md_buf_puts(o, "# HELP modeld_http_requests_total HTTP requests by route, method and status.\n"
                   "# TYPE modeld_http_requests_total counter\n");
    for (http__route_stats *r = m->routes; r; r = r->next) {
        for (size_t i = 0; i <= NSTATUS; i++) {
            uint64_t v = atomic_load_explicit(&r->by_status[i], memory_order_relaxed);
            if (!v)
                continue;
            md_buf_puts(o, "modeld_http_requests_total{");
            route_labels(o, r);
            if (i < NSTATUS)
                md_buf_printf(o, ",status=\"%d\"} %llu\n", status_slots[i], (unsigned long long)v);
            else
                md_buf_printf(o, ",status=\"other\"} %llu\n", (unsigned long long)v);
        }
    }
}

static void render_hist(http_metrics *m, md_buf *o)
{
    md_buf_puts(o, "# HELP modeld_http_request_duration_seconds Time from request start to the end of its response.\n"
                   "# TYPE modeld_http_request_duration_seconds histogram\n");
    for (http__route_stats *r = m->routes; r; r = r->next) {
        uint64_t count = atomic_load_explicit(&r->count, memory_order_relaxed);
        if (!count)
            continue;
        uint64_t cum = 0;
        for (size_t b = 0; b <= NBUCKETS; b++) {
            cum += atomic_load_explicit(&r->hist[b], memory_order_relaxed);
            md_buf_puts(o, "modeld_http_request_duration_seconds_bucket{");
            route_labels(o, r);
            if (b < NBUCKETS)
                md_buf_printf(o, ",le=\"%g\"} %llu\n", buckets[b], (unsigned long long)cum);
            else
                md_buf_printf(o, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        md_buf_puts(o, "modeld_http_request_duration_seconds_sum{");
        route_labels(o, r);
        md_buf_printf(o, "} %.6f\n", (double)atomic_load(&r->sum_ns) / 1e9);
        md_buf_puts(o, "modeld_http_request_duration_seconds_count{");
        route_labels(o, r);
        md_buf_printf(o, "} %llu\n", (unsigned long long)cum);
    }
}

static void family(md_buf *o, const char *name, const char *type, const char *help, double v)
{
    md_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

/* RSS from /proc/self/statm (pages), CPU from getrusage, fds by counting /proc/self/fd. */
static void render_process(md_buf *o)
{
    long page = sysconf(_SC_PAGESIZE);
    unsigned long vsz = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu %lu", &vsz, &rss) != 2)
            vsz = rss = 0;
        fclose(f);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    long fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *e; (e = readdir(d));)
            fds += e->d_name[0] != '.';
        closedir(d);
        fds--; /* the directory stream itself */
    }
    family(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
           (double)rss * (double)page);
    family(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
           (double)vsz * (double)page);
    family(o, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.", cpu);
    family(o, "process_open_fds", "gauge", "Number of open file descriptors.", (double)fds);
}

static void render_registered(http_metrics *m, md_buf *o)
{
    for (metric *x = m->list; x; x = x->next) {
        uint64_t v = atomic_load_explicit(&x->v, memory_order_relaxed);
        if (x->kind == M_COUNTER)
            family(o, x->name, "counter", x->help, (double)v);
        else
            family(o, x->name, "gauge", x->help, bits_to_double(v));
    }
    for (collector *c = m->collectors; c; c = c->next)
        c->fn(o, c->ctx);
}

/* The trace exporter's counters (base/trace.h); zero while tracing is off. */
static void render_trace(md_buf *o)
{
    tr_stats t;
    tr_get_stats(&t);
    family(o, "modeld_trace_spans_exported_total", "counter", "Spans the OTLP collector accepted.",
           (double)t.exported);
    family(o, "modeld_trace_spans_failed_total", "counter",
           "Spans lost because the OTLP collector refused their batch or did not answer in time.",
           (double)t.failed);
    family(o, "modeld_trace_spans_dropped_total", "counter",
           "Spans dropped because the export queue was full (a slow or unreachable collector).",
           (double)t.dropped);
    family(o, "modeld_trace_queue_spans", "gauge", "Ended spans waiting for export.", (double)t.queued);
}

int http__metrics_render(http_metrics *m, const http__server_gauges *g, md_buf *o)
{
    render_counts(m, o);
    render_hist(m, o);
    family(o, "modeld_http_requests_in_flight", "gauge", "Requests being received, processed or sent.",
           (double)g->inflight);
    family(o, "modeld_compute_queue_depth", "gauge", "Heavy requests waiting for a compute worker.",
           (double)g->queue_depth);
    family(o, "modeld_compute_workers_busy", "gauge", "Compute workers running a heavy request now.",
           (double)g->workers_busy);
    family(o, "modeld_compute_rejections_total", "counter",
           "Heavy requests refused with 503 because the compute queue was full.", (double)g->queue_rejected);
    family(o, "modeld_compute_inline_total", "counter",
           "Requests of heavy routes run on the I/O thread because their work was known to be tiny.",
           (double)g->ran_inline);
    family(o, "modeld_request_timeouts_total", "counter", "Requests answered 504 at their deadline.",
           (double)g->timeouts);
    family(o, "modeld_rate_limit_rejections_total", "counter", "Requests refused with 429 by the rate limiter.",
           (double)g->rate_limited);
    family(o, "modeld_uptime_seconds", "gauge", "Seconds since the server started.", g->uptime_s);
    render_trace(o);
    render_process(o);
    render_registered(m, o);
    return o->len < o->max ? MD_OK : MD_E_TOO_LARGE;
}
