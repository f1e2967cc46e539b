/* arena.c - chunked bump allocator; see arena.h for the invariants. */
#include "base/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 16u

typedef struct chunk {
    struct chunk *prev;
    size_t cap;  /* usable bytes in data */
    size_t used;
    _Alignas(16) unsigned char data[];
} chunk;

struct md_arena {
    chunk *head;
    size_t chunk_size;
    size_t total;
};

static size_t align_up(size_t n) { return (n + (ALIGN - 1)) & ~(size_t)(ALIGN - 1); }

md_arena *md_arena_new(size_t chunk_size)
{
    md_arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->chunk_size = chunk_size ? chunk_size : 16384;
    return a;
}

void md_arena_free(md_arena *a)
{
    if (!a)
        return;
    chunk *c = a->head;
    while (c) {
        chunk *p = c->prev;
        free(c);
        c = p;
    }
    free(a);
}

static chunk *chunk_new(size_t cap)
{
    if (cap > SIZE_MAX - sizeof(chunk))
        return NULL;
    chunk *c = malloc(sizeof(chunk) + cap);
    if (!c)
        return NULL;
    c->cap = cap;
    c->used = 0;
    c->prev = NULL;
    return c;
}

void *md_arena_alloc(md_arena *a, size_t size)
{
    if (size > SIZE_MAX - ALIGN)
        return NULL;
    size_t need = align_up(size ? size : 1);
    if (a->head && a->head->cap - a->head->used >= need) {
        void *p = a->head->data + a->head->used;
        a->head->used += need;
        a->total += need;
        return p;
    }
    if (need > a->chunk_size / 4) {
        /* Dedicated chunk, linked below the head so the head keeps its free space. */
        chunk *c = chunk_new(need);
        if (!c)
            return NULL;
        c->used = need;
        if (a->head) {
            c->prev = a->head->prev;
            a->head->prev = c;
        } else {
            a->head = c;
        }
        a->total += need;
        return c->data;
    }
    chunk *c = chunk_new(a->chunk_size);
    if (!c)
        return NULL;
    c->prev = a->head;
    a->head = c;
    c->used = need;
    a->total += need;
    return c->data;
}

void *md_arena_calloc(md_arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = md_arena_alloc(a, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

char *md_arena_strndup(md_arena *a, const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *p = md_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *md_arena_strdup(md_arena *a, const char *s)
{
    return s ? md_arena_strndup(a, s, strlen(s)) : NULL;
}

char *md_arena_vprintf(md_arena *a, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *p = md_arena_alloc(a, (size_t)n + 1);
    if (p)
        vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *md_arena_printf(md_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = md_arena_vprintf(a, fmt, ap);
    va_end(ap);
    return p;
}

size_t md_arena_used(const md_arena *a) { return a->total; }

