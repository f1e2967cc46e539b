/* views_test.c - Concat inputs planned as views of the Concat's output (src/onnx/plan.c,
 * "views"; ops/concat.c): a graph run with views gives the same bytes as the same graph loaded
 * with MODELD_ONNX_NO_CATVIEW=1 (every Concat copies), on the recording run, the first planned
 * run and a run on a recycled run state, and the plan holds views exactly where they are allowed.
 *
 * Graphs: the dense blocks of an RRDN (esrgan-thick's shape, small: chained channel Concats, the
 * last one fused with its 1x1 Conv and residual Add), at a size where every channel offset is
 * 64-byte aligned and at one where only offset 0 is; a Concat input also read after the Concat
 * and by a second Concat, then also after the Concat's output is dead (no view then: it would
 * hold the output's block alive); a Concat of a graph input and of a constant (never views); a
 * Concat on a non-channel axis, and of a batch of two (not contiguous: no views); a Concat input
 * that is also a graph output. With MODELD_TEST_THICK=<esrgan-thick model.onnx> (tests/onnx/
 * CMakeLists.txt converts one when build/npm has the package), the real network too.
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

#define ONNX_TEST_SEED 777u
#include "onnx/onnx_test_rand.h"

#define MAX_OUTS 3

/* Outputs of one run, copied out (new, outs_free). */
typedef struct outs {
    int n;
    onnx_tensor t[MAX_OUTS];
} outs;

static void outs_free(outs *o)
{
    for (int i = 0; i < o->n; i++)
        free(o->t[i].data);
    o->n = 0;
}

static void outs_take(const onnx_result *r, outs *o)
{
    o->n = (int)onnx_result_count(r);
    assert_true(o->n <= MAX_OUTS);
    for (int i = 0; i < o->n; i++) {
        const onnx_tensor *t = onnx_result_output(r, (size_t)i);
        size_t bytes = (size_t)onnx_tensor_numel(t) * onnx_dtype_size(t->dtype);
        o->t[i] = *t;
        o->t[i].data = malloc(bytes ? bytes : 1);
        assert_non_null(o->t[i].data);
        memcpy(o->t[i].data, t->data, bytes);
    }
}

static void assert_same(const outs *a, const outs *b)
{
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        assert_int_equal(a->t[i].rank, b->t[i].rank);
        assert_memory_equal(a->t[i].dims, b->t[i].dims, sizeof(int64_t) * (size_t)a->t[i].rank);
        size_t bytes = (size_t)onnx_tensor_numel(&a->t[i]) * onnx_dtype_size(a->t[i].dtype);
        assert_memory_equal(a->t[i].data, b->t[i].data, bytes); /* bit-identical */
    }
}

/* Events of m's plans that are views. */
static int plan_views(const onnx_model *m)
{
    int v = 0;
    for (const onnx__plan *p = m->plans; p; p = p->next)
        for (int i = 0; i < p->n_events; i++)
            v += p->events[i].parent >= 0;
    return v;
}

/* Three runs of m on in (recording, planned, planned again while the first result is still
 * held, so on a second run state); every run's outputs equal the first's, in *o (new). */
static void run3(const onnx_model *m, const onnx_tensor *in, size_t n_in, outs *o)
{
    onnx_result *r[3] = {0};
    md_err err;
    for (int k = 0; k < 3; k++) {
        assert_int_equal(onnx_run(m, in, n_in, NULL, &r[k], &err), MD_OK);
        outs got = {0};
        outs_take(r[k], k == 0 ? o : &got);
        if (k > 0)
            assert_same(o, &got);
        outs_free(&got);
        if (k == 1) {
            onnx_result_free(r[0]);
            r[0] = NULL;
        }
    }
    for (int k = 0; k < 3; k++)
        onnx_result_free(r[k]);
}

/* Run the model with views on and off: the same bytes; *views gets the views planned with them
 * on (the plain load must plan none). The model comes from b, or from the file path. */
static void compare(bld *b, const char *path, const onnx_tensor *in, size_t n_in, int *views)
{
    outs on = {0}, off = {0};
    for (int plain = 0; plain < 2; plain++) {
        onnx_model *m = NULL;
        md_err err;
        if (plain)
            setenv("MODELD_ONNX_NO_CATVIEW", "1", 1);
        int rc = b ? bld_load(b, &m, &err) : onnx_model_load_file(path, NULL, &m, &err);
        unsetenv("MODELD_ONNX_NO_CATVIEW");
        if (rc != MD_OK)
            print_error("load: %s\n", err.msg);
        assert_int_equal(rc, MD_OK);
        run3(m, in, n_in, plain ? &off : &on);
        if (plain)
            assert_int_equal(plan_views(m), 0);
        else
            *views = plan_views(m);
        onnx_model_free(m);
    }
    assert_same(&on, &off);
    outs_free(&on);
    outs_free(&off);
}

