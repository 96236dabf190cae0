/* Opening flows: connect (every resolved address in turn), wrap an fd, listen
 * and accept with many handshakes in flight. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ring/ring.h"

static int prepare(tlsflow_loop *loop, const tlsflow_config *cfg, tlsflow_role role)
{
    if (!loop || !cfg || cfg->role != role)
        return -EINVAL;
    return tf_hs_config_freeze(cfg);
}

static void tune_socket(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- connect ---- */

typedef struct {
    tf_link          link;
    tlsflow_loop    *loop;
    const tlsflow_config *cfg;
    struct addrinfo *res, *cur;
    int              fd;
    int              last_errno;
    int              gai_error;
    tf_op            op;
    tf_task          task;
    tlsflow_cb      *cb;
    void            *arg;
    char            *host;
    char            *cache_key;
    tf_resolve      *lookup;    /* the name is being resolved on a worker thread */
} connector;

static void connector_free(connector *c)
{
    if (c->lookup)
        tf_resolve_drop(c->lookup);
    if (c->fd >= 0)
        close(c->fd);
    if (c->res)
        freeaddrinfo(c->res);
    free(c->host);
    free(c->cache_key);
    tf_hs_config_unref(c->cfg);
    free(c);
}

static void connector_destroy(tf_link *l)
{
    connector_free(TF_CONTAINER(l, connector, link));
}

static void connector_finish(connector *c)
{
    tf_ring_untrack(&c->link);
    c->loop->live--;
    connector_free(c);
}

static void connect_next(connector *c);

static void connect_done(tf_op *op, int res, unsigned flags)
{
    connector *c = TF_CONTAINER(op, connector, op);
    tlsflow *f;

    (void)flags;
    if (res < 0) {
        c->last_errno = -res;
        close(c->fd);
        c->fd = -1;
        c->cur = c->cur->ai_next;
        connect_next(c);
        return;
    }
    tune_socket(c->fd);
    f = tf_flow_new(c->loop, c->cfg, c->fd);
    if (!f) {
        c->last_errno = ENOMEM;
        c->cur = NULL;
        connect_next(c);
        return;
    }
    c->fd = -1;
    tf_flow_start_handshake(f, c->host, c->cache_key, c->cb, c->arg);
    connector_finish(c);
}

static void connect_failed(tf_task *t)
{
    connector *c = TF_CONTAINER(t, connector, task);
    tlsflow_result r = { TLSFLOW_ERROR, NULL, 0, { TLSFLOW_E_SYSTEM, c->last_errno } };

    if (c->gai_error)
        r.error = tf_err(TLSFLOW_E_RESOLVE, c->gai_error);
    c->cb(NULL, &r, c->arg);
    connector_finish(c);
}

static void connect_next(connector *c)
{
    struct io_uring_sqe *sqe;

    for (; c->cur; c->cur = c->cur->ai_next) {
        c->fd = socket(c->cur->ai_family, SOCK_STREAM | SOCK_CLOEXEC, c->cur->ai_protocol);
        if (c->fd < 0) {
            c->last_errno = errno;
            continue;
        }
        c->op.done = connect_done;
        sqe = tf_ring_sqe(c->loop, &c->op);
        io_uring_prep_connect(sqe, c->fd, c->cur->ai_addr, c->cur->ai_addrlen);
        return;
    }
    if (!c->last_errno)
        c->last_errno = EHOSTUNREACH;
    tf_ring_defer(c->loop, &c->task);
}

/* The answer, on the loop's thread (a post, or tlsflow_connect itself for an
 * address literal): the first address is tried, or the failure is reported
 * from a task. */
static void resolved(void *arg, struct addrinfo *res, int gai_error, int sys_errno)
{
    connector *c = arg;

    c->lookup = NULL;
    c->res = res;
    c->gai_error = gai_error;
    if (gai_error) {
        if (gai_error == EAI_SYSTEM)
            c->last_errno = sys_errno, c->gai_error = 0;
        tf_ring_defer(c->loop, &c->task);
        return;
    }
    c->cur = c->res;
    connect_next(c);
}

static bool is_address_literal(const char *host)
{
    struct in6_addr a;

    return inet_pton(AF_INET, host, &a) == 1 || inet_pton(AF_INET6, host, &a) == 1;
}

/* A name is resolved on a worker thread (resolve.c), so that a slow DNS
 * answer stalls no flow of the loop; an address literal needs no lookup. */
