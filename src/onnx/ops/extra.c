/* extra.c - smaller operators outside the network core: quantisation (QuantizeLinear,
 * DequantizeLinear, DynamicQuantizeLinear), window functions (Hann, Hamming, Blackman), Det,
 * Unique, Einsum, StringNormalizer and TfIdfVectorizer.
 *
 * Einsum is evaluated directly: one loop over every combination of the equation's labels,
 * bounded so that a hostile equation cannot run for hours.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "onnx/onnx_int.h"

#define EINSUM_MAX_STEPS ((int64_t)1 << 31)

/* ---- quantisation ---- */

static double sat_q(double v, int dt)
{
    double lo = dt == ONNX_INT8 ? -128 : 0, hi = dt == ONNX_INT8 ? 127 : 255;
    return v < lo ? lo : v > hi ? hi : v;
}

/* Per-axis parameter index of element e: scale/zero-point tensors are scalars or [dims[axis]]. */
static int64_t param_index(const onnx_tensor *x, const onnx_tensor *p, int axis, int64_t e)
{
    if (onnx_tensor_numel(p) == 1)
        return 0;
    int64_t inner = 1;
    for (int i = axis + 1; i < x->rank; i++)
        inner *= x->dims[i];
    return (e / inner) % x->dims[axis];
}

static int quant_axis(const onnx_node *n, onnx_kctx *k, const onnx_tensor *x, const onnx_tensor *s,
                      const onnx_tensor *z, int *axis)
{
    *axis = 0;
    int64_t ns = onnx_tensor_numel(s);
    if (ns == 1 && (!z || onnx_tensor_numel(z) == 1))
        return MD_OK;
    if (onnx__norm_axis(onnx__attr_int(n, "axis", 1), x->rank, 0, axis) != 0 ||
        ns != x->dims[*axis] || (z && onnx_tensor_numel(z) != ns))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "scale/zero point do not match the axis");
    return MD_OK;
}

static int run_quantize(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0], *s = k->in[1], *z = k->n_in > 2 ? k->in[2] : NULL;
    int dt = z ? z->dtype : ONNX_UINT8, axis;
    if ((dt != ONNX_UINT8 && dt != ONNX_INT8) || (x->dtype != ONNX_FLOAT && x->dtype != ONNX_INT32))
        return onnx__kfail(k, MD_E_UNSUPPORTED, "quantisation to %s", onnx_dtype_name(dt));
    int rc = quant_axis(n, k, x, s, z, &axis);
    onnx_tensor *o;
    if (rc || (rc = onnx__output(k, 0, dt, x->rank, x->dims, &o)))
        return rc;
    int64_t total = onnx_tensor_numel(x);
    for (int64_t e = 0; e < total; e++) {
        int64_t p = param_index(x, s, axis, e);
        double zp = z ? onnx__get_f64(z, p) : 0;
        /* Divide in float for float input: the reference rounds the float32 quotient. */
        double q = x->dtype == ONNX_FLOAT
                       ? (double)((float)onnx__get_f64(x, e) / (float)onnx__get_f64(s, p))
                       : onnx__get_f64(x, e) / onnx__get_f64(s, p);
        onnx__set_f64(o, e, sat_q(nearbyint(q) + zp, dt));
    }
    return MD_OK;
}

static int run_dequantize(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0], *s = k->in[1], *z = k->n_in > 2 ? k->in[2] : NULL;
    int axis;
    int rc = quant_axis(n, k, x, s, z, &axis);
    onnx_tensor *o;
    if (rc || (rc = onnx__output(k, 0, ONNX_FLOAT, x->rank, x->dims, &o)))
        return rc;
    int64_t total = onnx_tensor_numel(x);
    for (int64_t e = 0; e < total; e++) {
        int64_t p = param_index(x, s, axis, e);
        double zp = z ? onnx__get_f64(z, p) : 0;
        ((float *)o->data)[e] = (float)((onnx__get_f64(x, e) - zp) * onnx__get_f64(s, p));
    }
    return MD_OK;
}

