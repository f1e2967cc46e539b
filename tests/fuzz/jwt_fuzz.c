/* jwt_fuzz.c - libFuzzer target for the JWT verifier (auth_jwt_verify), which parses bytes
 * from the Authorization header before anything is trusted. Half the inputs get a valid
 * signature appended, so the fuzzer also reaches the payload parser behind the HMAC check. */
#include "auth/auth.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t SECRET[] = "fuzz-secret-0123456789abcdef-0123";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * AUTH_JWT_MAX)
        return 0;
    auth_jwt_claims c;
    md_err e;
    auth_jwt_verify((const char *)data, size, SECRET, sizeof SECRET - 1, 1700000000, &c, &e);
    if (size == 0 || (data[0] & 1) == 0)
        return 0;
    /* "<input>.<HMAC of input>": a correctly signed header.payload of arbitrary bytes. */
    char *tok = malloc(size + 64);
    if (!tok)
        return 0;
    memcpy(tok, data + 1, size - 1);
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, SECRET, sizeof SECRET - 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)tok, size - 1);
    crypto_auth_hmacsha256_final(&st, mac);
    tok[size - 1] = '.';
    sodium_bin2base64(tok + size, 64, mac, sizeof mac, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    auth_jwt_verify(tok, strlen(tok), SECRET, sizeof SECRET - 1, 1700000000, &c, &e);
    free(tok);
    return 0;
}
