/* models.h - the model registry: versioned models on disk, loaded behind one runtime table,
 * reference-counted, validated before they serve, swapped while requests flow, canaried and
 * rolled back. Every family (vectorize, enhance, predict, generic) lives here; pipelines, the
 * OIP routes and the CLI reach models only through this header.
 *
 * Repository on disk (two roots, searched in this order; a name+version found in both is the
 * data-dir one, a later upload):
 *     <data_dir>/models/<name>/<version>/   written at run time (uploads, retraining)
 *     <repo>/models/<name>/<version>/        shipped with modeld, read-only
 * each holding the artefact (model.onnx | model.json | model.ubj) and modeld.json (the manifest,
 * see mdl_manifest below). Names: [a-z0-9][a-z0-9_-]{0,63}; versions: [0-9A-Za-z._-]{1,32},
 * compared numerically when both are integers ("10" > "9"), else as strings.
 *
 * Version states (each transition names the function that makes it):
 *
 *     (on disk) UNLOADED ──mdl_activate / mdl_canary / mdl_load──▶ LOADING
 *     LOADING    ──load_version: runtime load ok──▶ VALIDATING
 *     VALIDATING ──validate_version: samples match──▶ READY
 *     LOADING | VALIDATING ──fail_version──▶ FAILED (reason kept; never serves)
 *     READY      ──publish (mdl_activate)──▶ ACTIVE
 *     READY      ──mdl_canary──▶ CANARY
 *     CANARY     ──mdl_promote / auto-promote after N requests──▶ ACTIVE
 *     CANARY     ──mdl_canary(…, 0) / auto-rollback on errors or p99──▶ STANDBY
 *     ACTIVE     ──publish of another version──▶ STANDBY   (kept loaded: instant rollback)
 *     READY      ──mdl_install_as(STANDBY)──▶ STANDBY     (never served: not a rollback target)
 *     STANDBY    ──mdl_rollback──▶ ACTIVE                  (the active one becomes STANDBY)
 *     UNLOADED   ──mdl_rollback, no STANDBY loaded──▶ LOADING … READY ──▶ ACTIVE
 *                                 (the store's previous active version, loaded and validated)
 *     STANDBY    ──retire (more than opts.keep_standby standbys, or mdl_unload)──▶ RETIRED
 *     RETIRED    ──last reference released──▶ freed (the runtime's free runs then, never before)
 *     FAILED | RETIRED ──mdl_activate again──▶ LOADING     (a fresh load)
 *
 * Invariants:
 *   1. A version serves only in ACTIVE or CANARY; at most one of each per model.
 *   2. The published (active, canary, percent) triple of a model is swapped atomically: a
 *      request sees the old triple or the new one, never a mix, and takes its reference before
 *      the swap can drop the last one (no free with a run in flight).
 *   3. A failed load or validation leaves the serving versions untouched.
 *   4. The active version (and a canary with its percentage) of each model is written to the
 *      store on every change and restored by mdl_registry_open; so is the version that was
 *      active before it (previous_version), which mdl_rollback returns to when no STANDBY is
 *      loaded.
 *
 * Several processes, one data dir: the store is shared, the loaded registries are not. The
 * CLI (`modeld models activate|rollback --data-dir`) changes what the store remembers and
 * nothing else: a server already running on that data dir keeps serving what it loaded and
 * does not read the store again; it serves the CLI's choice after its next restart. To change
 * a running server, use its HTTP routes (`modeld models … --url`). The only cross-process
 * notification is the cluster event of serve nodes sharing a Redis (on_change on one node,
 * mdl_sync on the others; the CLI publishes none), and the next change a running server makes
 * rewrites the row (active, canary, previous) from what that server serves, replacing what the
 * CLI stored.
 *
 * Threads: every function is thread-safe. mdl_acquire/mdl_release/mdl_run are lock-free on the
 * hot path; management calls (activate, canary, rollback, load, unload) are serialised per
 * registry and may block while a model loads and validates.
 * Ownership words: new (caller releases), borrowed (valid until the stated moment), steals.
 */
#ifndef MD_MODELS_MODELS_H
#define MD_MODELS_MODELS_H

