/* tensor.c - dtypes, shapes and TensorProto decoding for the ONNX engine.
 *
 * TensorProto bytes come from model files and test-data files, so they are untrusted: every
 * count, dim and length is checked before a byte is copied.
 * Invariants:
 *   1. A decoded tensor has rank <= ONNX_MAX_RANK, dims >= 0, numel * size <= max_bytes, and
 *      exactly numel elements of data (raw_data length or typed-field count checked).
 *   2. External data is read only from a relative path that stays inside ext_dir.
 */
#include "onnx/onnx_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnx_proto/onnx.pb-c.h"

size_t onnx_dtype_size(int dtype)
{
    switch (dtype) {
    case ONNX_FLOAT: case ONNX_INT32: case ONNX_UINT32: return 4;
    case ONNX_UINT8: case ONNX_INT8: case ONNX_BOOL: return 1;
    case ONNX_UINT16: case ONNX_INT16: case ONNX_FLOAT16: case ONNX_BFLOAT16: return 2;
    case ONNX_INT64: case ONNX_DOUBLE: case ONNX_UINT64: return 8;
    case ONNX_STRING: return sizeof(const char *);
    default: return 0;
    }
}

const char *onnx_dtype_name(int dtype)
{
    static const char *const names[] = {"undefined", "float", "uint8", "int8", "uint16",
                                        "int16", "int32", "int64", "string", "bool",
                                        "float16", "double", "uint32", "uint64"};
    if (dtype == ONNX_BFLOAT16)
        return "bfloat16";
    if (dtype < 0 || dtype > ONNX_UINT64)
        return "unsupported";
    return names[dtype];
}

int64_t onnx__numel(int rank, const int64_t *dims)
{
    if (rank < 0 || rank > ONNX_MAX_RANK)
        return -1;
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return -1;
        if (dims[i] != 0 && n > ((int64_t)1 << 62) / dims[i])
            return -1;
        n *= dims[i];
    }
    return n;
}

int64_t onnx_tensor_numel(const onnx_tensor *t) { return onnx__numel(t->rank, t->dims); }

int onnx__norm_axis(int64_t axis, int rank, int extra, int *out)
{
    int64_t r = rank + (extra ? 1 : 0);
    if (axis < -r || axis >= r)
        return -1;
    *out = (int)(axis < 0 ? axis + r : axis);
    return 0;
}

int onnx__broadcast(int ra, const int64_t *da, int rb, const int64_t *db, int *rout,
                    int64_t *dout)
{
    int r = ra > rb ? ra : rb;
    if (r > ONNX_MAX_RANK)
        return -1;
    for (int i = 0; i < r; i++) {
        int64_t a = i < r - ra ? 1 : da[i - (r - ra)];
        int64_t b = i < r - rb ? 1 : db[i - (r - rb)];
        if (a != b && a != 1 && b != 1)
            return -1;
        dout[i] = a == 1 ? b : a;
    }
    *rout = r;
    return 0;
}

/* Batch strides (in matrices) of an operand whose batch dims d[0..r) are right-aligned to the
 * output batch; 0 along broadcast dims. Returns -1 when the dims do not broadcast. */
static int mm_batch_strides(const int64_t *d, int r, const onnx_mm_shape *s, int64_t *str)
{
    int64_t acc = 1;
    for (int i = s->brank - 1; i >= 0; i--) {
        int j = i - (s->brank - r);
        int64_t di = j >= 0 ? d[j] : 1;
        if (di != 1 && di != s->bdims[i])
            return -1;
        str[i] = di == 1 ? 0 : acc;
        acc *= di;
    }
    return 0;
}

