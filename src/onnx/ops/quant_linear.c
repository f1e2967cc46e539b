/* quant_linear.c - ONNX's integer (quantised) linear operators: ConvInteger, QLinearConv,
 * MatMulInteger and QLinearMatMul, for uint8 / int8 operands.
 *
 * All four share one scheme: every 8-bit value has its zero point subtracted first (the operands
 * are widened to int32 in scratch memory), products are summed in integers, and the sum is
 * stored as int32 (the *Integer ops) or requantised (the QLinear* ops):
 *     y = saturate(round_half_even(acc * (scale_a * scale_b / scale_y)) + y_zero_point)
 * computed in float32 as the ONNX reference and onnxruntime do. Zero points and scales are one
 * value per tensor, or one per output channel (Conv's w), per row (MatMul's a) or per column
 * (MatMul's b) where the spec allows it. The sums are wide (int64) and wrap to int32 on store, so
 * a hostile file cannot cause signed overflow.
 *
 * Conv padding contributes nothing: the spec pads x with its zero point, which is 0 after the
 * zero point is subtracted. These are straightforward integer loops, written for exactness.
 */
#include <math.h>
#include <string.h>

#include "onnx/kernels/fuse.h"
#include "onnx/kernels/kernels.h"
#include "onnx/onnx_int.h"

static bool is_q8(int dtype)
{
    return dtype == ONNX_UINT8 || dtype == ONNX_INT8;
}

static bool is_scale_type(int dtype)
{
    return dtype == ONNX_FLOAT || dtype == ONNX_FLOAT16 || dtype == ONNX_BFLOAT16;
}

/* Element i of an 8-bit tensor as int32. */
static int32_t q8_at(const onnx_tensor *t, int64_t i)
{
    if (t->dtype == ONNX_UINT8)
        return ((const uint8_t *)t->data)[i];
    return ((const int8_t *)t->data)[i];
}

/* ---- quantisation parameters (zero points and scales) --------------------------------------- */

enum { QP_NONE, QP_TENSOR, QP_VECTOR, QP_BATCHED };

/* One parameter resolved against its operand: absent (zero point 0), one value, one value per
 * row/column/channel (len values), or per matrix of the batch and per row/column. */
typedef struct qparam {
    const onnx_tensor *t; /* borrowed input; NULL when absent */
    int mode;             /* QP_* */
    int64_t len;          /* values per matrix (QP_VECTOR, QP_BATCHED) */
} qparam;

/* Index of the value for matrix `mat` of the operand and row/column/channel i. */
static int64_t qp_index(const qparam *q, int64_t mat, int64_t i)
{
    if (q->mode == QP_VECTOR)
        return i;
    if (q->mode == QP_BATCHED)
        return mat * q->len + i;
    return 0;
}

static int32_t qp_zero(const qparam *q, int64_t mat, int64_t i)
{
    return q->mode == QP_NONE ? 0 : q8_at(q->t, qp_index(q, mat, i));
}

static float qp_scale(const qparam *q, int64_t mat, int64_t i)
{
    return (float)onnx__get_f64(q->t, qp_index(q, mat, i));
}

/* Shape of a per-row (row=1: [..., len, 1]) or per-column (row=0: [..., 1, len]) parameter of
 * matrix operand `data`: the leading dims are all 1 (QP_VECTOR) or equal data's batch dims
 * (QP_BATCHED). Returns the mode, or -1 when the shape is neither. */
static int qp_nd_mode(const onnx_tensor *p, int64_t len, int row, const onnx_tensor *data)
{
    int r = p->rank;
    if (r < 2 || data == NULL || p->dims[r - 2] != (row ? len : 1) ||
        p->dims[r - 1] != (row ? 1 : len))
        return -1;
    bool ones = true, same = r == data->rank;
    for (int d = 0; d < r - 2; d++) {
        ones = ones && p->dims[d] == 1;
        same = same && p->dims[d] == data->dims[d];
    }
    return ones ? QP_VECTOR : same ? QP_BATCHED : -1;
}

/* Resolve input `idx` (named `name`) as a parameter of operand `data` with len values per
 * matrix when not per tensor. zero: a zero point (dtype must equal data's) rather than a scale.
 * nd_data: the matrix operand when N-D per-row/column shapes are allowed (MatMul), else NULL. */
