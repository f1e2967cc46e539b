/* jobs.h - durable jobs: a queue in the store, workers that claim jobs with leases, progress
 * events, cancellation and retention (issue 10 §1; issue 11's bulk jobs and schedules and
 * issue 12's PostgreSQL queue build on it).
 *
 * A job is a row in the store (store.h, "durable jobs"): kind, owner (API key id), parameters
 * (JSON), one input blob, state, progress, stage, attempts, lease, times, error and one result
 * blob with its metadata JSON. States, as the API shows them:
 *
 *     QUEUED -> PROCESSING -> SUCCESS | FAILURE | CANCELLED
 *     PROCESSING -> QUEUED   (lease expired or the worker shut down; at most max_attempts claims,
 *                             then FAILURE)
 *     QUEUED -> CANCELLED    (cancelled before a worker took it)
 *
 * The machine, with the function making each transition, is drawn in jobs.c.
 *
 * Kinds: the jobs library knows nothing of what a job does (it sits below src/pipelines). The
 * code that starts a server or a worker registers each kind with a run callback (for example
 * "enhance", whose callback calls pl_enhance). Any process with the kind registered and workers
 * started may run any job of that kind: `modeld serve` (in-process worker threads) and
 * `modeld worker --data-dir DIR` (separate processes on the same data dir) run the same code.
 *
 * Durability: a job is accepted once job_submit returned MD_OK: its input blob is fsync'd and its
 * row committed. A worker holds a lease (lease_ms) and renews it while running; when a process
 * dies (kill -9) its leases run out and the jobs are claimed again (a process on the same host
 * notices a dead local process at once by its pid and does not wait for the expiry). A result is
 * written to a temporary file and renamed into place (fsync'd), then named by the row in the
 * same statement that makes the job SUCCESS: no half-written result is ever visible.
 *
 * Events: job_subscribe() calls back on every change of state, progress or stage. Changes made
 * by a worker thread of THIS process are published at once (progress at most every
 * progress_ms). Changes made by another process (a `modeld worker`) reach this one only
 * through the store: the subscriber side polls the rows of subscribed jobs every poll_ms
 * (default 250 ms, so at least once a second), and progress written by the other process is
 * itself throttled to one store write per progress_ms.
 *
 * Threads: every function may be called from any thread. Callbacks (run, events) run on the
 * library's threads.
 *
 * Errors: MD_OK or an MD_E_* code with err filled (err may be NULL).
 */
#ifndef MD_JOBS_JOBS_H
#define MD_JOBS_JOBS_H

#include "base/cancel.h"
#include "base/clock.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/trace.h"
#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct jobs jobs;
typedef struct job_run job_run;
typedef struct job_sub job_sub;

/* A snapshot of one job row (value type, owns nothing). See store_job for the fields. */
typedef store_job job_info;
typedef store_batch job_batch;

typedef enum job_state {
    JOB_QUEUED = STORE_JOB_QUEUED,
    JOB_PROCESSING = STORE_JOB_PROCESSING,
    JOB_SUCCESS = STORE_JOB_SUCCESS,
    JOB_FAILURE = STORE_JOB_FAILURE,
    JOB_CANCELLED = STORE_JOB_CANCELLED,
} job_state;

#define JOB_ID_MAX STORE_JOB_ID_MAX

/* "QUEUED", "PROCESSING", "SUCCESS", "FAILURE", "CANCELLED". Static storage. */
const char *job_state_name(int state);
/* 1 for SUCCESS, FAILURE and CANCELLED. */
int job_state_terminal(int state);

/* ---- kinds ------------------------------------------------------------------------------ */

/* The work of one job. Runs on a worker thread; must check job_run_cancel(r) between its
 * stages (md_cancel_check) and report progress through it (md_cancel_progress). Returns MD_OK
 * after job_run_set_result, or an error code with the detail in job_run_err(r). Errors
 * MD_E_IO, MD_E_NOMEM, MD_E_OVERLOADED, MD_E_UNAVAILABLE and MD_E_MODEL_UNAVAILABLE are
 * transient: the job goes back to the queue while attempts remain; others end it in FAILURE
 * (MD_E_CANCELLED from a cancel requested by its owner ends it in CANCELLED). */
