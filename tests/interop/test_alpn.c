/* ALPN against real peers: agreed (tlsflow_info.alpn names the protocol on
 * both ends), and refused where the lists share nothing (the peer's choice:
 * a fatal no_application_protocol alert, or going on without ALPN). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "tf_test.h"

#define ALERT_NO_APPLICATION_PROTOCOL 120

static const char *const h2_http11[] = { "h2", "http/1.1" };

struct client {
    tlsflow_loop   *loop;
    tlsflow_config *cfg;
    tf_done         con;
    tlsflow_info    info;
    char            alpn[64];   /* info.alpn copied, "" when NULL */
};

/* Connects with the given ALPN list (none when n == 0): 0 when the handshake
 * succeeded. */
static int client_connect(struct client *c, int port, const char *const *protos, size_t n)
{
    int ret;

    memset(c, 0, sizeof(*c));
    c->loop = tf_loop_new();
    c->cfg = tf_client_config(NULL, TF_CA);
    if (n)
        assert_int_equal(tlsflow_config_set_alpn(c->cfg, protos, n), 0);
    ret = tf_connect_sync(c->loop, c->cfg, "localhost", port, &c->con, 10000);
    if (ret == 0) {
        assert_int_equal(tlsflow_get_info(c->con.flow, &c->info), 0);
        snprintf(c->alpn, sizeof(c->alpn), "%s", c->info.alpn ? c->info.alpn : "");
    }
    return ret;
}

static void client_free(struct client *c)
{
    if (c->con.flow)
        tlsflow_free(c->con.flow);
    tlsflow_loop_free(c->loop);
    tlsflow_config_free(c->cfg);
}

static void expect_alpn(struct client *c, const char *want)
{
    if (c->con.status != TLSFLOW_OK)
        fail_msg("handshake failed: %s", c->con.message);
    if (!want && c->info.alpn)
        fail_msg("ALPN \"%s\" agreed; want none", c->info.alpn);
    if (want && (!c->info.alpn || strcmp(c->info.alpn, want)))
        fail_msg("ALPN %s%s%s; want \"%s\"", c->info.alpn ? "\"" : "",
                 c->info.alpn ? c->info.alpn : "none", c->info.alpn ? "\"" : "", want);
}

/* The message names the alert ("no application protocol", in whatever case
 * and spelling GnuTLS uses). */
static void expect_names_alert(const struct client *c)
{
    if (!strcasestr(c->con.message, "application") || !strcasestr(c->con.message, "protocol"))
        fail_msg("the message does not name the alert: %s", c->con.message);
}

/* ---- tlsflow client ---- */

TF_TEST(client_gnutls_serv_agreed, 30)
{
    static const char *const extra[] = { "--alpn", "h2", "--alpn", "http/1.1", NULL };
    struct client c;
    int port;

    tf_start_gnutls_echo(&port, TF_RSA_CERT, TF_RSA_KEY, NULL, extra);
    client_connect(&c, port, h2_http11, 2);
    expect_alpn(&c, "h2");
    client_free(&c);
}

TF_TEST(client_gnutls_serv_second_choice, 30)
{
    static const char *const extra[] = { "--alpn", "http/1.1", NULL };
    struct client c;
    int port;

    tf_start_gnutls_echo(&port, TF_RSA_CERT, TF_RSA_KEY, NULL, extra);
    client_connect(&c, port, h2_http11, 2);
    expect_alpn(&c, "http/1.1");
    client_free(&c);
}

TF_TEST(client_gnutls_serv_refused_fatal, 30)
{
    static const char *const extra[] = { "--alpn", "h3x", "--alpn-fatal", NULL };
    struct client c;
    int port;

    tf_start_gnutls_echo(&port, TF_ECDSA_CERT, TF_ECDSA_KEY, NULL, extra);
    if (client_connect(&c, port, h2_http11, 2) == 0)
        fail_msg("handshake succeeded (ALPN %s) though the server demands h3x",
                 c.info.alpn ? c.info.alpn : "none");
    if (c.con.error.code != TLSFLOW_E_ALERT || c.con.error.detail != ALERT_NO_APPLICATION_PROTOCOL)
        fail_msg("code %d detail %d (%s); want TLSFLOW_E_ALERT no_application_protocol",
                 c.con.error.code, c.con.error.detail, c.con.message);
    expect_names_alert(&c);
    client_free(&c);
}

TF_TEST(client_gnutls_serv_no_overlap, 30)
{
    static const char *const extra[] = { "--alpn", "h3x", NULL };
    struct client c;
    int port;

    /* Without --alpn-fatal gnutls-serv goes on without ALPN. */
    tf_start_gnutls_echo(&port, TF_ECDSA_CERT, TF_ECDSA_KEY, NULL, extra);
    client_connect(&c, port, h2_http11, 2);
    expect_alpn(&c, NULL);
    client_free(&c);
}

