/* The receive side: ciphertext from the socket, records through GnuTLS (or the
 * kernel), one segment per read, EOF only after close_notify. */
#include <errno.h>
#include <string.h>

#include "ring/ring.h"

static void recv_done(tf_op *op, int res, unsigned flags)
{
    tlsflow *f = TF_CONTAINER(op, tlsflow, recv_op);

    (void)flags;
    tf_trace(f, "recv: %d", res);
    if (res > 0) {
        tf_mark_defined(tf_buf_tail(&f->in), (size_t)res);
        f->in.len += (size_t)res;
    }
    else if (res == 0)
        f->rx_eof = true;
    else if (res != -EINTR && res != -EAGAIN && res != -ECANCELED)
        f->rx_errno = -res;
    tf_flow_schedule(f);
    tf_flow_release(f);
}

bool tf_flow_take_in(tlsflow *f, const void *src, size_t len, unsigned cqe_flags)
{
    if (tf_pool_acquire(&f->loop->in_pool, &f->in) || tf_buf_reserve(&f->in, len)) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, ENOMEM));
        return false;
    }
    if (len)
        memcpy(tf_buf_tail(&f->in), src, len);
    f->in.len += len;
    /* Nobody reads: stop taking bytes in until somebody does. */
    if (f->in.len > TF_RX_HIGH && (cqe_flags & IORING_CQE_F_MORE))
        tf_ring_cancel(f->loop, &f->recv_op);
    return true;
}

static void multishot_done(tf_op *op, int res, unsigned flags)
{
    tlsflow *f = TF_CONTAINER(op, tlsflow, recv_op);

    tf_trace(f, "recv (ring): %d%s", res, flags & IORING_CQE_F_MORE ? "" : ", disarmed");
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        const uint8_t *src = tf_ring_buf(f->loop, bid);

        tf_mark_defined(src, (size_t)res);
        if (tf_flow_take_in(f, src, (size_t)res, flags))
            f->loop->cipher_copied += (uint64_t)res;
        tf_ring_buf_recycle(f->loop, bid);
    } else if (res == 0) {
        f->rx_eof = true;
    } else if (res < 0 && res != -ENOBUFS && res != -EINTR && res != -EAGAIN && res != -ECANCELED) {
        f->rx_errno = -res;
    }
    tf_flow_schedule(f);
    if (!(flags & IORING_CQE_F_MORE))
        tf_flow_release(f);     /* the arm's reference */
}

void tf_flow_post_recv(tlsflow *f, size_t max)
{
    struct io_uring_sqe *sqe;
    size_t room;

    if (f->recv_op.busy || f->rx_eof || f->rx_errno || f->freed)
        return;
    if (f->rx_multishot && max == 0) {
        /* One arm for the flow's life: it holds a buffer only while bytes arrive. */
        f->recv_op.done = multishot_done;
        sqe = tf_ring_sqe(f->loop, &f->recv_op);
        io_uring_prep_recv_multishot(sqe, f->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = TF_BGID;
        f->refs++;
        return;
    }
    if (tf_buf_reserve(&f->in, TF_RECV_ROOM)) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, ENOMEM));
        return;
    }
    room = tf_buf_room(&f->in);
    if (max && room > max)
        room = max;
    f->recv_op.done = recv_done;
    sqe = tf_ring_sqe(f->loop, &f->recv_op);
    io_uring_prep_recv(sqe, f->fd, tf_buf_tail(&f->in), room, 0);
    f->refs++;
}

static void user_rx_progress(tlsflow *f);

/* Completes the pending read (the callback may issue the next one). */
static void complete_read(tlsflow *f, tlsflow_status st, const void *data, size_t len,
                          tlsflow_error err)
{
    tlsflow_result r = { st, data, len, err };

    f->read_pending = false;
    f->read_cb(f, &r, f->read_arg);
}

static const tlsflow_error no_error = { 0, 0 };

/* What the peer's end of the stream means once GnuTLS has nothing more. */
static tlsflow_error transport_error(const tlsflow *f)
{
    if (f->rx_errno == ECONNRESET || f->rx_errno == EPIPE)
        return tf_err(TLSFLOW_E_TRUNCATED, 0);
    return tf_err(TLSFLOW_E_SYSTEM, f->rx_errno);
}

/* After our close_notify, a peer that just drops the connection has closed:
 * the close completes, though a read still learns the stream was cut. */
static void end_of_stream(tlsflow *f, tlsflow_error err)
{
    if (err.code == TLSFLOW_E_TRUNCATED && f->bye_sent) {
        f->rx_truncated = true;
        if (f->read_pending)
            complete_read(f, TLSFLOW_ERROR, NULL, 0, err);
        tf_flow_schedule(f);
        return;
    }
    tf_flow_fail(f, err);
}

/* Nobody reads: the kernel path stops receiving, so that the socket's bytes
 * stay in the kernel (where plain read() on tlsflow_fd finds them). */
