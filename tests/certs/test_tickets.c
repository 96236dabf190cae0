/* Session tickets shared: loops in two threads using one config resume each
 * other's tickets; two configs (or processes) loading the same ticket key file
 * do, and with different keys they do not; two tlsflow-serve processes with
 * one --ticket-key resume each other's tickets for a tlsflow client and for
 * openssl s_client -sess_out/-sess_in, and keys rotate (a server whose
 * clock runs past the ticket's window, with faketime, makes a full
 * handshake); the key file's errors. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

#define P13 "NORMAL:-VERS-ALL:+VERS-TLS1.3"
#define P12 "NORMAL:-VERS-ALL:+VERS-TLS1.2"

static char key_a[64], key_b[64];   /* two key files, made in main */

static void make_key(char *path, size_t cap, unsigned char fill)
{
    unsigned char k[64];
    int fd;

    snprintf(path, cap, "/tmp/tlsflow-ticket-XXXXXX");
    fd = mkstemp(path);
    if (fd < 0)
        exit(1);
    for (size_t i = 0; i < sizeof(k); i++)
        k[i] = (unsigned char)(fill + i * 7);
    if (write(fd, k, sizeof(k)) != (ssize_t)sizeof(k))
        exit(1);
    close(fd);
}

/* One server loop on its own thread. */
struct srv {
    tlsflow_loop *loop;
    tf_echo       e;
    pthread_t     t;
};

static void *srv_main(void *arg)
{
    struct srv *s = arg;

    tlsflow_loop_run(s->loop);
    return NULL;
}

static void srv_start(struct srv *s, const tlsflow_config *cfg)
{
    s->loop = tf_loop_new();
    tf_echo_listen(&s->e, s->loop, cfg);   /* set up here, then run there only */
    assert_int_equal(pthread_create(&s->t, NULL, srv_main, s), 0);
}

static void srv_stop(struct srv *s)
{
    tlsflow_loop_stop(s->loop);
    pthread_join(s->t, NULL);
    tf_echo_close(&s->e);
    tlsflow_loop_free(s->loop);
}

/* Opens a flow to port (server name localhost: one ticket cache entry for
 * every server), echoes a little (the TLS 1.3 ticket comes with it), closes:
 * whether it resumed. */
static bool visit(tlsflow_loop *loop, const tlsflow_config *ccfg, int port)
{
    tf_done con, cl;
    tlsflow_info info;
    tf_xfer x;

    if (tf_connect_fd_sync(loop, ccfg, port, &con, 5000))
        fail_msg("connect to %d: %s", port, con.message);
    assert_int_equal(tlsflow_get_info(con.flow, &info), 0);
    tf_xfer_start(&x, con.flow, 1024, 1024, 3, TF_DATA_BINARY);
    tf_run_until(loop, tf_xfer_cond, &x, 5000, "the echo");
    if (x.failed)
        fail_msg("echo: %s", x.message);
    tf_xfer_release(&x);
    tf_close_sync(loop, con.flow, &cl, 5000);
    tlsflow_free(con.flow);
    return info.resumed;
}

struct pair_case {
    const char *label;
    const char *prio;
    bool        same_config;
    const char *key1, *key2;   /* key files (NULL: the config's own) */
    bool        resumes;
};

TF_TEST(two_threads, 30)
{
    const struct pair_case *pc = *state;
    tlsflow_config *s1 = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, NULL), *s2 = s1;
    tlsflow_config *c = tf_client_config(pc->prio, TF_CA);
    tlsflow_loop *loop = tf_loop_new();
    struct srv a, b;

    if (pc->key1)
        assert_int_equal(tlsflow_config_set_ticket_key_file(s1, pc->key1), 0);
    if (!pc->same_config) {
        s2 = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, NULL);
        if (pc->key2)
            assert_int_equal(tlsflow_config_set_ticket_key_file(s2, pc->key2), 0);
    }
    srv_start(&a, s1);
    srv_start(&b, s2);
    assert_false(visit(loop, c, a.e.port));              /* a full handshake, a ticket */
    if (visit(loop, c, b.e.port) != pc->resumes)
        fail_msg("%s: the second thread's server %s the first's ticket", pc->label,
                 pc->resumes ? "did not resume" : "resumed");
    srv_stop(&a);
    srv_stop(&b);
    tlsflow_loop_free(loop);
    tlsflow_config_free(c);
    tlsflow_config_free(s1);
    if (s2 != s1)
        tlsflow_config_free(s2);
}

