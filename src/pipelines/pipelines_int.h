/* pipelines_int.h - steps shared by the pipelines of this directory (not part of the API):
 * pl_vectorize and pl_vectorize_ai read an upload, admit and decode an image and keep a result
 * the same way. */
#ifndef MD_PIPELINES_INT_H
#define MD_PIPELINES_INT_H

#include "pipelines/pipelines.h"

/* The bytes of the upload in->upload, or of in->file_id looked up in cx->st (*up filled).
 * *data is new (free()). MD_E_FILE_NOT_FOUND (field "file_id") when unknown or expired. */
int pl__read_upload(const pl_ctx *cx, const pl_vec_in *in, store_upload *up, uint8_t **data,
                    size_t *n, md_err *err);
/* Probe the header into out->format/width/height, admit width x height pixels against
 * cx->budget (*pixels gets what was admitted: release it with pl_budget_release, also after a
 * failure) and decode. *img is new (img_free). */
int pl__admit_and_decode(const pl_ctx *cx, const void *data, size_t n, pl_vec_out *out,
                         md_image **img, uint64_t *pixels, md_err *err);
/* Store out->res as a result of cx->st (metadata as pipelines.h says) and fill
 * out->result_id / result_expires_ms; up is the upload it came from or NULL. */
int pl__keep_result(const pl_ctx *cx, const pl_vec_in *in, const store_upload *up, pl_vec_out *out,
                    md_err *err);

/* ---- stage spans (spans.c) ---- */

/* A stage span named name (a static string), child of cx->trace (NULL: a new trace). New: end
 * it with pl__span_end; NULL when tracing is off. */
tr_span *pl__span(const pl_ctx *cx, const char *name);
/* A stage span, child of parent (borrowed); NULL when parent is NULL (tracing off). */
tr_span *pl__span_under(const tr_span *parent, const char *name);
/* Sets s's status from rc and ends it (steals s; NULL is a no-op). Returns rc. */
int pl__span_end(tr_span *s, int rc);
/* A copy of *cx whose trace is s's context (unchanged when s is NULL): what the stages under
 * the span s are given. Borrows s until the copy is last used. */
pl_ctx pl__ctx_under(const pl_ctx *cx, const tr_span *s);
/* Attributes of a conversion span conv (bytes, paths, SSIM) and, when r was measured, its child
 * span "ssim" (render + SSIM, placed by r's timings). conv and r borrowed; NULL is a no-op. */
void pl__conversion_spans(tr_span *conv, const vec_result *r);

#endif
