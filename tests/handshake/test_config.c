/* handshake/config.c: defaults, setters, priority validation, ALPN limits,
 * credentials files, and freezing at first use (setters then -EBUSY). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tlsflow.h>
#include "handshake/handshake.h"
#include "tf_test.h"

static void test_defaults(void **state)
{
    tlsflow_config *c, *s;

    (void)state;
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_new(&s, TLSFLOW_SERVER), 0);
    assert_int_equal(c->role, TLSFLOW_CLIENT);
    assert_int_equal(s->role, TLSFLOW_SERVER);
    assert_int_equal(c->verify, TLSFLOW_VERIFY_REQUIRED);
    assert_int_equal(s->verify, TLSFLOW_VERIFY_NONE);
    assert_int_equal(c->ktls, TLSFLOW_KTLS_AUTO);
    assert_int_equal(s->ktls, TLSFLOW_KTLS_AUTO);
    assert_int_equal(c->handshake_timeout_ms, 30000);
    assert_int_equal(s->handshake_timeout_ms, 30000);
    assert_false(c->frozen);
    assert_false(c->has_ca);
    assert_false(c->has_cert);
    assert_null(c->priority);
    assert_int_equal(c->nalpn, 0);
    assert_non_null(c->cred);
    tlsflow_config_free(c);
    tlsflow_config_free(s);
}

static void test_setters(void **state)
{
    tlsflow_config *c;

    (void)state;
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_verify(c, TLSFLOW_VERIFY_OPTIONAL), 0);
    assert_int_equal(c->verify, TLSFLOW_VERIFY_OPTIONAL);
    assert_int_equal(tlsflow_config_set_verify(c, TLSFLOW_VERIFY_NONE), 0);
    assert_int_equal(c->verify, TLSFLOW_VERIFY_NONE);
    assert_int_equal(tlsflow_config_set_verify(c, (tlsflow_verify)9), -EINVAL);
    assert_int_equal(c->verify, TLSFLOW_VERIFY_NONE);   /* unchanged by a refusal */
    assert_int_equal(tlsflow_config_set_ktls(c, TLSFLOW_KTLS_OFF), 0);
    assert_int_equal(c->ktls, TLSFLOW_KTLS_OFF);
    assert_int_equal(tlsflow_config_set_ktls(c, TLSFLOW_KTLS_REQUIRE), 0);
    assert_int_equal(c->ktls, TLSFLOW_KTLS_REQUIRE);
    assert_int_equal(tlsflow_config_set_ktls(c, (tlsflow_ktls_mode)9), -EINVAL);
    assert_int_equal(c->ktls, TLSFLOW_KTLS_REQUIRE);
    assert_int_equal(tlsflow_config_set_handshake_timeout(c, 0), 0);   /* none */
    assert_int_equal(c->handshake_timeout_ms, 0);
    assert_int_equal(tlsflow_config_set_handshake_timeout(c, 1234), 0);
    assert_int_equal(c->handshake_timeout_ms, 1234);
    assert_int_equal(tlsflow_config_set_ca_file(c, TF_CA), 0);
    assert_true(c->has_ca);
    assert_int_equal(tlsflow_config_set_cert_file(c, TF_CLIENT_CERT, TF_CLIENT_KEY), 0);
    assert_true(c->has_cert);
    tlsflow_config_free(c);
}

static void test_priority(void **state)
{
    static const char *good[] = {
        "NORMAL", "SECURE256", "NORMAL:-VERS-ALL:+VERS-TLS1.2",
        "NORMAL:-VERS-ALL:+VERS-TLS1.3", "PERFORMANCE:%SERVER_PRECEDENCE",
    };
    static const char *bad[] = {
        "", "NOT-A-KEYWORD", "NORMAL:+NO-SUCH-CIPHER", "NORMAL:-VERS-ALL:+VERS-TLS9.9", "NORMAL:%BOGUS",
    };
    tlsflow_config *c;

    (void)state;
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(tlsflow_config_set_priority(c, good[i]), 0);
        assert_non_null(c->priority);
        assert_string_equal(c->priority_str, good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tlsflow_config_set_priority(c, bad[i]) != -EINVAL)
            fail_msg("priority \"%s\" was accepted", bad[i]);
        /* The last good one stays. */
        assert_string_equal(c->priority_str, good[sizeof(good) / sizeof(good[0]) - 1]);
    }
    tlsflow_config_free(c);
}

static void test_alpn(void **state)
{
    tlsflow_config *c;
    char n255[256], n256[257];
    const char *eight[] = { "h2", "http/1.1", "a", "b", "c", "d", "e", "f" };
    const char *nine[] = { "h2", "http/1.1", "a", "b", "c", "d", "e", "f", "g" };
    const char *with_empty[] = { "h2", "" };
    const char *with_null[] = { NULL };
    const char *max[] = { n255 };
    const char *over[] = { "h2", n256 };

    (void)state;
    memset(n255, 'a', 255);
    n255[255] = 0;
    memset(n256, 'b', 256);
    n256[256] = 0;
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_set_alpn(c, eight, 8), 0);
    assert_int_equal(c->nalpn, 8);
    assert_int_equal(c->alpn[1].size, 8);
    assert_memory_equal(c->alpn[1].data, "http/1.1", 8);
    /* Refusals leave the list as it was. */
    assert_int_equal(tlsflow_config_set_alpn(c, nine, 9), -EINVAL);
    assert_int_equal(tlsflow_config_set_alpn(c, with_empty, 2), -EINVAL);
    assert_int_equal(tlsflow_config_set_alpn(c, with_null, 1), -EINVAL);
    assert_int_equal(tlsflow_config_set_alpn(c, over, 2), -EINVAL);
    assert_int_equal(tlsflow_config_set_alpn(c, NULL, 2), -EINVAL);
    assert_int_equal(c->nalpn, 8);
    assert_memory_equal(c->alpn[0].data, "h2", 2);
    assert_int_equal(tlsflow_config_set_alpn(c, max, 1), 0);
    assert_int_equal(c->nalpn, 1);
    assert_int_equal(c->alpn[0].size, 255);
    /* count 0 clears it. */
    assert_int_equal(tlsflow_config_set_alpn(c, NULL, 0), 0);
    assert_int_equal(c->nalpn, 0);
    tlsflow_config_free(c);
}

