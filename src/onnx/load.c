/* load.c - parse and validate an ONNX model into an immutable onnx_model.
 *
 * Everything in a model file is untrusted. Loading checks, in this order: the protobuf decodes;
 * the opset imports; every initializer (dtype, dims, data length); graph inputs and outputs
 * (tensor types, dims); every node (operator known for its opset, input/output counts, each
 * attribute known and of the right type); that every value has exactly one producer; a
 * topological order (cycles rejected); then each operator's own prepare step, which checks
 * attribute values and static shapes it can see. A model that loads can be run.
 * Invariants (see also onnx_int.h):
 *   1. On failure nothing leaks: all memory hangs off m->arena or m->proto, freed together.
 *   2. Node order in m->nodes is topological; node.index equals its position.
 */
#include "onnx/model.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnx_proto/onnx.pb-c.h"

#define MAX_OPSET_AI 22
#define MAX_OPSET_ML 5

#define MAX_GRAPH_DEPTH 8

struct onnx_prep {
    onnx_model *m;
    const Onnx__ModelProto *mp; /* opset imports */
    struct onnx_prep *parent;   /* the enclosing graph while a subgraph loads, else NULL */
    int depth;
    size_t inputs_cap;          /* room in m->inputs for formal + captured inputs */
    const char *ext_dir;
    size_t max_tensor;
    /* name -> value id hash (open addressing, capacity a power of two) */
    int *slots;
    size_t cap;
    int *consumers_n; /* per value: number of node inputs reading it */
};

/* ---- name table ---- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static int find_value(const onnx_prep *p, const char *name)
{
    for (size_t i = hash_str(name) & (p->cap - 1);; i = (i + 1) & (p->cap - 1)) {
        int v = p->slots[i];
        if (v < 0)
            return -1;
        if (strcmp(p->m->values[v].name, name) == 0)
            return v;
    }
}

/* Add a value named name; -1 when the name already exists (a second producer). */
static int add_value(onnx_prep *p, const char *name)
{
    if (find_value(p, name) >= 0)
        return -1;
    onnx_model *m = p->m;
    int id = m->n_values++;
    onnx__value *v = &m->values[id];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->producer = -1;
    v->graph_input = -1;
    v->last_use = -1;
    size_t i = hash_str(name) & (p->cap - 1);
    while (p->slots[i] >= 0)
        i = (i + 1) & (p->cap - 1);
    p->slots[i] = id;
    return id;
}

/* A name used in a subgraph but defined in an enclosing graph becomes an extra (captured)
 * input of the subgraph, after its formal inputs; the node owning the subgraph reads the outer
 * value (see link_inputs), which keeps topological order and lifetimes right. */
static int resolve(onnx_prep *p, const char *name)
{
    int v = find_value(p, name);
    if (v >= 0 || !p->parent || resolve(p->parent, name) < 0)
        return v;
    onnx_model *m = p->m;
    if (m->n_inputs >= p->inputs_cap)
        return -1;
    v = add_value(p, name);
    if (v < 0)
        return -1;
    onnx_value_info *vi = &m->inputs[m->n_inputs];
    memset(vi, 0, sizeof *vi);
    vi->name = name;
    vi->rank = -1; /* any kind, type and shape: the outer value decides */
    vi->kind = -1;
    m->values[v].graph_input = (int)m->n_inputs;
    m->input_vals[m->n_inputs++] = v;
    return v;
}

/* ---- failures ---- */

int onnx__prep_fail(const onnx_node *n, md_err *err, int code, const char *field,
                    const char *fmt, ...)
{
    char detail[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return md_fail(err, code, field, "node '%.60s' (%.40s%s%.40s, opset %d): %s", n->name,
                   n->domain[0] ? n->domain : "", n->domain[0] ? "." : "", n->op_type,
                   n->opset, detail);
}

static int invalid(md_err *err, const char *field, const char *fmt, const char *a)
{
    return md_fail(err, MD_E_MODEL_INVALID, field, fmt, a ? a : "");
}

/* ---- value types ---- */

static int parse_shape(const Onnx__TensorShapeProto *sp, onnx_value_info *vi, md_err *err)
{
    if (!sp) {
        vi->rank = -1;
        return MD_OK;
    }
    if (sp->n_dim > ONNX_MAX_RANK)
        return invalid(err, "shape", "value '%.80s' has rank above 8", vi->name);
    vi->rank = (int)sp->n_dim;
    for (size_t i = 0; i < sp->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = sp->dim[i];
        vi->dims[i] = -1;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return invalid(err, "shape", "value '%.80s' has a negative dimension", vi->name);
            vi->dims[i] = d->dim_value;
        } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM) {
            vi->dim_names[i] = d->dim_param;
        }
    }
    return MD_OK;
}

