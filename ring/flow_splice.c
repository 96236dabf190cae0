/* Splicing between a flow and a plain descriptor (a socket or a pipe).
 *
 * splice_from is a write whose bytes come from a descriptor: it sits in the
 * write queue (so it completes in order with writes) with is_stream set and
 * total the most it may move, cut to the bytes moved at the descriptor's EOF.
 * With the send key in the kernel the bytes go fd -> pipe -> kTLS socket by
 * splice; in userspace they are read into the pooled file buffer (one batch)
 * and encrypted from there, as sendfile does.
 *
 * splice_to holds the read slot.  With the receive key in the kernel the
 * bytes go kTLS socket -> pipe -> fd by splice; the kernel refuses to splice
 * a record that is not data (an alert, a ticket, a KeyUpdate): the splice
 * ends before it with EINVAL, one recvmsg through the read path takes the
 * record and handles it as reads do, and splicing resumes.  In userspace the
 * read path decrypts records and this file takes their plaintext into one
 * pooled batch, written to fd before more is taken; the receive budget holds
 * as for reads.
 *
 * A descriptor that has nothing is waited for with POLL_ADD, never with a
 * kernel worker blocked in splice.  Every step is one operation through
 * tf_flow_submit; fail and free cancel them through tf_flow_splice_cancel;
 * their completions after that touch nothing (flow.c's completion_matters). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ring/ring.h"

#define PIPE_CHUNK (1024 * 1024)

static const tlsflow_error no_error = { 0, 0 };

static void splice_read_cb(tlsflow *f, const tlsflow_result *res, void *arg);

static bool transient(int res)
{
    return res == -EINTR || res == -EAGAIN || res == -ECANCELED;
}

static int make_pipe(int p[2])
{
    if (p[0] >= 0)
        return 0;
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
        p[0] = p[1] = -1;
        return -errno;
    }
    fcntl(p[1], F_SETPIPE_SZ, PIPE_CHUNK);   /* bigger steps when allowed */
    return 0;
}

/* ---- splice_from: the descriptor into the flow ---- */

static void stx_poll_done(tlsflow *f, int res, unsigned flags)
{
    (void)flags;
    if (res >= 0 || res == -EINTR)
        f->stx_step = STX_STEP_READ;
    else if (res != -ECANCELED && f->wq_next && tf_write_is_open_stream(f->wq_next)) {
        f->wq_next->stream_errno = -res;     /* the descriptor cannot be polled */
        f->wq_next->total = f->wq_next->cur_off;
    }
}

static void stx_poll(tlsflow *f, tf_write *w)
{
    if (f->stx_poll.op.busy)
        return;
    io_uring_prep_poll_add(tf_flow_submit(f, &f->stx_poll, stx_poll_done), w->file_fd, POLLIN);
}

/* The descriptor's answer: bytes, its EOF, or its error (the write ends
 * there and reports it). */
static void stream_moved(tlsflow *f, tf_write *w, int res)
{
    if (res > 0) {
        w->cur_off += (size_t)res;
    } else if (res == 0) {
        tf_trace(f, "splice_from: EOF after %zu bytes", w->cur_off);
        w->total = w->cur_off;
    } else if (res == -EAGAIN) {
        f->stx_step = STX_STEP_POLL;
    } else if (!transient(res)) {
        tf_trace(f, "splice_from: the descriptor failed: %d", res);
        w->stream_errno = -res;
        w->total = w->cur_off;
    }
}

static void stream_read_done(tlsflow *f, int res, unsigned flags)
{
    tf_write *w = f->wq_next;

    (void)flags;
    if (!w || !tf_write_is_open_stream(w))
        return;
    if (res > 0) {
        tf_mark_defined(f->fbuf.data, (size_t)res);
        f->fbuf.len = (size_t)res;
        f->loop->plain_copied += (uint64_t)res;
        return;                    /* cur_off moves as the bytes are encrypted */
    }
    stream_moved(f, w, res);
    tf_pool_release(&f->loop->file_pool, &f->fbuf);   /* empty: back to the pool */
}

