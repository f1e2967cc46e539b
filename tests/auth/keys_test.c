/* keys_test.c - API keys and the verifier: create (shown once, stored as a hash), verify by
 * Authorization and X-API-Key, wrong secret, unknown id, revoke through the handle (at once)
 * and from another connection (the CLI's case, via the revalidation), bootstrap admin key,
 * roles, JWT exchange bound to its key, the secret file, and threads verifying while a key is
 * revoked. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/auth.h"
#include "common/tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/stat.h>

typedef struct fixture {
    char *dir;
    md_manual_clock clk;
    store *s;
    auth *a;
} fixture;

static int open_auth(fixture *f, const char *secret)
{
    auth_opts ao = {.store = f->s, .clock = &f->clk.clock, .jwt_secret = secret,
                    .revalidate_ms = -1};
    return auth_open(&ao, &f->a, NULL);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_mkdir();
    md_manual_clock_init(&f->clk, 1000, 1700000000000);
    store_opts o = {.data_dir = f->dir};
    if (store_open(&o, &f->s, NULL) != MD_OK || open_auth(f, NULL) != MD_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    auth_close(f->a);
    store_unref(f->s);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static void test_create_and_verify(void **state)
{
    fixture *f = *state;
    md_err e;
    auth_new_key k;
    assert_int_equal(auth_key_create(f->s, AUTH_ROLE_WRITE, "ci runner", &k, &e), MD_OK);
    assert_int_equal(strncmp(k.key, "mdk_", 4), 0);
    assert_int_equal(strlen(k.key), 4 + AUTH_KEY_ID_LEN + 1 + 43);
    assert_int_equal(strncmp(k.key + 4, k.row.id, AUTH_KEY_ID_LEN), 0);
    /* Only the hash is stored: the row holds no part of the secret. */
    store_key row;
    assert_int_equal(store_keys_get(f->s, k.row.id, &row, &e), MD_OK);
    assert_null(memmem(&row, sizeof row, k.key + 17, 20));
    auth_principal p;
    char hdr[200];
    snprintf(hdr, sizeof hdr, "Bearer %s", k.key);
    assert_int_equal(auth_check_headers(f->a, hdr, NULL, &p, &e), MD_OK);
    assert_string_equal(p.key_id, k.row.id);
    assert_int_equal(p.role, AUTH_ROLE_WRITE);
    assert_int_equal(p.via_jwt, 0);
    assert_int_equal(auth_check_headers(f->a, NULL, k.key, &p, &e), MD_OK);
    assert_int_equal(auth_require(&p, AUTH_ROLE_READ, &e), MD_OK);
    assert_int_equal(auth_require(&p, AUTH_ROLE_WRITE, &e), MD_OK);
    assert_int_equal(auth_require(&p, AUTH_ROLE_ADMIN, &e), MD_E_FORBIDDEN);
    assert_int_equal(auth_require(NULL, AUTH_ROLE_READ, &e), MD_E_UNAUTHORIZED);
    assert_int_equal(auth_require(NULL, AUTH_ROLE_NONE, &e), MD_OK);
    auth_new_key_wipe(&k);
    assert_string_equal(k.key, "");
}

