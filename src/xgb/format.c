/* format.c - read XGBoost model bytes (JSON text or UBJSON) into a jansson document ourselves,
 * before libxgboost ever parses them.
 *
 * Why: XGBoost 1.7 trusts its model files. Its UBJSON reader (src/common/json.cc, UBJReader)
 * follows every length in the file (a model cut in half makes it memcpy past the buffer), both
 * readers recurse once per nesting level, and RegTree::LoadModel indexes nodes with the file's
 * parent ids (a forged parent id segfaults; found by tests/fuzz/xgb_fuzz.c). So xgb.c checks a
 * document parsed here against the model schema first, and only bytes whose document passed
 * reach XGBoost. Both must see the same document, so this reader follows XGBoost's grammar:
 *
 * Format dispatch mirrors Learner::LoadModel(dmlc::Stream*): byte 0 must be '{' (anything
 * else goes to the legacy binary reader, which we never use); the first non-space byte after
 * it is '"' for JSON text or a letter for UBJSON. Duplicate keys are refused in both (XGBoost
 * keeps the first, jansson would keep the last).
 *
 * UBJSON as XGBoost writes and reads it (big-endian numbers):
 *   value  = '{' (key value)* '}' | '[' array | 'Z' | 'T' | 'F' | 'S' str | scalar
 *   key,str= 'L' int64 len, len bytes
 *   array  = '$' type '#' 'L' int64 n, n fixed-size items    (type d:f32 U:u8 l:i32 L:i64)
 *          | '#' 'L' int64 n, n values | value* ']'
 *   scalar = 'i' i8 | 'U' u8 | 'C' char | 'I' i16 | 'l' i32 | 'L' i64 | 'd' f32
 *            ('D' and 'H' are refused, as XGBoost refuses them)
 */
#include "xgb/xgb_int.h"

#include <stdint.h>
#include <string.h>

typedef struct cursor {
    const unsigned char *b;
    size_t len, pos;
    md_err *err;
} cursor;

static json_t *bad(cursor *c, const char *what)
{
    if (c->err->code == MD_OK)
        md_fail(c->err, MD_E_MODEL_INVALID, "model", "malformed UBJSON model at byte %zu: %s",
                c->pos, what);
    return NULL;
}

static int have(cursor *c, size_t n)
{
    return c->len - c->pos >= n;
}

/* n bytes (1, 2, 4 or 8) big-endian at the cursor, advanced past. Caller checked have(). */
static uint64_t be(cursor *c, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | c->b[c->pos + i];
    c->pos += n;
    return v;
}

/* 'L' then an int64 count of items of unit bytes each, which must all fit in what is left of
 * the buffer after the count; -1 on error. */
static int64_t read_len(cursor *c, size_t unit)
{
    if (!have(c, 9) || c->b[c->pos] != 'L') {
        bad(c, "expected an 'L' length");
        return -1;
    }
    c->pos++;
    uint64_t v = be(c, 8);
    if (v > (c->len - c->pos) / unit) {
        bad(c, "length past the end of the file");
        return -1;
    }
    return (int64_t)v;
}

/* One item of type t (a scalar marker or a typed-array type) as a new json value. */
static json_t *scalar(cursor *c, unsigned char t)
{
    size_t size = t == 'I' ? 2 : (t == 'l' || t == 'd') ? 4 : t == 'L' ? 8 : 1;
    if (!have(c, size))
        return bad(c, "truncated number");
    uint64_t v = be(c, size);
    switch (t) {
    case 'i':
        return json_integer((int8_t)v);
    case 'U':
        return json_integer((uint8_t)v);
    case 'C':
        return json_integer((char)v);
    case 'I':
        return json_integer((int16_t)v);
    case 'l':
        return json_integer((int32_t)v);
    case 'L':
        return json_integer((int64_t)v);
    default: {
        uint32_t u = (uint32_t)v;
        float f;
        memcpy(&f, &u, sizeof f);
        return json_real(f);
    }
    }
}

static json_t *str(cursor *c)
{
    int64_t n = read_len(c, 1);
    if (n < 0)
        return NULL;
    json_t *s = json_stringn((const char *)c->b + c->pos, (size_t)n);
    c->pos += (size_t)n;
    return s ? s : bad(c, "a string is not valid UTF-8");
}

static json_t *value(cursor *c, int depth);

/* Append items to a new array: n of them (typed: each of type t) or until ']' when n < 0. */
static json_t *items(cursor *c, int depth, int64_t n, unsigned char t)
{
    json_t *a = json_array();
    for (int64_t i = 0; a && (n < 0 ? c->pos < c->len && c->b[c->pos] != ']' : i < n); i++) {
        json_t *v = t ? scalar(c, t) : value(c, depth + 1);
        if (!v || json_array_append_new(a, v) != 0) {
            json_decref(a);
            return bad(c, "bad array item");
        }
    }
    if (a && n < 0) {
        if (c->pos >= c->len) {
            json_decref(a);
            return bad(c, "unterminated array");
        }
        c->pos++; /* ']' */
    }
    return a;
}

