/* openapi.c - the OpenAPI 3.1 document made from the route table; see openapi.h.
 *
 * The builder walks the routes once (http_routes_visit) and turns each into one operation:
 * parameters (path from the pattern, then the descriptor's query and header lists), request
 * body, responses (success, then the error statuses in ascending order) and security. The
 * fixed parts (info, tags, the error bodies, security schemes, rate-limit headers) are here too.
 *
 * Invariants:
 *   1. Every registered route is in the document, documented or not; an undocumented one
 *      carries "x-modeld-undocumented": true so that a test can refuse it.
 *   2. Statuses are never chosen here: an error response's status is md_err_status() of the
 *      code, so the document says what the server does.
 *   3. operationIds are unique: a collision gets a numeric suffix (2, 3, ...).
 *   4. The served text is built once before the server starts and only read afterwards, so
 *      handlers need no lock.
 */
#include "api/openapi.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_REF "#/components/schemas/Error"
#define OIP_ERR_REF "#/components/schemas/OipError"
#define MAX_ERRORS 48 /* error codes one operation may list, builder's own included */

struct api_openapi {
    http_server *srv; /* borrowed */
    char *text;       /* the document, built by api_openapi_prepare; owned */
    size_t len;
    char etag[36];
};

/* The groups of the docs page, in the order shown. A tag a route uses that is not here is
 * still listed, after these, without a description. */
static const struct {
    const char *name, *description;
} TAGS[] = {
    {"platform", "Health, readiness, Prometheus metrics, short-lived tokens and the audit log."},
    {"vectorize", "Upload an image (PNG, JPEG, WebP, BMP, TIFF) and convert it to SVG with "
                  "modeld's tracer, which takes VTracer's parameter names."},
    {"models", "The model registry: every model with its versions, activation, canary and "
               "rollback."},
    {"inference",
     "The Open Inference Protocol (the KServe \"V2\" REST protocol that Triton, KServe "
     "and MLServer speak). Errors on these routes are {\"error\": \"...\"}."},
    {"enhance", "Photo enhancement jobs."},
    {"jobs", "Durable jobs of every kind (enhancement, bulk predictions): status, progress, "
             "result, cancel, batches and their ZIP, and the job service's health and status. A "
             "key sees only its own jobs (another key's answer 404); admin keys see all."},
    {"predict", "Business predictions from tabular models."},
    {"docs", "This document and the interactive page made from it."},
    {"web", "The web page and its files."},
    {"test", "Debug routes for the end-to-end tests, present only with --test-routes (never in "
             "production)."},
};

static const char API_DESCRIPTION[] =
    "modeld serves vectorize, enhance and predict models over HTTP.\n\n"
    "**Authentication**: `Authorization: Bearer <API key or JWT>` or `X-API-Key: <API key>`. "
    "Roles, weakest first: `read` < `write` < `admin`; each operation names the role it needs "
    "(`x-modeld-role`). A JWT comes from `POST /api/auth/token`.\n\n"
    "**Errors**: every error answer is JSON, `{\"success\": false, \"error\": {\"code\", "
    "\"message\", "
    "\"field\"?}, \"request_id\"}`; `code` is stable, `field` names the offending input. Routes "
    "of the Open Inference Protocol (`/v2/...`) answer `{\"error\": \"...\"}` as its clients "
    "expect.\n\n"
    "**Limits**: requests are rate limited per key (per client address without one): 429 with "
    "`Retry-After`. Heavy work runs on a bounded pool: 503 with `Retry-After` when it is full, "
    "504 past the request deadline. Every answer carries `X-Request-ID`.";

/* ---- small helpers ------------------------------------------------------------------------ */

/* Set o[k] = v, stealing v; MD_E_NOMEM when v is NULL or the set fails. */
static int set_new(json_t *o, const char *k, json_t *v)
{
    return v && json_object_set_new(o, k, v) == 0 ? MD_OK : MD_E_NOMEM;
}

