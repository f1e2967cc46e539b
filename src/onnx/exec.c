/* exec.c - run a loaded model: bind inputs, execute nodes in order, hand back the outputs.
 *
 * A run touches only its own run state (onnx__exec, from plan.c) and reads the model, which
 * is immutable; so any number of runs may go on at once on one model.
 * Invariants:
 *   1. Before node i runs, every value it reads is set (have[v]); values are set only by
 *      binding (inputs, constants) or by onnx__output of their producer.
 *   2. After node i runs, every requested output of i is set, else the run fails (MD_E_INTERNAL):
 *      an operator that forgets an output is a bug, not a crash.
 *   3. Caller input data is never written; outputs that are graph inputs are copied, so the
 *      result never points at the caller's memory.
 */
#include "onnx/model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int onnx__kfail(onnx_kctx *k, int code, const char *fmt, ...)
{
    char detail[220];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    const onnx_node *n = k->node;
    return md_fail(k->err, code, "node", "node '%.60s' (%.40s): %s", n->name, n->op_type, detail);
}

int onnx__output(onnx_kctx *k, int i, int dtype, int rank, const int64_t *dims,
                 onnx_tensor **out)
{
    onnx__exec *e = k->exec;
    const onnx_node *n = k->node;
    *out = NULL;
    if (i < 0 || i >= n->n_out)
        return onnx__kfail(k, MD_E_INTERNAL, "output %d out of range", i);
    size_t es = onnx_dtype_size(dtype);
    int64_t numel = onnx__numel(rank, dims);
    if (es == 0 || numel < 0 || (uint64_t)numel > e->m->max_value_bytes / es)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "output %d has an invalid or too large shape",
                           i);
    int v = n->out[i];
    void *data = onnx__exec_alloc_for(e, v, (size_t)numel * es, k->err);
    if (!data)
        return MD_E_NOMEM;
    onnx_tensor *t = v >= 0 ? &e->vals[v] : &e->tmp_outs[i];
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->rank = rank;
    for (int d = 0; d < rank; d++)
        t->dims[d] = dims[d];
    t->data = data;
    if (v >= 0)
        e->have[v] = true;
    *out = t;
    return MD_OK;
}

void *onnx__output_extra(onnx_kctx *k, int i, size_t bytes)
{
    if (i < 0 || i >= k->node->n_out || bytes > k->exec->m->max_value_bytes) {
        onnx__kfail(k, MD_E_INVALID_PARAM, "bad output memory request");
        return NULL;
    }
    return onnx__exec_alloc_for(k->exec, k->node->out[i], bytes, k->err);
}

void onnx__output_may_hold(onnx_kctx *k, int in_i, size_t off)
{
    const onnx_node *n = k->node;
    if (!k->exec->recording || in_i < 0 || in_i >= n->n_in || !k->in[in_i] || n->n_out < 1 ||
        n->out[0] < 0 || !k->exec->have[n->out[0]])
        return;
    onnx__plan_note_view(k->exec, n->in[in_i], k->in[in_i]->data, n->out[0],
                         k->exec->vals[n->out[0]].data, off);
}

void *onnx__scratch(onnx_kctx *k, size_t bytes)
{
    if (bytes > k->exec->m->max_value_bytes) {
        onnx__kfail(k, MD_E_INVALID_PARAM, "scratch of %zu bytes is over the limit", bytes);
        return NULL;
    }
    return onnx__exec_alloc(k->exec, bytes, k->err);
}

static int check_value(const onnx_tensor *t);

/* A sequence: rank 1, and every element a tensor of the sequence's dtype. */
static int check_seq(const onnx_tensor *s)
{
    if (s->rank != 1 || s->dtype == ONNX_STRING || s->dims[0] < 0 || (s->dims[0] && !s->data))
        return -1;
    const onnx_tensor *el = s->data;
    for (int64_t i = 0; i < s->dims[0]; i++)
        if (el[i].kind != ONNX_KIND_TENSOR || el[i].dtype != s->dtype || check_value(&el[i]))
            return -1;
    return 0;
}

/* Shape and data pointers of a caller's value are usable (recursively for containers). */
static int check_value(const onnx_tensor *t)
{
    if (t->kind == ONNX_KIND_OPTIONAL) { /* data NULL: empty */
        const onnx_tensor *in = t->data;
        return in && (in->kind == ONNX_KIND_OPTIONAL || check_value(in)) ? -1 : 0;
    }
    if (t->kind == ONNX_KIND_SEQUENCE)
        return check_seq(t);
    int64_t numel = onnx_tensor_numel(t);
    return t->kind != ONNX_KIND_TENSOR || numel < 0 || (numel > 0 && !t->data) ? -1 : 0;
}

/* Can a value of kind got fill a slot declared want? -1 is a subgraph's captured outer value
 * (anything); an optional slot also takes a present tensor or sequence (Loop bodies do that). */
static bool kind_fits(int want, int got)
{
    return want < 0 || want == got || (want == ONNX_KIND_OPTIONAL && got != ONNX_KIND_SEQ_MAP);
}

