/* The flow interface: each call checks its arguments and the flow's state,
 * queues the operation and schedules the flow's task.  A refused call
 * returns -errno and never calls back. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ring/ring.h"

/* Operations are taken only while the application holds an open flow. */
static bool usable(const tlsflow *f, tlsflow_cb *cb)
{
    return f && cb && !f->freed && f->state == FLOW_OPEN;
}

TLSFLOW_PUBLIC int tlsflow_read(tlsflow *f, tlsflow_cb *cb, void *arg)
{
    if (!usable(f, cb) || f->read_cb || tf_flow_splicing_rx(f))
        return -EINVAL;
    f->read_cb = cb;
    f->read_arg = arg;
    tf_flow_schedule(f);
    return 0;
}

/* The bytes a write carries, refused when they cannot be counted (a sum that
 * wraps, or more than a result's length can say). */
static int iov_total(const struct iovec *iov, int iovcnt, size_t *total)
{
    size_t sum = 0;

    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_base && iov[i].iov_len)
            return -EINVAL;
        if (iov[i].iov_len > (size_t)SSIZE_MAX - sum)
            return -EINVAL;
        sum += iov[i].iov_len;
    }
    *total = sum;
    return 0;
}

static int set_iov(tlsflow_loop *loop, tf_write *w, const struct iovec *iov, int iovcnt)
{
    w->iov = w->inline_iov;
    if (iovcnt > TF_INLINE_IOV) {
        if (w->big_cap < iovcnt) {
            struct iovec *n = realloc(w->big_iov, sizeof(*iov) * (size_t)iovcnt);
            if (!n) {
                tf_write_put(loop, w);
                return -ENOMEM;
            }
            w->big_iov = n;
            w->big_cap = iovcnt;
        }
        w->iov = w->big_iov;
    }
    if (iovcnt)
        memcpy(w->iov, iov, sizeof(*iov) * (size_t)iovcnt);
    w->iovcnt = iovcnt;
    return 0;
}

static int queue_write(tlsflow *f, const struct iovec *iov, int iovcnt, int file_fd, off_t off,
                       size_t file_len, tlsflow_cb *cb, void *arg)
{
    size_t total = file_len;
    tf_write *w;
    int ret;

    if (!usable(f, cb) || iovcnt < 0 || (iovcnt && !iov) || iovcnt > IOV_MAX)
        return -EINVAL;
    if (f->close_cb || (f->tx_phase != TX_OPEN && f->tx_phase < TX_ALERTING))
        return -EINVAL;   /* write after close */
    if (file_fd < 0 && (ret = iov_total(iov, iovcnt, &total)) < 0)
        return ret;
    w = tf_write_get(f->loop);
    if (!w)
        return -ENOMEM;
    if ((ret = set_iov(f->loop, w, iov, iovcnt)) < 0)
        return ret;
    w->total = total;
    w->file_fd = file_fd;
    w->file_off = off;
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
    if (fd < 0 || offset < 0 || len > (size_t)SSIZE_MAX ||
        (uint64_t)len > (uint64_t)(INT64_MAX - (int64_t)offset))
        return -EINVAL;
    return queue_write(f, NULL, 0, fd, offset, len, cb, arg);
}

TLSFLOW_PUBLIC int tlsflow_close(tlsflow *f, tlsflow_cb *cb, void *arg)
{
    if (!usable(f, cb) || f->close_cb || (f->tx_phase != TX_OPEN && f->tx_phase < TX_ALERTING))
        return -EINVAL;
    f->close_cb = cb;
    f->close_arg = arg;
    tf_flow_schedule(f);
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_get_info(const tlsflow *f, tlsflow_info *out)
{
    if (!f || !out || f->state != FLOW_OPEN)
        return -EINVAL;
    tf_hs_info(&f->hs, out);
    out->ktls_tx = f->tx_path == PATH_KERNEL;
    out->ktls_rx = f->rx_path == PATH_KERNEL;
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
