/* manifest.c - modeld.json, the manifest beside every model artefact (format in models.h).
 *
 * The manifest decides what a version accepts, what it answers and how it is validated before
 * it serves, so it is read strictly: every field has a type and a range, unknown keys are
 * refused (a typo like "validaton" must not silently drop validation), and every error names
 * the field the way a user would find it in the file ("inputs[1].shape[0]").
 *
 * Invariants:
 *   1. A manifest that parses has a valid name, version, runtime, artefact file name and a
 *      64-digit lower-case SHA-256; 1..64 inputs and outputs with unique names, known
 *      datatypes and shapes of rank <= MDL_MAX_RANK whose dims are -1 or >= 0.
 *   2. Validation samples name only declared inputs/outputs, give every input, and their
 *      nested arrays are rectangular, of the declared rank, agree with every fixed dim and
 *      hold values of the declared datatype (checked by converting them, as validation will).
 *   3. mdl_manifest_free frees exactly what parse allocated, also after a failed parse.
 */
#include "models/models_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_MAX_BYTES (4u << 20)
#define MAX_IOS 64

static const struct {
    const char *name;
    int dtype;
} dtypes[] = {
    {"BOOL", ONNX_BOOL},     {"UINT8", ONNX_UINT8},   {"UINT16", ONNX_UINT16},
    {"UINT32", ONNX_UINT32}, {"UINT64", ONNX_UINT64}, {"INT8", ONNX_INT8},
    {"INT16", ONNX_INT16},   {"INT32", ONNX_INT32},   {"INT64", ONNX_INT64},
    {"FP16", ONNX_FLOAT16},  {"FP32", ONNX_FLOAT},    {"FP64", ONNX_DOUBLE},
    {"BYTES", ONNX_STRING},
};

int mdl_dtype_parse(const char *oip_name)
{
    for (size_t i = 0; oip_name && i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, oip_name) == 0)
            return dtypes[i].dtype;
    return -1;
}

const char *mdl_dtype_name(int dtype)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].dtype == dtype)
            return dtypes[i].name;
    return NULL;
}

static const char *const family_names[] = {"generic", "vectorize", "enhance", "predict"};

const char *mdl_family_name(mdl_family f)
{
    if ((unsigned)f < sizeof family_names / sizeof family_names[0])
        return family_names[f];
    return "unknown";
}

/* [a-z0-9][a-z0-9_-]{0,63}: safe as a directory name and a URL segment. */
bool mdl__name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= MDL_NAME_MAX ||
        !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' ||
              s[i] == '-'))
            return false;
    return true;
}

/* [0-9A-Za-z._-]{1,31}, and not "." or "..": a directory name that cannot climb. */
bool mdl__version_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= MDL_VERSION_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* Integers numerically ("10" > "9", leading zeros ignored), anything else as strings. */
int mdl__version_cmp(const char *a, const char *b)
{
    if (all_digits(a) && all_digits(b)) {
        while (a[0] == '0' && a[1])
            a++;
        while (b[0] == '0' && b[1])
            b++;
        size_t la = strlen(a), lb = strlen(b);
        if (la != lb)
            return la < lb ? -1 : 1;
    }
    int c = strcmp(a, b);
    return c < 0 ? -1 : c > 0;
}

static int bad(md_err *err, const char *field, const char *msg)
{
    return md_fail(err, MD_E_MODEL_INVALID, field, "manifest: %s %s", field, msg);
}

/* A string field copied into out (cap bytes); required or optional. */
static int get_str(const json_t *o, const char *key, char *out, size_t cap, bool required,
                   md_err *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v)
        return required ? bad(err, key, "is required") : MD_OK;
    if (!json_is_string(v))
        return bad(err, key, "must be a string");
    size_t n = json_string_length(v);
    if (n == 0 || n >= cap || strlen(json_string_value(v)) != n)
        return bad(err, key, "has a bad length");
    memcpy(out, json_string_value(v), n + 1);
    return MD_OK;
}

static int check_keys(const json_t *o, const char *const *allowed, const char *where, md_err *err)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)o, key, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(allowed[i], key) == 0;
        if (!ok && !key[0]) /* an empty key has no name of its own: name its object */
            return bad(err, where[0] ? where : "manifest", "has an empty key");
        if (!ok) {
            char f[64];
            snprintf(f, sizeof f, "%s%s%.40s", where, where[0] ? "." : "", key);
            return bad(err, f, "is not a known field");
        }
    }
    return MD_OK;
}

