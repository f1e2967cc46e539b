/* upconv_test.c - nearest upsampling + Conv computed on the low-res input (kernels/upconv.c) and
 * the Resize op's load-time fusion of a Resize + Conv (+ activation) pair (ops/resize.c).
 *
 * The reference upsamples for real (row r reads floor(r / s)) and convolves from the definition
 * in double, so a wrong tap map, padding rule or weight layout shows as a mismatch. Each engine
 * case runs twice: fused, and with MODELD_ONNX_NO_UPCONV=1 (the two nodes apart); both must
 * match the reference. Pairs the fusion must leave alone (round_prefer_floor at x3, a scale of
 * 1.5, sizes instead of scales, group 2) must give the unfused results: fusing them would not.
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

#include "onnx/kernels/kernels.h"
#include "onnx/model.h"
#include "onnx/onnx.h"
#include "onnx/onnx_builder.h"

#define ONNX_TEST_SEED 777u
#include "onnx/onnx_test_rand.h"

static void assert_close(const float *got, const float *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        float tol = 1e-4f + 1e-4f * fabsf(want[i]);
        if (!(fabsf(got[i] - want[i]) <= tol)) {
            print_error("%s: element %zu: got %.7g want %.7g\n", what, i, got[i], want[i]);
            fail();
        }
    }
}

/* Spatial sizes of the conv output for an upsampled input (explicit pads). */
static void set_out(onnx_kupconv_geom *g)
{
    for (int d = 0; d < 2; d++)
        g->out[d] = (g->in[d] * g->scale[d] + g->pad_begin[d] + g->pad_end[d] -
                     (g->k[d] - 1) * g->dil[d] - 1) /
                        g->stride[d] +
                    1;
}

/* Reference: upsample x for real (nearest, floor), then the convolution from its definition. */
static void ref_upconv(const onnx_kupconv_geom *g, const float *x, const float *w, const float *b,
                       float *y)
{
    int64_t H = g->in[0], W = g->in[1], HH = H * g->scale[0], WW = W * g->scale[1];
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t o = 0; o < g->oc; o++)
            for (int64_t oy = 0; oy < g->out[0]; oy++)
                for (int64_t ox = 0; ox < g->out[1]; ox++) {
                    double acc = g->has_bias ? b[o] : 0.0;
                    for (int64_t c = 0; c < g->ic; c++)
                        for (int64_t ty = 0; ty < g->k[0]; ty++)
                            for (int64_t tx = 0; tx < g->k[1]; tx++) {
                                int64_t r = oy * g->stride[0] - g->pad_begin[0] + ty * g->dil[0];
                                int64_t q = ox * g->stride[1] - g->pad_begin[1] + tx * g->dil[1];
                                if (r < 0 || r >= HH || q < 0 || q >= WW)
                                    continue;
                                acc += (double)x[((n * g->ic + c) * H + r / g->scale[0]) * W +
                                                 q / g->scale[1]] *
                                       w[((o * g->ic + c) * g->k[0] + ty) * g->k[1] + tx];
                            }
                    float v = (float)acc;
                    if (g->act.kind == ONNX_KACT_RELU && v < 0)
                        v = 0;
                    y[((n * g->oc + o) * g->out[0] + oy) * g->out[1] + ox] = v;
                }
}

static size_t out_count(const onnx_kupconv_geom *g)
{
    return (size_t)(g->n * g->oc * g->out[0] * g->out[1]);
}

static void check_kernel(onnx_kupconv_geom g, const char *what)
{
    md_err e;
    set_out(&g);
    assert_int_equal(onnx__upconv_check(&g, &e), MD_OK);
    size_t nw = (size_t)(g.oc * g.ic * g.k[0] * g.k[1]), ny = out_count(&g);
    float *x = rand_buf((size_t)(g.n * g.ic * g.in[0] * g.in[1])), *w = rand_buf(nw);
    float *b = rand_buf((size_t)g.oc), *wp = malloc(nw * sizeof(float));
    float *y = malloc(ny * sizeof(float)), *want = malloc(ny * sizeof(float));
    void *s = aligned_alloc(64, (onnx__upconv_scratch(&g) + 63) / 64 * 64);
    assert_non_null(s);
    onnx__upconv_pack(&g, w, wp);
    ref_upconv(&g, x, w, b, want);
    memset(y, 0xff, ny * sizeof(float));
    assert_int_equal(onnx__upconv_run(&g, x, wp, b, y, s, &e), MD_OK);
    assert_close(y, want, ny, what);
    free(x);
    free(w);
    free(b);
    free(wp);
    free(y);
    free(want);
    free(s);
}

