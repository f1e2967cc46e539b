/* image.h - decoded raster images and the decoders that make them.
 *
 * Every decoder reads the format from the bytes' magic, never from a file name, and checks the
 * dimensions against img_limits before it allocates the pixels, so a small file that claims a
 * huge image is refused cheaply. Pixels are always 8-bit RGBA, straight (not premultiplied)
 * alpha, rows top to bottom, no padding.
 */
#ifndef MD_IMAGE_H
#define MD_IMAGE_H

#include "base/buf.h"
#include "base/err.h"

#include <stddef.h>
#include <stdint.h>

typedef enum img_format {
    IMG_FMT_UNKNOWN = 0,
    IMG_FMT_PNG,
    IMG_FMT_JPEG,
    IMG_FMT_WEBP,
    IMG_FMT_TIFF,
    IMG_FMT_BMP,
} img_format;

typedef struct md_image {
    int width;
    int height;
    int has_alpha;   /* 1 when some pixel has alpha < 255 */
    uint8_t *rgba;   /* width * height * 4 bytes, owned by the image */
} md_image;

typedef struct img_limits {
    uint32_t max_width;   /* default 8192 */
    uint32_t max_height;  /* default 8192 */
    uint64_t max_pixels;  /* default 40,000,000 */
} img_limits;

/* Default limits (8192 x 8192, 40 MP). */
img_limits img_limits_default(void);

/* Format from the first bytes; IMG_FMT_UNKNOWN when none matches. */
img_format img_sniff(const void *data, size_t len);
/* "png", "jpeg", "webp", "tiff", "bmp" or "unknown". Static storage. */
const char *img_format_name(img_format f);

/* Read only the header: format and dimensions, checked against lim (NULL = defaults).
 * Errors: MD_E_UNSUPPORTED_FORMAT, MD_E_IMAGE_TOO_LARGE, MD_E_IMAGE_CORRUPT, MD_E_IMAGE_TRUNCATED. */
int img_probe(const void *data, size_t len, const img_limits *lim, img_format *fmt, int *width,
              int *height, md_err *err);

/* Decode to RGBA. *out is new; free with img_free(). lim may be NULL (defaults).
 * Errors as img_probe, plus MD_E_NOMEM. */
int img_decode(const void *data, size_t len, const img_limits *lim, md_image **out, md_err *err);
/* Read a file and decode it. Errors also MD_E_IO / MD_E_FILE_NOT_FOUND. */
int img_load_file(const char *path, const img_limits *lim, md_image **out, md_err *err);

/* New blank image (all zero = transparent black); NULL on OOM or bad size. */
md_image *img_new(int width, int height);
void img_free(md_image *img);

/* Encode img as fmt (IMG_FMT_JPEG, IMG_FMT_PNG or IMG_FMT_WEBP), appending the bytes to out
 * (the caller's buffer; its maximum bounds the result). quality 1..100 for JPEG and WebP (0 =
 * 90); PNG is lossless and keeps alpha when img->has_alpha; JPEG drops alpha (composite first
 * for a background); WebP keeps it. On failure out is as it was. Errors: MD_E_INVALID_PARAM
 * (field "output_format" / "jpeg_quality"), MD_E_IMAGE_TOO_LARGE (WebP past 16383 px, field
 * "output_format"), MD_E_TOO_LARGE (out's maximum), MD_E_NOMEM, MD_E_INTERNAL. */
int img_encode(const md_image *img, img_format fmt, int quality, md_buf *out, md_err *err);

/* EXIF orientation (1..8) of a JPEG (APP1 "Exif") or WebP (EXIF chunk); 1 when there is none,
 * for other formats (TIFF's decoder applies its own tag) and for a malformed EXIF block. */
int img_exif_orientation(const void *data, size_t len);
/* Turn *img upright for an EXIF orientation: 1 leaves it, 2..8 replace *img with a new image
 * (the old one freed; 5..8 swap width and height). On failure *img is unchanged.
 * MD_E_INVALID_PARAM (field "orientation") outside 1..8, MD_E_NOMEM. */
int img_apply_orientation(md_image **img, int orientation, md_err *err);

/* A copy of img shrunk to fit max_w x max_h (aspect kept, each side at least 1; an image that
 * fits already is copied at its size), by area averaging (resize.c). *out is new (img_free).
 * MD_E_INVALID_PARAM (field "size") for a box under 1 x 1, MD_E_NOMEM. */
int img_fit(const md_image *img, int max_w, int max_h, md_image **out, md_err *err);
/* ---- faces (faces.c): OpenCV Haar cascades evaluated here ---- */
typedef struct img_cascade img_cascade;
typedef struct img_box {
    int x, y, w, h; /* pixels of the image searched */
    int score;      /* raw detections merged into this one */
} img_box;
/* Debian's opencv-data frontal face cascade (scripts/deps.sh installs it). */
#define IMG_FACE_CASCADE "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml"
/* Read a BOOST + HAAR stump cascade XML. *out is new (img_cascade_free). MD_E_FILE_NOT_FOUND,
 * MD_E_IO, MD_E_UNSUPPORTED (trees, tilted features, LBP), MD_E_MODEL_INVALID (field
 * "cascade"), MD_E_NOMEM. */
int img_cascade_load(const char *path, img_cascade **out, md_err *err);
void img_cascade_free(img_cascade *c); /* NULL ok */
/* Faces of img at least min_size pixels wide (>= the cascade's window), grouped as OpenCV's
 * detectMultiScale (scale step 1.1, min neighbours 3). Up to max boxes into out; *found gets
 * their number. c is read-only here: one cascade serves many threads. MD_E_NOMEM. */
int img_faces_detect(const img_cascade *c, const md_image *img, int min_size, img_box *out,
                     int max, int *found, md_err *err);

/* Composite in place over an opaque background colour; afterwards has_alpha = 0. */
void img_composite(md_image *img, uint8_t r, uint8_t g, uint8_t b);

#endif
