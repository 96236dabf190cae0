/* tlsflow_splice_from / tlsflow_splice_to (ring/flow_splice.c): bytes from a
 * pipe or socket into a flow and out of the peer flow into another, checked
 * byte for byte; limits (max), the end of each stream (the descriptor's EOF,
 * the peer's close_notify), order with writes and reads, misuse, a
 * descriptor that fails, and free/fail with splices in flight (the ASan lane
 * runs this).  In the VM lane (label ktls, TLSFLOW_EXPECT_KTLS=1) both flows
 * hold their keys in the kernel, and the payload must cross without a
 * userspace copy (tlsflow_loop_stats.plaintext_copied). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "tf_gnutls_peer.h"
#include "tf_test.h"

#define LEN (3u << 20)

static void pipe_or_die(int p[2])
{
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
}

static void expect_kernel(tlsflow *f)
{
    tlsflow_info info;

    if (!tf_expect_ktls())
        return;
    assert_int_equal(tlsflow_get_info(f, &info), 0);
    assert_true(info.ktls_tx);
    assert_true(info.ktls_rx);
}

static unsigned long long copied(tlsflow_loop *loop)
{
    tlsflow_loop_stats st;

    assert_int_equal(tlsflow_loop_get_stats(loop, &st), 0);
    return st.plaintext_copied;
}

/* pipe -> client flow -> server flow -> pipe, then the client's close_notify
 * ends the server's splice_to with EOF; the same back with a socket pair. */
static void both_ways(bool use_socket, int stall_ms)
{
    tf_env e;
    tlsflow *s, *c;
    int in[2], out[2];
    tf_pump *src, *dst;
    tf_pump_result rs, rd;
    tf_done from, to, closed;
    unsigned long long before;

    memset(&from, 0, sizeof(from));
    memset(&to, 0, sizeof(to));
    memset(&closed, 0, sizeof(closed));
    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    expect_kernel(s);
    expect_kernel(c);
    if (use_socket) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out), 0);
        /* ours non-blocking (EAGAIN, then a poll), the pump's end blocking */
        assert_int_equal(fcntl(out[1], F_SETFL, O_NONBLOCK), 0);
    } else {
        pipe_or_die(in);
        pipe_or_die(out);
    }
    src = tf_pump_start(in[1], -1, LEN, 7, TF_DATA_BINARY, TF_PUMP_CLOSE);
    dst = tf_pump_start(-1, out[0], LEN, 7, TF_DATA_BINARY, TF_PUMP_TO_EOF);
    close(in[1]);
    close(out[0]);
    before = copied(e.loop);
    assert_int_equal(tlsflow_splice_from(c, in[0], 0, tf_on_done, &from), 0);
    /* A server that takes nothing for a while: the client's send side
     * backs up (what it read of the pipe must wait, not be dropped). */
    if (stall_ms)
        tf_run_for(e.loop, stall_ms);
    assert_int_equal(tlsflow_splice_to(s, out[1], 0, tf_on_done, &to), 0);
    TF_RUN_UNTIL(e.loop, from.n, 30000);
    assert_int_equal(from.status, TLSFLOW_OK);
    assert_int_equal(from.len, LEN);
    assert_int_equal(tlsflow_close(c, tf_on_done, &closed), 0);
    TF_RUN_UNTIL(e.loop, to.n, 30000);
    assert_int_equal(to.status, TLSFLOW_OK);      /* the close_notify, after LEN bytes */
    assert_int_equal(to.len, LEN);
    /* Then, as a read would, the next one says EOF. */
    tf_done again;
    memset(&again, 0, sizeof(again));
    assert_int_equal(tlsflow_splice_to(s, out[1], 0, tf_on_done, &again), 0);
    TF_RUN_UNTIL(e.loop, again.n, 10000);
    assert_int_equal(again.status, TLSFLOW_EOF);
    assert_int_equal(again.len, 0);
    if (tf_expect_ktls())
        assert_int_equal(copied(e.loop) - before, 0);
    fprintf(stderr, "plaintext copied for %u bytes each way: %llu\n", LEN, copied(e.loop) - before);
    close(out[1]);
    tf_pump_finish(src, &rs);
    tf_pump_finish(dst, &rd);
    assert_int_equal(rs.written, LEN);
    assert_false(rd.mismatch);
    assert_int_equal(rd.received, LEN);
    close(in[0]);
    tf_env_fini(&e);
}

TF_TEST(test_pipes, 60)
{
    both_ways(false, 0);
}

TF_TEST(test_backpressure, 60)
{
    both_ways(false, 300);
}

TF_TEST(test_sockets, 60)
{
    both_ways(true, 0);
}

/* max: splice_to stops after max bytes (OK); a read gets what follows;
 * splice_from of max bytes leaves the rest in the descriptor. */
