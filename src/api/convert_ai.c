/* convert_ai.c - the AI conversion API (issue 9 section 4): v1 POST /api/convert-ai,
 * GET /api/ai-health, GET /api/model-status; v2 POST /api/v2/convert-ai, /api/v2/analyze-image,
 * /api/v2/predict-quality, GET /api/v2/model-health, /api/v2/model-info,
 * POST /api/v2/update-models. Field names are the seeds' contract.
 *
 * Each handler parses and validates, makes one pipeline (pl_vectorize_ai, pl_ai_predict) or
 * registry call, and renders. v2 answers share one envelope: {success, data, ai_metadata,
 * performance_metrics, request_id, timestamp}.
 *
 * Invariants:
 *   1. Handlers choose no status codes: failures are md codes; the one answer rendered here,
 *      "no AI model can run" (MD_E_MODEL_UNAVAILABLE), takes its status from the error table and
 *      adds fallback_suggestion naming /api/convert.
 *   2. The SSIM in every answer is the measured one of the returned SVG (actual_quality);
 *      predicted_quality is always labelled as a prediction.
 *   3. v1 conversions go through the upload store and are kept in the result store like
 *      /api/convert; v2 conversions take the image in the request and keep their result too.
 */
#include "api/api_int.h"
#include "api/convert_int.h"
#include "api/multipart.h"

#include "models/models.h"
#include "vectorize/vec.h"

#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct api_ai {
    api_convert *conv; /* borrowed: uploads, results, budget, cache */
    mdl_registry *reg; /* borrowed */
} api_ai;

static const char FALLBACK_SUGGESTION[] =
    "POST /api/convert with a preset (e.g. {\"file_id\": ..., \"preset\": \"quality\"})";

static double r6(double x)
{
    return round(x * 1e6) / 1e6;
}

static pl_ctx make_ctx(api_ai *a, http_req *req)
{
    pl_ctx cx = {.st = a->conv->st,
                 .models = a->reg,
                 .cancel = http_req_cancel(req),
                 .budget = a->conv->budget,
                 .limits = a->conv->o.limits,
                 .upload_max_bytes = a->conv->o.upload_max_bytes,
                 .result_ttl_ms = a->conv->o.result_ttl_ms};
    return cx;
}

/* Invariant 1: 503 with fallback_suggestion; other codes go to the generic error answer. */
static int reply_failure(http_req *req, int rc)
{
    if (rc != MD_E_MODEL_UNAVAILABLE)
        return rc;
    md_err *e = http_req_err(req);
    http_reply_header(req, "Retry-After", "30");
    return http_reply_json(req, md_err_status(rc),
                           json_pack("{s:b, s:{s:s, s:s}, s:s, s:s}", "success", 0, "error", "code",
                                     md_err_name(rc), "message", md_err_message(e),
                                     "fallback_suggestion", FALLBACK_SUGGESTION, "request_id",
                                     http_req_id(req)));
}

static json_t *params_json(const vec_params *p)
{
    md_buf b;
    md_buf_init(&b, 1 << 14);
    json_t *j = vec_params_to_json(p, &b) == MD_OK ? json_loads(b.data, 0, NULL) : NULL;
    md_buf_free(&b);
    return j ? j : json_object();
}

static json_t *versions_json(const pl_ai_out *o)
{
    json_t *v = json_object();
    for (int i = 0; i < PL_AI_MODELS; i++)
        json_object_set_new(v, pl_ai_model_name(i),
                            o->model_versions[i][0] ? json_string(o->model_versions[i])
                                                    : json_null());
    return v;
}

/* fallback_used and fallback_reason (null when no rule stood in) into obj. */
static void add_fallback(json_t *obj, const pl_ai_out *o)
{
    json_object_set_new(obj, "fallback_used", json_boolean(o->fallback_used));
    json_object_set_new(obj, "fallback_reason",
                        o->fallback_used ? json_string(o->fallback_reason) : json_null());
}

static json_t *num_or_null(double x)
{
    return x >= 0 ? json_real(r6(x)) : json_null();
}

static json_t *analysis_json(const pl_ai_out *o, int with_features, int with_recs)
{
    const pl_ai_analysis *an = &o->an;
    json_t *probs = json_object(), *feats = json_object();
    for (int i = 0; i < PL_AI_CLASSES; i++)
        json_object_set_new(probs, pl_ai_logo_type_name(i), json_real(r6(an->probs[i])));
    const char *const *names = vec_feature_names();
    for (int i = 0; i < VEC_N_FEATURES; i++)
        json_object_set_new(feats, names[i], json_real(r6(an->features[i])));
    json_t *j = json_pack("{s:s, s:f, s:o, s:f}", "logo_type", pl_ai_logo_type_name(an->logo_type),
                          "confidence", r6(an->confidence), "class_probabilities", probs,
                          "complexity", r6(an->complexity));
    if (with_features)
        json_object_set_new(j, "features", feats);
    else
        json_decref(feats);
    if (with_recs)
        json_object_set_new(j, "recommendations",
                            json_pack("{s:i, s:s, s:o, s:o, s:o}", "tier", an->recommended_tier,
                                      "reason", an->routing_reason, "parameters",
                                      params_json(&an->guess), "predicted_quality",
                                      num_or_null(an->predicted_quality), "estimated_time_ms",
                                      num_or_null(an->predicted_ms)));
    return j;
}

/* ---- v1 POST /api/convert-ai ---------------------------------------------------------------- */

static int parse_tier(json_t *v, int *tier, md_err *err)
{
    *tier = 0;
    if (!v || (json_is_string(v) && strcmp(json_string_value(v), "auto") == 0))
        return MD_OK;
    if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 3) {
        *tier = (int)json_integer_value(v);
        return MD_OK;
    }
    return md_fail(err, MD_E_INVALID_PARAM, "tier", "tier must be 1, 2, 3 or \"auto\"");
}

static int parse_number(json_t *body, const char *name, double lo, double hi, int lo_open,
                        double *out, md_err *err)
{
    json_t *v = json_object_get(body, name);
    if (!v)
        return MD_OK;
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    if (!(x >= lo && x <= hi) || (lo_open && x == lo))
        return md_fail(err, MD_E_INVALID_PARAM, name, "%s must be a number in %s%g, %g]", name,
                       lo_open ? "(" : "[", lo, hi);
    *out = x;
    return MD_OK;
}

