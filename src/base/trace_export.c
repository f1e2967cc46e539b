/* trace_export.c - the OTLP/HTTP JSON exporter: a bounded queue of ended spans and one thread
 * that POSTs them in batches to {endpoint}/v1/traces with libcurl.
 *
 * Invariants:
 *  1. tr__enqueue never blocks on the network: it takes the queue lock (held only to push or to
 *     take a batch), and when the queue is full the span is freed and counted as dropped.
 *  2. Only the exporter thread talks to the collector; a POST is bounded by timeout_ms, so a
 *     slow collector fills the queue (and drops) rather than slowing requests.
 *  3. Every span queued is counted exactly once: exported, failed or (at stop) failed.
 *  4. The exporter is the only global of the trace module; `running` is read without the lock
 *     (an atomic) so tracing off costs one load.
 *
 * States:  STOPPED --tr_exporter_start--> RUNNING --tr_exporter_stop--> STOPPED
 */
#include "base/trace.h"
#include "base/trace_int.h"

#include <assert.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct exporter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    tr_span **q; /* ring of queue_max */
    size_t head, len;
    int stopping;
    char url[512];
    char service[64];
    size_t queue_max, batch_max;
    unsigned interval_ms, timeout_ms;
} exporter;

static exporter g_ex = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
static atomic_int g_running;
static atomic_uint_least64_t g_exported, g_failed, g_dropped;

int tr_enabled(void) { return atomic_load_explicit(&g_running, memory_order_relaxed); }

static void tr_assert_state(int running)
{
    assert(atomic_load(&g_running) == running);
    (void)running;
}

void tr__enqueue(tr_span *s)
{
    int queued = 0;
    pthread_mutex_lock(&g_ex.mu);
    if (atomic_load(&g_running) && !g_ex.stopping && g_ex.len < g_ex.queue_max) {
        g_ex.q[(g_ex.head + g_ex.len) % g_ex.queue_max] = s;
        g_ex.len++;
        queued = 1;
        if (g_ex.len >= g_ex.batch_max)
            pthread_cond_signal(&g_ex.cv);
    }
    pthread_mutex_unlock(&g_ex.mu);
    if (!queued) {
        atomic_fetch_add(&g_dropped, 1); /* invariant 1 */
        free(s);
    }
}

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

/* One POST; returns 1 when the collector answered 2xx. */
static int post(const char *body, size_t len)
{
    CURL *c = curl_easy_init();
    if (c == NULL)
        return 0;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, g_ex.url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)g_ex.timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)g_ex.timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    long status = 0;
    int ok = curl_easy_perform(c) == CURLE_OK &&
             curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status >= 200 &&
             status < 300;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return ok;
}

static void send_batch(tr_span **batch, size_t n)
{
    md_buf b;
    md_buf_init(&b, (size_t)64 << 20);
    int ok = tr_otlp_json(batch, n, g_ex.service, &b) == MD_OK && post(b.data, b.len);
    atomic_fetch_add(ok ? &g_exported : &g_failed, n); /* invariant 3 */
    md_buf_free(&b);
    for (size_t i = 0; i < n; i++)
        free(batch[i]);
}

/* Takes up to batch_max spans off the queue; called with the lock held. */
static size_t take_batch(tr_span **batch)
{
    size_t n = 0;
    while (g_ex.len > 0 && n < g_ex.batch_max) {
        batch[n++] = g_ex.q[g_ex.head];
        g_ex.head = (g_ex.head + 1) % g_ex.queue_max;
        g_ex.len--;
    }
    return n;
}

