/* index.c - operators driven by index tensors or positions: Trilu, CumSum, OneHot, TopK,
 * NonZero, Compress, GatherND, ScatterElements (and the older Scatter), ScatterND,
 * ReverseSequence.
 *
 * Every index read from a tensor is range-checked (negative indices are normalised where the
 * spec allows them) before it addresses memory.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx_int.h"

static size_t esz(const onnx_tensor *t) { return onnx_dtype_size(t->dtype); }

static void copy_elem(void *dst, int64_t di, const void *src, int64_t si, size_t es)
{
    memcpy((char *)dst + (size_t)di * es, (const char *)src + (size_t)si * es, es);
}

static int copy_all(onnx_kctx *k, int idx, const onnx_tensor *x, onnx_tensor **o)
{
    int rc = onnx__output(k, idx, x->dtype, x->rank, x->dims, o);
    if (rc == MD_OK && onnx_tensor_numel(x))
        memcpy((*o)->data, x->data, (size_t)onnx_tensor_numel(x) * esz(x));
    return rc;
}

/* ---- Trilu ---- */

static int run_trilu(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    if (x->rank < 2)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "input must be at least 2-D");
    int64_t kk = 0;
    if (k->n_in > 1 && k->in[1]) {
        if (onnx_tensor_numel(k->in[1]) != 1)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "k must be a scalar");
        kk = onnx__get_i64(k->in[1], 0);
    }
    bool upper = onnx__attr_int(n, "upper", 1) != 0;
    onnx_tensor *o;
    int rc = copy_all(k, 0, x, &o);
    if (rc)
        return rc;
    int64_t R = x->dims[x->rank - 2], C = x->dims[x->rank - 1];
    int64_t mats = R > 0 && C > 0 ? onnx_tensor_numel(x) / (R * C) : 0;
    size_t es = esz(x);
    for (int64_t m = 0; m < mats; m++)
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) {
                bool keep = upper ? j - i >= kk : j - i <= kk;
                if (!keep)
                    memset((char *)o->data + (size_t)((m * R + i) * C + j) * es, 0, es);
            }
    return MD_OK;
}

/* ---- CumSum ---- */

static int run_cumsum(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0], *ax = k->in[1];
    int axis;
    if (onnx_tensor_numel(ax) != 1 || onnx__norm_axis(onnx__get_i64(ax, 0), x->rank, 0, &axis))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "axis must be a scalar within the rank");
    if (x->dtype == ONNX_STRING || x->dtype == ONNX_BOOL)
        return onnx__kfail(k, MD_E_UNSUPPORTED, "type %s", onnx_dtype_name(x->dtype));
    bool excl = onnx__attr_int(n, "exclusive", 0) != 0, rev = onnx__attr_int(n, "reverse", 0) != 0;
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, x->rank, x->dims, &o);
    if (rc)
        return rc;
    int64_t outer = 1, len = x->dims[axis], inner = 1;
    for (int i = 0; i < x->rank; i++)
        if (i != axis)
            *(i < axis ? &outer : &inner) *= x->dims[i];
    for (int64_t a = 0; a < outer; a++)
        for (int64_t c = 0; c < inner; c++) {
            double s = 0;
            int64_t si = 0;
            for (int64_t t = 0; t < len; t++) {
                int64_t i = rev ? len - 1 - t : t, e = (a * len + i) * inner + c;
                double v = onnx__get_f64(x, e);
                int64_t vi = onnx__get_i64(x, e);
                if (x->dtype == ONNX_INT64)
                    ((int64_t *)o->data)[e] = excl ? si : si + vi;
                else
                    onnx__set_f64(o, e, excl ? s : s + v);
                s += v;
                si += vi;
            }
        }
    return MD_OK;
}

/* ---- OneHot ---- */

