/* validate.c - what a version must pass before it may serve: the artefact's SHA-256 equals the
 * manifest's, and the manifest's validation samples, run through the loaded runtime, give the
 * expected outputs within the tolerance (the warm-up of the VALIDATING state).
 *
 * Invariants:
 *   1. Validation runs the runtime directly, not mdl_run: a version's request statistics
 *      count only real requests.
 *   2. Comparison: |expected - actual| <= tolerance * max(1, |expected|) for numbers (absolute
 *      near zero, relative for large values); NaN matches only NaN; BOOL and BYTES exactly.
 *      Output shapes must equal the expected nested arrays' shapes.
 *   3. A mismatch names the sample, the output and the first differing element.
 */
#include "models/models_int.h"

#include <fcntl.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int mdl__sha256_file(const char *path, char hex[65], md_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return md_fail(err, MD_E_FILE_NOT_FOUND, "artefact", "the artefact file is missing");
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        crypto_hash_sha256_update(&st, buf, (unsigned long long)n);
    close(fd);
    if (n < 0)
        return md_fail(err, MD_E_IO, "artefact", "the artefact cannot be read");
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(hex, 65, h, sizeof h);
    return MD_OK;
}

/* Shape of nested arrays, following the first element at each level. */
static int json_shape(const json_t *v, mdl__jt *t)
{
    t->rank = 0;
    while (json_is_array(v)) {
        if (t->rank == MDL_MAX_RANK)
            return -1;
        t->dims[t->rank++] = (int64_t)json_array_size(v);
        v = json_array_get(v, 0);
    }
    return 0;
}

static int put_elem(const json_t *e, int dtype, void *data, size_t i)
{
    if (dtype == ONNX_STRING) {
        if (!json_is_string(e))
            return -1;
        ((const char **)data)[i] = json_string_value(e);
        return 0;
    }
    if (dtype == ONNX_BOOL) {
        if (!json_is_boolean(e))
            return -1;
        ((uint8_t *)data)[i] = json_is_true(e);
        return 0;
    }
    if (!json_is_number(e))
        return -1;
    double d = json_number_value(e);
    json_int_t k = json_integer_value(e);
    bool isint = json_is_integer(e);
    switch (dtype) {
    case ONNX_FLOAT:
        ((float *)data)[i] = (float)d;
        return 0;
    case ONNX_DOUBLE:
        ((double *)data)[i] = d;
        return 0;
    case ONNX_INT8:
        ((int8_t *)data)[i] = (int8_t)k;
        return isint && k >= INT8_MIN && k <= INT8_MAX ? 0 : -1;
    case ONNX_INT16:
        ((int16_t *)data)[i] = (int16_t)k;
        return isint && k >= INT16_MIN && k <= INT16_MAX ? 0 : -1;
    case ONNX_INT32:
        ((int32_t *)data)[i] = (int32_t)k;
        return isint && k >= INT32_MIN && k <= INT32_MAX ? 0 : -1;
    case ONNX_INT64:
        ((int64_t *)data)[i] = k;
        return isint ? 0 : -1;
    case ONNX_UINT8:
        ((uint8_t *)data)[i] = (uint8_t)k;
        return isint && k >= 0 && k <= UINT8_MAX ? 0 : -1;
    case ONNX_UINT16:
        ((uint16_t *)data)[i] = (uint16_t)k;
        return isint && k >= 0 && k <= UINT16_MAX ? 0 : -1;
    case ONNX_UINT32:
        ((uint32_t *)data)[i] = (uint32_t)k;
        return isint && k >= 0 && k <= (json_int_t)UINT32_MAX ? 0 : -1;
    case ONNX_UINT64:
        ((uint64_t *)data)[i] = (uint64_t)k;
        return isint && k >= 0 ? 0 : -1;
    default:
        return -1;
    }
}

/* Flatten level `lvl` of v into t->data from element *pos on; -1 when not rectangular or an
 * element has the wrong type. */
