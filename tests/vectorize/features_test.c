/* features_test.c - the AI models' inputs: image features (names, ranges, determinism, the
 * gradient and text scores ordering images the way their classes say) and the 10-number
 * parameter encoding (round trip, rounding and clamping). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "image/image.h"
#include "vectorize/vec.h"

static md_image *load(const char *name)
{
    const char *dir = getenv("MODELD_CORPUS_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "tests/fixtures/corpus", name);
    md_image *img = NULL;
    md_err err;
    if (img_load_file(path, NULL, &img, &err) != MD_OK)
        fail_msg("%s: %s", path, err.msg);
    return img;
}

static int feature_index(const char *name)
{
    const char *const *names = vec_feature_names();
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    fail_msg("no feature %s", name);
    return -1;
}

static float feature_of(const char *file, const char *name)
{
    md_image *img = load(file);
    float f[VEC_N_FEATURES];
    assert_int_equal(vec_features(img, f, NULL), MD_OK);
    img_free(img);
    return f[feature_index(name)];
}

static void test_names(void **state)
{
    (void)state;
    const char *const *names = vec_feature_names();
    int n = 0;
    for (; names[n]; n++) {
        for (const char *c = names[n]; *c; c++)
            assert_true((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_');
        for (int j = 0; j < n; j++)
            assert_string_not_equal(names[j], names[n]);
    }
    assert_int_equal(n, VEC_N_FEATURES);
}

static const char *const SAMPLE[] = {
    "simple_geometric_00.png",
    "simple_geometric_05.png",
    "text_based_00.png",
    "gradient_00.png",
    "complex_02_photo.png",
    "papirus_famitracker_64.png",
    "papirus_supermeatboy_1024.png",
};

/* Every value finite, fractions in [0, 1], and two runs give the same bits. */
static void test_ranges_and_determinism(void **state)
{
    (void)state;
    const char *fractions[] = {
        "alpha_coverage",     "alpha_partial",       "mean_luma",    "mean_saturation",
        "top_color_fraction", "top4_color_fraction", "edge_density", "flat_fraction",
        "smooth_fraction",    "gradient_strength",   "fg_fraction",  "small_component_fraction",
        "text_likeness",      "stroke_width_mean",   "mean_gradient"};
    for (size_t i = 0; i < sizeof SAMPLE / sizeof SAMPLE[0]; i++) {
        md_image *img = load(SAMPLE[i]);
        float a[VEC_N_FEATURES], b[VEC_N_FEATURES];
        assert_int_equal(vec_features(img, a, NULL), MD_OK);
        assert_int_equal(vec_features(img, b, NULL), MD_OK);
        assert_memory_equal(a, b, sizeof a);
        for (int k = 0; k < VEC_N_FEATURES; k++)
            assert_true(isfinite(a[k]));
        for (size_t k = 0; k < sizeof fractions / sizeof fractions[0]; k++) {
            float v = a[feature_index(fractions[k])];
            if (v < 0 || v > 1)
                fail_msg("%s: %s = %g", SAMPLE[i], fractions[k], v);
        }
        assert_true(a[feature_index("significant_colors")] >= 1);
        assert_true(fabsf(a[feature_index("log2_pixels")] -
                          (float)log2((double)img->width * img->height)) < 1e-4f);
        img_free(img);
    }
}

/* A made-up horizontal ramp scores a higher gradient strength than a flat fill of one colour
 * and than flat shapes; so do the corpus' gradient images against its simple shapes. */
static void test_gradient_beats_flat(void **state)
{
    (void)state;
    md_image *ramp = img_new(300, 200), *flat = img_new(300, 200);
    assert_non_null(ramp);
    assert_non_null(flat);
    for (int y = 0; y < 200; y++) {
        for (int x = 0; x < 300; x++) {
            uint8_t *p = ramp->rgba + ((size_t)y * 300 + x) * 4,
                    *q = flat->rgba + ((size_t)y * 300 + x) * 4;
            p[0] = (uint8_t)(x * 255 / 299), p[1] = 40, p[2] = (uint8_t)(255 - x * 255 / 299),
            p[3] = 255;
            q[0] = 200, q[1] = 30, q[2] = 90, q[3] = 255;
        }
    }
    float fr[VEC_N_FEATURES], ff[VEC_N_FEATURES];
    assert_int_equal(vec_features(ramp, fr, NULL), MD_OK);
    assert_int_equal(vec_features(flat, ff, NULL), MD_OK);
    int g = feature_index("gradient_strength");
    assert_true(fr[g] > 0.5f);
    assert_true(ff[g] == 0.0f);
    img_free(ramp);
    img_free(flat);
    double grad = 0, shapes = 0;
    char name[64];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "gradient_%02d.png", i);
        grad += feature_of(name, "gradient_strength");
        snprintf(name, sizeof name, "simple_geometric_%02d.png", i);
        shapes += feature_of(name, "gradient_strength");
    }
    if (!(grad > 2 * shapes))
        fail_msg("gradient images %g, shapes %g", grad / 10, shapes / 10);
}

/* Text images are more text-like than shapes, on average and for most pairs. */
static void test_text_beats_shapes(void **state)
{
    (void)state;
    double text = 0, shapes = 0;
    float t[10], s[10];
    char name[64];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "text_based_%02d.png", i);
        t[i] = feature_of(name, "text_likeness");
        snprintf(name, sizeof name, "simple_geometric_%02d.png", i);
        s[i] = feature_of(name, "text_likeness");
        text += t[i], shapes += s[i];
    }
    int wins = 0;
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 10; j++)
            wins += t[i] > s[j];
    if (!(text > 2 * shapes) || wins < 70)
        fail_msg("text %g, shapes %g, pairs won %d/100", text / 10, shapes / 10, wins);
}

