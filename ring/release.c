/* tlsflow_on_release: a callback for the moment a freed flow's last
 * reference is gone.  Its record is allocated when it is registered, so that
 * the release itself cannot fail, and outlives the flow: it runs as a loop
 * task, after the flow's memory went back, never inside tlsflow_free. */
#include <errno.h>
#include <stdlib.h>

#include "ring/ring.h"

struct tf_release {
    tf_task          task;
    tlsflow_task_fn *fn;
    void            *arg;
};

static void release_run(tf_task *t)
{
    struct tf_release *r = TF_CONTAINER(t, struct tf_release, task);
    tlsflow_task_fn *fn = r->fn;
    void *arg = r->arg;

    free(r);
    fn(arg);
}

static void release_drop(tf_task *t)
{
    free(TF_CONTAINER(t, struct tf_release, task));
}

TLSFLOW_PUBLIC int tlsflow_on_release(tlsflow *flow, tlsflow_task_fn *cb, void *arg)
{
    struct tf_release *r;

    if (!flow || !cb || flow->freed)
        return -EINVAL;
    r = flow->release;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return -ENOMEM;
        r->task.run = release_run;
        r->task.discard = release_drop;
        flow->release = r;
    }
    r->fn = cb;
    r->arg = arg;
    return 0;
}

void tf_release_queue(tlsflow_loop *loop, struct tf_release *r)
{
    if (r)
        tf_ring_defer(loop, &r->task);
}

void tf_release_discard(struct tf_release *r)
{
    free(r);
}
