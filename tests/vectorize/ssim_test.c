/* ssim_test.c - vec_ssim agrees with scikit-image's structural_similarity.
 *
 * tests/fixtures/ssim/expected.txt holds values computed by gen.py (next to it) with
 * scikit-image 0.19, the way ../shared/tools/score_svg.py scores SVGs: synthetic pairs stored as
 * PNGs, and every good image of the dev corpus against a degraded copy this test rebuilds.
 * The issue asks for agreement within 0.002; we hold the implementation to 1e-6, since it
 * follows the same arithmetic and any larger gap means a real difference (window, border mode,
 * crop or the grey conversion).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "image/image.h"
#include "vectorize/vec.h"

#define TOL 1e-6

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* RGB bytes of an image file composited on white (as the scorer does). New (free). */
static uint8_t *load_on_white(const char *path, int *w, int *h)
{
    md_image *img = NULL;
    md_err err;
    int rc = img_load_file(path, NULL, &img, &err);
    if (rc != MD_OK)
        fail_msg("cannot load %s: %s", path, md_err_message(&err));
    img_composite(img, 255, 255, 255);
    size_t n = (size_t)img->width * (size_t)img->height;
    uint8_t *rgb = malloc(n * 3);
    assert_non_null(rgb);
    for (size_t i = 0; i < n; i++)
        memcpy(rgb + i * 3, img->rgba + i * 4, 3);
    *w = img->width;
    *h = img->height;
    img_free(img);
    return rgb;
}

/* The degraded copy gen.py builds: right neighbour's colour, low 5 bits cleared. */
static uint8_t *degrade(const uint8_t *rgb, int w, int h)
{
    uint8_t *out = malloc((size_t)w * (size_t)h * 3);
    assert_non_null(out);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int sx = x + 1 < w ? x + 1 : x;
                size_t src = ((size_t)y * (size_t)w + (size_t)sx) * 3 + (size_t)c;
                out[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] = rgb[src] & 0xE0;
            }
    return out;
}

static void check_case(const char *kind, const char *name, int ew, int eh, double ergb,
                       double egrey, int *checked)
{
    char pa[1024], pb[1024];
    uint8_t *a, *b;
    int w, h, w2, h2;
    if (strcmp(kind, "pair") == 0) {
        const char *src = env_or("MODELD_SOURCE_DIR", ".");
        snprintf(pa, sizeof pa, "%s/tests/fixtures/ssim/pair_%s_a.png", src, name);
        snprintf(pb, sizeof pb, "%s/tests/fixtures/ssim/pair_%s_b.png", src, name);
        a = load_on_white(pa, &w, &h);
        b = load_on_white(pb, &w2, &h2);
        assert_int_equal(w, w2);
        assert_int_equal(h, h2);
    } else {
        const char *shared = env_or("MODELD_CORPUS_DIR", "tests/fixtures/corpus");
        snprintf(pa, sizeof pa, "%s/%s", shared, name);
        a = load_on_white(pa, &w, &h);
        b = degrade(a, w, h);
    }
    assert_int_equal(w, ew);
    assert_int_equal(h, eh);
    vec_ssim_result r;
    md_err err;
    assert_int_equal(vec_ssim(a, b, w, h, &r, &err), MD_OK);
    if (r.rgb < ergb - TOL || r.rgb > ergb + TOL || r.luma < egrey - TOL || r.luma > egrey + TOL)
        fail_msg("%s %s: ours rgb %.9f grey %.9f, skimage rgb %.9f grey %.9f", kind, name, r.rgb,
                 r.luma, ergb, egrey);
    (*checked)++;
    free(a);
    free(b);
}

static void test_against_skimage(void **state)
{
    (void)state;
    char path[1024], kind[16], name[256];
    snprintf(path, sizeof path, "%s/tests/fixtures/ssim/expected.txt",
             env_or("MODELD_SOURCE_DIR", "."));
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    int w, h, checked = 0, corpus = 0;
    double rgb, grey;
    while (fscanf(f, "%15s %255s %d %d %lf %lf", kind, name, &w, &h, &rgb, &grey) == 6) {
        check_case(kind, name, w, h, rgb, grey, &checked);
        corpus += strcmp(kind, "corpus") == 0;
    }
    fclose(f);
    assert_int_equal(checked, 63); /* 3 synthetic pairs + the 60 good dev-corpus images */
    assert_int_equal(corpus, 60);
}

