/* batchnorm.c - BatchNormalization over [n][c][spatial], inference and training forms.
 *
 * Inference folds the four per-channel vectors into one scale and one shift first, so the inner
 * loop is a single multiply-add that the compiler vectorises. Statistics of the training form
 * are accumulated in double: a float sum over a large plane loses the digits the ONNX test
 * tolerance checks.
 */
#include <math.h>

#include "onnx/kernels/kernels.h"

static void affine_plane(const float *x, float a, float b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] * a + b;
}

void onnx__batchnorm(int64_t n, int64_t c, int64_t spatial, const float *x, const float *scale,
                     const float *b, const float *mean, const float *var, float eps,
                     const onnx_kact *act, float *y)
{
    for (int64_t ch = 0; ch < c; ch++) {
        float a = scale[ch] / sqrtf(var[ch] + eps);
        float sh = b[ch] - mean[ch] * a;
        for (int64_t i = 0; i < n; i++) {
            int64_t off = (i * c + ch) * spatial;
            affine_plane(x + off, a, sh, y + off, spatial);
        }
    }
    onnx__kact_apply(act, y, (size_t)(n * c * spatial));
}

/* Mean and biased variance of channel ch over the batch and the spatial positions. */
static void channel_stats(int64_t n, int64_t c, int64_t spatial, const float *x, int64_t ch,
                          double *mean, double *var)
{
    double sum = 0.0, sq = 0.0;
    int64_t cnt = n * spatial;
    for (int64_t i = 0; i < n; i++) {
        const float *p = x + (i * c + ch) * spatial;
        for (int64_t j = 0; j < spatial; j++)
            sum += p[j];
    }
    double m = cnt > 0 ? sum / (double)cnt : 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float *p = x + (i * c + ch) * spatial;
        for (int64_t j = 0; j < spatial; j++)
            sq += (p[j] - m) * (p[j] - m);
    }
    *mean = m;
    *var = cnt > 0 ? sq / (double)cnt : 0.0;
}

void onnx__batchnorm_train(int64_t n, int64_t c, int64_t spatial, const float *x,
                           const float *scale, const float *b, const float *mean,
                           const float *var, float eps, float momentum, float *y,
                           float *run_mean, float *run_var)
{
    for (int64_t ch = 0; ch < c; ch++) {
        double bm, bv;
        channel_stats(n, c, spatial, x, ch, &bm, &bv);
        float a = (float)(scale[ch] / sqrt(bv + eps));
        float sh = (float)(b[ch] - bm * a);
        for (int64_t i = 0; i < n; i++) {
            int64_t off = (i * c + ch) * spatial;
            affine_plane(x + off, a, sh, y + off, spatial);
        }
        if (run_mean != NULL)
            run_mean[ch] = (float)(mean[ch] * momentum + bm * (1.0 - momentum));
        if (run_var != NULL)
            run_var[ch] = (float)(var[ch] * momentum + bv * (1.0 - momentum));
    }
}
