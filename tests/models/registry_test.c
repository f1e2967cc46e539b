/* registry_test.c - the model registry's state machine and management (src/models/registry.c,
 * canary.c, install.c, describe.c): load ok -> ACTIVE; corrupt artefact, wrong sha256 and a
 * validation mismatch -> FAILED with the reason while the old version keeps serving; hot swap
 * and rollback; exact canary proportions; auto-promote; auto-rollback on errors and on p99
 * with an injected clock; restart restores the active version and the canary; mdl_install path
 * confinement and clean-up; an XGBoost model through the registry; describe and metrics;
 * rollback with no standby loaded (after a restart, in the CLI's lazy registry) returns to the
 * store's previous version; a lazy registry describes the remembered active and canary. */
#include "models_fixture.h"

#include <unistd.h>

static void test_load_highest_active(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    copy_add4(f->shipped, "2", "2");
    copy_add4(f->shipped, "3", "10"); /* adds 3; "10" > "2" numerically */
    mdl_registry_opts o = mfx_opts(f);
    mfx_open(f, &o);
    char b[32];
    assert_string_equal(state_of(f->r, "add4", "10", b), "ACTIVE");
    assert_string_equal(state_of(f->r, "add4", "2", b), "UNLOADED");
    mdl_version *v = NULL;
    assert_int_equal(mdl_acquire(f->r, "add4", NULL, &v, NULL), MD_OK);
    assert_string_equal(mdl_version_id(v), "10");
    assert_int_equal(mdl_version_state(v), MDL_ACTIVE);
    assert_string_equal(mdl_version_name(v), "add4");
    assert_int_equal(mdl_version_manifest(v)->n_inputs, 1);
    md_err e = {0};
    assert_int_equal(run_add(v, &e), 3);
    mdl_release(v);
    char missing[MDL_NAME_MAX];
    assert_int_equal(mdl_ready(f->r, missing), 1);
    assert_int_equal(mdl_acquire(f->r, "nope", NULL, &v, &e), MD_E_MODEL_NOT_FOUND);
    assert_int_equal(mdl_acquire(f->r, "add4", "7", &v, &e), MD_E_MODEL_NOT_FOUND);
    assert_int_equal(mdl_acquire(f->r, "add4", "1", &v, &e), MD_E_MODEL_UNAVAILABLE);
}

static void test_data_root_wins_over_shipped(void **state)
{
    mfx *f = *state;
    char models[700];
    snprintf(models, sizeof models, "%s/models", f->data);
    copy_add4(f->shipped, "1", "1");
    copy_add4(models, "2", "1"); /* same id in the data root: adds 2 */
    copy_add4(f->shipped, "3", "0");
    mdl_registry_opts o = mfx_opts(f);
    mfx_open(f, &o);
    assert_int_equal(answer(f->r), 2);
    json_t *all = mdl_describe_all(f->r);
    assert_int_equal(json_array_size(json_object_get(json_array_get(all, 0), "versions")), 2);
    json_decref(all);
}

static void test_run_checks_inputs(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    mdl_registry_opts o = mfx_opts(f);
    mfx_open(f, &o);
    mdl_version *v = NULL;
    assert_int_equal(mdl_acquire(f->r, "add4", NULL, &v, NULL), MD_OK);
    float x[8] = {0};
    int64_t ix[4] = {0};
    mdl_result *res = NULL;
    md_err e = {0};
    mdl_tensor bad_name = {.name = "z", .dtype = ONNX_FLOAT, .rank = 2, .dims = {1, 4}, .data = x};
    assert_int_equal(mdl_run(v, &bad_name, 1, NULL, &res, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "x");
    mdl_tensor bad_type = {.name = "x", .dtype = ONNX_INT64, .rank = 2, .dims = {1, 4}, .data = ix};
    assert_int_equal(mdl_run(v, &bad_type, 1, NULL, &res, &e), MD_E_INVALID_PARAM);
    assert_non_null(strstr(e.msg, "FP32"));
    mdl_tensor bad_shape = {.name = "x", .dtype = ONNX_FLOAT, .rank = 2, .dims = {2, 3}, .data = x};
    assert_int_equal(mdl_run(v, &bad_shape, 1, NULL, &res, &e), MD_E_INVALID_PARAM);
    mdl_tensor two[2] = {{.name = "x", .dtype = ONNX_FLOAT, .rank = 2, .dims = {1, 4}, .data = x},
                         {.name = "x", .dtype = ONNX_FLOAT, .rank = 2, .dims = {1, 4}, .data = x}};
    assert_int_equal(mdl_run(v, two, 2, NULL, &res, &e), MD_E_INVALID_PARAM);
    mdl_tensor ok = {.name = "x", .dtype = ONNX_FLOAT, .rank = 2, .dims = {2, 4}, .data = x};
    assert_int_equal(mdl_run(v, &ok, 1, NULL, &res, &e), MD_OK);
    assert_int_equal(mdl_result_count(res), 1);
    assert_int_equal(mdl_result_output(res, 0)->dims[0], 2);
    assert_string_equal(mdl_result_output(res, 0)->name, "y");
    assert_float_equal(((const float *)mdl_result_output(res, 0)->data)[7], 1.0, 1e-6);
    mdl_result_free(res);
    mdl_release(v);
    /* four failures by reason, one success */
    json_t *d = NULL;
    assert_int_equal(mdl_describe(f->r, "add4", NULL, &d, &e), MD_OK);
    json_t *st = json_object_get(json_object_get(d, "stats"), "1");
    assert_int_equal(json_integer_value(json_object_get(st, "requests")), 5);
    assert_int_equal(json_integer_value(json_object_get(st, "successes")), 1);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(st, "failures"), "invalid_parameter")),
        4);
    assert_non_null(strstr(json_string_value(json_object_get(st, "last_error")), "invalid"));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(d, "manifest"), "artefact")),
        "model.onnx");
    json_decref(d);
}

/* Activating version `bad` fails with reason containing `why`; 1 keeps serving. */
static void expect_failed(mfx *f, const char *why)
{
    md_err e = {0};
    assert_int_equal(answer(f->r), 1);
    int rc = mdl_activate(f->r, "add4", "2", &e);
    assert_int_equal(rc, MD_E_MODEL_INVALID);
    if (!strstr(e.msg, why))
        print_error("message: %s\n", e.msg);
    assert_non_null(strstr(e.msg, why));
    char b[32];
    assert_string_equal(state_of(f->r, "add4", "2", b), "FAILED");
    assert_string_equal(state_of(f->r, "add4", "1", b), "ACTIVE");
    for (int i = 0; i < 5; i++)
        assert_int_equal(answer(f->r), 1);
    json_t *d = NULL;
    assert_int_equal(mdl_describe(f->r, "add4", NULL, &d, &e), MD_OK);
    json_t *vs = json_object_get(d, "versions");
    assert_non_null(
        strstr(json_string_value(json_object_get(json_array_get(vs, 1), "reason")), why));
    json_decref(d);
}

