/* retrain_test.c - pl_retrain / pl_retrain_check on the shipped churn model with a store and a
 * data dir in a temporary directory: a small dataset (rows of churn's validation split,
 * tests/fixtures/predict/retrain) trains on four fifths and calibrates its threshold on the
 * rest, both versions are evaluated on the held test split, the new version is installed
 * (CANARY or STANDBY, never ACTIVE) with its lineage and its threshold in the manifest; rows of
 * the test split in a dataset (however its numbers are written) are left out and counted, and
 * a dataset that is the test split fails naming data; the calibration helpers match numpy /
 * scikit-learn / scipy on small cases; a second run with the same data and parameters writes
 * byte-identical model.json (deterministic); the checks name the field (model that cannot be
 * retrained, a missing column, too little feedback, a bad parameter). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/tmpdir.h"
#include "models/models.h"
#include "pipelines/pipelines.h"
#include "pipelines/retrain_int.h"
#include "store/store.h"

typedef struct fx {
    char *dir;
    store *st;
    mdl_registry *reg;
    pl_ctx cx;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    const char *src = getenv("MODELD_SOURCE_DIR");
    char shipped[1024];
    snprintf(shipped, sizeof shipped, "%s/models", src ? src : ".");
    md_err e = {0};
    f->dir = tu_mkdir();
    store_opts so = {.data_dir = f->dir};
    if (!f->dir || store_open(&so, &f->st, &e) != MD_OK)
        return -1;
    mdl_registry_opts o = {.shipped_dir = shipped, .data_dir = f->dir, .store = f->st};
    if (mdl_registry_open(&o, &f->reg, &e) != MD_OK ||
        mdl_activate(f->reg, "churn", "1", &e) != MD_OK)
        return -1;
    f->cx = (pl_ctx){.st = f->st, .models = f->reg};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    mdl_registry_close(f->reg);
    store_unref(f->st);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

#define CHURN_HEADER                                                                               \
    "female,senior_citizen,partner,dependents,tenure,phone_service,multiple_lines,"                \
    "internet_service,online_security,online_backup,device_protection,tech_support,"               \
    "streaming_tv,streaming_movies,contract,paperless_billing,payment_method,monthly_charges,"     \
    "total_charges,churn\n"

/* Data lines [from, from + n) of a CSV file of the source tree (without its header). New. */
static char *csv_lines(const char *rel, size_t from, size_t n, size_t *len)
{
    const char *src = getenv("MODELD_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", src ? src : ".", rel);
    size_t all_len = 0;
    unsigned char *all = tu_slurp(path, &all_len);
    size_t a = 0, lines = 0;
    while (a < all_len && lines < from + 1) /* the header, then `from` lines */
        lines += all[a++] == '\n';
    size_t b = a;
    while (b < all_len && lines < from + 1 + n)
        lines += all[b++] == '\n';
    char *out = malloc(b - a + 1);
    memcpy(out, all + a, b - a);
    out[b - a] = '\0';
    *len = b - a;
    free(all);
    return out;
}

/* Every numeric field of CSV text in rewritten into out: "1" -> "1.0", "29.85" -> "29.850". */
static void renumber(const char *in, char *out)
{
    const char *f = in;
    while (*f) {
        size_t n = strcspn(f, ",\n");
        memcpy(out, f, n);
        out += n;
        if (n > 0 && strspn(f, "0123456789.-") >= n)
            out += sprintf(out, memchr(f, '.', n) ? "0" : ".0");
        f += n;
        if (*f)
            *out++ = *f++;
    }
    *out = '\0';
}

#define FIXTURE "tests/fixtures/predict/retrain/churn.csv" /* validation rows: make.py */
#define TEST_SPLIT "models/churn/1/test.csv"

static void put_csv(fx *f, const char *body, size_t len, size_t rows, const char *header,
                    store_dataset *out);

/* The first n rows of the churn retraining fixture (rows of churn's validation split, none of
 * them a test row in the first 1,100) as a dataset; header (when not NULL) replaces the columns,
 * for a file that lacks one. */
static void put_dataset(fx *f, size_t n, const char *header, store_dataset *out)
{
    size_t len = 0;
    char *lines = csv_lines(FIXTURE, 0, n, &len);
    char *body = malloc(len + sizeof CHURN_HEADER);
    memcpy(body, CHURN_HEADER, sizeof CHURN_HEADER - 1);
    memcpy(body + sizeof CHURN_HEADER - 1, lines, len + 1);
    put_csv(f, body, strlen(body), n, header, out);
    free(lines);
    free(body);
}

