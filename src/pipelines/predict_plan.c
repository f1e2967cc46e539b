/* predict_plan.c - the predict tasks whose request is not one model row: budget_allocation
 * (a marginal-return greedy over the manifest's fitted response curves, then the model's
 * what-if prediction of the allocation) and forecast (the recursive daily forecast with
 * residual intervals). The C twin of allocate_budget / forecast in postprocess.py.
 *
 * Invariants:
 *   1. The greedy spends exactly total (up to 1e-9 total): x starts at the minimums and every
 *      increment goes to the channel with the largest gain, ties to the lower column index.
 *   2. A forecast day's lags read history or forecasts already made, never a later day.
 */
#include "pipelines/predict_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUDGET_MAX_CHANNELS 64

static double response(double a, double b, double x)
{
    return a * (1.0 - exp(-b * x));
}

void pr__greedy(size_t n, const double *a, const double *b, const double *lo, const double *hi,
                double total, int steps, double *x)
{
    double rem = total;
    for (size_t k = 0; k < n; k++) {
        x[k] = lo[k];
        rem -= lo[k];
    }
    double d = rem / steps, eps = 1e-9 * total;
    while (rem > eps) {
        ssize_t best = -1;
        double gain = -INFINITY, step = 0.0;
        for (size_t k = 0; k < n; k++) {
            double dk = fmin(fmin(d, hi[k] - x[k]), rem);
            if (!(dk > 0))
                continue;
            double g = response(a[k], b[k], x[k] + dk) - response(a[k], b[k], x[k]);
            if (g > gain) {
                best = (ssize_t)k;
                gain = g;
                step = dk;
            }
        }
        if (best < 0)
            break;
        x[best] += step;
        rem -= step;
    }
}

typedef struct budget_chan {
    const char *name;
    size_t col;
    double a, b, seen_hi, lo, hi;
} budget_chan;

static int budget_channels(const json_t *post, budget_chan *ch, size_t *n, md_err *err)
{
    const json_t *cs = json_object_get(post, "channels");
    *n = json_array_size(cs);
    if (*n == 0 || *n > BUDGET_MAX_CHANNELS)
        return md_fail(err, MD_E_MODEL_INVALID, "postprocessing.channels", "bad channel list");
    for (size_t k = 0; k < *n; k++) {
        json_t *c = json_array_get(cs, k), *ci = json_object_get(c, "column_index");
        json_t *seen = json_object_get(c, "spend_seen");
        ch[k].name = json_string_value(json_object_get(c, "name"));
        if (!ch[k].name || !json_is_integer(ci) || json_integer_value(ci) < 0 ||
            !json_is_number(json_object_get(c, "a")) || !json_is_number(json_object_get(c, "b")))
            return md_fail(err, MD_E_MODEL_INVALID, "postprocessing.channels",
                           "channel %zu is malformed", k);
        ch[k].col = (size_t)json_integer_value(ci);
        ch[k].a = json_number_value(json_object_get(c, "a"));
        ch[k].b = json_number_value(json_object_get(c, "b"));
        json_t *sh = json_array_get(seen, 1);
        ch[k].seen_hi = json_is_number(sh) ? json_number_value(sh) : INFINITY;
    }
    return MD_OK;
}

