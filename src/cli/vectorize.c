/* vectorize.c - `modeld vectorize`: raster images to SVG from the shell, one file or a whole
 * directory on all cores (one md_pool job per file), through the same pl_vectorize() the API
 * calls, so --converter smart chooses exactly as POST /api/convert does.
 *
 *   modeld vectorize in.png -o out.svg [--converter C] [--preset P] [--<param> value ...] [--json]
 *   modeld vectorize indir/ -o outdir/ [-j N] ...
 *
 * Invariants:
 *   1. Parameters go through vec_params_set, so a bad value is refused with the parameter's
 *      name and range before any file is read (exit 2).
 *   2. Each file succeeds or fails on its own; a failure is named with its error and the run
 *      exits 1, the others are still written.
 *   3. stdout carries results only (the table, or JSON with --json); the progress bar and errors
 *      go to stderr, and the bar only when stderr is a terminal.
 */
#include "cli/args.h"
#include "cli/cli.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/pool.h"
#include "image/image.h"
#include "pipelines/pipelines.h"
#include "vectorize/vec.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_JOBS 256
/* Files larger than this are refused before reading (as img_load_file does). */
#define MAX_FILE_BYTES ((long)256 << 20)

static const char USAGE[] =
    "usage: modeld vectorize IN -o OUT [options]\n"
    "  IN a file:       OUT is the SVG file (\"-\" for stdout; default IN with .svg)\n"
    "  IN a directory:  every .png .jpg .jpeg .webp .tif .tiff .bmp in it goes to the directory\n"
    "                   OUT (created if missing), on all cores\n"
    "options:\n"
    "  --converter C       vtracer (default: colour unless --colormode binary) | potrace (black\n"
    "                      and white) | smart (looks at the pixels and picks, as the API does)\n"
    "  --preset P          default | quality | fast | bw (applied before other parameters)\n"
    "  --<param> VALUE     a tracing parameter by its VTracer name, e.g. --filter_speckle 8\n"
    "  --json              print the results as JSON on stdout instead of a table\n"
    "  --no-quality        skip rendering and SSIM (faster)\n"
    "  -j N                worker threads for a directory (default: all cores)\n"
    "  -q, --quiet         no table and no progress bar\n"
    "parameters:";

typedef struct cli_args {
    const char *in, *out, *preset, *converter;
    int json, quality, quiet, jobs;
    const char *pnames[64], *pvalues[64];
    int nparams;
} cli_args;

/* What happened to one input file. */
typedef struct job {
    char *in_path, *out_path; /* new */
    const char *name;         /* borrowed from in_path: the file name */
    int rc;
    md_err err;
    vec_ssim_result ssim;
    size_t bytes, paths;
    double ms, decode_ms, cpu_ms; /* cpu_ms: CPU time of the worker thread on this file */
    vec_timing timing;
    int smart_binary;      /* --converter smart: its choice (1 binary, 0 colour); else -1 */
    const struct run *run; /* borrowed: what every job shares */
} job;

/* What every job of a run shares (read-only while the pool runs) and its progress. */
typedef struct run {
    job *jobs;
    size_t n;
    const vec_params *params;
    pl_converter converter;
    int quality;
    atomic_size_t done;
} run;

static void print_usage(FILE *f)
{
    fputs(USAGE, f);
    for (const char *const *n = vec_params_names(); *n; n++)
        fprintf(f, " %s", *n);
    fputc('\n', f);
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "modeld vectorize: %s%s%s\n\n", what, arg ? ": " : "", arg ? arg : "");
    print_usage(stderr);
    return 2;
}

