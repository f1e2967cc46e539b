/* blob_read_test.c - store_blob_open and its reader (blob_read.c): plain and encrypted blobs
 * read in pieces of any size, the plaintext fast path (take_fd), lazy re-encryption (a plain
 * blob, then one under an old key, rewritten under the write key on first read: the key id in
 * the file's header changes, the content does not), a blob under a key the store lacks (a
 * clear error naming the key id), an edited file (an error, never garbage), a missing blob;
 * blob writers (committed, or read back once; ciphertext while written); and the sweep that
 * finishes a rotation. */
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

typedef struct fx {
    char *dir;
    store_keyring *k1, *k2k1, *k2;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->dir = tu_mkdir();
    f->k1 = tu_keyring(K1, NULL);
    f->k2k1 = tu_keyring(K2, K1);
    f->k2 = tu_keyring(K2, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    store_keyring_free(f->k1);
    store_keyring_free(f->k2k1);
    store_keyring_free(f->k2);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static store *open_store(fx *f, const store_keyring *kr)
{
    store_opts o = {.data_dir = f->dir, .keyring = kr};
    store *s = NULL;
    assert_int_equal(store_open(&o, &s, NULL), MD_OK);
    return s;
}

static uint8_t *content(size_t n)
{
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7 + i / 251);
    return p;
}

/* Read blob hex through a reader in pieces of `piece` bytes and compare with want. */
static void read_back(store *s, const char *hex, const uint8_t *want, size_t n, size_t piece)
{
    store_blob_reader *r = NULL;
    md_err e;
    assert_int_equal(store_blob_open(s, hex, &r, &e), MD_OK);
    assert_int_equal(store_blob_reader_size(r), n);
    uint8_t *got = malloc(n + piece);
    size_t have = 0, k = 1;
    while (k > 0) {
        assert_int_equal(store_blob_reader_read(r, got + have, piece, &k, &e), MD_OK);
        assert_true(k == piece || have + k == n); /* short only at the end */
        have += k;
    }
    assert_int_equal(have, n);
    assert_memory_equal(got, want, n);
    free(got);
    store_blob_reader_free(r);
}

/* The key id in the header of blob hex's file ("" when it is plain). */
static void file_key(store *s, const char *hex, char out[STORE_KEY_ID_HEX])
{
    char path[4096];
    assert_int_equal(store_blob_path(s, hex, path, sizeof path, NULL), MD_OK);
    size_t n = 0;
    unsigned char *b = tu_slurp(path, &n);
    out[0] = '\0';
    if (n >= 16 && memcmp(b, "MDENC1\0\0", 8) == 0)
        for (int i = 0; i < 8; i++)
            snprintf(out + 2 * i, 3, "%02x", b[8 + i]);
    free(b);
}

static void test_plain_reader(void **state)
{
    fx *f = *state;
    store *s = open_store(f, NULL);
    size_t n = 150000;
    uint8_t *data = content(n);
    char hex[STORE_SHA256_HEX];
    assert_int_equal(store_blob_put(s, data, n, hex, NULL), MD_OK);
    read_back(s, hex, data, n, 1000);
    read_back(s, hex, data, n, 65536);
    read_back(s, hex, data, n, n);
    /* the fast path: the plain file itself, after which the reader gives nothing */
    store_blob_reader *r = NULL;
    assert_int_equal(store_blob_open(s, hex, &r, NULL), MD_OK);
    int fd = store_blob_reader_take_fd(r);
    assert_true(fd >= 0);
    assert_int_equal(store_blob_reader_take_fd(r), -1);
    uint8_t buf[16];
    size_t k = 99;
    assert_int_equal(store_blob_reader_read(r, buf, sizeof buf, &k, NULL), MD_OK);
    assert_int_equal(k, 0);
    store_blob_reader_free(r);
    assert_int_equal(pread(fd, buf, sizeof buf, 0), (ssize_t)sizeof buf);
    assert_memory_equal(buf, data, sizeof buf);
    close(fd);
    /* an empty blob */
    assert_int_equal(store_blob_put(s, "", 0, hex, NULL), MD_OK);
    read_back(s, hex, (const uint8_t *)"", 0, 10);
    store_unref(s);
    free(data);
}

static void test_encrypted_reader(void **state)
{
    fx *f = *state;
    if (tu_store_pg())
        skip();
    store *s = open_store(f, f->k1);
    size_t n = 3 * STORE_CRYPT_CHUNK + 123;
    uint8_t *data = content(n);
    char hex[STORE_SHA256_HEX], id[STORE_KEY_ID_HEX], want[STORE_KEY_ID_HEX];
    assert_int_equal(store_blob_put(s, data, n, hex, NULL), MD_OK);
    store_keyring_write_id(f->k1, want);
    file_key(s, hex, id);
    assert_string_equal(id, want);
    read_back(s, hex, data, n, 1);
    read_back(s, hex, data, n, 4097);
    read_back(s, hex, data, n, STORE_CRYPT_CHUNK);
    read_back(s, hex, data, n, n + 1);
    store_blob_reader *r = NULL;
    assert_int_equal(store_blob_open(s, hex, &r, NULL), MD_OK);
    assert_int_equal(store_blob_reader_take_fd(r), -1); /* no plaintext file to hand out */
    store_blob_reader_free(r);
    /* through store_blob_read too, with its size limit */
    uint8_t *got = NULL;
    size_t gn = 0;
    md_err e;
    assert_int_equal(store_blob_read(s, hex, n, &got, &gn, &e), MD_OK);
    assert_int_equal(gn, n);
    free(got);
    assert_int_equal(store_blob_read(s, hex, n - 1, &got, &gn, &e), MD_E_TOO_LARGE);
    assert_null(got);
    store_unref(s);
    free(data);
}

static void test_lazy_reencryption(void **state)
{
    fx *f = *state;
    if (tu_store_pg())
        skip();
    /* written before encryption was switched on */
    store *s = open_store(f, NULL);
    size_t n = 100000;
    uint8_t *data = content(n);
    char hex[STORE_SHA256_HEX], id[STORE_KEY_ID_HEX], k1[STORE_KEY_ID_HEX], k2[STORE_KEY_ID_HEX];
    assert_int_equal(store_blob_put(s, data, n, hex, NULL), MD_OK);
    file_key(s, hex, id);
    assert_string_equal(id, "");
    store_unref(s);
    store_keyring_write_id(f->k1, k1);
    store_keyring_write_id(f->k2k1, k2);
    /* switched on: the first read rewrites it under K1 */
    s = open_store(f, f->k1);
    read_back(s, hex, data, n, 5000);
    file_key(s, hex, id);
    assert_string_equal(id, k1);
    store_unref(s);
    /* rotated: K2 writes, K1 is still read; the first read moves the blob to K2 */
    s = open_store(f, f->k2k1);
    read_back(s, hex, data, n, 70000);
    file_key(s, hex, id);
    assert_string_equal(id, k2);
    read_back(s, hex, data, n, 70000); /* and it stays there */
    store_unref(s);
    /* K1 retired: still readable, since it was re-encrypted */
    s = open_store(f, f->k2);
    read_back(s, hex, data, n, 3);
    store_unref(s);
    /* nothing left behind in blobs/tmp */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s/blobs/tmp", f->dir);
    DIR *d = opendir(tmp);
    assert_non_null(d);
    int files = 0;
    for (struct dirent *de = readdir(d); de; de = readdir(d))
        files += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 0);
    free(data);
}

