/* onnx_test.c - `modeld onnx-test DIR...`: run ONNX backend test cases (the ONNX project's
 * conformance suite, Debian libonnx-testdata) against our engine.
 *
 * A DIR is either one case (it holds model.onnx) or a folder of cases. Each case runs in a
 * child process with a time limit, so a crash or a hang is one failed case, not a failed run.
 * A case passes when every test_data_set_N gives the expected outputs under the ONNX rule:
 * same count, dtype and shape, |got - exp| <= 1e-7 + 1e-3 * |exp| (NaN equals NaN).
 * A case whose model uses something we do not support (load or run answers MD_E_UNSUPPORTED)
 * is "unsupported": listed, never counted as a pass. The last line is "N passed, N failed".
 * Exit status: 0 when nothing failed, 1 when some case failed, 2 on usage errors.
 */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "onnx/onnx.h"

#define MAX_IO 64
#define MAX_FILE ((size_t)1 << 30)

enum { CASE_PASS = 0, CASE_FAIL = 1, CASE_UNSUPPORTED = 3 };

typedef struct tally {
    int pass, fail, unsupported, skipped;
} tally;

#define MAX_SKIP 32

typedef struct opts {
    int timeout_s;
    int quiet;
    const char *skip[MAX_SKIP]; /* case names whose expected data is known to be wrong */
    int n_skip;
} opts;

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Whole file into memory (new, free()); NULL when missing or larger than MAX_FILE. */
static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat st;
    void *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && (size_t)st.st_size <= MAX_FILE) {
        buf = malloc((size_t)st.st_size + 1);
        if (buf && fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)st.st_size;
    }
    fclose(f);
    return buf;
}

#define MAX_SEQ 256

/* A sequence read from a SequenceProto file: a view over parsed element tensors. */
typedef struct seq_value {
    onnx_tensor view;          /* kind ONNX_KIND_SEQUENCE, data = arr */
    int n;
    onnx_tensor *parts[MAX_SEQ];
    onnx_tensor arr[MAX_SEQ];
} seq_value;

static void seq_free(seq_value *s)
{
    for (int i = 0; s && i < s->n; i++)
        onnx_tensor_free(s->parts[i]);
    free(s);
}

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

/* The next field of a hand-read protobuf message (SequenceProto, OptionalProto) at *p: its
 * number in *field and, for a length-delimited field, its payload in *val / *len (*val = NULL
 * for a varint field, whose value is skipped). Other wire types and truncated keys, varints
 * or lengths fail with MD_E_MODEL_INVALID naming `what`; *p then stays where it failed. */
static int next_field(const uint8_t **p, const uint8_t *end, const char *what, const char *proto,
                      int *field, const uint8_t **val, size_t *len, md_err *err)
{
    uint64_t key, v;
    if (read_varint(p, end, &key))
        return md_fail(err, MD_E_MODEL_INVALID, what, "bad %s", proto);
    *field = (int)(key >> 3);
    int wt = (int)(key & 7);
    *val = NULL;
    *len = 0;
    if (wt != 0 && wt != 2)
        return md_fail(err, MD_E_MODEL_INVALID, what, "unexpected wire type %d", wt);
    if (read_varint(p, end, &v))
        return md_fail(err, MD_E_MODEL_INVALID, what, wt == 0 ? "bad varint" : "bad length");
    if (wt == 2) {
        if (v > (uint64_t)(end - *p))
            return md_fail(err, MD_E_MODEL_INVALID, what, "bad length");
        *val = *p;
        *len = (size_t)v;
        *p += v;
    }
    return MD_OK;
}

/* onnx.SequenceProto (onnx-data.proto, which Debian does not ship), read by hand: field 2 is
 * the element type, field 3 the tensors; sequences of maps, sparse tensors or optionals are
 * not supported. Ownership: *out is new (seq_free). */
