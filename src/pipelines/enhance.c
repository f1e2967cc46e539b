/* enhance.c - pl_enhance: a photo upscaled 2, 3, 4 or 8 times by a super-resolution network
 * (UpscalerJS's ESRGAN slim / medium / thick, converted to ONNX; pipelines.h names them).
 *
 *   bytes -> img_decode -> EXIF orientation -> tiles (network, per tile) -> blended output rows
 *         -> alpha plane upscaled bicubically (when there is alpha) -> img_encode
 *
 * Tiling. The image is cut into a grid of core tiles of T x T input pixels. Each network run
 * covers a core plus a blend band of BLEND pixels on each side where a neighbour exists, plus
 * CONTEXT more pixels that are computed and thrown away (the network's receptive field sees
 * real neighbours there instead of zero padding). Every run window has the same size (edge
 * windows are shifted inward, run_window), so the engine plans the network's memory once. Across a
 * band between two tiles the weights ramp linearly, one down and one up, summing to 1. Output rows
 * are accumulated in a float band of (T + 2 BLEND) * s rows only, slid down one tile row at a time
 * and flushed to the 8-bit result, so memory is the result plus one band plus one tile's run, for
 * any image size. T comes from the tile budget and the network's measured bytes per input pixel
 * (net_cost).
 *
 * Invariants:
 *   1. Every output pixel gets weights summing to 1 (checked: the flush divides by the sum, and
 *      a zero sum is an internal error, never a black pixel).
 *   2. The cancel token is checked before decoding and between tiles; the network's own run gets
 *      a token with the same deadline but no progress sink (its "node i/n" reports would break
 *      the monotonic per-tile progress).
 *   3. On failure out->image is empty; out is always safe to free.
 *   4. The model reference is held for the whole job (a swap mid-job does not mix versions).
 */
#include "pipelines/pipelines.h"
#include "pipelines/pipelines_int.h"

#include "base/clock.h"
#include "models/models.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLEND 4    /* half-width of the blend band between tiles, input pixels */
#define CONTEXT 12 /* extra input pixels each side, computed and discarded */
#define MIN_TILE 32
#define MAX_TILE 256
#define RESULT_MAX ((size_t)1 << 31) /* encoded result bound */
/* Tile rows are grouped into at most this many "enhance tile batch" spans (spans.c,
 * invariant 1). */
#define MAX_BATCH_SPANS 16

static const char *const quality_names[] = {"fast", "balanced", "best"};
static const char *const net_names[] = {"slim", "medium", "thick"};

/* Bytes per input pixel of one network run with a memory plan, measured with `modeld infer`
 * (peak RSS at 64x64 and 128x128 inputs, the slope), times 1.25. medium x3 measured 4.9 KB (its
 * 128x128 run stays under the Winograd size threshold): the x2 figure is used, which holds for
 * larger tiles. The RDN nets' last convolution (192 channels at x8) runs on the low-resolution
 * input since the engine fuses it with the upsampling (src/onnx/kernels/upconv.c): x8 measured
 * 3.8 KB (slim) and 6.8 KB (medium) at 128x256 and 256x256 inputs, down from about 80; the x4
 * figures are used, as for x2 to x4 measured before that fusion (higher than now, so safe). */
static double net_cost(pl_enh_quality q, int scale)
{
    static const double kb[3][4] = {
        /* x2, x3, x4, x8 */
        {2.3, 4.5, 7.8, 7.8},     /* slim */
        {13.6, 13.6, 13.2, 13.6}, /* medium */
        {25.7, 25.4, 25.7, 28.0},  /* thick */
    };
    int i = scale == 2 ? 0 : scale == 3 ? 1 : scale == 4 ? 2 : 3;
    return kb[q][i] * 1024.0 * 1.25;
}

int pl_enh_quality_parse(const char *s, pl_enh_quality *q, md_err *err)
{
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, quality_names[i]) == 0) {
            *q = (pl_enh_quality)i;
            return MD_OK;
        }
    return md_fail(err, MD_E_INVALID_PARAM, "quality", "quality must be fast, balanced or best");
}

const char *pl_enh_quality_name(pl_enh_quality q)
{
    return (unsigned)q < 3 ? quality_names[q] : "unknown";
}

int pl_enh_model_name(pl_enh_quality q, int scale, char *out, size_t cap, md_err *err)
{
    if ((unsigned)q >= 3)
        return md_fail(err, MD_E_INVALID_PARAM, "quality",
                       "quality must be fast, balanced or best");
    if (scale != 2 && scale != 3 && scale != 4 && scale != 8)
        return md_fail(err, MD_E_INVALID_PARAM, "upscale", "upscale must be 2, 3, 4 or 8, got %d",
                       scale);
    snprintf(out, cap, "esrgan-%s-x%d", net_names[q], scale);
    return MD_OK;
}

