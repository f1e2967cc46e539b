/* enhance.c - `modeld enhance`: photos upscaled from the shell through the same pl_enhance() the
 * job workers call, with the networks of the data dir's model repository (`make enhance-models`
 * converts them there).
 *
 *   modeld enhance photo.jpg -o big.png [--scale 4] [--quality best] [--face] [--ensemble]
 *                  [--data-dir DIR]
 *   modeld enhance indir/ -o outdir/ [--format png] ...
 *
 * Invariants:
 *   1. Options are checked (pl_enh_quality_parse, pl_enh_model_name) before any file is read:
 *      a bad value exits 2 naming the option.
 *   2. Each file succeeds or fails on its own; a failure is printed with its error and the run
 *      exits 1, the others are still written.
 *   3. stdout carries one result line per file; the progress bar (per tile) goes to stderr,
 *      only when stderr is a terminal.
 */
#include "cli/args.h"
#include "cli/cli.h"

#include "base/clock.h"
#include "image/image.h"
#include "models/models.h"
#include "pipelines/pipelines.h"
#include "store/store.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILE_BYTES ((long)64 << 20)

static const char USAGE[] =
    "usage: modeld enhance IN -o OUT [options]\n"
    "  IN a file:       OUT is the result file (default IN_x<scale>.<format>)\n"
    "  IN a directory:  every .png .jpg .jpeg .webp .tif .tiff .bmp in it goes to the directory\n"
    "                   OUT (created if missing) as <name>.<format>\n"
    "options:\n"
    "  --scale N        2 | 3 | 4 (default) | 8\n"
    "  --quality Q      fast (esrgan-slim) | balanced (esrgan-medium, default) | best "
    "(esrgan-thick)\n"
    "  --format F       jpg | png | webp (default: from OUT's extension, else png)\n"
    "  --jpeg-quality N 1..100 for jpg and webp (default 90)\n"
    "  --face           detect faces (OpenCV Haar cascade) and run them through the strongest\n"
    "                   network, feathered into the result\n"
    "  --ensemble       self-ensemble: the network on the 8 flips and rotations of each tile,\n"
    "                   averaged (a little more fidelity, 8 times the network time)\n"
    "  --data-dir DIR   where the converted networks are (default $MODELD_DATA_DIR or ./var)\n"
    "  --threads N      network threads (default: all cores)\n"
    "  -q, --quiet      no progress bar\n";

typedef struct enh_args {
    const char *in, *out, *scale, *quality, *format, *jpeg_quality, *data_dir, *threads;
    int face, ensemble, quiet;
} enh_args;

static const cli_opt OPTS[] = {
    {"-o", offsetof(enh_args, out)},
    {"--scale", offsetof(enh_args, scale)},
    {"--quality", offsetof(enh_args, quality)},
    {"--format", offsetof(enh_args, format)},
    {"--jpeg-quality", offsetof(enh_args, jpeg_quality)},
    {"--data-dir", offsetof(enh_args, data_dir)},
    {"--threads", offsetof(enh_args, threads)},
};

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int format_parse(const char *s, img_format *f)
{
    if (strcasecmp(s, "jpg") == 0 || strcasecmp(s, "jpeg") == 0)
        *f = IMG_FMT_JPEG;
    else if (strcasecmp(s, "png") == 0)
        *f = IMG_FMT_PNG;
    else if (strcasecmp(s, "webp") == 0)
        *f = IMG_FMT_WEBP;
    else
        return -1;
    return 0;
}

static const char *format_ext(img_format f)
{
    return f == IMG_FMT_JPEG ? "jpg" : f == IMG_FMT_WEBP ? "webp" : "png";
}

