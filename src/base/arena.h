/* arena.h - a bump allocator for memory that lives exactly as long as one request or one job.
 *
 * Allocations are never freed one by one; md_arena_free() releases everything at once, which
 * is what lets a request build strings, JSON and buffers without a cleanup path for each.
 * Invariants:
 *   1. Every pointer returned is aligned to 16 bytes (enough for any scalar and SIMD loads).
 *   2. Large requests (more than a quarter of the chunk size) get a chunk of their own, so a
 *      big body does not waste the rest of a chunk.
 *   3. An arena is used by one thread at a time; it has no lock.
 */
#ifndef MD_BASE_ARENA_H
#define MD_BASE_ARENA_H

#include <stdarg.h>
#include <stddef.h>

typedef struct md_arena md_arena;

/* New arena whose chunks are chunk_size bytes (0 = 16 KiB). Returns NULL on OOM.
 * Ownership: new; free with md_arena_free(). */
md_arena *md_arena_new(size_t chunk_size);
/* Release the arena and every allocation made from it. NULL is a no-op. */
void md_arena_free(md_arena *a);

/* size bytes, uninitialised; NULL on OOM or when size overflows. Borrowed until md_arena_free. */
void *md_arena_alloc(md_arena *a, size_t size);
/* size bytes, zeroed. */
void *md_arena_calloc(md_arena *a, size_t n, size_t size);
/* Copy of s (NUL-terminated); NULL s gives NULL. */
char *md_arena_strdup(md_arena *a, const char *s);
/* Copy of n bytes of s plus a NUL. */
char *md_arena_strndup(md_arena *a, const char *s, size_t n);
/* printf into the arena. */
char *md_arena_printf(md_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *md_arena_vprintf(md_arena *a, const char *fmt, va_list ap);

/* Total bytes handed out (for metrics and tests). */
size_t md_arena_used(const md_arena *a);

#endif