/* ---- two tlsflow-serve processes ---- */

#ifdef TF_SERVE_BIN
static const char *serve_bin = TF_SERVE_BIN;

/* at: NULL, or a faketime offset ("+3h") the server's clock runs at. */
static tf_peer *serve_at(const char *key, const char *at, int *port)
{
    tf_args a = { .n = 0 };

    *port = tf_free_port();
    if (at)
        tf_args_add(&a, "faketime", "-f", at, NULL);
    tf_args_add(&a, serve_bin, "--cert", TF_ECDSA_CERT, "--key", TF_ECDSA_KEY, "--echo", "--port",
                tf_fmt("%d", *port), "--stats-interval", "0", NULL);
    if (key)
        tf_args_add(&a, "--ticket-key", key, NULL);
    return tf_serve(&a, *port);
}

static tf_peer *serve(const char *key, int *port)
{
    return serve_at(key, NULL, port);
}

TF_TEST(two_processes_tlsflow_client, 60)
{
    const char *prios[] = { P13, P12 };
    int p1, p2, p3;

    serve(key_a, &p1);
    serve(key_a, &p2);
    serve(key_b, &p3);
    for (int i = 0; i < 2; i++) {
        tlsflow_loop *loop = tf_loop_new();
        tlsflow_config *c = tf_client_config(prios[i], TF_CA);
        assert_false(visit(loop, c, p1));
        if (!visit(loop, c, p2))
            fail_msg("%s: a ticket from one tlsflow-serve did not resume on the other", i ? "TLS 1.2" : "TLS 1.3");
        /* The ticket from p2 (same key) still works on p1; one from another key does not. */
        assert_true(visit(loop, c, p1));
        assert_false(visit(loop, c, p3));
        tlsflow_loop_free(loop);
        tlsflow_config_free(c);
    }
}

/* s_client's session from port `from` presented to `to`: whether it was reused. */
static bool s_client_resumes(int from, int to)
{
    char sess[] = "/tmp/tlsflow-sess-XXXXXX";
    tf_args a = { .n = 0 }, b = { .n = 0 };
    tf_peer *p;
    char *log;
    bool reused;
    int fd = mkstemp(sess);

    assert_true(fd >= 0);
    close(fd);
    /* -ign_eof with a line in: s_client waits for the echo, by then the
     * TLS 1.3 ticket is in. */
    tf_args_add(&a, "sh", "-c", tf_fmt("echo hello | openssl s_client -connect 127.0.0.1:%d -CAfile %s "
                                       "-ign_eof -sess_out %s", from, TF_CA, sess), NULL);
    p = tf_peer_startv(0, a.v);
    if (tf_peer_wait_log(p, "hello", 5000))
        fail_msg("no echo from port %d", from);
    tf_peer_stop(p);
    tf_args_add(&b, "openssl", "s_client", "-connect", tf_fmt("127.0.0.1:%d", to), "-CAfile", TF_CA,
                "-sess_in", sess, NULL);
    p = tf_peer_startv(TF_PEER_STDIN, b.v);
    tf_peer_close_stdin(p);
    tf_peer_wait(p, 5000);
    log = tf_peer_log(p);
    if (!strstr(log, "Reused, TLSv1.3") && !strstr(log, "New, TLSv1.3"))
        fail_msg("s_client to port %d did not connect:\n%s", to, log);
    reused = strstr(log, "Reused, TLSv1.3") != NULL;
    free(log);
    tf_peer_stop(p);
    unlink(sess);
    return reused;
}

TF_TEST(two_processes_s_client, 60)
{
    int p1, p2, p3;

    serve(key_a, &p1);
    serve(key_a, &p2);
    serve(key_b, &p3);
    if (!s_client_resumes(p1, p2))
        fail_msg("s_client's session from one tlsflow-serve was not reused on the other");
    if (s_client_resumes(p1, p3))
        fail_msg("a session was reused on a tlsflow-serve with another ticket key");
}

/* Keys rotate: a second server whose clock runs 3 hours ahead (the same or
 * the next 6-hour window) still takes the ticket; 13 hours ahead, past its
 * window, it is a full handshake. */
