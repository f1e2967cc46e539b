/* kernels_test.c - the conv / gemm / pool / batchnorm kernels against naive reference loops,
 * and the ops on top of them run through the engine (fusion into chains, bad shapes).
 *
 * The references below are written independently of src/onnx/kernels (straight from the ONNX
 * operator definitions, one output at a time, with explicit bound checks), so an indexing slip in
 * a kernel or a wrong oneDNN layout shows up as a value mismatch. Every convolution geometry runs
 * three ways: oneDNN with constant weights, oneDNN with run-time weights, and the direct-loop
 * fallback (MODELD_ONNX_NO_DNNL=1).
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "onnx/kernels/kernels.h"
#include "onnx/onnx.h"
#include "onnx/onnx_builder.h"

#define ONNX_TEST_SEED 12345u
#include "onnx/onnx_test_rand.h"

/* ---- helpers ------------------------------------------------------------------------------- */

static void *scratch_alloc(size_t n)
{
    void *p = aligned_alloc(64, (n + 63) / 64 * 64 + 64);
    assert_non_null(p);
    return p;
}

/* ONNX's tolerance for conformance: |got - want| <= 1e-7 + 1e-3 |want|, slightly relaxed for
 * long float sums. */
static void assert_close(const float *got, const float *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        float tol = 1e-4f + 1e-3f * fabsf(want[i]);
        if (!(fabsf(got[i] - want[i]) <= tol)) {
            print_error("%s: element %zu: got %.7g want %.7g\n", what, i, got[i], want[i]);
            fail();
        }
    }
}

static float ref_act(const onnx_kact *a, float v)
{
    switch (a->kind) {
    case ONNX_KACT_RELU: return v > 0 ? v : 0;
    case ONNX_KACT_LEAKY: return v >= 0 ? v : a->alpha * v;
    case ONNX_KACT_CLIP: return v < a->alpha ? a->alpha : v > a->beta ? a->beta : v;
    case ONNX_KACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    case ONNX_KACT_TANH: return tanhf(v);
    default: return v;
    }
}

/* ---- reference convolution (any rank, from the definition) ---------------------------------- */

static int64_t prod(const int64_t *d, int n)
{
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        p *= d[i];
    return p;
}

/* Unflatten a spatial offset into coordinates. */
static void unflat(int64_t off, const int64_t *dims, int n, int64_t *c)
{
    for (int i = n - 1; i >= 0; i--) {
        c[i] = off % dims[i];
        off /= dims[i];
    }
}

static void ref_conv(const onnx_kconv_geom *g, const float *x, const float *w, const float *b,
                     float *y)
{
    int64_t isz = prod(g->in, g->nsp), osz = prod(g->out, g->nsp), ksz = prod(g->k, g->nsp);
    int64_t icg = g->ic / g->group, ocg = g->oc / g->group;
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t oc = 0; oc < g->oc; oc++)
            for (int64_t op = 0; op < osz; op++) {
                int64_t oco[3], gr = oc / ocg;
                unflat(op, g->out, g->nsp, oco);
                double acc = g->has_bias ? b[oc] : 0.0;
                for (int64_t c = 0; c < icg; c++)
                    for (int64_t kp = 0; kp < ksz; kp++) {
                        int64_t kc[3], ip = 0, ok = 1;
                        unflat(kp, g->k, g->nsp, kc);
                        for (int d = 0; d < g->nsp; d++) {
                            int64_t i = oco[d] * g->stride[d] - g->pad_begin[d] + kc[d] * g->dil[d];
                            ok &= i >= 0 && i < g->in[d];
                            ip = ip * g->in[d] + i;
                        }
                        if (ok)
                            acc += (double)x[(n * g->ic + gr * icg + c) * isz + ip] *
                                   w[(oc * icg + c) * ksz + kp];
                    }
                y[(n * g->oc + oc) * osz + op] = ref_act(&g->act, (float)acc);
            }
}

/* ConvTranspose from its definition: y[o] = sum over inputs i and taps k with
 * o = i*stride - pad_begin + k*dil. W is [ic][oc/group][k]. */
static void ref_deconv(const onnx_kconv_geom *g, const float *x, const float *w, const float *b,
                       float *y)
{
    int64_t isz = prod(g->in, g->nsp), osz = prod(g->out, g->nsp), ksz = prod(g->k, g->nsp);
    int64_t icg = g->ic / g->group, ocg = g->oc / g->group;
    double *acc = calloc((size_t)(g->n * g->oc * osz), sizeof(double));
    assert_non_null(acc);
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t ic = 0; ic < g->ic; ic++)
            for (int64_t ip = 0; ip < isz; ip++)
                for (int64_t o = 0; o < ocg; o++)
                    for (int64_t kp = 0; kp < ksz; kp++) {
                        int64_t ic_c[3], kc[3], opos = 0, ok = 1, gr = ic / icg;
                        unflat(ip, g->in, g->nsp, ic_c);
                        unflat(kp, g->k, g->nsp, kc);
                        for (int d = 0; d < g->nsp; d++) {
                            int64_t p =
                                ic_c[d] * g->stride[d] - g->pad_begin[d] + kc[d] * g->dil[d];
                            ok &= p >= 0 && p < g->out[d];
                            opos = opos * g->out[d] + p;
                        }
                        if (ok)
                            acc[(n * g->oc + gr * ocg + o) * osz + opos] +=
                                (double)x[(n * g->ic + ic) * isz + ip] *
                                w[(ic * ocg + o) * ksz + kp];
                    }
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t oc = 0; oc < g->oc; oc++)
            for (int64_t op = 0; op < osz; op++) {
                size_t i = (size_t)((n * g->oc + oc) * osz + op);
                y[i] = ref_act(&g->act, (float)(acc[i] + (g->has_bias ? b[oc] : 0.0)));
            }
    free(acc);
}

/* Fill out[] from the other fields (the ONNX output-size formulas). */
static void set_out(onnx_kconv_geom *g)
{
    for (int i = 0; i < g->nsp; i++) {
        int64_t ek = (g->k[i] - 1) * g->dil[i] + 1;
        g->out[i] = g->transpose
            ? g->stride[i] * (g->in[i] - 1) + ek - g->pad_begin[i] - g->pad_end[i]
            : (g->in[i] + g->pad_begin[i] + g->pad_end[i] - ek) / g->stride[i] + 1;
    }
}

static onnx_kconv_geom geom2d(int64_t n, int64_t ic, int64_t oc, int64_t h, int64_t w, int64_t k,
                              int64_t s, int64_t d, int64_t pb, int64_t pe, int64_t group)
{
    onnx_kconv_geom g = {.nsp = 2, .n = n, .ic = ic, .oc = oc, .group = group, .has_bias = 1};
    g.in[0] = h;
    g.in[1] = w;
    for (int i = 0; i < 2; i++) {
        g.k[i] = k;
        g.stride[i] = s;
        g.dil[i] = d;
        g.pad_begin[i] = pb;
        g.pad_end[i] = pe;
    }
    set_out(&g);
    return g;
}

