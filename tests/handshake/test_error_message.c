/* handshake/error.c: every tlsflow_errcode has a non-empty message of its own,
 * codes past the last one say "unknown", and the detail is put in words
 * (errno text, GnuTLS text, alert names, certificate reasons). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/gnutls.h>

#include <tlsflow.h>

#define MAX_CODES 64

static const char *msg(tlsflow_errcode code, int detail)
{
    tlsflow_error e = { code, detail };
    const char *m = tlsflow_error_message(e);

    assert_non_null(m);
    assert_true(strlen(m) > 0);
    return m;
}

static int is_unknown(const char *m)
{
    return strstr(m, "unknown error") != NULL;
}

/* Walks the codes from 1 until one has no message of its own. */
static void test_every_code_distinct(void **state)
{
    static char seen[MAX_CODES][512];
    int last = 0;

    (void)state;
    assert_string_equal(msg(0, 0), "no error");
    for (int code = 1; code < MAX_CODES; code++) {
        const char *m = msg((tlsflow_errcode)code, 0);
        if (is_unknown(m))
            break;
        snprintf(seen[code], sizeof(seen[code]), "%s", m);
        for (int j = 1; j < code; j++)
            if (strcmp(seen[j], seen[code]) == 0)
                fail_msg("codes %d and %d share the message \"%s\"", j, code, m);
        last = code;
    }
    /* Every code the header names up to TLSFLOW_E_RESOLVE has a message. */
    assert_true(last >= TLSFLOW_E_RESOLVE);
    print_message("codes 1..%d have messages\n", last);
    /* Beyond the last, and below zero: "unknown", never NULL. */
    assert_true(is_unknown(msg((tlsflow_errcode)(last + 1), 0)));
    assert_true(is_unknown(msg((tlsflow_errcode)1000, 5)));
    assert_true(is_unknown(msg((tlsflow_errcode)-1, 0)));
    assert_non_null(strstr(msg((tlsflow_errcode)1000, 5), "1000"));
}

