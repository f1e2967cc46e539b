/* ml_transform.c - ai.onnx.ml Normalizer, Scaler and ZipMap: the preprocessing and
 * postprocessing steps of scikit-learn pipelines exported to ONNX.
 *
 * Normalizer (norm MAX | L1 | L2, default MAX) rescales each row of [N, C] or the one row of [C]
 * (higher ranks are refused, as onnxruntime does): MAX divides by the row's largest value, L1 by
 * the sum of absolute values, L2 gives sign(x) * sqrt(x^2 / sum(x^2)). A zero divisor leaves the
 * row as it is (Y == X), as the spec says. Scaler: Y = (X - offset) * scale over the feature axis
 * of [N, F] or [F]; offset and scale have F entries or one (applied to all), the same count; a
 * missing one means 0 / 1. ZipMap turns class scores [N, C] into a sequence of N maps {label:
 * score}. Our tensors cannot hold maps, so (decision) the output is an ONNX_KIND_SEQ_MAP value: the
 * dense [N, C] float table (row i = the values of map i) plus the C keys (classlabels_int64s or
 * classlabels_strings, borrowed from the model) shared by every row. A consumer that wants
 * maps reads keys and row; nothing is lost. A node that reads a ZipMap result (none of the
 * standard ones takes maps) sees the plain [N, C] float table.
 */
#include <math.h>

#include "onnx/ops/ml_common.h"

enum { NORM_MAX, NORM_L1, NORM_L2 };

static int prepare_normalizer(onnx_node *n, onnx_prep *p, md_err *err)
{
    static const char *const names[] = {"MAX", "L1", "L2"};
    const char *s = onnx__attr_str(n, "norm", "MAX");
    int *mode = onnx__prep_alloc(p, sizeof *mode);
    if (!mode)
        return ml_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    *mode = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0)
            *mode = i;
    if (*mode < 0)
        return ml_fail(n, err, MD_E_UNSUPPORTED, "norm", "'%.40s' is not one of MAX, L1, L2", s);
    n->priv = mode;
    return MD_OK;
}

/* Normalise the len values x[off ..] into y[off ..]. */
static void normalize_row(int mode, const onnx_tensor *x, float *y, int64_t off, int64_t len)
{
    double d = mode == NORM_MAX ? -INFINITY : 0.0;
    for (int64_t i = 0; i < len; i++) {
        double v = ml_x(x, off + i);
        d = mode == NORM_MAX ? (v > d ? v : d) : mode == NORM_L1 ? d + fabs(v) : d + v * v;
    }
    for (int64_t i = 0; i < len; i++) {
        double v = ml_x(x, off + i);
        if (d == 0.0)
            y[off + i] = (float)v;
        else if (mode == NORM_L2)
            y[off + i] = (float)(v < 0 ? -sqrt(v * v / d) : sqrt(v * v / d));
        else
            y[off + i] = (float)(v / d);
    }
}

static int run_normalizer(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    int64_t rows = 0, cols = 0;
    int rc = ml_input_rows(k, x, &rows, &cols);
    if (rc == MD_OK && x->rank > 2)
        rc = onnx__kfail(k, MD_E_INVALID_PARAM, "X must be [N, C] or [C], got rank %d", x->rank);
    onnx_tensor *y = NULL;
    if (rc == MD_OK)
        rc = onnx__output(k, 0, ONNX_FLOAT, x->rank, x->dims, &y);
    for (int64_t r = 0; rc == MD_OK && r < rows; r++)
        normalize_row(*(const int *)n->priv, x, y->data, r * cols, cols);
    return rc;
}

typedef struct scaler {
    const float *offset, *scale;
    int64_t n; /* entries in each (1 or F), 0 when both are absent */
} scaler;

static int prepare_scaler(onnx_node *n, onnx_prep *p, md_err *err)
{
    scaler *s = onnx__prep_alloc(p, sizeof *s);
    if (!s)
        return ml_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    size_t no = onnx__attr_floats(n, "offset", &s->offset);
    size_t ns = onnx__attr_floats(n, "scale", &s->scale);
    if (no && ns && no != ns)
        return ml_fail(n, err, MD_E_MODEL_INVALID, "scale",
                       "has %zu entries, offset has %zu: they must match", ns, no);
    s->n = (int64_t)(no ? no : ns);
    if (!no)
        s->offset = NULL;
    if (!ns)
        s->scale = NULL;
    n->priv = s;
    return MD_OK;
}

