/* sched_test.c - the scheduler (src/jobs/sched.c) with a manual clock: a schedule's first run
 * is its next cron fire, a due schedule submits exactly one job per fire with the documented
 * params, a schedule missed for an hour fires once, two queues on the same data dir (two
 * processes) and a restart never fire twice, a deleted schedule stops, bad fields are named,
 * and the keeper thread fires due schedules on its own. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "jobs/jobs.h"
#include "common/store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIN_MS 60000LL
/* TU_CLOCK_MS is 2023-11-14T22:13:20Z: every-5-minutes fires next at 22:15:00. */
#define AT_2215 (TU_CLOCK_MS + 100000LL)

typedef struct fx {
    tu_store *ts;
    jobs *j;
} fx;

static jobs *open_jobs_on(store *s, const md_clock *clock)
{
    jobs *j = NULL;
    job_opts o = {.store = s,
                  .clock = clock,
                  .schedule_ms = -1,
                  .callback_allow_hosts = "127.0.0.1",
                  .callback_secret = "k",
                  .callback_poll_ms = -1};
    assert_int_equal(job_open(&o, &j, NULL), MD_OK);
    return j;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f || tu_store_setup((void **)&f->ts) != 0)
        return -1;
    f->j = open_jobs_on(f->ts->s, &f->ts->clk.clock);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    job_close(f->j);
    void *ts = f->ts;
    tu_store_teardown(&ts);
    free(f);
    return 0;
}

static job_schedule add(fx *f, const char *cron, const char *model)
{
    job_schedule s;
    md_err e = {0};
    job_schedule_in in = {.owner = "k_admin",
                          .kind = "predict-bulk",
                          .model = model,
                          .cron = cron,
                          .input = "u_data",
                          .callback_url = "http://127.0.0.1:9/cb"};
    int rc = job_schedule_add(f->j, &in, &s, &e);
    if (rc != MD_OK)
        fail_msg("add \"%s\": %s", cron, e.msg);
    return s;
}

static size_t count_jobs(jobs *j)
{
    job_filter flt = {.state = -1, .limit = 1000};
    job_info *list = NULL;
    size_t n = 0;
    assert_int_equal(job_list(j, &flt, &list, &n, NULL, NULL), MD_OK);
    free(list);
    return n;
}

static size_t tick(jobs *j)
{
    size_t fired = 99;
    md_err e = {0};
    assert_int_equal(job_schedule_tick(j, &fired, &e), MD_OK);
    return fired;
}

static void test_fires_once_per_due_time(void **state)
{
    fx *f = *state;
    job_schedule s = add(f, "*/5 * * * *", "churn");
    assert_int_equal(s.next_run_ms, AT_2215);
    assert_int_equal(s.last_run_ms, 0);

    assert_int_equal(tick(f->j), 0); /* not due yet */
    f->ts->clk.ms = AT_2215 - 1;
    assert_int_equal(tick(f->j), 0);
    f->ts->clk.ms = AT_2215;
    assert_int_equal(tick(f->j), 1);
    assert_int_equal(tick(f->j), 0); /* the same fire, again: nothing */
    assert_int_equal(count_jobs(f->j), 1);

    job_schedule got;
    md_err e = {0};
    assert_int_equal(job_schedule_get(f->j, s.id, &got, &e), MD_OK);
    assert_int_equal(got.last_run_ms, AT_2215);
    assert_int_equal(got.next_run_ms, AT_2215 + 5 * MIN_MS);
    job_info job;
    assert_int_equal(job_get(f->j, got.last_job_id, &job, &e), MD_OK);
    assert_string_equal(job.kind, "predict-bulk");
    assert_string_equal(job.owner, "k_admin");
    char want[512];
    snprintf(want, sizeof want,
             "{\"model\":\"churn\",\"input\":\"u_data\",\"schedule_id\":\"%s\","
             "\"callback_url\":\"http://127.0.0.1:9/cb\",\"scheduled_ms\":%lld}",
             s.id, (long long)AT_2215);
    assert_string_equal(job.params, want);

    /* an hour with nothing running: one catch-up run, then the next time after now */
    f->ts->clk.ms = AT_2215 + 60 * MIN_MS + 1000;
    assert_int_equal(tick(f->j), 1);
    assert_int_equal(tick(f->j), 0);
    assert_int_equal(job_schedule_get(f->j, s.id, &got, &e), MD_OK);
    assert_int_equal(got.next_run_ms, AT_2215 + 65 * MIN_MS);
    assert_int_equal(count_jobs(f->j), 2);
}

