/* act.c - activations applied after a kernel, and the per-thread intra-op thread setting.
 *
 * oneDNN fuses activations as post-ops; these loops serve the paths that cannot (the direct
 * convolution fallback, Gemm/MatMul, BatchNormalization), so that an op that absorbed a Relu
 * computes the same values whichever path ran.
 */
#include <math.h>
#include <omp.h>

#include "onnx/kernels/kernels.h"

void onnx__kact_apply(const onnx_kact *a, float *x, size_t n)
{
    if (a == NULL)
        return;
    switch (a->kind) {
    case ONNX_KACT_NONE:
        break;
    case ONNX_KACT_RELU:
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case ONNX_KACT_LEAKY:
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] < 0.0f ? a->alpha * x[i] : x[i];
        break;
    case ONNX_KACT_CLIP:
        /* NaN stays NaN, as in ONNX's reference (comparisons with NaN are false). */
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            v = v < a->alpha ? a->alpha : v;
            x[i] = v > a->beta ? a->beta : v;
        }
        break;
    case ONNX_KACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            x[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case ONNX_KACT_TANH:
        for (size_t i = 0; i < n; i++)
            x[i] = tanhf(x[i]);
        break;
    }
}

void onnx__kern_set_threads(int n)
{
    /* nthreads-var is a per-thread ICV: this changes the calling thread's teams only, so
     * concurrent requests with different settings do not interfere. Setting it only when it
     * differs avoids touching OpenMP state on every node. */
    if (n < 1)
        n = 1;
    if (omp_get_max_threads() != n)
        omp_set_num_threads(n);
}

/* Below this many multiply-adds a kernel runs on the calling thread alone. */
#define PAR_MIN_MACS (1024.0 * 1024.0)

int onnx__kern_threads_for(int threads, double macs)
{
    return macs < PAR_MIN_MACS || threads < 1 ? 1 : threads;
}
