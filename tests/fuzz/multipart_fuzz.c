/* multipart_fuzz.c - fuzzes the upload parser (src/api/multipart.c) the way POST /api/upload
 * drives it: the input's first line is the Content-Type header, the rest is the body. Beyond
 * memory safety it checks the parser's promises: a found part lies inside the body, and its
 * filename has no path separator or control character. */
#include "api/multipart.h"
#include "fuzz_split.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char ct[257];
    size_t blen = 0;
    uint8_t *body = fuzz_split_ct(data, size, ct, &blen);
    if (body == NULL)
        return 0;
    char boundary[MP_BOUNDARY_MAX + 1];
    mp_part part;
    md_err err;
    if (mp_boundary(ct, boundary, sizeof boundary, &err) == MD_OK &&
        mp_find(body, blen, boundary, "file", &part, &err) == MD_OK) {
        if (part.data < body || part.data + part.len > body + blen)
            abort();
        for (const char *p = part.filename; *p; p++)
            if (*p == '/' || *p == '\\' || (unsigned char)*p < 0x20 || *p == '"')
                abort();
    }
    free(body);
    return 0;
}
