/* startup.c - the start of `modeld serve` and `modeld worker` (see startup.h). */
#include "cli/startup.h"

#include "base/log.h"
#include "base/trace.h"

#include <pthread.h>
#include <stdio.h>

extern char **environ;

int cli_startup(const char *cmd, int argc, char **argv, const char *usage, md_config *cfg,
                sigset_t *stop)
{
    md_err e;
    md_err_clear(&e);
    if (md_config_load(cfg, argc, argv, environ, &e) != MD_OK) {
        fprintf(stderr, "modeld %s: %s\n", cmd, md_err_message(&e));
        return 2;
    }
    if (cfg->help) {
        if (usage)
            fputs(usage, stdout);
        md_config_help(stdout);
        return 0;
    }
    md_log_set_level((md_log_level)md_log_level_parse(cfg->log_level));
    /* Block the stop signals before any thread exists, so only sigtimedwait() sees them. */
    sigemptyset(stop);
    sigaddset(stop, SIGTERM);
    sigaddset(stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (cfg->otlp_endpoint && *cfg->otlp_endpoint) {
        tr_export_opts o = {.endpoint = cfg->otlp_endpoint, .service = "modeld",
                            .queue_max = (size_t)cfg->otlp_queue, .batch_max = (size_t)cfg->otlp_batch,
                            .interval_ms = (unsigned)cfg->otlp_interval_ms,
                            .timeout_ms = (unsigned)cfg->otlp_timeout_ms};
        if (tr_exporter_start(&o, &e) != MD_OK) {
            fprintf(stderr, "modeld %s: %s\n", cmd, md_err_message(&e));
            return 2;
        }
    }
    return -1;
}
