/* predict_api.h - the business prediction routes over pl_predict (src/pipelines, predict.c):
 * only models of family "predict" answer here (others: 404 model_not_found).
 *
 * Routes (api_predict_register):
 *   POST /api/{model}                          write  {"features": {...}, "options"?: {...}} ->
 *                                                     {model, version, prediction, explanation,
 *                                                      prediction_id, request_id}
 *   POST /api/{model}/batch                    write  {"items": [{...}...] (<= 10,000),
 *                                                      "options"?} -> {model, version,
 *                                                      predictions, count, failed, request_id}
 *   GET  /api/{model}/models/{name}/info       read   the version's schema, task, metrics, card
 *   GET  /api/{model}/models/{name}/health     read   the version's state and request counts
 * {name} is a version id of the model, or "active" (or the model's own name) for the version
 * serving now. Literal /api/... routes registered by others stay more specific than {model}.
 */
#ifndef MD_API_PREDICT_API_H
#define MD_API_PREDICT_API_H

#include "base/err.h"
#include "http/http.h"
#include "models/models.h"

/* Add the routes above. reg is borrowed until http_server_free. */
int api_predict_register(http_server *srv, mdl_registry *reg, md_err *err);

#endif