TF_TEST(client_s_server_agreed, 30)
{
    static const char *const extra[] = { "-alpn", "http/1.1,h2", NULL };
    static const char *const h2_first[] = { "h2", "http/1.1" };
    struct client c;
    int port;

    /* OpenSSL's s_server takes its own first choice the client offers. */
    tf_start_s_server(&port, TF_RSA_CERT, TF_RSA_KEY, extra);
    client_connect(&c, port, h2_first, 2);
    expect_alpn(&c, "http/1.1");
    client_free(&c);
}

TF_TEST(client_s_server_no_overlap, 30)
{
    static const char *const extra[] = { "-alpn", "h3x", NULL };
    struct client c;
    int port;

    /* OpenSSL 3 s_server answers no overlap with the fatal alert. */
    tf_start_s_server(&port, TF_ECDSA_CERT, TF_ECDSA_KEY, extra);
    if (client_connect(&c, port, h2_http11, 2) == 0)
        fail_msg("handshake succeeded (ALPN %s) though s_server has only h3x",
                 c.info.alpn ? c.info.alpn : "none");
    if (c.con.error.code != TLSFLOW_E_ALERT || c.con.error.detail != ALERT_NO_APPLICATION_PROTOCOL)
        fail_msg("code %d detail %d (%s); want TLSFLOW_E_ALERT no_application_protocol",
                 c.con.error.code, c.con.error.detail, c.con.message);
    expect_names_alert(&c);
    client_free(&c);
}

TF_TEST(client_without_alpn, 30)
{
    static const char *const extra[] = { "-alpn", "h2", NULL };
    struct client c;
    int port;

    tf_start_s_server(&port, TF_ECDSA_CERT, TF_ECDSA_KEY, extra);
    client_connect(&c, port, NULL, 0);
    expect_alpn(&c, NULL);
    client_free(&c);
}

/* ---- tlsflow server ---- */

struct server {
    tlsflow_loop   *loop;
    tlsflow_config *cfg;
    tf_echo         e;
};

static void server_listen(struct server *s, const char *const *protos, size_t n)
{
    s->loop = tf_loop_new();
    s->cfg = tf_server_config(TF_RSA_CERT, TF_RSA_KEY, NULL);
    if (n)
        assert_int_equal(tlsflow_config_set_alpn(s->cfg, protos, n), 0);
    tf_echo_listen(&s->e, s->loop, s->cfg);
    s->e.close_after = 64;   /* one line, then the server ends it */
}

/* Runs a client that sends one line; returns the server's flow. */
static tf_echo_conn *server_run(struct server *s, tf_peer *cli)
{
    tf_pump *pump = tf_peer_pump(cli, 64, 12, TF_DATA_TEXT, TF_PUMP_TO_EOF);

    tf_run_until(s->loop, tf_cond_echo_settled, &s->e, 10000, "the client");
    tf_peer_wait(cli, 5000);
    tf_peer_close_stdin(cli);
    tf_pump_finish(pump, NULL);
    if (s->e.failed)
        fail_msg("handshake failed: %s", s->e.accept_message);
    return &s->e.conns[0];
}

static void server_free(struct server *s)
{
    tf_echo_close(&s->e);
    tlsflow_loop_free(s->loop);
    tlsflow_config_free(s->cfg);
}

static void expect_server_alpn(const tf_echo_conn *c, const char *want)
{
    if (!want && c->info.alpn)
        fail_msg("server: ALPN \"%s\" agreed; want none", c->info.alpn);
    if (want && (!c->info.alpn || strcmp(c->info.alpn, want)))
        fail_msg("server: ALPN %s; want \"%s\"", c->info.alpn ? c->info.alpn : "none", want);
}

static tf_peer *gnutls_cli(int port, const char *const *alpn)
{
    tf_args a = { .n = 0 };

    tf_args_add(&a, "gnutls-cli", "--x509cafile", TF_CA, "-p", tf_fmt("%d", port), "--logfile",
                "/dev/stderr", "localhost", NULL);
    for (; alpn && *alpn; alpn++)
        tf_args_add(&a, "--alpn", *alpn, NULL);
    return tf_peer_startv(TF_PEER_STDIN | TF_PEER_STDOUT, a.v);
}

static tf_peer *s_client(int port, const char *alpn)
{
    return tf_peer_start(TF_PEER_STDIN | TF_PEER_STDOUT, "openssl", "s_client", "-quiet",
                         "-CAfile", TF_CA, "-servername", "localhost", "-connect",
                         tf_fmt("127.0.0.1:%d", port), "-alpn", alpn, NULL);
}

TF_TEST(server_gnutls_cli_agreed, 30)
{
    static const char *const offer[] = { "http/1.1", NULL };
    struct server s;
    tf_peer *cli;

    server_listen(&s, h2_http11, 2);
    cli = gnutls_cli(s.e.port, offer);
    expect_server_alpn(server_run(&s, cli), "http/1.1");
    assert_true(tf_peer_log_contains(cli, "http/1.1"));
    server_free(&s);
}

TF_TEST(server_s_client_agreed, 30)
{
    struct server s;

    server_listen(&s, h2_http11, 2);
    expect_server_alpn(server_run(&s, s_client(s.e.port, "h2,http/1.1")), "h2");
    server_free(&s);
}

