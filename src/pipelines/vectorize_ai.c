/* vectorize_ai.c - pl_vectorize_ai: analyse an image, route it to a tier, search tracing
 * parameters with the models and real conversions, keep the best measured SVG
 * (pipelines.h, "AI vectorize", has the whole flow).
 *
 * The search holds one state, drawn here with the function that moves it:
 *
 *   ANALYSED ──search_try (first conversion, always allowed)──▶ SEARCHING
 *   SEARCHING ──search_try (time left, parameters not tried yet)──▶ SEARCHING
 *   SEARCHING ──search_done: target reached | time budget spent──▶ DONE
 *
 * Invariants:
 *   1. A conversion starts only while the time budget (by in->clock) has room for it: elapsed
 *      time below the budget and elapsed + the last conversion's time within it (the first
 *      conversion always runs). So the budget is exceeded by at most one conversion's time.
 *   2. The kept result is the best by one order (better()): within the size budget beats over
 *      it; then higher measured SSIM (within), or fewer bytes (over). The SSIM reported is
 *      always the measured one of the kept result, never a prediction.
 *   3. No parameter set is converted twice in one search (tried[] holds their encodings).
 *   4. Tiers 2 and 3 convert the default preset first: it is the size budget's reference and a
 *      candidate, so they never answer worse than the default preset within the budget.
 *   5. Candidate generation is deterministic (a fixed-seed xorshift): one image, one answer.
 *   6. The conversions share one vec_cache (region stages, measured documents, the source on
 *      white): the same answers as without it, in less time, so more candidates fit the budget.
 *      An SVG past the size budget is not measured once the best is within it (it cannot win).
 */
#include "pipelines/ai_int.h"
#include "pipelines/pipelines_int.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_CANDIDATES 256
#define MAX_TRIED 128
#define TIER2_CONVERT 3 /* tier 2 converts this many of the best-ranked candidates */
/* Sets of the portfolio tiers 2 and 3 convert before the ranked candidates (tier 2's budget
 * of 0.5 s holds about this many conversions of a 512 px logo). */
#define TIER2_PORTFOLIO 4
#define TIER3_PORTFOLIO 10
#define DEFAULT_TARGET 0.85
/* Candidate conversions that get their own span; the rest are counted on "ai search"
 * (spans.c, invariant 1). */
#define MAX_TRACED_CONVERSIONS 24

typedef enum search_state { S_ANALYSED, S_SEARCHING, S_DONE } search_state;

typedef struct search {
    search_state state;
    pl_ctx *cx;
    const pl_ai_in *in;
    pl_ai_out *out;
    const md_image *img;
    const md_clock *clk;
    uint64_t t0, now_ns; /* start; the last reading (elapsed_s) */
    int now_fresh;       /* 1: no conversion since now_ns was read */
    double budget_s, last_s;
    size_t size_budget;
    vec_result *best; /* owned */
    vec_cache *cache; /* owned; NULL = none: what the conversions of the image share */
    float tried[MAX_TRIED][VEC_N_PARAM_ENC];
    int ntried;
    ai_model m[PL_AI_MODELS];
    int have[PL_AI_MODELS];
    tr_span *stage; /* the stage's span (borrowed): parent of model runs and conversions */
} search;

static void search_assert_state(const search *s)
{
    assert(s->state != S_ANALYSED || (s->best == NULL && s->out->conversions == 0));
    assert(s->state == S_ANALYSED || s->best != NULL);
    (void)s;
}

static double ms_since(uint64_t t0)
{
    return (double)(md_now_ns() - t0) / 1e6;
}

/* Seconds since the search began, read once per decision: checks repeated without a
 * conversion in between (the loops' search_done, then search_try's) reuse the reading, so the
 * next conversion's start is the reading its decision was made on (invariant 1). */
static double elapsed_s(search *s)
{
    if (!s->now_fresh) {
        s->now_ns = md_clock_now_ns(s->clk);
        s->now_fresh = 1;
    }
    return (double)(s->now_ns - s->t0) / 1e9;
}

static int in_size(const search *s, const vec_result *r)
{
    return !s->size_budget || r->svg_bytes <= s->size_budget;
}

/* Invariant 2: 1 when a is better than b (b may be NULL). */
static int better(const search *s, const vec_result *a, const vec_result *b)
{
    if (!b)
        return 1;
    if (in_size(s, a) != in_size(s, b))
        return in_size(s, a);
    return in_size(s, a) ? a->ssim.rgb > b->ssim.rgb : a->svg_bytes < b->svg_bytes;
}

