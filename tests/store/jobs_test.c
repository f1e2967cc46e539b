/* jobs_test.c - the jobs table with an injected clock: claims in submission order and only of
 * the asked kinds, one claimer per job, lease renewal, expiry and retry up to max_attempts,
 * transitions refused from the wrong state or by a worker that lost its lease, cancel of a
 * queued and of a running job, batches all-or-nothing, the queue limit, and retention: the
 * input goes after its TTL, the row and its result after theirs, with their blobs. */
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

#define MIN_MS (60 * 1000LL)
#define HOUR_MS (60 * MIN_MS)

typedef tu_store fixture;

static const char *const ENH[] = {"enhance"};

static store_job row(fixture *f, const char *kind, const char *input)
{
    store_job j = {0};
    snprintf(j.kind, sizeof j.kind, "%s", kind);
    snprintf(j.owner, sizeof j.owner, "k_owner");
    snprintf(j.params, sizeof j.params, "{\"upscale\":4}");
    if (input) {
        assert_int_equal(store_blob_put(f->s, input, strlen(input), j.input_sha256, NULL), MD_OK);
        j.input_bytes = (int64_t)strlen(input);
    }
    j.max_attempts = 2;
    j.input_ttl_ms = HOUR_MS;
    j.result_ttl_ms = 24 * HOUR_MS;
    return j;
}

static store_job submit(fixture *f, const char *kind, const char *input)
{
    store_job j = row(f, kind, input);
    assert_int_equal(store_jobs_insert(f->s, &j, 1, NULL, 0, NULL), MD_OK);
    assert_int_equal(j.state, STORE_JOB_QUEUED);
    return j;
}

static void test_claim_order_and_kinds(void **state)
{
    fixture *f = *state;
    store_job a = submit(f, "enhance", "a");
    f->clk.ms += 1;
    store_job b = submit(f, "bulk", "b");
    f->clk.ms += 1;
    store_job c = submit(f, "enhance", "c");
    store_job got;
    md_err e;
    assert_int_equal(store_jobs_claim(f->s, ENH, 1, "w1", 1000, &got, &e), MD_OK);
    assert_string_equal(got.id, a.id);
    assert_int_equal(got.state, STORE_JOB_PROCESSING);
    assert_int_equal(got.attempts, 1);
    assert_string_equal(got.lease_owner, "w1");
    assert_int_equal(got.lease_expires_ms, TU_CLOCK_MS + 2 + 1000);
    assert_int_equal(store_jobs_claim(f->s, ENH, 1, "w2", 1000, &got, &e), MD_OK);
    assert_string_equal(got.id, c.id);
    /* Only "bulk" is left; an enhance-only worker finds nothing. */
    assert_int_equal(store_jobs_claim(f->s, ENH, 1, "w3", 1000, &got, &e), MD_E_NOT_FOUND);
    const char *both[] = {"enhance", "bulk"};
    assert_int_equal(store_jobs_claim(f->s, both, 2, "w3", 1000, &got, &e), MD_OK);
    assert_string_equal(got.id, b.id);
    assert_string_equal(got.params, "{\"upscale\":4}");
    assert_string_equal(got.owner, "k_owner");
}

static void test_renew_and_expiry_retry(void **state)
{
    fixture *f = *state;
    store_job a = submit(f, "enhance", "a"), got;
    md_err e;
    assert_int_equal(store_jobs_claim(f->s, ENH, 1, "w1", 1000, &got, &e), MD_OK);
    int cancel = -1;
    f->clk.ms += 900;
    assert_int_equal(store_jobs_renew(f->s, a.id, "w1", 1000, 0.5, "tile 1/2", &cancel, &e), MD_OK);
    assert_int_equal(cancel, 0);
    f->clk.ms += 900; /* renewed: still leased */
    size_t rq = 9, fl = 9;
    assert_int_equal(store_jobs_expire(f->s, NULL, &rq, &fl, &e), MD_OK);
    assert_int_equal(rq, 0);
    assert_int_equal(fl, 0);
    assert_int_equal(store_jobs_get(f->s, a.id, &got, &e), MD_OK);
    assert_int_equal(got.state, STORE_JOB_PROCESSING);
    assert_true(got.progress == 0.5);
    assert_string_equal(got.stage, "tile 1/2");
    f->clk.ms += 200; /* the lease ran out: back to the queue */
    assert_int_equal(store_jobs_expire(f->s, NULL, &rq, &fl, &e), MD_OK);
    assert_int_equal(rq, 1);
    assert_int_equal(store_jobs_get(f->s, a.id, &got, &e), MD_OK);
    assert_int_equal(got.state, STORE_JOB_QUEUED);
    /* The old worker lost it: renewing or finishing is refused. */
    assert_int_equal(store_jobs_renew(f->s, a.id, "w1", 1000, 0.6, NULL, NULL, &e), MD_E_CONFLICT);
    assert_int_equal(store_jobs_succeed(f->s, a.id, "w1", "", 0, NULL, &e), MD_E_CONFLICT);
    /* Second claim; its lease runs out too: attempts (2) reached, FAILURE. */
    assert_int_equal(store_jobs_claim(f->s, ENH, 1, "w2", 1000, &got, &e), MD_OK);
    assert_int_equal(got.attempts, 2);
    f->clk.ms += 1000;
    assert_int_equal(store_jobs_expire(f->s, NULL, &rq, &fl, &e), MD_OK);
    assert_int_equal(rq, 0);
    assert_int_equal(fl, 1);
    assert_int_equal(store_jobs_get(f->s, a.id, &got, &e), MD_OK);
    assert_int_equal(got.state, STORE_JOB_FAILURE);
    assert_string_equal(got.error_code, "internal_error");
    assert_non_null(strstr(got.error_message, "2 times"));
    assert_int_equal(got.completed_ms, f->clk.ms);
    assert_int_equal(got.expires_ms, f->clk.ms + 24 * HOUR_MS);
}

