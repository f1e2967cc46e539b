/* orient.c - EXIF orientation: read the tag from a JPEG's APP1 "Exif" segment or a WebP's EXIF
 * chunk, and turn decoded pixels upright (cameras store the sensor's rows and say how to turn
 * them; browsers turn them, so must we before upscaling, or the result comes back on its side).
 *
 * TIFF files are not handled here: libtiff's TIFFReadRGBAImageOriented (tiff.c) applies the
 * file's own Orientation tag while decoding. PNG, BMP: no orientation.
 *
 * Invariants:
 *   1. The EXIF reader never reads outside the bytes given: every offset is checked against the
 *      segment's length before use; anything malformed means "no orientation" (1), never an
 *      error (a photo with a broken EXIF block is still a photo).
 *   2. img_apply_orientation replaces *img only on success; on failure *img is unchanged.
 */
#include "image/image_int.h"

#include <stdlib.h>
#include <string.h>

static unsigned rd16(const uint8_t *p, int le)
{
    return le ? (unsigned)(p[0] | p[1] << 8) : (unsigned)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p, int le)
{
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Orientation (tag 0x0112 in IFD0) of a TIFF-structured EXIF block; 1 when absent or bad. */
static int tiff_orientation(const uint8_t *t, size_t n)
{
    if (n < 8 || !((t[0] == 'I' && t[1] == 'I') || (t[0] == 'M' && t[1] == 'M')))
        return 1;
    int le = t[0] == 'I';
    if (rd16(t + 2, le) != 42)
        return 1;
    uint32_t ifd = rd32(t + 4, le);
    if (ifd > n - 2)
        return 1;
    unsigned count = rd16(t + ifd, le);
    for (unsigned i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > n)
            return 1;
        if (rd16(t + e, le) == 0x0112 && rd16(t + e + 2, le) == 3) {
            unsigned v = rd16(t + e + 8, le);
            return v >= 1 && v <= 8 ? (int)v : 1;
        }
    }
    return 1;
}

static int jpeg_orientation(const uint8_t *d, size_t n)
{
    size_t p = 2;
    while (p + 4 <= n && d[p] == 0xff) {
        unsigned marker = d[p + 1];
        size_t len = (size_t)d[p + 2] << 8 | d[p + 3];
        if (marker == 0xda || marker == 0xd9 || len < 2 || p + 2 + len > n)
            return 1; /* start of scan, end, or a broken segment: no EXIF before the pixels */
        const uint8_t *seg = d + p + 4;
        if (marker == 0xe1 && len >= 8 && memcmp(seg, "Exif\0\0", 6) == 0)
            return tiff_orientation(seg + 6, len - 8);
        p += 2 + len;
    }
    return 1;
}

static int webp_orientation(const uint8_t *d, size_t n)
{
    size_t p = 12;
    while (p + 8 <= n) {
        size_t len = rd32(d + p + 4, 1);
        if (len > n - p - 8)
            return 1;
        if (memcmp(d + p, "EXIF", 4) == 0) {
            const uint8_t *t = d + p + 8;
            if (len >= 6 && memcmp(t, "Exif\0\0", 6) == 0)
                return tiff_orientation(t + 6, len - 6);
            return tiff_orientation(t, len);
        }
        p += 8 + len + (len & 1);
    }
    return 1;
}

int img_exif_orientation(const void *data, size_t len)
{
    const uint8_t *d = data;
    if (!d)
        return 1;
    switch (img_sniff(data, len)) {
    case IMG_FMT_JPEG:
        return jpeg_orientation(d, len);
    case IMG_FMT_WEBP:
        return webp_orientation(d, len);
    default:
        return 1;
    }
}

/* Source pixel of output (ox, oy) for orientation o of a w x h source (see the EXIF spec's
 * "0th row / 0th column" table: 6 = turn 90 degrees clockwise to view, 8 = counter-clockwise). */
static void source_of(int o, int w, int h, int ox, int oy, int *sx, int *sy)
{
    switch (o) {
    case 2:
        *sx = w - 1 - ox;
        *sy = oy;
        break;
    case 3:
        *sx = w - 1 - ox;
        *sy = h - 1 - oy;
        break;
    case 4:
        *sx = ox;
        *sy = h - 1 - oy;
        break;
    case 5:
        *sx = oy;
        *sy = ox;
        break;
    case 6:
        *sx = oy;
        *sy = h - 1 - ox;
        break;
    case 7:
        *sx = w - 1 - oy;
        *sy = h - 1 - ox;
        break;
    case 8:
        *sx = w - 1 - oy;
        *sy = ox;
        break;
    default:
        *sx = ox;
        *sy = oy;
        break;
    }
}

int img_apply_orientation(md_image **img, int orientation, md_err *err)
{
    if (orientation < 1 || orientation > 8)
        return md_fail(err, MD_E_INVALID_PARAM, "orientation", "must be 1..8, got %d", orientation);
    if (orientation == 1)
        return MD_OK;
    md_image *src = *img;
    int swap = orientation >= 5;
    int w = swap ? src->height : src->width, h = swap ? src->width : src->height;
    md_image *dst = NULL;
    int rc = img__alloc(w, h, &dst, err);
    if (rc != MD_OK)
        return rc;
    uint32_t *o = (uint32_t *)(void *)dst->rgba;
    const uint32_t *s = (const uint32_t *)(const void *)src->rgba;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            int sx, sy;
            source_of(orientation, src->width, src->height, x, y, &sx, &sy);
            o[(size_t)y * (size_t)w + (size_t)x] = s[(size_t)sy * (size_t)src->width + (size_t)sx];
        }
    }
    dst->has_alpha = src->has_alpha;
    img_free(src);
    *img = dst;
    return MD_OK;
}
