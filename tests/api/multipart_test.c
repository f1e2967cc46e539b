/* multipart_test.c - the upload parser finds the "file" part, refuses malformed or over-limit
 * envelopes with 400 and the right field, and never lets a filename carry a path. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "api/multipart.h"

#define CRLF "\r\n"

static int find(const char *body, const char *field, mp_part *p, md_err *e)
{
    return mp_find(body, strlen(body), "XyZ", field, p, e);
}

static void test_boundary(void **state)
{
    (void)state;
    char b[MP_BOUNDARY_MAX + 1];
    md_err e = {0};
    assert_int_equal(mp_boundary("multipart/form-data; boundary=abc123", b, sizeof b, &e), MD_OK);
    assert_string_equal(b, "abc123");
    assert_int_equal(
        mp_boundary("Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b;c\"", b, sizeof b, &e),
        MD_OK);
    assert_string_equal(b, "a b;c");
    assert_int_equal(mp_boundary("application/json", b, sizeof b, &e), MD_E_UNSUPPORTED_MEDIA);
    assert_int_equal(mp_boundary(NULL, b, sizeof b, &e), MD_E_UNSUPPORTED_MEDIA);
    assert_int_equal(mp_boundary("multipart/form-data", b, sizeof b, &e), MD_E_BAD_REQUEST);
    assert_int_equal(mp_boundary("multipart/form-data; boundary=", b, sizeof b, &e),
                     MD_E_BAD_REQUEST);
    char longct[200];
    snprintf(longct, sizeof longct, "multipart/form-data; boundary=%071d", 0);
    assert_int_equal(mp_boundary(longct, b, sizeof b, &e), MD_E_BAD_REQUEST);
}

static void test_finds_file_among_parts(void **state)
{
    (void)state;
    static const char body[] =
        "preamble" CRLF "--XyZ" CRLF "Content-Disposition: form-data; name=\"note\"" CRLF CRLF
        "hello" CRLF "--XyZ" CRLF
        "content-disposition: form-data; name=\"file\"; filename=\"C:\\\\pics\\\\logo.png\"" CRLF
        "Content-Type: image/png" CRLF CRLF "\x89PNG\0bin--XyZ\r" CRLF "--XyZ--" CRLF;
    mp_part p;
    md_err e = {0};
    size_t len = sizeof body - 1; /* the data holds a NUL: strlen would stop there */
    assert_int_equal(mp_find(body, len, "XyZ", "file", &p, &e), MD_OK);
    assert_string_equal(p.name, "file");
    assert_string_equal(p.filename, "logo.png");
    assert_string_equal(p.content_type, "image/png");
    assert_int_equal(p.len, 14);
    assert_memory_equal(p.data, "\x89PNG\0bin--XyZ\r", 14);
    assert_int_equal(mp_find(body, len, "XyZ", "note", &p, &e), MD_OK);
    assert_int_equal(p.len, 5);
    assert_string_equal(p.filename, "");
}

/* mp_parse: every part in order (repeated "files" parts of a batch), and the part limit. */
static void test_parse_all_parts(void **state)
{
    (void)state;
    static const char body[] =
        "--XyZ" CRLF "Content-Disposition: form-data; name=\"files\"; filename=\"a.png\"" CRLF CRLF
        "AAA" CRLF "--XyZ" CRLF "Content-Disposition: form-data; name=\"quality\"" CRLF CRLF
        "fast" CRLF "--XyZ" CRLF "Content-Disposition: form-data; name=\"files\"; filename=\"b.png\"" CRLF
        CRLF "BB" CRLF "--XyZ--" CRLF;
    mp_part parts[4];
    size_t n = 99;
    md_err e = {0};
    assert_int_equal(mp_parse(body, sizeof body - 1, "XyZ", parts, 4, &n, &e), MD_OK);
    assert_int_equal(n, 3);
    assert_string_equal(parts[0].name, "files");
    assert_string_equal(parts[0].filename, "a.png");
    assert_memory_equal(parts[0].data, "AAA", 3);
    assert_string_equal(parts[1].name, "quality");
    assert_int_equal(parts[1].len, 4);
    assert_string_equal(parts[2].filename, "b.png");
    assert_int_equal(parts[2].len, 2);
    assert_int_equal(mp_parse(body, sizeof body - 1, "XyZ", parts, 2, &n, &e), MD_E_BAD_REQUEST);
    assert_string_equal(e.field, "files");
    assert_int_equal(mp_parse("--XyZ--" CRLF, 9, "XyZ", parts, 4, &n, &e), MD_OK);
    assert_int_equal(n, 0);
    assert_int_equal(mp_parse("no boundary", 11, "XyZ", parts, 4, &n, &e), MD_E_BAD_REQUEST);
}

