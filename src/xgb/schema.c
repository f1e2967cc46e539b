/* schema.c - the checks an XGBoost 1.7 model document must pass before libxgboost loads it.
 *
 * XGBoost checks array lengths and types as it loads, but it indexes with the file's numbers:
 * tree ids (trees.at(id), two trees with one id leave a slot empty), tree_info[i] for
 * i < num_trees, parents[i] (RegTree::LoadModel), children and split features (prediction),
 * dart's weight_drop[i]. A hostile file makes those read out of bounds, loop, or crash. So
 * every number XGBoost will use as an index is checked here, on the document format.c read
 * from the same bytes. Invariants a document that passes guarantees:
 *  1. num_trees == len(trees) == len(tree_info) (== len(weight_drop) for dart); tree t has id t
 *     and its output group tree_info[t] < max(num_class, num_target, 1).
 *  2. In every tree, all node arrays have num_nodes entries of the right JSON type; the root's
 *     parent is none (-1, or 2147483647 as XGBoost writes it) and the parents of nodes 1.. are
 *     node indices; num_deleted counts the nodes XGBoost will take for deleted. From the root,
 *     each node is reached once: a leaf has both children -1; a split node i has children
 *     left > i and right == left + 1 < num_nodes (XGBoost's predictor computes the right
 *     child as left + 1, never reading right_children: a forged model with left 2, right 1
 *     made it read past the node array), whose parents[] are i, and a feature < num_feature.
 *     Nodes not reached (XGBoost's pruned, deleted nodes) are never visited by prediction.
 *  3. No categorical splits or categorical features, no vector leaves (size_leaf_vector 0:
 *     XGBoost 1.7's predictor CHECKs it), all unsupported: refused, not guessed.
 *  4. num_feature >= 1, num_target >= 1 (XGBoost sizes outputs by max(num_class, num_target)),
 *     base_score is a finite number, and in (0, 1) for the logistic objectives, whose
 *     ProbToMargin takes its logit.
 */
#include "xgb/xgb.h"
#include "xgb/xgb_int.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FEATURES 1000000
#define MAX_OUTPUTS 100000
#define MAX_NODES (1LL << 28)

/* A count stored as a decimal string ("6", as XGBoost writes parameters) or an integer;
 * -1 when absent, negative, or not plain digits (so we never read it differently from XGBoost). */
static long long count_of(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        return json_integer_value(v) < 0 ? -1 : json_integer_value(v);
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) > 12)
        return -1;
    long long n = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        n = n * 10 + (*s - '0');
    }
    return n;
}

enum { EL_INT, EL_NUM, EL_BOOLISH };

/* The array tree[key] if it has n entries all of kind el, else NULL. */
static const json_t *typed_array(const json_t *tree, const char *key, size_t n, int el)
{
    const json_t *a = json_object_get(tree, key);
    if (!json_is_array(a) || json_array_size(a) != n)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(a, i);
        bool ok = el == EL_INT   ? json_is_integer(v)
                  : el == EL_NUM ? json_is_number(v)
                                 : json_is_integer(v) || json_is_boolean(v);
        if (!ok)
            return NULL;
    }
    return a;
}

static long long at(const json_t *a, size_t i)
{
    return json_integer_value(json_array_get(a, i));
}

/* The node arrays of tree t (n nodes, features < nfeat) the walk reads; borrowed. */
typedef struct tree_arrays {
    const json_t *l, *r, *p, *f;
    size_t n, t;
    uint64_t nfeat;
} tree_arrays;

/* Invariant 3 for one tree: split_type all 0, category arrays empty. */
static int no_categories(const json_t *tree, size_t n, size_t t, md_err *err)
{
    const json_t *st = json_object_get(tree, "split_type");
    if (st && !typed_array(tree, "split_type", n, EL_INT))
        return md_fail(err, MD_E_MODEL_INVALID, "trees", "tree %zu: split_type is not %zu integers",
                       t, n);
    for (size_t i = 0; st && i < n; i++)
        if (at(st, i) != 0)
            return md_fail(err, MD_E_UNSUPPORTED, "trees",
                           "tree %zu: categorical splits are not supported", t);
    static const char *const cats[] = {"categories", "categories_nodes", "categories_segments",
                                       "categories_sizes"};
    for (int i = 0; i < 4; i++) {
        const json_t *a = json_object_get(tree, cats[i]);
        if (a && (!json_is_array(a) || json_array_size(a) != 0))
            return md_fail(err, MD_E_UNSUPPORTED, "trees",
                           "tree %zu: categorical splits are not supported", t);
    }
    return MD_OK;
}

