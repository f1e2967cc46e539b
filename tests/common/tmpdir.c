/* tmpdir.c - temporary test directories; see tmpdir.h. */
#include "common/tmpdir.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

char *tu_mkdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/modeld-test-XXXXXX", base && base[0] ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

void tu_rmdir(char *dir)
{
    if (!dir)
        return;
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* nftw has no context pointer: the count lives here (tests count from one thread). */
static int count_n;

static int count_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)p;
    (void)sb;
    (void)ftw;
    if (flag == FTW_F)
        count_n++;
    return 0;
}

int tu_count_files(const char *dir, const char *sub)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    count_n = 0;
    nftw(p, count_one, 16, FTW_PHYS);
    return count_n;
}

unsigned char *tu_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}
