/* log.c - JSON-lines logger on stderr; see log.h. */
#include "base/log.h"

#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int min_level = MD_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void md_log_set_level(md_log_level lvl) { min_level = (int)lvl; }
md_log_level md_log_get_level(void) { return (md_log_level)min_level; }

int md_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

static void begin(md_buf *b, md_log_level lvl)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char t[40];
    strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
    md_buf_printf(b, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\"", t, ts.tv_nsec / 1000000,
                  level_names[lvl]);
}

static void finish(md_buf *b)
{
    md_buf_puts(b, "}\n");
    if (b->data) {
        ssize_t off = 0;
        while ((size_t)off < b->len) {
            ssize_t n = write(STDERR_FILENO, b->data + off, b->len - (size_t)off);
            if (n <= 0)
                break;
            off += n;
        }
    }
    md_buf_free(b);
}

void md_log(md_log_level lvl, const char *fmt, ...)
{
    if ((int)lvl < min_level)
        return;
    md_buf b;
    md_buf_init(&b, 64 * 1024);
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    begin(&b, lvl);
    md_buf_puts(&b, ",\"msg\":");
    md_buf_put_json_str(&b, msg);
    finish(&b);
}

static void log_kv(md_log_level lvl, const char *msg, const char *const *kv, int raw)
{
    if ((int)lvl < min_level)
        return;
    md_buf b;
    md_buf_init(&b, 64 * 1024);
    begin(&b, lvl);
    md_buf_puts(&b, ",\"msg\":");
    md_buf_put_json_str(&b, msg);
    for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2) {
        const char *k = kv[i];
        int verbatim = raw && k[0] == '#';
        md_buf_putc(&b, ',');
        md_buf_put_json_str(&b, verbatim ? k + 1 : k);
        md_buf_putc(&b, ':');
        if (verbatim)
            md_buf_puts(&b, kv[i + 1]);
        else
            md_buf_put_json_str(&b, kv[i + 1]);
    }
    finish(&b);
}

void md_log_fields(md_log_level lvl, const char *msg, const char *const *kv)
{
    log_kv(lvl, msg, kv, 0);
}

void md_log_fields_raw(md_log_level lvl, const char *msg, const char *const *kv)
{
    log_kv(lvl, msg, kv, 1);
}
