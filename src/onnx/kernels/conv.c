/* conv.c - convolution chains on oneDNN: primitives built once, run many times, from many threads.
 *
 * A chain is a convolution followed by more convolutions and poolings, stage i+1 reading stage
 * i's output. At build time every stage gets a oneDNN primitive: Winograd for large 3x3 convs,
 * else the blocked nChw16c layout (the first conv of a net reads plain NCHW directly), else
 * whatever oneDNN prefers; oneDNN's slow reference implementations are never taken. Where
 * oneDNN has no Winograd (2.6 has it for AVX-512 only), a 3x3 or 5x5 stride-1 stage runs on our
 * own Winograd F(4,3) instead (wino.c, AVX2 + FMA, plain NCHW in and out; own_winograd). Weights
 * are reordered once into the layout the primitive wants. The chain then compiles to a short
 * program of steps: reorder the input if the first primitive wants another layout, run each stage (its
 * activation fused as a post-op, or as an in-place step where Winograd cannot fuse it), reorder
 * between stages only when layouts differ, and reorder the result back to plain NCHW.
 * Intermediates live in two ping-pong slots of the caller's scratch.
 *
 * Invariants:
 *  1. After onnx__conv_new the object is read-only except `pool`, a mutex-guarded free list of
 *     execution contexts (a oneDNN stream and one memory object per step argument). A run takes
 *     a context, points the memory objects at this run's buffers, and gives it back, so
 *     concurrent runs never share a memory object and warm runs allocate nothing.
 *  2. Every primitive uses a user-managed scratchpad (the B_PAD region of the caller's scratch),
 *     which is what makes concurrent execution of one primitive safe in oneDNN.
 *  3. A step reads one buffer and writes another: the ping-pong slot written is never the one
 *     read.
 *  4. When any stage has no oneDNN implementation, the whole chain runs on the direct loops
 *     (conv_direct.c) with plain intermediates; results are the same up to rounding.
 *  5. A step of our own Winograd (kstep.wino) reads and writes plain NCHW, has no oneDNN
 *     primitive or memory objects, and runs after a stream wait, so it sees every earlier
 *     step's output; its scratch is the B_WINO region.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include "onnx/kernels/kernels.h"

#define MAX_ARGS 5
#define ALIGN 64

/* Where a step argument's data is at run time. */
enum bufref { B_X, B_Y, B_SLOT0, B_SLOT1, B_WRUN, B_BRUN, B_WSCR, B_PAD, B_WINO, B_CONST };

typedef struct karg {
    int arg;              /* DNNL_ARG_* */
    int buf;              /* enum bufref */
    const void *cptr;     /* B_CONST: owned by the chain */
    dnnl_memory_desc_t md;
} karg;

typedef struct kstep {
    dnnl_primitive_t prim;   /* NULL for a step of our own Winograd */
    onnx__wino *wino;        /* our own Winograd (wino.c), plain NCHW from win_in to win_out */
    int win_in, win_out;
    int serial;           /* a reorder: memory-bound, run on the calling thread alone */
    int nargs;
    karg args[MAX_ARGS];
} kstep;

typedef struct exec_ctx {
    struct exec_ctx *next;
    dnnl_stream_t stream;
    dnnl_memory_t *mem;      /* nsteps * MAX_ARGS */
    dnnl_exec_arg_t *eargs;  /* nsteps * MAX_ARGS */
} exec_ctx;

struct onnx__conv {
    int nstages;
    int nthr;                /* OpenMP threads the primitives were built for */
    onnx_kstage *st;         /* the stages, copied */
    int runtime_weights;
    int dnnl;                /* 0: direct loops */
    int nsteps;
    kstep *steps;
    void **owned;            /* weights/bias buffers in oneDNN layout, freed with the chain */
    int nowned;
    const float **pw, **pb;  /* direct loops: plain weights/bias per stage (in owned) */
    size_t slot_bytes, wscr_bytes, pad_bytes, wino_bytes;
    pthread_mutex_t mu;
    exec_ctx *pool;
};

static dnnl_engine_t g_engine;
static pthread_once_t g_engine_once = PTHREAD_ONCE_INIT;

/* One CPU engine for the process: it is stateless and shared by every primitive. */
static void engine_init(void)
{
    if (dnnl_engine_create(&g_engine, dnnl_cpu, 0) != dnnl_success)
        g_engine = NULL;
}

static size_t round_up(size_t n)
{
    return (n + ALIGN - 1) / ALIGN * ALIGN;
}

static int64_t plane(const onnx_kconv_geom *g, int out)
{
    int64_t p = 1;
    for (int i = 0; i < g->nsp; i++)
        p *= out ? g->out[i] : g->in[i];
    return p;
}

/* ---- memory descriptors ---------------------------------------------------------------------- */

/* Plain NC<spatial> descriptor of a stage's input (out=0) or output (out=1). */
static int act_md(const onnx_kconv_geom *g, int out, dnnl_memory_desc_t *md)
{
    dnnl_dims_t dims;
    dims[0] = g->n;
    dims[1] = out ? g->oc : g->ic;
    for (int i = 0; i < g->nsp; i++)
        dims[2 + i] = out ? g->out[i] : g->in[i];
    static const dnnl_format_tag_t tags[] = {dnnl_ncw, dnnl_nchw, dnnl_ncdhw};
    return dnnl_memory_desc_init_by_tag(md, g->nsp + 2, dims, dnnl_f32, tags[g->nsp - 1]) ==
                   dnnl_success ? 0 : -1;
}

/* Plain descriptor of stage s's input (out=0) or output (out=1), convolution or pooling. */
static int stage_md(const onnx_kstage *s, int out, dnnl_memory_desc_t *md)
{
    if (s->kind == ONNX_KSTAGE_CONV)
        return act_md(&s->conv, out, md);
    const onnx_kpool_geom *p = &s->pool;
    dnnl_dims_t dims = {p->n, p->c};
    for (int i = 0; i < p->nsp; i++)
        dims[2 + i] = out ? p->out[i] : p->in[i];
    static const dnnl_format_tag_t tags[] = {dnnl_ncw, dnnl_nchw, dnnl_ncdhw};
    return dnnl_memory_desc_init_by_tag(md, p->nsp + 2, dims, dnnl_f32, tags[p->nsp - 1]) ==
                   dnnl_success ? 0 : -1;
}

