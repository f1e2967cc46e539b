/* url.c - rds_url_parse: redis://host[:port][/db] and unix:///path[?db=N].
 *
 * Invariants:
 *   1. A parsed URL names a host of 1..255 bytes (brackets of an IPv6 literal removed) and a
 *      port in 1..65535, or an absolute socket path; db is in 0..15.
 *   2. Every refusal names the field "redis" and says which part is wrong (the URL itself may
 *      carry a password, so it is not echoed).
 */
#include "redis/redis.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bad(md_err *err, const char *what)
{
    return md_fail(
        err, MD_E_INVALID_PARAM, "redis",
        "invalid redis URL: %s (expected redis://host[:port][/db] or unix:///path[?db=N])", what);
}

/* A decimal in lo..hi filling exactly n bytes of s. */
static int parse_int(const char *s, size_t n, long lo, long hi, int *out)
{
    if (n == 0 || n > 5)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_unix(const char *p, rds_url *out, md_err *err)
{
    const char *q = strchr(p, '?');
    size_t n = q ? (size_t)(q - p) : strlen(p);
    if (n < 2 || p[0] != '/' || n >= sizeof out->path)
        return bad(err, "the socket path must be absolute and shorter than 256 bytes");
    memcpy(out->path, p, n);
    out->path[n] = 0;
    if (q && (strncmp(q, "?db=", 4) != 0 || parse_int(q + 4, strlen(q + 4), 0, 15, &out->db) != 0))
        return bad(err, "the only query is ?db=N with N in 0..15");
    return MD_OK;
}

/* host[:port] of n bytes; "[v6]" or "[v6]:port" for IPv6 literals. */
static int parse_host(const char *h, size_t n, rds_url *out, md_err *err)
{
    const char *colon = NULL;
    const char *host = h;
    size_t hn = n;
    if (n > 0 && h[0] == '[') {
        const char *close = memchr(h, ']', n);
        if (!close)
            return bad(err, "unclosed [ in the host");
        host = h + 1;
        hn = (size_t)(close - h - 1);
        colon = close + 1 < h + n ? close + 1 : NULL;
        if (colon && *colon != ':')
            return bad(err, "junk after ] in the host");
    } else {
        colon = memchr(h, ':', n);
        if (colon)
            hn = (size_t)(colon - h);
    }
    if (memchr(h, '@', n))
        return bad(err, "credentials in the URL are not supported");
    if (hn == 0 || hn >= sizeof out->host)
        return bad(err, "the host is empty or too long");
    memcpy(out->host, host, hn);
    out->host[hn] = 0;
    out->port = 6379;
    if (colon && parse_int(colon + 1, (size_t)(h + n - colon - 1), 1, 65535, &out->port) != 0)
        return bad(err, "the port must be in 1..65535");
    return MD_OK;
}

int rds_url_parse(const char *url, rds_url *out, md_err *err)
{
    memset(out, 0, sizeof *out);
    if (!url || !*url)
        return bad(err, "empty");
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix(url + 7, out, err);
    if (strncmp(url, "redis://", 8) != 0)
        return bad(err, "the scheme must be redis:// or unix://");
    const char *h = url + 8;
    const char *slash = strchr(h, '/');
    size_t n = slash ? (size_t)(slash - h) : strlen(h);
    int rc = parse_host(h, n, out, err);
    if (rc == MD_OK && slash && slash[1] &&
        parse_int(slash + 1, strlen(slash + 1), 0, 15, &out->db) != 0)
        rc = bad(err, "the database must be a number in 0..15");
    return rc;
}
