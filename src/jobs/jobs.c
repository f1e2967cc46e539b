/* jobs.c - the durable job queue: the state machine, submission, queries and cancellation.
 * The worker and keeper threads are in worker.c, subscriptions in sub.c; the rows and their
 * compare-and-set statements in src/store/jobs.c.
 *
 * The job state machine. Each transition names the function that makes it; each of them is
 * one compare-and-set in the store, so it holds across processes (store/jobs.c invariant 1):
 *
 *                 job_submit / job_submit_batch
 *                              |
 *                              v
 *     +------------------->  QUEUED  --------------------- job_cancel ----------+
 *     |                        |                                                 |
 *     | jobs__retry            | jobs__claim (lease to a worker, attempts + 1)   |
 *     | jobs__release          v                                                 v
 *     | job_expire_leases  PROCESSING --- jobs__cancelled (owner cancelled) ---> CANCELLED
 *     +--(attempts left)-----  |   \
 *                              |    \--- jobs__fail, job_expire_leases (no attempts left)
 *                jobs__succeed |                    \
 *                              v                     v
 *                           SUCCESS               FAILURE
 *
 * SUCCESS, FAILURE and CANCELLED are terminal: nothing leaves them but the retention sweep
 * (store_sweep deletes the row result_ttl_ms after completion) or job_delete.
 *
 * Invariants:
 *   1. A job is accepted (MD_OK from job_submit) only once its input blob is fsync'd and its
 *      row committed; from then on some worker runs it to a terminal state, whatever process
 *      dies in between (leases, invariant 2).
 *   2. A PROCESSING row always has a lease owner and an expiry; the owner renews it every
 *      lease_ms / 4 while the run lasts. A lease that runs out (its process died or hung)
 *      sends the job back to QUEUED (FAILURE after max_attempts claims), and the old owner,
 *      should it wake up, can no longer finish it (store/jobs.c invariant 1).
 *   3. The result is a blob written to a temporary file and renamed into place before the
 *      row names it in the same statement that makes the job SUCCESS.
 *   4. job_assert_state() checks, in debug builds, that every transition starts from a state
 *      the diagram allows.
 */
#include "jobs/jobs_int.h"

#include "base/log.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define DEFAULT_LEASE_MS 30000
#define DEFAULT_POLL_MS 250
#define DEFAULT_PROGRESS_MS 500
#define DEFAULT_ATTEMPTS 3
#define DEFAULT_SCHEDULE_MS 1000
#define DEFAULT_CB_ATTEMPTS 8
#define DEFAULT_CB_BACKOFF_MS 1000
#define DEFAULT_CB_TIMEOUT_MS 10000
#define DEFAULT_CB_POLL_MS 500
#define DEFAULT_INPUT_TTL_MS (3600LL * 1000)
#define DEFAULT_RESULT_TTL_MS (24LL * 3600 * 1000)

#ifndef NDEBUG
/* The transitions of the diagram: allowed[from][to]. */
static const bool allowed[STORE_JOB__NSTATES][STORE_JOB__NSTATES] = {
    [JOB_QUEUED] = {[JOB_PROCESSING] = true, [JOB_CANCELLED] = true},
    [JOB_PROCESSING] =
        {[JOB_QUEUED] = true, [JOB_SUCCESS] = true, [JOB_FAILURE] = true, [JOB_CANCELLED] = true},
};

/* Debug-build check that a transition from `from` to `to` is one of the diagram's. */
static void job_assert_state(int from, int to)
{
    assert(from >= 0 && from < STORE_JOB__NSTATES && to >= 0 && to < STORE_JOB__NSTATES);
    assert(allowed[from][to]);
}
#else
#define job_assert_state(from, to) ((void)(from), (void)(to))
#endif

const char *job_state_name(int state)
{
    return store_job_state_name(state);
}

int job_state_terminal(int state)
{
    return state == JOB_SUCCESS || state == JOB_FAILURE || state == JOB_CANCELLED;
}

