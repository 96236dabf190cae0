/* Client verification modes against a tlsflow server: REQUIRED fails on a
 * misnamed or untrusted certificate, OPTIONAL opens and reports what it found,
 * NONE opens without looking; the peer's chain is readable either way. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <gnutls/gnutls.h>

#include <tlsflow.h>
#include "tf_test.h"

static void open_with(tlsflow_verify mode, const char *cert, const char *key, const char *host,
                      tlsflow_info *info, int *opened, tlsflow_error *err)
{
    tf_env e;
    tlsflow_info tmp;

    tf_env_configs(&e, cert, key);
    assert_int_equal(tlsflow_config_set_verify(e.ccfg, mode), 0);
    tf_env_listen(&e, "127.0.0.1");
    assert_int_equal(tlsflow_connect(e.loop, e.ccfg, host, e.port, tf_on_done, &e.con), 0);
    TF_RUN_UNTIL(e.loop, e.con.n > 0, 5000);
    *opened = e.con.status == TLSFLOW_OK;
    *err = e.con.error;
    if (*opened) {
        const void *der;
        size_t len;
        assert_int_equal(tlsflow_get_info(e.con.flow, &tmp), 0);
        *info = tmp;
        assert_int_equal(tlsflow_get_peer_certificate(e.con.flow, 0, &der, &len), 0);
        assert_true(len > 100 && ((const uint8_t *)der)[0] == 0x30);   /* a DER SEQUENCE */
        assert_int_equal(tlsflow_get_peer_certificate(e.con.flow, 9, &der, &len), -ENOENT);
        tlsflow_free(e.con.flow);
    }
    tf_env_fini(&e);
}

TF_TEST(test_required_rejects_wrong_host, 60)
{
    tlsflow_info info;
    tlsflow_error err;
    int opened;

    open_with(TLSFLOW_VERIFY_REQUIRED, TF_WRONGHOST_CERT, TF_WRONGHOST_KEY, "localhost", &info,
              &opened, &err);
    assert_false(opened);
    assert_int_equal(err.code, TLSFLOW_E_CERTIFICATE);
    assert_true(err.detail & GNUTLS_CERT_UNEXPECTED_OWNER);
}

TF_TEST(test_optional_reports, 60)
{
    tlsflow_info info;
    tlsflow_error err;
    int opened;

    open_with(TLSFLOW_VERIFY_OPTIONAL, TF_WRONGHOST_CERT, TF_WRONGHOST_KEY, "localhost", &info,
              &opened, &err);
    assert_true(opened);
    assert_true(info.peer_verify_status & GNUTLS_CERT_UNEXPECTED_OWNER);

    open_with(TLSFLOW_VERIFY_OPTIONAL, TF_UNTRUSTED_CERT, TF_UNTRUSTED_KEY, "localhost", &info,
              &opened, &err);
    assert_true(opened);
    assert_true(info.peer_verify_status & GNUTLS_CERT_SIGNER_NOT_FOUND);

    open_with(TLSFLOW_VERIFY_OPTIONAL, NULL, NULL, "localhost", &info, &opened, &err);
    assert_true(opened);
    assert_int_equal(info.peer_verify_status, 0);
}

TF_TEST(test_none_opens, 60)
{
    tlsflow_info info;
    tlsflow_error err;
    int opened;

    open_with(TLSFLOW_VERIFY_NONE, TF_UNTRUSTED_CERT, TF_UNTRUSTED_KEY, "localhost", &info,
              &opened, &err);
    assert_true(opened);
    assert_int_equal(info.peer_verify_status, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_required_rejects_wrong_host),
        TF_CASE(test_optional_reports),
        TF_CASE(test_none_opens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
