/* The kernel's side of a flow: moving each direction's key into the kernel at
 * a record boundary, receiving plaintext and control records with RECVMSG,
 * sending with SENDMSG (control records tagged with TLS_SET_RECORD_TYPE),
 * KeyUpdates, and sendfile by splice. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handshake/handshake.h"
#include "ktls/ktls.h"
#include "ring/ring.h"

#define PIPE_CHUNK (1024 * 1024)

static const uint8_t close_notify[2] = { 1, 0 };

/* ---- Switching ---- */

static int secret_params(tlsflow *f, unsigned *version, enum tf_ktls_cipher *cipher)
{
    tf_ktls_secret s;
    int ret = tf_hs_export_secret(f->hs.s, TF_KTLS_TX, &s);

    if (ret == 0) {
        *version = s.version;
        *cipher = s.cipher;
        f->tls_version = s.version;
        f->tx_record_limit = tf_ktls_record_limit(s.version, s.cipher);
    }
    tf_ktls_secret_wipe(&s);
    return ret;
}

/* Decides, right after the handshake, whether the keys go to the kernel. */
tlsflow_error tf_flow_ktls_plan(tlsflow *f)
{
    enum tf_ktls_cipher cipher = TF_CIPHER_UNKNOWN;
    unsigned version = 0;
    int ret;

    if (f->cfg->ktls == TLSFLOW_KTLS_OFF)
        return tf_err(0, 0);
    ret = tf_hs_gnutls_owns_ktls(&f->hs) ? -EBUSY : tf_ktls_probe_ulp();
    if (ret == 0)
        ret = secret_params(f, &version, &cipher);
    if (ret == 0)
        ret = tf_ktls_probe(version, cipher, TF_KTLS_TX);
    if (ret == 0)
        ret = tf_ktls_probe(version, cipher, TF_KTLS_RX);
    tf_trace(f, "ktls plan: version %#x cipher %d -> %d", version, cipher, ret);
    if (ret < 0) {
        if (f->cfg->ktls == TLSFLOW_KTLS_REQUIRE)
            return tf_err(TLSFLOW_E_KTLS_UNAVAILABLE, -ret);
        return tf_err(0, 0);     /* AUTO: userspace records, invisibly */
    }
    f->ktls_tx_pending = f->ktls_rx_pending = true;
    tf_hs_whole_records(&f->hs, true);
    return tf_err(0, 0);
}

static int install(tlsflow *f, enum tf_ktls_dir dir)
{
    tf_ktls_secret s;
    int ret = 0;

    if (!f->kio && !(f->kio = calloc(1, sizeof(*f->kio))))
        return -ENOMEM;
    if (!f->ulp_attached) {
        ret = tf_ktls_attach(f->fd);
        if (ret < 0)
            return ret;
        f->ulp_attached = true;
    }
    ret = tf_hs_export_secret(f->hs.s, dir, &s);
    if (ret == 0)
        ret = tf_ktls_install(f->fd, dir, &s);
    tf_ktls_secret_wipe(&s);
    return ret;
}

/* The ULP goes on while the connection is surely ESTABLISHED: a peer that
 * closes right after its last handshake flight would otherwise leave the
 * socket in CLOSE_WAIT, where the kernel refuses it.  Without keys it is
 * plain TCP. */
void tf_flow_ktls_attach_early(tlsflow *f)
{
    if (f->cfg->ktls == TLSFLOW_KTLS_OFF || f->ulp_attached || tf_ktls_probe_ulp() < 0)
        return;
    f->ulp_attached = tf_ktls_attach(f->fd) == 0;
}

/* A direction the kernel refuses stays in userspace under AUTO; REQUIRE fails. */
static bool switch_failed(tlsflow *f, int ret)
{
    if (f->cfg->ktls == TLSFLOW_KTLS_REQUIRE) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_KTLS_UNAVAILABLE, -ret));
        return false;
    }
    return true;
}

/* Called with every userspace record flushed. */
bool tf_flow_ktls_tx_switch(tlsflow *f)
{
    int ret;

    f->ktls_tx_pending = false;
    ret = install(f, TF_KTLS_TX);
    tf_trace(f, "TX key to the kernel: %d", ret);
    if (ret < 0)
        return switch_failed(f, ret);
    f->ktls_tx = true;
    f->tx_sent = f->tx_pos = 0;    /* from here, positions count plaintext */
    if (f->cfg->ktls_flags & TLSFLOW_KTLS_ZEROCOPY_RO)
        tf_trace(f, "TLS_TX_ZEROCOPY_RO: %d", tf_ktls_set_flag(f->fd, TF_KTLS_FLAG_ZEROCOPY_RO));
    return true;
}

