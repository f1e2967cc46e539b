/* cluster.c - the Redis side of a cluster node (see cluster.h).
 *
 * Keys and channels (one Redis may serve several clusters when each uses its own db):
 *   modeld:rl:<bucket>   hash {tokens, ts}: a token bucket, expiring once it would be full
 *   modeld:cv:<key>      a conversion answer (JSON), with a TTL
 *   modeld:models        "<node>\t<model>": a model's serving set changed in the store
 *   modeld:jobs          "<node>\t<id>\t<state>\t<progress>\t<stage>": a job changed
 *
 * Invariants:
 *   1. A node ignores its own events (node id: 16 random hex digits per process): it has
 *      already applied them.
 *   2. Token buckets run on the Redis server's clock (TIME inside the script), so nodes whose
 *      clocks differ still share one bucket; the arithmetic is auth/ratelimit.c's (refill
 *      min(burst, tokens + elapsed * rate), take one when >= 1, Retry-After
 *      ceil((1 - tokens) / rate) and at least 1), so a node falling back to its local buckets
 *      answers the same way.
 *   3. Nothing here blocks a request on a dead Redis for longer than one timeout (redis.h);
 *      a failed call means: shared limits fall back (or refuse), the L2 is a miss, an event is
 *      lost (other nodes still see the change within their store poll, or at the next
 *      resubscribe's full sync).
 */
#include "cli/cluster.h"

#include "base/log.h"
#include "redis/redis.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CH_MODELS "modeld:models"
#define CH_JOBS "modeld:jobs"

struct cli_cluster {
    rds_client *rc;
    rds_sub *sub;
    mdl_registry *reg; /* borrowed: cli_cluster_follow */
    jobs *jq;
    char node[17];
    char *url;     /* cfg->redis, copied: the subscriber connects with it */
    rds_opts opts; /* url and timeouts of both connections */
    rl_shared rate;
    cv_l2 l2;
};

/* Invariant 2. KEYS[1] bucket; ARGV rate, burst. Returns {allowed, tokens as text}. */
static rds_script RATE_SCRIPT = RDS_SCRIPT(
    "local rate = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
    "local tokens = tonumber(b[1])\n"
    "local ts = tonumber(b[2])\n"
    "if tokens == nil or ts == nil then tokens = burst; ts = now end\n"
    "if now > ts then tokens = math.min(burst, tokens + (now - ts) / 1e6 * rate); ts = now end\n"
    "if tokens > burst then tokens = burst end\n"
    "local allowed = 0\n"
    "if tokens >= 1 then tokens = tokens - 1; allowed = 1 end\n"
    "redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', "
    "string.format('%.0f', ts))\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)\n"
    "return {allowed, string.format('%.17g', tokens)}\n");

/* KEYS[1]: {value, pttl} or nil. */
static rds_script GET_SCRIPT = RDS_SCRIPT("local v = redis.call('GET', KEYS[1])\n"
                                          "if not v then return nil end\n"
                                          "return {v, redis.call('PTTL', KEYS[1])}\n");

static uint32_t ceil_s(double x)
{
    if (x <= 0)
        return 0;
    double c = ceil(x - 1e-9);
    return c > 4e9 ? 4000000000u : (uint32_t)c;
}

/* ---- rate limits ---- */

static int rate_take(void *ctx, const char *key, size_t len, rl_rate rate, rl_result *res)
{
    cli_cluster *cl = ctx;
    char k[300], r[32], b[16];
    int kn = snprintf(k, sizeof k, "modeld:rl:%.*s", (int)(len > 256 ? 256 : len), key);
    snprintf(r, sizeof r, "%.17g", rate.per_sec);
    snprintf(b, sizeof b, "%u", rate.burst);
    rds_reply *rep = NULL;
    int rc = rds_eval(cl->rc, &RATE_SCRIPT, 1, 3, (const char *const[]){k, r, b},
                      (const size_t[]){(size_t)kn, strlen(r), strlen(b)}, &rep, NULL);
    if (rc != MD_OK || rep->type != RDS_ARRAY || rep->n != 2 || rep->elem[0].type != RDS_INT ||
        rep->elem[1].type != RDS_STR) {
        if (rc == MD_OK)
            md_log(MD_LOG_WARN, "redis: unexpected answer of the rate-limit script");
        rds_reply_free(rep);
        return MD_E_UNAVAILABLE;
    }
    double tokens = strtod(rep->elem[1].str, NULL);
    bool allowed = rep->elem[0].integer == 1;
    rds_reply_free(rep);
    res->limit = rate.burst;
    res->remaining = tokens > 0 ? (uint32_t)floor(tokens) : 0;
    res->reset_s = ceil_s(((double)rate.burst - tokens) / rate.per_sec);
    res->retry_after_s = 0;
    if (allowed)
        return MD_OK;
    uint32_t ra = ceil_s((1.0 - tokens) / rate.per_sec);
    res->retry_after_s = ra ? ra : 1;
    return MD_E_RATE_LIMITED;
}

