/* openapi_test.c - the OpenAPI builder on a server that is never started: operations from
 * patterns and descriptors (operationId, path/query/header parameters, bodies, media maps),
 * error responses from the error table (the OIP body on /v2), security from the role, the strict
 * and lenient handling of a schema that does not parse, GET /openapi.json over the loopback
 * (ETag, 304), and the conversion parameters of POST /api/convert against src/vectorize's table
 * (names, ranges, enums and defaults), so the document cannot drift from the code. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/convert.h"
#include "api/openapi.h"
#include "http/http_loopback.h"
#include "vectorize/vec.h"

#include "common/tmpdir.h"

static int noop(http_req *req, void *ctx)
{
    (void)ctx;
    return http_reply_empty(req, 204);
}

static http_server *bare_server(void)
{
    http_server *s = NULL;
    md_err e;
    http_opts ho = {.access_log = false};
    assert_int_equal(http_server_new(&ho, &s, &e), MD_OK);
    return s;
}

/* j["a"]["b"]... for the keys up to NULL; NULL when one is missing. */
static json_t *dig(json_t *j, ...)
{
    va_list ap;
    va_start(ap, j);
    for (const char *k = va_arg(ap, const char *); j && k; k = va_arg(ap, const char *))
        j = json_object_get(j, k);
    va_end(ap);
    return j;
}

static json_t *document(http_server *s, bool strict)
{
    json_t *doc = NULL;
    md_err e;
    md_err_clear(&e);
    int rc = api_openapi_document(s, strict, &doc, &e);
    if (rc != MD_OK)
        fail_msg("document: %s (%s)", md_err_message(&e), e.field);
    return doc;
}

static json_t *op_of(json_t *doc, const char *path, const char *method)
{
    json_t *op = dig(doc, "paths", path, method, NULL);
    if (op == NULL)
        fail_msg("no %s %s in the document", method, path);
    return op;
}

static const char *str_at(json_t *j, const char *path)
{
    json_t *v = json_object_get(j, path);
    return json_is_string(v) ? json_string_value(v) : "";
}

static const http_doc ITEM_DOC = {
    .summary = "An item",
    .tag = "models",
    .path = (const http_doc_param[]){{"id", "{\"type\":\"string\",\"minLength\":3}", "the item", 1},
                                     {0}},
    .query =
        (const http_doc_param[]){{"limit", "{\"type\":\"integer\",\"maximum\":9}", "page size", 0},
                                 {"q", "string", "search", 1},
                                 {0}},
    .headers = (const http_doc_param[]){{"X-Trace", "boolean", "trace it", 0}, {0}},
    .request = "{\"multipart/form-data\":{\"type\":\"object\"},\"image/png\":{}}",
    .response = "{\"type\":\"object\"}",
    .status = 201,
    .errors = (const int[]){MD_E_INVALID_PARAM, MD_E_FILE_NOT_FOUND, MD_E_NOT_FOUND,
                            MD_E_INVALID_PARAM, 0},
};

static const http_doc OIP_DOC = {
    .summary = "Infer", .tag = "inference", .errors = (const int[]){MD_E_MODEL_NOT_FOUND, 0}};

