/* npy.c - the NumPy .npy reader and writer (see npy.h).
 *
 * The header is a Python dict literal; we parse the three keys the format defines with a
 * small tokenizer rather than trusting its layout, and refuse anything we do not understand.
 * Invariants:
 *   1. No byte past len is read: the header length is checked against len before parsing,
 *      and the data length must equal numel * itemsize exactly.
 *   2. numel * itemsize is computed with overflow checks (onnx__numel) before any allocation.
 */
#include "onnx/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx_int.h"

#define MAGIC "\x93NUMPY"
#define MAX_HEADER 65536

typedef struct npy_header {
    char descr[8];
    int fortran;
    int rank;
    int64_t dims[ONNX_MAX_RANK];
} npy_header;

static const struct {
    const char *descr;
    int dtype;
} DESCRS[] = {
    {"<f4", ONNX_FLOAT}, {"<f8", ONNX_DOUBLE}, {"<f2", ONNX_FLOAT16}, {"|i1", ONNX_INT8},
    {"<i2", ONNX_INT16}, {"<i4", ONNX_INT32},  {"<i8", ONNX_INT64},   {"|u1", ONNX_UINT8},
    {"<u2", ONNX_UINT16}, {"<u4", ONNX_UINT32}, {"<u8", ONNX_UINT64}, {"|b1", ONNX_BOOL},
};

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == ','))
        p++;
    return p;
}

/* Parse a quoted string into out (at most cap-1 chars). Returns the char after the quote. */
static const char *parse_str(const char *p, const char *end, char *out, size_t cap)
{
    if (p >= end || (*p != '\'' && *p != '"'))
        return NULL;
    char q = *p++;
    size_t n = 0;
    while (p < end && *p != q) {
        if (n + 1 >= cap)
            return NULL;
        out[n++] = *p++;
    }
    if (p >= end)
        return NULL;
    out[n] = '\0';
    return p + 1;
}

static const char *parse_shape(const char *p, const char *end, npy_header *h)
{
    if (p >= end || *p != '(')
        return NULL;
    p++;
    h->rank = 0;
    for (;;) {
        p = skip_ws(p, end);
        if (p < end && *p == ')')
            return p + 1;
        if (p >= end || *p < '0' || *p > '9' || h->rank >= ONNX_MAX_RANK)
            return NULL;
        int64_t v = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (v > ((int64_t)1 << 40))
                return NULL;
            v = v * 10 + (*p++ - '0');
        }
        if (p < end && *p == 'L') /* Python 2 long */
            p++;
        h->dims[h->rank++] = v;
    }
}

static int parse_header(const char *p, const char *end, npy_header *h, md_err *err)
{
    memset(h, 0, sizeof *h);
    int seen = 0;
    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return md_fail(err, MD_E_INVALID_PARAM, "npy", "the .npy header is not a dict");
    p++;
    while ((p = skip_ws(p, end)) < end && *p != '}') {
        char key[32];
        p = parse_str(p, end, key, sizeof key);
        p = p ? skip_ws(p, end) : NULL;
        if (!p || p >= end || *p != ':')
            return md_fail(err, MD_E_INVALID_PARAM, "npy", "malformed .npy header");
        p = skip_ws(p + 1, end);
        if (strcmp(key, "descr") == 0) {
            p = parse_str(p, end, h->descr, sizeof h->descr);
            seen |= 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            h->fortran = end - p >= 4 && memcmp(p, "True", 4) == 0; /* not NUL-terminated */
            if (!h->fortran && !(end - p >= 5 && memcmp(p, "False", 5) == 0))
                p = NULL;
            else
                p += h->fortran ? 4 : 5;
            seen |= 2;
        } else if (strcmp(key, "shape") == 0) {
            p = parse_shape(p, end, h);
            seen |= 4;
        } else {
            p = NULL;
        }
        if (!p)
            return md_fail(err, MD_E_INVALID_PARAM, "npy", "bad value for '%s' in the .npy header",
                           key);
    }
    if (seen != 7)
        return md_fail(err, MD_E_INVALID_PARAM, "npy", "the .npy header lacks descr, "
                       "fortran_order or shape");
    return MD_OK;
}

