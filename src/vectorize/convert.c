/* convert.c - vec_convert: the one call the CLI and the API make to turn an image into SVG.
 *
 * It runs trace -> SVG, and when asked, measures the result the same way the benchmark does:
 * our paths rasterised with cairo against the source composited on white, scored with SSIM.
 * Invariants:
 *   1. The parameters are validated before any work, so a bad field never reaches the tracer.
 *   2. The quality numbers always compare with the *original* image on white, even when
 *      p->composite asked for another background: they answer "how close is the SVG to what
 *      the user uploaded", the question the scorer asks too.
 *   3. On failure *out stays NULL and nothing leaks.
 *   4. A stop asked through o->cancel is seen at the next stage boundary (or inside the fitting
 *      and SSIM loops) and returns MD_E_TIMEOUT / MD_E_CANCELLED with the stage named: a
 *      request past its deadline frees its worker instead of finishing work nobody reads.
 *   5. With o->cache the result is the same as without (cache.c, invariant 2): the region stage
 *      is reused only for equal region parameters, an SSIM only for an equal document (same
 *      rendering, same bits), the source on white only for the image it was made from.
 */
#include "vec_int.h"

#include "base/clock.h"

#include <stdlib.h>
#include <string.h>

/* Largest SVG we produce; far beyond any sane trace of a 40 MP image, but bounded. */
#define VEC_MAX_SVG_BYTES ((size_t)512 << 20)

static double ms_since(uint64_t t0) { return (double)(md_now_ns() - t0) / 1e6; }

/* New copy of img (img_free). */
static md_image *img_copy(const md_image *img)
{
    md_image *c = img_new(img->width, img->height);
    if (!c)
        return NULL;
    memcpy(c->rgba, img->rgba, (size_t)img->width * (size_t)img->height * 4);
    c->has_alpha = img->has_alpha;
    return c;
}

/* The source as the scorer sees it: composited on white, 3 bytes a pixel. New (free). */
static uint8_t *source_on_white(const md_image *img)
{
    md_image *c = img_copy(img);
    size_t n = (size_t)img->width * (size_t)img->height;
    uint8_t *rgb = c ? malloc(n * 3) : NULL;
    if (rgb) {
        img_composite(c, 255, 255, 255);
        for (size_t i = 0; i < n; i++)
            memcpy(rgb + i * 3, c->rgba + i * 4, 3);
    }
    img_free(c);
    return rgb;
}

/* The SSIM of doc against the source: from the cache's memo when an equal document was
 * measured (invariant 5), else rendered and computed. */
static int measure(const md_image *img, const vec_doc *doc, const vec_convert_opts *o,
                   vec_result *r, md_err *err)
{
    size_t n = (size_t)img->width * (size_t)img->height;
    uint64_t hash = o->cache ? vec__doc_hash(doc) : 0;
    if (o->cache && vec__cache_ssim(o->cache, hash, o->rgb_only, &r->ssim))
        return MD_OK;
    uint8_t *ours = malloc(n * 3);
    uint8_t *own_src = NULL;
    const uint8_t *src = vec__cache_source(o->cache);
    int rc = ours ? MD_OK : md_fail(err, MD_E_NOMEM, "image", "out of memory rendering");
    uint64_t t0 = md_now_ns();
    md_cancel_progress(o->cancel, 0.85, "render");
    if (rc == MD_OK)
        rc = md_cancel_check(o->cancel, "render", err);
    if (rc == MD_OK)
        rc = vec_render(doc, ours, err);
    r->timing.render_ms = ms_since(t0);
    t0 = md_now_ns();
    md_cancel_progress(o->cancel, 0.9, "ssim");
    if (rc == MD_OK)
        rc = md_cancel_check(o->cancel, "ssim", err);
    if (rc == MD_OK && !src) {
        src = own_src = source_on_white(img);
        if (!src)
            rc = md_fail(err, MD_E_NOMEM, "image", "out of memory measuring quality");
    }
    if (rc == MD_OK)
        rc = vec__ssim(src, ours, img->width, img->height, o->cancel, o->rgb_only, &r->ssim, err);
    r->timing.ssim_ms = ms_since(t0);
    if (rc == MD_OK && o->cache)
        vec__cache_keep_ssim(o->cache, hash, o->rgb_only, &r->ssim);
    vec__cache_keep_source(o->cache, &own_src);
    free(ours);
    free(own_src);
    return rc;
}

