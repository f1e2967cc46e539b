/* wino.c - our own 3x3 (and 5x5) stride-1 convolution: Winograd F(4,3) on AVX2 + FMA, NCHW.
 *
 * Why: oneDNN 2.6 has Winograd only for AVX-512; on AVX2-only CPUs it runs 3x3 convolutions as
 * direct jit kernels, which made the ESRGAN networks 1.4-1.8x onnxruntime's CPU time there.
 * F(4,3) computes each 4x4 output tile from a 6x6 input tile with 36 multiply-adds per (input,
 * output) channel pair instead of 144: Y = A^T [ (G g G^T) . (B^T d B) ] A (Lavin & Gray 2015).
 *
 * How a run goes, per block of TB output tiles (one image, tiles in raster order):
 *   1. input transform: for each input channel and each tile row of the block, a vertical pass
 *      (B^T over 6 input rows, 8 x positions at a time, zeros where the padding is) into a small
 *      row buffer, then a horizontal pass over 8 tiles at a time (their stride-4 columns gathered
 *      with shuffles) written to V[36][ic][col];
 *   2. 36 matrix products M[k][ocp][TB] = U[k][ocp][ic] . V[k][ic][TB] on a 4 x 24 AVX2 register
 *      kernel (U packed at build time as [k][oc/4][ic][4]);
 *   3. output transform (A^T m A) over 8 tiles at a time, bias and activation added, written to
 *      NCHW rows (edge tiles through a small buffer).
 * Blocks are independent: with more than one thread they are shared out by OpenMP, each thread on
 * its own slice of the scratch.
 *
 * The code is compiled for AVX2 + FMA through target attributes, never -march, and only runs when
 * cpuid says the CPU has both (onnx__wino_cpu_ok), so the binary still runs on any x86-64.
 *
 * Invariants:
 *  1. An onnx__wino is read-only after onnx__wino_new; runs share it and write only their own
 *     scratch and output.
 *  2. V and M rows are ld = TB + 8 floats long: an 8-tile group that starts at the last tiles of a
 *     block writes (input transform) or reads (output transform) up to 7 columns past the block,
 *     into that slack. Columns past the block's tiles hold values no output ever reads: each
 *     column of M depends only on the same column of V.
 *  3. Within a block, tile rows are transformed in increasing column order, so a group's lanes
 *     past the end of its tile row (garbage) are overwritten by the next row's tiles.
 *  4. Output channels are padded to a multiple of 4 with zero weights (ocp); only the first oc
 *     rows of M are transformed back.
 *  5. A 5x5 kernel is four 3x3 sub-kernels of its zero-padded 6x6 extension, sub-kernel (a, b)
 *     reading the input shifted by (3a, 3b): it is a 3x3 convolution over 4 * ic shifted input
 *     channels (V row q * ic + c), whose products sum the four in the transform domain (9
 *     multiplies per output and channel pair instead of 25).
 */
#include <stdlib.h>
#include <string.h>

#include "onnx/kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <omp.h>
#define WINO_X86 1
#define TGT __attribute__((target("avx2,fma")))
#else
#define WINO_X86 0
#endif

#define MR 4    /* output channels per register tile */
#define NR 24   /* tiles per register tile (3 vectors of 8) */
#define NK 36   /* 6 x 6 transform-domain positions */
#define SLACK 8 /* invariant 2 */
#define ALIGN 64
#define BLOCK_BYTES (1024.0 * 1024.0) /* V + M of one block: sized to stay in a core's L2 */

struct onnx__wino {
    onnx_kconv_geom g;
    int64_t ocp; /* oc rounded up to MR (invariant 4) */
    int64_t sub; /* 3x3 sub-kernels per side: 1 for 3x3, 2 for 5x5 (see invariant 5) */
    int64_t icv; /* rows of V, the products' depth: sub * sub * ic */
    int64_t tb;  /* most tiles in a block */
    int64_t tiles_h, tiles_w;
    int64_t rows_blk;  /* tile rows per block, or 0 when a tile row is cut into nseg blocks */
    int64_t nseg, seg; /* blocks per tile row and their tiles (rows_blk == 0) */
    int64_t ws;        /* floats per row of the vertical-pass buffer */
    int nthr;
    float *u;    /* [NK][ocp / MR][ic][MR] */
    float *bias; /* [ocp], zeros without a bias */
};

