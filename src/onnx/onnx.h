/* onnx.h - modeld's ONNX engine: load a .onnx model once, run it from many threads on the CPU.
 *
 * The engine knows nothing of HTTP; the model registry and the CLI call it the same way.
 *   1. onnx_model_load_file / onnx_model_load_bytes parse and validate the whole model (opsets,
 *      every node's operator and attributes, topological order, initializers, declared shapes).
 *      A model that loads runs; one that uses something we do not support fails here with a
 *      message naming the operator, the opset and the node.
 *   2. A loaded model is immutable: any number of threads may call onnx_run on it at once.
 *   3. Each run gets its own arena, planned once per distinct set of input shapes (the plans are
 *      cached in the model), so repeated runs with the same shapes do not allocate.
 *   4. Outputs live in the run's result object until onnx_result_free; no copy is made.
 * Tensors are dense, row-major. dtype numbers are ONNX's TensorProto.DataType values.
 */
#ifndef MD_ONNX_H
#define MD_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "base/cancel.h"
#include "base/err.h"

#define ONNX_MAX_RANK 8

/* ONNX TensorProto.DataType (same numbers, so files map 1:1). */
typedef enum onnx_dtype {
    ONNX_UNDEFINED = 0,
    ONNX_FLOAT = 1,
    ONNX_UINT8 = 2,
    ONNX_INT8 = 3,
    ONNX_UINT16 = 4,
    ONNX_INT16 = 5,
    ONNX_INT32 = 6,
    ONNX_INT64 = 7,
    ONNX_STRING = 8, /* data is const char *[numel], strings borrowed (see onnx_tensor) */
    ONNX_BOOL = 9,   /* one byte per element, 0 or 1 */
    ONNX_FLOAT16 = 10,
    ONNX_DOUBLE = 11,
    ONNX_UINT32 = 12,
    ONNX_UINT64 = 13,
    ONNX_BFLOAT16 = 16, /* stored as the upper 16 bits of a float */
} onnx_dtype;

/* What an onnx_tensor holds. Almost everything is a plain tensor; ZipMap (ai.onnx.ml) returns
 * a sequence of maps, which we hold as a dense [N, C] table plus the C keys shared by all rows. */
typedef enum onnx_kind {
    ONNX_KIND_TENSOR = 0,
    ONNX_KIND_SEQ_MAP = 1, /* dims = {N, C}; row i of data = values of map i; keys in map_keys */
    ONNX_KIND_SEQUENCE = 2, /* rank 1, dims[0] = count; data = count onnx_tensor elements of
                               dtype (numeric); as an input the elements are borrowed for the
                               run, as an output they live until onnx_result_free */
    ONNX_KIND_OPTIONAL = 3, /* rank 0; data = one onnx_tensor (a tensor or a sequence of dtype),
                               or NULL when the optional is empty */
} onnx_kind;

/* A tensor value. A small transparent struct: callers fill it for inputs (data borrowed for the
 * duration of onnx_run) and read it for outputs (data borrowed until onnx_result_free).
 * A rank-0 tensor is a scalar with one element. Any dims[i] may be 0 (empty tensor).
 * For ONNX_STRING, data points to numel `const char *`, each NUL-terminated and borrowed from
 * whoever made the tensor (caller, model attribute or .pb file). */
typedef struct onnx_tensor {
    int dtype; /* onnx_dtype */
    int rank;  /* 0..ONNX_MAX_RANK */
    int64_t dims[ONNX_MAX_RANK];
    void *data;
    int kind;             /* onnx_kind; 0 for a plain tensor */
    int key_dtype;        /* ONNX_KIND_SEQ_MAP only: ONNX_INT64 or ONNX_STRING */
    const void *map_keys; /* ONNX_KIND_SEQ_MAP only: dims[1] keys, borrowed from the model */
} onnx_tensor;

/* Declared type of a graph input or output. dims[i] < 0 means "not fixed" (a symbolic dim such
 * as batch); dim_names[i] is then its symbol or NULL. rank < 0: rank unknown. */
typedef struct onnx_value_info {
    const char *name; /* borrowed from the model */
    int dtype;
    int kind;
    int rank;
    int64_t dims[ONNX_MAX_RANK];
    const char *dim_names[ONNX_MAX_RANK];
} onnx_value_info;

typedef struct onnx_model onnx_model;
typedef struct onnx_result onnx_result;