static void open_with_1_then_2(mfx *f)
{
    copy_add4(f->shipped, "1", "1");
    mdl_registry_opts o = mfx_opts(f);
    mfx_open(f, &o);
    copy_add4(f->shipped, "2", "2");
    md_err e = {0};
    assert_int_equal(mdl_load(f->r, "add4", &e), MD_OK); /* rescan: 2 is seen, 1 stays */
}

static void test_corrupt_artefact_fails(void **state)
{
    mfx *f = *state;
    open_with_1_then_2(f);
    char p[1200];
    snprintf(p, sizeof p, "%s/add4/2/model.onnx", f->shipped);
    spit_file(p, "\x08\x07garbage-not-a-model", 20);
    char hex[65];
    assert_int_equal(mdl__sha256_file(p, hex, NULL), MD_OK);
    json_t *m = get_manifest(f->shipped, "2");
    json_object_set_new(m, "sha256", json_string(hex));
    put_manifest(f->shipped, "2", m);
    expect_failed(f, "");
}

static void test_wrong_sha256_fails(void **state)
{
    mfx *f = *state;
    open_with_1_then_2(f);
    json_t *m = get_manifest(f->shipped, "2");
    json_object_set_new(m, "sha256",
                        json_string("00000000000000000000000000000000"
                                    "00000000000000000000000000000000"));
    put_manifest(f->shipped, "2", m);
    expect_failed(f, "sha256 mismatch");
    char dir[1200];
    md_err e = {0};
    snprintf(dir, sizeof dir, "%s/add4/2", f->shipped);
    assert_int_equal(mdl_validate_dir(dir, NULL, &e), MD_E_MODEL_INVALID);
    assert_string_equal(e.field, "sha256");
    snprintf(dir, sizeof dir, "%s/add4/1", f->shipped);
    assert_int_equal(mdl_validate_dir(dir, NULL, &e), MD_OK);
    snprintf(dir, sizeof dir, "%s/add4/9", f->shipped);
    assert_int_equal(mdl_validate_dir(dir, NULL, &e), MD_E_FILE_NOT_FOUND);
}

static void test_validation_mismatch_fails(void **state)
{
    mfx *f = *state;
    open_with_1_then_2(f);
    json_t *m = get_manifest(f->shipped, "2");
    json_t *y = json_object_get(
        json_object_get(
            json_array_get(json_object_get(json_object_get(m, "validation"), "samples"), 0),
            "outputs"),
        "y");
    json_array_set_new(json_array_get(y, 0), 2, json_real(5.5)); /* 3 + 2 = 5 */
    put_manifest(f->shipped, "2", m);
    expect_failed(f, "validation mismatch");
}

static void test_manifest_disagrees_with_graph(void **state)
{
    mfx *f = *state;
    open_with_1_then_2(f);
    json_t *m = get_manifest(f->shipped, "2");
    json_t *in0 = json_array_get(json_object_get(m, "inputs"), 0);
    json_object_set_new(in0, "datatype", json_string("FP64"));
    json_object_del(m, "validation");
    put_manifest(f->shipped, "2", m);
    expect_failed(f, "inputs[0]");
}

static void test_hot_swap_and_rollback(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    copy_add4(f->shipped, "2", "2");
    copy_add4(f->shipped, "3", "3");
    mdl_registry_opts o = mfx_opts(f);
    o.keep_standby = 1;
    mfx_open(f, &o);
    md_err e = {0};
    char b[32];
    assert_int_equal(answer(f->r), 3);
    mdl_version *held = NULL;
    assert_int_equal(mdl_acquire(f->r, "add4", NULL, &held, &e), MD_OK); /* 3, held */
    assert_int_equal(mdl_activate(f->r, "add4", "1", &e), MD_OK);
    assert_int_equal(answer(f->r), 1);
    assert_string_equal(state_of(f->r, "add4", "3", b), "STANDBY");
    assert_int_equal(run_add(held, &e), 3); /* a held reference keeps running */
    /* explicit version: STANDBY is acquirable */
    mdl_version *sb = NULL;
    assert_int_equal(mdl_acquire(f->r, "add4", "3", &sb, &e), MD_OK);
    assert_int_equal(mdl_version_state(sb), MDL_STANDBY);
    mdl_release(sb);
    assert_int_equal(mdl_activate(f->r, "add4", "2", &e), MD_OK);
    /* keep_standby = 1: 3 (the older standby) is retired, 1 stands by */
    assert_string_equal(state_of(f->r, "add4", "3", b), "RETIRED");
    assert_string_equal(state_of(f->r, "add4", "1", b), "STANDBY");
    assert_int_equal(mdl_version_state(held), MDL_RETIRED);
    assert_int_equal(run_add(held, &e), 3); /* still not freed while held */
    mdl_release(held);
    assert_int_equal(mdl_rollback(f->r, "add4", &e), MD_OK);
    assert_int_equal(answer(f->r), 1);
    assert_int_equal(mdl_rollback(f->r, "add4", &e), MD_OK); /* back to 2 */
    assert_int_equal(answer(f->r), 2);
    assert_int_equal(mdl_activate(f->r, "add4", "3", &e), MD_OK); /* RETIRED -> fresh load */
    assert_int_equal(answer(f->r), 3);
    assert_int_equal(mdl_unload(f->r, "add4", &e), MD_OK);
    assert_int_equal(answer(f->r), -MD_E_MODEL_UNAVAILABLE);
    assert_int_equal(mdl_rollback(f->r, "add4", &e), MD_E_CONFLICT);
    assert_int_equal(mdl_promote(f->r, "add4", &e), MD_E_CONFLICT);
    assert_int_equal(mdl_load(f->r, "add4", &e), MD_OK);
    assert_int_equal(answer(f->r), 3);
}