/* The face cascade: loaded once per process ($MODELD_FACE_CASCADE, else Debian's opencv-data
 * file); NULL when it cannot be read, and then face_enhance is refused (never a silent no-op). */
static img_cascade *g_cascade;
static pthread_once_t g_cascade_once = PTHREAD_ONCE_INIT;

static void cascade_load(void)
{
    const char *path = getenv("MODELD_FACE_CASCADE");
    md_err e;
    if (img_cascade_load(path && *path ? path : IMG_FACE_CASCADE, &g_cascade, &e) != MD_OK)
        g_cascade = NULL;
}

static const img_cascade *cascade(void)
{
    pthread_once(&g_cascade_once, cascade_load);
    return g_cascade;
}

int pl_enhance_face_available(pl_ctx *cx)
{
    (void)cx;
    return cascade() != NULL;
}

static int check_in(const pl_enh_in *in, md_err *err)
{
    char name[32];
    int rc = pl_enh_model_name(in->quality, in->scale, name, sizeof name, err);
    if (rc != MD_OK)
        return rc;
    if (in->out_format != IMG_FMT_JPEG && in->out_format != IMG_FMT_PNG &&
        in->out_format != IMG_FMT_WEBP)
        return md_fail(err, MD_E_INVALID_PARAM, "output_format",
                       "output_format must be jpg, png or webp");
    if (in->jpeg_quality < 0 || in->jpeg_quality > 100)
        return md_fail(err, MD_E_INVALID_PARAM, "jpeg_quality", "must be in 1..100, got %d",
                       in->jpeg_quality);
    if (in->face_enhance && !cascade())
        return md_fail(err, MD_E_UNSUPPORTED, "face_enhance",
                       "face enhancement is not available on this server (no face detector: "
                       "install opencv-data or set MODELD_FACE_CASCADE)");
    if (in->tile && (in->tile < 8 || in->tile > 4096))
        return md_fail(err, MD_E_INVALID_PARAM, "tile", "must be in 8..4096, got %d", in->tile);
    return MD_OK;
}

/* Core tile side: the largest (multiple of 8) whose run fits the budget, at least MIN_TILE. */
static int tile_side(const pl_enh_in *in, int w, int h)
{
    if (in->tile)
        return in->tile;
    size_t budget = in->tile_budget ? in->tile_budget : PL_ENH_TILE_BUDGET;
    double per_px = net_cost(in->quality, in->scale);
    int big = w > h ? w : h;
    if ((double)w * h * per_px <= (double)budget)
        return big < 8 ? 8 : big; /* one run, no context wasted */
    int t = MIN_TILE;
    for (int c = MAX_TILE; c >= MIN_TILE; c -= 8) {
        double side = c + 2 * (BLEND + CONTEXT);
        if (side * side * per_px <= (double)budget) {
            t = c;
            break;
        }
    }
    return big < t ? (big < 8 ? 8 : big) : t;
}

/* The networks a job needs can serve: its quality's, and thick's for faces. A missing face
 * network is the option's fault (MD_E_UNSUPPORTED naming "face_enhance"), found before the
 * job starts rather than at its first face. */
static int models_ready(pl_ctx *cx, const pl_enh_in *in, md_err *err)
{
    char name[32];
    mdl_version *v = NULL;
    pl_enh_model_name(in->quality, in->scale, name, sizeof name, NULL);
    int rc = mdl_acquire(cx->models, name, NULL, &v, err);
    mdl_release(v);
    if (rc != MD_OK || !in->face_enhance || in->quality == PL_ENH_BEST)
        return rc;
    v = NULL;
    pl_enh_model_name(PL_ENH_BEST, in->scale, name, sizeof name, NULL);
    md_err why;
    rc = mdl_acquire(cx->models, name, NULL, &v, &why);
    mdl_release(v);
    if (rc != MD_OK)
        return md_fail(err, MD_E_UNSUPPORTED, "face_enhance",
                       "face enhancement runs faces through %s, which this server cannot load "
                       "(%s)",
                       name, md_err_message(&why));
    return MD_OK;
}

