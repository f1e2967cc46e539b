/* vec.h - the vectorizer: raster image in, SVG out. Pure library: no HTTP, no storage.
 *
 * The pipeline is  md_image --vec_trace--> vec_doc --vec_svg_write--> SVG bytes
 *                                            \--vec_render--> raster --vec_ssim--> quality
 * vec_convert() runs all of it and is what the CLI and the API call (one code path).
 *
 * Parameters carry VTracer's names, meanings, defaults and ranges so that VTracer users feel at
 * home; vec_params_set() is the one place that parses and range-checks them by name.
 */
#ifndef MD_VECTORIZE_VEC_H
#define MD_VECTORIZE_VEC_H

#include "base/buf.h"
#include "base/cancel.h"
#include "base/err.h"
#include "image/image.h"

#include <stddef.h>
#include <stdint.h>

typedef enum vec_colormode { VEC_COLOR = 0, VEC_BINARY } vec_colormode;
typedef enum vec_hierarchical { VEC_STACKED = 0, VEC_CUTOUT } vec_hierarchical;
typedef enum vec_mode { VEC_SPLINE = 0, VEC_POLYGON, VEC_PIXEL } vec_mode;

typedef struct vec_params {
    vec_colormode colormode;      /* "color" | "binary"            default color   */
    vec_hierarchical hierarchical;/* "stacked" | "cutout"          default stacked */
    vec_mode mode;                /* "spline" | "polygon" | "pixel" default spline */
    int filter_speckle;           /* 0..128,   default 4   (px; discard patches smaller than n*n) */
    int color_precision;          /* 1..8,     default 6   (significant bits per channel) */
    int layer_difference;         /* 0..255,   default 16  (colour difference between layers) */
    int corner_threshold;         /* 0..180,   default 60  (degrees) */
    double length_threshold;      /* 3.5..10,  default 4.0 */
    int max_iterations;           /* 1..20,    default 10 */
    int splice_threshold;         /* 0..180,   default 45  (degrees) */
    int path_precision;           /* 0..8,     default 2   (decimal places) */
    /* modeld extensions (not in VTracer) */
    int gradients;                /* 0/1, default 1: emit <linearGradient>/<radialGradient> */
    uint8_t background[3];        /* composite semi-transparent input on this when composite=1 */
    int composite;                /* 0/1, default 0: keep alpha (transparent areas get no shape) */
    int svgz;                     /* 0/1, default 0: gzip the SVG */
} vec_params;

/* VTracer's defaults plus ours. */
void vec_params_default(vec_params *p);
/* Named presets: "default", "quality", "fast", "bw" (binary). MD_E_INVALID_PARAM for others. */
int vec_params_preset(const char *name, vec_params *p, md_err *err);
/* Set one parameter from text by its VTracer name; numbers are plain decimals ("8", "3.5": no
 * hex, exponent, sign "+" or spaces). MD_E_INVALID_PARAM naming the parameter and
 * its range for a bad value, MD_E_INVALID_PARAM for an unknown name. */
int vec_params_set(vec_params *p, const char *name, const char *value, md_err *err);
/* Check every field is in range (for params filled in by code). */
int vec_params_validate(const vec_params *p, md_err *err);
/* Names of all settable parameters, NULL-terminated (for --help and the API). Static storage. */
const char *const *vec_params_names(void);
/* Write the parameters as a JSON object (no enclosing whitespace) into out. */
int vec_params_to_json(const vec_params *p, md_buf *out);

/* ---- parameters as numbers (the AI models' encoding) ------------------------------------- */

/* The 10 encoded parameters, in this order, in raw units (no scaling): filter_speckle,
 * color_precision, layer_difference, corner_threshold, length_threshold, max_iterations,
 * splice_threshold, path_precision, hierarchical_cutout (0/1), mode_polygon (0/1).
 * training/vectorize/params.py mirrors this encoding. */
