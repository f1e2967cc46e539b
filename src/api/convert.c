/* convert.c - the conversion API v1: registration, POST /api/upload, GET /api/results/{id}
 * and GET /api/presets. POST /api/convert itself is in convert_run.c.
 *
 * Upload checks run in a fixed order, each with its own status, so a client learns the first
 * thing wrong with its file: size (413) -> type by magic bytes (415) -> dimensions (400) ->
 * decodability (400). Only then are the bytes stored, once per content hash (the store
 * deduplicates blobs); the client's filename is kept as metadata only.
 *
 * Invariants:
 *   1. Handlers choose no status codes: every failure is an md_code with the offending field.
 *   2. Nothing from a request reaches a file path: blobs are named by hash, results by id
 *      (validated by the store), and the web page is served from memory.
 *   3. The store reference taken at registration lives until api_convert_free, which runs after
 *      the server (and so every handler) has stopped.
 */
#include "api/api_int.h"
#include "api/convert_int.h"
#include "api/multipart.h"

#include "base/log.h"
#include "vectorize/vec.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Room for the multipart envelope (boundaries, part headers, other small fields) on top of the
 * largest accepted file, so a file just under the limit still fits in the body. */
#define ENVELOPE_SLACK (64u << 10)

/* ---- options ----------------------------------------------------------------------------- */

api_convert_opts api_convert_opts_default(void)
{
    api_convert_opts o = {0};
    o.upload_max_bytes = 20u << 20;
    o.result_ttl_ms = 24ll * 3600 * 1000;
    o.cache_entries = 256;
    o.cache_max_bytes = 64u << 20;
    o.cache_ttl_ms = 600ll * 1000;
    o.limits = img_limits_default();
    return o;
}

void api__iso_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- POST /api/upload ---------------------------------------------------------------------- */

typedef struct upload_in {
    const uint8_t *data;
    size_t len;
    char filename[256];
} upload_in;

/* The image bytes and filename of an upload: a multipart "file" part, or a raw body sent with an
 * image Content-Type (its name then comes from ?filename=). */
static int upload_input(http_req *req, upload_in *in)
{
    md_err *err = http_req_err(req);
    const char *ct = http_req_header(req, "Content-Type");
    const void *body = http_req_body(req, &in->len);
    if (body == NULL || in->len == 0)
        return md_fail(err, MD_E_MISSING_FIELD, "file",
                       "the request has no body: send the image as "
                       "multipart/form-data field \"file\" or as a raw image/* body");
    if (ct && strncasecmp(ct, "image/", 6) == 0) {
        const char *name = http_req_query(req, "filename");
        in->data = body;
        mp_sanitize_filename(name ? name : "", name ? strlen(name) : 0, in->filename,
                             sizeof in->filename);
        return MD_OK;
    }
    char boundary[MP_BOUNDARY_MAX + 1];
    mp_part part;
    int rc = mp_boundary(ct, boundary, sizeof boundary, err);
    if (rc == MD_OK)
        rc = mp_find(body, in->len, boundary, "file", &part, err);
    if (rc != MD_OK)
        return rc;
    in->data = part.data;
    in->len = part.len;
    memcpy(in->filename, part.filename, sizeof in->filename);
    return MD_OK;
}

/* The checks, in the documented order. On success fmt, w, h describe the image. */
static int upload_check(const api_convert *c, const upload_in *in, img_format *fmt, int *w, int *h,
                        md_err *err)
{
    if (in->len > c->o.upload_max_bytes)
        return md_fail(err, MD_E_TOO_LARGE, "file", "the file is %zu bytes; the limit is %zu bytes",
                       in->len, c->o.upload_max_bytes);
    if (in->len == 0)
        return md_fail(err, MD_E_MISSING_FIELD, "file", "the file is empty");
    if (img_sniff(in->data, in->len) == IMG_FMT_UNKNOWN)
        return md_fail(
            err, MD_E_UNSUPPORTED_FORMAT, "file",
            "the file is not a PNG, JPEG, WebP, BMP or TIFF image (checked by its content, "
            "not its name or Content-Type)");
    int rc = img_probe(in->data, in->len, &c->o.limits, fmt, w, h, err);
    if (rc != MD_OK)
        return rc;
    md_image *img = NULL;
    rc = img_decode(in->data, in->len, &c->o.limits, &img, err);
    img_free(img);
    return rc;
}