/* One input against its declaration: kind, dtype, then rank and fixed dims for tensors. */
static int check_input(const onnx_value_info *vi, const onnx_tensor *t, md_err *err)
{
    if (!kind_fits(vi->kind, t->kind) || (vi->dtype != ONNX_UNDEFINED && t->dtype != vi->dtype))
        return md_fail(err, MD_E_INVALID_PARAM, vi->name, "input '%.80s' must be %s%s, got %s%s",
                       vi->name, vi->kind == ONNX_KIND_TENSOR ? "" : "a container of ",
                       onnx_dtype_name(vi->dtype), t->kind == ONNX_KIND_TENSOR ? "" : "a container of ",
                       onnx_dtype_name(t->dtype));
    if (check_value(t))
        return md_fail(err, MD_E_INVALID_PARAM, vi->name,
                       "input '%.80s' has a bad shape, data pointer or element", vi->name);
    if (t->kind != ONNX_KIND_TENSOR || vi->kind != ONNX_KIND_TENSOR)
        return MD_OK; /* containers: the declared shape is their elements', unknown here */
    if (vi->rank >= 0 && vi->rank != t->rank)
        return md_fail(err, MD_E_INVALID_PARAM, vi->name, "input '%.80s' must have rank %d, got %d",
                       vi->name, vi->rank, t->rank);
    for (int d = 0; vi->rank >= 0 && d < vi->rank; d++)
        if (vi->dims[d] >= 0 && vi->dims[d] != t->dims[d])
            return md_fail(err, MD_E_INVALID_PARAM, vi->name,
                           "input '%.80s' dim %d must be %lld, got %lld", vi->name, d,
                           (long long)vi->dims[d], (long long)t->dims[d]);
    return MD_OK;
}

/* Inputs must match the declared kind, dtype, rank and fixed dims. */
static int check_inputs(const onnx_model *m, const onnx_tensor *in, size_t n, md_err *err)
{
    if (n != m->n_inputs)
        return md_fail(err, MD_E_INVALID_PARAM, "inputs", "the model takes %zu inputs, got %zu",
                       m->n_inputs, n);
    for (size_t i = 0; i < n; i++) {
        int rc = check_input(&m->inputs[i], &in[i], err);
        if (rc)
            return rc;
    }
    return MD_OK;
}

static void bind(onnx__exec *e, const onnx_tensor *in)
{
    const onnx_model *m = e->m;
    for (int v = 0; v < m->n_values; v++) {
        const onnx__value *val = &m->values[v];
        e->have[v] = false;
        if (val->konst) {
            e->vals[v] = *val->konst;
            e->have[v] = true;
        } else if (val->graph_input >= 0) {
            e->vals[v] = in[val->graph_input];
            e->have[v] = true;
        }
    }
}

/* A value the model declares (value_info, graph outputs) must come out with that dtype, rank
 * and fixed dims: a mismatch means the model and the engine disagree, and the run stops with
 * a message naming the value instead of passing wrong shapes on. */
static int check_declared(const onnx_model *m, const onnx_node *n, int v, const onnx_tensor *t,
                          md_err *err)
{
    const onnx_value_info *vi = m->values[v].info;
    if (!vi || vi->kind != ONNX_KIND_TENSOR || t->kind != ONNX_KIND_TENSOR)
        return MD_OK;
    bool bad = vi->dtype != ONNX_UNDEFINED && vi->dtype != t->dtype;
    bad = bad || (vi->rank >= 0 && vi->rank != t->rank);
    for (int d = 0; !bad && vi->rank >= 0 && d < vi->rank; d++)
        bad = vi->dims[d] >= 0 && vi->dims[d] != t->dims[d];
    if (!bad)
        return MD_OK;
    return md_fail(err, MD_E_MODEL_INVALID, "node",
                   "node '%.60s' (%.40s) made '%.60s' as %s of rank %d, but the model declares %s "
                   "of rank %d with other dims", n->name, n->op_type, m->values[v].name,
                   onnx_dtype_name(t->dtype), t->rank, onnx_dtype_name(vi->dtype), vi->rank);
}

