/* Posts: the one part of a loop that other threads touch.  A mutex-guarded
 * FIFO of tasks and an eventfd that the ring keeps one READ on: a write to
 * the eventfd completes that READ, which ends a wait in io_uring_enter and
 * makes the ring fd readable (tlsflow_loop_fd).  A producer writes the
 * eventfd only when it made the queue non-empty, so a burst of posts costs
 * one wake-up.  The loop's own thread uses the same eventfd (tf_ring_kick)
 * for work that no completion would announce to an embedding loop. */
#include <errno.h>
#include <stdlib.h>
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

    /* Only fails with EAGAIN, when the counter is already huge: awake anyway. */
    if (write(loop->wake_fd, &one, sizeof(one)) < 0)
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
    pthread_mutex_destroy(&loop->post_lock);
}

TLSFLOW_PUBLIC int tlsflow_loop_fd(const tlsflow_loop *loop)
{
    if (!loop)
        return -EINVAL;
    return loop->ring.ring_fd;
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
