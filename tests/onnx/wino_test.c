/* wino_test.c - our own Winograd F(4,3) 3x3 convolution (kernels/wino.c) and its selection in
 * the convolution chains (kernels/conv.c, env MODELD_ONNX_CONV3X3).
 *
 * The reference is the convolution from its definition in double. Winograd reorders the sums,
 * so the bound scales with the sum of |w * x| over each output's taps (the size of the terms
 * that cancel), not with the output: |got - want| <= 1e-5 * sum|w x| + 1e-5. A wrong transform
 * matrix, tile offset, padding rule or edge tile is off by the size of whole terms, far above it.
 * Cases cover every padding the nets use (1, and 0 for 'valid'), asymmetric pads, channel counts
 * that are not multiples of 4 or 8, images smaller than one tile, outputs whose last tile has 1
 * column or row, blocks that cut a tile row (wide images), batches, two threads, each fused
 * activation, 5x5 kernels, and the real weights of an ESRGAN-thick convolution
 * (tests/fixtures/onnx, UpscalerJS, MIT). Skipped on CPUs without AVX2 + FMA, where the kernel is
 * never chosen.
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

#include "base/buf.h"
#include "onnx/kernels/kernels.h"
#include "onnx/npy.h"
#include "onnx/onnx.h"

#define ONNX_TEST_SEED 4343u
#include "onnx/onnx_test_rand.h"

static void *scratch_alloc(size_t n)
{
    void *p = aligned_alloc(64, (n + 63) / 64 * 64 + 64);
    assert_non_null(p);
    return p;
}

static onnx_kconv_geom geom(int64_t n, int64_t ic, int64_t oc, int64_t h, int64_t w,
                            const int64_t pads[4])
{
    onnx_kconv_geom g;
    memset(&g, 0, sizeof g);
    g.nsp = 2;
    g.n = n;
    g.ic = ic;
    g.oc = oc;
    g.group = 1;
    g.has_bias = 1;
    g.in[0] = h;
    g.in[1] = w;
    for (int d = 0; d < 2; d++) {
        g.k[d] = 3;
        g.stride[d] = g.dil[d] = 1;
        g.pad_begin[d] = pads[d];
        g.pad_end[d] = pads[2 + d];
        g.out[d] = g.in[d] + pads[d] + pads[2 + d] - 2;
    }
    return g;
}

/* The same with a k x k kernel (5x5: four 3x3 sub-kernels in wino.c). */
static onnx_kconv_geom geom_k(int64_t k, int64_t n, int64_t ic, int64_t oc, int64_t h, int64_t w,
                              const int64_t pads[4])
{
    onnx_kconv_geom g = geom(n, ic, oc, h, w, pads);
    for (int d = 0; d < 2; d++) {
        g.k[d] = k;
        g.out[d] = g.in[d] + pads[d] + pads[2 + d] - k + 1;
    }
    return g;
}

static size_t count_in(const onnx_kconv_geom *g)
{
    return (size_t)(g->n * g->ic * g->in[0] * g->in[1]);
}

static size_t count_out(const onnx_kconv_geom *g)
{
    return (size_t)(g->n * g->oc * g->out[0] * g->out[1]);
}

static float ref_act(const onnx_kact *a, double v)
{
    switch (a->kind) {
    case ONNX_KACT_RELU:
        return v > 0 ? (float)v : 0.0f;
    case ONNX_KACT_LEAKY:
        return v >= 0 ? (float)v : (float)(a->alpha * v);
    case ONNX_KACT_CLIP:
        return (float)(v < a->alpha ? a->alpha : v > a->beta ? a->beta : v);
    case ONNX_KACT_SIGMOID:
        return (float)(1.0 / (1.0 + exp(-v)));
    case ONNX_KACT_TANH:
        return (float)tanh(v);
    default:
        return (float)v;
    }
}

