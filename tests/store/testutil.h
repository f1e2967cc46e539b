/* testutil.h - helpers for the store and auth tests: a fresh temporary data dir per test,
 * removed afterwards, and a store opened on it with a manual clock. */
#ifndef MD_TESTS_STORE_TESTUTIL_H
#define MD_TESTS_STORE_TESTUTIL_H


#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline int tu_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* mkdtemp under $TMPDIR or /tmp; the returned string is new (free() it via tu_rmdir). */
static inline char *tu_mkdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/modeld-test-XXXXXX", base && base[0] ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

/* Remove a test dir and everything in it, then free the string. */
static inline void tu_rmdir(char *dir)
{
    if (!dir)
        return;
    nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* Number of regular files under dir/sub (recursively). */
static int tu_count_cb_n;
static inline int tu_count_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)p;
    (void)sb;
    (void)ftw;
    if (flag == FTW_F)
        tu_count_cb_n++;
    return 0;
}
static inline int tu_count_files(const char *dir, const char *sub)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    tu_count_cb_n = 0;
    nftw(p, tu_count_cb, 16, FTW_PHYS);
    return tu_count_cb_n;
}

#endif
