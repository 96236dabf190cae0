/* One proxied connection: a client leg and a backend leg, each a TLS flow or
 * a plain socket, and one direction each way.  Bytes move by splice only:
 *   TLS -> plain   tlsflow_splice_to(src flow, dst socket)
 *   plain -> TLS   tlsflow_splice_from(dst flow, src socket)
 *   TLS -> TLS     through a pipe of the connection: splice_to into it,
 *                  splice_from out of it.
 * Each splice moves at most CHUNK bytes and is issued again: its completion
 * is what tells the idle timer the connection moves.
 *
 * Half-close: a source's end (the peer's close_notify, a plain EOF) becomes
 * the destination's end (shutdown(SHUT_WR) on a socket, tlsflow_close on a
 * flow: close_notify then SHUT_WR); the connection ends once both
 * directions ended.  Anything else (a reset, a truncation, a failed
 * handshake of the backend, the idle timeout) resets both legs.
 *
 * The backend connect never blocks the loop: a non-blocking connect(), whose
 * end the worker's connector thread waits for and posts (proxy_connect.c);
 * the connection holds itself (flows) until that end has come.
 *
 * Send timeout: a splice toward a peer that does not read stays in flight
 * with no completion, so the idle timer cannot see it.  A watch timer looks
 * at each direction's destination socket every quarter of --send-timeout:
 * it made progress when it polls writable (what waits, waits for its
 * source), its peer acknowledged more bytes (a slow but steady reader), or
 * one of its splices completed; none of these for the whole timeout ends the
 * connection (close_notify tried on the TLS legs for STUCK_GRACE_MS, then
 * both reset). */
#include "common.h"
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1u << 20)
#define STUCK_GRACE_MS 1000u   /* after a send timeout, how long close_notify may take */

atomic_int tf_proxy_stop;

struct leg {
    tlsflow *flow;      /* a TLS leg; NULL: plain */
    int      fd;        /* the plain leg's socket (-1 none) */
};

/* One direction, src -> dst.
 *  DIR_MOVING   its splices go on.
 *  DIR_CLOSING  the source ended; the destination is being closed (TLS:
 *               tlsflow_close pending; TLS -> TLS: the pipe's EOF on its way).
 *  DIR_DONE     the end reached the destination. */
enum dir_phase { DIR_MOVING, DIR_CLOSING, DIR_DONE };

struct dir {
    struct pconn  *c;
    struct leg    *src, *dst;
    enum dir_phase phase;
    int            pipe[2];        /* TLS -> TLS only; -1 */
    int            is_to_pending;  /* splice_to(src) in flight */
    int            is_from_pending;/* splice_from(dst) in flight */
    int            is_src_ended;   /* TLS -> TLS: splice_to saw EOF, pipe[1] closed */
    int            is_up;          /* client -> backend */
    double         progress_at;    /* the last time its sending was seen to move */
    uint64_t       acked_seen;     /* the destination's tcpi_bytes_acked at the last look */
};

/* The connection's life:
 *  C_CONNECTING  the backend socket's connect (then, TLS backend, its handshake).
 *  C_RUNNING     both directions move.
 *  C_STUCK       a send timeout: close_notify tried on the TLS legs, reset
 *                when they answered or after STUCK_GRACE_MS.
 *  C_ENDED       both ended cleanly or it was reset: legs freed, waiting for
 *                the flows' releases. */
enum conn_phase { C_CONNECTING, C_RUNNING, C_STUCK, C_ENDED };

struct pconn {
    struct pworker *w;
    struct pconn   *prev, *next;    /* w->conns */
    enum conn_phase phase;
    struct leg      client, backend;
    struct dir      up, down;
    int             connect_fd;     /* the backend socket while connecting */
    struct tf_connect_req creq;     /* the connect, while the connector has it */
    int             flows;          /* flows not yet released */
    int             ktls_tx, ktls_rx;
    tlsflow_timer  *idle;           /* idle timeout; in C_STUCK the close_notify's grace */
    tlsflow_timer  *watch;          /* --send-timeout: the looks at the sending */
    int             stuck_closes;   /* C_STUCK: close_notify attempts not answered yet */
    int             is_counted;     /* in stats.active */
};

