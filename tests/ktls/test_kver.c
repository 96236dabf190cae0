/* ktls/kver.c: release-string parsing and the rekey rule. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ktls/ktls.h"

static void test_parse(void **state)
{
    unsigned maj = 99, min = 99;

    (void)state;
    assert_int_equal(tf_ktls_kver_parse("6.1.0-56-amd64", &maj, &min), 0);
    assert_int_equal(maj, 6);
    assert_int_equal(min, 1);
    assert_int_equal(tf_ktls_kver_parse("7.3.4+deb13-amd64", &maj, &min), 0);
    assert_int_equal(maj, 7);
    assert_int_equal(min, 3);
    assert_int_equal(tf_ktls_kver_parse("6.14", &maj, &min), 0);
    assert_int_equal(min, 14);
    assert_int_equal(tf_ktls_kver_parse("6.18.44-fc-v669", &maj, &min), 0);
    assert_int_equal(min, 18);
}

static void test_parse_bad(void **state)
{
    unsigned maj = 99, min = 99;

    (void)state;
    assert_int_equal(tf_ktls_kver_parse(NULL, &maj, &min), -EINVAL);
    assert_int_equal(tf_ktls_kver_parse("", &maj, &min), -EINVAL);
    assert_int_equal(tf_ktls_kver_parse("6", &maj, &min), -EINVAL);
    assert_int_equal(tf_ktls_kver_parse("6.", &maj, &min), -EINVAL);
    assert_int_equal(tf_ktls_kver_parse("v6.1", &maj, &min), -EINVAL);
    assert_int_equal(tf_ktls_kver_parse("-6.1", &maj, &min), -EINVAL);
    assert_int_equal(tf_ktls_kver_parse("6.-1", &maj, &min), -EINVAL);
    assert_int_equal(tf_ktls_kver_parse("99999999999999999999.1", &maj, &min), -EINVAL);
    assert_int_equal(tf_ktls_kver_parse("6.1", NULL, &min), -EINVAL);
    assert_int_equal(maj, 99);   /* untouched on failure */
    assert_int_equal(min, 99);
}

static void test_rekey_rule(void **state)
{
    (void)state;
    /* TLS 1.2 never rekeys, whatever the kernel; 1.3 is 0 or 1. */
    assert_int_equal(tf_ktls_has_rekey(0x0303), 0);
    assert_int_equal(tf_ktls_has_rekey(0x0302), 0);
    assert_true(tf_ktls_has_rekey(0x0304) == 0 || tf_ktls_has_rekey(0x0304) == 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_rekey_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
