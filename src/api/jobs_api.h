/* jobs_api.h - the routes over the durable job queue (issue 10 §4) that every kind of job
 * shares, and the /api/v1 service routes:
 *
 *   GET    /api/v1/jobs/{id}             read    the job: status, progress 0-100, stage, times,
 *                                                error, its parameters, result {width, height,
 *                                                bytes, format}
 *   GET    /api/v1/jobs/{id}/result      read    the result file, streamed, as an attachment
 *                                                (409 while not SUCCESS)
 *   DELETE /api/v1/jobs/{id}             write   cancel; a job that is (or becomes at once)
 *                                                terminal is removed with its files
 *   GET    /api/v1/batch/{id}            read    {status, total, completed, failed, progress, jobs}
 *   GET    /api/v1/batch/{id}/results    read    ZIP of the batch's finished results, streamed
 *   GET    /api/v1/health                public  liveness of the job service
 *   GET    /api/v1/status                read    memory total / available / held by jobs, CPUs,
 *                                                load, queue length, running jobs, workers
 *
 * A key sees only the jobs and batches it submitted (another's answer 404, as an unknown id
 * does); admin keys see all. Job kinds add their submit routes elsewhere (api/enhance.c) and
 * render their jobs with api_job_json.
 */
#ifndef MD_API_JOBS_API_H
#define MD_API_JOBS_API_H

#include "base/err.h"
#include "http/http.h"
#include "jobs/jobs.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct api_jobs api_jobs;

/* Add the routes above. jq is borrowed until api_jobs_free (after http_server_free). *out is
 * new. */
int api_jobs_register(http_server *srv, jobs *jq, api_jobs **out, md_err *err);
void api_jobs_free(api_jobs *a);

/* Bytes of memory the jobs running in this process hold by their admission estimates (kinds
 * add before a run and subtract after it); GET /api/v1/status reports it. */
void api_jobs_hold(api_jobs *a, int64_t delta);
int64_t api_jobs_held(const api_jobs *a);

/* 1 when the caller may see a job or batch of owner (its own, or an admin). */
int api_jobs_visible(const http_req *req, const char *owner);

/* The job as GET /api/v1/jobs/{id} answers it (new reference; NULL on out of memory). */
json_t *api_job_json(const job_info *j);
/* Answer status with api_job_json(j) plus "success": true (a job's page, a submission's 202). */
int api_job_reply(http_req *req, int status, const job_info *j);

/* The "test" job kind's run (jobs_test.c): copies the input to the result in the steps its
 * parameters say. Registered by the start-up code only with --test-routes. */
int api_jobs_test_run(job_run *r, void *user);
/* POST /api/test/jobs (only with --test-routes): submit test jobs. jq borrowed as above. */
int api_jobs_test_register(http_server *srv, jobs *jq, md_err *err);

#endif
