/* blob_reply.c - a blob as an HTTP body (api__reply_blob): the result downloads of
 * GET /api/result/{id}, GET /api/v1/jobs/{id}/result and the bulk results.
 *
 * Invariants:
 *   1. A plain blob (no encryption at rest) is sent from its file descriptor, so libmicrohttpd
 *      can use sendfile: no copy through user space, as before encryption existed.
 *   2. An encrypted blob is decrypted chunk by chunk while it is sent (http_reply_stream), so a
 *      download holds one chunk of memory whatever its size, and never touches the disk in
 *      plaintext. Each chunk is authenticated before it is sent; a chunk that fails (the file
 *      edited or truncated on disk) cuts the connection short rather than send bad bytes.
 *   3. The file is opened before the handler returns, so a sweep deleting the blob afterwards
 *      does not cut the answer (the open descriptor keeps the inode).
 */
#include "api/api_int.h"

static int read_blob(void *ctx, void *buf, size_t cap, size_t *got)
{
    return store_blob_reader_read(ctx, buf, cap, got, NULL);
}

static void release_blob(void *ctx)
{
    store_blob_reader_free(ctx);
}

int api__reply_blob(http_req *req, int status, const char *content_type, store_blob_reader *r)
{
    uint64_t size = store_blob_reader_size(r);
    int fd = store_blob_reader_take_fd(r);
    if (fd >= 0) { /* invariant 1 */
        store_blob_reader_free(r);
        return http_reply_fd(req, status, content_type, fd, size);
    }
    return http_reply_stream(req, status, content_type, size, read_blob, release_blob, r);
}
