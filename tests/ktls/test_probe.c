/* ktls/probe.c on a real kernel: every version x cipher in both directions,
 * the same answers from many threads, and the rekey rule of kver.c checked
 * against what the kernel does with a second key. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ktls/ktls.h"
#include "ktls_test.h"

static const unsigned versions[] = { 0x0303, 0x0304 };
static const enum tf_ktls_cipher ciphers[] = {
    TF_CIPHER_AES_128_GCM, TF_CIPHER_AES_256_GCM, TF_CIPHER_CHACHA20_POLY1305, TF_CIPHER_AES_128_CCM,
};
static const char *const cipher_names[] = { "?", "AES-128-GCM", "AES-256-GCM", "CHACHA20-POLY1305", "AES-128-CCM" };

static void test_every_cipher(void **state)
{
    size_t v, c;
    int d, r, missing = 0;

    (void)state;
    for (v = 0; v < 2; v++)
        for (c = 0; c < 4; c++)
            for (d = 0; d < 2; d++) {
                r = tf_ktls_probe(versions[v], ciphers[c], (enum tf_ktls_dir)d);
                print_message("TLS 1.%u %-18s %s: %s\n", versions[v] == 0x0304 ? 3u : 2u,
                              cipher_names[ciphers[c]], d ? "RX" : "TX", r ? strerror(-r) : "ok");
                if (r != 0) {
                    missing++;
                    /* Anything but "unsupported" is a probe bug, not a kernel gap. */
                    assert_true(r == -EINVAL || r == -ENOPROTOOPT || r == -ENOENT || r == -EOPNOTSUPP);
                }
            }
    /* Both VM kernels (6.1 and newer) take all of them. */
    if (expect_ktls())
        assert_int_equal(missing, 0);
}

static void test_bad_args(void **state)
{
    (void)state;
    assert_int_equal(tf_ktls_probe(0x0302, TF_CIPHER_AES_128_GCM, TF_KTLS_TX), -EINVAL);
    assert_int_equal(tf_ktls_probe(0x0304, TF_CIPHER_UNKNOWN, TF_KTLS_TX), -EINVAL);
    assert_int_equal(tf_ktls_probe(0x0304, (enum tf_ktls_cipher)9, TF_KTLS_RX), -EINVAL);
    assert_int_equal(tf_ktls_probe(0x0304, TF_CIPHER_AES_128_GCM, (enum tf_ktls_dir)5), -EINVAL);
}

static void *probe_all(void *arg)
{
    int *out = arg;
    size_t v, c;

    for (v = 0; v < 2; v++)
        for (c = 0; c < 4; c++) {
            out[v * 8 + c * 2] = tf_ktls_probe(versions[v], ciphers[c], TF_KTLS_TX);
            out[v * 8 + c * 2 + 1] = tf_ktls_probe(versions[v], ciphers[c], TF_KTLS_RX);
        }
    return NULL;
}

/* pthread_once: first callers racing in main() all saw one finished table. */
static int raced[8][16];

static void race_first_callers(void)
{
    pthread_t t[8];
    int i;

    for (i = 0; i < 8; i++)
        if (pthread_create(&t[i], NULL, probe_all, raced[i]) != 0)
            abort();
    for (i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
}

static void test_threads(void **state)
{
    int i;

    (void)state;
    for (i = 1; i < 8; i++)
        assert_memory_equal(raced[0], raced[i], sizeof(raced[0]));
}

/* A second TLS_TX with the same version: accepted exactly where kver.c says
 * rekey exists (TLS 1.3 on 6.14+), EBUSY elsewhere. */
static void second_key(unsigned version)
{
    tf_ktls_secret s = { .version = version, .cipher = TF_CIPHER_AES_128_GCM, .key_len = 16,
                         .iv_len = version == 0x0304 ? 12 : 4 };
    int fds[2], r1, r2;

    assert_int_equal(tcp_pair(fds), 0);
    assert_int_equal(tf_ktls_attach(fds[0]), 0);
    r1 = tf_ktls_install(fds[0], TF_KTLS_TX, &s);
    s.key[0] = 1;   /* a different key, as a real rekey would bring */
    r2 = tf_ktls_install(fds[0], TF_KTLS_TX, &s);
    close(fds[0]);
    close(fds[1]);
    print_message("TLS 1.%u second TLS_TX: %s (has_rekey %d)\n", version == 0x0304 ? 3 : 2,
                  r2 ? strerror(-r2) : "ok", tf_ktls_has_rekey(version));
    assert_int_equal(r1, 0);
    if (tf_ktls_has_rekey(version))
        assert_int_equal(r2, 0);
    else
        assert_int_equal(r2, -EBUSY);
}

static void test_rekey_matches_kver(void **state)
{
    (void)state;
    if (tf_ktls_probe(0x0304, TF_CIPHER_AES_128_GCM, TF_KTLS_TX) != 0)
        skip();
    second_key(0x0303);
    second_key(0x0304);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_cipher),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_rekey_matches_kver),
    };
    int r;

    race_first_callers();   /* before anything else has run the probe */
    r = tf_ktls_probe_ulp();
    if (r < 0)
        skip_or_fail("kTLS: TCP_ULP \"tls\"", r);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
