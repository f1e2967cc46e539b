/* features_bench.c - time of vec_features() per image (the feature extractor's goal: <= 5 ms
 * on a 512 px image). Not a test: bench/features.sh builds it at -O2 and runs it on the images
 * given; it prints the CPU time of one call per image (best and median of 50 calls) and the
 * size, then the same over all images. */
#include "image/image.h"
#include "vectorize/vec.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define REPS 50

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    double worst_median = 0;
    for (int i = 1; i < argc; i++) {
        md_image *img = NULL;
        md_err err;
        if (img_load_file(argv[i], NULL, &img, &err) != MD_OK) {
            fprintf(stderr, "%s: %s\n", argv[i], md_err_message(&err));
            continue;
        }
        float f[VEC_N_FEATURES];
        double t[REPS];
        for (int r = 0; r < REPS; r++) {
            double t0 = cpu_ms();
            if (vec_features(img, f, &err) != MD_OK)
                return fprintf(stderr, "%s: %s\n", argv[i], md_err_message(&err)), 1;
            t[r] = cpu_ms() - t0;
        }
        qsort(t, REPS, sizeof t[0], cmp_dbl);
        printf("%-60s %5dx%-5d best %6.3f ms  median %6.3f ms\n", argv[i], img->width, img->height,
               t[0], t[REPS / 2]);
        worst_median = t[REPS / 2] > worst_median ? t[REPS / 2] : worst_median;
        img_free(img);
    }
    printf("worst median over %d images: %.3f ms\n", argc - 1, worst_median);
    return 0;
}
