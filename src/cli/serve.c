/* serve.c - `modeld serve`: configuration, start-up, the first admin key, the retention
 * sweeper, and the graceful stop on SIGTERM/SIGINT. Also `modeld routes`, which runs the same
 * start-up up to the route table and prints it (or the OpenAPI document) instead of listening.
 *
 * Start-up order is the dependency order (store -> auth -> limiter -> model registry -> platform
 * -> HTTP) and shutdown is its reverse, so nothing is closed while something above it may still
 * call it:
 * the server drains and stops first, then the audit queue and the prediction log's
 * write-behind queue are flushed, then the database is closed (checkpointing its WAL).
 * Signals are blocked in every thread and taken by the main thread with sigtimedwait(), whose
 * timeout is the sweeper's period.
 * Exit codes: 0 after a clean stop, 1 when the server cannot run, 2 for a bad configuration.
 */
#include "cli/cli.h"
#include "cli/cluster.h"
#include "cli/jobs_setup.h"
#include "cli/startup.h"
#include "base/trace.h"

#include "api/convert.h"
#include "api/docs.h"
#include "api/bulk.h"
#include "api/datasets.h"
#include "api/retrain.h"
#include "api/enhance.h"
#include "api/admin_jobs.h"
#include "api/jobs_api.h"
#include "api/job_status.h"
#include "api/models_api.h"
#include "api/predict_api.h"
#include "api/oip.h"
#include "api/openapi.h"
#include "api/platform.h"
#include "auth/auth.h"
#include "auth/ratelimit.h"
#include "base/log.h"
#include "config/config.h"
#include "http/http.h"
#include "models/models.h"
#include "store/store.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern char **environ;

typedef struct serve_ctx {
    const md_config *cfg;
    store *st;
    auth *au;
    rl_limiter *rl;
    cli_cluster *cl;   /* Redis: shared limits, L2 cache, cluster events; NULL = none (issue 12) */
    api_platform *plat;
    api_convert *conv; /* upload/convert/results and the web page (issue 4) */
    api_docs *docs;    /* GET /docs */
    api_openapi *oa;   /* GET /openapi.json */
    mdl_registry *reg; /* the model registry (issue 8) */
    jobs *jq;          /* the durable job queue and its worker threads (issue 10) */
    api_jobs *japi;    /* /api/v1 job, batch and service routes */
    api_enhance *enh;  /* /api/v1/enhance..., config, warmup */
    api_enhance_kind enh_kind; /* the "enhance" job kind's context (models, japi) */
    api_job_status *jst; /* GET /api/v1/jobs/{id}/status, the job's WebSocket (issue 10) */
    api_bulk_kind bulk_kind; /* the "predict-bulk" job kind's context (models, store) */
    api_bulk *bulk;          /* POST /api/{model}/bulk */
    api_datasets *ds;        /* /api/admin/datasets: stored datasets (issue 11 §4) */
    api_retrain *retrain;    /* POST /api/admin/retrain (issue 11 §4) */
    api_predict *pred;   /* /api/{model}... business predictions (issue 11) */
    http_server *srv;
    int routes_only;   /* `modeld routes`: 1 = print the table, 2 = print the OpenAPI document */
} serve_ctx;

static int fail(const char *what, const md_err *e, int exit_code)
{
    md_log_fields(MD_LOG_ERROR, what, (const char *const[]){"error", md_err_message(e), "field", e->field, NULL});
    return exit_code;
}

/* The first start of a fresh data dir creates an admin key and shows it once, on stdout. */
static int bootstrap_key(serve_ctx *c)
{
    auth_new_key k;
    int created = 0;
    md_err e;
    if (auth_key_bootstrap(c->st, &k, &created, &e) != MD_OK)
        return fail("cannot create the first admin key", &e, 1);
    if (!created)
        return 0;
    printf("\n  First start: created an admin API key. It is shown only this once, store it now:\n\n"
           "      %s\n\n"
           "  Use it as \"Authorization: Bearer <key>\" or \"X-API-Key: <key>\";\n"
           "  create more with: modeld keys create --role read|write|admin --name NAME\n\n",
           k.key);
    fflush(stdout);
    auth_new_key_wipe(&k);
    md_log(MD_LOG_INFO, "created the first admin key %s (printed on stdout)", k.row.id);
    return 0;
}

