/* xgb.c - XGBoost models over Debian's libxgboost (1.7) C API: load JSON/UBJ, check, predict.
 *
 * Why an adapter and not our own tree walker: XGBoost's prediction (objectives, base_score,
 * dart weights, missing-value directions) is the reference users compare against, and the
 * library is packaged; we add what a server needs around it: bounded reads, refusal of the
 * legacy binary format, a structural check of every tree, client-safe error text, and a
 * threading policy.
 *
 * Invariants:
 *  0. XGBoost only ever parses bytes that xgb__check_format() accepted (format.c): its
 *     UBJSON reader reads out of bounds on truncated files.
 *  1. A model handed out by xgb_model_load* has passed validate_model(): every tree's child
 *     indices are in range and form a tree (no cycles, no node reached twice), every split
 *     feature is < num_feature and every tree's output group is < num_outputs. XGBoost 1.7
 *     checks array lengths but not these, and a hostile file would otherwise make predict
 *     read out of bounds or loop forever.
 *  2. The booster is configured at load (the probe prediction in probe_outputs()) and never
 *     modified afterwards, so xgb_predict only reads it.
 *
 * Concurrency (decision): no lock and no booster pool. In 1.7, XGBoosterPredictFromDense with
 * a NULL proxy builds a fresh proxy DMatrix per call, Learner::InplacePredict writes only to
 * a per-thread, per-booster entry (LearnerAPIThreadLocalStore) and returns a pointer into it,
 * which we copy out before returning; the one shared write, Learner::Configure(), runs behind
 * a double-checked lock and is done once at load by the probe, so concurrent predictions find
 * need_configuration_ == false and only read. The cost: each thread that ever predicted keeps
 * its last output buffer for that booster until the thread exits (bounded by the largest
 * batch it ran). tests/xgb/xgb_test.c runs predictions from several threads and compares them.
 *
 * Threads: nthread (default 1) is set on the booster; OpenMP inside one call only helps big
 * batches, and a server already runs one request per compute thread.
 */
#include "xgb/xgb.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xgboost/c_api.h>

#include "base/log.h"
#include "xgb/xgb_int.h"

#define XGB_DEFAULT_MAX_BYTES ((size_t)256 << 20)
#define XGB_MAX_FEATURES 1000000u
#define XGB_MAX_OUTPUTS 100000u

struct xgb_model {
    BoosterHandle booster;
    xgb_info info;
};

/* Record an XGBoost failure: the detail goes to the log (it may name source files), the
 * client gets the library's one-line reason without its "[time] file:line: " prefix. */
static int xgb_fail(md_err *err, int code, const char *what)
{
    const char *full = XGBGetLastError();
    char reason[200] = "";
    if (full) {
        const char *p = strstr(full, ": ");
        const char *start = p && strchr(full, ':') < p ? p + 2 : full;
        size_t n = strcspn(start, "\n");
        if (n >= sizeof reason)
            n = sizeof reason - 1;
        memcpy(reason, start, n);
        reason[n] = '\0';
        /* the first line names XGBoost's source location; the stack trace after it is noise */
        md_log(MD_LOG_WARN, "xgboost: %s: %.*s", what, (int)strcspn(full, "\n"), full);
    }
    return md_fail(err, code, "model", "%s: %s", what, reason[0] ? reason : "unknown error");
}

/* Read a whole regular file of at most max bytes. *out is new (free()). */
static int read_file(const char *path, size_t max, unsigned char **out, size_t *len, md_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return md_fail(err, errno == ENOENT ? MD_E_FILE_NOT_FOUND : MD_E_IO, "path",
                       "cannot open the model file");
    struct stat st;
    int rc = MD_OK;
    unsigned char *buf = NULL;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = md_fail(err, MD_E_IO, "path", "the model path is not a regular file");
        goto out;
    }
    if ((unsigned long long)st.st_size > max) {
        rc = md_fail(err, MD_E_TOO_LARGE, "path", "the model file is %lld bytes, over the %zu limit",
                     (long long)st.st_size, max);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = md_fail(err, MD_E_NOMEM, "path", "no memory for a %lld-byte model", (long long)st.st_size);
        goto out;
    }
    *len = fread(buf, 1, (size_t)st.st_size, f);
    if (*len != (size_t)st.st_size) {
        rc = md_fail(err, MD_E_IO, "path", "short read of the model file");
        goto out;
    }
    *out = buf;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

