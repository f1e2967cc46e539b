/* xgb_int.h - internals of src/xgb shared between its files (and its fuzz target). */
#ifndef MD_XGB_XGB_INT_H
#define MD_XGB_XGB_INT_H

#include <jansson.h>
#include <stddef.h>

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

/* Bytes held (for memory statistics). */
size_t xgb__forest_bytes(const xgb__forest *f);

void xgb__forest_free(xgb__forest *f); /* NULL is a no-op */

#endif
