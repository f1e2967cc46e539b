/* unary.c - elementwise operators of one input: activations (Relu, LeakyRelu, Elu, Selu,
 * Celu, Sigmoid, HardSigmoid, HardSwish, Softplus, Softsign, ThresholdedRelu, Shrink, Tanh),
 * math (Exp Log Sqrt Reciprocal Neg Abs Floor Ceil Round Sign Erf and the trigonometric
 * family), tests (IsNaN IsInf Not), Clip, Identity, Dropout (inference) and Cast.
 *
 * Float tensors get tight float loops for the activations networks use; everything else goes
 * through one double-precision function, which is exact for float and for integers that fit
 * in 53 bits. Conversions to integers saturate instead of invoking undefined behaviour.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx_int.h"

typedef enum uop {
    U_RELU, U_LEAKY, U_ELU, U_SELU, U_CELU, U_SIGMOID, U_HSIGMOID, U_HSWISH, U_SOFTPLUS,
    U_SOFTSIGN, U_THRELU, U_SHRINK, U_TANH, U_EXP, U_LOG, U_SQRT, U_RECIP, U_NEG, U_ABS,
    U_FLOOR, U_CEIL, U_ROUND, U_SIGN, U_ERF, U_SIN, U_COS, U_TAN, U_ASIN, U_ACOS, U_ATAN,
    U_SINH, U_COSH, U_ASINH, U_ACOSH, U_ATANH, U_CLIP,
} uop;

typedef struct uparams {
    double alpha, beta, gamma, lo, hi;
} uparams;

static double apply(uop op, double x, const uparams *p)
{
    switch (op) {
    case U_RELU: return x > 0 ? x : (x == x ? 0 : x);
    case U_LEAKY: return x >= 0 ? x : p->alpha * x;
    case U_ELU: return x >= 0 ? x : p->alpha * (exp(x) - 1);
    case U_SELU: return p->gamma * (x > 0 ? x : p->alpha * (exp(x) - 1));
    case U_CELU: return fmax(0, x) + fmin(0, p->alpha * (exp(x / p->alpha) - 1));
    case U_SIGMOID: return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
    case U_HSIGMOID: return fmax(0, fmin(1, p->alpha * x + p->beta));
    case U_HSWISH: return x * fmax(0, fmin(1, x / 6 + 0.5));
    case U_SOFTPLUS: return x > 30 ? x : log1p(exp(x));
    case U_SOFTSIGN: return x / (1 + fabs(x));
    case U_THRELU: return x > p->alpha ? x : 0;
    case U_SHRINK: return x < -p->alpha ? x + p->beta : x > p->alpha ? x - p->beta : 0;
    case U_TANH: return tanh(x);
    case U_EXP: return exp(x);
    case U_LOG: return log(x);
    case U_SQRT: return sqrt(x);
    case U_RECIP: return 1 / x;
    case U_NEG: return -x;
    case U_ABS: return fabs(x);
    case U_FLOOR: return floor(x);
    case U_CEIL: return ceil(x);
    case U_ROUND: return nearbyint(x); /* ties to even under the default rounding mode */
    case U_SIGN: return x > 0 ? 1 : x < 0 ? -1 : x;
    case U_ERF: return erf(x);
    case U_SIN: return sin(x);
    case U_COS: return cos(x);
    case U_TAN: return tan(x);
    case U_ASIN: return asin(x);
    case U_ACOS: return acos(x);
    case U_ATAN: return atan(x);
    case U_SINH: return sinh(x);
    case U_COSH: return cosh(x);
    case U_ASINH: return asinh(x);
    case U_ACOSH: return acosh(x);
    case U_ATANH: return atanh(x);
    case U_CLIP: return x < p->lo ? p->lo : x > p->hi ? p->hi : x;
    }
    return x;
}

