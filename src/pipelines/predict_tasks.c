/* predict_tasks.c - the postprocessing of each predict task (training/predict/README.md, "The
 * contract"), the C twin of training/predict/postprocess.py: classification (binary and the
 * revenue-leak patterns), regression, price_response, anomaly, the TreeSHAP explanations, the
 * budget optimiser and the recursive forecast.
 *
 * Invariants:
 *   1. Each function reads its constants from the manifest's postprocessing; a constant that is
 *      missing or of the wrong type is MD_E_MODEL_INVALID naming it, never a guess.
 *   2. Ties break as postprocess.py breaks them: lower price, lower channel index, column order.
 *   3. Caller errors name the field postprocess.py's ValueError names first (min_price, total,
 *      channels.<name>, history, horizon...).
 */
#include "pipelines/predict_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const json_t *post_of(const mdl_manifest *mf)
{
    return json_object_get(mf->doc, "postprocessing");
}

/* A number of the manifest at obj[key]; MD_E_MODEL_INVALID when absent. */
int pr__mf_num(const json_t *obj, const char *key, double *out, md_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        return md_fail(err, MD_E_MODEL_INVALID, key, "the manifest lacks %s", key);
    *out = json_number_value(v);
    return MD_OK;
}

/* A count of the manifest (top_k...) at obj[key], 0..1000. */
static int mf_count(const json_t *obj, const char *key, size_t *out, md_err *err)
{
    double d = 0;
    int rc = pr__mf_num(obj, key, &d, err);
    if (rc == MD_OK && !(d >= 0 && d <= 1000))
        rc = md_fail(err, MD_E_MODEL_INVALID, key, "%s must be in 0..1000", key);
    *out = rc == MD_OK ? (size_t)d : 0;
    return rc;
}

/* An optional caller number: *set 0 when absent or null. */
int pr__opt_num(const json_t *obj, const char *key, double *out, int *set, md_err *err)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    *set = 0;
    if (!v || json_is_null(v))
        return MD_OK;
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return md_fail(err, MD_E_INVALID_PARAM, key, "%s must be a number", key);
    *out = json_number_value(v);
    *set = 1;
    return MD_OK;
}

/* Only the listed keys (NULL-terminated) may appear in obj; else the unknown one is named (an
 * empty key has no name to give: the error then names the object, what). */
int pr__known_keys(const json_t *obj, const char *what, const char *const *keys, md_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        (void)v;
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], k))
            i++;
        if (!keys[i] && !k[0])
            return md_fail(err, MD_E_INVALID_PARAM, what, "%s has a field with an empty name", what);
        if (!keys[i])
            return md_fail(err, MD_E_INVALID_PARAM, k, "%.48s is not a field of this request", k);
    }
    return MD_OK;
}

/* The first band with min <= v < max (either optional); json null when none. */
static json_t *band(const json_t *bands, double v)
{
    for (size_t i = 0; i < json_array_size(bands); i++) {
        json_t *b = json_array_get(bands, i);
        json_t *mn = json_object_get(b, "min"), *mx = json_object_get(b, "max");
        if ((!json_is_number(mn) || v >= json_number_value(mn)) &&
            (!json_is_number(mx) || v < json_number_value(mx)))
            return json_string(json_string_value(json_object_get(b, "name")) ?: "");
    }
    return json_null();
}

/* ---- classification, regression ---- */

static int post_binary(const json_t *post, double p, json_t **pred, md_err *err)
{
    double thr;
    int rc = pr__mf_num(post, "threshold", &thr, err);
    if (rc == MD_OK)
        *pred = json_pack("{s:f, s:b, s:o}", "probability", p, "predicted", p >= thr, "band",
                          band(json_object_get(post, "bands"), p));
    return rc;
}

/* One leak pattern's amount from the row (terms: value, minus?, times?, scale?, divide_by?). */
static int pattern_amount(const json_t *terms, const pr_schema *sc, const float *row,
                          double *amount, md_err *err)
{
    const char *names[3] = {json_string_value(json_object_get(terms, "value")),
                            json_string_value(json_object_get(terms, "minus")),
                            json_string_value(json_object_get(terms, "divide_by"))};
    ssize_t ix[3];
    for (int k = 0; k < 3; k++) {
        ix[k] = names[k] ? pr__schema_find(sc, names[k]) : -1;
        if ((k == 0 || names[k]) && ix[k] < 0)
            return md_fail(err, MD_E_MODEL_INVALID, "postprocessing.patterns",
                           "a pattern names an unknown column");
    }
    double v = (double)row[ix[0]] - (ix[1] >= 0 ? (double)row[ix[1]] : 0.0);
    json_t *times = json_object_get(terms, "times");
    for (size_t t = 0; t < json_array_size(times); t++) {
        ssize_t c = pr__schema_find(sc, json_string_value(json_array_get(times, t)) ?: "");
        if (c < 0)
            return md_fail(err, MD_E_MODEL_INVALID, "postprocessing.patterns",
                           "a pattern names an unknown column");
        v *= (double)row[c];
    }
    json_t *scale = json_object_get(terms, "scale");
    v *= json_is_number(scale) ? json_number_value(scale) : 1.0;
    if (ix[2] >= 0) {
        double d = (double)row[ix[2]];
        if (!(d > 0)) {
            *amount = 0.0;
            return MD_OK;
        }
        v /= d;
    }
    *amount = v > 0 ? v : 0.0;
    return MD_OK;
}