static int time_left(search *s)
{
    if (s->state == S_ANALYSED)
        return 1;
    double e = elapsed_s(s);
    return e < s->budget_s && e + s->last_s <= s->budget_s;
}

static int target_reached(const search *s)
{
    return s->best && in_size(s, s->best) && s->best->ssim.rgb >= s->out->target_quality;
}

/* SEARCHING -> DONE when the target is reached or no time is left. */
static int search_done(search *s)
{
    search_assert_state(s);
    if (s->state == S_SEARCHING && (target_reached(s) || !time_left(s)))
        s->state = S_DONE;
    return s->state == S_DONE;
}

/* Convert p unless tried already or out of time (invariants 1, 3); keep it if better. */
static int search_try(search *s, const vec_params *p, md_err *err)
{
    float enc[VEC_N_PARAM_ENC];
    vec_params_encode(p, enc);
    for (int i = 0; i < s->ntried; i++)
        if (memcmp(s->tried[i], enc, sizeof enc) == 0)
            return MD_OK;
    if (search_done(s) || s->ntried >= MAX_TRIED)
        return MD_OK;
    memcpy(s->tried[s->ntried++], enc, sizeof enc);
    /* Once the best is within the size budget an SVG past it can never be kept (invariant 2):
     * its rendering and SSIM are skipped. */
    size_t max_bytes = s->best && s->size_budget && in_size(s, s->best) ? s->size_budget : 0;
    vec_convert_opts vo = {.measure_quality = 1,
                           .rgb_only = 1,
                           .cancel = s->cx->cancel,
                           .cache = s->cache,
                           .measure_max_bytes = max_bytes};
    vec_result *r = NULL;
    elapsed_s(s);
    uint64_t w0 = md_now_ns();
    tr_span *span = s->ntried <= MAX_TRACED_CONVERSIONS ? pl__span_under(s->stage, "ai convert")
                                                        : NULL;
    tr_span_attr_int(span, "modeld.candidate", s->ntried);
    int rc = vec_convert(s->img, p, &vo, &r, err);
    pl__conversion_spans(span, r);
    tr_span_attr_int(span, "modeld.kept", rc == MD_OK && better(s, r, s->best));
    pl__span_end(span, rc);
    s->last_s = (double)(md_clock_now_ns(s->clk) - s->now_ns) / 1e9;
    s->now_fresh = 0;
    s->out->timing.optimize_ms += ms_since(w0);
    if (rc != MD_OK)
        return rc;
    s->out->conversions++;
    s->out->max_conversion_s = fmax(s->out->max_conversion_s, s->last_s);
    if (better(s, r, s->best)) {
        vec_result_free(s->best);
        s->best = r;
    } else {
        vec_result_free(r);
    }
    s->state = S_SEARCHING;
    search_assert_state(s);
    return MD_OK;
}

/* ---- models and rules ---------------------------------------------------------------------- */

static void note_fallback(pl_ai_out *out, const char *why)
{
    size_t len = strlen(out->fallback_reason);
    out->fallback_used = 1;
    snprintf(out->fallback_reason + len, sizeof out->fallback_reason - len, "%s%s", len ? "; " : "",
             why);
}

/* One run of model `which` on rows x cols floats, a "model run" span under the stage. */
static int model_run(search *s, int which, const float *x, int rows, int cols, float *y,
                     md_err *err)
{
    tr_span *span = pl__span_under(s->stage, "model run");
    tr_span_attr_str(span, "modeld.model", pl_ai_model_name(which));
    tr_span_attr_str(span, "modeld.version", s->m[which].version);
    tr_span_attr_int(span, "modeld.rows", rows);
    return pl__span_end(span, ai__run(&s->m[which], x, rows, cols, s->cx->cancel, y, err));
}

/* Predicted [ssim, ln bytes, ln ms] of n parameter sets (q: n x 3). */
static int predict_rows(search *s, const float *f, const vec_params *p, size_t n, float *q,
                        md_err *err)
{
    const int cols = VEC_N_FEATURES + VEC_N_PARAM_ENC;
    float *x = malloc(n * cols * sizeof *x);
    if (!x)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory for the candidates");
    for (size_t i = 0; i < n; i++) {
        memcpy(x + i * cols, f, VEC_N_FEATURES * sizeof *x);
        vec_params_encode(&p[i], x + i * cols + VEC_N_FEATURES);
    }
    uint64_t t0 = md_now_ns();
    int rc = model_run(s, AI_QUALITY, x, (int)n, cols, q, err);
    s->out->timing.prediction_ms += ms_since(t0);
    free(x);
    return rc;
}

