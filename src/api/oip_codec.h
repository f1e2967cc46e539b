/* oip_codec.h - the Open Inference Protocol's (KServe "V2" REST) infer request decoder and
 * response encoder, JSON tensors and the binary tensor data extension, as pure functions:
 * bytes + manifest in, tensors (or an error naming the input) out. No server, no registry, so
 * the fuzz target (tests/fuzz/oip_infer_fuzz.c) and the unit tests call exactly what the
 * route calls.
 *
 * Request (application/json, or JSON header + binary tail when Inference-Header-Content-Length
 * is given):
 *   {"id"?: str, "parameters"?: {"binary_data_output"?: bool, ...},
 *    "inputs": [{"name", "shape": [int...], "datatype": "FP32", "parameters"?:
 *                {"binary_data_size"?: int}, "data"?: [...] (flat row-major or nested)}],
 *    "outputs"?: [{"name", "parameters"?: {"binary_data"?: bool}}]}
 * Response:
 *   {"model_name", "model_version", "id"?, "outputs": [{"name", "datatype", "shape",
 *    "data" | "parameters": {"binary_data_size": n}}]}   followed by the binary outputs.
 * BYTES elements in binary form are each a 4-byte little-endian length and the bytes. The
 * runtimes take BYTES as NUL-terminated strings, so an element ends at its first NUL byte.
 * JSON numbers become the input's datatype (FP16/BF16 rounded); integers must be JSON integers
 * in the datatype's range (UINT64 up to INT64_MAX in JSON; all of it as binary data).
 */
#ifndef MD_API_OIP_CODEC_H
#define MD_API_OIP_CODEC_H

#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"
#include "models/models.h"

#include <stdbool.h>
#include <stddef.h>

/* Largest element count of one tensor (guards size arithmetic; bodies are capped anyway). */
#define OIP_MAX_ELEMS (1ull << 31)
/* Largest JSON part of an infer request. A JSON number costs ~50 bytes once parsed by jansson
 * (16 when its data array takes the fast path, oip_lift.h), so this bounds a request's parse
 * memory (~1 GB at 16 MiB would be a denial of service at 25 MB); larger tensors travel as binary
 * data (the extension), which costs their size only. */
#define OIP_JSON_MAX (16u << 20)
/* Most inputs or requested outputs in one request. */
#define OIP_MAX_TENSORS 64

typedef struct oip_out_req {
    const char *name; /* arena */
    bool binary;      /* parameters.binary_data (or the request's binary_data_output) */
} oip_out_req;

typedef struct oip_infer_req {
    const char *id;           /* the request's "id" (arena), NULL when absent */
    mdl_tensor *inputs;       /* n_inputs, request order; names and data in the arena */
    size_t n_inputs;
    oip_out_req *outputs;     /* requested outputs in the order asked; n_outputs 0 = all */
    size_t n_outputs;
    bool binary_output;       /* parameters.binary_data_output: every output binary */
} oip_infer_req;

/* Parse the Inference-Header-Content-Length value v (NULL = absent: *out = 0, the whole body is
 * JSON) against the body length: a decimal 1..body_len. MD_E_INVALID_PARAM naming the header. */
int oip_header_len(const char *v, size_t body_len, size_t *out, md_err *err);

/* Decode an infer request: body[0..header_len) is JSON (header_len 0 = the whole body), the
 * rest the binary tensor data, consumed in input order by inputs with binary_data_size. Every
 * input is checked against mf (name known, no duplicate, every model input present, datatype,
 * shape with -1 free, element count vs shape, element types and ranges, binary sizes) and every
 * requested output must exist. All memory of *out comes from a (borrowed until the arena is
 * freed). Errors: MD_E_TOO_LARGE (JSON part over OIP_JSON_MAX), MD_E_INVALID_JSON, MD_E_INVALID_PARAM / MD_E_MISSING_FIELD with err->field
 * naming the input ("inputs[0].shape") and a message naming it by name. */
int oip_decode_infer(const void *body, size_t len, size_t header_len, const mdl_manifest *mf, md_arena *a,
                     oip_infer_req *out, md_err *err);

/* oip_decode_infer with the path chosen, for the tests and the fuzz target that compare them:
 * fast true is oip_decode_infer (numeric data arrays parsed straight from the text), false the
 * jansson-only decoder. Both give the same answers, errors included. */
int oip__decode_infer(const void *body, size_t len, size_t header_len, const mdl_manifest *mf, md_arena *a,
                      oip_infer_req *out, md_err *err, bool fast);

/* Encode the answer of one run into out: JSON, then the binary outputs when any output is
 * binary (then *header_len is the JSON part's length, else 0). Outputs: those rq asked for in
 * its order, else every output of res. model and version borrowed for the call.
 * MD_E_UNSUPPORTED naming the output when a value has no JSON form (NaN, non-UTF-8 BYTES: ask
 * for it with binary_data), MD_E_TOO_LARGE when out's maximum is reached. */
int oip_encode_infer(const mdl_result *res, const oip_infer_req *rq, const char *model, const char *version,
                     md_buf *out, size_t *header_len, md_err *err);

/* {"name", "datatype", "shape"} for a manifest tensor (shape -1 stays -1). New reference. */
json_t *oip_tensor_meta(const mdl_io *io);

#endif