static void test_canary_proportions_exact(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    copy_add4(f->shipped, "2", "2");
    mdl_registry_opts o = mfx_opts(f);
    mfx_open(f, &o);
    md_err e = {0};
    assert_int_equal(mdl_activate(f->r, "add4", "1", &e), MD_OK);
    assert_int_equal(mdl_canary(f->r, "add4", "1", 10, &e), MD_E_CONFLICT);
    assert_int_equal(mdl_canary(f->r, "add4", "2", 101, &e), MD_E_INVALID_PARAM);
    assert_int_equal(mdl_canary(f->r, "add4", "2", 25, &e), MD_OK);
    int counts[3] = {0};
    for (int i = 0; i < 4000; i++) {
        mdl_version *v = NULL;
        assert_int_equal(mdl_acquire(f->r, "add4", NULL, &v, &e), MD_OK);
        counts[atoi(mdl_version_id(v))]++;
        mdl_release(v);
    }
    assert_int_equal(counts[2], 1000);
    assert_int_equal(counts[1], 3000);
    /* a new percentage starts a new split; 12.5% of 800 = 100 */
    assert_int_equal(mdl_canary(f->r, "add4", "2", 12.5, &e), MD_OK);
    int c2 = 0;
    for (int i = 0; i < 800; i++)
        c2 += answer(f->r) == 2;
    assert_int_equal(c2, 100);
    json_t *d = NULL;
    assert_int_equal(mdl_describe(f->r, "add4", NULL, &d, &e), MD_OK);
    assert_string_equal(json_string_value(json_object_get(d, "canary_version")), "2");
    assert_float_equal(json_number_value(json_object_get(d, "canary_percent")), 12.5, 1e-9);
    json_decref(d);
    assert_int_equal(mdl_canary(f->r, "add4", "2", 0, &e), MD_OK); /* ends the canary */
    char b[32];
    assert_string_equal(state_of(f->r, "add4", "2", b), "STANDBY");
    for (int i = 0; i < 100; i++)
        assert_int_equal(answer(f->r), 1);
    assert_int_equal(mdl_canary(f->r, "add4", "2", 100, &e), MD_OK);
    assert_int_equal(answer(f->r), 2);
    assert_int_equal(mdl_promote(f->r, "add4", &e), MD_OK);
    assert_string_equal(state_of(f->r, "add4", "2", b), "ACTIVE");
    assert_string_equal(state_of(f->r, "add4", "1", b), "STANDBY");
    /* rollback with a canary running: the canary ends, the active goes back to 1 */
    copy_add4(f->shipped, "3", "3");
    assert_int_equal(mdl_load(f->r, "add4", &e), MD_OK); /* rescan */
    int crc = mdl_canary(f->r, "add4", "3", 50, &e);
    if (crc != MD_OK)
        print_error("canary 3: %s\n", e.msg);
    assert_int_equal(crc, MD_OK);
    assert_int_equal(mdl_rollback(f->r, "add4", &e), MD_OK);
    assert_string_equal(state_of(f->r, "add4", "1", b), "ACTIVE");
    assert_string_equal(state_of(f->r, "add4", "3", b), "RETIRED"); /* keep_standby 1 */
    assert_string_equal(state_of(f->r, "add4", "2", b), "STANDBY");
    for (int i = 0; i < 20; i++)
        assert_int_equal(answer(f->r), 1);
}

static void test_auto_promote(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    copy_add4(f->shipped, "2", "2");
    mdl_registry_opts o = mfx_opts(f);
    o.canary.promote_after = 10;
    mfx_open(f, &o);
    md_err e = {0};
    assert_int_equal(mdl_activate(f->r, "add4", "1", &e), MD_OK);
    assert_int_equal(mdl_canary(f->r, "add4", "2", 50, &e), MD_OK);
    int from2 = 0;
    char b[32];
    for (int i = 0; i < 1000 && from2 < 9; i++)
        from2 += answer(f->r) == 2;
    assert_int_equal(from2, 9);
    assert_string_equal(state_of(f->r, "add4", "2", b), "CANARY");
    for (int i = 0; i < 10 && answer(f->r) != 2; i++)
        ;
    assert_string_equal(state_of(f->r, "add4", "2", b), "ACTIVE");
    assert_string_equal(state_of(f->r, "add4", "1", b), "STANDBY");
    for (int i = 0; i < 20; i++)
        assert_int_equal(answer(f->r), 2);
    /* persisted */
    store_model_state st;
    assert_int_equal(store_models_get(f->st, "add4", &st, NULL), MD_OK);
    assert_string_equal(st.active_version, "2");
    assert_string_equal(st.canary_version, "");
}

/* Run one request through the routing; canary requests fail (timeout) when fail_canary,
 * and take canary_ns (else active_ns) by the step clock. Returns the version that ran. */
static int routed(mfx *f, bool fail_canary, uint64_t active_ns, uint64_t canary_ns)
{
    mdl_version *v = NULL;
    assert_int_equal(mdl_acquire(f->r, "add4", NULL, &v, NULL), MD_OK);
    int k = atoi(mdl_version_id(v));
    bool canary = mdl_version_state(v) == MDL_CANARY;
    float x[4] = {0};
    mdl_tensor in = {.name = "x", .dtype = ONNX_FLOAT, .rank = 2, .dims = {1, 4}, .data = x};
    mdl_result *res = NULL;
    f->clk.step = canary ? canary_ns : active_ns;
    /* a server-side failure: a deadline already past (timeout, 504) */
    md_cancel late;
    md_cancel_init(&late, 1);
    mdl_run(v, &in, 1, canary && fail_canary ? &late : NULL, &res, NULL);
    f->clk.step = 0;
    mdl_result_free(res);
    mdl_release(v);
    return k;
}

