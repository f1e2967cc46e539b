/* bulk_test.c - the "predict-bulk" job kind (api_bulk_run) on a real job queue with one worker
 * in this process and the shipped churn model: a CSV with a bad row and a quoted comma, JSON
 * lines given by params.format, a schedule's job reading a stored upload (params.input), and a
 * cancel asked before the first chunk is predicted, which
 * must end the job CANCELLED at the first chunk boundary (the cancel is requested by the run
 * itself, so nothing depends on timing). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "api/admin_jobs.h"
#include "api/bulk.h"
#include "common/store_fixture.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct fx {
    tu_store *ts;
    mdl_registry *reg;
    api_bulk_kind kind;
    jobs *j;
} fx;

static const char HEADER[] =
    "female,senior_citizen,partner,dependents,tenure,phone_service,multiple_lines,"
    "internet_service,online_security,online_backup,device_protection,tech_support,streaming_tv,"
    "streaming_movies,contract,paperless_billing,payment_method,monthly_charges,total_charges\n";
static const char ROW_FMT[] = "1,0,1,0,%s,0,No phone service,DSL,No,Yes,No,No,No,No,"
                              "Month-to-month,1,\"Electronic check\",29.85,29.85\n";

/* Cancels its own job first (a cancel arriving before the first chunk), then runs the kind. */
static int run_cancelled(job_run *r, void *user)
{
    fx *f = user;
    job_cancel(f->j, job_run_info(r)->id, NULL, NULL);
    return api_bulk_run(r, &f->kind);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f || tu_store_setup_with((void **)&f->ts, NULL, false) != 0)
        return -1;
    const char *src = getenv("MODELD_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models", src ? src : ".");
    mdl_registry_opts ro = {.shipped_dir = dir, .load_all = false};
    md_err e;
    if (mdl_registry_open(&ro, &f->reg, &e) != MD_OK)
        return -1;
    f->kind = (api_bulk_kind){.models = f->reg, .st = f->ts->s};
    job_opts o = {.store = f->ts->s, .workers = 1, .poll_ms = 20, .progress_ms = 1};
    job_kind k = {.name = API_BULK_KIND, .run = api_bulk_run, .user = &f->kind};
    job_kind kc = {.name = "bulk-cancelled", .run = run_cancelled, .user = f};
    if (job_open(&o, &f->j, &e) != MD_OK || job_register(f->j, &k, &e) != MD_OK ||
        job_register(f->j, &kc, &e) != MD_OK || job_start(f->j, &e) != MD_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    job_close(f->j);
    mdl_registry_close(f->reg);
    void *ts = f->ts;
    tu_store_teardown(&ts);
    free(f);
    return 0;
}

/* Submit, wait for a terminal state (bounded), return it; the result's bytes into *out. */
static int run_job(fx *f, const char *kind, const char *params, const char *input, char **out)
{
    job_submit_in in = {
        .kind = kind, .params_json = params, .input = input, .input_len = strlen(input)};
    job_info info;
    md_err e;
    assert_int_equal(job_submit(f->j, &in, &info, &e), MD_OK);
    for (int i = 0; i < 6000 && !job_state_terminal(info.state); i++) {
        nanosleep(&(struct timespec){0, 10000000}, NULL);
        assert_int_equal(job_get(f->j, info.id, &info, &e), MD_OK);
    }
    *out = NULL;
    store_blob_reader *r = NULL; /* the first MiB of the result */
    if (info.state == JOB_SUCCESS && job_result_open(f->j, &info, &r, &e) == MD_OK) {
        *out = calloc(1, 1 << 20);
        size_t n = 0;
        assert_int_equal(store_blob_reader_read(r, *out, (1 << 20) - 1, &n, &e), MD_OK);
        store_blob_reader_free(r);
    }
    return info.state;
}

static char *csv_rows(size_t n, size_t bad)
{
    char *s = calloc(1, sizeof HEADER + n * (sizeof ROW_FMT + 8));
    strcpy(s, HEADER);
    char row[256], tenure[16];
    for (size_t i = 0; i < n; i++) {
        snprintf(tenure, sizeof tenure, i == bad ? "abc" : "%zu", i % 72);
        snprintf(row, sizeof row, ROW_FMT, tenure);
        strcat(s, row);
    }
    return s;
}

static void test_csv(void **state)
{
    fx *f = *state;
    char *in = csv_rows(1500, 1234), *out = NULL;
    int st = run_job(f, API_BULK_KIND, "{\"model\":\"churn\",\"format\":\"csv\"}", in, &out);
    assert_int_equal(st, JOB_SUCCESS);
    assert_non_null(out);
    assert_true(strncmp(out, "row,", 4) == 0);
    assert_non_null(strstr(out, ",error_code,error_field,error\n"));
    size_t lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 1501); /* header + one per row across two chunks */
    const char *bad = strstr(out, "\n1234,");
    assert_non_null(bad);
    assert_non_null(strstr(bad, ",invalid_parameter,tenure,"));
    free(in);
    free(out);
}

