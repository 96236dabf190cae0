/* The receive side: one receive at a time, sized to what the flow's budget
 * leaves, on both paths; records through GnuTLS in userspace; one segment per
 * read, EOF only after close_notify.
 *
 * Receives are single-shot: a multishot receive stays armed until its cancel
 * lands, and by then the kernel may have filled the whole shared ring for one
 * flow.  Each receive takes its buffer from the shared ring only when bytes
 * arrive (an idle flow holds none), and asks for no more than
 * receive_budget - rx_held bytes, so the budget holds exactly. */
#include <errno.h>
#include <string.h>

#include "ktls/ktls.h"
#include "ring/ring.h"

static const tlsflow_error no_error = { 0, 0 };

/* ---- Memory: the flow's budget and the loop's limit ---- */

void tf_flow_unpark(tlsflow *f)
{
    if (!f->park.next)
        return;
    f->park.prev->next = f->park.next;
    f->park.next->prev = f->park.prev;
    f->park.next = f->park.prev = NULL;
}

static void park(tlsflow *f)
{
    tf_link *head = &f->loop->parked;

    if (f->park.next)
        return;
    tf_trace(f, "loop memory limit: %zu of %zu held, this flow %zu: stops receiving",
             f->loop->rx_held, f->loop->mem_limit, f->rx_held);
    f->park.next = head->next;
    f->park.prev = head;
    head->next->prev = &f->park;
    head->next = &f->park;
}

/* The loop went below its limit: parked flows try again. */
static void wake_parked(tlsflow_loop *loop)
{
    tf_link *head = &loop->parked;

    while (head->next != head) {
        tlsflow *f = TF_CONTAINER(head->next, tlsflow, park);
        tf_flow_unpark(f);
        tf_flow_schedule(f);
    }
}

void tf_flow_rx_account(tlsflow *f)
{
    tlsflow_loop *loop = f->loop;
    size_t now = f->in.len + (f->held ? f->held_len : 0);

    if (now == f->rx_held)
        return;
    loop->rx_held = loop->rx_held - f->rx_held + now;
    f->rx_held = now;
    if (loop->parked.next != &loop->parked &&
        (!loop->mem_limit || loop->rx_held + TF_BR_SIZE <= loop->mem_limit))
        wake_parked(loop);
}

/* Bytes the flow may take in now; 0: it waits (its budget is spent, or the
 * loop is at its limit and this flow is among those holding). */
static size_t allowance(tlsflow *f, size_t most)
{
    tlsflow_loop *loop = f->loop;
    size_t budget = f->cfg->receive_budget, want;

    tf_flow_rx_account(f);
    if (f->rx_held >= budget)
        return 0;
    want = budget - f->rx_held;
    if (want > most)
        want = most;
    /* Flows that hold nothing go on (they cannot progress otherwise); those
     * that hold bytes wait for their application to read them. */
    if (loop->mem_limit && f->rx_held && loop->rx_held + want > loop->mem_limit) {
        park(f);
        return 0;
    }
    return want;
}

TLSFLOW_PUBLIC int tlsflow_loop_set_memory_limit(tlsflow_loop *loop, size_t bytes)
{
    if (!loop)
        return -EINVAL;
    loop->mem_limit = bytes;
    wake_parked(loop);
    return 0;
}

/* ---- The receive ---- */

void tf_flow_take_in(tlsflow *f, const uint8_t *src, size_t len)
{
    if (tf_pool_acquire(&f->loop->in_pool, &f->in) || tf_buf_reserve(&f->in, len)) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, ENOMEM));
        return;
    }
    memcpy(tf_buf_tail(&f->in), src, len);
    f->in.len += len;
}

/* A failed receive, as the transport sees it (both paths; the kernel's own
 * record errors are sorted first by tf_flow_krx_error). */
void tf_flow_recv_error(tlsflow *f, int res)
{
    switch (res) {
    case -ENOBUFS:       /* the shared ring ran dry for a moment: receive again once it fills */
        tf_flow_starve(f);
        break;
    case -EINTR:
    case -EAGAIN:
    case -ECANCELED:
        break;
    default:
        f->rx_errno = -res;
        break;
    }
}

