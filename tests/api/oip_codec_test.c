/* oip_codec_test.c - the OIP infer request decoder: JSON tensors (flat and nested, every
 * datatype family), the binary tensor data extension (fixed-size and BYTES elements), requested
 * outputs, and errors that name the input and the field for each kind of bad request. The fast
 * path (numeric data parsed from the text, api/oip_lift.c) is compared with the jansson-only path
 * on edge numbers, malformed data and seeded random requests of every datatype: same tensors,
 * same error code, field and message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/oip_codec.h"
#include "api/oip_lift.h"
#include "base/buf.h"

#include <limits.h>
#include <math.h>

static const char MANIFEST[] =
    "{\"name\":\"t\",\"version\":\"1\",\"family\":\"generic\",\"runtime\":\"onnx\",\"artefact\":\"model.onnx\","
    "\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\","
    "\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,2]},"
    "{\"name\":\"ids\",\"datatype\":\"INT64\",\"shape\":[2]},"
    "{\"name\":\"text\",\"datatype\":\"BYTES\",\"shape\":[-1]},"
    "{\"name\":\"mask\",\"datatype\":\"BOOL\",\"shape\":[2]},"
    "{\"name\":\"h\",\"datatype\":\"FP16\",\"shape\":[1]},"
    "{\"name\":\"u\",\"datatype\":\"UINT8\",\"shape\":[2]}],"
    "\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[-1,3]},"
    "{\"name\":\"z\",\"datatype\":\"BYTES\",\"shape\":[-1]}]}";

/* Every input, JSON form; %s slots replace x's shape and data. */
#define REQ(x_shape, x_data, extra)                                                                    \
    "{\"id\":\"r1\",\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":" x_shape               \
    ",\"data\":" x_data "},{\"name\":\"ids\",\"datatype\":\"INT64\",\"shape\":[2],\"data\":[-5,9000000000]}," \
    "{\"name\":\"text\",\"datatype\":\"BYTES\",\"shape\":[2],\"data\":[\"ab\",\"\"]},"                   \
    "{\"name\":\"mask\",\"datatype\":\"BOOL\",\"shape\":[2],\"data\":[true,false]},"                     \
    "{\"name\":\"h\",\"datatype\":\"FP16\",\"shape\":[1],\"data\":[0.5]},"                               \
    "{\"name\":\"u\",\"datatype\":\"UINT8\",\"shape\":[2],\"data\":[0,255]}]" extra "}"

static mdl_manifest mf;
static md_arena *arena;

static int setup(void **state)
{
    (void)state;
    md_err e;
    assert_int_equal(mdl_manifest_parse(MANIFEST, sizeof MANIFEST - 1, &mf, &e), MD_OK);
    arena = md_arena_new(0);
    return arena ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    md_arena_free(arena);
    mdl_manifest_free(&mf);
    return 0;
}

static int decode(const char *body, size_t len, size_t hlen, oip_infer_req *rq, md_err *e)
{
    md_err_clear(e);
    return oip_decode_infer(body, len, hlen, &mf, arena, rq, e);
}

static const mdl_tensor *input(const oip_infer_req *rq, const char *name)
{
    for (size_t i = 0; i < rq->n_inputs; i++)
        if (strcmp(rq->inputs[i].name, name) == 0)
            return &rq->inputs[i];
    fail_msg("no input %s", name);
    return NULL;
}

static void test_json_every_type(void **state)
{
    (void)state;
    static const char body[] = REQ("[2,2]", "[1,2.5,-3,4]", "");
    oip_infer_req rq;
    md_err e;
    assert_int_equal(decode(body, sizeof body - 1, 0, &rq, &e), MD_OK);
    assert_string_equal(rq.id, "r1");
    assert_int_equal(rq.n_inputs, 6);
    assert_int_equal(rq.n_outputs, 0);
    const mdl_tensor *x = input(&rq, "x");
    assert_int_equal(x->rank, 2);
    assert_int_equal(x->dims[0], 2);
    const float *xf = x->data;
    assert_true(xf[1] == 2.5f && xf[2] == -3.0f);
    const int64_t *ids = input(&rq, "ids")->data;
    assert_true(ids[0] == -5 && ids[1] == 9000000000LL);
    const char *const *text = input(&rq, "text")->data;
    assert_string_equal(text[0], "ab");
    assert_string_equal(text[1], "");
    const uint8_t *mask = input(&rq, "mask")->data;
    assert_true(mask[0] == 1 && mask[1] == 0);
    assert_int_equal(((const uint16_t *)input(&rq, "h")->data)[0], 0x3800); /* 0.5 in binary16 */
    const uint8_t *u = input(&rq, "u")->data;
    assert_true(u[0] == 0 && u[1] == 255);
}

