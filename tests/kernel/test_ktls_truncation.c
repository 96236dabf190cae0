/* The end of a kTLS flow that is not a close_notify (tlsflow client,
 * KTLS_REQUIRE, against an in-process GnuTLS server), TLS 1.2 and 1.3:
 *   - the peer closes TCP after its data, at a record boundary: every byte,
 *     then TLSFLOW_E_TRUNCATED — never EOF;
 *   - a relay cuts the stream mid-record, with a FIN or a reset: TRUNCATED;
 *   - the peer sends a fatal alert (after its data, or mid-echo):
 *     TLSFLOW_E_ALERT with the alert number, and the error sticks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "tf_gnutls_peer.h"

static const char *const prio[] = {
    "NORMAL:-VERS-ALL:+VERS-TLS1.2",
    "NORMAL:-VERS-ALL:+VERS-TLS1.3",
};

struct ctx {
    tlsflow_loop   *loop;
    tlsflow_config *cfg;
    tf_gnutls_peer  kp;
    tf_done         con;
};

static void open_to(struct ctx *c, int v, int port)
{
    if (tf_connect_fd_sync(c->loop, c->cfg, port, &c->con, 15000))
        fail_msg("connect: %s", c->con.message);
    (void)v;
}

static void ctx_init(struct ctx *c, int v)
{
    memset(c, 0, sizeof(*c));
    c->loop = tf_loop_new();
    c->cfg = tf_config_ktls(TLSFLOW_CLIENT, prio[v], TLSFLOW_KTLS_REQUIRE);
    c->kp.server = true;
    c->kp.priority = prio[v];
    c->kp.seed = 0x7c + (uint64_t)v;
}

static void ctx_free(struct ctx *c)
{
    if (c->con.flow)
        tlsflow_free(c->con.flow);
    tf_run_for(c->loop, 20);
    tf_gnutls_peer_join(&c->kp, 20000);
    tlsflow_loop_free(c->loop);
    tlsflow_config_free(c->cfg);
}

/* Reads what the peer sources into x until an error or EOF. */
static void read_all(struct ctx *c, tf_xfer *x, size_t expect)
{
    tf_xfer_start(x, c->con.flow, 0, expect, c->kp.seed, TF_DATA_BINARY);
    tf_run_until(c->loop, tf_xfer_cond, x, 30000, "the peer's data");
    if (x->chk.bad)
        fail_msg("byte %llu differs", (unsigned long long)x->chk.bad_offset);
}

static void expect_sticky(struct ctx *c, tlsflow_errcode code)
{
    tf_done w = { 0 }, r;

    assert_int_equal(tlsflow_write(c->con.flow, "x", 1, tf_on_done, &w), 0);
    tf_run_until(c->loop, tf_cond_done, &w, 5000, "a write after the error");
    if (w.status != TLSFLOW_ERROR || w.error.code != code)
        fail_msg("a write after the error: status %d code %d; want the same error (%d)", w.status,
                 w.error.code, code);
    tf_read_sync(c->loop, c->con.flow, &r, 15000);
    if (r.status != TLSFLOW_ERROR || r.error.code != code)
        fail_msg("a read after the error: status %d code %d; want the same error (%d)", r.status,
                 r.error.code, code);
}

TF_TEST(fin_after_data, 30)
{
    int v = (int)(uintptr_t)*state;
    struct ctx c;
    tf_xfer x;
    tf_done r;

    ctx_init(&c, v);
    c.kp.source = 200u << 10;
    c.kp.cut = true;
    tf_gnutls_peer_listen(&c.kp);
    open_to(&c, v, c.kp.port);
    read_all(&c, &x, c.kp.source);
    if (x.failed)
        fail_msg("before the end: %s", x.message);
    assert_int_equal(x.received, c.kp.source);
    tf_read_sync(c.loop, c.con.flow, &r, 15000);
    if (r.status == TLSFLOW_EOF)
        fail_msg("a TCP close without close_notify was reported as EOF");
    if (r.status != TLSFLOW_ERROR || r.error.code != TLSFLOW_E_TRUNCATED)
        fail_msg("at the bare FIN: status %d code %d (%s); want TLSFLOW_E_TRUNCATED", r.status,
                 r.error.code, r.message);
    expect_sticky(&c, TLSFLOW_E_TRUNCATED);
    tf_xfer_release(&x);
    ctx_free(&c);
}

