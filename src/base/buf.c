/* buf.c - bounded growable buffer; see buf.h. */
#include "base/buf.h"

#include "base/err.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void md_buf_init(md_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void md_buf_free(md_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void md_buf_reset(md_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int reserve(md_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return MD_E_TOO_LARGE;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return MD_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (!p)
        return MD_E_NOMEM;
    b->data = p;
    b->cap = cap;
    return MD_OK;
}

int md_buf_append(md_buf *b, const void *p, size_t n)
{
    int rc = reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return MD_OK;
}

int md_buf_puts(md_buf *b, const char *s) { return md_buf_append(b, s, strlen(s)); }
/* One byte: the common case (room left) without reserve's checks and a 1-byte memcpy, as the
 * CSV reader and writer call it per byte (same conditions as md_buf_append's). */
int md_buf_putc(md_buf *b, char c)
{
    if (b->len < b->max && b->len + 2 <= b->cap) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return MD_OK;
    }
    return md_buf_append(b, &c, 1);
}

int md_buf_vprintf(md_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return MD_E_INTERNAL;
    int rc = reserve(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return MD_OK;
}

int md_buf_printf(md_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = md_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int md_buf_put_json_str(md_buf *b, const char *s)
{
    int rc = md_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p && rc == MD_OK; p++) {
        switch (*p) {
        case '"': rc = md_buf_puts(b, "\\\""); break;
        case '\\': rc = md_buf_puts(b, "\\\\"); break;
        case '\n': rc = md_buf_puts(b, "\\n"); break;
        case '\r': rc = md_buf_puts(b, "\\r"); break;
        case '\t': rc = md_buf_puts(b, "\\t"); break;
        default:
            if (*p < 0x20)
                rc = md_buf_printf(b, "\\u%04x", *p);
            else
                rc = md_buf_putc(b, (char)*p);
        }
    }
    return rc == MD_OK ? md_buf_putc(b, '"') : rc;
}

char *md_buf_steal(md_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    if (!p) {
        p = malloc(1);
        if (p)
            p[0] = '\0';
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

/* ---- md_buf_put_g9: "%.9g" of a float without printf ----
 *
 * %.9g rounds v to 9 significant digits d (1e8 <= d < 1e9) times 10^(x-8), then prints
 * d's digits without trailing zeros, plainly when -4 <= x < 9, else as d.ddde[+-]XX. Here
 * d = nearbyint(v * 10^(8-x)) in double: v is exact in a double, the scale 10^k is exact for
 * |k| <= 22, so the product carries one rounding (relative error <= 2^-53, under 2e-7 in
 * units of the last digit). Only when v * 10^(8-x) lies within 1e-4 of a half could that
 * error choose the other neighbour: there (and for exponents the exact powers do not cover)
 * printf decides, so the output is always printf's own.
 */
static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* v scaled to a 9-digit integer: *digits and the decimal exponent *x of its first digit.
 * 0 when the shortcut cannot decide (printf must). */
static int g9_digits(double v, uint32_t *digits, int *x)
{
    int e = (int)floor(log10(v));
    for (int tries = 0; tries < 2; tries++) {
        int k = 8 - e;
        if (k > 22 || k < -22)
            return 0;
        double s = k >= 0 ? v * pow10_exact[k] : v / pow10_exact[-k];
        double r = nearbyint(s);
        if (fabs(fabs(s - r) - 0.5) < 1e-4)
            return 0;
        if (r >= 1e9) { /* log10 was low by one, or rounding carried into a tenth digit */
            e++;
            continue;
        }
        if (r < 1e8) { /* log10 was high by one */
            e--;
            continue;
        }
        *digits = (uint32_t)r;
        *x = e;
        return 1;
    }
    return 0;
}

/* printf's "%.<prec>g" layout of a number from its sign, its prec significant digits dig
 * (trailing zeros dropped here) and its decimal exponent x; appended to b. Shared by put_g9
 * and put_g17, which differ only in how they find the digits. */
static int g_layout(md_buf *b, int neg, const char *dig, int prec, int x)
{
    char out[48];
    int nd = prec;
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    size_t n = 0;
    if (neg)
        out[n++] = '-';
    if (x < -4 || x >= prec) { /* d.ddd e+XX */
        out[n++] = dig[0];
        if (nd > 1) {
            out[n++] = '.';
            memcpy(out + n, dig + 1, (size_t)nd - 1);
            n += (size_t)nd - 1;
        }
        int ax = abs(x);
        out[n++] = 'e';
        out[n++] = x < 0 ? '-' : '+';
        if (ax >= 100)
            out[n++] = (char)('0' + ax / 100);
        out[n++] = (char)('0' + ax / 10 % 10);
        out[n++] = (char)('0' + ax % 10);
    } else if (x >= 0) { /* ddd[.ddd] */
        int ip = x + 1;
        for (int i = 0; i < ip; i++)
            out[n++] = i < nd ? dig[i] : '0';
        if (nd > ip) {
            out[n++] = '.';
            memcpy(out + n, dig + ip, (size_t)(nd - ip));
            n += (size_t)(nd - ip);
        }
    } else { /* 0.000ddd */
        out[n++] = '0';
        out[n++] = '.';
        for (int i = -1; i > x; i--)
            out[n++] = '0';
        memcpy(out + n, dig, (size_t)nd);
        n += (size_t)nd;
    }
    return md_buf_append(b, out, n);
}

int md_buf_put_g9(md_buf *b, float f)
{
    double v = f;
    if (v == 0)
        return md_buf_puts(b, signbit(v) ? "-0" : "0");
    uint32_t d;
    int x;
    if (!isfinite(v) || !g9_digits(fabs(v), &d, &x))
        return md_buf_printf(b, "%.9g", v);
    char dig[10];
    for (int i = 8; i >= 0; i--, d /= 10)
        dig[i] = (char)('0' + d % 10);
    return g_layout(b, v < 0, dig, 9, x);
}

/* ---- md_buf_put_g / md_buf_put_g17: "%.<prec>g" of a double without printf ----
 *
 * Exact, not approximated: v = m 2^e with m odd is N / 10^k for the integer N = m 2^e (e >= 0,
 * k = 0) or N = m 5^-e (e < 0, k = -e). N's decimal digits are v's exact expansion, rounded
 * here to prec significant digits half to even (a tie only when every digit after the cut is
 * a zero) as glibc's printf rounds in the default rounding mode. N is held in BIG_LIMBS 32-bit
 * limbs (every double from about 1e-142 up to DBL_MAX: float-valued tensors as well as the
 * doubles answers compute, prices, revenues); printf writes the rest (tinier values), so the
 * output is always printf's own, byte for byte. About 2.5x faster than printf on such doubles
 * (10x faster than the earlier 128-bit-or-printf version on them), as fast on floats.
 */
#define BIG_LIMBS 36     /* 1152 bits: m 2^e for every e <= 971, m 5^k for k <= 473 */

/* A non-negative integer in little-endian 32-bit limbs; n limbs used, the top one non-zero. */
typedef struct big {
    uint32_t d[BIG_LIMBS];
    int n;
} big;

/* b *= f (f < 2^32); 0 when the product does not fit. */
static int big_mul(big *b, uint32_t f)
{
    uint64_t carry = 0;
    for (int i = 0; i < b->n; i++) {
        uint64_t t = (uint64_t)b->d[i] * f + carry;
        b->d[i] = (uint32_t)t;
        carry = t >> 32;
    }
    if (!carry)
        return 1;
    if (b->n == BIG_LIMBS)
        return 0;
    b->d[b->n++] = (uint32_t)carry;
    return 1;
}

/* b /= 10^9; returns the remainder. The divisor is a constant so that the compiler turns each
 * 64-bit division into a multiplication (a real division per limb would cost more than printf). */
static uint32_t big_div_e9(big *b)
{
    const uint64_t q = 1000000000u;
    uint64_t r = 0;
    for (int i = b->n - 1; i >= 0; i--) {
        uint64_t cur = (r << 32) | b->d[i];
        uint64_t quo = cur / q;
        b->d[i] = (uint32_t)quo;
        r = cur - quo * q;
    }
    while (b->n > 0 && b->d[b->n - 1] == 0)
        b->n--;
    return (uint32_t)r;
}

static const uint32_t POW5[14] = {1,       5,        25,        125,        625,       3125,
                                  15625,   78125,    390625,    1953125,    9765625,   48828125,
                                  244140625, 1220703125};

/* The leading decimal digits of v > 0 finite: N = m 2^e or m 5^k in limbs, cut into groups of
 * 9 digits (a division by the constant 10^9 is a multiplication); the top groups give dig (no
 * leading zero, 19 to 27 digits unless N has fewer), *k is adjusted so that v = dig.rest /
 * 10^k, and *sticky says whether any digit of the rest is not a zero (all rounding needs of
 * them). Returns the digit count, 0 when N needs more than BIG_LIMBS (printf must). */
static int exact_digits(double v, char *dig, int *k, int *sticky)
{
    int e;
    uint64_t m = (uint64_t)ldexp(frexp(v, &e), 53);
    e -= 53;
    int tz = __builtin_ctzll(m);
    m >>= tz;
    e += tz;
    *k = e < 0 ? -e : 0;
    *sticky = 0;
    big b = {.d = {(uint32_t)m, (uint32_t)(m >> 32)}, .n = m >> 32 ? 2 : 1};
    for (; e > 0; e -= 31)
        if (!big_mul(&b, 1u << (e < 31 ? e : 31)))
            return 0;
    for (int left = *k; left > 0; left -= 13) /* 5^13 < 2^32 */
        if (!big_mul(&b, POW5[left >= 13 ? 13 : left]))
            return 0;
    uint32_t grp[BIG_LIMBS * 32 / 29 + 1]; /* groups of 9 digits (29.9 bits), lowest first */
    int ng = 0;
    while (b.n > 0)
        grp[ng++] = big_div_e9(&b);
    int top = ng - 1 - (ng >= 3 ? 2 : ng - 1); /* the lowest group kept */
    for (int g = 0; g < top; g++)
        *sticky |= grp[g] != 0;
    *k -= 9 * top;
    int len = 0;
    for (int g = ng - 1; g >= top; g--) {
        char t[9];
        uint32_t x = grp[g];
        for (int i = 8; i >= 0; i--, x /= 10)
            t[i] = (char)('0' + x % 10);
        int skip = 0;
        while (g == ng - 1 && skip < 8 && t[skip] == '0')
            skip++;
        memcpy(dig + len, t + skip, (size_t)(9 - skip));
        len += 9 - skip;
    }
    return len;
}

#if LDBL_MANT_DIG >= 64
static const long double P10L[28] = {
    1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,
    1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L,
    1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L}; /* exact: 5^27 < 2^64 */

/* The shortcut of round_digits: s = v 10^(prec-1-e) in a 64-bit-mantissa long double is one
 * rounding away from exact (v and the power are exact; relative error <= 2^-64, so under
 * 0.006 in units of the last digit below 10^17). Rounding s to an integer is therefore right
 * unless s lies within 0.02 of a half (a tie, or too close to tell): there, and for exponents
 * the exact powers do not cover, 0 (the exact digits decide). */
static int fast_digits(double v, int prec, char *dig, int *x)
{
    int e = (int)floor(log10(v));
    for (int tries = 0; tries < 3; tries++) {
        int k = prec - 1 - e;
        if (k > 27 || k < -27)
            return 0;
        long double sv = k >= 0 ? (long double)v * P10L[k] : (long double)v / P10L[-k];
        if (sv < P10L[prec - 1]) { /* log10 was high by one */
            e--;
            continue;
        }
        if (sv >= P10L[prec]) { /* ... or low by one */
            e++;
            continue;
        }
        long double fl = floorl(sv), frac = sv - fl;
        if (fabsl(frac - 0.5L) < 0.02L)
            return 0;
        uint64_t r = (uint64_t)fl + (frac > 0.5L);
        *x = e;
        if (r == (uint64_t)P10L[prec]) { /* 99..9.6 rounded up to 100..0 */
            r /= 10;
            (*x)++;
        }
        for (int i = prec - 1; i >= 0; i--, r /= 10)
            dig[i] = (char)('0' + r % 10);
        return 1;
    }
    return 0;
}
#else
static int fast_digits(double v, int prec, char *dig, int *x)
{
    (void)v, (void)prec, (void)dig, (void)x;
    return 0;
}
#endif

/* v > 0 finite, rounded to prec (1..17) significant digits: dig (prec chars), the decimal
 * exponent *x of the first one. 0 when the digits are not known (printf must). */
static int round_digits(double v, int prec, char *dig, int *x)
{
    if (fast_digits(v, prec, dig, x))
        return 1;
    char all[27];
    int k = 0, rest = 0;
    int len = exact_digits(v, all, &k, &rest);
    if (len == 0)
        return 0;
    *x = len - 1 - k;
    memset(dig, '0', (size_t)prec);
    memcpy(dig, all, (size_t)(len < prec ? len : prec));
    if (len <= prec)
        return 1;
    for (int i = prec + 1; i < len; i++)
        rest |= all[i] != '0';
    int up = all[prec] > '5' || (all[prec] == '5' && (rest || (dig[prec - 1] - '0') % 2 == 1));
    for (int i = prec - 1; up && i >= 0; i--) {
        up = dig[i] == '9';
        dig[i] = up ? '0' : (char)(dig[i] + 1);
    }
    if (up) { /* 99..9 rounded to 100..0 */
        dig[0] = '1';
        (*x)++;
    }
    return 1;
}

int md_buf_put_g(md_buf *b, double v, int prec)
{
    if (prec < 1 || prec > 17)
        return md_buf_printf(b, "%.*g", prec, v);
    if (v == 0)
        return md_buf_puts(b, signbit(v) ? "-0" : "0");
    char dig[17];
    int x;
    if (!isfinite(v) || !round_digits(fabs(v), prec, dig, &x))
        return md_buf_printf(b, "%.*g", prec, v);
    return g_layout(b, v < 0, dig, prec, x);
}

int md_buf_put_g17(md_buf *b, double v)
{
    return md_buf_put_g(b, v, 17);
}
