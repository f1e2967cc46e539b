/* keys.c - `modeld keys create|list|revoke`: managing API keys from the shell, on the same
 * data dir a running server uses (SQLite WAL lets both open it; a running server notices a
 * revocation within its cache revalidation interval).
 *
 * The secret key is printed once, alone on stdout, so scripts can capture it; everything
 * else goes to stderr. Exit codes: 0 ok, 1 failure (unknown id, storage), 2 usage error.
 */
#include "cli/cli.h"

#include "auth/auth.h"
#include "base/log.h"
#include "cli/args.h"
#include "store/store.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char USAGE[] =
    "usage: modeld keys create --role read|write|admin --name NAME [--data-dir DIR] [--store URL]\n"
    "       modeld keys list [--data-dir DIR] [--store URL]\n"
    "       modeld keys revoke ID [--data-dir DIR] [--store URL]\n"
    "\n"
    "  --data-dir DIR   data directory of the server (default: $MODELD_DATA_DIR or ./var)\n"
    "  --store URL      the server's database when it is not SQLite in the data dir:\n"
    "                   postgres://... (default: $MODELD_STORE)\n"
    "  create prints the new key once on stdout; only its hash is stored.\n";

typedef struct keys_args {
    const char *role, *name, *data_dir, *store, *id;
} keys_args;

static int usage_error(const char *fmt, const char *arg)
{
    return cli_usage_error("keys", USAGE, fmt, arg);
}

/* The options with a value; each names the keys_args field it fills. */
static const cli_opt value_opts[] = {
    {"--role", offsetof(keys_args, role)},
    {"--name", offsetof(keys_args, name)},
    {"--data-dir", offsetof(keys_args, data_dir)},
    {"--store", offsetof(keys_args, store)},
};

static int parse_args(int argc, char **argv, keys_args *a)
{
    for (int i = 2; i < argc; i++) {
        int r = cli_take_value_opt(argc, argv, &i, value_opts,
                                   sizeof value_opts / sizeof value_opts[0], a);
        if (r < 0)
            return usage_error("option %s needs a value", argv[i]);
        if (r > 0)
            continue;
        if (argv[i][0] == '-')
            return usage_error("unknown option '%s'", argv[i]);
        if (a->id)
            return usage_error("unexpected argument '%s'", argv[i]);
        a->id = argv[i];
    }
    a->data_dir = cli_data_dir(a->data_dir);
    return 0;
}

static int open_store(const keys_args *a, store **st)
{
    md_err e;
    store_opts o = {.data_dir = a->data_dir, .url = cli_store_url(a->store)};
    if (store_open(&o, st, &e) != MD_OK) {
        fprintf(stderr, "modeld keys: cannot open the data dir %s: %s\n", a->data_dir,
                md_err_message(&e));
        return 1;
    }
    return 0;
}

/* Check create's arguments before the data dir is touched, so a typo creates nothing. */
static int check_create(const keys_args *a, auth_role *role)
{
    md_err e;
    if (!a->role || !a->name)
        return usage_error("create needs %s", "--role and --name");
    if (auth_role_parse(a->role, role, &e) != MD_OK)
        return usage_error("--role %s", md_err_message(&e));
    if (auth_key_name_check(a->name, &e) != MD_OK)
        return usage_error("--name %s", md_err_message(&e));
    return 0;
}

static int do_create(store *st, const keys_args *a, auth_role role)
{
    md_err e;
    auth_new_key k;
    int rc = auth_key_create(st, role, a->name, &k, &e);
    if (rc != MD_OK) {
        fprintf(stderr, "modeld keys: %s\n", md_err_message(&e));
        return 1;
    }
    printf("%s\n", k.key);
    fflush(stdout);
    fprintf(stderr, "created key %s (role %s, name \"%s\"). Store it now: it is not shown "
                    "again.\n", k.row.id, auth_role_name(role), k.row.name);
    auth_new_key_wipe(&k);
    return 0;
}

static void fmt_time(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int do_list(store *st)
{
    md_err e;
    store_key *keys = NULL;
    size_t n = 0;
    if (store_keys_list(st, &keys, &n, &e) != MD_OK) {
        fprintf(stderr, "modeld keys: %s\n", md_err_message(&e));
        return 1;
    }
    printf("%-14s %-6s %-8s %-21s %s\n", "ID", "ROLE", "STATUS", "CREATED", "NAME");
    for (size_t i = 0; i < n; i++) {
        char created[32];
        fmt_time(keys[i].created_ms, created, sizeof created);
        printf("%-14s %-6s %-8s %-21s %s\n", keys[i].id, auth_role_name((auth_role)keys[i].role),
               keys[i].revoked_ms ? "revoked" : "active", created, keys[i].name);
    }
    free(keys);
    return 0;
}

static int do_revoke(store *st, const keys_args *a)
{
    md_err e;
    if (!a->id)
        return usage_error("revoke needs %s", "the key ID (see `modeld keys list`)");
    int rc = store_keys_revoke(st, a->id, &e);
    if (rc != MD_OK) {
        fprintf(stderr, "modeld keys: %s: %s\n", a->id, md_err_message(&e));
        return 1;
    }
    fprintf(stderr, "revoked key %s\n", a->id);
    return 0;
}

int cmd_keys(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "revoke") != 0)
        return usage_error("unknown sub-command '%s'", sub);
    keys_args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc;
    if (strcmp(sub, "revoke") != 0 && a.id)
        return usage_error("unexpected argument '%s'", a.id);
    /* Validate before touching the data dir, so a typo does not create one. */
    auth_role role = AUTH_ROLE_NONE;
    if (strcmp(sub, "create") == 0) {
        rc = check_create(&a, &role);
        if (rc != 0)
            return rc;
    }
    if (strcmp(sub, "revoke") == 0 && !a.id)
        return usage_error("revoke needs %s", "the key ID (see `modeld keys list`)");
    md_log_set_level(MD_LOG_WARN);   /* migration notices are noise on a CLI */
    store *st = NULL;
    if (open_store(&a, &st) != 0)
        return 1;
    if (strcmp(sub, "create") == 0)
        rc = do_create(st, &a, role);
    else if (strcmp(sub, "list") == 0)
        rc = do_list(st);
    else
        rc = do_revoke(st, &a);
    store_unref(st);
    return rc;
}
