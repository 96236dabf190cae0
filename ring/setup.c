/* The ring's set-up, by probe, at tlsflow_loop_new: the newest way of running
 * completions' task work that the kernel takes — single issuer with deferred
 * task work (6.1: it runs only when the loop enters, never as an interruption
 * of the thread's other syscalls), else cooperative task work (5.19), else
 * the plain ring — and a registered ring descriptor (5.18: cheaper enters).
 * TLSFLOW_RING_FLAGS in the environment forces one set ("defer", "coop",
 * "plain", each optionally followed by ",regfd" or ",noregfd"); a forced set
 * the kernel refuses fails tlsflow_loop_new with the kernel's error. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring/ring.h"

/* Debian's liburing 2.3 has these; older headers may not. */
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_TASKRUN_FLAG
#define IORING_SETUP_TASKRUN_FLAG (1U << 9)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif

struct ring_set {
    const char *name;
    unsigned    setup;   /* IORING_SETUP_* besides CQSIZE */
};

static const struct ring_set sets[] = {
    /* TASKRUN_FLAG: the kernel marks the ring when work waits for the loop
     * (the embedding descriptor needs to know it, post.c) */
    { "defer", IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG },
    { "coop", IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG },
    { "plain", 0 },
};
#define NSETS (sizeof(sets) / sizeof(sets[0]))

/* TLSFLOW_RING_FLAGS: *set (index) and *regfd (1 yes, 0 no, -1 where the
 * kernel has it); -EINVAL for what it does not say. */
static int parse_forced(const char *s, int *set, int *regfd)
{
    char buf[64], *tok, *save = NULL;

    if (strlen(s) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, s);
    *set = -1;
    *regfd = -1;
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        bool known = false;
        for (unsigned i = 0; i < NSETS; i++)
            if (!strcmp(tok, sets[i].name) && *set < 0) {
                *set = (int)i;
                known = true;
            }
        if (!strcmp(tok, "regfd") || !strcmp(tok, "noregfd")) {
            *regfd = tok[0] == 'r';
            known = true;
        }
        if (!known)
            return -EINVAL;
    }
    return *set < 0 ? -EINVAL : 0;
}

int tf_ring_setup(tlsflow_loop *loop, unsigned depth)
{
    const char *force = getenv("TLSFLOW_RING_FLAGS");
    int first = 0, last = (int)NSETS - 1, regfd = -1, ret = -EINVAL;
    struct io_uring_params p;

    if (force && *force) {
        ret = parse_forced(force, &first, &regfd);
        if (ret < 0)
            return ret;
        last = first;
    }
    for (int i = first; i <= last; i++) {
        memset(&p, 0, sizeof(p));
        /* A roomy completion queue: many flows keep a receive armed. */
        p.flags = IORING_SETUP_CQSIZE | sets[i].setup;
        p.cq_entries = depth * 8;
        ret = io_uring_queue_init_params(depth, &loop->ring, &p);
        if (ret == 0) {
            loop->ring_set = sets[i].name;
            break;
        }
        if (ret != -EINVAL)    /* not a flag the kernel lacks: a real failure */
            return ret;
    }
    if (ret < 0)
        return ret;
    loop->ring_regfd = false;
    if (regfd != 0) {
        ret = io_uring_register_ring_fd(&loop->ring);
        loop->ring_regfd = ret == 1;
        if (regfd == 1 && !loop->ring_regfd) {
            io_uring_queue_exit(&loop->ring);
            return ret < 0 ? ret : -EOPNOTSUPP;
        }
    }
    /* Both tie the ring to this thread: the kernel refuses (or misreads)
     * enters from another. */
    loop->ring_bound = loop->ring_regfd || strcmp(loop->ring_set, "defer") == 0;
    loop->owner = pthread_self();
    snprintf(loop->ring_desc, sizeof(loop->ring_desc), "%s%s", loop->ring_set,
             loop->ring_regfd ? ",regfd" : "");
    return 0;
}

TLSFLOW_PUBLIC const char *tlsflow_loop_ring_setup(const tlsflow_loop *loop)
{
    return loop ? loop->ring_desc : NULL;
}
