/* crypt_test.c - encrypted blob files (blob_crypt.c): round trips across chunk boundaries read
 * in small pieces, no plaintext in the file, a wrong or missing key, an edited, truncated or
 * extended file (an error, never garbage), key rotation (old keys read, the new one writes),
 * and the accepted key encodings. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/store_fixture.h"

#include "store/store.h"
#include "common/tmpdir.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char K1_HEX[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/* 32 bytes of 0xAA in standard base64 */
static const char K2_B64[] = "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo=";

/* Pattern bytes with a recognisable marker every 4 KiB, so plaintext is easy to search for. */
static uint8_t *pattern(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31 + 7);
    for (size_t i = 0; i + 16 <= n; i += 4096)
        memcpy(p + i, "PLAINTEXT-MARKER", 16);
    return p;
}

static void write_file(const store_keyring *kr, const char *path, const uint8_t *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    store_crypt_writer *w = NULL;
    assert_int_equal(store_crypt_writer_open(kr, fd, &w, NULL), MD_OK);
    /* odd-sized writes, so chunk boundaries fall inside them */
    for (size_t off = 0; off < n;) {
        size_t take = n - off < 10007 ? n - off : 10007;
        assert_int_equal(store_crypt_write(w, data + off, take, NULL), MD_OK);
        off += take;
    }
    assert_int_equal(store_crypt_writer_finish(w, NULL), MD_OK);
    store_crypt_writer_free(w);
    close(fd);
}

/* Read the whole file in pieces of `piece` bytes; MD_OK and the bytes, or the first error. */
static int read_file(const store_keyring *kr, const char *path, size_t piece, uint8_t **out,
                     size_t *n, md_err *err)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    store_crypt_reader *r = NULL;
    int rc = store_crypt_reader_open(kr, fd, &r, err);
    *out = NULL;
    *n = 0;
    if (rc != MD_OK)
        return rc;
    size_t size = (size_t)store_crypt_reader_size(r);
    uint8_t *buf = malloc(size + piece + 1);
    size_t got = 0;
    do {
        rc = store_crypt_read(r, buf + *n, piece, &got, err);
        *n += got;
    } while (rc == MD_OK && got > 0);
    store_crypt_reader_free(r);
    if (rc == MD_OK)
        assert_int_equal(*n, size);
    *out = buf;
    return rc;
}

static void test_round_trips(void **state)
{
    (void)state;
    char *dir = tu_mkdir();
    char path[512];
    snprintf(path, sizeof path, "%s/blob", dir);
    store_keyring *kr = tu_keyring(K1_HEX, NULL);
    const size_t C = STORE_CRYPT_CHUNK;
    const size_t sizes[] = {0, 1, 16, C - 1, C, C + 1, 2 * C, 3 * C + 5};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *data = pattern(sizes[i]);
        write_file(kr, path, data, sizes[i]);
        size_t fn = 0;
        unsigned char *raw = tu_slurp(path, &fn);
        assert_non_null(raw);
        if (sizes[i] >= 16)
            assert_null(memmem(raw, fn, "PLAINTEXT-MARKER", 16));
        free(raw);
        const size_t pieces[] = {1000, C, 3 * C};
        for (size_t p = 0; p < 3; p++) {
            uint8_t *back = NULL;
            size_t n = 0;
            assert_int_equal(read_file(kr, path, pieces[p], &back, &n, NULL), MD_OK);
            assert_int_equal(n, sizes[i]);
            if (n)
                assert_memory_equal(back, data, n);
            free(back);
        }
        free(data);
    }
    store_keyring_free(kr);
    tu_rmdir(dir);
}

