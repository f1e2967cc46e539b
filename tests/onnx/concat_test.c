/* concat_test.c - a channel Concat fused with the 1x1 Conv reading it and the residual Add after
 * it (ops/concat.c), against the same graph with the nodes apart (MODELD_ONNX_NO_CATCONV=1) and
 * against a reference computed here in double from the definitions.
 *
 * Graph: inputs A [N][ca][H][W] and B [N][cb][H][W]; C = Concat(A, Relu(B)) (or more inputs);
 * Y = Conv1x1(C, W, bias) [+ residual]. Cases: the RDN block (residual = A, either operand
 * order), no bias, three inputs, a residual of one channel (the Add broadcasts), an Add of a
 * value that is not a Concat input (the Conv still fuses, the Add stays), and Convs that must not
 * fuse (3x3, stride 2), whose results differ in shape or value if they were.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "onnx/model.h"
#include "onnx/onnx.h"
#include "onnx/onnx_builder.h"

#define ONNX_TEST_SEED 4242u
#include "onnx/onnx_test_rand.h"

typedef struct cc_case {
    int n_in;       /* Concat inputs: A, Relu(B), then A again for 3 */
    int64_t ca, cb; /* channels of A and B */
    int64_t oc, k;  /* the Conv: output channels, kernel side */
    int64_t stride;
    int bias;
    int add; /* 0 none, 1 Add(conv, A), 2 Add(A, conv), 3 Add(conv, Z) with Z an input */
} cc_case;

static int64_t cat_channels(const cc_case *c)
{
    return c->ca + c->cb + (c->n_in == 3 ? c->ca : 0);
}

static void build(bld *b, const cc_case *c, const float *w, const float *bias)
{
    static int64_t any4[] = {-1, -1, -1, -1}, wd[4], bd[1], pads[4], strides[2], ks[2];
    wd[0] = c->oc;
    wd[1] = cat_channels(c);
    wd[2] = wd[3] = c->k;
    bd[0] = c->oc;
    for (int i = 0; i < 4; i++)
        pads[i] = c->k / 2;
    strides[0] = strides[1] = c->stride;
    ks[0] = ks[1] = c->k;
    bld_init(b, 13);
    bld_input(b, "A", ONNX_FLOAT, 4, any4);
    bld_input(b, "B", ONNX_FLOAT, 4, any4);
    if (c->add == 3)
        bld_input(b, "Z", ONNX_FLOAT, 4, any4);
    bld_output(b, "Y", ONNX_FLOAT, 4, any4);
    bld_init_f32(b, "W", 4, wd, w, (size_t)(wd[0] * wd[1] * wd[2] * wd[3]));
    if (c->bias)
        bld_init_f32(b, "bias", 1, bd, bias, (size_t)c->oc);
    bld_node(b, "Relu", "r", (const char *[]){"B", NULL}, (const char *[]){"R", NULL});
    Onnx__NodeProto *cat = bld_node(b, "Concat", "cat",
                                    c->n_in == 3 ? (const char *[]){"A", "R", "A", NULL}
                                                 : (const char *[]){"A", "R", NULL},
                                    (const char *[]){"C", NULL});
    bld_attr_int(b, cat, "axis", 1);
    Onnx__NodeProto *conv = bld_node(b, "Conv", "conv",
                                     c->bias ? (const char *[]){"C", "W", "bias", NULL}
                                             : (const char *[]){"C", "W", NULL},
                                     (const char *[]){c->add ? "V" : "Y", NULL});
    bld_attr_ints(b, conv, "pads", pads, 4);
    bld_attr_ints(b, conv, "strides", strides, 2);
    bld_attr_ints(b, conv, "kernel_shape", ks, 2);
    if (c->add == 1)
        bld_node(b, "Add", "add", (const char *[]){"V", "A", NULL}, (const char *[]){"Y", NULL});
    else if (c->add == 2)
        bld_node(b, "Add", "add", (const char *[]){"A", "V", NULL}, (const char *[]){"Y", NULL});
    else if (c->add == 3)
        bld_node(b, "Add", "add", (const char *[]){"V", "Z", NULL}, (const char *[]){"Y", NULL});
}

/* Nodes of m folded into another at load. */
static int absorbed(const onnx_model *m)
{
    int k = 0;
    for (int i = 0; i < m->n_nodes; i++)
        k += m->nodes[i].absorbed;
    return k;
}

static int last_absorbed; /* absorbed() of the model run_case loaded last */

