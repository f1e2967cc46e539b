/* rnn.c - the recurrent operators RNN, GRU and LSTM (forward, reverse, bidirectional; layout 0
 * and 1; sequence_lens; LSTM peepholes; GRU linear_before_reset; clip).
 *
 * One step at a time in double precision: gates = X_t W^T + H_{t-1} R^T + biases, then the
 * operator's equations. Batches whose sequence is shorter stop updating their state and get
 * zeros in Y past their length, as the spec says.
 */
#include <math.h>
#include <string.h>

#include "onnx/onnx_int.h"

typedef enum cell { C_RNN, C_GRU, C_LSTM } cell;
typedef enum act { A_SIGMOID, A_TANH, A_RELU } act;

typedef struct rnn_cfg {
    cell kind;
    int gates;       /* 1, 3, 4 */
    int dirs;        /* 1 or 2 */
    bool reverse;    /* direction == reverse (dirs == 1) */
    int64_t hidden;
    double clip;     /* <= 0: none */
    bool lbr;        /* GRU linear_before_reset */
    bool layout1;
    act f[2], g[2], h[2]; /* per direction */
} rnn_cfg;

static double apply(act a, double x)
{
    return a == A_SIGMOID ? 1 / (1 + exp(-x)) : a == A_TANH ? tanh(x) : (x > 0 ? x : 0);
}

static int parse_act(const char *s)
{
    return strcmp(s, "Sigmoid") == 0 ? A_SIGMOID : strcmp(s, "Tanh") == 0 ? A_TANH
         : strcmp(s, "Relu") == 0 ? A_RELU : -1;
}

static int prep_rnn(onnx_node *n, onnx_prep *p, md_err *err)
{
    rnn_cfg *c = onnx__prep_alloc(p, sizeof *c);
    if (!c)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    c->kind = strcmp(n->op_type, "LSTM") == 0 ? C_LSTM : strcmp(n->op_type, "GRU") == 0 ? C_GRU : C_RNN;
    c->gates = c->kind == C_LSTM ? 4 : c->kind == C_GRU ? 3 : 1;
    const char *dir = onnx__attr_str(n, "direction", "forward");
    c->dirs = strcmp(dir, "bidirectional") == 0 ? 2 : 1;
    c->reverse = strcmp(dir, "reverse") == 0;
    if (c->dirs == 1 && !c->reverse && strcmp(dir, "forward") != 0)
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "direction", "bad direction '%.20s'", dir);
    c->hidden = onnx__attr_int(n, "hidden_size", 0);
    c->clip = onnx__attr_float(n, "clip", 0.f);
    c->lbr = onnx__attr_int(n, "linear_before_reset", 0) != 0;
    c->layout1 = onnx__attr_int(n, "layout", 0) != 0;
    if (c->hidden <= 0 || c->hidden > (1 << 20))
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "hidden_size", "hidden_size must be > 0");
    if (onnx__attr_int(n, "input_forget", 0) || onnx__attr(n, "activation_alpha") ||
        onnx__attr(n, "activation_beta"))
        return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "activation_alpha",
                               "input_forget and activation parameters are not supported");
    int per = c->kind == C_RNN ? 1 : c->kind == C_GRU ? 2 : 3;
    act defs[3] = {c->kind == C_RNN ? A_TANH : A_SIGMOID, A_TANH, A_TANH};
    const onnx_attr *acts = onnx__attr(n, "activations");
    if (acts && (int)acts->n_strings != per * c->dirs)
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "activations", "wrong count");
    for (int d = 0; d < c->dirs; d++) {
        act a[3] = {defs[0], defs[1], defs[2]};
        for (int j = 0; acts && j < per; j++) {
            int v = parse_act(acts->strings[d * per + j]);
            if (v < 0)
                return onnx__prep_fail(n, err, MD_E_UNSUPPORTED, "activations",
                                       "activation '%.30s' is not supported", acts->strings[d * per + j]);
            a[j] = (act)v;
        }
        c->f[d] = a[0];
        c->g[d] = a[1];
        c->h[d] = a[2];
    }
    n->priv = c;
    return MD_OK;
}

typedef struct rnn_io {
    const onnx_tensor *X, *W, *R, *B, *lens, *h0, *c0, *P;
    onnx_tensor *Y, *Yh, *Yc;
    int64_t S, N, I; /* seq, batch, input */
} rnn_io;

static double xval(const rnn_cfg *c, const rnn_io *io, int64_t t, int64_t b, int64_t i)
{
    return onnx__get_f64(io->X, c->layout1 ? (b * io->S + t) * io->I + i : (t * io->N + b) * io->I + i);
}