static int run_scaler(const onnx_node *n, onnx_kctx *k)
{
    const scaler *s = n->priv;
    const onnx_tensor *x = k->in[0];
    int64_t rows = 0, cols = 0;
    int rc = ml_input_rows(k, x, &rows, &cols);
    if (rc == MD_OK && x->rank > 2 && s->n > 1)
        rc = onnx__kfail(k, MD_E_INVALID_PARAM,
                         "X must be [N, F] or [F] for per-feature offset/scale, got rank %d",
                         x->rank);
    if (rc == MD_OK && s->n > 1 && rows > 0 && cols != s->n)
        rc = onnx__kfail(k, MD_E_INVALID_PARAM, "X has %lld features, offset/scale have %lld",
                         (long long)cols, (long long)s->n);
    onnx_tensor *y = NULL;
    if (rc == MD_OK)
        rc = onnx__output(k, 0, ONNX_FLOAT, x->rank, x->dims, &y);
    int64_t total = rows * cols;
    for (int64_t i = 0; rc == MD_OK && i < total; i++) {
        int64_t f = s->n > 1 ? i % s->n : 0;
        double off = s->offset ? s->offset[f] : 0.0, sc = s->scale ? s->scale[f] : 1.0;
        ((float *)y->data)[i] = (float)((ml_x(x, i) - off) * sc);
    }
    return rc;
}

static int prepare_zipmap(onnx_node *n, onnx_prep *p, md_err *err)
{
    ml_labels *l = onnx__prep_alloc(p, sizeof *l);
    if (!l)
        return ml_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    int rc = ml_prep_labels(n, err, "classlabels_int64s", "classlabels_strings", l);
    if (rc)
        return rc;
    n->priv = l;
    return MD_OK;
}

static int run_zipmap(const onnx_node *n, onnx_kctx *k)
{
    const ml_labels *l = n->priv;
    const onnx_tensor *x = k->in[0];
    if (!x || x->dtype != ONNX_FLOAT || x->rank < 1 || x->rank > 2)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X must be a float tensor [N, C] or [C]");
    int64_t dims[2] = {x->rank == 1 ? 1 : x->dims[0], x->dims[x->rank - 1]};
    if (dims[1] != l->n)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X has %lld columns for %lld labels",
                           (long long)dims[1], (long long)l->n);
    onnx_tensor *z = NULL;
    int rc = onnx__output(k, 0, ONNX_FLOAT, 2, dims, &z);
    if (rc)
        return rc;
    memcpy(z->data, x->data, (size_t)(dims[0] * dims[1]) * sizeof(float));
    z->kind = ONNX_KIND_SEQ_MAP;
    z->key_dtype = l->strs ? ONNX_STRING : ONNX_INT64;
    z->map_keys = l->strs ? (const void *)l->strs : (const void *)l->ints;
    return MD_OK;
}

ONNX_OPS(ml_transform) = {
    {.domain = "ai.onnx.ml",
     .op_type = "Normalizer",
     .opset_min = 1,
     .opset_max = 0,
     .min_in = 1,
     .max_in = 1,
     .min_out = 1,
     .max_out = 1,
     .attrs = "norm:s",
     .prepare = prepare_normalizer,
     .run = run_normalizer},
    {.domain = "ai.onnx.ml",
     .op_type = "Scaler",
     .opset_min = 1,
     .opset_max = 0,
     .min_in = 1,
     .max_in = 1,
     .min_out = 1,
     .max_out = 1,
     .attrs = "offset:F scale:F",
     .prepare = prepare_scaler,
     .run = run_scaler},
    {.domain = "ai.onnx.ml",
     .op_type = "ZipMap",
     .opset_min = 1,
     .opset_max = 0,
     .min_in = 1,
     .max_in = 1,
     .min_out = 1,
     .max_out = 1,
     .attrs = "classlabels_int64s:I classlabels_strings:S",
     .prepare = prepare_zipmap,
     .run = run_zipmap},
    ONNX_OPS_END,
};
