/* schedules_test.c - the schedules table: add / get / list / delete, due rows, and the
 * compare-and-set claim that makes each fire happen once, also between two store handles
 * (two processes) on the same data dir. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/store_fixture.h"

static store_schedule make(const char *model, int64_t next_ms)
{
    store_schedule s = {0};
    snprintf(s.owner, sizeof s.owner, "k_admin");
    snprintf(s.kind, sizeof s.kind, "predict-bulk");
    snprintf(s.model, sizeof s.model, "%s", model);
    snprintf(s.cron, sizeof s.cron, "*/5 * * * *");
    snprintf(s.input, sizeof s.input, "u_0123");
    s.next_run_ms = next_ms;
    return s;
}

static void test_add_get_list_delete(void **state)
{
    tu_store *f = *state;
    md_err e = {0};
    store_schedule a = make("churn", TU_CLOCK_MS + 60000);
    store_schedule b = make("fraud", TU_CLOCK_MS + 120000);
    snprintf(b.callback_url, sizeof b.callback_url, "http://127.0.0.1:9/cb");
    assert_int_equal(store_schedule_add(f->s, &a, &e), MD_OK);
    f->clk.ms += 1;
    assert_int_equal(store_schedule_add(f->s, &b, &e), MD_OK);
    assert_memory_equal(a.id, "s_", 2);
    assert_string_not_equal(a.id, b.id);
    assert_int_equal(a.created_ms, TU_CLOCK_MS);

    store_schedule got;
    assert_int_equal(store_schedule_get(f->s, b.id, &got, &e), MD_OK);
    assert_string_equal(got.model, "fraud");
    assert_string_equal(got.callback_url, "http://127.0.0.1:9/cb");
    assert_int_equal(got.next_run_ms, TU_CLOCK_MS + 120000);
    assert_int_equal(got.last_run_ms, 0);

    store_schedule *list = NULL;
    size_t n = 0;
    assert_int_equal(store_schedule_list(f->s, &list, &n, &e), MD_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, a.id);
    assert_string_equal(list[1].id, b.id);
    free(list);

    assert_int_equal(store_schedule_delete(f->s, a.id, &e), MD_OK);
    assert_int_equal(store_schedule_delete(f->s, a.id, &e), MD_E_NOT_FOUND);
    assert_string_equal(e.field, "schedule_id");
    assert_int_equal(store_schedule_get(f->s, a.id, &got, &e), MD_E_NOT_FOUND);
}

static void test_validation_names_the_field(void **state)
{
    tu_store *f = *state;
    md_err e = {0};
    store_schedule s = make("churn", 1);
    s.model[0] = '\0';
    assert_int_equal(store_schedule_add(f->s, &s, &e), MD_E_MISSING_FIELD);
    assert_string_equal(e.field, "model");
    s = make("churn", 1);
    memset(s.input, 'x', sizeof s.input);
    assert_int_equal(store_schedule_add(f->s, &s, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "input");
    s = make("churn", 1);
    memset(s.callback_url, 'h', sizeof s.callback_url);
    assert_int_equal(store_schedule_add(f->s, &s, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "callback_url");
}

static void test_due_and_claim_once(void **state)
{
    tu_store *f = *state;
    md_err e = {0};
    store_schedule a = make("a", 1000), b = make("b", 3000), c = make("c", 2000);
    assert_int_equal(store_schedule_add(f->s, &a, &e), MD_OK);
    assert_int_equal(store_schedule_add(f->s, &b, &e), MD_OK);
    assert_int_equal(store_schedule_add(f->s, &c, &e), MD_OK);

    store_schedule *due = NULL;
    size_t n = 9;
    assert_int_equal(store_schedule_due(f->s, 500, 10, &due, &n, &e), MD_OK);
    assert_int_equal(n, 0);
    assert_null(due);
    assert_int_equal(store_schedule_due(f->s, 2000, 10, &due, &n, &e), MD_OK);
    assert_int_equal(n, 2);
    assert_string_equal(due[0].model, "a"); /* soonest first */
    assert_string_equal(due[1].model, "c");
    free(due);
    assert_int_equal(store_schedule_due(f->s, 5000, 1, &due, &n, &e), MD_OK);
    assert_int_equal(n, 1);
    free(due);

    assert_int_equal(store_schedule_claim(f->s, a.id, 1000, 61000, 1000, &e), MD_OK);
    assert_int_equal(store_schedule_claim(f->s, a.id, 1000, 61000, 1000, &e), MD_E_CONFLICT);
    assert_int_equal(store_schedule_claim(f->s, "s_gone", 1000, 2, 1, &e), MD_E_CONFLICT);
    store_schedule got;
    assert_int_equal(store_schedule_get(f->s, a.id, &got, &e), MD_OK);
    assert_int_equal(got.next_run_ms, 61000);
    assert_int_equal(got.last_run_ms, 1000);
    assert_int_equal(store_schedule_set_job(f->s, a.id, "j_abc", &e), MD_OK);
    assert_int_equal(store_schedule_get(f->s, a.id, &got, &e), MD_OK);
    assert_string_equal(got.last_job_id, "j_abc");
    assert_int_equal(store_schedule_set_job(f->s, "s_gone", "j_abc", &e), MD_E_NOT_FOUND);
}

static void test_two_handles_claim_once(void **state)
{
    tu_store *f = *state;
    md_err e = {0};
    store *other = NULL;
    store_opts so = {.data_dir = f->dir, .url = f->url};
    assert_int_equal(store_open(&so, &other, &e), MD_OK);
    store_schedule a = make("a", 1000);
    assert_int_equal(store_schedule_add(f->s, &a, &e), MD_OK);
    /* both see it due; only the first compare-and-set wins */
    store_schedule *due = NULL;
    size_t n = 0;
    assert_int_equal(store_schedule_due(other, 1000, 10, &due, &n, &e), MD_OK);
    assert_int_equal(n, 1);
    free(due);
    assert_int_equal(store_schedule_claim(other, a.id, 1000, 2000, 1000, &e), MD_OK);
    assert_int_equal(store_schedule_claim(f->s, a.id, 1000, 2000, 1000, &e), MD_E_CONFLICT);
    store_unref(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_get_list_delete, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_validation_names_the_field, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_due_and_claim_once, tu_store_setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_two_handles_claim_once, tu_store_setup,
                                        tu_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