static int qp_resolve(onnx_kctx *k, int idx, const char *name, bool zero, const onnx_tensor *data,
                      int64_t len, int row, const onnx_tensor *nd_data, qparam *q)
{
    const onnx_tensor *p = idx < k->n_in ? k->in[idx] : NULL;
    *q = (qparam){.t = p, .mode = QP_NONE, .len = len};
    if (p == NULL)
        return MD_OK;
    if (zero && p->dtype != data->dtype)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "%s must be %s like its operand, got %s", name,
                           onnx_dtype_name(data->dtype), onnx_dtype_name(p->dtype));
    if (!zero && !is_scale_type(p->dtype))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "%s must be float, float16 or bfloat16, got "
                           "%s", name, onnx_dtype_name(p->dtype));
    int64_t cnt = onnx_tensor_numel(p);
    if (cnt == 1) {
        q->mode = QP_TENSOR;
    } else if (p->rank == 1 && cnt == len) {
        q->mode = QP_VECTOR;
    } else {
        int mode = qp_nd_mode(p, len, row, nd_data);
        if (mode < 0)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "%s has a shape that is neither per tensor "
                               "nor per %s (%lld values)", name,
                               nd_data ? (row ? "row" : "column") : "output channel",
                               (long long)len);
        q->mode = cnt == 1 ? QP_TENSOR : mode;
    }
    if (!zero) /* a scale must be usable as a divisor and multiplier */
        for (int64_t i = 0; i < cnt; i++)
            if (!isfinite(onnx__get_f64(p, i)) || onnx__get_f64(p, i) == 0)
                return onnx__kfail(k, MD_E_INVALID_PARAM, "%s must be finite and non-zero", name);
    return MD_OK;
}

/* A per-tensor parameter (x_zero_point, x_scale, y_scale, y_zero_point). */
static int qp_tensor(onnx_kctx *k, int idx, const char *name, bool zero, const onnx_tensor *data,
                     qparam *q)
{
    const onnx_tensor *p = idx < k->n_in ? k->in[idx] : NULL;
    if (p != NULL && onnx_tensor_numel(p) != 1)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "%s must be a scalar (per tensor)", name);
    return qp_resolve(k, idx, name, zero, data, 1, 0, NULL, q);
}

/* An int64 sum stored as int32 the way int32 accumulation wraps, without signed overflow. */
static int32_t wrap32(int64_t v)
{
    return (int32_t)(uint32_t)(uint64_t)v;
}

/* saturate(round_half_even(acc * mult) + zp) into element i of the uint8/int8 tensor y. */
static void requant_store(onnx_tensor *y, int64_t i, int32_t acc, float mult, int32_t zp)
{
    float v = rintf((float)acc * mult) + (float)zp; /* rintf: default mode rounds half to even */
    float lo = y->dtype == ONNX_UINT8 ? 0.0f : -128.0f, hi = y->dtype == ONNX_UINT8 ? 255.0f : 127.0f;
    v = v < lo ? lo : v > hi ? hi : v;
    if (y->dtype == ONNX_UINT8)
        ((uint8_t *)y->data)[i] = (uint8_t)v;
    else
        ((int8_t *)y->data)[i] = (int8_t)v;
}

/* Operand t widened to int32 in scratch with its zero point subtracted; the zero point of
 * element i is that of channel i / per (a per-tensor zero point ignores the channel). NULL on
 * OOM (k->err set). */
static int32_t *widen(onnx_kctx *k, const onnx_tensor *t, const qparam *zp, int64_t per)
{
    int64_t cnt = onnx_tensor_numel(t);
    int32_t *v = onnx__scratch(k, (size_t)cnt * sizeof *v);
    if (v == NULL)
        return NULL;
    for (int64_t i = 0; i < cnt; i++)
        v[i] = q8_at(t, i) - qp_zero(zp, 0, per > 0 ? i / per : 0);
    return v;
}

/* ---- ConvInteger / QLinearConv ---------------------------------------------------------------- */

#define CONV_ATTRS "auto_pad:s dilations:I group:i kernel_shape:I pads:I strides:I"

/* Geometry of one integer convolution, attributes resolved against the input shapes. */
typedef struct qconv {
    int nsp;
    int64_t n, c, m, group, cg, mg;             /* batch, in/out channels, per-group counts */
    int64_t in[ONNX_MAX_RANK], out[ONNX_MAX_RANK], k[ONNX_MAX_RANK];
    int64_t stride[ONNX_MAX_RANK], dil[ONNX_MAX_RANK], pb[ONNX_MAX_RANK], pe[ONNX_MAX_RANK];
    int64_t in_sp, out_sp, k_sp;                /* spatial element counts */
} qconv;

