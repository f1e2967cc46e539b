/* models.c - `modeld models list | info NAME | validate DIR | activate NAME VERSION |
 * rollback NAME`: the model registry from the shell.
 *
 * Two ways to act:
 *   - on a data dir (default): the registry is opened on the same store and model roots a
 *     server uses, without loading every model (load_all false); list/info show the active and
 *     canary versions the store remembers (state UNLOADED); a change is persisted in the store
 *     only: a server already running on that data dir does not see it until its next start
 *     (there is no cross-process notification; use --url to change a running one);
 *   - on a running server (--url URL, with --key KEY or $MODELD_API_KEY): the same operations
 *     through GET /api/models[/{name}] and the admin POST routes, over plain HTTP/1.1.
 * `validate DIR` always runs locally: manifest, SHA-256, load and validation samples of one
 * version directory, without registering it.
 * Results go to stdout (a table, or JSON with --json / for info); messages to stderr.
 * Exit codes: 0 ok, 1 the operation failed, 2 usage error.
 */
#include "cli/cli.h"

#include "api/models_api.h"
#include "base/log.h"
#include "cli/args.h"
#include "cli/httpc.h"
#include "models/models.h"
#include "store/store.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: modeld models list [--json]\n"
    "       modeld models info NAME [--version V]\n"
    "       modeld models validate DIR\n"
    "       modeld models activate NAME VERSION\n"
    "       modeld models rollback NAME\n"
    "\n"
    "  --data-dir DIR    data directory of the server (default: $MODELD_DATA_DIR or ./var)\n"
    "  --models-dir DIR  shipped model repository (default: models/ next to the binary or in the source tree)\n"
    "  --url URL         act on a running server instead (http://host:port)\n"
    "  --key KEY         its API key (default: $MODELD_API_KEY); activate/rollback need an admin key\n"
    "  --json            list: print JSON instead of a table\n"
    "On a data dir, activate and rollback change only what the store remembers: a server already\n"
    "running on that data dir keeps serving what it loaded and picks the change up at its next\n"
    "start, not before (use --url to change a running server). rollback returns to the version\n"
    "that was active before the current one.\n";

typedef struct models_args {
    const char *cmd, *pos[2];
    int npos;
    const char *data_dir, *models_dir, *url, *key, *version;
    int json;
} models_args;

static int usage_error(const char *fmt, const char *arg)
{
    return cli_usage_error("models", USAGE, fmt, arg);
}

static const cli_opt value_opts[] = {
    {"--data-dir", offsetof(models_args, data_dir)}, {"--models-dir", offsetof(models_args, models_dir)},
    {"--url", offsetof(models_args, url)},           {"--key", offsetof(models_args, key)},
    {"--version", offsetof(models_args, version)},
};

/* Names and versions go into URL paths: only the registry's own characters. */
static bool safe_word(const char *s)
{
    return *s && strlen(s) < MDL_NAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == strlen(s);
}

static int parse_args(int argc, char **argv, models_args *a)
{
    if (argc < 2)
        return usage_error("%s", "a sub-command is needed");
    a->cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        int r = cli_take_value_opt(argc, argv, &i, value_opts,
                                   sizeof value_opts / sizeof value_opts[0], a);
        if (r < 0)
            return usage_error("option %s needs a value", argv[i]);
        if (r > 0)
            continue;
        if (strcmp(argv[i], "--json") == 0) {
            a->json = 1;
            continue;
        }
        if (argv[i][0] == '-')
            return usage_error("unknown option '%s'", argv[i]);
        if (a->npos == 2)
            return usage_error("unexpected argument '%s'", argv[i]);
        a->pos[a->npos++] = argv[i];
    }
    a->data_dir = cli_data_dir(a->data_dir);
    if (!a->key)
        a->key = getenv("MODELD_API_KEY");
    static const struct {
        const char *cmd;
        int npos;
    } arity[] = {{"list", 0}, {"info", 1}, {"validate", 1}, {"activate", 2}, {"rollback", 1}};
    for (size_t k = 0; k < sizeof arity / sizeof arity[0]; k++) {
        if (strcmp(a->cmd, arity[k].cmd) != 0)
            continue;
        if (a->npos != arity[k].npos)
            return usage_error("'%s' takes a different number of arguments", a->cmd);
        for (int p = 0; p < a->npos && strcmp(a->cmd, "validate") != 0; p++)
            if (!safe_word(a->pos[p]))
                return usage_error("'%s' is not a valid model name or version", a->pos[p]);
        if (a->version && !safe_word(a->version))
            return usage_error("'%s' is not a valid version", a->version);
        return 0;
    }
    return usage_error("unknown sub-command '%s'", a->cmd);
}

