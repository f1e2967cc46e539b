/* blob_test.c - content-addressed blobs and uploads: the file is named by its SHA-256 under
 * blobs/ab/cd/, the same bytes are stored once however many uploads name them, reads are
 * bounded, malformed hashes are refused, and no temporary file is left behind. */
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
#include <unistd.h>

/* SHA-256("abc"), FIPS 180-2 test vector. */
static const char ABC_SHA[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

typedef tu_store fixture;

/* The system clock: blob times are real file times here. */
static int setup(void **state)
{
    return tu_store_setup_with(state, NULL, false);
}

static void test_put_layout(void **state)
{
    fixture *f = *state;
    char hex[STORE_SHA256_HEX];
    md_err e;
    assert_int_equal(store_blob_put(f->s, "abc", 3, hex, &e), MD_OK);
    assert_string_equal(hex, ABC_SHA);
    char want[700], path[700];
    snprintf(want, sizeof want, "%s/blobs/ba/78/%s", f->dir, ABC_SHA);
    assert_int_equal(store_blob_path(f->s, hex, path, sizeof path, &e), MD_OK);
    assert_string_equal(path, want);
    assert_int_equal(access(want, F_OK), 0);
    uint8_t *data = NULL;
    size_t n = 0;
    assert_int_equal(store_blob_read(f->s, hex, 1024, &data, &n, &e), MD_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(data, "abc", 3);
    free(data);
    assert_int_equal(store_blob_read(f->s, hex, 2, &data, &n, &e), MD_E_TOO_LARGE);
    assert_null(data);
    assert_int_equal(tu_count_files(f->dir, "blobs/tmp"), 0);
}

/* The readiness probe: a free-space floor above what any disk has fails as "storage full"
 * naming the store; no floor passes on a writable dir. (ENOSPC itself, from blob writes and
 * SQLite, is tested end to end on a full tmpfs: tests/e2e/test_disk_full.py.) */
static void test_check_writable(void **state)
{
    fixture *f = *state;
    md_err e;
    assert_int_equal(store_check_writable(f->s, 0, &e), MD_OK);
    assert_int_equal(store_check_writable(f->s, UINT64_MAX / 2, &e), MD_E_STORAGE_FULL);
    assert_string_equal(e.field, "store");
    assert_non_null(strstr(md_err_message(&e), "unwritable"));
    char probe[700];
    snprintf(probe, sizeof probe, "%s/.write-probe", f->dir);
    assert_int_equal(access(probe, F_OK), 0);
    /* The free space /metrics reports is the figure the floor is compared with: the check
     * passes well under it and fails well over it. */
    uint64_t avail = 0;
    assert_int_equal(store_free_bytes(f->s, &avail, &e), MD_OK);
    assert_true(avail > 0);
    assert_int_equal(store_check_writable(f->s, avail / 4, &e), MD_OK);
    assert_int_equal(store_check_writable(f->s, avail * 4 + (1ull << 30), &e), MD_E_STORAGE_FULL);
}

static void test_bad_hashes(void **state)
{
    fixture *f = *state;
    char path[700];
    uint8_t *data;
    size_t n;
    md_err e;
    const char *bad[] = {"", "../../etc/passwd", "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
                         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
                         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(store_blob_path(f->s, bad[i], path, sizeof path, &e), MD_E_INVALID_PARAM);
        assert_string_equal(e.field, "sha256");
        assert_int_equal(store_blob_read(f->s, bad[i], 10, &data, &n, &e), MD_E_INVALID_PARAM);
    }
    assert_int_equal(store_blob_read(f->s, ABC_SHA, 10, &data, &n, &e), MD_E_FILE_NOT_FOUND);
    assert_int_equal(store_blob_path(f->s, ABC_SHA, path, 10, &e), MD_E_TOO_LARGE);
}

static void test_upload_dedup(void **state)
{
    fixture *f = *state;
    md_err e;
    uint8_t img[5000];
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(i * 31);
    store_upload meta = {.filename = "logo.png", .format = "png", .width = 64, .height = 32};
    store_upload a, b, c;
    assert_int_equal(store_uploads_create(f->s, img, sizeof img, &meta, &a, &e), MD_OK);
    snprintf(meta.filename, sizeof meta.filename, "copy.png");
    assert_int_equal(store_uploads_create(f->s, img, sizeof img, &meta, &b, &e), MD_OK);
    assert_string_not_equal(a.file_id, b.file_id);
    assert_string_equal(a.sha256, b.sha256);
    assert_int_equal(a.size, 5000);
    assert_int_equal(strncmp(a.file_id, "f_", 2), 0);
    assert_int_equal(tu_count_files(f->dir, "blobs"), 1);   /* one file for two uploads */
    img[0] ^= 1;
    assert_int_equal(store_uploads_create(f->s, img, sizeof img, &meta, &c, &e), MD_OK);
    assert_string_not_equal(a.sha256, c.sha256);
    assert_int_equal(tu_count_files(f->dir, "blobs"), 2);
    store_upload got;
    assert_int_equal(store_uploads_get(f->s, a.file_id, &got, &e), MD_OK);
    assert_string_equal(got.filename, "logo.png");
    assert_string_equal(got.format, "png");
    assert_int_equal(got.width, 64);
    assert_int_equal(got.height, 32);
    assert_int_equal(got.expires_ms - got.last_used_ms, 3600 * 1000);   /* default TTL */
    assert_int_equal(store_uploads_get(f->s, b.file_id, &got, &e), MD_OK);
    assert_string_equal(got.filename, "copy.png");
    assert_int_equal(store_uploads_get(f->s, "f_nope", &got, &e), MD_E_FILE_NOT_FOUND);
    assert_string_equal(e.field, "file_id");
    assert_int_equal(store_uploads_get(f->s, "", &got, &e), MD_E_MISSING_FIELD);
}

static void test_upload_bad_meta(void **state)
{
    fixture *f = *state;
    md_err e;
    store_upload meta = {.format = "png", .width = -1}, out;
    assert_int_equal(store_uploads_create(f->s, "x", 1, &meta, &out, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "width");
    memset(meta.filename, 'a', sizeof meta.filename);
    meta.width = 1;
    assert_int_equal(store_uploads_create(f->s, "x", 1, &meta, &out, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "filename");
    assert_int_equal(tu_count_files(f->dir, "blobs"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_layout, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_bad_hashes, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_check_writable, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_upload_dedup, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_upload_bad_meta, setup, tu_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
