/* blob_write.c - blobs written as streams (store_blob_writer): results made piece by piece,
 * such as a bulk job's CSV, which never fit in memory and must never sit on disk in plaintext
 * when the store encrypts at rest.
 *
 * Writer states:
 *
 *     OPEN --store_blob_writer_write--> OPEN
 *       |--store_blob_writer_commit--> (freed: the file is a blob, or removed on an error)
 *       |--store_blob_writer_reopen--> (freed: the file is unlinked, a reader holds it)
 *       \--store_blob_writer_free----> (freed: the file is removed)
 *
 * Invariants:
 *   1. With a keyring every byte reaches the file through the encrypting writer: the file under
 *      blobs/tmp is ciphertext from its first byte, so a crash mid-job leaves no plaintext (the
 *      sweeper removes the stale file after an hour).
 *   2. The blob is named by the SHA-256 of the plaintext, hashed as it is written, like every
 *      other blob (blob.c invariant 4); the commit is blob.c's (fsync, rename under the locks).
 *   3. One chunk of memory (the encrypting writer's), whatever the size.
 */
#include "store/store_int.h"

#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct store_blob_writer {
    store *s;               /* borrowed */
    char *path;             /* the file under blobs/tmp (new) */
    int fd;                 /* open for writing */
    store_crypt_writer *cw; /* with a keyring (invariant 1); NULL = plain */
    crypto_hash_sha256_state sha;
    uint64_t size;
};

int store_blob_writer_open(store *s, store_blob_writer **out, md_err *err)
{
    *out = NULL;
    store_blob_writer *w = calloc(1, sizeof *w);
    if (!w)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    w->s = s;
    int rc = store__blob_tmp_open(s, &w->path, &w->fd, err);
    if (rc == MD_OK && s->keyring)
        rc = store_crypt_writer_open(s->keyring, w->fd, &w->cw, err);
    if (rc != MD_OK) {
        store_blob_writer_free(w);
        return rc;
    }
    crypto_hash_sha256_init(&w->sha);
    *out = w;
    return MD_OK;
}

static int write_plain(store_blob_writer *w, const uint8_t *p, size_t n, md_err *err)
{
    while (n > 0) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = k == 0 ? ENOSPC : errno;
            md_log(MD_LOG_ERROR, "store: write %s: %s", w->path, strerror(e));
            return store__fail_code(store__errno_code(e), err);
        }
        p += k;
        n -= (size_t)k;
    }
    return MD_OK;
}

int store_blob_writer_write(store_blob_writer *w, const void *data, size_t n, md_err *err)
{
    crypto_hash_sha256_update(&w->sha, data, n);
    w->size += n;
    return w->cw ? store_crypt_write(w->cw, data, n, err) : write_plain(w, data, n, err);
}

uint64_t store_blob_writer_size(const store_blob_writer *w)
{
    return w->size;
}

/* The last chunk (encrypted) and the descriptor closed; the file stays at w->path. */
static int finish(store_blob_writer *w, bool durable, md_err *err)
{
    int rc = w->cw ? store_crypt_writer_finish(w->cw, err) : MD_OK;
    store_crypt_writer_free(w->cw);
    w->cw = NULL;
    if (rc == MD_OK && durable && fsync(w->fd) != 0) {
        md_log(MD_LOG_ERROR, "store: fsync %s: %s", w->path, strerror(errno));
        rc = store__fail_code(store__errno_code(errno), err);
    }
    close(w->fd);
    w->fd = -1;
    return rc;
}

int store_blob_writer_commit(store_blob_writer *w, char hex[STORE_SHA256_HEX], uint64_t *size,
                             md_err *err)
{
    int rc = finish(w, true, err);
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&w->sha, h);
    sodium_bin2hex(hex, STORE_SHA256_HEX, h, sizeof h);
    if (rc == MD_OK) { /* invariant 2; the commit removes the file on its error */
        store__lock(w->s);
        rc = store__blob_commit(w->s, w->path, hex, (size_t)w->size, true, err);
        store__unlock(w->s);
        free(w->path);
        w->path = NULL;
    }
    if (rc == MD_OK && size)
        *size = w->size;
    store_blob_writer_free(w);
    return rc;
}

int store_blob_writer_reopen(store_blob_writer *w, store_blob_reader **out, md_err *err)
{
    *out = NULL;
    int rc = finish(w, false, err);
    int fd = rc == MD_OK ? open(w->path, O_RDONLY | O_CLOEXEC) : -1;
    if (rc == MD_OK && fd < 0) {
        md_log(MD_LOG_ERROR, "store: open %s: %s", w->path, strerror(errno));
        rc = store__fail_code(store__errno_code(errno), err);
    }
    if (rc == MD_OK)
        rc = store__blob_reader_over(w->s, fd, "scratch file", out, err);
    store_blob_writer_free(w); /* unlinks the file: the reader holds it */
    return rc;
}

void store_blob_writer_free(store_blob_writer *w)
{
    if (!w)
        return;
    store_crypt_writer_free(w->cw);
    if (w->fd >= 0)
        close(w->fd);
    if (w->path) {
        unlink(w->path);
        free(w->path);
    }
    free(w);
}
