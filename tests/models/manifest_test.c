/* manifest_test.c - modeld.json parsing (src/models/manifest.c): a full manifest gives every
 * field; each bad value (wrong type, range, unknown key, bad hex, bad validation sample) is
 * refused with MD_E_MODEL_INVALID naming the field; datatype names; version ordering. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "models/models_int.h"

static const char BASE[] =
    "{\"name\": \"iris-mlp\", \"version\": \"12\", \"family\": \"predict\","
    " \"runtime\": \"onnx\", \"artefact\": \"model.onnx\","
    " \"sha256\": \"ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\","
    " \"description\": \"an MLP\", \"required\": true,"
    " \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [-1, 4],"
    "              \"description\": \"features\"},"
    "             {\"name\": \"k\", \"datatype\": \"INT64\", \"shape\": [1]}],"
    " \"outputs\": [{\"name\": \"y\", \"datatype\": \"FP32\", \"shape\": [-1, 3]}],"
    " \"labels\": [\"setosa\", \"versicolor\", \"virginica\"],"
    " \"preprocessing\": {\"scale\": 1}, \"postprocessing\": {},"
    " \"input_schema\": {\"columns\": []},"
    " \"validation\": {\"tolerance\": 0.001, \"samples\": ["
    "    {\"inputs\": {\"x\": [[5.1, 3.5, 1.4, 0.2]], \"k\": [3]},"
    "     \"outputs\": {\"y\": [[0.9, 0.05, 0.05]]}}]},"
    " \"metrics\": {\"accuracy\": 0.97},"
    " \"model_card\": {\"data\": \"iris\", \"intended_use\": \"demo\", \"limits\": \"tiny\"}}";

static void test_full_manifest(void **state)
{
    (void)state;
    mdl_manifest m;
    md_err e = {0};
    assert_int_equal(mdl_manifest_parse(BASE, strlen(BASE), &m, &e), MD_OK);
    assert_string_equal(m.name, "iris-mlp");
    assert_string_equal(m.version, "12");
    assert_int_equal(m.family, MDL_PREDICT);
    assert_string_equal(m.runtime, "onnx");
    assert_string_equal(m.artefact, "model.onnx");
    assert_string_equal(m.sha256,
                        "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
    assert_true(m.required);
    assert_int_equal(m.n_inputs, 2);
    assert_string_equal(m.inputs[0].name, "x");
    assert_int_equal(m.inputs[0].dtype, ONNX_FLOAT);
    assert_int_equal(m.inputs[0].rank, 2);
    assert_int_equal(m.inputs[0].dims[0], -1);
    assert_int_equal(m.inputs[0].dims[1], 4);
    assert_string_equal(m.inputs[0].description, "features");
    assert_null(m.inputs[1].description);
    assert_int_equal(m.inputs[1].dtype, ONNX_INT64);
    assert_int_equal(m.n_outputs, 1);
    assert_int_equal(m.outputs[0].dims[1], 3);
    assert_true(m.tolerance > 0.00099 && m.tolerance < 0.00101);
    assert_string_equal(json_string_value(json_array_get(json_object_get(m.doc, "labels"), 2)),
                        "virginica");
    mdl_manifest_free(&m);
}

/* Set (val != NULL, stolen) or delete (val == NULL) the member at a path like "a.b[1].c". */
static void set_path(json_t *root, const char *path, json_t *val)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = root;
    char *tok = buf;
    for (;;) {
        char *dot = strchr(tok, '.');
        if (dot)
            *dot = 0;
        char *br = strchr(tok, '[');
        long idx = -1;
        if (br) {
            idx = strtol(br + 1, NULL, 10);
            *br = 0;
        }
        bool last = !dot;
        if (last && idx < 0) {
            if (val)
                json_object_set_new(cur, tok, val);
            else
                json_object_del(cur, tok);
            return;
        }
        cur = json_object_get(cur, tok);
        if (idx >= 0) {
            if (last) {
                json_array_set_new(cur, (size_t)idx, val);
                return;
            }
            cur = json_array_get(cur, (size_t)idx);
        }
        tok = dot + 1;
    }
}

