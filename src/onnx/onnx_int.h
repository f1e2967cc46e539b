/* onnx_int.h - the ONNX engine's internal interface: graph, nodes, attributes, and how an
 * operator plugs in. Only src/onnx/ (and its tests) include this; everyone else uses onnx.h.
 *
 * HOW TO ADD AN OPERATOR
 *   1. Put it in src/onnx/ops/<file>.c (one file per family: elementwise.c, conv.c, ml_tree.c...).
 *      Each ops file defines ONE table named after the file (non-alphanumerics become '_'):
 *          ONNX_OPS(elementwise) = {
 *              {.domain = "", .op_type = "Relu", .opset_min = 6, .opset_max = 0,
 *               .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
 *               .attrs = NULL, .prepare = NULL, .run = run_relu},
 *              ONNX_OPS_END
 *          };
 *      The build generates the list of tables from the file names (CMake globs the .c files of ops/), so no
 *      other file is edited. Entries are matched on (domain, op_type) and the MODEL's opset for
 *      that domain in [opset_min, opset_max] (opset_max 0 = no upper limit); the first match wins.
 *      A node whose model opset matches no entry fails to load ("unsupported operator").
 *   2. .attrs lists every attribute the entry accepts as "name:type" words separated by spaces,
 *      type one of i f s t I F S g y (int, float, string, tensor, ints, floats, strings, graph,
 *      type proto). The loader
 *      rejects any other attribute, or a declared one of the wrong type, naming it; so prepare
 *      and run may trust the types they read with onnx__attr_*.
 *   3. prepare (optional) runs once at load, in topological order, on a node whose input/output
 *      counts and attribute types are already checked. It validates attribute VALUES and may
 *      precompute state into n->priv (memory from onnx__prep_alloc lives as long as the model;
 *      anything else must be freed by .release). It can see constant inputs (initializers,
 *      Constant outputs) with onnx__prep_const, e.g. to pre-pack weights. Report errors with
 *      onnx__prep_fail so the message names the op, opset and node.
 *   4. run computes the outputs. It gets the inputs in k->in (k->in[i] is never NULL for
 *      i < min_in, the loader checks; NULL for an omitted optional input after that), asks the executor for each output with onnx__output (the executor owns the
 *      memory; it is planned per input shape, so the same request on the next run of the same
 *      shapes is served from the same place without allocating), and temporary memory with
 *      onnx__scratch (valid until run returns). It MUST validate what depends on input
 *      values and shapes (broadcast compatibility, index ranges) and fail with onnx__kfail, never
 *      crash: inputs may be hostile. run must be reentrant: many threads run one node at once,
 *      so n->priv is read-only during run.
 *   5. Intra-op threads: k->threads is the number of threads this run may use (>= 1). Kernels
 *      that parallelise (oneDNN, OpenBLAS, OpenMP loops) use at most that many.
 *   6. Add a conformance case or a unit test in tests/onnx/.
 *
 * Invariants:
 *   1. After onnx_model_load returns, nothing reachable from onnx_model changes, except the
 *      plan cache (mutex-protected) and its recycled arenas (taken/returned under that mutex).
 *   2. m->nodes is in execution (topological) order; node i reads only graph inputs,
 *      constants and outputs of nodes < i.
 *   3. Every value has exactly one producer: a graph input, a constant, or one node output.
 */
#ifndef MD_ONNX_INT_H
#define MD_ONNX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "onnx/onnx.h"

/* AttributeProto.AttributeType numbers. */
enum {
    ONNX_ATTR_UNDEFINED = 0,
    ONNX_ATTR_FLOAT = 1,
    ONNX_ATTR_INT = 2,
    ONNX_ATTR_STRING = 3,
    ONNX_ATTR_TENSOR = 4,
    ONNX_ATTR_GRAPH = 5,
    ONNX_ATTR_FLOATS = 6,
    ONNX_ATTR_INTS = 7,
    ONNX_ATTR_STRINGS = 8,
    ONNX_ATTR_TENSORS = 9,
    ONNX_ATTR_TYPE_PROTO = 13, /* spec letter 'y'; kept unconverted (Optional's type) */
};

