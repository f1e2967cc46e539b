/* vectorize_ai_test.c - pl_vectorize_ai against the stand-in models of
 * tests/fixtures/models/vectorize-ai (gen_vectorize_ai.py): the tiers, auto routing rules, the
 * time budget under an injected clock, the size budget, the fallback to rules when a model is
 * gone and the refusal when none is left, and bad inputs naming their field. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/clock.h"
#include "models/models.h"
#include "pipelines/ai_int.h"
#include "pipelines/pipelines.h"

static mdl_registry *open_models(void)
{
    const char *src = getenv("MODELD_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/models/vectorize-ai", src ? src : ".");
    mdl_registry_opts o = {.shipped_dir = dir, .load_all = true};
    mdl_registry *r = NULL;
    md_err e;
    if (mdl_registry_open(&o, &r, &e) != MD_OK)
        fail_msg("registry: %s", e.msg);
    return r;
}

static void *read_file(const char *name, size_t *n)
{
    const char *dir = getenv("MODELD_CORPUS_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/fixtures/corpus", name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = malloc((size_t)len);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* A clock that moves 40 ms every time it is read: each conversion "takes" 40 ms. */
static uint64_t stepping_now(void *ctx)
{
    uint64_t *t = ctx;
    *t += 40 * 1000000ull;
    return *t;
}
static int64_t stepping_wall(void *ctx)
{
    (void)ctx;
    return 0;
}

static int run(mdl_registry *r, const char *file, int tier, double target, double budget,
               const md_clock *clk, pl_ai_out *out, md_err *err)
{
    size_t n;
    void *img = read_file(file, &n);
    pl_ctx cx = {.models = r};
    pl_ai_in in = {.image = img,
                   .image_len = n,
                   .tier = tier,
                   .target_quality = target,
                   .time_budget_s = budget,
                   .clock = clk};
    int rc = pl_vectorize_ai(&cx, &in, out, err);
    free(img);
    return rc;
}

static void test_tiers(void **state)
{
    (void)state;
    mdl_registry *r = open_models();
    pl_ai_out o1, o2;
    md_err e;
    assert_int_equal(run(r, "simple_geometric_02.png", 1, 0.99, 10, NULL, &o1, &e), MD_OK);
    assert_int_equal(o1.tier_used, 1);
    assert_int_equal(o1.conversions, 1);
    /* The quality model picks between the parameter model's and the rules' guess. */
    assert_true(strcmp(o1.method, "parameter_model") == 0 ||
                strcmp(o1.method, "rules_ranked") == 0 || strcmp(o1.method, "default_preset") == 0);
    assert_true(o1.size_budget > 0); /* 3x the default preset's predicted bytes */
    assert_false(o1.fallback_used);
    assert_string_equal(o1.model_versions[0], "1");
    assert_true(o1.an.predicted_quality >= 0 && o1.an.predicted_quality <= 1);
    assert_non_null(o1.vec.res);
    assert_true(o1.vec.res->ssim.rgb > 0.5);
    /* Tier 2: the default preset first (the size reference), then ranked candidates; never
     * worse than the default preset. */
    assert_int_equal(run(r, "gradient_01.png", 2, 0.999, 30, NULL, &o2, &e), MD_OK);
    assert_int_equal(o2.tier_used, 2);
    assert_int_equal(o2.candidates_scored, 256);
    /* default + the type's set + 4 of the portfolio + 3 ranked + at most 4 rule variations
     * (some are repeats). */
    assert_true(o2.conversions >= 3 && o2.conversions <= 13);
    assert_true(o2.default_bytes > 0);
    assert_int_equal(o2.size_budget, 3 * o2.default_bytes);
    assert_true(o2.vec.res->ssim.rgb >= o2.default_ssim);
    assert_true(o2.vec.res->svg_bytes <= o2.size_budget);
    pl_ai_out_free(&o1);
    pl_ai_out_free(&o2);
    mdl_registry_close(r);
}

/* Tier 3 with a clock that charges 40 ms per conversion: the budget is never exceeded by more
 * than one conversion, and it stops once the budget is spent. */
static void test_time_budget(void **state)
{
    (void)state;
    mdl_registry *r = open_models();
    uint64_t t = 0;
    md_clock clk = {stepping_now, stepping_wall, &t};
    pl_ai_out o;
    md_err e;
    assert_int_equal(run(r, "simple_geometric_02.png", 3, 0.9999, 0.3, &clk, &o, &e), MD_OK);
    assert_int_equal(o.tier_used, 3);
    assert_true(o.conversions >= 2);
    assert_true(o.max_conversion_s > 0);
    if (!(o.elapsed_s <= 0.3 + o.max_conversion_s + 1e-9))
        fail_msg("elapsed %g s, budget 0.3 s, longest conversion %g s", o.elapsed_s,
                 o.max_conversion_s);
    assert_true(o.conversions <= 8);
    /* A target met by the first conversion ends the search there. */
    pl_ai_out o2;
    assert_int_equal(run(r, "simple_geometric_02.png", 3, 0.1, 5, NULL, &o2, &e), MD_OK);
    assert_int_equal(o2.conversions, 1);
    assert_true(o2.target_reached);
    pl_ai_out_free(&o);
    pl_ai_out_free(&o2);
    mdl_registry_close(r);
}

