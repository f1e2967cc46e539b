/* csv_test.c - the streaming CSV reader: header and rows, CRLF, quotes (delimiters, line ends
 * and doubled quotes inside), empty fields and lines, a last line without its end, every chunk
 * split giving the same rows, and errors naming the field and the line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "base/csv.h"

/* Rows rendered as "f1|f2|...;" with the line as "@N" in front, for easy comparison. */
typedef struct sink {
    char text[4096];
    size_t len;
    int stop_at; /* row number (1-based) whose callback fails; 0 = none */
    int rows;
} sink;

static int on_row(void *user, const char *const *f, const size_t *lens, size_t n, size_t line,
                  md_err *err)
{
    sink *s = user;
    s->rows++;
    if (s->stop_at && s->rows == s->stop_at)
        return md_fail(err, MD_E_UNSUPPORTED, "row", "stop");
    s->len += (size_t)snprintf(s->text + s->len, sizeof s->text - s->len, "@%zu:", line);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(strlen(f[i]), lens[i]);
        s->len +=
            (size_t)snprintf(s->text + s->len, sizeof s->text - s->len, "%s%s", i ? "|" : "", f[i]);
    }
    s->len += (size_t)snprintf(s->text + s->len, sizeof s->text - s->len, ";");
    return MD_OK;
}

/* Parse text fed in chunks of chunk bytes (0 = all at once); returns the code, fills s. */
static int parse(const char *text, const md_csv_opts *o, size_t chunk, sink *s, md_err *e)
{
    md_csv *c = NULL;
    assert_int_equal(md_csv_new(o, on_row, s, &c, e), MD_OK);
    size_t n = strlen(text);
    int rc = MD_OK;
    for (size_t off = 0; rc == MD_OK && off < n;) {
        size_t k = chunk && chunk < n - off ? chunk : n - off;
        rc = md_csv_feed(c, text + off, k, e);
        off += k;
    }
    if (rc == MD_OK)
        rc = md_csv_finish(c, e);
    md_csv_free(c);
    return rc;
}

static void expect_rows(const char *text, bool header, const char *want)
{
    md_csv_opts o = {.header = header};
    /* whole, then every chunk size up to 7: the same rows */
    for (size_t chunk = 0; chunk <= 7; chunk++) {
        sink s = {0};
        md_err e = {0};
        int rc = parse(text, &o, chunk, &s, &e);
        if (rc != MD_OK)
            fail_msg("chunk %zu: %s", chunk, e.msg);
        assert_string_equal(s.text, want);
    }
}

static void test_rows_and_quotes(void **state)
{
    (void)state;
    expect_rows("a,b\n1,2\n3,4\n", true, "@2:1|2;@3:3|4;");
    expect_rows("a,b\r\n1,2\r\n3,4", true, "@2:1|2;@3:3|4;");
    expect_rows("a,b\r\n1,2\r", true, "@2:1|2;");
    expect_rows("\"x,y\",\"he said \"\"hi\"\"\",plain\n", false, "@1:x,y|he said \"hi\"|plain;");
    expect_rows("\"l1\nl2\",z\r\nnext,\"r\r\n\"\n", false, "@1:l1\nl2|z;@3:next|r\r\n;");
    expect_rows(",,\n\"\"\n", false, "@1:||;@2:;");
    expect_rows("a\n\n\r\n\nb\n", false, "@1:a;@5:b;");
    expect_rows("\r\n\n", false, "");
    expect_rows("", false, "");
    expect_rows("x,\"\"\n", false, "@1:x|;");
    expect_rows("c1\n\"\"\n", true, "@2:;");
}