/* The record type the kernel put in the control area of the last recvmsg
 * (it writes back how much control data it put there). */
static int kernel_record_type(tlsflow *f)
{
    struct tf_kio *k = f->kio;
    size_t clen;

    tf_mark_defined(&k->krx_msg, sizeof(k->krx_msg));
    tf_mark_defined(k->krx_cmsg.b, sizeof(k->krx_cmsg.b));
    clen = k->krx_msg.msg_controllen < sizeof(k->krx_cmsg.b) ? k->krx_msg.msg_controllen
                                                            : sizeof(k->krx_cmsg.b);
    return tf_ktls_record_type_buf(k->krx_cmsg.b, clen);
}

/* Ciphertext a (bundled) receive left in the shared ring's buffers, copied
 * into `in` for GnuTLS: each buffer full but the last. */
static void take_bundle(tlsflow *f, unsigned flags, size_t res)
{
    for (unsigned i = 0; res && !f->err.code; i++) {
        size_t n = res < TF_BR_SIZE ? res : TF_BR_SIZE;
        const uint8_t *p = tf_ring_cqe_buf(f->loop, flags, i);

        tf_mark_defined(p, n);
        tf_flow_take_in(f, p, n);
        res -= n;
    }
}

static void recv_done(tlsflow *f, int res, unsigned flags)
{
    bool kernel = f->rx_path == PATH_KERNEL;
    const uint8_t *p = NULL;

    tf_trace(f, "recv%s: %d", kernel ? " (kernel)" : "", res);
    if (flags & IORING_CQE_F_BUFFER)
        p = tf_ring_cqe_buf(f->loop, flags, 0);
    if (res > 0 && p && !kernel) {
        take_bundle(f, flags, (size_t)res);
        f->loop->cipher_copied += (uint64_t)res;
    } else if (res > 0) {
        bool in_place = !p;           /* received straight into `in` */

        if (in_place)
            p = tf_buf_tail(&f->in);
        tf_mark_defined(p, (size_t)res);
        if (kernel)
            tf_flow_krx_segment(f, p, (size_t)res, kernel_record_type(f),
                                in_place ? SEG_IN_PLACE : SEG_RING);
        else
            f->in.len += (size_t)res;
    } else if (res == 0 && kernel && kernel_record_type(f) != TF_REC_DATA) {
        tf_flow_krx_segment(f, NULL, 0, kernel_record_type(f), SEG_COPY);   /* an empty control record */
    } else if (res == 0) {
        f->rx_eof = true;
    } else if (kernel) {
        tf_flow_krx_error(f, res);
    } else {
        tf_flow_recv_error(f, res);
    }
    if (flags & IORING_CQE_F_BUFFER)
        tf_ring_recycle_cqe(f->loop, flags, res);
    tf_flow_rx_account(f);
}