typedef int (*job_run_fn)(job_run *r, void *user);

typedef struct job_kind {
    const char *name; /* copied; [a-z0-9_-], at most STORE_JOB_KIND_MAX - 1 chars */
    job_run_fn run;
    void *user;      /* borrowed until job_close */
    int max_running; /* jobs of this kind running at once in this process; 0 = workers */
} job_kind;

/* The job being run (borrowed for the call; every field of the row is there). */
const job_info *job_run_info(const job_run *r);
/* Open the input blob for reading in blocks (store_blob_open: decrypted when the store
 * encrypts at rest). MD_E_FILE_NOT_FOUND (field "file") when the job has no input or it was
 * swept. *out is new (store_blob_reader_free). */
int job_run_input_open(job_run *r, store_blob_reader **out, md_err *err);
/* Read the whole input (at most max bytes: MD_E_TOO_LARGE beyond). *data is new (free()). */
int job_run_read_input(job_run *r, size_t max, uint8_t **data, size_t *n, md_err *err);
/* The cancel token of the run, with the progress sink installed: progress goes to the
 * subscribers and (throttled) to the store. Borrowed for the call. */
md_cancel *job_run_cancel(job_run *r);
/* The run's trace context: its "job run" span when tracing is on, else the submitter's context;
 * NULL when the job carries none. The parent of the spans a kind opens. Borrowed for the call. */
const tr_ctx *job_run_trace(const job_run *r);
/* Where the run puts the detail of its failure. Borrowed for the call. */
md_err *job_run_err(job_run *r);
/* Store the result (data: n bytes, written to a temporary file, fsync'd and renamed into place)
 * and its metadata (a JSON object of at most STORE_JOB_META_MAX - 1 bytes; NULL = "{}"). The
 * row names them when the run returns MD_OK. Calling it again replaces the previous result. */
int job_run_set_result(job_run *r, const void *data, size_t n, const char *meta_json, md_err *err);
/* A result too big for memory, written as it is made: job_run_result_writer opens a blob
 * writer (store_blob_writer: a file under blobs/tmp, encrypted as it is written when the store
 * encrypts at rest; *out new); job_run_set_result_writer commits it as the result like
 * job_run_set_result (fsync'd, renamed into the blob store) and steals w whatever the outcome.
 * A run may also open writers for scratch files (store_blob_writer_reopen). */
int job_run_result_writer(job_run *r, store_blob_writer **out, md_err *err);
int job_run_set_result_writer(job_run *r, store_blob_writer *w, const char *meta_json,
                              md_err *err);

/* ---- the queue -------------------------------------------------------------------------- */

