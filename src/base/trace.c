/* trace.c - W3C traceparent parsing and formatting, spans and their OTLP/HTTP JSON form.
 *
 * Invariants:
 *  1. tr_parse never writes *out unless the whole value is valid: an invalid header starts a
 *     new trace, so a half-parsed context can never leak into a span.
 *  2. A span's strings are copied into the span (fixed-size, truncated), so a span outlives the
 *     request arena that named it; the exporter frees it with free().
 *  3. Every tr_span_* function accepts NULL (tracing off), so callers never branch themselves.
 *  4. Ids are never all zero (the spec's "invalid"); a zero draw is redrawn.
 */
#include "base/trace.h"
#include "base/trace_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* upper case is invalid in traceparent */
}

static int parse_hex(const char *s, size_t nbytes, uint8_t *out)
{
    int nonzero = 0;
    for (size_t i = 0; i < nbytes; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        out[i] = (uint8_t)(hi << 4 | lo);
        nonzero |= out[i];
    }
    return nonzero != 0;
}

int tr_parse(const char *s, size_t n, tr_ctx *out)
{
    tr_ctx c;
    uint8_t ver;
    if (s == NULL || n < TR_TRACEPARENT_LEN)
        return 0;
    if (hexval(s[0]) < 0 || hexval(s[1]) < 0 || (s[0] == 'f' && s[1] == 'f'))
        return 0;
    ver = (uint8_t)(hexval(s[0]) << 4 | hexval(s[1]));
    /* version 00 is exactly 55 bytes; a later version may append fields after a '-' */
    if (ver == 0 ? n != TR_TRACEPARENT_LEN : (n > TR_TRACEPARENT_LEN && s[55] != '-'))
        return 0;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return 0;
    if (!parse_hex(s + 3, 16, c.trace_id) || !parse_hex(s + 36, 8, c.span_id))
        return 0;
    if (hexval(s[53]) < 0 || hexval(s[54]) < 0)
        return 0;
    c.flags = (uint8_t)(hexval(s[53]) << 4 | hexval(s[54]));
    *out = c;
    return 1;
}

void tr_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void tr_format(const tr_ctx *c, char out[TR_TRACEPARENT_LEN + 1])
{
    memcpy(out, "00-", 3);
    tr_hex(c->trace_id, 16, out + 3);
    out[35] = '-';
    tr_hex(c->span_id, 8, out + 36);
    out[52] = '-';
    tr_hex(&c->flags, 1, out + 53);
}

static void random_id(uint8_t *p, size_t n)
{
    for (;;) {
        size_t got = 0;
        while (got < n) {
            ssize_t r = getrandom(p + got, n - got, 0);
            if (r > 0)
                got += (size_t)r;
        }
        for (size_t i = 0; i < n; i++)
            if (p[i] != 0)
                return; /* invariant 4 */
    }
}

void tr_ctx_new(tr_ctx *out)
{
    random_id(out->trace_id, sizeof out->trace_id);
    random_id(out->span_id, sizeof out->span_id);
    out->flags = 1;
}

int64_t tr_now_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- spans ---------------------------------------------------------------------------------- */

tr_span *tr_span_start_at(const char *name, tr_kind kind, const tr_ctx *parent, int64_t start_ns)
{
    if (!tr_enabled())
        return NULL;
    tr_span *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->kind = kind;
    if (parent != NULL) {
        memcpy(s->ctx.trace_id, parent->trace_id, sizeof s->ctx.trace_id);
        memcpy(s->parent_id, parent->span_id, sizeof s->parent_id);
        s->has_parent = 1;
        s->ctx.flags = parent->flags;
    } else {
        random_id(s->ctx.trace_id, sizeof s->ctx.trace_id);
        s->ctx.flags = 1;
    }
    random_id(s->ctx.span_id, sizeof s->ctx.span_id);
    s->start_ns = start_ns;
    return s;
}

tr_span *tr_span_start(const char *name, tr_kind kind, const tr_ctx *parent)
{
    if (!tr_enabled())
        return NULL;
    return tr_span_start_at(name, kind, parent, tr_now_unix_ns());
}

const tr_ctx *tr_span_ctx(const tr_span *s) { return s ? &s->ctx : NULL; }

static tr_attr *next_attr(tr_span *s, const char *key)
{
    if (s == NULL || s->nattrs >= TR_MAX_ATTRS)
        return NULL;
    tr_attr *a = &s->attrs[s->nattrs++];
    snprintf(a->key, sizeof a->key, "%s", key);
    return a;
}

