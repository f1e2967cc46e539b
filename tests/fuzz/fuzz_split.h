/* fuzz_split.h - the input layout of the multipart fuzz targets (multipart_fuzz,
 * enhance_batch_fuzz): the first line (at most 256 bytes) is the Content-Type header, the rest
 * the body. Header-only helper: each target is its own binary. */
#ifndef MD_TESTS_FUZZ_SPLIT_H
#define MD_TESTS_FUZZ_SPLIT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Split data into ct (NUL-terminated) and a body copied into its own allocation, so ASan sees
 * any read past its end. Returns the body (new: free(); non-NULL even when empty) with its
 * length in *blen, or NULL when there is no first line (or no memory). */
static inline uint8_t *fuzz_split_ct(const uint8_t *data, size_t size, char ct[257], size_t *blen)
{
    const uint8_t *nl = memchr(data, '\n', size < 256 ? size : 256);
    if (nl == NULL)
        return NULL;
    size_t ctlen = (size_t)(nl - data);
    memcpy(ct, data, ctlen);
    ct[ctlen] = '\0';
    *blen = size - ctlen - 1;
    uint8_t *body = malloc(*blen ? *blen : 1);
    if (body)
        memcpy(body, nl + 1, *blen);
    return body;
}

#endif