static int exec_node(onnx__exec *e, int idx, md_err *err)
{
    const onnx_model *m = e->m;
    const onnx_node *n = &m->nodes[idx];
    for (int j = 0; j < n->n_in; j++) {
        int v = n->in[j];
        if (v >= 0 && !e->have[v])
            return md_fail(err, MD_E_INTERNAL, "node", "node '%.60s' reads an unset value",
                           n->name);
        e->in_ptrs[j] = v >= 0 ? &e->vals[v] : NULL;
        if (v >= 0 && (e->vals[v].kind == ONNX_KIND_SEQUENCE ||
                       e->vals[v].kind == ONNX_KIND_OPTIONAL) && !n->op->takes_seq)
            return md_fail(err, MD_E_INVALID_PARAM, "node",
                           "node '%.60s' (%.40s) got a sequence or optional where a tensor is "
                           "needed", n->name, n->op_type);
    }
    onnx_kctx k = {.node = n, .n_in = n->n_in, .in = e->in_ptrs, .n_out = n->n_out,
                   .threads = e->threads, .cancel = e->cancel, .err = err, .exec = e};
    e->cur_node = idx;
    int rc = n->op->run(n, &k);
    if (rc) /* the op's detail wins (a failed scratch request says why) */
        return err->code != MD_OK ? err->code
                                  : md_fail(err, rc, "node", "node '%.60s' failed", n->name);
    for (int o = 0; o < n->n_out; o++) {
        int v = n->out[o];
        if (v >= 0 && !e->have[v])
            return md_fail(err, MD_E_INTERNAL, "node", "node '%.60s' (%.40s) left output %d unset",
                           n->name, n->op_type, o);
        if (v >= 0 && (rc = check_declared(e->m, n, v, &e->vals[v], err)))
            return rc;
    }
    return MD_OK;
}

/* Graph outputs; copy those that are caller inputs (invariant 3). */
static int collect_outputs(onnx__exec *e, md_err *err)
{
    const onnx_model *m = e->m;
    for (size_t i = 0; i < m->n_outputs; i++) {
        int v = m->output_vals[i];
        if (!e->have[v])
            return md_fail(err, MD_E_INTERNAL, "output", "output %zu was not computed", i);
        e->outs[i] = e->vals[v];
        if (m->values[v].graph_input < 0)
            continue;
        if (e->outs[i].kind == ONNX_KIND_SEQUENCE || e->outs[i].kind == ONNX_KIND_OPTIONAL)
            return md_fail(err, MD_E_UNSUPPORTED, "output",
                           "graph output %zu passes a sequence input through unchanged", i);
        size_t bytes = (size_t)onnx_tensor_numel(&e->outs[i]) * onnx_dtype_size(e->outs[i].dtype);
        e->cur_node = m->n_nodes;
        void *copy = onnx__exec_alloc_for(e, v, bytes, err);
        if (!copy)
            return MD_E_NOMEM;
        if (bytes)
            memcpy(copy, e->outs[i].data, bytes);
        e->outs[i].data = copy;
    }
    return MD_OK;
}

/* Before node i: stop when the token says so, and report "node i/n" (top graph only). */
static int node_check(const onnx__exec *e, int i, bool report, md_err *err)
{
    if (!e->cancel)
        return MD_OK;
    const onnx_model *m = e->m;
    char stage[96];
    snprintf(stage, sizeof stage, "node %d/%d '%.40s'", i + 1, m->n_nodes, m->nodes[i].name);
    if (report)
        md_cancel_progress(e->cancel, (double)i / m->n_nodes, stage);
    return md_cancel_check(e->cancel, stage, err);
}

static int run(const onnx_model *m, const onnx_tensor *inputs, size_t n_inputs,
               const onnx_run_opts *opts, bool report, onnx_result **out, md_err *err)
{
    *out = NULL;
    md_err local;
    if (!err)
        err = &local;
    md_err_clear(err);
    int rc = check_inputs(m, inputs, n_inputs, err);
    if (rc)
        return rc;
    onnx__exec *e;
    if ((rc = onnx__plan_acquire(m, inputs, &e, err)))
        return rc;
    e->threads = opts && opts->threads > 0 ? opts->threads : m->threads;
    e->cancel = opts ? opts->cancel : NULL;
    bind(e, inputs);
    for (int i = 0; i < m->n_nodes && rc == MD_OK; i++) {
        if (m->nodes[i].absorbed)
            continue;
        rc = node_check(e, i, report, err);
        if (rc == MD_OK)
            rc = exec_node(e, i, err);
        if (rc == MD_OK)
            onnx__exec_node_done(e, i);
    }
    if (rc == MD_OK && report)
        md_cancel_progress(e->cancel, 1.0, "done");
    if (rc == MD_OK)
        rc = collect_outputs(e, err);
    if (rc) {
        e->recording = false;
        onnx__plan_release(e);
        return rc;
    }
    if (e->recording)
        onnx__plan_finish(e, inputs);
    *out = (onnx_result *)e;
    return MD_OK;
}

int onnx_run(const onnx_model *m, const onnx_tensor *inputs, size_t n_inputs,
             const onnx_run_opts *opts, onnx_result **out, md_err *err)
{
    return run(m, inputs, n_inputs, opts, true, out, err);
}

int onnx__run_sub(const onnx_model *g, const onnx_tensor *inputs, size_t n_inputs,
                  const onnx_run_opts *opts, onnx_result **out, md_err *err)
{
    return run(g, inputs, n_inputs, opts, false, out, err);
}

size_t onnx_result_count(const onnx_result *r) { return r->e.m->n_outputs; }

const onnx_tensor *onnx_result_output(const onnx_result *r, size_t i)
{
    return i < r->e.m->n_outputs ? &r->e.outs[i] : NULL;
}

void onnx_result_free(onnx_result *r)
{
    if (r)
        onnx__plan_release(&r->e);
}
