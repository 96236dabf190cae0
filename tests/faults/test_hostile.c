/* Hostile peers over TCP against a tlsflow server and a tlsflow client:
 * garbage, malformed and oversized records, a ClientHello in 1-byte
 * segments, ChangeCipherSpec after a TLS 1.3 handshake, bad MACs, an alert
 * storm, TLS 1.2 renegotiation from either side.  Each case ends in a clear
 * error (or goes on where the protocol allows), never a crash or a hang;
 * ASan/valgrind lanes check the leaks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "faults.h"

#define TLS12 "NORMAL:-VERS-ALL:+VERS-TLS1.2"
#define TLS13 "NORMAL:-VERS-ALL:+VERS-TLS1.3"

struct obs {
    tlsflow *flow;
    int opened, open_done, read_done;
    tlsflow_result open_res, read_res;
    char data[64];
    size_t got;
};

static struct obs o;

static void on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status == TLSFLOW_OK) {
        size_t n = r->len < sizeof(o.data) - o.got ? r->len : sizeof(o.data) - o.got;
        memcpy(o.data + o.got, r->data, n);
        o.got += n;
        if (o.got < 5) {       /* every script that sends data sends 5 bytes */
            assert_int_equal(tlsflow_read(f, on_read, NULL), 0);
            return;
        }
    }
    o.read_res = *r;
    o.read_done = 1;
}

static void on_open(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    o.open_res = *r;
    o.open_done = 1;
    if (r->status != TLSFLOW_OK)
        return;
    o.flow = f;
    o.opened = 1;
    assert_int_equal(tlsflow_read(f, on_read, NULL), 0);
}

static bool clear_error(tlsflow_error e)
{
    return e.code == TLSFLOW_E_TLS || e.code == TLSFLOW_E_BAD_RECORD || e.code == TLSFLOW_E_ALERT ||
           e.code == TLSFLOW_E_TRUNCATED ||
           e.code == TLSFLOW_E_TIMEOUT;   /* a message announced longer than what comes */
}

/* Our flow (server: wrap_fd on an accepted socket; client: wrap_fd with a
 * server name) against `peer` on the other end. */
static void run(bool dut_server, const char *prio, fx_peer *peer, const uint8_t *raw, size_t rawlen,
                bool expect_open)
{
    tlsflow_loop *loop;
    tlsflow_config *cfg = dut_server ? fx_server_config(prio, 3000) : fx_client_config(prio, 3000);
    int a, b, fds = fx_fd_count();

    memset(&o, 0, sizeof(o));
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    fx_tcp_pair(&a, &b);
    assert_int_equal(tlsflow_wrap_fd(loop, cfg, b, dut_server ? NULL : "localhost", on_open, NULL), 0);
    if (peer) {
        peer->fd = a;
        peer->server = !dut_server;
        fx_peer_start(peer);
    } else if (raw) {
        if (!dut_server) {     /* a server answering a ClientHello with junk */
            char buf[4096];
            fx_run_for(loop, 100);
            assert_true(recv(a, buf, sizeof(buf), 0) > 0);
        }
        assert_int_equal(send(a, raw, rawlen, MSG_NOSIGNAL), (ssize_t)rawlen);
    }
    assert_true(fx_run_until(loop, &o.open_done, 8000));
    if (expect_open) {
        if (o.open_res.status != TLSFLOW_OK)
            fail_msg("open: %s", tlsflow_error_message(o.open_res.error));
        assert_true(fx_run_until(loop, &o.read_done, 8000));
    } else {
        assert_int_equal(o.open_res.status, TLSFLOW_ERROR);
        assert_null(o.flow);
        if (!clear_error(o.open_res.error))
            fail_msg("open failed with %d/%d: %s", o.open_res.error.code, o.open_res.error.detail,
                     tlsflow_error_message(o.open_res.error));
        if (raw) {   /* the peer is told (through the loop): an alert, then the end */
            fx_run_for(loop, 300);
            assert_true(fx_drain(a, 2000) != -ETIMEDOUT);
        }
    }
    if (o.flow)
        tlsflow_free(o.flow);
    if (peer) {
        fx_peer_join(peer);    /* closes a */
    } else {
        close(a);
    }
    assert_int_equal(tlsflow_loop_run(loop), 0);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    assert_int_equal(fx_fd_count(), fds);
}