/* Called with no record, not even part of one, left in userspace. */
bool tf_flow_ktls_rx_switch(tlsflow *f)
{
    int ret;

    f->ktls_rx_pending = false;
    tf_hs_whole_records(&f->hs, false);
    ret = install(f, TF_KTLS_RX);
    tf_trace(f, "RX key to the kernel: %d", ret);
    if (ret < 0)
        return switch_failed(f, ret);
    f->ktls_rx = true;
    tf_hs_kernel_rx_begin(&f->hs, &f->post_out);
    if (f->cfg->ktls_flags & TLSFLOW_KTLS_RX_NO_PAD)
        tf_trace(f, "TLS_RX_EXPECT_NO_PAD: %d", tf_ktls_set_flag(f->fd, TF_KTLS_FLAG_RX_NO_PAD));
    return true;
}

/* ---- Receiving ---- */

/* What the receive side finds goes to the reader after the bytes that came
 * before it; nothing more is taken in. */
static void rx_fail(tlsflow *f, tlsflow_error err)
{
    if (!f->rx_err.code)
        f->rx_err = err;
    tf_ring_cancel(f->loop, &f->recv_op);
    tf_flow_schedule(f);
}

static void rekey_rx(tlsflow *f, const tf_post_event *ev)
{
    int ret = install(f, TF_KTLS_RX);

    if (ret < 0) {
        /* 6.1 answers EBUSY, and every later record would be EBADMSG. */
        rx_fail(f, tf_err(TLSFLOW_E_REKEY, -ret));
        return;
    }
    if (ev->update_requested && !f->tx_rekey_pending) {
        ret = tf_hs_request_key_update_reply(&f->hs);
        if (ret < 0) {
            rx_fail(f, tf_hs_error(&f->hs, ret));
            return;
        }
        f->tx_rekey_pending = true;
    }
}

static void control_record(tlsflow *f, int type, const uint8_t *body, size_t len)
{
    tf_post_event ev;
    tf_ktls_alert alert;
    int ret;

    tf_trace(f, "control record type %d, %zu bytes", type, len);
    switch (type) {
    case TF_REC_ALERT:
        if (tf_ktls_parse_alert(body, len, &alert) < 0)
            rx_fail(f, tf_err(TLSFLOW_E_BAD_RECORD, 0));
        else if (alert.is_close_notify)
            f->peer_closed = true;
        else if (alert.is_fatal)
            rx_fail(f, tf_err(TLSFLOW_E_ALERT, alert.description));
        break;
    case TF_REC_HANDSHAKE:
        ret = tf_hs_feed_handshake(&f->hs, body, len, &ev);
        if (ret < 0)
            rx_fail(f, tf_hs_error(&f->hs, ret));
        else if (ev.key_update)
            rekey_rx(f, &ev);
        break;
    default:   /* ChangeCipherSpec after the handshake, or worse */
        rx_fail(f, tf_err(TLSFLOW_E_BAD_RECORD, 0));
        break;
    }
}

/* A failed kernel receive, single-shot or multishot alike. */
static void krx_error(tlsflow *f, int res)
{
    switch (res) {
    case -EBADMSG:
        rx_fail(f, tf_err(TLSFLOW_E_BAD_RECORD, 0));
        break;
    case -EKEYEXPIRED:   /* 6.14+ paused after a KeyUpdate: the new key is in, receive again */
    case -ENOBUFS:       /* the shared ring ran dry: receive again */
    case -EINTR:
    case -EAGAIN:
    case -ECANCELED:
        break;
    default:
        f->rx_errno = -res;
        break;
    }
}