static void put_csv(fx *f, const char *body, size_t len, size_t rows, const char *header,
                    store_dataset *out)
{
    store_dataset m;
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "churn-head.csv");
    snprintf(m.format, sizeof m.format, "csv");
    snprintf(m.columns, sizeof m.columns, "%s",
             header ? header
                    : "[\"female\",\"senior_citizen\",\"partner\",\"dependents\",\"tenure\","
                      "\"phone_service\",\"multiple_lines\",\"internet_service\","
                      "\"online_security\",\"online_backup\",\"device_protection\","
                      "\"tech_support\",\"streaming_tv\",\"streaming_movies\",\"contract\","
                      "\"paperless_billing\",\"payment_method\",\"monthly_charges\","
                      "\"total_charges\",\"churn\"]");
    m.rows = (int64_t)rows;
    md_err e = {0};
    assert_int_equal(store_datasets_create(f->st, body, len, &m, out, &e), MD_OK);
}

static unsigned char *model_bytes(fx *f, const char *version, size_t *len)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/models/churn/%s/model.json", f->dir, version);
    return tu_slurp(path, len);
}

static void test_trains_evaluates_installs_deterministically(void **state)
{
    fx *f = *state;
    store_dataset d;
    put_dataset(f, 400, NULL, &d);
    json_t *params = json_pack("{s:i}", "rounds", 15);
    pl_retrain_in in = {.model = "churn", .data = d.id, .params = params, .nthread = 1};
    md_err e = {0};
    json_t *a = NULL, *b = NULL;
    assert_int_equal(pl_retrain_check(&f->cx, &in, &e), MD_OK);
    assert_int_equal(pl_retrain(&f->cx, &in, &a, &e), MD_OK);
    assert_string_equal(json_string_value(json_object_get(a, "version")), "2");
    assert_string_equal(json_string_value(json_object_get(a, "parent_version")), "1");
    /* a seeded fifth is held back to calibrate the threshold on */
    assert_int_equal(json_integer_value(json_object_get(a, "train_rows")), 320);
    assert_int_equal(json_integer_value(json_object_get(a, "validation_rows")), 80);
    assert_int_equal(json_integer_value(json_object_get(a, "test_overlap_rows")), 0);
    assert_int_equal(json_integer_value(json_object_get(a, "test_rows")), 1409);
    double thr = json_real_value(json_object_get(a, "threshold"));
    assert_true(thr >= 0.1 && thr <= 0.9);
    assert_true(json_real_value(json_object_get(a, "parent_threshold")) == 0.26);
    double auc_new = json_real_value(json_object_get(a, "new"));
    double auc_act = json_real_value(json_object_get(a, "active"));
    assert_true(auc_new > 0.6 && auc_new <= 1.0); /* it learnt something on held-out rows */
    assert_true(fabs(auc_act - 0.8488) < 1e-3);   /* the shipped model's recorded test AUC */
    const char *state_a = json_string_value(json_object_get(a, "state"));
    assert_string_equal(state_a, auc_new > auc_act ? "CANARY" : "STANDBY");

    mdl_version *v = NULL;
    assert_int_equal(mdl_acquire(f->reg, "churn", "2", &v, &e), MD_OK);
    assert_string_equal(mdl_state_name(mdl_version_state(v)), state_a);
    const json_t *t = json_object_get(mdl_version_manifest(v)->doc, "training");
    assert_string_equal(json_string_value(json_object_get(t, "trained_from")), d.id);
    assert_string_equal(json_string_value(json_object_get(t, "parent_version")), "1");
    assert_int_equal(json_integer_value(json_object_get(t, "rounds")), 15);
    assert_int_equal(json_integer_value(json_object_get(t, "validation_rows")), 80);
    /* served from the manifest: the threshold of its own validation split */
    const json_t *post = json_object_get(mdl_version_manifest(v)->doc, "postprocessing");
    assert_true(json_real_value(json_object_get(post, "threshold")) == thr);
    assert_int_equal(json_integer_value(json_object_get(post, "calibration_rows")), 80);
    const json_t *mx = json_object_get(mdl_version_manifest(v)->doc, "metrics");
    assert_true(json_real_value(json_object_get(mx, "threshold")) == thr);
    assert_true(json_real_value(json_object_get(mx, "f1")) > 0);
    /* drift is judged against the rows it was built from (training and validation) */
    const json_t *dist = json_object_get(
        json_object_get(mdl_version_manifest(v)->doc, "preprocessing"), "training_distribution");
    assert_int_equal(json_integer_value(json_object_get(dist, "train_rows")), 400);
    const json_t *feats = json_object_get(dist, "features");
    const json_t *contract = json_object_get(feats, "contract");
    double sum = 0;
    for (size_t i = 0; i < json_array_size(json_object_get(contract, "proportions")); i++)
        sum += json_number_value(json_array_get(json_object_get(contract, "proportions"), i));
    assert_int_equal(json_array_size(json_object_get(contract, "proportions")), 3);
    assert_true(fabs(sum - 1) < 1e-5);
    const json_t *tenure = json_object_get(feats, "tenure");
    const json_t *q = json_object_get(tenure, "quantiles");
    assert_true(json_number_value(json_object_get(q, "0.01")) <=
                json_number_value(json_object_get(q, "0.5")));
    assert_true(json_number_value(json_object_get(q, "0.5")) <=
                json_number_value(json_object_get(q, "0.99")));
    assert_int_equal(json_array_size(json_object_get(tenure, "proportions")),
                     json_array_size(json_object_get(tenure, "edges")) + 1);
    mdl_release(v);

    assert_int_equal(pl_retrain(&f->cx, &in, &b, &e), MD_OK);
    assert_string_equal(json_string_value(json_object_get(b, "version")), "3");
    assert_true(json_real_value(json_object_get(b, "new")) == auc_new);
    size_t l2 = 0, l3 = 0;
    unsigned char *m2 = model_bytes(f, "2", &l2), *m3 = model_bytes(f, "3", &l3);
    assert_int_equal(l2, l3);
    assert_memory_equal(m2, m3, l2);
    free(m2);
    free(m3);
    json_decref(a);
    json_decref(b);
    json_decref(params);
}