/* ---- graphs ---------------------------------------------------------------------------- */

/* What the builder borrows until it packs (the models are packed at each load). */
static char names[256][24]; /* node, value and weight names */
static int n_names;
static float wpool[8192]; /* weights and biases */
static size_t n_w;
static int64_t dpool[32][4]; /* initializer dims */
static int n_d;

static void pools_reset(void)
{
    n_names = 0;
    n_w = 0;
    n_d = 0;
}

static const char *nm(const char *fmt, int i, int j)
{
    assert_true(n_names < 256);
    snprintf(names[n_names], sizeof names[0], fmt, i, j);
    return names[n_names++];
}

/* n random floats times scale, from the pool. */
static float *weights(size_t n, float scale)
{
    assert_true(n_w + n <= sizeof wpool / sizeof wpool[0]);
    float *w = wpool + n_w;
    for (size_t i = 0; i < n; i++)
        w[i] = frand() * scale;
    n_w += n;
    return w;
}

static int64_t pads1[4] = {1, 1, 1, 1};

/* A Conv of x (ic channels) to y (oc channels), kernel k (pad k/2), random weights and bias. */
static void conv(bld *b, const char *x, const char *y, int64_t ic, int64_t oc, int64_t k)
{
    assert_true(n_d + 2 <= 32);
    int64_t *wd = dpool[n_d++], *bd = dpool[n_d++];
    wd[0] = oc, wd[1] = ic, wd[2] = k, wd[3] = k;
    bd[0] = oc;
    size_t nw = (size_t)(oc * ic * k * k);
    const char *wn = nm("W%d", n_d, 0), *bn = nm("B%d", n_d, 0);
    bld_init_f32(b, wn, 4, wd, weights(nw, 0.3f), nw);
    bld_init_f32(b, bn, 1, bd, weights((size_t)oc, 1.0f), (size_t)oc);
    Onnx__NodeProto *n =
        bld_node(b, "Conv", y, (const char *[]){x, wn, bn, NULL}, (const char *[]){y, NULL});
    if (k == 3)
        bld_attr_ints(b, n, "pads", pads1, 4);
}

static void concat(bld *b, const char *y, const char *const *in, int64_t axis)
{
    Onnx__NodeProto *n = bld_node(b, "Concat", y, in, (const char *[]){y, NULL});
    bld_attr_int(b, n, "axis", axis);
}

/* Two residual dense blocks as esrgan-thick has them: x0 = Conv3x3(image); per block
 * c_0 = x, c_k = Concat(c_(k-1), Relu(Conv3x3(c_(k-1)))) for k = 1..4, then
 * x' = Conv1x1(c_4) + x (the last Concat fuses with its Conv and Add). */
static void build_rrdb(bld *b, int64_t c0, int64_t g)
{
    static int64_t in4[] = {1, 3, -1, -1}, out4[] = {1, -1, -1, -1};
    pools_reset();
    bld_init(b, 13);
    bld_input(b, "image", ONNX_FLOAT, 4, in4);
    bld_output(b, "out", ONNX_FLOAT, 4, out4);
    conv(b, "image", "x0", 3, c0, 3);
    const char *x = "x0";
    for (int blk = 1; blk <= 2; blk++) {
        const char *c = x;
        int64_t ch = c0;
        for (int k = 1; k <= 4; k++) {
            const char *f = nm("f%d_%d", blk, k), *r = nm("r%d_%d", blk, k);
            conv(b, c, f, ch, g, 3);
            bld_node(b, "Relu", nm("relu%d_%d", blk, k), (const char *[]){f, NULL},
                     (const char *[]){r, NULL});
            const char *cat = nm("cat%d_%d", blk, k);
            concat(b, cat, (const char *[]){c, r, NULL}, 1);
            c = cat;
            ch += g;
        }
        const char *lff = nm("lff%d", blk, 0), *nx = blk == 2 ? "out" : nm("x%d", blk, 0);
        conv(b, c, lff, ch, c0, 1);
        bld_node(b, "Add", nm("add%d", blk, 0), (const char *[]){lff, x, NULL},
                 (const char *[]){nx, NULL});
        x = nx;
    }
}