typedef struct job_opts {
    store *store;            /* required; a reference is taken */
    const md_clock *clock;   /* NULL = system; used for polling intervals and for the
                              * scheduler's "now" (the rows' times come from the store's
                              * clock) */
    int workers;             /* worker threads job_start starts; 0 = none (submit only) */
    int64_t lease_ms;        /* 0 = 30 s; renewed every lease_ms / 4 */
    int64_t poll_ms;         /* idle claim and subscriber poll interval; 0 = 250 ms */
    int64_t progress_ms;     /* progress store writes and in-process events at most this
                              * often per job; 0 = 500 ms */
    int max_attempts;        /* claims of one job before FAILURE; 0 = 3 */
    int64_t input_ttl_ms;    /* inputs kept after creation (at least until terminal);
                              * 0 = 1 h */
    int64_t result_ttl_ms;   /* finished jobs and results kept after completion; 0 = 24 h */
    size_t max_queued;       /* QUEUED + PROCESSING jobs at most; 0 = no limit */
    const char *worker_name; /* lease owner prefix; NULL = "<host>:<pid>:<random>" */
    int64_t schedule_ms;     /* the keeper fires due schedules this often; 0 = 1 s; < 0 =
                              * never (tests call job_schedule_tick) */
    /* Callbacks (see "callbacks" below). */
    const char *callback_allow_hosts; /* "host[:port],..."; NULL / "" = no callbacks allowed;
                                       * copied */
    const char *callback_secret;      /* HMAC-SHA256 key; required with allow hosts; copied */
    int callback_attempts;            /* tries per callback; 0 = 8 */
    int64_t callback_backoff_ms;      /* delay after the first failed try, doubling; 0 = 1 s */
    int64_t callback_timeout_ms;      /* one POST at most; 0 = 10 s */
    int64_t callback_poll_ms;         /* the callback thread looks for due callbacks this
                                       * often; 0 = 500 ms; < 0 = never (tests tick) */
    /* Cluster events (Redis, wired by the CLI): called after each change THIS process makes
     * to a job (what its own subscribers get at once: claims, progress, stage, ends,
     * cancels), so that other processes can hand it to their subscribers with
     * job_event_apply instead of waiting for their store poll. Runs on worker / keeper /
     * request threads with no lock of the queue held; must be quick. NULL = none. */
    void (*on_event)(void *ctx, const job_info *info);
    void *on_event_ctx;
} job_opts;

/* Open the queue (no threads yet). *out is new: job_close. */
int job_open(const job_opts *o, jobs **out, md_err *err);
/* Register a kind (before job_start). MD_E_CONFLICT for a name already registered. */
int job_register(jobs *j, const job_kind *k, md_err *err);
/* Start the o->workers worker threads and the lease keeper (renewals, lease expiry, dead local
 * processes, subscriber polling). The keeper starts even with 0 workers, for subscribers. */
int job_start(jobs *j, md_err *err);
/* Stop: running jobs are asked to stop and put back in the queue with their attempt refunded
 * (another process or the next start runs them again), threads are joined, subscriptions
 * dropped. NULL is a no-op. */
void job_close(jobs *j);

/* Worker threads running (before job_start: those it will start) and jobs running in this
 * process now. */
int job_workers(const jobs *j);
int job_running_here(jobs *j);

/* An input that is a byte range of an open file (a part of a spooled multipart body). */
typedef struct job_input_range {
    int fd;          /* borrowed; read with pread */
    uint64_t offset; /* where the input_len bytes start */
} job_input_range;

typedef struct job_submit_in {
    const char *kind;        /* required; need not be registered in this process */
    const char *owner;       /* key id; NULL = "" */
    const char *params_json; /* JSON object text, < STORE_JOB_PARAMS_MAX bytes; NULL = "{}" */
    const void *input;       /* input bytes (may be NULL with input_len 0); borrowed */
    size_t input_len;        /* bytes of input or of input_range (not used with input_file) */
    /* Large inputs, never in memory (at most one of input, input_range, input_file):
     * input_range: input_len bytes of a file, copied into the input blob in blocks (borrowed);
     * input_file (job_submit only): a whole file adopted as the input blob by rename
     * (store_blob_adopt): steals the file whatever the outcome (gone from its path after the
     * call, also when the job is refused). */
    const job_input_range *input_range;
    const char *input_file;
    const char *input_name; /* client file name; NULL = "" */
    const char *callback_url; /* POSTed to when the job ends (see "callbacks"); NULL = none */
    const tr_ctx *trace;      /* the submitting request's trace context (http_req_trace); the
                               * worker's spans join it; NULL = none. Borrowed for the call */
} job_submit_in;

/* Accept one job: the input is stored durably, the row committed QUEUED. MD_E_OVERLOADED when
 * the queue is full. A callback_url off the allow-list is refused first (MD_E_INVALID_PARAM,
 * field "callback_url"). *out (may be NULL) gets the row. */
int job_submit(jobs *j, const job_submit_in *in, job_info *out, md_err *err);
/* Accept n jobs as one batch, all or none (callback_url: MD_E_INVALID_PARAM, not for batches). batch (required) gets the batch row (its owner and
 * kind are taken from in[0]); ids (may be NULL) gets n ids. */
