/* zip_stream.c - a ZIP archive of blobs built while it is sent (api__reply_zip): the batch
 * results of GET /api/v1/batch/{id}/results.
 *
 * The archive is never on disk: each entry's bytes come from its store reader (decrypted when
 * the blobs are encrypted at rest) straight into the response, so a batch download holds one
 * block of memory and writes no plaintext anywhere. Entries are stored, not compressed (the
 * results are images, compressed already). Layout (PKWARE APPNOTE 6.3):
 *
 *     [local header + name | data | data descriptor] x n | central directory x n | end record
 *
 * The local headers set general-purpose bit 3: their CRC-32 and sizes are zero and the real
 * values follow the data in a data descriptor, since the CRC is known only once the data went
 * by; the central directory carries all of them (what unzip, Python's zipfile and libzip read).
 * Every size is known at the start (the readers' sizes), so the response has a Content-Length.
 *
 * Stream states (zs->phase), each piece handed out in order by zip_read:
 *
 *     LOCAL(i) -> DATA(i) -> DESC(i) -> LOCAL(i+1) ... -> CENTRAL(0..n-1) -> END -> DONE
 *
 * Invariants:
 *   1. Every offset and size fits 32 bits (no ZIP64): api__reply_zip refuses an archive of 4 GiB
 *      or more with MD_E_TOO_LARGE before anything is sent.
 *   2. An entry whose reader gives fewer or more bytes than its size, or fails (an encrypted
 *      chunk that does not authenticate), ends the stream with an error: the client sees a cut
 *      connection, never an archive with wrong bytes.
 */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define LOCAL_LEN 30
#define DESC_LEN 16
#define CENTRAL_LEN 46
#define END_LEN 22
#define FLAGS 0x0808 /* bit 3: data descriptor; bit 11: UTF-8 names */

typedef enum { ZS_LOCAL, ZS_DATA, ZS_DESC, ZS_CENTRAL, ZS_END, ZS_DONE } zs_phase;

typedef struct zs_entry {
    char name[API_ZIP_NAME_MAX];
    store_blob_reader *r; /* owned */
    uint32_t size, crc, offset;
    uint16_t time, date; /* MS-DOS, UTC */
} zs_entry;

typedef struct zip_stream {
    zs_entry *e;
    size_t n, i;
    zs_phase phase;
    uint32_t left; /* DATA: bytes of entry i still to send */
    uint32_t cd_offset, cd_size;
    uint8_t piece[CENTRAL_LEN + API_ZIP_NAME_MAX];
    size_t piece_len, piece_pos;
} zip_stream;

static uint8_t *put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    return put16(put16(p, v & 0xffff), v >> 16);
}

/* The header pieces, staged in zs->piece. */
static void stage_local(zip_stream *zs, const zs_entry *e)
{
    size_t nl = strlen(e->name);
    uint8_t *p = put32(zs->piece, 0x04034b50);
    p = put16(put16(put16(p, 20), FLAGS), 0); /* version needed, flags, stored */
    p = put16(put16(p, e->time), e->date);
    p = put32(put32(put32(p, 0), 0), 0); /* CRC and sizes: in the descriptor */
    p = put16(put16(p, (uint32_t)nl), 0);
    memcpy(p, e->name, nl);
    zs->piece_len = LOCAL_LEN + nl;
}

static void stage_desc(zip_stream *zs, const zs_entry *e)
{
    uint8_t *p = put32(zs->piece, 0x08074b50);
    put32(put32(put32(p, e->crc), e->size), e->size);
    zs->piece_len = DESC_LEN;
}

static void stage_central(zip_stream *zs, const zs_entry *e)
{
    size_t nl = strlen(e->name);
    uint8_t *p = put32(zs->piece, 0x02014b50);
    p = put16(put16(put16(put16(p, 20), 20), FLAGS), 0); /* made by, needed, flags, stored */
    p = put16(put16(p, e->time), e->date);
    p = put32(put32(put32(p, e->crc), e->size), e->size);
    p = put16(put16(put16(p, (uint32_t)nl), 0), 0); /* name, extra, comment lengths */
    p = put16(put16(p, 0), 0);                      /* disk, internal attributes */
    p = put32(put32(p, 0), e->offset);              /* external attributes, offset */
    memcpy(p, e->name, nl);
    zs->piece_len = CENTRAL_LEN + nl;
}

static void stage_end(zip_stream *zs)
{
    uint8_t *p = put32(zs->piece, 0x06054b50);
    p = put16(put16(p, 0), 0);
    p = put16(put16(p, (uint32_t)zs->n), (uint32_t)zs->n);
    put16(put32(put32(p, zs->cd_size), zs->cd_offset), 0);
    zs->piece_len = END_LEN;
}

/* The staged piece was sent: stage the next one (the state diagram above). */
static void advance(zip_stream *zs)
{
    zs->piece_pos = zs->piece_len = 0;
    switch (zs->phase) {
    case ZS_LOCAL:
        zs->phase = ZS_DATA;
        zs->left = zs->e[zs->i].size;
        return;
    case ZS_DATA:
        zs->phase = ZS_DESC;
        stage_desc(zs, &zs->e[zs->i]);
        return;
    case ZS_DESC:
        zs->i++;
        zs->phase = zs->i < zs->n ? ZS_LOCAL : ZS_CENTRAL;
        zs->i = zs->phase == ZS_CENTRAL ? 0 : zs->i;
        break;
    case ZS_CENTRAL:
        zs->i++;
        zs->phase = zs->i < zs->n ? ZS_CENTRAL : ZS_END;
        break;
    case ZS_END:
    case ZS_DONE:
        zs->phase = ZS_DONE;
        return;
    }
    if (zs->phase == ZS_LOCAL)
        stage_local(zs, &zs->e[zs->i]);
    else if (zs->phase == ZS_CENTRAL)
        stage_central(zs, &zs->e[zs->i]);
    else
        stage_end(zs);
}

