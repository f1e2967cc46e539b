/* bmp.c - Windows BMP read by hand: the format is small enough that a library would add more
 * surface than it removes.
 *
 * Supported: core (OS/2 v1, 12-byte) and INFO/V2..V5 headers; 1, 4, 8 bpp with a palette;
 * 16 and 32 bpp as BI_RGB or BI_BITFIELDS / BI_ALPHABITFIELDS masks; 24 bpp; bottom-up and
 * top-down rows. RLE and embedded JPEG/PNG are refused as unsupported.
 * Invariants:
 *   1. Every offset is checked against the buffer length before it is read: header, masks,
 *      palette and all pixel rows (the last checked before allocating), so no read is out of
 *      bounds and a cut-off file is MD_E_IMAGE_TRUNCATED.
 *   2. As Pillow does, the fourth byte of 32-bit BI_RGB pixels is padding, not alpha.
 */
#include "image/image_int.h"

#include <string.h>

enum { BI_RGB = 0, BI_RLE8 = 1, BI_RLE4 = 2, BI_BITFIELDS = 3, BI_JPEG = 4, BI_PNG = 5,
       BI_ALPHABITFIELDS = 6 };

#define FILE_HEADER 14

typedef struct chan {
    uint32_t mask;
    unsigned shift;
    uint64_t max; /* mask >> shift; 0 when the channel is absent */
} chan;

typedef struct bmp_info {
    int64_t width, height;
    int topdown;
    unsigned bpp, compression;
    uint64_t data_off, stride;
    uint32_t masks[4]; /* r, g, b, a */
    uint64_t pal_off;
    unsigned pal_n, pal_entry;
} bmp_info;

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int truncated(md_err *err, const char *what)
{
    return md_fail(err, MD_E_IMAGE_TRUNCATED, "image", "BMP data ends early (in the %s)", what);
}

/* Masks of BI_BITFIELDS start right after the 40-byte INFO part either way: inside V2+ headers
 * (alpha from V3 on), or after a plain INFO header, where the palette then follows them. */
static int read_masks(const uint8_t *d, size_t n, unsigned hsize, bmp_info *bi, md_err *err)
{
    const uint64_t at = FILE_HEADER + 40;
    unsigned count;
    if (hsize == 40)
        count = bi->compression == BI_ALPHABITFIELDS ? 4 : 3;
    else
        count = hsize >= 56 ? 4 : 3;
    if (at + 4ull * count > n)
        return truncated(err, "colour masks");
    for (unsigned i = 0; i < count; i++)
        bi->masks[i] = le32(d + at + 4 * i);
    if (hsize == 40)
        bi->pal_off = at + 4ull * count;
    return MD_OK;
}

static void default_masks(bmp_info *bi)
{
    static const uint32_t m16[4] = {0x7c00, 0x03e0, 0x001f, 0};
    static const uint32_t m32[4] = {0xff0000, 0xff00, 0xff, 0};
    memcpy(bi->masks, bi->bpp == 16 ? m16 : m32, sizeof bi->masks);
}

static int read_info_header(const uint8_t *d, size_t n, unsigned hsize, bmp_info *bi, md_err *err)
{
    int32_t h = (int32_t)le32(d + 22);
    bi->width = (int32_t)le32(d + 18);
    bi->topdown = h < 0;
    bi->height = h < 0 ? -(int64_t)h : h;
    bi->bpp = le16(d + 28);
    bi->compression = le32(d + 30);
    uint32_t used = le32(d + 46);
    bi->pal_entry = 4;
    bi->pal_off = FILE_HEADER + hsize;
    bi->pal_n = used;
    switch (bi->compression) {
    case BI_RGB: default_masks(bi); return MD_OK;
    case BI_BITFIELDS:
    case BI_ALPHABITFIELDS:
        if (hsize == 64)
            break; /* OS/2 v2 reuses 3 for Huffman 1D */
        if (bi->bpp != 16 && bi->bpp != 32)
            return md_fail(err, MD_E_IMAGE_CORRUPT, "image",
                           "BMP bit fields need 16 or 32 bits per pixel, not %u", bi->bpp);
        return read_masks(d, n, hsize, bi, err);
    case BI_RLE8:
    case BI_RLE4:
        return md_fail(err, MD_E_UNSUPPORTED_FORMAT, "image", "RLE-compressed BMP is not supported");
    default: break;
    }
    return md_fail(err, MD_E_UNSUPPORTED_FORMAT, "image", "BMP compression %u is not supported",
                   bi->compression);
}