TF_TEST(test_max, 60)
{
    tf_env e;
    tlsflow *s, *c;
    int in[2], out[2];
    tf_done from, to, rd;
    char buf[4096], got[4096];

    memset(&from, 0, sizeof(from));
    memset(&to, 0, sizeof(to));
    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    pipe_or_die(in);
    pipe_or_die(out);
    tf_data_fill(buf, sizeof(buf), 3, 0, TF_DATA_BINARY);
    assert_int_equal(write(in[1], buf, sizeof(buf)), (ssize_t)sizeof(buf));
    assert_int_equal(tlsflow_splice_from(c, in[0], 1000, tf_on_done, &from), 0);
    TF_RUN_UNTIL(e.loop, from.n, 10000);
    assert_int_equal(from.status, TLSFLOW_OK);
    assert_int_equal(from.len, 1000);
    assert_int_equal(read(in[0], got, 10), 10);   /* the rest stayed in the pipe */
    assert_memory_equal(got, buf + 1000, 10);
    /* 1000 bytes went: the server takes 300 into the pipe, reads the rest. */
    assert_int_equal(tlsflow_splice_to(s, out[1], 300, tf_on_done, &to), 0);
    TF_RUN_UNTIL(e.loop, to.n, 10000);
    assert_int_equal(to.status, TLSFLOW_OK);
    assert_int_equal(to.len, 300);
    assert_int_equal(read(out[0], got, sizeof(got)), 300);
    assert_memory_equal(got, buf, 300);
    size_t n = 0;
    while (n < 700) {
        tf_read_sync(e.loop, s, &rd, 10000);
        assert_int_equal(rd.status, TLSFLOW_OK);
        n += rd.len;
    }
    assert_int_equal(n, 700);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    tf_env_fini(&e);
}

/* A splice_from is a write: it completes in order with the writes around
 * it, and the peer gets write, spliced bytes, write in that order. */
static tf_done order_done[3];
static int order_n;
static int order_seen[3];

static void on_order(tlsflow *f, const tlsflow_result *r, void *arg)
{
    int i = (int)(intptr_t)arg;

    tf_on_done(f, r, &order_done[i]);
    order_seen[order_n++] = i;
}

TF_TEST(test_order, 60)
{
    tf_env e;
    tlsflow *s, *c;
    int in[2];
    tf_sink sink;

    memset(order_done, 0, sizeof(order_done));
    order_n = 0;
    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    pipe_or_die(in);
    assert_int_equal(write(in[1], "-middle-", 8), 8);
    close(in[1]);
    assert_int_equal(tlsflow_write(c, "first", 5, on_order, (void *)0), 0);
    assert_int_equal(tlsflow_splice_from(c, in[0], 0, on_order, (void *)1), 0);
    assert_int_equal(tlsflow_write(c, "last", 4, on_order, (void *)2), 0);
    memset(&sink, 0, sizeof(sink));
    tf_sink_start(s, &sink, 64);
    sink.stop_at_cap = 0;
    TF_RUN_UNTIL(e.loop, order_n == 3 && sink.got == 17, 10000);
    assert_int_equal(order_seen[0], 0);
    assert_int_equal(order_seen[1], 1);
    assert_int_equal(order_seen[2], 2);
    assert_int_equal(order_done[1].len, 8);
    assert_memory_equal(sink.buf, "first-middle-last", 17);
    free(sink.buf);
    close(in[0]);
    tf_env_fini(&e);
}