TLSFLOW_PUBLIC int tlsflow_connect(tlsflow_loop *loop, const tlsflow_config *cfg, const char *host,
                                   const char *port, tlsflow_cb *cb, void *arg)
{
    struct addrinfo hints, *res = NULL;
    connector *c;
    int ret, gai;

    if (!host || !port || !cb)
        return -EINVAL;
    ret = prepare(loop, cfg, TLSFLOW_CLIENT);
    if (ret)
        return ret;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->fd = -1;
    c->loop = loop;
    c->cfg = cfg;
    tf_hs_config_ref(cfg);
    c->cb = cb;
    c->arg = arg;
    c->task.run = connect_failed;
    c->link.destroy = connector_destroy;
    c->host = strdup(host);
    if (!c->host || asprintf(&c->cache_key, "%s:%s", host, port) < 0) {
        c->cache_key = NULL;
        connector_free(c);
        return -ENOMEM;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    if (!is_address_literal(host) && !tf_under_valgrind()) {
        ret = tf_resolve_start(loop, host, port, &hints, resolved, c, &c->lookup);
        if (ret) {
            connector_free(c);
            return ret;
        }
        tf_ring_track(loop, &c->link);
        return 0;
    }
    if (is_address_literal(host))
        hints.ai_flags |= AI_NUMERICHOST;
    tf_ring_track(loop, &c->link);
    gai = getaddrinfo(host, port, &hints, &res);
    resolved(c, res, gai, gai == EAI_SYSTEM ? errno : 0);
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_wrap_fd(tlsflow_loop *loop, const tlsflow_config *cfg, int fd,
                                   const char *server_name, tlsflow_cb *cb, void *arg)
{
    tlsflow *f;
    int ret, type;
    socklen_t len = sizeof(type);

    if (!loop || !cfg || fd < 0 || !cb)
        return -EINVAL;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
        return -EINVAL;
    ret = prepare(loop, cfg, cfg->role);
    if (ret)
        return ret;
    f = tf_flow_new(loop, cfg, fd);
    if (!f)
        return -ENOMEM;
    tune_socket(fd);
    tf_flow_start_handshake(f, server_name, cfg->role == TLSFLOW_CLIENT ? server_name : NULL, cb, arg);
    return 0;
}

/* ---- listen ---- */

struct tlsflow_listener {
    tf_link       link;
    tlsflow_loop *loop;
    const tlsflow_config *cfg;
    int           fd;
    int           port;
    bool          closed;
    unsigned      refs;
    tf_op         accept_op;
    tf_op         backoff_op;
    struct __kernel_timespec backoff_ts;
    tlsflow_cb   *on_flow;
    void         *arg;
};

static void listener_destroy(tf_link *l)
{
    tlsflow_listener *ls = TF_CONTAINER(l, tlsflow_listener, link);

    if (ls->fd >= 0)
        close(ls->fd);
    if (ls->cfg)
        tf_hs_config_unref(ls->cfg);
    free(ls);
}

static void listener_release(tlsflow_listener *ls)
{
    if (--ls->refs)
        return;
    tf_ring_untrack(&ls->link);
    ls->loop->live--;
    listener_destroy(&ls->link);
}

static void post_accept(tlsflow_listener *ls);

static void backoff_done(tf_op *op, int res, unsigned flags)
{
    tlsflow_listener *ls = TF_CONTAINER(op, tlsflow_listener, backoff_op);

    (void)res;
    (void)flags;
    post_accept(ls);
    listener_release(ls);
}

static void accept_done(tf_op *op, int res, unsigned flags)
{
    tlsflow_listener *ls = TF_CONTAINER(op, tlsflow_listener, accept_op);
    tlsflow *f;

    (void)flags;
    if (res >= 0) {
        if (ls->closed) {
            close(res);
        } else if (!(f = tf_flow_new(ls->loop, ls->cfg, res))) {
            close(res);
        } else {
            tune_socket(res);
            tf_flow_start_handshake(f, NULL, NULL, ls->on_flow, ls->arg);
        }
        post_accept(ls);
    } else if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
        /* Out of descriptors or memory: wait a little instead of spinning. */
        if (!ls->closed) {
            ls->backoff_op.done = backoff_done;
            ls->refs++;
            tf_ring_timeout(ls->loop, &ls->backoff_op, &ls->backoff_ts, 50);
        }
    } else {
        post_accept(ls);  /* ECONNABORTED and the like: the listener goes on */
    }
    listener_release(ls);
}

static void post_accept(tlsflow_listener *ls)
{
    struct io_uring_sqe *sqe;

    if (ls->closed || ls->accept_op.busy)
        return;
    ls->accept_op.done = accept_done;
    sqe = tf_ring_sqe(ls->loop, &ls->accept_op);
    io_uring_prep_accept(sqe, ls->fd, NULL, NULL, SOCK_CLOEXEC);
    ls->refs++;
}

/* getaddrinfo's EAI_* codes as tlsflow_listen's -errno (include/tlsflow.h
 * lists them): the caller can tell a name that does not resolve from a bad
 * port, a resolver that may answer later, or memory. */
static int gai_to_errno(int gai, int saved_errno)
{
    switch (gai) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -ENOENT;          /* the host has no address */
    case EAI_SERVICE:
        return -EINVAL;          /* the port is neither a number nor a TCP service */
    case EAI_AGAIN:
        return -EAGAIN;          /* the resolver failed for now */
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return saved_errno ? -saved_errno : -EIO;
    case EAI_FAIL:
        return -EIO;             /* the resolver failed for good */
    default:
        return -EINVAL;          /* EAI_FAMILY, EAI_SOCKTYPE, EAI_BADFLAGS: not from our hints */
    }
}

