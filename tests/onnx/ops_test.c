/* ops_test.c - a few operators checked by hand-computed values, chosen where the semantics
 * are easy to get wrong: Softmax before/after opset 13, Reshape's 0 and -1, Slice with a
 * negative step, Gather with negative and out-of-range indices, broadcasting, Resize modes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "onnx/onnx.h"
#include "onnx/onnx_builder.h"

/* Load a one-node model OP(X[, Y]) -> Z. Inputs' shapes are left unknown (rank -1). */
static onnx_model *one_node(bld *b, const char *op, int opset, int n_in, int dtype_y)
{
    bld_init(b, opset);
    bld_input(b, "X", ONNX_FLOAT, -1, NULL);
    if (n_in > 1)
        bld_input(b, "Y", dtype_y, -1, NULL);
    bld_output(b, "Z", ONNX_FLOAT, -1, NULL);
    bld_node(b, op, "n", n_in > 1 ? (const char *[]){"X", "Y", NULL} : (const char *[]){"X", NULL},
             (const char *[]){"Z", NULL});
    return NULL;
}

static onnx_model *load(bld *b)
{
    onnx_model *m = NULL;
    md_err err;
    int rc = bld_load(b, &m, &err);
    if (rc)
        fprintf(stderr, "load: %s\n", err.msg);
    assert_int_equal(rc, MD_OK);
    return m;
}

static int run(onnx_model *m, onnx_tensor *in, size_t n, onnx_result **r, md_err *err)
{
    *r = NULL;
    return onnx_run(m, in, n, NULL, r, err);
}

static void test_softmax_opset_semantics(void **state)
{
    (void)state;
    float x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 3, .dims = {2, 2, 2}, .data = x};
    for (int opset = 11; opset <= 13; opset += 2) {
        bld b;
        one_node(&b, "Softmax", opset, 1, 0);
        bld_attr_int(&b, b.node_p[0], "axis", 1);
        onnx_model *m = load(&b);
        onnx_result *r;
        md_err err;
        assert_int_equal(run(m, &in, 1, &r, &err), MD_OK);
        const float *z = onnx_result_output(r, 0)->data;
        if (opset == 11) { /* 2-D view [2, 4]: each row of 4 sums to 1 */
            double s = 0;
            for (int i = 0; i < 4; i++)
                s += z[i];
            assert_float_equal(s, 1.0, 1e-6);
            assert_float_equal(z[3] / z[0], expf(3), 1e-3);
        } else { /* along axis 1 only: pairs (x[0], x[2]) sum to 1 */
            assert_float_equal(z[0] + z[2], 1.0, 1e-6);
            assert_float_equal(z[2] / z[0], expf(2), 1e-3);
        }
        onnx_result_free(r);
        onnx_model_free(m);
    }
}

static void test_reshape_zero_and_infer(void **state)
{
    (void)state;
    bld b;
    one_node(&b, "Reshape", 13, 2, ONNX_INT64);
    onnx_model *m = load(&b);
    float x[24];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    int64_t shape[3] = {0, -1, 2};
    onnx_tensor in[2] = {{.dtype = ONNX_FLOAT, .rank = 3, .dims = {2, 3, 4}, .data = x},
                         {.dtype = ONNX_INT64, .rank = 1, .dims = {3}, .data = shape}};
    onnx_result *r;
    md_err err;
    assert_int_equal(run(m, in, 2, &r, &err), MD_OK);
    const onnx_tensor *z = onnx_result_output(r, 0);
    assert_int_equal(z->rank, 3);
    assert_int_equal(z->dims[0], 2);
    assert_int_equal(z->dims[1], 6);
    assert_int_equal(z->dims[2], 2);
    onnx_result_free(r);
    int64_t bad[2] = {5, -1}; /* 24 is not a multiple of 5 */
    in[1].dims[0] = 2;
    in[1].data = bad;
    assert_int_equal(run(m, in, 2, &r, &err), MD_E_INVALID_PARAM);
    assert_non_null(strstr(err.msg, "-1"));
    onnx_model_free(m);
}

