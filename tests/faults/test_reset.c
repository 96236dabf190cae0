/* A peer that resets the connection (SO_LINGER 0 + close) in the middle of
 * our writes, of our reads, or of the handshake: every operation completes
 * once with a clear status, nothing crashes, nothing leaks (descriptors here,
 * memory under ASan/valgrind). */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "tf_gnutls_peer.h"

#define NWRITES 32
#define WSIZE (1u << 20)

static uint8_t *blob;

struct dut {
    tlsflow *flow;
    int opened, open_err;
    int writes_ok, writes_eof, writes_err, write_calls;
    tlsflow_error last_write_err;
    int reads_ok, read_done;
    tlsflow_result read_end;
    size_t got;
};

static struct dut d;

static void on_write(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    (void)arg;
    d.write_calls++;
    if (r->status == TLSFLOW_OK)
        d.writes_ok++;
    else if (r->status == TLSFLOW_EOF)
        d.writes_eof++;
    else {
        d.writes_err++;
        d.last_write_err = r->error;
    }
}

static void on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status == TLSFLOW_OK) {
        d.reads_ok++;
        d.got += r->len;
        assert_int_equal(tlsflow_read(f, on_read, NULL), 0);
        return;
    }
    d.read_end = *r;
    d.read_done = 1;
}

static bool writer;   /* the flow writes a lot (mid-write) or only reads */

static void on_open(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status != TLSFLOW_OK) {
        d.open_err = r->error.code ? (int)r->error.code : -1;
        d.read_end = *r;
        d.read_done = 1;
        return;
    }
    d.flow = f;
    d.opened = 1;
    if (writer)
        for (int i = 0; i < NWRITES; i++)
            assert_int_equal(tlsflow_write(f, blob, WSIZE, on_write, NULL), 0);
    assert_int_equal(tlsflow_read(f, on_read, NULL), 0);
}

/* The peer reads a little of what we send, then resets. */
static void read_then_reset(tf_gnutls_peer *p)
{
    p->count = tf_gnutls_peer_recv(p, 256 * 1024);
    tf_gnutls_peer_hangup(p, true);
}

/* The peer sends a record and half of another, then resets. */
static void half_record_then_reset(tf_gnutls_peer *p)
{
    static const uint8_t part[] = { 0x17, 0x03, 0x03, 0x00, 0x40, 1, 2, 3, 4, 5, 6, 7, 8 };

    tf_gnutls_peer_send(p, "hello", 5);
    usleep(100 * 1000);
    send(p->fd, part, sizeof(part), MSG_NOSIGNAL);
    usleep(100 * 1000);
    tf_gnutls_peer_hangup(p, true);
}

static bool is_reset_error(tlsflow_error e)
{
    return e.code == TLSFLOW_E_TRUNCATED ||
           (e.code == TLSFLOW_E_SYSTEM && (e.detail == ECONNRESET || e.detail == EPIPE));
}

static bool listener_ready(int lfd)
{
    struct pollfd p = { lfd, POLLIN, 0 };

    return poll(&p, 1, 0) == 1;
}