static size_t round_up(size_t n)
{
    return (n + ALIGN - 1) / ALIGN * ALIGN;
}

int onnx__wino_cpu_ok(void)
{
#if WINO_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int onnx__wino_geom_ok(const onnx_kconv_geom *g)
{
    return !g->transpose && g->nsp == 2 && g->group == 1 && (g->k[0] == 3 || g->k[0] == 5) &&
           g->k[1] == g->k[0] && g->stride[0] == 1 && g->stride[1] == 1 && g->dil[0] == 1 &&
           g->dil[1] == 1 && g->pad_begin[0] >= 0 && g->pad_begin[1] >= 0 && g->pad_end[0] >= 0 &&
           g->pad_end[1] >= 0;
}

/* ---- weights: U = G g G^T, in double, packed for the register kernel ------------------------- */

static const double G[6][3] = {
    {1.0 / 4, 0, 0},
    {-1.0 / 6, -1.0 / 6, -1.0 / 6},
    {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6},
    {1.0 / 24, -1.0 / 12, 1.0 / 6},
    {0, 0, 1},
};

/* The 36 transformed values of one 3x3 kernel k (row-major) into u[36]. */
static void weight_transform(const float *k, double *u)
{
    double t[6][3];
    for (int i = 0; i < 6; i++)
        for (int c = 0; c < 3; c++)
            t[i][c] = G[i][0] * k[c] + G[i][1] * k[3 + c] + G[i][2] * k[6 + c];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++)
            u[i * 6 + j] = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
}

/* Sub-kernel (a, b) of kernel w (k x k): rows 3a.., columns 3b.., zero past the kernel. */
static void sub_kernel(const float *w, int64_t k, int64_t a, int64_t b, float *k3)
{
    for (int64_t r = 0; r < 3; r++)
        for (int64_t c = 0; c < 3; c++) {
            int64_t y = 3 * a + r, x = 3 * b + c;
            k3[r * 3 + c] = y < k && x < k ? w[y * k + x] : 0.0f;
        }
}

static void pack_weights(onnx__wino *z, const float *w)
{
    int64_t ic = z->g.ic, k = z->g.k[0], nob = z->ocp / MR;
    double u[NK];
    float k3[9];
    memset(z->u, 0, sizeof(float) * NK * (size_t)(z->ocp * z->icv));
    for (int64_t o = 0; o < z->g.oc; o++)
        for (int64_t q = 0; q < z->sub * z->sub; q++)
            for (int64_t c = 0; c < ic; c++) {
                sub_kernel(w + (o * ic + c) * k * k, k, q / z->sub, q % z->sub, k3);
                weight_transform(k3, u);
                for (int j = 0; j < NK; j++)
                    z->u[((j * nob + o / MR) * z->icv + q * ic + c) * MR + o % MR] = (float)u[j];
            }
}

/* Block shapes: V and M of a block near BLOCK_BYTES; whole tile rows when one fits (each input
 * row is then read once per tile row), else equal cuts of a tile row, multiples of 8 tiles. */
static void block_shape(onnx__wino *z)
{
    double per_tile = (double)NK * sizeof(float) * (double)(z->icv + z->ocp);
    int64_t tbmax = (int64_t)(BLOCK_BYTES / per_tile) / 8 * 8;
    tbmax = tbmax < 8 ? 8 : tbmax > 240 ? 240 : tbmax;
    if (z->tiles_w <= tbmax) {
        z->rows_blk = tbmax / z->tiles_w < z->tiles_h ? tbmax / z->tiles_w : z->tiles_h;
        z->nseg = 1;
        z->seg = z->tiles_w;
        z->tb = z->rows_blk * z->tiles_w;
        return;
    }
    z->rows_blk = 0;
    z->nseg = (z->tiles_w + tbmax - 1) / tbmax;
    z->seg = ((z->tiles_w + z->nseg - 1) / z->nseg + 7) / 8 * 8;
    z->tb = z->seg;
}

