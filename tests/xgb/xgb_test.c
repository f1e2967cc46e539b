/* xgb_test.c - src/xgb against XGBoost's own Python predictions (tests/fixtures/xgb, written
 * by gen.py): every case in JSON and UBJ, rows with missing values, concurrent prediction
 * from several threads, and files that must fail cleanly (truncated, legacy binary, garbage,
 * trees with cycles or out-of-range indices, forged parents / tree ids / counts, duplicate
 * keys, categorical splits). */
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

#include "common/tmpdir.h"
#include "xgb/xgb.h"

typedef struct xcase {
    char name[32];
    size_t nrows, nfeat, nout;
    char objective[48];
} xcase;

static char *fixture_path(const char *name)
{
    static char path[4096];
    const char *src = getenv("MODELD_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/fixtures/xgb/%s", src ? src : ".", name);
    return path;
}

/* A fixture file, whole, into a new buffer (free()); fails the test when missing. */
static unsigned char *slurp(const char *name, size_t *len)
{
    return tu_slurp(fixture_path(name), len);
}

static size_t read_cases(xcase *cs, size_t cap)
{
    FILE *f = fopen(fixture_path("cases.txt"), "r");
    assert_non_null(f);
    char line[256];
    size_t n = 0;
    while (n < cap && fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        xcase *c = &cs[n];
        assert_int_equal(sscanf(line, "%31s %zu %zu %zu %47s", c->name, &c->nrows, &c->nfeat,
                                &c->nout, c->objective),
                         5);
        n++;
    }
    fclose(f);
    return n;
}

static float *read_f32(const char *caseName, const char *suffix, size_t count)
{
    char name[96];
    snprintf(name, sizeof name, "%s%s", caseName, suffix);
    size_t len = 0;
    float *v = (float *)slurp(name, &len);
    assert_int_equal(len, count * sizeof(float));
    return v;
}

static void assert_close(const float *got, const float *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (fabsf(got[i] - want[i]) > 1e-5f) {
            print_error("%s[%zu]: got %.9g want %.9g\n", what, i, got[i], want[i]);
            fail();
        }
    }
}

static void check_case(const xcase *c, const char *ext)
{
    char file[64];
    snprintf(file, sizeof file, "%s.%s", c->name, ext);
    xgb_model *m = NULL;
    md_err err = {0};
    int rc = xgb_model_load(fixture_path(file), NULL, &m, &err);
    if (rc)
        print_error("%s: %s\n", file, md_err_message(&err));
    assert_int_equal(rc, MD_OK);
    const xgb_info *info = xgb_model_info(m);
    assert_int_equal(info->num_features, c->nfeat);
    assert_int_equal(info->num_outputs, c->nout);
    assert_string_equal(info->objective, c->objective);
    assert_true(info->boosted_rounds > 0);

    float *x = read_f32(c->name, ".input.f32", c->nrows * c->nfeat);
    float *want = read_f32(c->name, ".expected.f32", c->nrows * c->nout);
    float *got = calloc(c->nrows * c->nout, sizeof *got);
    assert_int_equal(xgb_predict(m, x, c->nrows, c->nfeat, got, c->nrows * c->nout, &err), MD_OK);
    assert_close(got, want, c->nrows * c->nout, file);
    /* one row at a time gives the same numbers as the batch */
    for (size_t r = 0; r < c->nrows; r++) {
        float one[16];
        assert_int_equal(xgb_predict(m, x + r * c->nfeat, 1, c->nfeat, one, 16, &err), MD_OK);
        assert_close(one, want + r * c->nout, c->nout, file);
    }
    free(x);
    free(want);
    free(got);
    xgb_model_free(m);
}

static void test_fixtures_match_python(void **state)
{
    (void)state;
    xcase cs[16];
    size_t n = read_cases(cs, 16);
    assert_true(n >= 4);
    for (size_t i = 0; i < n; i++) {
        check_case(&cs[i], "json");
        check_case(&cs[i], "ubj");
    }
}

static void test_load_from_bytes_and_bad_calls(void **state)
{
    (void)state;
    size_t len = 0;
    unsigned char *b = slurp("multi.ubj", &len);
    xgb_model *m = NULL;
    md_err err = {0};
    assert_int_equal(xgb_model_load_bytes(b, len, NULL, &m, &err), MD_OK);
    free(b);
    const xgb_info *info = xgb_model_info(m);
    assert_int_equal(info->num_class, 3);
    float x[12] = {0}, out[6];
    /* wrong width, output too small: clear errors naming the field */
    assert_int_equal(xgb_predict(m, x, 2, 5, out, 6, &err), MD_E_INVALID_PARAM);
    assert_string_equal(err.field, "ncols");
    assert_int_equal(xgb_predict(m, x, 2, 6, out, 5, &err), MD_E_INVALID_PARAM);
    assert_string_equal(err.field, "out");
    assert_int_equal(xgb_predict(m, x, 0, 6, out, 0, &err), MD_OK);
    assert_int_equal(xgb_predict(m, x, 2, 6, out, 6, &err), MD_OK);
    /* softprob rows sum to 1 */
    assert_true(fabsf(out[0] + out[1] + out[2] - 1.0f) < 1e-5f);
    xgb_model_free(m);
    xgb_model_free(NULL);
}