/* Store r (stolen; may be NULL) as responses["<status>"] when rc is MD_OK, else drop it and
 * return rc: the end of every response object built below. */
static int put_response(json_t *responses, int status, json_t *r, int rc)
{
    char key[8];
    snprintf(key, sizeof key, "%d", status);
    if (rc == MD_OK)
        return set_new(responses, key, r);
    json_decref(r);
    return rc;
}

/* The route being described, with the builder's state. */
typedef struct build {
    json_t *paths;  /* the paths object being filled */
    json_t *op_ids; /* operationIds used so far (as keys) */
    json_t *tags;   /* tags used so far (as keys, in first-use order) */
    bool strict;
    int nbad; /* descriptor problems let through (not strict) */
    int rc;
    md_err *err;
    /* the current route */
    const char *method, *pattern;
    http_role role;
    int flags;
    const http_doc *doc;
} build;

/* A descriptor member that is not a usable schema: an error (strict) or a logged replacement.
 * what names the member ("response", "query limit"). */
static int bad_schema(build *b, const char *what, const char *why, json_t **out)
{
    char field[64];
    snprintf(field, sizeof field, "%.30s %.32s", b->method, b->pattern);
    if (b->strict)
        return md_fail(b->err, MD_E_INTERNAL, field, "route %s %s: descriptor %s: %s", b->method,
                       b->pattern, what, why);
    md_log(MD_LOG_ERROR, "route %s %s: descriptor %s: %s", b->method, b->pattern, what, why);
    b->nbad++;
    *out = json_pack("{s:s}", "x-modeld-schema-error", why);
    return *out ? MD_OK : MD_E_NOMEM;
}

/* Parse a descriptor's JSON Schema text. *out: new reference. */
static int parse_schema(build *b, const char *what, const char *text, json_t **out)
{
    json_error_t je;
    *out = NULL;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (json_is_object(j) || json_is_boolean(j)) {
        *out = j;
        return MD_OK;
    }
    char why[200];
    if (j)
        snprintf(why, sizeof why, "not a JSON Schema (an object or a boolean)");
    else
        snprintf(why, sizeof why, "not JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    json_decref(j);
    return bad_schema(b, what, why, out);
}

/* A parameter's schema: a type name, or a whole schema text when it starts with '{'. */
static int param_schema(build *b, const char *what, const char *type, json_t **out)
{
    static const char *const names[] = {"string",  "integer", "number",
                                        "boolean", "array",   "object"};
    if (type == NULL)
        type = "string";
    if (type[0] == '{')
        return parse_schema(b, what, type, out);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(type, names[i]) == 0) {
            *out = json_pack("{s:s}", "type", type);
            return *out ? MD_OK : MD_E_NOMEM;
        }
    return bad_schema(b, what,
                      "unknown type name (string, integer, number, boolean, array, object)", out);
}

/* ---- operationId --------------------------------------------------------------------------- */

/* Append word to id in camelCase: its first letter upper-case (unless id is empty), letters and
 * digits kept, anything else starting a new word. */
static void camel_append(char *id, size_t cap, const char *word, size_t n)
{
    size_t len = strlen(id);
    bool upper = len > 0;
    for (size_t i = 0; i < n && len + 1 < cap; i++) {
        unsigned char c = (unsigned char)word[i];
        if (!isalnum(c)) {
            upper = true;
            continue;
        }
        id[len++] = (char)(upper ? toupper(c) : tolower(c));
        upper = false;
    }
    id[len] = '\0';
}