/* Blocks of one image. */
static int64_t blocks(const onnx__wino *z)
{
    return z->rows_blk ? (z->tiles_h + z->rows_blk - 1) / z->rows_blk : z->tiles_h * z->nseg;
}

/* Floats per row of V and M (invariant 2). */
static int64_t ldim(const onnx__wino *z)
{
    return (z->tb + 7) / 8 * 8 + SLACK;
}

int onnx__wino_new(const onnx_kconv_geom *g, const float *w, const float *bias, int nthr,
                   onnx__wino **out, md_err *e)
{
    *out = NULL;
    if (!onnx__wino_geom_ok(g) || !onnx__wino_cpu_ok())
        return md_fail(e, MD_E_UNSUPPORTED, "W",
                       "Winograd F(4,3) needs a 2-D 3x3 or 5x5 stride-1 convolution and a CPU "
                       "with AVX2 and FMA");
    int rc = onnx__conv_check(g, e);
    if (rc != MD_OK)
        return rc;
    onnx__wino *z = calloc(1, sizeof *z);
    if (z == NULL)
        return md_fail(e, MD_E_NOMEM, NULL, "out of memory building a convolution");
    z->g = *g;
    z->ocp = (g->oc + MR - 1) / MR * MR;
    z->sub = (g->k[0] + 2) / 3;
    z->icv = z->sub * z->sub * g->ic;
    z->tiles_h = (g->out[0] + 3) / 4;
    z->tiles_w = (g->out[1] + 3) / 4;
    z->ws = 32 * ((z->tiles_w + 7) / 8) + SLACK;
    block_shape(z);
    z->nthr = nthr < 1 ? 1 : nthr;
    z->u = aligned_alloc(ALIGN, round_up(sizeof(float) * NK * (size_t)(z->ocp * z->icv)));
    z->bias = calloc((size_t)z->ocp, sizeof(float));
    if (z->u == NULL || z->bias == NULL) {
        onnx__wino_free(z);
        return md_fail(e, MD_E_NOMEM, NULL, "out of memory building a convolution");
    }
    pack_weights(z, w);
    if (g->has_bias && bias != NULL)
        memcpy(z->bias, bias, sizeof(float) * (size_t)g->oc);
    *out = z;
    return MD_OK;
}

void onnx__wino_free(onnx__wino *z)
{
    if (z == NULL)
        return;
    free(z->u);
    free(z->bias);
    free(z);
}

/* Scratch of one thread: V, M, the vertical-pass rows. */
static size_t thread_bytes(const onnx__wino *z)
{
    size_t ld = (size_t)ldim(z);
    return round_up(sizeof(float) * NK * (size_t)z->icv * ld) +
           round_up(sizeof(float) * NK * (size_t)z->ocp * ld) +
           round_up(sizeof(float) * 6 * (size_t)z->ws);
}

size_t onnx__wino_scratch(const onnx__wino *z)
{
    return thread_bytes(z) * (size_t)z->nthr;
}

#if WINO_X86

/* ---- 1. input transform ---------------------------------------------------------------------- */

/* B^T applied to six vectors d[0..5] (the same formula serves rows and columns). */
TGT static inline void bt6(const __m256 *d, __m256 *t)
{
    __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f), two = _mm256_set1_ps(2.0f);
    __m256 d12 = _mm256_add_ps(d[1], d[2]), d34 = _mm256_add_ps(d[3], d[4]);
    __m256 d1m2 = _mm256_sub_ps(d[1], d[2]), d4m3 = _mm256_sub_ps(d[4], d[3]);
    __m256 d3m1 = _mm256_sub_ps(d[3], d[1]), d4m2 = _mm256_sub_ps(d[4], d[2]);
    t[0] = _mm256_fmadd_ps(four, d[0], _mm256_fnmadd_ps(five, d[2], d[4]));
    t[1] = _mm256_fnmadd_ps(four, d12, d34);
    t[2] = _mm256_fmadd_ps(four, d1m2, d4m3);
    t[3] = _mm256_fmadd_ps(two, d3m1, d4m2);
    t[4] = _mm256_fnmadd_ps(two, d3m1, d4m2);
    t[5] = _mm256_fmadd_ps(four, d[1], _mm256_fnmadd_ps(five, d[3], d[5]));
}

