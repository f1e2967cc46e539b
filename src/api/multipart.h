/* multipart.h - a bounded multipart/form-data parser (RFC 7578 / RFC 2046) for uploads.
 *
 * The body is parsed in place once it has been received whole (the route's body limit caps it),
 * so the parser never allocates: parts point into the body. Everything about the envelope is
 * bounded (boundary length, header block size, number of parts), so a hostile body costs at most
 * one linear scan. Filenames are metadata only: they come back sanitised (no directory part, no
 * control characters, valid UTF-8) and are never used to build a path.
 */
#ifndef MD_API_MULTIPART_H
#define MD_API_MULTIPART_H

#include "base/err.h"

#include <stddef.h>
#include <stdint.h>

#define MP_BOUNDARY_MAX 70  /* RFC 2046 */
#define MP_HEADERS_MAX 8192 /* bytes of header lines per part */
#define MP_PARTS_MAX 64

typedef struct mp_part {
    const uint8_t *data; /* borrowed from the body passed to mp_find */
    size_t len;
    char name[64];          /* form field name */
    char filename[256];     /* sanitised client filename; "" when the part had none */
    char content_type[128]; /* the part's Content-Type, "" when absent */
} mp_part;

/* The boundary parameter of a "multipart/form-data; boundary=..." Content-Type value (quoted or
 * not) into out (cap >= MP_BOUNDARY_MAX + 1). MD_E_UNSUPPORTED_MEDIA when the type is not
 * multipart/form-data, MD_E_BAD_REQUEST for a missing or malformed boundary. */
int mp_boundary(const char *content_type, char *out, size_t cap, md_err *err);

/* Find the first part whose form name is `field` in body. out->data is borrowed from body.
 * MD_E_MISSING_FIELD (field named) when no such part, MD_E_BAD_REQUEST for a malformed or
 * over-limit envelope. */
int mp_find(const void *body, size_t len, const char *boundary, const char *field, mp_part *out,
            md_err *err);

/* Every part of body, in order, into parts[0..*n) (at most max, itself at most MP_PARTS_MAX;
 * more is MD_E_BAD_REQUEST naming "files"). Parts' data are borrowed from body. Errors as
 * mp_find's envelope errors. */
int mp_parse(const void *body, size_t len, const char *boundary, mp_part *parts, size_t max,
             size_t *n, md_err *err);

/* Copy a client-given file name into out (cap >= 2) keeping only its last path component,
 * replacing control characters, quotes and invalid UTF-8 with '_', truncating on a character
 * boundary. An empty or dot-only result becomes "". */
void mp_sanitize_filename(const char *in, size_t n, char *out, size_t cap);

#endif
