/* params.c - the tracer's parameters: VTracer's names, meanings, defaults and ranges, our
 * presets, parsing from text and range checks.
 *
 * Invariants:
 *   1. One table (PARAMS below) holds every settable name with its range; set, validate,
 *      names and to_json all read it, so a parameter cannot be checked in one place and
 *      forgotten in another.
 *   2. Error messages name the parameter and its range: "corner_threshold must be an integer
 *      in 0..180, got 400".
 *   3. Numbers are plain decimals ("-12", "3.5"); hex, exponents, spaces, '+' and words are
 *      refused the same way as out-of-range values.
 *
 * How VTracer's knobs map onto this tracer (same meaning, our algorithm):
 *   filter_speckle    regions smaller than n*n pixels merge into their most similar neighbour.
 *   color_precision   significant bits per channel when pixels are first grouped.
 *   layer_difference  largest colour difference (max over R, G, B) merged into one layer.
 *   corner_threshold  a polygon vertex turning by at least this many degrees is a sharp corner.
 *   length_threshold  curve scale: the fitting error bound is length_threshold / 8 px, and
 *                     the polygon (corner finding) tolerance length_threshold / 6 px.
 *   max_iterations    Newton reparameterisation rounds per Bézier fit.
 *   splice_threshold  a vertex turning by at least this much splits the spline there (the
 *                     tangent stays continuous).
 *   path_precision    decimal places in the SVG path data.
 */
#include "vec_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum ptype { P_ENUM, P_INT, P_DBL, P_RGB } ptype;

typedef struct pdef {
    const char *name;
    ptype type;
    double lo, hi;
    const char *choices[4]; /* P_ENUM: index = value */
    size_t off;
} pdef;

#define OFF(f) offsetof(vec_params, f)
static const pdef PARAMS[] = {
    {"colormode", P_ENUM, 0, 1, {"color", "binary"}, OFF(colormode)},
    {"hierarchical", P_ENUM, 0, 1, {"stacked", "cutout"}, OFF(hierarchical)},
    {"mode", P_ENUM, 0, 2, {"spline", "polygon", "pixel"}, OFF(mode)},
    {"filter_speckle", P_INT, 0, 128, {0}, OFF(filter_speckle)},
    {"color_precision", P_INT, 1, 8, {0}, OFF(color_precision)},
    {"layer_difference", P_INT, 0, 255, {0}, OFF(layer_difference)},
    {"corner_threshold", P_INT, 0, 180, {0}, OFF(corner_threshold)},
    {"length_threshold", P_DBL, 3.5, 10, {0}, OFF(length_threshold)},
    {"max_iterations", P_INT, 1, 20, {0}, OFF(max_iterations)},
    {"splice_threshold", P_INT, 0, 180, {0}, OFF(splice_threshold)},
    {"path_precision", P_INT, 0, 8, {0}, OFF(path_precision)},
    {"gradients", P_INT, 0, 1, {0}, OFF(gradients)},
    {"background", P_RGB, 0, 0, {0}, OFF(background)},
    {"composite", P_INT, 0, 1, {0}, OFF(composite)},
    {"svgz", P_INT, 0, 1, {0}, OFF(svgz)},
};
#define NPARAMS (sizeof PARAMS / sizeof PARAMS[0])

void vec_params_default(vec_params *p)
{
    memset(p, 0, sizeof *p);
    p->colormode = VEC_COLOR;
    p->hierarchical = VEC_STACKED;
    p->mode = VEC_SPLINE;
    p->filter_speckle = 4;
    p->color_precision = 6;
    p->layer_difference = 16;
    p->corner_threshold = 60;
    p->length_threshold = 4.0;
    p->max_iterations = 10;
    p->splice_threshold = 45;
    p->path_precision = 2;
    p->gradients = 1;
    p->background[0] = p->background[1] = p->background[2] = 255;
}

int vec_params_preset(const char *name, vec_params *p, md_err *err)
{
    vec_params_default(p);
    if (name == NULL || strcmp(name, "default") == 0) {
        /* One decimal in the path data (a tenth of a pixel is below what the eye sees at 1:1
         * and saves a fifth of the bytes) buys a finer curve scale and smaller speckles:
         * +0.002 mean SSIM on the dev corpus for the same median size as VTracer's values. */
        p->path_precision = 1;
        p->length_threshold = 3.5;
        p->filter_speckle = 3;
        return MD_OK;
    }
    if (strcmp(name, "quality") == 0) {
        p->filter_speckle = 2;
        p->color_precision = 7;
        p->layer_difference = 8;
        p->length_threshold = 3.5;
        p->path_precision = 1;
        return MD_OK;
    }
    if (strcmp(name, "fast") == 0) {
        p->filter_speckle = 6;
        p->color_precision = 5;
        p->layer_difference = 24;
        p->mode = VEC_POLYGON;
        p->length_threshold = 6.0;
        p->path_precision = 1;
        p->gradients = 0;
        return MD_OK;
    }
    if (strcmp(name, "bw") == 0) {
        p->colormode = VEC_BINARY;
        p->path_precision = 1;
        p->gradients = 0;
        return MD_OK;
    }
    return md_fail(err, MD_E_INVALID_PARAM, "preset",
                   "unknown preset '%.40s' (default, quality, fast, bw)", name);
}

