/* Opening a flow: the handshake driven by ring I/O, its timeout, the keys'
 * move to the kernel, and the application's first callback. */
#include <errno.h>
#include <sys/socket.h>

#include "ring/ring.h"

static void timer_done(tlsflow *f, int res, unsigned flags)
{
    (void)flags;
    if (res == -ECANCELED || res == 0 || f->state != FLOW_OPENING || f->err.code)
        return;
    /* Expired, or could not be armed: a handshake without its deadline is
     * not let run. */
    f->err = res == -ETIME ? tf_err(TLSFLOW_E_TIMEOUT, 0) : tf_err(TLSFLOW_E_SYSTEM, -res);
    /* Wakes the receive in flight; the task then fails the opening. */
    shutdown(f->fd, SHUT_RDWR);
}

void tf_flow_stop_timer(tlsflow *f)
{
    struct io_uring_sqe *sqe;

    if (!f->timer_op.op.busy)
        return;
    tf_ring_sqe_detached(f->loop, &sqe);
    io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&f->timer_op.op, 0);
}

void tf_flow_start_handshake(tlsflow *f, const char *server_name, const char *cache_key,
                             tlsflow_cb *cb, void *arg)
{
    const tlsflow_config *cfg = f->cfg;
    unsigned ms = cfg->handshake_timeout_ms;
    int ret;

    f->open_cb = cb;
    f->open_arg = arg;
    tf_flow_ktls_attach_early(f);
    ret = tf_hs_session_init(&f->hs, cfg, server_name, cache_key, &f->in, &f->out, &f->rx_eof);
    if (ret < 0) {
        f->err = tf_err(TLSFLOW_E_TLS, ret);
        tf_flow_schedule(f);
        return;
    }
    tf_hs_watch_key_updates(&f->hs);
    if (ms) {
        f->timer_ts.tv_sec = ms / 1000;
        f->timer_ts.tv_nsec = (long long)(ms % 1000) * 1000000;
        io_uring_prep_timeout(tf_flow_submit(f, &f->timer_op, timer_done), &f->timer_ts, 0, 0);
    }
    tf_flow_schedule(f);
}

/* The opening failed: the application never sees this flow.  It lingers
 * only while the alert GnuTLS queued goes out (behind any record of ours
 * still being sent, never beside it). */
static void open_failed(tlsflow *f, tlsflow_error err)
{
    tlsflow_cb *cb = f->open_cb;

    f->err = tf_err(0, 0);          /* so that the failure below takes err */
    tf_flow_fail_alert(f, err, TF_ALERT_QUEUED);
    f->state = FLOW_DEAD;
    f->freed = true;
    f->open_cb = NULL;
    if (cb) {
        tlsflow_result r = { TLSFLOW_ERROR, NULL, 0, err };
        cb(NULL, &r, f->open_arg);
    }
    tf_flow_release(f);   /* the reference the application would have held */
}

/* Records that came right behind the handshake (a GnuTLS server sends its
 * NewSessionTickets with its Finished) go through GnuTLS before the receive
 * key moves to the kernel; the first data record waits as the held one, and
 * an error waits for the application's first read. */
static void drain_before_switch(tlsflow *f)
{
    gnutls_packet_t pkt;
    const void *data;
    size_t len;
    ssize_t ret;

    while (f->in.len && !f->held && f->rx_end != RX_BAD) {
        pkt = NULL;
        ret = tf_hs_recv_packet(&f->hs, &pkt, &data, &len);
        tf_flow_owed_by_gnutls(f);
        if (ret > 0) {
            f->held = pkt;
            f->held_data = data;
            f->held_len = len;
            return;
        }
        tf_hs_packet_free(pkt);
        if (ret == GNUTLS_E_AGAIN)
            return;               /* part of a record: the receive side finishes it */
        if (ret == 0)
            tf_rx_end(f, RX_NOTIFIED);
        else
            tf_flow_rx_fail(f, tf_hs_error(&f->hs, (int)ret), tf_hs_alert_for((int)ret));
        return;
    }
}

void tf_flow_open_progress(tlsflow *f)
{
    tlsflow_error err;
    tlsflow_cb *cb;
    int ret;

    if (f->err.code) {
        open_failed(f, f->err);
        return;
    }
    if (f->rx_path == PATH_HANDSHAKE) {
        ret = tf_hs_handshake(&f->hs);
        /* What arrived before a reset is used first; the reset matters only
         * when the handshake needs more. */
        if (ret == GNUTLS_E_AGAIN && f->rx_errno) {
            open_failed(f, tf_err(TLSFLOW_E_SYSTEM, f->rx_errno));
            return;
        }
        if (ret == GNUTLS_E_AGAIN) {
            tf_flow_flush(f);
            tf_flow_post_recv(f, 0);
            return;
        }
        tf_trace(f, "handshake: %d", ret);
        if (ret < 0) {
            open_failed(f, tf_hs_error(&f->hs, ret));
            return;
        }
        tf_flow_stop_timer(f);
        f->rx_path = f->tx_path = PATH_USER;
        err = tf_flow_ktls_plan(f);
        if (err.code) {
            open_failed(f, err);
            return;
        }
    }
    /* The kernel takes the send key once our last userspace record is out. */
    tf_flow_flush(f);
    if (f->tx_path == PATH_SWITCHING) {
        if (f->send_op.op.busy || f->sending.len || f->out.len)
            return;               /* the send's completion brings us back */
        if (!tf_flow_ktls_tx_switch(f)) {
            open_failed(f, f->err);
            return;
        }
    }
    tf_trace(f, "opening: %zu bytes received past the handshake", f->in.len);
    /* The receive key, when no record is half-read in userspace; otherwise
     * the receive side switches at the next record boundary. */
    if (f->rx_path == PATH_SWITCHING && !f->recv_op.op.busy) {
        drain_before_switch(f);
        if (f->rx_path == PATH_SWITCHING && f->in.len == 0 && !f->held && f->rx_end != RX_BAD &&
            !tf_flow_ktls_rx_switch(f)) {
            open_failed(f, f->err);
            return;
        }
    }
    f->state = FLOW_OPEN;
    cb = f->open_cb;
    f->open_cb = NULL;
    {
        tlsflow_result r = { TLSFLOW_OK, NULL, 0, { 0, 0 } };
        cb(f, &r, f->open_arg);
    }
}