void tf_flow_post_recv(tlsflow *f, size_t max)
{
    struct io_uring_sqe *sqe;
    bool ring = tf_ring_bufring(f->loop), bundle;
    void *dst = NULL;
    size_t want;

    if (f->recv_op.op.busy || f->starve_task.queued || f->rx_eof || f->rx_errno ||
        f->rx_end != RX_LIVE || f->freed || f->err.code)
        return;
    /* A userspace receive may fill several ring buffers at once (a bundle);
     * the kernel's recvmsg, which says one record's type, fills one. */
    bundle = ring && f->loop->br_bundle && f->rx_path != PATH_KERNEL;
    want = allowance(f, bundle ? TF_BUNDLE_MAX : TF_BR_SIZE);
    if (max && want > max)
        want = max;
    if (!want)
        return;
    if (!ring) {                     /* before 5.19: into the flow's own buffer */
        if (tf_pool_acquire(&f->loop->in_pool, &f->in) || tf_buf_reserve(&f->in, want)) {
            tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, ENOMEM));
            return;
        }
        dst = tf_buf_tail(&f->in);
    }
    if (f->rx_path == PATH_KERNEL) {
        struct tf_kio *k = f->kio;
        memset(&k->krx_msg, 0, sizeof(k->krx_msg));
        memset(&k->krx_cmsg, 0, sizeof(k->krx_cmsg));
        k->krx_iov.iov_base = dst;
        k->krx_iov.iov_len = want;
        k->krx_msg.msg_iov = &k->krx_iov;
        k->krx_msg.msg_iovlen = 1;
        k->krx_msg.msg_control = k->krx_cmsg.b;
        k->krx_msg.msg_controllen = sizeof(k->krx_cmsg.b);
        sqe = tf_flow_submit(f, &f->recv_op, recv_done);
        io_uring_prep_recvmsg(sqe, f->fd, &k->krx_msg, 0);
    } else {
        sqe = tf_flow_submit(f, &f->recv_op, recv_done);
        io_uring_prep_recv(sqe, f->fd, dst, want, 0);
    }
    if (ring) {
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = TF_BGID;
        if (bundle && want > TF_BR_SIZE)
            sqe->ioprio |= IORING_RECVSEND_BUNDLE;
    }
}

/* ---- Delivering ---- */

/* Completes the pending read (the callback may issue the next one). */
void tf_flow_complete_read(tlsflow *f, tlsflow_status st, const void *data, size_t len,
                           tlsflow_error err)
{
    tlsflow_result r = { st, data, len, err };
    tlsflow_cb *cb = f->read_cb;

    f->read_cb = NULL;
    cb(f, &r, f->read_arg);
}

/* What the peer's end of the stream means once GnuTLS has nothing more. */
static tlsflow_error transport_error(const tlsflow *f)
{
    if (f->rx_errno == ECONNRESET || f->rx_errno == EPIPE)
        return tf_err(TLSFLOW_E_TRUNCATED, 0);
    return tf_err(TLSFLOW_E_SYSTEM, f->rx_errno);
}

/* After our close_notify, a peer that just drops the connection has closed:
 * the close completes, though a read still learns the stream was cut. */
void tf_flow_end_of_stream(tlsflow *f, tlsflow_error err)
{
    if (err.code == TLSFLOW_E_TRUNCATED && f->tx_phase >= TX_BYE && f->tx_phase <= TX_SHUT) {
        tf_rx_end(f, RX_CUT);
        if (f->read_cb)
            tf_flow_complete_read(f, TLSFLOW_ERROR, NULL, 0, err);
        tf_flow_schedule(f);
        return;
    }
    tf_flow_fail(f, err);
}

/* The receive side found a fatal error: the peer is told now (after what was
 * already encrypted for it), the reader learns it after the bytes before it. */
void tf_flow_rx_fail(tlsflow *f, tlsflow_error err, int alert)
{
    if (f->rx_end != RX_LIVE)
        return;
    f->rx_end = RX_BAD;
    f->rx_err = err;
    tf_ring_cancel(f->loop, &f->recv_op.op);
    tf_flow_tx_alert(f, alert);   /* writes stop here: the alert is the last thing the peer gets */
    tf_flow_schedule(f);
}

static void user_rx_progress(tlsflow *f);

