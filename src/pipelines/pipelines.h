/* pipelines.h - where a unit of work runs, with no HTTP in sight: the server's compute pool,
 * `modeld vectorize` and (later) `modeld worker` call the same functions (libuv's work / after-
 * work split: the pipeline is the work, the handler's rendering is the after-work).
 *
 *   pl_vectorize: image bytes or an upload -> admission by cost -> decode -> "smart" analysis
 *                 -> trace (vec_convert) -> result stored (when there is a store)
 *   pl_enhance:   image bytes -> decode + EXIF orientation -> super-resolution network over
 *                 overlapping tiles (enhance.c) -> encoded result (no store: the job layer keeps it)
 *
 * A pl_ctx carries what the work may use and how it must stop: the store (NULL for the CLI),
 * the model registry (borrowed, unused by pl_vectorize so far), a cancel token (deadline, cancel,
 * progress sink: base/cancel.h) and an admission budget (pl_budget, below).
 *
 * Errors are md codes with the detail in md_err (field named), as everywhere: bad parameters
 * MD_E_INVALID_PARAM, unknown upload MD_E_FILE_NOT_FOUND (field "file_id"), images the decoders
 * refuse (corrupt_image, truncated_image, unsupported_format), MD_E_IMAGE_TOO_LARGE past the
 * per-conversion pixel budget, MD_E_OVERLOADED when the pool-wide budget is spent (the HTTP layer
 * answers 503 + Retry-After), MD_E_TIMEOUT / MD_E_CANCELLED when the token stopped the work.
 */
#ifndef MD_PIPELINES_H
#define MD_PIPELINES_H

#include "base/cancel.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/trace.h"
#include "image/image.h"
#include "store/store.h"
#include "vectorize/vec.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mdl_registry; /* src/models/models.h; only carried here */
struct mdl_manifest;

/* ---- admission by cost ------------------------------------------------------------------
 *
 * What an image costs is known from its header before any pixel is decoded: width * height
 * bounds the decoded buffer (4 bytes a pixel), the tracer's label and cluster arrays and the
 * render + SSIM buffers, and the tracing time grows with it. So a conversion is admitted by its
 * pixel count twice: against a per-conversion maximum (larger: MD_E_IMAGE_TOO_LARGE, naming the
 * limit; the client should scale the image down), and against a budget shared by every running
 * conversion (over it: MD_E_OVERLOADED, retry later). A 6000x6000 PNG of 35 KB is thereby
 * refused in microseconds instead of holding a worker and a gigabyte for minutes.
 */
typedef struct pl_budget pl_budget;

typedef struct pl_budget_opts {
    uint64_t max_pixels;    /* per conversion (decoded width * height); 0 = no limit */
    uint64_t max_in_flight; /* pixels of all admitted conversions together; 0 = no limit */
} pl_budget_opts;

/* Defaults: 16 Mpx per conversion, 2 x that in flight. */
pl_budget_opts pl_budget_opts_default(void);
/* *out is new (pl_budget_free). MD_E_NOMEM. Thread-safe once made. */
int pl_budget_new(const pl_budget_opts *o, pl_budget **out);
/* NULL is a no-op. No admission may be outstanding. */
void pl_budget_free(pl_budget *b);
/* Admit pixels: MD_OK (release them with pl_budget_release), MD_E_IMAGE_TOO_LARGE (field
 * "pixels") or MD_E_OVERLOADED. b may be NULL (always admitted). */
int pl_budget_acquire(pl_budget *b, uint64_t pixels, md_err *err);
void pl_budget_release(pl_budget *b, uint64_t pixels);
/* Pixels admitted now (for metrics and tests). */
uint64_t pl_budget_in_flight(const pl_budget *b);
/* The limits b was made with. */
pl_budget_opts pl_budget_limits(const pl_budget *b);

/* ---- the context of one unit of work ---------------------------------------------------- */

