/* cancel_test.c - onnx_run_opts.cancel: progress "node i/n" for the top graph, a cancel asked
 * from the progress sink stops the run before the next node (naming it), an expired deadline
 * stops it before the first, and a Loop whose body would run ten million times stops between
 * iterations when its deadline passes (the loop body is checked, not only the top graph). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/clock.h"
#include "onnx/onnx.h"
#include "onnx/onnx_builder.h"

static const int64_t D3[] = {3};
static const float B3[] = {1, 2, 3};

/* Y = Sigmoid(X * B) + B: three nodes "m", "s", "a". */
static onnx_model *load_chain(void)
{
    bld b;
    bld_sigmoid_chain(&b, 1, D3, B3);
    onnx_model *m = NULL;
    md_err err;
    assert_int_equal(bld_load(&b, &m, &err), MD_OK);
    return m;
}

typedef struct sink {
    md_cancel *tok;
    const char *cancel_at; /* stage prefix that triggers md_cancel_request */
    char stages[8][96];
    double fractions[8];
    int n;
} sink;

static void on_progress(void *ctx, double f, const char *stage)
{
    sink *s = ctx;
    if (s->n < 8) {
        snprintf(s->stages[s->n], sizeof s->stages[0], "%s", stage);
        s->fractions[s->n++] = f;
    }
    if (s->cancel_at && strncmp(stage, s->cancel_at, strlen(s->cancel_at)) == 0)
        md_cancel_request(s->tok);
}

static void test_progress_per_node(void **state)
{
    (void)state;
    onnx_model *m = load_chain();
    float x[3] = {0.5f, -1.f, 2.f};
    onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 1, .dims = {3}, .data = x};
    md_cancel tok;
    md_cancel_init(&tok, 0);
    sink s = {.tok = &tok};
    tok.progress = on_progress;
    tok.progress_ctx = &s;
    onnx_run_opts ro = {.cancel = &tok};
    onnx_result *r = NULL;
    md_err err;
    assert_int_equal(onnx_run(m, &in, 1, &ro, &r, &err), MD_OK);
    onnx_result_free(r);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.stages[0], "node 1/3 'm'");
    assert_string_equal(s.stages[2], "node 3/3 'a'");
    assert_string_equal(s.stages[3], "done");
    for (int i = 1; i < s.n; i++)
        assert_true(s.fractions[i] > s.fractions[i - 1]);
    assert_true(s.fractions[3] == 1.0);
    onnx_model_free(m);
}

static void test_cancel_between_nodes(void **state)
{
    (void)state;
    onnx_model *m = load_chain();
    float x[3] = {0};
    onnx_tensor in = {.dtype = ONNX_FLOAT, .rank = 1, .dims = {3}, .data = x};
    md_cancel tok;
    md_cancel_init(&tok, 0);
    sink s = {.tok = &tok, .cancel_at = "node 2/3"};
    tok.progress = on_progress;
    tok.progress_ctx = &s;
    onnx_run_opts ro = {.cancel = &tok};
    onnx_result *r = NULL;
    md_err err;
    assert_int_equal(onnx_run(m, &in, 1, &ro, &r, &err), MD_E_CANCELLED);
    assert_null(r);
    assert_non_null(strstr(err.msg, "node 2/3 's'"));
    assert_int_equal(s.n, 2); /* node 1 ran, node 2 did not */
    /* the model still runs afterwards (the stopped run state went back to its plan) */
    assert_int_equal(onnx_run(m, &in, 1, NULL, &r, &err), MD_OK);
    onnx_result_free(r);
    md_cancel_init(&tok, md_now_ns() - 1); /* a deadline already past */
    assert_int_equal(onnx_run(m, &in, 1, &ro, &r, &err), MD_E_TIMEOUT);
    assert_non_null(strstr(err.msg, "node 1/3"));
    onnx_model_free(m);
}

/* ONNX's own Range-as-a-Loop test model (Debian libonnx-testdata,
 * test_range_float_type_positive_delta_expanded): the body runs once per element. Asked for
 * ten million elements, it would run past the executor's million-iteration cap (refused as
 * invalid_parameter after seconds); the check before every body run stops it at its 50 ms
 * deadline instead. */
static void test_loop_body_checks_the_deadline(void **state)
{
    (void)state;
    const char *path = "/usr/share/libonnx-testdata/data/node/"
                       "test_range_float_type_positive_delta_expanded/model.onnx";
    if (access(path, R_OK) != 0)
        skip();
    onnx_model *m = NULL;
    md_err err;
    assert_int_equal(onnx_model_load_file(path, NULL, &m, &err), MD_OK);
    float start = 0, limit = 1e7f, delta = 1;
    onnx_tensor in[3] = {{.dtype = ONNX_FLOAT, .rank = 0, .data = &start},
                         {.dtype = ONNX_FLOAT, .rank = 0, .data = &limit},
                         {.dtype = ONNX_FLOAT, .rank = 0, .data = &delta}};
    md_cancel tok;
    md_cancel_init(&tok, md_now_ns() + 50 * 1000000ull);
    onnx_run_opts ro = {.cancel = &tok};
    onnx_result *r = NULL;
    int rc = onnx_run(m, in, 3, &ro, &r, &err);
    if (rc != MD_E_TIMEOUT)
        fail_msg("rc %s: %s", md_err_name(rc), err.msg);
    assert_null(r);
    assert_non_null(strstr(err.msg, "deadline"));
    start = 1, limit = 5, delta = 2; /* the case's own inputs run to the end without a token */
    assert_int_equal(onnx_run(m, in, 3, NULL, &r, &err), MD_OK);
    assert_int_equal(onnx_result_output(r, 0)->dims[0], 2);
    onnx_result_free(r);
    onnx_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_progress_per_node),
        cmocka_unit_test(test_cancel_between_nodes),
        cmocka_unit_test(test_loop_body_checks_the_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
