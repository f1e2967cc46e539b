/* forest_test.c - our own tree walk (src/xgb/forest.c) against libxgboost: on every shipped
 * XGBoost model (models/<name>/1: regression, logistic, softprob, the isolation forest) and
 * every fixture (tests/fixtures/xgb: also count:poisson), thousands of rows around the
 * manifests' validation rows, with missing values and split-boundary values, must give
 * libxgboost's outputs within 1e-5 (relative above 1). Also: the engine each model gets, the
 * libxgboost-only option, a model we do not walk (a ranking objective), and the TreeSHAP
 * contributions: ours (src/xgb/treeshap.c) against libxgboost's pred_contribs within 1e-5 on
 * the first SHAP_ROWS of those rows of every model and fixture, the fallback to libxgboost
 * (a zero cover), and xgb_contributions against the manifests' samples. */
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
#define SHAP_ROWS 1000 /* of them, for the contributions */

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

/* Our TreeSHAP (xgb_contributions) and libxgboost's pred_contribs on the first nrows rows:
 * within 1e-5 (relative above 1); returns the largest difference. */
static double compare_contributions(const xgb_model *m, const float *x, size_t nrows,
                                    const char *what)
{
    const xgb_info *in = xgb_model_info(m);
    size_t g = in->num_class > 1 ? in->num_class : 1, n = nrows * g * (in->num_features + 1);
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    md_err err = {0};
    assert_int_equal(xgb_contributions(m, x, nrows, in->num_features, a, n, &err), MD_OK);
    assert_int_equal(xgb_contributions_reference(m, x, nrows, in->num_features, b, n, &err), MD_OK);
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)b[i]));
        if (!(d <= 1e-5))
            fail_msg("%s: contribution %zu: ours %.9g, libxgboost %.9g", what, i, a[i], b[i]);
        worst = fmax(worst, d);
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
    assert_string_equal(xgb_model_shap_engine(m), "tables");
    double cworst = compare_contributions(m, x, SHAP_ROWS, what);
    /* and XGBoost's path algorithm, without the leaf tables */
    xgb_model *p = NULL;
    xgb_opts paths = {.shap = XGB_SHAP_PATHS};
    assert_int_equal(xgb_model_load(path, &paths, &p, &err), MD_OK);
    assert_string_equal(xgb_model_shap_engine(p), "paths");
    double pworst = compare_contributions(p, x, SHAP_ROWS / 4, what);
    xgb_model_free(p);
    print_message("%-18s %-18s max relative difference %.3g, contributions %.3g (tables), "
                  "%.3g (paths)\n",
                  what, xgb_model_info(m)->objective, worst, cworst, pworst);
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
    assert_string_equal(xgb_model_shap_engine(m), "libxgboost");
    xgb_model_free(m);
}

/* A reached node without a positive cover (sum_hessian) is something our TreeSHAP does not
 * take: the model keeps our tree walk, and libxgboost computes its contributions. */
static void test_shap_falls_back_to_libxgboost(void **state)
{
    (void)state;
    json_error_t je;
    json_t *doc = json_load_file(src_path("tests/fixtures/xgb/%s", "reg.json"), 0, &je);
    assert_non_null(doc);
    json_t *trees = json_object_get(
        json_object_get(json_object_get(json_object_get(doc, "learner"), "gradient_booster"),
                        "model"),
        "trees");
    json_t *sh = json_object_get(json_array_get(trees, 0), "sum_hessian");
    json_array_set_new(sh, 1, json_real(0.0));
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    xgb_model *m = NULL;
    md_err err = {0};
    assert_int_equal(xgb_model_load_bytes(text, strlen(text), NULL, &m, &err), MD_OK);
    free(text);
    assert_string_equal(xgb_model_engine(m), "native");
    assert_string_equal(xgb_model_shap_engine(m), "libxgboost");
    size_t nf = xgb_model_info(m)->num_features;
    float *x = calloc(nf, sizeof *x), *a = malloc((nf + 1) * sizeof *a),
          *b = malloc((nf + 1) * sizeof *b);
    assert_int_equal(xgb_contributions(m, x, 1, nf, a, nf + 1, &err), MD_OK);
    assert_int_equal(xgb_contributions_reference(m, x, 1, nf, b, nf + 1, &err), MD_OK);
    assert_memory_equal(a, b, (nf + 1) * sizeof *a);
    free(x);
    free(a);
    free(b);
    xgb_model_free(m);

    /* the libxgboost engine option leaves both to libxgboost */
    xgb_opts lib = {.engine = XGB_ENGINE_LIBXGBOOST};
    assert_int_equal(
        xgb_model_load(src_path("tests/fixtures/xgb/%s", "binary.json"), &lib, &m, &err), MD_OK);
    assert_string_equal(xgb_model_shap_engine(m), "libxgboost");
    xgb_model_free(m);
}