static int flatten(const json_t *v, int lvl, int dtype, mdl__jt *t, size_t *pos)
{
    if (lvl == t->rank)
        return json_is_array(v) ? -1 : put_elem(v, dtype, t->data, (*pos)++);
    if (!json_is_array(v) || (int64_t)json_array_size(v) != t->dims[lvl])
        return -1;
    for (size_t i = 0; i < json_array_size(v); i++)
        if (flatten(json_array_get(v, i), lvl + 1, dtype, t, pos) != 0)
            return -1;
    return 0;
}

int mdl__json_tensor(const json_t *v, const mdl_io *io, mdl__jt *t, const char *field, md_err *err)
{
    memset(t, 0, sizeof *t);
    if (io->dtype == ONNX_FLOAT16)
        return md_fail(err, MD_E_MODEL_INVALID, field,
                       "manifest: %s: FP16 validation samples are not supported", field);
    if (json_shape(v, t) != 0 || t->rank != io->rank)
        return md_fail(err, MD_E_MODEL_INVALID, field,
                       "manifest: %s must be nested arrays of rank %d", field, io->rank);
    for (int k = 0; k < t->rank; k++)
        if (io->dims[k] >= 0 && io->dims[k] != t->dims[k])
            return md_fail(err, MD_E_MODEL_INVALID, field,
                           "manifest: %s: dim %d is %lld, the shape says %lld", field, k,
                           (long long)t->dims[k], (long long)io->dims[k]);
    int64_t n = mdl__numel(t->rank, t->dims);
    if (n < 0 || n > (1 << 24))
        return md_fail(err, MD_E_MODEL_INVALID, field, "manifest: %s is too large", field);
    size_t esz = io->dtype == ONNX_STRING ? sizeof(char *) : onnx_dtype_size(io->dtype);
    t->numel = (size_t)n;
    t->data = calloc(t->numel ? t->numel : 1, esz);
    if (!t->data)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    size_t pos = 0;
    if (flatten(v, 0, io->dtype, t, &pos) != 0)
        return md_fail(err, MD_E_MODEL_INVALID, field,
                       "manifest: %s must be rectangular nested arrays of %s values", field,
                       mdl_dtype_name(io->dtype));
    return MD_OK;
}

void mdl__jt_free(mdl__jt *t)
{
    free(t->data);
    t->data = NULL;
}

double mdl__elem_double(const void *d, int dtype, size_t i)
{
    switch (dtype) {
    case ONNX_FLOAT:
        return ((const float *)d)[i];
    case ONNX_DOUBLE:
        return ((const double *)d)[i];
    case ONNX_INT8:
        return ((const int8_t *)d)[i];
    case ONNX_INT16:
        return ((const int16_t *)d)[i];
    case ONNX_INT32:
        return ((const int32_t *)d)[i];
    case ONNX_INT64:
        return (double)((const int64_t *)d)[i];
    case ONNX_UINT8:
    case ONNX_BOOL:
        return ((const uint8_t *)d)[i];
    case ONNX_UINT16:
        return ((const uint16_t *)d)[i];
    case ONNX_UINT32:
        return ((const uint32_t *)d)[i];
    case ONNX_UINT64:
        return (double)((const uint64_t *)d)[i];
    default:
        return NAN;
    }
}

static bool close_enough(double e, double a, double tol)
{
    if (isnan(e) || isnan(a))
        return isnan(e) && isnan(a);
    return fabs(e - a) <= tol * fmax(1.0, fabs(e));
}

