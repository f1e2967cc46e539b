/* tmpdir.h - temporary data directories for the unit tests that need files on disk (store,
 * auth, api, models, xgb): a fresh directory per test, removed with everything in it afterwards,
 * a file count for "nothing was left behind" checks, and reading a whole file. Compiled into
 * those tests by their CMakeLists (cmocka tests only: tu_slurp fails the test). */
#ifndef MD_TESTS_COMMON_TMPDIR_H
#define MD_TESTS_COMMON_TMPDIR_H

#include <stddef.h>

/* mkdtemp "modeld-test-XXXXXX" under $TMPDIR or /tmp. Returns new (tu_rmdir) or NULL. */
char *tu_mkdir(void);
/* Remove a test dir and everything in it, then free the string (steals dir). NULL is a no-op. */
void tu_rmdir(char *dir);
/* Number of regular files under dir/sub, recursively (0 when it does not exist). */
int tu_count_files(const char *dir, const char *sub);
/* The whole file at path, NUL-terminated (not counted in *len); fails the test when it cannot
 * be read. Returns new (free()). */
unsigned char *tu_slurp(const char *path, size_t *len);

#endif
