/* oip.c - the Open Inference Protocol routes (see oip.h): parse -> registry call -> render.
 * The tensor codec is oip_codec.c; this file only moves between HTTP and the registry.
 *
 * Invariants:
 *   1. An infer request holds one registry reference (mdl_acquire) from before its body is
 *      decoded until its answer is rendered, and releases it on every path; the answer's
 *      model_version is the version that reference points to, so a swap or canary change
 *      in between can never mislabel an answer.
 *   2. Handlers never choose statuses: errors are md codes, rendered by src/http in the OIP
 *      form because every route here carries HTTP_ERR_OIP.
 *   3. Inline files of a repository load are decoded into the request arena and handed to
 *      mdl_install, which writes, validates and publishes them or leaves everything as it was.
 */
#include "api/oip.h"

#include "api/api_int.h"
#include "api/oip_codec.h"
#include "base/clock.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define OIP_ROUTE_FLAGS (HTTP_ERR_OIP)
#define OIP_LOAD_BODY_MAX (512u << 20) /* inline model files arrive base64'd in the JSON body */
#define OIP_MAX_FILES 64
/* An inference runs on the I/O thread (http_route_inline_if) when its request is small and its
 * model version's recorded runs are quick: a pool hand-off costs more than such work. The two
 * bounds keep the I/O thread's turn well under a millisecond (parsing 16 KB of JSON ~ 30 us). */
#define OIP_INLINE_BODY_MAX (16u << 10)
#define OIP_INLINE_RUN_NS 100000u

static const char *const EXTENSIONS[] = {"binary_tensor_data", "statistics", "model_repository", NULL};

/* ---- server-level routes ---- */

static int server_meta(http_req *req, void *ctx)
{
    (void)ctx;
    json_t *ext = json_array();
    for (size_t i = 0; EXTENSIONS[i]; i++)
        json_array_append_new(ext, json_string(EXTENSIONS[i]));
    return http_reply_json(req, 200, json_pack("{s:s, s:s, s:o}", "name", "modeld", "version", MODELD_VERSION,
                                               "extensions", ext));
}

static int health_live(http_req *req, void *ctx)
{
    (void)ctx;
    return http_reply_empty(req, 200);
}

/* The protocol's health answers are booleans: 200 is true and "a 4xx status code indicates
 * false" (KServe V2, Health), hence NOT_READY (400) rather than the 503 of /api/ready. */
static int health_ready(http_req *req, void *ctx)
{
    char missing[MDL_NAME_MAX] = "";
    if (!mdl_ready(ctx, missing))
        return md_fail(http_req_err(req), MD_E_NOT_READY, NULL, "required model '%s' is not active", missing);
    return http_reply_empty(req, 200);
}

/* ---- model metadata and readiness ---- */

/* The version strings of a described model that may be asked for (FAILED ones never serve),
 * in the registry's order. New reference. */
static json_t *version_names(json_t *model)
{
    json_t *out = json_array(), *v;
    size_t i;
    json_array_foreach(json_object_get(model, "versions"), i, v) {
        json_t *name = json_object_get(v, "version");
        const char *state = json_string_value(json_object_get(v, "state"));
        if (json_is_string(name) && !(state && strcmp(state, "FAILED") == 0))
            json_array_append(out, name);
    }
    return out;
}

/* inputs/outputs of a manifest document as OIP tensor metadata. New reference. */
static json_t *io_meta(json_t *manifest, const char *key)
{
    json_t *out = json_array(), *io;
    size_t i;
    json_array_foreach(json_object_get(manifest, key), i, io) {
        json_t *m = json_pack("{s:O?, s:O?, s:O?}", "name", json_object_get(io, "name"), "datatype",
                              json_object_get(io, "datatype"), "shape", json_object_get(io, "shape"));
        if (m)
            json_array_append_new(out, m);
    }
    return out;
}