/* glibc takes a port that strtoul reads whole as a number and keeps its low
 * 16 bits ("99999" would bind 34463): such a port must be 0..65535.  Names
 * ("https") and the empty port go to getaddrinfo as before. */
static bool is_port_out_of_range(const char *port)
{
    unsigned long n;
    char *end;

    if (!*port)
        return false;
    errno = 0;
    n = strtoul(port, &end, 10);
    return !*end && (errno == ERANGE || n > 65535);
}

static int bind_listener(const char *host, const char *port, int *port_out)
{
    struct addrinfo hints, *res, *ai;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd = -1, one = 1, err = EADDRNOTAVAIL, ret;

    if (is_port_out_of_range(port))
        return -EINVAL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    ret = getaddrinfo(host, port, &hints, &res);
    if (ret)
        return gai_to_errno(ret, errno);
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        /* One loop per thread, each with its own listener on the port. */
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -err;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

TLSFLOW_PUBLIC int tlsflow_listen(tlsflow_loop *loop, const tlsflow_config *cfg, const char *host,
                                  const char *port, tlsflow_cb *on_flow, void *arg,
                                  tlsflow_listener **out)
{
    tlsflow_listener *ls;
    int ret;

    if (!port || !on_flow || !out)
        return -EINVAL;
    ret = prepare(loop, cfg, TLSFLOW_SERVER);
    if (ret)
        return ret;
    ls = calloc(1, sizeof(*ls));
    if (!ls)
        return -ENOMEM;
    ls->fd = bind_listener(host, port, &ls->port);
    if (ls->fd < 0) {
        ret = ls->fd;
        free(ls);
        return ret;
    }
    ls->loop = loop;
    ls->cfg = cfg;
    tf_hs_config_ref(cfg);
    ls->on_flow = on_flow;
    ls->arg = arg;
    ls->refs = 1;
    ls->link.destroy = listener_destroy;
    tf_ring_track(loop, &ls->link);
    post_accept(ls);
    *out = ls;
    return 0;
}

/* New handshakes use cfg; flows already accepted keep the config they
 * started with (each holds a reference), and the old config goes when its
 * last flow does. */
TLSFLOW_PUBLIC int tlsflow_listener_set_config(tlsflow_listener *ls, const tlsflow_config *cfg)
{
    const tlsflow_config *old;
    int ret;

    if (!ls || ls->closed)
        return -EINVAL;
    ret = prepare(ls->loop, cfg, TLSFLOW_SERVER);
    if (ret)
        return ret;
    tf_hs_config_ref(cfg);
    old = ls->cfg;
    ls->cfg = cfg;
    tf_hs_config_unref(old);
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_listener_port(const tlsflow_listener *ls)
{
    return ls ? ls->port : -EINVAL;
}

TLSFLOW_PUBLIC void tlsflow_listener_close(tlsflow_listener *ls)
{
    if (!ls || ls->closed)
        return;
    ls->closed = true;
    /* Stops new connections now; handshakes already accepted go on. */
    shutdown(ls->fd, SHUT_RDWR);
    tf_ring_cancel(ls->loop, &ls->accept_op);
    if (ls->backoff_op.busy) {
        struct io_uring_sqe *sqe;
        tf_ring_sqe_detached(ls->loop, &sqe);
        io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&ls->backoff_op, 0);
    }
    listener_release(ls);
}