#include "base/buf.h"
#include "base/cancel.h"
#include "base/clock.h"
#include "base/err.h"
#include "onnx/onnx.h"
#include "store/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MDL_NAME_MAX 64
#define MDL_VERSION_MAX 32
#define MDL_MAX_RANK 8

typedef enum mdl_state {
    MDL_UNLOADED = 0,
    MDL_LOADING,
    MDL_VALIDATING,
    MDL_READY,
    MDL_ACTIVE,
    MDL_CANARY,
    MDL_STANDBY,
    MDL_RETIRED,
    MDL_FAILED,
} mdl_state;
/* "UNLOADED", "ACTIVE", ...; static. */
const char *mdl_state_name(mdl_state s);

typedef enum mdl_family { MDL_GENERIC = 0, MDL_VECTORIZE, MDL_ENHANCE, MDL_PREDICT } mdl_family;
const char *mdl_family_name(mdl_family f); /* "generic", "vectorize", ... */

/* ---- manifest (manifest.c): modeld.json ----
 * {
 *   "name": "iris-mlp", "version": "1", "family": "generic", "runtime": "onnx" | "xgboost",
 *   "artefact": "model.onnx", "sha256": "<hex of the artefact>",
 *   "description": "...", "required": false,
 *   "inputs":  [{"name": "x", "datatype": "FP32", "shape": [-1, 4], "description": "..."}],
 *   "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3], "description": "..."}],
 *   "labels": ["setosa", ...],                        (optional, for classifier outputs)
 *   "preprocessing": {...}, "postprocessing": {...},  (optional, free-form, kept verbatim)
 *   "input_schema": {...},                            (optional: tabular columns, kept verbatim)
 *   "validation": {"tolerance": 1e-4, "samples": [
 *        {"inputs": {"x": [[5.1, 3.5, 1.4, 0.2]]}, "outputs": {"y": [[...]]}}]},
 *   "metrics": {"accuracy": 0.97, ...},               (training metrics, numbers)
 *   "training": {...},                                (optional, free-form: how to retrain it,
 *                                                      see pipelines.h pl_retrain)
 *   "model_card": {"data": "...", "intended_use": "...", "limits": "..."}
 * }
 * Datatypes are OIP names: BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64, BYTES.
 * Shapes use -1 for a free dimension. Unknown top-level keys are refused (a typo must not
 * silently drop validation), every error names the field ("inputs[1].shape"). */
typedef struct mdl_io {
    char name[MDL_NAME_MAX * 2];
    int dtype; /* onnx_dtype numbers */
    int rank;
    int64_t dims[MDL_MAX_RANK]; /* -1 = free */
    char *description;          /* owned by the manifest; may be NULL */
} mdl_io;

typedef struct mdl_manifest {
    char name[MDL_NAME_MAX];
    char version[MDL_VERSION_MAX];
    mdl_family family;
    char runtime[16];   /* "onnx" | "xgboost" */
    char artefact[64];  /* file name inside the version directory */
    char sha256[65];    /* lower-case hex */
    bool required;      /* readiness waits for this model to be ACTIVE */
    mdl_io *inputs, *outputs;
    size_t n_inputs, n_outputs;
    double tolerance;   /* validation: max |expected - actual| (relative for |x| > 1) */
    json_t *doc;        /* the whole manifest as parsed (labels, metrics, card, schema...) */
} mdl_manifest;

/* Parse a manifest text. *out is filled (free with mdl_manifest_free). Errors:
 * MD_E_MODEL_INVALID with err->field naming the offending field. */
int mdl_manifest_parse(const char *text, size_t len, mdl_manifest *out, md_err *err);
void mdl_manifest_free(mdl_manifest *m);
/* OIP datatype name <-> onnx_dtype: "FP32" <-> ONNX_FLOAT...; -1 / NULL when unknown. */
int mdl_dtype_parse(const char *oip_name);
const char *mdl_dtype_name(int dtype);

/* ---- tensors in and out ---- */
typedef struct mdl_tensor {
    const char *name; /* borrowed */
    int dtype;        /* onnx_dtype numbers; ONNX_STRING data is const char *[numel] */
    int rank;
    int64_t dims[MDL_MAX_RANK];
    const void *data; /* row-major; borrowed for the call (inputs) */
} mdl_tensor;

