/* upconv.c - a nearest-neighbour upsampling by integer factors followed by a 2-D convolution,
 * computed on the low-resolution input.
 *
 * Super-resolution nets (the UpscalerJS RDNs) end with Resize(nearest, x s) and a 3x3 Conv: run
 * as written, the convolution reads an s*s times larger tensor that holds no more information
 * than its input (at x8 and 192 channels, 5.4 G multiply-adds for a 128x128 tile, most of the
 * network). Because upsampling only repeats values, every tap (ty, tx) of the convolution reads,
 * for any output pixel, ONE low-resolution pixel; so
 *   1. Z = Wt . X: one matrix product on the low-resolution input gives, for every tap and output
 *      channel, that tap's contribution at every low-resolution pixel (oc*kh*kw rows, ic deep);
 *   2. each output pixel then sums its kh*kw tap rows at the low-resolution pixels its taps fall
 *      on (a horizontal pass over kw taps into H1, then a vertical pass over kh taps), plus the
 *      bias, and the activation.
 * The multiply-adds drop from oc*ic*kh*kw per HIGH-res output pixel to the same per LOW-res
 * input pixel (64x fewer at x8), and the upsampled tensor is never made.
 *
 * Invariants:
 *   1. A high-res row r is inside the upsampled image iff its low-res row floor(r / s) is inside
 *      the input, so zero padding of the convolution is "the tap's low-res pixel is outside":
 *      those taps are skipped (maps hold -1). Results equal the unfused Resize + Conv up to the
 *      order of the float sums; any stride, dilation and padding is exact.
 *   2. The tap maps are monotone in the output coordinate (stride >= 1), so the valid outputs of
 *      one tap are one contiguous range [lo, hi).
 *   3. No allocation: scratch comes from the caller (onnx__upconv_scratch bytes).
 */
#include <string.h>

#include "onnx/kernels/kernels.h"

/* Scratch layout: the tap maps (int64 my [kh][OH], mx [kw][OW], rounded up to 64 bytes), then
 * the floats Z [oc*kh*kw][H*W] and H1 [oc*kh][H][OW]. */
static size_t maps_bytes(const onnx_kupconv_geom *g)
{
    size_t b = (size_t)(g->k[0] * g->out[0] + g->k[1] * g->out[1]) * sizeof(int64_t);
    return (b + 63) & ~(size_t)63;
}

static size_t z_count(const onnx_kupconv_geom *g)
{
    return (size_t)(g->oc * g->k[0] * g->k[1] * g->in[0] * g->in[1]);
}

