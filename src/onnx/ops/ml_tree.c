/* ml_tree.c - ai.onnx.ml TreeEnsembleRegressor and TreeEnsembleClassifier: the form in which
 * scikit-learn forests and boosted trees, XGBoost and LightGBM models reach ONNX.
 *
 * prepare() turns the attribute tuples (nodes_*, target_* / class_*) into a flat node array
 * with child indices, one root per tree and the leaf weights grouped per leaf; run() walks each
 * tree for each row, in blocks of 64 rows, tree by tree within a block (a tree's nodes stay in
 * cache), the blocks spread over the run's k->threads OpenMP threads. The prepared ensemble is
 * read-only while running.
 *
 * Invariants (established by prepare, relied on by run without re-checking):
 *  1. Every branch node's two children exist in the same tree; every node has at most one
 *     parent and each tree exactly one root (a node with no parent). So a walk from a root
 *     visits each node at most once and ends at a LEAF: no cycles, no out-of-range index.
 *  2. Every weight belongs to a LEAF and its target/class id is < n_targets.
 *  3. base_values has 0 or n_targets entries (or 1 in the single-score binary case below).
 *  4. run() checks that X has more columns than the largest feature id before any walk.
 *
 * Scores follow the ONNX-ML spec: per target, the weights of the leaves reached are combined
 * by aggregate_function (SUM, AVERAGE = SUM / number of trees, MIN, MAX; a classifier always
 * sums), base_values are added, then post_transform is applied. A missing value (NaN) takes
 * the true branch when nodes_missing_value_tracks_true is 1 for that node, otherwise it simply
 * fails the comparison (so it goes true only for BRANCH_NEQ). Regressors with one target apply
 * LOGISTIC and PROBIT to the single score and leave SOFTMAX / SOFTMAX_ZERO (meaningless on one
 * value) as no-ops; onnxruntime 1.30 also ignores LOGISTIC there (spec says apply it; we do).
 *
 * TWO-CLASS CLASSIFIERS (decision). The spec does not say what Z is when a two-class model
 * carries one score per row, and converters rely on onnxruntime's convention, so:
 *  a. Single-score case: two class labels, every class weight has the same class id (one
 *     weight per leaf, as XGBoost / LightGBM / scikit-learn gradient boosting binary exports
 *     write it), base_values with 0 or 1 entries. The row's score s = sum of its weights +
 *     base_values[0] (if given) is the score of the SECOND label, whichever class id the
 *     weights name. With t = LOGISTIC(s), PROBIT(s), or s for the other transforms:
 *         Z = [1 - t, t]  when every weight is >= 0 or post_transform is LOGISTIC,
 *         Z = [-t, t]     otherwise (margins of either sign);
 *         Y = label[1] when s > 0.5 (all weights >= 0) or s > 0 (some weight < 0), else label[0].
 *     This is onnxruntime's output for class id 0, which is what converters emit. Where we
 *     differ: with class id 1 onnxruntime writes [0, s] (no complement), with PROBIT it writes
 *     [probit(s), 0]; we use the formulas above for both.
 *  b. Every other model (weights for both classes, as scikit-learn random forests export, or
 *     two base_values): the general rule, as for three or more classes: Z = post_transform of
 *     (base_values + summed weights) and Y = the label of the highest pre-transform score
 *     among classes that received a weight or a base value (first wins on ties; label[0] if
 *     none did). Here onnxruntime 1.30 returns Y = 1 / 0 (an index, not the label) chosen by
 *     "class-1 score > 0", so nearly every row gets label 1; we return the top class, as the
 *     spec says ("Returns the top class for each of N inputs").
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/ops/ml_common.h"

enum { M_LEQ, M_LT, M_GTE, M_GT, M_EQ, M_NEQ, M_LEAF };
enum { AGG_SUM, AGG_AVERAGE, AGG_MIN, AGG_MAX };

#define MAX_ITEMS ((int64_t)1 << 30) /* nodes or weights in one ensemble */
#define MAX_TARGETS ((int64_t)1 << 20)

typedef struct tnode {
    double value; /* threshold */
    int32_t feature;
    int32_t t, f;      /* children (node indices); -1 for a leaf */
    int32_t w0, nw;    /* this leaf's weights: w_target/w_value[w0 .. w0+nw) */
    uint8_t mode;      /* M_* */
    uint8_t miss_true; /* NaN takes the true branch */
} tnode;

