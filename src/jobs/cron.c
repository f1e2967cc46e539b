/* cron.c - our own 5-field cron parser and next-fire computation, for the schedules of issue 11
 * §4 (a schedule stores its expression and its next fire time; the scheduler asks for the one
 * after). The syntax is Vixie cron's, UTC only; see job_cron in jobs.h.
 *
 * Why our own: the expression comes from an API client, so the parser must reject every bad
 * input with a message naming the field, bounded in time and memory (it has a fuzz target,
 * tests/fuzz/cron_fuzz.c), and the next-fire computation must be exact across month ends and
 * leap days without depending on the process's time zone (no mktime, no TZ).
 *
 * Invariants:
 *   1. A parsed job_cron has at least one bit in each of its five sets, only bits inside each
 *      field's range, and at least one (month, day) pair that exists in some year (parse
 *      refuses "0 0 30 feb *"), so job_cron_next always finds a fire time within a few decades.
 *   2. Parsing reads at most JOB_CRON_MAX bytes of the input and allocates nothing.
 *   3. job_cron_next works on civil dates computed from day numbers (proleptic Gregorian, UTC):
 *      the result is the smallest whole minute > after_s that matches every field; each loop
 *      turn moves the candidate forward by at least one minute and skips non-matching months,
 *      days and hours whole, so the loop is bounded by the months and days up to year 9999.
 */
#include "jobs/jobs.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct field_spec {
    const char *name;
    int min, max;
    const char *const *names; /* 3-letter names of min.., or NULL */
} field_spec;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

/* Day of week runs 0..7 while parsing (7 = Sunday) and is folded to 0..6 afterwards. */
static const field_spec specs[5] = {
    {"minute", 0, 59, NULL},          {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL},    {"month", 1, 12, month_names},
    {"day-of-week", 0, 7, dow_names},
};