static void test_missing_field(void **state)
{
    (void)state;
    mp_part p;
    md_err e = {0};
    const char *body =
        "--XyZ" CRLF "Content-Disposition: form-data; name=\"other\"" CRLF CRLF "x" CRLF "--XyZ--";
    assert_int_equal(find(body, "file", &p, &e), MD_E_MISSING_FIELD);
    assert_string_equal(e.field, "file");
}

static void test_malformed(void **state)
{
    (void)state;
    mp_part p;
    md_err e = {0};
    const char *bad[] = {
        "",                        /* empty */
        "no boundary here at all", /* no delimiter */
        "--XyZ" CRLF "Content-Disposition: form-data; name=\"file\"" CRLF CRLF "data never closed",
        "--XyZ" CRLF "Content-Disposition: form-data; name=\"file\"", /* headers never end */
        "--XyZ" CRLF "X-Other: 1" CRLF CRLF "x" CRLF "--XyZ--",       /* no disposition */
        "--XyZ" CRLF "garbage header line" CRLF CRLF "x" CRLF "--XyZ--",
        "--XyZjunk" CRLF CRLF "x" CRLF "--XyZ--", /* bad delimiter line */
        "--XyZ" CRLF CRLF "x" CRLF "--XyZ--",     /* no header lines */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        md_err_clear(&e);
        assert_int_equal(find(bad[i], "file", &p, &e), MD_E_BAD_REQUEST);
        assert_string_equal(e.field, "file");
    }
    assert_int_equal(mp_find(NULL, 0, "XyZ", "file", &p, &e), MD_E_BAD_REQUEST);
}

static void test_limits(void **state)
{
    (void)state;
    mp_part p;
    md_err e = {0};
    /* Part headers longer than MP_HEADERS_MAX. */
    size_t n = MP_HEADERS_MAX + 200;
    char *body = malloc(n + 100);
    int k =
        sprintf(body, "--XyZ" CRLF "Content-Disposition: form-data; name=\"file\"" CRLF "X-Pad: ");
    memset(body + k, 'a', n);
    strcpy(body + k + n, CRLF CRLF "x" CRLF "--XyZ--");
    assert_int_equal(find(body, "file", &p, &e), MD_E_BAD_REQUEST);
    free(body);
    /* More than MP_PARTS_MAX parts before the wanted one. */
    const char *part = "--XyZ" CRLF "Content-Disposition: form-data; name=\"x\"" CRLF CRLF "v" CRLF;
    body = malloc(strlen(part) * (MP_PARTS_MAX + 2) + 200);
    body[0] = '\0';
    for (int i = 0; i < MP_PARTS_MAX + 1; i++)
        strcat(body, part);
    strcat(body, "--XyZ" CRLF "Content-Disposition: form-data; name=\"file\"" CRLF CRLF "v" CRLF
                 "--XyZ--");
    assert_int_equal(find(body, "file", &p, &e), MD_E_BAD_REQUEST);
    free(body);
}

