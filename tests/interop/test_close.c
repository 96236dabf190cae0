/* Ends of a flow against real peers: close started from either end, and
 * truncation (the transport ends without close_notify), which must read as
 * TLSFLOW_E_TRUNCATED and never as EOF. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "tf_test.h"

#define LINES (64 * 16)   /* 16 lines of TF_DATA_TEXT */

struct client {
    tlsflow_loop   *loop;
    tlsflow_config *cfg;
    tlsflow        *flow;
};

static void client_open(struct client *c, int port)
{
    tf_done con;

    c->loop = tf_loop_new();
    c->cfg = tf_client_config(NULL, TF_CA);
    if (tf_connect_sync(c->loop, c->cfg, "localhost", port, &con, 10000))
        fail_msg("connect: %s", con.message);
    c->flow = con.flow;
}

static void client_free(struct client *c)
{
    if (c->flow)
        tlsflow_free(c->flow);
    tlsflow_loop_free(c->loop);
    tlsflow_config_free(c->cfg);
}

/* Some lines there and back, so the session is surely up both ways. */
static void client_ping(struct client *c)
{
    tf_xfer x;

    tf_xfer_start(&x, c->flow, LINES, LINES, 1, TF_DATA_TEXT);
    tf_run_until(c->loop, tf_xfer_cond, &x, 10000, "the ping");
    if (x.failed || x.received != LINES)
        fail_msg("ping: %s", x.failed ? x.message : "EOF");
    tf_xfer_release(&x);
}

static bool called(void *arg)
{
    return ((tf_done *)arg)->n > 0;
}

static void expect_truncated(const tf_done *d, const char *what)
{
    if (d->status == TLSFLOW_EOF)
        fail_msg("%s: EOF, but no close_notify was sent", what);
    if (d->status != TLSFLOW_ERROR || d->error.code != TLSFLOW_E_TRUNCATED)
        fail_msg("%s: status %d, code %d (%s); want TLSFLOW_E_TRUNCATED", what, d->status,
                 d->error.code, d->message);
    assert_non_null(strstr(d->message, "close_notify"));
}

/* ---- Close started here ---- */

TF_TEST(client_closes_first_socat, 30)
{
    struct client c;
    tf_done rd = { 0 }, cl = { 0 }, wr = { 0 };
    int port, ret;

    tf_start_socat_server(&port, TF_ECDSA_CERT, TF_ECDSA_KEY, NULL, NULL);
    client_open(&c, port);
    client_ping(&c);
    assert_int_equal(tlsflow_read(c.flow, tf_on_done, &rd), 0);
    assert_int_equal(tlsflow_close(c.flow, tf_on_done, &cl), 0);
    /* Writing after close: refused, or completes with E_CLOSED; never sent. */
    ret = tlsflow_write(c.flow, "late", 4, tf_on_done, &wr);
    tf_run_until(c.loop, called, &cl, 10000, "the close");
    tf_run_until(c.loop, called, &rd, 10000, "the read after close");
    assert_int_equal(cl.status, TLSFLOW_OK);
    if (rd.status != TLSFLOW_EOF)
        fail_msg("read after close: status %d %s; want EOF (socat answers close_notify)",
                 rd.status, rd.message);
    if (ret == 0) {
        tf_run_until(c.loop, called, &wr, 5000, "the write after close");
        if (wr.status != TLSFLOW_ERROR || wr.error.code != TLSFLOW_E_CLOSED)
            fail_msg("write after close: status %d code %d; want TLSFLOW_E_CLOSED", wr.status,
                     wr.error.code);
    }
    client_free(&c);
}

/* ---- Close started by the peer ---- */

