/* cli.h - the sub-commands of the modeld binary. Each lives in its own file in src/cli/ and
 * gets argv with argv[0] = the sub-command name. Exit codes: 0 ok, 1 some work failed,
 * 2 usage or configuration error. */
#ifndef MD_CLI_H
#define MD_CLI_H

int cmd_serve(int argc, char **argv);
int cmd_routes(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_vectorize(int argc, char **argv);
int cmd_enhance(int argc, char **argv);
int cmd_infer(int argc, char **argv);
int cmd_onnx_test(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_worker(int argc, char **argv);

#endif
