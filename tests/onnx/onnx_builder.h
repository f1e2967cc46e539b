/* onnx_builder.h - build small ONNX models in memory for the engine's tests, with the same
 * protobuf-c structs the loader reads, so a test can make exactly the broken file it wants
 * (a cycle, a short raw_data, a huge dim) without fixture files.
 *
 * Everything lives in one bld struct with fixed-size pools; bld_pack() serializes it into a
 * malloc'd buffer (new, free()). Strings passed in are borrowed until bld_pack returns.
 */
#ifndef MD_TESTS_ONNX_BUILDER_H
#define MD_TESTS_ONNX_BUILDER_H

#include <stdlib.h>
#include <string.h>

#include "onnx/onnx.h"
#include "onnx_proto/onnx.pb-c.h"

#define BLD_MAX 32

typedef struct bld {
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opset[2], *opset_p[2];
    Onnx__NodeProto nodes[BLD_MAX], *node_p[BLD_MAX];
    char *node_in[BLD_MAX][8], *node_out[BLD_MAX][4];
    Onnx__AttributeProto attrs[BLD_MAX], *attr_p[BLD_MAX][4];
    Onnx__ValueInfoProto vi[BLD_MAX], *in_p[BLD_MAX], *out_p[BLD_MAX];
    Onnx__TypeProto types[BLD_MAX];
    Onnx__TypeProto__Tensor ttypes[BLD_MAX];
    Onnx__TensorShapeProto shapes[BLD_MAX];
    Onnx__TensorShapeProto__Dimension dims[BLD_MAX][8], *dim_p[BLD_MAX][8];
    Onnx__TensorProto inits[BLD_MAX], *init_p[BLD_MAX];
    int n_vi, n_attrs;
} bld;

static inline void bld_init(bld *b, int opset)
{
    memset(b, 0, sizeof *b);
    onnx__model_proto__init(&b->model);
    onnx__graph_proto__init(&b->graph);
    b->model.has_ir_version = 1;
    b->model.ir_version = 8;
    b->model.graph = &b->graph;
    onnx__operator_set_id_proto__init(&b->opset[0]);
    b->opset[0].domain = (char *)"";
    b->opset[0].has_version = 1;
    b->opset[0].version = opset;
    b->opset_p[0] = &b->opset[0];
    b->model.opset_import = b->opset_p;
    b->model.n_opset_import = 1;
    b->graph.node = b->node_p;
    b->graph.input = b->in_p;
    b->graph.output = b->out_p;
    b->graph.initializer = b->init_p;
}

/* A typed value; rank < 0 leaves the shape out; a dim < 0 is symbolic "N". */
static inline Onnx__ValueInfoProto *bld_vi(bld *b, const char *name, int dtype, int rank,
                                           const int64_t *d)
{
    int i = b->n_vi++;
    Onnx__ValueInfoProto *v = &b->vi[i];
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(&b->types[i]);
    onnx__type_proto__tensor__init(&b->ttypes[i]);
    v->name = (char *)name;
    v->type = &b->types[i];
    b->types[i].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    b->types[i].tensor_type = &b->ttypes[i];
    b->ttypes[i].has_elem_type = 1;
    b->ttypes[i].elem_type = dtype;
    if (rank >= 0) {
        onnx__tensor_shape_proto__init(&b->shapes[i]);
        b->ttypes[i].shape = &b->shapes[i];
        b->shapes[i].n_dim = (size_t)rank;
        b->shapes[i].dim = b->dim_p[i];
        for (int k = 0; k < rank; k++) {
            Onnx__TensorShapeProto__Dimension *dm = &b->dims[i][k];
            onnx__tensor_shape_proto__dimension__init(dm);
            if (d[k] >= 0) {
                dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                dm->dim_value = d[k];
            } else {
                dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                dm->dim_param = (char *)"N";
            }
            b->dim_p[i][k] = dm;
        }
    }
    return v;
}