static int parse_args(int argc, char **argv, enh_args *a, pl_enh_in *in, int *threads)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int r = cli_take_value_opt(argc, argv, &i, OPTS, sizeof OPTS / sizeof OPTS[0], a);
        if (r < 0)
            return cli_usage_error("enhance", USAGE, "missing value for %s", s);
        if (r > 0)
            continue;
        if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0)
            return fputs(USAGE, stdout), -1;
        if (strcmp(s, "--face") == 0)
            a->face = 1;
        else if (strcmp(s, "--ensemble") == 0)
            a->ensemble = 1;
        else if (strcmp(s, "-q") == 0 || strcmp(s, "--quiet") == 0)
            a->quiet = 1;
        else if (s[0] == '-' || a->in)
            return cli_usage_error("enhance", USAGE, "unexpected argument %s", s);
        else
            a->in = s;
    }
    if (!a->in)
        return cli_usage_error("enhance", USAGE, "no input%s", "");
    md_err e;
    in->scale = 4;
    in->quality = PL_ENH_BALANCED;
    in->face_enhance = a->face;
    in->ensemble = a->ensemble;
    if (a->scale && parse_int(a->scale, 2, 8, &in->scale) != 0)
        return cli_usage_error("enhance", USAGE, "--scale must be 2, 3, 4 or 8, got %s", a->scale);
    if (a->quality && pl_enh_quality_parse(a->quality, &in->quality, &e) != MD_OK)
        return cli_usage_error("enhance", USAGE, "--quality must be fast, balanced or best, got %s",
                               a->quality);
    char name[32];
    if (pl_enh_model_name(in->quality, in->scale, name, sizeof name, &e) != MD_OK)
        return cli_usage_error("enhance", USAGE, "--scale must be 2, 3, 4 or 8, got %s", a->scale);
    const char *ext = a->out ? strrchr(a->out, '.') : NULL;
    in->out_format = IMG_FMT_PNG;
    if (a->format && format_parse(a->format, &in->out_format) != 0)
        return cli_usage_error("enhance", USAGE, "--format must be jpg, png or webp, got %s",
                               a->format);
    if (!a->format && ext && format_parse(ext + 1, &in->out_format) != 0)
        in->out_format = IMG_FMT_PNG; /* an unknown extension: PNG bytes under that name */
    if (a->jpeg_quality && parse_int(a->jpeg_quality, 1, 100, &in->jpeg_quality) != 0)
        return cli_usage_error("enhance", USAGE, "--jpeg-quality must be in 1..100, got %s",
                               a->jpeg_quality);
    *threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (a->threads && parse_int(a->threads, 1, 256, threads) != 0)
        return cli_usage_error("enhance", USAGE, "--threads must be in 1..256, got %s", a->threads);
    a->data_dir = cli_data_dir(a->data_dir);
    return 0;
}

/* ---- progress ---- */

typedef struct bar {
    const char *name;
    int on;
} bar;

static void draw(void *ctx, double f, const char *stage)
{
    const bar *b = ctx;
    if (!b->on)
        return;
    int n = (int)(f * 30 + 0.5);
    fprintf(stderr, "\r%-24.24s [%.*s%*s] %3d%% %-14.14s", b->name, n,
            "##############################", 30 - n, "", (int)(f * 100 + 0.5), stage);
    fflush(stderr);
}

static int read_file(const char *path, uint8_t **data, size_t *len, md_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return md_fail(err, MD_E_FILE_NOT_FOUND, "file", "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    int rc = MD_OK;
    if (n <= 0 || n > MAX_FILE_BYTES) {
        rc = md_fail(err, MD_E_TOO_LARGE, "file", "%s: size %ld (at most %ld)", path, n,
                     MAX_FILE_BYTES);
    } else {
        *data = malloc((size_t)n);
        if (!*data || fread(*data, 1, (size_t)n, f) != (size_t)n)
            rc = md_fail(err, MD_E_IO, "file", "cannot read %s", path);
    }
    *len = rc == MD_OK ? (size_t)n : 0;
    fclose(f);
    return rc;
}

static int write_file(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, len, f) == len;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return -1;
    }
    return 0;
}

