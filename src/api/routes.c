/* routes.c - registering a resource's route table (see api_int.h), so each resource file holds
 * only its table: method, pattern, role, flags, handler and descriptor per row.
 *
 * Invariants:
 *   1. Every route added gets its descriptor before the next one is added (the OpenAPI
 *      document is built from the route table and never sees an undocumented route).
 */
#include "api/api_int.h"

int api__add_routes(http_server *srv, const api__route *rt, size_t n, int extra_flags, void *ctx,
                    http_route **added, md_err *err)
{
    for (size_t i = 0; i < n; i++) {
        http_route *r = http_route_add(srv, rt[i].method, rt[i].pattern, rt[i].role,
                                       rt[i].flags | extra_flags, rt[i].fn, ctx);
        if (!r)
            return md_fail(err, MD_E_INTERNAL, NULL, "cannot add the route %s %s", rt[i].method,
                           rt[i].pattern);
        http_route_doc(r, &rt[i].doc);
        if (added)
            added[i] = r;
    }
    return MD_OK;
}