static void test_sanitize(void **state)
{
    (void)state;
    char out[16];
    const struct {
        const char *in, *want;
    } cases[] = {
        {"../../etc/passwd", "passwd"},
        {"a\\b\\c.png", "c.png"},
        {"..", ""},
        {"/", ""},
        {"ok name.png", "ok name.png"},
        {"tab\there\".png", "tab_here_.png"},
        {"caf\xc3\xa9.png", "caf\xc3\xa9.png"},
        {"bad\xff\xfe.png", "bad__.png"},
        {"\xed\xa0\x80x", "___x"}, /* a UTF-16 surrogate is not UTF-8 */
        {"a-very-long-file-name.png", "a-very-long-fil"},
        {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
         "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mp_sanitize_filename(cases[i].in, strlen(cases[i].in), out, sizeof out);
        assert_string_equal(out, cases[i].want);
    }
}

/* ---- the streaming reader (multipart_stream.c) ---- */

typedef struct collected {
    mp_part parts[8];
    size_t n;
    char data[8][64];
    size_t dlen[8];
} collected;

static int c_part(void *user, const mp_part *p)
{
    collected *c = user;
    c->parts[c->n] = *p;
    c->dlen[c->n] = 0;
    return MD_OK;
}

static int c_data(void *user, const uint8_t *d, size_t n)
{
    collected *c = user;
    assert_true(c->dlen[c->n] + n < sizeof c->data[0]);
    memcpy(c->data[c->n] + c->dlen[c->n], d, n);
    c->dlen[c->n] += n;
    return MD_OK;
}

static int c_end(void *user, const mp_part *p)
{
    collected *c = user;
    c->parts[c->n].len = p->len;
    assert_int_equal(p->len, c->dlen[c->n]);
    c->n++;
    return MD_OK;
}

/* Feed body in pieces of `piece` bytes. */
static int stream(const char *body, size_t len, const char *boundary, size_t piece, collected *c, md_err *e)
{
    memset(c, 0, sizeof *c);
    mp_stream_cb cb = {c_part, c_data, c_end};
    mp_stream *s = NULL;
    int rc = mp_stream_new(boundary, 8, &cb, c, &s, e);
    for (size_t off = 0; rc == MD_OK && off < len; off += piece)
        rc = mp_stream_feed(s, body + off, len - off < piece ? len - off : piece, e);
    if (rc == MD_OK)
        rc = mp_stream_finish(s, e);
    mp_stream_free(s);
    return rc;
}

/* Data holding near-delimiters ("\r\n--XyZ" without its end, "\r\r\n-") comes out whole, for
 * every split of the body, at the offsets mp_parse finds. */
static void test_stream_same_as_parse(void **state)
{
    (void)state;
    static const char body[] =
        "preamble" CRLF "--XyZ" CRLF "Content-Disposition: form-data; name=\"file\"; filename=\"a.csv\"" CRLF
        "Content-Type: text/csv" CRLF CRLF "a,b\r\r\n-\r\n--Xy\r\n--XyQ" CRLF "--XyZ  " CRLF
        "Content-Disposition: form-data; name=\"callback_url\"" CRLF CRLF "http://h/" CRLF "--XyZ--"
        CRLF "epilogue";
    size_t len = sizeof body - 1;
    mp_part mem[8];
    size_t n = 0;
    md_err e = {0};
    assert_int_equal(mp_parse(body, len, "XyZ", mem, 8, &n, &e), MD_OK);
    assert_int_equal(n, 2);
    for (size_t piece = 1; piece <= len; piece++) {
        collected c;
        assert_int_equal(stream(body, len, "XyZ", piece, &c, &e), MD_OK);
        assert_int_equal(c.n, 2);
        for (size_t i = 0; i < 2; i++) {
            assert_int_equal(c.parts[i].offset, mem[i].offset);
            assert_int_equal(c.parts[i].len, mem[i].len);
            assert_memory_equal(c.data[i], mem[i].data, mem[i].len);
            assert_string_equal(c.parts[i].name, mem[i].name);
        }
        assert_string_equal(c.parts[0].filename, "a.csv");
        assert_string_equal(c.parts[0].content_type, "text/csv");
    }
}

static void test_stream_refuses_what_parse_refuses(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "no boundary here at all",
        "--XyZ" CRLF "Content-Disposition: form-data; name=\"file\"" CRLF CRLF "data never closed",
        "--XyZ" CRLF "Content-Disposition: form-data; name=\"file\"",
        "--XyZ" CRLF "X-Other: 1" CRLF CRLF "x" CRLF "--XyZ--",
        "--XyZjunk" CRLF CRLF "x" CRLF "--XyZ--",
        "--XyZ" CRLF CRLF "x" CRLF "--XyZ--",
        "--XyZ-x",
        "--XyZ" CRLF "Content-Disposition: form-data; name=\"file\"" CRLF CRLF "x" CRLF "--XyZ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        collected c;
        md_err e = {0};
        mp_part parts[8];
        size_t n;
        assert_int_equal(mp_parse(bad[i], strlen(bad[i]), "XyZ", parts, 8, &n, &e), MD_E_BAD_REQUEST);
        md_err_clear(&e);
        assert_int_equal(stream(bad[i], strlen(bad[i]), "XyZ", 3, &c, &e), MD_E_BAD_REQUEST);
        assert_string_equal(e.field, "file");
    }
    /* the part limit names "files" */
    const char *two = "--XyZ" CRLF "Content-Disposition: form-data; name=\"a\"" CRLF CRLF "1" CRLF "--XyZ" CRLF
                      "Content-Disposition: form-data; name=\"b\"" CRLF CRLF "2" CRLF "--XyZ--";
    mp_stream *s = NULL;
    md_err e = {0};
    assert_int_equal(mp_stream_new("XyZ", 1, NULL, NULL, &s, &e), MD_OK);
    assert_int_equal(mp_stream_feed(s, two, strlen(two), &e), MD_E_BAD_REQUEST);
    assert_string_equal(e.field, "files");
    assert_int_equal(mp_stream_feed(s, "x", 1, &e), MD_E_BAD_REQUEST); /* sticky */
    mp_stream_free(s);
    assert_int_equal(mp_stream_new("", 1, NULL, NULL, &s, &e), MD_E_BAD_REQUEST);
}

