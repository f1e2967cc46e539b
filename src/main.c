/* main.c - the modeld binary: dispatches to the sub-commands in src/cli/.
 *
 * The commands are declared weak so that a build of a subset of the subsystems still links;
 * a command whose code is not in the build says so instead of crashing.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#pragma weak cmd_serve
#pragma weak cmd_routes
#pragma weak cmd_keys
#pragma weak cmd_vectorize
#pragma weak cmd_enhance
#pragma weak cmd_infer
#pragma weak cmd_onnx_test
#pragma weak cmd_models
#pragma weak cmd_features
#pragma weak cmd_worker

typedef struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static void usage(FILE *f, const command *cmds, size_t n)
{
    fprintf(f, "modeld %s - serves vectorize, enhance and predict models over HTTP\n\n"
               "usage: modeld <command> [options]   (modeld <command> --help for details)\n\n"
               "commands:\n",
            MODELD_VERSION);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "  %-11s %s\n", cmds[i].name, cmds[i].summary);
}

int main(int argc, char **argv)
{
    const command cmds[] = {
        {"serve", cmd_serve, "start the HTTP server"},
        {"routes", cmd_routes, "print the HTTP route table (or --openapi: the API document)"},
        {"keys", cmd_keys, "create, list and revoke API keys"},
        {"vectorize", cmd_vectorize, "trace PNG/JPEG/WebP/TIFF/BMP images to SVG"},
        {"features", cmd_features, "print the AI models' input features of images"},
        {"enhance", cmd_enhance, "upscale photos 2-8x with the ESRGAN networks"},
        {"models", cmd_models, "list, inspect, validate, activate and roll back models"},
        {"worker", cmd_worker, "run queued jobs of a data dir (no HTTP), beside or instead of serve's workers"},
        {"infer", cmd_infer, "run an ONNX or XGBoost model on .npy inputs"},
        {"onnx-test", cmd_onnx_test, "run ONNX backend conformance test cases"},
    };
    size_t n = sizeof cmds / sizeof cmds[0];
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout, cmds, n);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("modeld %s\n", MODELD_VERSION);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[1], cmds[i].name) != 0)
            continue;
        if (!cmds[i].fn) {
            fprintf(stderr, "modeld: command '%s' is not part of this build\n", argv[1]);
            return 2;
        }
        return cmds[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "modeld: unknown command '%s'\n\n", argv[1]);
    usage(stderr, cmds, n);
    return 2;
}
