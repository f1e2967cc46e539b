/* ws.c - WebSocket routes (RFC 6455): the handshake check, the 101 answer, and the hub thread
 * that owns every upgraded socket. libmicrohttpd does the HTTP part and hands the socket over
 * (MHD_create_response_for_upgrade); wslay does the framing (masking, fragments, control frames,
 * UTF-8 of text, close handshake); this file does the rest: who may write, when to ping, when
 * to give up on a peer, and how much memory one slow reader may hold.
 *
 * Why one thread per server: sockets are few (ws_max, 256 by default) and carry small status
 * messages, so one epoll loop serves them all without locks around wslay (which is not
 * thread-safe). Producers on other threads (job progress) only append to a socket's queue under
 * its mutex and wake the hub through an eventfd; the hub moves the queue into wslay.
 *
 * The life of one socket (ws->state). Each transition is made by the function in brackets
 * through ws_to(), which checks in debug builds that the move is one of these and that the
 * socket looks the way its new state promises (ws_assert_state):
 *
 *   (none)   -> PENDING  [http_reply_ws]      a slot under ws_max taken; 101 queued on the request
 *   PENDING  -> OPEN     [http__ws_upgraded]  libmicrohttpd handed over the socket; the hub
 *                                             registers it and calls on_open at its next turn
 *   PENDING  -> CLOSED   [http__ws_req_end]   the request ended with no upgrade (client gone
 *                                             first, a loopback request): on_close(1006).
 *                                             libmicrohttpd calls the upgrade handler before
 *                                             the request's completion, so an upgraded socket
 *                                             is OPEN by then
 *   PENDING  -> CLOSED   [http__ws_upgraded]  upgraded while the server drains: socket closed at
 *                                             once, on_close(1001) (1011 when it cannot be set up)
 *   OPEN     -> CLOSING  [ws_pull]            our close frame is queued (http_ws_close after the
 *                                             messages queued before it; at once for a slow
 *                                             reader or a drain), or the peer's came (wslay
 *                                             answers it); the close deadline starts
 *   OPEN|CLOSING -> CLOSED [ws_finish]        close handshake done, I/O error, peer silent for a
 *                                             whole ping interval, close deadline passed, or the
 *                                             hub stopping: the socket goes back to
 *                                             libmicrohttpd, the slot is released, on_close
 *
 * Invariants:
 *   1. ws->state and the producer fields (queue, queued, close_*) change under ws->mu only; the
 *      wslay context, the fd, the input buffer and the timers belong to the hub thread (or to
 *      the owner of a detached socket, for the fuzz target). Once a socket is OPEN only the hub
 *      changes its state, so the hub reads it without the lock.
 *   2. No callback runs under a lock: callbacks call http_ws_send_text, which takes ws->mu.
 *   3. on_close runs exactly once for every socket http_reply_ws accepted, whatever happens to
 *      the connection, and no callback runs after it.
 *   4. Bytes waiting for one socket (our queue plus wslay's) never exceed ws_queue_max plus the
 *      close frame: a message that would pass it is refused and the socket closed with 1008.
 *   5. Every upgraded socket is given back to libmicrohttpd (MHD_UPGRADE_ACTION_CLOSE) exactly
 *      once, and all of them before MHD_stop_daemon (http_server_drain stops the hub first).
 *   6. A ws is freed with its last reference: one held by the request until it is freed, one by
 *      the layer until on_close has returned, and one per producer (http_ws_ref).
 */
#include "http/http_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wslay/wslay.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_REASON_MAX 120
/* Longest wait for the peer's close frame: 5 s, or one ping interval when that is shorter (a
 * peer that answers nothing for that long would be dropped by the ping timer anyway). */
#define WS_CLOSE_WAIT_NS (5ull * 1000000000ull)

typedef enum { WS_PENDING, WS_OPEN, WS_CLOSING, WS_CLOSED } ws_state;

typedef struct ws_msg {
    struct ws_msg *next;
    size_t len;
    char data[];
} ws_msg;

struct http_ws {
    http__ws_hub *hub; /* NULL when detached (fuzz target) */
    atomic_int refs;
    pthread_mutex_t mu;
    ws_state state; /* under mu */
    const http_ws_handler *h;
    void *user;
    char id[HTTP_ID_MAX + 1];
    http_identity ident;
    size_t queue_max, msg_max;
    /* producer side, under mu */
    ws_msg *q_head, **q_tail;
    size_t queued;       /* bytes in q plus in wslay's queue (as the hub last saw it) */
    size_t wslay_queued; /* the wslay part of queued */
    bool close_asked, close_now;
    int close_code;
    char close_reason[WS_REASON_MAX + 1];
    /* hub side */
    int fd; /* -1: detached, output discarded */
    struct MHD_UpgradeResponseHandle *urh;
    wslay_event_context_ptr ctx;
    unsigned char *in; /* bytes libmicrohttpd read past the headers, or the fuzz input */
    size_t in_len, in_off;
    bool opened, close_queued;
    uint64_t next_ping_ns, close_deadline_ns, next_tick_ns;
    bool pong_due;
    uint32_t interest, revents;
    http_ws *next, *prev; /* hub->list, under hub->mu */
};

