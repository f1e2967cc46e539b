/* concat.c - Concat, and a channel Concat whose only reader is a 1x1 Conv, fused with it (and
 * with a residual Add after the Conv).
 *
 * The residual dense blocks of the RDN super-resolution nets (UpscalerJS esrgan-medium and
 * -slim) end with  y = Conv1x1(Concat(x, f(x))) + x.  Run as written, that is a copy of both
 * inputs into the concatenation, the Conv's reorders into oneDNN's blocked layout and back, and
 * a pass of the Add. A 1x1 convolution over NCHW is a matrix product per image, Y[oc][HW] =
 * W[oc][ic] . X[ic][HW], and the rows of X are the concatenated inputs one after another, so
 *     Y = B (+ residual) + sum over inputs i of W[:, cols of i] . X_i
 * is one product per input accumulated into Y (oneDNN's sgemm with beta = 1), reading every input
 * where it is: no concatenation, no reorder, no extra pass. MODELD_ONNX_NO_CATCONV=1 (read at
 * load) leaves the nodes apart, to compare.
 *
 * A plain Concat whose inputs are contiguous ranges of its output (every dim before the axis is
 * 1: a channel Concat of one image) tells the planner about each copy it makes
 * (onnx__output_may_hold), so that later runs with the plan find an input already written in
 * place by its producer and skip its copy (plan.c, "views"): the dense blocks' chained Concats
 * of the RRDN net (esrgan-thick) cost no copies then. MODELD_ONNX_NO_CATVIEW=1 (read at load)
 * turns that off, to compare.
 *
 * Invariants:
 *   1. A fused node computes exactly Conv(Concat(...)) (+ the residual) as the separate nodes
 *      would, up to the order of float sums: the Conv is 2-D, 1x1, stride 1, no padding, group 1,
 *      with constant weights and bias, and the Concat joins channels (axis 1 of rank 4), all
 *      checked at load; shapes are checked at run as the Conv and the Add would.
 *   2. The residual is one of the Concat's own inputs (onnx__prep_absorb lets the Add join only
 *      then), with the output's channels or one (the Add's broadcast); anything else fails the run
 *      as the Add would fail it.
 *   3. A plain Concat's output holds the concatenation whether or not its inputs were views:
 *      an input is skipped only when its data already is the output at its offset (the planner
 *      made it so, plan.c invariant 2: nothing else wrote there); any other input is copied.
 */
#include <stdlib.h>
#include <string.h>

#include "onnx/kernels/kernels.h"
#include "onnx/onnx_int.h"

typedef struct catconv {
    const onnx_tensor *w, *b; /* constant [oc][ic][1][1], bias [oc] or NULL */
    int residual;             /* index of the Concat input added to the result, or -1 */
} catconv;

/* n->priv of every Concat. */
typedef struct concat_priv {
    const catconv *conv; /* the fused 1x1 Conv (+ Add), or NULL: a plain Concat */
    bool views;          /* plain: note copies for the planner (not MODELD_ONNX_NO_CATVIEW=1) */
} concat_priv;

/* ---- plain Concat ---- */

/* Output dims of concatenating k's inputs along axis (checked: same type, rank, other dims). */
static int concat_dims(onnx_kctx *k, int axis, int64_t *d)
{
    const onnx_tensor *x0 = k->in[0];
    memcpy(d, x0->dims, sizeof(int64_t) * ONNX_MAX_RANK);
    d[axis] = 0;
    for (int i = 0; i < k->n_in; i++) {
        const onnx_tensor *x = k->in[i];
        if (!x || x->dtype != x0->dtype || x->rank != x0->rank)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "input %d differs in type or rank", i);
        for (int j = 0; j < x->rank; j++)
            if (j != axis && x->dims[j] != x0->dims[j])
                return onnx__kfail(k, MD_E_INVALID_PARAM, "input %d differs in dim %d", i, j);
        d[axis] += x->dims[axis];
    }
    return MD_OK;
}

/* Copy input i's rows (chunk bytes each) to dst + off, the next one stride bytes further,
 * unless the input already is the output there (a view, invariant 3). With one row (every dim
 * before the axis 1), a copy is noted for the planner when views are on. */
static void copy_input(onnx_kctx *k, int i, unsigned char *dst, size_t off, int64_t outer,
                       size_t stride, size_t chunk, bool views)
{
    const unsigned char *src = k->in[i]->data;
    if (chunk == 0 || (outer == 1 && src == dst + off))
        return;
    for (int64_t r = 0; r < outer; r++)
        memcpy(dst + off + (size_t)r * stride, src + (size_t)r * chunk, chunk);
    if (views && outer == 1 && k->in[i]->dtype != ONNX_STRING)
        onnx__output_may_hold(k, i, off);
}

