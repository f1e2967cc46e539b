/* jwt.c - JSON Web Tokens, HS256 only, written on libsodium's HMAC-SHA256 and base64url.
 *
 * Only what modeld issues is accepted: header {"alg":"HS256"[, "typ":"JWT"]}, payload with
 * string sub and role and integer iat and exp. Everything else is refused, in particular
 * alg "none" and any other algorithm (the classic algorithm-confusion attacks), and any other
 * header field (kid, jku, jwk, x5u, crit, ...): they ask a verifier to pick or fetch a key,
 * which modeld never does, so a token carrying one was not made by modeld.
 *
 * Invariants:
 *   1. The signature is checked (constant time, crypto_verify_32) before the payload is even
 *      decoded, so unauthenticated bytes never reach the JSON parser beyond the small header.
 *   2. Every part has a size bound before decoding; the token as a whole at most AUTH_JWT_MAX.
 */
#include "auth/auth.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define HEADER_MAX 256
#define PAYLOAD_MAX 768
#define CLOCK_SKEW_S 60

static const char JWT_HEADER[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static void hmac(const uint8_t *key, size_t klen, const char *msg, size_t n,
                 uint8_t mac[crypto_auth_hmacsha256_BYTES])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, klen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, n);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
}

/* Append base64url(data) to out at *pos; 0 or -1 when it does not fit. */
static int put_b64(char *out, size_t cap, size_t *pos, const void *data, size_t n)
{
    size_t need = sodium_base64_ENCODED_LEN(n, B64);
    if (*pos + need > cap)
        return -1;
    sodium_bin2base64(out + *pos, need, data, n, B64);
    *pos += need - 1;   /* need counts the NUL */
    return 0;
}

static char *claims_json(const auth_jwt_claims *c)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "sub", c->sub, "role", auth_role_name(c->role),
                          "iat", (json_int_t)c->iat, "exp", (json_int_t)c->exp);
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

int auth_jwt_sign(const auth_jwt_claims *c, const uint8_t *secret, size_t secret_len,
                  char *out, size_t cap, md_err *err)
{
    if (!c->sub[0] || c->role < AUTH_ROLE_READ || c->role > AUTH_ROLE_ADMIN || c->exp <= c->iat)
        return md_fail(err, MD_E_INVALID_PARAM, "claims", "sub, role and exp > iat are required");
    char *payload = claims_json(c);
    if (!payload)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    size_t pos = 0;
    int bad = put_b64(out, cap, &pos, JWT_HEADER, sizeof JWT_HEADER - 1);
    bad = bad || pos + 1 >= cap;
    if (!bad)
        out[pos++] = '.';
    bad = bad || put_b64(out, cap, &pos, payload, strlen(payload));
    free(payload);
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    if (!bad)
        hmac(secret, secret_len, out, pos, mac);
    bad = bad || pos + 1 >= cap;
    if (!bad)
        out[pos++] = '.';
    bad = bad || put_b64(out, cap, &pos, mac, sizeof mac);
    if (bad)
        return md_fail(err, MD_E_TOO_LARGE, NULL, "token buffer too small");
    return MD_OK;
}

/* Value of a base64url digit, -1 for other bytes. Hand-written instead of
 * sodium_base642bin because decoding was most of the cost of a verify, and nothing decoded
 * here is secret (the expected MAC is compared in constant time after decoding). */