/* The definition in double: want[] and the tolerance of each output (see the file comment). */
static void ref_conv(const onnx_kconv_geom *g, const float *x, const float *w, const float *b,
                     float *want, float *tol)
{
    int64_t H = g->in[0], W = g->in[1], OH = g->out[0], OW = g->out[1], K = g->k[0];
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t o = 0; o < g->oc; o++)
            for (int64_t oy = 0; oy < OH; oy++)
                for (int64_t ox = 0; ox < OW; ox++) {
                    double acc = g->has_bias ? b[o] : 0.0, mag = fabs(acc);
                    for (int64_t c = 0; c < g->ic; c++)
                        for (int64_t ky = 0; ky < K; ky++)
                            for (int64_t kx = 0; kx < K; kx++) {
                                int64_t iy = oy - g->pad_begin[0] + ky;
                                int64_t ix = ox - g->pad_begin[1] + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                    continue;
                                double t = (double)x[((n * g->ic + c) * H + iy) * W + ix] *
                                           w[((o * g->ic + c) * K + ky) * K + kx];
                                acc += t;
                                mag += fabs(t);
                            }
                    size_t i = (size_t)(((n * g->oc + o) * OH + oy) * OW + ox);
                    want[i] = ref_act(&g->act, acc);
                    tol[i] = (float)(1e-5 * mag + 1e-5);
                }
}

static void assert_within(const float *got, const float *want, const float *tol, size_t n,
                          const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(got[i] - want[i]) <= tol[i])) {
            print_error("%s: element %zu: got %.7g want %.7g (tolerance %.3g)\n", what, i, got[i],
                        want[i], tol[i]);
            fail();
        }
}

/* Run the kernel directly (nthr threads) and compare with the reference. */
static void check_wino(const onnx_kconv_geom *g, const float *x, const float *w, const float *b,
                       int nthr, const char *what)
{
    md_err e;
    onnx__wino *z = NULL;
    size_t ny = count_out(g);
    float *want = malloc(ny * sizeof(float)), *tol = malloc(ny * sizeof(float));
    float *y = malloc(ny * sizeof(float));
    assert_non_null(want);
    assert_non_null(tol);
    assert_non_null(y);
    ref_conv(g, x, w, b, want, tol);
    assert_int_equal(onnx__wino_new(g, w, b, nthr, &z, &e), MD_OK);
    void *s = scratch_alloc(onnx__wino_scratch(z));
    for (int rep = 0; rep < 2; rep++) { /* the scratch holds the last run's values: no effect */
        memset(y, 0xff, ny * sizeof(float));
        onnx__wino_run(z, x, y, s);
        assert_within(y, want, tol, ny, what);
    }
    free(s);
    onnx__wino_free(z);
    free(y);
    free(tol);
    free(want);
}

static void check_random(const onnx_kconv_geom *g, int nthr, const char *what)
{
    float *x = rand_buf(count_in(g)), *w = rand_buf(onnx__conv_weight_count(g));
    float *b = rand_buf((size_t)g->oc);
    check_wino(g, x, w, b, nthr, what);
    free(x);
    free(w);
    free(b);
}

static int have_cpu(void)
{
    if (onnx__wino_cpu_ok())
        return 1;
    print_message("no AVX2 + FMA on this CPU: our Winograd is never chosen here\n");
    return 0;
}

static void test_shapes_and_pads(void **state)
{
    (void)state;
    if (!have_cpu())
        skip();
    static const int64_t same[4] = {1, 1, 1, 1}, valid[4] = {0, 0, 0, 0}, asym[4] = {2, 0, 1, 2},
                         one_side[4] = {0, 1, 0, 1};
    onnx_kconv_geom g = geom(1, 16, 16, 32, 32, same);
    check_random(&g, 1, "16->16 32x32 same");
    g = geom(1, 13, 7, 11, 9, same);
    check_random(&g, 1, "13->7 11x9 (channels not multiples of 4 or 8, edge tiles)");
    g = geom(1, 5, 3, 9, 13, valid);
    check_random(&g, 1, "5->3 valid: 7x11 out (last tiles 3 wide and 3 high)");
    g = geom(1, 3, 12, 4, 6, asym);
    check_random(&g, 1, "asymmetric pads");
    g = geom(1, 9, 17, 6, 7, one_side);
    check_random(&g, 1, "pads at the end only");
    g = geom(1, 8, 8, 1, 1, same);
    check_random(&g, 1, "1x1 image");
    g = geom(1, 4, 5, 2, 3, same);
    check_random(&g, 1, "2x3 image, smaller than a tile");
    g = geom(1, 6, 4, 17, 21, same);
    check_random(&g, 1, "17x21: last tile row and column 1 wide");
    g = geom(2, 7, 9, 10, 12, same);
    g.has_bias = 0;
    check_random(&g, 1, "batch of 2, no bias");
}

