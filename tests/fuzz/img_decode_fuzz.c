/* img_decode_fuzz.c - libFuzzer target: any bytes through img_probe and img_decode (format by
 * magic). Neither may crash, leak, read out of bounds or allocate past the limits; probe and
 * decode must agree on the size of every image that decodes.
 * Limits are small (1024 px, 1 MP) so the fuzzer spends its time on parsing, not on pixels. */
#include "image/image.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    img_limits lim = {.max_width = 1024, .max_height = 1024, .max_pixels = 1u << 20};
    img_format f;
    int w = 0, h = 0;
    md_err err;
    int prc = img_probe(data, size, &lim, &f, &w, &h, &err);
    md_image *img = NULL;
    if (img_decode(data, size, &lim, &img, &err) == MD_OK) {
        if (prc != MD_OK || img->width != w || img->height != h)
            abort();
        img_composite(img, 255, 255, 255);
        img_free(img);
    }
    return 0;
}
