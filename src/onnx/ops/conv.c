/* conv.c - ONNX Conv and ConvTranspose, on the oneDNN chains of kernels/conv.c.
 *
 * At load (prepare) a Conv validates its attributes and then absorbs what follows it when it is
 * the only reader: an activation (Relu, LeakyRelu, Clip with constant bounds, Sigmoid, Tanh)
 * becomes a oneDNN post-op, and a following Conv with constant weights becomes the next stage of
 * the same chain, so the activations between them stay in oneDNN's blocked layout and are never
 * reordered back to NCHW (that is most of the gap to onnxruntime on super-resolution nets).
 * Poolings between the convolutions (MaxPool, AveragePool, the global poolings) join the chain
 * too, which keeps a whole Conv-Relu-MaxPool classifier trunk in the blocked layout. A
 * BatchNormalization right after a Conv (exports that did not fold it) is folded into the
 * Conv's weights and bias when the chain is built.
 *
 * Shapes are only known at run time, so oneDNN primitives are built on the first run of each
 * input shape and kept in a small per-node cache (the model's plan cache plays the same role for
 * memory). Invariants:
 *  1. priv (conv_priv) is written at load; at run time only its cache changes, under its mutex.
 *     Cache entries are never removed before the model is freed, so a pointer taken from the
 *     cache stays valid for the whole run without holding the lock.
 *  2. When the cache is full, a run builds a private chain and frees it before returning:
 *     correct, only slower.
 *  3. Stage 0 may take its weights at run time (graph inputs, as in the conformance suite); then
 *     nothing else is chained after it. A ConvTranspose ends a chain (it may still absorb its
 *     activation); it starts none.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/kernels/fuse.h"
#include "onnx/kernels/kernels.h"
#include "onnx/onnx_int.h"

#define MAX_CHAIN 16
#define MAX_SHAPES 8
#define KEY_LEN (2 * ONNX_MAX_RANK + 5)
#define POOL_GLOBAL_MAX 10
#define POOL_GLOBAL_AVG 11

typedef struct stage {
    const onnx_node *node;   /* the node whose attributes apply (borrowed from the model) */
    int pool;                /* 0: Conv/ConvTranspose; else 1 + onnx_kpool_kind, or POOL_GLOBAL_* */
    int transpose;
    const onnx_tensor *w, *b; /* constant weights/bias; NULL when given at run time (stage 0) */
    const onnx_tensor *bn[4]; /* a folded BatchNormalization: scale, B, mean, var; or NULLs */
    float bn_eps;
    onnx_kact act;
} stage;

typedef struct shape_ent {
    int64_t key[KEY_LEN];
    int y_rank;
    int64_t y_dims[ONNX_MAX_RANK];
    onnx__conv *conv;
} shape_ent;

typedef struct conv_priv {
    int nst;
    stage st[MAX_CHAIN];
    pthread_mutex_t mu;
    int n_ent;
    shape_ent ent[MAX_SHAPES];
} conv_priv;

/* ---- attributes ------------------------------------------------------------------------------ */

/* Geometry attribute bound (fuse.h): keeps the output-size formulas inside int64_t. */
#define MAX_DIM ONNX_GEOM_MAX

/* Values of the attributes that do not depend on shapes; checked once at load. */
static int check_attrs(const onnx_node *n, md_err *err)
{
    const int64_t *v;
    int rc = onnx__conv_attrs_check(n, err);
    if (rc)
        return rc;
    static const char *const pos[] = {"strides", "dilations", "kernel_shape", "output_shape"};
    for (int a = 0; a < 4; a++) {
        size_t cnt = onnx__attr_ints(n, pos[a], &v);
        if (cnt > ONNX_KMAX_SPATIAL + (a == 3 ? 2 : 0))
            return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, pos[a], "%zu values (1 to 3 spatial "
                                   "dims supported)", cnt);
        if ((rc = onnx__attr_ints_bounded(n, pos[a], 1, err)))
            return rc;
    }
    rc = onnx__attr_ints_bounded(n, "pads", 0, err);
    return rc ? rc : onnx__attr_ints_bounded(n, "output_padding", 0, err);
}