typedef struct v1_req {
    char file_id[STORE_FILE_ID_MAX];
    pl_ai_in in;
    int include_analysis;
} v1_req;

static int parse_v1(http_req *req, json_t *body, v1_req *r)
{
    md_err *err = http_req_err(req);
    json_t *fid = json_object_get(body, "file_id");
    if (!json_is_string(fid) || json_string_length(fid) == 0)
        return md_fail(err, MD_E_MISSING_FIELD, "file_id",
                       "file_id (the id POST /api/upload answered) is required");
    if (json_string_length(fid) >= sizeof r->file_id)
        return md_fail(err, MD_E_FILE_NOT_FOUND, "file_id", "no such file");
    snprintf(r->file_id, sizeof r->file_id, "%s", json_string_value(fid));
    int rc = parse_tier(json_object_get(body, "tier"), &r->in.tier, err);
    if (rc == MD_OK)
        rc = parse_number(body, "target_quality", 0, 1, 0, &r->in.target_quality, err);
    if (rc == MD_OK)
        rc = parse_number(body, "time_budget", 0, 600, 1, &r->in.time_budget_s, err);
    double max_bytes = 0;
    if (rc == MD_OK)
        rc = parse_number(body, "max_svg_bytes", 0, 1e9, 1, &max_bytes, err);
    r->in.max_svg_bytes = (size_t)max_bytes;
    json_t *ia = json_object_get(body, "include_analysis");
    if (rc == MD_OK && ia && !json_is_boolean(ia))
        rc = md_fail(err, MD_E_INVALID_PARAM, "include_analysis", "must be true or false");
    r->include_analysis = json_is_true(ia);
    return rc;
}

/* Where the time went, in stage order (the page draws them as bars). */
static json_t *stage_times(const pl_ai_out *o)
{
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "read", r6(o->timing.read_ms), "decode",
                     r6(o->timing.decode_ms), "features", r6(o->timing.features_ms),
                     "classification", r6(o->timing.classify_ms), "routing",
                     r6(o->timing.routing_ms), "prediction", r6(o->timing.prediction_ms),
                     "conversions", r6(o->timing.optimize_ms));
}

static json_t *v1_answer(const pl_ai_out *o, int include_analysis)
{
    const vec_result *res = o->vec.res;
    json_t *routing = json_pack("{s:i, s:s, s:f}", "selected_tier", o->selected_tier, "reason",
                                o->an.routing_reason, "routing_time_ms", r6(o->timing.routing_ms));
    json_t *meta = json_pack(
        "{s:i, s:o, s:s, s:f, s:o, s:f, s:o, s:s, s:i, s:o, s:o, s:f}", "tier_used", o->tier_used,
        "routing", routing, "logo_type", pl_ai_logo_type_name(o->an.logo_type), "confidence",
        r6(o->an.confidence), "predicted_quality", num_or_null(o->predicted_quality),
        "actual_quality", r6(res->ssim.rgb), "model_versions", versions_json(o),
        "optimization_method", o->method, "conversions", o->conversions, "size_budget",
        o->size_budget ? json_integer((json_int_t)o->size_budget) : json_null(), "default_ssim",
        num_or_null(o->default_ssim), "time_budget", r6(o->time_budget_s));
    json_t *j =
        json_pack("{s:b, s:s%, s:f, s:f, s:I, s:I, s:o, s:s, s:o}", "success", 1, "svg", res->svg,
                  res->svg_bytes, "ssim", r6(res->ssim.rgb), "processing_time",
                  r6(o->timing.total_ms / 1e3), "svg_bytes", (json_int_t)res->svg_bytes,
                  "path_count", (json_int_t)res->path_count, "parameters",
                  params_json(&res->params), "result_id", o->vec.result_id, "ai_metadata", meta);
    add_fallback(meta, o);
    json_object_set_new(meta, "stage_times_ms", stage_times(o));
    if (include_analysis)
        json_object_set_new(j, "analysis", analysis_json(o, 1, 1));
    return j;
}

/* The request's JSON body (*body new); an empty one is MD_E_MISSING_FIELD naming field, the
 * first one the route requires. */
static int json_body(http_req *req, const char *field, json_t **body)
{
    size_t len = 0;
    *body = NULL;
    if (!http_req_body(req, &len) || len == 0)
        return md_fail(http_req_err(req), MD_E_MISSING_FIELD, field,
                       "the request needs a JSON body with %s", field);
    return http_req_json(req, body);
}

static int convert_ai_v1(http_req *req, void *ctx)
{
    api_ai *a = ctx;
    md_err *err = http_req_err(req);
    json_t *body = NULL;
    int rc = json_body(req, "file_id", &body);
    if (rc != MD_OK)
        return rc;
    v1_req r;
    memset(&r, 0, sizeof r);
    rc = parse_v1(req, body, &r);
    json_decref(body);
    store_upload up;
    if (rc == MD_OK)
        rc = api__upload_lookup(a->conv, r.file_id, &up, err);
    if (rc != MD_OK)
        return rc;
    r.in.file_id = up.file_id;
    r.in.upload = &up;
    pl_ctx cx = make_ctx(a, req);
    pl_ai_out o;
    rc = pl_vectorize_ai(&cx, &r.in, &o, err);
    json_t *ans = rc == MD_OK ? v1_answer(&o, r.include_analysis) : NULL;
    pl_ai_out_free(&o);
    if (rc != MD_OK)
        return reply_failure(req, rc);
    return http_reply_json(req, 200, ans);
}

/* ---- v1 GET /api/ai-health, GET /api/model-status ----------------------------------------- */

static const char *const COMPONENT[PL_AI_MODELS] = {"classifier", "quality_predictor",
                                                    "parameter_model"};

static void now_iso(char out[32])
{
    api__iso_time(md_wall_ms(), out);
}

/* Whether each model runs with our features, its version, and the overall state: healthy (all
 * three), degraded (rules stand in for some), unhealthy (none). */
typedef struct ai_state {
    int ok[PL_AI_MODELS], n_ok;
    char reason[PL_AI_MODELS][96], version[PL_AI_MODELS][32];
    const char *overall;
} ai_state;