typedef struct pl_ctx {
    store *st;                   /* borrowed; NULL = no store (the CLI): no file_id, no result */
    struct mdl_registry *models; /* borrowed; may be NULL */
    const md_cancel *cancel;     /* borrowed; NULL = never stops (deadline, cancel, progress) */
    pl_budget *budget;           /* borrowed; NULL = no admission limits */
    img_limits limits;           /* decoder limits (dimensions, pixels); zero = defaults */
    size_t upload_max_bytes;     /* largest upload blob read from the store; 0 = 20 MB */
    int64_t result_ttl_ms;       /* stored results live this long; 0 = 24 h */
    double log_sample;           /* pl_predict*: share of predictions logged to st (0..1) */
    bool no_explain;             /* pl_predict_batch: skip the explanations (TreeSHAP, most of a
                                  * batch's time): "explanation" is null (bulk jobs) */
    const tr_ctx *trace;         /* borrowed; parent of the pipeline's spans (a request's or a job
                                  * run's context); NULL = they start their own trace */
} pl_ctx;

/* ---- vectorize -------------------------------------------------------------------------- */

typedef enum pl_converter {
    PL_VTRACER = 0, /* colour unless the parameters say binary */
    PL_POTRACE,     /* always black and white */
    PL_SMART,       /* looks at the pixels (pl_looks_binary) and picks */
    PL__CONVERTERS
} pl_converter;

/* "vtracer", "potrace", "smart"; static storage. */
const char *pl_converter_name(pl_converter c);
/* By name; MD_E_INVALID_PARAM (field "converter") for others. */
int pl_converter_parse(const char *name, pl_converter *out, md_err *err);

typedef struct pl_vec_in {
    /* The image: bytes (borrowed for the call), or an upload of cx->st named by file_id. */
    const void *image;
    size_t image_len;
    const char *file_id;
    /* The upload file_id names, when the caller has looked it up already (saves a store read;
     * borrowed). NULL = pl_vectorize looks it up (MD_E_FILE_NOT_FOUND when unknown/expired). */
    const store_upload *upload;
    pl_converter converter;
    vec_params params;    /* checked by vec_params_validate; colormode is set by the converter for
                             potrace (binary) and smart (its choice) */
    int measure_quality;  /* 1: render and compute SSIM */
    const char *filename; /* kept with a stored result when there is no upload; may be NULL */
} pl_vec_in;

typedef struct pl_vec_timing {
    double read_ms; /* store read (0 for bytes) */
    double decode_ms;
    double analyse_ms; /* smart's look at the pixels */
    double total_ms;   /* read to trace done (what the API reports as processing_time) */
    double store_ms;   /* writing the result */
} pl_vec_timing;

typedef struct pl_vec_out {
    vec_result *res; /* new (pl_vec_out_free): SVG, SSIM, paths, vec timings, params used */
    pl_vec_timing timing;
    int width, height; /* of the decoded image */
    img_format format;
    int smart_binary; /* PL_SMART: 1 when it chose black and white, 0 colour; else -1 */
    /* When cx->st is set: the stored result and when it expires; "" and 0 otherwise. */
    char result_id[STORE_RESULT_ID_MAX];
    int64_t result_expires_ms;
} pl_vec_out;

/* Run one conversion (see the top of this file). in is borrowed for the call; *out is filled
 * (zeroed first; free with pl_vec_out_free, also after a failure). With a store the result is
 * kept for cx->result_ttl_ms with this JSON metadata (GET /api/results/{id} reads it):
 *   {"ssim", "processing_time" (s), "svg_bytes", "path_count", "parameters", "converter",
 *    "filename"} */
int pl_vectorize(pl_ctx *cx, const pl_vec_in *in, pl_vec_out *out, md_err *err);
void pl_vec_out_free(pl_vec_out *out);

/* ---- enhance (enhance.c) ----------------------------------------------------------------
 *
 * Models: registry names "esrgan-<net>-x<scale>" (net slim | medium | thick, scale 2 | 3 | 4 | 8),
 * version "1" = UpscalerJS's npm release 1.0.0, converted by training/enhance/convert.py into
 * <data_dir>/models at build time (`make enhance-models`). One registry model per (net, scale):
 * each has its own active version, canary and rollback. Interface of every one: input "image"
 * FP32 [1, 3, H, W] 0..255, output "upscaled" [1, 3, sH, sW] (clamped and rounded here).
 * Quality fast -> slim, balanced -> medium, best -> thick.
 *
 * Errors: MD_E_INVALID_PARAM naming "quality" / "upscale" / "output_format" / "jpeg_quality";
 * MD_E_UNSUPPORTED (422) "face_enhance" when no face detector is available (always, so far:
 * pl_enhance_face_available says 0); decoder errors as img_decode (unknown bytes:
 * MD_E_UNSUPPORTED_FORMAT, 415); MD_E_IMAGE_TOO_LARGE ("upscale") when the result would pass
 * PL_ENH_MAX_OUT_PIXELS; MD_E_MODEL_NOT_FOUND / MD_E_MODEL_UNAVAILABLE when the network is not
 * converted or not loaded; MD_E_CANCELLED / MD_E_TIMEOUT from cx->cancel (checked between tiles).
 * Progress: cx->cancel's sink gets 0..1 with stages "decode", "tile i/n", "encode"
 * ("tile i/n pass k/8" with ensemble).
 *
 * Self-ensemble (ensemble = 1): every tile goes through the network 8 times, once for each of
 * the 8 flips and rotations of its window, and the 8 outputs, turned back, are averaged in float
 * before the rounding: +0.05 dB PSNR over plain best on bench/enhance.sh's quality set, for
 * about 7x the CPU time (README). Any quality takes it. */
