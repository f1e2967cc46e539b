/* args.c - the option table matcher, the data-dir default and the usage-error message of the
 * sub-commands (see args.h).
 *
 * Invariants:
 *   1. An option matches only as the whole word or followed by '=': "--data-dirx" is not
 *      "--data-dir".
 *   2. A value is never taken from a following word that starts with "--".
 */
#include "cli/args.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int cli_take_value_opt(int argc, char **argv, int *i, const cli_opt *opts, size_t nopts, void *args)
{
    for (size_t k = 0; k < nopts; k++) {
        size_t n = strlen(opts[k].name);
        const char *v = NULL;
        if (strncmp(argv[*i], opts[k].name, n) != 0)
            continue;
        if (argv[*i][n] == '=')
            v = argv[*i] + n + 1;
        else if (argv[*i][n] != '\0')
            continue;
        else if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0)
            return -1;
        else
            v = argv[++*i];
        *(const char **)((char *)args + opts[k].field) = v;
        return 1;
    }
    return 0;
}

const char *cli_data_dir(const char *given)
{
    const char *d = given ? given : getenv("MODELD_DATA_DIR");
    return d && d[0] ? d : "./var";
}

const char *cli_store_url(const char *given)
{
    const char *u = given && given[0] ? given : getenv("MODELD_STORE");
    return u && u[0] ? u : NULL;
}

int cli_usage_error(const char *cmd, const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "modeld %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage);
    return 2;
}

static int has_image_ext(const char *name)
{
    static const char *const exts[] = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof exts / sizeof exts[0]; i++)
        if (strcasecmp(dot, exts[i]) == 0)
            return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cli_list_images(const char *dir, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !has_image_ext(e->d_name))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(*names, cap * sizeof **names);
            if (!grown)
                break;
            *names = grown;
        }
        (*names)[*n] = strdup(e->d_name);
        *n += (*names)[*n] != NULL;
    }
    closedir(d);
    if (*n)
        qsort(*names, *n, sizeof **names, cmp_str);
    return 0;
}
