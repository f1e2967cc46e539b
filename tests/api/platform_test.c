/* platform_test.c - the platform routes over the loopback runner with a real store and auth in
 * a temporary data dir: health, ready, metrics (public and admin-only), token exchange (key,
 * JWT, tampered JWT, revoked key), role checks, audit paging and its query validation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/platform.h"
#include "http/http_loopback.h"

#include "common/tmpdir.h"

typedef struct fx {
    char *dir;
    store *st;
    auth *au;
    rl_limiter *rl;
    api_platform *p;
    http_server *srv;
    char admin[AUTH_KEY_MAX], reader[AUTH_KEY_MAX], reader_id[STORE_KEY_ID_MAX];
} fx;

static void make_server_min_free(fx *f, bool metrics_public, uint64_t store_min_free)
{
    api_platform_opts po = {.store = f->st, .auth = f->au, .limiter = f->rl, .rate_read = {1000, 1000},
                            .rate_write = {1000, 1000}, .rate_admin = {1000, 1000}, .rate_anon = {1000, 1000},
                            .metrics_public = metrics_public, .test_routes = true,
                            .store_min_free = store_min_free};
    md_err e;
    assert_int_equal(api_platform_new(&po, &f->p, &e), MD_OK);
    http_opts ho = {.access_log = false};
    api_platform_hooks(f->p, &ho.hooks);
    assert_int_equal(http_server_new(&ho, &f->srv, &e), MD_OK);
    assert_int_equal(api_platform_register(f->p, f->srv, &e), MD_OK);
}

static void make_server(fx *f, bool metrics_public)
{
    make_server_min_free(f, metrics_public, 0);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->dir = tu_mkdir();
    md_err e;
    store_opts so = {.data_dir = f->dir};
    assert_int_equal(store_open(&so, &f->st, &e), MD_OK);
    auth_opts ao = {.store = f->st, .jwt_secret = "0123456789abcdef0123456789abcdef-test", .revalidate_ms = -1};
    assert_int_equal(auth_open(&ao, &f->au, &e), MD_OK);
    assert_int_equal(rl_new(&(rl_opts){0}, &f->rl), MD_OK);
    auth_new_key k;
    assert_int_equal(auth_key_create(f->st, AUTH_ROLE_ADMIN, "admin", &k, &e), MD_OK);
    snprintf(f->admin, sizeof f->admin, "%s", k.key);
    assert_int_equal(auth_key_create(f->st, AUTH_ROLE_READ, "reader", &k, &e), MD_OK);
    snprintf(f->reader, sizeof f->reader, "%s", k.key);
    snprintf(f->reader_id, sizeof f->reader_id, "%s", k.row.id);
    make_server(f, true);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    http_server_free(f->srv);
    api_platform_free(f->p);
    rl_free(f->rl);
    auth_close(f->au);
    store_unref(f->st);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static json_t *call(fx *f, const char *m, const char *target, const char *bearer, const char *body, int *status)
{
    char authz[1200];
    snprintf(authz, sizeof authz, "Bearer %s", bearer ? bearer : "");
    const char *h[] = {"Authorization", authz, "Content-Type", "application/json", NULL};
    http_loopback_resp r;
    assert_int_equal(http_loopback(f->srv, m, target, bearer ? h : h + 2, body, body ? strlen(body) : 0, &r), MD_OK);
    *status = r.status;
    json_t *j = json_loads(r.body, 0, NULL);
    http_loopback_resp_free(&r);
    return j;
}

static const char *err_code(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

static const char *err_field(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "field"));
}

static void test_health_ready(void **state)
{
    fx *f = *state;
    int st;
    json_t *j = call(f, "GET", "/api/health", NULL, NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    assert_string_equal(json_string_value(json_object_get(j, "version")), MODELD_VERSION);
    assert_true(json_is_integer(json_object_get(j, "uptime_s")));
    json_decref(j);
    j = call(f, "GET", "/api/ready", NULL, NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "checks"), "database")), "ok");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "checks"), "store")), "ok");
    json_decref(j);
}

/* A data dir with less free space than store_min_free: not ready, naming the store, with
 * Retry-After (the full-disk path itself: tests/e2e/test_disk_full.py). */
static void test_ready_store_unwritable(void **state)
{
    fx *f = *state;
    http_server_free(f->srv);
    api_platform_free(f->p);
    make_server_min_free(f, true, UINT64_MAX / 2);
    http_loopback_resp r;
    assert_int_equal(http_loopback(f->srv, "GET", "/api/ready", NULL, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 503);
    assert_string_equal(http_loopback_header(&r, "Retry-After"), "1");
    json_t *j = json_loads(r.body, 0, NULL);
    http_loopback_resp_free(&r);
    assert_string_equal(err_field(j), "store");
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
                           "store: unwritable"));
    json_decref(j);
}

