/* KeyUpdate from a GnuTLS peer (in-process, userspace records) while a tlsflow
 * client (KTLS_REQUIRE) echoes a checked stream through it, TLS 1.3:
 *   after 256 KiB the peer sends KeyUpdate(update_requested) — tlsflow must
 *   take the peer's new key into TLS_RX and answer with its own KeyUpdate and a
 *   new TLS_TX; after 512 KiB a KeyUpdate(update_not_requested).
 * Linux >= 6.14 (a second TLS_RX/TLS_TX accepted): the stream goes on intact
 * both ways and tls_stat counts the rekeys.  Older kernels: the flow fails with
 * TLSFLOW_E_REKEY and a message that says so — no hang, no garbage. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "tf_gnutls_peer.h"

#define TOTAL (768u << 10)

struct suite { const char *name, *prio; size_t ku_peer_at, ku_at; };

#define P13 "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:"
#define K (1u << 10)
static const struct suite suites[] = {
    { "aes128gcm", P13 "+AES-128-GCM", 256 * K, 512 * K },
    { "aes256gcm", P13 "+AES-256-GCM", 256 * K, 512 * K },
    { "chacha20", P13 "+CHACHA20-POLY1305", 256 * K, 512 * K },
    /* each kind alone */
    { "aes128gcm_requested_only", P13 "+AES-128-GCM", 256 * K, 0 },
    { "aes128gcm_not_requested_only", P13 "+AES-128-GCM", 0, 256 * K },
};
#define NSUITES (sizeof(suites) / sizeof(suites[0]))

/* The socket as TCP sees it, for the failure report. */
static void tcp_note(int fd, const char *when)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    int outq = -1, inq = -1;

    memset(&ti, 0, sizeof(ti));
    getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
    ioctl(fd, SIOCOUTQ, &outq);
    ioctl(fd, SIOCINQ, &inq);
    fprintf(stderr, "[ note ] %s: tcp state %u, unsent/unacked %d, unread %d\n", when,
            ti.tcpi_state, outq, inq);
}

