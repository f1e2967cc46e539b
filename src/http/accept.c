/* The listening socket and the thread that accepts on it.
 *
 * Why our own acceptor: libmicrohttpd 0.9.75's MHD_quiesce_daemon races with its own epoll
 * worker threads. It sets a worker's was_quiesced flag and then removes the listen socket from
 * that worker's epoll set; a worker that wakes in between removes it first, and quiesce's
 * epoll_ctl(DEL) then fails with ENOENT, which it treats as fatal (MHD_PANIC, abort). A SIGTERM
 * that arrives while a request is finishing hit it (seen in CI). Unfixed upstream as of 0.9.77.
 *
 * So the daemon runs with MHD_USE_NO_LISTEN_SOCKET and this thread owns the socket: it accepts
 * and hands each connection to the daemon with MHD_add_connection (thread-safe with MHD_USE_ITC:
 * the connection is queued for a worker under a mutex and the worker is woken). Draining stops
 * this thread and closes the socket, so the kernel refuses new connections at once (a load
 * balancer retries them elsewhere) while the daemon finishes the ones it has.
 *
 * Invariants: s->listen_fd is open from http__listener_open until http__acceptor_stop;
 * s->stop_fd (an eventfd) wakes the thread; the thread is the only caller of accept4. */
#include "http/http_int.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

int http__listener_open(http_server *s, const struct sockaddr_storage *ss, int backlog, md_err *err)
{
    socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return md_fail(err, MD_E_IO, "host", "cannot create a socket: %s", strerror(errno));
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss->ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, backlog) != 0) {
        close(fd);
        return md_fail(err, MD_E_IO, "port", "cannot listen on %s:%u (address in use or not allowed)", s->host,
                       (unsigned)s->o.port);
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
        s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)(void *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)(void *)&bound)->sin_port);
    s->listen_fd = fd;
    return MD_OK;
}

static void *acceptor(void *arg)
{
    http_server *s = arg;
    struct pollfd p[2] = {{.fd = s->listen_fd, .events = POLLIN}, {.fd = s->stop_fd, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        /* Take what the backlog holds, then poll again. */
        for (int n = 0; n < 64; n++) {
            struct sockaddr_storage peer;
            socklen_t plen = sizeof peer;
            int c = accept4(s->listen_fd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (c < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                    usleep(10000); /* out of descriptors: let connections close before trying again */
                break;
            }
            /* On failure (connection limit reached, daemon stopping) libmicrohttpd closes c. */
            (void)MHD_add_connection(s->d, c, (const struct sockaddr *)&peer, plen);
        }
    }
    return NULL;
}

int http__acceptor_start(http_server *s, md_err *err)
{
    s->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (s->stop_fd < 0)
        return md_fail(err, MD_E_IO, NULL, "cannot create the acceptor's eventfd: %s", strerror(errno));
    if (pthread_create(&s->acceptor, NULL, acceptor, s) != 0)
        return md_fail(err, MD_E_NOMEM, NULL, "cannot start the accept thread");
    s->acceptor_running = true;
    return MD_OK;
}

void http__acceptor_stop(http_server *s)
{
    if (s->acceptor_running) {
        uint64_t one = 1;
        ssize_t w = write(s->stop_fd, &one, sizeof one);
        (void)w; /* an eventfd write of 1 cannot fail short of overflow */
        pthread_join(s->acceptor, NULL);
        s->acceptor_running = false;
    }
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
    if (s->stop_fd >= 0) {
        close(s->stop_fd);
        s->stop_fd = -1;
    }
}
