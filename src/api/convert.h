/* convert.h - the conversion API v1 (issue 4): upload an image, convert it to SVG, fetch results.
 *
 *   POST /api/upload        write   multipart/form-data "file" field, or a raw image body
 *                                   (Content-Type image/png, ...)
 *   POST /api/convert       write   {"file_id", "converter": "vtracer"|"potrace"|"smart",
 *                                    "preset"?, parameters...}
 *   GET  /api/results/{id}  read    the stored conversion as JSON; {id}.svg gives the SVG file
 *   GET  /api/presets       read    every preset's parameters and the upload limits (for the page)
 *   GET  /, GET /{file}     public  the web page (webui.h)
 *
 * Handlers are thin: they parse and validate, then call the image decoders and the store
 * (upload) or the pipeline (convert: pl_vectorize, the same call as `modeld vectorize`), then
 * render. Uploads and conversions run on the compute pool with the request's cancel token, and
 * conversions are admitted by their pixel count (pl_budget: too large 400 image_too_large, too
 * many pixels in flight 503 overloaded). Answers of /api/convert are cached in memory
 * (convert_cache.h) by image content and parameters, marked X-Cache: HIT|MISS.
 */
#ifndef MD_API_CONVERT_H
#define MD_API_CONVERT_H

#include "api/convert_cache.h"
#include "base/err.h"
#include "http/http.h"
#include "image/image.h"
#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct api_convert_opts {
    size_t upload_max_bytes; /* largest accepted image file; default 20 MB */
    int64_t result_ttl_ms;   /* how long conversions stay fetchable; default 24 h */
    size_t cache_entries;    /* in-memory answer cache size; default 256 */
    size_t cache_max_bytes;  /* default 64 MB */
    int64_t cache_ttl_ms;    /* default 10 min (never longer than the result TTL) */
    const cv_l2 *cache_l2;   /* shared second-level answer cache (Redis, set by the CLI);
                                NULL = memory only; borrowed until api_convert_free */
    int64_t cache_l2_ttl_ms; /* lifetime of L2 answers; default 3600 s (bounded by the result's) */
    const char *web_dir;     /* web page directory; NULL/"" = search (webui.h); borrowed */
    int no_web;              /* 1: do not serve the page */
    img_limits limits;       /* image dimension limits; default img_limits_default() */
    uint64_t max_pixels;       /* largest image a conversion traces (w*h); 0 = 16 Mpx */
    uint64_t pixels_in_flight; /* all running conversions together; 0 = 2 x max_pixels */
} api_convert_opts;

/* The built-in defaults above. Operators tune them through `modeld serve`'s settings
 * (upload_max_bytes, result_ttl, convert_cache_entries, convert_cache_ttl, web_dir,
 * convert_max_pixels, convert_pixels_in_flight: flags,
 * MODELD_* env or the INI file, src/config), which serve.c copies in; this reads no environment. */
api_convert_opts api_convert_opts_default(void);

typedef struct api_convert api_convert;

/* Add the routes above to srv (before it starts) and their cache metrics. st is borrowed (one
 * reference is taken and dropped by api_convert_free). *out is new: free it with
 * api_convert_free after http_server_free(srv). A missing web directory is logged, not fatal. */
int api_convert_register(http_server *srv, store *st, const api_convert_opts *o, api_convert **out,
                         md_err *err);
/* NULL is a no-op. */
void api_convert_free(api_convert *c);

struct mdl_registry;
/* The AI conversion routes (convert_ai.c, issue 9): POST /api/convert-ai, GET /api/ai-health,
 * GET /api/model-status, POST /api/v2/convert-ai, /api/v2/analyze-image,
 * /api/v2/predict-quality, GET /api/v2/model-health, /api/v2/model-info,
 * POST /api/v2/update-models. c (uploads, results, budget, cache) and reg are borrowed until
 * api_convert_free(c), which also frees what this adds. Before the server starts. */
int api_convert_ai_register(http_server *srv, api_convert *c, struct mdl_registry *reg,
                            md_err *err);

#endif