static int parse_sequence(const uint8_t *b, size_t len, int decl_dtype, seq_value **out,
                          md_err *err)
{
    seq_value *s = calloc(1, sizeof *s);
    if (!s)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    const uint8_t *p = b, *end = b + len;
    int rc = MD_OK;
    while (rc == MD_OK && p < end) {
        int field;
        const uint8_t *val;
        size_t vlen;
        rc = next_field(&p, end, "sequence", "SequenceProto", &field, &val, &vlen, err);
        /* a varint field (2, elem_type) says tensor/map/...: the dtype comes from the elements */
        if (rc || !val)
            continue;
        if (field == 3 && s->n < MAX_SEQ)
            rc = onnx_tensor_parse(val, vlen, &s->parts[s->n++], err);
        else if (field >= 4 && field <= 7)
            rc = md_fail(err, MD_E_UNSUPPORTED, "sequence", "nested or sparse sequence values");
        else if (field == 3)
            rc = md_fail(err, MD_E_UNSUPPORTED, "sequence", "more than %d elements", MAX_SEQ);
    }
    for (int i = 0; rc == MD_OK && i < s->n; i++)
        s->arr[i] = *s->parts[i];
    int elem = s->n && s->parts[0] ? s->parts[0]->dtype : decl_dtype;
    s->view = (onnx_tensor){.dtype = elem, .rank = 1, .dims = {s->n}, .data = s->arr,
                            .kind = ONNX_KIND_SEQUENCE};
    if (rc) {
        seq_free(s);
        return rc;
    }
    *out = s;
    return MD_OK;
}

/* An optional read from an OptionalProto file: empty, a tensor or a sequence. */
typedef struct opt_value {
    onnx_tensor view; /* kind ONNX_KIND_OPTIONAL, data = &inner or NULL */
    onnx_tensor inner;
    onnx_tensor *tensor;
    seq_value *seq;
} opt_value;

static void opt_free(opt_value *o)
{
    if (!o)
        return;
    onnx_tensor_free(o->tensor);
    seq_free(o->seq);
    free(o);
}

/* onnx.OptionalProto, read by hand like SequenceProto: field 3 a tensor, field 5 a sequence,
 * neither = empty. Ownership: *out is new (opt_free). */
static int parse_optional(const uint8_t *b, size_t len, int decl_dtype, opt_value **out,
                          md_err *err)
{
    opt_value *o = calloc(1, sizeof *o);
    if (!o)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    const uint8_t *p = b, *end = b + len;
    int rc = MD_OK;
    while (rc == MD_OK && p < end) {
        int field;
        const uint8_t *val;
        size_t vlen;
        rc = next_field(&p, end, "optional", "OptionalProto", &field, &val, &vlen, err);
        if (rc || !val)
            continue; /* a varint field (2, elem_type) carries nothing we need */
        if (field == 3 && !o->tensor && !o->seq)
            rc = onnx_tensor_parse(val, vlen, &o->tensor, err);
        else if (field == 5 && !o->tensor && !o->seq)
            rc = parse_sequence(val, vlen, decl_dtype, &o->seq, err);
        else if (field >= 3)
            rc = md_fail(err, MD_E_UNSUPPORTED, "optional", "optional of a map or sparse tensor");
    }
    if (rc) {
        opt_free(o);
        return rc;
    }
    if (o->tensor || o->seq)
        o->inner = o->tensor ? *o->tensor : o->seq->view;
    o->view = (onnx_tensor){.kind = ONNX_KIND_OPTIONAL, .dtype = o->tensor || o->seq ? o->inner.dtype
                                                                                    : decl_dtype,
                            .data = o->tensor || o->seq ? &o->inner : NULL};
    *out = o;
    return MD_OK;
}

/* Load prefix_0.pb, prefix_1.pb, ... in numeric order; values the model declares as sequences
 * or optionals are read as SequenceProto / OptionalProto. Returns the count, -1 on a bad file. */
static int load_pbs(const char *dir, const char *prefix, const onnx_value_info *decl,
                    size_t n_decl, onnx_tensor **out, seq_value **seqs, opt_value **opts,
                    char *why, size_t why_len)
{
    int n = 0;
    for (; n < MAX_IO; n++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s_%d.pb", dir, prefix, n);
        size_t len;
        void *buf = read_file(path, &len);
        if (!buf)
            break;
        md_err err;
        md_err_clear(&err);
        int kind = (size_t)n < n_decl ? decl[n].kind : ONNX_KIND_TENSOR;
        int rc = kind == ONNX_KIND_SEQUENCE ? parse_sequence(buf, len, decl[n].dtype, &seqs[n], &err)
               : kind == ONNX_KIND_OPTIONAL ? parse_optional(buf, len, decl[n].dtype, &opts[n], &err)
                                            : onnx_tensor_parse(buf, len, &out[n], &err);
        free(buf);
        if (rc) {
            snprintf(why, why_len, "%s_%d.pb: %s", prefix, n, md_err_message(&err));
            return rc == MD_E_UNSUPPORTED ? -2 : -1;
        }
    }
    return n;
}