/* ---- output ---- */

/* The string member key of o, or "?" (a server of another version may lack it). */
static const char *str_or(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "?";
}

static void print_table(json_t *models)
{
    printf("%-24s %-10s %-8s %-10s %-16s %-10s %s\n", "NAME", "FAMILY", "RUNTIME", "ACTIVE", "CANARY", "STATE",
           "VERSIONS");
    json_t *m, *v;
    size_t i, k;
    json_array_foreach(models, i, m) {
        char canary[48] = "-", versions[512] = "";
        json_t *cv = json_object_get(m, "canary_version");
        if (json_is_string(cv))
            snprintf(canary, sizeof canary, "%s (%g%%)", json_string_value(cv),
                     json_number_value(json_object_get(m, "canary_percent")));
        json_array_foreach(json_object_get(m, "versions"), k, v) {
            size_t n = strlen(versions);
            snprintf(versions + n, sizeof versions - n, "%s%s:%s", k ? "," : "",
                     str_or(v, "version"),
                     str_or(v, "state"));
        }
        const char *active = json_string_value(json_object_get(m, "active_version"));
        printf("%-24s %-10s %-8s %-10s %-16s %-10s %s\n", str_or(m, "name"),
               str_or(m, "family"),
               str_or(m, "runtime"), active ? active : "-", canary,
               str_or(m, "state"), versions);
    }
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (s)
        printf("%s\n", s);
    free(s);
}

/* ---- on a data dir ---- */

static int open_local(const models_args *a, store **st, mdl_registry **reg)
{
    char shipped[PATH_MAX];
    md_err e;
    md_err_clear(&e);
    const char *dir = shipped;
    if (api_models_find_dir(a->models_dir, shipped, sizeof shipped, &e) != MD_OK) {
        if (a->models_dir) {
            fprintf(stderr, "modeld models: %s\n", md_err_message(&e));
            return 2;
        }
        dir = NULL;
    }
    store_opts so = {.data_dir = a->data_dir, .url = cli_store_url(NULL)};
    if (store_open(&so, st, &e) != MD_OK) {
        fprintf(stderr, "modeld models: cannot open the data dir %s: %s\n", a->data_dir, md_err_message(&e));
        return 1;
    }
    mdl_registry_opts o = {.shipped_dir = dir, .data_dir = a->data_dir, .store = *st, .load_all = false};
    if (mdl_registry_open(&o, reg, &e) != MD_OK) {
        fprintf(stderr, "modeld models: cannot open the model registry: %s\n", md_err_message(&e));
        return 1;
    }
    return 0;
}

static int local_op(const models_args *a, mdl_registry *reg, md_err *e)
{
    if (strcmp(a->cmd, "list") == 0) {
        json_t *all = mdl_describe_all(reg);
        if (!all)
            return md_fail(e, MD_E_NOMEM, NULL, NULL);
        a->json ? print_json(all) : print_table(all);
        json_decref(all);
        return MD_OK;
    }
    if (strcmp(a->cmd, "info") == 0) {
        json_t *d = NULL;
        int rc = mdl_describe(reg, a->pos[0], a->version, &d, e);
        if (rc == MD_OK)
            print_json(d);
        json_decref(d);
        return rc;
    }
    int rc = strcmp(a->cmd, "activate") == 0 ? mdl_activate(reg, a->pos[0], a->pos[1], e)
                                             : mdl_rollback(reg, a->pos[0], e);
    if (rc == MD_OK)
        fprintf(stderr,
                "modeld models: %s %s done; a server already running on this data dir serves it "
                "only after a restart (use --url to change a running server)\n",
                a->cmd, a->pos[0]);
    return rc;
}

