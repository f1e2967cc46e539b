/* convert_run.c - POST /api/convert: validate the request, answer from the cache or run the
 * vectorizer on the compute pool, keep the result, answer.
 *
 *   {"file_id", "converter", "preset"?, <VTracer-named parameters>...}
 *     -> parameters = preset (default "default") + the named overrides, range-checked by
 *        vec_params_set (400 naming the parameter);
 *     -> upload lookup (404 for an unknown or expired file_id);
 *     -> cache key = SHA-256(image content hash, converter, parameters as JSON): HIT answers the
 *        stored answer; MISS decodes, traces (vec_convert, as `modeld vectorize` does), stores
 *        the result for result_ttl and caches the answer.
 *
 * Converters: "vtracer" traces in colour unless colormode says binary; "potrace" always traces
 * black and white; "smart" looks at the pixels (api_convert_looks_binary) and picks.
 *
 * Invariants:
 *   1. The cache key covers everything that changes the SVG: the image bytes (by hash, so the
 *      same image uploaded twice shares its entry), the converter and every parameter.
 *   2. A cached answer names a stored result that is still alive (the cache TTL is bounded by
 *      the result's expiry).
 */
#include "api/convert_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "vectorize/vec.h"

#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct convert_req {
    char file_id[STORE_FILE_ID_MAX];
    int converter; /* CV_* */
    vec_params p;
    char key[CV_KEY_LEN + 1];
} convert_req;

/* ---- parsing ------------------------------------------------------------------------------ */

static int parse_converter(json_t *body, convert_req *r, md_err *err)
{
    json_t *v = json_object_get(body, "converter");
    r->converter = CV_VTRACER;
    if (v == NULL)
        return MD_OK;
    for (int i = 0; json_is_string(v) && i < CV__COUNT; i++)
        if (strcmp(json_string_value(v), api__converter_names[i]) == 0) {
            r->converter = i;
            return MD_OK;
        }
    return md_fail(err, MD_E_INVALID_PARAM, "converter",
                   "converter must be one of vtracer, potrace, smart");
}

/* A JSON parameter value as the text vec_params_set parses. -1 for objects, arrays and null. */
static int param_text(json_t *v, char *buf, size_t cap)
{
    if (json_is_string(v))
        snprintf(buf, cap, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%.17g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, cap, "%d", json_is_true(v) ? 1 : 0);
    else
        return -1;
    return 0;
}

/* Preset, then every other member as a named parameter. */
static int parse_params(json_t *body, convert_req *r, md_err *err)
{
    json_t *preset = json_object_get(body, "preset");
    if (preset && !json_is_string(preset))
        return md_fail(err, MD_E_INVALID_PARAM, "preset", "preset must be a string");
    int rc = vec_params_preset(preset ? json_string_value(preset) : "default", &r->p, err);
    const char *name;
    json_t *v;
    int colormode_given = 0;
    json_object_foreach(body, name, v)
    {
        char text[128];
        if (rc != MD_OK)
            break;
        if (!strcmp(name, "file_id") || !strcmp(name, "converter") || !strcmp(name, "preset"))
            continue;
        if (param_text(v, text, sizeof text) != 0)
            return md_fail(err, MD_E_INVALID_PARAM, name, "%.60s must be a number or a string",
                           name);
        rc = vec_params_set(&r->p, name, text, err);
        colormode_given |= strcmp(name, "colormode") == 0;
    }
    if (rc == MD_OK && r->p.svgz)
        return md_fail(err, MD_E_INVALID_PARAM, "svgz",
                       "svgz is not available in the JSON API: "
                       "fetch GET /api/results/{id}.svg and compress it");
    if (rc == MD_OK && colormode_given && r->converter == CV_POTRACE &&
        r->p.colormode != VEC_BINARY)
        return md_fail(err, MD_E_INVALID_PARAM, "colormode",
                       "the potrace converter is black and "
                       "white only; use converter vtracer for colour");
    if (rc == MD_OK && colormode_given && r->converter == CV_SMART)
        return md_fail(err, MD_E_INVALID_PARAM, "colormode",
                       "the smart converter chooses colormode "
                       "itself; use converter vtracer to set it");
    if (r->converter == CV_POTRACE)
        r->p.colormode = VEC_BINARY;
    return rc == MD_OK ? vec_params_validate(&r->p, err) : rc;
}