/* A tlsflow server whose list shares nothing with the client's refuses the
 * handshake (RFC 7301 3.2), says why, and the client fails. */
static void server_refuses(tf_peer *(*start)(struct server *s))
{
    struct server s;
    tf_peer *cli;
    int st;

    server_listen(&s, h2_http11, 2);
    cli = start(&s);
    tf_run_until(s.loop, tf_cond_echo_settled, &s.e, 10000, "the client");
    if (!s.e.failed)
        fail_msg("no ALPN overlap, yet the server agreed %s",
                 s.e.conns[0].info.alpn ? s.e.conns[0].info.alpn : "no ALPN");
    if (!strcasestr(s.e.accept_message, "application protocol"))
        fail_msg("server: the message does not say why: %s", s.e.accept_message);
    tf_peer_close_stdin(cli);
    st = tf_peer_wait(cli, 5000);
    if (st < 0 || (WIFEXITED(st) && WEXITSTATUS(st) == 0))
        fail_msg("the client did not fail (status %d)", st);
    server_free(&s);
}

static tf_peer *start_gnutls_cli_h3x(struct server *s)
{
    static const char *const offer[] = { "h3x", NULL };

    return gnutls_cli(s->e.port, offer);
}

static tf_peer *start_s_client_h3x(struct server *s)
{
    return s_client(s->e.port, "h3x");
}

TF_TEST(server_gnutls_cli_no_overlap, 30)
{
    server_refuses(start_gnutls_cli_h3x);
}

TF_TEST(server_s_client_no_overlap, 30)
{
    server_refuses(start_s_client_h3x);
}

TF_TEST(server_without_alpn, 30)
{
    struct server s;

    server_listen(&s, NULL, 0);
    expect_server_alpn(server_run(&s, s_client(s.e.port, "h2")), NULL);
    server_free(&s);
}

/* ---- tlsflow on both ends ---- */

struct both {
    tf_done s, c;
};

static bool both_opened(void *arg)
{
    const struct both *b = arg;

    return b->s.n && b->c.n;
}

/* A long agreed name is reported whole on both ends, not as none.  RFC 7301
 * allows 1..255 bytes and tf_session keeps room for 255, but GnuTLS 3.7.9
 * takes names of at most 31 (gnutls_alpn_set_protocols refuses longer ones
 * with GNUTLS_E_INVALID_REQUEST), so 31 is the longest a handshake can
 * agree on here. */
static void long_name_agreed(size_t len)
{
    char name[256];
    const char *const list[] = { "h2", name };
    const char *const want[] = { name };
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *scfg = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, NULL);
    tlsflow_config *ccfg = tf_client_config(NULL, TF_CA);
    tlsflow_info si, ci;
    struct both b = { 0 };
    int sv[2];

    assert_true(len < sizeof(name));
    for (size_t i = 0; i < len; i++)
        name[i] = (char)('a' + i % 26);
    name[len] = 0;
    assert_int_equal(tlsflow_config_set_alpn(scfg, want, 1), 0);
    assert_int_equal(tlsflow_config_set_alpn(ccfg, list, 2), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(tlsflow_wrap_fd(loop, scfg, sv[0], NULL, tf_on_done, &b.s), 0);
    assert_int_equal(tlsflow_wrap_fd(loop, ccfg, sv[1], "localhost", tf_on_done, &b.c), 0);
    tf_run_until(loop, both_opened, &b, 10000, "both handshakes");
    if (b.s.status != TLSFLOW_OK || b.c.status != TLSFLOW_OK)
        fail_msg("handshake: server %s, client %s", b.s.message, b.c.message);
    assert_int_equal(tlsflow_get_info(b.s.flow, &si), 0);
    assert_int_equal(tlsflow_get_info(b.c.flow, &ci), 0);
    if (!si.alpn || strcmp(si.alpn, name))
        fail_msg("server: %zu-byte ALPN reported as %s", len, si.alpn ? si.alpn : "none");
    if (!ci.alpn || strcmp(ci.alpn, name))
        fail_msg("client: %zu-byte ALPN reported as %s", len, ci.alpn ? ci.alpn : "none");
    tlsflow_free(b.s.flow);
    tlsflow_free(b.c.flow);
    tlsflow_loop_free(loop);
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
}

TF_TEST(tlsflow_both_ends_long_alpn, 30)
{
    long_name_agreed(1);
    long_name_agreed(31);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(client_gnutls_serv_agreed),
        TF_CASE(client_gnutls_serv_second_choice),
        TF_CASE(client_gnutls_serv_refused_fatal),
        TF_CASE(client_gnutls_serv_no_overlap),
        TF_CASE(client_s_server_agreed),
        TF_CASE(client_s_server_no_overlap),
        TF_CASE(client_without_alpn),
        TF_CASE(server_gnutls_cli_agreed),
        TF_CASE(server_s_client_agreed),
        TF_CASE(server_gnutls_cli_no_overlap),
        TF_CASE(server_s_client_no_overlap),
        TF_CASE(server_without_alpn),
        TF_CASE(tlsflow_both_ends_long_alpn),
    };

    tf_require_bins("gnutls-serv", "gnutls-cli", "openssl", NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
