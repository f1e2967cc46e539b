/* config.c - the settings table of `modeld serve` and its three parsers (flags, MODELD_* env,
 * INI file); see config.h for the syntax and precedence.
 *
 * One table drives everything: parsing, defaults (the default strings go through the same
 * parser, so --help can never disagree with the real default), the help text and the error
 * messages. Invariants:
 *   1. Every string field of md_config is NULL or malloc()ed and owned by the struct.
 *   2. A failed md_config_set leaves the setting's previous value in place.
 */
#include "config/config.h"

#include "base/log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { T_STR, T_INT, T_BOOL, T_SIZE, T_DUR, T_RATE, T_NUM } stype;

enum { NO_FLAG = 1 }; /* secrets: not on the command line, where `ps` would show them */

typedef struct setting {
    const char *name;
    stype t;
    size_t off;
    const char *def;
    long long lo, hi; /* inclusive bounds for INT, SIZE (bytes), DUR (ms) and NUM (a decimal) */
    unsigned flags;
    const char *arg, *help;
} setting;

#define F(field) offsetof(md_config, field)
#define KB 1024LL
#define MB (1024LL * KB)
#define GB (1024LL * MB)
#define SEC 1000LL
#define HOUR (3600LL * SEC)

static const setting settings[] = {
    {"config", T_STR, F(config_file), "", 0, 0, 0, "FILE", "INI file of settings (env and flags override it)"},
    {"host", T_STR, F(host), "127.0.0.1", 0, 0, 0, "ADDR", "address to listen on (name or IP; 0.0.0.0 for all)"},
    {"port", T_INT, F(port), "8080", 0, 65535, 0, "N", "TCP port; 0 picks a free one (logged at start)"},
    {"data_dir", T_STR, F(data_dir), "./var", 0, 0, 0, "DIR", "database, upload blobs and the JWT secret"},
    {"store", T_STR, F(store), "sqlite:", 0, 0, 0, "URL",
     "metadata database: sqlite:[FILE] (default FILE <data_dir>/modeld.db) or postgres://user@host"
     ":port/db (a libpq URI, shared by several nodes; keep the password in ~/.pgpass or "
     "PGPASSWORD, not here)"},
    {"store_pool", T_INT, F(store_pool), "4", 1, 64, 0, "N",
     "PostgreSQL connections of this process (calls beyond it wait their turn)"},
    {"blob_dir", T_STR, F(blob_dir), "", 0, 0, 0, "DIR",
     "uploads, results and job files (content-addressed); empty = <data_dir>/blobs; nodes that "
     "share a PostgreSQL store must share this directory too"},
    {"io_threads", T_INT, F(io_threads), "0", 0, 64, 0, "N", "HTTP I/O threads (at least 2); 0 = CPUs, at most 4"},
    {"compute_threads", T_INT, F(compute_threads), "0", 0, 256, 0, "N", "workers for heavy requests; 0 = CPUs"},
    {"compute_queue", T_INT, F(compute_queue), "256", 1, 100000, 0, "N",
     "heavy requests that may wait for a worker; beyond it 503 + Retry-After (keep it above the "
     "connections a load balancer keeps open, or busy moments shed load)"},
    {"max_connections", T_INT, F(max_connections), "1024", 1, 100000, 0, "N", "open connections at most"},
    {"body_limit", T_SIZE, F(body_limit), "25M", 1, 4 * GB, 0, "SIZE", "largest request body; larger gets 413"},
    {"request_timeout", T_DUR, F(request_timeout_ms), "30s", 1, HOUR, 0, "DUR",
     "deadline of a request; past it 504"},
    {"drain_timeout", T_DUR, F(drain_timeout_ms), "10s", 0, HOUR, 0, "DUR",
     "on SIGTERM/SIGINT, time in-flight requests get to finish"},
    {"idle_timeout", T_DUR, F(idle_timeout_ms), "30s", SEC, HOUR, 0, "DUR", "close idle keep-alive connections"},
    {"ws_max", T_INT, F(ws_max), "256", 1, 100000, 0, "N",
     "open WebSockets (job status) at most; beyond it 503 + Retry-After before the upgrade"},
    {"ws_ping", T_DUR, F(ws_ping_ms), "20s", 100, HOUR, 0, "DUR",
     "ping every open WebSocket this often; a peer that missed the previous ping is dropped"},
    {"cors_origins", T_STR, F(cors_origins), "", 0, 0, 0, "LIST",
     "comma-separated origins allowed by CORS, * for any; empty = CORS off"},
    {"log_level", T_STR, F(log_level), "info", 0, 0, 0, "LEVEL", "debug | info | warn | error"},
    {"access_log", T_BOOL, F(access_log), "true", 0, 0, 0, "BOOL", "one JSON line per request on stderr"},
    {"no_auth", T_BOOL, F(no_auth), "false", 0, 0, 0, "BOOL",
     "local development only: every caller is admin, no credentials checked"},
    {"metrics_public", T_BOOL, F(metrics_public), "true", 0, 0, 0, "BOOL",
     "GET /metrics without credentials (false: admin key needed)"},
    {"jwt_secret", T_STR, F(jwt_secret), "", 0, 0, NO_FLAG, "TEXT",
     "HS256 secret, >= 32 chars (env or file only); empty = <data_dir>/jwt.secret"},
    {"jwt_ttl", T_DUR, F(jwt_ttl_ms), "15m", SEC, 24 * HOUR, 0, "DUR", "lifetime of tokens from /api/auth/token"},
    {"refresh_ttl", T_DUR, F(refresh_ttl_ms), "30d", SEC, 8760 * HOUR, 0, "DUR",
     "lifetime of each refresh token (every rotation gets a new one)"},
    {"rate_read", T_RATE, F(rate_read), "100:200", 0, 0, 0, "R[:B]", "requests/s and burst per read key"},
    {"rate_write", T_RATE, F(rate_write), "50:100", 0, 0, 0, "R[:B]", "requests/s and burst per write key"},
    {"rate_admin", T_RATE, F(rate_admin), "100:200", 0, 0, 0, "R[:B]", "requests/s and burst per admin key"},
    {"rate_anon", T_RATE, F(rate_anon), "20:40", 0, 0, 0, "R[:B]",
     "requests/s and burst per client IP without a key"},
    {"upload_ttl", T_DUR, F(upload_ttl_ms), "1h", SEC, 720 * HOUR, 0, "DUR", "unreferenced uploads expire after"},
    {"sweep_interval", T_DUR, F(sweep_interval_ms), "5m", SEC, 24 * HOUR, 0, "DUR", "retention sweeper period"},
    {"store_min_free", T_SIZE, F(store_min_free), "16M", 0, 1024 * GB, 0, "SIZE",
     "GET /api/ready fails (store unwritable) with less free space in the data dir"},
    {"upload_max_bytes", T_SIZE, F(upload_max_bytes), "20M", KB, 1 * GB, 0, "SIZE",
     "largest image accepted by POST /api/upload; larger gets 413"},
    {"result_ttl", T_DUR, F(result_ttl_ms), "24h", SEC, 720 * HOUR, 0, "DUR",
     "conversion results stay fetchable (GET /api/results/{id}) this long"},
    {"convert_cache_entries", T_INT, F(convert_cache_entries), "256", 1, 1000000, 0, "N",
     "answers of POST /api/convert kept in memory (by image and parameters)"},
    {"convert_cache_ttl", T_DUR, F(convert_cache_ttl_ms), "10m", SEC, 24 * HOUR, 0, "DUR",
     "a cached conversion answer is reused this long (at most result_ttl)"},
    {"convert_max_pixels", T_INT, F(convert_max_pixels), "16000000", 1, 40000000, 0, "N",
     "largest image a conversion traces (width x height); larger gets 400 image_too_large"},
    {"convert_pixels_in_flight", T_INT, F(convert_pixels_in_flight), "0", 0, 4000000000LL, 0, "N",
     "pixels all running conversions may hold together; beyond it 503 + Retry-After; "
     "0 = 2 x convert_max_pixels"},
    {"web_dir", T_STR, F(web_dir), "", 0, 0, 0, "DIR",
     "web page files (index.html...); empty = web/ next to the binary or in the source tree"},
    {"docs_dir", T_STR, F(docs_dir), "", 0, 0, 0, "DIR",
     "swagger-ui-dist for the /docs page; empty = build/npm/node_modules/swagger-ui-dist of this build"},
    {"models_dir", T_STR, F(models_dir), "", 0, 0, 0, "DIR",
     "shipped model repository (read-only); empty = models/ next to the binary or in the source tree"},
    {"canary_promote_after", T_INT, F(canary_promote_after), "0", 0, 1000000000, 0, "N",
     "promote a canary version after N successful requests; 0 = only by hand"},
    {"canary_min_requests", T_INT, F(canary_min_requests), "20", 1, 1000000000, 0, "N",
     "requests a canary serves before it is judged for automatic rollback"},
    {"canary_error_margin", T_NUM, F(canary_error_margin), "0.05", 0, 1, 0, "X",
     "roll a canary back when its error rate exceeds the active version's by more than X"},
    {"canary_p99_ratio", T_NUM, F(canary_p99_ratio), "2", 1, 1000, 0, "X",
     "... or when its p99 latency exceeds the active version's times X"},
    {"predict_log_sample", T_NUM, F(predict_log_sample), "1", 0, 1, 0, "X",
     "share of predictions (0..1) logged with inputs and outputs for history and drift"},
    {"predict_log_flush_ms", T_INT, F(predict_log_flush_ms), "50", 0, 10000, 0, "MS",
     "write-behind prediction log: logged rows are committed by one writer thread, many per "
     "transaction, at most MS milliseconds after the request (kill -9 loses at most that window; "
     "SIGTERM loses nothing); 0 = each request writes its rows itself"},
    {"predict_bulk_log_sample", T_NUM, F(predict_bulk_log_sample), "0.01", 0, 1, 0, "X",
     "share of bulk-job rows (0..1) logged like predictions: drift and history need a sample, "
     "not every row of a million-row file (1 logs all: a 1M-row bulk then takes ~4x longer)"},
    {"workers", T_STR, F(workers), "auto", 0, 0, 0, "N",
     "job worker threads in this process (`modeld serve`, `modeld worker`), 0..256; 0 = none "
     "(jobs run in `modeld worker` processes); auto = half the CPUs, at least 1"},
    {"metrics_port", T_INT, F(metrics_port), "0", 0, 65535, 0, "N",
     "`modeld worker` only: serve GET /metrics, /api/health and /api/ready on this port (at the "
     "host setting's address; no credentials checked) for Prometheus and probes; 0 = off "
     "(`modeld serve` has them on its own port)"},
    {"job_lease", T_DUR, F(job_lease_ms), "30s", SEC, HOUR, 0, "DUR",
     "a running job's lease, renewed while it runs; a job whose worker died runs again after it"},
    {"job_attempts", T_INT, F(job_attempts), "3", 1, 100, 0, "N",
     "claims of one job (crashes, transient errors) before it ends in FAILURE"},
    {"job_queue_max", T_INT, F(job_queue_max), "1000", 1, 10000000, 0, "N",
     "jobs queued or running at most; beyond it submissions get 503 + Retry-After"},
    {"job_input_ttl", T_DUR, F(job_input_ttl_ms), "1h", SEC, 720 * HOUR, 0, "DUR",
     "a job's uploaded input is kept this long (and at least until the job ends)"},
    {"job_result_ttl", T_DUR, F(job_result_ttl_ms), "24h", SEC, 720 * HOUR, 0, "DUR",
     "a finished job and its result are kept this long after completion, then swept"},
    {"callback_allow_hosts", T_STR, F(callback_allow_hosts), "", 0, 0, 0, "LIST",
     "hosts (host or host:port, comma-separated) that job callbacks may be sent to; empty = a "
     "callback_url is refused with 400"},
    {"callback_secret", T_STR, F(callback_secret), "", 0, 0, NO_FLAG, "TEXT",
     "key of the HMAC-SHA256 X-Modeld-Signature of callbacks (env or file only); required with "
     "callback_allow_hosts"},
    {"callback_attempts", T_INT, F(callback_attempts), "8", 1, 100, 0, "N",
     "tries of one callback (doubling backoff from 1 s, at most 1 h apart) before it fails"},
    {"callback_timeout", T_DUR, F(callback_timeout_ms), "10s", SEC, 5 * 60 * SEC, 0, "DUR",
     "one callback POST at most (connect and answer)"},
    {"enhance_max_running", T_INT, F(enhance_max_running), "0", 0, 256, 0, "N",
     "enhancement jobs running at once in this process; 0 = the worker threads (auto: half the "
     "CPUs)"},
    {"enhance_memory_budget", T_SIZE, F(enhance_memory_budget), "1536M", MB, 1024 * GB, 0, "SIZE",
     "peak memory the enhancement jobs that can run at once may need together (estimated at "
     "submission: the enhance_max_running largest among running, queued and new jobs); beyond "
     "it 503 + Retry-After"},
    {"enhance_max_bytes", T_SIZE, F(enhance_max_bytes), "20M", KB, 1 * GB, 0, "SIZE",
     "largest photo POST /api/v1/enhance accepts; larger gets 413"},
    {"bulk_max_bytes", T_SIZE, F(bulk_max_bytes), "100M", KB, 1 * GB, 0, "SIZE",
     "largest upload POST /api/{model}/bulk accepts; larger gets 413"},
    {"enhance_rate", T_RATE, F(enhance_rate), "1:20", 0, 0, 0, "R[:B]",
     "POST /api/v1/enhance and /enhance/batch per key (per IP without one), requests/s and burst "
     "(on top of the role's rate)"},
    {"redis", T_STR, F(redis), "", 0, 0, 0, "URL",
     "Redis shared by the nodes of a cluster (redis://host[:port][/db] or unix:///path[?db=N]): "
     "shared rate limits, the L2 conversion cache, model-registry and job-progress events; "
     "empty = none (this node alone)"},
    {"redis_down", T_STR, F(redis_down), "local", 0, 0, 0, "POLICY",
     "rate limits while Redis is down: local (each node's own buckets) or refuse (503)"},
    {"redis_cache_ttl", T_DUR, F(redis_cache_ttl_ms), "3600s", SEC, 720 * HOUR, 0, "DUR",
     "a conversion answer stays in the Redis L2 cache this long (at most result_ttl)"},
    {"redis_timeout", T_DUR, F(redis_timeout_ms), "500ms", 10, 60 * SEC, 0, "DUR",
     "Redis connect and command timeout; a node that waits longer treats Redis as down"},
    {"otlp_endpoint", T_STR, F(otlp_endpoint), "", 0, 0, 0, "URL",
     "OpenTelemetry collector (http(s)://host:port): spans are POSTed as OTLP/HTTP JSON to "
     "URL/v1/traces; empty = tracing off (an incoming traceparent is still answered)"},
    {"otlp_queue", T_INT, F(otlp_queue), "2048", 1, 1000000, 0, "N",
     "ended spans waiting for export at most; beyond it spans are dropped and counted"},
    {"otlp_batch", T_INT, F(otlp_batch), "256", 1, 100000, 0, "N", "spans one export POST carries at most"},
    {"otlp_interval", T_DUR, F(otlp_interval_ms), "1s", 10, HOUR, 0, "DUR",
     "a partial batch of spans is exported after this long"},
    {"otlp_timeout", T_DUR, F(otlp_timeout_ms), "2s", 10, 60 * SEC, 0, "DUR",
     "deadline of one export POST; a slower collector loses that batch (counted as failed)"},
    {"test_routes", T_BOOL, F(test_routes), "false", 0, 0, 0, "BOOL",
     "debug: /api/test/* routes for the end-to-end tests (never in production)"},
};
#define NSETTINGS (sizeof settings / sizeof settings[0])