#define VEC_N_PARAM_ENC 10
/* Names of the encoded parameters in order, NULL-terminated. Static storage. */
const char *const *vec_params_enc_names(void);
/* p's tracing parameters as the 10 numbers above. */
void vec_params_encode(const vec_params *p, float out[VEC_N_PARAM_ENC]);
/* Numbers (e.g. a model's output) back to parameters: integers are rounded, every value is
 * clamped into its range, the two flags are 1 at >= 0.5, a NaN takes the default's value.
 * The fields the encoding leaves out are the defaults (colour mode, gradients on, no
 * compositing, plain SVG). Always valid for vec_params_validate. */
void vec_params_decode(const float *in, vec_params *out);

/* ---- image features (what the AI models read) ------------------------------------------- */

/* Number of features vec_features() writes. */
#define VEC_N_FEATURES 26
/* Feature names in output order, snake_case, NULL-terminated; the order is stable and only
 * grows at the end (a model records the list it was trained on). Static storage. */
const char *const *vec_feature_names(void);
/* Compute the VEC_N_FEATURES features of img into out (caller-allocated). Deterministic,
 * finite values; large images are sampled on a grid of at most 256 x 256 first.
 * MD_E_INVALID_PARAM for an empty image, MD_E_NOMEM. */
int vec_features(const md_image *img, float *out, md_err *err);
/* The side of vec_features()'s sampling grid: the one the shipped models were trained on. */
#define VEC_FEATURES_SIDE 256
/* vec_features on a sampling grid of at most side x side (16..1024): a coarser grid is faster
 * and misses thin strokes, a finer one sees them at the cost of time (analysis_depth quick /
 * detailed). MD_E_INVALID_PARAM naming "analysis_side" outside 16..1024. */
int vec_features_grid(const md_image *img, int side, float *out, md_err *err);

/* ---- the traced document ---------------------------------------------------------------- */

typedef enum vec_seg_kind { VEC_SEG_MOVE, VEC_SEG_LINE, VEC_SEG_CUBIC, VEC_SEG_CLOSE } vec_seg_kind;

/* One path segment in image pixel coordinates (0,0 = top-left corner of the top-left pixel).
 * MOVE/LINE use pt[0]; CUBIC uses pt[0], pt[1] (control points) and pt[2] (end); CLOSE none. */
typedef struct vec_seg {
    vec_seg_kind kind;
    float pt[3][2];
} vec_seg;

typedef enum vec_paint_kind { VEC_PAINT_SOLID, VEC_PAINT_LINEAR, VEC_PAINT_RADIAL } vec_paint_kind;

typedef struct vec_stop {
    float offset;         /* 0..1 */
    uint8_t rgba[4];
} vec_stop;

#define VEC_MAX_STOPS 8

typedef struct vec_paint {
    vec_paint_kind kind;
    uint8_t rgba[4];      /* SOLID colour (alpha 255 = opaque) */
    float x1, y1, x2, y2; /* LINEAR: from (x1,y1) to (x2,y2); RADIAL: centre (x1,y1), radius x2 */
    int nstops;
    vec_stop stops[VEC_MAX_STOPS];
} vec_paint;

typedef struct vec_path {
    vec_paint fill;
    int evenodd;          /* fill rule: 1 = evenodd (holes as sub-paths), 0 = nonzero */
    size_t nseg;
    vec_seg *segs;
} vec_path;

/* Paths are painted in order, first = bottom. Owned by the doc. */
typedef struct vec_doc {
    int width;
    int height;
    size_t npaths;
    vec_path *paths;
} vec_doc;

void vec_doc_free(vec_doc *d);

typedef struct vec_timing {
    double decode_ms, cluster_ms, trace_ms, fit_ms, svg_ms, render_ms, ssim_ms, total_ms;
} vec_timing;

/* Trace an image. *out is new (vec_doc_free). timing may be NULL. */
int vec_trace(const md_image *img, const vec_params *p, vec_doc **out, vec_timing *timing,
              md_err *err);

