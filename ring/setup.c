/* The ring's set-up, by probe, at tlsflow_loop_new: cooperative task work
 * (5.19: completions' task work never interrupts the thread with an IPI)
 * where the kernel takes it, else the plain ring.  On request, through
 * TLSFLOW_RING_FLAGS, single issuer with deferred task work (6.1: task work
 * runs only when the loop enters, never on the way out of the thread's other
 * syscalls) and a registered ring descriptor (5.18: cheaper enters): both
 * tie the ring to one thread (see PROBED below).  TLSFLOW_RING_FLAGS forces
 * one set ("defer", "coop", "plain", each optionally followed by ",regfd" or
 * ",noregfd", ",bundle" or ",nobundle"); a forced set the kernel refuses
 * fails tlsflow_loop_new with the kernel's error.  Receive bundles (6.10:
 * one userspace receive fills several of the shared ring's buffers) only on
 * request (",bundle").
 *
 * Both single issuer and a registered descriptor tie the ring to a thread.
 * That thread is the one that first runs the loop (a loop may be made on one
 * thread and handed to another): the single-issuer ring is created disabled,
 * what is submitted before the first run waits in the submission queue, and
 * the first run enables the ring and registers its descriptor (tf_ring_bind). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

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
#ifndef IORING_SETUP_R_DISABLED
#define IORING_SETUP_R_DISABLED (1U << 6)
#endif

struct ring_set {
    const char *name;
    unsigned    setup;   /* IORING_SETUP_* besides CQSIZE */
};

/* The probe takes the first set the kernel accepts, from PROBED on: "defer"
 * is there only on request, because its ring belongs to one thread, which
 * then must also free the loop (tlsflow_loop_free from another thread cannot
 * wait for the kernel to end what is in flight, and keeps its memory), and a
 * loop made, run and freed on different threads is an ordinary pattern. */
#define PROBED 1
static const struct ring_set sets[] = {
    /* TASKRUN_FLAG: the kernel marks the ring when work waits for the loop
     * (the embedding descriptor needs to know it, post.c) */
    { "defer", IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
               IORING_SETUP_R_DISABLED },
    { "coop", IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG },
    { "plain", 0 },
};
#define NSETS (sizeof(sets) / sizeof(sets[0]))

/* TLSFLOW_RING_FLAGS: *set (index), *regfd (asked for or not) and *bundle
 * (receive bundles: -1 not said, 0 off, 1 required); -EINVAL for what it
 * does not say. */
static int parse_forced(const char *s, int *set, bool *regfd, int *bundle)
{
    char buf[64], *tok, *save = NULL;

    if (strlen(s) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, s);
    *set = -1;
    *regfd = false;
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
        if (!strcmp(tok, "bundle") || !strcmp(tok, "nobundle")) {
            *bundle = tok[0] == 'b';
            known = true;
        }
        if (!known)
            return -EINVAL;
    }
    return *set < 0 ? -EINVAL : 0;
}

static void describe(tlsflow_loop *loop, bool regfd)
{
    snprintf(loop->ring_desc, sizeof(loop->ring_desc), "%s%s%s", loop->ring_set,
             regfd ? ",regfd" : "", loop->br_bundle ? ",bundle" : "");
}

int tf_ring_setup(tlsflow_loop *loop, unsigned depth)
{
    const char *force = getenv("TLSFLOW_RING_FLAGS");
    int first = PROBED, last = (int)NSETS - 1, ret = -EINVAL, bundle = -1;
    bool regfd = false;
    struct io_uring_params p;

    if (force && *force) {
        ret = parse_forced(force, &first, &regfd, &bundle);
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
    /* Receive bundles (6.10) on request: measured, they did not cut the
     * submissions per MiB of an echo (a receive finds one record waiting,
     * BENCHMARKS.md), so the probe leaves them off. */
    loop->br_bundle = bundle == 1 && (p.features & IORING_FEAT_RECVSEND_BUNDLE);
    if (bundle == 1 && !loop->br_bundle) {
        io_uring_queue_exit(&loop->ring);
        return -EOPNOTSUPP;   /* forced, and the kernel has none */
    }
    loop->ring_disabled = (p.flags & IORING_SETUP_R_DISABLED) != 0;
    loop->ring_regfd_want = regfd;
    describe(loop, regfd);
    return 0;
}

/* The first run (or anything that cannot wait for it) ties the ring to the
 * calling thread: 0, or the kernel's -errno. */
int tf_ring_bind(tlsflow_loop *loop)
{
    int ret;

    if (loop->ring_live)
        return 0;
    if (loop->ring_disabled) {
        /* (Debian's liburing 2.3 declares io_uring_enable_rings but does not
         * export it: the system call itself.) */
        if (syscall(__NR_io_uring_register, loop->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
                    NULL, 0) < 0)
            return -errno;
        loop->ring_disabled = false;
    }
    if (loop->ring_regfd_want) {
        ret = io_uring_register_ring_fd(&loop->ring);
        loop->ring_regfd = ret == 1;
        if (!loop->ring_regfd)
            return ret < 0 ? ret : -EOPNOTSUPP;   /* forced, and refused */
    }
    describe(loop, loop->ring_regfd);
    loop->ring_bound = loop->ring_regfd || strcmp(loop->ring_set, "defer") == 0;
    loop->owner = pthread_self();
    loop->ring_live = true;
    return 0;
}

TLSFLOW_PUBLIC const char *tlsflow_loop_ring_setup(const tlsflow_loop *loop)
{
    return loop ? loop->ring_desc : NULL;
}
