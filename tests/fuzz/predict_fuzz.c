/* predict_fuzz.c - libFuzzer target for the prediction requests (src/pipelines/predict*.c):
 * the JSON a client sends to POST /api/{model} and /api/{model}/batch, run against the seven
 * shipped predict models (input_schema validation, row building, every postprocessing task:
 * bands, price grid, budget optimiser, forecast recursion, anomaly reasons).
 *
 * Input: the first byte picks the model; the rest is JSON. An object with "features" (and
 * optionally "options") is a single request; an array is a batch ("items"); any other JSON is
 * passed as the features themselves. Invariants checked: an accepted request answers an object
 * with "prediction" (single) or "predictions" + "failed" (batch); a refused one carries an md
 * code, and a refusal for bad input names its field. Never a crash, leak or hang. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/err.h"
#include "models/models.h"
#include "pipelines/pipelines.h"

static const char *const MODELS[] = {"churn",  "profitability", "revenue-leak", "pricing",
                                     "budget", "demand",        "anomaly"};
enum { N_MODELS = sizeof MODELS / sizeof MODELS[0] };

static mdl_registry *reg;
static pl_ctx cx;

static void open_registry(void)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models", MODELD_SOURCE_ROOT);
    mdl_registry_opts o = {.shipped_dir = dir, .load_all = false};
    md_err e = {0};
    if (mdl_registry_open(&o, &reg, &e) != MD_OK)
        abort();
    cx.models = reg;
}

/* A refusal of the client's input must say which field is wrong. */
static void check_refusal(int rc, const md_err *e)
{
    if (rc == MD_OK)
        abort();
    if ((rc == MD_E_INVALID_PARAM || rc == MD_E_MISSING_FIELD) && e->field[0] == 0)
        abort();
}

static void run_single(const char *model, json_t *req)
{
    json_t *features = req, *options = NULL;
    if (json_is_object(req) && json_object_get(req, "features")) {
        features = json_object_get(req, "features");
        options = json_object_get(req, "options");
    }
    json_t *out = NULL;
    md_err e = {0};
    int rc = pl_predict(&cx, model, features, options, &out, &e);
    if (rc == MD_OK) {
        if (!json_is_object(out) || !json_object_get(out, "prediction"))
            abort();
        json_decref(out);
    } else {
        check_refusal(rc, &e);
    }
}

static void run_batch(const char *model, json_t *items)
{
    json_t *out = NULL;
    md_err e = {0};
    int rc = pl_predict_batch(&cx, model, items, NULL, &out, &e);
    if (rc == MD_OK) {
        if (!json_is_array(json_object_get(out, "predictions")) ||
            !json_is_array(json_object_get(out, "failed")))
            abort();
        json_decref(out);
    } else {
        check_refusal(rc, &e);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!reg)
        open_registry();
    if (size < 1)
        return 0;
    const char *model = MODELS[data[0] % N_MODELS];
    json_t *req = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
    if (!req)
        return 0;
    if (json_is_array(req))
        run_batch(model, req);
    else
        run_single(model, req);
    json_decref(req);
    return 0;
}
