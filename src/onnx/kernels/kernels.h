/* kernels.h - the compute kernels behind the heavy ONNX operators, over plain float buffers.
 *
 * The ops in src/onnx/ops/{conv,pool,batchnorm,gemm,matmul}*.c translate ONNX attributes into the
 * small geometry structs below and call these functions; nothing here knows about graphs, protobuf
 * or the executor, so every kernel is unit-tested against naive loops (tests/onnx/kernels_test.c).
 *
 * Libraries: convolutions run on oneDNN (C API, jit avx2/avx512 kernels), matrix products on
 * oneDNN's sgemm; both use Debian's OpenMP build of oneDNN, so the thread count is a property of
 * the calling thread (omp_set_num_threads), never a process-wide setting: several requests can run
 * at once with one intra-op thread each (the default), or one request can use more.
 *
 * Invariants:
 *  1. A kernel object (onnx__conv) is immutable after onnx__conv_new and may be run from many
 *     threads at once; per-run state lives in the caller's scratch buffer and in a small pool of
 *     oneDNN memory handles inside the object, taken and returned under a mutex.
 *  2. Scratch buffers come from the caller (the run arena), 64-byte aligned, at least
 *     onnx__conv_scratch() bytes; kernels never allocate per run once warm.
 *  3. Tensors are dense, row-major (NCHW / NCDHW for images), float32.
 *
 * Threading policy: the intra-op thread count of a run (onnx_run_opts.threads, default 1 so a
 * server runs one request per core) bounds every kernel; kernels under about a million
 * multiply-adds and all layout reorders run on the calling thread alone (onnx__kern_threads_for).
 *
 * Environment (diagnostics): MODELD_ONNX_NO_DNNL=1 runs every convolution on the direct loops;
 * MODELD_ONNX_CONV_POLICY=nowino disables Winograd (results closer to a direct convolution),
 * =any lets oneDNN choose all layouts (both also turn our own Winograd off).
 * MODELD_ONNX_CONV3X3=winograd|onednn|auto picks who runs 3x3 (and 5x5) stride-1 convolutions:
 * our own Winograd F(4,3) on AVX2 + FMA (wino.c), oneDNN, or (auto, the default) ours where
 * oneDNN has no Winograd (CPUs without AVX-512, or ONEDNN_MAX_CPU_ISA below it) and for 3x3
 * convolutions of up to 32 output channels beside it (see conv.c). All three are read when a
 * convolution is built.
 */
#ifndef MD_ONNX_KERNELS_H
#define MD_ONNX_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define ONNX_KMAX_SPATIAL 3

/* Activation fused into the kernel's output (oneDNN eltwise post-op, or a loop for fallbacks). */
typedef enum onnx_kact_kind {
    ONNX_KACT_NONE = 0,
    ONNX_KACT_RELU,     /* max(x, 0) */
    ONNX_KACT_LEAKY,    /* x < 0 ? alpha * x : x */
    ONNX_KACT_CLIP,     /* min(max(x, alpha), beta) */
    ONNX_KACT_SIGMOID,  /* 1 / (1 + exp(-x)) */
    ONNX_KACT_TANH,
} onnx_kact_kind;

typedef struct onnx_kact {
    onnx_kact_kind kind;
    float alpha, beta;
} onnx_kact;

/* Apply an activation in place over n values (used by fallbacks and by ops that cannot fuse). */
void onnx__kact_apply(const onnx_kact *a, float *x, size_t n);

/* Set the intra-op thread count of the calling thread (OpenMP, used by oneDNN). n < 1 means 1. */
void onnx__kern_set_threads(int n);

/* The thread count worth using for a kernel of `macs` multiply-adds when `threads` are allowed:
 * 1 below about a million (waking and joining a team costs more than it saves, and far more on
 * a loaded machine), else threads. */
int onnx__kern_threads_for(int threads, double macs);

/* ---- Spatial attributes (auto_pad, pads, output sizes) shared by Conv and the poolings ------- */

typedef enum onnx_autopad {
    ONNX_AUTOPAD_NOTSET = 0,
    ONNX_AUTOPAD_VALID,
    ONNX_AUTOPAD_SAME_UPPER,
    ONNX_AUTOPAD_SAME_LOWER,
} onnx_autopad;

/* Parse ONNX's auto_pad string; -1 when unknown. */
int onnx__autopad_parse(const char *s);