/* Fill vi from a ValueInfoProto; tensors, and sequence(map) for ZipMap outputs. */
static int parse_value_info(const Onnx__ValueInfoProto *vp, onnx_value_info *vi, md_err *err)
{
    memset(vi, 0, sizeof *vi);
    vi->name = vp->name ? vp->name : "";
    vi->rank = -1;
    const Onnx__TypeProto *t = vp->type;
    if (!t)
        return MD_OK; /* untyped (allowed for intermediates): unknown */
    if (t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && t->tensor_type) {
        vi->dtype = t->tensor_type->has_elem_type ? t->tensor_type->elem_type : 0;
        if (vi->dtype != ONNX_UNDEFINED && onnx_dtype_size(vi->dtype) == 0)
            return md_fail(err, MD_E_UNSUPPORTED, "type",
                           "value '%.80s' has unsupported element type %d", vi->name,
                           vi->dtype);
        return parse_shape(t->tensor_type->shape, vi, err);
    }
    if (t->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE && t->sequence_type &&
        t->sequence_type->elem_type &&
        t->sequence_type->elem_type->value_case == ONNX__TYPE_PROTO__VALUE_MAP_TYPE) {
        const Onnx__TypeProto__Map *mp = t->sequence_type->elem_type->map_type;
        vi->kind = ONNX_KIND_SEQ_MAP;
        vi->rank = 2;
        vi->dims[0] = vi->dims[1] = -1;
        if (mp && mp->value_type && mp->value_type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
            vi->dtype = mp->value_type->tensor_type->elem_type;
        return MD_OK;
    }
    if (t->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE && t->sequence_type &&
        t->sequence_type->elem_type &&
        t->sequence_type->elem_type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE &&
        t->sequence_type->elem_type->tensor_type) {
        const Onnx__TypeProto__Tensor *et = t->sequence_type->elem_type->tensor_type;
        vi->kind = ONNX_KIND_SEQUENCE;
        vi->dtype = et->has_elem_type ? et->elem_type : 0;
        vi->rank = -1; /* the element shapes may differ */
        if (vi->dtype == ONNX_STRING || (vi->dtype && onnx_dtype_size(vi->dtype) == 0))
            return md_fail(err, MD_E_UNSUPPORTED, "type",
                           "value '%.80s' is a sequence of unsupported elements", vi->name);
        return MD_OK;
    }
    if (t->value_case == ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE && t->optional_type &&
        t->optional_type->elem_type) {
        const Onnx__TypeProto *in = t->optional_type->elem_type;
        if (in->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE && in->sequence_type &&
            in->sequence_type->elem_type)
            in = in->sequence_type->elem_type;
        if (in->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && in->tensor_type) {
            vi->kind = ONNX_KIND_OPTIONAL;
            vi->dtype = in->tensor_type->has_elem_type ? in->tensor_type->elem_type : 0;
            vi->rank = -1;
            if (vi->dtype == ONNX_STRING || (vi->dtype && onnx_dtype_size(vi->dtype) == 0))
                return md_fail(err, MD_E_UNSUPPORTED, "type",
                               "value '%.80s' is an optional of unsupported elements", vi->name);
            return MD_OK;
        }
    }
    return md_fail(err, MD_E_UNSUPPORTED, "type",
                   "value '%.80s' is not a tensor, a sequence of tensors or an optional of "
                   "either (maps are not supported)", vi->name);
}

/* ---- attributes ---- */

static int attr_type(const Onnx__AttributeProto *ap)
{
    if (ap->has_type)
        return ap->type;
    /* Old exporters leave type unset: infer it from the field present. */
    if (ap->n_floats) return ONNX_ATTR_FLOATS;
    if (ap->n_ints) return ONNX_ATTR_INTS;
    if (ap->n_strings) return ONNX_ATTR_STRINGS;
    if (ap->t) return ONNX_ATTR_TENSOR;
    if (ap->g) return ONNX_ATTR_GRAPH;
    if (ap->has_s) return ONNX_ATTR_STRING;
    if (ap->has_i) return ONNX_ATTR_INT;
    if (ap->has_f) return ONNX_ATTR_FLOAT;
    if (ap->tp) return ONNX_ATTR_TYPE_PROTO;
    return ONNX_ATTR_UNDEFINED;
}

/* Type letter the op's spec declares for attribute name, or 0 when not declared. */
static char spec_type(const char *spec, const char *name)
{
    size_t nl = strlen(name);
    for (const char *s = spec; s && *s;) {
        while (*s == ' ')
            s++;
        const char *colon = strchr(s, ':');
        if (!colon)
            break;
        if ((size_t)(colon - s) == nl && strncmp(s, name, nl) == 0)
            return colon[1];
        s = colon + 2;
    }
    return 0;
}

static int type_letter_matches(char want, int type)
{
    static const char letters[] = {0, 'f', 'i', 's', 't', 'g', 'F', 'I', 'S', 'T', 0, 0, 0, 'y'};
    return type >= 0 && type <= ONNX_ATTR_TYPE_PROTO && letters[type] == want;
}

static int load_subgraph(onnx_prep *p, const onnx_node *n, const Onnx__GraphProto *g,
                         const onnx_model **out, md_err *err);

static int convert_attr(onnx_prep *p, onnx_node *n, const Onnx__AttributeProto *ap,
                        onnx_attr *a, md_err *err)
{
    md_arena *ar = p->m->arena;
    memset(a, 0, sizeof *a);
    a->name = ap->name ? ap->name : "";
    a->type = attr_type(ap);
    if (ap->ref_attr_name)
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, a->name,
                               "attribute '%.40s' refers to a function attribute", a->name);
    char want = spec_type(n->op->attrs, a->name);
    if (!want)
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, a->name,
                               "attribute '%.40s' is not supported", a->name);
    if (!type_letter_matches(want, a->type))
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, a->name,
                               "attribute '%.40s' has the wrong type (%d)", a->name, a->type);
    a->f = ap->f;
    a->i = ap->i;
    a->floats = ap->floats;
    a->n_floats = ap->n_floats;
    a->ints = ap->ints;
    a->n_ints = ap->n_ints;
    if (a->type == ONNX_ATTR_STRING) {
        a->s = ap->s.len ? md_arena_strndup(ar, (const char *)ap->s.data, ap->s.len)
                         : md_arena_strdup(ar, "");
        a->s_len = ap->s.len;
        if (!a->s)
            return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    }
    if (a->type == ONNX_ATTR_STRINGS) {
        const char **v = md_arena_calloc(ar, ap->n_strings + 1, sizeof *v);
        if (!v)
            return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
        for (size_t i = 0; i < ap->n_strings; i++) {
            v[i] = ap->strings[i].len ? md_arena_strndup(ar, (const char *)ap->strings[i].data,
                                                         ap->strings[i].len)
                                      : md_arena_strdup(ar, "");
            if (!v[i])
                return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
        }
        a->strings = v;
        a->n_strings = ap->n_strings;
    }
    if (a->type == ONNX_ATTR_GRAPH) {
        if (!ap->g)
            return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, a->name, "graph attribute empty");
        return load_subgraph(p, n, ap->g, &a->g, err);
    }
    if (a->type == ONNX_ATTR_TENSOR) {
        if (!ap->t)
            return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, a->name, "tensor attribute empty");
        onnx_tensor *t = md_arena_calloc(ar, 1, sizeof *t);
        if (!t)
            return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
        int rc = onnx__tensor_from_proto(ap->t, ar, p->ext_dir, p->max_tensor, t, err);
        if (rc)
            return rc;
        a->t = t;
    }
    return MD_OK;
}