/* Attribute values that do not depend on shapes, checked once at load. */
static int prepare_qconv(onnx_node *n, onnx_prep *p, md_err *err)
{
    (void)p;
    int rc = onnx__conv_attrs_check(n, err);
    static const char *const names[] = {"dilations", "kernel_shape", "pads", "strides"};
    for (int a = 0; a < 4 && !rc; a++)
        rc = onnx__attr_ints_bounded(n, names[a], a == 2 ? 0 : 1, err);
    return rc;
}

/* Attribute list `name` with want values (absent: def for each). */
static int conv_ints(onnx_kctx *k, const char *name, int want, int64_t def, int64_t *out)
{
    const int64_t *v;
    size_t cnt = onnx__attr_ints(k->node, name, &v);
    if (cnt != 0 && cnt != (size_t)want)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "attribute %s has %zu values, %d expected",
                           name, cnt, want);
    for (int i = 0; i < want; i++)
        out[i] = cnt ? v[i] : def;
    return MD_OK;
}

/* Channel counts and group of x [N, C, ...] and w [M, C/group, k...]. */
static int qconv_channels(onnx_kctx *k, const onnx_tensor *x, const onnx_tensor *w, qconv *g)
{
    if (x->rank < 3 || w->rank != x->rank)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "x must have rank >= 3 and w the same rank "
                           "(got %d and %d)", x->rank, w->rank);
    g->nsp = x->rank - 2;
    g->n = x->dims[0];
    g->c = x->dims[1];
    g->m = w->dims[0];
    g->group = onnx__attr_int(k->node, "group", 1);
    if (g->c % g->group || g->m % g->group || w->dims[1] != g->c / g->group)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "channels do not match group %lld: x has %lld, "
                           "w is [%lld, %lld, ...]", (long long)g->group, (long long)g->c,
                           (long long)g->m, (long long)w->dims[1]);
    g->cg = g->c / g->group;
    g->mg = g->m / g->group;
    return MD_OK;
}

/* Spatial sizes, strides, pads and output sizes. */
static int qconv_spatial(onnx_kctx *k, const onnx_tensor *x, const onnx_tensor *w, qconv *g)
{
    int64_t ks[ONNX_MAX_RANK], pads[2 * ONNX_MAX_RANK];
    int rc = conv_ints(k, "kernel_shape", g->nsp, 0, ks);
    if (!rc)
        rc = conv_ints(k, "strides", g->nsp, 1, g->stride);
    if (!rc)
        rc = conv_ints(k, "dilations", g->nsp, 1, g->dil);
    if (!rc)
        rc = conv_ints(k, "pads", 2 * g->nsp, 0, pads);
    if (rc)
        return rc;
    int autopad = onnx__autopad_parse(onnx__attr_str(k->node, "auto_pad", "NOTSET"));
    for (int d = 0; d < g->nsp; d++) {
        g->in[d] = x->dims[2 + d];
        g->k[d] = w->dims[2 + d];
        if (ks[d] != 0 && ks[d] != g->k[d])
            return onnx__kfail(k, MD_E_INVALID_PARAM, "kernel_shape[%d] = %lld but w has %lld", d,
                               (long long)ks[d], (long long)g->k[d]);
        g->pb[d] = pads[d];
        g->pe[d] = pads[g->nsp + d];
        g->out[d] = onnx__spatial_out(autopad, 0, g->in[d], (g->k[d] - 1) * g->dil[d] + 1,
                                      g->stride[d], &g->pb[d], &g->pe[d]);
        if (g->out[d] < 0 || g->k[d] < 1)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "spatial dim %d: the padded input (%lld) "
                               "is smaller than the kernel", d, (long long)g->in[d]);
    }
    g->in_sp = onnx__numel(g->nsp, g->in);
    g->k_sp = onnx__numel(g->nsp, g->k);
    g->out_sp = onnx__numel(g->nsp, g->out);
    if (g->out_sp < 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "output too large");
    return MD_OK;
}

/* offs[kk] = flat input offset read by kernel position kk at output position o, or -1 where it
 * falls in the padding. */