int pl_enhance_estimate(pl_ctx *cx, int w, int h, const pl_enh_in *in, uint64_t *bytes, md_err *err)
{
    int rc = check_in(in, err);
    if (rc != MD_OK)
        return rc;
    if (w <= 0 || h <= 0)
        return md_fail(err, MD_E_INVALID_PARAM, "image", "no pixels");
    uint64_t s = (uint64_t)in->scale, ow = (uint64_t)w * s, oh = (uint64_t)h * s;
    if (ow * oh > PL_ENH_MAX_OUT_PIXELS)
        return md_fail(err, MD_E_IMAGE_TOO_LARGE, "upscale",
                       "the result would be %llux%llu, more than %llu pixels",
                       (unsigned long long)ow, (unsigned long long)oh,
                       (unsigned long long)PL_ENH_MAX_OUT_PIXELS);
    if (cx && cx->models) {
        rc = models_ready(cx, in, err);
        if (rc != MD_OK)
            return rc;
    }
    int t = tile_side(in, w, h);
    double side = t + 2 * (BLEND + CONTEXT);
    uint64_t run = (uint64_t)(side * side * net_cost(in->quality, in->scale));
    uint64_t band = (uint64_t)(t + 2 * BLEND) * s * ow * 4 * sizeof(float);
    /* decoded + oriented copy, the 8-bit result, its encoding (at most ~ the raw RGB) */
    uint64_t img = (uint64_t)w * (uint64_t)h * 8 + ow * oh * 4 + ow * oh * 3;
    *bytes = img + band + run;
    if (in->face_enhance && in->quality != PL_ENH_BEST) /* faces: one more run, of thick */
        *bytes += in->tile_budget ? in->tile_budget : PL_ENH_TILE_BUDGET;
    return MD_OK;
}

/* ---- one job's state ---------------------------------------------------------------------- */

typedef struct enh_job {
    const md_image *src; /* oriented input */
    md_image *dst;       /* result (RGBA) */
    int s, t;            /* scale, core tile side */
    int ow;              /* output width */
    float *acc;          /* band: rows x ow x 4 (r, g, b, weight) */
    int band_rows;       /* capacity in output rows */
    int band_y0;         /* output row of acc's first row */
    float *tile_in;      /* [3, th, tw] */
    mdl_version *model;
    md_cancel inner; /* the network's token (invariant 2) */
    tr_span *span;   /* "enhance tiles" (borrowed): parent of the tile batch spans; may be NULL */
    uint64_t net_ns, stitch_ns; /* network runs; blending and flushing (the batch spans) */
} enh_job;

/* Weight of output coordinate o (input units: (o + .5) / s) in a tile whose core is [c0, c1)
 * of an axis of length n: ramps up over [c0 - B, c0 + B) and down over [c1 - B, c1 + B) where
 * neighbours exist; the two ramps of a shared edge sum to 1. */
static float axis_weight(double f, int c0, int c1, int n)
{
    double w = 1.0;
    if (c0 > 0) {
        double u = (f - (c0 - BLEND)) / (2.0 * BLEND);
        w *= u < 0 ? 0 : u > 1 ? 1 : u;
    }
    if (c1 < n) {
        double d = ((c1 + BLEND) - f) / (2.0 * BLEND);
        w *= d < 0 ? 0 : d > 1 ? 1 : d;
    }
    return (float)w;
}

/* Run the network on input rect [x0, x1) x [y0, y1); *res is new (mdl_result_free). */
static int run_net(enh_job *j, int x0, int y0, int x1, int y1, mdl_result **res, md_err *err)
{
    int tw = x1 - x0, th = y1 - y0;
    size_t plane = (size_t)tw * (size_t)th;
    for (int y = 0; y < th; y++) {
        const uint8_t *row = j->src->rgba + ((size_t)(y0 + y) * (size_t)j->src->width + x0) * 4;
        for (int x = 0; x < tw; x++)
            for (int c = 0; c < 3; c++)
                j->tile_in[c * plane + (size_t)y * tw + x] = row[4 * x + c];
    }
    mdl_tensor t = {.name = "image",
                    .dtype = ONNX_FLOAT,
                    .rank = 4,
                    .dims = {1, 3, th, tw},
                    .data = j->tile_in};
    int rc = mdl_run(j->model, &t, 1, &j->inner, res, err);
    if (rc != MD_OK)
        return rc;
    const mdl_tensor *o = mdl_result_count(*res) ? mdl_result_output(*res, 0) : NULL;
    if (!o || o->dtype != ONNX_FLOAT || o->rank != 4 || o->dims[0] != 1 || o->dims[1] != 3 ||
        o->dims[2] != (int64_t)th * j->s || o->dims[3] != (int64_t)tw * j->s)
        return md_fail(err, MD_E_MODEL_INVALID, "model",
                       "%s does not answer [1, 3, %d, %d] for a %dx%d tile",
                       mdl_version_name(j->model), th * j->s, tw * j->s, tw, th);
    return MD_OK;
}

/* Accumulate the network's output of core [cx0, cx1) x [cy0, cy1) (run over rect r) into the
 * band, over the core's blend extent. */
