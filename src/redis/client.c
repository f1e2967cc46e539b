/* client.c - the command connection of redis.h: URL parsing, connect with timeouts, DOWN with
 * backoff, replies copied out of hiredis, Lua scripts by sha, and the health metrics.
 *
 * Connection states (each transition names its function):
 *
 *     UP   ──fail (I/O error, timeout, refused)──▶ DOWN      (warning logged once per outage)
 *     DOWN ──reconnect, after the backoff──▶ UP              (info "back" logged)
 *     DOWN ──reconnect fails──▶ DOWN                         (next try after twice the delay)
 *
 * Invariants:
 *   1. Every field below mu is read and written with mu held; `up` is also an atomic so that
 *      rds_up and the metrics never wait for a command in flight.
 *   2. ctx is non-NULL exactly when UP (client_assert_state).
 *   3. While DOWN, no command touches the network before next_try_ns: a dead server costs a
 *      request nothing but a mutex, and at most one connect_timeout per backoff period.
 *   4. A script's sha, once filled, is the SHA-1 the server gave for its source; NOSCRIPT
 *      only means the server forgot it, so EVAL sends the source (and the server learns it).
 */
#include "redis/redis.h"

#include "base/clock.h"
#include "base/log.h"
#include "redis/redis_int.h"

#include <assert.h>
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rds_client {
    rds_opts o;
    rds_url url;
    char *url_text;
    pthread_mutex_t mu;
    redisContext *ctx; /* invariant 2 */
    atomic_bool up;
    int failures;         /* consecutive failed connects since the last UP */
    uint64_t next_try_ns; /* invariant 3 */
    atomic_ullong errors;
};

static void client_assert_state(const rds_client *c)
{
#ifndef NDEBUG
    assert((c->ctx != NULL) == atomic_load(&c->up));
#else
    (void)c;
#endif
}

int64_t rds_backoff_ms(int failures, int min_ms, int max_ms)
{
    int64_t d = min_ms;
    for (int i = 1; i < failures && d < max_ms; i++)
        d *= 2;
    return d > max_ms ? max_ms : d;
}

void rds__count_error(rds_client *c)
{
    if (c)
        atomic_fetch_add(&c->errors, 1);
}

/* ---- replies ---- */

static void reply_clear(rds_reply *r)
{
    for (size_t i = 0; i < r->n; i++)
        reply_clear(&r->elem[i]);
    free(r->elem);
    free(r->str);
}

void rds_reply_free(rds_reply *r)
{
    if (!r)
        return;
    reply_clear(r);
    free(r);
}

static int copy_reply(const redisReply *in, rds_reply *out)
{
    memset(out, 0, sizeof *out);
    switch (in->type) {
    case REDIS_REPLY_INTEGER:
        out->type = RDS_INT;
        out->integer = in->integer;
        return MD_OK;
    case REDIS_REPLY_NIL:
        out->type = RDS_NIL;
        return MD_OK;
    case REDIS_REPLY_ARRAY:
        out->type = RDS_ARRAY;
        out->elem = in->elements ? calloc(in->elements, sizeof *out->elem) : NULL;
        if (in->elements && !out->elem)
            return MD_E_NOMEM;
        out->n = in->elements;
        for (size_t i = 0; i < in->elements; i++)
            if (copy_reply(in->element[i], &out->elem[i]) != MD_OK)
                return MD_E_NOMEM;
        return MD_OK;
    default:
        out->type = in->type == REDIS_REPLY_STATUS  ? RDS_STATUS
                    : in->type == REDIS_REPLY_ERROR ? RDS_ERROR
                                                    : RDS_STR;
        out->str = malloc(in->len + 1);
        if (!out->str)
            return MD_E_NOMEM;
        memcpy(out->str, in->str, in->len);
        out->str[in->len] = 0;
        out->len = in->len;
        return MD_OK;
    }
}