static size_t count_out(const onnx_kconv_geom *g)
{
    return (size_t)(g->n * g->oc * prod(g->out, g->nsp));
}

static size_t count_in(const onnx_kconv_geom *g)
{
    return (size_t)(g->n * g->ic * prod(g->in, g->nsp));
}

/* Run geometry g through the kernel (constant or run-time weights) and compare to the reference. */
static void check_conv_mode(const onnx_kconv_geom *g, const float *x, const float *w,
                            const float *b, const float *want, int runtime, const char *what)
{
    onnx__conv *c = NULL;
    md_err e;
    const float *wl[1] = {w}, *bl[1] = {b};
    assert_int_equal(onnx__conv_new(1, g, runtime ? NULL : wl, runtime ? NULL : bl, &c, &e), 0);
    size_t n = count_out(g);
    float *y = malloc(n * sizeof(float));
    void *s = scratch_alloc(onnx__conv_scratch(c));
    /* twice: the second run reuses the pooled execution context */
    for (int rep = 0; rep < 2; rep++) {
        memset(y, 0xff, n * sizeof(float));
        assert_int_equal(onnx__conv_run(c, x, runtime ? w : NULL, runtime ? b : NULL, y, s, &e), 0);
        assert_close(y, want, n, what);
    }
    free(s);
    free(y);
    onnx__conv_free(c);
}

/* The three paths of one geometry: oneDNN const weights, oneDNN run-time weights, direct loops. */
static void check_conv(const onnx_kconv_geom *g, const char *what)
{
    md_err e;
    assert_int_equal(onnx__conv_check(g, &e), 0);
    float *x = rand_buf(count_in(g)), *w = rand_buf(onnx__conv_weight_count(g));
    float *b = rand_buf((size_t)g->oc), *want = malloc(count_out(g) * sizeof(float));
    (g->transpose ? ref_deconv : ref_conv)(g, x, w, b, want);
    check_conv_mode(g, x, w, b, want, 0, what);
    check_conv_mode(g, x, w, b, want, 1, what);
    setenv("MODELD_ONNX_NO_DNNL", "1", 1);
    check_conv_mode(g, x, w, b, want, 0, what);
    unsetenv("MODELD_ONNX_NO_DNNL");
    free(x);
    free(w);
    free(b);
    free(want);
}

/* ---- convolution tests ----------------------------------------------------------------------- */

static void test_conv2d_shapes(void **state)
{
    (void)state;
    onnx_kconv_geom g = geom2d(1, 3, 16, 12, 12, 3, 1, 1, 1, 1, 1);
    check_conv(&g, "3->16 3x3 pad 1");
    g = geom2d(2, 16, 32, 9, 11, 3, 2, 1, 0, 1, 1);
    g.act = (onnx_kact){ONNX_KACT_RELU, 0, 0};
    check_conv(&g, "16->32 stride 2 asym pad + relu");
    g = geom2d(1, 8, 12, 10, 10, 3, 1, 2, 2, 2, 1);
    g.act = (onnx_kact){ONNX_KACT_LEAKY, 0.1f, 0};
    check_conv(&g, "dilated 2 + leaky");
    g = geom2d(1, 32, 32, 8, 8, 3, 1, 1, 1, 1, 32);
    g.act = (onnx_kact){ONNX_KACT_CLIP, 0.0f, 0.5f};
    check_conv(&g, "depthwise + clip");
    g = geom2d(1, 12, 6, 7, 7, 1, 1, 1, 0, 0, 3);
    g.has_bias = 0;
    g.act = (onnx_kact){ONNX_KACT_SIGMOID, 0, 0};
    check_conv(&g, "grouped 1x1 no bias + sigmoid");
    g = geom2d(1, 5, 7, 6, 5, 5, 3, 1, 2, 0, 1);
    g.act = (onnx_kact){ONNX_KACT_TANH, 0, 0};
    check_conv(&g, "5x5 stride 3 + tanh");
}

/* Large 3x3 convolutions take oneDNN's Winograd path (on AVX-512; tanh cannot be fused into it
 * and runs as a separate step, relu is fused), or our own (kernels/wino.c): both are run. */
static void test_conv_winograd(void **state)
{
    (void)state;
    static const char *const impl[] = {"onednn", "winograd"};
    for (int i = 0; i < 2; i++) {
        setenv("MODELD_ONNX_CONV3X3", impl[i], 1);
        onnx_kconv_geom g = geom2d(1, 16, 16, 64, 64, 3, 1, 1, 1, 1, 1);
        g.act = (onnx_kact){ONNX_KACT_TANH, 0, 0};
        check_conv(&g, "winograd + tanh");
        g = geom2d(1, 32, 12, 64, 66, 3, 1, 1, 1, 1, 1);
        g.act = (onnx_kact){ONNX_KACT_RELU, 0, 0};
        check_conv(&g, "winograd + relu");
    }
    unsetenv("MODELD_ONNX_CONV3X3");
}

static void test_conv1d_3d(void **state)
{
    (void)state;
    onnx_kconv_geom g = {.nsp = 1, .n = 2, .ic = 4, .oc = 6, .group = 2, .has_bias = 1,
                         .in = {17}, .k = {4}, .stride = {2}, .dil = {1}, .pad_begin = {1},
                         .pad_end = {2}};
    set_out(&g);
    check_conv(&g, "conv1d");
    onnx_kconv_geom g3 = {.nsp = 3, .n = 1, .ic = 3, .oc = 4, .group = 1, .has_bias = 1,
                          .in = {5, 6, 7}, .k = {3, 2, 3}, .stride = {1, 2, 1},
                          .dil = {1, 1, 2}, .pad_begin = {1, 0, 1}, .pad_end = {1, 1, 0}};
    set_out(&g3);
    check_conv(&g3, "conv3d");
}

static void test_conv_transpose(void **state)
{
    (void)state;
    onnx_kconv_geom g = geom2d(1, 8, 4, 5, 6, 3, 2, 1, 1, 1, 1);
    g.transpose = 1;
    set_out(&g);
    check_conv(&g, "deconv stride 2 pad 1");
    g = geom2d(2, 4, 6, 4, 4, 3, 2, 2, 0, 0, 2);
    g.transpose = 1;
    g.act = (onnx_kact){ONNX_KACT_RELU, 0, 0};
    set_out(&g);
    check_conv(&g, "grouped dilated deconv + relu");
    /* output_padding 1 beyond a pad_end of 0: pad_end -1, the last row/col gets only the bias */
    g = geom2d(1, 3, 2, 3, 3, 3, 2, 1, 0, -1, 1);
    g.transpose = 1;
    set_out(&g);
    check_conv(&g, "deconv output_padding");
    onnx_kconv_geom g1 = {.transpose = 1, .nsp = 1, .n = 1, .ic = 2, .oc = 3, .group = 1,
                          .has_bias = 0, .in = {5}, .k = {3}, .stride = {1}, .dil = {1}};
    set_out(&g1);
    check_conv(&g1, "deconv1d");
}

