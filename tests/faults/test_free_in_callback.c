/* Found by the fault tests: tlsflow_free() called from one of the flow's own
 * callbacks while another operation is pending.  The contract: the pending
 * operation completes once with TLSFLOW_E_CANCELED, and nothing is touched
 * after the flow is gone.  (It is the everyday pattern "free in the close or
 * write callback while a read is still armed".) */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "faults.h"

static int read_calls, write_calls, opened, peer_done;
static tlsflow_result read_res;

static void on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    (void)arg;
    read_calls++;
    read_res = *r;
}

static void on_write(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    (void)r;
    write_calls++;
    tlsflow_free(f);          /* a read is still pending */
}

static void on_open(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status != TLSFLOW_OK)
        fail_msg("open: %s", tlsflow_error_message(r->error));
    opened = 1;
    assert_int_equal(tlsflow_read(f, on_read, NULL), 0);
    assert_int_equal(tlsflow_write(f, "x", 1, on_write, NULL), 0);
}

static void peer_reads(fx_peer *p)
{
    char buf[64];

    while (gnutls_record_recv(p->s, buf, sizeof(buf)) > 0)
        ;
    peer_done = 1;
}

static void test_free_in_write_callback_with_read_pending(void **state)
{
    tlsflow_loop *loop;
    tlsflow_config *cfg = fx_server_config(NULL, 5000);
    tlsflow_listener *ls;
    fx_peer peer;

    (void)state;
    memset(&peer, 0, sizeof(peer));
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    assert_int_equal(tlsflow_listen(loop, cfg, "127.0.0.1", "0", on_open, NULL, &ls), 0);
    peer.fd = fx_tcp_connect(tlsflow_listener_port(ls));
    peer.script = peer_reads;
    fx_peer_start(&peer);
    assert_true(fx_run_until(loop, &write_calls, 5000));
    fx_run_for(loop, 200);
    tlsflow_listener_close(ls);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    fx_peer_join(&peer);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    assert_int_equal(write_calls, 1);
    assert_int_equal(read_calls, 1);
    assert_int_equal(read_res.status, TLSFLOW_ERROR);
    assert_int_equal(read_res.error.code, TLSFLOW_E_CANCELED);
}

/* The peer reads a little and resets; our writes end (EOF), we close and
 * free the flow in the close callback. */
static int closed;
static uint8_t blob[256 * 1024];

static void on_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    (void)r;
    closed = 1;
    tlsflow_free(f);
}

static void on_big_write(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    write_calls++;
    if (r->status == TLSFLOW_OK && write_calls < 400) {
        assert_int_equal(tlsflow_write(f, blob, sizeof(blob), on_big_write, NULL), 0);
        return;
    }
    assert_int_equal(tlsflow_close(f, on_closed, NULL), 0);
}

static void on_read_keep(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    (void)arg;
    read_calls++;
    read_res = *r;
}

static void on_open_big(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    assert_int_equal(r->status, TLSFLOW_OK);
    assert_int_equal(tlsflow_read(f, on_read_keep, NULL), 0);
    assert_int_equal(tlsflow_write(f, blob, sizeof(blob), on_big_write, NULL), 0);
}

static void peer_reads_then_resets(fx_peer *p)
{
    char buf[16384];

    for (long got = 0; got < 100000;) {
        ssize_t n = gnutls_record_recv(p->s, buf, sizeof(buf));
        if (n <= 0)
            break;
        got += n;
    }
    if (p->arg)
        fx_reset(p->fd);
    else
        close(p->fd);
    p->fd = -1;
}

static void free_in_close_callback(bool reset)
{
    tlsflow_loop *loop;
    tlsflow_config *cfg = fx_server_config(NULL, 5000);
    tlsflow_listener *ls;
    fx_peer peer;

    read_calls = write_calls = closed = 0;
    memset(&peer, 0, sizeof(peer));
    peer.arg = reset ? &peer : NULL;
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    assert_int_equal(tlsflow_listen(loop, cfg, "127.0.0.1", "0", on_open_big, NULL, &ls), 0);
    peer.fd = fx_tcp_connect(tlsflow_listener_port(ls));
    peer.script = peer_reads_then_resets;
    fx_peer_start(&peer);
    assert_true(fx_run_until(loop, &closed, 10000));
    fx_run_for(loop, 200);
    tlsflow_listener_close(ls);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    fx_peer_join(&peer);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    assert_int_equal(read_calls, 1);   /* TRUNCATED, or CANCELED by the free */
    assert_int_equal(read_res.status, TLSFLOW_ERROR);
}

/* Deterministic form: nothing in flight when the peer resets; the failed
 * read's callback asks for close (accepted: the task is queued), the close
 * fails at once with the sticky error and its callback frees the flow.  The
 * flow task then drops the last reference with the task still queued. */
static int close_calls;

static void on_closed_free(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    (void)r;
    close_calls++;
    tlsflow_free(f);
}

static void on_read_close(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    read_calls++;
    read_res = *r;
    if (r->status == TLSFLOW_ERROR)
        tlsflow_close(f, on_closed_free, NULL);   /* accepted or refused: both fine */
}

static void on_small_write(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    (void)r;
    (void)arg;
    write_calls++;
}

static void on_open_idle(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    assert_int_equal(r->status, TLSFLOW_OK);
    assert_int_equal(tlsflow_write(f, "x", 1, on_small_write, NULL), 0);
    assert_int_equal(tlsflow_read(f, on_read_close, NULL), 0);
}

static void peer_waits_then_resets(fx_peer *p)
{
    usleep(300 * 1000);
    fx_reset(p->fd);
    p->fd = -1;
}

static void test_close_then_free_in_failure_callbacks(void **state)
{
    tlsflow_loop *loop;
    tlsflow_config *cfg = fx_server_config(NULL, 5000);
    tlsflow_listener *ls;
    fx_peer peer;

    (void)state;
    read_calls = write_calls = close_calls = 0;
    memset(&peer, 0, sizeof(peer));
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    assert_int_equal(tlsflow_listen(loop, cfg, "127.0.0.1", "0", on_open_idle, NULL, &ls), 0);
    peer.fd = fx_tcp_connect(tlsflow_listener_port(ls));
    peer.script = peer_waits_then_resets;
    fx_peer_start(&peer);
    assert_true(fx_run_until(loop, &close_calls, 5000));
    fx_run_for(loop, 200);
    tlsflow_listener_close(ls);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    fx_peer_join(&peer);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    assert_int_equal(read_calls, 1);
    assert_int_equal(close_calls, 1);
    assert_int_equal(write_calls, 1);
}

static void test_free_in_close_callback_after_reset(void **s) { (void)s; free_in_close_callback(true); }
static void test_free_in_close_callback_after_fin(void **s) { (void)s; free_in_close_callback(false); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_in_write_callback_with_read_pending),
        cmocka_unit_test(test_free_in_close_callback_after_reset),
        cmocka_unit_test(test_free_in_close_callback_after_fin),
        cmocka_unit_test(test_close_then_free_in_failure_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