#define PL_ENH_MAX_OUT_PIXELS ((uint64_t)100 * 1000 * 1000)

typedef enum pl_enh_quality { PL_ENH_FAST, PL_ENH_BALANCED, PL_ENH_BEST } pl_enh_quality;
/* "fast", "balanced", "best"; MD_E_INVALID_PARAM (field "quality") for others. */
int pl_enh_quality_parse(const char *s, pl_enh_quality *q, md_err *err);
/* "fast", "balanced", "best" or "unknown"; static. */
const char *pl_enh_quality_name(pl_enh_quality q);
/* The registry model serving (q, scale): "esrgan-slim-x4"... into out (>= 32 bytes).
 * MD_E_INVALID_PARAM ("quality" / "upscale"). */
int pl_enh_model_name(pl_enh_quality q, int scale, char *out, size_t cap, md_err *err);

typedef struct pl_enh_in {
    const void *image; /* borrowed for the call */
    size_t image_len;
    pl_enh_quality quality;
    int scale;        /* 2, 3, 4, 8 */
    int face_enhance; /* refused (MD_E_UNSUPPORTED) while pl_enhance_face_available is 0 */
    int ensemble;     /* 1: the 8-pass self-ensemble (see above) */
    img_format out_format; /* IMG_FMT_JPEG, IMG_FMT_PNG, IMG_FMT_WEBP */
    int jpeg_quality; /* 1..100 for jpg and webp; 0 = 90 */
    size_t tile_budget; /* bytes for one tile's network run; 0 = PL_ENH_TILE_BUDGET */
    int tile;           /* tile side in input pixels (tests); 0 = from the budget */
} pl_enh_in;
#define PL_ENH_TILE_BUDGET ((size_t)512 << 20)

typedef struct pl_enh_out {
    md_buf image; /* new: the encoded result (pl_enh_out_free) */
    int width, height;
    img_format format;
    int faces_found;
    int tiles;       /* tiles (each one network run, or 8 with ensemble) */
    int tile_size;   /* core tile side in input pixels */
    double total_ms;
} pl_enh_out;

/* Peak memory estimate in bytes of enhancing a w x h image with in's options (admission);
 * also checks that the model serving it is known (MD_E_MODEL_NOT_FOUND otherwise). Errors as
 * pl_enhance's parameter checks. */
int pl_enhance_estimate(pl_ctx *cx, int w, int h, const pl_enh_in *in, uint64_t *bytes,
                        md_err *err);
/* Enhance one image (see the block above). in is borrowed; *out is zeroed first and filled;
 * free with pl_enh_out_free (also after a failure). */
int pl_enhance(pl_ctx *cx, const pl_enh_in *in, pl_enh_out *out, md_err *err);
void pl_enh_out_free(pl_enh_out *out);
/* 1 when face_enhance can be honoured (for /api/v1/config); 0 now: no detector shipped. */
int pl_enhance_face_available(pl_ctx *cx);

/* 1 when an image is better traced in black and white: nearly no pixel has colour and nearly
 * all are near black or near white once composited on white ("smart"'s choice). */
int pl_looks_binary(const md_image *img);

