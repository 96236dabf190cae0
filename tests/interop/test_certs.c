/* Certificates against real peers: the tlsflow client rejects untrusted,
 * expired and wrong-host server certificates, each with its own reason, from
 * GnuTLS and OpenSSL servers alike; names and IP addresses verify; a tlsflow
 * server that requires client certificates takes gnutls-cli's and openssl
 * s_client's, and refuses clients without one or with a foreign one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "tf_test.h"

enum server_kind { GNUTLS_SERV, SOCAT };

struct bad_cert {
    const char *label, *cert, *key;
    unsigned    status;     /* the GnuTLS verify bit that must be set */
    const char *words;      /* in the message */
};

static const char *const reasons[] = { "issuer is unknown", "expired", "does not match" };

static const struct bad_cert bad_certs[] = {
    { "untrusted", TF_UNTRUSTED_CERT, TF_UNTRUSTED_KEY, GNUTLS_CERT_SIGNER_NOT_FOUND, "issuer is unknown" },
    { "expired", TF_EXPIRED_CERT, TF_EXPIRED_KEY, GNUTLS_CERT_EXPIRED, "expired" },
    { "wronghost", TF_WRONGHOST_CERT, TF_WRONGHOST_KEY, GNUTLS_CERT_UNEXPECTED_OWNER, "does not match" },
};

static tf_peer *serve(enum server_kind kind, const char *cert, const char *key, int *port)
{
    if (kind == GNUTLS_SERV)
        return tf_start_gnutls_echo(port, cert, key, NULL, NULL);
    return tf_start_socat_server(port, cert, key, NULL, NULL);
}

static void rejects(enum server_kind kind, const struct bad_cert *b)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_client_config(NULL, TF_CA);
    tf_done con;
    int port;

    serve(kind, b->cert, b->key, &port);
    if (tf_connect_sync(loop, cfg, "localhost", port, &con, 10000) == 0)
        fail_msg("%s certificate accepted", b->label);
    if (con.error.code != TLSFLOW_E_CERTIFICATE)
        fail_msg("%s certificate: code %d (%s); want TLSFLOW_E_CERTIFICATE", b->label,
                 con.error.code, con.message);
    if (!((unsigned)con.error.detail & b->status))
        fail_msg("%s certificate: verify status 0x%x lacks 0x%x", b->label,
                 (unsigned)con.error.detail, b->status);
    /* Its own reason, and not the others'. */
    if (!strstr(con.message, b->words))
        fail_msg("%s certificate: message \"%s\" does not say \"%s\"", b->label, con.message,
                 b->words);
    for (size_t i = 0; i < 3; i++)
        if (strcmp(reasons[i], b->words) && strstr(con.message, reasons[i]))
            fail_msg("%s certificate: message \"%s\" also says \"%s\"", b->label, con.message,
                     reasons[i]);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

TF_TEST(client_rejects_gnutls_serv, 30)
{
    rejects(GNUTLS_SERV, *state);
}

TF_TEST(client_rejects_socat, 30)
{
    rejects(SOCAT, *state);
}

/* Connects and pings a line: the certificate was accepted. */
static void accepts(tlsflow_loop *loop, const tlsflow_config *cfg, const char *host, int port)
{
    tf_done con;
    tf_xfer x;

    if (tf_connect_sync(loop, cfg, host, port, &con, 10000))
        fail_msg("connect to %s: %s", host, con.message);
    tf_xfer_start(&x, con.flow, 640, 640, 2, TF_DATA_TEXT);
    tf_run_until(loop, tf_xfer_cond, &x, 10000, "the ping");
    if (x.failed || x.received != 640)
        fail_msg("ping: %s", x.failed ? x.message : "EOF");
    tf_xfer_release(&x);
    tlsflow_free(con.flow);
}

TF_TEST(verify_none_accepts_untrusted, 30)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_client_config(NULL, TF_CA);
    int port;

    assert_int_equal(tlsflow_config_set_verify(cfg, TLSFLOW_VERIFY_NONE), 0);
    tf_start_gnutls_echo(&port, TF_UNTRUSTED_CERT, TF_UNTRUSTED_KEY, NULL, NULL);
    accepts(loop, cfg, "localhost", port);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

TF_TEST(ip_address_verifies, 30)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_client_config(NULL, TF_CA);
    int port;

    /* server-ecdsa.pem names IP:127.0.0.1 */
    tf_start_gnutls_echo(&port, TF_ECDSA_CERT, TF_ECDSA_KEY, NULL, NULL);
    accepts(loop, cfg, "127.0.0.1", port);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