static const struct {
    const char *name, *expr;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* The most days month m (1..12) ever has. */
static const int max_mdays[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

/* Fail with the field's number and name in front of the message. */
static int field_fail(md_err *err, int idx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int field_fail(md_err *err, int idx, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return md_fail(err, MD_E_INVALID_PARAM, "cron", "field %d (%s): %s", idx + 1, specs[idx].name,
                   msg);
}

/* One value at *p: a number or (months, days of week) a 3-letter name. Advances *p. */
static int parse_value(const char **p, const char *end, int idx, int *out, md_err *err)
{
    const field_spec *f = &specs[idx];
    const char *s = *p;
    if (s < end && isdigit((unsigned char)*s)) {
        int v = 0;
        while (s < end && isdigit((unsigned char)*s)) {
            if (v > 1000)
                return field_fail(err, idx, "number too large");
            v = v * 10 + (*s++ - '0');
        }
        if (v < f->min || v > f->max)
            return field_fail(err, idx, "%d is out of range %d..%d", v, f->min, f->max);
        *p = s;
        *out = v;
        return MD_OK;
    }
    if (f->names && end - s >= 3) {
        for (int i = 0; f->names[i]; i++) {
            if (strncasecmp(s, f->names[i], 3) == 0 &&
                (end - s == 3 || !isalpha((unsigned char)s[3]))) {
                *p = s + 3;
                *out = f->min + i;
                return MD_OK;
            }
        }
    }
    return field_fail(err, idx, "expected a number%s at \"%.*s\"", f->names ? " or a name" : "",
                      (int)(end - s > 16 ? 16 : end - s), s);
}

/* A step "/S" at *p (already past the '/'): 1 .. the field's span. */
static int parse_step(const char **p, const char *end, int idx, int *out, md_err *err)
{
    const char *s = *p;
    int span = specs[idx].max - specs[idx].min + 1;
    int v = 0;
    if (s >= end || !isdigit((unsigned char)*s))
        return field_fail(err, idx, "a step needs a number after '/'");
    while (s < end && isdigit((unsigned char)*s)) {
        if (v > 1000)
            return field_fail(err, idx, "step too large");
        v = v * 10 + (*s++ - '0');
    }
    if (v < 1 || v > span)
        return field_fail(err, idx, "step %d is out of range 1..%d", v, span);
    *p = s;
    *out = v;
    return MD_OK;
}

/* One item of a list: "*", "N", "N-M", each with an optional "/S". Sets its bits in *bits. */
static int parse_item(const char *s, const char *end, int idx, uint64_t *bits, md_err *err)
{
    const field_spec *f = &specs[idx];
    int lo, hi, step = 1, rc;
    int star = s < end && *s == '*';
    if (star) {
        lo = f->min;
        hi = f->max;
        s++;
    } else {
        rc = parse_value(&s, end, idx, &lo, err);
        if (rc != MD_OK)
            return rc;
        hi = lo;
        if (s < end && *s == '-') {
            s++;
            rc = parse_value(&s, end, idx, &hi, err);
            if (rc != MD_OK)
                return rc;
            if (hi < lo)
                return field_fail(err, idx, "range %d-%d runs backwards", lo, hi);
        }
    }
    if (s < end && *s == '/') {
        s++;
        rc = parse_step(&s, end, idx, &step, err);
        if (rc != MD_OK)
            return rc;
        if (!star && hi == lo)
            hi = f->max; /* "N/S": from N up to the maximum */
    }
    if (s != end)
        return field_fail(err, idx, "unexpected \"%.*s\"", (int)(end - s > 16 ? 16 : end - s), s);
    for (int v = lo; v <= hi; v += step)
        *bits |= 1ULL << v;
    return MD_OK;
}

/* One whole field (a comma-separated list) of len bytes. */
static int parse_field(const char *s, size_t len, int idx, uint64_t *bits, md_err *err)
{
    const char *end = s + len;
    *bits = 0;
    for (;;) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *item_end = comma ? comma : end;
        if (item_end == s)
            return field_fail(err, idx, "empty list item");
        int rc = parse_item(s, item_end, idx, bits, err);
        if (rc != MD_OK)
            return rc;
        if (!comma)
            return MD_OK;
        s = comma + 1;
    }
}

/* Invariant 1's last part: some selected (month, day) pair exists. Only matters when the days
 * are ANDed (one day field starred): with OR, every selected weekday occurs in every month. */
static int check_can_fire(const job_cron *c, md_err *err)
{
    if (!c->dom_star && !c->dow_star)
        return MD_OK;
    for (int m = 1; m <= 12; m++) {
        uint32_t days_in = (uint32_t)(((1ULL << (max_mdays[m] + 1)) - 1) & ~1ULL);
        if ((c->month >> m & 1) && (c->dom & days_in))
            return MD_OK;
    }
    return md_fail(err, MD_E_INVALID_PARAM, "cron",
                   "field 3 (day-of-month): no selected day exists in any selected month, so the "
                   "schedule would never fire");
}

static const char *expand_macro(const char *expr, md_err *err)
{
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++) {
        if (strcasecmp(expr, macros[i].name) == 0)
            return macros[i].expr;
    }
    md_fail(err, MD_E_INVALID_PARAM, "cron",
            "unknown macro \"%.20s\" (known: @yearly, @annually, @monthly, @weekly, @daily, "
            "@midnight, @hourly)",
            expr);
    return NULL;
}

/* Split expr into the five fields and parse each into c. */
static int parse_fields(const char *expr, job_cron *c, md_err *err)
{
    uint64_t bits[5];
    const char *start[5];
    int n = 0;
    const char *s = expr;
    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        const char *b = s;
        while (*s && *s != ' ' && *s != '\t')
            s++;
        if (n < 5) {
            start[n] = b;
            int rc = parse_field(b, (size_t)(s - b), n, &bits[n], err);
            if (rc != MD_OK)
                return rc;
        }
        n++;
    }
    if (n != 5)
        return md_fail(err, MD_E_INVALID_PARAM, "cron",
                       "must have 5 fields (minute hour day-of-month month day-of-week), got %d",
                       n);
    c->minute = bits[0];
    c->hour = (uint32_t)bits[1];
    c->dom = (uint32_t)bits[2];
    c->month = (uint16_t)bits[3];
    c->dow = (uint8_t)((bits[4] | bits[4] >> 7) & 0x7f); /* 7 is Sunday */
    c->dom_star = start[2][0] == '*';
    c->dow_star = start[4][0] == '*';
    return check_can_fire(c, err);
}