static void test_auto_rollback_on_errors(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    copy_add4(f->shipped, "2", "2");
    mdl_registry_opts o = mfx_opts(f);
    o.canary.min_requests = 20;
    o.canary.max_error_margin = 0.1;
    mfx_open(f, &o);
    md_err e = {0};
    char b[32];
    assert_int_equal(mdl_activate(f->r, "add4", "1", &e), MD_OK);
    assert_int_equal(mdl_canary(f->r, "add4", "2", 50, &e), MD_OK);
    int canary_runs = 0;
    for (int i = 0; i < 1000 && canary_runs < 19; i++)
        canary_runs += routed(f, true, 1000, 1000) == 2;
    assert_int_equal(canary_runs, 19);
    assert_string_equal(state_of(f->r, "add4", "2", b), "CANARY"); /* not judged yet */
    for (int i = 0; i < 10 && routed(f, true, 1000, 1000) != 2; i++)
        ;
    assert_string_equal(state_of(f->r, "add4", "2", b), "STANDBY");
    assert_string_equal(state_of(f->r, "add4", "1", b), "ACTIVE");
    for (int i = 0; i < 50; i++)
        assert_int_equal(answer(f->r), 1);
    /* client errors (bad shapes) on the canary do not count against it */
    assert_int_equal(mdl_canary(f->r, "add4", "2", 50, &e), MD_OK);
    for (int i = 0; i < 200; i++) {
        mdl_version *v = NULL;
        assert_int_equal(mdl_acquire(f->r, "add4", NULL, &v, NULL), MD_OK);
        float x[3] = {0};
        mdl_tensor bad = {.name = "x", .dtype = ONNX_FLOAT, .rank = 2, .dims = {1, 3}, .data = x};
        mdl_result *res = NULL;
        assert_int_equal(mdl_run(v, &bad, 1, NULL, &res, NULL), MD_E_INVALID_PARAM);
        mdl_release(v);
    }
    assert_string_equal(state_of(f->r, "add4", "2", b), "CANARY");
}

static void test_auto_rollback_on_p99_and_window(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    copy_add4(f->shipped, "2", "2");
    mdl_registry_opts o = mfx_opts(f);
    o.canary.min_requests = 20;
    o.canary.max_p99_ratio = 2.0;
    o.canary.window_s = 60;
    mfx_open(f, &o);
    md_err e = {0};
    char b[32];
    assert_int_equal(mdl_activate(f->r, "add4", "1", &e), MD_OK);
    assert_int_equal(mdl_canary(f->r, "add4", "2", 50, &e), MD_OK);
    /* canary a little slower (same histogram bucket): within the ratio, it stays */
    for (int i = 0; i < 200; i++)
        routed(f, false, 3000000, 4000000);
    assert_string_equal(state_of(f->r, "add4", "2", b), "CANARY");
    /* a new window: 19 slow canary requests (under min_requests), then the window ends, so
     * they never count; 30 normal ones in the next window keep the canary */
    f->clk.t += 61ULL * 1000000000ULL;
    int slow = 0;
    for (int i = 0; i < 1000 && slow < 19; i++)
        slow += routed(f, false, 3000000, 40000000) == 2;
    assert_int_equal(slow, 19);
    assert_string_equal(state_of(f->r, "add4", "2", b), "CANARY");
    f->clk.t += 61ULL * 1000000000ULL;
    int fast = 0;
    for (int i = 0; i < 1000 && fast < 30; i++)
        fast += routed(f, false, 3000000, 3000000) == 2;
    assert_int_equal(fast, 30);
    assert_string_equal(state_of(f->r, "add4", "2", b), "CANARY");
    /* now 20+ slow ones in one window: rolled back */
    for (int i = 0; i < 80; i++)
        routed(f, false, 3000000, 40000000);
    assert_string_equal(state_of(f->r, "add4", "2", b), "STANDBY");
    assert_int_equal(answer(f->r), 1);
}

static void test_restart_restores_active_and_canary(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    copy_add4(f->shipped, "2", "2");
    copy_add4(f->shipped, "3", "3");
    mdl_registry_opts o = mfx_opts(f);
    mfx_open(f, &o);
    md_err e = {0};
    assert_int_equal(answer(f->r), 3);
    assert_int_equal(mdl_activate(f->r, "add4", "1", &e), MD_OK);
    assert_int_equal(mdl_canary(f->r, "add4", "2", 20, &e), MD_OK);
    mfx_open(f, &o); /* closes and reopens on the same store */
    char b[32];
    assert_string_equal(state_of(f->r, "add4", "1", b), "ACTIVE");
    assert_string_equal(state_of(f->r, "add4", "2", b), "CANARY");
    int c2 = 0;
    for (int i = 0; i < 100; i++)
        c2 += answer(f->r) == 2;
    assert_int_equal(c2, 20);
    /* a remembered version that no longer loads: the newest good one serves instead */
    assert_int_equal(mdl_canary(f->r, "add4", "2", 0, &e), MD_OK);
    json_t *m = get_manifest(f->shipped, "1");
    json_object_set_new(m, "sha256",
                        json_string("11111111111111111111111111111111"
                                    "11111111111111111111111111111111"));
    put_manifest(f->shipped, "1", m);
    mfx_open(f, &o);
    assert_string_equal(state_of(f->r, "add4", "1", b), "FAILED");
    assert_int_equal(answer(f->r), 3);
}

static void test_on_demand_without_load_all(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    mdl_registry_opts o = mfx_opts(f);
    o.load_all = false;
    mfx_open(f, &o);
    char b[32];
    assert_string_equal(state_of(f->r, "add4", "1", b), "UNLOADED");
    assert_int_equal(answer(f->r), 1); /* the first acquire loads it */
}

static size_t count_files(const char *dir)
{
    return (size_t)tu_count_files(dir, "models");
}

