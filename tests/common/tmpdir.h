/* tmpdir.h - temporary data directories for the unit tests that need files on disk (store,
 * auth, api): a fresh directory per test, removed with everything in it afterwards, and a file
 * count for "nothing was left behind" checks. Compiled into those tests by their CMakeLists. */
#ifndef MD_TESTS_COMMON_TMPDIR_H
#define MD_TESTS_COMMON_TMPDIR_H

/* mkdtemp "modeld-test-XXXXXX" under $TMPDIR or /tmp. Returns new (tu_rmdir) or NULL. */
char *tu_mkdir(void);
/* Remove a test dir and everything in it, then free the string (steals dir). NULL is a no-op. */
void tu_rmdir(char *dir);
/* Number of regular files under dir/sub, recursively (0 when it does not exist). */
int tu_count_files(const char *dir, const char *sub);

#endif