/* max_svg_bytes: the kept result is within it whenever a converted candidate was. */
/* A request deadline shorter than the time budget caps the search (an answer, not a 504). */
static void test_deadline_caps_budget(void **state)
{
    (void)state;
    mdl_registry *r = open_models();
    size_t n;
    void *img = read_file("simple_geometric_02.png", &n);
    md_cancel c;
    md_cancel_init(&c, md_now_ns() + 3000000000ull);
    pl_ctx cx = {.models = r, .cancel = &c};
    pl_ai_in in = {
        .image = img, .image_len = n, .tier = 3, .target_quality = 0.99999, .time_budget_s = 60};
    pl_ai_out o;
    md_err e;
    assert_int_equal(pl_vectorize_ai(&cx, &in, &o, &e), MD_OK);
    assert_true(o.time_budget_s <= 0.8 * 3.0 + 1e-9);
    assert_non_null(o.vec.res);
    pl_ai_out_free(&o);
    free(img);
    mdl_registry_close(r);
}

static void test_size_budget(void **state)
{
    (void)state;
    mdl_registry *r = open_models();
    size_t n;
    void *img = read_file("complex_01.png", &n);
    pl_ctx cx = {.models = r};
    pl_ai_in in = {
        .image = img, .image_len = n, .tier = 2, .target_quality = 0.9999, .time_budget_s = 60};
    pl_ai_out big, small;
    md_err e;
    assert_int_equal(pl_vectorize_ai(&cx, &in, &big, &e), MD_OK);
    in.max_svg_bytes = big.default_bytes;
    assert_int_equal(pl_vectorize_ai(&cx, &in, &small, &e), MD_OK);
    assert_int_equal(small.size_budget, big.default_bytes);
    assert_true(small.vec.res->svg_bytes <= big.default_bytes);
    pl_ai_out_free(&big);
    pl_ai_out_free(&small);
    free(img);
    mdl_registry_close(r);
}

