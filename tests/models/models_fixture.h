/* models_fixture.h - what the registry tests share: a temporary repository (shipped/ and data/
 * roots, a store), copies of the add4 fixture versions that the tests may then break (corrupt
 * artefact, wrong hash, validation mismatch), a steppable clock and small run helpers.
 * Header-only (static functions), included by each test of tests/models. */
#ifndef MD_TESTS_MODELS_FIXTURE_H
#define MD_TESTS_MODELS_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "common/tmpdir.h"
#include "models/models_int.h"

/* A clock whose now_ns advances by `step` at every read (so a run measures `step` ns) and can
 * jump; the tests set step before the runs whose latency they want. Single-threaded use. */
typedef struct step_clock {
    md_clock clock;
    uint64_t t, step;
} step_clock;

static uint64_t step_now(void *ctx)
{
    step_clock *c = ctx;
    c->t += c->step;
    return c->t;
}
static int64_t step_wall(void *ctx)
{
    (void)ctx;
    return 1700000000000LL;
}
static inline void step_clock_init(step_clock *c)
{
    c->clock = (md_clock){.now_ns = step_now, .wall_ms = step_wall, .ctx = c};
    c->t = 1000000000ULL;
    c->step = 0;
}

typedef struct mfx {
    char *dir;
    char shipped[600], data[600];
    store *st;
    mdl_registry *r;
    step_clock clk;
} mfx;

static inline const char *fixture_models(void)
{
    static char path[1024];
    const char *src = getenv("MODELD_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/fixtures/models", src ? src : ".");
    return path;
}

static inline void spit_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static inline void mkdirs(const char *path)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

/* Copy tests/fixtures/models/add4/<from>/ to <root>/add4/<to>/ (manifest version rewritten). */
static inline void copy_add4(const char *root, const char *from, const char *to)
{
    char src[1200], dst[1200];
    snprintf(dst, sizeof dst, "%s/add4/%s", root, to);
    mkdirs(dst);
    size_t n;
    snprintf(src, sizeof src, "%s/add4/%s/model.onnx", fixture_models(), from);
    unsigned char *b = tu_slurp(src, &n);
    snprintf(dst, sizeof dst, "%s/add4/%s/model.onnx", root, to);
    spit_file(dst, b, n);
    free(b);
    snprintf(src, sizeof src, "%s/add4/%s/modeld.json", fixture_models(), from);
    json_t *doc = json_load_file(src, 0, NULL);
    assert_non_null(doc);
    json_object_set_new(doc, "version", json_string(to));
    snprintf(dst, sizeof dst, "%s/add4/%s/modeld.json", root, to);
    assert_int_equal(json_dump_file(doc, dst, JSON_INDENT(1)), 0);
    json_decref(doc);
}

/* Load <root>/add4/<ver>/modeld.json for the test to change; write it back with put_manifest. */
static inline json_t *get_manifest(const char *root, const char *ver)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/add4/%s/modeld.json", root, ver);
    json_t *doc = json_load_file(p, 0, NULL);
    assert_non_null(doc);
    return doc;
}

static inline void put_manifest(const char *root, const char *ver, json_t *doc)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/add4/%s/modeld.json", root, ver);
    assert_int_equal(json_dump_file(doc, p, JSON_INDENT(1)), 0);
    json_decref(doc);
}

static inline int mfx_setup(void **state)
{
    mfx *f = calloc(1, sizeof *f);
    if (!f || !(f->dir = tu_mkdir()))
        return -1;
    snprintf(f->shipped, sizeof f->shipped, "%s/shipped", f->dir);
    snprintf(f->data, sizeof f->data, "%s/data", f->dir);
    mkdirs(f->shipped);
    mkdirs(f->data);
    step_clock_init(&f->clk);
    store_opts so = {.data_dir = f->data};
    if (store_open(&so, &f->st, NULL) != MD_OK)
        return -1;
    *state = f;
    return 0;
}

static inline int mfx_teardown(void **state)
{
    mfx *f = *state;
    mdl_registry_close(f->r);
    store_unref(f->st);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static inline mdl_registry_opts mfx_opts(mfx *f)
{
    return (mdl_registry_opts){.shipped_dir = f->shipped,
                               .data_dir = f->data,
                               .store = f->st,
                               .clock = &f->clk.clock,
                               .load_all = true};
}

static inline void mfx_open(mfx *f, const mdl_registry_opts *o)
{
    md_err e = {0};
    mdl_registry_close(f->r);
    f->r = NULL;
    int rc = mdl_registry_open(o, &f->r, &e);
    if (rc != MD_OK)
        print_error("open: %s\n", md_err_message(&e));
    assert_int_equal(rc, MD_OK);
}

/* Run add4 version v on one row; returns y[0] - x[0] (the version number it adds). */
static inline int run_add(mdl_version *v, md_err *e)
{
    float x[4] = {1, 2, 3, 4};
    mdl_tensor in = {.name = "x", .dtype = ONNX_FLOAT, .rank = 2, .dims = {1, 4}, .data = x};
    mdl_result *res = NULL;
    int rc = mdl_run(v, &in, 1, NULL, &res, e);
    if (rc != MD_OK)
        return -rc;
    const mdl_tensor *y = mdl_result_output(res, 0);
    int k = (int)(((const float *)y->data)[0] - x[0] + 0.5f);
    mdl_result_free(res);
    return k;
}

/* Acquire add4 (any routed version), run once, release: the number it added (the version
 * number for the copies made by copy_add4(root, v, v)). */
static inline int answer(mdl_registry *r)
{
    mdl_version *v = NULL;
    md_err e = {0};
    int rc = mdl_acquire(r, "add4", NULL, &v, &e);
    if (rc != MD_OK)
        return -rc;
    int k = run_add(v, &e);
    mdl_release(v);
    return k;
}

/* State of name/version as describe reports it. */
static inline const char *state_of(mdl_registry *r, const char *name, const char *version,
                                   char *buf)
{
    json_t *all = mdl_describe_all(r);
    strcpy(buf, "?");
    size_t i, j;
    json_t *m, *v;
    json_array_foreach(all, i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "name")), name) != 0)
            continue;
        json_array_foreach(
            json_object_get(m, "versions"), j,
            v) if (strcmp(json_string_value(json_object_get(v, "version")), version) == 0)
            snprintf(buf, 32, "%s", json_string_value(json_object_get(v, "state")));
    }
    json_decref(all);
    return buf;
}

#endif