static int run_onehot(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *ind = k->in[0], *depth = k->in[1], *vals = k->in[2];
    if (onnx_tensor_numel(depth) != 1 || onnx_tensor_numel(vals) != 2)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "depth must be a scalar, values two elements");
    double dd = onnx__get_f64(depth, 0);
    if (!(dd >= 1) || dd > 1e7)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "depth out of range");
    int64_t D = (int64_t)dd;
    int r = ind->rank + 1, axis;
    if (r > ONNX_MAX_RANK || onnx__norm_axis(onnx__attr_int(n, "axis", -1), r, 0, &axis))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "axis out of range");
    int64_t od[ONNX_MAX_RANK], outer = 1, inner = 1;
    for (int i = 0, j = 0; i < r; i++) {
        od[i] = i == axis ? D : ind->dims[j++];
        if (i != axis)
            *(i < axis ? &outer : &inner) *= od[i];
    }
    onnx_tensor *o;
    int rc = onnx__output(k, 0, vals->dtype, r, od, &o);
    if (rc)
        return rc;
    size_t es = esz(vals);
    for (int64_t a = 0; a < outer; a++)
        for (int64_t c = 0; c < inner; c++) {
            double iv = onnx__get_f64(ind, a * inner + c);
            /* Out-of-range (or NaN) indices give an all-off row, never an undefined cast. */
            int64_t hot = iv >= -(double)D && iv < (double)D ? (int64_t)(iv < 0 ? iv + (double)D : iv) : -1;
            for (int64_t d = 0; d < D; d++)
                copy_elem(o->data, (a * D + d) * inner + c, vals->data, d == hot, es);
        }
    return MD_OK;
}

/* ---- TopK ---- */

typedef struct kv {
    double v;
    int64_t i;
} kv;

static int cmp_largest(const void *a, const void *b)
{
    const kv *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return x->i < y->i ? -1 : 1;
}

