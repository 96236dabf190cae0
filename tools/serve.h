/* tlsflow-serve internals: serve.c runs the threads, signals and statistics;
 * serve_conn.c handles one connection (echo or HTTP static files). */
#ifndef TF_TOOLS_SERVE_H
#define TF_TOOLS_SERVE_H

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <tlsflow.h>

enum serve_mode { SERVE_ECHO, SERVE_HTTP };

struct serve_opts {
    enum serve_mode mode;
    int root_fd;                 /* --root, opened O_PATH|O_DIRECTORY */
    double request_timeout;      /* a started HTTP request must be complete within this */
    double idle_timeout;         /* a connection with nothing in flight is closed after this */
    double send_timeout;         /* one whose writes made no progress for this is reset */
};

/* Counters of one worker, read by the main thread for the stats line. */
struct serve_stats {
    atomic_ullong accepted, failed, active, requests;
    atomic_ullong bytes_in, bytes_out;
    atomic_ullong ktls_tx, ktls_rx;   /* flows whose direction the kernel holds */
};

struct conn;

struct worker {
    const struct serve_opts *opts;
    tlsflow_loop *loop;
    struct conn  *conns;         /* every conn not yet released */
    tlsflow_listener *listener;  /* until the stop post closes it */
    tlsflow_timer *grace;        /* shutdown: how long peers may take to close */
    int           is_stopping;   /* the stop post has run */
    struct serve_stats stats;
    tlsflow_loop_stats loop_stats;   /* the loop's counters, taken before it is freed */
};

/* Set by the main thread before it posts the stop to each worker's loop:
 * 1 = stop accepting and close, 2 = drop everything. */
extern atomic_int tf_serve_stop;

/* The listener's on_flow callback; arg is the worker. */
void tf_serve_accept(tlsflow *flow, const tlsflow_result *res, void *arg);
/* Starts a close_notify on every idle connection (busy ones close when their
 * response is out).  Returns the number of connections still open. */
size_t tf_serve_close_all(struct worker *w);
/* Frees every flow at once (after the grace period). */
void tf_serve_kill_all(struct worker *w);
/* Releases the memory of connections after tlsflow_loop_free. */
void tf_serve_release_all(struct worker *w);
size_t tf_serve_open_count(const struct worker *w);

#endif
