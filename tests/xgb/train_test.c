/* train_test.c - xgb_train: a tiny data set trains, the model loads and predicts what it
 * learnt, the bytes are the same on a second run (seed + one thread), progress runs round by
 * round and can stop the training, and bad options name their field. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "xgb/xgb.h"

#define N 200

/* Two features; the label is 1 when x0 + x1 > 1 (a separable problem with some NaN). */
static void make_data(float *x, float *y)
{
    uint32_t s = 12345;
    for (size_t i = 0; i < N; i++) {
        s = s * 1103515245u + 12345u;
        float a = (float)((s >> 8) % 1000) / 1000.0f;
        s = s * 1103515245u + 12345u;
        float b = (float)((s >> 8) % 1000) / 1000.0f;
        x[2 * i] = a;
        x[2 * i + 1] = i % 17 == 0 ? NAN : b;
        y[i] = a + b > 1.0f ? 1.0f : 0.0f;
    }
}

static const xgb_train_param PARAMS[] = {{"objective", "binary:logistic"},
                                         {"max_depth", "3"},
                                         {"eta", "0.3"},
                                         {"subsample", "0.8"},
                                         {"seed", "7"},
                                         {"tree_method", "hist"}};

static int rounds_seen;

static int count_round(void *user, int round, int rounds, md_err *err)
{
    (void)user;
    (void)err;
    assert_int_equal(round, rounds_seen + 1);
    assert_int_equal(rounds, 20);
    rounds_seen = round;
    return MD_OK;
}

static void test_trains_and_predicts(void **state)
{
    (void)state;
    float x[2 * N], y[N];
    make_data(x, y);
    xgb_train_opts o = {.params = PARAMS, .nparams = 6, .rounds = 20, .on_round = count_round};
    char *model = NULL, *config = NULL;
    size_t len = 0;
    md_err e = {0};
    rounds_seen = 0;
    assert_int_equal(xgb_train(x, N, 2, y, &o, &model, &len, &config, &e), MD_OK);
    assert_int_equal(rounds_seen, 20);
    assert_non_null(strstr(config, "binary:logistic"));
    xgb_model *m = NULL;
    assert_int_equal(xgb_model_load_bytes(model, len, NULL, &m, &e), MD_OK);
    assert_int_equal(xgb_model_info(m)->num_features, 2);
    assert_int_equal(xgb_model_info(m)->boosted_rounds, 20);
    float p[N];
    assert_int_equal(xgb_predict(m, x, N, 2, p, N, &e), MD_OK);
    size_t right = 0;
    for (size_t i = 0; i < N; i++)
        right += (p[i] >= 0.5f) == (y[i] >= 0.5f);
    assert_true(right >= N * 9 / 10); /* it learnt the rule, not a constant */
    xgb_model_free(m);

    o.on_round = NULL;
    char *again = NULL;
    size_t len2 = 0;
    assert_int_equal(xgb_train(x, N, 2, y, &o, &again, &len2, NULL, &e), MD_OK);
    assert_int_equal(len, len2);
    assert_memory_equal(model, again, len); /* deterministic */
    free(again);
    free(model);
    free(config);
}

static int stop_at_3(void *user, int round, int rounds, md_err *err)
{
    (void)user;
    (void)rounds;
    return round == 3 ? md_fail(err, MD_E_CANCELLED, NULL, "stopped") : MD_OK;
}

static void test_round_callback_stops(void **state)
{
    (void)state;
    float x[2 * N], y[N];
    make_data(x, y);
    xgb_train_opts o = {.params = PARAMS, .nparams = 6, .rounds = 20, .on_round = stop_at_3};
    char *model = NULL;
    size_t len = 0;
    md_err e = {0};
    assert_int_equal(xgb_train(x, N, 2, y, &o, &model, &len, NULL, &e), MD_E_CANCELLED);
    assert_null(model);
}

static void test_bad_options_name_the_field(void **state)
{
    (void)state;
    float x[2 * N], y[N];
    make_data(x, y);
    char *model = NULL;
    size_t len = 0;
    md_err e = {0};
    xgb_train_opts o = {.params = PARAMS, .nparams = 6, .rounds = 0};
    assert_int_equal(xgb_train(x, N, 2, y, &o, &model, &len, NULL, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "rounds");
    o.rounds = 5;
    o.nthread = 8;
    assert_int_equal(xgb_train(x, N, 2, y, &o, &model, &len, NULL, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "nthread");
    o.nthread = 1;
    assert_int_equal(xgb_train(x, 0, 2, y, &o, &model, &len, NULL, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "rows");
    const xgb_train_param bad[] = {{"objective", "binary:nonsense"}};
    o.params = bad;
    o.nparams = 1;
    assert_int_equal(xgb_train(x, N, 2, y, &o, &model, &len, NULL, &e), MD_E_INVALID_PARAM);
    assert_null(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trains_and_predicts),
        cmocka_unit_test(test_round_callback_stops),
        cmocka_unit_test(test_bad_options_name_the_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