static void accumulate(enh_job *j, const float *out, const int r[4], const int core[4])
{
    int s = j->s, W = j->src->width, H = j->src->height;
    int ex0 = core[0] - BLEND < 0 ? 0 : core[0] - BLEND;
    int ex1 = core[2] + BLEND > W ? W : core[2] + BLEND;
    int ey0 = core[1] - BLEND < 0 ? 0 : core[1] - BLEND;
    int ey1 = core[3] + BLEND > H ? H : core[3] + BLEND;
    int rw = (r[2] - r[0]) * s, rh = (r[3] - r[1]) * s;
    size_t plane = (size_t)rw * (size_t)rh;
    for (int oy = ey0 * s; oy < ey1 * s; oy++) {
        float wy = axis_weight((oy + 0.5) / s, core[1], core[3], H);
        if (wy <= 0)
            continue;
        float *arow = j->acc + (size_t)(oy - j->band_y0) * (size_t)j->ow * 4;
        size_t ty = (size_t)(oy - r[1] * s);
        for (int ox = ex0 * s; ox < ex1 * s; ox++) {
            float w = wy * axis_weight((ox + 0.5) / s, core[0], core[2], W);
            if (w <= 0)
                continue;
            size_t ti = ty * (size_t)rw + (size_t)(ox - r[0] * s);
            float *a = arow + (size_t)ox * 4;
            for (int c = 0; c < 3; c++)
                a[c] += w * out[c * plane + ti];
            a[3] += w;
        }
    }
}

/* Write band rows [y0, y1) (output rows) to the result: divide, clamp, round. */
static int flush_rows(enh_job *j, int y0, int y1, md_err *err)
{
    for (int y = y0; y < y1; y++) {
        const float *a = j->acc + (size_t)(y - j->band_y0) * (size_t)j->ow * 4;
        uint8_t *d = j->dst->rgba + (size_t)y * (size_t)j->ow * 4;
        for (int x = 0; x < j->ow; x++, a += 4, d += 4) {
            if (a[3] <= 0)
                return md_fail(err, MD_E_INTERNAL, "tile", "output pixel %d,%d got no tile", x, y);
            for (int c = 0; c < 3; c++) {
                float v = a[c] / a[3];
                d[c] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : lrintf(v));
            }
            d[3] = 255;
        }
    }
    return MD_OK;
}

/* Slide the band so that it starts at output row y0, keeping rows already accumulated. */
static void slide_band(enh_job *j, int y0)
{
    size_t row = (size_t)j->ow * 4;
    int keep = j->band_y0 + j->band_rows - y0;
    if (keep > 0 && y0 > j->band_y0)
        memmove(j->acc, j->acc + (size_t)(y0 - j->band_y0) * row,
                (size_t)keep * row * sizeof(float));
    else if (keep <= 0 || y0 != j->band_y0)
        keep = 0;
    memset(j->acc + (size_t)keep * row, 0, (size_t)(j->band_rows - keep) * row * sizeof(float));
    j->band_y0 = y0;
}

/* The run window [*a, *b) along an axis of length n for the core starting at c0. Every run has
 * the same length, min(n, t + 2 (BLEND + CONTEXT)), shifted inward at the image's edges: the
 * engine keeps a memory plan (and its arena) per input shape, so ragged edge tiles would each
 * cost one (a 4 MP job held 2.9 GB that way). The window holds the core, its blend bands and
 * CONTEXT pixels (or the image edge, where the network pads with zeros as in one whole run). */
static void run_window(int c0, int t, int n, int *a, int *b)
{
    int len = t + 2 * (BLEND + CONTEXT);
    len = len > n ? n : len;
    int start = c0 - (BLEND + CONTEXT);
    start = start < 0 ? 0 : start;
    start = start + len > n ? n - len : start;
    *a = start;
    *b = start + len;
}

static int run_tile(enh_job *j, int tx, int ty, md_err *err)
{
    int W = j->src->width, H = j->src->height, t = j->t;
    int core[4] = {tx * t, ty * t, (tx + 1) * t > W ? W : (tx + 1) * t,
                   (ty + 1) * t > H ? H : (ty + 1) * t};
    int r[4];
    run_window(core[0], t, W, &r[0], &r[2]);
    run_window(core[1], t, H, &r[1], &r[3]);
    mdl_result *res = NULL;
    uint64_t t0 = md_now_ns();
    int rc = run_net(j, r[0], r[1], r[2], r[3], &res, err);
    uint64_t t1 = md_now_ns();
    if (rc == MD_OK)
        accumulate(j, mdl_result_output(res, 0)->data, r, core);
    j->net_ns += t1 - t0;
    j->stitch_ns += md_now_ns() - t1;
    mdl_result_free(res);
    return rc;
}