/* A chain of three convs run as one object equals the three references in sequence. */
static void test_conv_chain(void **state)
{
    (void)state;
    onnx_kconv_geom g[3];
    g[0] = geom2d(1, 3, 32, 20, 20, 5, 1, 1, 2, 2, 1);
    g[0].act = (onnx_kact){ONNX_KACT_TANH, 0, 0};
    g[1] = geom2d(1, 32, 16, 20, 20, 3, 1, 1, 1, 1, 1);
    g[1].act = (onnx_kact){ONNX_KACT_RELU, 0, 0};
    g[2] = geom2d(1, 16, 12, 20, 20, 3, 1, 1, 1, 1, 1);
    float *x = rand_buf(count_in(&g[0])), *w[3], *b[3], *t[4];
    t[0] = x;
    for (int i = 0; i < 3; i++) {
        w[i] = rand_buf(onnx__conv_weight_count(&g[i]));
        b[i] = rand_buf((size_t)g[i].oc);
        t[i + 1] = malloc(count_out(&g[i]) * sizeof(float));
        ref_conv(&g[i], t[i], w[i], b[i], t[i + 1]);
    }
    for (int mode = 0; mode < 2; mode++) {
        if (mode == 1)
            setenv("MODELD_ONNX_NO_DNNL", "1", 1);
        onnx__conv *c = NULL;
        md_err e;
        assert_int_equal(onnx__conv_new(3, g, (const float *const *)w, (const float *const *)b,
                                        &c, &e), 0);
        assert_int_equal(onnx__conv_uses_dnnl(c), mode == 0);
        float *y = malloc(count_out(&g[2]) * sizeof(float));
        void *s = scratch_alloc(onnx__conv_scratch(c));
        assert_int_equal(onnx__conv_run(c, x, NULL, NULL, y, s, &e), 0);
        assert_close(y, t[3], count_out(&g[2]), "chain");
        free(s);
        free(y);
        onnx__conv_free(c);
    }
    unsetenv("MODELD_ONNX_NO_DNNL");
    for (int i = 0; i < 3; i++) {
        free(w[i]);
        free(b[i]);
        free(t[i + 1]);
    }
    free(x);
}

typedef struct conc_arg {
    const onnx__conv *c;
    const float *x, *want;
    size_t n;
    int ok;
} conc_arg;

static void *conc_worker(void *p)
{
    conc_arg *a = p;
    float *y = malloc(a->n * sizeof(float));
    void *s = scratch_alloc(onnx__conv_scratch(a->c));
    a->ok = 1;
    for (int i = 0; i < 20 && a->ok; i++) {
        md_err e;
        a->ok = onnx__conv_run(a->c, a->x, NULL, NULL, y, s, &e) == 0 &&
                memcmp(y, a->want, a->n * sizeof(float)) == 0;
    }
    free(s);
    free(y);
    return NULL;
}