/* Output size of one spatial dim of a Conv or pooling (ek = effective kernel (k-1)*d+1). With
 * SAME_* / VALID, *pb / *pe are overwritten with the implied pads; with NOTSET they are read.
 * ceil_mode applies to NOTSET only (ONNX pooling rule: a last window starting past in + pb is
 * dropped). Returns the size, or -1 when the padded input is smaller than the kernel. */
int64_t onnx__spatial_out(int autopad, int ceil_mode, int64_t in, int64_t ek, int64_t stride,
                          int64_t *pb, int64_t *pe);

typedef struct onnx__conv onnx__conv; /* a chain of stages, see onnx__conv_new */

/* ---- Convolution and transposed convolution ------------------------------------------------ */

/* Geometry of one Conv / ConvTranspose, with all ONNX attributes already resolved (auto_pad turned
 * into explicit pads, output sizes computed). Weights follow ONNX:
 *   Conv:          W[oc][ic/group][k...]
 *   ConvTranspose: W[ic][oc/group][k...]
 * Pads may be asymmetric; for ConvTranspose, output_padding is folded into pad_end (which may then
 * be negative: the extra outputs receive the bias only). */
typedef struct onnx_kconv_geom {
    int transpose;                         /* 0: Conv, 1: ConvTranspose */
    int nsp;                               /* spatial dims, 1..ONNX_KMAX_SPATIAL */
    int64_t n, ic, oc, group;
    int64_t in[ONNX_KMAX_SPATIAL];         /* input spatial sizes */
    int64_t out[ONNX_KMAX_SPATIAL];        /* output spatial sizes */
    int64_t k[ONNX_KMAX_SPATIAL];          /* kernel sizes */
    int64_t stride[ONNX_KMAX_SPATIAL];     /* >= 1 */
    int64_t dil[ONNX_KMAX_SPATIAL];        /* >= 1 */
    int64_t pad_begin[ONNX_KMAX_SPATIAL];
    int64_t pad_end[ONNX_KMAX_SPATIAL];
    int has_bias;                          /* a bias is given (at build time or with each run) */
    onnx_kact act;                         /* fused activation of the output */
} onnx_kconv_geom;


/* Check a geometry for consistency (positive sizes, output sizes matching the formula, channel
 * counts divisible by group, sizes that fit memory). Names the bad field in e. */
int onnx__conv_check(const onnx_kconv_geom *g, md_err *e);

/* Multiply-adds of one convolution of this geometry (for the threading decision). */
double onnx__conv_macs(const onnx_kconv_geom *g);

/* Number of weight values of the geometry (W's element count). */
size_t onnx__conv_weight_count(const onnx_kconv_geom *g);

/* Build a chain of n_stages convolutions. oneDNN fixes a primitive's thread count when it is
 * built: the calling thread's OpenMP thread count at this call is the one every run uses. */
/* Build a chain of n_stages convolutions, stage i+1 reading stage i's output (a Conv followed by
 * Convs that only it feeds). Picks the oneDNN implementations and, when w[0] is not NULL, reorders
 * every stage's weights into its preferred layout once (w[i], bias[i] are borrowed for the call
 * only; bias[i] is read when g[i].has_bias). Between stages the activations stay in oneDNN's
 * blocked layout, so only the chain's input and output are reordered.
 * With w == NULL (one stage only), weights and bias are given to every onnx__conv_run instead.
 * Falls back to direct loops when oneDNN has no implementation or env MODELD_ONNX_NO_DNNL=1.
 * *out is new, freed with onnx__conv_free. */
int onnx__conv_new(int n_stages, const onnx_kconv_geom *g, const float *const *w,
                   const float *const *bias, onnx__conv **out, md_err *e);

/* Bytes of scratch one run needs (64-byte aligned buffer, private to the run). */
size_t onnx__conv_scratch(const onnx__conv *c);

/* Whether the object runs on oneDNN (1) or on the direct-loop fallback (0). */
int onnx__conv_uses_dnnl(const onnx__conv *c);
/* How many of its stages run on our own Winograd (wino.c) rather than a oneDNN primitive. */
int onnx__conv_wino_stages(const onnx__conv *c);

/* Run: x is [n][ic][in...] of stage 0, y is [n][oc][out...] of the last stage. w / bias are used
 * only when the object was built without weights (borrowed for the call). scratch:
 * onnx__conv_scratch() bytes. Runs on the thread count fixed at build time. */
int onnx__conv_run(const onnx__conv *c, const float *x, const float *w, const float *bias, float *y,
                   void *scratch, md_err *e);

void onnx__conv_free(onnx__conv *c);