static int cmp_smallest(const void *a, const void *b)
{
    const kv *x = a, *y = b;
    if (x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return x->i < y->i ? -1 : 1;
}

static int run_topk(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    int64_t K = n->opset < 10 ? onnx__attr_int(n, "k", 0)
              : onnx_tensor_numel(k->in[1]) == 1 ? onnx__get_i64(k->in[1], 0) : -1;
    int axis;
    if (onnx__norm_axis(onnx__attr_int(n, "axis", -1), x->rank, 0, &axis) != 0 || K < 0 ||
        K > x->dims[axis])
        return onnx__kfail(k, MD_E_INVALID_PARAM, "k or axis out of range");
    bool largest = onnx__attr_int(n, "largest", 1) != 0;
    int64_t od[ONNX_MAX_RANK], outer = 1, len = x->dims[axis], inner = 1;
    memcpy(od, x->dims, sizeof od);
    od[axis] = K;
    for (int i = 0; i < x->rank; i++)
        if (i != axis)
            *(i < axis ? &outer : &inner) *= x->dims[i];
    onnx_tensor *vo, *io;
    int rc = onnx__output(k, 0, x->dtype, x->rank, od, &vo);
    if (!rc)
        rc = onnx__output(k, 1, ONNX_INT64, x->rank, od, &io);
    if (rc)
        return rc;
    kv *buf = onnx__scratch(k, (size_t)(len ? len : 1) * sizeof(kv));
    if (!buf)
        return MD_E_NOMEM;
    for (int64_t a = 0; a < outer; a++)
        for (int64_t c = 0; c < inner; c++) {
            for (int64_t i = 0; i < len; i++)
                buf[i] = (kv){onnx__get_f64(x, (a * len + i) * inner + c), i};
            qsort(buf, (size_t)len, sizeof(kv), largest ? cmp_largest : cmp_smallest);
            for (int64_t j = 0; j < K; j++) {
                int64_t e = (a * K + j) * inner + c;
                copy_elem(vo->data, e, x->data, (a * len + buf[j].i) * inner + c, esz(x));
                ((int64_t *)io->data)[e] = buf[j].i;
            }
        }
    return MD_OK;
}

/* ---- NonZero, Compress ---- */

static bool nonzero_at(const onnx_tensor *x, int64_t i)
{
    if (x->dtype == ONNX_STRING)
        return ((const char *const *)x->data)[i][0] != '\0';
    return onnx__get_f64(x, i) != 0;
}

static int run_nonzero(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    const onnx_tensor *x = k->in[0];
    int64_t total = onnx_tensor_numel(x), cnt = 0;
    for (int64_t i = 0; i < total; i++)
        cnt += nonzero_at(x, i);
    int64_t od[2] = {x->rank, cnt};
    onnx_tensor *o;
    int rc = onnx__output(k, 0, ONNX_INT64, 2, od, &o);
    if (rc)
        return rc;
    int64_t *out = o->data, idx[ONNX_MAX_RANK] = {0}, j = 0;
    for (int64_t e = 0; e < total; e++) {
        if (nonzero_at(x, e)) {
            for (int d = 0; d < x->rank; d++)
                out[d * cnt + j] = idx[d];
            j++;
        }
        for (int d = x->rank - 1; d >= 0; d--) {
            if (++idx[d] < x->dims[d])
                break;
            idx[d] = 0;
        }
    }
    return MD_OK;
}

static int run_compress(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0], *cond = k->in[1];
    const onnx_attr *ax = onnx__attr(n, "axis");
    onnx_tensor flat = *x;
    int axis = 0;
    if (!ax) { /* flattened */
        flat.rank = 1;
        flat.dims[0] = onnx_tensor_numel(x);
    } else if (onnx__norm_axis(ax->i, x->rank, 0, &axis) != 0) {
        return onnx__kfail(k, MD_E_INVALID_PARAM, "axis out of range");
    }
    int64_t len = flat.dims[axis], nc = onnx_tensor_numel(cond), keep = 0;
    if (cond->rank != 1 || cond->dtype != ONNX_BOOL || nc > len)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "condition must be 1-D bool, at most dim long");
    const uint8_t *cb = cond->data;
    for (int64_t i = 0; i < nc; i++)
        keep += cb[i] != 0;
    int64_t od[ONNX_MAX_RANK], outer = 1, inner = 1;
    memcpy(od, flat.dims, sizeof od);
    od[axis] = keep;
    for (int i = 0; i < flat.rank; i++)
        if (i != axis)
            *(i < axis ? &outer : &inner) *= flat.dims[i];
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, flat.rank, od, &o);
    if (rc)
        return rc;
    size_t row = (size_t)inner * esz(x);
    for (int64_t a = 0, j = 0; a < outer; a++)
        for (int64_t i = 0; i < nc; i++)
            if (cb[i] && row)
                memcpy((char *)o->data + (size_t)(j++) * row,
                       (const char *)x->data + (size_t)(a * len + i) * row, row);
    return MD_OK;
}

/* ---- GatherND, ScatterND ---- */

/* Offset (in elements of x) of the slice addressed by index tuple t of length m. */
static int nd_offset(onnx_kctx *k, const onnx_tensor *x, int b, const int64_t *stride,
                     const onnx_tensor *ind, int64_t t, int m, int64_t batch_off, int64_t *off)
{
    *off = batch_off;
    for (int j = 0; j < m; j++) {
        int64_t v = onnx__get_i64(ind, t * m + j), dim = x->dims[b + j];
        if (v < -dim || v >= dim)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "index %lld out of range", (long long)v);
        *off += (v < 0 ? v + dim : v) * stride[b + j];
    }
    return MD_OK;
}

