/* sequence.c - sequences and optionals: SequenceEmpty, SequenceConstruct, SequenceInsert,
 * SequenceAt, SequenceErase, SequenceLength, SplitToSequence, ConcatFromSequence, Optional,
 * OptionalHasElement, OptionalGetElement, and the deep copy every container output uses.
 *
 * A sequence value is an onnx_tensor of kind ONNX_KIND_SEQUENCE whose data is an array of
 * element tensors. Every operator that makes a sequence deep-copies the elements into memory
 * owned by its own output (onnx__output_extra), so a sequence never points into a value the
 * planner may already have reused. Elements are numeric tensors of one dtype.
 */
#include <string.h>

#include "onnx/onnx_int.h"

static size_t bytes_of(const onnx_tensor *t)
{
    return (size_t)onnx_tensor_numel(t) * onnx_dtype_size(t->dtype);
}

/* Output i = a sequence of copies of elems[0..n); a NULL (empty optional input) is refused. */
int onnx__output_seq(onnx_kctx *k, int i, int dtype, const onnx_tensor *const *elems, int64_t n)
{
    if (dtype == ONNX_STRING || !onnx_dtype_size(dtype))
        return onnx__kfail(k, MD_E_UNSUPPORTED, "sequences of %s", onnx_dtype_name(dtype));
    size_t total = 0;
    for (int64_t j = 0; j < n; j++) {
        if (!elems[j] || elems[j]->dtype != dtype || elems[j]->kind != ONNX_KIND_TENSOR)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "sequence elements must be %s tensors",
                               onnx_dtype_name(dtype));
        total += (bytes_of(elems[j]) + 63) & ~(size_t)63;
    }
    int64_t slots = n * (int64_t)sizeof(onnx_tensor);
    onnx_tensor *o;
    int rc = onnx__output(k, i, ONNX_UINT8, 1, &slots, &o);
    unsigned char *buf = rc ? NULL : onnx__output_extra(k, i, total ? total : 1);
    if (rc || !buf)
        return rc ? rc : MD_E_NOMEM;
    onnx_tensor *arr = o->data;
    for (int64_t j = 0; j < n; j++) {
        arr[j] = *elems[j];
        arr[j].data = buf;
        if (bytes_of(elems[j]))
            memcpy(buf, elems[j]->data, bytes_of(elems[j]));
        buf += (bytes_of(elems[j]) + 63) & ~(size_t)63;
    }
    o->kind = ONNX_KIND_SEQUENCE;
    o->dtype = dtype;
    o->rank = 1;
    o->dims[0] = n;
    return MD_OK;
}

static const onnx_tensor *elem(const onnx_tensor *seq, int64_t j)
{
    return &((const onnx_tensor *)seq->data)[j];
}

static int need_seq(onnx_kctx *k, const onnx_tensor *s)
{
    return s->kind == ONNX_KIND_SEQUENCE ? MD_OK
                                         : onnx__kfail(k, MD_E_INVALID_PARAM, "input is not a sequence");
}

/* Position from an optional scalar input; def when absent. Valid range [-n, n + extra). */
static int seq_pos(onnx_kctx *k, int idx, int64_t n, int extra, int64_t def, int64_t *pos)
{
    *pos = def;
    if (k->n_in > idx && k->in[idx]) {
        if (onnx_tensor_numel(k->in[idx]) != 1)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "position must be a scalar");
        *pos = onnx__get_i64(k->in[idx], 0);
    }
    if (*pos < -n || *pos >= n + extra)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "position %lld out of range", (long long)*pos);
    if (*pos < 0)
        *pos += n;
    return MD_OK;
}

static int run_empty(const onnx_node *n, onnx_kctx *k)
{
    return onnx__output_seq(k, 0, (int)onnx__attr_int(n, "dtype", ONNX_FLOAT), NULL, 0);
}

static int run_construct(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    return onnx__output_seq(k, 0, k->in[0]->dtype, k->in, k->n_in);
}