static int classify(search *s, md_err *err)
{
    pl_ai_analysis *an = &s->out->an;
    uint64_t t0 = md_now_ns();
    int rc = MD_OK;
    if (s->have[AI_CLASSIFIER]) {
        float pr[PL_AI_CLASSES];
        rc = model_run(s, AI_CLASSIFIER, an->features, 1, VEC_N_FEATURES, pr, err);
        for (int i = 0; i < PL_AI_CLASSES; i++)
            an->probs[i] = pr[i];
    } else {
        ai__rules_classify(an->features, an->probs);
    }
    for (int i = 1; i < PL_AI_CLASSES; i++)
        an->logo_type = an->probs[i] > an->probs[an->logo_type] ? i : an->logo_type;
    an->confidence = an->probs[an->logo_type];
    an->complexity = ai__complexity(an->features);
    s->out->timing.classify_ms = ms_since(t0);
    tr_span_attr_str(s->stage, "modeld.logo_type", pl_ai_logo_type_name(an->logo_type));
    tr_span_attr_double(s->stage, "modeld.confidence", an->confidence);
    tr_span_attr_str(s->stage, "modeld.by", s->have[AI_CLASSIFIER] ? s->m[AI_CLASSIFIER].version
                                                                    : "rules");
    return rc;
}

static int guess_params(search *s, md_err *err)
{
    pl_ai_analysis *an = &s->out->an;
    int rc = MD_OK;
    if (s->have[AI_PARAMS]) {
        float enc[VEC_N_PARAM_ENC];
        rc = model_run(s, AI_PARAMS, an->features, 1, VEC_N_FEATURES, enc, err);
        vec_params_decode(enc, &an->guess);
    } else {
        ai__rules_params(an->features, an->logo_type, &an->guess);
    }
    an->predicted_quality = an->predicted_bytes = an->predicted_ms = -1;
    if (rc != MD_OK || !s->have[AI_QUALITY])
        return rc;
    float q[3];
    rc = predict_rows(s, an->features, &an->guess, 1, q, err);
    an->predicted_quality = fmin(1, fmax(0, q[0]));
    an->predicted_bytes = exp(q[1]);
    an->predicted_ms = exp(q[2]);
    return rc;
}

/* The seeds' table (issue 9, "Routing"): target 0.7 -> tier 1-2, 0.9 -> 2-3, 0.95 -> 3;
 * time_budget 0.3 s -> tier 1, 2.0 s -> 1-2. In that order of precedence: a budget under
 * 0.5 s leaves room for one conversion; a target of 0.95 or more needs the search (tier 2 when
 * the budget is under a second); a budget of 2 s or less caps the rest at tier 2; at 0.9 or
 * more the search runs unless the parameter model's guess is predicted well past the target
 * (then tier 2's ranked candidates); below 0.9 a guess predicted past the target is tier 1. */
int ai__route(int logo_type, double predicted, double target, double budget_s, char *reason,
              size_t reason_len)
{
    int tier = 2, capped = budget_s > 0 && budget_s <= 2.0;
    int easy = predicted >= 0 && predicted >= target + 0.02;
    const char *why = "the quality target needs candidates ranked by the quality model";
    if (budget_s > 0 && budget_s < 0.5) {
        tier = 1, why = "the time budget leaves room for about one conversion";
    } else if (target >= 0.95) {
        tier = budget_s == 0 || budget_s >= 1.0 ? 3 : 2;
        why = tier == 3 ? "a high target needs a search with real conversions"
                        : "a high target, but the time budget is too short for a search";
    } else if (target >= 0.9) {
        tier = capped || easy ? 2 : 3;
        why = tier == 3 ? "a high target needs a search with real conversions"
              : easy    ? "a high target, the starting guess is predicted to reach it"
                        : "a high target, but the time budget caps the search at tier 2";
    } else if (easy) {
        tier = 1, why = "the parameter model's guess is predicted to reach the target";
    } else if (predicted < 0 && target <= 0.75) {
        tier = 1, why = "a low target is met by the starting parameters";
    } else if ((logo_type == AI_COMPLEX || logo_type == AI_GRADIENT) && target >= 0.88 && !capped) {
        tier = 3, why = "a detailed image and a high target need a search";
    }
    snprintf(reason, reason_len, "%s (target %.2f, predicted %.3f, budget %.2f s)", why, target,
             predicted, budget_s);
    return tier;
}

