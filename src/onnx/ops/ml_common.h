/* ml_common.h - what the ai.onnx.ml operators (ml_tree.c, ml_linear.c, ml_transform.c) share:
 * reading the feature matrix X, class labels, and the post_transform functions.
 *
 * Header-only (static functions) because each .c file in ops/ is an operator table of its own.
 * Numerics follow onnxruntime, which every ONNX-ML converter (skl2onnx, onnxmltools) is tested
 * against: LOGISTIC is the stable sigmoid, SOFTMAX subtracts the max, SOFTMAX_ZERO leaves
 * zeros at zero, and PROBIT uses Winitzki's closed-form erf^-1 (a = 0.147), the approximation
 * onnxruntime and the ONNX reference implementation both use, so our probits match theirs
 * rather than the exact inverse.
 */
#ifndef MD_ONNX_OPS_ML_COMMON_H
#define MD_ONNX_OPS_ML_COMMON_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "onnx/onnx_int.h"

/* onnx__prep_fail with the attribute named at the start of the message too, so the text alone
 * says which attribute is wrong ("class_ids: weight 0: id 3 is not below 3"). */
static inline int ml_fail(const onnx_node *n, md_err *err, int code, const char *field,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static inline int ml_fail(const onnx_node *n, md_err *err, int code, const char *field,
                          const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return onnx__prep_fail(n, err, code, field, "%s%s%s", field ? field : "", field ? ": " : "",
                           msg);
}

enum { ML_POST_NONE, ML_POST_SOFTMAX, ML_POST_LOGISTIC, ML_POST_SOFTMAX_ZERO, ML_POST_PROBIT };

/* post_transform attribute -> ML_POST_*, or -1 for an unknown name. */
static inline int ml_post_parse(const char *s)
{
    static const char *const names[] = {"NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* Read and check post_transform at prepare time. */
static inline int ml_prep_post(onnx_node *n, md_err *err, int *post)
{
    const char *s = onnx__attr_str(n, "post_transform", "NONE");
    *post = ml_post_parse(s);
    if (*post < 0)
        return ml_fail(n, err, MD_E_UNSUPPORTED, "post_transform",
                       "'%.40s' is not one of NONE, SOFTMAX, LOGISTIC, "
                       "SOFTMAX_ZERO, PROBIT",
                       s);
    return MD_OK;
}

static inline float ml_logistic(float v)
{
    float e = expf(-fabsf(v));
    return v < 0 ? e / (1.0f + e) : 1.0f / (1.0f + e);
}

static inline float ml_probit(float p)
{
    float x = 2.0f * p - 1.0f;
    float sgn = x < 0 ? -1.0f : 1.0f;
    float ln = logf((1.0f - x) * (1.0f + x));
    float a = 2.0f / (3.14159f * 0.147f) + 0.5f * ln;
    float b = ln / 0.147f;
    return 1.41421356f * sgn * sqrtf(-a + sqrtf(a * a - b));
}

/* Apply post to the n scores of one row in place (n >= 2 for the softmax forms to matter). */
static inline void ml_post_apply(int post, float *v, int64_t n)
{
    if (post == ML_POST_LOGISTIC || post == ML_POST_PROBIT) {
        for (int64_t i = 0; i < n; i++)
            v[i] = post == ML_POST_LOGISTIC ? ml_logistic(v[i]) : ml_probit(v[i]);
        return;
    }
    if (post != ML_POST_SOFTMAX && post != ML_POST_SOFTMAX_ZERO)
        return;
    float mx = -INFINITY, sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        mx = v[i] > mx ? v[i] : mx;
    for (int64_t i = 0; i < n; i++) {
        /* SOFTMAX_ZERO: a zero score means "no vote" and stays (numerically) zero */
        if (post == ML_POST_SOFTMAX_ZERO && fabsf(v[i]) <= 1e-7f)
            v[i] *= expf(-mx);
        else {
            v[i] = expf(v[i] - mx);
            sum += v[i];
        }
    }
    for (int64_t i = 0; i < n; i++)
        v[i] /= sum;
}

/* X of an ML operator: float, double, int64 or int32, shape [C] (one row) or [N, C...] (N rows of
 * C = numel / N features). Sets *rows and *cols or fails naming the input. */
static inline int ml_input_rows(onnx_kctx *k, const onnx_tensor *x, int64_t *rows, int64_t *cols)
{
    if (!x)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "input X is missing");
    if (x->dtype != ONNX_FLOAT && x->dtype != ONNX_DOUBLE && x->dtype != ONNX_INT64 &&
        x->dtype != ONNX_INT32)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X must be float, double, int64 or int32, got %s",
                           onnx_dtype_name(x->dtype));
    if (x->rank < 1)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X must have rank 1 or more, got a scalar");
    int64_t numel = onnx__numel(x->rank, x->dims);
    *rows = x->rank == 1 ? 1 : x->dims[0];
    *cols = *rows > 0 ? numel / *rows
                      : (x->rank == 1 ? x->dims[0] : onnx__numel(x->rank - 1, x->dims + 1));
    if (numel < 0 || *cols < 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X has an invalid shape");
    return MD_OK;
}

/* Element i of X as double (X checked by ml_input_rows). */
static inline double ml_x(const onnx_tensor *x, int64_t i)
{
    switch (x->dtype) {
    case ONNX_FLOAT:
        return ((const float *)x->data)[i];
    case ONNX_DOUBLE:
        return ((const double *)x->data)[i];
    case ONNX_INT64:
        return (double)((const int64_t *)x->data)[i];
    default:
        return ((const int32_t *)x->data)[i];
    }
}

/* Class labels: exactly one of an int64 list and a string list, borrowed from the model. */
typedef struct ml_labels {
    int64_t n;
    const int64_t *ints;     /* NULL when the labels are strings */
    const char *const *strs; /* NULL when the labels are ints */
} ml_labels;

static inline int ml_prep_labels(onnx_node *n, md_err *err, const char *ints_attr,
                                 const char *strs_attr, ml_labels *out)
{
    const int64_t *iv = NULL;
    size_t ni = onnx__attr_ints(n, ints_attr, &iv);
    const onnx_attr *sa = onnx__attr(n, strs_attr);
    size_t ns = sa ? sa->n_strings : 0;
    if ((ni > 0) == (ns > 0))
        return ml_fail(n, err, MD_E_MODEL_INVALID, ints_attr,
                       "exactly one of %s and %s must be given and non-empty", ints_attr,
                       strs_attr);
    out->n = (int64_t)(ni ? ni : ns);
    out->ints = ni ? iv : NULL;
    out->strs = ns ? sa->strings : NULL;
    return MD_OK;
}

/* The label output Y: [rows] int64 or string, per the labels' kind. */
static inline int ml_label_output(onnx_kctx *k, const ml_labels *l, int64_t rows, onnx_tensor **y)
{
    return onnx__output(k, 0, l->strs ? ONNX_STRING : ONNX_INT64, 1, &rows, y);
}

/* Store label number idx (0 <= idx < l->n) as row r of Y. */
static inline void ml_set_label(onnx_tensor *y, const ml_labels *l, int64_t r, int64_t idx)
{
    if (l->strs)
        ((const char **)y->data)[r] = l->strs[idx];
    else
        ((int64_t *)y->data)[r] = l->ints[idx];
}

#endif