/* "GET /api/results/{id}" -> "getApiResultsById"; "/" -> "getRoot". Unique within b. */
static int operation_id(build *b, json_t *op)
{
    char id[256] = "";
    camel_append(id, sizeof id, b->method, strlen(b->method));
    const char *p = b->pattern;
    if (strcmp(p, "/") == 0)
        camel_append(id, sizeof id, "root", 4);
    while (*p) {
        p += *p == '/';
        size_t n = strcspn(p, "/");
        if (n > 2 && p[0] == '{') {
            camel_append(id, sizeof id, "by", 2);
            camel_append(id, sizeof id, p + 1, n - 2 - (p[n - 2] == '*'));
        } else {
            camel_append(id, sizeof id, p, n);
        }
        p += n;
    }
    char unique[272];
    snprintf(unique, sizeof unique, "%s", id);
    for (int k = 2; json_object_get(b->op_ids, unique); k++)
        snprintf(unique, sizeof unique, "%s%d", id, k);
    if (json_object_set_new(b->op_ids, unique, json_true()) != 0)
        return MD_E_NOMEM;
    return set_new(op, "operationId", json_string(unique));
}

/* ---- parameters ----------------------------------------------------------------------------- */

static const http_doc_param *find_param(const http_doc_param *list, const char *name, size_t n)
{
    for (size_t i = 0; list && list[i].name; i++)
        if (strlen(list[i].name) == n && strncmp(list[i].name, name, n) == 0)
            return &list[i];
    return NULL;
}

static int add_param(build *b, json_t *params, const char *in, const http_doc_param *p,
                     const char *name, bool required, const char *fallback_description)
{
    char what[96];
    snprintf(what, sizeof what, "%s parameter %.60s", in, name);
    json_t *schema = NULL;
    int rc = param_schema(b, what, p ? p->type : NULL, &schema);
    json_t *o = rc == MD_OK ? json_pack("{s:s, s:s, s:b, s:o}", "name", name, "in", in, "required",
                                        required, "schema", schema)
                            : NULL;
    const char *desc = p && p->description ? p->description : fallback_description;
    if (rc == MD_OK && o == NULL)
        rc = MD_E_NOMEM;
    if (rc == MD_OK && desc)
        rc = set_new(o, "description", json_string(desc));
    if (rc == MD_OK)
        rc = json_array_append(params, o) == 0 ? MD_OK : MD_E_NOMEM;
    json_decref(o);
    return rc;
}

/* The pattern's {name} and {rest*} segments, in order. */
static int add_path_params(build *b, json_t *params)
{
    const http_doc_param *docs = b->doc ? b->doc->path : NULL;
    int rc = MD_OK;
    for (const char *p = b->pattern; rc == MD_OK && *p; p++) {
        if (*p != '{')
            continue;
        size_t n = strcspn(p + 1, "*}");
        bool rest = p[1 + n] == '*';
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)n, p + 1);
        rc = add_param(b, params, "path", find_param(docs, p + 1, n), name, true,
                       rest ? "the rest of the path; may contain '/'" : NULL);
        p += n;
    }
    /* A described path parameter the pattern does not have is a mistake in the descriptor. */
    for (size_t i = 0; rc == MD_OK && docs && docs[i].name; i++) {
        char seg[80], seg_rest[80];
        snprintf(seg, sizeof seg, "{%.64s}", docs[i].name);
        snprintf(seg_rest, sizeof seg_rest, "{%.64s*}", docs[i].name);
        json_t *ignored = NULL;
        if (!strstr(b->pattern, seg) && !strstr(b->pattern, seg_rest))
            rc = bad_schema(b, "path", "describes a parameter the pattern does not have", &ignored);
        json_decref(ignored);
    }
    return rc;
}

static int add_parameters(build *b, json_t *op)
{
    json_t *params = json_array();
    int rc = params ? add_path_params(b, params) : MD_E_NOMEM;
    const http_doc_param *lists[2] = {b->doc ? b->doc->query : NULL,
                                      b->doc ? b->doc->headers : NULL};
    const char *in[2] = {"query", "header"};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; rc == MD_OK && lists[k] && lists[k][i].name; i++)
            rc = add_param(b, params, in[k], &lists[k][i], lists[k][i].name,
                           lists[k][i].required != 0, NULL);
    if (rc == MD_OK && json_array_size(params) > 0)
        return set_new(op, "parameters", params);
    json_decref(params);
    return rc;
}