static void cut(int v, bool reset)
{
    struct ctx c;
    tf_relay *relay;
    tf_xfer x;
    int rport;

    ctx_init(&c, v);
    c.kp.source = 256u << 10;
    tf_gnutls_peer_listen(&c.kp);
    relay = tf_relay_start(c.kp.port, &rport);
    assert_non_null(relay);
    /* Past the handshake and tickets, inside the data: 40000 is no multiple
     * of a full record (16 KiB + overhead) plus the handshake. */
    tf_relay_cut(relay, 40000, reset);
    open_to(&c, v, rport);
    read_all(&c, &x, c.kp.source);
    if (!x.failed)
        fail_msg("the whole stream came through a relay that cut it (%zu bytes)", x.received);
    if (x.eof)
        fail_msg("a cut stream ended with EOF after %zu bytes", x.received);
    if (x.error.code != TLSFLOW_E_TRUNCATED)
        fail_msg("cut %s after %zu bytes: code %d detail %d (%s); want TLSFLOW_E_TRUNCATED",
                 reset ? "with RST" : "with FIN", x.received, x.error.code, x.error.detail, x.message);
    assert_true(x.received < 40000);
    tf_xfer_release(&x);
    tlsflow_free(c.con.flow);
    c.con.flow = NULL;
    tf_relay_stop(relay);
    ctx_free(&c);
}

TF_TEST(cut_mid_record_fin, 30)
{
    cut((int)(uintptr_t)*state, false);
}

TF_TEST(cut_mid_record_reset, 30)
{
    cut((int)(uintptr_t)*state, true);
}

static void expect_alert(const tf_xfer *x, int alert)
{
    if (!x->failed)
        fail_msg("no error after the alert (%zu bytes, eof %d)", x->received, x->eof);
    if (x->error.code != TLSFLOW_E_ALERT || x->error.detail != alert)
        fail_msg("code %d detail %d (%s); want TLSFLOW_E_ALERT, %d", x->error.code, x->error.detail,
                 x->message, alert);
    if (!strstr(tlsflow_error_message(x->error), gnutls_alert_get_strname(alert)))
        fail_msg("message \"%s\" does not name the alert (%s)", tlsflow_error_message(x->error),
                 gnutls_alert_get_strname(alert));
}

TF_TEST(alert_after_data, 30)
{
    int v = (int)(uintptr_t)*state;
    struct ctx c;
    tf_xfer x;

    ctx_init(&c, v);
    c.kp.source = 64u << 10;
    c.kp.alert = GNUTLS_A_INTERNAL_ERROR;
    tf_gnutls_peer_listen(&c.kp);
    open_to(&c, v, c.kp.port);
    read_all(&c, &x, 1u << 20);    /* more than comes: the alert ends it */
    assert_int_equal(x.received, c.kp.source);
    expect_alert(&x, GNUTLS_A_INTERNAL_ERROR);
    expect_sticky(&c, TLSFLOW_E_ALERT);
    tf_xfer_release(&x);
    ctx_free(&c);
}

TF_TEST(alert_mid_echo, 30)
{
    int v = (int)(uintptr_t)*state;
    struct ctx c;
    tf_xfer x;

    ctx_init(&c, v);
    c.kp.echo = true;
    c.kp.alert_at = 128u << 10;
    c.kp.alert = GNUTLS_A_ILLEGAL_PARAMETER;
    tf_gnutls_peer_listen(&c.kp);
    open_to(&c, v, c.kp.port);
    tf_xfer_start(&x, c.con.flow, 256u << 10, 256u << 10, c.kp.seed, TF_DATA_BINARY);
    tf_run_until(c.loop, tf_xfer_cond, &x, 30000, "the alert");
    if (x.chk.bad)
        fail_msg("byte %llu differs", (unsigned long long)x.chk.bad_offset);
    expect_alert(&x, GNUTLS_A_ILLEGAL_PARAMETER);
    if (x.received < c.kp.alert_at)
        fail_msg("only %zu of the %zu bytes echoed before the alert came", x.received, c.kp.alert_at);
    tf_xfer_release(&x);
    ctx_free(&c);
}

int main(void)
{
    static const struct { const char *name; void (*fn)(void **); } cases[] = {
        { "fin_after_data", fin_after_data },
        { "cut_mid_record_fin", cut_mid_record_fin },
        { "cut_mid_record_reset", cut_mid_record_reset },
        { "alert_after_data", alert_after_data },
        { "alert_mid_echo", alert_mid_echo },
    };
    struct CMUnitTest tests[10];
    int n = 0, pre = tf_kernel_prelude();

    if (pre)
        return pre;
    for (int v = 1; v >= 0; v--)
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
            tests[n++] = (struct CMUnitTest)TF_CASE_WITH(
                cases[i].fn, tf_name("%s_tls1%d", cases[i].name, v ? 3 : 2), (void *)(uintptr_t)v);
    return _cmocka_run_group_tests("kernel_truncation", tests, (size_t)n, NULL, NULL);
}
