/* worker.c - `modeld worker --data-dir DIR`: a process that only runs jobs. It opens the same
 * data dir as a `modeld serve` (the store is safe to share between processes), starts the same
 * worker threads with the same settings (flags, MODELD_* variables, the INI file: the table of
 * `modeld serve --help`; HTTP settings are accepted and ignored) and runs until SIGTERM/SIGINT,
 * when its running jobs are put back in the queue for another process. With --metrics-port it
 * also listens there (at --host) for Prometheus and the orchestrator's probes: GET /metrics,
 * /api/health and /api/ready, served by the same http module as `modeld serve`.
 *
 * A worker killed with SIGKILL loses nothing: its leases run out (job_lease) and the jobs run
 * again elsewhere; a server or worker on the same host notices the dead pid sooner.
 * Exit codes: 0 after a clean stop, 1 when it cannot run, 2 for a bad configuration. */
#include "cli/cli.h"
#include "cli/jobs_setup.h"
#include "cli/startup.h"
#include "base/trace.h"

#include "api/models_api.h"
#include "api/platform.h"
#include "base/log.h"
#include "config/config.h"
#include "http/http.h"
#include "models/models.h"
#include "store/store.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The networks the jobs need: the shipped models/ (models_dir, or found as serve finds it) and
 * the data dir's models/, loaded when a job first needs one. */
static int open_registry(const md_config *cfg, store *st, cli_cluster *cl, mdl_registry **out, md_err *e)
{
    char shipped[PATH_MAX];
    const char *dir = shipped;
    if (api_models_find_dir(cfg->models_dir, shipped, sizeof shipped, e) != MD_OK) {
        if (*cfg->models_dir)
            return e->code;
        md_err_clear(e);
        dir = NULL;
    }
    mdl_registry_opts o = {
        .shipped_dir = dir, .data_dir = cfg->data_dir, .store = st, .load_all = false,
        .on_change = cl ? cli_cluster_model_changed : NULL, .on_change_ctx = cl};
    return mdl_registry_open(&o, out, e);
}

/* Everything a worker process holds, closed in reverse order of opening (close_all). */
typedef struct worker_ctx {
    store *st;
    jobs *j;
    cli_cluster *cl;
    api_enhance_kind kind;
    api_bulk_kind bulk;
    api_platform *plat; /* the probe routes of the metrics listener; NULL when off */
    http_server *srv;   /* --metrics-port: GET /metrics, /api/health, /api/ready; NULL when off */
} worker_ctx;

/* The metrics listener: the http module's server with only the probe routes (no API, no
 * credentials: bind it to an address only Prometheus and the orchestrator reach). Its
 * /metrics has the job counters of this process, its models, Redis and the store, plus the
 * process and HTTP families every modeld listener has. */
static int start_metrics(const md_config *cfg, worker_ctx *w, md_err *e)
{
    char spool[4096];
    snprintf(spool, sizeof spool, "%s/spool", cfg->data_dir);
    http_opts ho = {.host = cfg->host, .port = (uint16_t)cfg->metrics_port, .io_threads = 2,
                    .compute_threads = 1, .compute_queue = 16, .body_limit = 4096,
                    .max_connections = 64, .spool_dir = spool};
    api_platform_opts po = {.store = w->st, .metrics_public = true};
    int rc = api_platform_new(&po, &w->plat, e);
    if (rc == MD_OK)
        rc = http_server_new(&ho, &w->srv, e);
    if (rc == MD_OK)
        rc = api_platform_register_probes(w->plat, w->srv, e);
    if (rc == MD_OK &&
        (http_metrics_collector(w->srv, job_metrics, w->j) != MD_OK ||
         http_metrics_collector(w->srv, mdl_metrics, w->kind.models) != MD_OK ||
         http_metrics_collector(w->srv, cli_cluster_metrics, w->cl) != MD_OK ||
         api_platform_ready_info(w->plat, "redis", cli_cluster_state, w->cl) != MD_OK))
        rc = md_fail(e, MD_E_INTERNAL, NULL, "cannot register the worker's metrics");
    if (rc == MD_OK)
        rc = http_server_start(w->srv, e);
    if (rc != MD_OK)
        return rc;
    char port[16];
    snprintf(port, sizeof port, "%u", (unsigned)http_server_port(w->srv));
    md_log_fields_raw(MD_LOG_INFO, "worker: metrics listening",
                      (const char *const[]){"host", cfg->host, "#port", port, NULL});
    return MD_OK;
}

