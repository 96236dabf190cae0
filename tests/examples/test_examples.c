/* The examples of examples/ against real peers: each is started as a peer
 * process of the harness, on a free port, and driven by openssl, curl or
 * gnutls-cli. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tf_test.h"

#define LEN (256 * 1024)

/* Starts an example server (BIN CERT KEY [before] PORT [after]) on a free
 * port and waits until it listens. */
static tf_peer *example_server(const char *bin, const char *before, const char *after, int *port)
{
    tf_args a = { .n = 0 };

    *port = tf_free_port();
    tf_args_add(&a, bin, TF_ECDSA_CERT, TF_ECDSA_KEY, NULL);
    if (before)
        tf_args_add(&a, before, NULL);
    tf_args_add(&a, tf_fmt("%d", *port), NULL);
    if (after)
        tf_args_add(&a, after, NULL);
    return tf_serve(&a, *port);
}

/* Sends LEN bytes through a peer's stdin and checks that the same bytes come
 * back on its stdout (to_eof: and that it then ends). */
static void pump_through(tf_peer *cli, uint64_t seed, unsigned flags)
{
    tf_pump_result res;
    tf_pump *pump = tf_peer_pump(cli, LEN, seed, TF_DATA_TEXT, flags);
    long long end = tf_now_ms() + tf_ms(30000);

    while (!tf_pump_done(pump) && tf_now_ms() < end)
        usleep(10000);
    if (!tf_pump_done(pump))
        tf_peer_kill(cli, SIGKILL);
    tf_pump_finish(pump, &res);
    assert_false(res.mismatch);
    assert_int_equal(res.received, LEN);
}

/* echo_server: openssl s_client sends LEN bytes and reads them back. */
TF_TEST(echo_server_s_client, 60)
{
    int port;
    tf_peer *srv = example_server(EX_ECHO_SERVER, NULL, NULL, &port);
    tf_peer *cli = tf_peer_start(TF_PEER_STDIN | TF_PEER_STDOUT, "openssl", "s_client", "-quiet",
                                 "-connect", tf_fmt("127.0.0.1:%d", port), "-servername", "localhost",
                                 "-verify_hostname", "localhost", "-CAfile", TF_CA,
                                 "-verify_return_error", NULL);

    pump_through(cli, 0xec40, 0);
    tf_peer_stop(cli);
    assert_false(tf_peer_exited(srv));   /* still serving */
    tf_peer_stop(srv);
}

/* https_get: a GET to openssl s_server -www, verified against the test CA;
 * exit 0 means status 200 and a clean close. */
TF_TEST(https_get_s_server, 60)
{
    int port = tf_free_port(), st;
    tf_args a = { .n = 0 };
    tf_peer *srv, *cli;

    tf_args_add(&a, "openssl", "s_server", "-www", "-accept", tf_fmt("%d", port),
                "-cert", TF_ECDSA_CERT, "-key", TF_ECDSA_KEY, NULL);
    srv = tf_serve(&a, port);
    cli = tf_peer_start(0, EX_HTTPS_GET, "localhost", tf_fmt("%d", port), "/", TF_CA, NULL);
    st = tf_peer_wait(cli, tf_ms(20000));
    assert_true(st >= 0 && WIFEXITED(st));
    assert_true(tf_peer_log_contains(cli, "HTTP/1.0 200"));
    assert_int_equal(WEXITSTATUS(st), 0);
    tf_peer_stop(cli);
    /* ... and an untrusted server (no CA given: the system store) fails. */
    cli = tf_peer_start(0, EX_HTTPS_GET, "localhost", tf_fmt("%d", port), "/", NULL);
    st = tf_peer_wait(cli, tf_ms(20000));
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1);
    tf_peer_stop(cli);
    tf_peer_stop(srv);
}

/* threaded_server: 12 curl requests over 3 threads; each answer was made on
 * another thread than the one that accepted it; SIGTERM ends it with 0. */
TF_TEST(threaded_server_curl, 60)
{
    int port, st, lines = 0;
    tf_peer *srv = example_server(EX_THREADED_SERVER, "3", NULL, &port);
    tf_args a = { .n = 0 };
    tf_peer *cli;
    char *log, *p;

    tf_args_add(&a, "curl", "-sS", "--fail", "--cacert", TF_CA, NULL);
    for (int i = 0; i < 12; i++)
        tf_args_add(&a, tf_fmt("https://localhost:%d/%d", port, i), NULL);
    cli = tf_peer_startv(0, a.v);
    st = tf_peer_wait(cli, tf_ms(30000));
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    log = tf_peer_log(cli);
    for (p = log; (p = strstr(p, "accepted by thread ")) != NULL; p++) {
        int from, to;
        assert_int_equal(sscanf(p, "accepted by thread %d, answered by thread %d", &from, &to), 2);
        assert_true(from >= 0 && from < 3 && to == (from + 1) % 3);
        lines++;
    }
    free(log);
    assert_int_equal(lines, 12);
    tf_peer_stop(cli);
    tf_peer_kill(srv, SIGTERM);
    st = tf_peer_wait(srv, tf_ms(10000));
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    tf_peer_stop(srv);
}

/* forwarder: gnutls-cli -> forwarder -> socat EXEC:cat and back, byte for
 * byte; gnutls-cli exits 0 after the end of its stdin (close_notify). */
TF_TEST(forwarder_gnutls_cli, 60)
{
    int bport = tf_free_port(), port;
    tf_args b = { .n = 0 };
    tf_peer *backend, *srv, *cli;

    tf_args_add(&b, "socat", tf_fmt("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork", bport), "EXEC:cat",
                NULL);
    backend = tf_serve(&b, bport);
    srv = example_server(EX_FORWARDER, NULL, tf_fmt("%d", bport), &port);
    cli = tf_peer_start(TF_PEER_STDIN | TF_PEER_STDOUT, "gnutls-cli", "--x509cafile", TF_CA, "-p",
                        tf_fmt("%d", port), "--logfile", "/dev/stderr", "localhost", NULL);
    pump_through(cli, 0xf0d, TF_PUMP_CLOSE | TF_PUMP_TO_EOF);
    assert_int_equal(tf_peer_wait(cli, tf_ms(10000)), 0);   /* it saw the close and exited 0 */
    tf_peer_stop(cli);
    assert_false(tf_peer_exited(srv));
    tf_peer_stop(srv);
    tf_peer_stop(backend);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(echo_server_s_client),
        TF_CASE(https_get_s_server),
        TF_CASE(threaded_server_curl),
        TF_CASE(forwarder_gnutls_cli),
    };

    tf_require_bins("openssl", "curl", "gnutls-cli", "socat", NULL);
    return cmocka_run_group_tests_name("examples", tests, NULL, NULL);
}