TF_TEST(socat_closes_first, 30)
{
    struct client c;
    tf_done rd = { 0 }, cl = { 0 };
    int port;

    /* head exits after the lines; socat then ends the TLS with close_notify. */
    tf_start_socat_server(&port, TF_RSA_CERT, TF_RSA_KEY, NULL, tf_fmt("head -c %d", LINES));
    client_open(&c, port);
    client_ping(&c);
    assert_int_equal(tlsflow_read(c.flow, tf_on_done, &rd), 0);
    tf_run_until(c.loop, called, &rd, 10000, "the peer's close");
    if (rd.status != TLSFLOW_EOF)
        fail_msg("peer closed with close_notify: status %d %s; want EOF", rd.status, rd.message);
    assert_int_equal(tlsflow_close(c.flow, tf_on_done, &cl), 0);
    tf_run_until(c.loop, called, &cl, 10000, "the close after EOF");
    if (cl.status != TLSFLOW_OK)
        fail_msg("close after the peer's close_notify: %s", cl.message);
    client_free(&c);
}

TF_TEST(gnutls_cli_closes_first, 30)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_server_config(TF_RSA_CERT, TF_RSA_KEY, NULL);
    tf_echo e;
    tf_peer *cli;
    tf_pump *pump;
    tf_pump_result pr;

    tf_echo_listen(&e, loop, cfg);
    cli = tf_peer_start(TF_PEER_STDIN | TF_PEER_STDOUT, "gnutls-cli", "--x509cafile", TF_CA, "-p",
                        tf_fmt("%d", e.port), "--logfile", "/dev/stderr", "localhost", NULL);
    pump = tf_peer_pump(cli, LINES, 3, TF_DATA_TEXT, TF_PUMP_CLOSE | TF_PUMP_TO_EOF);
    tf_run_until(loop, tf_cond_echo_settled, &e, 10000, "the client's close");
    tf_pump_finish(pump, &pr);
    assert_false(pr.mismatch);
    assert_int_equal(pr.received, LINES);
    if (e.failed || e.conns[0].error.code)
        fail_msg("server: %s%s", e.accept_message, e.conns[0].message);
    assert_true(e.conns[0].eof);
    assert_true(e.conns[0].closed);
    assert_true(WIFEXITED(tf_peer_wait(cli, 5000)));
    tf_echo_close(&e);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

TF_TEST(server_closes_first_gnutls_cli, 30)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, NULL);
    tf_echo e;
    tf_peer *cli;
    tf_pump *pump;
    tf_pump_result pr;
    int st;

    tf_echo_listen(&e, loop, cfg);
    e.close_after = LINES;
    /* stdin stays open: only the server's close_notify ends gnutls-cli. */
    cli = tf_peer_start(TF_PEER_STDIN | TF_PEER_STDOUT, "gnutls-cli", "--x509cafile", TF_CA, "-p",
                        tf_fmt("%d", e.port), "--logfile", "/dev/stderr", "localhost", NULL);
    pump = tf_peer_pump(cli, LINES, 4, TF_DATA_TEXT, TF_PUMP_TO_EOF);
    tf_run_until(loop, tf_cond_echo_settled, &e, 10000, "the close");
    if (e.failed || e.conns[0].error.code)
        fail_msg("server: %s%s", e.accept_message, e.conns[0].message);
    assert_true(e.conns[0].closed);
    st = tf_peer_wait(cli, 5000);
    tf_peer_close_stdin(cli);
    tf_pump_finish(pump, &pr);
    assert_int_equal(pr.received, LINES);
    assert_true(pr.eof);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
        fail_msg("gnutls-cli did not exit cleanly on close_notify (status %d)", st);
    assert_true(tf_peer_log_contains(cli, "Peer has closed the GnuTLS connection"));
    tf_echo_close(&e);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

/* ---- Truncation: peers killed ---- */

static void client_peer_killed(tf_peer *srv, int port)
{
    struct client c;
    tf_done rd = { 0 };

    client_open(&c, port);
    client_ping(&c);
    assert_int_equal(tlsflow_read(c.flow, tf_on_done, &rd), 0);
    tf_run_for(c.loop, 50);
    assert_int_equal(rd.n, 0);
    tf_peer_kill(srv, SIGKILL);
    tf_run_until(c.loop, called, &rd, 10000, "the read after the peer died");
    expect_truncated(&rd, "server killed");
    client_free(&c);
}

