/* pool.h - the one worker pool of modeld: a fixed set of threads behind a bounded FIFO queue.
 *
 * Users: the HTTP compute pool (HEAVY handlers run here while their connection is suspended),
 * the audit writer of src/api/platform.c (one thread that batches entries into one transaction),
 * and `modeld vectorize` on a directory (one job per file on all cores).
 *
 * The queue is bounded so that overload is answered at once (the HTTP layer turns
 * MD_E_OVERLOADED into 503 + Retry-After) instead of letting latency grow without limit; callers
 * that know their whole workload (the CLI) size the queue to hold all of it.
 *
 * Threads: md_pool_submit, md_pool_depth and md_pool_busy may be called from any thread,
 * including from a job. md_pool_free must not be called from a job of the same pool.
 */
#ifndef MD_BASE_POOL_H
#define MD_BASE_POOL_H

#include "base/err.h"

#include <stddef.h>

typedef struct md_pool md_pool;
/* A job; arg is the caller's, borrowed by the pool until fn returns. */
typedef void (*md_pool_fn)(void *arg);

/* Start threads workers (0 = 1) behind a queue of queue slots (0 = 1).
 * Ownership: *out is new; free with md_pool_free. MD_E_NOMEM when no thread can be started. */
int md_pool_new(unsigned threads, unsigned queue, md_pool **out);
/* Queue fn(arg); jobs start in submission order. MD_E_OVERLOADED (nothing queued) when the
 * queue is full or the pool is stopping: never blocks. */
int md_pool_submit(md_pool *p, md_pool_fn fn, void *arg);
/* Jobs waiting in the queue now. */
size_t md_pool_depth(md_pool *p);
/* Workers running a job now. */
size_t md_pool_busy(md_pool *p);
/* Worker threads actually started (<= the number asked). */
unsigned md_pool_threads(const md_pool *p);
/* Stop accepting jobs, run every job already queued, join the workers and free the pool.
 * NULL is a no-op. */
void md_pool_free(md_pool *p);

#endif
