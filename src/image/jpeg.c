/* jpeg.c - JPEG through libturbojpeg: greyscale, YCbCr and (Adobe, inverted) CMYK/YCCK to RGBA.
 *
 * libjpeg reports a file cut short as a *warning* ("Premature end of JPEG file", or "premature
 * end of data segment" when an EOI is glued onto the cut) and fills the rest with grey; we turn
 * that into MD_E_IMAGE_TRUNCATED rather than tracing a half-grey image (issue 8: a 1.7 KB cut of
 * a 6000x6000 JPEG with an EOI appended was accepted). Other warnings (extraneous bytes and the
 * like) leave a usable image and are only logged.
 * TurboJPEG keeps libjpeg's messages in the handle, so nothing reaches stderr.
 */
#include "image/image_int.h"

#include "base/log.h"

#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

/* Decode flags: stop after 500 progressive scans (a tiny file can otherwise cost minutes). */
#define JPEG_FLAGS TJFLAG_LIMITSCANS

/* Does a libjpeg warning mean the data ran out? "Premature end of JPEG file" (the bytes end)
 * and "Corrupt JPEG data: premature end of data segment" (a marker, often an EOI glued onto a
 * cut file, arrives inside the entropy-coded data) both do; libjpeg fills the rest with grey. */
static int warning_is_truncation(const char *msg)
{
    return strcasestr(msg, "premature end") != NULL;
}

/* libjpeg's memory source inserts a fake EOI when the bytes run out, so a header cut short
 * surfaces as "missing SOS marker" rather than as an end-of-data error. */
static int jpeg_fail(tjhandle tj, const uint8_t *d, size_t n, const char *stage, md_err *err)
{
    const char *msg = tjGetErrorStr2(tj);
    int ended = n >= 2 && d[n - 2] == 0xff && d[n - 1] == 0xd9;
    if (warning_is_truncation(msg) || (!ended && strstr(msg, "missing SOS")))
        return md_fail(err, MD_E_IMAGE_TRUNCATED, "image", "JPEG data ends early (%s)", stage);
    if (strstr(msg, "Unsupported") || strstr(msg, "unsupported"))
        return md_fail(err, MD_E_UNSUPPORTED_FORMAT, "image", "unsupported JPEG: %s", msg);
    return md_fail(err, MD_E_IMAGE_CORRUPT, "image", "corrupt JPEG (%s: %s)", stage, msg);
}

static int read_header(tjhandle tj, const uint8_t *d, size_t n, const img_limits *lim, int *w,
                       int *h, int *cs, md_err *err)
{
    int subsamp = 0;
    *w = *h = 0;
    if (tjDecompressHeader3(tj, d, (unsigned long)n, w, h, &subsamp, cs) != 0)
        return jpeg_fail(tj, d, n, "header", err);
    /* A stream that stops before its frame header "succeeds" as tables-only, with no size. */
    if (*w <= 0 || *h <= 0) {
        int ended = n >= 2 && d[n - 2] == 0xff && d[n - 1] == 0xd9;
        return md_fail(err, ended ? MD_E_IMAGE_CORRUPT : MD_E_IMAGE_TRUNCATED, "image",
                       "JPEG has no frame header%s", ended ? "" : " (data ends early)");
    }
    return img__check_dims(*w, *h, lim, "JPEG", err);
}

int img__jpeg_probe(const uint8_t *d, size_t n, const img_limits *lim, int *w, int *h, md_err *err)
{
    int cs;
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return md_fail(err, MD_E_NOMEM, "image", "cannot start the JPEG decoder");
    int rc = read_header(tj, d, n, lim, w, h, &cs, err);
    tjDestroy(tj);
    return rc;
}

/* Adobe CMYK JPEGs store inverted ink values, so R = C' * K' / 255 (as Pillow and libjpeg-turbo's
 * own tools assume). Converts in place, 4 bytes per pixel. */
static void cmyk_to_rgba(uint8_t *p, size_t npix)
{
    for (size_t i = 0; i < npix; i++, p += 4) {
        unsigned k = p[3];
        p[0] = (uint8_t)((p[0] * k + 127) / 255);
        p[1] = (uint8_t)((p[1] * k + 127) / 255);
        p[2] = (uint8_t)((p[2] * k + 127) / 255);
        p[3] = 255;
    }
}

static int decompress(tjhandle tj, const uint8_t *d, size_t n, md_image *img, int pf, int flags)
{
    return tjDecompress2(tj, d, (unsigned long)n, img->rgba, img->width, 0, img->height, pf, flags);
}

/* Pixels, refusing data that ends early. The first pass stops at the first warning, so a 2 KB
 * file that claims 6000x6000 costs a few rows, not 36 million grey pixels; TurboJPEG keeps only
 * the first warning's text, and stopping there also means a truncation cannot hide behind an
 * earlier harmless warning. A harmless one (extraneous bytes, for instance) gets a second pass
 * that reads through warnings, as every viewer does. */
static int decode_pixels(tjhandle tj, const uint8_t *d, size_t n, int cs, md_image *img,
                         md_err *err)
{
    int cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    int pf = cmyk ? TJPF_CMYK : TJPF_RGBA;
    if (decompress(tj, d, n, img, pf, JPEG_FLAGS | TJFLAG_STOPONWARNING) != 0) {
        if (tjGetErrorCode(tj) != TJERR_WARNING || warning_is_truncation(tjGetErrorStr2(tj)))
            return jpeg_fail(tj, d, n, "pixels", err);
        md_log(MD_LOG_DEBUG, "jpeg warning: %s", tjGetErrorStr2(tj));
        if (decompress(tj, d, n, img, pf, JPEG_FLAGS) != 0 &&
            (tjGetErrorCode(tj) != TJERR_WARNING || warning_is_truncation(tjGetErrorStr2(tj))))
            return jpeg_fail(tj, d, n, "pixels", err);
    }
    if (cmyk)
        cmyk_to_rgba(img->rgba, (size_t)img->width * (size_t)img->height);
    return MD_OK;
}

int img__jpeg_decode(const uint8_t *d, size_t n, const img_limits *lim, md_image **out,
                     md_err *err)
{
    int w, h, cs;
    *out = NULL;
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return md_fail(err, MD_E_NOMEM, "image", "cannot start the JPEG decoder");
    int rc = read_header(tj, d, n, lim, &w, &h, &cs, err);
    if (rc == MD_OK)
        rc = img__alloc(w, h, out, err);
    if (rc == MD_OK)
        rc = decode_pixels(tj, d, n, cs, *out, err);
    tjDestroy(tj);
    if (rc != MD_OK) {
        img_free(*out);
        *out = NULL;
    }
    return rc;
}