static void test_slice_negative_step(void **state)
{
    (void)state;
    bld b;
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, -1, NULL);
    bld_input(&b, "S", ONNX_INT64, -1, NULL);
    bld_input(&b, "E", ONNX_INT64, -1, NULL);
    bld_input(&b, "A", ONNX_INT64, -1, NULL);
    bld_input(&b, "P", ONNX_INT64, -1, NULL);
    bld_output(&b, "Z", ONNX_FLOAT, -1, NULL);
    bld_node(&b, "Slice", "s", (const char *[]){"X", "S", "E", "A", "P", NULL},
             (const char *[]){"Z", NULL});
    onnx_model *m = load(&b);
    float x[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    int64_t s = -1, e = INT64_MIN, a = 0, p = -3; /* x[::-3] = 9, 6, 3, 0 */
    onnx_tensor in[5] = {{.dtype = ONNX_FLOAT, .rank = 1, .dims = {10}, .data = x},
                         {.dtype = ONNX_INT64, .rank = 1, .dims = {1}, .data = &s},
                         {.dtype = ONNX_INT64, .rank = 1, .dims = {1}, .data = &e},
                         {.dtype = ONNX_INT64, .rank = 1, .dims = {1}, .data = &a},
                         {.dtype = ONNX_INT64, .rank = 1, .dims = {1}, .data = &p}};
    onnx_result *r;
    md_err err;
    assert_int_equal(run(m, in, 5, &r, &err), MD_OK);
    const onnx_tensor *z = onnx_result_output(r, 0);
    assert_int_equal(z->dims[0], 4);
    const float want[4] = {9, 6, 3, 0};
    for (int i = 0; i < 4; i++)
        assert_float_equal(((const float *)z->data)[i], want[i], 0);
    onnx_result_free(r);
    p = 0;
    assert_int_equal(run(m, in, 5, &r, &err), MD_E_INVALID_PARAM); /* step 0 */
    onnx_model_free(m);
}

static void test_gather_indices(void **state)
{
    (void)state;
    bld b;
    one_node(&b, "Gather", 13, 2, ONNX_INT64);
    onnx_model *m = load(&b);
    float x[6] = {0, 1, 2, 3, 4, 5};
    int64_t idx[2] = {-1, 0};
    onnx_tensor in[2] = {{.dtype = ONNX_FLOAT, .rank = 2, .dims = {3, 2}, .data = x},
                         {.dtype = ONNX_INT64, .rank = 1, .dims = {2}, .data = idx}};
    onnx_result *r;
    md_err err;
    assert_int_equal(run(m, in, 2, &r, &err), MD_OK);
    const float *z = onnx_result_output(r, 0)->data;
    assert_float_equal(z[0], 4, 0);
    assert_float_equal(z[1], 5, 0);
    assert_float_equal(z[2], 0, 0);
    onnx_result_free(r);
    idx[1] = 3; /* out of range: an error, not a read past the end */
    assert_int_equal(run(m, in, 2, &r, &err), MD_E_INVALID_PARAM);
    assert_non_null(strstr(err.msg, "out of range"));
    onnx_model_free(m);
}

static void test_broadcast_errors_and_values(void **state)
{
    (void)state;
    bld b;
    one_node(&b, "Sub", 13, 2, ONNX_FLOAT);
    onnx_model *m = load(&b);
    float x[6] = {1, 2, 3, 4, 5, 6}, y[2] = {10, 20};
    onnx_tensor in[2] = {{.dtype = ONNX_FLOAT, .rank = 2, .dims = {2, 3}, .data = x},
                         {.dtype = ONNX_FLOAT, .rank = 2, .dims = {2, 1}, .data = y}};
    onnx_result *r;
    md_err err;
    assert_int_equal(run(m, in, 2, &r, &err), MD_OK);
    const float *z = onnx_result_output(r, 0)->data;
    assert_float_equal(z[0], -9, 0);
    assert_float_equal(z[5], -14, 0);
    onnx_result_free(r);
    in[1].rank = 1;
    in[1].dims[0] = 2; /* [2,3] - [2]: incompatible */
    assert_int_equal(run(m, in, 2, &r, &err), MD_E_INVALID_PARAM);
    onnx_model_free(m);
}

