/* The send side in userspace: writes are encrypted in order into `out`,
 * handed to the kernel from `sending`, and complete once their last byte is
 * out; then close.  Also what both paths share: completing writes, closing,
 * and the dispatch between them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ring/ring.h"

#define RECORD_MAX (16 * 1024)

static void send_done(tlsflow *f, int res, unsigned flags)
{
    (void)flags;
    tf_trace(f, "send: %d of %zu", res, f->sending.len);
    if (res > 0) {
        f->tx_congested = (size_t)res < f->sending.len;
        tf_buf_consume(&f->sending, (size_t)res);
        f->tx_sent += (uint64_t)res;
    } else if (res == -EPIPE || res == -ECONNRESET) {
        f->tx_peer_gone = true;
        /* A reset before the peer's close_notify cut the stream: the whole
         * flow learns it now, whichever side saw it first. */
        if (res == -ECONNRESET && f->rx_end != RX_NOTIFIED)
            tf_flow_end_of_stream(f, tf_err(TLSFLOW_E_TRUNCATED, 0));
    } else if (res < 0 && res != -EINTR && res != -EAGAIN && res != -ECANCELED) {
        if (f->tx_phase == TX_ALERTING)
            f->tx_phase = TX_DONE;   /* the alert cannot go out: stop trying */
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, -res));
    }
}

void tf_flow_flush(tlsflow *f)
{
    struct io_uring_sqe *sqe;
    tf_buf t;

    if (f->tx_path == PATH_KERNEL) {
        /* GnuTLS records have no place on a kTLS socket. */
        tf_buf_consume(&f->out, f->out.len);
        return;
    }
    if (f->send_op.op.busy || f->tx_peer_gone || f->tx_phase == TX_DONE)
        return;
    if (f->sending.len == 0) {
        if (f->out.len == 0)
            return;
        t = f->sending;   /* swap: GnuTLS keeps appending to the other one */
        f->sending = f->out;
        f->out = t;
        f->out.off = 0;
    }
    sqe = tf_flow_submit(f, &f->send_op, send_done);
    io_uring_prep_send(sqe, f->fd, tf_buf_head(&f->sending), f->sending.len, MSG_NOSIGNAL);
}

/* Stream position once everything produced so far is out. */
static uint64_t produced(const tlsflow *f)
{
    return f->tx_sent + f->sending.len + f->out.len;
}

/* Writes encrypted while small pieces were corked learn where they end once
 * GnuTLS has turned the cork into records. */
static bool uncork(tlsflow *f)
{
    int ret = tf_hs_uncork(&f->hs);

    if (ret < 0) {
        tf_flow_fail(f, tf_hs_error(&f->hs, ret));
        return false;
    }
    for (tf_write *w = f->wq; w && w != f->wq_next; w = w->next)
        if (w->end == UINT64_MAX)
            w->end = produced(f);
    return true;
}

static bool send_piece(tlsflow *f, tf_write *w, size_t n, bool corking)
{
    ssize_t ret = tf_hs_send_bulk(&f->hs, (const char *)w->iov[w->cur].iov_base + w->cur_off, n,
                                  corking);

    if (ret < 0) {
        tf_flow_fail(f, tf_hs_error(&f->hs, (int)ret));
        return false;
    }
    if (!corking)
        tf_hs_sent_uncorked(&f->hs);
    w->cur_off += (size_t)ret;
    return true;
}

/* A file whose rest fits the record being corked joins it: a response's
 * header and its small body leave as one record, in one send. */
static bool file_joins_cork(const tlsflow *f, const tf_write *w)
{
    return f->tx_corked && f->tx_corked + (w->total - w->cur_off) <= RECORD_MAX;
}

static bool uncork_now(tlsflow *f)
{
    f->tx_corked = 0;
    return uncork(f);
}

/* Encrypts queued writes until the batch is full; returns false on error.
 * Pieces smaller than a record are corked together into full records; the
 * cork is held across the read of a small file that joins it. */
static bool encrypt_writes(tlsflow *f)
{
    while (f->wq_next && f->out.len + f->tx_corked < TF_TX_BATCH) {
        tf_write *w = f->wq_next;
        size_t n;

        if (w->file_fd >= 0 && w->cur_off < w->total) {
            if (f->tx_corked && !file_joins_cork(f, w) && !uncork_now(f))
                return false;
            size_t before = w->cur_off;
            int ret = tf_flow_user_file(f, w);
            if (ret < 0)
                return false;
            if (ret == 0)
                return !f->tx_corked || file_joins_cork(f, w) || uncork_now(f);
            if (f->tx_corked)
                f->tx_corked += w->cur_off - before;
            continue;
        }
        if (w->file_fd < 0 && w->cur < w->iovcnt) {
            n = w->iov[w->cur].iov_len - w->cur_off;
            if (n > RECORD_MAX)
                n = RECORD_MAX;
            if (n == RECORD_MAX && f->tx_corked && !uncork_now(f))
                return false;   /* a full record goes out as it is */
            if (n) {
                bool corking = f->tx_corked || (n < RECORD_MAX && tf_hs_cork(&f->hs));
                size_t before = w->cur_off;

                if (!send_piece(f, w, n, corking))
                    return false;
                if (corking) {
                    f->tx_corked += w->cur_off - before;
                    f->loop->plain_copied += w->cur_off - before;
                }
            }
            if (w->cur_off == w->iov[w->cur].iov_len) {
                w->cur++;
                w->cur_off = 0;
            }
            continue;
        }
        w->taken = true;
        w->end = f->tx_corked ? UINT64_MAX : produced(f);
        f->wq_next = w->next;
    }
    return !f->tx_corked || uncork_now(f);
}