/* ---- AI vectorize (vectorize_ai.c) -------------------------------------------------------
 *
 *   image -> vec_features -> classify (vectorize-classifier) -> parameter guess
 *   (vectorize-params) -> route (tier_auto) -> tier 1 | 2 | 3 -> the best measured conversion
 *
 * Tier 1 converts once: the parameter guess, or the measured-best set for the logo type when
 * the quality model does not separate them. Tier 2 converts the default preset (the size
 * budget's reference), the logo type's set and the head of a fixed portfolio of sets (measured
 * on training images, bench/vectorize_portfolio.py), then scores a few hundred candidate sets
 * with vectorize-quality in one batched run and converts the best few. Tier 3 runs tier 2 with
 * a longer portfolio, then a coordinate search with real conversions from its best. Objective: the
 * highest measured SSIM whose SVG stays within the size budget (max_svg_bytes, else 3x the default
 * preset's bytes); reaching the target quality ends the search; a new conversion starts only while
 * the time budget is not spent, so it is exceeded by at most one conversion. A missing model
 * (unloaded, failed, another feature list) is replaced by rules (fallback_used, fallback_reason);
 * with none of the three models runnable the call fails with MD_E_MODEL_UNAVAILABLE (use the manual
 * conversion instead). Models must record the features they read as a "features" array of names in
 * their manifest's "preprocessing" object (vectorize-quality: the features, then optionally the 10
 * encoded parameter names); a different list is "feature list mismatch".
 */
#define PL_AI_CLASSES 4
#define PL_AI_MODELS 3
/* Registry names: [0] classifier, [1] quality, [2] params. Static. */
const char *pl_ai_model_name(int i);
/* Logo types in the classifier's output order: simple_geometric, text_based, gradient,
 * complex. Static; "unknown" out of range. */
const char *pl_ai_logo_type_name(int i);

typedef struct pl_ai_in {
    /* The image, as for pl_vectorize: bytes (borrowed) or an upload of cx->st. */
    const void *image;
    size_t image_len;
    const char *file_id;
    const store_upload *upload;
    const char *filename;  /* kept with a stored result when there is no upload; may be NULL */
    int tier;              /* 0 = auto, 1..3 */
    double target_quality; /* 0..1; 0 = 0.85 */
    double time_budget_s;  /* > 0; 0 = by tier: 0.5 / 1.5 / 5 s, auto 2 s */
    size_t max_svg_bytes;  /* 0 = 3x the default preset's bytes */
    const md_clock *clock; /* time budget clock; NULL = md_clock_system() (tests inject one) */
    int analyse_only;      /* 1: analysis and recommendation only, no conversion or result */
    int analysis_side;     /* features' sampling grid (vec_features_grid); 0 = VEC_FEATURES_SIDE,
                            * the models' own: other grids trade their accuracy for time */
} pl_ai_in;

/* What the models (or the rules) say about an image. */
typedef struct pl_ai_analysis {
    float features[VEC_N_FEATURES];
    int logo_type;           /* index for pl_ai_logo_type_name */
    double confidence;       /* probability of logo_type */
    double probs[PL_AI_CLASSES];
    vec_params guess;        /* the parameter model's (or the rules') starting point */
    double predicted_quality; /* SSIM of guess by vectorize-quality; -1 when not available */
    double predicted_bytes;  /* SVG bytes of guess predicted; -1 when not available */
    double predicted_ms;     /* conversion time of guess predicted; -1 when not available */
    double complexity;       /* 0 (flat, few colours) .. 1 (photo-like), from the features */
    int recommended_tier;    /* what auto routing picks for the input's target and budget */
    char routing_reason[160];
} pl_ai_analysis;

typedef struct pl_ai_timing {
    double read_ms, decode_ms, features_ms, classify_ms, routing_ms, prediction_ms,
        optimize_ms, total_ms;
} pl_ai_timing;

typedef struct pl_ai_out {
    pl_vec_out vec;          /* the chosen conversion (res, size, result_id), as pl_vectorize */
    pl_ai_analysis an;
    int selected_tier;       /* what routing chose (= the asked tier when not auto) */
    int tier_used;           /* the tier that ran */
    const char *method;      /* static: tier 1 "parameter_model" | "rules_ranked" (the
                                quality model could not tell the two guesses apart, or preferred
                                the rules') | "rules"; tier 2 "predictor_ranking" | "rules";
                                tier 3 "coordinate_search" */
    double target_quality, time_budget_s;
    double predicted_quality; /* vectorize-quality's SSIM for the parameters used; -1 = none */
    size_t size_budget;      /* bytes; 0 when unknown (tier 1 with no model and no max) */
    size_t default_bytes;    /* of the default preset, when it was converted (tiers 2, 3) */
    double default_ssim;     /* ... and its SSIM; -1 when not converted */
    int conversions, candidates_scored, target_reached;
    double elapsed_s;        /* by in->clock, from decode to the end of the search */
    double max_conversion_s; /* the longest conversion, by in->clock */
    int fallback_used;
    char fallback_reason[200];
    char model_versions[PL_AI_MODELS][32]; /* "" when that model was not used */
    pl_ai_timing timing;
} pl_ai_out;