static int model_meta(http_req *req, void *ctx)
{
    const char *name = http_req_param(req, "m"), *version = http_req_param(req, "v");
    json_t *d = NULL;
    int rc = mdl_describe(ctx, name, version, &d, http_req_err(req));
    if (rc != MD_OK)
        return rc;
    json_t *mf = json_object_get(d, "manifest"), *runtime = json_object_get(d, "runtime");
    json_t *versions = version ? json_pack("[s]", version) : version_names(d);
    json_t *body = json_pack("{s:s, s:o, s:s, s:o, s:o}", "name", name, "versions", versions, "platform",
                             json_is_string(runtime) ? json_string_value(runtime) : "", "inputs", io_meta(mf, "inputs"),
                             "outputs", io_meta(mf, "outputs"));
    json_decref(d);
    return http_reply_json(req, 200, body);
}

static int model_ready(http_req *req, void *ctx)
{
    mdl_version *v = NULL;
    md_err *err = http_req_err(req);
    int rc = mdl_acquire(ctx, http_req_param(req, "m"), http_req_param(req, "v"), &v, err);
    if (rc == MD_E_MODEL_UNAVAILABLE)
        return md_fail(err, MD_E_NOT_READY, NULL, "%s", md_err_message(err)); /* false, as health */
    if (rc != MD_OK)
        return rc;
    mdl_release(v);
    return http_reply_empty(req, 200);
}

/* ---- inference ---- */

/* Decode, run and encode with the reference v held; the caller releases v. */
static int infer_with(http_req *req, mdl_version *v)
{
    md_err *err = http_req_err(req);
    size_t len = 0, hlen = 0;
    const void *body = http_req_body(req, &len);
    int rc = oip_header_len(http_req_header(req, "Inference-Header-Content-Length"), len, &hlen, err);
    if (rc != MD_OK)
        return rc;
    oip_infer_req in;
    rc = oip_decode_infer(body ? body : "", len, hlen, mdl_version_manifest(v), http_req_arena(req), &in, err);
    if (rc != MD_OK)
        return rc;
    uint64_t start = http_req_start_ns(req), now = md_now_ns();
    mdl_version_note_queue(v, now > start ? now - start : 0);
    mdl_result *res = NULL;
    /* The request's own token: its deadline, and the reaper's 504 or a drain cancel it. */
    rc = mdl_run(v, in.inputs, in.n_inputs, http_req_cancel(req), &res, err);
    if (rc != MD_OK)
        return rc;
    md_buf out;
    md_buf_init(&out, (size_t)1 << 31);
    size_t out_hlen = 0;
    rc = oip_encode_infer(res, &in, mdl_version_name(v), mdl_version_id(v), &out, &out_hlen, err);
    mdl_result_free(res);
    size_t n = 0;
    char *bytes = rc == MD_OK ? md_buf_steal(&out, &n) : NULL;
    md_buf_free(&out);
    if (rc != MD_OK)
        return rc;
    if (!bytes)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (!out_hlen)
        return http_reply_take(req, 200, "application/json", bytes, n);
    char hl[24];
    snprintf(hl, sizeof hl, "%zu", out_hlen);
    http_reply_header(req, "Inference-Header-Content-Length", hl);
    return http_reply_take(req, 200, "application/octet-stream", bytes, n);
}

static int infer(http_req *req, void *ctx)
{
    mdl_version *v = NULL;
    int rc = mdl_acquire(ctx, http_req_param(req, "m"), http_req_param(req, "v"), &v, http_req_err(req));
    if (rc != MD_OK)
        return rc;
    rc = infer_with(req, v);
    mdl_release(v);
    return rc;
}

static int infer_is_quick(http_req *req, void *ctx)
{
    size_t len = 0;
    http_req_body(req, &len);
    if (len > OIP_INLINE_BODY_MAX)
        return 0;
    uint64_t ns = mdl_typical_run_ns(ctx, http_req_param(req, "m"), http_req_param(req, "v"));
    return ns > 0 && ns <= OIP_INLINE_RUN_NS;
}