/* Rows equal to test rows are left out and counted, however the file writes them; a dataset
 * that is the test split leaves nothing and fails naming data. */
static void test_test_rows_left_out(void **state)
{
    fx *f = *state;
    size_t l1 = 0, l2 = 0;
    char *own = csv_lines(FIXTURE, 0, 200, &l1), *test = csv_lines(TEST_SPLIT, 0, 30, &l2);
    /* the test rows with every number written differently: 1 -> 1.0, 29.85 -> 29.850 */
    char *body = malloc(sizeof CHURN_HEADER + l1 + 3 * l2 + 1);
    int k = sprintf(body, "%s%s", CHURN_HEADER, own);
    renumber(test, body + k);
    store_dataset d;
    put_csv(f, body, strlen(body), 230, NULL, &d);
    json_t *params = json_pack("{s:i}", "rounds", 5);
    pl_retrain_in in = {.model = "churn", .data = d.id, .params = params, .nthread = 1};
    md_err e = {0};
    json_t *a = NULL;
    assert_int_equal(pl_retrain(&f->cx, &in, &a, &e), MD_OK);
    assert_int_equal(json_integer_value(json_object_get(a, "test_overlap_rows")), 30);
    assert_int_equal(json_integer_value(json_object_get(a, "train_rows")) +
                         json_integer_value(json_object_get(a, "validation_rows")),
                     200);
    json_decref(a);
    free(body);

    /* the test split itself: nothing left to learn from */
    size_t lt = 0;
    char *all = csv_lines(TEST_SPLIT, 0, 1409, &lt);
    body = malloc(sizeof CHURN_HEADER + lt);
    sprintf(body, "%s%s", CHURN_HEADER, all);
    put_csv(f, body, strlen(body), 1409, NULL, &d);
    in.data = d.id;
    assert_int_equal(pl_retrain(&f->cx, &in, &a, &e), MD_E_UNSUPPORTED);
    assert_string_equal(e.field, "data");
    assert_non_null(strstr(md_err_message(&e), "1409 of the 1409 rows"));
    assert_non_null(strstr(md_err_message(&e), d.id));
    assert_null(a);
    free(all);
    free(body);
    free(own);
    free(test);
    json_decref(params);
}

