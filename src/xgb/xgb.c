/* xgb.c - XGBoost models over Debian's libxgboost (1.7) C API: load JSON/UBJ, check, predict.
 *
 * Why an adapter and not our own tree walker: XGBoost's prediction (objectives, base_score,
 * dart weights, missing-value directions) is the reference users compare against, and the
 * library is packaged; we add what a server needs around it: bounded reads, refusal of the
 * legacy binary format, a check of the whole model before XGBoost reads it, client-safe error
 * text, and a threading policy.
 * Memory: the check holds the model as a jansson document for the duration of the load, about
 * ten times the file's size, hence the 64 MiB default file limit.
 *
 * Invariants:
 *  1. XGBoost only ever parses bytes whose document, read by our own parser from the same
 *     bytes (format.c), passed the schema check (schema.c): XGBoost 1.7 trusts its files (its
 *     UBJSON reader reads past the buffer on a truncated model; tree loading and prediction
 *     index with the file's parent, child, feature and group numbers).
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
 *
 * Engines (decision): libxgboost stays the loader and the reference, but xgb_predict walks the
 * trees itself (forest.c) for the gbtree models forest.c supports: a one-row prediction
 * through XGBoosterPredictFromDense costs far more in setup than in the trees. At load, both
 * engines predict forest.c's probe rows; any difference over 1e-5 (relative above 1) keeps
 * libxgboost for that model, with a warning in the log (invariant 3).
 *  3. m->forest is non-NULL only if it agreed with libxgboost on the probe rows at load.
 *  4. Likewise contributions: xgb_contributions runs our TreeSHAP (treeshap.c) only if the
 *     forest has its data (xgb__forest_has_shap) and its contributions on the probe rows
 *     matched libxgboost's pred_contribs within 1e-5 (relative above 1) at load (check_shap);
 *     otherwise the data is dropped, with a warning, and libxgboost computes them.
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

#define XGB_DEFAULT_MAX_BYTES ((size_t)64 << 20)
#define XGB_MAX_OUTPUTS 100000u

struct xgb_model {
    BoosterHandle booster;
    xgb_info info;
    xgb__forest *forest; /* our evaluator; NULL: libxgboost serves (invariant 3) */
};

/* Record an XGBoost failure: the detail goes to the log (it may name source files), the
 * client gets the library's one-line reason without its "[time] file:line: " prefix. */
int xgb__fail(md_err *err, int code, const char *what)
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
        rc =
            md_fail(err, MD_E_TOO_LARGE, "path", "the model file is %lld bytes, over the %zu limit",
                    (long long)st.st_size, max);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = md_fail(err, MD_E_NOMEM, "path", "no memory for a %lld-byte model",
                     (long long)st.st_size);
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