#define ONNX_VARIADIC 4096 /* max_in / max_out for variadic operators */

/* One attribute, converted at load; all pointers borrowed from the model. */
typedef struct onnx_attr {
    const char *name;
    int type; /* ONNX_ATTR_* */
    float f;
    int64_t i;
    const char *s; /* NUL-terminated copy; s_len excludes the NUL */
    size_t s_len;
    const float *floats;
    size_t n_floats;
    const int64_t *ints;
    size_t n_ints;
    const char *const *strings;
    size_t n_strings;
    const onnx_tensor *t;
    const struct onnx_model *g; /* GRAPH: the subgraph, loaded as a model of its own; run it with
                                   onnx_run on its formal inputs followed by the node inputs
                                   g_first.. (the outer values it reads) */
    int g_first;
} onnx_attr;

struct onnx_op;

/* One node of the graph. Immutable after load (see invariant 1). */
typedef struct onnx_node {
    const char *name;    /* may be "" */
    const char *op_type;
    const char *domain;  /* "" for ai.onnx ("ai.onnx" is normalised to "") */
    int opset;           /* the model's opset version for this node's domain */
    int index;           /* position in m->nodes (execution order) */
    int n_in, n_out;
    int *in;             /* value ids; -1 = optional input left empty */
    int *out;            /* value ids; -1 = optional output not requested */
    int n_attrs;
    onnx_attr *attrs;
    const struct onnx_op *op;
    void *priv;          /* op state from prepare; read-only while running */
    bool absorbed;       /* folded into another node by onnx__prep_absorb: not executed */
} onnx_node;

typedef struct onnx_prep onnx_prep; /* load-time context, private to the loader */

/* Run-time context of one node execution. */
typedef struct onnx_kctx {
    const onnx_node *node;
    int n_in;
    const onnx_tensor *const *in; /* in[i] NULL when the optional input is empty */
    int n_out;
    int threads;                  /* intra-op threads allowed, >= 1 */
    const md_cancel *cancel;      /* the run's token (subgraph runs pass it on); may be NULL */
    md_err *err;
    struct onnx__exec *exec;      /* executor private */
} onnx_kctx;

typedef struct onnx_op {
    const char *domain;  /* "" = ai.onnx, "ai.onnx.ml", ... */
    const char *op_type;
    int opset_min, opset_max; /* model opset range handled, inclusive; max 0 = open */
    int min_in, max_in;
    int min_out, max_out;
    const char *attrs;   /* accepted attributes "name:type ..." (see HOW TO 2); NULL = none */
    int (*prepare)(onnx_node *n, onnx_prep *p, md_err *err); /* NULL = nothing to do */
    int (*run)(const onnx_node *n, onnx_kctx *k);
    void (*release)(void *priv); /* NULL unless priv holds memory not from onnx__prep_alloc */
    bool takes_seq;      /* accepts ONNX_KIND_SEQUENCE inputs (others are refused at run) */
} onnx_op;

#define ONNX_OPS(name) const onnx_op onnx__ops_##name[]
#define ONNX_OPS_END {0}

/* ---- attributes (node is any loaded node; names compared exactly) ---- */

/* The attribute called name, or NULL. Borrowed from the model. */
const onnx_attr *onnx__attr(const onnx_node *n, const char *name);
int64_t onnx__attr_int(const onnx_node *n, const char *name, int64_t def);
float onnx__attr_float(const onnx_node *n, const char *name, float def);
/* Borrowed string, or def when absent. */
const char *onnx__attr_str(const onnx_node *n, const char *name, const char *def);
/* Number of ints (0 when absent); *v borrowed (NULL when absent). Same for floats. */
size_t onnx__attr_ints(const onnx_node *n, const char *name, const int64_t **v);
size_t onnx__attr_floats(const onnx_node *n, const char *name, const float **v);

/* onnx_run for a subgraph body: the same checks, but no progress reports (the outer graph's
 * node count is the progress the caller sees). */
