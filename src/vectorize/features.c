/* features.c - a fixed vector of image statistics that the AI models (logo-type classifier,
 * quality predictor, parameter model) read instead of pixels.
 *
 * The same C code computes the features for training (through `modeld features`) and for
 * serving (pl_vectorize_ai), so a model never sees features computed two different ways.
 *
 * How: the image is sampled on a grid of at most side x side pixels (VEC_FEATURES_SIDE = 256
 * unless the caller asks: 256 keeps a 512 px image under 1 ms of work; nearest sample at
 * the centre of each s x s block, s = ceil(max side / side)), composited on white as the
 * SSIM of a conversion is, and four passes read it: colour histograms, neighbour differences
 * (edges, flat fills, ramps), foreground runs (stroke width) and 4-connected foreground
 * components (glyph-like shapes).
 *
 * Invariants:
 *   1. FEATURES below is the one list of names; its order is the order of vec_features()'s
 *      output and of vec_feature_names(), and it only ever grows at the end (trained models
 *      record the list they were trained on and are refused when it differs).
 *   2. Deterministic: integer sampling, no randomness, no dependence on threads or time.
 *   3. Every value is finite (no NaN/inf) for every image of at least 1 x 1 pixel, so the
 *      JSON of `modeld features` is always valid and a model never reads a NaN.
 *   4. Scale-free where it makes sense: lengths are fractions of the sampled side, counts of
 *      pixels are fractions of the sampled pixels; only log2_pixels and aspect_ratio speak of
 *      the size.
 */
#include "vec_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A colour channel difference above this is an edge (and separates foreground from the
 * background colour). */
#define FX_EDGE 48
/* A bin of the 4-bit-per-channel histogram holding at least this fraction is "significant". */
#define FX_SIGNIFICANT 0.005
/* Components smaller than this many sampled pixels are noise, not shapes. */
#define FX_MIN_AREA 3

static const char *const FEATURES[] = {
    "log2_pixels",
    "aspect_ratio",
    "alpha_coverage",
    "alpha_partial",
    "mean_luma",
    "std_luma",
    "mean_saturation",
    "colorfulness",
    "unique_colors_log2",
    "significant_colors",
    "top_color_fraction",
    "top4_color_fraction",
    "color_entropy",
    "luma_entropy",
    "edge_density",
    "flat_fraction",
    "smooth_fraction",
    "gradient_strength",
    "mean_gradient",
    "fg_fraction",
    "component_count_log2",
    "small_component_fraction",
    "component_height_cv",
    "stroke_width_mean",
    "stroke_width_cv",
    "text_likeness",
    NULL,
};
_Static_assert(sizeof FEATURES / sizeof FEATURES[0] == VEC_N_FEATURES + 1,
               "VEC_N_FEATURES must match the FEATURES table");

enum {
    F_LOG2_PIXELS,
    F_ASPECT,
    F_ALPHA_COV,
    F_ALPHA_PART,
    F_MEAN_LUMA,
    F_STD_LUMA,
    F_MEAN_SAT,
    F_COLORFUL,
    F_UNIQUE,
    F_SIGNIFICANT,
    F_TOP1,
    F_TOP4,
    F_COLOR_ENT,
    F_LUMA_ENT,
    F_EDGE,
    F_FLAT,
    F_SMOOTH,
    F_GRADIENT,
    F_MEAN_GRAD,
    F_FG,
    F_CC_LOG2,
    F_CC_SMALL,
    F_CC_HCV,
    F_STROKE_MEAN,
    F_STROKE_CV,
    F_TEXT,
};

const char *const *vec_feature_names(void)
{
    return FEATURES;
}

