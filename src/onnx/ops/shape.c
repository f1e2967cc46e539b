/* shape.c - operators that move data without arithmetic: Reshape, Flatten, Squeeze,
 * Unsqueeze, Transpose, DepthToSpace, SpaceToDepth, Split, Slice, Gather,
 * GatherElements, Expand, Tile, Shape, Size, Constant, ConstantOfShape, Range, EyeLike.
 *
 * They work on any element type by element size. Shapes and indices often come from input
 * tensors (Reshape's shape, Slice's starts), i.e. from data: every one is range-checked and a
 * bad one fails the node with a message, never reads out of bounds.
 */
#include <math.h>
#include <string.h>

#include "onnx/onnx_int.h"

/* Copy element size es from src[si] to dst[di]. */
static inline void put(void *dst, int64_t di, const void *src, int64_t si, size_t es)
{
    switch (es) {
    case 1: ((uint8_t *)dst)[di] = ((const uint8_t *)src)[si]; break;
    case 2: ((uint16_t *)dst)[di] = ((const uint16_t *)src)[si]; break;
    case 4: ((uint32_t *)dst)[di] = ((const uint32_t *)src)[si]; break;
    default: ((uint64_t *)dst)[di] = ((const uint64_t *)src)[si]; break;
    }
}

static size_t esize(const onnx_tensor *t) { return onnx_dtype_size(t->dtype); }

/* An output with x's dtype and data, new shape (same element count, checked by caller). */
static int reshaped_copy(onnx_kctx *k, const onnx_tensor *x, int rank, const int64_t *dims)
{
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, rank, dims, &o);
    if (rc)
        return rc;
    size_t bytes = (size_t)onnx_tensor_numel(x) * esize(x);
    if (bytes)
        memcpy(o->data, x->data, bytes);
    return MD_OK;
}

/* Read an int64 list from a 0-D/1-D tensor input (shape, axes, repeats...). */
static int read_ints(onnx_kctx *k, const onnx_tensor *t, int64_t *out, int max, int *n)
{
    int64_t cnt = onnx_tensor_numel(t);
    if (t->rank > 1 || cnt > max || (t->dtype != ONNX_INT64 && t->dtype != ONNX_INT32))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "expected a 1-D int64 list of at most %d", max);
    for (int64_t i = 0; i < cnt; i++)
        out[i] = onnx__get_i64(t, i);
    *n = (int)cnt;
    return MD_OK;
}

/* ---- Reshape ---- */

static int run_reshape(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    int64_t shape[ONNX_MAX_RANK];
    int r = 0;
    if (n->opset < 5) {
        const int64_t *v;
        size_t cnt = onnx__attr_ints(n, "shape", &v);
        if (cnt > ONNX_MAX_RANK)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "shape has too many dims");
        memcpy(shape, v, cnt * sizeof *v);
        r = (int)cnt;
    } else {
        int rc = read_ints(k, k->in[1], shape, ONNX_MAX_RANK, &r);
        if (rc)
            return rc;
    }
    int allowzero = (int)onnx__attr_int(n, "allowzero", 0);
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < r; i++) {
        if (shape[i] == 0 && !allowzero) {
            if (i >= x->rank)
                return onnx__kfail(k, MD_E_INVALID_PARAM, "shape[%d]=0 has no input dim", i);
            shape[i] = x->dims[i];
        }
        if (shape[i] == -1) {
            if (infer >= 0)
                return onnx__kfail(k, MD_E_INVALID_PARAM, "more than one -1 in shape");
            infer = i;
            continue;
        }
        if (shape[i] < 0 || (shape[i] && known > ((int64_t)1 << 62) / shape[i]))
            return onnx__kfail(k, MD_E_INVALID_PARAM, "invalid shape value %lld",
                               (long long)shape[i]);
        known *= shape[i];
    }
    int64_t total = onnx_tensor_numel(x);
    if (infer >= 0) {
        if (known == 0 || total % known)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "cannot infer the -1 dimension");
        shape[infer] = total / known;
    } else if (known != total) {
        return onnx__kfail(k, MD_E_INVALID_PARAM, "shape has %lld elements, input %lld",
                           (long long)known, (long long)total);
    }
    return reshaped_copy(k, x, r, shape);
}

/* ---- Flatten, Squeeze, Unsqueeze ---- */

static int run_flatten(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    int64_t axis = onnx__attr_int(n, "axis", 1);
    if (axis < 0)
        axis += x->rank;
    if (axis < 0 || axis > x->rank)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "axis out of range");
    int64_t d[2] = {1, 1};
    for (int i = 0; i < x->rank; i++)
        d[i >= axis] *= x->dims[i];
    return reshaped_copy(k, x, 2, d);
}