/* Float fast paths for the activations that sit between convolutions. */
static bool float_fast(uop op, const float *a, float *o, int64_t n, const uparams *p)
{
    switch (op) {
    case U_RELU:
        for (int64_t i = 0; i < n; i++)
            o[i] = a[i] > 0 ? a[i] : (a[i] == a[i] ? 0.f : a[i]);
        return true;
    case U_LEAKY: {
        float al = (float)p->alpha;
        for (int64_t i = 0; i < n; i++)
            o[i] = a[i] >= 0 ? a[i] : al * a[i];
        return true;
    }
    case U_SIGMOID:
        for (int64_t i = 0; i < n; i++)
            o[i] = a[i] >= 0 ? 1.f / (1.f + expf(-a[i])) : expf(a[i]) / (1.f + expf(a[i]));
        return true;
    case U_TANH:
        for (int64_t i = 0; i < n; i++)
            o[i] = tanhf(a[i]);
        return true;
    case U_CLIP: {
        float lo = (float)p->lo, hi = (float)p->hi;
        for (int64_t i = 0; i < n; i++)
            o[i] = a[i] < lo ? lo : a[i] > hi ? hi : a[i];
        return true;
    }
    default:
        return false;
    }
}

static bool is_float(int dt)
{
    return dt == ONNX_FLOAT || dt == ONNX_DOUBLE || dt == ONNX_FLOAT16 || dt == ONNX_BFLOAT16;
}

static bool is_int(int dt)
{
    return dt == ONNX_INT8 || dt == ONNX_INT16 || dt == ONNX_INT32 || dt == ONNX_INT64 ||
           dt == ONNX_UINT8 || dt == ONNX_UINT16 || dt == ONNX_UINT32 || dt == ONNX_UINT64;
}

/* Ops that make sense on integers (Clip, Neg, Abs, Sign, Relu). */
static bool int_ok(uop op)
{
    return op == U_CLIP || op == U_NEG || op == U_ABS || op == U_SIGN || op == U_RELU;
}

static int run_unary(const onnx_node *n, onnx_kctx *k, uop op, const uparams *p)
{
    (void)n;
    const onnx_tensor *x = k->in[0];
    if (!is_float(x->dtype) && !(is_int(x->dtype) && int_ok(op)))
        return onnx__kfail(k, MD_E_UNSUPPORTED, "type %s is not supported",
                           onnx_dtype_name(x->dtype));
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, x->rank, x->dims, &o);
    if (rc)
        return rc;
    int64_t cnt = onnx_tensor_numel(x);
    if (x->dtype == ONNX_FLOAT && float_fast(op, x->data, o->data, cnt, p))
        return MD_OK;
    if (x->dtype == ONNX_FLOAT) {
        const float *a = x->data;
        float *of = o->data;
        for (int64_t i = 0; i < cnt; i++)
            of[i] = (float)apply(op, a[i], p);
        return MD_OK;
    }
    if (x->dtype == ONNX_INT64 && op != U_CLIP) { /* exact for the full int64 range */
        const int64_t *a = x->data;
        int64_t *oi = o->data;
        for (int64_t i = 0; i < cnt; i++)
            oi[i] = op == U_NEG ? (int64_t)(0 - (uint64_t)a[i])
                  : op == U_ABS ? (a[i] < 0 ? (int64_t)(0 - (uint64_t)a[i]) : a[i])
                  : op == U_RELU ? (a[i] > 0 ? a[i] : 0)
                                 : (a[i] > 0) - (a[i] < 0);
        return MD_OK;
    }
    for (int64_t i = 0; i < cnt; i++)
        onnx__set_f64(o, i, apply(op, onnx__get_f64(x, i), p));
    return MD_OK;
}

#define SIMPLE(NAME, OP)                                                  \
    static int run_##NAME(const onnx_node *n, onnx_kctx *k)              \
    {                                                                     \
        uparams p = {0};                                                  \
        return run_unary(n, k, OP, &p);                                   \
    }