/* A span for tile rows [ty, ty + rows) of nx tiles each, under j->span. */
static tr_span *batch_span(enh_job *j, int ty, int rows, int nx)
{
    tr_span *b = pl__span_under(j->span, "enhance tile batch");
    tr_span_attr_int(b, "modeld.first_tile_row", ty);
    tr_span_attr_int(b, "modeld.tile_rows", rows);
    tr_span_attr_int(b, "modeld.tiles", (int64_t)rows * nx);
    j->net_ns = j->stitch_ns = 0;
    return b;
}

static int batch_end(enh_job *j, tr_span *b, int rc)
{
    tr_span_attr_double(b, "modeld.net_ms", (double)j->net_ns / 1e6);
    tr_span_attr_double(b, "modeld.stitch_ms", (double)j->stitch_ns / 1e6);
    return pl__span_end(b, rc);
}

/* All tiles, row by row; each tile row's finished output rows are flushed. Groups of
 * `per` tile rows get one span each. */
static int run_tiles(enh_job *j, const md_cancel *cancel, int *tiles, md_err *err)
{
    int W = j->src->width, H = j->src->height, t = j->t, s = j->s;
    int nx = (W + t - 1) / t, ny = (H + t - 1) / t, n = nx * ny, done = 0;
    int per = (ny + MAX_BATCH_SPANS - 1) / MAX_BATCH_SPANS;
    tr_span *b = NULL;
    for (int ty = 0; ty < ny; ty++) {
        if (ty % per == 0)
            b = batch_span(j, ty, ty + per > ny ? ny - ty : per, nx);
        int first = ty * t - BLEND < 0 ? 0 : ty * t - BLEND;
        slide_band(j, first * s);
        for (int tx = 0; tx < nx; tx++) {
            char stage[48];
            snprintf(stage, sizeof stage, "tile %d/%d", done + 1, n);
            int rc = md_cancel_check(cancel, stage, err);
            if (rc == MD_OK)
                rc = run_tile(j, tx, ty, err);
            if (rc != MD_OK)
                return batch_end(j, b, rc);
            done++;
            md_cancel_progress(cancel, 0.05 + 0.9 * done / n, stage);
        }
        int last = ty == ny - 1;
        int fin = last ? H : (ty + 1) * t - BLEND; /* rows no later tile row touches */
        uint64_t t0 = md_now_ns();
        int rc = flush_rows(j, first * s, fin * s, err);
        j->stitch_ns += md_now_ns() - t0;
        if (rc != MD_OK || last || ty % per == per - 1)
            batch_end(j, b, rc);
        if (rc != MD_OK)
            return rc;
    }
    *tiles = n;
    return MD_OK;
}

/* Catmull-Rom weights of the 4 taps around f (fractional part). */
static void cubic_w(double f, double w[4])
{
    double f2 = f * f, f3 = f2 * f;
    w[0] = -0.5 * f3 + f2 - 0.5 * f;
    w[1] = 1.5 * f3 - 2.5 * f2 + 1.0;
    w[2] = -1.5 * f3 + 2.0 * f2 + 0.5 * f;
    w[3] = 0.5 * f3 - 0.5 * f2;
}

/* The alpha plane, upscaled bicubically (the network knows only RGB). */
static void upscale_alpha(const md_image *src, md_image *dst, int s)
{
    int W = src->width, H = src->height;
    for (int oy = 0; oy < dst->height; oy++) {
        double fy = (oy + 0.5) / s - 0.5, wy[4];
        int y0 = (int)floor(fy);
        cubic_w(fy - y0, wy);
        for (int ox = 0; ox < dst->width; ox++) {
            double fx = (ox + 0.5) / s - 0.5, wx[4], acc = 0;
            int x0 = (int)floor(fx);
            cubic_w(fx - x0, wx);
            for (int i = 0; i < 4; i++) {
                int y = y0 - 1 + i < 0 ? 0 : y0 - 1 + i >= H ? H - 1 : y0 - 1 + i;
                for (int k = 0; k < 4; k++) {
                    int x = x0 - 1 + k < 0 ? 0 : x0 - 1 + k >= W ? W - 1 : x0 - 1 + k;
                    acc += wy[i] * wx[k] * src->rgba[((size_t)y * W + x) * 4 + 3];
                }
            }
            long a = lrint(acc);
            dst->rgba[((size_t)oy * dst->width + ox) * 4 + 3] = (uint8_t)(a < 0     ? 0
                                                                          : a > 255 ? 255
                                                                                    : a);
        }
    }
    dst->has_alpha = 1;
}

