/* oip_lift.c - the fast path of the OIP infer decoder: one pass over the request's JSON text that
 * checks its grammar and lifts every root.inputs[i].data that is an array of numbers and
 * booleans (flat or nested) into plain values; see oip_lift.h. jansson builds a json_t per number
 * (malloc, strtod after localeconv, free); this parses them in place.
 *
 * Invariants:
 *   1. Lifting never changes an answer: a data array is lifted only when jansson would parse those
 *      bytes to the same values (integers within long long kept exact, reals correctly rounded and
 *      finite); anything else (a string, null, an object, a bad number, an out-of-range integer,
 *      a nesting deeper than LIFT_MAX_DEPTH) leaves the bytes to jansson.
 *   2. Whatever the scan refuses (its grammar, its depth limit, OOM) lifts nothing at all, so
 *      invalid JSON gets jansson's own message from the original text.
 *   3. Bounded: recursion is at most SCAN_MAX_DEPTH levels and data nesting LIFT_MAX_DEPTH (kept
 *      with a counter, no recursion); every read is checked against the end of the text.
 *   4. Only keys written without escapes are matched ("inputs", "data"): a key with escapes is
 *      never lifted, which is slower but right.
 */
#include "api/oip_lift.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_MAX_DEPTH 64
#define LIFT_MAX_DEPTH 32

/* Where a value sits, for recognising root.inputs[i].data. */
enum { AT_OTHER, AT_ROOT, AT_INPUTS, AT_INPUT, AT_DATA };

typedef struct scan {
    const char *p, *end, *base;
    oip_lift_set *ls;
} scan;

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static const uint64_t POW10_U64[20] = {1ull,
                                       10ull,
                                       100ull,
                                       1000ull,
                                       10000ull,
                                       100000ull,
                                       1000000ull,
                                       10000000ull,
                                       100000000ull,
                                       1000000000ull,
                                       10000000000ull,
                                       100000000000ull,
                                       1000000000000ull,
                                       10000000000000ull,
                                       100000000000000ull,
                                       1000000000000000ull,
                                       10000000000000000ull,
                                       100000000000000000ull,
                                       1000000000000000000ull,
                                       10000000000000000000ull};

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static inline void ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static inline bool at(const scan *s, char c)
{
    return s->p < s->end && *s->p == c;
}

/* ---- numbers ---- */

/* strtod in the C locale on text [t, e) (not NUL-terminated); -1 when it overflows, as jansson's
 * "real number overflow". */
