/* forest.c - our own evaluation of an XGBoost tree ensemble: the trees of a checked model
 * document flattened into one node array, walked row by row without libxgboost.
 *
 * Why: libxgboost's per-call cost (a proxy DMatrix, the adapter, thread-local buffers) is
 * most of a one-row prediction; walking the trees is a few hundred nanoseconds. xgb.c uses
 * this evaluator where it supports the model and it agrees with libxgboost at load (xgb.c,
 * check_native), and libxgboost otherwise.
 *
 * What "the same answer" means here, following XGBoost 1.7's CPU predictor:
 *   - margin = base margin (ProbToMargin(base_score): logit for the logistic objectives and
 *     binary:logitraw, log for count:poisson / reg:gamma / reg:tweedie, base_score itself
 *     otherwise), then each tree's leaf added in float, in tree order, to its output group
 *     (tree_info);
 *   - a split sends NaN (missing) to its default child, else x < cond to the left child and
 *     anything else to left + 1 (XGBoost never reads right_children; schema.c checked that
 *     right == left + 1);
 *   - the objective's transform in float: sigmoid 1 / (1 + expf(min(-x, 88.7))), expf, or
 *     softmax with the maximum subtracted and a double sum.
 * Supported: gbtree boosters with the objectives of objective_kind(); anything else (dart,
 * gblinear, ranking, multi:softmax, hinge, survival) returns no forest, and xgb.c keeps
 * libxgboost for it.
 *
 * Invariants:
 *   1. Built only from a document that passed xgb__validate_doc: every split the root
 *      reaches has a feature < num_features and children left > i, left + 1 < num_nodes, so a
 *      walk from a root stays in its tree; nodes the root does not reach (never checked)
 *      are copied as leaves that lead nowhere.
 *   2. nodes[k].left is an absolute index into the forest's array (tree offset added); a
 *      leaf's left is itself and its XGB__SPLIT bit is clear, so a step from a leaf stays there:
 *      depth[t] steps from root t reach the leaf of every row (depth[t] = the tree's depth).
 *      The feature field's top bit is the default-left flag.
 *   3. A built forest is immutable: xgb__forest_predict only reads it, from any thread.
 */
#include "xgb/xgb.h"
#include "xgb/xgb_int.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16 /* trees walked together for one row */

enum { T_IDENTITY, T_SIGMOID, T_EXP, T_SOFTMAX };
enum { M_IDENTITY, M_LOGIT, M_LOG };

