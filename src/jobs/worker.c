/* worker.c - the threads of a job queue: N workers that claim and run jobs, and one keeper
 * that renews the leases of this process's runs, writes their throttled progress, notices
 * cancels made by other processes, takes back jobs of dead workers, polls the store for
 * the subscribers and fires due schedules every schedule_ms (sched.c); and, when callbacks are
 * allowed, one thread that makes their tries (callback.c).
 *
 * Invariants:
 *   1. A run is on jobs.runs (so the keeper renews its lease) from before its callback starts
 *      until after it returned; the transition that ends it is made after it left the list, so
 *      the keeper never renews a lease that its own worker just gave up.
 *   2. The worker alone decides how a run ends (worker.c finish_run): lease lost -> nothing
 *      (another worker owns the job); shutting down -> released to QUEUED, attempt refunded;
 *      owner cancelled -> CANCELLED; MD_OK -> SUCCESS; transient error -> QUEUED while attempts
 *      remain; any other error -> FAILURE.
 *   3. Progress reaches the store at most once per progress_ms per run (the keeper's renewal
 *      carries it) and subscribers in this process at most once per progress_ms, plus every
 *      change of stage.
 */
#include "jobs/jobs_int.h"

#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct worker_arg {
    jobs *j;
    int index;
} worker_arg;

static uint64_t ms_to_ns(int64_t ms)
{
    return (uint64_t)ms * 1000000ULL;
}

static void timed_wait(jobs *j, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (ms % 1000) * 1000000LL;
    ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_cond_timedwait(&j->wake, &j->mu, &ts);
}

/* ---- job_run accessors -------------------------------------------------------------------- */

const job_info *job_run_info(const job_run *r)
{
    return &r->info;
}
const char *job_run_input_path(const job_run *r)
{
    return r->input_path;
}
md_cancel *job_run_cancel(job_run *r)
{
    return &r->cancel;
}
md_err *job_run_err(job_run *r)
{
    return &r->err;
}

int job_run_read_input(job_run *r, size_t max, uint8_t **data, size_t *n, md_err *err)
{
    *data = NULL;
    *n = 0;
    if (!r->info.input_sha256[0])
        return md_fail(err, MD_E_FILE_NOT_FOUND, "file", "the job has no input");
    return store_blob_read(r->j->s, r->info.input_sha256, max, data, n, err);
}

int job_run_set_result(job_run *r, const void *data, size_t n, const char *meta_json, md_err *err)
{
    const char *meta = meta_json ? meta_json : "{}";
    if (strlen(meta) >= STORE_JOB_META_MAX)
        return md_fail(err, MD_E_TOO_LARGE, "result_meta", "result metadata too long");
    char hex[STORE_SHA256_HEX];
    int rc = store_blob_put(r->j->s, data, n, hex, err);
    if (rc != MD_OK)
        return rc;
    char *copy = strdup(meta);
    if (!copy)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    free(r->result_meta);
    r->result_meta = copy;
    memcpy(r->result_hex, hex, sizeof hex);
    r->result_bytes = (int64_t)n;
    return MD_OK;
}

int job_run_result_tmp(job_run *r, char **path, md_err *err)
{
    return store_blob_tmp(r->j->s, path, err);
}

