/* control.c - control flow: If, Loop, Scan and SequenceMap.
 *
 * Their subgraphs are loaded as models of their own (load.c); running a branch or a loop body
 * is an ordinary onnx_run of that model, with the node's captured outer values appended to its
 * inputs. Results are copied into the node's outputs, so no value of a sub-run outlives it.
 * A Loop that neither reaches its trip count nor turns its condition false within
 * MAX_ITERATIONS fails instead of hanging a worker, and every iteration checks the run's cancel
 * token (a request past its deadline stops between iterations).
 */
#include <string.h>

#include "onnx/onnx_int.h"

#define MAX_ITERATIONS (1 << 20)
#define MAX_IO 64

/* Output idx = a copy of src (strings deep-copied into memory owned by the output). */
static int copy_out(onnx_kctx *k, int idx, const onnx_tensor *src)
{
    if (src->kind == ONNX_KIND_SEQUENCE || src->kind == ONNX_KIND_OPTIONAL)
        return onnx__output_value(k, idx, src);
    if (src->kind != ONNX_KIND_TENSOR)
        return onnx__kfail(k, MD_E_UNSUPPORTED, "subgraph output %d is not a tensor", idx);
    onnx_tensor *o;
    int rc = onnx__output(k, idx, src->dtype, src->rank, src->dims, &o);
    if (rc)
        return rc;
    int64_t n = onnx_tensor_numel(src);
    if (src->dtype != ONNX_STRING) {
        if (n)
            memcpy(o->data, src->data, (size_t)n * onnx_dtype_size(src->dtype));
        return MD_OK;
    }
    size_t chars = 0;
    for (int64_t i = 0; i < n; i++)
        chars += strlen(((const char *const *)src->data)[i]) + 1;
    char *buf = onnx__output_extra(k, idx, chars + 1);
    if (!buf)
        return MD_E_NOMEM;
    for (int64_t i = 0; i < n; i++) {
        const char *s = ((const char *const *)src->data)[i];
        size_t l = strlen(s) + 1;
        memcpy(buf, s, l);
        ((const char **)o->data)[i] = buf;
        buf += l;
    }
    return MD_OK;
}

/* Run subgraph g on formal[0..nf) followed by the node's captured inputs. */
static int run_sub(onnx_kctx *k, const onnx_attr *a, const onnx_tensor *formal, size_t nf,
                   onnx_result **res)
{
    size_t n_in;
    onnx_model_inputs(a->g, &n_in);
    size_t caps = n_in - nf;
    if (onnx__graph_formal_inputs(a->g) != nf || n_in > MAX_IO)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "subgraph '%s' declares %zu inputs, the node gives %zu",
                           a->name, onnx__graph_formal_inputs(a->g), nf);
    onnx_tensor in[MAX_IO];
    for (size_t i = 0; i < nf; i++)
        in[i] = formal[i];
    for (size_t c = 0; c < caps; c++)
        in[nf + c] = *k->in[a->g_first + (int)c];
    int rc = md_cancel_check(k->cancel, "a subgraph iteration", k->err);
    if (rc != MD_OK)
        return rc;
    onnx_run_opts ro = {.threads = k->threads, .cancel = k->cancel};
    return onnx__run_sub(a->g, in, n_in, &ro, res, k->err);
}

static int run_if(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *c = k->in[0];
    if (onnx_tensor_numel(c) != 1 || c->dtype != ONNX_BOOL)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "cond must be one bool");
    const onnx_attr *a = onnx__attr(n, *(const uint8_t *)c->data ? "then_branch" : "else_branch");
    if (!a || !a->g)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "missing branch");
    onnx_result *r = NULL;
    int rc = run_sub(k, a, NULL, 0, &r);
    if (rc)
        return rc;
    if (onnx_result_count(r) != (size_t)k->n_out)
        rc = onnx__kfail(k, MD_E_INVALID_PARAM, "branch gives %zu outputs for %d",
                         onnx_result_count(r), k->n_out);
    for (int i = 0; !rc && i < k->n_out; i++)
        rc = copy_out(k, i, onnx_result_output(r, (size_t)i));
    onnx_result_free(r);
    return rc;
}

