/* predict_test.c - pl_predict / pl_predict_batch on the shipped predict models (models/) against
 * the answers of the reference training/predict/postprocess.py with libxgboost's raw outputs and
 * contributions (tests/fixtures/predict/expected.json, written by gen.py there); the schema's
 * errors name their field; a batch answers its good rows and lists the bad ones; only family
 * "predict" is served; the budget greedy equals a brute-force search on small grids. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "models/models.h"
#include "pipelines/pipelines.h"
#include "pipelines/predict_int.h"

static mdl_registry *reg;
static pl_ctx cx;
static json_t *expected;

static int setup(void **state)
{
    (void)state;
    const char *src = getenv("MODELD_SOURCE_DIR");
    char dir[1024], fx[1024];
    snprintf(dir, sizeof dir, "%s/models", src ? src : ".");
    snprintf(fx, sizeof fx, "%s/tests/fixtures/predict/expected.json", src ? src : ".");
    mdl_registry_opts o = {.shipped_dir = dir, .load_all = false};
    md_err e;
    if (mdl_registry_open(&o, &reg, &e) != MD_OK)
        return -1;
    cx.models = reg;
    expected = json_load_file(fx, 0, NULL);
    return expected ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(expected);
    mdl_registry_close(reg);
    return 0;
}

/* Every key of want is in got with the same value (numbers within 1e-4, relative above 1). */
static void assert_like(const json_t *want, const json_t *got, const char *path)
{
    if (json_is_number(want)) {
        if (!json_is_number(got))
            fail_msg("%s: expected a number", path);
        double a = json_number_value(want), b = json_number_value(got);
        double tol = 1e-4 * (fabs(a) > 1 ? fabs(a) : 1);
        if (fabs(a - b) > tol)
            fail_msg("%s: expected %.9g, got %.9g", path, a, b);
    } else if (json_is_object(want)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)want, k, v)
        {
            char p[256];
            snprintf(p, sizeof p, "%s.%s", path, k);
            if (!json_object_get(got, k))
                fail_msg("%s: missing", p);
            assert_like(v, json_object_get(got, k), p);
        }
    } else if (json_is_array(want)) {
        if (json_array_size(want) != json_array_size(got))
            fail_msg("%s: %zu items expected, got %zu", path, json_array_size(want),
                     json_array_size(got));
        for (size_t i = 0; i < json_array_size(want); i++) {
            char p[256];
            snprintf(p, sizeof p, "%s[%zu]", path, i);
            assert_like(json_array_get(want, i), json_array_get(got, i), p);
        }
    } else if (!json_equal((json_t *)want, (json_t *)got)) {
        char *a = json_dumps(want, JSON_ENCODE_ANY), *b = json_dumps(got, JSON_ENCODE_ANY);
        fail_msg("%s: expected %s, got %s", path, a, b ? b : "nothing");
    }
}

static void test_matches_reference(void **state)
{
    (void)state;
    json_t *cases = json_object_get(expected, "cases");
    assert_true(json_array_size(cases) >= 10);
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i), *out = NULL;
        const char *model = json_string_value(json_object_get(c, "model"));
        json_t *opt = json_object_get(c, "options");
        md_err e = {0};
        int rc = pl_predict(&cx, model, json_object_get(c, "features"),
                            json_is_null(opt) ? NULL : opt, &out, &e);
        if (rc != MD_OK)
            fail_msg("case %zu (%s): %s %s", i, model, e.field, md_err_message(&e));
        char p[64];
        snprintf(p, sizeof p, "case %zu (%s)", i, model);
        assert_like(json_object_get(c, "prediction"), json_object_get(out, "prediction"), p);
        json_t *ex = json_object_get(c, "explanation");
        if (!json_is_null(ex))
            assert_like(ex, json_object_get(out, "explanation"), p);
        assert_string_equal(json_string_value(json_object_get(out, "model")), model);
        assert_string_equal(json_string_value(json_object_get(out, "version")), "1");
        json_decref(out);
    }
}

/* The first churn case's features with one change; *f new. */
static json_t *churn_with(const char *key, json_t *val)
{
    json_t *c = json_array_get(json_object_get(expected, "cases"), 0);
    json_t *f = json_deep_copy(json_object_get(c, "features"));
    if (val)
        json_object_set_new(f, key, val);
    else
        json_object_del(f, key);
    return f;
}

static void expect_error(json_t *features, int code, const char *field)
{
    json_t *out = NULL;
    md_err e = {0};
    assert_int_equal(pl_predict(&cx, "churn", features, NULL, &out, &e), code);
    assert_null(out);
    assert_string_equal(e.field, field);
    json_decref(features);
}

