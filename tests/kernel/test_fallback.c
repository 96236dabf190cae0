/* Under TLSFLOW_KTLS_AUTO a kernel that cannot take the keys changes nothing
 * the application sees: bytes flow, info says userspace.  Where the kernel can,
 * info says kernel.  REQUIRE without kTLS fails the open with its own code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tf_test.h"

/* A tlsflow client and server echoing len bytes, both in mode. */
static void echo(tlsflow_ktls_mode mode, const char *priority, size_t len, tf_echo_run *r)
{
    memset(r, 0, sizeof(*r));
    r->priority = priority;
    r->ktls = mode;
    r->len = len;
    r->seed = 0xfa11;
    tf_echo_roundtrip(r);
}

TF_TEST(test_auto, 60)
{
    const char *prios[] = { "NORMAL:-VERS-ALL:+VERS-TLS1.3", "NORMAL:-VERS-ALL:+VERS-TLS1.2" };
    int kernel = tf_kernel_has_tls();
    tf_echo_run run;

    for (int i = 0; i < 2; i++) {
        echo(TLSFLOW_KTLS_AUTO, prios[i], 3 << 20, &run);
        assert_true(run.ok);
        assert_int_equal(run.cli.ktls_tx, kernel);
        assert_int_equal(run.cli.ktls_rx, kernel);
        assert_int_equal(run.srv.ktls_tx, kernel);
        assert_int_equal(run.srv.ktls_rx, kernel);
    }
}

TF_TEST(test_off, 60)
{
    tf_echo_run run;

    echo(TLSFLOW_KTLS_OFF, NULL, 1 << 20, &run);
    assert_true(run.ok);
    assert_int_equal(run.cli.ktls_tx + run.cli.ktls_rx + run.srv.ktls_tx + run.srv.ktls_rx, 0);
}

TF_TEST(test_require_without_kernel, 60)
{
    tf_echo_run run;

    if (tf_kernel_has_tls())
        TF_SKIP_TEST("this kernel has the tls ULP");
    echo(TLSFLOW_KTLS_REQUIRE, NULL, 1024, &run);
    assert_int_equal(run.open_error, TLSFLOW_E_KTLS_UNAVAILABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_auto),
        TF_CASE(test_off),
        TF_CASE(test_require_without_kernel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