/* ---- Lifetime ---- */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void reset_fd(int fd)
{
    struct linger lg = { 1, 0 };

    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void unlink_conn(struct pconn *c)
{
    struct pworker *w = c->w;

    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

static void uncount(struct pconn *c)
{
    struct proxy_stats *st = &c->w->stats;

    if (!c->is_counted)
        return;
    c->is_counted = 0;
    atomic_fetch_sub_explicit(&st->active, 1, memory_order_relaxed);
    if (c->ktls_tx)
        atomic_fetch_sub_explicit(&st->ktls_tx, 1, memory_order_relaxed);
    if (c->ktls_rx)
        atomic_fetch_sub_explicit(&st->ktls_rx, 1, memory_order_relaxed);
}

/* The last flow is released (or there never was one): nothing of the
 * library refers to the connection any more. */
static void conn_free(struct pconn *c)
{
    struct pworker *w = c->w;

    uncount(c);
    close_fd(&c->client.fd);
    close_fd(&c->backend.fd);
    close_fd(&c->connect_fd);
    close_fd(&c->up.pipe[0]);
    close_fd(&c->up.pipe[1]);
    close_fd(&c->down.pipe[0]);
    close_fd(&c->down.pipe[1]);
    tlsflow_timer_free(c->idle);
    tlsflow_timer_free(c->watch);
    unlink_conn(c);
    free(c);
    if (w->loop && w->is_stopping && !w->conns)
        tlsflow_loop_stop(w->loop);   /* the last one: the worker may go */
}

static void on_released(void *arg)
{
    struct pconn *c = arg;

    if (--c->flows == 0 && c->phase == C_ENDED)
        conn_free(c);
}

/* Ends the connection: reset (both legs told nothing good), or after both
 * directions ended cleanly. */
static void conn_end(struct pconn *c, int reset)
{
    if (c->phase == C_ENDED)
        return;
    if (c->phase == C_CONNECTING && c->connect_fd >= 0)
        shutdown(c->connect_fd, SHUT_RDWR);   /* the connector hands its end over now */
    c->phase = C_ENDED;
    uncount(c);
    tlsflow_timer_stop(c->idle);
    tlsflow_timer_stop(c->watch);
    if (reset) {
        reset_fd(c->client.fd);
        reset_fd(c->backend.fd);
        reset_fd(c->connect_fd);
    }
    /* Freeing an open flow resets it; a closed one just goes. */
    if (c->client.flow)
        tlsflow_free(c->client.flow);
    if (c->backend.flow)
        tlsflow_free(c->backend.flow);
    c->client.flow = c->backend.flow = NULL;
    if (c->flows == 0)
        conn_free(c);
}

static void conn_reset(struct pconn *c, const char *why, const tlsflow_result *r)
{
    if (getenv("TLSFLOW_PROXY_DEBUG"))
        fprintf(stderr, "tlsflow-proxy: connection reset: %s%s%s\n", why, r ? ": " : "",
                r && r->status == TLSFLOW_ERROR ? tlsflow_error_message(r->error)
                : r && r->status == TLSFLOW_EOF ? "the peer stopped reading" : "");
    conn_end(c, 1);
}

static void on_idle(tlsflow_timer *t, void *arg)
{
    (void)t;
    conn_reset(arg, "idle timeout", NULL);
}

/* ---- Send timeout ---- */

static void on_stuck_over(tlsflow_timer *t, void *arg)
{
    (void)t;
    conn_reset(arg, "send timeout", NULL);
}

static void on_stuck_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct pconn *c = arg;

    (void)f;
    (void)r;
    if (c->phase == C_STUCK && --c->stuck_closes == 0)
        conn_reset(c, "send timeout", NULL);
}

static void stuck_close(struct pconn *c, tlsflow *f)
{
    /* A flow whose close is already under way (a direction closing) says
     * -EINVAL: the grace covers it. */
    if (f && tlsflow_close(f, on_stuck_closed, c) == 0)
        c->stuck_closes++;
}

static void send_timed_out(struct pconn *c)
{
    atomic_fetch_add_explicit(&c->w->stats.send_timeouts, 1, memory_order_relaxed);
    c->phase = C_STUCK;
    tlsflow_timer_stop(c->watch);
    stuck_close(c, c->client.flow);
    stuck_close(c, c->backend.flow);
    if (!c->stuck_closes ||
        tlsflow_timer_start(c->idle, STUCK_GRACE_MS, 0, on_stuck_over, c) < 0)
        conn_reset(c, "send timeout", NULL);
}

/* Whether d's sending made no progress for the whole timeout; a look that
 * sees it move restarts the count. */
static int dir_is_stuck(struct dir *d, double now)
{
    struct tf_send_look l = { 0 };
    int fd = d->dst->flow ? tlsflow_fd(d->dst->flow) : d->dst->fd;
    int has_look = d->phase != DIR_DONE && fd >= 0 && tf_send_look(fd, &l) == 0;

    if (!has_look || l.is_writable || l.has_error || l.acked != d->acked_seen) {
        if (has_look)
            d->acked_seen = l.acked;
        d->progress_at = now;
        return 0;
    }
    return (now - d->progress_at) * 1000.0 >= (double)d->c->w->opts->send_ms;
}

static void on_watch(tlsflow_timer *t, void *arg)
{
    struct pconn *c = arg;
    double now = tf_now_s();

    (void)t;
    if (c->phase != C_RUNNING)
        return;
    /* Both looked at: each keeps its own count. */
    int up = dir_is_stuck(&c->up, now), down = dir_is_stuck(&c->down, now);
    if (up || down)
        send_timed_out(c);
}

static void watch_start(struct pconn *c)
{
    unsigned ms = c->w->opts->send_ms / 4;
    double now = tf_now_s();

    if (!c->w->opts->send_ms)
        return;
    if (ms < 50)
        ms = 50;
    c->up.progress_at = c->down.progress_at = now;
    if (tlsflow_timer_start(c->watch, ms, ms, on_watch, c) < 0)
        conn_reset(c, "watch timer", NULL);
}

/* A splice toward d's destination completed. */
static void sent(struct dir *d)
{
    if (d->c->w->opts->send_ms)
        d->progress_at = tf_now_s();
}

static void touch(struct pconn *c)
{
    if (c->w->opts->idle_ms && c->phase == C_RUNNING)
        tlsflow_timer_start(c->idle, c->w->opts->idle_ms, 0, on_idle, c);
}

static int track_flow(struct pconn *c, tlsflow *f)
{
    if (tlsflow_on_release(f, on_released, c) < 0)
        return -1;
    c->flows++;
    return 0;
}

/* ---- Directions ---- */

static void dir_issue(struct dir *d);

static void maybe_done(struct pconn *c)
{
    if (c->up.phase == DIR_DONE && c->down.phase == DIR_DONE)
        conn_end(c, 0);
}

static void count_bytes(struct dir *d, size_t n)
{
    atomic_fetch_add_explicit(d->is_up ? &d->c->w->stats.bytes_up : &d->c->w->stats.bytes_down,
                              n, memory_order_relaxed);
}

static void on_dst_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct dir *d = arg;

    (void)f;
    if (d->c->phase != C_RUNNING)
        return;
    /* A peer that drops the connection after our close_notify has closed too. */
    if (r->status == TLSFLOW_ERROR && r->error.code != TLSFLOW_E_TRUNCATED) {
        conn_reset(d->c, "close", r);
        return;
    }
    d->phase = DIR_DONE;
    maybe_done(d->c);
}

