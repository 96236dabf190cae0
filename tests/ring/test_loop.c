/* ring/loop.c and the loop's side of ring/open.c: creation limits, polling an
 * idle loop, run/stop, a depth-2 ring carrying 64 echo pairs (a full submission
 * queue is submitted, never refused), handshake timeouts, a listener that
 * keeps serving after a failed handshake, a ring that refuses submissions
 * (through a seam: operations fail or retry, nothing spins), and loop_free
 * with many operations in flight (it waits for each, and when it must give
 * up it keeps what the kernel may still use). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tf_test.h"

TF_TEST(test_new_free, 10)
{
    tlsflow_loop *loop = NULL;

    assert_int_equal(tlsflow_loop_new(NULL, 0), -EINVAL);
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    assert_non_null(loop);
    tlsflow_loop_free(loop);
    assert_int_equal(tlsflow_loop_new(&loop, 1), 0);
    tlsflow_loop_free(loop);
    assert_int_equal(tlsflow_loop_new(&loop, 2), 0);
    tlsflow_loop_free(loop);
    loop = NULL;
    assert_int_equal(tlsflow_loop_new(&loop, 1u << 20), -EINVAL);
    assert_null(loop);
    tlsflow_loop_free(NULL);
    tlsflow_loop_stop(NULL);
}

TF_TEST(test_idle_poll, 10)
{
    tlsflow_loop *loop;
    long long t0;

    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    t0 = tf_now_ms();
    for (int i = 0; i < 100; i++)
        assert_int_equal(tlsflow_loop_run_once(loop, 0), 0);
    assert_true(tf_now_ms() - t0 < 200);
    /* A bounded wait with nothing to do waits about that long. */
    t0 = tf_now_ms();
    assert_int_equal(tlsflow_loop_run_once(loop, 50), 0);
    assert_true(tf_now_ms() - t0 >= 40);
    assert_true(tf_now_ms() - t0 < 1000);
    /* run with nothing left returns at once. */
    assert_int_equal(tlsflow_loop_run(loop), 0);
    tlsflow_loop_free(loop);
}

/* ---- run / stop ---- */

static void stop_on_connect(tlsflow *f, const tlsflow_result *r, void *arg)
{
    tf_env *e = arg;

    tf_on_done(f, r, &e->con);
    tlsflow_loop_stop(e->loop);
}

TF_TEST(test_run_stop, 30)
{
    tf_env e;

    tf_env_init(&e);
    assert_int_equal(tlsflow_connect(e.loop, e.ccfg, "localhost", e.port, stop_on_connect, &e), 0);
    /* The listener is still open: only stop ends this run. */
    assert_int_equal(tlsflow_loop_run(e.loop), 0);
    assert_int_equal(e.con.n, 1);
    assert_int_equal(e.con.status, TLSFLOW_OK);
    tlsflow_free(e.con.flow);
    TF_RUN_UNTIL(e.loop, e.acc.n == 1, 5000);
    if (e.acc.flow)
        tlsflow_free(e.acc.flow);
    /* With everything released, run returns by itself. */
    tlsflow_listener_close(e.ls);
    e.ls = NULL;
    assert_int_equal(tlsflow_loop_run(e.loop), 0);
    tf_env_fini(&e);
}

/* ---- 64 echo pairs on a depth-2 ring ---- */

#define NPAIRS 64
#define MSG 3000

/* The server ends are the echo server's. */
struct pair {
    int           sv[2];
    tlsflow      *c;
    uint8_t       msg[MSG];
    tf_sink       back;
    uint8_t       backbuf[MSG];
    int           c_closed;
};

static struct pair pairs[NPAIRS];
static tf_echo echo;

static void p_cli_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct pair *p = arg;

    if (r->status != TLSFLOW_OK)
        fail_msg("client close: %s", tlsflow_error_message(r->error));
    p->c_closed = 1;
    tlsflow_free(f);
}

static void p_cli_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct pair *p = arg;

    tf_on_read(f, r, &p->back);
    if (p->back.errors)
        fail_msg("client read: %s", tlsflow_error_message(p->back.error));
    if (p->back.got == MSG && !p->c_closed)
        assert_int_equal(tlsflow_close(f, p_cli_closed, p), 0);
}

static void p_cli_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    (void)arg;
    assert_int_equal(r->status, TLSFLOW_OK);
    assert_int_equal(r->len, MSG);
}