int onnx__run_sub(const struct onnx_model *g, const onnx_tensor *inputs, size_t n_inputs,
                  const onnx_run_opts *opts, onnx_result **out, md_err *err);

/* Formal inputs of a subgraph (its declared inputs; captured outer values follow them). */
size_t onnx__graph_formal_inputs(const struct onnx_model *g);

/* ---- load time (prepare) ---- */

/* Input i of n if its value is a constant known at load (initializer or Constant node output);
 * NULL otherwise or when the input is empty. Borrowed from the model. */
const onnx_tensor *onnx__prep_const(const onnx_prep *p, const onnx_node *n, int i);
/* Declared type of input i (graph input, value_info, initializer); NULL when unknown. */
const onnx_value_info *onnx__prep_info(const onnx_prep *p, const onnx_node *n, int i);
/* Zeroed memory that lives as long as the model; NULL on OOM. */
void *onnx__prep_alloc(onnx_prep *p, size_t bytes);
/* The only node that reads output out_idx of n, when exactly one node reads it and it is not a
 * graph output; else NULL. Lets an op fuse with what follows (Conv + Relu). */
onnx_node *onnx__prep_sole_consumer(onnx_prep *p, const onnx_node *n, int out_idx);
/* Fold consumer c (from onnx__prep_sole_consumer, with one output) into n: n now writes c's
 * output in place of its own output 0 and c is not executed. n's run must then compute c's
 * effect too. c's other inputs must be constants or inputs of n too (checked; MD_E_INTERNAL
 * otherwise): n's run reads them from its own inputs. */
int onnx__prep_absorb(onnx_prep *p, onnx_node *n, onnx_node *c, md_err *err);
/* Fail the load with a message naming the op, opset and node, plus field (an attribute or
 * input name, may be NULL). Returns code. */
