/* Flows: lifecycle, the handshake driven by ring I/O, and the public calls.
 * Public calls only queue work and schedule the flow's task; the task runs
 * from the loop and is the only place that calls the application back. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ktls/ktls.h"
#include "ring/ring.h"

static void flow_task(tf_task *t);

#define WRITE_POOL 256

/* Write requests are reused: no allocation per write once a loop is warm. */
static tf_write *write_get(tlsflow_loop *loop)
{
    tf_write *w = loop->free_writes;

    struct iovec *big;
    int big_cap;

    if (!w)
        return calloc(1, sizeof(*w));
    loop->free_writes = w->next;
    loop->nfree_writes--;
    big = w->big_iov;        /* a long iovec array stays with the request */
    big_cap = w->big_cap;
    memset(w, 0, sizeof(*w));
    w->big_iov = big;
    w->big_cap = big_cap;
    return w;
}

void tf_write_put(tlsflow_loop *loop, tf_write *w)
{
    if (loop->nfree_writes >= WRITE_POOL) {
        free(w->big_iov);
        free(w);
        return;
    }
    w->next = loop->free_writes;
    loop->free_writes = w;
    loop->nfree_writes++;
}

static void destroy(tf_link *l)
{
    tlsflow *f = TF_CONTAINER(l, tlsflow, link);
    tf_write *w;

    while ((w = f->wq)) {
        f->wq = w->next;
        tf_write_put(f->loop, w);
    }
    tf_hs_packet_free(f->held);
    tf_hs_session_deinit(&f->hs);
    tf_pool_release(&f->loop->in_pool, &f->in);
    tf_buf_free(&f->in);
    f->fbuf.len = 0;
    tf_pool_release(&f->loop->file_pool, &f->fbuf);
    tf_buf_free(&f->out);
    tf_buf_free(&f->sending);
    tf_buf_free(&f->post_out);
    free(f->kio);
    if (f->pipe_fd[0] > 0) {
        close(f->pipe_fd[0]);
        close(f->pipe_fd[1]);
    }
    if (f->fd >= 0)
        close(f->fd);
    free(f);
}

tlsflow *tf_flow_new(tlsflow_loop *loop, const tlsflow_config *cfg, int fd)
{
    tlsflow *f = calloc(1, sizeof(*f));

    if (!f)
        return NULL;
    f->loop = loop;
    f->cfg = cfg;
    f->fd = fd;
    f->refs = 1;
    f->state = FLOW_HANDSHAKE;
    f->task.run = flow_task;
    f->wq_tail = &f->wq;
    f->link.destroy = destroy;
    /* Flows that can never give their receive key to the kernel take their
     * bytes from the loop's shared ring. */
    f->rx_multishot = (cfg->ktls == TLSFLOW_KTLS_OFF || tf_ktls_probe_ulp() < 0) &&
                      tf_ring_bufring(loop);
    tf_ring_track(loop, &f->link);
    return f;
}

void tf_flow_release(tlsflow *f)
{
    if (--f->refs)
        return;
    tf_ring_untrack(&f->link);
    f->loop->live--;
    destroy(&f->link);
}

void tf_flow_schedule(tlsflow *f)
{
    if (f->task.queued)
        return;
    f->refs++;   /* the queued task holds the flow */
    tf_ring_defer(f->loop, &f->task);
}

static void deliver(tlsflow *f, tlsflow_cb *cb, void *arg, tlsflow_status st, const void *data,
                    size_t len, tlsflow_error err)
{
    tlsflow_result r = { st, data, len, err };

    cb(f, &r, arg);
}

/* ---- Opening ---- */

static void timer_done(tf_op *op, int res, unsigned flags)
{
    tlsflow *f = TF_CONTAINER(op, tlsflow, timer_op);

    (void)flags;
    if (res == -ETIME && f->state == FLOW_HANDSHAKE && !f->err.code) {
        f->err = tf_err(TLSFLOW_E_TIMEOUT, 0);
        /* Wakes the receive in flight; the task then fails the opening. */
        shutdown(f->fd, SHUT_RDWR);
        tf_flow_schedule(f);
    }
    tf_flow_release(f);
}