/* Decode, orient; *img is new. */
static int decode(pl_ctx *cx, const pl_enh_in *in, md_image **img, md_err *err)
{
    img_limits lim = cx->limits.max_width ? cx->limits : img_limits_default();
    if (!in->image || in->image_len == 0)
        return md_fail(err, MD_E_MISSING_FIELD, "file", "no image");
    size_t max = cx->upload_max_bytes ? cx->upload_max_bytes : (size_t)20 * 1000 * 1000;
    if (in->image_len > max)
        return md_fail(err, MD_E_TOO_LARGE, "file", "the image is %zu bytes, the limit %zu",
                       in->image_len, max);
    int rc = img_decode(in->image, in->image_len, &lim, img, err);
    if (rc != MD_OK)
        return rc;
    rc = img_apply_orientation(img, img_exif_orientation(in->image, in->image_len), err);
    if (rc != MD_OK) {
        img_free(*img);
        *img = NULL;
    }
    return rc;
}

static int job_setup(pl_ctx *cx, const pl_enh_in *in, pl_enh_quality q, enh_job *j, md_err *err)
{
    char name[32];
    pl_enh_model_name(q, in->scale, name, sizeof name, NULL);
    if (!cx->models)
        return md_fail(err, MD_E_MODEL_UNAVAILABLE, "quality", "no model registry");
    int rc = mdl_acquire(cx->models, name, NULL, &j->model, err);
    if (rc != MD_OK)
        return rc;
    int W = j->src->width, H = j->src->height;
    j->s = in->scale;
    j->t = tile_side(in, W, H);
    j->ow = W * j->s;
    j->dst = img_new(j->ow, H * j->s);
    j->band_rows = (j->t + 2 * BLEND) * j->s;
    if (j->band_rows > H * j->s)
        j->band_rows = H * j->s;
    j->acc = malloc((size_t)j->band_rows * (size_t)j->ow * 4 * sizeof(float));
    if (q != in->quality) { /* a face region: its own tile size for the stronger net */
        pl_enh_in fin = *in;
        fin.quality = q;
        fin.tile = 0;
        j->t = tile_side(&fin, W, H);
    }
    int side = j->t + 2 * (BLEND + CONTEXT);
    j->tile_in = malloc((size_t)side * (size_t)side * 3 * sizeof(float));
    if (!j->dst || !j->acc || !j->tile_in)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory for a %dx%d result", j->ow, H * j->s);
    j->band_y0 = -1 - j->band_rows; /* nothing kept at the first slide */
    md_cancel_init(&j->inner, cx->cancel ? cx->cancel->deadline_ns : 0);
    return MD_OK;
}

static void job_free(enh_job *j)
{
    img_free(j->dst);
    free(j->acc);
    free(j->tile_in);
    mdl_release(j->model);
}

/* ---- faces ------------------------------------------------------------------------------- */

#define MAX_FACES 16
#define DETECT_MAX_SIDE 1024 /* faces are searched on a copy at most this large */

/* An area-averaged copy of src whose longer side is at most DETECT_MAX_SIDE; *f = its scale. */
static md_image *detect_copy(const md_image *src, double *f)
{
    int big = src->width > src->height ? src->width : src->height;
    int k = (big + DETECT_MAX_SIDE - 1) / DETECT_MAX_SIDE;
    *f = k;
    md_image *d =
        img_new(src->width / k > 0 ? src->width / k : 1, src->height / k > 0 ? src->height / k : 1);
    if (!d)
        return NULL;
    for (int y = 0; y < d->height; y++)
        for (int x = 0; x < d->width; x++)
            for (int c = 0; c < 4; c++) {
                unsigned acc = 0;
                for (int v = 0; v < k; v++)
                    for (int u = 0; u < k; u++)
                        acc +=
                            src->rgba[((size_t)(y * k + v) * src->width + (size_t)(x * k + u)) * 4 +
                                      c];
                d->rgba[((size_t)y * d->width + x) * 4 + c] = (uint8_t)(acc / (unsigned)(k * k));
            }
    return d;
}

/* A copy of src's rectangle [x, x + w) x [y, y + h). NULL on OOM. */
static md_image *crop(const md_image *src, int x, int y, int w, int h)
{
    md_image *d = img_new(w, h);
    for (int r = 0; d && r < h; r++)
        memcpy(d->rgba + (size_t)r * w * 4, src->rgba + ((size_t)(y + r) * src->width + x) * 4,
               (size_t)w * 4);
    return d;
}

/* Feathered blend of face (output pixels at (ox, oy) of dst): weight 1 inside, ramping to 0 over
 * `feather` pixels at each edge; RGB only (alpha stays the bicubic plane). */
