/* blob_crypt.c - encryption at rest of blob files: a keyring (one write key, any number of
 * older read keys) and the encrypted file format, written and read in chunks so that a blob of
 * any size takes one chunk of memory (libsodium secretstream, XChaCha20-Poly1305).
 *
 * File format (all of it authenticated):
 *
 *     "MDENC1\0\0" (8) | key id (8) | secretstream header (24) | chunk | chunk | ... | chunk
 *     chunk = XChaCha20-Poly1305 of up to CRYPT_CHUNK plaintext bytes + 17 bytes (tag + MAC);
 *             every chunk but the last holds exactly CRYPT_CHUNK bytes and has TAG_MESSAGE,
 *             the last (0..CRYPT_CHUNK bytes) TAG_FINAL.
 *
 * The first 16 bytes (magic + key id) are the additional data of every chunk, so a header
 * edited to name another key fails authentication. The key id is the first 8 bytes of
 * BLAKE2b-256("modeld blob key" || key): it names the key without revealing it.
 *
 * Reader states:
 *
 *     OPEN --store_crypt_read--> OPEN ... --(TAG_FINAL pulled)--> DONE --read--> DONE (0 bytes)
 *       \--(MAC failure / truncation)--> FAILED (every later read fails the same way)
 *
 * Invariants:
 *   1. Plaintext is returned only after its chunk's MAC checked: a wrong key, an edited byte, a
 *      truncated file (no TAG_FINAL) or bytes after TAG_FINAL give an error, never garbage.
 *   2. Keys live in sodium_malloc'd memory, wiped on free; the keyring is read-only after
 *      setup, so readers on many threads share it.
 *   3. A reader and a writer hold one chunk of plaintext and one of ciphertext, whatever the
 *      blob's size.
 */
#include "store/store_int.h"

#include "base/log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "MDENC1\0\0"
#define MAGIC_LEN 8
#define KID_LEN 8
#define AD_LEN (MAGIC_LEN + KID_LEN)
#define SS_HDR crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define SS_A crypto_secretstream_xchacha20poly1305_ABYTES
#define KEYRING_MAX 16

typedef struct crypt_key {
    uint8_t id[KID_LEN];
    uint8_t *key; /* sodium_malloc'd, crypto_secretstream_xchacha20poly1305_KEYBYTES */
} crypt_key;

struct store_keyring {
    crypt_key keys[KEYRING_MAX]; /* keys[0] is the write key */
    size_t n;
};

/* ---- the keyring -------------------------------------------------------------------- */

int store_keyring_new(store_keyring **out, md_err *err)
{
    *out = NULL;
    if (sodium_init() < 0)
        return md_fail(err, MD_E_INTERNAL, NULL, "crypto library failed to start");
    *out = calloc(1, sizeof **out);
    return *out ? MD_OK : md_fail(err, MD_E_NOMEM, NULL, NULL);
}

void store_keyring_free(store_keyring *kr)
{
    if (!kr)
        return;
    for (size_t i = 0; i < kr->n; i++)
        sodium_free(kr->keys[i].key);
    free(kr);
}

/* Decode a key: 32 raw bytes, 64 hex digits, or base64 (standard or URL-safe, padded or not)
 * of 32 bytes, surrounding whitespace ignored. 0 or -1. */
static int decode_key(const char *p, size_t n, uint8_t out[32])
{
    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    while (n > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    size_t got = 0;
    if (n == 64 && sodium_hex2bin(out, 32, p, n, NULL, &got, NULL) == 0 && got == 32)
        return 0;
    static const int variants[] = {
        sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++)
        if (sodium_base642bin(out, 32, p, n, NULL, &got, NULL, variants[i]) == 0 && got == 32)
            return 0;
    return -1;
}

int store_keyring_add(store_keyring *kr, const void *text, size_t n, const char *source,
                      md_err *err)
{
    const char *what = source ? source : "encryption key";
    if (kr->n == KEYRING_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, what, "at most %d encryption keys", KEYRING_MAX);
    uint8_t *key = sodium_malloc(crypto_secretstream_xchacha20poly1305_KEYBYTES);
    if (!key)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int ok = n == 32 ? (memcpy(key, text, 32), 1) : decode_key(text, n, key) == 0;
    if (!ok) {
        sodium_free(key);
        return md_fail(err, MD_E_INVALID_PARAM, what,
                       "must be 32 bytes: raw, 64 hex digits or base64");
    }
    crypt_key *k = &kr->keys[kr->n];
    uint8_t h[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const uint8_t *)"modeld blob key", 15);
    crypto_generichash_update(&st, key, 32);
    crypto_generichash_final(&st, h, sizeof h);
    memcpy(k->id, h, KID_LEN);
    for (size_t i = 0; i < kr->n; i++)
        if (memcmp(kr->keys[i].id, k->id, KID_LEN) == 0) {
            sodium_free(key);
            return MD_OK; /* the same key twice (write key also listed as old): once */
        }
    k->key = key;
    kr->n++;
    return MD_OK;
}

