/* oip.h - the Open Inference Protocol (KServe "V2" REST, as Triton, KServe and MLServer speak
 * it) over the model registry, with Triton's binary tensor data, statistics and model
 * repository extensions.
 *
 * Routes (api_oip_register); every one renders its errors the OIP way, {"error": "<message>"}
 * (HTTP_ERR_OIP), with the status from the common error table:
 *   GET  /v2                                         public  server metadata
 *   GET  /v2/health/live                             public  200, empty body
 *   GET  /v2/health/ready                            public  200 when every required model is ACTIVE
 *   GET  /v2/models/{m}[/versions/{v}]               read    model metadata
 *   GET  /v2/models/{m}[/versions/{v}]/ready         read    200 when that model (version) serves
 *   POST /v2/models/{m}[/versions/{v}]/infer         read    inference (compute pool)
 *   GET  /v2/models/stats, /v2/models/{m}[/versions/{v}]/stats   read   statistics extension
 *   POST /v2/repository/index                        read    every model version and its state
 *   POST /v2/repository/models/{m}/load              admin   load from disk, or install inline files
 *   POST /v2/repository/models/{m}/unload            admin   retire every loaded version
 */
#ifndef MD_API_OIP_H
#define MD_API_OIP_H

#include "base/err.h"
#include "http/http.h"
#include "models/models.h"

/* Add the routes above. reg is borrowed until http_server_free. */
int api_oip_register(http_server *srv, mdl_registry *reg, md_err *err);

#endif