/* One conv object run by four threads at once gives every thread the single-thread result. */
static void test_conv_concurrent(void **state)
{
    (void)state;
    onnx_kconv_geom g = geom2d(1, 16, 16, 16, 16, 3, 1, 1, 1, 1, 1);
    float *x = rand_buf(count_in(&g)), *w = rand_buf(onnx__conv_weight_count(&g));
    float *b = rand_buf(16), *want = malloc(count_out(&g) * sizeof(float));
    const float *wl[1] = {w}, *bl[1] = {b};
    onnx__conv *c = NULL;
    md_err e;
    assert_int_equal(onnx__conv_new(1, &g, wl, bl, &c, &e), 0);
    void *s = scratch_alloc(onnx__conv_scratch(c));
    assert_int_equal(onnx__conv_run(c, x, NULL, NULL, want, s, &e), 0);
    pthread_t th[4];
    conc_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (conc_arg){c, x, want, count_out(&g), 0};
        assert_int_equal(pthread_create(&th[i], NULL, conc_worker, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(a[i].ok);
    }
    free(s);
    onnx__conv_free(c);
    free(x);
    free(w);
    free(b);
    free(want);
}

static void test_conv_bad_geometry(void **state)
{
    (void)state;
    md_err e;
    onnx_kconv_geom g = geom2d(1, 6, 4, 8, 8, 3, 1, 1, 0, 0, 4);
    assert_int_equal(onnx__conv_check(&g, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "group");
    g = geom2d(1, 4, 4, 8, 8, 3, 1, 1, 0, 0, 1);
    g.out[1] = 7;
    assert_int_equal(onnx__conv_check(&g, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "pads");
    g = geom2d(1, 4, 4, 2, 2, 5, 1, 1, 0, 0, 1);
    assert_int_equal(onnx__conv_check(&g, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "kernel_shape");
    g = geom2d(1, 4, 4, 8, 8, 3, 1, 1, 0, 0, 1);
    g.stride[1] = 0;
    assert_int_equal(onnx__conv_check(&g, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "strides");
    onnx__conv *c = (onnx__conv *)&g; /* must be reset to NULL on failure */
    g = geom2d(1, 4, 4, 8, 8, 3, 1, 1, 0, 0, 1);
    g.dil[0] = 0;
    assert_int_equal(onnx__conv_new(1, &g, NULL, NULL, &c, &e), MD_E_INVALID_PARAM);
    assert_null(c);
    assert_string_equal(e.field, "dilations");
    /* hostile pads: each value is in range, the output (2^60 values) is not */
    g = geom2d(1, 1, 1, 4, 4, 1, 1, 1, (int64_t)1 << 29, (int64_t)1 << 29, 1);
    assert_int_equal(onnx__conv_new(1, &g, NULL, NULL, &c, &e), MD_E_INVALID_PARAM);
    assert_null(c);
}

/* ---- gemm ------------------------------------------------------------------------------------ */

static void test_sgemm(void **state)
{
    (void)state;
    const int64_t shapes[][3] = {{1, 256, 32}, {7, 5, 3}, {64, 48, 80}, {1, 1, 1}, {3, 4, 0}};
    for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int64_t m = shapes[si][0], n = shapes[si][1], k = shapes[si][2];
                float *a = rand_buf((size_t)(m * k)), *b = rand_buf((size_t)(k * n));
                float *c = rand_buf((size_t)(m * n)), *want = malloc((size_t)(m * n) * 4);
                float alpha = 0.5f, beta = si % 2 ? 0.0f : 2.0f;
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++) {
                        double s = 0;
                        for (int64_t p = 0; p < k; p++)
                            s += (double)(ta ? a[p * m + i] : a[i * k + p]) *
                                 (tb ? b[j * k + p] : b[p * n + j]);
                        double cv = beta != 0 ? beta * c[i * n + j] : 0;
                        want[i * n + j] = (float)(alpha * s + cv);
                    }
                md_err e;
                assert_int_equal(onnx__sgemm(ta, tb, m, n, k, alpha, a, ta ? m : k, b,
                                             tb ? k : n, beta, c, n, &e), 0);
                assert_close(c, want, (size_t)(m * n), "sgemm");
                free(a);
                free(b);
                free(c);
                free(want);
            }
}

/* ---- pooling --------------------------------------------------------------------------------- */

/* Reference pooling for 2-D from the ONNX definition, one window at a time. */
static void ref_pool2d(const onnx_kpool_geom *g, const float *x, float *y, int64_t *idx)
{
    int64_t H = g->in[0], W = g->in[1];
    for (int64_t pl = 0; pl < g->n * g->c; pl++)
        for (int64_t oh = 0; oh < g->out[0]; oh++)
            for (int64_t ow = 0; ow < g->out[1]; ow++) {
                float m = -INFINITY;
                int64_t at = -1, real = 0, padded = 0;
                double s = 0;
                for (int64_t kh = 0; kh < g->k[0]; kh++)
                    for (int64_t kw = 0; kw < g->k[1]; kw++) {
                        int64_t h = oh * g->stride[0] - g->pad_begin[0] + kh * g->dil[0];
                        int64_t w = ow * g->stride[1] - g->pad_begin[1] + kw * g->dil[1];
                        if (h >= -g->pad_begin[0] && h < H + g->pad_end[0] &&
                            w >= -g->pad_begin[1] && w < W + g->pad_end[1])
                            padded++;
                        if (h < 0 || h >= H || w < 0 || w >= W)
                            continue;
                        float v = x[pl * H * W + h * W + w];
                        real++;
                        s += v;
                        if (v > m) {
                            m = v;
                            at = pl * H * W + h * W + w;
                        }
                    }
                size_t o = (size_t)((pl * g->out[0] + oh) * g->out[1] + ow);
                if (g->kind == ONNX_KPOOL_MAX) {
                    y[o] = m;
                    if (idx)
                        idx[o] = at;
                } else {
                    int64_t cnt = g->kind == ONNX_KPOOL_AVG_INCLUDE_PAD ? padded : real;
                    y[o] = (float)(s / (double)cnt);
                }
            }
}

static void check_pool(onnx_kpool_kind kind, int64_t h, int64_t w, int64_t k, int64_t s,
                       int64_t d, int64_t pb, int64_t pe, int ceil_mode)
{
    onnx_kpool_geom g = {.kind = kind, .nsp = 2, .n = 2, .c = 3};
    for (int i = 0; i < 2; i++) {
        g.in[i] = i ? w : h;
        g.k[i] = k;
        g.stride[i] = s;
        g.dil[i] = d;
        g.pad_begin[i] = pb;
        g.pad_end[i] = pe;
        int64_t span = g.in[i] + pb + pe - ((k - 1) * d + 1);
        g.out[i] = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
        if (ceil_mode && (g.out[i] - 1) * s >= g.in[i] + pb)
            g.out[i]--;
    }
    md_err e;
    assert_int_equal(onnx__pool_check(&g, &e), 0);
    size_t ni = (size_t)(g.n * g.c * h * w), no = (size_t)(g.n * g.c * g.out[0] * g.out[1]);
    float *x = rand_buf(ni), *y = malloc(no * 4), *want = malloc(no * 4);
    int64_t *idx = malloc(no * 8), *widx = malloc(no * 8);
    ref_pool2d(&g, x, want, widx);
    /* without Indices (the fast path) and, for max, with them (the general path) */
    onnx__pool_run(&g, x, y, NULL, 0);
    assert_close(y, want, no, "pool");
    memset(y, 0, no * 4);
    onnx__pool_run(&g, x, y, kind == ONNX_KPOOL_MAX ? idx : NULL, 0);
    assert_close(y, want, no, "pool");
    if (kind == ONNX_KPOOL_MAX)
        for (size_t i = 0; i < no; i++)
            assert_int_equal(idx[i], widx[i]);
    free(x);
    free(y);
    free(want);
    free(idx);
    free(widx);
}

static void test_pool(void **state)
{
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        check_pool(kind, 8, 8, 2, 2, 1, 0, 0, 0);
        check_pool(kind, 7, 9, 3, 2, 1, 1, 1, 0);
        check_pool(kind, 7, 9, 3, 2, 1, 0, 0, 1);
        check_pool(kind, 6, 6, 3, 2, 1, 1, 0, 1);
        check_pool(kind, 10, 9, 2, 1, 2, 1, 0, 0);
        check_pool(kind, 5, 5, 5, 1, 1, 2, 2, 0);
    }
}

static void test_pool_indices_1d_3d(void **state)
{
    (void)state;
    /* 1-D: x = 0..9 rising, window 3 stride 3: max at the last tap of each window */
    onnx_kpool_geom g = {.kind = ONNX_KPOOL_MAX, .nsp = 1, .n = 1, .c = 2, .in = {10},
                         .out = {3}, .k = {3}, .stride = {3}, .dil = {1}};
    float x[20], y[6];
    int64_t idx[6];
    for (int i = 0; i < 20; i++)
        x[i] = (float)i;
    onnx__pool_run(&g, x, y, idx, 0);
    const int64_t want_idx[6] = {2, 5, 8, 12, 15, 18};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(idx[i], want_idx[i]);
        assert_true(y[i] == (float)want_idx[i]);
    }
    /* 3-D 2x2x2 input, one window: the max (last element) in column-major order is index 7 too,
     * and element (0,0,1) = 1 sits at column-major index 4 */
    onnx_kpool_geom g3 = {.kind = ONNX_KPOOL_MAX, .nsp = 3, .n = 1, .c = 1, .in = {2, 2, 2},
                          .out = {1, 1, 1}, .k = {2, 2, 2}, .stride = {1, 1, 1},
                          .dil = {1, 1, 1}};
    float x3[8] = {0, 9, 0, 0, 0, 0, 0, 0}, y3;
    int64_t i3;
    onnx__pool_run(&g3, x3, &y3, &i3, 1);
    assert_true(y3 == 9.0f);
    assert_int_equal(i3, 4);
    onnx__global_pool(0, 2, 10, x, y);
    assert_true(fabsf(y[0] - 4.5f) < 1e-6f && fabsf(y[1] - 14.5f) < 1e-6f);
    onnx__global_pool(1, 2, 10, x, y);
    assert_true(y[0] == 9.0f && y[1] == 19.0f);
}

static void test_pool_bad_geometry(void **state)
{
    (void)state;
    md_err e;
    onnx_kpool_geom g = {.kind = ONNX_KPOOL_MAX, .nsp = 2, .n = 1, .c = 1, .in = {4, 4},
                         .out = {2, 2}, .k = {2, 2}, .stride = {2, 0}, .dil = {1, 1}};
    assert_int_equal(onnx__pool_check(&g, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "strides");
    g.stride[1] = 2;
    g.out[1] = 9;
    assert_int_equal(onnx__pool_check(&g, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "kernel_shape");
}

/* ---- batch normalization --------------------------------------------------------------------- */

static void test_batchnorm(void **state)
{
    (void)state;
    const int64_t n = 2, c = 3, sp = 5;
    float *x = rand_buf((size_t)(n * c * sp)), y[30], want[30];
    float scale[3] = {1.0f, 0.5f, -2.0f}, b[3] = {0.0f, 1.0f, 0.25f};
    float mean[3] = {0.1f, -0.2f, 0.0f}, var[3] = {1.0f, 0.25f, 4.0f};
    for (int64_t i = 0; i < n * c * sp; i++) {
        int64_t ch = i / sp % c;
        want[i] = ref_act(&(onnx_kact){ONNX_KACT_RELU, 0, 0},
                          (x[i] - mean[ch]) / sqrtf(var[ch] + 1e-5f) * scale[ch] + b[ch]);
    }
    onnx__batchnorm(n, c, sp, x, scale, b, mean, var, 1e-5f, &(onnx_kact){ONNX_KACT_RELU, 0, 0},
                    y);
    assert_close(y, want, 30, "batchnorm");
    /* training mode: batch statistics, running stats blended with momentum */
    float rm[3], rv[3];
    onnx__batchnorm_train(n, c, sp, x, scale, b, mean, var, 1e-5f, 0.9f, y, rm, rv);
    for (int64_t ch = 0; ch < c; ch++) {
        double s = 0, q = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < sp; j++)
                s += x[(i * c + ch) * sp + j];
        double m = s / (double)(n * sp);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < sp; j++)
                q += (x[(i * c + ch) * sp + j] - m) * (x[(i * c + ch) * sp + j] - m);
        double v = q / (double)(n * sp);
        assert_true(fabs(rm[ch] - (mean[ch] * 0.9 + m * 0.1)) < 1e-5);
        assert_true(fabs(rv[ch] - (var[ch] * 0.9 + v * 0.1)) < 1e-5);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < sp; j++) {
                int64_t o = (i * c + ch) * sp + j;
                float w = (float)((x[o] - m) / sqrt(v + 1e-5) * scale[ch] + b[ch]);
                assert_true(fabsf(y[o] - w) < 1e-4f + 1e-3f * fabsf(w));
            }
    }
    free(x);
}