static void test_nested_equals_flat(void **state)
{
    (void)state;
    static const char nested[] = REQ("[2,2]", "[[1,2],[3,4]]", "");
    oip_infer_req rq;
    md_err e;
    assert_int_equal(decode(nested, sizeof nested - 1, 0, &rq, &e), MD_OK);
    const float *xf = input(&rq, "x")->data;
    assert_true(xf[0] == 1 && xf[3] == 4);
    static const char too_deep[] = REQ("[2,2]", "[[[1,2]],[[3,4]]]", "");
    assert_int_equal(decode(too_deep, sizeof too_deep - 1, 0, &rq, &e), MD_E_INVALID_PARAM);
    assert_non_null(strstr(e.msg, "nested"));
}

static void expect_error(const char *body, int code, const char *field, const char *words)
{
    oip_infer_req rq;
    md_err e;
    assert_int_equal(decode(body, strlen(body), 0, &rq, &e), code);
    if (field)
        assert_string_equal(e.field, field);
    assert_non_null(words && strstr(e.msg, words) ? e.msg : NULL);
}

static void test_errors_name_the_input(void **state)
{
    (void)state;
    expect_error(REQ("[2,3]", "[1,2,3,4,5,6]", ""), MD_E_INVALID_PARAM, "inputs[0]", "'x': shape [2,3]");
    expect_error(REQ("[2,2]", "[1,2,3]", ""), MD_E_INVALID_PARAM, "inputs[0]", "3 data elements");
    expect_error(REQ("[2,2]", "[1,2,3,4,5]", ""), MD_E_INVALID_PARAM, "inputs[0]", "(4 expected)");
    expect_error(REQ("[2,2]", "[1,2,\"3\",4]", ""), MD_E_INVALID_PARAM, "inputs[0]", "element 2");
    expect_error(REQ("[2,2]", "{}", ""), MD_E_INVALID_PARAM, "inputs[0]", "'x': data must be an array");
    expect_error(REQ("[2,2]", "[1,2,3,4]", ",\"outputs\":[{\"name\":\"q\"}]"), MD_E_INVALID_PARAM, "outputs[0]",
                 "'q'");
    expect_error(REQ("[2,2]", "[1,2,3,4]", ",\"outputs\":[{\"name\":\"y\"},{\"name\":\"y\"}]"), MD_E_INVALID_PARAM,
                 "outputs[1]", "twice");
    expect_error(REQ("[2,-1]", "[1,2,3,4]", ""), MD_E_INVALID_PARAM, "inputs[0]", "shape[1]");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[1,2],\"data\":[1,2]}]}",
                 MD_E_INVALID_PARAM, "inputs[0]", "datatype FP64 does not match the model's FP32");
    expect_error("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,2],\"data\":[1,2]}]}",
                 MD_E_MISSING_FIELD, "inputs", "'ids' is missing");
    expect_error("{\"inputs\":[{\"name\":\"nope\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}",
                 MD_E_INVALID_PARAM, "inputs[0]", "'nope'");
    expect_error("{\"inputs\":[]}", MD_E_MISSING_FIELD, "inputs", "non-empty");
    expect_error("[1]", MD_E_INVALID_JSON, NULL, "JSON object");
    expect_error("{\"inputs\":", MD_E_INVALID_JSON, NULL, "not valid JSON");
    expect_error("{\"id\":3,\"inputs\":[]}", MD_E_INVALID_PARAM, "id", "string");
}

static void test_integer_ranges(void **state)
{
    (void)state;
    static const char body[] =
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,2],\"data\":[1,2]},"
        "{\"name\":\"ids\",\"datatype\":\"INT64\",\"shape\":[2],\"data\":[1,2]},"
        "{\"name\":\"text\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"a\"]},"
        "{\"name\":\"mask\",\"datatype\":\"BOOL\",\"shape\":[2],\"data\":[true,1]},"
        "{\"name\":\"h\",\"datatype\":\"FP16\",\"shape\":[1],\"data\":[1]},"
        "{\"name\":\"u\",\"datatype\":\"UINT8\",\"shape\":[2],\"data\":[0,256]}]}";
    expect_error(body, MD_E_INVALID_PARAM, "inputs[3]", "'mask': element 1 is not a valid BOOL");
}

/* x and text as binary data, the rest JSON. */
static size_t binary_body(char *buf, size_t cap, int text_len_claim, size_t extra, size_t *hlen)
{
    static const char head_fmt[] =
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,2],\"parameters\":{\"binary_data_size\":8}},"
        "{\"name\":\"ids\",\"datatype\":\"INT64\",\"shape\":[2],\"data\":[1,2]},"
        "{\"name\":\"text\",\"datatype\":\"BYTES\",\"shape\":[2],\"parameters\":{\"binary_data_size\":11}},"
        "{\"name\":\"mask\",\"datatype\":\"BOOL\",\"shape\":[2],\"data\":[true,false]},"
        "{\"name\":\"h\",\"datatype\":\"FP16\",\"shape\":[1],\"data\":[1]},"
        "{\"name\":\"u\",\"datatype\":\"UINT8\",\"shape\":[2],\"data\":[0,1]}],"
        "\"parameters\":{\"binary_data_output\":true},\"outputs\":[{\"name\":\"z\"},"
        "{\"name\":\"y\",\"parameters\":{\"binary_data\":false}}]}";
    size_t n = strlen(head_fmt);
    assert_true(n + 32 < cap);
    memcpy(buf, head_fmt, n);
    *hlen = n;
    float x[2] = {1.5f, -2.0f};
    memcpy(buf + n, x, 8);
    n += 8;
    uint32_t l1 = (uint32_t)text_len_claim, l2 = 0;
    memcpy(buf + n, &l1, 4);
    memcpy(buf + n + 4, "abc", 3);
    memcpy(buf + n + 7, &l2, 4);
    n += 11;
    memset(buf + n, 0, extra);
    return n + extra;
}

