/* blob.c - content-addressed files under <data>/blobs/: a blob is named by the SHA-256 of its
 * bytes (blobs/ab/cd/<64 hex>), so the same upload stored twice takes the space once and a
 * name always matches its content.
 *
 * Invariants:
 *   1. Readers never see a partly written blob: bytes go to blobs/tmp/ first and are renamed
 *      into place (rename is atomic). A durable put (uploads: user data) also fsyncs the file
 *      before the rename and the directory after it, so the blob survives a power loss. A
 *      non-durable put (conversion results: derived data, see store.h) skips both fsyncs; after
 *      a power loss such a file may be empty or short, which is why store_results_get compares
 *      the size with the row (and why a put repairs an existing blob of the wrong size).
 *   2. A blob's mtime is the store clock's time of its last put; the sweeper never deletes a
 *      blob put within the grace period, so a put followed by the insert of the row that
 *      references it cannot lose the file to a sweep running in between.
 *   3. Moving into place happens with the store lock held (store__blob_commit), ordering puts
 *      against the sweeper's check-then-unlink.
 *   4. With a keyring (store_opts.keyring) every byte written under blobs/ is ciphertext
 *      (blob_crypt.c's format); the blob is still named by the SHA-256 of its plaintext.
 *      store_blob_read tells the two kinds apart by the header, so blobs written before
 *      encryption was turned on stay readable.
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

int store__blob_valid_hex(const char *hex)
{
    if (!hex)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return 0;
    return hex[64] == '\0';
}

int store_blob_path(const store *s, const char *hex, char *out, size_t cap, md_err *err)
{
    if (!store__blob_valid_hex(hex))
        return md_fail(err, MD_E_INVALID_PARAM, "sha256", "not a SHA-256 hex digest");
    int n = snprintf(out, cap, "%s/%.2s/%.2s/%s", s->blob_dir, hex, hex + 2, hex);
    if (n < 0 || (size_t)n >= cap)
        return md_fail(err, MD_E_TOO_LARGE, NULL, "path buffer too small");
    return MD_OK;
}

/* Log errno's failure and fill err: MD_E_STORAGE_FULL for ENOSPC / EDQUOT, else MD_E_IO. */
static int io_fail(const char *what, const char *path, md_err *err)
{
    int e = errno;
    md_log(MD_LOG_ERROR, "store: %s %s: %s", what, path, strerror(e));
    return store__fail_code(store__errno_code(e), err);
}

static int write_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC; /* a regular file takes no bytes only when it cannot grow */
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write data to fd: as is, or encrypted under the keyring's write key (invariant 4). */
static int write_content(store *s, int fd, const void *data, size_t n, md_err *err)
{
    if (!s->keyring)
        return write_all(fd, data, n) == 0 ? MD_OK : store__fail_code(store__errno_code(errno), err);
    store_crypt_writer *w = NULL;
    int rc = store_crypt_writer_open(s->keyring, fd, &w, err);
    if (rc == MD_OK)
        rc = store_crypt_write(w, data, n, err);
    if (rc == MD_OK)
        rc = store_crypt_writer_finish(w, err);
    store_crypt_writer_free(w);
    return rc;
}

int store__blob_tmp_open(store *s, char **tmp_path, int *fd, md_err *err)
{
    *tmp_path = NULL;
    *fd = -1;
    size_t cap = strlen(s->blob_dir) + 64;
    char *path = malloc(cap);
    if (!path)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    snprintf(path, cap, "%s/tmp", s->blob_dir);
    if ((mkdir(s->blob_dir, 0700) != 0 && errno != EEXIST) ||
        (mkdir(path, 0700) != 0 && errno != EEXIST)) {
        int rc = io_fail("mkdir", path, err);
        free(path);
        return rc;
    }
    char rnd[33];
    store__random_hex(rnd, 16);
    snprintf(path, cap, "%s/tmp/%s.tmp", s->blob_dir, rnd);
    *fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (*fd < 0) {
        int rc = io_fail("create", path, err);
        free(path);
        return rc;
    }
    *tmp_path = path;
    return MD_OK;
}

int store__blob_write_tmp(store *s, const void *data, size_t n, bool durable, char **tmp_path,
                          md_err *err)
{
    int fd = -1;
    char *path = NULL;
    int rc = store__blob_tmp_open(s, &path, &fd, err);
    if (rc != MD_OK)
        return rc;
    rc = write_content(s, fd, data, n, err);
    if (rc == MD_OK && durable && fsync(fd) != 0)
        rc = io_fail("fsync", path, err);
    close(fd);
    if (rc != MD_OK) {
        unlink(path);
        free(path);
        return rc;
    }
    *tmp_path = path;
    return MD_OK;
}

