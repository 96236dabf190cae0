/* tlsflow-proxy against real peers: curl, openssl s_client and gnutls-cli
 * clients (and tlsflow flows of this process) through the proxy to socat,
 * python (backend.py) and tlsflow TLS backends, byte for byte both ways;
 * half-closes both ways; a backend that refuses, one that resets, a client
 * that vanishes mid-transfer; PROXY v2; TLS to the backend (verified) with
 * TLS or TCP clients; 1,000 proxied flows at once, each checked.  In the VM
 * lane (label ktls, TLSFLOW_EXPECT_KTLS=1) the proxy must hold both keys of
 * its client flows in the kernel and copy no payload byte in userspace. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "tf_test.h"

#define BACKEND_PY TF_SOURCE_DIR "/tests/proxy/backend.py"

static char tmpdir[64];

static tf_peer *backend(const char *mode, const char *arg, int *port)
{
    tf_peer *p;

    if (!tf_have_bin("python3")) {
        tf_skip_note("no python3 for the backend");
        skip();
    }
    *port = tf_free_port();
    p = tf_peer_start(0, "python3", BACKEND_PY, mode, tf_fmt("%d", *port), arg, NULL);
    if (tf_peer_wait_log(p, "ready", tf_ms(10000)) < 0)
        fail_msg("backend %s did not start", mode);
    return p;
}

/* The proxy in front of backend_port; extra: more arguments, NULL-ended. */
static tf_peer *proxy(int backend_port, int *port, const char *extra, ...)
{
    tf_args a = { .n = 0 };
    va_list ap;
    tf_peer *p;

    *port = tf_free_port();
    tf_args_add(&a, TF_PROXY_BIN, "--listen", tf_fmt("127.0.0.1:%d", *port), "--backend",
                tf_fmt("127.0.0.1:%d", backend_port), "--stats-interval", "0", "--grace", "1", NULL);
    va_start(ap, extra);
    for (const char *s = extra; s; s = va_arg(ap, const char *))
        tf_args_add(&a, s, NULL);
    va_end(ap);
    /* kTLS: the proxy traces, so that the log says what splice met at
     * control records (proxy_stop prints it). */
    if (tf_expect_ktls())
        setenv("TLSFLOW_TRACE", "1", 1);
    p = tf_peer_startv(0, a.v);
    unsetenv("TLSFLOW_TRACE");
    if (tf_wait_port(*port, tf_ms(10000), p) < 0)
        fail_msg("tlsflow-proxy did not listen");
    return p;
}

static tf_peer *tls_proxy(int backend_port, int *port)
{
    return proxy(backend_port, port, "--cert", TF_ECDSA_CERT, "--key", TF_ECDSA_KEY, NULL);
}

/* SIGTERM, then its exit line: the loop counters.  In the VM, no payload
 * byte was copied in userspace. */
static void proxy_stop(tf_peer *p)
{
    char *log = tf_peer_term_log(p), *at;
    unsigned long long copied = ~0ull;

    at = strstr(log, "plaintext copied in userspace ");
    if (!at)
        fail_msg("no loop counters at exit:\n%s", log);
    sscanf(at, "plaintext copied in userspace %llu", &copied);
    fprintf(stderr, "proxy: plaintext copied %llu\n", copied);
    /* What the kernel answered a splice at a record that is not data. */
    {
        int seen[8], nseen = 0, v;
        for (char *l = strstr(log, "socket -> pipe -"); l; l = strstr(l + 1, "socket -> pipe -")) {
            bool is_new = true;
            if (sscanf(l, "socket -> pipe %d", &v) != 1)
                continue;
            for (int i = 0; i < nseen; i++)
                is_new &= seen[i] != v;
            if (is_new && nseen < 8) {
                seen[nseen++] = v;
                fprintf(stderr, "proxy trace: a splice kTLS socket -> pipe answered %d (%s)\n", v,
                        strerror(-v));
            }
        }
        for (char *l = strstr(log, "control record type"); l; l = strstr(l + 1, "control record type")) {
            char *eol = strchr(l, '\n');
            fprintf(stderr, "proxy trace: %.*s\n", eol ? (int)(eol - l) : 40, l);
        }
    }
    /* Records that came with the handshake's last flight, before the kernel
     * had the receive key, are decrypted in userspace: at most that much. */
    unsigned long long early = 0, n;
    for (char *l = strstr(log, "opening: "); l; l = strstr(l + 1, "opening: "))
        if (sscanf(l, "opening: %llu bytes received past the handshake", &n) == 1)
            early += n;
    if (tf_expect_ktls() && copied > early)
        fail_msg("kTLS: the proxy copied %llu plaintext bytes (%llu came before the switch):\n%s",
                 copied, early, log);
    free(log);
    tf_peer_stop(p);
}

