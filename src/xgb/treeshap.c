/* treeshap.c - exact path-dependent TreeSHAP (Lundberg, Erion & Lee, "Consistent individualized
 * feature attribution for tree ensembles", Algorithm 2) on forest.c's flattened trees: the
 * contributions xgb_contributions answers, as XGBoost 1.7's pred_contribs computes them.
 *
 * Why: through libxgboost, pred_contribs was about 65 % of a 1,000-row batch (a DMatrix per
 * call, a path buffer and a contribution vector allocated per tree and row, node means
 * recomputed per call). Here the node means, covers and leaf tables are computed once at load
 * and a call allocates only its scratch (two buffers).
 *
 * "The same answer" follows XGBoost 1.7 (src/tree/tree_model.cc, RegTree::TreeShap, ExtendPath,
 * UnwindPath, UnwoundPathSum; src/predictor/cpu_predictor.cc, PredictContribution) operation
 * by operation, in float: the cover of a node is its sum_hessian, the hot child is the one the
 * row takes (NaN: the default child), per tree the contributions go to a zeroed vector whose
 * bias slot gets the root's mean value, that vector is added to the row's group in tree order,
 * and the base margin is added to the bias last. Only condition == 0 (plain contributions, no
 * interactions) is implemented.
 *
 * Two ways to compute the same values:
 *   - the path algorithm (tree_shap): XGBoost's recursion, bit for bit its float arithmetic;
 *     O(leaves * depth^2) per tree and row;
 *   - the leaf tables (fast path, after Yang's Fast TreeSHAP v2): a leaf's share of the
 *     contributions depends on the row only through which of the d distinct features on its
 *     root path the row "follows" (o_j = 1 when the row takes every split on feature j the
 *     path takes). For leaf value v, covers giving z_j (the product of the cover ratios of the
 *     path's splits on j) and that mask of o_j, feature i gets
 *         v (o_i - z_i) sum_{S in on \ {i}} |S|! (d - |S| - 1)! / d! prod_{j not in S, j != i} z_j
 *     (Lundberg et al.'s path-dependent Shapley value of one leaf). So at load each leaf gets
 *     the 2^d * d values (in double, stored as float), and a row costs one pass over the
 *     tree's splits (each clears its feature's bit in the cold child's mask) and d additions
 *     per leaf (summed in double): O(nodes + leaves * d) instead of O(leaves * d^2) with
 *     divisions; BLOCK rows go through a tree together, so its tables are read from L1.
 *     Used when every leaf has d <= TAB_MAX_D and the tables fit TAB_BUDGET floats; differs
 *     from the path algorithm by float rounding only (the load-time check in xgb.c holds it to
 *     libxgboost within 1e-5, as forest_test.c does on every shipped model).
 *
 * Invariants:
 *   1. f->cover and f->mean exist only if every node a root reaches has a finite cover > 0 and
 *      every tree is at most XGB__SHAP_MAX_DEPTH deep (xgb__forest_build_shap), so every
 *      division below is by a positive number and the recursion and the path buffer are
 *      bounded: PATH_CAP elements hold the paths of all the levels of one walk.
 *   2. A walk only reads the forest (thread-safe); its path buffer is on the caller's stack.
 *   3. Unreached nodes (forest.c invariant 1) are never visited: a walk follows left and
 *      left + 1 of split nodes only; the fast path's lists hold reached nodes only.
 *   4. With f->tables: every reached leaf's table (2^d * d floats at tab) and features (d at
 *      feats) lie inside tab and feat, d <= TAB_MAX_D, a split comes before its children in
 *      its tree's list (so a mask is written before it is read), and a split's slot < the d
 *      of every leaf under it, so a leaf's mask index is < 2^d.
 */
#include "xgb/xgb_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Paths of depths 1 .. D + 1 (the root's dummy element included) laid out one after the other,
 * as XGBoost's unique_path_data: (D + 2) (D + 3) / 2 elements cover every level. */
#define PATH_CAP ((XGB__SHAP_MAX_DEPTH + 2) * (XGB__SHAP_MAX_DEPTH + 3) / 2)
#define TAB_MAX_D 12                 /* distinct features on a leaf's path, for the fast path */
#define TAB_BUDGET ((size_t)1 << 21) /* floats of leaf tables (8 MiB), for the fast path */

#define BLOCK 16 /* rows walked together through a tree's tables (they stay in L1) */

