/* onnx_ml_fuzz.c - hostile ai.onnx.ml models (src/onnx/ops/ml_*.c): the seeds are small
 * tree-ensemble, linear, scaler, normalizer and ZipMap models from tests/fixtures/onnx_ml, so
 * mutations land in their attributes (node ids, children, modes, weights, label lists). A model
 * that loads is run on inputs of its declared shapes (unknown dims = 3) whose values cycle
 * through numbers, NaN and infinities, because which branches a tree takes depends on them
 * (onnx_load_fuzz.c runs zeros). Every failure must be an error code. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "onnx/onnx.h"

#define MAX_INPUTS 4
#define MAX_NUMEL 4096

static void fill(onnx_tensor *t, int64_t numel)
{
    static const double vals[] = {0.0, 1.0, -0.5, 2.5, NAN, 1e30, -INFINITY, 0.25, -3.0, 7.0};
    for (int64_t i = 0; i < numel; i++) {
        double v = vals[i % 10];
        switch (t->dtype) {
        case ONNX_FLOAT:
            ((float *)t->data)[i] = (float)v;
            break;
        case ONNX_DOUBLE:
            ((double *)t->data)[i] = v;
            break;
        case ONNX_INT64:
            ((int64_t *)t->data)[i] = fabs(v) < 1e9 ? (int64_t)v : -1;
            break;
        case ONNX_INT32:
            ((int32_t *)t->data)[i] = fabs(v) < 1e9 ? (int32_t)v : -1;
            break;
        default:
            break; /* other dtypes stay zero-filled */
        }
    }
}

static void run_once(const onnx_model *m)
{
    size_t n;
    const onnx_value_info *vi = onnx_model_inputs(m, &n);
    if (n > MAX_INPUTS)
        return;
    onnx_tensor *in[MAX_INPUTS] = {0};
    onnx_tensor bound[MAX_INPUTS];
    size_t made = 0;
    for (; made < n; made++) {
        int64_t dims[ONNX_MAX_RANK];
        int rank = vi[made].rank < 0 ? 2 : vi[made].rank;
        onnx_tensor probe = {.rank = rank};
        for (int d = 0; d < rank; d++)
            probe.dims[d] = dims[d] =
                vi[made].rank < 0 || vi[made].dims[d] < 0 ? 3 : vi[made].dims[d];
        int64_t numel = onnx_tensor_numel(&probe);
        if (numel < 0 || numel > MAX_NUMEL || vi[made].dtype == ONNX_STRING ||
            onnx_tensor_new(vi[made].dtype, rank, dims, &in[made], NULL) != MD_OK)
            break;
        fill(in[made], numel);
        bound[made] = *in[made];
    }
    if (made == n) {
        onnx_result *r = NULL;
        if (onnx_run(m, bound, n, NULL, &r, NULL) == MD_OK)
            onnx_result_free(r);
    }
    for (size_t i = 0; i < made; i++)
        onnx_tensor_free(in[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    onnx_load_opts o = {.max_file_bytes = 1 << 20, .max_tensor_bytes = 1 << 20, .max_plans = 2};
    onnx_model *m = NULL;
    md_err err;
    if (onnx_model_load_bytes(data, size, &o, &m, &err) == MD_OK) {
        run_once(m);
        onnx_model_free(m);
    }
    return 0;
}