/* Direct-loop convolution (the fallback; also handles what oneDNN refuses). No allocation. */
void onnx__conv_direct(const onnx_kconv_geom *g, const float *x, const float *w, const float *bias,
                       float *y);

/* ---- Our own 3x3 and 5x5 convolution: Winograd F(4,3) on AVX2 + FMA (wino.c) ----------------- */

/* Plain NCHW in and out, constant weights transformed once, bias and activation fused. Compiled
 * with target attributes and usable only where onnx__wino_cpu_ok() (cpuid: AVX2 and FMA). The
 * chains of conv.c pick it per stage (env MODELD_ONNX_CONV3X3, see conv.c). */
typedef struct onnx__wino onnx__wino;

/* 1 when this CPU has AVX2 and FMA. */
int onnx__wino_cpu_ok(void);
/* 1 for a forward, 2-D, group-1, 3x3 or 5x5 convolution, stride 1, dilation 1, any padding. */
int onnx__wino_geom_ok(const onnx_kconv_geom *g);
/* Build for geometry g with weights w (ONNX [oc][ic][3][3]) and bias (read when g->has_bias);
 * both borrowed for the call. nthr: the OpenMP threads every run uses. *out is new, freed with
 * onnx__wino_free. MD_E_UNSUPPORTED when the geometry or the CPU does not fit. */
int onnx__wino_new(const onnx_kconv_geom *g, const float *w, const float *bias, int nthr,
                   onnx__wino **out, md_err *e);
/* Bytes of scratch one run needs (64-byte aligned, private to the run). */
size_t onnx__wino_scratch(const onnx__wino *z);
/* x [n][ic][in0][in1] -> y [n][oc][out0][out1]. */
void onnx__wino_run(const onnx__wino *z, const float *x, float *y, void *scratch);
void onnx__wino_free(onnx__wino *z);

/* ---- Nearest upsampling followed by a convolution (upconv.c) --------------------------------- */

/* Y = Conv(Upsample_nearest(X, scale), W, B) for a 2-D, group-1 convolution, computed on the
 * low-resolution X: one matrix product (oc*kh*kw x ic) over the low-res pixels, then each output
 * sums the kh*kw tap values its taps land on. The upsampling is ONNX Resize nearest with
 * asymmetric coordinates and floor rounding (Keras UpSampling2D): high-res row r reads row
 * floor(r / scale). Any stride, dilation and padding. */
typedef struct onnx_kupconv_geom {
    int64_t n, ic, oc;
    int64_t in[2];        /* low-res input H, W */
    int64_t scale[2];     /* integer upsampling factors, >= 1 */
    int64_t out[2];       /* convolution output H, W (from the high-res size in * scale) */
    int64_t k[2], stride[2], dil[2], pad_begin[2], pad_end[2];
    int has_bias;
    onnx_kact act;        /* fused activation of the output */
} onnx_kupconv_geom;

/* Consistency of a geometry (positive sizes, out[] matching the convolution formula). */
int onnx__upconv_check(const onnx_kupconv_geom *g, md_err *e);
/* Multiply-adds of one run (the matrix product; the tap sums are a few adds per output). */
double onnx__upconv_macs(const onnx_kupconv_geom *g);
/* Bytes of scratch one run needs (64-byte aligned, private to the run). */
size_t onnx__upconv_scratch(const onnx_kupconv_geom *g);
/* ONNX weights W[oc][ic][kh][kw] -> the product's matrix wp[oc*kh*kw][ic] (oc*ic*kh*kw floats,
 * caller's memory). Depends on oc, ic and k only. */
void onnx__upconv_pack(const onnx_kupconv_geom *g, const float *w, float *wp);
/* x [n][ic][in0][in1] -> y [n][oc][out0][out1]; wp from onnx__upconv_pack, bias read when
 * has_bias. Runs the product on the calling thread's OpenMP thread count. */
int onnx__upconv_run(const onnx_kupconv_geom *g, const float *x, const float *wp,
                     const float *bias, float *y, void *scratch, md_err *e);

/* ---- Matrix products ------------------------------------------------------------------------- */

/* C[m][n] = alpha * op(A)[m][k] * op(B)[k][n] + beta * C, row-major, lda/ldb/ldc in elements,
 * op(X) = X or X^T. Runs on oneDNN's sgemm with the calling thread's thread count. */
int onnx__sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                int64_t ldc, md_err *e);

/* ---- Pooling --------------------------------------------------------------------------------- */