static void qconv_offsets(const qconv *g, int64_t o, int64_t *offs)
{
    int64_t base[ONNX_MAX_RANK];
    for (int d = g->nsp - 1; d >= 0; d--) {
        base[d] = (o % g->out[d]) * g->stride[d] - g->pb[d];
        o /= g->out[d];
    }
    for (int64_t kk = 0; kk < g->k_sp; kk++) {
        int64_t rem = kk, flat = 0, mul = 1;
        for (int d = g->nsp - 1; d >= 0 && flat >= 0; d--) {
            int64_t pos = base[d] + (rem % g->k[d]) * g->dil[d];
            rem /= g->k[d];
            if (pos < 0 || pos >= g->in[d])
                flat = -1;
            else
                flat += pos * mul;
            mul *= g->in[d];
        }
        offs[kk] = flat;
    }
}

/* acc[b][m][o] = sum over the group's channels and kernel of xs * ws (zero points already
 * subtracted), plus bias[m] when given. */
static int qconv_acc(onnx_kctx *k, const qconv *g, const int32_t *xs, const int32_t *ws,
                     const int32_t *bias, int32_t *acc)
{
    int64_t *offs = onnx__scratch(k, (size_t)g->k_sp * sizeof *offs);
    if (offs == NULL)
        return MD_E_NOMEM;
    for (int64_t b = 0; b < g->n; b++)
        for (int64_t o = 0; o < g->out_sp; o++) {
            qconv_offsets(g, o, offs);
            for (int64_t m = 0; m < g->m; m++) {
                int64_t sum = bias ? bias[m] : 0, grp = m / g->mg;
                for (int64_t c = 0; c < g->cg; c++) {
                    const int32_t *xr = xs + (b * g->c + grp * g->cg + c) * g->in_sp;
                    const int32_t *wr = ws + (m * g->cg + c) * g->k_sp;
                    for (int64_t kk = 0; kk < g->k_sp; kk++)
                        if (offs[kk] >= 0)
                            sum += (int64_t)xr[offs[kk]] * wr[kk];
                }
                acc[(b * g->m + m) * g->out_sp + o] = wrap32(sum);
            }
        }
    return MD_OK;
}

/* Shared front half of both convolutions: geometry, zero points, widened operands. Input
 * positions: x at 0, w at iw, zero points at ixz / iwz. */
static int qconv_setup(onnx_kctx *k, int iw, int ixz, int iwz, qconv *g, int32_t **xs,
                       int32_t **ws, qparam *wzp)
{
    const onnx_tensor *x = k->in[0], *w = k->in[iw];
    if (!is_q8(x->dtype) || !is_q8(w->dtype))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "x and w must be uint8 or int8, got %s and %s",
                           onnx_dtype_name(x->dtype), onnx_dtype_name(w->dtype));
    qparam xzp;
    int rc = qconv_channels(k, x, w, g);
    if (!rc)
        rc = qconv_spatial(k, x, w, g);
    if (!rc)
        rc = qp_tensor(k, ixz, "x_zero_point", true, x, &xzp);
    if (!rc)
        rc = qp_resolve(k, iwz, "w_zero_point", true, w, g->m, 0, NULL, wzp);
    if (rc)
        return rc;
    *xs = widen(k, x, &xzp, 0);
    *ws = widen(k, w, wzp, g->cg * g->k_sp);
    return *xs && *ws ? MD_OK : MD_E_NOMEM;
}

static int run_conv_integer(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    qconv g;
    qparam wzp;
    int32_t *xs, *ws;
    int rc = qconv_setup(k, 1, 2, 3, &g, &xs, &ws, &wzp);
    if (rc)
        return rc;
    int64_t dims[ONNX_MAX_RANK] = {g.n, g.m};
    memcpy(dims + 2, g.out, sizeof(int64_t) * (size_t)g.nsp);
    onnx_tensor *y;
    if ((rc = onnx__output(k, 0, ONNX_INT32, g.nsp + 2, dims, &y)))
        return rc;
    return qconv_acc(k, &g, xs, ws, NULL, y->data);
}

/* QLinearConv's optional bias B: int32 [M]; NULL when absent. */
static int qconv_bias(onnx_kctx *k, const qconv *g, const int32_t **bias)
{
    const onnx_tensor *b = k->n_in > 8 ? k->in[8] : NULL;
    *bias = NULL;
    if (b == NULL)
        return MD_OK;
    if (b->dtype != ONNX_INT32 || b->rank != 1 || b->dims[0] != g->m)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "B must be int32 [%lld]", (long long)g->m);
    *bias = b->data;
    return MD_OK;
}