/* The shipped models/ (models_dir, else next to the binary or in the source tree) and the data
 * dir's models/; every model is loaded, validated and activated now, a failing one is FAILED
 * (readiness tells whether a required one is missing) without stopping the server. */
static int open_registry(serve_ctx *c)
{
    const md_config *cfg = c->cfg;
    char shipped[PATH_MAX];
    md_err e;
    md_err_clear(&e);
    const char *dir = shipped;
    if (api_models_find_dir(cfg->models_dir, shipped, sizeof shipped, &e) != MD_OK) {
        if (*cfg->models_dir)
            return fail("cannot use the models_dir", &e, 2);
        md_log(MD_LOG_INFO, "no shipped models/ directory found: serving only models installed at run time");
        dir = NULL;
    }
    mdl_registry_opts o = {.shipped_dir = dir, .data_dir = cfg->data_dir, .store = c->st, .load_all = true,
                           .canary = {.promote_after = (uint64_t)cfg->canary_promote_after,
                                      .min_requests = (uint64_t)cfg->canary_min_requests,
                                      .max_error_margin = cfg->canary_error_margin,
                                      .max_p99_ratio = cfg->canary_p99_ratio},
                           .on_change = c->cl ? cli_cluster_model_changed : NULL, .on_change_ctx = c->cl};
    if (mdl_registry_open(&o, &c->reg, &e) != MD_OK)
        return fail("cannot open the model registry", &e, 1);
    return 0;
}

static int open_backends(serve_ctx *c)
{
    const md_config *cfg = c->cfg;
    md_err e;
    md_err_clear(&e);
    store_opts so = {.data_dir = cfg->data_dir, .url = cfg->store, .blob_dir = cfg->blob_dir,
                     .pool_size = (int)cfg->store_pool, .upload_ttl_ms = cfg->upload_ttl_ms};
    if (store_open(&so, &c->st, &e) != MD_OK)
        return fail("cannot open the data dir", &e, 1);
    store_predlog_opts plo = {.flush_ms = cfg->predict_log_flush_ms};
    if (!c->routes_only && store_predlog_start(c->st, &plo, &e) != MD_OK)
        return fail("cannot start the prediction log writer", &e, 1);
    if (cfg->no_auth) {
        md_log(MD_LOG_WARN, "authentication is OFF (--no-auth): every caller is admin. For local development only");
    } else {
        auth_opts ao = {.store = c->st, .jwt_secret = *cfg->jwt_secret ? cfg->jwt_secret : NULL,
                        .jwt_ttl_s = cfg->jwt_ttl_ms / 1000, .refresh_ttl_s = cfg->refresh_ttl_ms / 1000};
        int rc = auth_open(&ao, &c->au, &e);
        if (rc != MD_OK)
            return fail("cannot start authentication", &e, rc == MD_E_INVALID_PARAM ? 2 : 1);
        rc = c->routes_only ? 0 : bootstrap_key(c);
        if (rc != 0)
            return rc;
    }
    /* `modeld routes` runs nothing that Redis serves */
    if (!c->routes_only && cli_cluster_open(cfg, &c->cl, &e) != MD_OK)
        return fail("cannot use the redis setting", &e, 2);
    rl_opts ro = {.shared = cli_cluster_rate(c->cl), .when_down = cli_cluster_down_policy(cfg)};
    if (rl_new(&ro, &c->rl) != MD_OK)
        return fail("cannot create the rate limiter", &(md_err){.code = MD_E_NOMEM}, 1);
    int rc = open_registry(c);
    /* `modeld routes` runs no jobs: a queue without workers is enough for the route table. */
    c->enh_kind.models = c->reg;
    c->bulk_kind = (api_bulk_kind){.models = c->reg, .st = c->st,
                                   .log_sample = c->cfg->predict_bulk_log_sample, .serving = true};
    if (rc == 0 && cli_jobs_open(cfg, c->st, &c->enh_kind, &c->bulk_kind, c->routes_only ? 0 : -1, c->cl,
                                 &c->jq, &e) != MD_OK)
        return fail("cannot start the job queue", &e, 1);
    return rc;
}

