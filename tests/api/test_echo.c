/* A tlsflow client and a tlsflow server on one loop: the handshake, an echo of
 * binary data checked byte for byte, and a clean close from the client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tf_test.h"

#define TOTAL (4u << 20)

static void echo(const char *priority, unsigned version, tf_echo_run *r)
{
    tlsflow_config *scfg = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, NULL);
    tlsflow_config *ccfg = tf_client_config(priority, TF_CA);

    memset(r, 0, sizeof(*r));
    r->scfg = scfg;
    r->ccfg = ccfg;
    r->len = TOTAL;
    r->chunk = TOTAL / 4;   /* several writes in flight at once, in order */
    r->seed = 0xec40;
    tf_echo_roundtrip(r);
    if (r->open_error)
        fail_msg("connect: error code %d", r->open_error);
    assert_true(r->ok);
    assert_string_equal(r->server_name, "localhost");   /* taken while the flow lived */
    assert_int_equal(r->cli.ktls_tx, 0);
    assert_int_equal(r->cli.resumed, 0);
    assert_int_equal(r->writes, 4);
    assert_true(r->srv_eof);
    assert_int_equal(r->cli.tls_version, version);
    assert_int_equal(r->srv.tls_version, version);
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
}

TF_TEST(test_echo_tls13, 60)
{
    tf_echo_run r;

    echo(NULL, 0x0304, &r);
    assert_string_equal(r.cli.cipher, "AES-128-GCM");   /* static strings from GnuTLS */
}

TF_TEST(test_echo_tls12, 60)
{
    tf_echo_run r;

    echo("NORMAL:-VERS-ALL:+VERS-TLS1.2", 0x0303, &r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_echo_tls13),
        TF_CASE(test_echo_tls12),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