static int run_dynquant(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    const onnx_tensor *x = k->in[0];
    if (x->dtype != ONNX_FLOAT)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "input must be float");
    int64_t total = onnx_tensor_numel(x);
    const float *xf = x->data;
    float lo = 0, hi = 0;
    for (int64_t e = 0; e < total; e++) {
        lo = xf[e] < lo ? xf[e] : lo;
        hi = xf[e] > hi ? xf[e] : hi;
    }
    float scale = (hi - lo) / 255.f;
    double zp = scale > 0 ? sat_q(nearbyint(0 - lo / scale), ONNX_UINT8) : 0;
    onnx_tensor *y, *so, *zo;
    int rc = onnx__output(k, 0, ONNX_UINT8, x->rank, x->dims, &y);
    if (!rc)
        rc = onnx__output(k, 1, ONNX_FLOAT, 0, NULL, &so);
    if (!rc)
        rc = onnx__output(k, 2, ONNX_UINT8, 0, NULL, &zo);
    if (rc)
        return rc;
    for (int64_t e = 0; e < total; e++)
        ((uint8_t *)y->data)[e] =
            scale > 0 ? (uint8_t)sat_q(nearbyint(xf[e] / scale) + zp, ONNX_UINT8) : 0;
    *(float *)so->data = scale;
    *(uint8_t *)zo->data = (uint8_t)zp;
    return MD_OK;
}

/* ---- windows ---- */

typedef enum win { W_HANN, W_HAMMING, W_BLACKMAN } win;

static int run_window(const onnx_node *n, onnx_kctx *k, win w)
{
    const onnx_tensor *sz = k->in[0];
    if (onnx_tensor_numel(sz) != 1)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "size must be a scalar");
    int64_t N = onnx__get_i64(sz, 0);
    int dt = (int)onnx__attr_int(n, "output_datatype", ONNX_FLOAT);
    if (N < 0 || N > (1 << 28) || !onnx_dtype_size(dt) || dt == ONNX_STRING)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "bad size or output_datatype");
    onnx_tensor *o;
    int rc = onnx__output(k, 0, dt, 1, &N, &o);
    if (rc)
        return rc;
    double D = onnx__attr_int(n, "periodic", 1) ? (double)N : (double)(N - 1);
    for (int64_t i = 0; i < N; i++) {
        double c = D > 0 ? cos(2 * M_PI * (double)i / D) : 1, v;
        if (w == W_HANN)
            v = 0.5 - 0.5 * c;
        else if (w == W_HAMMING)
            v = 25.0 / 46.0 - (1 - 25.0 / 46.0) * c;
        else
            v = 0.42 - 0.5 * c + 0.08 * (D > 0 ? cos(4 * M_PI * (double)i / D) : 1);
        onnx__set_f64(o, i, v);
    }
    return MD_OK;
}

static int run_hann(const onnx_node *n, onnx_kctx *k) { return run_window(n, k, W_HANN); }
static int run_hamming(const onnx_node *n, onnx_kctx *k) { return run_window(n, k, W_HAMMING); }
static int run_blackman(const onnx_node *n, onnx_kctx *k) { return run_window(n, k, W_BLACKMAN); }

/* ---- Det ---- */

static double det_lu(double *a, int64_t m)
{
    double d = 1;
    for (int64_t c = 0; c < m; c++) {
        int64_t p = c;
        for (int64_t r = c + 1; r < m; r++)
            if (fabs(a[r * m + c]) > fabs(a[p * m + c]))
                p = r;
        if (a[p * m + c] == 0)
            return 0;
        if (p != c) {
            for (int64_t j = 0; j < m; j++) {
                double t = a[c * m + j];
                a[c * m + j] = a[p * m + j];
                a[p * m + j] = t;
            }
            d = -d;
        }
        d *= a[c * m + c];
        for (int64_t r = c + 1; r < m; r++) {
            double f = a[r * m + c] / a[c * m + c];
            for (int64_t j = c; j < m; j++)
                a[r * m + j] -= f * a[c * m + j];
        }
    }
    return d;
}