/* Fill a 2-D pooling geometry over [n][c][h][w] (ONNX floor/ceil rule for the output size). */
static onnx_kpool_geom pool2d(onnx_kpool_kind kind, int64_t n, int64_t c, int64_t h, int64_t w,
                              int64_t k, int64_t s, int64_t pad, int ceil_mode)
{
    onnx_kpool_geom g = {.kind = kind, .nsp = 2, .n = n, .c = c, .in = {h, w}};
    for (int i = 0; i < 2; i++) {
        g.k[i] = k;
        g.stride[i] = s;
        g.dil[i] = 1;
        g.pad_begin[i] = g.pad_end[i] = pad;
        int64_t span = g.in[i] + 2 * pad - k;
        g.out[i] = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
        if (ceil_mode && (g.out[i] - 1) * s >= g.in[i] + pad)
            g.out[i]--;
    }
    return g;
}

/* Conv-Relu-MaxPool-Conv-AvgPool(ceil)-GlobalAvg as one chain, blocked layout end to end, equals
 * the stage-by-stage references (and so does the direct-loop fallback). */
static void test_chain_with_pools(void **state)
{
    (void)state;
    onnx_kstage st[5] = {{.kind = ONNX_KSTAGE_CONV}, {.kind = ONNX_KSTAGE_POOL},
                         {.kind = ONNX_KSTAGE_CONV}, {.kind = ONNX_KSTAGE_POOL},
                         {.kind = ONNX_KSTAGE_POOL}};
    st[0].conv = geom2d(2, 3, 16, 20, 20, 3, 1, 1, 1, 1, 1);
    st[0].conv.act = (onnx_kact){ONNX_KACT_RELU, 0, 0};
    st[1].pool = pool2d(ONNX_KPOOL_MAX, 2, 16, 20, 20, 2, 2, 0, 0);
    st[2].conv = geom2d(2, 16, 32, 10, 10, 3, 1, 1, 1, 1, 1);
    st[3].pool = pool2d(ONNX_KPOOL_AVG_EXCLUDE_PAD, 2, 32, 10, 10, 3, 2, 1, 1);
    int64_t side = st[3].pool.out[0];
    st[4].pool = pool2d(ONNX_KPOOL_AVG_EXCLUDE_PAD, 2, 32, side, side, side, 1, 0, 0);
    float *x = rand_buf(count_in(&st[0].conv)), *w[5] = {0}, *b[5] = {0}, *t[6];
    t[0] = x;
    for (int i = 0; i < 5; i++) {
        if (st[i].kind == ONNX_KSTAGE_CONV) {
            w[i] = rand_buf(onnx__conv_weight_count(&st[i].conv));
            b[i] = rand_buf((size_t)st[i].conv.oc);
            t[i + 1] = malloc(count_out(&st[i].conv) * sizeof(float));
            ref_conv(&st[i].conv, t[i], w[i], b[i], t[i + 1]);
        } else {
            const onnx_kpool_geom *p = &st[i].pool;
            t[i + 1] = malloc((size_t)(p->n * p->c * p->out[0] * p->out[1]) * sizeof(float));
            ref_pool2d(p, t[i], t[i + 1], NULL);
        }
    }
    for (int mode = 0; mode < 2; mode++) {
        if (mode == 1)
            setenv("MODELD_ONNX_NO_DNNL", "1", 1);
        onnx__conv *c = NULL;
        md_err e;
        assert_int_equal(onnx__chain_new(5, st, (const float *const *)w,
                                         (const float *const *)b, &c, &e), 0);
        assert_int_equal(onnx__conv_uses_dnnl(c), mode == 0);
        float y[64];
        void *s = scratch_alloc(onnx__conv_scratch(c));
        assert_int_equal(onnx__conv_run(c, x, NULL, NULL, y, s, &e), 0);
        assert_close(y, t[5], 64, "chain with pools");
        free(s);
        onnx__conv_free(c);
    }
    unsetenv("MODELD_ONNX_NO_DNNL");
    for (int i = 0; i < 5; i++) {
        free(w[i]);
        free(b[i]);
        free(t[i + 1]);
    }
    free(x);
}

/* ---- the ops through the engine -------------------------------------------------------------- */

static onnx_model *load(bld *b, int expect_rc, md_err *err)
{
    onnx_model *m = NULL;
    assert_int_equal(bld_load(b, &m, err), expect_rc);
    return m;
}

/* Conv-Relu-MaxPool-Conv-Tanh-GlobalAveragePool with a symbolic batch: the Conv absorbs all of
 * it into one chain; two batch sizes (two cached chains), each run twice, match the references. */