/* One run: our flow is the server (listener) or the client (connect). */
static void run(bool dut_server, bool mid_write, tf_gnutls_script *script)
{
    tlsflow_loop *loop;
    tlsflow_config *cfg;
    tlsflow_listener *ls = NULL;
    tf_gnutls_peer peer;
    int fds = tf_fd_count(), port, lfd = -1, fd;
    char portstr[16];

    memset(&d, 0, sizeof(d));
    memset(&peer, 0, sizeof(peer));
    writer = mid_write;
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    cfg = tf_config(dut_server ? TLSFLOW_SERVER : TLSFLOW_CLIENT, NULL, 5000);
    peer.server = !dut_server;
    peer.script = script;
    if (dut_server) {
        assert_int_equal(tlsflow_listen(loop, cfg, "127.0.0.1", "0", on_open, NULL, &ls), 0);
        fd = tf_tcp_connect(tlsflow_listener_port(ls));
        assert_true(fd >= 0);
        tf_gnutls_peer_start(&peer, fd);
    } else {
        lfd = tf_tcp_listen(&port);
        assert_true(lfd >= 0);
        snprintf(portstr, sizeof(portstr), "%d", port);
        assert_int_equal(tlsflow_connect(loop, cfg, "localhost", portstr, on_open, NULL), 0);
        /* The name is resolved off the loop's thread: the loop runs until the
         * connection is there to accept. */
        TF_RUN_UNTIL(loop, listener_ready(lfd), 10000);
        fd = accept(lfd, NULL, NULL);
        close(lfd);
        assert_true(fd >= 0);
        tf_gnutls_peer_start(&peer, fd);
    }
    tf_run_until_flag(loop, &d.read_done, 10000, "the read to end");
    if (mid_write) {
        /* Every write completes; after the reset they end with EOF or the error. */
        while (d.write_calls < NWRITES && tf_try_run_until(loop, tf_gnutls_peer_done, &peer, 100))
            tf_run_for(loop, 50);
        tf_run_for(loop, 100);
        assert_int_equal(d.write_calls, NWRITES);
        assert_true(d.writes_ok < NWRITES);
        assert_true(d.writes_eof + d.writes_err > 0);
        if (d.writes_err)
            assert_true(is_reset_error(d.last_write_err));
    } else {
        assert_int_equal(d.reads_ok, 1);
        assert_int_equal(d.got, 5);
    }
    assert_int_equal(d.opened, 1);
    assert_int_equal(d.read_end.status, TLSFLOW_ERROR);
    if (!is_reset_error(d.read_end.error))
        fail_msg("read ended with %d/%d: %s", d.read_end.error.code, d.read_end.error.detail,
                 tlsflow_error_message(d.read_end.error));
    /* Sticky: a later read gets the same error. */
    tlsflow_free(d.flow);
    if (ls)
        tlsflow_listener_close(ls);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    tf_gnutls_peer_join(&peer, 10000);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    assert_int_equal(tf_fd_count(), fds);
}

TF_TEST(test_server_reset_mid_write, 30) { run(true, true, read_then_reset); }
TF_TEST(test_server_reset_mid_read, 30) { run(true, false, half_record_then_reset); }
TF_TEST(test_client_reset_mid_write, 30) { run(false, true, read_then_reset); }
TF_TEST(test_client_reset_mid_read, 30) { run(false, false, half_record_then_reset); }

/* Reset in the middle of the ClientHello: the opening fails with the reset. */
TF_TEST(test_reset_mid_handshake, 30)
{
    static const uint8_t part[] = { 0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0xfc, 0x03, 0x03 };
    tlsflow_loop *loop;
    tlsflow_config *cfg = tf_config(TLSFLOW_SERVER, NULL, 5000);
    int a, b, fds = tf_fd_count();

    memset(&d, 0, sizeof(d));
    writer = false;
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    tf_tcp_pair(&a, &b);
    assert_int_equal(tlsflow_wrap_fd(loop, cfg, b, NULL, on_open, NULL), 0);
    assert_int_equal(send(a, part, sizeof(part), 0), (ssize_t)sizeof(part));
    tf_run_for(loop, 50);
    tf_tcp_reset(a);
    tf_run_until_flag(loop, &d.read_done, 5000, "the opening to fail");
    assert_int_equal(d.opened, 0);
    assert_int_equal(d.read_end.status, TLSFLOW_ERROR);
    if (!is_reset_error(d.read_end.error))
        fail_msg("open ended with %d/%d: %s", d.read_end.error.code, d.read_end.error.detail,
                 tlsflow_error_message(d.read_end.error));
    assert_int_equal(tlsflow_loop_run(loop), 0);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    assert_int_equal(tf_fd_count(), fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_server_reset_mid_write),
        TF_CASE(test_server_reset_mid_read),
        TF_CASE(test_client_reset_mid_write),
        TF_CASE(test_client_reset_mid_read),
        TF_CASE(test_reset_mid_handshake),
    };

    blob = malloc(WSIZE);
    tf_data_fill(blob, WSIZE, 1, 0, TF_DATA_BINARY);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
