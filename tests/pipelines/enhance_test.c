/* enhance_test.c - pl_enhance with the stand-in networks of tests/fixtures/enhance (gen.py: the
 * real ESRGAN weights are not in the repository): x4 gives exactly 4x the size, a run cut into
 * many tiles equals one run over the whole image within rounding (seams), alpha is kept and
 * upscaled, EXIF orientation turns the photo, every output format decodes back, the parameter
 * errors name their field, face_enhance finds the face of face.jpg and changes only around it,
 * a cancelled token stops it, progress is
 * reported per tile and the estimate grows with the image. Self-ensemble: the result is the
 * average of 8 plain runs on the flipped and rotated photo, each turned back (within rounding),
 * tiled or not; progress counts its 8 passes per tile and a cancel stops it between passes. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "models/models.h"
#include "pipelines/pipelines.h"

static mdl_registry *reg;

static int setup(void **state)
{
    (void)state;
    const char *src = getenv("MODELD_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/enhance", src ? src : ".");
    mdl_registry_opts o = {.shipped_dir = dir, .load_all = false};
    md_err e;
    return mdl_registry_open(&o, &reg, &e) == MD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    mdl_registry_close(reg);
    return 0;
}

/* A w x h photo-like pattern (smooth gradients and an edge), alpha from a ramp when alpha. */
static md_image *pattern(int w, int h, int alpha)
{
    md_image *img = img_new(w, h);
    assert_non_null(img);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img->rgba + ((size_t)y * w + x) * 4;
            p[0] = (uint8_t)(x * 255 / (w - 1));
            p[1] = (uint8_t)(y * 255 / (h - 1));
            p[2] = (uint8_t)((x + y) % 17 * 15 + (x > w / 2 ? 0 : 0));
            p[3] = alpha ? (uint8_t)(x * 255 / (w - 1)) : 255;
        }
    img->has_alpha = alpha;
    return img;
}

static md_buf encoded(const md_image *img, img_format f)
{
    md_buf b;
    md_buf_init(&b, 64 << 20);
    assert_int_equal(img_encode(img, f, 95, &b, NULL), MD_OK);
    return b;
}

static pl_enh_in png_in(const md_buf *b, int scale)
{
    pl_enh_in in = {.image = b->data,
                    .image_len = b->len,
                    .quality = PL_ENH_FAST,
                    .scale = scale,
                    .out_format = IMG_FMT_PNG};
    return in;
}

static md_image *run_ok(pl_ctx *cx, const pl_enh_in *in, pl_enh_out *out)
{
    md_err e;
    int rc = pl_enhance(cx, in, out, &e);
    if (rc != MD_OK)
        fail_msg("pl_enhance: %s (%s)", md_err_message(&e), e.field);
    md_image *img = NULL;
    assert_int_equal(img_decode(out->image.data, out->image.len, NULL, &img, NULL), MD_OK);
    return img;
}

static void test_x4_exact_size(void **state)
{
    (void)state;
    md_image *src = pattern(37, 23, 0);
    md_buf b = encoded(src, IMG_FMT_PNG);
    pl_ctx cx = {.models = reg};
    pl_enh_in in = png_in(&b, 4);
    pl_enh_out out;
    md_image *res = run_ok(&cx, &in, &out);
    assert_int_equal(res->width, 4 * 37);
    assert_int_equal(res->height, 4 * 23);
    assert_int_equal(out.width, 148);
    assert_int_equal(out.height, 92);
    assert_int_equal(out.format, IMG_FMT_PNG);
    /* the stand-in net is the input upsampled plus a small residual: colours follow the input */
    const uint8_t *p = res->rgba + ((size_t)(4 * 10 + 1) * res->width + 4 * 30 + 1) * 4;
    const uint8_t *q = src->rgba + ((size_t)10 * src->width + 30) * 4;
    assert_true(abs(p[0] - q[0]) < 40 && abs(p[1] - q[1]) < 40);
    img_free(res);
    pl_enh_out_free(&out);
    md_buf_free(&b);
    img_free(src);
}

