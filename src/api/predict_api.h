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
 *   GET  /api/{model}/history?from&to&limit&offset  read   logged predictions, newest first
 *   POST /api/{model}/feedback                 write  {prediction_id, actual}
 *   GET  /api/{model}/drift?from&to            read   per-feature PSI / KS, alert levels
 *   GET  /api/admin/metrics                    admin  per predict model: counts, latency,
 *                                                     failures, drift status of the last 24 h
 * Times are ms since 1970. {name} is a version id of the model, or "active" (or the model's own
 * name) for the version serving now. Literal /api/... routes registered by others stay more
 * specific than {model}.
 */
#ifndef MD_API_PREDICT_API_H
#define MD_API_PREDICT_API_H

#include "base/err.h"
#include "http/http.h"
#include "models/models.h"
#include "store/store.h"

typedef struct api_predict api_predict;

typedef struct api_predict_opts {
    mdl_registry *reg; /* borrowed until api_predict_free */
    store *st;         /* borrowed; NULL: no prediction log (history, feedback, drift answer
                          MD_E_UNAVAILABLE) */
    double log_sample; /* share of predictions logged, 0..1 (the predict_log_sample setting) */
} api_predict_opts;

/* Add the routes above. *out is new (api_predict_free, after http_server_free). */
int api_predict_register(http_server *srv, const api_predict_opts *o, api_predict **out,
                         md_err *err);
void api_predict_free(api_predict *a); /* NULL is a no-op */

#endif
