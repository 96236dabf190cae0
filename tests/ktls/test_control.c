/* ktls/control.c: record types out of recvmsg control buffers, alerts, the
 * TLS_SET_RECORD_TYPE cmsg — and no crash on any input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ktls/ktls.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

/* Appends one cmsg at *off (aligned buffer); returns its start. */
static struct cmsghdr *put(void *buf, size_t *off, int level, int type, const void *data, size_t n)
{
    struct cmsghdr *c = (struct cmsghdr *)((char *)buf + *off);

    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(n);
    memcpy(CMSG_DATA(c), data, n);
    *off += CMSG_SPACE(n);
    return c;
}

static void test_record_type(void **state)
{
    union { struct cmsghdr align; unsigned char b[256]; } u;
    struct msghdr msg = { 0 };
    uint8_t t = TF_REC_HANDSHAKE;
    int one = 1;
    size_t off = 0;

    (void)state;
    memset(&u, 0, sizeof(u));
    put(u.b, &off, SOL_TLS, TLS_GET_RECORD_TYPE, &t, 1);
    msg.msg_control = u.b;
    msg.msg_controllen = off;
    assert_int_equal(tf_ktls_record_type(&msg), TF_REC_HANDSHAKE);
    /* CMSG_LEN(1), as some callers leave it, without the tail padding. */
    msg.msg_controllen = CMSG_LEN(1);
    assert_int_equal(tf_ktls_record_type(&msg), TF_REC_HANDSHAKE);

    /* Behind an unrelated cmsg. */
    off = 0;
    memset(&u, 0, sizeof(u));
    put(u.b, &off, SOL_SOCKET, SO_TIMESTAMP, &one, sizeof(one));
    t = TF_REC_ALERT;
    put(u.b, &off, SOL_TLS, TLS_GET_RECORD_TYPE, &t, 1);
    msg.msg_controllen = off;
    assert_int_equal(tf_ktls_record_type(&msg), TF_REC_ALERT);

    /* Only unrelated cmsgs, or none: data. */
    msg.msg_controllen = CMSG_SPACE(sizeof(one));
    assert_int_equal(tf_ktls_record_type(&msg), TF_REC_DATA);
    msg.msg_controllen = 0;
    assert_int_equal(tf_ktls_record_type(&msg), TF_REC_DATA);
    msg.msg_control = NULL;
    msg.msg_controllen = 64;
    assert_int_equal(tf_ktls_record_type(&msg), TF_REC_DATA);
    assert_int_equal(tf_ktls_record_type(NULL), -EINVAL);
    assert_int_equal(tf_ktls_record_type_buf(NULL, 10), TF_REC_DATA);
}

static void test_record_type_malformed(void **state)
{
    union { struct cmsghdr align; unsigned char b[128]; } u;
    struct cmsghdr *c;
    uint8_t t = TF_REC_DATA;
    size_t off = 0;

    (void)state;
    memset(&u, 0, sizeof(u));
    c = put(u.b, &off, SOL_TLS, TLS_GET_RECORD_TYPE, &t, 1);
    c->cmsg_len = CMSG_LEN(0);                    /* no data byte */
    assert_int_equal(tf_ktls_record_type_buf(u.b, off), -EINVAL);
    c->cmsg_len = 3;                              /* shorter than its header */
    assert_int_equal(tf_ktls_record_type_buf(u.b, off), -EINVAL);
    c->cmsg_len = off + 1;                        /* past the buffer */
    assert_int_equal(tf_ktls_record_type_buf(u.b, off), -EINVAL);
    c->cmsg_len = (size_t)-1;
    assert_int_equal(tf_ktls_record_type_buf(u.b, off), -EINVAL);
    /* A buffer shorter than one header holds nothing. */
    assert_int_equal(tf_ktls_record_type_buf(u.b, sizeof(struct cmsghdr) - 1), TF_REC_DATA);
}

static void test_record_type_unaligned(void **state)
{
    union { struct cmsghdr align; unsigned char b[128]; } u;
    unsigned char odd[129];
    uint8_t t = TF_REC_HANDSHAKE;
    size_t off = 0;

    (void)state;
    memset(&u, 0, sizeof(u));
    put(u.b, &off, SOL_TLS, TLS_GET_RECORD_TYPE, &t, 1);
    memcpy(odd + 1, u.b, off);
    assert_int_equal(tf_ktls_record_type_buf(odd + 1, off), TF_REC_HANDSHAKE);
}

/* Random bytes and lengths, plus random edits of a valid buffer: every answer
 * is -EINVAL or a byte, and nothing is read out of bounds (ASan lane). */