struct http__ws_hub {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a socket left the list (the drain waits for an empty one) */
    int ep, efd;
    pthread_t th;
    bool running;
    bool stopping;       /* no new sockets: the server drains */
    bool stop;           /* the thread ends at its next turn */
    http_ws *list;       /* upgraded sockets (OPEN, CLOSING) */
    unsigned count, max; /* sockets from PENDING to CLOSED, and their limit */
    uint64_t ping_ns;
    size_t queue_max, msg_max;
    /* for /metrics */
    _Atomic uint64_t opened, refused, dropped, slow;
};

/* ---- the state machine ---- */

#ifndef NDEBUG
#define B(s) (1u << (s))
static const unsigned ws_allowed_from[] = {
    [WS_PENDING] = 0,
    [WS_OPEN] = B(WS_PENDING),
    [WS_CLOSING] = B(WS_OPEN),
    [WS_CLOSED] = B(WS_PENDING) | B(WS_OPEN) | B(WS_CLOSING),
};
#undef B
#endif

/* inline: with NDEBUG nothing calls it, and an unused inline function is no warning. */
static inline int ws_assert_state(const http_ws *ws)
{
#ifndef NDEBUG
    assert(ws->state <= WS_CLOSED);
    assert(ws->h && ws->h->on_close);
    assert(ws->state != WS_PENDING || (ws->fd < 0 && !ws->urh)); /* no socket yet */
    assert(ws->state != WS_OPEN || ws->ctx);                     /* wslay ready before I/O */
    assert(ws->state != WS_CLOSING || ws->ctx);
    assert(ws->state != WS_CLOSED || (!ws->q_head && ws->fd < 0 && !ws->urh)); /* all given back */
#else
    (void)ws;
#endif
    return 1;
}

/* Move ws to `to` (the diagram above). Caller holds ws->mu. */
static void ws_to(http_ws *ws, ws_state to)
{
#ifndef NDEBUG
    assert(ws_allowed_from[to] & (1u << ws->state));
#endif
    ws->state = to;
    assert(ws_assert_state(ws));
}

/* ---- references ---- */

static void free_queue(http_ws *ws)
{
    for (ws_msg *m = ws->q_head, *n; m; m = n) {
        n = m->next;
        free(m);
    }
    ws->q_head = NULL;
    ws->q_tail = &ws->q_head;
}

void http_ws_ref(http_ws *ws)
{
    atomic_fetch_add(&ws->refs, 1);
}

void http_ws_unref(http_ws *ws)
{
    if (!ws || atomic_fetch_sub(&ws->refs, 1) != 1)
        return;
    free_queue(ws);
    if (ws->ctx)
        wslay_event_context_free(ws->ctx);
    free(ws->in);
    pthread_mutex_destroy(&ws->mu);
    free(ws);
}

const char *http_ws_id(const http_ws *ws)
{
    return ws->id;
}
const http_identity *http_ws_identity(const http_ws *ws)
{
    return &ws->ident;
}

