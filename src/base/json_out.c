/* json_out.c - md_json_out (json_out.h): jansson's compact JSON text, written directly into an
 * md_buf.
 *
 * Invariants:
 *   1. The output is json_dumpb's with JSON_COMPACT | JSON_ENCODE_ANY byte for byte
 *      (tests/base/json_out_test.c compares them on generated documents): the same escapes,
 *      the same number text, the same key order.
 *   2. Recursion is bounded by JSON_OUT_MAX_DEPTH, like jansson's dump (which refuses
 *      deeper values).
 */
#include "base/json_out.h"

#include "base/err.h"

#include <inttypes.h>
#include <string.h>

#define JSON_OUT_MAX_DEPTH 2048

/* jansson's dump_string: '"' and '\\' escaped, control characters as short escapes or
 * \u00XX in upper case, everything else (UTF-8 included) as it is. */
static int out_string(md_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = md_buf_putc(b, '"');
    size_t run = 0; /* bytes copied as they are, pending */
    for (size_t i = 0; i < len && rc == MD_OK; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        rc = md_buf_append(b, s + i - run, run);
        run = 0;
        char esc[6] = {'\\', 0, '0', '0', hex[c >> 4], hex[c & 15]};
        size_t n = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            n = 6;
        }
        if (rc == MD_OK)
            rc = md_buf_append(b, esc, n);
    }
    if (rc == MD_OK)
        rc = md_buf_append(b, s + len - run, run);
    return rc == MD_OK ? md_buf_putc(b, '"') : rc;
}

/* jansson's jsonp_dtostr on "%.17g": ".0" added to an integer-looking real, the exponent's
 * '+' and leading zeros dropped. */
static int out_real(md_buf *b, double v)
{
    size_t start = b->len;
    int rc = md_buf_put_g17(b, v);
    if (rc != MD_OK)
        return rc;
    char *t = b->data + start, *e = memchr(t, 'e', b->len - start);
    if (!e)
        return memchr(t, '.', b->len - start) ? MD_OK : md_buf_puts(b, ".0");
    char *from = e + 1, *to = e + 1;
    if (*from == '-')
        from = ++to;
    else if (*from == '+')
        from++;
    while (*from == '0' && from[1])
        from++;
    size_t tail = (size_t)(b->data + b->len - from);
    memmove(to, from, tail);
    b->len = (size_t)(to - b->data) + tail;
    b->data[b->len] = '\0';
    return MD_OK;
}

static int out_integer(md_buf *b, json_int_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[sizeof tmp - 1 - n++] = '-';
    return md_buf_append(b, tmp + sizeof tmp - n, n);
}

static int out_value(md_buf *b, const json_t *v, int depth);

static int out_object(md_buf *b, const json_t *o, int depth)
{
    int rc = md_buf_putc(b, '{');
    int first = 1;
    for (void *it = json_object_iter((json_t *)o); it && rc == MD_OK;
         it = json_object_iter_next((json_t *)o, it)) {
        if (!first)
            rc = md_buf_putc(b, ',');
        first = 0;
        if (rc == MD_OK)
            rc = out_string(b, json_object_iter_key(it), json_object_iter_key_len(it));
        if (rc == MD_OK)
            rc = md_buf_putc(b, ':');
        if (rc == MD_OK)
            rc = out_value(b, json_object_iter_value(it), depth + 1);
    }
    return rc == MD_OK ? md_buf_putc(b, '}') : rc;
}

static int out_array(md_buf *b, const json_t *a, int depth)
{
    int rc = md_buf_putc(b, '[');
    for (size_t i = 0; i < json_array_size(a) && rc == MD_OK; i++) {
        if (i)
            rc = md_buf_putc(b, ',');
        if (rc == MD_OK)
            rc = out_value(b, json_array_get(a, i), depth + 1);
    }
    return rc == MD_OK ? md_buf_putc(b, ']') : rc;
}

static int out_value(md_buf *b, const json_t *v, int depth)
{
    if (depth > JSON_OUT_MAX_DEPTH)
        return MD_E_INVALID_PARAM;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return out_object(b, v, depth);
    case JSON_ARRAY:
        return out_array(b, v, depth);
    case JSON_STRING:
        return out_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return out_integer(b, json_integer_value(v));
    case JSON_REAL:
        return out_real(b, json_real_value(v));
    case JSON_TRUE:
        return md_buf_append(b, "true", 4);
    case JSON_FALSE:
        return md_buf_append(b, "false", 5);
    default:
        return md_buf_append(b, "null", 4);
    }
}

int md_json_out(md_buf *b, const json_t *v)
{
    return v ? out_value(b, v, 0) : MD_E_INVALID_PARAM;
}
