/* infer.c - `modeld infer MODEL --input NAME=FILE.npy ... [--output DIR]`: run an ONNX model
 * (or an XGBoost .json/.ubj model) once on .npy inputs, print each output's shape and values,
 * and optionally save the outputs as DIR/<output name>.npy.
 *
 * It is the command-line face of the same library calls the server makes (onnx_model_load_file,
 * onnx_run; xgb_model_load, xgb_predict), useful to check a model by hand.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/buf.h"
#include "cli/cli.h"
#include "onnx/npy.h"
#include "onnx/onnx.h"
#include "xgb/xgb.h"

#define MAX_INPUTS 64
#define MAX_NPY ((size_t)1 << 30)

typedef struct infer_args {
    const char *model;
    const char *names[MAX_INPUTS];
    const char *files[MAX_INPUTS];
    int n_inputs;
    const char *out_dir;
    int threads;
    long max_print;
} infer_args;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: modeld infer MODEL --input [NAME=]FILE.npy ... [--output DIR]\n"
               "                    [--threads N] [--print N]\n"
               "  MODEL      an .onnx model, or an XGBoost .json/.ubj model (one float32 input\n"
               "             of shape [rows, features])\n"
               "  --input    bind FILE.npy to the graph input NAME (NAME= may be left out when\n"
               "             the model has one input)\n"
               "  --output   write each output to DIR/<name>.npy\n"
               "  --threads  intra-op threads (default 1)\n"
               "  --print    values printed per output (default 20, -1 for all)\n");
}

static int parse_args(int argc, char **argv, infer_args *a)
{
    memset(a, 0, sizeof *a);
    a->max_print = 20;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(s, "--input") == 0 && v) {
            if (a->n_inputs == MAX_INPUTS)
                return -1;
            const char *eq = strchr(v, '=');
            a->names[a->n_inputs] = eq ? v : NULL;
            a->files[a->n_inputs++] = eq ? eq + 1 : v;
            i++;
        } else if (strcmp(s, "--output") == 0 && v) {
            a->out_dir = v;
            i++;
        } else if (strcmp(s, "--threads") == 0 && v) {
            a->threads = atoi(v);
            i++;
        } else if (strcmp(s, "--print") == 0 && v) {
            a->max_print = atol(v);
            i++;
        } else if (s[0] != '-' && !a->model) {
            a->model = s;
        } else {
            return -1;
        }
    }
    return a->model && a->n_inputs > 0 ? 0 : -1;
}

/* Whole file (new, free()); NULL with errno set when it cannot be read or is too large. */
static void *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat st;
    void *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size <= MAX_NPY) {
        buf = malloc((size_t)st.st_size + 1);
        if (buf && fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)st.st_size;
    } else {
        errno = EFBIG;
    }
    fclose(f);
    return buf;
}