/* ---- opsets ---- */

static int opset_of(const Onnx__ModelProto *mp, const char *domain)
{
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const char *d = mp->opset_import[i]->domain ? mp->opset_import[i]->domain : "";
        if (strcmp(d, "ai.onnx") == 0)
            d = "";
        if (strcmp(d, domain) == 0)
            return (int)mp->opset_import[i]->version;
    }
    return -1;
}

static int check_opsets(const Onnx__ModelProto *mp, md_err *err)
{
    if (mp->n_opset_import == 0)
        return invalid(err, "opset_import", "the model imports no opset%s", NULL);
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        const char *d = o->domain ? o->domain : "";
        int max = (!*d || strcmp(d, "ai.onnx") == 0) ? MAX_OPSET_AI
                  : strcmp(d, "ai.onnx.ml") == 0    ? MAX_OPSET_ML
                                                    : 1000;
        if (!o->has_version || o->version < 1 || o->version > max)
            return md_fail(err, MD_E_UNSUPPORTED, "opset_import",
                           "opset %lld of domain '%.60s' is not supported (1..%d)",
                           (long long)o->version, *d ? d : "ai.onnx", max);
    }
    return MD_OK;
}

/* ---- graph pieces ---- */

static int load_initializers(onnx_prep *p, const Onnx__GraphProto *g, md_err *err)
{
    onnx_model *m = p->m;
    if (g->n_sparse_initializer)
        return md_fail(err, MD_E_UNSUPPORTED, "sparse_initializer",
                       "sparse initializers are not supported");
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *tp = g->initializer[i];
        if (!tp->name || !*tp->name)
            return invalid(err, "initializer", "an initializer has no name%s", NULL);
        onnx_tensor *t = md_arena_calloc(m->arena, 1, sizeof *t);
        if (!t)
            return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
        int rc = onnx__tensor_from_proto(tp, m->arena, p->ext_dir, p->max_tensor, t, err);
        if (rc)
            return rc;
        int id = add_value(p, tp->name);
        if (id < 0)
            return invalid(err, "initializer", "initializer '%.80s' is defined twice", tp->name);
        m->values[id].konst = t;
    }
    return MD_OK;
}