int job_submit_batch(jobs *j, const job_submit_in *in, size_t n, job_batch *batch,
                     char (*ids)[JOB_ID_MAX], md_err *err);

/* MD_E_NOT_FOUND (field "job_id") for an unknown (or swept) id. */
int job_get(jobs *j, const char *id, job_info *out, md_err *err);
/* Cancel: a QUEUED job becomes CANCELLED at once; a PROCESSING one is asked to stop (at once
 * when it runs in this process, within lease_ms / 4 in another) and becomes CANCELLED when its
 * run returns; a terminal job is left as it is. *state_out (may be NULL) gets the state after
 * the call. */
int job_cancel(jobs *j, const char *id, int *state_out, md_err *err);
/* Remove a terminal job's row now (its blobs go at the next store_sweep). MD_E_CONFLICT
 * (field "job_id") while it is QUEUED or PROCESSING. */
int job_delete(jobs *j, const char *id, md_err *err);
/* Open a finished job's result blob for reading (store_blob_open: decrypted when the store
 * encrypts at rest; never read a result by its path). MD_E_CONFLICT (field "job_id") unless
 * SUCCESS with a result; MD_E_FILE_NOT_FOUND when the blob was swept. *out is new
 * (store_blob_reader_free). */
int job_result_open(jobs *j, const job_info *info, store_blob_reader **out, md_err *err);
/* The whole result in memory, at most max bytes (MD_E_TOO_LARGE beyond); errors as
 * job_result_open. *data is new (free()). */
int job_result_read(jobs *j, const job_info *info, size_t max, uint8_t **data, size_t *n,
                    md_err *err);

/* A batch and its jobs in submission order (*list is new: free(); may be NULL with *n 0). */
int job_batch_get(jobs *j, const char *id, job_batch *out, job_info **list, size_t *n, md_err *err);

/* Jobs newest first, filtered by kind, owner and state, paged (store_jobs_list; for
 * GET /api/admin/jobs of issue 11). *list is new (free(); NULL when *n == 0). */
typedef store_job_filter job_filter;
int job_list(jobs *j, const job_filter *f, job_info **list, size_t *n, int64_t *next_cursor,
             md_err *err);

typedef struct job_counts {
    int64_t by_state[STORE_JOB__NSTATES]; /* rows in the store, all processes */
    int workers;                          /* worker threads of this process */
    int running_here;                     /* jobs running in this process */
} job_counts;
/* Counts of kind (NULL = all kinds). */
int job_counts_get(jobs *j, const char *kind, job_counts *out, md_err *err);

/* The jobs' Prometheus families, appended to out (an http_collector_fn; jobs is a jobs *,
 * borrowed): modeld_jobs{state} (rows in the store, every process: the same on each node),
 * modeld_jobs_finished_total{outcome} and modeld_job_lease_expiries_total{result} (transitions
 * made by this process). A store that cannot be read leaves modeld_jobs out. */
void job_metrics(md_buf *out, void *jobs);

/* Requeue (or fail, past max_attempts) jobs whose lease ran out, and those leased by a dead
 * process of this host. The keeper thread calls it; tests and `modeld worker` may too. */
int job_expire_leases(jobs *j, size_t *requeued, size_t *failed, md_err *err);

/* ---- cron (5-field schedules, issue 11 §4) ------------------------------------------------ */

/* A parsed cron expression: "minute hour day-of-month month day-of-week", UTC only (no
 * time zones, so no DST gaps or repeats). Each field is a comma-separated list of items; an
 * item is "*", "N" or "N-M", optionally followed by "/S": every S-th value of the range (for
 * "N/S", of N up to the field's maximum).
 * Months take jan..dec and days of the week sun..sat (any case, also in ranges: mon-fri);
 * day-of-week 7 is Sunday like 0. "@yearly" ("@annually"), "@monthly", "@weekly", "@daily"
 * ("@midnight") and "@hourly" stand for their usual 5 fields.
 *
 * Days follow Vixie cron: when neither day field begins with "*", a day matches when EITHER
 * its day of month OR its day of week matches ("0 0 1,15 * mon" fires on the 1st, the 15th
 * and every Monday); when one of them begins with "*" (with a step too), both must match.
 * An expression that can never fire ("0 0 30 feb *", "0 0 31 apr,jun *") is refused.
 * Value type, owns nothing. */
