/* plan.c - per-input-shape memory plans and recycled run states.
 *
 * The first run of a model with a given set of input shapes is a recording run: every
 * allocation (node outputs and scratch) gets its own block and is recorded with its size and
 * lifetime (from the producing node to the last node that reads the value); a block is freed as
 * soon as the node that last reads it has run (onnx__exec_node_done), so the recording run
 * holds the live set, not every activation of the graph (a 150-convolution super-resolution
 * net on a 128x128 tile held 3.9 GB before, about the plan's size now).
 * When the run ends, the recording becomes a plan: each allocation gets a fixed offset in one
 * block, reusing memory whose value is dead (greedy, largest first). Later runs with the same
 * shapes take a recycled run state whose block is already the planned size, so they allocate
 * nothing. If a run asks for something the plan did not foresee (data-dependent shapes), it
 * goes on from the spill arena: slower, never wrong.
 *
 * Views. A channel Concat of N = 1 tensors is its inputs laid one after another, so when an
 * input's producer can write it straight into the Concat's output, the copy is not needed. The
 * recording run notes each whole-input copy a Concat makes (onnx__plan_note_view: which block
 * went where); the plan then makes such an input's event a view of the Concat's output event
 * (parent, rel), and the Concat, finding the input already at its place, copies nothing
 * (ops/concat.c). A Concat output that is itself an input of a later Concat (the dense blocks of
 * RDN / RRDN nets chain four: each the previous one plus a few channels) becomes a view in turn,
 * so a whole chain shares the last Concat's block. An event and the views under it form a group,
 * placed as one block that lives from the first member's producer to the last member's last
 * reader; an input read after its Concat's output is dead stays apart (apply_views), so that a
 * group never outlives its Concat. MODELD_ONNX_NO_CATVIEW=1 (read at load by ops/concat.c)
 * makes no notes, to compare.
 *
 * Invariants:
 *   1. Plans are only added, never changed or removed, while the model lives; they are found
 *      and added under m->mu, so the model stays logically immutable (onnx_int.h inv. 1).
 *   2. Two groups overlap in memory only if their lifetimes (the union of their members'
 *      [node, last_use]) are disjoint. Inside a group, two events overlap only when one holds
 *      the other (the outer one is a Concat output made of the inner one's bytes, which nothing
 *      but the inner one's producer writes); siblings are disjoint.
 *   3. A recycled run state belongs to exactly one plan's free list or one caller at a time.
 *   4. A view comes only from what the recording run saw: the input's block was the one handed
 *      out for its value (its producer wrote it there), it was copied whole into the block just
 *      handed out for the Concat's output, at a multiple of ALIGN (every block stays aligned),
 *      within that block, and not read after the Concat's output; an event is a view of at most
 *      one parent, always a later event.
 */
#include "onnx/model.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN 64u
#define MAX_FREE_PER_PLAN 4

static size_t align_up(size_t n) { return (n + (ALIGN - 1)) & ~(size_t)(ALIGN - 1); }

/* Key: dtype, rank, dims of every input. *len gets its length; buf must hold 10 per input. */
static size_t make_key(const onnx_model *m, const onnx_tensor *in, int64_t *buf)
{
    size_t k = 0;
    for (size_t i = 0; i < m->n_inputs; i++) {
        buf[k++] = in[i].dtype;
        buf[k++] = in[i].rank;
        for (int d = 0; d < in[i].rank; d++)
            buf[k++] = in[i].dims[d];
    }
    return k;
}

static onnx__plan *find_plan(const onnx_model *m, const int64_t *key, size_t len)
{
    for (onnx__plan *p = m->plans; p; p = p->next)
        if (p->key_len == len && memcmp(p->key, key, len * sizeof *key) == 0)
            return p;
    return NULL;
}

static int end_of(const onnx_model *m, const onnx__event *ev);

/* Free the recording run's blocks still held (graph outputs, a failed run's values). */
static void rec_mem_free(onnx__exec *e)
{
    for (int i = 0; e->rec_mem && i < e->n_rec; i++) {
        free(e->rec_mem[i]);
        e->rec_mem[i] = NULL;
    }
    e->rec_swept = 0;
}

void onnx__exec_node_done(onnx__exec *e, int node)
{
    if (!e->recording)
        return;
    bool all = true;
    for (int i = e->rec_swept; i < e->n_rec; i++) {
        if (!e->rec_mem[i])
            continue;
        if (end_of(e->m, &e->rec[i]) <= node) {
            free(e->rec_mem[i]);
            e->rec_mem[i] = NULL;
        } else if (all) {
            e->rec_swept = i;
            all = false;
        }
    }
    if (all)
        e->rec_swept = e->n_rec;
}

