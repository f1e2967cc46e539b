/* predictions_test.c - the prediction log (migration 8): batches of predictions are stored in
 * one transaction and listed newest first within a time window, paged by offset and limit,
 * with their feedback; feedback needs a logged prediction of the same model and replaces an
 * earlier one; ids are unique; oversized JSON is refused with the field named. The
 * write-behind log (predlog.c): rows wait in the queue until a batch fills or a reader needs
 * them, whole groups per transaction; a full queue waits for room, a group larger than the
 * queue is written inline after what is queued; stop writes everything; many threads adding at
 * once lose nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store.h"
#include "common/store_fixture.h"

#include <pthread.h>
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

static size_t count_rows(store *s, const char *model)
{
    store_prediction *rows = NULL;
    size_t n = 0;
    assert_int_equal(store_predictions_list(s, model, 0, 0, 0, 10000, &rows, &n, NULL), MD_OK);
    store_predictions_free(rows, n);
    return n;
}

static store_predlog_stats stats(store *s)
{
    store_predlog_stats st;
    store_predlog_stats_get(s, &st);
    return st;
}

static void test_write_behind_batches(void **state)
{
    store *s = fixture_store(state);
    /* a window far longer than the test: only a full batch or a reader makes the writer write */
    store_predlog_opts o = {.flush_ms = 600000, .batch_rows = 4};
    assert_int_equal(store_predlog_start(s, &o, NULL), MD_OK);
    char ids[10][STORE_PREDICTION_ID_MAX];
    for (int i = 0; i < 3; i++)
        log_n(s, "churn", 1, &ids[i]);
    assert_int_equal(stats(s).queued_rows, 3);
    assert_int_equal(stats(s).rows_written, 0);
    /* the reader waits for them: one transaction for the three groups */
    assert_int_equal(count_rows(s, "churn"), 3);
    store_predlog_stats st = stats(s);
    assert_int_equal(st.queued_rows, 0);
    assert_int_equal(st.rows_written, 3);
    assert_int_equal(st.batches, 1);
    /* feedback on a prediction that is still queued finds it */
    log_n(s, "churn", 1, &ids[3]);
    assert_int_equal(store_feedback_put(s, "churn", ids[3], "1", 5000, NULL), MD_OK);
    int64_t nf = 0;
    assert_int_equal(store_feedback_count(s, "churn", &nf, NULL), MD_OK);
    assert_int_equal(nf, 1);
    /* a group larger than a batch is one transaction of its own, written without a reader */
    log_n(s, "pricing", 10, ids);
    assert_int_equal(count_rows(s, "pricing"), 10);
    st = stats(s);
    assert_int_equal(st.rows_written, 14);
    assert_int_equal(st.batches, 3);
    assert_int_equal(st.rows_inline + st.rows_failed + st.waits, 0);
    uint64_t in_buckets = 0;
    for (int b = 0; b <= STORE_PREDLOG_NBUCKETS; b++)
        in_buckets += st.flush_buckets[b];
    assert_int_equal(in_buckets, st.batches);
    md_buf m;
    md_buf_init(&m, 1 << 16);
    store_predlog_metrics(&m, s);
    assert_non_null(strstr(m.data, "modeld_predict_log_rows_total{path=\"behind\"} 14\n"));
    assert_non_null(strstr(m.data, "modeld_predict_log_flush_seconds_count 3\n"));
    md_buf_free(&m);
}

static void test_write_behind_stop_and_full(void **state)
{
    store *s = fixture_store(state);
    store_predlog_opts o = {.flush_ms = 600000, .batch_rows = 100, .max_rows = 4, .wait_ms = 5000};
    assert_int_equal(store_predlog_start(s, &o, NULL), MD_OK);
    char ids[8][STORE_PREDICTION_ID_MAX];
    log_n(s, "churn", 3, ids);
    /* 3 + 3 > 4: the second group waits for room; the writer is asked to flush at once */
    log_n(s, "churn", 3, ids);
    store_predlog_stats st = stats(s);
    assert_int_equal(st.waits, 1);
    assert_int_equal(st.rows_inline, 0);
    assert_int_equal(st.queued_rows, 3); /* the first group was taken off to make room */
    /* larger than the whole queue: written inline, with the queued rows before it */
    log_n(s, "churn", 5, ids);
    st = stats(s);
    assert_int_equal(st.queued_rows, 0);
    assert_int_equal(st.rows_written + st.rows_inline, 11);
    log_n(s, "churn", 2, ids);
    assert_int_equal(stats(s).queued_rows, 2);
    /* stop writes what is queued; later rows are written inline */
    store_predlog_stop(s);
    st = stats(s);
    assert_int_equal(st.queued_rows, 0);
    assert_int_equal(st.rows_written + st.rows_inline, 13);
    log_n(s, "churn", 1, ids);
    assert_int_equal(stats(s).rows_inline, st.rows_inline + 1);
    assert_int_equal(count_rows(s, "churn"), 14);
    store_predlog_stop(s); /* idempotent */
}

typedef struct adder {
    store *s;
    int n;
} adder;

static void *add_many(void *arg)
{
    adder *a = arg;
    char id[3][STORE_PREDICTION_ID_MAX];
    for (int i = 0; i < a->n; i++)
        log_n(a->s, "churn", 1 + i % 3, id);
    return NULL;
}

static void test_write_behind_threads(void **state)
{
    store *s = fixture_store(state);
    store_predlog_opts o = {.flush_ms = 5, .batch_rows = 16, .max_rows = 64, .wait_ms = 50};
    assert_int_equal(store_predlog_start(s, &o, NULL), MD_OK);
    pthread_t t[4];
    adder a = {s, 150};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, add_many, &a), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    /* 150 groups of 1, 2, 3, ... rows per thread: 50 * 6 rows */
    assert_int_equal(count_rows(s, "churn"), 4 * 300);
    store_predlog_stats st = stats(s);
    assert_int_equal(st.rows_written + st.rows_inline, 4 * 300);
    assert_int_equal(st.rows_failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_window_and_pages, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_feedback, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_too_large, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_write_behind_batches, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_write_behind_stop_and_full, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_write_behind_threads, setup, tu_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