/* Entry i's data into buf (invariant 2). */
static int read_data(zip_stream *zs, uint8_t *buf, size_t cap, size_t *got)
{
    zs_entry *e = &zs->e[zs->i];
    size_t want = zs->left < cap ? zs->left : cap;
    int rc = store_blob_reader_read(e->r, buf, want, got, NULL);
    if (rc == MD_OK && *got != want)
        rc = MD_E_IO; /* the blob is shorter than its size */
    if (rc != MD_OK)
        return rc;
    e->crc = (uint32_t)crc32(e->crc, buf, (uInt)*got);
    zs->left -= (uint32_t)*got;
    if (zs->left == 0) {
        uint8_t extra;
        size_t more = 0;
        rc = store_blob_reader_read(e->r, &extra, 1, &more, NULL);
        if (rc == MD_OK && more != 0)
            rc = MD_E_IO; /* longer than its size */
    }
    return rc;
}

static int zip_read(void *ctx, void *out, size_t cap, size_t *got)
{
    zip_stream *zs = ctx;
    uint8_t *buf = out;
    *got = 0;
    while (*got < cap && zs->phase != ZS_DONE) {
        size_t k = 0;
        if (zs->phase == ZS_DATA && zs->left > 0) {
            int rc = read_data(zs, buf + *got, cap - *got, &k);
            if (rc != MD_OK)
                return rc;
        } else if (zs->piece_pos < zs->piece_len) {
            k = zs->piece_len - zs->piece_pos < cap - *got ? zs->piece_len - zs->piece_pos
                                                           : cap - *got;
            memcpy(buf + *got, zs->piece + zs->piece_pos, k);
            zs->piece_pos += k;
        } else {
            advance(zs);
        }
        *got += k;
    }
    return MD_OK;
}

static void zip_free(void *ctx)
{
    zip_stream *zs = ctx;
    for (size_t i = 0; i < zs->n; i++)
        store_blob_reader_free(zs->e[i].r);
    free(zs->e);
    free(zs);
}

static void dos_time(int64_t ms, uint16_t *t, uint16_t *d)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    if (tm.tm_year < 80) { /* before 1980: the format's epoch */
        *t = 0;
        *d = (1 << 5) | 1;
        return;
    }
    *t = (uint16_t)((tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec / 2));
    *d = (uint16_t)(((tm.tm_year - 80) << 9) | ((tm.tm_mon + 1) << 5) | tm.tm_mday);
}

/* Offsets and sizes of the whole archive; MD_E_TOO_LARGE past 32 bits (invariant 1). */
static int lay_out(zip_stream *zs, uint64_t *total)
{
    uint64_t off = 0, cd = 0;
    for (size_t i = 0; i < zs->n; i++) {
        size_t nl = strlen(zs->e[i].name);
        zs->e[i].offset = (uint32_t)off;
        off += LOCAL_LEN + nl + (uint64_t)zs->e[i].size + DESC_LEN;
        cd += CENTRAL_LEN + nl;
        if (off + cd + END_LEN >= UINT32_MAX)
            return MD_E_TOO_LARGE;
    }
    zs->cd_offset = (uint32_t)off;
    zs->cd_size = (uint32_t)cd;
    *total = off + cd + END_LEN;
    return MD_OK;
}

int api__reply_zip(http_req *req, api__zip_entry *in, size_t n)
{
    md_err *err = http_req_err(req);
    zip_stream *zs = calloc(1, sizeof *zs);
    zs_entry *e = calloc(n ? n : 1, sizeof *e);
    if (!zs || !e) {
        for (size_t i = 0; i < n; i++)
            store_blob_reader_free(in[i].r);
        free(zs);
        free(e);
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    }
    zs->e = e;
    zs->n = n;
    int rc = MD_OK;
    for (size_t i = 0; i < n; i++) { /* the readers are the stream's from here on */
        snprintf(e[i].name, sizeof e[i].name, "%s", in[i].name);
        e[i].r = in[i].r;
        in[i].r = NULL;
        uint64_t size = store_blob_reader_size(e[i].r);
        if (size >= UINT32_MAX)
            rc = md_fail(err, MD_E_TOO_LARGE, "batch_id", "a result is 4 GiB or more");
        e[i].size = (uint32_t)size;
        dos_time(in[i].mtime_ms, &e[i].time, &e[i].date);
    }
    uint64_t total = 0;
    if (rc == MD_OK && lay_out(zs, &total) != MD_OK)
        rc = md_fail(err, MD_E_TOO_LARGE, "batch_id", "the results make a ZIP of 4 GiB or more");
    if (rc != MD_OK) {
        zip_free(zs);
        return rc;
    }
    zs->phase = n ? ZS_LOCAL : ZS_END;
    if (n)
        stage_local(zs, &e[0]);
    else
        stage_end(zs);
    return http_reply_stream(req, 200, "application/zip", total, zip_read, zip_free, zs);
}
