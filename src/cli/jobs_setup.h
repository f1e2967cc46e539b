/* jobs_setup.h - opening the durable job queue for `modeld serve` and `modeld worker`. */
#ifndef MD_CLI_JOBS_SETUP_H
#define MD_CLI_JOBS_SETUP_H

#include "api/bulk.h"
#include "api/enhance.h"
#include "cli/cluster.h"
#include "config/config.h"
#include "jobs/jobs.h"
#include "models/models.h"
#include "store/store.h"

/* Open the queue on st with cfg's job settings and register the job kinds: "enhance" (its run
 * context *kind is borrowed until job_close: its models must be set, its japi may be set
 * until job_start), "predict-bulk" (API_BULK_KIND; *bulk borrowed until job_close, its models
 * and st set), "retrain" (API_RETRAIN_KIND, the same *bulk context, one job at a time;
 * only when bulk->serving) and "test" with test_routes. workers < 0: cfg's workers setting
 * (auto = half the CPUs). cl (NULL = none) gets the queue's job events for the other nodes
 * (borrowed until job_close). The caller starts it with job_start once the kind context is
 * complete.
 * *out is new: job_close. */
int cli_jobs_open(const md_config *cfg, store *st, api_enhance_kind *kind, api_bulk_kind *bulk,
                  int workers, cli_cluster *cl, jobs **out, md_err *err);

#endif
