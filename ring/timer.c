/* Timers: a binary min-heap of the started timers behind one io_uring
 * timeout.  Starting or stopping a timer only moves it in the heap; the
 * timeout is (re)armed for the earliest deadline once per loop round
 * (tf_timers_sync), so a thousand timers cost no more submissions than one.
 * When the timeout fires, the due timers are taken from the heap one at a
 * time: a timer that an earlier callback of the same round stopped is no
 * longer there, so it never fires after its stop. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "ring/ring.h"

#define NOT_QUEUED ((size_t)-1)

struct tlsflow_timer {
    tlsflow_loop     *loop;
    tlsflow_timer    *prev, *next;   /* the loop's list of all its timers */
    uint64_t          due;           /* CLOCK_MONOTONIC ns */
    uint64_t          seq;
    unsigned          repeat_ms;
    tlsflow_timer_cb *cb;
    void             *arg;
    size_t            idx;           /* its place in the heap; NOT_QUEUED: stopped */
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- The heap ---- */

static bool is_before(const tlsflow_timer *a, const tlsflow_timer *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void place(tf_timers *tm, size_t i, tlsflow_timer *t)
{
    tm->heap[i] = t;
    t->idx = i;
}

static void sift_up(tf_timers *tm, size_t i)
{
    tlsflow_timer *t = tm->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!is_before(t, tm->heap[parent]))
            break;
        place(tm, i, tm->heap[parent]);
        i = parent;
    }
    place(tm, i, t);
}

static void sift_down(tf_timers *tm, size_t i)
{
    tlsflow_timer *t = tm->heap[i];

    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= tm->n)
            break;
        if (child + 1 < tm->n && is_before(tm->heap[child + 1], tm->heap[child]))
            child++;
        if (!is_before(tm->heap[child], t))
            break;
        place(tm, i, tm->heap[child]);
        i = child;
    }
    place(tm, i, t);
}

static int heap_insert(tf_timers *tm, tlsflow_timer *t)
{
    if (tm->n == tm->cap) {
        size_t cap = tm->cap ? tm->cap * 2 : 16;
        tlsflow_timer **h = realloc(tm->heap, cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        tm->heap = h;
        tm->cap = cap;
    }
    place(tm, tm->n++, t);
    sift_up(tm, t->idx);
    return 0;
}

static void heap_remove(tf_timers *tm, tlsflow_timer *t)
{
    size_t i = t->idx;
    tlsflow_timer *last = tm->heap[--tm->n];

    t->idx = NOT_QUEUED;
    if (i == tm->n)
        return;
    place(tm, i, last);
    if (i > 0 && is_before(last, tm->heap[(i - 1) / 2]))
        sift_up(tm, i);
    else
        sift_down(tm, i);
}

/* ---- The one timeout ---- */

static void set_ts(struct __kernel_timespec *ts, uint64_t ns)
{
    ts->tv_sec = (long long)(ns / 1000000000u);
    ts->tv_nsec = (long long)(ns % 1000000000u);
}

/* The kernel is woken on whole milliseconds (the API's unit): timers due
 * within the same millisecond share one round, so however many there are,
 * the timeout is re-armed at most once a millisecond. */
static uint64_t wake_at(uint64_t due)
{
    return (due + 999999u) / 1000000u * 1000000u;
}

/* The due timers, in order.  Only those started before the round began:
 * a repeating timer goes back in with a later deadline, and one started (or
 * restarted) by a callback waits for the next round, so a round ends. */
static void fire_due(tlsflow_loop *loop)
{
    tf_timers *tm = &loop->timers;
    uint64_t now = now_ns(), last_seq = tm->seq;

    while (tm->n) {
        tlsflow_timer *t = tm->heap[0];
        if (t->due > now || t->seq > last_seq)
            break;
        heap_remove(tm, t);
        if (t->repeat_ms) {
            t->due = now + (uint64_t)t->repeat_ms * 1000000u;
            t->seq = ++tm->seq;
            /* Cannot fail: the heap had room for it a moment ago. */
            (void)heap_insert(tm, t);
        }
        /* The timer may be stopped, restarted or freed in there: nothing
         * here touches it afterwards. */
        t->cb(t, t->arg);
    }
}

static void timeout_done(tf_op *op, int res, unsigned flags)
{
    tlsflow_loop *loop = TF_CONTAINER(op, tlsflow_loop, timers.op);

    (void)flags;
    /* -ETIME: it expired; -ECANCELED: we removed it; anything else (the
     * ring refused it): look at the heap and arm again. */
    (void)res;
    loop->timers.armed_ns = 0;
    fire_due(loop);
}

void tf_timers_sync(tlsflow_loop *loop)
{
    tf_timers *tm = &loop->timers;
    struct io_uring_sqe *sqe;
    uint64_t due;

    if (!tm->n) {
        /* Nothing started: the timeout goes, so it wakes nobody for nothing. */
        if (tm->op.busy && tm->armed_ns) {
            tf_ring_sqe_detached(loop, &sqe);
            io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&tm->op, 0);
            tm->armed_ns = 0;
        }
        return;
    }
    due = wake_at(tm->heap[0]->due);
    if (!tm->op.busy) {
        set_ts(&tm->ts, due);
        tm->op.done = timeout_done;
        sqe = tf_ring_sqe(loop, &tm->op);
        io_uring_prep_timeout(sqe, &tm->ts, 0, IORING_TIMEOUT_ABS);
        tm->armed_ns = due;
    } else if (!tm->armed_ns || due < tm->armed_ns) {
        /* Earlier than what the kernel holds (or that is being removed).  An
         * update that comes too late (it expired meanwhile) fails with
         * -ENOENT, and the expiry re-arms.  A later deadline needs nothing:
         * the timeout fires early, finds nothing due and re-arms. */
        set_ts(&tm->update_ts, due);
        tf_ring_sqe_detached(loop, &sqe);
        io_uring_prep_timeout_update(sqe, &tm->update_ts, (uint64_t)(uintptr_t)&tm->op,
                                     IORING_TIMEOUT_ABS);
        tm->armed_ns = due;
    }
}