static int upload_handler(http_req *req, void *ctx)
{
    api_convert *c = ctx;
    md_err *err = http_req_err(req);
    upload_in in = {0};
    img_format fmt = IMG_FMT_UNKNOWN;
    store_upload meta = {0}, up;
    int rc = upload_input(req, &in);
    if (rc == MD_OK)
        rc = upload_check(c, &in, &fmt, &meta.width, &meta.height, err);
    if (rc != MD_OK)
        return rc;
    if (in.filename[0] == '\0')
        snprintf(in.filename, sizeof in.filename, "image.%s", img_format_name(fmt));
    memcpy(meta.filename, in.filename, sizeof meta.filename);
    snprintf(meta.format, sizeof meta.format, "%s", img_format_name(fmt));
    rc = store_uploads_create(c->st, in.data, in.len, &meta, &up, err);
    if (rc != MD_OK)
        return rc;
    atomic_fetch_add(&c->uploads, 1);
    api__upload_remember(c, &up);
    json_t *j = json_pack("{s:b, s:s, s:s, s:s, s:i, s:i, s:I}", "success", 1, "file_id",
                          up.file_id, "filename", up.filename, "format", up.format, "width",
                          up.width, "height", up.height, "size_bytes", (json_int_t)up.size);
    return j ? http_reply_json(req, 200, j) : MD_E_NOMEM;
}

void api__upload_remember(api_convert *c, const store_upload *up)
{
    char v[STORE_SHA256_HEX + sizeof up->filename + 1];
    int n = snprintf(v, sizeof v, "%s\n%s", up->sha256, up->filename);
    /* Never past the upload's own expiry: a remembered upload expires exactly when the store's
     * row does (a later touch only extends the row, so this copy errs on the safe side). */
    cv_cache_put(c->uploads_seen, up->file_id, v, (size_t)n, up->expires_ms);
}

int api__upload_lookup(api_convert *c, const char *file_id, store_upload *up, md_err *err)
{
    char *v = NULL;
    size_t n = 0;
    memset(up, 0, sizeof *up);
    if (strlen(file_id) <= CV_KEY_LEN && cv_cache_get(c->uploads_seen, file_id, &v, &n)) {
        const char *nl = memchr(v, '\n', n);
        if (nl && (size_t)(nl - v) == STORE_SHA256_HEX - 1) {
            snprintf(up->file_id, sizeof up->file_id, "%s", file_id);
            memcpy(up->sha256, v, STORE_SHA256_HEX - 1);
            snprintf(up->filename, sizeof up->filename, "%s", nl + 1);
            free(v);
            return MD_OK;
        }
        free(v);
    }
    int rc = store_uploads_get(c->st, file_id, up, err);
    if (rc == MD_OK)
        api__upload_remember(c, up);
    return rc;
}

/* ---- GET /api/results/{id} and {id}.svg -------------------------------------------------- */

/* A header-safe download name: the upload's base name with ".svg", ASCII letters, digits and
 * ._- only (anything else becomes '_'). */
