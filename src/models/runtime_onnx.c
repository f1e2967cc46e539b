/* runtime_onnx.c - the "onnx" runtime: src/onnx behind the mdl_runtime table.
 *
 * The manifest names the tensors a client sends; the graph has its own order. At load the two
 * are matched by name and must agree (same inputs, declared outputs present, same datatypes,
 * same rank, equal fixed dims), so a manifest that lies about its model is refused before the
 * version can serve, instead of failing on every request.
 *
 * Invariants:
 *   1. in_map[g] is the manifest index of graph input g; every graph input has one, and the
 *      counts are equal (so every manifest input is a graph input).
 *   2. out_map[o] is the graph output index of manifest output o.
 *   3. Results borrow the engine's output buffers (no copy); the onnx_result is freed with the
 *      mdl_result.
 */
#include "models/models_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

atomic_int mdl__onnx_threads = 1;

typedef struct onnx_state {
    onnx_model *m;
    size_t n_in, n_out;
    size_t *in_map, *out_map;
    size_t bytes;
} onnx_state;

static int agree(const onnx_value_info *g, const mdl_io *io, const char *field, md_err *err)
{
    if (g->kind != ONNX_KIND_TENSOR)
        return md_fail(err, MD_E_MODEL_INVALID, field, "%s: %s is not a plain tensor in the graph",
                       field, io->name);
    if (g->dtype != io->dtype)
        return md_fail(err, MD_E_MODEL_INVALID, field, "%s: manifest says %s, the graph has %s",
                       field, mdl_dtype_name(io->dtype), onnx_dtype_name(g->dtype));
    if (g->rank >= 0 && g->rank != io->rank)
        return md_fail(err, MD_E_MODEL_INVALID, field, "%s: manifest rank %d, graph rank %d", field,
                       io->rank, g->rank);
    for (int k = 0; g->rank >= 0 && k < g->rank; k++)
        if (g->dims[k] >= 0 && io->dims[k] >= 0 && g->dims[k] != io->dims[k])
            return md_fail(err, MD_E_MODEL_INVALID, field,
                           "%s: dim %d is %lld in the manifest, %lld in the graph", field, k,
                           (long long)io->dims[k], (long long)g->dims[k]);
    return MD_OK;
}

static int map_inputs(onnx_state *s, const mdl_manifest *mf, md_err *err)
{
    size_t n;
    const onnx_value_info *gi = onnx_model_inputs(s->m, &n);
    if (n != mf->n_inputs)
        return md_fail(err, MD_E_MODEL_INVALID, "inputs",
                       "inputs: the manifest declares %zu, the graph has %zu", mf->n_inputs, n);
    s->n_in = n;
    for (size_t g = 0; g < n; g++) {
        size_t i = 0;
        while (i < mf->n_inputs && strcmp(mf->inputs[i].name, gi[g].name) != 0)
            i++;
        if (i == mf->n_inputs)
            return md_fail(err, MD_E_MODEL_INVALID, "inputs",
                           "inputs: graph input '%.100s' is not in the manifest", gi[g].name);
        char f[48];
        snprintf(f, sizeof f, "inputs[%zu]", i);
        int rc = agree(&gi[g], &mf->inputs[i], f, err);
        if (rc != MD_OK)
            return rc;
        s->in_map[g] = i;
    }
    return MD_OK;
}

static int map_outputs(onnx_state *s, const mdl_manifest *mf, md_err *err)
{
    size_t n;
    const onnx_value_info *go = onnx_model_outputs(s->m, &n);
    s->n_out = mf->n_outputs;
    for (size_t o = 0; o < mf->n_outputs; o++) {
        char f[48];
        snprintf(f, sizeof f, "outputs[%zu]", o);
        size_t g = 0;
        while (g < n && strcmp(go[g].name, mf->outputs[o].name) != 0)
            g++;
        if (g == n)
            return md_fail(err, MD_E_MODEL_INVALID, f, "%s: the graph has no output '%.100s'", f,
                           mf->outputs[o].name);
        int rc = agree(&go[g], &mf->outputs[o], f, err);
        if (rc != MD_OK)
            return rc;
        s->out_map[o] = g;
    }
    return MD_OK;
}