/* xgb_contributions against the TreeSHAP values the training scripts wrote into the manifests
 * (postprocessing.explanation.samples, from XGBoost's Python pred_contribs), and their sum
 * against the margin. */
static void test_contributions_match_the_manifests(void **state)
{
    (void)state;
    static const char *const names[] = {"churn", "profitability", "pricing"};
    for (size_t k = 0; k < 3; k++) {
        xgb_model *m = NULL;
        md_err err = {0};
        char path[4096];
        snprintf(path, sizeof path, "%s", src_path("models/%s/1/model.json", names[k]));
        assert_int_equal(xgb_model_load(path, NULL, &m, &err), MD_OK);
        size_t nf = xgb_model_info(m)->num_features;
        json_error_t je;
        json_t *mf = json_load_file(src_path("models/%s/1/modeld.json", names[k]), 0, &je);
        assert_non_null(mf);
        const json_t *cols = json_object_get(json_object_get(mf, "input_schema"), "columns");
        const json_t *samples = json_object_get(
            json_object_get(json_object_get(mf, "postprocessing"), "explanation"), "samples");
        assert_true(json_array_size(samples) >= 1);
        size_t i;
        const json_t *s;
        json_array_foreach(samples, i, s)
        {
            float x[64], c[65], p;
            for (size_t j = 0; j < nf; j++)
                x[j] = (float)json_number_value(json_array_get(json_object_get(s, "features"), j));
            assert_int_equal(xgb_contributions(m, x, 1, nf, c, 65, &err), MD_OK);
            double sum = 0.0;
            for (size_t j = 0; j <= nf; j++) {
                const json_t *want = j < nf ? json_object_get(json_object_get(s, "contributions"),
                                                              json_string_value(json_object_get(
                                                                  json_array_get(cols, j), "name")))
                                            : json_object_get(s, "bias");
                assert_non_null(want);
                double w = json_number_value(want);
                if (fabs(c[j] - w) > 1e-4 * fmax(1.0, fabs(w)))
                    fail_msg("%s column %zu: %.7g, manifest %.7g", names[k], j, c[j], w);
                sum += c[j];
            }
            assert_int_equal(xgb_predict(m, x, 1, nf, &p, 1, &err), MD_OK);
            double margin = k == 0 ? log(p / (1.0 - p)) : p; /* churn: logistic */
            assert_true(fabs(sum - margin) < 1e-3);
        }
        json_decref(mf);
        xgb_model_free(m);
    }
    /* a multi-class model gives one block per class; softmax of the sums = probabilities */
    xgb_model *m = NULL;
    md_err err = {0};
    assert_int_equal(
        xgb_model_load(src_path("models/%s/1/model.json", "revenue-leak"), NULL, &m, &err), MD_OK);
    float x[2 * 14] = {0}, c[2 * 5 * 15], p[2 * 5];
    assert_int_equal(xgb_contributions(m, x, 2, 14, c, 2 * 5 * 15 - 1, &err), MD_E_INVALID_PARAM);
    assert_string_equal(err.field, "out");
    assert_int_equal(xgb_contributions(m, x, 2, 14, c, 2 * 5 * 15, &err), MD_OK);
    assert_int_equal(xgb_predict(m, x, 2, 14, p, 10, &err), MD_OK);
    double z = 0.0, e[5];
    for (int g = 0; g < 5; g++) {
        double sum = 0.0;
        for (int j = 0; j < 15; j++)
            sum += c[5 * 15 + g * 15 + j]; /* row 1, class g */
        e[g] = exp(sum);
        z += e[g];
    }
    for (int g = 0; g < 5; g++)
        assert_true(fabs(e[g] / z - p[5 + g]) < 1e-4);
    xgb_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_models_match_libxgboost),
        cmocka_unit_test(test_fixtures_match_libxgboost),
        cmocka_unit_test(test_engine_choice),
        cmocka_unit_test(test_shap_falls_back_to_libxgboost),
        cmocka_unit_test(test_contributions_match_the_manifests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