SIMPLE(relu, U_RELU)
SIMPLE(sigmoid, U_SIGMOID)
SIMPLE(hswish, U_HSWISH)
SIMPLE(softplus, U_SOFTPLUS)
SIMPLE(softsign, U_SOFTSIGN)
SIMPLE(tanh, U_TANH)
SIMPLE(exp, U_EXP)
SIMPLE(log, U_LOG)
SIMPLE(sqrt, U_SQRT)
SIMPLE(recip, U_RECIP)
SIMPLE(neg, U_NEG)
SIMPLE(abs, U_ABS)
SIMPLE(floor, U_FLOOR)
SIMPLE(ceil, U_CEIL)
SIMPLE(round, U_ROUND)
SIMPLE(sign, U_SIGN)
SIMPLE(erf, U_ERF)
SIMPLE(sin, U_SIN)
SIMPLE(cos, U_COS)
SIMPLE(tan, U_TAN)
SIMPLE(asin, U_ASIN)
SIMPLE(acos, U_ACOS)
SIMPLE(atan, U_ATAN)
SIMPLE(sinh, U_SINH)
SIMPLE(cosh, U_COSH)
SIMPLE(asinh, U_ASINH)
SIMPLE(acosh, U_ACOSH)
SIMPLE(atanh, U_ATANH)

#define WITH_ATTRS(NAME, OP, A, B, G)                                                   \
    static int run_##NAME(const onnx_node *n, onnx_kctx *k)                             \
    {                                                                                   \
        uparams p = {.alpha = onnx__attr_float(n, "alpha", A),                          \
                     .beta = onnx__attr_float(n, OP == U_SHRINK ? "bias" : "beta", B),   \
                     .gamma = onnx__attr_float(n, "gamma", G)};                         \
        if (OP == U_SHRINK)                                                             \
            p.alpha = onnx__attr_float(n, "lambd", A);                                  \
        return run_unary(n, k, OP, &p);                                                 \
    }
WITH_ATTRS(leaky, U_LEAKY, 0.01f, 0, 0)
WITH_ATTRS(elu, U_ELU, 1.f, 0, 0)
WITH_ATTRS(selu, U_SELU, 1.67326319217681884765625f, 0, 1.05070102214813232421875f)
WITH_ATTRS(celu, U_CELU, 1.f, 0, 0)
WITH_ATTRS(hsigmoid, U_HSIGMOID, 0.2f, 0.5f, 0)
WITH_ATTRS(threlu, U_THRELU, 1.f, 0, 0)
WITH_ATTRS(shrink, U_SHRINK, 0.5f, 0, 0)

/* Clip: bounds are attributes before opset 11 and optional scalar inputs from 11 on. */
static int run_clip(const onnx_node *n, onnx_kctx *k)
{
    uparams p = {.lo = -INFINITY, .hi = INFINITY};
    if (n->opset < 11) {
        p.lo = onnx__attr_float(n, "min", -FLT_MAX);
        p.hi = onnx__attr_float(n, "max", FLT_MAX);
    } else {
        for (int i = 1; i < 3 && i < k->n_in; i++) {
            const onnx_tensor *b = k->in[i];
            if (!b)
                continue;
            if (onnx_tensor_numel(b) != 1 || b->dtype != k->in[0]->dtype)
                return onnx__kfail(k, MD_E_INVALID_PARAM, "min/max must be scalars of X's type");
            *(i == 1 ? &p.lo : &p.hi) = onnx__get_f64(b, 0);
        }
    }
    return run_unary(n, k, U_CLIP, &p);
}

/* ---- predicates ---- */

static int run_pred(onnx_kctx *k, int kind, const onnx_node *n)
{
    const onnx_tensor *x = k->in[0];
    bool logic = kind == 2;
    if (logic ? x->dtype != ONNX_BOOL : !is_float(x->dtype))
        return onnx__kfail(k, MD_E_UNSUPPORTED, "type %s is not supported",
                           onnx_dtype_name(x->dtype));
    onnx_tensor *o;
    int rc = onnx__output(k, 0, ONNX_BOOL, x->rank, x->dims, &o);
    if (rc)
        return rc;
    int64_t cnt = onnx_tensor_numel(x);
    uint8_t *ob = o->data;
    int neg = (int)onnx__attr_int(n, "detect_negative", 1);
    int pos = (int)onnx__attr_int(n, "detect_positive", 1);
    for (int64_t i = 0; i < cnt; i++) {
        if (logic) {
            ob[i] = !((const uint8_t *)x->data)[i];
            continue;
        }
        double v = onnx__get_f64(x, i);
        ob[i] = kind == 0 ? isnan(v) != 0 : (isinf(v) && ((v > 0 && pos) || (v < 0 && neg)));
    }
    return MD_OK;
}