static int parse_shape(const json_t *v, mdl_io *io, const char *field, md_err *err)
{
    char f[64];
    if (!json_is_array(v) || json_array_size(v) > MDL_MAX_RANK) {
        snprintf(f, sizeof f, "%s.shape", field);
        return bad(err, f, "must be an array of at most 8 dims");
    }
    io->rank = (int)json_array_size(v);
    for (int k = 0; k < io->rank; k++) {
        const json_t *d = json_array_get(v, (size_t)k);
        snprintf(f, sizeof f, "%s.shape[%d]", field, k);
        if (!json_is_integer(d) || json_integer_value(d) < -1 ||
            json_integer_value(d) > (1LL << 40))
            return bad(err, f, "must be an integer >= -1");
        io->dims[k] = json_integer_value(d);
    }
    return MD_OK;
}

static int parse_io(const json_t *v, mdl_io *io, const char *field, md_err *err)
{
    static const char *const keys[] = {"name", "datatype", "shape", "description", NULL};
    char f[64];
    if (!json_is_object(v))
        return bad(err, field, "must be an object");
    int rc = check_keys(v, keys, field, err);
    snprintf(f, sizeof f, "%s.name", field);
    const json_t *n = json_object_get(v, "name");
    if (rc == MD_OK && (!json_is_string(n) || json_string_length(n) == 0 ||
                        json_string_length(n) >= sizeof io->name ||
                        strlen(json_string_value(n)) != json_string_length(n)))
        rc = bad(err, f, "must be a non-empty string");
    if (rc != MD_OK)
        return rc;
    strcpy(io->name, json_string_value(n));
    snprintf(f, sizeof f, "%s.datatype", field);
    io->dtype = mdl_dtype_parse(json_string_value(json_object_get(v, "datatype")));
    if (io->dtype < 0)
        return bad(err, f,
                   "must be an OIP datatype (BOOL, INT8..INT64, UINT8..UINT64, FP16, "
                   "FP32, FP64, BYTES)");
    rc = parse_shape(json_object_get(v, "shape"), io, field, err);
    const json_t *d = json_object_get(v, "description");
    if (rc == MD_OK && d) {
        snprintf(f, sizeof f, "%s.description", field);
        if (!json_is_string(d))
            return bad(err, f, "must be a string");
        io->description = strdup(json_string_value(d));
        if (!io->description)
            return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    return rc;
}

static int parse_ios(const json_t *o, const char *key, mdl_io **out, size_t *n, md_err *err)
{
    const json_t *a = json_object_get(o, key);
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > MAX_IOS)
        return bad(err, key, "must be an array of 1..64 tensors");
    *out = calloc(json_array_size(a), sizeof **out);
    if (!*out)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    *n = json_array_size(a);
    for (size_t i = 0; i < *n; i++) {
        char f[48];
        snprintf(f, sizeof f, "%s[%zu]", key, i);
        int rc = parse_io(json_array_get(a, i), &(*out)[i], f, err);
        for (size_t j = 0; rc == MD_OK && j < i; j++)
            if (strcmp((*out)[j].name, (*out)[i].name) == 0) {
                snprintf(f, sizeof f, "%s[%zu].name", key, i);
                rc = bad(err, f, "repeats an earlier name");
            }
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

static int parse_enum(const json_t *o, md_err *err, mdl_manifest *m)
{
    const json_t *fam = json_object_get(o, "family");
    m->family = MDL_GENERIC;
    if (fam) {
        size_t i = 0;
        while (i < 4 &&
               !(json_is_string(fam) && strcmp(json_string_value(fam), family_names[i]) == 0))
            i++;
        if (i == 4)
            return bad(err, "family", "must be generic, vectorize, enhance or predict");
        m->family = (mdl_family)i;
    }
    int rc = get_str(o, "runtime", m->runtime, sizeof m->runtime, true, err);
    if (rc == MD_OK && !mdl_runtime_find(m->runtime))
        rc = bad(err, "runtime", "must be onnx or xgboost");
    const json_t *req = json_object_get(o, "required");
    if (rc == MD_OK && req && !json_is_boolean(req))
        rc = bad(err, "required", "must be true or false");
    m->required = json_is_true(req);
    return rc;
}

static int parse_ident(const json_t *o, mdl_manifest *m, md_err *err)
{
    int rc = get_str(o, "name", m->name, sizeof m->name, true, err);
    if (rc == MD_OK && !mdl__name_ok(m->name))
        rc = bad(err, "name", "must match [a-z0-9][a-z0-9_-]{0,63}");
    if (rc == MD_OK)
        rc = get_str(o, "version", m->version, sizeof m->version, true, err);
    if (rc == MD_OK && !mdl__version_ok(m->version))
        rc = bad(err, "version", "must match [0-9A-Za-z._-]{1,31}");
    if (rc == MD_OK)
        rc = get_str(o, "artefact", m->artefact, sizeof m->artefact, true, err);
    if (rc == MD_OK && (!mdl__version_ok(m->artefact) || m->artefact[0] == '.'))
        rc = bad(err, "artefact", "must be a plain file name in the version directory");
    if (rc == MD_OK)
        rc = get_str(o, "sha256", m->sha256, sizeof m->sha256, true, err);
    if (rc != MD_OK)
        return rc;
    for (int i = 0; i < 64; i++) {
        if (!isxdigit((unsigned char)m->sha256[i]))
            return bad(err, "sha256", "must be 64 hexadecimal digits");
        m->sha256[i] = (char)tolower((unsigned char)m->sha256[i]);
    }
    return m->sha256[64] ? bad(err, "sha256", "must be 64 hexadecimal digits") : MD_OK;
}

/* labels: strings; metrics: numbers; model_card: strings; free-form objects: objects. */
static int parse_extras(const json_t *o, md_err *err)
{
    const json_t *v = json_object_get(o, "description");
    if (v && !json_is_string(v))
        return bad(err, "description", "must be a string");
    v = json_object_get(o, "labels");
    if (v && !json_is_array(v))
        return bad(err, "labels", "must be an array of strings");
    for (size_t i = 0; v && i < json_array_size(v); i++)
        if (!json_is_string(json_array_get(v, i))) {
            char f[32];
            snprintf(f, sizeof f, "labels[%zu]", i);
            return bad(err, f, "must be a string");
        }
    static const char *const objs[] = {"preprocessing", "postprocessing", "input_schema", "metrics",
                                       "model_card", "training"};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) {
        v = json_object_get(o, objs[i]);
        if (v && !json_is_object(v))
            return bad(err, objs[i], "must be an object");
    }
    const char *key;
    const json_t *x;
    char f[64];
    json_object_foreach(json_object_get(o, "metrics"), key, x)
    {
        snprintf(f, sizeof f, "metrics.%.48s", key);
        if (!json_is_number(x))
            return bad(err, f, "must be a number");
    }
    json_object_foreach(json_object_get(o, "model_card"), key, x)
    {
        snprintf(f, sizeof f, "model_card.%.44s", key);
        if (!json_is_string(x))
            return bad(err, f, "must be a string");
    }
    return MD_OK;
}

static const mdl_io *find_io(const mdl_io *ios, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ios[i].name, name) == 0)
            return &ios[i];
    return NULL;
}

