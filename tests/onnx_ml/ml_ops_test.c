/* ml_ops_test.c - the ai.onnx.ml operators (src/onnx/ops/ml_*.c) beyond what the conformance
 * cases in tests/fixtures/onnx_ml check by value: ZipMap's keys, models that must fail to load
 * with an error naming the attribute (tests/fixtures/onnx_ml_bad, from onnx_ml/gen.py), hostile
 * inputs at run time, one model run from several threads at once, and intra-op threads. */
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

#include "onnx/onnx.h"

static const char *fixture(const char *rel)
{
    static char path[4096];
    const char *src = getenv("MODELD_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/fixtures/%s", src ? src : ".", rel);
    return path;
}

static onnx_model *load(const char *rel)
{
    onnx_model *m = NULL;
    md_err err = {0};
    int rc = onnx_model_load_file(fixture(rel), NULL, &m, &err);
    if (rc)
        print_error("%s: %s\n", rel, md_err_message(&err));
    assert_int_equal(rc, MD_OK);
    return m;
}

/* A TensorProto file of a case (new, onnx_tensor_free). */
static onnx_tensor *load_pb(const char *rel)
{
    FILE *f = fopen(fixture(rel), "rb");
    assert_non_null(f);
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    onnx_tensor *t = NULL;
    md_err err = {0};
    assert_int_equal(onnx_tensor_parse(buf, n, &t, &err), MD_OK);
    return t;
}

static void check_zipmap(const char *name, int key_dtype, const int64_t *ikeys,
                         const char *const *skeys)
{
    char rel[256];
    snprintf(rel, sizeof rel, "onnx_ml/%s/model.onnx", name);
    onnx_model *m = load(rel);
    snprintf(rel, sizeof rel, "onnx_ml/%s/test_data_set_0/input_0.pb", name);
    onnx_tensor *x = load_pb(rel);
    snprintf(rel, sizeof rel, "onnx_ml/%s/test_data_set_0/output_1.pb", name);
    onnx_tensor *want = load_pb(rel);
    onnx_result *r = NULL;
    md_err err = {0};
    assert_int_equal(onnx_run(m, x, 1, NULL, &r, &err), MD_OK);
    const onnx_tensor *z = onnx_result_output(r, 1);
    assert_int_equal(z->kind, ONNX_KIND_SEQ_MAP);
    assert_int_equal(z->key_dtype, key_dtype);
    assert_int_equal(z->rank, 2);
    assert_int_equal(z->dims[0], want->dims[0]);
    assert_int_equal(z->dims[1], 3);
    for (int k = 0; k < 3; k++) {
        if (key_dtype == ONNX_INT64)
            assert_int_equal(((const int64_t *)z->map_keys)[k], ikeys[k]);
        else
            assert_string_equal(((const char *const *)z->map_keys)[k], skeys[k]);
    }
    const float *got = z->data, *exp = want->data;
    for (int64_t i = 0; i < z->dims[0]; i++) {
        float sum = 0;
        for (int k = 0; k < 3; k++) {
            assert_true(fabsf(got[i * 3 + k] - exp[i * 3 + k]) < 1e-5f);
            sum += got[i * 3 + k];
        }
        assert_true(fabsf(sum - 1.0f) < 1e-5f); /* softmax probabilities of one row */
    }
    onnx_result_free(r);
    onnx_tensor_free(x);
    onnx_tensor_free(want);
    onnx_model_free(m);
}

static void test_zipmap_keys(void **state)
{
    (void)state;
    const int64_t ik[] = {1, 2, 4};
    const char *const sk[] = {"red", "green", "blue"};
    check_zipmap("ml_zipmap_int64_pipeline", ONNX_INT64, ik, NULL);
    check_zipmap("ml_zipmap_string_pipeline", ONNX_STRING, NULL, sk);
}

/* bad_models.txt spells codes as in the MD_ERR_MAP enum. */
static int code_of(const char *name)
{
    if (strcmp(name, "MODEL_INVALID") == 0)
        return MD_E_MODEL_INVALID;
    if (strcmp(name, "UNSUPPORTED") == 0)
        return MD_E_UNSUPPORTED;
    fail_msg("unknown code %s", name);
    return -1;
}

static void test_bad_models_name_the_attribute(void **state)
{
    (void)state;
    FILE *f = fopen(fixture("onnx_ml_bad/bad_models.txt"), "r");
    assert_non_null(f);
    char line[256], name[64], code[32], field[64];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || sscanf(line, "%63s %31s %63s", name, code, field) != 3)
            continue;
        char rel[128];
        snprintf(rel, sizeof rel, "onnx_ml_bad/%s.onnx", name);
        onnx_model *m = NULL;
        md_err err = {0};
        int rc = onnx_model_load_file(fixture(rel), NULL, &m, &err);
        print_message("%-18s -> %s\n", name, md_err_message(&err));
        assert_null(m);
        assert_int_equal(rc, code_of(code));
        assert_string_equal(err.field, field);
        assert_non_null(strstr(md_err_message(&err), field)); /* the text names it too */
        n++;
    }
    fclose(f);
    assert_true(n >= 15);
}

