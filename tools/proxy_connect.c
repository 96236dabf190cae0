/* tlsflow-proxy's backend connects, off the loop and without polling: one
 * connector thread per worker waits in poll(2) on the non-blocking connects
 * under way (and on an eventfd for new ones), and hands each end — connected,
 * refused, timed out — to the worker's loop with tlsflow_loop_post.  The
 * request lives in the connection, which keeps its socket open until the
 * end has been delivered (the thread never sees a descriptor closed under
 * it); after tf_connector_stop nothing is delivered any more. */
#include "proxy.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct tf_connector {
    tlsflow_loop    *loop;
    pthread_t        thread;
    int              efd;
    pthread_mutex_t  lock;
    struct tf_connect_req *incoming;   /* under lock: handed over, not yet polled */
    bool             stop;             /* under lock */
};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deliver(void *arg)
{
    struct tf_connect_req *r = arg;

    r->done(r->arg, r->err);
}

/* The connect's end: 0, its SO_ERROR, or ETIMEDOUT. */
static int outcome(const struct tf_connect_req *r, short revents, long long now)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (!revents)
        return now >= r->deadline_ms ? ETIMEDOUT : -1;
    if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    if (!err && (revents & (POLLHUP | POLLERR)))
        err = ECONNABORTED;   /* shut down while connecting (the connection ended) */
    return err;
}

static void *connector_main(void *arg)
{
    struct tf_connector *k = arg;
    struct tf_connect_req *mine = NULL;
    struct pollfd *pfd = NULL;
    size_t cap = 0;

    for (;;) {
        struct tf_connect_req **pp, *r;
        size_t n = 0, i;
        long long now, next = -1;
        bool stop;
        uint64_t v;

        pthread_mutex_lock(&k->lock);
        while ((r = k->incoming)) {
            k->incoming = r->next;
            r->next = mine;
            mine = r;
        }
        stop = k->stop;
        pthread_mutex_unlock(&k->lock);
        if (stop)
            break;
        for (r = mine; r; r = r->next)
            n++;
        if (n + 1 > cap) {
            struct pollfd *p = realloc(pfd, (n + 1) * sizeof(*p));
            if (!p) {          /* no memory: look again in a moment */
                usleep(10000);
                continue;
            }
            pfd = p;
            cap = n + 1;
        }
        pfd[0] = (struct pollfd){ .fd = k->efd, .events = POLLIN };
        for (r = mine, i = 1; r; r = r->next, i++) {
            pfd[i] = (struct pollfd){ .fd = r->fd, .events = POLLOUT };
            if (next < 0 || r->deadline_ms < next)
                next = r->deadline_ms;
        }
        now = now_ms();
        if (poll(pfd, n + 1, next < 0 ? -1 : next > now ? (int)(next - now) : 0) < 0)
            continue;          /* EINTR */
        if (pfd[0].revents && read(k->efd, &v, sizeof(v)) < 0)
            v = 0;             /* EAGAIN: a wake-up already taken */
        now = now_ms();
        for (pp = &mine, i = 1; (r = *pp); i++) {
            struct tf_connect_req *after = r->next;
            int err = outcome(r, pfd[i].revents, now);
            r->err = err;
            /* Posted, it is the loop's again: the loop may end and free the
             * connection before the post call even returns, so r is not
             * touched after it (a refused post is tried again next round). */
            if (err >= 0 && tlsflow_loop_post(k->loop, deliver, r) == 0)
                *pp = after;
            else
                pp = &r->next;
        }
    }
    free(pfd);
    return NULL;
}

int tf_connector_start(struct tf_connector **out, tlsflow_loop *loop)
{
    struct tf_connector *k = calloc(1, sizeof(*k));

    if (!k)
        return -ENOMEM;
    k->loop = loop;
    k->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (k->efd < 0) {
        free(k);
        return -errno;
    }
    pthread_mutex_init(&k->lock, NULL);
    if (pthread_create(&k->thread, NULL, connector_main, k) != 0) {
        close(k->efd);
        pthread_mutex_destroy(&k->lock);
        free(k);
        return -EAGAIN;
    }
    *out = k;
    return 0;
}

void tf_connector_add(struct tf_connector *k, struct tf_connect_req *r, int fd, unsigned timeout_ms,
                      tf_connect_done *done, void *arg)
{
    uint64_t one = 1;

    r->fd = fd;
    r->deadline_ms = now_ms() + timeout_ms;
    r->done = done;
    r->arg = arg;
    pthread_mutex_lock(&k->lock);
    r->next = k->incoming;
    k->incoming = r;
    pthread_mutex_unlock(&k->lock);
    if (write(k->efd, &one, sizeof(one)) < 0)
        return;   /* EAGAIN: the counter is huge, the thread is awake anyway */
}

void tf_connector_stop(struct tf_connector *k)
{
    uint64_t one = 1;

    if (!k)
        return;
    pthread_mutex_lock(&k->lock);
    k->stop = true;
    pthread_mutex_unlock(&k->lock);
    if (write(k->efd, &one, sizeof(one)) < 0)
        (void)0;
    pthread_join(k->thread, NULL);
    close(k->efd);
    pthread_mutex_destroy(&k->lock);
    free(k);
}