TF_TEST(wronghost_verifies_under_its_name, 30)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_client_config(NULL, TF_CA);
    tf_done con = { 0 };
    tlsflow_info info;
    int port, fd;

    /* The certificate names wrong.example: a flow over a socket we connected,
     * verified against that name, is accepted. */
    tf_start_gnutls_echo(&port, TF_WRONGHOST_CERT, TF_WRONGHOST_KEY, NULL, NULL);
    fd = tf_tcp_connect(port);
    assert_true(fd >= 0);
    assert_int_equal(tlsflow_wrap_fd(loop, cfg, fd, "wrong.example", tf_on_done, &con), 0);
    tf_run_until_flag(loop, &con.n, 10000, "the handshake");
    if (con.status != TLSFLOW_OK)
        fail_msg("wrong.example: %s", con.message);
    assert_int_equal(tlsflow_get_info(con.flow, &info), 0);
    assert_non_null(info.server_name);
    assert_string_equal(info.server_name, "wrong.example");
    tlsflow_free(con.flow);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

/* ---- Client certificates: tlsflow server ---- */

struct auth {
    tlsflow_loop   *loop;
    tlsflow_config *cfg;
    tf_echo         e;
};

static void auth_listen(struct auth *a, tlsflow_verify mode)
{
    a->loop = tf_loop_new();
    a->cfg = tf_server_config(TF_RSA_CERT, TF_RSA_KEY, NULL);
    assert_int_equal(tlsflow_config_set_ca_file(a->cfg, TF_CA), 0);
    assert_int_equal(tlsflow_config_set_verify(a->cfg, mode), 0);
    tf_echo_listen(&a->e, a->loop, a->cfg);
}

static void auth_free(struct auth *a)
{
    tf_echo_close(&a->e);
    tlsflow_loop_free(a->loop);
    tlsflow_config_free(a->cfg);
}

/* gnutls-cli or s_client, with cert/key when given, sending a few lines. */
static tf_peer *auth_client(struct auth *a, bool openssl, const char *cert, const char *key)
{
    tf_args args = { .n = 0 };
    tf_peer *p;

    if (openssl) {
        tf_args_add(&args, "openssl", "s_client", "-quiet", "-CAfile", TF_CA, "-servername",
                    "localhost", "-connect", tf_fmt("127.0.0.1:%d", a->e.port), NULL);
        if (cert)
            tf_args_add(&args, "-cert", cert, "-key", key, NULL);
    } else {
        tf_args_add(&args, "gnutls-cli", "--x509cafile", TF_CA, "-p", tf_fmt("%d", a->e.port),
                    "--logfile", "/dev/stderr", "localhost", NULL);
        if (cert)
            tf_args_add(&args, "--x509certfile", cert, "--x509keyfile", key, NULL);
    }
    p = tf_peer_startv(TF_PEER_STDIN | TF_PEER_STDOUT, args.v);
    a->e.close_after = 640;   /* s_client -quiet waits for the server to close */
    return p;
}

static void client_cert_accepted(bool openssl, tlsflow_verify mode)
{
    struct auth a;
    tf_peer *cli;
    tf_pump *pump;
    tf_pump_result pr;

    auth_listen(&a, mode);
    cli = auth_client(&a, openssl, TF_CLIENT_CERT, TF_CLIENT_KEY);
    pump = tf_peer_pump(cli, 640, 8, TF_DATA_TEXT, TF_PUMP_TO_EOF);
    tf_run_until(a.loop, tf_cond_echo_settled, &a.e, 10000, "the authenticated echo");
    if (a.e.failed)
        fail_msg("client certificate refused: %s", a.e.accept_message);
    if (a.e.conns[0].error.code)
        fail_msg("server flow: %s", a.e.conns[0].message);
    tf_peer_wait(cli, 5000);
    tf_peer_close_stdin(cli);
    tf_pump_finish(pump, &pr);
    assert_int_equal(pr.received, 640);
    assert_false(pr.mismatch);
    auth_free(&a);
}

