/* blob_read.c - blobs read as streams (store_blob_open): the one way any code reads a blob's
 * contents, so that a download, a job's input, a bulk CSV or a retraining dataset reads the same
 * bytes whether the blob is plain or encrypted at rest (blob_crypt.c), holding one chunk of
 * memory whatever the blob's size. Also where key rotation happens: lazy re-encryption.
 *
 * Reader states:
 *
 *     PLAIN  --store_blob_reader_read--> PLAIN ... (pread from pos; 0 bytes at the end)
 *       \--store_blob_reader_take_fd--> TAKEN (reads give 0 bytes; the caller owns the fd)
 *     CRYPT  --store_blob_reader_read--> CRYPT (store_crypt_read: chunks authenticated)
 *
 * Lazy re-encryption: with a keyring, store_blob_open first looks at the file's header. Under
 * the write key: read as it is. Plain (written before encryption was switched on) or under an
 * older key of the keyring: decrypted and re-encrypted in chunks into a blobs/tmp file under
 * the write key, fsync'd, and renamed over the blob (under s->blob_mu, and only when the blob
 * is still there: a sweep that deleted it meanwhile wins). Then the new file is opened. The
 * blob keeps its name (the SHA-256 of its plaintext), so rows need no change. Readers that
 * opened the old file keep reading the old inode. A rewrite that fails (disk full) is logged
 * and the blob read as it was; the next read tries again. Blobs nobody reads keep their old
 * key until they are read or swept: an operator who must retire a key reads them first (the
 * README's "Encryption at rest" says how).
 *
 * Invariants:
 *   1. A reader never returns a byte of an encrypted chunk before its MAC checked; a blob under
 *      a key the keyring lacks is MD_E_IO naming the key id (log and message), never garbage.
 *   2. The rewrite never leaves a partial blob: the new file is complete and fsync'd before the
 *      rename, and a failure removes the temporary file.
 *   3. Memory per reader and per rewrite: one chunk (STORE_CRYPT_CHUNK) or one block.
 */
#include "store/store_int.h"

#include "base/log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum { BR_PLAIN, BR_CRYPT, BR_TAKEN } br_state;

struct store_blob_reader {
    br_state state;
    int fd;                 /* BR_PLAIN: owned */
    store_crypt_reader *cr; /* BR_CRYPT: owns its fd */
    uint64_t size;          /* plaintext bytes */
    uint64_t pos;           /* BR_PLAIN: next offset */
};

#ifndef NDEBUG
static void br_assert_state(const store_blob_reader *r)
{
    assert(r->state != BR_PLAIN || (r->fd >= 0 && !r->cr));
    assert(r->state != BR_CRYPT || (r->fd < 0 && r->cr));
    assert(r->state != BR_TAKEN || (r->fd < 0 && !r->cr));
}
#else
#define br_assert_state(r) ((void)0)
#endif

static int io_fail(const char *what, const char *path, md_err *err)
{
    int e = errno;
    md_log(MD_LOG_ERROR, "store: %s %s: %s", what, path, strerror(e));
    return store__fail_code(store__errno_code(e), err);
}

/* ---- the reader ------------------------------------------------------------------------- */

/* store_int.h: a reader over the open file fd (stolen) of blob hex: plain, or decrypted
 * (invariant 1). */