/* Vertical pass for one channel plane xc (H x W): t[i][u] = sum_r B^T[i][r] * in(y0 + r, x0 + u)
 * for u in [0, ws), zero outside the image (that is the padding). */
TGT static void vpass(const float *xc, const float *next, int64_t H, int64_t W, int64_t y0,
                      int64_t x0, int64_t ws, float *t)
{
    const float *rows[6];
    int64_t lo = x0 < 0 ? -x0 : 0, hi = W - x0 < ws ? W - x0 : ws, u;
    if (hi < lo)
        hi = lo;
    for (int r = 0; r < 6; r++)
        rows[r] = y0 + r >= 0 && y0 + r < H ? xc + (y0 + r) * W : NULL;
    for (int i = 0; i < 6; i++) {
        memset(t + i * ws, 0, sizeof(float) * (size_t)lo);
        memset(t + i * ws + hi, 0, sizeof(float) * (size_t)(ws - hi));
    }
    if (next != NULL) /* the next channel's rows: 6 strided streams outrun the prefetchers */
        for (int r = 0; r < 6; r++)
            if (rows[r] != NULL)
                for (int64_t p = lo; p < hi; p += 16)
                    _mm_prefetch((const char *)(rows[r] + (next - xc) + x0 + p), _MM_HINT_T0);
    __m256 d[6], o[6];
    for (u = lo; u + 8 <= hi; u += 8) {
#pragma GCC unroll 6
        for (int r = 0; r < 6; r++)
            d[r] = rows[r] ? _mm256_loadu_ps(rows[r] + (x0 + u)) : _mm256_setzero_ps();
        bt6(d, o);
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++)
            _mm256_storeu_ps(t + i * ws + u, o[i]);
    }
    for (; u < hi; u++) {
        float s[6];
        for (int r = 0; r < 6; r++)
            s[r] = rows[r] ? rows[r][x0 + u] : 0.0f;
        t[0 * ws + u] = 4 * s[0] - 5 * s[2] + s[4];
        t[1 * ws + u] = (s[3] + s[4]) - 4 * (s[1] + s[2]);
        t[2 * ws + u] = (s[4] - s[3]) + 4 * (s[1] - s[2]);
        t[3 * ws + u] = (s[4] - s[2]) + 2 * (s[3] - s[1]);
        t[4 * ws + u] = (s[4] - s[2]) - 2 * (s[3] - s[1]);
        t[5 * ws + u] = 4 * s[1] - 5 * s[3] + s[5];
    }
}

/* Columns c = 0..5 of 8 consecutive tiles from 34 row values p[0..33]: y[c][k] = p[4k + c]. */
TGT static inline void gather_cols(const float *p, __m256 *y)
{
    __m256 z0 = _mm256_loadu_ps(p), z1 = _mm256_loadu_ps(p + 8), z2 = _mm256_loadu_ps(p + 16),
           z3 = _mm256_loadu_ps(p + 24);
    __m256 c0 = _mm256_permute2f128_ps(z0, z2, 0x20), c1 = _mm256_permute2f128_ps(z0, z2, 0x31);
    __m256 c2 = _mm256_permute2f128_ps(z1, z3, 0x20), c3 = _mm256_permute2f128_ps(z1, z3, 0x31);
    __m256 t0 = _mm256_unpacklo_ps(c0, c1), t1 = _mm256_unpackhi_ps(c0, c1);
    __m256 t2 = _mm256_unpacklo_ps(c2, c3), t3 = _mm256_unpackhi_ps(c2, c3);
    y[0] = _mm256_shuffle_ps(t0, t2, 0x44);
    y[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
    y[2] = _mm256_shuffle_ps(t1, t3, 0x44);
    y[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
    /* columns 4 and 5 are columns 0 and 1 of the next tile */
    __m256i next = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7);
    y[4] = _mm256_blend_ps(_mm256_permutevar8x32_ps(y[0], next), _mm256_broadcast_ss(p + 32), 0x80);
    y[5] = _mm256_blend_ps(_mm256_permutevar8x32_ps(y[1], next), _mm256_broadcast_ss(p + 33), 0x80);
}

/* Horizontal pass of one tile row: ntx tiles from row buffer t into V columns col0.. */
TGT static void hpass(const float *t, int64_t ws, int64_t ntx, float *v, int64_t kstride,
                      int64_t col0)
{
    __m256 y[6], o[6];
    for (int64_t q = 0; q < ntx; q += 8)
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            gather_cols(t + i * ws + 4 * q, y);
            bt6(y, o);
#pragma GCC unroll 6
            for (int j = 0; j < 6; j++)
                _mm256_storeu_ps(v + (i * 6 + j) * kstride + col0 + q, o[j]);
        }
}

