/* jobs_setup.c - the job queue of `modeld serve` and `modeld worker`, opened the same way in
 * both from the same settings (workers, job_lease, job_attempts, job_queue_max, job_input_ttl,
 * job_result_ttl), so that a separate worker process runs exactly what the server's own worker
 * threads would.
 *
 * The kinds of job are registered here, above src/pipelines (the jobs library sits below it
 * and knows nothing of what a job does): each kind's run callback calls its pipeline. */
#include "cli/jobs_setup.h"

#include "api/retrain.h"

#include "api/admin_jobs.h"
#include "api/jobs_api.h"
#include "base/log.h"

#include <unistd.h>

/* auto = half the CPUs, at least 1: the other half serves requests (and the conv kernels of one
 * job already use several cores' worth of SIMD). */
static int default_workers(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus >= 2 ? (int)(cpus / 2) : 1;
}

int cli_jobs_open(const md_config *cfg, store *st, api_enhance_kind *kind, api_bulk_kind *bulk,
                  int workers, cli_cluster *cl, jobs **out, md_err *err)
{
    if (workers < 0)
        workers = md_config_workers(cfg);
    if (workers < 0)
        workers = default_workers();
    job_opts o = {.store = st,
                  .workers = workers,
                  .lease_ms = cfg->job_lease_ms,
                  .max_attempts = (int)cfg->job_attempts,
                  .input_ttl_ms = cfg->job_input_ttl_ms,
                  .result_ttl_ms = cfg->job_result_ttl_ms,
                  .max_queued = (size_t)cfg->job_queue_max,
                  .callback_allow_hosts = cfg->callback_allow_hosts,
                  .callback_secret = cfg->callback_secret,
                  .callback_attempts = (int)cfg->callback_attempts,
                  .callback_timeout_ms = cfg->callback_timeout_ms,
                  .on_event = cl ? cli_cluster_job_event : NULL,
                  .on_event_ctx = cl};
    int rc = job_open(&o, out, err);
    /* The kinds. "test" (copies its input in timed steps) only for the end-to-end tests. */
    job_kind enh = {.name = "enhance",
                    .run = api_enhance_run,
                    .user = kind,
                    .max_running = (int)cfg->enhance_max_running};
    if (rc == MD_OK)
        rc = job_register(*out, &enh, err);
    if (rc == MD_OK)
        rc = job_register(
            *out, &(job_kind){.name = API_BULK_KIND, .run = api_bulk_run, .user = bulk}, err);
    /* Retraining needs what a bulk job needs (the registry, the store); one at a time per
     * process, so training never takes more than one core beside the requests; and only in
     * a serving process: a `modeld worker` would install the version in a registry nobody
     * asks (the server would serve it only after a reload). */
    if (rc == MD_OK && bulk->serving)
        rc = job_register(*out,
                          &(job_kind){.name = API_RETRAIN_KIND, .run = api_retrain_run,
                                      .user = bulk, .max_running = 1},
                          err);
    if (rc == MD_OK && cfg->test_routes)
        rc = job_register(*out, &(job_kind){.name = "test", .run = api_jobs_test_run}, err);
    if (rc == MD_OK)
        md_log(MD_LOG_INFO, "jobs: %d worker threads, lease %ld ms", o.workers, cfg->job_lease_ms);
    return rc;
}