typedef struct bad_case {
    const char *path;
    const char *value; /* JSON text; NULL = delete the member */
    const char *field; /* expected err.field */
} bad_case;

static const bad_case bad_cases[] = {
    {"name", NULL, "name"},
    {"name", "\"Iris\"", "name"},
    {"name", "\"a/b\"", "name"},
    {"name", "7", "name"},
    {"version", NULL, "version"},
    {"version", "\"..\"", "version"},
    {"version", "\"1 2\"", "version"},
    {"version", "\"123456789012345678901234567890123\"", "version"},
    {"family", "\"vision\"", "family"},
    {"runtime", "\"tensorflow\"", "runtime"},
    {"runtime", NULL, "runtime"},
    {"artefact", "\"../model.onnx\"", "artefact"},
    {"artefact", "\".hidden\"", "artefact"},
    {"artefact", NULL, "artefact"},
    {"sha256", "\"abc\"", "sha256"},
    {"sha256",
     "\"zz"
     "cdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789\"",
     "sha256"},
    {"sha256", NULL, "sha256"},
    {"description", "3", "description"},
    {"required", "\"yes\"", "required"},
    {"inputs", "[]", "inputs"},
    {"inputs", "{}", "inputs"},
    {"inputs[1].name", "\"x\"", "inputs[1].name"},
    {"inputs[1].name", "\"\"", "inputs[1].name"},
    {"inputs[1].datatype", "\"FLOAT\"", "inputs[1].datatype"},
    {"inputs[1].shape", "\"-1,4\"", "inputs[1].shape"},
    {"inputs[1].shape", "[1,2,3,4,5,6,7,8,9]", "inputs[1].shape"},
    {"inputs[1].shape[0]", "-2", "inputs[1].shape[0]"},
    {"inputs[1].shape[0]", "1.5", "inputs[1].shape[0]"},
    {"inputs[1].description", "[]", "inputs[1].description"},
    {"inputs[1].dtype", "\"FP32\"", "inputs[1].dtype"},
    {"inputs[0]", "3", "inputs[0]"},
    {"outputs", NULL, "outputs"},
    {"outputs[0].datatype", "\"fp32\"", "outputs[0].datatype"},
    {"labels", "\"a\"", "labels"},
    {"labels[1]", "2", "labels[1]"},
    {"preprocessing", "[]", "preprocessing"},
    {"postprocessing", "1", "postprocessing"},
    {"input_schema", "\"cols\"", "input_schema"},
    {"metrics.accuracy", "\"high\"", "metrics.accuracy"},
    {"model_card.data", "1", "model_card.data"},
    {"model_card", "[]", "model_card"},
    {"validaton", "{}", "validaton"},
    {"", "1", "manifest"},
    {"inputs[0].", "1", "inputs[0]"},
    {"validation", "[]", "validation"},
    {"validation.tolerance", "-1", "validation.tolerance"},
    {"validation.tolerance", "\"1e-3\"", "validation.tolerance"},
    {"validation.samples", "{}", "validation.samples"},
    {"validation.extra", "1", "validation.extra"},
    {"validation.samples[0]", "[]", "validation.samples[0]"},
    {"validation.samples[0].expected", "{}", "validation.samples[0].expected"},
    {"validation.samples[0].inputs.k", NULL, "validation.samples[0].inputs.k"},
    {"validation.samples[0].inputs.z", "[1]", "validation.samples[0].inputs.z"},
    {"validation.samples[0].inputs.x", "[[1, 2, 3]]", "validation.samples[0].inputs.x"},
    {"validation.samples[0].inputs.x", "[1, 2, 3, 4]", "validation.samples[0].inputs.x"},
    {"validation.samples[0].inputs.x", "[[1, 2, 3, 4], [1, 2]]", "validation.samples[0].inputs.x"},
    {"validation.samples[0].inputs.x", "[[1, 2, \"3\", 4]]", "validation.samples[0].inputs.x"},
    {"validation.samples[0].inputs.k", "[3.5]", "validation.samples[0].inputs.k"},
    {"validation.samples[0].inputs.k", "[3, 4]", "validation.samples[0].inputs.k"},
    {"validation.samples[0].outputs.y", "[[1, 2]]", "validation.samples[0].outputs.y"},
    {"validation.samples[0].outputs.q", "[[1, 2, 3]]", "validation.samples[0].outputs.q"},
};

