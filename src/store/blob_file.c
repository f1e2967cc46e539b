/* blob_file.c - blobs made from files rather than from memory: a 100 MB bulk upload spooled by
 * the HTTP layer is renamed into the blob store, a part of a spooled multipart body is copied in
 * blocks, and a bulk job's result CSV is written to a blobs/tmp file and adopted at the end. The
 * memory any of these takes is one block, whatever the blob's size.
 *
 * Invariants (with blob.c's):
 *   1. A file becomes a blob only once it is hashed and fsync'd; the move into place is blob.c's
 *      store__blob_commit (rename under the store lock), so readers never see a partial blob.
 *   2. store_blob_adopt consumes its file whatever the outcome: it is renamed into place, or
 *      removed on an error, so no caller has to tell the two apart to clean up.
 *   3. The rename never crosses file systems: a file elsewhere is copied into blobs/tmp first.
 */
#include "store/store_int.h"

#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK ((size_t)1 << 20)

static int io_fail(const char *what, const char *path, md_err *err)
{
    int e = errno;
    md_log(MD_LOG_ERROR, "store: %s %s: %s", what, path, strerror(e));
    return store__fail_code(store__errno_code(e), err);
}

int store_blob_tmp(store *s, char **path, md_err *err)
{
    /* An empty file: the caller writes plaintext from offset 0, which store_blob_adopt
     * encrypts when a keyring is set (an encrypted empty blob here would leave its header
     * behind a short result). */
    int fd = -1;
    int rc = store__blob_tmp_open(s, path, &fd, err); /* blobs/tmp/<random>.tmp */
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Write one block to out: as is, or through the encrypting writer w (blob.c invariant 4). */
static int put_block(int out, store_crypt_writer *w, const uint8_t *buf, size_t n,
                     const char *what, md_err *err)
{
    if (w)
        return store_crypt_write(w, buf, n, err);
    for (size_t done = 0; done < n;) {
        ssize_t k = write(out, buf + done, n - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return io_fail("write", what, err);
        done += (size_t)k;
    }
    return MD_OK;
}

/* Hash (and, when out >= 0, copy to out, encrypted when w is set) the len bytes at off of fd,
 * in blocks. */
static int hash_range(int fd, uint64_t off, uint64_t len, int out, store_crypt_writer *w,
                      char hex[STORE_SHA256_HEX], const char *what, md_err *err)
{
    uint8_t *buf = malloc(BLOCK);
    if (!buf)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    int rc = MD_OK;
    for (uint64_t done = 0; rc == MD_OK && done < len;) {
        size_t want = len - done < BLOCK ? (size_t)(len - done) : BLOCK;
        ssize_t got = pread(fd, buf, want, (off_t)(off + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0)
                errno = EIO; /* shorter than it should be */
            rc = io_fail("read", what, err);
            break;
        }
        crypto_hash_sha256_update(&st, buf, (size_t)got);
        if (out >= 0)
            rc = put_block(out, w, buf, (size_t)got, what, err);
        done += (uint64_t)got;
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(hex, STORE_SHA256_HEX, h, sizeof h);
    free(buf);
    return rc;
}

/* Copy a range of fd into a new fsync'd blobs/tmp file and commit it as a blob. */
static int put_range(store *s, int fd, uint64_t off, uint64_t len, char hex[STORE_SHA256_HEX],
                     md_err *err)
{
    char *tmp = NULL;
    int rc = store_blob_tmp(s, &tmp, err);
    if (rc != MD_OK)
        return rc;
    int out = open(tmp, O_WRONLY | O_TRUNC | O_CLOEXEC);
    store_crypt_writer *w = NULL;
    if (out < 0)
        rc = io_fail("open", tmp, err);
    if (rc == MD_OK && s->keyring)
        rc = store_crypt_writer_open(s->keyring, out, &w, err);
    if (rc == MD_OK)
        rc = hash_range(fd, off, len, out, w, hex, tmp, err);
    if (rc == MD_OK && w)
        rc = store_crypt_writer_finish(w, err);
    store_crypt_writer_free(w);
    if (rc == MD_OK && fsync(out) != 0)
        rc = io_fail("fsync", tmp, err);
    if (out >= 0)
        close(out);
    if (rc == MD_OK) {
        store__lock(s);
        rc = store__blob_commit(s, tmp, hex, (size_t)len, true, err); /* removes tmp on error */
        store__unlock(s);
    } else {
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

int store_blob_put_range(store *s, int fd, uint64_t off, uint64_t len, char hex[STORE_SHA256_HEX],
                         md_err *err)
{
    return put_range(s, fd, off, len, hex, err);
}

/* Whether path is on the blob store's file system (invariant 3). */
static bool same_fs(const store *s, const struct stat *st)
{
    struct stat b;
    return stat(s->blob_dir, &b) == 0 && b.st_dev == st->st_dev;
}

int store_blob_adopt(store *s, const char *path, char hex[STORE_SHA256_HEX], uint64_t *size,
                     md_err *err)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    int rc = MD_OK;
    if (fd < 0 || fstat(fd, &st) != 0)
        rc = io_fail("open", path, err);
    /* With encryption the plain file cannot become the blob: it is encrypted into blobs/tmp
     * like a file from elsewhere, and removed. */
    bool local = rc == MD_OK && same_fs(s, &st) && !s->keyring;
    if (rc == MD_OK && !local) /* copied into blobs/tmp; the original is removed below */
        rc = put_range(s, fd, 0, (uint64_t)st.st_size, hex, err);
    if (local)
        rc = hash_range(fd, 0, (uint64_t)st.st_size, -1, NULL, hex, path, err);
    if (local && rc == MD_OK && fsync(fd) != 0)
        rc = io_fail("fsync", path, err);
    if (fd >= 0)
        close(fd);
    if (local && rc == MD_OK) { /* renamed into place, or removed by the commit on its error */
        store__lock(s);
        rc = store__blob_commit(s, path, hex, (size_t)st.st_size, true, err);
        store__unlock(s);
    } else {
        unlink(path); /* invariant 2 */
    }
    if (rc == MD_OK && size)
        *size = (uint64_t)st.st_size;
    return rc;
}