static size_t h1_count(const onnx_kupconv_geom *g)
{
    return (size_t)(g->oc * g->k[0] * g->in[0] * g->out[1]);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

int onnx__upconv_check(const onnx_kupconv_geom *g, md_err *e)
{
    const int64_t big = (int64_t)1 << 30; /* keeps every product below inside int64 */
    if (g->n < 1 || g->ic < 1 || g->oc < 1 || g->n > big || g->ic > big || g->oc > big)
        return md_fail(e, MD_E_INVALID_PARAM, "X", "batch and channels must be in 1..2^30");
    for (int d = 0; d < 2; d++) {
        const int64_t v[] = {g->in[d], g->scale[d], g->k[d], g->stride[d], g->dil[d]};
        for (int i = 0; i < 5; i++)
            if (v[i] < 1 || v[i] > big)
                return md_fail(e, MD_E_INVALID_PARAM, "X", "bad upsampling convolution geometry");
        if (g->pad_begin[d] < 0 || g->pad_end[d] < 0 || g->pad_begin[d] > big ||
            g->pad_end[d] > big || g->out[d] < 1 || g->out[d] > 2 * big)
            return md_fail(e, MD_E_INVALID_PARAM, "pads", "bad upsampling convolution geometry");
        int64_t span = g->in[d] * g->scale[d] + g->pad_begin[d] + g->pad_end[d] -
                       (g->k[d] - 1) * g->dil[d] - 1;
        if (span < 0 || g->out[d] != span / g->stride[d] + 1)
            return md_fail(e, MD_E_INVALID_PARAM, "pads",
                           "output size %lld does not follow "
                           "from the geometry",
                           (long long)g->out[d]);
    }
    /* in doubles: the int64 counts below are only computed once this bound holds */
    double taps = (double)g->k[0] * (double)g->k[1], lr = (double)g->in[0] * (double)g->in[1];
    double bytes =
        ((double)g->oc * taps * lr +
         (double)g->oc * (double)g->k[0] * (double)g->in[0] * (double)g->out[1]) *
            4.0 +
        ((double)g->k[0] * (double)g->out[0] + (double)g->k[1] * (double)g->out[1]) * 8.0;
    if (bytes > (double)((int64_t)1 << 40))
        return md_fail(e, MD_E_INVALID_PARAM, "X", "upsampling convolution too large");
    return MD_OK;
}

double onnx__upconv_macs(const onnx_kupconv_geom *g)
{
    return (double)g->n * (double)z_count(g) * (double)g->ic;
}

size_t onnx__upconv_scratch(const onnx_kupconv_geom *g)
{
    return maps_bytes(g) + (z_count(g) + h1_count(g)) * sizeof(float);
}

void onnx__upconv_pack(const onnx_kupconv_geom *g, const float *w, float *wp)
{
    int64_t taps = g->k[0] * g->k[1];
    for (int64_t c = 0; c < g->oc; c++)
        for (int64_t i = 0; i < g->ic; i++)
            for (int64_t t = 0; t < taps; t++)
                wp[(c * taps + t) * g->ic + i] = w[(c * g->ic + i) * taps + t];
}

/* map[t][o]: the low-res coordinate tap t of output o reads along dim d, or -1 (padding). */
static void tap_map(const onnx_kupconv_geom *g, int d, int64_t *map)
{
    for (int64_t t = 0; t < g->k[d]; t++)
        for (int64_t o = 0; o < g->out[d]; o++) {
            int64_t r = o * g->stride[d] - g->pad_begin[d] + t * g->dil[d];
            int64_t lr = floor_div(r, g->scale[d]);
            map[t * g->out[d] + o] = lr >= 0 && lr < g->in[d] ? lr : -1;
        }
}

/* The contiguous range [*lo, *hi) of outputs whose entry in map row m is valid (invariant 2). */
static void valid_range(const int64_t *m, int64_t n, int64_t *lo, int64_t *hi)
{
    int64_t a = 0, b = n;
    while (a < n && m[a] < 0)
        a++;
    while (b > a && m[b - 1] < 0)
        b--;
    *lo = a;
    *hi = b;
}

/* H1[c][ty][Y][x] = sum over tx of Z[c][ty][tx][Y][mx[tx][x]]. */
static void horizontal(const onnx_kupconv_geom *g, const float *z, const int64_t *mx, float *h1)
{
    int64_t kh = g->k[0], kw = g->k[1], H = g->in[0], W = g->in[1], OW = g->out[1];
    int64_t rows = g->oc * kh * H;
#pragma omp parallel for schedule(static) if (rows > 64)
    for (int64_t r = 0; r < rows; r++) {
        int64_t cty = r / H, Y = r % H;
        float *h = h1 + r * OW;
        memset(h, 0, (size_t)OW * sizeof(float));
        for (int64_t tx = 0; tx < kw; tx++) {
            const float *zr = z + ((cty * kw + tx) * H + Y) * W;
            const int64_t *m = mx + tx * OW;
            int64_t lo, hi;
            valid_range(m, OW, &lo, &hi);
            for (int64_t x = lo; x < hi; x++)
                h[x] += zr[m[x]];
        }
    }
}

/* y[c][oy][x] = bias[c] + sum over ty of H1[c][ty][my[ty][oy]][x], then the activation. A row
 * whose taps read the same low-res rows as the row before is a copy of it. */
static void vertical(const onnx_kupconv_geom *g, const float *h1, const int64_t *my,
                     const float *bias, float *y)
{
    int64_t kh = g->k[0], H = g->in[0], OH = g->out[0], OW = g->out[1];
#pragma omp parallel for schedule(static) if (g->oc > 1)
    for (int64_t c = 0; c < g->oc; c++) {
        float b = g->has_bias ? bias[c] : 0.0f;
        for (int64_t oy = 0; oy < OH; oy++) {
            float *o = y + (c * OH + oy) * OW;
            int same = oy > 0;
            for (int64_t ty = 0; same && ty < kh; ty++)
                same = my[ty * OH + oy] == my[ty * OH + oy - 1];
            if (same) {
                memcpy(o, o - OW, (size_t)OW * sizeof(float));
                continue;
            }
            for (int64_t x = 0; x < OW; x++)
                o[x] = b;
            for (int64_t ty = 0; ty < kh; ty++) {
                int64_t ly = my[ty * OH + oy];
                if (ly < 0)
                    continue;
                const float *hr = h1 + ((c * kh + ty) * H + ly) * OW;
                for (int64_t x = 0; x < OW; x++)
                    o[x] += hr[x];
            }
            onnx__kact_apply(&g->act, o, (size_t)OW);
        }
    }
}

int onnx__upconv_run(const onnx_kupconv_geom *g, const float *x, const float *wp, const float *bias,
                     float *y, void *scratch, md_err *e)
{
    int64_t M = g->oc * g->k[0] * g->k[1], HW = g->in[0] * g->in[1];
    int64_t *my = scratch, *mx = my + g->k[0] * g->out[0];
    float *z = (float *)((unsigned char *)scratch + maps_bytes(g)), *h1 = z + z_count(g);
    tap_map(g, 0, my);
    tap_map(g, 1, mx);
    for (int64_t n = 0; n < g->n; n++) {
        const float *xn = x + n * g->ic * HW;
        float *yn = y + n * g->oc * g->out[0] * g->out[1];
        int rc = onnx__sgemm(0, 0, M, HW, g->ic, 1.0f, wp, g->ic, xn, HW, 0.0f, z, HW, e);
        if (rc)
            return rc;
        horizontal(g, z, mx, h1);
        vertical(g, h1, my, bias, yn);
    }
    return MD_OK;
}
