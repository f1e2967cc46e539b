/* convert_test.c - the conversion API through the whole HTTP middleware chain without a socket
 * (http_loopback): upload checks in order, convert with its cache, results, the web page, and
 * the cache counters in /metrics. Images come from the dev corpus copy in tests/fixtures/corpus; the store lives in a
 * fresh temporary directory. The server runs with no auth hook (every caller is admin): roles
 * are covered by the end-to-end tests. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/convert.h"
#include "http/http_loopback.h"
#include "common/tmpdir.h"

#include <unistd.h>

typedef struct fixture {
    char *dir;
    store *st;
    http_server *srv;
    api_convert *conv;
} fixture;

static char *read_file(const char *name, size_t *n)
{
    char path[1024];
    const char *shared = getenv("MODELD_CORPUS_DIR");
    snprintf(path, sizeof path, "%s/%s", shared ? shared : "tests/fixtures/corpus", name);
    return (char *)tu_slurp(path, n);
}

static int setup_with(void **state, size_t upload_max)
{
    fixture *fx = calloc(1, sizeof *fx);
    md_err err = {0};
    fx->dir = tu_mkdir();
    store_opts so = {.data_dir = fx->dir};
    assert_int_equal(store_open(&so, &fx->st, &err), MD_OK);
    http_opts ho = {.host = "127.0.0.1", .compute_threads = 1};
    assert_int_equal(http_server_new(&ho, &fx->srv, &err), MD_OK);
    api_convert_opts co = api_convert_opts_default();
    char web[1024];
    snprintf(web, sizeof web, "%s/web",
             getenv("MODELD_SOURCE_DIR") ? getenv("MODELD_SOURCE_DIR") : ".");
    co.web_dir = web;
    co.upload_max_bytes = upload_max;
    assert_int_equal(api_convert_register(fx->srv, fx->st, &co, &fx->conv, &err), MD_OK);
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 20u << 20);
}
static int setup_small(void **state)
{
    return setup_with(state, 150000);
}

static int teardown(void **state)
{
    fixture *fx = *state;
    http_server_free(fx->srv);
    api_convert_free(fx->conv);
    store_unref(fx->st);
    tu_rmdir(fx->dir);
    free(fx);
    return 0;
}

/* POST /api/upload of a corpus file as multipart/form-data. */
static void upload(fixture *fx, const char *name, http_loopback_resp *r)
{
    size_t n;
    char *img = read_file(name, &n);
    size_t cap = n + 512;
    char *body = malloc(cap);
    int k = snprintf(body, cap,
                     "--BND\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
                     "Content-Type: image/png\r\n\r\n",
                     name);
    memcpy(body + k, img, n);
    memcpy(body + k + n, "\r\n--BND--\r\n", 11);
    const char *h[] = {"Content-Type", "multipart/form-data; boundary=BND", NULL};
    assert_int_equal(http_loopback(fx->srv, "POST", "/api/upload", h, body, (size_t)k + n + 11, r),
                     MD_OK);
    free(body);
    free(img);
}

static json_t *body_json(const http_loopback_resp *r)
{
    json_t *j = json_loads(r->body, 0, NULL);
    assert_non_null(j);
    return j;
}

static const char *error_code(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

/* Upload name and return its file_id (new). */
static char *upload_ok(fixture *fx, const char *name)
{
    http_loopback_resp r;
    upload(fx, name, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    char *id = strdup(json_string_value(json_object_get(j, "file_id")));
    json_decref(j);
    http_loopback_resp_free(&r);
    return id;
}

static void convert(fixture *fx, const char *json, http_loopback_resp *r)
{
    const char *h[] = {"Content-Type", "application/json", NULL};
    assert_int_equal(
        http_loopback(fx->srv, "POST", "/api/convert", h, json, json ? strlen(json) : 0, r), MD_OK);
}

static void test_upload_ok(void **state)
{
    fixture *fx = *state;
    http_loopback_resp r;
    upload(fx, "simple_geometric_00.png", &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_true(json_is_true(json_object_get(j, "success")));
    assert_string_equal(json_string_value(json_object_get(j, "filename")),
                        "simple_geometric_00.png");
    assert_string_equal(json_string_value(json_object_get(j, "format")), "png");
    assert_int_equal(json_integer_value(json_object_get(j, "width")), 128);
    assert_int_equal(json_integer_value(json_object_get(j, "height")), 128);
    assert_int_equal(json_integer_value(json_object_get(j, "size_bytes")), 2355);
    assert_int_equal(json_object_size(j), 7);
    json_decref(j);
    http_loopback_resp_free(&r);

    /* The same bytes as a raw body: a new file_id, the blob stored once. */
    size_t n;
    char *img = read_file("simple_geometric_00.png", &n);
    const char *h[] = {"Content-Type", "image/png", NULL};
    assert_int_equal(
        http_loopback(fx->srv, "POST", "/api/upload?filename=..%2Fx.png", h, img, n, &r), MD_OK);
    free(img);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "filename")), "x.png");
    json_decref(j);
    http_loopback_resp_free(&r);
    assert_int_equal(tu_count_files(fx->dir, "blobs") - tu_count_files(fx->dir, "blobs/tmp"), 1);
}