static void test_unknown_key_and_tamper(void **state)
{
    fx *f = *state;
    if (tu_store_pg())
        skip();
    store *s = open_store(f, f->k1);
    size_t n = 2 * STORE_CRYPT_CHUNK;
    uint8_t *data = content(n);
    char hex[STORE_SHA256_HEX], k1[STORE_KEY_ID_HEX];
    assert_int_equal(store_blob_put(s, data, n, hex, NULL), MD_OK);
    store_unref(s);
    store_keyring_write_id(f->k1, k1);
    /* a store that lacks K1: an error naming the key, no reader */
    s = open_store(f, f->k2);
    store_blob_reader *r = NULL;
    md_err e;
    assert_int_equal(store_blob_open(s, hex, &r, &e), MD_E_IO);
    assert_null(r);
    assert_non_null(strstr(md_err_message(&e), k1));
    assert_non_null(strstr(md_err_message(&e), "not configured"));
    store_unref(s);
    /* no key at all */
    s = open_store(f, NULL);
    assert_int_equal(store_blob_open(s, hex, &r, &e), MD_E_IO);
    assert_non_null(strstr(md_err_message(&e), "no encryption key"));
    store_unref(s);
    /* an edited byte in the second chunk: the first chunk reads, the second fails */
    s = open_store(f, f->k1);
    char path[4096];
    assert_int_equal(store_blob_path(s, hex, path, sizeof path, NULL), MD_OK);
    int fd = open(path, O_RDWR);
    off_t at = 40 + (off_t)STORE_CRYPT_CHUNK + 17 + 100;
    uint8_t b = 0;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 1;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
    assert_int_equal(store_blob_open(s, hex, &r, &e), MD_OK);
    uint8_t *buf = malloc(STORE_CRYPT_CHUNK);
    size_t k = 0;
    assert_int_equal(store_blob_reader_read(r, buf, STORE_CRYPT_CHUNK, &k, &e), MD_OK);
    assert_memory_equal(buf, data, STORE_CRYPT_CHUNK);
    assert_int_equal(store_blob_reader_read(r, buf, STORE_CRYPT_CHUNK, &k, &e), MD_E_IO);
    assert_non_null(strstr(md_err_message(&e), "authentication"));
    store_blob_reader_free(r);
    free(buf);
    /* a blob that is not there */
    char missing[STORE_SHA256_HEX];
    memset(missing, 'a', 64);
    missing[64] = '\0';
    assert_int_equal(store_blob_open(s, missing, &r, &e), MD_E_FILE_NOT_FOUND);
    assert_int_equal(store_blob_open(s, "nothex", &r, &e), MD_E_INVALID_PARAM);
    store_unref(s);
    free(data);
}