static void *export_main(void *arg)
{
    tr_span **batch = arg;
    pthread_mutex_lock(&g_ex.mu);
    for (;;) {
        if (g_ex.len < g_ex.batch_max && !g_ex.stopping) {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            uint64_t ns = (uint64_t)dl.tv_nsec + (uint64_t)g_ex.interval_ms * 1000000u;
            dl.tv_sec += (time_t)(ns / 1000000000u);
            dl.tv_nsec = (long)(ns % 1000000000u);
            pthread_cond_timedwait(&g_ex.cv, &g_ex.mu, &dl);
        }
        size_t n = take_batch(batch);
        int stop = g_ex.stopping && g_ex.len == 0;
        pthread_mutex_unlock(&g_ex.mu);
        if (n > 0)
            send_batch(batch, n); /* invariant 2: no lock held across the network */
        pthread_mutex_lock(&g_ex.mu);
        if (stop)
            break;
    }
    pthread_mutex_unlock(&g_ex.mu);
    free(batch);
    return NULL;
}

static int check_opts(const tr_export_opts *o, md_err *err)
{
    if (o->endpoint == NULL ||
        (strncmp(o->endpoint, "http://", 7) != 0 && strncmp(o->endpoint, "https://", 8) != 0))
        return md_fail(err, MD_E_INVALID_PARAM, "otlp_endpoint", "must start with http:// or https://");
    size_t n = strlen(o->endpoint);
    while (n > 0 && o->endpoint[n - 1] == '/')
        n--;
    if (n + sizeof "/v1/traces" > sizeof g_ex.url)
        return md_fail(err, MD_E_INVALID_PARAM, "otlp_endpoint", "is longer than %zu bytes",
                       sizeof g_ex.url - sizeof "/v1/traces");
    snprintf(g_ex.url, sizeof g_ex.url, "%.*s/v1/traces", (int)n, o->endpoint);
    return MD_OK;
}

int tr_exporter_start(const tr_export_opts *o, md_err *err)
{
    if (atomic_load(&g_running))
        return md_fail(err, MD_E_CONFLICT, NULL, "the trace exporter is already running");
    int rc = check_opts(o, err);
    if (rc != MD_OK)
        return rc;
    snprintf(g_ex.service, sizeof g_ex.service, "%s", o->service ? o->service : "modeld");
    g_ex.queue_max = o->queue_max ? o->queue_max : 2048;
    g_ex.batch_max = o->batch_max ? o->batch_max : 256;
    if (g_ex.batch_max > g_ex.queue_max)
        g_ex.batch_max = g_ex.queue_max;
    g_ex.interval_ms = o->interval_ms ? o->interval_ms : 1000;
    g_ex.timeout_ms = o->timeout_ms ? o->timeout_ms : 2000;
    g_ex.q = calloc(g_ex.queue_max, sizeof *g_ex.q);
    tr_span **batch = calloc(g_ex.batch_max, sizeof *batch);
    if (g_ex.q == NULL || batch == NULL)
        goto fail_mem;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) /* ref-counted; before the thread */
        goto fail_mem;
    g_ex.head = g_ex.len = 0;
    g_ex.stopping = 0;
    atomic_store(&g_running, 1);
    if (pthread_create(&g_ex.thread, NULL, export_main, batch) != 0)
        goto fail_thread;
    tr_assert_state(1);
    return MD_OK;
fail_thread:
    atomic_store(&g_running, 0);
    curl_global_cleanup();
fail_mem:
    free(batch);
    free(g_ex.q);
    g_ex.q = NULL;
    return md_fail(err, MD_E_NOMEM, NULL, "cannot start the trace exporter");
}

void tr_exporter_stop(void)
{
    if (!atomic_load(&g_running))
        return;
    pthread_mutex_lock(&g_ex.mu);
    g_ex.stopping = 1;
    pthread_cond_signal(&g_ex.cv);
    pthread_mutex_unlock(&g_ex.mu);
    pthread_join(g_ex.thread, NULL);
    atomic_store(&g_running, 0);
    free(g_ex.q);
    g_ex.q = NULL;
    curl_global_cleanup();
    tr_assert_state(0);
}

void tr_get_stats(tr_stats *out)
{
    out->exported = atomic_load(&g_exported);
    out->failed = atomic_load(&g_failed);
    out->dropped = atomic_load(&g_dropped);
    pthread_mutex_lock(&g_ex.mu);
    out->queued = g_ex.len;
    pthread_mutex_unlock(&g_ex.mu);
}
