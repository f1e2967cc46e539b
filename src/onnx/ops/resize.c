/* resize.c - Resize (opset 10, 11, 13) and Upsample (7, 9): nearest, linear and cubic
 * interpolation with every coordinate transformation mode, and Pad (constant, reflect, edge).
 *
 * Resize is separable: it is done one axis at a time, each pass a 1-D resampling along that
 * axis in double precision, skipping axes whose size and coordinates do not change. For each
 * output coordinate the pass uses at most 4 taps (index, weight) computed once per axis.
 * Out-of-range taps read the edge value, as in the ONNX reference; tf_crop_and_resize puts
 * extrapolation_value outside the region of interest.
 *
 * A nearest, integer-factor upsampling of H and W (Keras UpSampling2D: asymmetric coordinates,
 * floor) whose only reader is a 2-D Conv absorbs that Conv (and an activation after it) at load:
 * the pair then runs as kernels/upconv.c, on the low-resolution input, without ever making the
 * upsampled tensor (the x8 super-resolution nets spend most of their time in that Conv).
 * MODELD_ONNX_NO_UPCONV=1 (read at load) keeps them apart, to compare the two.
 * Invariant: a fused node's run computes exactly Conv(Resize(X)) as the two nodes would, up to the
 * order of float sums; everything that could differ (scales, mode, group, weights) is constant
 * and checked at load, and shapes are checked at run as the Conv would.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/kernels/fuse.h"
#include "onnx/kernels/kernels.h"
#include "onnx/onnx_int.h"

typedef enum coord_mode {
    C_HALF_PIXEL, C_PYTORCH_HALF, C_ALIGN, C_ASYM, C_TF_HALF_NEAREST, C_TF_CROP,
} coord_mode;
typedef enum interp { I_NEAREST, I_LINEAR, I_CUBIC } interp;
typedef enum near_mode { N_ROUND_FLOOR, N_ROUND_CEIL, N_FLOOR, N_CEIL } near_mode;

/* The Conv a Resize absorbed (see the file comment); all borrowed from the model. */
typedef struct upconv {
    const onnx_node *conv;    /* its attributes: pads, strides, dilations, auto_pad */
    int64_t scale[2];         /* integer factors of H and W */
    const onnx_tensor *w, *b; /* constant weights [oc][ic][kh][kw], bias or NULL */
    float *wp;                /* w packed by onnx__upconv_pack (model arena) */
    onnx_kact act;
} upconv;

typedef struct rs_params {
    const upconv *fused; /* NULL: a plain Resize */
    interp mode;
    coord_mode coord;
    near_mode nearest;
    double cubic_a;
    bool exclude_outside;
    double extrapolation;
} rs_params;

typedef struct tap {
    int64_t idx[4];
    double w[4];
    int n;
    bool outside; /* tf_crop_and_resize outside the ROI: extrapolation value */
} tap;