TF_TEST(test_misuse, 30)
{
    tf_env e;
    tlsflow *s, *c;
    int p[2], file;
    char path[] = "/tmp/tlsflow-splice.XXXXXX";
    tf_done d, rd;

    memset(&d, 0, sizeof(d));
    memset(&rd, 0, sizeof(rd));
    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    pipe_or_die(p);
    file = mkstemp(path);
    assert_true(file >= 0);
    unlink(path);
    assert_int_equal(tlsflow_splice_from(NULL, p[0], 0, tf_on_done, &d), -EINVAL);
    assert_int_equal(tlsflow_splice_to(NULL, p[1], 0, tf_on_done, &d), -EINVAL);
    assert_int_equal(tlsflow_splice_from(c, p[0], 0, NULL, &d), -EINVAL);
    assert_int_equal(tlsflow_splice_from(c, -1, 0, tf_on_done, &d), -EINVAL);
    assert_int_equal(tlsflow_splice_to(c, -1, 0, tf_on_done, &d), -EINVAL);
    assert_int_equal(tlsflow_splice_from(c, 1000000, 0, tf_on_done, &d), -EINVAL);   /* not open */
    assert_int_equal(tlsflow_splice_from(c, file, 0, tf_on_done, &d), -EINVAL);      /* a file */
    assert_int_equal(tlsflow_splice_to(c, tlsflow_fd(c), 0, tf_on_done, &d), -EINVAL);
    assert_int_equal(tlsflow_splice_from(c, p[0], (size_t)-1, tf_on_done, &d), -EINVAL);
    /* One read-side operation at a time. */
    assert_int_equal(tlsflow_read(s, tf_on_done, &rd), 0);
    assert_int_equal(tlsflow_splice_to(s, p[1], 0, tf_on_done, &d), -EINVAL);
    /* One splice_from at a time (the first waits on an empty pipe). */
    assert_int_equal(tlsflow_splice_from(c, p[0], 0, tf_on_done, &d), 0);
    assert_int_equal(tlsflow_splice_from(c, p[0], 0, tf_on_done, &d), -EINVAL);
    tf_done d2;
    memset(&d2, 0, sizeof(d2));
    assert_int_equal(tlsflow_splice_to(c, p[1], 0, tf_on_done, &d2), 0);
    assert_int_equal(tlsflow_read(c, tf_on_done, &rd), -EINVAL);
    assert_int_equal(tlsflow_splice_to(c, p[1], 0, tf_on_done, &d2), -EINVAL);
    tf_run_for(e.loop, 100);
    assert_int_equal(d.n, 0);    /* nothing came: both wait; callbacks never ran inside a call */
    assert_int_equal(d2.n, 0);
    /* Free with both in flight: each completes once, CANCELED. */
    tlsflow_free(c);
    TF_RUN_UNTIL(e.loop, d.n && d2.n, 5000);
    assert_int_equal(d.status, TLSFLOW_ERROR);
    assert_int_equal(d.error.code, TLSFLOW_E_CANCELED);
    assert_int_equal(d2.error.code, TLSFLOW_E_CANCELED);
    tf_run_for(e.loop, 100);
    assert_int_equal(d.n, 1);
    assert_int_equal(d2.n, 1);
    /* After close, splice_from is refused as writes are. */
    tf_done cl;
    memset(&cl, 0, sizeof(cl));
    assert_int_equal(tlsflow_close(s, tf_on_done, &cl), 0);
    assert_int_equal(tlsflow_splice_from(s, p[0], 0, tf_on_done, &d), -EINVAL);
    close(p[0]);
    close(p[1]);
    close(file);
    tf_env_fini(&e);
}

/* The descriptor fails: splice_to into a socket whose peer reset completes
 * with TLSFLOW_E_SYSTEM; the flow itself goes on (a read works). */
TF_TEST(test_fd_fails, 30)
{
    tf_env e;
    tlsflow *s, *c;
    int sp[2];
    tf_done to, w, rd;
    static char big[1 << 20];

    memset(&to, 0, sizeof(to));
    memset(&w, 0, sizeof(w));
    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    close(sp[1]);                 /* nobody reads: EPIPE */
    assert_int_equal(tlsflow_write(c, big, sizeof(big), tf_on_done, &w), 0);
    assert_int_equal(tlsflow_splice_to(s, sp[0], 0, tf_on_done, &to), 0);
    TF_RUN_UNTIL(e.loop, to.n, 10000);
    assert_int_equal(to.status, TLSFLOW_ERROR);
    assert_int_equal(to.error.code, TLSFLOW_E_SYSTEM);
    assert_int_equal(to.error.detail, EPIPE);
    assert_int_equal(tlsflow_write(c, "x", 1, tf_on_done, &w), 0);
    tf_read_sync(e.loop, s, &rd, 10000);
    assert_int_equal(rd.status, TLSFLOW_OK);
    close(sp[0]);
    tf_env_fini(&e);
}

/* The flow fails while both splices are in flight: the peer resets. */
TF_TEST(test_fail_in_flight, 30)
{
    tf_env e;
    tlsflow *s, *c;
    int in[2], out[2];
    tf_done from, to;
    tf_pump *src;
    tf_pump_result rs;

    memset(&from, 0, sizeof(from));
    memset(&to, 0, sizeof(to));
    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    pipe_or_die(in);
    pipe_or_die(out);
    src = tf_pump_start(in[1], -1, 8u << 20, 9, TF_DATA_BINARY, TF_PUMP_CLOSE);
    close(in[1]);
    assert_int_equal(tlsflow_splice_from(s, in[0], 0, tf_on_done, &from), 0);
    assert_int_equal(tlsflow_splice_to(s, out[1], 0, tf_on_done, &to), 0);
    tf_run_for(e.loop, 50);
    tlsflow_free(c);             /* an open flow is reset */
    TF_RUN_UNTIL(e.loop, from.n && to.n, 10000);
    /* The reset reaches the sending side as the peer gone (EOF, as writes
     * learn it) or as the flow's error, whichever the kernel tells first. */
    assert_int_not_equal(from.status, TLSFLOW_OK);
    assert_int_equal(to.status, TLSFLOW_ERROR);
    if (from.status == TLSFLOW_ERROR)
        assert_int_equal(to.error.code, from.error.code);
    tlsflow_free(s);
    tf_run_for(e.loop, 100);
    assert_int_equal(from.n, 1);
    assert_int_equal(to.n, 1);
    close(in[0]);          /* the pump's writer ends with EPIPE */
    tf_pump_finish(src, &rs);
    close(out[0]);
    close(out[1]);
    tf_env_fini(&e);
}

