/* bulk.h - bulk prediction (issue 11 §4): POST /api/{model}/bulk and the "predict-bulk" job kind
 * (API_BULK_KIND, admin_jobs.h).
 *
 *   POST /api/{model}/bulk   write  a CSV (header row of column names) or JSON-lines upload
 *                                   (<= 100 MB: 413 beyond), as multipart `file` or a raw
 *                                   text/csv / application/x-ndjson body; callback_url as a
 *                                   form field or query parameter -> 202 {job_id, status, links}
 *
 * The result, through GET /api/v1/jobs/{id}/result, is a CSV (text/csv): one line per input row
 * in input order, columns "row" (0-based data row index), the prediction's fields flattened
 * ("probabilities.yes"; the set of the first good row), then "error_code", "error_field" and
 * "error" (empty for good rows).
 */
#ifndef MD_API_BULK_H
#define MD_API_BULK_H

#include "base/err.h"
#include "http/http.h"
#include "jobs/jobs.h"
#include "models/models.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>

#define API_BULK_MAX_BYTES ((size_t)100 << 20) /* largest upload accepted */
#define API_BULK_CHUNK 1000                    /* rows per pl_predict_batch call */

typedef struct api_bulk api_bulk;

typedef struct api_bulk_opts {
    jobs *jq;          /* borrowed until api_bulk_free */
    mdl_registry *reg; /* borrowed: the model check at admission */
    size_t max_bytes;  /* 0 = API_BULK_MAX_BYTES */
} api_bulk_opts;

/* Add the route above. *out is new (api_bulk_free after http_server_free). */
int api_bulk_register(http_server *srv, const api_bulk_opts *o, api_bulk **out, md_err *err);
void api_bulk_free(api_bulk *a); /* NULL is a no-op */

/* The "predict-bulk" job kind: what its run callback needs (user of api_bulk_run). */
typedef struct api_bulk_kind {
    mdl_registry *models; /* borrowed */
    store *st;            /* borrowed: the datasets (or uploads) a schedule's job names by
                           * params.input, the prediction log; retraining's datasets and feedback */
    double log_sample;    /* share of rows logged to the prediction history
                             (predict_bulk_log_sample, default 0.01) */
    bool serving;         /* models is the registry that serves requests (modeld serve): only
                           * then is the "retrain" kind registered (cli_jobs_open), since the
                           * version it installs must be loaded where requests are answered */
} api_bulk_kind;

/* Run one bulk job: params {model, format?: "csv" | "jsonl", input?: a stored dataset id
 * ("d_...") or an upload id (schedules)};
 * the job's input blob (or the upload) is streamed in blocks, rows go through pl_predict_batch
 * API_BULK_CHUNK at a time with progress and a cancel check per chunk, and the result CSV
 * above is stored with metadata {format: "csv", model, version, rows, failed}. */
int api_bulk_run(job_run *r, void *user);

#endif