static void p_cli_open(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct pair *p = arg;

    if (r->status != TLSFLOW_OK)
        fail_msg("client handshake %ld: %s", (long)(p - pairs), tlsflow_error_message(r->error));
    p->c = f;
    assert_int_equal(tlsflow_write(f, p->msg, MSG, p_cli_written, p), 0);
    p->back.buf = p->backbuf;
    p->back.cap = MSG;
    p->back.stop_at_cap = 1;
    assert_int_equal(tlsflow_read(f, p_cli_read, p), 0);
}

static int all_closed(void)
{
    for (int i = 0; i < NPAIRS; i++)
        if (!pairs[i].c_closed)
            return 0;
    return echo.accepted == NPAIRS && tf_cond_echo_settled(&echo);
}

TF_TEST(test_tiny_queue_many_flows, 60)
{
    tlsflow_loop *loop;
    tlsflow_config *scfg, *ccfg;

    assert_int_equal(tlsflow_loop_new(&loop, 2), 0);
    assert_int_equal(tlsflow_config_new(&scfg, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_set_cert_file(scfg, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
    assert_int_equal(tlsflow_config_new(&ccfg, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_ca_file(ccfg, TF_CA), 0);
    memset(pairs, 0, sizeof(pairs));
    tf_echo_init(&echo);
    for (int i = 0; i < NPAIRS; i++) {
        struct pair *p = &pairs[i];
        tf_data_fill(p->msg, MSG, i, 0, TF_DATA_BINARY);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->sv), 0);
        /* Every open submits before any completion is reaped. */
        assert_int_equal(tlsflow_wrap_fd(loop, scfg, p->sv[0], NULL, tf_echo_accept, &echo), 0);
        assert_int_equal(tlsflow_wrap_fd(loop, ccfg, p->sv[1], "localhost", p_cli_open, p), 0);
    }
    TF_RUN_UNTIL(loop, all_closed(), 30000);
    if (echo.failed)
        fail_msg("server handshake: %s", echo.accept_message);
    for (int i = 0; i < NPAIRS; i++) {
        if (echo.conns[i].error.code)
            fail_msg("server flow %d: %s", i, echo.conns[i].message);
        assert_true(echo.conns[i].eof);
        assert_true(echo.conns[i].closed);
        assert_memory_equal(pairs[i].backbuf, pairs[i].msg, MSG);
    }
    /* Nothing is left: run returns. */
    assert_int_equal(tlsflow_loop_run(loop), 0);
    tlsflow_loop_free(loop);
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
}

/* ---- handshake timeout ---- */

TF_TEST(test_handshake_timeout_client, 30)
{
    tlsflow_loop *loop;
    tlsflow_config *ccfg;
    tf_done d = { 0 };
    int sv[2];
    long long t0, dt;

    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    assert_int_equal(tlsflow_config_new(&ccfg, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_ca_file(ccfg, TF_CA), 0);
    assert_int_equal(tlsflow_config_set_handshake_timeout(ccfg, 200), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    t0 = tf_now_ms();
    assert_int_equal(tlsflow_wrap_fd(loop, ccfg, sv[0], "localhost", tf_on_done, &d), 0);
    TF_RUN_UNTIL(loop, d.n > 0, 5000);
    dt = tf_now_ms() - t0;
    assert_int_equal(d.n, 1);
    assert_null(d.flow);
    assert_int_equal(d.status, TLSFLOW_ERROR);
    if (d.error.code != TLSFLOW_E_TIMEOUT)
        fail_msg("expected a timeout, got %s", tlsflow_error_message(d.error));
    assert_true(dt >= 180);
    assert_true(dt < 2000);
    tf_run_for(loop, 50);
    assert_int_equal(d.n, 1);
    assert_int_equal(tlsflow_loop_run(loop), 0);   /* the flow was released */
    /* The peer saw the connection go: the flow's end is shut. */
    {
        char buf[4096];
        ssize_t n;
        while ((n = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT)) > 0)
            ;
        assert_int_equal(n, 0);
    }
    close(sv[1]);
    tlsflow_loop_free(loop);
    tlsflow_config_free(ccfg);
}

static int raw_connect(const char *port)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    sin.sin_port = htons((uint16_t)atoi(port));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

TF_TEST(test_handshake_timeout_server, 30)
{
    tf_env e;
    long long t0, dt;
    int fd;

    tf_env_configs(&e, NULL, NULL);
    assert_int_equal(tlsflow_config_set_handshake_timeout(e.scfg, 200), 0);
    tf_env_listen(&e, "127.0.0.1");
    t0 = tf_now_ms();
    fd = raw_connect(e.port);   /* and says nothing */
    TF_RUN_UNTIL(e.loop, e.acc.n > 0, 5000);
    dt = tf_now_ms() - t0;
    assert_int_equal(e.acc.n, 1);
    assert_null(e.acc.flow);
    assert_int_equal(e.acc.status, TLSFLOW_ERROR);
    assert_int_equal(e.acc.error.code, TLSFLOW_E_TIMEOUT);
    assert_true(dt >= 180 && dt < 2000);
    close(fd);
    tf_env_fini(&e);
}

/* ---- a listener survives a bad client ---- */

TF_TEST(test_listener_survives_garbage, 30)
{
    static const char garbage[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    tf_env e;
    tlsflow *s, *c;
    struct pollfd pfd;
    char buf[256];
    int fd;

    tf_env_init(&e);
    fd = raw_connect(e.port);
    assert_int_equal(send(fd, garbage, sizeof(garbage) - 1, 0), (ssize_t)sizeof(garbage) - 1);
    TF_RUN_UNTIL(e.loop, e.acc.n > 0, 5000);
    assert_null(e.acc.flow);
    assert_int_equal(e.acc.status, TLSFLOW_ERROR);
    assert_true(e.acc.error.code != 0);
    assert_true(strlen(tlsflow_error_message(e.acc.error)) > 0);
    /* The bad client is told (an alert) or dropped, not left hanging. */
    pfd.fd = fd;
    pfd.events = POLLIN;
    assert_int_equal(poll(&pfd, 1, 2000), 1);
    (void)recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    close(fd);

    tf_env_pair(&e, "localhost", &s, &c);
    assert_int_equal(e.acc.n, 2);
    tlsflow_free(c);
    tlsflow_free(s);
    tf_env_fini(&e);
}

/* ---- loop_free releases what is still open, calling nobody ---- */

static tf_done never;

TF_TEST(test_free_with_open_objects, 30)
{
    tf_env e;
    tlsflow *s, *c;

    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    memset(&never, 0, sizeof(never));
    assert_int_equal(tlsflow_read(c, tf_on_done, &never), 0);
    assert_int_equal(tlsflow_read(s, tf_on_done, &never), 0);
    assert_int_equal(tlsflow_write(c, "x", 1, tf_on_done, &never), 0);
    /* And a connect in flight. */
    assert_int_equal(tlsflow_connect(e.loop, e.ccfg, "127.0.0.1", e.port, tf_on_done, &never), 0);
    tlsflow_loop_free(e.loop);
    assert_int_equal(never.n, 0);
    tlsflow_config_free(e.scfg);
    tlsflow_config_free(e.ccfg);
}

/* ---- A seam: the submissions the library makes ----
 * This definition of io_uring_submit comes before liburing's for the
 * library linked into this test: armed, it refuses submissions with
 * seam.err (until seam.until_ms, or seam.left more times, -1: until
 * disarmed), as a broken or overloaded ring would. */
static struct {
    int       err;
    int       left;
    long long until_ms;
    unsigned  calls, refused;
} seam;

int io_uring_submit(struct io_uring *ring)
{
    seam.calls++;
    if (seam.err && (seam.left != 0 || (seam.until_ms && tf_now_ms() < seam.until_ms))) {
        if (seam.left > 0)
            seam.left--;
        seam.refused++;
        return seam.err;
    }
    return io_uring_submit_and_wait(ring, 0);
}

static void seam_arm(int err, int left, int for_ms)
{
    memset(&seam, 0, sizeof(seam));
    seam.err = err;
    seam.left = left;
    seam.until_ms = for_ms ? tf_now_ms() + for_ms : 0;
}

static void seam_disarm(void)
{
    memset(&seam, 0, sizeof(seam));
}

/* A failed test leaves the seam as it was: the next one starts disarmed. */
static int seam_teardown(void **state)
{
    seam_disarm();
    return tf_test_teardown(state);
}

/* Pairs of flows over socketpairs, both ends tlsflow. */
#define NDUOS 8

struct duo {
    int           sv[2];
    tf_done s, c;
    tf_done wr[3], rd;
    tf_sink back;
    uint8_t       msg[MSG], backbuf[MSG];
};

static void duos_open(tlsflow_loop *loop, tlsflow_config *scfg, tlsflow_config *ccfg,
                      struct duo *d, int n)
{
    for (int i = 0; i < n; i++) {
        memset(&d[i], 0, sizeof(d[i]));
        tf_data_fill(d[i].msg, MSG, i + 7, 0, TF_DATA_BINARY);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, d[i].sv), 0);
        assert_int_equal(tlsflow_wrap_fd(loop, scfg, d[i].sv[0], NULL, tf_on_done, &d[i].s), 0);
        assert_int_equal(tlsflow_wrap_fd(loop, ccfg, d[i].sv[1], "localhost", tf_on_done, &d[i].c), 0);
    }
    for (int i = 0; i < n; i++) {
        TF_RUN_UNTIL(loop, d[i].s.n && d[i].c.n, 10000);
        if (d[i].s.status != TLSFLOW_OK || d[i].c.status != TLSFLOW_OK)
            fail_msg("duo %d: %s / %s", i, tlsflow_error_message(d[i].s.error),
                     tlsflow_error_message(d[i].c.error));
    }
}

static void duos_free(struct duo *d, int n)
{
    for (int i = 0; i < n; i++) {
        if (d[i].s.flow)
            tlsflow_free(d[i].s.flow);
        if (d[i].c.flow)
            tlsflow_free(d[i].c.flow);
        d[i].s.flow = d[i].c.flow = NULL;
    }
}

static void configs_new(tlsflow_config **scfg, tlsflow_config **ccfg)
{
    assert_int_equal(tlsflow_config_new(scfg, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_set_cert_file(*scfg, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
    assert_int_equal(tlsflow_config_set_handshake_timeout(*scfg, 20000), 0);
    assert_int_equal(tlsflow_config_new(ccfg, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_ca_file(*ccfg, TF_CA), 0);
}

/* An echo through one duo: the client writes msg, the server echoes. */
static void e_srv_read(tlsflow *f, const tlsflow_result *r, void *arg);

static void e_srv_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    (void)r;
    free(arg);
}

static void e_srv_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct duo *d = arg;

    d->rd.n++;
    d->rd.status = r->status;
    d->rd.error = r->error;
    if (r->status != TLSFLOW_OK)
        return;
    void *copy = malloc(r->len);
    memcpy(copy, r->data, r->len);
    if (tlsflow_write(f, copy, r->len, e_srv_written, copy) != 0)
        free(copy);
    tlsflow_read(f, e_srv_read, d);
}

static void echo_start(struct duo *d)
{
    d->back.buf = d->backbuf;
    d->back.cap = MSG;
    d->back.stop_at_cap = 1;
    assert_int_equal(tlsflow_read(d->s.flow, e_srv_read, d), 0);
    assert_int_equal(tlsflow_read(d->c.flow, tf_on_read, &d->back), 0);
    assert_int_equal(tlsflow_write(d->c.flow, d->msg, MSG, tf_on_done, &d->wr[0]), 0);
}

static bool echo_done(const struct duo *d)
{
    return d->back.got == MSG || d->back.errors || d->back.eof;
}

static bool all_echoed(const struct duo *d, int n)
{
    for (int i = 0; i < n; i++)
        if (!echo_done(&d[i]))
            return false;
    return true;
}

/* A ring that refuses submissions for a second while flows write, on a
 * depth-1 ring where each second SQE finds the submission queue full:
 * -EFAULT (a broken ring), -ENOMEM, and -EBUSY with no CQE to reap (a CQ
 * that cannot be drained).  An operation that needed a submission fails with
 * that error after a bounded number of paced tries (no spinning), every
 * write completes once, and afterwards the loop carries new flows. */
static void submit_refused(int err)
{
    static struct duo d[4];
    tlsflow_loop *loop;
    tlsflow_config *scfg, *ccfg;
    int failed = 0;
    unsigned calls;

    assert_int_equal(tlsflow_loop_new(&loop, 1), 0);
    configs_new(&scfg, &ccfg);
    duos_open(loop, scfg, ccfg, d, 4);
    seam_arm(err, 0, 1000);
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < 3; k++)
            assert_int_equal(tlsflow_write(d[i].c.flow, d[i].msg, 100, tf_on_done, &d[i].wr[k]), 0);
        assert_int_equal(tlsflow_read(d[i].s.flow, tf_on_done, &d[i].rd), 0);
    }
    TF_RUN_UNTIL(loop, tf_now_ms() >= seam.until_ms, 5000);
    calls = seam.calls;
    print_message("%u submissions tried, %u refused\n", calls, seam.refused);
    assert_true(seam.refused > 0);
    /* Paced, bounded tries: a spinning submitter makes millions in a second. */
    if (calls > 1000)
        fail_msg("%u submissions tried in the second the ring refused them", calls);
    TF_RUN_UNTIL(loop, d[0].wr[2].n && d[1].wr[2].n && d[2].wr[2].n && d[3].wr[2].n, 10000);
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < 3; k++) {
            assert_int_equal(d[i].wr[k].n, 1);
            if (d[i].wr[k].status == TLSFLOW_ERROR && d[i].wr[k].error.code == TLSFLOW_E_SYSTEM &&
                d[i].wr[k].error.detail == -err)
                failed++;
        }
    }
    if (!failed)
        fail_msg("no write failed with %s (%u submissions refused)", strerror(-err), seam.refused);
    seam_disarm();
    duos_free(d, 4);
    tf_run_for(loop, 100);
    /* The same loop carries new flows. */
    duos_open(loop, scfg, ccfg, d, 2);
    echo_start(&d[0]);
    echo_start(&d[1]);
    TF_RUN_UNTIL(loop, all_echoed(d, 2), 10000);
    assert_memory_equal(d[0].backbuf, d[0].msg, MSG);
    assert_memory_equal(d[1].backbuf, d[1].msg, MSG);
    duos_free(d, 2);
    tlsflow_loop_free(loop);
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
}

