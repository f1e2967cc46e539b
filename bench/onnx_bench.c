/* onnx_bench.c - time modeld's ONNX engine on one model, inside the process.
 *
 *   onnx_bench MODEL.onnx INPUT.bin DIMS [--threads N] [--runs N] [--warmup N] [--out FILE]
 *
 * INPUT.bin is raw little-endian float32 for the model's single input, DIMS its shape
 * ("1,3,64,64").
 * Prints one JSON line: load time, median and p90 wall time per inference, median CPU time per
 * inference (the whole process, every thread: on a shared machine it is steadier than wall time)
 * and peak RSS. --out writes the first output as raw float32, for bench/onnx.sh to compare with
 * onnxruntime's. Built by bench/onnx.sh against the libraries of a Release build.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "onnx/onnx.h"

typedef struct bench_opts {
    const char *model, *input, *dims, *out;
    int threads, runs, warmup;
} bench_opts;

static double now_ms(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double quantile(double *v, int n, double q)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[(int)(q * (n - 1) + 0.5)];
}

static int parse_args(int argc, char **argv, bench_opts *o)
{
    *o = (bench_opts){.threads = 1, .runs = 200, .warmup = 20};
    if (argc < 4)
        return -1;
    o->model = argv[1];
    o->input = argv[2];
    o->dims = argv[3];
    for (int i = 4; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            o->threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--runs") == 0)
            o->runs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--warmup") == 0)
            o->warmup = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--out") == 0)
            o->out = argv[i + 1];
        else
            return -1;
    }
    return o->threads >= 1 && o->runs >= 1 && o->warmup >= 0 ? 0 : -1;
}

/* The input tensor from DIMS and the raw file. Ownership: *out is new (onnx_tensor_free). */
static int read_input(const bench_opts *o, onnx_tensor **out)
{
    int64_t dims[ONNX_MAX_RANK];
    int rank = 0;
    for (const char *p = o->dims; *p && rank < ONNX_MAX_RANK; rank++) {
        char *end;
        dims[rank] = strtoll(p, &end, 10);
        p = *end == ',' ? end + 1 : end;
    }
    md_err e;
    if (onnx_tensor_new(ONNX_FLOAT, rank, dims, out, &e) != 0) {
        fprintf(stderr, "onnx_bench: bad dims '%s': %s\n", o->dims, md_err_message(&e));
        return -1;
    }
    size_t want = (size_t)onnx_tensor_numel(*out) * sizeof(float);
    FILE *f = fopen(o->input, "rb");
    size_t got = f ? fread((*out)->data, 1, want, f) : 0;
    if (f)
        fclose(f);
    if (got != want) {
        fprintf(stderr, "onnx_bench: %s: expected %zu bytes, read %zu\n", o->input, want, got);
        return -1;
    }
    return 0;
}

static int write_output(const char *path, const onnx_result *r)
{
    const onnx_tensor *t = onnx_result_output(r, 0);
    FILE *f = fopen(path, "wb");
    size_t n = (size_t)onnx_tensor_numel(t);
    int ok = f && t->dtype == ONNX_FLOAT && fwrite(t->data, sizeof(float), n, f) == n;
    if (f)
        fclose(f);
    return ok ? 0 : -1;
}

/* One inference; adds its wall and CPU milliseconds. */
static int run_once(const onnx_model *m, const onnx_tensor *in, int threads, double *wall,
                    double *cpu, const char *out)
{
    onnx_run_opts ro = {.threads = threads};
    onnx_result *r = NULL;
    md_err e;
    double w0 = now_ms(CLOCK_MONOTONIC), c0 = now_ms(CLOCK_PROCESS_CPUTIME_ID);
    int rc = onnx_run(m, in, 1, &ro, &r, &e);
    *cpu = now_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
    *wall = now_ms(CLOCK_MONOTONIC) - w0;
    if (rc != 0)
        fprintf(stderr, "onnx_bench: run failed: %s\n", md_err_message(&e));
    else if (out != NULL && write_output(out, r) != 0)
        rc = -1;
    onnx_result_free(r);
    return rc;
}

int main(int argc, char **argv)
{
    bench_opts o;
    if (parse_args(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: onnx_bench MODEL INPUT.bin DIMS [--threads N] [--runs N] "
                        "[--warmup N] [--out FILE]\n");
        return 2;
    }
    onnx_tensor *in = NULL;
    onnx_model *m = NULL;
    md_err e;
    onnx_load_opts lo = {.threads = o.threads};
    double t0 = now_ms(CLOCK_MONOTONIC);
    if (read_input(&o, &in) != 0 || onnx_model_load_file(o.model, &lo, &m, &e) != 0) {
        if (in != NULL)
            fprintf(stderr, "onnx_bench: load %s: %s\n", o.model, md_err_message(&e));
        onnx_tensor_free(in);
        return 1;
    }
    double load_ms = now_ms(CLOCK_MONOTONIC) - t0;
    double *wall = calloc((size_t)o.runs, sizeof(double)), *cpu = calloc((size_t)o.runs, 8);
    int rc = wall && cpu ? 0 : 1;
    for (int i = 0; rc == 0 && i < o.warmup + o.runs; i++) {
        int k = i - o.warmup;
        double w, c;
        rc = run_once(m, in, o.threads, &w, &c, i == 0 ? o.out : NULL);
        if (k >= 0) {
            wall[k] = w;
            cpu[k] = c;
        }
    }
    if (rc == 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("{\"runtime\":\"modeld\",\"threads\":%d,\"runs\":%d,\"load_ms\":%.3f,"
               "\"wall_ms\":%.4f,\"wall_p90_ms\":%.4f,\"cpu_ms\":%.4f,\"peak_rss_mb\":%.1f}\n",
               o.threads, o.runs, load_ms, quantile(wall, o.runs, 0.5),
               quantile(wall, o.runs, 0.9), quantile(cpu, o.runs, 0.5),
               (double)ru.ru_maxrss / 1024.0);
    }
    free(wall);
    free(cpu);
    onnx_model_free(m);
    onnx_tensor_free(in);
    return rc == 0 ? 0 : 1;
}