static int parse_request(http_req *req, convert_req *r)
{
    md_err *err = http_req_err(req);
    size_t len = 0;
    json_t *body = NULL;
    if (http_req_body(req, &len) == NULL || len == 0)
        return md_fail(err, MD_E_MISSING_FIELD, "file_id",
                       "the request needs a JSON body: {\"file_id\": ..., \"converter\": ...}");
    int rc = http_req_json(req, &body);
    if (rc != MD_OK)
        return rc;
    json_t *fid = json_object_get(body, "file_id");
    if (!json_is_string(fid) || json_string_length(fid) == 0)
        rc = md_fail(err, MD_E_MISSING_FIELD, "file_id",
                     "file_id (the id POST /api/upload answered) is required");
    else if (json_string_length(fid) >= sizeof r->file_id)
        rc = md_fail(err, MD_E_FILE_NOT_FOUND, "file_id",
                     "no such file (unknown or expired file_id)");
    else
        snprintf(r->file_id, sizeof r->file_id, "%s", json_string_value(fid));
    if (rc == MD_OK)
        rc = parse_converter(body, r, err);
    if (rc == MD_OK)
        rc = parse_params(body, r, err);
    json_decref(body);
    return rc;
}

/* ---- cache key ------------------------------------------------------------------------------ */

static int make_key(const store_upload *up, convert_req *r)
{
    md_buf b;
    md_buf_init(&b, 1 << 16);
    int rc = md_buf_printf(&b, "%s\n%s\n", up->sha256, api__converter_names[r->converter]);
    if (rc == MD_OK)
        rc = vec_params_to_json(&r->p, &b);
    if (rc == MD_OK) {
        unsigned char h[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(h, (const unsigned char *)b.data, b.len);
        sodium_bin2hex(r->key, sizeof r->key, h, sizeof h);
    }
    md_buf_free(&b);
    return rc;
}

/* ---- the work ------------------------------------------------------------------------------- */

int api_convert_looks_binary(const md_image *img)
{
    size_t n = (size_t)img->width * (size_t)img->height, colour = 0, mid = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *px = img->rgba + 4 * i;
        int c[3];
        /* Composite on white, as the SSIM reference is: transparent areas count as white. */
        for (int k = 0; k < 3; k++)
            c[k] = (px[k] * px[3] + 255 * (255 - px[3]) + 127) / 255;
        int hi = c[0] > c[1] ? (c[0] > c[2] ? c[0] : c[2]) : (c[1] > c[2] ? c[1] : c[2]);
        int lo = c[0] < c[1] ? (c[0] < c[2] ? c[0] : c[2]) : (c[1] < c[2] ? c[1] : c[2]);
        int luma = (299 * c[0] + 587 * c[1] + 114 * c[2]) / 1000;
        colour += hi - lo > 48;
        mid += luma > 80 && luma < 176;
    }
    /* Anti-aliased edges of black-on-white art give a few percent of grey; real colour or
     * shading gives much more. */
    return n > 0 && colour * 100 <= n && mid * 100 <= 8 * n;
}

/* Read and decode the upload, pick smart's colormode, trace. *secs is the wall time of it all. */
static int run(api_convert *c, http_req *req, const store_upload *up, convert_req *r,
               vec_result **res, double *secs)
{
    md_err *err = http_req_err(req);
    uint64_t t0 = md_now_ns();
    uint8_t *data = NULL;
    size_t n = 0;
    md_image *img = NULL;
    int rc = store_blob_read(c->st, up->sha256, c->o.upload_max_bytes, &data, &n, err);
    if (rc == MD_E_FILE_NOT_FOUND)
        rc = md_fail(err, MD_E_FILE_NOT_FOUND, "file_id",
                     "no such file (unknown or expired file_id)");
    if (rc == MD_OK)
        rc = img_decode(data, n, &c->o.limits, &img, err);
    free(data);
    if (rc == MD_OK && r->converter == CV_SMART)
        r->p.colormode = api_convert_looks_binary(img) ? VEC_BINARY : VEC_COLOR;
    if (rc == MD_OK && http_req_expired(req))
        rc = md_fail(err, MD_E_TIMEOUT, NULL, "the conversion did not start before its deadline");
    vec_convert_opts vo = {.measure_quality = 1};
    if (rc == MD_OK)
        rc = vec_convert(img, &r->p, &vo, res, err);
    img_free(img);
    *secs = (double)(md_now_ns() - t0) / 1e9;
    return rc;
}