/* Run the AI conversion (or only the analysis). in is borrowed for the call; *out is filled
 * (zeroed first; free with pl_ai_out_free, also after a failure). Errors as pl_vectorize, plus
 * MD_E_INVALID_PARAM naming "tier", "target_quality", "time_budget", and
 * MD_E_MODEL_UNAVAILABLE when no AI model can run. */
int pl_vectorize_ai(pl_ctx *cx, const pl_ai_in *in, pl_ai_out *out, md_err *err);
void pl_ai_out_free(pl_ai_out *out);

/* Predicted quality of n parameter sets for one image's features, with vectorize-quality:
 * ssim[i], bytes[i], ms[i] (any may be NULL). version gets the model version used.
 * MD_E_MODEL_UNAVAILABLE when the model is missing or reads other features. */
int pl_ai_predict(pl_ctx *cx, const float *features, const vec_params *params, size_t n,
                  double *ssim, double *bytes, double *ms, char version[32], md_err *err);

/* State of the three models: ok[i] 1 when model i is runnable with our features, else
 * reason[i] says why; version[i] the serving version ("" when none). */
void pl_ai_models_check(pl_ctx *cx, int ok[PL_AI_MODELS], char reason[PL_AI_MODELS][96],
                        char version[PL_AI_MODELS][32]);


/* ---- predict (predict.c): the business models of family "predict" ------------------------
 *
 * What each model's manifest tells the server is the contract of training/predict/README.md:
 * input_schema (validation, one float row per request), postprocessing per task
 * (classification, regression, price_response, budget_allocation, forecast, anomaly) and the
 * reference implementation training/predict/postprocess.py, which these functions match.
 *
 * Request objects (borrowed for the call):
 *   classification, regression, anomaly: features = {column: value} per input_schema;
 *   price_response: the same, plus options {min_price, max_price, steps, unit_cost, quantity};
 *   budget_allocation: features = {total, channels?: {name: {min?, max?}}, steps?,
 *                      week_of_year?} (no input_schema row: the request is the optimiser's);
 *   forecast: features = {history: [>= 14 numbers], last_date: "YYYY-MM-DD", horizon?,
 *             weather?: [{temp?, percip?, weather_snow?}], holidays?: {"YYYY-MM-DD": 0|1},
 *             level?: 0.8 | 0.9}.
 * Errors name the field: MD_E_MISSING_FIELD (a required column), MD_E_INVALID_PARAM (wrong
 * type, out of range, unknown field, unknown category label), MD_E_MODEL_NOT_FOUND (unknown
 * model, or one not of family "predict"), MD_E_MODEL_UNAVAILABLE, model run errors. */
#define PL_PREDICT_BATCH_MAX 10000

/* One prediction. *out is new (json_decref) on MD_OK:
 *   {"model", "version", "prediction": {...}, "explanation": {...} | null, "prediction_id"}
 * With cx->st, a share cx->log_sample of predictions is logged (store_predictions_add:
 * inputs {"features", "options"?}, outputs {"prediction", "explanation"}); a failed log write
 * is logged as a warning and does not fail the prediction. */
int pl_predict(pl_ctx *cx, const char *model, const json_t *features, const json_t *options,
               json_t **out, md_err *err);
/* Up to PL_PREDICT_BATCH_MAX rows (items: an array of feature objects, borrowed). Bad rows do
 * not fail the call; good rows are logged as pl_predict's, in one transaction. *out is new:
 *   {"model", "version", "predictions": [{"index", "prediction", "explanation",
 *    "prediction_id"}...], "count",
 *    "failed": [{"index", "error": {"code", "field", "message"}}]}
 * Fails as a whole only for an unknown model, a non-array or oversized items (field "items")
 * or a model run error. */
int pl_predict_batch(pl_ctx *cx, const char *model, const json_t *items, const json_t *options,
                     json_t **out, md_err *err);
