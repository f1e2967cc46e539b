/* datasets.h - stored datasets (issue 11 §4): CSV or JSON-lines files kept until deleted, the
 * input of schedules (POST /api/admin/schedule, field input) and the data of retraining
 * (POST /api/admin/retrain, field data).
 *
 *   POST   /api/admin/datasets        admin  multipart `file` (+ optional `name` field) or a
 *                                            raw text/csv / application/x-ndjson body (name in
 *                                            the query), <= 100 MB, spooled to a file as it
 *                                            arrives (constant memory) -> 201 the dataset
 *   GET    /api/admin/datasets        admin  {datasets: [...], count, total, next_offset}
 *                                            (limit 1..1000, default 50; offset)
 *   GET    /api/admin/datasets/{id}   admin  the dataset
 *   DELETE /api/admin/datasets/{id}   admin  409 while a schedule names it as its input
 *
 * A dataset is {dataset_id, name, format: "csv" | "jsonl", rows, columns: [names], size,
 * sha256, owner, created_at}. A CSV must have a header row of distinct non-empty names and rows
 * of the same width (src/base/csv.h); JSON lines must be objects (the columns are the keys of
 * the first one). Anything else is a 400 naming "file" and the line.
 */
#ifndef MD_API_DATASETS_H
#define MD_API_DATASETS_H

#include "base/err.h"
#include "http/http.h"
#include "store/store.h"

#include <jansson.h>
#include <stddef.h>

#define API_DATASET_MAX_BYTES ((size_t)100 << 20)

typedef struct api_datasets_opts {
    store *st;        /* borrowed until http_server_free */
    size_t max_bytes; /* 0 = API_DATASET_MAX_BYTES */
} api_datasets_opts;

typedef struct api_datasets api_datasets;

/* Add the routes above. *out is new (api_datasets_free after http_server_free). */
int api_datasets_register(http_server *srv, const api_datasets_opts *o, api_datasets **out,
                          md_err *err);
void api_datasets_free(api_datasets *d); /* NULL is a no-op */

/* A dataset row as the routes show it. New reference; NULL when out of memory. */
json_t *api_dataset_json(const store_dataset *d);

#endif