/* An attribute list of nsp values (or 2*nsp for pads): absent gives def; a wrong length fails. */
static int spatial_ints(const onnx_node *n, const char *name, int want, int64_t def, int64_t *out,
                        md_err *e)
{
    const int64_t *v;
    size_t cnt = onnx__attr_ints(n, name, &v);
    if (cnt != 0 && cnt != (size_t)want)
        return md_fail(e, MD_E_INVALID_PARAM, name, "has %zu values, the input has %d spatial "
                       "dims", cnt, want / (strcmp(name, "pads") == 0 ? 2 : 1));
    for (int i = 0; i < want; i++)
        out[i] = cnt ? v[i] : def;
    return MD_OK;
}

/* ---- geometry of one stage ------------------------------------------------------------------- */

static int channels(const stage *s, const int64_t *xd, const onnx_tensor *w, onnx_kconv_geom *g,
                    md_err *e)
{
    g->group = onnx__attr_int(s->node, "group", 1);
    g->n = xd[0];
    g->ic = xd[1];
    int64_t wic = s->transpose ? w->dims[0] : w->dims[1] * g->group;
    if (wic != g->ic)
        return md_fail(e, MD_E_INVALID_PARAM, "W", "weights expect %lld input channels, X has "
                       "%lld", (long long)wic, (long long)g->ic);
    g->oc = s->transpose ? w->dims[1] * g->group : w->dims[0];
    if (g->oc < 1 || g->ic % g->group || g->oc % g->group)
        return md_fail(e, MD_E_INVALID_PARAM, "group", "group %lld does not divide the channels",
                       (long long)g->group);
    const int64_t *ks;
    size_t nk = onnx__attr_ints(s->node, "kernel_shape", &ks);
    for (int i = 0; i < g->nsp; i++) {
        g->k[i] = w->dims[2 + i];
        if (nk != 0 && (nk != (size_t)g->nsp || ks[i] != g->k[i]))
            return md_fail(e, MD_E_INVALID_PARAM, "kernel_shape", "does not match W's shape");
    }
    return MD_OK;
}

/* ConvTranspose output sizes and pads: output_shape wins over pads (ONNX rule), output_padding is
 * folded into pad_end for the kernel. */
static int deconv_sizes(const stage *s, int autopad, onnx_kconv_geom *g, md_err *e)
{
    int64_t op[ONNX_KMAX_SPATIAL];
    const int64_t *os;
    size_t nos = onnx__attr_ints(s->node, "output_shape", &os);
    int rc = spatial_ints(s->node, "output_padding", g->nsp, 0, op, e);
    if (rc)
        return rc;
    if (nos != 0 && nos != (size_t)g->nsp && nos != (size_t)g->nsp + 2)
        return md_fail(e, MD_E_INVALID_PARAM, "output_shape", "has %zu values", nos);
    for (int i = 0; i < g->nsp; i++) {
        int64_t ek = (g->k[i] - 1) * g->dil[i] + 1;
        int64_t full = g->stride[i] * (g->in[i] - 1) + op[i] + ek;
        int64_t want = nos ? os[nos - (size_t)g->nsp + (size_t)i]
                           : autopad >= ONNX_AUTOPAD_SAME_UPPER ? g->in[i] * g->stride[i] : -1;
        if (want >= 0) {
            int64_t total = full - want;
            if (total < 0)
                total = 0; /* a larger output_shape: the extra positions get only the bias */
            int upper = autopad == ONNX_AUTOPAD_SAME_UPPER;
            g->pad_begin[i] = upper ? total / 2 : total - total / 2;
            g->pad_end[i] = total - g->pad_begin[i] - (want - (full - total));
        } else if (autopad == ONNX_AUTOPAD_VALID) {
            g->pad_begin[i] = g->pad_end[i] = 0;
        }
        g->pad_end[i] -= op[i];
        g->out[i] = full - op[i] - g->pad_begin[i] - g->pad_end[i];
        if (g->out[i] < 1)
            return md_fail(e, MD_E_INVALID_PARAM, "pads", "the output would be empty");
    }
    return MD_OK;
}

