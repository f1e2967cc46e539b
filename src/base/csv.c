/* csv.c - the streaming CSV reader (see csv.h): a byte-at-a-time state machine, so a chunk
 * boundary may fall anywhere (inside a quoted field, between CR and LF) without changing the
 * result.
 *
 *     FIELD_START --'"'--> QUOTED --'"'--> QUOTE_SEEN --'"'--> QUOTED (a literal quote)
 *         |                  ^                 |  \--delim / LF / CR--> FIELD_START / row end
 *         |--other--> UNQUOTED --delim--> FIELD_START
 *         |               \--LF--> row end;  --CR--> CR_SEEN --LF--> row end
 *         \--delim--> FIELD_START (an empty field);  --LF / CR--> row end
 *
 * Each transition is one case of step(); csv_assert_state() checks in debug builds that the
 * row buffer agrees with the state.
 *
 * Invariants:
 *   1. row holds the fields of the current row, each followed by a NUL; starts[i] is where
 *      field i begins; the field being read runs from starts[nfields] to row.len.
 *   2. No field grows past max_field bytes, no row past max_fields fields or ROW_MAX bytes:
 *      memory is bounded whatever the input.
 *   3. The first error is sticky: every later feed and finish returns it.
 */
#include "base/csv.h"

#include "base/buf.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_FIELD 65536
#define DEFAULT_MAX_FIELDS 4096
#define ROW_MAX ((size_t)4 << 20)

typedef enum {
    FIELD_START, /* at the start of a field (also of a row) */
    UNQUOTED,    /* inside an unquoted field */
    QUOTED,      /* inside a quoted field */
    QUOTE_SEEN,  /* a quote inside a quoted field: its end, or the first of '""' */
    CR_SEEN,     /* a CR outside quotes: LF must follow */
} csv_state;

struct md_csv {
    md_csv_opts o;
    md_csv_row_fn fn;
    void *user;
    csv_state state;
    md_buf row;
    size_t *starts;    /* max_fields + 1 */
    const char **ptrs; /* max_fields */
    size_t *lens;      /* max_fields */
    size_t nfields;    /* fields completed in this row */
    bool row_started;  /* a byte, quote or delimiter was seen on this row */
    size_t line;       /* current line, 1-based */
    size_t row_line;   /* line the current row started on */
    size_t rows;       /* rows delivered */
    char **columns;    /* header names (new) */
    size_t ncolumns;
    int error; /* sticky (invariant 3) */
    md_err saved;
};

#ifndef NDEBUG
static void csv_assert_state(const md_csv *c)
{
    assert(c->nfields <= c->o.max_fields);
    assert(c->starts[c->nfields] <= c->row.len);
    assert(c->state == FIELD_START || c->state == CR_SEEN || c->row_started);
}
#else
#define csv_assert_state(c) ((void)0)
#endif

static int fail(md_csv *c, md_err *err, int code, const char *what)
{
    c->error = md_fail(&c->saved, code, c->o.field, "line %zu: %s", c->line, what);
    if (err)
        *err = c->saved;
    return c->error;
}

int md_csv_new(const md_csv_opts *o, md_csv_row_fn fn, void *user, md_csv **out, md_err *err)
{
    *out = NULL;
    md_csv *c = calloc(1, sizeof *c);
    if (!c)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    c->o = o ? *o : (md_csv_opts){0};
    c->o.delim = c->o.delim ? c->o.delim : ',';
    c->o.max_field = c->o.max_field ? c->o.max_field : DEFAULT_MAX_FIELD;
    c->o.max_fields = c->o.max_fields ? c->o.max_fields : DEFAULT_MAX_FIELDS;
    c->o.field = c->o.field ? c->o.field : "csv";
    c->fn = fn;
    c->user = user;
    c->line = c->row_line = 1;
    md_buf_init(&c->row, ROW_MAX);
    c->starts = calloc(c->o.max_fields + 1, sizeof *c->starts);
    c->ptrs = calloc(c->o.max_fields, sizeof *c->ptrs);
    c->lens = calloc(c->o.max_fields, sizeof *c->lens);
    if (!c->starts || !c->ptrs || !c->lens || c->o.delim == '"' || c->o.delim == '\r' ||
        c->o.delim == '\n') {
        md_csv_free(c);
        return md_fail(err, MD_E_INVALID_PARAM, "delim", "bad delimiter, or out of memory");
    }
    *out = c;
    return MD_OK;
}

void md_csv_free(md_csv *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->ncolumns; i++)
        free(c->columns[i]);
    free(c->columns);
    md_buf_free(&c->row);
    free(c->starts);
    free(c->ptrs);
    free(c->lens);
    free(c);
}

const char *const *md_csv_columns(const md_csv *c, size_t *n)
{
    *n = c->ncolumns;
    return (const char *const *)c->columns;
}

size_t md_csv_rows(const md_csv *c)
{
    return c->rows;
}

/* Append one byte to the field being read (invariant 2). */
static int put(md_csv *c, char ch, md_err *err)
{
    if (c->row.len - c->starts[c->nfields] >= c->o.max_field)
        return fail(c, err, MD_E_TOO_LARGE, "a field is too long");
    if (md_buf_putc(&c->row, ch) != MD_OK)
        return fail(c, err, MD_E_TOO_LARGE, "the row is too long");
    return MD_OK;
}

