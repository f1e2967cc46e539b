/* buf.h - a growable byte buffer with a hard maximum size (curl's dynbuf "toobig").
 *
 * Every buffer that takes untrusted bytes is created with the largest size it may reach, so a
 * client or a file can never make it grow without bound: appends past the maximum fail with
 * MD_E_TOO_LARGE and leave the buffer as it was. The data is always NUL-terminated (the NUL is
 * not counted in len), so text can be used as a C string.
 */
#ifndef MD_BASE_BUF_H
#define MD_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct md_buf {
    char *data;     /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max;     /* maximum len; appends beyond fail */
} md_buf;

/* Initialise an empty buffer that may hold at most max bytes. No allocation yet. */
void md_buf_init(md_buf *b, size_t max);
/* Free the data; the buffer is empty again and may be reused. */
void md_buf_free(md_buf *b);
/* Empty the buffer but keep its memory. */
void md_buf_reset(md_buf *b);

/* Append n bytes. Returns MD_OK, MD_E_TOO_LARGE (over max) or MD_E_NOMEM. */
int md_buf_append(md_buf *b, const void *p, size_t n);
int md_buf_puts(md_buf *b, const char *s);
int md_buf_putc(md_buf *b, char c);
int md_buf_printf(md_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int md_buf_vprintf(md_buf *b, const char *fmt, va_list ap);

/* Append s as a JSON string literal: quotes, backslash and control bytes escaped (\n, \r, \t
 * short forms, \u00XX for the rest). Bytes >= 0x80 are copied as they are (UTF-8 passes through). */
int md_buf_put_json_str(md_buf *b, const char *s);

/* Append v as printf("%.9g", v) writes it (the digits that make a float round-trip), byte for
 * byte, at a fraction of printf's cost: tensors of floats are what inference answers are made
 * of. v must be finite (JSON has no NaN / Infinity). Returns as md_buf_append. */
int md_buf_put_g9(md_buf *b, float v);

/* Append v as printf("%.<prec>g", v) writes it, byte for byte, exactly (v's exact decimal
 * expansion in 128-bit or multi-limb integer arithmetic, rounded half to even; printf itself
 * for doubles below about 1e-142 and for prec outside 1..17). v must be finite. Returns as
 * md_buf_append. */
int md_buf_put_g(md_buf *b, double v, int prec);
/* md_buf_put_g(b, v, 17): what jansson writes for a real. */
int md_buf_put_g17(md_buf *b, double v);

/* Hand the data to the caller (new, free() it) and leave the buffer empty. *len gets the length.
 * Returns an empty allocated string for an empty buffer, NULL only on OOM. */
char *md_buf_steal(md_buf *b, size_t *len);

#endif