static void test_schema_errors_name_the_field(void **state)
{
    (void)state;
    expect_error(churn_with("tenure", NULL), MD_E_MISSING_FIELD, "tenure");
    expect_error(churn_with("tenure", json_string("ten")), MD_E_INVALID_PARAM, "tenure");
    expect_error(churn_with("tenure", json_real(1.5)), MD_E_INVALID_PARAM, "tenure");
    expect_error(churn_with("tenure", json_integer(601)), MD_E_INVALID_PARAM, "tenure");
    expect_error(churn_with("contract", json_string("Ten year")), MD_E_INVALID_PARAM, "contract");
    expect_error(churn_with("contract", json_integer(1)), MD_E_INVALID_PARAM, "contract");
    expect_error(churn_with("colour", json_string("red")), MD_E_INVALID_PARAM, "colour");
    expect_error(json_array(), MD_E_INVALID_PARAM, "features");
    /* an integer column takes 3.0 (a number with no fraction) */
    json_t *f = churn_with("tenure", json_real(3.0)), *out = NULL;
    assert_int_equal(pl_predict(&cx, "churn", f, NULL, &out, NULL), MD_OK);
    json_decref(out);
    json_decref(f);
}

static void test_options_and_requests_errors(void **state)
{
    (void)state;
    json_t *cases = json_object_get(expected, "cases"), *pricing = NULL;
    for (size_t i = 0; i < json_array_size(cases) && !pricing; i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(cases, i), "model")),
                    "pricing"))
            pricing = json_object_get(json_array_get(cases, i), "features");
    assert_non_null(pricing);
    struct {
        const char *opt;
        const char *field;
    } bad[] = {{"{\"steps\": 1}", "steps"},
               {"{\"steps\": 1e300}", "steps"},
               {"{\"steps\": 20.5}", "steps"},
               {"{\"min_price\": -1}", "min_price"},
               {"{\"min_price\": 500, \"max_price\": 400}", "max_price"},
               {"{\"quantity\": 0}", "quantity"},
               {"{\"price\": 3}", "price"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *o = json_loads(bad[i].opt, 0, NULL), *out = NULL;
        md_err e = {0};
        assert_int_equal(pl_predict(&cx, "pricing", pricing, o, &out, &e), MD_E_INVALID_PARAM);
        assert_string_equal(e.field, bad[i].field);
        json_decref(o);
    }
    const char *breqs[][2] = {
        {"{\"total\": 0}", "total"},
        {"{}", "total"},
        {"{\"total\": 100, \"channels\": {\"tv\": {}}}", "channels.tv"},
        {"{\"total\": 100, \"channels\": {\"search\": {\"max\": 50}}}", "total"},
        {"{\"total\": 10, \"channels\": {\"search\": {\"min\": 20}}}",
         "channels.search"}, /* max defaults to total */
        {"{\"total\": 10, \"channels\": {\"search\": {\"min\": 6}, "
         "\"social\": {\"min\": 6}}}",
         "total"},
        {"{\"total\": 10, \"channels\": {\"search\": {\"min\": 5, "
         "\"max\": 2}}}",
         "channels.search"}};
    for (size_t i = 0; i < sizeof breqs / sizeof breqs[0]; i++) {
        json_t *r = json_loads(breqs[i][0], 0, NULL), *out = NULL;
        md_err e = {0};
        assert_int_equal(pl_predict(&cx, "budget", r, NULL, &out, &e) != MD_OK, 1);
        assert_string_equal(e.field, breqs[i][1]);
        json_decref(r);
    }
    const char *freqs[][2] = {
        {"{\"history\": [1,2,3], \"last_date\": \"2016-01-01\"}", "history"},
        {"{\"history\": [1,1,1,1,1,1,1,1,1,1,1,1,1,1], \"last_date\": \"2016-02-30\"}",
         "last_date"},
        {"{\"history\": [1,1,1,1,1,1,1,1,1,1,1,1,1,1], \"last_date\": \"2016-02-03\", "
         "\"horizon\": 15}",
         "horizon"},
        {"{\"history\": [1,1,1,1,1,1,1,0,0,0,0,0,0,0], \"last_date\": \"2016-02-03\"}", "history"}};
    for (size_t i = 0; i < sizeof freqs / sizeof freqs[0]; i++) {
        json_t *r = json_loads(freqs[i][0], 0, NULL), *out = NULL;
        md_err e = {0};
        assert_int_equal(pl_predict(&cx, "demand", r, NULL, &out, &e), MD_E_INVALID_PARAM);
        assert_string_equal(e.field, freqs[i][1]);
        json_decref(r);
    }
}