static void stop_timer(tlsflow *f)
{
    struct io_uring_sqe *sqe;

    if (!f->timer_op.busy)
        return;
    tf_ring_sqe_detached(f->loop, &sqe);
    io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&f->timer_op, 0);
}

void tf_flow_start_handshake(tlsflow *f, const char *server_name, const char *cache_key,
                             tlsflow_cb *cb, void *arg)
{
    tlsflow_config *cfg = (tlsflow_config *)f->cfg;
    int ret;

    f->open_cb = cb;
    f->open_arg = arg;
    f->state = FLOW_HANDSHAKE;
    tf_flow_ktls_attach_early(f);
    ret = tf_hs_session_init(&f->hs, cfg, server_name, cache_key, &f->in, &f->out, &f->rx_eof);
    if (ret < 0) {
        f->err = tf_err(TLSFLOW_E_TLS, ret);
    } else if (cfg->handshake_timeout_ms) {
        f->timer_op.done = timer_done;
        f->refs++;
        tf_ring_timeout(f->loop, &f->timer_op, &f->timer_ts, cfg->handshake_timeout_ms);
    }
    tf_flow_schedule(f);
}

/* The opening failed: the application never sees this flow. */
static void open_failed(tlsflow *f, tlsflow_error err)
{
    tlsflow_cb *cb = f->open_cb;

    f->state = FLOW_DEAD;
    f->freed = true;
    stop_timer(f);
    /* Best effort: the alert GnuTLS queued tells the peer why. */
    if (f->out.len)
        (void)send(f->fd, tf_buf_head(&f->out), f->out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    shutdown(f->fd, SHUT_RDWR);
    tf_ring_cancel(f->loop, &f->recv_op);
    tf_ring_cancel(f->loop, &f->send_op);
    f->open_cb = NULL;
    if (cb)
        deliver(NULL, cb, f->open_arg, TLSFLOW_ERROR, NULL, 0, err);
    tf_flow_release(f);   /* the reference the application would have held */
}

/* Records that came right behind the handshake (a GnuTLS server sends its
 * NewSessionTickets with its Finished) go through GnuTLS before the receive
 * key moves to the kernel; the first data record waits as the held one, and
 * an error waits for the application's first read. */
static void drain_before_switch(tlsflow *f)
{
    gnutls_packet_t pkt;
    const void *data;
    size_t len;
    ssize_t ret;

    while (f->in.len && !f->held && !f->rx_err.code) {
        pkt = NULL;
        ret = tf_hs_recv_packet(&f->hs, &pkt, &data, &len);
        if (ret > 0) {
            f->held = pkt;
            f->held_data = data;
            f->held_len = len;
            return;
        }
        tf_hs_packet_free(pkt);
        if (ret == GNUTLS_E_AGAIN)
            return;               /* part of a record: the receive side finishes it */
        if (ret == 0)
            f->peer_closed = true;
        else
            f->rx_err = tf_hs_error(&f->hs, (int)ret);
        return;
    }
}

static void handshake_progress(tlsflow *f)
{
    tlsflow_error err;
    tlsflow_cb *cb;
    int ret;

    if (f->err.code) {
        open_failed(f, f->err);
        return;
    }
    if (!f->hs.handshake_done) {
        ret = tf_hs_handshake(&f->hs);
        /* What arrived before a reset is used first; the reset matters only
         * when the handshake needs more. */
        if (ret == GNUTLS_E_AGAIN && f->rx_errno) {
            open_failed(f, tf_err(TLSFLOW_E_SYSTEM, f->rx_errno));
            return;
        }
        if (ret == GNUTLS_E_AGAIN) {
            tf_flow_flush(f);
            tf_flow_post_recv(f, 0);
            return;
        }
        tf_trace(f, "handshake: %d", ret);
        if (ret < 0) {
            open_failed(f, tf_hs_error(&f->hs, ret));
            return;
        }
        stop_timer(f);
        err = tf_flow_ktls_plan(f);
        if (err.code) {
            open_failed(f, err);
            return;
        }
    }
    /* The kernel takes the send key once our last userspace record is out. */
    tf_flow_flush(f);
    if (f->ktls_tx_pending) {
        if (f->send_op.busy || f->sending.len || f->out.len)
            return;               /* send_done brings us back */
        if (!tf_flow_ktls_tx_switch(f)) {
            open_failed(f, f->err);
            return;
        }
    }
    tf_trace(f, "opening: %zu bytes received past the handshake", f->in.len);
    /* The receive key, when no record is half-read in userspace; otherwise
     * the receive side switches at the next record boundary. */
    if (f->ktls_rx_pending && !f->recv_op.busy) {
        drain_before_switch(f);
        if (f->ktls_rx_pending && f->in.len == 0 && !f->held && !f->rx_err.code &&
            !tf_flow_ktls_rx_switch(f)) {
            open_failed(f, f->err);
            return;
        }
    }
    f->state = FLOW_OPEN;
    cb = f->open_cb;
    f->open_cb = NULL;
    deliver(f, cb, f->open_arg, TLSFLOW_OK, NULL, 0, f->err);
}

/* ---- Failing: every pending operation completes with the sticky error ---- */

static void fail_pending(tlsflow *f)
{
    tf_trace(f, "failing pending operations: code %d detail %d%s", f->err.code, f->err.detail,
             f->freed ? " (freed)" : "");
    tlsflow_error err = f->freed ? tf_err(TLSFLOW_E_CANCELED, 0) : f->err;
    tf_write *w;

    if (f->read_pending) {
        f->read_pending = false;
        deliver(f, f->read_cb, f->read_arg, TLSFLOW_ERROR, NULL, 0, err);
    }
    while ((w = f->wq)) {
        f->wq = w->next;
        if (!f->wq)
            f->wq_tail = &f->wq;
        if (f->wq_next == w)
            f->wq_next = w->next;
        deliver(f, w->cb, w->arg, TLSFLOW_ERROR, NULL, 0, err);
        tf_write_put(f->loop, w);
    }
    if (f->close_pending) {
        f->close_pending = false;
        deliver(f, f->close_cb, f->close_arg, TLSFLOW_ERROR, NULL, 0, err);
    }
}

void tf_flow_fail(tlsflow *f, tlsflow_error err)
{
    if (!f->err.code)
        f->err = err;
    tf_flow_schedule(f);
}

static void flow_task(tf_task *t)
{
    tlsflow *f = TF_CONTAINER(t, tlsflow, task);

    f->refs++;
    if (f->state == FLOW_HANDSHAKE)
        handshake_progress(f);
    else if (f->state == FLOW_OPEN) {
        if (f->err.code || f->freed)
            fail_pending(f);
        else {
            tf_flow_rx_progress(f);
            tf_flow_tx_progress(f);
            if (f->err.code || f->freed)
                fail_pending(f);
        }
    }
    tf_flow_release(f);
    tf_flow_release(f);   /* the reference taken by tf_flow_schedule */
}

/* ---- The public calls ---- */

TLSFLOW_PUBLIC int tlsflow_read(tlsflow *f, tlsflow_cb *cb, void *arg)
{
    if (!f || !cb || f->freed || f->state != FLOW_OPEN || f->read_pending)
        return -EINVAL;
    f->read_pending = true;
    f->read_cb = cb;
    f->read_arg = arg;
    tf_flow_schedule(f);
    return 0;
}

static int queue_write(tlsflow *f, const struct iovec *iov, int iovcnt, int file_fd, off_t off,
                       size_t file_len, tlsflow_cb *cb, void *arg)
{
    tf_write *w;

    if (!f || !cb || f->freed || f->state != FLOW_OPEN || iovcnt < 0 || (iovcnt && !iov) ||
        iovcnt > IOV_MAX)
        return -EINVAL;
    if (f->close_pending || f->bye_sent)
        return -EINVAL;   /* write after close */
    for (int i = 0; i < iovcnt; i++)
        if (!iov[i].iov_base && iov[i].iov_len)
            return -EINVAL;
    w = write_get(f->loop);
    if (!w)
        return -ENOMEM;
    w->iov = w->inline_iov;
    if (iovcnt > TF_INLINE_IOV) {
        if (w->big_cap < iovcnt) {
            struct iovec *n = realloc(w->big_iov, sizeof(*iov) * (size_t)iovcnt);
            if (!n) {
                tf_write_put(f->loop, w);
                return -ENOMEM;
            }
            w->big_iov = n;
            w->big_cap = iovcnt;
        }
        w->iov = w->big_iov;
    }
    for (int i = 0; i < iovcnt; i++) {
        w->iov[i] = iov[i];
        w->total += iov[i].iov_len;
    }
    w->iovcnt = iovcnt;
    w->file_fd = file_fd;
    w->file_off = off;
    if (file_fd >= 0)
        w->total = file_len;
    w->cb = cb;
    w->arg = arg;
    *f->wq_tail = w;
    f->wq_tail = &w->next;
    if (!f->wq_next)
        f->wq_next = w;
    tf_flow_schedule(f);
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_write(tlsflow *f, const void *buf, size_t len, tlsflow_cb *cb, void *arg)
{
    struct iovec iov = { (void *)buf, len };

    if (!buf && len)
        return -EINVAL;
    return queue_write(f, &iov, 1, -1, 0, 0, cb, arg);
}

TLSFLOW_PUBLIC int tlsflow_writev(tlsflow *f, const struct iovec *iov, int iovcnt, tlsflow_cb *cb,
                                  void *arg)
{
    return queue_write(f, iov, iovcnt, -1, 0, 0, cb, arg);
}

TLSFLOW_PUBLIC int tlsflow_sendfile(tlsflow *f, int fd, off_t offset, size_t len, tlsflow_cb *cb,
                                    void *arg)
{
    if (fd < 0 || offset < 0)
        return -EINVAL;
    return queue_write(f, NULL, 0, fd, offset, len, cb, arg);
}

TLSFLOW_PUBLIC int tlsflow_close(tlsflow *f, tlsflow_cb *cb, void *arg)
{
    if (!f || !cb || f->freed || f->state != FLOW_OPEN || f->close_pending || f->bye_sent)
        return -EINVAL;
    f->close_pending = true;
    f->close_cb = cb;
    f->close_arg = arg;
    tf_flow_schedule(f);
    return 0;
}

TLSFLOW_PUBLIC void tlsflow_free(tlsflow *f)
{
    if (!f || f->freed)
        return;
    f->freed = true;
    stop_timer(f);
    if (!(f->shut_sent && f->peer_closed)) {
        /* An open flow is reset, not closed: the peer must not take it for
         * a clean end. */
        struct linger lg = { 1, 0 };
        setsockopt(f->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        shutdown(f->fd, SHUT_RDWR);
    }
    tf_ring_cancel(f->loop, &f->recv_op);
    tf_ring_cancel(f->loop, &f->send_op);
    tf_ring_cancel(f->loop, &f->shut_op);
    tf_ring_cancel(f->loop, &f->splice_op);
    tf_ring_cancel(f->loop, &f->file_op);
    if (f->read_pending || f->wq || f->close_pending)
        tf_flow_schedule(f);
    tf_flow_release(f);
}

TLSFLOW_PUBLIC int tlsflow_get_info(const tlsflow *f, tlsflow_info *out)
{
    if (!f || !out || f->state != FLOW_OPEN)
        return -EINVAL;
    tf_hs_info(&f->hs, out);
    out->ktls_tx = f->ktls_tx;
    out->ktls_rx = f->ktls_rx;
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_get_peer_certificate(const tlsflow *f, size_t index, const void **der,
                                                size_t *len)
{
    if (!f || !der || !len || f->state != FLOW_OPEN)
        return -EINVAL;
    return tf_hs_peer_certificate(&f->hs, index, der, len);
}

TLSFLOW_PUBLIC int tlsflow_fd(const tlsflow *f)
{
    if (!f)
        return -EINVAL;
    return f->fd;
}

TLSFLOW_PUBLIC const char *tlsflow_version(void)
{
    return TLSFLOW_VERSION_STRING;
}