static void test_expire_by_owner_prefix(void **state)
{
    fixture *f = *state;
    store_job a = submit(f, "enhance", "a"), b = submit(f, "enhance", "b"), got;
    md_err e;
    assert_int_equal(store_jobs_claim(f->s, ENH, 1, "h:1:aa:w0", 60000, &got, &e), MD_OK);
    assert_int_equal(store_jobs_claim(f->s, ENH, 1, "h:2:bb:w0", 60000, &got, &e), MD_OK);
    char(*owners)[STORE_JOB_WORKER_MAX] = NULL;
    size_t n = 0;
    assert_int_equal(store_jobs_lease_owners(f->s, &owners, &n, &e), MD_OK);
    assert_int_equal(n, 2);
    free(owners);
    size_t rq = 0, fl = 0;
    assert_int_equal(store_jobs_expire(f->s, "h:1:aa:", &rq, &fl, &e), MD_OK);
    assert_int_equal(rq, 1);
    assert_int_equal(store_jobs_get(f->s, a.id, &got, &e), MD_OK);
    assert_int_equal(got.state, STORE_JOB_QUEUED);
    assert_int_equal(store_jobs_get(f->s, b.id, &got, &e), MD_OK);
    assert_int_equal(got.state, STORE_JOB_PROCESSING);
    assert_int_equal(store_jobs_expire(f->s, "h*", &rq, &fl, &e), MD_E_INVALID_PARAM);
}

static void test_succeed_and_wrong_states(void **state)
{
    fixture *f = *state;
    store_job a = submit(f, "enhance", "a"), got;
    md_err e;
    char hex[STORE_SHA256_HEX];
    assert_int_equal(store_blob_put(f->s, "result", 6, hex, &e), MD_OK);
    /* Not PROCESSING yet: no transition out of it. */
    assert_int_equal(store_jobs_succeed(f->s, a.id, "w1", hex, 6, NULL, &e), MD_E_CONFLICT);
    assert_int_equal(store_jobs_finish(f->s, a.id, "w1", STORE_JOB_FAILURE, "x", "y", 0, &e),
                     MD_E_CONFLICT);
    assert_int_equal(store_jobs_claim(f->s, ENH, 1, "w1", 1000, &got, &e), MD_OK);
    assert_int_equal(store_jobs_succeed(f->s, a.id, "w2", hex, 6, NULL, &e), MD_E_CONFLICT);
    assert_int_equal(store_jobs_succeed(f->s, a.id, "w1", hex, 6, "{\"width\":8}", &e), MD_OK);
    assert_int_equal(store_jobs_get(f->s, a.id, &got, &e), MD_OK);
    assert_int_equal(got.state, STORE_JOB_SUCCESS);
    assert_true(got.progress == 1.0);
    assert_string_equal(got.result_sha256, hex);
    assert_int_equal(got.result_bytes, 6);
    assert_string_equal(got.result_meta, "{\"width\":8}");
    assert_string_equal(got.lease_owner, "");
    /* Terminal: nothing moves it. */
    assert_int_equal(store_jobs_finish(f->s, a.id, "w1", STORE_JOB_FAILURE, "x", "y", 0, &e),
                     MD_E_CONFLICT);
    int st = -1;
    assert_int_equal(store_jobs_cancel(f->s, a.id, &st, &e), MD_OK);
    assert_int_equal(st, STORE_JOB_SUCCESS);
    assert_int_equal(store_jobs_get(f->s, "j_nope", &got, &e), MD_E_NOT_FOUND);
    assert_string_equal(e.field, "job_id");
}

