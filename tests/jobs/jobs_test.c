/* jobs_test.c - the queue with real worker threads (system clock, short leases and polls):
 * a job runs to SUCCESS with its result and metadata, subscribers see every state up to the
 * terminal one, a failing job ends in FAILURE naming the error, a transient error is retried
 * until max_attempts, a queued job is cancelled at once and a running one at its next check,
 * closing the queue puts a running job back with its attempt refunded, jobs leased by a dead
 * process of this host are taken back at start, per-kind max_running holds, and a batch is
 * accepted as a whole. Waits are for conditions (bounded by the test timeout), never times. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "jobs/jobs.h"
#include "common/store_fixture.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct fx {
    tu_store *ts;
    jobs *j;
    atomic_int runs; /* run callbacks entered */
    atomic_int concurrent, max_concurrent;
    atomic_int release; /* "block" kind waits for this or a cancel */
    int fail_code;      /* for the "fail" kind */
} fx;

static void nap(void)
{
    nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f || tu_store_setup_with((void **)&f->ts, NULL, false) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    job_close(f->j);
    void *ts = f->ts;
    tu_store_teardown(&ts);
    free(f);
    return 0;
}

/* Upscales nothing: writes the input reversed as the result, reporting progress. */
static int run_ok(job_run *r, void *user)
{
    fx *f = user;
    atomic_fetch_add(&f->runs, 1);
    uint8_t *in = NULL;
    size_t n = 0;
    int rc = job_run_read_input(r, 1 << 20, &in, &n, job_run_err(r));
    if (rc != MD_OK)
        return rc;
    for (size_t i = 0; i < n / 2; i++) {
        uint8_t t = in[i];
        in[i] = in[n - 1 - i];
        in[n - 1 - i] = t;
    }
    md_cancel_progress(job_run_cancel(r), 0.5, "reverse");
    rc = job_run_set_result(r, in, n, "{\"bytes\":1}", job_run_err(r));
    free(in);
    return rc;
}

static int run_fail(job_run *r, void *user)
{
    fx *f = user;
    atomic_fetch_add(&f->runs, 1);
    return md_fail(job_run_err(r), f->fail_code, "file", "cannot decode");
}

/* Runs until released or cancelled, counting how many run at once. */
static int run_block(job_run *r, void *user)
{
    fx *f = user;
    atomic_fetch_add(&f->runs, 1);
    int now = atomic_fetch_add(&f->concurrent, 1) + 1;
    int max = atomic_load(&f->max_concurrent);
    while (now > max && !atomic_compare_exchange_weak(&f->max_concurrent, &max, now))
        ;
    int rc = MD_OK;
    while (!atomic_load(&f->release) && rc == MD_OK) {
        rc = md_cancel_check(job_run_cancel(r), "block", job_run_err(r));
        nap();
    }
    atomic_fetch_sub(&f->concurrent, 1);
    if (rc == MD_OK)
        rc = job_run_set_result(r, "x", 1, NULL, job_run_err(r));
    return rc;
}

static void open_jobs(fx *f, int workers, int max_running_block, const char *name)
{
    job_opts o = {.store = f->ts->s,
                  .workers = workers,
                  .lease_ms = 2000,
                  .poll_ms = 20,
                  .progress_ms = 1,
                  .max_attempts = 3,
                  .worker_name = name};
    assert_int_equal(job_open(&o, &f->j, NULL), MD_OK);
    job_kind k1 = {.name = "ok", .run = run_ok, .user = f};
    job_kind k2 = {.name = "fail", .run = run_fail, .user = f};
    job_kind k3 = {.name = "block", .run = run_block, .user = f, .max_running = max_running_block};
    assert_int_equal(job_register(f->j, &k1, NULL), MD_OK);
    assert_int_equal(job_register(f->j, &k2, NULL), MD_OK);
    assert_int_equal(job_register(f->j, &k3, NULL), MD_OK);
    assert_int_equal(job_register(f->j, &k3, NULL), MD_E_CONFLICT);
}

static job_info submit(fx *f, const char *kind, const char *input)
{
    job_submit_in in = {.kind = kind,
                        .owner = "k1",
                        .params_json = "{\"a\":1}",
                        .input = input,
                        .input_len = input ? strlen(input) : 0,
                        .input_name = "in.bin"};
    job_info info;
    md_err e;
    assert_int_equal(job_submit(f->j, &in, &info, &e), MD_OK);
    return info;
}

