/* worker.c - `modeld worker --data-dir DIR`: a process that only runs jobs. It opens the same
 * data dir as a `modeld serve` (the store is safe to share between processes), starts the same
 * worker threads with the same settings (flags, MODELD_* variables, the INI file: the table of
 * `modeld serve --help`; HTTP settings are accepted and ignored) and runs until SIGTERM/SIGINT,
 * when its running jobs are put back in the queue for another process.
 *
 * A worker killed with SIGKILL loses nothing: its leases run out (job_lease) and the jobs run
 * again elsewhere; a server or worker on the same host notices the dead pid sooner.
 * Exit codes: 0 after a clean stop, 1 when it cannot run, 2 for a bad configuration. */
#include "cli/cli.h"
#include "cli/jobs_setup.h"
#include "cli/startup.h"
#include "base/trace.h"

#include "api/models_api.h"
#include "base/log.h"
#include "config/config.h"
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

static int run_worker(const md_config *cfg, const sigset_t *set)
{
    md_err e;
    md_err_clear(&e);
    store *st = NULL;
    jobs *j = NULL;
    cli_cluster *cl = NULL;
    api_enhance_kind kind = {0};
    api_bulk_kind bulk = {0};
    store_keyring *kr = NULL; /* encryption at rest: the same keys as the serve nodes */
    int rc = cli_keyring(cfg, &kr, &e);
    store_opts so = {.data_dir = cfg->data_dir, .url = cfg->store, .blob_dir = cfg->blob_dir,
                     .pool_size = (int)cfg->store_pool, .upload_ttl_ms = cfg->upload_ttl_ms,
                     .keyring = kr};
    if (rc == MD_OK)
        rc = store_open(&so, &st, &e);
    if (rc == MD_OK)
        rc = cli_cluster_open(cfg, &cl, &e);
    if (rc == MD_OK)
        rc = open_registry(cfg, st, cl, &kind.models, &e);
    bulk = (api_bulk_kind){.models = kind.models, .st = st, .log_sample = cfg->predict_bulk_log_sample};
    if (rc == MD_OK)
        rc = cli_jobs_open(cfg, st, &kind, &bulk, -1, cl, &j, &e);
    if (rc == MD_OK)
        rc = job_start(j, &e);
    /* a worker follows model changes (the networks it has loaded) and serves no WebSocket */
    if (rc == MD_OK)
        rc = cli_cluster_follow(cl, kind.models, NULL, &e);
    if (rc != MD_OK) {
        fprintf(stderr, "modeld worker: %s\n", md_err_message(&e));
        cli_cluster_stop(cl);
        job_close(j);
        mdl_registry_close(kind.models);
        cli_cluster_close(cl);
        store_unref(st);
        store_keyring_free(kr);
        return rc == MD_E_INVALID_PARAM ? 2 : 1;
    }
    md_log(MD_LOG_INFO, "worker: running jobs from %s (%s, pid %ld)", cfg->data_dir,
           store_backend(st), (long)getpid());
    struct timespec ts = {cfg->sweep_interval_ms / 1000, (cfg->sweep_interval_ms % 1000) * 1000000};
    for (;;) {
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig < 0 && errno == EAGAIN && store_sweep(st, NULL, &e) != MD_OK)
            md_log(MD_LOG_WARN, "worker: retention sweep failed: %s", md_err_message(&e));
    }
    md_log(MD_LOG_INFO, "worker: stopping; running jobs go back to the queue");
    cli_cluster_stop(cl); /* no event reaches the registry or the queue after this */
    job_close(j);
    mdl_registry_close(kind.models);
    cli_cluster_close(cl);
    store_unref(st);
    store_keyring_free(kr);
    return 0;
}

int cmd_worker(int argc, char **argv)
{
    md_config cfg;
    sigset_t set;
    int rc = cli_startup("worker", argc, argv,
                         "usage: modeld worker --data-dir DIR [--workers N] [job settings]\n"
                         "Runs the jobs queued in DIR (by a `modeld serve` on the same data dir) "
                         "until\nSIGTERM/SIGINT. Settings as for `modeld serve`:\n\n",
                         &cfg, &set);
    if (rc < 0)
        rc = run_worker(&cfg, &set);
    tr_exporter_stop();
    md_config_free(&cfg);
    return rc;
}