static int load_inputs(onnx_prep *p, const Onnx__GraphProto *g, md_err *err)
{
    onnx_model *m = p->m;
    m->inputs = md_arena_calloc(m->arena, p->inputs_cap + 1, sizeof *m->inputs);
    m->input_vals = md_arena_calloc(m->arena, p->inputs_cap + 1, sizeof(int));
    if (!m->inputs || !m->input_vals)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < g->n_input; i++) {
        const Onnx__ValueInfoProto *vp = g->input[i];
        if (!vp->name || !*vp->name)
            return invalid(err, "input", "a graph input has no name%s", NULL);
        int v = find_value(p, vp->name);
        if (v >= 0 && m->values[v].konst)
            continue; /* initializer listed as input (IR < 4): a constant, not an input */
        if (v >= 0)
            return invalid(err, "input", "graph input '%.80s' is listed twice", vp->name);
        onnx_value_info *vi = &m->inputs[m->n_inputs];
        int rc = parse_value_info(vp, vi, err);
        if (rc)
            return rc;
        /* Subgraph inputs (Loop bodies) may be untyped: the node supplies them. */
        if (vi->kind == ONNX_KIND_SEQ_MAP || (vi->dtype == ONNX_UNDEFINED && !p->parent))
            return md_fail(err, MD_E_UNSUPPORTED, "input",
                           "graph input '%.80s' must be a typed tensor", vp->name);
        v = add_value(p, vp->name);
        m->values[v].graph_input = (int)m->n_inputs;
        m->values[v].info = vi;
        m->input_vals[m->n_inputs++] = v;
    }
    m->n_formal_inputs = m->n_inputs;
    return MD_OK;
}

static int load_node(onnx_prep *p, const Onnx__NodeProto *np, onnx_node *n, md_err *err)
{
    const Onnx__ModelProto *mp = p->mp;
    onnx_model *m = p->m;
    memset(n, 0, sizeof *n);
    n->name = np->name ? np->name : "";
    n->op_type = np->op_type ? np->op_type : "";
    n->domain = np->domain ? np->domain : "";
    if (strcmp(n->domain, "ai.onnx") == 0)
        n->domain = "";
    n->opset = opset_of(mp, n->domain);
    if (n->opset < 0)
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "domain",
                               "the model does not import the node's domain");
    n->op = onnx__find_op(n->domain, n->op_type, n->opset);
    if (!n->op)
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "op_type",
                               "operator '%.60s' is not supported at this opset", n->op_type);
    if ((int)np->n_input < n->op->min_in || (int)np->n_input > n->op->max_in ||
        (int)np->n_output < n->op->min_out || (int)np->n_output > n->op->max_out)
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "input",
                               "%zu inputs / %zu outputs; expected %d..%d / %d..%d",
                               np->n_input, np->n_output, n->op->min_in, n->op->max_in,
                               n->op->min_out, n->op->max_out);
    n->n_in = (int)np->n_input;
    n->n_out = (int)np->n_output;
    n->in = md_arena_calloc(m->arena, (size_t)n->n_in + 1, sizeof(int));
    n->out = md_arena_calloc(m->arena, (size_t)n->n_out + 1, sizeof(int));
    n->attrs = md_arena_calloc(m->arena, np->n_attribute + 1, sizeof *n->attrs);
    if (!n->in || !n->out || !n->attrs)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    n->n_attrs = (int)np->n_attribute;
    for (size_t i = 0; i < np->n_attribute; i++) {
        for (size_t j = 0; j < i; j++)
            if (strcmp(np->attribute[i]->name ? np->attribute[i]->name : "",
                       np->attribute[j]->name ? np->attribute[j]->name : "") == 0)
                return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "attribute",
                                       "attribute '%.40s' given twice", np->attribute[i]->name);
        int rc = convert_attr(p, n, np->attribute[i], &n->attrs[i], err);
        if (rc)
            return rc;
    }
    for (int i = 0; i < n->n_out; i++) {
        const char *o = np->output[i];
        n->out[i] = -1;
        if (!o || !*o)
            continue;
        int v = add_value(p, o);
        if (v < 0)
            return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "output",
                                   "value '%.60s' has more than one producer", o);
        n->out[i] = v;
    }
    return MD_OK;
}

/* Outer values a node's subgraphs read become extra inputs of the node, after its own. */
static int link_captures(onnx_prep *p, onnx_node *n, md_err *err)
{
    int extra = 0;
    for (int a = 0; a < n->n_attrs; a++)
        if (n->attrs[a].g) {
            extra += (int)(n->attrs[a].g->n_inputs - n->attrs[a].g->n_formal_inputs);
            n->attrs[a].g_first = n->n_in; /* also right when it captures nothing */
        }
    if (!extra)
        return MD_OK;
    int *in = md_arena_calloc(p->m->arena, (size_t)(n->n_in + extra) + 1, sizeof(int));
    if (!in)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    memcpy(in, n->in, sizeof(int) * (size_t)n->n_in);
    int k = n->n_in;
    for (int a = 0; a < n->n_attrs; a++) {
        onnx_attr *at = &n->attrs[a];
        if (!at->g)
            continue;
        at->g_first = k;
        for (size_t c = at->g->n_formal_inputs; c < at->g->n_inputs; c++) {
            int v = resolve(p, at->g->inputs[c].name);
            if (v < 0)
                return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, at->name,
                                       "subgraph reads '%.60s', which is produced by nothing",
                                       at->g->inputs[c].name);
            in[k++] = v;
            p->consumers_n[v]++;
        }
    }
    n->in = in;
    n->n_in = k;
    return MD_OK;
}