/* Resolve stage s for input dims xd (rank nsp+2) and weights w into a kernel geometry. */
static int stage_geom(const stage *s, int xrank, const int64_t *xd, const onnx_tensor *w,
                      const onnx_tensor *b, onnx_kconv_geom *g, md_err *e)
{
    memset(g, 0, sizeof *g);
    if (w->rank < 3 || w->rank > ONNX_KMAX_SPATIAL + 2 || w->rank != xrank)
        return md_fail(e, MD_E_INVALID_PARAM, "W", "W has rank %d, X has rank %d (ranks 3 to 5 "
                       "supported and they must match)", w->rank, xrank);
    /* an empty tensor may carry any dim: bound them before the size formulas multiply them */
    for (int i = 0; i < xrank; i++)
        if (xd[i] < 1 || xd[i] > MAX_DIM || w->dims[i] < 1 || w->dims[i] > MAX_DIM)
            return md_fail(e, MD_E_INVALID_PARAM, xd[i] < 1 || xd[i] > MAX_DIM ? "X" : "W",
                           "every dim must be in 1..2^30");
    g->transpose = s->transpose;
    g->nsp = xrank - 2;
    g->act = s->act;
    int rc = channels(s, xd, w, g, e);
    if (!rc)
        rc = spatial_ints(s->node, "strides", g->nsp, 1, g->stride, e);
    if (!rc)
        rc = spatial_ints(s->node, "dilations", g->nsp, 1, g->dil, e);
    int64_t pads[2 * ONNX_KMAX_SPATIAL];
    if (!rc)
        rc = spatial_ints(s->node, "pads", 2 * g->nsp, 0, pads, e);
    if (rc)
        return rc;
    int autopad = onnx__autopad_parse(onnx__attr_str(s->node, "auto_pad", "NOTSET"));
    for (int i = 0; i < g->nsp; i++) {
        g->in[i] = xd[2 + i];
        g->pad_begin[i] = pads[i];
        g->pad_end[i] = pads[g->nsp + i];
        if (!s->transpose) {
            int64_t ek = (g->k[i] - 1) * g->dil[i] + 1;
            g->out[i] = onnx__spatial_out(autopad, 0, g->in[i], ek, g->stride[i],
                                          &g->pad_begin[i], &g->pad_end[i]);
            if (g->out[i] < 1)
                return md_fail(e, MD_E_INVALID_PARAM, "kernel_shape",
                               "kernel larger than the padded input");
        }
    }
    if (s->transpose && (rc = deconv_sizes(s, autopad, g, e)))
        return rc;
    g->has_bias = b != NULL;
    if (b != NULL && (b->rank != 1 || b->dims[0] != g->oc))
        return md_fail(e, MD_E_INVALID_PARAM, "B", "bias must have %lld values", (long long)g->oc);
    return onnx__conv_check(g, e);
}

/* ---- load: validation and fusion ------------------------------------------------------------- */

/* A ConvTranspose whose padding is explicit and never shrinks below zero at the end (no
 * output_padding, output_shape or SAME padding): only those run on oneDNN, and a chain must not
 * fall back to the direct loops because of its last stage. */
static int plain_transpose(const onnx_node *c)
{
    const int64_t *v;
    int autopad = onnx__autopad_parse(onnx__attr_str(c, "auto_pad", "NOTSET"));
    return (autopad == ONNX_AUTOPAD_NOTSET || autopad == ONNX_AUTOPAD_VALID) &&
           onnx__attr_ints(c, "output_shape", &v) == 0 &&
           onnx__attr_ints(c, "output_padding", &v) == 0;
}

/* Whether c can be the next stage of the chain: a Conv (or a plain ConvTranspose, as the
 * upsampling end of a super-resolution net) reading our output as X, with constant weights and
 * bias and valid attributes. */
static int chainable(onnx_prep *p, const onnx_node *n, const onnx_node *c)
{
    int conv = strcmp(c->op_type, "Conv") == 0;
    if (c->domain[0] != '\0' || !(conv || (strcmp(c->op_type, "ConvTranspose") == 0 &&
                                            plain_transpose(c))) ||
        c->n_in < 2 || c->in[0] != n->out[0] || c->in[1] == n->out[0] ||
        (c->n_in > 2 && c->in[2] == n->out[0]))
        return 0;
    const onnx_tensor *w = onnx__prep_const(p, c, 1);
    int has_b = c->n_in > 2 && c->in[2] >= 0;
    if (w == NULL || w->dtype != ONNX_FLOAT || (has_b && onnx__prep_const(p, c, 2) == NULL))
        return 0;
    md_err tmp; /* a Conv with bad attributes is left alone, to fail its own prepare */
    return check_attrs(c, &tmp) == MD_OK;
}