static const pdef *find_param(const char *name)
{
    for (size_t i = 0; i < NPARAMS; i++)
        if (strcmp(PARAMS[i].name, name) == 0)
            return &PARAMS[i];
    return NULL;
}

static int range_error(const pdef *d, const char *value, md_err *err)
{
    if (d->type == P_ENUM) {
        char list[64] = "";
        for (int i = 0; i <= (int)d->hi; i++) {
            strcat(list, i ? ", " : "");
            strcat(list, d->choices[i]);
        }
        return md_fail(err, MD_E_INVALID_PARAM, d->name, "%s must be one of %s, got '%.40s'",
                       d->name, list, value);
    }
    if (d->type == P_RGB)
        return md_fail(err, MD_E_INVALID_PARAM, d->name,
                       "%s must be a colour #rrggbb, got '%.40s'", d->name, value);
    if (d->type == P_DBL)
        return md_fail(err, MD_E_INVALID_PARAM, d->name, "%s must be a number in %g..%g, got '%.40s'",
                       d->name, d->lo, d->hi, value);
    return md_fail(err, MD_E_INVALID_PARAM, d->name, "%s must be an integer in %g..%g, got '%.40s'",
                   d->name, d->lo, d->hi, value);
}

/* "#rrggbb" or "rrggbb" to three bytes; -1 when malformed. */
static int parse_rgb(const char *s, uint8_t out[3])
{
    if (*s == '#')
        s++;
    if (strlen(s) != 6)
        return -1;
    for (int i = 0; i < 6; i++)
        if (!strchr("0123456789abcdefABCDEF", s[i]) || s[i] == 0)
            return -1;
    unsigned long v = strtoul(s, NULL, 16);
    out[0] = (uint8_t)(v >> 16);
    out[1] = (uint8_t)(v >> 8);
    out[2] = (uint8_t)v;
    return 0;
}

/* A plain decimal: optional '-', digits, optionally '.' and more digits. strtod alone would
 * also take " 3", "+3", "0x10", "0x1p3", "1e2", "inf" and "nan", none of which a client means
 * as a tracing parameter (and which made the same request mean different things). */
static int plain_decimal(const char *s)
{
    size_t i = s[0] == '-', digits = strspn(s + i, "0123456789");
    i += digits;
    if (s[i] == '.') {
        size_t frac = strspn(s + i + 1, "0123456789");
        digits += frac;
        i += 1 + frac;
    }
    return digits > 0 && s[i] == '\0';
}

static int parse_number(const pdef *d, const char *value, double *out)
{
    if (!plain_decimal(value))
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(value, &end);
    if (end == value || *end != '\0' || errno != 0 || v != v)
        return -1;
    if (d->type == P_INT && v != (double)(long)v)
        return -1;
    if (v < d->lo || v > d->hi)
        return -1;
    *out = v;
    return 0;
}

int vec_params_set(vec_params *p, const char *name, const char *value, md_err *err)
{
    if (name == NULL || value == NULL)
        return md_fail(err, MD_E_INVALID_PARAM, "", "parameter name and value are required");
    const pdef *d = find_param(name);
    if (d == NULL)
        return md_fail(err, MD_E_INVALID_PARAM, name, "unknown parameter '%.40s'", name);
    char *field = (char *)p + d->off;
    if (d->type == P_ENUM) {
        for (int i = 0; i <= (int)d->hi; i++)
            if (strcmp(value, d->choices[i]) == 0) {
                memcpy(field, &i, sizeof i);
                return MD_OK;
            }
        return range_error(d, value, err);
    }
    if (d->type == P_RGB)
        return parse_rgb(value, (uint8_t *)field) == 0 ? MD_OK : range_error(d, value, err);
    double v;
    if (parse_number(d, value, &v) != 0)
        return range_error(d, value, err);
    if (d->type == P_DBL) {
        memcpy(field, &v, sizeof v);
    } else {
        int iv = (int)v;
        memcpy(field, &iv, sizeof iv);
    }
    return MD_OK;
}

int vec_params_validate(const vec_params *p, md_err *err)
{
    if (p == NULL)
        return md_fail(err, MD_E_INVALID_PARAM, "", "parameters are required");
    for (size_t i = 0; i < NPARAMS; i++) {
        const pdef *d = &PARAMS[i];
        const char *field = (const char *)p + d->off;
        double v;
        if (d->type == P_RGB)
            continue; /* every byte value is a colour */
        if (d->type == P_DBL) {
            memcpy(&v, field, sizeof v);
        } else {
            int iv;
            memcpy(&iv, field, sizeof iv);
            v = iv;
        }
        if (!(v >= d->lo && v <= d->hi)) {
            char got[32];
            snprintf(got, sizeof got, "%g", v);
            return range_error(d, got, err);
        }
    }
    return MD_OK;
}

