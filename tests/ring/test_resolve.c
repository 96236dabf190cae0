/* ring/resolve.c: tlsflow_connect resolves names on a worker thread.  The
 * shim slow_gai.so (LD_PRELOAD, set by CTest) makes "slow.tlsflow.test" take
 * 2 s to resolve: meanwhile another flow of the same loop echoes without a
 * pause over 50 ms, then the slow connect opens and echoes too; and
 * tlsflow_loop_free with the lookup in flight drops it (no callback, nothing
 * leaked: the ASan lane checks). */
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <time.h>

#include "tf_test.h"

#define SLOW_HOST "slow.tlsflow.test"
#define SLOW_MS 2000
#define MAX_GAP_MS 50
#define ROUND_LEN (64 * 1024)

static tf_echo echo;

/* Both ends verify nothing: the certificate names "localhost", not the
 * names connected to here. */
static tlsflow_config *client_config(void)
{
    tlsflow_config *cfg = tf_config(TLSFLOW_CLIENT, NULL, 0);

    assert_int_equal(tlsflow_config_set_verify(cfg, TLSFLOW_VERIFY_NONE), 0);
    return cfg;
}

/* A round of echo on flow: ROUND_LEN out, checked back. */
static void echo_round(tf_xfer *x, tlsflow *flow, unsigned *round)
{
    memset(x, 0, sizeof(*x));
    x->len = x->expect = ROUND_LEN;
    x->chunk = 16 * 1024;
    x->seed = 11;
    x->offset = (uint64_t)*round * ROUND_LEN;
    x->kind = TF_DATA_BINARY;
    tf_xfer_begin(x, flow);
    (*round)++;
}

static void echo_fully(tlsflow_loop *loop, tlsflow *flow)
{
    tf_xfer x;

    tf_xfer_start(&x, flow, ROUND_LEN, ROUND_LEN, 5, TF_DATA_BINARY);
    tf_run_until(loop, tf_xfer_cond, &x, 10000, "echo");
    if (x.failed)
        fail_msg("echo: %s", x.message);
    assert_int_equal(x.received, ROUND_LEN);
    tf_xfer_release(&x);
}

TF_TEST(test_slow_lookup_stalls_nothing, 60)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *scfg = tf_config(TLSFLOW_SERVER, NULL, 0);
    tlsflow_config *ccfg = client_config();
    tf_done fast, slow = { 0 };
    char port[16];
    tf_xfer x;
    unsigned rounds = 0;
    size_t progress, last_progress = 0;
    long long start, last, now, gap = 0, slow_ms;
    tf_deadline dl;

    tf_echo_listen(&echo, loop, scfg);
    assert_int_equal(tf_connect_sync(loop, ccfg, "127.0.0.1", echo.port, &fast, 10000), 0);
    snprintf(port, sizeof(port), "%d", echo.port);
    start = tf_now_ms();
    assert_int_equal(tlsflow_connect(loop, ccfg, SLOW_HOST, port, tf_on_done, &slow), 0);
    /* It returned at once: the lookup runs elsewhere. */
    assert_true(tf_now_ms() - start < 100);
    echo_round(&x, fast.flow, &rounds);
    last = tf_now_ms();
    dl = tf_deadline_in(SLOW_MS + 10000);
    while (!slow.n) {
        tf_run_step(loop, &dl, "the slow connect");
        now = tf_now_ms();
        progress = (size_t)rounds * 2 * ROUND_LEN + x.written + x.received;
        if (progress != last_progress) {
            if (now - last > gap)
                gap = now - last;
            last = now;
            last_progress = progress;
        }
        if (x.done) {
            if (x.failed)
                fail_msg("echo while resolving: %s", x.message);
            tf_xfer_release(&x);
            echo_round(&x, fast.flow, &rounds);
        }
    }
    slow_ms = tf_now_ms() - start;
    tf_run_until(loop, tf_xfer_cond, &x, 10000, "the last round");
    tf_xfer_release(&x);
    print_message("slow connect after %lld ms; %u echo rounds meanwhile, longest pause %lld ms\n",
                  slow_ms, rounds, gap);
    if (slow.status != TLSFLOW_OK)
        fail_msg("the slow connect: %s", slow.message);
    assert_true(slow_ms >= tf_ms(SLOW_MS) - 50);
    assert_true(rounds >= 2);
    assert_true(gap <= tf_ms(MAX_GAP_MS));
    echo_fully(loop, slow.flow);
    echo_fully(loop, fast.flow);
    tlsflow_free(slow.flow);
    tlsflow_free(fast.flow);
    tf_echo_close(&echo);
    tlsflow_loop_free(loop);
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The loop goes while the worker still sleeps in getaddrinfo: its answer is
 * dropped when it comes, the callback never runs. */
TF_TEST(test_free_during_lookup, 60)
{
    tlsflow_config *ccfg = client_config();
    tlsflow_loop *loop;
    tf_done slow = { 0 }, again = { 0 };
    int fds;

    loop = tf_loop_new();
    fds = tf_fd_count();
    assert_int_equal(tlsflow_connect(loop, ccfg, SLOW_HOST, "9", tf_on_done, &slow), 0);
    tf_run_for(loop, 100);
    assert_int_equal(slow.n, 0);
    tlsflow_loop_free(loop);
    sleep_ms(tf_ms(SLOW_MS) + 500);
    assert_int_equal(slow.n, 0);
    assert_true(tf_fd_count() <= fds);
    /* The resolver still serves a new loop; a lookup's failure is reported
     * from the run, port "9" (discard) refusing or not. */
    loop = tf_loop_new();
    assert_int_equal(tlsflow_connect(loop, ccfg, SLOW_HOST, "1", tf_on_done, &again), 0);
    tlsflow_loop_free(loop);
    tlsflow_config_free(ccfg);
    assert_int_equal(again.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_slow_lookup_stalls_nothing),
        TF_CASE(test_free_during_lookup),
    };

    if (!dlsym(RTLD_DEFAULT, "tf_slow_gai_loaded")) {
        fprintf(stderr, "skipped: the getaddrinfo shim is not preloaded (run it through ctest)\n");
        return TF_SKIP;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
