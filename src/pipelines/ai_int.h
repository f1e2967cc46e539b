/* ai_int.h - internals of pl_vectorize_ai shared by vectorize_ai.c (tiers, routing, budgets)
 * and ai_models.c (the three models and the rules that stand in for them). */
#ifndef MD_PIPELINES_AI_INT_H
#define MD_PIPELINES_AI_INT_H

#include "models/models.h"
#include "pipelines/pipelines.h"

enum { AI_CLASSIFIER = 0, AI_QUALITY = 1, AI_PARAMS = 2 };
enum { AI_SIMPLE = 0, AI_TEXT = 1, AI_GRADIENT = 2, AI_COMPLEX = 3 };

/* One acquired model. */
typedef struct ai_model {
    mdl_version *v; /* reference (ai__release); NULL when unavailable */
    int which;      /* AI_CLASSIFIER, AI_QUALITY, AI_PARAMS */
    char version[32];
    char reason[96]; /* why it is unavailable */
} ai_model;

/* Acquire model `which` and check its feature list. MD_OK, or MD_E_MODEL_UNAVAILABLE with
 * m->reason ("vectorize-quality: not loaded", "...: feature list mismatch"). */
int ai__acquire(pl_ctx *cx, int which, ai_model *m);
/* Release (m->v may be NULL). */
void ai__release(ai_model *m);
/* Run on rows x cols floats; y gets rows x (4 | 3 | 10) floats (caller-allocated). */
int ai__run(ai_model *m, const float *x, int rows, int cols, const md_cancel *cancel, float *y,
            md_err *err);

/* The quality model's held-out SSIM MAE (manifest metrics.ssim_mae); 0 when not recorded. */
double ai__ssim_mae(const ai_model *m);

/* Rules: logo-type probabilities, a starting parameter set, a complexity score in 0..1. */
void ai__rules_classify(const float *f, double probs[PL_AI_CLASSES]);
void ai__rules_params(const float *f, int logo_type, vec_params *p);
double ai__complexity(const float *f);
/* The i-th set of the portfolio (fixed, ordered by the gain it added on training images; see
 * bench/vectorize_portfolio.py): 1 and *p set, or 0 past its end. */
int ai__portfolio(int i, vec_params *p);

/* Auto routing: the tier for a logo type, the predicted quality of the starting guess (-1 =
 * unknown), the target and the time budget (0 = none given). reason gets one sentence. */
int ai__route(int logo_type, double predicted, double target, double budget_s, char *reason,
              size_t reason_len);

#endif
