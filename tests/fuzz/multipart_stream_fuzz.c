/* multipart_stream_fuzz.c - fuzzes the streaming multipart reader (src/api/multipart_stream.c)
 * against the in-memory one (multipart.c) as its oracle. Input layout as multipart_fuzz (first
 * line the Content-Type, the rest the body); the body is fed to mp_stream in pieces whose sizes
 * come from the body's own bytes, so every split point gets tried. Checks (abort on failure):
 *   - both accept or both refuse the body;
 *   - when they accept, the same parts: count, names, filenames, content types, offsets and
 *     lengths;
 *   - the data mp_stream hands out, concatenated per part, is exactly that part's bytes;
 *   - mp_file_parse over the body in a file agrees too. */
#include "api/multipart.h"
#include "fuzz_split.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXP 8

typedef struct got {
    const uint8_t *body;
    mp_part parts[MAXP];
    size_t n;
    uint64_t at; /* data bytes of the current part seen so far */
} got;

static int on_part(void *user, const mp_part *p)
{
    got *g = user;
    if (g->n >= MAXP)
        abort(); /* max_parts was MAXP */
    g->parts[g->n] = *p;
    g->at = 0;
    return MD_OK;
}

static int on_data(void *user, const uint8_t *d, size_t n)
{
    got *g = user;
    const mp_part *p = &g->parts[g->n];
    if (memcmp(d, g->body + p->offset + g->at, n) != 0)
        abort(); /* the bytes handed out are the part's own, in order */
    g->at += n;
    return MD_OK;
}

static int on_end(void *user, const mp_part *p)
{
    got *g = user;
    if (p->len != g->at || p->offset != g->parts[g->n].offset)
        abort();
    g->parts[g->n++].len = p->len;
    return MD_OK;
}

static void same_parts(const mp_part *a, const mp_part *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].offset != b[i].offset || a[i].len != b[i].len ||
            strcmp(a[i].name, b[i].name) != 0 || strcmp(a[i].filename, b[i].filename) != 0 ||
            strcmp(a[i].content_type, b[i].content_type) != 0)
            abort();
}

static int stream_parse(const char *boundary, const uint8_t *body, size_t blen, got *g)
{
    md_err err;
    mp_stream_cb cb = {on_part, on_data, on_end};
    mp_stream *s = NULL;
    if (mp_stream_new(boundary, MAXP, &cb, g, &s, &err) != MD_OK)
        return -1;
    int rc = MD_OK;
    for (size_t off = 0, k = 0; rc == MD_OK && off < blen; k++) {
        size_t piece = 1 + body[k % blen] % 97; /* split points from the data itself */
        if (piece > blen - off)
            piece = blen - off;
        rc = mp_stream_feed(s, body + off, piece, &err);
        off += piece;
    }
    if (rc == MD_OK)
        rc = mp_stream_finish(s, &err);
    mp_stream_free(s);
    return rc;
}

static int file_parse(const char *boundary, const uint8_t *body, size_t blen, mp_part *parts,
                      size_t *n)
{
    FILE *f = tmpfile();
    if (!f)
        return -2;
    if (blen && fwrite(body, 1, blen, f) != blen)
        abort();
    fflush(f);
    md_err err;
    int rc = mp_file_parse(fileno(f), blen, boundary, parts, MAXP, n, &err);
    fclose(f);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char ct[257];
    size_t blen = 0;
    uint8_t *body = fuzz_split_ct(data, size, ct, &blen);
    if (body == NULL)
        return 0;
    char boundary[MP_BOUNDARY_MAX + 1];
    md_err err;
    if (mp_boundary(ct, boundary, sizeof boundary, &err) != MD_OK) {
        free(body);
        return 0;
    }
    mp_part mem[MAXP];
    size_t nmem = 0;
    int rmem = mp_parse(blen ? body : NULL, blen, boundary, mem, MAXP, &nmem, &err);
    got g = {.body = body};
    int rs = stream_parse(boundary, body, blen, &g);
    if ((rmem == MD_OK) != (rs == MD_OK))
        abort();
    if (rmem == MD_OK) {
        if (nmem != g.n)
            abort();
        same_parts(mem, g.parts, nmem);
    }
    mp_part fparts[MAXP];
    size_t nf = 0;
    int rf = file_parse(boundary, body, blen, fparts, &nf);
    if (rf != -2 && (rf == MD_OK) != (rmem == MD_OK))
        abort();
    if (rf == MD_OK && rmem == MD_OK) {
        if (nf != nmem)
            abort();
        same_parts(mem, fparts, nf);
    }
    free(body);
    return 0;
}
