/* matmul.c - ONNX MatMul with numpy semantics: 1-D operands promoted and the added dim dropped,
 * batch dims broadcast, on the sgemm of kernels/gemm.c.
 *
 * When B has no batch (the common "activations x weights" case) the whole batch of A is one
 * tall matrix and runs as a single sgemm; otherwise one sgemm per output batch entry, with the
 * operands' offsets following the broadcast.
 */
#include "onnx/kernels/fuse.h"
#include "onnx/kernels/kernels.h"
#include "onnx/onnx_int.h"

typedef struct matmul_priv {
    onnx_kact act;
} matmul_priv;

static int prepare_matmul(onnx_node *n, onnx_prep *p, md_err *err)
{
    matmul_priv *mp = onnx__prep_alloc(p, sizeof *mp);
    if (mp == NULL)
        return onnx__prep_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    n->priv = mp;
    return onnx__absorb_act(p, n, &mp->act, err);
}

static int mm_batches(const onnx_mm_shape *s, const float *a, const float *b, float *y, md_err *e)
{
    int64_t bmat = 0;
    for (int i = 0; i < s->brank; i++)
        bmat |= s->bstr[i];
    if (bmat == 0) /* B shared by every batch: one tall product */
        return onnx__sgemm(0, 0, s->nb * s->m, s->n, s->k, 1.0f, a, s->k, b, s->n, 0.0f, y, s->n,
                           e);
    for (int64_t i = 0; i < s->nb; i++) {
        int64_t ao, bo;
        onnx__mm_batch(s, i, &ao, &bo);
        int rc = onnx__sgemm(0, 0, s->m, s->n, s->k, 1.0f, a + ao * s->m * s->k, s->k,
                             b + bo * s->k * s->n, s->n, 0.0f, y + i * s->m * s->n, s->n, e);
        if (rc)
            return rc;
    }
    return MD_OK;
}

static int run_matmul(const onnx_node *n, onnx_kctx *k)
{
    const matmul_priv *mp = n->priv;
    const onnx_tensor *a = k->in[0], *b = k->in[1];
    if (a->dtype != ONNX_FLOAT || b->dtype != ONNX_FLOAT)
        return onnx__kfail(k, MD_E_UNSUPPORTED, "only float32 tensors are supported");
    onnx_mm_shape s;
    int rc = onnx__mm_shape(a, b, &s);
    if (rc)
        return onnx__kfail(k, MD_E_INVALID_PARAM, rc == -2 ? "inner dimensions differ"
                                                           : "shapes do not broadcast");
    onnx_tensor *y;
    if ((rc = onnx__output(k, 0, ONNX_FLOAT, s.rank, s.dims, &y)))
        return rc;
    md_err e;
    onnx__kern_set_threads(onnx__kern_threads_for(
        k->threads, (double)onnx_tensor_numel(y) * (double)s.k));
    if (mm_batches(&s, a->data, b->data, y->data, &e))
        return onnx__kfail(k, e.code, "%s", e.msg);
    onnx__kact_apply(&mp->act, y->data, (size_t)onnx_tensor_numel(y));
    return MD_OK;
}

ONNX_OPS(matmul) = {
    {.domain = "", .op_type = "MatMul", .opset_min = 1, .opset_max = 0, .min_in = 2, .max_in = 2,
     .min_out = 1, .max_out = 1, .attrs = NULL, .prepare = prepare_matmul, .run = run_matmul},
    ONNX_OPS_END
};