/* ---- wslay callbacks (hub thread) ---- */

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *ud)
{
    (void)flags;
    http_ws *ws = ud;
    if (ws->in_off < ws->in_len) { /* first what libmicrohttpd read ahead */
        size_t n = ws->in_len - ws->in_off < len ? ws->in_len - ws->in_off : len;
        memcpy(buf, ws->in + ws->in_off, n);
        ws->in_off += n;
        return (ssize_t)n;
    }
    if (ws->fd < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ssize_t n = recv(ws->fd, buf, len, 0);
    if (n > 0)
        return n;
    bool again = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    wslay_event_set_error(ctx, again ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *ud)
{
    http_ws *ws = ud;
    if (ws->fd < 0)
        return (ssize_t)len; /* detached: the output goes nowhere */
    ssize_t n = send(ws->fd, data, len, MSG_NOSIGNAL | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0));
    if (n >= 0)
        return n;
    bool again = errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    wslay_event_set_error(ctx, again ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                      void *ud)
{
    (void)ctx;
    http_ws *ws = ud;
    if (a->opcode == WSLAY_PONG) {
        ws->pong_due = false;
        return;
    }
    if ((a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME) && ws->h->on_message)
        ws->h->on_message(ws, (const char *)a->msg, a->msg_length, a->opcode == WSLAY_BINARY_FRAME,
                          ws->user);
}

static int ws_ctx_new(http_ws *ws)
{
    static const struct wslay_event_callbacks cbs = {.recv_callback = ws_recv_cb,
                                                     .send_callback = ws_send_cb,
                                                     .on_msg_recv_callback = ws_msg_cb};
    if (wslay_event_context_server_init(&ws->ctx, &cbs, ws) != 0) {
        ws->ctx = NULL;
        return MD_E_NOMEM;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->msg_max);
    return MD_OK;
}

/* ---- the producer side (any thread) ---- */

static void hub_wake(http__ws_hub *hub)
{
    uint64_t one = 1;
    if (hub && hub->efd >= 0 &&
        write(hub->efd, &one, sizeof one) < 0) { /* full counter: a wake-up is pending anyway */
    }
}

/* Ask for the close handshake. Caller holds ws->mu. now: do not wait for the queued messages. */
static void ask_close(http_ws *ws, int code, const char *reason, bool now)
{
    if (ws->state == WS_CLOSED || ws->close_asked)
        return;
    ws->close_asked = true;
    ws->close_now = now;
    ws->close_code = code;
    snprintf(ws->close_reason, sizeof ws->close_reason, "%s", reason ? reason : "");
}

int http_ws_send_text(http_ws *ws, const char *text, size_t len)
{
    int rc = MD_OK;
    pthread_mutex_lock(&ws->mu);
    if (ws->state == WS_CLOSED || ws->state == WS_CLOSING || ws->close_asked) {
        rc = MD_E_CONFLICT;
    } else if (ws->queued + len > ws->queue_max) {
        ask_close(ws, 1008, "the client reads too slowly", true);
        rc = MD_E_OVERLOADED;
        if (ws->hub)
            atomic_fetch_add(&ws->hub->slow, 1);
    } else {
        ws_msg *m = malloc(sizeof *m + len);
        if (!m) {
            rc = MD_E_NOMEM;
        } else {
            m->next = NULL;
            m->len = len;
            if (len) /* an empty message may come with text NULL (wslay's empty frame) */
                memcpy(m->data, text, len);
            *ws->q_tail = m;
            ws->q_tail = &m->next;
            ws->queued += len;
        }
    }
    pthread_mutex_unlock(&ws->mu);
    hub_wake(ws->hub);
    return rc;
}

void http_ws_close(http_ws *ws, int code, const char *reason)
{
    pthread_mutex_lock(&ws->mu);
    ask_close(ws, code, reason, false);
    pthread_mutex_unlock(&ws->mu);
    hub_wake(ws->hub);
}

/* ---- the handshake (chain.c calls it for HTTP_WS routes) ---- */

/* Is the comma-separated header value v holding token tok (case-insensitive)? */
static bool has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    while (v && *v) {
        v += strspn(v, " \t,");
        size_t n = strcspn(v, ", \t");
        if (n == tl && strncasecmp(v, tok, tl) == 0)
            return true;
        v += n;
    }
    return false;
}

/* A Sec-WebSocket-Key is the base64 of 16 bytes: 22 characters of the alphabet, then "==". */
static bool valid_key(const char *k)
{
    if (!k || strlen(k) != 24 || strcmp(k + 22, "==") != 0)
        return false;
    for (int i = 0; i < 22; i++) {
        char c = k[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return false;
    }
    return true;
}

int http__ws_handshake(http_req *r)
{
    md_err *e = &r->err;
    if (strcmp(r->method, "GET") != 0)
        return md_fail(e, MD_E_BAD_REQUEST, "method", "a WebSocket opens with GET");
    if (r->http10)
        return md_fail(e, MD_E_BAD_REQUEST, "version",
                       "a WebSocket opens with an HTTP/1.1 request");
    if (!has_token(http_req_header(r, "Upgrade"), "websocket"))
        return md_fail(e, MD_E_BAD_REQUEST, "Upgrade",
                       "this route is a WebSocket: send Upgrade: websocket");
    if (!has_token(http_req_header(r, "Connection"), "upgrade"))
        return md_fail(e, MD_E_BAD_REQUEST, "Connection",
                       "a WebSocket handshake needs Connection: Upgrade");
    const char *v = http_req_header(r, "Sec-WebSocket-Version");
    if (!v || strcmp(v, "13") != 0) {
        http_reply_header(r, "Sec-WebSocket-Version", "13");
        return md_fail(e, MD_E_BAD_REQUEST, "Sec-WebSocket-Version",
                       "only WebSocket version 13 is spoken");
    }
    if (!valid_key(http_req_header(r, "Sec-WebSocket-Key")))
        return md_fail(e, MD_E_BAD_REQUEST, "Sec-WebSocket-Key",
                       "expected the base64 of 16 random bytes");
    return MD_OK;
}

int http__ws_accept_key(const char *key, char out[29])
{
    char in[64];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int n = snprintf(in, sizeof in, "%s%s", key, WS_GUID);
    if (n <= 0 || (size_t)n >= sizeof in ||
        !EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return MD_E_INTERNAL;
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters and a NUL */
    return MD_OK;
}

/* ---- accepting (the route's handler, on an I/O thread) ---- */

static http_ws *ws_new(http__ws_hub *hub, const http_ws_handler *h, void *user, size_t queue_max,
                       size_t msg_max)
{
    http_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->hub = hub;
    atomic_init(&ws->refs, 2); /* the request's (or the detached owner's) and the layer's */
    pthread_mutex_init(&ws->mu, NULL);
    ws->h = h;
    ws->user = user;
    ws->fd = -1;
    ws->q_tail = &ws->q_head;
    ws->next_tick_ns = UINT64_MAX;
    ws->queue_max = queue_max;
    ws->msg_max = msg_max;
    ws->state = WS_PENDING;
    assert(ws_assert_state(ws));
    return ws;
}

/* Is there a slot under ws_max (take it when take)? MD_E_OVERLOADED when full, MD_E_UNAVAILABLE
 * while draining, with the message in err. */
static int hub_slot(http__ws_hub *hub, bool take, md_err *err)
{
    int rc = MD_OK;
    pthread_mutex_lock(&hub->mu);
    if (hub->stopping)
        rc = md_fail(err, MD_E_UNAVAILABLE, NULL, "the server is shutting down");
    else if (hub->count >= hub->max)
        rc = md_fail(err, MD_E_OVERLOADED, NULL, "too many open WebSockets, retry later");
    else if (take)
        hub->count++;
    if (rc != MD_OK)
        atomic_fetch_add(&hub->refused, 1);
    pthread_mutex_unlock(&hub->mu);
    return rc;
}

int http__ws_room(http_server *s, md_err *err)
{
    return hub_slot(s->ws_hub, false, err);
}

static void hub_release(http__ws_hub *hub)
{
    pthread_mutex_lock(&hub->mu);
    hub->count--;
    pthread_cond_broadcast(&hub->cv);
    pthread_mutex_unlock(&hub->mu);
}

int http_reply_ws(http_req *r, const http_ws_handler *h, void *user)
{
    http__ws_hub *hub = r->srv->ws_hub;
    if (!r->match.route || !(r->match.route->flags & HTTP_WS) || !hub || !h || !h->on_close ||
        r->replied)
        return md_fail(&r->err, MD_E_INTERNAL, NULL, NULL);
    char accept[29];
    int rc = http__ws_accept_key(http_req_header(r, "Sec-WebSocket-Key"), accept);
    if (rc != MD_OK)
        return md_fail(&r->err, rc, NULL, NULL);
    rc = hub_slot(hub, true, &r->err);
    if (rc != MD_OK)
        return rc;
    http_ws *ws = ws_new(hub, h, user, hub->queue_max, hub->msg_max);
    if (!ws || http_reply_header(r, "Upgrade", "websocket") != MD_OK ||
        http_reply_header(r, "Connection", "Upgrade") != MD_OK ||
        http_reply_header(r, "Sec-WebSocket-Accept", accept) != MD_OK ||
        http_reply_empty(r, 101) != MD_OK) {
        if (ws) { /* never shared yet: both references go at once */
            atomic_store(&ws->refs, 1);
            http_ws_unref(ws);
        }
        hub_release(hub);
        return md_fail(&r->err, MD_E_NOMEM, NULL, NULL);
    }
    snprintf(ws->id, sizeof ws->id, "%s", r->id);
    ws->ident = r->ident;
    r->ws = ws;
    return MD_OK;
}

/* ---- the end of a socket ---- */

/* Leave the hub's books (list, count) and call on_close: the end of every accepted socket. */
static void ws_closed(http_ws *ws, int code)
{
    http__ws_hub *hub = ws->hub;
    if (hub) {
        pthread_mutex_lock(&hub->mu);
        if (ws->prev || hub->list == ws) { /* it was upgraded */
            if (ws->prev)
                ws->prev->next = ws->next;
            else
                hub->list = ws->next;
            if (ws->next)
                ws->next->prev = ws->prev;
            ws->next = ws->prev = NULL;
        }
        pthread_mutex_unlock(&hub->mu);
        hub_release(hub);
    }
    ws->h->on_close(ws, code, ws->user);
    http_ws_unref(ws); /* the layer's reference */
}

/* OPEN|CLOSING -> CLOSED (hub thread): give the socket back and report. */
static void ws_finish(http_ws *ws, int code)
{
    if (ws->fd >= 0 && ws->hub)
        epoll_ctl(ws->hub->ep, EPOLL_CTL_DEL, ws->fd, NULL);
    ws->fd = -1;
    if (ws->urh)
        MHD_upgrade_action(ws->urh, MHD_UPGRADE_ACTION_CLOSE);
    ws->urh = NULL;
    pthread_mutex_lock(&ws->mu);
    free_queue(ws);
    ws->queued = 0;
    ws_to(ws, WS_CLOSED);
    pthread_mutex_unlock(&ws->mu);
    ws_closed(ws, code);
}

void http__ws_req_end(http_ws *ws)
{
    if (!ws)
        return;
    pthread_mutex_lock(&ws->mu);
    bool abandoned = ws->state == WS_PENDING;
    if (abandoned) {
        free_queue(ws);
        ws_to(ws, WS_CLOSED);
    }
    pthread_mutex_unlock(&ws->mu);
    if (abandoned)
        ws_closed(ws, 1006);
    http_ws_unref(ws); /* the request's reference */
}

/* ---- the upgrade (libmicrohttpd's upgrade handler, on an I/O thread) ---- */

void http__ws_upgraded(http_ws *ws, int fd, struct MHD_UpgradeResponseHandle *urh,
                       const char *extra, size_t extra_len)
{
    http__ws_hub *hub = ws->hub;
    int rc = ws_ctx_new(ws);
    if (rc == MD_OK && extra_len) {
        ws->in = malloc(extra_len);
        rc = ws->in ? MD_OK : MD_E_NOMEM;
        if (ws->in)
            memcpy(ws->in, extra, extra_len);
        ws->in_len = extra_len;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        rc = MD_E_IO;
    pthread_mutex_lock(&hub->mu);
    bool go = rc == MD_OK && !hub->stopping;
    if (go) {
        ws->fd = fd;
        ws->urh = urh;
        pthread_mutex_lock(&ws->mu);
        ws_to(ws, WS_OPEN);
        pthread_mutex_unlock(&ws->mu);
        ws->next = hub->list;
        if (hub->list)
            hub->list->prev = ws;
        hub->list = ws;
    }
    pthread_mutex_unlock(&hub->mu);
    if (go) {
        hub_wake(hub);
        return;
    }
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    pthread_mutex_lock(&ws->mu);
    free_queue(ws);
    ws_to(ws, WS_CLOSED);
    pthread_mutex_unlock(&ws->mu);
    ws_closed(ws, rc == MD_OK ? 1001 : 1011);
}

/* ---- one socket's turn on the hub ---- */

/* Move the producers' messages and close request into wslay. OPEN -> CLOSING when our close
 * frame is queued. */
static void ws_pull(http_ws *ws, uint64_t now)
{
    pthread_mutex_lock(&ws->mu);
    ws_msg *q = ws->q_head;
    ws->q_head = NULL;
    ws->q_tail = &ws->q_head;
    bool close_now = ws->close_asked && ws->close_now;
    pthread_mutex_unlock(&ws->mu);
    for (ws_msg *m = q, *n; m; m = n) {
        n = m->next;
        struct wslay_event_msg em = {WSLAY_TEXT_FRAME, (const uint8_t *)m->data, m->len};
        if (!close_now && !ws->close_queued)
            wslay_event_queue_msg(ws->ctx, &em); /* copies; fails only after a close frame */
        free(m);
    }
    pthread_mutex_lock(&ws->mu);
    /* wslay sends control frames before queued messages: a graceful close waits for them. */
    bool go = ws->close_asked && !ws->close_queued &&
              (ws->close_now || (!ws->q_head && wslay_event_get_queued_msg_count(ws->ctx) == 0));
    if (go) {
        wslay_event_queue_close(ws->ctx, (uint16_t)ws->close_code,
                                (const uint8_t *)ws->close_reason, strlen(ws->close_reason));
        ws->close_queued = true;
    }
    if ((go || wslay_event_get_close_received(ws->ctx)) && ws->state == WS_OPEN) {
        ws_to(ws, WS_CLOSING);
        uint64_t wait =
            ws->hub && ws->hub->ping_ns < WS_CLOSE_WAIT_NS ? ws->hub->ping_ns : WS_CLOSE_WAIT_NS;
        ws->close_deadline_ns = now + wait;
    }
    ws->wslay_queued = wslay_event_get_queued_msg_length(ws->ctx);
    ws->queued = ws->wslay_queued;
    for (const ws_msg *m = ws->q_head; m; m = m->next)
        ws->queued += m->len;
    pthread_mutex_unlock(&ws->mu);
}

/* The code on_close reports: the peer's (1005 when its frame had none), else ours once sent,
 * else 1006 (dropped without a close frame either way). */
static int ws_close_code(http_ws *ws)
{
    if (wslay_event_get_close_received(ws->ctx)) {
        uint16_t c = wslay_event_get_status_code_received(ws->ctx);
        return c ? c : 1005;
    }
    if (wslay_event_get_close_sent(ws->ctx))
        return wslay_event_get_status_code_sent(ws->ctx);
    return 1006;
}

/* Whether the socket is done: both close frames exchanged and ours out, or ours out and the peer
 * gone quiet past the deadline. */
static bool ws_done(http_ws *ws, uint64_t now)
{
    bool sent = wslay_event_get_close_sent(ws->ctx) && !wslay_event_want_write(ws->ctx);
    if (sent && wslay_event_get_close_received(ws->ctx))
        return true;
    return ws->state == WS_CLOSING && now >= ws->close_deadline_ns;
}

/* Ping timer: a ping every interval; the previous one still unanswered means the peer is gone. */
static bool ws_ping(http_ws *ws, uint64_t now, uint64_t interval)
{
    if (now < ws->next_ping_ns || ws->state != WS_OPEN)
        return true;
    if (ws->pong_due)
        return false;
    struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};
    wslay_event_queue_msg(ws->ctx, &ping);
    ws->pong_due = true;
    ws->next_ping_ns = now + interval;
    return true;
}

/* The first turn of an upgraded socket: into epoll, then on_open. */
static bool ws_open(http__ws_hub *hub, http_ws *ws, uint64_t now)
{
    ws->opened = true;
    atomic_fetch_add(&hub->opened, 1);
    ws->next_ping_ns = now + hub->ping_ns;
    ws->next_tick_ns =
        ws->h->on_tick && ws->h->tick_ms ? now + (uint64_t)ws->h->tick_ms * 1000000u : UINT64_MAX;
    ws->interest = EPOLLIN;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = ws};
    if (epoll_ctl(hub->ep, EPOLL_CTL_ADD, ws->fd, &ev) != 0)
        return false;
    ws->revents |= ws->in_len ? EPOLLIN : 0; /* bytes read ahead wait in ws->in */
    if (ws->h->on_open)
        ws->h->on_open(ws, ws->user);
    return true;
}

static void ws_interest(http__ws_hub *hub, http_ws *ws)
{
    uint32_t want = (wslay_event_want_read(ws->ctx) ? EPOLLIN : 0) |
                    (wslay_event_want_write(ws->ctx) ? EPOLLOUT : 0);
    if (want == ws->interest)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = ws};
    epoll_ctl(hub->ep, EPOLL_CTL_MOD, ws->fd, &ev);
    ws->interest = want;
}

/* One turn: open, read what came, pull what producers queued, ping, write, maybe finish. */
static void ws_service(http__ws_hub *hub, http_ws *ws, uint64_t now)
{
    if (!ws->opened && !ws_open(hub, ws, now)) {
        ws_finish(ws, 1011);
        return;
    }
    uint32_t ev = ws->revents;
    ws->revents = 0;
    bool ok = true;
    if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && wslay_event_want_read(ws->ctx))
        ok = wslay_event_recv(ws->ctx) == 0;
    if (ok && ws->state == WS_OPEN && now >= ws->next_tick_ns) {
        ws->next_tick_ns = now + (uint64_t)ws->h->tick_ms * 1000000u;
        ws->h->on_tick(ws, ws->user);
    }
    if (ok)
        ws_pull(ws, now);
    if (ok)
        ok = ws_ping(ws, now, hub->ping_ns);
    if (ok && wslay_event_want_write(ws->ctx))
        ok = wslay_event_send(ws->ctx) == 0;
    if (ok && !ws->close_queued) { /* the queue may have emptied: a graceful close can go now */
        ws_pull(ws, now);
        if (wslay_event_want_write(ws->ctx))
            ok = wslay_event_send(ws->ctx) == 0;
    }
    if (ok && (ev & (EPOLLHUP | EPOLLERR)) && !wslay_event_want_read(ws->ctx) &&
        wslay_event_want_write(ws->ctx))
        ok = false; /* the peer is gone and there is nothing left to read: nobody will take our
                       bytes */
    if (!ok && !ws->close_queued)
        atomic_fetch_add(&hub->dropped, 1);
    if (!ok || ws_done(ws, now)) {
        ws_finish(ws, ws_close_code(ws));
        return;
    }
    ws_interest(hub, ws);
}