/* The same code with another detail reads differently. */
static void test_detail_changes_message(void **state)
{
    const tlsflow_errcode with_detail[] = {
        TLSFLOW_E_SYSTEM, TLSFLOW_E_TLS, TLSFLOW_E_ALERT, TLSFLOW_E_CERTIFICATE,
        TLSFLOW_E_KTLS_UNAVAILABLE, TLSFLOW_E_RESOLVE,
    };
    const int a[] = { ECONNREFUSED, GNUTLS_E_DECRYPTION_FAILED, GNUTLS_A_HANDSHAKE_FAILURE,
                      GNUTLS_CERT_INVALID | GNUTLS_CERT_EXPIRED, ENOENT, EAI_NONAME };
    const int b[] = { ETIMEDOUT, GNUTLS_E_NO_CIPHER_SUITES, GNUTLS_A_BAD_CERTIFICATE,
                      GNUTLS_CERT_INVALID | GNUTLS_CERT_SIGNER_NOT_FOUND, EOPNOTSUPP, EAI_AGAIN };
    char first[512];

    (void)state;
    for (size_t i = 0; i < sizeof(with_detail) / sizeof(with_detail[0]); i++) {
        snprintf(first, sizeof(first), "%s", msg(with_detail[i], a[i]));
        assert_string_not_equal(first, msg(with_detail[i], b[i]));
    }
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static void test_system_and_ktls(void **state)
{
    char ebuf[256];

    (void)state;
    snprintf(ebuf, sizeof(ebuf), "%s", strerror(ECONNREFUSED));
    assert_contains(msg(TLSFLOW_E_SYSTEM, ECONNREFUSED), ebuf);
    assert_contains(msg(TLSFLOW_E_SYSTEM, ECONNREFUSED), "111");
    snprintf(ebuf, sizeof(ebuf), "%s", strerror(ENOENT));
    assert_contains(msg(TLSFLOW_E_KTLS_UNAVAILABLE, ENOENT), ebuf);
    /* An errno nobody knows still renders. */
    msg(TLSFLOW_E_SYSTEM, 99999);
    msg(TLSFLOW_E_SYSTEM, -5);
}

static void test_tls_text(void **state)
{
    (void)state;
    assert_contains(msg(TLSFLOW_E_TLS, GNUTLS_E_DECRYPTION_FAILED), gnutls_strerror(GNUTLS_E_DECRYPTION_FAILED));
    assert_contains(msg(TLSFLOW_E_TLS, GNUTLS_E_NO_CIPHER_SUITES), gnutls_strerror(GNUTLS_E_NO_CIPHER_SUITES));
    assert_contains(msg(TLSFLOW_E_BAD_RECORD, GNUTLS_E_DECRYPTION_FAILED), gnutls_strerror(GNUTLS_E_DECRYPTION_FAILED));
    msg(TLSFLOW_E_BAD_RECORD, 0);
    msg(TLSFLOW_E_TLS, -424242);
}

static void test_alert_names(void **state)
{
    const int alerts[] = { GNUTLS_A_HANDSHAKE_FAILURE, GNUTLS_A_BAD_CERTIFICATE,
                           GNUTLS_A_PROTOCOL_VERSION, GNUTLS_A_UNKNOWN_CA,
                           GNUTLS_A_BAD_RECORD_MAC, GNUTLS_A_NO_APPLICATION_PROTOCOL };

    (void)state;
    for (size_t i = 0; i < sizeof(alerts) / sizeof(alerts[0]); i++) {
        const char *name = gnutls_alert_get_strname((gnutls_alert_description_t)alerts[i]);
        assert_non_null(name);
        assert_contains(msg(TLSFLOW_E_ALERT, alerts[i]), name);
    }
    /* A number with no name. */
    assert_contains(msg(TLSFLOW_E_ALERT, 250), "250");
}

static void test_certificate_reasons(void **state)
{
    static const struct { unsigned status; const char *word; } cases[] = {
        { GNUTLS_CERT_INVALID | GNUTLS_CERT_EXPIRED, "expired" },
        { GNUTLS_CERT_INVALID | GNUTLS_CERT_SIGNER_NOT_FOUND, "issuer" },
        { GNUTLS_CERT_INVALID | GNUTLS_CERT_UNEXPECTED_OWNER, "name" },
        { GNUTLS_CERT_INVALID | GNUTLS_CERT_REVOKED, "revoked" },
        { GNUTLS_CERT_INVALID | GNUTLS_CERT_NOT_ACTIVATED, "not yet valid" },
    };
    char m[8][512];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gnutls_datum_t out;
        snprintf(m[i], sizeof(m[i]), "%s", msg(TLSFLOW_E_CERTIFICATE, (int)cases[i].status));
        assert_contains(m[i], cases[i].word);
        /* GnuTLS's own wording is in there. */
        assert_int_equal(gnutls_certificate_verification_status_print(cases[i].status, GNUTLS_CRT_X509,
                                                                      &out, 0), 0);
        assert_contains(m[i], (const char *)out.data);
        gnutls_free(out.data);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(m[i], m[j]);
    }
    /* No status bits: still a message. */
    msg(TLSFLOW_E_CERTIFICATE, 0);
}

static void test_resolve_text(void **state)
{
    (void)state;
    assert_contains(msg(TLSFLOW_E_RESOLVE, EAI_NONAME), gai_strerror(EAI_NONAME));
    assert_contains(msg(TLSFLOW_E_RESOLVE, EAI_AGAIN), gai_strerror(EAI_AGAIN));
}

/* Messages live in per-thread storage: another thread does not clobber ours. */
static void *other_thread(void *arg)
{
    const char *m;

    (void)arg;
    for (int i = 0; i < 1000; i++) {
        tlsflow_error e = { TLSFLOW_E_SYSTEM, EPERM };
        m = tlsflow_error_message(e);
        if (!strstr(m, strerror(EPERM)))
            return (void *)1;
    }
    return NULL;
}

static void test_thread_local(void **state)
{
    tlsflow_error e = { TLSFLOW_E_TLS, GNUTLS_E_DECRYPTION_FAILED };
    const char *mine = tlsflow_error_message(e);
    char copy[512];
    pthread_t t;
    void *ret;

    (void)state;
    snprintf(copy, sizeof(copy), "%s", mine);
    assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_null(ret);
    assert_string_equal(mine, copy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_distinct),
        cmocka_unit_test(test_detail_changes_message),
        cmocka_unit_test(test_system_and_ktls),
        cmocka_unit_test(test_tls_text),
        cmocka_unit_test(test_alert_names),
        cmocka_unit_test(test_certificate_reasons),
        cmocka_unit_test(test_resolve_text),
        cmocka_unit_test(test_thread_local),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