TF_TEST(truncated_gnutls_serv_killed, 30)
{
    int port;
    tf_peer *srv = tf_start_gnutls_echo(&port, TF_RSA_CERT, TF_RSA_KEY, NULL, NULL);

    client_peer_killed(srv, port);
}

TF_TEST(truncated_socat_killed, 30)
{
    int port;
    tf_peer *srv = tf_start_socat_server(&port, TF_ECDSA_CERT, TF_ECDSA_KEY, NULL, NULL);

    client_peer_killed(srv, port);
}

static void server_peer_killed(const char *const *argv)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, NULL);
    tf_echo e;
    tf_peer *cli;
    tf_pump *pump;
    tf_args a = { .n = 0 };

    tf_echo_listen(&e, loop, cfg);
    for (; *argv; argv++)
        tf_args_add(&a, !strcmp(*argv, "PORT")       ? tf_fmt("%d", e.port)
                        : !strcmp(*argv, "HOSTPORT") ? tf_fmt("127.0.0.1:%d", e.port)
                                                     : *argv, NULL);
    cli = tf_peer_startv(TF_PEER_STDIN | TF_PEER_STDOUT, a.v);
    pump = tf_peer_pump(cli, LINES, 5, TF_DATA_TEXT, 0);
    while (!tf_pump_done(pump))
        tf_run_for(loop, 10);   /* the alarm bounds this */
    tf_peer_kill(cli, SIGKILL);
    tf_run_until(loop, tf_cond_echo_settled, &e, 10000, "the server's read after the client died");
    tf_pump_finish(pump, NULL);
    if (e.failed)
        fail_msg("handshake: %s", e.accept_message);
    if (e.conns[0].eof)
        fail_msg("client killed: EOF, but no close_notify was sent");
    if (e.conns[0].error.code != TLSFLOW_E_TRUNCATED)
        fail_msg("client killed: code %d (%s); want TLSFLOW_E_TRUNCATED", e.conns[0].error.code,
                 e.conns[0].message);
    tf_echo_close(&e);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

TF_TEST(truncated_gnutls_cli_killed, 30)
{
    static const char *const argv[] = { "gnutls-cli", "--x509cafile", TF_CA, "-p", "PORT",
                                        "--logfile", "/dev/stderr", "localhost", NULL };
    server_peer_killed(argv);
}

TF_TEST(truncated_s_client_killed, 30)
{
    static const char *const argv[] = { "openssl", "s_client", "-quiet", "-CAfile", TF_CA,
                                        "-servername", "localhost", "-connect", "HOSTPORT", NULL };
    server_peer_killed(argv);
}

/* ---- Truncation: a relay cuts the stream ---- */

static void relay_cut(bool reset)
{
    int sport, rport;
    tf_relay *r;
    struct client c;
    tf_xfer x;

    tf_start_gnutls_echo(&sport, TF_RSA_CERT, TF_RSA_KEY, NULL, NULL);
    r = tf_relay_start(sport, &rport);
    assert_non_null(r);
    client_open(&c, rport);
    client_ping(&c);
    /* 10 bytes of the next server record get through: a header and a little. */
    tf_relay_cut(r, 10, reset);
    tf_xfer_start(&x, c.flow, 1u << 20, 1u << 20, 6, TF_DATA_TEXT);
    tf_run_until(c.loop, tf_xfer_cond, &x, 10000, "the cut");
    if (x.eof)
        fail_msg("cut mid-record%s: EOF, but no close_notify was sent", reset ? " by RST" : "");
    if (!x.failed)
        fail_msg("cut mid-record: all %zu bytes came back", x.received);
    if (reset) {
        /* A reset is no close_notify either; ECONNRESET as a system error is fair too. */
        if (x.error.code != TLSFLOW_E_TRUNCATED &&
            !(x.error.code == TLSFLOW_E_SYSTEM && x.error.detail == ECONNRESET))
            fail_msg("reset mid-record: %s (code %d); want TRUNCATED or ECONNRESET", x.message,
                     x.error.code);
    } else if (x.error.code != TLSFLOW_E_TRUNCATED) {
        fail_msg("FIN mid-record: %s (code %d); want TLSFLOW_E_TRUNCATED", x.message, x.error.code);
    }
    tf_xfer_release(&x);
    client_free(&c);
    tf_relay_stop(r);
}