static int close_enough(const onnx_tensor *got, const onnx_tensor *exp, int64_t i)
{
    if (exp->dtype == ONNX_FLOAT || exp->dtype == ONNX_DOUBLE) {
        double g = exp->dtype == ONNX_FLOAT ? ((const float *)got->data)[i]
                                            : ((const double *)got->data)[i];
        double e = exp->dtype == ONNX_FLOAT ? ((const float *)exp->data)[i]
                                            : ((const double *)exp->data)[i];
        if (isnan(e) || isnan(g))
            return isnan(e) && isnan(g);
        if (g == e)
            return 1;
        return fabs(g - e) <= 1e-7 + 1e-3 * fabs(e);
    }
    if (exp->dtype == ONNX_STRING)
        return strcmp(((const char *const *)got->data)[i], ((const char *const *)exp->data)[i]) == 0;
    size_t es = onnx_dtype_size(exp->dtype);
    return memcmp((const char *)got->data + (size_t)i * es, (const char *)exp->data + (size_t)i * es,
                  es) == 0;
}

static int compare(const onnx_tensor *got, const onnx_tensor *exp, size_t idx, char *why,
                   size_t why_len);

/* A sequence output: same length, then each element by the tensor rule. */
static int compare_seq(const onnx_tensor *got, const seq_value *exp, size_t idx, char *why,
                       size_t why_len)
{
    if (got->kind != ONNX_KIND_SEQUENCE || got->dims[0] != exp->n) {
        snprintf(why, why_len, "output %zu: not a sequence of %d elements", idx, exp->n);
        return 0;
    }
    for (int i = 0; i < exp->n; i++)
        if (!compare(&((const onnx_tensor *)got->data)[i], exp->parts[i], idx, why, why_len))
            return 0;
    return 1;
}

/* An optional output: both empty, or what they hold compares equal. */
static int compare_opt(const onnx_tensor *got, const opt_value *exp, size_t idx, char *why,
                       size_t why_len)
{
    if (got->kind != ONNX_KIND_OPTIONAL || (got->data == NULL) != (exp->view.data == NULL)) {
        snprintf(why, why_len, "output %zu: optional differs in presence", idx);
        return 0;
    }
    if (!got->data)
        return 1;
    return exp->seq ? compare_seq(got->data, exp->seq, idx, why, why_len)
                    : compare(got->data, exp->tensor, idx, why, why_len);
}

static int compare(const onnx_tensor *got, const onnx_tensor *exp, size_t idx, char *why,
                   size_t why_len)
{
    /* A seq(map) output (ZipMap) is compared as its dense [N, C] value table: the .pb files
     * cannot hold sequences (no onnx-data.proto here); its keys are unit-tested.
     * numpy has no bfloat16, so ONNX's test data holds bfloat16 values as uint16 bits. */
    bool bf16_bits = got->dtype == ONNX_BFLOAT16 && exp->dtype == ONNX_UINT16;
    if ((got->kind != ONNX_KIND_TENSOR && got->kind != ONNX_KIND_SEQ_MAP) ||
        (got->dtype != exp->dtype && !bf16_bits)) {
        snprintf(why, why_len, "output %zu: dtype %s, expected %s", idx,
                 onnx_dtype_name(got->dtype), onnx_dtype_name(exp->dtype));
        return 0;
    }
    if (got->rank != exp->rank ||
        memcmp(got->dims, exp->dims, sizeof(int64_t) * (size_t)exp->rank) != 0) {
        snprintf(why, why_len, "output %zu: shape differs (rank %d vs %d)", idx, got->rank,
                 exp->rank);
        return 0;
    }
    int64_t n = onnx_tensor_numel(exp);
    for (int64_t i = 0; i < n; i++)
        if (!close_enough(got, exp, i)) {
            snprintf(why, why_len, "output %zu: element %lld differs", idx, (long long)i);
            return 0;
        }
    return 1;
}

