/* tlsflow with both keys in the kernel (KTLS_REQUIRE) against userspace peers,
 * TLS 1.2 and 1.3, byte-exact bulk both ways, closed from each side:
 *   tlsflow client -> gnutls-serv --echo, socat OPENSSL-LISTEN (EXEC:cat, and
 *                     EXEC:head -c N, which makes the server close first)
 *   tlsflow server <- gnutls-cli, openssl s_client (client or server closes)
 * /proc/net/tls_stat: exactly one TX and one RX software context per case (the
 * peers stay in userspace), live during the transfer and gone after. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tf_test.h"

#define BULK (256u << 10)

static const char *const prio[] = {
    "NORMAL:-VERS-ALL:+VERS-TLS1.2",
    "NORMAL:-VERS-ALL:+VERS-TLS1.3",
};
static const char *const ossl_ver[] = { "TLS1.2", "TLS1.3" };

struct param {
    const char *name;
    int v;        /* 0: TLS 1.2, 1: TLS 1.3 */
};

static const struct param params[] = { { "tls12", 0 }, { "tls13", 1 } };

static void expect_contexts(const tf_tls_stat *base, const tf_tls_stat *now, long live, const char *when)
{
    long tx = tf_tls_stat_delta(base, now, "TlsCurrTxSw"), rx = tf_tls_stat_delta(base, now, "TlsCurrRxSw");

    if (tx != live || rx != live)
        fail_msg("%s: TlsCurrTxSw %+ld, TlsCurrRxSw %+ld; want %+ld each", when, tx, rx, live);
}

static void expect_totals(const tf_tls_stat *base, const tf_tls_stat *now)
{
    tf_tls_stat_expect(base, now, "TlsTxSw", 1, 1);
    tf_tls_stat_expect(base, now, "TlsRxSw", 1, 1);
    tf_tls_stat_expect(base, now, "TlsDecryptError", 0, 0);
}

/* ---- tlsflow client ---- */

static void client_run(int port, int v, bool server_closes)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_config_ktls(TLSFLOW_CLIENT, prio[v], TLSFLOW_KTLS_REQUIRE);
    tf_done con, rd, cl = { 0 };
    tf_xfer x;
    tlsflow_info info;
    tf_tls_stat s0, s1, s2;

    tf_tls_stat_read(&s0);
    if (tf_connect_sync(loop, cfg, "localhost", port, &con, 15000))
        fail_msg("connect: %s", con.message);
    tf_xfer_start(&x, con.flow, BULK, BULK, 0x5eed + (uint64_t)v, TF_DATA_TEXT);
    tf_run_until(loop, tf_xfer_cond, &x, 30000, "the echo");
    if (x.failed)
        fail_msg("transfer: %s", x.message);
    assert_int_equal(x.received, BULK);
    assert_int_equal(tlsflow_get_info(con.flow, &info), 0);
    assert_int_equal(info.tls_version, v ? 0x0304 : 0x0303);
    if (!info.ktls_tx || !info.ktls_rx)
        fail_msg("after the transfer: ktls_tx %d ktls_rx %d; want 1, 1", info.ktls_tx, info.ktls_rx);
    tf_tls_stat_read(&s1);
    expect_contexts(&s0, &s1, 1, "during the flow");
    if (server_closes) {
        tf_read_sync(loop, con.flow, &rd, 15000);
        if (rd.status != TLSFLOW_EOF)
            fail_msg("after the server closed: status %d (%s); want EOF", rd.status, rd.message);
    }
    tf_close_sync(loop, con.flow, &cl, 15000);
    if (cl.status != TLSFLOW_OK)
        fail_msg("close: status %d: %s", cl.status, cl.message);
    tlsflow_free(con.flow);
    tf_xfer_release(&x);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    tf_tls_stat_read(&s2);
    expect_totals(&s0, &s2);
    expect_contexts(&s0, &s2, 0, "after the flow was freed");
}

TF_TEST(client_gnutls_serv, 60)
{
    const struct param *p = *state;
    int port;

    tf_start_gnutls_echo(&port, TF_ECDSA_CERT, TF_ECDSA_KEY, prio[p->v], NULL);
    client_run(port, p->v, false);
}

TF_TEST(client_socat_cat, 60)
{
    const struct param *p = *state;
    int port;

    tf_start_socat_server(&port, TF_ECDSA_CERT, TF_ECDSA_KEY,
                          tf_fmt(",min-version=%s,max-version=%s", ossl_ver[p->v], ossl_ver[p->v]),
                          NULL);
    client_run(port, p->v, false);
}

/* head exits after BULK bytes: socat sends close_notify and closes first. */
TF_TEST(client_socat_server_closes, 60)
{
    const struct param *p = *state;
    int port;

    tf_start_socat_server(&port, TF_ECDSA_CERT, TF_ECDSA_KEY,
                          tf_fmt(",min-version=%s,max-version=%s", ossl_ver[p->v], ossl_ver[p->v]),
                          tf_fmt("head -c %u", BULK));
    client_run(port, p->v, true);
}

/* ---- tlsflow server ---- */

struct srv {
    tlsflow_loop   *loop;
    tlsflow_config *cfg;
    tf_echo         e;
    int             saw_tx, saw_rx;     /* ktls_* seen on the live flow */
    tf_tls_stat     base, live;
    bool            live_read;
    tf_pump        *pump;
};

