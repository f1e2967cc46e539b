/* ml_linear.c - ai.onnx.ml LinearClassifier and LinearRegressor: scikit-learn's linear models
 * (LogisticRegression, LinearSVC, Ridge, LinearRegression...) as converters write them.
 *
 * Both compute scores = X . coefficients^T + intercepts for T targets (classes), with
 * coefficients stored target-major (T rows of F features), then apply post_transform.
 * Invariants (prepare): T >= 1, coefficients has exactly T * F entries with F >= 1, intercepts
 * has 0 or T entries; run() checks that X has F columns.
 *
 * LinearClassifier: T is the number of intercepts when given, else the number of labels.
 *  - T >= 2: labels must number T; Y = label of the highest score (first wins), Z = the T
 *    scores after post_transform.
 *  - T == 1 (one score s per row, a binary model): exactly two labels; as onnxruntime does,
 *    Y = label[1] when s > 0 else label[0], and Z = [1 - t, t] with t = LOGISTIC(s) or
 *    PROBIT(s) or s (SOFTMAX forms leave one value alone). onnxruntime 1.30 writes PROBIT
 *    scores without the second column there; we keep the [1 - t, t] form.
 * multi_class (OvR vs multinomial) changes nothing at inference: the converter already chose
 * post_transform accordingly; it is accepted and ignored, as onnxruntime does.
 * LinearRegressor with one target applies LOGISTIC and PROBIT and ignores the SOFTMAX forms
 * (onnxruntime 1.30 applies only PROBIT there; the spec says to apply the transform).
 */
#include <stdlib.h>

#include "onnx/ops/ml_common.h"

#define MAX_TARGETS ((int64_t)1 << 20)

typedef struct linear {
    int64_t targets, features;
    const float *coef;       /* [targets, features], borrowed from the model */
    const float *intercepts; /* [targets] or NULL */
    int post;
    ml_labels labels; /* classifier only */
} linear;

/* coefficients / intercepts against a target count: invariant of the header. */
static int prep_weights(onnx_node *n, md_err *err, linear *l)
{
    size_t nc = onnx__attr_floats(n, "coefficients", &l->coef);
    size_t ni = onnx__attr_floats(n, "intercepts", &l->intercepts);
    if (l->targets < 1 || l->targets > MAX_TARGETS)
        return ml_fail(n, err, MD_E_MODEL_INVALID, "targets", "needs 1 to 2^20 targets, got %lld",
                       (long long)l->targets);
    if (nc == 0 || nc % (size_t)l->targets != 0)
        return ml_fail(n, err, MD_E_MODEL_INVALID, "coefficients",
                       "has %zu entries, not a non-zero multiple of %lld targets", nc,
                       (long long)l->targets);
    if (ni != 0 && ni != (size_t)l->targets)
        return ml_fail(n, err, MD_E_MODEL_INVALID, "intercepts", "has %zu entries, needs 0 or %lld",
                       ni, (long long)l->targets);
    if (ni == 0)
        l->intercepts = NULL;
    l->features = (int64_t)(nc / (size_t)l->targets);
    return ml_prep_post(n, err, &l->post);
}

static int prepare_regressor(onnx_node *n, onnx_prep *p, md_err *err)
{
    linear *l = onnx__prep_alloc(p, sizeof *l);
    if (!l)
        return ml_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    l->targets = onnx__attr_int(n, "targets", 1);
    n->priv = l;
    return prep_weights(n, err, l);
}

static int prepare_classifier(onnx_node *n, onnx_prep *p, md_err *err)
{
    linear *l = onnx__prep_alloc(p, sizeof *l);
    if (!l)
        return ml_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    n->priv = l;
    int rc = ml_prep_labels(n, err, "classlabels_ints", "classlabels_strings", &l->labels);
    if (rc)
        return rc;
    const float *iv = NULL;
    size_t ni = onnx__attr_floats(n, "intercepts", &iv);
    l->targets = ni ? (int64_t)ni : l->labels.n;
    rc = prep_weights(n, err, l);
    if (rc)
        return rc;
    if (l->targets == 1 ? l->labels.n != 2 : l->labels.n != l->targets)
        return ml_fail(
            n, err, MD_E_MODEL_INVALID, "classlabels_ints",
            "%lld labels for %lld score(s) per row: needs one label per score, or 2 for one score",
            (long long)l->labels.n, (long long)l->targets);
    return MD_OK;
}