static int run_det(const onnx_node *n, onnx_kctx *k)
{
    (void)n;
    const onnx_tensor *x = k->in[0];
    if (x->rank < 2 || x->dims[x->rank - 1] != x->dims[x->rank - 2] ||
        (x->dtype != ONNX_FLOAT && x->dtype != ONNX_DOUBLE))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "needs float [..., M, M]");
    int64_t m = x->dims[x->rank - 1], mats = 1;
    for (int i = 0; i < x->rank - 2; i++)
        mats *= x->dims[i];
    onnx_tensor *o;
    int rc = onnx__output(k, 0, x->dtype, x->rank - 2, x->dims, &o);
    if (rc)
        return rc;
    double *a = onnx__scratch(k, (size_t)(m > 0 ? m * m : 1) * sizeof(double));
    if (!a)
        return MD_E_NOMEM;
    for (int64_t t = 0; t < mats; t++) {
        for (int64_t i = 0; i < m * m; i++)
            a[i] = onnx__get_f64(x, t * m * m + i);
        onnx__set_f64(o, t, det_lu(a, m));
    }
    return MD_OK;
}

/* ---- Unique ---- */

typedef struct uq {
    const onnx_tensor *x;
    int64_t outer, len, inner; /* items are slices along the axis */
} uq;

/* Compare items i and j: lexicographic over the slice (element order outer, inner). */
static int item_cmp(const uq *u, int64_t i, int64_t j)
{
    for (int64_t a = 0; a < u->outer; a++)
        for (int64_t c = 0; c < u->inner; c++) {
            double x = onnx__get_f64(u->x, (a * u->len + i) * u->inner + c);
            double y = onnx__get_f64(u->x, (a * u->len + j) * u->inner + c);
            if (x != y)
                return x < y ? -1 : 1;
        }
    return 0;
}

