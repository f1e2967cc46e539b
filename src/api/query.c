/* query.c - query-string arguments shared by several resources (see api_int.h). */
#include "api/api_int.h"

#include <stdlib.h>

int api__query_int(http_req *req, const char *name, long long lo, long long hi, long long def,
                   long long *out)
{
    const char *v = http_req_query(req, name);
    *out = def;
    if (!v)
        return MD_OK;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || n < lo || n > hi || v[0] == '-' || v[0] == '+')
        return md_fail(http_req_err(req), MD_E_INVALID_PARAM, name,
                       "%s must be an integer in %lld..%lld", name, lo, hi);
    *out = n;
    return MD_OK;
}