/* The source ended and every byte before it is in the destination flow:
 * close_notify, then SHUT_WR. */
static void close_dst_flow(struct dir *d)
{
    d->phase = DIR_CLOSING;
    if (tlsflow_close(d->dst->flow, on_dst_closed, d) < 0)
        conn_reset(d->c, "close refused", NULL);
}

/* src flow -> dst socket (or the pipe). */
static void on_to(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct dir *d = arg;
    struct pconn *c = d->c;

    (void)f;
    d->is_to_pending = 0;
    if (c->phase != C_RUNNING)
        return;
    if (d->pipe[1] < 0) {
        count_bytes(d, r->len);
        sent(d);
    }
    touch(c);
    if (r->status == TLSFLOW_OK && r->len == CHUNK) {
        dir_issue(d);
    } else if (r->status != TLSFLOW_ERROR) {   /* the peer's close_notify (OK: after len bytes) */
        if (d->dst->flow) {
            d->is_src_ended = 1;
            close_fd(&d->pipe[1]);             /* splice_from reads the pipe's EOF */
        } else {
            shutdown(d->dst->fd, SHUT_WR);
            d->phase = DIR_DONE;
            maybe_done(c);
        }
    } else if (r->error.code == TLSFLOW_E_TRUNCATED &&
               (d->is_up ? &c->down : &c->up)->phase != DIR_MOVING) {
        /* A peer that hangs up after our close_notify has closed too. */
        d->phase = DIR_DONE;
        if (!d->dst->flow)
            shutdown(d->dst->fd, SHUT_WR);
        maybe_done(c);
    } else {
        conn_reset(c, d->is_up ? "client (reading)" : "backend (reading)", r);
    }
}

