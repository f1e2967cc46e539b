/* runtime_test.c - the ONNX runtime behind the registry (src/models/runtime_onnx.c): manifest
 * inputs are matched to graph inputs by name whatever the order on either side, a manifest may
 * declare a subset of the graph's outputs, and a manifest that disagrees with its graph (an
 * input or output the graph lacks, a count, a rank, a fixed dim, a datatype) is refused at load
 * with the field named. Models are built in memory with tests/onnx/onnx_builder.h. */
#include "models_fixture.h"

#include "onnx/onnx_builder.h"

/* Graph inputs in the order (b, a), both FP32 [N, 2]; outputs d = a - b, s = a + b. */
static char *write_graph(const char *dir)
{
    bld b;
    bld_init(&b, 13);
    const int64_t d2[2] = {-1, 2};
    bld_input(&b, "b", ONNX_FLOAT, 2, d2);
    bld_input(&b, "a", ONNX_FLOAT, 2, d2);
    bld_output(&b, "d", ONNX_FLOAT, 2, d2);
    bld_output(&b, "s", ONNX_FLOAT, 2, d2);
    bld_node(&b, "Sub", "sub", (const char *const[]){"a", "b", NULL},
             (const char *const[]){"d", NULL});
    bld_node(&b, "Add", "add", (const char *const[]){"a", "b", NULL},
             (const char *const[]){"s", NULL});
    size_t len;
    uint8_t *bytes = bld_pack(&b, &len);
    assert_non_null(bytes);
    char *path = malloc(1200);
    snprintf(path, 1200, "%s/model.onnx", dir);
    spit_file(path, bytes, len);
    free(bytes);
    return path;
}

static const char MANIFEST[] =
    "{\"name\": \"sub\", \"version\": \"1\", \"runtime\": \"onnx\", \"artefact\": \"model.onnx\","
    " \"sha256\": \"%s\","
    " \"inputs\": [{\"name\": \"a\", \"datatype\": \"FP32\", \"shape\": [-1, 2]},"
    "              {\"name\": \"b\", \"datatype\": \"FP32\", \"shape\": [-1, 2]}],"
    " \"outputs\": [{\"name\": \"s\", \"datatype\": \"FP32\", \"shape\": [-1, 2]},"
    "               {\"name\": \"d\", \"datatype\": \"FP32\", \"shape\": [-1, 2]}],"
    " \"validation\": {\"samples\": [{\"inputs\": {\"b\": [[1, 2]], \"a\": [[10, 20]]},"
    "                                \"outputs\": {\"d\": [[9, 18]], \"s\": [[11, 22]]}}]}}";

static void parse(const char *text, mdl_manifest *m)
{
    md_err e = {0};
    int rc = mdl_manifest_parse(text, strlen(text), m, &e);
    if (rc != MD_OK)
        print_error("manifest: %s\n", e.msg);
    assert_int_equal(rc, MD_OK);
}

static void test_inputs_by_name_through_registry(void **state)
{
    mfx *f = *state;
    char vdir[1200], hex[65], text[2048];
    snprintf(vdir, sizeof vdir, "%s/sub/1", f->shipped);
    mkdirs(vdir);
    char *path = write_graph(vdir);
    assert_int_equal(mdl__sha256_file(path, hex, NULL), MD_OK);
    snprintf(text, sizeof text, MANIFEST, hex);
    snprintf(vdir, sizeof vdir, "%s/sub/1/modeld.json", f->shipped);
    spit_file(vdir, text, strlen(text));
    mdl_registry_opts o = mfx_opts(f);
    mfx_open(f, &o); /* loads and validates: the sample gives the inputs in another order */
    mdl_version *v = NULL;
    md_err e = {0};
    assert_int_equal(mdl_acquire(f->r, "sub", NULL, &v, &e), MD_OK);
    float a[4] = {10, 20, 30, 40}, b[4] = {1, 2, 3, 4};
    mdl_tensor in[2] = {{.name = "b", .dtype = ONNX_FLOAT, .rank = 2, .dims = {2, 2}, .data = b},
                        {.name = "a", .dtype = ONNX_FLOAT, .rank = 2, .dims = {2, 2}, .data = a}};
    mdl_result *res = NULL;
    assert_int_equal(mdl_run(v, in, 2, NULL, &res, &e), MD_OK);
    assert_int_equal(mdl_result_count(res), 2);
    const mdl_tensor *s = mdl_result_output(res, 0), *d = mdl_result_output(res, 1);
    assert_string_equal(s->name, "s"); /* manifest order, not graph order */
    assert_string_equal(d->name, "d");
    assert_float_equal(((const float *)s->data)[3], 44, 1e-6);
    assert_float_equal(((const float *)d->data)[3], 36, 1e-6);
    assert_null(mdl_result_output(res, 2));
    mdl_result_free(res);
    mdl_release(v);
    free(path);
}

typedef struct agree_case {
    const char *from, *to; /* replace in MANIFEST */
    const char *field;
} agree_case;

