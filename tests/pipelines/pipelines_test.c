/* pipelines_test.c - pl_vectorize: from bytes without a store, from an upload with a store (the
 * result and its metadata are stored), the converters' choices, a cancel before the start, an
 * expired deadline, a cancel from the progress sink in the middle of fitting, and admission by
 * cost (per-conversion maximum, pool-wide budget, budget given back on every path). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/clock.h"
#include "common/tmpdir.h"
#include "pipelines/pipelines.h"

/* An uncompressed 24-bit BMP of w x h: a black square in the middle of white (or, with red, a
 * red one), so the tracer has a few regions to fit. *n gets the size; new (free()). */
static uint8_t *make_bmp(int w, int h, int red, size_t *n)
{
    size_t row = ((size_t)w * 3 + 3) & ~(size_t)3;
    *n = 54 + row * (size_t)h;
    uint8_t *b = calloc(1, *n);
    assert_non_null(b);
    b[0] = 'B', b[1] = 'M';
    uint32_t v[] = {(uint32_t)*n, 0, 54, 40, (uint32_t)w, (uint32_t)h};
    memcpy(b + 2, &v[0], 4);
    memcpy(b + 10, &v[2], 4);
    memcpy(b + 14, &v[3], 4);
    memcpy(b + 18, &v[4], 4);
    memcpy(b + 22, &v[5], 4);
    b[26] = 1, b[28] = 24;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = b + 54 + (size_t)y * row + (size_t)x * 3; /* B, G, R */
            int in = x >= w / 4 && x < 3 * w / 4 && y >= h / 4 && y < 3 * h / 4;
            p[0] = p[1] = in ? 0 : 255;
            p[2] = in && !red ? 0 : 255;
        }
    return b;
}

static pl_vec_in bytes_in(const uint8_t *img, size_t n, pl_converter conv)
{
    pl_vec_in in = {.image = img, .image_len = n, .converter = conv, .measure_quality = 1};
    assert_int_equal(vec_params_preset("default", &in.params, NULL), MD_OK);
    return in;
}

static void test_bytes_no_store(void **state)
{
    (void)state;
    size_t n;
    uint8_t *img = make_bmp(48, 40, 0, &n);
    pl_ctx cx = {0};
    pl_vec_out out;
    md_err err;
    pl_vec_in in = bytes_in(img, n, PL_VTRACER);
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_OK);
    assert_non_null(out.res);
    assert_non_null(strstr(out.res->svg, "<svg"));
    assert_true(out.res->ssim.rgb > 0.9);
    assert_int_equal(out.width, 48);
    assert_int_equal(out.height, 40);
    assert_int_equal(out.format, IMG_FMT_BMP);
    assert_int_equal(out.smart_binary, -1);
    assert_string_equal(out.result_id, "");
    assert_int_equal(out.res->params.colormode, VEC_COLOR);
    pl_vec_out_free(&out);
    in.converter = PL_SMART; /* black on white: smart picks binary */
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_OK);
    assert_int_equal(out.smart_binary, 1);
    assert_int_equal(out.res->params.colormode, VEC_BINARY);
    pl_vec_out_free(&out);
    free(img);
    img = make_bmp(48, 40, 1, &n); /* red on white: colour */
    in = bytes_in(img, n, PL_SMART);
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_OK);
    assert_int_equal(out.smart_binary, 0);
    assert_int_equal(out.res->params.colormode, VEC_COLOR);
    pl_vec_out_free(&out);
    in.converter = PL_POTRACE; /* potrace is black and white whatever the parameters say */
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_OK);
    assert_int_equal(out.res->params.colormode, VEC_BINARY);
    pl_vec_out_free(&out);
    free(img);
}

