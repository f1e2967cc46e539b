/* load_test.c - the loader accepts good models and refuses hostile ones cleanly: wrong sizes,
 * negative or huge dims, cycles, truncated bytes, unknown operators and attributes, value
 * names with two producers or none, external data that escapes the model directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "onnx/onnx.h"
#include "onnx/onnx_builder.h"

static const int64_t D23[] = {2, 3}, D3[] = {3};
static const float BIAS[] = {10, 20, 30};

/* Y = Relu(X + B), X [2,3] float, B initializer [3]. */
static void add_relu(bld *b, int opset)
{
    bld_init(b, opset);
    bld_input(b, "X", ONNX_FLOAT, 2, D23);
    bld_output(b, "Y", ONNX_FLOAT, 2, D23);
    bld_init_f32(b, "B", 1, D3, BIAS, 3);
    bld_node(b, "Add", "add0", (const char *[]){"X", "B", NULL}, (const char *[]){"S", NULL});
    bld_node(b, "Relu", "relu0", (const char *[]){"S", NULL}, (const char *[]){"Y", NULL});
}

static void expect_fail(bld *b, int code, const char *needle)
{
    onnx_model *m = NULL;
    md_err err;
    int rc = bld_load(b, &m, &err);
    if (rc != code || !strstr(err.msg, needle))
        fprintf(stderr, "got %d '%s', want %d with '%s'\n", rc, err.msg, code, needle);
    assert_int_equal(rc, code);
    assert_null(m);
    assert_non_null(strstr(err.msg, needle));
}

static void run_add_relu(onnx_model *m)
{
    float x[6] = {-50, 1, 2, 3, -40, -100};
    onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 2, .dims = {2, 3}, .data = x};
    onnx_result *r = NULL;
    md_err err;
    assert_int_equal(onnx_run(m, &in, 1, NULL, &r, &err), MD_OK);
    const onnx_tensor *y = onnx_result_output(r, 0);
    const float want[6] = {0, 21, 32, 13, 0, 0};
    assert_int_equal(y->rank, 2);
    assert_int_equal(y->dims[1], 3);
    for (int i = 0; i < 6; i++)
        assert_float_equal(((const float *)y->data)[i], want[i], 0);
    onnx_result_free(r);
}

static void test_good_model(void **state)
{
    (void)state;
    bld b;
    add_relu(&b, 13);
    onnx_model *m = NULL;
    md_err err;
    assert_int_equal(bld_load(&b, &m, &err), MD_OK);
    size_t n;
    const onnx_value_info *in = onnx_model_inputs(m, &n);
    assert_int_equal(n, 1); /* the initializer is not an input */
    assert_string_equal(in[0].name, "X");
    assert_int_equal(in[0].dims[1], 3);
    run_add_relu(m);
    onnx_model_free(m);
}

static void test_topological_order(void **state)
{
    (void)state;
    bld b;
    add_relu(&b, 13);
    /* Swap the nodes: Relu first. The loader must sort them. */
    Onnx__NodeProto *t = b.node_p[0];
    b.node_p[0] = b.node_p[1];
    b.node_p[1] = t;
    onnx_model *m = NULL;
    md_err err;
    assert_int_equal(bld_load(&b, &m, &err), MD_OK);
    run_add_relu(m);
    onnx_model_free(m);
}

static void test_cycle(void **state)
{
    (void)state;
    bld b;
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 2, D23);
    bld_output(&b, "Y", ONNX_FLOAT, 2, D23);
    bld_node(&b, "Add", "a", (const char *[]){"X", "C", NULL}, (const char *[]){"Y", NULL});
    bld_node(&b, "Relu", "b", (const char *[]){"Y", NULL}, (const char *[]){"C", NULL});
    expect_fail(&b, MD_E_MODEL_INVALID, "cycle");
}

static void test_unsupported_op_names_op_opset_node(void **state)
{
    (void)state;
    bld b;
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 2, D23);
    bld_output(&b, "Y", ONNX_FLOAT, 2, D23);
    bld_node(&b, "FrobnicateNd", "frob7", (const char *[]){"X", NULL}, (const char *[]){"Y", NULL});
    expect_fail(&b, MD_E_UNSUPPORTED, "FrobnicateNd");
    expect_fail(&b, MD_E_UNSUPPORTED, "opset 13");
    expect_fail(&b, MD_E_UNSUPPORTED, "frob7");
}

