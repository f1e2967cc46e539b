/* vec_int.h - internals of the tracer shared by its stages (not part of the public API).
 *
 * Stages, in order (each file owns one):
 *   cluster.c   pixels -> labelled regions (quantise, connect, merge hierarchically, speckles)
 *   gradient.c  groups of softly-bordered regions -> one region with a linear/radial fill
 *   contour.c   label map -> closed boundary loops on the pixel-corner grid, holes included
 *   simplify.c  loop -> polygon (Douglas-Peucker) and its corners / splice points
 *   fit.c       points between corners -> cubic Béziers within an error bound (Schneider)
 *   trace.c     runs the stages and builds the vec_doc (layering, binary mode, pixel mode)
 *   svg.c       vec_doc -> SVG text (or SVGZ)
 * Coordinates are in pixels with (0,0) the top-left corner of the top-left pixel.
 */
#ifndef MD_VECTORIZE_VEC_INT_H
#define MD_VECTORIZE_VEC_INT_H

#include "base/cancel.h"
#include "vectorize/vec.h"

#include <stddef.h>
#include <stdint.h>

/* Alpha below this counts as transparent (no shape). Pixels above it that are not opaque keep
 * their coverage: a region of them is painted in its straight colour with its mean opacity,
 * which composites exactly like the source and never becomes an opaque halo. */
#define VEC__ALPHA_CUT 32
/* Regions whose mean alpha reaches this are painted opaque. */
#define VEC__OPAQUE 250

/* One final region: a 4-connected set of pixels painted with one fill. */
typedef struct vec__region {
    int64_t area;
    double sum[3];          /* colour sums (straight RGB composited on white) */
    double asum;            /* alpha sum (255 per opaque pixel) */
    double psum[3];         /* premultiplied colour sums (colour * alpha / 255) */
    int x0, y0, x1, y1;     /* bounding box, inclusive */
    int transparent;        /* 1: no shape is emitted for it */
    int gradient;           /* >= 0: index of its fitted gradient in vec__clusters.grad */
} vec__region;

/* 1 when the region is painted opaque (its mean alpha reaches VEC__OPAQUE). */
static inline int vec__region_opaque(const vec__region *r)
{
    return r->asum >= VEC__OPAQUE * (double)r->area;
}

/* The label map of an image and its regions. */
typedef struct vec__clusters {
    int w, h;
    int32_t *label;         /* w*h region indices, owned */
    uint8_t *rgb;           /* w*h*3 colours composited on white, owned */
    uint8_t *trans;         /* w*h flags: 1 = transparent pixel, owned */
    uint8_t *alpha;         /* w*h alpha values (255 when compositing), owned */
    int n;                  /* number of regions */
    vec__region *reg;       /* n regions, owned */
    int ngrad;
    vec_paint *grad;        /* gradient fills of regions, owned */
} vec__clusters;

/* Colour mode: quantise, connect, merge and filter speckles. On success *c is filled (new;
 * release with vec__clusters_free). */
int vec__cluster_color(const md_image *img, const vec_params *p, const md_cancel *cancel,
                       vec__clusters *c, md_err *err);
/* Binary mode: dark pixels (luma < 128 on white) against the rest, speckles flipped. */
int vec__cluster_binary(const md_image *img, const vec_params *p, const md_cancel *cancel,
                        vec__clusters *c, md_err *err);
/* Compact the labels (root -> 0..n-1) and recompute every region's statistics.
 * label holds arbitrary non-negative ids below max_id. */
int vec__clusters_relabel(vec__clusters *c, int max_id);
/* Merge region r into region to[r] for every r (to[to[r]] == to[r]; to is used as scratch),
 * compact the labels as vec__clusters_relabel does, and give each merged region the sums of
 * its members' statistics. newid (c->n entries before the call, or NULL) receives the new
 * index of every target region, -1 for the merged-away ones. */
