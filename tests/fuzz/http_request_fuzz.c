/* http_request_fuzz.c - libFuzzer target for everything of src/http that reads request bytes:
 * the target (path and query decoding), route matching with parameters, X-Request-ID
 * validation, Accept-Encoding and Origin handling, body limits and JSON bodies, run through
 * the real middleware chain with the loopback runner.
 * Input layout: method \n target \n X-Request-ID \n Accept-Encoding \n Origin \n body. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_loopback.h"

static int h_json(http_req *r, void *ctx)
{
    (void)ctx;
    json_t *j;
    int rc = http_req_json(r, &j);
    if (rc != MD_OK)
        return rc;
    return http_reply_json(r, 200, j);
}

static int h_param(http_req *r, void *ctx)
{
    (void)ctx;
    const char *id = http_req_param(r, "id"), *q = http_req_query(r, "q");
    return http_reply_json(r, 200, json_pack("{s:s?, s:s?}", "id", id, "q", q));
}

static int h_rest(http_req *r, void *ctx)
{
    (void)ctx;
    const char *p = http_req_param(r, "path");
    return http_reply_bytes(r, 200, "text/plain", p, strlen(p));
}

static int h_auth(void *ctx, const char *a, const char *k, http_identity *id, md_err *err)
{
    (void)ctx;
    if ((a && strcmp(a, "Bearer ok") == 0) || (k && strcmp(k, "ok") == 0)) {
        id->role = HTTP_ROLE_ADMIN;
        strcpy(id->key_id, "k");
        return MD_OK;
    }
    return md_fail(err, MD_E_UNAUTHORIZED, NULL, NULL);
}

static http_server *srv;

static void init(void)
{
    http_opts o = {.body_limit = 4096, .cors_origins = "https://a.example,*", .gzip_min = 16};
    o.hooks.authenticate = h_auth;
    http_server_new(&o, &srv, NULL);
    http_route_add(srv, "POST", "/json", HTTP_ROLE_PUBLIC, HTTP_LIGHT, h_json, NULL);
    http_route_add(srv, "GET", "/items/{id}", HTTP_ROLE_PUBLIC, HTTP_LIGHT, h_param, NULL);
    http_route_add(srv, "DELETE", "/items/{id}", HTTP_ROLE_ADMIN, HTTP_HEAVY, h_param, NULL);
    http_route_add(srv, "GET", "/static/{path*}", HTTP_ROLE_PUBLIC, HTTP_LIGHT, h_rest, NULL);
    http_route_add(srv, "POST", "/api/{model}", HTTP_ROLE_READ, HTTP_LIGHT, h_json, NULL);
}

/* Next '\n'-terminated field of the input as a new string; NULL at the end. */
static char *field(const uint8_t **p, const uint8_t *end)
{
    if (*p >= end)
        return NULL;
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    char *s = malloc(n + 1);
    memcpy(s, *p, n);
    s[n] = '\0';
    *p += n + (nl ? 1 : 0);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv)
        init();
    const uint8_t *p = data, *end = data + size;
    char *method = field(&p, end), *target = field(&p, end), *rid = field(&p, end), *ae = field(&p, end),
         *origin = field(&p, end);
    if (method && target && rid && ae && origin && strlen(method) > 0) {
        const char *h[] = {"X-Request-ID", rid, "Accept-Encoding", ae, "Origin", origin, "Content-Type",
                           "application/json", "X-API-Key", "ok", NULL};
        http_loopback_resp r;
        if (http_loopback(srv, method, target, h, p < end ? p : NULL, (size_t)(end - p), &r) == MD_OK)
            http_loopback_resp_free(&r);
    }
    free(method);
    free(target);
    free(rid);
    free(ae);
    free(origin);
    return 0;
}