static void stop_idle_arm(tlsflow *f)
{
    if (f->recv_op.busy && f->loop->br_state > 0)
        tf_ring_cancel(f->loop, &f->recv_op);
}

/* Plaintext straight from the kernel: `in` holds it, control records were
 * handled as they came. */
static void kernel_rx_progress(tlsflow *f)
{
    for (;;) {
        if (f->err.code || f->freed)
            return;
        if (f->in.len) {
            if (!f->read_pending) {
                stop_idle_arm(f);
                return;               /* held until the application reads */
            }
            size_t n = f->in.len;
            complete_read(f, TLSFLOW_OK, tf_buf_head(&f->in), n, no_error);
            tf_buf_consume(&f->in, n);
            if (f->in.len == 0 && f->loop->br_state > 0)   /* receives go to the ring */
                tf_pool_release(&f->loop->in_pool, &f->in);
            continue;
        }
        if (f->peer_closed) {
            if (!f->read_pending)
                return;
            complete_read(f, TLSFLOW_EOF, NULL, 0, no_error);
            continue;
        }
        if (f->rx_truncated) {
            if (f->read_pending)
                end_of_stream(f, tf_err(TLSFLOW_E_TRUNCATED, 0));
            return;
        }
        if (f->rx_err.code) {         /* everything before it was read */
            tf_flow_fail(f, f->rx_err);
            return;
        }
        if (!f->read_pending && !f->close_pending) {
            stop_idle_arm(f);
            return;
        }
        if (f->rx_eof) {              /* the kernel reports a cut record as a plain 0 */
            end_of_stream(f, tf_err(TLSFLOW_E_TRUNCATED, 0));
            return;
        }
        if (f->rx_errno) {
            end_of_stream(f, transport_error(f));
            return;
        }
        tf_flow_krx_post(f);
        return;
    }
}

/* The receive key waits for a record boundary: nothing left in userspace. */
static bool at_boundary(tlsflow *f)
{
    size_t missing = 0;

    if (f->in.len == 0)
        return true;
    tf_hs_whole_prefix(tf_buf_head(&f->in), f->in.len, &missing);
    tf_flow_post_recv(f, missing);   /* exactly the rest of this record */
    return false;
}

void tf_flow_rx_progress(tlsflow *f)
{
    if (f->ktls_rx)
        kernel_rx_progress(f);
    else
        user_rx_progress(f);
}

static void user_rx_progress(tlsflow *f)
{
    gnutls_packet_t pkt;
    const void *data;
    size_t len;
    ssize_t ret;

    for (;;) {
        if (f->err.code || f->freed)
            return;
        /* Read when the application waits, or to see the peer's close while
         * closing — holding at most one record nobody asked for yet. */
        if (f->rx_truncated) {
            if (f->read_pending)
                end_of_stream(f, tf_err(TLSFLOW_E_TRUNCATED, 0));
            return;
        }
        if (f->rx_err.code && !f->held) {
            tf_flow_fail(f, f->rx_err);
            return;
        }
        if (!f->read_pending && !(f->close_pending && !f->held && !f->peer_closed))
            return;
        if (f->held) {
            if (!f->read_pending)
                return;
            pkt = f->held;
            f->held = NULL;
            complete_read(f, TLSFLOW_OK, f->held_data, f->held_len, no_error);
            tf_hs_packet_free(pkt);
            continue;
        }
        if (f->peer_closed) {
            complete_read(f, TLSFLOW_EOF, NULL, 0, no_error);
            continue;
        }
        if (f->rx_errno && f->in.len == 0) {
            end_of_stream(f, transport_error(f));
            return;
        }
        pkt = NULL;
        ret = tf_hs_recv_packet(&f->hs, &pkt, &data, &len);
        if (ret > 0) {
            if (f->read_pending) {
                complete_read(f, TLSFLOW_OK, data, len, no_error);
                tf_hs_packet_free(pkt);
            } else {
                f->held = pkt;
                f->held_data = data;
                f->held_len = len;
            }
            continue;
        }
        tf_hs_packet_free(pkt);
        tf_trace(f, "userspace record read: %zd, %zu bytes left, rx switch pending %d", ret, f->in.len,
                 f->ktls_rx_pending);
        if (ret == 0) {
            f->peer_closed = true;
            continue;
        }
        /* GnuTLS may have answered something (a KeyUpdate) on its own. */
        tf_flow_flush(f);
        if (ret == GNUTLS_E_AGAIN && f->rx_errno) {
            end_of_stream(f, transport_error(f));   /* a record cut by a reset */
            return;
        }
        if (ret == GNUTLS_E_AGAIN) {
            if (!f->ktls_rx_pending) {
                if (f->rx_multishot)
                    tf_pool_release(&f->loop->in_pool, &f->in);
                tf_flow_post_recv(f, 0);
                return;
            }
            if (f->recv_op.busy || !at_boundary(f))
                return;
            if (tf_flow_ktls_rx_switch(f))
                kernel_rx_progress(f);
            return;
        }
        end_of_stream(f, tf_hs_error(&f->hs, (int)ret));
        return;
    }
}
