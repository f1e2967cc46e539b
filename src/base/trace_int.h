/* trace_int.h - the span record shared by trace.c and trace_export.c (not part of the API). */
#ifndef MD_BASE_TRACE_INT_H
#define MD_BASE_TRACE_INT_H

#include "base/trace.h"

typedef enum tr_attr_type { TR_ATTR_STR, TR_ATTR_INT, TR_ATTR_DOUBLE } tr_attr_type;

typedef struct tr_attr {
    char key[48];
    char str[128];
    int64_t num;
    double dbl;
    tr_attr_type type;
} tr_attr;

/* OTLP status codes */
enum { TR_STATUS_UNSET = 0, TR_STATUS_OK = 1, TR_STATUS_ERROR = 2 };

struct tr_span {
    tr_ctx ctx;
    uint8_t parent_id[8];
    int has_parent;
    tr_kind kind;
    char name[64];
    int64_t start_ns, end_ns; /* unix ns */
    int status, status_code;
    int nattrs;
    tr_attr attrs[TR_MAX_ATTRS];
};

/* Hands an ended span to the exporter queue (steals s; freed and counted as dropped when the
 * queue is full or the exporter is stopped). */
void tr__enqueue(tr_span *s);

#endif
