/* png.c - PNG through libspng: every bit depth and colour type to 8-bit RGBA, tRNS applied,
 * no gamma correction (browsers and Pillow ignore gAMA for sRGB-ish icons, and the SSIM we
 * report must compare with the raster as others see it). */
#include "image/image_int.h"

#include <spng.h>

/* Our code for a libspng error: running out of bytes is truncation, anything else is corrupt. */
static int spng_fail(int r, const char *stage, md_err *err)
{
    if (r == SPNG_IO_EOF || r == SPNG_EOF)
        return md_fail(err, MD_E_IMAGE_TRUNCATED, "image", "PNG data ends early (%s)", stage);
    if (r == SPNG_EMEM)
        return md_fail(err, MD_E_NOMEM, "image", "out of memory decoding PNG");
    return md_fail(err, MD_E_IMAGE_CORRUPT, "image", "corrupt PNG (%s: %s)", stage,
                   spng_strerror(r));
}

/* Open a context over the buffer and read IHDR; *ctx is new (spng_ctx_free) on success. */
static int open_png(const uint8_t *d, size_t n, const img_limits *lim, spng_ctx **ctx, int *w,
                    int *h, md_err *err)
{
    struct spng_ihdr ihdr;
    *ctx = spng_ctx_new(0);
    if (!*ctx)
        return md_fail(err, MD_E_NOMEM, "image", "out of memory decoding PNG");
    /* Ancillary chunks (text, ICC) are capped so a small file cannot make libspng buffer a lot. */
    spng_set_chunk_limits(*ctx, 8u << 20, 32u << 20);
    int r = spng_set_png_buffer(*ctx, d, n);
    if (r == 0)
        r = spng_get_ihdr(*ctx, &ihdr);
    int rc = r ? spng_fail(r, "header", err)
               : img__check_dims(ihdr.width, ihdr.height, lim, "PNG", err);
    if (rc != MD_OK) {
        spng_ctx_free(*ctx);
        *ctx = NULL;
        return rc;
    }
    *w = (int)ihdr.width;
    *h = (int)ihdr.height;
    return MD_OK;
}

int img__png_probe(const uint8_t *d, size_t n, const img_limits *lim, int *w, int *h, md_err *err)
{
    spng_ctx *ctx;
    int rc = open_png(d, n, lim, &ctx, w, h, err);
    spng_ctx_free(ctx);
    return rc;
}

int img__png_decode(const uint8_t *d, size_t n, const img_limits *lim, md_image **out, md_err *err)
{
    spng_ctx *ctx;
    int w, h;
    size_t size = 0;
    *out = NULL;
    int rc = open_png(d, n, lim, &ctx, &w, &h, err);
    if (rc != MD_OK)
        return rc;
    int r = spng_decoded_image_size(ctx, SPNG_FMT_RGBA8, &size);
    if (r) {
        rc = spng_fail(r, "size", err);
        goto out;
    }
    if (size != (size_t)w * (size_t)h * 4) {
        rc = md_fail(err, MD_E_IMAGE_CORRUPT, "image", "corrupt PNG (unexpected decoded size)");
        goto out;
    }
    rc = img__alloc(w, h, out, err);
    if (rc != MD_OK)
        goto out;
    r = spng_decode_image(ctx, (*out)->rgba, size, SPNG_FMT_RGBA8, SPNG_DECODE_TRNS);
    if (r)
        rc = spng_fail(r, "pixels", err);
out:
    spng_ctx_free(ctx);
    if (rc != MD_OK) {
        img_free(*out);
        *out = NULL;
    }
    return rc;
}