typedef struct onnx_load_opts {
    size_t max_file_bytes;   /* refuse model files larger than this; 0 = 2 GiB */
    size_t max_tensor_bytes; /* refuse any one initializer larger than this; 0 = 1 GiB */
    const char *base_dir;    /* where external data lives when loading from bytes; NULL = no
                                external data allowed (loading from a file uses its directory) */
    int threads;             /* default intra-op threads per run; 0 = 1 (a server runs many
                                requests at once, so one thread per request is the default) */
    int max_plans;           /* input-shape plans cached per model; 0 = 16 */
    size_t max_value_bytes;  /* refuse (MD_E_INVALID_PARAM) any run that makes one value or
                                scratch block larger than this; 0 = 16 GiB */
} onnx_load_opts;

typedef struct onnx_run_opts {
    int threads; /* intra-op threads for this run; 0 = the model's default */
    /* Deadline / cancel / progress, borrowed for the call; NULL = never stops. Checked before
     * every node and before every iteration of a Loop, Scan, SequenceMap or If body; progress is
     * reported as node i of n ("node 12/40") for the top graph only. */
    const md_cancel *cancel;
} onnx_run_opts;

/* Load and validate a model file. External data must lie in the file's directory (or below).
 * opts may be NULL. Ownership: *out is new; free with onnx_model_free(). Errors:
 * MD_E_FILE_NOT_FOUND, MD_E_IO, MD_E_TOO_LARGE, MD_E_MODEL_INVALID, MD_E_UNSUPPORTED, MD_E_NOMEM. */
int onnx_model_load_file(const char *path, const onnx_load_opts *opts, onnx_model **out,
                         md_err *err);
/* Same from bytes in memory (borrowed for the call only; the model keeps its own copy of what
 * it needs). */
int onnx_model_load_bytes(const void *data, size_t len, const onnx_load_opts *opts,
                          onnx_model **out, md_err *err);
/* Free a model. NULL is a no-op. No run may be in flight on it. */
void onnx_model_free(onnx_model *m);

/* Graph inputs (initializers excluded) and outputs, in graph order. Borrowed from the model;
 * *n gets the count. */
const onnx_value_info *onnx_model_inputs(const onnx_model *m, size_t *n);
const onnx_value_info *onnx_model_outputs(const onnx_model *m, size_t *n);

/* Run the model. inputs[i] binds to graph input i (onnx_model_inputs order); n_inputs must equal
 * the count. opts may be NULL. Thread-safe: many runs may share one model.
 * Ownership: *out is new; free with onnx_result_free() (which recycles the run's arena).
 * Errors: MD_E_INVALID_PARAM (input count/dtype/shape; md_err.field names the input),
 * MD_E_UNSUPPORTED, MD_E_NOMEM, MD_E_INTERNAL; MD_E_TIMEOUT / MD_E_CANCELLED when
 * opts->cancel stopped the run (md_err names the node it stopped before). */
int onnx_run(const onnx_model *m, const onnx_tensor *inputs, size_t n_inputs,
             const onnx_run_opts *opts, onnx_result **out, md_err *err);
/* Outputs of a run, in graph order. Borrowed until onnx_result_free. */
size_t onnx_result_count(const onnx_result *r);
const onnx_tensor *onnx_result_output(const onnx_result *r, size_t i);
/* Release a result. NULL is a no-op. */
void onnx_result_free(onnx_result *r);

/* Helpers for callers that build or read tensors. */
size_t onnx_dtype_size(int dtype);       /* bytes per element; 0 for unknown */
const char *onnx_dtype_name(int dtype);  /* "float", "int64", ...; static */
/* Number of elements; -1 if rank/dims are invalid or the count overflows. */
int64_t onnx_tensor_numel(const onnx_tensor *t);

/* Parse a serialized TensorProto (the .pb files of ONNX test cases), raw_data or typed fields.
 * Ownership: *out is new (a heap tensor owning its data and strings); free with
 * onnx_tensor_free(). Errors: MD_E_MODEL_INVALID naming the field, MD_E_UNSUPPORTED, MD_E_NOMEM. */
int onnx_tensor_parse(const void *data, size_t len, onnx_tensor **out, md_err *err);
/* Free a tensor made by onnx_tensor_parse or onnx_tensor_new. NULL is a no-op. */
void onnx_tensor_free(onnx_tensor *t);
/* A new zeroed heap tensor of the given dtype/shape (not for ONNX_STRING). Ownership: new. */
int onnx_tensor_new(int dtype, int rank, const int64_t *dims, onnx_tensor **out, md_err *err);

#endif