static int parse_enum(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* ---- Resize + Conv fusion ---- */

/* The constant scales of Resize n as integer factors of dims 2 and 3 (dims 0, 1 unchanged);
 * 0 when they are not constant, not 4 of them, or not such factors. */
static int const_int_scales(onnx_prep *p, const onnx_node *n, int64_t *s)
{
    int idx = n->opset >= 11 && strcmp(n->op_type, "Resize") == 0 ? 2 : 1;
    if (idx == 2 && n->n_in > 3 && n->in[3] >= 0)
        return 0; /* sizes */
    const onnx_tensor *t = onnx__prep_const(p, n, idx);
    if (t == NULL || (t->dtype != ONNX_FLOAT && t->dtype != ONNX_DOUBLE) ||
        onnx_tensor_numel(t) != 4)
        return 0;
    for (int i = 0; i < 4; i++) {
        double v = (float)onnx__get_f64(t, i); /* resize_target reads them as float too */
        if (!(v >= 1 && v <= 64 && v == floor(v)) || (i < 2 && v != 1))
            return 0;
        if (i >= 2)
            s[i - 2] = (int64_t)v;
    }
    return 1;
}

/* Whether c is a Conv that can run fused after our output: 2-D, group 1, constant float
 * weights and bias, attributes in range (a bad one is left to fail the Conv's own prepare). */
static int fusable_conv(onnx_prep *p, const onnx_node *n, const onnx_node *c)
{
    static const char *const pos[] = {"strides", "dilations", "kernel_shape"};
    md_err tmp;
    const int64_t *v;
    if (c->domain[0] != '\0' || strcmp(c->op_type, "Conv") != 0 || c->n_in < 2 ||
        c->in[0] != n->out[0] || c->in[1] == n->out[0] || (c->n_in > 2 && c->in[2] == n->out[0]))
        return 0;
    const onnx_tensor *w = onnx__prep_const(p, c, 1);
    const onnx_tensor *b = c->n_in > 2 && c->in[2] >= 0 ? onnx__prep_const(p, c, 2) : NULL;
    if (w == NULL || w->dtype != ONNX_FLOAT || w->rank != 4 || onnx_tensor_numel(w) < 1 ||
        (c->n_in > 2 && c->in[2] >= 0 &&
         (b == NULL || b->dtype != ONNX_FLOAT || b->rank != 1 || b->dims[0] != w->dims[0])))
        return 0;
    if (onnx__attr_int(c, "group", 1) != 1 || onnx__conv_attrs_check(c, &tmp) != MD_OK ||
        onnx__attr_ints_bounded(c, "pads", 0, &tmp) != MD_OK ||
        (onnx__attr_ints(c, "pads", &v) != 0 && onnx__attr_ints(c, "pads", &v) != 4))
        return 0;
    for (int a = 0; a < 3; a++) {
        size_t cnt = onnx__attr_ints(c, pos[a], &v);
        if ((cnt != 0 && cnt != 2) || onnx__attr_ints_bounded(c, pos[a], 1, &tmp) != MD_OK)
            return 0;
        if (a == 2 && cnt == 2 && (v[0] != w->dims[2] || v[1] != w->dims[3]))
            return 0;
    }
    return 1;
}

/* Absorb the Conv (and its activation) reading Resize n's output when the pair qualifies. */
static int fuse_conv(onnx_node *n, onnx_prep *p, rs_params *rp, md_err *err)
{
    int64_t s[2];
    const char *off = getenv("MODELD_ONNX_NO_UPCONV");
    if ((off && strcmp(off, "1") == 0) || rp->mode != I_NEAREST || rp->coord != C_ASYM ||
        rp->nearest != N_FLOOR || !const_int_scales(p, n, s))
        return MD_OK;
    onnx_node *c = onnx__prep_sole_consumer(p, n, 0);
    if (c == NULL || !fusable_conv(p, n, c))
        return MD_OK;
    upconv *u = onnx__prep_alloc(p, sizeof *u);
    const onnx_tensor *w = onnx__prep_const(p, c, 1);
    float *wp = onnx__prep_alloc(p, (size_t)onnx_tensor_numel(w) * sizeof(float));
    if (u == NULL || wp == NULL)
        return onnx__prep_fail(n, err, MD_E_NOMEM, NULL, "out of memory");
    onnx_kupconv_geom g = {.ic = w->dims[1], .oc = w->dims[0], .k = {w->dims[2], w->dims[3]}};
    onnx__upconv_pack(&g, w->data, wp);
    *u = (upconv){.conv = c, .scale = {s[0], s[1]}, .w = w, .wp = wp,
                  .b = c->n_in > 2 && c->in[2] >= 0 ? onnx__prep_const(p, c, 2) : NULL};
    int rc = onnx__prep_absorb(p, n, c, err);
    if (rc == MD_OK)
        rc = onnx__absorb_act(p, n, &u->act, err);
    if (rc == MD_OK)
        rp->fused = u;
    return rc;
}

static int prep_resize(onnx_node *n, onnx_prep *p, md_err *err)
{
    static const char *const modes[] = {"nearest", "linear", "cubic"};
    static const char *const coords[] = {"half_pixel", "pytorch_half_pixel", "align_corners",
                                         "asymmetric", "tf_half_pixel_for_nearest",
                                         "tf_crop_and_resize", "tf_half_pixel_for_nn"};
    static const char *const nears[] = {"round_prefer_floor", "round_prefer_ceil", "floor",
                                        "ceil"};
    rs_params *rp = onnx__prep_alloc(p, sizeof *rp);
    if (!rp)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    bool legacy = strcmp(n->op_type, "Upsample") == 0 || n->opset < 11;
    int m = parse_enum(onnx__attr_str(n, "mode", "nearest"), modes, 3);
    int c = parse_enum(onnx__attr_str(n, "coordinate_transformation_mode",
                                      legacy ? "asymmetric" : "half_pixel"), coords, 7);
    if (c == 6) /* the opset-11 name of tf_half_pixel_for_nearest */
        c = C_TF_HALF_NEAREST;
    int nm = parse_enum(onnx__attr_str(n, "nearest_mode", legacy ? "floor" : "round_prefer_floor"),
                        nears, 4);
    if (m < 0 || (legacy && m == I_CUBIC))
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "mode", "mode '%.30s' is not supported",
                               onnx__attr_str(n, "mode", ""));
    if (c < 0)
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "coordinate_transformation_mode",
                               "coordinate mode '%.40s' is not supported",
                               onnx__attr_str(n, "coordinate_transformation_mode", ""));
    if (nm < 0)
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "nearest_mode", "bad nearest_mode");
    if (onnx__attr_int(n, "antialias", 0) || onnx__attr(n, "axes") ||
        strcmp(onnx__attr_str(n, "keep_aspect_ratio_policy", "stretch"), "stretch") != 0)
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "antialias",
                               "antialias, axes and keep_aspect_ratio_policy are not supported");
    rp->mode = (interp)m;
    rp->coord = (coord_mode)c;
    rp->nearest = (near_mode)nm;
    rp->cubic_a = onnx__attr_float(n, "cubic_coeff_a", -0.75f);
    rp->exclude_outside = onnx__attr_int(n, "exclude_outside", 0) != 0;
    rp->extrapolation = onnx__attr_float(n, "extrapolation_value", 0.f);
    n->priv = rp;
    return fuse_conv(n, p, rp, err);
}

