/* train.c - xgb_train: boosting a new model in process with libxgboost's C API, for the
 * retraining job of issue 11 §4 (the Python scripts of training/ make the shipped versions;
 * this makes the later ones from stored datasets or feedback, without Python on the server).
 *
 * The sequence is XGBoost's own training loop, unrolled so that each round can report progress
 * and be cancelled: XGDMatrixCreateFromMat (dense, NaN missing) + XGDMatrixSetFloatInfo
 * ("label"), XGBoosterCreate on it, XGBoosterSetParam for each parameter, then
 * XGBoosterUpdateOneIter per round, XGBoosterSaveModelToBuffer (JSON) and
 * XGBoosterSaveJsonConfig.
 *
 * Invariants:
 *   1. The booster is private to the call (created and freed here): training never touches a
 *      loaded model, which stays immutable for the requests that use it (xgb.c invariant 2).
 *   2. nthread is set before any other parameter and is at most 2, so a retraining job takes a
 *      bounded share of the machine; with nthread 1 and a fixed seed the bytes are the same on
 *      every run (the unit test checks it).
 *   3. Every handle is freed on every path (the cascading labels of xgb_train).
 */
#include "xgb/xgb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

#include "xgb/xgb_int.h"

static int check_opts(size_t nrows, size_t ncols, const xgb_train_opts *o, md_err *err)
{
    if (!o)
        return md_fail(err, MD_E_INVALID_PARAM, "params", "training options are required");
    if (o->rounds < 1 || o->rounds > XGB_TRAIN_MAX_ROUNDS)
        return md_fail(err, MD_E_INVALID_PARAM, "rounds", "must be in 1..%d", XGB_TRAIN_MAX_ROUNDS);
    if (o->nthread < 0 || o->nthread > 2)
        return md_fail(err, MD_E_INVALID_PARAM, "nthread", "must be in 0..2");
    if (o->nparams > XGB_TRAIN_MAX_PARAMS || (o->nparams && !o->params))
        return md_fail(err, MD_E_INVALID_PARAM, "params", "at most %d parameters",
                       XGB_TRAIN_MAX_PARAMS);
    if (nrows == 0 || ncols == 0)
        return md_fail(err, MD_E_INVALID_PARAM, "rows", "nothing to train on (%zu x %zu)", nrows,
                       ncols);
    if (nrows > (size_t)UINT32_MAX || ncols > (size_t)1 << 20 || nrows > SIZE_MAX / ncols)
        return md_fail(err, MD_E_INVALID_PARAM, "rows", "too many rows or columns");
    for (size_t i = 0; i < o->nparams; i++)
        if (!o->params[i].key || !o->params[i].value || strcmp(o->params[i].key, "nthread") == 0)
            return md_fail(err, MD_E_INVALID_PARAM, "params",
                           "parameter %zu: a key and a value are needed (nthread is set by the "
                           "caller)",
                           i);
    return MD_OK;
}

/* nthread first (invariant 2), then the caller's parameters in order. */
static int set_params(BoosterHandle b, const xgb_train_opts *o, md_err *err)
{
    char nt[8];
    snprintf(nt, sizeof nt, "%d", o->nthread ? o->nthread : 1);
    if (XGBoosterSetParam(b, "nthread", nt) != 0)
        return xgb__fail(err, MD_E_INTERNAL, "cannot set nthread");
    for (size_t i = 0; i < o->nparams; i++) {
        if (XGBoosterSetParam(b, o->params[i].key, o->params[i].value) != 0) {
            char field[80];
            snprintf(field, sizeof field, "params.%.60s", o->params[i].key);
            xgb__fail(err, MD_E_INVALID_PARAM, "parameter refused");
            return md_fail(err, MD_E_INVALID_PARAM, field, "XGBoost refused the value %.60s",
                           o->params[i].value);
        }
    }
    return MD_OK;
}

/* The rounds; a value XGBoost refuses surfaces at the first update (it configures lazily). */
static int boost(BoosterHandle b, DMatrixHandle d, const xgb_train_opts *o, md_err *err)
{
    for (int i = 0; i < o->rounds; i++) {
        if (XGBoosterUpdateOneIter(b, i, d) != 0)
            return xgb__fail(err, i == 0 ? MD_E_INVALID_PARAM : MD_E_INTERNAL,
                             i == 0 ? "the training parameters were refused" : "a round failed");
        if (o->on_round) {
            int rc = o->on_round(o->user, i + 1, o->rounds, err);
            if (rc != MD_OK)
                return rc;
        }
    }
    return MD_OK;
}

/* Copy n bytes of XGBoost's buffer (valid until its next call on the booster) into *out. */
static int copy_out(const char *p, bst_ulong n, char **out, size_t *len, md_err *err)
{
    *out = malloc((size_t)n + 1);
    if (!*out)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    memcpy(*out, p, (size_t)n);
    (*out)[n] = '\0';
    if (len)
        *len = (size_t)n;
    return MD_OK;
}

static int save(BoosterHandle b, char **model, size_t *len, char **config, md_err *err)
{
    bst_ulong n = 0;
    const char *p = NULL;
    if (XGBoosterSaveModelToBuffer(b, "{\"format\": \"json\"}", &n, &p) != 0)
        return xgb__fail(err, MD_E_INTERNAL, "cannot save the model");
    int rc = copy_out(p, n, model, len, err);
    if (rc != MD_OK || !config)
        return rc;
    if (XGBoosterSaveJsonConfig(b, &n, &p) != 0)
        rc = xgb__fail(err, MD_E_INTERNAL, "cannot save the configuration");
    else
        rc = copy_out(p, n, config, NULL, err);
    if (rc != MD_OK) {
        free(*model);
        *model = NULL;
    }
    return rc;
}

int xgb_train(const float *x, size_t nrows, size_t ncols, const float *y, const xgb_train_opts *o,
              char **model, size_t *len, char **config, md_err *err)
{
    *model = NULL;
    *len = 0;
    if (config)
        *config = NULL;
    int rc = check_opts(nrows, ncols, o, err);
    if (rc != MD_OK)
        return rc;
    DMatrixHandle d = NULL;
    BoosterHandle b = NULL;
    if (XGDMatrixCreateFromMat(x, (bst_ulong)nrows, (bst_ulong)ncols, NAN, &d) != 0)
        return xgb__fail(err, MD_E_INTERNAL, "cannot hold the training rows");
    if (XGDMatrixSetFloatInfo(d, "label", y, (bst_ulong)nrows) != 0) {
        rc = xgb__fail(err, MD_E_INVALID_PARAM, "cannot set the labels");
        goto fail_matrix;
    }
    if (XGBoosterCreate(&d, 1, &b) != 0) {
        rc = xgb__fail(err, MD_E_INTERNAL, "cannot create a booster");
        goto fail_matrix;
    }
    rc = set_params(b, o, err);
    if (rc == MD_OK)
        rc = boost(b, d, o, err);
    if (rc == MD_OK)
        rc = save(b, model, len, config, err);
    XGBoosterFree(b);
fail_matrix:
    XGDMatrixFree(d);
    return rc;
}