/* mp_file_parse: parts located in a file bigger than its read block, never loaded whole. */
static void test_file_parse(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    const char *head = "--XyZ" CRLF "Content-Disposition: form-data; name=\"file\"; filename=\"big.csv\"" CRLF CRLF;
    fputs(head, f);
    size_t big = (size_t)3 << 20; /* 3 MiB of rows with CRLF line ends */
    for (size_t i = 0; i < big / 8; i++)
        fputs("1,2,3" CRLF "x", f);
    fputs(CRLF "--XyZ" CRLF "Content-Disposition: form-data; name=\"callback_url\"" CRLF CRLF "http://h/" CRLF
                "--XyZ--" CRLF,
          f);
    fflush(f);
    long size = ftell(f);
    mp_part parts[4];
    size_t n = 0;
    md_err e = {0};
    assert_int_equal(mp_file_parse(fileno(f), (uint64_t)size, "XyZ", parts, 4, &n, &e), MD_OK);
    assert_int_equal(n, 2);
    assert_string_equal(parts[0].filename, "big.csv");
    assert_int_equal(parts[0].offset, strlen(head));
    assert_int_equal(parts[0].len, big);
    assert_null(parts[0].data);
    assert_string_equal(parts[1].name, "callback_url");
    assert_int_equal(parts[1].len, 9);
    char v[10] = {0};
    assert_int_equal(pread(fileno(f), v, 9, (off_t)parts[1].offset), 9);
    assert_string_equal(v, "http://h/");
    /* cut short: the closing delimiter is missing */
    assert_int_equal(mp_file_parse(fileno(f), (uint64_t)size - 12, "XyZ", parts, 4, &n, &e), MD_E_BAD_REQUEST);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundary),      cmocka_unit_test(test_finds_file_among_parts),
        cmocka_unit_test(test_missing_field), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_limits),        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_parse_all_parts),
        cmocka_unit_test(test_stream_same_as_parse),
        cmocka_unit_test(test_stream_refuses_what_parse_refuses),
        cmocka_unit_test(test_file_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