/* Like the ONNX reference, the "resized length" in the formulas is in * scale, unrounded. */
static double orig_coord(const rs_params *p, int64_t i, int64_t in, double scale, double r0,
                         double r1)
{
    double out = scale * (double)in;
    switch (p->coord) {
    case C_HALF_PIXEL: return (i + 0.5) / scale - 0.5;
    case C_PYTORCH_HALF: return out > 1 ? (i + 0.5) / scale - 0.5 : 0;
    case C_ALIGN: return out == 1 ? 0 : (double)i * (double)(in - 1) / (out - 1);
    case C_ASYM: return i / scale;
    case C_TF_HALF_NEAREST: return (i + 0.5) / scale;
    case C_TF_CROP:
        return out > 1 ? r0 * (in - 1) + i * (r1 - r0) * (in - 1) / (out - 1)
                       : 0.5 * (r0 + r1) * (in - 1);
    }
    return 0;
}

static double cubic_w(double a, double x)
{
    x = fabs(x);
    if (x <= 1)
        return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2)
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0;
}

static int64_t clampi(int64_t v, int64_t n) { return v < 0 ? 0 : v >= n ? n - 1 : v; }

static void make_tap(const rs_params *p, double x, int64_t in, tap *t)
{
    memset(t, 0, sizeof *t);
    if (isnan(x)) /* from a hostile roi: out of range, never an undefined cast */
        x = -1e15;
    x = fmin(fmax(x, -1e15), 1e15);
    if (p->coord == C_TF_CROP && (x < 0 || x > (double)(in - 1))) {
        t->outside = true;
        return;
    }
    if (p->mode == I_NEAREST) {
        double f = floor(x);
        int64_t v = x == f ? (int64_t)f
                  : p->nearest == N_ROUND_FLOOR ? (int64_t)ceil(x - 0.5)
                  : p->nearest == N_ROUND_CEIL  ? (int64_t)floor(x + 0.5)
                  : p->nearest == N_FLOOR       ? (int64_t)f
                                                : (int64_t)ceil(x);
        t->idx[0] = clampi(v, in);
        t->w[0] = 1;
        t->n = 1;
        return;
    }
    int64_t x0 = (int64_t)floor(x);
    double r = x - (double)x0;
    if (p->mode == I_LINEAR) {
        t->idx[0] = clampi(x0, in);
        t->idx[1] = clampi(x0 + 1, in);
        t->w[0] = 1 - r;
        t->w[1] = r;
        t->n = 2;
        return;
    }
    double sum = 0;
    for (int j = 0; j < 4; j++) {
        int64_t v = x0 - 1 + j;
        double w = cubic_w(p->cubic_a, r - (j - 1));
        if (p->exclude_outside && (v < 0 || v >= in))
            w = 0;
        t->idx[j] = clampi(v, in);
        t->w[j] = w;
        sum += w;
    }
    if (p->exclude_outside && sum != 0)
        for (int j = 0; j < 4; j++)
            t->w[j] /= sum;
    t->n = 4;
}