int vec__clusters_merge(vec__clusters *c, int32_t *to, int32_t *newid);
void vec__clusters_free(vec__clusters *c);

/* The distinct pairs of 4-adjacent regions, as (lo << 32 | hi), sorted ascending. *out is new
 * (free). */
int vec__region_pairs(const vec__clusters *c, uint64_t **out, size_t *nout);

/* Detect gradient regions among c's regions and merge each into one region whose paint is a
 * LINEAR or RADIAL gradient. Returns MD_OK or MD_E_NOMEM. */
int vec__gradients(vec__clusters *c);

/* ---- contours --------------------------------------------------------------------------- */

/* A closed boundary on the pixel-corner grid: n unit steps, vertex i = (pts[2i], pts[2i+1]).
 * Outer loops run clockwise on screen (region on the right-hand side when y points down),
 * holes counter-clockwise, so the nonzero fill rule draws holes correctly. */
typedef struct vec__loop {
    int region;
    int hole;
    int n;
    int32_t *pts;           /* borrowed from vec__loops.pts */
    int x0, y0, x1, y1;     /* bounding box of the vertices */
} vec__loop;

typedef struct vec__loops {
    int n, cap;
    vec__loop *loop;        /* owned */
    int32_t *pts;           /* owned storage for every loop's vertices */
    size_t npts, ptscap;
} vec__loops;

/* Trace every boundary of every non-transparent region. *out is new (vec__loops_free). */
int vec__contours(const vec__clusters *c, vec__loops *out);
void vec__loops_free(vec__loops *l);
/* 1 when point (px,py) (not on the grid lines) lies inside the loop (even-odd crossing). */
int vec__loop_contains(const vec__loop *l, double px, double py);

/* ---- simplification and fitting --------------------------------------------------------- */

typedef struct vec__pt {
    double x, y;
} vec__pt;

/* Point flags produced by vec__polygon. */
#define VEC__PF_KEEP 1      /* vertex of the simplified polygon */
#define VEC__PF_CORNER 2    /* sharp corner: tangent breaks */
#define VEC__PF_SPLICE 4    /* splice: curve split here, tangent continuous */

/* Resample a closed pixel loop of n vertices into points on the edge it samples: the middle
 * of every staircase run (every 2 px on long runs) and the vertices that are real corners.
 * Writes at most 2n points to out; returns the count, -1 when out of memory. */
int vec__edge_samples(const int32_t *pts, int n, vec__pt *out);
/* Closed-loop Douglas-Peucker with tolerance tol: sets VEC__PF_KEEP in flags[i] for kept
 * points, then classifies kept points by their turning angle (degrees) into corners
 * (>= corner_deg) and splices (>= splice_deg). Returns the number of kept points. */
int vec__polygon(const vec__pt *p, int n, double tol, double corner_deg, double splice_deg,
                 uint8_t *flags);
/* A growing list of segments for one path. */
typedef struct vec__segs {
    vec_seg *s;             /* owned until stolen into a vec_path */
    size_t n, cap;
} vec__segs;

int vec__segs_push(vec__segs *v, vec_seg_kind k, const double *pts, int npts);

/* Fit cubic Béziers to p[0..n-1] (an open chain, n >= 2) with end tangents t1 (leaving p[0])
 * and t2 (arriving at p[n-1], pointing backwards), each within max error tol of the points;
 * appends CUBIC or LINE segments (not the starting point) to out. */
int vec__fit_cubic(const vec__pt *p, int n, vec__pt t1, vec__pt t2, double tol, int max_iter,
                   vec__segs *out);
/* Evaluate a cubic Bézier at t. */
vec__pt vec__bezier(const vec__pt *b, double t);

/* ---- documents --------------------------------------------------------------------------- */

/* Append a path with the given fill, stealing segs->s (segs is left empty). */
int vec__doc_add(vec_doc *d, size_t *cap, const vec_paint *fill, vec__segs *segs);

