/* The loop: one io_uring, completion dispatch, deferred tasks, timers. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "ktls/ktls.h"
#include "ring/ring.h"

#define DEFAULT_DEPTH 256
#define STASH_MIN 64          /* CQEs the stash holds from the start */
#define STASH_RESERVE 16      /* ... of which these stay for operations the ring refused */
#define SUBMIT_TRIES 8        /* a ring refusing submissions: tries before an operation fails */
#define WAIT_MS 10            /* a wait for completions, which free CQ room and kernel memory */
#define DRAIN_IDLE_MS 5000    /* loop_free gives up after this long without a completion */
#define DRAIN_TICK_MS 50
#define CANCEL_EVERY_MS 500   /* loop_free asks again for what is still in flight */

int tf_trace_on;

static int submit(tlsflow_loop *loop);

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
    tlsflow_loop *loop;
    int ret;

    if (!out)
        return -EINVAL;
    if (depth == 0)
        depth = DEFAULT_DEPTH;
    if (depth > 32768)
        return -EINVAL;
    tf_trace_on = getenv("TLSFLOW_TRACE") != NULL;
    /* The process-wide kTLS probe (loopback socket pairs) runs here, once,
     * rather than inside the callback of a process's first flow. */
    tf_ktls_probe_once();
    loop = calloc(1, sizeof(*loop));
    if (!loop)
        return -ENOMEM;
    /* Allocated now: an operation the ring refuses completes through the
     * stash, which then has room even when memory has run out. */
    loop->stash = malloc(STASH_MIN * sizeof(*loop->stash));
    if (!loop->stash) {
        free(loop);
        return -ENOMEM;
    }
    loop->capstash = STASH_MIN;
    ret = tf_ring_setup(loop, depth);
    if (ret < 0) {
        free(loop->stash);
        free(loop);
        return ret;
    }
    loop->tasks_tail = &loop->tasks;
    loop->starved_tail = &loop->starved;
    loop->in_pool.cap = TF_IN_CAP;
    loop->tx_pool.cap = TF_TX_CAP;
    loop->file_pool.cap = TF_FILE_CAP;
    loop->objects.next = loop->objects.prev = &loop->objects;
    loop->parked.next = loop->parked.prev = &loop->parked;
    loop->mem_limit = (size_t)256 * 1024 * 1024;
    atomic_init(&loop->stopped, false);
    /* The wake-up read goes to the kernel right here (no kick needed): a post
     * (or a poll of the ring fd) before the first run already finds it. */
    loop->in_run = true;
    ret = tf_post_init(loop);
    if (ret < 0) {
        io_uring_queue_exit(&loop->ring);
        free(loop->stash);
        free(loop);
        return ret;
    }
    submit(loop);
    loop->in_run = false;
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

/* ---- Submission ---- */

/* Room in the stash for one more CQE, growing it; keep: slots that must stay
 * free after it (the reserve for refused operations). */
static bool stash_room(tlsflow_loop *loop, size_t keep)
{
    struct io_uring_cqe *n;
    size_t cap = loop->capstash * 2;

    if (loop->nstash + keep < loop->capstash)
        return true;
    n = realloc(loop->stash, cap * sizeof(*n));
    if (!n)
        return false;
    loop->stash = n;
    loop->capstash = cap;
    return loop->nstash + keep < loop->capstash;
}

/* CQEs are moved aside when the kernel refuses a submission for want of CQ
 * room; the next run dispatches them.  How many were moved. */
static unsigned stash_cqes(tlsflow_loop *loop)
{
    struct io_uring_cqe *cqe;
    unsigned n = 0;

    while (io_uring_peek_cqe(&loop->ring, &cqe) == 0 && stash_room(loop, STASH_RESERVE)) {
        loop->stash[loop->nstash++] = *cqe;
        io_uring_cqe_seen(&loop->ring, cqe);
        n++;
    }
    return n;
}

/* Blocks up to ms for a completion and stashes what came: how many. */
static unsigned wait_and_stash(tlsflow_loop *loop, unsigned ms)
{
    struct __kernel_timespec ts = { ms / 1000, (long long)(ms % 1000) * 1000000 };
    struct io_uring_cqe *cqe;

    if (io_uring_wait_cqe_timeout(&loop->ring, &cqe, &ts) != 0)
        return 0;
    return stash_cqes(loop);
}