/* ---- bodies ------------------------------------------------------------------------------- */

/* A schema whose keys all hold a '/' is a map from media type to schema (http.h). */
static bool is_media_map(json_t *s)
{
    const char *k;
    json_t *v;
    if (!json_is_object(s) || json_object_size(s) == 0)
        return false;
    json_object_foreach(s, k, v)
    {
        if (!strchr(k, '/'))
            return false;
    }
    return true;
}

/* An OpenAPI content object from a descriptor's body schema text and media type. */
static int content_of(build *b, const char *what, const char *text, const char *type, json_t **out)
{
    json_t *s = NULL;
    int rc = parse_schema(b, what, text, &s);
    json_t *content = rc == MD_OK ? json_object() : NULL;
    if (rc == MD_OK && content == NULL)
        rc = MD_E_NOMEM;
    if (rc == MD_OK && is_media_map(s)) {
        const char *k;
        json_t *v;
        json_object_foreach(s, k, v)
        {
            json_t *vs = json_incref(v);
            if (rc == MD_OK && !json_is_object(v) && !json_is_boolean(v)) {
                json_decref(vs);
                rc = bad_schema(
                    b, what, "a media type's schema is not a JSON Schema (an object or a boolean)",
                    &vs);
            }
            if (rc == MD_OK)
                rc = set_new(content, k, json_pack("{s:o}", "schema", vs));
        }
    } else if (rc == MD_OK) {
        rc = set_new(content, type ? type : "application/json", json_pack("{s:O}", "schema", s));
    }
    json_decref(s);
    if (rc != MD_OK) {
        json_decref(content);
        content = NULL;
    }
    *out = content;
    return rc;
}

static int add_request(build *b, json_t *op)
{
    if (!b->doc || !b->doc->request)
        return MD_OK;
    json_t *content = NULL;
    int rc = content_of(b, "request", b->doc->request, b->doc->request_type, &content);
    if (rc != MD_OK)
        return rc;
    return set_new(op, "requestBody", json_pack("{s:b, s:o}", "required", 1, "content", content));
}

/* ---- responses ------------------------------------------------------------------------------ */

static const char *success_text(int status)
{
    switch (status) {
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No content";
    default:
        return "Success";
    }
}

static bool rate_limited(const build *b)
{
    return (b->flags & HTTP_NO_RATELIMIT) == 0;
}

static json_t *header_refs(bool retry_after, bool rate)
{
    json_t *h = json_object();
    if (h && retry_after)
        json_object_set_new(h, "Retry-After",
                            json_pack("{s:s}", "$ref", "#/components/headers/RetryAfter"));
    if (h && rate) {
        json_object_set_new(h, "X-RateLimit-Limit",
                            json_pack("{s:s}", "$ref", "#/components/headers/RateLimitLimit"));
        json_object_set_new(h, "X-RateLimit-Remaining",
                            json_pack("{s:s}", "$ref", "#/components/headers/RateLimitRemaining"));
        json_object_set_new(h, "X-RateLimit-Reset",
                            json_pack("{s:s}", "$ref", "#/components/headers/RateLimitReset"));
    }
    json_object_set_new(h, "X-Request-ID",
                        json_pack("{s:s}", "$ref", "#/components/headers/RequestId"));
    return h;
}

static int add_success(build *b, json_t *responses)
{
    int status = b->doc && b->doc->status ? b->doc->status : 200;
    json_t *r = json_pack("{s:s, s:o}", "description", success_text(status), "headers",
                          header_refs(false, rate_limited(b)));
    int rc = r ? MD_OK : MD_E_NOMEM;
    if (rc == MD_OK && b->doc && b->doc->response) {
        json_t *content = NULL;
        rc = content_of(b, "response", b->doc->response, b->doc->response_type, &content);
        if (rc == MD_OK)
            rc = set_new(r, "content", content);
    }
    return put_response(responses, status, r, rc);
}