static int open_all(const md_config *cfg, worker_ctx *w, md_err *e)
{
    store_opts so = {.data_dir = cfg->data_dir, .url = cfg->store, .blob_dir = cfg->blob_dir,
                     .pool_size = (int)cfg->store_pool, .upload_ttl_ms = cfg->upload_ttl_ms};
    int rc = store_open(&so, &w->st, e);
    if (rc == MD_OK)
        rc = cli_cluster_open(cfg, &w->cl, e);
    if (rc == MD_OK)
        rc = open_registry(cfg, w->st, w->cl, &w->kind.models, e);
    w->bulk = (api_bulk_kind){.models = w->kind.models, .st = w->st,
                              .log_sample = cfg->predict_bulk_log_sample};
    if (rc == MD_OK)
        rc = cli_jobs_open(cfg, w->st, &w->kind, &w->bulk, -1, w->cl, &w->j, e);
    if (rc == MD_OK)
        rc = job_start(w->j, e);
    /* a worker follows model changes (the networks it has loaded) and serves no WebSocket */
    if (rc == MD_OK)
        rc = cli_cluster_follow(w->cl, w->kind.models, NULL, e);
    if (rc == MD_OK && cfg->metrics_port > 0)
        rc = start_metrics(cfg, w, e);
    return rc;
}

static void close_all(worker_ctx *w)
{
    cli_cluster_stop(w->cl); /* no event reaches the registry or the queue after this */
    http_server_free(w->srv); /* before the queue and registry its collectors read */
    job_close(w->j);
    api_platform_free(w->plat);
    mdl_registry_close(w->kind.models);
    cli_cluster_close(w->cl);
    store_unref(w->st);
}

static int run_worker(const md_config *cfg, const sigset_t *set)
{
    md_err e;
    md_err_clear(&e);
    worker_ctx w = {0};
    int rc = open_all(cfg, &w, &e);
    if (rc != MD_OK) {
        fprintf(stderr, "modeld worker: %s\n", md_err_message(&e));
        close_all(&w);
        return rc == MD_E_INVALID_PARAM ? 2 : 1;
    }
    md_log(MD_LOG_INFO, "worker: running jobs from %s (%s, pid %ld)", cfg->data_dir,
           store_backend(w.st), (long)getpid());
    struct timespec ts = {cfg->sweep_interval_ms / 1000, (cfg->sweep_interval_ms % 1000) * 1000000};
    for (;;) {
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig < 0 && errno == EAGAIN && store_sweep(w.st, NULL, &e) != MD_OK)
            md_log(MD_LOG_WARN, "worker: retention sweep failed: %s", md_err_message(&e));
    }
    md_log(MD_LOG_INFO, "worker: stopping; running jobs go back to the queue");
    close_all(&w);
    return 0;
}

int cmd_worker(int argc, char **argv)
{
    md_config cfg;
    sigset_t set;
    int rc = cli_startup("worker", argc, argv,
                         "usage: modeld worker --data-dir DIR [--workers N] [--metrics-port N] "
                         "[job settings]\n"
                         "Runs the jobs queued in DIR (by a `modeld serve` on the same data dir) "
                         "until\nSIGTERM/SIGINT. With --metrics-port N it serves GET /metrics, "
                         "/api/health and\n/api/ready on port N at --host (no credentials: keep "
                         "it internal).\nSettings as for `modeld serve`:\n\n",
                         &cfg, &set);
    if (rc < 0)
        rc = run_worker(&cfg, &set);
    tr_exporter_stop();
    md_config_free(&cfg);
    return rc;
}