/* Userspace: the next piece into the pooled file buffer. */
static bool read_stream(tlsflow *f, tf_write *w)
{
    struct io_uring_sqe *sqe;
    size_t n = w->total - w->cur_off;

    if (f->file_op.op.busy || f->stx_poll.op.busy)
        return true;
    if (f->stx_step == STX_STEP_POLL) {
        stx_poll(f, w);
        return true;
    }
    if (tf_pool_acquire(&f->loop->file_pool, &f->fbuf)) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, ENOMEM));
        return false;
    }
    if (n > f->fbuf.cap)
        n = f->fbuf.cap;
    sqe = tf_flow_submit(f, &f->file_op, stream_read_done);
    io_uring_prep_read(sqe, w->file_fd, f->fbuf.data, (unsigned)n, (uint64_t)-1);
    return true;
}

int tf_flow_user_stream(tlsflow *f, tf_write *w)
{
    if (!f->fbuf.len) {
        if (!tf_write_is_open_stream(w)) {
            tf_pool_release(&f->loop->file_pool, &f->fbuf);
            return 1;
        }
        return read_stream(f, w) ? 0 : -1;
    }
    if (!tf_flow_encrypt_fbuf(f, w))
        return -1;
    /* Read ahead while this batch goes out, unless the peer is slow. */
    if (!tf_write_is_open_stream(w) || f->tx_congested)
        tf_pool_release(&f->loop->file_pool, &f->fbuf);
    else if (!read_stream(f, w))
        return -1;
    return 1;
}

static void stream_splice_done(tlsflow *f, int res, unsigned flags)
{
    tf_write *w = f->wq_next;

    (void)flags;
    if (!w || !tf_write_is_open_stream(w))
        return;
    if (res > 0)
        f->pipe_len += (size_t)res;
    stream_moved(f, w, res);
    /* A blocking socket would hold a kernel worker in splice until bytes
     * come: wait for them with a poll first. */
    if (res > 0)
        f->stx_step = STX_STEP_POLL;
}

/* Kernel: fd -> pipe, then pipe -> kTLS socket (tf_flow_ktx_splice). */
void tf_flow_splice_stream(tlsflow *f, tf_write *w)
{
    struct io_uring_sqe *sqe;
    size_t n;
    int ret;

    if ((ret = make_pipe(f->pipe_fd)) < 0) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, -ret));
        return;
    }
    if (f->pipe_len) {
        tf_flow_ktx_splice(f);
        return;
    }
    if (!tf_write_is_open_stream(w) || f->file_op.op.busy || f->stx_poll.op.busy)
        return;                   /* ended (the pipe is empty), or waiting */
    if (f->stx_step == STX_STEP_POLL) {
        stx_poll(f, w);
        return;
    }
    n = w->total - w->cur_off;
    if (n > PIPE_CHUNK)
        n = PIPE_CHUNK;
    sqe = tf_flow_submit(f, &f->file_op, stream_splice_done);
    io_uring_prep_splice(sqe, w->file_fd, -1, f->pipe_fd[1], -1, (unsigned)n, SPLICE_F_NONBLOCK);
}

/* ---- splice_to: the flow into the descriptor ---- */

static void srx_complete(tlsflow *f, tlsflow_status st, tlsflow_error err)
{
    tlsflow_result r = { st, NULL, f->srx_moved, err };
    tlsflow_cb *cb = f->srx_cb;

    tf_trace(f, "splice_to: ends (status %d) after %zu bytes", st, f->srx_moved);
    f->srx_phase = SRX_NONE;
    f->srx_cb = NULL;
    f->srx_fd = -1;
    if (f->read_cb == splice_read_cb)
        f->read_cb = NULL;
    if (!f->srx_op.op.busy) {
        f->srx_buf.off = f->srx_buf.len = 0;
        tf_pool_release(&f->loop->file_pool, &f->srx_buf);
    }
    cb(f, &r, f->srx_arg);
}

/* The read path's answer while splice_to holds the read slot: the end of
 * the stream or an error (data is taken through tf_flow_splice_take_held). */
static void splice_read_cb(tlsflow *f, const tlsflow_result *res, void *arg)
{
    (void)arg;
    if (f->srx_phase != SRX_MOVING)
        return;
    if (res->status == TLSFLOW_EOF) {
        f->srx_phase = SRX_ENDING;   /* not re-armed: the read path would say EOF again */
        return;
    }
    if (res->status == TLSFLOW_ERROR) {
        srx_complete(f, TLSFLOW_ERROR, res->error);
        return;
    }
    /* Plaintext offered as a whole segment: never armed for it. */
    f->read_cb = splice_read_cb;
}

