/* features.c - `modeld features`: the AI models' input features of images, from the shell.
 * Training (training/vectorize/) calls it on thousands of files at once, so the numbers a model
 * is trained on come from the same vec_features() that serves it.
 *
 *   modeld features [--json] IMAGE...      one line per image, in the order given
 *   modeld features [--json] -             the image paths are read from stdin, one a line
 *
 * Output with --json: one JSON object per line,
 *   {"file": "<path>", "width": W, "height": H, "features": {"<name>": value, ...}}
 * with the features in vec_feature_names() order, or {"file": ..., "error": "..."} for a file
 * that cannot be read. Without --json: a tab-separated table with a header line.
 *
 * Invariants:
 *   1. One failing file never stops the run: it gets its error line and the exit code is 1.
 *   2. stdout carries results only; it is flushed per line so a reader sees progress.
 */
#include "cli/cli.h"

#include "base/buf.h"
#include "image/image.h"
#include "vectorize/vec.h"

#include <stdio.h>
#include <string.h>

static const char USAGE[] =
    "usage: modeld features [--json] IMAGE...   (or - : paths on stdin)\n"
    "  prints the AI models' input features of each image, one line each\n"
    "  --json   one JSON object per line instead of a tab-separated table\n";

static void print_header(void)
{
    fputs("file\twidth\theight", stdout);
    for (const char *const *n = vec_feature_names(); *n; n++)
        printf("\t%s", *n);
    fputc('\n', stdout);
}

/* One line for one file into out (reset first). Returns 0 when the features were computed. */
static int one_file(const char *path, int json, md_buf *out)
{
    md_image *img = NULL;
    md_err err = {0};
    float f[VEC_N_FEATURES];
    md_buf_reset(out);
    int rc = img_load_file(path, NULL, &img, &err);
    if (rc == MD_OK)
        rc = vec_features(img, f, &err);
    if (json) {
        md_buf_puts(out, "{\"file\": ");
        md_buf_put_json_str(out, path);
    } else {
        md_buf_printf(out, "%s", path);
    }
    if (rc != MD_OK) {
        if (json) {
            md_buf_puts(out, ", \"error\": ");
            md_buf_put_json_str(out, md_err_message(&err));
            md_buf_puts(out, "}\n");
        } else {
            md_buf_printf(out, "\terror: %s\n", md_err_message(&err));
        }
        goto out;
    }
    const char *const *names = vec_feature_names();
    if (json)
        md_buf_printf(out, ", \"width\": %d, \"height\": %d, \"features\": {", img->width,
                      img->height);
    else
        md_buf_printf(out, "\t%d\t%d", img->width, img->height);
    for (int i = 0; i < VEC_N_FEATURES; i++) {
        if (json)
            md_buf_printf(out, "%s\"%s\": %.9g", i ? ", " : "", names[i], (double)f[i]);
        else
            md_buf_printf(out, "\t%.9g", (double)f[i]);
    }
    md_buf_puts(out, json ? "}}\n" : "\n");
out:
    img_free(img);
    return rc;
}

/* Paths from stdin, one a line; empty lines are skipped. */
static int from_stdin(int json, md_buf *out)
{
    char line[4096];
    int failed = 0;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            continue;
        failed |= one_file(line, json, out) != MD_OK;
        fwrite(out->data, 1, out->len, stdout);
        fflush(stdout);
    }
    return failed;
}

int cmd_features(int argc, char **argv)
{
    int json = 0, first = 0, nfiles = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "modeld features: unknown option %s\n\n%s", argv[i], USAGE);
            return 2;
        } else {
            first = first ? first : i;
            nfiles++;
        }
    }
    if (!nfiles) {
        fprintf(stderr, "modeld features: no image given\n\n%s", USAGE);
        return 2;
    }
    md_buf out;
    md_buf_init(&out, 1 << 20);
    int failed = 0;
    if (!json)
        print_header();
    for (int i = first; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            continue;
        if (strcmp(argv[i], "-") == 0) {
            failed |= from_stdin(json, &out);
            continue;
        }
        failed |= one_file(argv[i], json, &out) != MD_OK;
        fwrite(out.data, 1, out.len, stdout);
        fflush(stdout);
    }
    md_buf_free(&out);
    return failed ? 1 : 0;
}