static void ai_state_get(mdl_registry *reg, ai_state *st)
{
    pl_ctx cx = {.models = reg};
    pl_ai_models_check(&cx, st->ok, st->reason, st->version);
    st->n_ok = st->ok[0] + st->ok[1] + st->ok[2];
    st->overall = st->n_ok == PL_AI_MODELS ? "healthy" : st->n_ok ? "degraded" : "unhealthy";
}

/* A model's health entry: {status, version, reason}. */
static json_t *model_entry(const ai_state *st, int i)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "status", st->ok[i] ? "healthy" : "unavailable",
                     "model", pl_ai_model_name(i), "version", st->version[i], "reason",
                     st->reason[i]);
}

static int ai_health(http_req *req, void *ctx)
{
    api_ai *a = ctx;
    ai_state st;
    char ts[32];
    ai_state_get(a->reg, &st);
    json_t *comp = json_object();
    json_object_set_new(comp, "feature_extractor",
                        json_pack("{s:s, s:i}", "status", "healthy", "features", VEC_N_FEATURES));
    for (int i = 0; i < PL_AI_MODELS; i++)
        json_object_set_new(comp, COMPONENT[i], model_entry(&st, i));
    json_object_set_new(comp, "router",
                        json_pack("{s:s, s:s}", "status", st.n_ok ? "healthy" : "unavailable",
                                  "mode", st.ok[1] ? "model" : "rules"));
    json_object_set_new(comp, "tracer",
                        json_pack("{s:s, s:s}", "status", "healthy", "version", MODELD_VERSION));
    now_iso(ts);
    json_t *j = json_pack("{s:s, s:o, s:s}", "overall_status", st.overall, "components", comp,
                          "timestamp", ts);
    return http_reply_json(req, st.n_ok ? 200 : md_err_status(MD_E_UNAVAILABLE), j);
}

static double rss_mb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    if (f)
        fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

/* The serving version's memory_bytes in an mdl_describe object; 0 when unknown. */
static double model_bytes(const json_t *d)
{
    const char *v = json_string_value(json_object_get(d, "active_version"));
    json_t *st = v ? json_object_get(json_object_get(d, "stats"), v) : NULL;
    return json_number_value(json_object_get(st, "memory_bytes"));
}

static int model_status(http_req *req, void *ctx)
{
    api_ai *a = ctx;
    json_t *models = json_object();
    double total = 0;
    int available = 0;
    for (int i = 0; i < PL_AI_MODELS; i++) {
        json_t *d = NULL;
        md_err e = {0};
        if (mdl_describe(a->reg, pl_ai_model_name(i), NULL, &d, &e) != MD_OK) {
            json_object_set_new(models, pl_ai_model_name(i),
                                json_pack("{s:b, s:s}", "loaded", 0, "state", "NOT_INSTALLED"));
            continue;
        }
        const char *state = json_string_value(json_object_get(d, "state"));
        int loaded = state && strcmp(state, "ACTIVE") == 0;
        double mb = model_bytes(d) / (1024.0 * 1024.0);
        available += loaded;
        total += mb;
        json_object_set_new(models, pl_ai_model_name(i),
                            json_pack("{s:b, s:s, s:O, s:f}", "loaded", loaded, "state",
                                      state ? state : "UNKNOWN", "version",
                                      json_object_get(d, "active_version"), "memory_mb", r6(mb)));
        json_decref(d);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    json_t *mem = json_pack("{s:f, s:f, s:f}", "current_memory_mb", r6(rss_mb()), "peak_memory_mb",
                            r6((double)ru.ru_maxrss / 1024.0), "models_mb", r6(total));
    return http_reply_json(req, 200,
                           json_pack("{s:b, s:i, s:o, s:o}", "success", 1, "models_available",
                                     available, "models", models, "memory_report", mem));
}

/* ---- v2: the envelope and the multipart image --------------------------------------------- */

static json_t *envelope(http_req *req, json_t *data, json_t *meta, json_t *perf)
{
    char ts[32];
    now_iso(ts);
    return json_pack("{s:b, s:o, s:o, s:o, s:s, s:s}", "success", 1, "data", data, "ai_metadata",
                     meta ? meta : json_object(), "performance_metrics",
                     perf ? perf : json_object(), "request_id", http_req_id(req), "timestamp", ts);
}

static int image_part(http_req *req, const void **data, size_t *len)
{
    md_err *err = http_req_err(req);
    const char *ct = http_req_header(req, "Content-Type");
    const void *body = http_req_body(req, len);
    char boundary[MP_BOUNDARY_MAX + 1];
    mp_part part;
    if (!body || *len == 0)
        return md_fail(err, MD_E_MISSING_FIELD, "file",
                       "send the image as multipart/form-data field \"file\"");
    int rc = mp_boundary(ct, boundary, sizeof boundary, err);
    if (rc == MD_OK)
        rc = mp_find(body, *len, boundary, "file", &part, err);
    if (rc == MD_OK && part.len == 0)
        rc = md_fail(err, MD_E_MISSING_FIELD, "file", "the file is empty");
    *data = part.data;
    *len = part.len;
    return rc;
}

/* A boolean query parameter: absent -> def; "true"/"1" or "false"/"0"; else 400 naming it. */
static int query_bool(http_req *req, const char *name, int def, int *out)
{
    const char *v = http_req_query(req, name);
    *out = def;
    if (!v)
        return MD_OK;
    if (!strcmp(v, "true") || !strcmp(v, "1"))
        *out = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "0"))
        *out = 0;
    else
        return md_fail(http_req_err(req), MD_E_INVALID_PARAM, name, "%s must be true or false",
                       name);
    return MD_OK;
}

static int query_quality(http_req *req, const char *name, double def, double *out)
{
    const char *v = http_req_query(req, name);
    char *end = NULL;
    *out = v ? strtod(v, &end) : def;
    if (v && (end == v || *end || !(*out >= 0 && *out <= 1)))
        return md_fail(http_req_err(req), MD_E_INVALID_PARAM, name, "%s must be a number in [0, 1]",
                       name);
    return MD_OK;
}

static json_t *perf_json(const pl_ai_out *o)
{
    return json_pack("{s:f, s:f, s:f, s:f, s:f}", "feature_extraction_ms",
                     r6(o->timing.features_ms), "classification_ms", r6(o->timing.classify_ms),
                     "routing_ms", r6(o->timing.routing_ms), "optimization_ms",
                     r6(o->timing.optimize_ms), "prediction_ms", r6(o->timing.prediction_ms));
}