int onnx__mm_shape(const onnx_tensor *a, const onnx_tensor *b, onnx_mm_shape *s)
{
    if (a->rank < 1 || b->rank < 1)
        return -3;
    int ar = a->rank == 1 ? 0 : a->rank - 2, br = b->rank == 1 ? 0 : b->rank - 2;
    s->m = a->rank == 1 ? 1 : a->dims[a->rank - 2];
    s->k = a->dims[a->rank - 1];
    s->n = b->rank == 1 ? 1 : b->dims[b->rank - 1];
    if ((b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2]) != s->k)
        return -2;
    if (onnx__broadcast(ar, a->dims, br, b->dims, &s->brank, s->bdims) < 0 ||
        s->brank > ONNX_MAX_RANK - 2 || mm_batch_strides(a->dims, ar, s, s->astr) ||
        mm_batch_strides(b->dims, br, s, s->bstr))
        return -1;
    s->rank = s->brank;
    memcpy(s->dims, s->bdims, sizeof(int64_t) * (size_t)s->brank);
    if (a->rank != 1)
        s->dims[s->rank++] = s->m;
    if (b->rank != 1)
        s->dims[s->rank++] = s->n;
    s->nb = 1;
    for (int i = 0; i < s->brank; i++)
        s->nb *= s->bdims[i];
    return 0;
}

void onnx__mm_batch(const onnx_mm_shape *s, int64_t i, int64_t *ao, int64_t *bo)
{
    *ao = *bo = 0;
    for (int d = s->brank - 1; d >= 0; d--) {
        int64_t c = i % s->bdims[d];
        i /= s->bdims[d];
        *ao += c * s->astr[d];
        *bo += c * s->bstr[d];
    }
}

/* IEEE half precision <-> float, round to nearest even. */
float onnx__half_to_float(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0)
        return (s ? -1.f : 1.f) * ldexpf((float)m, -24);
    uint32_t bits = e == 31 ? (s | 0x7f800000u | (m << 13)) : (s | ((e + 112) << 23) | (m << 13));
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t onnx__float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t s = (x >> 16) & 0x8000, e = (x >> 23) & 0xff, m = x & 0x7fffff;
    if (e == 0xff)
        return (uint16_t)(s | 0x7c00 | (m ? 0x200 : 0));
    int ne = (int)e - 127 + 15;
    if (ne >= 31)
        return (uint16_t)(s | 0x7c00);
    if (ne <= 0) {
        if (ne < -10)
            return (uint16_t)s;
        m |= 0x800000;
        int shift = 14 - ne;
        uint32_t hm = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (hm & 1)))
            hm++;
        return (uint16_t)(s | hm);
    }
    uint32_t hm = m >> 13, rem = m & 0x1fff;
    uint32_t out = s | ((uint32_t)ne << 10) | hm;
    if (rem > 0x1000 || (rem == 0x1000 && (hm & 1)))
        out++; /* may carry into the exponent, which is the right rounding */
    return (uint16_t)out;
}

/* bfloat16 is the top half of a float. Conversion truncates, as ONNX's reference Cast does
 * (its test data is made by dropping the low 16 bits); NaN stays NaN. */
float onnx__bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t onnx__float_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)(x >> 16);
}

double onnx__get_f64(const onnx_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case ONNX_FLOAT: return ((const float *)t->data)[i];
    case ONNX_DOUBLE: return ((const double *)t->data)[i];
    case ONNX_INT64: return (double)((const int64_t *)t->data)[i];
    case ONNX_INT32: return ((const int32_t *)t->data)[i];
    case ONNX_INT16: return ((const int16_t *)t->data)[i];
    case ONNX_INT8: return ((const int8_t *)t->data)[i];
    case ONNX_UINT8: case ONNX_BOOL: return ((const uint8_t *)t->data)[i];
    case ONNX_UINT16: return ((const uint16_t *)t->data)[i];
    case ONNX_UINT32: return ((const uint32_t *)t->data)[i];
    case ONNX_UINT64: return (double)((const uint64_t *)t->data)[i];
    case ONNX_FLOAT16: return onnx__half_to_float(((const uint16_t *)t->data)[i]);
    case ONNX_BFLOAT16: return onnx__bf16_to_float(((const uint16_t *)t->data)[i]);
    default: return 0;
    }
}

