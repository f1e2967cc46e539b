/* store_fixture.c - the shared store test fixture; see store_fixture.h. */
#include "common/store_fixture.h"

#include <stdlib.h>

int tu_store_setup_with(void **state, const store_opts *o, bool manual_clock)
{
    tu_store *f = calloc(1, sizeof *f);
    if (!f || !(f->dir = tu_mkdir())) {
        free(f);
        return -1;
    }
    md_manual_clock_init(&f->clk, TU_CLOCK_NS, TU_CLOCK_MS);
    store_opts so = o ? *o : (store_opts){0};
    so.data_dir = f->dir;
    so.clock = manual_clock ? &f->clk.clock : NULL;
    if (store_open(&so, &f->s, NULL) != MD_OK) {
        tu_rmdir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

int tu_store_setup(void **state)
{
    return tu_store_setup_with(state, NULL, true);
}

int tu_store_teardown(void **state)
{
    tu_store *f = *state;
    store_unref(f->s);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}
