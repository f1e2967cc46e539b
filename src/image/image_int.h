/* image_int.h - what the per-format decoders share inside src/image (not a public header).
 *
 * Each format file (png.c, jpeg.c, webp.c, tiff.c, bmp.c) exposes a probe (header only: width
 * and height, no pixel allocation) and a decoder. image.c picks one by the bytes' magic. The
 * entry points are non-static so the fuzz targets can drive one format directly.
 * Invariants every decoder keeps:
 *   1. The dimensions are checked with img__check_dims() before any pixel buffer exists.
 *   2. Input that ends early is MD_E_IMAGE_TRUNCATED, input that is inconsistent is
 *      MD_E_IMAGE_CORRUPT, a valid file using a feature we do not read is MD_E_UNSUPPORTED_FORMAT.
 *   3. Nothing is printed: library warnings go to md_log at debug level.
 */
#ifndef MD_IMAGE_INT_H
#define MD_IMAGE_INT_H

#include "image/image.h"

#include <stddef.h>
#include <stdint.h>

/* MD_E_IMAGE_TOO_LARGE (field "width"/"height"/"pixels") when w x h breaks lim, MD_E_IMAGE_CORRUPT
 * for a zero or negative side; lim must not be NULL. */
int img__check_dims(int64_t w, int64_t h, const img_limits *lim, const char *fmt, md_err *err);

/* Allocate the image after the limits passed. *out is new; MD_E_NOMEM on failure. */
int img__alloc(int w, int h, md_image **out, md_err *err);

/* Set img->has_alpha from the pixels. */
void img__update_alpha(md_image *img);

/* Probe: header only. Decode: *out is new (img_free). lim is never NULL here. */
int img__png_probe(const uint8_t *d, size_t n, const img_limits *lim, int *w, int *h, md_err *err);
int img__png_decode(const uint8_t *d, size_t n, const img_limits *lim, md_image **out, md_err *err);
int img__jpeg_probe(const uint8_t *d, size_t n, const img_limits *lim, int *w, int *h, md_err *err);
int img__jpeg_decode(const uint8_t *d, size_t n, const img_limits *lim, md_image **out,
                     md_err *err);
int img__webp_probe(const uint8_t *d, size_t n, const img_limits *lim, int *w, int *h, md_err *err);
int img__webp_decode(const uint8_t *d, size_t n, const img_limits *lim, md_image **out,
                     md_err *err);
int img__tiff_probe(const uint8_t *d, size_t n, const img_limits *lim, int *w, int *h, md_err *err);
int img__tiff_decode(const uint8_t *d, size_t n, const img_limits *lim, md_image **out,
                     md_err *err);
int img__bmp_probe(const uint8_t *d, size_t n, const img_limits *lim, int *w, int *h, md_err *err);
int img__bmp_decode(const uint8_t *d, size_t n, const img_limits *lim, md_image **out, md_err *err);

#endif
