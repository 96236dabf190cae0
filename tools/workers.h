/* tools/workers.c — the process skeleton tlsflow-serve and tlsflow-proxy
 * share: worker threads, one tlsflow_loop each, started one by one (each
 * says ready or failed before the next starts); the main thread waiting in
 * sigtimedwait for SIGINT/SIGTERM (stop posts to every loop; a second one
 * drops everything), a tool's own signal (SIGHUP), statistics due, and the
 * workers' "done" (TF_SIG_DONE); the joins.  Nothing polls. */
#ifndef TF_TOOLS_WORKERS_H
#define TF_TOOLS_WORKERS_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <tlsflow.h>

#define TF_SIG_DONE SIGUSR1   /* a worker to the main thread: I have finished */

/* The first member of each tool's slot. */
struct tf_worker {
    pthread_t       thread;
    int             index;
    int             ready;       /* start-up: 1 running, -1 failed (under the start lock) */
    atomic_int      done;
    /* The main thread and helper threads post to loop only under lock while
     * is_running: the worker clears it under lock before freeing the loop. */
    pthread_mutex_t lock;
    int             is_running;
    tlsflow_loop   *loop;
};

struct tf_workers {
    /* Set by the tool. */
    void        *slots;          /* n slots of slot_size bytes, each starting with a tf_worker */
    size_t       slot_size;
    unsigned     n;
    void      *(*main)(void *slot);             /* the thread: tf_worker_started/_failed, ..., _done */
    void       (*stop)(void *slot);             /* posted to a running loop by tf_workers_stop */
    void       (*started)(struct tf_workers *ws, void *slot);   /* may be NULL: after each slot said ready */
    void       (*stats)(struct tf_workers *ws, double elapsed);   /* the statistics line */
    void       (*on_signal)(struct tf_workers *ws, int sig);  /* may be NULL; else SIGHUP comes here */
    void        *ctx;            /* the tool's, for those two */
    const char  *prog;           /* for messages */
    unsigned     stats_interval; /* seconds, 0 = no statistics line */
    atomic_int  *stop_level;     /* the tool's: 1 stop accepting, 2 drop everything */
    /* Kept by tf_workers_*. */
    unsigned     count;          /* threads started */
    sigset_t     sigs;
};

struct tf_worker *tf_worker_of(struct tf_workers *ws, unsigned i);
/* From the worker thread: posts to its loop are allowed (running), it is
 * ready (the main thread starts the next), both (started); or it failed
 * (no post from then on; it returns without tf_worker_done). */
void tf_worker_running(struct tf_worker *w, tlsflow_loop *loop);
void tf_worker_ready(struct tf_worker *w);
void tf_worker_started(struct tf_worker *w, tlsflow_loop *loop);
void tf_worker_failed(struct tf_worker *w);
/* After its loop ran: no post from here on (before it frees the loop). */
void tf_worker_stopping(struct tf_worker *w);
/* Its last act: tells the main thread. */
void tf_worker_done(struct tf_worker *w);

/* Blocks the signals (before any thread starts), starts the threads one by
 * one; 0 when all said ready, else -1 (the started ones are told to drop
 * everything; tf_workers_join still joins them). */
int  tf_workers_start(struct tf_workers *ws);
/* Until every worker finished after SIGINT/SIGTERM; the last statistics
 * line then, if any. */
void tf_workers_wait(struct tf_workers *ws);
void tf_workers_stop(struct tf_workers *ws, int level);
void tf_workers_join(struct tf_workers *ws);

/* The loops' counters at exit, summed by the tool: "PROG: io_uring
 * submissions N (x per MiB WHAT), ...". */
void tf_print_loop_counters(const char *prog, const tlsflow_loop_stats *t, unsigned long long bytes,
                            const char *what);

#endif
