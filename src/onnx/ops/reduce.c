/* reduce.c - reductions: ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare,
 * ArgMax/ArgMin, and the softmax family (Softmax, LogSoftmax, Hardmax).
 *
 * Reductions accumulate in double, one accumulator per output element, walking the input
 * once in memory order (twice for LogSumExp, which subtracts the maximum for stability).
 * Softmax has two meanings: before opset 13 the input is viewed as 2-D [d0*..*d(axis-1),
 * rest] and normalised per row; from 13 on it is normalised along the one axis.
 */
#include <math.h>
#include <string.h>

#include "onnx/onnx_int.h"

typedef enum rop { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_LOGSUM, R_LSE, R_SUMSQ } rop;

/* Which axes to reduce: attribute (old opsets) or the optional axes input (ReduceSum >= 13).
 * Returns MD_OK with red[] set; all axes when none are given unless noop_with_empty_axes. */
static int reduce_axes(const onnx_node *n, onnx_kctx *k, bool from_input, bool *red, bool *noop)
{
    const onnx_tensor *x = k->in[0];
    int64_t axes[ONNX_MAX_RANK];
    int na = -1;
    *noop = false;
    if (from_input) {
        if (k->n_in > 1 && k->in[1]) {
            const onnx_tensor *a = k->in[1];
            int64_t c = onnx_tensor_numel(a);
            if (a->rank > 1 || c > ONNX_MAX_RANK || a->dtype != ONNX_INT64)
                return onnx__kfail(k, MD_E_INVALID_PARAM, "axes must be a 1-D int64 list");
            for (int64_t i = 0; i < c; i++)
                axes[i] = ((const int64_t *)a->data)[i];
            na = (int)c;
        }
    } else {
        const int64_t *v;
        size_t c = onnx__attr_ints(n, "axes", &v);
        if (v) {
            if (c > ONNX_MAX_RANK)
                return onnx__kfail(k, MD_E_INVALID_PARAM, "too many axes");
            memcpy(axes, v, c * sizeof *v);
            na = (int)c;
        }
    }
    for (int i = 0; i < x->rank; i++)
        red[i] = na <= 0;
    if (na <= 0 && onnx__attr_int(n, "noop_with_empty_axes", 0)) {
        for (int i = 0; i < x->rank; i++)
            red[i] = false;
        *noop = true;
    }
    for (int i = 0; i < na; i++) {
        int a;
        if (onnx__norm_axis(axes[i], x->rank, 0, &a) != 0)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "axis %lld out of range", (long long)axes[i]);
        red[a] = true;
    }
    return MD_OK;
}

static double init_of(rop op)
{
    return op == R_MAX || op == R_LSE ? -INFINITY : op == R_MIN ? INFINITY : op == R_PROD ? 1 : 0;
}

static double fold(rop op, double acc, double v)
{
    switch (op) {
    case R_MAX: return v > acc || isnan(v) ? v : acc;
    case R_MIN: return v < acc || isnan(v) ? v : acc;
    case R_PROD: return acc * v;
    case R_L1: return acc + fabs(v);
    case R_L2: case R_SUMSQ: return acc + v * v;
    default: return acc + v;
    }
}

/* Walk x in memory order; call back with each element and its output offset. */
static void walk(const onnx_tensor *x, const int64_t *ostride, double *acc, rop op,
                 const double *shift)
{
    int r = x->rank;
    int64_t total = onnx_tensor_numel(x), idx[ONNX_MAX_RANK] = {0}, off = 0;
    for (int64_t e = 0; e < total; e++) {
        double v = onnx__get_f64(x, e);
        if (shift)
            acc[off] += exp(v - shift[off]);
        else
            acc[off] = fold(op, acc[off], v);
        for (int d = r - 1; d >= 0; d--) {
            off += ostride[d];
            if (++idx[d] < x->dims[d])
                break;
            off -= ostride[d] * x->dims[d];
            idx[d] = 0;
        }
    }
}