static int read_header(const uint8_t *d, size_t n, bmp_info *bi, md_err *err)
{
    memset(bi, 0, sizeof *bi);
    if (n < FILE_HEADER + 4)
        return truncated(err, "file header");
    unsigned hsize = le32(d + FILE_HEADER);
    bi->data_off = le32(d + 10);
    if (hsize != 12 && hsize != 40 && hsize != 52 && hsize != 56 && hsize != 64 && hsize != 108 &&
        hsize != 124)
        return md_fail(err, MD_E_UNSUPPORTED_FORMAT, "image", "BMP header size %u is not supported",
                       hsize);
    if (n < FILE_HEADER + (uint64_t)hsize)
        return truncated(err, "info header");
    if (hsize == 12) {
        bi->width = le16(d + 18);
        bi->height = le16(d + 20);
        bi->bpp = le16(d + 24);
        bi->pal_entry = 3;
        bi->pal_off = FILE_HEADER + 12;
        default_masks(bi);
        return MD_OK;
    }
    return read_info_header(d, n, hsize, bi, err);
}

/* Palette and pixel-row bounds, after the dimensions passed the limits. */
static int check_layout(size_t n, bmp_info *bi, md_err *err)
{
    unsigned bpp = bi->bpp;
    if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32)
        return md_fail(err, MD_E_UNSUPPORTED_FORMAT, "image", "BMP with %u bits per pixel is not "
                       "supported", bpp);
    if (bpp <= 8) {
        unsigned full = 1u << bpp;
        if (bi->pal_n == 0 || bi->pal_n > full)
            bi->pal_n = full;
        if (bi->pal_off + (uint64_t)bi->pal_n * bi->pal_entry > n)
            return truncated(err, "palette");
    }
    bi->stride = ((uint64_t)bi->width * bpp + 31) / 32 * 4;
    if (bi->data_off < FILE_HEADER + 12u || bi->data_off > n)
        return md_fail(err, MD_E_IMAGE_CORRUPT, "image", "BMP pixel offset %llu is outside the file",
                       (unsigned long long)bi->data_off);
    if (bi->stride * (uint64_t)bi->height > n - bi->data_off)
        return truncated(err, "pixel rows");
    return MD_OK;
}

int img__bmp_probe(const uint8_t *d, size_t n, const img_limits *lim, int *w, int *h, md_err *err)
{
    bmp_info bi;
    int rc = read_header(d, n, &bi, err);
    if (rc == MD_OK)
        rc = img__check_dims(bi.width, bi.height, lim, "BMP", err);
    if (rc == MD_OK) {
        *w = (int)bi.width;
        *h = (int)bi.height;
    }
    return rc;
}

/* A mask must be one run of ones; its value is scaled to 0..255. */
static int make_chan(uint32_t mask, chan *c, md_err *err)
{
    c->mask = mask;
    c->shift = 0;
    c->max = 0;
    if (!mask)
        return MD_OK;
    c->shift = (unsigned)__builtin_ctz(mask);
    c->max = (uint64_t)mask >> c->shift;
    if ((c->max & (c->max + 1)) != 0)
        return md_fail(err, MD_E_IMAGE_CORRUPT, "image", "BMP colour mask 0x%08x is not contiguous",
                       mask);
    return MD_OK;
}

