/* enhance.h - the photo enhancement routes (issue 10 §4) and the "enhance" job kind.
 *
 *   POST /api/v1/enhance            write  multipart `file` + quality, upscale, face_enhance,
 *                                          output_format -> 202 {job_id, status: QUEUED, links}
 *   POST /api/v1/enhance/batch      write  repeated `files` parts (<= 50), the same options ->
 *                                          202 {batch_id, job_ids, status}
 *   GET  /api/v1/jobs/{id}/preview  read   the result shrunk to fit 400 x 400
 *   GET  /api/v1/config             read   qualities, scales, formats, limits, face enhancement
 *   POST /api/v1/models/warmup      admin  load and warm the networks, with their times
 *
 * Admission, before anything is stored: the file's size (413 past 20 MB), its format by magic
 * bytes (415 unless JPEG, PNG, TIFF, BMP or WebP), its dimensions (400), the options (400 naming
 * the field; 422 for face_enhance while no face detector is available), the network's peak
 * memory estimate (pl_enhance_estimate) against the memory budget (503 + Retry-After), then the
 * estimates of the jobs that can run at once: the max_running largest among the running, queued
 * and new enhancement jobs must fit the budget together (503 + Retry-After), the queue (503 +
 * Retry-After when full) and a per-key rate limit of these two routes (429).
 */
#ifndef MD_API_ENHANCE_H
#define MD_API_ENHANCE_H

#include "api/jobs_api.h"
#include "auth/ratelimit.h"
#include "http/http.h"
#include "jobs/jobs.h"
#include "models/models.h"

#include <stddef.h>
#include <stdint.h>

typedef struct api_enhance api_enhance;

typedef struct api_enhance_opts {
    jobs *jq;                /* borrowed until api_enhance_free */
    api_jobs *japi;          /* borrowed: rendering, visibility and the memory held by runs */
    mdl_registry *models;    /* borrowed: the networks (estimate, warmup) */
    size_t max_file_bytes;   /* 0 = 20 MB */
    uint64_t memory_budget;  /* bytes the jobs running at once may need at peak; 0 = 1.5 GB */
    rl_rate rate;            /* per key (per IP without one) over both submit routes; per_sec
                              * 0 = no limit */
    const rl_shared *rate_shared; /* those buckets shared by the nodes (Redis, set by the CLI;
                                   * its keys start "enh:"); NULL = this node's own */
    int max_running;         /* the kind's limit: admission sums this many estimates (0 = 1);
                              * also shown by /api/v1/config */
    size_t queue_max;        /* for /api/v1/config */
} api_enhance_opts;

/* Add the routes above. *out is new (api_enhance_free after http_server_free). */
int api_enhance_register(http_server *srv, const api_enhance_opts *o, api_enhance **out,
                         md_err *err);
void api_enhance_free(api_enhance *a);

/* The "enhance" job kind: what its run callback needs. user of api_enhance_run. */
typedef struct api_enhance_kind {
    mdl_registry *models;   /* borrowed */
    api_jobs *japi;         /* may be NULL (a `modeld worker`): the memory held is not shown */
} api_enhance_kind;

/* Run one enhancement job: its params (quality, upscale, face_enhance, output_format) and input
 * through pl_enhance; the result with metadata {width, height, format, faces_found, tiles,
 * total_ms, model}. user is an api_enhance_kind. */
int api_enhance_run(job_run *r, void *user);

#endif