/* src socket (or the pipe) -> dst flow. */
static void on_from(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct dir *d = arg;
    struct pconn *c = d->c;

    (void)f;
    d->is_from_pending = 0;
    if (c->phase != C_RUNNING)
        return;
    count_bytes(d, r->len);
    sent(d);
    touch(c);
    if (r->status == TLSFLOW_OK && r->len == CHUNK)
        dir_issue(d);
    else if (r->status == TLSFLOW_OK)          /* the source's EOF */
        close_dst_flow(d);
    else
        conn_reset(c, d->is_up ? "backend (writing)" : "client (writing)", r);
}

/* Issues what moves this direction's bytes and is not in flight. */
static void dir_issue(struct dir *d)
{
    struct pconn *c = d->c;
    int ret;

    if (d->phase != DIR_MOVING || c->phase != C_RUNNING)
        return;
    if (d->src->flow && !d->is_to_pending && !d->is_src_ended) {
        ret = tlsflow_splice_to(d->src->flow, d->dst->flow ? d->pipe[1] : d->dst->fd, CHUNK,
                                on_to, d);
        if (ret < 0) {
            conn_reset(c, "splice_to refused", NULL);
            return;
        }
        d->is_to_pending = 1;
    }
    if (d->dst->flow && !d->is_from_pending) {
        ret = tlsflow_splice_from(d->dst->flow, d->src->flow ? d->pipe[0] : d->src->fd, CHUNK,
                                  on_from, d);
        if (ret < 0) {
            conn_reset(c, "splice_from refused", NULL);
            return;
        }
        d->is_from_pending = 1;
    }
}

static void dir_init(struct pconn *c, struct dir *d, struct leg *src, struct leg *dst, int up)
{
    d->c = c;
    d->src = src;
    d->dst = dst;
    d->is_up = up;
    d->phase = DIR_MOVING;
}

static int dir_pipe(struct dir *d)
{
    if (!d->src->flow || !d->dst->flow)
        return 0;
    return pipe2(d->pipe, O_CLOEXEC);
}

/* Both legs are there: the bytes move. */
static void conn_run(struct pconn *c)
{
    tlsflow_info info;

    c->phase = C_RUNNING;
    dir_init(c, &c->up, &c->client, &c->backend, 1);
    dir_init(c, &c->down, &c->backend, &c->client, 0);
    if (dir_pipe(&c->up) < 0 || dir_pipe(&c->down) < 0) {
        conn_reset(c, "pipe", NULL);
        return;
    }
    if (c->client.flow && tlsflow_get_info(c->client.flow, &info) == 0) {
        c->ktls_tx = info.ktls_tx;
        c->ktls_rx = info.ktls_rx;
        if (c->ktls_tx)
            atomic_fetch_add_explicit(&c->w->stats.ktls_tx, 1, memory_order_relaxed);
        if (c->ktls_rx)
            atomic_fetch_add_explicit(&c->w->stats.ktls_rx, 1, memory_order_relaxed);
    }
    touch(c);
    watch_start(c);
    if (c->phase != C_RUNNING)
        return;
    dir_issue(&c->up);
    dir_issue(&c->down);
}