static void test_batch_lists_bad_rows(void **state)
{
    (void)state;
    json_t *items = json_array();
    json_array_append_new(items, churn_with("tenure", json_integer(3)));
    json_array_append_new(items, churn_with("tenure", NULL));
    json_array_append_new(items, churn_with("tenure", json_integer(40)));
    json_array_append_new(items, json_string("not a row"));
    json_t *out = NULL;
    md_err e = {0};
    assert_int_equal(pl_predict_batch(&cx, "churn", items, NULL, &out, &e), MD_OK);
    assert_int_equal(json_integer_value(json_object_get(out, "count")), 2);
    json_t *preds = json_object_get(out, "predictions"), *failed = json_object_get(out, "failed");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(preds, 1), "index")), 2);
    assert_int_equal(json_array_size(failed), 2);
    json_t *f0 = json_array_get(failed, 0);
    assert_int_equal(json_integer_value(json_object_get(f0, "index")), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(f0, "error"), "field")),
                        "tenure");
    /* each good row equals its single prediction */
    json_t *single = NULL;
    assert_int_equal(pl_predict(&cx, "churn", json_array_get(items, 2), NULL, &single, NULL),
                     MD_OK);
    assert_like(json_object_get(single, "prediction"),
                json_object_get(json_array_get(preds, 1), "prediction"), "batch row 2");
    json_decref(single);
    json_decref(out);
    assert_int_equal(
        pl_predict_batch(&cx, "churn", json_object_get(out ? NULL : items, "x"), NULL, &out, &e),
        MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "items");
    json_decref(items);
}

/* pl_table answers CSV cells as pl_csv_object + pl_predict_batch (no explanations) do: the same
 * prediction for good rows, the same error (code, field, message) for bad ones: a missing
 * required cell, an integer with a fraction, a word for a number, a number for a label, an
 * unknown label, an out-of-range value, an empty row, an unknown column with and without a
 * value, a number written with an exponent, a cell that is not UTF-8. */
static void test_table_is_the_batch(void **state)
{
    (void)state;
    static const char *const names[] = {
        "female", "senior_citizen", "partner", "dependents", "tenure", "phone_service",
        "multiple_lines", "internet_service", "online_security", "online_backup",
        "device_protection", "tech_support", "streaming_tv", "streaming_movies", "contract",
        "paperless_billing", "payment_method", "monthly_charges", "total_charges", "extra"};
    static const char *const good[] = {"1", "0", "1", "0", "12", "1", "No", "DSL", "No", "Yes",
                                       "No", "No", "No", "No", "Month-to-month", "1",
                                       "Electronic check", "29.85", "358.2", ""};
    const struct {
        size_t col;
        const char *cell;
    } edits[] = {{0, NULL},   {4, ""},     {4, "1.5"},    {4, "x"},      {6, "7"},
                 {6, "Maybe"}, {4, "-1"},  {19, "5"},     {4, "1e1"},    {17, "3.5e1"},
                 {7, "\xff"}, {17, "inf"}, {18, "-0"},   {0, "+1"},     {99, NULL}};
    size_t n = sizeof edits / sizeof edits[0], ncols = sizeof names / sizeof names[0];
    pl_table *t = NULL;
    md_err e = {0};
    assert_int_equal(pl_table_open(&cx, "churn", names, ncols, &t, &e), MD_OK);
    json_t *items = json_array();
    for (size_t r = 0; r < n; r++) {
        const char *f[sizeof names / sizeof names[0]];
        size_t lens[sizeof names / sizeof names[0]];
        for (size_t j = 0; j < ncols; j++) {
            f[j] = edits[r].col == 99 ? "" : j == edits[r].col && edits[r].cell ? edits[r].cell : good[j];
            lens[j] = strlen(f[j]);
        }
        assert_int_equal(pl_table_add(t, f, lens, ncols, &e), MD_OK);
        json_array_append_new(items, pl_csv_object(names, ncols, f, lens, ncols));
    }
    json_t *preds[PL_PREDICT_BATCH_MAX] = {0}, *out = NULL;
    md_err errs[16];
    size_t got = 0;
    assert_int_equal(pl_table_run(t, preds, errs, &got, &e), MD_OK);
    assert_int_equal(got, n);
    pl_ctx bx = cx;
    bx.no_explain = true;
    assert_int_equal(pl_predict_batch(&bx, "churn", items, NULL, &out, &e), MD_OK);
    size_t ok = 0, bad = 0;
    for (size_t r = 0; r < n; r++) {
        json_t *p = json_array_get(json_object_get(out, "predictions"), ok);
        json_t *f = json_array_get(json_object_get(out, "failed"), bad);
        if (preds[r]) {
            assert_int_equal(json_integer_value(json_object_get(p, "index")), r);
            assert_true(json_equal(preds[r], json_object_get(p, "prediction")));
            ok++;
            continue;
        }
        json_t *fe = json_object_get(f, "error");
        assert_int_equal(json_integer_value(json_object_get(f, "index")), r);
        assert_string_equal(md_err_name(errs[r].code), json_string_value(json_object_get(fe, "code")));
        assert_string_equal(errs[r].field, json_string_value(json_object_get(fe, "field")) ?: "");
        assert_string_equal(md_err_message(&errs[r]),
                            json_string_value(json_object_get(fe, "message")));
        bad++;
    }
    assert_true(ok >= 4 && bad >= 8);
    for (size_t r = 0; r < n; r++)
        json_decref(preds[r]);
    json_decref(out);
    json_decref(items);
    pl_table_close(t);
    assert_int_equal(pl_table_open(&cx, "budget", names, ncols, &t, &e), MD_E_UNSUPPORTED);
    assert_int_equal(pl_table_open(&cx, "no-such-model", names, ncols, &t, &e),
                     MD_E_MODEL_NOT_FOUND);
}