/* ---- the tiers --------------------------------------------------------------------------- */

static uint64_t xorshift(uint64_t *st)
{
    *st ^= *st << 13;
    *st ^= *st >> 7;
    *st ^= *st << 17;
    return *st;
}

static double unit(uint64_t *st)
{
    return (double)(xorshift(st) >> 11) / 9007199254740992.0;
}

/* The practical search box of the encoded parameters (the valid ranges are wider). */
static const float LO[VEC_N_PARAM_ENC] = {0, 3, 0, 0, 3.5f, 3, 0, 0, 0, 0};
static const float HI[VEC_N_PARAM_ENC] = {16, 8, 64, 150, 8, 20, 120, 3, 1, 1};

#define N_FIXED 4
/* c[0] the guess, c[1] the default preset, c[2] the quality preset, c[3] the rules' guess,
 * then perturbations of the guess and a Latin hypercube over the box (invariant 5). */
static void make_candidates(const vec_params *guess, const float *features, vec_params *c, size_t n)
{
    uint64_t st = 0x9E3779B97F4A7C15ull;
    c[0] = *guess;
    vec_params_preset("default", &c[1], NULL);
    vec_params_preset("quality", &c[2], NULL);
    ai__rules_params(features, AI_SIMPLE, &c[3]);
    float g[VEC_N_PARAM_ENC], x[VEC_N_PARAM_ENC];
    vec_params_encode(guess, g);
    size_t nperturb = (n - N_FIXED) / 2, nlhs = n - N_FIXED - nperturb;
    for (size_t i = 0; i < nperturb; i++) {
        for (int d = 0; d < VEC_N_PARAM_ENC; d++)
            x[d] = g[d] + (float)((unit(&st) - 0.5) * 0.4 * (HI[d] - LO[d]));
        vec_params_decode(x, &c[N_FIXED + i]);
    }
    int perm[VEC_N_PARAM_ENC][N_CANDIDATES];
    for (int d = 0; d < VEC_N_PARAM_ENC; d++) {
        for (size_t i = 0; i < nlhs; i++)
            perm[d][i] = (int)i;
        for (size_t i = nlhs - 1; i > 0; i--) {
            size_t j = xorshift(&st) % (i + 1);
            int t = perm[d][i];
            perm[d][i] = perm[d][j], perm[d][j] = t;
        }
    }
    for (size_t i = 0; i < nlhs; i++) {
        for (int d = 0; d < VEC_N_PARAM_ENC; d++)
            x[d] = LO[d] + (float)((perm[d][i] + unit(&st)) / nlhs * (HI[d] - LO[d]));
        vec_params_decode(x, &c[N_FIXED + nperturb + i]);
    }
}

static int by_score_desc(const void *a, const void *b)
{
    const float *x = a, *y = b;
    return (x[0] < y[0]) - (x[0] > y[0]);
}

/* Rank the candidates by predicted SSIM among those predicted within the size budget, and
 * convert the best `k`. */
static int rank_and_convert(search *s, int k, md_err *err)
{
    vec_params *cand = malloc(N_CANDIDATES * sizeof *cand);
    float *q = malloc(N_CANDIDATES * 3 * sizeof *q),
          (*order)[2] = malloc(N_CANDIDATES * sizeof *order);
    int rc = cand && q && order ? MD_OK : md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    if (rc == MD_OK) {
        make_candidates(&s->out->an.guess, s->out->an.features, cand, N_CANDIDATES);
        rc = predict_rows(s, s->out->an.features, cand, N_CANDIDATES, q, err);
    }
    s->out->candidates_scored = rc == MD_OK ? N_CANDIDATES : 0;
    /* Size: predicted bytes relative to the default preset's prediction (row 1), scaled by the
     * budget's ratio to the default preset's real bytes. */
    double room = s->out->default_bytes ? log((double)s->size_budget / s->out->default_bytes) : 0;
    int n = 0;
    for (int i = 0; rc == MD_OK && i < N_CANDIDATES; i++) {
        if (q[i * 3 + 1] - q[1 * 3 + 1] > room + 0.05)
            continue;
        order[n][0] = q[i * 3], order[n][1] = (float)i;
        n++;
    }
    if (rc == MD_OK)
        qsort(order, (size_t)n, sizeof *order, by_score_desc);
    for (int i = 0, done = 0; rc == MD_OK && i < n && done < k && !search_done(s); i++) {
        int before = s->ntried;
        rc = search_try(s, &cand[(int)order[i][1]], err);
        done += s->ntried > before;
    }
    free(cand);
    free(q);
    free(order);
    return rc;
}

