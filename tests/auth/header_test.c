/* header_test.c - parsing "Authorization: Bearer <token>". */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