/* ---- before the handshake ---- */

static void test_garbage_before_client_hello(void **s)
{
    static const char junk[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    (void)s;
    run(true, NULL, NULL, (const uint8_t *)junk, sizeof(junk) - 1, false);
}

static void test_oversized_record(void **s)
{
    uint8_t rec[5 + 300] = { 0x16, 0x03, 0x01, 0xff, 0xff };
    (void)s;
    memset(rec + 5, 0x41, sizeof(rec) - 5);
    run(true, NULL, NULL, rec, sizeof(rec), false);
}

static void test_malformed_client_hello(void **s)
{
    static const uint8_t rec[] = { 0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04, 0x03, 0x03, 0, 0 };
    (void)s;
    run(true, NULL, NULL, rec, sizeof(rec), false);
    assert_true(o.open_res.error.code != TLSFLOW_E_TIMEOUT);
}

static void test_truncated_client_hello_times_out(void **s)
{
    static const uint8_t rec[] = { 0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0xff, 0xff, 0x03, 0x03, 0, 0 };
    (void)s;
    run(true, NULL, NULL, rec, sizeof(rec), false);
    assert_int_equal(o.open_res.error.code, TLSFLOW_E_TIMEOUT);
}

static void test_client_gets_malformed_server_hello(void **s)
{
    static const uint8_t rec[] = { 0x16, 0x03, 0x03, 0x00, 0x06, 0x02, 0x00, 0x00, 0x02, 0xff, 0xff };
    (void)s;
    run(false, NULL, NULL, rec, sizeof(rec), false);
    assert_true(o.open_res.error.code != TLSFLOW_E_TIMEOUT);
}

static void test_client_gets_garbage(void **s)
{
    static const uint8_t rec[] = { 0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x50, 0x15, 0x03 };
    (void)s;
    run(false, NULL, NULL, rec, sizeof(rec), false);
}

static void test_client_gets_oversized(void **s)
{
    uint8_t rec[5 + 64] = { 0x17, 0x03, 0x03, 0x7f, 0xff };
    (void)s;
    run(false, NULL, NULL, rec, sizeof(rec), false);
}

/* ---- with a real peer ---- */

static void say_hello(fx_peer *p)
{
    char buf[16];
    fx_peer_send(p, "hello", 5);
    gnutls_record_recv(p->s, buf, sizeof(buf));   /* until we go away */
}

static void test_client_hello_in_one_byte_segments(void **s)
{
    fx_peer p = { .one_byte_segments = true, .script = say_hello };
    (void)s;
    run(true, NULL, &p, NULL, 0, true);
    assert_int_equal(p.hs_ret, 0);
    assert_int_equal(o.read_res.status, TLSFLOW_OK);
    assert_memory_equal(o.data, "hello", 5);
}

static void raw_after_handshake(fx_peer *p, const uint8_t *rec, size_t n)
{
    char buf[16];
    send(p->fd, rec, n, MSG_NOSIGNAL);
    gnutls_record_recv(p->s, buf, sizeof(buf));
}

static void ccs(fx_peer *p)
{
    static const uint8_t rec[] = { 0x14, 0x03, 0x03, 0x00, 0x01, 0x01 };
    raw_after_handshake(p, rec, sizeof(rec));
}

static void bad_mac(fx_peer *p)
{
    uint8_t rec[5 + 48] = { 0x17, 0x03, 0x03, 0x00, 48 };
    fx_pattern(rec + 5, 48, 9, 0);
    raw_after_handshake(p, rec, sizeof(rec));
}

static void expect_read_error(void)
{
    assert_int_equal(o.read_res.status, TLSFLOW_ERROR);
    if (!clear_error(o.read_res.error))
        fail_msg("read failed with %d/%d: %s", o.read_res.error.code, o.read_res.error.detail,
                 tlsflow_error_message(o.read_res.error));
}

static void test_ccs_after_tls13_handshake(void **s)
{
    fx_peer p = { .priority = TLS13, .script = ccs };
    (void)s;
    run(true, NULL, &p, NULL, 0, true);
    expect_read_error();
}

static void test_bad_mac_server(void **s)
{
    fx_peer p = { .script = bad_mac };
    (void)s;
    run(true, NULL, &p, NULL, 0, true);
    expect_read_error();
    assert_int_equal(o.read_res.error.code, TLSFLOW_E_BAD_RECORD);
}

static void test_bad_mac_client(void **s)
{
    fx_peer p = { .script = bad_mac };
    (void)s;
    run(false, NULL, &p, NULL, 0, true);
    expect_read_error();
    assert_int_equal(o.read_res.error.code, TLSFLOW_E_BAD_RECORD);
}

static void alert_storm(fx_peer *p)
{
    for (int i = 0; i < 5000; i++)
        if (gnutls_alert_send(p->s, GNUTLS_AL_WARNING, GNUTLS_A_USER_CANCELED) < 0)
            break;
    say_hello(p);
}

/* Many warning alerts: the flow either reads past them or ends with a clear
 * error; it must not hang or spin. */
static void storm(const char *prio)
{
    fx_peer p = { .priority = prio, .script = alert_storm };
    run(true, NULL, &p, NULL, 0, true);
    if (o.read_res.status == TLSFLOW_OK)
        assert_memory_equal(o.data, "hello", 5);
    else
        expect_read_error();
}

static void test_alert_storm_tls12(void **s) { (void)s; storm(TLS12); }
static void test_alert_storm_tls13(void **s) { (void)s; storm(TLS13); }

/* TLS 1.2 renegotiation: refused; the flow goes on or ends with a clear error. */
static void renegotiate(fx_peer *p)
{
    int ret;

    if (p->server)
        ret = gnutls_rehandshake(p->s);
    else
        ret = gnutls_handshake(p->s);
    p->result = ret;
    if (p->server) {   /* the client answers no_renegotiation (a warning) */
        char buf[16];
        ret = gnutls_record_recv(p->s, buf, sizeof(buf));
        p->count = ret;
    }
    say_hello(p);
}

static void reneg(bool dut_server)
{
    fx_peer p = { .priority = TLS12, .script = renegotiate };
    run(dut_server, TLS12, &p, NULL, 0, true);
    print_message("renegotiation against our %s: peer got %d (%s); read: status %d %s\n",
                  dut_server ? "server" : "client", p.result, gnutls_strerror(p.result),
                  o.read_res.status, o.read_res.status == TLSFLOW_ERROR ? tlsflow_error_message(o.read_res.error) : "");
    if (o.read_res.status == TLSFLOW_OK)
        assert_memory_equal(o.data, "hello", 5);
    else
        expect_read_error();
}

static void test_renegotiation_by_client(void **s) { (void)s; reneg(true); }
static void test_renegotiation_by_server(void **s) { (void)s; reneg(false); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage_before_client_hello),
        cmocka_unit_test(test_oversized_record),
        cmocka_unit_test(test_malformed_client_hello),
        cmocka_unit_test(test_client_gets_garbage),
        cmocka_unit_test(test_truncated_client_hello_times_out),
        cmocka_unit_test(test_client_gets_malformed_server_hello),
        cmocka_unit_test(test_client_gets_oversized),
        cmocka_unit_test(test_client_hello_in_one_byte_segments),
        cmocka_unit_test(test_ccs_after_tls13_handshake),
        cmocka_unit_test(test_bad_mac_server),
        cmocka_unit_test(test_bad_mac_client),
        cmocka_unit_test(test_alert_storm_tls12),
        cmocka_unit_test(test_alert_storm_tls13),
        cmocka_unit_test(test_renegotiation_by_server),
        cmocka_unit_test(test_renegotiation_by_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
