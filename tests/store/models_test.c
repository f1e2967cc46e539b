/* models_test.c - the models table (src/store/models.c): what the model registry remembers
 * across restarts. Set/get round trip (previous_version included), replace, list order, delete,
 * bad values refused, and a reopen of the data dir keeps the rows. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/store_fixture.h"

static void test_set_get_replace(void **state)
{
    tu_store *f = *state;
    store_model_state m = {0}, out;
    md_err e = {0};
    assert_int_equal(store_models_get(f->s, "iris", &out, &e), MD_E_NOT_FOUND);
    assert_string_equal(e.field, "name");
    strcpy(m.name, "iris");
    strcpy(m.active_version, "3");
    assert_int_equal(store_models_set(f->s, &m, &e), MD_OK);
    assert_int_equal(store_models_get(f->s, "iris", &out, &e), MD_OK);
    assert_string_equal(out.active_version, "3");
    assert_string_equal(out.canary_version, "");
    assert_int_equal(out.updated_ms, TU_CLOCK_MS);
    f->clk.ms += 1000;
    strcpy(m.canary_version, "4");
    m.canary_percent = 12.5;
    assert_int_equal(store_models_set(f->s, &m, &e), MD_OK);
    assert_int_equal(store_models_get(f->s, "iris", &out, &e), MD_OK);
    assert_string_equal(out.canary_version, "4");
    assert_float_equal(out.canary_percent, 12.5, 1e-12);
    assert_int_equal(out.updated_ms, TU_CLOCK_MS + 1000);
    assert_string_equal(out.previous_version, "");
    strcpy(m.active_version, "4");
    strcpy(m.previous_version, "3");
    assert_int_equal(store_models_set(f->s, &m, &e), MD_OK);
    assert_int_equal(store_models_get(f->s, "iris", &out, &e), MD_OK);
    assert_string_equal(out.active_version, "4");
    assert_string_equal(out.previous_version, "3");
}

static void test_list_delete_and_bad_values(void **state)
{
    tu_store *f = *state;
    md_err e = {0};
    const char *names[] = {"zeta", "alpha", "mid"};
    for (int i = 0; i < 3; i++) {
        store_model_state m = {0};
        strcpy(m.name, names[i]);
        strcpy(m.active_version, "1");
        assert_int_equal(store_models_set(f->s, &m, &e), MD_OK);
    }
    store_model_state *all = NULL;
    size_t n = 0;
    assert_int_equal(store_models_list(f->s, &all, &n, &e), MD_OK);
    assert_int_equal(n, 3);
    assert_string_equal(all[0].name, "alpha");
    assert_string_equal(all[2].name, "zeta");
    free(all);
    assert_int_equal(store_models_delete(f->s, "mid", &e), MD_OK);
    assert_int_equal(store_models_delete(f->s, "never", &e), MD_OK);
    assert_int_equal(store_models_list(f->s, &all, &n, &e), MD_OK);
    assert_int_equal(n, 2);
    free(all);
    store_model_state bad = {0};
    assert_int_equal(store_models_set(f->s, &bad, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "name");
    strcpy(bad.name, "x");
    bad.canary_percent = 101;
    assert_int_equal(store_models_set(f->s, &bad, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "canary_percent");
    bad.canary_percent = 0;
    memset(bad.previous_version, 'v', sizeof bad.previous_version); /* no terminator */
    assert_int_equal(store_models_set(f->s, &bad, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "previous_version");
}

static void test_survives_reopen(void **state)
{
    tu_store *f = *state;
    store_model_state m = {0}, out;
    strcpy(m.name, "iris");
    strcpy(m.active_version, "7");
    assert_int_equal(store_models_set(f->s, &m, NULL), MD_OK);
    store_unref(f->s);
    store_opts o = {.data_dir = f->dir, .url = f->url, .clock = &f->clk.clock};
    assert_int_equal(store_open(&o, &f->s, NULL), MD_OK);
    assert_int_equal(store_models_get(f->s, "iris", &out, NULL), MD_OK);
    assert_string_equal(out.active_version, "7");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_get_replace, tu_store_setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_list_delete_and_bad_values, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_survives_reopen, tu_store_setup, tu_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