/* ---- v2 POST /api/v2/convert-ai ------------------------------------------------------------ */

static int parse_mode(http_req *req, int *tier)
{
    const char *m = http_req_query(req, "processing_mode");
    static const char *const modes[] = {"fast", "balanced", "quality"};
    *tier = 0;
    for (int i = 0; m && i < 3; i++)
        if (strcmp(m, modes[i]) == 0)
            *tier = i + 1;
    if (m && !*tier)
        return md_fail(http_req_err(req), MD_E_INVALID_PARAM, "processing_mode",
                       "processing_mode must be fast, balanced or quality");
    return MD_OK;
}

static json_t *v2_convert_answer(http_req *req, const pl_ai_out *o, int with_analysis)
{
    const vec_result *res = o->vec.res;
    static const char *const mode_names[] = {"auto", "fast", "balanced", "quality"};
    json_t *data = json_pack("{s:s%, s:f, s:I, s:I, s:o, s:s, s:f, s:s}", "svg_content", res->svg,
                             res->svg_bytes, "ssim", r6(res->ssim.rgb), "svg_bytes",
                             (json_int_t)res->svg_bytes, "path_count", (json_int_t)res->path_count,
                             "parameters", params_json(&res->params), "result_id", o->vec.result_id,
                             "processing_time", r6(o->timing.total_ms / 1e3), "processing_mode",
                             mode_names[o->tier_used]);
    if (with_analysis)
        json_object_set_new(data, "analysis", analysis_json(o, 1, 1));
    json_t *meta =
        json_pack("{s:s, s:f, s:i, s:o, s:f, s:s, s:f, s:o, s:s}", "logo_type",
                  pl_ai_logo_type_name(o->an.logo_type), "confidence", r6(o->an.confidence),
                  "selected_tier", o->selected_tier, "predicted_quality",
                  num_or_null(o->predicted_quality), "actual_quality", r6(res->ssim.rgb),
                  "optimization_method", o->method, "processing_time", r6(o->timing.total_ms / 1e3),
                  "model_versions", versions_json(o), "routing_reason", o->an.routing_reason);
    add_fallback(meta, o);
    json_t *env = envelope(req, data, meta, perf_json(o));
    json_object_set_new(env, "svg_content", json_stringn(res->svg, res->svg_bytes));
    return env;
}

/* Cache key: the image bytes, the mode, the target and the serving model versions. */
static void cache_key(const void *img, size_t n, int tier, double target, int analysis, api_ai *a,
                      char key[CV_KEY_LEN + 1])
{
    ai_state m;
    char head[160];
    ai_state_get(a->reg, &m);
    crypto_hash_sha256_state st;
    unsigned char h[crypto_hash_sha256_BYTES];
    snprintf(head, sizeof head, "ai-v2\n%d\n%.6f\n%d\n%s\n%s\n%s\n", tier, target, analysis,
             m.version[0], m.version[1], m.version[2]);
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)head, strlen(head));
    crypto_hash_sha256_update(&st, img, n);
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(key, CV_KEY_LEN + 1, h, sizeof h);
}

static int convert_ai_v2(http_req *req, void *ctx)
{
    api_ai *a = ctx;
    md_err *err = http_req_err(req);
    pl_ai_in in = {0};
    int with_analysis = 0, caching = 0;
    int rc = parse_mode(req, &in.tier);
    if (rc == MD_OK)
        rc = query_quality(req, "quality_target", 0.85, &in.target_quality);
    if (rc == MD_OK)
        rc = query_bool(req, "return_analysis", 0, &with_analysis);
    if (rc == MD_OK)
        rc = query_bool(req, "enable_caching", 1, &caching);
    if (rc == MD_OK)
        rc = image_part(req, &in.image, &in.image_len);
    if (rc != MD_OK)
        return rc;
    char key[CV_KEY_LEN + 1], *cached = NULL;
    size_t clen = 0;
    if (caching) {
        cache_key(in.image, in.image_len, in.tier, in.target_quality, with_analysis, a, key);
        if (cv_cache_get(a->conv->cache, key, &cached, &clen)) {
            http_reply_header(req, "X-Cache", "HIT");
            return http_reply_take(req, 200, "application/json", cached, clen);
        }
    }
    pl_ctx cx = make_ctx(a, req);
    pl_ai_out o;
    rc = pl_vectorize_ai(&cx, &in, &o, err);
    json_t *ans = rc == MD_OK ? v2_convert_answer(req, &o, with_analysis) : NULL;
    int64_t expires = o.vec.result_expires_ms;
    pl_ai_out_free(&o);
    if (rc != MD_OK)
        return reply_failure(req, rc);
    char *text = json_dumps(ans, API_JSON_FLAGS);
    json_decref(ans);
    if (!text)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (caching)
        cv_cache_put(a->conv->cache, key, text, strlen(text), expires);
    http_reply_header(req, "X-Cache", caching ? "MISS" : "OFF");
    return http_reply_take(req, 200, "application/json", text, strlen(text));
}

/* ---- v2 POST /api/v2/analyze-image --------------------------------------------------------- */

static int analyze_image(http_req *req, void *ctx)
{
    api_ai *a = ctx;
    pl_ai_in in = {.analyse_only = 1};
    int feats = 1, recs = 1, rc = query_bool(req, "include_features", 1, &feats);
    if (rc == MD_OK)
        rc = query_bool(req, "include_recommendations", 1, &recs);
    const char *depth = http_req_query(req, "analysis_depth");
    if (rc == MD_OK && depth && strcmp(depth, "quick") && strcmp(depth, "standard") &&
        strcmp(depth, "detailed"))
        rc = md_fail(http_req_err(req), MD_E_INVALID_PARAM, "analysis_depth",
                     "analysis_depth must be quick, standard or detailed");
    if (rc == MD_OK)
        rc = image_part(req, &in.image, &in.image_len);
    if (rc != MD_OK)
        return rc;
    /* The depth is the features' sampling grid: standard is the models' own. */
    in.analysis_side = !depth || strcmp(depth, "standard") == 0 ? VEC_FEATURES_SIDE
                       : strcmp(depth, "quick") == 0            ? 128
                                                                : 512;
    pl_ctx cx = make_ctx(a, req);
    cx.st = NULL; /* nothing is converted or kept */
    pl_ai_out o;
    rc = pl_vectorize_ai(&cx, &in, &o, http_req_err(req));
    if (rc != MD_OK)
        return reply_failure(req, rc);
    json_t *data = analysis_json(&o, feats, recs);
    json_object_set_new(data, "analysis_depth", json_string(depth ? depth : "standard"));
    json_object_set_new(data, "sampling_grid", json_integer(in.analysis_side));
    json_t *meta = json_pack("{s:o}", "model_versions", versions_json(&o));
    add_fallback(meta, &o);
    json_t *ans = envelope(req, data, meta, perf_json(&o));
    pl_ai_out_free(&o);
    return http_reply_json(req, 200, ans);
}

