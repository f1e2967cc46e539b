/* fuse.h - load-time fusion of an activation into the kernel op before it (Conv, Gemm, MatMul,
 * BatchNormalization). The one place that decides which ONNX activations map onto onnx_kact. */
#ifndef MD_ONNX_KERNELS_FUSE_H
#define MD_ONNX_KERNELS_FUSE_H

#include "onnx/kernels/kernels.h"
#include "onnx/onnx_int.h"

/* Whether node c (the sole reader of a kernel op's output) is an activation the kernels can
 * apply themselves: Relu, LeakyRelu, Sigmoid, Tanh, or Clip with constant float bounds
 * (min <= max). Fills *a when it is. */
int onnx__fusable_act(onnx_prep *p, const onnx_node *c, onnx_kact *a);

/* If n's output 0 is read only by a fusable activation, absorb it into n and return its kind in
 * *a (ONNX_KACT_NONE otherwise). Errors only from onnx__prep_absorb. */
int onnx__absorb_act(onnx_prep *p, onnx_node *n, onnx_kact *a, md_err *err);

#endif
