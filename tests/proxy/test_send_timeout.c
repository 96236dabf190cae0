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
 *                  dropped (0 send timeouts). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
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
    char *log, *at;
    int st;

    tf_peer_kill(p, SIGTERM);
    st = tf_peer_wait(p, tf_ms(10000));
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
        fail_msg("tlsflow-proxy did not exit cleanly (%d)", st);
    log = tf_peer_log(p);
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

TF_TEST(never_reader, 60)
{
    int bport, port;
    tf_peer *be = flood_backend(&bport), *px = proxy(bport, &port), *cl;
    long long t0, waited;
    long rss, max_rss = 0;
    char *log;

    cl = client("never", port, 3 * SEND_TIMEOUT_S + 4);
    t0 = tf_now_ms();
    /* The buffers fill within milliseconds; from then on nothing moves. */
    while (!tf_peer_log_contains(be, "peer gone:")) {
        if (tf_now_ms() - t0 > tf_ms((SEND_TIMEOUT_S + 4) * 1000))
            fail_msg("the proxy still holds a client that never reads after %lld ms (timeout %d s):\n%s",
                     tf_now_ms() - t0, SEND_TIMEOUT_S, tf_peer_log(px));
        rss = rss_kib(px);
        if (rss > max_rss)
            max_rss = rss;
        usleep(50000);
    }
    waited = tf_now_ms() - t0;
    fprintf(stderr, "dropped after %lld ms, proxy RSS at most %ld KiB\n", waited, max_rss);
    if (waited < SEND_TIMEOUT_S * 1000 - 200)
        fail_msg("dropped after %lld ms, before the %d s send timeout", waited, SEND_TIMEOUT_S);
    if (max_rss <= 0 || max_rss > 64 * 1024)
        fail_msg("the proxy's RSS reached %ld KiB while its client did not read", max_rss);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(never_reader),
        TF_CASE(slow_reader),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