static void test_engine_conv_chain(void **state)
{
    (void)state;
    static int64_t xd[] = {-1, 3, 12, 12}, yd[] = {-1, 8, 1, 1}, w1d[] = {16, 3, 3, 3},
                   w2d[] = {8, 16, 3, 3}, b1d[] = {16}, b2d[] = {8}, pads[] = {1, 1, 1, 1},
                   k2[] = {2, 2};
    float *w1 = rand_buf(16 * 27), *b1 = rand_buf(16), *w2 = rand_buf(8 * 144), *b2 = rand_buf(8);
    bld b;
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 4, xd);
    bld_output(&b, "Y", ONNX_FLOAT, 4, yd);
    bld_init_f32(&b, "W1", 4, w1d, w1, 16 * 27);
    bld_init_f32(&b, "B1", 1, b1d, b1, 16);
    bld_init_f32(&b, "W2", 4, w2d, w2, 8 * 144);
    bld_init_f32(&b, "B2", 1, b2d, b2, 8);
    Onnx__NodeProto *c1 = bld_node(&b, "Conv", "c1", (const char *[]){"X", "W1", "B1", NULL},
                                   (const char *[]){"A", NULL});
    bld_attr_ints(&b, c1, "pads", pads, 4);
    bld_node(&b, "Relu", "r", (const char *[]){"A", NULL}, (const char *[]){"R", NULL});
    Onnx__NodeProto *mp = bld_node(&b, "MaxPool", "p", (const char *[]){"R", NULL},
                                   (const char *[]){"P", NULL});
    bld_attr_ints(&b, mp, "kernel_shape", k2, 2);
    bld_attr_ints(&b, mp, "strides", k2, 2);
    Onnx__NodeProto *c2 = bld_node(&b, "Conv", "c2", (const char *[]){"P", "W2", "B2", NULL},
                                   (const char *[]){"C", NULL});
    bld_attr_ints(&b, c2, "pads", pads, 4);
    bld_node(&b, "Tanh", "t", (const char *[]){"C", NULL}, (const char *[]){"T", NULL});
    bld_node(&b, "GlobalAveragePool", "g", (const char *[]){"T", NULL},
             (const char *[]){"Y", NULL});
    md_err err;
    onnx_model *m = load(&b, MD_OK, &err);
    for (int64_t n = 1; n <= 2; n++) {
        onnx_kconv_geom g1 = geom2d(n, 3, 16, 12, 12, 3, 1, 1, 1, 1, 1);
        g1.act = (onnx_kact){ONNX_KACT_RELU, 0, 0};
        onnx_kpool_geom p = pool2d(ONNX_KPOOL_MAX, n, 16, 12, 12, 2, 2, 0, 0);
        onnx_kconv_geom g2 = geom2d(n, 16, 8, 6, 6, 3, 1, 1, 1, 1, 1);
        g2.act = (onnx_kact){ONNX_KACT_TANH, 0, 0};
        float *x = rand_buf(count_in(&g1)), *t1 = malloc(count_out(&g1) * 4);
        float *t2 = malloc((size_t)(n * 16 * 36) * 4), *t3 = malloc(count_out(&g2) * 4);
        float want[16] = {0};
        ref_conv(&g1, x, w1, b1, t1);
        ref_pool2d(&p, t1, t2, NULL);
        ref_conv(&g2, t2, w2, b2, t3);
        for (int64_t i = 0; i < n * 8; i++) {
            for (int j = 0; j < 36; j++)
                want[i] += t3[i * 36 + j] / 36.0f;
        }
        onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 4, .dims = {n, 3, 12, 12}, .data = x};
        for (int rep = 0; rep < 2; rep++) {
            onnx_result *r = NULL;
            assert_int_equal(onnx_run(m, &in, 1, NULL, &r, &err), MD_OK);
            const onnx_tensor *y = onnx_result_output(r, 0);
            assert_int_equal(y->rank, 4);
            assert_int_equal(y->dims[0], n);
            assert_int_equal(y->dims[1], 8);
            assert_close(y->data, want, (size_t)(n * 8), "engine chain");
            onnx_result_free(r);
        }
        free(x);
        free(t1);
        free(t2);
        free(t3);
    }
    onnx_model_free(m);
    free(w1);
    free(b1);
    free(w2);
    free(b2);
}

typedef struct engine_arg {
    const onnx_model *m;
    const float *x, *want;
    pthread_barrier_t *start;
    int threads, ok;
} engine_arg;

static void *engine_worker(void *p)
{
    engine_arg *a = p;
    onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 4, .dims = {1, 8, 16, 16}, .data = (void *)a->x};
    onnx_run_opts ro = {.threads = a->threads};
    a->ok = 1;
    pthread_barrier_wait(a->start); /* all first runs at once: they race to build the chain */
    for (int i = 0; i < 10 && a->ok; i++) {
        onnx_result *r = NULL;
        md_err err;
        a->ok = onnx_run(a->m, &in, 1, &ro, &r, &err) == MD_OK;
        for (int j = 0; a->ok && j < 16 * 64; j++) {
            float got = ((const float *)onnx_result_output(r, 0)->data)[j];
            a->ok = fabsf(got - a->want[j]) <= 1e-4f + 1e-3f * fabsf(a->want[j]);
        }
        onnx_result_free(r);
    }
    return NULL;
}

/* Four threads (1 and 2 intra-op threads each) run a fused Conv-Relu-MaxPool model at once. */
static void test_engine_concurrent(void **state)
{
    (void)state;
    static int64_t xd[] = {1, 8, 16, 16}, yd[] = {1, 16, 8, 8}, wd[] = {16, 8, 3, 3},
                   bd[] = {16}, pads[] = {1, 1, 1, 1}, k2[] = {2, 2};
    float *w = rand_buf(16 * 72), *bias = rand_buf(16), *x = rand_buf(8 * 256);
    float *t = malloc(16 * 256 * sizeof(float)), want[16 * 64];
    bld b;
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 4, xd);
    bld_output(&b, "Y", ONNX_FLOAT, 4, yd);
    bld_init_f32(&b, "W", 4, wd, w, 16 * 72);
    bld_init_f32(&b, "B", 1, bd, bias, 16);
    Onnx__NodeProto *c = bld_node(&b, "Conv", "c", (const char *[]){"X", "W", "B", NULL},
                                  (const char *[]){"A", NULL});
    bld_attr_ints(&b, c, "pads", pads, 4);
    bld_node(&b, "Relu", "r", (const char *[]){"A", NULL}, (const char *[]){"R", NULL});
    Onnx__NodeProto *mp = bld_node(&b, "MaxPool", "p", (const char *[]){"R", NULL},
                                   (const char *[]){"Y", NULL});
    bld_attr_ints(&b, mp, "kernel_shape", k2, 2);
    bld_attr_ints(&b, mp, "strides", k2, 2);
    md_err err;
    onnx_model *m = load(&b, MD_OK, &err);
    onnx_kconv_geom g = geom2d(1, 8, 16, 16, 16, 3, 1, 1, 1, 1, 1);
    g.act = (onnx_kact){ONNX_KACT_RELU, 0, 0};
    onnx_kpool_geom p = pool2d(ONNX_KPOOL_MAX, 1, 16, 16, 16, 2, 2, 0, 0);
    ref_conv(&g, x, w, bias, t);
    ref_pool2d(&p, t, want, NULL);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 4);
    pthread_t th[4];
    engine_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (engine_arg){m, x, want, &start, 1 + i % 2, 0};
        assert_int_equal(pthread_create(&th[i], NULL, engine_worker, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(a[i].ok);
    }
    pthread_barrier_destroy(&start);
    onnx_model_free(m);
    free(w);
    free(bias);
    free(x);
    free(t);
}

