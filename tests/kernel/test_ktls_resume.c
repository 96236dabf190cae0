/* Tickets and resumption with the receive key in the kernel: the TLS 1.3
 * NewSessionTickets arrive as type-22 records through kTLS RX and go to
 * GnuTLS; a second connection with the same client config resumes and still
 * has both keys in the kernel.  Peers: a tlsflow server (REQUIRE) and
 * gnutls-serv; TLS 1.2 (ticket inside the handshake) for comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tf_test.h"

static const char *const prio[] = {
    "NORMAL:-VERS-ALL:+VERS-TLS1.2",
    "NORMAL:-VERS-ALL:+VERS-TLS1.3",
};

/* A checked echo of 64 KiB: reading it takes in the tickets that came first. */
static void exchange(tlsflow_loop *loop, tlsflow *f, uint64_t seed)
{
    tf_xfer x;

    tf_xfer_start(&x, f, 64 << 10, 64 << 10, seed, TF_DATA_TEXT);
    tf_run_until(loop, tf_xfer_cond, &x, 20000, "the echo");
    if (x.failed)
        fail_msg("echo: %s", x.message);
    assert_int_equal(x.received, 64 << 10);
    tf_xfer_release(&x);
}

static int session(tlsflow_loop *loop, const tlsflow_config *cfg, int port, int v, int nth,
                   tf_echo *e)
{
    tf_done con, cl = { 0 };
    tlsflow_info info;

    if (tf_connect_sync(loop, cfg, "localhost", port, &con, 15000))
        fail_msg("connection %d: %s", nth, con.message);
    exchange(loop, con.flow, 0x7e57 + (uint64_t)nth);
    assert_int_equal(tlsflow_get_info(con.flow, &info), 0);
    assert_int_equal(info.tls_version, v ? 0x0304 : 0x0303);
    if (!info.ktls_tx || !info.ktls_rx)
        fail_msg("connection %d (resumed %d): ktls_tx %d ktls_rx %d; want 1, 1", nth, info.resumed,
                 info.ktls_tx, info.ktls_rx);
    tf_close_sync(loop, con.flow, &cl, 15000);
    if (cl.status != TLSFLOW_OK)
        fail_msg("connection %d: close: %s", nth, cl.message);
    tlsflow_free(con.flow);
    if (e) {
        tf_run_until(loop, tf_cond_echo_settled, e, 15000, "the server flow to close");
        if (e->conns[nth].error.code)
            fail_msg("server flow %d: %s", nth, e->conns[nth].message);
    }
    return info.resumed;
}

static void resumes(int port, int v, tlsflow_loop *loop, tf_echo *e, long contexts)
{
    tlsflow_config *cfg = tf_config_ktls(TLSFLOW_CLIENT, prio[v], TLSFLOW_KTLS_REQUIRE);
    tf_tls_stat s0, s1;

    tf_tls_stat_read(&s0);
    if (session(loop, cfg, port, v, 0, e) != 0)
        fail_msg("the first connection says it resumed");
    if (session(loop, cfg, port, v, 1, e) != 1)
        fail_msg("TLS1.%d: the second connection with the same config did not resume", v ? 3 : 2);
    if (e) {
        assert_int_equal(e->accepted, 2);
        assert_int_equal(e->conns[0].info.resumed, 0);
        assert_int_equal(e->conns[1].info.resumed, 1);
    }
    tf_tls_stat_read(&s1);
    tf_tls_stat_expect(&s0, &s1, "TlsTxSw", contexts, contexts);
    tf_tls_stat_expect(&s0, &s1, "TlsRxSw", contexts, contexts);
    tf_tls_stat_expect(&s0, &s1, "TlsDecryptError", 0, 0);
    tlsflow_config_free(cfg);
}

TF_TEST(client_tlsflow_server, 60)
{
    int v = (int)(uintptr_t)*state;
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *scfg = tf_config_ktls(TLSFLOW_SERVER, prio[v], TLSFLOW_KTLS_REQUIRE);
    tf_echo e;

    tf_echo_listen(&e, loop, scfg);
    resumes(e.port, v, loop, &e, 4);   /* two connections, both ends in the kernel */
    tf_echo_close(&e);
    tlsflow_loop_free(loop);
    tlsflow_config_free(scfg);
}

TF_TEST(client_gnutls_serv, 60)
{
    int v = (int)(uintptr_t)*state;
    tlsflow_loop *loop = tf_loop_new();
    int port;

    tf_start_gnutls_echo(&port, TF_ECDSA_CERT, TF_ECDSA_KEY, prio[v], NULL);
    resumes(port, v, loop, NULL, 2);
    tlsflow_loop_free(loop);
}

int main(void)
{
    struct CMUnitTest tests[4];
    int n = 0, pre = tf_kernel_prelude();

    if (pre)
        return pre;
    tf_require_bins("gnutls-serv", NULL);
    for (int v = 1; v >= 0; v--) {
        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(
            client_tlsflow_server, tf_name("client_tlsflow_server_tls1%d", v ? 3 : 2),
            (void *)(uintptr_t)v);
        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(
            client_gnutls_serv, tf_name("client_gnutls_serv_tls1%d", v ? 3 : 2), (void *)(uintptr_t)v);
    }
    return _cmocka_run_group_tests("kernel_resume", tests, (size_t)n, NULL, NULL);
}