/* Trace the image (composited first when the parameters ask for it) into *doc. */
static int trace(const md_image *img, const vec_params *p, const md_cancel *cancel,
                 vec_cache *cache, vec_doc **doc, vec_timing *t, md_err *err)
{
    if (!p->composite || !img->has_alpha)
        return vec__trace_cached(img, p, cancel, cache, doc, t, err);
    md_image *c = img_copy(img);
    if (!c)
        return md_fail(err, MD_E_NOMEM, "image", "out of memory compositing");
    img_composite(c, p->background[0], p->background[1], p->background[2]);
    int rc = vec__trace_cached(c, p, cancel, cache, doc, t, err);
    img_free(c);
    return rc;
}

static int write_svg(const vec_doc *doc, const vec_params *p, vec_result *r, md_err *err)
{
    md_buf b;
    md_buf_init(&b, VEC_MAX_SVG_BYTES);
    uint64_t t0 = md_now_ns();
    int rc = vec_svg_write(doc, p, &b, err);
    r->timing.svg_ms = ms_since(t0);
    if (rc == MD_OK) {
        r->svg = md_buf_steal(&b, &r->svg_bytes);
        if (!r->svg)
            rc = md_fail(err, MD_E_NOMEM, "svg", "out of memory writing SVG");
    }
    md_buf_free(&b);
    return rc;
}

int vec_convert(const md_image *img, const vec_params *p, const vec_convert_opts *o,
                vec_result **out, md_err *err)
{
    *out = NULL;
    if (!img || !img->rgba || img->width <= 0 || img->height <= 0)
        return md_fail(err, MD_E_INVALID_PARAM, "image", "no image to vectorize");
    int rc = vec_params_validate(p, err);
    if (rc != MD_OK)
        return rc;
    vec_result *r = calloc(1, sizeof *r);
    if (!r)
        return md_fail(err, MD_E_NOMEM, "result", "out of memory");
    r->params = *p;
    vec_doc *doc = NULL;
    const md_cancel *cancel = o ? o->cancel : NULL;
    vec_cache *cache = o ? o->cache : NULL;
    if (cache)
        vec__cache_bind(cache, img);
    uint64_t t0 = md_now_ns();
    rc = md_cancel_check(cancel, "trace", err);
    if (rc == MD_OK)
        rc = trace(img, p, cancel, cache, &doc, &r->timing, err);
    md_cancel_progress(cancel, 0.8, "svg");
    if (rc == MD_OK)
        rc = md_cancel_check(cancel, "svg", err);
    if (rc == MD_OK) {
        r->path_count = doc->npaths;
        rc = write_svg(doc, p, r, err);
    }
    if (rc == MD_OK && o && o->measure_quality &&
        (!o->measure_max_bytes || r->svg_bytes <= o->measure_max_bytes))
        rc = measure(img, doc, o, r, err);
    else if (rc == MD_OK && o && o->measure_quality)
        r->ssim.rgb = r->ssim.luma = -1; /* past measure_max_bytes: not measured */
    vec_doc_free(doc);
    if (rc == MD_OK)
        md_cancel_progress(cancel, 1.0, "done");
    r->timing.total_ms = ms_since(t0);
    if (rc != MD_OK) {
        vec_result_free(r);
        return rc;
    }
    *out = r;
    return MD_OK;
}

void vec_result_free(vec_result *r)
{
    if (!r)
        return;
    free(r->svg);
    free(r);
}