static void test_json_lines(void **state)
{
    fx *f = *state;
    const char *in = "{\"female\":1}\nnot json\n\n[1]\r\n";
    char *out = NULL;
    int st = run_job(f, API_BULK_KIND, "{\"model\":\"churn\"}", in, &out);
    assert_int_equal(st, JOB_SUCCESS);
    /* no good row: no prediction columns, every row with its error */
    assert_true(strncmp(out, "row,error_code,error_field,error\n0,missing_field,", 49) == 0);
    assert_non_null(strstr(out, "\n1,invalid_parameter,line 2,not JSON"));
    assert_non_null(strstr(out, "\n2,invalid_parameter,line 4,must be a JSON object\n"));
    free(out);
}

/* More than 1 MiB of bad rows before the first good one: the lines are spilled to a file until
 * the header is known, then put behind it with the prediction columns (empty) added, so every
 * line has the header's columns. */
static void test_bad_rows_before_the_first_good_one(void **state)
{
    fx *f = *state;
    size_t nbad = 30000;
    const char *good = "{\"female\":1,\"senior_citizen\":0,\"partner\":1,\"dependents\":0,\"tenure\":5,"
                       "\"phone_service\":0,\"multiple_lines\":\"No phone service\",\"internet_service\":"
                       "\"DSL\",\"online_security\":\"No\",\"online_backup\":\"Yes\",\"device_protection\":"
                       "\"No\",\"tech_support\":\"No\",\"streaming_tv\":\"No\",\"streaming_movies\":\"No\","
                       "\"contract\":\"Month-to-month\",\"paperless_billing\":1,\"payment_method\":"
                       "\"Electronic check\",\"monthly_charges\":29.85,\"total_charges\":29.85}\n";
    char *in = malloc(nbad * 4 + strlen(good) + 1);
    for (size_t i = 0; i < nbad; i++)
        memcpy(in + 4 * i, "[1]\n", 4);
    strcpy(in + 4 * nbad, good);
    char *out = NULL;
    assert_int_equal(run_job(f, API_BULK_KIND, "{\"model\":\"churn\",\"format\":\"jsonl\"}", in, &out),
                     JOB_SUCCESS);
    free(in);
    assert_non_null(out);
    /* out holds the first MiB: count the header's columns and check every whole line has them */
    size_t cols = 1;
    for (const char *p = out; *p != '\n'; p++)
        cols += *p == ',';
    assert_true(cols > 4); /* row, some prediction columns, 3 error columns */
    size_t lines = 0;
    const char *line = out;
    for (const char *nl = strchr(line, '\n'); nl && lines < 1000; nl = strchr(line, '\n'), lines++) {
        size_t c = 1;
        for (const char *p = line; p < nl; p++)
            c += *p == ',';
        assert_int_equal(c, cols);
        line = nl + 1;
    }
    assert_int_equal(lines, 1000);
    assert_true(strncmp(strchr(out, '\n') + 1, "0,", 2) == 0);
    free(out);
}

static void test_unknown_model_fails(void **state)
{
    fx *f = *state;
    char *out = NULL;
    assert_int_equal(run_job(f, API_BULK_KIND, "{\"model\":\"nope\"}", "a\n1\n", &out),
                     JOB_FAILURE);
    assert_null(out);
}

static void test_schedule_input_from_upload(void **state)
{
    fx *f = *state;
    char *in = csv_rows(3, (size_t)-1), *out = NULL;
    store_upload meta = {.filename = "rows.csv", .format = "csv"}, up;
    md_err e;
    assert_int_equal(store_uploads_create(f->ts->s, in, strlen(in), &meta, &up, &e), MD_OK);
    char params[160];
    snprintf(params, sizeof params, "{\"model\":\"churn\",\"input\":\"%s\"}", up.file_id);
    assert_int_equal(run_job(f, API_BULK_KIND, params, "", &out), JOB_SUCCESS);
    assert_non_null(strstr(out, "\n2,"));
    assert_null(strstr(out, "\n3,"));
    free(out);
    assert_int_equal(
        run_job(f, API_BULK_KIND, "{\"model\":\"churn\",\"input\":\"f_nope\"}", "", &out),
        JOB_FAILURE);
    free(in);
}

static void test_cancel_between_chunks(void **state)
{
    fx *f = *state;
    char *in = csv_rows(2500, (size_t)-1), *out = NULL;
    assert_int_equal(run_job(f, "bulk-cancelled", "{\"model\":\"churn\"}", in, &out),
                     JOB_CANCELLED);
    assert_null(out);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_json_lines),
        cmocka_unit_test(test_bad_rows_before_the_first_good_one),
        cmocka_unit_test(test_unknown_model_fails),
        cmocka_unit_test(test_schedule_input_from_upload),
        cmocka_unit_test(test_cancel_between_chunks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