static void test_identical_is_one(void **state)
{
    (void)state;
    /* Also smaller than the 11x11 window: we average over the whole image instead of failing. */
    int sizes[][2] = {{1, 1}, {5, 9}, {11, 11}, {40, 17}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int w = sizes[s][0], h = sizes[s][1];
        uint8_t *a = malloc((size_t)w * (size_t)h * 3);
        assert_non_null(a);
        for (int i = 0; i < w * h * 3; i++)
            a[i] = (uint8_t)(i * 37 % 251);
        vec_ssim_result r;
        assert_int_equal(vec_ssim(a, a, w, h, &r, NULL), MD_OK);
        assert_true(r.rgb > 1 - 1e-12 && r.rgb < 1 + 1e-12);
        assert_true(r.luma > 1 - 1e-12 && r.luma < 1 + 1e-12);
        free(a);
    }
}

/* ---- the plain computation, for the identical-window shortcut ---------------------------- */

/* vec_ssim as it was before it skipped identical windows: every window computed, with the
 * same operations in the same order (separable filter, kernel symmetry, row sums), so its
 * result must equal the library's bit for bit. chan 0..2 or 3 (grey). */
static uint8_t plane_px(const uint8_t *rgb, int w, int x, int y, int chan)
{
    const uint8_t *px = rgb + ((size_t)y * (size_t)w + (size_t)x) * 3;
    if (chan < 3)
        return px[chan];
    return (uint8_t)((px[0] * 19595u + px[1] * 38470u + px[2] * 7471u + 0x8000u) >> 16);
}

static int reflect_ref(int i, int n)
{
    int period = 2 * n;
    i %= period;
    if (i < 0)
        i += period;
    return i < n ? i : period - 1 - i;
}

static double plain_channel(const uint8_t *a, const uint8_t *b, int w, int h, int chan)
{
    double k[11], ksum = 0;
    for (int i = 0; i < 11; i++) {
        double x = i - 5;
        k[i] = exp(-0.5 / (1.5 * 1.5) * x * x);
        ksum += k[i];
    }
    for (int i = 0; i < 11; i++)
        k[i] /= ksum;
    /* hf[(y * 5 + c) * w + x]: row y filtered horizontally, product c */
    double *hf = malloc((size_t)w * (size_t)h * 5 * sizeof *hf);
    assert_non_null(hf);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double v[5][11];
            for (int t = 0; t < 11; t++) {
                int sx = reflect_ref(x + t - 5, w);
                double xa = plane_px(a, w, sx, y, chan), xb = plane_px(b, w, sx, y, chan);
                v[0][t] = xa, v[1][t] = xb, v[2][t] = xa * xa, v[3][t] = xb * xb;
                v[4][t] = xa * xb;
            }
            for (int c = 0; c < 5; c++) {
                double o = k[5] * v[c][5];
                for (int t = 0; t < 5; t++)
                    o += k[t] * (v[c][t] + v[c][10 - t]);
                hf[((size_t)y * 5 + (size_t)c) * (size_t)w + (size_t)x] = o;
            }
        }
    const double c1 = (0.01 * 255) * (0.01 * 255), c2 = (0.03 * 255) * (0.03 * 255);
    int pad = (w >= 11 && h >= 11) ? 5 : 0;
    double sum = 0;
    for (int y = pad; y < h - pad; y++) {
        double row = 0;
        for (int x = pad; x < w - pad; x++) {
            double f[5];
            for (int c = 0; c < 5; c++) {
                f[c] = k[5] * hf[((size_t)y * 5 + (size_t)c) * (size_t)w + (size_t)x];
                for (int t = 0; t < 5; t++) {
                    int lo = reflect_ref(y + t - 5, h), hi = reflect_ref(y + 5 - t, h);
                    f[c] += k[t] * (hf[((size_t)lo * 5 + (size_t)c) * (size_t)w + (size_t)x] +
                                    hf[((size_t)hi * 5 + (size_t)c) * (size_t)w + (size_t)x]);
                }
            }
            double ux = f[0], uy = f[1], vx = f[2] - ux * ux, vy = f[3] - uy * uy;
            double vxy = f[4] - ux * uy;
            double a1 = 2 * ux * uy + c1, a2 = 2 * vxy + c2;
            double b1 = ux * ux + uy * uy + c1, b2 = vx + vy + c2;
            row += (a1 * a2) / (b1 * b2);
        }
        sum += row;
    }
    free(hf);
    return sum / ((double)(w - 2 * pad) * (double)(h - 2 * pad));
}