/* Serialise as SVG 1.1 (viewBox, width, height; relative path commands at path_precision
 * decimals). Deterministic. Appends to out (gzip-compressed when p->svgz). */
int vec_svg_write(const vec_doc *d, const vec_params *p, md_buf *out, md_err *err);

/* ---- quality ------------------------------------------------------------------------------ */

/* Rasterise d with cairo at its own size, composited on white; rgb is width*height*3 bytes
 * (caller-allocated). */
int vec_render(const vec_doc *d, uint8_t *rgb, md_err *err);

typedef struct vec_ssim_result {
    double rgb;   /* mean of the SSIM over R, G and B */
    double luma;  /* SSIM on luma (ITU-R BT.601 weights) */
} vec_ssim_result;

/* SSIM (Wang et al.: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, data range 255)
 * between two RGB images of the same size; matches scikit-image's structural_similarity with
 * gaussian_weights=True, use_sample_covariance=False. */
int vec_ssim(const uint8_t *rgb_a, const uint8_t *rgb_b, int width, int height,
             vec_ssim_result *out, md_err *err);

/* ---- one call for the CLI and the API ----------------------------------------------------- */

typedef struct vec_result {
    char *svg;            /* owned; NUL-terminated unless svgz */
    size_t svg_bytes;
    size_t path_count;
    vec_ssim_result ssim; /* of our rendering against the source composited on white */
    vec_timing timing;
    vec_params params;    /* the parameters actually used */
} vec_result;

/* What many conversions of one image with different parameters share (the AI search): the
 * region stage (clusters, gradients, contours) of the last few region settings, the SSIM of
 * documents already measured, the source on white. Results are the same with or without it;
 * only the time differs. One image per cache (another image empties it); one conversion at a
 * time. Images above 4 MP are not cached. */
typedef struct vec_cache vec_cache;
/* *out is new (vec_cache_free); MD_E_NOMEM. */
int vec_cache_new(vec_cache **out);
void vec_cache_free(vec_cache *c); /* NULL: no-op */
typedef struct vec_cache_stats {
    int stage_hits, stage_misses; /* conversions that reused / computed the region stage */
    int ssim_hits;                /* measurements answered from an equal document */
} vec_cache_stats;
vec_cache_stats vec_cache_get_stats(const vec_cache *c);

typedef struct vec_convert_opts {
    int measure_quality;  /* 1: render and compute SSIM (default in CLI and API) */
    int rgb_only;         /* 1: skip the luma SSIM (ssim.luma = -1): a quarter of the SSIM time,
                           * for callers that read only ssim.rgb (the AI search) */
    /* Deadline / cancel / progress, borrowed for the call; NULL = never stops. Checked between
     * stages (cluster, merge, gradients, contours, fit, svg, render, ssim) and inside the long
     * loops (every 64 regions while fitting, every 64 rows of SSIM); progress is reported at
     * the same points as a fraction of the whole conversion. */
    const md_cancel *cancel;
    vec_cache *cache;     /* borrowed; NULL = none (see vec_cache) */
    /* > 0: skip rendering and SSIM when the SVG is larger than this (ssim.rgb = ssim.luma = -1):
     * the AI search cannot keep an SVG past its size budget once it holds one within it. */
    size_t measure_max_bytes;
} vec_convert_opts;

/* Trace, write SVG and (optionally) measure. *out is new (vec_result_free). o may be NULL.
 * An SVG that o->measure_max_bytes left unmeasured has ssim.rgb = ssim.luma = -1.
 * MD_E_TIMEOUT / MD_E_CANCELLED when o->cancel stopped it (err names the stage). */
int vec_convert(const md_image *img, const vec_params *p, const vec_convert_opts *o,
                vec_result **out, md_err *err);
void vec_result_free(vec_result *r);

#endif
