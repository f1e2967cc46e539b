/* jobs_int.h - internals shared by the files of src/jobs: the queue handle, the runs in flight
 * in this process and the subscription list. Nothing outside src/jobs includes it.
 *
 * Locks (never two at once, except subs_mu taken inside nothing else):
 *   mu      - kinds, the runs list, the stopping flag and the claim condition variable;
 *   run->mu - one run's progress fields (written by its worker, read by the keeper);
 *   subs_mu - the subscription list and every event delivery (so that job_unsubscribe,
 *             which takes it, waits for a callback in progress).
 */
#ifndef MD_JOBS_JOBS_INT_H
#define MD_JOBS_JOBS_INT_H

#include "jobs/jobs.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define JOBS__MAX_KINDS 16

/* Run-time histogram bounds of job_metrics (seconds); one more slot counts +Inf only. */
#define JOBS__NBUCKETS 12

/* What this process did with the jobs of one kind, for job_metrics (counters only grow). */
enum {
    JOBS__CLAIMED,   /* claims (every attempt) */
    JOBS__SUCCEEDED, /* runs that ended the job in SUCCESS */
    JOBS__FAILED,    /* ... in FAILURE (lease expiries are n_lease_failed) */
    JOBS__RETRIED,   /* transient errors that sent the job back to the queue */
    JOBS__NCOUNTS
};
typedef struct jobs__kind_stats {
    _Atomic uint64_t n[JOBS__NCOUNTS];
    _Atomic uint64_t hist[JOBS__NBUCKETS + 1]; /* run times, non-cumulative */
    _Atomic uint64_t sum_us;
} jobs__kind_stats;

typedef struct jobs__kind {
    char name[STORE_JOB_KIND_MAX];
    job_run_fn run;
    void *user;
    int max_running;
    int running; /* under jobs.mu */
    jobs__kind_stats st;
} jobs__kind;

struct job_run {
    jobs *j;
    job_info info; /* the row as claimed; progress fields under mu */
    jobs__kind *kind;
    char worker[STORE_JOB_WORKER_MAX];
    char input_path[4096];
    md_cancel cancel;
    md_err err;
    tr_ctx tctx;   /* see job_run_trace; valid when has_tctx */
    bool has_tctx;
    tr_span *span; /* "job run"; NULL when tracing is off or the job has no trace */
    pthread_mutex_t mu;
    double progress; /* latest reported, 0..1 */
    char stage[STORE_JOB_STAGE_MAX];
    bool dirty; /* progress not yet written to the store */
    uint64_t last_store_ns, last_event_ns;
    atomic_bool user_cancel; /* its owner cancelled it */
    atomic_bool lease_lost;  /* another worker owns it now */
    char result_hex[STORE_SHA256_HEX];
    int64_t result_bytes;
    char *result_meta;    /* new, or NULL */
    struct job_run *next; /* jobs.runs list, under jobs.mu */
};

struct job_sub {
    jobs *j;
    char id[STORE_JOB_ID_MAX];
    job_event_fn cb;
    void *user;
    int64_t seen_seq; /* last store seq looked at by the poller */
    int last_state;   /* last delivered: state, progress, stage */
    double last_progress;
    char last_stage[STORE_JOB_STAGE_MAX];
    bool done; /* a terminal state was delivered */
    struct job_sub *next;
};

struct jobs {
    store *s;
    const md_clock *clock;
    job_opts o;
    char worker_prefix[STORE_JOB_WORKER_MAX - 8];
    char host[64];
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a job was submitted here, or stopping */
    jobs__kind kinds[JOBS__MAX_KINDS];
    int nkinds;
    job_run *runs;
    int running;
    bool started, stopping;
    pthread_t *threads; /* o.workers of them */
    int nthreads;
    pthread_t keeper;
    bool keeper_started;
    pthread_mutex_t subs_mu;
    job_sub *subs;
    char *cb_allow;  /* o.callback_allow_hosts, copied ("" = none) */
    char *cb_secret; /* o.callback_secret, copied */
    pthread_t cb_thread;
    bool cb_started;
    /* Lease expiries this process found, for job_metrics (counters only grow); the
     * transitions of its own runs are counted per kind (jobs__kind.st). */
    _Atomic uint64_t n_lease_requeued, n_lease_failed;
};

/* Deliver info to the subscribers of info->id when it differs from what they last got
 * (sub.c). force: deliver a progress change even inside the throttle. */
void jobs__publish(jobs *j, const job_info *info);
/* Poll the store for changes of subscribed jobs and deliver them (keeper thread, sub.c). */
void jobs__poll_subs(jobs *j);
/* Drop every subscription (job_close). */
void jobs__drop_subs(jobs *j);

/* 1 when name is a valid kind name ([a-z0-9_-], 1 .. STORE_JOB_KIND_MAX - 1 bytes). */
int jobs__valid_kind_name(const char *name);

/* The worker and keeper threads (worker.c). */
int jobs__start_threads(jobs *j, md_err *err);
void jobs__stop_threads(jobs *j);

/* Transitions (jobs.c): each checks the state it starts from in debug builds and applies the
 * compare-and-set in the store. */
int jobs__claim(jobs *j, const char *worker, job_info *out, jobs__kind **kind, md_err *err);
int jobs__succeed(jobs *j, job_run *r, md_err *err);
int jobs__fail(jobs *j, job_run *r, int code, const char *msg, md_err *err);
int jobs__retry(jobs *j, job_run *r, const char *why, md_err *err);
int jobs__release(jobs *j, job_run *r, md_err *err);
int jobs__cancelled(jobs *j, job_run *r, md_err *err);

/* Count one run of k that took ns nanoseconds (its run callback) in k's histogram. */
void jobs__observe_run(jobs__kind *k, uint64_t ns);

#endif