TF_TEST(truncated_mid_record_fin, 30)
{
    relay_cut(false);
}

TF_TEST(truncated_mid_record_reset, 30)
{
    relay_cut(true);
}

/* ---- Truncation in the handshake: a raw TCP server ---- */

struct raw {
    int lfd, fd;
};

static bool raw_accepted(void *arg)
{
    struct raw *r = arg;
    struct pollfd p = { r->lfd, POLLIN, 0 };

    if (poll(&p, 1, 0) == 1)
        r->fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
    return r->fd >= 0;
}

TF_TEST(truncated_handshake_client, 30)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_client_config(NULL, TF_CA);
    struct raw r = { -1, -1 };
    tf_done con = { 0 };
    unsigned char hello[16384 + 5];
    size_t want;
    int port;

    r.lfd = tf_tcp_listen(&port);
    assert_true(r.lfd >= 0);
    assert_int_equal(tlsflow_connect(loop, cfg, "localhost", tf_fmt("%d", port), tf_on_done, &con), 0);
    tf_run_until(loop, raw_accepted, &r, 5000, "the connection");
    /* Take the whole ClientHello (unread bytes would make close() send an
     * RST), then hang up with a FIN. */
    tf_run_for(loop, 50);
    assert_int_equal(recv(r.fd, hello, 5, MSG_WAITALL), 5);
    assert_int_equal(hello[0], 0x16);
    want = ((size_t)hello[3] << 8) | hello[4];
    assert_true(want <= sizeof(hello));
    assert_int_equal(recv(r.fd, hello, want, MSG_WAITALL), (ssize_t)want);
    close(r.fd);
    tf_run_until(loop, called, &con, 10000, "the failed handshake");
    assert_null(con.flow);
    expect_truncated(&con, "TCP closed in the handshake");
    close(r.lfd);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

static bool echo_failed(void *arg)
{
    return ((tf_echo *)arg)->failed > 0;
}

TF_TEST(truncated_handshake_server, 30)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *scfg = tf_server_config(TF_RSA_CERT, TF_RSA_KEY, NULL);
    tlsflow_config *ccfg = tf_client_config(NULL, TF_CA);
    static const char partial[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    tf_echo e;
    tf_done con;
    int fd;

    tf_echo_listen(&e, loop, scfg);
    fd = tf_tcp_connect(e.port);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, partial, sizeof(partial) - 1), (ssize_t)sizeof(partial) - 1);
    tf_run_for(loop, 50);
    close(fd);
    tf_run_until(loop, echo_failed, &e, 10000, "the server to report the cut handshake");
    assert_int_equal(e.accepted, 0);
    if (e.accept_error.code != TLSFLOW_E_TRUNCATED)
        fail_msg("cut ClientHello: code %d (%s); want TLSFLOW_E_TRUNCATED", e.accept_error.code,
                 e.accept_message);
    /* The listener goes on. */
    if (tf_connect_sync(loop, ccfg, "localhost", e.port, &con, 10000))
        fail_msg("connect after the cut handshake: %s", con.message);
    tlsflow_free(con.flow);
    tf_echo_close(&e);
    tlsflow_loop_free(loop);
    tlsflow_config_free(ccfg);
    tlsflow_config_free(scfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(client_closes_first_socat),
        TF_CASE(socat_closes_first),
        TF_CASE(gnutls_cli_closes_first),
        TF_CASE(server_closes_first_gnutls_cli),
        TF_CASE(truncated_gnutls_serv_killed),
        TF_CASE(truncated_socat_killed),
        TF_CASE(truncated_gnutls_cli_killed),
        TF_CASE(truncated_s_client_killed),
        TF_CASE(truncated_mid_record_fin),
        TF_CASE(truncated_mid_record_reset),
        TF_CASE(truncated_handshake_client),
        TF_CASE(truncated_handshake_server),
    };

    tf_require_bins("gnutls-serv", "gnutls-cli", "openssl", "socat", NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