static const setting *find(const char *name, size_t n)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strlen(settings[i].name) == n && strncmp(settings[i].name, name, n) == 0)
            return &settings[i];
    return NULL;
}

static int bad(md_err *err, const setting *s, const char *origin, const char *what, const char *v)
{
    return md_fail(err, MD_E_INVALID_PARAM, s->name, "invalid %s from %s: expected %s, got \"%.80s\"", s->name,
                   origin, what, v);
}

/* Whole-string integer with an optional unit suffix scaled by mult(suffix). */
static bool parse_num(const char *v, long long *out, const char **suffix)
{
    errno = 0;
    char *end;
    if (!isdigit((unsigned char)*v))
        return false;
    long long n = strtoll(v, &end, 10);
    if (errno)
        return false;
    *out = n;
    *suffix = end;
    return true;
}

static bool scale(long long n, long long mult, long long *out)
{
    if (n > LLONG_MAX / mult)
        return false;
    *out = n * mult;
    return true;
}

typedef struct unit {
    const char *suffix;
    long long mult;
} unit;

/* A number followed by one of the units' suffixes (case-insensitive when fold_case), scaled. */
static bool parse_scaled(const char *v, const unit *units, size_t n_units, bool fold_case, long long *out)
{
    long long n;
    const char *sfx;
    if (!parse_num(v, &n, &sfx))
        return false;
    for (size_t i = 0; i < n_units; i++)
        if ((fold_case ? strcasecmp(sfx, units[i].suffix) : strcmp(sfx, units[i].suffix)) == 0)
            return scale(n, units[i].mult, out);
    return false;
}

