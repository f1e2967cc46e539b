/* xgb.h - XGBoost tree models (JSON or UBJ files) behind the same load / run / free shape as
 * the ONNX engine, over Debian's libxgboost C API.
 *
 * A loaded model is immutable and may be used by many threads at once: xgb_predict on one
 * xgb_model from several threads needs no lock (see the concurrency note in xgb.c). Input is
 * dense row-major float32; NaN marks a missing value, as in XGBoost itself.
 */
#ifndef MD_XGB_XGB_H
#define MD_XGB_XGB_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct xgb_model xgb_model;

typedef struct xgb_opts {
    /* OpenMP threads one xgb_predict call may use. 0 means 1: a server runs several requests
     * at once, so parallelism comes from concurrent calls, not from inside one. */
    int nthread;
    /* Largest model file accepted, in bytes; 0 means 64 MiB. Loading briefly needs about ten
     * times the file size (the model is checked as a parsed document first). */
    size_t max_bytes;
    /* Which evaluator xgb_predict uses (see xgb_model_engine). */
    enum {
        XGB_ENGINE_AUTO = 0,   /* our own tree walk (src/xgb/forest.c) where it supports the
                                  model and matches libxgboost at load, libxgboost otherwise */
        XGB_ENGINE_LIBXGBOOST, /* always libxgboost */
    } engine;
    /* How our TreeSHAP computes contributions where it serves them (see src/xgb/treeshap.c). */
    enum {
        XGB_SHAP_AUTO = 0, /* per-leaf tables where they fit, else XGBoost's path algorithm */
        XGB_SHAP_PATHS,    /* XGBoost's path algorithm only (its float arithmetic, step by
                              step; slower): for tests and benchmarks */
    } shap;
} xgb_opts;

typedef struct xgb_info {
    uint64_t num_features; /* columns each row must have */
    uint64_t num_outputs;  /* floats per row xgb_predict writes (classes for multi:softprob) */
    uint64_t num_class;    /* 0 for regression and binary objectives */
    int boosted_rounds;
    char objective[48]; /* "reg:squarederror", "binary:logistic", "multi:softprob", ... */
} xgb_info;

/* Load a model from a file. The format is told by the content, not by the extension: JSON
 * ('{' then '"') or UBJSON ('{' then a type marker); XGBoost's old binary format is refused, and
 * so are categorical splits and features (MD_E_UNSUPPORTED).
 * opts may be NULL. *out gets a new model (free with xgb_model_free).
 * Errors: MD_E_FILE_NOT_FOUND, MD_E_IO, MD_E_TOO_LARGE, MD_E_MODEL_INVALID, MD_E_NOMEM. */
int xgb_model_load(const char *path, const xgb_opts *opts, xgb_model **out, md_err *err);

/* Same from bytes in memory (borrowed: copied by XGBoost before this returns). */
int xgb_model_load_bytes(const void *bytes, size_t len, const xgb_opts *opts, xgb_model **out,
                         md_err *err);

/* What the model expects and gives. Borrowed, valid until xgb_model_free(m). */
const xgb_info *xgb_model_info(const xgb_model *m);

/* Predict nrows rows of ncols floats each (row-major, borrowed). Writes nrows * num_outputs
 * floats into out (caller-owned, out_cap floats available), after the objective's transform
 * (probabilities for binary:logistic and multi:softprob). nrows == 0 is a valid empty call.
 * Errors: MD_E_INVALID_PARAM (ncols != num_features, out too small, sizes overflow),
 * MD_E_INTERNAL (XGBoost failed). Thread-safe. */
int xgb_predict(const xgb_model *m, const float *rows, size_t nrows, size_t ncols, float *out,
                size_t out_cap, md_err *err);

/* The same prediction, always through libxgboost (the reference xgb_predict is checked against
 * in tests and benchmarks). Same contract and errors as xgb_predict. */