static const char *data_file(size_t len, uint64_t seed)
{
    const char *path = tf_fmt("%s/data-%llu", tmpdir, (unsigned long long)seed);
    uint8_t *buf = malloc(len);
    FILE *f = fopen(path, "w");

    assert_non_null(buf);
    assert_non_null(f);
    tf_data_fill(buf, len, seed, 0, TF_DATA_BINARY);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
    free(buf);
    return path;
}

/* Reads fd to EOF, checking stream seed: the bytes that came. */
static size_t read_checked(int fd, uint64_t seed, int timeout_ms)
{
    tf_checker chk;
    char buf[65536];
    long long end = tf_now_ms() + tf_ms(timeout_ms);
    size_t got = 0;
    ssize_t n;

    tf_checker_init(&chk, seed, TF_DATA_BINARY);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (tf_now_ms() < end) {
        n = read(fd, buf, sizeof(buf));
        if (n == 0)
            break;
        if (n < 0) {
            if (errno != EAGAIN)
                break;
            usleep(2000);
            continue;
        }
        if (!tf_checker_feed(&chk, buf, (size_t)n))
            fail_msg("byte %llu differs", (unsigned long long)chk.bad_offset);
        got += (size_t)n;
    }
    return got;
}

/* ---- Clients: gnutls-cli, openssl s_client, curl ---- */

/* gnutls-cli -> proxy -> socat echo: its stdin's EOF (close_notify) reaches
 * the backend as EOF, the backend's as close_notify; every byte came back. */
TF_TEST(gnutls_cli_socat_echo, 60)
{
    int bport = tf_free_port(), port;
    tf_peer *be, *px, *cli;
    tf_pump *pump;
    tf_pump_result pr;

    tf_require_bins("socat", "gnutls-cli", NULL);
    be = tf_peer_start(0, "socat", tf_fmt("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork", bport),
                       "EXEC:cat", NULL);
    assert_int_equal(tf_wait_port(bport, tf_ms(10000), be), 0);
    px = tls_proxy(bport, &port);
    cli = tf_peer_start(TF_PEER_STDIN | TF_PEER_STDOUT, "gnutls-cli", "--x509cafile", TF_CA, "-p",
                        tf_fmt("%d", port), "--logfile", "/dev/stderr", "localhost", NULL);
    pump = tf_peer_pump(cli, 256 * 1024, 3, TF_DATA_TEXT, TF_PUMP_CLOSE | TF_PUMP_TO_EOF);
    {
        int st = tf_peer_wait(cli, tf_ms(20000));
        tf_pump_finish(pump, &pr);
        assert_false(pr.mismatch);
        assert_int_equal(pr.received, 256 * 1024);
        assert_true(pr.eof);
        /* It exits 0 only after the proxy's close_notify (the backend's EOF). */
        if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
            fail_msg("gnutls-cli did not end cleanly (%d)", st);
    }
    proxy_stop(px);
    tf_peer_stop(be);
}

/* socat backend serving a file -> proxy -> openssl s_client: the backend's
 * EOF becomes close_notify, on which s_client ends. */
