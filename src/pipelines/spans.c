/* spans.c - the trace spans of the pipelines' stages (base/trace.h).
 *
 * Each pipeline opens one span for itself ("pipeline vectorize", "pipeline vectorize ai",
 * "pipeline enhance", "pipeline retrain") as a child of cx->trace (the request's or the job
 * run's context), and one span per stage under it: decode, features, classify, each candidate
 * conversion and its SSIM measurement, tile batches, encode, training... A stage below the
 * pipeline's span finds its parent in a copy of the pl_ctx whose trace is the pipeline span's
 * context (pl__ctx_under), so the shared steps (pl__admit_and_decode, pl__keep_result) nest
 * under whichever pipeline called them.
 *
 * Invariants:
 *   1. Spans are bounded per unit of work: a stage repeated an unbounded number of times
 *      (tiles, candidate conversions) is grouped or capped by its caller, never one span per
 *      pixel, row or tile; what a cap leaves out is counted in an attribute.
 *   2. With tracing off every function here costs a branch: tr_span_start returns NULL and
 *      the tr_span_* calls accept NULL.
 */
#include "pipelines/pipelines_int.h"

tr_span *pl__span(const pl_ctx *cx, const char *name)
{
    return tr_span_start(name, TR_KIND_INTERNAL, cx ? cx->trace : NULL);
}

tr_span *pl__span_under(const tr_span *parent, const char *name)
{
    if (parent == NULL)
        return NULL; /* the parent was not recorded: neither is the child (invariant 2) */
    return tr_span_start(name, TR_KIND_INTERNAL, tr_span_ctx(parent));
}

int pl__span_end(tr_span *s, int rc)
{
    tr_span_status(s, rc);
    tr_span_end(s);
    return rc;
}

pl_ctx pl__ctx_under(const pl_ctx *cx, const tr_span *s)
{
    pl_ctx inner = *cx;
    if (s != NULL)
        inner.trace = tr_span_ctx(s);
    return inner;
}

/* The measurement is the last thing vec_convert does (render, then SSIM), so its span ends now
 * and began render_ms + ssim_ms ago: vec_convert's own timings, not a second clock. */
void pl__conversion_spans(tr_span *conv, const vec_result *r)
{
    if (conv == NULL || r == NULL)
        return;
    tr_span_attr_int(conv, "modeld.svg_bytes", (int64_t)r->svg_bytes);
    tr_span_attr_int(conv, "modeld.paths", (int64_t)r->path_count);
    if (r->timing.ssim_ms <= 0)
        return; /* not measured */
    tr_span_attr_double(conv, "modeld.ssim", r->ssim.rgb);
    double ms = r->timing.render_ms + r->timing.ssim_ms;
    tr_span *s = tr_span_start_at("ssim", TR_KIND_INTERNAL, tr_span_ctx(conv),
                                  tr_now_unix_ns() - (int64_t)(ms * 1e6));
    tr_span_attr_double(s, "modeld.render_ms", r->timing.render_ms);
    tr_span_attr_double(s, "modeld.ssim_ms", r->timing.ssim_ms);
    tr_span_attr_double(s, "modeld.ssim", r->ssim.rgb);
    pl__span_end(s, MD_OK);
}