static int models_loading(void *ctx, md_err *err)
{
    return *(int *)ctx ? MD_OK : md_fail(err, MD_E_UNAVAILABLE, NULL, "models are loading");
}

static void test_ready_checks(void **state)
{
    fx *f = *state;
    static int loaded = 0;
    assert_int_equal(api_platform_ready_check(f->p, "models", models_loading, &loaded), MD_OK);
    int st;
    json_t *j = call(f, "GET", "/api/ready", NULL, NULL, &st);
    assert_int_equal(st, 503);
    assert_string_equal(err_code(j), "unavailable");
    assert_string_equal(err_field(j), "models");
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
                           "models: models are loading"));
    json_decref(j);
    loaded = 1;
    j = call(f, "GET", "/api/ready", NULL, NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "checks"), "models")), "ok");
    json_decref(j);
}

static void test_metrics_text(void **state)
{
    fx *f = *state;
    http_loopback_resp r;
    assert_int_equal(http_loopback(f->srv, "GET", "/metrics", NULL, NULL, 0, &r), MD_OK);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(http_loopback_header(&r, "Content-Type"), "text/plain; version=0.0.4"));
    assert_non_null(strstr(r.body, "# TYPE modeld_http_requests_total counter"));
    assert_non_null(strstr(r.body, "process_resident_memory_bytes"));
    assert_non_null(strstr(r.body, "\nmodeld_audit_dropped_total 0\n"));
    assert_non_null(strstr(r.body, "# TYPE modeld_audit_queued gauge"));
    http_loopback_resp_free(&r);
}

static void test_metrics_admin_only(void **state)
{
    fx *f = *state;
    http_server_free(f->srv);
    api_platform_free(f->p);
    make_server(f, false);
    int st;
    json_decref(call(f, "GET", "/metrics", NULL, NULL, &st));
    assert_int_equal(st, 401);
    json_decref(call(f, "GET", "/metrics", f->reader, NULL, &st));
    assert_int_equal(st, 403);
    http_loopback_resp r;
    char authz[200];
    snprintf(authz, sizeof authz, "Bearer %s", f->admin);
    assert_int_equal(http_loopback(f->srv, "GET", "/metrics", (const char *[]){"Authorization", authz, NULL}, NULL, 0, &r),
                     MD_OK);
    assert_int_equal(r.status, 200);
    http_loopback_resp_free(&r);
}

static void test_token_exchange(void **state)
{
    fx *f = *state;
    int st;
    json_t *j = call(f, "POST", "/api/auth/token", f->reader, NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(j, "token_type")), "Bearer");
    assert_string_equal(json_string_value(json_object_get(j, "role")), "read");
    assert_true(json_integer_value(json_object_get(j, "expires_in")) > 0);
    char tok[AUTH_JWT_MAX];
    snprintf(tok, sizeof tok, "%s", json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    /* the token is accepted like a key, and can be exchanged again */
    json_decref(call(f, "POST", "/api/auth/token", tok, "{}", &st));
    assert_int_equal(st, 200);
    /* tampered: flip a character of the signature */
    tok[strlen(tok) - 2] = tok[strlen(tok) - 2] == 'A' ? 'B' : 'A';
    j = call(f, "POST", "/api/auth/token", tok, NULL, &st);
    assert_int_equal(st, 401);
    assert_string_equal(err_code(j), "unauthorized");
    json_decref(j);
    j = call(f, "POST", "/api/auth/token", f->reader, "{\"ttl\":5}", &st);
    assert_int_equal(st, 400);
    assert_string_equal(err_field(j), "ttl");
    json_decref(j);
    json_decref(call(f, "POST", "/api/auth/token", NULL, NULL, &st));
    assert_int_equal(st, 401);
    md_err e;
    assert_int_equal(auth_revoke(f->au, f->reader_id, &e), MD_OK);
    j = call(f, "POST", "/api/auth/token", f->reader, NULL, &st);
    assert_int_equal(st, 401);
    json_decref(j);
}