/* One file: read, enhance, write; prints one line. Returns 0 or 1. */
static int one(pl_ctx *cx, pl_enh_in *in, const char *src, const char *dst, int quiet)
{
    uint8_t *data = NULL;
    size_t len = 0;
    md_err e;
    md_err_clear(&e);
    pl_enh_out out = {0};
    bar b = {.name = strrchr(src, '/') ? strrchr(src, '/') + 1 : src,
             .on = !quiet && isatty(STDERR_FILENO)};
    md_cancel c;
    md_cancel_init(&c, 0);
    c.progress = draw;
    c.progress_ctx = &b;
    cx->cancel = &c;
    int rc = read_file(src, &data, &len, &e);
    if (rc == MD_OK) {
        in->image = data;
        in->image_len = len;
        rc = pl_enhance(cx, in, &out, &e);
    }
    if (b.on)
        fputs("\r\033[K", stderr);
    if (rc == MD_OK && write_file(dst, out.image.data, out.image.len) != 0)
        rc = md_fail(&e, MD_E_IO, "output", "cannot write %s", dst);
    if (rc == MD_OK && in->face_enhance)
        printf("%s -> %s: %dx%d, %zu bytes, %d tiles of %d px, %d face%s, %.0f ms\n", src, dst,
               out.width, out.height, out.image.len, out.tiles, out.tile_size, out.faces_found,
               out.faces_found == 1 ? "" : "s", out.total_ms);
    else if (rc == MD_OK)
        printf("%s -> %s: %dx%d, %zu bytes, %d tiles of %d px, %.0f ms\n", src, dst, out.width,
               out.height, out.image.len, out.tiles, out.tile_size, out.total_ms);
    else
        fprintf(stderr, "modeld enhance: %s: %s (%s%s%s)\n", src, md_err_message(&e),
                md_err_name(rc), e.field[0] ? ", field " : "", e.field);
    pl_enh_out_free(&out);
    free(data);
    cx->cancel = NULL;
    return rc == MD_OK ? 0 : 1;
}

/* Every image of a directory, in name order. */
static int run_dir(pl_ctx *cx, pl_enh_in *in, const enh_args *a)
{
    const char *outdir = a->out ? a->out : a->in;
    if (mkdir(outdir, 0777) != 0 && access(outdir, W_OK) != 0) {
        fprintf(stderr, "modeld enhance: cannot make %s\n", outdir);
        return 1;
    }
    char **names = NULL;
    size_t n = 0;
    if (cli_list_images(a->in, &names, &n) != 0) {
        fprintf(stderr, "modeld enhance: cannot open %s\n", a->in);
        return 1;
    }
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char src[PATH_MAX], dst[PATH_MAX];
        size_t stem = strrchr(names[i], '.') - names[i];
        snprintf(src, sizeof src, "%s/%s", a->in, names[i]);
        snprintf(dst, sizeof dst, "%s/%.*s_x%d.%s", outdir, (int)stem, names[i], in->scale,
                 format_ext(in->out_format));
        bad |= one(cx, in, src, dst, a->quiet);
        free(names[i]);
    }
    free(names);
    if (n == 0)
        fprintf(stderr, "modeld enhance: no images in %s\n", a->in);
    return bad || n == 0;
}

static int open_registry(const enh_args *a, int threads, store **st, mdl_registry **reg)
{
    md_err e;
    md_err_clear(&e);
    store_opts so = {.data_dir = a->data_dir, .url = cli_store_url(NULL)};
    if (store_open(&so, st, &e) != MD_OK) {
        fprintf(stderr, "modeld enhance: cannot open the data dir %s: %s\n", a->data_dir,
                md_err_message(&e));
        return 1;
    }
    mdl_registry_opts o = {
        .data_dir = a->data_dir, .store = *st, .load_all = false, .onnx_threads = threads};
    if (mdl_registry_open(&o, reg, &e) != MD_OK) {
        fprintf(stderr, "modeld enhance: cannot open the model registry: %s\n", md_err_message(&e));
        return 1;
    }
    return 0;
}

int cmd_enhance(int argc, char **argv)
{
    enh_args a;
    pl_enh_in in = {0};
    int threads = 1;
    int rc = parse_args(argc, argv, &a, &in, &threads);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    store *st = NULL;
    mdl_registry *reg = NULL;
    rc = open_registry(&a, threads, &st, &reg);
    pl_ctx cx = {.models = reg};
    struct stat sb;
    if (rc == 0 && stat(a.in, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        rc = run_dir(&cx, &in, &a);
    } else if (rc == 0) {
        char def[PATH_MAX];
        const char *dot = strrchr(a.in, '.');
        int stem = dot ? (int)(dot - a.in) : (int)strlen(a.in);
        snprintf(def, sizeof def, "%.*s_x%d.%s", stem, a.in, in.scale, format_ext(in.out_format));
        rc = one(&cx, &in, a.in, a.out ? a.out : def, a.quiet);
    }
    mdl_registry_close(reg);
    store_unref(st);
    return rc;
}