int64_t onnx__get_i64(const onnx_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case ONNX_INT64: return ((const int64_t *)t->data)[i];
    case ONNX_INT32: return ((const int32_t *)t->data)[i];
    case ONNX_UINT64: return (int64_t)((const uint64_t *)t->data)[i];
    default: {
        double v = onnx__get_f64(t, i);
        if (isnan(v))
            return 0;
        if (v >= 9.2e18)
            return INT64_MAX;
        if (v <= -9.2e18)
            return INT64_MIN;
        return (int64_t)v;
    }
    }
}

/* Saturating double -> integer: C leaves out-of-range and NaN conversions undefined, and the
 * values here come from untrusted data. */
static double clampd(double v, double lo, double hi)
{
    return isnan(v) ? 0 : v < lo ? lo : v > hi ? hi : v;
}

void onnx__set_f64(onnx_tensor *t, int64_t i, double v)
{
    switch (t->dtype) {
    case ONNX_FLOAT: ((float *)t->data)[i] = (float)v; break;
    case ONNX_DOUBLE: ((double *)t->data)[i] = v; break;
    case ONNX_FLOAT16: ((uint16_t *)t->data)[i] = onnx__float_to_half((float)v); break;
    case ONNX_BFLOAT16: ((uint16_t *)t->data)[i] = onnx__float_to_bf16((float)v); break;
    case ONNX_INT64:
        ((int64_t *)t->data)[i] = isnan(v) ? 0 : v >= 9223372036854775807.0 ? INT64_MAX
                                : v <= -9223372036854775808.0 ? INT64_MIN : (int64_t)v;
        break;
    case ONNX_INT32: ((int32_t *)t->data)[i] = (int32_t)clampd(v, INT32_MIN, INT32_MAX); break;
    case ONNX_INT16: ((int16_t *)t->data)[i] = (int16_t)clampd(v, INT16_MIN, INT16_MAX); break;
    case ONNX_INT8: ((int8_t *)t->data)[i] = (int8_t)clampd(v, INT8_MIN, INT8_MAX); break;
    case ONNX_UINT8: ((uint8_t *)t->data)[i] = (uint8_t)clampd(v, 0, UINT8_MAX); break;
    case ONNX_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    case ONNX_UINT16: ((uint16_t *)t->data)[i] = (uint16_t)clampd(v, 0, UINT16_MAX); break;
    case ONNX_UINT32: ((uint32_t *)t->data)[i] = (uint32_t)clampd(v, 0, UINT32_MAX); break;
    case ONNX_UINT64:
        ((uint64_t *)t->data)[i] = isnan(v) || v <= 0 ? 0 : v >= 18446744073709551615.0
                                 ? UINT64_MAX : (uint64_t)v;
        break;
    default: break;
    }
}

/* ---- TensorProto decoding ---- */

static int tp_fail(md_err *err, const char *name, const char *fmt, const char *detail)
{
    return md_fail(err, MD_E_MODEL_INVALID, "tensor", "tensor '%.80s': %s%s",
                   name ? name : "", fmt, detail ? detail : "");
}

/* Resolve an external-data location: relative, no "..", no absolute path, inside dir. */
static int ext_read(const Onnx__TensorProto *tp, const char *dir, size_t want, void *dst,
                    md_err *err)
{
    const char *loc = NULL;
    int64_t off = 0, len = -1;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e->key || !e->value)
            continue;
        if (strcmp(e->key, "location") == 0)
            loc = e->value;
        else if (strcmp(e->key, "offset") == 0)
            off = strtoll(e->value, NULL, 10);
        else if (strcmp(e->key, "length") == 0)
            len = strtoll(e->value, NULL, 10);
    }
    if (!dir)
        return md_fail(err, MD_E_MODEL_INVALID, "external_data",
                       "tensor '%.80s' uses external data, not allowed for in-memory models",
                       tp->name ? tp->name : "");
    if (!loc || !*loc || loc[0] == '/' || strstr(loc, "..") || off < 0 ||
        (len >= 0 && (uint64_t)len != want))
        return tp_fail(err, tp->name, "bad external_data location, offset or length", NULL);
    char path[PATH_MAX], real[PATH_MAX], realdir[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, loc) >= (int)sizeof path ||
        !realpath(dir, realdir) || !realpath(path, real))
        return tp_fail(err, tp->name, "external data file not found", NULL);
    size_t dl = strlen(realdir);
    if (strncmp(real, realdir, dl) != 0 || real[dl] != '/')
        return tp_fail(err, tp->name, "external data path escapes the model directory", NULL);
    FILE *f = fopen(real, "rb");
    if (!f)
        return tp_fail(err, tp->name, "external data file cannot be opened", NULL);
    int rc = MD_OK;
    if (fseeko(f, (off_t)off, SEEK_SET) != 0 || fread(dst, 1, want, f) != want)
        rc = tp_fail(err, tp->name, "external data file is shorter than the tensor", NULL);
    fclose(f);
    return rc;
}