static int run_gathernd(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0], *ind = k->in[1];
    int b = (int)onnx__attr_int(n, "batch_dims", 0);
    if (ind->rank < 1 || b < 0 || b >= ind->rank || b >= x->rank)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "bad batch_dims or index rank");
    int m = (int)ind->dims[ind->rank - 1];
    if (m < 1 || b + m > x->rank)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "index tuples longer than the data rank");
    int64_t od[ONNX_MAX_RANK], stride[ONNX_MAX_RANK], s = 1, slice = 1, batch = 1;
    int r = 0;
    for (int i = 0; i < ind->rank - 1; i++)
        od[r++] = ind->dims[i];
    for (int i = b + m; i < x->rank; i++) {
        if (r >= ONNX_MAX_RANK)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "result rank too large");
        od[r++] = x->dims[i];
        slice *= x->dims[i];
    }
    for (int i = x->rank - 1; i >= 0; i--) {
        stride[i] = s;
        s *= x->dims[i];
    }
    for (int i = 0; i < b; i++) {
        if (ind->dims[i] != x->dims[i])
            return onnx__kfail(k, MD_E_INVALID_PARAM, "batch dims differ");
        batch *= x->dims[i];
    }
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, r, od, &o);
    if (rc)
        return rc;
    int64_t tuples = onnx_tensor_numel(ind) / m, per_batch = batch ? tuples / batch : 0;
    size_t es = esz(x);
    for (int64_t t = 0; t < tuples; t++) {
        /* Batch element t / per_batch starts at that multiple of x's stride for dim b-1. */
        int64_t off, bo = b && per_batch ? (t / per_batch) * stride[b - 1] : 0;
        if ((rc = nd_offset(k, x, b, stride, ind, t, m, bo, &off)))
            return rc;
        memcpy((char *)o->data + (size_t)(t * slice) * es, (const char *)x->data + (size_t)off * es,
               (size_t)slice * es);
    }
    return MD_OK;
}

static int run_scatternd(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0], *ind = k->in[1], *upd = k->in[2];
    const char *red = onnx__attr_str(n, "reduction", "none");
    int m = ind->rank ? (int)ind->dims[ind->rank - 1] : 0;
    if (ind->rank < 1 || m < 1 || m > x->rank || upd->dtype != x->dtype)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "bad indices or update type");
    int64_t stride[ONNX_MAX_RANK], s = 1, slice = 1;
    for (int i = x->rank - 1; i >= 0; i--) {
        stride[i] = s;
        s *= x->dims[i];
    }
    for (int i = m; i < x->rank; i++)
        slice *= x->dims[i];
    int64_t tuples = onnx_tensor_numel(ind) / m;
    if (onnx_tensor_numel(upd) != tuples * slice)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "updates have the wrong size");
    onnx_tensor *o;
    int rc = copy_all(k, 0, x, &o);
    if (rc)
        return rc;
    for (int64_t t = 0; t < tuples; t++) {
        int64_t off;
        if ((rc = nd_offset(k, x, 0, stride, ind, t, m, 0, &off)))
            return rc;
        for (int64_t j = 0; j < slice; j++) {
            double u = onnx__get_f64(upd, t * slice + j), cur = onnx__get_f64(o, off + j);
            if (strcmp(red, "add") == 0)
                onnx__set_f64(o, off + j, cur + u);
            else if (strcmp(red, "mul") == 0)
                onnx__set_f64(o, off + j, cur * u);
            else if (strcmp(red, "max") == 0)
                onnx__set_f64(o, off + j, fmax(cur, u));
            else if (strcmp(red, "min") == 0)
                onnx__set_f64(o, off + j, fmin(cur, u));
            else
                copy_elem(o->data, off + j, upd->data, t * slice + j, esz(x));
        }
    }
    return MD_OK;
}

/* ---- ScatterElements ---- */

static int run_scatter_elements(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0], *ind = k->in[1], *upd = k->in[2];
    const char *red = onnx__attr_str(n, "reduction", "none");
    int axis;
    if (onnx__norm_axis(onnx__attr_int(n, "axis", 0), x->rank, 0, &axis) != 0 ||
        ind->rank != x->rank || upd->rank != x->rank || upd->dtype != x->dtype ||
        memcmp(ind->dims, upd->dims, sizeof(int64_t) * (size_t)x->rank) != 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "indices and updates must match, same rank");
    onnx_tensor *o;
    int rc = copy_all(k, 0, x, &o);
    if (rc)
        return rc;
    int64_t stride[ONNX_MAX_RANK], s = 1, idx[ONNX_MAX_RANK] = {0}, total = onnx_tensor_numel(ind);
    for (int i = x->rank - 1; i >= 0; i--) {
        stride[i] = s;
        s *= x->dims[i];
    }
    for (int64_t e = 0; e < total; e++) {
        int64_t off = 0;
        for (int d = 0; d < x->rank; d++) {
            int64_t c = idx[d];
            if (d == axis) {
                c = onnx__get_i64(ind, e);
                if (c < 0)
                    c += x->dims[d];
            }
            if (c < 0 || c >= x->dims[d])
                return onnx__kfail(k, MD_E_INVALID_PARAM, "index out of range");
            off += c * stride[d];
        }
        double u = onnx__get_f64(upd, e), cur = onnx__get_f64(o, off);
        if (strcmp(red, "add") == 0)
            onnx__set_f64(o, off, cur + u);
        else if (strcmp(red, "mul") == 0)
            onnx__set_f64(o, off, cur * u);
        else
            copy_elem(o->data, off, upd->data, e, esz(x));
        for (int d = x->rank - 1; d >= 0; d--) {
            if (++idx[d] < ind->dims[d])
                break;
            idx[d] = 0;
        }
    }
    return MD_OK;
}

