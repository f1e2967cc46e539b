/* doc.c - the traced document: building it path by path and freeing it. */
#include "vec_int.h"

#include <stdlib.h>

void vec_doc_free(vec_doc *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->npaths; i++)
        free(d->paths[i].segs);
    free(d->paths);
    free(d);
}

int vec__doc_add(vec_doc *d, size_t *cap, const vec_paint *fill, vec__segs *segs)
{
    if (d->npaths == *cap) {
        size_t ncap = *cap ? 2 * *cap : 16;
        vec_path *np = realloc(d->paths, ncap * sizeof *np);
        if (np == NULL)
            return MD_E_NOMEM;
        d->paths = np;
        *cap = ncap;
    }
    vec_path *p = &d->paths[d->npaths++];
    p->fill = *fill;
    p->evenodd = 0; /* holes run against their outline: nonzero draws them */
    p->nseg = segs->n;
    p->segs = segs->s;
    segs->s = NULL;
    segs->n = segs->cap = 0;
    return MD_OK;
}

double vec__ms(uint64_t t0, uint64_t t1)
{
    return (double)(t1 - t0) / 1e6;
}
