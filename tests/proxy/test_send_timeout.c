/* tlsflow-proxy --send-timeout (tools/proxy_conn.c, tools/sendwatch.c)
 * with real peers: a python backend (backend.py flood) that writes as fast
 * as it may, python ssl clients (tls_client.py) in front.
 *   never_reader   a client that sends its request and never reads: the
 *                  proxy drops it (and the backend) after --send-timeout 2,
 *                  not before, holding a bounded amount meanwhile (its RSS;
 *                  the bytes the backend got rid of); the statistics line
 *                  counts one send timeout.
 *   slow_reader    a client that reads 160 KB/s, steadily, for 7 s: each
 *                  1 MiB splice toward it takes ~6 s, longer than the
 *                  timeout, yet its acknowledged bytes grow: it must not be
 *                  dropped (0 send timeouts).
 *   s_client_*     the same two with peers the VM has (socat flooding from
 *                  /dev/zero, openssl s_client whose stdout the test reads
 *                  slowly or not at all): in the kTLS lane (label ktls) the
 *                  proxy's splices then run on kTLS sockets, where a splice
 *                  toward a peer that does not read blocks in the kernel. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <poll.h>
#include <cmocka.h>

#include "tf_test.h"

#define BACKEND_PY TF_SOURCE_DIR "/tests/proxy/backend.py"
#define CLIENT_PY  TF_SOURCE_DIR "/tests/proxy/tls_client.py"
#define SEND_TIMEOUT_S 2

static tf_peer *flood_backend(int *port)
{
    tf_peer *p;

    if (!tf_have_bin("python3")) {
        tf_skip_note("no python3 for the backend and the clients");
        skip();
    }
    *port = tf_free_port();
    p = tf_peer_start(0, "python3", BACKEND_PY, "flood", tf_fmt("%d", *port), NULL);
    if (tf_peer_wait_log(p, "ready", 10000) < 0)
        fail_msg("backend did not start");
    return p;
}

static tf_peer *proxy(int bport, int *port)
{
    tf_peer *p;

    *port = tf_free_port();
    p = tf_peer_start(0, TF_PROXY_BIN, "--listen", tf_fmt("127.0.0.1:%d", *port), "--backend",
                      tf_fmt("127.0.0.1:%d", bport), "--cert", TF_ECDSA_CERT, "--key",
                      TF_ECDSA_KEY, "--send-timeout", tf_fmt("%d", SEND_TIMEOUT_S),
                      "--stats-interval", "1", "--grace", "1", NULL);
    if (tf_wait_port(*port, tf_ms(10000), p) < 0)
        fail_msg("tlsflow-proxy did not listen");
    return p;
}

static tf_peer *client(const char *mode, int port, int seconds)
{
    tf_peer *p = tf_peer_start(0, "python3", CLIENT_PY, mode, tf_fmt("%d", port), TF_CA,
                               tf_fmt("%d", seconds), NULL);

    if (tf_peer_wait_log(p, "sent", 10000) < 0)
        fail_msg("%s client did not connect:\n%s", mode, tf_peer_log(p));
    return p;
}

/* The proxy's resident memory in KiB. */
static long rss_kib(tf_peer *p)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)tf_peer_pid(p));
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* SIGTERM; the last statistics line's send timeouts (its exit line). */
static unsigned long long proxy_stop(tf_peer *p)
{
    unsigned long long n = ~0ull, v;
    char *log = tf_peer_term_log(p), *at;

    for (at = strstr(log, "backend failures, "); at; at = strstr(at + 1, "backend failures, "))
        if (sscanf(at, "backend failures, %llu send timeouts", &v) == 1)
            n = v;
    if (n == ~0ull)
        fail_msg("no statistics line with send timeouts:\n%s", log);
    free(log);
    tf_peer_stop(p);
    return n;
}

static unsigned long long number_after(const char *log, const char *needle)
{
    const char *at = strstr(log, needle);
    unsigned long long n = 0;

    if (at)
        sscanf(at + strlen(needle), "%llu", &n);
    return n;
}

