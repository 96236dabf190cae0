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

#include "tf_gnutls_peer.h"

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
static void run(bool dut_server, const char *prio, tf_gnutls_peer *peer, const uint8_t *raw,
                size_t rawlen, bool expect_open)
{
    tlsflow_loop *loop;
    tlsflow_config *cfg = tf_config(dut_server ? TLSFLOW_SERVER : TLSFLOW_CLIENT, prio, 3000);
    int a, b, fds = tf_fd_count();

    memset(&o, 0, sizeof(o));
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    tf_tcp_pair(&a, &b);
    assert_int_equal(tlsflow_wrap_fd(loop, cfg, b, dut_server ? NULL : "localhost", on_open, NULL), 0);
    if (peer) {
        peer->server = !dut_server;
        tf_gnutls_peer_start(peer, a);
    } else if (raw) {
        if (!dut_server) {     /* a server answering a ClientHello with junk */
            char buf[4096];
            tf_run_for(loop, 100);
            assert_true(recv(a, buf, sizeof(buf), 0) > 0);
        }
        assert_int_equal(send(a, raw, rawlen, MSG_NOSIGNAL), (ssize_t)rawlen);
    }
    tf_run_until_flag(loop, &o.open_done, 8000, "the opening");
    if (expect_open) {
        if (o.open_res.status != TLSFLOW_OK)
            fail_msg("open: %s", tlsflow_error_message(o.open_res.error));
        tf_run_until_flag(loop, &o.read_done, 8000, "the read");
    } else {
        assert_int_equal(o.open_res.status, TLSFLOW_ERROR);
        assert_null(o.flow);
        if (!clear_error(o.open_res.error))
            fail_msg("open failed with %d/%d: %s", o.open_res.error.code, o.open_res.error.detail,
                     tlsflow_error_message(o.open_res.error));
        if (raw) {   /* the peer is told (through the loop): an alert, then the end */
            tf_run_for(loop, 300);
            assert_true(tf_drain(a, 2000) != -ETIMEDOUT);
        }
    }
    if (o.flow)
        tlsflow_free(o.flow);
    if (peer) {
        tf_gnutls_peer_join(peer, 10000);    /* closes a */
    } else {
        close(a);
    }
    assert_int_equal(tlsflow_loop_run(loop), 0);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    assert_int_equal(tf_fd_count(), fds);
}

/* ---- before the handshake ---- */