static void test_attributes_checked(void **state)
{
    (void)state;
    bld b;
    add_relu(&b, 13);
    bld_attr_int(&b, b.node_p[1], "alpha", 3); /* Relu has no attributes */
    expect_fail(&b, MD_E_UNSUPPORTED, "alpha");

    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 2, D23);
    bld_output(&b, "Y", ONNX_FLOAT, 2, D23);
    Onnx__NodeProto *n = bld_node(&b, "Flatten", "f", (const char *[]){"X", NULL},
                                  (const char *[]){"Y", NULL});
    Onnx__AttributeProto *a = bld_attr(&b, n, "axis", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    expect_fail(&b, MD_E_MODEL_INVALID, "wrong type");
}

static void test_input_counts_checked(void **state)
{
    (void)state;
    bld b;
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 2, D23);
    bld_output(&b, "Y", ONNX_FLOAT, 2, D23);
    bld_node(&b, "Add", "a", (const char *[]){"X", NULL}, (const char *[]){"Y", NULL});
    expect_fail(&b, MD_E_MODEL_INVALID, "inputs");
}

static void test_bad_initializers(void **state)
{
    (void)state;
    bld b;
    add_relu(&b, 13);
    b.inits[0].raw_data.len = 8; /* 2 floats for 3 elements */
    expect_fail(&b, MD_E_MODEL_INVALID, "raw_data length");

    add_relu(&b, 13);
    static const int64_t neg[] = {-3};
    b.inits[0].dims = (int64_t *)neg;
    expect_fail(&b, MD_E_MODEL_INVALID, "negative");

    add_relu(&b, 13);
    static const int64_t huge[] = {(int64_t)1 << 40, (int64_t)1 << 40, 16};
    b.inits[0].dims = (int64_t *)huge;
    b.inits[0].n_dims = 3;
    onnx_model *m = NULL;
    md_err err;
    int rc = bld_load(&b, &m, &err);
    assert_true(rc == MD_E_MODEL_INVALID || rc == MD_E_TOO_LARGE);
    assert_null(m);

    add_relu(&b, 13);
    b.inits[0].data_type = 14; /* complex64: not supported */
    expect_fail(&b, MD_E_UNSUPPORTED, "data type");

    add_relu(&b, 13);
    b.inits[0].has_raw_data = 0; /* typed field with the wrong count */
    b.inits[0].n_float_data = 2;
    b.inits[0].float_data = (float *)BIAS;
    expect_fail(&b, MD_E_MODEL_INVALID, "element count");
}

static void test_graph_names_checked(void **state)
{
    (void)state;
    bld b;
    add_relu(&b, 13);
    b.node_in[1][0] = (char *)"nowhere";
    expect_fail(&b, MD_E_MODEL_INVALID, "produced by nothing");

    add_relu(&b, 13);
    b.node_out[1][0] = (char *)"S"; /* S produced twice */
    expect_fail(&b, MD_E_MODEL_INVALID, "more than one producer");

    add_relu(&b, 13);
    b.vi[1].name = (char *)"missing";
    expect_fail(&b, MD_E_MODEL_INVALID, "graph output 'missing'");

    add_relu(&b, 13);
    b.model.n_opset_import = 0;
    expect_fail(&b, MD_E_MODEL_INVALID, "opset");

    add_relu(&b, 13);
    b.opset[0].version = 999;
    expect_fail(&b, MD_E_UNSUPPORTED, "opset 999");
}

/* Every prefix of a valid file either loads or fails cleanly (ASan checks the rest). */
static void test_truncated(void **state)
{
    (void)state;
    bld b;
    add_relu(&b, 13);
    size_t len;
    uint8_t *buf = bld_pack(&b, &len);
    int failures = 0;
    for (size_t cut = 0; cut < len; cut++) {
        onnx_model *m = NULL;
        md_err err;
        int rc = onnx_model_load_bytes(buf, cut, NULL, &m, &err);
        if (rc != MD_OK) {
            assert_null(m);
            failures++;
        }
        onnx_model_free(m);
    }
    assert_true(failures > (int)len / 2);
    /* Garbage is refused with the protobuf message. */
    onnx_model *m = NULL;
    md_err err;
    assert_int_equal(onnx_model_load_bytes("\xff\xff\xff\xff", 4, NULL, &m, &err),
                     MD_E_MODEL_INVALID);
    free(buf);
}

static void set_external(Onnx__TensorProto *t, Onnx__StringStringEntryProto *kv,
                         Onnx__StringStringEntryProto **kvp, const char *loc)
{
    onnx__string_string_entry_proto__init(&kv[0]);
    kv[0].key = (char *)"location";
    kv[0].value = (char *)loc;
    kvp[0] = &kv[0];
    t->has_raw_data = 0;
    t->n_external_data = 1;
    t->external_data = kvp;
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
}