/* Typed-field copy: count must equal numel. */
static int typed_copy(const Onnx__TensorProto *tp, onnx_tensor *t, int64_t n, md_arena *a,
                      md_err *err)
{
    size_t have;
    switch (t->dtype) {
    case ONNX_FLOAT: have = tp->n_float_data; break;
    case ONNX_DOUBLE: have = tp->n_double_data; break;
    case ONNX_INT64: have = tp->n_int64_data; break;
    case ONNX_UINT32: case ONNX_UINT64: have = tp->n_uint64_data; break;
    case ONNX_STRING: have = tp->n_string_data; break;
    default: have = tp->n_int32_data; break;
    }
    if (have != (size_t)n)
        return tp_fail(err, tp->name, "element count does not match dims", NULL);
    for (int64_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case ONNX_FLOAT: ((float *)t->data)[i] = tp->float_data[i]; break;
        case ONNX_DOUBLE: ((double *)t->data)[i] = tp->double_data[i]; break;
        case ONNX_INT64: ((int64_t *)t->data)[i] = tp->int64_data[i]; break;
        case ONNX_UINT32: ((uint32_t *)t->data)[i] = (uint32_t)tp->uint64_data[i]; break;
        case ONNX_UINT64: ((uint64_t *)t->data)[i] = tp->uint64_data[i]; break;
        case ONNX_STRING: {
            char *s = tp->string_data[i].len
                          ? md_arena_strndup(a, (const char *)tp->string_data[i].data,
                                             tp->string_data[i].len)
                          : md_arena_strdup(a, ""); /* empty bytes may have no data pointer */
            if (!s)
                return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
            ((const char **)t->data)[i] = s;
            break;
        }
        case ONNX_FLOAT16: case ONNX_UINT16: case ONNX_BFLOAT16:
            ((uint16_t *)t->data)[i] = (uint16_t)tp->int32_data[i]; break;
        case ONNX_INT16: ((int16_t *)t->data)[i] = (int16_t)tp->int32_data[i]; break;
        case ONNX_INT32: ((int32_t *)t->data)[i] = tp->int32_data[i]; break;
        case ONNX_INT8: ((int8_t *)t->data)[i] = (int8_t)tp->int32_data[i]; break;
        case ONNX_BOOL: ((uint8_t *)t->data)[i] = tp->int32_data[i] != 0; break;
        default: ((uint8_t *)t->data)[i] = (uint8_t)tp->int32_data[i]; break;
        }
    }
    return MD_OK;
}

static int tp_shape(const Onnx__TensorProto *tp, size_t max_bytes, onnx_tensor *out,
                    int64_t *numel, md_err *err)
{
    memset(out, 0, sizeof *out);
    out->dtype = tp->has_data_type ? tp->data_type : ONNX_UNDEFINED;
    size_t es = onnx_dtype_size(out->dtype);
    if (es == 0)
        return md_fail(err, MD_E_UNSUPPORTED, "data_type",
                       "tensor '%.80s': data type %d is not supported", tp->name ? tp->name : "",
                       out->dtype);
    if (tp->n_dims > ONNX_MAX_RANK)
        return tp_fail(err, tp->name, "rank above 8", NULL);
    out->rank = (int)tp->n_dims;
    for (size_t i = 0; i < tp->n_dims; i++)
        out->dims[i] = tp->dims[i];
    int64_t n = onnx__numel(out->rank, out->dims);
    if (n < 0)
        return tp_fail(err, tp->name, "negative or overflowing dims", NULL);
    if ((uint64_t)n > max_bytes / es)
        return md_fail(err, MD_E_TOO_LARGE, "tensor", "tensor '%.80s' is larger than the limit",
                       tp->name ? tp->name : "");
    *numel = n;
    return MD_OK;
}