/* Scales 1..8 (different per axis), kernels 1..5 (even ones too), strides, dilations, every
 * padding from none to more than the kernel, a batch of 2, a fused Relu. */
static void test_kernel_geometries(void **state)
{
    (void)state;
    static const int64_t cases[][9] = {
        /* sy sx k stride dil pb0 pb1 pe0 pe1 */
        {2, 2, 3, 1, 1, 1, 1, 1, 1}, {8, 8, 3, 1, 1, 1, 1, 1, 1}, {3, 3, 3, 1, 1, 1, 1, 1, 1},
        {4, 2, 3, 1, 1, 0, 0, 0, 0}, {2, 3, 1, 1, 1, 0, 0, 0, 0}, {2, 2, 5, 1, 1, 2, 2, 2, 2},
        {3, 2, 2, 1, 1, 0, 1, 1, 0}, {2, 2, 3, 2, 1, 1, 1, 1, 1}, {4, 4, 3, 3, 1, 0, 2, 1, 0},
        {2, 2, 3, 1, 2, 2, 2, 2, 2}, {1, 1, 3, 1, 1, 1, 1, 1, 1}, {2, 2, 3, 1, 1, 4, 0, 0, 5},
        {5, 7, 4, 2, 2, 3, 1, 2, 0}, {8, 1, 3, 1, 1, 1, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t *c = cases[i];
        onnx_kupconv_geom g = {.n = 1 + (int64_t)(i % 2),
                               .ic = 5,
                               .oc = 3,
                               .in = {4, 5},
                               .scale = {c[0], c[1]},
                               .k = {c[2], c[2]},
                               .stride = {c[3], c[3]},
                               .dil = {c[4], c[4]},
                               .pad_begin = {c[5], c[6]},
                               .pad_end = {c[7], c[8]},
                               .has_bias = (int)(i % 3 != 1)};
        if (i % 4 == 2)
            g.act.kind = ONNX_KACT_RELU;
        char what[32];
        snprintf(what, sizeof what, "case %zu", i);
        check_kernel(g, what);
    }
    /* the x8 ESRGAN tail's shape, smaller: many channels in, 3 out */
    check_kernel((onnx_kupconv_geom){.n = 1,
                                     .ic = 24,
                                     .oc = 3,
                                     .in = {7, 6},
                                     .scale = {8, 8},
                                     .k = {3, 3},
                                     .stride = {1, 1},
                                     .dil = {1, 1},
                                     .pad_begin = {1, 1},
                                     .pad_end = {1, 1},
                                     .has_bias = 1},
                 "esrgan tail");
}

static void test_kernel_bad_geometry(void **state)
{
    (void)state;
    md_err e;
    onnx_kupconv_geom g = {.n = 1,
                           .ic = 2,
                           .oc = 2,
                           .in = {4, 4},
                           .scale = {2, 2},
                           .k = {3, 3},
                           .stride = {1, 1},
                           .dil = {1, 1},
                           .pad_begin = {1, 1},
                           .pad_end = {1, 1},
                           .has_bias = 1};
    set_out(&g);
    assert_int_equal(onnx__upconv_check(&g, &e), MD_OK);
    g.out[1]++;
    assert_int_equal(onnx__upconv_check(&g, &e), MD_E_INVALID_PARAM);
    set_out(&g);
    g.scale[0] = 0;
    assert_int_equal(onnx__upconv_check(&g, &e), MD_E_INVALID_PARAM);
    g.scale[0] = 2;
    g.dil[1] = (int64_t)1 << 40; /* a hostile size is refused before any product overflows */
    assert_int_equal(onnx__upconv_check(&g, &e), MD_E_INVALID_PARAM);
}

/* ---- the fusion in the engine ---------------------------------------------------------------- */

static void attr_str(bld *b, Onnx__NodeProto *n, const char *name, const char *v)
{
    Onnx__AttributeProto *a = bld_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.data = (uint8_t *)v;
    a->s.len = strlen(v);
}

/* One engine case: X -> Resize(scales or sizes) -> Conv(W, B) [-> Relu] -> Y. */
typedef struct pair_case {
    float sy, sx; /* scales (sizes = in * scale when use_sizes) */
    int use_sizes;
    const char *nearest; /* nearest_mode */
    const char *coord;   /* coordinate_transformation_mode */
    int64_t k, group;
    int64_t pads[4], strides[2];
    const char *auto_pad; /* NULL: pads */
    int relu;
} pair_case;

static void build_pair(bld *b, const pair_case *pc, int64_t ic, int64_t oc, const float *w,
                       const float *bias, const float *scales, const int64_t *sizes)
{
    static int64_t xd[] = {-1, -1, -1, -1}, d4[] = {4}, wd[4], bd[1];
    wd[0] = oc;
    wd[1] = ic / pc->group;
    wd[2] = wd[3] = pc->k;
    bd[0] = oc;
    bld_init(b, 13);
    bld_input(b, "X", ONNX_FLOAT, 4, xd);
    bld_output(b, "Y", ONNX_FLOAT, 4, xd);
    bld_init_f32(b, "W", 4, wd, w, (size_t)(wd[0] * wd[1] * wd[2] * wd[3]));
    bld_init_f32(b, "B", 1, bd, bias, (size_t)oc);
    Onnx__NodeProto *r;
    if (pc->use_sizes) {
        Onnx__TensorProto *t = bld_init_f32(b, "Z", 1, d4, NULL, 0);
        t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
        t->raw_data.data = (uint8_t *)sizes;
        t->raw_data.len = 4 * sizeof(int64_t);
        r = bld_node(b, "Resize", "r", (const char *[]){"X", "", "", "Z", NULL},
                     (const char *[]){"U", NULL});
    } else {
        bld_init_f32(b, "S", 1, d4, scales, 4);
        r = bld_node(b, "Resize", "r", (const char *[]){"X", "", "S", NULL},
                     (const char *[]){"U", NULL});
    }
    attr_str(b, r, "mode", "nearest");
    attr_str(b, r, "coordinate_transformation_mode", pc->coord);
    attr_str(b, r, "nearest_mode", pc->nearest);
    Onnx__NodeProto *c = bld_node(b, "Conv", "c", (const char *[]){"U", "W", "B", NULL},
                                  (const char *[]){pc->relu ? "C" : "Y", NULL});
    if (pc->auto_pad)
        attr_str(b, c, "auto_pad", pc->auto_pad);
    else
        bld_attr_ints(b, c, "pads", (int64_t *)pc->pads, 4);
    bld_attr_ints(b, c, "strides", (int64_t *)pc->strides, 2);
    bld_attr_int(b, c, "group", pc->group);
    if (pc->relu)
        bld_node(b, "Relu", "a", (const char *[]){"C", NULL}, (const char *[]){"Y", NULL});
}

/* Nodes of m folded into another at load. */
static int absorbed(const onnx_model *m)
{
    int k = 0;
    for (int i = 0; i < m->n_nodes; i++)
        k += m->nodes[i].absorbed;
    return k;
}

static int last_absorbed; /* absorbed() of the model run_pair loaded last */

/* Load and run the pair on x [n][ic][h][w]; *y is new (free()), *dims its shape. */
static void run_pair(const pair_case *pc, int unfused, int64_t ic, int64_t oc, const float *w,
                     const float *bias, const onnx_tensor *x, float **y, int64_t *dims)
{
    float scales[4] = {1, 1, pc->sy, pc->sx};
    int64_t sizes[4] = {x->dims[0], x->dims[1], (int64_t)(x->dims[2] * pc->sy),
                        (int64_t)(x->dims[3] * pc->sx)};
    bld b;
    onnx_model *m = NULL;
    onnx_result *r = NULL;
    md_err err;
    if (unfused)
        setenv("MODELD_ONNX_NO_UPCONV", "1", 1);
    build_pair(&b, pc, ic, oc, w, bias, scales, sizes);
    int rc = bld_load(&b, &m, &err);
    unsetenv("MODELD_ONNX_NO_UPCONV");
    if (rc != MD_OK)
        print_error("load: %s\n", err.msg);
    assert_int_equal(rc, MD_OK);
    last_absorbed = absorbed(m);
    for (int rep = 0; rep < 2; rep++) { /* the recording run, then the planned one */
        onnx_result_free(r);
        r = NULL;
        rc = onnx_run(m, x, 1, NULL, &r, &err);
        if (rc != MD_OK)
            print_error("run: %s\n", err.msg);
        assert_int_equal(rc, MD_OK);
    }
    const onnx_tensor *t = onnx_result_output(r, 0);
    assert_int_equal(t->rank, 4);
    memcpy(dims, t->dims, 4 * sizeof(int64_t));
    size_t n = (size_t)onnx_tensor_numel(t);
    *y = malloc(n * sizeof(float));
    assert_non_null(*y);
    memcpy(*y, t->data, n * sizeof(float));
    onnx_result_free(r);
    onnx_model_free(m);
}

/* Fused and unfused runs of pc agree; when want_ref, both also equal the reference. fused:
 * whether the Resize must have absorbed the Conv (unfused, the Conv absorbs its Relu only). */
static void check_pair(const pair_case *pc, int want_ref, int fused_ok, const char *what)
{
    int64_t ic = 4, oc = pc->group == 2 ? 4 : 3, H = 5, W = 6;
    size_t nw = (size_t)(oc * (ic / pc->group) * pc->k * pc->k);
    float *w = rand_buf(nw), *bias = rand_buf((size_t)oc), *xv = rand_buf((size_t)(ic * H * W));
    onnx_tensor x = {.dtype = ONNX_FLOAT, .rank = 4, .dims = {1, ic, H, W}, .data = xv};
    float *fused, *plain;
    int64_t fd[4], pd[4];
    run_pair(pc, 0, ic, oc, w, bias, &x, &fused, fd);
    assert_int_equal(last_absorbed, (fused_ok ? 1 : 0) + pc->relu);
    run_pair(pc, 1, ic, oc, w, bias, &x, &plain, pd);
    assert_int_equal(last_absorbed, pc->relu);
    assert_memory_equal(fd, pd, sizeof fd);
    size_t n = (size_t)(fd[0] * fd[1] * fd[2] * fd[3]);
    assert_close(fused, plain, n, what);
    if (want_ref) {
        onnx_kupconv_geom g = {.n = 1,
                               .ic = ic,
                               .oc = oc,
                               .in = {H, W},
                               .scale = {(int64_t)pc->sy, (int64_t)pc->sx},
                               .k = {pc->k, pc->k},
                               .stride = {pc->strides[0], pc->strides[1]},
                               .dil = {1, 1},
                               .pad_begin = {pc->pads[0], pc->pads[1]},
                               .pad_end = {pc->pads[2], pc->pads[3]},
                               .has_bias = 1};
        g.act.kind = pc->relu ? ONNX_KACT_RELU : ONNX_KACT_NONE;
        set_out(&g);
        assert_int_equal(g.out[0], fd[2]);
        assert_int_equal(g.out[1], fd[3]);
        float *want = malloc(n * sizeof(float));
        ref_upconv(&g, xv, w, bias, want);
        assert_close(fused, want, n, what);
        free(want);
    }
    free(w);
    free(bias);
    free(xv);
    free(fused);
    free(plain);
}

/* The pair most cases start from: scale s on both axes, nearest_mode floor, asymmetric
 * coordinates, a k x k kernel of group 1, unit strides and pad on every side. */
static pair_case floor_pair(float s, int64_t k, int64_t pad)
{
    return (pair_case){.sy = s,
                       .sx = s,
                       .nearest = "floor",
                       .coord = "asymmetric",
                       .k = k,
                       .group = 1,
                       .pads = {pad, pad, pad, pad},
                       .strides = {1, 1}};
}

static void test_engine_fused_pairs(void **state)
{
    (void)state;
    pair_case pc = floor_pair(8, 3, 1);
    check_pair(&pc, 1, 1, "x8 pad 1");
    pc.sy = 2;
    pc.sx = 3;
    pc.relu = 1;
    check_pair(&pc, 1, 1, "x2/x3 relu");
    pc = floor_pair(4, 2, 0);
    pc.pads[1] = pc.pads[2] = 1;
    pc.strides[0] = 2;
    check_pair(&pc, 1, 1, "x4 k2 stride 2 asymmetric pads");
    pc = floor_pair(3, 3, 0);
    check_pair(&pc, 1, 1, "x3 valid");
}

/* auto_pad SAME_UPPER / SAME_LOWER with an even kernel: pads decided from the upsampled size. */
static void test_engine_fused_autopad(void **state)
{
    (void)state;
    static const char *const modes[] = {"SAME_UPPER", "SAME_LOWER"};
    for (int i = 0; i < 2; i++) {
        pair_case pc = floor_pair(2, 4, 0);
        pc.auto_pad = modes[i];
        check_pair(&pc, 0, 1, modes[i]);
    }
}

/* Pairs the fusion must not take: their fused result would differ (or not exist). */
static void test_engine_not_fused(void **state)
{
    (void)state;
    pair_case pc = floor_pair(3, 3, 1);
    pc.nearest = "round_prefer_floor";
    check_pair(&pc, 0, 0, "round_prefer_floor");
    pc.nearest = "floor";
    pc.coord = "half_pixel";
    check_pair(&pc, 0, 0, "half_pixel");
    pc.coord = "asymmetric";
    pc.sy = pc.sx = 1.5f;
    check_pair(&pc, 0, 0, "scale 1.5");
    pc.sy = pc.sx = 2;
    pc.use_sizes = 1;
    check_pair(&pc, 0, 0, "sizes");
    pc.use_sizes = 0;
    pc.group = 2;
    check_pair(&pc, 0, 0, "group 2");
}

/* A fused pair still checks its input: wrong channel count and wrong rank fail the run. */
static void test_engine_fused_bad_input(void **state)
{
    (void)state;
    pair_case pc = floor_pair(2, 3, 1);
    float w[3 * 4 * 9] = {0}, bias[3] = {0}, scales[4] = {1, 1, 2, 2}, xv[5 * 16] = {0};
    int64_t sizes[4] = {0};
    bld b;
    onnx_model *m = NULL;
    onnx_result *r = NULL;
    md_err err;
    build_pair(&b, &pc, 4, 3, w, bias, scales, sizes);
    assert_int_equal(bld_load(&b, &m, &err), MD_OK);
    onnx_tensor x = {.dtype = ONNX_FLOAT, .rank = 4, .dims = {1, 5, 4, 4}, .data = xv};
    assert_int_equal(onnx_run(m, &x, 1, NULL, &r, &err), MD_E_INVALID_PARAM);
    assert_non_null(strstr(err.msg, "input channels"));
    x.dims[1] = 4;
    x.dims[0] = 0;
    assert_int_equal(onnx_run(m, &x, 1, NULL, &r, &err), MD_OK);
    assert_int_equal(onnx_result_output(r, 0)->dims[0], 0);
    assert_int_equal(onnx_result_output(r, 0)->dims[2], 8);
    onnx_result_free(r);
    onnx_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_geometries),  cmocka_unit_test(test_kernel_bad_geometry),
        cmocka_unit_test(test_engine_fused_pairs), cmocka_unit_test(test_engine_fused_autopad),
        cmocka_unit_test(test_engine_not_fused),   cmocka_unit_test(test_engine_fused_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