typedef struct mdl_result mdl_result;
/* Outputs of one run, in manifest order (or the order asked for). Borrowed until
 * mdl_result_free. */
size_t mdl_result_count(const mdl_result *r);
const mdl_tensor *mdl_result_output(const mdl_result *r, size_t i);
void mdl_result_free(mdl_result *r); /* NULL is a no-op */

/* ---- runtimes (runtime_onnx.c, runtime_xgb.c) behind one table ---- */
typedef struct mdl_runtime {
    const char *name; /* "onnx", "xgboost" */
    /* Load the artefact at path (the manifest is borrowed for the call). *state is new. */
    int (*load)(const char *path, const mdl_manifest *mf, void **state, md_err *err);
    /* Run: inputs in manifest order (already checked against the manifest's dtypes and
     * shapes); outputs in manifest order into a new result. cancel may be NULL. */
    int (*run)(void *state, const mdl_manifest *mf, const mdl_tensor *inputs, size_t n,
               const md_cancel *cancel, mdl_result **out, md_err *err);
    /* Optional (NULL: MD_E_UNSUPPORTED): per-feature contributions of nrows rows of ncols
     * floats (xgb_predict_contribs's layout: per row and group ncols + 1 floats, the last the
     * bias) into a new array *out (free()) of *n floats; *groups per row. */
    int (*contribs)(void *state, const float *rows, size_t nrows, size_t ncols, float **out,
                    size_t *n, size_t *groups, md_err *err);
    /* Bytes held by the loaded model (weights, plans): an estimate for metrics. */
    size_t (*memory)(const void *state);
    /* Free; called once, after the last reference is gone. */
    void (*free)(void *state);
} mdl_runtime;
/* The runtime of that name; NULL when unknown. Static. */
const mdl_runtime *mdl_runtime_find(const char *name);

/* ---- the registry ---- */
typedef struct mdl_registry mdl_registry;
typedef struct mdl_version mdl_version;

typedef struct mdl_canary_opts {
    uint64_t promote_after;   /* auto-promote after this many canary successes; 0 = by hand */
    uint64_t min_requests;    /* canary requests seen before judging it; 0 = 20 */
    double max_error_margin;  /* roll back when canary error rate > active's + this; 0 = 0.05
                                 (errors: failures whose status is >= 500, not bad inputs) */
    double max_p99_ratio;     /* ... or canary p99 > active's p99 * this; 0 = 2.0 */
    double window_s;          /* judged over windows of this many seconds (counts start again
                                 after each); 0 = 60 */
} mdl_canary_opts;

typedef struct mdl_registry_opts {
    const char *shipped_dir;  /* the repository's models/ (read-only); NULL = none */
    const char *data_dir;     /* writable root: <data_dir>/models/; NULL = none (no uploads) */
    store *store;             /* borrowed (a reference is taken): active versions survive a
                                 restart; NULL = nothing remembered */
    const md_clock *clock;    /* NULL = md_clock_system() (canary windows, stats) */
    mdl_canary_opts canary;
    int keep_standby;         /* standby versions kept loaded per model; 0 = 1 */
    int onnx_threads;         /* intra-op threads per run; 0 = 1 */
    bool load_all;            /* true: load and activate every model at open (serve); false:
                                 only on demand (CLI listing) */
    /* Called after every published change of a model's serving set that was written to the
     * store (activate, canary, promote, rollback, load, automatic canary decisions; not
     * mdl_sync), with the management lock held: it must be quick and must not call back into
     * the registry. The CLI publishes it as a cluster event (Redis). NULL = none. */
    void (*on_change)(void *ctx, const char *name);
    void *on_change_ctx;
} mdl_registry_opts;

/* Scan both roots, restore the remembered active versions (else the highest version) and, with
 * load_all, load + validate + activate them. A model that fails is FAILED with its reason and
 * does not stop the others. *out is new (mdl_registry_close). */
int mdl_registry_open(const mdl_registry_opts *o, mdl_registry **out, md_err *err);
/* Waits for no one: versions still referenced are freed by their last mdl_release. NULL ok. */
void mdl_registry_close(mdl_registry *r);

