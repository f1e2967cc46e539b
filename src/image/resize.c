/* resize.c - shrinking an image to fit a box (job previews: GET /api/v1/jobs/{id}/preview).
 *
 * An area average (box filter over the exact source footprint of each output pixel, with
 * fractional edge weights), done in two separable passes in floating point: enough quality for
 * a thumbnail, no ringing, and O(source pixels) work. Colour is averaged with alpha weighting
 * so transparent pixels do not darken the edges of what is opaque.
 *
 * Invariants:
 *   1. The result fits max_w x max_h, keeps the aspect ratio (each side rounded, at least 1) and
 *      is never larger than the source: an image that fits already is copied unchanged.
 */
#include "image/image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Resample n_in samples of 4 floats (stride 4) into n_out by area averaging: the weights of
 * output i cover [i*scale, (i+1)*scale) of the input. */
static void area_1d(const float *in, int n_in, float *out, int n_out, size_t in_stride,
                    size_t out_stride)
{
    double scale = (double)n_in / n_out;
    for (int i = 0; i < n_out; i++) {
        double a = i * scale, b = (i + 1) * scale, acc[4] = {0, 0, 0, 0};
        for (int x = (int)a; x < n_in && x < (int)ceil(b); x++) {
            double w = fmin(b, x + 1.0) - fmax(a, (double)x);
            const float *p = in + (size_t)x * in_stride;
            for (int c = 0; c < 4; c++)
                acc[c] += w * p[c];
        }
        float *o = out + (size_t)i * out_stride;
        for (int c = 0; c < 4; c++)
            o[c] = (float)(acc[c] / scale);
    }
}

static void fit_size(int w, int h, int max_w, int max_h, int *ow, int *oh)
{
    double s = fmin(1.0, fmin((double)max_w / w, (double)max_h / h));
    *ow = (int)lround(w * s);
    *oh = (int)lround(h * s);
    if (*ow < 1)
        *ow = 1;
    if (*oh < 1)
        *oh = 1;
}

/* Premultiplied float copy of the source. */
static float *to_float(const md_image *img)
{
    size_t n = (size_t)img->width * (size_t)img->height;
    float *f = malloc(n * 4 * sizeof *f);
    for (size_t i = 0; f && i < n; i++) {
        const uint8_t *p = img->rgba + i * 4;
        float a = p[3] / 255.0f;
        f[i * 4 + 0] = p[0] * a;
        f[i * 4 + 1] = p[1] * a;
        f[i * 4 + 2] = p[2] * a;
        f[i * 4 + 3] = p[3];
    }
    return f;
}

static void from_float(const float *f, md_image *out)
{
    size_t n = (size_t)out->width * (size_t)out->height;
    for (size_t i = 0; i < n; i++) {
        float a = f[i * 4 + 3];
        uint8_t *p = out->rgba + i * 4;
        for (int c = 0; c < 3; c++) {
            float v = a > 0 ? f[i * 4 + c] * 255.0f / a : 0;
            p[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
        }
        p[3] = (uint8_t)(a < 0 ? 0 : a > 255 ? 255 : a + 0.5f);
        out->has_alpha |= p[3] < 255;
    }
}

int img_fit(const md_image *img, int max_w, int max_h, md_image **out, md_err *err)
{
    *out = NULL;
    if (max_w < 1 || max_h < 1)
        return md_fail(err, MD_E_INVALID_PARAM, "size", "the box must be at least 1 x 1");
    int ow, oh;
    fit_size(img->width, img->height, max_w, max_h, &ow, &oh);
    md_image *r = img_new(ow, oh);
    float *src = r ? to_float(img) : NULL;
    float *mid = src ? malloc((size_t)ow * (size_t)img->height * 4 * sizeof *mid) : NULL;
    float *dst = mid ? malloc((size_t)ow * (size_t)oh * 4 * sizeof *dst) : NULL;
    if (!dst) {
        img_free(r);
        free(src);
        free(mid);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    for (int y = 0; y < img->height; y++) /* rows: width -> ow */
        area_1d(src + (size_t)y * img->width * 4, img->width, mid + (size_t)y * ow * 4, ow, 4, 4);
    for (int x = 0; x < ow; x++) /* columns: height -> oh */
        area_1d(mid + (size_t)x * 4, img->height, dst + (size_t)x * 4, oh, (size_t)ow * 4,
                (size_t)ow * 4);
    from_float(dst, r);
    free(src);
    free(mid);
    free(dst);
    *out = r;
    return MD_OK;
}