static void test_external_data(void **state)
{
    (void)state;
    char dir[] = "/tmp/onnx_ext_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], model[256];
    snprintf(path, sizeof path, "%s/weights.bin", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(BIAS, sizeof BIAS, 1, f), 1);
    fclose(f);

    bld b;
    Onnx__StringStringEntryProto kv[1], *kvp[1];
    add_relu(&b, 13);
    set_external(&b.inits[0], kv, kvp, "weights.bin");
    size_t len;
    uint8_t *buf = bld_pack(&b, &len);
    snprintf(model, sizeof model, "%s/model.onnx", dir);
    f = fopen(model, "wb");
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
    free(buf);
    onnx_model *m = NULL;
    md_err err;
    assert_int_equal(onnx_model_load_file(model, NULL, &m, &err), MD_OK);
    run_add_relu(m);
    onnx_model_free(m);
    /* From bytes without a base dir, external data is refused. */
    add_relu(&b, 13);
    set_external(&b.inits[0], kv, kvp, "weights.bin");
    expect_fail(&b, MD_E_MODEL_INVALID, "external data");

    /* Paths leaving the model directory are refused. */
    const char *bad[] = {"../weights.bin", "/etc/passwd", "sub/../../x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        add_relu(&b, 13);
        set_external(&b.inits[0], kv, kvp, bad[i]);
        buf = bld_pack(&b, &len);
        f = fopen(model, "wb");
        assert_int_equal(fwrite(buf, 1, len, f), len);
        fclose(f);
        free(buf);
        m = NULL;
        assert_int_equal(onnx_model_load_file(model, NULL, &m, &err), MD_E_MODEL_INVALID);
        assert_null(m);
    }
    unlink(model);
    unlink(path);
    rmdir(dir);
}

/* If with two branches that read an outer value (captured input) and one that reads a name
 * nothing defines (refused at load, naming it). */
static void test_subgraph_captures(void **state)
{
    (void)state;
    bld b, tb;
    static const int64_t D1[] = {1};
    add_relu(&tb, 13); /* reuse the builder for the branch graphs: Y = Relu(X + B) */
    tb.graph.n_input = 0;  /* X comes from the outer graph */
    tb.graph.n_initializer = 0; /* and B too */
    bld_init(&b, 13);
    bld_input(&b, "C", ONNX_BOOL, 1, D1);
    bld_input(&b, "X", ONNX_FLOAT, 2, (const int64_t[]){2, 3});
    bld_output(&b, "Y", ONNX_FLOAT, -1, NULL);
    bld_init_f32(&b, "B", 1, D3, BIAS, 3);
    Onnx__NodeProto *n = bld_node(&b, "If", "if0", (const char *[]){"C", NULL},
                                  (const char *[]){"Y", NULL});
    Onnx__AttributeProto *a = bld_attr(&b, n, "then_branch", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
    a->g = &tb.graph;
    a = bld_attr(&b, n, "else_branch", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
    a->g = &tb.graph; /* both branches the same graph: each is loaded as its own model */
    onnx_model *m = NULL;
    md_err err;
    assert_int_equal(bld_load(&b, &m, &err), MD_OK);
    uint8_t c = 1;
    float x[6] = {-50, 1, 2, 3, -40, -100};
    onnx_tensor in[2] = {{.dtype = ONNX_BOOL, .rank = 1, .dims = {1}, .data = &c},
                         {.dtype = ONNX_FLOAT, .rank = 2, .dims = {2, 3}, .data = x}};
    onnx_result *r = NULL;
    assert_int_equal(onnx_run(m, in, 2, NULL, &r, &err), MD_OK);
    const float *y = onnx_result_output(r, 0)->data;
    assert_float_equal(y[1], 21, 0);
    assert_float_equal(y[0], 0, 0);
    onnx_result_free(r);
    onnx_model_free(m);

    tb.node_in[0][0] = (char *)"nowhere"; /* the branch reads an undefined name */
    expect_fail(&b, MD_E_MODEL_INVALID, "nowhere");
}

static void test_missing_file(void **state)
{
    (void)state;
    onnx_model *m = NULL;
    md_err err;
    assert_int_equal(onnx_model_load_file("/nonexistent/model.onnx", NULL, &m, &err),
                     MD_E_FILE_NOT_FOUND);
    onnx_model_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_model),
        cmocka_unit_test(test_topological_order),
        cmocka_unit_test(test_cycle),
        cmocka_unit_test(test_unsupported_op_names_op_opset_node),
        cmocka_unit_test(test_attributes_checked),
        cmocka_unit_test(test_input_counts_checked),
        cmocka_unit_test(test_bad_initializers),
        cmocka_unit_test(test_graph_names_checked),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_external_data),
        cmocka_unit_test(test_subgraph_captures),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
