/* cluster.h - what a node shares with the other nodes of a cluster through Redis (issue 12):
 * the CLI is the one place that knows both Redis (src/redis) and the modules it serves, so
 * auth, api, models and jobs stay independent of it and get plain callback tables:
 *
 *   rate limits   rl_shared (auth/ratelimit.h): one atomic Lua script per check
 *   L2 cache      cv_l2 (api/convert_cache.h): conversion answers, TTL redis_cache_ttl
 *   model events  mdl_registry_opts.on_change publishes; the subscriber calls mdl_sync
 *   job events    job_opts.on_event publishes; the subscriber calls job_event_apply
 *
 * Without --redis every function here is a no-op on a NULL cluster (cli_cluster_open gives
 * NULL), so callers need no "if redis" of their own.
 */
#ifndef MD_CLI_CLUSTER_H
#define MD_CLI_CLUSTER_H

#include "api/convert_cache.h"
#include "auth/ratelimit.h"
#include "base/buf.h"
#include "config/config.h"
#include "jobs/jobs.h"
#include "models/models.h"

typedef struct cli_cluster cli_cluster;

/* *out is new (cli_cluster_close), or NULL when cfg->redis is empty. A server that does not
 * answer is not an error (the node runs degraded, see redis.h); a bad URL is
 * (MD_E_INVALID_PARAM, field "redis"). */
int cli_cluster_open(const md_config *cfg, cli_cluster **out, md_err *err);

/* The callback tables, borrowed until cli_cluster_close; NULL for a NULL cluster. */
const rl_shared *cli_cluster_rate(cli_cluster *cl);
rl_down_policy cli_cluster_down_policy(const md_config *cfg);
const cv_l2 *cli_cluster_l2(cli_cluster *cl);

/* The hooks to put in mdl_registry_opts.on_change and job_opts.on_event, with cl as ctx. */
void cli_cluster_model_changed(void *cl, const char *name);
void cli_cluster_job_event(void *cl, const job_info *info);

/* Start following the other nodes' events: model changes are applied to reg (NULL = none)
 * and job changes handed to jq's subscribers (NULL = none); both borrowed until
 * cli_cluster_close. After each (re)connect of the subscriber every model of reg is synced
 * from the store, so that changes missed while disconnected are caught up. */
int cli_cluster_follow(cli_cluster *cl, mdl_registry *reg, jobs *jq, md_err *err);

/* "up", "down" or (NULL cluster) "not configured": the readiness report. */
const char *cli_cluster_state(void *cl);
/* Prometheus lines (an http_collector_fn). */
void cli_cluster_metrics(md_buf *out, void *cl);

/* Stop following (joins the subscriber: no event reaches reg or jq after it returns). Call
 * before closing the registry and the job queue. NULL is a no-op. */
void cli_cluster_stop(cli_cluster *cl);
/* Stop, then close. Call after closing the registry and the job queue (their hooks publish
 * through cl until then). NULL is a no-op. */
void cli_cluster_close(cli_cluster *cl);

#endif
