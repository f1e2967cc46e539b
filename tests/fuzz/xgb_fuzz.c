/* xgb_fuzz.c - hostile XGBoost model bytes: src/xgb's format check, then libxgboost's own
 * JSON/UBJSON readers and our tree validation, our flattened trees (forest.c), then one
 * prediction through each engine and the contributions on whatever loaded.
 * Seeds: tests/fuzz/corpus/xgb_fuzz (one-tree models from tests/fixtures/xgb/gen.py). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "xgb/xgb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    xgb_model *m = NULL;
    md_err err;
    if (xgb_model_load_bytes(data, size, NULL, &m, &err) != MD_OK)
        return 0;
    const xgb_info *info = xgb_model_info(m);
    size_t groups = info->num_class > 1 ? info->num_class : 1;
    size_t ncontrib = groups * (info->num_features + 1);
    float *row = calloc(info->num_features, sizeof *row);
    float *out = calloc(info->num_outputs, sizeof *out);
    float *contrib = calloc(ncontrib, sizeof *contrib);
    if (row && out && contrib) {
        xgb_predict(m, row, 1, info->num_features, out, info->num_outputs, &err);
        xgb_predict_reference(m, row, 1, info->num_features, out, info->num_outputs, &err);
        xgb_contributions(m, row, 1, info->num_features, contrib, ncontrib, &err);
    }
    free(row);
    free(out);
    free(contrib);
    xgb_model_free(m);
    return 0;
}
