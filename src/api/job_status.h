/* job_status.h - GET /api/v1/jobs/{id}/status: a job's status over a WebSocket (issue 10 section 2).
 *
 * The socket carries the job's JSON status, the same object GET /api/v1/jobs/{id} answers: at
 * once, on every change (job_subscribe), and again every second while the job is not finished;
 * after a terminal state (SUCCESS, FAILURE, CANCELLED) it closes with 1000. An unknown job, or
 * another key's job (admins see all), is refused with 404 before the upgrade. Credentials: the
 * usual headers, or ?token=<JWT> for browsers.
 */
#ifndef MD_API_JOB_STATUS_H
#define MD_API_JOB_STATUS_H

#include "http/http.h"
#include "jobs/jobs.h"

#include <jansson.h>

/* How a job is shown: the body of GET /api/v1/jobs/{id}. Returns a new reference (NULL on OOM);
 * info is borrowed for the call. Called on the jobs library's threads and the WebSocket thread
 * (thread-safe, quick). */
typedef json_t *(*api_job_render_fn)(const job_info *info);

/* The job as GET /api/v1/jobs/{id} shows it (issue 10 section 4): {job_id, kind, status,
 * progress 0..100, stage, created_at, started_at, completed_at (ISO 8601 or null), error_message,
 * error_code (null unless it failed), attempts, result {width, height, bytes, format} or null,
 * links, batch_id when in a batch}, plus each of the job's parameters (quality, upscale, ...) as a
 * field. The renderer api_job_status_register uses when it is given none. */
json_t *api_job_status_json(const job_info *info);

typedef struct api_job_status api_job_status;

/* Register the route on srv. jq is borrowed until the server is freed; render NULL means
 * api_job_status_json. *out is new: the route's context, freed with api_job_status_free after
 * http_server_free (NULL is a no-op). */
int api_job_status_register(http_server *srv, jobs *jq, api_job_render_fn render, api_job_status **out,
                            md_err *err);
void api_job_status_free(api_job_status *rt);

#endif
