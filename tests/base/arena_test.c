/* arena_test.c - the request arena: alignment, big allocations, strings, overflow. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/arena.h"

static void test_alignment_and_growth(void **state)
{
    (void)state;
    md_arena *a = md_arena_new(256);
    assert_non_null(a);
    for (int i = 1; i < 500; i++) {
        unsigned char *p = md_arena_alloc(a, (size_t)i % 37 + 1);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 0xab, (size_t)i % 37 + 1);
    }
    md_arena_free(a);
}

static void test_big_allocation_keeps_head_space(void **state)
{
    (void)state;
    md_arena *a = md_arena_new(1024);
    char *small1 = md_arena_alloc(a, 16);
    char *big = md_arena_alloc(a, 100000);
    char *small2 = md_arena_alloc(a, 16);
    assert_non_null(big);
    memset(big, 1, 100000);
    /* the second small allocation continues right after the first one */
    assert_ptr_equal(small2, small1 + 16);
    assert_true(md_arena_used(a) >= 100032);
    md_arena_free(a);
}

static void test_strings(void **state)
{
    (void)state;
    md_arena *a = md_arena_new(0);
    assert_string_equal(md_arena_strdup(a, "hello"), "hello");
    assert_string_equal(md_arena_strndup(a, "hello", 3), "hel");
    assert_null(md_arena_strdup(a, NULL));
    assert_string_equal(md_arena_printf(a, "%d-%s", 42, "x"), "42-x");
    char *zero = md_arena_calloc(a, 10, 10);
    for (int i = 0; i < 100; i++)
        assert_int_equal(zero[i], 0);
    md_arena_free(a);
}

static void test_overflow_refused(void **state)
{
    (void)state;
    md_arena *a = md_arena_new(0);
    assert_null(md_arena_alloc(a, SIZE_MAX));
    assert_null(md_arena_calloc(a, SIZE_MAX / 2, 4));
    md_arena_free(a);
    md_arena_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment_and_growth),
        cmocka_unit_test(test_big_allocation_keeps_head_space),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_overflow_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
