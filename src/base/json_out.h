/* json_out.h - compact JSON text of a jansson value, byte for byte what
 * json_dumpb(v, ..., JSON_COMPACT | JSON_ENCODE_ANY) writes, at a fraction of its cost.
 *
 * Why: answers and prediction logs are mostly numbers, and jansson writes each real through
 * snprintf("%.17g") (glibc's arbitrary-precision printf); md_buf_put_g17 writes the same
 * digits with integer arithmetic. Everything else follows jansson 2.14's dump.c: objects in
 * insertion order, "\\uXXXX" (upper-case hex) for control characters without a short escape,
 * UTF-8 written as it is, a real always with a '.' or an exponent, exponents without '+' or
 * leading zeros.
 */
#ifndef MD_BASE_JSON_OUT_H
#define MD_BASE_JSON_OUT_H

#include <jansson.h>

#include "base/buf.h"

/* Append v (borrowed) to b. Returns MD_OK, MD_E_TOO_LARGE (over b's maximum), MD_E_NOMEM, or
 * MD_E_INVALID_PARAM for a value nested deeper than 2048 levels (jansson's own limit). */
int md_json_out(md_buf *b, const json_t *v);

#endif
