/* tiff.c - TIFF from memory through libtiff (TIFFClientOpenExt over a read-only buffer).
 *
 * libtiff can read almost any TIFF into RGBA with TIFFReadRGBAImageOriented; what this file
 * adds is the safety around it:
 *   1. Errors and warnings go to per-handle handlers (libtiff >= 4.5), never to stderr and never
 *      through the process-wide handlers, so concurrent decodes do not share state.
 *   2. Every strip or tile must lie inside the buffer before pixels are read, which is how a
 *      cut-off file is told apart (MD_E_IMAGE_TRUNCATED) from a damaged one.
 *   3. The RGBA reader returns premultiplied alpha; we undo it, since md_image is straight alpha.
 */
#include "image/image_int.h"

#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <tiffio.h>

/* Largest single allocation libtiff may make for its own buffers (strips, tag arrays). */
#define TIFF_MAX_ALLOC ((tmsize_t)256 << 20)

typedef struct memtiff {
    const uint8_t *d;
    size_t n;
    uint64_t pos;
    char msg[200]; /* first error libtiff reported */
} memtiff;

static tmsize_t mt_read(thandle_t h, void *buf, tmsize_t size)
{
    memtiff *m = h;
    if (size <= 0 || m->pos >= m->n)
        return 0;
    size_t k = m->n - (size_t)m->pos;
    if ((uint64_t)size < k)
        k = (size_t)size;
    memcpy(buf, m->d + m->pos, k);
    m->pos += k;
    return (tmsize_t)k;
}

static tmsize_t mt_write(thandle_t h, void *buf, tmsize_t size)
{
    (void)h, (void)buf, (void)size;
    return -1; /* read-only */
}

static toff_t mt_seek(thandle_t h, toff_t off, int whence)
{
    memtiff *m = h;
    uint64_t base = whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->n : 0;
    if (off > UINT64_MAX - base)
        return (toff_t)-1;
    m->pos = base + off;
    return m->pos;
}

static int mt_close(thandle_t h)
{
    (void)h;
    return 0;
}

static toff_t mt_size(thandle_t h) { return ((memtiff *)h)->n; }

static int mt_map(thandle_t h, void **base, toff_t *size)
{
    (void)h, (void)base, (void)size;
    return 0; /* not mapped: libtiff reads through mt_read */
}

static void mt_unmap(thandle_t h, void *base, toff_t size) { (void)h, (void)base, (void)size; }

static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif, (void)module;
    memtiff *m = user;
    if (m->msg[0] == '\0')
        vsnprintf(m->msg, sizeof m->msg, fmt, ap);
    return 1; /* handled: keeps libtiff's default stderr handler quiet */
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif, (void)user;
    char line[200];
    vsnprintf(line, sizeof line, fmt, ap);
    md_log(MD_LOG_DEBUG, "tiff warning (%s): %s", module ? module : "", line);
    return 1;
}

/* Whether the first IFD offset in the header points past the end of the data. */
static int header_truncated(const uint8_t *d, size_t n)
{
    if (n < 8)
        return 1;
    int le = d[0] == 'I';
    int big = (le ? d[2] : d[3]) == 0x2b;
    size_t width = big ? 8 : 4, at = big ? 8 : 4;
    if (n < at + width)
        return 1;
    uint64_t off = 0;
    for (size_t i = 0; i < width; i++)
        off |= (uint64_t)d[at + (le ? i : width - 1 - i)] << (8 * (le ? i : width - 1 - i));
    return off >= n;
}

/* *out is new (TIFFClose) on success. */
static int open_tiff(memtiff *m, TIFF **out, md_err *err)
{
    *out = NULL;
    TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
    if (!o)
        return md_fail(err, MD_E_NOMEM, "image", "out of memory decoding TIFF");
    TIFFOpenOptionsSetMaxSingleMemAlloc(o, TIFF_MAX_ALLOC);
    TIFFOpenOptionsSetErrorHandlerExtR(o, on_error, m);
    TIFFOpenOptionsSetWarningHandlerExtR(o, on_warning, m);
    *out = TIFFClientOpenExt("memory", "rm", m, mt_read, mt_write, mt_seek, mt_close, mt_size,
                             mt_map, mt_unmap, o);
    TIFFOpenOptionsFree(o);
    if (*out)
        return MD_OK;
    if (header_truncated(m->d, m->n))
        return md_fail(err, MD_E_IMAGE_TRUNCATED, "image",
                       "TIFF data ends before its first directory");
    return md_fail(err, MD_E_IMAGE_CORRUPT, "image", "corrupt TIFF (%s)",
                   m->msg[0] ? m->msg : "cannot read the directory");
}