TF_TEST(test_garbage_before_client_hello, 30)
{
    static const char junk[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    run(true, NULL, NULL, (const uint8_t *)junk, sizeof(junk) - 1, false);
}

TF_TEST(test_oversized_record, 30)
{
    uint8_t rec[5 + 300] = { 0x16, 0x03, 0x01, 0xff, 0xff };
    memset(rec + 5, 0x41, sizeof(rec) - 5);
    run(true, NULL, NULL, rec, sizeof(rec), false);
}

TF_TEST(test_malformed_client_hello, 30)
{
    static const uint8_t rec[] = { 0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04, 0x03, 0x03, 0, 0 };
    run(true, NULL, NULL, rec, sizeof(rec), false);
    assert_true(o.open_res.error.code != TLSFLOW_E_TIMEOUT);
}

TF_TEST(test_truncated_client_hello_times_out, 30)
{
    static const uint8_t rec[] = { 0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0xff, 0xff, 0x03, 0x03, 0, 0 };
    run(true, NULL, NULL, rec, sizeof(rec), false);
    assert_int_equal(o.open_res.error.code, TLSFLOW_E_TIMEOUT);
}

TF_TEST(test_client_gets_malformed_server_hello, 30)
{
    static const uint8_t rec[] = { 0x16, 0x03, 0x03, 0x00, 0x06, 0x02, 0x00, 0x00, 0x02, 0xff, 0xff };
    run(false, NULL, NULL, rec, sizeof(rec), false);
    assert_true(o.open_res.error.code != TLSFLOW_E_TIMEOUT);
}

TF_TEST(test_client_gets_garbage, 30)
{
    static const uint8_t rec[] = { 0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x50, 0x15, 0x03 };
    run(false, NULL, NULL, rec, sizeof(rec), false);
}

TF_TEST(test_client_gets_oversized, 30)
{
    uint8_t rec[5 + 64] = { 0x17, 0x03, 0x03, 0x7f, 0xff };
    run(false, NULL, NULL, rec, sizeof(rec), false);
}

/* ---- with a real peer ---- */

static void say_hello(tf_gnutls_peer *p)
{
    char buf[16];
    tf_gnutls_peer_send(p, "hello", 5);
    gnutls_record_recv(p->s, buf, sizeof(buf));   /* until we go away */
}

TF_TEST(test_client_hello_in_one_byte_segments, 30)
{
    tf_gnutls_peer p = { .one_byte_segments = true, .script = say_hello };
    run(true, NULL, &p, NULL, 0, true);
    assert_int_equal(p.hs_ret, 0);
    assert_int_equal(o.read_res.status, TLSFLOW_OK);
    assert_memory_equal(o.data, "hello", 5);
}

static void raw_after_handshake(tf_gnutls_peer *p, const uint8_t *rec, size_t n)
{
    char buf[16];
    send(p->fd, rec, n, MSG_NOSIGNAL);
    gnutls_record_recv(p->s, buf, sizeof(buf));
}

static void ccs(tf_gnutls_peer *p)
{
    static const uint8_t rec[] = { 0x14, 0x03, 0x03, 0x00, 0x01, 0x01 };
    raw_after_handshake(p, rec, sizeof(rec));
}

static void bad_mac(tf_gnutls_peer *p)
{
    uint8_t rec[5 + 48] = { 0x17, 0x03, 0x03, 0x00, 48 };
    tf_data_fill(rec + 5, 48, 9, 0, TF_DATA_BINARY);
    raw_after_handshake(p, rec, sizeof(rec));
}

static void expect_read_error(void)
{
    assert_int_equal(o.read_res.status, TLSFLOW_ERROR);
    if (!clear_error(o.read_res.error))
        fail_msg("read failed with %d/%d: %s", o.read_res.error.code, o.read_res.error.detail,
                 tlsflow_error_message(o.read_res.error));
}

TF_TEST(test_ccs_after_tls13_handshake, 30)
{
    tf_gnutls_peer p = { .priority = TLS13, .script = ccs };
    run(true, NULL, &p, NULL, 0, true);
    expect_read_error();
}

TF_TEST(test_bad_mac_server, 30)
{
    tf_gnutls_peer p = { .script = bad_mac };
    run(true, NULL, &p, NULL, 0, true);
    expect_read_error();
    assert_int_equal(o.read_res.error.code, TLSFLOW_E_BAD_RECORD);
}

TF_TEST(test_bad_mac_client, 30)
{
    tf_gnutls_peer p = { .script = bad_mac };
    run(false, NULL, &p, NULL, 0, true);
    expect_read_error();
    assert_int_equal(o.read_res.error.code, TLSFLOW_E_BAD_RECORD);
}

static void alert_storm(tf_gnutls_peer *p)
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
    tf_gnutls_peer p = { .priority = prio, .script = alert_storm };
    run(true, NULL, &p, NULL, 0, true);
    if (o.read_res.status == TLSFLOW_OK)
        assert_memory_equal(o.data, "hello", 5);
    else
        expect_read_error();
}

TF_TEST(test_alert_storm_tls12, 30) { storm(TLS12); }
TF_TEST(test_alert_storm_tls13, 30) { storm(TLS13); }

/* TLS 1.2 renegotiation: refused; the flow goes on or ends with a clear error. */
static void renegotiate(tf_gnutls_peer *p)
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
    tf_gnutls_peer p = { .priority = TLS12, .script = renegotiate };
    run(dut_server, TLS12, &p, NULL, 0, true);
    print_message("renegotiation against our %s: peer got %d (%s); read: status %d %s\n",
                  dut_server ? "server" : "client", p.result, gnutls_strerror(p.result),
                  o.read_res.status, o.read_res.status == TLSFLOW_ERROR ? tlsflow_error_message(o.read_res.error) : "");
    if (o.read_res.status == TLSFLOW_OK)
        assert_memory_equal(o.data, "hello", 5);
    else
        expect_read_error();
}

TF_TEST(test_renegotiation_by_client, 30) { reneg(true); }
TF_TEST(test_renegotiation_by_server, 30) { reneg(false); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_garbage_before_client_hello),
        TF_CASE(test_oversized_record),
        TF_CASE(test_malformed_client_hello),
        TF_CASE(test_client_gets_garbage),
        TF_CASE(test_truncated_client_hello_times_out),
        TF_CASE(test_client_gets_malformed_server_hello),
        TF_CASE(test_client_gets_oversized),
        TF_CASE(test_client_hello_in_one_byte_segments),
        TF_CASE(test_ccs_after_tls13_handshake),
        TF_CASE(test_bad_mac_server),
        TF_CASE(test_bad_mac_client),
        TF_CASE(test_alert_storm_tls12),
        TF_CASE(test_alert_storm_tls13),
        TF_CASE(test_renegotiation_by_server),
        TF_CASE(test_renegotiation_by_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