static int post_leak(const json_t *post, const pr_schema *sc, const float *row, const float *p,
                     size_t w, json_t **pred, size_t *group, md_err *err)
{
    double thr;
    int rc = pr__mf_num(post, "threshold", &thr, err);
    json_t *pats = json_object_get(post, "patterns");
    double est = 0.0, bestp = -INFINITY;
    const char *best = NULL;
    for (size_t i = 0; rc == MD_OK && i < json_array_size(pats); i++) {
        json_t *pt = json_array_get(pats, i);
        json_t *ci = json_object_get(pt, "class_index");
        const char *label = json_string_value(json_object_get(pt, "label"));
        if (!json_is_integer(ci) || json_integer_value(ci) < 0 ||
            (size_t)json_integer_value(ci) >= w || !label)
            return md_fail(err, MD_E_MODEL_INVALID, "postprocessing.patterns",
                           "pattern %zu is malformed", i);
        size_t c = (size_t)json_integer_value(ci);
        double amount = 0.0;
        rc = pattern_amount(json_object_get(pt, "terms"), sc, row, &amount, err);
        est += (double)p[c] * amount;
        /* max by (probability, -class_index): a tie keeps the lower class index */
        if ((double)p[c] > bestp || ((double)p[c] == bestp && c < *group)) {
            bestp = (double)p[c];
            best = label;
            *group = c;
        }
    }
    if (rc != MD_OK)
        return rc;
    double leak = 1.0 - (double)p[0];
    *pred = json_pack("{s:f, s:b, s:s?, s:f, s:o}", "leak_probability", leak, "flagged",
                      leak >= thr, "pattern", best, "estimated_amount", est, "band",
                      band(json_object_get(post, "bands"), leak));
    return MD_OK;
}

static int post_regression(const json_t *post, double v, json_t **pred, md_err *err)
{
    const json_t *rq = json_object_get(json_object_get(post, "interval"), "residual_quantiles");
    double lo, hi;
    int rc = pr__mf_num(rq, "0.05", &lo, err);
    if (rc == MD_OK)
        rc = pr__mf_num(rq, "0.95", &hi, err);
    if (rc == MD_OK)
        *pred = json_pack("{s:f, s:o, s:[f, f]}", "value", v, "band",
                          band(json_object_get(post, "bands"), v), "interval_90", v + lo, v + hi);
    return rc;
}

/* ---- price_response ---- */

typedef struct price_opts {
    double lo, hi, unit_cost, quantity;
    int has_lo, has_hi, has_cost;
    long steps;
} price_opts;

static const char *const PRICE_KEYS[] = {"min_price", "max_price", "steps",
                                         "unit_cost", "quantity",  NULL};

static int price_opts_read(const json_t *post, const json_t *o, price_opts *po, md_err *err)
{
    memset(po, 0, sizeof *po);
    const json_t *g = json_object_get(post, "grid");
    double dsteps, mn, mx, st = 0, q = 1.0;
    int set = 0, rc = MD_OK;
    if (o && !json_is_object(o))
        return md_fail(err, MD_E_INVALID_PARAM, "options", "options must be an object");
    if (o)
        rc = pr__known_keys(o, "options", PRICE_KEYS, err);
    if (rc == MD_OK)
        rc = pr__mf_num(g, "default_steps", &dsteps, err);
    if (rc == MD_OK)
        rc = pr__mf_num(g, "min_steps", &mn, err);
    if (rc == MD_OK)
        rc = pr__mf_num(g, "max_steps", &mx, err);
    if (rc == MD_OK)
        rc = pr__opt_num(o, "min_price", &po->lo, &po->has_lo, err);
    if (rc == MD_OK)
        rc = pr__opt_num(o, "max_price", &po->hi, &po->has_hi, err);
    if (rc == MD_OK)
        rc = pr__opt_num(o, "unit_cost", &po->unit_cost, &po->has_cost, err);
    if (rc == MD_OK)
        rc = pr__opt_num(o, "quantity", &q, &set, err);
    if (rc == MD_OK)
        rc = pr__opt_num(o, "steps", &st, &set, err);
    if (rc != MD_OK)
        return rc;
    po->quantity = q;
    double want = set ? st : dsteps; /* checked before the cast: 1e300 must not reach it */
    if (want != floor(want) || want < mn || want > mx || mn < 2)
        return md_fail(err, MD_E_INVALID_PARAM, "steps", "steps must be an integer in [%g, %g]", mn,
                       mx);
    po->steps = (long)want;
    if (!(po->quantity > 0))
        return md_fail(err, MD_E_INVALID_PARAM, "quantity", "quantity must be > 0");
    return MD_OK;
}