/* Axes from the attribute (opset < 13) or the optional second input. *n = -1 when absent. */
static int get_axes(const onnx_node *n, onnx_kctx *k, int in_idx, int64_t *axes, int *cnt)
{
    *cnt = -1;
    if (n->opset < 13) {
        const int64_t *v;
        size_t c = onnx__attr_ints(n, "axes", &v);
        if (!v)
            return MD_OK;
        if (c > ONNX_MAX_RANK)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "too many axes");
        memcpy(axes, v, c * sizeof *v);
        *cnt = (int)c;
        return MD_OK;
    }
    if (k->n_in <= in_idx || !k->in[in_idx])
        return MD_OK;
    return read_ints(k, k->in[in_idx], axes, ONNX_MAX_RANK, cnt);
}

static int run_squeeze(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    int64_t axes[ONNX_MAX_RANK];
    int na;
    int rc = get_axes(n, k, 1, axes, &na);
    if (rc)
        return rc;
    bool drop[ONNX_MAX_RANK] = {0};
    for (int i = 0; i < na; i++) {
        int a;
        if (onnx__norm_axis(axes[i], x->rank, 0, &a) != 0 || x->dims[a] != 1)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "axis %lld cannot be squeezed",
                               (long long)axes[i]);
        drop[a] = true;
    }
    int64_t d[ONNX_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++)
        if (!(na < 0 ? x->dims[i] == 1 : drop[i]))
            d[r++] = x->dims[i];
    return reshaped_copy(k, x, r, d);
}

static int run_unsqueeze(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    int64_t axes[ONNX_MAX_RANK];
    int na;
    int rc = get_axes(n, k, 1, axes, &na);
    if (rc)
        return rc;
    if (na < 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "axes are required");
    int r = x->rank + na;
    if (r > ONNX_MAX_RANK)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "result rank above %d", ONNX_MAX_RANK);
    bool ins[ONNX_MAX_RANK] = {0};
    for (int i = 0; i < na; i++) {
        int a;
        if (onnx__norm_axis(axes[i], r, 0, &a) != 0 || ins[a])
            return onnx__kfail(k, MD_E_INVALID_PARAM, "bad or repeated axis %lld",
                               (long long)axes[i]);
        ins[a] = true;
    }
    int64_t d[ONNX_MAX_RANK];
    for (int i = 0, j = 0; i < r; i++)
        d[i] = ins[i] ? 1 : x->dims[j++];
    return reshaped_copy(k, x, r, d);
}

/* ---- Transpose and friends ---- */

/* o = x permuted: o.dims[i] = x.dims[perm[i]]. */
static void permute(const onnx_tensor *x, const int *perm, void *out)
{
    int r = x->rank;
    int64_t xs[ONNX_MAX_RANK], od[ONNX_MAX_RANK], st[ONNX_MAX_RANK], idx[ONNX_MAX_RANK] = {0};
    int64_t s = 1;
    for (int i = r - 1; i >= 0; i--) {
        xs[i] = s;
        s *= x->dims[i];
    }
    for (int i = 0; i < r; i++) {
        od[i] = x->dims[perm[i]];
        st[i] = xs[perm[i]];
    }
    int64_t total = onnx_tensor_numel(x), off = 0;
    size_t es = esize(x);
    if (r == 0) {
        if (total)
            put(out, 0, x->data, 0, es);
        return;
    }
    int64_t inner = od[r - 1], ist = st[r - 1];
    for (int64_t o = 0; o < total; o += inner) {
        for (int64_t j = 0; j < inner; j++)
            put(out, o + j, x->data, off + j * ist, es);
        for (int d = r - 2; d >= 0; d--) {
            off += st[d];
            if (++idx[d] < od[d])
                break;
            off -= st[d] * od[d];
            idx[d] = 0;
        }
    }
}

static int run_transpose(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    int perm[ONNX_MAX_RANK];
    const int64_t *p;
    size_t cnt = onnx__attr_ints(n, "perm", &p);
    bool seen[ONNX_MAX_RANK] = {0};
    if (p && (int)cnt != x->rank)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "perm has %zu entries for rank %d", cnt, x->rank);
    for (int i = 0; i < x->rank; i++) {
        perm[i] = p ? (int)p[i] : x->rank - 1 - i;
        if (perm[i] < 0 || perm[i] >= x->rank || seen[perm[i]])
            return onnx__kfail(k, MD_E_INVALID_PARAM, "perm is not a permutation");
        seen[perm[i]] = true;
    }
    int64_t d[ONNX_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        d[i] = x->dims[perm[i]];
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, x->rank, d, &o);
    if (rc)
        return rc;
    permute(x, perm, o->data);
    return MD_OK;
}