TF_TEST(s_client_socat_file, 60)
{
    const size_t len = 2u << 20;
    const char *file = data_file(len, 5);
    int bport = tf_free_port(), port, st;
    tf_peer *be, *px, *cli;

    tf_require_bins("socat", "openssl", NULL);
    be = tf_peer_start(0, "socat", tf_fmt("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork", bport),
                       tf_fmt("OPEN:%s,rdonly", file), NULL);
    assert_int_equal(tf_wait_port(bport, tf_ms(10000), be), 0);
    px = tls_proxy(bport, &port);
    cli = tf_peer_start(TF_PEER_STDIN | TF_PEER_STDOUT, "openssl", "s_client", "-quiet",
                        "-connect", tf_fmt("127.0.0.1:%d", port), "-servername", "localhost",
                        "-CAfile", TF_CA, "-verify_return_error", NULL);
    assert_int_equal(read_checked(tf_peer_stdout(cli), 5, 20000), len);
    st = tf_peer_wait(cli, tf_ms(10000));
    if (st < 0 || !WIFEXITED(st))
        fail_msg("s_client did not end at close_notify (%d)", st);
    proxy_stop(px);
    tf_peer_stop(be);
}

/* curl -> proxy -> python's http.server: an HTTP download, checked. */
TF_TEST(curl_http_server, 60)
{
    const size_t len = 3u << 20;
    int bport = tf_free_port(), port, st;
    tf_peer *be, *px, *cli;

    if (!tf_have_bin("curl") || !tf_have_bin("python3")) {
        tf_skip_note("no curl or python3");
        skip();
    }
    data_file(len, 6);
    be = tf_peer_start(0, "python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory",
                       tmpdir, tf_fmt("%d", bport), NULL);
    assert_int_equal(tf_wait_port(bport, tf_ms(10000), be), 0);
    px = tls_proxy(bport, &port);
    cli = tf_peer_start(TF_PEER_STDOUT, "curl", "-sS", "--fail", "--cacert", TF_CA,
                        tf_fmt("https://localhost:%d/data-6", port), NULL);
    assert_int_equal(read_checked(tf_peer_stdout(cli), 6, 20000), len);
    st = tf_peer_wait(cli, tf_ms(10000));
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
        fail_msg("curl failed (%d)", st);
    proxy_stop(px);
    tf_peer_stop(be);
}

/* ---- tlsflow clients of this process ---- */

struct client {
    tlsflow_loop   *loop;
    tlsflow_config *cfg;
    tlsflow        *flow;
};

static void client_open(struct client *c, int port)
{
    tf_done d;

    c->loop = tf_loop_new();
    c->cfg = tf_client_config(NULL, TF_CA);
    if (tf_connect_sync(c->loop, c->cfg, "localhost", port, &d, 10000) < 0)
        fail_msg("connect through the proxy: %s", d.message);
    c->flow = d.flow;
}

static void client_free(struct client *c)
{
    tlsflow_free(c->flow);
    tlsflow_loop_free(c->loop);
    tlsflow_config_free(c->cfg);
}

static void write_sync(struct client *c, const void *buf, size_t len)
{
    tf_done w = { 0 };

    assert_int_equal(tlsflow_write(c->flow, buf, len, tf_on_done, &w), 0);
    TF_RUN_UNTIL(c->loop, w.n, 10000);
    assert_int_equal(w.status, TLSFLOW_OK);
}

/* A tlsflow client -> proxy -> nginx (HTTP/1.0: nginx closes after the
 * response, which the client sees as close_notify after the body). */
