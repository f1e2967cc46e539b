/* find_dir.c - finding the directories the server reads at start (see api_int.h): the web
 * page (webui.c), swagger-ui-dist (docs.c) and the shipped models (models_api.c) are looked for
 * beside the binary (build tree or installed prefix), then in the working directory, then in
 * the source tree the binary was built from.
 *
 * Invariants:
 *   1. An explicit directory (a setting) is the only candidate: a wrong setting is an error,
 *      never silently replaced by a default.
 *   2. A path that does not fit in the caller's buffer is skipped, never truncated.
 */
#include "api/api_int.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool usable(const api__dir_search *s, const char *dir)
{
    struct stat st;
    if (!s->marker)
        return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    char p[PATH_MAX];
    return snprintf(p, sizeof p, "%s/%s", dir, s->marker) < (int)sizeof p && stat(p, &st) == 0 &&
           S_ISREG(st.st_mode);
}

static bool take(const api__dir_search *s, const char *dir, char *out, size_t cap)
{
    if (strlen(dir) >= cap || !usable(s, dir))
        return false;
    strcpy(out, dir);
    return true;
}

/* The places beside the binary; false when /proc/self/exe cannot be read (they are skipped). */
static bool beside_exe(const api__dir_search *s, char *out, size_t cap)
{
    char exe[PATH_MAX], cand[PATH_MAX + 64];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0)
        return false;
    exe[k] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    for (const char *const *rel = s->beside_exe; rel && *rel; rel++) {
        snprintf(cand, sizeof cand, "%s/%s", exe, *rel);
        if (take(s, cand, out, cap))
            return true;
    }
    return false;
}

bool api__find_dir(const char *dir, const api__dir_search *s, char *out, size_t cap)
{
    if (dir && *dir)
        return take(s, dir, out, cap);
    if (beside_exe(s, out, cap))
        return true;
    if (s->cwd && take(s, s->cwd, out, cap))
        return true;
    return s->source && take(s, s->source, out, cap);
}