/* A flat-colour "logo" and a "trace" of it: equal almost everywhere, with differences in
 * blobs (some in one channel only), along the borders and in the corners. */
static void logo_pair(int w, int h, unsigned seed, uint8_t *a, uint8_t *b)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *px = a + ((size_t)y * (size_t)w + (size_t)x) * 3;
            int inside = (x - w / 2) * (x - w / 2) + (y - h / 3) * (y - h / 3) < w * h / 8;
            px[0] = inside ? 200 : 255, px[1] = inside ? 30 : 255,
            px[2] = (uint8_t)(x > w / 2 ? 90 : 255);
        }
    memcpy(b, a, (size_t)w * (size_t)h * 3);
    unsigned st = seed;
    for (int i = 0; i < 6; i++) {
        st = st * 1103515245u + 12345u;
        int cx = (int)(st >> 8) % w, cy = (int)(st >> 16) % h, chan = (int)(st >> 4) % 4;
        for (int y = cy - 1; y <= cy + 1; y++)
            for (int x = cx - 2; x <= cx + 2; x++)
                if (x >= 0 && x < w && y >= 0 && y < h)
                    for (int c = 0; c < 3; c++)
                        if (chan == 3 || c == chan)
                            b[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] ^= 0x15;
    }
    b[0] ^= 1;                                   /* top-left corner, red */
    b[((size_t)h * (size_t)w - 1) * 3 + 2] ^= 4; /* bottom-right corner, blue */
    b[((size_t)(h / 2) * (size_t)w + (size_t)(w - 1)) * 3 + 1] ^= 64; /* right edge, green */
}

static void test_identical_windows_skipped_exactly(void **state)
{
    (void)state;
    int sizes[][2] = {{11, 11}, {12, 40}, {64, 64}, {97, 53}, {160, 23}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int w = sizes[s][0], h = sizes[s][1];
        uint8_t *a = malloc((size_t)w * (size_t)h * 3), *b = malloc((size_t)w * (size_t)h * 3);
        assert_non_null(a);
        assert_non_null(b);
        logo_pair(w, h, (unsigned)s + 7u, a, b);
        vec_ssim_result r;
        assert_int_equal(vec_ssim(a, b, w, h, &r, NULL), MD_OK);
        double rgb = (plain_channel(a, b, w, h, 0) + plain_channel(a, b, w, h, 1) +
                      plain_channel(a, b, w, h, 2)) /
                     3.0;
        double grey = plain_channel(a, b, w, h, 3);
        if (memcmp(&rgb, &r.rgb, sizeof rgb) != 0 || memcmp(&grey, &r.luma, sizeof grey) != 0)
            fail_msg("%dx%d: rgb %.17g grey %.17g, plain computation %.17g %.17g", w, h, r.rgb,
                     r.luma, rgb, grey);
        assert_true(r.rgb < 1.0); /* the differences are seen */
        free(a);
        free(b);
    }
}

static void test_bad_arguments(void **state)
{
    (void)state;
    uint8_t px[3] = {0, 0, 0};
    vec_ssim_result r;
    md_err err;
    assert_int_equal(vec_ssim(px, px, 0, 1, &r, &err), MD_E_INVALID_PARAM);
    assert_int_equal(vec_ssim(NULL, px, 1, 1, &r, &err), MD_E_INVALID_PARAM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_skimage),
        cmocka_unit_test(test_identical_is_one),
        cmocka_unit_test(test_identical_windows_skipped_exactly),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
