/* job_status.h - GET /api/v1/jobs/{id}/status: a job's status over a WebSocket (issue 10 section 2).
 *
 * The socket carries the job's JSON status, the object GET /api/v1/jobs/{id} answers (api_job_json
 * of jobs_api.h): at once, on every change (job_subscribe), and again every second while the job
 * is not finished; after a terminal state (SUCCESS, FAILURE, CANCELLED) it closes with 1000. An
 * unknown job, or another key's job (admins see all: api_jobs_visible), is refused with 404
 * before the upgrade. Credentials: the usual headers, or ?token=<JWT> for browsers.
 */
#ifndef MD_API_JOB_STATUS_H
#define MD_API_JOB_STATUS_H

#include "http/http.h"
#include "jobs/jobs.h"

typedef struct api_job_status api_job_status;

/* Register the route on srv. jq is borrowed until the server is freed. *out is new: the route's
 * context, freed with api_job_status_free after http_server_free (NULL is a no-op). */
int api_job_status_register(http_server *srv, jobs *jq, api_job_status **out, md_err *err);
void api_job_status_free(api_job_status *rt);

#endif