static void apply_defaults(job_opts *o)
{
    if (o->lease_ms <= 0)
        o->lease_ms = DEFAULT_LEASE_MS;
    if (o->poll_ms <= 0)
        o->poll_ms = DEFAULT_POLL_MS;
    if (o->progress_ms <= 0)
        o->progress_ms = DEFAULT_PROGRESS_MS;
    if (o->max_attempts <= 0)
        o->max_attempts = DEFAULT_ATTEMPTS;
    if (o->input_ttl_ms <= 0)
        o->input_ttl_ms = DEFAULT_INPUT_TTL_MS;
    if (o->result_ttl_ms <= 0)
        o->result_ttl_ms = DEFAULT_RESULT_TTL_MS;
    if (o->workers < 0)
        o->workers = 0;
    if (o->schedule_ms == 0)
        o->schedule_ms = DEFAULT_SCHEDULE_MS;
    if (o->callback_attempts <= 0)
        o->callback_attempts = DEFAULT_CB_ATTEMPTS;
    if (o->callback_backoff_ms <= 0)
        o->callback_backoff_ms = DEFAULT_CB_BACKOFF_MS;
    if (o->callback_timeout_ms <= 0)
        o->callback_timeout_ms = DEFAULT_CB_TIMEOUT_MS;
    if (o->callback_poll_ms == 0)
        o->callback_poll_ms = DEFAULT_CB_POLL_MS;
}

/* Copy the callback settings (borrowed strings in o) into j. */
static int copy_callback_opts(jobs *j, const job_opts *o, md_err *err)
{
    const char *allow = o->callback_allow_hosts ? o->callback_allow_hosts : "";
    const char *secret = o->callback_secret ? o->callback_secret : "";
    if (allow[0] && !secret[0])
        return md_fail(err, MD_E_INVALID_PARAM, "callback_secret",
                       "a secret is required to sign callbacks when callback hosts are allowed");
    j->cb_allow = strdup(allow);
    j->cb_secret = strdup(secret);
    j->o.callback_allow_hosts = NULL; /* borrowed: use the copies */
    j->o.callback_secret = NULL;
    if (!j->cb_allow || !j->cb_secret)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    return MD_OK;
}

/* "<host>:<pid>:<random>": the host and pid let another process of this host see that the
 * lease holder died (job_expire_leases); the random part tells apart a pid reused later. */
static void make_worker_prefix(jobs *j)
{
    if (gethostname(j->host, sizeof j->host) != 0 || !j->host[0])
        snprintf(j->host, sizeof j->host, "localhost");
    j->host[sizeof j->host - 1] = '\0';
    for (char *p = j->host; *p; p++)
        if (*p == ':' || *p == '*' || *p == '?' || *p == '[' || *p == ']')
            *p = '_';
    snprintf(j->worker_prefix, sizeof j->worker_prefix, "%s:%ld:%08lx", j->host, (long)getpid(),
             (unsigned long)((uint64_t)md_now_ns() ^ (uint64_t)(uintptr_t)j) & 0xffffffffUL);
}

int job_open(const job_opts *o, jobs **out, md_err *err)
{
    *out = NULL;
    if (!o || !o->store)
        return md_fail(err, MD_E_INTERNAL, NULL, "jobs: no store");
    jobs *j = calloc(1, sizeof *j);
    if (!j)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    j->o = *o;
    apply_defaults(&j->o);
    int rc = copy_callback_opts(j, o, err);
    if (rc != MD_OK) {
        free(j->cb_allow);
        free(j->cb_secret);
        free(j);
        return rc;
    }
    j->o.worker_name = NULL; /* borrowed string: copied into worker_prefix below */
    j->clock = o->clock ? o->clock : md_clock_system();
    make_worker_prefix(j);
    if (o->worker_name && o->worker_name[0])
        snprintf(j->worker_prefix, sizeof j->worker_prefix, "%s", o->worker_name);
    pthread_mutex_init(&j->mu, NULL);
    pthread_mutex_init(&j->subs_mu, NULL);
    pthread_cond_init(&j->wake, NULL);
    j->s = store_ref(o->store);
    *out = j;
    return MD_OK;
}

int jobs__valid_kind_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= STORE_JOB_KIND_MAX)
        return 0;
    return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

