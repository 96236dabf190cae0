/* The loop: one io_uring, completion dispatch, deferred tasks, timers. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ring/ring.h"

#define DEFAULT_DEPTH 256

int tf_trace_on;

void tf_trace_printf(const void *who, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "tlsflow %p: ", who);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

TLSFLOW_PUBLIC int tlsflow_loop_new(tlsflow_loop **out, unsigned depth)
{
    struct io_uring_params p;
    tlsflow_loop *loop;
    int ret;

    if (!out)
        return -EINVAL;
    if (depth == 0)
        depth = DEFAULT_DEPTH;
    if (depth > 32768)
        return -EINVAL;
    tf_trace_on = getenv("TLSFLOW_TRACE") != NULL;
    loop = calloc(1, sizeof(*loop));
    if (!loop)
        return -ENOMEM;
    memset(&p, 0, sizeof(p));
    /* A roomy completion queue: many flows keep a receive armed. */
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = depth * 8;
    ret = io_uring_queue_init_params(depth, &loop->ring, &p);
    if (ret < 0) {
        free(loop);
        return ret;
    }
    loop->tasks_tail = &loop->tasks;
    loop->in_pool.cap = TF_IN_CAP;
    loop->tx_pool.cap = TF_TX_CAP;
    loop->file_pool.cap = TF_FILE_CAP;
    loop->objects.next = loop->objects.prev = &loop->objects;
    *out = loop;
    return 0;
}

void tf_ring_track(tlsflow_loop *loop, tf_link *l)
{
    l->next = loop->objects.next;
    l->prev = &loop->objects;
    loop->objects.next->prev = l;
    loop->objects.next = l;
    loop->live++;
}

void tf_ring_untrack(tf_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->next = l->prev = l;
}

/* CQEs are moved aside when the kernel refuses a submission because the
 * completion queue overflowed; they are dispatched by the next run. */
static void stash_cqes(tlsflow_loop *loop)
{
    struct io_uring_cqe *cqe;

    while (io_uring_peek_cqe(&loop->ring, &cqe) == 0) {
        if (loop->nstash == loop->capstash) {
            size_t cap = loop->capstash ? loop->capstash * 2 : 64;
            struct io_uring_cqe *n = realloc(loop->stash, cap * sizeof(*n));
            if (!n)
                return;
            loop->stash = n;
            loop->capstash = cap;
        }
        loop->stash[loop->nstash++] = *cqe;
        io_uring_cqe_seen(&loop->ring, cqe);
    }
}

static struct io_uring_sqe *get_sqe(tlsflow_loop *loop)
{
    struct io_uring_sqe *sqe;
    int ret;

    /* A full submission queue is submitted, never a refusal. */
    while (!(sqe = io_uring_get_sqe(&loop->ring))) {
        ret = io_uring_submit(&loop->ring);
        loop->enters++;
        if (ret > 0)
            loop->submissions += (unsigned)ret;
        if (ret == -EBUSY || ret == -EAGAIN)
            stash_cqes(loop);
    }
    return sqe;
}

struct io_uring_sqe *tf_ring_sqe(tlsflow_loop *loop, tf_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(loop);

    io_uring_sqe_set_data(sqe, op);
    op->busy = true;
    loop->inflight++;
    return sqe;
}

void tf_ring_sqe_detached(tlsflow_loop *loop, struct io_uring_sqe **out)
{
    *out = get_sqe(loop);
    io_uring_sqe_set_data(*out, NULL);
}

void tf_ring_cancel(tlsflow_loop *loop, tf_op *op)
{
    struct io_uring_sqe *sqe;

    if (!op->busy)
        return;
    tf_ring_sqe_detached(loop, &sqe);
    io_uring_prep_cancel(sqe, op, 0);
}

void tf_ring_timeout(tlsflow_loop *loop, tf_op *op, struct __kernel_timespec *ts, unsigned ms)
{
    struct io_uring_sqe *sqe;

    ts->tv_sec = ms / 1000;
    ts->tv_nsec = (long long)(ms % 1000) * 1000000;
    sqe = tf_ring_sqe(loop, op);
    io_uring_prep_timeout(sqe, ts, 0, 0);
}

void tf_ring_defer(tlsflow_loop *loop, tf_task *t)
{
    if (t->queued)
        return;
    t->queued = true;
    t->next = NULL;
    *loop->tasks_tail = t;
    loop->tasks_tail = &t->next;
}