static void test_fallback_and_unavailable(void **state)
{
    (void)state;
    mdl_registry *r = open_models();
    md_err e;
    assert_int_equal(mdl_unload(r, "vectorize-classifier", &e), MD_OK);
    pl_ai_out o;
    assert_int_equal(run(r, "text_based_01.png", 1, 0.9, 10, NULL, &o, &e), MD_OK);
    assert_true(o.fallback_used);
    assert_non_null(strstr(o.fallback_reason, "vectorize-classifier"));
    assert_string_equal(o.model_versions[0], "");
    assert_string_equal(pl_ai_logo_type_name(o.an.logo_type), "text_based");
    pl_ai_out_free(&o);
    assert_int_equal(mdl_unload(r, "vectorize-quality", &e), MD_OK);
    assert_int_equal(mdl_unload(r, "vectorize-params", &e), MD_OK);
    assert_int_equal(run(r, "text_based_01.png", 1, 0.9, 10, NULL, &o, &e), MD_E_MODEL_UNAVAILABLE);
    assert_non_null(strstr(e.msg, "/api/convert"));
    pl_ai_out_free(&o);
    assert_int_equal(run(NULL, "text_based_01.png", 0, 0.9, 10, NULL, &o, &e),
                     MD_E_MODEL_UNAVAILABLE);
    mdl_registry_close(r);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    mdl_registry *r = open_models();
    pl_ai_out o;
    md_err e;
    assert_int_equal(run(r, "gradient_01.png", 5, 0.9, 1, NULL, &o, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "tier");
    assert_int_equal(run(r, "gradient_01.png", 1, 1.5, 1, NULL, &o, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "target_quality");
    assert_int_equal(run(r, "gradient_01.png", 1, NAN, 1, NULL, &o, &e), MD_E_INVALID_PARAM);
    assert_int_equal(run(r, "gradient_01.png", 1, 0.9, -1, NULL, &o, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "time_budget");
    pl_ctx cx = {.models = r};
    pl_ai_in in = {.tier = 1};
    assert_int_equal(pl_vectorize_ai(&cx, &in, &o, &e), MD_E_MISSING_FIELD);
    assert_string_equal(e.field, "file_id");
    mdl_registry_close(r);
}

/* The seeds' expectations of auto routing. */
static void test_routing_rules(void **state)
{
    (void)state;
    char why[160];
    assert_int_equal(ai__route(AI_SIMPLE, 0.8, 0.85, 0.3, why, sizeof why), 1);
    assert_true(ai__route(AI_SIMPLE, 0.8, 0.85, 2.0, why, sizeof why) <= 2);
    assert_true(ai__route(AI_COMPLEX, 0.6, 0.7, 0, why, sizeof why) <= 2);
    assert_int_equal(ai__route(AI_SIMPLE, 0.8, 0.7, 0, why, sizeof why), 1);
    int t = ai__route(AI_GRADIENT, 0.8, 0.9, 0, why, sizeof why);
    assert_true(t == 2 || t == 3);
    assert_int_equal(ai__route(AI_TEXT, 0.9, 0.95, 0, why, sizeof why), 3);
    assert_int_equal(ai__route(AI_TEXT, 0.9, 0.95, 5, why, sizeof why), 3);
    assert_non_null(strstr(why, "target 0.95"));
    /* The seeds' table: 0.9 -> tier 2-3 even when the guess is predicted past it; a 2 s
     * budget -> tier 1-2 below 0.95; 0.95 -> 3; 0.7 -> 1-2 whatever the prediction. */
    for (int type = 0; type < PL_AI_CLASSES; type++) {
        for (double pred = -1; pred <= 1.0; pred += 0.25) {
            t = ai__route(type, pred, 0.9, 0, why, sizeof why);
            assert_true(t == 2 || t == 3);
            assert_true(ai__route(type, pred, 0.9, 2.0, why, sizeof why) <= 2);
            assert_true(ai__route(type, pred, 0.85, 2.0, why, sizeof why) <= 2);
            assert_int_equal(ai__route(type, pred, 0.95, 0, why, sizeof why), 3);
            assert_true(ai__route(type, pred, 0.7, 0, why, sizeof why) <= 2);
            assert_int_equal(ai__route(type, pred, 0.95, 0.3, why, sizeof why), 1);
        }
    }
    /* A hard image (predicted well below) at 0.9 with no budget: the search. */
    assert_int_equal(ai__route(AI_SIMPLE, 0.6, 0.9, 0, why, sizeof why), 3);
}

/* The fixed sets: every one valid, none the default preset (tier 2 converts that first), no
 * two of the portfolio alike (a repeat would waste a conversion of tier 2's few), the end of the
 * portfolio reported, and an unknown logo type read as simple_geometric. */
static void test_portfolio_and_rules(void **state)
{
    (void)state;
    vec_params d, p, q;
    float f[VEC_N_FEATURES] = {0};
    assert_int_equal(vec_params_preset("default", &d, NULL), MD_OK);
    int n = 0;
    while (ai__portfolio(n, &p)) {
        assert_int_equal(vec_params_validate(&p, NULL), MD_OK);
        assert_memory_not_equal(&p, &d, sizeof p);
        for (int j = 0; j < n; j++) {
            assert_int_equal(ai__portfolio(j, &q), 1);
            assert_memory_not_equal(&p, &q, sizeof p);
        }
        n++;
    }
    assert_true(n >= 4);
    assert_int_equal(ai__portfolio(-1, &p), 0);
    for (int t = 0; t < PL_AI_CLASSES; t++) {
        ai__rules_params(f, t, &p);
        assert_int_equal(vec_params_validate(&p, NULL), MD_OK);
        assert_memory_not_equal(&p, &d, sizeof p);
    }
    ai__rules_params(f, AI_SIMPLE, &p);
    ai__rules_params(f, 99, &q);
    assert_memory_equal(&p, &q, sizeof p);
}

/* Analysis only: features, classification, a recommendation, no conversion. */
static void test_analyse_only(void **state)
{
    (void)state;
    mdl_registry *r = open_models();
    size_t n;
    void *img = read_file("text_based_01.png", &n);
    pl_ctx cx = {.models = r};
    pl_ai_in in = {.image = img, .image_len = n, .analyse_only = 1};
    pl_ai_out o;
    md_err e;
    assert_int_equal(pl_vectorize_ai(&cx, &in, &o, &e), MD_OK);
    assert_null(o.vec.res);
    assert_int_equal(o.conversions, 0);
    assert_string_equal(pl_ai_logo_type_name(o.an.logo_type), "text_based");
    assert_true(o.an.recommended_tier >= 1 && o.an.recommended_tier <= 3);
    double s[2];
    vec_params p[2];
    vec_params_preset("default", &p[0], NULL);
    vec_params_preset("fast", &p[1], NULL);
    char v[32];
    assert_int_equal(pl_ai_predict(&cx, o.an.features, p, 2, s, NULL, NULL, v, &e), MD_OK);
    assert_string_equal(v, "1");
    assert_true(s[0] > s[1]); /* the stand-in rewards colour precision */
    pl_ai_out_free(&o);
    free(img);
    mdl_registry_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiers),
        cmocka_unit_test(test_time_budget),
        cmocka_unit_test(test_size_budget),
        cmocka_unit_test(test_deadline_caps_budget),
        cmocka_unit_test(test_fallback_and_unavailable),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_routing_rules),
        cmocka_unit_test(test_portfolio_and_rules),
        cmocka_unit_test(test_analyse_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