static void test_refusals(void **state)
{
    fixture *f = *state;
    md_err e;
    auth_new_key k;
    auth_principal p;
    assert_int_equal(auth_key_create(f->s, AUTH_ROLE_READ, "r", &k, &e), MD_OK);
    char bad[AUTH_KEY_MAX];
    snprintf(bad, sizeof bad, "%s", k.key);
    bad[30] = bad[30] == 'A' ? 'B' : 'A';   /* right id, wrong secret */
    assert_int_equal(auth_check_credential(f->a, bad, strlen(bad), &p, &e), MD_E_UNAUTHORIZED);
    assert_string_equal(md_err_message(&e), "invalid API key");
    memcpy(bad, k.key, sizeof bad);
    bad[5] = bad[5] == 'a' ? 'b' : 'a';     /* unknown id */
    assert_int_equal(auth_check_credential(f->a, bad, strlen(bad), &p, &e), MD_E_UNAUTHORIZED);
    const char *junk[] = {"mdk_", "mdk_zzzzzzzzzzzz_x", "nothing", "a.b.c"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        assert_int_equal(auth_check_credential(f->a, junk[i], strlen(junk[i]), &p, &e),
                         MD_E_UNAUTHORIZED);
    assert_int_equal(auth_check_headers(f->a, NULL, NULL, &p, &e), MD_E_UNAUTHORIZED);
    assert_string_equal(md_err_message(&e), "missing credentials");
    assert_int_equal(auth_check_headers(f->a, "Basic Zm9vOmJhcg==", k.key, &p, &e),
                     MD_E_UNAUTHORIZED);   /* a bad Authorization is not rescued by X-API-Key */
    assert_string_equal(e.field, "Authorization");
    assert_int_equal(auth_key_create(f->s, AUTH_ROLE_NONE, "x", &k, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "role");
    assert_int_equal(auth_key_create(f->s, AUTH_ROLE_READ, "", &k, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "name");
    assert_int_equal(auth_key_create(f->s, AUTH_ROLE_READ, "a\nb", &k, &e), MD_E_INVALID_PARAM);
    auth_role r;
    assert_int_equal(auth_role_parse("admin", &r, &e), MD_OK);
    assert_int_equal(r, AUTH_ROLE_ADMIN);
    assert_int_equal(auth_role_parse("root", &r, &e), MD_E_INVALID_PARAM);
    assert_string_equal(auth_role_name(AUTH_ROLE_WRITE), "write");
}

static void test_revoke_via_handle(void **state)
{
    fixture *f = *state;
    md_err e;
    auth_new_key k;
    auth_principal p;
    assert_int_equal(auth_key_create(f->s, AUTH_ROLE_ADMIN, "ops", &k, &e), MD_OK);
    assert_int_equal(auth_check_credential(f->a, k.key, strlen(k.key), &p, &e), MD_OK);   /* cached */
    assert_int_equal(auth_revoke(f->a, k.row.id, &e), MD_OK);
    assert_int_equal(auth_check_credential(f->a, k.key, strlen(k.key), &p, &e), MD_E_UNAUTHORIZED);
    assert_string_equal(md_err_message(&e), "API key revoked");
    assert_int_equal(auth_revoke(f->a, "000000000000", &e), MD_E_NOT_FOUND);
}

/* Revoke a key through a second connection to the data dir, as `modeld keys revoke` does from
 * another process (auth's cache learns of it only through the store). */
static void revoke_elsewhere(fixture *f, const char *id)
{
    store_opts o = {.data_dir = f->dir};
    store *other = NULL;
    assert_int_equal(store_open(&o, &other, NULL), MD_OK);
    assert_int_equal(store_keys_revoke(other, id, NULL), MD_OK);
    store_unref(other);
}

static void test_revoke_from_other_process(void **state)
{
    fixture *f = *state;
    md_err e;
    auth_new_key k;
    auth_principal p;
    assert_int_equal(auth_key_create(f->s, AUTH_ROLE_READ, "cli", &k, &e), MD_OK);
    assert_int_equal(auth_check_credential(f->a, k.key, strlen(k.key), &p, &e), MD_OK);
    revoke_elsewhere(f, k.row.id);
    assert_int_equal(auth_check_credential(f->a, k.key, strlen(k.key), &p, &e), MD_E_UNAUTHORIZED);
}

static void test_revalidate_interval(void **state)
{
    fixture *f = *state;
    md_err e;
    auth_close(f->a);
    auth_opts ao = {.store = f->s, .clock = &f->clk.clock, .revalidate_ms = 100};
    assert_int_equal(auth_open(&ao, &f->a, &e), MD_OK);
    auth_new_key k;
    auth_principal p;
    assert_int_equal(auth_key_create(f->s, AUTH_ROLE_READ, "cli", &k, &e), MD_OK);
    assert_int_equal(auth_check_credential(f->a, k.key, strlen(k.key), &p, &e), MD_OK);
    revoke_elsewhere(f, k.row.id);
    f->clk.ns += 50 * 1000000ull;   /* within the interval the cache answers */
    assert_int_equal(auth_check_credential(f->a, k.key, strlen(k.key), &p, &e), MD_OK);
    f->clk.ns += 51 * 1000000ull;   /* past it the change is noticed */
    assert_int_equal(auth_check_credential(f->a, k.key, strlen(k.key), &p, &e), MD_E_UNAUTHORIZED);
}

static void test_bootstrap(void **state)
{
    fixture *f = *state;
    md_err e;
    auth_new_key k;
    int created = 0;
    assert_int_equal(auth_key_bootstrap(f->s, &k, &created, &e), MD_OK);
    assert_int_equal(created, 1);
    assert_int_equal(k.row.role, AUTH_ROLE_ADMIN);
    auth_principal p;
    assert_int_equal(auth_check_credential(f->a, k.key, strlen(k.key), &p, &e), MD_OK);
    assert_int_equal(p.role, AUTH_ROLE_ADMIN);
    auth_new_key k2;
    assert_int_equal(auth_key_bootstrap(f->s, &k2, &created, &e), MD_OK);
    assert_int_equal(created, 0);   /* keys exist: nothing printed on the next start */
    assert_int_equal(auth_revoke(f->a, k.row.id, &e), MD_OK);
    assert_int_equal(auth_key_bootstrap(f->s, &k2, &created, &e), MD_OK);
    assert_int_equal(created, 1);   /* all keys revoked: lock-out recovery on restart */
}

static void test_token_exchange(void **state)
{
    fixture *f = *state;
    md_err e;
    auth_new_key k;
    auth_principal p, tp, tp2;
    assert_int_equal(auth_key_create(f->s, AUTH_ROLE_WRITE, "app", &k, &e), MD_OK);
    assert_int_equal(auth_check_credential(f->a, k.key, strlen(k.key), &p, &e), MD_OK);
    char tok[AUTH_JWT_MAX], hdr[AUTH_JWT_MAX + 16];
    int64_t ttl = 0;
    assert_int_equal(auth_issue_token(f->a, &p, tok, sizeof tok, &ttl, &e), MD_OK);
    assert_int_equal(ttl, 900);
    snprintf(hdr, sizeof hdr, "Bearer %s", tok);
    assert_int_equal(auth_check_headers(f->a, hdr, NULL, &tp, &e), MD_OK);
    assert_int_equal(tp.via_jwt, 1);
    assert_int_equal(tp.role, AUTH_ROLE_WRITE);
    assert_string_equal(tp.key_id, k.row.id);
    /* A token cannot buy a longer one. */
    f->clk.ms += 600 * 1000;
    char tok2[AUTH_JWT_MAX];
    assert_int_equal(auth_issue_token(f->a, &tp, tok2, sizeof tok2, &ttl, &e), MD_OK);
    assert_int_equal(ttl, 300);
    assert_int_equal(auth_check_credential(f->a, tok2, strlen(tok2), &tp2, &e), MD_OK);
    f->clk.ms += 300 * 1000;   /* both expired */
    assert_int_equal(auth_check_credential(f->a, tok, strlen(tok), &tp2, &e), MD_E_UNAUTHORIZED);
    assert_string_equal(md_err_message(&e), "token expired");
    f->clk.ms -= 100 * 1000;
    assert_int_equal(auth_revoke(f->a, k.row.id, &e), MD_OK);   /* the token dies with its key */
    assert_int_equal(auth_check_credential(f->a, tok, strlen(tok), &tp2, &e), MD_E_UNAUTHORIZED);
    assert_string_equal(md_err_message(&e), "the token's API key is unknown or revoked");
    auth_principal anon = {0};
    assert_int_equal(auth_issue_token(f->a, &anon, tok, sizeof tok, &ttl, &e), MD_E_UNAUTHORIZED);
}

static void test_secret_file(void **state)
{
    fixture *f = *state;
    md_err e;
    char path[700];
    snprintf(path, sizeof path, "%s/jwt.secret", f->dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    auth_new_key k;
    auth_principal p;
    assert_int_equal(auth_key_create(f->s, AUTH_ROLE_READ, "x", &k, &e), MD_OK);
    assert_int_equal(auth_check_credential(f->a, k.key, strlen(k.key), &p, &e), MD_OK);
    char tok[AUTH_JWT_MAX];
    assert_int_equal(auth_issue_token(f->a, &p, tok, sizeof tok, NULL, &e), MD_OK);
    /* A restart reads the same secret: the token stays valid. */
    auth_close(f->a);
    assert_int_equal(open_auth(f, NULL), MD_OK);
    assert_int_equal(auth_check_credential(f->a, tok, strlen(tok), &p, &e), MD_OK);
    /* A different secret (e.g. MODELD_JWT_SECRET) refuses it. */
    auth_close(f->a);
    assert_int_equal(open_auth(f, "another-secret-of-at-least-32-bytes!"), MD_OK);
    assert_int_equal(auth_check_credential(f->a, tok, strlen(tok), &p, &e), MD_E_UNAUTHORIZED);
    auth_close(f->a);
    f->a = NULL;
    auth_opts ao = {.store = f->s, .jwt_secret = "short"};
    assert_int_equal(auth_open(&ao, &f->a, &e), MD_E_INVALID_PARAM);
    assert_string_equal(e.field, "jwt_secret");
    assert_null(f->a);
}

/* Servers starting at once on a fresh data dir all end up with the one secret file. */
typedef struct opener {
    store *s;
    auth *a;
    int rc;
} opener;

static void *open_one(void *arg)
{
    opener *o = arg;
    auth_opts ao = {.store = o->s};
    o->rc = auth_open(&ao, &o->a, NULL);
    return NULL;
}

static void test_secret_created_once(void **state)
{
    (void)state;
    char *dir = tu_mkdir();
    store_opts so = {.data_dir = dir};
    opener o[4] = {{0}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(store_open(&so, &o[i].s, NULL), MD_OK);
        pthread_create(&t[i], NULL, open_one, &o[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(o[i].rc, MD_OK);
    }
    auth_new_key k;
    auth_principal p;
    char tok[AUTH_JWT_MAX];
    assert_int_equal(auth_key_create(o[0].s, AUTH_ROLE_READ, "x", &k, NULL), MD_OK);
    assert_int_equal(auth_check_credential(o[0].a, k.key, strlen(k.key), &p, NULL), MD_OK);
    assert_int_equal(auth_issue_token(o[0].a, &p, tok, sizeof tok, NULL, NULL), MD_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(auth_check_credential(o[i].a, tok, strlen(tok), &p, NULL), MD_OK);
        auth_close(o[i].a);
        store_unref(o[i].s);
    }
    assert_int_equal(tu_count_files(dir, "."), 1 + 1);   /* modeld.db + jwt.secret, no tmp */
    tu_rmdir(dir);
}

/* Threads verifying one key while the main thread revokes it: no crash, no race (TSan/ASan),
 * and after the revocation returns, every check fails. */
typedef struct worker {
    auth *a;
    const char *key;
    atomic_int *stop;
    atomic_int ok, refused;
} worker;

static void *verify_loop(void *arg)
{
    worker *w = arg;
    auth_principal p;
    while (!atomic_load(w->stop)) {
        if (auth_check_credential(w->a, w->key, strlen(w->key), &p, NULL) == MD_OK)
            atomic_fetch_add(&w->ok, 1);
        else
            atomic_fetch_add(&w->refused, 1);
    }
    return NULL;
}

static void test_concurrent_verify_and_revoke(void **state)
{
    fixture *f = *state;
    auth_new_key k, other;
    assert_int_equal(auth_key_create(f->s, AUTH_ROLE_READ, "hot", &k, NULL), MD_OK);
    assert_int_equal(auth_key_create(f->s, AUTH_ROLE_READ, "other", &other, NULL), MD_OK);
    atomic_int stop;
    atomic_init(&stop, 0);
    worker w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i].a = f->a;
        w[i].key = i % 2 ? k.key : other.key;
        w[i].stop = &stop;
        atomic_init(&w[i].ok, 0);
        atomic_init(&w[i].refused, 0);
        pthread_create(&t[i], NULL, verify_loop, &w[i]);
    }
    /* Revoke only once every worker is in its loop (no timing: wait for their counters). */
    for (int i = 0; i < 4; i++)
        while (atomic_load(&w[i].ok) == 0)
            sched_yield();
    auth_principal p;
    for (int i = 0; i < 200; i++)
        assert_int_equal(auth_check_credential(f->a, k.key, strlen(k.key), &p, NULL), MD_OK);
    assert_int_equal(auth_revoke(f->a, k.row.id, NULL), MD_OK);
    for (int i = 0; i < 200; i++)
        assert_int_equal(auth_check_credential(f->a, k.key, strlen(k.key), &p, NULL),
                         MD_E_UNAUTHORIZED);
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&w[0].refused) + atomic_load(&w[2].refused), 0);
    assert_true(atomic_load(&w[0].ok) > 0);   /* the other key kept working throughout */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_via_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_from_other_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revalidate_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bootstrap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_exchange, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_verify_and_revoke, setup, teardown),
        cmocka_unit_test(test_secret_created_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