/* The sampled image: composited RGB, alpha, and the scratch the passes share. */
typedef struct fx {
    int w, h;
    uint8_t *rgb;   /* w*h*3, composited on white */
    uint8_t *alpha; /* w*h */
    uint8_t *fg;    /* w*h, 1 = differs from the background colour */
    uint16_t *run;  /* w*h, horizontal then min(h, v) run length of foreground */
    int32_t *stack; /* w*h, flood-fill stack */
    uint8_t bg[3];  /* background: the mean colour of the most common histogram bin */
} fx;

static int fx_sample(const md_image *img, int grid, fx *f)
{
    int side = img->width > img->height ? img->width : img->height;
    int s = (side + grid - 1) / grid;
    f->w = (img->width + s - 1) / s;
    f->h = (img->height + s - 1) / s;
    size_t n = (size_t)f->w * f->h;
    f->rgb = malloc(n * 3);
    f->alpha = malloc(n);
    f->fg = malloc(n);
    f->run = malloc(n * sizeof *f->run);
    f->stack = malloc(n * sizeof *f->stack);
    if (!f->rgb || !f->alpha || !f->fg || !f->run || !f->stack)
        return MD_E_NOMEM;
    for (int y = 0; y < f->h; y++) {
        int sy = y * s + s / 2 < img->height ? y * s + s / 2 : img->height - 1;
        for (int x = 0; x < f->w; x++) {
            int sx = x * s + s / 2 < img->width ? x * s + s / 2 : img->width - 1;
            const uint8_t *p = img->rgba + ((size_t)sy * img->width + sx) * 4;
            size_t i = (size_t)y * f->w + x;
            unsigned a = p[3];
            for (int c = 0; c < 3; c++)
                f->rgb[i * 3 + c] = (uint8_t)((p[c] * a + 255u * (255u - a) + 127u) / 255u);
            f->alpha[i] = (uint8_t)a;
        }
    }
    return MD_OK;
}

static void fx_release(fx *f)
{
    free(f->rgb);
    free(f->alpha);
    free(f->fg);
    free(f->run);
    free(f->stack);
}

static double entropy_bits(const uint32_t *hist, size_t nbins, size_t total)
{
    double e = 0;
    for (size_t i = 0; i < nbins; i++) {
        if (!hist[i])
            continue;
        double p = (double)hist[i] / (double)total;
        e -= p * log2(p);
    }
    return e;
}

static double luma_of(const uint8_t *c)
{
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
}

/* Alpha, luma, saturation and Hasler-Suesstrunk colourfulness. */
static void fx_tone(const fx *f, float *out)
{
    size_t n = (size_t)f->w * f->h;
    double sl = 0, sl2 = 0, ssat = 0, srg = 0, srg2 = 0, syb = 0, syb2 = 0;
    size_t transparent = 0, partial = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *c = f->rgb + i * 3;
        transparent += f->alpha[i] < VEC__ALPHA_CUT;
        partial += f->alpha[i] >= VEC__ALPHA_CUT && f->alpha[i] < 255;
        double l = luma_of(c);
        sl += l;
        sl2 += l * l;
        int mx = c[0] > c[1] ? c[0] : c[1], mn = c[0] < c[1] ? c[0] : c[1];
        mx = c[2] > mx ? c[2] : mx;
        mn = c[2] < mn ? c[2] : mn;
        ssat += mx ? (double)(mx - mn) / mx : 0;
        double rg = (double)c[0] - c[1], yb = 0.5 * (c[0] + c[1]) - c[2];
        srg += rg, srg2 += rg * rg, syb += yb, syb2 += yb * yb;
    }
    double ml = sl / n, mrg = srg / n, myb = syb / n;
    double vrg = fmax(0, srg2 / n - mrg * mrg), vyb = fmax(0, syb2 / n - myb * myb);
    out[F_ALPHA_COV] = (float)((double)transparent / n);
    out[F_ALPHA_PART] = (float)((double)partial / n);
    out[F_MEAN_LUMA] = (float)(ml / 255);
    out[F_STD_LUMA] = (float)(sqrt(fmax(0, sl2 / n - ml * ml)) / 255);
    out[F_MEAN_SAT] = (float)(ssat / n);
    out[F_COLORFUL] = (float)((sqrt(vrg + vyb) + 0.3 * sqrt(mrg * mrg + myb * myb)) / 255);
}

