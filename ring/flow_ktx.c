/* The kernel's send side: SENDMSG from the application's buffers (control
 * records tagged with TLS_SET_RECORD_TYPE), our KeyUpdate and the new send
 * key after it, the AEAD record limit, close_notify and fatal alerts. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "handshake/handshake.h"
#include "ktls/ktls.h"
#include "ring/ring.h"

#define KTLS_RECORD 16384          /* the kernel cuts records at this size */

static const uint8_t close_notify[2] = { 1, 0 };

/* Records as the kernel cuts them: full ones as bytes come, the last partial
 * one when a send ends without MSG_MORE (a splice always ends its record). */
static void count_records(tlsflow *f, size_t n, bool more)
{
    size_t total = f->tx_open_record + n;

    f->tx_records += total / KTLS_RECORD;
    f->tx_open_record = total % KTLS_RECORD;
    if (!more && f->tx_open_record) {
        f->tx_records++;
        f->tx_open_record = 0;
    }
}

static void new_tx_key(tlsflow *f)
{
    int ret;

    /* Our KeyUpdate went out under the old key: switch now. */
    f->tx_rekey_pending = false;
    ret = tf_flow_ktls_install(f, TF_KTLS_TX);
    if (ret < 0)
        tf_flow_fail(f, tf_err(TLSFLOW_E_REKEY, -ret));
    f->tx_records = 0;
    f->tx_open_record = 0;
}

static void ktx_done(tlsflow *f, int res, unsigned flags)
{
    bool more = f->kio->more;

    (void)flags;
    tf_trace(f, "kernel send (kind %d): %d", f->ktx_kind, res);
    if (res == -EPIPE || res == -ECONNRESET) {
        f->tx_peer_gone = true;
        /* A reset before the peer's close_notify cut the stream: the whole
         * flow learns it now, whichever side saw it first. */
        if (res == -ECONNRESET && f->rx_end != RX_NOTIFIED)
            tf_flow_end_of_stream(f, tf_err(TLSFLOW_E_TRUNCATED, 0));
    } else if (res == -EBADMSG) {
        /* A record that failed to decrypt poisons the whole socket: the
         * send may learn it before the receive does. */
        tf_flow_rx_fail(f, tf_err(TLSFLOW_E_BAD_RECORD, 0), GNUTLS_A_BAD_RECORD_MAC);
    } else if (res < 0 && res != -EINTR && res != -EAGAIN && res != -ECANCELED) {
        if (f->tx_phase == TX_ALERTING)
            f->tx_phase = TX_DONE;   /* the alert cannot go out: stop trying */
        tf_flow_fail(f, tf_err(TLSFLOW_E_SYSTEM, -res));
    } else if (res > 0) {
        switch (f->ktx_kind) {
        case KTX_DATA:
            f->tx_sent += (uint64_t)res;
            count_records(f, (size_t)res, more);
            break;
        case KTX_SPLICE:
            f->tx_sent += (uint64_t)res;
            count_records(f, (size_t)res, false);
            f->pipe_len -= (size_t)res;
            break;
        case KTX_HANDSHAKE:
            tf_buf_consume(&f->post_out, (size_t)res);
            count_records(f, 0, false);
            f->tx_records++;
            if (f->post_out.len == 0 && f->tx_rekey_pending)
                new_tx_key(f);
            break;
        case KTX_ALERT:
            break;
        }
    }
}

static void submit_msg(tlsflow *f, int kind, int iovcnt, uint8_t record_type, unsigned flags)
{
    struct tf_kio *k = f->kio;
    struct io_uring_sqe *sqe;

    k->ktx_msg.msg_iov = k->ktx_iov;
    k->ktx_msg.msg_iovlen = (size_t)iovcnt;
    k->ktx_msg.msg_control = NULL;
    k->ktx_msg.msg_controllen = 0;
    k->more = flags & MSG_MORE;
    if (record_type) {
        k->ktx_msg.msg_control = k->ktx_cmsg.b;
        k->ktx_msg.msg_controllen =
            tf_ktls_set_record_type_cmsg(k->ktx_cmsg.b, sizeof(k->ktx_cmsg.b), record_type);
    }
    f->ktx_kind = kind;
    sqe = tf_flow_submit(f, &f->send_op, ktx_done);
    io_uring_prep_sendmsg(sqe, f->fd, &k->ktx_msg, flags | MSG_NOSIGNAL);
}

