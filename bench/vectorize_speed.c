/* vectorize_speed.c - CPU time of the tracer's stages on images, and a fingerprint of its
 * output. Not a test: bench/vectorize_speed.sh builds it from one or two source trees (old and
 * new, the same flags as the CMake build) and runs them side by side.
 *
 *   vectorize_speed [-n REPS] [-s SET]... IMAGE...     time (best of REPS, thread CPU time)
 *   vectorize_speed -c [-s SET]... IMAGE...            fingerprint: per image and set, the
 *                                                      SVG's FNV-1a hash, its bytes and the
 *                                                      RGB and grey SSIM to 17 digits
 * SET is "default" (the preset), "ai" (the rules' set for text logos: filter_speckle 2,
 * color_precision 8, layer_difference 8, corner_threshold 0, path_precision 1: what the AI
 * tiers convert most), "poly" (ai in polygon mode) or "quality" (the preset); default: all four.
 * Stages timed: trace (cluster + contours + fit; vec_trace), svg, render, ssim (RGB only, as the
 * AI search measures), ssim4 (RGB + grey, as /api/convert measures). */
#include "image/image.h"
#include "vectorize/vec.h"
#include "vectorize/vec_int.h" /* vec__ssim: the RGB-only SSIM the AI search runs */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SETS 8

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int set_params(const char *set, vec_params *p)
{
    if (strcmp(set, "default") == 0 || strcmp(set, "quality") == 0)
        return vec_params_preset(set, p, NULL);
    if (strcmp(set, "ai") != 0 && strcmp(set, "poly") != 0)
        return -1;
    const float enc[VEC_N_PARAM_ENC] = {2, 8, 8, 0, 3.5f, 10, 45, 1, 0, strcmp(set, "poly") == 0};
    vec_params_decode(enc, p);
    return 0;
}

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

/* The source on white, 3 bytes a pixel (as vec_convert measures). New. */
static uint8_t *on_white(const md_image *img)
{
    size_t n = (size_t)img->width * (size_t)img->height;
    uint8_t *rgb = malloc(n * 3);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = img->rgba + 4 * i;
        for (int k = 0; k < 3; k++)
            rgb[3 * i + k] = (uint8_t)((s[k] * s[3] + 255 * (255 - s[3]) + 127) / 255);
    }
    return rgb;
}

static int fingerprint(const char *file, const md_image *img, const char *set, const vec_params *p)
{
    vec_convert_opts o = {.measure_quality = 1};
    vec_result *r = NULL;
    md_err err;
    if (vec_convert(img, p, &o, &r, &err) != MD_OK)
        return fprintf(stderr, "%s: %s\n", file, md_err_message(&err)), 1;
    printf("%s %s %016llx %zu %.17g %.17g\n", file, set,
           (unsigned long long)fnv(r->svg, r->svg_bytes), r->svg_bytes, r->ssim.rgb, r->ssim.luma);
    vec_result_free(r);
    return 0;
}

enum { T_TRACE, T_SVG, T_RENDER, T_SSIM, T_SSIM4, T_N };
static const char *const T_NAMES[T_N] = {"trace", "svg", "render", "ssim", "ssim4"};

/* One timed conversion, stage by stage; t gets each stage's CPU ms. */
static int time_once(const md_image *img, const uint8_t *src, const vec_params *p, double *t)
{
    md_err err;
    vec_doc *doc = NULL;
    double t0 = cpu_ms();
    if (vec_trace(img, p, &doc, NULL, &err) != MD_OK)
        return fprintf(stderr, "trace: %s\n", md_err_message(&err)), 1;
    double t1 = cpu_ms();
    md_buf b;
    md_buf_init(&b, (size_t)1 << 30);
    int rc = vec_svg_write(doc, p, &b, &err);
    md_buf_free(&b);
    double t2 = cpu_ms();
    uint8_t *ours = malloc((size_t)img->width * (size_t)img->height * 3);
    if (rc == MD_OK)
        rc = vec_render(doc, ours, &err);
    double t3 = cpu_ms();
    vec_ssim_result s;
    if (rc == MD_OK)
        rc = vec__ssim(src, ours, img->width, img->height, NULL, 1, &s, &err);
    double t4 = cpu_ms();
    if (rc == MD_OK)
        rc = vec_ssim(src, ours, img->width, img->height, &s, &err);
    double t5 = cpu_ms();
    free(ours);
    vec_doc_free(doc);
    if (rc != MD_OK)
        return fprintf(stderr, "%s\n", md_err_message(&err)), 1;
    double v[T_N] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4};
    memcpy(t, v, sizeof v);
    return 0;
}

int main(int argc, char **argv)
{
    int reps = 5, check = 0, nsets = 0;
    const char *sets[MAX_SETS];
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-c") == 0)
            check = 1;
        else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc && nsets < MAX_SETS)
            sets[nsets++] = argv[++i];
        else
            return fprintf(stderr, "usage: %s [-c] [-n REPS] [-s SET]... IMAGE...\n", argv[0]), 2;
    }
    if (nsets == 0) {
        static const char *const all[] = {"default", "ai", "poly", "quality"};
        for (; nsets < 4; nsets++)
            sets[nsets] = all[nsets];
    }
    double total[MAX_SETS][T_N] = {{0}};
    for (; i < argc; i++) {
        md_image *img = NULL;
        md_err err;
        if (img_load_file(argv[i], NULL, &img, &err) != MD_OK) {
            fprintf(stderr, "%s: %s\n", argv[i], md_err_message(&err));
            continue;
        }
        uint8_t *src = on_white(img);
        for (int k = 0; k < nsets; k++) {
            vec_params p;
            if (set_params(sets[k], &p) != 0)
                return fprintf(stderr, "unknown set %s\n", sets[k]), 2;
            if (check) {
                if (fingerprint(argv[i], img, sets[k], &p) != 0)
                    return 1;
                continue;
            }
            double best[T_N], t[T_N];
            for (int r = 0; r < reps; r++) {
                if (time_once(img, src, &p, t) != 0)
                    return 1;
                for (int s = 0; s < T_N; s++)
                    best[s] = r == 0 || t[s] < best[s] ? t[s] : best[s];
            }
            const char *base = strrchr(argv[i], '/');
            printf("%-34.34s %-7s", base ? base + 1 : argv[i], sets[k]);
            for (int s = 0; s < T_N; s++) {
                printf(" %s %7.2f", T_NAMES[s], best[s]);
                total[k][s] += best[s];
            }
            printf("\n");
        }
        free(src);
        img_free(img);
    }
    for (int k = 0; !check && k < nsets; k++) {
        printf("%-34s %-7s", "TOTAL", sets[k]);
        for (int s = 0; s < T_N; s++)
            printf(" %s %7.2f", T_NAMES[s], total[k][s]);
        printf("\n");
    }
    return 0;
}
