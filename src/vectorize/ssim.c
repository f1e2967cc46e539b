/* ssim.c - structural similarity exactly as scikit-image 0.19 computes it, so the number the
 * library reports is the number the benchmark's scorer (score_svg.py) reports.
 *
 * skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
 * use_sample_covariance=False, data_range=255) does, per channel, on float64:
 *   1. Gaussian filter with truncate 3.5: radius int(3.5*1.5+0.5) = 5, an 11-tap kernel
 *      exp(-x^2 / (2 sigma^2)) normalised to sum 1, applied along rows then columns
 *      (scipy.ndimage.gaussian_filter), borders in scipy's "reflect" mode (d c b a | a b c d).
 *   2. ux, uy, uxx, uyy, uxy from the filter; vx = uxx - ux^2 (population covariance), etc.
 *   3. S = (2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy + C2)),
 *      C1 = (0.01*255)^2, C2 = (0.03*255)^2.
 *   4. The mean of S over the image without a border of 5 px (skimage's crop(S, pad)).
 * The RGB score is the mean of the three channel scores (channel_axis=2). The grey score runs on
 * Pillow's convert('L') of the RGB images: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
 * skimage refuses images smaller than the window; we then average S over the whole image
 * instead of failing, so tiny icons still get a (documented, non-skimage) number.
 */
#include "vectorize/vec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RADIUS 5
#define TAPS (2 * RADIUS + 1)
#define SIGMA 1.5

typedef struct planes {
    int w, h;
    double *buf;      /* 6 planes of w*h: x, y, then filtered ux, uy, uxx, uyy, uxy use tmp */
    double *x, *y;
    double *f[5];     /* filtered x, y, xx, yy, xy */
    double *tmp;      /* one row of 5 interleaved values per pixel for the horizontal pass */
    int *ix, *iy;     /* reflected indices for -RADIUS..len+RADIUS-1 */
    double k[TAPS];
} planes;

static void kernel(double *k)
{
    double sum = 0.0;
    for (int i = 0; i < TAPS; i++) {
        double x = i - RADIUS;
        k[i] = exp(-0.5 / (SIGMA * SIGMA) * x * x);
        sum += k[i];
    }
    for (int i = 0; i < TAPS; i++)
        k[i] /= sum;
}

/* scipy.ndimage "reflect": the edge sample repeats, with period 2n for far overshoots. */
static int reflect(int i, int n)
{
    int period = 2 * n;
    i %= period;
    if (i < 0)
        i += period;
    return i < n ? i : period - 1 - i;
}

static void planes_free(planes *p)
{
    free(p->buf);
    free(p->tmp);
    free(p->ix);
    free(p->iy);
}

static int planes_init(planes *p, int w, int h)
{
    size_t n = (size_t)w * (size_t)h;
    p->w = w;
    p->h = h;
    p->buf = malloc(n * 7 * sizeof(double));
    p->tmp = malloc((size_t)(w > h ? w : h) * 5 * sizeof(double));
    p->ix = malloc((size_t)(w + 2 * RADIUS) * sizeof(int));
    p->iy = malloc((size_t)(h + 2 * RADIUS) * sizeof(int));
    if (!p->buf || !p->tmp || !p->ix || !p->iy) {
        planes_free(p);
        return MD_E_NOMEM;
    }
    p->x = p->buf;
    p->y = p->buf + n;
    for (int i = 0; i < 5; i++)
        p->f[i] = p->buf + n * (size_t)(2 + i);
    for (int i = 0; i < w + 2 * RADIUS; i++)
        p->ix[i] = reflect(i - RADIUS, w);
    for (int i = 0; i < h + 2 * RADIUS; i++)
        p->iy[i] = reflect(i - RADIUS, h);
    kernel(p->k);
    return MD_OK;
}

/* Pass 1 (scipy's axis 0, down the columns) of the five products, into f[]. Whole rows are
 * accumulated tap by tap so the inner loop streams through memory. */
