/* treeshap.c - exact path-dependent TreeSHAP (Lundberg, Erion & Lee, "Consistent individualized
 * feature attribution for tree ensembles", Algorithm 2) on forest.c's flattened trees: the
 * contributions xgb_contributions answers, as XGBoost 1.7's pred_contribs computes them.
 *
 * Why: through libxgboost, pred_contribs was about 65 % of a 1,000-row batch (a DMatrix per
 * call, a path buffer and a contribution vector allocated per tree and row, node means
 * recomputed per call). Here the node means and covers are computed once at load and a call
 * allocates nothing.
 *
 * "The same answer" follows XGBoost 1.7 (src/tree/tree_model.cc, RegTree::TreeShap, ExtendPath,
 * UnwindPath, UnwoundPathSum; src/predictor/cpu_predictor.cc, PredictContribution) operation
 * by operation, in float: the cover of a node is its sum_hessian, the hot child is the one the
 * row takes (NaN: the default child), per tree the contributions go to a zeroed vector whose
 * bias slot gets the root's mean value, that vector is added to the row's group in tree order,
 * and the base margin is added to the bias last. Only condition == 0 (plain contributions, no
 * interactions) is implemented.
 *
 * Invariants:
 *   1. f->cover and f->mean exist only if every node a root reaches has a finite cover > 0 and
 *      every tree is at most XGB__SHAP_MAX_DEPTH deep (xgb__forest_build_shap), so every
 *      division below is by a positive number and the recursion and the path buffer are
 *      bounded: PATH_CAP elements hold the paths of all the levels of one walk.
 *   2. A walk only reads the forest (thread-safe); its path buffer is on the caller's stack.
 *   3. Unreached nodes (forest.c invariant 1) are never visited: a walk follows left and
 *      left + 1 of split nodes only.
 */
#include "xgb/xgb_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Paths of depths 1 .. D + 1 (the root's dummy element included) laid out one after the other,
 * as XGBoost's unique_path_data: (D + 2) (D + 3) / 2 elements cover every level. */
#define PATH_CAP ((XGB__SHAP_MAX_DEPTH + 2) * (XGB__SHAP_MAX_DEPTH + 3) / 2)

typedef struct path_el {
    int feature;
    float zero, one, pweight;
} path_el;

/* The state of one row's walk through one tree. */
typedef struct walk {
    const xgb__forest *f;
    const float *x;
    float *phi; /* the tree's contributions, n_features + 1 */
} walk;

static void extend_path(path_el *p, unsigned d, float zero, float one, int feature)
{
    p[d].feature = feature;
    p[d].zero = zero;
    p[d].one = one;
    p[d].pweight = d == 0 ? 1.0f : 0.0f;
    for (int i = (int)d - 1; i >= 0; i--) {
        p[i + 1].pweight += one * p[i].pweight * (float)(i + 1) / (float)(d + 1);
        p[i].pweight = zero * p[i].pweight * (float)(d - (unsigned)i) / (float)(d + 1);
    }
}

static void unwind_path(path_el *p, unsigned d, unsigned k)
{
    const float one = p[k].one, zero = p[k].zero;
    float next = p[d].pweight;
    for (int i = (int)d - 1; i >= 0; i--) {
        if (one != 0) {
            const float tmp = p[i].pweight;
            p[i].pweight = next * (float)(d + 1) / ((float)(i + 1) * one);
            next = tmp - p[i].pweight * zero * (float)(d - (unsigned)i) / (float)(d + 1);
        } else {
            p[i].pweight = (p[i].pweight * (float)(d + 1)) / (zero * (float)(d - (unsigned)i));
        }
    }
    for (unsigned i = k; i < d; i++) {
        p[i].feature = p[i + 1].feature;
        p[i].zero = p[i + 1].zero;
        p[i].one = p[i + 1].one;
    }
}

/* The total weight of the path with element k unwound (without changing the path). */
static float unwound_sum(const path_el *p, unsigned d, unsigned k)
{
    const float one = p[k].one, zero = p[k].zero;
    float next = p[d].pweight, total = 0;
    for (int i = (int)d - 1; i >= 0; i--) {
        if (one != 0) {
            const float tmp = next * (float)(d + 1) / ((float)(i + 1) * one);
            total += tmp;
            next = p[i].pweight - tmp * zero * ((float)(d - (unsigned)i) / (float)(d + 1));
        } else if (zero != 0) {
            total += (p[i].pweight / zero) / ((float)(d - (unsigned)i) / (float)(d + 1));
        }
    }
    return total;
}