TF_TEST(test_submit_refused, 90)
{
    submit_refused(-EFAULT);
    submit_refused(-ENOMEM);
    submit_refused(-EBUSY);
}

/* A ring that says -EAGAIN (no memory for requests) for 300 ms while
 * NDUOS echoes run on a depth-1 ring: submission waits for completions
 * instead of spinning (a bounded number of tries in that time), operations
 * refused meanwhile are retried by their flows, and every echo arrives whole. */
TF_TEST(test_submit_again_no_spin, 60)
{
    static struct duo d[NDUOS];
    tlsflow_loop *loop;
    tlsflow_config *scfg, *ccfg;
    unsigned calls;

    assert_int_equal(tlsflow_loop_new(&loop, 1), 0);
    configs_new(&scfg, &ccfg);
    duos_open(loop, scfg, ccfg, d, NDUOS);
    seam_arm(-EAGAIN, 0, 300);
    for (int i = 0; i < NDUOS; i++)
        echo_start(&d[i]);
    TF_RUN_UNTIL(loop, tf_now_ms() >= seam.until_ms, 5000);
    calls = seam.calls;
    print_message("%u submissions tried, %u refused\n", calls, seam.refused);
    if (calls > 1000)
        fail_msg("%u submissions tried in 300 ms while the ring said EAGAIN", calls);
    TF_RUN_UNTIL(loop, all_echoed(d, NDUOS), 20000);
    for (int i = 0; i < NDUOS; i++) {
        if (d[i].back.errors)
            fail_msg("echo %d: %s", i, tlsflow_error_message(d[i].back.error));
        assert_memory_equal(d[i].backbuf, d[i].msg, MSG);
    }
    seam_disarm();
    duos_free(d, NDUOS);
    tlsflow_loop_free(loop);
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
}