int store__blob_reader_over(store *s, int fd, const char *hex, store_blob_reader **out, md_err *err)
{
    char id[STORE_KEY_ID_HEX];
    store__crypt_kind kind = store__crypt_kind_of(s->keyring, fd, id);
    struct stat sb;
    if (kind == STORE__CRYPT_PLAIN && fstat(fd, &sb) != 0) {
        close(fd);
        return io_fail("stat blob", hex, err);
    }
    if (kind == STORE__CRYPT_UNKNOWN_KEY) {
        close(fd);
        md_log(MD_LOG_ERROR, "store: blob %.64s is encrypted under key %s, which is %s", hex, id,
               s->keyring ? "not configured (--encryption-old-key-file)"
                          : "unknown: no encryption key is configured");
        return md_fail(err, MD_E_IO, NULL,
                       s->keyring ? "the blob is encrypted with key %s, which is not configured"
                                  : "the blob is encrypted (key %s) and no encryption key is "
                                    "configured",
                       id);
    }
    store_blob_reader *r = calloc(1, sizeof *r);
    if (!r) {
        close(fd);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    r->fd = -1;
    int rc = MD_OK;
    if (kind == STORE__CRYPT_PLAIN) {
        r->state = BR_PLAIN;
        r->fd = fd;
        r->size = (uint64_t)sb.st_size;
    } else {
        r->state = BR_CRYPT;
        rc = store_crypt_reader_open(s->keyring, fd, &r->cr, err); /* steals fd */
        r->size = rc == MD_OK ? store_crypt_reader_size(r->cr) : 0;
    }
    if (rc != MD_OK) {
        free(r);
        return rc;
    }
    br_assert_state(r);
    *out = r;
    return MD_OK;
}

uint64_t store_blob_reader_size(const store_blob_reader *r)
{
    return r->size;
}

static int read_plain(store_blob_reader *r, uint8_t *buf, size_t cap, size_t *got, md_err *err)
{
    while (*got < cap) {
        ssize_t k = pread(r->fd, buf + *got, cap - *got, (off_t)r->pos);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return io_fail("read", "blob", err);
        if (k == 0)
            break;
        *got += (size_t)k;
        r->pos += (uint64_t)k;
    }
    return MD_OK;
}

int store_blob_reader_read(store_blob_reader *r, void *buf, size_t cap, size_t *got, md_err *err)
{
    br_assert_state(r);
    *got = 0;
    if (r->state == BR_PLAIN)
        return read_plain(r, buf, cap, got, err);
    if (r->state == BR_CRYPT)
        return store_crypt_read(r->cr, buf, cap, got, err);
    return MD_OK; /* BR_TAKEN */
}

int store_blob_reader_take_fd(store_blob_reader *r)
{
    br_assert_state(r);
    if (r->state != BR_PLAIN)
        return -1;
    int fd = r->fd;
    r->fd = -1;
    r->state = BR_TAKEN;
    return fd;
}

void store_blob_reader_free(store_blob_reader *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    store_crypt_reader_free(r->cr);
    free(r);
}

/* ---- lazy re-encryption ----------------------------------------------------------------- */

/* Copy everything src gives into w, a chunk at a time (invariant 3). */
static int copy_encrypted(store_blob_reader *src, store_crypt_writer *w, md_err *err)
{
    uint8_t *buf = malloc(STORE_CRYPT_CHUNK);
    if (!buf)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = MD_OK;
    uint64_t total = 0;
    for (size_t got = 1; rc == MD_OK && got > 0;) {
        rc = store_blob_reader_read(src, buf, STORE_CRYPT_CHUNK, &got, err);
        if (rc == MD_OK && got > 0)
            rc = store_crypt_write(w, buf, got, err);
        total += got;
    }
    if (rc == MD_OK && total != store_blob_reader_size(src))
        rc = md_fail(err, MD_E_IO, NULL, "the blob changed while it was re-encrypted");
    free(buf);
    return rc;
}

/* Rename tmp over path unless the blob was deleted meanwhile (invariant 2). */
static int replace_blob(store *s, const char *tmp, const char *path, md_err *err)
{
    pthread_mutex_lock(&s->blob_mu); /* store_int.h invariant 5: ordered against the sweeper */
    struct stat sb;
    int rc = MD_OK;
    if (stat(path, &sb) != 0)
        rc = md_fail(err, MD_E_FILE_NOT_FOUND, "sha256", "no such blob");
    else if (rename(tmp, path) != 0)
        rc = io_fail("rename", path, err);
    pthread_mutex_unlock(&s->blob_mu);
    if (rc != MD_OK)
        unlink(tmp);
    return rc;
}

/* Rewrite the blob at path (src: a reader over it, borrowed) under the write key. */
static int reencrypt(store *s, store_blob_reader *src, const char *path, md_err *err)
{
    char *tmp = NULL;
    int fd = -1;
    int rc = store__blob_tmp_open(s, &tmp, &fd, err);
    if (rc != MD_OK)
        return rc;
    store_crypt_writer *w = NULL;
    rc = store_crypt_writer_open(s->keyring, fd, &w, err);
    if (rc == MD_OK)
        rc = copy_encrypted(src, w, err);
    if (rc == MD_OK)
        rc = store_crypt_writer_finish(w, err);
    store_crypt_writer_free(w);
    if (rc == MD_OK && fsync(fd) != 0)
        rc = io_fail("fsync", tmp, err);
    close(fd);
    if (rc == MD_OK)
        rc = replace_blob(s, tmp, path, err);
    else
        unlink(tmp);
    free(tmp);
    return rc;
}

/* Whether the blob open on fd should be rewritten under the write key (and which key it is
 * under now, for the log). */
static bool wants_rewrite(const store *s, int fd, char id[STORE_KEY_ID_HEX])
{
    if (!s->keyring || store_keyring_size(s->keyring) == 0)
        return false;
    store__crypt_kind k = store__crypt_kind_of(s->keyring, fd, id);
    return k == STORE__CRYPT_PLAIN || k == STORE__CRYPT_OLD_KEY;
}

static int open_path(const char *path, int *fd, md_err *err)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd >= 0)
        return MD_OK;
    if (errno == ENOENT)
        return md_fail(err, MD_E_FILE_NOT_FOUND, "sha256", "no such blob");
    return io_fail("open", path, err);
}

int store_blob_open(store *s, const char *hex, store_blob_reader **out, md_err *err)
{
    *out = NULL;
    char path[4096], id[STORE_KEY_ID_HEX];
    int fd = -1;
    int rc = store_blob_path(s, hex, path, sizeof path, err);
    if (rc == MD_OK)
        rc = open_path(path, &fd, err);
    if (rc != MD_OK || !wants_rewrite(s, fd, id))
        return rc == MD_OK ? store__blob_reader_over(s, fd, hex, out, err) : rc;
    store_blob_reader *old = NULL;
    rc = store__blob_reader_over(s, fd, hex, &old, err);
    md_err e;
    md_err_clear(&e);
    int wrc = rc == MD_OK ? reencrypt(s, old, path, &e) : rc;
    store_blob_reader_free(old);
    if (rc != MD_OK)
        return rc;
    char now[STORE_KEY_ID_HEX];
    store_keyring_write_id(s->keyring, now);
    if (wrc == MD_OK)
        md_log(MD_LOG_INFO, "store: blob %.64s re-encrypted under key %s (was %s)", hex, now,
               id[0] ? id : "plain");
    else if (wrc != MD_E_FILE_NOT_FOUND)
        md_log(MD_LOG_WARN, "store: blob %.64s not re-encrypted (%s); read as it is", hex,
               md_err_message(&e));
    rc = open_path(path, &fd, err);
    return rc == MD_OK ? store__blob_reader_over(s, fd, hex, out, err) : rc;
}