static int slow_real(const char *t, const char *e, double *out)
{
    char small[64], *buf = small;
    size_t n = (size_t)(e - t);
    if (n >= sizeof small) {
        buf = malloc(n + 1);
        if (!buf)
            return -1;
    }
    memcpy(buf, t, n);
    buf[n] = 0;
    pthread_once(&c_locale_once, c_locale_init);
    errno = 0;
    double d = c_locale ? strtod_l(buf, NULL, c_locale) : strtod(buf, NULL);
    int rc = (d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE ? -1 : 0;
    if (buf != small)
        free(buf);
    *out = d;
    return rc;
}

/* (n + f) * 2^-sh rounded to the nearest double, ties to even, where n >= 2^53 and the fraction f
 * in [0, 1) is nonzero exactly when sticky. The result is a normal double for every caller. */
static double round_bits(unsigned __int128 n, bool sticky, int sh)
{
    uint64_t hi = (uint64_t)(n >> 64);
    int b = hi ? 128 - __builtin_clzll(hi) : 64 - __builtin_clzll((uint64_t)n);
    int drop = b - 53; /* >= 1 */
    uint64_t mant = (uint64_t)(n >> drop);
    unsigned __int128 rem = n & (((unsigned __int128)1 << drop) - 1),
                      half = (unsigned __int128)1 << (drop - 1);
    if (rem > half || (rem == half && (sticky || (mant & 1))))
        mant++;
    if (mant >> 53) {
        mant >>= 1;
        drop++;
    }
    uint64_t bits = ((uint64_t)(52 + drop - sh + 1023) << 52) | (mant & ((1ull << 52) - 1));
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* w * 10^e correctly rounded for 0 < w < 10^19 and -19 <= e <= 19, where Clinger's fast path
 * does not apply (w > 2^53: the 17-digit numbers of a float printed in full). e >= 0: the exact
 * product in 128 bits. e < 0: w shifted left so that the integer quotient by 10^-e has 56 to 64
 * bits, the remainder as the sticky bit. */
static double scale_exact(uint64_t w, long e)
{
    if (e >= 0)
        return round_bits((unsigned __int128)w * POW10_U64[e], false, 0);
    uint64_t p = POW10_U64[-e];
    int lw = 64 - __builtin_clzll(w), lp = 64 - __builtin_clzll(p);
    int sh = 56 + lp - lw > 0 ? 56 + lp - lw : 0;
    unsigned __int128 n = (unsigned __int128)w << sh;
    uint64_t q = (uint64_t)(n / p); /* < 2^64: n < 2^(lw+sh), p >= 2^(lp-1) */
    return round_bits(q, n % p != 0, sh);
}

/* A JSON number at s->p into *v. -1 with s->p anywhere when the text is no RFC 8259 number or
 * jansson would refuse its value. The mantissa's first 19 significant digits go into w; the
 * common case (w <= 2^53, |exponent| <= 22) is exact in one IEEE operation (Clinger's fast
 * path), up to 19 digits with |exponent| <= 19 in integer arithmetic (scale_exact), the rest
 * (longer mantissas, larger exponents) goes through strtod. */
static inline __attribute__((always_inline)) int number(scan *s, oip_leaf *v)
{
    const char *p = s->p, *e = s->end, *t = p;
    bool neg = false, is_int = true, trunc = false;
    uint64_t w = 0;
    int nd = 0;
    long exp10 = 0;
    if (p < e && *p == '-') {
        neg = true;
        p++;
    }
    if (p >= e || !is_digit(*p))
        return -1;
    if (*p == '0') {
        p++;
    } else {
        for (; p < e && is_digit(*p); p++) {
            if (nd < 19) {
                w = w * 10 + (uint64_t)(*p - '0');
                nd++;
            } else {
                trunc = true;
            }
        }
    }
    if (p < e && *p == '.') {
        is_int = false;
        p++;
        if (p >= e || !is_digit(*p))
            return -1;
        for (; p < e && is_digit(*p); p++) {
            if (nd < 19) {
                w = w * 10 + (uint64_t)(*p - '0');
                nd += w != 0; /* leading zeros of 0.00x are no significant digits */
                exp10--;
            } else {
                trunc = true;
            }
        }
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        is_int = false;
        p++;
        bool eneg = false;
        if (p < e && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p >= e || !is_digit(*p))
            return -1;
        long x = 0;
        for (; p < e && is_digit(*p); p++)
            if (x < 100000)
                x = x * 10 + (*p - '0');
        exp10 += eneg ? -x : x;
    }
    s->p = p;
    if (is_int) {
        /* 19 digits fit in uint64; 20 or more (no leading zeros) are beyond long long. */
        if (trunc || (neg ? w > (uint64_t)INT64_MAX + 1 : w > (uint64_t)INT64_MAX))
            return -1;
        v->kind = OIP_LEAF_INT;
        v->v.i = neg ? (long long)(0 - w) : (long long)w;
        return 0;
    }
    v->kind = OIP_LEAF_REAL;
    if (w == 0 && !trunc) {
        v->v.d = neg ? -0.0 : 0.0;
        return 0;
    }
    if (!trunc && w <= (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
        double d = (double)w;
        d = exp10 < 0 ? d / POW10[-exp10] : d * POW10[exp10];
        v->v.d = neg ? -d : d;
        return 0;
    }
    if (!trunc && exp10 >= -19 && exp10 <= 19) {
        double d = scale_exact(w, exp10);
        v->v.d = neg ? -d : d;
        return 0;
    }
    return slow_real(t, p, &v->v.d);
}

/* ---- the lifted data arrays ---- */

/* Room for one more leaf at l->leaves[l->count]: the leaf is parsed in place (no copy through the
 * stack). */
static int reserve_leaf(oip_lifted *l)
{
    if (l->count < l->cap)
        return 0;
    size_t cap = l->cap ? l->cap * 2 : 1024;
    oip_leaf *n = realloc(l->leaves, cap * sizeof *n);
    if (!n)
        return -1;
    l->leaves = n;
    l->cap = cap;
    return 0;
}

/* One leaf: a number, true or false; -1 for anything else (not liftable). */
static int leaf(scan *s, oip_leaf *v)
{
    size_t left = (size_t)(s->end - s->p);
    if (left && *s->p != 't' && *s->p != 'f')
        return number(s, v);
    if (left >= 4 && memcmp(s->p, "true", 4) == 0) {
        s->p += 4;
        v->kind = OIP_LEAF_TRUE;
        return 0;
    }
    if (left >= 5 && memcmp(s->p, "false", 5) == 0) {
        s->p += 5;
        v->kind = OIP_LEAF_FALSE;
        return 0;
    }
    return number(s, v);
}

/* The array at s->p (the data of input idx) into l; -1 when it is not liftable or OOM. A loop with
 * a depth counter: "[" opens, "]" closes, "," separates, leaves in between. */
static int lift_array(scan *s, oip_lifted *l)
{
    int depth = 0;
    s->p++; /* the data array's '[' */
    ws(s);
    if (at(s, ']')) {
        s->p++;
        return 0;
    }
    for (;;) {
        ws(s);
        if (at(s, '[')) {
            if (++depth > LIFT_MAX_DEPTH)
                return -1;
            if (depth <= MDL_MAX_RANK && l->first_at_depth[depth] == OIP_LIFT_NONE)
                l->first_at_depth[depth] = l->count;
            s->p++;
            ws(s);
            if (!at(s, ']'))
                continue;
            s->p++;
            depth--;
        } else {
            if (reserve_leaf(l) != 0 || leaf(s, &l->leaves[l->count]) != 0)
                return -1;
            l->count++;
        }
        for (;;) { /* after a value: ',' for the next one, or ']' closing arrays */
            ws(s);
            if (at(s, ',')) {
                s->p++;
                break;
            }
            if (!at(s, ']'))
                return -1;
            s->p++;
            if (depth == 0)
                return 0;
            depth--;
        }
    }
}

/* ---- the generic scan ---- */

static int value(scan *s, int depth, int where, size_t idx);

/* A string at s->p; *plain says it has no escapes. */
static int string(scan *s, bool *plain)
{
    *plain = true;
    s->p++;
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            s->p++;
            continue;
        }
        *plain = false;
        if (++s->p >= s->end)
            return -1;
        if (*s->p == 'u') {
            if (s->end - s->p < 5)
                return -1;
            for (int k = 1; k <= 4; k++) {
                char h = s->p[k];
                if (!is_digit(h) && !(h >= 'a' && h <= 'f') && !(h >= 'A' && h <= 'F'))
                    return -1;
            }
            s->p += 5;
        } else if (*s->p && strchr("\"\\/bfnrt", *s->p)) {
            s->p++;
        } else {
            return -1;
        }
    }
    return -1;
}

/* The data of input idx: lifted when it can be, else scanned as any value. */
static int data_value(scan *s, int depth, size_t idx)
{
    oip_lift_set *ls = s->ls;
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 4;
        oip_lifted *n = realloc(ls->v, cap * sizeof *n);
        if (!n)
            return -1;
        ls->v = n;
        ls->cap = cap;
    }
    oip_lifted *l = &ls->v[ls->n];
    memset(l, 0, sizeof *l);
    for (int d = 0; d <= MDL_MAX_RANK; d++)
        l->first_at_depth[d] = OIP_LIFT_NONE;
    l->input = idx;
    const char *start = s->p;
    if (lift_array(s, l) == 0) {
        l->start = (size_t)(start - s->base);
        l->end = (size_t)(s->p - s->base);
        ls->n++;
        return 0;
    }
    free(l->leaves);
    s->p = start;
    return value(s, depth, AT_OTHER, 0);
}