typedef struct worker {
    const xgb_model *m;
    const float *x, *want;
    size_t nrows, nfeat, nout;
    int mismatches;
} worker;

static void *predict_loop(void *arg)
{
    worker *w = arg;
    float *got = malloc(w->nrows * w->nout * sizeof *got);
    for (int it = 0; it < 200 && got; it++) {
        size_t rows = 1 + (size_t)it % w->nrows; /* vary the batch so buffers get resized */
        md_err err = {0};
        if (xgb_predict(w->m, w->x, rows, w->nfeat, got, rows * w->nout, &err) != MD_OK) {
            w->mismatches++;
            continue;
        }
        for (size_t i = 0; i < rows * w->nout; i++)
            if (fabsf(got[i] - w->want[i]) > 1e-5f)
                w->mismatches++;
    }
    free(got);
    return NULL;
}

static void test_concurrent_predictions(void **state)
{
    (void)state;
    xgb_model *m = NULL;
    md_err err = {0};
    xgb_opts two = {.nthread = 2}; /* OpenMP inside each of the concurrent calls */
    assert_int_equal(xgb_model_load(fixture_path("multi.json"), &two, &m, &err), MD_OK);
    float *x = read_f32("multi", ".input.f32", 16 * 6);
    float *want = read_f32("multi", ".expected.f32", 16 * 3);
    enum { NT = 6 };
    pthread_t th[NT];
    worker w[NT];
    for (int i = 0; i < NT; i++) {
        w[i] = (worker){m, x, want, 16, 6, 3, 0};
        assert_int_equal(pthread_create(&th[i], NULL, predict_loop, &w[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].mismatches, 0);
    }
    free(x);
    free(want);
    xgb_model_free(m);
}

/* Load bytes that must be refused with code want; the message must not be empty. */
static void expect_refused(const void *b, size_t len, int want)
{
    xgb_model *m = (xgb_model *)1;
    md_err err = {0};
    int rc = xgb_model_load_bytes(b, len, NULL, &m, &err);
    if (rc != want)
        print_error("got %d (%s), want %d\n", rc, md_err_message(&err), want);
    assert_int_equal(rc, want);
    assert_null(m);
    assert_true(strlen(md_err_message(&err)) > 0);
    print_message("refused: %s\n", md_err_message(&err));
}

/* Replace the first occurrence of from with to in a copy of json (new). */
static char *patched(const char *json, const char *from, const char *to)
{
    const char *p = strstr(json, from);
    assert_non_null(p);
    size_t n = strlen(json) - strlen(from) + strlen(to);
    char *s = malloc(n + 1);
    size_t head = (size_t)(p - json);
    memcpy(s, json, head);
    strcpy(s + head, to);
    strcat(s, p + strlen(from));
    return s;
}

static void test_bad_files_fail_cleanly(void **state)
{
    (void)state;
    expect_refused("", 0, MD_E_MODEL_INVALID);
    expect_refused("binf\0\0\0\0\0\0", 10, MD_E_MODEL_INVALID);
    expect_refused("{}", 2, MD_E_MODEL_INVALID);
    expect_refused("{\"learner\": 3}", 14, MD_E_MODEL_INVALID);
    expect_refused("\x89PNG\r\n\x1a\n", 8, MD_E_MODEL_INVALID);
    size_t len = 0;
    unsigned char *ubj = slurp("reg.ubj", &len);
    for (size_t cut = 1; cut < len; cut += len / 7)
        expect_refused(ubj, cut, MD_E_MODEL_INVALID);
    free(ubj);
    char *json = (char *)slurp("reg.json", &len);
    expect_refused(json, len / 2, MD_E_MODEL_INVALID);
    /* a cycle (root's left child is the root), a child past the end, a split feature past the
     * last column: XGBoost 1.7 loads these; our check must refuse them */
    const char *bad[][2] = {
        {"\"left_children\":[1,", "\"left_children\":[0,"},
        {"\"left_children\":[1,", "\"left_children\":[4000,"},
        {"\"split_indices\":[", "\"split_indices\":[77,"},
        {"\"tree_info\":[0,", "\"tree_info\":[5,"},
        /* these crash or corrupt XGBoost 1.7's own loader; found by tests/fuzz/xgb_fuzz.c */
        {"\"parents\":[2147483647,0,", "\"parents\":[2147483647,4000,"},
        {"\"id\":1,", "\"id\":0,"},
        {"\"num_trees\":\"12\"", "\"num_trees\":\"13\""},
        {"{\"learner\":", "{\"version\":[1,7,4],\"learner\":"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *s = patched(json, bad[i][0], bad[i][1]);
        /* the split_indices edit shifts the array: drop the old first entry to keep the length */
        if (i == 2) {
            char *q = strstr(s, "\"split_indices\":[77,") + strlen("\"split_indices\":[77,");
            char *comma = strchr(q, ',');
            memmove(q, comma + 1, strlen(comma + 1) + 1);
        }
        expect_refused(s, strlen(s), MD_E_MODEL_INVALID);
        free(s);
    }
    char *cat = patched(json, "\"split_type\":[0,", "\"split_type\":[1,");
    expect_refused(cat, strlen(cat), MD_E_UNSUPPORTED);
    free(cat);
    free(json);
    xgb_model *m = NULL;
    md_err err = {0};
    assert_int_equal(xgb_model_load(fixture_path("no-such.json"), NULL, &m, &err),
                     MD_E_FILE_NOT_FOUND);
    assert_int_equal(xgb_model_load(fixture_path(""), NULL, &m, &err), MD_E_IO);
    xgb_opts small = {.max_bytes = 100};
    assert_int_equal(xgb_model_load(fixture_path("reg.json"), &small, &m, &err), MD_E_TOO_LARGE);
}

/* A model that passes a check for ranges and cycles but breaks what XGBoost's predictor
 * assumes: it goes from a split node to LeftChild() + !(x < cond), never reading
 * right_children. forged_right_child.json (found by tests/fuzz/xgb_fuzz.c) has node 0's left
 * child 2 and right child 1, so a row going right read node 3 of 3 (SEGV under ASan). Each
 * variant below breaks one more invariant of src/xgb/schema.c's list. */
static void test_forged_trees_refused(void **state)
{
    (void)state;
    size_t len = 0;
    unsigned char *forged = slurp("forged_right_child.json", &len);
    expect_refused(forged, len, MD_E_MODEL_INVALID);
    free(forged);
    char *tiny = (char *)slurp("forged_right_child.json", &len);
    char *good = patched(tiny, "\"left_children\":[2,-1,-1]", "\"left_children\":[1,-1,-1]");
    char *fixed = patched(good, "\"right_children\":[1,-1,-1]", "\"right_children\":[2,-1,-1]");
    free(good);
    xgb_model *m = NULL;
    md_err err = {0};
    assert_int_equal(xgb_model_load_bytes(fixed, strlen(fixed), NULL, &m, &err), MD_OK);
    float row[2] = {1.0f, 0.0f}, out[1] = {0};
    assert_int_equal(xgb_predict(m, row, 1, 2, out, 1, &err), MD_OK);
    xgb_model_free(m);
    const char *bad[][2] = {
        /* a leaf with a right child */
        {"\"right_children\":[2,-1,-1]", "\"right_children\":[2,-1,1]"},
        /* children's parents are not the node */
        {"\"parents\":[2147483647,0,0]", "\"parents\":[2147483647,0,1]"},
        /* the root has a parent */
        {"\"parents\":[2147483647,0,0]", "\"parents\":[1,0,0]"},
        /* num_deleted disagrees with the nodes (none is deleted) */
        {"\"num_deleted\":\"0\"", "\"num_deleted\":\"1\""},
        /* a split on a feature past num_feature */
        {"\"split_indices\":[0,0,0]", "\"split_indices\":[2,0,0]"},
        /* base_score outside (0, 1) for binary:logistic, and not a number */
        {"\"base_score\":\"5E-1\"", "\"base_score\":\"1.5\""},
        {"\"base_score\":\"5E-1\"", "\"base_score\":\"nan\""},
        /* no output group */
        {"\"num_target\":\"1\"", "\"num_target\":\"0\""},
        /* num_nodes disagrees with the arrays */
        {"\"num_nodes\":\"3\"", "\"num_nodes\":\"2\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *s = patched(fixed, bad[i][0], bad[i][1]);
        expect_refused(s, strlen(s), MD_E_MODEL_INVALID);
        free(s);
    }
    const char *unsupported[][2] = {
        {"\"num_trees\":\"1\",\"size_leaf_vector\":\"0\"",
         "\"num_trees\":\"1\",\"size_leaf_vector\":\"1\""},
        {"\"num_nodes\":\"3\",\"size_leaf_vector\":\"0\"",
         "\"num_nodes\":\"3\",\"size_leaf_vector\":\"2\""},
    };
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        char *s = patched(fixed, unsupported[i][0], unsupported[i][1]);
        expect_refused(s, strlen(s), MD_E_UNSUPPORTED);
        free(s);
    }
    free(fixed);
    free(tiny);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_match_python),
        cmocka_unit_test(test_load_from_bytes_and_bad_calls),
        cmocka_unit_test(test_concurrent_predictions),
        cmocka_unit_test(test_bad_files_fail_cleanly),
        cmocka_unit_test(test_forged_trees_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