/* QLinearConv's scales (x at 1, w at 4, y at 6) and output zero point (at 7). */
static int qconv_scales(onnx_kctx *k, const qconv *g, qparam *xsc, qparam *wsc, qparam *ysc,
                        qparam *yzp)
{
    const onnx_tensor *yz = k->in[7];
    int rc = qp_tensor(k, 1, "x_scale", false, k->in[0], xsc);
    if (!rc)
        rc = qp_resolve(k, 4, "w_scale", false, k->in[3], g->m, 0, NULL, wsc);
    if (!rc)
        rc = qp_tensor(k, 6, "y_scale", false, k->in[0], ysc);
    if (!rc && !is_q8(yz->dtype))
        rc = onnx__kfail(k, MD_E_INVALID_PARAM, "y_zero_point must be uint8 or int8");
    return rc ? rc : qp_tensor(k, 7, "y_zero_point", true, yz, yzp);
}

static int run_qlinear_conv(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    qconv g;
    qparam wzp, xsc, wsc, ysc, yzp;
    int32_t *xs, *ws;
    const int32_t *bias;
    const onnx_tensor *yz = k->in[7];
    int rc = qconv_setup(k, 3, 2, 5, &g, &xs, &ws, &wzp);
    if (!rc)
        rc = qconv_scales(k, &g, &xsc, &wsc, &ysc, &yzp);
    if (!rc)
        rc = qconv_bias(k, &g, &bias);
    if (rc)
        return rc;
    int64_t dims[ONNX_MAX_RANK] = {g.n, g.m};
    memcpy(dims + 2, g.out, sizeof(int64_t) * (size_t)g.nsp);
    onnx_tensor *y;
    if ((rc = onnx__output(k, 0, yz->dtype, g.nsp + 2, dims, &y)))
        return rc;
    /* sized from the output, which onnx__output has checked against overflow and limits */
    int32_t *acc = onnx__scratch(k, (size_t)onnx_tensor_numel(y) * sizeof *acc);
    if (acc == NULL)
        return MD_E_NOMEM;
    if ((rc = qconv_acc(k, &g, xs, ws, bias, acc)))
        return rc;
    float xs0 = qp_scale(&xsc, 0, 0), ys0 = qp_scale(&ysc, 0, 0);
    int32_t zp = qp_zero(&yzp, 0, 0);
    for (int64_t bm = 0; bm < g.n * g.m; bm++) {
        float mult = xs0 * qp_scale(&wsc, 0, bm % g.m) / ys0;
        for (int64_t o = 0; o < g.out_sp; o++)
            requant_store(y, bm * g.out_sp + o, acc[bm * g.out_sp + o], mult, zp);
    }
    return MD_OK;
}

/* ---- MatMulInteger / QLinearMatMul ------------------------------------------------------------ */

/* The operands as batches of matrices, the shape rules MatMul uses (onnx__mm_shape). */
static int qmm_shape(onnx_kctx *k, const onnx_tensor *a, const onnx_tensor *b, onnx_mm_shape *s)
{
    int rc = onnx__mm_shape(a, b, s);
    if (rc == -3)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "a and b must have rank >= 1");
    if (rc == -2)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "inner dimensions differ");
    if (rc)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "batch dimensions do not broadcast");
    return MD_OK;
}

/* What both MatMuls need: the operands, their per-row / per-column parameters, the shape.
 * The zero points are subtracted on the fly (they may vary per matrix of the batch). */
typedef struct qmm_ops {
    const onnx_tensor *a, *b;
    qparam azp, bzp, asc, bsc; /* scales only used by QLinearMatMul */
    onnx_mm_shape s;
} qmm_ops;

/* Operands at ia / ib, zero points at iaz / ibz. */
static int qmm_setup(onnx_kctx *k, int ia, int ib, int iaz, int ibz, qmm_ops *q)
{
    q->a = k->in[ia];
    q->b = k->in[ib];
    if (!is_q8(q->a->dtype) || !is_q8(q->b->dtype))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "a and b must be uint8 or int8, got %s and %s",
                           onnx_dtype_name(q->a->dtype), onnx_dtype_name(q->b->dtype));
    int rc = qmm_shape(k, q->a, q->b, &q->s);
    if (!rc)
        rc = qp_resolve(k, iaz, "a_zero_point", true, q->a, q->s.m, 1, q->a, &q->azp);
    if (!rc)
        rc = qp_resolve(k, ibz, "b_zero_point", true, q->b, q->s.n, 0, q->b, &q->bzp);
    return rc;
}

