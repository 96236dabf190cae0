/* The receive budget (ring/flow_rx.c): peers that flood flows whose
 * application has stopped reading cost each flow at most its budget, on the
 * userspace path here and with the receive key in the kernel in the VM lane
 * (the same executable, label ktls); the loop's memory limit caps them all;
 * and once the application reads again every byte arrives, in order. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tf_test.h"
#include "ring/ring.h"   /* what the loop and its flows hold */

#define PAIRS 8
#define FLOOD (2u << 20)          /* bytes each client sends */
#define CHUNK (64u * 1024)
#define BUDGET (48u * 1024)

struct pair {
    tlsflow   *server, *client;
    tf_checker chk;
    size_t     received, sent;
    bool       reading;           /* the application reads (else it has stopped) */
    bool       read_pending;
    bool       failed;
    uint8_t    buf[CHUNK];        /* the client's write in flight (the kernel may read it) */
};

static struct pair pairs[PAIRS];
static int accepted, connected;

static void on_read(tlsflow *f, const tlsflow_result *r, void *arg);

static void read_next(struct pair *p)
{
    if (p->read_pending || !p->reading || p->received == FLOOD)
        return;
    p->read_pending = true;
    assert_int_equal(tlsflow_read(p->server, on_read, p), 0);
}

static void on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct pair *p = arg;

    (void)f;
    p->read_pending = false;
    if (r->status != TLSFLOW_OK) {
        p->failed = true;
        return;
    }
    if (!tf_checker_feed(&p->chk, r->data, r->len))
        p->failed = true;
    p->received += r->len;
    read_next(p);
}

static void on_written(tlsflow *f, const tlsflow_result *r, void *arg);

static void write_next(struct pair *p)
{
    size_t n = FLOOD - p->sent < CHUNK ? FLOOD - p->sent : CHUNK;

    if (!n)
        return;
    tf_data_fill(p->buf, n, 9, p->sent, TF_DATA_BINARY);
    assert_int_equal(tlsflow_write(p->client, p->buf, n, on_written, p), 0);
    p->sent += n;
}

static void on_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    if (r->status != TLSFLOW_OK) {
        ((struct pair *)arg)->failed = true;
        return;
    }
    write_next(arg);
}

static void on_accept(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct pair *p;

    (void)arg;
    if (!f || r->status != TLSFLOW_OK || accepted == PAIRS)
        return;
    p = &pairs[accepted++];
    p->server = f;
    p->reading = true;
    /* One segment is read, then the application stops. */
    p->read_pending = true;
    assert_int_equal(tlsflow_read(f, on_read, p), 0);
    p->reading = false;
}

static void on_connect(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    assert_int_equal(r->status, TLSFLOW_OK);
    pairs[connected++].client = f;
}

static bool all_open(void *arg)
{
    (void)arg;
    return accepted == PAIRS && connected == PAIRS;
}

static bool all_received(void *arg)
{
    (void)arg;
    for (int i = 0; i < PAIRS; i++)
        if (pairs[i].received < FLOOD && !pairs[i].failed)
            return false;
    return true;
}

static void flood(size_t loop_limit)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *scfg = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, NULL);
    tlsflow_config *ccfg = tf_client_config(NULL, TF_CA);
    tlsflow_listener *ls;
    size_t most = 0;
    char port[16];

    memset(pairs, 0, sizeof(pairs));
    accepted = connected = 0;
    assert_int_equal(tlsflow_config_set_receive_budget(scfg, BUDGET), 0);
    if (loop_limit)
        assert_int_equal(tlsflow_loop_set_memory_limit(loop, loop_limit), 0);
    assert_int_equal(tlsflow_listen(loop, scfg, "127.0.0.1", "0", on_accept, NULL, &ls), 0);
    snprintf(port, sizeof(port), "%d", tlsflow_listener_port(ls));
    for (int i = 0; i < PAIRS; i++)
        assert_int_equal(tlsflow_connect(loop, ccfg, "localhost", port, on_connect, NULL), 0);
    tf_run_until(loop, all_open, NULL, 10000, "every pair open");
    /* Pairs are matched by order; the checker only needs each server's own stream. */
    for (int i = 0; i < PAIRS; i++) {
        tf_checker_init(&pairs[i].chk, 9, TF_DATA_BINARY);
        write_next(&pairs[i]);
    }
    /* The peers flood while nobody reads: watch what the loop holds. */
    for (int t = 0; t < 60; t++) {
        tf_run_for(loop, 25);
        for (int i = 0; i < PAIRS; i++) {
            assert_true(pairs[i].server->rx_held <= BUDGET);
            if (pairs[i].server->rx_held > most)
                most = pairs[i].server->rx_held;
        }
        assert_true(loop->rx_held <= (size_t)PAIRS * BUDGET);
        if (loop_limit)
            assert_true(loop->rx_held <= loop_limit + (size_t)PAIRS * TF_BR_SIZE);
    }
    print_message("nobody reading: the loop holds %zu bytes of received data (limit %zu), "
                  "a flow at most %zu (budget %u)\n", loop->rx_held, loop_limit, most, BUDGET);
    for (int i = 0; i < PAIRS; i++) {
        tlsflow_info info;
        assert_int_equal(tlsflow_get_info(pairs[i].server, &info), 0);
        if (getenv("TLSFLOW_EXPECT_KTLS") && !strcmp(getenv("TLSFLOW_EXPECT_KTLS"), "1"))
            assert_int_equal(info.ktls_rx, 1);
        assert_false(pairs[i].failed);
    }
    /* The application reads again: nothing was lost. */
    for (int i = 0; i < PAIRS; i++) {
        pairs[i].reading = true;
        read_next(&pairs[i]);
    }
    tf_run_until(loop, all_received, NULL, 60000, "every byte read");
    for (int i = 0; i < PAIRS; i++) {
        assert_false(pairs[i].failed);
        assert_int_equal(pairs[i].received, FLOOD);
        tlsflow_free(pairs[i].server);
        tlsflow_free(pairs[i].client);
    }
    tlsflow_listener_close(ls);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    assert_int_equal(loop->rx_held, 0);
    tlsflow_loop_free(loop);
    tlsflow_config_free(ccfg);
    tlsflow_config_free(scfg);
}

TF_TEST(test_budget_holds, 120)
{
    flood(0);
}

TF_TEST(test_loop_limit_holds, 120)
{
    flood(4 * BUDGET);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_budget_holds),
        TF_CASE(test_loop_limit_holds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