/* The logged predictions of a predict model (cx->st required: MD_E_UNAVAILABLE otherwise),
 * from_ms <= time < to_ms (to_ms 0: no bound), newest first, offset / limit (1..1000). *out new:
 *   {"model", "items": [{"prediction_id", "version", "time_ms", "inputs", "outputs",
 *    "actual"}...], "count", "offset", "limit", "next_offset" | null} */
int pl_predict_history(pl_ctx *cx, const char *model, int64_t from_ms, int64_t to_ms,
                       size_t offset, size_t limit, json_t **out, md_err *err);
/* Record the outcome of a logged prediction (actual: any JSON value, borrowed).
 * MD_E_NOT_FOUND ("prediction_id") when the model logged no such prediction. */
int pl_predict_feedback(pl_ctx *cx, const char *model, const char *prediction_id,
                        const json_t *actual, md_err *err);

/* Drift of a tabular predict model's inputs over the logged predictions with from_ms <= time <
 * to_ms (at most PL_DRIFT_MAX_ROWS, the newest) against the manifest's
 * preprocessing.training_distribution: per column PSI (bins: the training deciles; categories:
 * their labels; empty bins clamped to PL_DRIFT_EPS) and, for numbers, the KS statistic against
 * the piecewise-linear training CDF through (min, 0), the quantiles and (max, 1). Alert levels
 * by PSI: "none" < 0.1 <= "warn" < 0.25 <= "alert" (KS is reported, not judged). *out new:
 *   {"model", "version", "rows", "from_ms", "to_ms", "status", "features": {name: {"psi", "ks",
 *    "missing", "level"}}}; rows 0 gives status "no_data". MD_E_UNSUPPORTED for budget and
 * forecast models (their requests are not rows). */
#define PL_DRIFT_MAX_ROWS 10000
#define PL_DRIFT_EPS 1e-4
int pl_predict_drift(pl_ctx *cx, const char *model, int64_t from_ms, int64_t to_ms,
                     json_t **out, md_err *err);

/* ---- rows of text cells (predict_table.c): bulk prediction's fast path ----
 * The answers pl_csv_object + pl_predict_batch (with cx->no_explain) give for the rows of a
 * CSV file on a tabular model (classification, regression, price_response, anomaly), row for
 * row and error for error, without a JSON object per row: the header is matched to the
 * input_schema once and each row's cells go straight into the model's float row. The version
 * is acquired at open and answers every row until close. */
typedef struct pl_table pl_table;
/* For rows whose columns are names[0..ncols) (a CSV header, borrowed until pl_table_close).
 * *out new (pl_table_close). MD_E_UNSUPPORTED (field "model") for a model whose requests are
 * not rows (budget, forecast: pl_predict_batch answers those); else pl_predict_batch's errors. */
int pl_table_open(const pl_ctx *cx, const char *model, const char *const *names, size_t ncols,
                  pl_table **out, md_err *err);
/* Hold one row of n cells (fields[i], lens[i] bytes; borrowed for the call). A bad row is held
 * with its error. MD_E_INVALID_PARAM past PL_PREDICT_BATCH_MAX rows held, MD_E_NOMEM. */
int pl_table_add(pl_table *t, const char *const *fields, const size_t *lens, size_t n, md_err *err);
/* Predict the rows held, in order, and drop them: *n rows; row i's prediction preds[i] (new,
 * json_decref; the "prediction" object pl_predict_batch gives) or NULL with its error in
 * errs[i]. preds and errs hold PL_PREDICT_BATCH_MAX. A share cx->log_sample of the good rows
 * is logged as pl_predict_batch logs them. Fails as a whole only for a model run error. */
int pl_table_run(pl_table *t, json_t **preds, md_err *errs, size_t *n, md_err *err);
/* pl_table_run in two steps, for a reader thread and a predicting one: pl_table_seal hands the
 * rows held over as a slot (0 or 1) and starts holding rows in the other slot; pl_table_run_slot
 * runs a sealed slot (as pl_table_run). pl_table_add may run on one thread while
 * pl_table_run_slot runs on another, as long as a slot is sealed again only after its run
 * ended (two slots: seal, run it while adding, wait for the run, seal, ...). */
int pl_table_seal(pl_table *t);
int pl_table_run_slot(pl_table *t, int slot, json_t **preds, md_err *errs, size_t *n,
                      md_err *err);
/* The version answering (borrowed until pl_table_close). */
const char *pl_table_version(const pl_table *t);
/* Releases the model. NULL is a no-op. */
void pl_table_close(pl_table *t);