int onnx__prep_fail(const onnx_node *n, md_err *err, int code, const char *field,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- run time (run) ---- */

/* Allocate output i of the running node with dtype and shape; *out is borrowed until the run's
 * result is freed (or until the last reader of the value ran). Data is uninitialised.
 * Returns MD_OK, MD_E_INVALID_PARAM (bad shape, too large) or MD_E_NOMEM, with k->err set.
 * Works even when the output is not requested (the data is then discarded). */
int onnx__output(onnx_kctx *k, int i, int dtype, int rank, const int64_t *dims,
                 onnx_tensor **out);
/* Memory that lives exactly as long as output i's value (call after onnx__output for i): for
 * what an output points to, such as the characters of newly made strings. Uninitialised;
 * NULL on failure (k->err set). */
void *onnx__output_extra(onnx_kctx *k, int i, size_t bytes);
/* Make output i a sequence holding copies of elems[0..n) (all tensors of dtype; a NULL element
 * is refused). The copies live as long as the output. */
int onnx__output_seq(onnx_kctx *k, int i, int dtype, const onnx_tensor *const *elems, int64_t n);
/* Make output i a deep copy of src, whatever its kind (tensor, sequence, optional). */
int onnx__output_value(onnx_kctx *k, int i, const onnx_tensor *src);
/* The running node has just copied the whole of input in_i to byte offset off of its output 0
 * (already made with onnx__output). In a recording run, when that input is a value its producer
 * wrote into memory handed out for it, the plan made from the run may place the value at that
 * spot of the output from then on (plan.c, "views"): a later run with the plan finds
 * in[in_i]->data already equal to output + off and must then not copy (the bytes are there).
 * off must be a multiple of 64 (others are ignored: every value stays 64-byte aligned).
 * A no-op outside recording runs; never fails (the view is only an optimisation). */
void onnx__output_may_hold(onnx_kctx *k, int in_i, size_t off);
/* Temporary memory, 64-byte aligned, uninitialised, valid until the node's run returns.
 * NULL on OOM (k->err set). bytes 0 gives a valid non-NULL pointer. */
void *onnx__scratch(onnx_kctx *k, size_t bytes);
/* Fail the node with a message naming op and node. Returns code. */
int onnx__kfail(onnx_kctx *k, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- helpers for ops ---- */

/* numel of a shape; -1 on negative dims or overflow past 2^62. */
int64_t onnx__numel(int rank, const int64_t *dims);
/* Normalise axis in [-rank, rank) (or [-rank-1, rank] when extra=1, for Unsqueeze-like ops).
 * Returns 0 and *out, or -1 when out of range. */
int onnx__norm_axis(int64_t axis, int rank, int extra, int *out);
/* numpy multidirectional broadcast of a and b; -1 when incompatible. */
int onnx__broadcast(int ra, const int64_t *da, int rb, const int64_t *db, int *rout,
                    int64_t *dout);
/* Operands of a MatMul (numpy semantics: 1-D operands promoted, the added dim dropped) as
 * batches of matrices; shared by MatMul and the integer MatMuls so they agree on every shape. */
typedef struct onnx_mm_shape {
    int64_t m, k, n;
    int brank;                                        /* output batch rank */
    int64_t bdims[ONNX_MAX_RANK];                     /* output batch dims */
    int64_t astr[ONNX_MAX_RANK], bstr[ONNX_MAX_RANK]; /* matrix strides per batch dim, 0 = bcast */
    int rank;                                         /* output rank and dims */
    int64_t dims[ONNX_MAX_RANK];
    int64_t nb;                                       /* output matrices */
} onnx_mm_shape;
/* Fill s from the shapes of a and b. Returns 0, -1 when the batch dims do not broadcast,
 * -2 when the inner dims differ, -3 when an operand has rank 0. */
int onnx__mm_shape(const onnx_tensor *a, const onnx_tensor *b, onnx_mm_shape *s);
/* Matrix indices *ao of a and *bo of b that output matrix i (0 <= i < s->nb) multiplies. */
void onnx__mm_batch(const onnx_mm_shape *s, int64_t i, int64_t *ao, int64_t *bo);
/* Broadcast iteration over up to 3 inputs: onnx__bcast_init computes the output shape and
 * per-input element strides (0 along broadcast dims), merging dims where it can so that
 * same-shape operands become one long row. onnx__bcast_rows then calls fn once per innermost
 * row with element offsets of each input and the output, the row length and each input's
 * step along the row (in elements; 0 where it broadcasts). Returns -1 when shapes are
 * incompatible. */
typedef struct onnx_bcast {
    int rank;
    int n_in;
    int64_t dims[ONNX_MAX_RANK];
    int64_t stride[3][ONNX_MAX_RANK];
    int out_rank;                     /* the output shape (before merging) */
    int64_t out_dims[ONNX_MAX_RANK];
} onnx_bcast;
typedef void (*onnx_bcast_fn)(void *ctx, int64_t out_off, const int64_t *in_off, int64_t n,
                              const int64_t *in_step);
int onnx__bcast_init(onnx_bcast *b, int n_in, const onnx_tensor *const *in);
void onnx__bcast_rows(const onnx_bcast *b, onnx_bcast_fn fn, void *ctx);

/* Element i of a numeric tensor converted to double / int64 (for shape-like inputs). */
double onnx__get_f64(const onnx_tensor *t, int64_t i);
int64_t onnx__get_i64(const onnx_tensor *t, int64_t i);
/* Half (round to nearest even) and bfloat16 (truncating) bit patterns <-> float. */
float onnx__half_to_float(uint16_t h);
uint16_t onnx__float_to_half(float f);
float onnx__bf16_to_float(uint16_t h);
uint16_t onnx__float_to_bf16(float f);
/* Store v converted to t's dtype at element i (integers saturate; NaN becomes 0). */
void onnx__set_f64(onnx_tensor *t, int64_t i, double v);

/* Parse a TensorProto into a tensor whose memory comes from a (strings copied too). Used for
 * initializers, Constant values, tensor attributes and .pb files. Errors name the tensor. */
struct Onnx__TensorProto;
int onnx__tensor_from_proto(const struct Onnx__TensorProto *tp, md_arena *a,
                            const char *ext_dir, size_t max_bytes, onnx_tensor *out,
                            md_err *err);

#endif