/* Room left under max (SIZE_MAX: no limit) for bytes not yet taken. */
static size_t srx_left(const tlsflow *f, size_t taken)
{
    if (!f->srx_max)
        return SIZE_MAX;
    return f->srx_max - f->srx_moved - taken;
}

bool tf_flow_splice_take_held(tlsflow *f)
{
    tf_buf *b = &f->srx_buf;
    size_t n = f->held_len, room;

    if (f->srx_phase != SRX_MOVING || f->srx_op.op.busy)
        return false;             /* the batch is on its way out: it is not touched */
    if (tf_pool_acquire(&f->loop->file_pool, b)) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, ENOMEM));
        return false;
    }
    room = tf_buf_room(b);
    if (room > srx_left(f, b->len))
        room = srx_left(f, b->len);
    if (n > room)
        n = room;
    memcpy(tf_buf_tail(b), f->held_data, n);
    b->len += n;
    f->loop->plain_copied += n;
    if (n < f->held_len) {
        f->held_data = (const uint8_t *)f->held_data + n;
        f->held_len -= n;
        return false;
    }
    tf_hs_packet_free(f->held);
    f->held = NULL;
    f->held_len = 0;
    return true;
}

static void srx_fd_failed(tlsflow *f, int err)
{
    /* Bytes taken from the flow for fd are lost with it. */
    if (f->rx_pipe[0] >= 0) {
        close(f->rx_pipe[0]);
        close(f->rx_pipe[1]);
        f->rx_pipe[0] = f->rx_pipe[1] = -1;
        f->rx_pipe_len = 0;
    }
    f->srx_buf.off = f->srx_buf.len = 0;
    if (f->rx_path == PATH_KERNEL)
        tf_buf_consume(&f->in, f->in.len);
    srx_complete(f, TLSFLOW_ERROR, tf_err(TLSFLOW_E_SYSTEM, err));
}

static void srx_poll_done(tlsflow *f, int res, unsigned flags)
{
    (void)flags;
    tf_trace(f, "splice_to: poll %d (step %d)", res, f->srx_step);
    if (res == -ECANCELED)
        return;
    if (f->srx_step == SRX_STEP_OUT_POLL && res < 0 && res != -EINTR) {
        srx_fd_failed(f, -res);
        return;
    }
    f->srx_step = f->srx_step == SRX_STEP_OUT_POLL ? SRX_STEP_MOVE : SRX_STEP_READY;
}

static void srx_out_done(tlsflow *f, int res, unsigned flags)
{
    (void)flags;
    tf_trace(f, "splice_to: -> fd %d", res);
    if (f->srx_phase == SRX_NONE)
        return;
    if (res > 0) {
        f->srx_moved += (size_t)res;
        if (f->rx_pipe_len)
            f->rx_pipe_len -= (size_t)res;
        else if (f->srx_buf.len)
            tf_buf_consume(&f->srx_buf, (size_t)res);
        else
            tf_buf_consume(&f->in, (size_t)res);
        if (f->srx_buf.len == 0)
            f->srx_buf.off = 0;
    } else if (res == -EAGAIN) {
        f->srx_step = SRX_STEP_OUT_POLL;
    } else if (res == 0 || !transient(res)) {
        srx_fd_failed(f, res == 0 ? EPIPE : -res);
    }
}

static void srx_in_done(tlsflow *f, int res, unsigned flags)
{
    (void)flags;
    if (f->srx_phase == SRX_NONE)
        return;
    tf_trace(f, "splice_to: socket -> pipe %d", res);
    if (res > 0) {
        f->rx_pipe_len += (size_t)res;
        f->hs.key_updates = 0;
    } else if (res == 0) {
        f->rx_eof = true;            /* the kernel reports a cut record as a plain 0 */
    } else if (res == -EAGAIN) {
        f->srx_step = SRX_STEP_POLL;
    } else if (res == -EINVAL || res == -EIO) {
        /* Not a data record: the read path takes it (and sorts out a
         * record that is really malformed). */
        f->srx_step = SRX_STEP_CONTROL;
    } else if (!transient(res)) {
        tf_flow_krx_error(f, res);
    }
}

static void srx_poll(tlsflow *f, int fd, unsigned events)
{
    io_uring_prep_poll_add(tf_flow_submit(f, &f->srx_op, srx_poll_done), fd, events);
}

