/* openapi.h - GET /openapi.json: the OpenAPI 3.1 document of modeld's HTTP API, made from the
 * route table and the descriptors every route registers beside its handler (http_route_doc).
 *
 *   GET /openapi.json   public   the document (application/json)
 *
 * What comes from where:
 *   paths, methods       the route table (http_routes_visit), every route, in registration order;
 *                        "{id}" in a pattern is a path parameter, and so is a final "{rest*}"
 *                        (written "{rest}" in the document; its value may hold '/').
 *   summary, tag, ...    the descriptor; a route without one still appears (summary = method and
 *                        path) and is marked "x-modeld-undocumented": true, which the tests refuse.
 *   responses            the success status with the response schema; each error code the
 *                        descriptor lists at its status from the error table, with the common error
 *                        body (#/components/schemas/Error), or the Open Inference Protocol's
 *                        {"error": "..."} (#/components/schemas/OipError) on /v2 routes; 401 and
 * 403 for routes that need a role, 429 where the rate limiter runs, 503 and 504 for routes that run
 * on the compute pool. security             bearer (API key or JWT) or X-API-Key; public routes
 * have "security": []; "x-modeld-role" names the role a route needs.
 *
 * The document is built once, after the last route is added (api_openapi_prepare), and then
 * served from memory. Descriptor schemas are JSON texts: one that does not parse (or is not a
 * JSON Schema, i.e. an object or a boolean) stops the start-up of a debug build with a message
 * naming the route; a release build logs it and serves {} marked "x-modeld-schema-error" (the
 * operation carries the same mark with the number of problems).
 */
#ifndef MD_API_OPENAPI_H
#define MD_API_OPENAPI_H

#include "base/err.h"
#include "http/http.h"

#include <jansson.h>
#include <stdbool.h>

typedef struct api_openapi api_openapi;

/* Debug builds are strict: a descriptor schema that does not parse stops the start-up. */
#ifdef NDEBUG
#define API_OPENAPI_STRICT false
#else
#define API_OPENAPI_STRICT true
#endif

/* The document of every route registered on srv so far. strict: a descriptor schema that does
 * not parse is an error (MD_E_INTERNAL, field naming the route and the descriptor member);
 * otherwise it is logged and replaced. *out: new reference (json_decref). */
int api_openapi_document(const http_server *srv, bool strict, json_t **out, md_err *err);

/* Add GET /openapi.json (public) to srv. *out is new: free with api_openapi_free after
 * http_server_free(srv). */
int api_openapi_register(http_server *srv, api_openapi **out, md_err *err);
/* Build and keep the document: call after the last route is added and before
 * http_server_start (routes added later would be missing). API_OPENAPI_STRICT. */
int api_openapi_prepare(api_openapi *oa, md_err *err);
/* NULL is a no-op. */
void api_openapi_free(api_openapi *oa);

#endif