static int any_md(const dnnl_memory_desc_t *plain, dnnl_memory_desc_t *md)
{
    return dnnl_memory_desc_init_by_tag(md, plain->ndims, plain->dims, dnnl_f32,
                                        dnnl_format_tag_any) == dnnl_success ? 0 : -1;
}

/* ONNX weights as a oneDNN descriptor. oneDNN's logical order is (G,) O, I, k...; ONNX stores
 * Conv as [G][O][I][k] and ConvTranspose as [G][I][O][k], so strides describe either layout. */
static int wei_md(const onnx_kconv_geom *g, dnnl_memory_desc_t *md)
{
    int64_t ocg = g->oc / g->group, icg = g->ic / g->group, ksz = 1;
    dnnl_dims_t dims, strides;
    int grouped = g->group > 1, nd = g->nsp + 2 + grouped, o = grouped, i = grouped + 1;
    for (int s = g->nsp - 1; s >= 0; s--) {
        dims[i + 1 + s] = g->k[s];
        strides[i + 1 + s] = ksz;
        ksz *= g->k[s];
    }
    dims[o] = ocg;
    dims[i] = icg;
    strides[o] = g->transpose ? ksz : icg * ksz;
    strides[i] = g->transpose ? ocg * ksz : ksz;
    if (grouped) {
        dims[0] = g->group;
        strides[0] = ocg * icg * ksz;
    }
    return dnnl_memory_desc_init_by_strides(md, nd, dims, dnnl_f32, strides) == dnnl_success
               ? 0 : -1;
}

static int bias_md(const onnx_kconv_geom *g, dnnl_memory_desc_t *md)
{
    dnnl_dims_t dims = {g->oc};
    return dnnl_memory_desc_init_by_tag(md, 1, dims, dnnl_f32, dnnl_a) == dnnl_success ? 0 : -1;
}

/* ---- primitive descriptors ------------------------------------------------------------------- */

static dnnl_primitive_attr_t make_attr(const onnx_kact *act)
{
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success)
        return NULL;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (act == NULL || act->kind == ONNX_KACT_NONE)
        return attr;
    dnnl_alg_kind_t alg = dnnl_eltwise_relu;
    float alpha = 0.0f, beta = 0.0f;
    switch (act->kind) {
    case ONNX_KACT_LEAKY: alpha = act->alpha; break;
    case ONNX_KACT_CLIP: alg = dnnl_eltwise_clip_v2; alpha = act->alpha; beta = act->beta; break;
    case ONNX_KACT_SIGMOID: alg = dnnl_eltwise_logistic; break;
    case ONNX_KACT_TANH: alg = dnnl_eltwise_tanh; break;
    default: break;
    }
    dnnl_post_ops_t po = NULL;
    int ok = dnnl_post_ops_create(&po) == dnnl_success &&
             dnnl_post_ops_append_eltwise(po, 1.0f, alg, alpha, beta) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    dnnl_post_ops_destroy(po);
    if (!ok) {
        dnnl_primitive_attr_destroy(attr);
        return NULL;
    }
    return attr;
}

/* Activation layouts a stage can ask for. */
enum layout { L_ANY, L_PLAIN, L_BLOCKED };

static int layout_md(const dnnl_memory_desc_t *plain, int nsp, int layout, dnnl_memory_desc_t *md)
{
    static const dnnl_format_tag_t blocked[] = {dnnl_nCw16c, dnnl_nChw16c, dnnl_nCdhw16c};
    if (layout == L_PLAIN) {
        *md = *plain;
        return 0;
    }
    dnnl_format_tag_t tag = layout == L_ANY ? dnnl_format_tag_any : blocked[nsp - 1];
    return dnnl_memory_desc_init_by_tag(md, plain->ndims, plain->dims, dnnl_f32, tag) ==
                   dnnl_success ? 0 : -1;
}

static int is_ref_impl(dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success)
        return 1;
    return impl == NULL || strncmp(impl, "ref", 3) == 0;
}

/* One attempt at a stage's primitive descriptor with the given algorithm and src/dst layouts
 * (weights always left to oneDNN). NULL when oneDNN refuses it or only has its slow reference
 * implementation for it (allow_ref = 0). */
static dnnl_primitive_desc_t stage_pd_try(const onnx_kconv_geom *g, dnnl_alg_kind_t alg,
                                          int src_l, int dst_l, int allow_ref,
                                          const onnx_kact *act)
{
    dnnl_memory_desc_t src, dst, wei, bia, psrc, pdst, pwei;
    if (act_md(g, 0, &psrc) || act_md(g, 1, &pdst) || wei_md(g, &pwei) || bias_md(g, &bia) ||
        layout_md(&psrc, g->nsp, src_l, &src) || layout_md(&pdst, g->nsp, dst_l, &dst) ||
        any_md(&pwei, &wei))
        return NULL;
    dnnl_dims_t st, dl, pl, pr;
    for (int i = 0; i < g->nsp; i++) {
        st[i] = g->stride[i];
        dl[i] = g->dil[i] - 1; /* oneDNN counts dilation from 0 */
        pl[i] = g->pad_begin[i];
        pr[i] = g->pad_end[i];
        if (pr[i] < 0)
            return NULL; /* output_padding past the padding: direct loops handle it */
    }
    const dnnl_memory_desc_t *pb = g->has_bias ? &bia : NULL;
    union { dnnl_convolution_desc_t c; dnnl_deconvolution_desc_t d; } desc;
    dnnl_status_t s = g->transpose
        ? dnnl_dilated_deconvolution_forward_desc_init(&desc.d, dnnl_forward_inference,
              dnnl_deconvolution_direct, &src, &wei, pb, &dst, st, dl, pl, pr)
        : dnnl_dilated_convolution_forward_desc_init(&desc.c, dnnl_forward_inference, alg, &src,
              &wei, pb, &dst, st, dl, pl, pr);
    if (s != dnnl_success)
        return NULL;
    dnnl_primitive_attr_t attr = make_attr(act);
    if (attr == NULL)
        return NULL;
    dnnl_primitive_desc_t pd = NULL;
    s = dnnl_primitive_desc_create(&pd, &desc, attr, g_engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s == dnnl_success && !allow_ref && is_ref_impl(pd)) {
        dnnl_primitive_desc_destroy(pd);
        return NULL;
    }
    return s == dnnl_success ? pd : NULL;
}