/* Resolve input names (after every producer is known). */
static int link_inputs(onnx_prep *p, const Onnx__NodeProto *np, onnx_node *n, md_err *err)
{
    for (int i = 0; i < n->n_in; i++) {
        const char *s = np->input[i];
        n->in[i] = -1;
        if ((!s || !*s) && i < n->op->min_in)
            return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "input",
                                   "required input %d is empty", i);
        if (!s || !*s)
            continue;
        int v = resolve(p, s);
        if (v < 0)
            return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "input",
                                   "input '%.60s' is produced by nothing", s);
        n->in[i] = v;
        p->consumers_n[v]++;
    }
    return link_captures(p, n, err);
}

/* Kahn's algorithm: order[] gets node indices in a valid execution order. */
static int topo_sort(onnx_model *m, const onnx_node *nodes, int *order, md_err *err)
{
    int nn = m->n_nodes;
    int *indeg = calloc((size_t)nn + 1, sizeof(int));
    int *start = calloc((size_t)m->n_values + 2, sizeof(int));
    int total = 0;
    for (int i = 0; i < nn; i++)
        total += nodes[i].n_in;
    int *adj = calloc((size_t)total + 1, sizeof(int));
    int rc = MD_OK;
    if (!indeg || !start || !adj) {
        rc = md_fail(err, MD_E_NOMEM, NULL, "out of memory");
        goto out;
    }
    /* CSR of value -> consuming nodes. */
    for (int i = 0; i < nn; i++)
        for (int j = 0; j < nodes[i].n_in; j++)
            if (nodes[i].in[j] >= 0)
                start[nodes[i].in[j] + 1]++;
    for (int v = 0; v < m->n_values; v++)
        start[v + 1] += start[v];
    int *fill = calloc((size_t)m->n_values + 1, sizeof(int));
    if (!fill) {
        rc = md_fail(err, MD_E_NOMEM, NULL, "out of memory");
        goto out;
    }
    for (int i = 0; i < nn; i++)
        for (int j = 0; j < nodes[i].n_in; j++) {
            int v = nodes[i].in[j];
            if (v < 0)
                continue;
            adj[start[v] + fill[v]++] = i;
            if (m->values[v].producer >= 0)
                indeg[i]++;
        }
    free(fill);
    int head = 0, tail = 0;
    for (int i = 0; i < nn; i++)
        if (indeg[i] == 0)
            order[tail++] = i;
    while (head < tail) {
        const onnx_node *n = &nodes[order[head++]];
        for (int o = 0; o < n->n_out; o++) {
            int v = n->out[o];
            if (v < 0)
                continue;
            for (int k = start[v]; k < start[v + 1]; k++)
                if (--indeg[adj[k]] == 0)
                    order[tail++] = adj[k];
        }
    }
    if (tail != nn) {
        for (int i = 0; i < nn; i++)
            if (indeg[i] > 0) {
                rc = md_fail(err, MD_E_MODEL_INVALID, "node",
                             "the graph has a cycle through node '%.80s' (%.40s)",
                             nodes[i].name, nodes[i].op_type);
                break;
            }
    }
out:
    free(indeg);
    free(start);
    free(adj);
    return rc;
}

static int load_nodes(onnx_prep *p, const Onnx__GraphProto *g, md_err *err)
{
    onnx_model *m = p->m;
    size_t nn = g->n_node;
    onnx_node *tmp = calloc(nn + 1, sizeof *tmp);
    int *order = calloc(nn + 1, sizeof(int));
    int rc = (tmp && order) ? MD_OK : md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    for (size_t i = 0; rc == MD_OK && i < nn; i++)
        rc = load_node(p, g->node[i], &tmp[i], err);
    m->n_nodes = (int)nn;
    for (size_t i = 0; rc == MD_OK && i < nn; i++)
        for (int o = 0; o < tmp[i].n_out; o++)
            if (tmp[i].out[o] >= 0)
                m->values[tmp[i].out[o]].producer = (int)i;
    for (size_t i = 0; rc == MD_OK && i < nn; i++)
        rc = link_inputs(p, g->node[i], &tmp[i], err);
    if (rc == MD_OK)
        rc = topo_sort(m, tmp, order, err);
    if (rc == MD_OK) {
        m->nodes = md_arena_calloc(m->arena, nn + 1, sizeof *m->nodes);
        if (!m->nodes)
            rc = md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; rc == MD_OK && i < nn; i++) {
        m->nodes[i] = tmp[order[i]];
        m->nodes[i].index = (int)i;
        for (int o = 0; o < m->nodes[i].n_out; o++)
            if (m->nodes[i].out[o] >= 0)
                m->values[m->nodes[i].out[o]].producer = (int)i;
        if (m->nodes[i].n_in > m->max_in)
            m->max_in = m->nodes[i].n_in;
        if (m->nodes[i].n_out > m->max_out)
            m->max_out = m->nodes[i].n_out;
    }
    free(tmp);
    free(order);
    return rc;
}

