/* Flows: lifecycle, the one path that submits a flow's operation and the one
 * that completes it, failing (cancel, alert, linger) and the task that drives
 * a flow.  Public calls only queue work and schedule the task; the task runs
 * from the loop and is the only place that calls the application back. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ktls/ktls.h"
#include "ring/ring.h"

static void flow_task(tf_task *t);
static void starve_task(tf_task *t);

#define WRITE_POOL 256

/* Write requests are reused: no allocation per write once a loop is warm. */
tf_write *tf_write_get(tlsflow_loop *loop)
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
    tf_flow_unpark(f);
    tf_hs_packet_free(f->held);
    f->held = NULL;
    f->held_len = 0;
    tf_buf_consume(&f->in, f->in.len);
    tf_flow_rx_account(f);
    tf_hs_session_deinit(&f->hs);
    tf_pool_release(&f->loop->in_pool, &f->in);
    tf_buf_free(&f->in);
    f->fbuf.len = 0;
    tf_pool_release(&f->loop->file_pool, &f->fbuf);
    tf_buf_free(&f->out);
    tf_buf_free(&f->sending);
    tf_buf_free(&f->post_out);
    free(f->kio);
    tf_flow_splice_destroy(f);
    if (f->pipe_fd[0] >= 0) {
        close(f->pipe_fd[0]);
        close(f->pipe_fd[1]);
    }
    if (f->fd >= 0)
        close(f->fd);
    tf_release_discard(f->release);   /* loop_free: released without callbacks */
    tf_hs_config_unref(f->cfg);       /* the config this flow started with */
    free(f);
}

tlsflow *tf_flow_new(tlsflow_loop *loop, const tlsflow_config *cfg, int fd)
{
    tlsflow *f = calloc(1, sizeof(*f));

    if (!f)
        return NULL;
    f->loop = loop;
    f->cfg = cfg;
    tf_hs_config_ref(cfg);            /* kept until the flow is destroyed */
    f->fd = fd;
    f->refs = 1;
    f->state = FLOW_OPENING;
    f->rx_path = f->tx_path = PATH_HANDSHAKE;
    f->tx_phase = TX_OPEN;
    f->alert = -1;
    f->pipe_fd[0] = f->pipe_fd[1] = -1;
    f->rx_pipe[0] = f->rx_pipe[1] = f->srx_fd = -1;
    f->task.run = flow_task;
    f->starve_task.run = starve_task;
    f->wq_tail = &f->wq;
    f->link.destroy = destroy;
    tf_ring_track(loop, &f->link);
    return f;
}

void tf_flow_release(tlsflow *f)
{
    tlsflow_loop *loop = f->loop;
    struct tf_release *rel = f->release;

    if (--f->refs)
        return;
    f->release = NULL;
    tf_ring_untrack(&f->link);
    loop->live--;
    destroy(&f->link);
    tf_release_queue(loop, rel);   /* a task: never inside tlsflow_free */
}

void tf_flow_schedule(tlsflow *f)
{
    if (f->task.queued)
        return;
    f->refs++;   /* the queued task holds the flow */
    tf_ring_defer(f->loop, &f->task);
}

/* ---- The one submission and completion path ---- */

/* A completion after the flow failed touches nothing the flow gave back:
 * only the send side (which flushes what goes out before the alert) and the
 * linger timer still mean something; a receive buffer goes back to the ring. */
static bool completion_matters(const tlsflow *f, const tf_fop *op)
{
    if (!f->err.code && !f->freed && f->state != FLOW_DEAD)
        return true;
    return op == &f->send_op || op == &f->linger_op || op == &f->shut_op;
}

static void fop_done(tf_op *op, int res, unsigned flags)
{
    tf_fop *fo = TF_CONTAINER(op, tf_fop, op);
    tlsflow *f = fo->flow;

    if (completion_matters(f, fo))
        fo->fn(f, res, flags);
    else if (flags & IORING_CQE_F_BUFFER)
        tf_ring_recycle_cqe(f->loop, flags, res);
    tf_flow_schedule(f);
    if (!(flags & IORING_CQE_F_MORE))
        tf_flow_release(f);   /* the operation's reference */
}

struct io_uring_sqe *tf_flow_submit(tlsflow *f, tf_fop *op, tf_fop_fn *fn)
{
    op->flow = f;
    op->fn = fn;
    op->op.done = fop_done;
    f->refs++;
    return tf_ring_sqe(f->loop, &op->op);
}