static void test_audit_paging(void **state)
{
    fx *f = *state;
    md_err e;
    for (int i = 0; i < 5; i++)
        assert_int_equal(store_audit_append(f->st, "k1", "POST", "/api/x", 200 + i, "rid", 1000 + i, &e), MD_OK);
    int st;
    json_decref(call(f, "GET", "/api/admin/audit", f->reader, NULL, &st));
    assert_int_equal(st, 403);
    json_t *j = call(f, "GET", "/api/admin/audit?limit=2", f->admin, NULL, &st);
    assert_int_equal(st, 200);
    json_t *es = json_object_get(j, "entries");
    assert_int_equal(json_array_size(es), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(es, 0), "status")), 204); /* newest first */
    assert_true(json_integer_value(json_object_get(j, "total")) >= 5);
    json_int_t next = json_integer_value(json_object_get(j, "next_before"));
    assert_true(next > 0);
    json_decref(j);
    char target[96];
    snprintf(target, sizeof target, "/api/admin/audit?limit=2&before=%lld", (long long)next);
    j = call(f, "GET", target, f->admin, NULL, &st);
    assert_int_equal(st, 200);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(j, "entries"), 0), "status")), 202);
    json_decref(j);
    j = call(f, "GET", "/api/admin/audit?limit=0", f->admin, NULL, &st);
    assert_int_equal(st, 400);
    assert_string_equal(err_field(j), "limit");
    json_decref(j);
    j = call(f, "GET", "/api/admin/audit?before=abc", f->admin, NULL, &st);
    assert_int_equal(st, 400);
    json_decref(j);
}

static void test_audit_written_for_state_changes(void **state)
{
    fx *f = *state;
    md_err e;
    int64_t before = 0, after = 0;
    assert_int_equal(store_audit_count(f->st, &before, &e), MD_OK);
    int st;
    /* token issuance stores a refresh token: audited (issue 13) */
    json_decref(call(f, "POST", "/api/auth/token", f->admin, NULL, &st));
    assert_int_equal(st, 200);
    json_decref(call(f, "POST", "/api/test/echo", f->admin, "{\"a\":1}", &st));
    assert_int_equal(st, 200);
    json_decref(call(f, "GET", "/api/admin/audit", f->admin, NULL, &st)); /* a read: not audited */
    /* the writer is asynchronous: freeing the platform flushes it */
    http_server_free(f->srv);
    api_platform_free(f->p);
    make_server(f, true);
    assert_int_equal(store_audit_count(f->st, &after, &e), MD_OK);
    assert_int_equal(after, before + 2);
    store_audit_entry *es;
    size_t n;
    int64_t next;
    assert_int_equal(store_audit_list(f->st, &(store_audit_page){.limit = 1}, &es, &n, &next, &e), MD_OK);
    assert_string_equal(es[0].route, "/api/test/echo");
    assert_string_equal(es[0].method, "POST");
    assert_int_equal(es[0].status, 200);
    free(es);
}

/* Many audited requests in a row: the writer commits them in batches; every entry lands once,
 * in request order (X-Request-ID carries the sequence number). */
static void test_audit_batches_keep_every_entry_in_order(void **state)
{
    fx *f = *state;
    enum { N = 300 };
    char authz[1200], rid[32];
    snprintf(authz, sizeof authz, "Bearer %s", f->admin);
    for (int i = 0; i < N; i++) {
        snprintf(rid, sizeof rid, "seq-%d", i);
        const char *h[] = {"Authorization", authz, "Content-Type", "application/json", "X-Request-ID", rid, NULL};
        http_loopback_resp r;
        assert_int_equal(http_loopback(f->srv, "POST", "/api/test/echo", h, "{}", 2, &r), MD_OK);
        assert_int_equal(r.status, 200);
        http_loopback_resp_free(&r);
    }
    http_server_free(f->srv); /* freeing the platform flushes the writer */
    api_platform_free(f->p);
    make_server(f, true);
    md_err e;
    store_audit_entry *es;
    size_t n;
    int64_t next;
    assert_int_equal(store_audit_list(f->st, &(store_audit_page){.limit = 1000}, &es, &n, &next, &e), MD_OK);
    assert_int_equal(n, N);
    for (size_t i = 0; i < n; i++) { /* newest first */
        snprintf(rid, sizeof rid, "seq-%zu", N - 1 - i);
        assert_string_equal(es[i].request_id, rid);
        assert_string_equal(es[i].route, "/api/test/echo");
    }
    free(es);
}

static void test_slow_route(void **state)
{
    fx *f = *state;
    int st;
    json_t *j = call(f, "GET", "/api/test/slow?ms=1", NULL, NULL, &st);
    assert_int_equal(st, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "slept_ms")), 1);
    json_decref(j);
    json_decref(call(f, "GET", "/api/test/slow?ms=-5", NULL, NULL, &st));
    assert_int_equal(st, 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ready_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ready_store_unwritable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_admin_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_exchange, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_written_for_state_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_batches_keep_every_entry_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_route, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
