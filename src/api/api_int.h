/* api_int.h - internals shared by several files of src/api (not part of any resource's
 * interface; nothing outside src/api includes it).
 */
#ifndef MD_API_API_INT_H
#define MD_API_API_INT_H

#include <stdbool.h>
#include <stddef.h>

/* Where a directory of files the server reads at start (web page, swagger-ui-dist, shipped
 * models) is looked for when no setting names it. All strings borrowed, static in practice. */
typedef struct api__dir_search {
    const char *const *beside_exe; /* NULL-terminated paths relative to the binary's directory */
    const char *cwd;               /* one path relative to the working directory, or NULL */
    const char *source;            /* the source tree's copy (a build-time path), or NULL */
    const char *marker;            /* a regular file the directory must hold; NULL: any directory */
} api__dir_search;

/* The directory to use: dir itself when non-NULL and non-empty, else the first place of s in
 * the order beside_exe, cwd, source. A place counts when it is a directory (holding marker as a
 * regular file when marker is set) and its path is shorter than cap. Copies it into out and
 * returns true; false when none counts (the caller names the setting in its error). */
bool api__find_dir(const char *dir, const api__dir_search *s, char *out, size_t cap);

#endif