/* ---- 2. the 36 products ---------------------------------------------------------------------- */

/* m[4][ldm] = u[ic][4]^T . v[ic][ldv] over 24 columns. The twelve accumulators are named, not
 * an array, so that the compiler keeps them in registers (with an array GCC -O2 left them on the
 * stack, at a third of the speed). */
#define ROW(r, a0, a1, a2)                                                                         \
    do {                                                                                           \
        __m256 a = _mm256_broadcast_ss(u + (r));                                                   \
        a0 = _mm256_fmadd_ps(a, b0, a0);                                                           \
        a1 = _mm256_fmadd_ps(a, b1, a1);                                                           \
        a2 = _mm256_fmadd_ps(a, b2, a2);                                                           \
    } while (0)

TGT static void kern_4x24(int64_t ic, const float *u, const float *v, int64_t ldv, float *m,
                          int64_t ldm)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    __m256 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    for (int64_t k = 0; k < ic; k++, u += MR, v += ldv) {
        __m256 b0 = _mm256_loadu_ps(v), b1 = _mm256_loadu_ps(v + 8), b2 = _mm256_loadu_ps(v + 16);
        ROW(0, c00, c01, c02);
        ROW(1, c10, c11, c12);
        ROW(2, c20, c21, c22);
        ROW(3, c30, c31, c32);
    }
    _mm256_storeu_ps(m, c00);
    _mm256_storeu_ps(m + 8, c01);
    _mm256_storeu_ps(m + 16, c02);
    _mm256_storeu_ps(m + ldm, c10);
    _mm256_storeu_ps(m + ldm + 8, c11);
    _mm256_storeu_ps(m + ldm + 16, c12);
    _mm256_storeu_ps(m + 2 * ldm, c20);
    _mm256_storeu_ps(m + 2 * ldm + 8, c21);
    _mm256_storeu_ps(m + 2 * ldm + 16, c22);
    _mm256_storeu_ps(m + 3 * ldm, c30);
    _mm256_storeu_ps(m + 3 * ldm + 8, c31);
    _mm256_storeu_ps(m + 3 * ldm + 16, c32);
}
#undef ROW

/* The same over 16 columns (a block's tail): eight accumulators still cover the FMA latency. */
TGT static void kern_4x16(int64_t ic, const float *u, const float *v, int64_t ldv, float *m,
                          int64_t ldm)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00;
    __m256 c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    for (int64_t k = 0; k < ic; k++, u += MR, v += ldv) {
        __m256 b0 = _mm256_loadu_ps(v), b1 = _mm256_loadu_ps(v + 8), a;
        a = _mm256_broadcast_ss(u);
        c00 = _mm256_fmadd_ps(a, b0, c00);
        c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(u + 1);
        c10 = _mm256_fmadd_ps(a, b0, c10);
        c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(u + 2);
        c20 = _mm256_fmadd_ps(a, b0, c20);
        c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(u + 3);
        c30 = _mm256_fmadd_ps(a, b0, c30);
        c31 = _mm256_fmadd_ps(a, b1, c31);
    }
    _mm256_storeu_ps(m, c00);
    _mm256_storeu_ps(m + 8, c01);
    _mm256_storeu_ps(m + ldm, c10);
    _mm256_storeu_ps(m + ldm + 8, c11);
    _mm256_storeu_ps(m + 2 * ldm, c20);
    _mm256_storeu_ps(m + 2 * ldm + 8, c21);
    _mm256_storeu_ps(m + 3 * ldm, c30);
    _mm256_storeu_ps(m + 3 * ldm + 8, c31);
}