/* OIP, management and prediction routes, the models' metrics and the "models" readiness
 * check. */
static int register_models(serve_ctx *c, md_err *e)
{
    int rc = api_oip_register(c->srv, c->reg, e);
    if (rc == MD_OK)
        rc = api_models_register(c->srv, c->reg, e);
    api_predict_opts po = {.reg = c->reg, .st = c->st, .log_sample = c->cfg->predict_log_sample};
    if (rc == MD_OK)
        rc = api_predict_register(c->srv, &po, &c->pred, e);
    api_bulk_opts bo = {.jq = c->jq, .reg = c->reg, .max_bytes = c->cfg->bulk_max_bytes};
    if (rc == MD_OK)
        rc = api_bulk_register(c->srv, &bo, &c->bulk, e);
    api_datasets_opts dso = {.st = c->st, .max_bytes = c->cfg->bulk_max_bytes};
    if (rc == MD_OK)
        rc = api_datasets_register(c->srv, &dso, &c->ds, e);
    api_retrain_opts ro = {.jq = c->jq, .reg = c->reg, .st = c->st};
    if (rc == MD_OK)
        rc = api_retrain_register(c->srv, &ro, &c->retrain, e);
    if (rc == MD_OK && http_metrics_collector(c->srv, mdl_metrics, c->reg) != MD_OK)
        rc = md_fail(e, MD_E_INTERNAL, NULL, "cannot register the model metrics");
    if (rc == MD_OK && api_platform_ready_check(c->plat, "models", api_models_ready, c->reg) != MD_OK)
        rc = md_fail(e, MD_E_INTERNAL, NULL, "cannot add the models readiness check");
    /* Redis is reported, never a reason to be unready: a node without it serves (degraded). */
    if (rc == MD_OK && (api_platform_ready_info(c->plat, "redis", cli_cluster_state, c->cl) != MD_OK ||
                        http_metrics_collector(c->srv, cli_cluster_metrics, c->cl) != MD_OK))
        rc = md_fail(e, MD_E_INTERNAL, NULL, "cannot add the redis readiness report");
    return rc;
}

/* The enhancement routes, and the job workers, which can start once the kind knows the job
 * routes' memory counter. */
static int register_enhance(serve_ctx *c, md_err *e)
{
    const md_config *cfg = c->cfg;
    api_enhance_opts o = {.jq = c->jq, .japi = c->japi, .models = c->reg,
                          .max_file_bytes = cfg->enhance_max_bytes,
                          .memory_budget = (uint64_t)cfg->enhance_memory_budget,
                          .rate = {.per_sec = cfg->enhance_rate.per_sec, .burst = cfg->enhance_rate.burst},
                          .rate_shared = cli_cluster_rate(c->cl),
                          .max_running = cfg->enhance_max_running > 0 ? (int)cfg->enhance_max_running
                                                                      : job_workers(c->jq),
                          .queue_max = (size_t)cfg->job_queue_max};
    int rc = api_enhance_register(c->srv, &o, &c->enh, e);
    c->enh_kind.japi = c->japi;
    if (rc == MD_OK && !c->routes_only)
        rc = job_start(c->jq, e);
    return rc;
}