static void test_tiled_equals_untiled(void **state)
{
    (void)state;
    md_image *src = pattern(61, 45, 0);
    md_buf b = encoded(src, IMG_FMT_PNG);
    pl_ctx cx = {.models = reg};
    pl_enh_in in = png_in(&b, 2);
    pl_enh_out whole, tiled;
    md_image *a = run_ok(&cx, &in, &whole);
    assert_int_equal(whole.tiles, 1);
    in.tile = 16;
    md_image *t = run_ok(&cx, &in, &tiled);
    assert_int_equal(tiled.tiles, 4 * 3);
    assert_int_equal(a->width, t->width);
    assert_int_equal(a->height, t->height);
    int worst = 0;
    for (size_t i = 0; i < (size_t)a->width * a->height * 4; i++) {
        int d = abs(a->rgba[i] - t->rgba[i]);
        worst = d > worst ? d : worst;
    }
    assert_true(worst <= 1);
    img_free(a);
    img_free(t);
    pl_enh_out_free(&whole);
    pl_enh_out_free(&tiled);
    md_buf_free(&b);
    img_free(src);
}

static void test_alpha_kept(void **state)
{
    (void)state;
    md_image *src = pattern(20, 12, 1);
    md_buf b = encoded(src, IMG_FMT_PNG);
    pl_ctx cx = {.models = reg};
    pl_enh_in in = png_in(&b, 4);
    in.tile = 8;
    pl_enh_out out;
    md_image *res = run_ok(&cx, &in, &out);
    assert_true(res->has_alpha);
    /* left edge transparent, right edge opaque, a ramp between, as in the source */
    assert_true(res->rgba[3] < 16);
    assert_true(res->rgba[((size_t)res->width - 1) * 4 + 3] > 240);
    const uint8_t *mid = res->rgba + ((size_t)20 * res->width + 40) * 4;
    assert_true(abs(mid[3] - 128) < 24);
    img_free(res);
    pl_enh_out_free(&out);
    md_buf_free(&b);
    img_free(src);
}

/* A JPEG with an APP1 Exif segment carrying orientation o, spliced after the SOI. */
static md_buf jpeg_with_orientation(const md_image *img, int o)
{
    md_buf j = encoded(img, IMG_FMT_JPEG);
    static const uint8_t tiff[] = {'I',  'I', 42, 0, 8, 0, 0, 0,             /* IFD0 at 8 */
                                   1,    0,                                  /* one entry */
                                   0x12, 1,   3,  0, 1, 0, 0, 0, 0, 0, 0, 0, /* 0x0112 SHORT 1 */
                                   0,    0,   0,  0};
    uint8_t seg[4 + 6 + sizeof tiff];
    size_t len = sizeof seg - 2;
    seg[0] = 0xff, seg[1] = 0xe1, seg[2] = (uint8_t)(len >> 8), seg[3] = (uint8_t)len;
    memcpy(seg + 4, "Exif\0\0", 6);
    memcpy(seg + 10, tiff, sizeof tiff);
    seg[10 + 18] = (uint8_t)o;
    md_buf out;
    md_buf_init(&out, 64 << 20);
    assert_int_equal(md_buf_append(&out, j.data, 2), MD_OK);
    assert_int_equal(md_buf_append(&out, seg, sizeof seg), MD_OK);
    assert_int_equal(md_buf_append(&out, j.data + 2, j.len - 2), MD_OK);
    md_buf_free(&j);
    return out;
}

static void test_exif_orientation(void **state)
{
    (void)state;
    md_image *src = pattern(24, 10, 0);
    md_buf b = jpeg_with_orientation(src, 6);
    assert_int_equal(img_exif_orientation(b.data, b.len), 6);
    pl_ctx cx = {.models = reg};
    pl_enh_in in = png_in(&b, 2);
    pl_enh_out out;
    md_image *res = run_ok(&cx, &in, &out);
    assert_int_equal(res->width, 2 * 10); /* turned: width and height swapped */
    assert_int_equal(res->height, 2 * 24);
    /* orientation 6: the source's left column is the top row; its red grows along x, so down */
    assert_true(res->rgba[0] < 60);
    assert_true(res->rgba[((size_t)(res->height - 1) * res->width) * 4] > 190);
    img_free(res);
    pl_enh_out_free(&out);
    md_buf_free(&b);
    img_free(src);
}

static void test_formats_round_trip(void **state)
{
    (void)state;
    md_image *src = pattern(16, 16, 0);
    md_buf b = encoded(src, IMG_FMT_PNG);
    pl_ctx cx = {.models = reg};
    const img_format f[] = {IMG_FMT_JPEG, IMG_FMT_PNG, IMG_FMT_WEBP};
    for (int i = 0; i < 3; i++) {
        pl_enh_in in = png_in(&b, 2);
        in.out_format = f[i];
        pl_enh_out out;
        md_image *res = run_ok(&cx, &in, &out);
        assert_int_equal(img_sniff(out.image.data, out.image.len), f[i]);
        assert_int_equal(res->width, 32);
        img_free(res);
        pl_enh_out_free(&out);
    }
    md_buf_free(&b);
    img_free(src);
}