void tf_ring_submit(tlsflow_loop *loop)
{
    if (io_uring_sq_ready(&loop->ring))
        (void)submit(loop);
}

static int submit(tlsflow_loop *loop)
{
    int ret;

    if (!loop->ring_live)
        return 0;   /* before the first run: the queue waits for it */
    ret = io_uring_submit(&loop->ring);

    loop->enters++;
    if (ret > 0)
        loop->submissions += (unsigned)ret;
    return ret;
}

/* Hands the queued SQEs to the kernel: 0, or the kernel's -errno when they
 * are still queued after SUBMIT_TRIES fruitless tries.  Never spins: after a
 * refusal the CQEs are moved aside, or a completion is waited for a little
 * (WAIT_MS).  Where the kernel wanted CQ room (-EBUSY) or the memory
 * completions hold (-EAGAIN), room made that way is progress and it goes on;
 * anything else (the errors of a broken ring: -EFAULT, -ENOMEM, -EBADF ...),
 * or a stash that cannot grow, is a fruitless try.  -EINTR is tried again at
 * once, and counts too. */
static int submit_queued(tlsflow_loop *loop)
{
    int ret = 0, fruitless = 0;
    bool made_room;

    /* A queue filled before the first run cannot wait for it: the ring is
     * this thread's from now on. */
    if (!loop->ring_live && (ret = tf_ring_bind(loop)) < 0)
        return ret;

    while (io_uring_sq_ready(&loop->ring) && fruitless < SUBMIT_TRIES) {
        ret = submit(loop);
        if (ret > 0)
            continue;
        if (ret == -EINTR) {
            fruitless++;
            continue;
        }
        made_room = stash_cqes(loop) || wait_and_stash(loop, WAIT_MS);
        if (!made_room || (ret != -EBUSY && ret != -EAGAIN))
            fruitless++;
    }
    if (!io_uring_sq_ready(&loop->ring))
        return 0;
    return ret < 0 ? ret : -EBUSY;
}

/* An operation the ring refused completes with the ring's error, from the
 * stash at the next run, as if the kernel had failed it: its handler fails
 * (or retries) that one operation.  False when the stash has no room. */
static bool fail_op(tlsflow_loop *loop, tf_op *op, int err)
{
    struct io_uring_cqe *cqe;

    if (!stash_room(loop, 0))
        return false;
    cqe = &loop->stash[loop->nstash++];
    memset(cqe, 0, sizeof(*cqe));
    cqe->user_data = (uint64_t)(uintptr_t)op;
    cqe->res = err;
    tf_trace(loop, "submission refused (%s): operation %p fails", strerror(-err), (void *)op);
    return true;
}

/* Where a refused operation is prepared: it never reaches the kernel.  One
 * per thread, as a loop is used by one thread. */
static __thread struct io_uring_sqe scratch_sqe;

/* An SQE for op (NULL: a detached request).  A full submission queue is
 * submitted, never a refusal.  When the kernel will not take the queue
 * (submit_queued failed), op completes with that error at the next run and
 * the caller prepares it in scratch_sqe; a detached request, always best
 * effort (a cancel, a timeout removal), is dropped the same way.  So the
 * callers of tf_ring_sqe never see NULL and need no failure path of their
 * own: their completion handler already has one.  Only when the stash cannot
 * take even that (no memory) does this wait for completions, without
 * spinning, rather than lose the operation. */
static struct io_uring_sqe *get_sqe(tlsflow_loop *loop, tf_op *op)
{
    static const struct timespec pause_ts = { 0, WAIT_MS * 1000000L };
    struct io_uring_sqe *sqe;
    int ret;

    while (!(sqe = io_uring_get_sqe(&loop->ring))) {
        ret = submit_queued(loop);
        if (ret == 0)
            continue;
        if (!op || fail_op(loop, op, ret))
            return &scratch_sqe;
        /* A sleep, not a wait: with the stash full the CQ may stay full too,
         * and a wait for a CQE would return at once. */
        tf_trace(loop, "submission refused (%s), no memory to fail %p: waiting", strerror(-ret),
                 (void *)op);
        nanosleep(&pause_ts, NULL);
    }
    tf_ring_kick(loop);   /* queued outside a run: only run_once submits it */
    return sqe;
}

struct io_uring_sqe *tf_ring_sqe(tlsflow_loop *loop, tf_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(loop, op);

    io_uring_sqe_set_data(sqe, op);
    op->busy = true;
    loop->inflight++;
    return sqe;
}

