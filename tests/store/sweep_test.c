/* sweep_test.c - retention with an injected clock: uploads expire one TTL after their last
 * use (and are invisible at once, before any sweep), touching extends them, a blob shared by
 * a live upload survives, a fresh blob survives the grace period, stale temporary files go. */
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

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#define MIN_MS (60 * 1000)

typedef tu_store fixture;

static int setup(void **state)
{
    return tu_store_setup_with(state, &(store_opts){.upload_ttl_ms = 60 * MIN_MS}, true);
}

static store_upload upload(fixture *f, const char *bytes)
{
    store_upload meta = {.filename = "a.png", .format = "png", .width = 1, .height = 1}, out;
    assert_int_equal(store_uploads_create(f->s, bytes, strlen(bytes), &meta, &out, NULL), MD_OK);
    return out;
}

static void test_expiry_and_touch(void **state)
{
    fixture *f = *state;
    store_upload u = upload(f, "hello"), got;
    store_sweep_stats st;
    f->clk.ms += 50 * MIN_MS;
    assert_int_equal(store_uploads_touch(f->s, u.file_id, NULL), MD_OK);   /* used again */
    f->clk.ms += 50 * MIN_MS;   /* 100 min after upload, 50 after last use: alive */
    assert_int_equal(store_uploads_get(f->s, u.file_id, &got, NULL), MD_OK);
    assert_int_equal(store_sweep(f->s, &st, NULL), MD_OK);
    assert_int_equal(st.rows_deleted, 0);
    assert_int_equal(st.blobs_deleted, 0);
    f->clk.ms += 11 * MIN_MS;   /* 61 min after last use: expired, even before a sweep */
    assert_int_equal(store_uploads_get(f->s, u.file_id, &got, NULL), MD_E_FILE_NOT_FOUND);
    assert_int_equal(store_uploads_touch(f->s, u.file_id, NULL), MD_E_FILE_NOT_FOUND);
    assert_int_equal(tu_count_files(f->dir, "blobs"), 1);
    assert_int_equal(store_sweep(f->s, &st, NULL), MD_OK);
    assert_int_equal(st.rows_deleted, 1);
    assert_int_equal(st.blobs_deleted, 1);
    assert_int_equal(tu_count_files(f->dir, "blobs"), 0);
    assert_int_equal(store_sweep(f->s, &st, NULL), MD_OK);   /* nothing left: idempotent */
    assert_int_equal(st.rows_deleted + st.blobs_deleted, 0);
}

static void test_shared_blob_survives(void **state)
{
    fixture *f = *state;
    store_upload a = upload(f, "same bytes");
    f->clk.ms += 30 * MIN_MS;
    store_upload b = upload(f, "same bytes");
    f->clk.ms += 40 * MIN_MS;   /* a expired, b alive */
    store_sweep_stats st;
    assert_int_equal(store_sweep(f->s, &st, NULL), MD_OK);
    assert_int_equal(st.rows_deleted, 1);
    assert_int_equal(st.blobs_deleted, 0);
    store_upload got;
    assert_int_equal(store_uploads_get(f->s, a.file_id, &got, NULL), MD_E_FILE_NOT_FOUND);
    assert_int_equal(store_uploads_get(f->s, b.file_id, &got, NULL), MD_OK);
    uint8_t *data = NULL;
    size_t n = 0;
    assert_int_equal(store_blob_read(f->s, b.sha256, 100, &data, &n, NULL), MD_OK);
    assert_memory_equal(data, "same bytes", n);
    free(data);
    f->clk.ms += 31 * MIN_MS;
    assert_int_equal(store_sweep(f->s, &st, NULL), MD_OK);
    assert_int_equal(st.rows_deleted, 1);
    assert_int_equal(st.blobs_deleted, 1);
}

