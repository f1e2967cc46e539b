/* header.c - parsing the Authorization request header. These bytes come straight from the
 * network, so the parser is small, bounded and fuzzed (tests/fuzz/keyhdr_fuzz.c). */
#include "auth/auth.h"

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