static int run_unique(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    if (x->dtype == ONNX_STRING || x->dtype == ONNX_FLOAT16)
        return onnx__kfail(k, MD_E_UNSUPPORTED, "type %s", onnx_dtype_name(x->dtype));
    const onnx_attr *ax = onnx__attr(n, "axis");
    bool sorted = onnx__attr_int(n, "sorted", 1) != 0;
    int axis = 0;
    uq u = {x, 1, onnx_tensor_numel(x), 1};
    if (ax) {
        if (onnx__norm_axis(ax->i, x->rank, 0, &axis) != 0)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "axis out of range");
        u.len = x->dims[axis];
        for (int i = 0; i < x->rank; i++)
            if (i != axis)
                *(i < axis ? &u.outer : &u.inner) *= x->dims[i];
    }
    int64_t L = u.len;
    int64_t *first = onnx__scratch(k, (size_t)(L + 1) * sizeof(int64_t) * 3);
    if (!first)
        return MD_E_NOMEM;
    int64_t *group = first + L + 1, *order = group + L + 1, ng = 0;
    for (int64_t i = 0; i < L; i++) { /* group of i = first earlier equal item's group */
        group[i] = -1;
        for (int64_t g = 0; g < ng && group[i] < 0; g++)
            if (item_cmp(&u, first[g], i) == 0)
                group[i] = g;
        if (group[i] < 0) {
            first[ng] = i;
            group[i] = ng++;
        }
    }
    for (int64_t g = 0; g < ng; g++) /* output position -> group, insertion-sorted by value */
        order[g] = g;
    for (int64_t a = 1; sorted && a < ng; a++)
        for (int64_t b = a; b > 0 && item_cmp(&u, first[order[b - 1]], first[order[b]]) > 0; b--) {
            int64_t t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    int64_t yd[ONNX_MAX_RANK];
    int yr = ax ? x->rank : 1;
    if (ax)
        memcpy(yd, x->dims, sizeof yd);
    yd[ax ? axis : 0] = ng;
    onnx_tensor *y, *oi = NULL, *inv = NULL, *cnt = NULL;
    int rc = onnx__output(k, 0, x->dtype, yr, yd, &y);
    if (!rc && k->n_out > 1)
        rc = onnx__output(k, 1, ONNX_INT64, 1, &ng, &oi);
    if (!rc && k->n_out > 2)
        rc = onnx__output(k, 2, ONNX_INT64, 1, &L, &inv);
    if (!rc && k->n_out > 3)
        rc = onnx__output(k, 3, ONNX_INT64, 1, &ng, &cnt);
    if (rc)
        return rc;
    size_t es = onnx_dtype_size(x->dtype);
    for (int64_t p = 0; p < ng; p++) {
        int64_t src = first[order[p]];
        for (int64_t a = 0; a < u.outer; a++)
            memcpy((char *)y->data + (size_t)((a * ng + p) * u.inner) * es,
                   (const char *)x->data + (size_t)((a * L + src) * u.inner) * es,
                   (size_t)u.inner * es);
        if (oi)
            ((int64_t *)oi->data)[p] = src;
        if (cnt)
            ((int64_t *)cnt->data)[p] = 0;
    }
    for (int64_t i = 0; i < L; i++) {
        int64_t p = 0;
        while (order[p] != group[i])
            p++;
        if (inv)
            ((int64_t *)inv->data)[i] = p;
        if (cnt)
            ((int64_t *)cnt->data)[p]++;
    }
    return MD_OK;
}

/* ---- Einsum ---- */

#define EIN_LABELS 64 /* 52 letters + up to 8 ellipsis dims */

typedef struct ein {
    int n_in;
    int rank[8];
    int lab[8][ONNX_MAX_RANK]; /* label id per input dim */
    int out_rank;
    int out_lab[ONNX_MAX_RANK];
    int64_t size[EIN_LABELS];
    bool used[EIN_LABELS];
} ein;

static int letter_id(char c) { return c >= 'a' && c <= 'z' ? c - 'a' : c >= 'A' && c <= 'Z' ? 26 + c - 'A' : -1; }

/* Parse one term ("ij", "...ii") for a tensor of rank r (r < 0: output, ellipsis rank ell). */
static int ein_term(const char *s, size_t len, int r, int ell, int *lab, int *out_r, int *ell_seen)
{
    int letters = 0, has_ell = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (i + 2 >= len + 0 || s[i + 1] != '.' || s[i + 2] != '.' || has_ell)
                return -1;
            has_ell = 1;
            i += 2;
        } else if (letter_id(s[i]) < 0) {
            return -1;
        } else {
            letters++;
        }
    }
    int e = has_ell ? (r >= 0 ? r - letters : ell) : 0;
    if (e < 0 || (r >= 0 && !has_ell && letters != r) || letters + e > ONNX_MAX_RANK)
        return -1;
    int d = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            for (int j = 0; j < e; j++)
                lab[d++] = 52 + (ONNX_MAX_RANK - e) + j; /* right-aligned ellipsis labels */
            i += 2;
        } else {
            lab[d++] = letter_id(s[i]);
        }
    }
    *out_r = d;
    if (has_ell && e > *ell_seen)
        *ell_seen = e;
    return 0;
}