int pr__price_check(const mdl_manifest *mf, const json_t *options, md_err *err)
{
    price_opts po;
    int rc = price_opts_read(post_of(mf), options, &po, err);
    if (rc == MD_OK && po.has_lo && !(po.lo > 0))
        return md_fail(err, MD_E_INVALID_PARAM, "min_price", "min_price must be > 0");
    if (rc == MD_OK && po.has_lo && po.has_hi && !(po.hi > po.lo))
        return md_fail(err, MD_E_INVALID_PARAM, "max_price", "max_price must be > min_price");
    return rc;
}

static json_t *price_point(double p, double q, double obj, double s, const price_opts *po)
{
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "price", p, "share", q, "volume",
                     po->quantity * q, "revenue", p * po->quantity * q, "objective", obj,
                     "elasticity", -(1.0 - q) / s);
}

static int post_price(const json_t *post, double lv, const json_t *options, json_t **pred,
                      md_err *err)
{
    price_opts po;
    double mu, s;
    const json_t *w = json_object_get(post, "willingness_to_pay");
    int rc = price_opts_read(post, options, &po, err);
    if (rc == MD_OK)
        rc = pr__mf_num(w, "location", &mu, err);
    if (rc == MD_OK)
        rc = pr__mf_num(w, "scale", &s, err);
    if (rc != MD_OK)
        return rc;
    double v = exp(lv), lo = po.has_lo ? po.lo : 0.5 * v, hi = po.has_hi ? po.hi : 1.5 * v;
    if (!(lo > 0))
        return md_fail(err, MD_E_INVALID_PARAM, "min_price", "min_price must be > 0");
    if (!(hi > lo))
        return md_fail(err, MD_E_INVALID_PARAM, "max_price", "max_price must be > min_price");
    json_t *grid = json_array(), *best = NULL;
    double best_obj = -INFINITY;
    for (long i = 0; i < po.steps; i++) {
        double p = lo + (double)i * (hi - lo) / (double)(po.steps - 1);
        double q = 1.0 / (1.0 + exp((log(p) - lv - mu) / s));
        double obj = po.has_cost ? (p - po.unit_cost) * po.quantity * q : p * po.quantity * q;
        json_t *pt = price_point(p, q, obj, s, &po);
        json_array_append_new(grid, pt);
        if (!best || obj > best_obj) { /* strict: ties keep the lower price */
            best = pt;
            best_obj = obj;
        }
    }
    *pred = json_pack("{s:f, s:s, s:o, s:O}", "value", v, "objective",
                      po.has_cost ? "margin" : "revenue", "grid", grid, "optimum", best);
    return MD_OK;
}

/* ---- anomaly ---- */

static int post_anomaly(const json_t *post, const pr_schema *sc, const float *row, double out,
                        json_t **pred, md_err *err)
{
    const json_t *e = json_object_get(post, "explanation"), *ranges = json_object_get(e, "ranges");
    double c, thr, min_z;
    size_t top_k = 0;
    int rc = pr__mf_num(post, "c_max_samples", &c, err);
    if (rc == MD_OK)
        rc = pr__mf_num(post, "threshold", &thr, err);
    if (rc == MD_OK)
        rc = pr__mf_num(e, "min_z", &min_z, err);
    if (rc == MD_OK)
        rc = mf_count(e, "top_k", &top_k, err);
    if (rc != MD_OK)
        return rc;
    size_t n = 0, cap = json_object_size(ranges);
    struct zc {
        const char *name;
        double z, x;
        const json_t *r;
    } *zs = calloc(cap ? cap : 1, sizeof *zs);
    if (!zs)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    const char *name;
    json_t *r;
    json_object_foreach((json_t *)ranges, name, r)
    {
        ssize_t ix = pr__schema_find(sc, name);
        double med, scale;
        if (ix < 0 || pr__mf_num(r, "median", &med, err) || pr__mf_num(r, "scale", &scale, err)) {
            free(zs);
            return md_fail(err, MD_E_MODEL_INVALID, "postprocessing.explanation.ranges",
                           "range %.40s is malformed", name);
        }
        double x = (double)row[ix],
               z = fabs(x - med) / (scale > 0 ? scale : 2.2250738585072014e-308);
        if (!(z > min_z))
            continue;
        size_t k = n++; /* stable insertion, largest z first */
        while (k > 0 && zs[k - 1].z < z) {
            zs[k] = zs[k - 1];
            k--;
        }
        zs[k] = (struct zc){name, z, x, r};
    }
    double s = pow(2.0, -out / c);
    json_t *reasons = json_array();
    for (size_t i = 0; i < n && i < top_k; i++)
        json_array_append_new(reasons, json_pack("{s:s, s:f, s:f, s:[O, O]}", "feature", zs[i].name,
                                                 "value", zs[i].x, "z", zs[i].z, "usual",
                                                 json_object_get(zs[i].r, "p01"),
                                                 json_object_get(zs[i].r, "p99")));
    free(zs);
    *pred = json_pack("{s:f, s:b, s:o}", "score", s, "anomalous", s >= thr, "reasons", reasons);
    return MD_OK;
}