/* DepthToSpace / SpaceToDepth as reshape -> permute -> reshape on a 6-D view. */
/* DepthToSpace on float, the last layer of super-resolution nets: write each output row once,
 * reading the b*b source planes that interleave into it (much faster than the generic 6-D
 * permutation, whose innermost run is only b elements long). */
static void d2s_float(const float *x, float *y, int64_t N, int64_t c, int64_t H, int64_t W,
                      int64_t b, bool crd)
{
    int64_t C = c * b * b, plane = H * W;
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = 0; i < b; i++) {
                    float *row = y + ((n * c + ch) * H * b + h * b + i) * W * b;
                    for (int64_t j = 0; j < b; j++) {
                        int64_t src = crd ? ch * b * b + i * b + j : (i * b + j) * c + ch;
                        const float *in = x + (n * C + src) * plane + h * W;
                        for (int64_t w = 0; w < W; w++)
                            row[w * b + j] = in[w];
                    }
                }
}

static int run_d2s(const onnx_node *n, onnx_kctx *k, bool to_space)
{
    const onnx_tensor *x = k->in[0];
    int64_t b = onnx__attr_int(n, "blocksize", 0);
    if (x->rank != 4 || b <= 0 || b > 4096)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "needs a 4-D input and blocksize > 0");
    int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    onnx_tensor v = *x;
    int perm[6];
    int64_t od[4];
    v.rank = 6;
    if (to_space) {
        if (C % (b * b))
            return onnx__kfail(k, MD_E_INVALID_PARAM, "channels not divisible by blocksize^2");
        bool crd = strcmp(onnx__attr_str(n, "mode", "DCR"), "CRD") == 0;
        int64_t c = C / (b * b);
        int64_t dcr[6] = {N, b, b, c, H, W}, crdv[6] = {N, c, b, b, H, W};
        int pd[6] = {0, 3, 4, 1, 5, 2}, pc[6] = {0, 1, 4, 2, 5, 3};
        memcpy(v.dims, crd ? crdv : dcr, sizeof dcr);
        memcpy(perm, crd ? pc : pd, sizeof perm);
        od[0] = N, od[1] = c, od[2] = H * b, od[3] = W * b;
    } else {
        if (H % b || W % b)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "H and W must divide by blocksize");
        int64_t dv[6] = {N, C, H / b, b, W / b, b};
        int p6[6] = {0, 3, 5, 1, 2, 4};
        memcpy(v.dims, dv, sizeof dv);
        memcpy(perm, p6, sizeof perm);
        od[0] = N, od[1] = C * b * b, od[2] = H / b, od[3] = W / b;
    }
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, 4, od, &o);
    if (rc)
        return rc;
    if (to_space && x->dtype == ONNX_FLOAT)
        d2s_float(x->data, o->data, N, od[1], H, W, b,
                  strcmp(onnx__attr_str(n, "mode", "DCR"), "CRD") == 0);
    else
        permute(&v, perm, o->data);
    return MD_OK;
}

static int run_depth2space(const onnx_node *n, onnx_kctx *k) { return run_d2s(n, k, true); }
static int run_space2depth(const onnx_node *n, onnx_kctx *k) { return run_d2s(n, k, false); }

/* ---- Split (Concat is in concat.c) ---- */