/* ---- the hub thread ---- */

/* When the next timer of any socket falls, in ms from now (-1: none). */
static int hub_timeout(http_ws **v, size_t n, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        uint64_t t = v[i]->state == WS_CLOSING ? v[i]->close_deadline_ns : v[i]->next_ping_ns;
        if (v[i]->state == WS_OPEN && v[i]->next_tick_ns < t)
            t = v[i]->next_tick_ns;
        if (!v[i]->opened)
            t = now;
        if (t < next)
            next = t;
    }
    if (next == UINT64_MAX)
        return -1;
    return next <= now ? 0 : (int)((next - now + 999999) / 1000000);
}

/* The sockets of the list, copied so that callbacks may run without hub->mu. */
static size_t hub_snapshot(http__ws_hub *hub, http_ws **v, size_t cap, bool *stop)
{
    size_t n = 0;
    pthread_mutex_lock(&hub->mu);
    for (http_ws *w = hub->list; w && n < cap; w = w->next)
        v[n++] = w;
    *stop = hub->stop;
    pthread_mutex_unlock(&hub->mu);
    return n;
}

static void *hub_main(void *arg)
{
    http__ws_hub *hub = arg;
    http_ws **v = calloc(hub->max ? hub->max : 1, sizeof *v);
    struct epoll_event evs[64];
    bool stop = false;
    size_t n = hub_snapshot(hub, v, v ? hub->max : 0, &stop);
    while (v && !stop) {
        int k = epoll_wait(hub->ep, evs, 64, hub_timeout(v, n, md_now_ns()));
        for (int i = 0; i < k; i++) {
            if (!evs[i].data.ptr) {
                uint64_t c;
                if (read(hub->efd, &c, sizeof c) < 0) { /* EAGAIN: another turn read it */
                }
                continue;
            }
            ((http_ws *)evs[i].data.ptr)->revents |= evs[i].events;
        }
        n = hub_snapshot(hub, v, hub->max, &stop);
        uint64_t now = md_now_ns();
        for (size_t i = 0; i < n && !stop; i++)
            ws_service(hub, v[i], now);
        n = hub_snapshot(hub, v, hub->max, &stop);
    }
    /* Stopping: whatever is still open is dropped (the drain gave it its chance to close). */
    for (size_t i = 0; i < n; i++)
        ws_finish(v[i], 1001);
    free(v);
    return NULL;
}

