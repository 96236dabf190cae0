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

#include "tf_gnutls_peer.h"

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

static void peer_reads(tf_gnutls_peer *p)
{
    tf_gnutls_peer_recv(p, SIZE_MAX);
    peer_done = 1;
}

/* Our server flow (on_open_cb) against a GnuTLS client running script: the
 * loop runs until *flag, 200 ms more, then to its end. */
static void against_peer(tlsflow_cb *on_open_cb, tf_gnutls_script *script, void *arg, const int *flag,
                         int timeout_ms)
{
    tlsflow_loop *loop;
    tlsflow_config *cfg = tf_config(TLSFLOW_SERVER, NULL, 5000);
    tlsflow_listener *ls;
    tf_gnutls_peer peer;

    memset(&peer, 0, sizeof(peer));
    peer.script = script;
    peer.arg = arg;
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    assert_int_equal(tlsflow_listen(loop, cfg, "127.0.0.1", "0", on_open_cb, NULL, &ls), 0);
    tf_gnutls_peer_start(&peer, tf_tcp_connect(tlsflow_listener_port(ls)));
    tf_run_until_flag(loop, flag, timeout_ms, "the callbacks");
    tf_run_for(loop, 200);
    tlsflow_listener_close(ls);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    tf_gnutls_peer_join(&peer, 10000);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

TF_TEST(test_free_in_write_callback_with_read_pending, 30)
{
    against_peer(on_open, peer_reads, NULL, &write_calls, 5000);
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

static void peer_reads_then_resets(tf_gnutls_peer *p)
{
    tf_gnutls_peer_recv(p, 100000);
    tf_gnutls_peer_hangup(p, p->arg != NULL);
}

static void free_in_close_callback(bool reset)
{
    static int yes;

    read_calls = write_calls = closed = 0;
    against_peer(on_open_big, peer_reads_then_resets, reset ? &yes : NULL, &closed, 10000);
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

static void peer_waits_then_resets(tf_gnutls_peer *p)
{
    usleep(300 * 1000);
    tf_gnutls_peer_hangup(p, true);
}

TF_TEST(test_close_then_free_in_failure_callbacks, 30)
{
    read_calls = write_calls = close_calls = 0;
    against_peer(on_open_idle, peer_waits_then_resets, NULL, &close_calls, 5000);
    assert_int_equal(read_calls, 1);
    assert_int_equal(close_calls, 1);
    assert_int_equal(write_calls, 1);
}

TF_TEST(test_free_in_close_callback_after_reset, 30) { free_in_close_callback(true); }
TF_TEST(test_free_in_close_callback_after_fin, 30) { free_in_close_callback(false); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_free_in_write_callback_with_read_pending),
        TF_CASE(test_free_in_close_callback_after_reset),
        TF_CASE(test_free_in_close_callback_after_fin),
        TF_CASE(test_close_then_free_in_failure_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