TF_TEST(ticket_windows, 60)
{
    int now, later, much_later;

    if (!tf_have_bin("faketime"))
        TF_SKIP_TEST("faketime is missing");
    if (tf_under_sanitizer())   /* ASan must come first; faketime's LD_PRELOAD comes before it */
        TF_SKIP_TEST("tlsflow-serve is built with a sanitizer: faketime cannot preload into it");
    serve(key_a, &now);
    serve_at(key_a, "+3h", &later);
    serve_at(key_a, "+13h", &much_later);
    if (!s_client_resumes(now, later))
        fail_msg("a ticket 3 hours old did not resume");
    if (s_client_resumes(now, much_later))
        fail_msg("a ticket 13 hours old resumed");
}
#endif

TF_TEST(key_file_errors, 30)
{
    tlsflow_config *s, *c;
    char shortk[] = "/tmp/tlsflow-tk-XXXXXX", longk[] = "/tmp/tlsflow-tk-XXXXXX";
    int fd;
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_listener *ls;

    fd = mkstemp(shortk);
    assert_int_equal(write(fd, "0123456789", 10), 10);
    close(fd);
    fd = mkstemp(longk);
    for (int i = 0; i < 9; i++)
        assert_int_equal(write(fd, "0123456789", 10), 10);
    close(fd);
    assert_int_equal(tlsflow_config_new(&s, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_ticket_key_file(NULL, key_a), -EINVAL);
    assert_int_equal(tlsflow_config_set_ticket_key_file(s, NULL), -EINVAL);
    assert_int_equal(tlsflow_config_set_ticket_key_file(s, ""), -EINVAL);
    assert_int_equal(tlsflow_config_set_ticket_key_file(c, key_a), -EINVAL);
    assert_int_equal(tlsflow_config_set_ticket_key_file(s, TF_CERT("missing.key")), -ENOENT);
    assert_int_equal(tlsflow_config_set_ticket_key_file(s, "/tmp"), -EISDIR);
    assert_int_equal(tlsflow_config_set_ticket_key_file(s, shortk), -EBADMSG);
    assert_int_equal(tlsflow_config_set_ticket_key_file(s, longk), -EBADMSG);
    assert_int_equal(tlsflow_config_set_ticket_key_file(s, key_a), 0);
    assert_int_equal(tlsflow_config_set_ticket_key_file(s, key_b), 0);   /* replaces */
    assert_int_equal(tlsflow_config_set_cert_file(s, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
    assert_int_equal(tlsflow_listen(loop, s, "127.0.0.1", "0", tf_accepts_on_flow, NULL, &ls), 0);
    assert_int_equal(tlsflow_config_set_ticket_key_file(s, key_a), -EBUSY);
    tlsflow_listener_close(ls);
    tlsflow_loop_free(loop);
    tlsflow_config_free(s);
    tlsflow_config_free(c);
    unlink(shortk);
    unlink(longk);
}

static const struct pair_case pair_cases[] = {
    { "one config, TLS 1.3", P13, true, NULL, NULL, true },
    { "one config, TLS 1.2", P12, true, NULL, NULL, true },
    { "two configs, own keys", P13, false, NULL, NULL, false },
    { "two configs, one key file, TLS 1.3", P13, false, key_a, key_a, true },
    { "two configs, one key file, TLS 1.2", P12, false, key_a, key_a, true },
    { "two configs, two key files", P13, false, key_a, key_b, false },
};

int main(int argc, char **argv)
{
    static struct CMUnitTest tests[16];   /* static: tf_name's names stay reachable */
    size_t n = 0;
    int ret;

    make_key(key_a, sizeof(key_a), 1);
    make_key(key_b, sizeof(key_b), 2);
    for (size_t i = 0; i < sizeof(pair_cases) / sizeof(pair_cases[0]); i++)
        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(two_threads, tf_name("two_threads/%s", pair_cases[i].label),
                                                     &pair_cases[i]);
#ifdef TF_SERVE_BIN
    if (argc > 1)
        serve_bin = argv[1];
    if (tf_have_bin("openssl")) {
        tests[n++] = (struct CMUnitTest)TF_CASE(two_processes_s_client);
        tests[n++] = (struct CMUnitTest)TF_CASE(ticket_windows);
    }
    tests[n++] = (struct CMUnitTest)TF_CASE(two_processes_tlsflow_client);
#endif
    tests[n++] = (struct CMUnitTest)TF_CASE(key_file_errors);
    (void)argc;
    (void)argv;
    ret = _cmocka_run_group_tests("certs_tickets", tests, n, NULL, NULL);
    unlink(key_a);
    unlink(key_b);
    return ret;
}