/* Run the case's graph on inputs in (2 or 3); *y new (free()), dims its shape. Returns the run's
 * code (the load must succeed); err gets the detail. */
static int run_case(const cc_case *c, int unfused, const float *w, const float *bias,
                    const onnx_tensor *in, float **y, int64_t *dims, md_err *err)
{
    bld b;
    onnx_model *m = NULL;
    onnx_result *r = NULL;
    if (unfused)
        setenv("MODELD_ONNX_NO_CATCONV", "1", 1);
    build(&b, c, w, bias);
    int rc = bld_load(&b, &m, err);
    unsetenv("MODELD_ONNX_NO_CATCONV");
    assert_int_equal(rc, MD_OK);
    last_absorbed = absorbed(m);
    for (int rep = 0; rep < 2 && rc == MD_OK; rep++) { /* recording run, then planned run */
        onnx_result_free(r);
        r = NULL;
        rc = onnx_run(m, in, c->add == 3 ? 3 : 2, NULL, &r, err);
    }
    if (rc == MD_OK) {
        const onnx_tensor *t = onnx_result_output(r, 0);
        memcpy(dims, t->dims, 4 * sizeof(int64_t));
        size_t n = (size_t)onnx_tensor_numel(t);
        *y = malloc((n ? n : 1) * sizeof(float));
        assert_non_null(*y);
        memcpy(*y, t->data, n * sizeof(float));
    }
    onnx_result_free(r);
    onnx_model_free(m);
    return rc;
}

/* The reference for 1x1 stride-1 cases: y = bias + W . Concat(A, relu(B)[, A]) + residual. */
static void reference(const cc_case *c, const float *w, const float *bias, const onnx_tensor *in,
                      int64_t hw, float *y)
{
    int64_t ic = cat_channels(c), n = in[0].dims[0];
    const float *a = in[0].data, *bb = in[1].data, *z = c->add == 3 ? in[2].data : NULL;
    for (int64_t img = 0; img < n; img++)
        for (int64_t o = 0; o < c->oc; o++)
            for (int64_t p = 0; p < hw; p++) {
                double acc = c->bias ? bias[o] : 0.0;
                for (int64_t ch = 0; ch < ic; ch++) {
                    int64_t j = ch < c->ca ? ch : ch - c->ca;
                    float v = ch < c->ca  ? a[(img * c->ca + j) * hw + p]
                              : j < c->cb ? fmaxf(bb[(img * c->cb + j) * hw + p], 0.0f)
                                          : a[(img * c->ca + j - c->cb) * hw + p];
                    acc += (double)w[o * ic + ch] * v;
                }
                if (c->add == 1 || c->add == 2)
                    acc += a[(img * c->ca + (c->ca == 1 ? 0 : o)) * hw + p];
                if (c->add == 3)
                    acc += z[(img * c->oc + o) * hw + p];
                y[(img * c->oc + o) * hw + p] = (float)acc;
            }
}

static void assert_close(const float *got, const float *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(got[i] - want[i]) <= 1e-4f + 1e-4f * fabsf(want[i]))) {
            print_error("%s: element %zu: got %.7g want %.7g\n", what, i, got[i], want[i]);
            fail();
        }
}

/* Fused and unfused agree (shape and values); with want_ref, both equal the reference. The
 * fused load folded `fold` nodes into the Concat (the Conv, and the Add), the unfused none. */
static void check_case(const cc_case *c, int want_ref, int fold, const char *what)
{
    int64_t n = 2, H = 5, W = 7, ic = cat_channels(c);
    float *w = rand_buf((size_t)(c->oc * ic * c->k * c->k)), *bias = rand_buf((size_t)c->oc);
    float *av = rand_buf((size_t)(n * c->ca * H * W)), *bv = rand_buf((size_t)(n * c->cb * H * W));
    float *zv = rand_buf((size_t)(n * c->oc * H * W));
    onnx_tensor in[3] = {{.dtype = ONNX_FLOAT, .rank = 4, .dims = {n, c->ca, H, W}, .data = av},
                         {.dtype = ONNX_FLOAT, .rank = 4, .dims = {n, c->cb, H, W}, .data = bv},
                         {.dtype = ONNX_FLOAT, .rank = 4, .dims = {n, c->oc, H, W}, .data = zv}};
    float *fused = NULL, *plain = NULL;
    int64_t fd[4], pd[4];
    md_err err;
    assert_int_equal(run_case(c, 0, w, bias, in, &fused, fd, &err), MD_OK);
    assert_int_equal(last_absorbed, fold);
    assert_int_equal(run_case(c, 1, w, bias, in, &plain, pd, &err), MD_OK);
    assert_int_equal(last_absorbed, 0);
    assert_memory_equal(fd, pd, sizeof fd);
    size_t cnt = (size_t)(fd[0] * fd[1] * fd[2] * fd[3]);
    assert_close(fused, plain, cnt, what);
    if (want_ref) {
        float *want = malloc(cnt * sizeof(float));
        assert_int_equal(fd[2] * fd[3], H * W);
        reference(c, w, bias, in, H * W, want);
        assert_close(fused, want, cnt, what);
        free(want);
    }
    free(w);
    free(bias);
    free(av);
    free(bv);
    free(zv);
    free(fused);
    free(plain);
}