static int run_split(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    int axis;
    if (onnx__norm_axis(onnx__attr_int(n, "axis", 0), x->rank, 0, &axis) != 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "axis out of range");
    int64_t sizes[ONNX_VARIADIC];
    int ns = -1;
    if (k->n_in > 1 && k->in[1]) {
        int rc = read_ints(k, k->in[1], sizes, ONNX_VARIADIC, &ns);
        if (rc)
            return rc;
    } else {
        const int64_t *v;
        size_t c = onnx__attr_ints(n, "split", &v);
        if (v) {
            ns = (int)(c < ONNX_VARIADIC ? c : ONNX_VARIADIC);
            memcpy(sizes, v, (size_t)ns * sizeof *v);
        }
    }
    int64_t total = x->dims[axis], sum = 0;
    if (ns < 0) {
        if (total % k->n_out)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "dim %lld does not split into %d",
                               (long long)total, k->n_out);
        ns = k->n_out;
        for (int i = 0; i < ns; i++)
            sizes[i] = total / k->n_out;
    }
    if (ns != k->n_out)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "split has %d sizes for %d outputs", ns, k->n_out);
    for (int i = 0; i < ns; i++) {
        if (sizes[i] < 0)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "negative split size");
        sum += sizes[i];
    }
    if (sum != total)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "split sizes sum to %lld, dim is %lld",
                           (long long)sum, (long long)total);
    int64_t outer = 1, inner = (int64_t)esize(x);
    for (int j = 0; j < axis; j++)
        outer *= x->dims[j];
    for (int j = axis + 1; j < x->rank; j++)
        inner *= x->dims[j];
    int64_t start = 0;
    for (int i = 0; i < ns; i++) {
        int64_t d[ONNX_MAX_RANK];
        memcpy(d, x->dims, sizeof d);
        d[axis] = sizes[i];
        onnx_tensor *o;
        int rc = onnx__output(k, i, x->dtype, x->rank, d, &o);
        if (rc)
            return rc;
        size_t chunk = (size_t)(sizes[i] * inner);
        for (int64_t r = 0; r < outer && chunk; r++)
            memcpy((unsigned char *)o->data + (size_t)r * chunk,
                   (const unsigned char *)x->data + (size_t)(r * total + start) * (size_t)inner,
                   chunk);
        start += sizes[i];
    }
    return MD_OK;
}

/* ---- Slice ---- */

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Slice params per axis into start/step/count; then a strided gather. */
static int run_slice(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    int64_t st[ONNX_MAX_RANK], en[ONNX_MAX_RANK], ax[ONNX_MAX_RANK], sp[ONNX_MAX_RANK];
    int ns, ne, na = -1, np = -1;
    if (n->opset < 10) {
        const int64_t *v;
        ns = (int)onnx__attr_ints(n, "starts", &v);
        if (ns > ONNX_MAX_RANK)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "too many starts");
        memcpy(st, v, (size_t)ns * 8);
        ne = (int)onnx__attr_ints(n, "ends", &v);
        if (ne > ONNX_MAX_RANK)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "too many ends");
        memcpy(en, v, (size_t)ne * 8);
        size_t c = onnx__attr_ints(n, "axes", &v);
        if (v && c <= ONNX_MAX_RANK) {
            na = (int)c;
            memcpy(ax, v, c * 8);
        }
    } else {
        int rc = read_ints(k, k->in[1], st, ONNX_MAX_RANK, &ns);
        if (!rc)
            rc = read_ints(k, k->in[2], en, ONNX_MAX_RANK, &ne);
        if (!rc && k->n_in > 3 && k->in[3])
            rc = read_ints(k, k->in[3], ax, ONNX_MAX_RANK, &na);
        if (!rc && k->n_in > 4 && k->in[4])
            rc = read_ints(k, k->in[4], sp, ONNX_MAX_RANK, &np);
        if (rc)
            return rc;
    }
    if (ne != ns || (na >= 0 && na != ns) || (np >= 0 && np != ns))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "starts/ends/axes/steps lengths differ");
    int64_t start[ONNX_MAX_RANK], step[ONNX_MAX_RANK], d[ONNX_MAX_RANK];
    bool seen[ONNX_MAX_RANK] = {0};
    for (int i = 0; i < x->rank; i++) {
        start[i] = 0;
        step[i] = 1;
        d[i] = x->dims[i];
    }
    for (int i = 0; i < ns; i++) {
        int a;
        if (onnx__norm_axis(na >= 0 ? ax[i] : i, x->rank, 0, &a) != 0 || seen[a])
            return onnx__kfail(k, MD_E_INVALID_PARAM, "bad or repeated axis");
        seen[a] = true;
        int64_t dim = x->dims[a], s = np >= 0 ? sp[i] : 1, b = st[i], e = en[i];
        if (s == 0)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "step 0");
        if (b < 0)
            b += dim;
        if (e < 0 && e > INT64_MIN + dim)
            e += dim;
        if (s > 0) {
            b = clamp64(b, 0, dim);
            e = clamp64(e, 0, dim);
            d[a] = e > b ? (e - b + s - 1) / s : 0;
        } else {
            b = clamp64(b, 0, dim - 1);
            e = clamp64(e, -1, dim - 1);
            d[a] = b > e ? (b - e + (-s) - 1) / (-s) : 0;
        }
        start[a] = b;
        step[a] = s;
    }
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, x->rank, d, &o);
    if (rc)
        return rc;
    int64_t total = onnx_tensor_numel(o);
    if (total == 0)
        return MD_OK;
    int64_t xs[ONNX_MAX_RANK], s = 1, idx[ONNX_MAX_RANK] = {0}, base = 0;
    for (int i = x->rank - 1; i >= 0; i--) {
        xs[i] = s;
        s *= x->dims[i];
    }
    for (int i = 0; i < x->rank; i++)
        base += start[i] * xs[i];
    size_t es = esize(x);
    if (x->rank == 0) {
        put(o->data, 0, x->data, 0, es);
        return MD_OK;
    }
    int r = x->rank;
    int64_t off = base, inner = d[r - 1], istep = step[r - 1] * xs[r - 1];
    for (int64_t oi = 0; oi < total; oi += inner) {
        for (int64_t j = 0; j < inner; j++)
            put(o->data, oi + j, x->data, off + j * istep, es);
        for (int dd = r - 2; dd >= 0; dd--) {
            off += step[dd] * xs[dd];
            if (++idx[dd] < d[dd])
                break;
            off -= step[dd] * xs[dd] * d[dd];
            idx[dd] = 0;
        }
    }
    return MD_OK;
}