static json_t *array(cursor *c, int depth)
{
    if (have(c, 1) && c->b[c->pos] == '$') {
        if (!have(c, 3) || c->b[c->pos + 2] != '#')
            return bad(c, "truncated typed array");
        unsigned char t = c->b[c->pos + 1];
        size_t size = t == 'U' ? 1 : (t == 'd' || t == 'l') ? 4 : t == 'L' ? 8 : 0;
        if (size == 0)
            return bad(c, "unsupported typed-array type");
        c->pos += 3;
        int64_t n = read_len(c, size);
        return n < 0 ? NULL : items(c, depth, n, t);
    }
    if (have(c, 1) && c->b[c->pos] == '#') {
        c->pos++;
        int64_t n = read_len(c, 1); /* every item takes at least one byte */
        return n < 0 ? NULL : items(c, depth, n, 0);
    }
    return items(c, depth, -1, 0);
}

static json_t *object(cursor *c, int depth)
{
    json_t *o = json_object();
    while (o && c->pos < c->len && c->b[c->pos] != '}') {
        int64_t n = read_len(c, 1);
        const char *key = (const char *)c->b + c->pos;
        c->pos += n < 0 ? 0 : (size_t)n;
        json_t *v = n < 0 ? NULL : value(c, depth + 1);
        if (v && json_object_getn(o, key, (size_t)n)) {
            json_decref(v);
            v = NULL;
        }
        /* json_object_setn_new takes v even when it fails (bad UTF-8 key) */
        if (!v || json_object_setn_new(o, key, (size_t)n, v) != 0) {
            json_decref(o);
            return bad(c, "bad, duplicate or non-UTF-8 key");
        }
    }
    if (o && c->pos >= c->len) {
        json_decref(o);
        return bad(c, "unterminated object");
    }
    if (o)
        c->pos++; /* '}' */
    return o;
}

static json_t *value(cursor *c, int depth)
{
    if (depth > XGB__MAX_DEPTH)
        return bad(c, "nested too deeply");
    if (!have(c, 1))
        return bad(c, "truncated value");
    unsigned char m = c->b[c->pos++];
    switch (m) {
    case '{':
        return object(c, depth);
    case '[':
        return array(c, depth);
    case 'Z':
        return json_null();
    case 'T':
        return json_true();
    case 'F':
        return json_false();
    case 'S':
        return str(c);
    case 'i':
    case 'U':
    case 'C':
    case 'I':
    case 'l':
    case 'L':
    case 'd':
        return scalar(c, m);
    default:
        c->pos--;
        return bad(c, "unknown or unsupported marker");
    }
}

/* JSON text: XGBoost's reader recurses per level, so the nesting depth (outside strings) is
 * limited before jansson or XGBoost parse anything. */
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
                return md_fail(err, MD_E_MODEL_INVALID, "model",
                               "JSON model nested too deeply at byte %zu", i);
        } else if (ch == '}' || ch == ']') {
            depth--;
        }
    }
    return MD_OK;
}

static int parse_json_text(const unsigned char *b, size_t len, json_t **out, md_err *err)
{
    int rc = check_json_depth(b, len, err);
    if (rc)
        return rc;
    json_error_t jerr;
    *out = json_loadb((const char *)b, len, JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK, &jerr);
    if (!*out)
        return md_fail(err, MD_E_MODEL_INVALID, "model",
                       "malformed JSON model at line %d column %d: %.120s", jerr.line, jerr.column,
                       jerr.text);
    return MD_OK;
}

int xgb__parse_doc(const unsigned char *b, size_t len, json_t **out, md_err *err)
{
    md_err local = {0};
    md_err *e = err ? err : &local;
    *out = NULL;
    if (len < 2 || b[0] != '{')
        return md_fail(
            e, MD_E_MODEL_INVALID, "model",
            "not an XGBoost JSON or UBJSON model (the legacy binary format is not accepted)");
    size_t i = 1;
    while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r'))
        i++;
    if (i < len && b[i] == '"')
        return parse_json_text(b, len, out, e);
    if (i != 1 || !((b[1] >= 'a' && b[1] <= 'z') || (b[1] >= 'A' && b[1] <= 'Z')))
        return md_fail(e, MD_E_MODEL_INVALID, "model", "neither a JSON nor a UBJSON model");
    cursor c = {b, len, 0, e};
    md_err_clear(e);
    *out = value(&c, 0);
    if (*out)
        return MD_OK;
    return e->code != MD_OK ? e->code
                            : md_fail(e, MD_E_NOMEM, "model", "out of memory reading the model");
}
