/* admin_jobs.h - the admin routes over schedules and jobs (issue 11 §4):
 *
 *   POST   /api/admin/schedule          admin  {model, cron, input, callback_url?} -> 201, the
 *                                              schedule (its first run: the cron's next fire)
 *   GET    /api/admin/schedules         admin  {schedules: [...], count}
 *   DELETE /api/admin/schedules/{id}    admin  remove a schedule (its jobs stay)
 *   GET    /api/admin/jobs              admin  jobs newest first, paged (limit, cursor) and
 *                                              filtered (state, kind, model)
 *   GET    /api/admin/jobs/{id}         admin  one job with its callback's delivery state
 *
 * A schedule submits jobs of kind API_BULK_KIND; the cron syntax is job_cron's (jobs.h), the
 * callback_url must be on the callback_allow_hosts allow-list (400 naming "callback_url").
 */
#ifndef MD_API_ADMIN_JOBS_H
#define MD_API_ADMIN_JOBS_H

#include "base/err.h"
#include "http/http.h"
#include "jobs/jobs.h"

/* The kind of the jobs a schedule submits (the bulk prediction of POST /api/{model}/bulk). */
#define API_BULK_KIND "predict-bulk"

/* Add the routes above. jq is borrowed until http_server_free. */
int api_admin_jobs_register(http_server *srv, jobs *jq, md_err *err);

#endif