static void print_route(void *ctx, const char *method, const char *pattern, http_role role, int flags,
                        const http_doc *doc)
{
    (void)ctx;
    (void)flags;
    printf("%s\t%s\t%s\t%s\n", method, pattern, http_role_name(role),
           doc && doc->summary ? doc->summary : "-");
}

/* `modeld routes`: the table as "METHOD<TAB>PATTERN<TAB>ROLE<TAB>SUMMARY" lines, or with
 * --openapi the document GET /openapi.json would serve. */
static int print_routes(serve_ctx *c)
{
    if (c->routes_only == 1) {
        http_routes_visit(c->srv, print_route, NULL);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    md_err e;
    md_err_clear(&e);
    json_t *doc = NULL;
    int rc = api_openapi_document(c->srv, API_OPENAPI_STRICT, &doc, &e);
    if (rc != MD_OK)
        return fail("cannot build the OpenAPI document", &e, 1);
    rc = json_dumpf(doc, stdout, JSON_INDENT(2)) == 0 && fputc('\n', stdout) != EOF ? 0 : 1;
    json_decref(doc);
    return fflush(stdout) == 0 ? rc : 1;
}

static int start_http(serve_ctx *c)
{
    const md_config *cfg = c->cfg;
    md_err e;
    md_err_clear(&e);
    api_platform_opts po = {.store = c->st, .auth = c->au, .limiter = c->rl, .rate_read = cfg->rate_read,
                            .rate_write = cfg->rate_write, .rate_admin = cfg->rate_admin,
                            .rate_anon = cfg->rate_anon, .metrics_public = cfg->metrics_public,
                            .test_routes = cfg->test_routes, .store_min_free = cfg->store_min_free};
    if (api_platform_new(&po, &c->plat, &e) != MD_OK)
        return fail("cannot start the platform", &e, 1);
    /* Spooled request bodies live beside the blobs (one file system): a bulk upload is renamed
     * into the blob store, never copied. */
    char spool[4096];
    snprintf(spool, sizeof spool, "%s/spool", cfg->data_dir);
    http_opts ho = {.host = cfg->host, .spool_dir = spool, .port = (uint16_t)cfg->port, .io_threads = (unsigned)cfg->io_threads,
                    .compute_threads = (unsigned)cfg->compute_threads, .compute_queue = (unsigned)cfg->compute_queue,
                    .body_limit = cfg->body_limit, .request_timeout_ms = (unsigned)cfg->request_timeout_ms,
                    .conn_timeout_s = (unsigned)(cfg->idle_timeout_ms / 1000),
                    .max_connections = (unsigned)cfg->max_connections, .cors_origins = cfg->cors_origins,
                    .access_log = cfg->access_log, .ws_max = (unsigned)cfg->ws_max,
                    .ws_ping_ms = (unsigned)cfg->ws_ping_ms};
    api_platform_hooks(c->plat, &ho.hooks);
    api_convert_opts co = api_convert_opts_default();
    co.upload_max_bytes = cfg->upload_max_bytes;
    co.result_ttl_ms = cfg->result_ttl_ms;
    co.cache_entries = (size_t)cfg->convert_cache_entries;
    co.cache_ttl_ms = cfg->convert_cache_ttl_ms;
    co.cache_l2 = cli_cluster_l2(c->cl);
    co.cache_l2_ttl_ms = cfg->redis_cache_ttl_ms;
    co.web_dir = cfg->web_dir;
    co.max_pixels = (uint64_t)cfg->convert_max_pixels;
    co.pixels_in_flight = (uint64_t)cfg->convert_pixels_in_flight;
    if (http_server_new(&ho, &c->srv, &e) != MD_OK || api_platform_register(c->plat, c->srv, &e) != MD_OK ||
        api_convert_register(c->srv, c->st, &co, &c->conv, &e) != MD_OK || register_models(c, &e) != MD_OK ||
        api_convert_ai_register(c->srv, c->conv, c->reg, &e) != MD_OK ||
        api_jobs_register(c->srv, c->jq, &c->japi, &e) != MD_OK || register_enhance(c, &e) != MD_OK ||
        api_admin_jobs_register(c->srv, c->jq, &e) != MD_OK ||
        http_metrics_collector(c->srv, job_metrics, c->jq) != MD_OK ||
        http_metrics_collector(c->srv, store_predlog_metrics, c->st) != MD_OK ||
        (cfg->test_routes && api_jobs_test_register(c->srv, c->jq, &e) != MD_OK) ||
        /* WebSocket messages are the job exactly as GET /api/v1/jobs/{id} renders it. */
        api_job_status_register(c->srv, c->jq, &c->jst, &e) != MD_OK ||
        api_docs_register(c->srv, cfg->docs_dir, &c->docs, &e) != MD_OK ||
        api_openapi_register(c->srv, &c->oa, &e) != MD_OK)
        return fail("cannot set up the HTTP server", &e, 1);
    /* After the last route: the document covers every route the server will have. */
    if (c->routes_only)
        return print_routes(c);
    if (api_openapi_prepare(c->oa, &e) != MD_OK)
        return fail("cannot build the OpenAPI document", &e, 1);
    if (http_server_start(c->srv, &e) != MD_OK)
        return fail("cannot start the HTTP server", &e, e.code == MD_E_INVALID_PARAM ? 2 : 1);
    if (cli_cluster_follow(c->cl, c->reg, c->jq, &e) != MD_OK)
        return fail("cannot follow the cluster events", &e, 1);
    char port[16];
    snprintf(port, sizeof port, "%u", (unsigned)http_server_port(c->srv));
    md_log_fields_raw(MD_LOG_INFO, "listening",
                      (const char *const[]){"host", cfg->host, "#port", port, "data_dir", cfg->data_dir, "version",
                                            MODELD_VERSION, "auth", cfg->no_auth ? "off" : "on", NULL});
    /* The one line a person at the terminal needs; the JSON log above is for machines. */
    int v6 = strchr(cfg->host, ':') != NULL;
    printf("  modeld %s is up: open http://%s%s%s:%s/ (web page and API; Ctrl-C stops it)\n"
           "  API reference: http://%s%s%s:%s/docs\n",
           MODELD_VERSION, v6 ? "[" : "", cfg->host, v6 ? "]" : "", port, v6 ? "[" : "", cfg->host,
           v6 ? "]" : "", port);
    fflush(stdout);
    return 0;
}

static void sweep(serve_ctx *c)
{
    store_sweep_stats st = {0};
    md_err e;
    if (store_sweep(c->st, &st, &e) != MD_OK) {
        md_log(MD_LOG_WARN, "retention sweep failed: %s", md_err_message(&e));
        return;
    }
    if (st.rows_deleted || st.blobs_deleted || st.tmp_deleted)
        md_log(MD_LOG_INFO, "retention sweep: %zu rows, %zu blobs, %zu temporary files deleted", st.rows_deleted,
               st.blobs_deleted, st.tmp_deleted);
}

/* Wait for SIGTERM/SIGINT, sweeping expired uploads every sweep_interval meanwhile. */
static int wait_for_signal(serve_ctx *c, const sigset_t *set)
{
    struct timespec ts = {c->cfg->sweep_interval_ms / 1000, (c->cfg->sweep_interval_ms % 1000) * 1000000};
    for (;;) {
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT)
            return sig;
        if (sig < 0 && errno == EAGAIN)
            sweep(c);
    }
}

