/* accesslog.c - the one JSON line per request, written without the general logger.
 *
 * The access log runs once per request on the I/O thread, so its cost shows directly in the
 * requests a core can serve: the general md_log_fields_raw() (printf, a growing buffer, a
 * character-at-a-time escaper) cost about 5 us per line, a third of a whole GET /api/health.
 * This writer builds the same line (same keys, same JSON shape as base/log.c) in a stack buffer
 * with a per-thread cache of the formatted second, and hands it to one write().
 * Invariants:
 *   1. A line is at most LINE_MAX bytes; long values (paths) are cut, never overflow.
 *   2. One write() per line, so lines from several threads never interleave.
 */
#include "http/http_int.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096
#define VALUE_MAX 1024 /* longest value written, before escaping */

typedef struct line {
    char b[LINE_MAX_BYTES];
    size_t n;
} line;

static void put(line *l, const char *s, size_t n)
{
    if (l->n + n < sizeof l->b - 2) {
        memcpy(l->b + l->n, s, n);
        l->n += n;
    }
}

#define PUT_LIT(l, s) put((l), (s), sizeof(s) - 1)

/* A JSON string value: quotes, backslashes and control bytes escaped. */
static void put_str(line *l, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[VALUE_MAX * 6 + 2];
    size_t n = 0;
    tmp[n++] = '"';
    for (size_t i = 0; s[i] && i < VALUE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            tmp[n++] = '\\';
            tmp[n++] = (char)c;
        } else if (c < 0x20) {
            memcpy(tmp + n, "\\u00", 4);
            tmp[n + 4] = hex[c >> 4];
            tmp[n + 5] = hex[c & 15];
            n += 6;
        } else {
            tmp[n++] = (char)c;
        }
    }
    tmp[n++] = '"';
    put(l, tmp, n);
}

static void put_u64(line *l, uint64_t v)
{
    char tmp[24];
    size_t n = sizeof tmp;
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(l, tmp + n, sizeof tmp - n);
}

/* "2026-11-23T21:02:03.123Z", the seconds part cached per thread. */
static void put_time(line *l)
{
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[24];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = ts.tv_sec;
    }
    long ms = ts.tv_nsec / 1000000;
    char frac[6] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', '"'};
    PUT_LIT(l, "{\"time\":\"");
    put(l, cached, strlen(cached));
    put(l, frac, sizeof frac);
}

void http__access_log(const http_req *r, const char *route, uint64_t dur_ns)
{
    line l;
    l.n = 0;
    put_time(&l);
    PUT_LIT(&l, ",\"level\":\"info\",\"msg\":\"request\",\"request_id\":");
    put_str(&l, r->id);
    PUT_LIT(&l, ",\"method\":");
    put_str(&l, r->method);
    PUT_LIT(&l, ",\"route\":");
    put_str(&l, route);
    PUT_LIT(&l, ",\"path\":");
    put_str(&l, r->path);
    PUT_LIT(&l, ",\"status\":");
    put_u64(&l, (uint64_t)(r->fin_status > 0 ? r->fin_status : 0));
    uint64_t us = dur_ns / 1000;
    PUT_LIT(&l, ",\"duration_ms\":");
    put_u64(&l, us / 1000);
    char frac[4] = {'.', (char)('0' + us % 1000 / 100), (char)('0' + us % 100 / 10), (char)('0' + us % 10)};
    put(&l, frac, sizeof frac);
    PUT_LIT(&l, ",\"bytes\":");
    put_u64(&l, r->fin_bytes);
    PUT_LIT(&l, ",\"client_ip\":");
    put_str(&l, r->ip);
    PUT_LIT(&l, ",\"key_id\":");
    put_str(&l, r->ident.key_id);
    l.b[l.n++] = '}';
    l.b[l.n++] = '\n';
    for (size_t off = 0; off < l.n;) {
        ssize_t k = write(STDERR_FILENO, l.b + off, l.n - off);
        if (k <= 0)
            break;
        off += (size_t)k;
    }
}