static const agree_case agree_cases[] = {
    {"{\"name\": \"s\"", "{\"name\": \"q\"", "outputs[0]"},
    {"{\"name\": \"b\", \"datatype\": \"FP32\", \"shape\": [-1, 2]}",
     "{\"name\": \"c\", \"datatype\": \"FP32\", \"shape\": [-1, 2]}", "inputs"},
    {",              {\"name\": \"b\", \"datatype\": \"FP32\", \"shape\": [-1, 2]}", "", "inputs"},
    {"{\"name\": \"a\", \"datatype\": \"FP32\", \"shape\": [-1, 2]}",
     "{\"name\": \"a\", \"datatype\": \"FP32\", \"shape\": [-1, 3]}", "inputs[0]"},
    {"{\"name\": \"a\", \"datatype\": \"FP32\", \"shape\": [-1, 2]}",
     "{\"name\": \"a\", \"datatype\": \"FP32\", \"shape\": [-1]}", "inputs[0]"},
    {"{\"name\": \"a\", \"datatype\": \"FP32\", \"shape\": [-1, 2]}",
     "{\"name\": \"a\", \"datatype\": \"INT32\", \"shape\": [-1, 2]}", "inputs[0]"},
    {"{\"name\": \"d\", \"datatype\": \"FP32\", \"shape\": [-1, 2]}",
     "{\"name\": \"d\", \"datatype\": \"FP64\", \"shape\": [-1, 2]}", "outputs[1]"},
};

/* Replace the first `from` in src by `to` into out. */
static void replace(const char *src, const char *from, const char *to, char *out, size_t cap)
{
    const char *p = strstr(src, from);
    assert_non_null(p);
    snprintf(out, cap, "%.*s%s%s", (int)(p - src), src, to, p + strlen(from));
}

static void test_manifest_must_agree_with_graph(void **state)
{
    mfx *f = *state;
    char *path = write_graph(f->dir);
    const mdl_runtime *rt = mdl_runtime_find("onnx");
    assert_non_null(rt);
    assert_null(mdl_runtime_find("tensorrt"));
    char base[2048];
    snprintf(base, sizeof base, MANIFEST,
             "0000000000000000000000000000000000000000000000000000000000000000");
    for (size_t i = 0; i < sizeof agree_cases / sizeof agree_cases[0]; i++) {
        char text[2048];
        replace(base, agree_cases[i].from, agree_cases[i].to, text, sizeof text);
        /* the validation sample would name the changed tensors: drop it */
        char *val = strstr(text, ", \"validation\"");
        assert_non_null(val);
        strcpy(val, "}");
        mdl_manifest m;
        parse(text, &m);
        void *st = NULL;
        md_err e = {0};
        int rc = rt->load(path, &m, &st, &e);
        if (rc != MD_E_MODEL_INVALID || strcmp(e.field, agree_cases[i].field) != 0)
            print_error("case %zu: rc %d field '%s' msg '%s'\n", i, rc, e.field, e.msg);
        assert_int_equal(rc, MD_E_MODEL_INVALID);
        assert_string_equal(e.field, agree_cases[i].field);
        assert_null(st);
        mdl_manifest_free(&m);
    }
    /* the unchanged manifest loads; memory is reported */
    mdl_manifest m;
    parse(base, &m);
    void *st = NULL;
    assert_int_equal(rt->load(path, &m, &st, NULL), MD_OK);
    assert_true(rt->memory(st) > 0);
    rt->free(st);
    mdl_manifest_free(&m);
    free(path);
}

static void test_xgboost_manifest_checked(void **state)
{
    (void)state;
    const mdl_runtime *rt = mdl_runtime_find("xgboost");
    assert_non_null(rt);
    char dir[1200], path[1300];
    snprintf(dir, sizeof dir, "%s/xgb-multi/1", fixture_models());
    snprintf(path, sizeof path, "%s/model.json", dir);
    static const struct {
        const char *ins, *outs, *field;
    } cases[] = {
        {"[{\"name\": \"f\", \"datatype\": \"FP32\", \"shape\": [-1, 5]}]",
         "[{\"name\": \"p\", \"datatype\": \"FP32\", \"shape\": [-1, 3]}]", "inputs[0].shape"},
        {"[{\"name\": \"f\", \"datatype\": \"FP64\", \"shape\": [-1, 6]}]",
         "[{\"name\": \"p\", \"datatype\": \"FP32\", \"shape\": [-1, 3]}]", "inputs"},
        {"[{\"name\": \"f\", \"datatype\": \"FP32\", \"shape\": [-1, 6]}]",
         "[{\"name\": \"p\", \"datatype\": \"FP32\", \"shape\": [-1, 2]}]", "outputs"},
        {"[{\"name\": \"f\", \"datatype\": \"FP32\", \"shape\": [-1, 6]}]",
         "[{\"name\": \"p\", \"datatype\": \"FP32\", \"shape\": [-1, 3]}]", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "{\"name\": \"x\", \"version\": \"1\", \"runtime\": \"xgboost\","
                 " \"artefact\": \"model.json\", \"sha256\": \"%064d\", \"inputs\": %s,"
                 " \"outputs\": %s}",
                 0, cases[i].ins, cases[i].outs);
        mdl_manifest m;
        parse(text, &m);
        void *st = NULL;
        md_err e = {0};
        int rc = rt->load(path, &m, &st, &e);
        if (cases[i].field) {
            assert_int_equal(rc, MD_E_MODEL_INVALID);
            assert_string_equal(e.field, cases[i].field);
            assert_null(st);
        } else {
            assert_int_equal(rc, MD_OK);
            rt->free(st);
        }
        mdl_manifest_free(&m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_inputs_by_name_through_registry, mfx_setup,
                                        mfx_teardown),
        cmocka_unit_test_setup_teardown(test_manifest_must_agree_with_graph, mfx_setup,
                                        mfx_teardown),
        cmocka_unit_test(test_xgboost_manifest_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
