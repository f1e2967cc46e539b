/* norm.c - normalisations other than BatchNormalization: LayerNormalization,
 * InstanceNormalization, MeanVarianceNormalization and LRN.
 *
 * Statistics are computed in double per normalised group, two passes (mean, then variance of
 * the deviations), which is both stable and what the reference implementations do.
 */
#include <math.h>
#include <string.h>

#include "onnx/onnx_int.h"

static bool is_fp(int dt) { return dt == ONNX_FLOAT || dt == ONNX_DOUBLE; }

/* LayerNormalization: normalise over axes [axis, rank); Scale and B broadcast over them.
 * Optional outputs: Mean and InvStdDev with the normalised dims kept as 1. */
static int run_layernorm(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0], *sc = k->in[1], *b = k->n_in > 2 ? k->in[2] : NULL;
    int axis;
    if (!is_fp(x->dtype) || onnx__norm_axis(onnx__attr_int(n, "axis", -1), x->rank, 0, &axis))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "needs a float input and a valid axis");
    double eps = onnx__attr_float(n, "epsilon", 1e-5f);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < x->rank; i++)
        *(i < axis ? &outer : &inner) *= x->dims[i];
    int64_t ns = onnx_tensor_numel(sc), nb = b ? onnx_tensor_numel(b) : 0;
    if ((ns != inner && ns != 1) || (b && nb != inner && nb != 1))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "Scale and B must cover the normalised dims");
    onnx_tensor *y, *mo = NULL, *io = NULL;
    int rc = onnx__output(k, 0, x->dtype, x->rank, x->dims, &y);
    int64_t sd[ONNX_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        sd[i] = i < axis ? x->dims[i] : 1;
    int sdt = (int)onnx__attr_int(n, "stash_type", 1) == 1 ? ONNX_FLOAT : x->dtype;
    if (!rc && k->n_out > 1)
        rc = onnx__output(k, 1, sdt, x->rank, sd, &mo);
    if (!rc && k->n_out > 2)
        rc = onnx__output(k, 2, sdt, x->rank, sd, &io);
    if (rc)
        return rc;
    for (int64_t a = 0; a < outer; a++) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < inner; i++)
            mean += onnx__get_f64(x, a * inner + i);
        mean /= (double)(inner ? inner : 1);
        for (int64_t i = 0; i < inner; i++) {
            double d = onnx__get_f64(x, a * inner + i) - mean;
            var += d * d;
        }
        var /= (double)(inner ? inner : 1);
        double inv = 1 / sqrt(var + eps);
        for (int64_t i = 0; i < inner; i++) {
            double v = (onnx__get_f64(x, a * inner + i) - mean) * inv;
            v = v * onnx__get_f64(sc, ns == 1 ? 0 : i) + (b ? onnx__get_f64(b, nb == 1 ? 0 : i) : 0);
            onnx__set_f64(y, a * inner + i, v);
        }
        if (mo)
            onnx__set_f64(mo, a, mean);
        if (io)
            onnx__set_f64(io, a, inv);
    }
    return MD_OK;
}

/* InstanceNormalization: per (n, c) over the spatial dims, then scale[c], bias[c]. */
static int run_instnorm(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0], *sc = k->in[1], *b = k->in[2];
    if (!is_fp(x->dtype) || x->rank < 2)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "needs a float input [N, C, ...]");
    int64_t N = x->dims[0], C = x->dims[1], S = 1;
    for (int i = 2; i < x->rank; i++)
        S *= x->dims[i];
    if (onnx_tensor_numel(sc) != C || onnx_tensor_numel(b) != C)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "scale and B must have C entries");
    double eps = onnx__attr_float(n, "epsilon", 1e-5f);
    onnx_tensor *y;
    int rc = onnx__output(k, 0, x->dtype, x->rank, x->dims, &y);
    if (rc)
        return rc;
    for (int64_t g = 0; g < N * C; g++) {
        int64_t base = g * S, c = g % (C ? C : 1);
        double mean = 0, var = 0;
        for (int64_t i = 0; i < S; i++)
            mean += onnx__get_f64(x, base + i);
        mean /= (double)(S ? S : 1);
        for (int64_t i = 0; i < S; i++) {
            double d = onnx__get_f64(x, base + i) - mean;
            var += d * d;
        }
        var /= (double)(S ? S : 1);
        double inv = 1 / sqrt(var + eps), s = onnx__get_f64(sc, c), bb = onnx__get_f64(b, c);
        for (int64_t i = 0; i < S; i++)
            onnx__set_f64(y, base + i, (onnx__get_f64(x, base + i) - mean) * inv * s + bb);
    }
    return MD_OK;
}