int store_keyring_add_file(store_keyring *kr, const char *path, md_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return md_fail(err, MD_E_INVALID_PARAM, "encryption_key_file", "cannot open %s: %s", path,
                       strerror(errno));
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n <= 0 || (size_t)n == sizeof buf) {
        sodium_memzero(buf, sizeof buf);
        return md_fail(err, MD_E_INVALID_PARAM, "encryption_key_file",
                       "%s: must hold one 32-byte key (raw, hex or base64)", path);
    }
    int rc = store_keyring_add(kr, buf, (size_t)n, "encryption_key_file", err);
    sodium_memzero(buf, sizeof buf);
    return rc;
}

size_t store_keyring_size(const store_keyring *kr)
{
    return kr ? kr->n : 0;
}

void store_keyring_write_id(const store_keyring *kr, char out[STORE_KEY_ID_HEX])
{
    out[0] = '\0';
    if (kr && kr->n)
        sodium_bin2hex(out, 2 * KID_LEN + 1, kr->keys[0].id, KID_LEN);
}

static const crypt_key *find_key(const store_keyring *kr, const uint8_t id[KID_LEN])
{
    for (size_t i = 0; i < kr->n; i++)
        if (memcmp(kr->keys[i].id, id, KID_LEN) == 0)
            return &kr->keys[i];
    return NULL;
}

uint64_t store__crypt_file_size(uint64_t n)
{
    uint64_t chunks = n == 0 ? 1 : (n + STORE_CRYPT_CHUNK - 1) / STORE_CRYPT_CHUNK;
    return AD_LEN + SS_HDR + n + chunks * SS_A;
}

/* ---- writing -------------------------------------------------------------------------- */

struct store_crypt_writer {
    int fd; /* borrowed */
    crypto_secretstream_xchacha20poly1305_state st;
    uint8_t ad[AD_LEN];
    uint8_t *plain;  /* CRYPT_CHUNK bytes */
    uint8_t *cipher; /* CRYPT_CHUNK + SS_A bytes */
    size_t have;
};