/* The names in PARAMS order, as constant data so that concurrent callers share it freely. */
static const char *const NAMES[] = {"colormode",       "hierarchical",     "mode",
                                    "filter_speckle",  "color_precision",  "layer_difference",
                                    "corner_threshold", "length_threshold", "max_iterations",
                                    "splice_threshold", "path_precision",   "gradients",
                                    "background",      "composite",        "svgz",
                                    NULL};
_Static_assert(sizeof NAMES / sizeof NAMES[0] == NPARAMS + 1, "NAMES must list every parameter");

const char *const *vec_params_names(void)
{
    return NAMES;
}

int vec_params_to_json(const vec_params *p, md_buf *out)
{
    int rc = md_buf_putc(out, '{');
    for (size_t i = 0; i < NPARAMS && rc == MD_OK; i++) {
        const pdef *d = &PARAMS[i];
        const char *field = (const char *)p + d->off;
        rc = md_buf_printf(out, "%s\"%s\":", i ? "," : "", d->name);
        if (rc != MD_OK)
            break;
        int iv;
        double dv;
        const uint8_t *c = (const uint8_t *)field;
        switch (d->type) {
        case P_ENUM:
            memcpy(&iv, field, sizeof iv);
            rc = md_buf_printf(out, "\"%s\"", iv >= 0 && iv <= (int)d->hi ? d->choices[iv] : "?");
            break;
        case P_INT:
            memcpy(&iv, field, sizeof iv);
            rc = md_buf_printf(out, "%d", iv);
            break;
        case P_DBL:
            memcpy(&dv, field, sizeof dv);
            rc = md_buf_printf(out, "%.17g", dv);
            break;
        case P_RGB:
            rc = md_buf_printf(out, "\"#%02x%02x%02x\"", c[0], c[1], c[2]);
            break;
        }
    }
    return rc == MD_OK ? md_buf_putc(out, '}') : rc;
}

/* ---- the AI models' encoding ---------------------------------------------------------------
 * Ten numbers in raw units; the ranges come from PARAMS (invariant 1), the flags are 0/1. */

static const char *const ENC_NAMES[] = {
    "filter_speckle",   "color_precision", "layer_difference",    "corner_threshold",
    "length_threshold", "max_iterations",  "splice_threshold",    "path_precision",
    "hierarchical_cutout", "mode_polygon", NULL,
};
_Static_assert(sizeof ENC_NAMES / sizeof ENC_NAMES[0] == VEC_N_PARAM_ENC + 1,
               "VEC_N_PARAM_ENC must match ENC_NAMES");

const char *const *vec_params_enc_names(void) { return ENC_NAMES; }

void vec_params_encode(const vec_params *p, float out[VEC_N_PARAM_ENC])
{
    out[0] = (float)p->filter_speckle;
    out[1] = (float)p->color_precision;
    out[2] = (float)p->layer_difference;
    out[3] = (float)p->corner_threshold;
    out[4] = (float)p->length_threshold;
    out[5] = (float)p->max_iterations;
    out[6] = (float)p->splice_threshold;
    out[7] = (float)p->path_precision;
    out[8] = p->hierarchical == VEC_CUTOUT ? 1.0f : 0.0f;
    out[9] = p->mode == VEC_POLYGON ? 1.0f : 0.0f;
}

/* v clamped into the range of the parameter called name; def when v is NaN. */
static double clamp_param(const char *name, double v, double def, int round_it)
{
    const pdef *d = find_param(name);
    if (isnan(v))
        return def;
    v = round_it ? floor(v + 0.5) : v;
    return v < d->lo ? d->lo : v > d->hi ? d->hi : v;
}

void vec_params_decode(const float *in, vec_params *out)
{
    vec_params d;
    vec_params_preset("default", &d, NULL);
    *out = d;
    int *ints[] = {&out->filter_speckle, &out->color_precision, &out->layer_difference,
                   &out->corner_threshold, NULL, &out->max_iterations, &out->splice_threshold,
                   &out->path_precision};
    for (int i = 0; i < 8; i++) {
        if (!ints[i])
            continue;
        *ints[i] = (int)clamp_param(ENC_NAMES[i], in[i], *ints[i], 1);
    }
    out->length_threshold = clamp_param("length_threshold", in[4], d.length_threshold, 0);
    out->hierarchical = !isnan(in[8]) && in[8] >= 0.5f ? VEC_CUTOUT : VEC_STACKED;
    out->mode = !isnan(in[9]) && in[9] >= 0.5f ? VEC_POLYGON : VEC_SPLINE;
    out->colormode = VEC_COLOR;
    out->gradients = 1;
    out->composite = 0;
    out->svgz = 0;
}
