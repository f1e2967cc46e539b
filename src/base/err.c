/* err.c - lookups into the error table of err.h and the md_fail() helper. */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    int status;
    const char *name;
    const char *msg;
} table[MD_E__COUNT] = {
#define MD_ERR_ROW(e, status, name, msg) [MD_E_##e] = {status, name, msg},
    MD_ERR_MAP(MD_ERR_ROW)
#undef MD_ERR_ROW
};

int md_err_status(int code)
{
    if (code < 0 || code >= MD_E__COUNT)
        return 500;
    return table[code].status;
}

const char *md_err_name(int code)
{
    if (code < 0 || code >= MD_E__COUNT)
        return table[MD_E_INTERNAL].name;
    return table[code].name;
}

const char *md_err_default_msg(int code)
{
    if (code < 0 || code >= MD_E__COUNT)
        return table[MD_E_INTERNAL].msg;
    return table[code].msg;
}

int md_fail(md_err *e, int code, const char *field, const char *fmt, ...)
{
    if (!e)
        return code;
    e->code = code;
    e->field[0] = '\0';
    if (field)
        snprintf(e->field, sizeof e->field, "%s", field);
    e->msg[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void md_err_clear(md_err *e)
{
    if (!e)
        return;
    e->code = MD_OK;
    e->field[0] = '\0';
    e->msg[0] = '\0';
}

const char *md_err_message(const md_err *e)
{
    if (e->msg[0])
        return e->msg;
    return md_err_default_msg(e->code);
}