/* The next bytes for fd: from the pipe, `in` (kernel plaintext a recvmsg
 * brought) or the batch; false when there are none. */
static bool srx_out(tlsflow *f)
{
    struct io_uring_sqe *sqe;
    const uint8_t *p;
    size_t n;

    if (f->srx_step == SRX_STEP_OUT_POLL) {
        srx_poll(f, f->srx_fd, POLLOUT);
        return true;
    }
    if (f->rx_pipe_len) {
        sqe = tf_flow_submit(f, &f->srx_op, srx_out_done);
        io_uring_prep_splice(sqe, f->rx_pipe[0], -1, f->srx_fd, -1, (unsigned)f->rx_pipe_len,
                             SPLICE_F_NONBLOCK);
        return true;
    }
    if (f->srx_buf.len) {
        p = tf_buf_head(&f->srx_buf);
        n = f->srx_buf.len;
    } else if (f->rx_path == PATH_KERNEL && f->in.len && srx_left(f, 0)) {
        p = tf_buf_head(&f->in);
        n = f->in.len < srx_left(f, 0) ? f->in.len : srx_left(f, 0);
    } else {
        return false;
    }
    sqe = tf_flow_submit(f, &f->srx_op, srx_out_done);
    if (f->srx_is_sock)
        io_uring_prep_send(sqe, f->srx_fd, p, n, MSG_NOSIGNAL);
    else
        io_uring_prep_write(sqe, f->srx_fd, p, (unsigned)n, (uint64_t)-1);
    return true;
}

/* The stream's end, as the kernel path's read learns it (flow_krx.c). */
static bool srx_kernel_end(tlsflow *f)
{
    if (f->rx_end == RX_BAD) {
        tf_flow_fail(f, f->rx_err);
        return true;
    }
    if (f->rx_end == RX_CUT) {
        srx_complete(f, TLSFLOW_ERROR, tf_err(TLSFLOW_E_TRUNCATED, 0));
        return true;
    }
    if (f->rx_eof) {
        tf_flow_end_of_stream(f, tf_err(TLSFLOW_E_TRUNCATED, 0));
        return true;
    }
    if (f->rx_errno) {
        tf_flow_end_of_stream(f, f->rx_errno == ECONNRESET || f->rx_errno == EPIPE
                                     ? tf_err(TLSFLOW_E_TRUNCATED, 0)
                                     : tf_err(TLSFLOW_E_SYSTEM, f->rx_errno));
        return true;
    }
    return false;
}

static void srx_kernel_step(tlsflow *f)
{
    struct io_uring_sqe *sqe;
    unsigned flags = SPLICE_F_NONBLOCK;
    size_t n;
    int ret;

    if (f->srx_step == SRX_STEP_CONTROL) {
        f->srx_step = SRX_STEP_MOVE;
        tf_flow_post_recv(f, 0);   /* recv_done hands the record to flow_krx.c */
        return;
    }
    if (f->srx_step == SRX_STEP_POLL) {
        srx_poll(f, f->fd, POLLIN);
        return;
    }
    if ((ret = make_pipe(f->rx_pipe)) < 0) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, -ret));
        return;
    }
    /* Readable: this splice may wait for the rest of a record the poll saw
     * begin (in a kernel worker, briefly); otherwise it does not wait. */
    if (f->srx_step == SRX_STEP_READY)
        flags = 0;
    f->srx_step = SRX_STEP_MOVE;
    n = srx_left(f, 0);
    if (n > PIPE_CHUNK)
        n = PIPE_CHUNK;
    sqe = tf_flow_submit(f, &f->srx_op, srx_in_done);
    io_uring_prep_splice(sqe, f->fd, -1, f->rx_pipe[1], -1, (unsigned)n, flags);
}

