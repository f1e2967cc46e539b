/* convert_test.c - vec_convert end to end on dev-corpus images, and the promise behind its
 * quality numbers: our cairo rendering of the traced document matches what librsvg
 * (rsvg-convert, the renderer score_svg.py uses) draws from our SVG, so the SSIM the library
 * reports is the SSIM the benchmark's scorer computes, within the 0.002.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "image/image.h"
#include "base/clock.h"
#include "vectorize/vec.h"

static const char *const FILES[] = {"simple_geometric_00.png", "text_based_05.png",
                                    "gradient_05.png", "papirus_famitracker_64.png"};

static md_image *load(const char *name)
{
    const char *shared = getenv("MODELD_CORPUS_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", shared && *shared ? shared : "tests/fixtures/corpus", name);
    md_image *img = NULL;
    md_err err;
    if (img_load_file(path, NULL, &img, &err) != MD_OK)
        fail_msg("%s: %s", path, md_err_message(&err));
    return img;
}

/* RGB of an image on white. New (free). */
static uint8_t *on_white(const md_image *src)
{
    md_image *c = img_new(src->width, src->height);
    assert_non_null(c);
    size_t n = (size_t)src->width * (size_t)src->height;
    memcpy(c->rgba, src->rgba, n * 4);
    img_composite(c, 255, 255, 255);
    uint8_t *rgb = malloc(n * 3);
    assert_non_null(rgb);
    for (size_t i = 0; i < n; i++)
        memcpy(rgb + i * 3, c->rgba + i * 4, 3);
    img_free(c);
    return rgb;
}

/* librsvg's rendering of svg at w x h, on white, as score_svg.py makes it. New (free). */
static uint8_t *rsvg_render(const char *svg, size_t len, int w, int h)
{
    char in[] = "/tmp/modeld_conv_XXXXXX", out[64], cmd[256];
    int fd = mkstemp(in);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, svg, len), (ssize_t)len);
    close(fd);
    snprintf(out, sizeof out, "%s.png", in);
    snprintf(cmd, sizeof cmd, "rsvg-convert -w %d -h %d -f png -o %s %s", w, h, out, in);
    if (system(cmd) != 0)
        fail_msg("rsvg-convert failed (is librsvg2-bin installed?)");
    md_image *img = NULL;
    md_err err;
    if (img_load_file(out, NULL, &img, &err) != MD_OK)
        fail_msg("rsvg output: %s", md_err_message(&err));
    unlink(in);
    unlink(out);
    assert_int_equal(img->width, w);
    assert_int_equal(img->height, h);
    uint8_t *rgb = on_white(img);
    img_free(img);
    return rgb;
}

static void test_quality_matches_scorer(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        md_image *img = load(FILES[i]);
        vec_params p;
        assert_int_equal(vec_params_preset("default", &p, NULL), MD_OK);
        vec_convert_opts o = {.measure_quality = 1};
        vec_result *r = NULL;
        md_err err;
        if (vec_convert(img, &p, &o, &r, &err) != MD_OK)
            fail_msg("%s: %s", FILES[i], md_err_message(&err));
        assert_int_equal(strlen(r->svg), r->svg_bytes);
        assert_true(strncmp(r->svg, "<svg", 4) == 0 || strncmp(r->svg, "<?xml", 5) == 0);
        assert_non_null(strstr(r->svg, "</svg>"));
        assert_true(r->path_count >= 1);
        assert_true(r->timing.total_ms >= r->timing.render_ms + r->timing.ssim_ms);
        assert_int_equal(r->params.path_precision, p.path_precision);
        /* The scorer's number: source on white against librsvg's rendering of our SVG. */
        uint8_t *src = on_white(img), *theirs = rsvg_render(r->svg, r->svg_bytes, img->width,
                                                            img->height);
        vec_ssim_result scorer;
        assert_int_equal(vec_ssim(src, theirs, img->width, img->height, &scorer, NULL), MD_OK);
        if (r->ssim.rgb < scorer.rgb - 0.002 || r->ssim.rgb > scorer.rgb + 0.002 ||
            r->ssim.luma < scorer.luma - 0.002 || r->ssim.luma > scorer.luma + 0.002)
            fail_msg("%s: library SSIM rgb %.5f grey %.5f, via rsvg %.5f %.5f", FILES[i],
                     r->ssim.rgb, r->ssim.luma, scorer.rgb, scorer.luma);
        assert_true(r->ssim.rgb > 0.8 && r->ssim.rgb <= 1.0);
        free(src);
        free(theirs);
        vec_result_free(r);
        img_free(img);
    }
}

/* rgb_only: the same RGB SSIM, the same SVG, and no luma number. */
static void test_rgb_only(void **state)
{
    (void)state;
    md_image *img = load("papirus_famitracker_64.png");
    vec_params p;
    vec_params_default(&p);
    vec_convert_opts all = {.measure_quality = 1}, rgb = {.measure_quality = 1, .rgb_only = 1};
    vec_result *a = NULL, *b = NULL;
    assert_int_equal(vec_convert(img, &p, &all, &a, NULL), MD_OK);
    assert_int_equal(vec_convert(img, &p, &rgb, &b, NULL), MD_OK);
    assert_true(a->ssim.rgb == b->ssim.rgb);
    assert_true(a->ssim.luma > 0.5 && b->ssim.luma == -1);
    assert_int_equal(a->svg_bytes, b->svg_bytes);
    vec_result_free(a);
    vec_result_free(b);
    img_free(img);
}

