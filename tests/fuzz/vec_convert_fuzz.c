/* vec_convert_fuzz.c - the whole conversion on random small images, quality measurement on:
 * trace, SVG, cairo rendering and SSIM. Input: byte 0 = width-1 (mod 40), byte 1 = height-1
 * (mod 40), byte 2 = mode/colour/layering/gradient bits, byte 3 = filter_speckle, the rest =
 * RGBA pixels (repeated when short). A conversion of a valid image with valid parameters must
 * succeed, and its SSIM must be a number in [-1, 1]; anything else (or a crash, leak or UB) is
 * a bug. */
#include "vectorize/vec.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    int w = data[0] % 40 + 1, h = data[1] % 40 + 1;
    vec_params p;
    vec_params_default(&p);
    p.colormode = data[2] & 1 ? VEC_BINARY : VEC_COLOR;
    p.hierarchical = data[2] & 2 ? VEC_CUTOUT : VEC_STACKED;
    p.mode = (vec_mode)((data[2] >> 2) % 3);
    p.gradients = !(data[2] & 16);
    p.composite = (data[2] & 32) != 0;
    p.filter_speckle = data[3] % 129;
    md_image *im = img_new(w, h);
    if (im == NULL)
        return 0;
    size_t npx = (size_t)w * (size_t)h * 4, avail = size - 4;
    for (size_t i = 0; i < npx; i++)
        im->rgba[i] = avail ? data[4 + i % avail] : 0;
    for (size_t i = 0; i < npx / 4 && !im->has_alpha; i++)
        im->has_alpha = im->rgba[i * 4 + 3] != 255;
    vec_convert_opts o = {.measure_quality = 1};
    vec_result *r = NULL;
    md_err e;
    if (vec_convert(im, &p, &o, &r, &e) != MD_OK)
        abort();
    if (r->svg_bytes == 0 || !isfinite(r->ssim.rgb) || r->ssim.rgb < -1 || r->ssim.rgb > 1 ||
        !isfinite(r->ssim.luma) || r->ssim.luma < -1 || r->ssim.luma > 1)
        abort();
    vec_result_free(r);
    img_free(im);
    return 0;
}
