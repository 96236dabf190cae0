/* buf/buf.c: an empty buffer without memory, reserve (first allocation,
 * sliding the bytes to the front, growing by doubling with the bytes kept),
 * consume (the tail stays), and free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf/buf.h"

/* Appends n bytes counting from `from`, as a receive would.  (Not inlined:
 * inlined after tf_buf_free, GCC's -O2 takes the empty buffer for one that
 * stays empty and warns of a write past it.) */
__attribute__((noinline)) static void put(tf_buf *b, size_t n, uint8_t from)
{
    assert_int_equal(tf_buf_reserve(b, n), 0);
    for (size_t i = 0; i < n; i++)
        tf_buf_tail(b)[i] = (uint8_t)(from + i);
    b->len += n;
}

/* The valid bytes count up from `from`. */
static void expect_bytes(const tf_buf *b, uint8_t from)
{
    for (size_t i = 0; i < b->len; i++)
        if (tf_buf_head(b)[i] != (uint8_t)(from + i))
            fail_msg("byte %zu is %u, want %u", i, tf_buf_head(b)[i], (uint8_t)(from + i));
}

static void test_empty(void **state)
{
    tf_buf b = { 0 };

    (void)state;
    assert_null(tf_buf_head(&b));
    assert_null(tf_buf_tail(&b));
    assert_int_equal(tf_buf_room(&b), 0);
    /* Nothing asked, nothing allocated. */
    assert_int_equal(tf_buf_reserve(&b, 0), 0);
    assert_null(b.data);
    tf_buf_consume(&b, 0);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 0);
    tf_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
}

static void test_reserve_first(void **state)
{
    tf_buf b = { 0 };

    (void)state;
    assert_int_equal(tf_buf_reserve(&b, 1), 0);
    assert_non_null(b.data);
    assert_int_equal(b.cap, 4096);          /* the first allocation */
    assert_int_equal(tf_buf_room(&b), 4096);
    assert_ptr_equal(tf_buf_head(&b), b.data);
    assert_ptr_equal(tf_buf_tail(&b), b.data);
    tf_buf_free(&b);

    assert_int_equal(tf_buf_reserve(&b, 10000), 0);
    assert_int_equal(b.cap, 16384);         /* doubled until it fits */
    tf_buf_free(&b);
}

static void test_reserve_fits(void **state)
{
    tf_buf b = { 0 };
    uint8_t *data;

    (void)state;
    put(&b, 100, 0);
    data = b.data;
    assert_int_equal(tf_buf_reserve(&b, tf_buf_room(&b)), 0);   /* already there */
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, 4096);
    assert_int_equal(b.len, 100);
    expect_bytes(&b, 0);
    tf_buf_free(&b);
}

static void test_slide(void **state)
{
    tf_buf b = { 0 };
    uint8_t *data;

    (void)state;
    put(&b, 4096, 0);
    assert_int_equal(tf_buf_room(&b), 0);
    tf_buf_consume(&b, 1000);
    data = b.data;
    /* 1000 bytes free at the front: the rest slides there, nothing grows. */
    assert_int_equal(tf_buf_reserve(&b, 1000), 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, 4096);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 3096);
    assert_int_equal(tf_buf_room(&b), 1000);
    expect_bytes(&b, (uint8_t)1000);
    tf_buf_free(&b);
}

static void test_grow(void **state)
{
    tf_buf b = { 0 };

    (void)state;
    put(&b, 4000, 7);
    tf_buf_consume(&b, 10);
    /* Front and tail together are too small: it grows, bytes first. */
    assert_int_equal(tf_buf_reserve(&b, 5000), 0);
    assert_int_equal(b.cap, 16384);         /* 3990 + 5000 > 8192 */
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 3990);
    assert_true(tf_buf_room(&b) >= 5000);
    expect_bytes(&b, (uint8_t)17);
    put(&b, 5000, (uint8_t)(17 + 3990));
    expect_bytes(&b, (uint8_t)17);
    tf_buf_free(&b);
}

static void test_consume(void **state)
{
    tf_buf b = { 0 };
    uint8_t *tail;

    (void)state;
    put(&b, 300, 0);
    tail = tf_buf_tail(&b);
    tf_buf_consume(&b, 120);
    /* The head moves, the tail stays where a receive may be writing. */
    assert_int_equal(b.off, 120);
    assert_int_equal(b.len, 180);
    assert_ptr_equal(tf_buf_tail(&b), tail);
    assert_ptr_equal(tf_buf_head(&b), b.data + 120);
    expect_bytes(&b, 120);
    tf_buf_consume(&b, 180);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(tf_buf_head(&b), tf_buf_tail(&b));
    assert_int_equal(tf_buf_room(&b), 4096 - 300);
    tf_buf_free(&b);
}

static void test_free_empties(void **state)
{
    tf_buf b = { 0 };

    (void)state;
    put(&b, 50, 0);
    tf_buf_consume(&b, 20);
    tf_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    tf_buf_free(&b);                        /* twice is harmless */
    /* A freed buffer is an empty one again. */
    put(&b, 10, 3);
    expect_bytes(&b, 3);
    tf_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_reserve_first),
        cmocka_unit_test(test_reserve_fits),
        cmocka_unit_test(test_slide),
        cmocka_unit_test(test_grow),
        cmocka_unit_test(test_consume),
        cmocka_unit_test(test_free_empties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
