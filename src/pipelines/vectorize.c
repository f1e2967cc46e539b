/* vectorize.c - pl_vectorize: one image to SVG, from bytes or from an upload in the store, with
 * the "smart" converter's choice, admission by cost and the result kept in the store.
 *
 *   source (bytes | upload blob) -> img_probe: width x height -> pl_budget_acquire
 *     -> img_decode -> converter: potrace = binary, smart = pl_looks_binary -> vec_convert
 *     -> pl_budget_release -> (store) store_results_create + store_uploads_touch
 *
 * Invariants:
 *   1. Nothing is decoded before its cost is admitted: the header gives width x height, the
 *      budget is taken for exactly that many pixels and given back on every path once the
 *      trace is over (before the store write, which needs no pixels).
 *   2. The cancel token is checked before decode and throughout vec_convert, so a conversion
 *      whose request has gone (504, drain) stops at the next stage.
 *   3. On failure out->res is NULL and no result is stored; out is always safe to free.
 */
#include "pipelines/pipelines.h"
#include "pipelines/pipelines_int.h"

#include "base/buf.h"
#include "base/clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_UPLOAD_MAX ((size_t)20 * 1000 * 1000)
#define DEFAULT_RESULT_TTL_MS ((int64_t)24 * 3600 * 1000)

static const char *const converter_names[PL__CONVERTERS] = {"vtracer", "potrace", "smart"};

const char *pl_converter_name(pl_converter c)
{
    return (unsigned)c < PL__CONVERTERS ? converter_names[c] : "unknown";
}

int pl_converter_parse(const char *name, pl_converter *out, md_err *err)
{
    for (int i = 0; name && i < PL__CONVERTERS; i++)
        if (strcmp(name, converter_names[i]) == 0) {
            *out = (pl_converter)i;
            return MD_OK;
        }
    return md_fail(err, MD_E_INVALID_PARAM, "converter",
                   "converter must be one of vtracer, potrace, smart");
}

int pl_looks_binary(const md_image *img)
{
    size_t n = (size_t)img->width * (size_t)img->height, colour = 0, mid = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *px = img->rgba + 4 * i;
        int c[3];
        /* Composite on white, as the SSIM reference is: transparent areas count as white. */
        for (int k = 0; k < 3; k++)
            c[k] = (px[k] * px[3] + 255 * (255 - px[3]) + 127) / 255;
        int hi = c[0] > c[1] ? (c[0] > c[2] ? c[0] : c[2]) : (c[1] > c[2] ? c[1] : c[2]);
        int lo = c[0] < c[1] ? (c[0] < c[2] ? c[0] : c[2]) : (c[1] < c[2] ? c[1] : c[2]);
        int luma = (299 * c[0] + 587 * c[1] + 114 * c[2]) / 1000;
        colour += hi - lo > 48;
        mid += luma > 80 && luma < 176;
    }
    /* Anti-aliased edges of black-on-white art give a few percent of grey; real colour or
     * shading gives much more. */
    return n > 0 && colour * 100 <= n && mid * 100 <= 8 * n;
}

static double ms_since(uint64_t t0)
{
    return (double)(md_now_ns() - t0) / 1e6;
}

static int check_in(const pl_ctx *cx, const pl_vec_in *in, md_err *err)
{
    if ((unsigned)in->converter >= PL__CONVERTERS)
        return md_fail(err, MD_E_INVALID_PARAM, "converter",
                       "converter must be one of vtracer, potrace, smart");
    if (in->image && (in->file_id || in->upload))
        return md_fail(err, MD_E_INVALID_PARAM, "image", "give image bytes or an upload, not both");
    if (!in->image && !in->file_id && !in->upload)
        return md_fail(err, MD_E_MISSING_FIELD, "file_id", "no image to vectorize");
    if (!in->image && !cx->st)
        return md_fail(err, MD_E_INVALID_PARAM, "file_id", "uploads need a store");
    return MD_OK;
}