static void test_wrong_key_and_tampering(void **state)
{
    (void)state;
    char *dir = tu_mkdir();
    char path[512];
    snprintf(path, sizeof path, "%s/blob", dir);
    store_keyring *k1 = tu_keyring(K1_HEX, NULL), *k2 = tu_keyring(K2_B64, NULL);
    size_t n = 2 * STORE_CRYPT_CHUNK + 100;
    uint8_t *data = pattern(n), *back = NULL;
    write_file(k1, path, data, n);
    md_err e;
    size_t got = 0;
    /* a keyring without the blob's key: a clear error naming the key id */
    assert_int_equal(read_file(k2, path, 4096, &back, &got, &e), MD_E_IO);
    char id[STORE_KEY_ID_HEX];
    store_keyring_write_id(k1, id);
    assert_non_null(strstr(e.msg, id));
    assert_non_null(strstr(e.msg, "not configured"));
    /* one flipped ciphertext byte in the second chunk: the first chunk reads, then an error */
    size_t fn = 0;
    unsigned char *raw = tu_slurp(path, &fn);
    raw[40 + STORE_CRYPT_CHUNK + 17 + 5] ^= 1;
    FILE *f = fopen(path, "wb");
    fwrite(raw, 1, fn, f);
    fclose(f);
    assert_int_equal(read_file(k1, path, 4096, &back, &got, &e), MD_E_IO);
    assert_non_null(strstr(e.msg, "authentication"));
    assert_true(got <= STORE_CRYPT_CHUNK);
    free(back);
    /* a header naming another key fails too (the key id is authenticated) */
    raw[40 + STORE_CRYPT_CHUNK + 17 + 5] ^= 1;
    raw[8] ^= 1;
    f = fopen(path, "wb");
    fwrite(raw, 1, fn, f);
    fclose(f);
    assert_int_equal(read_file(k1, path, 4096, &back, &got, &e), MD_E_IO);
    raw[8] ^= 1;
    /* truncated at a chunk boundary (no final chunk) and extended: errors */
    f = fopen(path, "wb");
    fwrite(raw, 1, 40 + STORE_CRYPT_CHUNK + 17, f);
    fclose(f);
    assert_int_equal(read_file(k1, path, 4096, &back, &got, &e), MD_E_IO);
    free(back);
    f = fopen(path, "wb");
    fwrite(raw, 1, fn, f);
    fwrite("x", 1, 1, f);
    fclose(f);
    assert_int_equal(read_file(k1, path, 4096, &back, &got, &e), MD_E_IO);
    free(back);
    /* a plain file is not taken for an encrypted one */
    f = fopen(path, "wb");
    fwrite(data, 1, 100, f);
    fclose(f);
    int fd = open(path, O_RDONLY);
    assert_int_equal(store_crypt_is_encrypted(fd), 0);
    close(fd);
    free(raw);
    free(data);
    store_keyring_free(k1);
    store_keyring_free(k2);
    tu_rmdir(dir);
}

static void test_rotation(void **state)
{
    (void)state;
    char *dir = tu_mkdir();
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/old", dir);
    snprintf(b, sizeof b, "%s/new", dir);
    store_keyring *old = tu_keyring(K1_HEX, NULL), *rotated = tu_keyring(K2_B64, K1_HEX);
    uint8_t *data = pattern(70000), *back = NULL;
    write_file(old, a, data, 70000);
    write_file(rotated, b, data, 70000);
    size_t n = 0;
    /* the rotated keyring reads both; the old one cannot read what the new key wrote */
    assert_int_equal(read_file(rotated, a, 4096, &back, &n, NULL), MD_OK);
    assert_memory_equal(back, data, 70000);
    free(back);
    assert_int_equal(read_file(rotated, b, 4096, &back, &n, NULL), MD_OK);
    free(back);
    assert_int_equal(read_file(old, b, 4096, &back, &n, NULL), MD_E_IO);
    char id_old[STORE_KEY_ID_HEX], id_new[STORE_KEY_ID_HEX];
    store_keyring_write_id(old, id_old);
    store_keyring_write_id(rotated, id_new);
    assert_string_not_equal(id_old, id_new);
    free(data);
    store_keyring_free(old);
    store_keyring_free(rotated);
    tu_rmdir(dir);
}

static void test_key_encodings(void **state)
{
    (void)state;
    store_keyring *kr = NULL;
    md_err e;
    assert_int_equal(store_keyring_new(&kr, NULL), MD_OK);
    assert_int_equal(store_keyring_add(kr, "abc", 3, "MODELD_ENCRYPTION_KEY", &e),
                     MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "MODELD_ENCRYPTION_KEY");
    assert_int_equal(store_keyring_add(kr, K1_HEX, 63, "k", &e), MD_E_INVALID_PARAM);
    char padded[100];
    snprintf(padded, sizeof padded, "  %s\n", K1_HEX);
    assert_int_equal(store_keyring_add(kr, padded, strlen(padded), "k", &e), MD_OK);
    assert_int_equal(store_keyring_add(kr, K1_HEX, strlen(K1_HEX), "k", &e), MD_OK);
    assert_int_equal(store_keyring_size(kr), 1); /* the same key once */
    /* URL-safe base64 without padding of the same bytes as K2_B64 */
    assert_int_equal(
        store_keyring_add(kr, "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo", 43, "k", &e), MD_OK);
    assert_int_equal(store_keyring_add(kr, K2_B64, strlen(K2_B64), "k", &e), MD_OK);
    assert_int_equal(store_keyring_size(kr), 2);
    uint8_t raw[32] = {9};
    assert_int_equal(store_keyring_add(kr, raw, 32, "k", &e), MD_OK);
    assert_int_equal(store_keyring_size(kr), 3);
    char *dir = tu_mkdir();
    char path[512];
    snprintf(path, sizeof path, "%s/key", dir);
    assert_int_equal(store_keyring_add_file(kr, path, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "encryption_key_file");
    store_crypt_writer *w = NULL;
    store_keyring *empty = NULL;
    assert_int_equal(store_keyring_new(&empty, NULL), MD_OK);
    assert_int_equal(store_crypt_writer_open(empty, 1, &w, &e), MD_E_INVALID_PARAM);
    store_keyring_free(empty);
    store_keyring_free(kr);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_wrong_key_and_tampering),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_key_encodings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