static int run_local(const models_args *a)
{
    if (strcmp(a->cmd, "validate") == 0) {
        md_err e;
        md_err_clear(&e);
        mdl_registry_opts o = {0};
        if (mdl_validate_dir(a->pos[0], &o, &e) != MD_OK) {
            fprintf(stderr, "modeld models: %s is not a valid model version: %s%s%s\n", a->pos[0], md_err_message(&e),
                    e.field[0] ? " (field " : "", e.field[0] ? e.field : "");
            if (e.field[0])
                fprintf(stderr, ")\n");
            return 1;
        }
        printf("%s: valid (manifest, sha256, load and validation samples)\n", a->pos[0]);
        return 0;
    }
    store *st = NULL;
    mdl_registry *reg = NULL;
    int code = open_local(a, &st, &reg);
    if (code == 0) {
        md_err e;
        md_err_clear(&e);
        if (local_op(a, reg, &e) != MD_OK) {
            fprintf(stderr, "modeld models: %s failed: %s\n", a->cmd, md_err_message(&e));
            code = 1;
        }
    }
    mdl_registry_close(reg);
    store_unref(st);
    return code;
}

/* ---- on a running server ---- */

static int remote_call(const models_args *a, const char *method, const char *path, json_t **out)
{
    httpc_resp r;
    md_err e;
    md_err_clear(&e);
    *out = NULL;
    if (httpc_request(a->url, method, path, a->key, NULL, 300, &r, &e) != MD_OK) {
        fprintf(stderr, "modeld models: %s\n", md_err_message(&e));
        return 1;
    }
    json_t *j = json_loadb(r.body, r.len, 0, NULL);
    int code = 0;
    if (r.status != 200) {
        json_t *msg = json_object_get(json_object_get(j, "error"), "message");
        fprintf(stderr, "modeld models: the server answered %d: %s\n", r.status,
                json_is_string(msg) ? json_string_value(msg) : "(no message)");
        code = 1;
    } else if (!j) {
        fprintf(stderr, "modeld models: the server's answer is not JSON\n");
        code = 1;
    }
    httpc_resp_free(&r);
    if (code)
        json_decref(j);
    else
        *out = j;
    return code;
}

static int run_remote(const models_args *a)
{
    char path[256];
    json_t *j = NULL;
    int code;
    if (strcmp(a->cmd, "validate") == 0)
        return usage_error("%s", "validate checks a local directory; it takes no --url");
    if (strcmp(a->cmd, "list") == 0) {
        code = remote_call(a, "GET", "/api/models", &j);
        if (code == 0)
            a->json ? print_json(json_object_get(j, "models")) : print_table(json_object_get(j, "models"));
    } else {
        if (strcmp(a->cmd, "info") == 0)
            snprintf(path, sizeof path, "/api/models/%s%s%s", a->pos[0], a->version ? "?version=" : "",
                     a->version ? a->version : "");
        else if (strcmp(a->cmd, "activate") == 0)
            snprintf(path, sizeof path, "/api/models/%s/versions/%s/activate", a->pos[0], a->pos[1]);
        else
            snprintf(path, sizeof path, "/api/models/%s/rollback", a->pos[0]);
        code = remote_call(a, strcmp(a->cmd, "info") == 0 ? "GET" : "POST", path, &j);
        if (code == 0)
            print_json(json_object_get(j, "model"));
    }
    json_decref(j);
    return code;
}

int cmd_models(int argc, char **argv)
{
    models_args a = {0};
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(USAGE, stdout);
        return 0;
    }
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc;
    md_log_set_level(MD_LOG_WARN);
    return a.url ? run_remote(&a) : run_local(&a);
}