static int ein_parse(const char *eq, int n_in, const onnx_tensor *const *in, ein *E)
{
    char buf[256];
    size_t bl = 0;
    for (const char *p = eq; *p && bl + 1 < sizeof buf; p++)
        if (*p != ' ')
            buf[bl++] = *p;
    buf[bl] = '\0';
    memset(E, 0, sizeof *E);
    E->n_in = n_in;
    char *arrow = strstr(buf, "->");
    size_t lhs = arrow ? (size_t)(arrow - buf) : bl;
    int ell = 0, t = 0;
    size_t start = 0;
    for (size_t i = 0; i <= lhs; i++) {
        if (i < lhs && buf[i] != ',')
            continue;
        if (t >= n_in || ein_term(buf + start, i - start, in[t]->rank, 0, E->lab[t], &E->rank[t], &ell))
            return -1;
        t++;
        start = i + 1;
    }
    if (t != n_in)
        return -1;
    int count[EIN_LABELS] = {0};
    for (int a = 0; a < n_in; a++)
        for (int d = 0; d < E->rank[a]; d++)
            count[E->lab[a][d]]++;
    if (arrow)
        return ein_term(arrow + 2, strlen(arrow + 2), -1, ell, E->out_lab, &E->out_rank, &ell);
    for (int j = 0; j < ell; j++) /* implicit: ellipsis, then letters seen once, sorted */
        E->out_lab[E->out_rank++] = 52 + (ONNX_MAX_RANK - ell) + j;
    for (int l = 0; l < 52 && E->out_rank < ONNX_MAX_RANK; l++)
        if (count[l] == 1)
            E->out_lab[E->out_rank++] = l;
    return 0;
}

static int run_einsum(const onnx_node *n, onnx_kctx *k)
{
    ein E;
    for (int i = 0; i < k->n_in; i++)
        if (!k->in[i])
            return onnx__kfail(k, MD_E_INVALID_PARAM, "input %d is empty", i);
    if (k->n_in > 8 || ein_parse(onnx__attr_str(n, "equation", ""), k->n_in, k->in, &E) != 0)
        return onnx__kfail(k, MD_E_INVALID_PARAM, "cannot parse the equation");
    int dt = k->in[0]->dtype;
    for (int a = 0; a < E.n_in; a++) {
        if (k->in[a]->dtype != dt || dt == ONNX_STRING || dt == ONNX_BOOL)
            return onnx__kfail(k, MD_E_INVALID_PARAM, "inputs must share one numeric type");
        for (int d = 0; d < E.rank[a]; d++) {
            int l = E.lab[a][d];
            int64_t s = k->in[a]->dims[d];
            if (E.used[l] && E.size[l] != s && s != 1 && E.size[l] != 1)
                return onnx__kfail(k, MD_E_INVALID_PARAM, "label sizes disagree");
            E.size[l] = E.used[l] && s == 1 ? E.size[l] : s;
            E.used[l] = true;
        }
    }
    int64_t od[ONNX_MAX_RANK];
    for (int d = 0; d < E.out_rank; d++) {
        if (!E.used[E.out_lab[d]])
            return onnx__kfail(k, MD_E_INVALID_PARAM, "output label not in any input");
        od[d] = E.size[E.out_lab[d]];
    }
    int labels[EIN_LABELS], nl = 0;
    int64_t steps = 1;
    for (int l = 0; l < EIN_LABELS; l++)
        if (E.used[l]) {
            labels[nl++] = l;
            if (E.size[l] && steps > EINSUM_MAX_STEPS / E.size[l])
                return onnx__kfail(k, MD_E_INVALID_PARAM, "equation too large to evaluate");
            steps *= E.size[l];
        }
    onnx_tensor *o;
    int rc = onnx__output(k, 0, dt, E.out_rank, od, &o);
    if (rc)
        return rc;
    int64_t on = onnx_tensor_numel(o);
    double *acc = onnx__scratch(k, (size_t)(on ? on : 1) * sizeof(double));
    if (!acc)
        return MD_E_NOMEM;
    memset(acc, 0, (size_t)(on ? on : 1) * sizeof(double));
    int64_t val[EIN_LABELS] = {0};
    for (int64_t s = 0; s < steps; s++) {
        double p = 1;
        for (int a = 0; a < E.n_in; a++) {
            int64_t off = 0;
            for (int d = 0; d < E.rank[a]; d++)
                off = off * k->in[a]->dims[d] + (k->in[a]->dims[d] == 1 ? 0 : val[E.lab[a][d]]);
            p *= onnx__get_f64(k->in[a], off);
        }
        int64_t oo = 0;
        for (int d = 0; d < E.out_rank; d++)
            oo = oo * od[d] + val[E.out_lab[d]];
        acc[oo] += p;
        for (int i = nl - 1; i >= 0; i--) {
            if (++val[labels[i]] < E.size[labels[i]])
                break;
            val[labels[i]] = 0;
        }
    }
    for (int64_t i = 0; i < on; i++)
        onnx__set_f64(o, i, acc[i]);
    return MD_OK;
}

