/* sub.c - rds_sub: one subscriber connection and its thread (see redis.h).
 *
 * Thread states (each transition names its function):
 *
 *     CONNECTING ──sub_connect: connected, SUBSCRIBE answered──▶ LISTENING  (on_connect called)
 *     CONNECTING ──sub_connect fails──▶ CONNECTING, after the backoff
 *     LISTENING  ──sub_listen: EOF, I/O error──▶ CONNECTING
 *     any        ──rds_sub_close──▶ STOPPED (the thread returns)
 *
 * Invariants:
 *   1. Only the thread touches the connection; other threads read `up` and set `stop`.
 *   2. The thread looks at `stop` at least every POLL_MS (reads wait in poll(), never in a
 *      blocking read), so rds_sub_close returns within about POLL_MS.
 *   3. Messages are delivered in the order the server sent them, one at a time, on the thread.
 */
#include "redis/redis_int.h"

#include "base/log.h"

#include <assert.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL_MS 100
#define CHANNELS_MAX 8

struct rds_sub {
    rds_opts o;
    rds_url url;
    char *url_text;
    char *channels[CHANNELS_MAX];
    size_t n;
    rds_msg_fn on_message;
    void (*on_connect)(void *ctx);
    void *ctx;
    rds_client *errors_to;
    pthread_t thread;
    atomic_bool stop, up;
};

/* Debug check of the thread's state: LISTENING exactly while `up`, with a live connection. */
static void sub_assert_state(const rds_sub *s, const redisContext *c, bool listening)
{
#ifndef NDEBUG
    assert(atomic_load(&s->up) == listening);
    assert(!listening || (c && c->err == 0));
#else
    (void)s;
    (void)c;
    (void)listening;
#endif
}

/* Sleep ms in POLL_MS steps, returning early on stop (invariant 2). */
static void nap(rds_sub *s, int64_t ms)
{
    while (ms > 0 && !atomic_load(&s->stop)) {
        int64_t step = ms < POLL_MS ? ms : POLL_MS;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* CONNECTING -> LISTENING: connect and SUBSCRIBE (its first confirmation read here, the others
 * arrive in sub_listen). */
static redisContext *sub_connect(rds_sub *s, char *why, size_t cap)
{
    redisContext *c =
        rds__connect(&s->url, s->o.connect_timeout_ms, s->o.command_timeout_ms, why, cap);
    if (!c)
        return NULL;
    const char *argv[CHANNELS_MAX + 1] = {"SUBSCRIBE"};
    for (size_t i = 0; i < s->n; i++)
        argv[i + 1] = s->channels[i];
    redisReply *r = redisCommandArgv(c, (int)s->n + 1, argv, NULL);
    bool ok = r && r->type == REDIS_REPLY_ARRAY;
    if (!ok)
        snprintf(why, cap, "%s", c->err ? c->errstr : "SUBSCRIBE refused");
    freeReplyObject(r);
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* A "message" reply goes to the callback; subscribe confirmations are skipped. */
static void dispatch(rds_sub *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") != 0 ||
        r->element[1]->type != REDIS_REPLY_STRING || r->element[2]->type != REDIS_REPLY_STRING)
        return;
    s->on_message(s->ctx, r->element[1]->str, r->element[2]->str, r->element[2]->len);
}

/* LISTENING until the connection breaks or stop. */
static void sub_listen(rds_sub *s, redisContext *c)
{
    sub_assert_state(s, c, true);
    while (!atomic_load(&s->stop)) {
        void *reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
            return;
        if (reply) {
            dispatch(s, reply);
            freeReplyObject(reply);
            continue;
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = poll(&p, 1, POLL_MS);
        if (n < 0 || (n > 0 && redisBufferRead(c) != REDIS_OK))
            return;
    }
}

static void *sub_main(void *arg)
{
    rds_sub *s = arg;
    int failures = 0;
    while (!atomic_load(&s->stop)) {
        char why[256] = "";
        redisContext *c = sub_connect(s, why, sizeof why);
        if (!c) {
            rds__count_error(s->errors_to);
            if (failures++ == 0)
                md_log_fields(MD_LOG_INFO,
                              "redis subscriber cannot connect; retrying (logged once per outage)",
                              (const char *const[]){"redis", s->url_text, "error", why, NULL});
            nap(s, rds_backoff_ms(failures, s->o.backoff_min_ms, s->o.backoff_max_ms));
            continue;
        }
        if (failures > 0)
            md_log_fields(MD_LOG_INFO, "redis subscriber connected again",
                          (const char *const[]){"redis", s->url_text, NULL});
        failures = 0;
        atomic_store(&s->up, true);
        rds__client_retry_now(s->errors_to);
        if (s->on_connect)
            s->on_connect(s->ctx);
        sub_listen(s, c);
        atomic_store(&s->up, false);
        sub_assert_state(s, c, false);
        if (!atomic_load(&s->stop)) {
            rds__client_down(s->errors_to,
                             c->err ? c->errstr : "the subscriber's connection closed");
            md_log_fields(MD_LOG_INFO, "redis subscriber lost its connection; reconnecting",
                          (const char *const[]){"redis", s->url_text, "error",
                                                c->err ? c->errstr : "closed", NULL});
            failures = 1;
            nap(s, s->o.backoff_min_ms);
        }
        redisFree(c);
    }
    return NULL;
}

static void sub_free(rds_sub *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->channels[i]);
    free(s->url_text);
    free(s);
}

int rds_sub_open(const rds_opts *o, const rds_sub_opts *so, rds_sub **out, md_err *err)
{
    *out = NULL;
    if (!so->on_message || so->n == 0 || so->n > CHANNELS_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, NULL,
                       "a subscriber needs 1..%d channels and a callback", CHANNELS_MAX);
    rds_sub *s = calloc(1, sizeof *s);
    if (!s)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = rds_url_parse(o->url, &s->url, err);
    s->o = *o;
    s->o.connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 500;
    s->o.command_timeout_ms = o->command_timeout_ms > 0 ? o->command_timeout_ms : 500;
    s->o.backoff_min_ms = o->backoff_min_ms > 0 ? o->backoff_min_ms : 100;
    s->o.backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 5000;
    s->url_text = strdup(o->url ? o->url : "");
    s->on_message = so->on_message;
    s->on_connect = so->on_connect;
    s->ctx = so->ctx;
    s->errors_to = so->errors_to;
    for (size_t i = 0; rc == MD_OK && i < so->n; i++) {
        s->channels[i] = strdup(so->channels[i]);
        s->n = i + 1;
        if (!s->channels[i])
            rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    if (rc == MD_OK && !s->url_text)
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK && pthread_create(&s->thread, NULL, sub_main, s) != 0)
        rc = md_fail(err, MD_E_INTERNAL, NULL, "cannot start the redis subscriber thread");
    if (rc != MD_OK) {
        sub_free(s);
        return rc;
    }
    *out = s;
    return MD_OK;
}

void rds_sub_close(rds_sub *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    sub_free(s);
}

bool rds_sub_up(rds_sub *s)
{
    return s && atomic_load(&s->up);
}