static void cancel(tlsflow *f, tf_fop *op)
{
    tf_ring_cancel(f->loop, &op->op);
}

/* ---- Failing: one path for errors, frees and failed openings ---- */

int tf_flow_alert_for(const tlsflow *f, tlsflow_error err)
{
    switch (err.code) {
    case TLSFLOW_E_TLS:
    case TLSFLOW_E_BAD_RECORD:
        if (err.detail)
            return tf_hs_alert_for(err.detail);
        return GNUTLS_A_BAD_RECORD_MAC;
    case TLSFLOW_E_CERTIFICATE:
        return GNUTLS_A_BAD_CERTIFICATE;
    case TLSFLOW_E_SYSTEM:
        /* The socket is gone, or we ran out of something of our own. */
        if (err.detail == ECONNRESET || err.detail == EPIPE || err.detail == ENOTCONN)
            return -1;
        return GNUTLS_A_INTERNAL_ERROR;
    case TLSFLOW_E_KTLS_UNAVAILABLE:
    case TLSFLOW_E_REKEY:
        return GNUTLS_A_INTERNAL_ERROR;
    default:   /* the peer's alert, its truncation, a timeout, a free: nothing to say */
        (void)f;
        return -1;
    }
}

bool tf_flow_tx_idle(const tlsflow *f)
{
    return !f->send_op.op.busy && !f->sending.len && !f->out.len && !f->file_op.op.busy;
}

static void linger_done(tlsflow *f, int res, unsigned flags)
{
    (void)flags;
    /* Anything but our own removal ends the wait (a timer that could not be
     * armed must not leave the flow alerting for ever). */
    if (res == -ECANCELED || f->tx_phase != TX_ALERTING)
        return;
    tf_trace(f, "the peer took too long to take the alert: giving up");
    f->tx_phase = TX_DONE;
    cancel(f, &f->send_op);
    cancel(f, &f->shut_op);
}

/* TX_ALERTING: what was encrypted before the failure goes out, then the
 * alert, then shutdown(SHUT_WR), within TF_LINGER_MS. */
void tf_flow_tx_abort_progress(tlsflow *f)
{
    if (f->tx_phase != TX_ALERTING)
        return;
    if (f->tx_peer_gone) {
        f->tx_phase = TX_DONE;
        return;
    }
    if (f->tx_path == PATH_KERNEL) {
        if (f->alert >= 0) {
            if (!tf_flow_ktx_alert(f))
                return;          /* a send in flight: its completion brings us back */
            f->alert = -1;
            return;
        }
    } else {
        if (f->alert >= 0) {
            tf_hs_alert(&f->hs, f->alert);   /* appended behind what is in `out` */
            f->alert = -1;
        }
        tf_flow_flush(f);
    }
    if (f->send_op.op.busy || f->sending.len || f->out.len)
        return;
    f->tx_phase = TX_DONE;
    tf_ring_cancel(f->loop, &f->linger_op.op);
    tf_flow_shutdown(f);
}

void tf_flow_tx_alert(tlsflow *f, int desc)
{
    if (f->tx_phase >= TX_ALERTING)
        return;
    if (desc == TF_ALERT_QUEUED && !f->out.len && !f->sending.len && !f->send_op.op.busy)
        desc = -1;
    if (desc < 0 || f->tx_peer_gone || f->tx_phase >= TX_SHUT ||
        (f->tx_path == PATH_KERNEL && !f->kio)) {
        f->tx_phase = TX_DONE;
        return;
    }
    tf_trace(f, "fatal alert %d goes out after what was already encrypted", desc);
    f->tx_phase = TX_ALERTING;
    f->alert = desc == TF_ALERT_QUEUED ? -1 : desc;
    f->linger_ts.tv_sec = TF_LINGER_MS / 1000;
    f->linger_ts.tv_nsec = (long long)(TF_LINGER_MS % 1000) * 1000000;
    io_uring_prep_timeout(tf_flow_submit(f, &f->linger_op, linger_done), &f->linger_ts, 0, 0);
}

/* Everything in flight but what still tells the peer is cancelled. */
static void cancel_in_flight(tlsflow *f)
{
    cancel(f, &f->recv_op);
    cancel(f, &f->file_op);
    tf_flow_splice_cancel(f);
    tf_flow_stop_timer(f);
    if (f->tx_phase != TX_ALERTING) {
        cancel(f, &f->send_op);
        cancel(f, &f->shut_op);
        cancel(f, &f->linger_op);
    }
}