/* One option; returns 0, 1 (usage error already printed: exit 2) or -1 (--help). */
static int parse_one(int argc, char **argv, int *i, cli_args *a)
{
    const char *s = argv[*i];
    if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0)
        return -1;
    if (strcmp(s, "--json") == 0 || strcmp(s, "--no-quality") == 0 || strcmp(s, "-q") == 0 ||
        strcmp(s, "--quiet") == 0) {
        a->json |= strcmp(s, "--json") == 0;
        a->quality &= strcmp(s, "--no-quality") != 0;
        a->quiet |= strcmp(s, "-q") == 0 || strcmp(s, "--quiet") == 0;
        return 0;
    }
    if (s[0] != '-' || strcmp(s, "-") == 0) {
        if (a->in)
            return usage_error("more than one input", s), 1;
        a->in = s;
        return 0;
    }
    const char *eq = strchr(s, '='), *val;
    size_t klen = eq ? (size_t)(eq - s) : strlen(s);
    if (s[1] != '-' && klen > 2) /* short options glued to their value: -j8, -oout.svg */
        klen = 2, val = s + 2;
    else if (eq)
        val = eq + 1;
    else if (*i + 1 < argc)
        val = argv[++*i];
    else
        return usage_error("missing value for", s), 1;
    if (strncmp(s, "-o", klen) == 0 && klen == 2)
        a->out = val;
    else if (klen == 2 && strncmp(s, "-j", 2) == 0) {
        char *end;
        long j = strtol(val, &end, 10);
        if (*end || j < 1 || j > MAX_JOBS)
            return usage_error("-j must be a number in 1..256, got", val), 1;
        a->jobs = (int)j;
    } else if (klen == 8 && strncmp(s, "--preset", 8) == 0)
        a->preset = val;
    else if (klen == 11 && strncmp(s, "--converter", 11) == 0)
        a->converter = val;
    else if (s[1] == '-') {
        if (a->nparams == (int)(sizeof a->pnames / sizeof a->pnames[0]))
            return usage_error("too many parameters", s), 1;
        a->pnames[a->nparams] = s + 2;
        a->pvalues[a->nparams++] = val;
    } else
        return usage_error("unknown option", s), 1;
    return 0;
}

/* Preset, then each --param in order. Parameter names may use '-' for '_'. */
static int build_params(const cli_args *a, vec_params *p)
{
    md_err err;
    if (vec_params_preset(a->preset ? a->preset : "default", p, &err) != MD_OK)
        return usage_error(md_err_message(&err), NULL);
    for (int i = 0; i < a->nparams; i++) {
        char name[64];
        const char *n = a->pnames[i];
        size_t len = strcspn(n, "=");
        if (len >= sizeof name)
            len = sizeof name - 1;
        for (size_t k = 0; k < len; k++)
            name[k] = n[k] == '-' ? '_' : n[k];
        name[len] = '\0';
        if (vec_params_set(p, name, a->pvalues[i], &err) != MD_OK) {
            fprintf(stderr, "modeld vectorize: --%s: %s\n", name, md_err_message(&err));
            return 2;
        }
    }
    return 0;
}

static int parse_args(int argc, char **argv, cli_args *a)
{
    memset(a, 0, sizeof *a);
    a->quality = 1;
    for (int i = 1; i < argc; i++) {
        int r = parse_one(argc, argv, &i, a);
        if (r < 0) {
            print_usage(stdout);
            return -1;
        }
        if (r)
            return 2;
    }
    if (!a->in)
        return usage_error("no input given", NULL);
    return 0;
}

/* ---- inputs and outputs ----------------------------------------------------------------- */

static char *path_join(const char *dir, const char *name, const char *ext)
{
    size_t n = strlen(dir) + strlen(name) + strlen(ext) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s%s", dir, *dir && dir[strlen(dir) - 1] != '/' ? "/" : "", name, ext);
    return p;
}

/* out_dir/<name without its extension>.svg (or .svgz); with keep_ext the extension stays
 * (a.png -> a.png.svg), for inputs whose stems collide. New. */
static char *output_name(const char *out_dir, const char *name, int svgz, int keep_ext)
{
    char stem[1024];
    snprintf(stem, sizeof stem, "%s", name);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem && !keep_ext)
        *dot = '\0';
    return path_join(out_dir, stem, svgz ? ".svgz" : ".svg");
}

static size_t stem_len(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && dot != name ? (size_t)(dot - name) : strlen(name);
}

/* Whether names[i] shares its stem with another name. The list is sorted, so every name with
 * the same stem sits in the run of names that start with "<stem>." around i. */
static int stem_collides(char *const *names, size_t n, size_t i)
{
    size_t k = stem_len(names[i]);
    for (size_t step = 0; step < 2; step++) {
        for (size_t j = i; step ? j + 1 < n : j > 0;) {
            j = step ? j + 1 : j - 1;
            if (strncmp(names[j], names[i], k) != 0 || names[j][k] != '.')
                break;
            if (stem_len(names[j]) == k)
                return 1;
        }
    }
    return 0;
}

/* Write through a temporary name and rename, so an interrupted run never leaves a
 * half-written SVG under the final name. */