static void test_upload_errors(void **state)
{
    fixture *fx = *state;
    const struct {
        const char *file;
        int status;
        const char *code;
    } cases[] = {
        {"non_image_text.png", 415, "unsupported_format"},
        {"corrupted_magic_garbage.png", 400, NULL},
        {"corrupted_truncated.png", 400, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_loopback_resp r;
        upload(fx, cases[i].file, &r);
        assert_int_equal(r.status, cases[i].status);
        json_t *j = body_json(&r);
        if (cases[i].code)
            assert_string_equal(error_code(j), cases[i].code);
        json_decref(j);
        http_loopback_resp_free(&r);
    }
    /* No body at all, and a form without the file field. */
    http_loopback_resp r;
    const char *h[] = {"Content-Type", "multipart/form-data; boundary=B", NULL};
    assert_int_equal(http_loopback(fx->srv, "POST", "/api/upload", h, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 400);
    http_loopback_resp_free(&r);
    const char *form =
        "--B\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--B--\r\n";
    assert_int_equal(http_loopback(fx->srv, "POST", "/api/upload", h, form, strlen(form), &r),
                     MD_OK);
    assert_int_equal(r.status, 400);
    json_t *j = body_json(&r);
    assert_string_equal(error_code(j), "missing_field");
    json_decref(j);
    http_loopback_resp_free(&r);
}

static void test_upload_too_large(void **state)
{
    fixture *fx = *state;
    http_loopback_resp r;
    upload(fx, "complex_00.png", &r); /* 198754 bytes > 150000 */
    assert_int_equal(r.status, 413);
    http_loopback_resp_free(&r);
    upload(fx, "gradient_00.png", &r); /* 13959 bytes */
    assert_int_equal(r.status, 200);
    http_loopback_resp_free(&r);
}

static void test_convert_cache_and_results(void **state)
{
    fixture *fx = *state;
    char *id = upload_ok(fx, "papirus_resharper_256.png");
    char req[256];
    snprintf(req, sizeof req, "{\"file_id\":\"%s\",\"converter\":\"vtracer\",\"filter_speckle\":2}",
             id);
    http_loopback_resp r;
    convert(fx, req, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(http_loopback_header(&r, "X-Cache"), "MISS");
    json_t *j = body_json(&r);
    assert_int_equal(json_object_size(j), 8);
    const char *svg = json_string_value(json_object_get(j, "svg"));
    assert_non_null(strstr(svg, "<svg"));
    assert_int_equal(json_integer_value(json_object_get(j, "svg_bytes")), strlen(svg));
    assert_true(json_real_value(json_object_get(j, "ssim")) > 0.5);
    assert_true(json_integer_value(json_object_get(j, "path_count")) > 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "parameters"), "filter_speckle")), 2);
    char *rid = strdup(json_string_value(json_object_get(j, "result_id")));
    json_decref(j);
    http_loopback_resp_free(&r);

    convert(fx, req, &r); /* same file, same parameters */
    assert_int_equal(r.status, 200);
    assert_string_equal(http_loopback_header(&r, "X-Cache"), "HIT");
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "result_id")), rid);
    json_decref(j);
    http_loopback_resp_free(&r);

    char path[128];
    snprintf(path, sizeof path, "/api/results/%s", rid);
    assert_int_equal(http_loopback(fx->srv, "GET", path, NULL, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "file_id")), id);
    assert_non_null(strstr(json_string_value(json_object_get(j, "svg")), "<svg"));
    json_decref(j);
    http_loopback_resp_free(&r);
    snprintf(path, sizeof path, "/api/results/%s.svg", rid);
    assert_int_equal(http_loopback(fx->srv, "GET", path, NULL, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(http_loopback_header(&r, "Content-Type"), "image/svg+xml");
    assert_non_null(
        strstr(http_loopback_header(&r, "Content-Disposition"), "papirus_resharper_256.svg"));
    assert_non_null(strstr(r.body, "<svg"));
    http_loopback_resp_free(&r);
    assert_int_equal(http_loopback(fx->srv, "GET", "/api/results/r_nope.svg", NULL, NULL, 0, &r),
                     MD_OK);
    assert_int_equal(r.status, 404);
    http_loopback_resp_free(&r);

    md_buf m;
    md_buf_init(&m, 1 << 20);
    assert_int_equal(http_metrics_render(fx->srv, &m), MD_OK);
    assert_non_null(strstr(m.data, "modeld_convert_cache_hits_total 1\n"));
    assert_non_null(strstr(m.data, "modeld_convert_cache_misses_total 1\n"));
    md_buf_free(&m);
    free(rid);
    free(id);
}

static void test_convert_errors(void **state)
{
    fixture *fx = *state;
    char *id = upload_ok(fx, "text_based_00.png");
    char req[256];
    const struct {
        const char *fmt;
        int status;
        const char *field;
    } cases[] = {
        {"{\"file_id\":\"%s\",\"corner_threshold\":400}", 400, "corner_threshold"},
        {"{\"file_id\":\"%s\",\"mode\":\"curvy\"}", 400, "mode"},
        {"{\"file_id\":\"%s\",\"no_such_knob\":1}", 400, "no_such_knob"},
        {"{\"file_id\":\"%s\",\"filter_speckle\":[1]}", 400, "filter_speckle"},
        {"{\"file_id\":\"%s\",\"converter\":\"magic\"}", 400, "converter"},
        {"{\"file_id\":\"%s\",\"preset\":\"nope\"}", 400, "preset"},
        {"{\"file_id\":\"%s\",\"converter\":\"potrace\",\"colormode\":\"color\"}", 400,
         "colormode"},
        {"{\"file_id\":\"%s\",\"svgz\":1}", 400, "svgz"},
        {"{\"file_id\":\"f_doesnotexist%s\"}", 404, "file_id"},
        {"{\"file_id\":\"f_0000%.0s\"}", 404, "file_id"},
        {"{\"converter\":\"vtracer\"%.0s}", 400, "file_id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_loopback_resp r;
        snprintf(req, sizeof req, cases[i].fmt, id);
        convert(fx, req, &r);
        assert_int_equal(r.status, cases[i].status);
        json_t *j = body_json(&r);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(j, "error"), "field")),
            cases[i].field);
        json_decref(j);
        http_loopback_resp_free(&r);
    }
    http_loopback_resp r;
    convert(fx, NULL, &r);
    assert_int_equal(r.status, 400);
    http_loopback_resp_free(&r);
    convert(fx, "{not json", &r);
    assert_int_equal(r.status, 400);
    http_loopback_resp_free(&r);
    free(id);
}