/* Close the field being read. */
static int end_field(md_csv *c, md_err *err)
{
    if (c->nfields == c->o.max_fields)
        return fail(c, err, MD_E_TOO_LARGE, "the row has too many fields");
    if (md_buf_putc(&c->row, '\0') != MD_OK)
        return fail(c, err, MD_E_TOO_LARGE, "the row is too long");
    c->starts[++c->nfields] = c->row.len;
    return MD_OK;
}

/* The header row: names must be non-empty and distinct. */
static int take_header(md_csv *c, md_err *err)
{
    c->columns = calloc(c->nfields, sizeof *c->columns);
    if (!c->columns)
        return fail(c, err, MD_E_NOMEM, "out of memory");
    for (size_t i = 0; i < c->nfields; i++) {
        if (c->lens[i] == 0)
            return fail(c, err, MD_E_INVALID_PARAM, "the header has an empty column name");
        for (size_t k = 0; k < i; k++) {
            if (strcmp(c->columns[k], c->ptrs[i]) == 0)
                return fail(c, err, MD_E_INVALID_PARAM, "the header repeats a column name");
        }
        c->columns[i] = strdup(c->ptrs[i]);
        if (!c->columns[i])
            return fail(c, err, MD_E_NOMEM, "out of memory");
        c->ncolumns = i + 1;
    }
    return MD_OK;
}

/* Deliver the completed row (after its last field was closed) and start the next one. */
static int end_row(md_csv *c, md_err *err)
{
    int rc = MD_OK;
    for (size_t i = 0; i < c->nfields; i++) {
        c->ptrs[i] = c->row.data + c->starts[i];
        c->lens[i] = c->starts[i + 1] - c->starts[i] - 1;
    }
    if (c->o.header && !c->columns) {
        rc = take_header(c, err);
    } else if (c->o.header && c->nfields != c->ncolumns) {
        size_t saved_line = c->line;
        c->line = c->row_line;
        rc = fail(c, err, MD_E_INVALID_PARAM, "the row's field count differs from the header's");
        c->line = saved_line;
    } else {
        c->rows++;
        rc = c->fn ? c->fn(c->user, c->ptrs, c->lens, c->nfields, c->row_line, err) : MD_OK;
        if (rc != MD_OK) {
            c->error = rc;
            if (err)
                c->saved = *err;
        }
    }
    md_buf_reset(&c->row);
    c->nfields = 0;
    c->row_started = false;
    c->state = FIELD_START;
    return rc;
}

/* A line end outside quotes: closes the row, or skips an empty line. */
static int line_end(md_csv *c, md_err *err)
{
    int rc = MD_OK;
    if (c->row_started) {
        rc = end_field(c, err);
        rc = rc ? rc : end_row(c, err);
    }
    c->state = FIELD_START;
    c->line++;
    c->row_line = c->line;
    return rc;
}

/* One byte outside quotes (FIELD_START or UNQUOTED). */
static int step_unquoted(md_csv *c, char ch, md_err *err)
{
    if (ch == '\n')
        return line_end(c, err);
    if (ch == '\r') {
        c->state = CR_SEEN;
        return MD_OK;
    }
    c->row_started = true;
    if (ch == c->o.delim) {
        c->state = FIELD_START;
        return end_field(c, err);
    }
    if (ch == '"') {
        if (c->state == UNQUOTED)
            return fail(c, err, MD_E_INVALID_PARAM, "a quote inside an unquoted field");
        c->state = QUOTED;
        return MD_OK;
    }
    c->state = UNQUOTED;
    return put(c, ch, err);
}

static int step(md_csv *c, char ch, md_err *err)
{
    csv_assert_state(c);
    switch (c->state) {
    case FIELD_START:
    case UNQUOTED:
        return step_unquoted(c, ch, err);
    case QUOTED:
        if (ch == '"') {
            c->state = QUOTE_SEEN;
            return MD_OK;
        }
        if (ch == '\n')
            c->line++;
        return put(c, ch, err);
    case QUOTE_SEEN:
        if (ch == '"') {
            c->state = QUOTED;
            return put(c, '"', err);
        }
        if (ch == c->o.delim || ch == '\n' || ch == '\r') {
            c->state = UNQUOTED; /* the field is closed; what follows ends it */
            return step_unquoted(c, ch, err);
        }
        return fail(c, err, MD_E_INVALID_PARAM, "text after a closing quote");
    case CR_SEEN:
        if (ch != '\n')
            return fail(c, err, MD_E_INVALID_PARAM, "a CR not followed by LF outside quotes");
        return line_end(c, err);
    }
    return fail(c, err, MD_E_INTERNAL, "bad reader state");
}

int md_csv_feed(md_csv *c, const void *data, size_t n, md_err *err)
{
    if (c->error) {
        if (err)
            *err = c->saved;
        return c->error;
    }
    const char *p = data;
    for (size_t i = 0; i < n; i++) {
        int rc = step(c, p[i], err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

int md_csv_finish(md_csv *c, md_err *err)
{
    if (c->error) {
        if (err)
            *err = c->saved;
        return c->error;
    }
    if (c->state == QUOTED)
        return fail(c, err, MD_E_INVALID_PARAM, "a quoted field is not closed");
    int rc = MD_OK;
    if (c->state == CR_SEEN)
        rc = line_end(c, err); /* a final CR ends the last line */
    else if (c->row_started) {
        rc = end_field(c, err);
        rc = rc ? rc : end_row(c, err);
    }
    if (rc == MD_OK && c->o.header && !c->columns)
        rc = fail(c, err, MD_E_INVALID_PARAM, "no header row");
    return rc;
}