/* An unsigned integer field stored as a JSON string ("6") or number. -1 when absent/bad. */
static long long json_count(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (!json_is_string(v))
        return -1;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(json_string_value(v), &end, 10);
    return (errno || end == json_string_value(v) || *end || n < 0) ? -1 : n;
}

/* An int array field of exactly n entries, or NULL. */
static const json_t *int_array(const json_t *tree, const char *key, size_t n)
{
    const json_t *a = json_object_get(tree, key);
    return json_is_array(a) && json_array_size(a) == n ? a : NULL;
}

/* Invariant 1 for one tree: walk from the root with an explicit stack, each node seen once. */
static int validate_tree(const json_t *tree, size_t t, uint64_t nfeat, md_err *err)
{
    long long nn = json_count(json_object_get(tree, "tree_param"), "num_nodes");
    if (nn <= 0 || nn > (1LL << 28))
        return md_fail(err, MD_E_MODEL_INVALID, "trees", "tree %zu: bad num_nodes", t);
    size_t n = (size_t)nn;
    const json_t *l = int_array(tree, "left_children", n), *r = int_array(tree, "right_children", n);
    const json_t *f = int_array(tree, "split_indices", n), *st = json_object_get(tree, "split_type");
    if (!l || !r || !f)
        return md_fail(err, MD_E_MODEL_INVALID, "trees", "tree %zu: node arrays do not match num_nodes", t);
    for (size_t i = 0; json_is_array(st) && i < json_array_size(st); i++)
        if (json_integer_value(json_array_get(st, i)) != 0)
            return md_fail(err, MD_E_UNSUPPORTED, "trees", "tree %zu: categorical splits are not supported", t);
    unsigned char *seen = calloc(n, 1);
    size_t *stack = malloc(n * sizeof *stack);
    int rc = (seen && stack) ? MD_OK : md_fail(err, MD_E_NOMEM, "trees", "no memory to check tree %zu", t);
    size_t top = 0;
    if (rc == MD_OK) {
        stack[top++] = 0;
        seen[0] = 1;
    }
    while (rc == MD_OK && top > 0) {
        size_t i = stack[--top];
        json_int_t li = json_integer_value(json_array_get(l, i));
        json_int_t ri = json_integer_value(json_array_get(r, i));
        json_int_t fi = json_integer_value(json_array_get(f, i));
        if (li == -1)
            continue; /* a leaf: XGBoost looks only at the left child to decide */
        if (li < 0 || ri < 0 || (size_t)li >= n || (size_t)ri >= n || seen[li] || seen[ri] || li == ri)
            rc = md_fail(err, MD_E_MODEL_INVALID, "trees", "tree %zu node %zu: bad child index", t, i);
        else if (fi < 0 || (uint64_t)fi >= nfeat)
            rc = md_fail(err, MD_E_MODEL_INVALID, "trees", "tree %zu node %zu: split feature %lld out of range",
                         t, i, (long long)fi);
        else {
            seen[li] = seen[ri] = 1;
            stack[top++] = (size_t)li;
            stack[top++] = (size_t)ri;
        }
    }
    free(seen);
    free(stack);
    return rc;
}

/* The trees of a gbtree model object, and their output groups (tree_info). */
static int validate_gbtree(const json_t *model, const xgb_info *info, md_err *err)
{
    const json_t *trees = json_object_get(model, "trees");
    const json_t *groups = json_object_get(model, "tree_info");
    if (!json_is_array(trees) || !json_is_array(groups) || json_array_size(trees) != json_array_size(groups))
        return md_fail(err, MD_E_MODEL_INVALID, "trees", "trees and tree_info are missing or differ in length");
    uint64_t ngroups = info->num_class > 0 ? info->num_class : 1;
    for (size_t t = 0; t < json_array_size(trees); t++) {
        json_int_t g = json_integer_value(json_array_get(groups, t));
        if (!json_is_integer(json_array_get(groups, t)) || g < 0 || (uint64_t)g >= ngroups)
            return md_fail(err, MD_E_MODEL_INVALID, "tree_info", "tree %zu: output group out of range", t);
        int rc = validate_tree(json_array_get(trees, t), t, info->num_features, err);
        if (rc)
            return rc;
    }
    return MD_OK;
}

