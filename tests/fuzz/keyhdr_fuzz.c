/* keyhdr_fuzz.c - libFuzzer target for the Authorization header parser and the API-key shape
 * check that every request with credentials goes through. */
#include "auth/auth.h"
#include "auth/auth_int.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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