static void test_with_store(void **state)
{
    (void)state;
    char *dir = tu_mkdir();
    store *st;
    md_err err;
    store_opts so = {.data_dir = dir};
    assert_int_equal(store_open(&so, &st, &err), MD_OK);
    size_t n;
    uint8_t *img = make_bmp(40, 40, 0, &n);
    store_upload meta = {.width = 40, .height = 40}, up;
    snprintf(meta.filename, sizeof meta.filename, "square.bmp");
    snprintf(meta.format, sizeof meta.format, "bmp");
    assert_int_equal(store_uploads_create(st, img, n, &meta, &up, &err), MD_OK);
    pl_ctx cx = {.st = st, .result_ttl_ms = 60000};
    pl_vec_in in = bytes_in(NULL, 0, PL_POTRACE);
    in.file_id = up.file_id;
    pl_vec_out out;
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_OK);
    assert_true(strncmp(out.result_id, "r_", 2) == 0);
    assert_true(out.result_expires_ms > 0);
    store_result sr;
    char *meta_json = NULL;
    assert_int_equal(store_results_get(st, out.result_id, &sr, &meta_json, &err), MD_OK);
    assert_string_equal(sr.file_id, up.file_id);
    assert_int_equal(sr.svg_bytes, (int64_t)out.res->svg_bytes);
    assert_non_null(strstr(meta_json, "\"converter\":\"potrace\""));
    assert_non_null(strstr(meta_json, "\"filename\":\"square.bmp\""));
    assert_non_null(strstr(meta_json, "\"colormode\":\"binary\""));
    free(meta_json);
    pl_vec_out_free(&out);
    in.file_id = "f_nosuchupload";
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_E_FILE_NOT_FOUND);
    assert_string_equal(err.field, "file_id");
    assert_null(out.res);
    /* bytes with a store: the result is stored with no upload */
    in = bytes_in(img, n, PL_VTRACER);
    in.filename = "direct.bmp";
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_OK);
    assert_true(strncmp(out.result_id, "r_", 2) == 0);
    pl_vec_out_free(&out);
    free(img);
    store_unref(st);
    tu_rmdir(dir);
}

static void test_bad_input(void **state)
{
    (void)state;
    size_t n;
    uint8_t *img = make_bmp(8, 8, 0, &n);
    pl_ctx cx = {0};
    pl_vec_out out;
    md_err err;
    pl_vec_in in = bytes_in(img, n, PL_VTRACER);
    in.file_id = "f_x";
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_E_INVALID_PARAM);
    in = bytes_in(NULL, 0, PL_VTRACER);
    in.file_id = "f_x"; /* no store */
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_E_INVALID_PARAM);
    assert_string_equal(err.field, "file_id");
    in = bytes_in(img, n, (pl_converter)7);
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_E_INVALID_PARAM);
    assert_string_equal(err.field, "converter");
    in = bytes_in(img, n / 2, PL_VTRACER); /* cut in the pixels */
    assert_int_not_equal(pl_vectorize(&cx, &in, &out, &err), MD_OK);
    assert_null(out.res);
    pl_converter c;
    assert_int_equal(pl_converter_parse("smart", &c, &err), MD_OK);
    assert_int_equal(c, PL_SMART);
    assert_int_equal(pl_converter_parse("Smart", &c, &err), MD_E_INVALID_PARAM);
    assert_string_equal(pl_converter_name(PL_POTRACE), "potrace");
    free(img);
}

static void test_cancel_before_start(void **state)
{
    (void)state;
    size_t n;
    uint8_t *img = make_bmp(32, 32, 0, &n);
    md_cancel tok;
    md_cancel_init(&tok, 0);
    md_cancel_request(&tok);
    pl_budget *b;
    pl_budget_opts bo = pl_budget_opts_default();
    assert_int_equal(pl_budget_new(&bo, &b), MD_OK);
    pl_ctx cx = {.cancel = &tok, .budget = b};
    pl_vec_in in = bytes_in(img, n, PL_VTRACER);
    pl_vec_out out;
    md_err err;
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_E_CANCELLED);
    assert_null(out.res);
    assert_int_equal(pl_budget_in_flight(b), 0); /* given back */
    pl_budget_free(b);
    free(img);
}

static void test_expired_deadline(void **state)
{
    (void)state;
    size_t n;
    uint8_t *img = make_bmp(32, 32, 0, &n);
    md_cancel tok;
    md_cancel_init(&tok, md_now_ns() - 1); /* already past */
    pl_ctx cx = {.cancel = &tok};
    pl_vec_in in = bytes_in(img, n, PL_VTRACER);
    pl_vec_out out;
    md_err err;
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_E_TIMEOUT);
    assert_non_null(strstr(err.msg, "deadline"));
    assert_null(out.res);
    free(img);
}