/* ---- Gather, GatherElements ---- */

static int run_gather(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0], *ind = k->in[1];
    int axis;
    if (x->rank < 1 || onnx__norm_axis(onnx__attr_int(n, "axis", 0), x->rank, 0, &axis) != 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "axis out of range");
    if (ind->dtype != ONNX_INT64 && ind->dtype != ONNX_INT32)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "indices must be int32 or int64");
    int r = x->rank - 1 + ind->rank;
    if (r > ONNX_MAX_RANK)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "result rank above %d", ONNX_MAX_RANK);
    int64_t d[ONNX_MAX_RANK];
    int j = 0;
    for (int i = 0; i < axis; i++)
        d[j++] = x->dims[i];
    for (int i = 0; i < ind->rank; i++)
        d[j++] = ind->dims[i];
    for (int i = axis + 1; i < x->rank; i++)
        d[j++] = x->dims[i];
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, r, d, &o);
    if (rc)
        return rc;
    int64_t outer = 1, inner = 1, dim = x->dims[axis], ni = onnx_tensor_numel(ind);
    for (int i = 0; i < axis; i++)
        outer *= x->dims[i];
    for (int i = axis + 1; i < x->rank; i++)
        inner *= x->dims[i];
    size_t es = esize(x), row = (size_t)inner * es;
    for (int64_t i = 0; i < ni; i++) {
        int64_t v = onnx__get_i64(ind, i);
        if (v < -dim || v >= dim)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "index %lld out of range [-%lld, %lld)",
                               (long long)v, (long long)dim, (long long)dim);
    }
    for (int64_t a = 0; a < outer; a++)
        for (int64_t i = 0; i < ni; i++) {
            int64_t v = onnx__get_i64(ind, i);
            if (v < 0)
                v += dim;
            if (row)
                memcpy((unsigned char *)o->data + (size_t)(a * ni + i) * row,
                       (const unsigned char *)x->data + (size_t)(a * dim + v) * row, row);
        }
    return MD_OK;
}

static int run_gather_elements(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0], *ind = k->in[1];
    int axis;
    if (onnx__norm_axis(onnx__attr_int(n, "axis", 0), x->rank, 0, &axis) != 0 ||
        ind->rank != x->rank || (ind->dtype != ONNX_INT64 && ind->dtype != ONNX_INT32))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "bad axis, rank or index type");
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, ind->rank, ind->dims, &o);
    if (rc)
        return rc;
    int64_t xs[ONNX_MAX_RANK], s = 1, total = onnx_tensor_numel(ind);
    for (int i = x->rank - 1; i >= 0; i--) {
        xs[i] = s;
        s *= x->dims[i];
    }
    int64_t idx[ONNX_MAX_RANK] = {0};
    for (int64_t e = 0; e < total; e++) {
        int64_t off = 0;
        for (int i = 0; i < x->rank; i++) {
            int64_t c = idx[i];
            if (i == axis) {
                c = onnx__get_i64(ind, e);
                if (c < 0)
                    c += x->dims[i];
            }
            if (c < 0 || c >= x->dims[i])
                return onnx__kfail(k, MD_E_INVALID_PARAM, "index out of range");
            off += c * xs[i];
        }
        put(o->data, e, x->data, off, esize(x));
        for (int i = x->rank - 1; i >= 0; i--) {
            if (++idx[i] < ind->dims[i])
                break;
            idx[i] = 0;
        }
    }
    return MD_OK;
}

/* ---- Expand, Tile ---- */

