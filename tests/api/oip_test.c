/* oip_test.c - the OIP and management routes through the loopback connection, on a real
 * registry serving the oip-add fixture models: answers, OIP error bodies ({"error": msg}, and
 * only on /v2 routes), infer naming the version that answered, the binary extension header, and
 * that every route is described with schemas that parse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/models_api.h"
#include "api/oip.h"
#include "common/tmpdir.h"
#include "http/http_loopback.h"

typedef struct fx {
    char *dir;
    mdl_registry *reg;
    http_server *srv;
} fx;

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[8192];
    size_t n;
    int rc = in && out ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        rc = fwrite(buf, 1, n, out) == n ? 0 : -1;
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        rc = -1;
    return rc;
}

/* <dir>/models/oip-add/{1,2,3}/ copied from tests/fixtures/models (a private, writable root). */
static int copy_fixture(const char *dir)
{
    const char *src = getenv("MODELD_SOURCE_DIR");
    char p[1024], q[1024];
    snprintf(p, sizeof p, "%s/models", dir);
    snprintf(q, sizeof q, "%s/models/oip-add", dir);
    if (mkdir(p, 0755) != 0 || mkdir(q, 0755) != 0)
        return -1;
    for (int v = 1; v <= 3; v++) {
        snprintf(q, sizeof q, "%s/models/oip-add/%d", dir, v);
        if (mkdir(q, 0755) != 0)
            return -1;
        for (int k = 0; k < 2; k++) {
            const char *file = k ? "modeld.json" : "model.onnx";
            snprintf(p, sizeof p, "%s/tests/fixtures/models/oip-add/%d/%s", src ? src : ".", v, file);
            snprintf(q, sizeof q, "%s/models/oip-add/%d/%s", dir, v, file);
            if (copy_file(p, q) != 0)
                return -1;
        }
    }
    return 0;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->dir = tu_mkdir();
    char models[1024];
    if (!f->dir || copy_fixture(f->dir) != 0)
        return -1;
    snprintf(models, sizeof models, "%s/models", f->dir);
    md_err e;
    mdl_registry_opts o = {.shipped_dir = models, .data_dir = f->dir, .load_all = true};
    assert_int_equal(mdl_registry_open(&o, &f->reg, &e), MD_OK);
    http_opts ho = {.host = "127.0.0.1", .compute_threads = 1};
    assert_int_equal(http_server_new(&ho, &f->srv, &e), MD_OK);
    assert_int_equal(api_oip_register(f->srv, f->reg, &e), MD_OK);
    assert_int_equal(api_models_register(f->srv, f->reg, &e), MD_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    http_server_free(f->srv);
    mdl_registry_close(f->reg);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static json_t *call(fx *f, const char *m, const char *target, const char *body, int want_status)
{
    http_loopback_resp r;
    assert_int_equal(http_loopback(f->srv, m, target, (const char *[]){"Content-Type", "application/json", NULL}, body,
                                   body ? strlen(body) : 0, &r),
                     MD_OK);
    if (r.status != want_status)
        fail_msg("%s %s: %d, want %d: %s", m, target, r.status, want_status, r.body);
    json_t *j = r.len ? json_loads(r.body, 0, NULL) : json_object();
    http_loopback_resp_free(&r);
    assert_non_null(j);
    return j;
}

static void test_server_routes(void **state)
{
    fx *f = *state;
    json_t *j = call(f, "GET", "/v2", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "modeld");
    assert_int_equal(json_array_size(json_object_get(j, "extensions")), 3);
    json_decref(j);
    json_decref(call(f, "GET", "/v2/health/live", NULL, 200));
    json_decref(call(f, "GET", "/v2/health/ready", NULL, 200));
}

static void test_oip_error_form(void **state)
{
    fx *f = *state;
    json_t *j = call(f, "GET", "/v2/models/nope", NULL, 404);
    assert_int_equal(json_object_size(j), 1);
    assert_non_null(strstr(json_string_value(json_object_get(j, "error")), "nope"));
    json_decref(j);
    /* our own routes keep the common error body */
    j = call(f, "GET", "/api/models/nope", NULL, 404);
    assert_false(json_is_true(json_object_get(j, "success")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "model_not_found");
    json_decref(j);
}

static void test_infer_names_version(void **state)
{
    fx *f = *state;
    static const char body[] =
        "{\"id\":\"a\",\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4]}],"
        "\"outputs\":[{\"name\":\"y\"}]}";
    json_t *j = call(f, "POST", "/v2/models/oip-add/infer", body, 200);
    const char *v = json_string_value(json_object_get(j, "model_version"));
    assert_string_equal(v, "3"); /* nothing remembered: the highest version is active */
    json_t *y = json_object_get(json_array_get(json_object_get(j, "outputs"), 0), "data");
    assert_true(json_number_value(json_array_get(y, 0)) == 4.0);
    assert_int_equal(json_array_size(json_object_get(j, "outputs")), 1);
    json_decref(j);
    json_decref(call(f, "POST", "/api/models/oip-add/versions/1/activate", NULL, 200));
    j = call(f, "POST", "/v2/models/oip-add/infer", body, 200);
    assert_string_equal(json_string_value(json_object_get(j, "model_version")), "1");
    json_decref(j);
    j = call(f, "POST", "/v2/models/oip-add/infer", "{\"inputs\":[{\"name\":\"x\"}]}", 400);
    assert_non_null(strstr(json_string_value(json_object_get(j, "error")), "'x'"));
    json_decref(j);
}

/* Every route has a descriptor with a summary and a tag, and its schemas parse. */
static void check_doc(void *ctx, const char *method, const char *pattern, http_role role, int flags,
                      const http_doc *doc)
{
    (void)role;
    int *n = ctx;
    (*n)++;
    if (!doc || !doc->summary || !doc->tag)
        fail_msg("%s %s has no descriptor", method, pattern);
    const char *schemas[] = {doc->request, doc->response};
    for (size_t i = 0; i < 2; i++) {
        json_error_t je;
        json_t *j = schemas[i] ? json_loads(schemas[i], 0, &je) : NULL;
        if (schemas[i] && !j)
            fail_msg("%s %s: schema %zu does not parse: %s", method, pattern, i, je.text);
        json_decref(j);
    }
    if (strncmp(pattern, "/v2", 3) == 0)
        assert_true(flags & HTTP_ERR_OIP);
    else
        assert_false(flags & HTTP_ERR_OIP);
}

static void test_routes_documented(void **state)
{
    fx *f = *state;
    int n = 0;
    http_routes_visit(f->srv, check_doc, &n);
    assert_int_equal(n, 15 + 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oip_error_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_infer_names_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_documented, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