/* Without the quality model: the guess, the rules' guess, and two variations of it (finer
 * layers, which gain most but may pass the size budget; polygons, which often halve the bytes). */
static int rules_convert(search *s, md_err *err)
{
    vec_params c[4];
    c[0] = s->out->an.guess;
    ai__rules_params(s->out->an.features, s->out->an.logo_type, &c[1]);
    c[2] = c[1];
    c[2].layer_difference = c[1].layer_difference / 2;
    c[3] = c[1];
    c[3].mode = VEC_POLYGON;
    int rc = MD_OK;
    for (int i = 0; i < 4 && rc == MD_OK; i++)
        rc = search_try(s, &c[i], err);
    return rc;
}

static int run_default(search *s, md_err *err)
{
    vec_params d;
    vec_params_preset("default", &d, NULL);
    int rc = search_try(s, &d, err);
    if (rc != MD_OK)
        return rc;
    s->out->default_bytes = s->best->svg_bytes;
    s->out->default_ssim = s->best->ssim.rgb;
    if (!s->in->max_svg_bytes)
        s->size_budget = 3 * s->best->svg_bytes;
    return MD_OK;
}

/* The default preset, the rules' set for the logo type (its gain is measured, so it is always
 * worth one conversion), the first `nport` sets of the portfolio (ai__portfolio: the order that
 * added the most measured gain on training images), the best k candidates by the quality model,
 * then the rules' variations while time is left. */
static int tier2(search *s, int nport, int k, md_err *err)
{
    vec_params r;
    ai__rules_params(s->out->an.features, s->out->an.logo_type, &r);
    int rc = run_default(s, err);
    if (rc == MD_OK)
        rc = search_try(s, &r, err);
    for (int i = 0; rc == MD_OK && i < nport && ai__portfolio(i, &r); i++)
        rc = search_try(s, &r, err);
    if (rc == MD_OK && s->have[AI_QUALITY])
        rc = rank_and_convert(s, k, err);
    if (rc == MD_OK)
        rc = rules_convert(s, err);
    return rc;
}

/* Coordinate search from the best so far: each coordinate one step up and down, a better
 * result moves the centre, a sweep with no gain halves the steps. Up to TIER3_ROUNDS sweeps:
 * with the shared vec_cache a 512 px logo finished 4 sweeps in about 1 s of its 2 s; the later
 * sweeps only add conversions after the same first four, so they never lose a found gain
 * (measured +0.4 points per image on 22 held-out 512 px images of our own, build/tune512). */
#define TIER3_ROUNDS 8
static int tier3(search *s, md_err *err)
{
    /* Most effective first (filter_speckle, corner_threshold, colours, layers, splice,
     * polygons); cutout layering is left out: it lost SSIM on every image measured. */
    static const int order[] = {0, 3, 1, 2, 6, 9, 5, 7, 4};
    enum { NDIM = sizeof order / sizeof order[0] };
    float step[VEC_N_PARAM_ENC] = {1, 1, 4, 15, 0.5f, 5, 15, 1, 1, 1};
    int rc = tier2(s, TIER3_PORTFOLIO, 2, err);
    for (int round = 0; rc == MD_OK && round < TIER3_ROUNDS && !search_done(s); round++) {
        int gained = 0;
        for (int i = 0; rc == MD_OK && i < NDIM && !search_done(s); i++) {
            int d = order[i];
            for (int sign = -1; sign <= 1 && rc == MD_OK; sign += 2) {
                const vec_result *before = s->best;
                float x[VEC_N_PARAM_ENC];
                vec_params_encode(&s->best->params, x);
                x[d] += sign * step[d];
                vec_params p;
                vec_params_decode(x, &p);
                rc = search_try(s, &p, err);
                gained |= s->best != before;
            }
        }
        for (int d = 0; !gained && d < VEC_N_PARAM_ENC; d++)
            step[d] = d >= 8 ? step[d] : step[d] / 2;
    }
    return rc;
}

/* ---- the pipeline ------------------------------------------------------------------------ */

