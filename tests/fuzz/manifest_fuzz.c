/* manifest_fuzz.c - libFuzzer target for modeld.json (src/models/manifest.c): arbitrary bytes
 * as a manifest. The parser must accept or refuse with MD_E_MODEL_INVALID naming a field, and
 * never crash, leak or read out of bounds; an accepted manifest must satisfy the invariants the
 * registry relies on (valid name/version, 64 hex digits, ranks within bounds). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "models/models_int.h"

static void check_accepted(const mdl_manifest *m)
{
    if (!mdl__name_ok(m->name) || !mdl__version_ok(m->version) || strlen(m->sha256) != 64 ||
        !mdl_runtime_find(m->runtime) || m->n_inputs == 0 || m->n_outputs == 0)
        abort();
    for (size_t i = 0; i < m->n_inputs; i++)
        if (m->inputs[i].rank < 0 || m->inputs[i].rank > MDL_MAX_RANK ||
            !mdl_dtype_name(m->inputs[i].dtype))
            abort();
    for (size_t i = 0; i < m->n_outputs; i++)
        if (m->outputs[i].rank < 0 || m->outputs[i].rank > MDL_MAX_RANK ||
            !mdl_dtype_name(m->outputs[i].dtype))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mdl_manifest m;
    md_err e = {0};
    int rc = mdl_manifest_parse((const char *)data, size, &m, &e);
    if (rc == MD_OK) {
        check_accepted(&m);
        mdl_manifest_free(&m);
    } else if (rc != MD_E_MODEL_INVALID && rc != MD_E_NOMEM) {
        abort();
    } else if (rc == MD_E_MODEL_INVALID && e.field[0] == 0) {
        abort(); /* every refusal names its field */
    }
    return 0;
}