static bool srv_cond(void *arg)
{
    struct srv *s = arg;
    tf_echo_conn *c = &s->e.conns[0];
    tlsflow_info info;

    if (s->e.accepted && !c->freed && c->echoed >= BULK / 2 &&
        tlsflow_get_info(c->flow, &info) == 0) {
        s->saw_tx |= info.ktls_tx;
        s->saw_rx |= info.ktls_rx;
        if (!s->live_read) {
            tf_tls_stat_read(&s->live);
            s->live_read = true;
        }
    }
    return tf_cond_echo_settled(&s->e);
}

static bool pump_done(void *arg)
{
    struct srv *s = arg;

    srv_cond(s);
    return tf_pump_done(s->pump) || s->e.failed;
}

static tf_peer *start_client(int port, int v, bool openssl)
{
    tf_args a = { .n = 0 };

    if (openssl) {
        tf_args_add(&a, "openssl", "s_client", "-quiet", "-no_ign_eof", "-nocommands", "-CAfile", TF_CA,
                    "-servername", "localhost", "-connect", tf_fmt("127.0.0.1:%d", port),
                    v ? "-tls1_3" : "-tls1_2", NULL);
    } else {
        tf_args_add(&a, "gnutls-cli", "--x509cafile", TF_CA, "-p", tf_fmt("%d", port),
                    "--priority", prio[v], "--logfile", "/dev/stderr", "localhost", NULL);
    }
    return tf_peer_startv(TF_PEER_STDIN | TF_PEER_STDOUT, a.v);
}

static void server_run(int v, bool openssl, bool server_closes)
{
    struct srv s;
    tf_peer *cli;
    tf_pump_result pr;

    memset(&s, 0, sizeof(s));
    s.loop = tf_loop_new();
    s.cfg = tf_config_ktls(TLSFLOW_SERVER, prio[v], TLSFLOW_KTLS_REQUIRE);
    tf_tls_stat_read(&s.base);
    tf_echo_listen(&s.e, s.loop, s.cfg);
    if (server_closes)
        s.e.close_after = BULK;
    cli = start_client(s.e.port, v, openssl);
    /* Until everything came back, then the client's stdin ends: it closes. */
    s.pump = tf_peer_pump(cli, BULK, 0xc0de + (uint64_t)v, TF_DATA_TEXT,
                          server_closes ? TF_PUMP_TO_EOF : 0);
    tf_run_until(s.loop, pump_done, &s, 30000, "the echo back at the client");
    /* The pump holds a copy of the client's stdin: finishing it closes that. */
    tf_pump_finish(s.pump, &pr);
    if (!server_closes)
        tf_peer_close_stdin(cli);
    tf_run_until(s.loop, srv_cond, &s, 15000, "the server flow to close");
    if (s.e.failed)
        fail_msg("handshake: %s", s.e.accept_message);
    if (s.e.conns[0].error.code)
        fail_msg("server flow: %s", s.e.conns[0].message);
    if (tf_peer_wait(cli, 5000) < 0)
        fail_msg("%s did not exit", openssl ? "s_client" : "gnutls-cli");
    if (pr.mismatch)
        fail_msg("echo differs at byte %llu", (unsigned long long)pr.bad_offset);
    assert_int_equal(pr.received, BULK);
    assert_int_equal(s.e.conns[0].echoed, BULK);
    assert_int_equal(s.e.conns[0].info.tls_version, v ? 0x0304 : 0x0303);
    if (!s.saw_tx || !s.saw_rx)
        fail_msg("server flow: ktls_tx %d ktls_rx %d during the transfer; want 1, 1", s.saw_tx,
                 s.saw_rx);
    if (!s.live_read)
        fail_msg("no tls_stat snapshot during the transfer");
    expect_contexts(&s.base, &s.live, 1, "during the flow");
    tf_echo_close(&s.e);
    tlsflow_loop_free(s.loop);
    tlsflow_config_free(s.cfg);
    {
        tf_tls_stat after;

        tf_tls_stat_read(&after);
        expect_totals(&s.base, &after);
        expect_contexts(&s.base, &after, 0, "after the flow was freed");
    }
}

TF_TEST(server_gnutls_cli_client_closes, 60)
{
    server_run(((const struct param *)*state)->v, false, false);
}

TF_TEST(server_gnutls_cli_server_closes, 60)
{
    server_run(((const struct param *)*state)->v, false, true);
}

TF_TEST(server_s_client_client_closes, 60)
{
    server_run(((const struct param *)*state)->v, true, false);
}

TF_TEST(server_s_client_server_closes, 60)
{
    server_run(((const struct param *)*state)->v, true, true);
}

int main(void)
{
    struct CMUnitTest tests[2 * 7];
    int n = 0, pre = tf_kernel_prelude();

    if (pre)
        return pre;
    tf_require_bins("gnutls-serv", "gnutls-cli", "openssl", "socat", NULL);
    for (int i = 0; i < 2; i++) {
        const struct param *p = &params[i];

        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(client_gnutls_serv, tf_name("client_gnutls_serv_%s", p->name), p);
        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(client_socat_cat, tf_name("client_socat_cat_%s", p->name), p);
        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(client_socat_server_closes, tf_name("client_socat_server_closes_%s", p->name), p);
        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(server_gnutls_cli_client_closes, tf_name("server_gnutls_cli_client_closes_%s", p->name), p);
        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(server_gnutls_cli_server_closes, tf_name("server_gnutls_cli_server_closes_%s", p->name), p);
        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(server_s_client_client_closes, tf_name("server_s_client_client_closes_%s", p->name), p);
        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(server_s_client_server_closes, tf_name("server_s_client_server_closes_%s", p->name), p);
    }
    return _cmocka_run_group_tests("kernel_peers", tests, (size_t)n, NULL, NULL);
}
