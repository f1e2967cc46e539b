/* store_claim_bench.c - the cost of the job queue's store calls on each back end: a job insert,
 * a claim (the oldest queued job, FOR UPDATE SKIP LOCKED on PostgreSQL, under the write lock on
 * SQLite) and its completion, one caller; then the claim throughput of 4 callers, each with its
 * own store handle as separate worker processes would have. Not a test: bench/store_claim.sh
 * runs it on SQLite and on a throwaway PostgreSQL and prints microseconds per call.
 *
 * usage: store_claim_bench DATA_DIR [STORE_URL]   (no URL: SQLite in DATA_DIR) */
#include "base/log.h"
#include "store/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N 2000
#define THREADS 4

static double now_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *url;
static const char *dir;

static int open_store(store **s)
{
    md_err e = {0};
    store_opts so = {.data_dir = dir, .url = url, .pool_size = 1};
    if (store_open(&so, s, &e) == MD_OK)
        return 0;
    fprintf(stderr, "store_claim_bench: %s\n", md_err_message(&e));
    return 1;
}

static int insert(store *s, int n)
{
    for (int i = 0; i < n; i++) {
        store_job j = {.max_attempts = 3, .input_ttl_ms = 3600000, .result_ttl_ms = 3600000};
        strcpy(j.kind, "bench");
        if (store_jobs_insert(s, &j, 1, NULL, 0, NULL) != MD_OK)
            return 1;
    }
    return 0;
}

static const char *const kinds[] = {"bench"};

/* Claim and complete jobs until none is left; the count into *done. */
static void drain(store *s, const char *worker, int *done)
{
    store_job j;
    while (store_jobs_claim(s, kinds, 1, worker, 60000, &j, NULL) == MD_OK) {
        store_jobs_succeed(s, j.id, worker, "", 0, "{}", NULL);
        (*done)++;
    }
}

static void report(const char *label, double cpu, double wall, int n)
{
    printf("%-34s %8.1f us wall %8.1f us CPU  (%d calls)\n", label, wall * 1e6 / n, cpu * 1e6 / n,
           n);
}

typedef struct th {
    store *s;
    char name[16];
    int done;
} th;

static void *run(void *arg)
{
    th *t = arg;
    drain(t->s, t->name, &t->done);
    return NULL;
}

static int concurrent(void)
{
    th t[THREADS];
    pthread_t id[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&t[i], 0, sizeof t[i]);
        snprintf(t[i].name, sizeof t[i].name, "w%d", i);
        if (open_store(&t[i].s))
            return 1;
    }
    double w0 = now_s(CLOCK_MONOTONIC);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&id[i], NULL, run, &t[i]);
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(id[i], NULL);
        total += t[i].done;
        store_unref(t[i].s);
    }
    double w = now_s(CLOCK_MONOTONIC) - w0;
    printf("%-34s %8.1f us wall per job, %.0f jobs/s  (%d jobs, %d handles)\n",
           "claim+succeed, 4 callers", w * 1e6 / total, total / w, total, THREADS);
    return total == N ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: store_claim_bench DATA_DIR [STORE_URL]\n");
        return 2;
    }
    dir = argv[1];
    url = argc == 3 ? argv[2] : NULL;
    md_log_set_level(MD_LOG_WARN);
    store *s = NULL;
    if (open_store(&s))
        return 1;
    double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
    if (insert(s, N))
        return 1;
    report("store_jobs_insert", now_s(CLOCK_THREAD_CPUTIME_ID) - c0, now_s(CLOCK_MONOTONIC) - w0,
           N);
    store_job j;
    w0 = now_s(CLOCK_MONOTONIC);
    c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
    int n = 0;
    while (store_jobs_claim(s, kinds, 1, "w", 60000, &j, NULL) == MD_OK)
        n++;
    report("store_jobs_claim", now_s(CLOCK_THREAD_CPUTIME_ID) - c0, now_s(CLOCK_MONOTONIC) - w0, n);
    if (n != N)
        return 1;
    /* the claimed jobs back to QUEUED, then claim + succeed as a worker does */
    size_t rq = 0, fl = 0;
    if (store_jobs_expire(s, "w", &rq, &fl, NULL) != MD_OK || rq != N)
        return 1;
    w0 = now_s(CLOCK_MONOTONIC);
    c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
    n = 0;
    drain(s, "w2", &n);
    report("claim+succeed, 1 caller", now_s(CLOCK_THREAD_CPUTIME_ID) - c0,
           now_s(CLOCK_MONOTONIC) - w0, n);
    if (insert(s, N))
        return 1;
    store_unref(s);
    return concurrent();
}
