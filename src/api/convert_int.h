/* convert_int.h - what the files of the conversion API share (convert.c: registration, upload,
 * results, presets; convert_run.c: POST /api/convert). Nothing outside src/api includes it. */
#ifndef MD_API_CONVERT_INT_H
#define MD_API_CONVERT_INT_H

#include "api/convert.h"
#include "api/convert_cache.h"
#include "api/webui.h"
#include "pipelines/pipelines.h"

#include <jansson.h>
#include <stdatomic.h>

/* Answers are compact; reals carry 10 significant digits (0.965091, not 0.96509100000000003). */
#define API_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10))

struct api_convert {
    store *st; /* one reference, dropped by api_convert_free */
    api_convert_opts o;
    char web_dir[4096];
    cv_cache *cache;        /* owned: convert answers */
    cv_cache *uploads_seen; /* owned: file_id -> "sha256\nfilename" of recent uploads, so a
                             * cached convert needs no database read */
    api_webui *ui;          /* owned; NULL when the page is not served */
    pl_budget *budget;      /* owned: admission of conversions by pixel count */
    atomic_ulong uploads;   /* accepted uploads */
    atomic_ulong converts[PL__CONVERTERS]; /* conversions run (cache misses), by converter */
    atomic_ulong convert_failures;
    void *ai; /* owned: the AI routes' context (convert_ai.c), freed by api_convert_free */
};

/* Remember an upload (its hash, name and expiry) for api__upload_lookup. */
void api__upload_remember(api_convert *c, const store_upload *up);
/* The upload file_id names: from memory when seen recently and not expired, else the store.
 * Fills file_id, sha256 and filename of *up. MD_E_FILE_NOT_FOUND for unknown or expired. */
int api__upload_lookup(api_convert *c, const char *file_id, store_upload *up, md_err *err);

/* POST /api/convert (convert_run.c). ctx is the api_convert. */
int api__convert_handler(http_req *req, void *ctx);

/* Format a wall-clock ms time as ISO 8601 UTC ("2026-11-23T21:04:05Z") into out[32]. */
void api__iso_time(int64_t ms, char out[32]);

#endif
