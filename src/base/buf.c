/* buf.c - bounded growable buffer; see buf.h. */
#include "base/buf.h"

#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void md_buf_init(md_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void md_buf_free(md_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void md_buf_reset(md_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int reserve(md_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return MD_E_TOO_LARGE;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return MD_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (!p)
        return MD_E_NOMEM;
    b->data = p;
    b->cap = cap;
    return MD_OK;
}

int md_buf_append(md_buf *b, const void *p, size_t n)
{
    int rc = reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return MD_OK;
}

int md_buf_puts(md_buf *b, const char *s) { return md_buf_append(b, s, strlen(s)); }
int md_buf_putc(md_buf *b, char c) { return md_buf_append(b, &c, 1); }

int md_buf_vprintf(md_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return MD_E_INTERNAL;
    int rc = reserve(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return MD_OK;
}

int md_buf_printf(md_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = md_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int md_buf_put_json_str(md_buf *b, const char *s)
{
    int rc = md_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p && rc == MD_OK; p++) {
        switch (*p) {
        case '"': rc = md_buf_puts(b, "\\\""); break;
        case '\\': rc = md_buf_puts(b, "\\\\"); break;
        case '\n': rc = md_buf_puts(b, "\\n"); break;
        case '\r': rc = md_buf_puts(b, "\\r"); break;
        case '\t': rc = md_buf_puts(b, "\\t"); break;
        default:
            if (*p < 0x20)
                rc = md_buf_printf(b, "\\u%04x", *p);
            else
                rc = md_buf_putc(b, (char)*p);
        }
    }
    return rc == MD_OK ? md_buf_putc(b, '"') : rc;
}

char *md_buf_steal(md_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    if (!p) {
        p = malloc(1);
        if (p)
            p[0] = '\0';
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
