/* pool.c - the compute pool: a fixed set of worker threads behind a bounded FIFO queue.
 *
 * HEAVY handlers run here so that libmicrohttpd's I/O threads never wait on model inference or
 * image work. The queue is bounded so that overload is answered at once (503 + Retry-After by
 * the caller) instead of letting latency grow without limit (libuv's work/done split).
 * Invariants:
 *   1. 0 <= count <= cap; jobs leave the queue in submission order.
 *   2. After stop is set no job is accepted; workers drain what is queued, then exit.
 */
#include "http/http_int.h"

#include <stdlib.h>

typedef struct job {
    http_pool_fn fn;
    void *arg;
} job;

struct http_pool {
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
    http_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->count == 0 && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->count == 0)
            break; /* stopping and drained */
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

int http__pool_new(unsigned threads, unsigned queue, http_pool **out)
{
    *out = NULL;
    http_pool *p = calloc(1, sizeof *p);
    if (!p)
        return MD_E_NOMEM;
    p->cap = queue ? queue : 1;
    p->ring = calloc(p->cap, sizeof *p->ring);
    p->threads = calloc(threads ? threads : 1, sizeof *p->threads);
    if (!p->ring || !p->threads)
        goto fail_alloc;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (unsigned i = 0; i < (threads ? threads : 1); i++) {
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

int http__pool_submit(http_pool *p, http_pool_fn fn, void *arg)
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

size_t http__pool_depth(http_pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->count;
    pthread_mutex_unlock(&p->mu);
    return n;
}

size_t http__pool_busy(http_pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->busy;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void http__pool_free(http_pool *p)
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
