/* startup.c - the start of `modeld serve` and `modeld worker` (see startup.h). */
#include "cli/startup.h"

#include "base/log.h"
#include "base/trace.h"
#include "store/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* One key given as text (an env or INI setting): hex or base64 only, since 32 characters of
 * text taken as raw bytes would be a password, not a key. */
static int add_text_key(store_keyring *kr, const char *text, size_t n, const char *setting,
                        md_err *err)
{
    md_err e;
    md_err_clear(&e);
    int rc = n == 32 ? MD_E_INVALID_PARAM : store_keyring_add(kr, text, n, setting, &e);
    if (rc != MD_OK)
        return md_fail(err, MD_E_INVALID_PARAM, setting,
                       "%s: not a 32-byte key (64 hex digits or base64, e.g. `openssl rand "
                       "-base64 32`)",
                       setting);
    return MD_OK;
}

/* Each comma-separated item of list: a file (files) or a key. */
static int add_list(store_keyring *kr, const char *list, bool files, const char *setting,
                    md_err *err)
{
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ",");
        char *item = strndup(p, n);
        md_err e;
        md_err_clear(&e);
        int rc = !item ? md_fail(err, MD_E_NOMEM, NULL, NULL)
                 : files ? store_keyring_add_file(kr, item, &e)
                         : add_text_key(kr, item, n, setting, err);
        if (rc != MD_OK && files)
            md_fail(err, rc, setting, "%s: %s", setting, md_err_message(&e));
        free(item);
        if (rc != MD_OK)
            return rc;
        p += n + (p[n] == ',');
    }
    return MD_OK;
}

int cli_keyring(const md_config *cfg, store_keyring **out, md_err *err)
{
    *out = NULL;
    bool from_file = cfg->encryption_key_file && *cfg->encryption_key_file;
    bool from_text = cfg->encryption_key && *cfg->encryption_key;
    if (!from_file && !from_text)
        return MD_OK; /* md_config_validate refused old keys without a current one */
    store_keyring *kr = NULL;
    int rc = store_keyring_new(&kr, err);
    if (rc == MD_OK)
        rc = from_file ? add_list(kr, cfg->encryption_key_file, true, "encryption_key_file", err)
                       : add_text_key(kr, cfg->encryption_key, strlen(cfg->encryption_key),
                                      "encryption_key (MODELD_ENCRYPTION_KEY)", err);
    if (rc == MD_OK && store_keyring_size(kr) != 1)
        rc = md_fail(err, MD_E_INVALID_PARAM, "encryption_key_file",
                     "encryption_key_file: one file (older keys go to encryption_old_key_file)");
    if (rc == MD_OK)
        rc = add_list(kr, cfg->encryption_old_key_file, true, "encryption_old_key_file", err);
    if (rc == MD_OK)
        rc = add_list(kr, cfg->encryption_old_keys, false,
                      "encryption_old_keys (MODELD_ENCRYPTION_OLD_KEYS)", err);
    if (rc != MD_OK) {
        store_keyring_free(kr);
        return rc;
    }
    char id[STORE_KEY_ID_HEX];
    store_keyring_write_id(kr, id);
    md_log(MD_LOG_INFO, "encryption at rest: on, write key %s, %zu older key(s) read", id,
           store_keyring_size(kr) - 1);
    *out = kr;
    return MD_OK;
}