static int run_plain(const onnx_node *n, onnx_kctx *k, bool views)
{
    const onnx_tensor *x0 = k->in[0];
    int axis;
    int64_t d[ONNX_MAX_RANK];
    onnx_tensor *o;
    if (onnx__norm_axis(onnx__attr_int(n, "axis", 1), x0->rank, 0, &axis) != 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "axis out of range");
    int rc = concat_dims(k, axis, d);
    if (rc == MD_OK)
        rc = onnx__output(k, 0, x0->dtype, x0->rank, d, &o);
    if (rc)
        return rc;
    int64_t outer = 1, inner = (int64_t)onnx_dtype_size(x0->dtype);
    for (int j = 0; j < axis; j++)
        outer *= d[j];
    for (int j = axis + 1; j < x0->rank; j++)
        inner *= d[j];
    size_t stride = (size_t)(d[axis] * inner), off = 0;
    for (int i = 0; i < k->n_in; i++) {
        size_t chunk = (size_t)(k->in[i]->dims[axis] * inner);
        copy_input(k, i, o->data, off, outer, stride, chunk, views);
        off += chunk;
    }
    return MD_OK;
}

/* ---- load: the fusion ---- */

/* Whether ints attribute name of c is absent or every value equals v. */
static int ints_all(const onnx_node *c, const char *name, int64_t v)
{
    const int64_t *a;
    size_t cnt = onnx__attr_ints(c, name, &a);
    for (size_t i = 0; i < cnt; i++)
        if (a[i] != v)
            return 0;
    return 1;
}

/* Whether c is a Conv that can join: reads our output as X, 1x1 2-D, stride 1, no padding,
 * group 1, constant float weights and bias (invariant 1). */
static int fusable_conv(onnx_prep *p, const onnx_node *n, const onnx_node *c)
{
    if (c->domain[0] != '\0' || strcmp(c->op_type, "Conv") != 0 || c->n_in < 2 ||
        c->in[0] != n->out[0] || c->in[1] == n->out[0] || (c->n_in > 2 && c->in[2] == n->out[0]))
        return 0;
    const onnx_tensor *w = onnx__prep_const(p, c, 1);
    int has_b = c->n_in > 2 && c->in[2] >= 0;
    const onnx_tensor *b = has_b ? onnx__prep_const(p, c, 2) : NULL;
    if (w == NULL || w->dtype != ONNX_FLOAT || w->rank != 4 || w->dims[2] != 1 || w->dims[3] != 1 ||
        w->dims[0] < 1 || w->dims[1] < 1 ||
        (has_b &&
         (b == NULL || b->dtype != ONNX_FLOAT || b->rank != 1 || b->dims[0] != w->dims[0])))
        return 0;
    const char *ap = onnx__attr_str(c, "auto_pad", "NOTSET");
    int known = strcmp(ap, "NOTSET") == 0 || strcmp(ap, "VALID") == 0 ||
                strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0;
    return known && onnx__attr_int(c, "group", 1) == 1 && ints_all(c, "strides", 1) &&
           ints_all(c, "pads", 0) && ints_all(c, "kernel_shape", 1) && ints_all(c, "dilations", 1);
}

/* The Concat input that Add node c adds to our output, or -1 when c is not such an Add. */
static int residual_of(const onnx_node *n, const onnx_node *c)
{
    if (c->domain[0] != '\0' || strcmp(c->op_type, "Add") != 0 || c->n_in != 2 || c->n_out != 1)
        return -1;
    int other = c->in[0] == n->out[0] ? c->in[1] : c->in[1] == n->out[0] ? c->in[0] : -1;
    for (int i = 0; other >= 0 && other != n->out[0] && i < n->n_in; i++)
        if (n->in[i] == other)
            return i;
    return -1;
}

/* Whether the environment variable name is "1" (read at load). */
static bool env_on(const char *name)
{
    const char *v = getenv(name);
    return v && strcmp(v, "1") == 0;
}

/* The fused 1x1 Conv (+ residual Add) reading n, or NULL with *rc MD_OK when none fuses. */
static catconv *prep_catconv(onnx_node *n, onnx_prep *p, int *rc, md_err *err)
{
    int64_t axis = onnx__attr_int(n, "axis", 1);
    *rc = MD_OK;
    if (env_on("MODELD_ONNX_NO_CATCONV") || (axis != 1 && axis != -3))
        return NULL;
    onnx_node *c = onnx__prep_sole_consumer(p, n, 0);
    if (c == NULL || !fusable_conv(p, n, c))
        return NULL;
    catconv *f = onnx__prep_alloc(p, sizeof *f);
    if (f == NULL) {
        *rc = onnx__prep_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
        return NULL;
    }
    f->w = onnx__prep_const(p, c, 1);
    f->b = c->n_in > 2 && c->in[2] >= 0 ? onnx__prep_const(p, c, 2) : NULL;
    f->residual = -1;
    *rc = onnx__prep_absorb(p, n, c, err);
    if (*rc != MD_OK)
        return NULL;
    onnx_node *add = onnx__prep_sole_consumer(p, n, 0);
    int r = add ? residual_of(n, add) : -1;
    if (r >= 0) {
        *rc = onnx__prep_absorb(p, n, add, err);
        f->residual = r;
    }
    return *rc == MD_OK ? f : NULL;
}

