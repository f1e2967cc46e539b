/* header_test.c - parsing "Authorization: Bearer <token>" and choosing the one credential of
 * a request that sends Authorization, X-API-Key or both. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "auth/auth.h"

static int parse(const char *h, char *out, size_t cap)
{
    const char *t;
    size_t n;
    int rc = auth_parse_authorization(h, h ? strlen(h) : 0, &t, &n);
    if (rc == MD_OK)
        snprintf(out, cap, "%.*s", (int)n, t);
    return rc;
}

static void test_accepts(void **state)
{
    (void)state;
    char tok[64];
    const char *ok[][2] = {{"Bearer abc", "abc"},
                           {"bearer abc", "abc"},
                           {"BEARER   a.b.c  ", "a.b.c"},
                           {"  Bearer\tmdk_1_x", "mdk_1_x"}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(parse(ok[i][0], tok, sizeof tok), MD_OK);
        assert_string_equal(tok, ok[i][1]);
    }
}

static void test_refuses(void **state)
{
    (void)state;
    char tok[64];
    const char *bad[] = {NULL,           "",          "Bearer",         "Bearer ",
                         "Bearerabc",    "Basic abc", "Bearer a b",     "Bearer a\x01",
                         "Bearer \xc3\xa9", "Token abc", "Bearer\n abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(parse(bad[i], tok, sizeof tok), MD_E_UNAUTHORIZED);
    /* Bounded: 4096 token bytes pass, 4097 do not. */
    static char big[4200];
    memcpy(big, "Bearer ", 7);
    memset(big + 7, 'x', 4096);
    big[7 + 4096] = '\0';
    const char *t;
    size_t n;
    assert_int_equal(auth_parse_authorization(big, strlen(big), &t, &n), MD_OK);
    assert_int_equal(n, 4096);
    big[7 + 4096] = 'x';
    big[7 + 4097] = '\0';
    assert_int_equal(auth_parse_authorization(big, strlen(big), &t, &n), MD_E_UNAUTHORIZED);
}

/* pick(authorization, x_api_key) into out; returns the md code. */
static int pick(const char *authz, const char *key, char *out, size_t cap, md_err *e)
{
    const char *c = NULL;
    size_t n = 0;
    int rc = auth_pick_credential(authz, key, &c, &n, e);
    if (rc == MD_OK)
        snprintf(out, cap, "%.*s", (int)n, c);
    else
        assert_null(c);
    return rc;
}

static void test_pick_credential(void **state)
{
    (void)state;
    char got[64];
    md_err e;
    assert_int_equal(pick("Bearer mdk_a_1", NULL, got, sizeof got, &e), MD_OK);
    assert_string_equal(got, "mdk_a_1");
    assert_int_equal(pick(NULL, " mdk_b_2\t", got, sizeof got, &e), MD_OK);
    assert_string_equal(got, "mdk_b_2");
    /* the same credential in both headers is one credential */
    assert_int_equal(pick("Bearer mdk_a_1", "mdk_a_1 ", got, sizeof got, &e), MD_OK);
    assert_string_equal(got, "mdk_a_1");
    /* two different credentials: 400 naming both headers, whichever is valid */
    assert_int_equal(pick("Bearer mdk_a_1", "mdk_b_2", got, sizeof got, &e), MD_E_BAD_REQUEST);
    assert_string_equal(e.field, "Authorization");
    assert_non_null(strstr(md_err_message(&e), "Authorization"));
    assert_non_null(strstr(md_err_message(&e), "X-API-Key"));
    assert_int_equal(pick("Bearer mdk_a_1", "mdk_a_12", got, sizeof got, &e), MD_E_BAD_REQUEST);
    assert_int_equal(pick("Bearer a.b.c", "mdk_a_1", got, sizeof got, &e), MD_E_BAD_REQUEST);
    /* a malformed Authorization is refused, not rescued by X-API-Key; nothing at all is 401 */
    assert_int_equal(pick("Basic Zm9vOmJhcg==", "mdk_a_1", got, sizeof got, &e), MD_E_UNAUTHORIZED);
    assert_string_equal(e.field, "Authorization");
    assert_int_equal(pick(NULL, NULL, got, sizeof got, &e), MD_E_UNAUTHORIZED);
    assert_int_equal(pick(NULL, "  ", got, sizeof got, &e), MD_E_UNAUTHORIZED);
    /* an empty X-API-Key carries no credential, so it conflicts with none */
    assert_int_equal(pick("Bearer mdk_a_1", " ", got, sizeof got, &e), MD_OK);
    assert_string_equal(got, "mdk_a_1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_pick_credential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