/* Row j of (W_d x) for gate g: sum_i W[d, g*H + j, i] * x_i. */
static double wdot(const onnx_tensor *W, int64_t d, int64_t row, int64_t rows, int64_t cols,
                   const double *v)
{
    double s = 0;
    int64_t base = (d * rows + row) * cols;
    for (int64_t i = 0; i < cols; i++)
        s += onnx__get_f64(W, base + i) * v[i];
    return s;
}

static double bias(const rnn_io *io, const rnn_cfg *c, int64_t d, int64_t idx)
{
    return io->B ? onnx__get_f64(io->B, d * 2 * c->gates * c->hidden + idx) : 0;
}

static double clipv(const rnn_cfg *c, double v)
{
    return c->clip > 0 ? (v < -c->clip ? -c->clip : v > c->clip ? c->clip : v) : v;
}

/* One direction over the whole batch. work: x (I), h (H), cst (H), gates (G*H), tmp (H). */
static void run_dir(const rnn_cfg *c, rnn_io *io, int64_t d, double *work)
{
    int64_t H = c->hidden, G = c->gates, I = io->I, N = io->N, S = io->S;
    bool rev = c->dirs == 2 ? d == 1 : c->reverse;
    double *x = work, *h = x + I, *cs = h + H, *gt = cs + H, *rh = gt + G * H, *tmp = rh + G * H;
    for (int64_t b = 0; b < N; b++) {
        int64_t len = io->lens ? onnx__get_i64(io->lens, b) : S;
        for (int64_t j = 0; j < H; j++) {
            h[j] = io->h0 ? onnx__get_f64(io->h0, (d * N + b) * H + j) : 0;
            cs[j] = io->c0 ? onnx__get_f64(io->c0, (d * N + b) * H + j) : 0;
        }
        for (int64_t s = 0; s < len; s++) {
            int64_t t = rev ? len - 1 - s : s;
            for (int64_t i = 0; i < I; i++)
                x[i] = xval(c, io, t, b, i);
            for (int64_t r = 0; r < G * H; r++) {
                gt[r] = wdot(io->W, d, r, G * H, I, x) + bias(io, c, d, r);
                rh[r] = wdot(io->R, d, r, G * H, H, h) + bias(io, c, d, G * H + r);
            }
            if (c->kind == C_RNN) {
                for (int64_t j = 0; j < H; j++)
                    h[j] = apply(c->f[d], clipv(c, gt[j] + rh[j]));
            } else if (c->kind == C_GRU) {
                for (int64_t j = 0; j < H; j++) {
                    double z = apply(c->f[d], clipv(c, gt[j] + rh[j]));
                    double r = apply(c->f[d], clipv(c, gt[H + j] + rh[H + j]));
                    double hh;
                    if (c->lbr) {
                        hh = gt[2 * H + j] + r * rh[2 * H + j];
                    } else {
                        double acc = 0;
                        for (int64_t q = 0; q < H; q++)
                            acc += onnx__get_f64(io->R, (d * G * H + 2 * H + j) * H + q) * r * h[q];
                        hh = gt[2 * H + j] + acc + bias(io, c, d, G * H + 2 * H + j);
                    }
                    tmp[j] = (1 - z) * apply(c->g[d], clipv(c, hh)) + z * h[j];
                }
                memcpy(h, tmp, (size_t)H * sizeof *h);
            } else {
                for (int64_t j = 0; j < H; j++) {
                    double pi = io->P ? onnx__get_f64(io->P, d * 3 * H + j) : 0;
                    double po = io->P ? onnx__get_f64(io->P, d * 3 * H + H + j) : 0;
                    double pf = io->P ? onnx__get_f64(io->P, d * 3 * H + 2 * H + j) : 0;
                    double ig = apply(c->f[d], clipv(c, gt[j] + rh[j] + pi * cs[j]));
                    double fg = apply(c->f[d], clipv(c, gt[2 * H + j] + rh[2 * H + j] + pf * cs[j]));
                    double cg = apply(c->g[d], clipv(c, gt[3 * H + j] + rh[3 * H + j]));
                    double cn = fg * cs[j] + ig * cg;
                    double og = apply(c->f[d], clipv(c, gt[H + j] + rh[H + j] + po * cn));
                    cs[j] = cn;
                    tmp[j] = og * apply(c->h[d], cn);
                }
                memcpy(h, tmp, (size_t)H * sizeof *h);
            }
            for (int64_t j = 0; io->Y && j < H; j++) {
                int64_t e = c->layout1 ? ((b * S + t) * c->dirs + d) * H + j
                                       : ((t * c->dirs + d) * N + b) * H + j;
                onnx__set_f64(io->Y, e, h[j]);
            }
        }
        for (int64_t j = 0; j < H; j++) {
            int64_t e = c->layout1 ? (b * c->dirs + d) * H + j : (d * N + b) * H + j;
            if (io->Yh)
                onnx__set_f64(io->Yh, e, h[j]);
            if (io->Yc)
                onnx__set_f64(io->Yc, e, cs[j]);
        }
    }
}