/* Histograms: distinct 5-bit colours, significant 4-bit bins, the dominant bin (which also
 * names the background colour) and the entropies. */
static int fx_colors(fx *f, float *out)
{
    size_t n = (size_t)f->w * f->h;
    uint32_t *h12 = calloc(4096, sizeof *h12);
    uint64_t *sum12 = calloc(4096 * 3, sizeof *sum12);
    uint8_t *seen15 = calloc(32768, 1);
    uint32_t hl[256] = {0};
    int rc = MD_OK;
    if (!h12 || !sum12 || !seen15) {
        rc = MD_E_NOMEM;
        goto out;
    }
    size_t unique = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *c = f->rgb + i * 3;
        unsigned b12 = (c[0] >> 4) << 8 | (c[1] >> 4) << 4 | c[2] >> 4;
        unsigned b15 = (c[0] >> 3) << 10 | (c[1] >> 3) << 5 | c[2] >> 3;
        h12[b12]++;
        for (int k = 0; k < 3; k++)
            sum12[b12 * 3 + k] += c[k];
        unique += !seen15[b15];
        seen15[b15] = 1;
        hl[(int)(luma_of(c) + 0.5)]++;
    }
    uint32_t top[4] = {0};
    unsigned top_bin = 0, significant = 0;
    for (unsigned b = 0; b < 4096; b++) {
        significant += (double)h12[b] >= FX_SIGNIFICANT * n;
        if (h12[b] > top[0])
            top_bin = b;
        for (int k = 0; k < 4; k++) {
            if (h12[b] <= top[k])
                continue;
            memmove(top + k + 1, top + k, (3 - k) * sizeof *top);
            top[k] = h12[b];
            break;
        }
    }
    for (int k = 0; k < 3; k++)
        f->bg[k] = (uint8_t)(sum12[top_bin * 3 + k] / h12[top_bin]);
    out[F_UNIQUE] = (float)log2(1.0 + unique);
    out[F_SIGNIFICANT] = (float)significant;
    out[F_TOP1] = (float)((double)top[0] / n);
    out[F_TOP4] = (float)((double)(top[0] + top[1] + top[2] + top[3]) / n);
    out[F_COLOR_ENT] = (float)entropy_bits(h12, 4096, n);
    out[F_LUMA_ENT] = (float)entropy_bits(hl, 256, n);
out:
    free(h12);
    free(sum12);
    free(seen15);
    return rc;
}

static int maxdiff(const uint8_t *a, const uint8_t *b)
{
    int m = 0;
    for (int k = 0; k < 3; k++) {
        int d = abs((int)a[k] - (int)b[k]);
        m = d > m ? d : m;
    }
    return m;
}

/* 1 when a, c, b (three neighbours in a line) lie on a gentle ramp: they change, by little,
 * and c is close to the middle of a and b (second difference small). */
static int on_ramp(const uint8_t *a, const uint8_t *c, const uint8_t *b)
{
    int moved = 0;
    for (int k = 0; k < 3; k++) {
        int d1 = (int)b[k] - (int)a[k], d2 = (int)a[k] + (int)b[k] - 2 * (int)c[k];
        if (abs(d1) > 2 * 24 || abs(d2) > 2)
            return 0;
        moved |= d1 != 0;
    }
    return moved;
}

