/* redis_url_fuzz.c - libFuzzer target for rds_url_parse (src/redis/url.c): arbitrary bytes as
 * the --redis setting. It must be refused with MD_E_INVALID_PARAM naming the field "redis"
 * (and never echo a password given in the URL), or parse into exactly one of a TCP address
 * (host of 1..255 bytes, port 1..65535) and an absolute socket path, with db in 0..15. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1);
    if (!url)
        return 0;
    memcpy(url, data, size);
    url[size] = 0;
    rds_url u;
    md_err e;
    md_err_clear(&e);
    int rc = rds_url_parse(url, &u, &e);
    if (rc != MD_OK) {
        if (rc != MD_E_INVALID_PARAM || strcmp(e.field, "redis") != 0)
            abort();
        const char *at = strchr(url, '@');
        if (at && at - url > 10 && strstr(e.msg, url))
            abort();
    } else if (u.path[0]) {
        if (u.path[0] != '/' || u.host[0] || u.port != 0)
            abort();
    } else if (!u.host[0] || strlen(u.host) >= RDS_HOST_MAX || u.port < 1 || u.port > 65535) {
        abort();
    }
    if (rc == MD_OK && (u.db < 0 || u.db > 15))
        abort();
    free(url);
    return 0;
}
