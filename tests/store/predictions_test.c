/* predictions_test.c - the prediction log (migration 8): batches of predictions are stored in
 * one transaction and listed newest first within a time window, paged by offset and limit,
 * with their feedback; feedback needs a logged prediction of the same model and replaces an
 * earlier one; ids are unique; oversized JSON is refused with the field named. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store.h"
#include "common/store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int setup(void **state)
{
    return tu_store_setup_with(state, NULL, false);
}

static store *fixture_store(void **state)
{
    return ((tu_store *)*state)->s;
}

/* n predictions of model at times 1000 + i, inputs {"i": i}. */
static void log_n(store *s, const char *model, int n, char ids[][STORE_PREDICTION_ID_MAX])
{
    store_prediction *p = calloc((size_t)n, sizeof *p);
    char(*in)[32] = calloc((size_t)n, sizeof *in);
    for (int i = 0; i < n; i++) {
        store_prediction_id(ids[i]);
        memcpy(p[i].id, ids[i], STORE_PREDICTION_ID_MAX);
        snprintf(p[i].model, sizeof p[i].model, "%s", model);
        snprintf(p[i].version, sizeof p[i].version, "1");
        snprintf(in[i], sizeof in[i], "{\"i\": %d}", i);
        p[i].inputs = in[i];
        p[i].outputs = "{\"y\": 1}";
        p[i].time_ms = 1000 + i;
    }
    assert_int_equal(store_predictions_add(s, p, (size_t)n, NULL), MD_OK);
    free(p);
    free(in);
}

static void test_window_and_pages(void **state)
{
    store *s = fixture_store(state);
    char ids[10][STORE_PREDICTION_ID_MAX], other[2][STORE_PREDICTION_ID_MAX];
    log_n(s, "churn", 10, ids);
    log_n(s, "pricing", 2, other);
    assert_string_not_equal(ids[0], ids[1]);
    assert_int_equal(strncmp(ids[0], "p_", 2), 0);
    store_prediction *rows = NULL;
    size_t n = 0;
    assert_int_equal(store_predictions_list(s, "churn", 0, 0, 0, 4, &rows, &n, NULL), MD_OK);
    assert_int_equal(n, 4);
    assert_string_equal(rows[0].id, ids[9]);
    assert_string_equal(rows[3].id, ids[6]);
    assert_string_equal(rows[0].inputs, "{\"i\": 9}");
    assert_null(rows[0].actual);
    store_predictions_free(rows, n);
    assert_int_equal(store_predictions_list(s, "churn", 1003, 1006, 1, 100, &rows, &n, NULL),
                     MD_OK);
    assert_int_equal(n, 2); /* 1004, 1003: 1005 skipped by the offset, 1006 excluded */
    assert_int_equal(rows[0].time_ms, 1004);
    assert_int_equal(rows[1].time_ms, 1003);
    store_predictions_free(rows, n);
    md_err e = {0};
    assert_int_equal(store_predictions_list(s, "churn", 0, 0, 0, 0, &rows, &n, &e),
                     MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "limit");
}

static void test_feedback(void **state)
{
    store *s = fixture_store(state);
    char ids[2][STORE_PREDICTION_ID_MAX];
    log_n(s, "churn", 2, ids);
    md_err e = {0};
    assert_int_equal(store_feedback_put(s, "churn", ids[1], "1", 5000, NULL), MD_OK);
    assert_int_equal(store_feedback_put(s, "churn", ids[1], "0", 5001, NULL), MD_OK);
    assert_int_equal(store_feedback_put(s, "pricing", ids[0], "1", 5000, &e), MD_E_NOT_FOUND);
    assert_string_equal(e.field, "prediction_id");
    assert_int_equal(store_feedback_put(s, "churn", "p_none", "1", 5000, &e), MD_E_NOT_FOUND);
    store_prediction *rows = NULL;
    size_t n = 0;
    assert_int_equal(store_predictions_list(s, "churn", 0, 0, 0, 10, &rows, &n, NULL), MD_OK);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].actual, "0");
    assert_null(rows[1].actual);
    store_predictions_free(rows, n);
}

static void test_too_large(void **state)
{
    store *s = fixture_store(state);
    char *big = malloc(STORE_PREDICTION_JSON_MAX + 2);
    memset(big, ' ', STORE_PREDICTION_JSON_MAX + 1);
    big[STORE_PREDICTION_JSON_MAX + 1] = '\0';
    store_prediction p = {.inputs = "{}", .outputs = big, .time_ms = 1};
    store_prediction_id(p.id);
    snprintf(p.model, sizeof p.model, "churn");
    md_err e = {0};
    assert_int_equal(store_predictions_add(s, &p, 1, &e), MD_E_TOO_LARGE);
    assert_string_equal(e.field, "outputs");
    free(big);
    store_prediction *rows = NULL;
    size_t n = 0;
    assert_int_equal(store_predictions_list(s, "churn", 0, 0, 0, 10, &rows, &n, NULL), MD_OK);
    assert_int_equal(n, 0); /* all or none */
    store_predictions_free(rows, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_window_and_pages, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_feedback, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_too_large, setup, tu_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
