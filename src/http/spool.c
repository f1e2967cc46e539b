/* spool.c - request bodies written to a file as they arrive (http_route_body_to_file), so that a
 * 100 MB upload costs the server a file, not 100 MB of memory.
 *
 * The I/O thread appends each chunk libmicrohttpd hands it to the request's spool file; the
 * handler then reads the file (http_req_body_file) or takes it (http_req_body_take: renamed into
 * the blob store), and the end of the request removes whatever was not taken.
 *
 * Invariants:
 *   1. A spool file exists only for a request that passed auth and the rate limit: it is made at
 *      the first body byte the chain accepts (http__req_body_in skips pending requests), so an
 *      anonymous client cannot make the server write files.
 *   2. Exactly one party removes a spool file: the request's last unref (http__req_unref) unless
 *      the handler took it, or http__spool_discard when the body is refused midway (413).
 *   3. The file never holds more than the route's limit: the chain checks the running total
 *      before it writes a chunk.
 *   4. Spool files are named "body-<32 hex>.part", 0600, in a 0700 directory; nothing a client
 *      sends is part of a name.
 */
#include "http/http_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STALE_S 3600 /* a spool file this old belongs to no live request (deadlines are shorter)   \
                      */

void http_route_body_to_file(http_route *r, size_t max)
{
    r->body_limit = max;
    r->spool = true;
    r->sink = NULL;
}

/* Remove "body-*.part" files older than STALE_S in dir: a killed server's half uploads. */
static void remove_stale(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    time_t now = time(NULL);
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "body-", 5) != 0 || n < 10 ||
            strcmp(e->d_name + n - 5, ".part") != 0)
            continue;
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime > STALE_S &&
            unlink(path) == 0)
            md_log(MD_LOG_INFO, "http: removed stale spool file %s", path);
    }
    closedir(d);
}

int http__spool_prepare(http_server *s, md_err *err)
{
    if (mkdir(s->spool, 0700) != 0 && errno != EEXIST)
        return md_fail(err, MD_E_IO, "spool_dir", "cannot make the spool directory %s: %s",
                       s->spool, strerror(errno));
    remove_stale(s->spool);
    return MD_OK;
}

/* Make r's spool file (invariant 4). */
static int spool_open(http_req *r)
{
    char id[33];
    http__new_request_id(id); /* 128 random bits: a name nobody guesses or reuses */
    size_t cap = strlen(r->srv->spool) + 48;
    r->spool_path = malloc(cap);
    if (!r->spool_path)
        return md_fail(&r->err, MD_E_NOMEM, NULL, NULL);
    snprintf(r->spool_path, cap, "%s/body-%s.part", r->srv->spool, id);
    r->spool_fd = open(r->spool_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (r->spool_fd < 0 && errno == ENOENT &&
        mkdir(r->srv->spool, 0700) == 0) /* a loopback server */
        r->spool_fd = open(r->spool_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (r->spool_fd >= 0)
        return MD_OK;
    int e = errno;
    md_log_fields(MD_LOG_ERROR, "http: cannot make a spool file",
                  (const char *const[]){"request_id", r->id, "path", r->spool_path, "error",
                                        strerror(e), NULL});
    free(r->spool_path);
    r->spool_path = NULL;
    return md_fail(&r->err, e == ENOSPC || e == EDQUOT ? MD_E_STORAGE_FULL : MD_E_IO, "body",
                   "cannot store the upload");
}

int http__spool_write(http_req *r, const char *data, size_t len)
{
    if (r->spool_fd < 0) {
        int rc = spool_open(r);
        if (rc != MD_OK)
            return rc;
    }
    while (len > 0) {
        ssize_t w = write(r->spool_fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w == 0 ? ENOSPC : errno;
            http_req_log(r, MD_LOG_ERROR, "spool write: %s", strerror(e));
            return md_fail(&r->err, e == ENOSPC || e == EDQUOT ? MD_E_STORAGE_FULL : MD_E_IO,
                           "body", "cannot store the upload");
        }
        data += w;
        len -= (size_t)w;
    }
    return MD_OK;
}

void http__spool_discard(http_req *r)
{
    if (r->spool_fd >= 0)
        close(r->spool_fd);
    r->spool_fd = -1;
    if (r->spool_path && !r->spool_taken)
        unlink(r->spool_path);
    free(r->spool_path);
    r->spool_path = NULL;
}

void http__req_body_end(http_req *r)
{
    const http_route *rt = r->match.route;
    if (!rt || !rt->spool || r->pending)
        return;
    r->deadline_ns = md_now_ns() + (uint64_t)r->srv->o.request_timeout_ms * 1000000u;
    md_cancel_init(&r->cancel, r->deadline_ns);
}

int http_req_body_file(http_req *r, http_body_file *out)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    const http_route *rt = r->match.route;
    if (!rt || !rt->spool)
        return md_fail(&r->err, MD_E_INTERNAL, NULL, "this route does not spool its body");
    if (r->spool_fd < 0 && !r->spool_taken) { /* an empty body still gets its (empty) file */
        int rc = spool_open(r);
        if (rc != MD_OK)
            return rc;
    }
    out->path = r->spool_path;
    out->fd = r->spool_fd;
    out->size = r->body_seen;
    return MD_OK;
}

int http_req_body_take(http_req *r, char **path_out)
{
    *path_out = NULL;
    if (r->spool_taken)
        return md_fail(&r->err, MD_E_CONFLICT, "body", "the body file was taken already");
    http_body_file f;
    int rc = http_req_body_file(r, &f);
    if (rc != MD_OK)
        return rc;
    *path_out = r->spool_path; /* the string goes with the file */
    r->spool_path = NULL;
    r->spool_taken = true;
    return MD_OK;
}
