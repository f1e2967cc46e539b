/* pool.c - MaxPool / AveragePool (with Indices, dilations, padding and ceil_mode) and the global
 * poolings, as direct loops.
 *
 * Pooling is memory-bound and cheap next to the convolutions around it, so plain loops are used;
 * what matters is that the window bounds are clipped once per output row/position instead of
 * being tested per element, so the inner loop is a straight max or sum. Every ONNX rule about
 * what a window counts lives here:
 *   - max ignores padding; a window with no real element yields -inf (cannot happen with valid
 *     ONNX pads, which are smaller than the kernel);
 *   - count_include_pad=0 divides by the real elements in the window;
 *   - count_include_pad=1 divides by the window positions inside [-pad_begin, in + pad_end), so
 *     the extra positions added by ceil_mode are not counted (onnxruntime's rule).
 * 1-D and 2-D poolings run as 3-D ones whose leading dims are 1.
 */
#include <math.h>

#include "onnx/kernels/kernels.h"

#define KMAX_DIM ((int64_t)1 << 30)

int onnx__pool_check(const onnx_kpool_geom *g, md_err *e)
{
    if (g->nsp < 1 || g->nsp > ONNX_KMAX_SPATIAL)
        return md_fail(e, MD_E_UNSUPPORTED, "X", "%d spatial dims (1 to %d supported)", g->nsp,
                       ONNX_KMAX_SPATIAL);
    if (g->n < 0 || g->n > KMAX_DIM || g->c < 0 || g->c > KMAX_DIM)
        return md_fail(e, MD_E_INVALID_PARAM, "X", "batch and channels must be in 0..2^30");
    for (int i = 0; i < g->nsp; i++) {
        if (g->in[i] < 1 || g->in[i] > KMAX_DIM)
            return md_fail(e, MD_E_INVALID_PARAM, "X", "spatial sizes must be in 1..2^30");
        if (g->k[i] < 1 || g->k[i] > KMAX_DIM)
            return md_fail(e, MD_E_INVALID_PARAM, "kernel_shape", "must be in 1..2^30");
        if (g->stride[i] < 1 || g->stride[i] > KMAX_DIM)
            return md_fail(e, MD_E_INVALID_PARAM, "strides", "must be >= 1");
        if (g->dil[i] < 1 || g->dil[i] > KMAX_DIM)
            return md_fail(e, MD_E_INVALID_PARAM, "dilations", "must be >= 1");
        if (g->pad_begin[i] < 0 || g->pad_end[i] < 0 || g->pad_begin[i] > KMAX_DIM ||
            g->pad_end[i] > KMAX_DIM)
            return md_fail(e, MD_E_INVALID_PARAM, "pads", "must be in 0..2^30");
        if (g->out[i] < 1 || g->out[i] > KMAX_DIM ||
            (g->out[i] - 1) * g->stride[i] > g->in[i] + g->pad_begin[i] + g->pad_end[i])
            return md_fail(e, MD_E_INVALID_PARAM, "kernel_shape",
                           "output size %lld of spatial dim %d does not fit the input",
                           (long long)g->out[i], i);
    }
    return MD_OK;
}

/* Window of output position o along one dim: first tap index j0 and end j1 over the taps that
 * fall inside [lo, hi) of the input, where taps sit at o*s - pb + j*d. */
static void taps(const onnx_k3 *t, int dim, int64_t o, int64_t lo, int64_t hi, int64_t *j0,
                 int64_t *j1)
{
    int64_t start = o * t->s[dim] - t->pb[dim], d = t->d[dim];
    int64_t a = start >= lo ? 0 : (lo - start + d - 1) / d;
    int64_t b = start >= hi ? 0 : (hi - start + d - 1) / d;
    *j0 = a;
    *j1 = b < t->k[dim] ? b : t->k[dim];
}