TF_TEST(nginx_backend, 60)
{
    const size_t len = 2u << 20;
    int bport = tf_free_port(), port;
    tf_peer *be, *px;
    struct client c;
    tf_sink s;
    tf_checker chk;
    const char *conf = tf_fmt("%s/nginx.conf", tmpdir);
    FILE *f;
    static const char req[] = "GET /data-7 HTTP/1.0\r\nHost: localhost\r\n\r\n";

    if (!tf_have_bin("nginx")) {
        tf_skip_note("no nginx");
        skip();
    }
    data_file(len, 7);
    f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "daemon off; worker_processes 1; pid %s/nginx.pid; error_log stderr;\n"
               "events { worker_connections 64; }\n"
               "http { access_log off; sendfile on; client_body_temp_path %s;\n"
               "  proxy_temp_path %s; fastcgi_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;\n"
               "  server { listen 127.0.0.1:%d; root %s; } }\n",
            tmpdir, tmpdir, tmpdir, tmpdir, tmpdir, tmpdir, bport, tmpdir);
    fclose(f);
    chmod(tmpdir, 0755);
    chmod(tf_fmt("%s/data-7", tmpdir), 0644);
    be = tf_peer_start(0, "nginx", "-p", tmpdir, "-c", conf, NULL);
    assert_int_equal(tf_wait_port(bport, tf_ms(10000), be), 0);
    px = tls_proxy(bport, &port);
    client_open(&c, port);
    write_sync(&c, req, sizeof(req) - 1);
    tf_sink_start(c.flow, &s, len + 4096);
    TF_RUN_UNTIL(c.loop, s.eof || s.errors, 20000);
    if (s.errors)
        fail_msg("read: %s", tlsflow_error_message(s.error));
    const uint8_t *body = memmem(s.buf, s.got, "\r\n\r\n", 4);
    assert_non_null(body);
    body += 4;
    assert_true(!memcmp(s.buf, "HTTP/1.1 200", 12));
    assert_int_equal(s.got - (size_t)(body - s.buf), len);
    tf_checker_init(&chk, 7, TF_DATA_BINARY);
    assert_true(tf_checker_feed(&chk, body, len));
    free(s.buf);
    client_free(&c);
    proxy_stop(px);
    tf_peer_stop(be);
}

/* The client's close_notify first: the backend reads EOF and still answers;
 * the answer, then close_notify, reach the client. */
TF_TEST(half_close_client_first, 60)
{
    static uint8_t buf[1 << 20];
    int bport, port;
    tf_peer *be = backend("count", NULL, &bport), *px = tls_proxy(bport, &port);
    struct client c;
    tf_done cl = { 0 };
    tf_sink s;

    client_open(&c, port);
    tf_data_fill(buf, sizeof(buf), 1, 0, TF_DATA_BINARY);
    write_sync(&c, buf, sizeof(buf));
    assert_int_equal(tlsflow_close(c.flow, tf_on_done, &cl), 0);   /* close_notify, SHUT_WR */
    tf_sink_start(c.flow, &s, 64);
    TF_RUN_UNTIL(c.loop, s.eof || s.errors, 10000);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.got, 8);
    assert_memory_equal(s.buf, "1048576\n", 8);
    TF_RUN_UNTIL(c.loop, cl.n, 10000);
    assert_int_equal(cl.status, TLSFLOW_OK);
    free(s.buf);
    client_free(&c);
    proxy_stop(px);
    tf_peer_stop(be);
}

/* The backend's EOF first: the client reads "hello" and EOF (close_notify),
 * then still sends, and the backend gets every byte. */
TF_TEST(half_close_backend_first, 60)
{
    static uint8_t buf[300000];
    int bport, port;
    tf_peer *be = backend("hello", NULL, &bport), *px = tls_proxy(bport, &port);
    struct client c;
    tf_done cl = { 0 };
    tf_sink s;

    client_open(&c, port);
    tf_sink_start(c.flow, &s, 64);
    TF_RUN_UNTIL(c.loop, s.eof || s.errors, 10000);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.got, 6);
    assert_memory_equal(s.buf, "hello\n", 6);
    write_sync(&c, buf, sizeof(buf));
    assert_int_equal(tlsflow_close(c.flow, tf_on_done, &cl), 0);
    TF_RUN_UNTIL(c.loop, cl.n, 10000);
    assert_int_equal(cl.status, TLSFLOW_OK);
    if (tf_peer_wait_log(be, "got 300000", tf_ms(10000)) < 0)
        fail_msg("the backend did not get every byte before EOF");
    free(s.buf);
    client_free(&c);
    proxy_stop(px);
    tf_peer_stop(be);
}