static void test_binary_extension(void **state)
{
    (void)state;
    char body[2048];
    size_t hlen = 0, len = binary_body(body, sizeof body, 3, 0, &hlen);
    oip_infer_req rq;
    md_err e;
    assert_int_equal(decode(body, len, hlen, &rq, &e), MD_OK);
    const float *x = input(&rq, "x")->data;
    assert_true(x[0] == 1.5f && x[1] == -2.0f);
    const char *const *text = input(&rq, "text")->data;
    assert_string_equal(text[0], "abc");
    assert_string_equal(text[1], "");
    assert_true(rq.binary_output);
    assert_int_equal(rq.n_outputs, 2);
    assert_string_equal(rq.outputs[0].name, "z");
    assert_true(rq.outputs[0].binary);
    assert_string_equal(rq.outputs[1].name, "y");
    assert_false(rq.outputs[1].binary);

    len = binary_body(body, sizeof body, 3, 4, &hlen);
    assert_int_equal(decode(body, len, hlen, &rq, &e), MD_E_INVALID_PARAM);
    assert_non_null(strstr(e.msg, "4 bytes of binary data are not claimed"));
    len = binary_body(body, sizeof body, 1000, 0, &hlen);
    assert_int_equal(decode(body, len, hlen, &rq, &e), MD_E_INVALID_PARAM);
    assert_non_null(strstr(e.msg, "'text': binary BYTES element 0 claims 1000 bytes"));
    len = binary_body(body, sizeof body, 3, 0, &hlen);
    assert_int_equal(decode(body, len - 5, hlen, &rq, &e), MD_E_INVALID_PARAM);
    assert_non_null(strstr(e.msg, "'text': binary_data_size 11 exceeds"));
    /* binary sizes without a binary part */
    assert_int_equal(decode(body, hlen, 0, &rq, &e), MD_E_INVALID_PARAM);
    assert_non_null(strstr(e.msg, "no Inference-Header-Content-Length"));
    assert_int_equal(decode(body, 10, 11, &rq, &e), MD_E_INVALID_PARAM);
}

static void test_json_part_capped(void **state)
{
    (void)state;
    size_t n = OIP_JSON_MAX + 16;
    char *body = malloc(n);
    assert_non_null(body);
    memset(body, ' ', n);
    body[0] = '{';
    body[n - 1] = '}';
    oip_infer_req rq;
    md_err e;
    assert_int_equal(decode(body, n, 0, &rq, &e), MD_E_TOO_LARGE);
    assert_non_null(strstr(e.msg, "binary data"));
    free(body);
}

static void test_header_len(void **state)
{
    (void)state;
    size_t n = 99;
    md_err e;
    assert_int_equal(oip_header_len(NULL, 10, &n, &e), MD_OK);
    assert_int_equal(n, 0);
    assert_int_equal(oip_header_len("7", 10, &n, &e), MD_OK);
    assert_int_equal(n, 7);
    assert_int_equal(oip_header_len("10", 10, &n, &e), MD_OK);
    const char *bad[] = {"0", "11", "", "-1", "+3", " 3", "3 ", "0x3", "99999999999999999999999", NULL};
    for (size_t i = 0; bad[i]; i++) {
        assert_int_equal(oip_header_len(bad[i], 10, &n, &e), MD_E_INVALID_PARAM);
        assert_string_equal(e.field, "Inference-Header-Content-Length");
    }
}

static void test_tensor_meta(void **state)
{
    (void)state;
    json_t *j = oip_tensor_meta(&mf.inputs[0]);
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(s, "{\"datatype\":\"FP32\",\"name\":\"x\",\"shape\":[-1,2]}");
    free(s);
    json_decref(j);
}

/* ---- the fast path against the jansson-only path ---- */

/* One input per datatype of the manifest language, ranks 1..3, every dimension free. */
static const char *const DIFF_TYPES[] = {"BOOL",   "INT8",   "INT16",  "INT32", "INT64", "UINT8", "UINT16",
                                         "UINT32", "UINT64", "FP16",   "FP32",  "FP64",  "BYTES"};
#define N_DIFF (sizeof DIFF_TYPES / sizeof DIFF_TYPES[0])

