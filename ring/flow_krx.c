/* The kernel's receive side: plaintext segments for reads, control records
 * (alerts, tickets, KeyUpdates) handled as they come, the receive key
 * renewed after the peer's KeyUpdate. */
#include <errno.h>
#include <string.h>

#include "handshake/handshake.h"
#include "ktls/ktls.h"
#include "ring/ring.h"

static const tlsflow_error no_error = { 0, 0 };

static void rekey_rx(tlsflow *f, const tf_post_event *ev)
{
    int ret = tf_flow_ktls_install(f, TF_KTLS_RX);

    if (ret < 0) {
        /* 6.1 answers EBUSY, and every later record would be EBADMSG. */
        tf_flow_rx_fail(f, tf_err(TLSFLOW_E_REKEY, -ret), GNUTLS_A_INTERNAL_ERROR);
        return;
    }
    if (ev->update_requested) {
        if (f->tx_path != PATH_KERNEL) {
            /* GnuTLS sends the answer with our next userspace record. */
            f->hs.key_update_due = true;
            return;
        }
        tf_flow_ktx_key_update(f);
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
            tf_flow_rx_fail(f, tf_err(TLSFLOW_E_BAD_RECORD, 0), GNUTLS_A_DECODE_ERROR);
        else if (alert.is_close_notify)
            tf_rx_end(f, RX_NOTIFIED);
        else if (alert.is_fatal)
            tf_flow_rx_fail(f, tf_err(TLSFLOW_E_ALERT, alert.description), -1);
        break;
    case TF_REC_HANDSHAKE:
        ret = tf_hs_feed_handshake(&f->hs, body, len, &ev);
        if (ret == GNUTLS_E_REHANDSHAKE)
            tf_flow_rx_fail(f, tf_hs_error(&f->hs, ret), GNUTLS_A_NO_RENEGOTIATION);
        else if (ret < 0)
            tf_flow_rx_fail(f, tf_hs_error(&f->hs, ret), tf_hs_alert_for(ret));
        else if (ev.refuse_renegotiation && f->tx_path == PATH_KERNEL) {
            f->kio->warning[0] = 1;
            f->kio->warning[1] = GNUTLS_A_NO_RENEGOTIATION;
            tf_flow_schedule(f);
        } else if (ev.key_update)
            rekey_rx(f, &ev);
        break;
    default:   /* ChangeCipherSpec after the handshake, a heartbeat, or worse */
        tf_flow_rx_fail(f, tf_err(TLSFLOW_E_BAD_RECORD, 0), GNUTLS_A_UNEXPECTED_MESSAGE);
        break;
    }
}

/* A segment can go to the pending read as it lies in the ring's buffer when
 * nothing received earlier waits before it: the read sees it until its
 * callback returns, and the buffer goes back to the ring after. */
static bool lend_to_read(const tlsflow *f)
{
    return f->read_cb && f->in.len == 0 && !f->err.code && !f->freed && !tf_flow_splicing_rx(f);
}

void tf_flow_krx_segment(tlsflow *f, const uint8_t *p, size_t len, int type, tf_seg_where where)
{
    if (f->rx_end != RX_LIVE)
        return;                   /* after the end (an error, close_notify) nothing more is taken */
    if (type == TF_REC_DATA) {
        f->hs.key_updates = 0;
        if (where == SEG_IN_PLACE) {
            f->in.len += len;
        } else if (where == SEG_RING && lend_to_read(f)) {
            tf_flow_complete_read(f, TLSFLOW_OK, p, len, no_error);
        } else {
            tf_flow_take_in(f, p, len);
            f->loop->plain_copied += len;
        }
    } else if (type < 0) {
        tf_flow_rx_fail(f, tf_err(TLSFLOW_E_BAD_RECORD, 0), GNUTLS_A_UNEXPECTED_MESSAGE);
    } else {
        control_record(f, type, p, len);
    }
}

/* A failed kernel receive. */
void tf_flow_krx_error(tlsflow *f, int res)
{
    switch (res) {
    case -EBADMSG:       /* a record failed authentication */
        tf_flow_rx_fail(f, tf_err(TLSFLOW_E_BAD_RECORD, 0), GNUTLS_A_BAD_RECORD_MAC);
        break;
    case -EMSGSIZE:      /* a record over the size limit */
        tf_flow_rx_fail(f, tf_err(TLSFLOW_E_BAD_RECORD, 0), GNUTLS_A_RECORD_OVERFLOW);
        break;
    case -EINVAL:        /* a malformed record header or padding */
        tf_flow_rx_fail(f, tf_err(TLSFLOW_E_BAD_RECORD, 0), GNUTLS_A_DECODE_ERROR);
        break;
    case -EKEYEXPIRED:   /* 6.14+ paused after a KeyUpdate: the new key is in, receive again */
        break;
    default:
        tf_flow_recv_error(f, res);
        break;
    }
}

/* Plaintext straight from the kernel: `in` holds it, control records were
 * handled as they came.  Receives only while someone reads or closes. */
void tf_flow_krx_progress(tlsflow *f)
{
    if (tf_flow_splicing_rx(f))
        return;                       /* splice_to receives by itself (flow_splice.c) */
    for (;;) {
        if (f->err.code || f->freed)
            return;
        if (f->in.len) {
            if (!f->read_cb)
                return;               /* held until the application reads */
            size_t n = f->in.len;
            tf_flow_complete_read(f, TLSFLOW_OK, tf_buf_head(&f->in), n, no_error);
            tf_buf_consume(&f->in, n);
            if (f->in.len == 0 && f->loop->br_state > 0)   /* receives go to the ring */
                tf_pool_release(&f->loop->in_pool, &f->in);
            continue;
        }
        if (f->rx_end == RX_NOTIFIED) {
            if (!f->read_cb)
                return;
            tf_flow_complete_read(f, TLSFLOW_EOF, NULL, 0, no_error);
            continue;
        }
        if (f->rx_end == RX_CUT) {
            if (f->read_cb)
                tf_flow_end_of_stream(f, tf_err(TLSFLOW_E_TRUNCATED, 0));
            return;
        }
        if (f->rx_end == RX_BAD) {         /* everything before it was read */
            tf_flow_fail(f, f->rx_err);
            return;
        }
        if (!f->read_cb && !f->close_cb)
            return;
        if (f->rx_eof) {              /* the kernel reports a cut record as a plain 0 */
            tf_flow_end_of_stream(f, tf_err(TLSFLOW_E_TRUNCATED, 0));
            return;
        }
        if (f->rx_errno) {
            tf_flow_end_of_stream(f, f->rx_errno == ECONNRESET || f->rx_errno == EPIPE
                                         ? tf_err(TLSFLOW_E_TRUNCATED, 0)
                                         : tf_err(TLSFLOW_E_SYSTEM, f->rx_errno));
            return;
        }
        tf_flow_post_recv(f, 0);
        return;
    }
}