static double round6(double x)
{
    return round(x * 1e6) / 1e6;
}

/* What is stored with the result: the answer's numbers and parameters, plus the converter and
 * the upload's filename (for the download name). */
static json_t *result_meta(const vec_result *res, double secs, const convert_req *r,
                           const store_upload *up)
{
    md_buf b;
    md_buf_init(&b, 1 << 16);
    json_t *params =
        vec_params_to_json(&res->params, &b) == MD_OK ? json_loads(b.data, 0, NULL) : NULL;
    md_buf_free(&b);
    if (params == NULL)
        return NULL;
    return json_pack("{s:f, s:f, s:I, s:I, s:o, s:s, s:s}", "ssim", round6(res->ssim.rgb),
                     "processing_time", round6(secs), "svg_bytes", (json_int_t)res->svg_bytes,
                     "path_count", (json_int_t)res->path_count, "parameters", params, "converter",
                     api__converter_names[r->converter], "filename", up->filename);
}

/* Store the result and build the answer text (new, free()). */
static int finish(api_convert *c, http_req *req, const vec_result *res, double secs,
                  const convert_req *r, const store_upload *up, char **answer, int64_t *expires)
{
    md_err *err = http_req_err(req);
    json_t *meta = result_meta(res, secs, r, up);
    char *meta_text = meta ? json_dumps(meta, API_JSON_FLAGS) : NULL;
    store_result sr;
    int rc = meta_text ? MD_OK : MD_E_NOMEM;
    if (rc == MD_OK)
        rc = store_results_create(c->st, up->file_id, res->svg, res->svg_bytes, meta_text,
                                  c->o.result_ttl_ms, &sr, err);
    free(meta_text);
    json_t *ans = NULL;
    if (rc == MD_OK) {
        json_object_del(meta, "converter");
        json_object_del(meta, "filename");
        ans = json_pack("{s:b, s:s%, s:s}", "success", 1, "svg", res->svg, res->svg_bytes,
                        "result_id", sr.result_id);
        if (ans == NULL || json_object_update(ans, meta) != 0)
            rc = MD_E_NOMEM;
    }
    *answer = rc == MD_OK ? json_dumps(ans, API_JSON_FLAGS) : NULL;
    json_decref(ans);
    json_decref(meta);
    *expires = rc == MD_OK ? sr.expires_ms : 0;
    return rc == MD_OK && *answer == NULL ? MD_E_NOMEM : rc;
}

int api__convert_handler(http_req *req, void *ctx)
{
    api_convert *c = ctx;
    convert_req r;
    store_upload up;
    memset(&r, 0, sizeof r);
    int rc = parse_request(req, &r);
    if (rc == MD_OK)
        rc = api__upload_lookup(c, r.file_id, &up, http_req_err(req));
    if (rc == MD_OK)
        rc = make_key(&up, &r);
    if (rc != MD_OK)
        return rc;
    char *answer = NULL;
    size_t len = 0;
    if (cv_cache_get(c->cache, r.key, &answer, &len)) {
        http_reply_header(req, "X-Cache", "HIT");
        return http_reply_take(req, 200, "application/json", answer, len);
    }
    vec_result *res = NULL;
    double secs = 0;
    int64_t expires = 0;
    rc = run(c, req, &up, &r, &res, &secs);
    if (rc == MD_OK)
        rc = finish(c, req, res, secs, &r, &up, &answer, &expires);
    vec_result_free(res);
    if (rc != MD_OK) {
        atomic_fetch_add(&c->convert_failures, 1);
        return rc;
    }
    atomic_fetch_add(&c->converts[r.converter], 1);
    store_uploads_touch(c->st, up.file_id, NULL); /* a used upload stays alive longer */
    len = strlen(answer);
    cv_cache_put(c->cache, r.key, answer, len, expires);
    http_reply_header(req, "X-Cache", "MISS");
    return http_reply_take(req, 200, "application/json", answer, len);
}