/* No backend: the client is reset, never told EOF. */
TF_TEST(backend_refuses, 30)
{
    int bport = tf_free_port(), port;
    tf_peer *px = tls_proxy(bport, &port);
    struct client c;
    tf_done rd;

    client_open(&c, port);
    tf_read_sync(c.loop, c.flow, &rd, 10000);
    assert_int_equal(rd.status, TLSFLOW_ERROR);
    fprintf(stderr, "client: %s\n", rd.message);
    client_free(&c);
    proxy_stop(px);
}

/* The backend resets mid-stream: so is the client (an error, not EOF). */
TF_TEST(backend_resets, 30)
{
    static uint8_t buf[256 * 1024];
    int bport, port;
    tf_peer *be = backend("reset", "100000", &bport), *px = tls_proxy(bport, &port);
    struct client c;
    tf_done rd, w = { 0 };

    client_open(&c, port);
    assert_int_equal(tlsflow_write(c.flow, buf, sizeof(buf), tf_on_done, &w), 0);
    tf_read_sync(c.loop, c.flow, &rd, 10000);
    assert_int_equal(rd.status, TLSFLOW_ERROR);
    fprintf(stderr, "client: %s\n", rd.message);
    assert_int_equal(tf_peer_wait_log(be, "resetting after 100000", tf_ms(5000)), 0);
    client_free(&c);
    proxy_stop(px);
    tf_peer_stop(be);
}

/* The client vanishes (reset) while the backend floods it: the backend is
 * reset too. */
TF_TEST(client_vanishes, 30)
{
    int bport, port;
    tf_peer *be = backend("flood", NULL, &bport), *px = tls_proxy(bport, &port);
    struct client c;
    tf_done rd;

    client_open(&c, port);
    tf_read_sync(c.loop, c.flow, &rd, 10000);
    assert_int_equal(rd.status, TLSFLOW_OK);
    client_free(&c);              /* an open flow is reset */
    if (tf_peer_wait_log(be, "peer gone:", tf_ms(10000)) < 0)
        fail_msg("the backend was not told");
    proxy_stop(px);
    tf_peer_stop(be);
}

/* PROXY v2: the backend learns the client's address and port first. */
TF_TEST(proxy_protocol_v2, 30)
{
    int bport, port;
    tf_peer *be = backend("proxyv2", NULL, &bport), *px;
    struct client c;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    tf_done rd;

    px = proxy(bport, &port, "--cert", TF_ECDSA_CERT, "--key", TF_ECDSA_KEY, "--proxy-protocol",
               "v2", NULL);
    client_open(&c, port);
    assert_int_equal(getsockname(tlsflow_fd(c.flow), (struct sockaddr *)&ss, &sl), 0);
    write_sync(&c, "ping", 4);
    tf_read_sync(c.loop, c.flow, &rd, 10000);
    assert_int_equal(rd.status, TLSFLOW_OK);
    if (ss.ss_family == AF_INET) {
        const char *want = tf_fmt("proxy v2 cmd 0x21 tcp4 127.0.0.1:%d -> 127.0.0.1:%d",
                                  ntohs(((struct sockaddr_in *)&ss)->sin_port), port);
        if (tf_peer_wait_log(be, want, tf_ms(5000)) < 0)
            fail_msg("the backend did not see \"%s\"", want);
    }
    client_free(&c);
    proxy_stop(px);
    tf_peer_stop(be);
}

/* TLS to the backend (a tlsflow echo server of this process), verified:
 * with TLS clients, and with plain TCP clients. */