/* o = x broadcast (numpy rules) to o's shape. */
static void broadcast_into(const onnx_tensor *x, onnx_tensor *o)
{
    int r = o->rank;
    int64_t st[ONNX_MAX_RANK], s = 1, idx[ONNX_MAX_RANK] = {0};
    for (int i = r - 1; i >= 0; i--) {
        int xi = i - (r - x->rank);
        int64_t xd = xi >= 0 ? x->dims[xi] : 1;
        st[i] = xd == 1 ? 0 : s;
        s *= xd;
    }
    int64_t total = onnx_tensor_numel(o), off = 0;
    size_t es = esize(x);
    for (int64_t e = 0; e < total; e++) {
        put(o->data, e, x->data, off, es);
        for (int i = r - 1; i >= 0; i--) {
            off += st[i];
            if (++idx[i] < o->dims[i])
                break;
            off -= st[i] * o->dims[i];
            idx[i] = 0;
        }
    }
}

static int run_expand(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    const onnx_tensor *x = k->in[0];
    int64_t shape[ONNX_MAX_RANK], d[ONNX_MAX_RANK];
    int ns, r;
    int rc = read_ints(k, k->in[1], shape, ONNX_MAX_RANK, &ns);
    if (rc)
        return rc;
    for (int i = 0; i < ns; i++)
        if (shape[i] < 0)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "negative dim in shape");
    if (onnx__broadcast(x->rank, x->dims, ns, shape, &r, d) != 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "shape is not broadcast-compatible");
    onnx_tensor *o;
    if ((rc = onnx__output(k, 0, x->dtype, r, d, &o)))
        return rc;
    broadcast_into(x, o);
    return MD_OK;
}

static int run_tile(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    const onnx_tensor *x = k->in[0];
    int64_t rep[ONNX_MAX_RANK], d[ONNX_MAX_RANK];
    int nr;
    int rc = read_ints(k, k->in[1], rep, ONNX_MAX_RANK, &nr);
    if (rc)
        return rc;
    if (nr != x->rank)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "repeats must have one entry per dim");
    for (int i = 0; i < x->rank; i++) {
        if (rep[i] < 0 || (x->dims[i] && rep[i] > ((int64_t)1 << 40) / x->dims[i]))
            return onnx__kfail(k, MD_E_INVALID_PARAM, "bad repeat count");
        d[i] = x->dims[i] * rep[i];
    }
    onnx_tensor *o;
    if ((rc = onnx__output(k, 0, x->dtype, x->rank, d, &o)))
        return rc;
    int64_t total = onnx_tensor_numel(o), xs[ONNX_MAX_RANK], s = 1;
    for (int i = x->rank - 1; i >= 0; i--) {
        xs[i] = s;
        s *= x->dims[i];
    }
    int64_t idx[ONNX_MAX_RANK] = {0};
    for (int64_t e = 0; e < total; e++) {
        int64_t off = 0;
        for (int i = 0; i < x->rank; i++)
            off += (idx[i] % x->dims[i]) * xs[i];
        put(o->data, e, x->data, off, esize(x));
        for (int i = x->rank - 1; i >= 0; i--) {
            if (++idx[i] < d[i])
                break;
            idx[i] = 0;
        }
    }
    return MD_OK;
}

/* ---- Shape, Size ---- */

static int run_shape(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    int64_t r = x->rank, b = onnx__attr_int(n, "start", 0), e = onnx__attr_int(n, "end", r);
    if (b < 0)
        b += r;
    if (e < 0)
        e += r;
    b = clamp64(b, 0, r);
    e = clamp64(e, 0, r);
    int64_t cnt = e > b ? e - b : 0;
    onnx_tensor *o;
    int rc = onnx__output(k, 0, ONNX_INT64, 1, &cnt, &o);
    if (rc)
        return rc;
    for (int64_t i = 0; i < cnt; i++)
        ((int64_t *)o->data)[i] = x->dims[b + i];
    return MD_OK;
}

static int run_size(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    onnx_tensor *o;
    int rc = onnx__output(k, 0, ONNX_INT64, 0, NULL, &o);
    if (rc == MD_OK)
        *(int64_t *)o->data = onnx_tensor_numel(k->in[0]);
    return rc;
}

/* ---- Constant, ConstantOfShape, Range, EyeLike ---- */

/* The value becomes a model constant at load (load.c folds Constant nodes); run is a copy
 * kept for completeness when a graph output is produced by a Constant. */