static void krx_done(tf_op *op, int res, unsigned flags)
{
    tlsflow *f = TF_CONTAINER(op, tlsflow, recv_op);
    int type;

    (void)flags;
    tf_trace(f, "kernel recvmsg: %d, record type %d", res,
             res > 0 ? tf_ktls_record_type_buf(f->kio->krx_cmsg.b, sizeof(f->kio->krx_cmsg.b)) : -1);
    if (res > 0) {
        uint8_t *p = tf_buf_tail(&f->in);
        tf_mark_defined(p, (size_t)res);
        tf_mark_defined(f->kio->krx_cmsg.b, sizeof(f->kio->krx_cmsg.b));
        type = tf_ktls_record_type_buf(f->kio->krx_cmsg.b, sizeof(f->kio->krx_cmsg.b));
        if (type == TF_REC_DATA)
            f->in.len += (size_t)res;
        else if (type < 0)
            rx_fail(f, tf_err(TLSFLOW_E_BAD_RECORD, 0));
        else
            control_record(f, type, p, (size_t)res);
    } else if (res == 0) {
        f->rx_eof = true;
    } else {
        krx_error(f, res);
    }
    tf_flow_schedule(f);
    tf_flow_release(f);
}

/* One multishot RECVMSG for the flow's life on the shared buffer ring: every
 * record type comes in its own completion (data, alerts, handshake messages),
 * and an idle flow holds no buffer.  Layout of each buffer: the
 * io_uring_recvmsg_out header, the control area, then the payload. */
static void kmulti_done(tf_op *op, int res, unsigned flags)
{
    tlsflow *f = TF_CONTAINER(op, tlsflow, recv_op);
    struct msghdr *msg = &f->kio->krx_msg;
    struct io_uring_recvmsg_out *o;

    if (res >= 0 && (flags & IORING_CQE_F_BUFFER)) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        uint8_t *buf = (uint8_t *)tf_ring_buf(f->loop, bid);

        tf_mark_defined(buf, (size_t)res);
        o = io_uring_recvmsg_validate(buf, res, msg);
        if (!o) {
            rx_fail(f, tf_err(TLSFLOW_E_BAD_RECORD, 0));
        } else if (f->rx_err.code) {
            ;                          /* after an error nothing more is taken */
        } else {
            const uint8_t *payload = io_uring_recvmsg_payload(o, msg);
            size_t len = io_uring_recvmsg_payload_length(o, res, msg);
            int type = tf_ktls_record_type_buf(buf + sizeof(*o) + msg->msg_namelen, o->controllen);

            tf_trace(f, "kernel recvmsg (ring): %zu bytes, record type %d%s", len, type,
                     flags & IORING_CQE_F_MORE ? "" : ", disarmed");
            if (len == 0 && o->controllen == 0 && !(flags & IORING_CQE_F_MORE)) {
                f->rx_eof = true;      /* multishot's way of saying EOF */
            } else if (type == TF_REC_DATA) {
                if (tf_flow_take_in(f, payload, len, flags))
                    f->loop->plain_copied += len;
            } else if (type < 0) {
                rx_fail(f, tf_err(TLSFLOW_E_BAD_RECORD, 0));
            } else {
                control_record(f, type, payload, len);
            }
        }
        tf_ring_buf_recycle(f->loop, bid);
    } else {
        tf_trace(f, "kernel recvmsg (ring): %d", res);
        if (res < 0)
            krx_error(f, res);
    }
    tf_flow_schedule(f);
    if (!(flags & IORING_CQE_F_MORE))
        tf_flow_release(f);
}

void tf_flow_krx_post(tlsflow *f)
{
    struct io_uring_sqe *sqe;

    if (f->recv_op.busy || f->rx_eof || f->rx_errno || f->freed || f->err.code)
        return;
    if (tf_ring_bufring(f->loop)) {
        memset(&f->kio->krx_msg, 0, sizeof(f->kio->krx_msg));
        f->kio->krx_msg.msg_controllen = CMSG_SPACE(1);
        f->recv_op.done = kmulti_done;
        sqe = tf_ring_sqe(f->loop, &f->recv_op);
        io_uring_prep_recvmsg_multishot(sqe, f->fd, &f->kio->krx_msg, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = TF_BGID;
        f->refs++;
        return;
    }
    if (tf_buf_reserve(&f->in, TF_RECV_ROOM)) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, ENOMEM));
        return;
    }
    f->kio->krx_iov.iov_base = tf_buf_tail(&f->in);
    f->kio->krx_iov.iov_len = tf_buf_room(&f->in);
    memset(&f->kio->krx_cmsg, 0, sizeof(f->kio->krx_cmsg));
    memset(&f->kio->krx_msg, 0, sizeof(f->kio->krx_msg));
    f->kio->krx_msg.msg_iov = &f->kio->krx_iov;
    f->kio->krx_msg.msg_iovlen = 1;
    f->kio->krx_msg.msg_control = f->kio->krx_cmsg.b;
    f->kio->krx_msg.msg_controllen = sizeof(f->kio->krx_cmsg.b);
    f->recv_op.done = krx_done;
    sqe = tf_ring_sqe(f->loop, &f->recv_op);
    io_uring_prep_recvmsg(sqe, f->fd, &f->kio->krx_msg, 0);
    f->refs++;
}