int job_register(jobs *j, const job_kind *k, md_err *err)
{
    if (!k || !jobs__valid_kind_name(k->name) || !k->run)
        return md_fail(err, MD_E_INVALID_PARAM, "kind", "a job kind needs a name and a run");
    pthread_mutex_lock(&j->mu);
    int rc = MD_OK;
    for (int i = 0; i < j->nkinds; i++)
        if (strcmp(j->kinds[i].name, k->name) == 0)
            rc = md_fail(err, MD_E_CONFLICT, "kind", "kind %s is already registered", k->name);
    if (rc == MD_OK && (j->started || j->nkinds == JOBS__MAX_KINDS))
        rc = md_fail(err, MD_E_INTERNAL, "kind", "kinds are registered before job_start");
    if (rc == MD_OK) {
        jobs__kind *d = &j->kinds[j->nkinds++];
        snprintf(d->name, sizeof d->name, "%s", k->name);
        d->run = k->run;
        d->user = k->user;
        d->max_running = k->max_running;
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int job_start(jobs *j, md_err *err)
{
    pthread_mutex_lock(&j->mu);
    bool again = j->started;
    j->started = true;
    pthread_mutex_unlock(&j->mu);
    if (again)
        return md_fail(err, MD_E_INTERNAL, NULL, "jobs: already started");
    size_t requeued = 0, failed = 0;
    int rc = job_expire_leases(j, &requeued, &failed, err);
    if (rc == MD_OK && (requeued || failed))
        md_log(MD_LOG_INFO, "jobs: recovered %zu jobs of stopped workers (%zu failed)", requeued,
               failed);
    if (rc == MD_OK)
        rc = jobs__start_threads(j, err);
    return rc;
}

void job_close(jobs *j)
{
    if (!j)
        return;
    jobs__stop_threads(j);
    jobs__drop_subs(j);
    store_unref(j->s);
    pthread_cond_destroy(&j->wake);
    pthread_mutex_destroy(&j->subs_mu);
    pthread_mutex_destroy(&j->mu);
    free(j->cb_allow);
    free(j->cb_secret);
    free(j);
}

int job_workers(const jobs *j)
{
    return j->nthreads;
}

int job_running_here(jobs *j)
{
    pthread_mutex_lock(&j->mu);
    int n = j->running;
    pthread_mutex_unlock(&j->mu);
    return n;
}

/* ---- submission ------------------------------------------------------------------------- */

static int drop_input(const job_submit_in *in, int rc);

static int fill_row(jobs *j, const job_submit_in *in, store_job *row, md_err *err)
{
    memset(row, 0, sizeof *row);
    if (!in->kind || !jobs__valid_kind_name(in->kind))
        return drop_input(in, md_fail(err, MD_E_INVALID_PARAM, "kind", "bad job kind"));
    const char *params = in->params_json ? in->params_json : "{}";
    if (strlen(params) >= sizeof row->params)
        return drop_input(in, md_fail(err, MD_E_TOO_LARGE, "params", "job parameters exceed %d bytes",
                                      STORE_JOB_PARAMS_MAX - 1));
    if (in->owner && strlen(in->owner) >= sizeof row->owner)
        return drop_input(in, md_fail(err, MD_E_INVALID_PARAM, "owner", "owner id too long"));
    snprintf(row->kind, sizeof row->kind, "%s", in->kind);
    snprintf(row->owner, sizeof row->owner, "%s", in->owner ? in->owner : "");
    snprintf(row->params, sizeof row->params, "%s", params);
    snprintf(row->input_name, sizeof row->input_name, "%s", in->input_name ? in->input_name : "");
    if (in->trace != NULL)
        tr_format(in->trace, row->traceparent);
    row->max_attempts = j->o.max_attempts;
    row->input_ttl_ms = j->o.input_ttl_ms;
    row->result_ttl_ms = j->o.result_ttl_ms;
    row->input_bytes = (int64_t)in->input_len;
    if (in->input_file) {
        uint64_t n = 0;
        int rc = store_blob_adopt(j->s, in->input_file, row->input_sha256, &n, err);
        row->input_bytes = (int64_t)n;
        return rc;
    }
    if (in->input_len == 0)
        return MD_OK;
    if (in->input_range)
        return store_blob_put_range(j->s, in->input_range->fd, in->input_range->offset, in->input_len,
                                    row->input_sha256, err);
    if (!in->input)
        return MD_OK;
    return store_blob_put(j->s, in->input, in->input_len, row->input_sha256, err);
}

/* An input_file the submission refuses before fill_row adopts it is removed all the same
 * (job_submit_in: the file is stolen whatever the outcome). */
static int drop_input(const job_submit_in *in, int rc)
{
    if (in->input_file)
        unlink(in->input_file);
    return rc;
}

static void wake_workers(jobs *j)
{
    pthread_mutex_lock(&j->mu);
    pthread_cond_broadcast(&j->wake);
    pthread_mutex_unlock(&j->mu);
}

/* Record the callback of the job just inserted; when that fails the job is cancelled, so that
 * no job runs without the callback its submitter asked for. */
static int add_callback(jobs *j, const store_job *row, const char *url, md_err *err)
{
    int rc = store_callback_add(j->s, row->id, url, err);
    if (rc != MD_OK && job_cancel(j, row->id, NULL, NULL) != MD_OK)
        md_log(MD_LOG_ERROR, "jobs: %s runs without its callback", row->id);
    return rc;
}

int job_submit(jobs *j, const job_submit_in *in, job_info *out, md_err *err)
{
    const char *url = in->callback_url && in->callback_url[0] ? in->callback_url : NULL;
    if (url) {
        int urc = job_callback_check_url(j->cb_allow, url, err);
        if (urc != MD_OK)
            return drop_input(in, urc);
    }
    store_job *row = malloc(sizeof *row);
    if (!row)
        return drop_input(in, md_fail(err, MD_E_NOMEM, NULL, NULL));
    int rc = fill_row(j, in, row, err);
    if (rc == MD_OK)
        rc = store_jobs_insert(j->s, row, 1, NULL, j->o.max_queued, err);
    if (rc == MD_OK && url)
        rc = add_callback(j, row, url, err);
    if (rc == MD_OK && out)
        *out = *row;
    free(row);
    if (rc == MD_OK)
        wake_workers(j);
    return rc;
}

int job_submit_batch(jobs *j, const job_submit_in *in, size_t n, job_batch *batch,
                     char (*ids)[JOB_ID_MAX], md_err *err)
{
    if (n == 0)
        return md_fail(err, MD_E_MISSING_FIELD, "files", "a batch needs at least one job");
    store_job *rows = calloc(n, sizeof *rows);
    if (!rows)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = MD_OK;
    for (size_t i = 0; i < n && rc == MD_OK; i++) {
        if (in[i].callback_url && in[i].callback_url[0])
            rc = md_fail(err, MD_E_INVALID_PARAM, "callback_url", "not supported for batches");
        else if (in[i].input_file)
            rc = md_fail(err, MD_E_INVALID_PARAM, "input_file", "not supported for batches");
        else
            rc = fill_row(j, &in[i], &rows[i], err);
    }
    memset(batch, 0, sizeof *batch);
    snprintf(batch->owner, sizeof batch->owner, "%s", rows[0].owner);
    snprintf(batch->kind, sizeof batch->kind, "%s", rows[0].kind);
    if (rc == MD_OK)
        rc = store_jobs_insert(j->s, rows, n, batch, j->o.max_queued, err);
    for (size_t i = 0; i < n && rc == MD_OK && ids; i++)
        memcpy(ids[i], rows[i].id, JOB_ID_MAX);
    free(rows);
    if (rc == MD_OK)
        wake_workers(j);
    return rc;
}

/* ---- queries ---------------------------------------------------------------------------- */

int job_get(jobs *j, const char *id, job_info *out, md_err *err)
{
    return store_jobs_get(j->s, id, out, err);
}

int job_batch_get(jobs *j, const char *id, job_batch *out, job_info **list, size_t *n, md_err *err)
{
    *list = NULL;
    *n = 0;
    int rc = store_batches_get(j->s, id, out, err);
    if (rc == MD_OK)
        rc = store_jobs_list_batch(j->s, id, list, n, err);
    return rc;
}

int job_list(jobs *j, const job_filter *f, job_info **list, size_t *n, int64_t *next_cursor,
             md_err *err)
{
    return store_jobs_list(j->s, f, list, n, next_cursor, err);
}

int job_result_path(jobs *j, const job_info *info, char *out, size_t cap, md_err *err)
{
    if (info->state != JOB_SUCCESS || !info->result_sha256[0])
        return md_fail(err, MD_E_CONFLICT, "job_id", "the job has no result (status %s)",
                       job_state_name(info->state));
    return store_blob_path(j->s, info->result_sha256, out, cap, err);
}

int job_counts_get(jobs *j, const char *kind, job_counts *out, md_err *err)
{
    memset(out, 0, sizeof *out);
    out->workers = j->nthreads;
    out->running_here = job_running_here(j);
    return store_jobs_count(j->s, kind, out->by_state, err);
}

static const double run_buckets[JOBS__NBUCKETS] = {0.1, 0.5, 1,   2.5, 5,   10,
                                                   30,  60,  120, 300, 600, 1800};

void jobs__observe_run(jobs__kind *k, uint64_t ns)
{
    double s = (double)ns / 1e9;
    int b = 0;
    while (b < JOBS__NBUCKETS && s > run_buckets[b])
        b++;
    atomic_fetch_add(&k->st.hist[b], 1);
    atomic_fetch_add(&k->st.sum_us, ns / 1000);
}

/* One line "name{kind="k"<extra>} v" per registered kind: counter `which`. */
static void per_kind(md_buf *out, jobs *j, int n, const char *name, const char *extra, int which)
{
    for (int i = 0; i < n; i++)
        md_buf_printf(out, "%s{kind=\"%s\"%s} %llu\n", name, j->kinds[i].name, extra,
                      (unsigned long long)atomic_load(&j->kinds[i].st.n[which]));
}

static void run_histogram(md_buf *out, jobs *j, int n)
{
    md_buf_puts(out, "# HELP modeld_job_run_duration_seconds Run time of the jobs this process ran "
                     "(the kind's work, any outcome), by kind.\n"
                     "# TYPE modeld_job_run_duration_seconds histogram\n");
    for (int i = 0; i < n; i++) {
        const jobs__kind *k = &j->kinds[i];
        uint64_t cum = 0;
        for (int b = 0; b <= JOBS__NBUCKETS; b++) {
            char le[32] = "+Inf";
            if (b < JOBS__NBUCKETS)
                snprintf(le, sizeof le, "%g", run_buckets[b]);
            cum += atomic_load(&k->st.hist[b]);
            md_buf_printf(out, "modeld_job_run_duration_seconds_bucket{kind=\"%s\",le=\"%s\"} %llu\n",
                          k->name, le, (unsigned long long)cum);
        }
        md_buf_printf(out, "modeld_job_run_duration_seconds_sum{kind=\"%s\"} %.6f\n"
                           "modeld_job_run_duration_seconds_count{kind=\"%s\"} %llu\n",
                      k->name, (double)atomic_load(&k->st.sum_us) / 1e6, k->name,
                      (unsigned long long)cum);
    }
}

/* The queue's gauges (the store's rows, every process) and this process's counters by kind:
 * a `modeld worker` exports the same families as a serve node (its --metrics-port listener). */
void job_metrics(md_buf *out, void *ctx)
{
    jobs *j = ctx;
    job_counts c;
    md_err e = {0};
    if (job_counts_get(j, NULL, &c, &e) == MD_OK) {
        md_buf_puts(out, "# HELP modeld_jobs Jobs in the store by state (all processes).\n"
                         "# TYPE modeld_jobs gauge\n");
        for (int s = 0; s < STORE_JOB__NSTATES; s++)
            md_buf_printf(out, "modeld_jobs{state=\"%s\"} %lld\n", job_state_name(s),
                          (long long)c.by_state[s]);
    }
    pthread_mutex_lock(&j->mu);
    int n = j->nkinds; /* kinds are only added before the workers start; never removed */
    pthread_mutex_unlock(&j->mu);
    md_buf_puts(out, "# HELP modeld_jobs_claimed_total Jobs this process claimed from the queue "
                     "(every attempt), by kind.\n# TYPE modeld_jobs_claimed_total counter\n");
    per_kind(out, j, n, "modeld_jobs_claimed_total", "", JOBS__CLAIMED);
    md_buf_puts(out, "# HELP modeld_jobs_finished_total Jobs this process ran to SUCCESS or "
                     "FAILURE, by kind.\n# TYPE modeld_jobs_finished_total counter\n");
    per_kind(out, j, n, "modeld_jobs_finished_total", ",outcome=\"success\"", JOBS__SUCCEEDED);
    per_kind(out, j, n, "modeld_jobs_finished_total", ",outcome=\"failure\"", JOBS__FAILED);
    md_buf_puts(out, "# HELP modeld_jobs_retried_total Runs of this process that ended in a "
                     "transient error and sent their job back to the queue, by kind.\n"
                     "# TYPE modeld_jobs_retried_total counter\n");
    per_kind(out, j, n, "modeld_jobs_retried_total", "", JOBS__RETRIED);
    run_histogram(out, j, n);
    md_buf_printf(out,
                  "# HELP modeld_job_lease_expiries_total Leases this process found run out: the "
                  "job requeued, or failed with no attempts left.\n"
                  "# TYPE modeld_job_lease_expiries_total counter\n"
                  "modeld_job_lease_expiries_total{result=\"requeued\"} %llu\n"
                  "modeld_job_lease_expiries_total{result=\"failed\"} %llu\n",
                  (unsigned long long)atomic_load(&j->n_lease_requeued),
                  (unsigned long long)atomic_load(&j->n_lease_failed));
}

/* ---- cancellation ----------------------------------------------------------------------- */

/* A run of this process for id: ask it to stop now rather than at the keeper's next renewal. */
static void cancel_local(jobs *j, const char *id)
{
    pthread_mutex_lock(&j->mu);
    for (job_run *r = j->runs; r; r = r->next)
        if (strcmp(r->info.id, id) == 0) {
            atomic_store(&r->user_cancel, true);
            md_cancel_request(&r->cancel);
        }
    pthread_mutex_unlock(&j->mu);
}

int job_cancel(jobs *j, const char *id, int *state_out, md_err *err)
{
    job_info before;
    int rc = store_jobs_get(j->s, id, &before, err);
    int state = before.state;
    if (rc == MD_OK)
        rc = store_jobs_cancel(j->s, id, &state, err);
    if (rc != MD_OK)
        return rc;
    if (before.state == JOB_QUEUED && state == JOB_CANCELLED) {
        job_assert_state(JOB_QUEUED, JOB_CANCELLED);
        job_info now;
        if (store_jobs_get(j->s, id, &now, NULL) == MD_OK)
            jobs__publish(j, &now);
    }
    if (state == JOB_PROCESSING)
        cancel_local(j, id);
    if (state_out)
        *state_out = state;
    return MD_OK;
}

int job_delete(jobs *j, const char *id, md_err *err)
{
    return store_jobs_delete(j->s, id, err);
}

/* ---- leases ----------------------------------------------------------------------------- */

/* 1 when owner "<host>:<pid>:..." names a process of this host that no longer exists. */
static int owner_dead_here(const jobs *j, const char *owner, char *prefix, size_t cap)
{
    size_t hl = strlen(j->host);
    if (strncmp(owner, j->host, hl) != 0 || owner[hl] != ':')
        return 0;
    char *end = NULL;
    long pid = strtol(owner + hl + 1, &end, 10);
    if (pid <= 0 || !end || *end != ':' || pid == (long)getpid())
        return 0;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
        return 0;
    const char *rnd_end = strchr(end + 1, ':');
    size_t len = rnd_end ? (size_t)(rnd_end - owner) + 1 : strlen(owner);
    if (len >= cap)
        return 0;
    memcpy(prefix, owner, len);
    prefix[len] = '\0';
    return 1;
}

static int expire_dead_local(jobs *j, size_t *requeued, size_t *failed, md_err *err)
{
    char(*owners)[STORE_JOB_WORKER_MAX] = NULL;
    size_t n = 0;
    int rc = store_jobs_lease_owners(j->s, &owners, &n, err);
    for (size_t i = 0; i < n && rc == MD_OK; i++) {
        char prefix[STORE_JOB_WORKER_MAX];
        size_t rq = 0, fl = 0;
        if (!owner_dead_here(j, owners[i], prefix, sizeof prefix))
            continue;
        md_log(MD_LOG_INFO, "jobs: worker %s is gone; taking back its jobs", owners[i]);
        rc = store_jobs_expire(j->s, prefix, &rq, &fl, err);
        *requeued += rq;
        *failed += fl;
    }
    free(owners);
    return rc;
}

int job_expire_leases(jobs *j, size_t *requeued, size_t *failed, md_err *err)
{
    size_t rq = 0, fl = 0, rq2 = 0, fl2 = 0;
    int rc = store_jobs_expire(j->s, NULL, &rq, &fl, err);
    if (rc == MD_OK)
        rc = expire_dead_local(j, &rq2, &fl2, err);
    atomic_fetch_add(&j->n_lease_requeued, rq + rq2);
    atomic_fetch_add(&j->n_lease_failed, fl + fl2);
    if (requeued)
        *requeued = rq + rq2;
    if (failed)
        *failed = fl + fl2;
    if (rc == MD_OK && (rq + rq2 + fl + fl2) > 0)
        wake_workers(j);
    return rc;
}

/* ---- transitions made by workers (worker.c) ---------------------------------------------- */

/* Under j->mu, a slot of every kind with room is reserved before the store claim, and all but
 * the claimed kind's given back after it: two workers can never both take the last slot of a
 * kind (max_running holds) while claiming outside the lock. */
static size_t reserve_kinds(jobs *j, const char **names, jobs__kind **ks)
{
    size_t n = 0;
    for (int i = 0; i < j->nkinds; i++) {
        jobs__kind *k = &j->kinds[i];
        int cap = k->max_running > 0 ? k->max_running : j->nthreads;
        if (k->running < cap) {
            k->running++;
            names[n] = k->name;
            ks[n++] = k;
        }
    }
    return n;
}

int jobs__claim(jobs *j, const char *worker, job_info *out, jobs__kind **kind, md_err *err)
{
    const char *names[JOBS__MAX_KINDS];
    jobs__kind *ks[JOBS__MAX_KINDS];
    pthread_mutex_lock(&j->mu);
    size_t n = reserve_kinds(j, names, ks);
    pthread_mutex_unlock(&j->mu);
    if (n == 0)
        return md_fail(err, MD_E_NOT_FOUND, NULL, "no kind has room");
    int rc = store_jobs_claim(j->s, names, n, worker, j->o.lease_ms, out, err);
    *kind = NULL;
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; i < n; i++) {
        if (rc == MD_OK && !*kind && strcmp(ks[i]->name, out->kind) == 0)
            *kind = ks[i]; /* keeps its slot until the run leaves the list */
        else
            ks[i]->running--;
    }
    pthread_mutex_unlock(&j->mu);
    if (rc != MD_OK)
        return rc;
    job_assert_state(JOB_QUEUED, JOB_PROCESSING);
    assert(*kind);
    atomic_fetch_add(&(*kind)->st.n[JOBS__CLAIMED], 1);
    return MD_OK;
}

static void republish(jobs *j, const char *id)
{
    job_info now;
    if (store_jobs_get(j->s, id, &now, NULL) == MD_OK)
        jobs__publish(j, &now);
}

int jobs__succeed(jobs *j, job_run *r, md_err *err)
{
    job_assert_state(JOB_PROCESSING, JOB_SUCCESS);
    int rc = store_jobs_succeed(j->s, r->info.id, r->worker, r->result_hex, r->result_bytes,
                                r->result_meta, err);
    if (rc == MD_OK) {
        atomic_fetch_add(&r->kind->st.n[JOBS__SUCCEEDED], 1);
        republish(j, r->info.id);
    }
    return rc;
}

int jobs__fail(jobs *j, job_run *r, int code, const char *msg, md_err *err)
{
    job_assert_state(JOB_PROCESSING, JOB_FAILURE);
    int rc =
        store_jobs_finish(j->s, r->info.id, r->worker, JOB_FAILURE, md_err_name(code), msg, 0, err);
    if (rc == MD_OK) {
        atomic_fetch_add(&r->kind->st.n[JOBS__FAILED], 1);
        republish(j, r->info.id);
    }
    return rc;
}

int jobs__retry(jobs *j, job_run *r, const char *why, md_err *err)
{
    job_assert_state(JOB_PROCESSING, JOB_QUEUED);
    int rc = store_jobs_finish(j->s, r->info.id, r->worker, JOB_QUEUED, "", why, 0, err);
    if (rc == MD_OK) {
        atomic_fetch_add(&r->kind->st.n[JOBS__RETRIED], 1);
        republish(j, r->info.id);
        wake_workers(j);
    }
    return rc;
}

int jobs__release(jobs *j, job_run *r, md_err *err)
{
    job_assert_state(JOB_PROCESSING, JOB_QUEUED);
    return store_jobs_finish(j->s, r->info.id, r->worker, JOB_QUEUED, "", "", 1, err);
}

int jobs__cancelled(jobs *j, job_run *r, md_err *err)
{
    job_assert_state(JOB_PROCESSING, JOB_CANCELLED);
    int rc = store_jobs_finish(j->s, r->info.id, r->worker, JOB_CANCELLED, "cancelled",
                               "cancelled by its owner", 0, err);
    if (rc == MD_OK)
        republish(j, r->info.id);
    return rc;
}