/* The upload's bytes. *data is new (free()). */
int pl__read_upload(const pl_ctx *cx, const pl_vec_in *in, store_upload *up, uint8_t **data,
                       size_t *n, md_err *err)
{
    int rc = MD_OK;
    if (in->upload)
        *up = *in->upload;
    else
        rc = store_uploads_get(cx->st, in->file_id, up, err);
    if (rc == MD_OK)
        rc = store_blob_read(cx->st, up->sha256,
                             cx->upload_max_bytes ? cx->upload_max_bytes : DEFAULT_UPLOAD_MAX, data,
                             n, err);
    if (rc == MD_E_FILE_NOT_FOUND)
        rc = md_fail(err, MD_E_FILE_NOT_FOUND, "file_id",
                     "no such file (unknown or expired file_id)");
    return rc;
}

/* Header -> admission -> pixels (invariant 1). *pixels gets what was admitted (0 if nothing). */
static int admit_and_decode(const pl_ctx *cx, const void *data, size_t n, pl_vec_out *out,
                            md_image **img, uint64_t *pixels, md_err *err)
{
    img_limits def = img_limits_default();
    const img_limits *lim = cx->limits.max_pixels ? &cx->limits : &def;
    *pixels = 0;
    int rc = img_probe(data, n, lim, &out->format, &out->width, &out->height, err);
    uint64_t px = (uint64_t)out->width * (uint64_t)out->height;
    if (rc == MD_OK)
        rc = pl_budget_acquire(cx->budget, px, err);
    if (rc != MD_OK)
        return rc;
    *pixels = px;
    md_cancel_progress(cx->cancel, 0.0, "decode");
    rc = md_cancel_check(cx->cancel, "decode", err);
    if (rc == MD_OK)
        rc = img_decode(data, n, lim, img, err);
    return rc;
}

int pl__admit_and_decode(const pl_ctx *cx, const void *data, size_t n, pl_vec_out *out,
                         md_image **img, uint64_t *pixels, md_err *err)
{
    tr_span *s = pl__span(cx, "decode");
    int rc = admit_and_decode(cx, data, n, out, img, pixels, err);
    tr_span_attr_str(s, "modeld.format", img_format_name(out->format));
    tr_span_attr_int(s, "modeld.width", out->width);
    tr_span_attr_int(s, "modeld.height", out->height);
    return pl__span_end(s, rc);
}

/* The converter's colormode: potrace is binary, smart looks at the pixels. */
static void choose_mode(const pl_vec_in *in, const md_image *img, vec_params *p, pl_vec_out *out)
{
    out->smart_binary = -1;
    if (in->converter == PL_POTRACE)
        p->colormode = VEC_BINARY;
    if (in->converter != PL_SMART)
        return;
    uint64_t t0 = md_now_ns();
    out->smart_binary = pl_looks_binary(img);
    p->colormode = out->smart_binary ? VEC_BINARY : VEC_COLOR;
    out->timing.analyse_ms = ms_since(t0);
}

/* A JSON real that reads back as a real (1.0, not 1), rounded to 6 decimals as answers are. */
static void put_real(md_buf *b, const char *key, double v)
{
    char num[64];
    snprintf(num, sizeof num, "%.10g", round(v * 1e6) / 1e6);
    int integral = strspn(num, "-0123456789") == strlen(num);
    md_buf_printf(b, "\"%s\":%s%s,", key, num, integral ? ".0" : "");
}

/* The result's metadata (pipelines.h lists the fields). */
static int result_meta(const pl_vec_in *in, const store_upload *up, const pl_vec_out *out,
                       md_buf *b)
{
    const vec_result *r = out->res;
    md_buf_putc(b, '{');
    put_real(b, "ssim", r->ssim.rgb);
    put_real(b, "processing_time", out->timing.total_ms / 1e3);
    md_buf_printf(b, "\"svg_bytes\":%zu,\"path_count\":%zu,\"parameters\":", r->svg_bytes,
                  r->path_count);
    vec_params_to_json(&r->params, b);
    md_buf_printf(b, ",\"converter\":\"%s\",\"filename\":", pl_converter_name(in->converter));
    md_buf_put_json_str(b, up ? up->filename : in->filename ? in->filename : "");
    return md_buf_putc(b, '}');
}

