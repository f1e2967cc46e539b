/* fuse.c - which activations the kernel ops absorb at load, and how (see fuse.h).
 *
 * Fusing saves a pass over the output (and, for Conv, is done inside oneDNN's kernel while the
 * data is still in registers). Only activations whose parameters are known at load qualify:
 * Clip's bounds must be constants, as onnx__prep_absorb requires.
 */
#include <float.h>
#include <string.h>

#include "onnx/kernels/fuse.h"

/* A float scalar constant input i of c, or def when the input is absent; -1 when not constant. */
static int const_scalar(onnx_prep *p, const onnx_node *c, int i, float def, float *out)
{
    *out = def;
    if (i >= c->n_in || c->in[i] < 0)
        return 0;
    const onnx_tensor *t = onnx__prep_const(p, c, i);
    if (t == NULL || t->dtype != ONNX_FLOAT || onnx_tensor_numel(t) != 1)
        return -1;
    *out = *(const float *)t->data;
    return 0;
}

static int clip_bounds(onnx_prep *p, const onnx_node *c, float *lo, float *hi)
{
    if (c->opset < 11) {
        *lo = onnx__attr_float(c, "min", -FLT_MAX);
        *hi = onnx__attr_float(c, "max", FLT_MAX);
        return 0;
    }
    if (const_scalar(p, c, 1, -FLT_MAX, lo) || const_scalar(p, c, 2, FLT_MAX, hi))
        return -1;
    return 0;
}

int onnx__fusable_act(onnx_prep *p, const onnx_node *c, onnx_kact *a)
{
    if (c->domain[0] != '\0' || c->n_out != 1)
        return 0;
    const char *t = c->op_type;
    float lo, hi;
    if (strcmp(t, "Relu") == 0)
        *a = (onnx_kact){ONNX_KACT_RELU, 0, 0};
    else if (strcmp(t, "LeakyRelu") == 0)
        *a = (onnx_kact){ONNX_KACT_LEAKY, onnx__attr_float(c, "alpha", 0.01f), 0};
    else if (strcmp(t, "Sigmoid") == 0)
        *a = (onnx_kact){ONNX_KACT_SIGMOID, 0, 0};
    else if (strcmp(t, "Tanh") == 0)
        *a = (onnx_kact){ONNX_KACT_TANH, 0, 0};
    else if (strcmp(t, "Clip") == 0 && clip_bounds(p, c, &lo, &hi) == 0 && lo <= hi)
        *a = (onnx_kact){ONNX_KACT_CLIP, lo, hi}; /* min > max is left to the Clip op */
    else
        return 0;
    return 1;
}

int onnx__absorb_act(onnx_prep *p, onnx_node *n, onnx_kact *a, md_err *err)
{
    onnx_node *c = onnx__prep_sole_consumer(p, n, 0);
    a->kind = ONNX_KACT_NONE;
    onnx_kact found;
    if (c == NULL || !onnx__fusable_act(p, c, &found))
        return MD_OK;
    int rc = onnx__prep_absorb(p, n, c, err);
    if (rc == MD_OK)
        *a = found;
    return rc;
}