/* One pass along axis: src [outer, in, inner] -> dst [outer, out, inner]. */
static void pass(const double *src, double *dst, int64_t outer, int64_t in, int64_t out,
                 int64_t inner, const tap *taps, double extrap)
{
    for (int64_t a = 0; a < outer; a++)
        for (int64_t i = 0; i < out; i++) {
            const tap *t = &taps[i];
            double *d = dst + (a * out + i) * inner;
            for (int64_t c = 0; c < inner; c++) {
                double v = 0;
                if (t->outside)
                    v = extrap;
                for (int j = 0; j < t->n; j++)
                    v += t->w[j] * src[(a * in + t->idx[j]) * inner + c];
                d[c] = v;
            }
        }
}

/* Scales / sizes from the node's inputs or attributes; fills out dims and scales. */
static int resize_target(const onnx_node *n, onnx_kctx *k, const onnx_tensor *x, double *scale,
                         int64_t *od, double *roi)
{
    int r = x->rank;
    const onnx_tensor *sc = NULL, *sz = NULL, *ro = NULL;
    bool up = strcmp(n->op_type, "Upsample") == 0;
    if (up && n->opset < 9) {
        const float *v;
        size_t c = onnx__attr_floats(n, "scales", &v);
        if ((int)c != r)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "scales must have one entry per dim");
        for (int i = 0; i < r; i++)
            scale[i] = v[i];
    } else if (up || n->opset < 11) {
        sc = k->in[1];
    } else {
        ro = k->n_in > 1 ? k->in[1] : NULL;
        sc = k->n_in > 2 ? k->in[2] : NULL;
        sz = k->n_in > 3 ? k->in[3] : NULL;
        if (sc && onnx_tensor_numel(sc) == 0)
            sc = NULL;
        if (sz && onnx_tensor_numel(sz) == 0)
            sz = NULL;
    }
    for (int i = 0; i < r; i++) {
        roi[i] = 0;
        roi[r + i] = 1;
    }
    if (ro && onnx_tensor_numel(ro) == 2 * r)
        for (int i = 0; i < 2 * r; i++)
            roi[i] = onnx__get_f64(ro, i);
    if ((sc == NULL) == (sz == NULL) && !(up && n->opset < 9))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "exactly one of scales and sizes is needed");
    if (sc && (onnx_tensor_numel(sc) != r || (sc->dtype != ONNX_FLOAT && sc->dtype != ONNX_DOUBLE)))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "scales must be float, one per dim");
    if (sz && (onnx_tensor_numel(sz) != r || sz->dtype != ONNX_INT64))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "sizes must be int64, one per dim");
    for (int i = 0; i < r; i++) {
        if (sz) {
            od[i] = onnx__get_i64(sz, i);
            if (od[i] < 0 || od[i] > ((int64_t)1 << 31))
                return onnx__kfail(k, MD_E_INVALID_PARAM, "bad size %lld", (long long)od[i]);
            scale[i] = x->dims[i] ? (double)od[i] / (double)x->dims[i] : 1;
            continue;
        }
        if (sc)
            scale[i] = (float)onnx__get_f64(sc, i);
        if (!(scale[i] > 0) || scale[i] > 1e6)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "scale must be positive");
        double len = (double)x->dims[i] * (roi[r + i] - roi[i]);
        const rs_params *p = n->priv;
        double want = floor((p->coord == C_TF_CROP ? len : (double)x->dims[i]) * scale[i]);
        if (!(want >= 0 && want <= (double)((int64_t)1 << 31)))
            return onnx__kfail(k, MD_E_INVALID_PARAM, "output size out of range on dim %d", i);
        od[i] = (int64_t)want;
    }
    return MD_OK;
}