typedef struct tree_ens {
    int64_t n_nodes, n_trees, n_targets, n_weights, n_base;
    tnode *nodes;
    int32_t *roots;
    int32_t *w_target;
    double *w_value;
    double *base;
    int64_t max_feature; /* -1 when no branch node */
    int same_mode;       /* the mode of every branch node, or -1 when they differ */
    int post, agg;
    bool classifier;
    ml_labels labels;
    bool single_score; /* two-class case (a) above */
    bool all_positive; /* every class weight >= 0 */
} tree_ens;

/* (tree id, node id) -> node index, sorted for bsearch. */
typedef struct node_key {
    int64_t tree, node;
    int32_t idx;
} node_key;

static int key_cmp(const void *a, const void *b)
{
    const node_key *x = a, *y = b;
    if (x->tree != y->tree)
        return x->tree < y->tree ? -1 : 1;
    return x->node < y->node ? -1 : x->node > y->node;
}

static int32_t key_find(const node_key *keys, int64_t n, int64_t tree, int64_t node)
{
    node_key k = {tree, node, 0};
    const node_key *hit = bsearch(&k, keys, (size_t)n, sizeof k, key_cmp);
    return hit ? hit->idx : -1;
}

/* A real-valued list given either as floats (name) or as a double tensor (name_as_tensor). The
 * copy is model-lifetime memory. *count = 0 and *out = NULL when neither is given. */
static int get_reals(onnx_node *n, onnx_prep *p, md_err *err, const char *name, double **out,
                     int64_t *count)
{
    char tname[64];
    snprintf(tname, sizeof tname, "%s_as_tensor", name);
    const float *fv = NULL;
    size_t nf = onnx__attr_floats(n, name, &fv);
    const onnx_attr *ta = onnx__attr(n, tname);
    *out = NULL;
    *count = 0;
    if (nf && ta)
        return ml_fail(n, err, MD_E_MODEL_INVALID, name, "both %s and %s are given", name, tname);
    int64_t cnt = ta ? onnx_tensor_numel(ta->t) : (int64_t)nf;
    if (ta && (cnt < 0 || (ta->t->dtype != ONNX_DOUBLE && ta->t->dtype != ONNX_FLOAT)))
        return ml_fail(n, err, MD_E_MODEL_INVALID, tname, "must be a double tensor");
    if (cnt == 0)
        return MD_OK;
    double *v = onnx__prep_alloc(p, (size_t)cnt * sizeof *v);
    if (!v)
        return ml_fail(n, err, MD_E_NOMEM, name, "out of memory");
    for (int64_t i = 0; i < cnt; i++)
        v[i] = ta ? onnx__get_f64(ta->t, i) : fv[i];
    *out = v;
    *count = cnt;
    return MD_OK;
}

