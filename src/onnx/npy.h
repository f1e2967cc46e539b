/* npy.h - NumPy .npy files <-> onnx_tensor, for `modeld infer` and tests.
 *
 * Reads versions 1.0, 2.0 and 3.0 of the format, little-endian or byte-order-free dtypes
 * (f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1), C order only. The bytes are untrusted: the header
 * length, every dim and the data length are checked against the file size and max_bytes.
 */
#ifndef MD_ONNX_NPY_H
#define MD_ONNX_NPY_H

#include <stddef.h>

#include "base/buf.h"
#include "base/err.h"
#include "onnx/onnx.h"

/* Parse .npy bytes (borrowed for the call). max_bytes limits the tensor data (0 = 1 GiB).
 * Ownership: *out is new; free with onnx_tensor_free(). Errors: MD_E_INVALID_PARAM naming the
 * part of the file that is wrong, MD_E_UNSUPPORTED (dtype, fortran order), MD_E_TOO_LARGE,
 * MD_E_NOMEM. */
int onnx_npy_parse(const void *data, size_t len, size_t max_bytes, onnx_tensor **out,
                   md_err *err);

/* Append t as a version 1.0 .npy file to out (a bounded buffer the caller owns).
 * Errors: MD_E_UNSUPPORTED (string or sequence values), MD_E_TOO_LARGE, MD_E_NOMEM. */
int onnx_npy_write(const onnx_tensor *t, md_buf *out, md_err *err);

#endif
