/* xgb_int.h - internals of src/xgb shared between its files (and its fuzz target). */
#ifndef MD_XGB_XGB_INT_H
#define MD_XGB_XGB_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Deepest object/array nesting accepted in a model file (XGBoost's own files use 6). */
#define XGB__MAX_DEPTH 32

/* Parse model bytes b[0..len) (borrowed) as XGBoost 1.7 would, JSON text or UBJSON, into a
 * jansson document: *out is new (json_decref). Refuses, with MD_E_MODEL_INVALID naming the
 * byte and the reason, anything XGBoost's own readers would read out of bounds on, recurse
 * deeper than XGB__MAX_DEPTH for, or read differently (duplicate keys); see format.c. */
int xgb__parse_doc(const unsigned char *b, size_t len, json_t **out, md_err *err);

/* Check a parsed model document against what XGBoost 1.7 trusts (schema.c) and fill info's
 * num_features, num_class and objective. MD_OK, MD_E_MODEL_INVALID or MD_E_UNSUPPORTED (naming
 * the field). doc is borrowed. */
struct xgb_info;
int xgb__validate_doc(const json_t *doc, struct xgb_info *info, md_err *err);

/* Record a libxgboost failure of `what` (XGBGetLastError): the detail to the log, a one-line
 * reason to err (field "model"). Returns code. (xgb.c; also train.c) */
int xgb__fail(md_err *err, int code, const char *what);

/* ---- forest.c: our own evaluation of gbtree ensembles (see the file's comment) ---- */
typedef struct xgb__forest xgb__forest;

/* The flattened forest, shared by forest.c (which builds it and predicts) and treeshap.c
 * (contributions); see forest.c's invariants. */
#define XGB__DEFAULT_LEFT 0x80000000u
#define XGB__SPLIT 0x40000000u
#define XGB__FEATURE_MASK 0x3fffffffu

typedef struct xgb__fnode {
    float value;   /* split threshold, or the leaf value */
    uint32_t left; /* absolute index of the left child; a leaf: its own index */
    uint32_t feat; /* feature index | XGB__SPLIT | XGB__DEFAULT_LEFT; 0 for a leaf */
} xgb__fnode;

/* Deepest tree TreeSHAP is computed for by treeshap.c (its recursion and path buffer are sized
 * by it); deeper models get libxgboost's contributions. */
#define XGB__SHAP_MAX_DEPTH 64

struct xgb__forest {
    xgb__fnode *nodes;
    uint32_t *roots;  /* per tree, absolute index of its root */
    uint32_t *groups; /* per tree, its output group */
    uint32_t *depth;  /* per tree, the longest root-to-leaf path (steps) */
    /* TreeSHAP data, per node (NULL when the model does not allow it: a reached node's cover
     * is not finite and > 0, or a tree is deeper than XGB__SHAP_MAX_DEPTH):
     * cover = the tree's sum_hessian, mean = the cover-weighted mean leaf value under the node
     * (XGBoost's FillNodeMeanValues, in float). */
    float *cover, *mean;
    /* The per-leaf tables of treeshap.c's fast path (NULL: the path algorithm serves). */
    struct xgb__shap_tables *tables;
    size_t max_tree_nodes; /* nodes of the largest tree (the fast path's scratch) */
    size_t n_nodes, n_trees, n_groups, n_features;
    float base_margin;
    int transform;
};

/* Flatten the trees of a document that passed xgb__validate_doc (info is what it filled).
 * *out is new (xgb__forest_free), or NULL with MD_OK when the model is not one we evaluate
 * (dart, gblinear, an objective outside forest.c's list): libxgboost then serves it.
 * Errors: MD_E_NOMEM, MD_E_TOO_LARGE. doc and info are borrowed. */
int xgb__forest_build(const json_t *doc, const struct xgb_info *info, xgb__forest **out,
                      md_err *err);

/* nrows rows of the forest's feature count (borrowed) into out: nrows * xgb__forest_outputs
 * floats, after the objective's transform. Thread-safe; the caller checks the sizes. */
void xgb__forest_predict(const xgb__forest *f, const float *rows, size_t nrows, float *out);

/* Floats per row xgb__forest_predict writes. */
size_t xgb__forest_outputs(const xgb__forest *f);

/* XGB__PROBE_ROWS rows that reach both sides of some split of every feature (NaN, zeros, the
 * split thresholds and their neighbours), for the load-time comparison with libxgboost.
 * rows: XGB__PROBE_ROWS * num_features floats, caller-owned. */
#define XGB__PROBE_ROWS 7
void xgb__forest_probe_rows(const xgb__forest *f, float *rows);

/* ---- treeshap.c: exact path-dependent TreeSHAP (Lundberg et al.) on the forest ---- */

/* Called by xgb__forest_build: f->cover and f->mean from the trees' sum_hessian (trees: the
 * document's gradient_booster.model.trees, borrowed), or both NULL with MD_OK when the model
 * does not allow our TreeSHAP (treeshap.c invariant 1). Errors: MD_E_NOMEM. */
int xgb__forest_build_shap(xgb__forest *f, const json_t *trees, md_err *err);

/* Bytes of what xgb__forest_build_shap made (part of xgb__forest_bytes). */
size_t xgb__forest_shap_bytes(const xgb__forest *f);

/* Whether the fast path's tables were built (xgb_model_shap_engine "tables"). */
int xgb__forest_has_tables(const xgb__forest *f);

/* Frees the leaf tables only: the path algorithm serves (XGB_SHAP_PATHS). */
void xgb__forest_drop_tables(xgb__forest *f);

/* Frees what xgb__forest_build_shap made (the forest then has no TreeSHAP). */
void xgb__forest_free_shap(xgb__forest *f);

/* Whether f carries what xgb__forest_contributions needs (f->cover and f->mean). */
int xgb__forest_has_shap(const xgb__forest *f);

/* XGBoost's pred_contribs of nrows rows (borrowed) into out: per row and output group,
 * n_features + 1 floats (the bias last), in the margin. scratch: n_features + 1 floats,
 * caller-owned. Only when xgb__forest_has_shap(f). Thread-safe (the path buffer is on the
 * stack, about 35 KiB); the caller checks the sizes. */
void xgb__forest_contributions(const xgb__forest *f, const float *rows, size_t nrows, float *out,
                               float *scratch);

/* Bytes held (for memory statistics). */
size_t xgb__forest_bytes(const xgb__forest *f);

void xgb__forest_free(xgb__forest *f); /* NULL is a no-op */

#endif