/* ---- v2 POST /api/v2/predict-quality ------------------------------------------------------- */

/* Features from an analyze-image result ({"features": {name: value}}) or from {"file_id"}. */
static int predict_features(http_req *req, api_ai *a, json_t *ia, float *f)
{
    md_err *err = http_req_err(req);
    json_t *fid = json_object_get(ia, "file_id"), *fo = json_object_get(ia, "features");
    if (json_is_string(fid)) {
        store_upload up;
        int rc = api__upload_lookup(a->conv, json_string_value(fid), &up, err);
        pl_ctx cx = make_ctx(a, req);
        pl_ai_in in = {.file_id = up.file_id, .upload = &up, .analyse_only = 1};
        pl_ai_out o;
        if (rc == MD_OK)
            rc = pl_vectorize_ai(&cx, &in, &o, err);
        if (rc == MD_OK)
            memcpy(f, o.an.features, sizeof o.an.features);
        if (rc == MD_OK)
            pl_ai_out_free(&o);
        return rc;
    }
    if (!json_is_object(fo))
        return md_fail(
            err, MD_E_MISSING_FIELD, "image_analysis",
            "image_analysis needs \"features\" (an analyze-image result) or \"file_id\"");
    const char *const *names = vec_feature_names();
    for (int i = 0; i < VEC_N_FEATURES; i++) {
        json_t *v = json_object_get(fo, names[i]);
        if (!json_is_number(v))
            return md_fail(err, MD_E_INVALID_PARAM, "image_analysis.features",
                           "image_analysis.features.%s must be a number", names[i]);
        f[i] = (float)json_number_value(v);
    }
    return MD_OK;
}