static int read_dims(TIFF *tif, const img_limits *lim, int *w, int *h, md_err *err)
{
    uint32_t w32 = 0, h32 = 0;
    if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w32) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h32))
        return md_fail(err, MD_E_IMAGE_CORRUPT, "image", "corrupt TIFF (no image size)");
    int rc = img__check_dims(w32, h32, lim, "TIFF", err);
    *w = (int)w32;
    *h = (int)h32;
    return rc;
}

/* Invariant 2: all strips/tiles inside the buffer. */
static int check_striles(TIFF *tif, size_t n, md_err *err)
{
    uint32_t count = TIFFIsTiled(tif) ? TIFFNumberOfTiles(tif) : TIFFNumberOfStrips(tif);
    for (uint32_t i = 0; i < count; i++) {
        uint64_t off = TIFFGetStrileOffset(tif, i), bc = TIFFGetStrileByteCount(tif, i);
        if (off > n || bc > n - off)
            return md_fail(err, MD_E_IMAGE_TRUNCATED, "image",
                           "TIFF data ends early (strip %u of %u lies past the end)", i + 1, count);
    }
    return MD_OK;
}

int img__tiff_probe(const uint8_t *d, size_t n, const img_limits *lim, int *w, int *h, md_err *err)
{
    memtiff m = {.d = d, .n = n};
    TIFF *tif;
    int rc = open_tiff(&m, &tif, err);
    if (rc != MD_OK)
        return rc;
    rc = read_dims(tif, lim, w, h, err);
    TIFFClose(tif);
    return rc;
}

/* Packed ABGR words from libtiff, premultiplied, to straight RGBA bytes in place. */
static void unpack_rgba(uint8_t *p, size_t npix)
{
    for (size_t i = 0; i < npix; i++, p += 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        unsigned r = TIFFGetR(v), g = TIFFGetG(v), b = TIFFGetB(v), a = TIFFGetA(v);
        if (a != 0 && a != 255) {
            r = (r * 255 + a / 2) / a;
            g = (g * 255 + a / 2) / a;
            b = (b * 255 + a / 2) / a;
        }
        p[0] = (uint8_t)(r > 255 ? 255 : r);
        p[1] = (uint8_t)(g > 255 ? 255 : g);
        p[2] = (uint8_t)(b > 255 ? 255 : b);
        p[3] = (uint8_t)a;
    }
}

static int read_pixels(TIFF *tif, memtiff *m, md_image *img, md_err *err)
{
    char emsg[1024] = "";
    if (!TIFFRGBAImageOK(tif, emsg))
        return md_fail(err, MD_E_UNSUPPORTED_FORMAT, "image", "unsupported TIFF: %s", emsg);
    if (!TIFFReadRGBAImageOriented(tif, (uint32_t)img->width, (uint32_t)img->height,
                                   (uint32_t *)(void *)img->rgba, ORIENTATION_TOPLEFT, 0))
        return md_fail(err, MD_E_IMAGE_CORRUPT, "image", "corrupt TIFF (%s)",
                       m->msg[0] ? m->msg : "cannot read the pixels");
    unpack_rgba(img->rgba, (size_t)img->width * (size_t)img->height);
    return MD_OK;
}

int img__tiff_decode(const uint8_t *d, size_t n, const img_limits *lim, md_image **out,
                     md_err *err)
{
    memtiff m = {.d = d, .n = n};
    int w, h;
    *out = NULL;
    TIFF *tif;
    int rc = open_tiff(&m, &tif, err);
    if (rc != MD_OK)
        return rc;
    rc = read_dims(tif, lim, &w, &h, err);
    if (rc == MD_OK)
        rc = check_striles(tif, n, err);
    if (rc == MD_OK)
        rc = img__alloc(w, h, out, err);
    if (rc == MD_OK)
        rc = read_pixels(tif, &m, *out, err);
    TIFFClose(tif);
    if (rc != MD_OK) {
        img_free(*out);
        *out = NULL;
    }
    return rc;
}