static void test_operations(void **state)
{
    (void)state;
    http_server *s = bare_server();
    http_route_doc(
        http_route_add(s, "POST", "/api/items/{id}", HTTP_ROLE_WRITE, HTTP_HEAVY, noop, NULL),
        &ITEM_DOC);
    http_route_add(s, "GET", "/a-b/{rest*}", HTTP_ROLE_PUBLIC, HTTP_NO_RATELIMIT, noop, NULL);
    http_route_add(s, "GET", "/a_b/{rest*}", HTTP_ROLE_PUBLIC, HTTP_LIGHT, noop, NULL);
    http_route_doc(
        http_route_add(s, "POST", "/v2/models/{m}/infer", HTTP_ROLE_READ, HTTP_LIGHT, noop, NULL),
        &OIP_DOC);
    http_route_add(s, "GET", "/", HTTP_ROLE_PUBLIC, HTTP_LIGHT, noop, NULL);
    json_t *doc = document(s, true);
    assert_string_equal(str_at(doc, "openapi"), "3.1.0");
    assert_string_equal(str_at(json_object_get(doc, "info"), "version"), MODELD_VERSION);

    json_t *op = op_of(doc, "/api/items/{id}", "post");
    assert_string_equal(str_at(op, "operationId"), "postApiItemsById");
    assert_string_equal(str_at(op, "x-modeld-role"), "write");
    json_t *params = json_object_get(op, "parameters");
    assert_int_equal(json_array_size(params), 4); /* path id, query limit and q, header X-Trace */
    json_t *id = json_array_get(params, 0);
    assert_string_equal(str_at(id, "in"), "path");
    assert_true(json_is_true(json_object_get(id, "required")));
    assert_int_equal(json_integer_value(dig(id, "schema", "minLength", NULL)), 3);
    assert_string_equal(str_at(json_array_get(params, 1), "in"), "query");
    assert_true(json_is_false(json_object_get(json_array_get(params, 1), "required")));
    assert_true(json_is_true(json_object_get(json_array_get(params, 2), "required")));
    assert_string_equal(str_at(json_array_get(params, 3), "in"), "header");
    json_t *content = dig(op, "requestBody", "content", NULL);
    assert_non_null(json_object_get(content, "multipart/form-data"));
    assert_non_null(json_object_get(content, "image/png"));
    json_t *resp = json_object_get(op, "responses");
    assert_non_null(json_object_get(resp, "201"));
    assert_null(json_object_get(resp, "200"));
    /* 400 once though listed twice; 404 names both of its codes; the server's own statuses. */
    const char *d404 = str_at(json_object_get(resp, "404"), "description");
    assert_non_null(strstr(d404, "`file_not_found`"));
    assert_non_null(strstr(d404, "`not_found`"));
    const char *expect[] = {"400", "401", "403", "429", "503", "504"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        assert_non_null(json_object_get(resp, expect[i]));
    assert_int_equal(json_array_size(json_object_get(op, "security")), 2);

    /* {rest*} is a path parameter; the same camelCase id twice gets a suffix; no 429 without the
     * rate limiter; an undocumented route is there and marked. */
    json_t *r1 = op_of(doc, "/a-b/{rest}", "get"), *r2 = op_of(doc, "/a_b/{rest}", "get");
    assert_string_equal(str_at(r1, "operationId"), "getABByRest");
    assert_string_equal(str_at(r2, "operationId"), "getABByRest2");
    assert_string_equal(str_at(json_array_get(json_object_get(r1, "parameters"), 0), "name"),
                        "rest");
    assert_null(json_object_get(json_object_get(r1, "responses"), "429"));
    assert_non_null(json_object_get(json_object_get(r2, "responses"), "429"));
    assert_true(json_is_true(json_object_get(r1, "x-modeld-undocumented")));
    assert_string_equal(str_at(r1, "summary"), "GET /a-b/{rest*}");
    assert_int_equal(json_array_size(json_object_get(r1, "security")), 0);
    assert_string_equal(str_at(op_of(doc, "/", "get"), "operationId"), "getRoot");

    /* /v2 routes answer the Open Inference Protocol's error body. */
    json_t *e404 = json_object_get(
        json_object_get(op_of(doc, "/v2/models/{m}/infer", "post"), "responses"), "404");
    json_t *schema = dig(e404, "content", "application/json", "schema", NULL);
    assert_string_equal(str_at(schema, "$ref"), "#/components/schemas/OipError");
    schema = dig(resp, "404", "content", "application/json", "schema", NULL);
    assert_string_equal(str_at(schema, "$ref"), "#/components/schemas/Error");

    /* Tags: only those used, known ones with their description, in the table's order. */
    json_t *tags = json_object_get(doc, "tags");
    assert_string_equal(str_at(json_array_get(tags, 0), "name"), "models");
    assert_string_equal(str_at(json_array_get(tags, 1), "name"), "inference");
    assert_string_equal(str_at(json_array_get(tags, 2), "name"), "other");
    json_decref(doc);
    http_server_free(s);
}

static const http_doc BAD_DOC = {.summary = "Bad", .response = "{\"type\": \"object\",}"};
static const http_doc BAD_PARAM_DOC = {
    .summary = "Bad", .query = (const http_doc_param[]){{"n", "integr", "typo", 0}, {0}}};
static const http_doc BAD_PATH_DOC = {
    .summary = "Bad", .path = (const http_doc_param[]){{"nope", "string", "absent", 1}, {0}}};
static const http_doc NOT_SCHEMA_DOC = {.summary = "Bad", .request = "[1, 2]"};

static void test_bad_schemas(void **state)
{
    (void)state;
    const http_doc *docs[] = {&BAD_DOC, &BAD_PARAM_DOC, &BAD_PATH_DOC, &NOT_SCHEMA_DOC};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        http_server *s = bare_server();
        http_route_doc(http_route_add(s, "GET", "/x/{id}", HTTP_ROLE_READ, HTTP_LIGHT, noop, NULL),
                       docs[i]);
        json_t *doc = NULL;
        md_err e;
        md_err_clear(&e);
        assert_int_equal(api_openapi_document(s, true, &doc, &e), MD_E_INTERNAL);
        assert_null(doc);
        assert_string_equal(e.field, "GET /x/{id}");
        assert_non_null(strstr(e.msg, "route GET /x/{id}: descriptor "));
        /* Lenient (release builds): served, with the problem marked where the schema was. */
        doc = document(s, false);
        char *text = json_dumps(doc, 0);
        assert_non_null(strstr(text, "x-modeld-schema-error"));
        free(text);
        json_decref(doc);
        http_server_free(s);
    }
}

