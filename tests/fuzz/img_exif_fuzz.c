/* img_exif_fuzz.c - libFuzzer target: the EXIF orientation reader (orient.c) on JPEG segment
 * chains and WebP chunk lists. The first input byte picks the framing (its low bit: JPEG SOI or
 * a RIFF/WEBP header is put in front), so mutations go to the segments and the TIFF block.
 * The answer must be 1..8 and never read outside the bytes; applying it to a small image must
 * keep the pixel count. */
#include "image/image.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 16))
        return 0;
    int webp = data[0] & 1;
    size_t head = webp ? 12 : 2, n = head + size - 1;
    uint8_t *buf = malloc(n);
    if (!buf)
        return 0;
    if (webp)
        memcpy(buf, "RIFF\0\0\0\0WEBP", 12);
    else
        memcpy(buf, "\xff\xd8", 2);
    memcpy(buf + head, data + 1, size - 1);
    int o = img_exif_orientation(buf, n);
    free(buf);
    if (o < 1 || o > 8)
        abort();
    md_image *img = img_new(3, 2);
    if (img && img_apply_orientation(&img, o, NULL) == MD_OK &&
        img->width * img->height != 6)
        abort();
    img_free(img);
    return 0;
}
