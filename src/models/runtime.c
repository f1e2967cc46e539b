/* runtime.c - the table of runtimes (ONNX, XGBoost) and the result object they all return.
 *
 * A runtime is a struct of four callbacks (load / run / memory / free, h2o's handler shape), so
 * the registry never knows which engine answers. A result holds its tensors' data either as
 * separately owned buffers (XGBoost writes into one it allocates) or borrowed from an engine
 * result it keeps until mdl_result_free (ONNX: no copy).
 *
 * Invariants:
 *   1. mdl_result_output(r, i) is valid for i < r->n until mdl_result_free(r).
 *   2. mdl_result_free frees every owned buffer and the held engine result, exactly once.
 */
#include "models/models_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mdl_result {
    size_t n;
    mdl_tensor *t;
    char (*names)[MDL_NAME_MAX * 2];
    void **owned;
    onnx_result *onnx;
};

static const mdl_runtime *const runtimes[] = {&mdl__runtime_onnx, &mdl__runtime_xgb};

const mdl_runtime *mdl_runtime_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof runtimes / sizeof runtimes[0]; i++)
        if (strcmp(runtimes[i]->name, name) == 0)
            return runtimes[i];
    return NULL;
}

int64_t mdl__numel(int rank, const int64_t *dims)
{
    int64_t n = 1;
    for (int k = 0; k < rank; k++) {
        if (dims[k] < 0 || (dims[k] > 0 && n > INT64_MAX / dims[k]))
            return -1;
        n *= dims[k];
    }
    return n;
}

mdl_result *mdl__result_new(size_t n)
{
    mdl_result *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->n = n;
    r->t = calloc(n ? n : 1, sizeof *r->t);
    r->names = calloc(n ? n : 1, sizeof *r->names);
    r->owned = calloc(n ? n : 1, sizeof *r->owned);
    if (!r->t || !r->names || !r->owned) {
        mdl_result_free(r);
        return NULL;
    }
    return r;
}

void mdl__result_set(mdl_result *r, size_t i, const char *name, int dtype, int rank,
                     const int64_t *dims, const void *data, void *owned)
{
    snprintf(r->names[i], sizeof r->names[i], "%s", name);
    r->t[i].name = r->names[i];
    r->t[i].dtype = dtype;
    r->t[i].rank = rank;
    memcpy(r->t[i].dims, dims, (size_t)rank * sizeof dims[0]);
    r->t[i].data = data;
    r->owned[i] = owned;
}

void mdl__result_hold_onnx(mdl_result *r, onnx_result *o)
{
    r->onnx = o;
}

size_t mdl_result_count(const mdl_result *r)
{
    return r ? r->n : 0;
}

const mdl_tensor *mdl_result_output(const mdl_result *r, size_t i)
{
    return r && i < r->n ? &r->t[i] : NULL;
}

void mdl_result_free(mdl_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->owned && i < r->n; i++)
        free(r->owned[i]);
    onnx_result_free(r->onnx);
    free(r->owned);
    free(r->names);
    free(r->t);
    free(r);
}