static unsigned run_tasks(tlsflow_loop *loop)
{
    unsigned n = 0;

    while (loop->tasks) {
        tf_task *t = loop->tasks;
        loop->tasks = t->next;
        if (!loop->tasks)
            loop->tasks_tail = &loop->tasks;
        t->queued = false;
        t->run(t);
        n++;
    }
    return n;
}

static void dispatch(tlsflow_loop *loop, const struct io_uring_cqe *cqe)
{
    tf_op *op = io_uring_cqe_get_data(cqe);

    if (!op)
        return;                 /* a detached request: cancel, timeout removal */
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        op->busy = false;
        loop->inflight--;
    }
    op->done(op, cqe->res, cqe->flags);
}

/* ---- Provided buffers and the receive-buffer pool ---- */

bool tf_ring_bufring(tlsflow_loop *loop)
{
    struct io_uring_buf_reg reg;
    size_t bytes = TF_BR_ENTRIES * sizeof(struct io_uring_buf);
    void *mem;
    int ret;

    if (loop->br_state)
        return loop->br_state > 0;
    loop->br_state = -ENOMEM;
    mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED)
        return false;
    loop->br_bufs = malloc((size_t)TF_BR_ENTRIES * TF_BR_SIZE);
    if (!loop->br_bufs) {
        munmap(mem, bytes);
        return false;
    }
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)(uintptr_t)mem;
    reg.ring_entries = TF_BR_ENTRIES;
    reg.bgid = TF_BGID;
    ret = io_uring_register_buf_ring(&loop->ring, &reg, 0);
    if (ret < 0) {              /* before 5.19: each flow brings its own buffer */
        munmap(mem, bytes);
        free(loop->br_bufs);
        loop->br_bufs = NULL;
        loop->br_state = ret;
        return false;
    }
    loop->br = mem;
    io_uring_buf_ring_init(loop->br);
    for (unsigned i = 0; i < TF_BR_ENTRIES; i++)
        io_uring_buf_ring_add(loop->br, loop->br_bufs + (size_t)i * TF_BR_SIZE, TF_BR_SIZE,
                              (unsigned short)i, io_uring_buf_ring_mask(TF_BR_ENTRIES), (int)i);
    io_uring_buf_ring_advance(loop->br, TF_BR_ENTRIES);
    loop->br_state = 1;
    return true;
}

const uint8_t *tf_ring_buf(tlsflow_loop *loop, unsigned bid)
{
    return loop->br_bufs + (size_t)bid * TF_BR_SIZE;
}

void tf_ring_buf_recycle(tlsflow_loop *loop, unsigned bid)
{
    io_uring_buf_ring_add(loop->br, loop->br_bufs + (size_t)bid * TF_BR_SIZE, TF_BR_SIZE,
                          (unsigned short)bid, io_uring_buf_ring_mask(TF_BR_ENTRIES), 0);
    io_uring_buf_ring_advance(loop->br, 1);
}

int tf_pool_acquire(tf_pool *pool, tf_buf *b)
{
    if (b->data)
        return 0;
    b->data = pool->n ? pool->items[--pool->n] : malloc(pool->cap);
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
    if (b->cap == pool->cap && pool->n < TF_POOL_MAX)
        pool->items[pool->n++] = b->data;
    else
        free(b->data);
    memset(b, 0, sizeof(*b));
}

void tf_pool_drain(tf_pool *pool)
{
    while (pool->n)
        free(pool->items[--pool->n]);
}

