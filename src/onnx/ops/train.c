/* train.c - the optimizer steps of the ai.onnx.preview.training domain (Adagrad, Momentum,
 * Adam) and NonMaxSuppression.
 *
 * The optimizers are pure functions of their inputs (learning rate, step count, tensors to
 * update), so they evaluate like any other operator; each takes n tensors X, their gradients
 * and their optimizer states, and returns the updated tensors and states.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx_int.h"

typedef enum opt { O_ADAGRAD, O_MOMENTUM, O_ADAM } opt;

/* Inputs: R, T, then groups of n tensors: X, G, then 1 (Adagrad H, Momentum V) or 2 (Adam V, H)
 * state groups. Outputs: X_new, then the new states, n of each. */
static int run_opt(const onnx_node *n, onnx_kctx *k, opt o)
{
    int states = o == O_ADAM ? 2 : 1, groups = 2 + states;
    if ((k->n_in - 2) % groups || k->n_out != (k->n_in - 2) / groups * (1 + states))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "inputs/outputs do not form complete groups");
    int cnt = (k->n_in - 2) / groups;
    for (int i = 0; i < k->n_in; i++)
        if (!k->in[i])
            return onnx__kfail(k, MD_E_INVALID_PARAM, "input %d is empty", i);
    if (onnx_tensor_numel(k->in[0]) != 1 || onnx_tensor_numel(k->in[1]) != 1)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "R and T must be scalars");
    double R = onnx__get_f64(k->in[0], 0);
    int64_t T = onnx__get_i64(k->in[1], 0);
    double norm = onnx__attr_float(n, "norm_coefficient", 0.f);
    double eps = onnx__attr_float(n, "epsilon", 1e-6f);
    double alpha = onnx__attr_float(n, "alpha", o == O_ADAM ? 0.9f : 0.f);
    double beta = onnx__attr_float(n, "beta", o == O_ADAM ? 0.999f : 0.f);
    bool nesterov = strcmp(onnx__attr_str(n, "mode", "standard"), "nesterov") == 0;
    for (int i = 0; i < cnt; i++) {
        const onnx_tensor *X = k->in[2 + i], *G = k->in[2 + cnt + i];
        const onnx_tensor *S1 = k->in[2 + 2 * cnt + i];
        const onnx_tensor *S2 = o == O_ADAM ? k->in[2 + 3 * cnt + i] : NULL;
        int64_t m = onnx_tensor_numel(X);
        if (X->dtype != ONNX_FLOAT && X->dtype != ONNX_DOUBLE)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "tensors must be float");
        if (onnx_tensor_numel(G) != m || onnx_tensor_numel(S1) != m || (S2 && onnx_tensor_numel(S2) != m))
            return onnx__kfail(k, MD_E_INVALID_PARAM, "group %d has mismatched sizes", i);
        onnx_tensor *xo, *s1o, *s2o = NULL;
        int rc = onnx__output(k, i, X->dtype, X->rank, X->dims, &xo);
        if (!rc)
            rc = onnx__output(k, cnt + i, S1->dtype, S1->rank, S1->dims, &s1o);
        if (!rc && S2)
            rc = onnx__output(k, 2 * cnt + i, S2->dtype, S2->rank, S2->dims, &s2o);
        if (rc)
            return rc;
        for (int64_t e = 0; e < m; e++) {
            double x = onnx__get_f64(X, e), g = norm * x + onnx__get_f64(G, e);
            double s = onnx__get_f64(S1, e);
            if (o == O_ADAGRAD) {
                double r = R / (1 + (double)T * onnx__attr_float(n, "decay_factor", 0.f));
                double h = s + g * g;
                onnx__set_f64(s1o, e, h);
                onnx__set_f64(xo, e, x - r * g / (sqrt(h) + eps));
            } else if (o == O_MOMENTUM) {
                double v = alpha * s + (T > 0 ? beta : 1) * g;
                onnx__set_f64(s1o, e, v);
                onnx__set_f64(xo, e, x - R * (nesterov ? g + alpha * v : v));
            } else {
                double v = alpha * s + (1 - alpha) * g;
                double h = beta * onnx__get_f64(S2, e) + (1 - beta) * g * g;
                double ra = T > 0 ? R * sqrt(1 - pow(beta, (double)T)) / (1 - pow(alpha, (double)T)) : R;
                double xn = x - ra * v / (sqrt(h) + eps);
                onnx__set_f64(s1o, e, v);
                onnx__set_f64(s2o, e, h);
                onnx__set_f64(xo, e, (1 - onnx__attr_float(n, "norm_coefficient_post", 0.f)) * xn);
            }
        }
    }
    return MD_OK;
}

static int run_adagrad(const onnx_node *n, onnx_kctx *k) { return run_opt(n, k, O_ADAGRAD); }
static int run_momentum(const onnx_node *n, onnx_kctx *k) { return run_opt(n, k, O_MOMENTUM); }
static int run_adam(const onnx_node *n, onnx_kctx *k) { return run_opt(n, k, O_ADAM); }

/* ---- NonMaxSuppression ---- */

