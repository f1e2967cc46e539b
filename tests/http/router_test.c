/* router_test.c - route matching: literals, {params}, {rest*}, specificity, 404 vs 405 with
 * the Allow list, HEAD via GET, malformed and duplicate patterns, hostile paths. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http/http_int.h"

static http_router rt;
static md_arena *arena;

static int setup(void **state)
{
    (void)state;
    http__router_init(&rt);
    arena = md_arena_new(0);
    const char *routes[][2] = {
        {"GET", "/api/health"},           {"GET", "/api/v1/jobs/{id}"},       {"DELETE", "/api/v1/jobs/{id}"},
        {"GET", "/api/v1/jobs/{id}/result"}, {"POST", "/api/{model}"},      {"GET", "/api/models"},
        {"GET", "/static/{path*}"},       {"GET", "/"},                       {"GET", "/v2/models/{name}/versions/{v}"},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        assert_non_null(http__router_add(&rt, routes[i][0], routes[i][1]));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    http__router_free(&rt);
    md_arena_free(arena);
    return 0;
}

static const char *param(const http_match *m, const char *k)
{
    for (size_t i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i].k, k) == 0)
            return m->params[i].v;
    return NULL;
}

static void test_literal_and_params(void **state)
{
    (void)state;
    http_match m;
    assert_int_equal(http__router_match(&rt, "GET", "/api/health", arena, &m), MD_OK);
    assert_string_equal(m.route->pattern, "/api/health");
    assert_int_equal(m.nparams, 0);
    assert_int_equal(http__router_match(&rt, "GET", "/api/v1/jobs/abc-123", arena, &m), MD_OK);
    assert_string_equal(m.route->pattern, "/api/v1/jobs/{id}");
    assert_string_equal(param(&m, "id"), "abc-123");
    assert_int_equal(http__router_match(&rt, "DELETE", "/api/v1/jobs/7", arena, &m), MD_OK);
    assert_string_equal(m.route->method, "DELETE");
    assert_int_equal(http__router_match(&rt, "GET", "/api/v1/jobs/7/result", arena, &m), MD_OK);
    assert_string_equal(param(&m, "id"), "7");
    assert_int_equal(http__router_match(&rt, "GET", "/v2/models/resnet/versions/3", arena, &m), MD_OK);
    assert_string_equal(param(&m, "name"), "resnet");
    assert_string_equal(param(&m, "v"), "3");
    assert_int_equal(http__router_match(&rt, "GET", "/", arena, &m), MD_OK);
    assert_string_equal(m.route->pattern, "/");
}

static void test_rest_param(void **state)
{
    (void)state;
    http_match m;
    assert_int_equal(http__router_match(&rt, "GET", "/static/css/app.css", arena, &m), MD_OK);
    assert_string_equal(param(&m, "path"), "css/app.css");
    assert_int_equal(http__router_match(&rt, "GET", "/static/", arena, &m), MD_OK);
    assert_string_equal(param(&m, "path"), "");
    assert_int_equal(http__router_match(&rt, "GET", "/static", arena, &m), MD_OK);
    assert_string_equal(param(&m, "path"), "");
}

static void test_specificity_and_method_fallback(void **state)
{
    (void)state;
    http_match m;
    /* GET /api/models is literal; POST /api/models falls to POST /api/{model}. */
    assert_int_equal(http__router_match(&rt, "GET", "/api/models", arena, &m), MD_OK);
    assert_string_equal(m.route->pattern, "/api/models");
    assert_int_equal(http__router_match(&rt, "POST", "/api/models", arena, &m), MD_OK);
    assert_string_equal(m.route->pattern, "/api/{model}");
    assert_string_equal(param(&m, "model"), "models");
    assert_int_equal(http__router_match(&rt, "POST", "/api/churn", arena, &m), MD_OK);
    assert_string_equal(param(&m, "model"), "churn");
}

static void test_404_405(void **state)
{
    (void)state;
    http_match m;
    assert_int_equal(http__router_match(&rt, "GET", "/nope", arena, &m), MD_E_NOT_FOUND);
    assert_int_equal(http__router_match(&rt, "GET", "/api/health/", arena, &m), MD_E_NOT_FOUND);
    assert_int_equal(http__router_match(&rt, "GET", "/api/v1/jobs/", arena, &m), MD_E_NOT_FOUND);
    assert_int_equal(http__router_match(&rt, "GET", "api/health", arena, &m), MD_E_NOT_FOUND);
    assert_int_equal(http__router_match(&rt, "PUT", "/api/v1/jobs/1", arena, &m), MD_E_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET, HEAD, DELETE");
    assert_int_equal(http__router_match(&rt, "DELETE", "/api/health", arena, &m), MD_E_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET, HEAD, POST");
    assert_int_equal(http__router_match(&rt, "OPTIONS", "/api/health", arena, &m), MD_E_METHOD_NOT_ALLOWED);
}

static void test_head_uses_get(void **state)
{
    (void)state;
    http_match m;
    assert_int_equal(http__router_match(&rt, "HEAD", "/api/health", arena, &m), MD_OK);
    assert_string_equal(m.route->method, "GET");
}

static void test_bad_patterns(void **state)
{
    (void)state;
    http_router r2;
    http__router_init(&r2);
    assert_null(http__router_add(&r2, "GET", "no-slash"));
    assert_null(http__router_add(&r2, "GET", "/a/{rest*}/b"));
    assert_null(http__router_add(&r2, "GET", "/a/{}"));
    assert_null(http__router_add(&r2, "GET", "/a/{bad-name}"));
    assert_null(http__router_add(&r2, "GET", "/a/x{y}"));
    assert_non_null(http__router_add(&r2, "GET", "/a/{id}"));
    assert_null(http__router_add(&r2, "GET", "/a/{id}")); /* duplicate */
    assert_non_null(http__router_add(&r2, "POST", "/a/{id}"));
    http__router_free(&r2);
}

static void test_hostile_paths(void **state)
{
    (void)state;
    http_match m;
    char deep[2048] = "";
    for (int i = 0; i < 100; i++)
        strcat(deep, "/a");
    assert_int_equal(http__router_match(&rt, "GET", deep, arena, &m), MD_E_NOT_FOUND);
    assert_int_equal(http__router_match(&rt, "GET", "", arena, &m), MD_E_NOT_FOUND);
    assert_int_equal(http__router_match(&rt, "GET", "//", arena, &m), MD_E_NOT_FOUND);
    /* an empty segment is not a parameter value */
    assert_int_equal(http__router_match(&rt, "GET", "/api/v1/jobs//result", arena, &m), MD_E_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_and_params),
        cmocka_unit_test(test_rest_param),
        cmocka_unit_test(test_specificity_and_method_fallback),
        cmocka_unit_test(test_404_405),
        cmocka_unit_test(test_head_uses_get),
        cmocka_unit_test(test_bad_patterns),
        cmocka_unit_test(test_hostile_paths),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
