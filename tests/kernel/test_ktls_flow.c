/* Every TLS version x cipher with both keys in the kernel (KTLS_REQUIRE),
 * tlsflow to tlsflow: bytes intact, info telling the truth, close from each end,
 * no plaintext copied in userspace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

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
#define NSUITES (sizeof(suites) / sizeof(suites[0]))

TF_TEST(run_suite, 60)
{
    const struct suite *s = *state;
    tf_echo_run run;

    for (int from_server = 0; from_server < 2; from_server++) {
        memset(&run, 0, sizeof(run));
        run.priority = s->prio;
        run.ktls = TLSFLOW_KTLS_REQUIRE;
        run.len = 1 << 20;
        run.seed = 0x6b;
        run.close_from_server = from_server;
        tf_echo_roundtrip(&run);
        if (run.open_error)
            fail_msg("%s: open failed with code %d", s->name, run.open_error);
        assert_true(run.ok);
        assert_int_equal(run.cli.tls_version, s->version);
        assert_string_equal(run.cli.cipher, s->cipher);
        assert_int_equal(run.cli.ktls_tx, 1);
        assert_int_equal(run.cli.ktls_rx, 1);
        assert_int_equal(run.srv.ktls_tx, 1);
        assert_int_equal(run.srv.ktls_rx, 1);
        /* Both ends keep a read pending: every segment the kernel decrypted
         * went to a read as it lay in the receive buffer (and writes go from
         * the caller's buffer), so nothing was copied in userspace. */
        if (run.stats.plaintext_copied)
            fail_msg("%s: %llu plaintext bytes copied in userspace for 2 x %zu echoed", s->name,
                     run.stats.plaintext_copied, run.len);
    }
}

int main(void)
{
    struct CMUnitTest tests[NSUITES];
    int pre = tf_kernel_prelude();

    if (pre)
        return pre;
    for (size_t i = 0; i < NSUITES; i++)
        tests[i] = (struct CMUnitTest)TF_CASE_WITH(run_suite, suites[i].name, &suites[i]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