/* ---- The backend ---- */

/* PROXY protocol v2: the client's address, before any byte of its own. */
static int send_proxy_v2(struct pconn *c, int bfd)
{
    static const uint8_t sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };
    struct sockaddr_storage src, dst;
    socklen_t sl = sizeof(src), dl = sizeof(dst);
    int cfd = c->client.flow ? tlsflow_fd(c->client.flow) : c->client.fd;
    uint8_t h[16 + 36];
    size_t n = 16;

    memcpy(h, sig, 12);
    h[12] = 0x21;                         /* version 2, PROXY */
    if (getpeername(cfd, (struct sockaddr *)&src, &sl) < 0 ||
        getsockname(cfd, (struct sockaddr *)&dst, &dl) < 0 || src.ss_family != dst.ss_family) {
        h[12] = 0x20;                     /* LOCAL: no address to tell */
        h[13] = 0x00;
    } else if (src.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const void *)&src, *d4 = (const void *)&dst;
        h[13] = 0x11;                     /* TCP over IPv4 */
        memcpy(h + 16, &s4->sin_addr, 4);
        memcpy(h + 20, &d4->sin_addr, 4);
        memcpy(h + 24, &s4->sin_port, 2);
        memcpy(h + 26, &d4->sin_port, 2);
        n += 12;
    } else if (src.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)&src, *d6 = (const void *)&dst;
        h[13] = 0x21;                     /* TCP over IPv6 */
        memcpy(h + 16, &s6->sin6_addr, 16);
        memcpy(h + 32, &d6->sin6_addr, 16);
        memcpy(h + 48, &s6->sin6_port, 2);
        memcpy(h + 50, &d6->sin6_port, 2);
        n += 36;
    } else {
        h[12] = 0x20;
        h[13] = 0x00;
    }
    h[14] = (uint8_t)((n - 16) >> 8);
    h[15] = (uint8_t)(n - 16);
    /* A socket just connected has room for 52 bytes: this never waits. */
    return send(bfd, h, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

static void backend_failed(struct pconn *c, const char *why, const tlsflow_result *r)
{
    atomic_fetch_add_explicit(&c->w->stats.backend_failed, 1, memory_order_relaxed);
    conn_reset(c, why, r);
}

static void on_backend_open(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct pconn *c = arg;

    c->flows--;            /* the hold of backend_connected */
    if (c->phase == C_ENDED) {
        if (f)
            tlsflow_free(f);
        if (c->flows == 0)
            conn_free(c);
        return;
    }
    if (!f || r->status != TLSFLOW_OK) {
        if (f)
            tlsflow_free(f);
        backend_failed(c, "backend handshake", r);
        return;
    }
    if (track_flow(c, f) < 0) {
        tlsflow_free(f);
        backend_failed(c, "backend flow", NULL);
        return;
    }
    c->backend.flow = f;
    conn_run(c);
}

/* The backend socket is connected. */
static void backend_connected(struct pconn *c)
{
    const struct proxy_opts *o = c->w->opts;
    int fd = c->connect_fd;
    int ret;

    c->connect_fd = -1;
    if (o->proxy_v2 && send_proxy_v2(c, fd) < 0) {
        close(fd);
        backend_failed(c, "PROXY header", NULL);
        return;
    }
    if (!o->backend_cfg) {
        c->backend.fd = fd;
        conn_run(c);
        return;
    }
    /* The library's own sockets block (io_uring does the waiting). */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    ret = tlsflow_wrap_fd(c->w->loop, o->backend_cfg, fd, o->backend_name, on_backend_open, c);
    if (ret < 0) {
        close(fd);
        backend_failed(c, "tlsflow_wrap_fd", NULL);
        return;
    }
    c->flows++;            /* on_backend_open comes, flow or not: held until then */
}

/* The connector's word on the backend connect (its hold ends here). */
static void on_connect_done(void *arg, int err)
{
    struct pconn *c = arg;

    c->flows--;
    if (c->phase == C_ENDED) {
        if (c->flows == 0)
            conn_free(c);
        return;
    }
    if (err) {
        if (getenv("TLSFLOW_PROXY_DEBUG"))
            fprintf(stderr, "tlsflow-proxy: backend connect: %s\n", strerror(err));
        backend_failed(c, err == ETIMEDOUT ? "backend connect timed out" : "backend connect", NULL);
        return;
    }
    backend_connected(c);
}

static void start_connect(struct pconn *c)
{
    struct pworker *w = c->w;
    const struct proxy_opts *o = w->opts;
    int fd = socket(o->backend.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    c->phase = C_CONNECTING;
    if (fd < 0) {
        backend_failed(c, "socket", NULL);
        return;
    }
    c->connect_fd = fd;
    if (connect(fd, (const struct sockaddr *)&o->backend, o->backend_len) == 0) {
        backend_connected(c);
        return;
    }
    if (errno != EINPROGRESS) {
        backend_failed(c, "backend connect", NULL);
        return;
    }
    c->flows++;            /* on_connect_done comes: held until then */
    tf_connector_add(w->connector, &c->creq, fd, o->connect_ms, on_connect_done, c);
}

/* ---- Accepting ---- */

static struct pconn *conn_new(struct pworker *w)
{
    struct pconn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    if (tlsflow_timer_new(w->loop, &c->idle) < 0) {
        free(c);
        return NULL;
    }
    if (w->opts->send_ms && tlsflow_timer_new(w->loop, &c->watch) < 0) {
        tlsflow_timer_free(c->idle);
        free(c);
        return NULL;
    }
    c->w = w;
    c->client.fd = c->backend.fd = c->connect_fd = -1;
    c->up.pipe[0] = c->up.pipe[1] = c->down.pipe[0] = c->down.pipe[1] = -1;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    c->is_counted = 1;
    atomic_fetch_add_explicit(&w->stats.accepted, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->stats.active, 1, memory_order_relaxed);
    return c;
}

void tf_proxy_accept(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    struct pworker *w = arg;
    struct pconn *c;

    if (!flow || res->status != TLSFLOW_OK) {
        atomic_fetch_add_explicit(&w->stats.failed, 1, memory_order_relaxed);
        if (flow)
            tlsflow_free(flow);
        return;
    }
    if (atomic_load(&tf_proxy_stop) || !(c = conn_new(w))) {
        tlsflow_free(flow);
        return;
    }
    if (track_flow(c, flow) < 0) {
        tlsflow_free(flow);
        c->phase = C_ENDED;
        conn_free(c);
        return;
    }
    c->client.flow = flow;
    start_connect(c);
}

void tf_proxy_accept_fd(struct pworker *w, int fd)
{
    struct pconn *c;

    if (atomic_load(&tf_proxy_stop) || !(c = conn_new(w))) {
        close(fd);
        return;
    }
    c->client.fd = fd;
    start_connect(c);
}

size_t tf_proxy_open_count(const struct pworker *w)
{
    size_t n = 0;

    for (const struct pconn *c = w->conns; c; c = c->next)
        n += c->phase != C_ENDED;
    return n;
}

void tf_proxy_kill_all(struct pworker *w)
{
    for (struct pconn *c = w->conns, *next; c; c = next) {
        next = c->next;           /* conn_end may free c */
        if (c->phase != C_ENDED)
            conn_end(c, 1);
    }
}

/* After tlsflow_loop_free: the flows went with the loop, without releases. */
void tf_proxy_release_all(struct pworker *w)
{
    while (w->conns) {
        struct pconn *c = w->conns;
        c->flows = 0;
        c->phase = C_ENDED;
        c->idle = c->watch = NULL;   /* freed with the loop */
        conn_free(c);
    }
}