typedef struct box {
    double y1, x1, y2, x2;
} box;

static box get_box(const onnx_tensor *b, int64_t base, bool center)
{
    double v[4];
    for (int i = 0; i < 4; i++)
        v[i] = onnx__get_f64(b, base + i);
    if (center) /* [x_center, y_center, width, height] */
        return (box){v[1] - v[3] / 2, v[0] - v[2] / 2, v[1] + v[3] / 2, v[0] + v[2] / 2};
    return (box){fmin(v[0], v[2]), fmin(v[1], v[3]), fmax(v[0], v[2]), fmax(v[1], v[3])};
}

static double iou(box a, box b)
{
    double aa = (a.y2 - a.y1) * (a.x2 - a.x1), ab = (b.y2 - b.y1) * (b.x2 - b.x1);
    if (aa <= 0 || ab <= 0)
        return 0;
    double h = fmin(a.y2, b.y2) - fmax(a.y1, b.y1), w = fmin(a.x2, b.x2) - fmax(a.x1, b.x1);
    if (h <= 0 || w <= 0)
        return 0;
    return h * w / (aa + ab - h * w);
}

typedef struct scored {
    double s;
    int64_t i;
} scored;

static int by_score(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return x->i < y->i ? -1 : 1;
}

static int run_nms(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *bx = k->in[0], *sc = k->in[1];
    if (bx->rank != 3 || bx->dims[2] != 4 || sc->rank != 3 || sc->dims[0] != bx->dims[0] ||
        sc->dims[2] != bx->dims[1])
        return onnx__kfail(k, MD_E_INVALID_PARAM, "boxes [B, N, 4] and scores [B, C, N] expected");
    int64_t B = bx->dims[0], N = bx->dims[1], C = sc->dims[1];
    int64_t maxo = k->n_in > 2 && k->in[2] && onnx_tensor_numel(k->in[2]) ? onnx__get_i64(k->in[2], 0) : 0;
    double thr = k->n_in > 3 && k->in[3] && onnx_tensor_numel(k->in[3]) ? onnx__get_f64(k->in[3], 0) : 0;
    bool has_st = k->n_in > 4 && k->in[4] && onnx_tensor_numel(k->in[4]);
    double st = has_st ? onnx__get_f64(k->in[4], 0) : 0;
    bool center = onnx__attr_int(n, "center_point_box", 0) != 0;
    if (maxo < 0)
        maxo = 0;
    int64_t cap = B * C * (maxo < N ? maxo : N);
    scored *cand = onnx__scratch(k, (size_t)(N + 1) * sizeof(scored));
    int64_t *sel = onnx__scratch(k, (size_t)(cap * 3 + 1) * sizeof(int64_t));
    int64_t *keep = onnx__scratch(k, (size_t)(N + 1) * sizeof(int64_t));
    if (!cand || !sel || !keep)
        return MD_E_NOMEM;
    int64_t ns = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < C; c++) {
            int64_t nc = 0, nk = 0;
            for (int64_t i = 0; i < N; i++) {
                double s = onnx__get_f64(sc, (b * C + c) * N + i);
                if (!has_st || s > st)
                    cand[nc++] = (scored){s, i};
            }
            qsort(cand, (size_t)nc, sizeof *cand, by_score);
            for (int64_t q = 0; q < nc && nk < maxo; q++) {
                box cb = get_box(bx, (b * N + cand[q].i) * 4, center);
                bool ok = true;
                for (int64_t j = 0; j < nk && ok; j++)
                    ok = iou(cb, get_box(bx, (b * N + keep[j]) * 4, center)) <= thr;
                if (!ok)
                    continue;
                keep[nk++] = cand[q].i;
                sel[ns * 3] = b;
                sel[ns * 3 + 1] = c;
                sel[ns * 3 + 2] = cand[q].i;
                ns++;
            }
        }
    int64_t od[2] = {ns, 3};
    onnx_tensor *o;
    int rc = onnx__output(k, 0, ONNX_INT64, 2, od, &o);
    if (rc == MD_OK && ns)
        memcpy(o->data, sel, (size_t)ns * 3 * sizeof(int64_t));
    return rc;
}

#define TRAIN(NAME, ATTRS, FN)                                                                \
    {.domain = "ai.onnx.preview.training", .op_type = NAME, .opset_min = 1, .min_in = 3,     \
     .max_in = ONNX_VARIADIC, .min_out = 1, .max_out = ONNX_VARIADIC, .attrs = ATTRS, .run = FN}

ONNX_OPS(train) = {
    TRAIN("Adagrad", "decay_factor:f epsilon:f norm_coefficient:f", run_adagrad),
    TRAIN("Momentum", "alpha:f beta:f mode:s norm_coefficient:f", run_momentum),
    TRAIN("Adam", "alpha:f beta:f epsilon:f norm_coefficient:f norm_coefficient_post:f", run_adam),
    {.domain = "", .op_type = "NonMaxSuppression", .opset_min = 10, .min_in = 2, .max_in = 5,
     .min_out = 1, .max_out = 1, .attrs = "center_point_box:i", .run = run_nms},
    ONNX_OPS_END,
};