/* ---- the L2 cache ---- */

static int l2_get(void *ctx, const char *key, char **value, size_t *len, int64_t *expires_wall_ms)
{
    cli_cluster *cl = ctx;
    char k[128];
    snprintf(k, sizeof k, "modeld:cv:%s", key);
    rds_reply *rep = NULL;
    int rc = rds_eval(cl->rc, &GET_SCRIPT, 1, 1, (const char *const[]){k}, NULL, &rep, NULL);
    int hit = rc == MD_OK && rep->type == RDS_ARRAY && rep->n == 2 &&
              rep->elem[0].type == RDS_STR && rep->elem[1].type == RDS_INT &&
              rep->elem[1].integer > 0;
    if (hit) {
        *value = rep->elem[0].str; /* steal the copy */
        *len = rep->elem[0].len;
        rep->elem[0].str = NULL;
        *expires_wall_ms = md_wall_ms() + rep->elem[1].integer;
    }
    rds_reply_free(rep);
    return hit;
}

static void l2_put(void *ctx, const char *key, const char *value, size_t len, int64_t ttl_ms)
{
    cli_cluster *cl = ctx;
    char k[128], ttl[24];
    snprintf(k, sizeof k, "modeld:cv:%s", key);
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
    rds_reply *rep = NULL;
    rds_command(cl->rc, 5, (const char *const[]){"SET", k, value, "PX", ttl},
                (const size_t[]){3, strlen(k), len, 2, strlen(ttl)}, &rep, NULL);
    rds_reply_free(rep);
}

/* ---- events ---- */

void cli_cluster_model_changed(void *ctx, const char *name)
{
    cli_cluster *cl = ctx;
    if (!cl)
        return;
    char msg[128];
    int n = snprintf(msg, sizeof msg, "%s\t%s", cl->node, name);
    rds_publish(cl->rc, CH_MODELS, msg, (size_t)n, NULL);
}

void cli_cluster_job_event(void *ctx, const job_info *info)
{
    cli_cluster *cl = ctx;
    if (!cl)
        return;
    char msg[256];
    int n = snprintf(msg, sizeof msg, "%s\t%s\t%d\t%.6f\t%s", cl->node, info->id, info->state,
                     info->progress, info->stage);
    rds_publish(cl->rc, CH_JOBS, msg, (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1),
                NULL);
}

/* "<node>\t<id>\t<state>\t<progress>\t<stage>" (msg NUL-terminated, modified). */
static void on_job(cli_cluster *cl, char *rest)
{
    char *f[4] = {0};
    for (int i = 0; i < 4 && rest; i++) {
        f[i] = rest;
        rest = i < 3 ? strchr(rest, '\t') : NULL;
        if (rest)
            *rest++ = 0;
    }
    if (f[3] && cl->jq)
        job_event_apply(cl->jq, f[0], atoi(f[1]), strtod(f[2], NULL), f[3]);
}

static void on_message(void *ctx, const char *channel, const char *msg, size_t len)
{
    cli_cluster *cl = ctx;
    char buf[512];
    if (len >= sizeof buf || len < sizeof cl->node ||
        memcmp(msg, cl->node, sizeof cl->node - 1) == 0 || msg[sizeof cl->node - 1] != '\t')
        return; /* invariant 1, or not ours */
    memcpy(buf, msg, len);
    buf[len] = 0;
    char *rest = buf + sizeof cl->node;
    md_err e;
    md_err_clear(&e);
    if (strcmp(channel, CH_MODELS) == 0 && cl->reg && mdl_sync(cl->reg, rest, &e) != MD_OK)
        md_log(MD_LOG_WARN, "models: cannot follow the change of %.64s made by another node: %s",
               rest, md_err_message(&e));
    else if (strcmp(channel, CH_JOBS) == 0)
        on_job(cl, rest);
}