/* One iteration's scan outputs, kept in scratch until the loop ends. */
typedef struct scan_chunk {
    struct scan_chunk *next;
    onnx_tensor t[];
} scan_chunk;

static int stack_scans(onnx_kctx *k, int first, int n_scan, const scan_chunk *head, int64_t iters)
{
    for (int s = 0; s < n_scan; s++) {
        const onnx_tensor *t0 = head ? &head->t[s] : NULL;
        int64_t od[ONNX_MAX_RANK];
        int r = t0 ? t0->rank + 1 : 1;
        if (r > ONNX_MAX_RANK)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "scan output rank too large");
        od[0] = iters;
        for (int d = 1; d < r; d++)
            od[d] = t0->dims[d - 1];
        onnx_tensor *o;
        int rc = onnx__output(k, first + s, t0 ? t0->dtype : ONNX_FLOAT, r, od, &o);
        if (rc)
            return rc;
        size_t bytes = t0 ? (size_t)onnx_tensor_numel(t0) * onnx_dtype_size(t0->dtype) : 0;
        char *dst = o->data;
        for (const scan_chunk *c = head; c; c = c->next, dst += bytes) {
            if (c->t[s].dtype != t0->dtype || c->t[s].rank != t0->rank ||
                memcmp(c->t[s].dims, t0->dims, sizeof(int64_t) * (size_t)t0->rank) != 0)
                return onnx__kfail(k, MD_E_INVALID_PARAM, "scan output %d changes shape", s);
            if (bytes)
                memcpy(dst, c->t[s].data, bytes);
        }
    }
    return MD_OK;
}

/* Copy a sub-run's scan outputs into scratch (the sub-run's memory goes back after it). */
static int keep_scans(onnx_kctx *k, const onnx_result *r, int first, int n_scan, scan_chunk **tail)
{
    scan_chunk *c = onnx__scratch(k, sizeof *c + (size_t)n_scan * sizeof(onnx_tensor));
    if (!c)
        return MD_E_NOMEM;
    c->next = NULL;
    for (int s = 0; s < n_scan; s++) {
        const onnx_tensor *t = onnx_result_output(r, (size_t)(first + s));
        if (t->kind != ONNX_KIND_TENSOR || t->dtype == ONNX_STRING)
            return onnx__kfail(k, MD_E_UNSUPPORTED, "scan outputs must be numeric tensors");
        size_t bytes = (size_t)onnx_tensor_numel(t) * onnx_dtype_size(t->dtype);
        c->t[s] = *t;
        c->t[s].data = onnx__scratch(k, bytes);
        if (!c->t[s].data)
            return MD_E_NOMEM;
        if (bytes)
            memcpy(c->t[s].data, t->data, bytes);
    }
    *tail = c;
    return MD_OK;
}