static const char *policy(void)
{
    const char *v = getenv("MODELD_ONNX_CONV_POLICY");
    return v ? v : "";
}

/* Whether Winograd fits: 2-D 3x3, stride 1, no dilation, no groups, a large enough image for
 * its tile transforms to pay off. */
static int winograd_fits(const onnx_kconv_geom *g)
{
    return !g->transpose && g->nsp == 2 && g->group == 1 && g->k[0] == 3 && g->k[1] == 3 &&
           g->stride[0] == 1 && g->stride[1] == 1 && g->dil[0] == 1 && g->dil[1] == 1 &&
           g->ic >= 16 && g->oc >= 16 && g->out[0] * g->out[1] >= 64 * 64 &&
           strcmp(policy(), "nowino") != 0 &&
           strcmp(policy(), "any") != 0;
}

/* Whether oneDNN, as capped by the CPU and ONEDNN_MAX_CPU_ISA, has Winograd of its own: its
 * 2.6 release has it for AVX-512 only. */
static int onednn_has_winograd(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return ((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core) ==
           (unsigned)dnnl_cpu_isa_avx512_core;
}

/* Whether stage g runs on our own Winograd F(4,3) (wino.c) rather than oneDNN. Env
 * MODELD_ONNX_CONV3X3: "winograd" wherever it can run (a 3x3 or 5x5 stride-1 conv with constant
 * weights on an AVX2 + FMA CPU), "onednn" never, "auto" (the default) wherever oneDNN has no
 * Winograd (CPUs without AVX-512, or oneDNN capped below it: ours measured 1.8-3x faster than
 * its direct AVX2 kernels per layer, small channel counts and images included); and, beside
 * oneDNN's AVX-512 Winograd, where ours measured faster on a Xeon with AVX-512: 3x3 with up to
 * 32 output channels (1.1-1.3x per layer counting oneDNN's reorders to and from its blocked
 * layout, more for a few channels, which oneDNN runs directly); from 48 channels on its 16-wide
 * products win, and 5x5 kernels, which it runs directly, came out even.
 * MODELD_ONNX_CONV_POLICY=nowino|any turn it off too. */
static int own_winograd(const onnx_kconv_geom *g, int runtime_weights)
{
    const char *v = getenv("MODELD_ONNX_CONV3X3");
    if (runtime_weights || !onnx__wino_geom_ok(g) || strcmp(policy(), "nowino") == 0 ||
        strcmp(policy(), "any") == 0 || (v != NULL && strcmp(v, "onednn") == 0) ||
        !onnx__wino_cpu_ok())
        return 0;
    if (v != NULL && strcmp(v, "winograd") == 0)
        return 1;
    return !onednn_has_winograd() || (g->oc <= 32 && g->k[0] == 3);
}

/* The primitive descriptor of one stage, trying the fastest forms first: Winograd where it fits,
 * then the blocked layout (nChw16c, the first conv of a net reading plain NCHW directly), then
 * whatever oneDNN prefers. oneDNN's Winograd takes only some post-ops (not tanh or sigmoid):
 * then it runs without, and *split_act tells the caller to add the activation as its own step,
 * still cheaper than a direct convolution. NULL when oneDNN has nothing (fallback to loops). */
static dnnl_primitive_desc_t stage_pd(const onnx_kconv_geom *g, int *split_act)
{
    dnnl_primitive_desc_t pd = NULL;
    *split_act = 0;
    if (winograd_fits(g)) {
        pd = stage_pd_try(g, dnnl_convolution_winograd, L_BLOCKED, L_BLOCKED, 0, &g->act);
        if (pd == NULL && g->act.kind != ONNX_KACT_NONE) {
            pd = stage_pd_try(g, dnnl_convolution_winograd, L_BLOCKED, L_BLOCKED, 0, NULL);
            *split_act = pd != NULL;
        }
    }
    if (pd == NULL && !g->transpose && strcmp(policy(), "any") != 0)
        pd = stage_pd_try(g, dnnl_convolution_direct, g->ic < 16 ? L_PLAIN : L_BLOCKED,
                          g->oc < 16 ? L_PLAIN : L_BLOCKED, 0, &g->act);
    if (pd == NULL)
        pd = stage_pd_try(g, dnnl_convolution_direct, L_ANY, L_ANY, 1, &g->act);
    return pd;
}

static const dnnl_memory_desc_t *pd_md(dnnl_primitive_desc_t pd, dnnl_query_t what)
{
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

static size_t pd_scratch(dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *md = pd_md(pd, dnnl_query_scratchpad_md);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

/* ---- building the step program --------------------------------------------------------------- */

static void step_arg(kstep *s, int arg, int buf, const dnnl_memory_desc_t *md, const void *cptr)
{
    if (md == NULL)
        return; /* e.g. no scratchpad descriptor */
    karg *a = &s->args[s->nargs++];
    a->arg = arg;
    a->buf = buf;
    a->md = *md;
    a->cptr = cptr;
}

static void note_slot(onnx__conv *c, const dnnl_memory_desc_t *md)
{
    size_t b = dnnl_memory_desc_get_size(md);
    if (b > c->slot_bytes)
        c->slot_bytes = b;
}

/* Append a reorder step from (buf_in, in) to (buf_out, out). */
static int add_reorder(onnx__conv *c, int buf_in, const dnnl_memory_desc_t *in, int buf_out,
                       const dnnl_memory_desc_t *out)
{
    dnnl_primitive_attr_t attr = make_attr(NULL);
    dnnl_primitive_desc_t pd = NULL;
    kstep *s = &c->steps[c->nsteps];
    if (attr == NULL)
        return -1;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, in, g_engine, out, g_engine, attr);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return -1;
    size_t pad = pd_scratch(pd);
    c->pad_bytes = pad > c->pad_bytes ? pad : c->pad_bytes;
    st = dnnl_primitive_create(&s->prim, pd);
    if (st == dnnl_success) {
        s->serial = 1;
        step_arg(s, DNNL_ARG_FROM, buf_in, in, NULL);
        step_arg(s, DNNL_ARG_TO, buf_out, out, NULL);
        step_arg(s, DNNL_ARG_SCRATCHPAD, B_PAD, pd_md(pd, dnnl_query_scratchpad_md), NULL);
        c->nsteps++;
    }
    dnnl_primitive_desc_destroy(pd);
    return st == dnnl_success ? 0 : -1;
}

/* Append an in-place activation step over (buf, md). */
static int add_eltwise(onnx__conv *c, const onnx_kact *act, int buf, const dnnl_memory_desc_t *md)
{
    dnnl_alg_kind_t alg = act->kind == ONNX_KACT_TANH      ? dnnl_eltwise_tanh
                          : act->kind == ONNX_KACT_SIGMOID ? dnnl_eltwise_logistic
                          : act->kind == ONNX_KACT_CLIP    ? dnnl_eltwise_clip_v2
                                                           : dnnl_eltwise_relu;
    float alpha = act->kind == ONNX_KACT_LEAKY || act->kind == ONNX_KACT_CLIP ? act->alpha : 0;
    float beta = act->kind == ONNX_KACT_CLIP ? act->beta : 0;
    dnnl_eltwise_desc_t d;
    dnnl_primitive_attr_t attr = make_attr(NULL);
    dnnl_primitive_desc_t pd = NULL;
    kstep *s = &c->steps[c->nsteps];
    if (attr == NULL)
        return -1;
    dnnl_status_t st = dnnl_eltwise_forward_desc_init(&d, dnnl_forward_inference, alg, md, alpha,
                                                      beta);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&pd, &d, attr, g_engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&s->prim, pd);
    if (st == dnnl_success) {
        size_t pad = pd_scratch(pd);
        c->pad_bytes = pad > c->pad_bytes ? pad : c->pad_bytes;
        step_arg(s, DNNL_ARG_SRC, buf, md, NULL);
        step_arg(s, DNNL_ARG_DST, buf, md, NULL);
        step_arg(s, DNNL_ARG_SCRATCHPAD, B_PAD, pd_md(pd, dnnl_query_scratchpad_md), NULL);
        c->nsteps++;
    }
    dnnl_primitive_desc_destroy(pd);
    return st == dnnl_success ? 0 : -1;
}

static void *own(onnx__conv *c, size_t bytes)
{
    void *p = aligned_alloc(ALIGN, round_up(bytes ? bytes : 1));
    if (p != NULL)
        c->owned[c->nowned++] = p;
    return p;
}

/* Reorder constant data from (src, plain md) into a new owned buffer in layout `want`, now. */
static const void *reorder_const(onnx__conv *c, const float *src, const dnnl_memory_desc_t *plain,
                                 const dnnl_memory_desc_t *want)
{
    void *dst = own(c, dnnl_memory_desc_get_size(want));
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t ms = NULL, md = NULL;
    dnnl_stream_t stream = NULL;
    int ok = dst != NULL &&
             dnnl_reorder_primitive_desc_create(&pd, plain, g_engine, want, g_engine, NULL) ==
                 dnnl_success &&
             dnnl_primitive_create(&prim, pd) == dnnl_success &&
             dnnl_memory_create(&ms, plain, g_engine, (void *)src) == dnnl_success &&
             dnnl_memory_create(&md, want, g_engine, dst) == dnnl_success &&
             dnnl_stream_create(&stream, g_engine, dnnl_stream_default_flags) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md}};
        ok = dnnl_primitive_execute(prim, stream, 2, args) == dnnl_success &&
             dnnl_stream_wait(stream) == dnnl_success;
    }
    dnnl_stream_destroy(stream);
    dnnl_memory_destroy(ms);
    dnnl_memory_destroy(md);
    dnnl_primitive_destroy(prim);
    dnnl_primitive_desc_destroy(pd);
    return ok ? dst : NULL;
}