static void init_stage(onnx_prep *p, stage *s, const onnx_node *n)
{
    memset(s, 0, sizeof *s);
    s->node = n;
    s->transpose = strcmp(n->op_type, "ConvTranspose") == 0;
    s->w = onnx__prep_const(p, n, 1);
    s->b = n->n_in > 2 ? onnx__prep_const(p, n, 2) : NULL;
    s->act.kind = ONNX_KACT_NONE;
}

/* The chain stage kind of pooling node c (see stage.pool), or 0 when c cannot join a chain:
 * MaxPool without its Indices output, AveragePool unless it counts ceil_mode's extra padding
 * (oneDNN would count it too), GlobalMaxPool / GlobalAveragePool; attributes valid. */
static int poolable(const onnx_node *c)
{
    md_err tmp;
    const char *t = c->op_type;
    if (c->domain[0] != '\0' || c->n_out != 1)
        return 0;
    if (strcmp(t, "GlobalMaxPool") == 0)
        return POOL_GLOBAL_MAX;
    if (strcmp(t, "GlobalAveragePool") == 0)
        return POOL_GLOBAL_AVG;
    if (strcmp(t, "MaxPool") != 0 && strcmp(t, "AveragePool") != 0)
        return 0;
    if (onnx__pool_attrs_check(c, &tmp) != MD_OK)
        return 0; /* left alone, to fail its own prepare */
    if (t[0] == 'M')
        return 1 + ONNX_KPOOL_MAX;
    if (onnx__attr_int(c, "count_include_pad", 0) == 0)
        return 1 + ONNX_KPOOL_AVG_EXCLUDE_PAD;
    return onnx__attr_int(c, "ceil_mode", 0) ? 0 : 1 + ONNX_KPOOL_AVG_INCLUDE_PAD;
}

/* Whether c is an inference BatchNormalization with constant float statistics that can be folded
 * into the weights of stage s (a Conv with constant weights, no activation yet). */
static int foldable_bn(onnx_prep *p, const onnx_node *c, const stage *s)
{
    if (s->pool || s->transpose || s->w == NULL || s->act.kind != ONNX_KACT_NONE ||
        s->bn[0] != NULL || c->domain[0] != '\0' ||
        strcmp(c->op_type, "BatchNormalization") != 0 || c->n_out != 1 || c->n_in != 5 ||
        (c->opset >= 14 && onnx__attr_int(c, "training_mode", 0) != 0) ||
        (c->opset < 9 && onnx__attr_int(c, "spatial", 1) != 1))
        return 0;
    for (int i = 1; i < 5; i++) {
        const onnx_tensor *t = onnx__prep_const(p, c, i);
        if (t == NULL || t->dtype != ONNX_FLOAT || t->rank != 1)
            return 0;
    }
    return 1;
}

static int absorb_bn(onnx_prep *p, onnx_node *n, onnx_node *c, stage *s, md_err *err)
{
    int rc = onnx__prep_absorb(p, n, c, err);
    if (rc)
        return rc;
    for (int i = 0; i < 4; i++)
        s->bn[i] = onnx__prep_const(p, c, i + 1);
    s->bn_eps = onnx__attr_float(c, "epsilon", 1e-5f);
    return MD_OK;
}

/* Append c as a new stage (a Conv or a pooling of kind pool) and absorb it. */
static int add_stage(onnx_prep *p, onnx_node *n, conv_priv *cp, onnx_node *c, int pool,
                     md_err *err)
{
    init_stage(p, &cp->st[cp->nst], c);
    cp->st[cp->nst].pool = pool;
    int rc = onnx__prep_absorb(p, n, c, err);
    if (rc == MD_OK)
        cp->nst++;
    return rc;
}

/* Absorb what follows n while it can be fused: activations into the current convolution stage,
 * poolings and Convs as new stages (only after constant weights, invariant 3). */