static void exec_destroy(onnx__exec *e)
{
    if (!e)
        return;
    rec_mem_free(e);
    free(e->rec_mem);
    free(e->views);
    md_arena_free(e->spill);
    free(e->base);
    free(e->rec);
    free(e->vals);
    free(e->have);
    free(e->in_ptrs);
    free(e->tmp_outs);
    free(e->outs);
    free(e);
}

/* A fresh run state sized for m. Ownership: new (exec_destroy / onnx__plan_release). */
static onnx__exec *exec_new(const onnx_model *m)
{
    onnx__exec *e = calloc(1, sizeof(onnx_result));
    if (!e)
        return NULL;
    e->m = m;
    e->vals = calloc((size_t)m->n_values + 1, sizeof *e->vals);
    e->have = calloc((size_t)m->n_values + 1, sizeof *e->have);
    e->in_ptrs = calloc((size_t)m->max_in + 1, sizeof *e->in_ptrs);
    e->tmp_outs = calloc((size_t)m->max_out + 1, sizeof *e->tmp_outs);
    e->outs = calloc(m->n_outputs + 1, sizeof *e->outs);
    if (!e->vals || !e->have || !e->in_ptrs || !e->tmp_outs || !e->outs) {
        exec_destroy(e);
        return NULL;
    }
    return e;
}

int onnx__plan_acquire(const onnx_model *cm, const onnx_tensor *inputs, onnx__exec **out,
                       md_err *err)
{
    onnx_model *m = (onnx_model *)cm; /* only the mutex-guarded cache is touched */
    int64_t *key = malloc((m->n_inputs * (ONNX_MAX_RANK + 2) + 1) * sizeof *key);
    if (!key)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    size_t len = make_key(m, inputs, key);
    onnx__exec *e = NULL;
    pthread_mutex_lock(&m->mu);
    onnx__plan *p = find_plan(m, key, len);
    if (p && p->free_list) {
        e = p->free_list;
        p->free_list = e->next_free;
        p->n_free--;
    }
    pthread_mutex_unlock(&m->mu);
    free(key);
    if (!e)
        e = exec_new(m);
    if (!e)
        return md_fail(err, MD_E_NOMEM, NULL, "out of memory");
    e->plan = p;
    e->recording = p == NULL;
    e->spilled = false;
    e->next_event = 0;
    e->n_rec = 0;
    e->n_views = 0;
    e->next_free = NULL;
    if (p && e->base_size < p->total) {
        free(e->base);
        e->base = aligned_alloc(ALIGN, align_up(p->total ? p->total : ALIGN));
        e->base_size = e->base ? p->total : 0;
        if (!e->base) {
            exec_destroy(e);
            return md_fail(err, MD_E_NOMEM, NULL, "out of memory for the run arena");
        }
    }
    *out = e;
    return MD_OK;
}

void onnx__plan_release(onnx__exec *e)
{
    if (!e)
        return;
    onnx_model *m = (onnx_model *)e->m;
    rec_mem_free(e);
    md_arena_free(e->spill);
    e->spill = NULL;
    onnx__plan *p = e->plan;
    bool kept = false;
    if (p) { /* the arena block is grown to the plan's size when next acquired */
        pthread_mutex_lock(&m->mu);
        if (p->n_free < MAX_FREE_PER_PLAN) {
            e->next_free = p->free_list;
            p->free_list = e;
            p->n_free++;
            kept = true;
        }
        pthread_mutex_unlock(&m->mu);
    }
    if (!kept)
        exec_destroy(e);
}

void onnx__plans_free(onnx_model *m)
{
    onnx__plan *p = m->plans;
    while (p) {
        onnx__plan *next = p->next;
        onnx__exec *e = p->free_list;
        while (e) {
            onnx__exec *n = e->next_free;
            exec_destroy(e);
            e = n;
        }
        free(p->key);
        free(p->events);
        free(p);
        p = next;
    }
    m->plans = NULL;
}