/* The transform and base-margin rule of an objective; 0 when we do not evaluate it. */
static int objective_kind(const char *obj, int *transform, int *margin)
{
    static const struct {
        const char *name;
        int t, m;
    } k[] = {
        {"reg:squarederror", T_IDENTITY, M_IDENTITY},
        {"reg:linear", T_IDENTITY, M_IDENTITY},
        {"reg:squaredlogerror", T_IDENTITY, M_IDENTITY},
        {"reg:pseudohubererror", T_IDENTITY, M_IDENTITY},
        {"reg:absoluteerror", T_IDENTITY, M_IDENTITY},
        {"binary:logitraw", T_IDENTITY, M_LOGIT},
        {"binary:logistic", T_SIGMOID, M_LOGIT},
        {"reg:logistic", T_SIGMOID, M_LOGIT},
        {"count:poisson", T_EXP, M_LOG},
        {"reg:gamma", T_EXP, M_LOG},
        {"reg:tweedie", T_EXP, M_LOG},
        {"multi:softprob", T_SOFTMAX, M_IDENTITY},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (strcmp(obj, k[i].name) == 0) {
            *transform = k[i].t;
            *margin = k[i].m;
            return 1;
        }
    return 0;
}

/* base_score as XGBoost reads it (a decimal string, parsed as a float; absent: 0.5). */
static float base_score_of(const json_t *learner)
{
    const json_t *v =
        json_object_get(json_object_get(learner, "learner_model_param"), "base_score");
    if (json_is_number(v))
        return (float)json_number_value(v);
    const char *s = json_string_value(v);
    return s ? strtof(s, NULL) : 0.5f;
}

static long long int_at(const json_t *a, size_t i)
{
    return json_integer_value(json_array_get(a, i));
}

/* Copy tree t's nodes into f->nodes from offset (invariant 2). Children come after their
 * parent (schema.c), so one forward pass knows which nodes the root reaches and at what level;
 * unreached nodes (pruned or deleted, never checked) become inert leaves. Returns the tree's
 * depth, UINT32_MAX when out of memory. */
static uint32_t copy_tree(xgb__forest *f, const json_t *tree, size_t offset, size_t n)
{
    const json_t *l = json_object_get(tree, "left_children");
    const json_t *sf = json_object_get(tree, "split_indices");
    const json_t *sc = json_object_get(tree, "split_conditions");
    const json_t *dl = json_object_get(tree, "default_left");
    uint32_t *level = calloc(n, sizeof *level), depth = 0;
    unsigned char *reached = calloc(n, 1);
    if (!level || !reached) {
        free(level);
        free(reached);
        return UINT32_MAX;
    }
    reached[0] = 1;
    for (size_t i = 0; i < n; i++) {
        xgb__fnode *nd = &f->nodes[offset + i];
        long long li = int_at(l, i);
        nd->value = (float)json_number_value(json_array_get(sc, i));
        nd->left = (uint32_t)(offset + i);
        nd->feat = 0;
        if (!reached[i] || li < 0) {
            depth = reached[i] && level[i] > depth ? level[i] : depth;
            continue;
        }
        const json_t *d = json_array_get(dl, i);
        bool left = json_is_true(d) || (json_is_integer(d) && json_integer_value(d) != 0);
        reached[li] = reached[li + 1] = 1;
        level[li] = level[li + 1] = level[i] + 1;
        nd->left = (uint32_t)(offset + (size_t)li);
        nd->feat = ((uint32_t)int_at(sf, i) & XGB__FEATURE_MASK) | XGB__SPLIT |
                   (left ? XGB__DEFAULT_LEFT : 0);
    }
    free(level);
    free(reached);
    return depth;
}

static size_t tree_nodes(const json_t *tree)
{
    return json_array_size(json_object_get(tree, "left_children"));
}

/* Allocate and fill the node array, roots and groups of a gbtree model object. */
static int fill(xgb__forest *f, const json_t *model, md_err *err)
{
    const json_t *trees = json_object_get(model, "trees");
    const json_t *info = json_object_get(model, "tree_info");
    f->n_trees = json_array_size(trees);
    for (size_t t = 0; t < f->n_trees; t++) {
        size_t n = tree_nodes(json_array_get(trees, t));
        if (n > (size_t)INT32_MAX - f->n_nodes)
            return md_fail(err, MD_E_TOO_LARGE, "model", "the model has too many tree nodes");
        f->n_nodes += n;
    }
    f->nodes = malloc((f->n_nodes ? f->n_nodes : 1) * sizeof *f->nodes);
    f->roots = malloc((f->n_trees ? f->n_trees : 1) * sizeof *f->roots);
    f->groups = malloc((f->n_trees ? f->n_trees : 1) * sizeof *f->groups);
    f->depth = malloc((f->n_trees ? f->n_trees : 1) * sizeof *f->depth);
    if (!f->nodes || !f->roots || !f->groups || !f->depth)
        return md_fail(err, MD_E_NOMEM, "model", "no memory for the flattened trees");
    size_t offset = 0;
    for (size_t t = 0; t < f->n_trees; t++) {
        const json_t *tree = json_array_get(trees, t);
        size_t n = tree_nodes(tree);
        f->depth[t] = copy_tree(f, tree, offset, n);
        if (f->depth[t] == UINT32_MAX)
            return md_fail(err, MD_E_NOMEM, "model", "no memory for the flattened trees");
        f->roots[t] = (uint32_t)offset;
        f->groups[t] = (uint32_t)int_at(info, t);
        offset += n;
    }
    return MD_OK;
}

int xgb__forest_build(const json_t *doc, const xgb_info *info, xgb__forest **out, md_err *err)
{
    *out = NULL;
    const json_t *learner = json_object_get(doc, "learner");
    const json_t *gb = json_object_get(learner, "gradient_booster");
    const char *booster = json_string_value(json_object_get(gb, "name"));
    int transform = 0, margin = 0;
    if (!booster || strcmp(booster, "gbtree") != 0 ||
        !objective_kind(info->objective, &transform, &margin))
        return MD_OK; /* not ours: libxgboost evaluates it */
    xgb__forest *f = calloc(1, sizeof *f);
    if (!f)
        return md_fail(err, MD_E_NOMEM, "model", "no memory for the flattened trees");
    f->n_features = info->num_features;
    f->n_groups = info->num_class > 1 ? info->num_class : 1;
    f->transform = transform;
    float bs = base_score_of(learner);
    f->base_margin = margin == M_LOGIT ? -logf(1.0f / bs - 1.0f) : margin == M_LOG ? logf(bs) : bs;
    int rc = fill(f, json_object_get(gb, "model"), err);
    if (rc == MD_OK)
        rc = xgb__forest_build_shap(f, json_object_get(json_object_get(gb, "model"), "trees"), err);
    if (rc != MD_OK) {
        xgb__forest_free(f);
        return rc;
    }
    *out = f;
    return MD_OK;
}

/* One step of a walk from node i for row x (invariant 2), branch-free: NaN goes to the default
 * child, x < cond to the left one, anything else to left + 1; a leaf stays where it is. */
static inline uint32_t step(const xgb__fnode *nodes, uint32_t i, const float *x)
{
    const xgb__fnode *nd = &nodes[i];
    float v = x[nd->feat & XGB__FEATURE_MASK];
    uint32_t nan = (uint32_t)(v != v); /* 0 or 1, as isnan() need not be */
    uint32_t right = (uint32_t) !(v < nd->value) & ~(nan & (nd->feat >> 31));
    return nd->left + (right & (nd->feat >> 30));
}

/* One row through every tree, LANES trees in lock-step: their walks do not depend on each
 * other, so the CPU overlaps their node loads where one walk alone waits for each load in
 * turn. The leaves are still added in tree order. */
static void one_row(const xgb__forest *f, const float *x, float *out)
{
    const xgb__fnode *nodes = f->nodes;
    size_t t = 0;
    for (; t + LANES <= f->n_trees; t += LANES) {
        uint32_t i[LANES], d = 0;
        for (int k = 0; k < LANES; k++) {
            i[k] = f->roots[t + k];
            d = f->depth[t + k] > d ? f->depth[t + k] : d;
        }
        for (uint32_t s = 0; s < d; s++)
            for (int k = 0; k < LANES; k++)
                i[k] = step(nodes, i[k], x);
        for (int k = 0; k < LANES; k++)
            out[f->groups[t + k]] += nodes[i[k]].value;
    }
    for (; t < f->n_trees; t++) {
        uint32_t i = f->roots[t];
        for (uint32_t s = 0; s < f->depth[t]; s++)
            i = step(nodes, i, x);
        out[f->groups[t]] += nodes[i].value;
    }
}

static void transform_row(const xgb__forest *f, float *o)
{
    size_t g = f->n_groups;
    if (f->transform == T_SIGMOID) {
        float x = fminf(-o[0], 88.7f);
        o[0] = 1.0f / (expf(x) + 1.0f);
    } else if (f->transform == T_EXP) {
        o[0] = expf(o[0]);
    } else if (f->transform == T_SOFTMAX) {
        float mx = o[0];
        for (size_t k = 1; k < g; k++)
            mx = fmaxf(o[k], mx);
        double sum = 0.0;
        for (size_t k = 0; k < g; k++) {
            o[k] = expf(o[k] - mx);
            sum += o[k];
        }
        for (size_t k = 0; k < g; k++)
            o[k] /= (float)sum;
    }
}

void xgb__forest_predict(const xgb__forest *f, const float *rows, size_t nrows, float *out)
{
    size_t g = f->n_groups, nf = f->n_features;
    /* row by row, LANES trees at a time; every row adds its trees in tree order (the same
     * float sums as XGBoost). Measured (bench/xgb_native.sh) at least as fast on 1000-row
     * batches as walking blocks of rows level by level through one tree at a time. */
    for (size_t r = 0; r < nrows; r++) {
        float *o = out + r * g;
        for (size_t k = 0; k < g; k++)
            o[k] = f->base_margin;
        one_row(f, rows + r * nf, o);
        if (f->transform != T_IDENTITY)
            transform_row(f, o);
    }
}

void xgb__forest_probe_rows(const xgb__forest *f, float *rows)
{
    size_t nf = f->n_features;
    float *thr = rows + 2 * nf; /* row 2: a threshold each feature is split on, else 0 */
    for (size_t j = 0; j < nf; j++) {
        rows[j] = NAN;
        rows[nf + j] = 0.0f;
        thr[j] = 0.0f;
    }
    for (size_t k = f->n_nodes; k-- > 0;) /* backwards: the first split on j wins */
        if (f->nodes[k].feat & XGB__SPLIT)
            thr[f->nodes[k].feat & XGB__FEATURE_MASK] = f->nodes[k].value;
    for (size_t j = 0; j < nf; j++) {
        rows[3 * nf + j] = nextafterf(thr[j], -INFINITY); /* the other side of that split */
        rows[4 * nf + j] = thr[j] * 2.0f;
        rows[5 * nf + j] = thr[j] * 0.5f;
        rows[6 * nf + j] = -thr[j];
    }
}

size_t xgb__forest_outputs(const xgb__forest *f)
{
    return f->n_groups;
}

size_t xgb__forest_bytes(const xgb__forest *f)
{
    return f ? sizeof *f + f->n_nodes * sizeof(xgb__fnode) + f->n_trees * 3 * sizeof(uint32_t) +
                   xgb__forest_shap_bytes(f)
             : 0;
}

void xgb__forest_free(xgb__forest *f)
{
    if (!f)
        return;
    free(f->nodes);
    free(f->roots);
    free(f->groups);
    free(f->depth);
    xgb__forest_free_shap(f);
    free(f);
}
