/* log.h - structured logs: one JSON object per line on stderr.
 *
 * Every line has time, level and msg; request-scoped lines add request_id, method, route,
 * status, duration_ms and bytes through md_log_fields. Lines are written with a single
 * write() so lines from different threads never interleave.
 */
#ifndef MD_BASE_LOG_H
#define MD_BASE_LOG_H

typedef enum md_log_level { MD_LOG_DEBUG, MD_LOG_INFO, MD_LOG_WARN, MD_LOG_ERROR } md_log_level;

/* Lines below this level are dropped (default INFO). */
void md_log_set_level(md_log_level lvl);
md_log_level md_log_get_level(void);
/* Parse "debug|info|warn|error"; returns -1 for anything else. */
int md_log_level_parse(const char *s);

/* A plain line: {"time":...,"level":...,"msg":...}. */
void md_log(md_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A line with extra fields. kv is a NULL-terminated list of key, value string pairs; values
 * are written as escaped JSON strings. Use md_log_fields_raw for numbers. Example: md_log_fields(MD_LOG_INFO, "request", (const char *[]){"request_id", id,
 * NULL}); */
void md_log_fields(md_log_level lvl, const char *msg, const char *const *kv);

/* Like md_log_fields but each value is written verbatim when its key starts with '#'
 * (the '#' is dropped): {"#status", "200"} gives "status":200. */
void md_log_fields_raw(md_log_level lvl, const char *msg, const char *const *kv);

#endif
