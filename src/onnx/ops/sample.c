/* sample.c - GridSample (bilinear, nearest, bicubic; zeros, border, reflection padding),
 * RoiAlign, and the spectral operators DFT, STFT and MelWeightMatrix.
 *
 * GridSample follows the ONNX reference: grid coordinates in [-1, 1] are mapped to pixel
 * coordinates (align_corners decides whether -1 is the first pixel's centre or its edge),
 * border/reflection padding move the coordinate into range, and taps that still fall outside
 * read 0 (zeros), the nearest edge (border) or their reflection. The DFTs are direct O(n^2)
 * sums in double, exact enough and bounded by the output size.
 */
#include <math.h>
#include <string.h>

#include "onnx/onnx_int.h"

typedef enum gmode { G_BILINEAR, G_NEAREST, G_BICUBIC } gmode;
typedef enum gpad { P_ZEROS, P_BORDER, P_REFLECTION } gpad;

typedef struct gs {
    gmode mode;
    gpad pad;
    bool align;
    const onnx_tensor *x;
    int64_t H, W;
    double lo[2], hi[2]; /* reflection bounds for y, x */
} gs;

static double reflect(double x, double lo, double hi)
{
    double rng = hi - lo;
    if (rng <= 0)
        return lo;
    if (x < lo) {
        double dx = lo - x;
        int64_t n = (int64_t)(dx / rng);
        double r = dx - (double)n * rng;
        return n % 2 == 0 ? lo + r : hi - r;
    }
    if (x > hi) {
        double dx = x - hi;
        int64_t n = (int64_t)(dx / rng);
        double r = dx - (double)n * rng;
        return n % 2 == 0 ? hi - r : lo + r;
    }
    return x;
}

static double pixel(const gs *g, int64_t base, int64_t r, int64_t c)
{
    if (r < 0 || r >= g->H || c < 0 || c >= g->W) {
        if (g->pad == P_ZEROS)
            return 0;
        if (g->pad == P_BORDER) {
            r = r < 0 ? 0 : r >= g->H ? g->H - 1 : r;
            c = c < 0 ? 0 : c >= g->W ? g->W - 1 : c;
        } else {
            r = (int64_t)reflect((double)r, g->lo[0], g->hi[0]);
            c = (int64_t)reflect((double)c, g->lo[1], g->hi[1]);
            r = r < 0 ? 0 : r >= g->H ? g->H - 1 : r;
            c = c < 0 ? 0 : c >= g->W ? g->W - 1 : c;
        }
    }
    return onnx__get_f64(g->x, base + r * g->W + c);
}

static void cubic_coeffs(double t, double *w)
{
    const double a = -0.75;
    double x[4] = {t + 1, t, 1 - t, 2 - t};
    for (int i = 0; i < 4; i++) {
        double v = fabs(x[i]);
        w[i] = v <= 1 ? ((a + 2) * v - (a + 3)) * v * v + 1
             : v < 2  ? ((a * v - 5 * a) * v + 8 * a) * v - 4 * a
                      : 0;
    }
}

static double sample(const gs *g, int64_t base, double y, double x)
{
    /* Grid values are data: keep them finite and small enough to convert to integers. */
    y = isnan(y) ? -1e9 : fmin(fmax(y, -1e9), 1e9);
    x = isnan(x) ? -1e9 : fmin(fmax(x, -1e9), 1e9);
    if (g->pad == P_BORDER) {
        y = fmin(fmax(y, 0), (double)(g->H - 1));
        x = fmin(fmax(x, 0), (double)(g->W - 1));
    } else if (g->pad == P_REFLECTION) {
        y = reflect(y, g->lo[0], g->hi[0]);
        x = reflect(x, g->lo[1], g->hi[1]);
    }
    if (g->mode == G_NEAREST)
        return pixel(g, base, (int64_t)nearbyint(y), (int64_t)nearbyint(x));
    double y0 = floor(y), x0 = floor(x), ty = y - y0, tx = x - x0;
    int64_t r0 = (int64_t)y0, c0 = (int64_t)x0;
    if (g->mode == G_BILINEAR)
        return (1 - ty) * ((1 - tx) * pixel(g, base, r0, c0) + tx * pixel(g, base, r0, c0 + 1)) +
               ty * ((1 - tx) * pixel(g, base, r0 + 1, c0) + tx * pixel(g, base, r0 + 1, c0 + 1));
    double wy[4], wx[4], v = 0;
    cubic_coeffs(ty, wy);
    cubic_coeffs(tx, wx);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            v += wy[i] * wx[j] * pixel(g, base, r0 - 1 + i, c0 - 1 + j);
    return v;
}

