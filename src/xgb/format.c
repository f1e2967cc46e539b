/* format.c - a bounds check of XGBoost model bytes before libxgboost parses them.
 *
 * Why: XGBoost 1.7's UBJSON reader (src/common/json.cc, UBJReader) trusts every length in the
 * file: a truncated or forged model makes it memcpy past the end of the buffer (ASan reports
 * a heap overflow on a model cut in half), and both its readers recurse once per nesting
 * level. So before XGBoost sees the bytes we walk them with the same grammar and refuse
 * anything that would leave the buffer or nest deeper than XGB__MAX_DEPTH.
 *
 * Format dispatch mirrors Learner::LoadModel(dmlc::Stream*): byte 0 must be '{' (anything
 * else goes to the legacy binary reader, which we never use); the first non-space byte after
 * it is '"' for JSON text or a letter for UBJSON.
 *
 * UBJSON as XGBoost writes and reads it (big-endian numbers):
 *   value  = '{' (key value)* '}' | '[' array | 'Z' | 'T' | 'F' | 'S' str | scalar
 *   key,str= 'L' int64 len, len bytes
 *   array  = '$' type '#' 'L' int64 n, n fixed-size items    (type d:4 U:1 l:4 L:8)
 *          | '#' 'L' int64 n, n values | value* ']'
 *   scalar = 'i' 1 | 'U' 1 | 'C' 1 | 'I' 2 | 'l' 4 | 'L' 8 | 'd' 4   ('D' and 'H' refused)
 */
#include "xgb/xgb_int.h"

#include <stdint.h>

typedef struct cursor {
    const unsigned char *b;
    size_t len, pos;
    md_err *err;
} cursor;

static int bad(cursor *c, const char *what)
{
    return md_fail(c->err, MD_E_MODEL_INVALID, "model", "malformed UBJSON model at byte %zu: %s",
                   c->pos, what);
}

static int take(cursor *c, size_t n, const char *what)
{
    if (c->len - c->pos < n)
        return bad(c, what);
    c->pos += n;
    return MD_OK;
}

static int expect(cursor *c, unsigned char ch, const char *what)
{
    if (c->pos >= c->len || c->b[c->pos] != ch)
        return bad(c, what);
    c->pos++;
    return MD_OK;
}

/* 'L' then a big-endian int64 that must be >= 0 and at most limit. */
static int read_len(cursor *c, uint64_t limit, uint64_t *out)
{
    if (expect(c, 'L', "expected an 'L' length") || c->len - c->pos < 8)
        return bad(c, "truncated length");
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | c->b[c->pos + i];
    c->pos += 8;
    if (v > limit)
        return bad(c, "length past the end of the file");
    *out = v;
    return MD_OK;
}

static int skip_str(cursor *c)
{
    uint64_t n = 0;
    int rc = read_len(c, c->len - c->pos, &n);
    return rc ? rc : take(c, (size_t)n, "truncated string");
}

static int value(cursor *c, int depth);

static int typed_array(cursor *c)
{
    if (c->pos >= c->len)
        return bad(c, "truncated typed array");
    unsigned char t = c->b[c->pos++];
    size_t size = t == 'U' ? 1 : t == 'd' || t == 'l' ? 4 : t == 'L' ? 8 : 0;
    if (size == 0)
        return bad(c, "unsupported typed-array type");
    uint64_t n = 0;
    int rc = expect(c, '#', "expected '#' in a typed array");
    if (rc == MD_OK)
        rc = read_len(c, (c->len - c->pos) / size, &n);
    return rc ? rc : take(c, (size_t)n * size, "truncated typed array");
}

static int array(cursor *c, int depth)
{
    if (c->pos < c->len && c->b[c->pos] == '$') {
        c->pos++;
        return typed_array(c);
    }
    if (c->pos < c->len && c->b[c->pos] == '#') {
        c->pos++;
        uint64_t n = 0;
        int rc = read_len(c, c->len - c->pos, &n); /* every item takes at least one byte */
        for (uint64_t i = 0; rc == MD_OK && i < n; i++)
            rc = value(c, depth + 1);
        return rc;
    }
    while (c->pos < c->len && c->b[c->pos] != ']') {
        int rc = value(c, depth + 1);
        if (rc)
            return rc;
    }
    return expect(c, ']', "unterminated array");
}

static int object(cursor *c, int depth)
{
    while (c->pos < c->len && c->b[c->pos] != '}') {
        int rc = skip_str(c);
        if (rc == MD_OK)
            rc = value(c, depth + 1);
        if (rc)
            return rc;
    }
    return expect(c, '}', "unterminated object");
}

static int value(cursor *c, int depth)
{
    if (depth > XGB__MAX_DEPTH)
        return bad(c, "nested too deeply");
    if (c->pos >= c->len)
        return bad(c, "truncated value");
    switch (c->b[c->pos++]) {
    case '{': return object(c, depth);
    case '[': return array(c, depth);
    case 'Z': case 'T': case 'F': return MD_OK;
    case 'S': return skip_str(c);
    case 'i': case 'U': case 'C': return take(c, 1, "truncated int8");
    case 'I': return take(c, 2, "truncated int16");
    case 'l': case 'd': return take(c, 4, "truncated 32-bit number");
    case 'L': return take(c, 8, "truncated int64");
    default: c->pos--; return bad(c, "unknown or unsupported marker");
    }
}

/* JSON text: XGBoost's reader is bounds-checked but recursive, so only the nesting depth
 * (outside strings) is limited here; syntax errors are left to it. */
static int check_json_depth(const unsigned char *b, size_t len, md_err *err)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = b[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '{' || ch == '[') {
            if (++depth > XGB__MAX_DEPTH)
                return md_fail(err, MD_E_MODEL_INVALID, "model", "JSON model nested too deeply at byte %zu", i);
        } else if (ch == '}' || ch == ']') {
            depth--;
        }
    }
    return MD_OK;
}

int xgb__check_format(const unsigned char *b, size_t len, md_err *err)
{
    if (len < 2 || b[0] != '{')
        return md_fail(err, MD_E_MODEL_INVALID, "model",
                       "not an XGBoost JSON or UBJSON model (the legacy binary format is not accepted)");
    size_t i = 1;
    while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r'))
        i++;
    if (i < len && b[i] == '"')
        return check_json_depth(b, len, err);
    if (i != 1 || !((b[1] >= 'a' && b[1] <= 'z') || (b[1] >= 'A' && b[1] <= 'Z')))
        return md_fail(err, MD_E_MODEL_INVALID, "model", "neither a JSON nor a UBJSON model");
    cursor c = {b, len, 0, err};
    return value(&c, 0);
}
