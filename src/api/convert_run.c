/* convert_run.c - POST /api/convert: parse and validate the request, answer from the cache or
 * run the conversion (pl_vectorize, on the compute pool), answer.
 *
 *   {"file_id", "converter", "preset"?, <VTracer-named parameters>...}
 *     -> parameters = preset (default "default") + the named overrides, range-checked by
 *        vec_params_set (400 naming the parameter); values are JSON numbers or strings holding
 *        plain decimals (vec_params_set), never "0x10", "0x1p3", " 3" or true (booleans are
 *        only for the on/off switches gradients, composite, svgz);
 *     -> upload lookup (404 for an unknown or expired file_id);
 *     -> cache key = SHA-256(image content hash, converter, parameters as JSON): HIT answers the
 *        stored answer; MISS runs pl_vectorize (read, admission by cost, decode, the converter's
 *        choice, trace, result stored: the same call as `modeld vectorize`) with the request's
 *        cancel token, then caches the answer.
 *
 * The answer cache stays here, not in src/pipelines: what it keeps is the HTTP answer text
 * (its JSON shape, the X-Cache header), and a worker or the CLI has no use for it. The pipeline
 * caches nothing; it reads, converts and stores.
 *
 * Invariants:
 *   1. The cache key covers everything that changes the SVG: the image bytes (by hash, so the
 *      same image uploaded twice shares its entry), the converter and every parameter.
 *   2. A cached answer names a stored result that is still alive (the cache TTL is bounded by
 *      the result's expiry).
 */
#include "api/convert_int.h"

#include "pipelines/pipelines.h"
#include "vectorize/vec.h"

#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct convert_req {
    char file_id[STORE_FILE_ID_MAX];
    pl_converter converter;
    vec_params p;
    char key[CV_KEY_LEN + 1];
} convert_req;

/* ---- parsing ------------------------------------------------------------------------------ */

static int parse_converter(json_t *body, convert_req *r, md_err *err)
{
    json_t *v = json_object_get(body, "converter");
    r->converter = PL_VTRACER;
    if (v == NULL)
        return MD_OK;
    return pl_converter_parse(json_is_string(v) ? json_string_value(v) : NULL, &r->converter, err);
}

/* The on/off parameters (0/1 in vec_params), which also take JSON true/false. */
static int switch_param(const char *name)
{
    return !strcmp(name, "gradients") || !strcmp(name, "composite") || !strcmp(name, "svgz");
}

/* A JSON parameter value as the text vec_params_set parses: a JSON number, a string (which
 * vec_params_set reads as a word, a colour, or a plain decimal: "0x10", " 3" and "1e2" are
 * refused there) or, for the on/off switches only, true/false. Anything else (true for a number,
 * null, objects, arrays) is refused here, naming the field. */
static int param_text(const char *name, json_t *v, char *buf, size_t cap, md_err *err)
{
    if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%.17g", json_real_value(v));
    else if (json_is_string(v))
        snprintf(buf, cap, "%s", json_string_value(v));
    else if (json_is_boolean(v) && switch_param(name))
        snprintf(buf, cap, "%d", json_is_true(v) ? 1 : 0);
    else
        return md_fail(err, MD_E_INVALID_PARAM, name, "%.60s must be a JSON number%s, got %s",
                       name, switch_param(name) ? " or a boolean" : " or a string",
                       json_is_boolean(v) ? "a boolean"
                       : json_is_null(v)  ? "null"
                                          : "an object or array");
    return MD_OK;
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
        rc = param_text(name, v, text, sizeof text, err);
        if (rc == MD_OK)
            rc = vec_params_set(&r->p, name, text, err);
        colormode_given |= strcmp(name, "colormode") == 0;
    }
    if (rc == MD_OK && r->p.svgz)
        return md_fail(err, MD_E_INVALID_PARAM, "svgz",
                       "svgz is not available in the JSON API: "
                       "fetch GET /api/results/{id}.svg and compress it");
    if (rc == MD_OK && colormode_given && r->converter == PL_POTRACE &&
        r->p.colormode != VEC_BINARY)
        return md_fail(err, MD_E_INVALID_PARAM, "colormode",
                       "the potrace converter is black and "
                       "white only; use converter vtracer for colour");
    if (rc == MD_OK && colormode_given && r->converter == PL_SMART)
        return md_fail(err, MD_E_INVALID_PARAM, "colormode",
                       "the smart converter chooses colormode "
                       "itself; use converter vtracer to set it");
    if (r->converter == PL_POTRACE)
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
    int rc = md_buf_printf(&b, "%s\n%s\n", up->sha256, pl_converter_name(r->converter));
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

/* ---- the work: one pipeline call, then the answer ------------------------------------------ */

static double round6(double x)
{
    return round(x * 1e6) / 1e6;
}

/* The answer text (new, free()): success, svg, result_id, then the numbers and parameters the
 * result was stored with. */
static int answer_text(const pl_vec_out *out, char **answer)
{
    const vec_result *res = out->res;
    md_buf b;
    md_buf_init(&b, 1 << 16);
    json_t *params =
        vec_params_to_json(&res->params, &b) == MD_OK ? json_loads(b.data, 0, NULL) : NULL;
    md_buf_free(&b);
    json_t *ans = params ? json_pack("{s:b, s:s%, s:s, s:f, s:f, s:I, s:I, s:o}", "success", 1,
                                     "svg", res->svg, res->svg_bytes, "result_id", out->result_id,
                                     "ssim", round6(res->ssim.rgb), "processing_time",
                                     round6(out->timing.total_ms / 1e3), "svg_bytes",
                                     (json_int_t)res->svg_bytes, "path_count",
                                     (json_int_t)res->path_count, "parameters", params)
                         : NULL;
    *answer = ans ? json_dumps(ans, API_JSON_FLAGS) : NULL;
    json_decref(ans);
    return *answer ? MD_OK : MD_E_NOMEM;
}

static int run(api_convert *c, http_req *req, const store_upload *up, const convert_req *r,
               pl_vec_out *out)
{
    pl_ctx cx = {.st = c->st,
                 .cancel = http_req_cancel(req),
                 .budget = c->budget,
                 .limits = c->o.limits,
                 .upload_max_bytes = c->o.upload_max_bytes,
                 .result_ttl_ms = c->o.result_ttl_ms,
                 .trace = http_req_trace(req)};
    pl_vec_in in = {.file_id = up->file_id,
                    .upload = up,
                    .converter = r->converter,
                    .params = r->p,
                    .measure_quality = 1};
    return pl_vectorize(&cx, &in, out, http_req_err(req));
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
    pl_vec_out out;
    rc = run(c, req, &up, &r, &out);
    if (rc == MD_OK)
        rc = answer_text(&out, &answer);
    int64_t expires = out.result_expires_ms;
    pl_vec_out_free(&out);
    if (rc != MD_OK) {
        atomic_fetch_add(&c->convert_failures, 1);
        return rc;
    }
    atomic_fetch_add(&c->converts[r.converter], 1);
    len = strlen(answer);
    cv_cache_put(c->cache, r.key, answer, len, expires);
    http_reply_header(req, "X-Cache", "MISS");
    return http_reply_take(req, 200, "application/json", answer, len);
}