/* The fast path's data: per tree, its reached split nodes and leaves in depth-first order
 * (a parent before its children), node indices local to the tree. */
typedef struct shap_split {
    float thr;
    uint32_t feat; /* feature index | XGB__DEFAULT_LEFT */
    uint32_t node; /* its local index (its mask) */
    uint32_t left; /* its left child's local index (left + 1: the right one) */
    uint32_t bit;  /* 1 << the slot of its feature among its root path's distinct features */
} shap_split;

typedef struct shap_leaf {
    uint32_t node;  /* its local index */
    uint32_t tab;   /* offset of its 2^d * d table in tab */
    uint32_t feats; /* offset of its d feature indices in feat */
    uint32_t d;     /* distinct features on its root path */
} shap_leaf;

struct xgb__shap_tables {
    shap_split *splits;
    shap_leaf *leaves;
    uint32_t *split_off, *leaf_off; /* per tree, n_trees + 1: its range in splits / leaves */
    float *tab;
    uint32_t *feat;
    size_t bytes;
};

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

/* The path algorithm (XGBoost's), per row and tree into tree_phi, then into out. */
static void contributions_paths(const xgb__forest *f, const float *rows, size_t nrows, float *out,
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

/* The fast path on tree t for rows x[0..nb) (nf floats each): contributions added to
 * dst[r] (row r's group, in double: the sum of thousands of table values then carries only
 * XGBoost's own float error). mask: scratch, BLOCK * max_tree_nodes. */
static void tree_tables(const xgb__forest *f, size_t t, const float *x, size_t nb, size_t nf,
                        uint32_t *mask, double *const *dst)
{
    const struct xgb__shap_tables *tb = f->tables;
    const size_t stride = f->max_tree_nodes;
    for (size_t r = 0; r < nb; r++) {
        uint32_t *m = mask + r * stride;
        const float *xr = x + r * nf;
        m[0] = UINT32_MAX;
        for (uint32_t k = tb->split_off[t]; k < tb->split_off[t + 1]; k++) {
            const shap_split *sp = &tb->splits[k];
            const float v = xr[sp->feat & XGB__FEATURE_MASK];
            const int left = isnan(v) ? (sp->feat & XGB__DEFAULT_LEFT) != 0 : v < sp->thr;
            const uint32_t on = m[sp->node], cold = on & ~sp->bit;
            m[sp->left] = left ? on : cold;
            m[sp->left + 1] = left ? cold : on;
        }
    }
    for (uint32_t k = tb->leaf_off[t]; k < tb->leaf_off[t + 1]; k++) {
        const shap_leaf *lf = &tb->leaves[k];
        const uint32_t d = lf->d, sel = (1u << d) - 1;
        const uint32_t *fe = tb->feat + lf->feats;
        for (size_t r = 0; r < nb; r++) {
            const float *tab = tb->tab + lf->tab + (size_t)(mask[r * stride + lf->node] & sel) * d;
            for (uint32_t j = 0; j < d; j++)
                dst[r][fe[j]] += tab[j];
        }
    }
}

/* The fast path: blocks of BLOCK rows through every tree's tables. mask: scratch of
 * BLOCK * max_tree_nodes; acc: BLOCK * groups * (n_features + 1) doubles. */
static void contributions_tables(const xgb__forest *f, const float *rows, size_t nrows, float *out,
                                 uint32_t *mask, double *acc)
{
    const size_t nf = f->n_features, width = nf + 1, g = f->n_groups;
    for (size_t r0 = 0; r0 < nrows; r0 += BLOCK) {
        size_t nb = nrows - r0 < BLOCK ? nrows - r0 : BLOCK;
        double *dst[BLOCK];
        memset(acc, 0, nb * g * width * sizeof *acc);
        for (size_t t = 0; t < f->n_trees; t++) {
            for (size_t r = 0; r < nb; r++) {
                dst[r] = acc + (r * g + f->groups[t]) * width;
                dst[r][nf] += f->mean[f->roots[t]];
            }
            tree_tables(f, t, rows + r0 * nf, nb, nf, mask, dst);
        }
        for (size_t r = 0; r < nb; r++)
            for (size_t k = 0; k < g; k++)
                acc[(r * g + k) * width + nf] += f->base_margin;
        for (size_t i = 0; i < nb * g * width; i++)
            out[r0 * g * width + i] = (float)acc[i];
    }
}

void xgb__forest_contributions(const xgb__forest *f, const float *rows, size_t nrows, float *out,
                               float *tree_phi)
{
    const size_t acc_n = BLOCK * f->n_groups * (f->n_features + 1);
    uint32_t *mask = f->tables ? malloc(BLOCK * f->max_tree_nodes * sizeof *mask) : NULL;
    double *acc = mask ? malloc(acc_n * sizeof *acc) : NULL;
    if (acc)
        contributions_tables(f, rows, nrows, out, mask, acc);
    else /* no tables, or no memory for the scratch: the path algorithm needs none */
        contributions_paths(f, rows, nrows, out, tree_phi);
    free(mask);
    free(acc);
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

/* ---- the fast path's leaf tables ---- */

/* A depth-first walk of one tree at load: the distinct features of the current root path and
 * their z_j, and the space the tables take (counted first, then filled into tb). */
typedef struct tab_walk {
    xgb__forest *f;
    struct xgb__shap_tables *tb; /* NULL: count only */
    size_t off;                  /* the tree's first node */
    size_t nsplit, nleaf, ntab, nfeat;
    int ok; /* 0: a leaf has more than TAB_MAX_D distinct features */
    uint32_t feat[TAB_MAX_D];
    double z[TAB_MAX_D];
} tab_walk;

/* Leaf value v's table: tab[mask * d + i] for each mask of o_j (bit j) and slot i (see the
 * file's comment), in double. */
static void leaf_table(float *tab, const double *z, unsigned d, double v)
{
    double w[TAB_MAX_D], fact[TAB_MAX_D + 1] = {1.0};
    for (unsigned k = 1; k <= d; k++)
        fact[k] = fact[k - 1] * k;
    for (unsigned k = 0; k < d; k++)
        w[k] = fact[k] * fact[d - 1 - k] / fact[d];
    for (uint32_t mask = 0; mask < (1u << d); mask++)
        for (unsigned i = 0; i < d; i++) {
            /* c: the coefficients of prod_{j != i} (z_j + o_j t); t^k weighs subsets of k */
            double c[TAB_MAX_D + 1] = {1.0}, sum = 0.0;
            unsigned deg = 0;
            for (unsigned j = 0; j < d; j++) {
                if (j == i)
                    continue;
                double o = (double)(mask >> j & 1u);
                c[deg + 1] = 0.0;
                for (unsigned k = deg + 1; k > 0; k--)
                    c[k] = c[k] * z[j] + c[k - 1] * o;
                c[0] *= z[j];
                deg++;
            }
            for (unsigned k = 0; k <= deg; k++)
                sum += c[k] * w[k];
            tab[mask * d + i] = (float)(v * ((double)(mask >> i & 1u) - z[i]) * sum);
        }
}

static void tab_leaf(tab_walk *tw, uint32_t i, unsigned d)
{
    if (tw->tb) {
        tw->tb->leaves[tw->nleaf] =
            (shap_leaf){(uint32_t)(i - tw->off), (uint32_t)tw->ntab, (uint32_t)tw->nfeat, d};
        memcpy(tw->tb->feat + tw->nfeat, tw->feat, d * sizeof *tw->feat);
        leaf_table(tw->tb->tab + tw->ntab, tw->z, d, tw->f->nodes[i].value);
    }
    tw->nleaf++;
    tw->ntab += ((size_t)1 << d) * d;
    tw->nfeat += d;
}

static void tab_node(tab_walk *tw, uint32_t i, unsigned d)
{
    const xgb__forest *f = tw->f;
    const xgb__fnode *nd = &f->nodes[i];
    if (!(nd->feat & XGB__SPLIT)) {
        tab_leaf(tw, i, d);
        return;
    }
    uint32_t feat = nd->feat & XGB__FEATURE_MASK;
    unsigned slot = 0;
    while (slot < d && tw->feat[slot] != feat)
        slot++;
    if (slot == TAB_MAX_D) {
        tw->ok = 0;
        return;
    }
    if (slot == d) {
        tw->feat[slot] = feat;
        tw->z[slot] = 1.0;
    }
    if (tw->tb)
        tw->tb->splits[tw->nsplit] =
            (shap_split){nd->value, nd->feat & ~XGB__SPLIT, (uint32_t)(i - tw->off),
                         (uint32_t)(nd->left - tw->off), 1u << slot};
    tw->nsplit++;
    const double z0 = tw->z[slot];
    for (uint32_t c = nd->left; c <= nd->left + 1 && tw->ok; c++) {
        tw->z[slot] = z0 * (double)(f->cover[c] / f->cover[i]);
        tab_node(tw, c, slot == d ? d + 1 : d);
    }
    tw->z[slot] = z0;
}

/* Walk every tree (counting, or filling tw->tb); 0 when a leaf is too deep or the tables too
 * big. */
static int tab_trees(tab_walk *tw)
{
    for (size_t t = 0; t < tw->f->n_trees && tw->ok; t++) {
        if (tw->tb) {
            tw->tb->split_off[t] = (uint32_t)tw->nsplit;
            tw->tb->leaf_off[t] = (uint32_t)tw->nleaf;
        }
        tw->off = tw->f->roots[t];
        tab_node(tw, tw->f->roots[t], 0);
        if (tw->ntab > TAB_BUDGET || tw->nfeat > UINT32_MAX)
            tw->ok = 0;
    }
    if (tw->tb && tw->ok) {
        tw->tb->split_off[tw->f->n_trees] = (uint32_t)tw->nsplit;
        tw->tb->leaf_off[tw->f->n_trees] = (uint32_t)tw->nleaf;
    }
    return tw->ok;
}

static void free_tables(struct xgb__shap_tables *tb)
{
    if (!tb)
        return;
    free(tb->splits);
    free(tb->leaves);
    free(tb->split_off);
    free(tb->leaf_off);
    free(tb->tab);
    free(tb->feat);
    free(tb);
}

/* The fast path's data, when the model allows it (invariant 4); nothing otherwise. */
static int build_tables(xgb__forest *f, md_err *err)
{
    tab_walk tw = {.f = f, .ok = 1};
    if (!tab_trees(&tw))
        return MD_OK; /* the path algorithm serves this model */
    struct xgb__shap_tables *tb = calloc(1, sizeof *tb);
    if (tb) {
        tb->splits = malloc((tw.nsplit + 1) * sizeof *tb->splits);
        tb->leaves = malloc((tw.nleaf + 1) * sizeof *tb->leaves);
        tb->split_off = malloc((f->n_trees + 1) * sizeof *tb->split_off);
        tb->leaf_off = malloc((f->n_trees + 1) * sizeof *tb->leaf_off);
        tb->tab = malloc((tw.ntab + 1) * sizeof *tb->tab);
        tb->feat = malloc((tw.nfeat + 1) * sizeof *tb->feat);
        tb->bytes = sizeof *tb + (tw.nsplit + 1) * sizeof *tb->splits +
                    (tw.nleaf + 1) * sizeof *tb->leaves + (f->n_trees + 1) * 8 +
                    (tw.ntab + 1) * sizeof *tb->tab + (tw.nfeat + 1) * sizeof *tb->feat;
    }
    if (!tb || !tb->splits || !tb->leaves || !tb->split_off || !tb->leaf_off || !tb->tab ||
        !tb->feat) {
        free_tables(tb);
        return md_fail(err, MD_E_NOMEM, "model", "no memory for the TreeSHAP tables");
    }
    tw = (tab_walk){.f = f, .tb = tb, .ok = 1};
    tab_trees(&tw);
    f->tables = tb;
    for (size_t t = 0; t < f->n_trees; t++) {
        size_t n = (t + 1 < f->n_trees ? f->roots[t + 1] : f->n_nodes) - f->roots[t];
        f->max_tree_nodes = n > f->max_tree_nodes ? n : f->max_tree_nodes;
    }
    return MD_OK;
}

size_t xgb__forest_shap_bytes(const xgb__forest *f)
{
    return (f->cover ? f->n_nodes * 2 * sizeof(float) : 0) + (f->tables ? f->tables->bytes : 0);
}

int xgb__forest_has_tables(const xgb__forest *f)
{
    return f && f->tables;
}

void xgb__forest_drop_tables(xgb__forest *f)
{
    free_tables(f->tables);
    f->tables = NULL;
}

void xgb__forest_free_shap(xgb__forest *f)
{
    xgb__forest_drop_tables(f);
    free(f->cover);
    free(f->mean);
    f->cover = f->mean = NULL;
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
    if (ok == 1) {
        int rc = build_tables(f, err);
        if (rc != MD_OK)
            xgb__forest_free_shap(f);
        return rc;
    }
    xgb__forest_free_shap(f);
    return ok < 0 ? md_fail(err, MD_E_NOMEM, "model", "no memory for the TreeSHAP data") : MD_OK;
}
