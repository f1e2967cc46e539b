/* jwt_test.c - HS256 tokens: a token made by an independent implementation (Python's hmac +
 * base64) verifies, sign/verify round trip, expiry, tampering with each part, alg "none" and
 * other algorithms, the wrong secret, missing or mistyped claims, malformed shapes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "auth/auth.h"

static const uint8_t SECRET[] = "0123456789abcdef0123456789abcdef";
#define SLEN (sizeof SECRET - 1)
#define NOW 1700000100

/* Made with Python: hmac.new(SECRET, b64(header) + "." + b64(payload), sha256). */
static const char PY_TOKEN[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhMWIyYzNkNGU1ZjYiLCJyb2xlIjoid3JpdGUiLCJp"
    "YXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDkwMH0.cK10Izfk3vhtyr3K0wU8-p2xkv9tF-WblcCBGIsIn1s";
static const char ALG_NONE[] =
    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhMWIyYzNkNGU1ZjYiLCJyb2xlIjoiYWRtaW4iLCJp"
    "YXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDkwMH0.";
static const char ALG_HS512[] =
    "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhMWIyYzNkNGU1ZjYiLCJyb2xlIjoiYWRtaW4iLCJp"
    "YXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDkwMH0._4JQLURegPLsDJ_BuZBAWpst0JRctRoHvOAq1iEtaQc";
static const char NO_EXP[] =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhMWIyYzNkNGU1ZjYiLCJyb2xlIjoiYWRtaW4iLCJpYXQiOjE3MDAwMDAw"
    "MDB9.HifQC_Ykrf33I6ridQTNXiMeAUICpCD35u3uOVp8_oM";
static const char BAD_ROLE[] =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhMWIyYzNkNGU1ZjYiLCJyb2xlIjoicm9vdCIsImlhdCI6MTcwMDAwMDAw"
    "MCwiZXhwIjoxNzAwMDAwOTAwfQ.DwAPpY5i5I8VYW6a6qEXw244bqTzHHpsyoCJ5Op_LTQ";
static const char EXP_STRING[] =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhMWIyYzNkNGU1ZjYiLCJyb2xlIjoicmVhZCIsImlhdCI6MTcwMDAwMDAw"
    "MCwiZXhwIjoiMTcwMDAwMDkwMCJ9.CVr_ySlRAJxu1dK4uj-TJbmAJX7E3a_r3QWPBjgRxzA";

/* Correctly signed (Python's hmac, as above) but with header fields modeld never writes:
 * {"alg":"HS256","typ":"JWT","kid":"1"} and {"alg":"HS256","jku":"https://evil.example/k.json"};
 * and the plain {"alg":"HS256"}, which is accepted. */
static const char HDR_KID[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6IjEifQ.eyJzdWIiOiJhMWIyYzNkNGU1ZjYiLCJyb2xlIjoid"
    "3JpdGUiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDkwMH0.LieW5EczMdh3GXAelUvplFpB3Ep1YGc7S-ikjIh"
    "tM3o";
static const char HDR_JKU[] =
    "eyJhbGciOiJIUzI1NiIsImprdSI6Imh0dHBzOi8vZXZpbC5leGFtcGxlL2suanNvbiJ9.eyJzdWIiOiJhMWIyYzNkNGU"
    "1ZjYiLCJyb2xlIjoid3JpdGUiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDkwMH0.JhB5vdhXUNIeMe1_89D7"
    "7XcreONIw9NVU5dKQ0zxMHg";
static const char HDR_ALG_ONLY[] =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhMWIyYzNkNGU1ZjYiLCJyb2xlIjoid3JpdGUiLCJpYXQiOjE3MDAwMDAwMDAs"
    "ImV4cCI6MTcwMDAwMDkwMH0.XQLAYmMOGPsKggTqUhmnTV7Cz449MU0iBMMmqlVpP9s";

static int verify(const char *t, int64_t now, auth_jwt_claims *c, md_err *e)
{
    return auth_jwt_verify(t, strlen(t), SECRET, SLEN, now, c, e);
}

static void test_independent_vector(void **state)
{
    (void)state;
    auth_jwt_claims c;
    md_err e;
    assert_int_equal(verify(PY_TOKEN, NOW, &c, &e), MD_OK);
    assert_string_equal(c.sub, "a1b2c3d4e5f6");
    assert_int_equal(c.role, AUTH_ROLE_WRITE);
    assert_int_equal(c.iat, 1700000000);
    assert_int_equal(c.exp, 1700000900);
}

static void test_round_trip_and_expiry(void **state)
{
    (void)state;
    auth_jwt_claims in = {.sub = "k1", .role = AUTH_ROLE_ADMIN, .iat = NOW, .exp = NOW + 60}, out;
    char tok[AUTH_JWT_MAX];
    md_err e;
    assert_int_equal(auth_jwt_sign(&in, SECRET, SLEN, tok, sizeof tok, &e), MD_OK);
    assert_non_null(strchr(tok, '.'));
    assert_null(strchr(tok, '='));   /* base64url without padding */
    assert_int_equal(verify(tok, NOW + 59, &out, &e), MD_OK);
    assert_string_equal(out.sub, "k1");
    assert_int_equal(out.role, AUTH_ROLE_ADMIN);
    assert_int_equal(verify(tok, NOW + 60, &out, &e), MD_E_UNAUTHORIZED);
    assert_string_equal(md_err_message(&e), "token expired");
    assert_int_equal(verify(tok, NOW - 61, &out, &e), MD_E_UNAUTHORIZED);   /* from the future */
    assert_int_equal(verify(tok, NOW - 60, &out, &e), MD_OK);              /* within the skew */
    char small[40];
    assert_int_equal(auth_jwt_sign(&in, SECRET, SLEN, small, sizeof small, &e), MD_E_TOO_LARGE);
    /* Times that would overflow when turned into milliseconds are refused, signed or not. */
    auth_jwt_claims far = {.sub = "k1", .role = AUTH_ROLE_READ, .iat = NOW, .exp = INT64_MAX};
    assert_int_equal(auth_jwt_sign(&far, SECRET, SLEN, tok, sizeof tok, &e), MD_OK);
    assert_int_equal(verify(tok, NOW, &out, &e), MD_E_UNAUTHORIZED);
    auth_jwt_claims bad = {.sub = "", .role = AUTH_ROLE_READ, .iat = 1, .exp = 2};
    assert_int_equal(auth_jwt_sign(&bad, SECRET, SLEN, tok, sizeof tok, &e), MD_E_INVALID_PARAM);
}

static void test_tamper(void **state)
{
    (void)state;
    auth_jwt_claims c;
    md_err e;
    char t[sizeof PY_TOKEN];
    /* Flip one character in each of the three parts: every change must be refused. */
    size_t d1 = (size_t)(strchr(PY_TOKEN, '.') - PY_TOKEN);
    size_t d2 = (size_t)(strrchr(PY_TOKEN, '.') - PY_TOKEN);
    size_t where[] = {3, d1 + 5, d1 + 40, d2 + 4, sizeof PY_TOKEN - 3};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        memcpy(t, PY_TOKEN, sizeof t);
        t[where[i]] = t[where[i]] == 'A' ? 'B' : 'A';
        assert_int_equal(verify(t, NOW, &c, &e), MD_E_UNAUTHORIZED);
    }
    /* A role raised by splicing another token's payload keeps the original signature: refused. */
    char spliced[600];
    const char *other_payload = strchr(ALG_HS512, '.');
    snprintf(spliced, sizeof spliced, "%.*s%.*s%s", (int)d1, PY_TOKEN,
             (int)(strrchr(ALG_HS512, '.') - other_payload), other_payload, PY_TOKEN + d2);
    assert_int_equal(verify(spliced, NOW, &c, &e), MD_E_UNAUTHORIZED);
    assert_string_equal(md_err_message(&e), "bad token signature");
    /* The last signature digit 's' (44) carries 2 unused bits; 't' (45) decodes to the same
     * bytes. Such a second spelling of a valid token must be refused, not accepted. */
    memcpy(t, PY_TOKEN, sizeof t);
    assert_int_equal(t[sizeof PY_TOKEN - 2], 's');
    t[sizeof PY_TOKEN - 2] = 't';
    assert_int_equal(verify(t, NOW, &c, &e), MD_E_UNAUTHORIZED);
}

static void test_algorithms_and_secret(void **state)
{
    (void)state;
    auth_jwt_claims c;
    md_err e;
    assert_int_equal(verify(ALG_NONE, NOW, &c, &e), MD_E_UNAUTHORIZED);
    assert_int_equal(verify(ALG_HS512, NOW, &c, &e), MD_E_UNAUTHORIZED);
    assert_string_equal(md_err_message(&e), "unsupported token header (only HS256)");
    static const uint8_t other[] = "fedcba9876543210fedcba9876543210";
    assert_int_equal(auth_jwt_verify(PY_TOKEN, strlen(PY_TOKEN), other, sizeof other - 1, NOW, &c,
                                     &e),
                     MD_E_UNAUTHORIZED);
    assert_string_equal(md_err_message(&e), "bad token signature");
}

/* jwt.c promises that every header field but alg and typ is refused. */
static void test_unknown_header_fields(void **state)
{
    (void)state;
    auth_jwt_claims c;
    md_err e;
    assert_int_equal(verify(HDR_KID, NOW, &c, &e), MD_E_UNAUTHORIZED);
    assert_string_equal(md_err_message(&e), "unsupported token header (only HS256)");
    assert_int_equal(verify(HDR_JKU, NOW, &c, &e), MD_E_UNAUTHORIZED);
    assert_string_equal(md_err_message(&e), "unsupported token header (only HS256)");
    assert_int_equal(verify(HDR_ALG_ONLY, NOW, &c, &e), MD_OK);
    assert_string_equal(c.sub, "a1b2c3d4e5f6");
}

static void test_claims_and_shapes(void **state)
{
    (void)state;
    auth_jwt_claims c;
    md_err e;
    assert_int_equal(verify(NO_EXP, NOW, &c, &e), MD_E_UNAUTHORIZED);
    assert_string_equal(md_err_message(&e), "token claims are missing or invalid");
    assert_int_equal(verify(BAD_ROLE, NOW, &c, &e), MD_E_UNAUTHORIZED);
    assert_int_equal(verify(EXP_STRING, NOW, &c, &e), MD_E_UNAUTHORIZED);
    const char *shapes[] = {"", ".", "..", "a.b", "a.b.c.d", "eyJ.eyJ.", "....",
                            "eyJhbGciOiJIUzI1NiJ9..sig", "!!!.???.***"};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        assert_int_equal(verify(shapes[i], NOW, &c, &e), MD_E_UNAUTHORIZED);
    char huge[AUTH_JWT_MAX + 10];
    memset(huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    huge[10] = huge[20] = '.';
    assert_int_equal(verify(huge, NOW, &c, &e), MD_E_UNAUTHORIZED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_independent_vector), cmocka_unit_test(test_round_trip_and_expiry),
        cmocka_unit_test(test_tamper),             cmocka_unit_test(test_algorithms_and_secret),
        cmocka_unit_test(test_unknown_header_fields),
        cmocka_unit_test(test_claims_and_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