/* The WebSocket lines of GET /metrics. */
static void hub_metrics(md_buf *out, void *ctx)
{
    http__ws_hub *hub = ctx;
    pthread_mutex_lock(&hub->mu);
    unsigned open = hub->count;
    pthread_mutex_unlock(&hub->mu);
    md_buf_printf(
        out,
        "# HELP modeld_websockets_open WebSockets open (or answered 101 and about to open).\n"
        "# TYPE modeld_websockets_open gauge\nmodeld_websockets_open %u\n"
        "# HELP modeld_websockets_opened_total WebSockets opened.\n"
        "# TYPE modeld_websockets_opened_total counter\nmodeld_websockets_opened_total %llu\n"
        "# HELP modeld_websockets_refused_total Upgrades refused with 503 (ws_max reached, or "
        "draining).\n"
        "# TYPE modeld_websockets_refused_total counter\nmodeld_websockets_refused_total %llu\n"
        "# HELP modeld_websockets_dropped_total WebSockets dropped without a close handshake "
        "(I/O error, no pong).\n"
        "# TYPE modeld_websockets_dropped_total counter\nmodeld_websockets_dropped_total %llu\n"
        "# HELP modeld_websockets_slow_readers_total WebSockets closed (1008) for falling "
        "ws_queue_max "
        "bytes behind.\n"
        "# TYPE modeld_websockets_slow_readers_total counter\nmodeld_websockets_slow_readers_total "
        "%llu\n",
        open, (unsigned long long)atomic_load(&hub->opened),
        (unsigned long long)atomic_load(&hub->refused),
        (unsigned long long)atomic_load(&hub->dropped),
        (unsigned long long)atomic_load(&hub->slow));
}

