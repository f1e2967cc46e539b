/* trace_fuzz.c - the tracer on random small images with random parameters.
 * Input: byte 0 = width-1 (mod 48), byte 1 = height-1 (mod 48), bytes 2..9 = parameters,
 * the rest = RGBA pixels (repeated when short). Any crash, leak, UB or hang is a bug; every
 * parameter combination inside the ranges must trace and serialise. */
#include "vectorize/vec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 10)
        return 0;
    int w = data[0] % 48 + 1, h = data[1] % 48 + 1;
    vec_params p;
    vec_params_default(&p);
    p.colormode = data[2] & 1 ? VEC_BINARY : VEC_COLOR;
    p.hierarchical = data[2] & 2 ? VEC_CUTOUT : VEC_STACKED;
    p.mode = (vec_mode)((data[2] >> 2) % 3);
    p.gradients = !(data[2] & 16);
    p.composite = (data[2] & 32) != 0;
    p.svgz = (data[2] & 64) != 0;
    p.filter_speckle = data[3] % 129;
    p.color_precision = data[4] % 8 + 1;
    p.layer_difference = data[5];
    p.corner_threshold = data[6] % 181;
    p.splice_threshold = data[7] % 181;
    p.length_threshold = 3.5 + (data[8] % 66) / 10.0;
    p.max_iterations = data[9] % 20 + 1;
    p.path_precision = data[9] % 9;
    md_image *im = img_new(w, h);
    if (im == NULL)
        return 0;
    size_t npx = (size_t)w * (size_t)h * 4, avail = size - 10;
    for (size_t i = 0; i < npx; i++)
        im->rgba[i] = avail ? data[10 + i % avail] : 0;
    vec_doc *d = NULL;
    md_err e;
    if (vec_trace(im, &p, &d, NULL, &e) == MD_OK) {
        md_buf b;
        md_buf_init(&b, 1 << 24);
        if (vec_svg_write(d, &p, &b, &e) != MD_OK)
            abort(); /* a traced document always serialises */
        md_buf_free(&b);
        vec_doc_free(d);
    }
    img_free(im);
    return 0;
}
