/* encode.c - RGBA images to JPEG (libturbojpeg), PNG (libspng) and WebP (libwebp): the same
 * libraries the decoders use, so a result round-trips through img_decode.
 *
 * Invariants:
 *   1. The encoded bytes are appended to the caller's md_buf, whose maximum bounds them; a
 *      failure leaves out's length as it was (anything appended is cut back).
 *   2. JPEG has no alpha: the RGB channels are written as they are (the caller composites first
 *      when it wants a background). PNG keeps alpha when the image has some (RGBA), else RGB.
 *      WebP is lossy at the given quality with alpha kept.
 *   3. Nothing is printed; library errors become MD_E_INTERNAL / MD_E_NOMEM with the stage.
 */
#include "image/image_int.h"

#include "base/buf.h"

#include <spng.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <webp/encode.h>

static int encode_jpeg(const md_image *img, int quality, md_buf *out, md_err *err)
{
    tjhandle tj = tjInitCompress();
    if (!tj)
        return md_fail(err, MD_E_NOMEM, "image", "cannot start the JPEG encoder");
    unsigned char *jpg = NULL;
    unsigned long len = 0;
    int rc = MD_OK;
    if (tjCompress2(tj, img->rgba, img->width, 0, img->height, TJPF_RGBX, &jpg, &len, TJSAMP_420,
                    quality, TJFLAG_ACCURATEDCT) != 0) {
        rc = md_fail(err, MD_E_INTERNAL, "image", "JPEG encoding failed: %s", tjGetErrorStr2(tj));
        goto out;
    }
    rc = md_buf_append(out, jpg, len);
    if (rc != MD_OK)
        md_fail(err, rc, "image", "the encoded JPEG (%lu bytes) does not fit", len);
out:
    tjFree(jpg);
    tjDestroy(tj);
    return rc;
}

/* libspng writes into its own buffer; SPNG_ENCODE_TO_BUFFER + spng_get_png_buffer hands it over. */
static int encode_png(const md_image *img, md_buf *out, md_err *err)
{
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    if (!ctx)
        return md_fail(err, MD_E_NOMEM, "image", "cannot start the PNG encoder");
    int alpha = img->has_alpha;
    size_t px = (size_t)img->width * (size_t)img->height;
    uint8_t *rgb = NULL;
    const uint8_t *src = img->rgba;
    int rc = MD_OK, r = 0;
    if (!alpha) {
        rgb = malloc(px * 3);
        if (!rgb) {
            rc = md_fail(err, MD_E_NOMEM, "image", "out of memory encoding PNG");
            goto out;
        }
        for (size_t i = 0; i < px; i++)
            memcpy(rgb + 3 * i, img->rgba + 4 * i, 3);
        src = rgb;
    }
    struct spng_ihdr ihdr = {.width = (uint32_t)img->width,
                             .height = (uint32_t)img->height,
                             .bit_depth = 8,
                             .color_type = alpha ? SPNG_COLOR_TYPE_TRUECOLOR_ALPHA
                                                 : SPNG_COLOR_TYPE_TRUECOLOR};
    spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    r = spng_set_ihdr(ctx, &ihdr);
    if (r == 0)
        r = spng_encode_image(ctx, src, px * (alpha ? 4 : 3), SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    if (r != 0) {
        rc = md_fail(err, r == SPNG_EMEM ? MD_E_NOMEM : MD_E_INTERNAL, "image",
                     "PNG encoding failed: %s", spng_strerror(r));
        goto out;
    }
    size_t len = 0;
    void *png = spng_get_png_buffer(ctx, &len, &r);
    if (!png) {
        rc = md_fail(err, MD_E_INTERNAL, "image", "PNG encoding failed: %s", spng_strerror(r));
        goto out;
    }
    rc = md_buf_append(out, png, len);
    free(png);
    if (rc != MD_OK)
        md_fail(err, rc, "image", "the encoded PNG (%zu bytes) does not fit", len);
out:
    free(rgb);
    spng_ctx_free(ctx);
    return rc;
}

static int encode_webp(const md_image *img, int quality, md_buf *out, md_err *err)
{
    if (img->width > WEBP_MAX_DIMENSION || img->height > WEBP_MAX_DIMENSION)
        return md_fail(err, MD_E_IMAGE_TOO_LARGE, "output_format",
                       "WebP holds at most %dx%d pixels, the result is %dx%d", WEBP_MAX_DIMENSION,
                       WEBP_MAX_DIMENSION, img->width, img->height);
    uint8_t *webp = NULL;
    size_t len =
        WebPEncodeRGBA(img->rgba, img->width, img->height, img->width * 4, (float)quality, &webp);
    if (len == 0)
        return md_fail(err, MD_E_INTERNAL, "image", "WebP encoding failed");
    int rc = md_buf_append(out, webp, len);
    WebPFree(webp);
    if (rc != MD_OK)
        return md_fail(err, rc, "image", "the encoded WebP (%zu bytes) does not fit", len);
    return MD_OK;
}

int img_encode(const md_image *img, img_format fmt, int quality, md_buf *out, md_err *err)
{
    if (!img || !img->rgba || img->width <= 0 || img->height <= 0)
        return md_fail(err, MD_E_INVALID_PARAM, "image", "no image to encode");
    if (quality == 0)
        quality = 90;
    if (quality < 1 || quality > 100)
        return md_fail(err, MD_E_INVALID_PARAM, "jpeg_quality", "must be in 1..100, got %d",
                       quality);
    size_t before = out->len;
    int rc;
    switch (fmt) {
    case IMG_FMT_JPEG:
        rc = encode_jpeg(img, quality, out, err);
        break;
    case IMG_FMT_PNG:
        rc = encode_png(img, out, err);
        break;
    case IMG_FMT_WEBP:
        rc = encode_webp(img, quality, out, err);
        break;
    default:
        return md_fail(err, MD_E_INVALID_PARAM, "output_format",
                       "cannot encode %s (jpg, png or webp)", img_format_name(fmt));
    }
    if (rc != MD_OK && out->len > before) {
        out->len = before;
        out->data[before] = '\0';
    }
    return rc;
}
