/* forest_test.c - our own tree walk (src/xgb/forest.c) against libxgboost: on every shipped
 * XGBoost model (models/<name>/1: regression, logistic, softprob, the isolation forest) and
 * every fixture (tests/fixtures/xgb: also count:poisson), thousands of rows around the
 * manifests' validation rows, with missing values and split-boundary values, must give
 * libxgboost's outputs within 1e-5 (relative above 1). Also: the engine each model gets, the
 * libxgboost-only option, and a model we do not walk (a ranking objective). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/tmpdir.h"
#include "xgb/xgb.h"

#define ROWS 3000

static const char *const SHIPPED[] = {
    "breast-cancer-xgb", "churn",  "profitability", "revenue-leak",
    "pricing",           "budget", "demand",        "anomaly"};
static const char *const FIXTURES[] = {"reg", "binary", "multi", "poisson"};

/* MODELD_SOURCE_DIR/<fmt % name>, in a static buffer (copy it before the next call). */
static const char *src_path(const char *fmt, const char *name)
{
    static char path[4096];
    char rel[512];
    snprintf(rel, sizeof rel, fmt, name);
    const char *src = getenv("MODELD_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/%s", src ? src : ".", rel);
    return path;
}

static uint64_t rng = 88172645463325252ull;
static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* The validation rows of a shipped model's manifest, into seeds (n * nf floats); count. */
static size_t manifest_rows(const char *name, size_t nf, float *seeds, size_t cap)
{
    json_error_t je;
    json_t *mf = json_load_file(src_path("models/%s/1/modeld.json", name), 0, &je);
    assert_non_null(mf);
    const json_t *samples = json_object_get(json_object_get(mf, "validation"), "samples");
    size_t n = 0, i;
    const json_t *s;
    json_array_foreach(samples, i, s)
    {
        const json_t *rows = json_object_get(json_object_get(s, "inputs"), "features");
        size_t r;
        const json_t *row;
        json_array_foreach(rows, r, row)
        {
            if (n == cap)
                break;
            assert_int_equal(json_array_size(row), nf);
            for (size_t j = 0; j < nf; j++)
                seeds[n * nf + j] = (float)json_number_value(json_array_get(row, j));
            n++;
        }
    }
    json_decref(mf);
    return n;
}

/* ROWS rows around the seeds: scaled by U(0.5, 1.5), some exactly a seed value (a split
 * threshold often is one), 5% NaN, some zero. */
static void make_rows(const float *seeds, size_t nseeds, size_t nf, float *x)
{
    for (size_t r = 0; r < ROWS; r++)
        for (size_t j = 0; j < nf; j++) {
            float v = seeds[(size_t)(uniform() * (double)nseeds) % nseeds * nf + j];
            double u = uniform();
            x[r * nf + j] = u < 0.05   ? NAN
                            : u < 0.08 ? 0.0f
                            : u < 0.3  ? v
                                       : (float)(v * (0.5 + uniform()));
        }
}

/* Our walk and libxgboost on the same rows: within 1e-5; returns the largest difference. */
static double compare(const xgb_model *m, const float *x, size_t nrows, const char *what)
{
    const xgb_info *in = xgb_model_info(m);
    size_t n = nrows * in->num_outputs;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    md_err err = {0};
    assert_int_equal(xgb_predict(m, x, nrows, in->num_features, a, n, &err), MD_OK);
    assert_int_equal(xgb_predict_reference(m, x, nrows, in->num_features, b, n, &err), MD_OK);
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)b[i]));
        if (!(d <= 1e-5))
            fail_msg("%s: output %zu: ours %.9g, libxgboost %.9g", what, i, a[i], b[i]);
        worst = fmax(worst, d);
    }
    /* one row at a time gives what the batch gave */
    for (size_t r = 0; r < nrows; r += 97) {
        float one[8];
        assert_int_equal(
            xgb_predict(m, x + r * in->num_features, 1, in->num_features, one, 8, &err), MD_OK);
        for (size_t k = 0; k < in->num_outputs; k++)
            assert_true(one[k] == a[r * in->num_outputs + k]);
    }
    free(a);
    free(b);
    return worst;
}