static int prep_gridsample(onnx_node *n, onnx_prep *p, md_err *err)
{
    (void)p;
    const char *m = onnx__attr_str(n, "mode", "bilinear"), *pm = onnx__attr_str(n, "padding_mode", "zeros");
    if ((strcmp(m, "bilinear") && strcmp(m, "nearest") && strcmp(m, "bicubic")) ||
        (strcmp(pm, "zeros") && strcmp(pm, "border") && strcmp(pm, "reflection")))
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "mode", "mode '%.20s' / padding '%.20s'",
                               m, pm);
    return MD_OK;
}

static int run_gridsample(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0], *grid = k->in[1];
    if (x->rank != 4 || grid->rank != 4 || grid->dims[3] != 2 || grid->dims[0] != x->dims[0] ||
        (x->dtype != ONNX_FLOAT && x->dtype != ONNX_DOUBLE))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X [N, C, H, W] and grid [N, H, W, 2] expected");
    const char *m = onnx__attr_str(n, "mode", "bilinear"), *pm = onnx__attr_str(n, "padding_mode", "zeros");
    gs g = {.mode = strcmp(m, "nearest") == 0 ? G_NEAREST : strcmp(m, "bicubic") == 0 ? G_BICUBIC : G_BILINEAR,
            .pad = strcmp(pm, "border") == 0 ? P_BORDER : strcmp(pm, "reflection") == 0 ? P_REFLECTION : P_ZEROS,
            .align = onnx__attr_int(n, "align_corners", 0) != 0, .x = x, .H = x->dims[2], .W = x->dims[3]};
    g.lo[0] = g.lo[1] = g.align ? 0 : -0.5;
    g.hi[0] = g.align ? (double)g.H - 1 : (double)g.H - 0.5;
    g.hi[1] = g.align ? (double)g.W - 1 : (double)g.W - 0.5;
    int64_t N = x->dims[0], C = x->dims[1], Ho = grid->dims[1], Wo = grid->dims[2];
    int64_t od[4] = {N, C, Ho, Wo};
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, 4, od, &o);
    if (rc)
        return rc;
    for (int64_t b = 0; b < N; b++)
        for (int64_t i = 0; i < Ho; i++)
            for (int64_t j = 0; j < Wo; j++) {
                int64_t gi = ((b * Ho + i) * Wo + j) * 2;
                double gx = onnx__get_f64(grid, gi), gy = onnx__get_f64(grid, gi + 1);
                double px = g.align ? (gx + 1) / 2 * (double)(g.W - 1) : ((gx + 1) * (double)g.W - 1) / 2;
                double py = g.align ? (gy + 1) / 2 * (double)(g.H - 1) : ((gy + 1) * (double)g.H - 1) / 2;
                for (int64_t c = 0; c < C; c++)
                    onnx__set_f64(o, ((b * C + c) * Ho + i) * Wo + j,
                                  sample(&g, (b * C + c) * g.H * g.W, py, px));
            }
    return MD_OK;
}

/* ---- DFT / STFT ---- */

/* One transform of n_in complex samples (re, im; stride in elements) to n_out bins. */
static void dft1(const double *re, const double *im, int64_t len, int64_t bins, bool inverse,
                 double *ore, double *oim)
{
    double sign = inverse ? 1 : -1;
    for (int64_t kk = 0; kk < bins; kk++) {
        double sr = 0, si = 0;
        for (int64_t t = 0; t < len; t++) {
            double ang = sign * 2 * M_PI * (double)(kk * t % (len ? len : 1)) / (double)len;
            double c = cos(ang), s = sin(ang);
            sr += re[t] * c - im[t] * s;
            si += re[t] * s + im[t] * c;
        }
        ore[kk] = inverse ? sr / (double)len : sr;
        oim[kk] = inverse ? si / (double)len : si;
    }
}

