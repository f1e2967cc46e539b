/* models_api.h - modeld's own model management routes over the registry, the "models"
 * readiness check and the search for the shipped model repository.
 *
 * Routes (api_models_register):
 *   GET  /api/models                                   read   every model: family, active version,
 *                                                             canary, state, versions
 *   GET  /api/models/{name}[?version=V]                read   one model with its manifest and statistics
 *   POST /api/models/{name}/versions/{v}/activate      admin  load + validate + publish as ACTIVE
 *   POST /api/models/{name}/versions/{v}/canary        admin  {"percent": 0..100} of requests to v (0 ends it)
 *   POST /api/models/{name}/promote                    admin  the canary becomes ACTIVE
 *   POST /api/models/{name}/rollback                   admin  the newest STANDBY becomes ACTIVE again
 * The admin routes are audited by the platform (authenticated writes) and answer the model as
 * GET /api/models/{name} shows it after the change.
 */
#ifndef MD_API_MODELS_API_H
#define MD_API_MODELS_API_H

#include "base/err.h"
#include "http/http.h"
#include "models/models.h"

#include <stddef.h>

/* Add the routes above. reg is borrowed until http_server_free. */
int api_models_register(http_server *srv, mdl_registry *reg, md_err *err);

/* Readiness check for api_platform_ready_check(p, "models", api_models_ready, reg): MD_OK when
 * every required model is ACTIVE, else MD_E_MODEL_UNAVAILABLE naming the first that is not. */
int api_models_ready(void *reg, md_err *err);

/* The shipped model repository: dir when non-NULL and non-empty (the models_dir setting), else
 * the first existing directory of <exe>/../../models, <exe>/../models,
 * <exe>/../share/modeld/models and the source tree's models/ (a build-time path). Written into
 * out (cap bytes); MD_E_FILE_NOT_FOUND when none exists (serve then runs without shipped models). */
int api_models_find_dir(const char *dir, char *out, size_t cap, md_err *err);

#endif