static int diff_rank(size_t k)
{
    return 1 + (int)(k % 3);
}

static void diff_manifest(mdl_manifest *out)
{
    md_buf b;
    md_buf_init(&b, 1 << 16);
    md_buf_puts(&b, "{\"name\":\"d\",\"version\":\"1\",\"family\":\"generic\",\"runtime\":\"onnx\",\"artefact\":"
                    "\"model.onnx\",\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\","
                    "\"inputs\":[");
    for (size_t k = 0; k < N_DIFF; k++)
        md_buf_printf(&b, "%s{\"name\":\"a%zu\",\"datatype\":\"%s\",\"shape\":[%s]}", k ? "," : "", k, DIFF_TYPES[k],
                      diff_rank(k) == 1 ? "-1" : diff_rank(k) == 2 ? "-1,-1" : "-1,-1,-1");
    md_buf_puts(&b, "],\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[-1]}]}");
    md_err e;
    assert_int_equal(mdl_manifest_parse(b.data, b.len, out, &e), MD_OK);
    md_buf_free(&b);
}

static size_t t_numel(const mdl_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= (size_t)t->dims[i];
    return n;
}

/* Both paths on one body: the same code, field and message, or the same request. Returns the
 * code. */
static int decode_both(const char *body, size_t len, size_t hlen, const mdl_manifest *m)
{
    md_arena *a1 = md_arena_new(0), *a2 = md_arena_new(0);
    assert_non_null(a1);
    assert_non_null(a2);
    oip_infer_req r1, r2;
    md_err e1, e2;
    md_err_clear(&e1);
    md_err_clear(&e2);
    int c1 = oip__decode_infer(body, len, hlen, m, a1, &r1, &e1, true);
    int c2 = oip__decode_infer(body, len, hlen, m, a2, &r2, &e2, false);
    if (c1 != c2 || strcmp(e1.field, e2.field) != 0 || strcmp(e1.msg, e2.msg) != 0)
        fail_msg("fast %d '%s' '%s' / jansson %d '%s' '%s' on %.*s", c1, e1.field, e1.msg, c2, e2.field, e2.msg,
                 (int)(len < 2000 ? len : 2000), body);
    if (c1 == MD_OK) {
        assert_int_equal(r1.n_inputs, r2.n_inputs);
        assert_int_equal(r1.n_outputs, r2.n_outputs);
        assert_int_equal(r1.binary_output, r2.binary_output);
        assert_true((r1.id == NULL) == (r2.id == NULL) && (!r1.id || strcmp(r1.id, r2.id) == 0));
        for (size_t i = 0; i < r1.n_inputs; i++) {
            const mdl_tensor *x = &r1.inputs[i], *y = &r2.inputs[i];
            assert_string_equal(x->name, y->name);
            assert_int_equal(x->dtype, y->dtype);
            assert_int_equal(x->rank, y->rank);
            assert_memory_equal(x->dims, y->dims, sizeof x->dims[0] * (size_t)x->rank);
            size_t n = t_numel(x);
            if (x->dtype == ONNX_STRING) {
                for (size_t k = 0; k < n; k++)
                    assert_string_equal(((const char *const *)x->data)[k], ((const char *const *)y->data)[k]);
            } else if (n) {
                if (memcmp(x->data, y->data, n * onnx_dtype_size(x->dtype)) != 0)
                    fail_msg("input %s differs on %.*s", x->name, (int)(len < 2000 ? len : 2000), body);
            }
        }
        for (size_t i = 0; i < r1.n_outputs; i++) {
            assert_string_equal(r1.outputs[i].name, r2.outputs[i].name);
            assert_int_equal(r1.outputs[i].binary, r2.outputs[i].binary);
        }
    }
    md_arena_free(a1);
    md_arena_free(a2);
    return c1;
}

static int diff_str(const mdl_manifest *m, const char *body)
{
    return decode_both(body, strlen(body), 0, m);
}

/* The number text t as the only element of an input of type dt (rank-1 input k of the diff
 * manifest is used through a one-input manifest built here). */
static int one_value(const char *dt, const char *t, void *out, size_t size, md_err *err)
{
    char mfs[512], body[512];
    snprintf(mfs, sizeof mfs,
             "{\"name\":\"o\",\"version\":\"1\",\"family\":\"generic\",\"runtime\":\"onnx\",\"artefact\":\"m.onnx\","
             "\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"inputs\":[{\"name\":"
             "\"v\",\"datatype\":\"%s\",\"shape\":[-1]}],\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\","
             "\"shape\":[-1]}]}",
             dt);
    snprintf(body, sizeof body, "{\"inputs\":[{\"name\":\"v\",\"datatype\":\"%s\",\"shape\":[1],\"data\":[%s]}]}", dt,
             t);
    mdl_manifest m;
    md_err e;
    assert_int_equal(mdl_manifest_parse(mfs, strlen(mfs), &m, &e), MD_OK);
    int rc = decode_both(body, strlen(body), 0, &m);
    md_arena *a = md_arena_new(0);
    oip_infer_req rq;
    md_err_clear(err);
    assert_int_equal(oip_decode_infer(body, strlen(body), 0, &m, a, &rq, err), rc);
    if (rc == MD_OK)
        memcpy(out, rq.inputs[0].data, size);
    md_arena_free(a);
    mdl_manifest_free(&m);
    return rc;
}

