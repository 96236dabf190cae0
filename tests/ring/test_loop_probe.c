/* The kTLS probe (ktls/probe.c, loopback socket pairs) runs at
 * tlsflow_loop_new, once per process, never inside a callback: after the
 * first loop its results are in, and neither an accept nor a connect nor
 * their callbacks run it again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "tf_test.h"
#include "ktls/ktls.h"

static unsigned runs_in_callback;
static tf_done accepted;

static void on_flow(tlsflow *flow, const tlsflow_result *r, void *arg)
{
    /* Still once: nothing on the accept path probed. */
    runs_in_callback = tf_ktls_probe_runs();
    tf_on_done(flow, r, arg);
}

TF_TEST(test_probe_at_loop_new, 30)
{
    tlsflow_loop *loop;
    tlsflow_config *scfg = tf_config_ktls(TLSFLOW_SERVER, NULL, TLSFLOW_KTLS_AUTO);
    tlsflow_config *ccfg = tf_config_ktls(TLSFLOW_CLIENT, NULL, TLSFLOW_KTLS_AUTO);
    tlsflow_listener *ls;
    tf_done con = { 0 };
    char port[16];

    /* Nothing in this process has made a loop yet. */
    assert_false(tf_ktls_probe_is_done());
    assert_int_equal(tf_ktls_probe_runs(), 0);
    loop = tf_loop_new();
    assert_true(tf_ktls_probe_is_done());
    assert_int_equal(tf_ktls_probe_runs(), 1);
    assert_int_equal(tlsflow_listen(loop, scfg, "127.0.0.1", "0", on_flow, &accepted, &ls), 0);
    snprintf(port, sizeof(port), "%d", tlsflow_listener_port(ls));
    assert_int_equal(tlsflow_connect(loop, ccfg, "127.0.0.1", port, tf_on_done, &con), 0);
    TF_RUN_UNTIL(loop, accepted.n && con.n, 10000);
    if (accepted.status != TLSFLOW_OK || con.status != TLSFLOW_OK)
        fail_msg("open: %s / %s", accepted.message, con.message);
    assert_int_equal(runs_in_callback, 1);
    assert_int_equal(tf_ktls_probe_runs(), 1);
    /* A second loop finds it cached. */
    tlsflow_loop_free(tf_loop_new());
    assert_int_equal(tf_ktls_probe_runs(), 1);
    tlsflow_free(accepted.flow);
    tlsflow_free(con.flow);
    tlsflow_listener_close(ls);
    tlsflow_loop_free(loop);
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_probe_at_loop_new),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
