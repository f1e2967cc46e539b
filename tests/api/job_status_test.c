/* job_status_test.c - GET /api/v1/jobs/{id}/status with a real job queue whose worker runs in
 * this process (the e2e tests cover a job run by another process, through the store): the
 * refusals before the upgrade through the loopback chain (no credentials, unknown job, another
 * key's job: 404 naming job_id), then over a socket the statuses of a job from QUEUED to
 * SUCCESS, the status repeated while nothing changes, and the normal close after the terminal
 * one. The worker is held with a flag, never with sleeps on which a result depends. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "api/job_status.h"
#include "common/store_fixture.h"
#include "common/ws_client.h"
#include "http/http_loopback.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct fx {
    tu_store *ts;
    jobs *j;
    http_server *srv;
    api_job_status *route;
    atomic_int release; /* the worker finishes its job when set */
} fx;

/* Half way, waits for the test's go (or a cancel), then succeeds with a 16x12 PNG's metadata. */
static int run_gated(job_run *r, void *user)
{
    fx *f = user;
    md_cancel_progress(job_run_cancel(r), 0.5, "half");
    int rc = MD_OK;
    while (!atomic_load(&f->release) && rc == MD_OK) {
        rc = md_cancel_check(job_run_cancel(r), "gated", job_run_err(r));
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    if (rc == MD_OK)
        rc = job_run_set_result(r, "png!", 4, "{\"width\":16,\"height\":12,\"format\":\"png\"}",
                                job_run_err(r));
    return rc;
}

/* "Bearer key-1" is key k1, "Bearer key-2" key k2, both with the read role. */
static int fake_auth(void *ctx, const char *authz, const char *xkey, http_identity *id, md_err *err)
{
    (void)ctx;
    (void)xkey;
    if (!authz || (strcmp(authz, "Bearer key-1") != 0 && strcmp(authz, "Bearer key-2") != 0))
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "invalid credentials");
    snprintf(id->key_id, sizeof id->key_id, "k%c", authz[11]);
    id->role = HTTP_ROLE_READ;
    return MD_OK;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f || tu_store_setup_with((void **)&f->ts, NULL, false) != 0)
        return -1;
    job_opts o = {.store = f->ts->s, .workers = 1, .poll_ms = 20, .progress_ms = 1};
    job_kind k = {.name = "gated", .run = run_gated, .user = f};
    http_opts ho = {.host = "127.0.0.1",
                    .io_threads = 2,
                    .compute_threads = 1,
                    .hooks = {.authenticate = fake_auth}};
    md_err e;
    if (job_open(&o, &f->j, &e) != MD_OK || job_register(f->j, &k, &e) != MD_OK ||
        job_start(f->j, &e) != MD_OK || http_server_new(&ho, &f->srv, &e) != MD_OK ||
        api_job_status_register(f->srv, f->j, NULL, &f->route, &e) != MD_OK ||
        http_server_start(f->srv, &e) != MD_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    atomic_store(&f->release, 1);
    http_server_free(f->srv); /* closes the sockets: their subscriptions end before the queue */
    api_job_status_free(f->route);
    job_close(f->j);
    void *ts = f->ts;
    tu_store_teardown(&ts);
    free(f);
    return 0;
}

static job_info submit(fx *f, const char *owner)
{
    job_submit_in in = {.kind = "gated",
                        .owner = owner,
                        .params_json = "{\"quality\":\"best\",\"upscale\":4}",
                        .input = "x",
                        .input_len = 1};
    job_info info;
    md_err e;
    assert_int_equal(job_submit(f->j, &in, &info, &e), MD_OK);
    return info;
}

static const char *const HS[] = {"Upgrade",
                                 "websocket",
                                 "Connection",
                                 "Upgrade",
                                 "Sec-WebSocket-Version",
                                 "13",
                                 "Sec-WebSocket-Key",
                                 "dGhlIHNhbXBsZSBub25jZQ==",
                                 "Authorization",
                                 "Bearer key-2",
                                 NULL};