/* Hot path. The version that should answer the next request of model name: the canary for
 * its percentage of requests, else the active one; or exactly `version` when given (must be
 * ACTIVE, CANARY, STANDBY or READY). *out is a new reference (mdl_release).
 * MD_E_MODEL_NOT_FOUND (unknown name/version), MD_E_MODEL_UNAVAILABLE (nothing serving). */
int mdl_acquire(mdl_registry *r, const char *name, const char *version, mdl_version **out,
                md_err *err);
/* Run inputs (matched to the manifest's inputs by name; order free; every input required;
 * dtype and shape checked, errors name the input) and return the outputs. Records the outcome
 * and latency in the version's statistics. *out is new (mdl_result_free). */
int mdl_run(mdl_version *v, const mdl_tensor *inputs, size_t n, const md_cancel *cancel,
            mdl_result **out, md_err *err);
/* Feature contributions (TreeSHAP) of nrows rows of ncols floats on a held version, for
 * runtimes that have them (xgboost; others MD_E_UNSUPPORTED). *out is new (free()), *n floats:
 * per row and output group ncols + 1 (the last the bias); *groups per row. Not recorded in the
 * statistics (an explanation, not a request). */
int mdl_contribs(mdl_version *v, const float *rows, size_t nrows, size_t ncols, float **out,
                 size_t *n, size_t *groups, md_err *err);
/* Drop the reference; the last one of a RETIRED version frees it. NULL is a no-op. */
void mdl_release(mdl_version *v);

/* What a held version is; all borrowed until mdl_release. */
const mdl_manifest *mdl_version_manifest(const mdl_version *v);
const char *mdl_version_name(const mdl_version *v);
const char *mdl_version_id(const mdl_version *v); /* the version string */
const char *mdl_version_dir(const mdl_version *v); /* its directory (files beside the artefact) */
mdl_state mdl_version_state(const mdl_version *v);
/* Add queue time for the stats (ns a request waited before mdl_run). */
void mdl_version_note_queue(mdl_version *v, uint64_t queue_ns);
/* How long a run of the version that would answer the next request of name (or exactly
 * version) usually takes: the 90th percentile of its recorded run times, in ns (interpolated in
 * the latency histogram's buckets, so "<= 100 us" reads "90 % of runs took at most 100 us"). 0 when unknown:
 * the model is not loaded or has run fewer than 32 times. Never loads, never blocks (the HTTP
 * layer asks it on the I/O thread to decide where a request runs). */
uint64_t mdl_typical_run_ns(mdl_registry *r, const char *name, const char *version);

/* ---- management (serialised; each persists the new state to the store) ---- */
/* Load + validate (if needed) and publish as ACTIVE; the previous active becomes STANDBY. A
 * running canary keeps running (unless it is version); on a model this registry never loaded
 * (the CLI's), the canary the store remembers is kept likewise. */
int mdl_activate(mdl_registry *r, const char *name, const char *version, md_err *err);
/* Route percent (0..100) of requests to version (loaded + validated first). percent 0 ends the
 * canary (the version goes to STANDBY). MD_E_CONFLICT when version is the active one. */
int mdl_canary(mdl_registry *r, const char *name, const char *version, double percent,
               md_err *err);
/* Make the canary the active version now. MD_E_CONFLICT when there is no canary. */
int mdl_promote(mdl_registry *r, const char *name, md_err *err);
/* The newest STANDBY becomes ACTIVE again (the current active becomes STANDBY); a canary is
 * ended first. With no STANDBY loaded (a registry opened without load_all, a server after a
 * restart), the store's previous_version is loaded, validated and activated instead (a failure
 * leaves the serving versions as they were). A version that was the canary is never the
 * target. MD_E_CONFLICT when there is nothing to roll back to. */
int mdl_rollback(mdl_registry *r, const char *name, md_err *err);
/* Cluster event: another process changed name's serving set in the shared store. Rescan the
 * model's directories (a version installed elsewhere on a shared data dir appears), then make
 * this registry serve what the store remembers: its active version (loaded and validated
 * first; a failure leaves the serving ones as they were) and its canary at its percentage, or
 * no canary. Writes nothing to the store and calls no on_change. A registry opened without
 * load_all ignores models it has not loaded (they load the stored state when first used).
 * MD_E_MODEL_NOT_FOUND for a name not on disk; MD_OK when there is nothing to change. */