static void test_header_columns_and_delimiter(void **state)
{
    (void)state;
    md_csv *c = NULL;
    sink s = {0};
    md_csv_opts o = {.header = true, .delim = ';'};
    assert_int_equal(md_csv_new(&o, on_row, &s, &c, NULL), MD_OK);
    size_t n = 9;
    assert_null(md_csv_columns(c, &n));
    assert_int_equal(n, 0);
    const char *text = "age;\"plan;name\"\n41;gold\n";
    assert_int_equal(md_csv_feed(c, text, strlen(text), NULL), MD_OK);
    assert_int_equal(md_csv_finish(c, NULL), MD_OK);
    const char *const *cols = md_csv_columns(c, &n);
    assert_int_equal(n, 2);
    assert_string_equal(cols[0], "age");
    assert_string_equal(cols[1], "plan;name");
    assert_int_equal(md_csv_rows(c), 1);
    assert_string_equal(s.text, "@2:41|gold;");
    md_csv_free(c);
    md_csv_free(NULL);

    md_err e = {0};
    o = (md_csv_opts){.delim = '"'};
    assert_int_equal(md_csv_new(&o, on_row, &s, &c, &e), MD_E_INVALID_PARAM);
    assert_null(c);
}

static void expect_error(const char *text, const md_csv_opts *o, int code, const char *needle)
{
    for (size_t chunk = 0; chunk <= 3; chunk++) {
        sink s = {0};
        md_err e = {0};
        int rc = parse(text, o, chunk, &s, &e);
        if (rc != code)
            fail_msg("\"%s\" chunk %zu: want %d, got %d (%s)", text, chunk, code, rc, e.msg);
        assert_string_equal(e.field, o->field ? o->field : "csv");
        if (!strstr(e.msg, needle))
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", text, e.msg, needle);
    }
}

static void test_errors_name_field_and_line(void **state)
{
    (void)state;
    md_csv_opts plain = {.field = "file"};
    md_csv_opts header = {.header = true, .field = "file"};
    expect_error("ok\na\"b\n", &plain, MD_E_INVALID_PARAM, "line 2: a quote inside");
    expect_error("\"ab\"c\n", &plain, MD_E_INVALID_PARAM, "line 1: text after a closing quote");
    expect_error("x\n\"abc\n", &plain, MD_E_INVALID_PARAM, "quoted field is not closed");
    expect_error("a\rb\n", &plain, MD_E_INVALID_PARAM, "line 1: a CR not followed by LF");
    expect_error("a,b\n1,2\n3\n", &header, MD_E_INVALID_PARAM, "line 3: the row's field count");
    expect_error("a,,c\n", &header, MD_E_INVALID_PARAM, "empty column name");
    expect_error("a,b,a\n", &header, MD_E_INVALID_PARAM, "repeats a column name");
    expect_error("", &header, MD_E_INVALID_PARAM, "no header row");
    expect_error("\n\r\n", &header, MD_E_INVALID_PARAM, "no header row");
    md_csv_opts small = {.max_field = 4, .max_fields = 2};
    expect_error("abcd\nabcde\n", &small, MD_E_TOO_LARGE, "line 2: a field is too long");
    expect_error("\"abcde\"\n", &small, MD_E_TOO_LARGE, "a field is too long");
    expect_error("a,b\na,b,c\n", &small, MD_E_TOO_LARGE, "line 2: the row has too many fields");
}

static void test_callback_error_stops_and_sticks(void **state)
{
    (void)state;
    md_csv *c = NULL;
    sink s = {.stop_at = 2};
    md_err e = {0};
    assert_int_equal(md_csv_new(NULL, on_row, &s, &c, NULL), MD_OK);
    const char *text = "1\n2\n3\n";
    assert_int_equal(md_csv_feed(c, text, strlen(text), &e), MD_E_UNSUPPORTED);
    assert_string_equal(e.field, "row");
    assert_int_equal(s.rows, 2);
    memset(&e, 0, sizeof e);
    assert_int_equal(md_csv_feed(c, "4\n", 2, &e), MD_E_UNSUPPORTED);
    assert_string_equal(e.field, "row");
    assert_int_equal(md_csv_finish(c, &e), MD_E_UNSUPPORTED);
    assert_int_equal(s.rows, 2);
    md_csv_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_and_quotes),
        cmocka_unit_test(test_header_columns_and_delimiter),
        cmocka_unit_test(test_errors_name_field_and_line),
        cmocka_unit_test(test_callback_error_stops_and_sticks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