/* ---- statistics extension (Triton's shape) ---- */

static json_int_t num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? json_integer_value(v) : json_is_real(v) ? (json_int_t)json_real_value(v) : 0;
}

static json_int_t seconds_ns(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? (json_int_t)(json_number_value(v) * 1e9) : 0;
}

static json_int_t failures_total(json_t *st)
{
    json_t *f = json_object_get(st, "failures"), *v;
    const char *k;
    json_int_t n = 0;
    if (json_is_integer(f))
        return json_integer_value(f);
    json_object_foreach(f, k, v) n += json_is_integer(v) ? json_integer_value(v) : 0;
    return n;
}

/* One entry of "model_stats" from the registry's per-version statistics object. */
static json_t *triton_stats(const char *name, const char *version, json_t *st)
{
    json_int_t ok = num(st, "successes"), bad = failures_total(st);
    json_int_t ok_ns = seconds_ns(st, "success_seconds_total"), bad_ns = seconds_ns(st, "failure_seconds_total");
    if (!json_object_get(st, "success_seconds_total"))
        ok_ns = seconds_ns(st, "latency_seconds_total");
    json_int_t queue_n = json_object_get(st, "queue_count") ? num(st, "queue_count") : ok + bad;
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:{s:{s:I, s:I}, s:{s:I, s:I}, s:{s:I, s:I}, s:{s:I, s:I}}, s:[]}",
                     "name", name, "version", version, "last_inference", num(st, "last_inference_ms"),
                     "inference_count", ok, "execution_count", ok + bad, "inference_stats", "success", "count", ok,
                     "ns", ok_ns, "fail", "count", bad, "ns", bad_ns, "queue", "count", queue_n, "ns",
                     seconds_ns(st, "queue_seconds_total"), "compute_infer", "count", ok + bad, "ns", ok_ns + bad_ns,
                     "batch_stats");
}

/* Append the stats of model name (only version, when given) to arr. */
static int model_stats_into(mdl_registry *reg, const char *name, const char *version, json_t *arr, md_err *err)
{
    json_t *d = NULL;
    int rc = mdl_describe(reg, name, version, &d, err);
    if (rc != MD_OK)
        return rc;
    json_t *stats = json_object_get(d, "stats"), *st;
    if (json_is_object(stats)) {
        const char *ver;
        json_object_foreach(stats, ver, st) {
            if (!version || strcmp(version, ver) == 0)
                json_array_append_new(arr, triton_stats(name, ver, st));
        }
    } else {
        size_t i;
        json_array_foreach(stats, i, st) {
            json_t *ver = json_object_get(st, "version");
            if (json_is_string(ver) && (!version || strcmp(version, json_string_value(ver)) == 0))
                json_array_append_new(arr, triton_stats(name, json_string_value(ver), st));
        }
    }
    json_decref(d);
    return MD_OK;
}

static int stats_one(http_req *req, void *ctx)
{
    json_t *arr = json_array();
    int rc = model_stats_into(ctx, http_req_param(req, "m"), http_req_param(req, "v"), arr, http_req_err(req));
    if (rc != MD_OK) {
        json_decref(arr);
        return rc;
    }
    return http_reply_json(req, 200, json_pack("{s:o}", "model_stats", arr));
}

static int stats_all(http_req *req, void *ctx)
{
    json_t *all = mdl_describe_all(ctx), *arr = json_array(), *m;
    size_t i;
    int rc = all ? MD_OK : md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    json_array_foreach(all, i, m) {
        json_t *name = json_object_get(m, "name");
        md_err e;
        /* A model unloaded between the listing and this call simply has no stats now. */
        if (json_is_string(name) && model_stats_into(ctx, json_string_value(name), NULL, arr, &e) == MD_E_NOMEM)
            rc = md_fail(http_req_err(req), MD_E_NOMEM, NULL, NULL);
    }
    json_decref(all);
    if (rc != MD_OK) {
        json_decref(arr);
        return rc;
    }
    return http_reply_json(req, 200, json_pack("{s:o}", "model_stats", arr));
}

