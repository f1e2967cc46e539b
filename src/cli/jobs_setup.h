/* jobs_setup.h - opening the durable job queue for `modeld serve` and `modeld worker`. */
#ifndef MD_CLI_JOBS_SETUP_H
#define MD_CLI_JOBS_SETUP_H

#include "config/config.h"
#include "jobs/jobs.h"
#include "store/store.h"

/* Open the queue on st with cfg's job settings, register the job kinds and start workers
 * (workers < 0: cfg->workers, where 0 means half the CPUs). *out is new: job_close. */
int cli_jobs_open(const md_config *cfg, store *st, int workers, jobs **out, md_err *err);

#endif
