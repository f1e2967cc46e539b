/* exec_test.c - the executor: inputs are validated, dynamic batch sizes work, a plan is made
 * once per input shape and reused without allocating, data-dependent shapes fall back safely,
 * and many threads can run one model at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "onnx/model.h"
#include "onnx/onnx.h"
#include "onnx/onnx_builder.h"

static const int64_t DN3[] = {-1, 3};
static const float BIAS[] = {1, 2, 3};

/* Y = Sigmoid(X * B) + B with a symbolic batch dim. */
static onnx_model *load_batch_model(void)
{
    bld b;
    bld_sigmoid_chain(&b, 2, DN3, BIAS);
    onnx_model *m = NULL;
    md_err err;
    assert_int_equal(bld_load(&b, &m, &err), MD_OK);
    return m;
}

static float expect_y(float x, int col)
{
    return 1.f / (1.f + expf(-x * BIAS[col])) + BIAS[col];
}

static void check_batch(const onnx_model *m, int batch, float seed)
{
    float x[64 * 3];
    for (int i = 0; i < batch * 3; i++)
        x[i] = seed + (float)i * 0.25f - 2.f;
    onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 2, .dims = {batch, 3}, .data = x};
    onnx_result *r = NULL;
    md_err err;
    assert_int_equal(onnx_run(m, &in, 1, NULL, &r, &err), MD_OK);
    const onnx_tensor *y = onnx_result_output(r, 0);
    assert_int_equal(y->dims[0], batch);
    for (int i = 0; i < batch * 3; i++)
        assert_float_equal(((const float *)y->data)[i], expect_y(x[i], i % 3), 1e-6);
    onnx_result_free(r);
}

static void test_dynamic_batch(void **state)
{
    (void)state;
    onnx_model *m = load_batch_model();
    check_batch(m, 1, 0);
    check_batch(m, 7, 1);
    check_batch(m, 64, 2);
    check_batch(m, 7, 3);
    assert_int_equal(m->n_plans, 3); /* one plan per distinct input shape */
    onnx_model_free(m);
}

static void test_plan_reuse_does_not_allocate(void **state)
{
    (void)state;
    onnx_model *m = load_batch_model();
    float x[12] = {0};
    onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 2, .dims = {4, 3}, .data = x};
    md_err err;
    onnx_result *r1 = NULL, *r2 = NULL;
    assert_int_equal(onnx_run(m, &in, 1, NULL, &r1, &err), MD_OK);
    assert_true(r1->e.recording); /* first run of this shape records the plan */
    onnx_result_free(r1);
    assert_int_equal(onnx_run(m, &in, 1, NULL, &r2, &err), MD_OK);
    assert_false(r2->e.recording);
    assert_non_null(r2->e.plan);
    assert_null(r2->e.spill); /* everything came from the planned block */
    const void *p2 = onnx_result_output(r2, 0)->data;
    onnx_result_free(r2);
    assert_int_equal(onnx_run(m, &in, 1, NULL, &r2, &err), MD_OK);
    assert_ptr_equal(onnx_result_output(r2, 0)->data, p2); /* the recycled run state */
    assert_null(r2->e.spill);
    onnx_result_free(r2);
    onnx_model_free(m);
}

static void test_plan_memory_reuse(void **state)
{
    (void)state;
    /* A chain of 3 same-size values: the plan needs no more than 2 buffers at once. */
    onnx_model *m = load_batch_model();
    float x[300] = {0};
    onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 2, .dims = {100, 3}, .data = x};
    md_err err;
    onnx_result *r = NULL;
    assert_int_equal(onnx_run(m, &in, 1, NULL, &r, &err), MD_OK);
    onnx_result_free(r);
    assert_non_null(m->plans);
    assert_true(m->plans->total <= 2 * 1216);
    onnx_model_free(m);
}

static void test_input_validation(void **state)
{
    (void)state;
    onnx_model *m = load_batch_model();
    float x[6] = {0};
    double xd[6] = {0};
    onnx_result *r = NULL;
    md_err err;
    onnx_tensor bad_type = {.dtype = ONNX_DOUBLE, .rank = 2, .dims = {2, 3}, .data = xd};
    assert_int_equal(onnx_run(m, &bad_type, 1, NULL, &r, &err), MD_E_INVALID_PARAM);
    assert_string_equal(err.field, "X");
    onnx_tensor bad_dim = {.dtype = ONNX_FLOAT, .rank = 2, .dims = {3, 2}, .data = x};
    assert_int_equal(onnx_run(m, &bad_dim, 1, NULL, &r, &err), MD_E_INVALID_PARAM);
    onnx_tensor bad_rank = {.dtype = ONNX_FLOAT, .rank = 1, .dims = {6}, .data = x};
    assert_int_equal(onnx_run(m, &bad_rank, 1, NULL, &r, &err), MD_E_INVALID_PARAM);
    onnx_tensor neg = {.dtype = ONNX_FLOAT, .rank = 2, .dims = {-2, 3}, .data = x};
    assert_int_equal(onnx_run(m, &neg, 1, NULL, &r, &err), MD_E_INVALID_PARAM);
    assert_int_equal(onnx_run(m, &bad_dim, 0, NULL, &r, &err), MD_E_INVALID_PARAM);
    assert_null(r);
    onnx_model_free(m);
}