/* ---- StringNormalizer ---- */

static bool is_stop(const onnx_node *n, const char *s, bool cs)
{
    const onnx_attr *a = onnx__attr(n, "stopwords");
    for (size_t i = 0; a && i < a->n_strings; i++)
        if (cs ? strcmp(s, a->strings[i]) == 0 : strcasecmp(s, a->strings[i]) == 0)
            return true;
    return false;
}

static int run_strnorm(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    if (x->dtype != ONNX_STRING || x->rank < 1 || x->rank > 2 || (x->rank == 2 && x->dims[0] != 1))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "input must be strings [C] or [1, C]");
    bool cs = onnx__attr_int(n, "is_case_sensitive", 0) != 0;
    const char *act = onnx__attr_str(n, "case_change_action", "NONE");
    int64_t C = x->dims[x->rank - 1], keep = 0;
    size_t chars = 0;
    const char *const *in = x->data;
    for (int64_t i = 0; i < C; i++)
        if (!is_stop(n, in[i], cs)) {
            keep++;
            chars += strlen(in[i]) + 1;
        }
    int64_t od[2] = {1, keep ? keep : 1};
    onnx_tensor *o;
    int rc = onnx__output(k, 0, ONNX_STRING, x->rank, x->rank == 2 ? od : od + 1, &o);
    char *buf = rc ? NULL : onnx__output_extra(k, 0, chars + 1);
    if (rc || !buf)
        return rc ? rc : MD_E_NOMEM;
    const char **out = o->data;
    out[0] = "";
    for (int64_t i = 0, j = 0; i < C; i++) {
        if (is_stop(n, in[i], cs))
            continue;
        out[j++] = buf;
        for (const char *s = in[i]; *s; s++)
            *buf++ = strcmp(act, "UPPER") == 0   ? (char)toupper((unsigned char)*s)
                     : strcmp(act, "LOWER") == 0 ? (char)tolower((unsigned char)*s)
                                                 : *s;
        *buf++ = '\0';
    }
    return MD_OK;
}


/* ---- TfIdfVectorizer ---- */

/* Does the n-gram at x[row + pos[0..n)] equal pool gram g (elements start..start+n)? */
static bool gram_eq(const onnx_node *n, const onnx_tensor *x, const int64_t *pos, int len,
                    int64_t start)
{
    const int64_t *pi;
    size_t ni = onnx__attr_ints(n, "pool_int64s", &pi);
    const onnx_attr *ps = onnx__attr(n, "pool_strings");
    for (int j = 0; j < len; j++) {
        int64_t e = start + j;
        if (x->dtype == ONNX_STRING) {
            if (!ps || (size_t)e >= ps->n_strings ||
                strcmp(((const char *const *)x->data)[pos[j]], ps->strings[e]) != 0)
                return false;
        } else if ((size_t)e >= ni || onnx__get_i64(x, pos[j]) != pi[e]) {
            return false;
        }
    }
    return true;
}