static int run_isnan(const onnx_node *n, onnx_kctx *k) { return run_pred(k, 0, n); }
static int run_isinf(const onnx_node *n, onnx_kctx *k) { return run_pred(k, 1, n); }
static int run_not(const onnx_node *n, onnx_kctx *k) { return run_pred(k, 2, n); }

/* ---- Identity, Dropout ---- */

static int copy_to(onnx_kctx *k, int idx, const onnx_tensor *x)
{
    onnx_tensor *o;
    int rc = onnx__output(k, idx, x->dtype, x->rank, x->dims, &o);
    if (rc)
        return rc;
    size_t bytes = (size_t)onnx_tensor_numel(x) * onnx_dtype_size(x->dtype);
    if (bytes)
        memcpy(o->data, x->data, bytes);
    return MD_OK;
}

static int run_identity(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    const onnx_tensor *x = k->in[0];
    if (x->kind != ONNX_KIND_TENSOR) /* a sequence or an optional: copy what it holds */
        return onnx__output_value(k, 0, x);
    return copy_to(k, 0, x);
}

/* Inference-mode Dropout: output = input, mask all true. Training mode is random unless the
 * ratio is 0, where it is the identity too; other training-mode runs are refused. */
static int run_dropout(const onnx_node *n, onnx_kctx *k)
{
    bool training = k->n_in >= 3 && k->in[2] && onnx_tensor_numel(k->in[2]) == 1 &&
                    onnx__get_f64(k->in[2], 0) != 0;
    double ratio = k->n_in >= 2 && k->in[1] && onnx_tensor_numel(k->in[1]) == 1
                       ? onnx__get_f64(k->in[1], 0)
                       : 0.5;
    if (training && ratio != 0)
        return onnx__kfail(k, MD_E_UNSUPPORTED, "training_mode dropout is random");
    (void)n;
    int rc = copy_to(k, 0, k->in[0]);
    if (rc || k->n_out < 2)
        return rc;
    onnx_tensor *m;
    rc = onnx__output(k, 1, ONNX_BOOL, k->in[0]->rank, k->in[0]->dims, &m);
    if (rc == MD_OK)
        memset(m->data, 1, (size_t)onnx_tensor_numel(m));
    return rc;
}

/* ---- Cast ---- */

/* Saturating double -> integer (C's cast is undefined out of range). */
static double sat(double v, double lo, double hi)
{
    if (isnan(v))
        return 0;
    return v < lo ? lo : v > hi ? hi : v;
}

static void cast_elem(const onnx_tensor *x, onnx_tensor *o, int64_t i)
{
    if (x->dtype == ONNX_INT64 && o->dtype == ONNX_INT64) {
        ((int64_t *)o->data)[i] = ((const int64_t *)x->data)[i];
        return;
    }
    double v = onnx__get_f64(x, i);
    switch (o->dtype) {
    case ONNX_INT64:
        ((int64_t *)o->data)[i] = x->dtype == ONNX_UINT64 || x->dtype == ONNX_INT32
                                      ? onnx__get_i64(x, i)
                                      : (int64_t)sat(v, -9.2233720368547758e18, 9.2233720368547748e18);
        break;
    case ONNX_INT32: ((int32_t *)o->data)[i] = (int32_t)sat(trunc(v), INT32_MIN, INT32_MAX); break;
    case ONNX_INT16: ((int16_t *)o->data)[i] = (int16_t)sat(trunc(v), INT16_MIN, INT16_MAX); break;
    case ONNX_INT8: ((int8_t *)o->data)[i] = (int8_t)sat(trunc(v), INT8_MIN, INT8_MAX); break;
    case ONNX_UINT8: ((uint8_t *)o->data)[i] = (uint8_t)sat(trunc(v), 0, UINT8_MAX); break;
    case ONNX_UINT16: ((uint16_t *)o->data)[i] = (uint16_t)sat(trunc(v), 0, UINT16_MAX); break;
    case ONNX_UINT32: ((uint32_t *)o->data)[i] = (uint32_t)sat(trunc(v), 0, UINT32_MAX); break;
    case ONNX_UINT64: ((uint64_t *)o->data)[i] = (uint64_t)sat(trunc(v), 0, 1.8446744073709550e19); break;
    default: onnx__set_f64(o, i, v); break;
    }
}