static int absorb_followers(onnx_prep *p, onnx_node *n, conv_priv *cp, md_err *err)
{
    for (;;) {
        onnx_node *c = onnx__prep_sole_consumer(p, n, 0);
        stage *cur = &cp->st[cp->nst - 1];
        onnx_kact a;
        if (c == NULL)
            return MD_OK;
        if (foldable_bn(p, c, cur)) {
            int rc = absorb_bn(p, n, c, cur, err);
            if (rc)
                return rc;
            continue;
        }
        if (!cur->pool && cur->act.kind == ONNX_KACT_NONE && onnx__fusable_act(p, c, &a)) {
            int rc = onnx__prep_absorb(p, n, c, err);
            if (rc)
                return rc;
            cur->act = a;
            continue;
        }
        if (cp->nst >= MAX_CHAIN || cp->st[0].w == NULL || cp->st[0].transpose ||
            cur->transpose)
            return MD_OK;
        int pool = poolable(c);
        if (pool == 0 && !chainable(p, n, c))
            return MD_OK;
        int rc = add_stage(p, n, cp, c, pool, err);
        if (rc)
            return rc;
    }
}

static void release_conv(void *priv)
{
    conv_priv *cp = priv;
    for (int i = 0; i < cp->n_ent; i++)
        onnx__conv_free(cp->ent[i].conv);
    pthread_mutex_destroy(&cp->mu);
    free(cp);
}

static int prepare_conv(onnx_node *n, onnx_prep *p, md_err *err)
{
    int rc = check_attrs(n, err);
    if (rc)
        return rc;
    const onnx_tensor *w = onnx__prep_const(p, n, 1);
    if (w != NULL && (w->dtype != ONNX_FLOAT || w->rank < 3 || w->rank > ONNX_KMAX_SPATIAL + 2))
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "W", "weights must be float32 with "
                               "rank 3 to 5");
    conv_priv *cp = calloc(1, sizeof *cp);
    if (cp == NULL)
        return onnx__prep_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    pthread_mutex_init(&cp->mu, NULL);
    n->priv = cp; /* from here on the loader frees it with release_conv */
    init_stage(p, &cp->st[0], n);
    cp->nst = 1;
    return absorb_followers(p, n, cp, err);
}

/* ---- run ------------------------------------------------------------------------------------- */

/* Geometry of pooling stage s for input dims (rank, dims). */
static int pool_stage_geom(const stage *s, int rank, const int64_t *dims, onnx_kpool_geom *g,
                           md_err *e)
{
    if (s->pool < POOL_GLOBAL_MAX)
        return onnx__pool_geom_of(s->node, rank, dims, s->pool - 1, g, e);
    memset(g, 0, sizeof *g);
    g->kind = s->pool == POOL_GLOBAL_MAX ? ONNX_KPOOL_MAX : ONNX_KPOOL_AVG_EXCLUDE_PAD;
    g->nsp = rank - 2;
    g->n = dims[0];
    g->c = dims[1];
    for (int i = 0; i < g->nsp; i++) {
        g->in[i] = g->k[i] = dims[2 + i];
        g->out[i] = g->stride[i] = g->dil[i] = 1;
    }
    return onnx__pool_check(g, e);
}

/* Stages of the chain for this run's input, and the chain's output shape. */
static int chain_geoms(const conv_priv *cp, const onnx_tensor *x, const onnx_tensor *w,
                       const onnx_tensor *b, onnx_kstage *g, int *rank, int64_t *dims,
                       md_err *e)
{
    *rank = x->rank;
    memcpy(dims, x->dims, sizeof(int64_t) * ONNX_MAX_RANK);
    for (int i = 0; i < cp->nst; i++) {
        const onnx_tensor *ws = i == 0 ? w : cp->st[i].w, *bs = i == 0 ? b : cp->st[i].b;
        int rc;
        memset(&g[i], 0, sizeof g[i]);
        if (cp->st[i].pool) {
            g[i].kind = ONNX_KSTAGE_POOL;
            rc = pool_stage_geom(&cp->st[i], *rank, dims, &g[i].pool, e);
            if (rc)
                return rc;
            memcpy(dims + 2, g[i].pool.out, sizeof(int64_t) * (size_t)g[i].pool.nsp);
            continue;
        }
        g[i].kind = ONNX_KSTAGE_CONV;
        rc = stage_geom(&cp->st[i], *rank, dims, ws, bs, &g[i].conv, e);
        if (rc)
            return rc;
        dims[1] = g[i].conv.oc;
        memcpy(dims + 2, g[i].conv.out, sizeof(int64_t) * (size_t)g[i].conv.nsp);
    }
    return MD_OK;
}

/* Fold stage s's BatchNormalization into its weights: w' = w * a, b' = (b - mean) * a + B with
 * a = scale / sqrt(var + eps) per output channel. *wf, *bf are new (free()). */