static void download_name(const char *filename, const char *fallback, char *out, size_t cap)
{
    const char *base = filename && *filename ? filename : fallback;
    size_t n = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        n = (size_t)(dot - base);
    if (n > cap - 5)
        n = cap - 5;
    for (size_t i = 0; i < n; i++) {
        char ch = base[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '-';
        out[i] = ok ? ch : '_';
    }
    strcpy(out + n, ".svg");
}

static int result_svg(http_req *req, api_convert *c, const store_result *r, json_t *meta)
{
    char disp[400], name[200];
    store_blob_reader *br = NULL;
    int rc = store_blob_open(c->st, r->svg_sha256, &br, http_req_err(req));
    /* A result row whose blob is gone was swept between the two reads: report it as expired. */
    if (rc == MD_E_FILE_NOT_FOUND)
        return md_fail(http_req_err(req), MD_E_NOT_FOUND, "id",
                       "no such result (it may have expired)");
    if (rc != MD_OK)
        return rc;
    download_name(json_string_value(json_object_get(meta, "filename")), r->result_id, name,
                  sizeof name);
    snprintf(disp, sizeof disp, "attachment; filename=\"%s\"", name);
    http_reply_header(req, "Content-Disposition", disp);
    http_reply_header(req, "Cache-Control", "private, max-age=3600");
    http_reply_header(req, "X-Content-Type-Options", "nosniff");
    return api__reply_blob(req, 200, "image/svg+xml", br);
}

static int result_json(http_req *req, api_convert *c, const store_result *r, json_t *meta)
{
    uint8_t *svg = NULL;
    size_t n = 0;
    int rc = store_blob_read(c->st, r->svg_sha256, (size_t)r->svg_bytes + 1, &svg, &n,
                             http_req_err(req));
    if (rc != MD_OK)
        return rc == MD_E_FILE_NOT_FOUND ? md_fail(http_req_err(req), MD_E_NOT_FOUND, "id",
                                                   "no such result (it may have expired)")
                                         : rc;
    char created[32], expires[32];
    api__iso_time(r->created_ms, created);
    api__iso_time(r->expires_ms, expires);
    json_t *j = json_pack("{s:b, s:s, s:s, s:s%, s:s, s:s}", "success", 1, "result_id",
                          r->result_id, "file_id", r->file_id, "svg", (const char *)svg, n,
                          "created_at", created, "expires_at", expires);
    free(svg);
    if (j == NULL)
        return md_fail(http_req_err(req), MD_E_INTERNAL, NULL, "the stored SVG is not valid text");
    json_object_del(meta, "filename");
    json_object_update(j, meta);
    char *text = json_dumps(j, API_JSON_FLAGS);
    json_decref(j);
    if (text == NULL)
        return MD_E_NOMEM;
    http_reply_header(req, "Cache-Control", "private, max-age=3600");
    return http_reply_take(req, 200, "application/json", text, strlen(text));
}

static int results_handler(http_req *req, void *ctx)
{
    api_convert *c = ctx;
    md_err *err = http_req_err(req);
    const char *p = http_req_param(req, "id");
    size_t n = p ? strlen(p) : 0;
    int want_svg = n > 4 && strcmp(p + n - 4, ".svg") == 0;
    char id[STORE_RESULT_ID_MAX];
    if (want_svg)
        n -= 4;
    if (n == 0 || n >= sizeof id)
        return md_fail(err, MD_E_NOT_FOUND, "id", "no such result");
    memcpy(id, p, n);
    id[n] = '\0';
    store_result r;
    char *meta_text = NULL;
    int rc = store_results_get(c->st, id, &r, &meta_text, err);
    if (rc != MD_OK)
        return rc == MD_E_NOT_FOUND || rc == MD_E_FILE_NOT_FOUND || rc == MD_E_INVALID_PARAM
                   ? md_fail(err, MD_E_NOT_FOUND, "id", "no such result (it may have expired)")
                   : rc;
    json_t *meta = json_loads(meta_text, 0, NULL);
    free(meta_text);
    if (!json_is_object(meta)) {
        json_decref(meta);
        return md_fail(err, MD_E_INTERNAL, NULL, "the stored result is damaged");
    }
    rc = want_svg ? result_svg(req, c, &r, meta) : result_json(req, c, &r, meta);
    json_decref(meta);
    return rc;
}

/* ---- GET /api/presets ---------------------------------------------------------------------- */

static int presets_handler(http_req *req, void *ctx)
{
    const api_convert *c = ctx;
    static const char *const names[] = {"default", "quality", "fast", "bw"};
    json_t *all = json_object();
    md_buf b;
    md_buf_init(&b, 1 << 16);
    int rc = all ? MD_OK : MD_E_NOMEM;
    for (size_t i = 0; rc == MD_OK && i < sizeof names / sizeof names[0]; i++) {
        vec_params p;
        md_buf_reset(&b);
        rc = vec_params_preset(names[i], &p, http_req_err(req));
        if (rc == MD_OK)
            rc = vec_params_to_json(&p, &b);
        json_t *pj = rc == MD_OK ? json_loads(b.data, 0, NULL) : NULL;
        if (rc == MD_OK && (pj == NULL || json_object_set_new(all, names[i], pj) != 0))
            rc = MD_E_NOMEM;
    }
    md_buf_free(&b);
    if (rc != MD_OK) {
        json_decref(all);
        return rc;
    }
    /* The page checks a file against the limits before sending it. Steals all. */
    json_t *j = json_pack("{s:b, s:o, s:{s:I, s:I, s:I, s:I}}", "success", 1, "presets", all,
                          "limits", "upload_max_bytes", (json_int_t)c->o.upload_max_bytes,
                          "max_width", (json_int_t)c->o.limits.max_width, "max_height",
                          (json_int_t)c->o.limits.max_height, "max_pixels",
                          (json_int_t)c->o.limits.max_pixels);
    if (j == NULL)
        return MD_E_NOMEM;
    http_reply_header(req, "Cache-Control", "private, max-age=300");
    return http_reply_json(req, 200, j);
}

/* ---- metrics ------------------------------------------------------------------------------ */

static void metrics_collect(md_buf *out, void *ctx)
{
    api_convert *c = ctx;
    cv_cache_stats s;
    cv_cache_stats_get(c->cache, &s);
    md_buf_printf(
        out,
        "# HELP modeld_convert_cache_hits_total Conversions answered from the in-memory cache.\n"
        "# TYPE modeld_convert_cache_hits_total counter\nmodeld_convert_cache_hits_total %llu\n"
        "# HELP modeld_convert_cache_misses_total Conversions not found in the cache.\n"
        "# TYPE modeld_convert_cache_misses_total counter\nmodeld_convert_cache_misses_total %llu\n"
        "# HELP modeld_convert_cache_evictions_total Cache entries evicted to stay in bounds.\n"
        "# TYPE modeld_convert_cache_evictions_total counter\nmodeld_convert_cache_evictions_total "
        "%llu\n"
        "# HELP modeld_convert_cache_l2_hits_total Of the cache hits, those answered by the shared L2 (Redis).\n"
        "# TYPE modeld_convert_cache_l2_hits_total counter\nmodeld_convert_cache_l2_hits_total %llu\n"
        "# HELP modeld_convert_cache_entries Answers held in the conversion cache.\n"
        "# TYPE modeld_convert_cache_entries gauge\nmodeld_convert_cache_entries %zu\n"
        "# HELP modeld_convert_cache_bytes Bytes held in the conversion cache.\n"
        "# TYPE modeld_convert_cache_bytes gauge\nmodeld_convert_cache_bytes %zu\n"
        "# HELP modeld_uploads_total Images accepted by POST /api/upload.\n"
        "# TYPE modeld_uploads_total counter\nmodeld_uploads_total %lu\n"
        "# HELP modeld_conversions_total Conversions run (cache misses), by converter.\n"
        "# TYPE modeld_conversions_total counter\n",
        (unsigned long long)s.hits, (unsigned long long)s.misses, (unsigned long long)s.evictions,
        (unsigned long long)s.l2_hits, s.entries, s.bytes, atomic_load(&c->uploads));
    for (int i = 0; i < PL__CONVERTERS; i++)
        md_buf_printf(out, "modeld_conversions_total{converter=\"%s\"} %lu\n",
                      pl_converter_name((pl_converter)i), atomic_load(&c->converts[i]));
    md_buf_printf(
        out,
        "# HELP modeld_conversion_failures_total Conversions that failed after validation.\n"
        "# TYPE modeld_conversion_failures_total counter\nmodeld_conversion_failures_total %lu\n"
        "# HELP modeld_convert_pixels_in_flight Pixels of the conversions admitted now.\n"
        "# TYPE modeld_convert_pixels_in_flight gauge\nmodeld_convert_pixels_in_flight %llu\n"
        "# HELP modeld_convert_pixels_in_flight_max Pixels the conversions may hold at once.\n"
        "# TYPE modeld_convert_pixels_in_flight_max gauge\nmodeld_convert_pixels_in_flight_max %llu\n",
        atomic_load(&c->convert_failures), (unsigned long long)pl_budget_in_flight(c->budget),
        (unsigned long long)pl_budget_limits(c->budget).max_in_flight);
}

/* ---- descriptors (GET /openapi.json) ------------------------------------------------------ */

/* The tracer's parameters by their VTracer names, with the ranges of src/vectorize/params.c and
 * the values of the "default" preset (tests/api/openapi_test.c checks both against the code). */
#define VEC_PARAM_PROPS                                                                            \
    "\"colormode\":{\"type\":\"string\",\"enum\":[\"color\",\"binary\"],\"default\":\"color\","       \
    "\"description\":\"trace in colour, or in black and white (binary)\"},"                          \
    "\"hierarchical\":{\"type\":\"string\",\"enum\":[\"stacked\",\"cutout\"],\"default\":\"stacked\","\
    "\"description\":\"stacked: shapes lie on top of each other; cutout: shapes do not overlap\"},"  \
    "\"mode\":{\"type\":\"string\",\"enum\":[\"spline\",\"polygon\",\"pixel\"],\"default\":\"spline\","\
    "\"description\":\"curve fitting: Bezier splines, straight polygons, or pixel edges\"},"         \
    "\"filter_speckle\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":128,\"default\":3,"           \
    "\"description\":\"regions smaller than n*n pixels merge into their most similar neighbour\"},"  \
    "\"color_precision\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":8,\"default\":6,"            \
    "\"description\":\"significant bits per colour channel when pixels are first grouped\"},"        \
    "\"layer_difference\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":255,\"default\":16,"        \
    "\"description\":\"largest colour difference (max over R, G, B) merged into one layer\"},"      \
    "\"corner_threshold\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":180,\"default\":60,"        \
    "\"description\":\"degrees: a vertex turning at least this much is a sharp corner\"},"         \
    "\"length_threshold\":{\"type\":\"number\",\"minimum\":3.5,\"maximum\":10,\"default\":3.5,"       \
    "\"description\":\"curve scale in px: larger gives fewer, longer segments\"},"                    \
    "\"max_iterations\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":20,\"default\":10,"           \
    "\"description\":\"Newton reparameterisation rounds per Bezier fit\"},"                          \
    "\"splice_threshold\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":180,\"default\":45,"        \
    "\"description\":\"degrees: a vertex turning at least this much splits the spline there\"},"    \
    "\"path_precision\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":8,\"default\":1,"             \
    "\"description\":\"decimal places in the SVG path data\"},"                                      \
    "\"gradients\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":1,\"default\":1,"                  \
    "\"description\":\"1: fill smooth colour ramps with linear or radial gradients (modeld only)\"},"\
    "\"background\":{\"type\":\"string\",\"pattern\":\"^#?[0-9A-Fa-f]{6}$\",\"default\":\"#ffffff\","\
    "\"description\":\"colour #rrggbb that semi-transparent input is composited on when "            \
    "composite is 1\"},"                                                                             \
    "\"composite\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":1,\"default\":0,"                  \
    "\"description\":\"1: composite on background first; 0: keep alpha (transparent areas get "      \
    "no shape)\"},"                                                                                  \
    "\"svgz\":{\"type\":\"integer\",\"enum\":[0],\"default\":0,"                                     \
    "\"description\":\"gzip the SVG: not available here (fetch GET /api/results/{id}.svg and "       \
    "compress it)\"}"

#define OK_FIELD "\"success\":{\"const\":true}"

static const http_doc UPLOAD_DOC = {
    .summary = "Upload an image",
    .description =
        "Send a PNG, JPEG, WebP, BMP or TIFF image, either as the `file` field of a "
        "multipart/form-data body or as the raw body with an image/* Content-Type (its name then "
        "comes from `filename`). The checks run in order, each with its own error: size (413 "
        "`payload_too_large`), type by content, not name (415 `unsupported_format`), dimensions "
        "(400 `image_too_large`), decodability (400 `corrupt_image` / `truncated_image`). The "
        "answer's `file_id` is what POST /api/convert takes; unused uploads expire after "
        "upload_ttl (1 hour by default). The same bytes uploaded twice are stored once.",
    .tag = "vectorize",
    .request = "{\"multipart/form-data\":{\"type\":\"object\",\"required\":[\"file\"],"
               "\"properties\":{\"file\":{\"type\":\"string\",\"format\":\"binary\","
               "\"contentMediaType\":\"application/octet-stream\","
               "\"description\":\"the image (its part's filename is kept as metadata)\"}}},"
               "\"image/*\":{\"type\":\"string\",\"format\":\"binary\","
               "\"contentMediaType\":\"image/*\"}}",
    .query = (const http_doc_param[]){{"filename", "string",
                                       "the image's file name, for a raw image/* body (kept as "
                                       "metadata: the download name of the SVG)",
                                       0},
                                      {0}},
    .response = "{\"type\":\"object\",\"required\":[\"success\",\"file_id\",\"filename\",\"format\","
                "\"width\",\"height\",\"size_bytes\"],\"properties\":{" OK_FIELD ","
                "\"file_id\":{\"type\":\"string\",\"description\":\"give it to POST /api/convert\"},"
                "\"filename\":{\"type\":\"string\"},"
                "\"format\":{\"type\":\"string\",\"enum\":[\"png\",\"jpeg\",\"webp\",\"bmp\",\"tiff\"]},"
                "\"width\":{\"type\":\"integer\"},\"height\":{\"type\":\"integer\"},"
                "\"size_bytes\":{\"type\":\"integer\"}}}",
    .errors = (const int[]){MD_E_BAD_REQUEST, MD_E_MISSING_FIELD, MD_E_IMAGE_TOO_LARGE, MD_E_IMAGE_CORRUPT,
                            MD_E_IMAGE_TRUNCATED, MD_E_TOO_LARGE, MD_E_UNSUPPORTED_FORMAT, MD_E_IO, 0},
};

static const http_doc CONVERT_DOC = {
    .summary = "Convert an uploaded image to SVG",
    .description =
        "Traces the image an upload named (`file_id`) into an SVG. Parameters start from `preset` "
        "(default \"default\") and any parameter named in the body overrides it; they take "
        "VTracer's names and meanings. Converters: `vtracer` traces in colour unless `colormode` "
        "is binary; `potrace` always traces black and white; `smart` looks at the pixels and "
        "chooses (colormode cannot be set with it). The answer has the SVG, its SSIM against the "
        "input (composited on white), sizes, time and the parameters used; the result stays "
        "fetchable at GET /api/results/{result_id} for result_ttl. Answers are cached by image "
        "content and parameters: the `X-Cache` header says HIT or MISS.",
    .tag = "vectorize",
    .request = "{\"type\":\"object\",\"required\":[\"file_id\"],\"additionalProperties\":false,"
               "\"properties\":{\"file_id\":{\"type\":\"string\",\"description\":\"from POST /api/upload\"},"
               "\"converter\":{\"type\":\"string\",\"enum\":[\"vtracer\",\"potrace\",\"smart\"],"
               "\"default\":\"vtracer\"},"
               "\"preset\":{\"type\":\"string\",\"enum\":[\"default\",\"quality\",\"fast\",\"bw\"],"
               "\"default\":\"default\",\"description\":\"starting values; GET /api/presets lists them\"}," VEC_PARAM_PROPS
               "}}",
    .response = "{\"type\":\"object\",\"required\":[\"success\",\"svg\",\"result_id\",\"ssim\","
                "\"processing_time\",\"svg_bytes\",\"path_count\",\"parameters\"],"
                "\"properties\":{" OK_FIELD ",\"svg\":{\"type\":\"string\",\"description\":\"the SVG document\"},"
                "\"result_id\":{\"type\":\"string\",\"description\":\"for GET /api/results/{id}\"},"
                "\"ssim\":{\"type\":\"number\",\"minimum\":-1,\"maximum\":1,"
                "\"description\":\"structural similarity of the rendered SVG to the input\"},"
                "\"processing_time\":{\"type\":\"number\",\"description\":\"seconds\"},"
                "\"svg_bytes\":{\"type\":\"integer\"},\"path_count\":{\"type\":\"integer\"},"
                "\"parameters\":{\"type\":\"object\",\"description\":\"every parameter as used\","
                "\"properties\":{" VEC_PARAM_PROPS "}}}}",
    .errors = (const int[]){MD_E_INVALID_JSON, MD_E_MISSING_FIELD, MD_E_INVALID_PARAM, MD_E_IMAGE_CORRUPT,
                            MD_E_IMAGE_TRUNCATED, MD_E_IMAGE_TOO_LARGE, MD_E_FILE_NOT_FOUND, MD_E_TOO_LARGE,
                            MD_E_UNSUPPORTED_MEDIA, MD_E_IO, 0},
};

static const http_doc RESULTS_DOC = {
    .summary = "A conversion's result",
    .description = "The stored conversion as JSON (the SVG, its numbers and parameters, and when it "
                   "expires), or, when the id ends in `.svg`, the SVG file itself as an attachment "
                   "named after the upload.",
    .tag = "vectorize",
    .path = (const http_doc_param[]){{"id", "string",
                                      "the result_id POST /api/convert answered; add .svg for the SVG file",
                                      1},
                                     {0}},
    .response = "{\"application/json\":{\"type\":\"object\",\"required\":[\"success\",\"result_id\","
                "\"file_id\",\"svg\",\"created_at\",\"expires_at\"],\"properties\":{" OK_FIELD ","
                "\"result_id\":{\"type\":\"string\"},\"file_id\":{\"type\":\"string\"},"
                "\"svg\":{\"type\":\"string\"},"
                "\"created_at\":{\"type\":\"string\",\"format\":\"date-time\"},"
                "\"expires_at\":{\"type\":\"string\",\"format\":\"date-time\"},"
                "\"converter\":{\"type\":\"string\"},\"ssim\":{\"type\":\"number\"},"
                "\"processing_time\":{\"type\":\"number\"},\"svg_bytes\":{\"type\":\"integer\"},"
                "\"path_count\":{\"type\":\"integer\"},\"parameters\":{\"type\":\"object\"}}},"
                "\"image/svg+xml\":{\"type\":\"string\"}}",
    .errors = (const int[]){MD_E_NOT_FOUND, MD_E_IO, 0},
};

static const http_doc PRESETS_DOC = {
    .summary = "The presets and upload limits",
    .description = "Every preset's full parameter set (what POST /api/convert starts from) and the "
                   "limits an upload is checked against, so a client can check a file before "
                   "sending it.",
    .tag = "vectorize",
    .response = "{\"type\":\"object\",\"required\":[\"success\",\"presets\",\"limits\"],"
                "\"properties\":{" OK_FIELD ",\"presets\":{\"type\":\"object\","
                "\"required\":[\"default\",\"quality\",\"fast\",\"bw\"],"
                "\"additionalProperties\":{\"type\":\"object\",\"properties\":{" VEC_PARAM_PROPS "}}},"
                "\"limits\":{\"type\":\"object\",\"required\":[\"upload_max_bytes\",\"max_width\","
                "\"max_height\",\"max_pixels\"],\"properties\":{"
                "\"upload_max_bytes\":{\"type\":\"integer\"},\"max_width\":{\"type\":\"integer\"},"
                "\"max_height\":{\"type\":\"integer\"},\"max_pixels\":{\"type\":\"integer\"}}}}}",
};

/* ---- registration --------------------------------------------------------------------------- */

static int add_routes(http_server *srv, api_convert *c, md_err *err)
{
    http_route *up =
        http_route_add(srv, "POST", "/api/upload", HTTP_ROLE_WRITE, HTTP_HEAVY, upload_handler, c);
    http_route *cv = http_route_add(srv, "POST", "/api/convert", HTTP_ROLE_WRITE, HTTP_HEAVY,
                                    api__convert_handler, c);
    http_route *rs = http_route_add(srv, "GET", "/api/results/{id}", HTTP_ROLE_READ, HTTP_LIGHT,
                                    results_handler, c);
    http_route *pr =
        http_route_add(srv, "GET", "/api/presets", HTTP_ROLE_READ, HTTP_LIGHT, presets_handler, c);
    if (!up || !cv || !rs || !pr)
        return md_fail(err, MD_E_INTERNAL, NULL, "cannot add the conversion routes");
    http_route_doc(up, &UPLOAD_DOC);
    http_route_doc(cv, &CONVERT_DOC);
    http_route_doc(rs, &RESULTS_DOC);
    http_route_doc(pr, &PRESETS_DOC);
    http_route_body_limit(up, c->o.upload_max_bytes + ENVELOPE_SLACK);
    http_route_body_limit(cv, 1u << 20);
    return http_metrics_collector(srv, metrics_collect, c);
}

/* The page is optional: a server without web/ still serves the API. */
static int add_web(http_server *srv, api_convert *c, md_err *err)
{
    md_err e2 = {0};
    if (c->o.no_web)
        return MD_OK;
    if (api_webui_find_dir(c->o.web_dir, c->web_dir, sizeof c->web_dir, &e2) != MD_OK ||
        api_webui_load(c->web_dir, &c->ui, &e2) != MD_OK) {
        md_log(MD_LOG_WARN, "web page not served: %s", md_err_message(&e2));
        return MD_OK;
    }
    return api_webui_register(srv, c->ui, err);
}

int api_convert_register(http_server *srv, store *st, const api_convert_opts *o, api_convert **out,
                         md_err *err)
{
    api_convert *c = calloc(1, sizeof *c);
    if (c == NULL)
        return MD_E_NOMEM;
    c->o = o ? *o : api_convert_opts_default();
    if (c->o.upload_max_bytes == 0)
        c->o.upload_max_bytes = 20u << 20;
    if (c->o.result_ttl_ms <= 0)
        c->o.result_ttl_ms = 24ll * 3600 * 1000;
    if (c->o.limits.max_width == 0)
        c->o.limits = img_limits_default();
    cv_cache_opts co = {.max_entries = c->o.cache_entries,
                        .max_bytes = c->o.cache_max_bytes,
                        .ttl_ms = c->o.cache_ttl_ms,
                        .l2 = c->o.cache_l2,
                        .l2_ttl_ms = c->o.cache_l2_ttl_ms};
    if (co.ttl_ms <= 0)
        co.ttl_ms = 600000;
    if (co.ttl_ms > c->o.result_ttl_ms) /* a cached answer must not outlive its result */
        co.ttl_ms = c->o.result_ttl_ms;
    c->st = store_ref(st);
    cv_cache_opts uo = {.max_entries = 4096, .max_bytes = 4u << 20, .ttl_ms = 60000};
    pl_budget_opts bo = pl_budget_opts_default();
    if (c->o.max_pixels)
        bo.max_pixels = c->o.max_pixels;
    bo.max_in_flight = c->o.pixels_in_flight ? c->o.pixels_in_flight : 2 * bo.max_pixels;
    int rc = pl_budget_new(&bo, &c->budget);
    if (rc == MD_OK)
        rc = cv_cache_new(&co, &c->cache);
    if (rc == MD_OK)
        rc = cv_cache_new(&uo, &c->uploads_seen);
    if (rc == MD_OK)
        rc = add_routes(srv, c, err);
    if (rc == MD_OK)
        rc = add_web(srv, c, err);
    if (rc != MD_OK) {
        api_convert_free(c);
        return rc;
    }
    *out = c;
    return MD_OK;
}

void api_convert_free(api_convert *c)
{
    if (c == NULL)
        return;
    cv_cache_free(c->cache);
    cv_cache_free(c->uploads_seen);
    api_webui_free(c->ui);
    pl_budget_free(c->budget);
    store_unref(c->st);
    free(c->ai);
    free(c);
}
