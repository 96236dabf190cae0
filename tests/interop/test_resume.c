/* Session resumption against real peers, TLS 1.2 and 1.3: a second connection
 * shows tlsflow_info.resumed == 1.
 *   tlsflow client -> gnutls-serv, openssl s_server (the config keeps tickets)
 *   tlsflow server <- gnutls-cli --resume, openssl s_client -sess_out/-sess_in
 *   tlsflow client -> tlsflow server (both ends say so) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "tf_test.h"

static const char *const prio[] = {
    "NORMAL:-VERS-ALL:+VERS-TLS1.2",
    "NORMAL:-VERS-ALL:+VERS-TLS1.3",
};
static const char *const vname[] = { "TLS1.2", "TLS1.3" };

static unsigned version_of(void **state)
{
    return (unsigned)(uintptr_t)*state;   /* 0: TLS 1.2, 1: TLS 1.3 */
}

static bool called(void *arg)
{
    return ((tf_done *)arg)->n > 0;
}

/* One line out and back through an echo ("rev": s_server -rev reverses it).
 * Reading the answer also takes in the tickets that came before it. */
struct line {
    char buf[128];
    size_t got;
    bool   failed;
};

static void line_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct line *l = arg;

    if (r->status != TLSFLOW_OK) {
        l->failed = true;
        return;
    }
    if (l->got + r->len > sizeof(l->buf))
        fail_msg("echo longer than the line");
    memcpy(l->buf + l->got, r->data, r->len);
    l->got += r->len;
    if (!memchr(l->buf, '\n', l->got))
        assert_int_equal(tlsflow_read(f, line_read, l), 0);
}

static bool line_done(void *arg)
{
    struct line *l = arg;

    return l->failed || memchr(l->buf, '\n', l->got);
}

static void ping(tlsflow_loop *loop, tlsflow *f, bool rev)
{
    static const char out[] = "resume-me\n";
    struct line l = { .got = 0 };
    tf_done w = { 0 };

    assert_int_equal(tlsflow_read(f, line_read, &l), 0);
    assert_int_equal(tlsflow_write(f, out, sizeof(out) - 1, tf_on_done, &w), 0);
    tf_run_until(loop, line_done, &l, 10000, "the echoed line");
    tf_run_until(loop, called, &w, 10000, "the write");
    assert_false(l.failed);
    assert_int_equal(l.got, sizeof(out) - 1);
    assert_memory_equal(l.buf, rev ? "em-emuser\n" : out, l.got);
}

/* Connects, pings, closes; returns resumed. */
static int client_session(tlsflow_loop *loop, const tlsflow_config *cfg, int port, bool rev,
                          unsigned want_version)
{
    tf_done con, cl = { 0 };
    tlsflow_info info;

    if (tf_connect_sync(loop, cfg, "localhost", port, &con, 10000))
        fail_msg("connect: %s", con.message);
    assert_int_equal(tlsflow_get_info(con.flow, &info), 0);
    assert_int_equal(info.tls_version, want_version);
    ping(loop, con.flow, rev);
    assert_int_equal(tlsflow_close(con.flow, tf_on_done, &cl), 0);
    tf_run_until(loop, called, &cl, 10000, "the close");
    tlsflow_free(con.flow);
    return info.resumed;
}

static void client_resumes(int port, bool rev, unsigned v)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_client_config(prio[v], TF_CA);
    tlsflow_config *other = tf_client_config(prio[v], TF_CA);
    unsigned want = v ? 0x0304 : 0x0303;

    if (client_session(loop, cfg, port, rev, want) != 0)
        fail_msg("the first connection says it resumed");
    if (client_session(loop, cfg, port, rev, want) != 1)
        fail_msg("%s: the second connection with the same config did not resume", vname[v]);
    /* Tickets live in their config. */
    if (client_session(loop, other, port, rev, want) != 0)
        fail_msg("a fresh config resumed");
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    tlsflow_config_free(other);
}

TF_TEST(client_gnutls_serv, 30)
{
    int port;

    tf_start_gnutls_echo(&port, TF_RSA_CERT, TF_RSA_KEY, NULL, NULL);
    client_resumes(port, false, version_of(state));
}

TF_TEST(client_s_server, 30)
{
    int port;

    tf_start_s_server(&port, TF_ECDSA_CERT, TF_ECDSA_KEY, NULL);
    client_resumes(port, true, version_of(state));
}

/* ---- tlsflow server ---- */

struct server {
    tlsflow_loop   *loop;
    tlsflow_config *cfg;
    tf_echo         e;
};

static void server_listen(struct server *s, unsigned v)
{
    s->loop = tf_loop_new();
    s->cfg = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, prio[v]);
    tf_echo_listen(&s->e, s->loop, s->cfg);
}

static void server_free(struct server *s)
{
    tf_echo_close(&s->e);
    tlsflow_loop_free(s->loop);
    tlsflow_config_free(s->cfg);
}