/* Index map of one axis for nearest mode: *ok = 0 when a tap is not a single in-range index. */
static void nearest_map(const rs_params *p, int64_t in, int64_t out, double scale, double r0,
                        double r1, int64_t *map, int *ok)
{
    for (int64_t i = 0; i < out && *ok; i++) {
        tap t;
        make_tap(p, orig_coord(p, i, in, scale, r0, r1), in, &t);
        *ok = t.n == 1 && !t.outside;
        map[i] = t.idx[0];
    }
}

/* The common super-resolution case: float nearest resizing of the last two axes only (NCHW
 * upsampling). A gather row by row, repeated rows copied, instead of the general double-precision
 * passes (which took a third of an ESRGAN-slim run and 16 bytes of scratch per output value).
 * Returns 1 when it handled the node, 0 to fall back, -1 out of memory. */
static int resize_nearest_2d(const rs_params *p, onnx_kctx *k, const onnx_tensor *x,
                             onnx_tensor *o, const double *scale, const double *roi)
{
    int r = x->rank;
    if (p->mode != I_NEAREST || x->dtype != ONNX_FLOAT || r < 2 || p->coord == C_TF_CROP)
        return 0;
    int64_t lead = 1;
    for (int d = 0; d < r - 2; d++) {
        if (o->dims[d] != x->dims[d] || scale[d] != 1)
            return 0;
        lead *= x->dims[d];
    }
    int64_t H = x->dims[r - 2], W = x->dims[r - 1], OH = o->dims[r - 2], OW = o->dims[r - 1];
    int64_t most = OH + OW;
    for (int d = 0; d < r - 2; d++)
        most = x->dims[d] > most ? x->dims[d] : most;
    int64_t *iy = onnx__scratch(k, (size_t)(2 * most + 1) * sizeof(int64_t));
    if (!iy)
        return -1;
    int64_t *ix = iy + OH;
    int good = 1;
    for (int d = 0; d < r - 2 && good; d++) { /* the leading axes must map i -> i */
        nearest_map(p, x->dims[d], x->dims[d], 1, roi[d], roi[r + d], iy, &good);
        for (int64_t i = 0; i < x->dims[d] && good; i++)
            good = iy[i] == i;
    }
    nearest_map(p, H, OH, scale[r - 2], roi[r - 2], roi[2 * r - 2], iy, &good);
    nearest_map(p, W, OW, scale[r - 1], roi[r - 1], roi[2 * r - 1], ix, &good);
    if (!good)
        return 0;
    const float *src = x->data;
    float *dst = o->data;
    for (int64_t pl = 0; pl < lead; pl++) {
        const float *sp = src + pl * H * W;
        float *dp = dst + pl * OH * OW;
        for (int64_t y = 0; y < OH; y++) {
            float *row = dp + y * OW;
            if (y > 0 && iy[y] == iy[y - 1]) {
                memcpy(row, row - OW, (size_t)OW * sizeof(float));
                continue;
            }
            const float *s = sp + iy[y] * W;
            for (int64_t i = 0; i < OW; i++)
                row[i] = s[ix[i]];
        }
    }
    return 1;
}

