/* refcount_test.c - references under threads (src/models/registry.c): 8 threads acquire, run
 * and release add4 continuously while another thread makes 200 changes (activations, canary
 * percentages, promotions, rollbacks). No request may fail, every answer must come from the
 * version the request acquired (y - x is the version number), and that version must have been
 * ACTIVE or CANARY when it was handed out. A ninth thread renders describe and metrics. Built for
 * ASan here; TSan-clean by design (the serving set is reclaimed through the two-counter reader
 * epoch). */
#include "models_fixture.h"

#include <pthread.h>

#define READERS 8

typedef struct shared {
    mfx *f;
    atomic_bool stop;
    atomic_long answers, failures, wrong;
} shared;

static void *reader(void *arg)
{
    shared *sh = arg;
    while (!atomic_load(&sh->stop)) {
        mdl_version *v = NULL;
        md_err e = {0};
        if (mdl_acquire(sh->f->r, "add4", NULL, &v, &e) != MD_OK) {
            atomic_fetch_add(&sh->failures, 1);
            continue;
        }
        mdl_state st = mdl_version_state(v);
        int k = run_add(v, &e);
        /* the state may have moved on since (STANDBY, RETIRED), never back before serving */
        bool ok = k == atoi(mdl_version_id(v)) &&
                  (st == MDL_ACTIVE || st == MDL_CANARY || st == MDL_STANDBY || st == MDL_RETIRED);
        if (k <= 0)
            atomic_fetch_add(&sh->failures, 1);
        else if (!ok)
            atomic_fetch_add(&sh->wrong, 1);
        atomic_fetch_add(&sh->answers, 1);
        mdl_release(v);
    }
    return NULL;
}

/* describe and metrics read the same versions while they change */
static void *observer(void *arg)
{
    shared *sh = arg;
    while (!atomic_load(&sh->stop)) {
        json_t *d = NULL;
        if (mdl_describe(sh->f->r, "add4", NULL, &d, NULL) == MD_OK)
            json_decref(d);
        md_buf b;
        md_buf_init(&b, 1 << 20);
        mdl_metrics(&b, sh->f->r);
        md_buf_free(&b);
    }
    return NULL;
}

static void test_swap_under_readers(void **state)
{
    mfx *f = *state;
    copy_add4(f->shipped, "1", "1");
    copy_add4(f->shipped, "2", "2");
    copy_add4(f->shipped, "3", "3");
    mdl_registry_opts o = mfx_opts(f);
    o.clock = NULL;
    o.keep_standby = 1; /* retire often: frees happen while readers run */
    mfx_open(f, &o);
    shared sh = {.f = f};
    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, &sh), 0);
    pthread_t obs;
    assert_int_equal(pthread_create(&obs, NULL, observer, &sh), 0);
    static const char *const ids[] = {"1", "2", "3"};
    for (int i = 0; i < 200; i++) {
        md_err e = {0};
        const char *id = ids[i % 3];
        int rc;
        switch (i % 5) {
        case 0:
        case 1:
            rc = mdl_activate(f->r, "add4", id, &e);
            break;
        case 2:
            rc = mdl_canary(f->r, "add4", id, 30, &e);
            if (rc == MD_E_CONFLICT) /* id is the active one */
                rc = MD_OK;
            break;
        case 3:
            rc = mdl_promote(f->r, "add4", &e);
            if (rc == MD_E_CONFLICT)
                rc = MD_OK;
            break;
        default:
            rc = mdl_rollback(f->r, "add4", &e);
            if (rc == MD_E_CONFLICT)
                rc = MD_OK;
            break;
        }
        if (rc != MD_OK)
            print_error("change %d: %s\n", i, md_err_message(&e));
        assert_int_equal(rc, MD_OK);
    }
    atomic_store(&sh.stop, true);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    pthread_join(obs, NULL);
    assert_int_equal(atomic_load(&sh.failures), 0);
    assert_int_equal(atomic_load(&sh.wrong), 0);
    assert_true(atomic_load(&sh.answers) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_swap_under_readers, mfx_setup, mfx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
