/* oip_codec.c - decode OIP infer requests (JSON tensors and the binary tensor data extension)
 * into mdl_tensors checked against a manifest, and encode results the same two ways; see
 * oip_codec.h. Pure functions: no I/O, no globals, so the fuzz target calls them directly.
 *
 * Invariants:
 *   1. Nothing is allocated from a count the client claims before that count is checked
 *      against bytes actually present: JSON data is counted before its buffer is made, binary
 *      sizes are checked against the remaining tail, so a hostile shape cannot make us reserve
 *      memory the body does not pay for.
 *   2. Every error names the input or output by name and the JSON field by path
 *      ("inputs[1].shape"), so a client can fix its request from the message alone.
 *   3. Decoded tensors (names, data, BYTES strings) live in the caller's arena only; the parsed
 *      JSON is freed before returning, whatever the outcome.
 *   4. Nested data arrays are walked to at most MDL_MAX_RANK levels (no unbounded recursion).
 *   5. Multi-byte binary values are little-endian, as the extension specifies; modeld runs on
 *      little-endian hosts only, so they are copied as they are.
 *   6. The fast path (oip_lift.c: numeric data arrays parsed from the text, jansson given the
 *      rest) gives exactly the answers of jansson alone, errors included: lifted data goes through
 *      the same count, nesting and element checks in the same order (decode_lifted mirrors
 *      walk_data), and a text jansson refuses is parsed again whole for jansson's own message.
 *      oip__decode_infer(..., false) keeps the jansson-only path for the tests and the fuzzer.
 */
#include "api/oip_codec.h"
#include "api/oip_lift.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- half precision (IEEE 754 binary16) and bfloat16 ---- */