static void test_deterministic_and_no_quality(void **state)
{
    (void)state;
    md_image *img = load("papirus_famitracker_64.png");
    vec_params p;
    vec_params_default(&p);
    vec_convert_opts o = {.measure_quality = 0};
    vec_result *a = NULL, *b = NULL;
    assert_int_equal(vec_convert(img, &p, &o, &a, NULL), MD_OK);
    assert_int_equal(vec_convert(img, &p, NULL, &b, NULL), MD_OK);
    assert_int_equal(a->svg_bytes, b->svg_bytes);
    assert_memory_equal(a->svg, b->svg, a->svg_bytes);
    assert_true(a->ssim.rgb == 0.0 && a->timing.render_ms == 0.0);
    vec_result_free(a);
    vec_result_free(b);
    img_free(img);
}

static void test_bad_input(void **state)
{
    (void)state;
    md_image *img = load("simple_geometric_03.png");
    vec_params p;
    vec_params_default(&p);
    p.filter_speckle = 999;
    vec_result *r = (vec_result *)1;
    md_err err;
    assert_int_equal(vec_convert(img, &p, NULL, &r, &err), MD_E_INVALID_PARAM);
    assert_null(r);
    assert_string_equal(err.field, "filter_speckle");
    vec_params_default(&p);
    md_image empty = {0};
    assert_int_equal(vec_convert(&empty, &p, NULL, &r, &err), MD_E_INVALID_PARAM);
    assert_null(r);
    img_free(img);
}

/* Transparent input: kept transparent it draws nothing and matches the white reference; with
 * composite on black it becomes a black square, and the quality still compares with the
 * source on white (convert.c invariant 2), so it scores low. */
static void test_composite_option(void **state)
{
    (void)state;
    md_image *img = img_new(24, 24); /* all transparent */
    assert_non_null(img);
    img->has_alpha = 1;
    vec_params p;
    vec_params_default(&p);
    vec_convert_opts o = {.measure_quality = 1};
    vec_result *r = NULL;
    assert_int_equal(vec_convert(img, &p, &o, &r, NULL), MD_OK);
    assert_true(r->ssim.rgb > 0.999);
    vec_result_free(r);
    p.composite = 1;
    p.background[0] = p.background[1] = p.background[2] = 0;
    assert_int_equal(vec_convert(img, &p, &o, &r, NULL), MD_OK);
    assert_true(r->path_count >= 1);
    assert_true(r->ssim.rgb < 0.1);
    vec_result_free(r);
    uint8_t first[4];
    memcpy(first, img->rgba, 4);
    assert_int_equal(first[3], 0); /* the caller's image is not modified */
    img_free(img);
}

/* A synthetic image with a few hundred regions (a grid of coloured squares), so fitting has
 * more than one VEC__CHECK_EVERY batch of regions. New (img_free). */
static md_image *grid(int cells, int cell)
{
    md_image *img = img_new(cells * cell, cells * cell);
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++) {
            uint8_t *p = img->rgba + 4 * ((size_t)y * (size_t)img->width + (size_t)x);
            int k = (y / cell) * cells + x / cell;
            p[0] = (uint8_t)(k * 37), p[1] = (uint8_t)(k * 91), p[2] = (uint8_t)(k * 53), p[3] = 255;
        }
    return img;
}

typedef struct stage_log {
    md_cancel *tok;
    const char *stop_at;
    int stop_after; /* cancel on the n-th report of stop_at */
    int seen, calls, monotonic;
    double last;
} stage_log;

static void on_progress(void *ctx, double f, const char *stage)
{
    stage_log *l = ctx;
    l->monotonic &= f >= l->last;
    l->last = f;
    l->calls++;
    if (l->stop_at && strcmp(stage, l->stop_at) == 0 && ++l->seen == l->stop_after)
        md_cancel_request(l->tok);
}

/* vec_convert_opts.cancel: progress is monotonic and ends at 1; a cancel asked at any stage
 * (including the second batch of regions while fitting, and SSIM) stops there, names the stage
 * and leaves no result; a past deadline is MD_E_TIMEOUT. */
static void test_cancel_and_progress(void **state)
{
    (void)state;
    md_image *img = grid(20, 6); /* 400 regions */
    vec_params p;
    vec_params_default(&p);
    p.gradients = 0;
    md_cancel tok;
    md_cancel_init(&tok, 0);
    stage_log log = {.tok = &tok, .monotonic = 1};
    tok.progress = on_progress;
    tok.progress_ctx = &log;
    vec_convert_opts o = {.measure_quality = 1, .cancel = &tok};
    vec_result *r = NULL;
    md_err err;
    assert_int_equal(vec_convert(img, &p, &o, &r, &err), MD_OK);
    assert_true(log.monotonic);
    assert_true(log.last == 1.0);
    assert_true(log.calls >= 10);
    vec_result_free(r);
    static const struct {
        const char *stage;
        int nth;
    } stops[] = {{"cluster", 2}, {"merge", 1}, {"contours", 1}, {"fit", 2}, {"svg", 1}, {"render", 1},
                 {"ssim", 1}};
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
        md_cancel_init(&tok, 0);
        tok.progress = on_progress;
        tok.progress_ctx = &log;
        log = (stage_log){.tok = &tok, .stop_at = stops[i].stage, .stop_after = stops[i].nth, .monotonic = 1};
        assert_int_equal(vec_convert(img, &p, &o, &r, &err), MD_E_CANCELLED);
        assert_null(r);
        if (!strstr(err.msg, stops[i].stage))
            fail_msg("stopped at %s: %s", stops[i].stage, err.msg);
    }
    md_cancel_init(&tok, md_now_ns() - 1);
    assert_int_equal(vec_convert(img, &p, &o, &r, &err), MD_E_TIMEOUT);
    assert_null(r);
    img_free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quality_matches_scorer),
        cmocka_unit_test(test_deterministic_and_no_quality),
        cmocka_unit_test(test_rgb_only),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_composite_option),
        cmocka_unit_test(test_cancel_and_progress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