static void filter_columns(planes *p)
{
    size_t w = (size_t)p->w;
    for (int yy = 0; yy < p->h; yy++) {
        double *o[5];
        for (int c = 0; c < 5; c++) {
            o[c] = p->f[c] + (size_t)yy * w;
            memset(o[c], 0, w * sizeof(double));
        }
        for (int t = 0; t < TAPS; t++) {
            const double *a = p->x + (size_t)p->iy[yy + t] * w;
            const double *b = p->y + (size_t)p->iy[yy + t] * w;
            double k = p->k[t];
            for (size_t xx = 0; xx < w; xx++) {
                o[0][xx] += k * a[xx];
                o[1][xx] += k * b[xx];
                o[2][xx] += k * (a[xx] * a[xx]);
                o[3][xx] += k * (b[xx] * b[xx]);
                o[4][xx] += k * (a[xx] * b[xx]);
            }
        }
    }
}

/* Pass 2 (axis 1, along each row) in place, through one row of scratch. */
static void filter_rows(planes *p)
{
    int w = p->w;
    for (int yy = 0; yy < p->h; yy++) {
        size_t row = (size_t)yy * (size_t)w;
        for (int xx = 0; xx < w; xx++)
            for (int c = 0; c < 5; c++)
                p->tmp[(size_t)xx * 5 + (size_t)c] = p->f[c][row + (size_t)xx];
        for (int xx = 0; xx < w; xx++) {
            double s[5] = {0, 0, 0, 0, 0};
            for (int t = 0; t < TAPS; t++) {
                const double *v = p->tmp + (size_t)p->ix[xx + t] * 5;
                for (int c = 0; c < 5; c++)
                    s[c] += p->k[t] * v[c];
            }
            for (int c = 0; c < 5; c++)
                p->f[c][row + (size_t)xx] = s[c];
        }
    }
}

/* Mean SSIM of the planes x and y (already loaded). */
static double mean_ssim(planes *p)
{
    const double c1 = (0.01 * 255) * (0.01 * 255), c2 = (0.03 * 255) * (0.03 * 255);
    filter_columns(p);
    filter_rows(p);
    int pad = (p->w >= TAPS && p->h >= TAPS) ? RADIUS : 0;
    double sum = 0.0;
    for (int yy = pad; yy < p->h - pad; yy++) {
        for (int xx = pad; xx < p->w - pad; xx++) {
            size_t o = (size_t)yy * (size_t)p->w + (size_t)xx;
            double ux = p->f[0][o], uy = p->f[1][o];
            double vx = p->f[2][o] - ux * ux, vy = p->f[3][o] - uy * uy;
            double vxy = p->f[4][o] - ux * uy;
            double a1 = 2 * ux * uy + c1, a2 = 2 * vxy + c2;
            double b1 = ux * ux + uy * uy + c1, b2 = vx + vy + c2;
            sum += (a1 * a2) / (b1 * b2);
        }
    }
    return sum / ((double)(p->w - 2 * pad) * (double)(p->h - 2 * pad));
}

static uint8_t luma(const uint8_t *px)
{
    return (uint8_t)((px[0] * 19595u + px[1] * 38470u + px[2] * 7471u + 0x8000u) >> 16);
}

int vec_ssim(const uint8_t *rgb_a, const uint8_t *rgb_b, int width, int height,
             vec_ssim_result *out, md_err *err)
{
    planes p;
    if (!rgb_a || !rgb_b || !out || width <= 0 || height <= 0)
        return md_fail(err, MD_E_INVALID_PARAM, "image", "SSIM needs two non-empty images");
    if (planes_init(&p, width, height) != MD_OK)
        return md_fail(err, MD_E_NOMEM, "image", "out of memory computing SSIM");
    size_t n = (size_t)width * (size_t)height;
    double total = 0.0;
    for (int c = 0; c < 3; c++) {
        for (size_t i = 0; i < n; i++) {
            p.x[i] = rgb_a[i * 3 + (size_t)c];
            p.y[i] = rgb_b[i * 3 + (size_t)c];
        }
        total += mean_ssim(&p);
    }
    out->rgb = total / 3.0;
    for (size_t i = 0; i < n; i++) {
        p.x[i] = luma(rgb_a + i * 3);
        p.y[i] = luma(rgb_b + i * 3);
    }
    out->luma = mean_ssim(&p);
    planes_free(&p);
    return MD_OK;
}
