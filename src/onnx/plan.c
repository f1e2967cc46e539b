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
 * Invariants:
 *   1. Plans are only added, never changed or removed, while the model lives; they are found
 *      and added under m->mu, so the model stays logically immutable (onnx_int.h inv. 1).
 *   2. Two events overlap in memory only if their lifetimes [node, last_use] are disjoint.
 *   3. A recycled run state belongs to exactly one plan's free list or one caller at a time.
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
    e->rec[e->n_rec++] = (onnx__event){.node = e->cur_node, .value = value, .bytes = bytes};
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

/* Greedy offsets: largest first, each at the lowest offset clear of every placed event whose
 * lifetime overlaps (invariant 2). */
static size_t assign_offsets(const onnx_model *m, onnx__event *ev, int n)
{
    int *order = malloc(((size_t)n + 1) * sizeof(int));
    int *placed = malloc(((size_t)n + 1) * sizeof(int));
    if (!order || !placed) {
        free(order);
        free(placed);
        return SIZE_MAX;
    }
    for (int i = 0; i < n; i++)
        order[i] = i;
    qsort_r(order, (size_t)n, sizeof(int), cmp_size_desc, ev);
    size_t total = 0;
    for (int k = 0; k < n; k++) {
        onnx__event *a = &ev[order[k]];
        int a0 = a->node, a1 = end_of(m, a);
        size_t off = 0;
        for (bool moved = true; moved;) {
            moved = false;
            for (int q = 0; q < k; q++) {
                const onnx__event *b = &ev[placed[q]];
                if (end_of(m, b) < a0 || b->node > a1)
                    continue; /* lifetimes disjoint */
                if (off < b->offset + b->bytes && b->offset < off + a->bytes) {
                    off = b->offset + b->bytes;
                    moved = true;
                }
            }
        }
        a->offset = off;
        placed[k] = order[k];
        if (off + a->bytes > total)
            total = off + a->bytes;
    }
    free(order);
    free(placed);
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