static void test_grace_for_unreferenced_blob(void **state)
{
    fixture *f = *state;
    char hex[STORE_SHA256_HEX];
    assert_int_equal(store_blob_put(f->s, "orphan", 6, hex, NULL), MD_OK);
    store_sweep_stats st;
    assert_int_equal(store_sweep(f->s, &st, NULL), MD_OK);
    assert_int_equal(st.blobs_deleted, 0);   /* a row naming it may be on its way */
    f->clk.ms += 9 * MIN_MS;
    assert_int_equal(store_blob_put(f->s, "orphan", 6, hex, NULL), MD_OK);   /* re-put restamps */
    f->clk.ms += 9 * MIN_MS;
    assert_int_equal(store_sweep(f->s, &st, NULL), MD_OK);
    assert_int_equal(st.blobs_deleted, 0);
    f->clk.ms += 2 * MIN_MS;
    assert_int_equal(store_sweep(f->s, &st, NULL), MD_OK);
    assert_int_equal(st.blobs_deleted, 1);
}

static void test_stale_tmp(void **state)
{
    fixture *f = *state;
    store_upload u = upload(f, "x");   /* creates blobs/tmp */
    (void)u;
    char old[700], fresh[700];
    snprintf(old, sizeof old, "%s/blobs/tmp/crashed.tmp", f->dir);
    snprintf(fresh, sizeof fresh, "%s/blobs/tmp/inflight.tmp", f->dir);
    fclose(fopen(old, "w"));
    fclose(fopen(fresh, "w"));
    struct timespec ts[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
    assert_int_equal(utimensat(AT_FDCWD, old, ts, 0), 0);
    store_sweep_stats st;
    assert_int_equal(store_sweep(f->s, &st, NULL), MD_OK);
    assert_int_equal(st.tmp_deleted, 1);
    assert_int_equal(access(old, F_OK), -1);
    assert_int_equal(access(fresh, F_OK), 0);
}

/* A job's callback row stays while the job's row does (the result retention) and goes with it;
 * a pending callback whose job was deleted goes at the next sweep. */
static void test_callbacks_go_with_their_job(void **state)
{
    fixture *f = *state;
    store_job jobs[2];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 2; i++) {
        snprintf(jobs[i].kind, sizeof jobs[i].kind, "k");
        jobs[i].max_attempts = 1;
        jobs[i].input_ttl_ms = MIN_MS;
        jobs[i].result_ttl_ms = 60 * MIN_MS;
    }
    assert_int_equal(store_jobs_insert(f->s, jobs, 2, NULL, 0, NULL), MD_OK);
    assert_int_equal(store_callback_add(f->s, jobs[0].id, "http://h/a", NULL), MD_OK);
    assert_int_equal(store_callback_add(f->s, jobs[1].id, "http://h/b", NULL), MD_OK);
    store_job got;
    const char *kinds[] = {"k"};
    assert_int_equal(store_jobs_claim(f->s, kinds, 1, "w", MIN_MS, &got, NULL), MD_OK);
    assert_string_equal(got.id, jobs[0].id);
    assert_int_equal(store_jobs_succeed(f->s, got.id, "w", "", 0, NULL, NULL), MD_OK);
    assert_int_equal(store_callback_finish(f->s, got.id, STORE_CB_DELIVERED, 0, "", NULL), MD_OK);
    /* the second job: cancelled, then deleted by its owner while its callback is pending */
    int was = -1;
    assert_int_equal(store_jobs_cancel(f->s, jobs[1].id, &was, NULL), MD_OK);
    assert_int_equal(store_jobs_delete(f->s, jobs[1].id, NULL), MD_OK);
    store_sweep_stats st;
    store_callback cb;
    f->clk.ms += 30 * MIN_MS;
    assert_int_equal(store_sweep(f->s, &st, NULL), MD_OK);
    assert_int_equal(store_callback_get(f->s, jobs[0].id, &cb, NULL), MD_OK); /* kept */
    assert_int_equal(cb.state, STORE_CB_DELIVERED);
    assert_int_not_equal(store_callback_get(f->s, jobs[1].id, &cb, NULL), MD_OK); /* orphan gone */
    f->clk.ms += 31 * MIN_MS; /* past the job's result retention */
    assert_int_equal(store_sweep(f->s, &st, NULL), MD_OK);
    assert_int_equal(store_jobs_get(f->s, jobs[0].id, &got, NULL), MD_E_NOT_FOUND);
    assert_int_not_equal(store_callback_get(f->s, jobs[0].id, &cb, NULL), MD_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_expiry_and_touch, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_shared_blob_survives, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_grace_for_unreferenced_blob, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_stale_tmp, setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_callbacks_go_with_their_job, setup, tu_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