/* Conv-Relu-ConvTranspose(stride 2)-Sigmoid, the end of a super-resolution net, as one chain. */
static void test_engine_conv_deconv(void **state)
{
    (void)state;
    static int64_t xd[] = {1, 3, 10, 10}, yd[] = {1, 4, 19, 19}, w1d[] = {8, 3, 3, 3},
                   w2d[] = {8, 4, 3, 3}, b1d[] = {8}, b2d[] = {4}, pads[] = {1, 1, 1, 1},
                   s2[] = {2, 2};
    float *w1 = rand_buf(8 * 27), *b1 = rand_buf(8), *w2 = rand_buf(8 * 36), *b2 = rand_buf(4);
    float *x = rand_buf(3 * 100), t[8 * 100], want[4 * 361];
    bld b;
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 4, xd);
    bld_output(&b, "Y", ONNX_FLOAT, 4, yd);
    bld_init_f32(&b, "W1", 4, w1d, w1, 8 * 27);
    bld_init_f32(&b, "B1", 1, b1d, b1, 8);
    bld_init_f32(&b, "W2", 4, w2d, w2, 8 * 36);
    bld_init_f32(&b, "B2", 1, b2d, b2, 4);
    Onnx__NodeProto *c = bld_node(&b, "Conv", "c", (const char *[]){"X", "W1", "B1", NULL},
                                  (const char *[]){"A", NULL});
    bld_attr_ints(&b, c, "pads", pads, 4);
    bld_node(&b, "Relu", "r", (const char *[]){"A", NULL}, (const char *[]){"R", NULL});
    Onnx__NodeProto *d = bld_node(&b, "ConvTranspose", "d",
                                  (const char *[]){"R", "W2", "B2", NULL},
                                  (const char *[]){"D", NULL});
    bld_attr_ints(&b, d, "pads", pads, 4);
    bld_attr_ints(&b, d, "strides", s2, 2);
    bld_node(&b, "Sigmoid", "s", (const char *[]){"D", NULL}, (const char *[]){"Y", NULL});
    md_err err;
    onnx_model *m = load(&b, MD_OK, &err);
    onnx_kconv_geom g1 = geom2d(1, 3, 8, 10, 10, 3, 1, 1, 1, 1, 1);
    g1.act = (onnx_kact){ONNX_KACT_RELU, 0, 0};
    onnx_kconv_geom g2 = geom2d(1, 8, 4, 10, 10, 3, 2, 1, 1, 1, 1);
    g2.transpose = 1;
    g2.act = (onnx_kact){ONNX_KACT_SIGMOID, 0, 0};
    set_out(&g2);
    assert_int_equal(g2.out[0], 19);
    ref_conv(&g1, x, w1, b1, t);
    ref_deconv(&g2, t, w2, b2, want);
    onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 4, .dims = {1, 3, 10, 10}, .data = x};
    onnx_result *r = NULL;
    assert_int_equal(onnx_run(m, &in, 1, NULL, &r, &err), MD_OK);
    assert_close(onnx_result_output(r, 0)->data, want, 4 * 361, "conv + deconv chain");
    onnx_result_free(r);
    onnx_model_free(m);
    free(w1);
    free(b1);
    free(w2);
    free(b2);
    free(x);
}

/* Conv -> BatchNormalization -> Relu: the statistics are folded into the Conv's weights. */
static void test_engine_conv_bn(void **state)
{
    (void)state;
    static int64_t xd[] = {1, 4, 9, 9}, yd[] = {1, 6, 9, 9}, wd[] = {6, 4, 3, 3}, cd[] = {6},
                   pads[] = {1, 1, 1, 1};
    float *w = rand_buf(6 * 36), *cb = rand_buf(6), *x = rand_buf(4 * 81);
    float sc[6], sh[6], mean[6], var[6], want[6 * 81];
    for (int i = 0; i < 6; i++) {
        sc[i] = 0.5f + 0.1f * (float)i;
        sh[i] = frand();
        mean[i] = frand();
        var[i] = 0.25f + 0.2f * (float)i;
    }
    bld b;
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 4, xd);
    bld_output(&b, "Y", ONNX_FLOAT, 4, yd);
    bld_init_f32(&b, "W", 4, wd, w, 216);
    bld_init_f32(&b, "CB", 1, cd, cb, 6);
    bld_init_f32(&b, "S", 1, cd, sc, 6);
    bld_init_f32(&b, "SH", 1, cd, sh, 6);
    bld_init_f32(&b, "M", 1, cd, mean, 6);
    bld_init_f32(&b, "V", 1, cd, var, 6);
    Onnx__NodeProto *c = bld_node(&b, "Conv", "c", (const char *[]){"X", "W", "CB", NULL},
                                  (const char *[]){"A", NULL});
    bld_attr_ints(&b, c, "pads", pads, 4);
    bld_node(&b, "BatchNormalization", "bn", (const char *[]){"A", "S", "SH", "M", "V", NULL},
             (const char *[]){"N", NULL});
    bld_node(&b, "Relu", "r", (const char *[]){"N", NULL}, (const char *[]){"Y", NULL});
    md_err err;
    onnx_model *m = load(&b, MD_OK, &err);
    onnx_kconv_geom g = geom2d(1, 4, 6, 9, 9, 3, 1, 1, 1, 1, 1);
    ref_conv(&g, x, w, cb, want);
    for (int i = 0; i < 6 * 81; i++) {
        int ch = i / 81;
        float v = (want[i] - mean[ch]) / sqrtf(var[ch] + 1e-5f) * sc[ch] + sh[ch];
        want[i] = v > 0 ? v : 0;
    }
    onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 4, .dims = {1, 4, 9, 9}, .data = x};
    onnx_result *r = NULL;
    assert_int_equal(onnx_run(m, &in, 1, NULL, &r, &err), MD_OK);
    assert_close(onnx_result_output(r, 0)->data, want, 6 * 81, "conv + batchnorm + relu");
    onnx_result_free(r);
    onnx_model_free(m);
    free(w);
    free(cb);
    free(x);
}

