/* args.h - option parsing shared by the sub-commands whose options fill a struct of string
 * fields (`modeld keys`, `modeld models`): a table maps each "--opt" to its field's offset, so
 * the "--opt VALUE" / "--opt=VALUE" rules, the data-dir default and the usage-error message are
 * written once.
 */
#ifndef MD_CLI_ARGS_H
#define MD_CLI_ARGS_H

#include <stddef.h>

/* One option that takes a value: its spelling ("--data-dir") and the offsetof() of the
 * const char * field of the caller's argument struct that receives the value. */
typedef struct cli_opt {
    const char *name;
    size_t field;
} cli_opt;

/* Match argv[*i] against opts. Returns 1 when it is one of them (the value, borrowed from argv,
 * is stored in args at the option's field and *i is advanced past a separate value), 0 when it
 * is none of them, -1 when its value is missing: argv ends or the next word starts with "--"
 * ("--role --name x" is a forgotten value, not a role called "--name"). */
int cli_take_value_opt(int argc, char **argv, int *i, const cli_opt *opts, size_t nopts,
                       void *args);

/* The data directory: given when not NULL or empty, else $MODELD_DATA_DIR when set and not
 * empty, else "./var". Borrowed (from the arguments, the environment or a literal). */
const char *cli_data_dir(const char *given);
/* The store URL (store_opts.url): given when not NULL or empty, else $MODELD_STORE when set and
 * not empty, else NULL (SQLite in the data dir). Borrowed. */
const char *cli_store_url(const char *given);

/* Print "modeld <cmd>: " + fmt (with arg) + a blank line + usage to stderr; returns 2, the exit
 * code of a usage error. */
int cli_usage_error(const char *cmd, const char *usage, const char *fmt, const char *arg);

/* The image files of dir (names ending .png .jpg .jpeg .webp .tif .tiff .bmp, any case; no
 * hidden files), sorted by name, for the commands that take a directory (`modeld vectorize`,
 * `modeld enhance`). *names is new: free each name and the array. -1 when dir cannot be opened
 * (then *names is NULL and *n 0); a name that cannot be copied is left out. */
int cli_list_images(const char *dir, char ***names, size_t *n);

#endif