/* Max over one window; *at gets the input offset (within the plane) of the max. */
static float window_max(const onnx_k3 *t, const float *x, const int64_t j0[3], const int64_t j1[3],
                        const int64_t st[3], int64_t *at)
{
    float m = -INFINITY;
    int64_t best = -1;
    for (int64_t a = j0[0]; a < j1[0]; a++)
        for (int64_t b = j0[1]; b < j1[1]; b++) {
            int64_t row = ((st[0] + a * t->d[0]) * t->in[1] + st[1] + b * t->d[1]) * t->in[2];
            for (int64_t c = j0[2]; c < j1[2]; c++) {
                int64_t p = row + st[2] + c * t->d[2];
                /* the first max wins ties, as in onnxruntime; NaN never wins */
                if (x[p] > m || best < 0) {
                    m = x[p];
                    best = p;
                }
            }
        }
    *at = best;
    return m;
}

static double window_sum(const onnx_k3 *t, const float *x, const int64_t j0[3], const int64_t j1[3],
                         const int64_t st[3])
{
    double s = 0.0;
    for (int64_t a = j0[0]; a < j1[0]; a++)
        for (int64_t b = j0[1]; b < j1[1]; b++) {
            const float *row =
                x + ((st[0] + a * t->d[0]) * t->in[1] + st[1] + b * t->d[1]) * t->in[2] + st[2];
            for (int64_t c = j0[2]; c < j1[2]; c++)
                s += row[c * t->d[2]];
        }
    return s;
}

/* Index of plane offset p in ONNX's column-major storage order (spatial dims reversed). */
static int64_t col_major_index(const onnx_k3 *t, int64_t p)
{
    int64_t i0 = p / (t->in[1] * t->in[2]), i1 = p / t->in[2] % t->in[1], i2 = p % t->in[2];
    return (i2 * t->in[1] + i1) * t->in[0] + i0;
}

/* One output value: max (with index) or average of the window at o[]. */
static float pool_one(const onnx_kpool_geom *g, const onnx_k3 *t, const float *x,
                      const int64_t o[3], int64_t *at)
{
    int64_t j0[3], j1[3], st[3], cnt = 1;
    for (int i = 0; i < 3; i++) {
        taps(t, i, o[i], 0, t->in[i], &j0[i], &j1[i]);
        st[i] = o[i] * t->s[i] - t->pb[i];
        int64_t a, b;
        if (g->kind == ONNX_KPOOL_AVG_INCLUDE_PAD)
            taps(t, i, o[i], -t->pb[i], t->in[i] + t->pe[i], &a, &b);
        else {
            a = j0[i];
            b = j1[i];
        }
        cnt *= b > a ? b - a : 0;
    }
    if (g->kind == ONNX_KPOOL_MAX)
        return window_max(t, x, j0, j1, st, at);
    double s = window_sum(t, x, j0, j1, st);
    return cnt > 0 ? (float)(s / (double)cnt) : 0.0f;
}

/* Fast path for the common case (no dilation, no Indices, up to 2 spatial dims): window bounds
 * are clipped with compares only, no divisions, and max and average have their own loops. */
/* Max of each window of one output row. The window rows are first reduced column by column
 * into col[] (contiguous, vectorised), then each output takes the max over its k columns. */
static void max_row(const onnx_k3 *t, const float *const *rows, int nrows, float *col, float *y)
{
    int64_t W = t->in[2], s = t->s[2], pb = t->pb[2], k = t->k[2];
    for (int64_t w = 0; w < W; w++)
        col[w] = nrows > 0 ? rows[0][w] : -INFINITY;
    for (int r = 1; r < nrows; r++) {
        const float *row = rows[r];
#pragma omp simd
        for (int64_t w = 0; w < W; w++)
            col[w] = row[w] > col[w] ? row[w] : col[w];
    }
    for (int64_t ow = 0; ow < t->out[2]; ow++) {
        int64_t w0 = ow * s - pb, w1 = w0 + k;
        w0 = w0 < 0 ? 0 : w0;
        w1 = w1 > W ? W : w1;
        float m = -INFINITY;
        for (int64_t w = w0; w < w1; w++)
            m = col[w] > m ? col[w] : m;
        y[ow] = m;
    }
}