/* Shapes that do not fit fail the run with the field named, and the model stays usable. */
static void test_engine_bad_shapes(void **state)
{
    (void)state;
    static int64_t xd[] = {1, -1, 5, 5}, yd[] = {-1, -1, -1, -1}, wd[] = {2, 3, 3, 3};
    float w[54] = {0}, x[4 * 25] = {0};
    bld b;
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 4, xd);
    bld_output(&b, "Y", ONNX_FLOAT, 4, yd);
    bld_init_f32(&b, "W", 4, wd, w, 54);
    bld_node(&b, "Conv", "c", (const char *[]){"X", "W", NULL}, (const char *[]){"Y", NULL});
    md_err err;
    onnx_model *m = load(&b, MD_OK, &err);
    onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 4, .dims = {1, 4, 5, 5}, .data = x};
    onnx_result *r = NULL;
    assert_int_equal(onnx_run(m, &in, 1, NULL, &r, &err), MD_E_INVALID_PARAM);
    assert_non_null(strstr(err.msg, "input channels"));
    in.dims[1] = 3;
    assert_int_equal(onnx_run(m, &in, 1, NULL, &r, &err), MD_OK);
    assert_int_equal(onnx_result_output(r, 0)->dims[1], 2);
    onnx_result_free(r);
    onnx_model_free(m);
    /* a MaxPool without kernel_shape fails to load, naming the attribute */
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 4, xd);
    bld_output(&b, "Y", ONNX_FLOAT, 4, yd);
    bld_node(&b, "MaxPool", "p", (const char *[]){"X", NULL}, (const char *[]){"Y", NULL});
    assert_null(load(&b, MD_E_MODEL_INVALID, &err));
    assert_string_equal(err.field, "kernel_shape");
    /* a huge stride (products would overflow) is refused at load, naming it */
    static int64_t big[] = {(int64_t)1 << 40, 1};
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 4, xd);
    bld_output(&b, "Y", ONNX_FLOAT, 4, yd);
    bld_init_f32(&b, "W", 4, wd, w, 54);
    Onnx__NodeProto *c = bld_node(&b, "Conv", "c", (const char *[]){"X", "W", NULL},
                                  (const char *[]){"Y", NULL});
    bld_attr_ints(&b, c, "strides", big, 2);
    assert_null(load(&b, MD_E_MODEL_INVALID, &err));
    assert_string_equal(err.field, "strides");
}

/* MatMul with broadcast batch dims and 1-D operands, against loops. */
static void check_matmul(int ra, const int64_t *da, int rb, const int64_t *db, int ry,
                         const int64_t *dy)
{
    bld b;
    bld_init(&b, 13);
    bld_input(&b, "A", ONNX_FLOAT, ra, da);
    bld_input(&b, "B", ONNX_FLOAT, rb, db);
    bld_output(&b, "Y", ONNX_FLOAT, -1, NULL);
    bld_node(&b, "MatMul", "mm", (const char *[]){"A", "B", NULL}, (const char *[]){"Y", NULL});
    md_err err;
    onnx_model *m = load(&b, MD_OK, &err);
    int64_t na = 1, nb = 1;
    for (int i = 0; i < ra; i++)
        na *= da[i];
    for (int i = 0; i < rb; i++)
        nb *= db[i];
    float *a = rand_buf((size_t)na), *bb = rand_buf((size_t)nb);
    onnx_tensor in[2] = {{.dtype = ONNX_FLOAT, .rank = ra, .data = a},
                         {.dtype = ONNX_FLOAT, .rank = rb, .data = bb}};
    memcpy(in[0].dims, da, sizeof(int64_t) * (size_t)ra);
    memcpy(in[1].dims, db, sizeof(int64_t) * (size_t)rb);
    onnx_result *r = NULL;
    assert_int_equal(onnx_run(m, in, 2, NULL, &r, &err), MD_OK);
    const onnx_tensor *y = onnx_result_output(r, 0);
    assert_int_equal(y->rank, ry);
    for (int i = 0; i < ry; i++)
        assert_int_equal(y->dims[i], dy[i]);
    /* reference: broadcast over the batch dims of y, numpy rules for 1-D operands */
    int64_t K = da[ra - 1], M = ra == 1 ? 1 : da[ra - 2], N = rb == 1 ? 1 : db[rb - 1];
    int brank = ry - (ra > 1) - (rb > 1);
    int64_t nbatch = 1;
    for (int i = 0; i < brank; i++)
        nbatch *= dy[i];
    const float *yv = y->data;
    for (int64_t bi = 0; bi < nbatch; bi++) {
        int64_t rem = bi, ao = 0, bo = 0, astr = M * K, bstr = K * N;
        for (int d = brank - 1; d >= 0; d--) {
            int64_t c = rem % dy[d];
            rem /= dy[d];
            int ja = d - (brank - (ra - 2)), jb = d - (brank - (rb - 2));
            if (ra > 2 && ja >= 0) {
                ao += (da[ja] == 1 ? 0 : c) * astr;
                astr *= da[ja];
            }
            if (rb > 2 && jb >= 0) {
                bo += (db[jb] == 1 ? 0 : c) * bstr;
                bstr *= db[jb];
            }
        }
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++)
                    acc += (double)a[ao + i * K + k] * bb[bo + k * N + j];
                float got = yv[(bi * M + i) * N + j];
                assert_true(fabs(got - acc) <= 1e-4 + 1e-3 * fabs(acc));
            }
    }
    onnx_result_free(r);
    onnx_model_free(m);
    free(a);
    free(bb);
}

static void test_engine_matmul(void **state)
{
    (void)state;
    check_matmul(4, (int64_t[]){2, 1, 3, 4}, 3, (int64_t[]){3, 4, 5}, 4,
                 (int64_t[]){2, 3, 3, 5});
    check_matmul(3, (int64_t[]){2, 3, 4}, 2, (int64_t[]){4, 5}, 3, (int64_t[]){2, 3, 5});
    check_matmul(1, (int64_t[]){4}, 3, (int64_t[]){2, 4, 3}, 2, (int64_t[]){2, 3});
    check_matmul(3, (int64_t[]){2, 3, 4}, 1, (int64_t[]){4}, 2, (int64_t[]){2, 3});
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_shapes),
        cmocka_unit_test(test_conv_winograd),
        cmocka_unit_test(test_conv1d_3d),
        cmocka_unit_test(test_conv_transpose),
        cmocka_unit_test(test_conv_chain),
        cmocka_unit_test(test_chain_with_pools),
        cmocka_unit_test(test_conv_concurrent),
        cmocka_unit_test(test_conv_bad_geometry),
        cmocka_unit_test(test_sgemm),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_pool_indices_1d_3d),
        cmocka_unit_test(test_pool_bad_geometry),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_engine_conv_chain),
        cmocka_unit_test(test_engine_conv_bn),
        cmocka_unit_test(test_engine_conv_deconv),
        cmocka_unit_test(test_engine_concurrent),
        cmocka_unit_test(test_engine_bad_shapes),
        cmocka_unit_test(test_engine_matmul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