static int b64_digit(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decode one unpadded base64url part into out (NUL-terminated, at most max bytes). Strict:
 * a length of 4k+1 and unused trailing bits that are not zero are refused, so each byte
 * string has exactly one accepted encoding. */
static int b64_part(const char *p, size_t n, uint8_t *out, size_t max, size_t *got)
{
    if (n == 0 || n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > max)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_digit((unsigned char)p[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (acc & ((1u << bits) - 1))
        return -1;
    out[o] = '\0';
    *got = o;
    return 0;
}

static int check_header(const char *h, size_t n)
{
    /* The header modeld issues, base64url-encoded: accepted without decoding or parsing. */
    static const char OWN[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
    if (n == sizeof OWN - 1 && memcmp(h, OWN, n) == 0)
        return 0;
    uint8_t buf[HEADER_MAX + 1];
    size_t got = 0;
    if (b64_part(h, n, buf, HEADER_MAX, &got) != 0)
        return -1;
    json_t *o = json_loadb((const char *)buf, got, JSON_REJECT_DUPLICATES, NULL);
    int ok = json_is_object(o);
    const char *alg = ok ? json_string_value(json_object_get(o, "alg")) : NULL;
    json_t *typ = ok ? json_object_get(o, "typ") : NULL;
    ok = ok && alg && strcmp(alg, "HS256") == 0;
    ok = ok && (!typ || (json_is_string(typ) && strcmp(json_string_value(typ), "JWT") == 0));
    /* alg and typ only: every other field (kid, jku, crit, ...) is refused */
    ok = ok && json_object_size(o) == 1u + (typ != NULL);
    json_decref(o);
    return ok ? 0 : -1;
}

static int int_claim(json_t *o, const char *k, int64_t *v)
{
    json_t *x = json_object_get(o, k);
    if (!json_is_integer(x))
        return -1;
    *v = json_integer_value(x);
    return 0;
}

/* Seconds since the epoch that callers may turn into milliseconds without overflow. */
static int time_ok(int64_t t) { return t >= 0 && t <= ((int64_t)1 << 40); }

static int parse_claims(const char *p, size_t n, auth_jwt_claims *c, md_err *err)
{
    uint8_t buf[PAYLOAD_MAX + 1];
    size_t got = 0;
    if (b64_part(p, n, buf, PAYLOAD_MAX, &got) != 0)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "malformed token payload");
    json_t *o = json_loadb((const char *)buf, got, JSON_REJECT_DUPLICATES, NULL);
    const char *sub = json_is_object(o) ? json_string_value(json_object_get(o, "sub")) : NULL;
    const char *role = json_is_object(o) ? json_string_value(json_object_get(o, "role")) : NULL;
    int rc = MD_OK;
    memset(c, 0, sizeof *c);
    if (!sub || !sub[0] || strlen(sub) >= sizeof c->sub || !role ||
        auth_role_parse(role, &c->role, NULL) != MD_OK || int_claim(o, "iat", &c->iat) != 0 ||
        int_claim(o, "exp", &c->exp) != 0 || !time_ok(c->iat) || !time_ok(c->exp))
        rc = md_fail(err, MD_E_UNAUTHORIZED, NULL, "token claims are missing or invalid");
    else
        memcpy(c->sub, sub, strlen(sub) + 1);
    json_decref(o);
    return rc;
}

int auth_jwt_verify(const char *tok, size_t len, const uint8_t *secret, size_t secret_len,
                    int64_t now_s, auth_jwt_claims *out, md_err *err)
{
    if (!tok || len == 0 || len > AUTH_JWT_MAX)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "malformed token");
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "malformed token");
    if (check_header(tok, (size_t)(d1 - tok)) != 0)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "unsupported token header (only HS256)");
    uint8_t sig[crypto_auth_hmacsha256_BYTES + 1], mac[crypto_auth_hmacsha256_BYTES];
    size_t sig_len = 0;
    const char *s = d2 + 1;
    if (b64_part(s, len - (size_t)(s - tok), sig, sizeof sig - 1, &sig_len) != 0 ||
        sig_len != crypto_auth_hmacsha256_BYTES)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "bad token signature");
    hmac(secret, secret_len, tok, (size_t)(d2 - tok), mac);
    if (crypto_verify_32(sig, mac) != 0)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "bad token signature");
    auth_jwt_claims c;
    int rc = parse_claims(d1 + 1, (size_t)(d2 - d1 - 1), &c, err);
    if (rc != MD_OK)
        return rc;
    if (c.exp <= now_s)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "token expired");
    if (c.iat > now_s + CLOCK_SKEW_S)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "token issued in the future");
    *out = c;
    return MD_OK;
}