static int object(scan *s, int depth, int where, size_t idx)
{
    s->p++;
    ws(s);
    if (at(s, '}')) {
        s->p++;
        return 0;
    }
    for (;;) {
        bool plain;
        if (!at(s, '"'))
            return -1;
        const char *k = s->p + 1;
        if (string(s, &plain) != 0)
            return -1;
        size_t kl = (size_t)(s->p - 1 - k);
        ws(s);
        if (!at(s, ':'))
            return -1;
        s->p++;
        ws(s);
        int child = AT_OTHER;
        if (plain && where == AT_ROOT && kl == 6 && memcmp(k, "inputs", 6) == 0)
            child = AT_INPUTS;
        else if (plain && where == AT_INPUT && kl == 4 && memcmp(k, "data", 4) == 0 && at(s, '['))
            child = AT_DATA;
        int rc = child == AT_DATA ? data_value(s, depth + 1, idx) : value(s, depth + 1, child, 0);
        if (rc != 0)
            return -1;
        ws(s);
        if (at(s, '}')) {
            s->p++;
            return 0;
        }
        if (!at(s, ','))
            return -1;
        s->p++;
        ws(s);
    }
}

static int array(scan *s, int depth, int where)
{
    s->p++;
    ws(s);
    if (at(s, ']')) {
        s->p++;
        return 0;
    }
    for (size_t i = 0;; i++) {
        if (value(s, depth + 1, where == AT_INPUTS ? AT_INPUT : AT_OTHER, i) != 0)
            return -1;
        ws(s);
        if (at(s, ']')) {
            s->p++;
            return 0;
        }
        if (!at(s, ','))
            return -1;
        s->p++;
        ws(s);
    }
}

