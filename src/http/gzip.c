/* gzip.c - response compression: the Accept-Encoding check, which types are worth it, and the
 * deflate call itself (zlib, gzip wrapper). Bodies are compressed in one shot into the request
 * arena; large bodies come from HEAVY handlers, so this runs on a compute worker for them and
 * never holds up an I/O thread for long.
 */
#include "http/http_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* Level 5: most of level 9's ratio on JSON and SVG at about a third of the CPU. */
#define GZIP_LEVEL 5

/* Parse the q value after a token ("; q=0.5"); 1 when absent or malformed-but-present. */
static double qvalue(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == ';' || *p == '\t'))
        p++;
    if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=')
        return strtod(p + 2, NULL);
    return 1.0;
}

bool http__accepts_gzip(const char *ae)
{
    if (!ae)
        return false;
    const char *p = ae;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *tok = p;
        while (*p && *p != ',' && *p != ';' && *p != ' ')
            p++;
        size_t tl = (size_t)(p - tok);
        const char *end = p + strcspn(p, ",");
        bool match = (tl == 4 && strncasecmp(tok, "gzip", 4) == 0) || (tl == 1 && tok[0] == '*');
        if (match && qvalue(p, end) > 0.0)
            return true;
        p = end;
    }
    return false;
}

bool http__compressible(const char *ct)
{
    if (!ct)
        return false;
    static const char *const types[] = {"text/",           "application/json", "image/svg+xml",
                                        "application/javascript", "application/xml",
                                        "application/problem+json"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strncasecmp(ct, types[i], strlen(types[i])) == 0)
            return true;
    return false;
}

int http__gzip(md_arena *a, const void *src, size_t len, void **out, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* 15 window bits + 16 = gzip header and trailer instead of zlib's. */
    if (deflateInit2(&z, GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return MD_E_NOMEM;
    uLong cap = deflateBound(&z, (uLong)len);
    unsigned char *dst = md_arena_alloc(a, cap);
    if (!dst || len > UINT32_MAX) {
        deflateEnd(&z);
        return dst ? MD_E_INTERNAL : MD_E_NOMEM;
    }
    z.next_in = (Bytef *)(uintptr_t)src;
    z.avail_in = (uInt)len;
    z.next_out = dst;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t n = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END)
        return MD_E_INTERNAL;
    *out = dst;
    *out_len = n;
    return MD_OK;
}