/* 5x5 kernels: four shifted 3x3 sub-kernels summed in the transform domain. */
static void test_5x5(void **state)
{
    (void)state;
    if (!have_cpu())
        skip();
    static const int64_t two[4] = {2, 2, 2, 2}, valid[4] = {0, 0, 0, 0}, asym[4] = {1, 3, 2, 0};
    onnx_kconv_geom g = geom_k(5, 1, 16, 16, 30, 34, two);
    check_random(&g, 1, "5x5 16->16 pad 2");
    g = geom_k(5, 1, 7, 5, 9, 11, valid);
    check_random(&g, 1, "5x5 valid: 5x7 out");
    g = geom_k(5, 2, 6, 9, 8, 5, asym);
    check_random(&g, 1, "5x5 asymmetric pads, batch of 2");
    g = geom_k(5, 1, 3, 4, 2, 1, two);
    check_random(&g, 1, "5x5 on a 2x1 image");
    g = geom_k(5, 1, 64, 40, 7, 300, two);
    g.act = (onnx_kact){ONNX_KACT_RELU, 0, 0};
    check_random(&g, 2, "5x5 64->40, rows cut into blocks, two threads");
}

/* Wide images: a block holds part of a tile row, and tile rows are cut into several blocks. */
static void test_blocks_cut_rows(void **state)
{
    (void)state;
    if (!have_cpu())
        skip();
    static const int64_t same[4] = {1, 1, 1, 1};
    onnx_kconv_geom g = geom(1, 64, 64, 6, 250, same);
    check_random(&g, 1, "64->64 6x250 (rows cut into blocks)");
    g = geom(1, 96, 32, 9, 700, same);
    check_random(&g, 2, "96->32 9x700, two threads");
    g = geom(2, 24, 20, 37, 41, same);
    check_random(&g, 2, "batch of 2, two threads");
}

static void test_activations(void **state)
{
    (void)state;
    if (!have_cpu())
        skip();
    static const int64_t same[4] = {1, 1, 1, 1};
    static const onnx_kact acts[] = {
        {ONNX_KACT_RELU, 0, 0},    {ONNX_KACT_LEAKY, 0.1f, 0}, {ONNX_KACT_CLIP, -0.5f, 0.25f},
        {ONNX_KACT_SIGMOID, 0, 0}, {ONNX_KACT_TANH, 0, 0},
    };
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        onnx_kconv_geom g = geom(1, 10, 6, 9, 14, same);
        g.act = acts[i];
        check_random(&g, 1, "activation");
    }
}

/* The fixture's weights, as the converted ESRGAN-thick network holds them (32 x 64 x 3 x 3),
 * on an input in the range of that network's activations. */