typedef struct job_cron {
    uint64_t minute; /* bit m: minute m, 0..59 */
    uint32_t hour;   /* bit h: hour h, 0..23 */
    uint32_t dom;    /* bit d: day of month d, 1..31 */
    uint16_t month;  /* bit m: month m, 1..12 */
    uint8_t dow;     /* bit d: day of week d, 0..6, 0 = Sunday */
    uint8_t dom_star; /* the day-of-month field began with '*' (Vixie's DOM_STAR) */
    uint8_t dow_star; /* the day-of-week field began with '*' (Vixie's DOW_STAR) */
} job_cron;

#define JOB_CRON_MAX 256 /* longest expression accepted, in bytes */

/* Parse expr (NUL-terminated). MD_E_INVALID_PARAM with field "cron" and a message naming the
 * bad field ("field 2 (hour): 24 is out of range 0..23") for anything else than a valid
 * expression. */
int job_cron_parse(const char *expr, job_cron *out, md_err *err);
/* The first minute strictly after after_s (Unix seconds, UTC) at which c (from job_cron_parse)
 * fires, in Unix seconds. after_s must be in 0 .. JOB_CRON_TIME_MAX (MD_E_INVALID_PARAM, field
 * "cron", beyond, or when the next fire would fall after it). */
#define JOB_CRON_TIME_MAX 253402300799LL /* 9999-12-31T23:59:59Z */
int job_cron_next(const job_cron *c, int64_t after_s, int64_t *next_s, md_err *err);

/* ---- schedules (issue 11 §4) ----------------------------------------------------------- */

/* A schedule submits one job of its kind each time its cron expression fires (UTC). The job
 * has no input blob; its params are
 *     {"model": M, "input": I, "schedule_id": S, "callback_url": U, "scheduled_ms": T}
 * (input: the stored dataset id the kind reads; T: the fire time that was due). Schedules are
 * rows in the store (store_schedule): they survive restarts, and every process on the data dir
 * may fire them: each fire is claimed by compare-and-set on next_run_ms (store_schedule_claim),
 * so it submits one job whichever process (or tick) gets there first. A schedule that was due
 * several times while no process ran fires once, and then at its next time after now.
 * A crash between the claim and the submission loses that one run (at most once, never
 * twice); a submission that fails gives the claim back, so the next tick retries. */
typedef store_schedule job_schedule;

typedef struct job_schedule_in {
    const char *owner;        /* key id; NULL = "" */
    const char *kind;         /* kind of the jobs it submits (need not be registered here) */
    const char *model;        /* required */
    const char *cron;         /* required; job_cron_parse */
    const char *input;        /* required: the dataset id */
    const char *callback_url; /* NULL = none; the caller checks it against its allow-list */
} job_schedule_in;

/* Validate and store a schedule; its first run is the cron's next fire after now. *out (may
 * be NULL) gets the row. MD_E_INVALID_PARAM / MD_E_MISSING_FIELD naming the field;
 * MD_E_NOT_FOUND naming "input" for a stored dataset id ("d_...") that does not exist. */
int job_schedule_add(jobs *j, const job_schedule_in *in, job_schedule *out, md_err *err);
/* MD_E_NOT_FOUND (field "schedule_id") for an unknown id. */
int job_schedule_get(jobs *j, const char *id, job_schedule *out, md_err *err);
/* Every schedule, oldest first (*list new: free(); NULL when *n == 0). */
int job_schedule_list(jobs *j, job_schedule **list, size_t *n, md_err *err);
/* MD_E_NOT_FOUND (field "schedule_id") for an unknown id. Jobs it submitted stay. */
int job_schedule_delete(jobs *j, const char *id, md_err *err);
/* Fire every schedule due at the clock's now (each once, see above). *fired (may be NULL)
 * gets how many jobs this call submitted. The keeper calls it every schedule_ms. */