/* One side ("inputs" / "outputs") of a validation sample. */
static int parse_sample_side(const json_t *o, const mdl_io *ios, size_t n, bool all,
                             const char *field, md_err *err)
{
    char f[64];
    if (!json_is_object(o))
        return bad(err, field, "must be an object of tensors by name");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)o, key, v)
    {
        snprintf(f, sizeof f, "%s.%.24s", field, key);
        const mdl_io *io = find_io(ios, n, key);
        if (!io)
            return bad(err, f, "is not a declared tensor");
        mdl__jt t;
        int rc = mdl__json_tensor(v, io, &t, f, err);
        mdl__jt_free(&t);
        if (rc != MD_OK)
            return rc;
    }
    for (size_t i = 0; all && i < n; i++)
        if (!json_object_get(o, ios[i].name)) {
            snprintf(f, sizeof f, "%s.%.24s", field, ios[i].name);
            return bad(err, f, "is missing");
        }
    return MD_OK;
}

static int parse_validation(const json_t *o, mdl_manifest *m, md_err *err)
{
    static const char *const keys[] = {"tolerance", "samples", NULL};
    static const char *const skeys[] = {"inputs", "outputs", NULL};
    const json_t *v = json_object_get(o, "validation");
    m->tolerance = 1e-4;
    if (!v)
        return MD_OK;
    if (!json_is_object(v))
        return bad(err, "validation", "must be an object");
    int rc = check_keys(v, keys, "validation", err);
    const json_t *tol = json_object_get(v, "tolerance");
    if (rc == MD_OK && tol && (!json_is_number(tol) || !(json_number_value(tol) >= 0)))
        rc = bad(err, "validation.tolerance", "must be a number >= 0");
    if (tol && rc == MD_OK)
        m->tolerance = json_number_value(tol);
    const json_t *s = json_object_get(v, "samples");
    if (rc == MD_OK && !json_is_array(s))
        rc = bad(err, "validation.samples", "must be an array");
    for (size_t i = 0; rc == MD_OK && i < json_array_size(s); i++) {
        char f[64];
        const json_t *smp = json_array_get(s, i);
        snprintf(f, sizeof f, "validation.samples[%zu]", i);
        if (!json_is_object(smp))
            return bad(err, f, "must be an object");
        rc = check_keys(smp, skeys, f, err);
        snprintf(f, sizeof f, "validation.samples[%zu].inputs", i);
        if (rc == MD_OK)
            rc = parse_sample_side(json_object_get(smp, "inputs"), m->inputs, m->n_inputs, true, f,
                                   err);
        snprintf(f, sizeof f, "validation.samples[%zu].outputs", i);
        if (rc == MD_OK)
            rc = parse_sample_side(json_object_get(smp, "outputs"), m->outputs, m->n_outputs, false,
                                   f, err);
    }
    return rc;
}

