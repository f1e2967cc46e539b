/* img_tiff_fuzz.c - libFuzzer target: the tiff decoder alone (img__tiff_probe and
 * img__tiff_decode), so mutations are not wasted on the magic that selects a format.
 * Nothing may crash, leak or read out of bounds; limits are small (1024 px, 1 MP). */
#include "image/image_int.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    img_limits lim = {.max_width = 1024, .max_height = 1024, .max_pixels = 1u << 20};
    int w = 0, h = 0;
    md_err err;
    int prc = img__tiff_probe(data, size, &lim, &w, &h, &err);
    md_image *img = NULL;
    if (img__tiff_decode(data, size, &lim, &img, &err) == MD_OK) {
        if (prc != MD_OK || img->width != w || img->height != h)
            abort();
        img_free(img);
    }
    return 0;
}
