/* spatial.c - ONNX's rules for auto_pad and output sizes, shared by Conv and the poolings so the
 * two families agree on every padding mode, and the 3-D form of their geometries that the direct
 * loops run on. Pure integer arithmetic, no tensors. */
#include <string.h>

#include "onnx/kernels/kernels.h"

int onnx__autopad_parse(const char *s)
{
    if (s == NULL || strcmp(s, "NOTSET") == 0 || s[0] == '\0')
        return ONNX_AUTOPAD_NOTSET;
    if (strcmp(s, "VALID") == 0)
        return ONNX_AUTOPAD_VALID;
    if (strcmp(s, "SAME_UPPER") == 0)
        return ONNX_AUTOPAD_SAME_UPPER;
    if (strcmp(s, "SAME_LOWER") == 0)
        return ONNX_AUTOPAD_SAME_LOWER;
    return -1;
}

int64_t onnx__spatial_out(int autopad, int ceil_mode, int64_t in, int64_t ek, int64_t stride,
                          int64_t *pb, int64_t *pe)
{
    if (autopad == ONNX_AUTOPAD_SAME_UPPER || autopad == ONNX_AUTOPAD_SAME_LOWER) {
        int64_t out = (in + stride - 1) / stride;
        int64_t total = (out - 1) * stride + ek - in;
        if (total < 0)
            total = 0;
        /* SAME_UPPER puts the odd pad at the end, SAME_LOWER at the beginning */
        *pb = autopad == ONNX_AUTOPAD_SAME_UPPER ? total / 2 : total - total / 2;
        *pe = total - *pb;
        return out;
    }
    if (autopad == ONNX_AUTOPAD_VALID)
        *pb = *pe = 0;
    int64_t span = in + *pb + *pe - ek;
    if (span < 0)
        return -1;
    if (!ceil_mode || autopad == ONNX_AUTOPAD_VALID)
        return span / stride + 1;
    int64_t out = (span + stride - 1) / stride + 1;
    if ((out - 1) * stride >= in + *pb)
        out--;
    return out;
}

/* The rule of onnx_k3 over one geometry's spatial arrays, nsp of each. */
static void k3_fill(int nsp, const int64_t *in, const int64_t *out, const int64_t *k,
                    const int64_t *stride, const int64_t *dil, const int64_t *pb,
                    const int64_t *pe, onnx_k3 *t)
{
    int off = 3 - nsp;
    for (int i = 0; i < 3; i++) {
        int j = i - off;
        t->in[i] = j < 0 ? 1 : in[j];
        t->out[i] = j < 0 ? 1 : out[j];
        t->k[i] = j < 0 ? 1 : k[j];
        t->s[i] = j < 0 ? 1 : stride[j];
        t->d[i] = j < 0 ? 1 : dil[j];
        t->pb[i] = j < 0 ? 0 : pb[j];
        t->pe[i] = j < 0 ? 0 : pe[j];
    }
}

void onnx__k3_of_conv(const onnx_kconv_geom *g, onnx_k3 *t)
{
    k3_fill(g->nsp, g->in, g->out, g->k, g->stride, g->dil, g->pad_begin, g->pad_end, t);
}

void onnx__k3_of_pool(const onnx_kpool_geom *g, onnx_k3 *t)
{
    k3_fill(g->nsp, g->in, g->out, g->k, g->stride, g->dil, g->pad_begin, g->pad_end, t);
}