/* The caller's channel limits (or all channels in [0, total]), checked as postprocess.py. */
static int budget_limits(const json_t *limits, budget_chan *ch, size_t n, double total, md_err *err)
{
    char field[64];
    if (limits && !json_is_object(limits))
        return md_fail(err, MD_E_INVALID_PARAM, "channels", "channels must be an object");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)limits, key, val)
    {
        size_t k = 0;
        while (k < n && strcmp(ch[k].name, key))
            k++;
        snprintf(field, sizeof field, "channels.%.48s", key);
        if (k == n)
            return md_fail(err, MD_E_INVALID_PARAM, field, "%s is not a channel of this model",
                           field);
        if (!json_is_object(val))
            return md_fail(err, MD_E_INVALID_PARAM, field, "%s must be an object", field);
    }
    for (size_t k = 0; k < n; k++) {
        json_t *l = limits ? json_object_get(limits, ch[k].name) : NULL;
        json_t *mn = json_object_get(l, "min"), *mx = json_object_get(l, "max");
        snprintf(field, sizeof field, "channels.%.48s", ch[k].name);
        if ((mn && !json_is_number(mn)) || (mx && !json_is_number(mx)))
            return md_fail(err, MD_E_INVALID_PARAM, field, "%s min and max must be numbers", field);
        ch[k].lo = mn ? json_number_value(mn) : 0.0;
        ch[k].hi = mx ? json_number_value(mx) : (limits && !l ? 0.0 : total);
        if (!(0 <= ch[k].lo && ch[k].lo <= ch[k].hi))
            return md_fail(err, MD_E_INVALID_PARAM, field, "%s needs 0 <= min <= max", field);
    }
    return MD_OK;
}

static int budget_request(const json_t *req, double *total, int *steps, double *week, int *has_week,
                          md_err *err)
{
    static const char *const keys[] = {"total", "channels", "steps", "week_of_year", NULL};
    if (!json_is_object(req))
        return md_fail(err, MD_E_INVALID_PARAM, "features", "features must be an object");
    int rc = pr__known_keys(req, "features", keys, err), set = 0;
    double st = 1000;
    if (rc == MD_OK)
        rc = pr__opt_num(req, "total", total, &set, err);
    if (rc == MD_OK && !set)
        return md_fail(err, MD_E_MISSING_FIELD, "total", "total is required");
    if (rc == MD_OK)
        rc = pr__opt_num(req, "steps", &st, &set, err);
    if (rc == MD_OK)
        rc = pr__opt_num(req, "week_of_year", week, has_week, err);
    if (rc != MD_OK)
        return rc;
    if (!(*total > 0))
        return md_fail(err, MD_E_INVALID_PARAM, "total", "total must be > 0");
    if (st != floor(st) || st < 1 || st > 100000)
        return md_fail(err, MD_E_INVALID_PARAM, "steps", "steps must be an integer in [1, 100000]");
    *steps = (int)st;
    return MD_OK;
}

/* The model's what-if prediction of an allocation: spends at column_index, then the week. */
static int budget_whatif(pl_ctx *cx, mdl_version *v, const budget_chan *ch, const double *x,
                         size_t n, double week, double *pred, md_err *err)
{
    size_t ncols = n + 2;
    float row[BUDGET_MAX_CHANNELS + 2] = {0};
    for (size_t k = 0; k < n; k++) {
        if (ch[k].col >= n)
            return md_fail(err, MD_E_MODEL_INVALID, "postprocessing.channels",
                           "column_index out of range");
        row[ch[k].col] = (float)x[k];
    }
    double wk = 2.0 * M_PI * week / 52.0;
    row[n] = (float)sin(wk);
    row[n + 1] = (float)cos(wk);
    float *out = NULL;
    size_t w = 0;
    int rc = pr__run_rows(cx, v, row, 1, ncols, &out, &w, err);
    if (rc == MD_OK)
        *pred = (double)out[0];
    free(out);
    return rc;
}