/* ---- loop_free with many operations in flight ---- */

#define NSILENT 16

/* Server flows whose client never speaks: a receive and the handshake
 * timeout in flight each.  The test keeps the client ends. */
static void silent_open(tlsflow_loop *loop, tlsflow_config *scfg, int *peer, int n)
{
    for (int i = 0; i < n; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(tlsflow_wrap_fd(loop, scfg, sv[0], NULL, tf_on_done, &never), 0);
        peer[i] = sv[1];
    }
}

/* 0: the other end is closed; 1: still open. */
static int peer_open(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);

    if (n == 0 || (n < 0 && errno == ECONNRESET))
        return 0;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 1;
    fail_msg("recv on a silent peer: %zd (%s)", n, strerror(errno));
    return -1;
}

/* Receives on idle sockets (open flows and handshakes), handshake timeouts
 * and an accept, on a small ring, and the first submissions of loop_free
 * refused (-EINTR): loop_free still cancels everything and waits for the
 * kernel to end each request -- quickly, not by waiting out a deadline -- so
 * that when it returns every socket is closed and nothing is freed under a
 * request (ASan: nothing leaks either). */
TF_TEST(test_free_many_in_flight, 60)
{
    static struct duo d[NDUOS];
    tlsflow_loop *loop;
    tlsflow_config *scfg, *ccfg;
    tlsflow_listener *ls;
    int peer[NSILENT];
    long long t0, dt;

    memset(&never, 0, sizeof(never));
    assert_int_equal(tlsflow_loop_new(&loop, 2), 0);
    configs_new(&scfg, &ccfg);
    duos_open(loop, scfg, ccfg, d, NDUOS);
    for (int i = 0; i < NDUOS; i++) {
        assert_int_equal(tlsflow_read(d[i].s.flow, tf_on_done, &never), 0);
        assert_int_equal(tlsflow_read(d[i].c.flow, tf_on_done, &never), 0);
    }
    silent_open(loop, scfg, peer, NSILENT);
    assert_int_equal(tlsflow_listen(loop, scfg, "127.0.0.1", "0", tf_on_done, &never, &ls), 0);
    tf_run_for(loop, 50);
    assert_int_equal(never.n, 0);
    for (int i = 0; i < NSILENT; i++)
        assert_int_equal(peer_open(peer[i]), 1);
    seam_arm(-EINTR, 3, 0);
    t0 = tf_now_ms();
    tlsflow_loop_free(loop);
    dt = tf_now_ms() - t0;
    print_message("loop_free: %lld ms, %u submissions refused\n", dt, seam.refused);
    seam_disarm();
    assert_int_equal(never.n, 0);
    if (dt > 900)
        fail_msg("loop_free took %lld ms: it waited out its deadline instead of cancelling", dt);
    for (int i = 0; i < NSILENT; i++) {
        if (peer_open(peer[i]))
            fail_msg("silent peer %d: the flow's socket is still open after loop_free", i);
        close(peer[i]);
    }
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
}