static void test_only_predict_models(void **state)
{
    (void)state;
    json_t *f = json_object(), *out = NULL;
    md_err e = {0};
    assert_int_equal(pl_predict(&cx, "breast-cancer-xgb", f, NULL, &out, &e), MD_E_MODEL_NOT_FOUND);
    assert_int_equal(pl_predict(&cx, "no-such-model", f, NULL, &out, &e), MD_E_MODEL_NOT_FOUND);
    json_decref(f);
}

static double curve(double a, double b, double x)
{
    return a * (1.0 - exp(-b * x));
}

/* Best total return over every split of steps increments of d among n channels within bounds. */
static double brute(size_t n, const double *a, const double *b, const double *lo, const double *hi,
                    double d, int left, size_t k, double *x)
{
    if (k == n - 1) {
        x[k] = lo[k] + left * d;
        if (x[k] > hi[k] + 1e-9)
            return -INFINITY;
        double s = 0;
        for (size_t i = 0; i < n; i++)
            s += curve(a[i], b[i], x[i]);
        return s;
    }
    double best = -INFINITY;
    for (int j = 0; j <= left; j++) {
        x[k] = lo[k] + j * d;
        if (x[k] > hi[k] + 1e-9)
            break;
        double v = brute(n, a, b, lo, hi, d, left - j, k + 1, x);
        best = v > best ? v : best;
    }
    return best;
}

static void test_greedy_equals_brute_force(void **state)
{
    (void)state;
    unsigned seed = 7;
    for (int t = 0; t < 60; t++) {
        size_t n = 2 + (size_t)(t % 3);
        double a[4], b[4], lo[4], hi[4], x[4], y[4], total = 0;
        int steps = 6 + t % 7;
        for (size_t k = 0; k < n; k++) {
            seed = seed * 1103515245u + 12345u;
            a[k] = 10 + (seed >> 16) % 100;
            seed = seed * 1103515245u + 12345u;
            b[k] = 0.01 + ((seed >> 16) % 100) / 500.0;
            lo[k] = (t % 2) ? (double)(k * 2) : 0.0;
            hi[k] = 1000;
            total += lo[k];
        }
        double d = 5.0;
        total += d * steps;
        if (t % 4 == 3)
            hi[0] = lo[0] + 2 * d; /* a binding maximum */
        pr__greedy(n, a, b, lo, hi, total, steps, x);
        double g = 0, s = 0;
        for (size_t k = 0; k < n; k++) {
            g += curve(a[k], b[k], x[k]);
            s += x[k];
            assert_true(x[k] >= lo[k] - 1e-9 && x[k] <= hi[k] + 1e-9);
        }
        assert_true(fabs(s - total) < 1e-6 * total);
        double best = brute(n, a, b, lo, hi, d, steps, 0, y);
        if (fabs(g - best) > 1e-9 * best)
            fail_msg("trial %d: greedy %.12g, brute force %.12g", t, g, best);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_reference),
        cmocka_unit_test(test_schema_errors_name_the_field),
        cmocka_unit_test(test_options_and_requests_errors),
        cmocka_unit_test(test_batch_lists_bad_rows),
        cmocka_unit_test(test_table_is_the_batch),
        cmocka_unit_test(test_only_predict_models),
        cmocka_unit_test(test_greedy_equals_brute_force),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
