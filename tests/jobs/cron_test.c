/* cron_test.c - the 5-field cron parser and next-fire computation (src/jobs/cron.c): fixed
 * cases across month ends, leap days (2100 is not one), year ends and the Vixie day rule; a
 * cross-check against a minute-by-minute scan with gmtime_r; and errors naming the field. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "jobs/jobs.h"

/* "YYYY-MM-DD HH:MM[:SS]" (UTC) -> Unix seconds, through libc (independent of cron.c). */
static int64_t ts(const char *s)
{
    struct tm tm = {0};
    int sec = 0;
    int n = sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &sec);
    assert_true(n >= 5);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_sec = sec;
    return (int64_t)timegm(&tm);
}

static void expect_next(const char *expr, const char *after, const char *want)
{
    job_cron c;
    md_err e = {0};
    int rc = job_cron_parse(expr, &c, &e);
    if (rc != MD_OK)
        fail_msg("parse \"%s\": %s", expr, e.msg);
    int64_t next = 0;
    assert_int_equal(job_cron_next(&c, ts(after), &next, &e), MD_OK);
    if (next != ts(want)) {
        time_t t = (time_t)next;
        struct tm tm;
        char got[32];
        gmtime_r(&t, &tm);
        strftime(got, sizeof got, "%Y-%m-%d %H:%M:%S", &tm);
        fail_msg("\"%s\" after %s: want %s, got %s", expr, after, want, got);
    }
}

static void test_every_minute_and_steps(void **state)
{
    (void)state;
    expect_next("* * * * *", "2023-11-14 22:13:20", "2023-11-14 22:14");
    expect_next("* * * * *", "2023-11-14 22:13:00", "2023-11-14 22:14"); /* strictly after */
    expect_next("*/15 * * * *", "2024-03-10 10:07:59", "2024-03-10 10:15");
    expect_next("*/15 * * * *", "2024-03-10 23:45", "2024-03-11 00:00");
    expect_next("5-10/2 * * * *", "2024-03-10 10:07", "2024-03-10 10:09");
    expect_next("5-10/2 * * * *", "2024-03-10 10:09", "2024-03-10 11:05");
    expect_next("50/5 * * * *", "2024-03-10 10:56", "2024-03-10 11:50"); /* 50,55 */
    expect_next("0 */6 * * *", "2024-03-10 13:00", "2024-03-10 18:00");
    expect_next("7,3,59 * * * *", "2024-03-10 13:04", "2024-03-10 13:07");
    expect_next("@hourly", "2024-03-10 13:04", "2024-03-10 14:00");
    expect_next("  0   12\t* * *  ", "2024-03-10 13:04", "2024-03-11 12:00");
}

static void test_month_and_year_ends(void **state)
{
    (void)state;
    expect_next("30 12 31 * *", "2024-04-01 00:00", "2024-05-31 12:30"); /* April has 30 */
    expect_next("59 23 31 dec *", "2023-12-31 23:59", "2024-12-31 23:59");
    expect_next("0 0 1 1 *", "2023-12-31 23:59:59", "2024-01-01 00:00");
    expect_next("@yearly", "2024-01-01 00:00", "2025-01-01 00:00");
    expect_next("@monthly", "2024-01-31 12:00", "2024-02-01 00:00");
    expect_next("0 0 1 jan,JUL *", "2024-02-01 00:00", "2024-07-01 00:00");
    expect_next("0 0 * nov-dec *", "2024-02-01 00:00", "2024-11-01 00:00");
    expect_next("0 0 31 * *", "2024-01-31 00:00", "2024-03-31 00:00");
}

static void test_leap_days(void **state)
{
    (void)state;
    expect_next("0 0 29 2 *", "2023-03-01 00:00", "2024-02-29 00:00");
    expect_next("0 0 29 2 *", "2024-02-29 00:00", "2028-02-29 00:00");
    expect_next("0 0 29 feb *", "2096-03-01 00:00", "2104-02-29 00:00"); /* 2100 is not leap */
    expect_next("0 0 29 feb *", "1999-03-01 00:00", "2000-02-29 00:00"); /* 2000 is */
    expect_next("0 12 28-29 feb *", "2023-02-28 12:00", "2024-02-28 12:00");
    expect_next("0 12 28-29 feb *", "2024-02-28 12:00", "2024-02-29 12:00");
    expect_next("0 0 * * *", "2024-02-28 23:59:59", "2024-02-29 00:00");
    expect_next("0 0 * * *", "2023-02-28 23:59:59", "2023-03-01 00:00");
}

