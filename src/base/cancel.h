/* cancel.h - a cancel-and-progress token that long work checks between its stages.
 *
 * Work that may outlive the one who asked for it (a traced image whose request passed its
 * deadline, a job cancelled by its owner, a server draining on SIGTERM) takes an md_cancel and
 * calls md_cancel_check() between stages (vectorizer passes, ONNX nodes, image tiles). The check
 * is cheap (one relaxed atomic load and, when a deadline is set, one clock read), so it can sit in
 * a loop over nodes. The token also carries an optional progress sink, so the same checkpoints
 * report how far the work got.
 *
 * Ownership: the token is owned by whoever started the work (a request, a job, the CLI) and
 * borrowed by every callee for the duration of the call. A NULL token never cancels.
 * Threads: md_cancel_request() may be called from any thread while the work runs.
 */
#ifndef MD_BASE_CANCEL_H
#define MD_BASE_CANCEL_H

#include "base/err.h"

#include <stdatomic.h>
#include <stdint.h>

/* progress: fraction done in 0..1 (monotonic within one piece of work), stage: a short static
 * name ("cluster", "trace", "node 12/40"); both borrowed for the call. */
typedef void (*md_progress_fn)(void *ctx, double fraction, const char *stage);

typedef struct md_cancel {
    atomic_int cancelled;     /* set by md_cancel_request() */
    uint64_t deadline_ns;     /* monotonic (md_now_ns); 0 = none */
    md_progress_fn progress;  /* may be NULL */
    void *progress_ctx;
} md_cancel;

/* A fresh token with a deadline (0 = none) and no progress sink. */
void md_cancel_init(md_cancel *c, uint64_t deadline_ns);
/* Ask the work to stop at its next check. Thread-safe; c may be NULL. */
void md_cancel_request(md_cancel *c);
/* 1 when cancelled or past the deadline. c may be NULL (never). */
int md_cancel_stopped(const md_cancel *c);
/* MD_OK, or MD_E_TIMEOUT (deadline passed) / MD_E_CANCELLED (cancelled), recorded in err with a
 * message naming stage (may be NULL). c may be NULL (always MD_OK). */
int md_cancel_check(const md_cancel *c, const char *stage, md_err *err);
/* Report progress when a sink is set. c may be NULL. */
void md_cancel_progress(const md_cancel *c, double fraction, const char *stage);

#endif