int http__ws_hub_new(http_server *s)
{
    if (s->ws_hub)
        return MD_OK;
    http__ws_hub *hub = calloc(1, sizeof *hub);
    if (!hub)
        return MD_E_NOMEM;
    pthread_mutex_init(&hub->mu, NULL);
    pthread_cond_init(&hub->cv, NULL);
    hub->ep = hub->efd = -1;
    hub->max = s->o.ws_max ? s->o.ws_max : 256;
    hub->ping_ns = (uint64_t)(s->o.ws_ping_ms ? s->o.ws_ping_ms : 20000) * 1000000u;
    hub->queue_max = s->o.ws_queue_max ? s->o.ws_queue_max : 1024 * 1024;
    hub->msg_max = s->o.ws_msg_max ? s->o.ws_msg_max : 64 * 1024;
    s->ws_hub = hub;
    return http__metrics_collector(s->metrics, hub_metrics, hub);
}

int http__ws_hub_start(http_server *s, md_err *err)
{
    http__ws_hub *hub = s->ws_hub;
    if (!hub)
        return MD_OK;
    hub->ep = epoll_create1(EPOLL_CLOEXEC);
    hub->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (hub->ep < 0 || hub->efd < 0 || epoll_ctl(hub->ep, EPOLL_CTL_ADD, hub->efd, &ev) != 0 ||
        pthread_create(&hub->th, NULL, hub_main, hub) != 0)
        return md_fail(err, MD_E_NOMEM, NULL, "cannot start the WebSocket thread");
    hub->running = true;
    return MD_OK;
}