void tr_span_attr_str(tr_span *s, const char *key, const char *val)
{
    tr_attr *a = next_attr(s, key);
    if (a == NULL)
        return;
    a->type = TR_ATTR_STR;
    snprintf(a->str, sizeof a->str, "%s", val ? val : "");
}

void tr_span_attr_int(tr_span *s, const char *key, int64_t val)
{
    tr_attr *a = next_attr(s, key);
    if (a == NULL)
        return;
    a->type = TR_ATTR_INT;
    a->num = val;
}

void tr_span_attr_double(tr_span *s, const char *key, double val)
{
    tr_attr *a = next_attr(s, key);
    if (a == NULL)
        return;
    /* JSON has no NaN or infinity: such a value is kept as a string */
    if (!isfinite(val)) {
        a->type = TR_ATTR_STR;
        snprintf(a->str, sizeof a->str, "%g", val);
        return;
    }
    a->type = TR_ATTR_DOUBLE;
    a->dbl = val;
}

void tr_span_status(tr_span *s, int code)
{
    if (s == NULL)
        return;
    s->status = code == MD_OK ? TR_STATUS_OK : TR_STATUS_ERROR;
    s->status_code = code;
}

void tr_span_end(tr_span *s)
{
    if (s == NULL)
        return;
    s->end_ns = tr_now_unix_ns();
    if (s->end_ns < s->start_ns)
        s->end_ns = s->start_ns;
    tr__enqueue(s);
}

/* ---- OTLP/HTTP JSON ------------------------------------------------------------------------- */

static int put_attr(md_buf *b, const tr_attr *a)
{
    int rc = md_buf_puts(b, "{\"key\":");
    rc |= md_buf_put_json_str(b, a->key);
    if (a->type == TR_ATTR_INT) {
        rc |= md_buf_printf(b, ",\"value\":{\"intValue\":\"%lld\"}}", (long long)a->num);
    } else if (a->type == TR_ATTR_DOUBLE) {
        rc |= md_buf_printf(b, ",\"value\":{\"doubleValue\":%.17g}}", a->dbl);
    } else {
        rc |= md_buf_puts(b, ",\"value\":{\"stringValue\":");
        rc |= md_buf_put_json_str(b, a->str);
        rc |= md_buf_puts(b, "}}");
    }
    return rc;
}

static int put_span(md_buf *b, const tr_span *s)
{
    char tid[33], sid[17], pid[17];
    tr_hex(s->ctx.trace_id, 16, tid);
    tr_hex(s->ctx.span_id, 8, sid);
    int rc = md_buf_printf(b, "{\"traceId\":\"%s\",\"spanId\":\"%s\"", tid, sid);
    if (s->has_parent) {
        tr_hex(s->parent_id, 8, pid);
        rc |= md_buf_printf(b, ",\"parentSpanId\":\"%s\"", pid);
    }
    rc |= md_buf_puts(b, ",\"name\":");
    rc |= md_buf_put_json_str(b, s->name);
    rc |= md_buf_printf(b, ",\"kind\":%d,\"startTimeUnixNano\":\"%lld\",\"endTimeUnixNano\":\"%lld\"",
                        (int)s->kind, (long long)s->start_ns, (long long)s->end_ns);
    rc |= md_buf_puts(b, ",\"attributes\":[");
    for (int i = 0; i < s->nattrs; i++) {
        rc |= i ? md_buf_putc(b, ',') : 0;
        rc |= put_attr(b, &s->attrs[i]);
    }
    rc |= md_buf_printf(b, "],\"status\":{\"code\":%d", (int)s->status);
    if (s->status == TR_STATUS_ERROR) {
        rc |= md_buf_puts(b, ",\"message\":");
        rc |= md_buf_put_json_str(b, md_err_name(s->status_code));
    }
    rc |= md_buf_puts(b, "}}");
    return rc;
}

int tr_otlp_json(tr_span *const *spans, size_t n, const char *service, md_buf *b)
{
    int rc = md_buf_puts(b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":"
                            "\"service.name\",\"value\":{\"stringValue\":");
    rc |= md_buf_put_json_str(b, service ? service : "modeld");
    rc |= md_buf_puts(b, "}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"modeld\"},\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        rc |= i ? md_buf_putc(b, ',') : 0;
        rc |= put_span(b, spans[i]);
    }
    rc |= md_buf_puts(b, "]}]}]}");
    return rc ? MD_E_TOO_LARGE : MD_OK;
}
