/* pool.c - ONNX MaxPool (with its Indices output), AveragePool, GlobalAveragePool and
 * GlobalMaxPool, on the loops of kernels/pool.c.
 *
 * Attributes are checked at load; sizes are resolved per run from the input shape with the same
 * auto_pad / ceil_mode rules as Conv (kernels/spatial.c). MaxPool on int8/uint8 (opset 12) runs on
 * a float copy: every 8-bit value is exact in float, so the result converts back unchanged.
 */
#include <string.h>

#include "onnx/kernels/fuse.h"
#include "onnx/kernels/kernels.h"
#include "onnx/onnx_int.h"

static int prepare_pool(onnx_node *n, onnx_prep *p, md_err *err)
{
    (void)p;
    return onnx__pool_attrs_check(n, err);
}

/* Float view of an 8-bit input in scratch (exact), or the float data itself. */
static const float *as_float(onnx_kctx *k, const onnx_tensor *x, int64_t cnt)
{
    if (x->dtype == ONNX_FLOAT)
        return x->data;
    float *f = onnx__scratch(k, (size_t)cnt * sizeof(float));
    for (int64_t i = 0; f != NULL && i < cnt; i++)
        f[i] = x->dtype == ONNX_UINT8 ? (float)((const uint8_t *)x->data)[i]
                                      : (float)((const int8_t *)x->data)[i];
    return f;
}

static int run_pool(const onnx_node *n, onnx_kctx *k, int kind)
{
    const onnx_tensor *x = k->in[0];
    onnx_kpool_geom g;
    md_err e;
    int byte = x->dtype == ONNX_UINT8 || x->dtype == ONNX_INT8;
    if (x->dtype != ONNX_FLOAT && !(byte && kind == ONNX_KPOOL_MAX))
        return onnx__kfail(k, MD_E_UNSUPPORTED, "input type %s is not supported",
                           onnx_dtype_name(x->dtype));
    if (onnx__pool_geom_of(n, x->rank, x->dims, kind, &g, &e))
        return onnx__kfail(k, e.code, "%s: %s", e.field, e.msg);
    int64_t dims[ONNX_MAX_RANK] = {g.n, g.c};
    memcpy(dims + 2, g.out, sizeof(int64_t) * (size_t)g.nsp);
    int64_t cnt = onnx__numel(x->rank, dims);
    onnx_tensor *y, *ix = NULL;
    int rc = onnx__output(k, 0, x->dtype, x->rank, dims, &y);
    if (!rc && n->n_out > 1 && n->out[1] >= 0)
        rc = onnx__output(k, 1, ONNX_INT64, x->rank, dims, &ix);
    if (rc)
        return rc;
    const float *xf = as_float(k, x, onnx_tensor_numel(x));
    float *yf = byte ? onnx__scratch(k, (size_t)cnt * sizeof(float)) : y->data;
    if (xf == NULL || yf == NULL)
        return MD_E_NOMEM;
    onnx__pool_run(&g, xf, yf, ix ? ix->data : NULL, (int)onnx__attr_int(n, "storage_order", 0));
    for (int64_t i = 0; byte && i < cnt; i++) {
        if (x->dtype == ONNX_UINT8)
            ((uint8_t *)y->data)[i] = (uint8_t)yf[i];
        else
            ((int8_t *)y->data)[i] = (int8_t)yf[i];
    }
    return MD_OK;
}

static int run_maxpool(const onnx_node *n, onnx_kctx *k)
{
    return run_pool(n, k, ONNX_KPOOL_MAX);
}

static int run_avgpool(const onnx_node *n, onnx_kctx *k)
{
    int inc = onnx__attr_int(n, "count_include_pad", 0) != 0;
    return run_pool(n, k, inc ? ONNX_KPOOL_AVG_INCLUDE_PAD : ONNX_KPOOL_AVG_EXCLUDE_PAD);
}

static int run_global(const onnx_node *n, onnx_kctx *k, int is_max)
{
    (void)n;
    const onnx_tensor *x = k->in[0];
    if (x->dtype != ONNX_FLOAT)
        return onnx__kfail(k, MD_E_UNSUPPORTED, "input type %s is not supported",
                           onnx_dtype_name(x->dtype));
    if (x->rank < 3)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X: rank %d, expected N x C x spatial...",
                           x->rank);
    int64_t dims[ONNX_MAX_RANK], spatial = 1;
    for (int i = 0; i < x->rank; i++) {
        dims[i] = i < 2 ? x->dims[i] : 1;
        spatial *= i < 2 ? 1 : x->dims[i];
    }
    onnx_tensor *y;
    int rc = onnx__output(k, 0, ONNX_FLOAT, x->rank, dims, &y);
    if (rc)
        return rc;
    if (spatial == 0 && dims[0] * dims[1] > 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X: empty spatial dims");
    onnx__global_pool(is_max, dims[0] * dims[1], spatial, x->data, y->data);
    return MD_OK;
}

static int run_gap(const onnx_node *n, onnx_kctx *k)
{
    return run_global(n, k, 0);
}

static int run_gmp(const onnx_node *n, onnx_kctx *k)
{
    return run_global(n, k, 1);
}

#define POOL_ATTRS "auto_pad:s kernel_shape:I pads:I strides:I ceil_mode:i dilations:I"

ONNX_OPS(pool) = {
    {.domain = "", .op_type = "MaxPool", .opset_min = 1, .opset_max = 0, .min_in = 1,
     .max_in = 1, .min_out = 1, .max_out = 2, .attrs = POOL_ATTRS " storage_order:i",
     .prepare = prepare_pool, .run = run_maxpool},
    {.domain = "", .op_type = "AveragePool", .opset_min = 1, .opset_max = 0, .min_in = 1,
     .max_in = 1, .min_out = 1, .max_out = 1, .attrs = POOL_ATTRS " count_include_pad:i",
     .prepare = prepare_pool, .run = run_avgpool},
    {.domain = "", .op_type = "GlobalAveragePool", .opset_min = 1, .opset_max = 0, .min_in = 1,
     .max_in = 1, .min_out = 1, .max_out = 1, .run = run_gap},
    {.domain = "", .op_type = "GlobalMaxPool", .opset_min = 1, .opset_max = 0, .min_in = 1,
     .max_in = 1, .min_out = 1, .max_out = 1, .run = run_gmp},
    ONNX_OPS_END
};
