/* platform.h - the platform routes of modeld and the glue from the HTTP layer's hooks to
 * src/auth (credentials, rate limits) and src/store (audit log).
 *
 * Routes (api_platform_register):
 *   GET  /api/health        public   liveness: status, version, uptime
 *   GET  /api/ready         public   readiness: the database answers (later: models loaded)
 *   GET  /metrics           public (admin when metrics_public is false)   Prometheus text
 *   POST /api/auth/token    read     exchange an API key (or a token) for a short-lived JWT
 *   GET  /api/admin/audit   admin    audit log, newest first, ?limit=&offset=&before=
 *   GET  /api/test/slow     public   only with test_routes: sleeps ?ms= on the compute pool
 *   POST /api/test/echo     write    only with test_routes: echoes a JSON body (audited)
 *
 * Audit entries are queued and written by one background thread, which commits everything
 * queued (up to 256 entries) in one transaction, so a state-changing request never waits on
 * SQLite; when the queue is full the entry is written by the caller instead (slower, never
 * lost). api_platform_free flushes the queue.
 */
#ifndef MD_API_PLATFORM_H
#define MD_API_PLATFORM_H

#include "auth/auth.h"
#include "auth/ratelimit.h"
#include "config/config.h"
#include "http/http.h"
#include "store/store.h"

typedef struct api_platform api_platform;

typedef struct api_platform_opts {
    store *store;          /* borrowed; must outlive the platform */
    auth *auth;            /* borrowed; NULL = --no-auth (no credentials checked) */
    rl_limiter *limiter;   /* borrowed; NULL = no rate limiting */
    md_rate rate_read, rate_write, rate_admin, rate_anon;
    bool metrics_public;
    bool test_routes;
    uint64_t store_min_free; /* GET /api/ready fails ("store: unwritable") below this many free
                              * bytes in the data dir's file system (0: only the write probe) */
} api_platform_opts;

/* New platform (starts the audit writer: a one-thread md_pool). Ownership: new; api_platform_free. */
int api_platform_new(const api_platform_opts *o, api_platform **out, md_err *err);
/* Fill the HTTP hooks (authenticate, rate_limit, audit) that route through this platform. */
void api_platform_hooks(api_platform *p, http_hooks *h);
/* Add the routes above to srv (before http_server_start). p borrowed until http_server_free. */
int api_platform_register(api_platform *p, http_server *srv, md_err *err);
/* Only GET /api/health, GET /api/ready and GET /metrics (all public), with the store's gauges
 * (modeld_store_up, free space): the listener of a process that serves no API (`modeld worker
 * --metrics-port`). Register either this or api_platform_register on a server, not both. p
 * borrowed until http_server_free. */
int api_platform_register_probes(api_platform *p, http_server *srv, md_err *err);
/* A readiness check for GET /api/ready (e.g. "models loaded"): return MD_OK, or an error code
 * with a client-safe message in err. Runs on a compute worker; keep it quick. */
typedef int (*api_ready_fn)(void *ctx, md_err *err);
/* Add a check named name (copied; at most 8 checks) before the server starts. The database
 * check is built in. MD_E_INVALID_PARAM when the table is full. */
int api_platform_ready_check(api_platform *p, const char *name, api_ready_fn fn, void *ctx);
/* A dependency that may be degraded without making the node unready (Redis: a node without
 * it still serves): fn returns a short state ("up", "down", "not configured"; static
 * storage) that GET /api/ready reports under name; it never fails readiness. Same table and
 * limits as api_platform_ready_check. */
typedef const char *(*api_ready_info_fn)(void *ctx);
int api_platform_ready_info(api_platform *p, const char *name, api_ready_info_fn fn, void *ctx);
/* Write what is still queued, stop the writer, free. Call after http_server_free. NULL no-op. */
void api_platform_free(api_platform *p);

#endif
