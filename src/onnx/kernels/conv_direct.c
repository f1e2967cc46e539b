/* conv_direct.c - convolution geometry checks and the direct-loop convolution.
 *
 * The direct loops are the fallback for what oneDNN refuses (odd paddings of transposed
 * convolutions, MODELD_ONNX_NO_DNNL=1) and keep every ONNX Conv/ConvTranspose form computable.
 * 1-D and 2-D geometries are handled as 3-D ones whose leading spatial dims are 1, so one loop
 * nest serves all ranks.
 */
#include <string.h>

#include "onnx/kernels/kernels.h"

/* Sizes beyond this are refused: it keeps every product below in int64 range. */
#define KMAX_DIM ((int64_t)1 << 30)

static int check_counts(const onnx_kconv_geom *g, md_err *e)
{
    if (g->nsp < 1 || g->nsp > ONNX_KMAX_SPATIAL)
        return md_fail(e, MD_E_UNSUPPORTED, "X", "%d spatial dims (1 to %d supported)", g->nsp,
                       ONNX_KMAX_SPATIAL);
    if (g->n < 1 || g->n > KMAX_DIM || g->ic < 1 || g->ic > KMAX_DIM || g->oc < 1 ||
        g->oc > KMAX_DIM)
        return md_fail(e, MD_E_INVALID_PARAM, "X", "batch and channel counts must be in 1..2^30");
    if (g->group < 1 || g->ic % g->group != 0 || g->oc % g->group != 0)
        return md_fail(e, MD_E_INVALID_PARAM, "group",
                       "group %lld must divide input channels %lld and output channels %lld",
                       (long long)g->group, (long long)g->ic, (long long)g->oc);
    return MD_OK;
}

int onnx__conv_check(const onnx_kconv_geom *g, md_err *e)
{
    int rc = check_counts(g, e);
    if (rc != MD_OK)
        return rc;
    for (int i = 0; i < g->nsp; i++) {
        if (g->in[i] < 1 || g->in[i] > KMAX_DIM || g->k[i] < 1 || g->k[i] > KMAX_DIM)
            return md_fail(e, MD_E_INVALID_PARAM, "kernel_shape",
                           "input and kernel sizes must be in 1..2^30");
        if (g->stride[i] < 1 || g->stride[i] > KMAX_DIM)
            return md_fail(e, MD_E_INVALID_PARAM, "strides", "must be >= 1");
        if (g->dil[i] < 1 || g->dil[i] > KMAX_DIM)
            return md_fail(e, MD_E_INVALID_PARAM, "dilations", "must be >= 1");
        if (g->pad_begin[i] < 0 || g->pad_begin[i] > KMAX_DIM || g->pad_end[i] > KMAX_DIM ||
            g->pad_end[i] < -KMAX_DIM || (!g->transpose && g->pad_end[i] < 0))
            return md_fail(e, MD_E_INVALID_PARAM, "pads", "must be in 0..2^30");
        int64_t ek = (g->k[i] - 1) * g->dil[i] + 1;
        int64_t want = g->transpose
            ? g->stride[i] * (g->in[i] - 1) + ek - g->pad_begin[i] - g->pad_end[i]
            : (g->in[i] + g->pad_begin[i] + g->pad_end[i] - ek) / g->stride[i] + 1;
        if (!g->transpose && g->in[i] + g->pad_begin[i] + g->pad_end[i] < ek)
            return md_fail(e, MD_E_INVALID_PARAM, "kernel_shape",
                           "kernel (%lld with dilation) larger than padded input (%lld)",
                           (long long)ek, (long long)(g->in[i] + g->pad_begin[i] + g->pad_end[i]));
        if (want < 1 || g->out[i] != want)
            return md_fail(e, MD_E_INVALID_PARAM, "pads",
                           "output size %lld of spatial dim %d does not follow from the "
                           "attributes (expected %lld)", (long long)g->out[i], i, (long long)want);
    }
    return MD_OK;
}

double onnx__conv_macs(const onnx_kconv_geom *g)
{
    double m = (double)g->n * (double)g->oc * (double)(g->ic / g->group);
    for (int i = 0; i < g->nsp; i++)
        m *= (double)(g->transpose ? g->in[i] : g->out[i]) * (double)g->k[i];
    return m;
}

size_t onnx__conv_weight_count(const onnx_kconv_geom *g)
{
    size_t n = (size_t)g->oc * (size_t)(g->ic / g->group);
    for (int i = 0; i < g->nsp; i++)
        n *= (size_t)g->k[i];
    return n;
}