static void onnx_rt_free(void *state)
{
    onnx_state *s = state;
    if (!s)
        return;
    onnx_model_free(s->m);
    free(s->in_map);
    free(s->out_map);
    free(s);
}

static int onnx_rt_load(const char *path, const mdl_manifest *mf, void **state, md_err *err)
{
    *state = NULL;
    onnx_state *s = calloc(1, sizeof *s);
    if (s) {
        s->in_map = calloc(mf->n_inputs, sizeof *s->in_map);
        s->out_map = calloc(mf->n_outputs, sizeof *s->out_map);
    }
    if (!s || !s->in_map || !s->out_map) {
        onnx_rt_free(s);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    onnx_load_opts o = {.threads = atomic_load(&mdl__onnx_threads)};
    int rc = onnx_model_load_file(path, &o, &s->m, err);
    if (rc == MD_OK)
        rc = map_inputs(s, mf, err);
    if (rc == MD_OK)
        rc = map_outputs(s, mf, err);
    struct stat sb;
    s->bytes = stat(path, &sb) == 0 ? (size_t)sb.st_size : 0;
    if (rc != MD_OK) {
        onnx_rt_free(s);
        return rc;
    }
    *state = s;
    return MD_OK;
}

static int collect(onnx_state *s, const mdl_manifest *mf, onnx_result * or, mdl_result **out,
                   md_err *err)
{
    mdl_result *r = mdl__result_new(s->n_out);
    if (!r) {
        onnx_result_free(or);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    mdl__result_hold_onnx(r, or);
    for (size_t o = 0; o < s->n_out; o++) {
        const onnx_tensor *t = onnx_result_output(or, s->out_map[o]);
        if (!t || t->kind != ONNX_KIND_TENSOR) {
            mdl_result_free(r);
            return md_fail(err, MD_E_INTERNAL, mf->outputs[o].name,
                           "output %s is not a plain tensor", mf->outputs[o].name);
        }
        mdl__result_set(r, o, mf->outputs[o].name, t->dtype, t->rank, t->dims, t->data, NULL);
    }
    *out = r;
    return MD_OK;
}

static int onnx_rt_run(void *state, const mdl_manifest *mf, const mdl_tensor *inputs, size_t n,
                       const md_cancel *cancel, mdl_result **out, md_err *err)
{
    onnx_state *s = state;
    *out = NULL;
    onnx_tensor in[64];
    if (n != s->n_in || n > 64)
        return md_fail(err, MD_E_INVALID_PARAM, "inputs", "expected %zu inputs", s->n_in);
    for (size_t g = 0; g < n; g++) {
        const mdl_tensor *t = &inputs[s->in_map[g]];
        memset(&in[g], 0, sizeof in[g]);
        in[g].dtype = t->dtype;
        in[g].rank = t->rank;
        memcpy(in[g].dims, t->dims, sizeof in[g].dims);
        in[g].data = (void *)t->data; /* onnx_run does not write its inputs */
    }
    onnx_result * or = NULL;
    /* The engine checks the token before every node, so a request past its deadline stops. */
    onnx_run_opts ro = {.cancel = cancel};
    int rc = onnx_run(s->m, in, n, &ro, & or, err);
    if (rc != MD_OK)
        return rc;
    return collect(s, mf, or, out, err);
}

static size_t onnx_rt_memory(const void *state)
{
    const onnx_state *s = state;
    return s ? s->bytes : 0;
}

const mdl_runtime mdl__runtime_onnx = {
    .name = "onnx",
    .load = onnx_rt_load,
    .run = onnx_rt_run,
    .memory = onnx_rt_memory,
    .free = onnx_rt_free,
};