TF_TEST(peer_key_update, 90)
{
    const struct suite *su = *state;
    int rekeys = tf_kernel_rekeys();
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_config_ktls(TLSFLOW_CLIENT, su->prio, TLSFLOW_KTLS_REQUIRE);
    tf_gnutls_peer kp = { .server = true };
    tf_done con, cl = { 0 };
    tf_xfer x;
    tlsflow_info info;
    tf_tls_stat s0, s1;

    kp.priority = su->prio;
    kp.echo = true;
    kp.seed = 0x4b55;
    kp.ku_peer_at = su->ku_peer_at;
    kp.ku_at = su->ku_at;
    tf_tls_stat_read(&s0);
    tf_gnutls_peer_listen(&kp);
    if (tf_connect_fd_sync(loop, cfg, kp.port, &con, 15000))
        fail_msg("connect: %s", con.message);
    assert_int_equal(tlsflow_get_info(con.flow, &info), 0);
    assert_int_equal(info.tls_version, 0x0304);
    tf_xfer_start(&x, con.flow, TOTAL, TOTAL, kp.seed, TF_DATA_BINARY);
    tf_run_until(loop, tf_xfer_cond, &x, 60000, "the echo across the KeyUpdates");
    if (rekeys) {
        if (x.failed)
            fail_msg("kernel %s rekeys, yet the flow failed after %zu bytes back: %s (code %d detail %d)",
                     "(>= 6.14)", x.received, x.message, x.error.code, x.error.detail);
        assert_int_equal(x.received, TOTAL);
        assert_int_equal(tlsflow_get_info(con.flow, &info), 0);
        if (!info.ktls_tx || !info.ktls_rx)
            fail_msg("after the rekeys: ktls_tx %d ktls_rx %d", info.ktls_tx, info.ktls_rx);
        tcp_note(tlsflow_fd(con.flow), "before the close");
        assert_int_equal(tlsflow_close(con.flow, tf_on_done, &cl), 0);
        tf_run_until(loop, tf_cond_done, &cl, 15000, "the close");
        tcp_note(tlsflow_fd(con.flow), "after the close");
        if (cl.status != TLSFLOW_OK)
            fail_msg("close: %s", cl.message);
        tf_run_for(loop, 300);
        tcp_note(tlsflow_fd(con.flow), "300 ms later");
        tlsflow_free(con.flow);
        tf_gnutls_peer_join(&kp, 20000);
        if (kp.gerr)
            fail_msg("GnuTLS peer: %s: %s (it had received %zu bytes and sent %zu; close_notify %d)",
                     kp.where, gnutls_strerror(kp.gerr), kp.received, kp.sent, kp.close_notify);
        if (kp.mismatch)
            fail_msg("the peer got different bytes at %llu", (unsigned long long)kp.bad_offset);
        assert_int_equal(kp.received, TOTAL);
        assert_int_equal(kp.ku_done, (su->ku_peer_at > 0) + (su->ku_at > 0));
        assert_true(kp.close_notify);
        tf_tls_stat_read(&s1);
        tf_tls_stat_expect(&s0, &s1, "TlsRxRekeyOk", kp.ku_done, kp.ku_done);
        tf_tls_stat_expect(&s0, &s1, "TlsTxRekeyOk", su->ku_peer_at > 0, su->ku_peer_at > 0);
        tf_tls_stat_expect(&s0, &s1, "TlsRxRekeyReceived", kp.ku_done, kp.ku_done);
        tf_tls_stat_expect(&s0, &s1, "TlsDecryptError", 0, 0);
    } else {
        if (!x.failed)
            fail_msg("this kernel cannot rekey, yet the flow carried on through the KeyUpdate");
        if (x.error.code != TLSFLOW_E_REKEY)
            fail_msg("after the KeyUpdate: code %d detail %d (%s); want TLSFLOW_E_REKEY",
                     x.error.code, x.error.detail, x.message);
        if (x.error.detail != EBUSY)
            fail_msg("TLSFLOW_E_REKEY detail %d; want EBUSY (%d)", x.error.detail, EBUSY);
        if (!strstr(tlsflow_error_message(x.error), "6.14"))
            fail_msg("message \"%s\" does not name the kernel it needs", tlsflow_error_message(x.error));
        fprintf(stderr, "[ note ] %s: %s\n", tf_test_name(), x.message);
        /* Nothing garbled came before the error. */
        if (x.chk.bad)
            fail_msg("bytes before the error differ at %llu", (unsigned long long)x.chk.bad_offset);
        if (x.received > (kp.ku_peer_at ? kp.ku_peer_at : kp.ku_at))
            fail_msg("%zu bytes came after a KeyUpdate the kernel could not follow", x.received);
        /* The error sticks. */
        {
            tf_done w = { 0 };
            assert_int_equal(tlsflow_write(con.flow, "x", 1, tf_on_done, &w), 0);
            tf_run_until(loop, tf_cond_done, &w, 5000, "a write after the error");
            assert_int_equal(w.status, TLSFLOW_ERROR);
            assert_int_equal(w.error.code, TLSFLOW_E_REKEY);
        }
        tlsflow_free(con.flow);
        tf_run_for(loop, 50);
        tf_gnutls_peer_join(&kp, 20000);
    }
    tf_xfer_release(&x);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

int main(void)
{
    struct CMUnitTest tests[NSUITES];
    int pre = tf_kernel_prelude();

    if (pre)
        return pre;
    fprintf(stderr, "kernel %s TLS 1.3 rekey\n", tf_kernel_rekeys() ? "supports" : "lacks");
    for (size_t i = 0; i < NSUITES; i++)
        tests[i] = (struct CMUnitTest)TF_CASE_WITH(
            peer_key_update, tf_name("peer_key_update_%s", suites[i].name), &suites[i]);
    return _cmocka_run_group_tests("kernel_keyupdate", tests, NSUITES, NULL, NULL);
}