/* The calibration helpers against what numpy / scikit-learn / scipy give. */
static void test_calibration_helpers(void **state)
{
    (void)state;
    /* F1-optimal threshold: brute force over the grid, the first best wins */
    float sc[] = {0.05f, 0.2f, 0.35f, 0.4f, 0.55f, 0.6f, 0.8f, 0.95f};
    int t[] = {0, 0, 1, 0, 1, 1, 0, 1};
    double f1 = 0;
    double thr = rt__best_threshold(sc, t, 8, &f1);
    double want = NAN, want_f1 = -1;
    for (int k = 0; k <= 80; k++) {
        double g = rt__f1_at(sc, t, 8, (10 + k) / 100.0);
        if (g > want_f1) {
            want_f1 = g;
            want = (10 + k) / 100.0;
        }
    }
    assert_true(thr == want && f1 == want_f1);
    assert_true(fabs(thr - 0.21) < 1e-12); /* predict 0.35 and up: tp 4, fp 2, fn 0 */
    assert_true(fabs(f1 - 0.8) < 1e-12);
    int one[] = {1, 1, 1, 1, 1, 1, 1, 1};
    assert_true(isnan(rt__best_threshold(sc, one, 8, NULL)));
    /* numpy.quantile([1, 2, 3, 4, 10], q) */
    double v[] = {10, 1, 4, 2, 3};
    rt__sort(v, 5);
    assert_true(fabs(rt__quantile(v, 5, 0.05) - 1.2) < 1e-12);
    assert_true(fabs(rt__quantile(v, 5, 0.5) - 3.0) < 1e-12);
    assert_true(fabs(rt__quantile(v, 5, 0.95) - 8.8) < 1e-12);
    /* logistic MLE: a large sample of logistic(0.3, 0.05) by the inverse CDF on a regular
     * grid recovers its parameters; the score equations hold at the estimate */
    size_t n = 20000;
    double *r = malloc(n * sizeof *r);
    for (size_t i = 0; i < n; i++) {
        double u = ((double)i + 0.5) / (double)n;
        r[i] = 0.3 + 0.05 * log(u / (1 - u));
    }
    double mu = 0, s = 0;
    assert_int_equal(rt__logistic_fit(r, n, &mu, &s), MD_OK);
    assert_true(fabs(mu - 0.3) < 1e-6);
    assert_true(fabs(s - 0.05) < 1e-3);
    double gm = 0, gs = -(double)n;
    for (size_t i = 0; i < n; i++) {
        double z = (r[i] - mu) / s;
        gm += tanh(z / 2);
        gs += z * tanh(z / 2);
    }
    assert_true(fabs(gm) < 1e-6 * (double)n && fabs(gs) < 1e-6 * (double)n);
    assert_int_equal(rt__logistic_fit(r, 1, &mu, &s), MD_E_INVALID_PARAM);
    free(r);
}

static void test_checks_name_the_field(void **state)
{
    fx *f = *state;
    md_err e = {0};
    pl_retrain_in in = {.model = "anomaly", .data = "feedback"};
    assert_int_equal(pl_retrain_check(&f->cx, &in, &e), MD_E_UNSUPPORTED);
    assert_string_equal(e.field, "model");
    in.model = "churn";
    assert_int_equal(pl_retrain_check(&f->cx, &in, &e), MD_E_UNSUPPORTED);
    assert_string_equal(e.field, "data"); /* no feedback yet */
    store_dataset d;
    put_dataset(f, 5, "[\"female\",\"churn\"]", &d);
    in.data = d.id;
    assert_int_equal(pl_retrain_check(&f->cx, &in, &e), MD_E_UNSUPPORTED);
    assert_string_equal(e.field, "senior_citizen");
    in.data = "d_nope";
    assert_int_equal(pl_retrain_check(&f->cx, &in, &e), MD_E_NOT_FOUND);
    assert_string_equal(e.field, "data");
    json_t *p = json_pack("{s:i}", "max_depth", 99);
    in.params = p;
    assert_int_equal(pl_retrain_check(&f->cx, &in, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "params.max_depth");
    json_decref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_trains_evaluates_installs_deterministically, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_test_rows_left_out, setup, teardown),
        cmocka_unit_test(test_calibration_helpers),
        cmocka_unit_test_setup_teardown(test_checks_name_the_field, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