static void shutdown_all(serve_ctx *c, int sig)
{
    if (c->srv && sig) {
        md_log(MD_LOG_INFO, "%s: draining in-flight requests (up to %ld ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
               c->cfg->drain_timeout_ms);
        int left = http_server_drain(c->srv, (unsigned)c->cfg->drain_timeout_ms);
        if (left > 0)
            md_log(MD_LOG_WARN, "drain timeout: %d requests were still running", left);
    }
    cli_cluster_stop(c->cl); /* no cluster event reaches the queue or the registry after this */
    http_server_free(c->srv);
    /* Running jobs go back to the queue for the next start or a worker; closed before the
     * routes' state its kinds use and before the registry. */
    job_close(c->jq);
    api_enhance_free(c->enh);
    api_jobs_free(c->japi);
    api_openapi_free(c->oa);
    api_docs_free(c->docs);
    api_job_status_free(c->jst);
    api_convert_free(c->conv);
    api_predict_free(c->pred);
    api_bulk_free(c->bulk);
    api_datasets_free(c->ds);
    api_retrain_free(c->retrain);
    api_platform_free(c->plat);
    /* Every producer of prediction log rows (requests, bulk jobs) has stopped: the rows still
     * queued are written now, so a graceful stop loses none. */
    store_predlog_stop(c->st);
    mdl_registry_close(c->reg); /* after the server: no request holds a model any more */
    rl_free(c->rl);
    cli_cluster_close(c->cl); /* after everything that publishes through it */
    auth_close(c->au);
    store_unref(c->st);
    if (sig)
        md_log(MD_LOG_INFO, "stopped");
}