/* When the kernel never ends the requests (here: the cancel cannot be
 * submitted), loop_free gives up after its bound and keeps what those
 * requests may write into or read -- the flows are not destroyed, so their
 * sockets stay open -- instead of freeing it under them. */
TF_TEST(test_free_gives_up_keeps_memory, 60)
{
    tlsflow_loop *loop;
    tlsflow_config *scfg, *ccfg;
    int peer[4];
    long long t0, dt;

    memset(&never, 0, sizeof(never));
    assert_int_equal(tlsflow_loop_new(&loop, 4), 0);
    configs_new(&scfg, &ccfg);
    silent_open(loop, scfg, peer, 4);
    tf_run_for(loop, 50);
    seam_arm(-EFAULT, -1, 0);
    t0 = tf_now_ms();
    tlsflow_loop_free(loop);
    dt = tf_now_ms() - t0;
    print_message("loop_free gave up after %lld ms\n", dt);
    seam_disarm();
    assert_int_equal(never.n, 0);
    if (dt < 4000)
        fail_msg("loop_free gave up after %lld ms with requests in flight", dt);
    assert_true(dt < 15000);
    for (int i = 0; i < 4; i++) {
        if (!peer_open(peer[i]))
            fail_msg("peer %d: its flow was destroyed while its receive was in flight", i);
        close(peer[i]);
    }
    tlsflow_config_free(scfg);   /* the flows kept never run again */
    tlsflow_config_free(ccfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_new_free),
        TF_CASE(test_idle_poll),
        TF_CASE(test_run_stop),
        TF_CASE(test_tiny_queue_many_flows),
        TF_CASE(test_handshake_timeout_client),
        TF_CASE(test_handshake_timeout_server),
        TF_CASE(test_listener_survives_garbage),
        TF_CASE(test_free_with_open_objects),
        cmocka_unit_test_teardown(test_submit_refused, seam_teardown),
        cmocka_unit_test_teardown(test_submit_again_no_spin, seam_teardown),
        cmocka_unit_test_teardown(test_free_many_in_flight, seam_teardown),
        cmocka_unit_test_teardown(test_free_gives_up_keeps_memory, seam_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
