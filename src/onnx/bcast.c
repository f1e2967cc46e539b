/* bcast.c - numpy-style multidirectional broadcasting for the elementwise operators.
 *
 * Shapes are right-aligned; a dim of 1 repeats. Iteration is by innermost rows so the typed
 * loops in ops/ stay simple and fast: after merging dims that are contiguous in every
 * operand, an Add of two same-shape tensors is a single row and a bias add is one row per
 * channel.
 */
#include "onnx/onnx_int.h"

#include <string.h>

int onnx__bcast_init(onnx_bcast *b, int n_in, const onnx_tensor *const *in)
{
    memset(b, 0, sizeof *b);
    b->n_in = n_in;
    int r = 0;
    for (int k = 0; k < n_in; k++)
        if (in[k]->rank > r)
            r = in[k]->rank;
    for (int d = 0; d < r; d++) {
        int64_t v = 1;
        for (int k = 0; k < n_in; k++) {
            int off = r - in[k]->rank;
            int64_t x = d < off ? 1 : in[k]->dims[d - off];
            if (x != 1 && v != 1 && x != v)
                return -1;
            if (x != 1)
                v = x;
            if (x == 0)
                v = 0;
        }
        b->out_dims[d] = v;
    }
    b->out_rank = r;
    /* Element strides per input, 0 where it broadcasts. */
    int64_t st[3][ONNX_MAX_RANK];
    for (int k = 0; k < n_in; k++) {
        int off = r - in[k]->rank;
        int64_t s = 1;
        for (int d = r - 1; d >= 0; d--) {
            int64_t x = d < off ? 1 : in[k]->dims[d - off];
            st[k][d] = (x == 1 && b->out_dims[d] != 1) ? 0 : s;
            s *= x;
        }
    }
    /* Merge dim d into the previous kept dim when every operand is contiguous across them. */
    int nr = 0;
    for (int d = 0; d < r; d++) {
        if (b->out_dims[d] == 1)
            continue; /* size-1 dims never move an offset */
        bool merge = nr > 0;
        for (int k = 0; merge && k < n_in; k++)
            merge = b->stride[k][nr - 1] == st[k][d] * b->out_dims[d];
        if (merge) {
            b->dims[nr - 1] *= b->out_dims[d];
            for (int k = 0; k < n_in; k++)
                b->stride[k][nr - 1] = st[k][d];
            continue;
        }
        b->dims[nr] = b->out_dims[d];
        for (int k = 0; k < n_in; k++)
            b->stride[k][nr] = st[k][d];
        nr++;
    }
    if (nr == 0) { /* scalar output */
        b->dims[0] = 1;
        for (int k = 0; k < n_in; k++)
            b->stride[k][0] = 0;
        nr = 1;
    }
    b->rank = nr;
    return 0;
}

void onnx__bcast_rows(const onnx_bcast *b, onnx_bcast_fn fn, void *ctx)
{
    int r = b->rank;
    int64_t n = b->dims[r - 1];
    int64_t step[3] = {0, 0, 0}, off[3] = {0, 0, 0};
    for (int k = 0; k < b->n_in; k++)
        step[k] = b->stride[k][r - 1];
    int64_t rows = 1;
    for (int d = 0; d < r - 1; d++)
        rows *= b->dims[d];
    if (n == 0 || rows == 0)
        return;
    int64_t idx[ONNX_MAX_RANK] = {0};
    for (int64_t row = 0; row < rows; row++) {
        fn(ctx, row * n, off, n, step);
        /* Advance the outer index like an odometer, updating offsets incrementally. */
        for (int d = r - 2; d >= 0; d--) {
            idx[d]++;
            for (int k = 0; k < b->n_in; k++)
                off[k] += b->stride[k][d];
            if (idx[d] < b->dims[d])
                break;
            for (int k = 0; k < b->n_in; k++)
                off[k] -= b->stride[k][d] * b->dims[d];
            idx[d] = 0;
        }
    }
}