int pl__keep_result(const pl_ctx *cx, const pl_vec_in *in, const store_upload *up,
                       pl_vec_out *out, md_err *err)
{
    tr_span *span = pl__span(cx, "store result");
    uint64_t t0 = md_now_ns();
    md_buf b;
    md_buf_init(&b, STORE_RESULT_META_MAX);
    int rc = result_meta(in, up, out, &b);
    if (rc != MD_OK)
        rc = md_fail(err, MD_E_NOMEM, NULL, "the result's metadata does not fit");
    store_result sr;
    if (rc == MD_OK)
        rc = store_results_create(
            cx->st, up ? up->file_id : NULL, out->res->svg, out->res->svg_bytes, b.data,
            cx->result_ttl_ms ? cx->result_ttl_ms : DEFAULT_RESULT_TTL_MS, &sr, err);
    md_buf_free(&b);
    if (rc == MD_OK) {
        snprintf(out->result_id, sizeof out->result_id, "%s", sr.result_id);
        out->result_expires_ms = sr.expires_ms;
        if (up)
            store_uploads_touch(cx->st, up->file_id, NULL); /* a used upload stays longer */
    }
    out->timing.store_ms = ms_since(t0);
    return pl__span_end(span, rc);
}

/* Decode, choose, trace; the budget is held only for this part (invariant 1). */
static int convert(pl_ctx *cx, const pl_vec_in *in, const void *data, size_t n, pl_vec_out *out,
                   md_err *err)
{
    md_image *img = NULL;
    uint64_t pixels = 0, t0 = md_now_ns();
    int rc = pl__admit_and_decode(cx, data, n, out, &img, &pixels, err);
    out->timing.decode_ms = ms_since(t0);
    vec_params p = in->params;
    if (rc == MD_OK)
        choose_mode(in, img, &p, out);
    vec_convert_opts vo = {.measure_quality = in->measure_quality, .cancel = cx->cancel};
    if (rc == MD_OK) {
        tr_span *span = pl__span(cx, "vectorize");
        tr_span_attr_str(span, "modeld.colormode", p.colormode == VEC_BINARY ? "binary" : "color");
        rc = vec_convert(img, &p, &vo, &out->res, err);
        pl__conversion_spans(span, out->res);
        pl__span_end(span, rc);
    }
    img_free(img);
    pl_budget_release(cx->budget, pixels);
    if (rc == MD_OK)
        out->res->timing.decode_ms = out->timing.decode_ms;
    return rc;
}

static int vectorize(pl_ctx *cx, const pl_vec_in *in, pl_vec_out *out, md_err *err);

/* The pipeline's span around the work; its stages are spans under it (spans.c). */
int pl_vectorize(pl_ctx *cx, const pl_vec_in *in, pl_vec_out *out, md_err *err)
{
    tr_span *span = pl__span(cx, "pipeline vectorize");
    pl_ctx inner = pl__ctx_under(cx, span);
    int rc = vectorize(&inner, in, out, err);
    tr_span_attr_str(span, "modeld.converter", pl_converter_name(in->converter));
    tr_span_attr_int(span, "modeld.width", out->width);
    tr_span_attr_int(span, "modeld.height", out->height);
    if (out->smart_binary >= 0)
        tr_span_attr_int(span, "modeld.smart_binary", out->smart_binary);
    return pl__span_end(span, rc);
}

static int vectorize(pl_ctx *cx, const pl_vec_in *in, pl_vec_out *out, md_err *err)
{
    memset(out, 0, sizeof *out);
    out->smart_binary = -1;
    int rc = check_in(cx, in, err);
    if (rc == MD_OK)
        rc = vec_params_validate(&in->params, err);
    if (rc != MD_OK)
        return rc;
    uint64_t t0 = md_now_ns();
    store_upload up;
    uint8_t *blob = NULL;
    size_t n = in->image_len;
    if (!in->image)
        rc = pl__read_upload(cx, in, &up, &blob, &n, err);
    out->timing.read_ms = ms_since(t0);
    if (rc == MD_OK)
        rc = convert(cx, in, in->image ? in->image : blob, n, out, err);
    free(blob);
    out->timing.total_ms = ms_since(t0);
    if (rc == MD_OK && cx->st)
        rc = pl__keep_result(cx, in, in->image ? NULL : &up, out, err);
    if (rc != MD_OK) {
        vec_result_free(out->res);
        out->res = NULL;
    }
    return rc;
}

void pl_vec_out_free(pl_vec_out *out)
{
    if (!out)
        return;
    vec_result_free(out->res);
    out->res = NULL;
}