static void test_record_type_fuzz(void **state)
{
    unsigned char *buf;
    size_t len, i;
    int r, iter;
    unsigned seed = 12345;

    (void)state;
    for (iter = 0; iter < 200000; iter++) {
        len = (size_t)(rand_r(&seed) % 96);
        buf = malloc(len ? len : 1);
        assert_non_null(buf);
        for (i = 0; i < len; i++)
            buf[i] = (unsigned char)rand_r(&seed);
        if (len >= sizeof(struct cmsghdr) && (iter & 1)) {
            /* Plausible headers, so the walk gets past the first check. */
            struct cmsghdr c = { .cmsg_len = (size_t)(rand_r(&seed) % (len + 8)),
                                 .cmsg_level = (iter & 2) ? SOL_TLS : SOL_SOCKET,
                                 .cmsg_type = TLS_GET_RECORD_TYPE };
            memcpy(buf, &c, sizeof(c));
        }
        r = tf_ktls_record_type_buf(buf, len);
        assert_true(r == -EINVAL || (r >= 0 && r <= 255));
        free(buf);
    }
}

static void test_alert(void **state)
{
    tf_ktls_alert a;
    static const uint8_t close_notify[2] = { 1, 0 };
    static const uint8_t bad_mac[2] = { 2, 20 };
    static const uint8_t canceled[2] = { 1, 90 };
    static const uint8_t warn_other[2] = { 1, 42 };
    static const uint8_t bad_level[2] = { 3, 0 };
    static const uint8_t three[3] = { 1, 0, 0 };

    (void)state;
    assert_int_equal(tf_ktls_parse_alert(close_notify, 2, &a), 0);
    assert_true(a.is_close_notify);
    assert_false(a.is_fatal);
    assert_int_equal(a.level, 1);
    assert_int_equal(a.description, 0);

    assert_int_equal(tf_ktls_parse_alert(bad_mac, 2, &a), 0);
    assert_false(a.is_close_notify);
    assert_true(a.is_fatal);
    assert_int_equal(a.description, 20);

    assert_int_equal(tf_ktls_parse_alert(canceled, 2, &a), 0);
    assert_false(a.is_fatal);
    assert_int_equal(tf_ktls_parse_alert(warn_other, 2, &a), 0);
    assert_true(a.is_fatal);   /* a warning we cannot act on still ends the flow */

    assert_int_equal(tf_ktls_parse_alert(bad_level, 2, &a), -EBADMSG);
    assert_int_equal(tf_ktls_parse_alert(three, 3, &a), -EBADMSG);
    assert_int_equal(tf_ktls_parse_alert(close_notify, 1, &a), -EBADMSG);
    assert_int_equal(tf_ktls_parse_alert(close_notify, 0, &a), -EBADMSG);
    assert_int_equal(tf_ktls_parse_alert(NULL, 2, &a), -EBADMSG);
    assert_int_equal(tf_ktls_parse_alert(close_notify, 2, NULL), -EINVAL);
}

static void test_set_record_type(void **state)
{
    union { struct cmsghdr align; unsigned char b[64]; } u;
    struct msghdr msg = { 0 };
    struct cmsghdr *c;
    size_t n;

    (void)state;
    memset(&u, 0xee, sizeof(u));
    n = tf_ktls_set_record_type_cmsg(u.b, sizeof(u.b), TF_REC_ALERT);
    assert_int_equal(n, CMSG_SPACE(1));
    msg.msg_control = u.b;
    msg.msg_controllen = n;
    c = CMSG_FIRSTHDR(&msg);
    assert_non_null(c);
    assert_int_equal(c->cmsg_level, SOL_TLS);
    assert_int_equal(c->cmsg_type, TLS_SET_RECORD_TYPE);
    assert_int_equal(c->cmsg_len, CMSG_LEN(1));
    assert_int_equal(*CMSG_DATA(c), TF_REC_ALERT);
    assert_int_equal(u.b[CMSG_LEN(1)], 0);            /* padding zeroed */
    assert_int_equal(u.b[CMSG_SPACE(1)], 0xee);       /* nothing past it written */
    assert_null(CMSG_NXTHDR(&msg, c));

    assert_int_equal(tf_ktls_set_record_type_cmsg(u.b, CMSG_SPACE(1) - 1, 21), 0);
    assert_int_equal(tf_ktls_set_record_type_cmsg(NULL, 64, 21), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_type),
        cmocka_unit_test(test_record_type_malformed),
        cmocka_unit_test(test_record_type_unaligned),
        cmocka_unit_test(test_record_type_fuzz),
        cmocka_unit_test(test_alert),
        cmocka_unit_test(test_set_record_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
