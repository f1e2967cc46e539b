/* xgb_int.h - internals of src/xgb shared between its files and its tests. */
#ifndef MD_XGB_XGB_INT_H
#define MD_XGB_XGB_INT_H

#include <stddef.h>

#include "base/err.h"

/* Deepest object/array nesting accepted in a model file (XGBoost's own files use 6). */
#define XGB__MAX_DEPTH 32

/* Check that b[0..len) is a JSON or UBJSON document XGBoost 1.7's readers can parse without
 * reading out of bounds or recursing without limit; see format.c. MD_OK or
 * MD_E_MODEL_INVALID naming what is wrong. b is borrowed. */
int xgb__check_format(const unsigned char *b, size_t len, md_err *err);

#endif