static int parse_doc(json_t *o, mdl_manifest *m, md_err *err)
{
    static const char *const keys[] = {
        "name",           "version",      "family",     "runtime", "artefact",   "sha256",
        "description",    "required",     "inputs",     "outputs", "labels",     "preprocessing",
        "postprocessing", "input_schema", "validation", "metrics", "model_card", "training",
        NULL};
    if (!json_is_object(o))
        return bad(err, "manifest", "must be a JSON object");
    int rc = check_keys(o, keys, "", err);
    if (rc == MD_OK)
        rc = parse_ident(o, m, err);
    if (rc == MD_OK)
        rc = parse_enum(o, err, m);
    if (rc == MD_OK)
        rc = parse_ios(o, "inputs", &m->inputs, &m->n_inputs, err);
    if (rc == MD_OK)
        rc = parse_ios(o, "outputs", &m->outputs, &m->n_outputs, err);
    if (rc == MD_OK)
        rc = parse_extras(o, err);
    if (rc == MD_OK)
        rc = parse_validation(o, m, err);
    return rc;
}

int mdl_manifest_parse(const char *text, size_t len, mdl_manifest *out, md_err *err)
{
    memset(out, 0, sizeof *out);
    if (len > MANIFEST_MAX_BYTES)
        return md_fail(err, MD_E_MODEL_INVALID, "manifest", "manifest: larger than 4 MiB");
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return md_fail(err, MD_E_MODEL_INVALID, "manifest",
                       "manifest: not valid JSON (line %d: %.120s)", je.line, je.text);
    out->doc = o;
    int rc = parse_doc(o, out, err);
    if (rc != MD_OK)
        mdl_manifest_free(out);
    return rc;
}

void mdl_manifest_free(mdl_manifest *m)
{
    if (!m)
        return;
    for (size_t i = 0; m->inputs && i < m->n_inputs; i++)
        free(m->inputs[i].description);
    for (size_t i = 0; m->outputs && i < m->n_outputs; i++)
        free(m->outputs[i].description);
    free(m->inputs);
    free(m->outputs);
    json_decref(m->doc);
    memset(m, 0, sizeof *m);
}

int mdl__manifest_read(const char *dir, mdl_manifest *out, md_err *err)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/modeld.json", dir);
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return md_fail(err, errno == ENOENT ? MD_E_FILE_NOT_FOUND : MD_E_IO, "manifest",
                       "manifest: modeld.json cannot be read");
    struct stat sb;
    char *buf = NULL;
    int rc = MD_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > (off_t)MANIFEST_MAX_BYTES)
        rc = md_fail(err, MD_E_MODEL_INVALID, "manifest",
                     "manifest: modeld.json is not a regular file under 4 MiB");
    if (rc == MD_OK && !(buf = malloc((size_t)sb.st_size + 1)))
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK && read(fd, buf, (size_t)sb.st_size) != (ssize_t)sb.st_size)
        rc = md_fail(err, MD_E_IO, "manifest", "manifest: short read");
    close(fd);
    if (rc == MD_OK)
        rc = mdl_manifest_parse(buf, (size_t)sb.st_size, out, err);
    free(buf);
    return rc;
}
