/* onnx_load_fuzz.c - libFuzzer target for the ONNX loader and, when a model loads, one run of
 * it on zero-filled inputs of its declared shapes (symbolic dims = 2): hostile models must
 * fail with an error code, never crash, leak or read out of bounds. Limits keep each input
 * small so the fuzzer explores structure, not memory size. A valid model may still ask for a
 * lot of work (a Loop with a large trip count took 11 s): the run carries a cancel token with a
 * deadline, as every server request does, so such a model stops with MD_E_TIMEOUT. */
#include <stddef.h>
#include <stdint.h>

#include "base/cancel.h"
#include "base/clock.h"
#include "onnx/onnx.h"

#define RUN_DEADLINE_NS 1000000000ull

#define MAX_INPUTS 16

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
        int rank = vi[made].rank < 0 ? 1 : vi[made].rank;
        for (int d = 0; d < rank; d++)
            dims[d] = vi[made].rank < 0 || vi[made].dims[d] < 0 ? 2 : vi[made].dims[d];
        onnx_tensor probe = {.rank = rank};
        for (int d = 0; d < rank; d++)
            probe.dims[d] = dims[d];
        int64_t numel = onnx_tensor_numel(&probe);
        if (numel < 0 || numel > 4096 ||
            onnx_tensor_new(vi[made].dtype, rank, dims, &in[made], NULL) != MD_OK)
            break;
        bound[made] = *in[made];
    }
    if (made == n) {
        onnx_result *r = NULL;
        md_cancel cancel;
        md_cancel_init(&cancel, md_now_ns() + RUN_DEADLINE_NS);
        onnx_run_opts ro = {.cancel = &cancel};
        if (onnx_run(m, bound, n, &ro, &r, NULL) == MD_OK)
            onnx_result_free(r);
    }
    for (size_t i = 0; i < made; i++)
        onnx_tensor_free(in[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    onnx_load_opts o = {.max_file_bytes = 1 << 20, .max_tensor_bytes = 1 << 20,
                        .max_value_bytes = 16 << 20, .max_plans = 2};
    onnx_model *m = NULL;
    md_err err;
    if (onnx_model_load_bytes(data, size, &o, &m, &err) == MD_OK) {
        run_once(m);
        onnx_model_free(m);
    }
    return 0;
}