static uint16_t float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, mant = x & 0x7fffffu;
    int exp = (int)((x >> 23) & 0xffu) - 127 + 15;
    if (((x >> 23) & 0xffu) == 0xffu) /* inf / nan */
        return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0));
    if (exp >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (exp <= 0) { /* subnormal or zero: shift the implicit bit in, round to nearest */
        if (exp < -10)
            return (uint16_t)sign;
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t h = mant >> shift;
        if ((mant >> (shift - 1)) & 1u)
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (mant >> 13);
    if (mant & 0x1000u) /* round half up on the dropped bits; carries into the exponent are right */
        h++;
    return (uint16_t)h;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t x;
    if (exp == 0 && mant == 0) {
        x = sign;
    } else if (exp == 0) { /* subnormal: normalise */
        int e = -1;
        do {
            e++;
            mant <<= 1;
        } while (!(mant & 0x400u));
        x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    } else if (exp == 31) {
        x = sign | 0x7f800000u | (mant << 13);
    } else {
        x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static float bf16_to_float(uint16_t b)
{
    uint32_t x = (uint32_t)b << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static uint16_t float_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    return (uint16_t)(x >> 16);
}

/* Bytes per element as the wire carries them; BYTES (ONNX_STRING) has none. */
static size_t wire_size(int dt)
{
    return dt == ONNX_STRING ? 0 : onnx_dtype_size(dt);
}

/* Bytes per element in an mdl_tensor (BYTES: one const char *). */
static size_t mem_size(int dt)
{
    return dt == ONNX_STRING ? sizeof(const char *) : onnx_dtype_size(dt);
}

static size_t numel(const mdl_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= (size_t)t->dims[i];
    return n;
}

/* "[2,-1,4]" into buf. */
static const char *dims_text(const int64_t *dims, int rank, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? "," : "", (long long)dims[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
    return buf;
}

/* ---- decoding ---- */

typedef struct bin_cur {
    const unsigned char *p; /* NULL when the request has no binary part */
    size_t left;
} bin_cur;

/* What one input is being decoded into, for the element writers and their messages. */
typedef struct in_ctx {
    const char *name; /* the input's name, for messages */
    char field[48];   /* "inputs[3]" */
    mdl_tensor *t;
    size_t n;         /* elements */
    size_t filled;
    md_arena *a;
    md_err *err;
    const oip_lifted *lift; /* this input's data, taken out of the JSON text; NULL = in the json_t */
} in_ctx;

int oip_header_len(const char *v, size_t body_len, size_t *out, md_err *err)
{
    *out = 0;
    if (!v)
        return MD_OK;
    unsigned long long n = 0;
    const char *p = v;
    for (; *p >= '0' && *p <= '9' && n <= body_len; p++)
        n = n * 10 + (unsigned)(*p - '0');
    if (p == v || *p || n == 0 || n > body_len)
        return md_fail(err, MD_E_INVALID_PARAM, "Inference-Header-Content-Length",
                       "Inference-Header-Content-Length must be a decimal 1..%zu (the body length)", body_len);
    *out = (size_t)n;
    return MD_OK;
}

/* Range of an integer datatype; false for the others. UINT64 stops at INT64_MAX: JSON numbers
 * beyond it do not survive the parser (send them as binary data). */
static bool int_range(int dt, long long *lo, long long *hi)
{
    switch (dt) {
    case ONNX_INT8: *lo = INT8_MIN, *hi = INT8_MAX; return true;
    case ONNX_INT16: *lo = INT16_MIN, *hi = INT16_MAX; return true;
    case ONNX_INT32: *lo = INT32_MIN, *hi = INT32_MAX; return true;
    case ONNX_INT64: *lo = INT64_MIN, *hi = INT64_MAX; return true;
    case ONNX_UINT8: *lo = 0, *hi = UINT8_MAX; return true;
    case ONNX_UINT16: *lo = 0, *hi = UINT16_MAX; return true;
    case ONNX_UINT32: *lo = 0, *hi = UINT32_MAX; return true;
    case ONNX_UINT64: *lo = 0, *hi = INT64_MAX; return true;
    default: return false;
    }
}

/* Store an integer already checked against int_range(dt). */
static void put_int(int dt, void *d, size_t i, long long x)
{
    switch (dt) {
    case ONNX_INT8: ((int8_t *)d)[i] = (int8_t)x; break;
    case ONNX_INT16: ((int16_t *)d)[i] = (int16_t)x; break;
    case ONNX_INT32: ((int32_t *)d)[i] = (int32_t)x; break;
    case ONNX_INT64: ((int64_t *)d)[i] = x; break;
    case ONNX_UINT8: ((uint8_t *)d)[i] = (uint8_t)x; break;
    case ONNX_UINT16: ((uint16_t *)d)[i] = (uint16_t)x; break;
    case ONNX_UINT32: ((uint32_t *)d)[i] = (uint32_t)x; break;
    default: ((uint64_t *)d)[i] = (uint64_t)x; break;
    }
}

/* Slot i of a floating tensor (FP32, FP64, FP16, BF16) gets f, rounded to the datatype. Both
 * decoders (jansson values and lifted leaves) store through here. */
static void store_float(double f, int dt, void *d, size_t i)
{
    if (dt == ONNX_FLOAT)
        ((float *)d)[i] = (float)f;
    else if (dt == ONNX_DOUBLE)
        ((double *)d)[i] = f;
    else if (dt == ONNX_FLOAT16)
        ((uint16_t *)d)[i] = float_to_half((float)f);
    else
        ((uint16_t *)d)[i] = float_to_bf16((float)f);
}

static int put_float(json_t *v, int dt, void *d, size_t i)
{
    if (!json_is_number(v))
        return -1;
    store_float(json_number_value(v), dt, d, i);
    return 0;
}

/* One JSON element into slot i of the tensor; -1 when its type or range is wrong, -2 on OOM. */
static int put_json_elem(json_t *v, in_ctx *c, size_t i)
{
    void *d = (void *)c->t->data;
    int dt = c->t->dtype;
    long long lo, hi;
    if (dt == ONNX_FLOAT || dt == ONNX_DOUBLE || dt == ONNX_FLOAT16 || dt == ONNX_BFLOAT16)
        return put_float(v, dt, d, i);
    if (dt == ONNX_BOOL) {
        if (!json_is_boolean(v))
            return -1;
        ((uint8_t *)d)[i] = json_is_true(v) ? 1 : 0;
        return 0;
    }
    if (dt == ONNX_STRING) {
        if (!json_is_string(v))
            return -1;
        char *s = md_arena_strndup(c->a, json_string_value(v), json_string_length(v));
        if (!s)
            return -2;
        ((const char **)d)[i] = s;
        return 0;
    }
    if (!int_range(dt, &lo, &hi) || !json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return -1;
    put_int(dt, d, i, json_integer_value(v));
    return 0;
}

/* MD_E_INVALID_PARAM naming the input (message) and its field (c->field). */
static int bad_input(in_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad_input(in_ctx *c, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return md_fail(c->err, MD_E_INVALID_PARAM, c->field, "input '%s': %s", c->name, msg);
}

/* Walk data (flat or nested, at most rank levels deep). With fill false only count the leaves
 * into c->filled; with fill true write them. */
static int walk_data(json_t *d, int depth, bool fill, in_ctx *c)
{
    if (!json_is_array(d)) {
        if (fill) {
            int r = put_json_elem(d, c, c->filled);
            if (r == -2)
                return md_fail(c->err, MD_E_NOMEM, NULL, NULL);
            if (r)
                return bad_input(c, "element %zu is not a valid %s value", c->filled, mdl_dtype_name(c->t->dtype));
        }
        c->filled++;
        return MD_OK;
    }
    if (depth >= (c->t->rank > 0 ? c->t->rank : 1))
        return bad_input(c, "data is nested deeper than its shape's %d dimensions", c->t->rank);
    size_t i;
    json_t *e;
    json_array_foreach(d, i, e) {
        if (c->filled > c->n)
            break; /* too many already: the caller reports the count */
        int rc = walk_data(e, depth + 1, fill, c);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

/* c->filled leaves counted (n + 1 at most) where the shape wants c->n. */
static int count_error(in_ctx *c)
{
    char dt[96];
    return bad_input(c, "%s%zu data elements for shape %s (%zu expected)", c->filled > c->n ? "more than " : "",
                     c->filled, dims_text(c->t->dims, c->t->rank, dt, sizeof dt), c->n);
}

/* A lifted leaf as a double, as json_number_value gives it (integers converted); -1 for a bool. */
static inline int leaf_double(const oip_leaf *v, double *f)
{
    if (v->kind == OIP_LEAF_REAL)
        *f = v->v.d;
    else if (v->kind == OIP_LEAF_INT)
        *f = (double)v->v.i;
    else
        return -1;
    return 0;
}

/* put_json_elem for a lifted leaf (never a string); -1 when its type or range is wrong. */
static int put_leaf(const oip_leaf *v, int dt, void *d, size_t i)
{
    double f;
    long long lo, hi;
    if (dt == ONNX_FLOAT || dt == ONNX_DOUBLE || dt == ONNX_FLOAT16 || dt == ONNX_BFLOAT16) {
        if (leaf_double(v, &f) != 0)
            return -1;
        store_float(f, dt, d, i);
        return 0;
    }
    if (dt == ONNX_BOOL) {
        if (v->kind != OIP_LEAF_TRUE && v->kind != OIP_LEAF_FALSE)
            return -1;
        ((uint8_t *)d)[i] = v->kind == OIP_LEAF_TRUE;
        return 0;
    }
    if (!int_range(dt, &lo, &hi) || v->kind != OIP_LEAF_INT || v->v.i < lo || v->v.i > hi)
        return -1; /* BYTES too: a lifted leaf is never a string */
    put_int(dt, d, i, v->v.i);
    return 0;
}

/* decode_json_data for data lifted out of the text: walk_data's answers from the lift's summary.
 * walk_data visits leaves in order and stops once it has counted n + 1; an array at depth >= rank
 * is refused if walk_data reaches it, i.e. if at most n leaves come before it. */
static int decode_lifted(const oip_lifted *l, in_ctx *c)
{
    int r = c->t->rank > 0 ? c->t->rank : 1;
    if (l->first_at_depth[r] != OIP_LIFT_NONE && l->first_at_depth[r] <= c->n)
        return bad_input(c, "data is nested deeper than its shape's %d dimensions", c->t->rank);
    c->filled = l->count <= c->n ? l->count : c->n + 1;
    if (c->filled != c->n)
        return count_error(c);
    void *buf = md_arena_calloc(c->a, c->n ? c->n : 1, mem_size(c->t->dtype));
    if (!buf)
        return md_fail(c->err, MD_E_NOMEM, NULL, NULL);
    c->t->data = buf;
    for (size_t i = 0; i < c->n; i++)
        if (put_leaf(&l->leaves[i], c->t->dtype, buf, i) != 0)
            return bad_input(c, "element %zu is not a valid %s value", i, mdl_dtype_name(c->t->dtype));
    return MD_OK;
}

static int decode_json_data(json_t *data, in_ctx *c)
{
    if (c->lift)
        return decode_lifted(c->lift, c);
    if (!json_is_array(data))
        return bad_input(c, "data must be an array");
    c->filled = 0;
    int rc = walk_data(data, 0, false, c);
    if (rc != MD_OK)
        return rc;
    if (c->filled != c->n)
        return count_error(c);
    void *buf = md_arena_calloc(c->a, c->n ? c->n : 1, mem_size(c->t->dtype));
    if (!buf)
        return md_fail(c->err, MD_E_NOMEM, NULL, NULL);
    c->t->data = buf;
    c->filled = 0;
    return walk_data(data, 0, true, c);
}

/* BYTES in binary form: n elements, each a 4-byte little-endian length then the bytes. */
static int decode_bin_strings(const unsigned char *p, size_t size, in_ctx *c)
{
    const char **s = md_arena_calloc(c->a, c->n ? c->n : 1, sizeof *s);
    if (!s)
        return md_fail(c->err, MD_E_NOMEM, NULL, NULL);
    size_t off = 0;
    for (size_t i = 0; i < c->n; i++) {
        uint32_t l;
        if (size - off < 4)
            return bad_input(c, "binary BYTES data ends inside element %zu", i);
        memcpy(&l, p + off, 4);
        off += 4;
        if (l > size - off)
            return bad_input(c, "binary BYTES element %zu claims %u bytes, only %zu left", i, l, size - off);
        s[i] = md_arena_strndup(c->a, (const char *)p + off, l);
        if (!s[i])
            return md_fail(c->err, MD_E_NOMEM, NULL, NULL);
        off += l;
    }
    if (off != size)
        return bad_input(c, "binary_data_size is %zu but its %zu BYTES elements take %zu", size, c->n, off);
    c->t->data = s;
    return MD_OK;
}

static int decode_bin_data(json_int_t size, bin_cur *bin, in_ctx *c)
{
    char dt[96];
    if (!bin->p)
        return bad_input(c, "binary_data_size given but the request has no Inference-Header-Content-Length");
    if (size < 0 || (unsigned long long)size > bin->left)
        return bad_input(c, "binary_data_size %lld exceeds the %zu binary bytes left in the body", (long long)size,
                         bin->left);
    const unsigned char *p = bin->p;
    bin->p += size;
    bin->left -= (size_t)size;
    if (c->t->dtype == ONNX_STRING)
        return decode_bin_strings(p, (size_t)size, c);
    size_t want = c->n * wire_size(c->t->dtype);
    if ((size_t)size != want)
        return bad_input(c, "binary_data_size %lld does not match shape %s of %s (%zu bytes)", (long long)size,
                         dims_text(c->t->dims, c->t->rank, dt, sizeof dt), mdl_dtype_name(c->t->dtype), want);
    unsigned char *buf = md_arena_alloc(c->a, want ? want : 1);
    if (!buf)
        return md_fail(c->err, MD_E_NOMEM, NULL, NULL);
    memcpy(buf, p, want);
    if (c->t->dtype == ONNX_BOOL)
        for (size_t i = 0; i < want; i++)
            buf[i] = buf[i] != 0;
    c->t->data = buf;
    return MD_OK;
}

static const mdl_io *find_io(const mdl_io *ios, size_t n, const char *name, size_t *idx)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ios[i].name, name) == 0) {
            *idx = i;
            return &ios[i];
        }
    return NULL;
}

/* Shape: an array of non-negative integers matching the manifest's (rank, fixed dims). */
static int decode_shape(json_t *shape, const mdl_io *io, in_ctx *c)
{
    char got[96], want[96];
    size_t k;
    json_t *e;
    if (!json_is_array(shape) || json_array_size(shape) > MDL_MAX_RANK)
        return bad_input(c, "shape must be an array of at most %d integers", MDL_MAX_RANK);
    c->t->rank = (int)json_array_size(shape);
    c->n = 1;
    json_array_foreach(shape, k, e) {
        json_int_t dim = json_is_integer(e) ? json_integer_value(e) : -1;
        if (dim < 0 || (unsigned long long)dim > OIP_MAX_ELEMS)
            return bad_input(c, "shape[%zu] must be a non-negative integer", k);
        c->t->dims[k] = json_integer_value(e);
        c->n *= (size_t)c->t->dims[k];
        if (c->n > OIP_MAX_ELEMS)
            return bad_input(c, "shape has more than %llu elements", (unsigned long long)OIP_MAX_ELEMS);
    }
    bool ok = c->t->rank == io->rank;
    for (int d = 0; ok && d < io->rank; d++)
        ok = io->dims[d] < 0 || io->dims[d] == c->t->dims[d];
    if (!ok)
        return bad_input(c, "shape %s does not match the model's %s",
                         dims_text(c->t->dims, c->t->rank, got, sizeof got), dims_text(io->dims, io->rank, want, sizeof want));
    return MD_OK;
}

/* binary_data_size from an input's parameters: *has tells whether it was given. */
static int binary_size_param(json_t *in, in_ctx *c, bool *has, json_int_t *size)
{
    json_t *params = json_object_get(in, "parameters");
    *has = false;
    if (params && !json_is_object(params))
        return bad_input(c, "parameters must be an object");
    json_t *bs = json_object_get(params, "binary_data_size");
    if (!bs)
        return MD_OK;
    if (!json_is_integer(bs) || json_integer_value(bs) < 0)
        return bad_input(c, "binary_data_size must be a non-negative integer");
    *has = true;
    *size = json_integer_value(bs);
    return MD_OK;
}

static int decode_input(json_t *in, size_t idx, const mdl_manifest *mf, bool *seen, bin_cur *bin, in_ctx *c)
{
    snprintf(c->field, sizeof c->field, "inputs[%zu]", idx);
    c->name = "?";
    json_t *jn = json_object_get(in, "name"), *jd = json_object_get(in, "datatype");
    if (!json_is_object(in) || !json_is_string(jn))
        return md_fail(c->err, MD_E_MISSING_FIELD, c->field, "%s must be an object with a string \"name\"", c->field);
    c->name = md_arena_strdup(c->a, json_string_value(jn));
    if (!c->name)
        return md_fail(c->err, MD_E_NOMEM, NULL, NULL);
    size_t k;
    const mdl_io *io = find_io(mf->inputs, mf->n_inputs, c->name, &k);
    if (!io)
        return md_fail(c->err, MD_E_INVALID_PARAM, c->field, "unknown input '%.64s' (the model's first input is '%s')",
                       c->name, mf->n_inputs ? mf->inputs[0].name : "");
    if (seen[k])
        return md_fail(c->err, MD_E_INVALID_PARAM, c->field, "input '%s' is given twice", c->name);
    seen[k] = true;
    c->t->name = io->name;
    if (!json_is_string(jd))
        return md_fail(c->err, MD_E_MISSING_FIELD, c->field, "input '%s': datatype is missing", c->name);
    c->t->dtype = mdl_dtype_parse(json_string_value(jd));
    if (c->t->dtype < 0)
        return bad_input(c, "unknown datatype '%.32s'", json_string_value(jd));
    if (c->t->dtype != io->dtype)
        return bad_input(c, "datatype %s does not match the model's %s", mdl_dtype_name(c->t->dtype),
                         mdl_dtype_name(io->dtype));
    int rc = decode_shape(json_object_get(in, "shape"), io, c);
    if (rc != MD_OK)
        return rc;
    json_int_t size = 0;
    bool has_bin;
    rc = binary_size_param(in, c, &has_bin, &size);
    if (rc != MD_OK)
        return rc;
    json_t *data = json_object_get(in, "data");
    if (has_bin && data)
        return bad_input(c, "both data and binary_data_size are given");
    if (has_bin)
        return decode_bin_data(size, bin, c);
    if (!data)
        return md_fail(c->err, MD_E_MISSING_FIELD, c->field, "input '%s': data is missing", c->name);
    return decode_json_data(data, c);
}

static int decode_inputs(json_t *root, const mdl_manifest *mf, md_arena *a, bin_cur *bin, const oip_lift_set *ls,
                         oip_infer_req *out, md_err *err)
{
    json_t *ins = json_object_get(root, "inputs");
    if (!json_is_array(ins) || json_array_size(ins) == 0)
        return md_fail(err, MD_E_MISSING_FIELD, "inputs", "inputs must be a non-empty array");
    if (json_array_size(ins) > OIP_MAX_TENSORS || json_array_size(ins) > mf->n_inputs)
        return md_fail(err, MD_E_INVALID_PARAM, "inputs", "%zu inputs given, the model has %zu", json_array_size(ins),
                       mf->n_inputs);
    out->n_inputs = json_array_size(ins);
    out->inputs = md_arena_calloc(a, out->n_inputs, sizeof *out->inputs);
    bool *seen = md_arena_calloc(a, mf->n_inputs ? mf->n_inputs : 1, sizeof *seen);
    if (!out->inputs || !seen)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    size_t l = 0; /* the lifts are in input order */
    for (size_t i = 0; i < out->n_inputs; i++) {
        in_ctx c = {.t = &out->inputs[i], .a = a, .err = err};
        while (l < ls->n && ls->v[l].input < i)
            l++;
        c.lift = l < ls->n && ls->v[l].input == i ? &ls->v[l] : NULL;
        int rc = decode_input(json_array_get(ins, i), i, mf, seen, bin, &c);
        if (rc != MD_OK)
            return rc;
    }
    for (size_t k = 0; k < mf->n_inputs; k++)
        if (!seen[k])
            return md_fail(err, MD_E_MISSING_FIELD, "inputs", "input '%s' is missing", mf->inputs[k].name);
    return MD_OK;
}

static int decode_output(json_t *o, size_t i, const mdl_manifest *mf, md_arena *a, oip_infer_req *out, md_err *err)
{
    char field[48];
    snprintf(field, sizeof field, "outputs[%zu]", i);
    json_t *jn = json_object_get(o, "name"), *params = json_object_get(o, "parameters");
    if (!json_is_object(o) || !json_is_string(jn))
        return md_fail(err, MD_E_MISSING_FIELD, field, "%s must be an object with a string \"name\"", field);
    size_t k;
    if (!find_io(mf->outputs, mf->n_outputs, json_string_value(jn), &k))
        return md_fail(err, MD_E_INVALID_PARAM, field, "unknown output '%.64s'", json_string_value(jn));
    for (size_t j = 0; j < i; j++)
        if (strcmp(out->outputs[j].name, mf->outputs[k].name) == 0)
            return md_fail(err, MD_E_INVALID_PARAM, field, "output '%s' is requested twice", mf->outputs[k].name);
    out->outputs[i].name = md_arena_strdup(a, mf->outputs[k].name);
    if (!out->outputs[i].name)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    out->outputs[i].binary = out->binary_output;
    if (params && !json_is_object(params))
        return md_fail(err, MD_E_INVALID_PARAM, field, "output '%s': parameters must be an object",
                       mf->outputs[k].name);
    json_t *b = json_object_get(params, "binary_data");
    if (b && !json_is_boolean(b))
        return md_fail(err, MD_E_INVALID_PARAM, field, "output '%s': binary_data must be a boolean",
                       mf->outputs[k].name);
    if (b)
        out->outputs[i].binary = json_is_true(b);
    return MD_OK;
}

static int decode_outputs(json_t *root, const mdl_manifest *mf, md_arena *a, oip_infer_req *out, md_err *err)
{
    json_t *outs = json_object_get(root, "outputs");
    if (!outs)
        return MD_OK;
    if (!json_is_array(outs) || json_array_size(outs) > OIP_MAX_TENSORS)
        return md_fail(err, MD_E_INVALID_PARAM, "outputs", "outputs must be an array of at most %d objects",
                       OIP_MAX_TENSORS);
    out->n_outputs = json_array_size(outs);
    out->outputs = md_arena_calloc(a, out->n_outputs ? out->n_outputs : 1, sizeof *out->outputs);
    if (!out->outputs)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    for (size_t i = 0; i < out->n_outputs; i++) {
        int rc = decode_output(json_array_get(outs, i), i, mf, a, out, err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

/* "id" (a string) and the request-level parameters (binary_data_output). */
static int decode_head(json_t *root, md_arena *a, oip_infer_req *out, md_err *err)
{
    json_t *id = json_object_get(root, "id"), *params = json_object_get(root, "parameters");
    if (id && !json_is_string(id))
        return md_fail(err, MD_E_INVALID_PARAM, "id", "id must be a string");
    if (id) {
        out->id = md_arena_strndup(a, json_string_value(id), json_string_length(id));
        if (!out->id)
            return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    if (params && !json_is_object(params))
        return md_fail(err, MD_E_INVALID_PARAM, "parameters", "parameters must be an object");
    json_t *bo = json_object_get(params, "binary_data_output");
    if (bo && !json_is_boolean(bo))
        return md_fail(err, MD_E_INVALID_PARAM, "parameters.binary_data_output",
                       "binary_data_output must be a boolean");
    out->binary_output = bo && json_is_true(bo);
    return MD_OK;
}

/* json_loadb with the request's flags. */
static json_t *load(const char *text, size_t len, json_error_t *je)
{
    return json_loadb(text, len, JSON_REJECT_DUPLICATES, je);
}

/* The fast path's parse: lift the numeric data arrays (oip_lift.c), give jansson the text with
 * each of them replaced by null. When nothing is lifted, or jansson refuses the rewritten text,
 * the original text is parsed as it is (and *ls emptied), so errors are jansson's own. */
static json_t *load_lifted(const char *text, size_t len, oip_lift_set *ls, json_error_t *je)
{
    oip_lift_scan(text, len, ls);
    if (!ls->n)
        return load(text, len, je);
    size_t cut = 0;
    for (size_t i = 0; i < ls->n; i++)
        cut += ls->v[i].end - ls->v[i].start;
    char *t = malloc(len - cut + 4 * ls->n + 1);
    json_t *root = NULL;
    if (t) {
        size_t at = 0, o = 0;
        for (size_t i = 0; i < ls->n; i++) {
            memcpy(t + o, text + at, ls->v[i].start - at);
            o += ls->v[i].start - at;
            memcpy(t + o, "null", 4);
            o += 4;
            at = ls->v[i].end;
        }
        memcpy(t + o, text + at, len - at);
        root = load(t, o + len - at, je);
        free(t);
    }
    if (root)
        return root;
    oip_lift_free(ls);
    return load(text, len, je);
}

int oip_decode_infer(const void *body, size_t len, size_t header_len, const mdl_manifest *mf, md_arena *a,
                     oip_infer_req *out, md_err *err)
{
    return oip__decode_infer(body, len, header_len, mf, a, out, err, true);
}

int oip__decode_infer(const void *body, size_t len, size_t header_len, const mdl_manifest *mf, md_arena *a,
                      oip_infer_req *out, md_err *err, bool fast)
{
    memset(out, 0, sizeof *out);
    if (header_len > len)
        return md_fail(err, MD_E_INVALID_PARAM, "Inference-Header-Content-Length",
                       "Inference-Header-Content-Length %zu is larger than the body (%zu bytes)", header_len, len);
    if ((header_len ? header_len : len) > OIP_JSON_MAX)
        return md_fail(err, MD_E_TOO_LARGE, "body",
                       "the JSON part of an infer request may be at most %u bytes; send large tensors as binary data "
                       "(Inference-Header-Content-Length)", OIP_JSON_MAX);
    json_error_t je;
    oip_lift_set ls = {0};
    size_t jlen = header_len ? header_len : len;
    json_t *root = fast ? load_lifted(body, jlen, &ls, &je) : load(body, jlen, &je);
    if (!root) {
        oip_lift_free(&ls);
        return md_fail(err, MD_E_INVALID_JSON, NULL, "the infer request is not valid JSON: %s (line %d, column %d)",
                       je.text, je.line, je.column);
    }
    bin_cur bin = {header_len ? (const unsigned char *)body + header_len : NULL, header_len ? len - header_len : 0};
    int rc = json_is_object(root) ? MD_OK
                                  : md_fail(err, MD_E_INVALID_JSON, NULL, "the infer request must be a JSON object");
    if (rc == MD_OK)
        rc = decode_head(root, a, out, err);
    if (rc == MD_OK)
        rc = decode_inputs(root, mf, a, &bin, &ls, out, err);
    if (rc == MD_OK)
        rc = decode_outputs(root, mf, a, out, err);
    if (rc == MD_OK && bin.left)
        rc = md_fail(err, MD_E_INVALID_PARAM, "Inference-Header-Content-Length",
                     "%zu bytes of binary data are not claimed by any input's binary_data_size", bin.left);
    json_decref(root);
    oip_lift_free(&ls);
    return rc;
}

/* ---- encoding ---- */

static bool utf8_valid(const unsigned char *s)
{
    while (*s) {
        int n = *s < 0x80 ? 0 : (*s & 0xe0) == 0xc0 ? 1 : (*s & 0xf0) == 0xe0 ? 2 : (*s & 0xf8) == 0xf0 ? 3 : -1;
        if (n < 0 || (n == 1 && *s < 0xc2))
            return false;
        s++;
        for (int i = 0; i < n; i++, s++)
            if ((*s & 0xc0) != 0x80)
                return false;
    }
    return true;
}

/* Append element i of t as a JSON value; MD_E_UNSUPPORTED when it has no JSON form. */
static int put_json_value(md_buf *b, const mdl_tensor *t, size_t i)
{
    const void *d = t->data;
    double f;
    switch (t->dtype) {
    case ONNX_FLOAT: f = ((const float *)d)[i]; break;
    case ONNX_DOUBLE: f = ((const double *)d)[i]; break;
    case ONNX_FLOAT16: f = half_to_float(((const uint16_t *)d)[i]); break;
    case ONNX_BFLOAT16: f = bf16_to_float(((const uint16_t *)d)[i]); break;
    case ONNX_BOOL: return md_buf_puts(b, ((const uint8_t *)d)[i] ? "true" : "false");
    case ONNX_INT8: return md_buf_printf(b, "%d", ((const int8_t *)d)[i]);
    case ONNX_INT16: return md_buf_printf(b, "%d", ((const int16_t *)d)[i]);
    case ONNX_INT32: return md_buf_printf(b, "%d", ((const int32_t *)d)[i]);
    case ONNX_INT64: return md_buf_printf(b, "%lld", (long long)((const int64_t *)d)[i]);
    case ONNX_UINT8: return md_buf_printf(b, "%u", ((const uint8_t *)d)[i]);
    case ONNX_UINT16: return md_buf_printf(b, "%u", ((const uint16_t *)d)[i]);
    case ONNX_UINT32: return md_buf_printf(b, "%u", ((const uint32_t *)d)[i]);
    case ONNX_UINT64: return md_buf_printf(b, "%llu", (unsigned long long)((const uint64_t *)d)[i]);
    case ONNX_STRING: {
        const char *s = ((const char *const *)d)[i];
        if (!utf8_valid((const unsigned char *)(s ? s : "")))
            return MD_E_UNSUPPORTED;
        return md_buf_put_json_str(b, s ? s : "");
    }
    default: return MD_E_UNSUPPORTED;
    }
    if (!isfinite(f))
        return MD_E_UNSUPPORTED;
    return t->dtype == ONNX_DOUBLE ? md_buf_printf(b, "%.17g", f) : md_buf_put_g9(b, (float)f);
}

static size_t binary_size(const mdl_tensor *t)
{
    size_t n = numel(t);
    if (t->dtype != ONNX_STRING)
        return n * wire_size(t->dtype);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = ((const char *const *)t->data)[i];
        total += 4 + (s ? strlen(s) : 0);
    }
    return total;
}

static int put_binary(md_buf *b, const mdl_tensor *t)
{
    if (t->dtype != ONNX_STRING)
        return md_buf_append(b, t->data, numel(t) * wire_size(t->dtype));
    int rc = MD_OK;
    for (size_t i = 0, n = numel(t); rc == MD_OK && i < n; i++) {
        const char *s = ((const char *const *)t->data)[i];
        uint32_t l = (uint32_t)(s ? strlen(s) : 0);
        rc = md_buf_append(b, &l, 4);
        if (rc == MD_OK && l)
            rc = md_buf_append(b, s, l);
    }
    return rc;
}

static int put_output_json(md_buf *b, const mdl_tensor *t, bool binary, bool first, md_err *err)
{
    int rc = md_buf_puts(b, first ? "{\"name\":" : ",{\"name\":");
    rc = rc ? rc : md_buf_put_json_str(b, t->name);
    rc = rc ? rc : md_buf_printf(b, ",\"datatype\":\"%s\",\"shape\":[", mdl_dtype_name(t->dtype));
    for (int d = 0; rc == MD_OK && d < t->rank; d++)
        rc = md_buf_printf(b, "%s%lld", d ? "," : "", (long long)t->dims[d]);
    if (binary) {
        rc = rc ? rc : md_buf_printf(b, "],\"parameters\":{\"binary_data_size\":%zu}}", binary_size(t));
        return rc ? md_fail(err, rc, NULL, NULL) : MD_OK;
    }
    rc = rc ? rc : md_buf_puts(b, "],\"data\":[");
    for (size_t i = 0, n = numel(t); rc == MD_OK && i < n; i++) {
        if (i)
            rc = md_buf_putc(b, ',');
        rc = rc ? rc : put_json_value(b, t, i);
    }
    if (rc == MD_E_UNSUPPORTED)
        return md_fail(err, rc, "outputs", "output '%s' holds a value JSON cannot carry (NaN, infinity or non-UTF-8 "
                       "bytes); ask for it with \"binary_data\": true", t->name);
    rc = rc ? rc : md_buf_puts(b, "]}");
    return rc ? md_fail(err, rc, NULL, NULL) : MD_OK;
}

/* The outputs to send, in order, and whether each is binary. */
static int pick_outputs(const mdl_result *res, const oip_infer_req *rq, const mdl_tensor **ts, bool *bin, size_t *n,
                        md_err *err)
{
    size_t count = mdl_result_count(res);
    if (!rq->n_outputs) {
        *n = count < OIP_MAX_TENSORS ? count : OIP_MAX_TENSORS;
        for (size_t i = 0; i < *n; i++) {
            ts[i] = mdl_result_output(res, i);
            bin[i] = rq->binary_output;
        }
        return MD_OK;
    }
    for (size_t i = 0; i < rq->n_outputs; i++) {
        ts[i] = NULL;
        for (size_t k = 0; k < count && !ts[i]; k++)
            if (strcmp(mdl_result_output(res, k)->name, rq->outputs[i].name) == 0)
                ts[i] = mdl_result_output(res, k);
        if (!ts[i])
            return md_fail(err, MD_E_INTERNAL, NULL, "the model gave no output '%s'", rq->outputs[i].name);
        bin[i] = rq->outputs[i].binary;
    }
    *n = rq->n_outputs;
    return MD_OK;
}

int oip_encode_infer(const mdl_result *res, const oip_infer_req *rq, const char *model, const char *version,
                     md_buf *out, size_t *header_len, md_err *err)
{
    const mdl_tensor *ts[OIP_MAX_TENSORS];
    bool bin[OIP_MAX_TENSORS], any_bin = false;
    size_t n = 0;
    *header_len = 0;
    int rc = pick_outputs(res, rq, ts, bin, &n, err);
    if (rc != MD_OK)
        return rc;
    rc = md_buf_puts(out, "{\"model_name\":");
    rc = rc ? rc : md_buf_put_json_str(out, model);
    rc = rc ? rc : md_buf_puts(out, ",\"model_version\":");
    rc = rc ? rc : md_buf_put_json_str(out, version);
    if (rq->id) {
        rc = rc ? rc : md_buf_puts(out, ",\"id\":");
        rc = rc ? rc : md_buf_put_json_str(out, rq->id);
    }
    rc = rc ? rc : md_buf_puts(out, ",\"outputs\":[");
    if (rc != MD_OK)
        return md_fail(err, rc, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        any_bin |= bin[i];
        rc = put_output_json(out, ts[i], bin[i], i == 0, err);
        if (rc != MD_OK)
            return rc;
    }
    rc = md_buf_puts(out, "]}");
    if (rc == MD_OK && any_bin)
        *header_len = out->len;
    for (size_t i = 0; rc == MD_OK && i < n; i++)
        if (bin[i])
            rc = put_binary(out, ts[i]);
    return rc ? md_fail(err, rc, NULL, NULL) : MD_OK;
}

json_t *oip_tensor_meta(const mdl_io *io)
{
    json_t *shape = json_array();
    for (int d = 0; d < io->rank; d++)
        json_array_append_new(shape, json_integer(io->dims[d]));
    return json_pack("{s:s, s:s, s:o}", "name", io->name, "datatype", mdl_dtype_name(io->dtype), "shape", shape);
}
