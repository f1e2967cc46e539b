/* oip_codec_test.c - the OIP infer request decoder: JSON tensors (flat and nested, every
 * datatype family), the binary tensor data extension (fixed-size and BYTES elements), requested
 * outputs, and errors that name the input and the field for each kind of bad request. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/oip_codec.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_every_type), cmocka_unit_test(test_nested_equals_flat),
        cmocka_unit_test(test_errors_name_the_input), cmocka_unit_test(test_integer_ranges),
        cmocka_unit_test(test_binary_extension), cmocka_unit_test(test_json_part_capped),
        cmocka_unit_test(test_header_len),
        cmocka_unit_test(test_tensor_meta),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