static int check_in(const pl_ai_in *in, md_err *err)
{
    if (in->tier < 0 || in->tier > 3)
        return md_fail(err, MD_E_INVALID_PARAM, "tier", "tier must be 1, 2, 3 or auto");
    if (!(in->target_quality >= 0 && in->target_quality <= 1))
        return md_fail(err, MD_E_INVALID_PARAM, "target_quality",
                       "target_quality must be a number in 0..1");
    if (!(in->time_budget_s >= 0 && in->time_budget_s <= 600))
        return md_fail(err, MD_E_INVALID_PARAM, "time_budget",
                       "time_budget must be a number of seconds in (0, 600]");
    return MD_OK;
}

/* Acquire the three models; rules for those missing; MD_E_MODEL_UNAVAILABLE when none runs. */
static int acquire_models(search *s, md_err *err)
{
    int any = 0;
    for (int i = 0; i < PL_AI_MODELS; i++) {
        s->have[i] = ai__acquire(s->cx, i, &s->m[i]) == MD_OK;
        any |= s->have[i];
        if (s->have[i])
            snprintf(s->out->model_versions[i], sizeof s->out->model_versions[i], "%s",
                     s->m[i].version);
        else
            note_fallback(s->out, s->m[i].reason);
    }
    if (!any)
        return md_fail(err, MD_E_MODEL_UNAVAILABLE, NULL,
                       "no AI model is available (%.200s); use /api/convert instead",
                       s->out->fallback_reason);
    return MD_OK;
}

static void release_models(search *s)
{
    for (int i = 0; i < PL_AI_MODELS; i++)
        ai__release(&s->m[i]);
}

static int features(search *s, md_err *err)
{
    uint64_t t0 = md_now_ns();
    int side = s->in->analysis_side ? s->in->analysis_side : VEC_FEATURES_SIDE;
    int rc = vec_features_grid(s->img, side, s->out->an.features, err);
    s->out->timing.features_ms = ms_since(t0);
    tr_span_attr_int(s->stage, "modeld.side", side);
    return rc;
}

static int route(search *s, md_err *err)
{
    (void)err;
    pl_ai_out *out = s->out;
    uint64_t t0 = md_now_ns();
    out->an.recommended_tier =
        ai__route(out->an.logo_type, out->an.predicted_quality, out->target_quality,
                  s->in->time_budget_s, out->an.routing_reason, sizeof out->an.routing_reason);
    out->selected_tier = s->in->tier ? s->in->tier : out->an.recommended_tier;
    out->timing.routing_ms = ms_since(t0);
    tr_span_attr_int(s->stage, "modeld.recommended_tier", out->an.recommended_tier);
    tr_span_attr_int(s->stage, "modeld.tier", out->selected_tier);
    tr_span_attr_str(s->stage, "modeld.reason", out->an.routing_reason);
    return MD_OK;
}

/* fn under a span named name (s->stage while it runs). */
static int stage(search *s, const char *name, int (*fn)(search *, md_err *), md_err *err)
{
    tr_span *span = pl__span(s->cx, name);
    s->stage = span;
    int rc = fn(s, err);
    s->stage = NULL;
    return pl__span_end(span, rc);
}

static int analyse(search *s, md_err *err)
{
    int rc = stage(s, "ai features", features, err);
    if (rc == MD_OK)
        rc = stage(s, "ai classify", classify, err);
    if (rc == MD_OK)
        rc = stage(s, "ai params", guess_params, err);
    if (rc == MD_OK)
        rc = stage(s, "ai route", route, err);
    return rc;
}

static double default_budget(int tier)
{
    return tier == 1 ? 0.5 : tier == 2 ? 1.5 : 5.0;
}

/* Tier 1's one conversion: the parameter model's guess or the rules' guess. The quality model
 * decides only when it separates them by more than twice its own held-out error (manifest
 * ssim_mae): the difference of two predictions carries both their errors, so a smaller one is
 * noise, and then the rules' guess is converted, whose gain over the default preset is measured
 * (bench/vectorize_rules.py; on its 48 icons the parameter model's guess beat it on 1). The size
 * budget is 3x the default preset's predicted bytes when no max_svg_bytes was given (also the
 * reported one). */