static int run_loop(const onnx_node *n, onnx_kctx *k)
{
    const onnx_attr *a = onnx__attr(n, "body");
    int n_carried = (a ? a->g_first : k->n_in) - 2;
    size_t body_out = 0;
    if (a && a->g)
        onnx_model_outputs(a->g, &body_out);
    int n_scan = (int)body_out - 1 - n_carried;
    if (!a || !a->g || n_carried < 0 || n_carried + 2 > MAX_IO || n_scan < 0 ||
        k->n_out != n_carried + n_scan)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "body inputs/outputs do not match the node");
    for (int i = 0; i < n_carried; i++)
        if (!k->in[2 + i])
            return onnx__kfail(k, MD_E_INVALID_PARAM, "loop-carried input %d is empty", i);
    const onnx_tensor *M = k->in[0], *C = k->in[1];
    if ((M && (onnx_tensor_numel(M) != 1 || M->dtype != ONNX_INT64)) ||
        (C && (onnx_tensor_numel(C) != 1 || C->dtype != ONNX_BOOL)))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "M must be one int64 and cond one bool");
    int64_t trip = M ? *(const int64_t *)M->data : INT64_MAX, iter = 0;
    uint8_t cond = C ? *(const uint8_t *)C->data : 1;
    onnx_tensor formal[MAX_IO];
    formal[0] = (onnx_tensor){.dtype = ONNX_INT64, .rank = 0, .data = &iter};
    formal[1] = (onnx_tensor){.dtype = ONNX_BOOL, .rank = 0, .data = &cond};
    for (int i = 0; i < n_carried; i++)
        formal[2 + i] = *k->in[2 + i];
    onnx_result *prev = NULL;
    scan_chunk *head = NULL, **tail = &head;
    int rc = MD_OK;
    for (; rc == MD_OK && iter < trip && cond; iter++) {
        if (iter >= MAX_ITERATIONS) {
            rc = onnx__kfail(k, MD_E_INVALID_PARAM, "the loop ran past %d iterations", MAX_ITERATIONS);
            break;
        }
        onnx_result *r = NULL;
        if ((rc = run_sub(k, a, formal, (size_t)(2 + n_carried), &r)))
            break;
        const onnx_tensor *co = onnx_result_output(r, 0);
        if (onnx_tensor_numel(co) != 1 || co->dtype != ONNX_BOOL)
            rc = onnx__kfail(k, MD_E_INVALID_PARAM, "body condition must be one bool");
        else
            cond = *(const uint8_t *)co->data;
        for (int i = 0; rc == MD_OK && i < n_carried; i++)
            formal[2 + i] = *onnx_result_output(r, (size_t)(1 + i));
        if (rc == MD_OK && n_scan && (rc = keep_scans(k, r, 1 + n_carried, n_scan, tail)) == MD_OK)
            tail = &(*tail)->next;
        onnx_result_free(prev); /* the carried values now point into r */
        prev = r;
    }
    for (int i = 0; rc == MD_OK && i < n_carried; i++)
        rc = copy_out(k, i, &formal[2 + i]);
    if (rc == MD_OK)
        rc = stack_scans(k, n_carried, n_scan, head, iter);
    onnx_result_free(prev);
    return rc;
}

/* ---- Scan ---- */

/* Replace t's data by a copy in scratch (the sub-run that made it is about to be freed). */
static int keep_tensor(onnx_kctx *k, onnx_tensor *t)
{
    size_t bytes = (size_t)onnx_tensor_numel(t) * onnx_dtype_size(t->dtype);
    if (t->kind != ONNX_KIND_TENSOR || t->dtype == ONNX_STRING)
        return onnx__kfail(k, MD_E_UNSUPPORTED, "scan values must be numeric tensors");
    void *copy = onnx__scratch(k, bytes);
    if (!copy)
        return MD_E_NOMEM;
    if (bytes)
        memcpy(copy, t->data, bytes);
    t->data = copy;
    return MD_OK;
}

/* Element [i] of x along axis 0, as a view. */
static onnx_tensor slice0(const onnx_tensor *x, int64_t i)
{
    onnx_tensor v = *x;
    int64_t inner = onnx_tensor_numel(x) / (x->dims[0] ? x->dims[0] : 1);
    v.data = (char *)x->data + (size_t)(i * inner) * onnx_dtype_size(x->dtype);
    v.rank = x->rank - 1;
    memmove(v.dims, x->dims + 1, sizeof(int64_t) * (size_t)v.rank);
    return v;
}

/* One scan over L steps: states[0..ns) in, scan inputs xs[0..nx) (each [L, ...]). On return
 * states hold copies of the final states and *scans the per-step outputs (in step order). */