typedef struct progress_log {
    md_cancel *tok;
    const char *stop_at;
    double last;
    int calls, monotonic;
} progress_log;

static void on_progress(void *ctx, double f, const char *stage)
{
    progress_log *l = ctx;
    l->monotonic &= f >= l->last;
    l->last = f;
    l->calls++;
    if (l->stop_at && strcmp(stage, l->stop_at) == 0)
        md_cancel_request(l->tok);
}

/* The progress sink sees every stage in order, and a cancel asked in the middle of fitting
 * stops the work at the next check, naming the stage. */
static void test_progress_and_cancel_mid_run(void **state)
{
    (void)state;
    size_t n;
    uint8_t *img = make_bmp(64, 64, 1, &n);
    md_cancel tok;
    md_cancel_init(&tok, 0);
    progress_log log = {.tok = &tok, .monotonic = 1};
    tok.progress = on_progress;
    tok.progress_ctx = &log;
    pl_ctx cx = {.cancel = &tok};
    pl_vec_in in = bytes_in(img, n, PL_VTRACER);
    pl_vec_out out;
    md_err err;
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_OK);
    assert_true(log.calls >= 8);
    assert_true(log.monotonic);
    assert_true(log.last == 1.0);
    pl_vec_out_free(&out);
    log = (progress_log){.tok = &tok, .stop_at = "fit", .monotonic = 1};
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_E_CANCELLED);
    assert_non_null(strstr(err.msg, "fit"));
    assert_null(out.res);
    free(img);
}

static void test_budget(void **state)
{
    (void)state;
    size_t n;
    uint8_t *img = make_bmp(32, 32, 0, &n); /* 1024 pixels */
    pl_budget *b;
    pl_budget_opts bo = {.max_pixels = 1000, .max_in_flight = 1500};
    assert_int_equal(pl_budget_new(&bo, &b), MD_OK);
    pl_ctx cx = {.budget = b};
    pl_vec_in in = bytes_in(img, n, PL_VTRACER);
    pl_vec_out out;
    md_err err;
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_E_IMAGE_TOO_LARGE);
    assert_string_equal(err.field, "pixels");
    assert_non_null(strstr(err.msg, "1000"));
    pl_budget_free(b);
    bo = (pl_budget_opts){.max_pixels = 2000, .max_in_flight = 1500}; /* raised to 2000 */
    assert_int_equal(pl_budget_new(&bo, &b), MD_OK);
    assert_int_equal(pl_budget_limits(b).max_in_flight, 2000);
    cx.budget = b;
    assert_int_equal(pl_budget_acquire(b, 1500, &err), MD_OK); /* someone else's conversion */
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_E_OVERLOADED);
    assert_int_equal(pl_budget_in_flight(b), 1500);
    pl_budget_release(b, 1500);
    assert_int_equal(pl_vectorize(&cx, &in, &out, &err), MD_OK);
    assert_int_equal(pl_budget_in_flight(b), 0);
    pl_vec_out_free(&out);
    assert_int_equal(pl_budget_acquire(NULL, UINT64_MAX, &err), MD_OK); /* no budget: no limit */
    pl_budget_free(b);
    pl_budget_free(NULL);
    free(img);
}

static void test_looks_binary(void **state)
{
    (void)state;
    md_image *img = img_new(10, 10);
    for (int i = 0; i < 100; i++) { /* black on white, with a transparent corner */
        uint8_t *p = img->rgba + 4 * i;
        uint8_t v = i % 3 ? 255 : 0;
        p[0] = p[1] = p[2] = v;
        p[3] = i < 5 ? 0 : 255;
    }
    assert_true(pl_looks_binary(img));
    for (int i = 0; i < 30; i++) { /* 30% saturated red */
        uint8_t *p = img->rgba + 4 * (i + 50);
        p[0] = 220, p[1] = 30, p[2] = 30, p[3] = 255;
    }
    assert_false(pl_looks_binary(img));
    img_free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_no_store),   cmocka_unit_test(test_with_store),
        cmocka_unit_test(test_bad_input),        cmocka_unit_test(test_cancel_before_start),
        cmocka_unit_test(test_expired_deadline), cmocka_unit_test(test_progress_and_cancel_mid_run),
        cmocka_unit_test(test_budget),           cmocka_unit_test(test_looks_binary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