static int fold_bn(const stage *s, onnx_kconv_geom *g, const float *w, const float *b,
                   float **wf, float **bf, md_err *e)
{
    for (int i = 0; i < 4; i++)
        if (onnx_tensor_numel(s->bn[i]) != g->oc)
            return md_fail(e, MD_E_INVALID_PARAM, "scale", "BatchNormalization after a Conv "
                           "with %lld channels has %lld statistics", (long long)g->oc,
                           (long long)onnx_tensor_numel(s->bn[i]));
    size_t per = onnx__conv_weight_count(g) / (size_t)g->oc;
    *wf = malloc(onnx__conv_weight_count(g) * sizeof(float));
    *bf = malloc((size_t)g->oc * sizeof(float));
    if (*wf == NULL || *bf == NULL)
        return md_fail(e, MD_E_NOMEM, NULL, "out of memory folding BatchNormalization");
    const float *sc = s->bn[0]->data, *sh = s->bn[1]->data, *mean = s->bn[2]->data,
                *var = s->bn[3]->data;
    for (int64_t o = 0; o < g->oc; o++) {
        float a = sc[o] / sqrtf(var[o] + s->bn_eps);
        for (size_t i = 0; i < per; i++)
            (*wf)[(size_t)o * per + i] = w[(size_t)o * per + i] * a;
        (*bf)[o] = ((g->has_bias ? b[o] : 0.0f) - mean[o]) * a + sh[o];
    }
    g->has_bias = 1;
    return MD_OK;
}

static int build_entry(const conv_priv *cp, const onnx_tensor *x, const onnx_tensor *w,
                       const onnx_tensor *b, int threads, shape_ent *ent, md_err *e)
{
    onnx_kstage g[MAX_CHAIN];
    const float *wl[MAX_CHAIN], *bl[MAX_CHAIN];
    float *folded[2 * MAX_CHAIN] = {0};
    int rc = chain_geoms(cp, x, w, b, g, &ent->y_rank, ent->y_dims, e);
    double macs = 0.0;
    for (int i = 0; rc == MD_OK && i < cp->nst; i++) {
        const onnx_tensor *ws = i == 0 ? w : cp->st[i].w, *bs = i == 0 ? b : cp->st[i].b;
        wl[i] = ws ? ws->data : NULL;
        bl[i] = bs ? bs->data : NULL;
        if (cp->st[i].bn[0] != NULL &&
            (rc = fold_bn(&cp->st[i], &g[i].conv, wl[i], bl[i], &folded[2 * i],
                          &folded[2 * i + 1], e)) == MD_OK) {
            wl[i] = folded[2 * i];
            bl[i] = folded[2 * i + 1];
        }
        macs += g[i].kind == ONNX_KSTAGE_CONV ? onnx__conv_macs(&g[i].conv) : 0.0;
    }
    if (rc == MD_OK) {
        /* oneDNN fixes the team size when it builds a primitive (see onnx__conv_new) */
        onnx__kern_set_threads(onnx__kern_threads_for(threads, macs));
        int runtime = cp->st[0].w == NULL;
        rc = onnx__chain_new(cp->nst, g, runtime ? NULL : wl, runtime ? NULL : bl, &ent->conv, e);
    }
    for (int i = 0; i < 2 * MAX_CHAIN; i++)
        free(folded[i]);
    return rc;
}

static void make_key(const onnx_tensor *x, const onnx_tensor *w, int has_b, int threads,
                     int64_t *key)
{
    int j = 0;
    memset(key, 0, sizeof(int64_t) * KEY_LEN);
    key[j++] = x->rank;
    for (int i = 0; i < x->rank; i++)
        key[j++] = x->dims[i];
    key[j++] = w->rank;
    for (int i = 0; i < w->rank; i++)
        key[j++] = w->dims[i];
    key[j++] = has_b;
    key[j] = threads;
}

/* The cached chain for key, or NULL. Entries are never removed (invariant 1). */
static shape_ent *cache_find(conv_priv *cp, const int64_t *key)
{
    shape_ent *found = NULL;
    pthread_mutex_lock(&cp->mu);
    for (int i = 0; i < cp->n_ent && !found; i++)
        if (memcmp(cp->ent[i].key, key, sizeof(int64_t) * KEY_LEN) == 0)
            found = &cp->ent[i];
    pthread_mutex_unlock(&cp->mu);
    return found;
}

