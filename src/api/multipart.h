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
    const uint8_t *data; /* borrowed from the body passed to mp_find; NULL from the streaming
                            parser (the bytes are wherever the caller fed them from) */
    size_t len;
    uint64_t offset;     /* where the data starts in the body */
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

/* ---- streaming: the same grammar fed in pieces, for a body spooled to a file ----
 * mp_stream accepts exactly the bodies mp_parse accepts and finds the same parts at the same
 * offsets (a fuzz target checks it against mp_parse), but it holds only one part's header block
 * (MP_HEADERS_MAX) whatever the body's size: the delimiter is matched byte by byte (KMP, with a
 * memchr skip), so a part's data is reported as it goes by and never held. */
typedef struct mp_stream mp_stream;

typedef struct mp_stream_cb {
    /* A part's headers are in: part->name/filename/content_type and part->offset are set
     * (data NULL, len 0). May be NULL. */
    int (*on_part)(void *user, const mp_part *part);
    /* Bytes of the current part's data, in order (borrowed for the call: from the caller's
     * buffer or from the parser). May be NULL (then the parser only locates the parts). */
    int (*on_data)(void *user, const uint8_t *data, size_t n);
    /* The part's closing delimiter was found: part->len is set. May be NULL. */
    int (*on_end)(void *user, const mp_part *part);
} mp_stream_cb;
/* Callbacks return MD_OK or an md code, which stops the parser and is returned by the feed. */

/* New parser for boundary (see mp_boundary), at most max_parts parts (itself at most
 * MP_PARTS_MAX; more is MD_E_BAD_REQUEST naming "files"). cb is copied, user borrowed until
 * mp_stream_free. Ownership: *out new, free with mp_stream_free (NULL is a no-op). */
int mp_stream_new(const char *boundary, size_t max_parts, const mp_stream_cb *cb, void *user,
                  mp_stream **out, md_err *err);
/* Feed the next n bytes. Errors as mp_parse's, or a callback's code; sticky: after an error
 * every call returns it again. */
int mp_stream_feed(mp_stream *s, const void *data, size_t n, md_err *err);
/* The body ended: MD_OK when it ended after the closing delimiter, else MD_E_BAD_REQUEST. */
int mp_stream_finish(mp_stream *s, md_err *err);
void mp_stream_free(mp_stream *s);

/* Every part of the size bytes of file fd (read with pread from offset 0, in blocks: memory
 * constant in size) into parts[0..*n), like mp_parse: data NULL, offset and len say where each
 * part's bytes are in the file. fd borrowed. MD_E_IO when the file cannot be read. */
int mp_file_parse(int fd, uint64_t size, const char *boundary, mp_part *parts, size_t max,
                  size_t *n, md_err *err);

/* Copy a client-given file name into out (cap >= 2) keeping only its last path component,
 * replacing control characters, quotes and invalid UTF-8 with '_', truncating on a character
 * boundary. An empty or dot-only result becomes "". */
void mp_sanitize_filename(const char *in, size_t n, char *out, size_t cap);

/* Internal, shared by multipart.c and multipart_stream.c: parse one part's header block
 * [h, h+n) (CRLF-separated lines, no final blank line) into part's metadata. */
int mp__parse_headers(const char *h, size_t n, mp_part *part, md_err *err);

#endif