static void tier1_pick(search *s, vec_params *pick)
{
    pl_ai_out *out = s->out;
    vec_params c[3];
    float q[3 * 3];
    c[0] = out->an.guess;
    ai__rules_params(out->an.features, out->an.logo_type, &c[1]);
    vec_params_preset("default", &c[2], NULL);
    *pick = c[s->have[AI_PARAMS] ? 0 : 1];
    if (!s->have[AI_QUALITY] || !s->have[AI_PARAMS] ||
        predict_rows(s, out->an.features, c, 3, q, NULL) != MD_OK)
        return;
    if (!s->size_budget)
        s->size_budget = (size_t)(3 * exp(q[2 * 3 + 1]));
    double budget = log((double)s->size_budget), mae = ai__ssim_mae(&s->m[AI_QUALITY]);
    int model_fits = q[1] <= budget, rules_fit = q[3 + 1] <= budget;
    int model_wins = model_fits && (!rules_fit || q[0] > q[3] + 2 * mae);
    *pick = c[model_wins ? 0 : 1];
    out->method = model_wins ? "parameter_model" : "rules_ranked";
}

static int run_tier(search *s, md_err *err)
{
    pl_ai_out *out = s->out;
    out->tier_used = out->selected_tier;
    s->budget_s = s->in->time_budget_s > 0 ? s->in->time_budget_s : default_budget(out->tier_used);
    /* A request's deadline beats the budget: stop searching with a fifth of the time left, so
     * the answer is the best found rather than a 504. */
    const md_cancel *c = s->cx->cancel;
    uint64_t now = md_now_ns();
    if (c && c->deadline_ns > now)
        s->budget_s = fmin(s->budget_s, 0.8 * (double)(c->deadline_ns - now) / 1e9);
    out->time_budget_s = s->budget_s;
    s->size_budget = s->in->max_svg_bytes;
    int rc;
    if (out->tier_used == 1) {
        out->method = s->have[AI_PARAMS] ? "parameter_model" : "rules";
        vec_params pick;
        tier1_pick(s, &pick);
        rc = search_try(s, &pick, err);
    } else if (out->tier_used == 2) {
        out->method = s->have[AI_QUALITY] ? "predictor_ranking" : "rules";
        rc = tier2(s, TIER2_PORTFOLIO, TIER2_CONVERT, err);
    } else {
        out->method = "coordinate_search";
        rc = tier3(s, err);
    }
    out->size_budget = s->size_budget;
    out->target_reached = target_reached(s);
    out->elapsed_s = elapsed_s(s);
    return rc;
}

/* The search under its span "ai search", each conversion an "ai convert" under it. */
static int search_stage(search *s, md_err *err)
{
    tr_span *span = pl__span(s->cx, "ai search");
    s->stage = span;
    int rc = run_tier(s, err);
    s->stage = NULL;
    tr_span_attr_int(span, "modeld.tier", s->out->tier_used);
    tr_span_attr_str(span, "modeld.method", s->out->method);
    tr_span_attr_int(span, "modeld.conversions", s->out->conversions);
    tr_span_attr_int(span, "modeld.conversions_untraced",
                     s->ntried > MAX_TRACED_CONVERSIONS ? s->ntried - MAX_TRACED_CONVERSIONS : 0);
    tr_span_attr_double(span, "modeld.time_budget_s", s->budget_s);
    tr_span_attr_int(span, "modeld.target_reached", s->out->target_reached);
    return pl__span_end(span, rc);
}

/* The kept result's predicted quality, the result itself and the store. */
static int finish(search *s, const store_upload *up, md_err *err)
{
    pl_ai_out *out = s->out;
    out->predicted_quality = -1;
    float q[3];
    if (s->have[AI_QUALITY] &&
        predict_rows(s, out->an.features, &s->best->params, 1, q, NULL) == MD_OK)
        out->predicted_quality = fmin(1, fmax(0, q[0]));
    out->vec.res = s->best;
    s->best = NULL;
    if (!s->cx->st)
        return MD_OK;
    pl_vec_in vin = {.converter = PL_VTRACER,
                     .params = out->vec.res->params,
                     .filename = s->in->filename,
                     .measure_quality = 1};
    return pl__keep_result(s->cx, &vin, up, &out->vec, err);
}

static int decode_and_run(search *s, const void *data, size_t n, const store_upload *up,
                          md_err *err)
{
    md_image *img = NULL;
    uint64_t pixels = 0, t0 = md_now_ns();
    int rc = pl__admit_and_decode(s->cx, data, n, &s->out->vec, &img, &pixels, err);
    s->out->timing.decode_ms = ms_since(t0);
    s->img = img;
    s->t0 = md_clock_now_ns(s->clk);
    if (rc == MD_OK)
        rc = analyse(s, err);
    if (rc == MD_OK && !s->in->analyse_only)
        rc = search_stage(s, err);
    img_free(img);
    s->img = NULL;
    pl_budget_release(s->cx->budget, pixels);
    if (rc == MD_OK && !s->in->analyse_only)
        rc = finish(s, up, err);
    return rc;
}

