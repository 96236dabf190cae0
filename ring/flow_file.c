/* sendfile: in userspace the file comes through io_uring READ into a pooled
 * buffer and is encrypted from there; with the send key in the kernel it
 * goes file -> pipe -> socket by splice, and no byte enters userspace.
 * Progress is kept in the write request, which stays queued (and is never
 * given back) while an operation on its file is in flight. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "ring/ring.h"

#define PIPE_CHUNK (1024 * 1024)

static void file_done(tlsflow *f, int res, unsigned flags)
{
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
}

/* The next piece of the file comes through io_uring (a page-cache miss must
 * not stall every flow of the loop). */
static bool read_file(tlsflow *f, tf_write *w)
{
    struct io_uring_sqe *sqe;
    size_t n = w->total - w->cur_off;

    if (f->file_op.op.busy)
        return true;
    if (tf_pool_acquire(&f->loop->file_pool, &f->fbuf)) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, ENOMEM));
        return false;
    }
    if (n > f->fbuf.cap)
        n = f->fbuf.cap;
    sqe = tf_flow_submit(f, &f->file_op, file_done);
    io_uring_prep_read(sqe, w->file_fd, f->fbuf.data, (unsigned)n,
                       (uint64_t)(w->file_off + (off_t)w->cur_off));
    return true;
}

/* What fbuf holds, encrypted as records (into the cork while one is held):
 * false when the flow failed.  Past the cork, records are sealed straight
 * into the send buffer (handshake/seal.c) once GnuTLS showed the peer takes
 * full ones; GnuTLS sends the rest (and any KeyUpdate it owes). */
bool tf_flow_encrypt_fbuf(tlsflow *f, tf_write *w)
{
    for (size_t off = 0, len = f->fbuf.len; off < len;) {
        ssize_t ret = tf_hs_send_bulk(&f->hs, tf_buf_head(&f->fbuf) + off, len - off,
                                      f->tx_corked != 0);

        if (ret < 0) {
            tf_flow_fail(f, tf_hs_error(&f->hs, (int)ret));
            return false;
        }
        if (f->tx_corked)
            f->loop->plain_copied += (uint64_t)ret;   /* into the cork */
        else
            tf_hs_sent_uncorked(&f->hs);
        off += (size_t)ret;
        w->cur_off += (size_t)ret;
    }
    f->fbuf.len = 0;
    return true;
}

int tf_flow_user_file(tlsflow *f, tf_write *w)
{
    if (w->is_stream)
        return tf_flow_user_stream(f, w);
    if (!f->fbuf.len) {
        if (!read_file(f, w))
            return -1;
        return 0;
    }
    if (!tf_flow_encrypt_fbuf(f, w))
        return -1;
    /* Read ahead while this batch goes out, unless the peer is slow to take
     * it: then the buffer goes back to the pool until the socket drains. */
    if (w->cur_off == w->total || f->tx_congested)
        tf_pool_release(&f->loop->file_pool, &f->fbuf);
    else if (!read_file(f, w))
        return -1;
    return 1;
}

static void splice_in_done(tlsflow *f, int res, unsigned flags)
{
    tf_write *w = f->wq_next;

    (void)flags;
    if (res > 0 && w && w->file_fd >= 0) {
        f->pipe_len += (size_t)res;
        w->cur_off += (size_t)res;
    } else if (res == 0) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, ENODATA));   /* file shorter than asked */
    } else if (res < 0 && res != -EINTR && res != -EAGAIN && res != -ECANCELED) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, -res));
    }
}

/* file -> pipe, then pipe -> kTLS socket. */
void tf_flow_splice_file(tlsflow *f, tf_write *w)
{
    struct io_uring_sqe *sqe;
    size_t n;

    if (w->is_stream) {
        tf_flow_splice_stream(f, w);
        return;
    }
    if (f->pipe_fd[0] < 0) {
        if (pipe2(f->pipe_fd, O_CLOEXEC) < 0) {
            f->pipe_fd[0] = f->pipe_fd[1] = -1;
            tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, errno));
            return;
        }
        fcntl(f->pipe_fd[1], F_SETPIPE_SZ, PIPE_CHUNK);   /* bigger steps when allowed */
    }
    if (f->pipe_len) {
        tf_flow_ktx_splice(f);
        return;
    }
    if (w->cur_off == w->total)
        return;                   /* everything spliced; waiting for the pipe to drain */
    n = w->total - w->cur_off;
    if (n > PIPE_CHUNK)
        n = PIPE_CHUNK;
    sqe = tf_flow_submit(f, &f->file_op, splice_in_done);
    io_uring_prep_splice(sqe, w->file_fd, w->file_off + (int64_t)w->cur_off, f->pipe_fd[1], -1,
                         (unsigned)n, 0);
}
