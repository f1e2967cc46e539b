/* startup.h - the start shared by the long-running sub-commands (`modeld serve`, `modeld
 * worker`): settings from flags, MODELD_* and the INI file, --help, the log level, and the stop
 * signals blocked before any thread exists so that only the main thread's sigtimedwait() takes
 * them. */
#ifndef MD_CLI_STARTUP_H
#define MD_CLI_STARTUP_H

#include "config/config.h"
#include "store/store.h"

#include <signal.h>

/* Load *cfg for sub-command cmd ("serve"). Returns -1 when the command should run (cfg loaded,
 * SIGTERM/SIGINT blocked in *stop, SIGPIPE ignored), else the exit code to return at once: 0
 * after --help (usage, when not NULL, is printed before the settings), 2 for a bad setting
 * (printed). *cfg must be freed with md_config_free either way. */
/* Starts the OTLP trace exporter when otlp_endpoint is set; the command calls
 * tr_exporter_stop() (base/trace.h) before it returns. */
int cli_startup(const char *cmd, int argc, char **argv, const char *usage, md_config *cfg,
                sigset_t *stop);

/* The keyring of encryption at rest from cfg's encryption_* settings: the write key
 * (encryption_key_file or encryption_key), then the old keys (encryption_old_key_file items,
 * encryption_old_keys items). *out is new (store_keyring_free after the last store_unref), NULL
 * when encryption is off. MD_E_INVALID_PARAM naming the setting (and the file) for a key that
 * cannot be read or is not 32 bytes (raw in a file, 64 hex digits or base64). */
int cli_keyring(const md_config *cfg, store_keyring **out, md_err *err);

#endif
