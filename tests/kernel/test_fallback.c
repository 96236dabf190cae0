/* Under TLSFLOW_KTLS_AUTO a kernel that cannot take the keys changes nothing
 * the application sees: bytes flow, info says userspace.  Where the kernel can,
 * info says kernel.  REQUIRE without kTLS fails the open with its own code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "kflow.h"
#include "tf_test.h"

static void test_auto(void **state)
{
    const char *prios[] = { "NORMAL:-VERS-ALL:+VERS-TLS1.3", "NORMAL:-VERS-ALL:+VERS-TLS1.2" };
    int kernel = kflow_kernel_has_tls();
    kflow_run run;

    (void)state;
    for (int i = 0; i < 2; i++) {
        memset(&run, 0, sizeof(run));
        run.priority = prios[i];
        run.ktls = TLSFLOW_KTLS_AUTO;
        run.bytes = 3 << 20;
        kflow_echo(&run);
        assert_true(run.ok);
        assert_int_equal(run.cli.ktls_tx, kernel);
        assert_int_equal(run.cli.ktls_rx, kernel);
        assert_int_equal(run.srv.ktls_tx, kernel);
        assert_int_equal(run.srv.ktls_rx, kernel);
    }
}

static void test_off(void **state)
{
    kflow_run run;

    (void)state;
    memset(&run, 0, sizeof(run));
    run.ktls = TLSFLOW_KTLS_OFF;
    run.bytes = 1 << 20;
    kflow_echo(&run);
    assert_true(run.ok);
    assert_int_equal(run.cli.ktls_tx + run.cli.ktls_rx + run.srv.ktls_tx + run.srv.ktls_rx, 0);
}

static void test_require_without_kernel(void **state)
{
    kflow_run run;

    (void)state;
    if (kflow_kernel_has_tls())
        skip();
    memset(&run, 0, sizeof(run));
    run.ktls = TLSFLOW_KTLS_REQUIRE;
    run.bytes = 1024;
    kflow_echo(&run);
    assert_int_equal(run.open_error, TLSFLOW_E_KTLS_UNAVAILABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto),
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_require_without_kernel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