/* One test_data_set: bind inputs by position, run, compare. */
static int run_set(const onnx_model *m, const char *dir, char *why, size_t why_len)
{
    onnx_tensor *in[MAX_IO] = {0}, *exp[MAX_IO] = {0};
    seq_value *in_seq[MAX_IO] = {0}, *exp_seq[MAX_IO] = {0};
    opt_value *in_opt[MAX_IO] = {0}, *exp_opt[MAX_IO] = {0};
    size_t n_decl, n_odecl;
    const onnx_value_info *decl = onnx_model_inputs(m, &n_decl);
    const onnx_value_info *odecl = onnx_model_outputs(m, &n_odecl);
    int ni = load_pbs(dir, "input", decl, n_decl, in, in_seq, in_opt, why, why_len);
    int ne = ni < 0 ? -1
                    : load_pbs(dir, "output", odecl, n_odecl, exp, exp_seq, exp_opt, why, why_len);
    int status = CASE_FAIL;
    onnx_result *r = NULL;
    if (ni == -2 || ne == -2) {
        status = CASE_UNSUPPORTED;
        goto out;
    }
    if (ni < 0 || ne < 0)
        goto out;
    onnx_tensor inputs[MAX_IO];
    for (int i = 0; i < ni; i++) {
        inputs[i] = in_seq[i] ? in_seq[i]->view : in_opt[i] ? in_opt[i]->view : *in[i];
        if ((size_t)i < n_decl && decl[i].dtype == ONNX_BFLOAT16 && inputs[i].dtype == ONNX_UINT16)
            inputs[i].dtype = ONNX_BFLOAT16; /* bfloat16 bits stored as uint16 (see compare) */
    }
    md_err err;
    md_err_clear(&err);
    int rc = onnx_run(m, inputs, (size_t)ni, NULL, &r, &err);
    if (rc) {
        snprintf(why, why_len, "run: %s", md_err_message(&err));
        status = rc == MD_E_UNSUPPORTED ? CASE_UNSUPPORTED : CASE_FAIL;
        goto out;
    }
    if (onnx_result_count(r) != (size_t)ne) {
        snprintf(why, why_len, "%zu outputs, expected %d", onnx_result_count(r), ne);
        goto out;
    }
    status = CASE_PASS;
    for (int i = 0; i < ne && status == CASE_PASS; i++)
    {
        const onnx_tensor *got = onnx_result_output(r, (size_t)i);
        if (exp_seq[i] ? !compare_seq(got, exp_seq[i], (size_t)i, why, why_len)
            : exp_opt[i] ? !compare_opt(got, exp_opt[i], (size_t)i, why, why_len)
                         : !compare(got, exp[i], (size_t)i, why, why_len))
            status = CASE_FAIL;
    }
out:
    onnx_result_free(r);
    for (int i = 0; i < MAX_IO; i++) {
        onnx_tensor_free(in[i]);
        onnx_tensor_free(exp[i]);
        seq_free(in_seq[i]);
        seq_free(exp_seq[i]);
        opt_free(in_opt[i]);
        opt_free(exp_opt[i]);
    }
    return status;
}

/* The child's work: load the model, run every data set. */
static int run_case(const char *dir, char *why, size_t why_len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    onnx_model *m = NULL;
    md_err err;
    md_err_clear(&err);
    int rc = onnx_model_load_file(path, NULL, &m, &err);
    if (rc) {
        snprintf(why, why_len, "load: %s", md_err_message(&err));
        return rc == MD_E_UNSUPPORTED ? CASE_UNSUPPORTED : CASE_FAIL;
    }
    int status = CASE_PASS, sets = 0;
    for (int s = 0; status == CASE_PASS; s++) {
        char set[4096];
        snprintf(set, sizeof set, "%s/test_data_set_%d", dir, s);
        if (!is_dir(set))
            break;
        status = run_set(m, set, why, why_len);
        sets++;
    }
    if (status == CASE_PASS && sets == 0) {
        snprintf(why, why_len, "no test_data_set_0");
        status = CASE_FAIL;
    }
    onnx_model_free(m);
    return status;
}

