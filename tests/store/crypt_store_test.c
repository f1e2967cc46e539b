/* crypt_store_test.c - the store with encryption at rest (store_opts.keyring): uploads,
 * results, ranges of a spooled body and adopted files are ciphertext on disk (every file under
 * the data dir is searched for the plaintext), read back byte-identical through store_blob_read;
 * key rotation (a new write key, the old one still read); no key or the wrong key: a clear
 * error, never garbage; blobs from before encryption stay readable. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store.h"
#include "common/store_fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char K1[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char K2[] = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f";
static const char MARK[] = "SECRET-INPUT-BYTES";

static store *open_store(const char *dir, const store_keyring *kr)
{
    store_opts o = {.data_dir = dir, .keyring = kr};
    store *s = NULL;
    assert_int_equal(store_open(&o, &s, NULL), MD_OK);
    return s;
}

static uint8_t *content(size_t n, int salt)
{
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 13 + salt);
    for (size_t i = 0; i + sizeof MARK <= n; i += 1000)
        memcpy(p + i, MARK, sizeof MARK - 1);
    return p;
}

/* Number of files under dir (recursively) holding MARK. */
static int plaintext_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int hits = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            hits += plaintext_files(p);
        } else if (S_ISREG(sb.st_mode)) {
            size_t n = 0;
            unsigned char *b = tu_slurp(p, &n);
            if (b && memmem(b, n, MARK, sizeof MARK - 1)) {
                fprintf(stderr, "plaintext in %s\n", p);
                hits++;
            }
            free(b);
        }
    }
    closedir(d);
    return hits;
}

static void expect_blob(store *s, const char *hex, const uint8_t *want, size_t n)
{
    uint8_t *got = NULL;
    size_t gn = 0;
    md_err e;
    assert_int_equal(store_blob_read(s, hex, n + 10, &got, &gn, &e), MD_OK);
    assert_int_equal(gn, n);
    assert_memory_equal(got, want, n);
    free(got);
}

static void test_everything_encrypted(void **state)
{
    (void)state;
    if (tu_store_pg())
        skip();
    char *dir = tu_mkdir();
    store_keyring *kr = tu_keyring(K1, NULL);
    store *s = open_store(dir, kr);
    md_err e;
    size_t n1 = 200000, n2 = 5000, n3 = 70000;
    uint8_t *a = content(n1, 1), *b = content(n2, 2), *c = content(n3, 3);
    /* an upload */
    store_upload meta = {0}, up;
    snprintf(meta.filename, sizeof meta.filename, "in.png");
    assert_int_equal(store_uploads_create(s, a, n1, &meta, &up, &e), MD_OK);
    /* a result (non-durable put) */
    store_result res;
    assert_int_equal(store_results_create(s, NULL, b, n2, NULL, 60000, &res, &e), MD_OK);
    store_result got;
    assert_int_equal(store_results_get(s, res.result_id, &got, NULL, &e), MD_OK);
    /* a range of a spooled body, and an adopted file (the plain spool file goes) */
    char spool[512];
    snprintf(spool, sizeof spool, "%s/spool.bin", dir);
    FILE *f = fopen(spool, "wb");
    fwrite(c, 1, n3, f);
    fclose(f);
    int fd = open(spool, O_RDONLY);
    char hex_r[STORE_SHA256_HEX], hex_a[STORE_SHA256_HEX];
    assert_int_equal(store_blob_put_range(s, fd, 100, n3 - 100, hex_r, &e), MD_OK);
    close(fd);
    uint64_t size = 0;
    assert_int_equal(store_blob_adopt(s, spool, hex_a, &size, &e), MD_OK);
    assert_int_equal(size, n3);
    assert_int_equal(access(spool, F_OK), -1);
    char bdir[600];
    snprintf(bdir, sizeof bdir, "%s/blobs", dir);
    assert_int_equal(plaintext_files(bdir), 0);
    assert_int_equal(plaintext_files(dir), 0);
    expect_blob(s, up.sha256, a, n1);
    expect_blob(s, res.svg_sha256, b, n2);
    expect_blob(s, hex_r, c + 100, n3 - 100);
    expect_blob(s, hex_a, c, n3);
    store_unref(s);

    /* rotation: K2 writes, K1 still reads */
    store_keyring *rot = tu_keyring(K2, K1);
    s = open_store(dir, rot);
    expect_blob(s, up.sha256, a, n1);
    char hex_new[STORE_SHA256_HEX];
    uint8_t *d = content(3000, 4);
    assert_int_equal(store_blob_put(s, d, 3000, hex_new, &e), MD_OK);
    expect_blob(s, hex_new, d, 3000);
    store_unref(s);

    /* only the old key: what K2 wrote is a clear error, never garbage */
    s = open_store(dir, kr);
    uint8_t *bad = NULL;
    size_t bn = 0;
    assert_int_equal(store_blob_read(s, hex_new, 10000, &bad, &bn, &e), MD_E_IO);
    assert_null(bad);
    assert_non_null(strstr(md_err_message(&e), "not configured"));
    store_unref(s);
    /* no key at all */
    s = open_store(dir, NULL);
    assert_int_equal(store_blob_read(s, up.sha256, n1 + 1, &bad, &bn, &e), MD_E_IO);
    assert_non_null(strstr(md_err_message(&e), "no encryption key"));
    /* a plain blob written without a key is still read once encryption is on */
    char hex_plain[STORE_SHA256_HEX];
    assert_int_equal(store_blob_put(s, "plain bytes", 11, hex_plain, &e), MD_OK);
    store_unref(s);
    s = open_store(dir, rot);
    expect_blob(s, hex_plain, (const uint8_t *)"plain bytes", 11);
    store_unref(s);
    free(a);
    free(b);
    free(c);
    free(d);
    store_keyring_free(kr);
    store_keyring_free(rot);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_everything_encrypted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