/* Array-interface and config strings for XGBoosterPredictFromDense. */
static void dense_interface(char *buf, size_t cap, const float *rows, size_t nrows, size_t ncols)
{
    snprintf(
        buf, cap,
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
        return xgb__fail(err, MD_E_INTERNAL, "prediction failed");
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

/* Invariant 1: our own parse and schema check, before XGBoost sees the bytes. *doc is new
 * (json_decref; NULL on failure). */
static int check_document(const void *bytes, size_t len, xgb_info *info, json_t **doc, md_err *err)
{
    int rc = xgb__parse_doc(bytes, len, doc, err);
    if (rc == MD_OK)
        rc = xgb__validate_doc(*doc, info, err);
    if (rc != MD_OK) {
        json_decref(*doc);
        *doc = NULL;
    }
    return rc;
}

/* The largest difference (relative above 1) between our walk and libxgboost on the probe
 * rows, into *worst (infinity for a NaN). */
static int native_diff(const xgb_model *m, double *worst, md_err *err)
{
    size_t nf = m->info.num_features, no = m->info.num_outputs, rows = XGB__PROBE_ROWS;
    float *x = malloc(rows * nf * sizeof *x), *a = malloc(rows * no * sizeof *a);
    const float *ref = NULL;
    uint64_t cols = 0;
    int rc = x && a ? MD_OK : md_fail(err, MD_E_NOMEM, "model", "no memory for the probe rows");
    if (rc == MD_OK) {
        xgb__forest_probe_rows(m->forest, x);
        xgb__forest_predict(m->forest, x, rows, a);
        rc = run_dense(m, x, rows, nf, &ref, &cols, err);
    }
    *worst = 0.0;
    for (size_t i = 0; rc == MD_OK && i < rows * no; i++) {
        double d = fabs((double)a[i] - ref[i]) / fmax(1.0, fabs((double)ref[i]));
        *worst = isnan(d) ? INFINITY : fmax(*worst, d);
    }
    free(x);
    free(a);
    return rc;
}

static int check_shap(xgb_model *m, md_err *err);

/* Invariant 3: keep the forest only if it gives libxgboost's answers on the probe rows. */
static int check_native(xgb_model *m, md_err *err)
{
    double worst = INFINITY;
    int rc = MD_OK;
    if (xgb__forest_outputs(m->forest) == m->info.num_outputs)
        rc = native_diff(m, &worst, err);
    if (rc != MD_OK || worst <= 1e-5)
        return rc;
    md_log(MD_LOG_WARN, "xgboost: our tree walk differs from libxgboost (%g): using libxgboost",
           worst);
    xgb__forest_free(m->forest);
    m->forest = NULL;
    return MD_OK;
}

/* After libxgboost loaded and probed the model: our evaluator, unless opts ask otherwise. */
static int build_native(xgb_model *m, const json_t *doc, const xgb_opts *opts, md_err *err)
{
    if (opts && opts->engine == XGB_ENGINE_LIBXGBOOST)
        return MD_OK;
    int rc = xgb__forest_build(doc, &m->info, &m->forest, err);
    if (rc == MD_OK && m->forest)
        rc = check_native(m, err);
    if (rc == MD_OK && m->forest && opts && opts->shap == XGB_SHAP_PATHS)
        xgb__forest_drop_tables(m->forest);
    if (rc == MD_OK && xgb__forest_has_shap(m->forest))
        rc = check_shap(m, err);
    return rc;
}

int xgb_model_load_bytes(const void *bytes, size_t len, const xgb_opts *opts, xgb_model **out,
                         md_err *err)
{
    *out = NULL;
    size_t max = opts && opts->max_bytes ? opts->max_bytes : XGB_DEFAULT_MAX_BYTES;
    if (len > max)
        return md_fail(err, MD_E_TOO_LARGE, "model", "the model is %zu bytes, over the %zu limit",
                       len, max);
    xgb_model *m = calloc(1, sizeof *m);
    if (!m)
        return md_fail(err, MD_E_NOMEM, "model", "no memory for the model");
    json_t *doc = NULL;
    int rc = check_document(bytes, len, &m->info, &doc, err);
    char nthread[16];
    snprintf(nthread, sizeof nthread, "%d", opts && opts->nthread > 0 ? opts->nthread : 1);
    if (rc == MD_OK && XGBoosterCreate(NULL, 0, &m->booster) != 0)
        rc = xgb__fail(err, MD_E_INTERNAL, "cannot create a booster");
    if (rc == MD_OK && XGBoosterLoadModelFromBuffer(m->booster, bytes, (bst_ulong)len) != 0)
        rc = xgb__fail(err, MD_E_MODEL_INVALID, "XGBoost rejected the model");
    if (rc == MD_OK && XGBoosterSetParam(m->booster, "nthread", nthread) != 0)
        rc = xgb__fail(err, MD_E_INTERNAL, "cannot set nthread");
    if (rc == MD_OK && XGBoosterBoostedRounds(m->booster, &m->info.boosted_rounds) != 0)
        rc = xgb__fail(err, MD_E_MODEL_INVALID, "cannot count boosted rounds");
    if (rc == MD_OK)
        rc = probe_outputs(m, err);
    if (rc == MD_OK)
        rc = build_native(m, doc, opts, err);
    json_decref(doc);
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

/* The size checks both engines share: MD_OK to go on, with *need the floats written. */
static int check_call(const xgb_model *m, size_t nrows, size_t ncols, size_t out_cap, size_t *need,
                      md_err *err)
{
    if (ncols != m->info.num_features)
        return md_fail(err, MD_E_INVALID_PARAM, "ncols",
                       "the model takes %llu features per row, got %zu",
                       (unsigned long long)m->info.num_features, ncols);
    *need = 0;
    if (nrows > SIZE_MAX / sizeof(float) / ncols || nrows > SIZE_MAX / m->info.num_outputs)
        return md_fail(err, MD_E_INVALID_PARAM, "nrows", "%zu rows is too many", nrows);
    *need = nrows * m->info.num_outputs;
    if (out_cap < *need)
        return md_fail(err, MD_E_INVALID_PARAM, "out", "the output needs %zu floats, %zu given",
                       *need, out_cap);
    return MD_OK;
}

int xgb_predict_reference(const xgb_model *m, const float *rows, size_t nrows, size_t ncols,
                          float *out, size_t out_cap, md_err *err)
{
    size_t need = 0;
    int rc = check_call(m, nrows, ncols, out_cap, &need, err);
    if (rc != MD_OK || nrows == 0)
        return rc;
    const float *res = NULL;
    uint64_t cols = 0;
    rc = run_dense(m, rows, nrows, ncols, &res, &cols, err);
    if (rc)
        return rc;
    if (cols != m->info.num_outputs)
        return md_fail(err, MD_E_INTERNAL, "model",
                       "XGBoost returned %llu outputs per row, expected %llu",
                       (unsigned long long)cols, (unsigned long long)m->info.num_outputs);
    memcpy(out, res, need * sizeof *out);
    return MD_OK;
}

static const char CONTRIB_CONFIG[] =
    "{\"type\": 2, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, "
    "\"strict_shape\": true}";

/* The size checks of both contribution engines: MD_OK to go on, with *need the floats
 * written. */
static int check_contrib_call(const xgb_model *m, size_t nrows, size_t ncols, size_t out_cap,
                              size_t *need, md_err *err)
{
    size_t groups = m->info.num_class > 1 ? (size_t)m->info.num_class : 1, width = ncols + 1;
    *need = 0;
    if (ncols != m->info.num_features)
        return md_fail(err, MD_E_INVALID_PARAM, "ncols",
                       "the model takes %llu features per row, got %zu",
                       (unsigned long long)m->info.num_features, ncols);
    if (nrows > SIZE_MAX / sizeof(float) / groups / width)
        return md_fail(err, MD_E_INVALID_PARAM, "nrows", "%zu rows is too many", nrows);
    *need = nrows * groups * width;
    if (out_cap < *need)
        return md_fail(err, MD_E_INVALID_PARAM, "out", "the output needs %zu floats, %zu given",
                       *need, out_cap);
    return MD_OK;
}

/* libxgboost's pred_contribs into out (need floats; sizes checked). */
static int contrib_dmatrix(const xgb_model *m, const float *rows, size_t nrows, size_t ncols,
                           float *out, size_t need, md_err *err)
{
    size_t groups = m->info.num_class > 1 ? (size_t)m->info.num_class : 1, width = ncols + 1;
    DMatrixHandle d = NULL;
    if (XGDMatrixCreateFromMat(rows, (bst_ulong)nrows, (bst_ulong)ncols, NAN, &d) != 0)
        return xgb__fail(err, MD_E_INTERNAL, "cannot make the contribution matrix");
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *res = NULL;
    int rc = MD_OK;
    if (XGBoosterPredictFromDMatrix(m->booster, d, CONTRIB_CONFIG, &shape, &dim, &res) != 0)
        rc = xgb__fail(err, MD_E_INTERNAL, "contributions failed");
    else if (dim != 3 || shape[0] != nrows || shape[1] != groups || shape[2] != width)
        rc = md_fail(err, MD_E_INTERNAL, "model",
                     "XGBoost returned an unexpected contribution "
                     "shape");
    else
        memcpy(out, res, need * sizeof *out);
    XGDMatrixFree(d);
    return rc;
}

int xgb_contributions_reference(const xgb_model *m, const float *rows, size_t nrows, size_t ncols,
                                float *out, size_t out_cap, md_err *err)
{
    size_t need = 0;
    int rc = check_contrib_call(m, nrows, ncols, out_cap, &need, err);
    if (rc != MD_OK || nrows == 0)
        return rc;
    return contrib_dmatrix(m, rows, nrows, ncols, out, need, err);
}

/* Our TreeSHAP into out (sizes checked), with the per-tree scratch of n_features + 1 floats
 * on the stack for the usual widths. */
static int contrib_native(const xgb_model *m, const float *rows, size_t nrows, float *out,
                          md_err *err)
{
    size_t width = m->info.num_features + 1;
    float stack[256];
    float *scratch = width <= 256 ? stack : malloc(width * sizeof *scratch);
    if (!scratch)
        return md_fail(err, MD_E_NOMEM, "out", "no memory for the contributions");
    xgb__forest_contributions(m->forest, rows, nrows, out, scratch);
    if (scratch != stack)
        free(scratch);
    return MD_OK;
}

int xgb_contributions(const xgb_model *m, const float *rows, size_t nrows, size_t ncols, float *out,
                      size_t out_cap, md_err *err)
{
    size_t need = 0;
    int rc = check_contrib_call(m, nrows, ncols, out_cap, &need, err);
    if (rc != MD_OK || nrows == 0)
        return rc;
    if (xgb__forest_has_shap(m->forest))
        return contrib_native(m, rows, nrows, out, err);
    return contrib_dmatrix(m, rows, nrows, ncols, out, need, err);
}

int xgb_predict(const xgb_model *m, const float *rows, size_t nrows, size_t ncols, float *out,
                size_t out_cap, md_err *err)
{
    if (!m->forest)
        return xgb_predict_reference(m, rows, nrows, ncols, out, out_cap, err);
    size_t need = 0;
    int rc = check_call(m, nrows, ncols, out_cap, &need, err);
    if (rc == MD_OK && nrows > 0)
        xgb__forest_predict(m->forest, rows, nrows, out);
    return rc;
}

/* The largest difference (relative above 1) between our TreeSHAP and libxgboost's on the
 * probe rows, into *worst (infinity for a NaN). */
static int shap_diff(const xgb_model *m, double *worst, md_err *err)
{
    size_t nf = m->info.num_features, rows = XGB__PROBE_ROWS;
    size_t n = rows * (m->info.num_class > 1 ? (size_t)m->info.num_class : 1) * (nf + 1);
    float *x = malloc(rows * nf * sizeof *x), *a = malloc(n * sizeof *a),
          *b = malloc(n * sizeof *b);
    int rc =
        x && a && b ? MD_OK : md_fail(err, MD_E_NOMEM, "model", "no memory for the probe rows");
    if (rc == MD_OK) {
        xgb__forest_probe_rows(m->forest, x);
        rc = xgb_contributions(m, x, rows, nf, a, n, err);
    }
    if (rc == MD_OK)
        rc = xgb_contributions_reference(m, x, rows, nf, b, n, err);
    *worst = 0.0;
    for (size_t i = 0; rc == MD_OK && i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)b[i]));
        *worst = isnan(d) ? INFINITY : fmax(*worst, d);
    }
    free(x);
    free(a);
    free(b);
    return rc;
}