void tf_flow_splice_rx_progress(tlsflow *f)
{
    for (;;) {
        if (f->err.code || f->freed || f->srx_phase == SRX_NONE)
            return;
        if (f->srx_op.op.busy || (f->rx_path == PATH_KERNEL && f->recv_op.op.busy))
            return;
        if (f->rx_path != PATH_KERNEL && f->srx_phase == SRX_MOVING) {
            /* Records through GnuTLS; the kernel path takes over should the
             * key move there (PATH_SWITCHING). */
            f->read_cb = splice_read_cb;
            f->read_arg = NULL;
            tf_flow_user_rx_progress(f);
            if (f->err.code || f->freed || f->srx_phase == SRX_NONE)
                return;
        }
        if (srx_out(f))
            return;               /* its completion brings us back */
        if (!srx_left(f, 0)) {
            srx_complete(f, TLSFLOW_OK, no_error);
            return;
        }
        if (f->srx_phase == SRX_ENDING ||
            (f->rx_path == PATH_KERNEL && f->rx_end == RX_NOTIFIED)) {
            /* As a read: EOF only when nothing came before the close_notify
             * (the next splice_to or read says EOF then). */
            srx_complete(f, f->srx_moved ? TLSFLOW_OK : TLSFLOW_EOF, no_error);
            return;
        }
        if (f->rx_path != PATH_KERNEL)
            return;               /* the read path asked for more */
        if (srx_kernel_end(f))
            return;
        srx_kernel_step(f);
        if (f->srx_op.op.busy || f->recv_op.op.busy || f->err.code)
            return;
    }
}

void tf_flow_splice_fail(tlsflow *f, tlsflow_error err)
{
    if (f->srx_phase != SRX_NONE)
        srx_complete(f, TLSFLOW_ERROR, err);
}

void tf_flow_splice_cancel(tlsflow *f)
{
    tf_ring_cancel(f->loop, &f->srx_op.op);
    tf_ring_cancel(f->loop, &f->stx_poll.op);
}

void tf_flow_splice_destroy(tlsflow *f)
{
    f->srx_buf.off = f->srx_buf.len = 0;
    tf_pool_release(&f->loop->file_pool, &f->srx_buf);
    if (f->rx_pipe[0] >= 0) {
        close(f->rx_pipe[0]);
        close(f->rx_pipe[1]);
    }
}

/* ---- The calls ---- */

/* A socket or a pipe, not the flow's own socket; is_sock says which. */
static int plain_fd(const tlsflow *f, int fd, bool *is_sock)
{
    struct stat st;

    if (fd < 0 || fd == f->fd || fstat(fd, &st) < 0)
        return -EINVAL;
    if (!S_ISSOCK(st.st_mode) && !S_ISFIFO(st.st_mode))
        return -EINVAL;
    *is_sock = S_ISSOCK(st.st_mode);
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_splice_from(tlsflow *f, int fd, size_t max, tlsflow_cb *cb, void *arg)
{
    bool is_sock;
    tf_write *w;

    if (!f || !cb || f->freed || f->state != FLOW_OPEN || plain_fd(f, fd, &is_sock) < 0 ||
        max > (size_t)SSIZE_MAX)
        return -EINVAL;
    if (f->close_cb || (f->tx_phase != TX_OPEN && f->tx_phase < TX_ALERTING))
        return -EINVAL;   /* after close, as writes */
    for (w = f->wq; w; w = w->next)
        if (w->is_stream)
            return -EINVAL;       /* one splice_from at a time */
    w = tf_write_get(f->loop);
    if (!w)
        return -ENOMEM;
    w->iov = w->inline_iov;
    w->total = max ? max : (size_t)SSIZE_MAX;
    w->file_fd = fd;
    w->is_stream = true;
    w->cb = cb;
    w->arg = arg;
    f->stx_step = STX_STEP_POLL;
    *f->wq_tail = w;
    f->wq_tail = &w->next;
    if (!f->wq_next)
        f->wq_next = w;
    tf_flow_schedule(f);
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_splice_to(tlsflow *f, int fd, size_t max, tlsflow_cb *cb, void *arg)
{
    bool is_sock;

    if (!f || !cb || f->freed || f->state != FLOW_OPEN || plain_fd(f, fd, &is_sock) < 0 ||
        max > (size_t)SSIZE_MAX)
        return -EINVAL;
    if (f->read_cb || f->srx_phase != SRX_NONE)
        return -EINVAL;           /* the read slot is taken, as for tlsflow_read */
    f->srx_phase = SRX_MOVING;
    f->srx_step = SRX_STEP_MOVE;
    f->srx_cb = cb;
    f->srx_arg = arg;
    f->srx_fd = fd;
    f->srx_is_sock = is_sock;
    f->srx_max = max;
    f->srx_moved = 0;
    f->read_cb = splice_read_cb;
    f->read_arg = NULL;
    tf_flow_schedule(f);
    return 0;
}