/* Compare one produced output with the expected tensor. */
static int compare(const mdl_tensor *got, const mdl__jt *exp, const mdl_io *io, double tol,
                   const char *field, md_err *err)
{
    bool shape_ok = got->rank == exp->rank && got->dtype == io->dtype;
    for (int k = 0; shape_ok && k < exp->rank; k++)
        shape_ok = got->dims[k] == exp->dims[k];
    if (!shape_ok)
        return md_fail(err, MD_E_MODEL_INVALID, field,
                       "validation: %s has another shape or type than expected", field);
    for (size_t i = 0; i < exp->numel; i++) {
        bool ok;
        if (io->dtype == ONNX_STRING)
            ok = strcmp(((const char *const *)got->data)[i], ((const char **)exp->data)[i]) == 0;
        else
            ok = close_enough(mdl__elem_double(exp->data, io->dtype, i),
                              mdl__elem_double(got->data, io->dtype, i), tol);
        if (!ok)
            return md_fail(err, MD_E_MODEL_INVALID, field,
                           "validation mismatch: %s[%zu] = %.9g, expected %.9g (tolerance %g)",
                           field, i, mdl__elem_double(got->data, io->dtype, i),
                           mdl__elem_double(exp->data, io->dtype, i), tol);
    }
    return MD_OK;
}

static int check_outputs(const mdl_manifest *mf, const json_t *outs, const mdl_result *res,
                         size_t si, md_err *err)
{
    for (size_t o = 0; o < mf->n_outputs; o++) {
        const json_t *ev = json_object_get(outs, mf->outputs[o].name);
        if (!ev)
            continue;
        char f[64];
        snprintf(f, sizeof f, "validation.samples[%zu].outputs.%.24s", si, mf->outputs[o].name);
        mdl__jt exp;
        int rc = mdl__json_tensor(ev, &mf->outputs[o], &exp, f, err);
        if (rc == MD_OK)
            rc = compare(mdl_result_output(res, o), &exp, &mf->outputs[o], mf->tolerance, f, err);
        mdl__jt_free(&exp);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

static int run_sample(const mdl_version *v, const json_t *smp, size_t si, md_err *err)
{
    const mdl_manifest *mf = &v->mf;
    mdl__jt jt[MDL_MAX_RANK * 8] = {0};
    mdl_tensor in[MDL_MAX_RANK * 8];
    int rc = mf->n_inputs > sizeof jt / sizeof jt[0]
                 ? md_fail(err, MD_E_UNSUPPORTED, "inputs", "too many inputs to validate")
                 : MD_OK;
    const json_t *ins = json_object_get(smp, "inputs");
    for (size_t i = 0; rc == MD_OK && i < mf->n_inputs; i++) {
        char f[64];
        snprintf(f, sizeof f, "validation.samples[%zu].inputs.%.24s", si, mf->inputs[i].name);
        rc = mdl__json_tensor(json_object_get(ins, mf->inputs[i].name), &mf->inputs[i], &jt[i], f,
                              err);
        in[i] = (mdl_tensor){.name = mf->inputs[i].name,
                             .dtype = mf->inputs[i].dtype,
                             .rank = jt[i].rank,
                             .data = jt[i].data};
        memcpy(in[i].dims, jt[i].dims, sizeof in[i].dims);
    }
    mdl_result *res = NULL;
    if (rc == MD_OK)
        rc = v->rt->run(v->rt_state, mf, in, mf->n_inputs, NULL, &res, err);
    if (rc != MD_OK && err && err->code != MD_E_MODEL_INVALID)
        rc = md_fail(err, MD_E_MODEL_INVALID, "validation",
                     "validation: sample %zu failed to run: %.200s", si, md_err_message(err));
    if (rc == MD_OK)
        rc = check_outputs(mf, json_object_get(smp, "outputs"), res, si, err);
    mdl_result_free(res);
    for (size_t i = 0; i < mf->n_inputs && i < sizeof jt / sizeof jt[0]; i++)
        mdl__jt_free(&jt[i]);
    return rc;
}

int mdl__validate(const mdl_version *v, md_err *err)
{
    const json_t *samples = json_object_get(json_object_get(v->mf.doc, "validation"), "samples");
    for (size_t i = 0; i < json_array_size(samples); i++) {
        int rc = run_sample(v, json_array_get(samples, i), i, err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}
