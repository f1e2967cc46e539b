/* datasets_test.c - the datasets table: create / get / list / delete, the refusal to delete a
 * dataset a schedule uses, and that a sweep keeps a dataset's blob (datasets never expire). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/store_fixture.h"

static const char CSV[] = "a,b\n1,2\n3,4\n";

static store_dataset meta(const char *name)
{
    store_dataset m;
    memset(&m, 0, sizeof m);
    snprintf(m.owner, sizeof m.owner, "k_admin");
    snprintf(m.name, sizeof m.name, "%s", name);
    snprintf(m.format, sizeof m.format, "csv");
    snprintf(m.columns, sizeof m.columns, "[\"a\",\"b\"]");
    m.rows = 2;
    return m;
}

static void test_create_get_list_delete(void **state)
{
    tu_store *f = *state;
    md_err e = {0};
    store_dataset m = meta("one.csv"), a, b;
    assert_int_equal(store_datasets_create(f->s, CSV, strlen(CSV), &m, &a, &e), MD_OK);
    f->clk.ms += 1;
    m = meta("two.csv");
    assert_int_equal(store_datasets_create(f->s, CSV, strlen(CSV), &m, &b, &e), MD_OK);
    assert_memory_equal(a.id, "d_", 2);
    assert_string_not_equal(a.id, b.id);
    assert_int_equal(a.size, (int64_t)strlen(CSV));
    assert_string_equal(a.sha256, b.sha256); /* one blob for the same bytes */

    store_dataset got;
    assert_int_equal(store_datasets_get(f->s, a.id, &got, &e), MD_OK);
    assert_string_equal(got.name, "one.csv");
    assert_string_equal(got.columns, "[\"a\",\"b\"]");
    assert_int_equal(got.rows, 2);
    assert_int_equal(got.created_ms, TU_CLOCK_MS);

    store_dataset *list = NULL;
    size_t n = 0;
    int64_t total = 0;
    assert_int_equal(store_datasets_list(f->s, 0, 1, &list, &n, &total, &e), MD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(total, 2);
    assert_string_equal(list[0].id, b.id); /* newest first */
    free(list);
    assert_int_equal(store_datasets_list(f->s, 1, 10, &list, &n, NULL, &e), MD_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, a.id);
    free(list);
    assert_int_equal(store_datasets_list(f->s, 0, 0, &list, &n, NULL, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "limit");

    assert_int_equal(store_datasets_delete(f->s, a.id, &e), MD_OK);
    assert_int_equal(store_datasets_delete(f->s, a.id, &e), MD_E_NOT_FOUND);
    assert_string_equal(e.field, "dataset_id");
    assert_int_equal(store_datasets_get(f->s, a.id, &got, &e), MD_E_NOT_FOUND);
}

static void test_add_names_an_existing_blob(void **state)
{
    tu_store *f = *state;
    md_err e = {0};
    char hex[STORE_SHA256_HEX];
    assert_int_equal(store_blob_put(f->s, CSV, strlen(CSV), hex, &e), MD_OK);
    store_dataset m = meta("spooled.csv"), d, got;
    assert_int_equal(store_datasets_add(f->s, hex, (int64_t)strlen(CSV), &m, &d, &e), MD_OK);
    assert_memory_equal(d.id, "d_", 2);
    assert_string_equal(d.sha256, hex);
    assert_int_equal(store_datasets_get(f->s, d.id, &got, &e), MD_OK);
    assert_int_equal(got.size, (int64_t)strlen(CSV));
    assert_int_equal(store_datasets_add(f->s, "not-a-hash", 1, &m, &d, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "sha256");
}

static void test_validation_names_the_field(void **state)
{
    tu_store *f = *state;
    md_err e = {0};
    store_dataset m = meta("x"), out;
    m.format[0] = '\0';
    assert_int_equal(store_datasets_create(f->s, CSV, strlen(CSV), &m, &out, &e),
                     MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "format");
    m = meta("x");
    m.columns[0] = '\0';
    assert_int_equal(store_datasets_create(f->s, CSV, strlen(CSV), &m, &out, &e),
                     MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "columns");
}

static void test_delete_refused_while_scheduled(void **state)
{
    tu_store *f = *state;
    md_err e = {0};
    store_dataset m = meta("nightly.csv"), d;
    assert_int_equal(store_datasets_create(f->s, CSV, strlen(CSV), &m, &d, &e), MD_OK);
    store_schedule s = {0};
    snprintf(s.kind, sizeof s.kind, "predict-bulk");
    snprintf(s.model, sizeof s.model, "churn");
    snprintf(s.cron, sizeof s.cron, "0 1 * * *");
    snprintf(s.input, sizeof s.input, "%s", d.id);
    s.next_run_ms = TU_CLOCK_MS + 60000;
    assert_int_equal(store_schedule_add(f->s, &s, &e), MD_OK);
    assert_int_equal(store_datasets_delete(f->s, d.id, &e), MD_E_CONFLICT);
    assert_string_equal(e.field, "dataset_id");
    store_dataset got;
    assert_int_equal(store_datasets_get(f->s, d.id, &got, &e), MD_OK);
    assert_int_equal(store_schedule_delete(f->s, s.id, &e), MD_OK);
    assert_int_equal(store_datasets_delete(f->s, d.id, &e), MD_OK);
}

static void test_sweep_keeps_the_blob(void **state)
{
    tu_store *f = *state;
    md_err e = {0};
    store_dataset m = meta("kept.csv"), d;
    assert_int_equal(store_datasets_create(f->s, CSV, strlen(CSV), &m, &d, &e), MD_OK);
    f->clk.ms += 30LL * 24 * 3600 * 1000; /* a month later: every upload would be gone */
    f->clk.ns += 30ULL * 24 * 3600 * 1000000000ULL;
    store_sweep_stats st;
    assert_int_equal(store_sweep(f->s, &st, &e), MD_OK);
    assert_int_equal(st.blobs_deleted, 0);
    uint8_t *data = NULL;
    size_t n = 0;
    assert_int_equal(store_blob_read(f->s, d.sha256, 1024, &data, &n, &e), MD_OK);
    assert_int_equal(n, strlen(CSV));
    free(data);
    assert_int_equal(store_datasets_delete(f->s, d.id, &e), MD_OK);
    assert_int_equal(store_sweep(f->s, &st, &e), MD_OK);
    assert_int_equal(st.blobs_deleted, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_get_list_delete, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_add_names_an_existing_blob, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_validation_names_the_field, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_delete_refused_while_scheduled, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_sweep_keeps_the_blob, tu_store_setup,
                                        tu_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