TLSFLOW_PUBLIC int tlsflow_loop_run_once(tlsflow_loop *loop, int timeout_ms)
{
    struct io_uring_cqe *cqes[64];
    struct __kernel_timespec ts, *tsp = NULL;
    struct io_uring_cqe *cqe;
    unsigned handled, n;
    int ret;

    if (!loop)
        return -EINVAL;
    handled = run_tasks(loop);
    if (timeout_ms >= 0 || handled) {
        if (handled)
            timeout_ms = 0;
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
        tsp = &ts;
    }
    if (loop->nstash == 0) {
        unsigned pending = io_uring_sq_ready(&loop->ring);
        ret = io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, tsp, NULL);
        loop->enters++;
        loop->submissions += pending;
        if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY && ret != -EAGAIN)
            return ret;
    }
    for (size_t i = 0; i < loop->nstash; i++)
        dispatch(loop, &loop->stash[i]);
    handled += (unsigned)loop->nstash;
    loop->nstash = 0;
    while ((n = io_uring_peek_batch_cqe(&loop->ring, cqes, 64)) > 0) {
        /* Copy first: a handler may submit, and submission may reap. */
        struct io_uring_cqe batch[64];
        for (unsigned i = 0; i < n; i++)
            batch[i] = *cqes[i];
        io_uring_cq_advance(&loop->ring, n);
        for (unsigned i = 0; i < n; i++)
            dispatch(loop, &batch[i]);
        handled += n;
    }
    handled += run_tasks(loop);
    /* Whatever the callbacks asked for goes to the kernel now. */
    if (io_uring_sq_ready(&loop->ring)) {
        unsigned pending = io_uring_sq_ready(&loop->ring);
        io_uring_submit(&loop->ring);
        loop->enters++;
        loop->submissions += pending;
    }
    return (int)handled;
}

TLSFLOW_PUBLIC int tlsflow_loop_run(tlsflow_loop *loop)
{
    int ret;

    if (!loop)
        return -EINVAL;
    loop->stopped = false;
    while (!loop->stopped && (loop->live > 0 || loop->tasks)) {
        ret = tlsflow_loop_run_once(loop, -1);
        if (ret < 0)
            return ret;
    }
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_loop_get_stats(const tlsflow_loop *loop, tlsflow_loop_stats *out)
{
    if (!loop || !out)
        return -EINVAL;
    out->submissions = loop->submissions;
    out->enters = loop->enters;
    out->plaintext_copied = loop->plain_copied;
    out->ciphertext_copied = loop->cipher_copied;
    return 0;
}

TLSFLOW_PUBLIC void tlsflow_loop_stop(tlsflow_loop *loop)
{
    if (loop)
        loop->stopped = true;
}

/* Objects still open are released without their callbacks: no callback may
 * run outside tlsflow_loop_run*. */
/* Cancels every request and waits for them to end, so that the sockets they
 * hold are closed when tlsflow_loop_free returns (the ring's own teardown
 * would let them go later, in a kernel worker).  No callback runs. */
static void drain(tlsflow_loop *loop)
{
    struct __kernel_timespec ts = { 0, 50 * 1000 * 1000 };
    struct io_uring_sqe *sqe;
    struct io_uring_cqe *cqe;
    int idle = 0;

    if (!loop->inflight)
        return;
    tf_ring_sqe_detached(loop, &sqe);
    io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
    io_uring_submit(&loop->ring);
    for (size_t i = 0; i < loop->nstash; i++)
        if (loop->stash[i].user_data && !(loop->stash[i].flags & IORING_CQE_F_MORE))
            loop->inflight--;
    loop->nstash = 0;
    /* Bounded: a kernel without CANCEL_ANY (before 5.19) leaves us waiting. */
    while (loop->inflight && idle < 20) {
        if (io_uring_wait_cqe_timeout(&loop->ring, &cqe, &ts) < 0) {
            idle++;
            continue;
        }
        if (cqe->user_data && !(cqe->flags & IORING_CQE_F_MORE))
            loop->inflight--;
        if (cqe->flags & IORING_CQE_F_BUFFER && loop->br)
            tf_ring_buf_recycle(loop, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        io_uring_cqe_seen(&loop->ring, cqe);
    }
}

TLSFLOW_PUBLIC void tlsflow_loop_free(tlsflow_loop *loop)
{
    if (!loop)
        return;
    drain(loop);
    io_uring_queue_exit(&loop->ring);
    while (loop->objects.next != &loop->objects) {
        tf_link *l = loop->objects.next;
        tf_ring_untrack(l);
        l->destroy(l);
    }
    free(loop->stash);
    if (loop->br)
        munmap(loop->br, TF_BR_ENTRIES * sizeof(struct io_uring_buf));
    free(loop->br_bufs);
    tf_pool_drain(&loop->in_pool);
    tf_pool_drain(&loop->tx_pool);
    tf_pool_drain(&loop->file_pool);
    while (loop->free_writes) {
        tf_write *w = loop->free_writes;
        loop->free_writes = w->next;
        free(w->big_iov);
        free(w);
    }
    free(loop);
}