/* Until watch's log has needle (the drop), sampling the proxy's RSS: the
 * drop must come after the send timeout, not before, within a few seconds
 * past it, with the proxy's memory bounded meanwhile. */
static void wait_drop(tf_peer *px, tf_peer *watch, const char *needle)
{
    long long t0 = tf_now_ms(), waited;
    long rss, max_rss = 0;

    /* The buffers fill within milliseconds; from then on nothing moves. */
    while (!tf_peer_log_contains(watch, needle)) {
        if (tf_now_ms() - t0 > tf_ms((SEND_TIMEOUT_S + 8) * 1000))
            fail_msg("the proxy still holds a client that never reads after %lld ms (timeout %d s):\n%s",
                     tf_now_ms() - t0, SEND_TIMEOUT_S, tf_peer_log(px));
        rss = rss_kib(px);
        if (rss > max_rss)
            max_rss = rss;
        usleep(50000);
    }
    waited = tf_now_ms() - t0;
    fprintf(stderr, "dropped after %lld ms (%s), proxy RSS at most %ld KiB\n", waited, needle, max_rss);
    if (waited < SEND_TIMEOUT_S * 1000 - 200)
        fail_msg("dropped after %lld ms, before the %d s send timeout", waited, SEND_TIMEOUT_S);
    if (max_rss <= 0 || max_rss > 64 * 1024)
        fail_msg("the proxy's RSS reached %ld KiB while its client did not read", max_rss);
}

TF_TEST(never_reader, 60)
{
    int bport, port;
    tf_peer *be = flood_backend(&bport), *px = proxy(bport, &port), *cl;
    char *log;

    cl = client("never", port, 3 * SEND_TIMEOUT_S + 4);
    wait_drop(px, be, "peer gone:");
    log = tf_peer_log(be);
    unsigned long long flooded = number_after(log, "after ");
    fprintf(stderr, "backend: %s", strstr(log, "peer gone:"));
    /* What the socket buffers and one pipe hold, no more. */
    if (flooded == 0 || flooded > 64ull << 20)
        fail_msg("the backend got rid of %llu bytes before the drop", flooded);
    free(log);
    /* The client, reading at last, finds the connection ended (a reset, or
     * the close_notify the proxy tried), not alive. */
    if (tf_peer_wait_log(cl, "after", tf_ms(20000)) < 0 || !tf_peer_log_contains(cl, "ended after"))
        fail_msg("client: %s", tf_peer_log(cl));
    assert_int_equal(proxy_stop(px), 1);
    tf_peer_stop(cl);
    tf_peer_stop(be);
}

TF_TEST(slow_reader, 60)
{
    const int seconds = 7;
    int bport, port;
    tf_peer *be = flood_backend(&bport), *px = proxy(bport, &port), *cl;
    char *log;

    cl = client("slow", port, seconds);
    if (tf_peer_wait_log(cl, "after", tf_ms((seconds + 10) * 1000)) < 0)
        fail_msg("client: %s", tf_peer_log(cl));
    log = tf_peer_log(cl);
    fprintf(stderr, "client: %s", log);
    if (!strstr(log, "alive after"))
        fail_msg("a client reading 160 KB/s was dropped (--send-timeout %d):\n%s\nproxy:\n%s",
                 SEND_TIMEOUT_S, log, tf_peer_log(px));
    /* It did read, past what the buffers held at the start. */
    if (number_after(log, "alive after ") < 512 * 1024)
        fail_msg("the slow client read only %llu bytes", number_after(log, "alive after "));
    free(log);
    if (tf_peer_log_contains(be, "peer gone:"))
        fail_msg("the backend lost the proxy while its client read");
    assert_int_equal(proxy_stop(px), 0);
    tf_peer_stop(cl);
    tf_peer_stop(be);
}

/* ---- The same with socat and s_client ---- */

