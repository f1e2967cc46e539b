/* maxunpool.c - ONNX MaxUnpool: the partial inverse of MaxPool. The output is zero except at the
 * positions MaxPool picked, which get the pooled values back: Y.flat[I.flat[j]] = X.flat[j].
 *
 * The indices are flat offsets into the whole tensor of the INFERRED shape [N, C, (in - 1) *
 * stride + kernel - pad_begin - pad_end ...] (as MaxPool's Indices output). The optional
 * output_shape input (the whole shape, N and C included) may only enlarge that: as in the ONNX
 * reference implementation and its conformance data, the inferred block sits at the origin of
 * the output and the rest is zero. Each index is checked against the inferred size, so a
 * hostile index fails the node and never writes out of bounds. Values are copied byte for byte,
 * so every fixed-size dtype works.
 */
#include <string.h>

#include "onnx/kernels/fuse.h"
#include "onnx/onnx_int.h"

/* Largest kernel, stride or pad accepted (fuse.h; keeps the size formula inside int64_t). */
#define MAX_DIM ONNX_GEOM_MAX

static int prepare_maxunpool(onnx_node *n, onnx_prep *p, md_err *err)
{
    (void)p;
    const int64_t *v;
    if (onnx__attr_ints(n, "kernel_shape", &v) == 0)
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "kernel_shape", "is required");
    static const char *const names[] = {"kernel_shape", "strides", "pads"};
    int rc = MD_OK;
    for (int a = 0; a < 3 && !rc; a++)
        rc = onnx__attr_ints_bounded(n, names[a], a == 2 ? 0 : 1, err);
    return rc;
}

/* The default output shape from X's shape and the attributes. */
static int default_shape(onnx_kctx *k, const onnx_tensor *x, int64_t *dims)
{
    int nsp = x->rank - 2;
    const int64_t *ks, *st, *pads;
    size_t nk = onnx__attr_ints(k->node, "kernel_shape", &ks);
    size_t ns = onnx__attr_ints(k->node, "strides", &st);
    size_t np = onnx__attr_ints(k->node, "pads", &pads);
    if (nk != (size_t)nsp || (ns && ns != (size_t)nsp) || (np && np != 2 * (size_t)nsp))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "kernel_shape, strides and pads must have "
                           "%d, %d and %d values for X of rank %d", nsp, nsp, 2 * nsp, x->rank);
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int d = 0; d < nsp; d++) {
        int64_t in = x->dims[2 + d];
        if (in > MAX_DIM)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "X dim %d too large", 2 + d);
        int64_t out = (in > 0 ? in - 1 : 0) * (ns ? st[d] : 1) + ks[d] -
                      (np ? pads[d] + pads[nsp + d] : 0);
        if (out < 0)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "pads exceed the output size on spatial "
                               "dim %d", d);
        dims[2 + d] = in == 0 ? 0 : out;
    }
    return MD_OK;
}

/* The output_shape input: int64 [rank of X], N and C equal to X's, every dim at least the
 * inferred one (inf). */
static int given_shape(onnx_kctx *k, const onnx_tensor *x, const onnx_tensor *s,
                       const int64_t *inf, int64_t *dims)
{
    if (s->dtype != ONNX_INT64 || s->rank != 1 || s->dims[0] != x->rank)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "output_shape must be int64 [%d]", x->rank);
    const int64_t *v = s->data;
    if (v[0] != x->dims[0] || v[1] != x->dims[1])
        return onnx__kfail(k, MD_E_INVALID_PARAM, "output_shape's N and C (%lld, %lld) differ "
                           "from X's (%lld, %lld)", (long long)v[0], (long long)v[1],
                           (long long)x->dims[0], (long long)x->dims[1]);
    for (int d = 2; d < x->rank; d++)
        if (v[d] < inf[d])
            return onnx__kfail(k, MD_E_INVALID_PARAM, "output_shape[%d] = %lld is smaller than "
                               "the unpooled size %lld", d, (long long)v[d], (long long)inf[d]);
    memcpy(dims, v, sizeof(int64_t) * (size_t)x->rank);
    return MD_OK;
}

/* Flat offset in the output (dims) of flat offset i in the inferred shape (inf). */
static int64_t place(int rank, const int64_t *inf, const int64_t *dims, int64_t i)
{
    int64_t off = 0, mul = 1;
    for (int d = rank - 1; d >= 0; d--) {
        off += (i % inf[d]) * mul;
        i /= inf[d];
        mul *= dims[d];
    }
    return off;
}

static int run_maxunpool(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    const onnx_tensor *x = k->in[0], *idx = k->in[1];
    const onnx_tensor *shape = k->n_in > 2 ? k->in[2] : NULL;
    size_t esz = onnx_dtype_size(x->dtype);
    if (esz == 0 || x->dtype == ONNX_STRING)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X has unsupported dtype %s",
                           onnx_dtype_name(x->dtype));
    if (x->rank < 3)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X must have rank >= 3, got %d", x->rank);
    if (idx->dtype != ONNX_INT64 || idx->rank != x->rank ||
        memcmp(idx->dims, x->dims, sizeof(int64_t) * (size_t)x->rank) != 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "I must be int64 with the shape of X");
    int64_t inf[ONNX_MAX_RANK], dims[ONNX_MAX_RANK];
    int rc = default_shape(k, x, inf);
    if (!rc && shape)
        rc = given_shape(k, x, shape, inf, dims);
    else if (!rc)
        memcpy(dims, inf, sizeof(int64_t) * (size_t)x->rank);
    onnx_tensor *y;
    if (rc || (rc = onnx__output(k, 0, x->dtype, x->rank, dims, &y)))
        return rc;
    /* the output holds the inferred block, so its size bounds the inferred element count */
    int64_t ny = onnx_tensor_numel(y), ninf = onnx__numel(x->rank, inf),
            nx = onnx_tensor_numel(x);
    const int64_t *iv = idx->data;
    for (int64_t j = 0; j < nx; j++)
        if (iv[j] < 0 || iv[j] >= ninf)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "I[%lld] = %lld is outside the unpooled "
                               "tensor (%lld elements)", (long long)j, (long long)iv[j],
                               (long long)ninf);
    memset(y->data, 0, (size_t)ny * esz);
    for (int64_t j = 0; j < nx; j++)
        memcpy((char *)y->data + (size_t)place(x->rank, inf, dims, iv[j]) * esz,
               (const char *)x->data + (size_t)j * esz, esz);
    return MD_OK;
}

ONNX_OPS(maxunpool) = {
    {.domain = "", .op_type = "MaxUnpool", .opset_min = 9, .opset_max = 0, .min_in = 2,
     .max_in = 3, .min_out = 1, .max_out = 1, .attrs = "kernel_shape:I pads:I strides:I",
     .prepare = prepare_maxunpool, .run = run_maxunpool},
    ONNX_OPS_END
};