static void test_files(void **state)
{
    tlsflow_config *c;
    char path[] = "/tmp/tlsflow-cfg-XXXXXX";
    int fd;

    (void)state;
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_set_ca_file(c, TF_CERT("missing.pem")), -ENOENT);
    assert_false(c->has_ca);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_true(tlsflow_config_set_ca_file(c, path) < 0);   /* empty: no certificate */
    assert_true(tlsflow_config_set_cert_file(c, path, path) < 0);
    unlink(path);
    assert_true(tlsflow_config_set_cert_file(c, TF_CERT("missing.pem"), TF_ECDSA_KEY) < 0);
    assert_true(tlsflow_config_set_cert_file(c, TF_ECDSA_CERT, TF_RSA_KEY) < 0);   /* mismatch */
    assert_false(c->has_cert);
    assert_int_equal(tlsflow_config_set_cert_file(c, TF_RSA_CERT, TF_RSA_KEY), 0);
    /* A second pair (ECDSA beside RSA) is fine. */
    assert_int_equal(tlsflow_config_set_cert_file(c, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
    assert_true(c->has_cert);
    tlsflow_config_free(c);
}

static void assert_all_busy(tlsflow_config *c)
{
    const char *one[] = { "h2" };

    assert_int_equal(tlsflow_config_set_cert_file(c, TF_ECDSA_CERT, TF_ECDSA_KEY), -EBUSY);
    assert_int_equal(tlsflow_config_set_ca_file(c, TF_CA), -EBUSY);
    assert_int_equal(tlsflow_config_set_verify(c, TLSFLOW_VERIFY_OPTIONAL), -EBUSY);
    assert_int_equal(tlsflow_config_set_priority(c, "NORMAL"), -EBUSY);
    assert_int_equal(tlsflow_config_set_alpn(c, one, 1), -EBUSY);
    assert_int_equal(tlsflow_config_set_alpn(c, NULL, 0), -EBUSY);
    assert_int_equal(tlsflow_config_set_ktls(c, TLSFLOW_KTLS_OFF), -EBUSY);
    assert_int_equal(tlsflow_config_set_handshake_timeout(c, 5), -EBUSY);
}

static void test_freeze(void **state)
{
    tlsflow_config *c, *s;

    (void)state;
    /* A server without a certificate cannot be used, and stays mutable. */
    assert_int_equal(tlsflow_config_new(&s, TLSFLOW_SERVER), 0);
    assert_int_equal(tf_hs_config_freeze(s), -EINVAL);
    assert_false(s->frozen);
    assert_int_equal(tlsflow_config_set_cert_file(s, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
    assert_int_equal(tf_hs_config_freeze(s), 0);
    assert_true(s->frozen);
    assert_non_null(s->priority);            /* the default policy */
    assert_non_null(s->ticket_key.data);     /* resumption tickets */
    assert_int_equal(tf_hs_config_freeze(s), 0);   /* idempotent */
    assert_all_busy(s);

    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_ca_file(c, TF_CA), 0);
    assert_int_equal(tlsflow_config_set_priority(c, "NORMAL:-VERS-ALL:+VERS-TLS1.2"), 0);
    assert_int_equal(tf_hs_config_freeze(c), 0);
    assert_string_equal(c->priority_str, "NORMAL:-VERS-ALL:+VERS-TLS1.2");   /* kept */
    assert_null(c->ticket_key.data);
    assert_all_busy(c);
    tlsflow_config_free(c);
    tlsflow_config_free(s);

    /* A client that verifies nothing needs no trust store. */
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_verify(c, TLSFLOW_VERIFY_NONE), 0);
    assert_int_equal(tf_hs_config_freeze(c), 0);
    tlsflow_config_free(c);
    /* One relying on the system store: frozen, or refused when there is none. */
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    {
        int ret = tf_hs_config_freeze(c);
        assert_true(ret == 0 || ret == -ENOENT);
        assert_true(c->frozen == (ret == 0));
    }
    tlsflow_config_free(c);
}

/* A config with cached tickets frees them (valgrind checks the leak side). */
static void test_free_with_cache(void **state)
{
    tlsflow_config *c;

    (void)state;
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    c->cache[3].key = strdup("host:443");
    c->cache[3].data.data = gnutls_malloc(16);
    c->cache[3].data.size = 16;
    tlsflow_config_free(c);
    tlsflow_config_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_setters),
        cmocka_unit_test(test_priority),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_freeze),
        cmocka_unit_test(test_free_with_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