static double fp64(const char *t)
{
    double d = -1;
    md_err e;
    assert_int_equal(one_value("FP64", t, &d, sizeof d, &e), MD_OK);
    return d;
}

static void test_fast_edge_numbers(void **state)
{
    (void)state;
    md_err e;
    assert_true(fp64("1e308") == 1e308);
    assert_true(fp64("1e-320") == 1e-320 && fp64("1e-320") > 0); /* subnormal */
    assert_true(fp64("4.9e-324") == 4.9e-324);
    assert_true(fp64("1e-400") == 0);
    assert_true(fp64("-0.0") == 0 && signbit(fp64("-0.0")));
    assert_true(fp64("-0") == 0 && !signbit(fp64("-0"))); /* a JSON integer 0, as jansson has it */
    assert_true(fp64("0.1") == 0.1);
    assert_true(fp64("24.700000762939453") == 24.700000762939453);
    assert_true(fp64("9007199254740993") == 9007199254740992.0);
    assert_true(fp64("1.7976931348623157e308") == 1.7976931348623157e308);
    assert_true(fp64("123.456e-10") == 123.456e-10);
    assert_true(fp64("1E5") == 1e5 && fp64("1e+2") == 100);
    /* Halfway cases (ties to even) and their neighbours, 17 to 19 digits: the exact 128-bit path. */
    static const char *const ties[] = {"9007199254740993.0",     "9007199254740995.0",  "9007199254740993.00001",
                                       "9007199254740993e1",     "1.8014398509481985e16", "4503599627370496.5",
                                       "4503599627370497.5",     "1152921504606846977e-2", "9999999999999999999e-19",
                                       "9999999999999999999e19", "18446744073709551615.0", "0.1000000000000000055511"};
    for (size_t k = 0; k < sizeof ties / sizeof ties[0]; k++)
        if (fp64(ties[k]) != strtod(ties[k], NULL))
            fail_msg("%s: %.17g, strtod %.17g", ties[k], fp64(ties[k]), strtod(ties[k], NULL));
    float f = 0;
    assert_int_equal(one_value("FP32", "0.30000000000000004", &f, sizeof f, &e), MD_OK);
    assert_true(f == 0.3f);
    int64_t i = 0;
    assert_int_equal(one_value("INT64", "123456789012345678", &i, sizeof i, &e), MD_OK);
    assert_true(i == 123456789012345678LL);
    assert_int_equal(one_value("INT64", "-9223372036854775808", &i, sizeof i, &e), MD_OK);
    assert_true(i == INT64_MIN);
    assert_int_equal(one_value("INT64", "9223372036854775807", &i, sizeof i, &e), MD_OK);
    assert_true(i == INT64_MAX);
    uint64_t u = 0;
    assert_int_equal(one_value("UINT64", "9223372036854775807", &u, sizeof u, &e), MD_OK);
    assert_true(u == (uint64_t)INT64_MAX);
    /* Refused as jansson refuses them (the same message, checked by decode_both). */
    static const char *const bad_json[] = {"1e309",   "-1e309", "9223372036854775808", "-9223372036854775809",
                                           "01",      "1.",     ".5",                  "-",
                                           "+1",      "NaN",    "Infinity",            "-Infinity",
                                           "1e",      "1e+",    "0x10",                "tru",
                                           "1,",      "[1",     "1]",                  "1 2",
                                           "\"a",     "1,,2",   "[1,]",                "1e5.0"};
    for (size_t k = 0; k < sizeof bad_json / sizeof bad_json[0]; k++)
        assert_int_equal(one_value("FP64", bad_json[k], &i, sizeof i, &e), MD_E_INVALID_JSON);
    /* Valid JSON, not a valid element. */
    assert_int_equal(one_value("INT64", "1.0", &i, sizeof i, &e), MD_E_INVALID_PARAM);
    assert_non_null(strstr(e.msg, "element 0 is not a valid INT64"));
    assert_int_equal(one_value("INT8", "128", &i, sizeof i, &e), MD_E_INVALID_PARAM);
    assert_int_equal(one_value("UINT64", "-1", &i, sizeof i, &e), MD_E_INVALID_PARAM);
    assert_int_equal(one_value("BOOL", "1", &i, sizeof i, &e), MD_E_INVALID_PARAM);
    assert_int_equal(one_value("FP32", "true", &i, sizeof i, &e), MD_E_INVALID_PARAM);
    assert_int_equal(one_value("BYTES", "1", &i, sizeof i, &e), MD_E_INVALID_PARAM);
    assert_int_equal(one_value("FP32", "null", &i, sizeof i, &e), MD_E_INVALID_PARAM);
}

