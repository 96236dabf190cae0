/* The version x cipher matrix against real peers, with megabytes of data
 * checked byte for byte both ways and a clean close:
 *   tlsflow client -> gnutls-serv --echo, socat (OpenSSL) echo
 *   tlsflow server <- gnutls-cli, socat (OpenSSL), openssl s_client
 * Each side is forced to the suite, and tlsflow_get_info must say so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "tf_test.h"

#define LEN (4u << 20)

/* RSA for TLS 1.2 suites, ECDSA for TLS 1.3, so both key types run. */
static const char *cert_for(const tf_suite *s)
{
    return s->version == 0x0303 ? TF_RSA_CERT : TF_ECDSA_CERT;
}

static const char *key_for(const tf_suite *s)
{
    return s->version == 0x0303 ? TF_RSA_KEY : TF_ECDSA_KEY;
}

static void check_info(const tf_suite *s, const tlsflow_info *info)
{
    if (info->tls_version != s->version || !info->cipher || strcmp(info->cipher, s->cipher))
        fail_msg("%s: tlsflow_get_info says version 0x%04x cipher %s", s->name, info->tls_version,
                 info->cipher ? info->cipher : "(null)");
}

/* ---- tlsflow client against echo servers ---- */

static bool both_done(void *arg)
{
    tf_done *d = arg;

    return d[0].n && d[1].n;
}

static void client_echo(const tf_suite *s, int port, unsigned kind)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_client_config(s->priority, TF_CA);
    tf_done con, fin[2] = { { 0 } };   /* read, close */
    tlsflow_info info;
    tf_xfer x;

    if (tf_connect_sync(loop, cfg, "localhost", port, &con, 10000))
        fail_msg("%s: connect: %s", s->name, con.message);
    assert_int_equal(tlsflow_get_info(con.flow, &info), 0);
    check_info(s, &info);

    tf_xfer_start(&x, con.flow, LEN, LEN, 0x5eed, kind);
    tf_run_until(loop, tf_xfer_cond, &x, 30000, "the echo of 4 MiB");
    if (x.failed || x.received != LEN)
        fail_msg("%s: echo: %s (sent %zu, got back %zu)", s->name,
                 x.failed ? x.message : "EOF too early", x.written, x.received);
    tf_xfer_release(&x);

    /* Close from this end: the peer answers with close_notify, the read sees EOF. */
    assert_int_equal(tlsflow_read(con.flow, tf_on_done, &fin[0]), 0);
    assert_int_equal(tlsflow_close(con.flow, tf_on_done, &fin[1]), 0);
    tf_run_until(loop, both_done, fin, 10000, "the close");
    if (fin[0].status != TLSFLOW_EOF)
        fail_msg("%s: read after close: status %d %s", s->name, fin[0].status, fin[0].message);
    if (fin[1].status != TLSFLOW_OK)
        fail_msg("%s: close: %s", s->name, fin[1].message);
    tlsflow_free(con.flow);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

TF_TEST(client_gnutls_serv, 60)
{
    const tf_suite *s = *state;
    int port;

    tf_start_gnutls_echo(&port, cert_for(s), key_for(s), s->priority, NULL);
    client_echo(s, port, TF_DATA_TEXT);
}

static const char *socat_opts(const tf_suite *s)
{
    if (s->version == 0x0303)
        return tf_fmt(",min-version=%s,max-version=%s,cipher=%s", s->ossl_ver, s->ossl_ver, s->ossl);
    return tf_fmt(",min-version=%s,max-version=%s", s->ossl_ver, s->ossl_ver);
}

TF_TEST(client_socat, 60)
{
    const tf_suite *s = *state;
    int port;

    tf_start_socat_server(&port, cert_for(s), key_for(s), socat_opts(s), NULL);
    client_echo(s, port, TF_DATA_BINARY);
}

/* ---- tlsflow server, echoing, against clients fed through stdin/stdout ---- */

struct srv {
    tlsflow_loop   *loop;
    tlsflow_config *cfg;
    tf_echo         e;
    tf_pump        *pump;
};

static void srv_begin(struct srv *r, const tf_suite *s, size_t close_after)
{
    r->loop = tf_loop_new();
    r->cfg = tf_server_config(cert_for(s), key_for(s), s->priority);
    tf_echo_listen(&r->e, r->loop, r->cfg);
    r->e.close_after = close_after;
}

static bool srv_settled(void *arg)
{
    struct srv *r = arg;

    if (r->e.failed)
        return true;
    return tf_pump_done(r->pump) && r->e.accepted && r->e.conns[0].freed;
}