static int prep_tfidf(onnx_node *n, onnx_prep *p, md_err *err)
{
    (void)p;
    const int64_t *cnt, *idx, *pi;
    size_t nc = onnx__attr_ints(n, "ngram_counts", &cnt), nx = onnx__attr_ints(n, "ngram_indexes", &idx);
    size_t np = onnx__attr_ints(n, "pool_int64s", &pi);
    const onnx_attr *ps = onnx__attr(n, "pool_strings");
    int64_t mn = onnx__attr_int(n, "min_gram_length", 0), mx = onnx__attr_int(n, "max_gram_length", 0);
    size_t pool = ps ? ps->n_strings : np, grams = 0;
    const char *mode = onnx__attr_str(n, "mode", "TF");
    if (strcmp(mode, "TF") && strcmp(mode, "IDF") && strcmp(mode, "TFIDF"))
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "mode", "mode must be TF, IDF or TFIDF");
    if (mn < 1 || mx < mn || mx > 64 || (size_t)mx > nc || onnx__attr_int(n, "max_skip_count", 0) < 0)
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "max_gram_length", "bad gram lengths");
    for (size_t g = 0; g < nc; g++) { /* each level's start must be inside the pool, ascending */
        size_t end = g + 1 < nc ? (size_t)cnt[g + 1] : pool;
        if (cnt[g] < 0 || (size_t)cnt[g] > end || end > pool || (end - (size_t)cnt[g]) % (g + 1))
            return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "ngram_counts", "bad pool layout");
        grams += (end - (size_t)cnt[g]) / (g + 1);
    }
    if (grams != nx)
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "ngram_indexes", "one index per gram needed");
    for (size_t i = 0; i < nx; i++)
        if (idx[i] < 0 || idx[i] > (1 << 24))
            return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "ngram_indexes", "index out of range");
    const float *w;
    if (onnx__attr_floats(n, "weights", &w) && onnx__attr_floats(n, "weights", &w) != nx)
        return onnx__prep_fail(n, err, MD_E_MODEL_INVALID, "weights", "one weight per gram needed");
    return MD_OK;
}

/* Count the row's n-grams of length len (skip distance d) into counts[gram]. */
static void count_grams(const onnx_node *n, const onnx_tensor *x, int64_t row, int64_t L, int len,
                        int64_t d, double *counts)
{
    const int64_t *cnt, *idx;
    size_t nc = onnx__attr_ints(n, "ngram_counts", &cnt);
    onnx__attr_ints(n, "ngram_indexes", &idx);
    const onnx_attr *ps = onnx__attr(n, "pool_strings");
    const int64_t *pi;
    size_t pool = ps ? ps->n_strings : onnx__attr_ints(n, "pool_int64s", &pi);
    size_t first = 0; /* global gram number of this level's first gram */
    for (int g = 0; g < len - 1; g++)
        first += ((g + 1 < (int)nc ? (size_t)cnt[g + 1] : pool) - (size_t)cnt[g]) / (size_t)(g + 1);
    size_t start = (size_t)cnt[len - 1], end = len < (int)nc ? (size_t)cnt[len] : pool;
    int64_t pos[64];
    for (int64_t i = 0; i + (len - 1) * d < L; i++) {
        for (int j = 0; j < len; j++)
            pos[j] = row + i + j * d;
        for (size_t e = start, gi = first; e < end; e += (size_t)len, gi++)
            if (gram_eq(n, x, pos, len, (int64_t)e)) {
                counts[idx[gi]] += 1;
                break;
            }
    }
}

