/* image.c - format detection, limits and the shared parts of decoding.
 *
 * The format is chosen by the bytes' magic (img_sniff), never by a file name, and the per-format
 * decoders in this directory do the rest (see image_int.h for their invariants). This file also
 * holds the small helpers every caller needs: loading a file, compositing on a background and
 * the alpha scan that sets has_alpha.
 */
#include "image/image_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Files larger than this are refused before reading: no supported image within the default
 * pixel limits needs more, even uncompressed (40 MP x 4 bytes plus headers). */
#define IMG_MAX_FILE_BYTES ((size_t)256 << 20)

img_limits img_limits_default(void)
{
    img_limits l = {.max_width = 8192, .max_height = 8192, .max_pixels = 40000000ull};
    return l;
}

typedef struct magic {
    img_format fmt;
    size_t off;
    size_t len;
    const char *bytes;
} magic;

static const magic MAGICS[] = {
    {IMG_FMT_PNG, 0, 8, "\x89PNG\r\n\x1a\n"},
    {IMG_FMT_JPEG, 0, 3, "\xff\xd8\xff"},
    {IMG_FMT_WEBP, 0, 4, "RIFF"}, /* plus "WEBP" at offset 8, checked below */
    {IMG_FMT_TIFF, 0, 4, "II*\0"},
    {IMG_FMT_TIFF, 0, 4, "MM\0*"},
    {IMG_FMT_TIFF, 0, 4, "II+\0"}, /* BigTIFF */
    {IMG_FMT_TIFF, 0, 4, "MM\0+"},
    {IMG_FMT_BMP, 0, 2, "BM"},
};

img_format img_sniff(const void *data, size_t len)
{
    const uint8_t *d = data;
    if (!d)
        return IMG_FMT_UNKNOWN;
    for (size_t i = 0; i < sizeof MAGICS / sizeof MAGICS[0]; i++) {
        const magic *m = &MAGICS[i];
        if (len < m->off + m->len || memcmp(d + m->off, m->bytes, m->len) != 0)
            continue;
        if (m->fmt == IMG_FMT_WEBP && (len < 12 || memcmp(d + 8, "WEBP", 4) != 0))
            continue;
        return m->fmt;
    }
    return IMG_FMT_UNKNOWN;
}

/* A short input that is the beginning of some magic is a truncated image, not an unknown one. */
static int is_magic_prefix(const uint8_t *d, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < sizeof MAGICS / sizeof MAGICS[0]; i++) {
        const magic *m = &MAGICS[i];
        size_t need = m->fmt == IMG_FMT_WEBP ? 12 : m->len;
        size_t cmp = len < m->len ? len : m->len;
        if (len < need && memcmp(d, m->bytes, cmp) == 0)
            return 1;
    }
    return 0;
}

const char *img_format_name(img_format f)
{
    switch (f) {
    case IMG_FMT_PNG: return "png";
    case IMG_FMT_JPEG: return "jpeg";
    case IMG_FMT_WEBP: return "webp";
    case IMG_FMT_TIFF: return "tiff";
    case IMG_FMT_BMP: return "bmp";
    default: return "unknown";
    }
}

int img__check_dims(int64_t w, int64_t h, const img_limits *lim, const char *fmt, md_err *err)
{
    if (w <= 0 || h <= 0)
        return md_fail(err, MD_E_IMAGE_CORRUPT, "image", "%s header gives an empty size %lldx%lld",
                       fmt, (long long)w, (long long)h);
    if ((uint64_t)w > lim->max_width)
        return md_fail(err, MD_E_IMAGE_TOO_LARGE, "width", "width %lld exceeds the limit of %u px",
                       (long long)w, lim->max_width);
    if ((uint64_t)h > lim->max_height)
        return md_fail(err, MD_E_IMAGE_TOO_LARGE, "height",
                       "height %lld exceeds the limit of %u px", (long long)h, lim->max_height);
    if ((uint64_t)w * (uint64_t)h > lim->max_pixels)
        return md_fail(err, MD_E_IMAGE_TOO_LARGE, "pixels",
                       "%lldx%lld is more than the limit of %llu pixels", (long long)w,
                       (long long)h, (unsigned long long)lim->max_pixels);
    return MD_OK;
}

md_image *img_new(int width, int height)
{
    if (width <= 0 || height <= 0 || (uint64_t)width * (uint64_t)height > SIZE_MAX / 8)
        return NULL;
    md_image *img = calloc(1, sizeof *img);
    if (!img)
        return NULL;
    img->rgba = calloc((size_t)width * (size_t)height, 4);
    if (!img->rgba) {
        free(img);
        return NULL;
    }
    img->width = width;
    img->height = height;
    return img;
}

void img_free(md_image *img)
{
    if (!img)
        return;
    free(img->rgba);
    free(img);
}

int img__alloc(int w, int h, md_image **out, md_err *err)
{
    *out = img_new(w, h);
    if (!*out)
        return md_fail(err, MD_E_NOMEM, "image", "cannot allocate a %dx%d image", w, h);
    return MD_OK;
}

void img__update_alpha(md_image *img)
{
    size_t n = (size_t)img->width * (size_t)img->height;
    img->has_alpha = 0;
    for (size_t i = 0; i < n; i++) {
        if (img->rgba[i * 4 + 3] != 255) {
            img->has_alpha = 1;
            return;
        }
    }
}