int pr__post_row(const mdl_manifest *mf, const char *task, const pr_schema *sc, const float *row,
                 const float *raw, size_t w, const json_t *options, json_t **pred, size_t *group,
                 md_err *err)
{
    const json_t *post = post_of(mf);
    *pred = NULL;
    *group = 0;
    if (!strcmp(task, "classification") && w > 1)
        return post_leak(post, sc, row, raw, w, pred, group, err);
    if (!strcmp(task, "classification"))
        return post_binary(post, (double)raw[0], pred, err);
    if (!strcmp(task, "regression"))
        return post_regression(post, (double)raw[0], pred, err);
    if (!strcmp(task, "price_response"))
        return post_price(post, (double)raw[0], options, pred, err);
    if (!strcmp(task, "anomaly"))
        return post_anomaly(post, sc, row, (double)raw[0], pred, err);
    return md_fail(err, MD_E_MODEL_INVALID, "postprocessing.task", "unknown task %.32s", task);
}

/* ---- explanations (xgboost_treeshap) ---- */

/* The top_k reasons of one row's contributions c (sc->n of them). */
static json_t *reasons_of(const pr_schema *sc, const float *row, const float *c, int positive,
                          size_t top_k)
{
    json_t *out = json_array();
    char *used = calloc(sc->n, 1);
    for (size_t r = 0; used && r < top_k; r++) {
        ssize_t best = -1;
        for (size_t i = 0; i < sc->n; i++) {
            double k = positive ? c[i] : fabs(c[i]);
            if (used[i] || (positive && !(c[i] > 0)))
                continue;
            if (best < 0 || k > (positive ? c[best] : fabs(c[best])))
                best = (ssize_t)i; /* strict: ties keep column order */
        }
        if (best < 0)
            break;
        used[best] = 1;
        const pr_col *col = &sc->cols[best];
        json_t *val = isnan(row[best]) ? json_null()
                      : col->kind == PR_CATEGORY
                          ? json_copy(json_array_get(col->values, (size_t)row[best]))
                          : json_real(row[best]);
        json_array_append_new(out, json_pack("{s:s, s:o, s:f}", "feature", col->name, "value", val,
                                             "contribution", (double)c[best]));
    }
    free(used);
    return out;
}

int pr__explain(mdl_version *v, const pr_schema *sc, const float *rows, size_t n, const size_t *map,
                const size_t *grp, json_t **expls, md_err *err)
{
    const json_t *e = json_object_get(post_of(mdl_version_manifest(v)), "explanation");
    const char *method = json_string_value(json_object_get(e, "method"));
    if (method && !strcmp(method, "robust_z"))
        return MD_OK; /* anomaly: the reasons are the prediction's own */
    if (!method || strcmp(method, "xgboost_treeshap"))
        return MD_OK;
    size_t top_k = 0;
    int rc = mf_count(e, "top_k", &top_k, err);
    const char *mode = json_string_value(json_object_get(e, "mode"));
    float *c = NULL;
    size_t nc = 0, groups = 1;
    if (rc == MD_OK)
        rc = mdl_contribs(v, rows, n, sc->n, &c, &nc, &groups, err);
    for (size_t g = 0; rc == MD_OK && g < n; g++) {
        const float *rc_row = c + (g * groups + (grp[g] < groups ? grp[g] : 0)) * (sc->n + 1);
        json_t *contrib = json_object();
        for (size_t i = 0; i < sc->n; i++)
            json_object_set_new(contrib, sc->cols[i].name, json_real(rc_row[i]));
        expls[map[g]] = json_pack(
            "{s:s, s:o, s:f, s:o}", "method", method, "contributions", contrib, "bias",
            (double)rc_row[sc->n], "reasons",
            reasons_of(sc, rows + g * sc->n, rc_row, mode && !strcmp(mode, "positive"), top_k));
    }
    free(c);
    return rc;
}