/* The error codes of this operation: the descriptor's, then those the server itself may answer
 * for it (auth, rate limit, compute pool), without repeats. Returns the count. */
static size_t collect_errors(const build *b, int *codes)
{
    int extra[6];
    size_t ne = 0, n = 0;
    if (b->role != HTTP_ROLE_PUBLIC) {
        extra[ne++] = MD_E_UNAUTHORIZED;
        extra[ne++] = MD_E_FORBIDDEN;
    }
    if (rate_limited(b))
        extra[ne++] = MD_E_RATE_LIMITED;
    if (b->flags & HTTP_HEAVY) {
        extra[ne++] = MD_E_OVERLOADED;
        extra[ne++] = MD_E_TIMEOUT;
    }
    const int *listed = b->doc ? b->doc->errors : NULL;
    for (size_t i = 0; listed && listed[i] != MD_OK && n < MAX_ERRORS - ne; i++) {
        bool seen = false;
        for (size_t k = 0; k < n; k++)
            seen |= codes[k] == listed[i];
        if (!seen)
            codes[n++] = listed[i];
    }
    for (size_t i = 0; i < ne; i++) {
        bool seen = false;
        for (size_t k = 0; k < n; k++)
            seen |= codes[k] == extra[i];
        if (!seen)
            codes[n++] = extra[i];
    }
    return n;
}

/* One error response: every code of codes[] whose status is status, listed in the description. */
static int add_error_status(build *b, json_t *responses, const int *codes, size_t n, int status)
{
    md_buf d;
    md_buf_init(&d, 1 << 14);
    int rc = md_buf_printf(&d, "Error codes:");
    const char *sep = " ";
    for (size_t i = 0; rc == MD_OK && i < n; i++) {
        if (md_err_status(codes[i]) != status)
            continue;
        rc = md_buf_printf(&d, "%s`%s` (%s)", sep, md_err_name(codes[i]),
                           md_err_default_msg(codes[i]));
        sep = "; ";
    }
    bool oip =
        strncmp(b->pattern, "/v2", 3) == 0 && (b->pattern[3] == '\0' || b->pattern[3] == '/');
    json_t *r = rc == MD_OK
                    ? json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", d.data, "content",
                                "application/json", "schema", "$ref", oip ? OIP_ERR_REF : ERR_REF)
                    : NULL;
    md_buf_free(&d);
    if (rc == MD_OK && r == NULL)
        rc = MD_E_NOMEM;
    if (rc == MD_OK && (status == 429 || status == 503))
        rc = set_new(r, "headers", header_refs(true, status == 429));
    return put_response(responses, status, r, rc);
}

static int add_responses(build *b, json_t *op)
{
    json_t *responses = json_object();
    int rc = responses ? add_success(b, responses) : MD_E_NOMEM;
    /* A route that takes If-None-Match answers 304 when its ETag matches. */
    if (rc == MD_OK && b->doc && find_param(b->doc->headers, "If-None-Match", 13))
        rc = set_new(
            responses, "304",
            json_pack("{s:s}", "description", "Not modified: the If-None-Match ETag matched"));
    int codes[MAX_ERRORS];
    size_t n = collect_errors(b, codes);
    /* Statuses in ascending order, each once. */
    int last = 0;
    for (;;) {
        int next = 1000;
        for (size_t i = 0; i < n; i++)
            if (md_err_status(codes[i]) > last && md_err_status(codes[i]) < next)
                next = md_err_status(codes[i]);
        if (rc != MD_OK || next == 1000)
            break;
        rc = add_error_status(b, responses, codes, n, next);
        last = next;
    }
    if (rc == MD_OK)
        return set_new(op, "responses", responses);
    json_decref(responses);
    return rc;
}