/* Weights argument of stage si: constant (reordered now) or given per run (reordered per run
 * into B_WSCR when oneDNN wants another layout). */
static int stage_weights(onnx__conv *c, int si, dnnl_primitive_desc_t pd, const float *w,
                         kstep *conv)
{
    dnnl_memory_desc_t plain;
    const dnnl_memory_desc_t *want = pd_md(pd, dnnl_query_weights_md);
    if (wei_md(&c->st[si].conv, &plain))
        return -1;
    if (!c->runtime_weights) {
        const void *p = reorder_const(c, w, &plain, want);
        if (p == NULL)
            return -1;
        step_arg(conv, DNNL_ARG_WEIGHTS, B_CONST, want, p);
        return 0;
    }
    if (dnnl_memory_desc_equal(&plain, want)) {
        step_arg(conv, DNNL_ARG_WEIGHTS, B_WRUN, want, NULL);
        return 0;
    }
    c->wscr_bytes = dnnl_memory_desc_get_size(want);
    step_arg(conv, DNNL_ARG_WEIGHTS, B_WSCR, want, NULL);
    return add_reorder(c, B_WRUN, &plain, B_WSCR, want);
}

static int stage_bias(onnx__conv *c, int si, const float *b, kstep *conv)
{
    const onnx_kconv_geom *g = &c->st[si].conv;
    dnnl_memory_desc_t md;
    if (!g->has_bias)
        return 0;
    if (bias_md(g, &md))
        return -1;
    if (c->runtime_weights) {
        step_arg(conv, DNNL_ARG_BIAS, B_BRUN, &md, NULL);
        return 0;
    }
    void *p = own(c, (size_t)g->oc * sizeof(float));
    if (p == NULL)
        return -1;
    memcpy(p, b, (size_t)g->oc * sizeof(float));
    step_arg(conv, DNNL_ARG_BIAS, B_CONST, &md, p);
    return 0;
}