static int vectorize_ai(pl_ctx *cx, const pl_ai_in *in, pl_ai_out *out, md_err *err);

/* The pipeline's span around the work; its stages are spans under it (spans.c). */
int pl_vectorize_ai(pl_ctx *cx, const pl_ai_in *in, pl_ai_out *out, md_err *err)
{
    tr_span *span = pl__span(cx, "pipeline vectorize ai");
    pl_ctx inner = pl__ctx_under(cx, span);
    int rc = vectorize_ai(&inner, in, out, err);
    tr_span_attr_int(span, "modeld.tier", out->selected_tier);
    tr_span_attr_str(span, "modeld.logo_type", pl_ai_logo_type_name(out->an.logo_type));
    tr_span_attr_int(span, "modeld.conversions", out->conversions);
    tr_span_attr_double(span, "modeld.target_quality", out->target_quality);
    if (rc == MD_OK && out->vec.res)
        tr_span_attr_double(span, "modeld.ssim", out->vec.res->ssim.rgb);
    tr_span_attr_int(span, "modeld.fallback", out->fallback_used);
    return pl__span_end(span, rc);
}

static int vectorize_ai(pl_ctx *cx, const pl_ai_in *in, pl_ai_out *out, md_err *err)
{
    memset(out, 0, sizeof *out);
    out->vec.smart_binary = -1;
    out->default_ssim = out->predicted_quality = -1;
    out->target_quality = in->target_quality > 0 ? in->target_quality : DEFAULT_TARGET;
    search s = {.cx = cx, .in = in, .out = out, .clk = in->clock ? in->clock : md_clock_system()};
    if (vec_cache_new(&s.cache) != MD_OK)
        s.cache = NULL; /* slower, same answers */
    pl_vec_in vin = {.image = in->image,
                     .image_len = in->image_len,
                     .file_id = in->file_id,
                     .upload = in->upload};
    int rc = check_in(in, err);
    if (rc == MD_OK && !in->image && !in->file_id && !in->upload)
        rc = md_fail(err, MD_E_MISSING_FIELD, "file_id", "no image to vectorize");
    if (rc == MD_OK)
        rc = acquire_models(&s, err);
    uint64_t t0 = md_now_ns();
    store_upload up;
    uint8_t *blob = NULL;
    size_t n = in->image_len;
    if (rc == MD_OK && !in->image)
        rc = pl__read_upload(cx, &vin, &up, &blob, &n, err);
    out->timing.read_ms = ms_since(t0);
    if (rc == MD_OK)
        rc = decode_and_run(&s, in->image ? in->image : blob, n, in->image ? NULL : &up, err);
    free(blob);
    release_models(&s);
    vec_result_free(s.best);
    vec_cache_free(s.cache);
    out->timing.total_ms = ms_since(t0);
    if (rc != MD_OK)
        pl_ai_out_free(out);
    return rc;
}

void pl_ai_out_free(pl_ai_out *out)
{
    if (out)
        pl_vec_out_free(&out->vec);
}

int pl_ai_predict(pl_ctx *cx, const float *features, const vec_params *params, size_t n,
                  double *ssim, double *bytes, double *ms, char version[32], md_err *err)
{
    pl_ai_out scratch;
    memset(&scratch, 0, sizeof scratch);
    search s = {.cx = cx, .out = &scratch};
    int rc = ai__acquire(cx, AI_QUALITY, &s.m[AI_QUALITY]);
    if (rc != MD_OK)
        return md_fail(err, rc, NULL, "%s", s.m[AI_QUALITY].reason);
    snprintf(version, 32, "%s", s.m[AI_QUALITY].version);
    float *q = malloc(n * 3 * sizeof *q);
    rc = q ? predict_rows(&s, features, params, n, q, err)
           : md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    for (size_t i = 0; rc == MD_OK && i < n; i++) {
        if (ssim)
            ssim[i] = fmin(1, fmax(0, q[i * 3]));
        if (bytes)
            bytes[i] = exp(q[i * 3 + 1]);
        if (ms)
            ms[i] = exp(q[i * 3 + 2]);
    }
    free(q);
    ai__release(&s.m[AI_QUALITY]);
    return rc;
}