/* Shortest text that reads back as the same value, numpy style ("0.5", "1.0", "1e-05"). */
static void num_to_text(const onnx_tensor *x, int64_t i, char *buf, size_t cap)
{
    double v = onnx__get_f64(x, i);
    if (x->dtype != ONNX_FLOAT && x->dtype != ONNX_DOUBLE && x->dtype != ONNX_FLOAT16 &&
        x->dtype != ONNX_BFLOAT16) {
        if (x->dtype == ONNX_UINT64)
            snprintf(buf, cap, "%llu", (unsigned long long)((const uint64_t *)x->data)[i]);
        else
            snprintf(buf, cap, "%lld", (long long)onnx__get_i64(x, i));
        return;
    }
    bool single = x->dtype != ONNX_DOUBLE;
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, cap, "%.*g", p, v);
        double back = strtod(buf, NULL);
        if (single ? (float)back == (float)v : back == v)
            break;
    }
    if (isfinite(v) && !strpbrk(buf, ".e"))
        strncat(buf, ".0", cap - strlen(buf) - 1);
}

static int cast_strings(onnx_kctx *k, const onnx_tensor *x, int to)
{
    onnx_tensor *o;
    int rc = onnx__output(k, 0, to, x->rank, x->dims, &o);
    if (rc)
        return rc;
    int64_t cnt = onnx_tensor_numel(x);
    if (to == ONNX_STRING) {
        char *buf = onnx__output_extra(k, 0, (size_t)(cnt ? cnt : 1) * 32);
        if (!buf)
            return MD_E_NOMEM;
        for (int64_t i = 0; i < cnt; i++, buf += 32) {
            num_to_text(x, i, buf, 32);
            ((const char **)o->data)[i] = buf;
        }
        return MD_OK;
    }
    for (int64_t i = 0; i < cnt; i++) {
        const char *s = ((const char *const *)x->data)[i];
        char *end;
        double v = strtod(s, &end);
        if (end == s || *end != '\0')
            return onnx__kfail(k, MD_E_INVALID_PARAM, "'%.40s' is not a number", s);
        onnx__set_f64(o, i, v);
    }
    return MD_OK;
}

static int cast_to(onnx_kctx *k, const onnx_tensor *x, int to)
{
    if ((x->dtype == ONNX_STRING) != (to == ONNX_STRING) && onnx_dtype_size(to) &&
        x->dtype != ONNX_BOOL && to != ONNX_BOOL)
        return cast_strings(k, x, to);
    if (x->dtype == ONNX_STRING || to == ONNX_STRING || !onnx_dtype_size(to))
        return onnx__kfail(k, MD_E_UNSUPPORTED, "cast from %s to %s is not supported",
                           onnx_dtype_name(x->dtype), onnx_dtype_name(to));
    onnx_tensor *o;
    int rc = onnx__output(k, 0, to, x->rank, x->dims, &o);
    if (rc)
        return rc;
    int64_t cnt = onnx_tensor_numel(x);
    if (x->dtype == to) {
        memcpy(o->data, x->data, (size_t)cnt * onnx_dtype_size(to));
        return MD_OK;
    }
    for (int64_t i = 0; i < cnt; i++)
        cast_elem(x, o, i);
    return MD_OK;
}

static int prep_cast(onnx_node *n, onnx_prep *p, md_err *err)
{
    (void)p;
    const onnx_attr *to = onnx__attr(n, "to");
    if (!to)
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "to", "attribute 'to' is required");
    if (to->type == ONNX_ATTR_STRING)
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "to", "string 'to' (opset 1-5 form)");
    if (!onnx_dtype_size((int)to->i))
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "to", "cast to type %lld",
                               (long long)to->i);
    return MD_OK;
}

static int run_cast(const onnx_node *n, onnx_kctx *k)
{
    return cast_to(k, k->in[0], (int)onnx__attr_int(n, "to", 0));
}

static int run_castlike(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    return cast_to(k, k->in[0], k->in[1]->dtype);
}