static void test_release_refunds_attempt(void **state)
{
    fixture *f = *state;
    store_job a = submit(f, "enhance", "a"), got;
    md_err e;
    assert_int_equal(store_jobs_claim(f->s, ENH, 1, "w1", 1000, &got, &e), MD_OK);
    assert_int_equal(store_jobs_finish(f->s, a.id, "w1", STORE_JOB_QUEUED, "", "", 1, &e), MD_OK);
    assert_int_equal(store_jobs_get(f->s, a.id, &got, &e), MD_OK);
    assert_int_equal(got.state, STORE_JOB_QUEUED);
    assert_int_equal(got.attempts, 0);
    assert_int_equal(got.expires_ms, 0);
    assert_int_equal(store_jobs_finish(f->s, a.id, "w1", STORE_JOB_SUCCESS, "", "", 0, &e),
                     MD_E_INTERNAL);
}

static void test_cancel(void **state)
{
    fixture *f = *state;
    store_job q = submit(f, "enhance", "q"), r = submit(f, "enhance", "r"), got;
    md_err e;
    int st = -1;
    assert_int_equal(store_jobs_cancel(f->s, q.id, &st, &e), MD_OK);
    assert_int_equal(st, STORE_JOB_CANCELLED);
    assert_int_equal(store_jobs_claim(f->s, ENH, 1, "w1", 1000, &got, &e), MD_OK);
    assert_string_equal(got.id, r.id); /* the cancelled job is never claimed */
    assert_int_equal(store_jobs_cancel(f->s, r.id, &st, &e), MD_OK);
    assert_int_equal(st, STORE_JOB_PROCESSING);
    int flag = 0;
    assert_int_equal(store_jobs_renew(f->s, r.id, "w1", 1000, -1, NULL, &flag, &e), MD_OK);
    assert_int_equal(flag, 1);
    assert_int_equal(
        store_jobs_finish(f->s, r.id, "w1", STORE_JOB_CANCELLED, "cancelled", "by owner", 0, &e),
        MD_OK);
    assert_int_equal(store_jobs_get(f->s, r.id, &got, &e), MD_OK);
    assert_int_equal(got.state, STORE_JOB_CANCELLED);
    assert_int_equal(store_jobs_cancel(f->s, "j_missing", &st, &e), MD_E_NOT_FOUND);
    assert_int_equal(store_jobs_delete(f->s, r.id, &e), MD_OK);
    assert_int_equal(store_jobs_get(f->s, r.id, &got, &e), MD_E_NOT_FOUND);
}

static void test_batch_and_queue_limit(void **state)
{
    fixture *f = *state;
    store_job js[3] = {row(f, "enhance", "1"), row(f, "enhance", "2"), row(f, "enhance", "3")};
    store_batch b = {.owner = "k_owner", .kind = "enhance"};
    md_err e;
    /* Refused as a whole when it does not fit: nothing inserted. */
    assert_int_equal(store_jobs_insert(f->s, js, 3, &b, 2, &e), MD_E_OVERLOADED);
    int64_t counts[STORE_JOB__NSTATES];
    assert_int_equal(store_jobs_count(f->s, NULL, counts, &e), MD_OK);
    assert_int_equal(counts[STORE_JOB_QUEUED], 0);
    assert_int_equal(store_jobs_insert(f->s, js, 3, &b, 3, &e), MD_OK);
    assert_int_equal(b.total, 3);
    store_batch got;
    assert_int_equal(store_batches_get(f->s, b.id, &got, &e), MD_OK);
    assert_string_equal(got.owner, "k_owner");
    store_job *list = NULL;
    size_t n = 0;
    assert_int_equal(store_jobs_list_batch(f->s, b.id, &list, &n, &e), MD_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(list[i].id, js[i].id);
        assert_string_equal(list[i].batch_id, b.id);
    }
    free(list);
    store_job one = row(f, "enhance", "4");
    assert_int_equal(store_jobs_insert(f->s, &one, 1, NULL, 3, &e), MD_E_OVERLOADED);
    assert_int_equal(store_jobs_count(f->s, "enhance", counts, &e), MD_OK);
    assert_int_equal(counts[STORE_JOB_QUEUED], 3);
    const char *ids[] = {js[0].id, "j_gone"};
    int64_t seqs[2];
    assert_int_equal(store_jobs_seqs(f->s, ids, 2, seqs, &e), MD_OK);
    assert_int_equal(seqs[0], 1);
    assert_int_equal(seqs[1], 0);
}

