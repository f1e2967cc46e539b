/* model.h - the loaded model, its values and the run-time executor state. Private to the
 * engine core (load.c, exec.c, plan.c); operators see only onnx_int.h. */
#ifndef MD_ONNX_MODEL_H
#define MD_ONNX_MODEL_H

#include <pthread.h>

#include "onnx/onnx_int.h"

/* One named value of the graph (SSA: exactly one producer). */
typedef struct onnx__value {
    const char *name;
    int producer;                /* node index, or -1 for a graph input / constant */
    int graph_input;             /* index into m->inputs, or -1 */
    const onnx_tensor *konst;    /* constant value (initializer, Constant), else NULL */
    const onnx_value_info *info; /* declared type, or NULL */
    int last_use;                /* last node index reading it; n_nodes when a graph output */
} onnx__value;

/* One allocation the executor hands out while running, in the order nodes ask for them. */
typedef struct onnx__event {
    int node;
    int value;     /* value id it holds (lives to the value's last reader), -1 = scratch */
    size_t bytes;
    size_t offset; /* into the planned arena */
    int parent;    /* plan: the later event whose block holds this one (a channel Concat's
                      output holding an input, plan.c "views"), or -1 */
    size_t rel;    /* plan: byte offset inside parent's block */
} onnx__event;

/* A recording run's note that a Concat copied the block of event child whole into the block of
 * event parent at byte offset rel (onnx__output_may_hold); the plan may place child there. */
typedef struct onnx__view {
    int child, parent;
    size_t rel;
} onnx__view;

struct onnx__exec;

/* The memory plan for one set of input shapes: every allocation of a run, with offsets that
 * reuse memory once a value's last reader has run. */
typedef struct onnx__plan {
    struct onnx__plan *next;
    int n_inputs;
    int64_t *key;       /* per input: dtype, rank, dims... (flattened) */
    size_t key_len;
    onnx__event *events;
    int n_events;
    size_t total;       /* arena bytes */
    struct onnx__exec *free_list; /* recycled run states (guarded by the model mutex) */
    int n_free;
} onnx__plan;

struct onnx_model {
    md_arena *arena; /* everything with the model's lifetime */
    void *proto;     /* Onnx__ModelProto, kept for names and attribute data */
    int n_values;
    onnx__value *values;
    int n_nodes;
    onnx_node *nodes;
    size_t n_inputs, n_outputs;
    size_t n_formal_inputs;   /* inputs the graph declares; the rest are captured outer values */
    struct onnx_model *subs;  /* subgraphs owned by this model (If, Loop bodies) */
    struct onnx_model *next_sub;
    onnx_value_info *inputs, *outputs;
    int *input_vals, *output_vals;
    int threads;
    int max_plans;
    size_t max_value_bytes;
    int max_in;     /* largest node input count, for the executor's pointer arrays */
    int max_out;    /* largest node output count */
    pthread_mutex_t mu; /* guards plans and their free lists */
    onnx__plan *plans;
    int n_plans;
};

/* Run state: one per in-flight run; it is also the onnx_result handed to the caller. */
typedef struct onnx__exec {
    const onnx_model *m;
    onnx__plan *plan;      /* plan used, or NULL */
    bool recording;        /* first run of these shapes: events are recorded */
    bool spilled;          /* a request did not match the plan: rest served from spill */
    onnx__event *rec;      /* recorded events (recording) */
    void **rec_mem;        /* recording: each event's own block, NULL once freed (past its
                              last reader: the recording run's peak is the live set) */
    int n_rec, cap_rec;
    int rec_swept;         /* events before this index are all freed or graph outputs */
    onnx__view *views;     /* recording: Concat copies that a view could replace */
    int n_views, cap_views;
    int next_event;
    int cur_node;
    unsigned char *base;   /* planned arena */
    size_t base_size;
    md_arena *spill;       /* recording runs and mismatches */
    onnx_tensor *vals;     /* per value */
    bool *have;            /* vals[i] is set */
    const onnx_tensor **in_ptrs;
    onnx_tensor *tmp_outs; /* outputs a node writes that nobody requested */
    int threads;
    const md_cancel *cancel; /* this run's token; NULL = none */
    onnx_tensor *outs;     /* graph outputs, in order */
    struct onnx__exec *next_free;
} onnx__exec;

/* After node `node` ran in a recording run: free the blocks of values no later node reads. */
void onnx__exec_node_done(onnx__exec *e, int node);

struct onnx_result {
    onnx__exec e;
};

/* plan.c */
/* A run state for these input shapes: a recycled one of the matching plan (no allocation), or
 * a new one that records a plan. Ownership: *out is new to the caller until
 * onnx__plan_release, which recycles it into its plan or frees it. */
int onnx__plan_acquire(const onnx_model *m, const onnx_tensor *inputs, onnx__exec **out,
                       md_err *err);
void onnx__plan_release(onnx__exec *e);
/* Free every plan and recycled run state (model teardown; no run may be in flight). */
void onnx__plans_free(onnx_model *m);
/* Memory for the current node: scratch (exec_alloc) or the value `value` (exec_alloc_for).
 * Borrowed from the run state: valid until the value's last reader ran (scratch: until the
 * node returns) and never past onnx__plan_release. */
void *onnx__exec_alloc(onnx__exec *e, size_t bytes, md_err *err);
void *onnx__exec_alloc_for(onnx__exec *e, int value, size_t bytes, md_err *err);
/* Recording run only (a no-op otherwise): the running node copied the whole of in_data, the
 * block of value in_value, into out_data (the block of value out_value, allocated by this node)
 * at byte offset rel. When both are blocks the recording handed out for those values, the plan
 * may place the input's block there (plan.c, "views"). */
void onnx__plan_note_view(onnx__exec *e, int in_value, const void *in_data, int out_value,
                          const void *out_data, size_t rel);
/* After a recording run: cache its plan. 0 when added, -1 when not (full, raced, OOM). */
int onnx__plan_finish(onnx__exec *e, const onnx_tensor *inputs);

/* The operator tables (generated registry) and lookup. */
extern const onnx_op *const onnx__op_tables[];
const onnx_op *onnx__find_op(const char *domain, const char *op_type, int opset);

#endif