static int scan_core(onnx_kctx *k, const onnx_attr *a, onnx_tensor *states, int ns,
                     const onnx_tensor *xs, int nx, const bool *rev_in, int n_scan,
                     scan_chunk **scans)
{
    int64_t L = nx ? xs[0].dims[0] : 0;
    for (int j = 0; j < nx; j++)
        if (xs[j].rank < 1 || xs[j].dims[0] != L)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "scan inputs differ in length");
    onnx_tensor formal[MAX_IO];
    scan_chunk **tail = scans;
    onnx_result *prev = NULL;
    int rc = MD_OK;
    for (int64_t t = 0; rc == MD_OK && t < L; t++) {
        for (int i = 0; i < ns; i++)
            formal[i] = states[i];
        for (int j = 0; j < nx; j++)
            formal[ns + j] = slice0(&xs[j], rev_in[j] ? L - 1 - t : t);
        onnx_result *r = NULL;
        if ((rc = run_sub(k, a, formal, (size_t)(ns + nx), &r)))
            break;
        if (onnx_result_count(r) != (size_t)(ns + n_scan))
            rc = onnx__kfail(k, MD_E_INVALID_PARAM, "body output count does not match");
        for (int i = 0; rc == MD_OK && i < ns; i++)
            states[i] = *onnx_result_output(r, (size_t)i);
        if (rc == MD_OK && n_scan && (rc = keep_scans(k, r, ns, n_scan, tail)) == MD_OK)
            tail = &(*tail)->next;
        onnx_result_free(prev);
        prev = r;
    }
    for (int i = 0; rc == MD_OK && i < ns; i++)
        rc = keep_tensor(k, &states[i]);
    onnx_result_free(prev);
    return rc;
}

static int prep_scan(onnx_node *n, onnx_prep *p, md_err *err)
{
    (void)p;
    const int64_t *v;
    const char *axes[] = {"scan_input_axes", "scan_output_axes"};
    for (int i = 0; i < 2; i++) {
        size_t c = onnx__attr_ints(n, axes[i], &v);
        for (size_t j = 0; j < c; j++)
            if (v[j] != 0)
                return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, axes[i], "only axis 0 is supported");
    }
    if (onnx__attr_ints(n, "scan_output_directions", &v)) {
        for (size_t j = 0; j < onnx__attr_ints(n, "scan_output_directions", &v); j++)
            if (v[j] != 0)
                return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "scan_output_directions",
                                       "reverse scan outputs are not supported");
    }
    if (onnx__attr_int(n, "num_scan_inputs", 0) <= 0)
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "num_scan_inputs", "must be > 0");
    return MD_OK;
}

static int run_scan(const onnx_node *n, onnx_kctx *k)
{
    const onnx_attr *a = onnx__attr(n, "body");
    int formal_in = a && a->g ? a->g_first : 0;
    int nx = (int)onnx__attr_int(n, "num_scan_inputs", 0), ns = formal_in - nx;
    int n_scan = k->n_out - ns;
    if (!a || !a->g || ns < 0 || n_scan < 0 || ns + nx > MAX_IO)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "inputs/outputs do not match num_scan_inputs");
    bool rev[MAX_IO] = {0};
    const int64_t *dirs;
    size_t nd = onnx__attr_ints(n, "scan_input_directions", &dirs);
    for (int j = 0; j < nx && (size_t)j < nd; j++)
        rev[j] = dirs[j] != 0;
    onnx_tensor st[MAX_IO], xs[MAX_IO];
    for (int i = 0; i < formal_in; i++) {
        if (!k->in[i])
            return onnx__kfail(k, MD_E_INVALID_PARAM, "input %d is empty", i);
        *(i < ns ? &st[i] : &xs[i - ns]) = *k->in[i];
    }
    scan_chunk *sc = NULL;
    int rc = scan_core(k, a, st, ns, xs, nx, rev, n_scan, &sc);
    for (int i = 0; rc == MD_OK && i < ns; i++)
        rc = copy_out(k, i, &st[i]);
    if (rc == MD_OK)
        rc = stack_scans(k, ns, n_scan, sc, nx ? xs[0].dims[0] : 0);
    return rc;
}

