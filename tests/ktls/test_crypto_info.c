/* ktls/crypto_info.c: the bytes handed to setsockopt(TLS_TX/TLS_RX) for every
 * version x cipher, from known secrets, compared against layouts assembled by
 * hand from the uapi field order (info, iv, key, salt, rec_seq). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ktls/ktls.h"

static const uint8_t SEQ[8] = { 0, 0, 0, 0, 0, 0x01, 0x02, 0x03 };

static tf_ktls_secret secret(unsigned version, enum tf_ktls_cipher c)
{
    tf_ktls_secret s = { .version = version, .cipher = c };
    size_t i;

    s.key_len = (c == TF_CIPHER_AES_256_GCM || c == TF_CIPHER_CHACHA20_POLY1305) ? 32 : 16;
    s.iv_len = (version == 0x0304 || c == TF_CIPHER_CHACHA20_POLY1305) ? 12 : 4;
    for (i = 0; i < s.key_len; i++)
        s.key[i] = (uint8_t)(0x10 + i);
    for (i = 0; i < s.iv_len; i++)
        s.iv[i] = (uint8_t)(0xa0 + i);
    memcpy(s.seq, SEQ, 8);
    return s;
}

/* The expected struct, byte by byte. */
static size_t expected(uint8_t *buf, unsigned version, uint16_t type, const tf_ktls_secret *s)
{
    size_t n = 0;
    uint16_t v = (uint16_t)version;

    memcpy(buf + n, &v, 2), n += 2;           /* host order, as the kernel reads it */
    memcpy(buf + n, &type, 2), n += 2;
    if (s->cipher == TF_CIPHER_CHACHA20_POLY1305) {
        memcpy(buf + n, s->iv, 12), n += 12;  /* iv: the whole 12 bytes */
        memcpy(buf + n, s->key, 32), n += 32;
        /* salt: none */
    } else {
        if (version == 0x0304)
            memcpy(buf + n, s->iv + 4, 8);    /* iv = iv[4..11] */
        else
            memcpy(buf + n, SEQ, 8);          /* iv = explicit nonce = seq */
        n += 8;
        memcpy(buf + n, s->key, s->key_len), n += s->key_len;
        memcpy(buf + n, s->iv, 4), n += 4;    /* salt = iv[0..3] / implicit IV */
    }
    memcpy(buf + n, SEQ, 8), n += 8;          /* rec_seq as given, big-endian */
    return n;
}

static void check(unsigned version, enum tf_ktls_cipher c, uint16_t type, size_t size)
{
    tf_ktls_secret s = secret(version, c);
    tf_ktls_crypto_info ci;
    uint8_t want[sizeof(ci)];
    size_t len = 0, n;

    assert_int_equal(tf_ktls_build_crypto_info(&s, &ci, &len), 0);
    assert_int_equal(len, size);
    n = expected(want, version, type, &s);
    assert_int_equal(n, size);
    assert_memory_equal(&ci, want, size);
    assert_int_equal(ci.info.version, version);
    assert_int_equal(ci.info.cipher_type, type);
}

static void test_tls13(void **state)
{
    (void)state;
    check(0x0304, TF_CIPHER_AES_128_GCM, TLS_CIPHER_AES_GCM_128, 40);
    check(0x0304, TF_CIPHER_AES_256_GCM, TLS_CIPHER_AES_GCM_256, 56);
    check(0x0304, TF_CIPHER_CHACHA20_POLY1305, TLS_CIPHER_CHACHA20_POLY1305, 56);
    check(0x0304, TF_CIPHER_AES_128_CCM, TLS_CIPHER_AES_CCM_128, 40);
}

static void test_tls12(void **state)
{
    (void)state;
    check(0x0303, TF_CIPHER_AES_128_GCM, TLS_CIPHER_AES_GCM_128, 40);
    check(0x0303, TF_CIPHER_AES_256_GCM, TLS_CIPHER_AES_GCM_256, 56);
    check(0x0303, TF_CIPHER_CHACHA20_POLY1305, TLS_CIPHER_CHACHA20_POLY1305, 56);
    check(0x0303, TF_CIPHER_AES_128_CCM, TLS_CIPHER_AES_CCM_128, 40);
}

/* A spot check written out literally, independent of expected(). */
static void test_tls13_gcm128_literal(void **state)
{
    tf_ktls_secret s = secret(0x0304, TF_CIPHER_AES_128_GCM);
    tf_ktls_crypto_info ci;
    size_t len;
    static const uint8_t iv[8] = { 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab };
    static const uint8_t salt[4] = { 0xa0, 0xa1, 0xa2, 0xa3 };

    (void)state;
    assert_int_equal(tf_ktls_build_crypto_info(&s, &ci, &len), 0);
    assert_memory_equal(ci.gcm128.iv, iv, 8);
    assert_memory_equal(ci.gcm128.salt, salt, 4);
    assert_memory_equal(ci.gcm128.rec_seq, SEQ, 8);
    assert_int_equal(ci.gcm128.key[0], 0x10);
    assert_int_equal(ci.gcm128.key[15], 0x1f);
}