static int write_file(const char *path, const char *data, size_t len)
{
    static atomic_uint seq;
    if (strcmp(path, "-") == 0)
        return fwrite(data, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : -1;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.%u.tmp", path, (long)getpid(), atomic_fetch_add(&seq, 1));
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    if (fclose(f) != 0 || w != len || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* ---- the work --------------------------------------------------------------------------- */

static double thread_cpu_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Read a whole file (new, free()). */
static int read_input(const char *path, uint8_t **data, size_t *len, md_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT || errno == ENOTDIR
                   ? md_fail(err, MD_E_FILE_NOT_FOUND, "path", "no such file")
                   : md_fail(err, MD_E_IO, "path", "cannot open the file (%s)", strerror(errno));
    struct stat st;
    int rc = MD_OK;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        rc = md_fail(err, MD_E_IO, "path", "not a regular file");
    else if (st.st_size > MAX_FILE_BYTES)
        rc = md_fail(err, MD_E_IMAGE_TOO_LARGE, "path",
                     "the file is %lld bytes, over the %ld MiB limit", (long long)st.st_size,
                     MAX_FILE_BYTES >> 20);
    *data = rc == MD_OK ? malloc((size_t)st.st_size + 1) : NULL;
    if (rc == MD_OK && !*data)
        rc = md_fail(err, MD_E_NOMEM, "path", "cannot allocate %lld bytes", (long long)st.st_size);
    if (rc == MD_OK) {
        *len = fread(*data, 1, (size_t)st.st_size, f);
        if (*len != (size_t)st.st_size)
            rc = md_fail(err, MD_E_IO, "path", "short read");
    }
    fclose(f);
    if (rc != MD_OK) {
        free(*data);
        *data = NULL;
    }
    return rc;
}

/* One file: read, pl_vectorize (no store, no budget: the decoder limits apply), write. */
static void run_job(void *arg)
{
    job *j = arg;
    const run *rn = j->run;
    uint8_t *data = NULL;
    size_t len = 0;
    pl_vec_out out = {0};
    md_err_clear(&j->err);
    uint64_t t0 = md_now_ns();
    double cpu0 = thread_cpu_ms();
    j->rc = read_input(j->in_path, &data, &len, &j->err);
    double read_ms = (double)(md_now_ns() - t0) / 1e6;
    if (j->rc == MD_OK) {
        pl_ctx cx = {0};
        pl_vec_in in = {.image = data,
                        .image_len = len,
                        .converter = rn->converter,
                        .params = *rn->params,
                        .measure_quality = rn->quality};
        j->rc = pl_vectorize(&cx, &in, &out, &j->err);
    }
    free(data);
    const vec_result *r = out.res;
    if (j->rc == MD_OK && write_file(j->out_path, r->svg, r->svg_bytes) != 0)
        j->rc = md_fail(&j->err, MD_E_IO, "output", "cannot write the SVG (%s)", strerror(errno));
    j->decode_ms = read_ms + out.timing.decode_ms;
    j->smart_binary = out.smart_binary;
    if (j->rc == MD_OK) {
        j->ssim = r->ssim;
        j->bytes = r->svg_bytes;
        j->paths = r->path_count;
        j->timing = r->timing;
        j->timing.decode_ms = j->decode_ms;
    }
    j->ms = (double)(md_now_ns() - t0) / 1e6;
    j->cpu_ms = thread_cpu_ms() - cpu0;
    pl_vec_out_free(&out);
    atomic_fetch_add(&((run *)rn)->done, 1);
}

static void draw_progress(size_t done, size_t n)
{
    int width = 40, fill = n ? (int)(done * (size_t)width / n) : width;
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu", fill, "########################################",
            width - fill, "", done, n);
    fflush(stderr);
}

/* Run all jobs on `threads` workers of one md_pool (its queue holds every file, so no submit is
 * refused); the calling thread draws the bar. Without a pool the work runs here. */
static void run_all(run *rn, int threads, int bar)
{
    md_pool *p = NULL;
    if ((size_t)threads > rn->n)
        threads = (int)rn->n;
    if (rn->n && md_pool_new((unsigned)threads, (unsigned)rn->n, &p) != MD_OK)
        p = NULL;
    for (size_t i = 0; i < rn->n; i++) {
        rn->jobs[i].run = rn;
        if (!p || md_pool_submit(p, run_job, &rn->jobs[i]) != MD_OK)
            run_job(&rn->jobs[i]);
    }
    while (bar && atomic_load(&rn->done) < rn->n) {
        draw_progress(atomic_load(&rn->done), rn->n);
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    md_pool_free(p); /* runs what is still queued, joins the workers */
    if (bar) {
        draw_progress(rn->n, rn->n);
        fputc('\n', stderr);
    }
}

/* ---- reporting -------------------------------------------------------------------------- */

static void json_job(md_buf *b, const job *j, int quality)
{
    md_buf_puts(b, "{\"file\":");
    md_buf_put_json_str(b, j->in_path);
    if (j->rc != MD_OK) {
        md_buf_puts(b, ",\"ok\":false,\"error\":{\"code\":");
        md_buf_put_json_str(b, md_err_name(j->rc));
        md_buf_puts(b, ",\"field\":");
        md_buf_put_json_str(b, j->err.field);
        md_buf_puts(b, ",\"message\":");
        md_buf_put_json_str(b, md_err_message(&j->err));
        md_buf_puts(b, "}}");
        return;
    }
    md_buf_puts(b, ",\"output\":");
    md_buf_put_json_str(b, j->out_path);
    md_buf_puts(b, ",\"ok\":true");
    if (j->smart_binary >= 0)
        md_buf_printf(b, ",\"smart_colormode\":\"%s\"", j->smart_binary ? "binary" : "color");
    if (quality)
        md_buf_printf(b, ",\"ssim_rgb\":%.6f,\"ssim_grey\":%.6f", j->ssim.rgb, j->ssim.luma);
    const vec_timing *t = &j->timing;
    md_buf_printf(b, ",\"svg_bytes\":%zu,\"paths\":%zu,\"ms\":%.3f,\"cpu_ms\":%.3f,\"timing_ms\":{\"decode\":%.3f,"
                     "\"cluster\":%.3f,\"trace\":%.3f,\"fit\":%.3f,\"svg\":%.3f,\"render\":%.3f,"
                     "\"ssim\":%.3f,\"convert_total\":%.3f}}",
                  j->bytes, j->paths, j->ms, j->cpu_ms, t->decode_ms, t->cluster_ms, t->trace_ms, t->fit_ms,
                  t->svg_ms, t->render_ms, t->ssim_ms, t->total_ms);
}

typedef struct summary {
    size_t ok, failed;
    double ssim_rgb, ssim_grey, bytes, paths, ms; /* means over the files that succeeded */
} summary;

static summary summarize(const job *jobs, size_t n)
{
    summary s = {0};
    for (size_t i = 0; i < n; i++) {
        const job *j = &jobs[i];
        if (j->rc != MD_OK) {
            s.failed++;
            continue;
        }
        s.ok++;
        s.ssim_rgb += j->ssim.rgb, s.ssim_grey += j->ssim.luma;
        s.bytes += (double)j->bytes, s.paths += (double)j->paths, s.ms += j->ms;
    }
    if (s.ok) {
        double k = 1.0 / (double)s.ok;
        s.ssim_rgb *= k, s.ssim_grey *= k, s.bytes *= k, s.paths *= k, s.ms *= k;
    }
    return s;
}

static void print_json(const job *jobs, size_t n, int dir, int quality, const vec_params *p,
                       double wall_ms)
{
    md_buf b;
    md_buf_init(&b, (size_t)1 << 30);
    if (!dir) {
        json_job(&b, &jobs[0], quality);
    } else {
        summary s = summarize(jobs, n);
        md_buf_puts(&b, "{\"files\":[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                md_buf_putc(&b, ',');
            json_job(&b, &jobs[i], quality);
        }
        md_buf_printf(&b, "],\"summary\":{\"ok\":%zu,\"failed\":%zu", s.ok, s.failed);
        if (quality)
            md_buf_printf(&b, ",\"mean_ssim_rgb\":%.6f,\"mean_ssim_grey\":%.6f", s.ssim_rgb,
                          s.ssim_grey);
        md_buf_printf(&b, ",\"mean_svg_bytes\":%.1f,\"mean_paths\":%.1f,\"mean_ms\":%.3f,"
                          "\"wall_ms\":%.3f},\"params\":",
                      s.bytes, s.paths, s.ms, wall_ms);
        vec_params_to_json(p, &b);
        md_buf_putc(&b, '}');
    }
    if (b.data)
        printf("%s\n", b.data);
    md_buf_free(&b);
}

static void print_table(const job *jobs, size_t n, int quality, double wall_ms)
{
    printf("%-40s %9s %9s %9s %7s %9s\n", "file", "ssim_rgb", "ssim_grey", "bytes", "paths", "ms");
    for (size_t i = 0; i < n; i++) {
        const job *j = &jobs[i];
        if (j->rc != MD_OK) {
            printf("%-40.40s FAILED: %s\n", j->name, md_err_name(j->rc));
            continue;
        }
        if (quality)
            printf("%-40.40s %9.4f %9.4f", j->name, j->ssim.rgb, j->ssim.luma);
        else
            printf("%-40.40s %9s %9s", j->name, "-", "-");
        printf(" %9zu %7zu %9.1f\n", j->bytes, j->paths, j->ms);
    }
    summary s = summarize(jobs, n);
    char label[64];
    snprintf(label, sizeof label, "mean of %zu (%zu failed)", s.ok, s.failed);
    if (quality)
        printf("%-40s %9.4f %9.4f", label, s.ssim_rgb, s.ssim_grey);
    else
        printf("%-40s %9s %9s", label, "-", "-");
    printf(" %9.0f %7.1f %9.1f\n", s.bytes, s.paths, s.ms);
    printf("wall time %.1f ms\n", wall_ms);
}

/* ---- the command ------------------------------------------------------------------------ */

static void free_jobs(job *jobs, size_t n)
{
    for (size_t i = 0; jobs && i < n; i++) {
        free(jobs[i].in_path);
        free(jobs[i].out_path);
    }
    free(jobs);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Jobs for every image in a directory; output directory created. */
static int plan_dir(const cli_args *a, const vec_params *p, job **jobs, size_t *n)
{
    char **names = NULL;
    if (!a->out)
        return usage_error("a directory input needs -o OUTPUT_DIRECTORY", NULL);
    if (cli_list_images(a->in, &names, n) != 0) {
        fprintf(stderr, "modeld vectorize: cannot read directory %s: %s\n", a->in, strerror(errno));
        return 2;
    }
    if (mkdir(a->out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "modeld vectorize: cannot create %s: %s\n", a->out, strerror(errno));
        for (size_t i = 0; i < *n; i++)
            free(names[i]);
        free(names);
        return 2;
    }
    *jobs = calloc(*n ? *n : 1, sizeof **jobs);
    int ok = *jobs != NULL;
    for (size_t i = 0; ok && i < *n; i++) {
        job *j = &(*jobs)[i];
        j->in_path = path_join(a->in, names[i], "");
        j->out_path = output_name(a->out, names[i], p->svgz, stem_collides(names, *n, i));
        j->name = j->in_path ? base_name(j->in_path) : "";
        ok = j->in_path && j->out_path;
    }
    for (size_t i = 0; i < *n; i++)
        free(names[i]);
    free(names);
    if (!ok)
        fprintf(stderr, "modeld vectorize: out of memory\n");
    return ok ? 0 : 2;
}

static int plan_file(const cli_args *a, const vec_params *p, job **jobs, size_t *n)
{
    if (a->out && strcmp(a->out, "-") == 0 && a->json)
        return usage_error("--json and -o - both want stdout", NULL);
    *n = 1;
    *jobs = calloc(1, sizeof **jobs);
    if (!*jobs)
        return 2;
    (*jobs)->in_path = strdup(a->in);
    (*jobs)->out_path = a->out ? strdup(a->out) : output_name("", a->in, p->svgz, 0);
    (*jobs)->name = (*jobs)->in_path ? base_name((*jobs)->in_path) : "";
    return (*jobs)->in_path && (*jobs)->out_path ? 0 : 2;
}

static int default_jobs(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_JOBS ? MAX_JOBS : (int)n;
}

int cmd_vectorize(int argc, char **argv)
{
    cli_args a;
    vec_params p;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc < 0 ? 0 : rc;
    rc = build_params(&a, &p);
    if (rc)
        return rc;
    pl_converter conv = PL_VTRACER;
    md_err cerr;
    if (a.converter && pl_converter_parse(a.converter, &conv, &cerr) != MD_OK)
        return usage_error(md_err_message(&cerr), a.converter);
    struct stat st;
    int dir = stat(a.in, &st) == 0 && S_ISDIR(st.st_mode);
    job *jobs = NULL;
    size_t n = 0;
    rc = dir ? plan_dir(&a, &p, &jobs, &n) : plan_file(&a, &p, &jobs, &n);
    if (rc) {
        free_jobs(jobs, n);
        return rc;
    }
    run rn = {.jobs = jobs, .n = n, .params = &p, .converter = conv, .quality = a.quality};
    uint64_t t0 = md_now_ns();
    run_all(&rn, dir ? (a.jobs ? a.jobs : default_jobs()) : 1, dir && !a.quiet && isatty(2));
    double wall_ms = (double)(md_now_ns() - t0) / 1e6;
    size_t failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].rc == MD_OK)
            continue;
        failed++;
        fprintf(stderr, "modeld vectorize: %s: %s: %s\n", jobs[i].in_path,
                md_err_name(jobs[i].rc), md_err_message(&jobs[i].err));
    }
    int to_stdout = !dir && a.out && strcmp(a.out, "-") == 0;
    if (a.json)
        print_json(jobs, n, dir, a.quality, &p, wall_ms);
    else if (!a.quiet && !to_stdout)
        print_table(jobs, n, a.quality, wall_ms);
    free_jobs(jobs, n);
    return failed ? 1 : 0;
}