static void test_converters(void **state)
{
    fixture *fx = *state;
    char *grad = upload_ok(fx, "gradient_02.png");
    const struct {
        const char *id, *converter, *colormode;
    } cases[] = {
        {grad, "potrace", "binary"},
        {grad, "vtracer", "color"},
        {grad, "smart", "color"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[256];
        snprintf(req, sizeof req, "{\"file_id\":\"%s\",\"converter\":\"%s\"}", cases[i].id,
                 cases[i].converter);
        http_loopback_resp r;
        convert(fx, req, &r);
        assert_int_equal(r.status, 200);
        json_t *j = body_json(&r);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(j, "parameters"), "colormode")),
            cases[i].colormode);
        json_decref(j);
        http_loopback_resp_free(&r);
    }
    free(grad);
}

static void test_web_page(void **state)
{
    fixture *fx = *state;
    http_loopback_resp r;
    assert_int_equal(http_loopback(fx->srv, "GET", "/", NULL, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(http_loopback_header(&r, "Content-Type"), "text/html; charset=utf-8");
    assert_string_equal(http_loopback_header(&r, "Cache-Control"), "no-cache");
    assert_non_null(http_loopback_header(&r, "Content-Security-Policy"));
    assert_non_null(strstr(r.body, "app.js"));
    char etag[64];
    snprintf(etag, sizeof etag, "%s", http_loopback_header(&r, "ETag"));
    http_loopback_resp_free(&r);
    const char *h[] = {"If-None-Match", etag, NULL};
    assert_int_equal(http_loopback(fx->srv, "GET", "/index.html", h, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 304);
    http_loopback_resp_free(&r);
    assert_int_equal(http_loopback(fx->srv, "GET", "/app.js", NULL, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(http_loopback_header(&r, "Content-Type"), "text/javascript; charset=utf-8");
    http_loopback_resp_free(&r);
    assert_int_equal(http_loopback(fx->srv, "GET", "/..%2FCMakeLists.txt", NULL, NULL, 0, &r),
                     MD_OK);
    assert_int_equal(r.status, 404);
    http_loopback_resp_free(&r);
    assert_int_equal(http_loopback(fx->srv, "GET", "/api/presets", NULL, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(j, "presets"), "bw"), "colormode")),
                        "binary");
    json_decref(j);
    http_loopback_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upload_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_too_large, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_convert_cache_and_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_converters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_web_page, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