/* The fused pair's geometry for input x: the Conv's rules applied to the upsampled size. */
static int upconv_geom(const upconv *u, const onnx_tensor *x, onnx_kupconv_geom *g, onnx_kctx *k)
{
    const onnx_node *c = u->conv;
    const int64_t *st, *dl, *pd;
    size_t nst = onnx__attr_ints(c, "strides", &st), ndl = onnx__attr_ints(c, "dilations", &dl);
    size_t npd = onnx__attr_ints(c, "pads", &pd);
    int autopad = onnx__autopad_parse(onnx__attr_str(c, "auto_pad", "NOTSET"));
    if (x->dtype != ONNX_FLOAT || x->rank != 4)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X: the upsampled convolution needs a float "
                           "input of rank 4");
    *g = (onnx_kupconv_geom){.n = x->dims[0], .ic = x->dims[1], .oc = u->w->dims[0],
                             .has_bias = u->b != NULL, .act = u->act};
    if (g->ic != u->w->dims[1])
        return onnx__kfail(k, MD_E_INVALID_PARAM, "W: weights expect %lld input channels, X has "
                           "%lld", (long long)u->w->dims[1], (long long)g->ic);
    for (int d = 0; d < 2; d++) {
        if (x->dims[2 + d] < 1 || x->dims[2 + d] > ((int64_t)1 << 30) / u->scale[d])
            return onnx__kfail(k, MD_E_INVALID_PARAM, "X: every spatial dim must be in "
                               "1..2^30 once upsampled");
        g->in[d] = x->dims[2 + d];
        g->scale[d] = u->scale[d];
        g->k[d] = u->w->dims[2 + d];
        g->stride[d] = nst ? st[d] : 1;
        g->dil[d] = ndl ? dl[d] : 1;
        g->pad_begin[d] = npd ? pd[d] : 0;
        g->pad_end[d] = npd ? pd[2 + d] : 0;
        g->out[d] = onnx__spatial_out(autopad, 0, g->in[d] * g->scale[d],
                                      (g->k[d] - 1) * g->dil[d] + 1, g->stride[d],
                                      &g->pad_begin[d], &g->pad_end[d]);
        if (g->out[d] < 1)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "kernel_shape: kernel larger than the "
                               "padded input");
    }
    md_err e;
    if (g->n > 0 && onnx__upconv_check(g, &e))
        return onnx__kfail(k, e.code, "%s: %s", e.field, e.msg);
    return MD_OK;
}

/* Resize + Conv (+ activation) absorbed at load: kernels/upconv.c on the low-res input. */
static int run_upconv(const upconv *u, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    onnx_kupconv_geom g;
    onnx_tensor *y;
    int rc = upconv_geom(u, x, &g, k);
    int64_t od[4] = {g.n, g.oc, g.out[0], g.out[1]};
    if (rc == MD_OK)
        rc = onnx__output(k, 0, ONNX_FLOAT, 4, od, &y);
    if (rc != MD_OK || g.n == 0)
        return rc;
    void *scratch = onnx__scratch(k, onnx__upconv_scratch(&g));
    if (scratch == NULL)
        return MD_E_NOMEM;
    md_err e;
    onnx__kern_set_threads(onnx__kern_threads_for(k->threads, onnx__upconv_macs(&g)));
    rc = onnx__upconv_run(&g, x->data, u->wp, u->b ? u->b->data : NULL, y->data, scratch, &e);
    return rc ? onnx__kfail(k, rc, "%s", e.msg) : MD_OK;
}