int onnx__tensor_from_proto(const Onnx__TensorProto *tp, md_arena *a, const char *ext_dir,
                            size_t max_bytes, onnx_tensor *out, md_err *err)
{
    int64_t n = 0;
    int rc = tp_shape(tp, max_bytes, out, &n, err);
    if (rc)
        return rc;
    size_t bytes = (size_t)n * onnx_dtype_size(out->dtype);
    out->data = md_arena_alloc(a, bytes ? bytes : 1);
    if (!out->data)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory for tensor data");
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        if (out->dtype == ONNX_STRING)
            return tp_fail(err, tp->name, "external string data is not supported", NULL);
        return ext_read(tp, ext_dir, bytes, out->data, err);
    }
    if (tp->has_raw_data) {
        if (out->dtype == ONNX_STRING)
            return tp_fail(err, tp->name, "raw_data cannot hold strings", NULL);
        if (tp->raw_data.len != bytes)
            return tp_fail(err, tp->name, "raw_data length does not match dims", NULL);
        if (bytes)
            memcpy(out->data, tp->raw_data.data, bytes);
        return MD_OK;
    }
    return typed_copy(tp, out, n, a, err);
}

/* ---- heap tensors for callers (CLI, tests): the tensor and its arena in one block ---- */

typedef struct heap_tensor {
    onnx_tensor t; /* first: onnx_tensor_free casts back */
    md_arena *a;
} heap_tensor;

static heap_tensor *heap_new(void)
{
    heap_tensor *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->a = md_arena_new(0);
    if (!h->a) {
        free(h);
        return NULL;
    }
    return h;
}

void onnx_tensor_free(onnx_tensor *t)
{
    if (!t)
        return;
    heap_tensor *h = (heap_tensor *)t;
    md_arena_free(h->a);
    free(h);
}

int onnx_tensor_parse(const void *data, size_t len, onnx_tensor **out, md_err *err)
{
    *out = NULL;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, data);
    if (!tp)
        return md_fail(err, MD_E_MODEL_INVALID, "tensor", "not a valid TensorProto");
    heap_tensor *h = heap_new();
    int rc = h ? MD_OK : md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    if (rc == MD_OK)
        rc = onnx__tensor_from_proto(tp, h->a, NULL, (size_t)1 << 31, &h->t, err);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    if (rc) {
        onnx_tensor_free(h ? &h->t : NULL);
        return rc;
    }
    *out = &h->t;
    return MD_OK;
}

int onnx_tensor_new(int dtype, int rank, const int64_t *dims, onnx_tensor **out, md_err *err)
{
    *out = NULL;
    size_t es = onnx_dtype_size(dtype);
    int64_t n = onnx__numel(rank, dims);
    if (es == 0 || dtype == ONNX_STRING)
        return md_fail(err, MD_E_UNSUPPORTED, "dtype", "dtype %d is not supported here", dtype);
    if (n < 0 || (uint64_t)n > ((size_t)1 << 34) / es)
        return md_fail(err, MD_E_INVALID_PARAM, "shape", "invalid or too large shape");
    heap_tensor *h = heap_new();
    if (!h)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    h->t.data = md_arena_calloc(h->a, (size_t)n ? (size_t)n : 1, es);
    if (!h->t.data) {
        onnx_tensor_free(&h->t);
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    }
    h->t.dtype = dtype;
    h->t.rank = rank;
    for (int i = 0; i < rank; i++)
        h->t.dims[i] = dims[i];
    *out = &h->t;
    return MD_OK;
}
