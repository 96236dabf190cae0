/* The send side: writes are encrypted in order into `out`, handed to the kernel
 * from `sending`, and complete once their last byte is out; then close. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ring/ring.h"

#define RECORD_MAX (16 * 1024)
#define TX_BATCH (256 * 1024)   /* ciphertext produced ahead of the kernel */

static void send_done(tf_op *op, int res, unsigned flags)
{
    tlsflow *f = TF_CONTAINER(op, tlsflow, send_op);

    (void)flags;
    tf_trace(f, "send: %d", res);
    if (res > 0) {
        tf_buf_consume(&f->sending, (size_t)res);
        f->tx_sent += (uint64_t)res;
    } else if (res == -EPIPE || res == -ECONNRESET) {
        f->wr_eof = true;
    } else if (res < 0 && res != -EINTR && res != -EAGAIN && res != -ECANCELED) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, -res));
    }
    tf_flow_schedule(f);
    tf_flow_release(f);
}

void tf_flow_flush(tlsflow *f)
{
    struct io_uring_sqe *sqe;
    tf_buf t;

    if (f->send_op.busy || f->freed || f->wr_eof)
        return;
    if (f->sending.len == 0) {
        if (f->out.len == 0)
            return;
        t = f->sending;   /* swap: GnuTLS keeps appending to the other one */
        f->sending = f->out;
        f->out = t;
        f->out.off = 0;
    }
    f->send_op.done = send_done;
    sqe = tf_ring_sqe(f->loop, &f->send_op);
    io_uring_prep_send(sqe, f->fd, tf_buf_head(&f->sending), f->sending.len, MSG_NOSIGNAL);
    f->refs++;
}

/* Stream position once everything produced so far is out. */
static uint64_t produced(const tlsflow *f)
{
    return f->tx_sent + f->sending.len + f->out.len;
}

static void file_done(tf_op *op, int res, unsigned flags)
{
    tlsflow *f = TF_CONTAINER(op, tlsflow, file_op);

    (void)flags;
    if (res > 0) {
        tf_mark_defined(f->fbuf.data, (size_t)res);
        f->fbuf.len = (size_t)res;
        f->loop->plain_copied += (uint64_t)res;
    } else if (res == 0) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, ENODATA));   /* the file is shorter than asked */
    } else if (res != -ECANCELED) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, -res));
    }
    tf_flow_schedule(f);
    tf_flow_release(f);
}

/* sendfile in userspace: the next piece of the file comes through io_uring
 * (a page-cache miss must not stall every flow of the loop). */
static bool read_file(tlsflow *f, tf_write *w)
{
    struct io_uring_sqe *sqe;
    size_t n = w->total - w->cur_off;

    if (f->file_op.busy)
        return true;
    if (tf_pool_acquire(&f->loop->file_pool, &f->fbuf)) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, ENOMEM));
        return false;
    }
    if (n > f->fbuf.cap)
        n = f->fbuf.cap;
    f->file_op.done = file_done;
    sqe = tf_ring_sqe(f->loop, &f->file_op);
    io_uring_prep_read(sqe, w->file_fd, f->fbuf.data, (unsigned)n, (uint64_t)(w->file_off + (off_t)w->cur_off));
    f->refs++;
    return true;
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

/* Encrypts queued writes until the batch is full; returns false on error.
 * Pieces smaller than a record are corked together into full records. */
