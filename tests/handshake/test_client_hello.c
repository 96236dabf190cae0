/* tf_hs_lists_chacha_first: the server's look at a ClientHello's cipher
 * order, on hostile bytes.  Every prefix of a valid message is refused
 * without reading past it (ASan), GREASE is skipped, the handshake header is
 * optional, lengths that point past the end are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "handshake/handshake.h"

/* version, random, session id (n bytes), cipher suites, compression. */
static size_t hello(uint8_t *out, bool header, uint8_t sid_len, const uint16_t *suites, size_t nsuites)
{
    uint8_t *p = out + (header ? 4 : 0);
    size_t n = 0, body;

    p[n++] = 3;
    p[n++] = 3;
    memset(p + n, 0x5a, 32);
    n += 32;
    p[n++] = sid_len;
    memset(p + n, 0x11, sid_len);
    n += sid_len;
    p[n++] = (uint8_t)(nsuites * 2 >> 8);
    p[n++] = (uint8_t)(nsuites * 2);
    for (size_t i = 0; i < nsuites; i++) {
        p[n++] = (uint8_t)(suites[i] >> 8);
        p[n++] = (uint8_t)suites[i];
    }
    p[n++] = 1;
    p[n++] = 0;
    body = n;
    if (header) {
        out[0] = 1;
        out[1] = (uint8_t)(body >> 16);
        out[2] = (uint8_t)(body >> 8);
        out[3] = (uint8_t)body;
        n += 4;
    }
    return n;
}

/* Each prefix goes into its own heap block of exactly that size. */
static bool check(const uint8_t *msg, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    bool r;

    assert_non_null(copy);
    memcpy(copy, msg, len);
    r = tf_hs_lists_chacha_first(copy, len);
    free(copy);
    return r;
}

static void test_orders(void **state)
{
    static const uint16_t chacha13[] = { 0x1303, 0x1301 }, aes13[] = { 0x1301, 0x1303 },
                          grease[] = { 0x0a0a, 0xfafa, 0xcca9, 0x1301 }, chacha12[] = { 0xcca8, 0xc02f },
                          grease_aes[] = { 0x2a2a, 0x1302, 0x1303 }, only_grease[] = { 0x1a1a };
    uint8_t m[512];

    (void)state;
    for (int h = 0; h < 2; h++) {
        assert_true(check(m, hello(m, h, 32, chacha13, 2)));
        assert_false(check(m, hello(m, h, 0, aes13, 2)));
        assert_true(check(m, hello(m, h, 0, grease, 4)));
        assert_true(check(m, hello(m, h, 16, chacha12, 2)));
        assert_false(check(m, hello(m, h, 32, grease_aes, 3)));
        assert_false(check(m, hello(m, h, 32, only_grease, 1)));
        assert_false(check(m, hello(m, h, 32, NULL, 0)));
    }
}

static void test_prefixes(void **state)
{
    static const uint16_t suites[] = { 0x0a0a, 0x1303 };
    uint8_t m[512];
    size_t n = hello(m, false, 32, suites, 2), need = 2 + 32 + 1 + 32 + 2 + 4;

    (void)state;
    for (size_t len = 0; len < need; len++)
        assert_false(check(m, len));
    assert_true(check(m, need));
    assert_true(check(m, n));
}

static void test_bad_lengths(void **state)
{
    static const uint16_t suites[] = { 0x1303 };
    uint8_t m[512];
    size_t n = hello(m, false, 32, suites, 1);

    (void)state;
    m[34] = 0xff;                         /* a session id longer than the message */
    assert_false(check(m, n));
    n = hello(m, false, 0, suites, 1);
    m[35] = 0xff;                         /* cipher suites past the end */
    m[36] = 0xff;
    assert_false(check(m, n));
    n = hello(m, true, 0, suites, 1);
    m[3] ^= 1;                            /* a header whose length does not fit: read as a body */
    assert_false(check(m, n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orders),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_bad_lengths),
    };

    return cmocka_run_group_tests_name("handshake_client_hello", tests, NULL, NULL);
}