static void test_resize_nearest_and_linear(void **state)
{
    (void)state;
    float x[4] = {1, 2, 3, 4}, scales[4] = {1, 1, 2, 2};
    static const char *const modes[] = {"nearest", "linear"};
    for (int mode = 0; mode < 2; mode++) {
        bld b;
        bld_init(&b, 13);
        bld_input(&b, "X", ONNX_FLOAT, -1, NULL);
        bld_input(&b, "S", ONNX_FLOAT, -1, NULL);
        bld_output(&b, "Z", ONNX_FLOAT, -1, NULL);
        Onnx__NodeProto *n = bld_node(&b, "Resize", "r", (const char *[]){"X", "", "S", NULL},
                                      (const char *[]){"Z", NULL});
        Onnx__AttributeProto *a = bld_attr(&b, n, "mode", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
        a->has_s = 1;
        a->s.data = (uint8_t *)modes[mode];
        a->s.len = strlen(modes[mode]);
        onnx_model *m = load(&b);
        onnx_tensor in[2] = {{.dtype = ONNX_FLOAT, .rank = 4, .dims = {1, 1, 2, 2}, .data = x},
                             {.dtype = ONNX_FLOAT, .rank = 1, .dims = {4}, .data = scales}};
        onnx_result *r;
        md_err err;
        assert_int_equal(run(m, in, 2, &r, &err), MD_OK);
        const onnx_tensor *z = onnx_result_output(r, 0);
        assert_int_equal(z->dims[2], 4);
        assert_int_equal(z->dims[3], 4);
        const float *v = z->data;
        /* half_pixel: nearest repeats each pixel twice; linear row 0 = 1, 1.25, 1.75, 2. */
        const float want_n[4] = {1, 1, 2, 2}, want_l[4] = {1, 1.25f, 1.75f, 2};
        for (int i = 0; i < 4; i++)
            assert_float_equal(v[i], mode ? want_l[i] : want_n[i], 1e-6);
        onnx_result_free(r);
        onnx_model_free(m);
    }
}

/* Sequences live inside the graph: build [X, X*2], erase the first, read it back. Also checks
 * that a tensor operator refuses a sequence input instead of reading its element table. */
static void test_sequence_roundtrip(void **state)
{
    (void)state;
    bld b;
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, -1, NULL);
    bld_output(&b, "Z", ONNX_FLOAT, -1, NULL);
    bld_node(&b, "Add", "a", (const char *[]){"X", "X", NULL}, (const char *[]){"X2", NULL});
    bld_node(&b, "SequenceConstruct", "c", (const char *[]){"X", "X2", NULL},
             (const char *[]){"S", NULL});
    bld_node(&b, "SequenceErase", "e", (const char *[]){"S", NULL}, (const char *[]){"S1", NULL});
    bld_node(&b, "SequenceLength", "l", (const char *[]){"S1", NULL}, (const char *[]){"L", NULL});
    bld_node(&b, "SequenceAt", "t", (const char *[]){"S", "L", NULL}, (const char *[]){"Z", NULL});
    onnx_model *m = load(&b);
    float x[3] = {1, 2, 3};
    onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 1, .dims = {3}, .data = x};
    onnx_result *r;
    md_err err;
    assert_int_equal(run(m, &in, 1, &r, &err), MD_OK);
    const float *z = onnx_result_output(r, 0)->data; /* S[len(S1)] = S[1] = X * 2 */
    assert_float_equal(z[0], 2, 0);
    assert_float_equal(z[2], 6, 0);
    onnx_result_free(r);
    onnx_model_free(m);

    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, -1, NULL);
    bld_output(&b, "Z", ONNX_FLOAT, -1, NULL);
    bld_node(&b, "SequenceConstruct", "c", (const char *[]){"X", NULL}, (const char *[]){"S", NULL});
    bld_node(&b, "Relu", "r", (const char *[]){"S", NULL}, (const char *[]){"Z", NULL});
    m = load(&b);
    assert_int_equal(run(m, &in, 1, &r, &err), MD_E_INVALID_PARAM);
    assert_non_null(strstr(err.msg, "sequence"));
    onnx_model_free(m);
}

/* Strings made by an operator live as long as the output (onnx__output_extra). */
static void test_cast_to_string(void **state)
{
    (void)state;
    bld b;
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, -1, NULL);
    bld_output(&b, "Z", ONNX_STRING, -1, NULL);
    Onnx__NodeProto *n = bld_node(&b, "Cast", "c", (const char *[]){"X", NULL},
                                  (const char *[]){"Z", NULL});
    bld_attr_int(&b, n, "to", ONNX_STRING);
    onnx_model *m = load(&b);
    float x[3] = {0.5f, 1.0f, 1e-5f};
    onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 1, .dims = {3}, .data = x};
    onnx_result *r;
    md_err err;
    assert_int_equal(run(m, &in, 1, &r, &err), MD_OK);
    const char *const *z = onnx_result_output(r, 0)->data;
    assert_string_equal(z[0], "0.5");
    assert_string_equal(z[1], "1.0");
    assert_string_equal(z[2], "1e-05");
    onnx_result_free(r);
    onnx_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_opset_semantics),
        cmocka_unit_test(test_reshape_zero_and_infer),
        cmocka_unit_test(test_slice_negative_step),
        cmocka_unit_test(test_gather_indices),
        cmocka_unit_test(test_broadcast_errors_and_values),
        cmocka_unit_test(test_resize_nearest_and_linear),
        cmocka_unit_test(test_sequence_roundtrip),
        cmocka_unit_test(test_cast_to_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