static int run_reduce(const onnx_node *n, onnx_kctx *k, rop op, bool axes_input)
{
    const onnx_tensor *x = k->in[0];
    if (x->dtype == ONNX_STRING || x->dtype == ONNX_BOOL || x->dtype == ONNX_FLOAT16)
        return onnx__kfail(k, MD_E_UNSUPPORTED, "type %s", onnx_dtype_name(x->dtype));
    bool red[ONNX_MAX_RANK], noop;
    int rc = reduce_axes(n, k, axes_input, red, &noop);
    if (rc)
        return rc;
    bool keep = onnx__attr_int(n, "keepdims", 1) != 0;
    int64_t od[ONNX_MAX_RANK], kd[ONNX_MAX_RANK], ostride[ONNX_MAX_RANK], count = 1;
    int orank = 0;
    for (int i = 0; i < x->rank; i++) {
        kd[i] = red[i] ? 1 : x->dims[i];
        if (red[i])
            count *= x->dims[i];
        if (!red[i] || keep)
            od[orank++] = kd[i];
    }
    for (int i = x->rank - 1, s = 1; i >= 0; i--) {
        ostride[i] = red[i] ? 0 : s;
        s *= (int)kd[i];
    }
    onnx_tensor *o;
    if ((rc = onnx__output(k, 0, x->dtype, orank, od, &o)))
        return rc;
    int64_t on = onnx_tensor_numel(o);
    double *acc = onnx__scratch(k, (size_t)(on ? on : 1) * sizeof(double) * 2);
    if (!acc)
        return MD_E_NOMEM;
    double *mx = acc + (on ? on : 1);
    for (int64_t i = 0; i < on; i++)
        acc[i] = init_of(op);
    walk(x, ostride, acc, op == R_LSE ? R_MAX : op, NULL);
    if (op == R_LSE) {
        for (int64_t i = 0; i < on; i++) {
            mx[i] = isinf(acc[i]) ? 0 : acc[i];
            acc[i] = 0;
        }
        walk(x, ostride, acc, op, mx);
    }
    for (int64_t i = 0; i < on; i++) {
        double v = acc[i];
        switch (op) {
        case R_MEAN: v = count ? v / (double)count : NAN; break;
        case R_L2: v = sqrt(v); break;
        case R_LOGSUM: v = log(v); break;
        case R_LSE: v = mx[i] + log(v); break;
        default: break;
        }
        onnx__set_f64(o, i, v);
    }
    if (noop && on) /* identity, exactly (no double round trip for int64) */
        memcpy(o->data, x->data, (size_t)on * onnx_dtype_size(x->dtype));
    return MD_OK;
}

#define RED(NAME, OP, AXIN)                                                    \
    static int run_##NAME(const onnx_node *n, onnx_kctx *k)                    \
    {                                                                          \
        return run_reduce(n, k, OP, AXIN);                                     \
    }
RED(rsum_old, R_SUM, false)
RED(rsum, R_SUM, true)
RED(rmean, R_MEAN, false)
RED(rmax, R_MAX, false)
RED(rmin, R_MIN, false)
RED(rprod, R_PROD, false)
RED(rl1, R_L1, false)
RED(rl2, R_L2, false)
RED(rlogsum, R_LOGSUM, false)
RED(rlse, R_LSE, false)
RED(rsumsq, R_SUMSQ, false)

/* ---- ArgMax / ArgMin ---- */

static int run_arg(const onnx_node *n, onnx_kctx *k, bool want_max)
{
    const onnx_tensor *x = k->in[0];
    int axis;
    if (x->rank < 1 || onnx__norm_axis(onnx__attr_int(n, "axis", 0), x->rank, 0, &axis) != 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "axis out of range");
    if (x->dtype == ONNX_STRING || x->dtype == ONNX_FLOAT16)
        return onnx__kfail(k, MD_E_UNSUPPORTED, "type %s", onnx_dtype_name(x->dtype));
    bool keep = onnx__attr_int(n, "keepdims", 1) != 0;
    bool last = onnx__attr_int(n, "select_last_index", 0) != 0;
    int64_t od[ONNX_MAX_RANK], outer = 1, inner = 1, len = x->dims[axis];
    int orank = 0;
    for (int i = 0; i < x->rank; i++) {
        if (i < axis)
            outer *= x->dims[i];
        if (i > axis)
            inner *= x->dims[i];
        if (i != axis || keep)
            od[orank++] = i == axis ? 1 : x->dims[i];
    }
    if (len == 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "cannot take the arg of an empty axis");
    onnx_tensor *o;
    int rc = onnx__output(k, 0, ONNX_INT64, orank, od, &o);
    if (rc)
        return rc;
    int64_t *out = o->data;
    for (int64_t a = 0; a < outer; a++)
        for (int64_t c = 0; c < inner; c++) {
            int64_t best = 0;
            double bv = onnx__get_f64(x, a * len * inner + c);
            for (int64_t i = 1; i < len; i++) {
                double v = onnx__get_f64(x, (a * len + i) * inner + c);
                bool better = want_max ? (last ? v >= bv : v > bv) : (last ? v <= bv : v < bv);
                if (better) {
                    bv = v;
                    best = i;
                }
            }
            out[a * inner + c] = best;
        }
    return MD_OK;
}

static int run_argmax(const onnx_node *n, onnx_kctx *k) { return run_arg(n, k, true); }
static int run_argmin(const onnx_node *n, onnx_kctx *k) { return run_arg(n, k, false); }

