/* cache.c - vec_cache: what many conversions of one image with different parameters share (the
 * AI search converts one image 5-60 times).
 *
 * 1. The region stage. Clustering, gradients and contours (most of a trace) depend only on the
 *    image and on the "region" parameters (colour mode, colour precision, layer difference,
 *    speckle filter, gradients, compositing and its background); the fitting that follows
 *    depends on the rest (mode, corner / length / splice thresholds, iterations, precision,
 *    layering). A search that moves a fitting parameter reuses the regions of its last
 *    VEC__CACHE_SLOTS region settings instead of clustering again.
 * 2. The measurement. SSIM is measured on the document (our rendering of its paths), so two
 *    documents that are equal field by field have the same SSIM bit for bit: the SSIM of the
 *    last VEC__CACHE_MEMO documents is kept by a 64-bit hash of their content (parameters that
 *    change nothing, e.g. max_iterations on a logo of straight edges, cost a trace, not a
 *    measurement).
 * 3. The source composited on white, the reference every SSIM compares with.
 *
 * Invariants:
 *   1. A cache serves one image: vec__cache_bind() empties it when it sees another (pointer,
 *      size or pixel buffer), so a stale stage is never reused.
 *   2. A conversion with a cache gives the same document, SVG and SSIM as one without (the
 *      stages are deterministic functions of the keys above); only the time differs.
 *   3. Images above VEC__CACHE_MAX_PIXELS are not cached (the stages of a 16 MP image would hold
 *      hundreds of MB); the cache then only counts misses.
 *   4. Not thread-safe: one conversion at a time per cache (the search is sequential).
 */
#include "vec_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct stage_slot {
    int used;
    uint64_t stamp; /* last use, for LRU */
    vec__stage_key key;
    vec__clusters c;
    vec__loops L;
} stage_slot;

typedef struct memo_slot {
    uint64_t hash; /* 0 = empty */
    int rgb_only;  /* 1: luma was not measured */
    vec_ssim_result ssim;
} memo_slot;

struct vec_cache {
    const md_image *img; /* the bound image (invariant 1): borrowed, compared only */
    const uint8_t *rgba;
    int w, h;
    uint64_t clock;
    stage_slot slot[VEC__CACHE_SLOTS];
    memo_slot memo[VEC__CACHE_MEMO];
    int memo_next;
    uint8_t *src; /* the source on white, w*h*3, or NULL until asked */
    vec_cache_stats stats;
};

int vec_cache_new(vec_cache **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? MD_OK : MD_E_NOMEM;
}

static void drop_all(vec_cache *c)
{
    for (int i = 0; i < VEC__CACHE_SLOTS; i++) {
        vec__clusters_free(&c->slot[i].c);
        vec__loops_free(&c->slot[i].L);
        memset(&c->slot[i], 0, sizeof c->slot[i]);
    }
    memset(c->memo, 0, sizeof c->memo);
    c->memo_next = 0;
    free(c->src);
    c->src = NULL;
}

void vec_cache_free(vec_cache *c)
{
    if (!c)
        return;
    drop_all(c);
    free(c);
}

vec_cache_stats vec_cache_get_stats(const vec_cache *c)
{
    vec_cache_stats none = {0};
    return c ? c->stats : none;
}

void vec__cache_bind(vec_cache *c, const md_image *img)
{
    if (c->img == img && c->rgba == img->rgba && c->w == img->width && c->h == img->height)
        return;
    drop_all(c);
    c->img = img;
    c->rgba = img->rgba;
    c->w = img->width;
    c->h = img->height;
}

static int cacheable(const vec_cache *c)
{
    return (int64_t)c->w * c->h <= VEC__CACHE_MAX_PIXELS;
}

vec__stage_key vec__stage_key_of(const vec_params *p)
{
    vec__stage_key k;
    memset(&k, 0, sizeof k); /* padding too: keys are compared with memcmp */
    k.colormode = (int)p->colormode;
    k.color_precision = p->colormode == VEC_BINARY ? 0 : p->color_precision;
    k.layer_difference = p->colormode == VEC_BINARY ? 0 : p->layer_difference;
    k.filter_speckle = p->filter_speckle;
    k.gradients = p->colormode == VEC_BINARY ? 0 : p->gradients;
    k.composite = p->composite;
    if (p->composite)
        memcpy(k.background, p->background, sizeof k.background);
    return k;
}