void tf_flow_fail_alert(tlsflow *f, tlsflow_error err, int desc)
{
    if (f->err.code)
        return;
    tf_trace(f, "failing: code %d detail %d, alert %d", err.code, err.detail, desc);
    f->err = err;
    tf_flow_tx_alert(f, desc);
    cancel_in_flight(f);
    tf_flow_schedule(f);
}

void tf_flow_fail(tlsflow *f, tlsflow_error err)
{
    tf_flow_fail_alert(f, err, tf_flow_alert_for(f, err));
}

/* The kernel may still read the buffers of writes it was given: they
 * complete once its send has ended. */
static bool writes_in_kernel(const tlsflow *f)
{
    return f->tx_path == PATH_KERNEL && (f->send_op.op.busy || f->file_op.op.busy);
}

static void deliver(tlsflow *f, tlsflow_cb *cb, void *arg, tlsflow_status st, tlsflow_error err)
{
    tlsflow_result r = { st, NULL, 0, err };

    cb(f, &r, arg);
}

void tf_flow_fail_writes(tlsflow *f, tlsflow_error err)
{
    tf_write *w;

    while (!writes_in_kernel(f) && (w = f->wq)) {
        f->wq = w->next;
        if (!f->wq)
            f->wq_tail = &f->wq;
        if (f->wq_next == w)
            f->wq_next = w->next;
        deliver(f, w->cb, w->arg, TLSFLOW_ERROR, err);
        tf_write_put(f->loop, w);
    }
}

/* Every pending operation completes with the sticky error (CANCELED once freed). */
static void fail_pending(tlsflow *f)
{
    tlsflow_error err = f->freed ? tf_err(TLSFLOW_E_CANCELED, 0) : f->err;
    tlsflow_cb *cb;

    if (f->read_cb) {
        cb = f->read_cb;
        f->read_cb = NULL;
        deliver(f, cb, f->read_arg, TLSFLOW_ERROR, err);
    }
    tf_flow_splice_fail(f, err);
    tf_flow_fail_writes(f, err);
    if (f->close_cb) {
        cb = f->close_cb;
        f->close_cb = NULL;
        deliver(f, cb, f->close_arg, TLSFLOW_ERROR, err);
    }
}

static void flow_task(tf_task *t)
{
    tlsflow *f = TF_CONTAINER(t, tlsflow, task);

    f->refs++;
    if (f->state == FLOW_OPENING) {
        tf_flow_open_progress(f);
    } else if (f->state == FLOW_OPEN && !f->err.code && !f->freed) {
        tf_flow_rx_progress(f);
        tf_flow_tx_progress(f);
    }
    if (f->err.code || f->freed || f->state == FLOW_DEAD) {
        tf_flow_tx_abort_progress(f);
        if (f->state == FLOW_OPEN)
            fail_pending(f);
    }
    tf_flow_rx_account(f);
    tf_flow_release(f);
    tf_flow_release(f);   /* the reference taken by tf_flow_schedule */
}

/* A ring buffer may be there now: the flow receives again. */
static void starve_task(tf_task *t)
{
    tlsflow *f = TF_CONTAINER(t, tlsflow, starve_task);

    tf_flow_schedule(f);
    tf_flow_release(f);   /* the reference taken by tf_flow_starve */
}

void tf_flow_starve(tlsflow *f)
{
    if (f->starve_task.queued)
        return;
    f->refs++;   /* the queued task holds the flow */
    tf_ring_starve(f->loop, &f->starve_task);
}

/* ---- Freeing ---- */

TLSFLOW_PUBLIC void tlsflow_free(tlsflow *f)
{
    if (!f || f->freed)
        return;
    f->freed = true;
    tf_flow_stop_timer(f);
    if (f->tx_phase < TX_ALERTING && !(f->tx_phase == TX_SHUT && f->rx_end == RX_NOTIFIED)) {
        /* An open flow is reset, not closed: the peer must not take it for
         * a clean end. */
        struct linger lg = { 1, 0 };
        setsockopt(f->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        shutdown(f->fd, SHUT_RDWR);
        f->tx_phase = TX_DONE;
    }
    cancel_in_flight(f);
    if (f->read_cb || f->wq || f->close_cb || f->tx_phase == TX_ALERTING || tf_flow_splicing_rx(f))
        tf_flow_schedule(f);
    tf_flow_release(f);
}