static void test_install_and_confinement(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    mdl_registry_opts o = mfx_opts(f);
    mfx_open(f, &o);
    char p[1200];
    size_t ml, mfl;
    snprintf(p, sizeof p, "%s/add4/2/model.onnx", fixture_models());
    unsigned char *model = tu_slurp(p, &ml);
    snprintf(p, sizeof p, "%s/add4/2/modeld.json", fixture_models());
    json_t *doc = json_load_file(p, 0, NULL);
    json_object_set_new(doc, "version", json_string("5"));
    char *man = json_dumps(doc, 0);
    mfl = strlen(man);
    md_err e = {0};
    static const char *const bad_paths[] = {"../5/model.onnx", "/etc/passwd", "5/../model.onnx",
                                            "5/a/model.onnx",  "5/.hidden",   "5/",
                                            "model.onnx",      "..",          "5/.."};
    for (size_t i = 0; i < sizeof bad_paths / sizeof bad_paths[0]; i++) {
        mdl_file fs[2] = {{bad_paths[i], model, ml}, {"5/modeld.json", man, mfl}};
        assert_int_equal(mdl_install(f->r, "add4", fs, 2, &e), MD_E_INVALID_PARAM);
        assert_string_equal(e.field, "files");
    }
    mdl_file mixed[2] = {{"6/model.onnx", model, ml}, {"5/modeld.json", man, mfl}};
    assert_int_equal(mdl_install(f->r, "add4", mixed, 2, &e), MD_E_INVALID_PARAM);
    mdl_file noman[1] = {{"5/model.onnx", model, ml}};
    assert_int_equal(mdl_install(f->r, "add4", noman, 1, &e), MD_E_INVALID_PARAM);
    mdl_file ok[2] = {{"5/model.onnx", model, ml}, {"5/modeld.json", man, mfl}};
    assert_int_equal(mdl_install(f->r, "../x", ok, 2, &e), MD_E_INVALID_PARAM);
    assert_int_equal(count_files(f->data), 0);
    /* a symlinked model directory is refused */
    char link[1200], target[1200];
    snprintf(target, sizeof target, "%s/elsewhere", f->dir);
    mkdirs(target);
    snprintf(link, sizeof link, "%s/models", f->data);
    mkdirs(link);
    snprintf(link, sizeof link, "%s/models/evil", f->data);
    assert_int_equal(symlink(target, link), 0);
    assert_int_not_equal(mdl_install(f->r, "evil", ok, 2, &e), MD_OK);
    assert_int_equal(tu_count_files(f->dir, "elsewhere"), 0);
    unlink(link);
    /* a wrong hash: refused, nothing stays, 1 keeps serving */
    json_object_set_new(doc, "sha256",
                        json_string("22222222222222222222222222222222"
                                    "22222222222222222222222222222222"));
    char *bad_man = json_dumps(doc, 0);
    mdl_file badhash[2] = {{"5/model.onnx", model, ml},
                           {"5/modeld.json", bad_man, strlen(bad_man)}};
    assert_int_equal(mdl_install(f->r, "add4", badhash, 2, &e), MD_E_MODEL_INVALID);
    assert_non_null(strstr(e.msg, "sha256 mismatch"));
    assert_int_equal(count_files(f->data), 0);
    assert_int_equal(answer(f->r), 1);
    char b[32];
    assert_string_equal(state_of(f->r, "add4", "5", b), "?"); /* forgotten */
    /* the good one */
    assert_int_equal(mdl_install(f->r, "add4", ok, 2, &e), MD_OK);
    assert_int_equal(count_files(f->data), 2);
    assert_int_equal(answer(f->r), 2); /* the files of fixture 2: adds 2 */
    assert_int_equal(mdl_install(f->r, "add4", ok, 2, &e), MD_E_CONFLICT);
    /* a new model by upload */
    json_object_set_new(doc, "name", json_string("fresh"));
    json_object_set_new(doc, "version", json_string("1"));
    json_object_set_new(doc, "sha256", json_string(""));
    free(man);
    snprintf(p, sizeof p, "%s/add4/2/modeld.json", fixture_models());
    json_t *d2 = json_load_file(p, 0, NULL);
    json_object_set_new(d2, "name", json_string("fresh"));
    json_object_set_new(d2, "version", json_string("1"));
    man = json_dumps(d2, 0);
    mdl_file fresh[2] = {{"1/model.onnx", model, ml}, {"1/modeld.json", man, strlen(man)}};
    assert_int_equal(mdl_install(f->r, "fresh", fresh, 2, &e), MD_OK);
    mdl_version *v = NULL;
    assert_int_equal(mdl_acquire(f->r, "fresh", NULL, &v, &e), MD_OK);
    mdl_release(v);
    /* after a restart the uploaded version is still there and active */
    mfx_open(f, &o);
    assert_int_equal(answer(f->r), 2);
    assert_string_equal(state_of(f->r, "add4", "5", b), "ACTIVE");
    json_decref(d2);
    json_decref(doc);
    free(bad_man);
    free(man);
    free(model);
}

/* The files of fixture add4/<fixture> as version ver (manifest rewritten); *man new (free). */
static void fixture_files(const char *fixture, const char *ver, mdl_file fs[2], char paths[2][32],
                          unsigned char **model, char **man)
{
    char p[1200];
    size_t ml;
    snprintf(p, sizeof p, "%s/add4/%s/model.onnx", fixture_models(), fixture);
    *model = tu_slurp(p, &ml);
    snprintf(p, sizeof p, "%s/add4/%s/modeld.json", fixture_models(), fixture);
    json_t *doc = json_load_file(p, 0, NULL);
    json_object_set_new(doc, "version", json_string(ver));
    *man = json_dumps(doc, 0);
    json_decref(doc);
    snprintf(paths[0], 32, "%s/model.onnx", ver);
    snprintf(paths[1], 32, "%s/modeld.json", ver);
    fs[0] = (mdl_file){paths[0], *model, ml};
    fs[1] = (mdl_file){paths[1], *man, strlen(*man)};
}

/* mdl_install_as: STANDBY serves nothing and is no rollback target (it never served); CANARY
 * takes its share at once; the active version stays; both survive a restart as remembered. */
static void test_install_as_standby_and_canary(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    mdl_registry_opts o = mfx_opts(f);
    mfx_open(f, &o);
    md_err e = {0};
    mdl_file fs[2];
    char paths[2][32], *man;
    unsigned char *model;
    char b[32];
    fixture_files("2", "5", fs, paths, &model, &man);
    assert_int_equal(mdl_install_as(f->r, "add4", fs, 2, MDL_INSTALL_STANDBY, 0, &e), MD_OK);
    assert_string_equal(state_of(f->r, "add4", "5", b), "STANDBY");
    assert_string_equal(state_of(f->r, "add4", "1", b), "ACTIVE");
    assert_int_equal(answer(f->r), 1);
    assert_int_equal(mdl_rollback(f->r, "add4", &e), MD_E_CONFLICT); /* not to a never-served */
    assert_string_equal(state_of(f->r, "add4", "1", b), "ACTIVE");
    free(model);
    free(man);
    fixture_files("3", "6", fs, paths, &model, &man);
    assert_int_equal(mdl_install_as(f->r, "add4", fs, 2, MDL_INSTALL_CANARY, 0, &e),
                     MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "canary_percent");
    assert_int_equal(mdl_install_as(f->r, "add4", fs, 2, MDL_INSTALL_CANARY, 100, &e), MD_OK);
    assert_string_equal(state_of(f->r, "add4", "6", b), "CANARY");
    assert_int_equal(answer(f->r), 3); /* 100 %: the canary answers */
    free(model);
    free(man);
    mfx_open(f, &o); /* restart: active 1, canary 6, 5 on disk only */
    assert_string_equal(state_of(f->r, "add4", "1", b), "ACTIVE");
    assert_string_equal(state_of(f->r, "add4", "6", b), "CANARY");
}