void http__ws_hub_drain(http_server *s, unsigned timeout_ms)
{
    http__ws_hub *hub = s->ws_hub;
    if (!hub || !hub->running)
        return;
    pthread_mutex_lock(&hub->mu);
    hub->stopping = true;
    for (http_ws *w = hub->list; w; w = w->next) {
        pthread_mutex_lock(&w->mu);
        ask_close(w, 1001, "the server is shutting down", true);
        pthread_mutex_unlock(&w->mu);
    }
    hub_wake(hub);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t until =
        (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + (uint64_t)timeout_ms * 1000000u;
    ts.tv_sec = (time_t)(until / 1000000000u);
    ts.tv_nsec = (long)(until % 1000000000u);
    while (hub->list && pthread_cond_timedwait(&hub->cv, &hub->mu, &ts) == 0) {
    }
    hub->stop = true;
    pthread_mutex_unlock(&hub->mu);
    hub_wake(hub);
    pthread_join(hub->th, NULL);
    hub->running = false;
}

void http__ws_hub_free(http_server *s)
{
    http__ws_hub *hub = s->ws_hub;
    if (!hub)
        return;
    http__ws_hub_drain(s, 0);
    if (hub->ep >= 0)
        close(hub->ep);
    if (hub->efd >= 0)
        close(hub->efd);
    pthread_cond_destroy(&hub->cv);
    pthread_mutex_destroy(&hub->mu);
    free(hub);
    s->ws_hub = NULL;
}

/* ---- detached sockets: the frame reader without a server (fuzz target, tests) ---- */

int http__ws_detached_new(const http_ws_handler *h, void *user, size_t msg_max, http_ws **out)
{
    *out = NULL;
    http_ws *ws = ws_new(NULL, h, user, 1024 * 1024, msg_max);
    if (!ws)
        return MD_E_NOMEM;
    if (ws_ctx_new(ws) != MD_OK) {
        atomic_store(&ws->refs, 1);
        http_ws_unref(ws);
        return MD_E_NOMEM;
    }
    pthread_mutex_lock(&ws->mu);
    ws_to(ws, WS_OPEN);
    pthread_mutex_unlock(&ws->mu);
    ws->opened = true;
    *out = ws;
    return MD_OK;
}

int http__ws_detached_input(http_ws *ws, const void *data, size_t len)
{
    if (ws->state == WS_CLOSED)
        return MD_E_CONFLICT;
    ws->in = (unsigned char *)(uintptr_t)data; /* borrowed for this call only */
    ws->in_len = len;
    ws->in_off = 0;
    bool ok = !wslay_event_want_read(ws->ctx) || wslay_event_recv(ws->ctx) == 0;
    ws->in = NULL;
    ws->in_len = ws->in_off = 0;
    if (ok)
        ws_pull(ws, md_now_ns());
    if (ok && wslay_event_want_write(ws->ctx))
        ok = wslay_event_send(ws->ctx) == 0;
    if (!ok || ws_done(ws, md_now_ns()) ||
        (!wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx))) {
        ws_finish(ws, ws_close_code(ws));
        return MD_E_CONFLICT;
    }
    return MD_OK;
}

void http__ws_detached_free(http_ws *ws)
{
    if (!ws)
        return;
    if (ws->state != WS_CLOSED)
        ws_finish(ws, 1006);
    http_ws_unref(ws); /* the owner's reference */
}