int job_schedule_tick(jobs *j, size_t *fired, md_err *err);

/* ---- callbacks (issue 11 §4) ------------------------------------------------------------ */

/* A job submitted with a callback_url gets one POST when it ends (SUCCESS, FAILURE or
 * CANCELLED), with the JSON body
 *     {"job_id": ID, "kind": K, "state": "SUCCESS", "completed_ms": T,
 *      "error": null | {"code": C, "message": M}, "params": {...}, "result_meta": {...}}
 * and the headers Content-Type: application/json, X-Modeld-Job-Id: ID and
 *     X-Modeld-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(callback_secret, "<t>.<body>")>
 * A receiver recomputes v1 over the raw body with the shared secret, compares in constant
 * time, and refuses a t too far from its clock (replays).
 *
 * Only http:// and https:// URLs whose host (or host:port) is on callback_allow_hosts are
 * accepted, at submission (400 naming "callback_url") and again before each try; no redirects
 * are followed and no proxy is used. A try that fails (no connection, timeout, a status other
 * than 2xx) is retried after callback_backoff_ms, doubling each time (at most 1 h), up to
 * callback_attempts tries; the state lives in the store (store_callback), so a restart or
 * another process on the data dir carries on, and each try is claimed by compare-and-set so
 * that only one process makes it. The POSTs run on their own thread (job_start), never on the
 * keeper's, so a slow receiver cannot delay lease renewals. */

/* MD_OK when url may receive callbacks under allow_hosts (see above), else MD_E_INVALID_PARAM
 * with field "callback_url" and the reason. */
int job_callback_check_url(const char *allow_hosts, const char *url, md_err *err);
/* The X-Modeld-Signature value for body (n bytes) at time t: "t=<t>,v1=<64 hex>" into out.
 * Returns MD_OK, or MD_E_INTERNAL when cap < JOB_CB_SIG_MAX. */
#define JOB_CB_SIG_MAX 96
int job_callback_sign(const char *secret, int64_t t, const char *body, size_t n, char *out,
                      size_t cap);
/* Make every due try once (the callback thread calls it every callback_poll_ms). *delivered
 * (may be NULL) gets how many were delivered by this call. */
int job_callback_tick(jobs *j, size_t *delivered, md_err *err);
/* The callback state of a job (store_callback). MD_E_NOT_FOUND (field "job_id") when none. */
typedef store_callback job_callback;
int job_callback_get(jobs *j, const char *job_id, job_callback *out, md_err *err);

/* ---- subscriptions ---------------------------------------------------------------------- */

/* Called with the job's row after each change (state, progress, stage); info is borrowed for
 * the call. Runs on a worker or the keeper thread with the subscription lock held: it must be
 * quick (queue a message) and must not call job_subscribe / job_unsubscribe. */
typedef void (*job_event_fn)(const job_info *info, void *user);

/* A change another process published (its on_event): job id is now in state with progress
 * and stage. When something here follows id, its subscribers get the job's row from the store
 * with this progress and stage laid over it while the row is in the same state (the store's
 * progress is written at most every progress_ms; the event is fresher); a row already in
 * another state wins. Cheap when nobody follows id (no store read). Any thread. */
void job_event_apply(jobs *j, const char *id, int state, double progress, const char *stage);

/* Follow job id. The current state is delivered within poll_ms of subscribing (from the
 * keeper's poll; job_get gives it at once), then every change; an id that does not exist (or
 * is swept) is never called back. The calls stop after a terminal state has been delivered.
 * *out is new: job_unsubscribe. */
int job_subscribe(jobs *j, const char *id, job_event_fn cb, void *user, job_sub **out, md_err *err);
/* Stop following; when it returns the callback is not running and will not run again. NULL is
 * a no-op. */
void job_unsubscribe(job_sub *sub);

#endif
