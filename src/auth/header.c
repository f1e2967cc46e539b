/* header.c - parsing the Authorization and X-API-Key request headers. These bytes come straight
 * from the network, so the parser is small, bounded and fuzzed (tests/fuzz/keyhdr_fuzz.c).
 *
 * Invariants:
 *   1. A request names at most one credential. Both headers may be sent (clients that set both
 *      for proxies exist), but then they must carry the same credential: if they differ, the
 *      request is refused (400) instead of silently preferring one, which would let a proxy
 *      or an attacker that controls one header decide whose identity the request runs as.
 *   2. A malformed Authorization header is refused (401) even when X-API-Key is good. */
#include "auth/auth.h"

#include <string.h>
#include <strings.h>

#define TOKEN_MAX 4096

static int is_space(char c) { return c == ' ' || c == '\t'; }

int auth_parse_authorization(const char *hdr, size_t len, const char **tok, size_t *tok_len)
{
    *tok = NULL;
    *tok_len = 0;
    if (!hdr)
        return MD_E_UNAUTHORIZED;
    size_t i = 0;
    while (i < len && is_space(hdr[i]))
        i++;
    if (len - i < 7 || strncasecmp(hdr + i, "bearer", 6) != 0 || !is_space(hdr[i + 6]))
        return MD_E_UNAUTHORIZED;
    i += 6;
    while (i < len && is_space(hdr[i]))
        i++;
    size_t end = len;
    while (end > i && is_space(hdr[end - 1]))
        end--;
    if (end == i || end - i > TOKEN_MAX)
        return MD_E_UNAUTHORIZED;
    for (size_t j = i; j < end; j++)
        if ((unsigned char)hdr[j] < 0x21 || (unsigned char)hdr[j] > 0x7e)
            return MD_E_UNAUTHORIZED;   /* inner spaces, control or non-ASCII bytes */
    *tok = hdr + i;
    *tok_len = end - i;
    return MD_OK;
}

int auth_pick_credential(const char *authorization, const char *x_api_key, const char **cred,
                         size_t *cred_len, md_err *err)
{
    *cred = NULL;
    *cred_len = 0;
    const char *tok = NULL, *key = x_api_key;
    size_t tok_len = 0, key_len = 0;
    if (authorization &&
        auth_parse_authorization(authorization, strlen(authorization), &tok, &tok_len) != MD_OK)
        return md_fail(err, MD_E_UNAUTHORIZED, "Authorization",
                       "expected \"Bearer <API key or token>\"");
    if (key) {
        key_len = strlen(key);
        while (key_len > 0 && is_space(*key))
            key++, key_len--;
        while (key_len > 0 && is_space(key[key_len - 1]))
            key_len--;
    }
    if (key && key_len == 0)
        key = NULL; /* an empty X-API-Key carries no credential */
    if (tok && key && (tok_len != key_len || memcmp(tok, key, tok_len) != 0))
        return md_fail(err, MD_E_BAD_REQUEST, "Authorization",
                       "the Authorization and X-API-Key headers carry different credentials; "
                       "send one");
    *cred = tok ? tok : key;
    *cred_len = tok ? tok_len : key_len;
    if (!*cred || *cred_len == 0)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "missing credentials");
    return MD_OK;
}
