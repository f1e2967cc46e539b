/* fuse.c - which activations the kernel ops absorb at load, and how (see fuse.h); and the
 * pooling attribute rules, shared by the pooling ops and the convolution chains that absorb them.
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

/* ---- geometry attributes ---- */

int onnx__attr_ints_bounded(const onnx_node *n, const char *name, int64_t lo, md_err *err)
{
    const int64_t *v;
    size_t cnt = onnx__attr_ints(n, name, &v);
    for (size_t i = 0; i < cnt; i++)
        if (v[i] < lo || v[i] > ONNX_GEOM_MAX)
            return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, name, "must be in %lld..2^30",
                                   (long long)lo);
    return MD_OK;
}

int onnx__autopad_check(const onnx_node *n, md_err *err)
{
    if (onnx__autopad_parse(onnx__attr_str(n, "auto_pad", "NOTSET")) < 0)
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "auto_pad", "unknown auto_pad '%s'",
                               onnx__attr_str(n, "auto_pad", ""));
    return MD_OK;
}

int onnx__conv_attrs_check(const onnx_node *n, md_err *err)
{
    int rc = onnx__autopad_check(n, err);
    if (rc)
        return rc;
    int64_t group = onnx__attr_int(n, "group", 1);
    if (group < 1 || group > ONNX_GEOM_MAX)
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "group", "must be in 1..2^30");
    return MD_OK;
}

/* ---- pooling attributes ---- */

int onnx__pool_attrs_check(const onnx_node *n, md_err *err)
{
    const int64_t *v;
    size_t nk = onnx__attr_ints(n, "kernel_shape", &v);
    if (nk < 1 || nk > ONNX_KMAX_SPATIAL)
        return onnx__prep_fail(n, err, nk ? MD_E_UNSUPPORTED : MD_E_MODEL_INVALID,
                               "kernel_shape", "needs 1 to 3 values, got %zu", nk);
    int rc = onnx__autopad_check(n, err);
    if (rc)
        return rc;
    static const char *const names[] = {"kernel_shape", "strides", "dilations", "pads"};
    for (int a = 0; a < 4; a++) {
        size_t cnt = onnx__attr_ints(n, names[a], &v);
        size_t want = a == 3 ? 2 * nk : nk;
        if (cnt != 0 && cnt != want)
            return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, names[a], "has %zu values, "
                                   "expected %zu", cnt, want);
        /* bounded so that the size formulas cannot overflow (kernels/pool.c limits) */
        if ((rc = onnx__attr_ints_bounded(n, names[a], a == 3 ? 0 : 1, err)))
            return rc;
    }
    int64_t so = onnx__attr_int(n, "storage_order", 0);
    if (so != 0 && so != 1)
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "storage_order", "must be 0 or 1");
    return MD_OK;
}

int onnx__pool_geom_of(const onnx_node *n, int rank, const int64_t *dims, int kind,
                       onnx_kpool_geom *g, md_err *e)
{
    const int64_t *ks, *st, *dl, *pd;
    size_t nk = onnx__attr_ints(n, "kernel_shape", &ks);
    size_t nst = onnx__attr_ints(n, "strides", &st), ndl = onnx__attr_ints(n, "dilations", &dl);
    size_t npd = onnx__attr_ints(n, "pads", &pd);
    if (rank != (int)nk + 2)
        return md_fail(e, MD_E_INVALID_PARAM, "X", "rank %d, expected %zu for a %zu-D kernel",
                       rank, nk + 2, nk);
    int autopad = onnx__autopad_parse(onnx__attr_str(n, "auto_pad", "NOTSET"));
    int ceil_mode = (int)onnx__attr_int(n, "ceil_mode", 0);
    memset(g, 0, sizeof *g);
    g->kind = kind;
    g->nsp = (int)nk;
    g->n = dims[0];
    g->c = dims[1];
    for (int i = 0; i < g->nsp; i++) {
        g->in[i] = dims[2 + i];
        g->k[i] = ks[i];
        g->stride[i] = nst ? st[i] : 1;
        g->dil[i] = ndl ? dl[i] : 1;
        g->pad_begin[i] = npd ? pd[i] : 0;
        g->pad_end[i] = npd ? pd[nk + (size_t)i] : 0;
        if (g->in[i] < 1 || g->in[i] > ((int64_t)1 << 30))
            return md_fail(e, MD_E_INVALID_PARAM, "X", "spatial dims must be in 1..2^30");
        int64_t ek = (g->k[i] - 1) * g->dil[i] + 1;
        g->out[i] = onnx__spatial_out(autopad, ceil_mode, g->in[i], ek, g->stride[i],
                                      &g->pad_begin[i], &g->pad_end[i]);
        if (g->out[i] < 1)
            return md_fail(e, MD_E_INVALID_PARAM, "kernel_shape",
                           "kernel larger than the padded input");
    }
    return onnx__pool_check(g, e);
}
