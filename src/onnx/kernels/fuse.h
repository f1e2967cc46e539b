/* fuse.h - load-time fusion of an activation into the kernel op before it (Conv, Gemm, MatMul,
 * BatchNormalization): the one place that decides which ONNX activations map onto onnx_kact.
 * Also the pooling attribute rules, shared by the pooling ops and the Conv chains that absorb
 * them, and the load-time bounds on geometry attributes that every pooling and convolution op
 * (float and integer) applies. */
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

/* Largest size, stride, dilation, pad or group a geometry attribute may hold: it keeps every
 * product of two of them (the output-size formulas) inside int64_t, whatever a hostile file says. */
#define ONNX_GEOM_MAX ((int64_t)1 << 30)

/* Every value of ints attribute `name` in [lo, ONNX_GEOM_MAX] (absent passes); a load-time
 * check failing with onnx__prep_fail (MD_E_MODEL_INVALID) naming the attribute. */
int onnx__attr_ints_bounded(const onnx_node *n, const char *name, int64_t lo, md_err *err);

/* auto_pad one of the known values (MD_E_UNSUPPORTED otherwise), checked at load. */
int onnx__autopad_check(const onnx_node *n, md_err *err);

/* auto_pad and group (1..ONNX_GEOM_MAX) of a convolution: Conv, ConvTranspose, ConvInteger,
 * QLinearConv. Load-time check failing with onnx__prep_fail. */
int onnx__conv_attrs_check(const onnx_node *n, md_err *err);

/* Pooling attributes of MaxPool / AveragePool node n (kernel_shape, strides, dilations, pads,
 * auto_pad, storage_order): load-time checks of their values, failing with onnx__prep_fail. */
int onnx__pool_attrs_check(const onnx_node *n, md_err *err);

/* The pooling geometry of node n (attributes already checked) for an input of the given shape;
 * kind is an onnx_kpool_kind. Errors name the attribute or "X". */
int onnx__pool_geom_of(const onnx_node *n, int rank, const int64_t *dims, int kind,
                       onnx_kpool_geom *g, md_err *e);

#endif