/* gblinear: one weight per (feature + bias) x output group. */
static int validate_gblinear(const json_t *model, const xgb_info *info, md_err *err)
{
    const json_t *w = json_object_get(model, "weights");
    uint64_t ngroups = info->num_class > 0 ? info->num_class : 1;
    if (!json_is_array(w) || json_array_size(w) != (info->num_features + 1) * ngroups)
        return md_fail(err, MD_E_MODEL_INVALID, "weights", "gblinear weights do not match the feature count");
    return MD_OK;
}

/* Fill info from XGBoost's own JSON form of the loaded model and check invariant 1. */
static int validate_model(const json_t *root, xgb_info *info, md_err *err)
{
    const json_t *learner = json_object_get(root, "learner");
    const json_t *param = json_object_get(learner, "learner_model_param");
    long long nfeat = json_count(param, "num_feature"), ncls = json_count(param, "num_class");
    if (nfeat <= 0 || nfeat > XGB_MAX_FEATURES || ncls < 0 || ncls > XGB_MAX_OUTPUTS)
        return md_fail(err, MD_E_MODEL_INVALID, "num_feature", "num_feature or num_class missing or out of range");
    info->num_features = (uint64_t)nfeat;
    info->num_class = (uint64_t)ncls;
    const char *obj = json_string_value(json_object_get(json_object_get(learner, "objective"), "name"));
    snprintf(info->objective, sizeof info->objective, "%s", obj ? obj : "");
    const json_t *gb = json_object_get(learner, "gradient_booster");
    const char *name = json_string_value(json_object_get(gb, "name"));
    if (name && strcmp(name, "dart") == 0) {
        gb = json_object_get(gb, "gbtree");
        name = json_string_value(json_object_get(gb, "name"));
    }
    if (name && strcmp(name, "gbtree") == 0)
        return validate_gbtree(json_object_get(gb, "model"), info, err);
    if (name && strcmp(name, "gblinear") == 0)
        return validate_gblinear(json_object_get(gb, "model"), info, err);
    return md_fail(err, MD_E_UNSUPPORTED, "gradient_booster", "booster '%s' is not supported",
                   name ? name : "(none)");
}

/* Ask XGBoost for its JSON form of what it loaded (works for UBJ input too) and check it. */
static int check_loaded(xgb_model *m, md_err *err)
{
    bst_ulong len = 0;
    const char *raw = NULL;
    if (XGBoosterSaveModelToBuffer(m->booster, "{\"format\": \"json\"}", &len, &raw) != 0)
        return xgb_fail(err, MD_E_MODEL_INVALID, "cannot read the loaded model back");
    json_error_t jerr;
    json_t *root = json_loadb(raw, (size_t)len, 0, &jerr);
    if (!root)
        return md_fail(err, MD_E_MODEL_INVALID, "model", "the model does not read back as JSON");
    int rc = validate_model(root, &m->info, err);
    json_decref(root);
    if (rc == MD_OK && XGBoosterBoostedRounds(m->booster, &m->info.boosted_rounds) != 0)
        rc = xgb_fail(err, MD_E_MODEL_INVALID, "cannot count boosted rounds");
    return rc;
}

/* Array-interface and config strings for XGBoosterPredictFromDense. */
static void dense_interface(char *buf, size_t cap, const float *rows, size_t nrows, size_t ncols)
{
    snprintf(buf, cap,
             "{\"data\": [%llu, true], \"shape\": [%zu, %zu], \"typestr\": \"<f4\", \"version\": 3}",
             (unsigned long long)(uintptr_t)rows, nrows, ncols);
}

static const char PREDICT_CONFIG[] =
    "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, "
    "\"strict_shape\": true, \"cache_id\": 0, \"missing\": NaN}";

/* Run XGBoost on rows; on success *res points into XGBoost's per-thread buffer. */
static int run_dense(const xgb_model *m, const float *rows, size_t nrows, size_t ncols,
                     const float **res, uint64_t *cols, md_err *err)
{
    char iface[160];
    dense_interface(iface, sizeof iface, rows, nrows, ncols);
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    if (XGBoosterPredictFromDense(m->booster, iface, PREDICT_CONFIG, NULL, &shape, &dim, res) != 0)
        return xgb_fail(err, MD_E_INTERNAL, "prediction failed");
    if (dim != 2 || shape[0] != nrows)
        return md_fail(err, MD_E_INTERNAL, "model", "XGBoost returned an unexpected output shape");
    *cols = shape[1];
    return MD_OK;
}