void tf_ring_sqe_detached(tlsflow_loop *loop, struct io_uring_sqe **out)
{
    *out = get_sqe(loop, NULL);
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

/* FIFOs of tasks, kept as a head and the link to append at: false when t
 * was queued already. */
static bool task_push(tf_task ***tail, tf_task *t)
{
    if (t->queued)
        return false;
    t->queued = true;
    t->next = NULL;
    **tail = t;
    *tail = &t->next;
    return true;
}

/* Runs up to max tasks of a queue, in order (what they queue meanwhile
 * runs too, within max): how many ran. */
static unsigned task_run(tf_task **head, tf_task ***tail, unsigned max)
{
    unsigned n = 0;

    while (*head && n < max) {
        tf_task *t = *head;
        *head = t->next;
        if (!*head)
            *tail = head;
        t->queued = false;
        t->run(t);
        n++;
    }
    return n;
}

void tf_ring_defer(tlsflow_loop *loop, tf_task *t)
{
    if (task_push(&loop->tasks_tail, t))
        tf_ring_kick(loop);   /* queued outside a run: tell an embedding loop */
}

void tf_ring_starve(tlsflow_loop *loop, tf_task *t)
{
    task_push(&loop->starved_tail, t);
}

/* After a round's completions gave their buffers back: as many starved
 * receives go again as the ring has buffers. */
static unsigned feed_starved(tlsflow_loop *loop)
{
    return task_run(&loop->starved, &loop->starved_tail, TF_BR_ENTRIES);
}

static unsigned run_tasks(tlsflow_loop *loop)
{
    return task_run(&loop->tasks, &loop->tasks_tail, UINT_MAX);
}

/* An op's last CQE: the kernel is done with it and with what it pointed to. */
static bool is_last_cqe(const struct io_uring_cqe *cqe)
{
    /* 0: a detached request (cancel, timeout removal); LIBURING_UDATA_TIMEOUT:
     * the timeout liburing adds to a timed wait where the kernel lacks
     * IORING_FEAT_EXT_ARG (before 5.11) — neither is one of our operations. */
    return cqe->user_data && cqe->user_data != LIBURING_UDATA_TIMEOUT &&
           !(cqe->flags & IORING_CQE_F_MORE);
}

static void dispatch(tlsflow_loop *loop, const struct io_uring_cqe *cqe)
{
    tf_op *op = io_uring_cqe_get_data(cqe);

    if (!op || cqe->user_data == LIBURING_UDATA_TIMEOUT)
        return;
    if (is_last_cqe(cqe)) {
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
    for (unsigned i = 0; i < TF_BR_ENTRIES; i++) {
        io_uring_buf_ring_add(loop->br, loop->br_bufs + (size_t)i * TF_BR_SIZE, TF_BR_SIZE,
                              (unsigned short)i, io_uring_buf_ring_mask(TF_BR_ENTRIES), (int)i);
        loop->br_slot_bid[i] = loop->br_bid_slot[i] = (uint8_t)i;
    }
    io_uring_buf_ring_advance(loop->br, TF_BR_ENTRIES);
    loop->br_state = 1;
    return true;
}

/* The ring holds exactly TF_BR_ENTRIES buffers, each added once more only
 * after the kernel took it: an entry is never overwritten before it was
 * consumed, so the maps name what the kernel took in order. */
static unsigned cqe_bid(const tlsflow_loop *loop, unsigned flags, unsigned i)
{
    unsigned first = (flags >> IORING_CQE_BUFFER_SHIFT) & (TF_BR_ENTRIES - 1);

    return i ? loop->br_slot_bid[(loop->br_bid_slot[first] + i) & (TF_BR_ENTRIES - 1)] : first;
}

const uint8_t *tf_ring_cqe_buf(const tlsflow_loop *loop, unsigned flags, unsigned i)
{
    return loop->br_bufs + (size_t)cqe_bid(loop, flags, i) * TF_BR_SIZE;
}

static unsigned cqe_nbufs(int res)
{
    return res > TF_BR_SIZE ? ((unsigned)res + TF_BR_SIZE - 1) / TF_BR_SIZE : 1;
}

void tf_ring_recycle_cqe(tlsflow_loop *loop, unsigned flags, int res)
{
    unsigned n = cqe_nbufs(res), bids[TF_BUNDLE_MAX / TF_BR_SIZE];

    if (n > sizeof(bids) / sizeof(bids[0]))
        n = sizeof(bids) / sizeof(bids[0]);   /* never asked for more */
    for (unsigned i = 0; i < n; i++)
        bids[i] = cqe_bid(loop, flags, i);    /* all named before any entry is reused */
    for (unsigned i = 0; i < n; i++) {
        unsigned slot = (loop->br->tail + i) & (TF_BR_ENTRIES - 1);

        io_uring_buf_ring_add(loop->br, loop->br_bufs + (size_t)bids[i] * TF_BR_SIZE, TF_BR_SIZE,
                              (unsigned short)bids[i], io_uring_buf_ring_mask(TF_BR_ENTRIES),
                              (int)i);
        loop->br_slot_bid[slot] = (uint8_t)bids[i];
        loop->br_bid_slot[bids[i]] = (uint8_t)slot;
    }
    io_uring_buf_ring_advance(loop->br, (int)n);
}

/* The stash as it is now.  What handlers stash meanwhile (an operation they
 * submit again that the ring refuses again) waits for the next run, so that
 * a run always ends and the application gets control back. */
static unsigned dispatch_stash(tlsflow_loop *loop)
{
    size_t n = loop->nstash;

    for (size_t i = 0; i < n; i++) {
        struct io_uring_cqe cqe = loop->stash[i];   /* a handler may move the stash */
        dispatch(loop, &cqe);
    }
    loop->nstash -= n;
    memmove(loop->stash, loop->stash + n, loop->nstash * sizeof(*loop->stash));
    return (unsigned)n;
}

static long long coarse_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool pools_warm_excess(const tlsflow_loop *loop)
{
    return tf_pool_warm_excess(&loop->in_pool) || tf_pool_warm_excess(&loop->tx_pool) ||
           tf_pool_warm_excess(&loop->file_pool);
}

/* Once a trim period: what the pools kept unused all that time cools. */
static void trim_pools(tlsflow_loop *loop)
{
    long long now = coarse_ms();

    if (now < loop->trim_at_ms)
        return;
    loop->trim_at_ms = now + TF_POOL_TRIM_MS;
    tf_pool_trim(&loop->in_pool);
    tf_pool_trim(&loop->tx_pool);
    tf_pool_trim(&loop->file_pool);
}

static int enter(tlsflow_loop *loop, int timeout_ms)
{
    struct __kernel_timespec ts, *tsp = NULL;
    struct io_uring_cqe *cqe;
    unsigned pending = io_uring_sq_ready(&loop->ring);
    int ret;

    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
        tsp = &ts;
    }
    ret = io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, tsp, NULL);
    loop->enters++;
    loop->submissions += pending;
    return ret;
}