static void blend_face(md_image *dst, const md_image *face, int ox, int oy, int feather)
{
    for (int y = 0; y < face->height; y++) {
        int ey = y < face->height - 1 - y ? y : face->height - 1 - y;
        for (int x = 0; x < face->width; x++) {
            int ex = x < face->width - 1 - x ? x : face->width - 1 - x;
            double m = (double)(ex < ey ? ex : ey) / feather;
            m = m >= 1 ? 1 : m * m * (3 - 2 * m); /* smoothstep */
            uint8_t *d = dst->rgba + ((size_t)(oy + y) * dst->width + (size_t)(ox + x)) * 4;
            const uint8_t *s = face->rgba + ((size_t)y * face->width + x) * 4;
            for (int c = 0; c < 3; c++)
                d[c] = (uint8_t)lrint(d[c] * (1 - m) + s[c] * m);
        }
    }
}

/* One face box (input pixels, already clipped): through the strongest network, blended back. */
static int enhance_face(pl_ctx *cx, const pl_enh_in *in, enh_job *j, img_box b, md_err *err)
{
    enh_job fj = {0};
    md_image *part = crop(j->src, b.x, b.y, b.w, b.h);
    if (!part)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory for a face");
    fj.src = part;
    int rc = job_setup(cx, in, PL_ENH_BEST, &fj, err);
    int tiles = 0;
    if (rc == MD_OK)
        rc = run_tiles(&fj, NULL, &tiles, err);
    if (rc == MD_OK) {
        int side = fj.dst->width < fj.dst->height ? fj.dst->width : fj.dst->height;
        blend_face(j->dst, fj.dst, b.x * j->s, b.y * j->s, side / 5 > 1 ? side / 5 : 1);
    }
    job_free(&fj);
    img_free(part);
    return rc;
}

/* Detect faces on the (oriented) input; each one, widened by 30 % a side, goes through the
 * strongest network (unless that already did the whole image) and is feathered into the result. */
static int enhance_faces(pl_ctx *cx, const pl_enh_in *in, enh_job *j, int *found, md_err *err)
{
    md_cancel_progress(cx->cancel, 0.95, "faces");
    double f = 1;
    md_image *small = detect_copy(j->src, &f);
    if (!small)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory detecting faces");
    img_box box[MAX_FACES];
    int n = 0, shortest = small->width < small->height ? small->width : small->height;
    /* faces under 1/12 of the short side gain little and are the detector's usual false hits */
    int rc = img_faces_detect(cascade(), small, shortest / 12 > 24 ? shortest / 12 : 24, box,
                              MAX_FACES, &n, err);
    img_free(small);
    *found = rc == MD_OK ? n : 0;
    for (int i = 0; rc == MD_OK && i < n && in->quality != PL_ENH_BEST; i++) {
        int W = j->src->width, H = j->src->height;
        int x0 = (int)((box[i].x - 0.3 * box[i].w) * f),
            y0 = (int)((box[i].y - 0.3 * box[i].h) * f);
        int x1 = (int)((box[i].x + 1.3 * box[i].w) * f),
            y1 = (int)((box[i].y + 1.3 * box[i].h) * f);
        x0 = x0 < 0 ? 0 : x0, y0 = y0 < 0 ? 0 : y0, x1 = x1 > W ? W : x1, y1 = y1 > H ? H : y1;
        rc = md_cancel_check(cx->cancel, "faces", err);
        if (rc == MD_OK && x1 - x0 >= 8 && y1 - y0 >= 8)
            rc = enhance_face(cx, in, j, (img_box){x0, y0, x1 - x0, y1 - y0, 0}, err);
    }
    return rc;
}

static int check_size(const md_image *img, int s, md_err *err)
{
    uint64_t ow = (uint64_t)img->width * s, oh = (uint64_t)img->height * s;
    if (ow * oh > PL_ENH_MAX_OUT_PIXELS)
        return md_fail(err, MD_E_IMAGE_TOO_LARGE, "upscale",
                       "the result would be %llux%llu, more than %llu pixels",
                       (unsigned long long)ow, (unsigned long long)oh,
                       (unsigned long long)PL_ENH_MAX_OUT_PIXELS);
    return MD_OK;
}

/* Decode and orient under the span "enhance decode". */
static int decode_stage(pl_ctx *cx, const pl_enh_in *in, md_image **img, md_err *err)
{
    tr_span *span = pl__span(cx, "enhance decode");
    int rc = decode(cx, in, img, err);
    if (rc == MD_OK) {
        tr_span_attr_int(span, "modeld.width", (*img)->width);
        tr_span_attr_int(span, "modeld.height", (*img)->height);
    }
    return pl__span_end(span, rc);
}