/* A GnuTLS peer echoes what the flow splices in, and sends KeyUpdates
 * (not requested, then requested) mid-stream: control records reach the
 * flow while its splice_to runs.  They are handled as reads handle them:
 * every byte comes back, or (kTLS before 6.14, no second key) the splice
 * ends with TLSFLOW_E_REKEY. */
static tf_done ku_open;

TF_TEST(test_key_update_mid_splice, 60)
{
    const size_t len = 2u << 20;
    tlsflow_config *cfg = tf_config(TLSFLOW_SERVER, "NORMAL:-VERS-ALL:+VERS-TLS1.3", 5000);
    tlsflow_loop *loop = tf_loop_new();
    tf_gnutls_peer p = { .server = false, .echo = true, .seed = 21, .kind = TF_DATA_BINARY,
                         .ku_at = 300000, .ku_peer_at = 900000 };
    int a, b, in[2], out[2];
    tf_pump *src, *dst;
    tf_pump_result rs, rd;
    tf_done from, to, cl;
    tlsflow_info info;

    memset(&ku_open, 0, sizeof(ku_open));
    memset(&from, 0, sizeof(from));
    memset(&to, 0, sizeof(to));
    memset(&cl, 0, sizeof(cl));
    tf_tcp_pair(&a, &b);
    assert_int_equal(tlsflow_wrap_fd(loop, cfg, b, NULL, tf_on_done, &ku_open), 0);
    tf_gnutls_peer_start(&p, a);
    TF_RUN_UNTIL(loop, ku_open.n, 10000);
    assert_int_equal(ku_open.status, TLSFLOW_OK);
    assert_int_equal(tlsflow_get_info(ku_open.flow, &info), 0);
    pipe_or_die(in);
    pipe_or_die(out);
    src = tf_pump_start(in[1], -1, len, 21, TF_DATA_BINARY, TF_PUMP_CLOSE);
    dst = tf_pump_start(-1, out[0], len, 21, TF_DATA_BINARY, TF_PUMP_TO_EOF);
    close(in[1]);
    close(out[0]);
    assert_int_equal(tlsflow_splice_from(ku_open.flow, in[0], 0, tf_on_done, &from), 0);
    assert_int_equal(tlsflow_splice_to(ku_open.flow, out[1], 0, tf_on_done, &to), 0);
    TF_RUN_UNTIL(loop, from.n, 30000);
    if (from.status == TLSFLOW_OK)
        assert_int_equal(tlsflow_close(ku_open.flow, tf_on_done, &cl), 0);
    TF_RUN_UNTIL(loop, to.n, 30000);
    if (info.ktls_rx && !tf_kernel_rekeys()) {
        fprintf(stderr, "kTLS without a second key: splice_to %s after %zu bytes\n",
                to.message, to.len);
        assert_int_equal(to.status, TLSFLOW_ERROR);
        assert_int_equal(to.error.code, TLSFLOW_E_REKEY);
        close(out[1]);
        close(in[0]);
        tf_pump_finish(src, &rs);
        tf_pump_finish(dst, &rd);
    } else {
        if (from.status != TLSFLOW_OK || to.status != TLSFLOW_OK)
            fail_msg("splice_from: %d %s; splice_to: %d %s after %zu; peer: %s %s", from.status,
                     from.message, to.status, to.message, to.len, p.where,
                     p.gerr ? gnutls_strerror(p.gerr) : "");
        assert_int_equal(to.len, len);
        close(out[1]);
        tf_pump_finish(src, &rs);
        tf_pump_finish(dst, &rd);
        assert_false(rd.mismatch);
        assert_int_equal(rd.received, len);
        assert_true(p.ku_done >= 2);
        close(in[0]);
    }
    tf_run_until(loop, tf_gnutls_peer_done, &p, 10000, "the peer");
    tlsflow_free(ku_open.flow);
    tf_gnutls_peer_join(&p, 10000);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_pipes),
        TF_CASE(test_sockets),
        TF_CASE(test_backpressure),
        TF_CASE(test_max),
        TF_CASE(test_order),
        TF_CASE(test_misuse),
        TF_CASE(test_fd_fails),
        TF_CASE(test_fail_in_flight),
        TF_CASE(test_key_update_mid_splice),
    };
    if (tf_expect_ktls() && !tf_kernel_has_tls()) {
        fprintf(stderr, "TLSFLOW_EXPECT_KTLS=1 but the kernel has no tls ULP\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