/* ---- Softmax family ---- */

typedef enum smop { SM_SOFTMAX, SM_LOG, SM_HARD } smop;

static void softmax_line(smop op, const double *x, double *y, int64_t len)
{
    double mx = -INFINITY;
    int64_t arg = 0;
    for (int64_t i = 0; i < len; i++)
        if (x[i] > mx) {
            mx = x[i];
            arg = i;
        }
    if (op == SM_HARD) {
        for (int64_t i = 0; i < len; i++)
            y[i] = i == arg;
        return;
    }
    double s = 0;
    for (int64_t i = 0; i < len; i++)
        s += exp(x[i] - mx);
    for (int64_t i = 0; i < len; i++)
        y[i] = op == SM_LOG ? x[i] - mx - log(s) : exp(x[i] - mx) / s;
}

static int run_softmax_any(const onnx_node *n, onnx_kctx *k, smop op)
{
    const onnx_tensor *x = k->in[0];
    if (x->dtype != ONNX_FLOAT && x->dtype != ONNX_DOUBLE)
        return onnx__kfail(k, MD_E_UNSUPPORTED, "type %s", onnx_dtype_name(x->dtype));
    bool old = n->opset < 13;
    int axis;
    if (onnx__norm_axis(onnx__attr_int(n, "axis", old ? 1 : -1), x->rank ? x->rank : 1, 0,
                        &axis) != 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "axis out of range");
    int64_t outer = 1, len = 1, inner = 1;
    for (int i = 0; i < x->rank; i++) {
        if (i < axis)
            outer *= x->dims[i];
        else if (i == axis || old)
            len *= x->dims[i];
        else
            inner *= x->dims[i];
    }
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, x->rank, x->dims, &o);
    if (rc)
        return rc;
    double *buf = onnx__scratch(k, (size_t)(len ? len : 1) * 2 * sizeof(double));
    if (!buf)
        return MD_E_NOMEM;
    for (int64_t a = 0; a < outer; a++)
        for (int64_t c = 0; c < inner; c++) {
            int64_t base = a * len * inner + c;
            for (int64_t i = 0; i < len; i++)
                buf[i] = onnx__get_f64(x, base + i * inner);
            softmax_line(op, buf, buf + len, len);
            for (int64_t i = 0; i < len; i++)
                onnx__set_f64(o, base + i * inner, buf[len + i]);
        }
    return MD_OK;
}

static int run_softmax(const onnx_node *n, onnx_kctx *k) { return run_softmax_any(n, k, SM_SOFTMAX); }
static int run_logsoftmax(const onnx_node *n, onnx_kctx *k) { return run_softmax_any(n, k, SM_LOG); }
static int run_hardmax(const onnx_node *n, onnx_kctx *k) { return run_softmax_any(n, k, SM_HARD); }

#define R1(NAME, LO, HI, INMAX, ATTRS, FN)                                                  \
    {.domain = "", .op_type = NAME, .opset_min = LO, .opset_max = HI, .min_in = 1,          \
     .max_in = INMAX, .min_out = 1, .max_out = 1, .attrs = ATTRS, .run = FN}
#define RA "axes:I keepdims:i"

ONNX_OPS(reduce) = {
    R1("ReduceSum", 1, 12, 1, RA, run_rsum_old),
    R1("ReduceSum", 13, 0, 2, "keepdims:i noop_with_empty_axes:i", run_rsum),
    R1("ReduceMean", 1, 17, 1, RA, run_rmean),
    R1("ReduceMax", 1, 17, 1, RA, run_rmax),
    R1("ReduceMin", 1, 17, 1, RA, run_rmin),
    R1("ReduceProd", 1, 17, 1, RA, run_rprod),
    R1("ReduceL1", 1, 17, 1, RA, run_rl1),
    R1("ReduceL2", 1, 17, 1, RA, run_rl2),
    R1("ReduceLogSum", 1, 17, 1, RA, run_rlogsum),
    R1("ReduceLogSumExp", 1, 17, 1, RA, run_rlse),
    R1("ReduceSumSquare", 1, 17, 1, RA, run_rsumsq),
    R1("ArgMax", 1, 0, 1, "axis:i keepdims:i select_last_index:i", run_argmax),
    R1("ArgMin", 1, 0, 1, "axis:i keepdims:i select_last_index:i", run_argmin),
    R1("Softmax", 1, 0, 1, "axis:i", run_softmax),
    R1("LogSoftmax", 1, 0, 1, "axis:i", run_logsoftmax),
    R1("Hardmax", 1, 0, 1, "axis:i", run_hardmax),
    ONNX_OPS_END,
};
