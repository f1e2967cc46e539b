/* csv_fuzz.c - libFuzzer target for the streaming CSV reader (src/base/csv.c): arbitrary bytes
 * as a CSV upload with a header row, read once whole and once in chunks whose sizes come from
 * the first byte. Both reads must agree on the outcome, the rows and the error (split
 * independence), every row must have as many fields as the header, and nothing may crash, leak
 * or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/csv.h"

typedef struct digest {
    size_t rows, fields, bytes;
    uint64_t hash;
} digest;

static int on_row(void *user, const char *const *f, const size_t *lens, size_t n, size_t line,
                  md_err *err)
{
    (void)err;
    digest *d = user;
    d->rows++;
    d->fields += n;
    d->hash = d->hash * 1000003u + line;
    for (size_t i = 0; i < n; i++) {
        d->bytes += lens[i];
        for (size_t k = 0; k < lens[i]; k++)
            d->hash = d->hash * 31u + (unsigned char)f[i][k];
        d->hash = d->hash * 31u + 0x100u;
    }
    return MD_OK;
}

static int run(const uint8_t *data, size_t size, size_t chunk, digest *d, md_err *e,
               size_t *ncols)
{
    md_csv_opts o = {.header = true, .max_field = 256, .max_fields = 64, .field = "file"};
    md_csv *c = NULL;
    if (md_csv_new(&o, on_row, d, &c, e) != MD_OK)
        abort();
    int rc = MD_OK;
    for (size_t off = 0; rc == MD_OK && off < size;) {
        size_t k = chunk && chunk < size - off ? chunk : size - off;
        rc = md_csv_feed(c, data + off, k, e);
        off += k;
    }
    if (rc == MD_OK)
        rc = md_csv_finish(c, e);
    md_csv_columns(c, ncols);
    md_csv_free(c);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t chunk = data[0] % 17 + 1;
    data++;
    size--;
    digest a = {0}, b = {0};
    md_err ea = {0}, eb = {0};
    size_t ca = 0, cb = 0;
    int ra = run(data, size, 0, &a, &ea, &ca);
    int rb = run(data, size, chunk, &b, &eb, &cb);
    if (ra != rb || memcmp(&a, &b, sizeof a) != 0 || ca != cb || strcmp(ea.msg, eb.msg) != 0)
        abort();
    if (ra == MD_OK && a.fields != a.rows * ca)
        abort();
    if (ra != MD_OK && strcmp(ea.field, "file") != 0)
        abort();
    return 0;
}