static void bad(tf_ktls_secret s)
{
    tf_ktls_crypto_info ci;
    size_t len = 123;
    static const uint8_t zero[sizeof(tf_ktls_crypto_info)];

    memset(&ci, 0x5a, sizeof(ci));
    assert_int_equal(tf_ktls_build_crypto_info(&s, &ci, &len), -EINVAL);
    assert_int_equal(len, 0);
    assert_memory_equal(&ci, zero, sizeof(ci));   /* nothing half-built left behind */
}

static void test_rejects(void **state)
{
    tf_ktls_secret s;
    tf_ktls_crypto_info ci;
    size_t len;

    (void)state;
    s = secret(0x0304, TF_CIPHER_AES_128_GCM); s.version = 0x0302; bad(s);
    s = secret(0x0304, TF_CIPHER_AES_128_GCM); s.version = 0; bad(s);
    s = secret(0x0304, TF_CIPHER_AES_128_GCM); s.cipher = TF_CIPHER_UNKNOWN; bad(s);
    s = secret(0x0304, TF_CIPHER_AES_128_GCM); s.cipher = (enum tf_ktls_cipher)77; bad(s);
    s = secret(0x0304, TF_CIPHER_AES_128_GCM); s.key_len = 32; bad(s);
    s = secret(0x0304, TF_CIPHER_AES_256_GCM); s.key_len = 16; bad(s);
    s = secret(0x0304, TF_CIPHER_AES_128_GCM); s.iv_len = 4; bad(s);
    s = secret(0x0303, TF_CIPHER_AES_128_GCM); s.iv_len = 12; bad(s);
    s = secret(0x0303, TF_CIPHER_CHACHA20_POLY1305); s.iv_len = 4; bad(s);
    s = secret(0x0303, TF_CIPHER_AES_128_CCM); s.key_len = (size_t)-1; bad(s);
    assert_int_equal(tf_ktls_build_crypto_info(NULL, &ci, &len), -EINVAL);
    s = secret(0x0304, TF_CIPHER_AES_128_GCM);
    assert_int_equal(tf_ktls_build_crypto_info(&s, NULL, &len), -EINVAL);
    assert_int_equal(tf_ktls_build_crypto_info(&s, &ci, NULL), -EINVAL);
}

static void test_wipe(void **state)
{
    tf_ktls_secret s = secret(0x0304, TF_CIPHER_AES_256_GCM);
    static const uint8_t zero[sizeof(tf_ktls_secret)];

    (void)state;
    tf_ktls_secret_wipe(&s);
    assert_memory_equal(&s, zero, sizeof(s));
    tf_ktls_secret_wipe(NULL);
}

static void test_install_rejects_without_kernel(void **state)
{
    tf_ktls_secret s = secret(0x0304, TF_CIPHER_AES_128_GCM);

    (void)state;
    assert_int_equal(tf_ktls_install(-1, TF_KTLS_TX, &s), -EBADF);
    assert_int_equal(tf_ktls_install(0, (enum tf_ktls_dir)2, &s), -EINVAL);
    s.key_len = 3;
    assert_int_equal(tf_ktls_install(0, TF_KTLS_TX, &s), -EINVAL);
    assert_int_equal(tf_ktls_attach(-1), -EBADF);
}

static void test_record_limit(void **state)
{
    (void)state;
    /* 2^24.5 = 23726566.4 */
    assert_int_equal(tf_ktls_record_limit(0x0304, TF_CIPHER_AES_128_GCM), 23726566);
    assert_int_equal(tf_ktls_record_limit(0x0304, TF_CIPHER_AES_256_GCM), 23726566);
    assert_int_equal(tf_ktls_record_limit(0x0303, TF_CIPHER_AES_128_GCM), 23726566);
    assert_int_equal(tf_ktls_record_limit(0x0304, TF_CIPHER_AES_128_CCM), 1u << 23);
    assert_true(tf_ktls_record_limit(0x0304, TF_CIPHER_CHACHA20_POLY1305) == UINT64_MAX);
    assert_true(tf_ktls_record_limit(0x0303, TF_CIPHER_CHACHA20_POLY1305) == UINT64_MAX);
    assert_int_equal(tf_ktls_record_limit(0x0304, TF_CIPHER_UNKNOWN), 0);
    assert_int_equal(tf_ktls_record_limit(0x0301, TF_CIPHER_AES_128_GCM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls13),
        cmocka_unit_test(test_tls12),
        cmocka_unit_test(test_tls13_gcm128_literal),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_wipe),
        cmocka_unit_test(test_install_rejects_without_kernel),
        cmocka_unit_test(test_record_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