/* Whether any file under dir holds the bytes m. */
static int found_under(const char *dir, const void *m, size_t n)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int hits = 0;
    for (struct dirent *de = readdir(d); de; de = readdir(d)) {
        if (de->d_name[0] == '.')
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            hits += found_under(p, m, n);
        } else {
            size_t len = 0;
            unsigned char *b = tu_slurp(p, &len);
            hits += b && memmem(b, len, m, n) != NULL;
            free(b);
        }
    }
    closedir(d);
    return hits;
}

/* A blob written as a stream: committed (the same name as store_blob_put's), or a scratch
 * file read back; with a keyring the file is ciphertext while it is being written. */
static void writer_round(fx *f, const store_keyring *kr)
{
    store *s = open_store(f, kr);
    size_t n = 2 * STORE_CRYPT_CHUNK + 999;
    uint8_t *data = content(n);
    char mark[32]; /* one per round: the rounds share the data dir */
    snprintf(mark, sizeof mark, "PLAINTEXT-MARKER-%s", kr ? "CRYPT" : "PLAIN");
    memcpy(data + 5000, mark, strlen(mark));
    store_blob_writer *w = NULL;
    md_err e;
    assert_int_equal(store_blob_writer_open(s, &w, &e), MD_OK);
    for (size_t off = 0; off < n; off += 7777)
        assert_int_equal(
            store_blob_writer_write(w, data + off, n - off < 7777 ? n - off : 7777, &e), MD_OK);
    assert_int_equal(store_blob_writer_size(w), n);
    char bdir[600];
    snprintf(bdir, sizeof bdir, "%s/blobs", f->dir);
    assert_int_equal(found_under(bdir, mark, strlen(mark)), kr ? 0 : 1);
    char hex[STORE_SHA256_HEX], want[STORE_SHA256_HEX];
    uint64_t size = 0;
    assert_int_equal(store_blob_writer_commit(w, hex, &size, &e), MD_OK);
    assert_int_equal(size, n);
    assert_int_equal(store_blob_put(s, data, n, want, &e), MD_OK);
    assert_string_equal(hex, want);
    read_back(s, hex, data, n, 10000);
    assert_int_equal(found_under(bdir, mark, strlen(mark)), kr ? 0 : 1);
    /* a scratch file: read back once, gone from the disk as soon as it is reopened */
    assert_int_equal(store_blob_writer_open(s, &w, &e), MD_OK);
    assert_int_equal(store_blob_writer_write(w, data, n, &e), MD_OK);
    store_blob_reader *r = NULL;
    assert_int_equal(store_blob_writer_reopen(w, &r, &e), MD_OK);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s/blobs/tmp", f->dir);
    assert_int_equal(found_under(tmp, "", 0), 0); /* no file left in blobs/tmp */
    uint8_t *got = malloc(n + 1);
    size_t k = 0;
    assert_int_equal(store_blob_reader_read(r, got, n + 1, &k, &e), MD_OK);
    assert_int_equal(k, n);
    assert_memory_equal(got, data, n);
    store_blob_reader_free(r);
    /* dropped unfinished: removed */
    assert_int_equal(store_blob_writer_open(s, &w, &e), MD_OK);
    assert_int_equal(store_blob_writer_write(w, "abc", 3, &e), MD_OK);
    store_blob_writer_free(w);
    assert_int_equal(found_under(tmp, "", 0), 0);
    free(got);
    free(data);
    store_unref(s);
}