int vec__cache_stage(vec_cache *c, const vec__stage_key *k, const vec__clusters **cl,
                     const vec__loops **L)
{
    for (int i = 0; c && cacheable(c) && i < VEC__CACHE_SLOTS; i++) {
        stage_slot *s = &c->slot[i];
        if (s->used && memcmp(&s->key, k, sizeof *k) == 0) {
            s->stamp = ++c->clock;
            *cl = &s->c;
            *L = &s->L;
            c->stats.stage_hits++;
            return 1;
        }
    }
    if (c)
        c->stats.stage_misses++;
    return 0;
}

int vec__cache_keep_stage(vec_cache *c, const vec__stage_key *k, vec__clusters *cl, vec__loops *L,
                          const vec__clusters **kept_cl, const vec__loops **kept_L)
{
    if (!c || !cacheable(c))
        return 0;
    stage_slot *s = NULL; /* a free slot, else the least recently used */
    for (int i = 0; i < VEC__CACHE_SLOTS && !s; i++)
        s = c->slot[i].used ? NULL : &c->slot[i];
    for (int i = 0; !s && i < VEC__CACHE_SLOTS; i++)
        s = &c->slot[i];
    for (int i = 0; i < VEC__CACHE_SLOTS; i++)
        if (s->used && c->slot[i].stamp < s->stamp)
            s = &c->slot[i];
    vec__clusters_free(&s->c);
    vec__loops_free(&s->L);
    s->used = 1;
    s->stamp = ++c->clock;
    s->key = *k;
    s->c = *cl;
    s->L = *L;
    memset(cl, 0, sizeof *cl);
    memset(L, 0, sizeof *L);
    *kept_cl = &s->c;
    *kept_L = &s->L;
    return 1;
}

/* FNV-1a over n bytes. */
static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const uint8_t *b = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Field by field (never struct padding). */
static uint64_t hash_paint(uint64_t h, const vec_paint *f)
{
    int kind = (int)f->kind;
    float g[4] = {f->x1, f->y1, f->x2, f->y2};
    h = fnv(h, &kind, sizeof kind);
    h = fnv(h, f->rgba, sizeof f->rgba);
    h = fnv(h, g, sizeof g);
    h = fnv(h, &f->nstops, sizeof f->nstops);
    for (int i = 0; i < f->nstops && i < VEC_MAX_STOPS; i++) {
        h = fnv(h, &f->stops[i].offset, sizeof f->stops[i].offset);
        h = fnv(h, f->stops[i].rgba, sizeof f->stops[i].rgba);
    }
    return h;
}

uint64_t vec__doc_hash(const vec_doc *d)
{
    uint64_t h = 1469598103934665603ull;
    int dims[2] = {d->width, d->height};
    h = fnv(h, dims, sizeof dims);
    h = fnv(h, &d->npaths, sizeof d->npaths);
    for (size_t i = 0; i < d->npaths; i++) {
        const vec_path *p = &d->paths[i];
        h = hash_paint(h, &p->fill);
        h = fnv(h, &p->evenodd, sizeof p->evenodd);
        h = fnv(h, &p->nseg, sizeof p->nseg);
        for (size_t k = 0; k < p->nseg; k++) {
            int kind = (int)p->segs[k].kind;
            h = fnv(h, &kind, sizeof kind);
            h = fnv(h, p->segs[k].pt, sizeof p->segs[k].pt);
        }
    }
    return h ? h : 1; /* 0 marks an empty memo slot */
}

int vec__cache_ssim(vec_cache *c, uint64_t hash, int rgb_only, vec_ssim_result *out)
{
    for (int i = 0; c && i < VEC__CACHE_MEMO; i++) {
        const memo_slot *m = &c->memo[i];
        if (m->hash == hash && (rgb_only || !m->rgb_only)) {
            *out = m->ssim;
            if (rgb_only)
                out->luma = -1;
            c->stats.ssim_hits++;
            return 1;
        }
    }
    return 0;
}

void vec__cache_keep_ssim(vec_cache *c, uint64_t hash, int rgb_only, const vec_ssim_result *r)
{
    if (!c)
        return;
    memo_slot *m = &c->memo[c->memo_next];
    c->memo_next = (c->memo_next + 1) % VEC__CACHE_MEMO;
    m->hash = hash;
    m->rgb_only = rgb_only;
    m->ssim = *r;
}

const uint8_t *vec__cache_source(vec_cache *c)
{
    return c ? c->src : NULL;
}

void vec__cache_keep_source(vec_cache *c, uint8_t **src)
{
    if (!c || !cacheable(c) || c->src)
        return;
    c->src = *src;
    *src = NULL;
}