static void test_bad_values_name_their_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        json_t *doc = json_loads(BASE, 0, NULL);
        assert_non_null(doc);
        set_path(doc, c->path, c->value ? json_loads(c->value, JSON_DECODE_ANY, NULL) : NULL);
        char *text = json_dumps(doc, 0);
        json_decref(doc);
        mdl_manifest m;
        md_err e = {0};
        int rc = mdl_manifest_parse(text, strlen(text), &m, &e);
        if (rc != MD_E_MODEL_INVALID || strcmp(e.field, c->field) != 0)
            print_error("case %zu (%s = %s): rc %d field '%s' msg '%s'\n", i, c->path,
                        c->value ? c->value : "(deleted)", rc, e.field, e.msg);
        assert_int_equal(rc, MD_E_MODEL_INVALID);
        assert_string_equal(e.field, c->field);
        assert_non_null(strstr(e.msg, c->field));
        free(text);
    }
}

static void test_not_json(void **state)
{
    (void)state;
    mdl_manifest m;
    md_err e = {0};
    assert_int_equal(mdl_manifest_parse("{\"name\": ", 9, &m, &e), MD_E_MODEL_INVALID);
    assert_string_equal(e.field, "manifest");
    assert_int_equal(mdl_manifest_parse("[1]", 3, &m, &e), MD_E_MODEL_INVALID);
    const char dup[] = "{\"name\": \"a\", \"name\": \"b\"}";
    assert_int_equal(mdl_manifest_parse(dup, strlen(dup), &m, &e), MD_E_MODEL_INVALID);
    mdl_manifest_free(&m); /* freeing after a failed parse is a no-op */
}

static void test_dtypes_and_versions(void **state)
{
    (void)state;
    assert_int_equal(mdl_dtype_parse("FP32"), ONNX_FLOAT);
    assert_int_equal(mdl_dtype_parse("UINT64"), ONNX_UINT64);
    assert_int_equal(mdl_dtype_parse("BYTES"), ONNX_STRING);
    assert_int_equal(mdl_dtype_parse("float"), -1);
    assert_int_equal(mdl_dtype_parse(NULL), -1);
    assert_string_equal(mdl_dtype_name(ONNX_DOUBLE), "FP64");
    assert_null(mdl_dtype_name(ONNX_BFLOAT16));
    assert_string_equal(mdl_family_name(MDL_ENHANCE), "enhance");
    assert_string_equal(mdl_state_name(MDL_STANDBY), "STANDBY");
    assert_int_equal(mdl__version_cmp("10", "9"), 1);
    assert_int_equal(mdl__version_cmp("9", "10"), -1);
    assert_int_equal(mdl__version_cmp("007", "7"), 0);
    assert_int_equal(mdl__version_cmp("1.10", "1.9"), -1); /* not integers: string order */
    assert_int_equal(mdl__version_cmp("b", "a"), 1);
    assert_true(mdl__name_ok("iris-mlp_2"));
    assert_false(mdl__name_ok("-x"));
    assert_false(mdl__name_ok(""));
    assert_false(mdl__version_ok("."));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_manifest),
        cmocka_unit_test(test_bad_values_name_their_field),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_dtypes_and_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
