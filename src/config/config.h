/* config.h - the settings of `modeld serve`: one table, three sources.
 *
 * Precedence, lowest to highest: built-in default < INI file (--config / MODELD_CONFIG) <
 * environment (MODELD_<NAME>) < command-line flag (--<name-with-dashes>). Every setting has
 * all three spellings, derived from its name: data_dir -> --data-dir, MODELD_DATA_DIR, and
 * "data_dir = ..." in the file. `modeld serve --help` prints the table with the defaults.
 *
 * Value syntax: integers; sizes with an optional K/M/G suffix (binary, "25M"); durations with
 * ms/s/m/h ("30s", bare numbers are seconds); booleans true/false/yes/no/on/off/1/0 (a bare
 * boolean flag such as --no-auth means true); rates "<per second>[:<burst>]" ("50:100").
 * INI files: "key = value" lines, '#' or ';' comments, and [section] headers, which only group
 * lines for the reader (keys are global). Invalid input fails naming the setting and where it
 * came from; the caller exits with code 2.
 */
#ifndef MD_CONFIG_H
#define MD_CONFIG_H

#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct md_rate {
    double per_sec;
    uint32_t burst;
} md_rate;

typedef struct md_config {
    char *config_file; /* strings: new, freed by md_config_free */
    char *host;
    long port;
    char *data_dir;
    char *store;     /* "sqlite:[FILE]" or "postgres://..." (store_opts.url) */
    long store_pool; /* PostgreSQL connections (store_opts.pool_size) */
    char *blob_dir;  /* "" = <data_dir>/blobs (store_opts.blob_dir) */
    long io_threads, compute_threads, compute_queue, max_connections;
    size_t body_limit;
    long request_timeout_ms, drain_timeout_ms, idle_timeout_ms;
    long ws_max, ws_ping_ms; /* WebSockets (issue 10 section 2) */
    char *cors_origins;
    char *log_level;
    bool access_log;
    bool no_auth;
    bool metrics_public;
    char *jwt_secret;
    long jwt_ttl_ms;
    long refresh_ttl_ms; /* refresh tokens (issue 13) */
    md_rate rate_read, rate_write, rate_admin, rate_anon;
    long upload_ttl_ms, sweep_interval_ms;
    size_t store_min_free; /* bytes; below it /api/ready reports the store unwritable */
    /* conversion API (issue 4) */
    size_t upload_max_bytes;
    long result_ttl_ms;
    long convert_cache_entries, convert_cache_ttl_ms;
    long convert_max_pixels, convert_pixels_in_flight; /* admission by cost (pl_budget) */
    char *web_dir; /* "" = search next to the binary and in the source tree */
    char *docs_dir; /* swagger-ui-dist for /docs; "" = build/npm next to the binary or source tree */
    /* model registry (issue 8) */
    char *models_dir; /* "" = models/ next to the binary or in the source tree */
    long canary_promote_after, canary_min_requests;
    double canary_error_margin, canary_p99_ratio;
    double predict_log_sample; /* share of predictions logged for history and drift */
    double predict_bulk_log_sample; /* the same for the rows of predict-bulk jobs */
    long predict_log_flush_ms;      /* write-behind prediction log (store_predlog_opts.flush_ms) */
    /* durable jobs (issue 10) */
    char *workers; /* "auto" or 0..256: md_config_workers */
    long metrics_port; /* `modeld worker`: its /metrics listener; 0 = off */
    long job_lease_ms, job_attempts, job_queue_max, job_input_ttl_ms, job_result_ttl_ms;
    /* bulk-job callbacks (issue 11 §4) */
    char *callback_allow_hosts; /* "host[:port],..."; "" = callbacks refused */
    char *callback_secret;      /* HMAC-SHA256 key of X-Modeld-Signature */
    long callback_attempts, callback_timeout_ms;
    long enhance_max_running;
    size_t enhance_memory_budget, enhance_max_bytes;
    size_t bulk_max_bytes; /* POST /api/{model}/bulk upload limit */
    md_rate enhance_rate;
    /* scale-out: Redis (issue 12) */
    char *redis;            /* "redis://host[:port][/db]" | "unix:///path[?db=N]"; "" = none */
    char *redis_down;       /* "local" | "refuse": rate limits while Redis is down */
    long redis_cache_ttl_ms; /* lifetime of L2 conversion answers */
    long redis_timeout_ms;   /* connect and command timeout */
    /* tracing (issue 13): OTLP/HTTP JSON export; "" = off */
    char *otlp_endpoint;
    long otlp_queue, otlp_batch, otlp_interval_ms, otlp_timeout_ms;
    bool test_routes;
    bool help; /* --help was given: print md_config_help and exit 0 */
} md_config;

/* Fill c with the built-in defaults (allocates the default strings). */
int md_config_defaults(md_config *c);
/* Free the strings of c (and zero it). */
void md_config_free(md_config *c);

/* Defaults, then the INI file, then env (a NULL-terminated "NAME=value" array, e.g. environ),
 * then argv (argv[0] is the command name and is skipped). On error c holds a partial result
 * that must still be freed. err->field names the setting. */
int md_config_load(md_config *c, int argc, char **argv, char *const *envp, md_err *err);

/* Apply INI text (len bytes, need not be NUL-terminated). origin names the file in messages. */
int md_config_parse_ini(md_config *c, const char *text, size_t len, const char *origin, md_err *err);
/* Set one setting by name ("port") from a string. origin ("--port", "MODELD_PORT") is for messages. */
int md_config_set(md_config *c, const char *name, const char *value, const char *origin, md_err *err);
/* Cross-setting checks run after all sources are applied (e.g. CORS entries are origins). */
int md_config_validate(const md_config *c, md_err *err);

/* The workers setting: -1 for "auto", 0..256, or -2 when invalid (md_config_validate refuses
 * it, naming "workers"). */
int md_config_workers(const md_config *c);

/* Print every setting: flag, env name, default, meaning. */
void md_config_help(FILE *f);

#endif
