/* jobs_setup.c - the job queue of `modeld serve` and `modeld worker`, opened the same way in
 * both from the same settings (workers, job_lease, job_attempts, job_queue_max, job_input_ttl,
 * job_result_ttl), so that a separate worker process runs exactly what the server's own worker
 * threads would.
 *
 * The kinds of job are registered here, above src/pipelines (the jobs library sits below it
 * and knows nothing of what a job does): each kind's run callback calls its pipeline. */
#include "cli/jobs_setup.h"

#include "base/log.h"

#include <unistd.h>

/* 0 = half the CPUs, at least 1: the other half serves requests (and the conv kernels of one
 * job already use several cores' worth of SIMD). */
static int default_workers(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus >= 2 ? (int)(cpus / 2) : 1;
}

int cli_jobs_open(const md_config *cfg, store *st, int workers, jobs **out, md_err *err)
{
    job_opts o = {.store = st,
                  .workers = workers >= 0
                                 ? workers
                                 : (cfg->workers > 0 ? (int)cfg->workers : default_workers()),
                  .lease_ms = cfg->job_lease_ms,
                  .max_attempts = (int)cfg->job_attempts,
                  .input_ttl_ms = cfg->job_input_ttl_ms,
                  .result_ttl_ms = cfg->job_result_ttl_ms,
                  .max_queued = (size_t)cfg->job_queue_max};
    int rc = job_open(&o, out, err);
    if (rc == MD_OK)
        rc = job_start(*out, err);
    if (rc == MD_OK)
        md_log(MD_LOG_INFO, "jobs: %d worker threads, lease %ld ms", job_workers(*out),
               cfg->job_lease_ms);
    return rc;
}