/* Depth bombs and shapes of nesting: the same answers (decode_both), and the lift really taken
 * for a plain request (else the comparisons above would test jansson against itself). */
static void test_fast_nesting(void **state)
{
    (void)state;
    mdl_manifest m;
    diff_manifest(&m);
    md_buf b;
    int depths[] = {3, 9, 33, 70, 3000};
    for (size_t k = 0; k < sizeof depths / sizeof depths[0]; k++) {
        md_buf_init(&b, 1 << 20);
        md_buf_puts(&b, "{\"inputs\":[{\"name\":\"a10\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":");
        for (int d = 0; d < depths[k]; d++)
            md_buf_putc(&b, '[');
        md_buf_putc(&b, '1');
        for (int d = 0; d < depths[k]; d++)
            md_buf_putc(&b, ']');
        md_buf_puts(&b, "}]}");
        int rc = decode_both(b.data, b.len, 0, &m);
        assert_true(rc == MD_E_INVALID_PARAM || rc == MD_E_INVALID_JSON);
        md_buf_free(&b);
    }
    /* rank 2 (a10): leaves beside arrays are counted as walk_data counts them */
    const char *ok[] = {"[[1,2],[3,4]]", "[1,[2],3,4]", "[[],1,2,3,4]", "[[1,2,3,4]]", "[1,2,3,4]"};
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        char body[256];
        snprintf(body, sizeof body, "{\"inputs\":[{\"name\":\"a10\",\"datatype\":\"FP32\",\"shape\":[2,2],\"data\":%s}]}",
                 ok[k]);
        assert_int_equal(diff_str(&m, body), MD_E_MISSING_FIELD); /* the other inputs are missing */
    }
    const char *bad[] = {"[[[1],2],3,4]", "[1,2,3,4,[[5]]]", "[1,2,3,4,5,[[6]]]", "[1,2,3,[[4]]]", "[1,2,3]",
                         "[[1,2],[3,4],[5]]"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char body[256];
        snprintf(body, sizeof body, "{\"inputs\":[{\"name\":\"a10\",\"datatype\":\"FP32\",\"shape\":[2,2],\"data\":%s}]}",
                 bad[k]);
        assert_int_equal(diff_str(&m, body), MD_E_INVALID_PARAM);
    }
    static const char plain[] = "{\"inputs\":[{\"name\":\"a\",\"data\":[[1,2.5],[true]]},{\"data\":[\"s\"]},"
                                "{\"d\\u0061ta\":[1]},{\"data\":[0]}],\"data\":[1]}";
    oip_lift_set ls;
    oip_lift_scan(plain, sizeof plain - 1, &ls);
    assert_int_equal(ls.n, 2);
    assert_int_equal(ls.v[0].input, 0);
    assert_int_equal(ls.v[0].count, 3);
    assert_int_equal(ls.v[0].first_at_depth[1], 0);
    assert_int_equal(ls.v[0].leaves[1].kind, OIP_LEAF_REAL);
    assert_int_equal(ls.v[0].leaves[2].kind, OIP_LEAF_TRUE);
    assert_int_equal(ls.v[1].input, 3);
    oip_lift_free(&ls);
    oip_lift_scan(plain, sizeof plain - 2, &ls); /* truncated: nothing */
    assert_int_equal(ls.n, 0);
    mdl_manifest_free(&m);
}

