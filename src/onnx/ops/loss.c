/* loss.c - NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (the loss operators that
 * exported training graphs contain; evaluating them is plain arithmetic).
 *
 * Both take scores/log-probabilities [N, C, d1..dk] and integer labels [N, d1..dk]; the loss of
 * an element is -logp[n, label, d...] * weight[label]. Labels equal to ignore_index contribute
 * nothing (and no weight to the mean); any other label outside [0, C) fails the node.
 */
#include <math.h>
#include <string.h>

#include "onnx/onnx_int.h"

typedef enum red { RED_NONE, RED_SUM, RED_MEAN } red;

static int parse_reduction(const onnx_node *n, red *r)
{
    const char *s = onnx__attr_str(n, "reduction", "mean");
    *r = strcmp(s, "none") == 0 ? RED_NONE : strcmp(s, "sum") == 0 ? RED_SUM
       : strcmp(s, "mean") == 0 ? RED_MEAN : (red)-1;
    return (int)*r < 0 ? -1 : 0;
}

static int prep_loss(onnx_node *n, onnx_prep *p, md_err *err)
{
    (void)p;
    red r;
    if (parse_reduction(n, &r) != 0)
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "reduction",
                               "reduction must be none, sum or mean");
    return MD_OK;
}

/* Shapes: x [N, C, d...], t [N, d...]. Fills N, C and D = prod(d...). */
static int check_shapes(onnx_kctx *k, const onnx_tensor *x, const onnx_tensor *t,
                        const onnx_tensor *w, int64_t *N, int64_t *C, int64_t *D)
{
    if (x->rank < 2 || t->rank != x->rank - 1 || (x->dtype != ONNX_FLOAT && x->dtype != ONNX_DOUBLE) ||
        (t->dtype != ONNX_INT64 && t->dtype != ONNX_INT32))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "expects scores [N, C, ...] and int labels [N, ...]");
    *N = x->dims[0];
    *C = x->dims[1];
    *D = 1;
    if (t->dims[0] != *N)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "labels and scores disagree on N");
    for (int i = 2; i < x->rank; i++) {
        if (t->dims[i - 1] != x->dims[i])
            return onnx__kfail(k, MD_E_INVALID_PARAM, "labels and scores disagree on dim %d", i);
        *D *= x->dims[i];
    }
    if (w && (w->rank != 1 || w->dims[0] != *C || w->dtype != x->dtype))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "weight must be [C] of the scores' type");
    return MD_OK;
}

/* What both losses read: the operands, their sizes, and scratch for the N*C*D
 * log-probabilities (as double). */
typedef struct loss_in {
    const onnx_tensor *x, *t, *w; /* scores, labels, optional weight (NULL) */
    int64_t N, C, D;
    double *lp; /* uninitialised until the op fills it */
} loss_in;

/* Fill L from the running node's inputs, shapes checked (check_shapes). */
static int loss_setup(onnx_kctx *k, loss_in *L)
{
    L->x = k->in[0];
    L->t = k->in[1];
    L->w = k->n_in > 2 ? k->in[2] : NULL;
    int rc = check_shapes(k, L->x, L->t, L->w, &L->N, &L->C, &L->D);
    if (rc)
        return rc;
    int64_t total = L->N * L->C * L->D;
    L->lp = onnx__scratch(k, (size_t)(total ? total : 1) * sizeof(double));
    return L->lp ? MD_OK : MD_E_NOMEM;
}

/* loss from the log-probabilities L->lp; writes output 0. */
static int nll(const onnx_node *n, onnx_kctx *k, const loss_in *L)
{
    const onnx_tensor *x = L->x, *t = L->t, *w = L->w;
    const double *lp = L->lp;
    int64_t N = L->N, C = L->C, D = L->D;
    red r;
    parse_reduction(n, &r);
    const onnx_attr *ig = onnx__attr(n, "ignore_index");
    int64_t cnt = N * D;
    double *loss = onnx__scratch(k, (size_t)(cnt ? cnt : 1) * sizeof(double));
    if (!loss)
        return MD_E_NOMEM;
    double total = 0, wsum = 0;
    for (int64_t a = 0; a < N; a++)
        for (int64_t d = 0; d < D; d++) {
            int64_t lab = onnx__get_i64(t, a * D + d);
            if (ig && lab == ig->i) {
                loss[a * D + d] = 0;
                continue;
            }
            if (lab < 0 || lab >= C)
                return onnx__kfail(k, MD_E_INVALID_PARAM, "label %lld out of range [0, %lld)",
                                   (long long)lab, (long long)C);
            double wt = w ? onnx__get_f64(w, lab) : 1;
            loss[a * D + d] = -lp[(a * C + lab) * D + d] * wt;
            total += loss[a * D + d];
            wsum += wt;
        }
    onnx_tensor *o;
    int rc = r == RED_NONE ? onnx__output(k, 0, x->dtype, t->rank, t->dims, &o)
                           : onnx__output(k, 0, x->dtype, 0, NULL, &o);
    if (rc)
        return rc;
    if (r == RED_NONE) {
        for (int64_t i = 0; i < cnt; i++)
            onnx__set_f64(o, i, loss[i]);
    } else {
        onnx__set_f64(o, 0, r == RED_SUM ? total : total / wsum);
    }
    return MD_OK;
}

static int run_nll(const onnx_node *n, onnx_kctx *k)
{
    loss_in L;
    int rc = loss_setup(k, &L);
    if (rc)
        return rc;
    for (int64_t i = 0; i < L.N * L.C * L.D; i++)
        L.lp[i] = onnx__get_f64(L.x, i);
    return nll(n, k, &L);
}

/* log_softmax over axis 1, then NLL; the optional second output is the log-probabilities. */
static int run_sce(const onnx_node *n, onnx_kctx *k)
{
    loss_in L;
    int rc = loss_setup(k, &L);
    if (rc)
        return rc;
    const onnx_tensor *x = L.x;
    int64_t N = L.N, C = L.C, D = L.D, total = N * C * D;
    double *lp = L.lp;
    for (int64_t a = 0; a < N; a++)
        for (int64_t d = 0; d < D; d++) {
            double mx = -INFINITY, s = 0;
            for (int64_t c = 0; c < C; c++)
                mx = fmax(mx, onnx__get_f64(x, (a * C + c) * D + d));
            for (int64_t c = 0; c < C; c++)
                s += exp(onnx__get_f64(x, (a * C + c) * D + d) - mx);
            for (int64_t c = 0; c < C; c++)
                lp[(a * C + c) * D + d] = onnx__get_f64(x, (a * C + c) * D + d) - mx - log(s);
        }
    if ((rc = nll(n, k, &L)))
        return rc;
    if (k->n_out > 1) {
        onnx_tensor *o;
        if ((rc = onnx__output(k, 1, x->dtype, x->rank, x->dims, &o)))
            return rc;
        for (int64_t i = 0; i < total; i++)
            onnx__set_f64(o, i, lp[i]);
    }
    return MD_OK;
}

ONNX_OPS(loss) = {
    {.domain = "", .op_type = "NegativeLogLikelihoodLoss", .opset_min = 12, .min_in = 2,
     .max_in = 3, .min_out = 1, .max_out = 1, .attrs = "reduction:s ignore_index:i",
     .prepare = prep_loss, .run = run_nll},
    {.domain = "", .op_type = "SoftmaxCrossEntropyLoss", .opset_min = 12, .min_in = 2,
     .max_in = 3, .min_out = 1, .max_out = 2, .attrs = "reduction:s ignore_index:i",
     .prepare = prep_loss, .run = run_sce},
    ONNX_OPS_END,
};
