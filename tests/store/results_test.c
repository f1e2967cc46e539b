/* results_test.c - conversion results: create and read back with metadata, refused once
 * expired (before any sweep), swept with their blob, argument checks, a blob shared between an
 * upload and a result survives while either row is alive, and the durability policy: result
 * blobs are not fsync'd (unless results_fsync), uploads are, and a torn result blob reads as
 * not found and is repaired by the next put of the same content. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store.h"
#include "common/store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HOUR_MS (3600 * 1000)

typedef tu_store fixture;

static const char SVG[] = "<svg xmlns=\"http://www.w3.org/2000/svg\"/>";

/* fsync(2) calls on files and directories under blobs/. This definition takes the place of
 * libc's for the whole test binary (the store library is linked statically into it) and
 * forwards to the system call, so the store behaves as usual. */
static int blob_fsyncs;

int fsync(int fd)
{
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n > 0) {
        path[n] = '\0';
        if (strstr(path, "/blobs"))
            blob_fsyncs++;
    }
    return (int)syscall(SYS_fsync, fd);
}

/* Cut a result's blob to `size` bytes, as a power loss may leave a file that was never fsync'd. */
static void tear_blob(fixture *f, const store_result *r, off_t size)
{
    char path[4096];
    assert_int_equal(store_blob_path(f->s, r->svg_sha256, path, sizeof path, NULL), MD_OK);
    assert_int_equal(truncate(path, size), 0);
}

static void test_create_get_expire(void **state)
{
    fixture *f = *state;
    md_err e;
    store_result r, got;
    assert_int_equal(store_results_create(f->s, "f_1", SVG, strlen(SVG), "{\"ssim\":0.98}",
                                          24 * HOUR_MS, &r, &e),
                     MD_OK);
    assert_int_equal(strncmp(r.result_id, "r_", 2), 0);
    assert_int_equal(r.svg_bytes, (int64_t)strlen(SVG));
    assert_int_equal(r.expires_ms - r.created_ms, 24 * HOUR_MS);
    char *meta = NULL;
    assert_int_equal(store_results_get(f->s, r.result_id, &got, &meta, &e), MD_OK);
    assert_string_equal(meta, "{\"ssim\":0.98}");
    free(meta);
    assert_string_equal(got.file_id, "f_1");
    assert_string_equal(got.svg_sha256, r.svg_sha256);
    uint8_t *svg = NULL;
    size_t n = 0;
    assert_int_equal(store_blob_read(f->s, got.svg_sha256, 1000, &svg, &n, &e), MD_OK);
    assert_memory_equal(svg, SVG, n);
    free(svg);
    f->clk.ms += 24 * HOUR_MS;   /* expires_ms <= now: gone at once */
    assert_int_equal(store_results_get(f->s, r.result_id, &got, NULL, &e), MD_E_NOT_FOUND);
    assert_string_equal(e.field, "result_id");
    store_sweep_stats st;
    assert_int_equal(store_sweep(f->s, &st, &e), MD_OK);
    assert_int_equal(st.rows_deleted, 1);
    assert_int_equal(st.blobs_deleted, 1);
}

static void test_bad_args(void **state)
{
    fixture *f = *state;
    md_err e;
    store_result r;
    assert_int_equal(store_results_create(f->s, NULL, SVG, 3, NULL, 0, &r, &e),
                     MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "ttl_ms");
    char *big = malloc(STORE_RESULT_META_MAX + 2);
    memset(big, ' ', STORE_RESULT_META_MAX + 1);
    big[STORE_RESULT_META_MAX + 1] = '\0';
    assert_int_equal(store_results_create(f->s, NULL, SVG, 3, big, 1000, &r, &e), MD_E_TOO_LARGE);
    assert_string_equal(e.field, "meta");
    free(big);
    assert_int_equal(store_results_get(f->s, "", &r, NULL, &e), MD_E_MISSING_FIELD);
    /* NULL metadata is stored as an empty object. */
    assert_int_equal(store_results_create(f->s, NULL, SVG, 3, NULL, 1000, &r, &e), MD_OK);
    char *meta = NULL;
    assert_int_equal(store_results_get(f->s, r.result_id, &r, &meta, &e), MD_OK);
    assert_string_equal(meta, "{}");
    free(meta);
}

static void test_blob_shared_with_upload(void **state)
{
    fixture *f = *state;
    store_upload meta = {.filename = "x.svg", .format = "svg"}, u;
    assert_int_equal(store_uploads_create(f->s, SVG, strlen(SVG), &meta, &u, NULL), MD_OK);
    store_result r;
    assert_int_equal(store_results_create(f->s, u.file_id, SVG, strlen(SVG), NULL, 24 * HOUR_MS,
                                          &r, NULL),
                     MD_OK);
    assert_string_equal(u.sha256, r.svg_sha256);
    f->clk.ms += 2 * HOUR_MS;   /* the upload expired; the result still needs the blob */
    store_sweep_stats st;
    assert_int_equal(store_sweep(f->s, &st, NULL), MD_OK);
    assert_int_equal(st.rows_deleted, 1);
    assert_int_equal(st.blobs_deleted, 0);
    f->clk.ms += 23 * HOUR_MS;
    assert_int_equal(store_sweep(f->s, &st, NULL), MD_OK);
    assert_int_equal(st.rows_deleted, 1);
    assert_int_equal(st.blobs_deleted, 1);
}