static int load_npy(const char *path, onnx_tensor **out)
{
    size_t len = 0;
    void *buf = slurp(path, &len);
    if (!buf) {
        fprintf(stderr, "infer: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    md_err err;
    md_err_clear(&err);
    int rc = onnx_npy_parse(buf, len, MAX_NPY, out, &err);
    free(buf);
    if (rc) {
        fprintf(stderr, "infer: %s: %s\n", path, md_err_message(&err));
        return -1;
    }
    return 0;
}

static void print_value(const onnx_tensor *t, int64_t i)
{
    const void *d = t->data;
    switch (t->dtype) {
    case ONNX_FLOAT: printf("%.7g", ((const float *)d)[i]); break;
    case ONNX_DOUBLE: printf("%.15g", ((const double *)d)[i]); break;
    case ONNX_STRING: printf("\"%s\"", ((const char *const *)d)[i]); break;
    case ONNX_BOOL: printf("%s", ((const uint8_t *)d)[i] ? "true" : "false"); break;
    case ONNX_INT64: printf("%lld", (long long)((const int64_t *)d)[i]); break;
    case ONNX_UINT64: printf("%llu", (unsigned long long)((const uint64_t *)d)[i]); break;
    case ONNX_INT32: printf("%d", ((const int32_t *)d)[i]); break;
    case ONNX_UINT32: printf("%u", ((const uint32_t *)d)[i]); break;
    case ONNX_INT16: printf("%d", ((const int16_t *)d)[i]); break;
    case ONNX_UINT16: printf("%u", ((const uint16_t *)d)[i]); break;
    case ONNX_INT8: printf("%d", ((const int8_t *)d)[i]); break;
    case ONNX_UINT8: printf("%u", ((const uint8_t *)d)[i]); break;
    default: printf("0x%04x", ((const uint16_t *)d)[i]); break; /* float16 bits */
    }
}

static void print_tensor(const char *name, const onnx_tensor *t, long max_print);

/* A sequence output: its length, then each element as a tensor. */
static void print_sequence(const char *name, const onnx_tensor *t, long max_print)
{
    printf("%s: sequence of %lld %s tensors\n", name, (long long)t->dims[0],
           onnx_dtype_name(t->dtype));
    for (int64_t i = 0; i < t->dims[0]; i++) {
        char label[256];
        snprintf(label, sizeof label, "%s[%lld]", name, (long long)i);
        print_tensor(label, &((const onnx_tensor *)t->data)[i], max_print);
    }
}

static void print_tensor(const char *name, const onnx_tensor *t, long max_print)
{
    if (t->kind == ONNX_KIND_SEQUENCE) {
        print_sequence(name, t, max_print);
        return;
    }
    if (t->kind == ONNX_KIND_OPTIONAL) {
        if (t->data)
            print_tensor(name, t->data, max_print);
        else
            printf("%s: empty optional\n", name);
        return;
    }
    printf("%s: %s%s [", name, t->kind == ONNX_KIND_SEQ_MAP ? "seq(map) of " : "",
           onnx_dtype_name(t->dtype));
    for (int d = 0; d < t->rank; d++)
        printf("%s%lld", d ? ", " : "", (long long)t->dims[d]);
    printf("]\n  ");
    if (t->kind == ONNX_KIND_SEQ_MAP && t->rank == 2) {
        printf("keys:");
        for (int64_t c = 0; c < t->dims[1]; c++) {
            if (t->key_dtype == ONNX_STRING)
                printf(" \"%s\"", ((const char *const *)t->map_keys)[c]);
            else
                printf(" %lld", (long long)((const int64_t *)t->map_keys)[c]);
        }
        printf("\n  ");
    }
    int64_t n = onnx_tensor_numel(t), shown = max_print < 0 || max_print > n ? n : max_print;
    for (int64_t i = 0; i < shown; i++) {
        printf("%s", i ? " " : "");
        print_value(t, i);
    }
    printf("%s\n", shown < n ? " ..." : "");
}

/* DIR/<name>.npy, with characters unsafe in a file name replaced by '_'. */
static int save_npy(const char *dir, const char *name, const onnx_tensor *t)
{
    char safe[200], path[4096];
    size_t j = 0;
    for (const char *s = name; *s && j + 1 < sizeof safe; s++, j++)
        safe[j] = (*s == '/' || *s == '\\' || (*s == '.' && j == 0)) ? '_' : *s;
    safe[j] = '\0';
    snprintf(path, sizeof path, "%s/%s.npy", dir, j ? safe : "output");
    md_buf b;
    md_buf_init(&b, (size_t)1 << 31);
    md_err err;
    md_err_clear(&err);
    int rc = onnx_npy_write(t, &b, &err);
    FILE *f = rc ? NULL : fopen(path, "wb");
    if (f && fwrite(b.data, 1, b.len, f) != b.len)
        rc = -1;
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc || !f)
        fprintf(stderr, "infer: cannot write %s: %s\n", path,
                rc > 0 ? md_err_message(&err) : strerror(errno));
    md_buf_free(&b);
    return rc || !f ? -1 : 0;
}

/* Inputs in graph order from the --input list; -1 on a missing or unknown name. */
static int bind_inputs(const onnx_model *m, const infer_args *a, onnx_tensor **loaded,
                       onnx_tensor *bound)
{
    size_t n;
    const onnx_value_info *vi = onnx_model_inputs(m, &n);
    if ((size_t)a->n_inputs != n) {
        fprintf(stderr, "infer: the model takes %zu inputs, %d given\n", n, a->n_inputs);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int found = -1;
        for (int j = 0; j < a->n_inputs; j++) {
            const char *nm = a->names[j];
            size_t l = nm ? (size_t)(strchr(nm, '=') - nm) : 0;
            if ((!nm && n == 1) || (nm && strlen(vi[i].name) == l && strncmp(nm, vi[i].name, l) == 0))
                found = j;
        }
        if (found < 0) {
            fprintf(stderr, "infer: no --input for graph input '%s'\n", vi[i].name);
            return -1;
        }
        bound[i] = *loaded[found];
    }
    return 0;
}

static int infer_onnx(const infer_args *a, onnx_tensor **loaded)
{
    md_err err;
    md_err_clear(&err);
    onnx_model *m = NULL;
    onnx_load_opts lo = {.threads = a->threads};
    double t0 = now_ms();
    if (onnx_model_load_file(a->model, &lo, &m, &err)) {
        fprintf(stderr, "infer: %s: %s\n", a->model, md_err_message(&err));
        return 1;
    }
    double t1 = now_ms();
    onnx_tensor bound[MAX_INPUTS];
    onnx_result *r = NULL;
    int status = bind_inputs(m, a, loaded, bound) ? 2 : 0;
    if (!status && onnx_run(m, bound, (size_t)a->n_inputs, NULL, &r, &err)) {
        fprintf(stderr, "infer: run failed: %s\n", md_err_message(&err));
        status = 1;
    }
    double t2 = now_ms();
    size_t no;
    const onnx_value_info *outs = onnx_model_outputs(m, &no);
    for (size_t i = 0; !status && i < no; i++) {
        print_tensor(outs[i].name, onnx_result_output(r, i), a->max_print);
        if (a->out_dir && save_npy(a->out_dir, outs[i].name, onnx_result_output(r, i)))
            status = 1;
    }
    if (!status)
        fprintf(stderr, "infer: load %.2f ms, run %.2f ms\n", t1 - t0, t2 - t1);
    onnx_result_free(r);
    onnx_model_free(m);
    return status;
}

static int infer_xgb(const infer_args *a, onnx_tensor **loaded)
{
    const onnx_tensor *x = loaded[0];
    if (a->n_inputs != 1 || x->dtype != ONNX_FLOAT || x->rank < 1 || x->rank > 2) {
        fprintf(stderr, "infer: an XGBoost model takes one float32 [rows, features] input\n");
        return 2;
    }
    md_err err;
    md_err_clear(&err);
    xgb_model *m = NULL;
    xgb_opts o = {.nthread = a->threads};
    if (xgb_model_load(a->model, &o, &m, &err)) {
        fprintf(stderr, "infer: %s: %s\n", a->model, md_err_message(&err));
        return 1;
    }
    const xgb_info *info = xgb_model_info(m);
    size_t rows = x->rank == 2 ? (size_t)x->dims[0] : 1;
    size_t cols = (size_t)x->dims[x->rank - 1];
    int64_t od[2] = {(int64_t)rows, (int64_t)info->num_outputs};
    onnx_tensor *out = NULL;
    int status = onnx_tensor_new(ONNX_FLOAT, 2, od, &out, &err) ? 1 : 0;
    if (!status && xgb_predict(m, x->data, rows, cols, out->data,
                               rows * (size_t)info->num_outputs, &err))
        status = 1;
    if (status)
        fprintf(stderr, "infer: %s\n", md_err_message(&err));
    else
        print_tensor("prediction", out, a->max_print);
    if (!status && a->out_dir && save_npy(a->out_dir, "prediction", out))
        status = 1;
    onnx_tensor_free(out);
    xgb_model_free(m);
    return status;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int cmd_infer(int argc, char **argv)
{
    infer_args a;
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (parse_args(argc, argv, &a) != 0) {
        usage(stderr);
        return 2;
    }
    onnx_tensor *loaded[MAX_INPUTS] = {0};
    int status = 0;
    for (int i = 0; i < a.n_inputs && !status; i++)
        if (load_npy(a.files[i], &loaded[i]))
            status = 2;
    if (!status)
        status = has_suffix(a.model, ".json") || has_suffix(a.model, ".ubj") ? infer_xgb(&a, loaded)
                                                                            : infer_onnx(&a, loaded);
    for (int i = 0; i < a.n_inputs; i++)
        onnx_tensor_free(loaded[i]);
    return status;
}