/* Neighbour differences: edges, flat fills, smooth changes, ramps and the foreground mask. */
static void fx_edges(fx *f, float *out)
{
    size_t n = (size_t)f->w * f->h, pairs = 0, edge = 0, flat = 0, smooth = 0, ramp = 0;
    size_t fg = 0;
    double gsum = 0;
    for (int y = 0; y < f->h; y++) {
        for (int x = 0; x < f->w; x++) {
            size_t i = (size_t)y * f->w + x;
            const uint8_t *c = f->rgb + i * 3;
            f->fg[i] = maxdiff(c, f->bg) > FX_EDGE && f->alpha[i] >= VEC__ALPHA_CUT;
            fg += f->fg[i];
            if (x + 1 >= f->w || y + 1 >= f->h)
                continue;
            const uint8_t *r = c + 3, *d = c + (size_t)f->w * 3;
            int g = maxdiff(c, r) > maxdiff(c, d) ? maxdiff(c, r) : maxdiff(c, d);
            pairs++;
            edge += g > FX_EDGE;
            flat += g == 0;
            smooth += g > 0 && g <= 12;
            gsum += fabs(luma_of(c) - luma_of(r)) + fabs(luma_of(c) - luma_of(d));
            if (x > 0 && y > 0)
                ramp += on_ramp(c - 3, c, r) || on_ramp(c - (size_t)f->w * 3, c, d);
        }
    }
    double np = pairs ? (double)pairs : 1;
    out[F_EDGE] = (float)(edge / np);
    out[F_FLAT] = (float)(flat / np);
    out[F_SMOOTH] = (float)(smooth / np);
    out[F_GRADIENT] = (float)(ramp / np);
    out[F_MEAN_GRAD] = (float)(gsum / np / 510);
    out[F_FG] = (float)((double)fg / n);
}

/* Stroke width: for each foreground pixel the shorter of its horizontal and vertical
 * foreground runs; mean (as a fraction of the longer side) and coefficient of variation. */
static void fx_strokes(fx *f, float *out)
{
    for (int y = 0; y < f->h; y++) {
        const uint8_t *m = f->fg + (size_t)y * f->w;
        uint16_t *r = f->run + (size_t)y * f->w;
        for (int x = 0; x < f->w;) {
            int e = x;
            while (e < f->w && m[e] == m[x])
                e++;
            for (int k = x; k < e; k++)
                r[k] = m[x] ? (uint16_t)(e - x) : 0;
            x = e;
        }
    }
    double s = 0, s2 = 0, cnt = 0;
    for (int x = 0; x < f->w; x++) {
        for (int y = 0; y < f->h;) {
            int e = y;
            while (e < f->h && f->fg[(size_t)e * f->w + x] == f->fg[(size_t)y * f->w + x])
                e++;
            for (int k = y; k < e && f->fg[(size_t)y * f->w + x]; k++) {
                uint16_t hr = f->run[(size_t)k * f->w + x];
                double v = hr < e - y ? hr : e - y;
                s += v, s2 += v * v, cnt++;
            }
            y = e;
        }
    }
    double side = f->w > f->h ? f->w : f->h, mean = cnt ? s / cnt : 0;
    out[F_STROKE_MEAN] = (float)(mean / side);
    out[F_STROKE_CV] = (float)(mean > 0 ? sqrt(fmax(0, s2 / cnt - mean * mean)) / mean : 0);
}

typedef struct comp {
    int area, x0, y0, x1, y1;
} comp;

/* Flood-fill the 4-connected foreground component at seed; clears its fg marks. */
static comp fx_flood(fx *f, int seed)
{
    comp c = {0, seed % f->w, seed / f->w, seed % f->w, seed / f->w};
    size_t top = 0;
    f->stack[top++] = seed;
    f->fg[seed] = 0;
    while (top) {
        int i = f->stack[--top], x = i % f->w, y = i / f->w;
        c.area++;
        c.x0 = x < c.x0 ? x : c.x0, c.x1 = x > c.x1 ? x : c.x1;
        c.y0 = y < c.y0 ? y : c.y0, c.y1 = y > c.y1 ? y : c.y1;
        int nb[4] = {x > 0 ? i - 1 : -1, x + 1 < f->w ? i + 1 : -1, y > 0 ? i - f->w : -1,
                     y + 1 < f->h ? i + f->w : -1};
        for (int k = 0; k < 4; k++) {
            if (nb[k] < 0 || !f->fg[nb[k]])
                continue;
            f->fg[nb[k]] = 0;
            f->stack[top++] = nb[k];
        }
    }
    return c;
}

