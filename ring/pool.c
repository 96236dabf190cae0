/* Buffer pools: buffers of one size kept for reuse, so that a busy flow
 * neither allocates nor faults pages in per operation.  The first few keep
 * their pages; beyond them, a pooled buffer that sat unused for a whole trim
 * period (about a second) keeps its address but gives its pages back, so
 * that a burst of flows leaves no resident memory behind, while flows that
 * take and give back buffers at a high rate never pay a madvise for it. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ring/ring.h"

int tf_pool_acquire(tf_pool *pool, tf_buf *b)
{
    if (b->data)
        return 0;
    if (pool->n) {
        b->data = pool->items[--pool->n];
        if (pool->n < pool->low)
            pool->low = pool->n;
    } else {
        b->data = malloc(pool->cap);
    }
    if (!b->data)
        return -ENOMEM;
    b->cap = pool->cap;
    b->off = b->len = 0;
    return 0;
}

void tf_pool_release(tf_pool *pool, tf_buf *b)
{
    if (!b->data || b->len)
        return;
    if (b->cap == pool->cap && pool->n < TF_POOL_MAX) {
        pool->cold[pool->n] = false;
        pool->items[pool->n++] = b->data;
    } else {
        free(b->data);
    }
    memset(b, 0, sizeof(*b));
}

/* The page-aligned inside of a malloc'ed block holds no allocator metadata;
 * the pages come back zeroed. */
static void cool(const tf_pool *pool, uint8_t *p)
{
    uintptr_t page = 4096, start = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)p + pool->cap) & ~(page - 1);

    if (end > start)
        (void)madvise((void *)start, end - start, MADV_DONTNEED);
}

/* items[0 .. low) were not taken since the last trim (the pool is a stack):
 * those beyond the warm ones give their pages back. */
void tf_pool_trim(tf_pool *pool)
{
    for (size_t i = TF_POOL_WARM; i < pool->low; i++) {
        if (!pool->cold[i])
            cool(pool, pool->items[i]);
        pool->cold[i] = true;
    }
    pool->low = pool->n;
}

bool tf_pool_warm_excess(const tf_pool *pool)
{
    for (size_t i = TF_POOL_WARM; i < pool->n; i++)
        if (!pool->cold[i])
            return true;
    return false;
}

void tf_pool_drain(tf_pool *pool)
{
    while (pool->n)
        free(pool->items[--pool->n]);
    pool->low = 0;
}
