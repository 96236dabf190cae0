/* Posts: the one part of a loop that other threads touch.  A mutex-guarded
 * FIFO of tasks and an eventfd that the ring keeps one READ on: a write to
 * the eventfd completes that READ, which ends a wait in io_uring_enter and
 * makes the ring fd readable (tlsflow_loop_fd).  A producer writes the
 * eventfd only when it made the queue non-empty, so a burst of posts costs
 * one wake-up.  The loop's own thread uses the same eventfd (tf_ring_kick)
 * for work that no completion would announce to an embedding loop. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ring/ring.h"

struct tf_post {
    tf_post         *next;
    tlsflow_task_fn *fn;
    void            *arg;
};

static void wake_done(tf_op *op, int res, unsigned flags);

static void arm_wake(tlsflow_loop *loop)
{
    struct io_uring_sqe *sqe;

    loop->wake_op.done = wake_done;
    sqe = tf_ring_sqe(loop, &loop->wake_op);
    io_uring_prep_read(sqe, loop->wake_fd, &loop->wake_val, sizeof(loop->wake_val), 0);
}

static void wake_done(tf_op *op, int res, unsigned flags)
{
    tlsflow_loop *loop = TF_CONTAINER(op, tlsflow_loop, wake_op);

    (void)flags;
    loop->is_kicked = false;
    /* The posts themselves run from tlsflow_loop_run_once, which looks at
     * the queue every round.  Any failure but a passing one would come back
     * at once: the queue is still looked at, only blocked waits stop being
     * woken. */
    if (res < 0 && res != -EINTR && res != -EAGAIN && res != -EBUSY && res != -ENOMEM) {
        tf_trace(loop, "the wake-up read failed (%d): posts no longer wake the loop", res);
        return;
    }
    arm_wake(loop);
}

int tf_post_init(tlsflow_loop *loop)
{
    int ret;

    loop->post_tail = &loop->post_head;
    atomic_init(&loop->embed_fd, -1);
    atomic_init(&loop->has_posts, false);
    ret = pthread_mutex_init(&loop->post_lock, NULL);
    if (ret)
        return -ret;
    loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->wake_fd < 0) {
        ret = -errno;
        pthread_mutex_destroy(&loop->post_lock);
        return ret;
    }
    arm_wake(loop);
    return 0;
}

void tf_ring_wake(tlsflow_loop *loop)
{
    uint64_t one = 1;
    int efd = atomic_load_explicit(&loop->embed_fd, memory_order_acquire);

    /* Only fails with EAGAIN, when the counter is already huge: awake anyway. */
    if (write(loop->wake_fd, &one, sizeof(one)) < 0)
        return;
    /* With deferred task work the kernel may not pass this wake-up on to the
     * embedding descriptor (it completes our read from inside the eventfd's
     * own wake-up): it is told directly. */
    if (efd >= 0 && write(efd, &one, sizeof(one)) < 0)
        return;
}

void tf_ring_kick(tlsflow_loop *loop)
{
    if (loop->in_run || loop->is_kicked)
        return;
    loop->is_kicked = true;
    tf_ring_wake(loop);
}

TLSFLOW_PUBLIC int tlsflow_loop_post(tlsflow_loop *loop, tlsflow_task_fn *fn, void *arg)
{
    tf_post *p;

    if (!loop || !fn)
        return -EINVAL;
    p = tf_post_new(fn, arg);
    if (!p)
        return -ENOMEM;
    tf_post_queue(loop, p);
    return 0;
}

bool tf_post_pending(tlsflow_loop *loop)
{
    return atomic_load_explicit(&loop->has_posts, memory_order_acquire);
}

/* Takes the queue as it is: what the tasks post runs next round. */
unsigned tf_post_run(tlsflow_loop *loop)
{
    tf_post *p;
    unsigned n = 0;

    if (!tf_post_pending(loop))
        return 0;
    pthread_mutex_lock(&loop->post_lock);
    p = loop->post_head;
    loop->post_head = NULL;
    loop->post_tail = &loop->post_head;
    atomic_store_explicit(&loop->has_posts, false, memory_order_relaxed);
    pthread_mutex_unlock(&loop->post_lock);
    while (p) {
        tf_post *next = p->next;
        tlsflow_task_fn *fn = p->fn;
        void *arg = p->arg;
        free(p);
        fn(arg);
        n++;
        p = next;
    }
    return n;
}

