/* redis.h - a small Redis client for the scale-out features (shared rate limits, the L2 result
 * cache, cluster events), over Debian's hiredis. Prefix rds_.
 *
 * Two objects:
 *   rds_client  one command connection, shared by every thread (one mutex: a command is a
 *               loopback round trip of tens of microseconds). It never makes a caller wait
 *               for a dead server longer than one timeout: after a failure it is DOWN and
 *               every command fails at once with MD_E_UNAVAILABLE until the next reconnect
 *               attempt is due (backoff doubling from backoff_min_ms to backoff_max_ms); the
 *               first command after that tries to connect again (connect_timeout_ms at most).
 *   rds_sub     a dedicated subscriber connection and thread (pub/sub needs its own
 *               connection): it delivers the messages of its channels to a callback and
 *               reconnects with the same backoff, calling on_connect after each (re)subscribe
 *               so that the owner can catch up with what it missed while disconnected.
 *
 * Health: rds_up() is the client's last known state. One warning is logged per outage (when
 * UP turns DOWN), one info line when it is back. rds_metrics() renders modeld_redis_up and
 * modeld_redis_errors_total (failed commands and connects, subscriber included).
 *
 * URLs: redis://host[:port][/db] (port 6379, db 0 by default) or unix:///path/to/socket[?db=N].
 * Ownership words: new (the caller frees), borrowed (valid for the call).
 */
#ifndef MD_REDIS_REDIS_H
#define MD_REDIS_REDIS_H

#include "base/buf.h"
#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RDS_HOST_MAX 256

typedef struct rds_url {
    char host[RDS_HOST_MAX]; /* "" for a unix socket */
    int port;                /* 0 for a unix socket */
    char path[RDS_HOST_MAX]; /* the unix socket; "" for TCP */
    int db;                  /* SELECT db after connecting; 0..15 */
} rds_url;

/* Parse url into *out. MD_E_INVALID_PARAM naming field "redis" with what is wrong. */
int rds_url_parse(const char *url, rds_url *out, md_err *err);

typedef struct rds_opts {
    const char *url;        /* required; copied */
    int connect_timeout_ms; /* 0 = 500 */
    int command_timeout_ms; /* 0 = 500 */
    int backoff_min_ms;     /* first retry delay after a failure; 0 = 100 */
    int backoff_max_ms;     /* the delay doubles up to this; 0 = 5000 */
} rds_opts;

/* ---- replies (a copy of hiredis's, so that callers need not include it) ---- */
typedef enum rds_type { RDS_NIL, RDS_INT, RDS_STR, RDS_STATUS, RDS_ERROR, RDS_ARRAY } rds_type;

typedef struct rds_reply {
    rds_type type;
    long long integer; /* RDS_INT */
    char *str;         /* RDS_STR, RDS_STATUS, RDS_ERROR: NUL-terminated, len bytes */
    size_t len;
    struct rds_reply *elem; /* RDS_ARRAY: n replies */
    size_t n;
} rds_reply;

void rds_reply_free(rds_reply *r); /* NULL is a no-op */

/* ---- the command client ---- */
typedef struct rds_client rds_client;

/* Parse the URL and try to connect once. A server that does not answer is not an error (the
 * client starts DOWN, with the outage warning logged); a bad URL is (MD_E_INVALID_PARAM).
 * *out is new: rds_close. */
int rds_open(const rds_opts *o, rds_client **out, md_err *err);
void rds_close(rds_client *c); /* NULL is a no-op */

/* UP after the last connect or command succeeded, DOWN after one failed. */
bool rds_up(rds_client *c);

/* Run one command (argv[i] of lens[i] bytes; lens NULL = strlen). *out is new (rds_reply_free);
 * an error reply from the server (RDS_ERROR) is a reply, not a failure. MD_E_UNAVAILABLE when
 * the server cannot be reached (connection refused, timeout, broken connection, backoff). */
int rds_command(rds_client *c, int argc, const char *const *argv, const size_t *lens,
                rds_reply **out, md_err *err);

/* A Lua script run with EVALSHA, loaded on first use (SCRIPT LOAD) and sent again with EVAL
 * when the server answers NOSCRIPT (a restarted or flushed server). Declare one per script
 * with RDS_SCRIPT(src) (static storage; the sha is filled in under the client's mutex). */
typedef struct rds_script {
    const char *src;
    char sha[41];
} rds_script;
#define RDS_SCRIPT(source)                                                                         \
    {                                                                                              \
        .src = (source), .sha = ""                                                                 \
    }

/* EVALSHA s nkeys args...: argv holds the nkeys keys then the other arguments. As
 * rds_command. */
int rds_eval(rds_client *c, rds_script *s, int nkeys, int argc, const char *const *argv,
             const size_t *lens, rds_reply **out, md_err *err);

/* PING (a reconnect attempt when DOWN and the backoff allows): true when the server answered. */
bool rds_ping(rds_client *c);

/* PUBLISH channel message: MD_OK or MD_E_UNAVAILABLE. */
int rds_publish(rds_client *c, const char *channel, const char *msg, size_t len, md_err *err);

/* Prometheus lines for c (modeld_redis_up, modeld_redis_errors_total); an
 * http_collector_fn. */
void rds_metrics(md_buf *out, void *client);

/* ---- the subscriber ---- */
typedef struct rds_sub rds_sub;

/* A message of channel (NUL-terminated) with len bytes of payload; both borrowed for the call.
 * Runs on the subscriber's thread. */
typedef void (*rds_msg_fn)(void *ctx, const char *channel, const char *msg, size_t len);

typedef struct rds_sub_opts {
    const char *const *channels; /* n channel names, copied */
    size_t n;
    rds_msg_fn on_message;         /* required */
    void (*on_connect)(void *ctx); /* after each successful SUBSCRIBE; NULL = none */
    void *ctx;
    rds_client *errors_to; /* counts its failures in this client's metrics, and tells it
                              when the server is lost or back; NULL = none */
} rds_sub_opts;

/* Start the subscriber thread (it connects in the background; DOWN until it does).
 * *out is new: rds_sub_close, which stops and joins the thread (after it returns no callback
 * runs). */
int rds_sub_open(const rds_opts *o, const rds_sub_opts *so, rds_sub **out, md_err *err);
void rds_sub_close(rds_sub *s); /* NULL is a no-op */
bool rds_sub_up(rds_sub *s);

/* Backoff: the delay before try number `failures` (1 = after the first failure), doubling
 * from min_ms, capped at max_ms. Exposed for the unit test. */
int64_t rds_backoff_ms(int failures, int min_ms, int max_ms);

#endif