/* The network over every tile under the span "enhance tiles" (its batches under it). */
static int tiles_stage(pl_ctx *cx, enh_job *j, int *tiles, md_err *err)
{
    j->span = pl__span(cx, "enhance tiles");
    tr_span_attr_str(j->span, "modeld.model", mdl_version_name(j->model));
    tr_span_attr_str(j->span, "modeld.version", mdl_version_id(j->model));
    tr_span_attr_int(j->span, "modeld.tile_size", j->t);
    int rc = run_tiles(j, cx->cancel, tiles, err);
    tr_span_attr_int(j->span, "modeld.tiles", *tiles);
    rc = pl__span_end(j->span, rc);
    j->span = NULL;
    return rc;
}

/* The faces, the alpha plane and the encoding, each under its own span. */
static int finish_stages(pl_ctx *cx, const pl_enh_in *in, enh_job *j, pl_enh_out *out,
                         md_err *err)
{
    int rc = MD_OK;
    if (in->face_enhance) {
        tr_span *span = pl__span(cx, "enhance faces");
        rc = enhance_faces(cx, in, j, &out->faces_found, err);
        tr_span_attr_int(span, "modeld.faces", out->faces_found);
        pl__span_end(span, rc);
    }
    if (rc == MD_OK && j->src->has_alpha) {
        tr_span *span = pl__span(cx, "enhance alpha");
        upscale_alpha(j->src, j->dst, j->s);
        pl__span_end(span, MD_OK);
    }
    if (rc == MD_OK)
        rc = md_cancel_check(cx->cancel, "encode", err);
    if (rc != MD_OK)
        return rc;
    md_cancel_progress(cx->cancel, 0.95, "encode");
    tr_span *span = pl__span(cx, "enhance encode");
    tr_span_attr_str(span, "modeld.format", img_format_name(in->out_format));
    rc = img_encode(j->dst, in->out_format, in->jpeg_quality, &out->image, err);
    tr_span_attr_int(span, "modeld.bytes", (int64_t)out->image.len);
    return pl__span_end(span, rc);
}

static int enhance(pl_ctx *cx, const pl_enh_in *in, pl_enh_out *out, md_err *err);

/* The pipeline's span around the work; its stages are spans under it (spans.c). */
int pl_enhance(pl_ctx *cx, const pl_enh_in *in, pl_enh_out *out, md_err *err)
{
    tr_span *span = pl__span(cx, "pipeline enhance");
    pl_ctx inner = pl__ctx_under(cx, span);
    char model[32] = "";
    pl_enh_model_name(in->quality, in->scale, model, sizeof model, NULL);
    int rc = enhance(&inner, in, out, err);
    tr_span_attr_str(span, "modeld.model", model);
    tr_span_attr_str(span, "modeld.quality", pl_enh_quality_name(in->quality));
    tr_span_attr_int(span, "modeld.scale", in->scale);
    tr_span_attr_int(span, "modeld.tiles", out->tiles);
    tr_span_attr_int(span, "modeld.width", out->width);
    tr_span_attr_int(span, "modeld.height", out->height);
    return pl__span_end(span, rc);
}

static int enhance(pl_ctx *cx, const pl_enh_in *in, pl_enh_out *out, md_err *err)
{
    memset(out, 0, sizeof *out);
    md_buf_init(&out->image, RESULT_MAX);
    uint64_t t0 = md_now_ns();
    enh_job j = {0};
    md_image *img = NULL;
    int rc = check_in(in, err);
    if (rc == MD_OK)
        rc = md_cancel_check(cx->cancel, "decode", err);
    if (rc == MD_OK) {
        md_cancel_progress(cx->cancel, 0.0, "decode");
        rc = decode_stage(cx, in, &img, err);
    }
    if (rc == MD_OK)
        rc = check_size(img, in->scale, err);
    if (rc != MD_OK)
        goto out;
    j.src = img;
    rc = cx->models ? models_ready(cx, in, err)
                    : md_fail(err, MD_E_MODEL_UNAVAILABLE, "quality", "no model registry");
    if (rc == MD_OK)
        rc = job_setup(cx, in, in->quality, &j, err);
    if (rc == MD_OK)
        rc = tiles_stage(cx, &j, &out->tiles, err);
    if (rc == MD_OK)
        rc = finish_stages(cx, in, &j, out, err);
    if (rc != MD_OK)
        goto out;
    out->width = j.dst->width;
    out->height = j.dst->height;
    out->format = in->out_format;
    out->tile_size = j.t;
    out->total_ms = (double)(md_now_ns() - t0) / 1e6;
    md_cancel_progress(cx->cancel, 1.0, "done");
out:
    if (rc != MD_OK)
        md_buf_free(&out->image);
    job_free(&j);
    img_free(img);
    return rc;
}

void pl_enh_out_free(pl_enh_out *out)
{
    if (out)
        md_buf_free(&out->image);
}
