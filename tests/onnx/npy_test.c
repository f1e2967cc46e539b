/* npy_test.c - the .npy reader round-trips what the writer makes and refuses malformed
 * files with a message: bad magic, header length past the end, missing keys, Fortran order,
 * unknown dtypes, data shorter or longer than the shape says, overflowing shapes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "onnx/npy.h"

static void test_roundtrip(void **state)
{
    (void)state;
    onnx_tensor *t = NULL, *u = NULL;
    md_err err;
    int64_t d[3] = {2, 1, 3};
    assert_int_equal(onnx_tensor_new(ONNX_INT64, 3, d, &t, &err), MD_OK);
    for (int i = 0; i < 6; i++)
        ((int64_t *)t->data)[i] = (int64_t)i * -1000000007LL;
    md_buf b;
    md_buf_init(&b, 1 << 20);
    assert_int_equal(onnx_npy_write(t, &b, &err), MD_OK);
    assert_int_equal((10 + (size_t)(unsigned char)b.data[8]) % 64, 0); /* header padded to 64 */
    assert_int_equal(onnx_npy_parse(b.data, b.len, 0, &u, &err), MD_OK);
    assert_int_equal(u->dtype, ONNX_INT64);
    assert_int_equal(u->rank, 3);
    assert_int_equal(u->dims[2], 3);
    assert_memory_equal(u->data, t->data, 6 * sizeof(int64_t));
    onnx_tensor_free(u);
    onnx_tensor_free(t);
    md_buf_free(&b);
}

/* A version 1.0 file with the given header text and data length. Ownership: new (free()). */
static char *make(const char *header, size_t data_len, size_t *len)
{
    size_t hl = strlen(header);
    *len = 10 + hl + data_len;
    char *f = calloc(1, *len);
    memcpy(f, "\x93NUMPY\x01\x00", 8);
    f[8] = (char)(hl & 0xff);
    f[9] = (char)(hl >> 8);
    memcpy(f + 10, header, hl);
    return f;
}

static void expect(const char *header, size_t data_len, int code, const char *needle)
{
    size_t len;
    char *f = make(header, data_len, &len);
    onnx_tensor *t = NULL;
    md_err err;
    md_err_clear(&err);
    int rc = onnx_npy_parse(f, len, 1 << 20, &t, &err);
    if (rc != code)
        fprintf(stderr, "header %s: got %d (%s)\n", header, rc, err.msg);
    assert_int_equal(rc, code);
    if (code == MD_OK) {
        onnx_tensor_free(t);
    } else {
        assert_null(t);
        assert_non_null(strstr(err.msg, needle));
    }
    free(f);
}

static void test_hostile_headers(void **state)
{
    (void)state;
    expect("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 24, MD_OK, "");
    expect("{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", 4, MD_OK, "");
    expect("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 23, MD_E_INVALID_PARAM,
           "expected 24");
    expect("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 25, MD_E_INVALID_PARAM,
           "expected 24");
    expect("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n", 24, MD_E_UNSUPPORTED,
           "Fortran");
    expect("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }\n", 16, MD_E_UNSUPPORTED,
           "<c8");
    expect("{'descr': '<f4', 'shape': (2,), }\n", 8, MD_E_INVALID_PARAM, "lacks");
    expect("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }\n", 8, MD_E_INVALID_PARAM,
           "shape");
    expect("{'descr': '<f4', 'fortran_order': False, 'shape': (999999999999, 999999999999), }\n",
           8, MD_E_TOO_LARGE, "larger");
    expect("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n",
           8, MD_E_INVALID_PARAM, "shape");
    expect("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }\n",
           8, MD_E_TOO_LARGE, "larger");
    expect("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }\n", 4,
           MD_E_INVALID_PARAM, "shape");
    expect("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}\n", 24,
           MD_E_INVALID_PARAM, "extra");
    expect("not a dict", 0, MD_E_INVALID_PARAM, "dict");
}

static void test_bad_framing(void **state)
{
    (void)state;
    onnx_tensor *t = NULL;
    md_err err;
    assert_int_equal(onnx_npy_parse("\x93NUMPX\x01\x00\x00\x00", 10, 0, &t, &err),
                     MD_E_INVALID_PARAM);
    assert_int_equal(onnx_npy_parse("\x93NUMPY", 6, 0, &t, &err), MD_E_INVALID_PARAM);
    /* header length 0xffff with a 12-byte file */
    assert_int_equal(onnx_npy_parse("\x93NUMPY\x01\x00\xff\xff{}", 12, 0, &t, &err),
                     MD_E_INVALID_PARAM);
    assert_int_equal(onnx_npy_parse("\x93NUMPY\x09\x00\x00\x00", 10, 0, &t, &err),
                     MD_E_UNSUPPORTED);
    assert_null(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test(test_bad_framing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
