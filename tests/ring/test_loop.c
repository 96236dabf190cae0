/* ring/loop.c and the loop's side of ring/open.c: creation limits, polling an
 * idle loop, run/stop, a depth-2 ring carrying 64 echo pairs (a full submission
 * queue is submitted, never refused), handshake timeouts, and a listener that
 * keeps serving after a failed handshake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/harness.h"

/* loop_run can block for ever: a hang ends the process instead. */
#define GUARD(s) alarm(s)

static void test_new_free(void **state)
{
    tlsflow_loop *loop = NULL;

    (void)state;
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

static void test_idle_poll(void **state)
{
    tlsflow_loop *loop;
    long long t0;

    (void)state;
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    t0 = h_now_ms();
    for (int i = 0; i < 100; i++)
        assert_int_equal(tlsflow_loop_run_once(loop, 0), 0);
    assert_true(h_now_ms() - t0 < 200);
    /* A bounded wait with nothing to do waits about that long. */
    t0 = h_now_ms();
    assert_int_equal(tlsflow_loop_run_once(loop, 50), 0);
    assert_true(h_now_ms() - t0 >= 40);
    assert_true(h_now_ms() - t0 < 1000);
    /* run with nothing left returns at once. */
    GUARD(10);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    GUARD(0);
    tlsflow_loop_free(loop);
}

/* ---- run / stop ---- */

static void stop_on_connect(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct h_env *e = arg;

    h_on_done(f, r, &e->con);
    tlsflow_loop_stop(e->loop);
}

static void test_run_stop(void **state)
{
    struct h_env e;

    (void)state;
    h_env_init(&e);
    assert_int_equal(tlsflow_connect(e.loop, e.ccfg, "localhost", e.port, stop_on_connect, &e), 0);
    GUARD(10);
    /* The listener is still open: only stop ends this run. */
    assert_int_equal(tlsflow_loop_run(e.loop), 0);
    GUARD(0);
    assert_int_equal(e.con.n, 1);
    assert_int_equal(e.con.status, TLSFLOW_OK);
    tlsflow_free(e.con.flow);
    RUN_UNTIL(e.loop, e.acc.n == 1, 5000);
    if (e.acc.flow)
        tlsflow_free(e.acc.flow);
    /* With everything released, run returns by itself. */
    tlsflow_listener_close(e.ls);
    e.ls = NULL;
    GUARD(10);
    assert_int_equal(tlsflow_loop_run(e.loop), 0);
    GUARD(0);
    h_env_fini(&e);
}

/* ---- 64 echo pairs on a depth-2 ring ---- */

#define NPAIRS 64
#define MSG 3000

struct pair {
    int           sv[2];
    tlsflow      *s, *c;
    uint8_t       msg[MSG];
    struct h_sink back;
    uint8_t       backbuf[MSG];
    int           s_closed, c_closed, s_eof, errors;
};

static struct pair pairs[NPAIRS];

static void p_srv_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    free(arg);
    assert_int_equal(r->status, TLSFLOW_OK);
}

static void p_srv_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct pair *p = arg;

    if (r->status != TLSFLOW_OK)
        fail_msg("server close: %s", tlsflow_error_message(r->error));
    p->s_closed = 1;
    tlsflow_free(f);
}

static void p_srv_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct pair *p = arg;

    if (r->status == TLSFLOW_OK) {
        void *copy = malloc(r->len);
        memcpy(copy, r->data, r->len);
        assert_int_equal(tlsflow_write(f, copy, r->len, p_srv_written, copy), 0);
        assert_int_equal(tlsflow_read(f, p_srv_read, p), 0);
    } else if (r->status == TLSFLOW_EOF) {
        p->s_eof = 1;
        assert_int_equal(tlsflow_close(f, p_srv_closed, p), 0);
    } else {
        fail_msg("server read: %s", tlsflow_error_message(r->error));
    }
}

static void p_srv_open(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct pair *p = arg;

    if (r->status != TLSFLOW_OK)
        fail_msg("server handshake %ld: %s", (long)(p - pairs), tlsflow_error_message(r->error));
    p->s = f;
    assert_int_equal(tlsflow_read(f, p_srv_read, p), 0);
}

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

    h_on_read(f, r, &p->back);
    if (p->back.errors)
        fail_msg("client read: %s", tlsflow_error_message(p->back.err));
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
        if (!pairs[i].s_closed || !pairs[i].c_closed)
            return 0;
    return 1;
}