/* Pillow's Image.alpha_composite over an opaque colour, to the same rounding (PRECISION_BITS 7
 * and its shift-based division by 255), so our "source on white" is bit-identical to the one
 * the scoring tool builds and SSIM numbers agree. */
static uint8_t over(uint32_t c, uint32_t a, uint32_t bg)
{
    uint32_t coef1 = a * 255u * 255u * 128u / (255u * 255u);
    uint32_t coef2 = 255u * 128u - coef1;
    uint32_t tmp = c * coef1 + bg * coef2 + (0x80u << 7);
    return (uint8_t)((((tmp >> 8) + tmp) >> 8) >> 7);
}

void img_composite(md_image *img, uint8_t r, uint8_t g, uint8_t b)
{
    if (!img)
        return;
    size_t n = (size_t)img->width * (size_t)img->height;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = img->rgba + i * 4;
        uint32_t a = p[3];
        if (a != 255) {
            p[0] = over(p[0], a, r);
            p[1] = over(p[1], a, g);
            p[2] = over(p[2], a, b);
            p[3] = 255;
        }
    }
    img->has_alpha = 0;
}

static int unknown_format(const uint8_t *d, size_t len, md_err *err)
{
    if (len == 0)
        return md_fail(err, MD_E_UNSUPPORTED_FORMAT, "image", "the input is empty");
    if (is_magic_prefix(d, len))
        return md_fail(err, MD_E_IMAGE_TRUNCATED, "image",
                       "the input ends after %zu bytes, inside the file signature", len);
    return md_fail(err, MD_E_UNSUPPORTED_FORMAT, "image",
                   "not a PNG, JPEG, WebP, TIFF or BMP image (unknown signature)");
}

int img_probe(const void *data, size_t len, const img_limits *lim, img_format *fmt, int *width,
              int *height, md_err *err)
{
    img_limits def = img_limits_default();
    const uint8_t *d = data;
    int w = 0, h = 0, rc;
    img_format f = img_sniff(d, len);
    if (!lim)
        lim = &def;
    switch (f) {
    case IMG_FMT_PNG: rc = img__png_probe(d, len, lim, &w, &h, err); break;
    case IMG_FMT_JPEG: rc = img__jpeg_probe(d, len, lim, &w, &h, err); break;
    case IMG_FMT_WEBP: rc = img__webp_probe(d, len, lim, &w, &h, err); break;
    case IMG_FMT_TIFF: rc = img__tiff_probe(d, len, lim, &w, &h, err); break;
    case IMG_FMT_BMP: rc = img__bmp_probe(d, len, lim, &w, &h, err); break;
    default: rc = unknown_format(d, len, err); break;
    }
    if (fmt)
        *fmt = f;
    if (width)
        *width = rc == MD_OK ? w : 0;
    if (height)
        *height = rc == MD_OK ? h : 0;
    return rc;
}

int img_decode(const void *data, size_t len, const img_limits *lim, md_image **out, md_err *err)
{
    img_limits def = img_limits_default();
    const uint8_t *d = data;
    int rc;
    *out = NULL;
    if (!lim)
        lim = &def;
    switch (img_sniff(d, len)) {
    case IMG_FMT_PNG: rc = img__png_decode(d, len, lim, out, err); break;
    case IMG_FMT_JPEG: rc = img__jpeg_decode(d, len, lim, out, err); break;
    case IMG_FMT_WEBP: rc = img__webp_decode(d, len, lim, out, err); break;
    case IMG_FMT_TIFF: rc = img__tiff_decode(d, len, lim, out, err); break;
    case IMG_FMT_BMP: rc = img__bmp_decode(d, len, lim, out, err); break;
    default: rc = unknown_format(d, len, err); break;
    }
    if (rc != MD_OK) {
        img_free(*out);
        *out = NULL;
        return rc;
    }
    img__update_alpha(*out);
    return MD_OK;
}

/* Read a whole file into a new buffer (free() it). */
static int read_file(const char *path, uint8_t **data, size_t *len, md_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT || errno == ENOTDIR
                   ? md_fail(err, MD_E_FILE_NOT_FOUND, "path", "no such file")
                   : md_fail(err, MD_E_IO, "path", "cannot open the file");
    int rc = MD_OK;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = md_fail(err, MD_E_IO, "path", "not a regular file");
        goto out;
    }
    long size = (long)st.st_size;
    if ((size_t)size > IMG_MAX_FILE_BYTES) {
        rc = md_fail(err, MD_E_IMAGE_TOO_LARGE, "path", "the file is %ld bytes, over the %zu MiB limit",
                     size, IMG_MAX_FILE_BYTES >> 20);
        goto out;
    }
    *data = malloc((size_t)size + 1);
    if (!*data) {
        rc = md_fail(err, MD_E_NOMEM, "path", "cannot allocate %ld bytes", size);
        goto out;
    }
    *len = fread(*data, 1, (size_t)size, f);
    if (*len != (size_t)size) {
        free(*data);
        *data = NULL;
        rc = md_fail(err, MD_E_IO, "path", "short read");
    }
out:
    fclose(f);
    return rc;
}

int img_load_file(const char *path, const img_limits *lim, md_image **out, md_err *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = read_file(path, &data, &len, err);
    if (rc != MD_OK)
        return rc;
    rc = img_decode(data, len, lim, out, err);
    free(data);
    return rc;
}
