/* runtime_xgb.c - the "xgboost" runtime: src/xgb behind the mdl_runtime table.
 *
 * An XGBoost model reads a dense float table and writes a float table, so its manifest must
 * say exactly that: one FP32 input of shape [-1, num_features] and one FP32 output of shape
 * [-1, num_outputs] (or [-1] when the model gives one value per row). Checked at load.
 *
 * Invariants:
 *   1. After load, the manifest input's dims[1] equals the model's num_features, so rows
 *      passed to xgb_predict always have the right width.
 *   2. The output buffer is owned by the result (nrows * num_outputs floats).
 */
#include "models/models_int.h"
#include "xgb/xgb.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct xgb_state {
    xgb_model *m;
    xgb_info info;
    size_t bytes;
} xgb_state;

static int check_manifest(const xgb_info *in, const mdl_manifest *mf, md_err *err)
{
    const mdl_io *i = &mf->inputs[0], *o = &mf->outputs[0];
    if (mf->n_inputs != 1 || i->dtype != ONNX_FLOAT || i->rank != 2 ||
        (i->dims[0] != -1 && i->dims[0] < 0))
        return md_fail(err, MD_E_MODEL_INVALID, "inputs",
                       "inputs: an xgboost model takes one FP32 input of shape [-1, features]");
    if (i->dims[1] != (int64_t)in->num_features)
        return md_fail(err, MD_E_MODEL_INVALID, "inputs[0].shape",
                       "inputs[0].shape: the model has %llu features, the manifest says %lld",
                       (unsigned long long)in->num_features, (long long)i->dims[1]);
    bool shape_ok = (o->rank == 2 && o->dims[1] == (int64_t)in->num_outputs) ||
                    (o->rank == 1 && in->num_outputs == 1);
    if (mf->n_outputs != 1 || o->dtype != ONNX_FLOAT || !shape_ok)
        return md_fail(err, MD_E_MODEL_INVALID, "outputs",
                       "outputs: an xgboost model gives one FP32 output of shape [-1, %llu]",
                       (unsigned long long)in->num_outputs);
    return MD_OK;
}

static void xgb_rt_free(void *state)
{
    xgb_state *s = state;
    if (!s)
        return;
    xgb_model_free(s->m);
    free(s);
}

static int xgb_rt_load(const char *path, const mdl_manifest *mf, void **state, md_err *err)
{
    *state = NULL;
    xgb_state *s = calloc(1, sizeof *s);
    if (!s)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = xgb_model_load(path, NULL, &s->m, err);
    if (rc == MD_OK) {
        s->info = *xgb_model_info(s->m);
        rc = check_manifest(&s->info, mf, err);
    }
    if (rc != MD_OK) {
        xgb_rt_free(s);
        return rc;
    }
    struct stat sb;
    s->bytes = stat(path, &sb) == 0 ? (size_t)sb.st_size : 0;
    *state = s;
    return MD_OK;
}

static int xgb_rt_run(void *state, const mdl_manifest *mf, const mdl_tensor *inputs, size_t n,
                      const md_cancel *cancel, mdl_result **out, md_err *err)
{
    xgb_state *s = state;
    *out = NULL;
    if (n != 1 || inputs[0].rank != 2 || inputs[0].dtype != ONNX_FLOAT)
        return md_fail(err, MD_E_INVALID_PARAM, mf->inputs[0].name, "%s must be one FP32 table",
                       mf->inputs[0].name);
    int rc = md_cancel_check(cancel, "xgboost predict", err);
    if (rc != MD_OK)
        return rc;
    size_t rows = (size_t)inputs[0].dims[0], nout = (size_t)s->info.num_outputs;
    if (rows > SIZE_MAX / sizeof(float) / (nout ? nout : 1) / 2)
        return md_fail(err, MD_E_INVALID_PARAM, mf->inputs[0].name, "too many rows");
    size_t cells = rows * nout;
    float *o = malloc((cells ? cells : 1) * sizeof *o);
    mdl_result *r = mdl__result_new(1);
    if (!o || !r) {
        free(o);
        mdl_result_free(r);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    rc = xgb_predict(s->m, inputs[0].data, rows, (size_t)inputs[0].dims[1], o, rows * nout, err);
    int64_t dims[2] = {(int64_t)rows, (int64_t)nout};
    mdl__result_set(r, 0, mf->outputs[0].name, ONNX_FLOAT, mf->outputs[0].rank, dims, o, o);
    if (rc != MD_OK) {
        mdl_result_free(r);
        return rc;
    }
    *out = r;
    return MD_OK;
}

static int xgb_rt_contribs(void *state, const float *rows, size_t nrows, size_t ncols,
                           float **out, size_t *n, size_t *groups, md_err *err)
{
    xgb_state *s = state;
    size_t g = s->info.num_class > 1 ? (size_t)s->info.num_class : 1;
    if (ncols != s->info.num_features)
        return md_fail(err, MD_E_INVALID_PARAM, "ncols", "the model takes %llu features per row",
                       (unsigned long long)s->info.num_features);
    if (nrows > SIZE_MAX / sizeof(float) / g / (ncols + 1))
        return md_fail(err, MD_E_INVALID_PARAM, "nrows", "too many rows");
    size_t cells = nrows * g * (ncols + 1);
    float *o = malloc((cells ? cells : 1) * sizeof *o);
    if (!o)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    *groups = g;
    int rc = xgb_contributions(s->m, rows, nrows, ncols, o, cells, err);
    if (rc != MD_OK) {
        free(o);
        return rc;
    }
    *out = o;
    *n = cells;
    return MD_OK;
}

static size_t xgb_rt_memory(const void *state)
{
    const xgb_state *s = state;
    return s ? s->bytes * 4 : 0; /* trees unpacked in libxgboost: a few times the file */
}

const mdl_runtime mdl__runtime_xgb = {
    .name = "xgboost",
    .load = xgb_rt_load,
    .run = xgb_rt_run,
    .contribs = xgb_rt_contribs,
    .memory = xgb_rt_memory,
    .free = xgb_rt_free,
};
