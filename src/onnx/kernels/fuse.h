/* fuse.h - load-time fusion of an activation into the kernel op before it (Conv, Gemm, MatMul,
 * BatchNormalization): the one place that decides which ONNX activations map onto onnx_kact.
 * Also the pooling attribute rules, shared by the pooling ops and the Conv chains that absorb
 * them. */
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

/* Pooling attributes of MaxPool / AveragePool node n (kernel_shape, strides, dilations, pads,
 * auto_pad, storage_order): load-time checks of their values, failing with onnx__prep_fail. */
int onnx__pool_attrs_check(const onnx_node *n, md_err *err);

/* The pooling geometry of node n (attributes already checked) for an input of the given shape;
 * kind is an onnx_kpool_kind. Errors name the attribute or "X". */
int onnx__pool_geom_of(const onnx_node *n, int rank, const int64_t *dims, int kind,
                       onnx_kpool_geom *g, md_err *e);

#endif