/* The same over 8 columns: even and odd input channels go to two sets of accumulators, so that
 * eight independent FMA chains hide the FMA latency (four would run at half speed). */
TGT static void kern_4x8(int64_t ic, const float *u, const float *v, int64_t ldv, float *m,
                         int64_t ldm)
{
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, d0 = c0, d1 = c0, d2 = c0, d3 = c0;
    int64_t k = 0;
    for (; k + 1 < ic; k += 2, u += 2 * MR, v += 2 * ldv) {
        __m256 b = _mm256_loadu_ps(v), e = _mm256_loadu_ps(v + ldv);
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(u), b, c0);
        c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(u + 1), b, c1);
        c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(u + 2), b, c2);
        c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(u + 3), b, c3);
        d0 = _mm256_fmadd_ps(_mm256_broadcast_ss(u + 4), e, d0);
        d1 = _mm256_fmadd_ps(_mm256_broadcast_ss(u + 5), e, d1);
        d2 = _mm256_fmadd_ps(_mm256_broadcast_ss(u + 6), e, d2);
        d3 = _mm256_fmadd_ps(_mm256_broadcast_ss(u + 7), e, d3);
    }
    if (k < ic) {
        __m256 b = _mm256_loadu_ps(v);
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(u), b, c0);
        c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(u + 1), b, c1);
        c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(u + 2), b, c2);
        c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(u + 3), b, c3);
    }
    _mm256_storeu_ps(m, _mm256_add_ps(c0, d0));
    _mm256_storeu_ps(m + ldm, _mm256_add_ps(c1, d1));
    _mm256_storeu_ps(m + 2 * ldm, _mm256_add_ps(c2, d2));
    _mm256_storeu_ps(m + 3 * ldm, _mm256_add_ps(c3, d3));
}

TGT static void products(const onnx__wino *z, const float *v, float *m, int64_t ld, int64_t ncols)
{
    int64_t ic = z->icv, nob = z->ocp / MR;
    for (int k = 0; k < NK; k++) {
        const float *vk = v + k * ic * ld;
        float *mk = m + k * z->ocp * ld;
        for (int64_t ob = 0; ob < nob; ob++) {
            const float *uk = z->u + (k * nob + ob) * ic * MR;
            int64_t j = 0;
            for (; j + NR <= ncols; j += NR)
                kern_4x24(ic, uk, vk + j, ld, mk + ob * MR * ld + j, ld);
            if (j + 16 <= ncols) {
                kern_4x16(ic, uk, vk + j, ld, mk + ob * MR * ld + j, ld);
                j += 16;
            }
            if (j < ncols)
                kern_4x8(ic, uk, vk + j, ld, mk + ob * MR * ld + j, ld);
        }
    }
}

/* ---- 3. output transform --------------------------------------------------------------------- */

/* A^T applied to six vectors m[0..5] (rows or columns). */
TGT static inline void at6(const __m256 *m, __m256 *o)
{
    __m256 a = _mm256_add_ps(m[1], m[2]), b = _mm256_sub_ps(m[1], m[2]);
    __m256 c = _mm256_add_ps(m[3], m[4]), d = _mm256_sub_ps(m[3], m[4]);
    o[0] = _mm256_add_ps(_mm256_add_ps(m[0], a), c);
    o[1] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), d, b);
    o[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), c, a);
    o[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), d, b), m[5]);
}