static job_info wait_state(fx *f, const char *id, int state)
{
    job_info info;
    for (;;) {
        assert_int_equal(job_get(f->j, id, &info, NULL), MD_OK);
        if (info.state == state)
            return info;
        nap();
    }
}

typedef struct seen {
    pthread_mutex_t mu;
    int states[16];
    int n;
    bool saw_progress;
} seen;

static void on_event(const job_info *info, void *user)
{
    seen *s = user;
    pthread_mutex_lock(&s->mu);
    if (s->n == 0 || s->states[s->n - 1] != info->state)
        if (s->n < 16)
            s->states[s->n++] = info->state;
    if (info->progress > 0 && info->progress < 1)
        s->saw_progress = true;
    pthread_mutex_unlock(&s->mu);
}

static void test_success_with_events(void **state)
{
    fx *f = *state;
    open_jobs(f, 0, 0, NULL);
    assert_int_equal(job_start(f->j, NULL), MD_OK); /* keeper only: nothing runs yet */
    job_info a = submit(f, "ok", "abc");
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    job_sub *sub = NULL;
    assert_int_equal(job_subscribe(f->j, a.id, on_event, &s, &sub, NULL), MD_OK);
    for (;;) { /* the keeper's poll delivers the current state */
        pthread_mutex_lock(&s.mu);
        int n = s.n;
        pthread_mutex_unlock(&s.mu);
        if (n > 0)
            break;
        nap();
    }
    job_close(f->j);
    f->j = NULL;
    job_unsubscribe(NULL);
    /* The subscription died with the queue; subscribe again on a queue with a worker. */
    open_jobs(f, 1, 0, NULL);
    seen s2 = {.mu = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(job_subscribe(f->j, a.id, on_event, &s2, &sub, NULL), MD_OK);
    assert_int_equal(job_start(f->j, NULL), MD_OK);
    job_info done = wait_state(f, a.id, JOB_SUCCESS);
    assert_int_equal(s.states[0], JOB_QUEUED);
    assert_int_equal(done.attempts, 1);
    assert_string_equal(done.result_meta, "{\"bytes\":1}");
    assert_int_equal(done.result_bytes, 3);
    char path[4096];
    assert_int_equal(job_result_path(f->j, &done, path, sizeof path, NULL), MD_OK);
    size_t n = 0;
    unsigned char *res = tu_slurp(path, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(res, "cba", 3);
    free(res);
    for (;;) {
        pthread_mutex_lock(&s2.mu);
        int last = s2.n ? s2.states[s2.n - 1] : -1;
        pthread_mutex_unlock(&s2.mu);
        if (last == JOB_SUCCESS)
            break;
        nap();
    }
    assert_int_equal(s2.states[0], JOB_PROCESSING);
    assert_true(s2.saw_progress);
    job_unsubscribe(sub);
}

/* What a cluster hook (job_opts.on_event) and a subscriber saw. */
typedef struct published {
    pthread_mutex_t mu;
    int n, terminal;
    double best_progress;
    char stage[64];
    double last_progress;
    int last_state;
} published;

static void on_publish(void *ctx, const job_info *info)
{
    published *p = ctx;
    pthread_mutex_lock(&p->mu);
    p->n++;
    if (info->progress > p->best_progress) {
        p->best_progress = info->progress;
        snprintf(p->stage, sizeof p->stage, "%s", info->stage);
    }
    if (job_state_terminal(info->state))
        p->terminal = info->state;
    pthread_mutex_unlock(&p->mu);
}

static void on_follow(const job_info *info, void *user)
{
    published *p = user;
    pthread_mutex_lock(&p->mu);
    p->n++;
    p->last_state = info->state;
    p->last_progress = info->progress;
    snprintf(p->stage, sizeof p->stage, "%s", info->stage);
    pthread_mutex_unlock(&p->mu);
}

static int count_of(published *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->n;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Cluster events: the changes this process's worker makes reach on_event (progress with its
 * stage, the terminal state); a change another process published (job_event_apply) reaches
 * the subscribers here with its progress laid over the row while the state agrees, the row
 * wins when it does not, and neither is published again. */
static void test_cluster_events(void **state)
{
    fx *f = *state;
    published pub = {.mu = PTHREAD_MUTEX_INITIALIZER};
    job_opts o = {.store = f->ts->s, .workers = 1, .lease_ms = 2000, .poll_ms = 20, .progress_ms = 1,
                  .on_event = on_publish, .on_event_ctx = &pub};
    assert_int_equal(job_open(&o, &f->j, NULL), MD_OK);
    assert_int_equal(job_register(f->j, &(job_kind){.name = "ok", .run = run_ok, .user = f}, NULL), MD_OK);
    assert_int_equal(job_start(f->j, NULL), MD_OK);
    job_info a = submit(f, "ok", "abc");
    wait_state(f, a.id, JOB_SUCCESS);
    for (;;) {
        pthread_mutex_lock(&pub.mu);
        bool ended = pub.terminal != 0;
        pthread_mutex_unlock(&pub.mu);
        if (ended)
            break;
        nap();
    }
    job_close(f->j); /* joins the worker: pub is ours from here */
    f->j = NULL;
    assert_int_equal(pub.terminal, JOB_SUCCESS);
    assert_true(pub.best_progress >= 0.5);

    /* The other side: no workers here, a queued job followed by a subscriber. */
    published hook = {.mu = PTHREAD_MUTEX_INITIALIZER};
    o.workers = 0;
    o.on_event_ctx = &hook;
    assert_int_equal(job_open(&o, &f->j, NULL), MD_OK);
    assert_int_equal(job_register(f->j, &(job_kind){.name = "ok", .run = run_ok, .user = f}, NULL), MD_OK);
    assert_int_equal(job_start(f->j, NULL), MD_OK);
    job_info b = submit(f, "ok", "xyz");
    int submitted = count_of(&hook);
    job_event_apply(f->j, b.id, JOB_QUEUED, 0.25, "nobody follows it"); /* no subscriber: nothing */
    published sub_seen = {.mu = PTHREAD_MUTEX_INITIALIZER, .last_state = -1};
    job_sub *sub = NULL;
    assert_int_equal(job_subscribe(f->j, b.id, on_follow, &sub_seen, &sub, NULL), MD_OK);
    while (count_of(&sub_seen) == 0) /* the poll delivers the row */
        nap();
    job_event_apply(f->j, b.id, JOB_QUEUED, 0.25, "remote");
    pthread_mutex_lock(&sub_seen.mu);
    assert_int_equal(sub_seen.last_state, JOB_QUEUED);
    assert_true(sub_seen.last_progress == 0.25);
    assert_string_equal(sub_seen.stage, "remote");
    pthread_mutex_unlock(&sub_seen.mu);
    job_event_apply(f->j, b.id, JOB_SUCCESS, 1.0, "done elsewhere"); /* the row says QUEUED */
    pthread_mutex_lock(&sub_seen.mu);
    assert_int_equal(sub_seen.last_state, JOB_QUEUED);
    assert_true(sub_seen.last_progress == 0.0);
    pthread_mutex_unlock(&sub_seen.mu);
    job_event_apply(f->j, "j_unknown", JOB_QUEUED, 0.5, "x");
    job_event_apply(f->j, NULL, JOB_QUEUED, 0.5, "x");
    assert_int_equal(count_of(&hook), submitted); /* applied events are not published again */
    job_unsubscribe(sub);
}

static void test_failure_and_retry(void **state)
{
    fx *f = *state;
    f->fail_code = MD_E_IMAGE_CORRUPT;
    open_jobs(f, 1, 0, NULL);
    assert_int_equal(job_start(f->j, NULL), MD_OK);
    job_info a = submit(f, "fail", "x");
    job_info got = wait_state(f, a.id, JOB_FAILURE);
    assert_string_equal(got.error_code, "corrupt_image");
    assert_string_equal(got.error_message, "cannot decode");
    assert_int_equal(got.attempts, 1);
    char path[64];
    md_err e;
    assert_int_equal(job_result_path(f->j, &got, path, sizeof path, &e), MD_E_CONFLICT);
    /* A transient error is tried max_attempts (3) times, then FAILURE. */
    job_close(f->j);
    f->j = NULL;
    f->fail_code = MD_E_IO;
    atomic_store(&f->runs, 0);
    open_jobs(f, 1, 0, NULL);
    assert_int_equal(job_start(f->j, NULL), MD_OK);
    job_info b = submit(f, "fail", "y");
    got = wait_state(f, b.id, JOB_FAILURE);
    assert_int_equal(got.attempts, 3);
    assert_int_equal(atomic_load(&f->runs), 3);
}

static void test_cancel_queued_and_running(void **state)
{
    fx *f = *state;
    open_jobs(f, 1, 0, NULL);
    assert_int_equal(job_start(f->j, NULL), MD_OK);
    job_info run = submit(f, "block", "r");
    wait_state(f, run.id, JOB_PROCESSING);
    job_info q = submit(f, "block", "q"); /* the only worker is busy: stays queued */
    int st = -1;
    assert_int_equal(job_cancel(f->j, q.id, &st, NULL), MD_OK);
    assert_int_equal(st, JOB_CANCELLED);
    assert_int_equal(job_cancel(f->j, run.id, &st, NULL), MD_OK);
    assert_int_equal(st, JOB_PROCESSING);
    job_info got = wait_state(f, run.id, JOB_CANCELLED);
    assert_string_equal(got.error_code, "cancelled");
    assert_int_equal(atomic_load(&f->runs), 1); /* the queued one never ran */
    md_err e;
    assert_int_equal(job_delete(f->j, run.id, &e), MD_OK);
    assert_int_equal(job_get(f->j, run.id, &got, &e), MD_E_NOT_FOUND);
    assert_int_equal(job_cancel(f->j, run.id, &st, &e), MD_E_NOT_FOUND);
}

static void test_close_releases_running_job(void **state)
{
    fx *f = *state;
    open_jobs(f, 1, 0, NULL);
    assert_int_equal(job_start(f->j, NULL), MD_OK);
    job_info a = submit(f, "block", "a");
    wait_state(f, a.id, JOB_PROCESSING);
    job_close(f->j);
    f->j = NULL;
    store_job row;
    assert_int_equal(store_jobs_get(f->ts->s, a.id, &row, NULL), MD_OK);
    assert_int_equal(row.state, JOB_QUEUED);
    assert_int_equal(row.attempts, 0); /* refunded */
    atomic_store(&f->release, 1);
    open_jobs(f, 1, 0, NULL);
    assert_int_equal(job_start(f->j, NULL), MD_OK);
    job_info got = wait_state(f, a.id, JOB_SUCCESS);
    assert_int_equal(got.attempts, 1);
}

static void test_dead_local_process_recovered(void **state)
{
    fx *f = *state;
    /* A child that exits at once gives a pid of this host that is surely dead. */
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    assert_true(child > 0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    char host[64], dead[STORE_JOB_WORKER_MAX];
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    snprintf(dead, sizeof dead, "%s:%ld:deadbeef", host, (long)child);
    open_jobs(f, 0, 0, dead);
    assert_int_equal(job_start(f->j, NULL), MD_OK);
    job_info a = submit(f, "ok", "abc");
    const char *kinds[] = {"ok"};
    char w[STORE_JOB_WORKER_MAX + 8];
    snprintf(w, sizeof w, "%s:w0", dead);
    store_job row;
    assert_int_equal(store_jobs_claim(f->ts->s, kinds, 1, w, 3600 * 1000, &row, NULL), MD_OK);
    job_close(f->j);
    f->j = NULL;
    /* A fresh queue in this (live) process sees the lease holder is gone: no hour's wait. */
    open_jobs(f, 1, 0, NULL);
    assert_int_equal(job_start(f->j, NULL), MD_OK);
    job_info got = wait_state(f, a.id, JOB_SUCCESS);
    assert_int_equal(got.attempts, 2);
    /* The recovery is a lease expiry this queue made: /metrics counts it. */
    md_buf b;
    md_buf_init(&b, 1u << 20);
    job_metrics(&b, f->j);
    assert_non_null(b.data);
    assert_non_null(strstr(b.data, "modeld_job_lease_expiries_total{result=\"requeued\"} 1\n"));
    assert_non_null(strstr(b.data, "modeld_job_lease_expiries_total{result=\"failed\"} 0\n"));
    md_buf_free(&b);
}

/* job_metrics: the store's counts by state and this queue's finished counters. */
static void test_metrics(void **state)
{
    fx *f = *state;
    f->fail_code = MD_E_IMAGE_CORRUPT; /* permanent: one attempt */
    open_jobs(f, 1, 0, NULL);
    assert_int_equal(job_start(f->j, NULL), MD_OK);
    job_info a = submit(f, "ok", "abc"), b = submit(f, "fail", "x"), c = submit(f, "ok", "d");
    wait_state(f, a.id, JOB_SUCCESS);
    wait_state(f, b.id, JOB_FAILURE);
    wait_state(f, c.id, JOB_SUCCESS);
    md_buf m;
    md_buf_init(&m, 1u << 20);
    job_metrics(&m, f->j);
    const char *t = m.data;
    assert_non_null(t);
    assert_non_null(strstr(t, "# TYPE modeld_jobs gauge\n"));
    assert_non_null(strstr(t, "modeld_jobs{state=\"SUCCESS\"} 2\n"));
    assert_non_null(strstr(t, "modeld_jobs{state=\"FAILURE\"} 1\n"));
    assert_non_null(strstr(t, "modeld_jobs{state=\"QUEUED\"} 0\n"));
    assert_non_null(strstr(t, "modeld_jobs_finished_total{kind=\"ok\",outcome=\"success\"} 2\n"));
    assert_non_null(strstr(t, "modeld_jobs_finished_total{kind=\"ok\",outcome=\"failure\"} 0\n"));
    assert_non_null(strstr(t, "modeld_jobs_finished_total{kind=\"fail\",outcome=\"failure\"} 1\n"));
    assert_non_null(strstr(t, "modeld_jobs_claimed_total{kind=\"ok\"} 2\n"));
    assert_non_null(strstr(t, "modeld_jobs_claimed_total{kind=\"fail\"} 1\n"));
    assert_non_null(strstr(t, "modeld_jobs_retried_total{kind=\"fail\"} 0\n"));
    /* every run lands in the +Inf bucket and the count, whatever it took */
    assert_non_null(strstr(t, "modeld_job_run_duration_seconds_bucket{kind=\"ok\",le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(t, "modeld_job_run_duration_seconds_count{kind=\"fail\"} 1\n"));
    assert_non_null(strstr(t, "modeld_job_lease_expiries_total{result=\"requeued\"} 0\n"));
    md_buf_free(&m);
}

static void test_max_running_and_batch(void **state)
{
    fx *f = *state;
    open_jobs(f, 3, 2, NULL);
    assert_int_equal(job_start(f->j, NULL), MD_OK);
    assert_int_equal(job_workers(f->j), 3);
    job_submit_in in[4];
    for (int i = 0; i < 4; i++)
        in[i] = (job_submit_in){.kind = "block", .owner = "k2", .input = "z", .input_len = 1};
    job_batch b;
    char ids[4][JOB_ID_MAX];
    assert_int_equal(job_submit_batch(f->j, in, 4, &b, ids, NULL), MD_OK);
    assert_int_equal(b.total, 4);
    while (job_running_here(f->j) < 2)
        nap();
    job_counts c;
    assert_int_equal(job_counts_get(f->j, "block", &c, NULL), MD_OK);
    assert_int_equal(c.by_state[JOB_PROCESSING], 2); /* max_running 2 of 3 workers */
    assert_int_equal(c.by_state[JOB_QUEUED], 2);
    atomic_store(&f->release, 1);
    for (int i = 0; i < 4; i++)
        wait_state(f, ids[i], JOB_SUCCESS);
    assert_true(atomic_load(&f->max_concurrent) <= 2);
    job_batch got;
    job_info *list = NULL;
    size_t n = 0;
    assert_int_equal(job_batch_get(f->j, b.id, &got, &list, &n, NULL), MD_OK);
    assert_int_equal(n, 4);
    assert_string_equal(list[3].id, ids[3]);
    assert_string_equal(got.owner, "k2");
    free(list);
    md_err e;
    assert_int_equal(job_batch_get(f->j, "b_nope", &got, &list, &n, &e), MD_E_NOT_FOUND);
    job_submit_in bad = {.kind = "Bad Kind"};
    assert_int_equal(job_submit(f->j, &bad, NULL, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "kind");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_success_with_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_and_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued_and_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_releases_running_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_local_process_recovered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_running_and_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