/* 64-byte aligned memory from the spill arena. */
static void *spill_alloc(onnx__exec *e, size_t bytes, md_err *err)
{
    if (!e->spill)
        e->spill = md_arena_new(1 << 20);
    unsigned char *p = e->spill ? md_arena_alloc(e->spill, bytes + ALIGN) : NULL;
    if (!p) {
        md_fail(err, MD_E_NOMEM, NULL, "out of memory (%zu bytes)", bytes);
        return NULL;
    }
    return (void *)(((uintptr_t)p + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
}

static int record(onnx__exec *e, int value, size_t bytes)
{
    if (e->n_rec == e->cap_rec) {
        int cap = e->cap_rec ? e->cap_rec * 2 : 64;
        onnx__event *r = realloc(e->rec, (size_t)cap * sizeof *r);
        if (!r)
            return -1;
        e->rec = r;
        void **mem = realloc(e->rec_mem, (size_t)cap * sizeof *mem);
        if (!mem)
            return -1;
        e->rec_mem = mem;
        e->cap_rec = cap;
    }
    e->rec_mem[e->n_rec] = NULL;
    e->rec[e->n_rec++] =
        (onnx__event){.node = e->cur_node, .value = value, .bytes = bytes, .parent = -1};
    return 0;
}

/* Serve one allocation of the current node (value = the value it will hold, -1 scratch). */
static void *exec_alloc_value(onnx__exec *e, int value, size_t bytes, md_err *err)
{
    bytes = align_up(bytes ? bytes : 1);
    if (e->recording) {
        if (record(e, value, bytes) != 0) {
            md_fail(err, MD_E_NOMEM, NULL, "out of memory");
            return NULL;
        }
        void *p = aligned_alloc(ALIGN, bytes); /* bytes is a multiple of ALIGN */
        if (!p)
            md_fail(err, MD_E_NOMEM, NULL, "out of memory (%zu bytes)", bytes);
        e->rec_mem[e->n_rec - 1] = p;
        return p;
    }
    if (e->plan && !e->spilled) {
        int j = e->next_event++;
        const onnx__event *ev = j < e->plan->n_events ? &e->plan->events[j] : NULL;
        if (ev && ev->node == e->cur_node && ev->bytes == bytes && ev->value == value)
            return e->base + ev->offset;
        e->spilled = true; /* data-dependent shapes: stop trusting the plan for this run */
    }
    return spill_alloc(e, bytes, err);
}

void *onnx__exec_alloc(onnx__exec *e, size_t bytes, md_err *err)
{
    return exec_alloc_value(e, -1, bytes, err);
}

void *onnx__exec_alloc_for(onnx__exec *e, int value, size_t bytes, md_err *err)
{
    return exec_alloc_value(e, value, bytes, err);
}

/* The recorded event of value whose block is data (latest first), or -1. */
static int event_of(const onnx__exec *e, int value, const void *data)
{
    for (int i = e->n_rec - 1; value >= 0 && i >= 0; i--)
        if (e->rec[i].value == value && e->rec_mem[i] == data)
            return i;
    return -1;
}

void onnx__plan_note_view(onnx__exec *e, int in_value, const void *in_data, int out_value,
                          const void *out_data, size_t rel)
{
    if (!e->recording || rel % ALIGN != 0)
        return;
    int child = event_of(e, in_value, in_data), parent = event_of(e, out_value, out_data);
    if (child < 0 || parent <= child)
        return; /* a graph input, a constant, a view made by an op: nothing to place */
    if (e->n_views == e->cap_views) {
        int cap = e->cap_views ? e->cap_views * 2 : 32;
        onnx__view *v = realloc(e->views, (size_t)cap * sizeof *v);
        if (!v)
            return; /* a view is an optimisation: without the note the Concat copies */
        e->views = v;
        e->cap_views = cap;
    }
    e->views[e->n_views++] = (onnx__view){.child = child, .parent = parent, .rel = rel};
}

static int cmp_size_desc(const void *a, const void *b, void *ctx)
{
    const onnx__event *ev = ctx;
    size_t x = ev[*(const int *)a].bytes, y = ev[*(const int *)b].bytes;
    return x < y ? 1 : x > y ? -1 : (*(const int *)a - *(const int *)b);
}

static int end_of(const onnx_model *m, const onnx__event *ev)
{
    if (ev->value < 0)
        return ev->node;
    int lu = m->values[ev->value].last_use;
    return lu > ev->node ? lu : ev->node;
}

/* Make the recording's notes views (invariant 4): an event joins the first parent noted for it,
 * if it fits inside that parent's block and is not read after the parent's last reader. That
 * last rule keeps a view from holding its whole group alive longer: a dense block's input x is
 * read again by the block's residual Add, after the last Concat's Conv, so x stays apart (one
 * copy of its channels, into the first Concat) and the chain's block is free once its Conv ran;
 * made a view, x kept the block of 192 channels alive for 64 (esrgan-thick's plan grew 16 %). */
static void apply_views(const onnx_model *m, onnx__event *ev, int n, const onnx__view *views,
                        int n_views)
{
    for (int i = 0; i < n_views; i++) {
        const onnx__view *v = &views[i];
        onnx__event *c = &ev[v->child];
        if (v->child < 0 || v->parent <= v->child || v->parent >= n || c->parent >= 0 ||
            v->rel % ALIGN != 0 || v->rel + c->bytes > ev[v->parent].bytes ||
            end_of(m, c) > end_of(m, &ev[v->parent]))
            continue;
        c->parent = v->parent;
        c->rel = v->rel;
    }
}

/* Per event: its group's root and its offset inside the root's block; per root: the group's
 * lifetime [g0, g1]. Parents are later events, so one backward pass sees a parent first. */
static void group_events(const onnx_model *m, const onnx__event *ev, int n, int *root, size_t *rel,
                         int *g0, int *g1)
{
    for (int i = n - 1; i >= 0; i--) {
        int p = ev[i].parent;
        root[i] = p < 0 ? i : root[p];
        rel[i] = p < 0 ? 0 : rel[p] + ev[i].rel;
        g0[i] = ev[i].node;
        g1[i] = end_of(m, &ev[i]);
    }
    for (int i = 0; i < n; i++) {
        int r = root[i];
        g0[r] = g0[i] < g0[r] ? g0[i] : g0[r];
        g1[r] = g1[i] > g1[r] ? g1[i] : g1[r];
    }
}

/* Lowest offset for a block of bytes alive over [a0, a1], clear of the placed roots whose
 * lifetimes overlap (invariant 2). */
static size_t lowest_fit(const onnx__event *ev, const int *placed, int n_placed, const int *g0,
                         const int *g1, int a0, int a1, size_t bytes)
{
    size_t off = 0;
    for (bool moved = true; moved;) {
        moved = false;
        for (int q = 0; q < n_placed; q++) {
            const onnx__event *b = &ev[placed[q]];
            if (g1[placed[q]] < a0 || g0[placed[q]] > a1)
                continue; /* lifetimes disjoint */
            if (off < b->offset + b->bytes && b->offset < off + bytes) {
                off = b->offset + b->bytes;
                moved = true;
            }
        }
    }
    return off;
}

/* Greedy offsets: the groups' roots largest first, each at the lowest offset clear of every
 * placed root whose group lifetime overlaps (invariant 2); then each view at its root's offset
 * plus its place inside. SIZE_MAX on OOM. */
static size_t assign_offsets(const onnx_model *m, onnx__event *ev, int n)
{
    size_t cnt = (size_t)n + 1, total = 0;
    int *order = malloc(cnt * sizeof(int)), *placed = malloc(cnt * sizeof(int));
    int *root = malloc(cnt * sizeof(int)), *g0 = malloc(cnt * sizeof(int));
    int *g1 = malloc(cnt * sizeof(int));
    size_t *rel = malloc(cnt * sizeof(size_t));
    if (!order || !placed || !root || !g0 || !g1 || !rel) {
        total = SIZE_MAX;
        goto out;
    }
    group_events(m, ev, n, root, rel, g0, g1);
    int n_roots = 0;
    for (int i = 0; i < n; i++)
        if (root[i] == i)
            order[n_roots++] = i;
    qsort_r(order, (size_t)n_roots, sizeof(int), cmp_size_desc, ev);
    for (int k = 0; k < n_roots; k++) {
        onnx__event *a = &ev[order[k]];
        a->offset = lowest_fit(ev, placed, k, g0, g1, g0[order[k]], g1[order[k]], a->bytes);
        placed[k] = order[k];
        if (a->offset + a->bytes > total)
            total = a->offset + a->bytes;
    }
    for (int i = 0; i < n; i++)
        ev[i].offset = ev[root[i]].offset + rel[i];
out:
    free(order);
    free(placed);
    free(root);
    free(g0);
    free(g1);
    free(rel);
    return total;
}

/* Turn a finished recording run into a cached plan (if there is room and none raced us). */
int onnx__plan_finish(onnx__exec *e, const onnx_tensor *inputs)
{
    onnx_model *m = (onnx_model *)e->m;
    onnx__plan *p = calloc(1, sizeof *p);
    int64_t *key = malloc((m->n_inputs * (ONNX_MAX_RANK + 2) + 1) * sizeof *key);
    onnx__event *ev = malloc(((size_t)e->n_rec + 1) * sizeof *ev);
    if (!p || !key || !ev)
        goto drop;
    if (e->n_rec)
        memcpy(ev, e->rec, (size_t)e->n_rec * sizeof *ev);
    apply_views(m, ev, e->n_rec, e->views, e->n_views);
    p->total = assign_offsets(m, ev, e->n_rec);
    if (p->total == SIZE_MAX)
        goto drop;
    p->events = ev;
    p->n_events = e->n_rec;
    p->key = key;
    p->key_len = make_key(m, inputs, key);
    pthread_mutex_lock(&m->mu);
    bool add = m->n_plans < m->max_plans && !find_plan(m, key, p->key_len);
    if (add) {
        p->next = m->plans;
        m->plans = p;
        m->n_plans++;
        e->plan = p; /* this run state can now be recycled for the plan */
    }
    pthread_mutex_unlock(&m->mu);
    if (add)
        return 0;
drop:
    free(p);
    free(key);
    free(ev);
    return -1;
}
