/* predlog.c - the write-behind prediction log (store.h, "write-behind prediction log"): the
 * rows store_predictions_add accepts wait in a bounded in-memory queue, and one writer thread
 * commits them, up to batch_rows per transaction, at most flush_ms after the oldest arrived.
 * Why: a transaction per single prediction was about 40 % of its CPU (the WAL write and its
 * checkpoints on SQLite, a round trip and a commit on PostgreSQL); one commit for a few hundred
 * rows costs about as much as one for one. The writer goes through the same db layer as every
 * store call (store__lock lends it the SQLite connection or a PostgreSQL pooled one), so both
 * back ends get it.
 *
 * Durability (README "Prediction log"): a row is in the database at most flush_ms after its
 * request was answered (sooner under load: a full batch is written at once). SIGTERM loses
 * nothing: serve stops the server and the job workers, then store_predlog_stop writes what is
 * queued. kill -9 (or a crash) loses the rows of the last flush window, those still queued;
 * the predictions already answered are not otherwise affected, and no row is ever written in
 * part: each batch is one transaction.
 *
 *   request ─▶ store_predictions_add ─▶ [queue: groups, FIFO] ─▶ writer ─▶ one transaction
 *                    │ queue full: wait ≤ wait_ms, then write inline (queue first, in order)
 *
 * Writer states (p->state, under p->mu):
 *
 *   IDLE ──────▶ RUNNING ────────────▶ STOPPING ─────────▶ STOPPED
 *     [store_predlog_start]  [store_predlog_stop]  [writer_main: queue empty]
 *
 * Invariants:
 *   1. Rows are committed in the order they were accepted, whole groups at a time (a group is
 *      one store_predictions_add call: one request's rows, so a /batch request is still one
 *      transaction): the set of rows in the database is always a prefix of the accepted
 *      sequence. Whoever writes log rows (the writer, or a request that writes inline) holds
 *      p->wmu from taking the groups off the queue until their commit, so two writes can never
 *      commit out of order.
 *   2. The queue never holds more than max_rows rows or max_bytes bytes of JSON. A group that
 *      does not fit waits up to wait_ms for room (and asks the writer to flush now); then it is
 *      written inline, after everything queued before it (invariant 1). Nothing is dropped
 *      for lack of room.
 *   3. A batch that cannot be written (database error) is logged as an error with its row
 *      count and counted in rows_failed; its rows are then gone, as an inline write's would be.
 *      Nothing is lost silently.
 *   4. Readers of the log see every row accepted before they were called: store_predictions_list
 *      and the feedback calls run store__plog_sync first, which waits until the writer has
 *      committed (or failed) every group queued up to then.
 *   5. After store_predlog_stop returns the queue is empty and stays empty: later rows are
 *      written inline, as with flush_ms 0.
 */
#include "store/store_int.h"

#include "base/log.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEF_BATCH 256
#define DEF_MAX_ROWS 8192
#define DEF_MAX_BYTES ((size_t)64 << 20)
#define DEF_WAIT_MS 250

/* Upper bounds (seconds) of the flush latency histogram. */
static const double FLUSH_BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
#define NBUCKETS (sizeof FLUSH_BUCKETS / sizeof FLUSH_BUCKETS[0])
_Static_assert(NBUCKETS == STORE_PREDLOG_NBUCKETS, "store_predlog_stats.flush_buckets");

typedef enum plog_state { PLOG_IDLE, PLOG_RUNNING, PLOG_STOPPING, PLOG_STOPPED } plog_state;

/* One store_predictions_add call's rows: one allocation holding the struct, the rows and the
 * copies of their JSON texts. */
typedef struct plog_group {
    struct plog_group *next;
    uint64_t seq; /* 1, 2, ... in acceptance order */
    int64_t t_ns; /* when it was queued (monotonic) */
    size_t n, bytes;
    store_prediction rows[];
} plog_group;

struct store__plog {
    pthread_mutex_t mu;  /* the queue, the state, the counters */
    pthread_cond_t work; /* the writer: rows arrived, a flush is wanted, or stop */
    pthread_cond_t room; /* adders waiting for room; readers waiting for seq_done */
    pthread_mutex_t wmu; /* invariant 1: held from taking groups to their commit */
    pthread_t thread;
    plog_state state;
    store_predlog_opts o;
    plog_group *head, *tail;
    size_t nrows, nbytes;
    uint64_t seq_in, seq_done; /* last group queued; last group written or failed */
    uint64_t urgent;           /* a reader or a full queue wants everything up to it now */
    store_predlog_stats st;
};