/* Invariant 2: one prediction at load configures the booster and tells the output width. */
static int probe_outputs(xgb_model *m, md_err *err)
{
    float *row = malloc(m->info.num_features * sizeof *row);
    if (!row)
        return md_fail(err, MD_E_NOMEM, "model", "no memory for the probe row");
    for (uint64_t i = 0; i < m->info.num_features; i++)
        row[i] = NAN;
    const float *res = NULL;
    int rc = run_dense(m, row, 1, m->info.num_features, &res, &m->info.num_outputs, err);
    free(row);
    if (rc == MD_OK && (m->info.num_outputs == 0 || m->info.num_outputs > XGB_MAX_OUTPUTS))
        rc = md_fail(err, MD_E_MODEL_INVALID, "model", "the model has %llu outputs per row",
                     (unsigned long long)m->info.num_outputs);
    return rc;
}

int xgb_model_load_bytes(const void *bytes, size_t len, const xgb_opts *opts, xgb_model **out,
                         md_err *err)
{
    *out = NULL;
    size_t max = opts && opts->max_bytes ? opts->max_bytes : XGB_DEFAULT_MAX_BYTES;
    if (len > max)
        return md_fail(err, MD_E_TOO_LARGE, "model", "the model is %zu bytes, over the %zu limit", len, max);
    int rc = xgb__check_format(bytes, len, err);
    if (rc)
        return rc;
    xgb_model *m = calloc(1, sizeof *m);
    if (!m)
        return md_fail(err, MD_E_NOMEM, "model", "no memory for the model");
    char nthread[16];
    snprintf(nthread, sizeof nthread, "%d", opts && opts->nthread > 0 ? opts->nthread : 1);
    if (XGBoosterCreate(NULL, 0, &m->booster) != 0)
        rc = xgb_fail(err, MD_E_INTERNAL, "cannot create a booster");
    else if (XGBoosterLoadModelFromBuffer(m->booster, bytes, (bst_ulong)len) != 0)
        rc = xgb_fail(err, MD_E_MODEL_INVALID, "XGBoost rejected the model");
    else if (XGBoosterSetParam(m->booster, "nthread", nthread) != 0)
        rc = xgb_fail(err, MD_E_INTERNAL, "cannot set nthread");
    if (rc == MD_OK)
        rc = check_loaded(m, err);
    if (rc == MD_OK)
        rc = probe_outputs(m, err);
    if (rc) {
        xgb_model_free(m);
        return rc;
    }
    *out = m;
    return MD_OK;
}

int xgb_model_load(const char *path, const xgb_opts *opts, xgb_model **out, md_err *err)
{
    *out = NULL;
    unsigned char *buf = NULL;
    size_t len = 0;
    size_t max = opts && opts->max_bytes ? opts->max_bytes : XGB_DEFAULT_MAX_BYTES;
    int rc = read_file(path, max, &buf, &len, err);
    if (rc == MD_OK)
        rc = xgb_model_load_bytes(buf, len, opts, out, err);
    free(buf);
    return rc;
}

const xgb_info *xgb_model_info(const xgb_model *m)
{
    return &m->info;
}

int xgb_predict(const xgb_model *m, const float *rows, size_t nrows, size_t ncols, float *out,
                size_t out_cap, md_err *err)
{
    if (ncols != m->info.num_features)
        return md_fail(err, MD_E_INVALID_PARAM, "ncols", "the model takes %llu features per row, got %zu",
                       (unsigned long long)m->info.num_features, ncols);
    if (nrows == 0)
        return MD_OK;
    if (nrows > SIZE_MAX / sizeof(float) / ncols || nrows > SIZE_MAX / m->info.num_outputs)
        return md_fail(err, MD_E_INVALID_PARAM, "nrows", "%zu rows is too many", nrows);
    size_t need = nrows * m->info.num_outputs;
    if (out_cap < need)
        return md_fail(err, MD_E_INVALID_PARAM, "out", "the output needs %zu floats, %zu given", need, out_cap);
    const float *res = NULL;
    uint64_t cols = 0;
    int rc = run_dense(m, rows, nrows, ncols, &res, &cols, err);
    if (rc)
        return rc;
    if (cols != m->info.num_outputs)
        return md_fail(err, MD_E_INTERNAL, "model", "XGBoost returned %llu outputs per row, expected %llu",
                       (unsigned long long)cols, (unsigned long long)m->info.num_outputs);
    memcpy(out, res, need * sizeof *out);
    return MD_OK;
}

void xgb_model_free(xgb_model *m)
{
    if (!m)
        return;
    if (m->booster)
        XGBoosterFree(m->booster);
    free(m);
}