/* ---- one operation -------------------------------------------------------------------------- */

static int add_texts(build *b, json_t *op)
{
    const http_doc *d = b->doc;
    char summary[256];
    snprintf(summary, sizeof summary, "%s %s", b->method, b->pattern);
    const char *tag = d && d->tag ? d->tag : "other";
    md_buf desc;
    md_buf_init(&desc, 1 << 16);
    int rc = md_buf_printf(&desc, "%s", d && d->description ? d->description : "");
    if (rc == MD_OK && !d)
        rc = md_buf_printf(&desc, "This route has no descriptor yet (http_route_doc).");
    if (rc == MD_OK && b->role != HTTP_ROLE_PUBLIC)
        rc = md_buf_printf(&desc,
                           "%sNeeds the `%s` role (an API key or token of that role or above).",
                           desc.len ? "\n\n" : "", http_role_name(b->role));
    if (rc == MD_OK)
        rc = set_new(op, "tags", json_pack("[s]", tag));
    if (rc == MD_OK)
        rc = set_new(op, "summary", json_string(d && d->summary ? d->summary : summary));
    if (rc == MD_OK && desc.len)
        rc = set_new(op, "description", json_string(desc.data));
    md_buf_free(&desc);
    if (rc == MD_OK && !json_object_get(b->tags, tag))
        rc = set_new(b->tags, tag, json_true());
    if (rc == MD_OK && !d)
        rc = set_new(op, "x-modeld-undocumented", json_true());
    return rc;
}

static int add_security(build *b, json_t *op)
{
    json_t *sec = b->role == HTTP_ROLE_PUBLIC
                      ? json_array()
                      : json_pack("[{s:[]}, {s:[]}]", "bearerAuth", "apiKeyAuth");
    int rc = set_new(op, "security", sec);
    if (rc == MD_OK)
        rc = set_new(op, "x-modeld-role", json_string(http_role_name(b->role)));
    /* A WebSocket route succeeds with 101: tools (and the test) tell it from a missing 2xx by this. */
    if (rc == MD_OK && (b->flags & HTTP_WS))
        rc = set_new(op, "x-modeld-websocket", json_true());
    return rc;
}

/* "/api/x/{rest*}" -> "/api/x/{rest}" (OpenAPI path templates have no '*'). */
static void template_of(const char *pattern, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = pattern; *p && n + 1 < cap; p++)
        if (!(*p == '*' && p[1] == '}'))
            out[n++] = *p;
    out[n] = '\0';
}

static int add_operation(build *b)
{
    json_t *op = json_object();
    int nbad = b->nbad;
    int rc = op ? add_texts(b, op) : MD_E_NOMEM;
    if (rc == MD_OK)
        rc = operation_id(b, op);
    if (rc == MD_OK)
        rc = add_parameters(b, op);
    if (rc == MD_OK)
        rc = add_request(b, op);
    if (rc == MD_OK)
        rc = add_responses(b, op);
    if (rc == MD_OK)
        rc = add_security(b, op);
    if (rc == MD_OK && b->nbad > nbad) /* the log has the details */
        rc = set_new(op, "x-modeld-schema-error", json_integer(b->nbad - nbad));
    char path[512], method[16];
    template_of(b->pattern, path, sizeof path);
    snprintf(method, sizeof method, "%s", b->method);
    for (char *m = method; *m; m++)
        *m = (char)tolower((unsigned char)*m);
    json_t *item = json_object_get(b->paths, path);
    if (rc == MD_OK && item == NULL) {
        item = json_object();
        rc = set_new(b->paths, path, item);
    }
    if (rc == MD_OK)
        return set_new(item, method, op);
    json_decref(op);
    return rc;
}

static void visit(void *ctx, const char *method, const char *pattern, http_role role, int flags,
                  const http_doc *doc)
{
    build *b = ctx;
    if (b->rc != MD_OK)
        return;
    b->method = method;
    b->pattern = pattern;
    b->role = role;
    b->flags = flags;
    b->doc = doc;
    b->rc = add_operation(b);
}