/* XGBoost writes the root's parent as kInvalidNodeId with its left-child bit masked off. */
#define ROOT_PARENT 2147483647LL

/* One split node i reached from the root, before its children are pushed (invariant 2):
 * XGBoost's predictor goes to LeftChild() + !(x < cond) (predictor/predict_fn.h), so the right
 * child must be left + 1; children come after their parent (so no walk can loop), both in
 * range and not yet reached (a tree, not a graph), and name i as their parent (RegTree::
 * LoadModel marks left children through parents[]); the feature indexes the row. */
static int check_split(const tree_arrays *a, size_t i, const unsigned char *seen, md_err *err)
{
    long long li = at(a->l, i), ri = at(a->r, i), fi = at(a->f, i);
    if (li <= (long long)i || (size_t)li + 1 >= a->n || ri != li + 1)
        return md_fail(
            err, MD_E_MODEL_INVALID, "trees",
            "tree %zu node %zu: children %lld, %lld are not two consecutive nodes after it", a->t,
            i, li, ri);
    if (seen[li] || seen[ri])
        return md_fail(err, MD_E_MODEL_INVALID, "trees",
                       "tree %zu node %zu: a child is reached twice", a->t, i);
    if (at(a->p, (size_t)li) != (long long)i || at(a->p, (size_t)ri) != (long long)i)
        return md_fail(err, MD_E_MODEL_INVALID, "trees",
                       "tree %zu node %zu: its children's parents are not %zu", a->t, i, i);
    if (fi < 0 || (uint64_t)fi >= a->nfeat)
        return md_fail(err, MD_E_MODEL_INVALID, "trees",
                       "tree %zu node %zu: split feature %lld out of range", a->t, i, fi);
    return MD_OK;
}

/* Invariant 2, the walk: from the root, each node seen once; leaves have both children -1. */
static int walk_tree(const tree_arrays *a, md_err *err)
{
    unsigned char *seen = calloc(a->n, 1);
    size_t *stack = malloc(a->n * sizeof *stack);
    int rc = (seen && stack)
                 ? MD_OK
                 : md_fail(err, MD_E_NOMEM, "trees", "no memory to check tree %zu", a->t);
    size_t top = 0;
    if (rc == MD_OK) {
        stack[top++] = 0;
        seen[0] = 1;
    }
    while (rc == MD_OK && top > 0) {
        size_t i = stack[--top];
        long long li = at(a->l, i);
        if (li == -1) { /* a leaf: XGBoost tests only the left child (Node::IsLeaf) */
            if (at(a->r, i) != -1)
                rc = md_fail(err, MD_E_MODEL_INVALID, "trees",
                             "tree %zu node %zu: a leaf with a right child", a->t, i);
            continue;
        }
        rc = check_split(a, i, seen, err);
        if (rc == MD_OK) {
            seen[li] = seen[li + 1] = 1;
            stack[top++] = (size_t)li;
            stack[top++] = (size_t)li + 1;
        }
    }
    free(seen);
    free(stack);
    return rc;
}

/* tree_param's num_deleted must count the nodes XGBoost takes for deleted (split index and
 * default-left bit all ones), or RegTree::LoadModel fails its own check later. */
static int check_deleted(const json_t *tree, const tree_arrays *a, md_err *err)
{
    const json_t *dl = json_object_get(tree, "default_left");
    long long want = count_of(json_object_get(tree, "tree_param"), "num_deleted"), got = 0;
    for (size_t i = 1; i < a->n; i++) {
        const json_t *d = json_array_get(dl, i);
        bool left = json_is_true(d) || (json_is_integer(d) && json_integer_value(d) != 0);
        uint32_t sindex =
            (uint32_t)at(a->f, i) | (left ? 0x80000000u : 0); /* as XGBoost keeps it */
        got += sindex == 0xffffffffu;
    }
    if (want != got)
        return md_fail(err, MD_E_MODEL_INVALID, "trees",
                       "tree %zu: num_deleted is not the number of deleted nodes (%lld)", a->t,
                       got);
    return MD_OK;
}