static tf_peer *zero_backend(int *port)
{
    tf_peer *p;

    tf_require_bins("socat", "openssl", NULL);
    *port = tf_free_port();
    p = tf_peer_start(0, "socat", "-U", tf_fmt("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork", *port),
                      "OPEN:/dev/zero", NULL);
    if (tf_wait_port(*port, tf_ms(10000), p) < 0)
        fail_msg("socat did not listen");
    return p;
}

/* s_client with its stdout into a pipe the test reads (or not). */
static tf_peer *s_client(int port)
{
    return tf_peer_start(TF_PEER_STDOUT, "openssl", "s_client", "-connect",
                         tf_fmt("127.0.0.1:%d", port), "-CAfile", TF_CA, "-servername",
                         "localhost", "-quiet", NULL);
}

/* Reads up to max bytes of fd within ms; -1 at EOF (nothing read then). */
static long read_some(int fd, size_t max, int ms)
{
    static char buf[65536];
    struct pollfd pf = { .fd = fd, .events = POLLIN };
    long n = 0;

    if (max > sizeof(buf))
        max = sizeof(buf);
    if (poll(&pf, 1, ms) <= 0)
        return 0;
    n = read(fd, buf, max);
    return n > 0 ? n : -1;
}

static void expect_ktls(tf_peer *px)
{
    if (tf_expect_ktls() && !tf_peer_log_contains(px, "kTLS tx 100% rx 100%"))
        fail_msg("kTLS lane: the proxy's client flow is not in the kernel:\n%s", tf_peer_log(px));
}

TF_TEST(s_client_never_reader, 90)
{
    int bport, port;
    tf_peer *be = zero_backend(&bport), *px = proxy(bport, &port), *cl;
    long long t0;
    long n;

    cl = s_client(port);
    /* The stats line (every second) says when the send timeout came. */
    wait_drop(px, px, " 1 send timeouts");
    expect_ktls(px);
    /* The client, read at last, gets what its buffers held, then the end. */
    t0 = tf_now_ms();
    while ((n = read_some(tf_peer_stdout(cl), 65536, 100)) >= 0)
        if (tf_now_ms() - t0 > tf_ms(20000))
            fail_msg("s_client still gets bytes 20 s after the send timeout");
    assert_int_equal(proxy_stop(px), 1);
    tf_peer_stop(cl);
    tf_peer_stop(be);
}

TF_TEST(s_client_slow_reader, 90)
{
    const int seconds = 7;
    int bport, port;
    tf_peer *be = zero_backend(&bport), *px = proxy(bport, &port), *cl;
    long long t0;
    long n, total = 0;

    cl = s_client(port);
    t0 = tf_now_ms();
    while (tf_now_ms() - t0 < seconds * 1000) {
        n = read_some(tf_peer_stdout(cl), 8192, 1000);
        if (n < 0)
            fail_msg("a client reading 160 KB/s was dropped after %ld bytes:\n%s", total,
                     tf_peer_log(px));
        total += n;
        if (tf_peer_log_contains(px, " 1 send timeouts"))
            fail_msg("a client reading 160 KB/s timed out after %ld bytes:\n%s", total,
                     tf_peer_log(px));
        usleep(50000);
    }
    fprintf(stderr, "s_client read %ld bytes in %d s\n", total, seconds);
    if (total < 512 * 1024)
        fail_msg("the slow client read only %ld bytes", total);
    expect_ktls(px);
    /* (Not read from here on, it may time out while the proxy stops.) */
    proxy_stop(px);
    tf_peer_stop(cl);
    tf_peer_stop(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(never_reader),
        TF_CASE(slow_reader),
        TF_CASE(s_client_never_reader),
        TF_CASE(s_client_slow_reader),
    };

    if (tf_expect_ktls() && !tf_kernel_has_tls()) {
        fprintf(stderr, "TLSFLOW_EXPECT_KTLS=1 but the kernel has no tls ULP\n");
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