int cmd_serve(int argc, char **argv)
{
    md_config cfg;
    sigset_t set;
    int rc = cli_startup("serve", argc, argv, NULL, &cfg, &set);
    if (rc >= 0) {
        md_config_free(&cfg);
        return rc;
    }
    serve_ctx c = {.cfg = &cfg};
    rc = open_backends(&c);
    if (rc == 0)
        rc = start_http(&c);
    int sig = rc == 0 ? wait_for_signal(&c, &set) : 0;
    shutdown_all(&c, sig);
    tr_exporter_stop(); /* the last spans, after every request and job ended */
    md_config_free(&cfg);
    return rc;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* `modeld routes [--openapi] [serve settings]`: the settings that change routes (test_routes,
 * metrics_public...) apply; the backends open on a temporary data dir, removed afterwards, so
 * nothing of the real one is read or written. */
int cmd_routes(int argc, char **argv)
{
    int mode = 1, n = 0;
    char **args = calloc((size_t)argc + 1, sizeof *args);
    for (int i = 0; args && i < argc; i++) {
        if (i > 0 && strcmp(argv[i], "--openapi") == 0)
            mode = 2;
        else
            args[n++] = argv[i];
    }
    md_config cfg;
    memset(&cfg, 0, sizeof cfg);
    md_err e;
    md_err_clear(&e);
    const char *tmpdir = getenv("TMPDIR");
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/modeld-routes-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    int made = args && mkdtemp(tmp) != NULL;
    int rc = made ? MD_OK : md_fail(&e, MD_E_IO, "data_dir", "cannot make a temporary directory");
    if (rc == MD_OK)
        rc = md_config_load(&cfg, n, args, environ, &e);
    if (rc == MD_OK)
        rc = md_config_set(&cfg, "data_dir", tmp, "modeld routes", &e);
    free(args);
    if (rc == MD_OK && cfg.help) {
        printf("usage: modeld routes [--openapi] [serve settings]\n"
               "Prints the route table (METHOD, pattern, role, summary; tab-separated) that\n"
               "`modeld serve` with the same settings has, or with --openapi its OpenAPI document.\n");
    } else if (rc == MD_OK) {
        md_log_set_level(MD_LOG_WARN);
        serve_ctx c = {.cfg = &cfg, .routes_only = mode};
        rc = open_backends(&c);
        if (rc == 0)
            rc = start_http(&c);
        shutdown_all(&c, 0);
    } else {
        fprintf(stderr, "modeld routes: %s\n", md_err_message(&e));
        rc = 2;
    }
    if (made)
        nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    md_config_free(&cfg);
    return rc;
}