static bool encrypt_writes(tlsflow *f)
{
    size_t corked = 0;

    while (f->wq_next && f->out.len + corked < TX_BATCH) {
        tf_write *w = f->wq_next;
        size_t n;
        ssize_t ret;

        if (w->file_fd >= 0 && w->cur_off < w->total) {
            if (corked && !uncork(f))
                return false;
            corked = 0;
            if (!f->fbuf.len) {          /* the next piece is on its way */
                if (!read_file(f, w))
                    return false;
                break;
            }
            for (size_t off = 0, len = f->fbuf.len; off < len;) {
                n = len - off < RECORD_MAX ? len - off : RECORD_MAX;
                ret = tf_hs_send(&f->hs, tf_buf_head(&f->fbuf) + off, n);
                if (ret < 0) {
                    tf_flow_fail(f, tf_hs_error(&f->hs, (int)ret));
                    return false;
                }
                off += (size_t)ret;
                w->cur_off += (size_t)ret;
            }
            f->fbuf.len = 0;
            if (w->cur_off == w->total)
                tf_pool_release(&f->loop->file_pool, &f->fbuf);
            else if (!read_file(f, w))   /* read ahead while this batch goes out */
                return false;
            continue;
        }
        if (w->file_fd < 0 && w->cur < w->iovcnt) {
            n = w->iov[w->cur].iov_len - w->cur_off;
            if (n > RECORD_MAX)
                n = RECORD_MAX;
            if (n == RECORD_MAX && corked) {   /* a full record goes out as it is */
                if (!uncork(f))
                    return false;
                corked = 0;
            } else if (n && n < RECORD_MAX && !corked) {
                tf_hs_cork(&f->hs);
            }
            if (n) {
                ret = tf_hs_send(&f->hs, (const char *)w->iov[w->cur].iov_base + w->cur_off, n);
                if (ret < 0) {
                    tf_flow_fail(f, tf_hs_error(&f->hs, (int)ret));
                    return false;
                }
                w->cur_off += (size_t)ret;
                if (n < RECORD_MAX || corked) {
                    corked += (size_t)ret;
                    f->loop->plain_copied += (uint64_t)ret;
                }
            }
            if (w->cur_off == w->iov[w->cur].iov_len) {
                w->cur++;
                w->cur_off = 0;
            }
            continue;
        }
        w->taken = true;
        w->end = corked ? UINT64_MAX : produced(f);
        f->wq_next = w->next;
    }
    return !corked || uncork(f);
}

static void complete_writes(tlsflow *f)
{
    tf_write *w;

    while ((w = f->wq) && (f->wr_eof || (w->taken && f->tx_sent >= w->end))) {
        tlsflow_result r = { f->wr_eof ? TLSFLOW_EOF : TLSFLOW_OK, NULL, w->total, { 0, 0 } };

        if (f->wr_eof)
            r.len = 0;
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

static void shut_done(tf_op *op, int res, unsigned flags)
{
    tlsflow *f = TF_CONTAINER(op, tlsflow, shut_op);

    (void)flags;
    (void)res;   /* a peer gone already is found by the receive side */
    tf_flow_schedule(f);
    tf_flow_release(f);
}

static void close_progress(tlsflow *f)
{
    struct io_uring_sqe *sqe;
    tlsflow_result r = { TLSFLOW_OK, NULL, 0, { 0, 0 } };

    if (!f->close_pending)
        return;
    if (!f->bye_sent) {
        if (f->wq)
            return;                /* pending writes go first */
        if (f->ktls_tx) {
            if (!f->wr_eof && !tf_flow_ktx_close(f))
                return;            /* a send in flight: its completion brings us back */
        } else if (!f->wr_eof && tf_hs_bye(&f->hs) < 0 && f->out.len == 0) {
            f->wr_eof = true;      /* nothing to say: the send side is gone */
        }
        f->bye_sent = true;
        tf_flow_flush(f);
    }
    if (!f->shut_sent) {
        if (!f->wr_eof && (f->send_op.busy || f->sending.len || f->out.len))
            return;
        f->shut_sent = true;
        f->shut_op.done = shut_done;
        sqe = tf_ring_sqe(f->loop, &f->shut_op);
        io_uring_prep_shutdown(sqe, f->fd, SHUT_WR);
        f->refs++;
        return;
    }
    if (f->shut_op.busy || !(f->peer_closed || f->rx_truncated))
        return;
    f->close_pending = false;
    f->close_cb(f, &r, f->close_arg);
}

/* An idle flow keeps no send buffer. */
static void release_idle_buffers(tlsflow *f)
{
    if (f->wq || f->send_op.busy || f->sending.len || f->out.len)
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

void tf_flow_tx_progress(tlsflow *f)
{
    if (f->err.code || f->freed)
        return;
    if (f->ktls_tx) {
        tf_flow_ktx_progress(f);   /* gives queued writes their positions, sends */
        complete_writes(f);
        if (f->err.code || f->freed)
            return;
        close_progress(f);
        return;
    }
    if (f->ktls_tx_pending) {      /* opening: nothing new until the switch */
        tf_flow_flush(f);
        return;
    }
    if (!out_buffer(f))
        return;
    if (!f->wr_eof && !encrypt_writes(f))
        return;
    tf_flow_flush(f);
    if (!out_buffer(f))
        return;
    /* The next batch is encrypted while the kernel takes this one. */
    if (!f->wr_eof && !encrypt_writes(f))
        return;
    complete_writes(f);
    if (f->err.code || f->freed)
        return;
    close_progress(f);
    release_idle_buffers(f);
}