static void test_days_of_week_and_vixie_rule(void **state)
{
    (void)state;
    /* 2024-01-01 was a Monday */
    expect_next("0 9 * * mon-fri", "2024-01-05 09:00", "2024-01-08 09:00");
    expect_next("0 0 * * 0", "2024-01-01 00:00", "2024-01-07 00:00");
    expect_next("0 0 * * 7", "2024-01-01 00:00", "2024-01-07 00:00");
    expect_next("0 0 * * SUN", "2024-01-01 00:00", "2024-01-07 00:00");
    expect_next("0 0 * * sat,sun", "2024-01-01 00:00", "2024-01-06 00:00");
    expect_next("@weekly", "2024-01-07 00:00", "2024-01-14 00:00");
    /* neither day field starred: day of month OR day of week */
    expect_next("0 0 1,15 * mon", "2024-01-02 00:00", "2024-01-08 00:00");
    expect_next("0 0 1,15 * fri", "2024-01-12 00:00", "2024-01-15 00:00");
    expect_next("0 0 31 feb mon", "2024-01-02 00:00", "2024-02-05 00:00");
    /* a starred day field (with a step too): both must match */
    expect_next("0 0 */2 * mon", "2024-01-01 00:00", "2024-01-15 00:00");
    expect_next("0 0 13 * */7", "2024-01-01 00:00", "2024-10-13 00:00"); /* a Sunday the 13th */
    expect_next("0 0 13 * fri", "2024-01-01 00:00", "2024-01-05 00:00"); /* OR: any Friday */
    expect_next("0 0 13 * *", "2024-01-01 00:00", "2024-01-13 00:00");
}