void tf_flow_rx_progress(tlsflow *f)
{
    if (tf_flow_splicing_rx(f))
        tf_flow_splice_rx_progress(f);   /* drives the receive itself */
    else if (f->rx_path == PATH_KERNEL)
        tf_flow_krx_progress(f);
    else
        user_rx_progress(f);
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

void tf_flow_owed_by_gnutls(tlsflow *f)
{
    if (f->tx_path != PATH_KERNEL)
        return;
    if (f->hs.key_update_due) {
        f->hs.key_update_due = false;
        tf_flow_ktx_key_update(f);
    }
    if (f->hs.no_renegotiation && f->kio) {
        f->hs.no_renegotiation = false;
        f->kio->warning[0] = 1;
        f->kio->warning[1] = GNUTLS_A_NO_RENEGOTIATION;
        tf_flow_schedule(f);
    }
}

static void hold(tlsflow *f, gnutls_packet_t pkt, const void *data, size_t len)
{
    f->held = pkt;
    f->held_data = data;
    f->held_len = len;
}

/* GnuTLS failed a record: the peer hears why, unless it went away or told
 * us itself (its own fatal alert, or the end of the transport). */
static void record_error(tlsflow *f, int ret)
{
    tlsflow_error err = tf_hs_error(&f->hs, ret);
    int alert = err.code == TLSFLOW_E_TLS || err.code == TLSFLOW_E_BAD_RECORD ? tf_hs_alert_for(ret) : -1;

    if (alert < 0) {
        tf_flow_end_of_stream(f, err);
        return;
    }
    tf_flow_rx_fail(f, err, alert);
    tf_flow_fail(f, err);   /* nothing came before it that the reader has not had */
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
        if (f->rx_end == RX_CUT) {
            if (f->read_cb)
                tf_flow_end_of_stream(f, tf_err(TLSFLOW_E_TRUNCATED, 0));
            return;
        }
        if (f->rx_end == RX_BAD && !f->held) {
            tf_flow_fail(f, f->rx_err);
            return;
        }
        if (!f->read_cb && !(f->close_cb && !f->held && f->rx_end != RX_NOTIFIED))
            return;
        /* While someone reads, the next bytes are on their way as this
         * record is decrypted (within the budget). */
        if (f->rx_path == PATH_USER && f->rx_end != RX_NOTIFIED && !f->rx_eof)
            tf_flow_post_recv(f, 0);
        if (f->held) {
            if (!f->read_cb)
                return;
            if (tf_flow_splicing_rx(f)) {   /* splice_to takes what its batch has room for */
                if (!tf_flow_splice_take_held(f))
                    return;
                continue;
            }
            pkt = f->held;
            f->held = NULL;
            tf_flow_complete_read(f, TLSFLOW_OK, f->held_data, f->held_len, no_error);
            tf_hs_packet_free(pkt);
            continue;
        }
        if (f->rx_end == RX_NOTIFIED) {
            tf_flow_complete_read(f, TLSFLOW_EOF, NULL, 0, no_error);
            continue;
        }
        if (f->rx_errno && f->in.len == 0) {
            tf_flow_end_of_stream(f, transport_error(f));
            return;
        }
        pkt = NULL;
        ret = tf_hs_recv_packet(&f->hs, &pkt, &data, &len);
        tf_flow_owed_by_gnutls(f);
        if (ret > 0) {
            tf_hs_note_app_data(&f->hs);
            hold(f, pkt, data, len);
            continue;
        }
        tf_hs_packet_free(pkt);
        tf_trace(f, "userspace record read: %zd, %zu bytes left, rx path %d", ret, f->in.len,
                 f->rx_path);
        if (ret == 0) {
            tf_rx_end(f, RX_NOTIFIED);
            continue;
        }
        /* GnuTLS may have answered something (a KeyUpdate) on its own. */
        tf_flow_flush(f);
        if (ret == GNUTLS_E_AGAIN && f->rx_errno) {
            tf_flow_end_of_stream(f, transport_error(f));   /* a record cut by a reset */
            return;
        }
        if (ret == GNUTLS_E_AGAIN) {
            if (f->rx_path != PATH_SWITCHING) {
                if (f->in.len == 0)
                    tf_pool_release(&f->loop->in_pool, &f->in);
                tf_flow_post_recv(f, 0);
                return;
            }
            if (f->recv_op.op.busy || !at_boundary(f))
                return;
            if (tf_flow_ktls_rx_switch(f))
                tf_flow_krx_progress(f);
            return;
        }
        record_error(f, (int)ret);
        return;
    }
}

void tf_flow_user_rx_progress(tlsflow *f)
{
    user_rx_progress(f);
}