static int run_rnn(const onnx_node *n, onnx_kctx *k)
{
    const rnn_cfg *c = n->priv;
    rnn_io io = {.X = k->in[0], .W = k->in[1], .R = k->in[2]};
    const onnx_tensor *opt[5] = {0};
    for (int i = 3; i < k->n_in && i < 8; i++)
        opt[i - 3] = k->in[i];
    io.B = opt[0];
    io.lens = opt[1];
    io.h0 = opt[2];
    io.c0 = c->kind == C_LSTM ? opt[3] : NULL;
    io.P = c->kind == C_LSTM ? opt[4] : NULL;
    int64_t H = c->hidden, G = c->gates;
    if (io.X->rank != 3 || (io.X->dtype != ONNX_FLOAT && io.X->dtype != ONNX_DOUBLE))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "X must be a 3-D float tensor");
    io.S = io.X->dims[c->layout1 ? 1 : 0];
    io.N = io.X->dims[c->layout1 ? 0 : 1];
    io.I = io.X->dims[2];
    if (onnx_tensor_numel(io.W) != c->dirs * G * H * io.I ||
        onnx_tensor_numel(io.R) != c->dirs * G * H * H ||
        (io.B && onnx_tensor_numel(io.B) != c->dirs * 2 * G * H) ||
        (io.lens && onnx_tensor_numel(io.lens) != io.N) ||
        (io.h0 && onnx_tensor_numel(io.h0) != c->dirs * io.N * H) ||
        (io.c0 && onnx_tensor_numel(io.c0) != c->dirs * io.N * H) ||
        (io.P && onnx_tensor_numel(io.P) != c->dirs * 3 * H))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "W, R, B, sequence_lens or states have the wrong size");
    for (int64_t b = 0; io.lens && b < io.N; b++)
        if (onnx__get_i64(io.lens, b) < 0 || onnx__get_i64(io.lens, b) > io.S)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "sequence length out of range");
    int64_t yd[4] = {io.S, c->dirs, io.N, H}, hd[3] = {c->dirs, io.N, H};
    if (c->layout1) {
        int64_t y1[4] = {io.N, io.S, c->dirs, H}, h1[3] = {io.N, c->dirs, H};
        memcpy(yd, y1, sizeof yd);
        memcpy(hd, h1, sizeof hd);
    }
    int rc = MD_OK;
    if (k->n_out > 0 && n->out[0] >= 0)
        rc = onnx__output(k, 0, io.X->dtype, 4, yd, &io.Y);
    if (!rc && k->n_out > 1 && n->out[1] >= 0)
        rc = onnx__output(k, 1, io.X->dtype, 3, hd, &io.Yh);
    if (!rc && k->n_out > 2 && n->out[2] >= 0)
        rc = onnx__output(k, 2, io.X->dtype, 3, hd, &io.Yc);
    if (rc)
        return rc;
    if (io.Y)
        memset(io.Y->data, 0, (size_t)onnx_tensor_numel(io.Y) * onnx_dtype_size(io.X->dtype));
    double *work = onnx__scratch(k, (size_t)(io.I + H * (3 + 2 * G)) * sizeof(double));
    if (!work)
        return MD_E_NOMEM;
    for (int d = 0; d < c->dirs; d++)
        run_dir(c, &io, d, work);
    return MD_OK;
}

#define RNN_ATTRS "activation_alpha:F activation_beta:F activations:S clip:f direction:s " \
                  "hidden_size:i layout:i"

ONNX_OPS(rnn) = {
    {.domain = "", .op_type = "RNN", .opset_min = 7, .min_in = 3, .max_in = 6, .min_out = 0,
     .max_out = 2, .attrs = RNN_ATTRS, .prepare = prep_rnn, .run = run_rnn},
    {.domain = "", .op_type = "GRU", .opset_min = 7, .min_in = 3, .max_in = 6, .min_out = 0,
     .max_out = 2, .attrs = RNN_ATTRS " linear_before_reset:i", .prepare = prep_rnn, .run = run_rnn},
    {.domain = "", .op_type = "LSTM", .opset_min = 7, .min_in = 3, .max_in = 8, .min_out = 0,
     .max_out = 3, .attrs = RNN_ATTRS " input_forget:i", .prepare = prep_rnn, .run = run_rnn},
    ONNX_OPS_END,
};