int xgb_predict_reference(const xgb_model *m, const float *rows, size_t nrows, size_t ncols,
                          float *out, size_t out_cap, md_err *err);

/* TreeSHAP contributions (XGBoost's pred_contribs) of nrows rows of ncols floats (borrowed):
 * per row and output group, num_features + 1 floats, one per feature then the bias, in the
 * margin (before the objective's transform: log-odds for binary:logistic), summing to the
 * group's raw margin. Writes nrows * groups * (num_features + 1) floats into out (caller-owned,
 * out_cap floats), groups = max(num_class, 1). Exact TreeSHAP: our own (src/xgb/treeshap.c)
 * where xgb_model_shap_engine says so, libxgboost otherwise.
 * Errors as xgb_predict. Thread-safe. */
int xgb_contributions(const xgb_model *m, const float *rows, size_t nrows, size_t ncols, float *out,
                      size_t out_cap, md_err *err);

/* The same contributions, always through libxgboost (the reference xgb_contributions is
 * checked against in tests and benchmarks). Same contract and errors. */
int xgb_contributions_reference(const xgb_model *m, const float *rows, size_t nrows, size_t ncols,
                                float *out, size_t out_cap, md_err *err);

/* "native" when xgb_predict walks the trees itself (gbtree models with a squared-error,
 * logistic, Poisson / gamma / Tweedie or softprob objective, whose answers at load matched
 * libxgboost's within 1e-5), "libxgboost" otherwise. Static string. */
const char *xgb_model_engine(const xgb_model *m);

/* How xgb_contributions computes: "tables" or "paths" when it runs our TreeSHAP (the tree walk
 * is native, every reached node has a positive cover, no tree is deeper than 64, and its
 * contributions at load matched libxgboost's within 1e-5; "tables": the per-leaf tables fit,
 * see src/xgb/treeshap.c), "libxgboost" otherwise. Static string. */
const char *xgb_model_shap_engine(const xgb_model *m);

/* Free a model; NULL is a no-op. No xgb_predict on m may be running. */
void xgb_model_free(xgb_model *m);

/* ---- training (train.c): a new booster in process, for retraining (issue 11 §4) ---------- */

#define XGB_TRAIN_MAX_ROUNDS 5000
#define XGB_TRAIN_MAX_PARAMS 32

/* One booster parameter as XGBoosterSetParam takes it ("max_depth" = "4"). Borrowed. */
typedef struct xgb_train_param {
    const char *key, *value;
} xgb_train_param;

/* Called after each boosting round (1-based) of rounds; a non-MD_OK return (with err filled)
 * stops the training and is returned by xgb_train (a cancel). */
typedef int (*xgb_round_fn)(void *user, int round, int rounds, md_err *err);

typedef struct xgb_train_opts {
    const xgb_train_param *params; /* objective, eta, max_depth, seed...: set in order */
    size_t nparams;                /* at most XGB_TRAIN_MAX_PARAMS */
    int rounds;                    /* 1..XGB_TRAIN_MAX_ROUNDS */
    int nthread;                   /* 0 = 1; 1..2 (the server trains beside requests) */
    xgb_round_fn on_round;         /* may be NULL */
    void *user;
} xgb_train_opts;

/* Train a booster on nrows rows of ncols floats (row-major, NaN = missing) with one label per
 * row (y), deterministically for a fixed seed and nthread 1. *model is new (free()): the
 * booster as XGBoost JSON (*len bytes), loadable by xgb_model_load_bytes. *config (may be
 * NULL; new, free()) gets XGBoosterSaveJsonConfig's text: the parameters as trained.
 * Errors: MD_E_INVALID_PARAM (field "rounds", "params", "rows" or "params.<key>" when XGBoost
 * refuses a value), MD_E_NOMEM, MD_E_INTERNAL, or on_round's code. */
int xgb_train(const float *x, size_t nrows, size_t ncols, const float *y,
              const xgb_train_opts *o, char **model, size_t *len, char **config, md_err *err);

#endif