int rds__reply_new(const void *hiredis_reply, rds_reply **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return MD_E_NOMEM;
    int rc = copy_reply(hiredis_reply, *out);
    if (rc != MD_OK) {
        rds_reply_free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- connecting ---- */

static struct timeval tv_ms(int ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

void *rds__connect(const rds_url *u, int connect_ms, int command_ms, char *why, size_t cap)
{
    redisContext *ctx = u->path[0] ? redisConnectUnixWithTimeout(u->path, tv_ms(connect_ms))
                                   : redisConnectWithTimeout(u->host, u->port, tv_ms(connect_ms));
    if (!ctx || ctx->err) {
        snprintf(why, cap, "%s", ctx ? ctx->errstr : "out of memory");
        redisFree(ctx);
        return NULL;
    }
    redisReply *r = NULL;
    if (redisSetTimeout(ctx, tv_ms(command_ms)) == REDIS_OK && u->db != 0)
        r = redisCommand(ctx, "SELECT %d", u->db);
    bool ok = !ctx->err && (u->db == 0 || (r && r->type == REDIS_REPLY_STATUS));
    if (!ok)
        snprintf(why, cap, "%s", ctx->err ? ctx->errstr : r && r->str ? r->str : "SELECT failed");
    freeReplyObject(r);
    if (!ok) {
        redisFree(ctx);
        return NULL;
    }
    return ctx;
}

/* UP -> DOWN. mu held. why may point into c->ctx (its errstr): copied before the free. */
static void fail(rds_client *c, const char *why_in)
{
    char why[128];
    snprintf(why, sizeof why, "%s", why_in ? why_in : "");
    atomic_fetch_add(&c->errors, 1);
    if (c->ctx) {
        redisFree(c->ctx);
        c->ctx = NULL;
    }
    bool was_up = atomic_exchange(&c->up, false);
    c->failures++;
    int64_t d = rds_backoff_ms(c->failures, c->o.backoff_min_ms, c->o.backoff_max_ms);
    c->next_try_ns = md_clock_now_ns(md_clock_system()) + (uint64_t)d * 1000000u;
    if (was_up || c->failures == 1)
        md_log_fields(MD_LOG_WARN,
                      "redis is down: shared rate limits fall back, the L2 cache is skipped and "
                      "cluster events wait until it is back (logged once per outage)",
                      (const char *const[]){"redis", c->url_text, "error", why, NULL});
    client_assert_state(c);
}

/* DOWN -> UP when the backoff allows and the server answers. mu held. */
static int reconnect(rds_client *c, md_err *err)
{
    if (c->ctx)
        return MD_OK;
    if (md_clock_now_ns(md_clock_system()) < c->next_try_ns)
        return md_fail(err, MD_E_UNAVAILABLE, "redis", "redis is down");
    char why[256];
    c->ctx =
        rds__connect(&c->url, c->o.connect_timeout_ms, c->o.command_timeout_ms, why, sizeof why);
    if (!c->ctx) {
        fail(c, why);
        return md_fail(err, MD_E_UNAVAILABLE, "redis", "redis is down");
    }
    if (c->failures > 0)
        md_log_fields(MD_LOG_INFO, "redis is back",
                      (const char *const[]){"redis", c->url_text, NULL});
    c->failures = 0;
    atomic_store(&c->up, true);
    client_assert_state(c);
    return MD_OK;
}

void rds__client_down(rds_client *c, const char *why)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->ctx)
        fail(c, why);
    pthread_mutex_unlock(&c->mu);
}

void rds__client_retry_now(rds_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->next_try_ns = 0;
    pthread_mutex_unlock(&c->mu);
}

int rds_open(const rds_opts *o, rds_client **out, md_err *err)
{
    *out = NULL;
    rds_client *c = calloc(1, sizeof *c);
    if (!c)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    int rc = rds_url_parse(o->url, &c->url, err);
    c->o = *o;
    c->o.connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 500;
    c->o.command_timeout_ms = o->command_timeout_ms > 0 ? o->command_timeout_ms : 500;
    c->o.backoff_min_ms = o->backoff_min_ms > 0 ? o->backoff_min_ms : 100;
    c->o.backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 5000;
    c->url_text = rc == MD_OK ? strdup(o->url) : NULL;
    c->o.url = c->url_text;
    if (rc == MD_OK && !c->url_text)
        rc = md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc != MD_OK) {
        free(c);
        return rc;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_lock(&c->mu);
    reconnect(c, NULL); /* down is not an error: the service runs degraded */
    pthread_mutex_unlock(&c->mu);
    *out = c;
    return MD_OK;
}

void rds_close(rds_client *c)
{
    if (!c)
        return;
    redisFree(c->ctx);
    pthread_mutex_destroy(&c->mu);
    free(c->url_text);
    free(c);
}

bool rds_up(rds_client *c)
{
    return c && atomic_load(&c->up);
}

/* One command on the connection. mu held. */
static int command_locked(rds_client *c, int argc, const char *const *argv, const size_t *lens,
                          rds_reply **out, md_err *err)
{
    int rc = reconnect(c, err);
    if (rc != MD_OK)
        return rc;
    redisReply *r = redisCommandArgv(c->ctx, argc, (const char **)argv, lens);
    if (!r) {
        fail(c, c->ctx->errstr);
        return md_fail(err, MD_E_UNAVAILABLE, "redis", "redis is down");
    }
    rc = rds__reply_new(r, out);
    freeReplyObject(r);
    return rc == MD_OK ? MD_OK : md_fail(err, rc, NULL, NULL);
}

static const size_t *lens_of(int argc, const char *const *argv, const size_t *lens, size_t *tmp)
{
    if (lens)
        return lens;
    for (int i = 0; i < argc; i++)
        tmp[i] = strlen(argv[i]);
    return tmp;
}

#define ARGS_MAX 32

int rds_command(rds_client *c, int argc, const char *const *argv, const size_t *lens,
                rds_reply **out, md_err *err)
{
    *out = NULL;
    size_t tmp[ARGS_MAX];
    if (argc < 1 || argc > ARGS_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, NULL, "bad redis command");
    lens = lens_of(argc, argv, lens, tmp);
    pthread_mutex_lock(&c->mu);
    int rc = command_locked(c, argc, argv, lens, out, err);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static bool is_noscript(const rds_reply *r)
{
    return r->type == RDS_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* EVALSHA, loading the script first when its sha is unknown, EVAL on NOSCRIPT (invariant 4).
 * mu held. */
static int eval_locked(rds_client *c, rds_script *s, int nkeys, int argc, const char *const *argv,
                       const size_t *lens, rds_reply **out, md_err *err)
{
    const char *av[ARGS_MAX + 3];
    size_t lv[ARGS_MAX + 3];
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    int rc = MD_OK;
    if (!s->sha[0]) {
        rds_reply *r = NULL;
        rc = command_locked(c, 3, (const char *const[]){"SCRIPT", "LOAD", s->src},
                            (const size_t[]){6, 4, strlen(s->src)}, &r, err);
        if (rc == MD_OK && r->type == RDS_STR && r->len == 40)
            memcpy(s->sha, r->str, 41);
        rds_reply_free(r);
        if (rc != MD_OK)
            return rc;
    }
    av[0] = "EVALSHA", lv[0] = 7;
    av[1] = s->sha, lv[1] = strlen(s->sha);
    av[2] = nk, lv[2] = strlen(nk);
    for (int i = 0; i < argc; i++)
        av[3 + i] = argv[i], lv[3 + i] = lens[i];
    rc = command_locked(c, argc + 3, av, lv, out, err);
    if (rc == MD_OK && is_noscript(*out)) {
        rds_reply_free(*out);
        *out = NULL;
        av[0] = "EVAL", lv[0] = 4;
        av[1] = s->src, lv[1] = strlen(s->src);
        rc = command_locked(c, argc + 3, av, lv, out, err);
    }
    return rc;
}

int rds_eval(rds_client *c, rds_script *s, int nkeys, int argc, const char *const *argv,
             const size_t *lens, rds_reply **out, md_err *err)
{
    *out = NULL;
    size_t tmp[ARGS_MAX];
    if (argc < nkeys || nkeys < 0 || argc > ARGS_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, NULL, "bad redis script call");
    lens = lens_of(argc, argv, lens, tmp);
    pthread_mutex_lock(&c->mu);
    int rc = eval_locked(c, s, nkeys, argc, argv, lens, out, err);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

bool rds_ping(rds_client *c)
{
    rds_reply *r = NULL;
    int rc = rds_command(c, 1, (const char *const[]){"PING"}, NULL, &r, NULL);
    rds_reply_free(r);
    return rc == MD_OK;
}

int rds_publish(rds_client *c, const char *channel, const char *msg, size_t len, md_err *err)
{
    rds_reply *r = NULL;
    int rc = rds_command(c, 3, (const char *const[]){"PUBLISH", channel, msg},
                         (const size_t[]){7, strlen(channel), len}, &r, err);
    if (rc == MD_OK && r->type == RDS_ERROR)
        rc = md_fail(err, MD_E_UNAVAILABLE, "redis", "PUBLISH refused: %.100s", r->str);
    rds_reply_free(r);
    return rc;
}

void rds_metrics(md_buf *out, void *client)
{
    rds_client *c = client;
    md_buf_printf(out,
                  "# HELP modeld_redis_up 1 when the Redis server answers, 0 while it is down\n"
                  "# TYPE modeld_redis_up gauge\nmodeld_redis_up %d\n"
                  "# HELP modeld_redis_errors_total Redis commands and connects that failed\n"
                  "# TYPE modeld_redis_errors_total counter\nmodeld_redis_errors_total %llu\n",
                  rds_up(c) ? 1 : 0, (unsigned long long)atomic_load(&c->errors));
}