static void test_tiny_queue_many_flows(void **state)
{
    tlsflow_loop *loop;
    tlsflow_config *scfg, *ccfg;

    (void)state;
    assert_int_equal(tlsflow_loop_new(&loop, 2), 0);
    assert_int_equal(tlsflow_config_new(&scfg, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_set_cert_file(scfg, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
    assert_int_equal(tlsflow_config_new(&ccfg, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_ca_file(ccfg, TF_CA), 0);
    memset(pairs, 0, sizeof(pairs));
    for (int i = 0; i < NPAIRS; i++) {
        struct pair *p = &pairs[i];
        h_fill(p->msg, MSG, (uint32_t)i);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->sv), 0);
        /* Every open submits before any completion is reaped. */
        assert_int_equal(tlsflow_wrap_fd(loop, scfg, p->sv[0], NULL, p_srv_open, p), 0);
        assert_int_equal(tlsflow_wrap_fd(loop, ccfg, p->sv[1], "localhost", p_cli_open, p), 0);
    }
    RUN_UNTIL(loop, all_closed(), 30000);
    for (int i = 0; i < NPAIRS; i++) {
        assert_true(pairs[i].s_eof);
        assert_memory_equal(pairs[i].backbuf, pairs[i].msg, MSG);
    }
    /* Nothing is left: run returns. */
    GUARD(10);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    GUARD(0);
    tlsflow_loop_free(loop);
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
}

/* ---- handshake timeout ---- */

static void test_handshake_timeout_client(void **state)
{
    tlsflow_loop *loop;
    tlsflow_config *ccfg;
    struct h_done d = { 0 };
    int sv[2];
    long long t0, dt;

    (void)state;
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    assert_int_equal(tlsflow_config_new(&ccfg, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_ca_file(ccfg, TF_CA), 0);
    assert_int_equal(tlsflow_config_set_handshake_timeout(ccfg, 200), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    t0 = h_now_ms();
    assert_int_equal(tlsflow_wrap_fd(loop, ccfg, sv[0], "localhost", h_on_done, &d), 0);
    RUN_UNTIL(loop, d.n > 0, 5000);
    dt = h_now_ms() - t0;
    assert_int_equal(d.n, 1);
    assert_null(d.flow);
    assert_int_equal(d.status, TLSFLOW_ERROR);
    if (d.err.code != TLSFLOW_E_TIMEOUT)
        fail_msg("expected a timeout, got %s", tlsflow_error_message(d.err));
    assert_true(dt >= 180);
    assert_true(dt < 2000);
    h_spin(loop, 50);
    assert_int_equal(d.n, 1);
    GUARD(10);
    assert_int_equal(tlsflow_loop_run(loop), 0);   /* the flow was released */
    GUARD(0);
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

static void test_handshake_timeout_server(void **state)
{
    struct h_env e;
    long long t0, dt;
    int fd;

    (void)state;
    h_env_configs(&e, NULL, NULL);
    assert_int_equal(tlsflow_config_set_handshake_timeout(e.scfg, 200), 0);
    h_env_listen(&e, "127.0.0.1");
    t0 = h_now_ms();
    fd = raw_connect(e.port);   /* and says nothing */
    RUN_UNTIL(e.loop, e.acc.n > 0, 5000);
    dt = h_now_ms() - t0;
    assert_int_equal(e.acc.n, 1);
    assert_null(e.acc.flow);
    assert_int_equal(e.acc.status, TLSFLOW_ERROR);
    assert_int_equal(e.acc.err.code, TLSFLOW_E_TIMEOUT);
    assert_true(dt >= 180 && dt < 2000);
    close(fd);
    h_env_fini(&e);
}

/* ---- a listener survives a bad client ---- */

static void test_listener_survives_garbage(void **state)
{
    static const char garbage[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    struct h_env e;
    tlsflow *s, *c;
    struct pollfd pfd;
    char buf[256];
    int fd;

    (void)state;
    h_env_init(&e);
    fd = raw_connect(e.port);
    assert_int_equal(send(fd, garbage, sizeof(garbage) - 1, 0), (ssize_t)sizeof(garbage) - 1);
    RUN_UNTIL(e.loop, e.acc.n > 0, 5000);
    assert_null(e.acc.flow);
    assert_int_equal(e.acc.status, TLSFLOW_ERROR);
    assert_true(e.acc.err.code != 0);
    assert_true(strlen(tlsflow_error_message(e.acc.err)) > 0);
    /* The bad client is told (an alert) or dropped, not left hanging. */
    pfd.fd = fd;
    pfd.events = POLLIN;
    assert_int_equal(poll(&pfd, 1, 2000), 1);
    (void)recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    close(fd);

    h_env_pair(&e, "localhost", &s, &c);
    assert_int_equal(e.acc.n, 2);
    tlsflow_free(c);
    tlsflow_free(s);
    h_env_fini(&e);
}

/* ---- loop_free releases what is still open, calling nobody ---- */

static struct h_done never;

static void test_free_with_open_objects(void **state)
{
    struct h_env e;
    tlsflow *s, *c;

    (void)state;
    h_env_init(&e);
    h_env_pair(&e, "localhost", &s, &c);
    memset(&never, 0, sizeof(never));
    assert_int_equal(tlsflow_read(c, h_on_done, &never), 0);
    assert_int_equal(tlsflow_read(s, h_on_done, &never), 0);
    assert_int_equal(tlsflow_write(c, "x", 1, h_on_done, &never), 0);
    /* And a connect in flight. */
    assert_int_equal(tlsflow_connect(e.loop, e.ccfg, "127.0.0.1", e.port, h_on_done, &never), 0);
    tlsflow_loop_free(e.loop);
    assert_int_equal(never.n, 0);
    tlsflow_config_free(e.scfg);
    tlsflow_config_free(e.ccfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_free),
        cmocka_unit_test(test_idle_poll),
        cmocka_unit_test(test_run_stop),
        cmocka_unit_test(test_tiny_queue_many_flows),
        cmocka_unit_test(test_handshake_timeout_client),
        cmocka_unit_test(test_handshake_timeout_server),
        cmocka_unit_test(test_listener_survives_garbage),
        cmocka_unit_test(test_free_with_open_objects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