static onnx_tensor image(int64_t n, int64_t c, int64_t h, int64_t w, float **data)
{
    *data = rand_buf((size_t)(n * c * h * w));
    for (int64_t i = 0; i < n * c * h * w; i++)
        (*data)[i] = ((*data)[i] + 1.0f) * 127.5f;
    return (onnx_tensor){.dtype = ONNX_FLOAT, .rank = 4, .dims = {n, c, h, w}, .data = *data};
}

/* 16x20: each channel is 1280 bytes, so every offset is aligned: per block r_1..r_3 and
 * c_1, c_2 are views (c_4 is fused: it has no output to hold anything); x is not, the block's
 * residual Add reads it after c_3's last reader. */
static void test_rrdb_aligned(void **state)
{
    (void)state;
    bld b;
    float *px;
    onnx_tensor in = image(1, 3, 16, 20, &px);
    int views = -1;
    build_rrdb(&b, 8, 4);
    compare(&b, NULL, &in, 1, &views);
    assert_int_equal(views, 2 * 5);
    free(px);
}

/* 7x9: a channel is 252 bytes, and a view needs an offset that is a multiple of 64: c_1 in c_2
 * and c_2 in c_3 (offset 0) and r_3 (after 16 channels, 4032 bytes) are views; r_1 (2016) and
 * r_2 (3024) are copied, and x as above. */
static void test_rrdb_unaligned(void **state)
{
    (void)state;
    bld b;
    float *px;
    onnx_tensor in = image(1, 3, 7, 9, &px);
    int views = -1;
    build_rrdb(&b, 8, 4);
    compare(&b, NULL, &in, 1, &views);
    assert_int_equal(views, 2 * 3);
    free(px);
}

/* A = Relu(X), B = Sigmoid(X); C1 = Concat(A, B); C2 = Concat(B, A); Y1 = Neg(C1);
 * Y2 = Add(C2, C2); Y3 = Mul(A, A): A and B are views of C1 only (one place each), C2 copies
 * them, and Y3 reads A inside C1's block. With late, Y3 = Mul(A, ReduceMean(Y1)) instead, which
 * runs after C1's last reader: A then stays apart (a view would hold C1's block for it) and only
 * B is a view. */
static void read_elsewhere(int late)
{
    static int64_t any4[] = {1, 4, -1, -1}, axes[1] = {1};
    bld b;
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 4, any4);
    bld_output(&b, "Y1", ONNX_FLOAT, -1, NULL);
    bld_output(&b, "Y2", ONNX_FLOAT, -1, NULL);
    bld_output(&b, "Y3", ONNX_FLOAT, -1, NULL);
    bld_node(&b, "Relu", "relu", (const char *[]){"X", NULL}, (const char *[]){"A", NULL});
    bld_node(&b, "Sigmoid", "sig", (const char *[]){"X", NULL}, (const char *[]){"B", NULL});
    concat(&b, "C1", (const char *[]){"A", "B", NULL}, 1);
    concat(&b, "C2", (const char *[]){"B", "A", NULL}, 1);
    bld_node(&b, "Neg", "neg", (const char *[]){"C1", NULL}, (const char *[]){"Y1", NULL});
    bld_node(&b, "Add", "add", (const char *[]){"C2", "C2", NULL}, (const char *[]){"Y2", NULL});
    if (late) {
        Onnx__NodeProto *r = bld_node(&b, "ReduceMean", "mean", (const char *[]){"Y1", NULL},
                                      (const char *[]){"M", NULL});
        bld_attr_ints(&b, r, "axes", axes, 1);
        bld_node(&b, "Mul", "mul", (const char *[]){"A", "M", NULL}, (const char *[]){"Y3", NULL});
    } else {
        bld_node(&b, "Mul", "mul", (const char *[]){"A", "A", NULL}, (const char *[]){"Y3", NULL});
    }
    float *px;
    onnx_tensor in = image(1, 4, 8, 8, &px);
    for (int i = 0; i < 4 * 64; i++)
        px[i] -= 127.5f; /* both signs, so that Relu matters */
    int views = -1;
    compare(&b, NULL, &in, 1, &views);
    assert_int_equal(views, late ? 1 : 2);
    free(px);
}

static void test_input_read_elsewhere(void **state)
{
    (void)state;
    read_elsewhere(0);
    read_elsewhere(1);
}

/* C = Concat(X, K, R, X) with X the graph input and K a constant: neither can be a view (their
 * memory is the caller's or the model's); R can. The caller's X is not written. */
