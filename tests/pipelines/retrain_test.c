/* retrain_test.c - pl_retrain / pl_retrain_check on the shipped churn model with a store and a
 * data dir in a temporary directory: a small dataset trains, both versions are evaluated on the
 * held test split, the new version is installed (CANARY or STANDBY, never ACTIVE) with its
 * lineage in the manifest; a second run with the same data and parameters writes byte-identical
 * model.json (deterministic); the checks name the field (model that cannot be retrained, a
 * missing column, too little feedback, a bad parameter). */
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

/* The header and the first n data lines of churn's shipped test split as a dataset; cols
 * (when not NULL) replaces the header line, for a file that lacks a column. */
static void put_dataset(fx *f, size_t n, const char *header, store_dataset *out)
{
    const char *src = getenv("MODELD_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/churn/1/test.csv", src ? src : ".");
    size_t len = 0;
    unsigned char *all = tu_slurp(path, &len);
    size_t end = 0, lines = 0;
    while (end < len && lines <= n)
        lines += all[end++] == '\n';
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
    m.rows = (int64_t)n;
    md_err e = {0};
    assert_int_equal(store_datasets_create(f->st, all, end, &m, out, &e), MD_OK);
    free(all);
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
    assert_int_equal(json_integer_value(json_object_get(a, "train_rows")), 400);
    assert_int_equal(json_integer_value(json_object_get(a, "test_rows")), 1409);
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
    /* drift is judged against the rows it learnt from */
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
        cmocka_unit_test_setup_teardown(test_checks_name_the_field, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