int job_run_set_result_file(job_run *r, const char *path, const char *meta_json, md_err *err)
{
    const char *meta = meta_json ? meta_json : "{}";
    char *copy = strlen(meta) < STORE_JOB_META_MAX ? strdup(meta) : NULL;
    if (!copy) {
        unlink(path); /* stolen whatever the outcome */
        return strlen(meta) >= STORE_JOB_META_MAX
                   ? md_fail(err, MD_E_TOO_LARGE, "result_meta", "result metadata too long")
                   : md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    char hex[STORE_SHA256_HEX];
    uint64_t n = 0;
    int rc = store_blob_adopt(r->j->s, path, hex, &n, err);
    if (rc != MD_OK) {
        free(copy);
        return rc;
    }
    free(r->result_meta);
    r->result_meta = copy;
    memcpy(r->result_hex, hex, sizeof hex);
    r->result_bytes = (int64_t)n;
    return MD_OK;
}

/* ---- progress ----------------------------------------------------------------------------- */

/* The cancel token's progress sink: runs on the worker thread inside the job's callback. */
static void on_progress(void *ctx, double fraction, const char *stage)
{
    job_run *r = ctx;
    jobs *j = r->j;
    if (fraction < 0)
        fraction = 0;
    if (fraction > 1)
        fraction = 1;
    uint64_t now = md_clock_now_ns(j->clock);
    pthread_mutex_lock(&r->mu);
    bool stage_changed = stage && strncmp(stage, r->stage, sizeof r->stage - 1) != 0;
    if (fraction > r->progress)
        r->progress = fraction;
    if (stage)
        snprintf(r->stage, sizeof r->stage, "%s", stage);
    r->dirty = true;
    bool publish = stage_changed || now - r->last_event_ns >= ms_to_ns(j->o.progress_ms);
    job_info *snap = NULL;
    if (publish) {
        r->last_event_ns = now;
        snap = malloc(sizeof *snap);
        if (snap) {
            *snap = r->info;
            snap->progress = r->progress;
            snprintf(snap->stage, sizeof snap->stage, "%s", r->stage);
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (snap)
        jobs__publish(j, snap);
    free(snap);
}

/* Renew one run's lease with its progress (keeper thread). */
static void renew_run(jobs *j, job_run *r, uint64_t now, bool due)
{
    pthread_mutex_lock(&r->mu);
    bool write = due || (r->dirty && now - r->last_store_ns >= ms_to_ns(j->o.progress_ms));
    double progress = r->progress;
    char stage[STORE_JOB_STAGE_MAX];
    snprintf(stage, sizeof stage, "%s", r->stage);
    if (write) {
        r->dirty = false;
        r->last_store_ns = now;
    }
    pthread_mutex_unlock(&r->mu);
    if (!write)
        return;
    int cancel = 0;
    md_err e;
    int rc = store_jobs_renew(j->s, r->info.id, r->worker, j->o.lease_ms, progress,
                              stage[0] ? stage : NULL, &cancel, &e);
    if (rc == MD_E_CONFLICT) {
        md_log(MD_LOG_WARN, "jobs: lost the lease on %s; stopping its run", r->info.id);
        atomic_store(&r->lease_lost, true);
        md_cancel_request(&r->cancel);
    } else if (rc == MD_OK && cancel) {
        atomic_store(&r->user_cancel, true);
        md_cancel_request(&r->cancel);
    } else if (rc != MD_OK) {
        md_log(MD_LOG_WARN, "jobs: renewing the lease on %s failed: %s", r->info.id,
               md_err_message(&e));
    }
}

/* ---- the worker --------------------------------------------------------------------------- */

static job_run *new_run(jobs *j, const job_info *info, jobs__kind *k, const char *worker)
{
    job_run *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->j = j;
    r->info = *info;
    r->kind = k;
    snprintf(r->worker, sizeof r->worker, "%s", worker);
    if (info->input_sha256[0])
        store_blob_path(j->s, info->input_sha256, r->input_path, sizeof r->input_path, NULL);
    md_cancel_init(&r->cancel, 0);
    r->cancel.progress = on_progress;
    r->cancel.progress_ctx = r;
    md_err_clear(&r->err);
    pthread_mutex_init(&r->mu, NULL);
    r->last_store_ns = md_clock_now_ns(j->clock);
    return r;
}

static void free_run(job_run *r)
{
    pthread_mutex_destroy(&r->mu);
    free(r->result_meta);
    free(r);
}

/* The kind's running slot was taken by jobs__claim; list_remove gives it back. */
static void list_add(jobs *j, job_run *r)
{
    r->next = j->runs;
    j->runs = r;
    j->running++;
}

static void list_remove(jobs *j, job_run *r)
{
    for (job_run **p = &j->runs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    j->running--;
    r->kind->running--;
}

static int transient(int code)
{
    return code == MD_E_IO || code == MD_E_NOMEM || code == MD_E_OVERLOADED ||
           code == MD_E_UNAVAILABLE || code == MD_E_MODEL_UNAVAILABLE;
}

/* How a run ends (invariant 2). */
static void finish_run(jobs *j, job_run *r, int rc, bool stopping)
{
    md_err e;
    md_err_clear(&e);
    int frc = MD_OK;
    if (atomic_load(&r->lease_lost))
        return;
    if (rc != MD_OK && atomic_load(&r->user_cancel))
        frc = jobs__cancelled(j, r, &e);
    else if (rc != MD_OK && stopping)
        frc = jobs__release(j, r, &e);
    else if (rc == MD_OK)
        frc = jobs__succeed(j, r, &e);
    else if (transient(rc) && r->info.attempts < r->info.max_attempts)
        frc = jobs__retry(j, r, md_err_message(&r->err), &e);
    else
        frc = jobs__fail(j, r, rc, md_err_message(&r->err), &e);
    if (frc != MD_OK)
        md_log(MD_LOG_WARN, "jobs: ending %s: %s", r->info.id, md_err_message(&e));
}

/* The job's spans (trace.h), children of the submitting request: "job queue wait" from the
 * submission to this claim, then "job run" (its child) around the kind's work. A row without a
 * (valid) traceparent runs untraced. */
static void run_trace_begin(job_run *r)
{
    tr_ctx parent;
    if (!tr_parse(r->info.traceparent, strlen(r->info.traceparent), &parent))
        return;
    r->tctx = parent;
    r->has_tctx = true;
    tr_span *wait = tr_span_start_at("job queue wait", TR_KIND_INTERNAL, &parent,
                                     r->info.created_ms * 1000000LL);
    tr_span_attr_str(wait, "modeld.job.id", r->info.id);
    tr_span_attr_int(wait, "modeld.job.attempt", r->info.attempts);
    r->span = tr_span_start("job run", TR_KIND_INTERNAL, wait ? tr_span_ctx(wait) : &parent);
    tr_span_end(wait);
    tr_span_attr_str(r->span, "modeld.job.id", r->info.id);
    tr_span_attr_str(r->span, "modeld.job.kind", r->info.kind);
    if (r->span != NULL)
        r->tctx = *tr_span_ctx(r->span);
}

const tr_ctx *job_run_trace(const job_run *r) { return r->has_tctx ? &r->tctx : NULL; }

static void run_one(jobs *j, const job_info *info, jobs__kind *k, const char *worker)
{
    job_run *r = new_run(j, info, k, worker);
    if (!r) {
        md_log(MD_LOG_ERROR, "jobs: out of memory for %s; its lease will expire", info->id);
        pthread_mutex_lock(&j->mu);
        k->running--; /* the slot jobs__claim took */
        pthread_mutex_unlock(&j->mu);
        return;
    }
    pthread_mutex_lock(&j->mu);
    list_add(j, r);
    bool stopping = j->stopping;
    pthread_mutex_unlock(&j->mu);
    if (stopping)
        md_cancel_request(&r->cancel);
    jobs__publish(j, &r->info);
    run_trace_begin(r);
    md_log(MD_LOG_INFO, "jobs: %s %s started (attempt %d of %d)", r->info.kind, r->info.id,
           r->info.attempts, r->info.max_attempts);
    uint64_t t0 = md_now_ns();
    int rc = r->kind->run(r, r->kind->user);
    jobs__observe_run(r->kind, md_now_ns() - t0);
    if (rc != MD_OK && r->err.code == MD_OK)
        md_fail(&r->err, rc, NULL, "%s", md_err_default_msg(rc));
    pthread_mutex_lock(&j->mu);
    list_remove(j, r);
    stopping = j->stopping;
    pthread_mutex_unlock(&j->mu);
    finish_run(j, r, rc, stopping);
    tr_span_status(r->span, rc);
    tr_span_end(r->span);
    r->span = NULL;
    md_log(MD_LOG_INFO, "jobs: %s %s ended: %s", r->info.kind, r->info.id,
           rc == MD_OK ? "ok" : md_err_message(&r->err));
    free_run(r);
}

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    jobs *j = wa->j;
    char worker[STORE_JOB_WORKER_MAX];
    snprintf(worker, sizeof worker, "%s:w%d", j->worker_prefix, wa->index);
    free(wa);
    for (;;) {
        pthread_mutex_lock(&j->mu);
        bool stop = j->stopping;
        pthread_mutex_unlock(&j->mu);
        if (stop)
            break;
        job_info *info = malloc(sizeof *info);
        jobs__kind *k = NULL;
        md_err e;
        int rc = info ? jobs__claim(j, worker, info, &k, &e) : MD_E_NOMEM;
        if (rc == MD_OK) {
            run_one(j, info, k, worker);
        } else {
            if (rc != MD_E_NOT_FOUND)
                md_log(MD_LOG_WARN, "jobs: claim failed: %s", md_err_message(&e));
            pthread_mutex_lock(&j->mu);
            if (!j->stopping)
                timed_wait(j, j->o.poll_ms);
            pthread_mutex_unlock(&j->mu);
        }
        free(info);
    }
    return NULL;
}

/* ---- the keeper --------------------------------------------------------------------------- */

static void renew_all(jobs *j, bool due)
{
    uint64_t now = md_clock_now_ns(j->clock);
    pthread_mutex_lock(&j->mu);
    /* Renewing under j->mu keeps every run alive while we use it (invariant 1); the store
     * call is short and workers only take j->mu briefly. */
    for (job_run *r = j->runs; r; r = r->next)
        renew_run(j, r, now, due);
    pthread_mutex_unlock(&j->mu);
}

/* Fire due schedules (sched.c); every process's keeper does, the store's compare-and-set
 * keeps each fire to one job. */
static void run_schedules(jobs *j)
{
    md_err e;
    if (job_schedule_tick(j, NULL, &e) != MD_OK)
        md_log(MD_LOG_WARN, "jobs: schedule tick failed: %s", md_err_message(&e));
}

static void *keeper_main(void *arg)
{
    jobs *j = arg;
    int64_t tick = j->o.poll_ms < j->o.lease_ms / 4 ? j->o.poll_ms : j->o.lease_ms / 4;
    uint64_t last_renew = md_clock_now_ns(j->clock), last_expire = last_renew;
    uint64_t last_sched = last_renew;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        if (!j->stopping)
            timed_wait(j, tick > 0 ? tick : 1);
        bool stop = j->stopping;
        pthread_mutex_unlock(&j->mu);
        if (stop)
            break;
        uint64_t now = md_clock_now_ns(j->clock);
        bool due = now - last_renew >= ms_to_ns(j->o.lease_ms / 4);
        if (due)
            last_renew = now;
        renew_all(j, due);
        if (now - last_expire >= ms_to_ns(j->o.lease_ms / 2)) {
            last_expire = now;
            md_err e;
            if (job_expire_leases(j, NULL, NULL, &e) != MD_OK)
                md_log(MD_LOG_WARN, "jobs: lease expiry failed: %s", md_err_message(&e));
        }
        if (j->o.schedule_ms > 0 && now - last_sched >= ms_to_ns(j->o.schedule_ms)) {
            last_sched = now;
            run_schedules(j);
        }
        jobs__poll_subs(j);
    }
    return NULL;
}

/* The callback thread (callback.c): POSTs can take callback_timeout_ms each, so they run
 * here and not on the keeper, whose lease renewals must not wait. */
static void *callback_main(void *arg)
{
    jobs *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        if (!j->stopping)
            timed_wait(j, j->o.callback_poll_ms);
        bool stop = j->stopping;
        pthread_mutex_unlock(&j->mu);
        if (stop)
            break;
        md_err e;
        if (job_callback_tick(j, NULL, &e) != MD_OK)
            md_log(MD_LOG_WARN, "jobs: callback tick failed: %s", md_err_message(&e));
    }
    return NULL;
}

static void start_callback_thread(jobs *j)
{
    if (!j->cb_allow[0] || j->o.callback_poll_ms < 0)
        return; /* no callback can have been accepted by this configuration */
    if (pthread_create(&j->cb_thread, NULL, callback_main, j) != 0)
        md_log(MD_LOG_ERROR, "jobs: cannot start the callback thread");
    else
        j->cb_started = true;
}

int jobs__start_threads(jobs *j, md_err *err)
{
    if (j->o.workers > 0) {
        j->threads = calloc((size_t)j->o.workers, sizeof *j->threads);
        if (!j->threads)
            return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    /* nthreads is read by jobs__claim for the default max_running: set it before any worker
     * runs. Threads that fail to start are not counted. */
    pthread_mutex_lock(&j->mu);
    for (int i = 0; i < j->o.workers; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa)
            break;
        wa->j = j;
        wa->index = i;
        if (pthread_create(&j->threads[j->nthreads], NULL, worker_main, wa) != 0) {
            free(wa);
            break;
        }
        j->nthreads++;
    }
    pthread_mutex_unlock(&j->mu);
    if (pthread_create(&j->keeper, NULL, keeper_main, j) != 0)
        return md_fail(err, MD_E_NOMEM, NULL, "cannot start the job keeper thread");
    j->keeper_started = true;
    start_callback_thread(j);
    if (j->nthreads < j->o.workers)
        md_log(MD_LOG_WARN, "jobs: started %d of %d worker threads", j->nthreads, j->o.workers);
    return MD_OK;
}

void jobs__stop_threads(jobs *j)
{
    pthread_mutex_lock(&j->mu);
    j->stopping = true;
    for (job_run *r = j->runs; r; r = r->next)
        md_cancel_request(&r->cancel);
    pthread_cond_broadcast(&j->wake);
    pthread_mutex_unlock(&j->mu);
    for (int i = 0; i < j->nthreads; i++)
        pthread_join(j->threads[i], NULL);
    if (j->keeper_started)
        pthread_join(j->keeper, NULL);
    if (j->cb_started)
        pthread_join(j->cb_thread, NULL);
    j->cb_started = false;
    free(j->threads);
    j->threads = NULL;
}