/* ---- Sending ---- */

static void ktx_done(tf_op *op, int res, unsigned flags)
{
    tlsflow *f = TF_CONTAINER(op, tlsflow, send_op);
    int ret;

    (void)flags;
    tf_trace(f, "kernel send (kind %d): %d", f->ktx_kind, res);
    if (res == -EPIPE || res == -ECONNRESET) {
        f->wr_eof = true;
    } else if (res == -EBADMSG) {
        /* A record that failed to decrypt poisons the whole socket: the
         * send may learn it before the receive does. */
        tf_flow_fail(f, tf_err(TLSFLOW_E_BAD_RECORD, 0));
    } else if (res < 0 && res != -EINTR && res != -EAGAIN && res != -ECANCELED) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, -res));
    } else if (res > 0) {
        switch (f->ktx_kind) {
        case KTX_DATA:
            f->tx_sent += (uint64_t)res;
            f->tx_records += ((uint64_t)res + 16383) / 16384;
            break;
        case KTX_SPLICE:
            f->tx_sent += (uint64_t)res;
            f->tx_records += ((uint64_t)res + 16383) / 16384;
            f->pipe_len -= (size_t)res;
            break;
        case KTX_HANDSHAKE:
            tf_buf_consume(&f->post_out, (size_t)res);
            f->tx_records++;
            if (f->post_out.len == 0 && f->tx_rekey_pending) {
                /* Our KeyUpdate went out under the old key: switch now. */
                f->tx_rekey_pending = false;
                ret = install(f, TF_KTLS_TX);
                if (ret < 0)
                    tf_flow_fail(f, tf_err(TLSFLOW_E_REKEY, -ret));
                f->tx_records = 0;
            }
            break;
        case KTX_ALERT:
            break;
        }
    }
    tf_flow_schedule(f);
    tf_flow_release(f);
}

static void submit_msg(tlsflow *f, int kind, int iovcnt, uint8_t record_type, unsigned flags)
{
    struct io_uring_sqe *sqe;

    f->kio->ktx_msg.msg_iov = f->kio->ktx_iov;
    f->kio->ktx_msg.msg_iovlen = (size_t)iovcnt;
    f->kio->ktx_msg.msg_control = NULL;
    f->kio->ktx_msg.msg_controllen = 0;
    if (record_type) {
        f->kio->ktx_msg.msg_control = f->kio->ktx_cmsg.b;
        f->kio->ktx_msg.msg_controllen =
            tf_ktls_set_record_type_cmsg(f->kio->ktx_cmsg.b, sizeof(f->kio->ktx_cmsg.b), record_type);
    }
    f->ktx_kind = kind;
    f->send_op.done = ktx_done;
    sqe = tf_ring_sqe(f->loop, &f->send_op);
    io_uring_prep_sendmsg(sqe, f->fd, &f->kio->ktx_msg, flags | MSG_NOSIGNAL);
    f->refs++;
}

static void splice_in_done(tf_op *op, int res, unsigned flags)
{
    tlsflow *f = TF_CONTAINER(op, tlsflow, splice_op);

    (void)flags;
    if (res > 0) {
        f->pipe_len += (size_t)res;
        f->wq_next->cur_off += (size_t)res;
    } else if (res == 0) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, ENODATA));   /* file shorter than asked */
    } else if (res != -EINTR && res != -EAGAIN && res != -ECANCELED) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, -res));
    }
    tf_flow_schedule(f);
    tf_flow_release(f);
}