/* ---- the fixed parts --------------------------------------------------------------------------
 */

static json_t *error_schema(void)
{
    json_t *names = json_array();
    for (int c = 1; names && c < MD_E__COUNT; c++)
        json_array_append_new(names, json_string(md_err_name(c)));
    return json_pack(
        "{s:s, s:s, s:[s,s,s], s:{s:{s:b}, s:{s:s, s:[s,s], s:{s:{s:s, s:s, s:o}, s:{s:s, s:s}, "
        "s:{s:s, s:s}}}, s:{s:s, s:s}}}",
        "type", "object", "description", "The body of every error answer (except on /v2 routes).",
        "required", "success", "error", "request_id", "properties", "success", "const", 0, "error",
        "type", "object", "required", "code", "message", "properties", "code", "type", "string",
        "description", "stable machine-readable name of the error", "enum", names, "message",
        "type", "string", "description", "what went wrong, for people", "field", "type", "string",
        "description", "the request field or parameter at fault, when there is one", "request_id",
        "type", "string", "description", "the X-Request-ID of the request (for the logs)");
}

static json_t *header(const char *description, const char *type)
{
    return json_pack("{s:s, s:{s:s}}", "description", description, "schema", "type", type);
}

static json_t *components(void)
{
    return json_pack(
        "{s:{s:o, s:{s:s, s:s, s:[s], s:{s:{s:s}}}}, s:{s:{s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:s, "
        "s:s}}, s:{s:o, s:o, s:o, s:o, s:o}}",
        "schemas", "Error", error_schema(), "OipError", "type", "object", "description",
        "The body of error answers on Open Inference Protocol routes (/v2/...).", "required",
        "error", "properties", "error", "type", "string", "securitySchemes", "bearerAuth", "type",
        "http", "scheme", "bearer", "bearerFormat", "API key or JWT", "description",
        "An API key (`modeld keys create`) or a JWT from POST /api/auth/token.", "apiKeyAuth",
        "type", "apiKey", "in", "header", "name", "X-API-Key", "description", "An API key.",
        "headers", "RetryAfter", header("seconds to wait before trying again", "integer"),
        "RateLimitLimit", header("requests allowed in a burst for this caller", "integer"),
        "RateLimitRemaining", header("requests left in the burst now", "integer"), "RateLimitReset",
        header("seconds until the burst is whole again", "integer"), "RequestId",
        header("the request id: the client's X-Request-ID when valid, else a new one", "string"));
}

static json_t *tags_of(json_t *used)
{
    json_t *out = json_array();
    for (size_t i = 0; out && i < sizeof TAGS / sizeof TAGS[0]; i++)
        if (json_object_get(used, TAGS[i].name))
            json_array_append_new(out, json_pack("{s:s, s:s}", "name", TAGS[i].name, "description",
                                                 TAGS[i].description));
    const char *k;
    json_t *v;
    json_object_foreach(used, k, v)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof TAGS / sizeof TAGS[0]; i++)
            known |= strcmp(TAGS[i].name, k) == 0;
        if (!known && out)
            json_array_append_new(out, json_pack("{s:s}", "name", k));
    }
    return out;
}

int api_openapi_document(const http_server *srv, bool strict, json_t **out, md_err *err)
{
    build b = {.paths = json_object(),
               .op_ids = json_object(),
               .tags = json_object(),
               .strict = strict,
               .rc = MD_OK,
               .err = err};
    *out = NULL;
    if (!b.paths || !b.op_ids || !b.tags)
        b.rc = MD_E_NOMEM;
    if (b.rc == MD_OK)
        http_routes_visit(srv, visit, &b);
    json_t *doc = NULL;
    if (b.rc == MD_OK) {
        doc =
            json_pack("{s:s, s:{s:s, s:s, s:s}, s:[{s:s, s:s}], s:o, s:O, s:o}", "openapi", "3.1.0",
                      "info", "title", "modeld", "version", MODELD_VERSION, "description",
                      API_DESCRIPTION, "servers", "url", "/", "description", "this server", "tags",
                      tags_of(b.tags), "paths", b.paths, "components", components());
        if (doc == NULL)
            b.rc = MD_E_NOMEM;
    }
    json_decref(b.paths);
    json_decref(b.op_ids);
    json_decref(b.tags);
    *out = doc;
    return b.rc;
}

