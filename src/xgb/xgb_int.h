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

#endif