TF_TEST(tls_backend, 60)
{
    static uint8_t buf[512 * 1024];
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *scfg = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, NULL);
    tf_echo e;
    int port, pport;
    tf_peer *px, *tcp_px;
    tf_xfer x;
    struct client c;
    tlsflow_config *ccfg = tf_client_config(NULL, TF_CA);
    tf_done d;

    tf_echo_listen(&e, loop, scfg);
    px = proxy(e.port, &port, "--cert", TF_ECDSA_CERT, "--key", TF_ECDSA_KEY, "--tls-backend",
               "--ca", TF_CA, "--backend-name", "localhost", NULL);
    /* The client flow and the echo server share this loop. */
    assert_int_equal(tf_connect_sync(loop, ccfg, "localhost", port, &d, 10000), 0);
    c.flow = d.flow;
    tf_xfer_start(&x, c.flow, sizeof(buf), sizeof(buf), 11, TF_DATA_BINARY);
    tf_run_until(loop, tf_xfer_cond, &x, 20000, "TLS -> proxy -> TLS echo");
    assert_false(x.failed);
    assert_int_equal(x.received, sizeof(buf));
    tf_xfer_release(&x);
    tlsflow_free(c.flow);
    /* Plain TCP in. */
    tcp_px = proxy(e.port, &pport, "--tls-backend", "--ca", TF_CA, "--backend-name", "localhost",
                   NULL);
    int fd = tf_tcp_connect(pport);
    assert_true(fd >= 0);
    tf_pump *pump = tf_pump_start(fd, fd, sizeof(buf), 12, TF_DATA_BINARY, 0);
    tf_deadline dl = tf_deadline_in(20000);
    while (!tf_pump_done(pump))
        tf_run_step(loop, &dl, "TCP -> proxy -> TLS echo");
    tf_pump_result pr;
    shutdown(fd, SHUT_WR);
    tf_pump_finish(pump, &pr);
    assert_false(pr.mismatch);
    assert_int_equal(pr.received, sizeof(buf));
    close(fd);
    /* A backend whose certificate does not verify: refused. */
    tf_peer *bad = proxy(e.port, &pport, "--tls-backend", "--ca", TF_UNTRUSTED_CA, NULL);
    fd = tf_tcp_connect(pport);
    assert_true(fd >= 0);
    tf_run_for(loop, 500);
    assert_true(tf_drain(fd, 5000) <= 0);
    close(fd);
    proxy_stop(bad);
    proxy_stop(tcp_px);
    proxy_stop(px);
    tf_echo_close(&e);
    tlsflow_loop_free(loop);
    tlsflow_config_free(ccfg);
    tlsflow_config_free(scfg);
}

/* --help, a bad option; and with two threads, a connection that moves
 * nothing for --idle-timeout is reset (both sides). */
TF_TEST(help_and_idle_timeout, 30)
{
    int bport = tf_free_port(), port, st;
    tf_peer *h, *be, *px;
    struct client c;
    tf_done rd;
    long long t0;

    h = tf_peer_start(TF_PEER_STDOUT, TF_PROXY_BIN, "--help", NULL);
    st = tf_peer_wait(h, tf_ms(5000));
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    tf_peer_stop(h);
    h = tf_peer_start(0, TF_PROXY_BIN, "--listen", "127.0.0.1:1", NULL);   /* no --backend */
    st = tf_peer_wait(h, tf_ms(5000));
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 2);
    assert_true(tf_peer_log_contains(h, "usage:"));
    tf_peer_stop(h);

    tf_require_bins("socat", NULL);
    be = tf_peer_start(0, "socat", tf_fmt("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork", bport),
                       "EXEC:cat", NULL);
    assert_int_equal(tf_wait_port(bport, tf_ms(10000), be), 0);
    px = proxy(bport, &port, "--cert", TF_ECDSA_CERT, "--key", TF_ECDSA_KEY, "--threads", "2",
               "--idle-timeout", "1", NULL);
    client_open(&c, port);
    write_sync(&c, "ping", 4);
    tf_read_sync(c.loop, c.flow, &rd, 10000);
    assert_int_equal(rd.status, TLSFLOW_OK);
    t0 = tf_now_ms();
    tf_read_sync(c.loop, c.flow, &rd, 10000);       /* nothing moves: the proxy resets */
    assert_int_equal(rd.status, TLSFLOW_ERROR);
    if (tf_now_ms() - t0 < 800)
        fail_msg("reset after %lld ms, before the 1 s idle timeout", tf_now_ms() - t0);
    client_free(&c);
    proxy_stop(px);
    tf_peer_stop(be);
}