#define U1(NAME, LO, FN) {.domain = "", .op_type = NAME, .opset_min = LO, .min_in = 1, \
                          .max_in = 1, .min_out = 1, .max_out = 1,                    \
                          .attrs = "consumed_inputs:I", .run = FN}
#define UA(NAME, LO, ATTRS, FN) {.domain = "", .op_type = NAME, .opset_min = LO, .min_in = 1, \
                                 .max_in = 1, .min_out = 1, .max_out = 1, .attrs = ATTRS, .run = FN}

ONNX_OPS(unary) = {
    U1("Relu", 1, run_relu), U1("Sigmoid", 1, run_sigmoid), U1("HardSwish", 14, run_hswish),
    U1("Softplus", 1, run_softplus), U1("Softsign", 1, run_softsign), U1("Tanh", 1, run_tanh),
    U1("Exp", 1, run_exp), U1("Log", 1, run_log), U1("Sqrt", 1, run_sqrt),
    U1("Reciprocal", 1, run_recip), U1("Neg", 1, run_neg), U1("Abs", 1, run_abs),
    U1("Floor", 1, run_floor), U1("Ceil", 1, run_ceil), U1("Round", 11, run_round),
    U1("Sign", 9, run_sign), U1("Erf", 9, run_erf), U1("Sin", 7, run_sin), U1("Cos", 7, run_cos),
    U1("Tan", 7, run_tan), U1("Asin", 7, run_asin), U1("Acos", 7, run_acos),
    U1("Atan", 7, run_atan), U1("Sinh", 9, run_sinh), U1("Cosh", 9, run_cosh),
    U1("Asinh", 9, run_asinh), U1("Acosh", 9, run_acosh), U1("Atanh", 9, run_atanh),
    U1("IsNaN", 9, run_isnan), U1("Not", 1, run_not),
    {.domain = "", .op_type = "Identity", .opset_min = 1, .min_in = 1, .max_in = 1, .min_out = 1,
     .max_out = 1, .attrs = "consumed_inputs:I", .run = run_identity, .takes_seq = true},
    UA("IsInf", 10, "detect_negative:i detect_positive:i", run_isinf),
    UA("LeakyRelu", 1, "alpha:f consumed_inputs:I", run_leaky),
    UA("Elu", 1, "alpha:f consumed_inputs:I", run_elu),
    UA("Selu", 1, "alpha:f gamma:f consumed_inputs:I", run_selu),
    UA("Celu", 12, "alpha:f", run_celu),
    UA("HardSigmoid", 1, "alpha:f beta:f consumed_inputs:I", run_hsigmoid),
    UA("ThresholdedRelu", 10, "alpha:f", run_threlu),
    UA("Shrink", 9, "bias:f lambd:f", run_shrink),
    {.domain = "", .op_type = "Clip", .opset_min = 1, .opset_max = 10, .min_in = 1, .max_in = 1,
     .min_out = 1, .max_out = 1, .attrs = "min:f max:f consumed_inputs:I", .run = run_clip},
    {.domain = "", .op_type = "Clip", .opset_min = 11, .min_in = 1, .max_in = 3, .min_out = 1,
     .max_out = 1, .run = run_clip},
    {.domain = "", .op_type = "Dropout", .opset_min = 1, .opset_max = 11, .min_in = 1,
     .max_in = 1, .min_out = 1, .max_out = 2, .attrs = "ratio:f is_test:i consumed_inputs:I",
     .run = run_dropout},
    {.domain = "", .op_type = "Dropout", .opset_min = 12, .min_in = 1, .max_in = 3, .min_out = 1,
     .max_out = 2, .attrs = "seed:i", .run = run_dropout},
    {.domain = "", .op_type = "Cast", .opset_min = 6, .min_in = 1, .max_in = 1, .min_out = 1,
     .max_out = 1, .attrs = "to:i", .prepare = prep_cast, .run = run_cast},
    {.domain = "", .op_type = "CastLike", .opset_min = 15, .min_in = 2, .max_in = 2, .min_out = 1,
     .max_out = 1, .run = run_castlike},
    ONNX_OPS_END,
};