/* ---- SequenceMap ---- */

/* Apply the body to each element of the first input (sequence inputs are indexed alongside,
 * tensor inputs passed whole); body output j over all elements becomes output sequence j. */
static int run_seqmap(const onnx_node *n, onnx_kctx *k)
{
    const onnx_attr *a = onnx__attr(n, "body");
    int nf = a && a->g ? a->g_first : 0;
    const onnx_tensor *s0 = k->in[0];
    if (!a || !a->g || nf < 1 || nf > MAX_IO || s0->kind != ONNX_KIND_SEQUENCE)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "the first input must be a sequence");
    int64_t L = s0->dims[0];
    for (int i = 1; i < nf; i++)
        if (!k->in[i] || (k->in[i]->kind == ONNX_KIND_SEQUENCE && k->in[i]->dims[0] != L))
            return onnx__kfail(k, MD_E_INVALID_PARAM, "sequence inputs differ in length");
    int nout = k->n_out;
    onnx_tensor *kept = onnx__scratch(k, (size_t)(L * nout + 1) * sizeof(onnx_tensor));
    const onnx_tensor **el = onnx__scratch(k, (size_t)(L + 1) * sizeof *el);
    if (!kept || !el)
        return MD_E_NOMEM;
    int rc = MD_OK;
    for (int64_t t = 0; rc == MD_OK && t < L; t++) {
        onnx_tensor formal[MAX_IO];
        for (int i = 0; i < nf; i++) {
            const onnx_tensor *x = k->in[i];
            formal[i] = x->kind == ONNX_KIND_SEQUENCE ? ((const onnx_tensor *)x->data)[t] : *x;
        }
        onnx_result *r = NULL;
        if ((rc = run_sub(k, a, formal, (size_t)nf, &r)))
            break;
        if (onnx_result_count(r) != (size_t)nout)
            rc = onnx__kfail(k, MD_E_INVALID_PARAM, "body output count does not match");
        for (int j = 0; rc == MD_OK && j < nout; j++) {
            kept[j * L + t] = *onnx_result_output(r, (size_t)j);
            rc = keep_tensor(k, &kept[j * L + t]);
        }
        onnx_result_free(r);
    }
    for (int j = 0; rc == MD_OK && j < nout; j++) {
        for (int64_t t = 0; t < L; t++)
            el[t] = &kept[j * L + t];
        rc = onnx__output_seq(k, j, L ? kept[j * L].dtype : ONNX_FLOAT, el, L);
    }
    return rc;
}

ONNX_OPS(control) = {
    {.domain = "", .op_type = "If", .opset_min = 1, .min_in = 1, .max_in = 1, .min_out = 1,
     .max_out = ONNX_VARIADIC, .attrs = "then_branch:g else_branch:g", .run = run_if,
     .takes_seq = true},
    /* M and cond may both be left empty, so no input is required by position. */
    {.domain = "", .op_type = "Loop", .opset_min = 1, .min_in = 0, .max_in = ONNX_VARIADIC,
     .min_out = 1, .max_out = ONNX_VARIADIC, .attrs = "body:g", .run = run_loop,
     .takes_seq = true},
    {.domain = "", .op_type = "Scan", .opset_min = 9, .min_in = 1, .max_in = ONNX_VARIADIC,
     .min_out = 1, .max_out = ONNX_VARIADIC,
     .attrs = "body:g num_scan_inputs:i scan_input_axes:I scan_input_directions:I "
              "scan_output_axes:I scan_output_directions:I",
     .prepare = prep_scan, .run = run_scan},
    {.domain = "", .op_type = "SequenceMap", .opset_min = 17, .min_in = 1, .max_in = ONNX_VARIADIC,
     .min_out = 1, .max_out = ONNX_VARIADIC, .attrs = "body:g", .run = run_seqmap,
     .takes_seq = true},
    ONNX_OPS_END,
};