static int prep_constant(onnx_node *n, onnx_prep *p, md_err *err)
{
    if (n->n_attrs != 1)
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "value",
                               "Constant needs exactly one value attribute");
    const onnx_attr *a = &n->attrs[0];
    onnx_tensor *t = onnx__prep_alloc(p, sizeof *t);
    if (!t)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    if (a->type == ONNX_ATTR_TENSOR) {
        *t = *a->t;
    } else if (a->type == ONNX_ATTR_FLOAT || a->type == ONNX_ATTR_INT) {
        t->dtype = a->type == ONNX_ATTR_FLOAT ? ONNX_FLOAT : ONNX_INT64;
        t->data = onnx__prep_alloc(p, 8);
        if (!t->data)
            return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
        if (a->type == ONNX_ATTR_FLOAT)
            *(float *)t->data = a->f;
        else
            *(int64_t *)t->data = a->i;
    } else if (a->type == ONNX_ATTR_FLOATS || a->type == ONNX_ATTR_INTS) {
        bool f = a->type == ONNX_ATTR_FLOATS;
        t->dtype = f ? ONNX_FLOAT : ONNX_INT64;
        t->rank = 1;
        t->dims[0] = (int64_t)(f ? a->n_floats : a->n_ints);
        t->data = (void *)(f ? (const void *)a->floats : (const void *)a->ints);
    } else if (a->type == ONNX_ATTR_STRING || a->type == ONNX_ATTR_STRINGS) {
        bool one = a->type == ONNX_ATTR_STRING;
        t->dtype = ONNX_STRING;
        t->rank = one ? 0 : 1;
        t->dims[0] = one ? 1 : (int64_t)a->n_strings;
        t->data = one ? onnx__prep_alloc(p, sizeof(char *)) : (void *)a->strings;
        if (!t->data)
            return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
        if (one)
            *(const char **)t->data = a->s;
    } else {
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, a->name, "value kind not supported");
    }
    n->priv = t;
    return MD_OK;
}

static int run_constant(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *t = n->priv;
    onnx_tensor *o;
    int rc = onnx__output(k, 0, t->dtype, t->rank, t->dims, &o);
    if (rc == MD_OK && onnx_tensor_numel(t))
        memcpy(o->data, t->data, (size_t)onnx_tensor_numel(t) * esize(t));
    return rc;
}

static int prep_cos(onnx_node *n, onnx_prep *p, md_err *err)
{
    (void)p;
    const onnx_attr *a = onnx__attr(n, "value");
    if (a && (onnx__numel(a->t->rank, a->t->dims) != 1 || a->t->dtype == ONNX_STRING))
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "value",
                               "value must be a one-element numeric tensor");
    return MD_OK;
}

static int run_constant_of_shape(const onnx_node *n, onnx_kctx *k)
{
    int64_t d[ONNX_MAX_RANK];
    int r;
    int rc = read_ints(k, k->in[0], d, ONNX_MAX_RANK, &r);
    if (rc)
        return rc;
    const onnx_attr *a = onnx__attr(n, "value");
    int dt = a ? a->t->dtype : ONNX_FLOAT;
    onnx_tensor *o;
    if ((rc = onnx__output(k, 0, dt, r, d, &o)))
        return rc;
    int64_t total = onnx_tensor_numel(o);
    size_t es = onnx_dtype_size(dt);
    for (int64_t i = 0; i < total; i++) {
        if (a)
            put(o->data, i, a->t->data, 0, es);
        else
            ((float *)o->data)[i] = 0;
    }
    return MD_OK;
}

static int run_range(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    const onnx_tensor *s = k->in[0], *l = k->in[1], *dl = k->in[2];
    if (onnx_tensor_numel(s) != 1 || onnx_tensor_numel(l) != 1 || onnx_tensor_numel(dl) != 1 ||
        s->dtype != l->dtype || s->dtype != dl->dtype)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "start, limit, delta must be scalars of one type");
    double a = onnx__get_f64(s, 0), b = onnx__get_f64(l, 0), d = onnx__get_f64(dl, 0);
    if (d == 0 || isnan(a) || isnan(b) || isnan(d))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "delta must be non-zero");
    double c = ceil((b - a) / d);
    int64_t cnt = c > 0 ? (int64_t)fmin(c, 1e12) : 0;
    onnx_tensor *o;
    int rc = onnx__output(k, 0, s->dtype, 1, &cnt, &o);
    if (rc)
        return rc;
    if (s->dtype == ONNX_INT64) {
        int64_t ai = onnx__get_i64(s, 0), di = onnx__get_i64(dl, 0);
        for (int64_t i = 0; i < cnt; i++)
            ((int64_t *)o->data)[i] = ai + i * di;
        return MD_OK;
    }
    if (s->dtype == ONNX_FLOAT) { /* accumulate in float like the reference does */
        float v = (float)a, df = (float)d;
        for (int64_t i = 0; i < cnt; i++, v += df)
            ((float *)o->data)[i] = v;
        return MD_OK;
    }
    for (int64_t i = 0; i < cnt; i++)
        onnx__set_f64(o, i, a + (double)i * d);
    return MD_OK;
}

