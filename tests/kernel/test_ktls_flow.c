/* Every TLS version x cipher with both keys in the kernel (KTLS_REQUIRE),
 * tlsflow to tlsflow: bytes intact, info telling the truth, close from each end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "kflow.h"
#include "tf_test.h"

struct suite { const char *name, *prio, *cipher; unsigned version; };

#define P12 "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:"
#define P13 "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:"
static const struct suite suites[] = {
    { "tls13-aes128gcm", P13 "+AES-128-GCM", "AES-128-GCM", 0x0304 },
    { "tls13-aes256gcm", P13 "+AES-256-GCM", "AES-256-GCM", 0x0304 },
    { "tls13-chacha20", P13 "+CHACHA20-POLY1305", "CHACHA20-POLY1305", 0x0304 },
    { "tls13-aes128ccm", P13 "+AES-128-CCM", "AES-128-CCM", 0x0304 },
    { "tls12-aes128gcm", P12 "+AES-128-GCM", "AES-128-GCM", 0x0303 },
    { "tls12-aes256gcm", P12 "+AES-256-GCM", "AES-256-GCM", 0x0303 },
    { "tls12-chacha20", P12 "+CHACHA20-POLY1305", "CHACHA20-POLY1305", 0x0303 },
    { "tls12-aes128ccm", P12 "+AES-128-CCM", "AES-128-CCM", 0x0303 },
};

static void run_suite(void **state)
{
    const struct suite *s = *state;
    kflow_run run;

    for (int from_server = 0; from_server < 2; from_server++) {
        memset(&run, 0, sizeof(run));
        run.priority = s->prio;
        run.ktls = TLSFLOW_KTLS_REQUIRE;
        run.bytes = 1 << 20;
        run.close_from_server = from_server;
        kflow_echo(&run);
        if (run.open_error)
            fail_msg("%s: open failed with code %d", s->name, run.open_error);
        assert_true(run.ok);
        assert_int_equal(run.cli.tls_version, s->version);
        assert_string_equal(run.cipher, s->cipher);
        assert_int_equal(run.cli.ktls_tx, 1);
        assert_int_equal(run.cli.ktls_rx, 1);
        assert_int_equal(run.srv.ktls_tx, 1);
        assert_int_equal(run.srv.ktls_rx, 1);
    }
}

int main(void)
{
    struct CMUnitTest tests[sizeof(suites) / sizeof(suites[0])];

    if (!kflow_kernel_has_tls()) {
        if (kflow_expect_ktls()) {
            fprintf(stderr, "TLSFLOW_EXPECT_KTLS=1 but the tls ULP is missing\n");
            return 1;
        }
        fprintf(stderr, "skip: this kernel has no tls ULP\n");
        return TF_SKIP;
    }
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        struct CMUnitTest t = { suites[i].name, run_suite, NULL, NULL, (void *)&suites[i] };
        tests[i] = t;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