/* Set a file's mtime to the store clock's wall time (invariant 2). */
static void stamp(store *s, const char *path)
{
    int64_t ms = md_clock_wall_ms(s->clock);
    struct timespec ts[2] = {{.tv_sec = 0, .tv_nsec = UTIME_OMIT},
                             {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000}};
    if (utimensat(AT_FDCWD, path, ts, 0) != 0)
        md_log(MD_LOG_WARN, "store: cannot stamp %s: %s", path, strerror(errno));
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static int blob_commit_locked(store *s, const char *tmp_path, const char *hex, size_t n,
                              bool durable, md_err *err)
{
    char path[4096];
    int rc = store_blob_path(s, hex, path, sizeof path, err);
    if (rc != MD_OK)
        return rc;
    /* Same content already stored: keep one copy. A durable put still replaces it with its
     * fsync'd file, since the existing one may come from a non-durable put not yet on disk; a
     * file of the wrong size (torn by a crash after a non-durable put) is replaced too. */
    struct stat sb;
    uint64_t want = s->keyring ? store__crypt_file_size(n) : n;
    if (!durable && stat(path, &sb) == 0 && (uint64_t)sb.st_size == want) {
        unlink(tmp_path);
        stamp(s, path);
        return MD_OK;
    }
    size_t dlen = strlen(s->blob_dir);
    path[dlen + 3] = '\0';   /* .../blobs/ab */
    int ok = mkdir(path, 0700) == 0 || errno == EEXIST;
    path[dlen + 3] = '/';
    path[dlen + 6] = '\0';   /* .../blobs/ab/cd */
    ok = ok && (mkdir(path, 0700) == 0 || errno == EEXIST);
    path[dlen + 6] = '/';
    if (!ok || rename(tmp_path, path) != 0) {
        rc = io_fail("store blob", path, err);
        unlink(tmp_path);
        return rc;
    }
    stamp(s, path);
    path[dlen + 6] = '\0';
    if (durable)
        fsync_dir(path);
    return MD_OK;
}

int store__blob_commit(store *s, const char *tmp_path, const char *hex, size_t n, bool durable,
                       md_err *err)
{
    pthread_mutex_lock(&s->blob_mu); /* store_int.h invariant 5 */
    int rc = blob_commit_locked(s, tmp_path, hex, n, durable, err);
    pthread_mutex_unlock(&s->blob_mu);
    return rc;
}

void store__sha256_hex(const void *data, size_t n, char hex[STORE_SHA256_HEX])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, data, n);
    sodium_bin2hex(hex, STORE_SHA256_HEX, h, sizeof h);
}

int store_blob_put(store *s, const void *data, size_t n, char hex[STORE_SHA256_HEX], md_err *err)
{
    store__sha256_hex(data, n, hex);
    char *tmp = NULL;
    int rc = store__blob_write_tmp(s, data, n, true, &tmp, err);
    if (rc != MD_OK)
        return rc;
    store__lock(s);
    rc = store__blob_commit(s, tmp, hex, n, true, err);
    store__unlock(s);
    free(tmp);
    return rc;
}

int store_blob_read(store *s, const char *hex, size_t max, uint8_t **data, size_t *n,
                    md_err *err)
{
    *data = NULL;
    *n = 0;
    store_blob_reader *r = NULL;
    int rc = store_blob_open(s, hex, &r, err);
    if (rc != MD_OK)
        return rc;
    uint64_t size = store_blob_reader_size(r);
    uint8_t *buf = size <= max ? malloc((size_t)size + 1) : NULL;
    if (size > max)
        rc = md_fail(err, MD_E_TOO_LARGE, NULL, "the file is larger than %zu bytes", max);
    else if (!buf)
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    size_t got = 0;
    if (rc == MD_OK)
        rc = store_blob_reader_read(r, buf, (size_t)size + 1, &got, err);
    store_blob_reader_free(r);
    if (rc == MD_OK && got != size) /* the file changed size under us: never half a blob */
        rc = md_fail(err, MD_E_IO, NULL, "the blob changed while it was read");
    if (rc != MD_OK) {
        free(buf);
        return rc;
    }
    *data = buf;
    *n = (size_t)size;
    return MD_OK;
}