static int run_insert(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    const onnx_tensor *s = k->in[0];
    int rc = need_seq(k, s);
    int64_t cnt = s->dims[0], pos;
    if (rc || (rc = seq_pos(k, 2, cnt, 1, cnt, &pos)))
        return rc;
    const onnx_tensor **list = onnx__scratch(k, (size_t)(cnt + 1) * sizeof *list);
    if (!list)
        return MD_E_NOMEM;
    for (int64_t j = 0, d = 0; j <= cnt; j++)
        list[j] = j == pos ? k->in[1] : elem(s, d++);
    return onnx__output_seq(k, 0, s->dtype, list, cnt + 1);
}

static int run_erase(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    const onnx_tensor *s = k->in[0];
    int rc = need_seq(k, s);
    int64_t cnt = s->dims[0], pos;
    if (rc || (rc = seq_pos(k, 1, cnt, 0, cnt - 1, &pos)))
        return rc;
    const onnx_tensor **list = onnx__scratch(k, (size_t)(cnt + 1) * sizeof *list);
    if (!list)
        return MD_E_NOMEM;
    for (int64_t j = 0, d = 0; j < cnt; j++)
        if (j != pos)
            list[d++] = elem(s, j);
    return onnx__output_seq(k, 0, s->dtype, list, cnt - 1);
}

static int run_at(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    const onnx_tensor *s = k->in[0];
    int rc = need_seq(k, s);
    int64_t pos;
    if (rc || (rc = seq_pos(k, 1, s->dims[0], 0, 0, &pos)))
        return rc;
    const onnx_tensor *e = elem(s, pos);
    onnx_tensor *o;
    if ((rc = onnx__output(k, 0, e->dtype, e->rank, e->dims, &o)))
        return rc;
    if (bytes_of(e))
        memcpy(o->data, e->data, bytes_of(e));
    return MD_OK;
}

static int run_length(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    int rc = need_seq(k, k->in[0]);
    onnx_tensor *o;
    if (rc || (rc = onnx__output(k, 0, ONNX_INT64, 0, NULL, &o)))
        return rc;
    *(int64_t *)o->data = k->in[0]->dims[0];
    return MD_OK;
}

/* SplitToSequence: pieces of x along axis (equal pieces of 1 by default, or the split input:
 * a scalar piece length or a list of lengths). keepdims=0 drops the axis for length-1 pieces. */
static int run_split_to_seq(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0], *sp = k->n_in > 1 ? k->in[1] : NULL;
    int axis;
    if (onnx__norm_axis(onnx__attr_int(n, "axis", 0), x->rank, 0, &axis) != 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "axis out of range");
    int64_t len = x->dims[axis], cnt, outer = 1, inner = (int64_t)onnx_dtype_size(x->dtype);
    bool keep = !sp && onnx__attr_int(n, "keepdims", 1) == 0 ? false : true;
    int64_t piece = 1;
    if (sp && onnx_tensor_numel(sp) == 1 && sp->rank == 0) {
        piece = onnx__get_i64(sp, 0);
        if (piece <= 0)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "split must be positive");
    }
    bool listed = sp && sp->rank == 1;
    cnt = listed ? onnx_tensor_numel(sp) : (len + piece - 1) / piece;
    for (int i = 0; i < x->rank; i++)
        if (i != axis)
            *(i < axis ? &outer : &inner) *= x->dims[i];
    onnx_tensor *parts = onnx__scratch(k, (size_t)(cnt + 1) * sizeof(onnx_tensor));
    const onnx_tensor **list = onnx__scratch(k, (size_t)(cnt + 1) * sizeof *list);
    if (!parts || !list)
        return MD_E_NOMEM;
    int64_t start = 0;
    for (int64_t j = 0; j < cnt; j++) {
        int64_t w = listed ? onnx__get_i64(sp, j) : (start + piece <= len ? piece : len - start);
        if (w < 0 || start + w > len)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "split lengths exceed the dimension");
        onnx_tensor *p = &parts[j];
        *p = *x;
        p->dims[axis] = w;
        p->data = onnx__scratch(k, (size_t)(outer * w * inner) + 1);
        if (!p->data)
            return MD_E_NOMEM;
        for (int64_t a = 0; a < outer; a++)
            memcpy((char *)p->data + a * w * inner, (const char *)x->data + (a * len + start) * inner,
                   (size_t)(w * inner));
        if (!keep) { /* drop the split axis */
            memmove(&p->dims[axis], &p->dims[axis + 1], sizeof(int64_t) * (size_t)(x->rank - axis - 1));
            p->rank--;
        }
        list[j] = p;
        start += w;
    }
    if (listed && start != len)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "split lengths do not sum to the dimension");
    return onnx__output_seq(k, 0, x->dtype, list, cnt);
}

