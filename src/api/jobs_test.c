/* jobs_test.c - the "test" job kind and POST /api/test/jobs, for the end-to-end tests of the
 * job queue (only with --test-routes, like the other test routes; never in production).
 *
 * A test job copies its input to its result in `steps` steps of `step_ms` milliseconds each,
 * checking its cancel token and reporting progress between steps, as a real kind checks
 * between tiles; with `fail` set it fails with that error instead. It exercises every part of
 * the queue a real kind does (input blob, leases held across a long run, progress, cancel,
 * result file, crash recovery) with a run time the test chooses, in `modeld serve` and in
 * `modeld worker` alike (cli/jobs_setup.c registers it in both when test_routes is on).
 */
#include "api/jobs_api.h"

#include "api/api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TEST_MAX_FILES 50

typedef struct test_params {
    long long steps, step_ms;
    char format[16];
    char fail[32];
} test_params;

static void read_params(const job_info *j, test_params *p)
{
    json_t *o = json_loads(j->params, 0, NULL);
    p->steps = json_integer_value(json_object_get(o, "steps"));
    p->step_ms = json_integer_value(json_object_get(o, "step_ms"));
    const char *f = json_string_value(json_object_get(o, "format"));
    const char *fail = json_string_value(json_object_get(o, "fail"));
    snprintf(p->format, sizeof p->format, "%s", f ? f : "bin");
    snprintf(p->fail, sizeof p->fail, "%s", fail ? fail : "");
    json_decref(o);
}

/* An md code by its client name ("corrupt_image"), MD_E_INTERNAL when unknown. */
static int code_by_name(const char *name)
{
    for (int c = 1; c < MD_E__COUNT; c++)
        if (strcmp(md_err_name(c), name) == 0)
            return c;
    return MD_E_INTERNAL;
}

int api_jobs_test_run(job_run *r, void *user)
{
    (void)user;
    test_params p;
    read_params(job_run_info(r), &p);
    md_cancel *c = job_run_cancel(r);
    md_err *e = job_run_err(r);
    char stage[48];
    for (long long i = 0; i < p.steps; i++) {
        snprintf(stage, sizeof stage, "step %lld/%lld", i + 1, p.steps);
        int rc = md_cancel_check(c, stage, e);
        if (rc != MD_OK)
            return rc;
        nanosleep(&(struct timespec){p.step_ms / 1000, (p.step_ms % 1000) * 1000000L}, NULL);
        md_cancel_progress(c, (double)(i + 1) / (double)(p.steps + 1), stage);
    }
    if (p.fail[0])
        return md_fail(e, code_by_name(p.fail), "fail", "failed as asked (%s)", p.fail);
    uint8_t *data = NULL;
    size_t n = 0;
    int rc = job_run_read_input(r, (size_t)64 << 20, &data, &n, e);
    if (rc != MD_OK)
        return rc;
    char meta[128];
    snprintf(meta, sizeof meta, "{\"format\":\"%s\",\"width\":%zu,\"height\":1}", p.format, n);
    rc = job_run_set_result(r, data, n, meta, e);
    free(data);
    return rc;
}

/* The params JSON of the request's query (steps, step_ms, format, fail). *out new (free). */
static int test_params_json(http_req *req, char **out)
{
    long long steps, step_ms;
    int rc = api__query_int(req, "steps", 0, 1000, 5, &steps);
    if (rc == MD_OK)
        rc = api__query_int(req, "step_ms", 0, 10000, 100, &step_ms);
    if (rc != MD_OK)
        return rc;
    const char *format = http_req_query(req, "format");
    const char *fail = http_req_query(req, "fail");
    if ((format && strspn(format, "abcdefghijklmnopqrstuvwxyz") != strlen(format)) ||
        (format && strlen(format) > 8))
        return md_fail(http_req_err(req), MD_E_INVALID_PARAM, "format", "a short lower-case word");
    json_t *o = json_pack("{s:I, s:I, s:s, s:s?}", "steps", (json_int_t)steps, "step_ms",
                          (json_int_t)step_ms, "format", format ? format : "bin", "fail", fail);
    *out = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return *out ? MD_OK : md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
}