/* sendfile: file -> pipe, then pipe -> kTLS socket; no plaintext in userspace. */
static void splice_file(tlsflow *f, tf_write *w)
{
    struct io_uring_sqe *sqe;
    size_t n;

    if (f->pipe_fd[0] <= 0) {
        if (pipe2(f->pipe_fd, O_CLOEXEC) < 0) {
            f->pipe_fd[0] = f->pipe_fd[1] = 0;
            tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, errno));
            return;
        }
        fcntl(f->pipe_fd[1], F_SETPIPE_SZ, PIPE_CHUNK);   /* bigger steps when allowed */
    }
    if (f->pipe_len) {
        sqe = tf_ring_sqe(f->loop, &f->send_op);
        io_uring_prep_splice(sqe, f->pipe_fd[0], -1, f->fd, -1, (unsigned)f->pipe_len, 0);
        f->ktx_kind = KTX_SPLICE;
        f->send_op.done = ktx_done;
        f->refs++;
        return;
    }
    n = w->total - w->cur_off;
    if (n > PIPE_CHUNK)
        n = PIPE_CHUNK;
    f->splice_op.done = splice_in_done;
    sqe = tf_ring_sqe(f->loop, &f->splice_op);
    io_uring_prep_splice(sqe, w->file_fd, w->file_off + (int64_t)w->cur_off, f->pipe_fd[1], -1,
                         (unsigned)n, 0);
    f->refs++;
}

/* Hands the kernel the queued bytes from position tx_sent on. */
void tf_flow_ktx_progress(tlsflow *f)
{
    uint64_t pos = 0;
    tf_write *w;
    int n = 0;

    if (f->send_op.busy || f->splice_op.busy || f->wr_eof)
        return;
    if (f->tx_record_limit && !f->tx_rekey_pending &&
        f->tx_records + 1024 >= f->tx_record_limit) {
        /* The AEAD limit is near: a new key where the kernel can take one,
         * else the flow ends here rather than wear the key out. */
        if (!tf_ktls_has_rekey(f->tls_version) || tf_hs_request_key_update_reply(&f->hs) < 0 ||
            !f->post_out.len) {
            tf_flow_fail(f, tf_err(TLSFLOW_E_REKEY, EBUSY));
            return;
        }
        f->tx_rekey_pending = true;
    }
    if (f->post_out.len) {       /* a KeyUpdate or other handshake message first */
        f->kio->ktx_iov[0].iov_base = tf_buf_head(&f->post_out);
        f->kio->ktx_iov[0].iov_len = f->post_out.len;
        submit_msg(f, KTX_HANDSHAKE, 1, TF_REC_HANDSHAKE, 0);
        return;
    }
    for (w = f->wq; w && n < TF_KTX_IOV; w = w->next) {
        uint64_t start;

        if (!w->taken) {          /* positions are given once, in queue order */
            w->end = f->tx_pos + w->total;
            f->tx_pos = w->end;
            w->taken = true;
        }
        start = w->end - w->total;
        if (w->end <= f->tx_sent)
            continue;
        if (w->file_fd >= 0) {
            if (n)
                break;            /* the bytes before the file go first */
            if (f->pipe_len == 0 && w->cur_off == w->total)
                return;           /* everything spliced; waiting for the pipe to drain */
            splice_file(f, w);
            f->wq_next = w;
            return;
        }
        pos = start;
        for (int i = 0; i < w->iovcnt && n < TF_KTX_IOV; i++) {
            size_t len = w->iov[i].iov_len, skip = 0;
            if (pos + len <= f->tx_sent) {
                pos += len;
                continue;
            }
            if (pos < f->tx_sent)
                skip = (size_t)(f->tx_sent - pos);
            f->kio->ktx_iov[n].iov_base = (char *)w->iov[i].iov_base + skip;
            f->kio->ktx_iov[n].iov_len = len - skip;
            n++;
            pos += len;
        }
    }
    /* More queued behind this batch: let the kernel fill whole records. */
    if (n)
        submit_msg(f, KTX_DATA, n, 0, w ? MSG_MORE : 0);
}

/* close_notify through the kernel: a record of type 21. */
bool tf_flow_ktx_close(tlsflow *f)
{
    if (f->send_op.busy || f->splice_op.busy)
        return false;
    f->kio->ktx_iov[0].iov_base = (void *)close_notify;
    f->kio->ktx_iov[0].iov_len = sizeof(close_notify);
    submit_msg(f, KTX_ALERT, 1, TF_REC_ALERT, 0);
    return true;
}