/* ---- repository extension ---- */

/* Triton's version states from ours: serving or loadable by version -> READY. */
static const char *triton_state(const char *s)
{
    if (!strcmp(s, "ACTIVE") || !strcmp(s, "CANARY") || !strcmp(s, "STANDBY") || !strcmp(s, "READY"))
        return "READY";
    if (!strcmp(s, "LOADING") || !strcmp(s, "VALIDATING"))
        return "LOADING";
    return "UNAVAILABLE";
}

/* Optional JSON object body: NULL *out when empty. OIP bodies are JSON by protocol whatever
 * their Content-Type (clients send text/plain, octet-stream or form types), as for infer. */
static int optional_json(http_req *req, json_t **out)
{
    size_t len = 0;
    const char *body = http_req_body(req, &len);
    json_error_t je;
    *out = NULL;
    if (!len)
        return MD_OK;
    *out = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!*out)
        return md_fail(http_req_err(req), MD_E_INVALID_JSON, "body",
                       "the body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    if (json_is_object(*out))
        return MD_OK;
    json_decref(*out);
    *out = NULL;
    return md_fail(http_req_err(req), MD_E_INVALID_JSON, "body", "the body must be a JSON object");
}

static void index_model(json_t *m, bool ready_only, json_t *arr)
{
    json_t *v;
    size_t i;
    const char *name = json_string_value(json_object_get(m, "name"));
    json_array_foreach(json_object_get(m, "versions"), i, v) {
        const char *ver = json_string_value(json_object_get(v, "version"));
        const char *st = json_string_value(json_object_get(v, "state"));
        const char *reason = json_string_value(json_object_get(v, "reason"));
        if (!name || !ver || !st || (ready_only && strcmp(triton_state(st), "READY") != 0))
            continue;
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", name, "version", ver, "state",
                                             triton_state(st), "reason", reason ? reason : "", "modeld_state", st));
    }
}

static int repo_index(http_req *req, void *ctx)
{
    json_t *body = NULL;
    int rc = optional_json(req, &body);
    if (rc != MD_OK)
        return rc;
    json_t *ready = json_object_get(body, "ready");
    if (ready && !json_is_boolean(ready)) {
        json_decref(body);
        return md_fail(http_req_err(req), MD_E_INVALID_PARAM, "ready", "ready must be a boolean");
    }
    bool ready_only = ready && json_is_true(ready);
    json_decref(body);
    json_t *all = mdl_describe_all(ctx), *arr = json_array(), *m;
    size_t i;
    json_array_foreach(all, i, m) index_model(m, ready_only, arr);
    json_decref(all);
    return http_reply_json(req, 200, arr);
}