/* MeanVarianceNormalization: (x - mean) / sqrt(var) over the given axes (default 0, 2, 3). */
static int run_mvn(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    if (!is_fp(x->dtype))
        return onnx__kfail(k, MD_E_UNSUPPORTED, "type %s", onnx_dtype_name(x->dtype));
    const int64_t *ax;
    size_t na = onnx__attr_ints(n, "axes", &ax);
    static const int64_t def[] = {0, 2, 3};
    if (!ax) {
        ax = def;
        na = 3;
    }
    bool red[ONNX_MAX_RANK] = {0};
    for (size_t i = 0; i < na; i++) {
        int a;
        if (onnx__norm_axis(ax[i], x->rank, 0, &a) != 0)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "axis out of range");
        red[a] = true;
    }
    onnx_tensor *y;
    int rc = onnx__output(k, 0, x->dtype, x->rank, x->dims, &y);
    if (rc)
        return rc;
    /* Group id of each element = its index over the kept dims. */
    int64_t total = onnx_tensor_numel(x), groups = 1, cnt = 1;
    for (int i = 0; i < x->rank; i++)
        *(red[i] ? &cnt : &groups) *= x->dims[i];
    double *acc = onnx__scratch(k, (size_t)(groups ? groups : 1) * 2 * sizeof(double));
    if (!acc)
        return MD_E_NOMEM;
    memset(acc, 0, (size_t)(groups ? groups : 1) * 2 * sizeof(double));
    for (int pass = 0; pass < 3; pass++) {
        int64_t idx[ONNX_MAX_RANK] = {0};
        for (int64_t e = 0; e < total; e++) {
            int64_t g = 0;
            for (int i = 0; i < x->rank; i++)
                if (!red[i])
                    g = g * x->dims[i] + idx[i];
            double v = onnx__get_f64(x, e);
            if (pass == 0)
                acc[g] += v / (double)cnt;
            else if (pass == 1)
                acc[groups + g] += (v - acc[g]) * (v - acc[g]) / (double)cnt;
            else
                onnx__set_f64(y, e, (v - acc[g]) / (sqrt(acc[groups + g]) + 1e-9));
            for (int i = x->rank - 1; i >= 0; i--) {
                if (++idx[i] < x->dims[i])
                    break;
                idx[i] = 0;
            }
        }
    }
    return MD_OK;
}

/* LRN across channels: y = x / (bias + alpha/size * sum(x^2 over the window))^beta. */
static int run_lrn(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    int64_t size = onnx__attr_int(n, "size", 0);
    if (!is_fp(x->dtype) || x->rank < 2 || size <= 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "needs a float [N, C, ...] input and size > 0");
    double alpha = onnx__attr_float(n, "alpha", 1e-4f), beta = onnx__attr_float(n, "beta", 0.75f);
    double bias = onnx__attr_float(n, "bias", 1.f);
    int64_t N = x->dims[0], C = x->dims[1], S = 1;
    for (int i = 2; i < x->rank; i++)
        S *= x->dims[i];
    onnx_tensor *y;
    int rc = onnx__output(k, 0, x->dtype, x->rank, x->dims, &y);
    if (rc)
        return rc;
    int64_t lo = (size - 1) / 2, hi = size - 1 - lo; /* floor((size-1)/2), ceil((size-1)/2) */
    for (int64_t a = 0; a < N; a++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t s = 0; s < S; s++) {
                double sq = 0;
                for (int64_t j = c - lo; j <= c + hi; j++)
                    if (j >= 0 && j < C) {
                        double v = onnx__get_f64(x, (a * C + j) * S + s);
                        sq += v * v;
                    }
                int64_t e = (a * C + c) * S + s;
                onnx__set_f64(y, e, onnx__get_f64(x, e) / pow(bias + alpha / (double)size * sq, beta));
            }
    return MD_OK;
}

ONNX_OPS(norm) = {
    {.domain = "", .op_type = "LayerNormalization", .opset_min = 17, .min_in = 2, .max_in = 3,
     .min_out = 1, .max_out = 3, .attrs = "axis:i epsilon:f stash_type:i", .run = run_layernorm},
    {.domain = "", .op_type = "InstanceNormalization", .opset_min = 1, .min_in = 3, .max_in = 3,
     .min_out = 1, .max_out = 1, .attrs = "epsilon:f consumed_inputs:I", .run = run_instnorm},
    {.domain = "", .op_type = "MeanVarianceNormalization", .opset_min = 9, .min_in = 1,
     .max_in = 1, .min_out = 1, .max_out = 1, .attrs = "axes:I", .run = run_mvn},
    {.domain = "", .op_type = "LRN", .opset_min = 1, .min_in = 1, .max_in = 1, .min_out = 1,
     .max_out = 1, .attrs = "alpha:f beta:f bias:f size:i", .run = run_lrn},
    ONNX_OPS_END,
};