int onnx_npy_parse(const void *data, size_t len, size_t max_bytes, onnx_tensor **out,
                   md_err *err)
{
    const unsigned char *b = data;
    *out = NULL;
    if (!max_bytes)
        max_bytes = (size_t)1 << 30;
    if (len < 10 || memcmp(b, MAGIC, 6) != 0)
        return md_fail(err, MD_E_INVALID_PARAM, "npy", "not a .npy file (bad magic)");
    size_t hl, off;
    if (b[6] == 1) {
        hl = (size_t)b[8] | (size_t)b[9] << 8;
        off = 10;
    } else if ((b[6] == 2 || b[6] == 3) && len >= 12) {
        hl = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        off = 12;
    } else {
        return md_fail(err, MD_E_UNSUPPORTED, "npy", ".npy version %d is not supported", b[6]);
    }
    if (hl > MAX_HEADER || hl > len - off)
        return md_fail(err, MD_E_INVALID_PARAM, "npy", "the .npy header length is invalid");
    npy_header h;
    int rc = parse_header((const char *)b + off, (const char *)b + off + hl, &h, err);
    if (rc)
        return rc;
    int dtype = -1;
    for (size_t i = 0; i < sizeof DESCRS / sizeof DESCRS[0]; i++)
        if (strcmp(h.descr, DESCRS[i].descr) == 0 ||
            (h.descr[0] == '=' && strcmp(h.descr + 1, DESCRS[i].descr + 1) == 0))
            dtype = DESCRS[i].dtype;
    if (dtype < 0 || h.fortran)
        return md_fail(err, MD_E_UNSUPPORTED, "npy", "dtype '%s'%s is not supported", h.descr,
                       h.fortran ? " in Fortran order" : "");
    int64_t n = onnx__numel(h.rank, h.dims);
    size_t es = onnx_dtype_size(dtype);
    if (n < 0 || (uint64_t)n > max_bytes / es)
        return md_fail(err, MD_E_TOO_LARGE, "npy", "the .npy array is larger than the limit");
    size_t bytes = (size_t)n * es;
    if (len - off - hl != bytes)
        return md_fail(err, MD_E_INVALID_PARAM, "npy", "the .npy data is %zu bytes, expected %zu",
                       len - off - hl, bytes);
    if ((rc = onnx_tensor_new(dtype, h.rank, h.dims, out, err)))
        return rc;
    if (bytes)
        memcpy((*out)->data, b + off + hl, bytes);
    return MD_OK;
}

int onnx_npy_write(const onnx_tensor *t, md_buf *out, md_err *err)
{
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof DESCRS / sizeof DESCRS[0]; i++)
        if (DESCRS[i].dtype == t->dtype)
            descr = DESCRS[i].descr;
    if (t->kind != ONNX_KIND_TENSOR)
        return md_fail(err, MD_E_UNSUPPORTED, "npy", "sequence and map values cannot be written "
                       "as .npy");
    if (!descr)
        return md_fail(err, MD_E_UNSUPPORTED, "npy", "%s values cannot be written as .npy",
                       onnx_dtype_name(t->dtype));
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->rank; i++)
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%lld,%s", (long long)t->dims[i],
                      i + 1 < t->rank ? " " : "");
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "), }");
    /* Pad with spaces so magic + length + header + '\n' is a multiple of 64. */
    size_t total = (size_t)n + 1 + 10;
    size_t pad = (64 - total % 64) % 64;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    size_t hl = (size_t)n + pad + 1;
    pre[8] = (unsigned char)(hl & 0xff);
    pre[9] = (unsigned char)(hl >> 8);
    int rc = md_buf_append(out, pre, sizeof pre);
    if (!rc)
        rc = md_buf_append(out, hdr, (size_t)n);
    for (size_t i = 0; !rc && i < pad; i++)
        rc = md_buf_putc(out, ' ');
    if (!rc)
        rc = md_buf_putc(out, '\n');
    size_t bytes = (size_t)onnx_tensor_numel(t) * onnx_dtype_size(t->dtype);
    if (!rc && bytes)
        rc = md_buf_append(out, t->data, bytes);
    if (rc)
        return md_fail(err, rc, "npy", "cannot hold the .npy output");
    return MD_OK;
}