static int load_outputs(onnx_prep *p, const Onnx__GraphProto *g, md_err *err)
{
    onnx_model *m = p->m;
    if (g->n_output == 0)
        return invalid(err, "output", "the graph has no outputs%s", NULL);
    m->outputs = md_arena_calloc(m->arena, g->n_output, sizeof *m->outputs);
    m->output_vals = md_arena_calloc(m->arena, g->n_output, sizeof(int));
    if (!m->outputs || !m->output_vals)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < g->n_output; i++) {
        int rc = parse_value_info(g->output[i], &m->outputs[i], err);
        if (rc)
            return rc;
        int v = find_value(p, m->outputs[i].name);
        if (v < 0)
            return invalid(err, "output", "graph output '%.80s' is produced by nothing",
                           m->outputs[i].name);
        m->output_vals[i] = v;
    }
    m->n_outputs = g->n_output;
    /* value_info only informs prepare; a bad one is still an invalid model. */
    for (size_t i = 0; i < g->n_value_info; i++) {
        onnx_value_info *vi = md_arena_calloc(m->arena, 1, sizeof *vi);
        if (!vi)
            return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
        if (parse_value_info(g->value_info[i], vi, err) != MD_OK) {
            md_err_clear(err);
            continue; /* an unsupported annotation on an intermediate is harmless */
        }
        int v = find_value(p, vi->name);
        if (v >= 0 && !m->values[v].info)
            m->values[v].info = vi;
    }
    for (size_t i = 0; i < m->n_outputs; i++)
        if (!m->values[m->output_vals[i]].info)
            m->values[m->output_vals[i]].info = &m->outputs[i];
    return MD_OK;
}

/* Run each operator's prepare; fold Constant nodes into constants. */
static int prepare_nodes(onnx_prep *p, md_err *err)
{
    onnx_model *m = p->m;
    for (int i = 0; i < m->n_nodes; i++) {
        onnx_node *n = &m->nodes[i];
        if (n->absorbed)
            continue;
        if (n->op->prepare) {
            int rc = n->op->prepare(n, p, err);
            if (rc)
                return rc;
        }
        if (strcmp(n->op_type, "Constant") == 0 && !n->domain[0] && n->out[0] >= 0) {
            m->values[n->out[0]].konst = n->priv;
            m->values[n->out[0]].producer = -1;
            n->absorbed = true;
        }
    }
    return MD_OK;
}

/* last_use: last executed node that reads each value; graph outputs live to the end. */
static void compute_lifetimes(onnx_model *m)
{
    for (int v = 0; v < m->n_values; v++)
        m->values[v].last_use = -1;
    for (int i = 0; i < m->n_nodes; i++) {
        const onnx_node *n = &m->nodes[i];
        if (n->absorbed)
            continue;
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0)
                m->values[n->in[j]].last_use = i;
    }
    for (size_t i = 0; i < m->n_outputs; i++)
        m->values[m->output_vals[i]].last_use = m->n_nodes;
}

/* Names a graph reads, its subgraphs included: a bound on the values it may capture. */
static size_t count_refs(const Onnx__GraphProto *g, int depth)
{
    size_t r = 0;
    for (size_t i = 0; g && depth < MAX_GRAPH_DEPTH && i < g->n_node; i++) {
        r += g->node[i]->n_input;
        for (size_t a = 0; a < g->node[i]->n_attribute; a++)
            r += count_refs(g->node[i]->attribute[a]->g, depth + 1);
    }
    return r;
}

static int load_graph(onnx_prep *p, const Onnx__GraphProto *g, md_err *err)
{
    onnx_model *m = p->m;
    int rc = p->parent ? MD_OK : check_opsets(p->mp, err);
    if (rc)
        return rc;
    size_t refs = p->parent ? count_refs(g, p->depth) : 0;
    size_t nvals = g->n_initializer + g->n_input + refs;
    p->inputs_cap = g->n_input + refs;
    for (size_t i = 0; i < g->n_node; i++)
        nvals += g->node[i]->n_output;
    if (nvals > (1u << 24))
        return invalid(err, "graph", "the graph has too many values%s", NULL);
    for (p->cap = 16; p->cap < 2 * nvals + 1;)
        p->cap *= 2;
    p->slots = malloc(p->cap * sizeof(int));
    m->values = md_arena_calloc(m->arena, nvals + 1, sizeof *m->values);
    p->consumers_n = calloc(nvals + 1, sizeof(int));
    if (!p->slots || !m->values || !p->consumers_n)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    memset(p->slots, 0xff, p->cap * sizeof(int));
    if ((rc = load_initializers(p, g, err)) || (rc = load_inputs(p, g, err)) ||
        (rc = load_nodes(p, g, err)) || (rc = load_outputs(p, g, err)))
        return rc;
    compute_lifetimes(m);
    if ((rc = prepare_nodes(p, err)))
        return rc;
    compute_lifetimes(m);
    return MD_OK;
}