/* ---- Many at once ---- */

#define MANY 1000
#define MANY_LEN 4096

struct many {
    tf_done  open[MANY];
    tf_xfer  x[MANY];
    int      opened, failed, started;
};

static bool many_done(void *arg)
{
    struct many *m = arg;

    for (int i = 0; i < m->started; i++)
        if (!tf_xfer_cond(&m->x[i]))
            return false;
    return m->started + m->failed == MANY;
}

TF_TEST(thousand_flows, 240)
{
    static struct many m;
    struct rlimit rl;
    int bport, port;
    tf_peer *be, *px;
    tlsflow_loop *loop;
    tlsflow_config *cfg;

    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < 4 * MANY)
        skip();
    rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);        /* the peers inherit it */
    be = backend("echo", NULL, &bport);
    px = proxy(bport, &port, "--cert", TF_ECDSA_CERT, "--key", TF_ECDSA_KEY, NULL);
    loop = tf_loop_new();
    cfg = tf_client_config(NULL, TF_CA);
    memset(&m, 0, sizeof(m));
    /* At most 64 handshakes at a time (each has its own timeout; under ASan
     * a thousand at once outlast it); the flows all stay open to the end. */
    int issued = 0;
    tf_deadline dl = tf_deadline_in(180000);
    while (!many_done(&m)) {
        while (issued < MANY && issued - (m.started + m.failed) < 64) {
            assert_int_equal(tlsflow_connect(loop, cfg, "127.0.0.1", tf_fmt("%d", port), tf_on_done,
                                             &m.open[issued]), 0);
            issued++;
        }
        tf_run_step(loop, &dl, "1000 flows through the proxy");
        for (int i = m.started + m.failed; i < MANY && m.open[i].n; i++) {
            if (m.open[i].status != TLSFLOW_OK) {
                fprintf(stderr, "flow %d: %s\n", i, m.open[i].message);
                m.failed++;
                continue;
            }
            tf_xfer_start(&m.x[i], m.open[i].flow, MANY_LEN, MANY_LEN, 1000 + (uint64_t)i,
                          TF_DATA_BINARY);
            m.started++;
        }
    }
    assert_int_equal(m.failed, 0);
    /* None was closed: at the end all thousand are open through the proxy at once. */
    for (int i = 0; i < MANY; i++) {
        if (m.x[i].failed || m.x[i].received != MANY_LEN)
            fail_msg("flow %d: %zu bytes back, %s", i, m.x[i].received, m.x[i].message);
        tf_xfer_release(&m.x[i]);
        tlsflow_free(m.open[i].flow);
    }
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    proxy_stop(px);
    tf_peer_stop(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(gnutls_cli_socat_echo),
        TF_CASE(s_client_socat_file),
        TF_CASE(curl_http_server),
        TF_CASE(nginx_backend),
        TF_CASE(half_close_client_first),
        TF_CASE(half_close_backend_first),
        TF_CASE(backend_refuses),
        TF_CASE(backend_resets),
        TF_CASE(client_vanishes),
        TF_CASE(proxy_protocol_v2),
        TF_CASE(tls_backend),
        TF_CASE(help_and_idle_timeout),
        TF_CASE(thousand_flows),
    };
    int ret;

    if (tf_expect_ktls() && !tf_kernel_has_tls()) {
        fprintf(stderr, "TLSFLOW_EXPECT_KTLS=1 but the kernel has no tls ULP\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tlsflow-proxy-test.XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    ret = cmocka_run_group_tests(tests, NULL, NULL);
    if (fork() == 0)
        execlp("rm", "rm", "-rf", tmpdir, (char *)NULL);
    wait(NULL);
    return ret;
}