/* base64 text into arena bytes. */
static int b64_decode(md_arena *a, const char *key, json_t *v, mdl_file *f, md_err *err)
{
    if (!json_is_string(v))
        return md_fail(err, MD_E_INVALID_PARAM, key, "parameter %s must be a base64 string", key);
    size_t b64_len = json_string_length(v), cap = b64_len / 4 * 3 + 3, n = 0;
    unsigned char *bin = md_arena_alloc(a, cap);
    if (!bin)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    const char *end = NULL;
    const char *text = json_string_value(v);
    if (sodium_base642bin(bin, cap, text, b64_len, "\r\n", &n, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != text + b64_len)
        return md_fail(err, MD_E_INVALID_PARAM, key, "parameter %s is not valid base64", key);
    f->data = bin;
    f->len = n;
    return MD_OK;
}

/* The version directory of a "<version>/<file>" path into ver (empty when there is none). */
static void path_version(const char *path, char ver[MDL_VERSION_MAX])
{
    const char *slash = strchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    snprintf(ver, MDL_VERSION_MAX, "%.*s", (int)(n < MDL_VERSION_MAX ? n : 0), path);
}

/* "config" (a manifest text) becomes <version>/modeld.json of the one version the files name,
 * unless a file of that name is given too. */
static int add_config(md_arena *a, json_t *config, mdl_file *files, size_t *n, md_err *err)
{
    if (!json_is_string(config))
        return md_fail(err, MD_E_INVALID_PARAM, "config", "parameter config must be a string (the modeld.json text)");
    char ver[MDL_VERSION_MAX] = "", other[MDL_VERSION_MAX];
    for (size_t i = 0; i < *n; i++) {
        path_version(files[i].path, other);
        if (!other[0] || (ver[0] && strcmp(ver, other) != 0))
            return md_fail(err, MD_E_INVALID_PARAM, "config",
                           "with config, the files must all be under one version directory (file:<version>/<name>)");
        snprintf(ver, sizeof ver, "%s", other);
        if (strcmp(strchr(files[i].path, '/') + 1, "modeld.json") == 0)
            return MD_OK; /* the explicit file wins over config */
    }
    if (!ver[0] || *n >= OIP_MAX_FILES)
        return md_fail(err, MD_E_INVALID_PARAM, "config", "config needs at least one file:<version>/<name> parameter");
    files[*n].path = md_arena_printf(a, "%s/modeld.json", ver);
    files[*n].data = json_string_value(config);
    files[*n].len = json_string_length(config);
    if (!files[*n].path)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    (*n)++;
    return MD_OK;
}

/* parameters {"config": "...", "file:<version>/<name>": "<base64>"...} into files. */
static int load_files(http_req *req, json_t *params, mdl_file *files, size_t *n)
{
    md_err *err = http_req_err(req);
    const char *key;
    json_t *v, *config = NULL;
    *n = 0;
    if (!json_is_object(params))
        return md_fail(err, MD_E_INVALID_PARAM, "parameters", "parameters must be an object");
    json_object_foreach(params, key, v) {
        if (strcmp(key, "config") == 0) {
            config = v;
            continue;
        }
        if (strncmp(key, "file:", 5) != 0 || !strchr(key + 5, '/'))
            return md_fail(err, MD_E_INVALID_PARAM, "parameters", "unknown load parameter '%.64s' (config or "
                           "file:<version>/<name>)", key);
        if (*n >= OIP_MAX_FILES)
            return md_fail(err, MD_E_INVALID_PARAM, "parameters", "more than %d files", OIP_MAX_FILES);
        files[*n].path = md_arena_strdup(http_req_arena(req), key + 5);
        int rc = files[*n].path ? b64_decode(http_req_arena(req), key, v, &files[*n], err)
                                : md_fail(err, MD_E_NOMEM, NULL, NULL);
        if (rc != MD_OK)
            return rc;
        (*n)++;
    }
    if (config)
        return add_config(http_req_arena(req), config, files, n, err);
    return MD_OK;
}

static int repo_load(http_req *req, void *ctx)
{
    const char *name = http_req_param(req, "m");
    json_t *body = NULL;
    int rc = optional_json(req, &body);
    if (rc != MD_OK)
        return rc;
    json_t *params = json_object_get(body, "parameters");
    mdl_file files[OIP_MAX_FILES + 1];
    size_t n = 0;
    if (params)
        rc = load_files(req, params, files, &n);
    if (rc == MD_OK)
        rc = n ? mdl_install(ctx, name, files, n, http_req_err(req)) : mdl_load(ctx, name, http_req_err(req));
    json_decref(body); /* after mdl_install: config's text is borrowed from it */
    if (rc != MD_OK)
        return rc;
    return http_reply_empty(req, 200);
}

static int repo_unload(http_req *req, void *ctx)
{
    json_t *body = NULL;
    int rc = optional_json(req, &body);
    json_decref(body); /* parameters (unload_dependents) have no meaning here: no ensembles */
    if (rc == MD_OK)
        rc = mdl_unload(ctx, http_req_param(req, "m"), http_req_err(req));
    if (rc != MD_OK)
        return rc;
    return http_reply_empty(req, 200);
}

/* ---- registration ---- */

#define S_TENSOR_META                                                                                         \
    "{\"type\":\"object\",\"required\":[\"name\",\"datatype\",\"shape\"],\"properties\":{\"name\":{\"type\":" \
    "\"string\"},\"datatype\":{\"type\":\"string\"},\"shape\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}}}"
#define S_TENSOR_IN                                                                                           \
    "{\"type\":\"object\",\"required\":[\"name\",\"datatype\",\"shape\"],\"properties\":{\"name\":{\"type\":" \
    "\"string\"},\"datatype\":{\"type\":\"string\",\"enum\":[\"BOOL\",\"UINT8\",\"UINT16\",\"UINT32\",\"UINT64\"," \
    "\"INT8\",\"INT16\",\"INT32\",\"INT64\",\"FP16\",\"FP32\",\"FP64\",\"BYTES\"]},\"shape\":{\"type\":\"array\","  \
    "\"items\":{\"type\":\"integer\",\"minimum\":0}},\"parameters\":{\"type\":\"object\",\"properties\":{"       \
    "\"binary_data_size\":{\"type\":\"integer\",\"minimum\":0}}},\"data\":{\"type\":\"array\",\"description\":"  \
    "\"row-major, flat or nested\"}}}"

static const char S_SERVER_META[] =
    "{\"type\":\"object\",\"required\":[\"name\",\"version\",\"extensions\"],\"properties\":{\"name\":{\"type\":"
    "\"string\"},\"version\":{\"type\":\"string\"},\"extensions\":{\"type\":\"array\",\"items\":{\"type\":"
    "\"string\"}}}}";
static const char S_MODEL_META[] =
    "{\"type\":\"object\",\"required\":[\"name\",\"versions\",\"platform\",\"inputs\",\"outputs\"],\"properties\":{"
    "\"name\":{\"type\":\"string\"},\"versions\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"platform\":{"
    "\"type\":\"string\"},\"inputs\":{\"type\":\"array\",\"items\":" S_TENSOR_META "},\"outputs\":{\"type\":"
    "\"array\",\"items\":" S_TENSOR_META "}}}";
static const char S_INFER_REQ[] =
    "{\"type\":\"object\",\"required\":[\"inputs\"],\"properties\":{\"id\":{\"type\":\"string\"},\"parameters\":{"
    "\"type\":\"object\",\"properties\":{\"binary_data_output\":{\"type\":\"boolean\"}}},\"inputs\":{\"type\":"
    "\"array\",\"items\":" S_TENSOR_IN "},\"outputs\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
    "\"required\":[\"name\"],\"properties\":{\"name\":{\"type\":\"string\"},\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"binary_data\":{\"type\":\"boolean\"}}}}}}}}";
static const char S_INFER_RESP[] =
    "{\"type\":\"object\",\"required\":[\"model_name\",\"model_version\",\"outputs\"],\"properties\":{\"model_name\":"
    "{\"type\":\"string\"},\"model_version\":{\"type\":\"string\",\"description\":\"the version that produced the "
    "answer\"},\"id\":{\"type\":\"string\"},\"outputs\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
    "\"required\":[\"name\",\"datatype\",\"shape\"],\"properties\":{\"name\":{\"type\":\"string\"},\"datatype\":{"
    "\"type\":\"string\"},\"shape\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}},\"data\":{\"type\":"
    "\"array\"},\"parameters\":{\"type\":\"object\",\"properties\":{\"binary_data_size\":{\"type\":\"integer\"}}}}}}}}";
static const char S_STATS[] =
    "{\"type\":\"object\",\"required\":[\"model_stats\"],\"properties\":{\"model_stats\":{\"type\":\"array\","
    "\"items\":{\"type\":\"object\",\"required\":[\"name\",\"version\",\"inference_count\",\"execution_count\","
    "\"inference_stats\"],\"properties\":{\"name\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},"
    "\"last_inference\":{\"type\":\"integer\"},\"inference_count\":{\"type\":\"integer\"},\"execution_count\":{"
    "\"type\":\"integer\"},\"inference_stats\":{\"type\":\"object\"},\"batch_stats\":{\"type\":\"array\"}}}}}}";
static const char S_INDEX_REQ[] = "{\"type\":\"object\",\"properties\":{\"ready\":{\"type\":\"boolean\"}}}";
static const char S_INDEX_RESP[] =
    "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"name\",\"version\",\"state\"],\"properties\":{"
    "\"name\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},\"state\":{\"type\":\"string\",\"enum\":["
    "\"READY\",\"LOADING\",\"UNAVAILABLE\"]},\"reason\":{\"type\":\"string\"},\"modeld_state\":{\"type\":"
    "\"string\"}}}}";
static const char S_LOAD_REQ[] =
    "{\"type\":\"object\",\"properties\":{\"parameters\":{\"type\":\"object\",\"description\":\"config: the "
    "modeld.json text; file:<version>/<name>: base64 file content (Triton's inline load)\",\"properties\":{\"config\":"
    "{\"type\":\"string\"}},\"additionalProperties\":{\"type\":\"string\"}}}}";
static const char S_UNLOAD_REQ[] = "{\"type\":\"object\",\"properties\":{\"parameters\":{\"type\":\"object\"}}}";

static const int E_MODEL[] = {MD_E_MODEL_NOT_FOUND, 0};
static const int E_READY[] = {MD_E_MODEL_NOT_FOUND, MD_E_NOT_READY, 0};
static const int E_INFER[] = {MD_E_MODEL_NOT_FOUND, MD_E_MODEL_UNAVAILABLE, MD_E_INVALID_JSON, MD_E_MISSING_FIELD,
                              MD_E_INVALID_PARAM, MD_E_UNSUPPORTED, MD_E_TOO_LARGE, MD_E_TIMEOUT, 0};
static const int E_LOAD[] = {MD_E_MODEL_NOT_FOUND, MD_E_MODEL_INVALID, MD_E_INVALID_PARAM, MD_E_INVALID_JSON,
                             MD_E_CONFLICT, MD_E_STORAGE_FULL, 0};
static const http_doc_param H_INFER[] = {
    {"Inference-Header-Content-Length", "integer",
     "binary tensor data extension: length of the JSON part; the rest of the body is the binary input data", 0},
    {NULL, NULL, NULL, 0}};

#define PUB (HTTP_NO_RATELIMIT | HTTP_NO_AUDIT)

static const api__route ROUTES[] = {
    {"GET", "/v2", HTTP_ROLE_PUBLIC, PUB, server_meta,
     {.summary = "OIP server metadata: name, version, extensions", .tag = "inference", .response = S_SERVER_META}},
    {"GET", "/v2/health/live", HTTP_ROLE_PUBLIC, PUB, health_live,
     {.summary = "OIP liveness: 200 with an empty body", .tag = "inference"}},
    {"GET", "/v2/health/ready", HTTP_ROLE_PUBLIC, PUB, health_ready,
     {.summary = "OIP readiness: 200 when every required model is ACTIVE, else 400 (a 4xx is false)",
      .tag = "inference", .errors = (const int[]){MD_E_NOT_READY, 0}}},
    {"GET", "/v2/models/stats", HTTP_ROLE_READ, HTTP_NO_AUDIT, stats_all,
     {.summary = "Statistics of every model version (Triton statistics extension)", .tag = "inference",
      .response = S_STATS}},
    {"GET", "/v2/models/{m}", HTTP_ROLE_READ, 0, model_meta,
     {.summary = "OIP model metadata: versions, platform, inputs and outputs", .tag = "inference",
      .response = S_MODEL_META, .errors = E_MODEL}},
    {"GET", "/v2/models/{m}/versions/{v}", HTTP_ROLE_READ, 0, model_meta,
     {.summary = "OIP model metadata of one version", .tag = "inference", .response = S_MODEL_META,
      .errors = E_MODEL}},
    {"GET", "/v2/models/{m}/ready", HTTP_ROLE_READ, 0, model_ready,
     {.summary = "OIP model readiness: 200 when the model serves", .tag = "inference", .errors = E_READY}},
    {"GET", "/v2/models/{m}/versions/{v}/ready", HTTP_ROLE_READ, 0, model_ready,
     {.summary = "OIP model version readiness", .tag = "inference", .errors = E_READY}},
    {"POST", "/v2/models/{m}/infer", HTTP_ROLE_READ, HTTP_HEAVY | HTTP_NO_AUDIT, infer,
     {.summary = "OIP inference (JSON tensors or the binary tensor data extension)", .tag = "inference",
      .description = "The answer names the version that produced it (model_version): the canary for its share of "
                     "requests, else the active version.",
      .request = S_INFER_REQ, .response = S_INFER_RESP, .headers = H_INFER, .errors = E_INFER}},
    {"POST", "/v2/models/{m}/versions/{v}/infer", HTTP_ROLE_READ, HTTP_HEAVY | HTTP_NO_AUDIT, infer,
     {.summary = "OIP inference on one version (ACTIVE, CANARY, STANDBY or READY)", .tag = "inference",
      .request = S_INFER_REQ, .response = S_INFER_RESP, .headers = H_INFER, .errors = E_INFER}},
    {"GET", "/v2/models/{m}/stats", HTTP_ROLE_READ, 0, stats_one,
     {.summary = "Statistics of a model's versions (Triton statistics extension)", .tag = "inference",
      .response = S_STATS, .errors = E_MODEL}},
    {"GET", "/v2/models/{m}/versions/{v}/stats", HTTP_ROLE_READ, 0, stats_one,
     {.summary = "Statistics of one model version (Triton statistics extension)", .tag = "inference",
      .response = S_STATS, .errors = E_MODEL}},
    {"POST", "/v2/repository/index", HTTP_ROLE_READ, HTTP_NO_AUDIT, repo_index,
     {.summary = "Every model version on disk or loaded, with its state (repository extension)", .tag = "inference",
      .request = S_INDEX_REQ, .response = S_INDEX_RESP, .errors = (const int[]){MD_E_INVALID_JSON, 0}}},
    {"POST", "/v2/repository/models/{m}/load", HTTP_ROLE_ADMIN, HTTP_HEAVY, repo_load,
     {.summary = "Load a model from the repository, or install it from inline files (repository extension)",
      .tag = "inference",
      .description = "Without parameters the model's directory is rescanned and its newest (or remembered) version "
                     "activated. With `file:<version>/<name>` parameters (base64) and optionally `config` (the "
                     "modeld.json text) the files are written under the data dir, validated and activated; on any "
                     "failure nothing stays and the serving version keeps serving.",
      .request = S_LOAD_REQ, .errors = E_LOAD}},
    {"POST", "/v2/repository/models/{m}/unload", HTTP_ROLE_ADMIN, HTTP_HEAVY, repo_unload,
     {.summary = "Unload every version of a model (repository extension)", .tag = "inference",
      .request = S_UNLOAD_REQ, .errors = E_MODEL}},
};

int api_oip_register(http_server *srv, mdl_registry *reg, md_err *err)
{
    enum { N = sizeof ROUTES / sizeof ROUTES[0] };
    http_route *added[N];
    int rc = api__add_routes(srv, ROUTES, N, OIP_ROUTE_FLAGS, reg, added, err);
    for (size_t i = 0; rc == MD_OK && i < N; i++)
        if (ROUTES[i].fn == repo_load)
            http_route_body_limit(added[i], OIP_LOAD_BODY_MAX);
        else if (ROUTES[i].fn == infer)
            http_route_inline_if(added[i], infer_is_quick);
    return rc;
}