/* ConcatFromSequence: concatenate along axis, or stack along a new axis (new_axis=1). */
static int run_concat_from_seq(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *s = k->in[0];
    int rc = need_seq(k, s);
    if (rc)
        return rc;
    int64_t cnt = s->dims[0];
    if (cnt < 1)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "cannot concatenate an empty sequence");
    const onnx_tensor *e0 = elem(s, 0);
    bool stack = onnx__attr_int(n, "new_axis", 0) != 0;
    int r = e0->rank + (stack ? 1 : 0), axis;
    if (r > ONNX_MAX_RANK || onnx__norm_axis(onnx__attr_int(n, "axis", 0), r, 0, &axis) != 0 ||
        (!stack && axis >= e0->rank))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "axis out of range");
    int64_t od[ONNX_MAX_RANK], outer = 1, inner = (int64_t)onnx_dtype_size(e0->dtype), total = 0;
    for (int64_t j = 0; j < cnt; j++) {
        const onnx_tensor *e = elem(s, j);
        for (int d = 0; d < e0->rank; d++)
            if (e->rank != e0->rank || ((stack || d != axis) && e->dims[d] != e0->dims[d]))
                return onnx__kfail(k, MD_E_INVALID_PARAM, "element %lld has another shape", (long long)j);
        total += stack ? 1 : e->dims[axis];
    }
    if (stack)
        for (int d = 0, j = 0; d < r; d++)
            od[d] = d == axis ? total : e0->dims[j++];
    else
        for (int d = 0; d < r; d++)
            od[d] = d == axis ? total : e0->dims[d];
    for (int d = 0; d < axis; d++)
        outer *= od[d];
    for (int d = axis + 1; d < r; d++)
        inner *= od[d];
    onnx_tensor *o;
    if ((rc = onnx__output(k, 0, e0->dtype, r, od, &o)))
        return rc;
    char *dst = o->data;
    for (int64_t a = 0; a < outer; a++)
        for (int64_t j = 0; j < cnt; j++) {
            const onnx_tensor *e = elem(s, j);
            size_t chunk = (size_t)((stack ? 1 : e->dims[axis]) * inner);
            if (chunk)
                memcpy(dst, (const char *)e->data + (size_t)a * chunk, chunk);
            dst += chunk;
        }
    return MD_OK;
}

/* ---- deep copies (containers own their contents) ---- */

static size_t al64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Bytes a deep copy of v needs besides its own header. */
static size_t deep_size(const onnx_tensor *v)
{
    if (v->kind == ONNX_KIND_OPTIONAL)
        return v->data ? al64(sizeof(onnx_tensor)) + deep_size(v->data) : 0;
    if (v->kind != ONNX_KIND_SEQUENCE)
        return al64(bytes_of(v));
    size_t s = al64((size_t)v->dims[0] * sizeof(onnx_tensor));
    for (int64_t j = 0; j < v->dims[0]; j++)
        s += deep_size(&((const onnx_tensor *)v->data)[j]);
    return s;
}

