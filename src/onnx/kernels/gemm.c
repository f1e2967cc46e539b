/* gemm.c - the matrix product behind Gemm and MatMul.
 *
 * oneDNN's sgemm is used rather than OpenBLAS because it honours the calling thread's OpenMP
 * thread count: concurrent requests each get their own intra-op threads, where OpenBLAS's thread
 * count is one process-wide setting. Its jit kernels match OpenBLAS on these sizes.
 */
#include <oneapi/dnnl/dnnl.h>

#include "onnx/kernels/kernels.h"

int onnx__sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                int64_t ldc, md_err *e)
{
    if (m < 0 || n < 0 || k < 0)
        return md_fail(e, MD_E_INVALID_PARAM, NULL, "negative matrix size");
    if (m == 0 || n == 0)
        return MD_OK;
    if (k == 0) {
        /* An empty sum: C = beta * C (beta 0 overwrites, so NaN/garbage in C is dropped). */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return MD_OK;
    }
    dnnl_status_t s = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a,
                                 lda, b, ldb, beta, c, ldc);
    if (s != dnnl_success)
        return md_fail(e, MD_E_INTERNAL, NULL, "sgemm failed (%d) for %lldx%lldx%lld", (int)s,
                       (long long)m, (long long)n, (long long)k);
    return MD_OK;
}