/* Invariant 4: keep our TreeSHAP only if it gives libxgboost's contributions at load (the
 * tables first; then the path algorithm, XGBoost's own arithmetic). */
static int check_shap(xgb_model *m, md_err *err)
{
    double worst = INFINITY;
    int rc = shap_diff(m, &worst, err);
    if (rc == MD_OK && worst > 1e-5 && xgb__forest_has_tables(m->forest)) {
        md_log(MD_LOG_WARN,
               "xgboost: our TreeSHAP tables differ from libxgboost (%g): using "
               "the path algorithm",
               worst);
        xgb__forest_drop_tables(m->forest);
        rc = shap_diff(m, &worst, err);
    }
    if (rc != MD_OK || worst <= 1e-5)
        return rc;
    md_log(MD_LOG_WARN, "xgboost: our TreeSHAP differs from libxgboost (%g): using libxgboost",
           worst);
    xgb__forest_free_shap(m->forest);
    return MD_OK;
}

const char *xgb_model_shap_engine(const xgb_model *m)
{
    if (!xgb__forest_has_shap(m->forest))
        return "libxgboost";
    return xgb__forest_has_tables(m->forest) ? "tables" : "paths";
}

const char *xgb_model_engine(const xgb_model *m)
{
    return m->forest ? "native" : "libxgboost";
}

void xgb_model_free(xgb_model *m)
{
    if (!m)
        return;
    if (m->booster)
        XGBoosterFree(m->booster);
    xgb__forest_free(m->forest);
    free(m);
}