typedef enum onnx_kpool_kind {
    ONNX_KPOOL_MAX = 0,
    ONNX_KPOOL_AVG_EXCLUDE_PAD,   /* AveragePool, count_include_pad = 0 */
    ONNX_KPOOL_AVG_INCLUDE_PAD,   /* AveragePool, count_include_pad = 1 */
} onnx_kpool_kind;

/* Geometry of one pooling, attributes resolved: out[] already accounts for ceil_mode; windows that
 * run past in + pad_end (ceil_mode) only see real and explicit-pad positions. */
typedef struct onnx_kpool_geom {
    onnx_kpool_kind kind;
    int nsp;
    int64_t n, c;
    int64_t in[ONNX_KMAX_SPATIAL];
    int64_t out[ONNX_KMAX_SPATIAL];
    int64_t k[ONNX_KMAX_SPATIAL];
    int64_t stride[ONNX_KMAX_SPATIAL];
    int64_t dil[ONNX_KMAX_SPATIAL];
    int64_t pad_begin[ONNX_KMAX_SPATIAL];
    int64_t pad_end[ONNX_KMAX_SPATIAL];
} onnx_kpool_geom;

/* A kernel geometry as exactly 3 spatial dims, the leading ones padded with size 1 (stride and
 * dilation 1, no padding), so the direct loops (conv_direct.c, pool.c) need one loop nest for
 * every rank. Filled by onnx__k3_of_conv / onnx__k3_of_pool (spatial.c). */
typedef struct onnx_k3 {
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
} onnx_k3;
void onnx__k3_of_conv(const onnx_kconv_geom *g, onnx_k3 *t);
void onnx__k3_of_pool(const onnx_kpool_geom *g, onnx_k3 *t);

/* Consistency check of a pooling geometry (positive sizes, windows inside padded input...). */
int onnx__pool_check(const onnx_kpool_geom *g, md_err *e);

/* y is [n][c][out...]. For MAX, idx (may be NULL) receives the ONNX MaxPool Indices: the flat
 * index of the max in the input, row-major over [n][c][in...] (storage_order 0) or with the
 * spatial dims in column-major order when col_major is set (storage_order 1). */
void onnx__pool_run(const onnx_kpool_geom *g, const float *x, float *y, int64_t *idx,
                    int col_major);

/* GlobalAveragePool / GlobalMaxPool over `spatial` values per (n, c) plane. */
void onnx__global_pool(int is_max, int64_t planes, int64_t spatial, const float *x, float *y);

/* ---- Chains of convolutions and poolings ----------------------------------------------------- */

/* One stage of a chain: a convolution, or a pooling (MaxPool, AveragePool, global poolings as
 * a pooling over the whole plane) that oneDNN runs on the blocked layout the convolutions left,
 * so Conv-Relu-MaxPool-Conv... never goes back to NCHW in between. */
typedef enum onnx_kstage_kind { ONNX_KSTAGE_CONV = 0, ONNX_KSTAGE_POOL } onnx_kstage_kind;

typedef struct onnx_kstage {
    onnx_kstage_kind kind;
    onnx_kconv_geom conv; /* ONNX_KSTAGE_CONV */
    onnx_kpool_geom pool; /* ONNX_KSTAGE_POOL (no Indices) */
} onnx_kstage;

/* A chain whose stage 0 is a convolution; w[i] / bias[i] are read for convolution stages only.
 * Same contract as onnx__conv_new (which is this with convolution stages only). */
int onnx__chain_new(int n_stages, const onnx_kstage *st, const float *const *w,
                    const float *const *bias, onnx__conv **out, md_err *e);

/* ---- Batch normalization ------------------------------------------------------------------- */

/* Inference form: y = (x - mean) / sqrt(var + eps) * scale + b, per channel of [n][c][spatial]. */
void onnx__batchnorm(int64_t n, int64_t c, int64_t spatial, const float *x, const float *scale,
                     const float *b, const float *mean, const float *var, float eps,
                     const onnx_kact *act, float *y);

/* Training form (BatchNormalization-14/15 with training_mode=1): normalizes with the batch's mean
 * and biased variance and writes the running statistics
 *   run_mean = mean * momentum + batch_mean * (1 - momentum)   (same for var; either may be NULL),
 * as ONNX's reference implementation does. */
void onnx__batchnorm_train(int64_t n, int64_t c, int64_t spatial, const float *x,
                           const float *scale, const float *b, const float *mean,
                           const float *var, float eps, float momentum, float *y,
                           float *run_mean, float *run_var);

#endif