static int parse_mode(const char *s)
{
    static const char *const names[] = {"BRANCH_LEQ", "BRANCH_LT",  "BRANCH_GTE", "BRANCH_GT",
                                        "BRANCH_EQ",  "BRANCH_NEQ", "LEAF"};
    for (int i = 0; i < 7; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* The per-node attribute arrays, all checked to have the same length. */
typedef struct node_attrs {
    int64_t n;
    const int64_t *tree, *node, *feat, *tnode, *fnode, *miss;
    const onnx_attr *modes;
    double *values;
} node_attrs;

static int read_node_attrs(onnx_node *n, onnx_prep *p, md_err *err, node_attrs *a)
{
    size_t nt = onnx__attr_ints(n, "nodes_treeids", &a->tree);
    size_t nn = onnx__attr_ints(n, "nodes_nodeids", &a->node);
    size_t nfe = onnx__attr_ints(n, "nodes_featureids", &a->feat);
    size_t ntr = onnx__attr_ints(n, "nodes_truenodeids", &a->tnode);
    size_t nfa = onnx__attr_ints(n, "nodes_falsenodeids", &a->fnode);
    size_t nm = onnx__attr_ints(n, "nodes_missing_value_tracks_true", &a->miss);
    a->modes = onnx__attr(n, "nodes_modes");
    int64_t nv = 0;
    int rc = get_reals(n, p, err, "nodes_values", &a->values, &nv);
    if (rc)
        return rc;
    a->n = (int64_t)nt;
    if (nt == 0 || nt > (size_t)MAX_ITEMS)
        return ml_fail(n, err, MD_E_MODEL_INVALID, "nodes_treeids",
                       "needs 1 to 2^30 nodes, got %zu", nt);
    if (nn != nt || nfe != nt || ntr != nt || nfa != nt || !a->modes || a->modes->n_strings != nt ||
        (nv != 0 && nv != a->n) || (nm != 0 && nm != nt))
        return ml_fail(n, err, MD_E_MODEL_INVALID, "nodes_nodeids",
                       "the nodes_* attributes must all have %zu entries", nt);
    return MD_OK;
}

/* Fill e->nodes from the attributes; children resolved through keys (invariant 1, part 1). */
static int build_nodes(onnx_node *n, md_err *err, const node_attrs *a, const node_key *keys,
                       tree_ens *e)
{
    e->max_feature = -1;
    for (int64_t i = 0; i < a->n; i++) {
        tnode *d = &e->nodes[i];
        int mode = parse_mode(a->modes->strings[i]);
        if (mode < 0)
            return ml_fail(n, err, MD_E_MODEL_INVALID, "nodes_modes",
                           "node %lld: unknown mode '%.40s'", (long long)i, a->modes->strings[i]);
        d->mode = (uint8_t)mode;
        d->value = a->values ? a->values[i] : 0.0;
        d->miss_true = a->miss && a->miss[i] != 0;
        d->t = d->f = -1;
        if (mode == M_LEAF)
            continue;
        e->same_mode = e->max_feature < 0 || e->same_mode == mode ? mode : -1;
        if (a->feat[i] < 0 || a->feat[i] > INT32_MAX)
            return ml_fail(n, err, MD_E_MODEL_INVALID, "nodes_featureids",
                           "node %lld: feature id %lld out of range", (long long)i,
                           (long long)a->feat[i]);
        d->feature = (int32_t)a->feat[i];
        e->max_feature = d->feature > e->max_feature ? d->feature : e->max_feature;
        d->t = key_find(keys, a->n, a->tree[i], a->tnode[i]);
        d->f = key_find(keys, a->n, a->tree[i], a->fnode[i]);
        if (d->t < 0 || d->f < 0)
            return ml_fail(n, err, MD_E_MODEL_INVALID, "nodes_truenodeids",
                           "tree %lld node %lld: a child is not a node of that tree",
                           (long long)a->tree[i], (long long)a->node[i]);
    }
    return MD_OK;
}

/* Invariant 1, part 2: at most one parent per node, exactly one root per tree. keys is sorted by
 * tree, so each tree's nodes are contiguous in it. */
static int find_roots(onnx_node *n, onnx_prep *p, md_err *err, const node_key *keys, tree_ens *e)
{
    uint8_t *parents = calloc((size_t)e->n_nodes, 1);
    int32_t *roots = malloc((size_t)e->n_nodes * sizeof *roots);
    int rc = parents && roots ? MD_OK : ml_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    for (int64_t i = 0; rc == MD_OK && i < e->n_nodes; i++) {
        const tnode *d = &e->nodes[i];
        if (d->mode == M_LEAF)
            continue;
        if (d->t == d->f || parents[d->t] || parents[d->f])
            rc = ml_fail(n, err, MD_E_MODEL_INVALID, "nodes_truenodeids",
                         "node %lld: a child has two parents (the trees are not trees)",
                         (long long)i);
        else
            parents[d->t] = parents[d->f] = 1;
    }
    e->n_trees = 0;
    for (int64_t s = 0; rc == MD_OK && s < e->n_nodes;) {
        int64_t end = s, nroots = 0;
        while (end < e->n_nodes && keys[end].tree == keys[s].tree) {
            if (!parents[keys[end].idx] && nroots++ == 0)
                roots[e->n_trees] = keys[end].idx;
            end++;
        }
        if (nroots != 1)
            rc = ml_fail(n, err, MD_E_MODEL_INVALID, "nodes_treeids",
                         "tree %lld has %lld roots, needs exactly one", (long long)keys[s].tree,
                         (long long)nroots);
        e->n_trees++;
        s = end;
    }
    if (rc == MD_OK) {
        e->roots = onnx__prep_alloc(p, (size_t)e->n_trees * sizeof *e->roots);
        if (e->roots)
            memcpy(e->roots, roots, (size_t)e->n_trees * sizeof *roots);
        else
            rc = ml_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    }
    free(parents);
    free(roots);
    return rc;
}

/* Sort (tree, node) keys, refuse duplicates, build nodes and roots. */
static int build_trees(onnx_node *n, onnx_prep *p, md_err *err, const node_attrs *a, tree_ens *e,
                       node_key **keys_out)
{
    e->n_nodes = a->n;
    e->nodes = onnx__prep_alloc(p, (size_t)a->n * sizeof *e->nodes);
    node_key *keys = malloc((size_t)a->n * sizeof *keys);
    if (!e->nodes || !keys) {
        free(keys);
        return ml_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    }
    for (int64_t i = 0; i < a->n; i++)
        keys[i] = (node_key){a->tree[i], a->node[i], (int32_t)i};
    qsort(keys, (size_t)a->n, sizeof *keys, key_cmp);
    int rc = MD_OK;
    for (int64_t i = 1; rc == MD_OK && i < a->n; i++)
        if (keys[i].tree == keys[i - 1].tree && keys[i].node == keys[i - 1].node)
            rc = ml_fail(n, err, MD_E_MODEL_INVALID, "nodes_nodeids",
                         "tree %lld has node %lld twice", (long long)keys[i].tree,
                         (long long)keys[i].node);
    if (rc == MD_OK)
        rc = build_nodes(n, err, a, keys, e);
    if (rc == MD_OK)
        rc = find_roots(n, p, err, keys, e);
    if (rc)
        free(keys);
    else
        *keys_out = keys;
    return rc;
}

/* Leaf weights (prefix "target" or "class"): invariant 2, grouped per leaf by a counting sort. */
static int build_weights(onnx_node *n, onnx_prep *p, md_err *err, const char *pfx,
                         const node_key *keys, tree_ens *e)
{
    char nt[32], nn[32], ni[32], nw[32];
    snprintf(nt, sizeof nt, "%s_treeids", pfx);
    snprintf(nn, sizeof nn, "%s_nodeids", pfx);
    snprintf(ni, sizeof ni, "%s_ids", pfx);
    snprintf(nw, sizeof nw, "%s_weights", pfx);
    const int64_t *tv = NULL, *nv = NULL, *iv = NULL;
    size_t c = onnx__attr_ints(n, nt, &tv);
    double *wv = NULL;
    int64_t cw = 0;
    int rc = get_reals(n, p, err, nw, &wv, &cw);
    if (rc)
        return rc;
    if (onnx__attr_ints(n, nn, &nv) != c || onnx__attr_ints(n, ni, &iv) != c || (size_t)cw != c ||
        c > (size_t)MAX_ITEMS)
        return ml_fail(n, err, MD_E_MODEL_INVALID, nw,
                       "the %s_* attributes must all have %zu entries", pfx, c);
    e->n_weights = (int64_t)c;
    e->w_target = onnx__prep_alloc(p, (c ? c : 1) * sizeof *e->w_target);
    e->w_value = onnx__prep_alloc(p, (c ? c : 1) * sizeof *e->w_value);
    int32_t *leaf = malloc((c ? c : 1) * sizeof *leaf);
    if (!e->w_target || !e->w_value || !leaf) {
        free(leaf);
        return ml_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    }
    for (size_t j = 0; rc == MD_OK && j < c; j++) {
        leaf[j] = key_find(keys, e->n_nodes, tv[j], nv[j]);
        if (leaf[j] < 0 || e->nodes[leaf[j]].mode != M_LEAF)
            rc = ml_fail(n, err, MD_E_MODEL_INVALID, nn,
                         "weight %zu: tree %lld node %lld is not a leaf", j, (long long)tv[j],
                         (long long)nv[j]);
        else if (iv[j] < 0 || iv[j] >= e->n_targets)
            rc = ml_fail(n, err, MD_E_MODEL_INVALID, ni, "weight %zu: id %lld is not below %lld", j,
                         (long long)iv[j], (long long)e->n_targets);
        else
            e->nodes[leaf[j]].nw++;
    }
    int32_t next = 0;
    for (int64_t i = 0; rc == MD_OK && i < e->n_nodes; i++) {
        e->nodes[i].w0 = next;
        next += e->nodes[i].nw;
        e->nodes[i].nw = 0;
    }
    for (size_t j = 0; rc == MD_OK && j < c; j++) {
        tnode *d = &e->nodes[leaf[j]];
        e->w_target[d->w0 + d->nw] = (int32_t)iv[j];
        e->w_value[d->w0 + d->nw] = wv[j];
        d->nw++;
    }
    free(leaf);
    return rc;
}

/* Everything both operators share; the caller has set classifier, n_targets (and labels). */
static int prepare_common(onnx_node *n, onnx_prep *p, md_err *err, tree_ens *e, const char *wpfx)
{
    node_attrs a;
    node_key *keys = NULL;
    int rc = read_node_attrs(n, p, err, &a);
    if (rc == MD_OK)
        rc = build_trees(n, p, err, &a, e, &keys);
    if (rc == MD_OK)
        rc = build_weights(n, p, err, wpfx, keys, e);
    free(keys);
    if (rc == MD_OK)
        rc = get_reals(n, p, err, "base_values", &e->base, &e->n_base);
    if (rc == MD_OK)
        rc = ml_prep_post(n, err, &e->post);
    n->priv = e;
    return rc;
}

static int prepare_regressor(onnx_node *n, onnx_prep *p, md_err *err)
{
    tree_ens *e = onnx__prep_alloc(p, sizeof *e);
    if (!e)
        return ml_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    e->n_targets = onnx__attr_int(n, "n_targets", 1);
    if (e->n_targets < 1 || e->n_targets > MAX_TARGETS)
        return ml_fail(n, err, MD_E_MODEL_INVALID, "n_targets", "must be 1 to 2^20, got %lld",
                       (long long)e->n_targets);
    static const char *const aggs[] = {"SUM", "AVERAGE", "MIN", "MAX"};
    const char *agg = onnx__attr_str(n, "aggregate_function", "SUM");
    e->agg = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(agg, aggs[i]) == 0)
            e->agg = i;
    if (e->agg < 0)
        return ml_fail(n, err, MD_E_UNSUPPORTED, "aggregate_function",
                       "'%.40s' is not one of SUM, AVERAGE, MIN, MAX", agg);
    int rc = prepare_common(n, p, err, e, "target");
    if (rc == MD_OK && e->n_base != 0 && e->n_base != e->n_targets)
        rc = ml_fail(n, err, MD_E_MODEL_INVALID, "base_values",
                     "has %lld entries, needs 0 or n_targets = %lld", (long long)e->n_base,
                     (long long)e->n_targets);
    return rc;
}

/* Decide between two-class cases (a) and (b) of the header comment; check base_values. */
static int classify_binary(onnx_node *n, md_err *err, tree_ens *e)
{
    e->all_positive = true;
    bool one_id = e->n_weights > 0;
    for (int64_t j = 0; j < e->n_weights; j++) {
        e->all_positive = e->all_positive && e->w_value[j] >= 0;
        one_id = one_id && e->w_target[j] == e->w_target[0];
    }
    e->single_score = e->n_targets == 2 && one_id && e->n_base <= 1;
    if (e->n_base == 0 || e->n_base == e->n_targets || e->single_score)
        return MD_OK;
    return ml_fail(n, err, MD_E_MODEL_INVALID, "base_values",
                   "has %lld entries, needs 0 or one per class (%lld)", (long long)e->n_base,
                   (long long)e->n_targets);
}

static int prepare_classifier(onnx_node *n, onnx_prep *p, md_err *err)
{
    tree_ens *e = onnx__prep_alloc(p, sizeof *e);
    if (!e)
        return ml_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    e->classifier = true;
    e->agg = AGG_SUM;
    int rc = ml_prep_labels(n, err, "classlabels_int64s", "classlabels_strings", &e->labels);
    if (rc)
        return rc;
    e->n_targets = e->labels.n;
    if (e->n_targets < 2 || e->n_targets > MAX_TARGETS)
        return ml_fail(n, err, MD_E_UNSUPPORTED, "classlabels_int64s",
                       "needs 2 to 2^20 class labels, got %lld", (long long)e->n_targets);
    rc = prepare_common(n, p, err, e, "class");
    return rc ? rc : classify_binary(n, err, e);
}

/* ---- run ---- */

static inline bool goes_true(const tnode *d, double x)
{
    if (isnan(x) && d->miss_true)
        return true;
    switch (d->mode) {
    case M_LEQ:
        return x <= d->value;
    case M_LT:
        return x < d->value;
    case M_GTE:
        return x >= d->value;
    case M_GT:
        return x > d->value;
    case M_EQ:
        return x == d->value;
    default:
        return x != d->value;
    }
}

/* The leaf a row x reaches from node d. When every branch of the ensemble uses one mode (the
 * usual case: BRANCH_LEQ for scikit-learn, BRANCH_LT for XGBoost) the comparison is fixed in
 * the loop instead of switched per node. */
#define WALK(COND)                                                                                 \
    while (d->mode != M_LEAF) {                                                                    \
        double v = x[d->feature];                                                                  \
        d = &e->nodes[(COND) || (d->miss_true && isnan(v)) ? d->t : d->f];                         \
    }                                                                                              \
    return d

static inline const tnode *find_leaf(const tree_ens *e, const tnode *d, const double *x)
{
    switch (e->same_mode) {
    case M_LEQ:
        WALK(v <= d->value);
    case M_LT:
        WALK(v < d->value);
    case M_GTE:
        WALK(v >= d->value);
    case M_GT:
        WALK(v > d->value);
    default:
        while (d->mode != M_LEAF)
            d = &e->nodes[goes_true(d, x[d->feature]) ? d->t : d->f];
        return d;
    }
}

/* Add leaf d's weights to one row's score/has (n_targets each) by the aggregate function. */
static inline void add_leaf(const tree_ens *e, const tnode *d, double *score, uint8_t *has)
{
    for (int32_t j = d->w0; j < d->w0 + d->nw; j++) {
        int32_t k = e->w_target[j];
        double w = e->w_value[j];
        if (e->agg == AGG_MIN)
            score[k] = !has[k] || w < score[k] ? w : score[k];
        else if (e->agg == AGG_MAX)
            score[k] = !has[k] || w > score[k] ? w : score[k];
        else
            score[k] += w;
        has[k] = 1;
    }
}

/* Scores of rows [r0, r0 + n) of X: the rows are converted to double once, then each tree is
 * walked for every row of the block (tree-major, so a tree's nodes stay in cache). */
static void score_block(const tree_ens *e, const onnx_tensor *x, int64_t cols, int64_t r0,
                        int64_t n, double *xd, double *score, uint8_t *has)
{
    int64_t nt = e->n_targets;
    for (int64_t i = 0; i < n * cols; i++)
        xd[i] = ml_x(x, r0 * cols + i);
    memset(score, 0, (size_t)(n * nt) * sizeof *score);
    memset(has, 0, (size_t)(n * nt));
    for (int64_t t = 0; t < e->n_trees; t++) {
        const tnode *root = &e->nodes[e->roots[t]];
        for (int64_t r = 0; r < n; r++)
            add_leaf(e, find_leaf(e, root, xd + r * cols), score + r * nt, has + r * nt);
    }
}

static void finish_regression(const tree_ens *e, const double *score, const uint8_t *has,
                              float *out)
{
    for (int64_t k = 0; k < e->n_targets; k++) {
        double v =
            e->agg == AGG_AVERAGE ? score[k] / (double)e->n_trees : (has[k] ? score[k] : 0.0);
        out[k] = (float)(v + (e->n_base ? e->base[k] : 0.0));
    }
    if (e->n_targets > 1)
        ml_post_apply(e->post, out, e->n_targets);
    else if (e->post == ML_POST_LOGISTIC || e->post == ML_POST_PROBIT)
        ml_post_apply(e->post, out, 1);
}

/* Two-class case (a): one score per row, Z = [1 - t, t] or [-t, t]. Returns the label index. */
static int64_t finish_single_score(const tree_ens *e, const double *score, float *z)
{
    int64_t c = e->w_target[0];
    float s = (float)(score[c] + (e->n_base ? e->base[0] : 0.0));
    float t = s;
    if (e->post == ML_POST_LOGISTIC || e->post == ML_POST_PROBIT)
        ml_post_apply(e->post, &t, 1);
    bool complement = e->all_positive || e->post == ML_POST_LOGISTIC;
    z[0] = complement ? 1.0f - t : -t;
    z[1] = t;
    return (e->all_positive ? s > 0.5f : s > 0.0f) ? 1 : 0;
}

/* The general rule (case (b) and three or more classes). Returns the label index. */
static int64_t finish_classes(const tree_ens *e, const double *score, const uint8_t *has, float *z)
{
    int64_t best = -1;
    double best_v = 0.0;
    for (int64_t k = 0; k < e->n_targets; k++) {
        bool present = has[k] || e->n_base;
        double v = (has[k] ? score[k] : 0.0) + (e->n_base ? e->base[k] : 0.0);
        if (present && (best < 0 || v > best_v)) {
            best = k;
            best_v = v;
        }
        z[k] = (float)v;
    }
    ml_post_apply(e->post, z, e->n_targets);
    return best < 0 ? 0 : best;
}

#define BLOCK 64 /* rows scored together */

/* One run: X's shape, the outputs, and per-thread scratch for one block of rows each. */
typedef struct run_buf {
    const onnx_tensor *x;
    onnx_tensor *y, *z; /* regressor: y = Y; classifier: y = labels, z = probabilities */
    int64_t rows, cols, blocks;
    int threads;
    double *xd, *score;
    uint8_t *has;
} run_buf;

/* X checks shared by both ops; scratch for each thread's block. Row blocks are independent,
 * so a run may use up to k->threads threads on them (the intra-op policy of onnx_int.h). */
static int begin_run(onnx_kctx *k, const tree_ens *e, run_buf *b)
{
    b->x = k->in[0];
    int rc = ml_input_rows(k, b->x, &b->rows, &b->cols);
    if (rc)
        return rc;
    if (b->rows > 0 && e->max_feature >= b->cols)
        return onnx__kfail(k, MD_E_INVALID_PARAM,
                           "X has %lld features per row, the trees use feature %lld",
                           (long long)b->cols, (long long)e->max_feature);
    if (b->cols > INT64_MAX / 8 / BLOCK / 256)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X has too many features per row");
    b->blocks = (b->rows + BLOCK - 1) / BLOCK;
    b->threads = k->threads < 1 ? 1 : k->threads > 256 ? 256 : k->threads;
    if (b->threads > b->blocks)
        b->threads = b->blocks > 0 ? (int)b->blocks : 1;
    /* rows per block times threads: never more than X's own row count rounded up */
    size_t per = (size_t)(b->rows < BLOCK ? b->rows : BLOCK) * (size_t)b->threads;
    b->xd = onnx__scratch(k, per * (size_t)b->cols * sizeof *b->xd);
    b->score = onnx__scratch(k, per * (size_t)e->n_targets * sizeof *b->score);
    b->has = onnx__scratch(k, per * (size_t)e->n_targets);
    return b->xd && b->score && b->has ? MD_OK : MD_E_NOMEM;
}

/* Score block i of the rows with thread tid's scratch and write its outputs. */
static void run_block(const tree_ens *e, const run_buf *b, int tid, int64_t i)
{
    int64_t nt = e->n_targets, r0 = i * BLOCK;
    int64_t cnt = b->rows - r0 < BLOCK ? b->rows - r0 : BLOCK;
    double *score = b->score + (size_t)tid * BLOCK * nt;
    uint8_t *has = b->has + (size_t)tid * BLOCK * nt;
    score_block(e, b->x, b->cols, r0, cnt, b->xd + (size_t)tid * BLOCK * b->cols, score, has);
    for (int64_t r = 0; r < cnt; r++) {
        if (!e->classifier) {
            finish_regression(e, score + r * nt, has + r * nt, (float *)b->y->data + (r0 + r) * nt);
            continue;
        }
        float *zr = (float *)b->z->data + (r0 + r) * nt;
        int64_t label = e->single_score ? finish_single_score(e, score + r * nt, zr)
                                        : finish_classes(e, score + r * nt, has + r * nt, zr);
        ml_set_label(b->y, &e->labels, r0 + r, label);
    }
}

static void run_blocks(const tree_ens *e, const run_buf *b)
{
    if (b->threads == 1) {
        for (int64_t i = 0; i < b->blocks; i++)
            run_block(e, b, 0, i);
        return;
    }
#pragma omp parallel for num_threads(b->threads) schedule(dynamic, 1)
    for (int64_t i = 0; i < b->blocks; i++)
        run_block(e, b, omp_get_thread_num(), i);
}

static int run_regressor(const onnx_node *n, onnx_kctx *k)
{
    const tree_ens *e = n->priv;
    run_buf b = {0};
    int rc = begin_run(k, e, &b);
    int64_t dims[2] = {b.rows, e->n_targets};
    if (rc == MD_OK)
        rc = onnx__output(k, 0, ONNX_FLOAT, 2, dims, &b.y);
    if (rc == MD_OK)
        run_blocks(e, &b);
    return rc;
}

static int run_classifier(const onnx_node *n, onnx_kctx *k)
{
    const tree_ens *e = n->priv;
    run_buf b = {0};
    int rc = begin_run(k, e, &b);
    int64_t dims[2] = {b.rows, e->n_targets};
    if (rc == MD_OK)
        rc = ml_label_output(k, &e->labels, b.rows, &b.y);
    if (rc == MD_OK)
        rc = onnx__output(k, 1, ONNX_FLOAT, 2, dims, &b.z);
    if (rc == MD_OK)
        run_blocks(e, &b);
    return rc;
}

#define TREE_NODE_ATTRS                                                                            \
    "nodes_falsenodeids:I nodes_featureids:I nodes_hitrates:F nodes_missing_value_tracks_true:I "  \
    "nodes_modes:S nodes_nodeids:I nodes_treeids:I nodes_truenodeids:I nodes_values:F "            \
    "post_transform:s base_values:F "
#define TREE_TENSOR_ATTRS                                                                          \
    "nodes_hitrates_as_tensor:t nodes_values_as_tensor:t base_values_as_tensor:t "
#define REG_ATTRS                                                                                  \
    "aggregate_function:s n_targets:i target_ids:I target_nodeids:I target_treeids:I "             \
    "target_weights:F "
#define CLS_ATTRS                                                                                  \
    "class_ids:I class_nodeids:I class_treeids:I class_weights:F classlabels_int64s:I "            \
    "classlabels_strings:S "

/* ai.onnx.ml opset 3 added the *_as_tensor (double) forms of the real-valued attributes. */
ONNX_OPS(ml_tree) = {
    {.domain = "ai.onnx.ml",
     .op_type = "TreeEnsembleRegressor",
     .opset_min = 1,
     .opset_max = 2,
     .min_in = 1,
     .max_in = 1,
     .min_out = 1,
     .max_out = 1,
     .attrs = TREE_NODE_ATTRS REG_ATTRS,
     .prepare = prepare_regressor,
     .run = run_regressor},
    {.domain = "ai.onnx.ml",
     .op_type = "TreeEnsembleRegressor",
     .opset_min = 3,
     .opset_max = 0,
     .min_in = 1,
     .max_in = 1,
     .min_out = 1,
     .max_out = 1,
     .attrs = TREE_NODE_ATTRS TREE_TENSOR_ATTRS REG_ATTRS "target_weights_as_tensor:t",
     .prepare = prepare_regressor,
     .run = run_regressor},
    {.domain = "ai.onnx.ml",
     .op_type = "TreeEnsembleClassifier",
     .opset_min = 1,
     .opset_max = 2,
     .min_in = 1,
     .max_in = 1,
     .min_out = 2,
     .max_out = 2,
     .attrs = TREE_NODE_ATTRS CLS_ATTRS,
     .prepare = prepare_classifier,
     .run = run_classifier},
    {.domain = "ai.onnx.ml",
     .op_type = "TreeEnsembleClassifier",
     .opset_min = 3,
     .opset_max = 0,
     .min_in = 1,
     .max_in = 1,
     .min_out = 2,
     .max_out = 2,
     .attrs = TREE_NODE_ATTRS TREE_TENSOR_ATTRS CLS_ATTRS "class_weights_as_tensor:t",
     .prepare = prepare_classifier,
     .run = run_classifier},
    ONNX_OPS_END,
};