static void test_refused_before_upgrade(void **state)
{
    fx *f = *state;
    job_info j = submit(f, "k1");
    char target[128];
    snprintf(target, sizeof target, "/api/v1/jobs/%s/status", j.id);
    http_loopback_resp r;
    /* another key's job: the same 404 as an unknown one */
    assert_int_equal(http_loopback(f->srv, "GET", target, HS, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"field\":\"job_id\""));
    http_loopback_resp_free(&r);
    assert_int_equal(http_loopback(f->srv, "GET", "/api/v1/jobs/j_nope/status", HS, NULL, 0, &r),
                     MD_OK);
    assert_int_equal(r.status, 404);
    http_loopback_resp_free(&r);
    assert_int_equal(http_loopback(f->srv, "GET", target, HS + 8, NULL, 0, &r),
                     MD_OK); /* no handshake */
    assert_int_equal(r.status, 400);
    http_loopback_resp_free(&r);
    const char *const anon[] = {"Upgrade", "websocket", NULL};
    assert_int_equal(http_loopback(f->srv, "GET", target, anon, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 401);
    http_loopback_resp_free(&r);
    atomic_store(&f->release, 1);
}

/* The next status message as JSON (new reference); fails on anything else. */
static json_t *next_status(int fd)
{
    char buf[4096];
    size_t n;
    int op = tu_ws_next(fd, buf, sizeof buf, &n);
    if (op != 0x1)
        fail_msg("expected a text frame, got opcode %d (%.*s)", op, (int)n, buf);
    json_t *j = json_loadb(buf, n, 0, NULL);
    assert_non_null(j);
    return j;
}

static const char *str(json_t *j, const char *k)
{
    return json_string_value(json_object_get(j, k));
}

static void test_statuses_until_success(void **state)
{
    fx *f = *state;
    job_info j = submit(f, "k1");
    int fd = tu_ws_dial(http_server_port(f->srv));
    char target[128], head[2048];
    snprintf(target, sizeof target, "/api/v1/jobs/%s/status", j.id);
    assert_int_equal(tu_ws_open(fd, target, "Authorization: Bearer key-1\r\n", head, sizeof head),
                     101);
    json_t *s = next_status(fd);
    assert_string_equal(str(s, "job_id"), j.id);
    assert_string_equal(str(s, "quality"), "best");
    /* QUEUED first or already PROCESSING; then the worker's "half" */
    while (strcmp(str(s, "status"), "PROCESSING") != 0 || strcmp(str(s, "stage"), "half") != 0) {
        assert_true(strcmp(str(s, "status"), "QUEUED") == 0 ||
                    strcmp(str(s, "status"), "PROCESSING") == 0);
        json_decref(s);
        s = next_status(fd);
    }
    assert_int_equal(json_integer_value(json_object_get(s, "progress")), 50);
    json_decref(s);
    /* Nothing changes while the worker waits: the same status comes again (the tick). */
    s = next_status(fd);
    assert_string_equal(str(s, "status"), "PROCESSING");
    assert_string_equal(str(s, "stage"), "half");
    json_decref(s);
    atomic_store(&f->release, 1);
    s = next_status(fd);
    while (strcmp(str(s, "status"), "PROCESSING") == 0) {
        json_decref(s);
        s = next_status(fd);
    }
    assert_string_equal(str(s, "status"), "SUCCESS");
    json_t *res = json_object_get(s, "result");
    assert_int_equal(json_integer_value(json_object_get(res, "width")), 16);
    assert_int_equal(json_integer_value(json_object_get(res, "bytes")), 4);
    json_decref(s);
    char buf[256];
    size_t n;
    assert_int_equal(tu_ws_next(fd, buf, sizeof buf, &n), 0x8); /* then a normal close */
    assert_int_equal(tu_ws_close_code(buf, n), 1000);
    tu_ws_send(fd, 0x8, buf, 2);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refused_before_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statuses_until_success, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
