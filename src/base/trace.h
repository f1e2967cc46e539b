/* trace.h - W3C trace context and spans, exported as OTLP/HTTP JSON (prefix tr_).
 *
 * A trace context (tr_ctx) is what travels: in a `traceparent` header, in a job row, in a
 * callback. A span (tr_span) is one timed piece of work with a name, a parent, a few attributes
 * and a status; tr_span_end() hands it to the exporter, which batches spans and POSTs them to
 * {endpoint}/v1/traces from one background thread.
 *
 * The current span is passed explicitly (a request holds its span, a pipeline call takes the
 * parent tr_ctx); there is no thread-local "current span". The exporter is the one global: when
 * it is not started, tr_span_start() returns NULL and every tr_span_* function accepts NULL, so
 * tracing off costs a branch.
 *
 * Spans never block their caller: a full queue drops the span and counts it.
 */
#ifndef MD_BASE_TRACE_H
#define MD_BASE_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

/* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define TR_TRACEPARENT_LEN 55

typedef struct tr_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags; /* bit 0 = sampled */
} tr_ctx;

/* Parses a `traceparent` value of n bytes (version 00; for a higher version the first 55 bytes
 * are read as 00 when the next byte is '-' or the end, as the W3C spec asks). Returns 1 and fills
 * *out when valid; returns 0 and leaves *out untouched when not (all-zero ids, upper-case hex,
 * version ff, wrong lengths): the caller then starts a new trace, it is never an error. */
int tr_parse(const char *s, size_t n, tr_ctx *out);

/* Writes the 55-character traceparent of c plus a NUL into out. */
void tr_format(const tr_ctx *c, char out[TR_TRACEPARENT_LEN + 1]);

/* A new root context: random trace id and span id (getrandom), sampled. */
void tr_ctx_new(tr_ctx *out);

/* Lower-case hex of n bytes into out (2n + 1 bytes with the NUL). */
void tr_hex(const uint8_t *p, size_t n, char *out);

/* ---- spans ---------------------------------------------------------------------------------- */

typedef struct tr_span tr_span;

typedef enum tr_kind {
    TR_KIND_INTERNAL = 1,
    TR_KIND_SERVER = 2,
    TR_KIND_CLIENT = 3,
} tr_kind;

/* Attributes a span keeps; more are ignored (counted nowhere: a span is a summary). */
#define TR_MAX_ATTRS 8

/* 1 when the exporter runs (spans are recorded), 0 otherwise. */
int tr_enabled(void);

/* Starts a span named name (copied) as a child of parent (borrowed; NULL = a new trace).
 * Returns a new span the caller must end with tr_span_end(), or NULL when tracing is off or
 * memory is short; all functions below accept NULL. */
tr_span *tr_span_start(const char *name, tr_kind kind, const tr_ctx *parent);

/* Like tr_span_start, with the start time given (wall-clock ns since the epoch): for a span
 * whose beginning is known only later ("queue wait" starts when the job was submitted). */
tr_span *tr_span_start_at(const char *name, tr_kind kind, const tr_ctx *parent, int64_t start_ns);

/* The span's own context (what its children take as parent). Borrowed; NULL for a NULL span. */
const tr_ctx *tr_span_ctx(const tr_span *s);

/* Attributes: key and value copied; the TR_MAX_ATTRS+1-th and later are ignored. */
void tr_span_attr_str(tr_span *s, const char *key, const char *val);
void tr_span_attr_int(tr_span *s, const char *key, int64_t val);
/* A double (OTLP doubleValue); NaN and infinities are kept as their text. */
void tr_span_attr_double(tr_span *s, const char *key, double val);

/* Status: code MD_OK = ok, anything else = error with the code's name as message. */
void tr_span_status(tr_span *s, int code);

/* Ends the span now and hands it to the exporter (steals s). */
void tr_span_end(tr_span *s);

/* Wall-clock nanoseconds since the epoch (the unit OTLP wants). */
int64_t tr_now_unix_ns(void);

/* ---- the exporter --------------------------------------------------------------------------- */

typedef struct tr_export_opts {
    const char *endpoint;    /* base URL, e.g. http://127.0.0.1:4318 ; /v1/traces is appended */
    const char *service;     /* resource service.name; NULL = "modeld" */
    size_t queue_max;        /* spans waiting at most; 0 = 2048 */
    size_t batch_max;        /* spans a POST carries at most; 0 = 256 */
    unsigned interval_ms;    /* a partial batch waits at most this long; 0 = 1000 */
    unsigned timeout_ms;     /* one POST's deadline; 0 = 2000 */
} tr_export_opts;

/* Starts the exporter thread (borrows opts for the call; strings copied). MD_E_INVALID_PARAM
 * when the endpoint is not http(s)://, MD_E_CONFLICT when already started. */
int tr_exporter_start(const tr_export_opts *opts, md_err *err);

/* Flushes what is queued (one last POST, bounded by the timeout) and joins the thread. Safe when
 * not started. */
void tr_exporter_stop(void);

typedef struct tr_stats {
    uint64_t exported; /* spans the collector accepted (2xx) */
    uint64_t failed;   /* spans in batches the collector refused or never answered */
    uint64_t dropped;  /* spans not queued: the queue was full */
    uint64_t queued;   /* spans waiting now */
} tr_stats;
void tr_get_stats(tr_stats *out);

/* Writes the OTLP/HTTP JSON body for n ended spans (borrowed) into b; exposed for tests. */
int tr_otlp_json(tr_span *const *spans, size_t n, const char *service, md_buf *b);

#endif