static int run_resize(const onnx_node *n, onnx_kctx *k)
{
    const rs_params *p = n->priv;
    const onnx_tensor *x = k->in[0];
    int r = x->rank;
    if (p->fused)
        return run_upconv(p->fused, k);
    if (x->dtype == ONNX_STRING || x->dtype == ONNX_BOOL || x->dtype == ONNX_FLOAT16)
        return onnx__kfail(k, MD_E_UNSUPPORTED, "type %s", onnx_dtype_name(x->dtype));
    double scale[ONNX_MAX_RANK], roi[2 * ONNX_MAX_RANK];
    int64_t od[ONNX_MAX_RANK];
    int rc = resize_target(n, k, x, scale, od, roi);
    if (rc)
        return rc;
    onnx_tensor *o;
    if ((rc = onnx__output(k, 0, x->dtype, r, od, &o)))
        return rc;
    int64_t in_n = onnx_tensor_numel(x), out_n = onnx_tensor_numel(o), big = in_n, maxd = 1;
    int64_t cur[ONNX_MAX_RANK];
    memcpy(cur, x->dims, sizeof cur);
    for (int i = 0; i < r; i++) {
        cur[i] = od[i];
        int64_t c = onnx__numel(r, cur);
        big = c > big ? c : big;
        maxd = od[i] > maxd ? od[i] : maxd;
    }
    if (out_n == 0)
        return MD_OK;
    if (in_n == 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "cannot resize an empty tensor");
    int fast = resize_nearest_2d(p, k, x, o, scale, roi);
    if (fast != 0)
        return fast > 0 ? MD_OK : MD_E_NOMEM;
    double *a = onnx__scratch(k, (size_t)big * sizeof(double));
    double *b = onnx__scratch(k, (size_t)big * sizeof(double));
    tap *taps = onnx__scratch(k, (size_t)maxd * sizeof(tap));
    if (!a || !b || !taps)
        return MD_E_NOMEM;
    for (int64_t i = 0; i < in_n; i++)
        a[i] = onnx__get_f64(x, i);
    memcpy(cur, x->dims, sizeof cur);
    for (int d = 0; d < r; d++) {
        int64_t in = cur[d], out = od[d], outer = 1, inner = 1;
        bool ident = in == out && p->coord != C_TF_CROP;
        for (int64_t i = 0; i < out; i++) {
            make_tap(p, orig_coord(p, i, in, scale[d], roi[d], roi[r + d]), in, &taps[i]);
            ident = ident && taps[i].n >= 1 && !taps[i].outside && taps[i].idx[0] == i &&
                    (taps[i].w[0] == 1 || taps[i].n == 1);
            for (int j = 1; ident && j < taps[i].n; j++)
                ident = taps[i].w[j] == 0;
        }
        if (ident)
            continue;
        for (int j = 0; j < d; j++)
            outer *= cur[j];
        for (int j = d + 1; j < r; j++)
            inner *= cur[j];
        pass(a, b, outer, in, out, inner, taps, p->extrapolation);
        cur[d] = out;
        double *t = a;
        a = b;
        b = t;
    }
    bool integral = x->dtype != ONNX_FLOAT && x->dtype != ONNX_DOUBLE;
    for (int64_t i = 0; i < out_n; i++)
        onnx__set_f64(o, i, integral ? nearbyint(a[i]) : a[i]);
    return MD_OK;
}

/* ---- Pad ---- */

typedef enum pad_mode { P_CONSTANT, P_REFLECT, P_EDGE } pad_mode;

static int prep_pad(onnx_node *n, onnx_prep *p, md_err *err)
{
    (void)p;
    static const char *const modes[] = {"constant", "reflect", "edge"};
    if (parse_enum(onnx__attr_str(n, "mode", "constant"), modes, 3) < 0)
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "mode", "pad mode '%.30s'",
                               onnx__attr_str(n, "mode", ""));
    return MD_OK;
}

/* Source index along one axis for output index i, or -1 for the constant. */
static int64_t pad_src(pad_mode m, int64_t i, int64_t before, int64_t in)
{
    int64_t s = i - before;
    if (s >= 0 && s < in)
        return s;
    if (m == P_CONSTANT || in == 0)
        return -1;
    if (m == P_EDGE || in == 1)
        return s < 0 ? 0 : in - 1;
    int64_t period = 2 * (in - 1);
    s %= period;
    if (s < 0)
        s += period;
    return s < in ? s : period - s;
}