/* Runs until the client got everything back and the flow closed. */
static void srv_finish(struct srv *r, const tf_suite *s, tf_peer *client, bool expect_eof)
{
    tf_echo_conn *c = &r->e.conns[0];
    tf_pump_result pr;
    int st;

    tf_run_until(r->loop, srv_settled, r, 30000, "the echo and the close");
    if (r->e.failed)
        fail_msg("%s: handshake failed: %s", s->name, r->e.accept_message);
    if (c->error.code)
        fail_msg("%s: server flow: %s", s->name, c->message);
    check_info(s, &c->info);
    st = tf_peer_wait(client, 10000);
    tf_pump_finish(r->pump, &pr);
    if (pr.mismatch)
        fail_msg("%s: byte %llu came back wrong", s->name, (unsigned long long)pr.bad_offset);
    if (pr.written != LEN || pr.received != LEN)
        fail_msg("%s: wrote %zu, got back %zu of %u", s->name, pr.written, pr.received, LEN);
    assert_int_equal(c->echoed, LEN);
    if (expect_eof)
        assert_true(c->eof);   /* the client's close_notify */
    assert_true(c->closed);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s: the client did not exit cleanly (status %d)", s->name, st);
    tf_echo_close(&r->e);
    tlsflow_loop_free(r->loop);
    tlsflow_config_free(r->cfg);
}

TF_TEST(server_gnutls_cli, 60)
{
    const tf_suite *s = *state;
    struct srv r;
    tf_peer *cli;

    srv_begin(&r, s, 0);
    /* gnutls-cli sends close_notify at the end of stdin; the log keeps its
     * chatter out of stdout. */
    cli = tf_peer_start(TF_PEER_STDIN | TF_PEER_STDOUT, "gnutls-cli", "--x509cafile", TF_CA,
                        "--priority", s->priority, "-p", tf_fmt("%d", r.e.port),
                        "--logfile", "/dev/stderr", "localhost", NULL);
    r.pump = tf_peer_pump(cli, LEN, 0xfeed, TF_DATA_BINARY, TF_PUMP_CLOSE | TF_PUMP_TO_EOF);
    srv_finish(&r, s, cli, true);
}

TF_TEST(server_socat, 60)
{
    const tf_suite *s = *state;
    struct srv r;
    tf_peer *cli;

    srv_begin(&r, s, 0);
    cli = tf_peer_start(TF_PEER_STDIN | TF_PEER_STDOUT, "socat", "-d", "-t", "10", "-",
                        tf_fmt("OPENSSL:localhost:%d,cafile=%s%s", r.e.port, TF_CA, socat_opts(s)),
                        NULL);
    r.pump = tf_peer_pump(cli, LEN, 0xbeef, TF_DATA_BINARY, TF_PUMP_CLOSE | TF_PUMP_TO_EOF);
    srv_finish(&r, s, cli, true);
}

TF_TEST(server_s_client, 60)
{
    const tf_suite *s = *state;
    bool v12 = s->version == 0x0303;
    struct srv r;
    tf_peer *cli;

    /* s_client -quiet ignores the end of stdin: the server closes once it
     * echoed everything, and s_client exits at the close_notify. */
    srv_begin(&r, s, LEN);
    cli = tf_peer_start(TF_PEER_STDIN | TF_PEER_STDOUT, "openssl", "s_client", "-quiet",
                        "-connect", tf_fmt("127.0.0.1:%d", r.e.port), "-servername", "localhost",
                        "-verify_hostname", "localhost", "-CAfile", TF_CA, "-verify_return_error",
                        v12 ? "-tls1_2" : "-tls1_3", v12 ? "-cipher" : "-ciphersuites", s->ossl,
                        NULL);
    r.pump = tf_peer_pump(cli, LEN, 0xcafe, TF_DATA_BINARY, TF_PUMP_CLOSE | TF_PUMP_TO_EOF);
    srv_finish(&r, s, cli, false);
}

int main(void)
{
    static void (*const fns[])(void **) = { client_gnutls_serv, client_socat, server_gnutls_cli,
                                            server_socat, server_s_client };
    static const char *const names[] = { "client_gnutls_serv", "client_socat", "server_gnutls_cli",
                                         "server_socat", "server_s_client" };
    struct CMUnitTest tests[5 * TF_NSUITES];
    char label[5 * TF_NSUITES][80];
    size_t n = 0;

    tf_require_bins("gnutls-serv", "gnutls-cli", "openssl", "socat", NULL);
    for (size_t f = 0; f < 5; f++)
        for (size_t i = 0; i < TF_NSUITES; i++, n++) {
            snprintf(label[n], sizeof(label[n]), "%s/%s", names[f], tf_suites[i].name);
            tests[n] = (struct CMUnitTest)TF_CASE_WITH(fns[f], label[n], &tf_suites[i]);
        }
    return _cmocka_run_group_tests("interop_suites", tests, n, NULL, NULL);
}