static void test_xgboost_through_registry(void **state)
{
    mfx *f = *state;
    mdl_registry_opts o = mfx_opts(f);
    o.shipped_dir = fixture_models();
    mfx_open(f, &o);
    mdl_version *v = NULL;
    md_err e = {0};
    assert_int_equal(mdl_acquire(f->r, "xgb-multi", NULL, &v, &e), MD_OK);
    assert_string_equal(mdl_version_manifest(v)->runtime, "xgboost");
    float rows[12] = {0.1f, -0.2f, 0.3f, -0.4f, 0.5f, -0.6f, 1, 1, 1, 1, 1, 1};
    mdl_tensor in = {
        .name = "features", .dtype = ONNX_FLOAT, .rank = 2, .dims = {2, 6}, .data = rows};
    mdl_result *res = NULL;
    assert_int_equal(mdl_run(v, &in, 1, NULL, &res, &e), MD_OK);
    const mdl_tensor *p = mdl_result_output(res, 0);
    assert_string_equal(p->name, "probabilities");
    assert_int_equal(p->dims[0], 2);
    assert_int_equal(p->dims[1], 3);
    const float *pr = p->data;
    assert_float_equal(pr[0] + pr[1] + pr[2], 1.0, 1e-5);
    /* the validation sample's first row, checked against xgboost's own output */
    json_t *exp = json_array_get(
        json_object_get(
            json_object_get(
                json_array_get(
                    json_object_get(json_object_get(mdl_version_manifest(v)->doc, "validation"),
                                    "samples"),
                    0),
                "outputs"),
            "probabilities"),
        0);
    for (int k = 0; k < 3; k++)
        assert_float_equal(pr[k], json_number_value(json_array_get(exp, (size_t)k)), 1e-5);
    mdl_result_free(res);
    in.dims[1] = 5;
    assert_int_equal(mdl_run(v, &in, 1, NULL, &res, &e), MD_E_INVALID_PARAM);
    mdl_release(v);
    char path[1200];
    snprintf(path, sizeof path, "%s/xgb-multi/1", fixture_models());
    assert_int_equal(mdl_validate_dir(path, NULL, &e), MD_OK);
    snprintf(path, sizeof path, "%s/add4/3", fixture_models());
    assert_int_equal(mdl_validate_dir(path, NULL, &e), MD_OK);
}

static void test_describe_and_metrics(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    copy_add4(f->shipped, "2", "2");
    json_t *m = get_manifest(f->shipped, "2");
    json_object_set_new(m, "required", json_true());
    put_manifest(f->shipped, "2", m);
    mdl_registry_opts o = mfx_opts(f);
    mfx_open(f, &o);
    md_err e = {0};
    assert_int_equal(answer(f->r), 2);
    mdl_version *v = NULL;
    assert_int_equal(mdl_acquire(f->r, "add4", NULL, &v, &e), MD_OK);
    mdl_version_note_queue(v, 3000000);
    mdl_release(v);
    json_t *all = mdl_describe_all(f->r);
    json_t *a = json_array_get(all, 0);
    assert_string_equal(json_string_value(json_object_get(a, "name")), "add4");
    assert_string_equal(json_string_value(json_object_get(a, "family")), "generic");
    assert_string_equal(json_string_value(json_object_get(a, "runtime")), "onnx");
    assert_string_equal(json_string_value(json_object_get(a, "active_version")), "2");
    assert_true(json_is_null(json_object_get(a, "canary_version")));
    assert_string_equal(json_string_value(json_object_get(a, "state")), "ACTIVE");
    assert_true(json_is_true(json_object_get(a, "required")));
    assert_int_equal(json_array_size(json_object_get(a, "versions")), 2);
    json_decref(all);
    json_t *d = NULL;
    assert_int_equal(mdl_describe(f->r, "add4", "1", &d, &e), MD_OK);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(d, "manifest"), "version")), "1");
    json_t *s2 = json_object_get(json_object_get(d, "stats"), "2");
    assert_int_equal(json_integer_value(json_object_get(s2, "requests")), 1);
    assert_int_equal(json_integer_value(json_object_get(s2, "queue_count")), 1);
    assert_float_equal(json_number_value(json_object_get(s2, "queue_seconds_total")), 0.003, 1e-9);
    assert_true(json_integer_value(json_object_get(s2, "memory_bytes")) > 0);
    json_t *lat = json_object_get(s2, "latency_seconds");
    assert_int_equal(json_array_size(json_object_get(lat, "buckets")), MDL_NBUCKETS + 1);
    json_decref(d);
    assert_int_equal(mdl_describe(f->r, "add4", "9", &d, &e), MD_E_MODEL_NOT_FOUND);
    assert_int_equal(mdl_describe(f->r, "zzz", NULL, &d, &e), MD_E_MODEL_NOT_FOUND);
    char missing[MDL_NAME_MAX];
    assert_int_equal(mdl_ready(f->r, missing), 1);
    md_buf b;
    md_buf_init(&b, 1 << 20);
    mdl_metrics(&b, f->r);
    const char *want[] = {
        "# TYPE modeld_inference_requests_total counter\n",
        "modeld_inference_requests_total{model=\"add4\",version=\"2\",outcome=\"success\"} 1\n",
        "# TYPE modeld_inference_duration_seconds histogram\n",
        "modeld_inference_duration_seconds_bucket{model=\"add4\",version=\"2\",le=\"+Inf\"} 1\n",
        "modeld_inference_duration_seconds_count{model=\"add4\",version=\"2\"} 1\n",
        "modeld_inference_queue_seconds_bucket{model=\"add4\",version=\"2\",le=\"0.005\"} 1\n",
        "modeld_inference_queue_seconds_bucket{model=\"add4\",version=\"2\",le=\"0.0025\"} 0\n",
        "modeld_model_state{model=\"add4\",version=\"2\",state=\"ACTIVE\"} 1\n",
        "modeld_model_state{model=\"add4\",version=\"1\",state=\"UNLOADED\"} 1\n",
        "modeld_model_state{model=\"add4\",version=\"2\",state=\"FAILED\"} 0\n",
        "# HELP modeld_model_memory_bytes ",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(b.data, want[i]))
            print_error("missing: %s\nin:\n%s\n", want[i], b.data);
        assert_non_null(strstr(b.data, want[i]));
    }
    /* each family's TYPE line appears once */
    const char *t = strstr(b.data, "# TYPE modeld_model_state gauge");
    assert_non_null(t);
    assert_null(strstr(t + 1, "# TYPE modeld_model_state gauge"));
    md_buf_free(&b);
    /* unloading a required model: not ready, and named */
    assert_int_equal(mdl_unload(f->r, "add4", &e), MD_OK);
    assert_int_equal(mdl_ready(f->r, missing), 0);
    assert_string_equal(missing, "add4");
}

