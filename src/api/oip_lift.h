/* oip_lift.h - private to src/api: the fast path of the OIP infer decoder. A validating scan of
 * the request's JSON text that lifts each inputs[i].data made only of (nested) arrays of numbers
 * and booleans out of the text, parsed into plain values, so jansson never builds one json_t per
 * number (a 12288-number tensor cost ~1 ms of malloc/free/strtod in jansson). oip_codec.c hands
 * jansson the text with each lifted array replaced by `null` and takes the values from here.
 */
#ifndef MD_API_OIP_LIFT_H
#define MD_API_OIP_LIFT_H

#include "models/models.h"

#include <stddef.h>
#include <stdint.h>

/* A leaf's JSON kind, as jansson would have typed it: an integer (no fraction, no exponent), a
 * real, true or false. */
enum { OIP_LEAF_INT, OIP_LEAF_REAL, OIP_LEAF_TRUE, OIP_LEAF_FALSE };

typedef struct oip_leaf {
    int kind;
    union {
        long long
            i;    /* OIP_LEAF_INT: exact (the text is within long long, else nothing is lifted) */
        double d; /* OIP_LEAF_REAL: correctly rounded, as strtod gives it */
    } v;
} oip_leaf;

/* No array at that depth in the data. */
#define OIP_LIFT_NONE SIZE_MAX

typedef struct oip_lifted {
    size_t input;      /* index in "inputs" */
    size_t start, end; /* the data array's bytes [start, end) in the text */
    oip_leaf *leaves;  /* count leaves in document order (malloc) */
    size_t count, cap;
    size_t first_at_depth[MDL_MAX_RANK + 1]; /* leaves before the first array opened at depth d
                                                (the data array itself is depth 0), OIP_LIFT_NONE */
} oip_lifted;

typedef struct oip_lift_set {
    oip_lifted *v; /* n of them, in text order (so in input order) (malloc) */
    size_t n, cap;
} oip_lift_set;

/* Scan text[0..len) as one JSON document and lift root.inputs[i].data where that is an array of
 * numbers, booleans and arrays of them. *out is filled only when the whole text passed the scan's
 * grammar (RFC 8259: strings and their escapes, numbers, literals, at most 64 levels, nothing
 * after the value) and every lifted number is one jansson accepts (integers within long long, reals
 * that do not overflow); otherwise, and on OOM, out->n is 0 and the caller uses jansson alone.
 * Accepting is never looser than jansson on the lifted bytes; jansson still checks everything else
 * (UTF-8, \u0000, duplicate keys, numbers outside data). Free *out with oip_lift_free. */
void oip_lift_scan(const char *text, size_t len, oip_lift_set *out);

void oip_lift_free(oip_lift_set *ls);

#endif