/* Transparent pixels count in alpha_coverage; a 1 x 1 image works; an empty one is refused. */
static void test_alpha_and_edges(void **state)
{
    (void)state;
    md_image *img = img_new(10, 10);
    assert_non_null(img);
    for (int i = 0; i < 50; i++)
        img->rgba[i * 4 + 3] = 255;
    float f[VEC_N_FEATURES];
    assert_int_equal(vec_features(img, f, NULL), MD_OK);
    assert_true(fabsf(f[feature_index("alpha_coverage")] - 0.5f) < 1e-6f);
    img_free(img);
    md_image *one = img_new(1, 1);
    assert_non_null(one);
    assert_int_equal(vec_features(one, f, NULL), MD_OK);
    for (int k = 0; k < VEC_N_FEATURES; k++)
        assert_true(isfinite(f[k]));
    img_free(one);
    md_image empty = {0, 0, 0, NULL};
    md_err err;
    assert_int_equal(vec_features(&empty, f, &err), MD_E_INVALID_PARAM);
    assert_string_equal(err.field, "image");
}

/* The sampling grid: the default is VEC_FEATURES_SIDE; a 1024 px image sampled on 128, 256
 * and 1024 grids gives finite features that differ (each grid reads other pixels), a 64 px
 * image the same features on every grid of 64 or more (it is never downsampled); a grid outside
 * 16..1024 is refused naming analysis_side. */
static void test_sampling_grid(void **state)
{
    (void)state;
    md_image *big = load("papirus_supermeatboy_1024.png"),
             *small = load("papirus_famitracker_64.png");
    float d[VEC_N_FEATURES], g[3][VEC_N_FEATURES];
    const int sides[3] = {128, 256, 1024};
    assert_int_equal(vec_features(big, d, NULL), MD_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(vec_features_grid(big, sides[i], g[i], NULL), MD_OK);
        for (int k = 0; k < VEC_N_FEATURES; k++)
            assert_true(isfinite(g[i][k]));
    }
    assert_memory_equal(d, g[1], sizeof d);
    assert_memory_not_equal(g[0], g[2], sizeof d);
    float a[VEC_N_FEATURES], b[VEC_N_FEATURES];
    assert_int_equal(vec_features_grid(small, 64, a, NULL), MD_OK);
    assert_int_equal(vec_features_grid(small, 512, b, NULL), MD_OK);
    assert_memory_equal(a, b, sizeof a);
    md_err err;
    assert_int_equal(vec_features_grid(small, 8, a, &err), MD_E_INVALID_PARAM);
    assert_string_equal(err.field, "analysis_side");
    assert_int_equal(vec_features_grid(small, 2048, a, &err), MD_E_INVALID_PARAM);
    img_free(big);
    img_free(small);
}

static void test_params_round_trip(void **state)
{
    (void)state;
    const char *presets[] = {"default", "quality"};
    for (int i = 0; i < 2; i++) {
        vec_params p, q;
        assert_int_equal(vec_params_preset(presets[i], &p, NULL), MD_OK);
        p.hierarchical = VEC_CUTOUT;
        float enc[VEC_N_PARAM_ENC];
        vec_params_encode(&p, enc);
        vec_params_decode(enc, &q);
        assert_memory_equal(&p, &q, sizeof p);
    }
    int n = 0;
    while (vec_params_enc_names()[n])
        n++;
    assert_int_equal(n, VEC_N_PARAM_ENC);
    assert_string_equal(vec_params_enc_names()[4], "length_threshold");
}

static void test_params_decode_rounds_and_clamps(void **state)
{
    (void)state;
    float in[VEC_N_PARAM_ENC] = {-3.0f, 7.6f, 300.0f, 59.4f, 12.0f, NAN, 45.5f, 9.0f, 0.7f, 0.2f};
    vec_params p;
    vec_params_decode(in, &p);
    assert_int_equal(p.filter_speckle, 0);
    assert_int_equal(p.color_precision, 8);
    assert_int_equal(p.layer_difference, 255);
    assert_int_equal(p.corner_threshold, 59);
    assert_true(p.length_threshold == 10.0);
    assert_int_equal(p.max_iterations, 10); /* NaN: the default preset's value */
    assert_int_equal(p.splice_threshold, 46);
    assert_int_equal(p.path_precision, 8);
    assert_int_equal(p.hierarchical, VEC_CUTOUT);
    assert_int_equal(p.mode, VEC_SPLINE);
    assert_int_equal(p.colormode, VEC_COLOR);
    assert_int_equal(p.gradients, 1);
    assert_int_equal(vec_params_validate(&p, NULL), MD_OK);
    in[4] = 0.5f;
    in[9] = 1.0f;
    vec_params_decode(in, &p);
    assert_true(p.length_threshold == 3.5);
    assert_int_equal(p.mode, VEC_POLYGON);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ranges_and_determinism),
        cmocka_unit_test(test_gradient_beats_flat),
        cmocka_unit_test(test_text_beats_shapes),
        cmocka_unit_test(test_alpha_and_edges),
        cmocka_unit_test(test_sampling_grid),
        cmocka_unit_test(test_params_round_trip),
        cmocka_unit_test(test_params_decode_rounds_and_clamps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