int job_cron_parse(const char *expr, job_cron *out, md_err *err)
{
    if (!expr)
        return md_fail(err, MD_E_MISSING_FIELD, "cron", "a cron expression is required");
    size_t len = strnlen(expr, JOB_CRON_MAX);
    if (len >= JOB_CRON_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, "cron", "longer than %d bytes", JOB_CRON_MAX - 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)expr[i];
        if (ch < 0x20 && ch != '\t')
            return md_fail(err, MD_E_INVALID_PARAM, "cron", "contains a control character");
    }
    while (*expr == ' ' || *expr == '\t')
        expr++;
    if (*expr == '@') {
        expr = expand_macro(expr, err);
        if (!expr)
            return MD_E_INVALID_PARAM;
    }
    job_cron c = {0};
    int rc = parse_fields(expr, &c, err);
    if (rc == MD_OK)
        *out = c;
    return rc;
}

/* ---- dates ---------------------------------------------------------------------------------
 * Howard Hinnant's days_from_civil / civil_from_days (public domain algorithms), for years
 * 1970..9999 here, so every quantity stays non-negative. */

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = y / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = z / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 ? 28 + leap : max_mdays[m];
}

/* Vixie's day rule (see jobs.h). */
static int day_matches(const job_cron *c, int64_t y, int m, int d)
{
    int wd = (int)((days_from_civil(y, m, d) + 4) % 7); /* 1970-01-01 was a Thursday */
    int dom_ok = (int)(c->dom >> d & 1);
    int dow_ok = c->dow >> wd & 1;
    if (c->dom_star || c->dow_star)
        return dom_ok && dow_ok;
    return dom_ok || dow_ok;
}

/* Smallest set bit >= from in mask (bits up to max), or -1. */
static int next_bit(uint64_t mask, int from, int max)
{
    for (int b = from; b <= max; b++) {
        if (mask >> b & 1)
            return b;
    }
    return -1;
}

typedef struct cursor {
    int64_t y;
    int m, d, h, mi;
} cursor;

static void next_day(cursor *t)
{
    t->h = 0;
    t->mi = 0;
    if (++t->d > days_in_month(t->y, t->m)) {
        t->d = 1;
        if (++t->m > 12) {
            t->m = 1;
            t->y++;
        }
    }
}

static void next_month(cursor *t)
{
    t->d = days_in_month(t->y, t->m);
    next_day(t);
}

/* Move t to the first matching minute at or after it (invariant 3); 0, or -1 past year 9999. */
static int advance(const job_cron *c, cursor *t)
{
    while (t->y <= 9999) {
        if (!(c->month >> t->m & 1)) {
            next_month(t);
            continue;
        }
        if (!day_matches(c, t->y, t->m, t->d)) {
            next_day(t);
            continue;
        }
        int h = next_bit(c->hour, t->h, 23);
        if (h < 0) {
            next_day(t);
            continue;
        }
        if (h != t->h) {
            t->h = h;
            t->mi = 0;
        }
        int mi = next_bit(c->minute, t->mi, 59);
        if (mi >= 0) {
            t->mi = mi;
            return 0;
        }
        t->mi = 0;
        if (++t->h > 23)
            next_day(t);
    }
    return -1;
}

int job_cron_next(const job_cron *c, int64_t after_s, int64_t *next_s, md_err *err)
{
    if (after_s < 0 || after_s > JOB_CRON_TIME_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, "cron", "the start time %lld is outside 1970..9999",
                       (long long)after_s);
    int64_t t0 = after_s / 60 * 60 + 60;
    cursor t = {0};
    civil_from_days(t0 / 86400, &t.y, &t.m, &t.d);
    t.h = (int)(t0 % 86400 / 3600);
    t.mi = (int)(t0 % 3600 / 60);
    if (advance(c, &t) != 0)
        return md_fail(err, MD_E_INVALID_PARAM, "cron", "the schedule does not fire before 10000");
    *next_s = days_from_civil(t.y, t.m, t.d) * 86400 + t.h * 3600 + t.mi * 60;
    return MD_OK;
}