static int run_dft(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    int axis;
    if (x->rank < 2 || (x->dims[x->rank - 1] != 1 && x->dims[x->rank - 1] != 2) ||
        onnx__norm_axis(onnx__attr_int(n, "axis", 1), x->rank - 1, 0, &axis) != 0 ||
        (x->dtype != ONNX_FLOAT && x->dtype != ONNX_DOUBLE))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "input [..., signal, 1|2] float expected");
    bool inverse = onnx__attr_int(n, "inverse", 0) != 0, onesided = onnx__attr_int(n, "onesided", 0) != 0;
    int64_t sig = x->dims[axis], len = sig;
    if (k->n_in > 1 && k->in[1] && onnx_tensor_numel(k->in[1]) == 1)
        len = onnx__get_i64(k->in[1], 0);
    if (len <= 0 || len > (1 << 20))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "dft_length out of range");
    int64_t bins = onesided ? len / 2 + 1 : len, cplx = x->dims[x->rank - 1];
    int64_t od[ONNX_MAX_RANK], outer = 1, inner = 1;
    memcpy(od, x->dims, sizeof od);
    od[axis] = bins;
    od[x->rank - 1] = 2;
    for (int i = 0; i < x->rank - 1; i++)
        if (i != axis)
            *(i < axis ? &outer : &inner) *= x->dims[i];
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, x->rank, od, &o);
    double *buf = rc ? NULL : onnx__scratch(k, (size_t)(2 * len + 2 * bins) * sizeof(double));
    if (rc || !buf)
        return rc ? rc : MD_E_NOMEM;
    double *re = buf, *im = re + len, *ore = im + len, *oim = ore + bins;
    for (int64_t a = 0; a < outer; a++)
        for (int64_t c = 0; c < inner; c++) {
            for (int64_t t = 0; t < len; t++) {
                int64_t e = ((a * sig + t) * inner + c) * cplx;
                re[t] = t < sig ? onnx__get_f64(x, e) : 0;
                im[t] = t < sig && cplx == 2 ? onnx__get_f64(x, e + 1) : 0;
            }
            dft1(re, im, len, bins, inverse, ore, oim);
            for (int64_t b = 0; b < bins; b++) {
                int64_t e = ((a * bins + b) * inner + c) * 2;
                onnx__set_f64(o, e, ore[b]);
                onnx__set_f64(o, e + 1, oim[b]);
            }
        }
    return MD_OK;
}

static int run_stft(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0], *step = k->in[1];
    const onnx_tensor *win = k->n_in > 2 ? k->in[2] : NULL, *fl = k->n_in > 3 ? k->in[3] : NULL;
    if (x->rank != 3 || (x->dims[2] != 1 && x->dims[2] != 2) || onnx_tensor_numel(step) != 1 ||
        (x->dtype != ONNX_FLOAT && x->dtype != ONNX_DOUBLE))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "signal [batch, length, 1|2] expected");
    int64_t B = x->dims[0], L = x->dims[1], cplx = x->dims[2], hop = onnx__get_i64(step, 0);
    int64_t flen = fl && onnx_tensor_numel(fl) == 1 ? onnx__get_i64(fl, 0) : win ? onnx_tensor_numel(win) : 0;
    if (hop <= 0 || flen <= 0 || flen > L || (win && onnx_tensor_numel(win) != flen))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "bad frame_step, window or frame_length");
    bool onesided = onnx__attr_int(n, "onesided", 1) != 0;
    int64_t frames = (L - flen) / hop + 1, bins = onesided ? flen / 2 + 1 : flen;
    int64_t od[4] = {B, frames, bins, 2};
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, 4, od, &o);
    double *buf = rc ? NULL : onnx__scratch(k, (size_t)(2 * flen + 2 * bins) * sizeof(double));
    if (rc || !buf)
        return rc ? rc : MD_E_NOMEM;
    double *re = buf, *im = re + flen, *ore = im + flen, *oim = ore + bins;
    for (int64_t b = 0; b < B; b++)
        for (int64_t f = 0; f < frames; f++) {
            for (int64_t t = 0; t < flen; t++) {
                double w = win ? onnx__get_f64(win, t) : 1;
                int64_t e = (b * L + f * hop + t) * cplx;
                re[t] = onnx__get_f64(x, e) * w;
                im[t] = cplx == 2 ? onnx__get_f64(x, e + 1) * w : 0;
            }
            dft1(re, im, flen, bins, false, ore, oim);
            for (int64_t q = 0; q < bins; q++) {
                int64_t e = ((b * frames + f) * bins + q) * 2;
                onnx__set_f64(o, e, ore[q]);
                onnx__set_f64(o, e + 1, oim[q]);
            }
        }
    return MD_OK;
}


/* ---- RoiAlign ---- */

typedef struct roi_cfg {
    bool half_pixel, max_mode;
    int64_t oh, ow, ratio;
    double scale;
} roi_cfg;