static onnx_tensor *load_npy(const char *name)
{
    char path[1024];
    const char *src = getenv("MODELD_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/fixtures/onnx/%s", src ? src : ".", name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char bytes[1 << 17];
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    onnx_tensor *t = NULL;
    md_err e;
    assert_int_equal(onnx_npy_parse(bytes, n, 0, &t, &e), MD_OK);
    assert_int_equal(t->dtype, ONNX_FLOAT);
    return t;
}

static void test_real_weights(void **state)
{
    (void)state;
    if (!have_cpu())
        skip();
    onnx_tensor *w = load_npy("esrgan_thick_conv_w.npy"), *b = load_npy("esrgan_thick_conv_b.npy");
    assert_int_equal(w->rank, 4);
    static const int64_t same[4] = {1, 1, 1, 1};
    onnx_kconv_geom g = geom(1, w->dims[1], w->dims[0], 36, 29, same);
    assert_int_equal(b->dims[0], g.oc);
    g.act = (onnx_kact){ONNX_KACT_RELU, 0, 0};
    float *x = rand_buf(count_in(&g));
    for (size_t i = 0; i < count_in(&g); i++)
        x[i] = (x[i] + 1.0f) * 8.0f; /* 0..16, post-ReLU activations of the 0..1 RRDN */
    check_wino(&g, x, w->data, b->data, 1, "ESRGAN-thick weights");
    free(x);
    onnx_tensor_free(w);
    onnx_tensor_free(b);
}

/* Through the chains of conv.c: MODELD_ONNX_CONV3X3 picks the implementation; a chain mixes our
 * stages with oneDNN ones (a blocked 1x1 output is reordered to plain NCHW first). */
static void run_chain(int nst, const onnx_kconv_geom *g, const float *const *w,
                      const float *const *b, const float *x, float *y, int *wino_stages)
{
    md_err e;
    onnx__conv *c = NULL;
    assert_int_equal(onnx__conv_new(nst, g, w, b, &c, &e), MD_OK);
    void *s = scratch_alloc(onnx__conv_scratch(c));
    assert_int_equal(onnx__conv_run(c, x, NULL, NULL, y, s, &e), MD_OK);
    *wino_stages = onnx__conv_wino_stages(c);
    free(s);
    onnx__conv_free(c);
}

static void test_chain_selection(void **state)
{
    (void)state;
    if (!have_cpu())
        skip();
    static const int64_t same[4] = {1, 1, 1, 1}, none[4] = {0, 0, 0, 0};
    onnx_kconv_geom g[3];
    g[0] = geom(1, 8, 32, 20, 24, none); /* a 1x1 conv: oneDNN, blocked output */
    g[0].k[0] = g[0].k[1] = 1;
    g[0].out[0] = 20;
    g[0].out[1] = 24;
    g[1] = geom(1, 32, 24, 20, 24, same);
    g[1].act = (onnx_kact){ONNX_KACT_RELU, 0, 0};
    g[2] = geom(1, 24, 16, 20, 24, same);
    float *w[3], *b[3], *x = rand_buf(count_in(&g[0]));
    for (int i = 0; i < 3; i++) {
        w[i] = rand_buf(onnx__conv_weight_count(&g[i]));
        b[i] = rand_buf((size_t)g[i].oc);
    }
    size_t ny = count_out(&g[2]);
    float *want = malloc(ny * sizeof(float)), *got = malloc(ny * sizeof(float));
    int stages;
    setenv("MODELD_ONNX_CONV3X3", "onednn", 1);
    run_chain(3, g, (const float *const *)w, (const float *const *)b, x, want, &stages);
    assert_int_equal(stages, 0);
    setenv("MODELD_ONNX_CONV3X3", "winograd", 1);
    run_chain(3, g, (const float *const *)w, (const float *const *)b, x, got, &stages);
    assert_int_equal(stages, 2);
    for (size_t i = 0; i < ny; i++)
        if (!(fabsf(got[i] - want[i]) <= 1e-3f + 1e-4f * fabsf(want[i]))) {
            print_error("chain: element %zu: winograd %.7g onednn %.7g\n", i, got[i], want[i]);
            fail();
        }
    /* nowino turns every Winograd off, ours included */
    setenv("MODELD_ONNX_CONV_POLICY", "nowino", 1);
    run_chain(3, g, (const float *const *)w, (const float *const *)b, x, got, &stages);
    assert_int_equal(stages, 0);
    unsetenv("MODELD_ONNX_CONV_POLICY");
    unsetenv("MODELD_ONNX_CONV3X3");
    for (int i = 0; i < 3; i++) {
        free(w[i]);
        free(b[i]);
    }
    free(x);
    free(want);
    free(got);
}

/* Geometries the kernel refuses: it is for 3x3, stride 1, no dilation, no groups. */
static void test_refused(void **state)
{
    (void)state;
    static const int64_t same[4] = {1, 1, 1, 1};
    onnx_kconv_geom g = geom(1, 4, 4, 8, 8, same);
    assert_true(onnx__wino_geom_ok(&g));
    g.stride[0] = 2;
    assert_false(onnx__wino_geom_ok(&g));
    g = geom(1, 4, 4, 8, 8, same);
    g.group = 2;
    assert_false(onnx__wino_geom_ok(&g));
    g = geom(1, 4, 4, 8, 8, same);
    g.dil[1] = 2;
    assert_false(onnx__wino_geom_ok(&g));
    g = geom(1, 4, 4, 8, 8, same);
    g.k[0] = 5;
    assert_false(onnx__wino_geom_ok(&g)); /* 5x3 */
    g.k[1] = 5;
    assert_true(onnx__wino_geom_ok(&g));
    g.k[0] = g.k[1] = 4;
    assert_false(onnx__wino_geom_ok(&g));
    g = geom(1, 4, 4, 8, 8, same);
    g.transpose = 1;
    assert_false(onnx__wino_geom_ok(&g));
    onnx__wino *z = NULL;
    md_err e;
    float w[16 * 9 * 2] = {0};
    g = geom(1, 4, 4, 8, 8, same);
    g.k[0] = 1;
    assert_int_equal(onnx__wino_new(&g, w, NULL, 1, &z, &e), MD_E_UNSUPPORTED);
    assert_null(z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_and_pads), cmocka_unit_test(test_5x5),
        cmocka_unit_test(test_blocks_cut_rows), cmocka_unit_test(test_activations),
        cmocka_unit_test(test_real_weights),    cmocka_unit_test(test_chain_selection),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