/* ---- ReverseSequence ---- */

static int run_revseq(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0], *lens = k->in[1];
    int ta = (int)onnx__attr_int(n, "time_axis", 0), ba = (int)onnx__attr_int(n, "batch_axis", 1);
    if (x->rank < 2 || ta < 0 || ta > 1 || ba < 0 || ba > 1 || ta == ba ||
        onnx_tensor_numel(lens) != x->dims[ba])
        return onnx__kfail(k, MD_E_INVALID_PARAM, "bad axes or sequence_lens");
    onnx_tensor *o;
    int rc = copy_all(k, 0, x, &o);
    if (rc)
        return rc;
    int64_t T = x->dims[ta], B = x->dims[ba], inner = 1;
    for (int i = 2; i < x->rank; i++)
        inner *= x->dims[i];
    for (int64_t b = 0; b < B; b++) {
        int64_t L = onnx__get_i64(lens, b);
        if (L < 0 || L > T)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "sequence length out of range");
        for (int64_t t = 0; t < L; t++) {
            int64_t src = ta == 0 ? (t * B + b) : (b * T + t);
            int64_t dst = ta == 0 ? ((L - 1 - t) * B + b) : (b * T + (L - 1 - t));
            memcpy((char *)o->data + (size_t)(dst * inner) * esz(x),
                   (const char *)x->data + (size_t)(src * inner) * esz(x), (size_t)inner * esz(x));
        }
    }
    return MD_OK;
}

#define OPX(NAME, LO, HI, I0, I1, O0, O1, ATTRS, FN)                                         \
    {.domain = "", .op_type = NAME, .opset_min = LO, .opset_max = HI, .min_in = I0,          \
     .max_in = I1, .min_out = O0, .max_out = O1, .attrs = ATTRS, .run = FN}

ONNX_OPS(index) = {
    OPX("Trilu", 14, 0, 1, 2, 1, 1, "upper:i", run_trilu),
    OPX("CumSum", 11, 0, 2, 2, 1, 1, "exclusive:i reverse:i", run_cumsum),
    OPX("OneHot", 9, 0, 3, 3, 1, 1, "axis:i", run_onehot),
    OPX("TopK", 1, 9, 1, 1, 2, 2, "axis:i k:i", run_topk),
    OPX("TopK", 10, 0, 2, 2, 2, 2, "axis:i largest:i sorted:i", run_topk),
    OPX("NonZero", 9, 0, 1, 1, 1, 1, NULL, run_nonzero),
    OPX("Compress", 9, 0, 2, 2, 1, 1, "axis:i", run_compress),
    OPX("GatherND", 11, 0, 2, 2, 1, 1, "batch_dims:i", run_gathernd),
    OPX("ScatterND", 11, 0, 3, 3, 1, 1, "reduction:s", run_scatternd),
    OPX("ScatterElements", 11, 0, 3, 3, 1, 1, "axis:i reduction:s", run_scatter_elements),
    OPX("Scatter", 9, 10, 3, 3, 1, 1, "axis:i", run_scatter_elements),
    OPX("ReverseSequence", 10, 0, 2, 2, 1, 1, "time_axis:i batch_axis:i", run_revseq),
    ONNX_OPS_END,
};