static int prep_roialign(onnx_node *n, onnx_prep *p, md_err *err)
{
    roi_cfg *c = onnx__prep_alloc(p, sizeof *c);
    if (!c)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    const char *ct = onnx__attr_str(n, "coordinate_transformation_mode", "half_pixel");
    const char *m = onnx__attr_str(n, "mode", "avg");
    c->half_pixel = strcmp(ct, "half_pixel") == 0;
    c->max_mode = strcmp(m, "max") == 0;
    c->oh = onnx__attr_int(n, "output_height", 1);
    c->ow = onnx__attr_int(n, "output_width", 1);
    c->ratio = onnx__attr_int(n, "sampling_ratio", 0);
    c->scale = onnx__attr_float(n, "spatial_scale", 1.f);
    if ((!c->half_pixel && strcmp(ct, "output_half_pixel")) || (!c->max_mode && strcmp(m, "avg")) ||
        c->oh <= 0 || c->ow <= 0 || c->oh > 4096 || c->ow > 4096 || c->ratio < 0 || c->ratio > 64)
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "mode", "bad RoiAlign attributes");
    n->priv = c;
    return MD_OK;
}

/* Bilinear sample of plane at (y, x) as onnxruntime does: 0 outside [-1, H] x [-1, W]. For max
 * mode the largest weighted corner counts. */
static double roi_sample(const onnx_tensor *x, int64_t base, int64_t H, int64_t W, double y,
                         double xx, bool max_mode)
{
    if (!(y >= -1.0 && y <= (double)H && xx >= -1.0 && xx <= (double)W))
        return 0;
    y = y <= 0 ? 0 : y;
    xx = xx <= 0 ? 0 : xx;
    int64_t yl = (int64_t)y, xl = (int64_t)xx, yh, xh;
    if (yl >= H - 1) {
        yh = yl = H - 1;
        y = (double)yl;
    } else {
        yh = yl + 1;
    }
    if (xl >= W - 1) {
        xh = xl = W - 1;
        xx = (double)xl;
    } else {
        xh = xl + 1;
    }
    double ly = y - (double)yl, lx = xx - (double)xl, hy = 1 - ly, hx = 1 - lx;
    double v1 = hy * hx * onnx__get_f64(x, base + yl * W + xl);
    double v2 = hy * lx * onnx__get_f64(x, base + yl * W + xh);
    double v3 = ly * hx * onnx__get_f64(x, base + yh * W + xl);
    double v4 = ly * lx * onnx__get_f64(x, base + yh * W + xh);
    return max_mode ? fmax(fmax(v1, v2), fmax(v3, v4)) : v1 + v2 + v3 + v4;
}

static int run_roialign(const onnx_node *n, onnx_kctx *k)
{
    const roi_cfg *c = n->priv;
    const onnx_tensor *x = k->in[0], *rois = k->in[1], *bi = k->in[2];
    if (x->rank != 4 || rois->rank != 2 || rois->dims[1] != 4 || onnx_tensor_numel(bi) != rois->dims[0] ||
        (x->dtype != ONNX_FLOAT && x->dtype != ONNX_DOUBLE))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X [N, C, H, W], rois [R, 4], batch_indices [R]");
    int64_t R = rois->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t od[4] = {R, C, c->oh, c->ow};
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, 4, od, &o);
    if (rc)
        return rc;
    double off = c->half_pixel ? 0.5 : 0;
    for (int64_t r = 0; r < R; r++) {
        int64_t b = onnx__get_i64(bi, r);
        if (b < 0 || b >= x->dims[0])
            return onnx__kfail(k, MD_E_INVALID_PARAM, "batch index %lld out of range", (long long)b);
        double v[4];
        for (int i = 0; i < 4; i++) {
            v[i] = onnx__get_f64(rois, r * 4 + i) * c->scale - off;
            if (!isfinite(v[i]) || fabs(v[i]) > 1e9)
                return onnx__kfail(k, MD_E_INVALID_PARAM, "roi coordinates out of range");
        }
        double rw = v[2] - v[0], rh = v[3] - v[1];
        if (!c->half_pixel) {
            rw = fmax(rw, 1.0);
            rh = fmax(rh, 1.0);
        }
        double bh = rh / (double)c->oh, bw = rw / (double)c->ow;
        int64_t gh = c->ratio ? c->ratio : (int64_t)fmin(ceil(rh / (double)c->oh), 64);
        int64_t gw = c->ratio ? c->ratio : (int64_t)fmin(ceil(rw / (double)c->ow), 64);
        gh = gh < 0 ? 0 : gh;
        gw = gw < 0 ? 0 : gw;
        double count = fmax((double)(gh * gw), 1);
        for (int64_t ch = 0; ch < C; ch++) {
            int64_t base = (b * C + ch) * H * W;
            for (int64_t ph = 0; ph < c->oh; ph++)
                for (int64_t pw = 0; pw < c->ow; pw++) {
                    double acc = 0, mx = -INFINITY;
                    for (int64_t iy = 0; iy < gh; iy++)
                        for (int64_t ix = 0; ix < gw; ix++) {
                            double y = v[1] + (double)ph * bh + ((double)iy + 0.5) * bh / (double)gh;
                            double xx = v[0] + (double)pw * bw + ((double)ix + 0.5) * bw / (double)gw;
                            double s = roi_sample(x, base, H, W, y, xx, c->max_mode);
                            acc += s;
                            mx = fmax(mx, s);
                        }
                    double out = c->max_mode ? (gh > 0 && gw > 0 ? mx : 0) : acc / count;
                    onnx__set_f64(o, ((r * C + ch) * c->oh + ph) * c->ow + pw, out);
                }
        }
    }
    return MD_OK;
}