static void assert_state(const store__plog *p)
{
#ifndef NDEBUG
    /* RUNNING and STOPPING have a writer; IDLE and STOPPED never hold rows */
    assert(p->state == PLOG_RUNNING || p->state == PLOG_STOPPING || p->head == NULL);
    assert((p->head == NULL) == (p->nrows == 0 && p->tail == NULL));
    assert(p->nrows <= p->o.max_rows || p->head == p->tail);
    assert(p->seq_done <= p->seq_in);
#else
    (void)p;
#endif
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec ts_at(int64_t ns)
{
    return (struct timespec){.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
}

/* ---- writing -------------------------------------------------------------------------------- */

/* Count one written (or failed) batch of n rows that took ns. mu held. */
static void account(store__plog *p, size_t n, int rc, int64_t ns, bool inline_write)
{
    double s = (double)ns / 1e9;
    if (rc != MD_OK) {
        p->st.rows_failed += n;
        return;
    }
    if (inline_write)
        p->st.rows_inline += n;
    else
        p->st.rows_written += n;
    p->st.batches++;
    p->st.flush_seconds_sum += s;
    size_t b = 0;
    while (b < NBUCKETS && s > FLUSH_BUCKETS[b])
        b++;
    p->st.flush_buckets[b]++;
}

/* Write the groups list (taken off the queue, in order) and extra (n_extra rows of a request,
 * borrowed; may be NULL) in one transaction. wmu held, mu not. Frees the groups. */
static int write_groups(store *s, plog_group *list, const store_prediction *extra, size_t n_extra,
                        size_t *nrows, md_err *err)
{
    size_t n = n_extra;
    for (plog_group *g = list; g; g = g->next)
        n += g->n;
    *nrows = n;
    store_prediction *rows = n ? malloc(n * sizeof *rows) : NULL;
    int rc = n == 0 || rows ? MD_OK : md_fail(err, MD_E_NOMEM, NULL, NULL);
    size_t k = 0;
    for (plog_group *g = list; rc == MD_OK && g; g = g->next) {
        memcpy(rows + k, g->rows, g->n * sizeof *rows);
        k += g->n;
    }
    if (rc == MD_OK && n_extra)
        memcpy(rows + k, extra, n_extra * sizeof *rows);
    if (rc == MD_OK && n)
        rc = store__predictions_insert(s, rows, n, err);
    free(rows);
    while (list) {
        plog_group *next = list->next;
        free(list);
        list = next;
    }
    return rc;
}

/* Take whole groups off the head, at least one, until batch_rows rows (all of them when all).
 * mu held. *last: the seq of the last group taken. */
static plog_group *take(store__plog *p, bool all, uint64_t *last)
{
    plog_group *first = p->head, *g = p->head, *end = NULL;
    size_t n = 0;
    while (g && (all || n == 0 || n + g->n <= p->o.batch_rows)) {
        n += g->n;
        p->nrows -= g->n;
        p->nbytes -= g->bytes;
        *last = g->seq;
        end = g;
        g = g->next;
    }
    if (end)
        end->next = NULL;
    p->head = g;
    if (!g)
        p->tail = NULL;
    pthread_cond_broadcast(&p->room);
    return first;
}

/* Take and write one batch (everything when all). Called with mu held; returns with it held.
 * Invariant 1: wmu is taken before the groups and released after their commit. */
static void flush_once(store *s, store__plog *p, bool all, const store_prediction *extra,
                       size_t n_extra, md_err *err_out, int *rc_out)
{
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_lock(&p->wmu);
    pthread_mutex_lock(&p->mu);
    uint64_t last = p->seq_done;
    plog_group *list = p->head ? take(p, all, &last) : NULL;
    pthread_mutex_unlock(&p->mu);
    md_err e = {0};
    size_t n = 0;
    int64_t t0 = mono_ns();
    int rc = write_groups(s, list, extra, n_extra, &n, &e);
    int64_t dt = mono_ns() - t0;
    pthread_mutex_lock(&p->mu);
    if (last > p->seq_done)
        p->seq_done = last;
    account(p, n, rc, dt, extra != NULL);
    pthread_cond_broadcast(&p->room);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->wmu);
    if (rc != MD_OK) /* invariant 3 */
        md_log(MD_LOG_ERROR, "store: %zu logged predictions lost: %s", n, md_err_message(&e));
    if (err_out)
        *err_out = e;
    if (rc_out)
        *rc_out = rc;
    pthread_mutex_lock(&p->mu);
}

/* Whether the writer should write now rather than wait out the window. mu held. */
static bool due(const store__plog *p, int64_t now)
{
    return p->state == PLOG_STOPPING || p->urgent > p->seq_done || p->nrows >= p->o.batch_rows ||
           now >= p->head->t_ns + p->o.flush_ms * 1000000;
}

static void *writer_main(void *arg)
{
    store *s = arg;
    store__plog *p = s->plog;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        assert_state(p);
        if (!p->head) {
            if (p->state == PLOG_STOPPING)
                break;
            pthread_cond_wait(&p->work, &p->mu);
            continue;
        }
        int64_t now = mono_ns();
        if (!due(p, now)) {
            struct timespec until = ts_at(p->head->t_ns + p->o.flush_ms * 1000000);
            pthread_cond_timedwait(&p->work, &p->mu, &until);
            continue;
        }
        flush_once(s, p, false, NULL, 0, NULL, NULL);
    }
    p->state = PLOG_STOPPED;
    pthread_cond_broadcast(&p->room);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- the queue ------------------------------------------------------------------------------ */

/* A group holding copies of p[0..n) (JSON texts included). NULL when out of memory. */
static plog_group *group_new(const store_prediction *p, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += strlen(p[i].inputs) + strlen(p[i].outputs) + 2;
    plog_group *g = malloc(sizeof *g + n * sizeof g->rows[0] + bytes);
    if (!g)
        return NULL;
    char *text = (char *)(g->rows + n);
    for (size_t i = 0; i < n; i++) {
        g->rows[i] = p[i];
        g->rows[i].actual = NULL;
        size_t li = strlen(p[i].inputs) + 1, lo = strlen(p[i].outputs) + 1;
        g->rows[i].inputs = memcpy(text, p[i].inputs, li);
        g->rows[i].outputs = memcpy(text + li, p[i].outputs, lo);
        text += li + lo;
    }
    g->next = NULL;
    g->n = n;
    g->bytes = bytes;
    return g;
}

static bool fits(const store__plog *p, const plog_group *g)
{
    return p->nrows + g->n <= p->o.max_rows && p->nbytes + g->bytes <= p->o.max_bytes;
}

/* Wait (bounded) for room for g, asking the writer to flush now (invariant 2). mu held. */
static bool wait_room(store__plog *p, const plog_group *g)
{
    if (fits(p, g))
        return true;
    if (g->n > p->o.max_rows || g->bytes > p->o.max_bytes)
        return false; /* would never fit */
    p->st.waits++;
    int64_t until_ns = mono_ns() + p->o.wait_ms * 1000000;
    struct timespec until = ts_at(until_ns);
    while (p->state == PLOG_RUNNING && !fits(p, g) && mono_ns() < until_ns) {
        p->urgent = p->seq_in;
        pthread_cond_signal(&p->work);
        if (pthread_cond_timedwait(&p->room, &p->mu, &until) == ETIMEDOUT)
            break;
    }
    return p->state == PLOG_RUNNING && fits(p, g);
}

int store__plog_add(store *s, const store_prediction *rows, size_t n, md_err *err)
{
    store__plog *p = s->plog;
    plog_group *g = group_new(rows, n);
    if (!g)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    pthread_mutex_lock(&p->mu);
    if (p->state == PLOG_RUNNING && wait_room(p, g)) {
        g->seq = ++p->seq_in;
        g->t_ns = mono_ns();
        /* The writer needs waking only to start a window (it waits without a timeout on an
         * empty queue) or for a full batch; otherwise it is already waiting for the window's
         * end, and a wake-up per request would cost a context switch each. */
        bool wake = p->head == NULL || p->nrows + g->n >= p->o.batch_rows;
        if (p->tail)
            p->tail->next = g;
        else
            p->head = g;
        p->tail = g;
        p->nrows += g->n;
        p->nbytes += g->bytes;
        if (wake)
            pthread_cond_signal(&p->work);
        pthread_mutex_unlock(&p->mu);
        return MD_OK;
    }
    /* Invariant 2: no room in time (or no writer any more): inline, after what is queued. */
    int rc = MD_OK;
    flush_once(s, p, true, g->rows, g->n, err, &rc);
    pthread_mutex_unlock(&p->mu);
    free(g);
    return rc;
}

void store__plog_sync(store *s)
{
    store__plog *p = s->plog;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    uint64_t target = p->seq_in;
    if (p->urgent < target)
        p->urgent = target;
    pthread_cond_signal(&p->work);
    /* invariant 5: a stopped writer left nothing queued, so seq_done is already target */
    while (p->seq_done < target && (p->state == PLOG_RUNNING || p->state == PLOG_STOPPING))
        pthread_cond_wait(&p->room, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

int store_predlog_start(store *s, const store_predlog_opts *o, md_err *err)
{
    if (!o || o->flush_ms <= 0)
        return MD_OK; /* rows are written in the request */
    if (s->plog)
        return md_fail(err, MD_E_INVALID_PARAM, "predict_log_flush_ms", "already started");
    store__plog *p = calloc(1, sizeof *p);
    if (!p)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    p->o = *o;
    p->o.batch_rows = o->batch_rows ? o->batch_rows : DEF_BATCH;
    p->o.max_rows = o->max_rows ? o->max_rows : DEF_MAX_ROWS;
    p->o.max_bytes = o->max_bytes ? o->max_bytes : DEF_MAX_BYTES;
    p->o.wait_ms = o->wait_ms > 0 ? o->wait_ms : DEF_WAIT_MS;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->wmu, NULL);
    pthread_cond_init(&p->work, &ca);
    pthread_cond_init(&p->room, &ca);
    pthread_condattr_destroy(&ca);
    p->state = PLOG_RUNNING;
    s->plog = p;
    if (pthread_create(&p->thread, NULL, writer_main, s) != 0) {
        s->plog = NULL;
        store__plog_free(p);
        return md_fail(err, MD_E_INTERNAL, NULL, "cannot start the prediction log writer");
    }
    return MD_OK;
}

void store_predlog_stop(store *s)
{
    store__plog *p = s ? s->plog : NULL;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    bool join = p->state == PLOG_RUNNING;
    if (join)
        p->state = PLOG_STOPPING;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    if (join)
        pthread_join(p->thread, NULL);
}

void store__plog_free(store__plog *p)
{
    if (!p)
        return;
    assert(p->state != PLOG_RUNNING && p->state != PLOG_STOPPING);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->wmu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->room);
    free(p);
}

void store_predlog_stats_get(store *s, store_predlog_stats *out)
{
    memset(out, 0, sizeof *out);
    store__plog *p = s ? s->plog : NULL;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    out->queued_rows = p->nrows;
    out->flush_ms = p->o.flush_ms;
    pthread_mutex_unlock(&p->mu);
}

void store_predlog_metrics(md_buf *out, void *ctx)
{
    store_predlog_stats st;
    store_predlog_stats_get(ctx, &st);
    md_buf_printf(out,
                  "# HELP modeld_predict_log_queued_rows Logged predictions waiting for the "
                  "write-behind writer.\n# TYPE modeld_predict_log_queued_rows gauge\n"
                  "modeld_predict_log_queued_rows %llu\n"
                  "# HELP modeld_predict_log_rows_total Logged predictions committed: by the "
                  "writer (behind) or by a request that found the queue full (inline).\n"
                  "# TYPE modeld_predict_log_rows_total counter\n"
                  "modeld_predict_log_rows_total{path=\"behind\"} %llu\n"
                  "modeld_predict_log_rows_total{path=\"inline\"} %llu\n"
                  "# HELP modeld_predict_log_rows_failed_total Logged predictions lost to a "
                  "failed write (each logged as an error).\n"
                  "# TYPE modeld_predict_log_rows_failed_total counter\n"
                  "modeld_predict_log_rows_failed_total %llu\n"
                  "# HELP modeld_predict_log_full_waits_total Requests that waited for room in "
                  "the full queue.\n# TYPE modeld_predict_log_full_waits_total counter\n"
                  "modeld_predict_log_full_waits_total %llu\n",
                  (unsigned long long)st.queued_rows, (unsigned long long)st.rows_written,
                  (unsigned long long)st.rows_inline, (unsigned long long)st.rows_failed,
                  (unsigned long long)st.waits);
    md_buf_printf(out,
                  "# HELP modeld_predict_log_flush_seconds Time of one write-behind transaction.\n"
                  "# TYPE modeld_predict_log_flush_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t b = 0; b < NBUCKETS; b++) {
        cum += st.flush_buckets[b];
        md_buf_printf(out, "modeld_predict_log_flush_seconds_bucket{le=\"%g\"} %llu\n",
                      FLUSH_BUCKETS[b], (unsigned long long)cum);
    }
    cum += st.flush_buckets[NBUCKETS];
    md_buf_printf(out,
                  "modeld_predict_log_flush_seconds_bucket{le=\"+Inf\"} %llu\n"
                  "modeld_predict_log_flush_seconds_sum %.6f\n"
                  "modeld_predict_log_flush_seconds_count %llu\n",
                  (unsigned long long)cum, st.flush_seconds_sum, (unsigned long long)st.batches);
}