/* ---- seeded random requests ---- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return n ? (uint32_t)(rng_state >> 33) % n : 0;
}

static const char *const ANY_VALUES[] = {
    "1", "-1", "0", "-0", "1.0", "-0.0", "true", "false", "null", "\"s\"", "{}", "1e308", "1e-320", "4.9e-324",
    "2.4703282292062327e-324", "123456789012345678", "9223372036854775807", "-9223372036854775808", "0.1",
    "1.7976931348623157e308", "65504", "65520", "3.4028235677973366e38", "3.4028236e38", "1e-46",
    "0.30000000000000004", "9007199254740993", "9007199254740993.0", "1E5", "1e+2", "-1.5e-7",
    "0.0000000000000000000000000001", "1234567890.1234567890123", "255", "256", "-129", "65535", "4294967296",
    "2147483648", "-2147483649", "0.5e1", "5e-1", "100000000000000000000.0", "18446744073709551615.0"};
static const char *const BAD_VALUES[] = {"1e309", "9223372036854775808", "-9223372036854775809", "01", "1.", ".5",
                                         "-", "+1", "NaN", "Infinity", "1e", "tru", "0x10", "\"a", "1,", "\"\\u0000\"",
                                         "\"\\x\"", "[", "]", "\"\xff\""};

static void put_elem(md_buf *b, const char *dt)
{
    uint32_t roll = rnd(1000);
    if (roll < 2) {
        md_buf_puts(b, BAD_VALUES[rnd(sizeof BAD_VALUES / sizeof BAD_VALUES[0])]);
        return;
    }
    if (roll < 20) {
        md_buf_puts(b, ANY_VALUES[rnd(sizeof ANY_VALUES / sizeof ANY_VALUES[0])]);
        return;
    }
    if (strcmp(dt, "BOOL") == 0) {
        md_buf_puts(b, rnd(2) ? "true" : "false");
    } else if (strcmp(dt, "BYTES") == 0) {
        md_buf_printf(b, rnd(2) ? "\"w%u\"" : "\"\\u00e9%u\"", rnd(100));
    } else if (dt[0] == 'F') {
        double x = ((double)rnd(1u << 30) / (1u << 30) - 0.5) * pow(10, (int)rnd(20) - 10);
        switch (rnd(4)) {
        case 0: md_buf_printf(b, "%.*g", 1 + (int)rnd(17), x); break;
        case 1: md_buf_printf(b, "%.*e", (int)rnd(18), x); break;
        case 2: md_buf_printf(b, "%.*f", (int)rnd(25), x); break;
        default: md_buf_printf(b, "%d", (int)rnd(2000) - 1000); break;
        }
        /* %g may write "1e+05"; "inf"/"nan" cannot come from these */
    } else {
        bool uns = dt[0] == 'U';
        int bits = atoi(dt + (uns ? 4 : 3));
        long long lo = uns ? 0 : bits == 64 ? INT64_MIN : -(1ll << (bits - 1));
        long long hi = bits == 64 || (!uns && bits == 64) ? INT64_MAX : uns ? (1ll << bits) - 1 : (1ll << (bits - 1)) - 1;
        long long v = (long long)rnd(bits > 16 ? 4000000000u : (uint32_t)(hi - lo + 1)) + (bits > 16 ? -2000000000ll : lo);
        if (uns && v < 0)
            v = -v;
        if (rnd(10) == 0)
            v = rnd(2) ? lo : hi;
        if (rnd(20) == 0 && v > LLONG_MIN && v < LLONG_MAX)
            v += rnd(2) ? 1 : -1;
        md_buf_printf(b, "%lld", v);
    }
}

static void put_ws(md_buf *b)
{
    uint32_t r = rnd(20);
    if (r == 0)
        md_buf_puts(b, " ");
    else if (r == 1)
        md_buf_puts(b, "\n\t ");
}

/* dims[0..rank) of data, nested or flat, with rare extra nesting, empty arrays and miscounts. */
static void put_data(md_buf *b, const char *dt, const int *dims, int rank, bool nested)
{
    md_buf_putc(b, '[');
    put_ws(b);
    nested = nested && rank > 0;
    int n = nested ? dims[0] : 1;
    if (!nested)
        for (int d = 0; d < rank; d++)
            n *= dims[d];
    if (rnd(40) == 0)
        n += rnd(2) ? 1 : -1;
    for (int i = 0; i < n; i++) {
        if (i)
            md_buf_putc(b, ',');
        put_ws(b);
        if (rnd(150) == 0)
            md_buf_puts(b, "[],");
        if (nested && rank > 1)
            put_data(b, dt, dims + 1, rank - 1, true);
        else if (rnd(150) == 0) {
            md_buf_putc(b, '[');
            put_elem(b, dt);
            md_buf_putc(b, ']');
        } else
            put_elem(b, dt);
        put_ws(b);
    }
    if (rnd(300) == 0)
        md_buf_putc(b, ',');
    md_buf_putc(b, ']');
}

/* One input object; its keys in either order (data first or last), rarely with a wrong rank,
 * datatype, an escaped or duplicated "data" key, or binary_data_size beside data. */
static void put_input(md_buf *b, size_t k)
{
    int rank = diff_rank(k), dims[4];
    if (rnd(50) == 0)
        rank += rnd(2) ? 1 : -1;
    for (int d = 0; d < rank; d++)
        dims[d] = (int)rnd(4);
    bool data_first = rnd(3) == 0, nested = rnd(2) == 0;
    const char *key = rnd(100) == 0 ? "d\\u0061ta" : "data";
    md_buf_printf(b, "{\"name\":\"a%zu\",", k);
    if (data_first) {
        md_buf_printf(b, "\"%s\":", key);
        put_data(b, DIFF_TYPES[k], dims, rank, nested);
        md_buf_putc(b, ',');
    }
    md_buf_puts(b, "\"shape\":[");
    for (int d = 0; d < rank; d++)
        md_buf_printf(b, "%s%d", d ? "," : "", dims[d]);
    md_buf_printf(b, "],\"datatype\":\"%s\"", rnd(100) ? DIFF_TYPES[k] : DIFF_TYPES[rnd(N_DIFF)]);
    if (rnd(100) == 0)
        md_buf_puts(b, ",\"parameters\":{\"binary_data_size\":0}");
    if (!data_first) {
        md_buf_printf(b, ",\"%s\":", key);
        put_data(b, DIFF_TYPES[k], dims, rank, nested);
    }
    if (rnd(200) == 0)
        md_buf_puts(b, ",\"data\":[1]");
    md_buf_putc(b, '}');
}