/* Submits and waits up to timeout_ms (-1: for ever) for a completion.  A
 * loop about to sleep with warm buffers to spare wakes once to trim them,
 * then sleeps on. */
static int wait_cqe(tlsflow_loop *loop, int timeout_ms)
{
    int ret;

    if (timeout_ms != 0 && pools_warm_excess(loop)) {
        long long start = coarse_ms();
        int step = timeout_ms < 0 || timeout_ms > TF_POOL_TRIM_MS ? TF_POOL_TRIM_MS : timeout_ms;

        ret = enter(loop, step);
        if (ret != -ETIME || step == timeout_ms)
            goto out;
        loop->trim_at_ms = 0;
        trim_pools(loop);
        if (timeout_ms > 0) {
            timeout_ms -= (int)(coarse_ms() - start);
            if (timeout_ms < 0)
                timeout_ms = 0;
        }
    }
    ret = enter(loop, timeout_ms);
out:
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY && ret != -EAGAIN)
        return ret;
    return 0;
}

static int run_once(tlsflow_loop *loop, int timeout_ms)
{
    struct io_uring_cqe *cqes[64];
    unsigned handled, n;
    int ret;

    tf_post_drain_embed(loop);   /* first: what comes after it signals again */
    handled = run_tasks(loop);
    handled += tf_post_run(loop);
    handled += run_tasks(loop);
    tf_timers_sync(loop);
    if (loop->nstash == 0) {
        if (handled)
            timeout_ms = 0;
        ret = wait_cqe(loop, timeout_ms);
        if (ret < 0)
            return ret;
    }
    handled += dispatch_stash(loop);
    while ((n = io_uring_peek_batch_cqe(&loop->ring, cqes, 64)) > 0) {
        /* Copy first: a handler may submit, and submission may reap. */
        struct io_uring_cqe batch[64];
        for (unsigned i = 0; i < n; i++)
            batch[i] = *cqes[i];
        io_uring_cq_advance(&loop->ring, n);
        for (unsigned i = 0; i < n; i++)
            dispatch(loop, &batch[i]);
        /* Wake-ups count too: a run that a post, a stop or a kick ended
         * early did not time out. */
        handled += n;
    }
    handled += run_tasks(loop);
    handled += tf_post_run(loop);
    handled += feed_starved(loop);
    handled += run_tasks(loop);
    tf_timers_sync(loop);
    trim_pools(loop);
    /* Whatever the callbacks asked for goes to the kernel now (or, refused,
     * at the next run). */
    if (io_uring_sq_ready(&loop->ring))
        submit(loop);
    return (int)handled;
}