/* A glyph: a few percent of the height tall, not a long bar, partly filled (strokes). */
static int glyph_like(const comp *c, int h)
{
    int bw = c->x1 - c->x0 + 1, bh = c->y1 - c->y0 + 1;
    double fill = (double)c->area / ((double)bw * bh), aspect = (double)bw / bh;
    return bh >= 0.02 * h && bh <= 0.3 * h && bh >= 4 && aspect >= 0.15 && aspect <= 2.0 &&
           fill >= 0.15 && fill <= 0.75;
}

/* Connected components of the foreground (consumes the fg mask): count, share of small
 * ones, spread of their heights and how many look like glyphs of one text size. */
static void fx_components(fx *f, float *out)
{
    size_t n = (size_t)f->w * f->h;
    double count = 0, small = 0, hs = 0, hs2 = 0, glyphs = 0, gh = 0, gh2 = 0;
    for (size_t i = 0; i < n; i++) {
        if (!f->fg[i])
            continue;
        comp c = fx_flood(f, (int)i);
        if (c.area < FX_MIN_AREA)
            continue;
        double bh = c.y1 - c.y0 + 1;
        count++;
        small += c.area < 0.01 * n;
        hs += bh, hs2 += bh * bh;
        if (glyph_like(&c, f->h))
            glyphs++, gh += bh, gh2 += bh * bh;
    }
    double mh = count ? hs / count : 0, mg = glyphs ? gh / glyphs : 0;
    double gcv = mg > 0 ? sqrt(fmax(0, gh2 / glyphs - mg * mg)) / mg : 0;
    out[F_CC_LOG2] = (float)log2(1 + count);
    out[F_CC_SMALL] = (float)(count ? small / count : 0);
    out[F_CC_HCV] = (float)(mh > 0 ? sqrt(fmax(0, hs2 / count - mh * mh)) / mh : 0);
    /* Share of glyph-like components, damped when there are few of them (one "o" is not text)
     * and when their heights disagree (text of one size has one height). */
    double share = count ? glyphs / count : 0, many = glyphs >= 6 ? 1 : glyphs / 6;
    out[F_TEXT] = (float)(share * many / (1 + gcv));
}

int vec_features(const md_image *img, float *out, md_err *err)
{
    return vec_features_grid(img, VEC_FEATURES_SIDE, out, err);
}

int vec_features_grid(const md_image *img, int side, float *out, md_err *err)
{
    if (!img || !img->rgba || img->width < 1 || img->height < 1 || !out)
        return md_fail(err, MD_E_INVALID_PARAM, "image", "an image of at least 1 x 1 is needed");
    if (side < 16 || side > 1024)
        return md_fail(err, MD_E_INVALID_PARAM, "analysis_side",
                       "the sampling grid must be 16..1024 px");
    fx f = {0};
    int rc = fx_sample(img, side, &f);
    if (rc != MD_OK)
        goto out;
    memset(out, 0, VEC_N_FEATURES * sizeof *out);
    out[F_LOG2_PIXELS] = (float)log2((double)img->width * img->height);
    out[F_ASPECT] = (float)((double)img->width / img->height);
    fx_tone(&f, out);
    rc = fx_colors(&f, out);
    if (rc != MD_OK)
        goto out;
    fx_edges(&f, out);
    fx_strokes(&f, out);
    fx_components(&f, out);
out:
    fx_release(&f);
    if (rc == MD_E_NOMEM)
        md_fail(err, rc, NULL, "out of memory while computing image features");
    return rc;
}