/* scores[t] = X[row] . coef[t] + intercept[t], in double. */
static void row_scores(const linear *l, const onnx_tensor *x, int64_t off, float *out)
{
    for (int64_t t = 0; t < l->targets; t++) {
        const float *w = l->coef + t * l->features;
        double s = l->intercepts ? l->intercepts[t] : 0.0;
        for (int64_t f = 0; f < l->features; f++)
            s += ml_x(x, off + f) * w[f];
        out[t] = (float)s;
    }
}

static int check_x(onnx_kctx *k, const linear *l, int64_t *rows)
{
    int64_t cols = 0;
    int rc = ml_input_rows(k, k->in[0], rows, &cols);
    if (rc == MD_OK && *rows > 0 && cols != l->features)
        rc = onnx__kfail(k, MD_E_INVALID_PARAM, "X has %lld features per row, the model takes %lld",
                         (long long)cols, (long long)l->features);
    return rc;
}

static int run_regressor(const onnx_node *n, onnx_kctx *k)
{
    const linear *l = n->priv;
    int64_t rows = 0;
    int rc = check_x(k, l, &rows);
    onnx_tensor *y = NULL;
    int64_t dims[2] = {rows, l->targets};
    if (rc == MD_OK)
        rc = onnx__output(k, 0, ONNX_FLOAT, 2, dims, &y);
    for (int64_t r = 0; rc == MD_OK && r < rows; r++) {
        float *out = (float *)y->data + r * l->targets;
        row_scores(l, k->in[0], r * l->features, out);
        if (l->targets > 1 || l->post == ML_POST_LOGISTIC || l->post == ML_POST_PROBIT)
            ml_post_apply(l->post, out, l->targets);
    }
    return rc;
}

/* One classifier row: Z written (T or 2 floats), label index returned. */
static int64_t classify_row(const linear *l, const onnx_tensor *x, int64_t off, float *z)
{
    row_scores(l, x, off, z);
    if (l->targets == 1) {
        float s = z[0], t = s;
        if (l->post == ML_POST_LOGISTIC || l->post == ML_POST_PROBIT)
            ml_post_apply(l->post, &t, 1);
        z[0] = 1.0f - t;
        z[1] = t;
        return s > 0.0f ? 1 : 0;
    }
    int64_t best = 0;
    for (int64_t t = 1; t < l->targets; t++)
        best = z[t] > z[best] ? t : best;
    ml_post_apply(l->post, z, l->targets);
    return best;
}

static int run_classifier(const onnx_node *n, onnx_kctx *k)
{
    const linear *l = n->priv;
    int64_t rows = 0;
    int rc = check_x(k, l, &rows);
    int64_t width = l->targets == 1 ? 2 : l->targets;
    int64_t dims[2] = {rows, width};
    onnx_tensor *y = NULL, *z = NULL;
    if (rc == MD_OK)
        rc = ml_label_output(k, &l->labels, rows, &y);
    if (rc == MD_OK)
        rc = onnx__output(k, 1, ONNX_FLOAT, 2, dims, &z);
    for (int64_t r = 0; rc == MD_OK && r < rows; r++) {
        int64_t label = classify_row(l, k->in[0], r * l->features, (float *)z->data + r * width);
        ml_set_label(y, &l->labels, r, label);
    }
    return rc;
}

ONNX_OPS(ml_linear) = {
    {.domain = "ai.onnx.ml",
     .op_type = "LinearClassifier",
     .opset_min = 1,
     .opset_max = 0,
     .min_in = 1,
     .max_in = 1,
     .min_out = 2,
     .max_out = 2,
     .attrs = "classlabels_ints:I classlabels_strings:S coefficients:F intercepts:F multi_class:i "
              "post_transform:s",
     .prepare = prepare_classifier,
     .run = run_classifier},
    {.domain = "ai.onnx.ml",
     .op_type = "LinearRegressor",
     .opset_min = 1,
     .opset_max = 0,
     .min_in = 1,
     .max_in = 1,
     .min_out = 1,
     .max_out = 1,
     .attrs = "coefficients:F intercepts:F post_transform:s targets:i",
     .prepare = prepare_regressor,
     .run = run_regressor},
    ONNX_OPS_END,
};