static bool two_settled(void *arg)
{
    tf_echo *e = arg;

    return e->failed || (e->accepted >= 2 && tf_cond_echo_settled(e));
}

static void expect_second_resumed(const struct server *s, unsigned v)
{
    if (s->e.failed)
        fail_msg("a handshake failed: %s", s->e.accept_message);
    assert_int_equal(s->e.accepted, 2);
    assert_int_equal(s->e.conns[0].info.tls_version, v ? 0x0304 : 0x0303);
    if (s->e.conns[0].info.resumed)
        fail_msg("the server says the first connection resumed");
    if (!s->e.conns[1].info.resumed)
        fail_msg("%s: the server says the second connection did not resume", vname[v]);
}

TF_TEST(server_gnutls_cli, 30)
{
    unsigned v = version_of(state);
    struct server s;
    tf_peer *cli;

    server_listen(&s, v);
    /* --resume: connect, close, connect again with the session; stdin is
     * /dev/null, so each connection ends at once with close_notify. */
    cli = tf_peer_start(0, "gnutls-cli", "--x509cafile", TF_CA, "-p", tf_fmt("%d", s.e.port),
                        "--resume", "--waitresumption", "localhost", NULL);
    tf_run_until(s.loop, two_settled, &s.e, 15000, "two connections");
    expect_second_resumed(&s, v);
    assert_int_equal(tf_peer_wait_log(cli, "This is a resumed session", 5000), 0);
    server_free(&s);
}

static tf_peer *s_client(int port, const char *sess_opt, const char *file)
{
    return tf_peer_start(TF_PEER_STDIN, "openssl", "s_client", "-connect",
                         tf_fmt("127.0.0.1:%d", port), "-servername", "localhost", "-CAfile",
                         TF_CA, "-verify_return_error", sess_opt, file, NULL);
}

static bool file_filled(void *arg)
{
    struct stat st;

    return stat(arg, &st) == 0 && st.st_size > 0;
}

struct log_wait {
    tf_peer    *p;
    const char *needle;
};

static bool log_has(void *arg)
{
    struct log_wait *w = arg;

    return tf_peer_log_contains(w->p, w->needle);
}

TF_TEST(server_s_client, 30)
{
    unsigned v = version_of(state);
    char file[] = "/tmp/tf-s_client-session-XXXXXX";
    struct server s;
    tf_peer *cli;
    struct log_wait w;
    int fd = mkstemp(file);

    assert_true(fd >= 0);
    close(fd);
    unlink(file);
    server_listen(&s, v);
    /* The first s_client stays until it wrote the session (TLS 1.3: once the
     * ticket came), then ends at the end of its stdin. */
    cli = s_client(s.e.port, "-sess_out", file);
    tf_run_until(s.loop, file_filled, file, 10000, "s_client's session file");
    tf_peer_close_stdin(cli);
    tf_run_until(s.loop, tf_cond_echo_settled, &s.e, 10000, "the first connection's end");
    cli = s_client(s.e.port, "-sess_in", file);
    w.p = cli;
    w.needle = "Reused,";
    tf_run_until(s.loop, log_has, &w, 10000, "s_client to say Reused");
    tf_peer_close_stdin(cli);
    tf_run_until(s.loop, two_settled, &s.e, 10000, "the second connection's end");
    unlink(file);
    expect_second_resumed(&s, v);
    server_free(&s);
}

TF_TEST(tlsflow_both_ends, 30)
{
    unsigned v = version_of(state);
    struct server s;
    tlsflow_config *cfg = tf_client_config(prio[v], TF_CA);

    server_listen(&s, v);
    s.e.close_after = 0;
    assert_int_equal(client_session(s.loop, cfg, s.e.port, false, v ? 0x0304 : 0x0303), 0);
    assert_int_equal(client_session(s.loop, cfg, s.e.port, false, v ? 0x0304 : 0x0303), 1);
    tf_run_until(s.loop, two_settled, &s.e, 10000, "the server side");
    expect_second_resumed(&s, v);
    server_free(&s);
    tlsflow_config_free(cfg);
}

int main(void)
{
    static void (*const fns[])(void **) = { client_gnutls_serv, client_s_server, server_gnutls_cli,
                                            server_s_client, tlsflow_both_ends };
    static const char *const names[] = { "client_gnutls_serv", "client_s_server", "server_gnutls_cli",
                                         "server_s_client", "tlsflow_both_ends" };
    struct CMUnitTest tests[10];
    char label[10][64];
    size_t n = 0;

    tf_require_bins("gnutls-serv", "gnutls-cli", "openssl", NULL);
    for (size_t f = 0; f < 5; f++)
        for (uintptr_t v = 0; v < 2; v++, n++) {
            snprintf(label[n], sizeof(label[n]), "%s/%s", names[f], vname[v]);
            tests[n] = (struct CMUnitTest)TF_CASE_WITH(fns[f], label[n], v);
        }
    return _cmocka_run_group_tests("interop_resume", tests, n, NULL, NULL);
}