static int reply_one(http_req *req, const job_info *j)
{
    return api_job_reply(req, 202, j);
}

/* POST /api/test/jobs?steps&step_ms&format&fail&count&callback_url: the body is the input of
 * count jobs (a batch when count > 1). */
static int test_submit(http_req *req, void *ctx)
{
    jobs *jq = ctx;
    long long count;
    char *params = NULL;
    int rc = api__query_int(req, "count", 1, TEST_MAX_FILES, 1, &count);
    if (rc == MD_OK)
        rc = test_params_json(req, &params);
    if (rc != MD_OK)
        return rc;
    size_t len = 0;
    const void *body = http_req_body(req, &len);
    job_submit_in in[TEST_MAX_FILES];
    for (long long i = 0; i < count; i++)
        in[i] = (job_submit_in){.kind = "test",
                                .owner = http_req_identity(req)->key_id,
                                .params_json = params,
                                .input = body,
                                .input_len = len,
                                .input_name = "input.bin",
                                .callback_url = http_req_query(req, "callback_url"),
                                .trace = http_req_trace(req)};
    job_info *one = md_arena_alloc(http_req_arena(req), sizeof *one);
    job_batch b;
    char(*ids)[JOB_ID_MAX] = md_arena_alloc(http_req_arena(req), TEST_MAX_FILES * JOB_ID_MAX);
    if (!one || !ids)
        rc = md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    else if (count == 1)
        rc = job_submit(jq, in, one, http_req_err(req));
    else
        rc = job_submit_batch(jq, in, (size_t)count, &b, ids, http_req_err(req));
    free(params);
    if (rc != MD_OK)
        return rc;
    if (count == 1)
        return reply_one(req, one);
    json_t *arr = json_array();
    for (long long i = 0; i < count; i++)
        json_array_append_new(arr, json_string(ids[i]));
    return http_reply_json(req, 202,
                           json_pack("{s:b, s:s, s:o, s:s}", "success", 1, "batch_id", b.id,
                                     "job_ids", arr, "status", "QUEUED"));
}

static const http_doc_param Q_TEST[] = {
    {"steps", "{\"type\":\"integer\",\"minimum\":0,\"maximum\":1000,\"default\":5}",
     "steps of the job, each a cancel check and a progress report", 0},
    {"step_ms", "{\"type\":\"integer\",\"minimum\":0,\"maximum\":10000,\"default\":100}",
     "milliseconds each step sleeps", 0},
    {"format", "string", "the result's format (its extension); default bin", 0},
    {"fail", "string", "fail with this error code name instead of succeeding", 0},
    {"count", "{\"type\":\"integer\",\"minimum\":1,\"maximum\":50,\"default\":1}",
     "jobs to submit; more than one makes a batch", 0},
    {"callback_url", "string", "POSTed to, signed, when the job ends (one job only)", 0},
    {0}};
static const int E_TEST[] = {MD_E_INVALID_PARAM, MD_E_OVERLOADED, MD_E_TOO_LARGE, 0};

static const api__route TEST_ROUTES[] = {
    {"POST",
     "/api/test/jobs",
     HTTP_ROLE_WRITE,
     0,
     test_submit,
     {.summary = "Submit test jobs that copy the body to their result in timed steps",
      .description = "Only with --test-routes: for the end-to-end tests of the job queue.",
      .tag = "test",
      .request = "{\"type\":\"string\",\"format\":\"binary\"}",
      .request_type = "application/octet-stream",
      .response = "{\"type\":\"object\",\"properties\":{\"job_id\":{\"type\":\"string\"},"
                  "\"batch_id\":{\"type\":\"string\"},\"job_ids\":{\"type\":\"array\"},"
                  "\"status\":{\"type\":\"string\"}}}",
      .status = 202,
      .query = Q_TEST,
      .errors = E_TEST}},
};

int api_jobs_test_register(http_server *srv, jobs *jq, md_err *err)
{
    http_route *r = NULL;
    int rc = api__add_routes(srv, TEST_ROUTES, 1, 0, jq, &r, err);
    if (rc == MD_OK)
        http_route_body_limit(r, (size_t)1 << 20);
    return rc;
}