TLSFLOW_PUBLIC int tlsflow_loop_run_once(tlsflow_loop *loop, int timeout_ms)
{
    bool was_in_run;
    int ret;

    if (!loop)
        return -EINVAL;
    if (loop->ring_live && loop->ring_bound && !pthread_equal(loop->owner, pthread_self()))
        return -EEXIST;   /* a loop is run by one thread: the first to run it */
    if (!loop->ring_live && (ret = tf_ring_bind(loop)) < 0)
        return ret;
    was_in_run = loop->in_run;
    loop->in_run = true;
    ret = run_once(loop, timeout_ms);
    loop->in_run = was_in_run;
    /* Work left that no CQE will announce (tasks, refused operations in the
     * stash): the ring fd must still be readable for an embedding loop. */
    if (loop->tasks || loop->nstash)
        tf_ring_kick(loop);
    tf_post_embed_end(loop);
    return ret;
}

TLSFLOW_PUBLIC int tlsflow_loop_run(tlsflow_loop *loop)
{
    int ret;

    if (!loop)
        return -EINVAL;
    atomic_store(&loop->stopped, false);
    while (!atomic_load(&loop->stopped) &&
           (loop->live > 0 || loop->tasks || loop->timers.n > 0 || tf_post_pending(loop))) {
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
    if (!loop)
        return;
    atomic_store(&loop->stopped, true);
    tf_ring_wake(loop);   /* a wait in io_uring_enter ends */
}

/* ---- loop_free ---- */

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A completion seen while draining: counted, never dispatched.  True when it
 * ended one of our operations. */
static bool drain_one(tlsflow_loop *loop, const struct io_uring_cqe *cqe)
{
    tf_op *op = io_uring_cqe_get_data(cqe);

    if (!is_last_cqe(cqe))
        return false;
    op->busy = false;
    loop->inflight--;
    return true;
}

static bool drain_stash(tlsflow_loop *loop)
{
    bool ended = false;

    for (size_t i = 0; i < loop->nstash; i++)
        ended |= drain_one(loop, &loop->stash[i]);
    loop->nstash = 0;
    return ended;
}

/* Asks the kernel to cancel every request of the ring; submission may stash. */
static void cancel_all(tlsflow_loop *loop)
{
    struct io_uring_sqe *sqe;

    tf_ring_sqe_detached(loop, &sqe);
    io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
    submit_queued(loop);
}

/* Cancels every request and waits until the kernel has ended each (its last
 * CQE came): then none of them reads or writes memory that loop_free
 * releases, and the sockets they held are closed when tlsflow_loop_free
 * returns (the ring's own teardown would let them go later, in a kernel
 * worker).  No callback runs.  The wait ends DRAIN_IDLE_MS after the last
 * completion: -ETIMEDOUT with requests still in flight (a kernel without
 * IORING_ASYNC_CANCEL_ANY, before 5.19, or one stuck in a worker). */
static int drain(tlsflow_loop *loop)
{
    static const struct timespec pause_ts = { 0, DRAIN_TICK_MS * 1000000L };
    struct __kernel_timespec tick = { 0, DRAIN_TICK_MS * 1000000LL };
    struct io_uring_cqe *cqe;
    long long last_end, last_cancel;
    int ret;

    drain_stash(loop);
    /* A ring tied to another thread cannot be entered from this one: what
     * is in flight is left to the kernel, and its memory kept (abandon). */
    if (loop->inflight && loop->ring_bound && !pthread_equal(loop->owner, pthread_self()))
        return -EEXIST;
    last_end = last_cancel = now_ms();
    if (loop->inflight)
        cancel_all(loop);
    while (loop->inflight && now_ms() - last_end < DRAIN_IDLE_MS) {
        /* Again, for a cancel the ring refused or requests it raced with. */
        if (now_ms() - last_cancel >= CANCEL_EVERY_MS) {
            cancel_all(loop);
            last_cancel = now_ms();
        }
        if (drain_stash(loop))
            last_end = now_ms();
        ret = io_uring_wait_cqe_timeout(&loop->ring, &cqe, &tick);
        if (ret == -ETIME || ret == -EINTR)
            continue;
        if (ret < 0) {
            /* The ring could not wait (-EBUSY, or broken): pause, never spin. */
            nanosleep(&pause_ts, NULL);
            continue;
        }
        if (drain_one(loop, cqe))
            last_end = now_ms();
        io_uring_cqe_seen(&loop->ring, cqe);
    }
    return loop->inflight ? -ETIMEDOUT : 0;
}

static void free_write_pool(tlsflow_loop *loop)
{
    while (loop->free_writes) {
        tf_write *w = loop->free_writes;
        loop->free_writes = w->next;
        free(w->big_iov);
        free(w);
    }
    loop->nfree_writes = 0;
}

/* What the loop keeps that the kernel never touches: spare buffers and
 * write requests, timers, posts not run.  Freed whether the loop ends or is
 * abandoned. */
static void free_spares(tlsflow_loop *loop)
{
    tf_pool_drain(&loop->in_pool);
    tf_pool_drain(&loop->tx_pool);
    tf_pool_drain(&loop->file_pool);
    free_write_pool(loop);
    tf_timers_free(loop);
    tf_post_free(loop);
}

/* Loops left to requests the kernel did not end: still reachable from here,
 * for a debugger, and so that leak checkers do not call them lost. */
static tlsflow_loop *abandoned[16];
static pthread_mutex_t abandoned_lock = PTHREAD_MUTEX_INITIALIZER;

/* drain gave up: requests still in flight may write into the shared buffer
 * ring or a flow's receive buffer, or read what a flow, listener or connect
 * holds (addresses, message headers, timeouts).  loop.c cannot tell which
 * object an operation belongs to, so the loop keeps every object still open,
 * the buffer ring and itself: a leak, rather than memory the kernel writes
 * into after malloc gave it to someone else.  What the kernel never sees (the
 * stash, spare buffers, write requests) is freed. */
static void abandon(tlsflow_loop *loop)
{
    tf_trace(loop, "loop_free: %u operations still in flight after %d ms without a completion: "
             "leaking the loop, its %u open objects and its buffer ring", loop->inflight,
             DRAIN_IDLE_MS, loop->live);
    /* Closing the ring makes the kernel cancel the rest in its own time. */
    io_uring_queue_exit(&loop->ring);
    free(loop->stash);
    loop->stash = NULL;
    loop->nstash = loop->capstash = 0;
    free_spares(loop);
    pthread_mutex_lock(&abandoned_lock);
    for (size_t i = 0; i < sizeof(abandoned) / sizeof(abandoned[0]); i++) {
        if (!abandoned[i]) {
            abandoned[i] = loop;
            break;
        }
    }
    pthread_mutex_unlock(&abandoned_lock);
}

/* Objects still open are released without their callbacks: no callback may
 * run outside tlsflow_loop_run*. */
/* Tasks still queued are dropped; those that own memory give it back. */
static void discard_queue(tf_task *t)
{
    while (t) {
        tf_task *next = t->next;
        t->queued = false;
        if (t->discard)
            t->discard(t);
        t = next;
    }
}

static void discard_tasks(tlsflow_loop *loop)
{
    discard_queue(loop->tasks);
    loop->tasks = NULL;
    loop->tasks_tail = &loop->tasks;
    discard_queue(loop->starved);
    loop->starved = NULL;
    loop->starved_tail = &loop->starved;
}

TLSFLOW_PUBLIC void tlsflow_loop_free(tlsflow_loop *loop)
{
    if (!loop)
        return;
    tf_resolve_shutdown(loop);   /* lookups in flight no longer post to us */
    discard_tasks(loop);
    (void)tf_ring_bind(loop);    /* never run: the cancels must reach the kernel */
    if (drain(loop) < 0) {
        abandon(loop);
        return;
    }
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
    free_spares(loop);
    free(loop);
}
