/* pool.c - the worker pool of pool.h: a fixed set of threads behind a bounded FIFO ring.
 *
 * libuv's work/done split without the loop: a job is a function and its argument; whatever
 * "done" means (resuming a connection, counting a file) is the job's own last step.
 * Invariants:
 *   1. 0 <= count <= cap; jobs leave the ring in submission order (head is the oldest).
 *   2. After stop is set no job is accepted; workers drain what is queued, then exit, so
 *      md_pool_free runs every accepted job exactly once.
 *   3. busy counts workers between taking a job and finishing it; it and count change only
 *      under mu.
 */
#include "base/pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct job {
    md_pool_fn fn;
    void *arg;
} job;

struct md_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *ring;
    size_t cap, head, count;
    size_t busy; /* workers running a job */
    bool stop;
    pthread_t *threads;
    unsigned nthreads;
};

static void *worker(void *arg)
{
    md_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->count == 0 && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->count == 0)
            break; /* stopping and drained (invariant 2) */
        job j = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->count--;
        p->busy++;
        pthread_mutex_unlock(&p->mu);
        j.fn(j.arg);
        pthread_mutex_lock(&p->mu);
        p->busy--;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int md_pool_new(unsigned threads, unsigned queue, md_pool **out)
{
    *out = NULL;
    md_pool *p = calloc(1, sizeof *p);
    if (!p)
        return MD_E_NOMEM;
    unsigned want = threads ? threads : 1;
    p->cap = queue ? queue : 1;
    p->ring = calloc(p->cap, sizeof *p->ring);
    p->threads = calloc(want, sizeof *p->threads);
    if (!p->ring || !p->threads)
        goto fail_alloc;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (unsigned i = 0; i < want; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0)
            break;
        p->nthreads++;
    }
    if (p->nthreads == 0)
        goto fail_threads;
    *out = p;
    return MD_OK;
fail_threads:
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
fail_alloc:
    free(p->ring);
    free(p->threads);
    free(p);
    return MD_E_NOMEM;
}

int md_pool_submit(md_pool *p, md_pool_fn fn, void *arg)
{
    pthread_mutex_lock(&p->mu);
    if (p->stop || p->count == p->cap) {
        pthread_mutex_unlock(&p->mu);
        return MD_E_OVERLOADED;
    }
    p->ring[(p->head + p->count) % p->cap] = (job){fn, arg};
    p->count++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return MD_OK;
}

size_t md_pool_depth(md_pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->count;
    pthread_mutex_unlock(&p->mu);
    return n;
}

size_t md_pool_busy(md_pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->busy;
    pthread_mutex_unlock(&p->mu);
    return n;
}

unsigned md_pool_threads(const md_pool *p)
{
    return p->nthreads;
}

void md_pool_free(md_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->ring);
    free(p->threads);
    free(p);
}
