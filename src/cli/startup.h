/* startup.h - the start shared by the long-running sub-commands (`modeld serve`, `modeld
 * worker`): settings from flags, MODELD_* and the INI file, --help, the log level, and the stop
 * signals blocked before any thread exists so that only the main thread's sigtimedwait() takes
 * them. */
#ifndef MD_CLI_STARTUP_H
#define MD_CLI_STARTUP_H

#include "config/config.h"

#include <signal.h>

/* Load *cfg for sub-command cmd ("serve"). Returns -1 when the command should run (cfg loaded,
 * SIGTERM/SIGINT blocked in *stop, SIGPIPE ignored), else the exit code to return at once: 0
 * after --help (usage, when not NULL, is printed before the settings), 2 for a bad setting
 * (printed). *cfg must be freed with md_config_free either way. */
/* Starts the OTLP trace exporter when otlp_endpoint is set; the command calls
 * tr_exporter_stop() (base/trace.h) before it returns. */
int cli_startup(const char *cmd, int argc, char **argv, const char *usage, md_config *cfg,
                sigset_t *stop);

#endif