static void test_blob_writer(void **state)
{
    fx *f = *state;
    if (tu_store_pg())
        skip();
    writer_round(f, NULL);
    writer_round(f, f->k1);
}

/* The sweep finishes a rotation: blobs nobody read are rewritten under the write key; blobs
 * under a key the store lacks are counted and left alone. */
static void test_sweep_reencrypts(void **state)
{
    fx *f = *state;
    if (tu_store_pg())
        skip();
    store *s = open_store(f, NULL);
    char hex[3][STORE_SHA256_HEX], id[STORE_KEY_ID_HEX], k1[STORE_KEY_ID_HEX];
    uint8_t *data = content(70000);
    for (int i = 0; i < 3; i++) {
        data[0] = (uint8_t)i;
        assert_int_equal(store_blob_put(s, data, 70000, hex[i], NULL), MD_OK);
    }
    store_unref(s);
    store_keyring_write_id(f->k1, k1);
    s = open_store(f, f->k1);
    store_sweep_stats st;
    md_err e;
    assert_int_equal(store_sweep(s, &st, &e), MD_OK);
    assert_int_equal(st.blobs_deleted, 0); /* fresh: within the grace period */
    assert_int_equal(st.blobs_reencrypted, 3);
    assert_int_equal(st.blobs_old_key + st.blobs_unknown_key, 0);
    for (int i = 0; i < 3; i++) {
        file_key(s, hex[i], id);
        assert_string_equal(id, k1);
        data[0] = (uint8_t)i;
        read_back(s, hex[i], data, 70000, 9999);
    }
    assert_int_equal(store_sweep(s, &st, &e), MD_OK); /* nothing left to do */
    assert_int_equal(st.blobs_reencrypted, 0);
    store_unref(s);
    s = open_store(f, f->k2); /* K1 is not configured: counted, untouched */
    assert_int_equal(store_sweep(s, &st, &e), MD_OK);
    assert_int_equal(st.blobs_unknown_key, 3);
    assert_int_equal(st.blobs_reencrypted, 0);
    file_key(s, hex[0], id);
    assert_string_equal(id, k1);
    store_unref(s);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encrypted_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lazy_reencryption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_and_tamper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_reencrypts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