/* The active and previous versions the store remembers. */
static void expect_stored(mfx *f, const char *active, const char *previous)
{
    store_model_state st;
    assert_int_equal(store_models_get(f->st, "add4", &st, NULL), MD_OK);
    assert_string_equal(st.active_version, active);
    assert_string_equal(st.previous_version, previous);
}

/* No standby loaded (a restart, or the CLI's registry that loads nothing): rollback loads and
 * activates the version the store remembers as active before; one that no longer validates is
 * refused while the active one keeps serving; an unloaded model has nothing to roll back. */
static void test_rollback_after_fresh_open(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    copy_add4(f->shipped, "2", "2");
    copy_add4(f->shipped, "3", "3");
    mdl_registry_opts o = mfx_opts(f);
    mfx_open(f, &o);
    md_err e = {0};
    char b[32];
    assert_int_equal(answer(f->r), 3);
    expect_stored(f, "3", "");
    assert_int_equal(mdl_canary(f->r, "add4", "2", 10, &e), MD_OK); /* not an activation */
    expect_stored(f, "3", "");
    assert_int_equal(mdl_activate(f->r, "add4", "1", &e), MD_OK);
    expect_stored(f, "1", "3");
    mfx_open(f, &o); /* a restart: 1 active (2 canary), nothing standing by */
    assert_string_equal(state_of(f->r, "add4", "3", b), "UNLOADED");
    assert_int_equal(mdl_rollback(f->r, "add4", &e), MD_OK);
    assert_string_equal(state_of(f->r, "add4", "3", b), "ACTIVE");
    assert_string_equal(state_of(f->r, "add4", "1", b), "STANDBY");
    /* the canary ended, then retired: keep_standby 1 keeps 1, the newer standby */
    assert_string_equal(state_of(f->r, "add4", "2", b), "RETIRED");
    assert_int_equal(answer(f->r), 3);
    expect_stored(f, "3", "1");
    /* the CLI's registry: nothing loaded at all */
    mdl_registry_opts lazy = o;
    lazy.load_all = false;
    mfx_open(f, &lazy);
    assert_int_equal(mdl_rollback(f->r, "add4", &e), MD_OK);
    assert_string_equal(state_of(f->r, "add4", "1", b), "ACTIVE");
    assert_string_equal(state_of(f->r, "add4", "3", b), "UNLOADED");
    expect_stored(f, "1", "3");
    assert_int_equal(answer(f->r), 1);
    /* the remembered previous version no longer validates: refused, 1 keeps serving */
    json_t *m = get_manifest(f->shipped, "3");
    json_object_set_new(m, "sha256",
                        json_string("11111111111111111111111111111111"
                                    "11111111111111111111111111111111"));
    put_manifest(f->shipped, "3", m);
    mfx_open(f, &o);
    assert_int_equal(mdl_rollback(f->r, "add4", &e), MD_E_MODEL_INVALID);
    assert_string_equal(e.field, "sha256");
    assert_string_equal(state_of(f->r, "add4", "3", b), "FAILED");
    assert_int_equal(answer(f->r), 1);
    expect_stored(f, "1", "3");
    /* unloaded here: nothing is active to roll back from */
    assert_int_equal(mdl_unload(f->r, "add4", &e), MD_OK);
    assert_int_equal(mdl_rollback(f->r, "add4", &e), MD_E_CONFLICT);
}

/* A registry that loads nothing (the CLI) describes the active and canary versions the store
 * remembers, as UNLOADED, without counting them as serving; its activation keeps the
 * remembered canary; a remembered version that is not on disk is not reported. */
static void test_describe_remembered_without_loading(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    copy_add4(f->shipped, "2", "2");
    copy_add4(f->shipped, "3", "3");
    json_t *mf = get_manifest(f->shipped, "1");
    json_object_set_new(mf, "required", json_true());
    put_manifest(f->shipped, "1", mf);
    mdl_registry_opts o = mfx_opts(f);
    mfx_open(f, &o);
    md_err e = {0};
    assert_int_equal(mdl_activate(f->r, "add4", "1", &e), MD_OK);
    assert_int_equal(mdl_canary(f->r, "add4", "2", 20, &e), MD_OK);
    mdl_registry_opts lazy = o;
    lazy.load_all = false;
    mfx_open(f, &lazy);
    json_t *all = mdl_describe_all(f->r);
    json_t *a = json_array_get(all, 0);
    assert_string_equal(json_string_value(json_object_get(a, "active_version")), "1");
    assert_string_equal(json_string_value(json_object_get(a, "canary_version")), "2");
    assert_float_equal(json_number_value(json_object_get(a, "canary_percent")), 20, 1e-9);
    assert_string_equal(json_string_value(json_object_get(a, "state")), "UNLOADED");
    json_decref(all);
    json_t *d = NULL;
    assert_int_equal(mdl_describe(f->r, "add4", NULL, &d, &e), MD_OK);
    assert_string_equal(json_string_value(json_object_get(d, "active_version")), "1");
    json_t *s1 = json_object_get(json_object_get(d, "stats"), "1");
    assert_string_equal(json_string_value(json_object_get(s1, "state")), "UNLOADED");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(d, "manifest"), "version")), "1");
    json_decref(d);
    char missing[MDL_NAME_MAX];
    assert_int_equal(mdl_ready(f->r, missing), 0); /* remembered is not serving */
    /* once loaded (the first request), the published versions are described */
    assert_int_equal(mdl_load(f->r, "add4", &e), MD_OK);
    assert_int_equal(mdl_describe(f->r, "add4", NULL, &d, &e), MD_OK);
    assert_string_equal(json_string_value(json_object_get(d, "state")), "ACTIVE");
    assert_string_equal(json_string_value(json_object_get(d, "canary_version")), "2");
    json_decref(d);
    assert_int_equal(mdl_ready(f->r, missing), 1);
    /* the CLI activates another version: the remembered canary stays, as a server's would */
    mfx_open(f, &lazy);
    assert_int_equal(mdl_activate(f->r, "add4", "3", &e), MD_OK);
    store_model_state st;
    assert_int_equal(store_models_get(f->st, "add4", &st, &e), MD_OK);
    assert_string_equal(st.active_version, "3");
    assert_string_equal(st.previous_version, "1");
    assert_string_equal(st.canary_version, "2");
    assert_float_equal(st.canary_percent, 20, 1e-9);
    assert_int_equal(mdl_describe(f->r, "add4", NULL, &d, &e), MD_OK);
    assert_string_equal(json_string_value(json_object_get(d, "active_version")), "3");
    assert_string_equal(json_string_value(json_object_get(d, "state")), "ACTIVE");
    assert_string_equal(json_string_value(json_object_get(d, "canary_version")), "2");
    json_decref(d);
    /* ... unless the canary is the version activated */
    mfx_open(f, &lazy);
    assert_int_equal(mdl_activate(f->r, "add4", "2", &e), MD_OK);
    assert_int_equal(store_models_get(f->st, "add4", &st, &e), MD_OK);
    assert_string_equal(st.active_version, "2");
    assert_string_equal(st.canary_version, "");
    /* a remembered version gone from disk: not reported (a server would serve another) */
    st = (store_model_state){.name = "add4", .active_version = "7"};
    assert_int_equal(store_models_set(f->st, &st, &e), MD_OK);
    mfx_open(f, &lazy);
    assert_int_equal(mdl_describe(f->r, "add4", NULL, &d, &e), MD_OK);
    assert_true(json_is_null(json_object_get(d, "active_version")));
    json_decref(d);
}