static void test_fused_blocks(void **state)
{
    (void)state;
    check_case(
        &(cc_case){.n_in = 2, .ca = 4, .cb = 4, .oc = 4, .k = 1, .stride = 1, .bias = 1, .add = 1},
        1, 2, "rdn block");
    check_case(
        &(cc_case){.n_in = 2, .ca = 4, .cb = 4, .oc = 4, .k = 1, .stride = 1, .bias = 1, .add = 2},
        1, 2, "residual first");
    check_case(&(cc_case){.n_in = 2, .ca = 3, .cb = 5, .oc = 6, .k = 1, .stride = 1, .bias = 0}, 1,
               1, "no bias, no add");
    check_case(&(cc_case){.n_in = 3, .ca = 2, .cb = 3, .oc = 5, .k = 1, .stride = 1, .bias = 1}, 1,
               1, "three inputs");
    check_case(
        &(cc_case){.n_in = 2, .ca = 1, .cb = 3, .oc = 4, .k = 1, .stride = 1, .bias = 1, .add = 1},
        1, 2, "one-channel residual");
    check_case(
        &(cc_case){.n_in = 2, .ca = 4, .cb = 4, .oc = 4, .k = 1, .stride = 1, .bias = 1, .add = 3},
        1, 1, "add of another value");
}

static void test_not_fused(void **state)
{
    (void)state;
    check_case(
        &(cc_case){.n_in = 2, .ca = 4, .cb = 4, .oc = 4, .k = 3, .stride = 1, .bias = 1, .add = 1},
        0, 0, "3x3");
    check_case(&(cc_case){.n_in = 2, .ca = 4, .cb = 4, .oc = 4, .k = 1, .stride = 2, .bias = 1}, 0,
               0, "stride 2");
}

/* The fused node checks shapes as the Conv and the Add would. */
static void test_bad_shapes(void **state)
{
    (void)state;
    cc_case c = {.n_in = 2, .ca = 4, .cb = 4, .oc = 4, .k = 1, .stride = 1, .bias = 1, .add = 1};
    float *w = rand_buf(32), *bias = rand_buf(4), *x = rand_buf(2 * 5 * 6 * 7), *y = NULL;
    onnx_tensor in[2] = {{.dtype = ONNX_FLOAT, .rank = 4, .dims = {1, 4, 6, 7}, .data = x},
                         {.dtype = ONNX_FLOAT, .rank = 4, .dims = {1, 5, 6, 7}, .data = x}};
    int64_t d[4];
    md_err err;
    assert_int_equal(run_case(&c, 0, w, bias, in, &y, d, &err), MD_E_INVALID_PARAM);
    assert_non_null(strstr(err.msg, "input channels"));
    in[1].dims[1] = 4;
    in[1].dims[3] = 6;
    assert_int_equal(run_case(&c, 0, w, bias, in, &y, d, &err), MD_E_INVALID_PARAM);
    assert_non_null(strstr(err.msg, "differs in dim 3"));
    c.ca = 2; /* residual of 2 channels added to 4: no broadcast */
    c.cb = 6;
    in[0].dims[1] = 2;
    in[1].dims[1] = 6;
    in[1].dims[3] = 7;
    assert_int_equal(run_case(&c, 0, w, bias, in, &y, d, &err), MD_E_INVALID_PARAM);
    assert_int_equal(run_case(&c, 1, w, bias, in, &y, d, &err), MD_E_INVALID_PARAM);
    free(w);
    free(bias);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fused_blocks),
        cmocka_unit_test(test_not_fused),
        cmocka_unit_test(test_bad_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