static int validate_tree(const json_t *tree, size_t t, uint64_t nfeat, md_err *err)
{
    long long nn = count_of(json_object_get(tree, "tree_param"), "num_nodes");
    if (nn <= 0 || nn > MAX_NODES)
        return md_fail(err, MD_E_MODEL_INVALID, "trees", "tree %zu: bad num_nodes", t);
    const json_t *id = json_object_get(tree, "id");
    if (!json_is_integer(id) || json_integer_value(id) != (json_int_t)t)
        return md_fail(err, MD_E_MODEL_INVALID, "trees", "tree %zu: its id is not %zu", t, t);
    const json_t *tp = json_object_get(tree, "tree_param");
    if (json_object_get(tp, "size_leaf_vector") && count_of(tp, "size_leaf_vector") != 0)
        return md_fail(err, MD_E_UNSUPPORTED, "trees", "tree %zu: vector leaves are not supported",
                       t);
    size_t n = (size_t)nn;
    tree_arrays a = {typed_array(tree, "left_children", n, EL_INT),
                     typed_array(tree, "right_children", n, EL_INT),
                     typed_array(tree, "parents", n, EL_INT),
                     typed_array(tree, "split_indices", n, EL_INT),
                     n,
                     t,
                     nfeat};
    static const char *const nums[] = {"loss_changes", "sum_hessian", "base_weights",
                                       "split_conditions"};
    bool ok = a.l && a.r && a.p && a.f && typed_array(tree, "default_left", n, EL_BOOLISH);
    for (int i = 0; ok && i < 4; i++)
        ok = typed_array(tree, nums[i], n, EL_NUM) != NULL;
    if (!ok)
        return md_fail(err, MD_E_MODEL_INVALID, "trees",
                       "tree %zu: a node array is missing, mistyped or not %zu long", t, n);
    if (at(a.p, 0) != -1 && at(a.p, 0) != ROOT_PARENT)
        return md_fail(err, MD_E_MODEL_INVALID, "trees", "tree %zu: the root has a parent", t);
    for (size_t i = 1; i < n; i++)
        if (at(a.p, i) < 0 || at(a.p, i) >= nn)
            return md_fail(err, MD_E_MODEL_INVALID, "trees",
                           "tree %zu node %zu: parent out of range", t, i);
    int rc = no_categories(tree, n, t, err);
    if (rc == MD_OK)
        rc = check_deleted(tree, &a, err);
    return rc ? rc : walk_tree(&a, err);
}

/* Invariant 1 (and 2, 3 per tree) for a gbtree model object; dart adds weight_drop. */
static int validate_gbtree(const json_t *model, const json_t *dart, const xgb_info *info,
                           uint64_t ngroups, md_err *err)
{
    const json_t *trees = json_object_get(model, "trees");
    const json_t *groups = json_object_get(model, "tree_info");
    const json_t *param = json_object_get(model, "gbtree_model_param");
    long long nt = count_of(param, "num_trees"), npar = count_of(param, "num_parallel_tree");
    if (json_object_get(param, "size_leaf_vector") && count_of(param, "size_leaf_vector") != 0)
        return md_fail(err, MD_E_UNSUPPORTED, "size_leaf_vector",
                       "vector leaves are not supported (size_leaf_vector must be 0)");
    if (!json_is_array(trees) || nt < 0 || json_array_size(trees) != (size_t)nt || npar < 1 ||
        !typed_array(model, "tree_info", (size_t)nt, EL_INT))
        return md_fail(err, MD_E_MODEL_INVALID, "trees", "num_trees, trees and tree_info disagree");
    if (dart && !typed_array(dart, "weight_drop", (size_t)nt, EL_NUM))
        return md_fail(err, MD_E_MODEL_INVALID, "weight_drop",
                       "dart weight_drop does not have num_trees entries");
    for (size_t t = 0; t < (size_t)nt; t++) {
        long long g = at(groups, t);
        if (g < 0 || (uint64_t)g >= ngroups)
            return md_fail(err, MD_E_MODEL_INVALID, "tree_info",
                           "tree %zu: output group out of range", t);
        int rc = validate_tree(json_array_get(trees, t), t, info->num_features, err);
        if (rc)
            return rc;
    }
    return MD_OK;
}