/* Length of (x, y). libm's hypot guards against overflow, which pixel coordinates never need,
 * and costs several times more. */
static inline double vec__hypot(double x, double y)
{
    return __builtin_sqrt(x * x + y * y);
}

/* ---- vec_cache (cache.c) ------------------------------------------------------------------ */

#define VEC__CACHE_SLOTS 4                  /* region stages kept */
#define VEC__CACHE_MEMO 64                  /* measured documents kept */
#define VEC__CACHE_MAX_PIXELS (4000 * 1000) /* larger images are not cached */

/* The parameters the region stage depends on (compared with memcmp: build with
 * vec__stage_key_of, which zeroes the padding). */
typedef struct vec__stage_key {
    int colormode, color_precision, layer_difference, filter_speckle, gradients, composite;
    uint8_t background[3];
} vec__stage_key;

vec__stage_key vec__stage_key_of(const vec_params *p);
/* Serve img from now on (empties the cache when it served another image). */
void vec__cache_bind(vec_cache *c, const md_image *img);
/* 1 and the stage for key k (borrowed from the cache until the next call with c), or 0. c may
 * be NULL (0). */
int vec__cache_stage(vec_cache *c, const vec__stage_key *k, const vec__clusters **cl,
                     const vec__loops **L);
/* Keep a computed stage: 1 when kept (*cl and *L are stolen and left empty; *kept_cl and
 * *kept_L point at them in the cache, borrowed as vec__cache_stage's), 0 when the cache is NULL
 * or the image too large (the caller still owns and frees them; the kept_ pointers unchanged). */
int vec__cache_keep_stage(vec_cache *c, const vec__stage_key *k, vec__clusters *cl, vec__loops *L,
                          const vec__clusters **kept_cl, const vec__loops **kept_L);
/* A 64-bit hash of every field of d that its rendering reads (never 0). */
uint64_t vec__doc_hash(const vec_doc *d);
/* 1 and *out when a document of this hash was measured (with luma unless rgb_only). */
int vec__cache_ssim(vec_cache *c, uint64_t hash, int rgb_only, vec_ssim_result *out);
void vec__cache_keep_ssim(vec_cache *c, uint64_t hash, int rgb_only, const vec_ssim_result *r);
/* The source on white (borrowed), or NULL when not kept yet. */
const uint8_t *vec__cache_source(vec_cache *c);
/* Keep *src (stolen: *src becomes NULL) unless the cache is NULL, full or the image too large. */
void vec__cache_keep_source(vec_cache *c, uint8_t **src);

/* ---- cancellable forms of the public stages (vec_convert passes its token; the public
 * functions pass NULL). On MD_E_TIMEOUT / MD_E_CANCELLED err names the stage that stopped. ---- */

/* vec_trace, checking cancel between stages and every VEC__CHECK_EVERY regions while fitting;
 * progress goes from 0 to 0.8 of the whole conversion. */
int vec__trace(const md_image *img, const vec_params *p, const md_cancel *cancel, vec_doc **out,
               vec_timing *timing, md_err *err);
/* vec__trace reusing and filling cache's region stages (cache may be NULL; it must be bound to
 * the image the caller converts, whose composited copy img may be). */
int vec__trace_cached(const md_image *img, const vec_params *p, const md_cancel *cancel,
                      vec_cache *cache, vec_doc **out, vec_timing *timing, md_err *err);
/* vec_ssim, checking cancel every 64 rows of each channel; rgb_only skips the luma pass
 * (out->luma = -1). */
int vec__ssim(const uint8_t *rgb_a, const uint8_t *rgb_b, int width, int height,
              const md_cancel *cancel, int rgb_only, vec_ssim_result *out, md_err *err);
#define VEC__CHECK_EVERY 64

/* Milliseconds between two md_now_ns() readings. */
double vec__ms(uint64_t t0, uint64_t t1);

#endif
