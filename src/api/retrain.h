/* retrain.h - retraining (issue 11 §4): POST /api/admin/retrain and the "retrain" job kind.
 *
 *   POST /api/admin/retrain   admin  {model, data: "<dataset id>" | "feedback", params?,
 *                                     canary_percent?} -> 202 {job_id, status, links}
 *
 * The request is checked before a job is queued (pl_retrain_check): unknown model 404, a model
 * that cannot be retrained 422 naming "model", an unknown dataset 404 naming "data", a dataset
 * without a needed column 422 naming the column, too little feedback 422 naming "data", bad
 * params 400 naming "params.<key>". The job (kind API_RETRAIN_KIND) runs pl_retrain: its
 * progress has the stages "reading", "training" (the fraction of rounds done), "evaluating",
 * "installing"; its result (GET /api/v1/jobs/{id}/result, application/json) and its result_meta
 * are pl_retrain's answer (result_meta the same plus "format": "json", which the callbacks carry):
 * the new version, its state (CANARY or STANDBY) and both metrics.
 * The kind runs in `modeld serve` processes only (api_bulk_kind.serving): the new version must
 * land in the registry that answers requests.
 */
#ifndef MD_API_RETRAIN_H
#define MD_API_RETRAIN_H

#include "api/bulk.h"
#include "base/err.h"
#include "http/http.h"
#include "jobs/jobs.h"
#include "models/models.h"
#include "store/store.h"

#define API_RETRAIN_KIND "retrain"

typedef struct api_retrain_opts {
    jobs *jq;              /* borrowed until http_server_free */
    mdl_registry *reg;     /* borrowed: the admission check */
    store *st;             /* borrowed: datasets and feedback */
    double canary_percent; /* default share of requests for a better version; 0 = 10 */
} api_retrain_opts;

typedef struct api_retrain api_retrain;

/* Add the route above. *out is new (api_retrain_free after http_server_free). */
int api_retrain_register(http_server *srv, const api_retrain_opts *o, api_retrain **out,
                         md_err *err);
void api_retrain_free(api_retrain *a); /* NULL is a no-op */

/* Run one "retrain" job; user is an api_bulk_kind (its models and st). Params
 * {model, data, params?, canary_percent?}. */
int api_retrain_run(job_run *r, void *user);

#endif
