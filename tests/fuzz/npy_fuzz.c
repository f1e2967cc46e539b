/* npy_fuzz.c - libFuzzer target for the .npy reader (user-supplied files in `modeld infer`):
 * any bytes either parse or fail cleanly, and what parses writes back to a file that parses to
 * the same tensor. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    onnx_tensor *t = NULL, *t2 = NULL;
    md_err err;
    if (onnx_npy_parse(data, size, 1 << 20, &t, &err) != MD_OK)
        return 0;
    md_buf b;
    md_buf_init(&b, 4 << 20);
    if (onnx_npy_write(t, &b, &err) != MD_OK)
        abort();
    if (onnx_npy_parse(b.data, b.len, 1 << 20, &t2, &err) != MD_OK)
        abort();
    size_t bytes = (size_t)onnx_tensor_numel(t) * onnx_dtype_size(t->dtype);
    if (t2->dtype != t->dtype || t2->rank != t->rank ||
        memcmp(t2->dims, t->dims, sizeof t->dims) != 0 ||
        (bytes && memcmp(t2->data, t->data, bytes) != 0))
        abort();
    onnx_tensor_free(t2);
    onnx_tensor_free(t);
    md_buf_free(&b);
    return 0;
}