int mdl_sync(mdl_registry *r, const char *name, md_err *err);
/* OIP repository load: rescan the model's directory and activate its newest version (or the
 * remembered one). MD_E_MODEL_NOT_FOUND when not on disk. */
int mdl_load(mdl_registry *r, const char *name, md_err *err);
/* Retire every loaded version of name (they stop serving; freed when released). */
int mdl_unload(mdl_registry *r, const char *name, md_err *err);
/* Write files (name -> bytes, e.g. "1/model.onnx", "1/modeld.json") under
 * <data_dir>/models/<name>/ (paths confined there, written tmp + rename), then load, validate
 * and activate that version. On failure nothing written stays and the serving versions are
 * untouched. */
typedef struct mdl_file {
    const char *path; /* "<version>/<file>"; borrowed */
    const void *data;
    size_t len;
} mdl_file;
int mdl_install(mdl_registry *r, const char *name, const mdl_file *files, size_t n,
                md_err *err);
/* Where an installed version goes once it loaded and validated (mdl_install_as). */
typedef enum mdl_install_mode {
    MDL_INSTALL_ACTIVE = 0, /* published as ACTIVE (mdl_install) */
    MDL_INSTALL_CANARY,     /* CANARY at canary_percent (> 0) of the requests; needs an active
                               version (MD_E_CONFLICT otherwise) */
    MDL_INSTALL_STANDBY,    /* STANDBY, loaded but serving nothing: a version that never served
                               (retraining's worse model) is never mdl_rollback's target */
} mdl_install_mode;
/* mdl_install, then the version goes where mode says instead of ACTIVE (retraining installs
 * its new version as CANARY or STANDBY and never activates it). Same errors and guarantees. */
int mdl_install_as(mdl_registry *r, const char *name, const mdl_file *files, size_t n,
                   mdl_install_mode mode, double canary_percent, md_err *err);
/* Check a version directory (manifest, sha256, load, validation) without registering it
 * (`modeld models validate DIR`). */
int mdl_validate_dir(const char *dir, const mdl_registry_opts *o, md_err *err);

/* ---- what the registry knows, as JSON (routes and the CLI render it) ----
 * mdl_describe_all: [{"name","family","runtime","active_version","canary_version",
 *   "canary_percent","state","required","versions":[{"version","state","reason"?}]}]
 *   A model this registry has not loaded (load_all false, never acquired) reports the active
 *   and canary versions the store remembers (those a server would restore) where nothing is
 *   published, when they are on disk; their version states (and the model's "state", when the
 *   active one is only remembered) are then "UNLOADED".
 * mdl_describe: the same object for one model plus "manifest" (the active/given version's
 *   modeld.json) and "stats": an object keyed by version id ({"1": {...}, "2": {...}}), each
 *   {"state","requests","successes","failures":{reason:count},
 *   "latency_seconds":{"p50","p99","buckets":[{"le","count"}...]} (cumulative counts; the last
 *   bucket's "le" is null = +Inf), "latency_seconds_total","success_seconds_total",
 *   "failure_seconds_total","queue_count","queue_seconds_total","last_inference_ms" (wall ms,
 *   0 = never),"last_error" (string or null),"memory_bytes","load_seconds",
 *   "validation_seconds"}. Versions never loaded have only state/memory/load/validation.
 * New references (json_decref). */
json_t *mdl_describe_all(mdl_registry *r);
int mdl_describe(mdl_registry *r, const char *name, const char *version, json_t **out,
                 md_err *err);
/* 1 when every model marked required has an ACTIVE version; *missing names the first that
 * does not (borrowed static buffer of the caller, MDL_NAME_MAX). */
int mdl_ready(mdl_registry *r, char missing[MDL_NAME_MAX]);
/* Prometheus lines: modeld_inference_requests_total{model,version,outcome},
 * modeld_inference_duration_seconds (histogram, {model,version}), modeld_inference_queue_seconds
 * (histogram), modeld_model_state{model,version,state} (1 for the current state),
 * modeld_model_memory_bytes{model,version}. Appends to out (an md_buf); matches
 * http_collector_fn so the server can register it directly. */
void mdl_metrics(md_buf *out, void *registry);

#endif