static bool parse_size(const char *v, long long *out)
{
    static const unit units[] = {{"", 1},   {"b", 1},    {"k", KB}, {"kb", KB}, {"kib", KB}, {"m", MB},
                                 {"mb", MB}, {"mib", MB}, {"g", GB}, {"gb", GB}, {"gib", GB}};
    return parse_scaled(v, units, sizeof units / sizeof units[0], true, out);
}

/* Lower-case suffixes only: "5M" is refused rather than read as minutes (or megabytes). */
static bool parse_dur(const char *v, long long *out)
{
    static const unit units[] = {{"", SEC}, {"ms", 1}, {"s", SEC}, {"m", 60 * SEC}, {"h", HOUR}, {"d", 24 * HOUR}};
    return parse_scaled(v, units, sizeof units / sizeof units[0], false, out);
}

static int parse_bool(const char *v)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    }
    return -1;
}

static bool parse_rate(const char *v, md_rate *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*v))
        return false;
    double r = strtod(v, &end);
    if (errno || !(r > 0) || r > 1e9)
        return false;
    long long burst = (long long)(r < 1 ? 1 : r);
    if (*end == ':') {
        const char *b = end + 1;
        if (!isdigit((unsigned char)*b))
            return false;
        burst = strtoll(b, &end, 10);
        if (errno || burst < 1 || burst > 1000000000)
            return false;
    }
    if (*end)
        return false;
    out->per_sec = r;
    out->burst = (uint32_t)burst;
    return true;
}