static void release_nodes(onnx_model *m)
{
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].op && m->nodes[i].op->release && m->nodes[i].priv)
            m->nodes[i].op->release(m->nodes[i].priv);
}

void onnx_model_free(onnx_model *m)
{
    if (!m)
        return;
    if (m->nodes)
        release_nodes(m);
    while (m->subs) {
        onnx_model *s = m->subs;
        m->subs = s->next_sub;
        onnx_model_free(s);
    }
    onnx__plans_free(m);
    pthread_mutex_destroy(&m->mu);
    if (m->proto)
        onnx__model_proto__free_unpacked(m->proto, NULL);
    md_arena_free(m->arena);
    free(m);
}

/* An empty model with the limits of o (or of the enclosing model). Ownership: new. */
static onnx_model *model_new(int threads, int max_plans, size_t max_value_bytes)
{
    onnx_model *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->mu, NULL);
    m->threads = threads;
    m->max_plans = max_plans;
    m->max_value_bytes = max_value_bytes;
    m->arena = md_arena_new(65536);
    if (!m->arena) {
        onnx_model_free(m);
        return NULL;
    }
    return m;
}

/* A subgraph (If branch, Loop body) as a model of its own, owned by the enclosing model. Its
 * inputs are its formal inputs followed by the outer values it reads (see resolve). */
static int load_subgraph(onnx_prep *p, const onnx_node *n, const Onnx__GraphProto *g,
                         const onnx_model **out, md_err *err)
{
    if (p->depth + 1 >= MAX_GRAPH_DEPTH)
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "graph", "subgraphs nested too deep");
    onnx_model *s = model_new(p->m->threads, p->m->max_plans, p->m->max_value_bytes);
    if (!s)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    s->next_sub = p->m->subs; /* owned by the parent from here on, even on failure */
    p->m->subs = s;
    onnx_prep sp = {.m = s, .mp = p->mp, .parent = p, .depth = p->depth + 1,
                    .ext_dir = p->ext_dir, .max_tensor = p->max_tensor};
    int rc = load_graph(&sp, g, err);
    free(sp.slots);
    free(sp.consumers_n);
    *out = rc ? NULL : s;
    return rc;
}

static int load_common(const void *data, size_t len, const onnx_load_opts *o,
                       const char *ext_dir, onnx_model **out, md_err *err)
{
    *out = NULL;
    onnx_model *m = model_new(o && o->threads > 0 ? o->threads : 1,
                              o && o->max_plans > 0 ? o->max_plans : 16,
                              o && o->max_value_bytes ? o->max_value_bytes : (size_t)1 << 34);
    if (!m)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    onnx_prep p = {.m = m, .ext_dir = ext_dir,
                   .max_tensor = o && o->max_tensor_bytes ? o->max_tensor_bytes : (size_t)1 << 30};
    int rc = MD_OK;
    Onnx__ModelProto *mp = NULL;
    if (rc == MD_OK) {
        mp = onnx__model_proto__unpack(NULL, len, data);
        m->proto = mp;
        p.mp = mp;
        if (!mp || !mp->graph)
            rc = md_fail(err, MD_E_MODEL_INVALID, "model",
                         "not a valid ONNX model (truncated or corrupt protobuf, or no graph)");
    }
    if (rc == MD_OK)
        rc = load_graph(&p, mp->graph, err);
    free(p.slots);
    free(p.consumers_n);
    if (rc) {
        onnx_model_free(m);
        return rc;
    }
    *out = m;
    return MD_OK;
}

int onnx_model_load_bytes(const void *data, size_t len, const onnx_load_opts *o,
                          onnx_model **out, md_err *err)
{
    size_t max = o && o->max_file_bytes ? o->max_file_bytes : (size_t)1 << 31;
    *out = NULL;
    if (len > max)
        return md_fail(err, MD_E_TOO_LARGE, "model", "the model is larger than %zu bytes", max);
    return load_common(data, len, o, o ? o->base_dir : NULL, out, err);
}

int onnx_model_load_file(const char *path, const onnx_load_opts *o, onnx_model **out,
                         md_err *err)
{
    size_t max = o && o->max_file_bytes ? o->max_file_bytes : (size_t)1 << 31;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return md_fail(err, errno == ENOENT ? MD_E_FILE_NOT_FOUND : MD_E_IO, "path",
                       "cannot open the model file");
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return md_fail(err, MD_E_IO, "path", "the model path is not a regular file");
    }
    if ((uint64_t)st.st_size > max) {
        fclose(f);
        return md_fail(err, MD_E_TOO_LARGE, "model", "the model is larger than %zu bytes", max);
    }
    size_t len = (size_t)st.st_size;
    void *buf = malloc(len ? len : 1);
    int rc = MD_OK;
    if (!buf)
        rc = md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    else if (fread(buf, 1, len, f) != len)
        rc = md_fail(err, MD_E_IO, "path", "cannot read the model file");
    fclose(f);
    if (rc == MD_OK) {
        char *dir = strdup(path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (slash)
            *slash = '\0';
        rc = dir ? load_common(buf, len, o, slash ? dir : ".", out, err)
                 : md_fail(err, MD_E_NOMEM, NULL, "out of memory");
        free(dir);
    }
    free(buf);
    return rc;
}

