/* gemm.c - ONNX Gemm (every opset): Y = alpha * op(A) * op(B) + beta * C, C broadcast to
 * [M, N], on the sgemm of kernels/gemm.c.
 *
 * C is written into Y first and the product accumulated onto it (sgemm beta = 1), so the bias of
 * a Linear layer costs one pass over Y and no temporary. A following activation is absorbed at
 * load (MLPs: Gemm + Relu run as one node).
 */
#include <string.h>

#include "onnx/kernels/fuse.h"
#include "onnx/kernels/kernels.h"
#include "onnx/onnx_int.h"

typedef struct gemm_priv {
    onnx_kact act;
} gemm_priv;

static int prepare_gemm(onnx_node *n, onnx_prep *p, md_err *err)
{
    gemm_priv *gp = onnx__prep_alloc(p, sizeof *gp);
    if (gp == NULL)
        return onnx__prep_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    n->priv = gp;
    return onnx__absorb_act(p, n, &gp->act, err);
}

/* Y = beta * C broadcast to [m, n] (unidirectional: C's dims are 1 or equal, right-aligned). */
static int fill_c(onnx_kctx *k, const onnx_tensor *c, float beta, int64_t m, int64_t n, float *y)
{
    if (c->rank > 2)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "C has rank %d, at most 2", c->rank);
    int64_t cm = c->rank == 2 ? c->dims[0] : 1, cn = c->rank >= 1 ? c->dims[c->rank - 1] : 1;
    if ((cm != 1 && cm != m) || (cn != 1 && cn != n))
        return onnx__kfail(k, MD_E_INVALID_PARAM,
                           "C of shape %lldx%lld does not broadcast to %lldx%lld", (long long)cm,
                           (long long)cn, (long long)m, (long long)n);
    const float *cd = c->data;
    for (int64_t i = 0; i < m; i++) {
        const float *row = cd + (cm == 1 ? 0 : i * cn);
        float *yr = y + i * n;
        if (cn == 1)
            for (int64_t j = 0; j < n; j++)
                yr[j] = beta * row[0];
        else if (beta == 1.0f)
            memcpy(yr, row, (size_t)n * sizeof(float));
        else
            for (int64_t j = 0; j < n; j++)
                yr[j] = beta * row[j];
    }
    return MD_OK;
}

static int run_gemm(const onnx_node *n, onnx_kctx *k)
{
    const gemm_priv *gp = n->priv;
    const onnx_tensor *a = k->in[0], *b = k->in[1], *c = k->n_in > 2 ? k->in[2] : NULL;
    if (a->dtype != ONNX_FLOAT || b->dtype != ONNX_FLOAT || (c && c->dtype != ONNX_FLOAT))
        return onnx__kfail(k, MD_E_UNSUPPORTED, "only float32 tensors are supported");
    if (a->rank != 2 || b->rank != 2)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "A and B must be matrices (ranks %d, %d)",
                           a->rank, b->rank);
    int ta = onnx__attr_int(n, "transA", 0) != 0, tb = onnx__attr_int(n, "transB", 0) != 0;
    int64_t m = a->dims[ta], kk = a->dims[1 - ta], nn = b->dims[1 - tb];
    if (b->dims[tb] != kk)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "inner dimensions differ: A gives %lld, B %lld",
                           (long long)kk, (long long)b->dims[tb]);
    float alpha = onnx__attr_float(n, "alpha", 1.0f), beta = onnx__attr_float(n, "beta", 1.0f);
    onnx_tensor *y;
    int64_t dims[2] = {m, nn};
    int rc = onnx__output(k, 0, ONNX_FLOAT, 2, dims, &y);
    if (rc)
        return rc;
    int with_c = c != NULL && beta != 0.0f;
    if (with_c && (rc = fill_c(k, c, beta, m, nn, y->data)))
        return rc;
    md_err e;
    onnx__kern_set_threads(
        onnx__kern_threads_for(k->threads, (double)m * (double)nn * (double)kk));
    if (onnx__sgemm(ta, tb, m, nn, kk, alpha, a->data, a->dims[1], b->data, b->dims[1],
                    with_c ? 1.0f : 0.0f, y->data, nn, &e))
        return onnx__kfail(k, e.code, "%s", e.msg);
    onnx__kact_apply(&gp->act, y->data, (size_t)(m * nn));
    return MD_OK;
}

ONNX_OPS(gemm) = {
    {.domain = "", .op_type = "Gemm", .opset_min = 1, .opset_max = 0, .min_in = 2, .max_in = 3,
     .min_out = 1, .max_out = 1, .attrs = "alpha:f beta:f transA:i transB:i broadcast:i",
     .prepare = prepare_gemm, .run = run_gemm},
    ONNX_OPS_END
};