static void avg_row(const onnx_kpool_geom *g, const onnx_k3 *t, const float *const *rows, int nrows,
                    int64_t hcount, float *y)
{
    int64_t W = t->in[2], s = t->s[2], pb = t->pb[2], k = t->k[2];
    for (int64_t ow = 0; ow < t->out[2]; ow++) {
        int64_t w0 = ow * s - pb, w1 = w0 + k;
        int64_t pw0 = w0 < -pb ? -pb : w0, pw1 = w1 > W + t->pe[2] ? W + t->pe[2] : w1;
        w0 = w0 < 0 ? 0 : w0;
        w1 = w1 > W ? W : w1;
        float acc = 0.0f;
        for (int r = 0; r < nrows; r++)
            for (int64_t w = w0; w < w1; w++)
                acc += rows[r][w];
        int64_t cnt = g->kind == ONNX_KPOOL_AVG_INCLUDE_PAD ? hcount * (pw1 - pw0)
                                                            : nrows * (w1 - w0);
        y[ow] = cnt > 0 ? acc / (float)cnt : 0.0f;
    }
}

#define FAST_MAX_ROWS 64
#define FAST_MAX_COLS 4096

static void pool_plane_2d(const onnx_kpool_geom *g, const onnx_k3 *t, const float *x, float *y)
{
    int64_t H = t->in[1], W = t->in[2];
    const float *rows[FAST_MAX_ROWS];
    float col[FAST_MAX_COLS];
    for (int64_t oh = 0; oh < t->out[1]; oh++, y += t->out[2]) {
        int64_t h0 = oh * t->s[1] - t->pb[1], h1 = h0 + t->k[1];
        int64_t ph0 = h0 < -t->pb[1] ? -t->pb[1] : h0;
        int64_t ph1 = h1 > H + t->pe[1] ? H + t->pe[1] : h1;
        h0 = h0 < 0 ? 0 : h0;
        h1 = h1 > H ? H : h1;
        int nrows = 0;
        for (int64_t h = h0; h < h1; h++)
            rows[nrows++] = x + h * W;
        if (g->kind == ONNX_KPOOL_MAX)
            max_row(t, rows, nrows, col, y);
        else
            avg_row(g, t, rows, nrows, ph1 - ph0, y);
    }
}

void onnx__pool_run(const onnx_kpool_geom *g, const float *x, float *y, int64_t *idx,
                    int col_major)
{
    onnx_k3 t;
    onnx__k3_of_pool(g, &t);
    if (idx == NULL && g->nsp <= 2 && t.d[1] == 1 && t.d[2] == 1 && t.k[1] <= FAST_MAX_ROWS &&
        t.in[2] <= FAST_MAX_COLS) {
        int64_t insz = t.in[1] * t.in[2], outsz = t.out[1] * t.out[2];
        for (int64_t pl = 0; pl < g->n * g->c; pl++)
            pool_plane_2d(g, &t, x + pl * insz, y + pl * outsz);
        return;
    }
    int64_t insz = t.in[0] * t.in[1] * t.in[2];
    for (int64_t pl = 0; pl < g->n * g->c; pl++) {
        const float *xp = x + pl * insz;
        int64_t o[3];
        for (o[0] = 0; o[0] < t.out[0]; o[0]++)
            for (o[1] = 0; o[1] < t.out[1]; o[1]++)
                for (o[2] = 0; o[2] < t.out[2]; o[2]++) {
                    int64_t at = -1;
                    *y++ = pool_one(g, &t, xp, o, &at);
                    if (idx != NULL)
                        *idx++ = at < 0 ? -1
                                        : pl * insz + (col_major ? col_major_index(&t, at) : at);
                }
    }
}

void onnx__global_pool(int is_max, int64_t planes, int64_t spatial, const float *x, float *y)
{
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * spatial;
        if (is_max) {
            float m = -INFINITY;
            for (int64_t i = 0; i < spatial; i++)
                m = xp[i] > m ? xp[i] : m;
            y[p] = m;
            continue;
        }
        double s = 0.0;
        for (int64_t i = 0; i < spatial; i++)
            s += xp[i];
        y[p] = spatial > 0 ? (float)(s / (double)spatial) : 0.0f;
    }
}
