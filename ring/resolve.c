/* Name resolution off the loop's thread: getaddrinfo blocks (DNS can take
 * seconds), so tlsflow_connect hands names to a process-wide pool of at most
 * MAX_WORKERS detached threads, started when a lookup finds none idle and
 * gone after IDLE_S without work.  The answer comes back to the loop as a
 * post (post.c) whose node was allocated with the request, so the worker
 * never fails to deliver it.
 *
 * One mutex (lock) guards the queue, every request's refs, loop and post.  A
 * request has two references: the requester's (dropped when the answer ran
 * or by tf_resolve_drop) and the worker side's (the queue, then the worker,
 * dropped once the answer was posted or found unwanted).  r->loop goes NULL
 * when the loop is being freed (tf_resolve_shutdown): from then on no worker
 * touches the loop, and the answer is freed by whoever drops the last
 * reference. */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ring/ring.h"

/* Up to four lookups at once: a slow answer delays no other (answers may
 * come back in any order, as a real resolver's do). */
#define MAX_WORKERS 4
#define IDLE_S 10

struct tf_resolve {
    tf_resolve      *next_job;      /* the queue */
    tf_resolve      *prev, *next;   /* loop->resolving (loop thread only) */
    tlsflow_loop    *loop;          /* NULL: nobody wants the answer any more */
    tf_post         *post;          /* owned here until the worker queues it */
    unsigned         refs;
    char            *host, *port;
    struct addrinfo  hints;
    struct addrinfo *res;
    int              gai_error, sys_errno;
    tf_resolve_fn   *fn;
    void            *arg;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  work = PTHREAD_COND_INITIALIZER;
static tf_resolve     *queue_head, **queue_tail = &queue_head;
static unsigned        nqueued, nworkers, nidle;

/* Under lock. */
static void unref_locked(tf_resolve *r)
{
    if (--r->refs)
        return;
    if (r->res)
        freeaddrinfo(r->res);
    if (r->post)
        tf_post_discard(r->post);
    free(r->host);
    free(r->port);
    free(r);
}

static void unlink_from_loop(tlsflow_loop *loop, tf_resolve *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (loop->resolving == r)
        loop->resolving = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* The post, on the loop's thread: the requester's reference is still held. */
static void on_answer(void *arg)
{
    tf_resolve *r = arg;
    struct addrinfo *res;
    tf_resolve_fn *fn = r->fn;
    void *fn_arg = r->arg;
    int gai_error, sys_errno;

    unlink_from_loop(r->loop, r);
    pthread_mutex_lock(&lock);
    res = r->res;
    r->res = NULL;
    gai_error = r->gai_error;
    sys_errno = r->sys_errno;
    unref_locked(r);
    pthread_mutex_unlock(&lock);
    fn(fn_arg, res, gai_error, sys_errno);
}

static bool next_job(tf_resolve **out)
{
    struct timespec until;
    int ret = 0;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += IDLE_S;
    while (!queue_head && ret != ETIMEDOUT) {
        nidle++;
        ret = pthread_cond_timedwait(&work, &lock, &until);
        nidle--;
    }
    if (!queue_head)
        return false;
    *out = queue_head;
    queue_head = queue_head->next_job;
    if (!queue_head)
        queue_tail = &queue_head;
    nqueued--;
    return true;
}

static void *worker(void *unused)
{
    tf_resolve *r;

    (void)unused;
    pthread_mutex_lock(&lock);
    while (next_job(&r)) {
        if (r->loop) {
            pthread_mutex_unlock(&lock);
            r->gai_error = getaddrinfo(r->host, r->port, &r->hints, &r->res);
            r->sys_errno = r->gai_error == EAI_SYSTEM ? errno : 0;
            pthread_mutex_lock(&lock);
            if (r->loop) {
                tf_post_queue(r->loop, r->post);
                r->post = NULL;
            }
        }
        unref_locked(r);
    }
    nworkers--;
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* Under lock.  Signals stay with the application's threads. */
static int start_worker(void)
{
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    int ret;

    ret = pthread_attr_init(&attr);
    if (ret)
        return -ret;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    ret = pthread_create(&t, &attr, worker, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (ret)
        return -ret;
    nworkers++;
    return 0;
}

int tf_resolve_start(tlsflow_loop *loop, const char *host, const char *port,
                     const struct addrinfo *hints, tf_resolve_fn *fn, void *arg,
                     tf_resolve **out)
{
    tf_resolve *r;
    int ret = 0;

    r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->host = strdup(host);
    r->port = strdup(port);
    r->post = tf_post_new(on_answer, r);
    if (!r->host || !r->port || !r->post) {
        free(r->host);
        free(r->port);
        tf_post_discard(r->post);
        free(r);
        return -ENOMEM;
    }
    r->hints = *hints;
    r->loop = loop;
    r->fn = fn;
    r->arg = arg;
    r->refs = 2;
    pthread_mutex_lock(&lock);
    if (nidle <= nqueued && nworkers < MAX_WORKERS) {
        ret = start_worker();
        if (ret && nworkers)
            ret = 0;   /* one already there takes it, later */
    }
    if (!ret) {
        *queue_tail = r;
        queue_tail = &r->next_job;
        nqueued++;
        pthread_cond_signal(&work);
    }
    pthread_mutex_unlock(&lock);
    if (ret) {
        r->refs = 1;
        pthread_mutex_lock(&lock);
        unref_locked(r);
        pthread_mutex_unlock(&lock);
        return ret;
    }
    r->next = loop->resolving;
    if (r->next)
        r->next->prev = r;
    loop->resolving = r;
    *out = r;
    return 0;
}

void tf_resolve_drop(tf_resolve *r)
{
    if (r->loop)
        unlink_from_loop(r->loop, r);
    pthread_mutex_lock(&lock);
    r->loop = NULL;
    unref_locked(r);
    pthread_mutex_unlock(&lock);
}

void tf_resolve_shutdown(tlsflow_loop *loop)
{
    tf_resolve *r;

    pthread_mutex_lock(&lock);
    while ((r = loop->resolving)) {
        loop->resolving = r->next;
        r->prev = r->next = NULL;
        r->loop = NULL;
    }
    pthread_mutex_unlock(&lock);
}
