/* matmul.c - ONNX MatMul with numpy semantics: 1-D operands promoted and the added dim dropped,
 * batch dims broadcast, on the sgemm of kernels/gemm.c.
 *
 * When B has no batch (the common "activations x weights" case) the whole batch of A is one
 * tall matrix and runs as a single sgemm; otherwise one sgemm per output batch entry, with the
 * operands' offsets following the broadcast.
 */
#include <string.h>

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

/* The operands as batches of matrices. */
typedef struct mm_shape {
    int64_t m, k, n;
    int brank;                         /* output batch rank */
    int64_t bdims[ONNX_MAX_RANK];      /* output batch dims */
    int64_t astr[ONNX_MAX_RANK], bstr[ONNX_MAX_RANK]; /* matrix strides per batch dim, 0 = bcast */
    int rank;                          /* output rank and dims */
    int64_t dims[ONNX_MAX_RANK];
} mm_shape;

/* Batch strides (in matrices) of an operand whose batch dims d[0..r) are right-aligned to the
 * output batch; 0 along broadcast dims. Returns -1 when the dims do not broadcast. */
static int batch_strides(const int64_t *d, int r, const mm_shape *s, int64_t *str)
{
    int64_t acc = 1;
    for (int i = s->brank - 1; i >= 0; i--) {
        int j = i - (s->brank - r);
        int64_t di = j >= 0 ? d[j] : 1;
        if (di != 1 && di != s->bdims[i])
            return -1;
        str[i] = di == 1 ? 0 : acc;
        acc *= di;
    }
    return 0;
}

static int mm_shape_of(const onnx_tensor *a, const onnx_tensor *b, mm_shape *s)
{
    if (a->rank < 1 || b->rank < 1)
        return -1;
    int ar = a->rank == 1 ? 0 : a->rank - 2, br = b->rank == 1 ? 0 : b->rank - 2;
    s->m = a->rank == 1 ? 1 : a->dims[a->rank - 2];
    s->k = a->dims[a->rank - 1];
    s->n = b->rank == 1 ? 1 : b->dims[b->rank - 1];
    if ((b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2]) != s->k)
        return -2;
    if (onnx__broadcast(ar, a->dims, br, b->dims, &s->brank, s->bdims) < 0 ||
        s->brank > ONNX_MAX_RANK - 2)
        return -1;
    if (batch_strides(a->dims, ar, s, s->astr) || batch_strides(b->dims, br, s, s->bstr))
        return -1;
    s->rank = s->brank;
    memcpy(s->dims, s->bdims, sizeof(int64_t) * (size_t)s->brank);
    if (a->rank != 1)
        s->dims[s->rank++] = s->m;
    if (b->rank != 1)
        s->dims[s->rank++] = s->n;
    return 0;
}

static int mm_batches(const mm_shape *s, const float *a, const float *b, float *y, md_err *e)
{
    int64_t nb = 1, bmat = 0;
    for (int i = 0; i < s->brank; i++) {
        nb *= s->bdims[i];
        bmat |= s->bstr[i];
    }
    if (bmat == 0) /* B shared by every batch: one tall product */
        return onnx__sgemm(0, 0, nb * s->m, s->n, s->k, 1.0f, a, s->k, b, s->n, 0.0f, y, s->n, e);
    for (int64_t i = 0; i < nb; i++) {
        int64_t rem = i, ao = 0, bo = 0;
        for (int d = s->brank - 1; d >= 0; d--) {
            int64_t c = rem % s->bdims[d];
            rem /= s->bdims[d];
            ao += c * s->astr[d];
            bo += c * s->bstr[d];
        }
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
    mm_shape s;
    int rc = mm_shape_of(a, b, &s);
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