static int set_str(md_config *c, const setting *s, const char *v, const char *origin, md_err *err)
{
    if (strcmp(s->name, "log_level") == 0 && md_log_level_parse(v) < 0)
        return bad(err, s, origin, "one of debug, info, warn, error", v);
    if ((strcmp(s->name, "host") == 0 || strcmp(s->name, "data_dir") == 0) && !*v)
        return bad(err, s, origin, "a non-empty value", v);
    char *copy = strdup(v);
    if (!copy)
        return md_fail(err, MD_E_NOMEM, s->name, NULL);
    char **field = (char **)(void *)((char *)c + s->off);
    free(*field);
    *field = copy;
    return MD_OK;
}

static int set_value(md_config *c, const setting *s, const char *v, const char *origin, md_err *err)
{
    void *field = (char *)c + s->off;
    long long n = 0;
    char what[96];
    switch (s->t) {
    case T_STR:
        return set_str(c, s, v, origin, err);
    case T_BOOL: {
        int b = parse_bool(v);
        if (b < 0)
            return bad(err, s, origin, "true or false", v);
        *(bool *)field = b;
        return MD_OK;
    }
    case T_RATE:
        return parse_rate(v, field) ? MD_OK
                                    : bad(err, s, origin, "<requests per second>[:<burst>], e.g. 50:100", v);
    case T_INT:
        snprintf(what, sizeof what, "an integer in %lld..%lld", s->lo, s->hi);
        if (!parse_num(v, &n, &(const char *){0}) || strspn(v, "0123456789") != strlen(v) || n < s->lo || n > s->hi)
            return bad(err, s, origin, what, v);
        *(long *)field = (long)n;
        return MD_OK;
    case T_SIZE:
        snprintf(what, sizeof what, "a size from %lld bytes to %lldG, like 25M", s->lo, s->hi / GB);
        if (!parse_size(v, &n) || n < s->lo || n > s->hi)
            return bad(err, s, origin, what, v);
        *(size_t *)field = (size_t)n;
        return MD_OK;
    case T_NUM: {
        snprintf(what, sizeof what, "a decimal number in %lld..%lld", s->lo, s->hi);
        char *end = (char *)v;
        double d = isdigit((unsigned char)*v) && strspn(v, "0123456789.") == strlen(v) ? strtod(v, &end) : -1;
        if (d < (double)s->lo || d > (double)s->hi || *end)
            return bad(err, s, origin, what, v);
        *(double *)field = d;
        return MD_OK;
    }
    case T_DUR:
        snprintf(what, sizeof what, "a duration from %lldms to %lldh, like 30s, 500ms, 5m", s->lo, s->hi / HOUR);
        if (!parse_dur(v, &n) || n < s->lo || n > s->hi)
            return bad(err, s, origin, what, v);
        *(long *)field = (long)n;
        return MD_OK;
    }
    return md_fail(err, MD_E_INTERNAL, s->name, NULL);
}

