/* onnx_test_rand.h - the deterministic random inputs of the onnx kernel tests (kernels_test,
 * concat_test, upconv_test): a 32-bit LCG giving floats in [-1, 1). Each test file keeps its
 * own sequence: it defines ONNX_TEST_SEED before including this header, so its inputs stay
 * the same whatever the other files do. Include after <cmocka.h>.
 */
#ifndef MD_TESTS_ONNX_TEST_RAND_H
#define MD_TESTS_ONNX_TEST_RAND_H

#include <stdint.h>
#include <stdlib.h>

#ifndef ONNX_TEST_SEED
#error "define ONNX_TEST_SEED (the file's LCG seed) before including onnx_test_rand.h"
#endif

static uint32_t rng_state = ONNX_TEST_SEED;

static inline float frand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* n floats of frand() (new, free()); a 1-float buffer for n = 0. */
static inline float *rand_buf(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = frand();
    return p;
}

#endif