static void test_two_processes_and_restart(void **state)
{
    fx *f = *state;
    job_schedule s = add(f, "15 22 * * *", "a");
    add(f, "15 22 14 nov *", "b");
    store *other_store = NULL;
    store_opts so = {.data_dir = f->ts->dir, .clock = &f->ts->clk.clock};
    assert_int_equal(store_open(&so, &other_store, NULL), MD_OK);
    jobs *other = open_jobs_on(other_store, &f->ts->clk.clock);

    f->ts->clk.ms = AT_2215;
    size_t fired = tick(other) + tick(f->j);
    assert_int_equal(fired, 2); /* one per schedule, whichever process got there */
    assert_int_equal(tick(other) + tick(f->j), 0);
    assert_int_equal(count_jobs(f->j), 2);
    job_close(other);
    store_unref(other_store);

    /* a restart at the same instant fires nothing again */
    job_close(f->j);
    f->j = open_jobs_on(f->ts->s, &f->ts->clk.clock);
    assert_int_equal(tick(f->j), 0);
    /* the daily one fires the next day, the yearly one next year */
    f->ts->clk.ms = AT_2215 + 24 * 60 * MIN_MS;
    assert_int_equal(tick(f->j), 1);
    job_schedule got;
    assert_int_equal(job_schedule_get(f->j, s.id, &got, NULL), MD_OK);
    assert_int_equal(got.last_run_ms, AT_2215 + 24 * 60 * MIN_MS);
}

static void test_list_and_delete(void **state)
{
    fx *f = *state;
    job_schedule a = add(f, "@hourly", "a");
    job_schedule b = add(f, "0 0 1 * *", "b");
    job_schedule *list = NULL;
    size_t n = 0;
    md_err e = {0};
    assert_int_equal(job_schedule_list(f->j, &list, &n, &e), MD_OK);
    assert_int_equal(n, 2);
    free(list);
    assert_int_equal(job_schedule_delete(f->j, a.id, &e), MD_OK);
    assert_int_equal(job_schedule_delete(f->j, a.id, &e), MD_E_NOT_FOUND);
    assert_string_equal(e.field, "schedule_id");
    f->ts->clk.ms = TU_CLOCK_MS + 24 * 60 * MIN_MS; /* past a's time, before b's */
    assert_int_equal(tick(f->j), 0);
    assert_int_equal(count_jobs(f->j), 0);
    assert_int_equal(job_schedule_get(f->j, b.id, &b, &e), MD_OK);
}

static void expect_bad(fx *f, job_schedule_in in, int code, const char *field)
{
    md_err e = {0};
    assert_int_equal(job_schedule_add(f->j, &in, NULL, &e), code);
    assert_string_equal(e.field, field);
}

static void test_bad_fields_are_named(void **state)
{
    fx *f = *state;
    job_schedule_in ok = {.kind = "predict-bulk", .model = "m", .cron = "* * * * *", .input = "u"};
    job_schedule_in in = ok;
    in.cron = "* * * *";
    expect_bad(f, in, MD_E_INVALID_PARAM, "cron");
    in.cron = "0 0 30 feb *";
    expect_bad(f, in, MD_E_INVALID_PARAM, "cron");
    in = ok;
    in.cron = NULL;
    expect_bad(f, in, MD_E_MISSING_FIELD, "cron");
    in = ok;
    in.model = "";
    expect_bad(f, in, MD_E_MISSING_FIELD, "model");
    in = ok;
    in.input = NULL;
    expect_bad(f, in, MD_E_MISSING_FIELD, "input");
    in = ok;
    in.kind = "Bulk!";
    expect_bad(f, in, MD_E_INVALID_PARAM, "kind");
    in = ok;
    in.callback_url = "http://example.com/hook"; /* not on the allow-list */
    expect_bad(f, in, MD_E_INVALID_PARAM, "callback_url");
    in = ok;
    char url[STORE_SCHED_URL_MAX + 8];
    memset(url, 'u', sizeof url - 1);
    url[sizeof url - 1] = '\0';
    in.callback_url = url;
    expect_bad(f, in, MD_E_INVALID_PARAM, "callback_url");
    assert_int_equal(count_jobs(f->j), 0);

    /* names with JSON specials travel escaped in the params */
    job_schedule s = add(f, "* * * * *", "q\"m");
    f->ts->clk.ms = s.next_run_ms;
    assert_int_equal(tick(f->j), 1);
    job_schedule got;
    job_info job;
    assert_int_equal(job_schedule_get(f->j, s.id, &got, NULL), MD_OK);
    assert_int_equal(job_get(f->j, got.last_job_id, &job, NULL), MD_OK);
    assert_non_null(strstr(job.params, "{\"model\":\"q\\\"m\","));
}

/* The keeper thread fires a due schedule by itself (system clock, no manual ticks). */
static void test_keeper_fires(void **state)
{
    fx *f = *state;
    job_close(f->j);
    f->j = NULL;
    store *s = NULL;
    store_opts so = {.data_dir = f->ts->dir};
    assert_int_equal(store_open(&so, &s, NULL), MD_OK);
    store_schedule row = {.next_run_ms = 1};
    snprintf(row.kind, sizeof row.kind, "predict-bulk");
    snprintf(row.model, sizeof row.model, "m");
    snprintf(row.cron, sizeof row.cron, "0 0 1 1 *");
    snprintf(row.input, sizeof row.input, "u");
    assert_int_equal(store_schedule_add(s, &row, NULL), MD_OK);
    job_opts o = {.store = s, .poll_ms = 5, .schedule_ms = 5};
    jobs *j = NULL;
    assert_int_equal(job_open(&o, &j, NULL), MD_OK);
    assert_int_equal(job_start(j, NULL), MD_OK);
    while (count_jobs(j) == 0)
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    assert_int_equal(count_jobs(j), 1);
    job_close(j);
    store_unref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fires_once_per_due_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processes_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_fields_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keeper_fires, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