void tf_flow_complete_writes(tlsflow *f)
{
    tf_write *w;

    while ((w = f->wq) && (f->tx_peer_gone || (w->taken && f->tx_sent >= w->end))) {
        tlsflow_result r = { f->tx_peer_gone ? TLSFLOW_EOF : TLSFLOW_OK, NULL, w->total, { 0, 0 } };

        if (w->stream_errno && !f->tx_peer_gone) {   /* splice_from: its descriptor failed */
            r.status = TLSFLOW_ERROR;
            r.error = tf_err(TLSFLOW_E_SYSTEM, w->stream_errno);
        }

        if (f->tx_peer_gone) {
            if (f->tx_path == PATH_KERNEL && (f->send_op.op.busy || f->file_op.op.busy))
                return;           /* the kernel may still read its buffer */
            r.len = 0;
        }
        f->wq = w->next;
        if (!f->wq)
            f->wq_tail = &f->wq;
        if (f->wq_next == w)
            f->wq_next = w->next;
        w->cb(f, &r, w->arg);
        tf_write_put(f->loop, w);
        if (f->err.code || f->freed)
            return;
    }
}

static void shut_done(tlsflow *f, int res, unsigned flags)
{
    (void)f;
    (void)res;   /* a peer gone already is found by the receive side */
    (void)flags;
}

void tf_flow_shutdown(tlsflow *f)
{
    io_uring_prep_shutdown(tf_flow_submit(f, &f->shut_op, shut_done), f->fd, SHUT_WR);
}

void tf_flow_close_progress(tlsflow *f)
{
    tlsflow_result r = { TLSFLOW_OK, NULL, 0, { 0, 0 } };
    tlsflow_cb *cb;

    if (!f->close_cb)
        return;
    if (f->tx_phase == TX_OPEN) {
        if (f->wq)
            return;                /* pending writes go first */
        if (f->tx_path == PATH_KERNEL) {
            if (!f->tx_peer_gone && !tf_flow_ktx_close(f))
                return;            /* a send in flight: its completion brings us back */
        } else if (!f->tx_peer_gone && tf_hs_bye(&f->hs) < 0 && f->out.len == 0) {
            f->tx_peer_gone = true;  /* nothing to say: the send side is gone */
        }
        f->tx_phase = TX_BYE;
        tf_flow_flush(f);
    }
    if (f->tx_phase == TX_BYE) {
        if (!f->tx_peer_gone && (f->send_op.op.busy || f->sending.len || f->out.len))
            return;
        f->tx_phase = TX_SHUT;
        tf_flow_shutdown(f);
        return;
    }
    if (f->tx_phase != TX_SHUT || f->shut_op.op.busy || !(f->rx_end == RX_NOTIFIED || f->rx_end == RX_CUT))
        return;
    cb = f->close_cb;
    f->close_cb = NULL;
    cb(f, &r, f->close_arg);
}

/* An idle flow keeps no send buffer. */
static void release_idle_buffers(tlsflow *f)
{
    if (f->wq || f->send_op.op.busy || f->sending.len || f->out.len)
        return;
    tf_pool_release(&f->loop->tx_pool, &f->sending);
    tf_pool_release(&f->loop->tx_pool, &f->out);
}

/* Writes to encrypt: a send buffer from the pool, big enough for a batch.
 * (Handshake records were pushed into a small one of their own.) */
static bool out_buffer(tlsflow *f)
{
    if (!f->wq_next || f->out.len || f->out.cap == TF_TX_CAP)
        return true;
    tf_buf_free(&f->out);
    if (tf_pool_acquire(&f->loop->tx_pool, &f->out) == 0)
        return true;
    tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, ENOMEM));
    return false;
}

/* A batch is encrypted ahead of the kernel only while the socket takes what
 * it is given: a peer that stops reading leaves one batch in flight, no more. */
static bool encrypt_batch(tlsflow *f)
{
    if (f->tx_peer_gone)
        return true;
    if (f->tx_congested && f->send_op.op.busy) {
        /* File bytes read ahead wait in no buffer of ours: they are read
         * again (from the page cache) once the socket drains.  (Bytes a
         * splice_from read cannot be read again: they wait.) */
        if (f->fbuf.len && !f->file_op.op.busy && !(f->wq_next && f->wq_next->is_stream)) {
            f->fbuf.len = 0;
            tf_pool_release(&f->loop->file_pool, &f->fbuf);
        }
        return true;
    }
    return out_buffer(f) && encrypt_writes(f);
}

void tf_flow_tx_progress(tlsflow *f)
{
    if (f->err.code || f->freed)
        return;
    if (f->tx_phase >= TX_ALERTING && !f->tx_peer_gone) {
        /* The receive side failed: the alert goes out, writes stop here. */
        tf_flow_tx_abort_progress(f);
        tf_flow_fail_writes(f, tf_err(TLSFLOW_E_CLOSED, 0));
        return;
    }
    if (f->tx_path == PATH_KERNEL) {
        tf_flow_ktx_progress(f);   /* gives queued writes their positions, sends */
    } else if (f->tx_path == PATH_SWITCHING) {
        tf_flow_flush(f);          /* opening: nothing new until the switch */
        return;
    } else {
        if (!encrypt_batch(f))
            return;
        tf_flow_flush(f);
        if (!encrypt_batch(f))     /* the next batch while the kernel takes this one */
            return;
    }
    tf_flow_complete_writes(f);
    if (f->err.code || f->freed)
        return;
    tf_flow_close_progress(f);
    if (f->tx_path != PATH_KERNEL)
        release_idle_buffers(f);
}