static void test_retention_sweep(void **state)
{
    fixture *f = *state;
    store_job a = submit(f, "enhance", "input-a"), got;
    md_err e;
    char hex[STORE_SHA256_HEX];
    assert_int_equal(store_jobs_claim(f->s, ENH, 1, "w1", 1000, &got, &e), MD_OK);
    assert_int_equal(store_blob_put(f->s, "result-a", 8, hex, &e), MD_OK);
    assert_int_equal(store_jobs_succeed(f->s, a.id, "w1", hex, 8, NULL, &e), MD_OK);
    store_job q = submit(f, "enhance", "input-q"); /* stays queued: keeps its input */
    f->clk.ms += HOUR_MS + MIN_MS;
    store_sweep_stats st;
    assert_int_equal(store_sweep(f->s, &st, &e), MD_OK);
    assert_int_equal(store_jobs_get(f->s, a.id, &got, &e), MD_OK);
    assert_string_equal(got.input_sha256, ""); /* the input was let go */
    assert_string_equal(got.result_sha256, hex);
    assert_int_equal(st.blobs_deleted, 1);
    assert_int_equal(store_jobs_get(f->s, q.id, &got, &e), MD_OK);
    assert_string_not_equal(got.input_sha256, "");
    uint8_t *data = NULL;
    size_t n = 0;
    assert_int_equal(store_blob_read(f->s, got.input_sha256, 100, &data, &n, &e), MD_OK);
    free(data);
    f->clk.ms += 24 * HOUR_MS;
    assert_int_equal(store_sweep(f->s, &st, &e), MD_OK);
    assert_int_equal(store_jobs_get(f->s, a.id, &got, &e), MD_E_NOT_FOUND);
    assert_int_equal(store_blob_read(f->s, hex, 100, &data, &n, &e), MD_E_FILE_NOT_FOUND);
    assert_int_equal(store_jobs_get(f->s, q.id, &got, &e), MD_OK);
}

static void test_list_filter_and_pages(void **state)
{
    fixture *f = *state;
    store_job ids[5];
    for (int i = 0; i < 5; i++) {
        f->clk.ms += 1;
        ids[i] = submit(f, i % 2 ? "bulk" : "enhance", NULL);
    }
    store_job got, *list = NULL;
    size_t n = 0;
    int64_t next = -1;
    md_err e;
    assert_int_equal(store_jobs_claim(f->s, ENH, 1, "w1", 1000, &got, &e), MD_OK); /* ids[0] */
    store_job_filter all = {.state = -1, .limit = 2};
    assert_int_equal(store_jobs_list(f->s, &all, &list, &n, &next, &e), MD_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, ids[4].id); /* newest first */
    assert_string_equal(list[1].id, ids[3].id);
    assert_true(next > 0);
    free(list);
    all.before = next;
    all.limit = 10;
    assert_int_equal(store_jobs_list(f->s, &all, &list, &n, &next, &e), MD_OK);
    assert_int_equal(n, 3);
    assert_string_equal(list[2].id, ids[0].id);
    assert_int_equal(next, 0); /* the last page */
    free(list);
    store_job_filter bulk = {.kind = "bulk", .state = -1};
    assert_int_equal(store_jobs_list(f->s, &bulk, &list, &n, NULL, &e), MD_OK);
    assert_int_equal(n, 2);
    free(list);
    store_job_filter running = {.state = STORE_JOB_PROCESSING, .owner = "k_owner"};
    assert_int_equal(store_jobs_list(f->s, &running, &list, &n, NULL, &e), MD_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, ids[0].id);
    free(list);
    store_job_filter nobody = {.state = -1, .owner = "k_other"};
    assert_int_equal(store_jobs_list(f->s, &nobody, &list, &n, NULL, &e), MD_OK);
    assert_int_equal(n, 0);
    assert_null(list);
    store_job_filter bad = {.state = -1, .limit = 1001};
    assert_int_equal(store_jobs_list(f->s, &bad, &list, &n, NULL, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "limit");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_claim_order_and_kinds, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_renew_and_expiry_retry, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_expire_by_owner_prefix, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_succeed_and_wrong_states, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_release_refunds_attempt, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, tu_store_setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_batch_and_queue_limit, tu_store_setup,
                                        tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_retention_sweep, tu_store_setup, tu_store_teardown),
        cmocka_unit_test_setup_teardown(test_list_filter_and_pages, tu_store_setup,
                                        tu_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