int pr__budget(pl_ctx *cx, mdl_version *v, const json_t *req, json_t **pred, md_err *err)
{
    const json_t *post = json_object_get(mdl_version_manifest(v)->doc, "postprocessing");
    budget_chan ch[BUDGET_MAX_CHANNELS];
    double total = 0, week = 0, a[BUDGET_MAX_CHANNELS], b[BUDGET_MAX_CHANNELS];
    double lo[BUDGET_MAX_CHANNELS], hi[BUDGET_MAX_CHANNELS], x[BUDGET_MAX_CHANNELS];
    double slo = 0, shi = 0, sum = 0, whatif = 0;
    size_t n = 0;
    int steps = 1000, has_week = 0;
    int rc = budget_request(req, &total, &steps, &week, &has_week, err);
    if (rc == MD_OK)
        rc = budget_channels(post, ch, &n, err);
    if (rc == MD_OK)
        rc = budget_limits(json_object_get(req, "channels"), ch, n, total, err);
    if (rc != MD_OK)
        return rc;
    for (size_t k = 0; k < n; k++) {
        a[k] = ch[k].a, b[k] = ch[k].b, lo[k] = ch[k].lo, hi[k] = ch[k].hi;
        slo += lo[k];
        shi += hi[k];
    }
    if (slo > total)
        return md_fail(err, MD_E_INVALID_PARAM, "total",
                       "total is below the sum of the channel minimums");
    if (shi < total)
        return md_fail(err, MD_E_INVALID_PARAM, "total",
                       "total is above the sum of the channel maximums");
    pr__greedy(n, a, b, lo, hi, total, steps, x);
    rc = budget_whatif(cx, v, ch, x, n, week, &whatif, err);
    if (rc != MD_OK)
        return rc;
    json_t *alloc = json_array(), *warn = json_array();
    for (size_t k = 0; k < n; k++) {
        double r = response(a[k], b[k], x[k]);
        sum += r;
        json_array_append_new(alloc, json_pack("{s:s, s:f, s:f, s:f}", "channel", ch[k].name,
                                               "spend", x[k], "return", r, "marginal_return",
                                               a[k] * b[k] * exp(-b[k] * x[k])));
        if (x[k] > ch[k].seen_hi)
            json_array_append_new(
                warn, json_sprintf("%s: a spend of %.4g is beyond the %.4g seen in training",
                                   ch[k].name, x[k], ch[k].seen_hi));
    }
    const json_t *bl = json_object_get(post, "baseline");
    double wk = 2.0 * M_PI * week / 52.0, base = 0, bs = 0, bc = 0;
    int has_base = pr__mf_num(bl, "base", &base, NULL) == MD_OK &&
                   pr__mf_num(bl, "week_sin", &bs, NULL) == MD_OK &&
                   pr__mf_num(bl, "week_cos", &bc, NULL) == MD_OK;
    *pred = json_pack("{s:f, s:o, s:f, s:f, s:o}", "total", total, "allocation", alloc,
                      "curves_return", sum, "model_prediction", whatif, "warnings", warn);
    if (has_base)
        json_object_set_new(*pred, "predicted_total",
                            json_real(base + bs * sin(wk) + bc * cos(wk) + sum));
    return MD_OK;
}

int pr__budget_drift_row(const mdl_manifest *mf, const json_t *req, const json_t *pred, float *row,
                         size_t nschema, md_err *err)
{
    const json_t *post = json_object_get(mf->doc, "postprocessing");
    budget_chan ch[BUDGET_MAX_CHANNELS];
    size_t n = 0;
    double total = 0, week = 0;
    int steps = 0, has_week = 0;
    int rc = budget_request(req, &total, &steps, &week, &has_week, err);
    if (rc == MD_OK)
        rc = budget_channels(post, ch, &n, err);
    if (rc == MD_OK && nschema != n + 2)
        rc = md_fail(err, MD_E_MODEL_INVALID, "input_schema", "channels and week columns expected");
    if (rc != MD_OK)
        return rc;
    for (size_t k = 0; k < nschema; k++)
        row[k] = NAN; /* a channel the answer does not name, an absent week: missing */
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(pred, "allocation"), i, a)
    {
        const char *name = json_string_value(json_object_get(a, "channel"));
        for (size_t k = 0; name && k < n; k++)
            if (!strcmp(ch[k].name, name) && ch[k].col < n)
                row[ch[k].col] = (float)json_number_value(json_object_get(a, "spend"));
    }
    if (has_week) {
        double wk = 2.0 * M_PI * week / 52.0;
        row[n] = (float)sin(wk);
        row[n + 1] = (float)cos(wk);
    }
    row[nschema] = (float)total;
    return MD_OK;
}

/* ---- forecast ---- */

/* Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil). */
static long days_from_civil(long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

static void civil_from_days(long z, long *y, unsigned *m, unsigned *d)
{
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (long)yoe + era * 400 + (*m <= 2);
}

static int weekday(long days) /* Monday = 0 */
{
    return (int)(((days + 3) % 7 + 7) % 7);
}

/* The n-th (n > 0) or last (n < 0) weekday wd of a month, as days. */
static long nth_weekday(long y, unsigned m, int wd, int n)
{
    if (n > 0) {
        long d = days_from_civil(y, m, 1);
        return d + (wd - weekday(d) + 7) % 7 + 7 * (n - 1);
    }
    long d = days_from_civil(y + (m == 12), m % 12 + 1, 1) - 1;
    return d - (weekday(d) - wd + 7) % 7;
}

static int us_holiday(long day)
{
    long y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    long h[10] = {days_from_civil(y, 1, 1),  nth_weekday(y, 1, 0, 3),    nth_weekday(y, 2, 0, 3),
                  nth_weekday(y, 5, 0, -1),  days_from_civil(y, 7, 4),   nth_weekday(y, 9, 0, 1),
                  nth_weekday(y, 10, 0, 2),  days_from_civil(y, 11, 11), nth_weekday(y, 11, 3, 4),
                  days_from_civil(y, 12, 25)};
    for (int i = 0; i < 10; i++)
        if (h[i] == day)
            return 1;
    return 0;
}

/* "YYYY-MM-DD" into days; -1 (and MD_E_INVALID_PARAM naming field) when not a real date. */
static int parse_date(const char *s, const char *field, long *out, md_err *err)
{
    long y = 0;
    unsigned m = 0, d = 0, m2, d2;
    int used = 0;
    if (!s || sscanf(s, "%4ld-%2u-%2u%n", &y, &m, &d, &used) != 3 || s[used] || m < 1 || m > 12 ||
        d < 1 || d > 31)
        return md_fail(err, MD_E_INVALID_PARAM, field, "%s must be a date YYYY-MM-DD", field);
    *out = days_from_civil(y, m, d);
    civil_from_days(*out, &y, &m2, &d2);
    if (m2 != m || d2 != d)
        return md_fail(err, MD_E_INVALID_PARAM, field, "%s is not a calendar date", field);
    return MD_OK;
}

typedef struct fc_req {
    double *vals; /* history then forecasts; new */
    size_t n;     /* history length */
    long last;
    long horizon;
    const json_t *weather, *holidays;
    const char *qlo, *qhi;
    double wmin[3], wmax[3]; /* temp, percip, weather_snow: the input_schema's ranges */
} fc_req;

static const char *const WEATHER[3] = {"temp", "percip", "weather_snow"};

/* The weather columns' ranges from the manifest's input_schema (absent: unbounded), so an
 * impossible value is a 400 naming it, as a row column's would be. */
static void fc_ranges(const mdl_manifest *mf, fc_req *f)
{
    pr_schema sc;
    md_err e = {0};
    for (int i = 0; i < 3; i++) {
        f->wmin[i] = -INFINITY;
        f->wmax[i] = INFINITY;
    }
    if (pr__schema_load(mf, &sc, &e) == MD_OK)
        for (int i = 0; i < 3; i++) {
            ssize_t k = pr__schema_find(&sc, WEATHER[i]);
            if (k >= 0) {
                f->wmin[i] = sc.cols[k].min;
                f->wmax[i] = sc.cols[k].max;
            }
        }
    pr__schema_free(&sc);
}

static int fc_read(const json_t *req, long max_h, fc_req *f, md_err *err)
{
    static const char *const keys[] = {"history",  "last_date", "horizon", "weather",
                                       "holidays", "level",     NULL};
    if (!json_is_object(req))
        return md_fail(err, MD_E_INVALID_PARAM, "features", "features must be an object");
    int rc = pr__known_keys(req, "features", keys, err), set = 0;
    double h = (double)max_h, level = 0.8;
    const json_t *hist = json_object_get(req, "history");
    if (rc == MD_OK &&
        (!json_is_array(hist) || json_array_size(hist) < 14 || json_array_size(hist) > 100000))
        rc = md_fail(err, MD_E_INVALID_PARAM, "history", "history needs 14 to 100000 values");
    if (rc == MD_OK)
        rc = parse_date(json_string_value(json_object_get(req, "last_date")), "last_date", &f->last,
                        err);
    if (rc == MD_OK)
        rc = pr__opt_num(req, "horizon", &h, &set, err);
    if (rc == MD_OK && (h != floor(h) || h < 1 || h > (double)max_h))
        rc = md_fail(err, MD_E_INVALID_PARAM, "horizon", "horizon must be in [1, %ld]", max_h);
    if (rc == MD_OK)
        rc = pr__opt_num(req, "level", &level, &set, err);
    if (rc == MD_OK && level != 0.8 && level != 0.9)
        rc = md_fail(err, MD_E_INVALID_PARAM, "level", "level must be 0.8 or 0.9");
    if (rc != MD_OK)
        return rc;
    f->horizon = (long)h;
    f->qlo = level == 0.8 ? "0.1" : "0.05";
    f->qhi = level == 0.8 ? "0.9" : "0.95";
    f->weather = json_object_get(req, "weather");
    f->holidays = json_object_get(req, "holidays");
    if (f->weather && !json_is_null(f->weather) &&
        (!json_is_array(f->weather) || json_array_size(f->weather) > (size_t)f->horizon))
        return md_fail(err, MD_E_INVALID_PARAM, "weather",
                       "weather must be a list of at most horizon days");
    if (f->holidays && !json_is_null(f->holidays) && !json_is_object(f->holidays))
        return md_fail(err, MD_E_INVALID_PARAM, "holidays", "holidays must be an object");
    f->n = json_array_size(hist);
    f->vals = malloc((f->n + (size_t)f->horizon) * sizeof *f->vals);
    if (!f->vals)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    for (size_t i = 0; i < f->n; i++) {
        json_t *x = json_array_get(hist, i);
        if (!json_is_number(x) || !isfinite(json_number_value(x)))
            return md_fail(err, MD_E_INVALID_PARAM, "history", "history[%zu] must be a number", i);
        f->vals[i] = json_number_value(x);
    }
    return MD_OK;
}

/* Day t's weather and holiday into row[7..10]. */
static int fc_day(const fc_req *f, long h, long day, float *row, md_err *err)
{
    row[7] = (float)us_holiday(day);
    const char *k;
    json_t *o;
    json_object_foreach((json_t *)f->holidays, k, o)
    {
        long dd;
        int rc = parse_date(k, "holidays", &dd, err);
        if (rc != MD_OK)
            return rc;
        if (!json_is_number(o))
            return md_fail(err, MD_E_INVALID_PARAM, "holidays", "holidays values are 0 or 1");
        if (dd == day)
            row[7] = (float)json_number_value(o);
    }
    json_t *w = json_array_get(f->weather, (size_t)h - 1);
    static const char *const wkeys[4] = {"temp", "percip", "weather_snow", NULL};
    if (w && !json_is_null(w) && (!json_is_object(w) || pr__known_keys(w, "weather", wkeys, err)))
        return md_fail(err, MD_E_INVALID_PARAM, "weather",
                       "weather days are objects of temp, percip, weather_snow");
    for (int i = 0; i < 3; i++) {
        double x = NAN;
        int set = 0;
        int rc = pr__opt_num(w, WEATHER[i], &x, &set, err);
        if (rc != MD_OK)
            return rc;
        if (set && (x < f->wmin[i] || x > f->wmax[i]))
            return md_fail(err, MD_E_INVALID_PARAM, WEATHER[i], "%s must be in [%g, %g], got %g",
                           WEATHER[i], f->wmin[i], f->wmax[i], x);
        row[8 + i] = (float)x;
    }
    return MD_OK;
}

/* The model row of forecast day h (1-based) from the values known before it; *m7 its mean7. */
static int fc_row(const fc_req *f, long h, float row[11], double *m7, md_err *err)
{
    const double *lag = f->vals + f->n + (size_t)h - 1; /* lag[-k] = lag_k */
    *m7 = 0;
    for (int k = 1; k <= 7; k++)
        *m7 += lag[-k];
    *m7 /= 7.0;
    if (!(*m7 > 0))
        return md_fail(err, MD_E_INVALID_PARAM, "history",
                       "the mean of the 7 days before a forecast day must be > 0");
    long day = f->last + h, y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    float r[7] = {(float)(lag[-1] / *m7),
                  (float)(lag[-2] / *m7),
                  (float)(lag[-7] / *m7),
                  (float)(lag[-14] / *m7),
                  (float)*m7,
                  (float)weekday(day),
                  (float)m};
    memcpy(row, r, sizeof r);
    return fc_day(f, h, day, row, err);
}

int pr__forecast_drift_row(const mdl_manifest *mf, const json_t *req, float *row, size_t nschema,
                           md_err *err)
{
    double max_h = 0, m7 = 0;
    fc_req f = {0};
    int rc =
        nschema == 11
            ? pr__mf_num(json_object_get(mf->doc, "postprocessing"), "max_horizon", &max_h, err)
            : md_fail(err, MD_E_MODEL_INVALID, "input_schema", "11 columns expected");
    if (rc == MD_OK)
        rc = fc_read(req, (long)max_h, &f, err);
    fc_ranges(mf, &f);
    if (rc == MD_OK)
        rc = fc_row(&f, 1, row, &m7, err); /* the first day: all its lags are the caller's */
    free(f.vals);
    return rc;
}

static int fc_run(pl_ctx *cx, mdl_version *v, fc_req *f, const json_t *rq, json_t *days,
                  md_err *err)
{
    const json_t *lo = json_object_get(rq, f->qlo), *hi = json_object_get(rq, f->qhi);
    if (json_array_size(lo) < (size_t)f->horizon || json_array_size(hi) < (size_t)f->horizon)
        return md_fail(err, MD_E_MODEL_INVALID, "postprocessing.residual_quantiles",
                       "too few residual quantiles");
    for (long h = 1; h <= f->horizon; h++) {
        size_t end = f->n + (size_t)h - 1; /* values known before day h */
        long day = f->last + h, y;
        unsigned m, d;
        civil_from_days(day, &y, &m, &d);
        double m7 = 0;
        float row[11];
        int rc = fc_row(f, h, row, &m7, err);
        float *out = NULL;
        size_t w = 0;
        if (rc == MD_OK)
            rc = pr__run_rows(cx, v, row, 1, 11, &out, &w, err);
        if (rc != MD_OK)
            return rc;
        double yv = m7 * (double)out[0];
        free(out);
        f->vals[end] = yv;
        char date[16];
        snprintf(date, sizeof date, "%04ld-%02u-%02u", y, m, d);
        json_array_append_new(
            days, json_pack("{s:s, s:f, s:f, s:f}", "date", date, "forecast", yv, "lower",
                            yv + json_number_value(json_array_get(lo, (size_t)h - 1)), "upper",
                            yv + json_number_value(json_array_get(hi, (size_t)h - 1))));
    }
    return MD_OK;
}

int pr__forecast(pl_ctx *cx, mdl_version *v, const json_t *req, json_t **pred, md_err *err)
{
    const json_t *post = json_object_get(mdl_version_manifest(v)->doc, "postprocessing");
    double max_h = 0;
    fc_req f = {0};
    int rc = pr__mf_num(post, "max_horizon", &max_h, err);
    if (rc == MD_OK)
        rc = fc_read(req, (long)max_h, &f, err);
    fc_ranges(mdl_version_manifest(v), &f);
    json_t *days = json_array();
    if (rc == MD_OK)
        rc = fc_run(cx, v, &f, json_object_get(post, "residual_quantiles"), days, err);
    free(f.vals);
    if (rc != MD_OK) {
        json_decref(days);
        return rc;
    }
    *pred = json_pack("{s:o, s:f}", "forecast", days, "level", !strcmp(f.qlo, "0.1") ? 0.8 : 0.9);
    return MD_OK;
}