static void test_served(void **state)
{
    (void)state;
    http_server *s = bare_server();
    api_openapi *oa = NULL;
    md_err e;
    assert_int_equal(api_openapi_register(s, &oa, &e), MD_OK);
    http_loopback_resp r;
    assert_int_equal(http_loopback(s, "GET", "/openapi.json", NULL, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 503); /* not prepared yet */
    http_loopback_resp_free(&r);
    http_route_add(s, "GET", "/late", HTTP_ROLE_READ, HTTP_LIGHT, noop, NULL);
    assert_int_equal(api_openapi_prepare(oa, &e), MD_OK);
    assert_int_equal(http_loopback(s, "GET", "/openapi.json", NULL, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(http_loopback_header(&r, "Content-Type"), "application/json");
    json_t *doc = json_loads(r.body, 0, NULL);
    assert_non_null(op_of(doc, "/late", "get"));
    assert_string_equal(str_at(op_of(doc, "/openapi.json", "get"), "x-modeld-role"), "public");
    assert_non_null(dig(op_of(doc, "/openapi.json", "get"), "responses", "304", NULL)); /* ETag */
    assert_null(dig(op_of(doc, "/late", "get"), "responses", "304", NULL));
    json_decref(doc);
    char etag[64];
    snprintf(etag, sizeof etag, "%s", http_loopback_header(&r, "ETag"));
    http_loopback_resp_free(&r);
    const char *h[] = {"If-None-Match", etag, NULL};
    assert_int_equal(http_loopback(s, "GET", "/openapi.json", h, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 304);
    http_loopback_resp_free(&r);
    http_server_free(s);
    api_openapi_free(oa);
}

/* ---- POST /api/convert's parameters against src/vectorize/params.c ---- */

static void set_ok(const char *name, const char *value, int want_ok)
{
    vec_params p;
    md_err e;
    vec_params_default(&p);
    int rc = vec_params_set(&p, name, value, &e);
    if ((rc == MD_OK) != want_ok)
        fail_msg("%s = %s: documented as %s, vec_params_set says %s", name, value,
                 want_ok ? "valid" : "invalid", rc == MD_OK ? "valid" : "invalid");
}

/* The documented range is the accepted one: its ends pass, one step outside fails. */
static void check_range(const char *name, json_t *prop)
{
    const char *type = str_at(prop, "type");
    double lo = json_number_value(json_object_get(prop, "minimum"));
    double hi = json_number_value(json_object_get(prop, "maximum"));
    double step = strcmp(type, "integer") == 0 ? 1 : 0.01;
    char v[32];
    snprintf(v, sizeof v, "%g", lo);
    set_ok(name, v, 1);
    snprintf(v, sizeof v, "%g", hi);
    set_ok(name, v, 1);
    snprintf(v, sizeof v, "%g", lo - step);
    set_ok(name, v, 0);
    snprintf(v, sizeof v, "%g", hi + step);
    set_ok(name, v, 0);
}

static void check_param(const char *name, json_t *prop, json_t *defaults)
{
    if (prop == NULL)
        fail_msg("parameter %s is not documented for POST /api/convert", name);
    json_t *def = json_object_get(prop, "default"), *actual = json_object_get(defaults, name);
    if (!json_equal(def, actual) && !(json_is_number(def) && json_is_number(actual) &&
                                      json_number_value(def) == json_number_value(actual)))
        fail_msg("%s: documented default differs from the default preset", name);
    json_t *en = json_object_get(prop, "enum");
    if (strcmp(name, "svgz") == 0) /* refused by the JSON API: documented as 0 only */
        return;
    if (en) {
        size_t i;
        json_t *v;
        json_array_foreach(en, i, v) set_ok(name, json_string_value(v), 1);
        set_ok(name, "not-a-choice", 0);
    } else if (json_object_get(prop, "minimum")) {
        check_range(name, prop);
    } else {
        assert_string_equal(name, "background");
        set_ok(name, "#12abEF", 1);
        set_ok(name, "#12abE", 0);
    }
}

static void test_convert_parameters(void **state)
{
    (void)state;
    char *dir = tu_mkdir();
    store *st = NULL;
    md_err e;
    store_opts so = {.data_dir = dir};
    assert_int_equal(store_open(&so, &st, &e), MD_OK);
    http_server *s = bare_server();
    api_convert_opts co = api_convert_opts_default();
    co.no_web = 1;
    api_convert *c = NULL;
    assert_int_equal(api_convert_register(s, st, &co, &c, &e), MD_OK);
    json_t *doc = document(s, true);
    json_t *props = dig(op_of(doc, "/api/convert", "post"), "requestBody", "content",
                        "application/json", "schema", "properties", NULL);
    vec_params p;
    md_buf b;
    md_buf_init(&b, 1 << 16);
    assert_int_equal(vec_params_preset("default", &p, &e), MD_OK);
    assert_int_equal(vec_params_to_json(&p, &b), MD_OK);
    json_t *defaults = json_loads(b.data, 0, NULL);
    md_buf_free(&b);
    const char *const *names = vec_params_names();
    size_t n = 0;
    for (; names[n]; n++)
        check_param(names[n], json_object_get(props, names[n]), defaults);
    assert_int_equal(json_object_size(props), n + 3); /* + file_id, converter, preset */
    /* every route of the conversion API is documented */
    const char *k;
    json_t *item;
    json_object_foreach(json_object_get(doc, "paths"), k, item)
    {
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op) assert_null(json_object_get(op, "x-modeld-undocumented"));
    }
    json_decref(defaults);
    json_decref(doc);
    http_server_free(s);
    api_convert_free(c);
    store_unref(st);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operations),
        cmocka_unit_test(test_bad_schemas),
        cmocka_unit_test(test_served),
        cmocka_unit_test(test_convert_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