void tf_post_free(tlsflow_loop *loop)
{
    tf_post *p = loop->post_head;

    while (p) {
        tf_post *next = p->next;
        free(p);
        p = next;
    }
    loop->post_head = NULL;
    loop->post_tail = &loop->post_head;
    close(loop->wake_fd);
    loop->wake_fd = -1;
    if (loop->embed_fd >= 0)
        close(loop->embed_fd);
    atomic_store(&loop->embed_fd, -1);
    pthread_mutex_destroy(&loop->post_lock);
}

/* With deferred task work a completion may wait in the kernel's list of
 * work for the loop's thread, where polling the ring's descriptor does not
 * see it; the kernel signals a registered eventfd for that work too.  That
 * eventfd is made the first time an embedding application asks (a loop that
 * is not embedded pays nothing for it), and drained at each run. */
static int embed_fd(tlsflow_loop *loop)
{
    int fd, ret;

    if (loop->embed_fd >= 0)
        return loop->embed_fd;
    fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    ret = io_uring_register_eventfd(&loop->ring, fd);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    atomic_store_explicit(&loop->embed_fd, fd, memory_order_release);
    return fd;
}

/* The kernel signals the eventfd when work is added to an empty list: once
 * it is drained, the run must take all the work there is (a round that finds
 * completions waiting would otherwise not enter), or what stays in the list
 * would never signal again. */
void tf_post_drain_embed(tlsflow_loop *loop)
{
    uint64_t v;

    if (loop->embed_fd < 0)
        return;
    if (read(loop->embed_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return;
    (void)io_uring_get_events(&loop->ring);
    loop->enters++;
}

#ifndef IORING_SQ_TASKRUN
#define IORING_SQ_TASKRUN (1U << 2)
#endif

/* A run ends: completions already in the queue, or work the kernel marked
 * as waiting for the loop (posted while the run itself was in the kernel,
 * which may not signal), make the descriptor readable. */
void tf_post_embed_end(tlsflow_loop *loop)
{
    uint64_t one = 1;

    if (loop->embed_fd < 0)
        return;
    if (!io_uring_cq_ready(&loop->ring) &&
        !(IO_URING_READ_ONCE(*loop->ring.sq.kflags) & IORING_SQ_TASKRUN))
        return;
    if (write(loop->embed_fd, &one, sizeof(one)) < 0)
        return;   /* EAGAIN: the counter is huge, readable anyway */
}

TLSFLOW_PUBLIC int tlsflow_loop_fd(const tlsflow_loop *loop)
{
    if (!loop)
        return -EINVAL;
    /* The thread that asks drives the loop: the ring becomes its (as a first
     * run would) and what waited for that run goes to the kernel now, so that
     * its completions make the descriptor readable.  Nothing the caller sees
     * of the loop changes. */
    if (!loop->ring_live) {
        int ret = tf_ring_bind((tlsflow_loop *)loop);
        if (ret < 0)
            return ret;
        tf_ring_submit((tlsflow_loop *)loop);
    }
    if (strcmp(loop->ring_set, "defer"))
        return loop->ring.ring_fd;
    return embed_fd((tlsflow_loop *)loop);
}

/* A post made ready ahead: for a thread that must not fail to post (the
 * resolver), the node is allocated on the loop's thread beforehand. */
tf_post *tf_post_new(tlsflow_task_fn *fn, void *arg)
{
    tf_post *p = malloc(sizeof(*p));

    if (!p)
        return NULL;
    p->next = NULL;
    p->fn = fn;
    p->arg = arg;
    return p;
}

void tf_post_discard(tf_post *p)
{
    free(p);
}

/* tlsflow_loop_post with a node from tf_post_new; any thread; takes p. */
void tf_post_queue(tlsflow_loop *loop, tf_post *p)
{
    bool was_empty;

    p->next = NULL;
    pthread_mutex_lock(&loop->post_lock);
    was_empty = !loop->post_head;
    *loop->post_tail = p;
    loop->post_tail = &p->next;
    atomic_store_explicit(&loop->has_posts, true, memory_order_release);
    pthread_mutex_unlock(&loop->post_lock);
    if (was_empty)
        tf_ring_wake(loop);
}