static void expect_err(pl_enh_in in, int code, const char *field)
{
    pl_ctx cx = {.models = reg};
    pl_enh_out out;
    md_err e;
    assert_int_equal(pl_enhance(&cx, &in, &out, &e), code);
    assert_string_equal(e.field, field);
    assert_int_equal(out.image.len, 0);
    pl_enh_out_free(&out);
}

static void test_bad_parameters(void **state)
{
    (void)state;
    md_image *src = pattern(8, 8, 0);
    md_buf b = encoded(src, IMG_FMT_PNG);
    pl_enh_in in = png_in(&b, 5);
    expect_err(in, MD_E_INVALID_PARAM, "upscale");
    in = png_in(&b, 2);
    in.quality = (pl_enh_quality)7;
    expect_err(in, MD_E_INVALID_PARAM, "quality");
    in = png_in(&b, 2);
    in.out_format = IMG_FMT_TIFF;
    expect_err(in, MD_E_INVALID_PARAM, "output_format");
    in = png_in(&b, 2);
    in.image = "GIF89a....";
    in.image_len = 10;
    expect_err(in, MD_E_UNSUPPORTED_FORMAT, "image");
    in = png_in(&b, 4);
    in.quality = PL_ENH_BEST; /* esrgan-thick-x4 is not among the fixtures */
    expect_err(in, MD_E_MODEL_NOT_FOUND, "model");
    pl_enh_quality q;
    md_err e;
    assert_int_equal(pl_enh_quality_parse("best", &q, &e), MD_OK);
    assert_int_equal(q, PL_ENH_BEST);
    assert_int_equal(pl_enh_quality_parse("ultra", &q, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "quality");
    md_buf_free(&b);
    img_free(src);
}

typedef struct seen {
    int calls;
    double last;
    int monotonic;
    int tiles;
} seen;

static void on_progress(void *ctx, double f, const char *stage)
{
    seen *s = ctx;
    s->calls++;
    s->monotonic &= f >= s->last;
    s->last = f;
    s->tiles += strncmp(stage, "tile ", 5) == 0;
}

static void test_progress_and_cancel(void **state)
{
    (void)state;
    md_image *src = pattern(40, 40, 0);
    md_buf b = encoded(src, IMG_FMT_PNG);
    md_cancel c;
    md_cancel_init(&c, 0);
    seen s = {.monotonic = 1};
    c.progress = on_progress;
    c.progress_ctx = &s;
    pl_ctx cx = {.models = reg, .cancel = &c};
    pl_enh_in in = png_in(&b, 2);
    in.tile = 16;
    pl_enh_out out;
    md_err e;
    assert_int_equal(pl_enhance(&cx, &in, &out, &e), MD_OK);
    assert_int_equal(s.tiles, 9);
    assert_true(s.monotonic);
    assert_true(s.last == 1.0);
    pl_enh_out_free(&out);
    md_cancel_request(&c);
    assert_int_equal(pl_enhance(&cx, &in, &out, &e), MD_E_CANCELLED);
    assert_int_equal(out.image.len, 0);
    pl_enh_out_free(&out);
    md_buf_free(&b);
    img_free(src);
}

static md_buf read_fixture(const char *name)
{
    const char *src = getenv("MODELD_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/enhance/%s", src ? src : ".", name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    md_buf b;
    md_buf_init(&b, 1 << 20);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(md_buf_append(&b, chunk, n), MD_OK);
    fclose(f);
    return b;
}

/* The face of face.jpg is found and its region goes through the "best" net (the thick stand-in,
 * whose residual differs from slim's): the face area changes, a far corner does not. */
static void test_face_enhance(void **state)
{
    (void)state;
    assert_int_equal(pl_enhance_face_available(NULL), 1); /* opencv-data: scripts/deps.sh */
    md_buf b = read_fixture("face.jpg");
    pl_ctx cx = {.models = reg};
    pl_enh_in in = png_in(&b, 2);
    pl_enh_out plain, faces;
    md_image *a = run_ok(&cx, &in, &plain);
    assert_int_equal(plain.faces_found, 0);
    in.face_enhance = 1;
    md_image *f = run_ok(&cx, &in, &faces);
    assert_int_equal(faces.faces_found, 1);
    const uint8_t *pa = a->rgba + ((size_t)110 * a->width + 130) * 4; /* the face's centre, x2 */
    const uint8_t *pf = f->rgba + ((size_t)110 * f->width + 130) * 4;
    assert_true(abs(pa[0] - pf[0]) + abs(pa[1] - pf[1]) + abs(pa[2] - pf[2]) > 0);
    assert_memory_equal(a->rgba, f->rgba, 4 * 8); /* the top-left corner is no face */
    img_free(a);
    img_free(f);
    pl_enh_out_free(&plain);
    pl_enh_out_free(&faces);
    md_buf_free(&b);
}

/* ---- self-ensemble ---- */

/* A new image: src transposed (x and y swapped). */
static md_image *transposed(const md_image *src)
{
    md_image *d = img_new(src->height, src->width);
    assert_non_null(d);
    for (int y = 0; y < src->height; y++)
        for (int x = 0; x < src->width; x++)
            memcpy(d->rgba + ((size_t)x * d->width + y) * 4,
                   src->rgba + ((size_t)y * src->width + x) * 4, 4);
    return d;
}

/* img mirrored in place: rows (top <-> bottom) or columns. */
static void mirror(md_image *img, int rows)
{
    int w = img->width, h = img->height;
    for (int y = 0; y < (rows ? h / 2 : h); y++)
        for (int x = 0; x < (rows ? w : w / 2); x++) {
            uint8_t *a = img->rgba + ((size_t)y * w + x) * 4, t[4];
            uint8_t *b = rows ? img->rgba + ((size_t)(h - 1 - y) * w + x) * 4
                              : img->rgba + ((size_t)y * w + (w - 1 - x)) * 4;
            memcpy(t, a, 4);
            memcpy(a, b, 4);
            memcpy(b, t, 4);
        }
}

/* The 8 symmetries of the square as k = 0..7: transpose when bit 2, then mirror the rows when
 * bit 1 and the columns when bit 0; undo applies the inverse (the same steps backwards). A new
 * image either way. */
static md_image *dihedral(const md_image *src, int k, int undo)
{
    md_image *d = undo || !(k & 4) ? img_new(src->width, src->height) : transposed(src);
    assert_non_null(d);
    if (undo || !(k & 4))
        memcpy(d->rgba, src->rgba, (size_t)src->width * src->height * 4);
    if (k & 2)
        mirror(d, 1);
    if (k & 1)
        mirror(d, 0);
    if (undo && (k & 4)) {
        md_image *t = transposed(d);
        img_free(d);
        d = t;
    }
    return d;
}

/* The ensemble of src (x2, the slim stand-in; tile 0 = one run) against the mean of 8 plain runs
 * on its transforms, each turned back: within 1 (each plain run is rounded to 8 bits, the
 * ensemble averages in float), where no plain run was clamped to 0 or 255 (the ensemble clamps
 * the mean, not each run). Returns how many samples differ from the plain k = 0 run. */
static int check_ensemble(const md_image *src, int tile)
{
    md_buf b = encoded(src, IMG_FMT_PNG);
    pl_ctx cx = {.models = reg};
    pl_enh_in in = png_in(&b, 2);
    in.tile = tile;
    in.ensemble = 1;
    pl_enh_out eo;
    md_image *ens = run_ok(&cx, &in, &eo);
    size_t n = (size_t)ens->width * ens->height * 4;
    double *sum = calloc(n, sizeof(double));
    uint8_t *plain0 = malloc(n), *clamped = calloc(n, 1);
    assert_true(sum && plain0 && clamped);
    for (int k = 0; k < 8; k++) {
        md_image *t = dihedral(src, k, 0);
        md_buf tb = encoded(t, IMG_FMT_PNG);
        pl_enh_in ti = png_in(&tb, 2);
        ti.tile = tile;
        pl_enh_out to;
        md_image *o = run_ok(&cx, &ti, &to), *back = dihedral(o, k, 1);
        assert_int_equal(back->width, ens->width);
        assert_int_equal(back->height, ens->height);
        for (size_t i = 0; i < n; i++) {
            sum[i] += back->rgba[i];
            clamped[i] |= back->rgba[i] == 0 || back->rgba[i] == 255;
        }
        if (k == 0)
            memcpy(plain0, back->rgba, n);
        img_free(back);
        img_free(o);
        pl_enh_out_free(&to);
        md_buf_free(&tb);
        img_free(t);
    }
    int differ = 0, checked = 0;
    for (size_t i = 0; i < n; i++) {
        double want = i % 4 == 3 ? 255 : sum[i] / 8;
        checked += !clamped[i];
        if (!clamped[i] && fabs(ens->rgba[i] - want) > 1.0)
            fail_msg("sample %zu: ensemble %d, mean of the 8 runs %.3f", i, ens->rgba[i], want);
        differ += ens->rgba[i] != plain0[i];
    }
    assert_true(checked > (int)n / 2);
    free(sum);
    free(plain0);
    free(clamped);
    img_free(ens);
    pl_enh_out_free(&eo);
    md_buf_free(&b);
    return differ;
}

static void test_ensemble_is_the_mean(void **state)
{
    (void)state;
    md_image *src = pattern(29, 21, 0);        /* not square: the transposed runs are 21 x 29 */
    assert_true(check_ensemble(src, 0) > 100); /* the stand-in is no symmetric net */
    img_free(src);
    src = pattern(40, 34, 0);
    check_ensemble(src, 16); /* 3 x 3 tiles, each window turned */
    img_free(src);
}

static void test_ensemble_progress_and_cancel(void **state)
{
    (void)state;
    md_image *src = pattern(40, 40, 0);
    md_buf b = encoded(src, IMG_FMT_PNG);
    md_cancel c;
    md_cancel_init(&c, 0);
    seen s = {.monotonic = 1};
    c.progress = on_progress;
    c.progress_ctx = &s;
    pl_ctx cx = {.models = reg, .cancel = &c};
    pl_enh_in in = png_in(&b, 2);
    in.tile = 16;
    in.ensemble = 1;
    pl_enh_out out;
    md_err e;
    assert_int_equal(pl_enhance(&cx, &in, &out, &e), MD_OK);
    assert_int_equal(s.tiles, 9 * 8); /* "tile i/9 pass k/8" */
    assert_int_equal(out.tiles, 9);
    assert_true(s.monotonic);
    assert_true(s.last == 1.0);
    pl_enh_out_free(&out);
    md_cancel_request(&c);
    assert_int_equal(pl_enhance(&cx, &in, &out, &e), MD_E_CANCELLED);
    pl_enh_out_free(&out);
    md_buf_free(&b);
    img_free(src);
}

static void test_estimate(void **state)
{
    (void)state;
    pl_ctx cx = {.models = reg};
    pl_enh_in in = {.quality = PL_ENH_FAST, .scale = 4, .out_format = IMG_FMT_JPEG};
    uint64_t small = 0, big = 0;
    md_err e;
    assert_int_equal(pl_enhance_estimate(&cx, 100, 100, &in, &small, &e), MD_OK);
    assert_int_equal(pl_enhance_estimate(&cx, 2000, 2000, &in, &big, &e), MD_OK);
    assert_true(small > 100 * 100 * 16 * 4);
    assert_true(big > small);
    assert_true(big < (uint64_t)1536 << 20); /* 4 MP x4 within the 1.5 GB goal */
    assert_int_equal(pl_enhance_estimate(&cx, 8000, 8000, &in, &big, &e), MD_E_IMAGE_TOO_LARGE);
    assert_string_equal(e.field, "upscale");
    in.quality = PL_ENH_BEST;
    assert_int_equal(pl_enhance_estimate(&cx, 100, 100, &in, &big, &e), MD_E_MODEL_NOT_FOUND);
    /* faces at x4 need esrgan-thick-x4, absent from the fixtures: the option is refused */
    in.quality = PL_ENH_FAST;
    in.face_enhance = 1;
    assert_int_equal(pl_enhance_estimate(&cx, 100, 100, &in, &big, &e), MD_E_UNSUPPORTED);
    assert_string_equal(e.field, "face_enhance");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_x4_exact_size),
        cmocka_unit_test(test_tiled_equals_untiled),
        cmocka_unit_test(test_alpha_kept),
        cmocka_unit_test(test_exif_orientation),
        cmocka_unit_test(test_formats_round_trip),
        cmocka_unit_test(test_bad_parameters),
        cmocka_unit_test(test_progress_and_cancel),
        cmocka_unit_test(test_face_enhance),
        cmocka_unit_test(test_estimate),
        cmocka_unit_test(test_ensemble_is_the_mean),
        cmocka_unit_test(test_ensemble_progress_and_cancel),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