/* ---- MelWeightMatrix (as the ONNX reference computes it) ---- */

static int run_melweight(const onnx_node *n, onnx_kctx *k)
{
    for (int i = 0; i < 5; i++)
        if (onnx_tensor_numel(k->in[i]) != 1)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "all inputs must be scalars");
    int64_t bins = onnx__get_i64(k->in[0], 0), dft = onnx__get_i64(k->in[1], 0);
    double rate = onnx__get_f64(k->in[2], 0), lo = onnx__get_f64(k->in[3], 0), hi = onnx__get_f64(k->in[4], 0);
    int dt = (int)onnx__attr_int(n, "output_datatype", ONNX_FLOAT);
    if (bins <= 0 || bins > 65536 || dft <= 0 || dft > (1 << 24) || !(rate > 0) || !onnx_dtype_size(dt) ||
        dt == ONNX_STRING || !isfinite(lo) || !isfinite(hi))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "bad mel parameters");
    int64_t spec = dft / 2 + 1, od[2] = {spec, bins};
    onnx_tensor *o;
    int rc = onnx__output(k, 0, dt, 2, od, &o);
    int64_t *fb = rc ? NULL : onnx__scratch(k, (size_t)(bins + 2) * sizeof(int64_t));
    if (rc || !fb)
        return rc ? rc : MD_E_NOMEM;
    double lm = 2595 * log10(1 + lo / 700), hm = 2595 * log10(1 + hi / 700);
    double step = (hm - lm) / (double)(bins + 2);
    for (int64_t i = 0; i < bins + 2; i++) {
        double hz = 700 * (pow(10, ((double)i * step + lm) / 2595) - 1);
        double f = floor((double)(dft + 1) * hz / rate);
        fb[i] = f < 0 ? 0 : f > (double)(spec - 1) ? spec - 1 : (int64_t)f;
    }
    memset(o->data, 0, (size_t)(spec * bins) * onnx_dtype_size(dt));
    for (int64_t i = 0; i < bins; i++) {
        int64_t l = fb[i], c = fb[i + 1], h = fb[i + 2];
        if (c - l == 0)
            onnx__set_f64(o, c * bins + i, 1);
        for (int64_t j = l; c - l > 0 && j <= c; j++)
            onnx__set_f64(o, j * bins + i, (double)(j - l) / (double)(c - l));
        for (int64_t j = c; h - c > 0 && j < h; j++)
            onnx__set_f64(o, j * bins + i, (double)(h - j) / (double)(h - c));
    }
    return MD_OK;
}

ONNX_OPS(sample) = {
    {.domain = "", .op_type = "GridSample", .opset_min = 16, .min_in = 2, .max_in = 2,
     .min_out = 1, .max_out = 1, .attrs = "align_corners:i mode:s padding_mode:s",
     .prepare = prep_gridsample, .run = run_gridsample},
    {.domain = "", .op_type = "DFT", .opset_min = 17, .min_in = 1, .max_in = 2, .min_out = 1,
     .max_out = 1, .attrs = "axis:i inverse:i onesided:i", .run = run_dft},
    {.domain = "", .op_type = "STFT", .opset_min = 17, .min_in = 2, .max_in = 4, .min_out = 1,
     .max_out = 1, .attrs = "onesided:i", .run = run_stft},
    {.domain = "", .op_type = "RoiAlign", .opset_min = 16, .min_in = 3, .max_in = 3,
     .min_out = 1, .max_out = 1,
     .attrs = "coordinate_transformation_mode:s mode:s output_height:i output_width:i "
              "sampling_ratio:i spatial_scale:f",
     .prepare = prep_roialign, .run = run_roialign},
    {.domain = "", .op_type = "MelWeightMatrix", .opset_min = 17, .min_in = 5, .max_in = 5,
     .min_out = 1, .max_out = 1, .attrs = "output_datatype:i", .run = run_melweight},
    ONNX_OPS_END,
};