/* Fork, run the case in the child, wait up to timeout_s. why gets the child's reason. */
static int run_isolated(const char *dir, int timeout_s, char *why, size_t why_len)
{
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(why, why_len, "pipe: %s", strerror(errno));
        return CASE_FAIL;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        snprintf(why, why_len, "fork: %s", strerror(errno));
        return CASE_FAIL;
    }
    if (pid == 0) {
        close(fds[0]);
        char msg[512] = "";
        int st = run_case(dir, msg, sizeof msg);
        ssize_t w = write(fds[1], msg, strlen(msg));
        (void)w;
        close(fds[1]);
        exit(st); /* exit, not _exit: LeakSanitizer checks the child too */
    }
    close(fds[1]);
    size_t got = 0;
    why[0] = '\0';
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int timed_out = 0;
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = timeout_s * 1000L - ((now.tv_sec - t0.tv_sec) * 1000L +
                                         (now.tv_nsec - t0.tv_nsec) / 1000000L);
        if (left <= 0) {
            timed_out = 1;
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int pr = poll(&p, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        ssize_t r = read(fds[0], why + got, why_len - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got >= why_len - 1)
            got = why_len - 1;
        why[got] = '\0';
    }
    close(fds[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    if (timed_out) {
        snprintf(why, why_len, "timed out after %d s", timeout_s);
        return CASE_FAIL;
    }
    if (WIFSIGNALED(ws)) {
        snprintf(why, why_len, "crashed (signal %d)", WTERMSIG(ws));
        return CASE_FAIL;
    }
    int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : CASE_FAIL;
    if (code != CASE_PASS && code != CASE_UNSUPPORTED) {
        if (!why[0] || code != CASE_FAIL)
            snprintf(why + strlen(why), why_len - strlen(why), " (exit %d)", code);
        return CASE_FAIL;
    }
    return code;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool skipped(const opts *o, const char *dir)
{
    const char *base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    for (int i = 0; i < o->n_skip; i++)
        if (strcmp(o->skip[i], base) == 0)
            return true;
    return false;
}

static void one_case(const char *dir, const char *label, const opts *o, tally *t)
{
    char why[512];
    if (skipped(o, dir)) {
        t->skipped++;
        printf("  skipped %s (--skip)\n", label);
        return;
    }
    int st = run_isolated(dir, o->timeout_s, why, sizeof why);
    if (st == CASE_PASS) {
        t->pass++;
        if (!o->quiet)
            printf("  pass %s\n", label);
    } else if (st == CASE_UNSUPPORTED) {
        t->unsupported++;
        if (!o->quiet)
            printf("  unsupported %s: %s\n", label, why);
    } else {
        t->fail++;
        printf("  FAIL %s: %s\n", label, why);
    }
    fflush(stdout);
}

/* A folder of cases: sorted, each subfolder with a model.onnx. */
static void run_folder(const char *dir, const opts *o, tally *total)
{
    tally t = {0};
    DIR *d = opendir(dir);
    if (!d) {
        printf("%s: cannot open\n", dir);
        total->fail++;
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn)
                break;
            names = nn;
        }
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[4096], model[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(model, sizeof model, "%s/model.onnx", path);
        if (names[i] && is_file(model))
            one_case(path, names[i], o, &t);
        free(names[i]);
    }
    free(names);
    printf("%s: %d passed, %d failed, %d unsupported\n", dir, t.pass, t.fail, t.unsupported);
    total->pass += t.pass;
    total->fail += t.fail;
    total->unsupported += t.unsupported;
    total->skipped += t.skipped;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: modeld onnx-test [--timeout SECS] [--skip CASE]... [-q] DIR...\n"
               "  DIR is a test case (holding model.onnx) or a folder of test cases.\n"
               "  --timeout SECS  limit per case (default 60)\n"
               "  --skip CASE     do not run CASE (a case whose expected data is wrong);\n"
               "                  listed as skipped, never counted as a pass\n"
               "  -q              print only failures and totals\n");
}

int cmd_onnx_test(int argc, char **argv)
{
    opts o = {.timeout_s = 60, .quiet = 0};
    int first = 1;
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (strcmp(argv[first], "--timeout") == 0 && first + 1 < argc) {
            o.timeout_s = atoi(argv[++first]);
            if (o.timeout_s <= 0) {
                usage(stderr);
                return 2;
            }
        } else if (strcmp(argv[first], "--skip") == 0 && first + 1 < argc && o.n_skip < MAX_SKIP) {
            o.skip[o.n_skip++] = argv[++first];
        } else if (strcmp(argv[first], "-q") == 0) {
            o.quiet = 1;
        } else if (strcmp(argv[first], "--help") == 0 || strcmp(argv[first], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (first >= argc) {
        usage(stderr);
        return 2;
    }
    tally total = {0};
    for (int i = first; i < argc; i++) {
        char model[4200];
        snprintf(model, sizeof model, "%s/model.onnx", argv[i]);
        if (is_file(model)) {
            tally t = {0};
            one_case(argv[i], argv[i], &o, &t);
            total.pass += t.pass;
            total.fail += t.fail;
            total.unsupported += t.unsupported;
            total.skipped += t.skipped;
        } else if (is_dir(argv[i])) {
            run_folder(argv[i], &o, &total);
        } else {
            fprintf(stderr, "onnx-test: %s is not a test case or a folder\n", argv[i]);
            return 2;
        }
    }
    printf("unsupported: %d, skipped: %d\n", total.unsupported, total.skipped);
    printf("%d passed, %d failed\n", total.pass, total.fail);
    return total.fail ? 1 : 0;
}