TGT static inline __m256 activate(const onnx_kact *a, __m256 v)
{
    switch (a->kind) {
    case ONNX_KACT_RELU:
        return _mm256_max_ps(v, _mm256_setzero_ps()); /* NaN -> 0, as onnx__kact_apply */
    case ONNX_KACT_LEAKY: {
        __m256 neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
        return _mm256_blendv_ps(v, _mm256_mul_ps(_mm256_set1_ps(a->alpha), v), neg);
    }
    case ONNX_KACT_CLIP: /* operand order keeps NaN, as onnx__kact_apply */
        v = _mm256_max_ps(_mm256_set1_ps(a->alpha), v);
        return _mm256_min_ps(_mm256_set1_ps(a->beta), v);
    default:
        return v; /* sigmoid and tanh: applied after the run */
    }
}

/* Interleave y[s][k] (column s of tile k) into 32 consecutive row values. */
TGT static inline void scatter_cols(const __m256 *y, float *p)
{
    __m256 a0 = _mm256_unpacklo_ps(y[0], y[1]), a1 = _mm256_unpackhi_ps(y[0], y[1]);
    __m256 b0 = _mm256_unpacklo_ps(y[2], y[3]), b1 = _mm256_unpackhi_ps(y[2], y[3]);
    __m256 c0 = _mm256_shuffle_ps(a0, b0, 0x44), c1 = _mm256_shuffle_ps(a0, b0, 0xEE);
    __m256 c2 = _mm256_shuffle_ps(a1, b1, 0x44), c3 = _mm256_shuffle_ps(a1, b1, 0xEE);
    _mm256_storeu_ps(p, _mm256_permute2f128_ps(c0, c1, 0x20));
    _mm256_storeu_ps(p + 8, _mm256_permute2f128_ps(c2, c3, 0x20));
    _mm256_storeu_ps(p + 16, _mm256_permute2f128_ps(c0, c1, 0x31));
    _mm256_storeu_ps(p + 24, _mm256_permute2f128_ps(c2, c3, 0x31));
}

/* Up to 8 tiles (tile columns tx0.., tile row ty) of output channel plane yo from M column col. */
TGT static void out_group(const onnx__wino *z, const float *mo, int64_t kstride, int64_t col,
                          float b, int64_t ty, int64_t tx0, int64_t ntiles, float *yo)
{
    int64_t H = z->g.out[0], W = z->g.out[1];
    __m256 m[6], s[6][4], r6[6], y[4];
#pragma GCC unroll 6
    for (int j = 0; j < 6; j++) {
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++)
            m[i] = _mm256_loadu_ps(mo + (i * 6 + j) * kstride + col);
        at6(m, y);
#pragma GCC unroll 6
        for (int r = 0; r < 4; r++)
            s[j][r] = y[r];
    }
    int64_t x0 = 4 * tx0, cols = W - x0 < 4 * ntiles ? W - x0 : 4 * ntiles;
    __m256 bv = _mm256_set1_ps(b);
    for (int r = 0; r < 4 && 4 * ty + r < H; r++) {
        float *row = yo + (4 * ty + r) * W + x0, tmp[32];
#pragma GCC unroll 6
        for (int j = 0; j < 6; j++)
            r6[j] = s[j][r];
        at6(r6, y);
#pragma GCC unroll 6
        for (int c = 0; c < 4; c++)
            y[c] = activate(&z->g.act, _mm256_add_ps(y[c], bv));
        if (cols == 32) {
            scatter_cols(y, row);
            continue;
        }
        scatter_cols(y, tmp);
        memcpy(row, tmp, sizeof(float) * (size_t)cols);
    }
}

/* ---- one block ------------------------------------------------------------------------------- */