static int run_pad(const onnx_node *n, onnx_kctx *k)
{
    static const char *const modes[] = {"constant", "reflect", "edge"};
    const onnx_tensor *x = k->in[0];
    int r = x->rank;
    pad_mode m = (pad_mode)parse_enum(onnx__attr_str(n, "mode", "constant"), modes, 3);
    int64_t pads[2 * ONNX_MAX_RANK];
    double cval = 0;
    if (n->opset < 11) {
        const int64_t *v;
        size_t c = onnx__attr_ints(n, n->opset < 2 ? "paddings" : "pads", &v);
        if ((int)c != 2 * r)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "pads must have 2*rank entries");
        memcpy(pads, v, c * sizeof *v);
        cval = onnx__attr_float(n, "value", 0.f);
    } else {
        const onnx_tensor *pt = k->in[1];
        if (pt->dtype != ONNX_INT64 || onnx_tensor_numel(pt) != 2 * r)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "pads must be int64 with 2*rank entries");
        memcpy(pads, pt->data, sizeof(int64_t) * 2 * (size_t)r);
        if (k->n_in > 2 && k->in[2] && onnx_tensor_numel(k->in[2]) >= 1)
            cval = onnx__get_f64(k->in[2], 0);
    }
    int64_t od[ONNX_MAX_RANK], total_len = 0;
    for (int i = 0; i < r; i++) {
        od[i] = x->dims[i] + pads[i] + pads[r + i];
        if (pads[i] < -x->dims[i] || pads[r + i] < -x->dims[i] || od[i] < 0 ||
            od[i] > ((int64_t)1 << 31))
            return onnx__kfail(k, MD_E_INVALID_PARAM, "pads out of range for dim %d", i);
        if (m == P_REFLECT && x->dims[i] == 0 && od[i] > 0)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "cannot reflect-pad an empty dim");
        total_len += od[i];
    }
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, r, od, &o);
    if (rc)
        return rc;
    int64_t total = onnx_tensor_numel(o);
    if (total == 0)
        return MD_OK;
    /* Per-axis maps from output index to source offset contribution (-1: constant). */
    int64_t *map = onnx__scratch(k, (size_t)(total_len + 1) * sizeof(int64_t));
    if (!map)
        return MD_E_NOMEM;
    int64_t *mp[ONNX_MAX_RANK], s = 1;
    int64_t off = 0;
    for (int i = 0; i < r; i++) {
        mp[i] = map + off;
        off += od[i];
    }
    for (int i = r - 1; i >= 0; i--) {
        for (int64_t j = 0; j < od[i]; j++) {
            int64_t src = pad_src(m, j, pads[i], x->dims[i]);
            mp[i][j] = src < 0 ? -1 : src * s;
        }
        s *= x->dims[i];
    }
    size_t es = onnx_dtype_size(x->dtype);
    int64_t idx[ONNX_MAX_RANK] = {0};
    for (int64_t e = 0; e < total; e++) {
        int64_t so = 0;
        for (int i = 0; i < r && so >= 0; i++)
            so = mp[i][idx[i]] < 0 ? -1 : so + mp[i][idx[i]];
        if (so >= 0)
            memcpy((char *)o->data + (size_t)e * es, (const char *)x->data + (size_t)so * es, es);
        else
            onnx__set_f64(o, e, cval);
        for (int i = r - 1; i >= 0; i--) {
            if (++idx[i] < od[i])
                break;
            idx[i] = 0;
        }
    }
    return MD_OK;
}

ONNX_OPS(resize) = {
    {.domain = "", .op_type = "Upsample", .opset_min = 7, .opset_max = 8, .min_in = 1,
     .max_in = 1, .min_out = 1, .max_out = 1, .attrs = "mode:s scales:F",
     .prepare = prep_resize, .run = run_resize},
    {.domain = "", .op_type = "Upsample", .opset_min = 9, .opset_max = 9, .min_in = 2,
     .max_in = 2, .min_out = 1, .max_out = 1, .attrs = "mode:s",
     .prepare = prep_resize, .run = run_resize},
    {.domain = "", .op_type = "Resize", .opset_min = 10, .opset_max = 10, .min_in = 2,
     .max_in = 2, .min_out = 1, .max_out = 1, .attrs = "mode:s",
     .prepare = prep_resize, .run = run_resize},
    {.domain = "", .op_type = "Resize", .opset_min = 11, .min_in = 1, .max_in = 4, .min_out = 1,
     .max_out = 1,
     .attrs = "mode:s coordinate_transformation_mode:s nearest_mode:s cubic_coeff_a:f "
              "exclude_outside:i extrapolation_value:f antialias:i axes:I "
              "keep_aspect_ratio_policy:s",
     .prepare = prep_resize, .run = run_resize},
    {.domain = "", .op_type = "Pad", .opset_min = 1, .opset_max = 10, .min_in = 1, .max_in = 1,
     .min_out = 1, .max_out = 1, .attrs = "mode:s pads:I paddings:I value:f",
     .prepare = prep_pad, .run = run_pad},
    {.domain = "", .op_type = "Pad", .opset_min = 11, .min_in = 2, .max_in = 3, .min_out = 1,
     .max_out = 1, .attrs = "mode:s", .prepare = prep_pad, .run = run_pad},
    ONNX_OPS_END,
};