/* Publish a freshly built entry. Returns the cached one (ours, or a racing thread's, in which
 * case ours is freed), or NULL when the cache is full and the caller keeps ownership. */
static shape_ent *cache_add(conv_priv *cp, shape_ent *mine)
{
    shape_ent *res = NULL;
    pthread_mutex_lock(&cp->mu);
    for (int i = 0; i < cp->n_ent && !res; i++)
        if (memcmp(cp->ent[i].key, mine->key, sizeof(int64_t) * KEY_LEN) == 0)
            res = &cp->ent[i];
    if (res != NULL) {
        onnx__conv_free(mine->conv);
    } else if (cp->n_ent < MAX_SHAPES) {
        res = &cp->ent[cp->n_ent];
        *res = *mine;
        cp->n_ent++;
    }
    pthread_mutex_unlock(&cp->mu);
    return res;
}

/* An empty batch: the output shape only, nothing to compute. */
static int run_empty(const conv_priv *cp, onnx_kctx *k, const onnx_tensor *w,
                     const onnx_tensor *b)
{
    onnx_tensor x1 = *k->in[0], *y;
    onnx_kstage g[MAX_CHAIN];
    int rank;
    int64_t dims[ONNX_MAX_RANK];
    md_err e;
    x1.dims[0] = 1;
    if (chain_geoms(cp, &x1, w, b, g, &rank, dims, &e))
        return onnx__kfail(k, e.code, "%s: %s", e.field, e.msg);
    dims[0] = 0;
    return onnx__output(k, 0, ONNX_FLOAT, rank, dims, &y);
}

static int run_conv(const onnx_node *n, onnx_kctx *k)
{
    conv_priv *cp = n->priv; /* only its cache is written, under its mutex */
    const onnx_tensor *x = k->in[0], *w = k->in[1], *b = k->n_in > 2 ? k->in[2] : NULL;
    md_err e;
    if (x->dtype != ONNX_FLOAT || w->dtype != ONNX_FLOAT || (b && b->dtype != ONNX_FLOAT))
        return onnx__kfail(k, MD_E_UNSUPPORTED, "only float32 tensors are supported");
    if (x->rank >= 1 && x->dims[0] == 0)
        return run_empty(cp, k, w, b);
    shape_ent mine = {0}, *ent;
    make_key(x, w, b != NULL, k->threads, mine.key);
    ent = cache_find(cp, mine.key);
    if (ent == NULL) {
        if (build_entry(cp, x, w, b, k->threads, &mine, &e))
            return onnx__kfail(k, e.code, "%s: %s", e.field, e.msg);
        ent = cache_add(cp, &mine);
    }
    const shape_ent *use = ent ? ent : &mine;
    onnx_tensor *y;
    int rc = onnx__output(k, 0, ONNX_FLOAT, use->y_rank, use->y_dims, &y);
    void *s = rc ? NULL : onnx__scratch(k, onnx__conv_scratch(use->conv));
    if (s != NULL) {
        rc = onnx__conv_run(use->conv, x->data, w->data, b ? b->data : NULL, y->data, s, &e);
        if (rc)
            rc = onnx__kfail(k, rc, "%s", e.msg);
    } else if (!rc) {
        rc = MD_E_NOMEM;
    }
    if (ent == NULL)
        onnx__conv_free(mine.conv); /* cache full: this run's private chain (invariant 2) */
    return rc;
}

#define CONV_ATTRS "auto_pad:s dilations:I group:i kernel_shape:I pads:I strides:I"

ONNX_OPS(conv) = {
    {.domain = "", .op_type = "Conv", .opset_min = 1, .opset_max = 0, .min_in = 2, .max_in = 3,
     .min_out = 1, .max_out = 1, .attrs = CONV_ATTRS, .prepare = prepare_conv, .run = run_conv,
     .release = release_conv},
    {.domain = "", .op_type = "ConvTranspose", .opset_min = 1, .opset_max = 0, .min_in = 2,
     .max_in = 3, .min_out = 1, .max_out = 1,
     .attrs = CONV_ATTRS " output_padding:I output_shape:I", .prepare = prepare_conv,
     .run = run_conv, .release = release_conv},
    ONNX_OPS_END
};