/* Invariant 4's base_score: XGBoost keeps it as a decimal string; absent means its default. */
static int check_base_score(const json_t *param, const char *obj, md_err *err)
{
    const json_t *v = json_object_get(param, "base_score");
    if (!v)
        return MD_OK;
    const char *s = json_string_value(v);
    char *end = NULL;
    double b = s ? strtod(s, &end) : NAN;
    if (!s || end == s || *end || !isfinite(b))
        return md_fail(err, MD_E_MODEL_INVALID, "base_score", "base_score is not a finite number");
    bool logistic = strcmp(obj, "binary:logistic") == 0 || strcmp(obj, "reg:logistic") == 0 ||
                    strcmp(obj, "binary:logitraw") == 0;
    if (logistic && !(b > 0.0 && b < 1.0))
        return md_fail(err, MD_E_MODEL_INVALID, "base_score",
                       "base_score must be in (0, 1) for the objective %s", obj);
    return MD_OK;
}

/* Learner-level fields: sizes, objective, no categorical features. */
static int validate_learner(const json_t *learner, xgb_info *info, uint64_t *ngroups, md_err *err)
{
    const json_t *param = json_object_get(learner, "learner_model_param");
    long long nfeat = count_of(param, "num_feature"), ncls = count_of(param, "num_class");
    long long ntgt = json_object_get(param, "num_target") ? count_of(param, "num_target") : 1;
    if (nfeat <= 0 || nfeat > MAX_FEATURES || ncls < 0 || ncls > MAX_OUTPUTS || ntgt < 1 ||
        ntgt > MAX_OUTPUTS)
        return md_fail(err, MD_E_MODEL_INVALID, "num_feature",
                       "num_feature, num_class or num_target missing or out of range");
    info->num_features = (uint64_t)nfeat;
    info->num_class = (uint64_t)ncls;
    *ngroups = (uint64_t)(ncls > ntgt ? ncls : ntgt);
    const json_t *objective = json_object_get(learner, "objective");
    const char *obj = json_string_value(json_object_get(objective, "name"));
    snprintf(info->objective, sizeof info->objective, "%s", obj ? obj : "");
    int rc = check_base_score(param, info->objective, err);
    if (rc)
        return rc;
    const json_t *sm = json_object_get(objective, "softmax_multiclass_param");
    if (sm && count_of(sm, "num_class") != ncls)
        return md_fail(err, MD_E_MODEL_INVALID, "num_class",
                       "the objective's num_class differs from the model's");
    const json_t *ft = json_object_get(learner, "feature_types");
    for (size_t i = 0; json_is_array(ft) && i < json_array_size(ft); i++) {
        const char *s = json_string_value(json_array_get(ft, i));
        if (!s || strcmp(s, "c") == 0)
            return md_fail(err, MD_E_UNSUPPORTED, "feature_types",
                           "categorical features are not supported");
    }
    return MD_OK;
}

int xgb__validate_doc(const json_t *root, xgb_info *info, md_err *err)
{
    const json_t *learner = json_object_get(root, "learner");
    uint64_t ngroups = 1;
    int rc = validate_learner(learner, info, &ngroups, err);
    if (rc)
        return rc;
    const json_t *gb = json_object_get(learner, "gradient_booster");
    const char *name = json_string_value(json_object_get(gb, "name"));
    if (name && strcmp(name, "gbtree") == 0)
        return validate_gbtree(json_object_get(gb, "model"), NULL, info, ngroups, err);
    if (name && strcmp(name, "dart") == 0) {
        const json_t *inner = json_object_get(gb, "gbtree");
        return validate_gbtree(json_object_get(inner, "model"), gb, info, ngroups, err);
    }
    if (name && strcmp(name, "gblinear") == 0) {
        const json_t *model = json_object_get(gb, "model");
        if (!typed_array(model, "weights", (info->num_features + 1) * ngroups, EL_NUM))
            return md_fail(err, MD_E_MODEL_INVALID, "weights",
                           "gblinear weights do not match the feature count");
        return MD_OK;
    }
    return md_fail(err, MD_E_UNSUPPORTED, "gradient_booster", "booster '%.40s' is not supported",
                   name ? name : "(none)");
}