static int prep_concat(onnx_node *n, onnx_prep *p, md_err *err)
{
    concat_priv *cp = onnx__prep_alloc(p, sizeof *cp);
    if (cp == NULL)
        return onnx__prep_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    int rc;
    cp->conv = prep_catconv(n, p, &rc, err);
    cp->views = cp->conv == NULL && !env_on("MODELD_ONNX_NO_CATVIEW");
    n->priv = cp;
    return rc;
}

/* ---- run: the fused node ---- */

/* Y[o][:] = B[o] + residual (its channel o, or its only channel), per image. */
static void init_rows(const catconv *f, const onnx_tensor *res, int64_t img, int64_t oc, int64_t hw,
                      float *y)
{
    const float *b = f->b ? f->b->data : NULL;
    int64_t rc = res ? res->dims[1] : 0;
    for (int64_t o = 0; o < oc; o++) {
        float *row = y + o * hw, bias = b ? b[o] : 0.0f;
        const float *r =
            res ? (const float *)res->data + (img * rc + (rc == 1 ? 0 : o)) * hw : NULL;
        if (r)
            for (int64_t i = 0; i < hw; i++)
                row[i] = bias + r[i];
        else
            for (int64_t i = 0; i < hw; i++)
                row[i] = bias;
    }
}

static int run_fused(const catconv *f, onnx_kctx *k)
{
    const onnx_tensor *x0 = k->in[0];
    int64_t d[ONNX_MAX_RANK], oc = f->w->dims[0], ic = f->w->dims[1];
    onnx_tensor *y;
    if (x0->dtype != ONNX_FLOAT || x0->rank != 4)
        return onnx__kfail(k, MD_E_INVALID_PARAM,
                           "X: the fused 1x1 convolution needs float "
                           "inputs of rank 4");
    int rc = concat_dims(k, 1, d);
    if (rc)
        return rc;
    if (d[1] != ic)
        return onnx__kfail(k, MD_E_INVALID_PARAM,
                           "W: weights expect %lld input channels, X has "
                           "%lld",
                           (long long)ic, (long long)d[1]);
    if (d[0] > 0 && (d[2] < 1 || d[3] < 1))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X: every spatial dim must be at least 1");
    const onnx_tensor *res = f->residual >= 0 ? k->in[f->residual] : NULL;
    if (res && res->dims[1] != oc && res->dims[1] != 1)
        return onnx__kfail(k, MD_E_INVALID_PARAM,
                           "Add: the residual's %lld channels do not "
                           "broadcast to %lld",
                           (long long)res->dims[1], (long long)oc);
    d[1] = oc;
    if ((rc = onnx__output(k, 0, ONNX_FLOAT, 4, d, &y)))
        return rc;
    int64_t hw = d[2] * d[3];
    md_err e;
    onnx__kern_set_threads(
        onnx__kern_threads_for(k->threads, (double)d[0] * (double)hw * (double)oc * (double)ic));
    for (int64_t img = 0; img < d[0] && rc == MD_OK; img++) {
        float *yn = (float *)y->data + img * oc * hw;
        init_rows(f, res, img, oc, hw, yn);
        for (int64_t i = 0, col = 0; i < k->n_in && rc == MD_OK; col += k->in[i]->dims[1], i++) {
            int64_t c = k->in[i]->dims[1];
            const float *xi = (const float *)k->in[i]->data + img * c * hw;
            if (c > 0)
                rc = onnx__sgemm(0, 0, oc, hw, c, 1.0f, (const float *)f->w->data + col, ic, xi, hw,
                                 1.0f, yn, hw, &e);
        }
    }
    return rc ? onnx__kfail(k, rc, "%s", e.msg) : MD_OK;
}

static int run_concat(const onnx_node *n, onnx_kctx *k)
{
    const concat_priv *cp = n->priv; /* set by prep_concat */
    return cp && cp->conv ? run_fused(cp->conv, k) : run_plain(n, k, cp && cp->views);
}

ONNX_OPS(concat) = {
    {.domain = "",
     .op_type = "Concat",
     .opset_min = 1,
     .opset_max = 0,
     .min_in = 1,
     .max_in = ONNX_VARIADIC,
     .min_out = 1,
     .max_out = 1,
     .attrs = "axis:i",
     .prepare = prep_concat,
     .run = run_concat},
    ONNX_OPS_END,
};