/* One output plane of a forward convolution: y[oc] over all output positions. */
static void conv_plane(const onnx_k3 *t, int64_t icg, const float *x, const float *w, float b,
                       float *y)
{
    int64_t insz = t->in[0] * t->in[1] * t->in[2];
    int64_t ksz = t->k[0] * t->k[1] * t->k[2];
    for (int64_t o0 = 0; o0 < t->out[0]; o0++)
        for (int64_t o1 = 0; o1 < t->out[1]; o1++)
            for (int64_t o2 = 0; o2 < t->out[2]; o2++) {
                double acc = b;
                for (int64_t c = 0; c < icg; c++) {
                    const float *xc = x + c * insz, *wc = w + c * ksz;
                    for (int64_t k0 = 0; k0 < t->k[0]; k0++) {
                        int64_t i0 = o0 * t->s[0] - t->pb[0] + k0 * t->d[0];
                        if (i0 < 0 || i0 >= t->in[0])
                            continue;
                        for (int64_t k1 = 0; k1 < t->k[1]; k1++) {
                            int64_t i1 = o1 * t->s[1] - t->pb[1] + k1 * t->d[1];
                            if (i1 < 0 || i1 >= t->in[1])
                                continue;
                            const float *xr = xc + (i0 * t->in[1] + i1) * t->in[2];
                            const float *wr = wc + (k0 * t->k[1] + k1) * t->k[2];
                            for (int64_t k2 = 0; k2 < t->k[2]; k2++) {
                                int64_t i2 = o2 * t->s[2] - t->pb[2] + k2 * t->d[2];
                                if (i2 >= 0 && i2 < t->in[2])
                                    acc += (double)xr[i2] * wr[k2];
                            }
                        }
                    }
                }
                *y++ = (float)acc;
            }
}

/* Transposed convolution of one (batch, group): scatter every input value into the outputs it
 * reaches. y must hold the bias already. Positions past the un-padded output get nothing, which
 * is what a negative pad_end (output_padding) means. */
static void deconv_group(const onnx_k3 *t, int64_t icg, int64_t ocg, const float *x, const float *w,
                         float *y)
{
    int64_t insz = t->in[0] * t->in[1] * t->in[2];
    int64_t outsz = t->out[0] * t->out[1] * t->out[2];
    int64_t ksz = t->k[0] * t->k[1] * t->k[2];
    for (int64_t c = 0; c < icg; c++)
        for (int64_t p = 0; p < insz; p++) {
            float v = x[c * insz + p];
            int64_t i0 = p / (t->in[1] * t->in[2]), i1 = p / t->in[2] % t->in[1],
                    i2 = p % t->in[2];
            for (int64_t o = 0; o < ocg; o++) {
                const float *wk = w + (c * ocg + o) * ksz;
                float *yo = y + o * outsz;
                for (int64_t k = 0; k < ksz; k++) {
                    int64_t k0 = k / (t->k[1] * t->k[2]), k1 = k / t->k[2] % t->k[1],
                            k2 = k % t->k[2];
                    int64_t o0 = i0 * t->s[0] - t->pb[0] + k0 * t->d[0];
                    int64_t o1 = i1 * t->s[1] - t->pb[1] + k1 * t->d[1];
                    int64_t o2 = i2 * t->s[2] - t->pb[2] + k2 * t->d[2];
                    if (o0 < 0 || o0 >= t->out[0] || o1 < 0 || o1 >= t->out[1] || o2 < 0 ||
                        o2 >= t->out[2])
                        continue;
                    yo[(o0 * t->out[1] + o1) * t->out[2] + o2] += v * wk[k];
                }
            }
        }
}

void onnx__conv_direct(const onnx_kconv_geom *g, const float *x, const float *w,
                       const float *bias, float *y)
{
    onnx_k3 t;
    onnx__k3_of_conv(g, &t);
    int64_t icg = g->ic / g->group, ocg = g->oc / g->group;
    int64_t insz = t.in[0] * t.in[1] * t.in[2], outsz = t.out[0] * t.out[1] * t.out[2];
    int64_t ksz = t.k[0] * t.k[1] * t.k[2];
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t gr = 0; gr < g->group; gr++) {
            const float *xg = x + (n * g->ic + gr * icg) * insz;
            float *yg = y + (n * g->oc + gr * ocg) * outsz;
            if (g->transpose) {
                for (int64_t o = 0; o < ocg; o++)
                    for (int64_t p = 0; p < outsz; p++)
                        yg[o * outsz + p] = bias ? bias[gr * ocg + o] : 0.0f;
                deconv_group(&t, icg, ocg, xg, w + gr * icg * ocg * ksz, yg);
                continue;
            }
            for (int64_t o = 0; o < ocg; o++)
                conv_plane(&t, icg, xg, w + (gr * ocg + o) * icg * ksz,
                           bias ? bias[gr * ocg + o] : 0.0f, yg + o * outsz);
        }
    onnx__kact_apply(&g->act, y, (size_t)(g->n * g->oc * outsz));
}