/* ---- serving ------------------------------------------------------------------------------- */

static int serve(http_req *req, void *ctx)
{
    const api_openapi *oa = ctx;
    if (oa->text == NULL)
        return md_fail(http_req_err(req), MD_E_UNAVAILABLE, NULL,
                       "the API document is not built yet");
    http_reply_header(req, "ETag", oa->etag);
    http_reply_header(req, "Cache-Control", "no-cache");
    const char *inm = http_req_header(req, "If-None-Match");
    if (inm && strstr(inm, oa->etag))
        return http_reply_empty(req, 304);
    return http_reply_bytes(req, 200, "application/json", oa->text, oa->len);
}

static const http_doc OPENAPI_DOC = {
    .summary = "This API's OpenAPI 3.1 document",
    .description = "Made from the route table: every route the server has, with its parameters, "
                   "bodies, error codes and the role it needs. The page at /docs shows it.",
    .tag = "docs",
    .response = "{\"type\":\"object\",\"required\":[\"openapi\",\"info\",\"paths\"],"
                "\"properties\":{\"openapi\":{\"const\":\"3.1.0\"},\"info\":{\"type\":\"object\"},"
                "\"paths\":{\"type\":\"object\"}}}",
    .headers = (const http_doc_param[]){{"If-None-Match", "string",
                                         "an ETag from an earlier answer: 304 when unchanged", 0},
                                        {0}},
};

int api_openapi_register(http_server *srv, api_openapi **out, md_err *err)
{
    api_openapi *oa = calloc(1, sizeof *oa);
    if (oa == NULL)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    oa->srv = srv;
    http_route *r = http_route_add(srv, "GET", "/openapi.json", HTTP_ROLE_PUBLIC,
                                   HTTP_LIGHT | HTTP_NO_AUDIT, serve, oa);
    if (r == NULL) {
        free(oa);
        return md_fail(err, MD_E_INTERNAL, NULL, "cannot add GET /openapi.json");
    }
    http_route_doc(r, &OPENAPI_DOC);
    *out = oa;
    return MD_OK;
}

int api_openapi_prepare(api_openapi *oa, md_err *err)
{
    json_t *doc = NULL;
    uint64_t t0 = md_now_ns();
    int rc = api_openapi_document(oa->srv, API_OPENAPI_STRICT, &doc, err);
    char *text = rc == MD_OK ? json_dumps(doc, JSON_COMPACT) : NULL;
    size_t nops = 0;
    const char *k;
    json_t *item;
    json_object_foreach(json_object_get(doc, "paths"), k, item) nops += json_object_size(item);
    json_decref(doc);
    if (rc == MD_OK && text == NULL)
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc != MD_OK)
        return rc;
    free(oa->text);
    oa->text = text;
    oa->len = strlen(text);
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)text, oa->len);
    oa->etag[0] = '"';
    sodium_bin2hex(oa->etag + 1, 33, h, 16);
    strcat(oa->etag, "\"");
    md_log(MD_LOG_INFO,
           "API document: %zu operations, %zu bytes at /openapi.json (built in %.1f ms)", nops,
           oa->len, (double)(md_now_ns() - t0) / 1e6);
    return MD_OK;
}

void api_openapi_free(api_openapi *oa)
{
    if (oa == NULL)
        return;
    free(oa->text);
    free(oa);
}