static int other_slot(int buf)
{
    return buf == B_SLOT0 ? B_SLOT1 : B_SLOT0;
}

/* Compile stage si: input reorder if needed, weights, the conv itself. *cur / *cur_md track where
 * the running activation is. */
/* Compile stage si onto our own Winograd: the activation is reordered to plain NCHW first if a
 * previous stage left it blocked; the output is plain NCHW. */
static int build_wino_stage(onnx__conv *c, int si, const float *w, const float *b, int *cur,
                            dnnl_memory_desc_t *cur_md)
{
    const onnx_kconv_geom *g = &c->st[si].conv;
    dnnl_memory_desc_t plain_in, plain_out;
    md_err e;
    if (stage_md(&c->st[si], 0, &plain_in) || stage_md(&c->st[si], 1, &plain_out))
        return -1;
    if (!dnnl_memory_desc_equal(&plain_in, cur_md)) {
        int to = other_slot(*cur);
        note_slot(c, &plain_in);
        if (add_reorder(c, *cur, cur_md, to, &plain_in))
            return -1;
        *cur = to;
    }
    kstep *s = &c->steps[c->nsteps];
    if (onnx__wino_new(g, w, g->has_bias ? b : NULL, c->nthr, &s->wino, &e) != MD_OK)
        return -1;
    c->nsteps++;
    s->win_in = *cur;
    s->win_out = si == c->nstages - 1 ? B_Y : other_slot(*cur);
    if (s->win_out != B_Y)
        note_slot(c, &plain_out);
    size_t need = onnx__wino_scratch(s->wino);
    c->wino_bytes = need > c->wino_bytes ? need : c->wino_bytes;
    *cur = s->win_out;
    *cur_md = plain_out;
    return 0;
}