static int run_tfidf(const onnx_node *n, onnx_kctx *k)
{
    const onnx_tensor *x = k->in[0];
    if (x->rank < 1 || x->rank > 2 ||
        (x->dtype != ONNX_INT64 && x->dtype != ONNX_INT32 && x->dtype != ONNX_STRING))
        return onnx__kfail(k, MD_E_INVALID_PARAM, "input must be [N] or [B, N] ints or strings");
    const int64_t *idx;
    size_t nx = onnx__attr_ints(n, "ngram_indexes", &idx);
    const float *w;
    size_t nw = onnx__attr_floats(n, "weights", &w);
    int64_t C = 0;
    for (size_t i = 0; i < nx; i++)
        C = idx[i] + 1 > C ? idx[i] + 1 : C;
    int64_t B = x->rank == 2 ? x->dims[0] : 1, L = x->dims[x->rank - 1];
    int64_t od[2] = {B, C};
    onnx_tensor *o;
    int rc = onnx__output(k, 0, ONNX_FLOAT, x->rank, x->rank == 2 ? od : od + 1, &o);
    if (rc)
        return rc;
    const char *mode = onnx__attr_str(n, "mode", "TF");
    int mn = (int)onnx__attr_int(n, "min_gram_length", 1), mx = (int)onnx__attr_int(n, "max_gram_length", 1);
    int64_t skip = onnx__attr_int(n, "max_skip_count", 0);
    double *counts = onnx__scratch(k, (size_t)(C ? C : 1) * sizeof(double));
    if (!counts)
        return MD_E_NOMEM;
    for (int64_t b = 0; b < B; b++) {
        memset(counts, 0, (size_t)(C ? C : 1) * sizeof(double));
        for (int len = mn; len <= mx; len++)
            for (int64_t d = 1; d <= (len == 1 ? 1 : skip + 1); d++)
                count_grams(n, x, b * L, L, len, d, counts);
        for (int64_t c = 0; c < C; c++) {
            double wt = 1;
            for (size_t g = 0; g < nx && nw; g++)
                if (idx[g] == c)
                    wt = w[g];
            double v = strcmp(mode, "IDF") == 0 ? (counts[c] > 0 ? wt : 0)
                     : strcmp(mode, "TFIDF") == 0 ? counts[c] * wt : counts[c];
            ((float *)o->data)[b * C + c] = (float)v;
        }
    }
    return MD_OK;
}

#define OPE(NAME, LO, I0, I1, O0, O1, ATTRS, FN)                                             \
    {.domain = "", .op_type = NAME, .opset_min = LO, .min_in = I0, .max_in = I1,             \
     .min_out = O0, .max_out = O1, .attrs = ATTRS, .run = FN}

ONNX_OPS(extra) = {
    OPE("QuantizeLinear", 10, 2, 3, 1, 1, "axis:i", run_quantize),
    OPE("DequantizeLinear", 10, 2, 3, 1, 1, "axis:i", run_dequantize),
    OPE("DynamicQuantizeLinear", 11, 1, 1, 3, 3, NULL, run_dynquant),
    OPE("HannWindow", 17, 1, 1, 1, 1, "output_datatype:i periodic:i", run_hann),
    OPE("HammingWindow", 17, 1, 1, 1, 1, "output_datatype:i periodic:i", run_hamming),
    OPE("BlackmanWindow", 17, 1, 1, 1, 1, "output_datatype:i periodic:i", run_blackman),
    OPE("Det", 11, 1, 1, 1, 1, NULL, run_det),
    OPE("Unique", 11, 1, 1, 1, 4, "axis:i sorted:i", run_unique),
    OPE("Einsum", 12, 1, 8, 1, 1, "equation:s", run_einsum),
    {.domain = "", .op_type = "TfIdfVectorizer", .opset_min = 9, .min_in = 1, .max_in = 1,
     .min_out = 1, .max_out = 1,
     .attrs = "max_gram_length:i max_skip_count:i min_gram_length:i mode:s ngram_counts:I "
              "ngram_indexes:I pool_int64s:I pool_strings:S weights:F",
     .prepare = prep_tfidf, .run = run_tfidf},
    OPE("StringNormalizer", 10, 1, 1, 1, 1,
        "case_change_action:s is_case_sensitive:i locale:s stopwords:S", run_strnorm),
    ONNX_OPS_END,
};