static void check_model(const char *path, const float *seeds, size_t nseeds, const char *what)
{
    xgb_model *m = NULL;
    md_err err = {0};
    assert_int_equal(xgb_model_load(path, NULL, &m, &err), MD_OK);
    assert_string_equal(xgb_model_engine(m), "native");
    size_t nf = xgb_model_info(m)->num_features;
    float *x = malloc(ROWS * nf * sizeof *x);
    make_rows(seeds, nseeds, nf, x);
    double worst = compare(m, x, ROWS, what);
    print_message("%-18s %-18s max relative difference %.3g\n", what, xgb_model_info(m)->objective,
                  worst);
    free(x);
    xgb_model_free(m);
}

static void test_shipped_models_match_libxgboost(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof SHIPPED / sizeof SHIPPED[0]; k++) {
        xgb_model *m = NULL;
        md_err err = {0};
        char path[4096];
        snprintf(path, sizeof path, "%s", src_path("models/%s/1/model.json", SHIPPED[k]));
        assert_int_equal(xgb_model_load(path, NULL, &m, &err), MD_OK);
        size_t nf = xgb_model_info(m)->num_features;
        xgb_model_free(m);
        float *seeds = malloc(64 * nf * sizeof *seeds);
        size_t n = manifest_rows(SHIPPED[k], nf, seeds, 64);
        assert_true(n >= 3);
        check_model(path, seeds, n, SHIPPED[k]);
        free(seeds);
    }
}

static void test_fixtures_match_libxgboost(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof FIXTURES / sizeof FIXTURES[0]; k++) {
        for (int ubj = 0; ubj < 2; ubj++) {
            char file[64];
            snprintf(file, sizeof file, "%s.%s", FIXTURES[k], ubj ? "ubj" : "json");
            char path[4096];
            snprintf(path, sizeof path, "%s", src_path("tests/fixtures/xgb/%s", file));
            xgb_model *m = NULL;
            md_err err = {0};
            assert_int_equal(xgb_model_load(path, NULL, &m, &err), MD_OK);
            size_t nf = xgb_model_info(m)->num_features;
            xgb_model_free(m);
            size_t len = 0;
            char in[64];
            snprintf(in, sizeof in, "%s.input.f32", FIXTURES[k]);
            float *seeds = (float *)tu_slurp(src_path("tests/fixtures/xgb/%s", in), &len);
            check_model(path, seeds, len / sizeof(float) / nf, file);
            free(seeds);
        }
    }
}

static void test_engine_choice(void **state)
{
    (void)state;
    xgb_model *m = NULL;
    md_err err = {0};
    xgb_opts lib = {.engine = XGB_ENGINE_LIBXGBOOST};
    const char *path = src_path("tests/fixtures/xgb/%s", "multi.json");
    assert_int_equal(xgb_model_load(path, &lib, &m, &err), MD_OK);
    assert_string_equal(xgb_model_engine(m), "libxgboost");
    float x[6] = {0.5f, NAN, 1, 2, 3, 4}, out[3];
    assert_int_equal(xgb_predict(m, x, 1, 6, out, 3, &err), MD_OK);
    assert_true(fabsf(out[0] + out[1] + out[2] - 1.0f) < 1e-5f);
    /* the checks are the same on both engines */
    assert_int_equal(xgb_predict_reference(m, x, 1, 5, out, 3, &err), MD_E_INVALID_PARAM);
    assert_string_equal(err.field, "ncols");
    xgb_model_free(m);

    /* a ranking objective is not walked by us: libxgboost serves it */
    json_error_t je;
    json_t *doc = json_load_file(src_path("tests/fixtures/xgb/%s", "reg.json"), 0, &je);
    assert_non_null(doc);
    json_t *obj = json_object_get(json_object_get(doc, "learner"), "objective");
    json_object_set_new(obj, "name", json_string("rank:pairwise"));
    json_object_set_new(obj, "lambda_rank_param",
                        json_pack("{s:s, s:s}", "num_pairsample", "1", "fix_list_weight", "0"));
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    int rc = xgb_model_load_bytes(text, strlen(text), NULL, &m, &err);
    free(text);
    if (rc != MD_OK)
        fail_msg("rank model: %s", md_err_message(&err));
    assert_string_equal(xgb_model_engine(m), "libxgboost");
    xgb_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_models_match_libxgboost),
        cmocka_unit_test(test_fixtures_match_libxgboost),
        cmocka_unit_test(test_engine_choice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