static void client_cert_refused(bool openssl, const char *cert, const char *key)
{
    struct auth a;
    tf_peer *cli;
    int st;

    auth_listen(&a, TLSFLOW_VERIFY_REQUIRED);
    cli = auth_client(&a, openssl, cert, key);
    tf_run_until(a.loop, tf_cond_echo_settled, &a.e, 10000, "the refused handshake");
    if (!a.e.failed)
        fail_msg("a client %s was accepted", cert ? "with a foreign certificate" : "without a certificate");
    if (a.e.accept_error.code != TLSFLOW_E_CERTIFICATE)
        fail_msg("client %s: code %d (%s); want TLSFLOW_E_CERTIFICATE",
                 cert ? "certificate from another CA" : "without certificate",
                 a.e.accept_error.code, a.e.accept_message);
    if (getenv("TF_VERBOSE"))
        fprintf(stderr, "client %s refused: code %d detail 0x%x: %s\n", cert ? cert : "(none)",
                a.e.accept_error.code, (unsigned)a.e.accept_error.detail, a.e.accept_message);
    if (cert && !strstr(a.e.accept_message, "issuer is unknown"))
        fail_msg("foreign client certificate: message \"%s\" does not say \"issuer is unknown\"",
                 a.e.accept_message);
    /* The client learns it too: it ends with a failure. */
    tf_peer_close_stdin(cli);
    st = tf_peer_wait(cli, 5000);
    if (!openssl && (st < 0 || (WIFEXITED(st) && WEXITSTATUS(st) == 0)))
        fail_msg("gnutls-cli did not fail (status %d)", st);
    auth_free(&a);
}

TF_TEST(client_cert_gnutls_cli_accepted, 30)
{
    client_cert_accepted(false, TLSFLOW_VERIFY_REQUIRED);
}

TF_TEST(client_cert_s_client_accepted, 30)
{
    client_cert_accepted(true, TLSFLOW_VERIFY_REQUIRED);
}

TF_TEST(client_cert_optional_accepted, 30)
{
    client_cert_accepted(false, TLSFLOW_VERIFY_OPTIONAL);
}

TF_TEST(client_cert_missing_gnutls_cli, 30)
{
    client_cert_refused(false, NULL, NULL);
}

TF_TEST(client_cert_missing_s_client, 30)
{
    client_cert_refused(true, NULL, NULL);
}

TF_TEST(client_cert_foreign_gnutls_cli, 30)
{
    client_cert_refused(false, TF_UNTRUSTED_CERT, TF_UNTRUSTED_KEY);
}

TF_TEST(client_cert_optional_without, 30)
{
    struct auth a;
    tf_peer *cli;
    tf_pump *pump;
    tf_pump_result pr;

    /* OPTIONAL asks, and goes on without one. */
    auth_listen(&a, TLSFLOW_VERIFY_OPTIONAL);
    cli = auth_client(&a, false, NULL, NULL);
    pump = tf_peer_pump(cli, 640, 9, TF_DATA_TEXT, TF_PUMP_TO_EOF);
    tf_run_until(a.loop, tf_cond_echo_settled, &a.e, 10000, "the echo");
    if (a.e.failed)
        fail_msg("OPTIONAL refused a client without certificate: code %d detail 0x%x: %s",
                 a.e.accept_error.code, (unsigned)a.e.accept_error.detail, a.e.accept_message);
    tf_peer_wait(cli, 5000);
    tf_peer_close_stdin(cli);
    tf_pump_finish(pump, &pr);
    assert_int_equal(pr.received, 640);
    auth_free(&a);
}

int main(void)
{
    struct CMUnitTest tests[32];
    char names[6][64];
    size_t n = 0;

    tf_require_bins("gnutls-serv", "gnutls-cli", "openssl", "socat", NULL);
    for (size_t i = 0; i < 3; i++) {
        snprintf(names[2 * i], sizeof(names[0]), "client_rejects_gnutls_serv/%s", bad_certs[i].label);
        snprintf(names[2 * i + 1], sizeof(names[0]), "client_rejects_socat/%s", bad_certs[i].label);
        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(client_rejects_gnutls_serv, names[2 * i], &bad_certs[i]);
        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(client_rejects_socat, names[2 * i + 1], &bad_certs[i]);
    }
    tests[n++] = (struct CMUnitTest)TF_CASE(verify_none_accepts_untrusted);
    tests[n++] = (struct CMUnitTest)TF_CASE(ip_address_verifies);
    tests[n++] = (struct CMUnitTest)TF_CASE(wronghost_verifies_under_its_name);
    tests[n++] = (struct CMUnitTest)TF_CASE(client_cert_gnutls_cli_accepted);
    tests[n++] = (struct CMUnitTest)TF_CASE(client_cert_s_client_accepted);
    tests[n++] = (struct CMUnitTest)TF_CASE(client_cert_optional_accepted);
    tests[n++] = (struct CMUnitTest)TF_CASE(client_cert_optional_without);
    tests[n++] = (struct CMUnitTest)TF_CASE(client_cert_missing_gnutls_cli);
    tests[n++] = (struct CMUnitTest)TF_CASE(client_cert_missing_s_client);
    tests[n++] = (struct CMUnitTest)TF_CASE(client_cert_foreign_gnutls_cli);
    return _cmocka_run_group_tests("interop_certs", tests, n, NULL, NULL);
}