/* dst = v with every byte it refers to copied into *buf (advanced past the copies). */
static void deep_copy(onnx_tensor *dst, const onnx_tensor *v, unsigned char **buf)
{
    *dst = *v;
    if (v->kind == ONNX_KIND_OPTIONAL) {
        if (!v->data)
            return;
        onnx_tensor *in = (onnx_tensor *)(void *)*buf;
        *buf += al64(sizeof *in);
        deep_copy(in, v->data, buf);
        dst->data = in;
    } else if (v->kind == ONNX_KIND_SEQUENCE) {
        onnx_tensor *arr = (onnx_tensor *)(void *)*buf;
        *buf += al64((size_t)v->dims[0] * sizeof *arr);
        for (int64_t j = 0; j < v->dims[0]; j++)
            deep_copy(&arr[j], &((const onnx_tensor *)v->data)[j], buf);
        dst->data = arr;
    } else {
        if (bytes_of(v))
            memcpy(*buf, v->data, bytes_of(v));
        dst->data = *buf;
        *buf += al64(bytes_of(v));
    }
}

static bool has_strings(const onnx_tensor *v)
{
    if (v->kind == ONNX_KIND_OPTIONAL)
        return v->data && has_strings(v->data);
    return v->dtype == ONNX_STRING;
}

int onnx__output_value(onnx_kctx *k, int i, const onnx_tensor *src)
{
    if (has_strings(src))
        return onnx__kfail(k, MD_E_UNSUPPORTED, "string values in containers");
    int64_t one = (int64_t)sizeof(onnx_tensor);
    onnx_tensor *o;
    int rc = onnx__output(k, i, ONNX_UINT8, 1, &one, &o);
    unsigned char *buf = rc ? NULL : onnx__output_extra(k, i, deep_size(src) + 1);
    if (rc || !buf)
        return rc ? rc : MD_E_NOMEM;
    onnx_tensor hdr;
    deep_copy(&hdr, src, &buf);
    *o = hdr; /* the value slot now describes the copy */
    return MD_OK;
}

/* ---- optionals ---- */

static int run_optional(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    const onnx_tensor *x = k->n_in ? k->in[0] : NULL;
    if (x && x->kind == ONNX_KIND_OPTIONAL)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "an optional cannot hold an optional");
    onnx_tensor opt = {.kind = ONNX_KIND_OPTIONAL, .dtype = x ? x->dtype : ONNX_UNDEFINED,
                       .data = (void *)x};
    return onnx__output_value(k, 0, &opt);
}

static int run_opt_has(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    const onnx_tensor *x = k->n_in ? k->in[0] : NULL;
    onnx_tensor *o;
    int rc = onnx__output(k, 0, ONNX_BOOL, 0, NULL, &o);
    if (rc == MD_OK)
        *(uint8_t *)o->data = x && (x->kind != ONNX_KIND_OPTIONAL || x->data != NULL);
    return rc;
}

static int run_opt_get(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    const onnx_tensor *x = k->in[0];
    if (x->kind != ONNX_KIND_OPTIONAL)
        return onnx__output_value(k, 0, x);
    if (!x->data)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "the optional is empty");
    return onnx__output_value(k, 0, x->data);
}

#define SEQ(NAME, LO, I0, I1, ATTRS, FN)                                                    \
    {.domain = "", .op_type = NAME, .opset_min = LO, .min_in = I0, .max_in = I1,            \
     .min_out = 1, .max_out = 1, .attrs = ATTRS, .run = FN, .takes_seq = true}

ONNX_OPS(sequence) = {
    SEQ("SequenceEmpty", 11, 0, 0, "dtype:i", run_empty),
    SEQ("SequenceConstruct", 11, 1, ONNX_VARIADIC, NULL, run_construct),
    SEQ("SequenceInsert", 11, 2, 3, NULL, run_insert),
    SEQ("SequenceErase", 11, 1, 2, NULL, run_erase),
    SEQ("SequenceAt", 11, 2, 2, NULL, run_at),
    SEQ("SequenceLength", 11, 1, 1, NULL, run_length),
    SEQ("SplitToSequence", 11, 1, 2, "axis:i keepdims:i", run_split_to_seq),
    SEQ("ConcatFromSequence", 11, 1, 1, "axis:i new_axis:i", run_concat_from_seq),
    SEQ("Optional", 15, 0, 1, "type:y", run_optional),
    SEQ("OptionalHasElement", 15, 0, 1, NULL, run_opt_has),
    SEQ("OptionalGetElement", 15, 1, 1, NULL, run_opt_get),
    ONNX_OPS_END,
};