/* Tiles [t0, t1) of image xi -> yi; v, m, t: this thread's scratch. */
TGT static void run_block(const onnx__wino *z, const float *xi, float *yi, int64_t t0, int64_t t1,
                          float *v, float *m, float *t)
{
    const onnx_kconv_geom *g = &z->g;
    int64_t H = g->in[0], W = g->in[1], tw = z->tiles_w, ld = ldim(z);
    int64_t oplane = g->out[0] * g->out[1];
    for (int64_t q = 0; q < z->sub * z->sub; q++) /* sub-kernel q reads the input shifted */
        for (int64_t c = 0; c < g->ic; c++)
            for (int64_t ty = t0 / tw; ty * tw < t1; ty++) {
                int64_t a = ty * tw < t0 ? t0 - ty * tw : 0;
                int64_t b = (ty + 1) * tw > t1 ? t1 - ty * tw : tw;
                int64_t ws = 32 * ((b - a + 7) / 8) + SLACK;
                vpass(xi + c * H * W, c + 1 < g->ic ? xi + (c + 1) * H * W : NULL, H, W,
                      4 * ty - g->pad_begin[0] + 3 * (q / z->sub),
                      4 * a - g->pad_begin[1] + 3 * (q % z->sub), ws, t);
                hpass(t, ws, b - a, v + (q * g->ic + c) * ld, z->icv * ld, ty * tw + a - t0);
            }
    products(z, v, m, ld, (t1 - t0 + 7) / 8 * 8);
    for (int64_t o = 0; o < g->oc; o++)
        for (int64_t ty = t0 / tw; ty * tw < t1; ty++) {
            int64_t a = ty * tw < t0 ? t0 - ty * tw : 0;
            int64_t b = (ty + 1) * tw > t1 ? t1 - ty * tw : tw;
            for (int64_t q = a; q < b; q += 8)
                out_group(z, m + o * ld, z->ocp * ld, ty * tw + q - t0, z->bias[o], ty, q,
                          b - q < 8 ? b - q : 8, yi + o * oplane);
        }
}

#endif /* WINO_X86 */

/* Work item it (image it / blocks, block it % blocks) on the scratch of thread th. */
static void run_item(const onnx__wino *z, const float *x, float *y, char *scratch, int64_t it,
                     int th)
{
#if WINO_X86
    const onnx_kconv_geom *g = &z->g;
    int64_t ntiles = z->tiles_h * z->tiles_w, nb = blocks(z), b = it % nb, img = it / nb, t0, t1;
    if (z->rows_blk) {
        t0 = b * z->rows_blk * z->tiles_w;
        t1 = t0 + z->tb < ntiles ? t0 + z->tb : ntiles;
    } else {
        int64_t ty = b / z->nseg, end = (ty + 1) * z->tiles_w;
        t0 = ty * z->tiles_w + b % z->nseg * z->seg;
        t1 = t0 + z->seg < end ? t0 + z->seg : end;
    }
    size_t ld = (size_t)ldim(z);
    char *s = scratch + thread_bytes(z) * (size_t)th;
    float *v = (float *)s;
    float *m = (float *)(s + round_up(sizeof(float) * NK * (size_t)z->icv * ld));
    float *t = (float *)((char *)m + round_up(sizeof(float) * NK * (size_t)z->ocp * ld));
    run_block(z, x + img * g->ic * g->in[0] * g->in[1], y + img * g->oc * g->out[0] * g->out[1], t0,
              t1, v, m, t);
#else
    (void)z, (void)x, (void)y, (void)scratch, (void)it, (void)th;
#endif
}

void onnx__wino_run(const onnx__wino *z, const float *x, float *y, void *scratch)
{
    int64_t items = z->g.n * blocks(z);
#if WINO_X86
    if (z->nthr > 1 && items > 1) {
#pragma omp parallel for num_threads(z->nthr) schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++)
            run_item(z, x, y, scratch, it, omp_get_thread_num());
    } else {
        for (int64_t it = 0; it < items; it++)
            run_item(z, x, y, scratch, it, 0);
    }
#else
    for (int64_t it = 0; it < items; it++)
        run_item(z, x, y, scratch, it, 0);
#endif
    if (z->g.act.kind == ONNX_KACT_SIGMOID || z->g.act.kind == ONNX_KACT_TANH)
        onnx__kact_apply(&z->g.act, y, (size_t)(z->g.n * z->g.oc * z->g.out[0] * z->g.out[1]));
}