static void test_result_blobs_not_fsynced_uploads_are(void **state)
{
    fixture *f = *state;
    store_result r;
    blob_fsyncs = 0;
    assert_int_equal(store_results_create(f->s, "f_1", SVG, strlen(SVG), NULL, HOUR_MS, &r, NULL),
                     MD_OK);
    assert_int_equal(blob_fsyncs, 0);
    static const char PNG[] = "\x89PNG not really";
    store_upload meta = {.filename = "a.png", .format = "png"}, u;
    assert_int_equal(store_uploads_create(f->s, PNG, sizeof PNG, &meta, &u, NULL), MD_OK);
    assert_int_equal(blob_fsyncs, 2);   /* the file before its rename, the directory after */
    /* results_fsync makes result blobs as durable as uploads. */
    store *d = NULL;
    store_opts o = {
        .data_dir = f->dir, .url = f->url, .clock = &f->clk.clock, .results_fsync = true};
    assert_int_equal(store_open(&o, &d, NULL), MD_OK);
    blob_fsyncs = 0;
    assert_int_equal(store_results_create(d, "f_1", "<svg/>", 6, NULL, HOUR_MS, &r, NULL), MD_OK);
    assert_int_equal(blob_fsyncs, 2);
    store_unref(d);
}

static void test_torn_blob_reads_as_not_found(void **state)
{
    fixture *f = *state;
    md_err e;
    store_result r, got;
    assert_int_equal(store_results_create(f->s, "f_1", SVG, strlen(SVG), "{\"a\":1}", HOUR_MS, &r,
                                          &e),
                     MD_OK);
    tear_blob(f, &r, 10);
    char *meta = (char *)"untouched";
    assert_int_equal(store_results_get(f->s, r.result_id, &got, &meta, &e), MD_E_NOT_FOUND);
    assert_string_equal(e.field, "result_id");
    assert_null(meta);
    tear_blob(f, &r, 0);   /* the usual shape after a crash: renamed, but empty */
    assert_int_equal(store_results_get(f->s, r.result_id, &got, NULL, &e), MD_E_NOT_FOUND);
    /* A file longer than the row says is not trusted either. */
    tear_blob(f, &r, (off_t)strlen(SVG) + 1);
    assert_int_equal(store_results_get(f->s, r.result_id, &got, NULL, &e), MD_E_NOT_FOUND);
    /* Converting again stores the same content: the torn file is replaced, both rows work. */
    store_result r2;
    assert_int_equal(store_results_create(f->s, "f_1", SVG, strlen(SVG), NULL, HOUR_MS, &r2, &e),
                     MD_OK);
    assert_int_equal(store_results_get(f->s, r.result_id, &got, NULL, &e), MD_OK);
    assert_int_equal(store_results_get(f->s, r2.result_id, &got, NULL, &e), MD_OK);
    uint8_t *svg = NULL;
    size_t n = 0;
    assert_int_equal(store_blob_read(f->s, got.svg_sha256, 1000, &svg, &n, &e), MD_OK);
    assert_int_equal(n, strlen(SVG));
    assert_memory_equal(svg, SVG, n);
    free(svg);
}

static void test_missing_blob_reads_as_not_found(void **state)
{
    fixture *f = *state;
    md_err e;
    store_result r, got;
    assert_int_equal(store_results_create(f->s, NULL, SVG, strlen(SVG), NULL, HOUR_MS, &r, &e),
                     MD_OK);
    char path[4096];
    assert_int_equal(store_blob_path(f->s, r.svg_sha256, path, sizeof path, NULL), MD_OK);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(store_results_get(f->s, r.result_id, &got, NULL, &e), MD_E_NOT_FOUND);
    assert_string_equal(e.field, "result_id");
}

/* An upload of content a result already stored (not durably) must not rely on that file: it
 * replaces it with its own fsync'd copy, which also repairs a torn one. */
static void test_upload_replaces_non_durable_blob(void **state)
{
    fixture *f = *state;
    store_result r, got;
    assert_int_equal(store_results_create(f->s, NULL, SVG, strlen(SVG), NULL, HOUR_MS, &r, NULL),
                     MD_OK);
    tear_blob(f, &r, 3);
    store_upload meta = {.filename = "x.svg", .format = "svg"}, u;
    blob_fsyncs = 0;
    assert_int_equal(store_uploads_create(f->s, SVG, strlen(SVG), &meta, &u, NULL), MD_OK);
    assert_int_equal(blob_fsyncs, 2);
    assert_string_equal(u.sha256, r.svg_sha256);
    assert_int_equal(store_results_get(f->s, r.result_id, &got, NULL, NULL), MD_OK);
    assert_int_equal(tu_count_files(f->dir, "blobs/tmp"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_get_expire, tu_store_setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, tu_store_setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_blob_shared_with_upload, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_result_blobs_not_fsynced_uploads_are, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_torn_blob_reads_as_not_found, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_missing_blob_reads_as_not_found, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_upload_replaces_non_durable_blob, tu_store_setup,
                                        tu_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
