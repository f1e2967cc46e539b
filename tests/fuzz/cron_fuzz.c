/* cron_fuzz.c - libFuzzer target for the cron parser (src/jobs/cron.c): arbitrary bytes as an
 * expression. It must be refused with MD_E_INVALID_PARAM naming the field "cron", or parse
 * into sets inside each field's range whose next fire, from a few starting points, is a whole
 * minute later than the start that the parsed sets match, found in bounded time. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs.h"

static void check_next(const job_cron *c, int64_t after)
{
    int64_t next = 0;
    md_err e;
    int rc = job_cron_next(c, after, &next, &e);
    if (rc != MD_OK) {
        if (rc != MD_E_INVALID_PARAM || strcmp(e.field, "cron") != 0)
            abort();
        return;
    }
    if (next <= after || next % 60 != 0 || next > JOB_CRON_TIME_MAX)
        abort();
    int minute = (int)(next % 3600 / 60), hour = (int)(next % 86400 / 3600);
    if (!(c->minute >> minute & 1) || !(c->hour >> hour & 1))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char expr[JOB_CRON_MAX + 8];
    if (size >= sizeof expr)
        size = sizeof expr - 1;
    memcpy(expr, data, size);
    expr[size] = '\0';

    job_cron c;
    md_err e;
    int rc = job_cron_parse(expr, &c, &e);
    if (rc != MD_OK) {
        if (rc != MD_E_INVALID_PARAM || strcmp(e.field, "cron") != 0)
            abort();
        return 0;
    }
    if (!c.minute || c.minute >> 60 || !c.hour || c.hour >> 24 || !(c.dom & ~1u) ||
        !(c.month & 0x1ffe) || c.month & ~0x1ffe || !c.dow || c.dow & 0x80)
        abort();
    check_next(&c, 0);
    check_next(&c, 1709164799); /* 2024-02-28T23:59:59Z */
    check_next(&c, 4102444800); /* 2100-01-01T00:00:00Z */
    check_next(&c, JOB_CRON_TIME_MAX - 86400 * 366);
    return 0;
}
