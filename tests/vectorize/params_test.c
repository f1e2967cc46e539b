/* params_test.c - VTracer-compatible parameters: defaults, presets, parsing, range errors that
 * name the parameter and its range, and the JSON form. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vectorize/vec.h"

static void test_defaults_are_vtracers(void **state)
{
    (void)state;
    vec_params p;
    vec_params_default(&p);
    assert_int_equal(p.colormode, VEC_COLOR);
    assert_int_equal(p.hierarchical, VEC_STACKED);
    assert_int_equal(p.mode, VEC_SPLINE);
    assert_int_equal(p.filter_speckle, 4);
    assert_int_equal(p.color_precision, 6);
    assert_int_equal(p.layer_difference, 16);
    assert_int_equal(p.corner_threshold, 60);
    assert_true(p.length_threshold == 4.0);
    assert_int_equal(p.max_iterations, 10);
    assert_int_equal(p.splice_threshold, 45);
    assert_int_equal(p.path_precision, 2);
    md_err e;
    assert_int_equal(vec_params_validate(&p, &e), MD_OK);
}

static void test_presets(void **state)
{
    (void)state;
    const char *names[] = {"default", "quality", "fast", "bw"};
    for (size_t i = 0; i < 4; i++) {
        vec_params p;
        md_err e;
        assert_int_equal(vec_params_preset(names[i], &p, &e), MD_OK);
        assert_int_equal(vec_params_validate(&p, &e), MD_OK);
    }
    vec_params p;
    md_err e;
    assert_int_equal(vec_params_preset("bw", &p, &e), MD_OK);
    assert_int_equal(p.colormode, VEC_BINARY);
    assert_int_equal(vec_params_preset("best", &p, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "preset");
}

static void test_set_values(void **state)
{
    (void)state;
    vec_params p;
    md_err e;
    vec_params_default(&p);
    assert_int_equal(vec_params_set(&p, "mode", "polygon", &e), MD_OK);
    assert_int_equal(p.mode, VEC_POLYGON);
    assert_int_equal(vec_params_set(&p, "hierarchical", "cutout", &e), MD_OK);
    assert_int_equal(p.hierarchical, VEC_CUTOUT);
    assert_int_equal(vec_params_set(&p, "colormode", "binary", &e), MD_OK);
    assert_int_equal(p.colormode, VEC_BINARY);
    assert_int_equal(vec_params_set(&p, "filter_speckle", "128", &e), MD_OK);
    assert_int_equal(p.filter_speckle, 128);
    assert_int_equal(vec_params_set(&p, "length_threshold", "3.5", &e), MD_OK);
    assert_true(p.length_threshold == 3.5);
    assert_int_equal(vec_params_set(&p, "background", "#102030", &e), MD_OK);
    assert_int_equal(p.background[0], 0x10);
    assert_int_equal(p.background[2], 0x30);
}

/* Each bad value is refused, the message names the parameter and its range, and the params
 * are unchanged. */
static void test_range_errors(void **state)
{
    (void)state;
    struct {
        const char *name, *value, *range;
    } bad[] = {
        {"filter_speckle", "129", "0..128"},   {"filter_speckle", "-1", "0..128"},
        {"color_precision", "0", "1..8"},      {"color_precision", "9", "1..8"},
        {"layer_difference", "256", "0..255"}, {"corner_threshold", "181", "0..180"},
        {"corner_threshold", "4.5", "0..180"}, {"length_threshold", "3.4", "3.5..10"},
        {"length_threshold", "11", "3.5..10"}, {"length_threshold", "nan", "3.5..10"},
        {"max_iterations", "0", "1..20"},      {"splice_threshold", "x", "0..180"},
        {"path_precision", "9", "0..8"},       {"mode", "curves", "spline, polygon, pixel"},
        {"colormode", "", "color, binary"},    {"max_iterations", "10abc", "1..20"},
        {"background", "#12345", "#rrggbb"},
        /* lenient numerals strtod would take (issue 8 §5) */
        {"filter_speckle", "0x10", "0..128"},  {"length_threshold", "0x1p3", "3.5..10"},
        {"filter_speckle", " 3", "0..128"},    {"filter_speckle", "+3", "0..128"},
        {"filter_speckle", "1e1", "0..128"},   {"length_threshold", "inf", "3.5..10"},
        {"gradients", "true", "0..1"},         {"filter_speckle", "3 ", "0..128"},
        {"length_threshold", ".", "3.5..10"},  {"filter_speckle", "", "0..128"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vec_params p, before;
        md_err e;
        vec_params_default(&p);
        before = p;
        assert_int_equal(vec_params_set(&p, bad[i].name, bad[i].value, &e), MD_E_INVALID_PARAM);
        assert_string_equal(e.field, bad[i].name);
        assert_non_null(strstr(e.msg, bad[i].name));
        assert_non_null(strstr(e.msg, bad[i].range));
        assert_memory_equal(&p, &before, sizeof p);
    }
    vec_params p;
    md_err e;
    vec_params_default(&p);
    assert_int_equal(vec_params_set(&p, "no_such", "1", &e), MD_E_INVALID_PARAM);
    assert_non_null(strstr(e.msg, "no_such"));
}

static void test_validate_catches_code_errors(void **state)
{
    (void)state;
    vec_params p;
    md_err e;
    vec_params_default(&p);
    p.corner_threshold = 200;
    assert_int_equal(vec_params_validate(&p, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "corner_threshold");
    vec_params_default(&p);
    p.mode = (vec_mode)7;
    assert_int_equal(vec_params_validate(&p, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "mode");
}

static void test_names_and_json(void **state)
{
    (void)state;
    const char *const *names = vec_params_names();
    const char *want[] = {"colormode", "hierarchical", "mode", "filter_speckle", "color_precision",
                          "layer_difference", "corner_threshold", "length_threshold",
                          "max_iterations", "splice_threshold", "path_precision"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int found = 0;
        for (size_t k = 0; names[k]; k++)
            found |= strcmp(names[k], want[i]) == 0;
        assert_true(found);
    }
    vec_params p;
    vec_params_default(&p);
    for (size_t k = 0; names[k]; k++) { /* every listed name is a settable parameter */
        md_err e;
        assert_int_equal(vec_params_set(&p, names[k], "?", &e), MD_E_INVALID_PARAM);
        assert_null(strstr(e.msg, "unknown"));
    }
    md_buf b;
    md_buf_init(&b, 4096);
    assert_int_equal(vec_params_to_json(&p, &b), MD_OK);
    assert_non_null(strstr(b.data, "\"mode\":\"spline\""));
    assert_non_null(strstr(b.data, "\"length_threshold\":4,"));
    assert_non_null(strstr(b.data, "\"background\":\"#ffffff\""));
    assert_int_equal(b.data[0], '{');
    assert_int_equal(b.data[b.len - 1], '}');
    md_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_vtracers), cmocka_unit_test(test_presets),
        cmocka_unit_test(test_set_values),            cmocka_unit_test(test_range_errors),
        cmocka_unit_test(test_validate_catches_code_errors), cmocka_unit_test(test_names_and_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