static inline void bld_input(bld *b, const char *name, int dtype, int rank, const int64_t *d)
{
    b->in_p[b->graph.n_input++] = bld_vi(b, name, dtype, rank, d);
}

static inline void bld_output(bld *b, const char *name, int dtype, int rank, const int64_t *d)
{
    b->out_p[b->graph.n_output++] = bld_vi(b, name, dtype, rank, d);
}

/* A node with inputs/outputs given as NULL-terminated lists. Returns it for attributes. */
static inline Onnx__NodeProto *bld_node(bld *b, const char *op, const char *name,
                                        const char *const *in, const char *const *out)
{
    int i = (int)b->graph.n_node++;
    Onnx__NodeProto *n = &b->nodes[i];
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = (char *)name;
    n->input = b->node_in[i];
    n->output = b->node_out[i];
    while (in && in[n->n_input])
        n->input[n->n_input] = (char *)in[n->n_input], n->n_input++;
    while (out && out[n->n_output])
        n->output[n->n_output] = (char *)out[n->n_output], n->n_output++;
    n->attribute = b->attr_p[i];
    b->node_p[i] = n;
    return n;
}

static inline Onnx__AttributeProto *bld_attr(bld *b, Onnx__NodeProto *n, const char *name,
                                             int type)
{
    Onnx__AttributeProto *a = &b->attrs[b->n_attrs++];
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

static inline void bld_attr_int(bld *b, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = bld_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

/* An INTS attribute of cnt values (v borrowed until bld_pack). */
static inline void bld_attr_ints(bld *b, Onnx__NodeProto *n, const char *name, int64_t *v,
                                 size_t cnt)
{
    Onnx__AttributeProto *a = bld_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = cnt;
    a->ints = v;
}

/* A float initializer with raw_data (bytes borrowed). */
static inline Onnx__TensorProto *bld_init_f32(bld *b, const char *name, int rank,
                                              const int64_t *d, const float *v, size_t n)
{
    int i = (int)b->graph.n_initializer++;
    Onnx__TensorProto *t = &b->inits[i];
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->n_dims = (size_t)rank;
    t->dims = (int64_t *)d;
    t->has_raw_data = 1;
    t->raw_data.len = n * sizeof(float);
    t->raw_data.data = (uint8_t *)v;
    b->init_p[i] = t;
    return t;
}

/* Y = Sigmoid(X * B) + B in three nodes "m", "s", "a" (opset 13), B a float initializer of
 * the 3 values in bias: the small chain several tests run. X and Y are float with the rank and
 * dims given (last dim 3; -1 for a symbolic batch). dims and bias borrowed until bld_pack. */
static inline void bld_sigmoid_chain(bld *b, int rank, const int64_t *dims, const float bias[3])
{
    static const int64_t d3[] = {3};
    bld_init(b, 13);
    bld_input(b, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, rank, dims);
    bld_output(b, "Y", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, rank, dims);
    bld_init_f32(b, "B", 1, d3, bias, 3);
    bld_node(b, "Mul", "m", (const char *[]){"X", "B", NULL}, (const char *[]){"P", NULL});
    bld_node(b, "Sigmoid", "s", (const char *[]){"P", NULL}, (const char *[]){"Q", NULL});
    bld_node(b, "Add", "a", (const char *[]){"Q", "B", NULL}, (const char *[]){"Y", NULL});
}

/* Serialize. Ownership: new (free()). */
static inline uint8_t *bld_pack(bld *b, size_t *len)
{
    *len = onnx__model_proto__get_packed_size(&b->model);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf)
        onnx__model_proto__pack(&b->model, buf);
    return buf;
}

/* Pack b and load it with the default options: the loader's code, its detail in *err (cleared
 * first); *m is new (onnx_model_free) on MD_OK. */
static inline int bld_load(bld *b, onnx_model **m, md_err *err)
{
    size_t len;
    uint8_t *buf = bld_pack(b, &len);
    md_err_clear(err);
    int rc = onnx_model_load_bytes(buf, len, NULL, m, err);
    free(buf);
    return rc;
}

#endif