/* Reshape whose target comes from an input: same input shapes, different output shapes.
 * The second run must notice the plan does not fit and still be right. */
static void test_data_dependent_shape(void **state)
{
    (void)state;
    bld b;
    static const int64_t D6[] = {6}, D2[] = {2}, DU[] = {-1, -1};
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 1, D6);
    bld_input(&b, "S", ONNX_INT64, 1, D2);
    bld_output(&b, "Y", ONNX_FLOAT, 2, DU);
    bld_node(&b, "Reshape", "r", (const char *[]){"X", "S", NULL}, (const char *[]){"R", NULL});
    bld_node(&b, "Transpose", "t", (const char *[]){"R", NULL}, (const char *[]){"T", NULL});
    bld_node(&b, "Concat", "c", (const char *[]){"T", "T", NULL}, (const char *[]){"Y", NULL});
    bld_attr_int(&b, b.node_p[2], "axis", 0);
    onnx_model *m = NULL;
    md_err err;
    assert_int_equal(bld_load(&b, &m, &err), MD_OK);
    float x[6] = {0, 1, 2, 3, 4, 5};
    int64_t s1[2] = {2, 3}, s2[2] = {6, 1};
    for (int pass = 0; pass < 3; pass++) {
        int64_t *s = pass == 1 ? s2 : s1;
        onnx_tensor in[2] = {{.dtype = ONNX_FLOAT, .rank = 1, .dims = {6}, .data = x},
                             {.dtype = ONNX_INT64, .rank = 1, .dims = {2}, .data = s}};
        onnx_result *r = NULL;
        assert_int_equal(onnx_run(m, in, 2, NULL, &r, &err), MD_OK);
        const onnx_tensor *y = onnx_result_output(r, 0);
        assert_int_equal(y->dims[0], 2 * s[1]);
        assert_int_equal(y->dims[1], s[0]);
        /* Transposed: y[i][j] = x[j * s1 + i] for the first copy. */
        for (int64_t i = 0; i < s[1]; i++)
            for (int64_t j = 0; j < s[0]; j++)
                assert_float_equal(((const float *)y->data)[i * s[0] + j], x[j * s[1] + i], 0);
        onnx_result_free(r);
    }
    onnx_model_free(m);
}

/* A node that makes something other than what the model declares is caught, by name. */
static void test_declared_shapes_checked(void **state)
{
    (void)state;
    bld b;
    static const int64_t D23[] = {2, 3}, D2[] = {2};
    static const int64_t shape[] = {3, 2};
    bld_init(&b, 13);
    bld_input(&b, "X", ONNX_FLOAT, 2, D23);
    bld_output(&b, "Y", ONNX_FLOAT, 2, D23); /* wrong: Reshape makes [3, 2] */
    Onnx__TensorProto *t = &b.inits[b.graph.n_initializer];
    onnx__tensor_proto__init(t);
    t->name = (char *)"S";
    t->has_data_type = 1;
    t->data_type = ONNX_INT64;
    t->n_dims = 1;
    t->dims = (int64_t *)D2;
    t->n_int64_data = 2;
    t->int64_data = (int64_t *)shape;
    b.init_p[b.graph.n_initializer++] = t;
    bld_node(&b, "Reshape", "r", (const char *[]){"X", "S", NULL}, (const char *[]){"Y", NULL});
    onnx_model *m = NULL;
    md_err err;
    assert_int_equal(bld_load(&b, &m, &err), MD_OK);
    float x[6] = {0};
    onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 2, .dims = {2, 3}, .data = x};
    onnx_result *r = NULL;
    assert_int_equal(onnx_run(m, &in, 1, NULL, &r, &err), MD_E_MODEL_INVALID);
    assert_non_null(strstr(err.msg, "'Y'"));
    assert_null(r);
    onnx_model_free(m);
}

typedef struct worker {
    const onnx_model *m;
    int id;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 40; i++)
        check_batch(w->m, 1 + (w->id + i) % 5, (float)w->id);
    return NULL;
}

static void test_concurrent_runs(void **state)
{
    (void)state;
    onnx_model *m = load_batch_model();
    pthread_t t[6];
    worker w[6];
    for (int i = 0; i < 6; i++) {
        w[i] = (worker){m, i};
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 6; i++)
        pthread_join(t[i], NULL);
    assert_true(m->n_plans <= 5);
    onnx_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dynamic_batch),
        cmocka_unit_test(test_plan_reuse_does_not_allocate),
        cmocka_unit_test(test_plan_memory_reuse),
        cmocka_unit_test(test_input_validation),
        cmocka_unit_test(test_data_dependent_shape),
        cmocka_unit_test(test_concurrent_runs),
        cmocka_unit_test(test_declared_shapes_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