/* Sum over k of (a - a_zp)(b - b_zp) for row r, column c of output matrix i. */
static int32_t qmm_dot(const qmm_ops *q, int64_t ao, int64_t bo, int64_t r, int64_t c)
{
    const onnx_mm_shape *s = &q->s;
    int32_t az = qp_zero(&q->azp, ao, r), bz = qp_zero(&q->bzp, bo, c);
    int64_t abase = (ao * s->m + r) * s->k, bbase = bo * s->k * s->n + c, sum = 0;
    for (int64_t kk = 0; kk < s->k; kk++)
        sum += (int64_t)(q8_at(q->a, abase + kk) - az) * (q8_at(q->b, bbase + kk * s->n) - bz);
    return wrap32(sum);
}

static int run_matmul_integer(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    qmm_ops q;
    onnx_tensor *y;
    int rc = qmm_setup(k, 0, 1, 2, 3, &q);
    if (rc || (rc = onnx__output(k, 0, ONNX_INT32, q.s.rank, q.s.dims, &y)))
        return rc;
    int32_t *out = y->data;
    for (int64_t i = 0; i < q.s.nb; i++) {
        int64_t ao, bo;
        onnx__mm_batch(&q.s, i, &ao, &bo);
        for (int64_t r = 0; r < q.s.m; r++)
            for (int64_t c = 0; c < q.s.n; c++)
                out[(i * q.s.m + r) * q.s.n + c] = qmm_dot(&q, ao, bo, r, c);
    }
    return MD_OK;
}

static int run_qlinear_matmul(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    qmm_ops q;
    qparam ysc, yzp;
    onnx_tensor *y;
    const onnx_tensor *yz = k->in[7];
    int rc = qmm_setup(k, 0, 3, 2, 5, &q);
    if (!rc)
        rc = qp_resolve(k, 1, "a_scale", false, q.a, q.s.m, 1, q.a, &q.asc);
    if (!rc)
        rc = qp_resolve(k, 4, "b_scale", false, q.b, q.s.n, 0, q.b, &q.bsc);
    if (!rc)
        rc = qp_tensor(k, 6, "y_scale", false, q.a, &ysc);
    if (!rc && !is_q8(yz->dtype))
        rc = onnx__kfail(k, MD_E_INVALID_PARAM, "y_zero_point must be uint8 or int8");
    if (!rc)
        rc = qp_tensor(k, 7, "y_zero_point", true, yz, &yzp);
    if (rc || (rc = onnx__output(k, 0, yz->dtype, q.s.rank, q.s.dims, &y)))
        return rc;
    float ys = qp_scale(&ysc, 0, 0);
    int32_t zp = qp_zero(&yzp, 0, 0);
    for (int64_t i = 0; i < q.s.nb; i++) {
        int64_t ao, bo;
        onnx__mm_batch(&q.s, i, &ao, &bo);
        for (int64_t r = 0; r < q.s.m; r++)
            for (int64_t c = 0; c < q.s.n; c++) {
                float mult = qp_scale(&q.asc, ao, r) * qp_scale(&q.bsc, bo, c) / ys;
                requant_store(y, (i * q.s.m + r) * q.s.n + c, qmm_dot(&q, ao, bo, r, c), mult, zp);
            }
    }
    return MD_OK;
}

ONNX_OPS(quant_linear) = {
    {.domain = "", .op_type = "ConvInteger", .opset_min = 10, .opset_max = 0, .min_in = 2,
     .max_in = 4, .min_out = 1, .max_out = 1, .attrs = CONV_ATTRS, .prepare = prepare_qconv,
     .run = run_conv_integer},
    {.domain = "", .op_type = "QLinearConv", .opset_min = 10, .opset_max = 0, .min_in = 8,
     .max_in = 9, .min_out = 1, .max_out = 1, .attrs = CONV_ATTRS, .prepare = prepare_qconv,
     .run = run_qlinear_conv},
    {.domain = "", .op_type = "MatMulInteger", .opset_min = 10, .opset_max = 0, .min_in = 2,
     .max_in = 4, .min_out = 1, .max_out = 1, .attrs = NULL, .prepare = NULL,
     .run = run_matmul_integer},
    {.domain = "", .op_type = "QLinearMatMul", .opset_min = 10, .opset_max = 0, .min_in = 8,
     .max_in = 8, .min_out = 1, .max_out = 1, .attrs = NULL, .prepare = NULL,
     .run = run_qlinear_matmul},
    ONNX_OPS_END
};
