/* 1,000 concurrent flows on one loop (tlsflow client <-> tlsflow server),
 * each side sending its own checksummed stream, closes in random order from
 * both sides: every byte arrives, and descriptors and heap return to where
 * they were once every flow is freed.  TF_FAULTS_FLOWS overrides the count
 * (e.g. under valgrind). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <cmocka.h>

#include "tf_test.h"

#define MAX_LEN (48 * 1024)

struct side {
    struct pair *pair;
    tlsflow *flow;
    bool server, closes_first, close_asked, closed, eof;
    uint32_t seed_tx, seed_rx;
    size_t tx_len, rx_len, got, written;
    uint8_t *tx;
    int errors;
};

struct pair {
    struct side cli, srv;
};

static struct pair *pairs;
static size_t npairs, nextsrv, done_sides, bad;
static uint8_t scratch[MAX_LEN];

static void maybe_done(struct side *s)
{
    if (s->closed && s->eof) {
        tlsflow_free(s->flow);
        s->flow = NULL;
        free(s->tx);
        s->tx = NULL;
        done_sides++;
    }
}

static void on_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct side *s = arg;

    (void)f;
    if (r->status != TLSFLOW_OK) {
        bad++;
        print_error("close: %s\n", tlsflow_error_message(r->error));
    }
    s->closed = true;
    maybe_done(s);
}

static void ask_close(struct side *s)
{
    if (s->close_asked)
        return;
    s->close_asked = true;
    assert_int_equal(tlsflow_close(s->flow, on_closed, s), 0);
}

static void on_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct side *s = arg;

    (void)f;
    if (r->status != TLSFLOW_OK) {
        bad++;
        return;
    }
    s->written += r->len;
    if (s->written == s->tx_len && (s->closes_first || s->eof))
        ask_close(s);
}

static void on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct side *s = arg;

    if (r->status == TLSFLOW_OK) {
        if (s->got + r->len > s->rx_len) {
            bad++;
        } else {
            tf_data_fill(scratch, r->len, s->seed_rx, s->got, TF_DATA_BINARY);
            if (memcmp(scratch, r->data, r->len) != 0)
                bad++;
        }
        s->got += r->len;
        assert_int_equal(tlsflow_read(f, on_read, s), 0);
        return;
    }
    if (r->status != TLSFLOW_EOF || s->got != s->rx_len) {
        bad++;
        print_error("read end: status %d, %zu of %zu bytes: %s\n", r->status, s->got, s->rx_len,
                    tlsflow_error_message(r->error));
    }
    s->eof = true;
    if (s->written == s->tx_len)
        ask_close(s);
    maybe_done(s);
}

static void start(struct side *s, tlsflow *f)
{
    size_t half;

    s->flow = f;
    s->tx = malloc(s->tx_len ? s->tx_len : 1);
    tf_data_fill(s->tx, s->tx_len, s->seed_tx, 0, TF_DATA_BINARY);
    /* Two writes in flight, the second maybe empty. */
    half = s->tx_len / 2;
    assert_int_equal(tlsflow_write(f, s->tx, half, on_written, s), 0);
    assert_int_equal(tlsflow_write(f, s->tx + half, s->tx_len - half, on_written, s), 0);
    assert_int_equal(tlsflow_read(f, on_read, s), 0);
}

/* Server flows arrive in some order (names resolve in parallel): every pair
 * has the same lengths and seeds, so a server side takes the next pair's
 * parameters in accept order, whichever client it met. */
static void on_accept(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status != TLSFLOW_OK) {
        bad++;
        print_error("accept: %s\n", tlsflow_error_message(r->error));
        return;
    }
    assert_true(nextsrv < npairs);
    start(&pairs[nextsrv++].srv, f);
}

static void on_connect(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct side *s = arg;

    if (r->status != TLSFLOW_OK) {
        bad++;
        done_sides += 2;
        print_error("connect: %s\n", tlsflow_error_message(r->error));
        return;
    }
    start(s, f);
}

static void run(size_t n, uint32_t seed)
{
    tlsflow_loop *loop;
    tlsflow_config *scfg = tf_config(TLSFLOW_SERVER, NULL, 60000);
    tlsflow_config *ccfg = tf_config(TLSFLOW_CLIENT, NULL, 60000);
    tlsflow_listener *ls;
    char port[16];
    long long end;

    srand(seed);
    npairs = n;
    nextsrv = done_sides = bad = 0;
    pairs = calloc(n, sizeof(*pairs));
    /* Lengths and who closes first are per pair; a server stream's seed is
     * chosen so that both sides of pair i agree whatever the accept order:
     * every pair sends the same lengths in the same direction. */
    {
        size_t cli_len = (size_t)rand() % MAX_LEN, srv_len = (size_t)rand() % MAX_LEN;
        for (size_t i = 0; i < n; i++) {
            struct pair *p = &pairs[i];
            p->cli.tx_len = p->srv.rx_len = cli_len;
            p->srv.tx_len = p->cli.rx_len = srv_len;
            p->cli.seed_tx = p->srv.seed_rx = 1;
            p->srv.seed_tx = p->cli.seed_rx = 2;
            p->srv.server = true;
            /* Servers meet their clients in accept order, which need not be
             * the order of the connects: every server may start the close
             * (someone must), and half the clients start theirs too. */
            p->cli.closes_first = rand() & 1;
            p->srv.closes_first = true;
        }
    }
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    assert_int_equal(tlsflow_listen(loop, scfg, "127.0.0.1", "0", on_accept, NULL, &ls), 0);
    snprintf(port, sizeof(port), "%d", tlsflow_listener_port(ls));
    for (size_t i = 0; i < n; i++)
        assert_int_equal(tlsflow_connect(loop, ccfg, "localhost", port, on_connect, &pairs[i].cli), 0);
    end = tf_now_ms() + tf_ms(200000);
    while (done_sides < 2 * n && tf_now_ms() < end)
        tlsflow_loop_run_once(loop, 100);
    if (done_sides < 2 * n)
        fail_msg("%zu of %zu sides finished (accepted %zu)", done_sides, 2 * n, nextsrv);
    assert_int_equal(bad, 0);
    tlsflow_listener_close(ls);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    tlsflow_loop_free(loop);
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
    free(pairs);
}

TF_TEST(test_many_flows, 280)
{
    const char *e = getenv("TF_FAULTS_FLOWS");
    size_t n = e ? (size_t)atol(e) : 1000;
    struct rlimit rl;
    int fds;
    size_t heap;

    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2 * n + 64) {
        print_message("SKIP: RLIMIT_NOFILE hard limit %lu < %zu\n", (unsigned long)rl.rlim_max, 2 * n + 64);
        exit(TF_SKIP);
    }
    if (rl.rlim_cur < 2 * n + 64) {
        rl.rlim_cur = 2 * n + 64;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    run(16, 7);                  /* warm-up: one-time allocations of GnuTLS */
    fds = tf_fd_count();
    heap = tf_heap_in_use();
    run(n, 42);
    assert_int_equal(tf_fd_count(), fds);
    if (heap) {
        size_t now = tf_heap_in_use();
        print_message("heap in use: %zu before, %zu after\n", heap, now);
        assert_true(now < heap + 256 * 1024);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_many_flows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