/* XGBoost's RegTree::TreeShap with condition 0: node i reached with the path parent[0..d]. */
static void tree_shap(const walk *w, uint32_t i, unsigned d, path_el *parent, float pzero,
                      float pone, int pfeature)
{
    const xgb__fnode *nd = &w->f->nodes[i];
    path_el *p = parent + d + 1;
    memcpy(p, parent, (d + 1) * sizeof *p);
    extend_path(p, d, pzero, pone, pfeature);
    if (!(nd->feat & XGB__SPLIT)) {
        for (unsigned k = 1; k <= d; k++) {
            const float s = unwound_sum(p, d, k);
            w->phi[p[k].feature] += s * (p[k].one - p[k].zero) * nd->value;
        }
        return;
    }
    const unsigned split = nd->feat & XGB__FEATURE_MASK;
    const float v = w->x[split];
    uint32_t hot = nd->left + 1;
    if (isnan(v))
        hot = (nd->feat & XGB__DEFAULT_LEFT) ? nd->left : nd->left + 1;
    else if (v < nd->value)
        hot = nd->left;
    const uint32_t cold = hot == nd->left ? nd->left + 1 : nd->left;
    const float *cover = w->f->cover;
    const float hot_zero = cover[hot] / cover[i], cold_zero = cover[cold] / cover[i];
    float in_zero = 1, in_one = 1;
    /* a feature split on before: undo that split so it is redone here */
    unsigned k = 0;
    while (k <= d && p[k].feature != (int)split)
        k++;
    if (k != d + 1) {
        in_zero = p[k].zero;
        in_one = p[k].one;
        unwind_path(p, d, k);
        d--;
    }
    tree_shap(w, hot, d + 1, p, hot_zero * in_zero, in_one, (int)split);
    tree_shap(w, cold, d + 1, p, cold_zero * in_zero, 0, (int)split);
}

int xgb__forest_has_shap(const xgb__forest *f)
{
    return f && f->cover && f->mean;
}

void xgb__forest_contributions(const xgb__forest *f, const float *rows, size_t nrows, float *out,
                               float *tree_phi)
{
    const size_t nf = f->n_features, width = nf + 1, g = f->n_groups;
    path_el path[PATH_CAP];
    memset(out, 0, nrows * g * width * sizeof *out);
    for (size_t r = 0; r < nrows; r++) {
        float *o = out + r * g * width;
        walk w = {f, rows + r * nf, tree_phi};
        for (size_t t = 0; t < f->n_trees; t++) {
            memset(tree_phi, 0, width * sizeof *tree_phi);
            uint32_t root = f->roots[t];
            tree_phi[nf] += f->mean[root];
            tree_shap(&w, root, 0, path, 1, 1, -1);
            float *dst = o + f->groups[t] * width;
            for (size_t c = 0; c < width; c++)
                dst[c] += tree_phi[c];
        }
        for (size_t k = 0; k < g; k++)
            o[k * width + nf] += f->base_margin;
    }
}

/* ---- at load ---- */

/* Tree t's nodes [off, off + n): covers from sum_hessian (sh), which nodes the root reaches,
 * then the mean values bottom-up (children come after their parent). 0 when a reached node's
 * cover is not finite and > 0 (invariant 1). */
static int tree_shap_data(xgb__forest *f, const json_t *sh, size_t off, size_t n)
{
    unsigned char *reached = calloc(n ? n : 1, 1);
    if (!reached)
        return -1;
    int ok = 1;
    reached[0] = 1;
    for (size_t i = 0; i < n; i++) {
        const xgb__fnode *nd = &f->nodes[off + i];
        f->cover[off + i] = (float)json_number_value(json_array_get(sh, i));
        if (!reached[i])
            continue;
        ok = ok && isfinite(f->cover[off + i]) && f->cover[off + i] > 0;
        if (nd->feat & XGB__SPLIT)
            reached[nd->left - off] = reached[nd->left + 1 - off] = 1;
    }
    for (size_t i = n; ok && i-- > 0;) {
        const xgb__fnode *nd = &f->nodes[off + i];
        if (!reached[i] || !(nd->feat & XGB__SPLIT)) {
            f->mean[off + i] = nd->value;
            continue;
        }
        /* FillNodeMeanValues' float arithmetic, step by step */
        float m = f->mean[nd->left] * f->cover[nd->left];
        m += f->mean[nd->left + 1] * f->cover[nd->left + 1];
        m /= f->cover[off + i];
        f->mean[off + i] = m;
    }
    free(reached);
    return ok;
}

int xgb__forest_build_shap(xgb__forest *f, const json_t *trees, md_err *err)
{
    for (size_t t = 0; t < f->n_trees; t++)
        if (f->depth[t] > XGB__SHAP_MAX_DEPTH)
            return MD_OK; /* invariant 1: libxgboost computes this model's contributions */
    f->cover = malloc((f->n_nodes ? f->n_nodes : 1) * sizeof *f->cover);
    f->mean = malloc((f->n_nodes ? f->n_nodes : 1) * sizeof *f->mean);
    int ok = f->cover && f->mean ? 1 : -1;
    for (size_t t = 0; ok == 1 && t < f->n_trees; t++) {
        const json_t *tree = json_array_get(trees, t);
        size_t end = t + 1 < f->n_trees ? f->roots[t + 1] : f->n_nodes;
        ok =
            tree_shap_data(f, json_object_get(tree, "sum_hessian"), f->roots[t], end - f->roots[t]);
    }
    if (ok == 1)
        return MD_OK;
    free(f->cover);
    free(f->mean);
    f->cover = f->mean = NULL;
    return ok < 0 ? md_fail(err, MD_E_NOMEM, "model", "no memory for the TreeSHAP data") : MD_OK;
}
