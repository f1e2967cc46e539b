/* quant_test.c - the quantised operators (MatMulInteger, QLinearMatMul, ConvInteger,
 * QLinearConv) and MaxUnpool, checked on small hand-computed cases: zero points per tensor, per
 * row / column / output channel, round-half-to-even and saturation of the requantised outputs,
 * bias, padding with the zero point, MaxUnpool's output_shape, and hostile inputs refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "onnx/onnx.h"
#include "onnx/onnx_builder.h"

#define MAX_IN 9

static const char *const NAMES[MAX_IN] = {"i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8"};

/* A one-node model op(i0..i{n-1}) -> y, every input a graph input of the given dtype. */
static Onnx__NodeProto *one_node(bld *b, const char *op, int n, const int *dtypes, int y_dtype)
{
    bld_init(b, 13);
    const char *in[MAX_IN + 1] = {0};
    for (int i = 0; i < n; i++) {
        bld_input(b, NAMES[i], dtypes[i], -1, NULL);
        in[i] = NAMES[i];
    }
    bld_output(b, "y", y_dtype, -1, NULL);
    return bld_node(b, op, "q", in, (const char *[]){"y", NULL});
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

/* A tensor input (data borrowed). */
static onnx_tensor tin(int dtype, int rank, const int64_t *dims, const void *data)
{
    onnx_tensor t = {.dtype = dtype, .rank = rank, .data = (void *)data};
    memcpy(t.dims, dims, sizeof(int64_t) * (size_t)rank);
    return t;
}

/* Run m on in[0..n) and compare output 0 (dtype, shape, bytes) with the expectation. */
static void expect(onnx_model *m, onnx_tensor *in, int n, int dtype, int rank,
                   const int64_t *dims, const void *want)
{
    onnx_result *r = NULL;
    md_err err;
    int rc = onnx_run(m, in, (size_t)n, NULL, &r, &err);
    if (rc)
        fprintf(stderr, "run: %s\n", err.msg);
    assert_int_equal(rc, MD_OK);
    const onnx_tensor *y = onnx_result_output(r, 0);
    assert_int_equal(y->dtype, dtype);
    assert_int_equal(y->rank, rank);
    for (int d = 0; d < rank; d++)
        assert_int_equal(y->dims[d], dims[d]);
    size_t bytes = (size_t)onnx_tensor_numel(y) * onnx_dtype_size(dtype);
    assert_memory_equal(y->data, want, bytes);
    onnx_result_free(r);
}

/* Run m on in[0..n) expecting MD_E_INVALID_PARAM with `part` in the message. */
static void expect_fail(onnx_model *m, onnx_tensor *in, int n, const char *part)
{
    onnx_result *r = NULL;
    md_err err;
    assert_int_equal(onnx_run(m, in, (size_t)n, NULL, &r, &err), MD_E_INVALID_PARAM);
    if (strstr(err.msg, part) == NULL)
        fprintf(stderr, "message '%s' lacks '%s'\n", err.msg, part);
    assert_non_null(strstr(err.msg, part));
    assert_null(r);
}

static void test_matmul_integer_zero_points(void **state)
{
    (void)state;
    bld b;
    one_node(&b, "MatMulInteger", 4, (int[]){ONNX_UINT8, ONNX_UINT8, ONNX_UINT8, ONNX_UINT8},
             ONNX_INT32);
    onnx_model *m = load(&b);
    static const int64_t d22[2] = {2, 2}, d2[1] = {2}, d0[1] = {0};
    uint8_t a[4] = {1, 2, 3, 4}, bb[4] = {5, 6, 7, 8}, azp = 1, bzp = 5;
    onnx_tensor in[4] = {tin(ONNX_UINT8, 2, d22, a), tin(ONNX_UINT8, 2, d22, bb),
                         tin(ONNX_UINT8, 0, d0, &azp), tin(ONNX_UINT8, 0, d0, &bzp)};
    /* per tensor: [[0,1],[2,3]] x [[0,1],[2,3]] */
    expect(m, in, 4, ONNX_INT32, 2, d22, (int32_t[]){2, 3, 6, 11});
    /* per row of a (1, 3) and per column of b (5, 4): [[0,1],[0,1]] x [[0,2],[2,4]] */
    uint8_t azr[2] = {1, 3}, bzc[2] = {5, 4};
    in[2] = tin(ONNX_UINT8, 1, d2, azr);
    in[3] = tin(ONNX_UINT8, 1, d2, bzc);
    expect(m, in, 4, ONNX_INT32, 2, d22, (int32_t[]){2, 4, 2, 4});
    /* a zero point of the wrong dtype is refused, naming it */
    int8_t bad = 1;
    in[2] = tin(ONNX_INT8, 0, d0, &bad);
    onnx_model_free(m);
    one_node(&b, "MatMulInteger", 4, (int[]){ONNX_UINT8, ONNX_UINT8, ONNX_INT8, ONNX_UINT8},
             ONNX_INT32);
    m = load(&b);
    expect_fail(m, in, 4, "a_zero_point");
    onnx_model_free(m);
}

static void test_matmul_integer_int8_batched(void **state)
{
    (void)state;
    bld b;
    one_node(&b, "MatMulInteger", 2, (int[]){ONNX_INT8, ONNX_INT8}, ONNX_INT32);
    onnx_model *m = load(&b);
    /* [2, 1, 2] x [2, 1]: batch of two rows, signed values, extremes multiply exactly */
    static const int64_t da[3] = {2, 1, 2}, db[2] = {2, 1}, dy[3] = {2, 1, 1};
    int8_t a[4] = {-128, 127, 3, -4}, bb[2] = {-128, 2};
    onnx_tensor in[2] = {tin(ONNX_INT8, 3, da, a), tin(ONNX_INT8, 2, db, bb)};
    expect(m, in, 2, ONNX_INT32, 3, dy, (int32_t[]){16384 + 254, -384 - 8});
    static const int64_t dbad[2] = {3, 1};
    in[1] = tin(ONNX_INT8, 2, dbad, (int8_t[]){1, 2, 3});
    expect_fail(m, in, 2, "inner dimensions");
    onnx_model_free(m);
}

/* QLinearMatMul inputs: a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp. */
static const int QMM_TYPES[8] = {ONNX_UINT8, ONNX_FLOAT, ONNX_UINT8, ONNX_UINT8,
                                 ONNX_FLOAT, ONNX_UINT8, ONNX_FLOAT, ONNX_UINT8};

static void test_qlinear_matmul_rounding_and_saturation(void **state)
{
    (void)state;
    bld b;
    one_node(&b, "QLinearMatMul", 8, QMM_TYPES, ONNX_UINT8);
    onnx_model *m = load(&b);
    static const int64_t d31[2] = {3, 1}, d11[2] = {1, 1}, d0[1] = {0};
    uint8_t a[3] = {5, 7, 200}, bb[1] = {1}, zero = 0, yzp = 10;
    float one = 1.0f, two = 2.0f;
    onnx_tensor in[8] = {tin(ONNX_UINT8, 2, d31, a),  tin(ONNX_FLOAT, 0, d0, &one),
                         tin(ONNX_UINT8, 0, d0, &zero), tin(ONNX_UINT8, 2, d11, bb),
                         tin(ONNX_FLOAT, 0, d0, &one),  tin(ONNX_UINT8, 0, d0, &zero),
                         tin(ONNX_FLOAT, 0, d0, &two),  tin(ONNX_UINT8, 0, d0, &yzp)};
    /* 5/2 = 2.5 -> 2 and 7/2 = 3.5 -> 4 (half to even), then + 10; 200/2 + 10 = 110 */
    expect(m, in, 8, ONNX_UINT8, 2, d31, (uint8_t[]){12, 14, 110});
    /* b = 3 with b_zp 1: 5*2/2 = 5, 7, 200 -> 210 */
    uint8_t b3 = 3, bz1 = 1;
    in[3] = tin(ONNX_UINT8, 2, d11, &b3);
    in[5] = tin(ONNX_UINT8, 0, d0, &bz1);
    expect(m, in, 8, ONNX_UINT8, 2, d31, (uint8_t[]){15, 17, 210});
    /* b = 5: 200*4/2 + 10 = 410 saturates to 255 */
    uint8_t b5 = 5;
    in[3] = tin(ONNX_UINT8, 2, d11, &b5);
    expect(m, in, 8, ONNX_UINT8, 2, d31, (uint8_t[]){20, 24, 255});
    /* per-row a_scale (0.5, 1, 1) with a per-row a_zp (1, 1, 0): (4*0.5)*4/2=4 -> 14,
     * 6*4/2=12 -> 22, 200*4/2 -> 255 */
    float asr[3] = {0.5f, 1, 1};
    uint8_t azr[3] = {1, 1, 0};
    static const int64_t d3[1] = {3};
    in[1] = tin(ONNX_FLOAT, 1, d3, asr);
    in[2] = tin(ONNX_UINT8, 1, d3, azr);
    expect(m, in, 8, ONNX_UINT8, 2, d31, (uint8_t[]){14, 22, 255});
    float zero_scale = 0.0f;
    in[6] = tin(ONNX_FLOAT, 0, d0, &zero_scale);
    expect_fail(m, in, 8, "y_scale");
    onnx_model_free(m);
}

static void test_qlinear_matmul_int8_negative_saturation(void **state)
{
    (void)state;
    bld b;
    int t[8] = {ONNX_INT8, ONNX_FLOAT, ONNX_INT8, ONNX_INT8,
                ONNX_FLOAT, ONNX_INT8, ONNX_FLOAT, ONNX_INT8};
    one_node(&b, "QLinearMatMul", 8, t, ONNX_INT8);
    onnx_model *m = load(&b);
    static const int64_t d12[2] = {1, 2}, d21[2] = {2, 1}, d11[2] = {1, 1}, d0[1] = {0};
    int8_t a[2] = {-100, 3}, bb[2] = {100, 1}, zero = 0, yzp = -5;
    float one = 1.0f, ys = 4.0f;
    onnx_tensor in[8] = {tin(ONNX_INT8, 2, d12, a),   tin(ONNX_FLOAT, 0, d0, &one),
                         tin(ONNX_INT8, 0, d0, &zero), tin(ONNX_INT8, 2, d21, bb),
                         tin(ONNX_FLOAT, 0, d0, &one),  tin(ONNX_INT8, 0, d0, &zero),
                         tin(ONNX_FLOAT, 0, d0, &ys),   tin(ONNX_INT8, 0, d0, &yzp)};
    /* -10000 + 3 = -9997, / 4 = -2499.25 -> -2499 - 5, saturates to -128 */
    expect(m, in, 8, ONNX_INT8, 2, d11, (int8_t[]){-128});
    /* a = (-2, 3): -200 + 3 = -197 / 4 = -49.25 -> -49 - 5 = -54 */
    a[0] = -2;
    expect(m, in, 8, ONNX_INT8, 2, d11, (int8_t[]){-54});
    onnx_model_free(m);
}

static void test_conv_integer_padding_with_zero_point(void **state)
{
    (void)state;
    bld b;
    Onnx__NodeProto *n = one_node(&b, "ConvInteger", 3,
                                  (int[]){ONNX_UINT8, ONNX_UINT8, ONNX_UINT8}, ONNX_INT32);
    int64_t pads[4] = {1, 1, 1, 1};
    bld_attr_ints(&b, n, "pads", pads, 4);
    onnx_model *m = load(&b);
    static const int64_t dx[4] = {1, 1, 3, 3}, dw[4] = {1, 1, 2, 2}, dy[4] = {1, 1, 4, 4},
                         d0[1] = {0};
    uint8_t x[9] = {2, 3, 4, 5, 6, 7, 8, 9, 10}, w[4] = {1, 1, 1, 1}, xzp = 1;
    onnx_tensor in[3] = {tin(ONNX_UINT8, 4, dx, x), tin(ONNX_UINT8, 4, dw, w),
                         tin(ONNX_UINT8, 0, d0, &xzp)};
    /* x - 1 = 1..9; the padding counts as the zero point, i.e. contributes 0 */
    expect(m, in, 3, ONNX_INT32, 4, dy,
           (int32_t[]){1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9});
    onnx_model_free(m);
}

static void test_conv_integer_per_channel_group_stride(void **state)
{
    (void)state;
    bld b;
    Onnx__NodeProto *n = one_node(&b, "ConvInteger", 4,
                                  (int[]){ONNX_INT8, ONNX_INT8, ONNX_INT8, ONNX_INT8}, ONNX_INT32);
    bld_attr_int(&b, n, "group", 2);
    int64_t strides[1] = {2};
    bld_attr_ints(&b, n, "strides", strides, 1);
    onnx_model *m = load(&b);
    /* 1-D, 2 channels in 2 groups: channel 0 = (1, 2, 3, 4, 5), channel 1 = (-1, -2, -3, -4, -5);
     * w [2, 1, 2] = (3, 4), (5, 6) with w_zp per channel (2, 7) -> (1, 2), (-2, -1) */
    static const int64_t dx[3] = {1, 2, 5}, dw[3] = {2, 1, 2}, dy[3] = {1, 2, 2}, d2[1] = {2},
                         d0[1] = {0};
    int8_t x[10] = {1, 2, 3, 4, 5, -1, -2, -3, -4, -5}, w[4] = {3, 4, 5, 6}, wzp[2] = {2, 7};
    int8_t xzp = 0;
    onnx_tensor in[4] = {tin(ONNX_INT8, 3, dx, x), tin(ONNX_INT8, 3, dw, w),
                         tin(ONNX_INT8, 0, d0, &xzp), tin(ONNX_INT8, 1, d2, wzp)};
    /* ch0 windows (1,2), (3,4): 5, 11; ch1 (-1,-2), (-3,-4): 4, 10 */
    expect(m, in, 4, ONNX_INT32, 3, dy, (int32_t[]){5, 11, 4, 10});
    /* a w_zero_point with neither 1 nor M values is refused, naming it */
    static const int64_t d3[1] = {3};
    in[3] = tin(ONNX_INT8, 1, d3, (int8_t[]){1, 2, 3});
    expect_fail(m, in, 4, "w_zero_point");
    onnx_model_free(m);
}

static void test_qlinear_conv_bias_rounding_saturation(void **state)
{
    (void)state;
    bld b;
    int t[9] = {ONNX_UINT8, ONNX_FLOAT, ONNX_UINT8, ONNX_UINT8, ONNX_FLOAT,
                ONNX_UINT8, ONNX_FLOAT, ONNX_UINT8, ONNX_INT32};
    one_node(&b, "QLinearConv", 9, t, ONNX_UINT8);
    onnx_model *m = load(&b);
    static const int64_t dx[4] = {1, 1, 1, 2}, dw[4] = {1, 1, 1, 1}, d1[1] = {1}, d0[1] = {0};
    uint8_t x[2] = {10, 22}, w = 3, zero = 0, wzp = 1, yzp = 250;
    float xs = 0.5f, ws = 1.0f, ys = 4.0f;
    int32_t bias = 0;
    onnx_tensor in[9] = {tin(ONNX_UINT8, 4, dx, x),    tin(ONNX_FLOAT, 0, d0, &xs),
                         tin(ONNX_UINT8, 0, d0, &zero), tin(ONNX_UINT8, 4, dw, &w),
                         tin(ONNX_FLOAT, 0, d0, &ws),   tin(ONNX_UINT8, 0, d0, &wzp),
                         tin(ONNX_FLOAT, 0, d0, &ys),   tin(ONNX_UINT8, 0, d0, &yzp),
                         tin(ONNX_INT32, 1, d1, &bias)};
    /* acc = x * (3 - 1) = 20, 44; * 0.5 / 4 = 2.5, 5.5 -> 2, 6 (half to even); + 250 -> 252,
     * 256 saturates to 255 */
    expect(m, in, 9, ONNX_UINT8, 4, dx, (uint8_t[]){252, 255});
    /* bias 4 is added to the int32 accumulator: 24, 48 -> 3, 6; y_zero_point 0 */
    bias = 4;
    yzp = 0;
    expect(m, in, 9, ONNX_UINT8, 4, dx, (uint8_t[]){3, 6});
    static const int64_t d2[1] = {2};
    in[8] = tin(ONNX_INT32, 1, d2, (int32_t[]){1, 2});
    expect_fail(m, in, 9, "B must be int32 [1]");
    onnx_model_free(m);
}

static void test_maxunpool_shapes_and_bad_indices(void **state)
{
    (void)state;
    bld b;
    Onnx__NodeProto *n = one_node(&b, "MaxUnpool", 3, (int[]){ONNX_FLOAT, ONNX_INT64, ONNX_INT64},
                                  ONNX_FLOAT);
    int64_t ks[2] = {2, 2}, st[2] = {2, 2};
    bld_attr_ints(&b, n, "kernel_shape", ks, 2);
    bld_attr_ints(&b, n, "strides", st, 2);
    onnx_model *m = load(&b);
    static const int64_t d4[4] = {1, 1, 2, 2}, ds[1] = {4}, d44[4] = {1, 1, 4, 4},
                         d55[4] = {1, 1, 5, 5};
    float x[4] = {1, 2, 3, 4};
    int64_t idx[4] = {0, 3, 12, 15}, shape[4] = {1, 1, 4, 4};
    onnx_tensor in[3] = {tin(ONNX_FLOAT, 4, d4, x), tin(ONNX_INT64, 4, d4, idx),
                         tin(ONNX_INT64, 1, ds, shape)};
    float y44[16] = {1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 4};
    expect(m, in, 3, ONNX_FLOAT, 4, d44, y44);
    /* a larger output_shape keeps the 4x4 block at the origin: (3, 0) and (3, 3) of 5x5 */
    shape[2] = shape[3] = 5;
    float y55[25] = {0};
    y55[0] = 1, y55[3] = 2, y55[15] = 3, y55[18] = 4;
    expect(m, in, 3, ONNX_FLOAT, 4, d55, y55);
    shape[2] = 3;
    expect_fail(m, in, 3, "output_shape[2]");
    shape[2] = 4;
    idx[3] = 16; /* one past the 16 unpooled elements */
    expect_fail(m, in, 3, "I[3] = 16");
    idx[3] = -1;
    expect_fail(m, in, 3, "I[3] = -1");
    onnx_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_integer_zero_points),
        cmocka_unit_test(test_matmul_integer_int8_batched),
        cmocka_unit_test(test_qlinear_matmul_rounding_and_saturation),
        cmocka_unit_test(test_qlinear_matmul_int8_negative_saturation),
        cmocka_unit_test(test_conv_integer_padding_with_zero_point),
        cmocka_unit_test(test_conv_integer_per_channel_group_stride),
        cmocka_unit_test(test_qlinear_conv_bias_rounding_saturation),
        cmocka_unit_test(test_maxunpool_shapes_and_bad_indices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