int md_config_set(md_config *c, const char *name, const char *value, const char *origin, md_err *err)
{
    const setting *s = find(name, strlen(name));
    if (!s)
        return md_fail(err, MD_E_INVALID_PARAM, name, "unknown setting \"%.64s\" from %s", name, origin);
    return set_value(c, s, value, origin, err);
}

int md_config_defaults(md_config *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NSETTINGS; i++) {
        int rc = set_value(c, &settings[i], settings[i].def, "default", NULL);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

void md_config_free(md_config *c)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (settings[i].t == T_STR)
            free(*(char **)(void *)((char *)c + settings[i].off));
    memset(c, 0, sizeof *c);
}

/* ---- INI ---- */

static void trim(const char **b, const char **e)
{
    while (*b < *e && isspace((unsigned char)**b))
        (*b)++;
    while (*e > *b && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

/* One "key = value" line (already trimmed, not a comment or section). */
static int ini_line(md_config *c, const char *b, const char *e, const char *origin, int lineno, md_err *err)
{
    char where[160];
    snprintf(where, sizeof where, "%.120s line %d", origin, lineno);
    const char *eq = memchr(b, '=', (size_t)(e - b));
    if (!eq)
        return md_fail(err, MD_E_INVALID_PARAM, NULL, "%s: expected key = value", where);
    const char *kb = b, *ke = eq, *vb = eq + 1, *ve = e;
    trim(&kb, &ke);
    trim(&vb, &ve);
    if (ve - vb >= 2 && (*vb == '"' || *vb == '\'') && ve[-1] == *vb) {
        vb++;
        ve--;
    }
    const setting *s = find(kb, (size_t)(ke - kb));
    if (!s || strcmp(s->name, "config") == 0)
        return md_fail(err, MD_E_INVALID_PARAM, NULL, "%s: unknown setting \"%.*s\"", where,
                       (int)(ke - kb > 64 ? 64 : ke - kb), kb);
    size_t vl = (size_t)(ve - vb);
    if (vl > 4096)
        return md_fail(err, MD_E_INVALID_PARAM, s->name, "%s: value of %s is too long", where, s->name);
    char val[4097];
    memcpy(val, vb, vl);
    val[vl] = '\0';
    if (memchr(vb, '\0', vl))
        return md_fail(err, MD_E_INVALID_PARAM, s->name, "%s: NUL byte in the value", where);
    return set_value(c, s, val, where, err);
}

int md_config_parse_ini(md_config *c, const char *text, size_t len, const char *origin, md_err *err)
{
    const char *p = text, *end = text + len;
    for (int lineno = 1; p < end; lineno++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *b = p, *e = nl ? nl : end;
        p = nl ? nl + 1 : end;
        trim(&b, &e);
        if (b == e || *b == '#' || *b == ';')
            continue;
        if (*b == '[') {
            if (e[-1] != ']' || e - b < 3)
                return md_fail(err, MD_E_INVALID_PARAM, NULL, "%.120s line %d: malformed [section]", origin, lineno);
            continue;
        }
        int rc = ini_line(c, b, e, origin, lineno, err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

static int load_file(md_config *c, const char *path, md_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return md_fail(err, MD_E_INVALID_PARAM, "config", "cannot open config file %.200s", path);
    size_t cap = 1 << 20, n;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return md_fail(err, MD_E_NOMEM, "config", NULL);
    }
    n = fread(buf, 1, cap + 1, f);
    fclose(f);
    int rc = n > cap ? md_fail(err, MD_E_INVALID_PARAM, "config", "config file %.200s is larger than 1 MiB", path)
                     : md_config_parse_ini(c, buf, n, path, err);
    free(buf);
    return rc;
}

/* ---- environment and flags ---- */

/* MODELD_DATA_DIR=x -> setting data_dir; unknown MODELD_* names are left alone (tools use some). */
static int apply_env(md_config *c, char *const *envp, md_err *err)
{
    for (size_t i = 0; envp && envp[i]; i++) {
        const char *e = envp[i];
        if (strncmp(e, "MODELD_", 7) != 0)
            continue;
        const char *eq = strchr(e, '=');
        char name[64];
        size_t n = eq ? (size_t)(eq - e - 7) : 0;
        if (!eq || n == 0 || n >= sizeof name)
            continue;
        for (size_t k = 0; k < n; k++)
            name[k] = (char)tolower((unsigned char)e[7 + k]);
        name[n] = '\0';
        const setting *s = find(name, n);
        if (!s || strcmp(s->name, "config") == 0)
            continue;
        char origin[80];
        snprintf(origin, sizeof origin, "MODELD_%.*s", (int)n, e + 7);
        int rc = set_value(c, s, eq + 1, origin, err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

/* "--data-dir" (n chars) -> setting; NULL when unknown. */
static const setting *flag_setting(const char *f, size_t n)
{
    char name[64];
    if (n >= sizeof name)
        return NULL;
    for (size_t k = 0; k < n; k++)
        name[k] = f[k] == '-' ? '_' : f[k];
    name[n] = '\0';
    const setting *s = find(name, n);
    return s && !(s->flags & NO_FLAG) ? s : NULL;
}

/* Walk argv; with only_config, apply just --config (it must be known before the file loads). */
static int apply_argv(md_config *c, int argc, char **argv, bool only_config, md_err *err)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            c->help = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            return md_fail(err, MD_E_INVALID_PARAM, NULL, "unexpected argument \"%.80s\" (see --help)", a);
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        const setting *s = flag_setting(a + 2, n);
        if (!s)
            return md_fail(err, MD_E_INVALID_PARAM, NULL, "unknown option \"%.*s\" (see --help)",
                           (int)(n + 2 > 80 ? 80 : n + 2), a);
        const char *v = eq ? eq + 1 : NULL;
        if (!v && s->t == T_BOOL)
            v = "true";
        if (!v && i + 1 >= argc)
            return md_fail(err, MD_E_INVALID_PARAM, s->name, "option --%.*s needs a value", (int)n, a + 2);
        if (!v)
            v = argv[++i];
        if (only_config != (strcmp(s->name, "config") == 0))
            continue;
        char origin[80];
        snprintf(origin, sizeof origin, "--%.*s", (int)(n > 60 ? 60 : n), a + 2);
        int rc = set_value(c, s, v, origin, err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

int md_config_workers(const md_config *c)
{
    if (!c->workers || strcmp(c->workers, "auto") == 0)
        return -1;
    char *end = NULL;
    long n = strtol(c->workers, &end, 10);
    if (!*c->workers || *end || n < 0 || n > 256 || strspn(c->workers, "0123456789") != strlen(c->workers))
        return -2;
    return (int)n;
}

int md_config_validate(const md_config *c, md_err *err)
{
    if (strncmp(c->store, "sqlite:", 7) != 0 && strncmp(c->store, "postgres://", 11) != 0 &&
        strncmp(c->store, "postgresql://", 13) != 0)
        return md_fail(err, MD_E_INVALID_PARAM, "store",
                       "store must be sqlite:[FILE] or postgres://..., got \"%.32s\"", c->store);
    if (md_config_workers(c) == -2)
        return md_fail(err, MD_E_INVALID_PARAM, "workers", "workers must be auto or an integer in 0..256, got \"%.32s\"",
                       c->workers);
    if (c->otlp_endpoint && *c->otlp_endpoint && strncmp(c->otlp_endpoint, "http://", 7) != 0 &&
        strncmp(c->otlp_endpoint, "https://", 8) != 0)
        return md_fail(err, MD_E_INVALID_PARAM, "otlp_endpoint",
                       "invalid otlp_endpoint: expected http(s)://host[:port]");
    if (c->redis && *c->redis && strncmp(c->redis, "redis://", 8) != 0 && strncmp(c->redis, "unix://", 7) != 0)
        return md_fail(err, MD_E_INVALID_PARAM, "redis",
                       "invalid redis: expected redis://host[:port][/db] or unix:///path[?db=N]");
    if (c->redis_down && strcmp(c->redis_down, "local") != 0 && strcmp(c->redis_down, "refuse") != 0)
        return md_fail(err, MD_E_INVALID_PARAM, "redis_down", "redis_down must be local or refuse, got \"%.32s\"",
                       c->redis_down);
    for (const char *p = c->cors_origins; p && *p;) {
        size_t n = strcspn(p, ",");
        bool ok = (n == 1 && *p == '*') || (n > 7 && strncmp(p, "http://", 7) == 0) ||
                  (n > 8 && strncmp(p, "https://", 8) == 0);
        if (!ok || memchr(p, ' ', n))
            return md_fail(err, MD_E_INVALID_PARAM, "cors_origins",
                           "invalid cors_origins entry \"%.*s\": expected * or http(s)://host[:port]",
                           (int)(n > 80 ? 80 : n), p);
        p += n + (p[n] == ',');
    }
    return MD_OK;
}

int md_config_load(md_config *c, int argc, char **argv, char *const *envp, md_err *err)
{
    int rc = md_config_defaults(c);
    if (rc == MD_OK)
        rc = apply_argv(c, argc, argv, true, err);
    if (rc == MD_OK && !*c->config_file && envp) {
        for (size_t i = 0; envp[i]; i++)
            if (strncmp(envp[i], "MODELD_CONFIG=", 14) == 0)
                rc = set_value(c, find("config", 6), envp[i] + 14, "MODELD_CONFIG", err);
    }
    if (rc == MD_OK && *c->config_file && !c->help)
        rc = load_file(c, c->config_file, err);
    if (rc == MD_OK)
        rc = apply_env(c, envp, err);
    if (rc == MD_OK)
        rc = apply_argv(c, argc, argv, false, err);
    if (rc == MD_OK)
        rc = md_config_validate(c, err);
    return rc;
}

void md_config_help(FILE *f)
{
    fprintf(f, "usage: modeld serve [--setting value | --setting=value]...\n\n"
               "Starts the HTTP server. Every setting can also be given as an environment variable\n"
               "or in an INI file (--config FILE); precedence: flag > environment > file > default.\n"
               "Sizes take K/M/G, durations ms/s/m/h/d (bare numbers are seconds), booleans\n"
               "true/false (a bare boolean flag means true), rates <per second>[:<burst>].\n\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting *s = &settings[i];
        char flag[64], env[64];
        snprintf(flag, sizeof flag, s->t == T_BOOL ? "--%s[=%s]" : "--%s %s", s->name, s->arg);
        for (char *p = flag; *p && *p != ' '; p++)
            *p = *p == '_' ? '-' : *p;
        if (s->flags & NO_FLAG)
            snprintf(flag, sizeof flag, "(no flag)");
        snprintf(env, sizeof env, "MODELD_%s", s->name);
        for (char *p = env; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        fprintf(f, "  %-28s %-28s default: %s\n      %s\n", flag, env, *s->def ? s->def : "(empty)", s->help);
    }
    fprintf(f, "\nINI file keys are the setting names (e.g. \"data_dir = /srv/modeld\").\n");
}