void tf_flow_ktx_splice(tlsflow *f)
{
    struct io_uring_sqe *sqe = tf_flow_submit(f, &f->send_op, ktx_done);

    io_uring_prep_splice(sqe, f->pipe_fd[0], -1, f->fd, -1, (unsigned)f->pipe_len, 0);
    f->ktx_kind = KTX_SPLICE;
}

/* The peer asked for our KeyUpdate: GnuTLS writes it into post_out (never as
 * a record of its own), it goes out first, and the new send key follows
 * (new_tx_key).  Before 6.14 the kernel takes no second send key: the flow
 * says so under the key the peer still reads, rather than announce one. */
void tf_flow_ktx_key_update(tlsflow *f)
{
    int ret;

    if (f->tx_rekey_pending)
        return;
    if (!tf_ktls_has_rekey(f->tls_version)) {
        tf_flow_rx_fail(f, tf_err(TLSFLOW_E_REKEY, EBUSY), GNUTLS_A_INTERNAL_ERROR);
        return;
    }
    ret = tf_hs_request_key_update_reply(&f->hs);
    if (ret < 0) {
        tf_flow_rx_fail(f, tf_hs_error(&f->hs, ret), tf_hs_alert_for(ret));
        return;
    }
    f->tx_rekey_pending = true;
    tf_flow_schedule(f);
}

/* The AEAD limit is near: a new key where the kernel can take one, else the
 * flow ends here rather than wear the key out. */
static bool record_limit(tlsflow *f)
{
    if (!f->tx_record_limit || f->tx_rekey_pending ||
        f->tx_records + 1024 < f->tx_record_limit)
        return true;
    if (!tf_ktls_has_rekey(f->tls_version) || tf_hs_request_key_update_reply(&f->hs) < 0 ||
        !f->post_out.len) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_REKEY, EBUSY));
        return false;
    }
    f->tx_rekey_pending = true;
    return true;
}

/* Hands the kernel the queued bytes from position tx_sent on. */
void tf_flow_ktx_progress(tlsflow *f)
{
    uint64_t pos = 0;
    tf_write *w;
    int n = 0;

    if (f->send_op.op.busy || f->file_op.op.busy || f->tx_peer_gone || !record_limit(f))
        return;
    if (f->kio->warning[0]) {    /* a warning alert goes out before more data */
        memcpy(f->kio->alert, f->kio->warning, 2);
        f->kio->warning[0] = 0;
        f->kio->ktx_iov[0].iov_base = f->kio->alert;
        f->kio->ktx_iov[0].iov_len = 2;
        submit_msg(f, KTX_ALERT, 1, TF_REC_ALERT, 0);
        return;
    }
    if (f->post_out.len) {       /* a KeyUpdate or other handshake message first */
        f->kio->ktx_iov[0].iov_base = tf_buf_head(&f->post_out);
        f->kio->ktx_iov[0].iov_len = f->post_out.len;
        submit_msg(f, KTX_HANDSHAKE, 1, TF_REC_HANDSHAKE, 0);
        return;
    }
    for (w = f->wq; w && n < TF_KTX_IOV; w = w->next) {
        uint64_t start;

        if (!w->taken && tf_write_is_open_stream(w)) {
            /* splice_from: its length is known at its end, so what comes
             * behind it gets a position only then. */
            if (n)
                break;
            f->wq_next = w;
            tf_flow_splice_stream(f, w);
            return;
        }
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
            f->wq_next = w;
            tf_flow_splice_file(f, w);
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

static void record21(tlsflow *f, const uint8_t *body)
{
    f->kio->ktx_iov[0].iov_base = (void *)body;
    f->kio->ktx_iov[0].iov_len = 2;
    submit_msg(f, KTX_ALERT, 1, TF_REC_ALERT, 0);
}

/* close_notify through the kernel: a record of type 21. */
bool tf_flow_ktx_close(tlsflow *f)
{
    if (f->send_op.op.busy || f->file_op.op.busy)
        return false;
    record21(f, close_notify);
    return true;
}

/* A fatal alert through the kernel, behind what is in flight. */
bool tf_flow_ktx_alert(tlsflow *f)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    if (f->send_op.op.busy || f->file_op.op.busy)
        return false;
    /* After a failed decryption the socket carries the error: taken here,
     * so that the alert's send does not fail with it. */
    (void)getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
    f->kio->alert[0] = 2;
    f->kio->alert[1] = (uint8_t)f->alert;
    record21(f, f->kio->alert);
    return true;
}