static void test_limits_of_time(void **state)
{
    (void)state;
    job_cron c;
    md_err e = {0};
    int64_t next = 0;
    assert_int_equal(job_cron_parse("0 0 1 1 *", &c, &e), MD_OK);
    assert_int_equal(job_cron_next(&c, ts("9999-06-01 00:00"), &next, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "cron");
    assert_int_equal(job_cron_next(&c, -1, &next, &e), MD_E_INVALID_PARAM);
    assert_int_equal(job_cron_next(&c, JOB_CRON_TIME_MAX + 1, &next, &e), MD_E_INVALID_PARAM);
    assert_int_equal(job_cron_next(&c, 0, &next, &e), MD_OK);
    assert_int_equal(next, ts("1971-01-01 00:00"));
    expect_next("* * * * *", "9999-12-31 23:58:59", "9999-12-31 23:59");
}

/* ---- cross-check against a brute-force scan -------------------------------------------- */

static int in_list(const int *v, int x)
{
    for (; *v >= 0; v++) {
        if (*v == x)
            return 1;
    }
    return 0;
}

typedef struct brute {
    const char *expr;
    int minute[61], hour[25], dom[32], month[13], dow[8]; /* -1 terminated */
    int or_days;
} brute;

static int brute_matches(const brute *b, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    if (!in_list(b->minute, tm.tm_min) || !in_list(b->hour, tm.tm_hour) ||
        !in_list(b->month, tm.tm_mon + 1))
        return 0;
    int d = in_list(b->dom, tm.tm_mday), w = in_list(b->dow, tm.tm_wday);
    return b->or_days ? (d || w) : (d && w);
}

#define ALL_MIN                                                                                    \
    {                                                                                              \
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,  \
            25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45,    \
            46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, -1                             \
    }
#define ALL_HOUR                                                                                   \
    {                                                                                              \
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, -1   \
    }
#define ALL_DOM                                                                                    \
    {                                                                                              \
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, \
            26, 27, 28, 29, 30, 31, -1                                                             \
    }
#define ALL_MON                                                                                    \
    {                                                                                              \
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, -1                                                  \
    }
#define ALL_DOW                                                                                    \
    {                                                                                              \
        0, 1, 2, 3, 4, 5, 6, -1                                                                    \
    }

static const brute brutes[] = {
    {"*/7 * * * *", {0, 7, 14, 21, 28, 35, 42, 49, 56, -1}, ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, 0},
    {"13 2-4,22 * * *", {13, -1}, {2, 3, 4, 22, -1}, ALL_DOM, ALL_MON, ALL_DOW, 0},
    {"0,30 9 * * mon-fri", {0, 30, -1}, {9, -1}, ALL_DOM, ALL_MON, {1, 2, 3, 4, 5, -1}, 0},
    {"45 23 28-31 * *", {45, -1}, {23, -1}, {28, 29, 30, 31, -1}, ALL_MON, ALL_DOW, 0},
    {"0 6 1,15 * wed", {0, -1}, {6, -1}, {1, 15, -1}, ALL_MON, {3, -1}, 1},
    {"20 * */3 * sat,sun",
     {20, -1},
     ALL_HOUR,
     {1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, -1},
     ALL_MON,
     {0, 6, -1},
     0},
    {"0 0 * feb-mar 1", {0, -1}, {0, -1}, ALL_DOM, {2, 3, -1}, {1, -1}, 0},
    {"5 4 29 * 7", {5, -1}, {4, -1}, {29, -1}, ALL_MON, {0, -1}, 1},
};

static void test_against_brute_force(void **state)
{
    (void)state;
    /* starts spread over leap and common years, month and year ends */
    const char *starts[] = {"2023-02-27 22:58:30", "2024-02-28 23:44", "2024-12-30 21:59",
                            "2025-06-30 23:59:59", "2099-12-31 08:00"};
    for (size_t i = 0; i < sizeof brutes / sizeof brutes[0]; i++) {
        job_cron c;
        md_err e = {0};
        assert_int_equal(job_cron_parse(brutes[i].expr, &c, &e), MD_OK);
        for (size_t k = 0; k < sizeof starts / sizeof starts[0]; k++) {
            int64_t t = ts(starts[k]);
            /* three fires in a row from each start */
            for (int rep = 0; rep < 3; rep++) {
                int64_t want = t / 60 * 60 + 60;
                while (!brute_matches(&brutes[i], want))
                    want += 60;
                int64_t got = 0;
                assert_int_equal(job_cron_next(&c, t, &got, &e), MD_OK);
                if (got != want)
                    fail_msg("\"%s\" after %lld: want %lld, got %lld", brutes[i].expr, (long long)t,
                             (long long)want, (long long)got);
                t = got;
            }
        }
    }
}

/* ---- errors ---------------------------------------------------------------------------- */

static void expect_error(const char *expr, const char *needle)
{
    job_cron c;
    md_err e = {0};
    int rc = job_cron_parse(expr, &c, &e);
    if (rc == MD_OK)
        fail_msg("\"%s\" was accepted", expr);
    assert_int_equal(rc, MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "cron");
    if (!strstr(e.msg, needle))
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", expr, e.msg, needle);
}

static void test_errors_name_the_field(void **state)
{
    (void)state;
    expect_error("", "must have 5 fields");
    expect_error("* * * *", "got 4");
    expect_error("* * * * * *", "got 6");
    expect_error("60 * * * *", "field 1 (minute): 60 is out of range 0..59");
    expect_error("* 24 * * *", "field 2 (hour): 24 is out of range 0..23");
    expect_error("* * 0 * *", "field 3 (day-of-month): 0 is out of range 1..31");
    expect_error("* * 32 * *", "field 3 (day-of-month)");
    expect_error("* * * 13 *", "field 4 (month): 13 is out of range 1..12");
    expect_error("* * * 0 *", "field 4 (month)");
    expect_error("* * * * 8", "field 5 (day-of-week): 8 is out of range 0..7");
    expect_error("*/0 * * * *", "field 1 (minute): step 0");
    expect_error("* */25 * * *", "field 2 (hour): step 25");
    expect_error("* * * * */", "field 5 (day-of-week): a step needs a number");
    expect_error("5-3 * * * *", "field 1 (minute): range 5-3 runs backwards");
    expect_error("1,,2 * * * *", "field 1 (minute): empty list item");
    expect_error("1, * * * *", "field 1 (minute): empty list item");
    expect_error(",1 * * * *", "field 1 (minute): empty list item");
    expect_error("mon * * * *", "field 1 (minute): expected a number at \"mon\"");
    expect_error("* * * * monday", "field 5 (day-of-week): expected a number or a name");
    expect_error("* * * foo *", "field 4 (month)");
    expect_error("* * * jan- *", "field 4 (month)");
    expect_error("1-2-3 * * * *", "field 1 (minute): unexpected \"-3\"");
    expect_error("*5 * * * *", "field 1 (minute): unexpected \"5\"");
    expect_error("99999999999 * * * *", "field 1 (minute): number too large");
    expect_error("* * * * 1/99999999999", "field 5 (day-of-week): step too large");
    expect_error("-1 * * * *", "field 1 (minute)");
    expect_error("0 0 30 feb *", "never fire");
    expect_error("0 0 31 apr,jun,sep,nov *", "never fire");
    expect_error("0 0 30-31 2 */2", "never fire");
    expect_error("@every", "unknown macro");
    expect_error("* * * * *\n", "control character");

    char longer[JOB_CRON_MAX + 10];
    memset(longer, ' ', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    expect_error(longer, "longer than");

    job_cron c;
    md_err e = {0};
    assert_int_equal(job_cron_parse(NULL, &c, &e), MD_E_MISSING_FIELD);
    assert_string_equal(e.field, "cron");
}

static void test_parsed_sets(void **state)
{
    (void)state;
    job_cron c;
    md_err e = {0};
    assert_int_equal(job_cron_parse("0-59/20 1,2 * * 0,7", &c, &e), MD_OK);
    assert_int_equal(c.minute, (1ULL << 0) | (1ULL << 20) | (1ULL << 40));
    assert_int_equal(c.hour, 6);
    assert_int_equal(c.dom, 0xfffffffeu);
    assert_int_equal(c.month, 0x1ffe);
    assert_int_equal(c.dow, 1);
    assert_true(c.dom_star);
    assert_false(c.dow_star);
    assert_int_equal(job_cron_parse("0 0 * * *", &c, &e), MD_OK);
    assert_int_equal(c.dow, 0x7f);
    assert_true(c.dow_star);
    /* parse leaves *out alone on failure */
    job_cron before = c;
    assert_int_not_equal(job_cron_parse("bad", &c, &e), MD_OK);
    assert_memory_equal(&before, &c, sizeof c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_minute_and_steps),
        cmocka_unit_test(test_month_and_year_ends),
        cmocka_unit_test(test_leap_days),
        cmocka_unit_test(test_days_of_week_and_vixie_rule),
        cmocka_unit_test(test_limits_of_time),
        cmocka_unit_test(test_against_brute_force),
        cmocka_unit_test(test_errors_name_the_field),
        cmocka_unit_test(test_parsed_sets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