/* One CSV row (n fields, lens[i] bytes each; names: the header's ncols column names, all
 * borrowed) as the features object a request would send (csv_rows.c): empty cells left out, a
 * cell that is a whole finite number a number, any other cell its string. New reference; NULL
 * when out of memory. Bulk prediction and retraining read files through it. */
json_t *pl_csv_object(const char *const *names, size_t ncols, const char *const *fields,
                      const size_t *lens, size_t n);
/* The task named by a predict manifest's postprocessing ("classification", ...); NULL when the
 * manifest is not a predict model's. Borrowed from mf. */
const char *pl_predict_task(const struct mdl_manifest *mf);

/* ---- retraining (retrain.c, issue 11 §4) -----------------------------------------------------
 *
 * A predict model whose manifest has "training": {"retrainable": true, "objective", "params",
 * "rounds", "label": {"column", "values"? (class labels in index order), "transform"? ("log")},
 * "metric": "roc_auc" | "roc_auc_leak" | "mae", "test_split": "test.csv", "min_feedback_rows"}
 * (written by training/predict/pcommon.py) can get a new version trained in process with
 * libxgboost (xgb_train) on
 *   - a stored dataset (CSV or JSON lines): the input_schema's columns by name (categories as
 *     their labels, empty = missing; other columns ignored) and the label column, or
 *   - "feedback": the logged predictions of the model that have an actual (store_feedback_list;
 *     the actual is the label, or an object holding the label column).
 * The new booster and the ACTIVE version are both evaluated on the active version's held test
 * split (test_split beside its artefact) with the metric (AUC: higher is better; MAE: lower).
 * The new version (next integer version) is written with model.json, modeld.json (the parent's
 * manifest with the new sha256, metrics, validation outputs recomputed by the new booster, the
 * training distribution of its own rows (drift), the explanation samples dropped, and
 * training.trained_from / parent_version / trained_at) and the
 * test split, then installed (mdl_install_as): CANARY at canary_percent when strictly better,
 * else STANDBY. It is never activated here. */

#define PL_RETRAIN_FEEDBACK "feedback"
#define PL_RETRAIN_MAX_ROWS 1000000   /* training rows at most (dataset or feedback) */
#define PL_RETRAIN_MIN_FEEDBACK 50    /* default of training.min_feedback_rows */

typedef struct pl_retrain_in {
    const char *model;      /* required */
    const char *data;       /* a stored dataset id ("d_...") or PL_RETRAIN_FEEDBACK */
    const json_t *params;   /* optional overrides (NULL = none): rounds (1..5000), eta, max_depth,
                             * subsample, colsample_bytree, min_child_weight, lambda, alpha,
                             * gamma, seed; anything else: MD_E_INVALID_PARAM "params.<key>" */
    double canary_percent;  /* share of requests for a better version; 0 = 10; 0 < p <= 100 */
    int nthread;            /* training threads, 0 = 1; at most 2 */
    size_t max_rows;        /* 0 = PL_RETRAIN_MAX_ROWS */
} pl_retrain_in;

/* What can be checked before a job is queued (cx->models and cx->st required): the model exists
 * (MD_E_MODEL_NOT_FOUND) and is retrainable (MD_E_UNSUPPORTED naming "model", with the
 * manifest's reason), the params are valid, and the data: a dataset that exists
 * (MD_E_NOT_FOUND naming "data") whose header has every required column and the label
 * (MD_E_UNSUPPORTED naming the missing column), or at least min_feedback_rows feedback rows
 * (MD_E_UNSUPPORTED naming "data"). */
int pl_retrain_check(pl_ctx *cx, const pl_retrain_in *in, md_err *err);
/* Train, evaluate and install (above), reporting progress through cx->cancel (stages
 * "reading", "training" with the fraction of rounds done, "evaluating", "installing") and
 * stopping at a cancel. *out is new: {"model", "version", "parent_version", "state": "CANARY" |
 * "STANDBY", "canary_percent", "metric", "new": x, "active": y, "better", "trained_from",
 * "train_rows", "skipped_rows", "test_rows", "rounds", "train_seconds"}. Errors: those of
 * pl_retrain_check, a bad data row (MD_E_INVALID_PARAM naming "data" with the line and
 * column), xgb_train's, mdl_install_as's. */
int pl_retrain(pl_ctx *cx, const pl_retrain_in *in, json_t **out, md_err *err);

#endif