/* mdl_typical_run_ns knows nothing before 32 runs and never loads; after them it is the p90. */
static void test_typical_run_time(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    mdl_registry_opts o = mfx_opts(f);
    mfx_open(f, &o);
    assert_int_equal(mdl_typical_run_ns(f->r, "add4", NULL), 0);
    assert_int_equal(mdl_typical_run_ns(f->r, "nope", NULL), 0);
    assert_int_equal(mdl_typical_run_ns(f->r, "add4", "9"), 0);
    md_err e = {0};
    for (int i = 0; i < 32; i++) {
        assert_int_equal(mdl_typical_run_ns(f->r, "add4", "1"), 0);
        mdl_version *v = NULL;
        assert_int_equal(mdl_acquire(f->r, "add4", NULL, &v, &e), MD_OK);
        assert_int_equal(run_add(v, &e), 1);
        mdl_release(v);
    }
    uint64_t ns = mdl_typical_run_ns(f->r, "add4", NULL);
    assert_true(ns > 0);
    assert_int_equal(mdl_typical_run_ns(f->r, "add4", "1"), ns);
}

typedef struct changes {
    int n;
    char last[MDL_NAME_MAX];
} changes;

static void count_change(void *ctx, const char *name)
{
    changes *c = ctx;
    c->n++;
    snprintf(c->last, sizeof c->last, "%s", name);
}

/* Two registries on one store (two nodes): a change on the first fires its on_change once
 * and is written to the store; mdl_sync on the second makes it serve the same (active,
 * canary with its share, canary ended) without writing the store or firing its own
 * on_change. */
static void test_cluster_sync(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    copy_add4(f->shipped, "2", "2");
    copy_add4(f->shipped, "3", "3");
    changes c1 = {0}, c2 = {0};
    mdl_registry_opts o = mfx_opts(f);
    o.on_change = count_change;
    o.on_change_ctx = &c1;
    mfx_open(f, &o);
    mdl_registry_opts o2 = o;
    o2.on_change_ctx = &c2;
    mdl_registry *r2 = NULL;
    md_err e = {0};
    assert_int_equal(mdl_registry_open(&o2, &r2, &e), MD_OK);
    assert_int_equal(answer(f->r), 3);
    assert_int_equal(answer(r2), 3);
    c1.n = c2.n = 0;
    assert_int_equal(mdl_activate(f->r, "add4", "1", &e), MD_OK);
    assert_int_equal(c1.n, 1);
    assert_string_equal(c1.last, "add4");
    assert_int_equal(answer(r2), 3); /* nothing tells r2 but the event */
    store_model_state before, after;
    assert_int_equal(store_models_get(f->st, "add4", &before, NULL), MD_OK);
    assert_int_equal(mdl_sync(r2, "add4", &e), MD_OK);
    assert_int_equal(answer(r2), 1);
    assert_int_equal(c2.n, 0);
    assert_int_equal(store_models_get(f->st, "add4", &after, NULL), MD_OK);
    assert_string_equal(after.previous_version, before.previous_version);
    assert_int_equal(after.updated_ms, before.updated_ms);
    /* a canary at 100 % and its end */
    assert_int_equal(mdl_canary(f->r, "add4", "2", 100, &e), MD_OK);
    assert_int_equal(mdl_sync(r2, "add4", &e), MD_OK);
    assert_int_equal(answer(r2), 2);
    char b[32];
    assert_string_equal(state_of(r2, "add4", "2", b), "CANARY");
    assert_int_equal(mdl_canary(f->r, "add4", "2", 0, &e), MD_OK);
    assert_int_equal(mdl_sync(r2, "add4", &e), MD_OK);
    assert_int_equal(answer(r2), 1);
    assert_string_equal(state_of(r2, "add4", "2", b), "STANDBY");
    /* a sync with nothing new changes nothing */
    assert_int_equal(mdl_sync(r2, "add4", &e), MD_OK);
    assert_int_equal(answer(r2), 1);
    assert_int_equal(c2.n, 0);
    assert_int_equal(c1.n, 3);
    assert_int_equal(mdl_sync(r2, "nope", &e), MD_E_MODEL_NOT_FOUND);
    assert_int_equal(mdl_sync(r2, "Bad/Name", &e), MD_E_INVALID_PARAM);
    mdl_registry_close(r2);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, mfx_setup, mfx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_load_highest_active),
        T(test_data_root_wins_over_shipped),
        T(test_run_checks_inputs),
        T(test_typical_run_time),
        T(test_corrupt_artefact_fails),
        T(test_wrong_sha256_fails),
        T(test_validation_mismatch_fails),
        T(test_manifest_disagrees_with_graph),
        T(test_hot_swap_and_rollback),
        T(test_canary_proportions_exact),
        T(test_auto_promote),
        T(test_auto_rollback_on_errors),
        T(test_auto_rollback_on_p99_and_window),
        T(test_restart_restores_active_and_canary),
        T(test_on_demand_without_load_all),
        T(test_install_and_confinement),
        T(test_install_as_standby_and_canary),
        T(test_xgboost_through_registry),
        T(test_describe_and_metrics),
        T(test_rollback_after_fresh_open),
        T(test_describe_remembered_without_loading),
        T(test_cluster_sync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