static void test_hostile_inputs(void **state)
{
    (void)state;
    onnx_model *m = load("onnx_ml_bad/run_few_features.onnx");
    float data[8] = {1, 2, NAN, INFINITY, -INFINITY, 0, 1e30f, -1e30f};
    onnx_tensor x = {.dtype = ONNX_FLOAT, .rank = 2, .dims = {4, 2}, .data = data};
    onnx_result *r = NULL;
    md_err err = {0};
    assert_int_equal(onnx_run(m, &x, 1, NULL, &r, &err), MD_E_INVALID_PARAM);
    assert_non_null(strstr(md_err_message(&err), "feature"));
    assert_null(r);
    /* three columns with NaN and infinities: runs, every score finite */
    onnx_tensor x3 = {.dtype = ONNX_FLOAT, .rank = 2, .dims = {2, 3}, .data = data + 2};
    assert_int_equal(onnx_run(m, &x3, 1, NULL, &r, &err), MD_OK);
    const onnx_tensor *y = onnx_result_output(r, 0);
    assert_int_equal(y->dims[0], 2);
    for (int i = 0; i < 2; i++)
        assert_true(isfinite(((const float *)y->data)[i]));
    onnx_result_free(r);
    /* zero rows: an empty [0, 1] output */
    onnx_tensor x0 = {.dtype = ONNX_FLOAT, .rank = 2, .dims = {0, 3}, .data = data};
    assert_int_equal(onnx_run(m, &x0, 1, NULL, &r, &err), MD_OK);
    assert_int_equal(onnx_result_output(r, 0)->dims[0], 0);
    onnx_result_free(r);
    onnx_model_free(m);
}

typedef struct worker {
    const onnx_model *m;
    const onnx_tensor *x, *want;
    int bad;
} worker;

static void *run_loop(void *arg)
{
    worker *w = arg;
    for (int it = 0; it < 50; it++) {
        onnx_result *r = NULL;
        md_err err = {0};
        if (onnx_run(w->m, w->x, 1, NULL, &r, &err) != MD_OK) {
            w->bad++;
            continue;
        }
        const onnx_tensor *z = onnx_result_output(r, 1);
        int64_t n = onnx_tensor_numel(z);
        for (int64_t i = 0; i < n; i++)
            if (fabsf(((const float *)z->data)[i] - ((const float *)w->want->data)[i]) > 1e-5f)
                w->bad++;
        onnx_result_free(r);
    }
    return NULL;
}

static void test_concurrent_runs(void **state)
{
    (void)state;
    onnx_model *m = load("onnx_ml/ml_tree_classifier_xgboost_multi/model.onnx");
    onnx_tensor *x = load_pb("onnx_ml/ml_tree_classifier_xgboost_multi/test_data_set_0/input_0.pb");
    onnx_tensor *want =
        load_pb("onnx_ml/ml_tree_classifier_xgboost_multi/test_data_set_0/output_1.pb");
    enum { NT = 4 };
    pthread_t th[NT];
    worker w[NT];
    for (int i = 0; i < NT; i++) {
        w[i] = (worker){m, x, want, 0};
        assert_int_equal(pthread_create(&th[i], NULL, run_loop, &w[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].bad, 0);
    }
    onnx_tensor_free(x);
    onnx_tensor_free(want);
    onnx_model_free(m);
}

/* Row blocks scored on 3 threads give exactly the single-thread answer (320 rows = 5 blocks). */
static void test_intra_op_threads(void **state)
{
    (void)state;
    onnx_model *m = load("onnx_ml/ml_tree_classifier_xgboost_multi/model.onnx");
    onnx_tensor *x = load_pb("onnx_ml/ml_tree_classifier_xgboost_multi/test_data_set_0/input_0.pb");
    enum { REPS = 20 };
    int64_t rows = x->dims[0] * REPS, cols = x->dims[1];
    float *big = malloc((size_t)(rows * cols) * sizeof *big);
    for (int r = 0; r < REPS; r++)
        memcpy(big + r * x->dims[0] * cols, x->data, (size_t)(x->dims[0] * cols) * sizeof *big);
    onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 2, .dims = {rows, cols}, .data = big};
    onnx_result *r1 = NULL, *r3 = NULL;
    md_err err = {0};
    onnx_run_opts one = {.threads = 1}, three = {.threads = 3};
    assert_int_equal(onnx_run(m, &in, 1, &one, &r1, &err), MD_OK);
    assert_int_equal(onnx_run(m, &in, 1, &three, &r3, &err), MD_OK);
    for (int o = 0; o < 2; o++) {
        const onnx_tensor *a = onnx_result_output(r1, o), *b = onnx_result_output(r3, o);
        assert_int_equal(a->dims[0], rows);
        size_t bytes = (size_t)onnx_tensor_numel(a) * onnx_dtype_size(a->dtype);
        assert_memory_equal(a->data, b->data, bytes);
    }
    /* and the tiled rows repeat the first 16 */
    const float *z = onnx_result_output(r3, 1)->data;
    assert_memory_equal(z, z + (REPS - 1) * x->dims[0] * 3, (size_t)x->dims[0] * 3 * sizeof *z);
    onnx_result_free(r1);
    onnx_result_free(r3);
    free(big);
    onnx_tensor_free(x);
    onnx_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zipmap_keys),
        cmocka_unit_test(test_bad_models_name_the_attribute),
        cmocka_unit_test(test_hostile_inputs),
        cmocka_unit_test(test_concurrent_runs),
        cmocka_unit_test(test_intra_op_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
