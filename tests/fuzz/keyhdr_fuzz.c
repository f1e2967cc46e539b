/* keyhdr_fuzz.c - libFuzzer target for the Authorization header parser, the API-key shape
 * check that every request with credentials goes through, and the choice of one credential
 * from Authorization + X-API-Key (auth_pick_credential; the input split at its first newline,
 * the second half as X-API-Key, "\x01" alone meaning absent). */
#include "auth/auth.h"
#include "auth/auth_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of b[0..n) (new), or NULL for the "absent" marker "\x01". */
static char *header_value(const uint8_t *b, size_t n)
{
    if (n == 1 && b[0] == 1)
        return NULL;
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, b, n);
        s[n] = '\0';
    }
    return s;
}

static void pick(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t n1 = nl ? (size_t)(nl - data) : size;
    char *authz = header_value(data, n1);
    char *key = nl ? header_value(nl + 1, size - n1 - 1) : NULL;
    const char *cred = NULL;
    size_t n = 0;
    md_err e;
    int rc = auth_pick_credential(authz, key, &cred, &n, &e);
    if (rc == MD_OK) {
        /* the credential lies inside one of the two values and is not empty */
        int in_a = authz && cred >= authz && cred + n <= authz + strlen(authz);
        int in_k = key && cred >= key && cred + n <= key + strlen(key);
        if (n == 0 || (!in_a && !in_k))
            __builtin_trap();
    } else if (rc != MD_E_UNAUTHORIZED && rc != MD_E_BAD_REQUEST) {
        __builtin_trap();
    }
    free(authz);
    free(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pick(data, size);
    const char *tok = NULL;
    size_t n = 0;
    if (auth_parse_authorization((const char *)data, size, &tok, &n) == MD_OK) {
        /* The token must lie inside the input and be visible ASCII without spaces. */
        if (tok < (const char *)data || tok + n > (const char *)data + size || n == 0)
            __builtin_trap();
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)tok[i] <= 0x20 || (unsigned char)tok[i] > 0x7e)
                __builtin_trap();
        char id[AUTH_KEY_ID_LEN + 1];
        if (auth__parse_key(tok, n, id) == 0 && strlen(id) != AUTH_KEY_ID_LEN)
            __builtin_trap();
    }
    return 0;
}