static int put_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int store_crypt_writer_open(const store_keyring *kr, int fd, store_crypt_writer **out, md_err *err)
{
    *out = NULL;
    if (!kr || kr->n == 0)
        return md_fail(err, MD_E_INVALID_PARAM, "encryption_key", "no encryption key");
    store_crypt_writer *w = calloc(1, sizeof *w);
    uint8_t *plain = w ? malloc(STORE_CRYPT_CHUNK) : NULL;
    uint8_t *cipher = plain ? malloc(STORE_CRYPT_CHUNK + SS_A) : NULL;
    if (!cipher) {
        free(plain);
        free(w);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    w->fd = fd;
    w->plain = plain;
    w->cipher = cipher;
    memcpy(w->ad, MAGIC, MAGIC_LEN);
    memcpy(w->ad + MAGIC_LEN, kr->keys[0].id, KID_LEN);
    uint8_t hdr[AD_LEN + SS_HDR];
    memcpy(hdr, w->ad, AD_LEN);
    crypto_secretstream_xchacha20poly1305_init_push(&w->st, hdr + AD_LEN, kr->keys[0].key);
    if (put_all(fd, hdr, sizeof hdr) != 0) {
        int rc = store__fail_code(store__errno_code(errno), err);
        store_crypt_writer_free(w);
        return rc;
    }
    *out = w;
    return MD_OK;
}

static int push(store_crypt_writer *w, unsigned char tag, md_err *err)
{
    unsigned long long clen = 0;
    crypto_secretstream_xchacha20poly1305_push(&w->st, w->cipher, &clen, w->plain, w->have, w->ad,
                                               AD_LEN, tag);
    w->have = 0;
    if (put_all(w->fd, w->cipher, (size_t)clen) != 0)
        return store__fail_code(store__errno_code(errno), err);
    return MD_OK;
}

int store_crypt_write(store_crypt_writer *w, const void *data, size_t n, md_err *err)
{
    const uint8_t *p = data;
    while (n > 0) {
        /* A full chunk is pushed only once more data arrives, so the last one is FINAL. */
        if (w->have == STORE_CRYPT_CHUNK) {
            int rc = push(w, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE, err);
            if (rc != MD_OK)
                return rc;
        }
        size_t take = STORE_CRYPT_CHUNK - w->have < n ? STORE_CRYPT_CHUNK - w->have : n;
        memcpy(w->plain + w->have, p, take);
        w->have += take;
        p += take;
        n -= take;
    }
    return MD_OK;
}

int store_crypt_writer_finish(store_crypt_writer *w, md_err *err)
{
    return push(w, crypto_secretstream_xchacha20poly1305_TAG_FINAL, err);
}

void store_crypt_writer_free(store_crypt_writer *w)
{
    if (!w)
        return;
    sodium_memzero(&w->st, sizeof w->st);
    sodium_memzero(w->plain, STORE_CRYPT_CHUNK);
    free(w->plain);
    free(w->cipher);
    free(w);
}

/* ---- reading -------------------------------------------------------------------------- */

typedef enum { RD_OPEN, RD_DONE, RD_FAILED } rd_state;

struct store_crypt_reader {
    int fd; /* owned */
    rd_state state;
    crypto_secretstream_xchacha20poly1305_state st;
    uint8_t ad[AD_LEN];
    uint8_t *plain; /* one decrypted chunk */
    uint8_t *cipher;
    size_t have, pos; /* plain[pos..have) not yet returned */
    uint64_t size;    /* plaintext bytes, from the file size */
    md_err fail;      /* why FAILED */
};

#ifndef NDEBUG
static void rd_assert_state(const store_crypt_reader *r)
{
    /* OPEN and DONE hand out plain[pos..have); FAILED hands out nothing more. */
    assert(r->pos <= r->have && r->have <= STORE_CRYPT_CHUNK);
    assert(r->state == RD_OPEN || r->state == RD_DONE || r->state == RD_FAILED);
}
#else
#define rd_assert_state(r) ((void)0)
#endif

int store_crypt_is_encrypted(int fd)
{
    uint8_t m[MAGIC_LEN];
    return pread(fd, m, MAGIC_LEN, 0) == MAGIC_LEN && memcmp(m, MAGIC, MAGIC_LEN) == 0;
}

store__crypt_kind store__crypt_kind_of(const store_keyring *kr, int fd, char id[STORE_KEY_ID_HEX])
{
    uint8_t hdr[AD_LEN];
    if (id)
        id[0] = '\0';
    if (pread(fd, hdr, AD_LEN, 0) != AD_LEN || memcmp(hdr, MAGIC, MAGIC_LEN) != 0)
        return STORE__CRYPT_PLAIN;
    if (id)
        sodium_bin2hex(id, STORE_KEY_ID_HEX, hdr + MAGIC_LEN, KID_LEN);
    const crypt_key *k = kr ? find_key(kr, hdr + MAGIC_LEN) : NULL;
    if (!k)
        return STORE__CRYPT_UNKNOWN_KEY;
    return k == &kr->keys[0] ? STORE__CRYPT_WRITE_KEY : STORE__CRYPT_OLD_KEY;
}

/* Plaintext size of an encrypted file of fsize bytes (see the format above); -1 if no file
 * of the format has that size. */
static int64_t plain_size(uint64_t fsize)
{
    if (fsize < AD_LEN + SS_HDR + SS_A)
        return -1;
    uint64_t body = fsize - AD_LEN - SS_HDR;
    uint64_t chunks = (body + STORE_CRYPT_CHUNK + SS_A - 1) / (STORE_CRYPT_CHUNK + SS_A);
    return (int64_t)(body - chunks * SS_A);
}

static int rd_fail(store_crypt_reader *r, md_err *err, const char *msg)
{
    r->state = RD_FAILED;
    md_fail(&r->fail, MD_E_IO, NULL, "%s", msg);
    md_log(MD_LOG_ERROR, "store: encrypted blob: %s", msg);
    if (err)
        *err = r->fail;
    return MD_E_IO;
}

static int read_full(int fd, uint8_t *p, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        ssize_t r = read(fd, p + *got, n - *got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return 0;
}

static int open_header(store_crypt_reader *r, const store_keyring *kr, md_err *err)
{
    uint8_t hdr[AD_LEN + SS_HDR];
    size_t got = 0;
    if (read_full(r->fd, hdr, sizeof hdr, &got) != 0 || got != sizeof hdr ||
        memcmp(hdr, MAGIC, MAGIC_LEN) != 0)
        return rd_fail(r, err, "not an encrypted blob (bad header)");
    memcpy(r->ad, hdr, AD_LEN);
    const crypt_key *k = kr ? find_key(kr, hdr + MAGIC_LEN) : NULL;
    if (!k) {
        char id[2 * KID_LEN + 1];
        sodium_bin2hex(id, sizeof id, hdr + MAGIC_LEN, KID_LEN);
        char msg[200];
        snprintf(msg, sizeof msg,
                 "blob encrypted with key %s, which is not configured (pass it with "
                 "--encryption-old-key-file)",
                 id);
        return rd_fail(r, err, msg);
    }
    if (crypto_secretstream_xchacha20poly1305_init_pull(&r->st, hdr + AD_LEN, k->key) != 0)
        return rd_fail(r, err, "bad encrypted blob header");
    return MD_OK;
}

int store_crypt_reader_open(const store_keyring *kr, int fd, store_crypt_reader **out, md_err *err)
{
    *out = NULL;
    struct stat sb;
    int64_t size = fstat(fd, &sb) == 0 ? plain_size((uint64_t)sb.st_size) : -1;
    store_crypt_reader *r = calloc(1, sizeof *r);
    uint8_t *plain = r ? malloc(STORE_CRYPT_CHUNK) : NULL;
    uint8_t *cipher = plain ? malloc(STORE_CRYPT_CHUNK + SS_A) : NULL;
    if (!cipher) {
        free(plain);
        free(r);
        close(fd);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    r->fd = fd;
    r->plain = plain;
    r->cipher = cipher;
    int rc = size < 0 ? rd_fail(r, err, "encrypted blob truncated") : open_header(r, kr, err);
    if (rc != MD_OK) {
        store_crypt_reader_free(r);
        return rc;
    }
    r->size = (uint64_t)size;
    *out = r;
    return MD_OK;
}

uint64_t store_crypt_reader_size(const store_crypt_reader *r)
{
    return r->size;
}

/* Pull the next chunk into plain (OPEN -> OPEN or DONE, or FAILED). */
static int pull(store_crypt_reader *r, md_err *err)
{
    size_t got = 0;
    if (read_full(r->fd, r->cipher, STORE_CRYPT_CHUNK + SS_A, &got) != 0)
        return rd_fail(r, err, "cannot read the blob file");
    unsigned long long mlen = 0;
    unsigned char tag = 0;
    if (got < SS_A || crypto_secretstream_xchacha20poly1305_pull(
                          &r->st, r->plain, &mlen, &tag, r->cipher, got, r->ad, AD_LEN) != 0)
        return rd_fail(r, err, "blob fails authentication (wrong key, edited or truncated file)");
    r->have = (size_t)mlen;
    r->pos = 0;
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
        uint8_t extra;
        if (read(r->fd, &extra, 1) != 0)
            return rd_fail(r, err, "bytes after the end of an encrypted blob");
        r->state = RD_DONE;
    } else if (got != STORE_CRYPT_CHUNK + SS_A) {
        return rd_fail(r, err, "encrypted blob truncated");
    }
    return MD_OK;
}

int store_crypt_read(store_crypt_reader *r, void *buf, size_t cap, size_t *got, md_err *err)
{
    *got = 0;
    uint8_t *out = buf;
    while (*got < cap) {
        rd_assert_state(r);
        if (r->state == RD_FAILED) {
            if (err)
                *err = r->fail;
            return MD_E_IO;
        }
        if (r->pos == r->have) {
            if (r->state == RD_DONE)
                break;
            int rc = pull(r, err);
            if (rc != MD_OK)
                return rc;
            continue;
        }
        size_t take = r->have - r->pos < cap - *got ? r->have - r->pos : cap - *got;
        memcpy(out + *got, r->plain + r->pos, take);
        r->pos += take;
        *got += take;
    }
    return MD_OK;
}

void store_crypt_reader_free(store_crypt_reader *r)
{
    if (!r)
        return;
    close(r->fd);
    sodium_memzero(&r->st, sizeof r->st);
    sodium_memzero(r->plain, STORE_CRYPT_CHUNK);
    free(r->plain);
    free(r->cipher);
    free(r);
}