static int build_stage(onnx__conv *c, int si, const float *w, const float *b, int *cur,
                       dnnl_memory_desc_t *cur_md)
{
    int split_act;
    if (own_winograd(&c->st[si].conv, c->runtime_weights))
        return build_wino_stage(c, si, w, b, cur, cur_md);
    dnnl_primitive_desc_t pd = stage_pd(&c->st[si].conv, &split_act);
    if (pd == NULL)
        return -1;
    int rc = -1;
    const dnnl_memory_desc_t *src = pd_md(pd, dnnl_query_src_md);
    if (!dnnl_memory_desc_equal(src, cur_md)) {
        int to = other_slot(*cur);
        note_slot(c, src);
        if (add_reorder(c, *cur, cur_md, to, src))
            goto out;
        *cur = to;
    }
    kstep conv = {0};
    if (dnnl_primitive_create(&conv.prim, pd) != dnnl_success)
        goto out;
    step_arg(&conv, DNNL_ARG_SRC, *cur, src, NULL);
    /* A per-run weight reorder is appended here, so it runs before the conv step below. */
    if (stage_weights(c, si, pd, w, &conv) || stage_bias(c, si, b, &conv)) {
        dnnl_primitive_destroy(conv.prim);
        goto out;
    }
    const dnnl_memory_desc_t *dst = pd_md(pd, dnnl_query_dst_md);
    dnnl_memory_desc_t plain_out;
    int last = si == c->nstages - 1;
    int to = other_slot(*cur);
    if (last && stage_md(&c->st[si], 1, &plain_out) == 0 &&
        dnnl_memory_desc_equal(dst, &plain_out))
        to = B_Y;
    else
        note_slot(c, dst);
    step_arg(&conv, DNNL_ARG_DST, to, dst, NULL);
    step_arg(&conv, DNNL_ARG_SCRATCHPAD, B_PAD, pd_md(pd, dnnl_query_scratchpad_md), NULL);
    size_t pad = pd_scratch(pd);
    c->pad_bytes = pad > c->pad_bytes ? pad : c->pad_bytes;
    c->steps[c->nsteps++] = conv;
    *cur = to;
    *cur_md = *dst;
    rc = split_act ? add_eltwise(c, &c->st[si].conv.act, to, dst) : 0;
out:
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

/* oneDNN's pooling descriptor for p reading src (the layout the previous stage left). ONNX's
 * ceil_mode becomes extra right padding, which max and exclude-padding average ignore; an
 * include-padding average would count it, so that case is refused (direct loops). */
static int pool_desc(const onnx_kpool_geom *p, const dnnl_memory_desc_t *src,
                     dnnl_pooling_v2_desc_t *d)
{
    dnnl_dims_t st, k, dl, pl, pr, odims;
    dnnl_memory_desc_t dst;
    for (int i = 0; i < p->nsp; i++) {
        int64_t ek = (p->k[i] - 1) * p->dil[i] + 1;
        st[i] = p->stride[i];
        k[i] = p->k[i];
        dl[i] = p->dil[i] - 1;
        pl[i] = p->pad_begin[i];
        pr[i] = p->pad_end[i];
        if ((p->in[i] + pl[i] + pr[i] - ek) / st[i] + 1 != p->out[i])
            pr[i] = (p->out[i] - 1) * st[i] + ek - p->in[i] - pl[i];
        if (pr[i] < 0 || (pr[i] != p->pad_end[i] && p->kind == ONNX_KPOOL_AVG_INCLUDE_PAD))
            return -1;
    }
    odims[0] = p->n;
    odims[1] = p->c;
    memcpy(odims + 2, p->out, sizeof(int64_t) * (size_t)p->nsp);
    if (dnnl_memory_desc_init_by_tag(&dst, p->nsp + 2, odims, dnnl_f32, dnnl_format_tag_any))
        return -1;
    dnnl_alg_kind_t alg = p->kind == ONNX_KPOOL_MAX ? dnnl_pooling_max
                          : p->kind == ONNX_KPOOL_AVG_INCLUDE_PAD
                              ? dnnl_pooling_avg_include_padding
                              : dnnl_pooling_avg_exclude_padding;
    return dnnl_pooling_v2_forward_desc_init(d, dnnl_forward_inference, alg, src, &dst, st, k, dl,
                                             pl, pr) == dnnl_success ? 0 : -1;
}

/* Compile pooling stage si on the activation where it is, in its layout (pooling is
 * layout-agnostic, so the chain stays blocked through Conv-Relu-MaxPool-Conv...). */
static int build_pool_stage(onnx__conv *c, int si, int *cur, dnnl_memory_desc_t *cur_md)
{
    dnnl_pooling_v2_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = make_attr(NULL);
    kstep step = {0};
    int rc = -1;
    if (attr == NULL)
        return -1;
    if (pool_desc(&c->st[si].pool, cur_md, &d) == 0 &&
        dnnl_primitive_desc_create(&pd, &d, attr, g_engine, NULL) == dnnl_success &&
        dnnl_primitive_create(&step.prim, pd) == dnnl_success) {
        const dnnl_memory_desc_t *dst = pd_md(pd, dnnl_query_dst_md);
        dnnl_memory_desc_t plain_out;
        int to = other_slot(*cur);
        if (si == c->nstages - 1 && stage_md(&c->st[si], 1, &plain_out) == 0 &&
            dnnl_memory_desc_equal(dst, &plain_out))
            to = B_Y;
        else
            note_slot(c, dst);
        step_arg(&step, DNNL_ARG_SRC, *cur, cur_md, NULL);
        step_arg(&step, DNNL_ARG_DST, to, dst, NULL);
        step_arg(&step, DNNL_ARG_SCRATCHPAD, B_PAD, pd_md(pd, dnnl_query_scratchpad_md), NULL);
        size_t pad = pd_scratch(pd);
        c->pad_bytes = pad > c->pad_bytes ? pad : c->pad_bytes;
        c->steps[c->nsteps++] = step;
        *cur = to;
        *cur_md = *dst;
        rc = 0;
    }
    dnnl_primitive_attr_destroy(attr);
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

static int build_dnnl(onnx__conv *c, const float *const *w, const float *const *b)
{
    dnnl_memory_desc_t cur_md, plain_out;
    int cur = B_X;
    if (stage_md(&c->st[0], 0, &cur_md))
        return -1;
    for (int si = 0; si < c->nstages; si++) {
        int rc = c->st[si].kind == ONNX_KSTAGE_POOL
                     ? build_pool_stage(c, si, &cur, &cur_md)
                     : build_stage(c, si, w ? w[si] : NULL, b ? b[si] : NULL, &cur, &cur_md);
        if (rc)
            return -1;
    }
    if (cur == B_Y)
        return 0;
    if (stage_md(&c->st[c->nstages - 1], 1, &plain_out))
        return -1;
    return add_reorder(c, cur, &cur_md, B_Y, &plain_out);
}

/* ---- lifetime -------------------------------------------------------------------------------- */

static void free_ctx(onnx__conv *c, exec_ctx *x)
{
    if (x == NULL)
        return;
    for (int i = 0; x->mem && i < c->nsteps * MAX_ARGS; i++)
        dnnl_memory_destroy(x->mem[i]);
    dnnl_stream_destroy(x->stream);
    free(x->mem);
    free(x->eargs);
    free(x);
}

/* Drop the oneDNN program (used when the build fails half-way and we fall back to loops). */
static void drop_steps(onnx__conv *c)
{
    for (int i = 0; i < c->nsteps; i++) {
        if (c->steps[i].prim != NULL)
            dnnl_primitive_destroy(c->steps[i].prim);
        onnx__wino_free(c->steps[i].wino);
        c->steps[i] = (kstep){0};
    }
    c->nsteps = 0;
    for (int i = 0; i < c->nowned; i++)
        free(c->owned[i]);
    c->nowned = 0;
    c->slot_bytes = c->wscr_bytes = c->pad_bytes = c->wino_bytes = 0;
}

void onnx__conv_free(onnx__conv *c)
{
    if (c == NULL)
        return;
    while (c->pool != NULL) {
        exec_ctx *x = c->pool;
        c->pool = x->next;
        free_ctx(c, x);
    }
    drop_steps(c);
    pthread_mutex_destroy(&c->mu);
    free(c->steps);
    free(c->owned);
    free(c->pw);
    free(c->pb);
    free(c->st);
    free(c);
}

static int dnnl_disabled(void)
{
    const char *v = getenv("MODELD_ONNX_NO_DNNL");
    return v != NULL && v[0] == '1';
}

/* Elements of stage s's output. */
static size_t stage_out_count(const onnx_kstage *s)
{
    if (s->kind == ONNX_KSTAGE_CONV)
        return (size_t)(s->conv.n * s->conv.oc * plane(&s->conv, 1));
    size_t n = (size_t)(s->pool.n * s->pool.c);
    for (int i = 0; i < s->pool.nsp; i++)
        n *= (size_t)s->pool.out[i];
    return n;
}

/* Direct-loop chain: plain intermediates, one slot per ping-pong side. */
static void setup_direct(onnx__conv *c)
{
    c->dnnl = 0;
    for (int si = 0; si + 1 < c->nstages; si++) {
        size_t b = stage_out_count(&c->st[si]) * sizeof(float);
        c->slot_bytes = b > c->slot_bytes ? b : c->slot_bytes;
    }
}

/* Direct loops with constant weights: keep plain copies (the caller's are borrowed). */
static int keep_plain_weights(onnx__conv *c, const float *const *w, const float *const *b)
{
    for (int si = 0; si < c->nstages; si++) {
        const onnx_kconv_geom *g = &c->st[si].conv;
        if (c->st[si].kind != ONNX_KSTAGE_CONV)
            continue;
        size_t nw = onnx__conv_weight_count(g) * sizeof(float);
        float *pw = own(c, nw);
        if (pw == NULL)
            return -1;
        memcpy(pw, w[si], nw);
        c->pw[si] = pw;
        if (!g->has_bias)
            continue;
        float *pb = own(c, (size_t)g->oc * sizeof(float));
        if (pb == NULL)
            return -1;
        memcpy(pb, b[si], (size_t)g->oc * sizeof(float));
        c->pb[si] = pb;
    }
    return 0;
}

/* Input shape of stage s as n, channels, spatial dims (for chaining checks). */
static void stage_in(const onnx_kstage *s, int64_t *nc, int *nsp, const int64_t **in)
{
    int conv = s->kind == ONNX_KSTAGE_CONV;
    nc[0] = conv ? s->conv.n : s->pool.n;
    nc[1] = conv ? s->conv.ic : s->pool.c;
    *nsp = conv ? s->conv.nsp : s->pool.nsp;
    *in = conv ? s->conv.in : s->pool.in;
}

static void stage_out(const onnx_kstage *s, int64_t *nc, const int64_t **out)
{
    int conv = s->kind == ONNX_KSTAGE_CONV;
    nc[0] = conv ? s->conv.n : s->pool.n;
    nc[1] = conv ? s->conv.oc : s->pool.c;
    *out = conv ? s->conv.out : s->pool.out;
}

/* Intermediates live in the caller's scratch: refuse chains whose activations could not be
 * held at all (hostile pads or strides), before any size arithmetic can overflow. */
#define MAX_STAGE_ELEMS 17179869184.0 /* 2^34 floats, 64 GiB */

static int check_chain(int n, const onnx_kstage *st, const float *const *w, md_err *e)
{
    if (n < 1 || n > 64)
        return md_fail(e, MD_E_INTERNAL, NULL, "conv chain of %d stages", n);
    if ((w == NULL && n != 1) || st[0].kind != ONNX_KSTAGE_CONV)
        return md_fail(e, MD_E_INTERNAL, NULL, "a chain starts with a convolution, and "
                       "run-time weights need a single-stage chain");
    for (int i = 0; i < n; i++) {
        int rc = st[i].kind == ONNX_KSTAGE_CONV ? onnx__conv_check(&st[i].conv, e)
                                                : onnx__pool_check(&st[i].pool, e);
        if (rc != MD_OK)
            return rc;
        int64_t nc[2];
        const int64_t *dims;
        double elems;
        stage_out(&st[i], nc, &dims);
        elems = (double)nc[0] * (double)nc[1];
        for (int d = 0; d < (st[i].kind == ONNX_KSTAGE_CONV ? st[i].conv.nsp : st[i].pool.nsp);
             d++)
            elems *= (double)dims[d];
        if (elems > MAX_STAGE_ELEMS)
            return md_fail(e, MD_E_INVALID_PARAM, "X", "stage %d would produce %.3g values", i,
                           elems);
        if (i == 0)
            continue;
        int64_t a[2], b[2];
        int nsp;
        const int64_t *in, *out;
        stage_in(&st[i], a, &nsp, &in);
        stage_out(&st[i - 1], b, &out);
        int prev_nsp = st[i - 1].kind == ONNX_KSTAGE_CONV ? st[i - 1].conv.nsp : st[i - 1].pool.nsp;
        if (a[0] != b[0] || a[1] != b[1] || nsp != prev_nsp ||
            memcmp(in, out, sizeof(int64_t) * (size_t)nsp))
            return md_fail(e, MD_E_INVALID_PARAM, "W",
                           "stage %d does not take the previous one's output shape", i);
    }
    return MD_OK;
}

int onnx__chain_new(int n_stages, const onnx_kstage *st, const float *const *w,
                    const float *const *bias, onnx__conv **out, md_err *e)
{
    *out = NULL;
    int rc = check_chain(n_stages, st, w, e);
    if (rc != MD_OK)
        return rc;
    onnx__conv *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return md_fail(e, MD_E_NOMEM, NULL, "out of memory building a convolution");
    pthread_mutex_init(&c->mu, NULL);
    c->nstages = n_stages;
    c->runtime_weights = w == NULL;
    c->st = malloc(sizeof(*st) * (size_t)n_stages);
    c->steps = calloc((size_t)n_stages * 4 + 1, sizeof(kstep));
    c->owned = calloc((size_t)n_stages * 2, sizeof(void *));
    c->pw = calloc((size_t)n_stages, sizeof(float *));
    c->pb = calloc((size_t)n_stages, sizeof(float *));
    if (c->st == NULL || c->steps == NULL || c->owned == NULL || c->pw == NULL ||
        c->pb == NULL) {
        onnx__conv_free(c);
        return md_fail(e, MD_E_NOMEM, NULL, "out of memory building a convolution");
    }
    memcpy(c->st, st, sizeof(*st) * (size_t)n_stages);
    c->nthr = omp_get_max_threads();
    pthread_once(&g_engine_once, engine_init);
    c->dnnl = g_engine != NULL && !dnnl_disabled() && build_dnnl(c, w, bias) == 0;
    if (!c->dnnl) {
        drop_steps(c);
        setup_direct(c);
        if (!c->runtime_weights && keep_plain_weights(c, w, bias) != 0) {
            onnx__conv_free(c);
            return md_fail(e, MD_E_NOMEM, NULL, "out of memory building a convolution");
        }
    }
    *out = c;
    return MD_OK;
}

int onnx__conv_new(int n_stages, const onnx_kconv_geom *g, const float *const *w,
                   const float *const *bias, onnx__conv **out, md_err *e)
{
    *out = NULL;
    if (n_stages < 1 || n_stages > 64)
        return md_fail(e, MD_E_INTERNAL, NULL, "conv chain of %d stages", n_stages);
    onnx_kstage *st = calloc((size_t)n_stages, sizeof *st);
    if (st == NULL)
        return md_fail(e, MD_E_NOMEM, NULL, "out of memory building a convolution");
    for (int i = 0; i < n_stages; i++)
        st[i] = (onnx_kstage){.kind = ONNX_KSTAGE_CONV, .conv = g[i]};
    int rc = onnx__chain_new(n_stages, st, w, bias, out, e);
    free(st);
    return rc;
}

/* ---- running --------------------------------------------------------------------------------- */

size_t onnx__conv_scratch(const onnx__conv *c)
{
    return 2 * round_up(c->slot_bytes) + round_up(c->wscr_bytes) + round_up(c->pad_bytes) +
           round_up(c->wino_bytes);
}

int onnx__conv_uses_dnnl(const onnx__conv *c)
{
    return c->dnnl;
}

int onnx__conv_wino_stages(const onnx__conv *c)
{
    int n = 0;
    for (int i = 0; i < c->nsteps; i++)
        n += c->steps[i].wino != NULL;
    return n;
}

/* A context with one memory object per step argument, created on first use. */
static exec_ctx *new_ctx(const onnx__conv *c)
{
    exec_ctx *x = calloc(1, sizeof(*x));
    size_t n = (size_t)c->nsteps * MAX_ARGS;
    if (x == NULL)
        return NULL;
    x->mem = calloc(n, sizeof(dnnl_memory_t));
    x->eargs = calloc(n, sizeof(dnnl_exec_arg_t));
    int ok = x->mem != NULL && x->eargs != NULL &&
             dnnl_stream_create(&x->stream, g_engine, dnnl_stream_default_flags) == dnnl_success;
    for (int s = 0; ok && s < c->nsteps; s++)
        for (int a = 0; ok && a < c->steps[s].nargs; a++) {
            dnnl_memory_t *m = &x->mem[s * MAX_ARGS + a];
            ok = dnnl_memory_create(m, &c->steps[s].args[a].md, g_engine, DNNL_MEMORY_NONE) ==
                 dnnl_success;
            x->eargs[s * MAX_ARGS + a].arg = c->steps[s].args[a].arg;
            x->eargs[s * MAX_ARGS + a].memory = *m;
        }
    if (!ok) {
        free_ctx((onnx__conv *)c, x);
        return NULL;
    }
    return x;
}

static exec_ctx *take_ctx(onnx__conv *c)
{
    pthread_mutex_lock(&c->mu);
    exec_ctx *x = c->pool;
    if (x != NULL)
        c->pool = x->next;
    pthread_mutex_unlock(&c->mu);
    return x != NULL ? x : new_ctx(c);
}

static void give_ctx(onnx__conv *c, exec_ctx *x)
{
    pthread_mutex_lock(&c->mu);
    x->next = c->pool;
    c->pool = x;
    pthread_mutex_unlock(&c->mu);
}

/* The buffers of one run, indexed by enum bufref. */
typedef struct run_bufs {
    void *p[B_CONST];
} run_bufs;

static int run_steps(const onnx__conv *c, exec_ctx *x, const run_bufs *rb)
{
    for (int s = 0; s < c->nsteps; s++) {
        const kstep *st = &c->steps[s];
        if (st->wino != NULL) {
            /* our own kernel reads what the stream's previous primitives wrote */
            if (dnnl_stream_wait(x->stream) != dnnl_success)
                return -1;
            onnx__wino_run(st->wino, rb->p[st->win_in], rb->p[st->win_out], rb->p[B_WINO]);
            continue;
        }
        /* reorders split their work by the current thread count: keep them on this thread
         * (waking a team for a copy costs more than it saves, much more on a busy machine);
         * convolutions use the team size they were built for */
        onnx__kern_set_threads(st->serial ? 1 : c->nthr);
        for (int a = 0; a < st->nargs; a++) {
            const karg *ka = &st->args[a];
            void *p = ka->buf == B_CONST ? (void *)ka->cptr : rb->p[ka->buf];
            if (dnnl_memory_set_data_handle(x->mem[s * MAX_ARGS + a], p) != dnnl_success)
                return -1;
        }
        if (dnnl_primitive_execute(st->prim, x->stream, st->nargs, &x->eargs[s * MAX_ARGS]) !=
            dnnl_success)
            return -1;
    }
    return dnnl_stream_wait(x->stream) == dnnl_success ? 0 : -1;
}

static void run_direct(const onnx__conv *c, const float *x, const float *w, const float *bias,
                       float *y, char *scratch)
{
    const float *cur = x;
    for (int si = 0; si < c->nstages; si++) {
        float *out = si == c->nstages - 1
                         ? y
                         : (float *)(scratch + (size_t)(si % 2) * round_up(c->slot_bytes));
        const float *ws = c->runtime_weights ? w : c->pw[si];
        const float *bs = c->runtime_weights ? bias : c->pb[si];
        const onnx_kconv_geom *g = &c->st[si].conv;
        if (c->st[si].kind == ONNX_KSTAGE_POOL)
            onnx__pool_run(&c->st[si].pool, cur, out, NULL, 0);
        else
            onnx__conv_direct(g, cur, ws, g->has_bias ? bs : NULL, out);
        cur = out;
    }
}

int onnx__conv_run(const onnx__conv *c, const float *x, const float *w, const float *bias,
                   float *y, void *scratch, md_err *e)
{
    if (c->runtime_weights && (w == NULL || (c->st[0].conv.has_bias && bias == NULL)))
        return md_fail(e, MD_E_INTERNAL, "W", "convolution run without its weights");
    if (!c->dnnl) {
        run_direct(c, x, w, bias, y, scratch);
        return MD_OK;
    }
    char *s = scratch;
    size_t slot = round_up(c->slot_bytes);
    run_bufs rb = {.p = {
        [B_X] = (void *)x, [B_Y] = y, [B_SLOT0] = s, [B_SLOT1] = s + slot,
        [B_WRUN] = (void *)w, [B_BRUN] = (void *)bias, [B_WSCR] = s + 2 * slot,
        [B_PAD] = s + 2 * slot + round_up(c->wscr_bytes),
        [B_WINO] = s + 2 * slot + round_up(c->wscr_bytes) + round_up(c->pad_bytes)}};
    onnx__conv *mc = (onnx__conv *)c; /* only the context pool is touched (invariant 1) */
    exec_ctx *ctx = take_ctx(mc);
    if (ctx == NULL)
        return md_fail(e, MD_E_NOMEM, NULL, "out of memory running a convolution");
    int rc = run_steps(c, ctx, &rb);
    give_ctx(mc, ctx);
    if (rc != 0)
        return md_fail(e, MD_E_INTERNAL, NULL, "oneDNN failed to run a convolution");
    return MD_OK;
}