/* ---- accessors ---- */

size_t onnx__graph_formal_inputs(const onnx_model *g) { return g->n_formal_inputs; }

const onnx_value_info *onnx_model_inputs(const onnx_model *m, size_t *n)
{
    *n = m->n_inputs;
    return m->inputs;
}

const onnx_value_info *onnx_model_outputs(const onnx_model *m, size_t *n)
{
    *n = m->n_outputs;
    return m->outputs;
}

/* ---- prepare-time queries (onnx_int.h) ---- */

const onnx_tensor *onnx__prep_const(const onnx_prep *p, const onnx_node *n, int i)
{
    if (i < 0 || i >= n->n_in || n->in[i] < 0)
        return NULL;
    return p->m->values[n->in[i]].konst;
}

const onnx_value_info *onnx__prep_info(const onnx_prep *p, const onnx_node *n, int i)
{
    if (i < 0 || i >= n->n_in || n->in[i] < 0)
        return NULL;
    return p->m->values[n->in[i]].info;
}

void *onnx__prep_alloc(onnx_prep *p, size_t bytes)
{
    return md_arena_calloc(p->m->arena, bytes ? bytes : 1, 1);
}

onnx_node *onnx__prep_sole_consumer(onnx_prep *p, const onnx_node *n, int out_idx)
{
    if (out_idx < 0 || out_idx >= n->n_out || n->out[out_idx] < 0)
        return NULL;
    int v = n->out[out_idx];
    onnx_model *m = p->m;
    if (m->values[v].last_use >= m->n_nodes || p->consumers_n[v] != 1)
        return NULL;
    for (int i = n->index + 1; i < m->n_nodes; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++)
            if (m->nodes[i].in[j] == v)
                return m->nodes[i].absorbed ? NULL : &m->nodes[i];
    return NULL;
}

int onnx__prep_absorb(onnx_prep *p, onnx_node *n, onnx_node *c, md_err *err)
{
    onnx_model *m = p->m;
    if (c->n_out != 1 || c->out[0] < 0 || n->n_out < 1 || n->out[0] < 0)
        return onnx__prep_fail(c, err, MD_E_INTERNAL, NULL, "cannot be fused");
    for (int j = 0; j < c->n_in; j++) {
        int v = c->in[j];
        bool of_n = false; /* already read by n: available when n runs, alive until then */
        for (int i = 0; i < n->n_in && !of_n; i++)
            of_n = v >= 0 && n->in[i] == v;
        if (v >= 0 && v != n->out[0] && !of_n && !m->values[v].konst)
            return onnx__prep_fail(c, err, MD_E_INTERNAL, NULL,
                                   "cannot be fused: input %d is neither constant nor read by "
                                   "the node it joins", j);
    }
    n->out[0] = c->out[0];
    m->values[c->out[0]].producer = n->index;
    c->absorbed = true;
    compute_lifetimes(m);
    return MD_OK;
}

/* ---- attributes (onnx_int.h) ---- */

const onnx_attr *onnx__attr(const onnx_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0)
            return &n->attrs[i];
    return NULL;
}

int64_t onnx__attr_int(const onnx_node *n, const char *name, int64_t def)
{
    const onnx_attr *a = onnx__attr(n, name);
    return a && a->type == ONNX_ATTR_INT ? a->i : def;
}

float onnx__attr_float(const onnx_node *n, const char *name, float def)
{
    const onnx_attr *a = onnx__attr(n, name);
    return a && a->type == ONNX_ATTR_FLOAT ? a->f : def;
}

const char *onnx__attr_str(const onnx_node *n, const char *name, const char *def)
{
    const onnx_attr *a = onnx__attr(n, name);
    return a && a->type == ONNX_ATTR_STRING ? a->s : def;
}

size_t onnx__attr_ints(const onnx_node *n, const char *name, const int64_t **v)
{
    const onnx_attr *a = onnx__attr(n, name);
    *v = a && a->type == ONNX_ATTR_INTS ? a->ints : NULL;
    return *v ? a->n_ints : 0;
}

size_t onnx__attr_floats(const onnx_node *n, const char *name, const float **v)
{
    const onnx_attr *a = onnx__attr(n, name);
    *v = a && a->type == ONNX_ATTR_FLOATS ? a->floats : NULL;
    return *v ? a->n_floats : 0;
}

/* ---- operator lookup ---- */

const onnx_op *onnx__find_op(const char *domain, const char *op_type, int opset)
{
    for (const onnx_op *const *t = onnx__op_tables; *t; t++)
        for (const onnx_op *op = *t; op->op_type; op++)
            if (strcmp(op->domain ? op->domain : "", domain) == 0 &&
                strcmp(op->op_type, op_type) == 0 && opset >= op->opset_min &&
                (op->opset_max == 0 || opset <= op->opset_max))
                return op;
    return NULL;
}
