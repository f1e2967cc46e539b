/* enhance_batch_fuzz.c - fuzzes the form parsing of POST /api/v1/enhance/batch: the input's
 * first line is the Content-Type header, the rest the body; every part comes out of mp_parse
 * (src/api/multipart.c) and each "files" part goes through the admission's format and header
 * checks (img_sniff, img_probe) as enhance.c runs them. Beyond memory safety it checks the
 * parser's promises: at most the asked number of parts, each inside the body, in order and not
 * overlapping, with a sanitised filename. */
#include "api/multipart.h"
#include "image/image.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_parts(const uint8_t *body, size_t blen, const mp_part *parts, size_t n)
{
    const uint8_t *prev_end = body;
    for (size_t i = 0; i < n; i++) {
        const mp_part *p = &parts[i];
        if (p->data < prev_end || p->data + p->len > body + blen)
            abort();
        prev_end = p->data + p->len;
        for (const char *c = p->filename; *c; c++)
            if (*c == '/' || *c == '\\' || (unsigned char)*c < 0x20 || *c == '"')
                abort();
        if (strcmp(p->name, "files") == 0 && img_sniff(p->data, p->len) != IMG_FMT_UNKNOWN) {
            img_format fmt;
            int w = 0, h = 0;
            md_err err;
            if (img_probe(p->data, p->len, NULL, &fmt, &w, &h, &err) == MD_OK && (w <= 0 || h <= 0))
                abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < 256 ? size : 256);
    if (nl == NULL)
        return 0;
    char ct[257];
    size_t ctlen = (size_t)(nl - data);
    memcpy(ct, data, ctlen);
    ct[ctlen] = '\0';
    size_t blen = size - ctlen - 1;
    uint8_t *body = malloc(blen ? blen : 1);   /* its own allocation: ASan sees overreads */
    mp_part *parts = malloc(MP_PARTS_MAX * sizeof *parts);
    if (body && parts) {
        memcpy(body, nl + 1, blen);
        char boundary[MP_BOUNDARY_MAX + 1];
        size_t n = 0;
        md_err err;
        size_t max = 1 + (size ? data[0] % MP_PARTS_MAX : 0);
        if (mp_boundary(ct, boundary, sizeof boundary, &err) == MD_OK &&
            mp_parse(body, blen, boundary, parts, max, &n, &err) == MD_OK) {
            if (n > max)
                abort();
            check_parts(body, blen, parts, n);
        }
    }
    free(parts);
    free(body);
    return 0;
}