static int literal(scan *s, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
        return -1;
    s->p += n;
    return 0;
}

/* Any JSON value at s->p (no leading whitespace). where: what the value is (AT_INPUT for the
 * idx-th element of root.inputs). */
static int value(scan *s, int depth, int where, size_t idx)
{
    oip_leaf v;
    bool plain;
    if (depth > SCAN_MAX_DEPTH || s->p >= s->end)
        return -1;
    switch (*s->p) {
    case '{':
        return object(s, depth, where == AT_INPUT || where == AT_ROOT ? where : AT_OTHER, idx);
    case '[':
        return array(s, depth, where);
    case '"':
        return string(s, &plain);
    case 't':
        return literal(s, "true");
    case 'f':
        return literal(s, "false");
    case 'n':
        return literal(s, "null");
    default:
        return number(s, &v);
    }
}

void oip_lift_free(oip_lift_set *ls)
{
    for (size_t i = 0; i < ls->n; i++)
        free(ls->v[i].leaves);
    free(ls->v);
    memset(ls, 0, sizeof *ls);
}

void oip_lift_scan(const char *text, size_t len, oip_lift_set *out)
{
    memset(out, 0, sizeof *out);
    scan s = {.p = text, .end = text + len, .base = text, .ls = out};
    ws(&s);
    int rc = value(&s, 0, AT_ROOT, 0);
    ws(&s);
    if (rc != 0 || s.p != s.end || out->n == 0)
        oip_lift_free(out); /* also the room of data arrays that were not lifted */
}
