/* tlsflow-proxy internals: proxy.c runs the threads, signals and statistics;
 * proxy_conn.c moves one connection's bytes (by splice) and connects to the
 * backend. */
#ifndef TF_TOOLS_PROXY_H
#define TF_TOOLS_PROXY_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>
#include <tlsflow.h>

struct proxy_opts {
    struct sockaddr_storage backend;    /* resolved once at start */
    socklen_t     backend_len;
    const char   *backend_name;          /* --tls-backend: SNI and verification name */
    const tlsflow_config *backend_cfg;   /* --tls-backend: the client config, else NULL */
    int           tls_in;                /* clients speak TLS (a --cert was given) */
    int           proxy_v2;              /* --proxy-protocol v2 */
    unsigned      idle_ms;               /* no byte moved either way for this: both reset */
    unsigned      connect_ms;            /* the backend's connect must finish within this */
    unsigned      send_ms;               /* a direction whose sending toward its peer made no
                                            progress for this: close_notify tried, then both
                                            reset (0 = off) */
};

/* Counters of one worker, read by the main thread for the stats line. */
struct proxy_stats {
    atomic_ullong accepted, failed, active, backend_failed;
    atomic_ullong send_timeouts;         /* connections ended by --send-timeout */
    atomic_ullong bytes_up, bytes_down;  /* client -> backend, backend -> client */
    atomic_ullong ktls_tx, ktls_rx;      /* open client flows whose direction the kernel holds */
};

struct pconn;

/* proxy_connect.c: backend connects waited for on a thread of their own. */
typedef void tf_connect_done(void *arg, int err);   /* on the loop's thread: 0 or an errno */
struct tf_connect_req {
    struct tf_connect_req *next;
    int              fd;
    long long        deadline_ms;   /* CLOCK_MONOTONIC */
    int              err;
    tf_connect_done *done;
    void            *arg;
};
struct tf_connector;
int  tf_connector_start(struct tf_connector **out, tlsflow_loop *loop);
/* fd is connecting (EINPROGRESS) and stays open until done(arg, err) has run,
 * which it does once, from a post, unless the connector is stopped first. */
void tf_connector_add(struct tf_connector *k, struct tf_connect_req *r, int fd, unsigned timeout_ms,
                      tf_connect_done *done, void *arg);
/* Joins the thread; what is still waiting is never delivered. */
void tf_connector_stop(struct tf_connector *k);

struct pworker {
    const struct proxy_opts *opts;
    tlsflow_loop *loop;
    struct pconn *conns;          /* every connection not yet released */
    struct tf_connector *connector;   /* backend connects under way */
    tlsflow_listener *listener;   /* TLS in */
    int           plain_fd;       /* TCP in: the listening socket, -1 none */
    tlsflow_timer *keepalive;     /* TCP in: keeps tlsflow_loop_run going (no listener of its own) */
    tlsflow_timer *grace;
    int           is_stopping;
    struct proxy_stats stats;
    tlsflow_loop_stats loop_stats;
};

/* 1 = stop accepting, let connections end within the grace; 2 = drop all. */
extern atomic_int tf_proxy_stop;

/* The listener's on_flow (arg: the worker). */
void tf_proxy_accept(tlsflow *flow, const tlsflow_result *res, void *arg);
/* TCP in: an accepted plain socket, on the loop's thread. */
void tf_proxy_accept_fd(struct pworker *w, int fd);
size_t tf_proxy_open_count(const struct pworker *w);
/* After the loop stopped: frees every flow (resets) and, after
 * tlsflow_loop_free, the connections' memory. */
void tf_proxy_kill_all(struct pworker *w);
void tf_proxy_release_all(struct pworker *w);

#endif