/* After a (re)subscribe: what changed while we were not listening. */
static void on_connect(void *ctx)
{
    cli_cluster *cl = ctx;
    json_t *all = cl->reg ? mdl_describe_all(cl->reg) : NULL;
    size_t i;
    json_t *m;
    json_array_foreach(all, i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        md_err e;
        md_err_clear(&e);
        if (name && mdl_sync(cl->reg, name, &e) != MD_OK)
            md_log(MD_LOG_WARN, "models: cannot sync %s from the store: %s", name,
                   md_err_message(&e));
    }
    json_decref(all);
}

/* ---- life ---- */

int cli_cluster_open(const md_config *cfg, cli_cluster **out, md_err *err)
{
    *out = NULL;
    if (!cfg->redis || !*cfg->redis)
        return MD_OK;
    if (sodium_init() < 0)
        return md_fail(err, MD_E_INTERNAL, NULL, "libsodium cannot start");
    cli_cluster *cl = calloc(1, sizeof *cl);
    if (!cl)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    uint8_t id[8];
    randombytes_buf(id, sizeof id);
    sodium_bin2hex(cl->node, sizeof cl->node, id, sizeof id);
    cl->url = strdup(cfg->redis);
    cl->opts = (rds_opts){.url = cl->url,
                          .connect_timeout_ms = (int)cfg->redis_timeout_ms,
                          .command_timeout_ms = (int)cfg->redis_timeout_ms};
    int rc = cl->url ? rds_open(&cl->opts, &cl->rc, err) : md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc != MD_OK) {
        free(cl->url);
        free(cl);
        return rc;
    }
    cl->rate = (rl_shared){.take = rate_take, .ctx = cl};
    cl->l2 = (cv_l2){.get = l2_get, .put = l2_put, .ctx = cl};
    md_log_fields(MD_LOG_INFO, "redis configured: shared rate limits, L2 cache, cluster events",
                  (const char *const[]){"redis", cfg->redis, "node", cl->node, "state",
                                        rds_up(cl->rc) ? "up" : "down", NULL});
    *out = cl;
    return MD_OK;
}

int cli_cluster_follow(cli_cluster *cl, mdl_registry *reg, jobs *jq, md_err *err)
{
    if (!cl)
        return MD_OK;
    cl->reg = reg;
    cl->jq = jq;
    const char *chans[] = {CH_MODELS, CH_JOBS};
    rds_sub_opts so = {.channels = chans,
                       .n = 2,
                       .on_message = on_message,
                       .on_connect = on_connect,
                       .ctx = cl,
                       .errors_to = cl->rc};
    return rds_sub_open(&cl->opts, &so, &cl->sub, err);
}

const rl_shared *cli_cluster_rate(cli_cluster *cl)
{
    return cl ? &cl->rate : NULL;
}

rl_down_policy cli_cluster_down_policy(const md_config *cfg)
{
    return cfg->redis_down && strcmp(cfg->redis_down, "refuse") == 0 ? RL_DOWN_REFUSE
                                                                     : RL_DOWN_LOCAL;
}

const cv_l2 *cli_cluster_l2(cli_cluster *cl)
{
    return cl ? &cl->l2 : NULL;
}

const char *cli_cluster_state(void *ctx)
{
    cli_cluster *cl = ctx;
    if (!cl)
        return "not configured";
    return rds_ping(cl->rc) ? "up" : "down"; /* fails fast while down (backoff) */
}

void cli_cluster_metrics(md_buf *out, void *ctx)
{
    cli_cluster *cl = ctx;
    if (!cl) {
        md_buf_puts(out, "# HELP modeld_redis_configured 1 when this node uses a Redis\n"
                         "# TYPE modeld_redis_configured gauge\nmodeld_redis_configured 0\n");
        return;
    }
    md_buf_puts(
        out, "# HELP modeld_redis_configured 1 when this node uses a Redis\n"
             "# TYPE modeld_redis_configured gauge\nmodeld_redis_configured 1\n"
             "# HELP modeld_redis_subscriber_up 1 while the cluster-event subscriber is connected\n"
             "# TYPE modeld_redis_subscriber_up gauge\n");
    md_buf_printf(out, "modeld_redis_subscriber_up %d\n", rds_sub_up(cl->sub) ? 1 : 0);
    rds_ping(cl->rc); /* the gauge says now, not at the last command */
    rds_metrics(out, cl->rc);
}

void cli_cluster_stop(cli_cluster *cl)
{
    if (!cl)
        return;
    rds_sub_close(cl->sub);
    cl->sub = NULL;
}

void cli_cluster_close(cli_cluster *cl)
{
    if (!cl)
        return;
    cli_cluster_stop(cl);
    rds_close(cl->rc);
    free(cl->url);
    free(cl);
}