static void test_graph_input_and_constant(void **state)
{
    (void)state;
    static int64_t any4[] = {1, 2, 4, 8}, kd[4] = {1, 1, 4, 8};
    float kv[32];
    for (int i = 0; i < 32; i++)
        kv[i] = (float)i;
    bld b;
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 4, any4);
    bld_output(&b, "Y", ONNX_FLOAT, -1, NULL);
    bld_init_f32(&b, "K", 4, kd, kv, 32);
    bld_node(&b, "Relu", "relu", (const char *[]){"X", NULL}, (const char *[]){"R", NULL});
    concat(&b, "C", (const char *[]){"X", "K", "R", "X", NULL}, 1);
    bld_node(&b, "Neg", "neg", (const char *[]){"C", NULL}, (const char *[]){"Y", NULL});
    float *px;
    onnx_tensor in = image(1, 2, 4, 8, &px);
    float *keep = malloc(64 * sizeof(float));
    memcpy(keep, px, 64 * sizeof(float));
    int views = -1;
    compare(&b, NULL, &in, 1, &views);
    assert_int_equal(views, 1);
    assert_memory_equal(px, keep, 64 * sizeof(float));
    free(keep);
    free(px);
}

/* Concat on axis 2 of [1, 3, H, W], and on axis 1 of a batch of 2: the inputs are strided in
 * the output, so no view. */
static void test_not_contiguous(void **state)
{
    (void)state;
    static int64_t any4[] = {-1, 3, 16, 16};
    for (int batch = 1; batch <= 2; batch++) {
        bld b;
        bld_init(&b, 13);
        bld_input(&b, "X", ONNX_FLOAT, 4, any4);
        bld_output(&b, "Y", ONNX_FLOAT, -1, NULL);
        bld_node(&b, "Relu", "relu", (const char *[]){"X", NULL}, (const char *[]){"A", NULL});
        bld_node(&b, "Sigmoid", "sig", (const char *[]){"X", NULL}, (const char *[]){"B", NULL});
        concat(&b, "C", (const char *[]){"A", "B", NULL}, batch == 1 ? 2 : 1);
        bld_node(&b, "Neg", "neg", (const char *[]){"C", NULL}, (const char *[]){"Y", NULL});
        float *px;
        onnx_tensor in = image(batch, 3, 16, 16, &px);
        int views = -1;
        compare(&b, NULL, &in, 1, &views);
        assert_int_equal(views, 0);
        free(px);
    }
}

/* A Concat input that is also a graph output, and a Concat whose output is a graph output:
 * both views, and the outputs stay right after the run. */
static void test_graph_outputs(void **state)
{
    (void)state;
    static int64_t any4[] = {1, 2, 8, 8};
    bld b;
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 4, any4);
    bld_output(&b, "A", ONNX_FLOAT, -1, NULL);
    bld_output(&b, "C", ONNX_FLOAT, -1, NULL);
    bld_node(&b, "Relu", "relu", (const char *[]){"X", NULL}, (const char *[]){"A", NULL});
    bld_node(&b, "Sigmoid", "sig", (const char *[]){"X", NULL}, (const char *[]){"B", NULL});
    concat(&b, "C", (const char *[]){"A", "B", NULL}, 1);
    float *px;
    onnx_tensor in = image(1, 2, 8, 8, &px);
    int views = -1;
    compare(&b, NULL, &in, 1, &views);
    assert_int_equal(views, 2);
    free(px);
}

/* The real esrgan-thick network (RRDN: 10 blocks of 3 dense blocks, 120 Concats) on a 24x24
 * input (2304 bytes a channel: every offset aligned). */
static void test_thick(void **state)
{
    (void)state;
    const char *path = getenv("MODELD_TEST_THICK");
    if (!path || !*path) {
        print_message("MODELD_TEST_THICK not set: the converted esrgan-thick is not here\n");
        skip();
    }
    float *px;
    onnx_tensor in = image(1, 3, 24, 24, &px);
    int views = -1;
    compare(NULL, path, &in, 1, &views);
    print_message("esrgan-thick: %d views\n", views);
    /* per dense block r_1..r_4 and c_1..c_3 (its last Conv is 3x3 in thick: no fusion; x is
     * read again by the block's residual Add) */
    assert_int_equal(views, 30 * 7);
    free(px);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rrdb_aligned),
        cmocka_unit_test(test_rrdb_unaligned),
        cmocka_unit_test(test_input_read_elsewhere),
        cmocka_unit_test(test_graph_input_and_constant),
        cmocka_unit_test(test_not_contiguous),
        cmocka_unit_test(test_graph_outputs),
        cmocka_unit_test(test_thick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
