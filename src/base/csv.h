/* csv.h - a streaming CSV reader (RFC 4180) for bulk prediction uploads (issue 11 §4): the
 * bytes arrive in chunks of any size (an upload being streamed to a blob, or a blob read back
 * in blocks) and complete rows come out through a callback, so a 100 MB file never has to be
 * in memory at once.
 *
 * Syntax: fields separated by a delimiter (default ','); rows end with LF or CRLF; a field may
 * be quoted with '"', and then holds delimiters, CR, LF and '""' (one quote). A quote inside an
 * unquoted field, anything but a delimiter or a line end after a closing quote, a bare CR
 * outside quotes and a quote left open at the end are errors. Empty lines are skipped; the last
 * line needs no line end. With header set, the first row gives the column names (non-empty,
 * distinct) and every later row must have as many fields.
 *
 * Limits: a field of at most max_field bytes and a row of at most max_fields fields
 * (MD_E_TOO_LARGE beyond, naming the line), so hostile input cannot grow memory.
 *
 * Errors name opts.field ("file" for an upload) and the line ("line 7: ...").
 */
#ifndef MD_BASE_CSV_H
#define MD_BASE_CSV_H

#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct md_csv md_csv;

/* One row: n fields, field i is fields[i] (lens[i] bytes, NUL-terminated, may contain NULs);
 * everything is borrowed for the call. line is the 1-based line the row starts on. Return
 * MD_OK to go on, or an error code (with the detail in err) to stop: md_csv_feed returns it. */
typedef int (*md_csv_row_fn)(void *user, const char *const *fields, const size_t *lens, size_t n,
                             size_t line, md_err *err);

typedef struct md_csv_opts {
    char delim;        /* 0 = ',' */
    bool header;       /* the first row is the column names (not passed to the callback) */
    size_t max_field;  /* bytes of one field; 0 = 65536 */
    size_t max_fields; /* fields of one row; 0 = 4096 */
    const char *field; /* named in errors; NULL = "csv"; borrowed until md_csv_free */
} md_csv_opts;

/* A reader that calls fn(user, ...) for each row. *out is new: md_csv_free. */
int md_csv_new(const md_csv_opts *o, md_csv_row_fn fn, void *user, md_csv **out, md_err *err);
/* Feed the next n bytes (any split, also inside a quoted field or a CRLF). After an error the
 * reader refuses further input with the same code. */
int md_csv_feed(md_csv *c, const void *data, size_t n, md_err *err);
/* The end of the input: delivers a last row without a line end; MD_E_INVALID_PARAM for a quote
 * left open, or (with header) for an input without a header row. */
int md_csv_finish(md_csv *c, md_err *err);
/* The column names after the header row was read (borrowed until md_csv_free); NULL before. */
const char *const *md_csv_columns(const md_csv *c, size_t *n);
/* Rows delivered so far (the header not counted). */
size_t md_csv_rows(const md_csv *c);
/* NULL is a no-op. */
void md_csv_free(md_csv *c);

#endif