static int run_eyelike(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    if (x->rank != 2)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "input must be 2-D");
    int dt = (int)onnx__attr_int(n, "dtype", x->dtype);
    if (!onnx_dtype_size(dt) || dt == ONNX_STRING)
        return onnx__kfail(k, MD_E_UNSUPPORTED, "dtype %d", dt);
    onnx_tensor *o;
    int rc = onnx__output(k, 0, dt, 2, x->dims, &o);
    if (rc)
        return rc;
    int64_t kk = onnx__attr_int(n, "k", 0);
    memset(o->data, 0, (size_t)onnx_tensor_numel(o) * onnx_dtype_size(dt));
    for (int64_t i = 0; i < x->dims[0]; i++) {
        int64_t j = i + kk;
        if (j >= 0 && j < x->dims[1])
            onnx__set_f64(o, i * x->dims[1] + j, 1);
    }
    return MD_OK;
}

#define OP(NAME, LO, HI, IN0, IN1, OUT0, OUT1, ATTRS, FN)                                  \
    {.domain = "", .op_type = NAME, .opset_min = LO, .opset_max = HI, .min_in = IN0,       \
     .max_in = IN1, .min_out = OUT0, .max_out = OUT1, .attrs = ATTRS, .run = FN}

ONNX_OPS(shape) = {
    OP("Reshape", 1, 4, 1, 1, 1, 1, "shape:I consumed_inputs:I", run_reshape),
    OP("Reshape", 5, 0, 2, 2, 1, 1, "allowzero:i", run_reshape),
    OP("Flatten", 1, 0, 1, 1, 1, 1, "axis:i", run_flatten),
    OP("Squeeze", 1, 12, 1, 1, 1, 1, "axes:I", run_squeeze),
    OP("Squeeze", 13, 0, 1, 2, 1, 1, NULL, run_squeeze),
    OP("Unsqueeze", 1, 12, 1, 1, 1, 1, "axes:I", run_unsqueeze),
    OP("Unsqueeze", 13, 0, 2, 2, 1, 1, NULL, run_unsqueeze),
    OP("Transpose", 1, 0, 1, 1, 1, 1, "perm:I", run_transpose),
    OP("DepthToSpace", 1, 0, 1, 1, 1, 1, "blocksize:i mode:s", run_depth2space),
    OP("SpaceToDepth", 1, 0, 1, 1, 1, 1, "blocksize:i", run_space2depth),
    OP("Split", 2, 12, 1, 1, 1, ONNX_VARIADIC, "axis:i split:I", run_split),
    OP("Split", 13, 0, 1, 2, 1, ONNX_VARIADIC, "axis:i", run_split),
    OP("Slice", 1, 9, 1, 1, 1, 1, "starts:I ends:I axes:I", run_slice),
    OP("Slice", 10, 0, 3, 5, 1, 1, NULL, run_slice),
    OP("Gather", 1, 0, 2, 2, 1, 1, "axis:i", run_gather),
    OP("GatherElements", 11, 0, 2, 2, 1, 1, "axis:i", run_gather_elements),
    OP("Expand", 8, 0, 2, 2, 1, 1, NULL, run_expand),
    OP("Tile", 6, 0, 2, 2, 1, 1, NULL, run_tile),
    OP("Shape", 1, 0, 1, 1, 1, 1, "start:i end:i", run_shape),
    OP("Size", 1, 0, 1, 1, 1, 1, NULL, run_size),
    {.domain = "", .op_type = "Constant", .opset_min = 1, .min_in = 0, .max_in = 0,
     .min_out = 1, .max_out = 1,
     .attrs = "value:t value_float:f value_floats:F value_int:i value_ints:I value_string:s "
              "value_strings:S",
     .prepare = prep_constant, .run = run_constant},
    {.domain = "", .op_type = "ConstantOfShape", .opset_min = 9, .min_in = 1, .max_in = 1,
     .min_out = 1, .max_out = 1, .attrs = "value:t", .prepare = prep_cos,
     .run = run_constant_of_shape},
    OP("Range", 11, 0, 3, 3, 1, 1, NULL, run_range),
    OP("EyeLike", 9, 0, 1, 1, 1, 1, "dtype:i k:i", run_eyelike),
    ONNX_OPS_END,
};