static int predict_params(http_req *req, json_t *pp, vec_params *p)
{
    md_err *err = http_req_err(req);
    vec_params_preset("default", p, NULL);
    if (pp && !json_is_object(pp))
        return md_fail(err, MD_E_INVALID_PARAM, "proposed_parameters", "must be an object");
    const char *name;
    json_t *v;
    json_object_foreach(pp, name, v)
    {
        char text[64];
        if (json_is_integer(v))
            snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
            snprintf(text, sizeof text, "%.10g", json_real_value(v));
        else if (json_is_string(v))
            snprintf(text, sizeof text, "%s", json_string_value(v));
        else
            return md_fail(err, MD_E_INVALID_PARAM, name, "%.60s must be a number or string", name);
        int rc = vec_params_set(p, name, text, err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

/* One-parameter changes worth predicting: finer colours, smaller speckles, more decimals. */
#define N_SUGGEST 6
static void suggestion_sets(const vec_params *p, vec_params s[N_SUGGEST],
                            const char *what[N_SUGGEST])
{
    for (int i = 0; i < N_SUGGEST; i++)
        s[i] = *p;
    s[0].color_precision = p->color_precision < 8 ? p->color_precision + 1 : 8;
    what[0] = "color_precision";
    s[1].filter_speckle = p->filter_speckle > 2 ? p->filter_speckle - 2 : 0;
    what[1] = "filter_speckle";
    s[2].layer_difference = p->layer_difference / 2;
    what[2] = "layer_difference";
    s[3].path_precision = p->path_precision < 8 ? p->path_precision + 1 : 8;
    what[3] = "path_precision";
    s[4].mode = VEC_SPLINE;
    what[4] = "mode";
    s[5].length_threshold = p->length_threshold > 4.0 ? p->length_threshold - 0.5 : 3.5;
    what[5] = "length_threshold";
}

static json_t *suggestions_json(const vec_params s[N_SUGGEST], const char *what[N_SUGGEST],
                                const double *q, double base)
{
    json_t *arr = json_array();
    for (int i = 0; i < N_SUGGEST; i++) {
        if (!(q[i + 1] > base + 1e-4))
            continue;
        json_t *pj = params_json(&s[i]);
        json_array_append_new(arr, json_pack("{s:s, s:O, s:f, s:f}", "parameter", what[i], "value",
                                             json_object_get(pj, what[i]), "predicted_quality",
                                             r6(q[i + 1]), "gain", r6(q[i + 1] - base)));
        json_decref(pj);
    }
    return arr;
}

/* How sure the predictor is: 1 - its held-out SSIM MAE / 0.1 (clamped), from the metrics its
 * manifest records ("ssim_mae" or "mae"); null when it records none. */
static json_t *predictor_confidence(api_ai *a)
{
    json_t *d = NULL;
    if (mdl_describe(a->reg, "vectorize-quality", NULL, &d, NULL) != MD_OK)
        return json_null();
    json_t *m = json_object_get(json_object_get(d, "manifest"), "metrics");
    json_t *mae = json_object_get(m, "ssim_mae");
    mae = mae ? mae : json_object_get(m, "mae");
    json_t *c = json_is_number(mae)
                    ? json_real(r6(fmax(0, fmin(1, 1 - json_number_value(mae) / 0.1))))
                    : json_null();
    json_decref(d);
    return c;
}

static int predict_quality(http_req *req, void *ctx)
{
    api_ai *a = ctx;
    md_err *err = http_req_err(req);
    double target = 0.85;
    json_t *body = NULL;
    int rc = query_quality(req, "target_quality", 0.85, &target);
    if (rc == MD_OK)
        rc = json_body(req, "image_analysis", &body);
    if (rc != MD_OK)
        return rc;
    float f[VEC_N_FEATURES];
    vec_params p[1 + N_SUGGEST];
    const char *what[N_SUGGEST];
    json_t *ia = json_object_get(body, "image_analysis");
    if (!json_is_object(ia))
        rc = md_fail(err, MD_E_MISSING_FIELD, "image_analysis", "image_analysis is required");
    if (rc == MD_OK)
        rc = predict_features(req, a, ia, f);
    if (rc == MD_OK)
        rc = predict_params(req, json_object_get(body, "proposed_parameters"), &p[0]);
    json_decref(body);
    if (rc != MD_OK)
        return reply_failure(req, rc);
    suggestion_sets(&p[0], p + 1, what);
    double q[1 + N_SUGGEST], bytes[1 + N_SUGGEST], ms[1 + N_SUGGEST];
    char version[32];
    pl_ctx cx = make_ctx(a, req);
    rc = pl_ai_predict(&cx, f, p, 1 + N_SUGGEST, q, bytes, ms, version, err);
    if (rc != MD_OK)
        return reply_failure(req, rc);
    json_t *data = json_pack("{s:f, s:f, s:f, s:b, s:f, s:o}", "predicted_quality", r6(q[0]),
                             "predicted_svg_bytes", r6(bytes[0]), "predicted_time_ms", r6(ms[0]),
                             "meets_target", q[0] >= target, "target_quality", target,
                             "suggestions", suggestions_json(p + 1, what, q, q[0]));
    json_object_set_new(data, "confidence", predictor_confidence(a));
    json_t *meta = json_pack("{s:{s:s}}", "model_versions", "vectorize-quality", version);
    return http_reply_json(req, 200, envelope(req, data, meta, NULL));
}

/* ---- v2 model health, info and updates ------------------------------------------------------ */

static json_t *version_stats(const json_t *d)
{
    const char *v = json_string_value(json_object_get(d, "active_version"));
    return v ? json_object_get(json_object_get(d, "stats"), v) : NULL;
}

static int model_health(http_req *req, void *ctx)
{
    api_ai *a = ctx;
    ai_state st;
    char ts[32];
    ai_state_get(a->reg, &st);
    json_t *ms = json_object(), *perf = json_object(), *alerts = json_array();
    double last = 0;
    for (int i = 0; i < PL_AI_MODELS; i++) {
        const char *name = pl_ai_model_name(i);
        json_object_set_new(ms, name, model_entry(&st, i));
        if (!st.ok[i])
            json_array_append_new(alerts, json_sprintf("%s; rules stand in for it", st.reason[i]));
        json_t *d = NULL;
        if (mdl_describe(a->reg, name, NULL, &d, NULL) != MD_OK)
            continue;
        json_t *st = version_stats(d);
        json_t *lat = json_object_get(st, "latency_seconds");
        json_object_set_new(
            perf, name,
            json_pack("{s:O?, s:O?, s:O?, s:O?}", "requests", json_object_get(st, "requests"),
                      "successes", json_object_get(st, "successes"), "p50_seconds",
                      json_object_get(lat, "p50"), "p99_seconds", json_object_get(lat, "p99")));
        last = fmax(last, json_number_value(json_object_get(st, "last_inference_ms")));
        json_decref(d);
    }
    now_iso(ts);
    char last_iso[32] = "";
    if (last > 0)
        api__iso_time((int64_t)last, last_iso);
    json_t *j = json_pack("{s:s, s:o, s:o, s:s?, s:o, s:s}", "overall_status", st.overall,
                          "model_status", ms, "performance_metrics", perf, "last_update",
                          last > 0 ? last_iso : NULL, "alerts", alerts, "timestamp", ts);
    if (last <= 0)
        json_object_set_new(j, "last_update", json_null());
    return http_reply_json(req, st.n_ok ? 200 : md_err_status(MD_E_UNAVAILABLE), j);
}

static json_t *info_of(const json_t *d, int perf, int history)
{
    json_t *mf = json_object_get(d, "manifest");
    json_t *versions = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(d, "versions"), i, v)
        json_array_append(versions, json_object_get(v, "version"));
    json_t *j = json_pack("{s:O?, s:o, s:O?, s:O?, s:O?, s:O?, s:s}", "version",
                          json_object_get(d, "active_version"), "versions", versions, "format",
                          json_object_get(d, "runtime"), "metrics", json_object_get(mf, "metrics"),
                          "inputs", json_object_get(mf, "inputs"), "outputs",
                          json_object_get(mf, "outputs"), "state",
                          json_string_value(json_object_get(d, "state"))
                              ? json_string_value(json_object_get(d, "state"))
                              : "UNKNOWN");
    if (perf)
        json_object_set(j, "performance", version_stats(d) ? version_stats(d) : json_null());
    if (history)
        json_object_set(j, "history", json_object_get(d, "versions"));
    return j;
}

static int model_info(http_req *req, void *ctx)
{
    api_ai *a = ctx;
    int perf = 0, history = 0;
    int rc = query_bool(req, "include_performance", 0, &perf);
    if (rc == MD_OK)
        rc = query_bool(req, "include_history", 0, &history);
    const char *only = http_req_query(req, "model_name");
    json_t *models = json_object();
    for (int i = 0; rc == MD_OK && i < PL_AI_MODELS; i++) {
        const char *name = pl_ai_model_name(i);
        if (only && *only && strcmp(only, name) != 0)
            continue;
        json_t *d = NULL;
        md_err e = {0};
        if (mdl_describe(a->reg, name, NULL, &d, &e) != MD_OK)
            continue;
        json_object_set_new(models, name, info_of(d, perf, history));
        json_decref(d);
    }
    if (rc == MD_OK && only && *only && json_object_size(models) == 0)
        rc = md_fail(http_req_err(req), MD_E_MODEL_NOT_FOUND, "model_name",
                     "no AI vectorize model called '%.64s'", only);
    if (rc != MD_OK) {
        json_decref(models);
        return rc;
    }
    return http_reply_json(req, 200,
                           envelope(req, json_pack("{s:o}", "models", models), NULL, NULL));
}

static int update_models(http_req *req, void *ctx)
{
    api_ai *a = ctx;
    md_err *err = http_req_err(req);
    int validate = 1, rollback = 1;
    json_t *body = NULL;
    int rc = query_bool(req, "validate_before_switch", 1, &validate);
    if (rc == MD_OK)
        rc = query_bool(req, "enable_rollback", 1, &rollback);
    if (rc == MD_OK)
        rc = json_body(req, "model_name", &body);
    if (rc != MD_OK)
        return rc;
    const char *name = json_string_value(json_object_get(body, "model_name"));
    json_t *jv = json_object_get(body, "version");
    char version[MDL_VERSION_MAX] = "";
    if (json_is_string(jv))
        snprintf(version, sizeof version, "%s", json_string_value(jv));
    else if (json_is_integer(jv))
        snprintf(version, sizeof version, "%lld", (long long)json_integer_value(jv));
    if (!name || !*name)
        rc = md_fail(err, MD_E_MISSING_FIELD, "model_name", "model_name is required");
    else if (!version[0])
        rc = md_fail(err, MD_E_MISSING_FIELD, "version", "version is required");
    json_t *before = NULL;
    if (rc == MD_OK)
        rc = mdl_describe(a->reg, name, NULL, &before, err);
    json_t *prev = before ? json_incref(json_object_get(before, "active_version")) : NULL;
    /* The registry always loads and validates before it publishes, and keeps the previous
     * version as STANDBY for rollback: the two switches only confirm what it does. */
    if (rc == MD_OK)
        rc = mdl_activate(a->reg, name, version, err);
    json_decref(before);
    json_t *now = NULL;
    if (rc == MD_OK)
        rc = mdl_describe(a->reg, name, NULL, &now, err);
    if (rc != MD_OK) {
        json_decref(prev);
        json_decref(body);
        return rc;
    }
    json_t *data = json_pack("{s:s, s:O?, s:o?, s:b, s:b, s:b}", "model_name", name, "version",
                             json_object_get(now, "active_version"), "previous_version", prev,
                             "switched", !json_equal(prev, json_object_get(now, "active_version")),
                             "validated", validate, "rollback_available", rollback);
    json_decref(now);
    http_req_log(req, MD_LOG_INFO, "model %s: version %s activated (v2 update-models)", name,
                 version);
    json_decref(body); /* name is borrowed from it */
    return http_reply_json(req, 200, envelope(req, data, NULL, NULL));
}

/* ---- route descriptors and registration ----------------------------------------------------- */

#define V2_ENV(data)                                                                               \
    "{\"type\":\"object\",\"required\":[\"success\",\"data\",\"request_id\",\"timestamp\"],"       \
    "\"properties\":{\"success\":{\"const\":true},\"data\":" data ","                              \
    "\"ai_metadata\":{\"type\":\"object\"},\"performance_metrics\":{\"type\":\"object\"},"         \
    "\"request_id\":{\"type\":\"string\"},\"timestamp\":{\"type\":\"string\"}}}"
#define OBJ "{\"type\":\"object\"}"
/* The multipart body of the v2 image routes: the image in the part "file". */
#define FILE_BODY                                                                                  \
    "{\"type\":\"object\",\"required\":[\"file\"],\"properties\":{\"file\":"                       \
    "{\"type\":\"string\",\"format\":\"binary\"}}}"
#define Q(name, type, desc)                                                                        \
    {                                                                                              \
        name, type, desc, 0                                                                        \
    }
static const int CONVERT_ERRORS[] = {MD_E_INVALID_JSON,
                                     MD_E_MISSING_FIELD,
                                     MD_E_INVALID_PARAM,
                                     MD_E_FILE_NOT_FOUND,
                                     MD_E_IMAGE_CORRUPT,
                                     MD_E_IMAGE_TOO_LARGE,
                                     MD_E_UNSUPPORTED_FORMAT,
                                     MD_E_MODEL_UNAVAILABLE,
                                     MD_E_OVERLOADED,
                                     MD_E_TIMEOUT,
                                     0};
static const int HEALTH_ERRORS[] = {MD_E_UNAVAILABLE, 0};

static const api__route ROUTES[] = {
    {"POST",
     "/api/convert-ai",
     HTTP_ROLE_WRITE,
     HTTP_HEAVY,
     convert_ai_v1,
     {.summary = "Convert an uploaded image with AI-chosen parameters",
      .description = "Analyses the image, routes it to tier 1 (parameter model, one conversion), "
                     "2 (candidates ranked by the quality model, the best few converted) or 3 "
                     "(a coordinate search with real conversions) and answers the best measured "
                     "SVG within the size budget (max_svg_bytes, else 3x the default preset's "
                     "bytes). 503 with fallback_suggestion when no AI model can run.",
      .tag = "vectorize",
      .request = "{\"type\":\"object\",\"required\":[\"file_id\"],\"properties\":{"
                 "\"file_id\":{\"type\":\"string\"},"
                 "\"tier\":{\"oneOf\":[{\"type\":\"integer\",\"enum\":[1,2,3]},"
                 "{\"type\":\"string\",\"enum\":[\"auto\"]}],\"default\":\"auto\"},"
                 "\"target_quality\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1,"
                 "\"default\":0.85},"
                 "\"time_budget\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":600,"
                 "\"description\":\"seconds; default by tier 0.5 / 1.5 / 5\"},"
                 "\"max_svg_bytes\":{\"type\":\"integer\",\"minimum\":1},"
                 "\"include_analysis\":{\"type\":\"boolean\",\"default\":false}}}",
      .response = "{\"type\":\"object\",\"required\":[\"success\",\"svg\",\"ssim\","
                  "\"processing_time\",\"svg_bytes\",\"path_count\",\"parameters\",\"result_id\","
                  "\"ai_metadata\"],\"properties\":{\"success\":{\"const\":true},"
                  "\"svg\":{\"type\":\"string\"},\"ssim\":{\"type\":\"number\","
                  "\"description\":\"measured\"},\"processing_time\":{\"type\":\"number\"},"
                  "\"svg_bytes\":{\"type\":\"integer\"},\"path_count\":{\"type\":\"integer\"},"
                  "\"parameters\":" OBJ ",\"result_id\":{\"type\":\"string\"},"
                  "\"ai_metadata\":{\"type\":\"object\",\"required\":[\"tier_used\",\"routing\","
                  "\"logo_type\",\"confidence\",\"predicted_quality\",\"actual_quality\","
                  "\"fallback_used\",\"model_versions\"]},\"analysis\":" OBJ "}}",
      .errors = CONVERT_ERRORS}},
    {"GET",
     "/api/ai-health",
     HTTP_ROLE_PUBLIC,
     HTTP_LIGHT,
     ai_health,
     {.summary = "Health of the AI conversion's components",
      .description = "healthy: all three models serve; degraded: rules stand in for some; "
                     "unhealthy (503, same body): none can run.",
      .tag = "vectorize",
      .response = "{\"type\":\"object\",\"required\":[\"overall_status\",\"components\","
                  "\"timestamp\"],\"properties\":{\"overall_status\":{\"type\":\"string\","
                  "\"enum\":[\"healthy\",\"degraded\",\"unhealthy\"]},\"components\":" OBJ ","
                  "\"timestamp\":{\"type\":\"string\",\"format\":\"date-time\"}}}",
      .errors = HEALTH_ERRORS}},
    {"GET",
     "/api/model-status",
     HTTP_ROLE_READ,
     HTTP_HEAVY,
     model_status,
     {.summary = "The AI models' state and the server's memory",
      .tag = "vectorize",
      .response = "{\"type\":\"object\",\"required\":[\"models_available\",\"models\","
                  "\"memory_report\"],\"properties\":{\"models_available\":{\"type\":\"integer\"},"
                  "\"models\":" OBJ ",\"memory_report\":{\"type\":\"object\",\"required\":["
                  "\"current_memory_mb\",\"peak_memory_mb\",\"models_mb\"]}}}"}},
    {"POST",
     "/api/v2/convert-ai",
     HTTP_ROLE_WRITE,
     HTTP_HEAVY,
     convert_ai_v2,
     {.summary = "Convert an image (multipart) with AI-chosen parameters (v2 envelope)",
      .tag = "vectorize",
      .request = FILE_BODY,
      .request_type = "multipart/form-data",
      .response = V2_ENV(OBJ),
      .query = (const http_doc_param[]){Q("quality_target", "number", "0..1, default 0.85"),
                                        Q("processing_mode", "string",
                                          "fast | balanced | quality (tier 1/2/3); absent: routed"),
                                        Q("return_analysis", "boolean", "default false"),
                                        Q("enable_caching", "boolean", "default true"),
                                        {0}},
      .errors = CONVERT_ERRORS}},
    {"POST",
     "/api/v2/analyze-image",
     HTTP_ROLE_WRITE,
     HTTP_HEAVY,
     analyze_image,
     {.summary = "Logo type, features and a recommendation for an image",
      .tag = "vectorize",
      .request = FILE_BODY,
      .request_type = "multipart/form-data",
      .response = V2_ENV(OBJ),
      .query =
          (const http_doc_param[]){Q("include_features", "boolean", "default true"),
                                   Q("include_recommendations", "boolean", "default true"),
                                   Q("analysis_depth", "string",
                                     "quick | standard | detailed: the features' sampling grid "
                                     "(128, 256 = the models' own, 512 px; data.sampling_grid)"),
                                   {0}},
      .errors = CONVERT_ERRORS}},
    {"POST",
     "/api/v2/predict-quality",
     HTTP_ROLE_WRITE,
     HTTP_HEAVY,
     predict_quality,
     {.summary = "Predicted SSIM of a parameter set for an analysed image",
      .tag = "vectorize",
      .request = "{\"type\":\"object\",\"required\":[\"image_analysis\"],\"properties\":{"
                 "\"image_analysis\":{\"type\":\"object\",\"description\":\"an analyze-image "
                 "result (its features) or {file_id}\"},\"proposed_parameters\":" OBJ "}}",
      .response = V2_ENV(OBJ),
      .query = (const http_doc_param[]){Q("target_quality", "number", "0..1, default 0.85"), {0}},
      .errors = CONVERT_ERRORS}},
    {"GET",
     "/api/v2/model-health",
     HTTP_ROLE_PUBLIC,
     HTTP_LIGHT,
     model_health,
     {.summary = "Health of each AI model",
      .tag = "vectorize",
      .response = "{\"type\":\"object\",\"required\":[\"overall_status\",\"model_status\","
                  "\"performance_metrics\",\"last_update\",\"alerts\"]}",
      .errors = HEALTH_ERRORS}},
    {"GET",
     "/api/v2/model-info",
     HTTP_ROLE_READ,
     HTTP_HEAVY,
     model_info,
     {.summary = "Versions, metrics and tensors of the AI models",
      .tag = "vectorize",
      .response = V2_ENV("{\"type\":\"object\",\"required\":[\"models\"]}"),
      .query = (const http_doc_param[]){Q("model_name", "string", "only this model"),
                                        Q("include_performance", "boolean", "default false"),
                                        Q("include_history", "boolean", "default false"),
                                        {0}},
      .errors = (const int[]){MD_E_MODEL_NOT_FOUND, MD_E_INVALID_PARAM, 0}}},
    {"POST",
     "/api/v2/update-models",
     HTTP_ROLE_ADMIN,
     HTTP_HEAVY,
     update_models,
     {.summary = "Hot-swap an AI model to a version (validated first)",
      .tag = "vectorize",
      .request = "{\"type\":\"object\",\"required\":[\"model_name\",\"version\"],\"properties\":"
                 "{\"model_name\":{\"type\":\"string\"},\"version\":{\"type\":[\"string\","
                 "\"integer\"]}}}",
      .response = V2_ENV(OBJ),
      .query = (const http_doc_param[]){Q("validate_before_switch", "boolean", "default true"),
                                        Q("enable_rollback", "boolean", "default true"),
                                        {0}},
      .errors = (const int[]){MD_E_MODEL_NOT_FOUND, MD_E_MODEL_INVALID, MD_E_MISSING_FIELD,
                              MD_E_INVALID_JSON, 0}}},
};

int api_convert_ai_register(http_server *srv, api_convert *c, mdl_registry *reg, md_err *err)
{
    api_ai *a = calloc(1, sizeof *a);
    if (!a)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    a->conv = c;
    a->reg = reg;
    c->ai = a;
    http_route *added[sizeof ROUTES / sizeof ROUTES[0]];
    int rc = api__add_routes(srv, ROUTES, sizeof ROUTES / sizeof ROUTES[0], 0, a, added, err);
    for (size_t i = 0; rc == MD_OK && i < sizeof ROUTES / sizeof ROUTES[0]; i++)
        http_route_body_limit(added[i],
                              ROUTES[i].fn == convert_ai_v2 || ROUTES[i].fn == analyze_image
                                  ? c->o.upload_max_bytes + (64u << 10)
                                  : 1u << 20);
    return rc;
}