static void random_request(md_buf *b)
{
    md_buf_puts(b, rnd(2) ? "{\"id\":\"r\"," : "{");
    md_buf_puts(b, "\"inputs\":[");
    size_t order[N_DIFF];
    for (size_t k = 0; k < N_DIFF; k++)
        order[k] = k;
    if (rnd(10) == 0) {
        size_t i = rnd(N_DIFF), j = rnd(N_DIFF), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    size_t n = rnd(20) == 0 ? N_DIFF - 1 : N_DIFF;
    for (size_t k = 0; k < n; k++) {
        if (k)
            md_buf_putc(b, ',');
        put_ws(b);
        put_input(b, order[k]);
    }
    md_buf_putc(b, ']');
    if (rnd(4) == 0)
        md_buf_puts(b, ",\"outputs\":[{\"name\":\"y\",\"parameters\":{\"binary_data\":true}}]");
    md_buf_putc(b, '}');
}

/* The lift's number parser against strtod on many random reals of 1 to 19 significant digits
 * (every path: Clinger's, the exact 128-bit one, strtod's), bit for bit. */
static void test_fast_numbers_match_strtod(void **state)
{
    (void)state;
    rng_state = 7;
    md_buf b;
    md_buf_init(&b, 1 << 24);
    md_buf_puts(&b, "{\"inputs\":[{\"data\":[");
    enum { N = 60000 };
    static char texts[N][40];
    for (int i = 0; i < N; i++) {
        uint64_t bits = ((uint64_t)rnd(1u << 31) << 33) ^ ((uint64_t)rnd(1u << 31) << 2) ^ rnd(4);
        double x;
        memcpy(&x, &bits, sizeof x);
        if (!isfinite(x) || fabs(x) > 1e300)
            x = (double)rnd(1000) / 7;
        if (i % 3 == 0) /* a float as clients send it: widened, then printed in full */
            x = (float)(((double)rnd(1u << 30) / (1u << 30) - 0.5) * pow(10, (int)rnd(12) - 6));
        if (i % 3 == 1)
            x = ((double)rnd(1u << 30) / (1u << 30)) * pow(10, (int)rnd(44) - 22);
        snprintf(texts[i], sizeof texts[i], "%.*e", (int)rnd(19), x);
        md_buf_printf(&b, "%s%s", i ? "," : "", texts[i]);
    }
    md_buf_puts(&b, "]}]}");
    oip_lift_set ls;
    oip_lift_scan(b.data, b.len, &ls);
    assert_int_equal(ls.n, 1);
    assert_int_equal(ls.v[0].count, N);
    for (int i = 0; i < N; i++) {
        double want = strtod(texts[i], NULL), got = ls.v[0].leaves[i].v.d;
        assert_int_equal(ls.v[0].leaves[i].kind, OIP_LEAF_REAL);
        if (memcmp(&want, &got, sizeof want) != 0)
            fail_msg("%s: %.17g, strtod %.17g", texts[i], got, want);
    }
    oip_lift_free(&ls);
    md_buf_free(&b);
}

static void test_fast_equals_jansson_random(void **state)
{
    (void)state;
    mdl_manifest m;
    diff_manifest(&m);
    rng_state = 20261207;
    size_t ok = 0, bad = 0, lifted = 0, total = 3000;
    for (size_t r = 0; r < total; r++) {
        md_buf b;
        md_buf_init(&b, 1 << 22);
        random_request(&b);
        size_t len = b.len;
        if (rnd(25) == 0)
            len = rnd((uint32_t)len); /* truncated */
        oip_lift_set ls;
        oip_lift_scan(b.data ? b.data : "", len, &ls);
        lifted += ls.n;
        oip_lift_free(&ls);
        if (decode_both(b.data ? b.data : "", len, 0, &m) == MD_OK)
            ok++;
        else
            bad++;
        md_buf_free(&b);
    }
    /* Both outcomes are well represented, and most data arrays took the fast path. */
    assert_true(ok > total / 10);
    assert_true(bad > total / 10);
    assert_true(lifted > total * N_DIFF / 2);
    mdl_manifest_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_every_type), cmocka_unit_test(test_nested_equals_flat),
        cmocka_unit_test(test_errors_name_the_input), cmocka_unit_test(test_integer_ranges),
        cmocka_unit_test(test_binary_extension), cmocka_unit_test(test_json_part_capped),
        cmocka_unit_test(test_header_len),
        cmocka_unit_test(test_tensor_meta),
        cmocka_unit_test(test_fast_edge_numbers), cmocka_unit_test(test_fast_nesting),
        cmocka_unit_test(test_fast_numbers_match_strtod), cmocka_unit_test(test_fast_equals_jansson_random),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