/* ---- The public calls ---- */

TLSFLOW_PUBLIC int tlsflow_timer_new(tlsflow_loop *loop, tlsflow_timer **out)
{
    tlsflow_timer *t;

    if (!loop || !out)
        return -EINVAL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->loop = loop;
    t->idx = NOT_QUEUED;
    t->next = loop->timers.all;
    if (t->next)
        t->next->prev = t;
    loop->timers.all = t;
    *out = t;
    return 0;
}

TLSFLOW_PUBLIC void tlsflow_timer_stop(tlsflow_timer *t)
{
    if (!t || t->idx == NOT_QUEUED)
        return;
    heap_remove(&t->loop->timers, t);
}

TLSFLOW_PUBLIC int tlsflow_timer_start(tlsflow_timer *t, unsigned timeout_ms, unsigned repeat_ms,
                                       tlsflow_timer_cb *cb, void *arg)
{
    tf_timers *tm;
    int ret;

    if (!t || !cb)
        return -EINVAL;
    tm = &t->loop->timers;
    tlsflow_timer_stop(t);
    t->due = now_ns() + (uint64_t)timeout_ms * 1000000u;
    t->seq = ++tm->seq;
    t->repeat_ms = repeat_ms;
    t->cb = cb;
    t->arg = arg;
    ret = heap_insert(tm, t);
    if (ret < 0)
        return ret;
    /* Armed at the end of the round; outside one, the ring fd must still
     * tell an embedding loop that there is something to arm. */
    tf_ring_kick(t->loop);
    return 0;
}

static void unlink_timer(tlsflow_timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        t->loop->timers.all = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

TLSFLOW_PUBLIC void tlsflow_timer_free(tlsflow_timer *t)
{
    if (!t)
        return;
    tlsflow_timer_stop(t);
    unlink_timer(t);
    free(t);
}

void tf_timers_free(tlsflow_loop *loop)
{
    tf_timers *tm = &loop->timers;

    while (tm->all) {
        tlsflow_timer *t = tm->all;
        tm->all = t->next;
        free(t);
    }
    free(tm->heap);
    tm->heap = NULL;
    tm->n = tm->cap = 0;
}
