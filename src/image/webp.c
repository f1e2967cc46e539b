/* webp.c - WebP (lossy, lossless, with or without alpha) through libwebp's advanced decoding
 * API, decoding straight into our RGBA buffer. Animated WebP is refused as unsupported: a
 * logo tracer has no meaningful answer for many frames. */
#include "image/image_int.h"

#include <webp/decode.h>

static int webp_fail(VP8StatusCode st, const char *stage, md_err *err)
{
    switch (st) {
    case VP8_STATUS_NOT_ENOUGH_DATA:
        return md_fail(err, MD_E_IMAGE_TRUNCATED, "image", "WebP data ends early (%s)", stage);
    case VP8_STATUS_UNSUPPORTED_FEATURE:
        return md_fail(err, MD_E_UNSUPPORTED_FORMAT, "image",
                       "unsupported WebP feature (%s)", stage);
    case VP8_STATUS_OUT_OF_MEMORY:
        return md_fail(err, MD_E_NOMEM, "image", "out of memory decoding WebP");
    default:
        return md_fail(err, MD_E_IMAGE_CORRUPT, "image", "corrupt WebP (%s, status %d)", stage,
                       (int)st);
    }
}

static int read_features(const uint8_t *d, size_t n, const img_limits *lim,
                         WebPBitstreamFeatures *f, md_err *err)
{
    VP8StatusCode st = WebPGetFeatures(d, n, f);
    if (st != VP8_STATUS_OK)
        return webp_fail(st, "header", err);
    if (f->has_animation)
        return md_fail(err, MD_E_UNSUPPORTED_FORMAT, "image", "animated WebP is not supported");
    return img__check_dims(f->width, f->height, lim, "WebP", err);
}

int img__webp_probe(const uint8_t *d, size_t n, const img_limits *lim, int *w, int *h, md_err *err)
{
    WebPBitstreamFeatures f;
    int rc = read_features(d, n, lim, &f, err);
    if (rc == MD_OK) {
        *w = f.width;
        *h = f.height;
    }
    return rc;
}

int img__webp_decode(const uint8_t *d, size_t n, const img_limits *lim, md_image **out,
                     md_err *err)
{
    WebPDecoderConfig cfg;
    *out = NULL;
    if (!WebPInitDecoderConfig(&cfg))
        return md_fail(err, MD_E_INTERNAL, "image", "libwebp version mismatch");
    int rc = read_features(d, n, lim, &cfg.input, err);
    if (rc != MD_OK)
        return rc;
    rc = img__alloc(cfg.input.width, cfg.input.height, out, err);
    if (rc != MD_OK)
        return rc;
    size_t size = (size_t)cfg.input.width * (size_t)cfg.input.height * 4;
    cfg.output.colorspace = MODE_RGBA; /* straight alpha, as md_image wants */
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = (*out)->rgba;
    cfg.output.u.RGBA.stride = cfg.input.width * 4;
    cfg.output.u.RGBA.size = size;
    VP8StatusCode st = WebPDecode(d, n, &cfg);
    WebPFreeDecBuffer(&cfg.output);
    if (st != VP8_STATUS_OK) {
        img_free(*out);
        *out = NULL;
        return webp_fail(st, "pixels", err);
    }
    return MD_OK;
}