static uint8_t chan_get(const chan *c, uint32_t v, uint8_t absent)
{
    if (!c->max)
        return absent;
    uint64_t x = (v & c->mask) >> c->shift;
    return (uint8_t)((x * 255 + c->max / 2) / c->max);
}

static int row_indexed(const uint8_t *src, const uint8_t *d, const bmp_info *bi, uint8_t *dst,
                       md_err *err)
{
    unsigned bpp = bi->bpp, per = 8 / bpp, mask = (1u << bpp) - 1;
    for (int64_t x = 0; x < bi->width; x++) {
        unsigned byte = src[x / per], k = (unsigned)(x % per);
        unsigned idx = (byte >> (8 - bpp * (k + 1))) & mask;
        if (idx >= bi->pal_n)
            return md_fail(err, MD_E_IMAGE_CORRUPT, "image",
                           "BMP pixel uses colour %u of a %u-colour palette", idx, bi->pal_n);
        const uint8_t *p = d + bi->pal_off + (uint64_t)idx * bi->pal_entry;
        dst[x * 4 + 0] = p[2];
        dst[x * 4 + 1] = p[1];
        dst[x * 4 + 2] = p[0];
        dst[x * 4 + 3] = 255;
    }
    return MD_OK;
}

static void row_masked(const uint8_t *src, const bmp_info *bi, const chan ch[4], uint8_t *dst)
{
    for (int64_t x = 0; x < bi->width; x++) {
        uint32_t v = bi->bpp == 16 ? le16(src + x * 2) : le32(src + x * 4);
        dst[x * 4 + 0] = chan_get(&ch[0], v, 0);
        dst[x * 4 + 1] = chan_get(&ch[1], v, 0);
        dst[x * 4 + 2] = chan_get(&ch[2], v, 0);
        dst[x * 4 + 3] = chan_get(&ch[3], v, 255);
    }
}

static void row_bgr(const uint8_t *src, int64_t width, uint8_t *dst)
{
    for (int64_t x = 0; x < width; x++) {
        dst[x * 4 + 0] = src[x * 3 + 2];
        dst[x * 4 + 1] = src[x * 3 + 1];
        dst[x * 4 + 2] = src[x * 3 + 0];
        dst[x * 4 + 3] = 255;
    }
}

static int decode_rows(const uint8_t *d, const bmp_info *bi, md_image *img, md_err *err)
{
    chan ch[4];
    for (int i = 0; i < 4; i++) {
        int rc = make_chan(bi->masks[i], &ch[i], err);
        if (rc != MD_OK)
            return rc;
    }
    for (int64_t y = 0; y < bi->height; y++) {
        int64_t sy = bi->topdown ? y : bi->height - 1 - y;
        const uint8_t *src = d + bi->data_off + (uint64_t)sy * bi->stride;
        uint8_t *dst = img->rgba + (size_t)y * (size_t)img->width * 4;
        if (bi->bpp <= 8) {
            int rc = row_indexed(src, d, bi, dst, err);
            if (rc != MD_OK)
                return rc;
        } else if (bi->bpp == 24) {
            row_bgr(src, bi->width, dst);
        } else {
            row_masked(src, bi, ch, dst);
        }
    }
    return MD_OK;
}

int img__bmp_decode(const uint8_t *d, size_t n, const img_limits *lim, md_image **out, md_err *err)
{
    bmp_info bi;
    *out = NULL;
    int rc = read_header(d, n, &bi, err);
    if (rc == MD_OK)
        rc = img__check_dims(bi.width, bi.height, lim, "BMP", err);
    if (rc == MD_OK)
        rc = check_layout(n, &bi, err);
    if (rc == MD_OK)
        rc = img__alloc((int)bi.width, (int)bi.height, out, err);
    if (rc == MD_OK)
        rc = decode_rows(d, &bi, *out, err);
    if (rc != MD_OK) {
        img_free(*out);
        *out = NULL;
    }
    return rc;
}
