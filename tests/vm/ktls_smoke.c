/* Smoke test for the kTLS VM lane: proves the kernel under test has a working
 * tls ULP and the crypto it needs, without any tlsflow code involved.
 *
 * A connected loopback TCP pair gets TCP_ULP "tls" on both ends, TLS_TX on one
 * and TLS_RX on the other with the same made-up TLS 1.3 key; data goes through
 * and must come back equal, and /proc/net/tls_stat must count the sessions.
 * One case per cipher the library supports, so a missing crypto module in the
 * VM shows up here and not as a puzzling library failure.
 *
 * Without the ULP (ENOENT) it exits 77 (skip), unless TLSFLOW_EXPECT_KTLS=1,
 * which the VM sets: there a missing kTLS is a failure. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/tls.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tf_test.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

/* The uapi layouts this test writes into. */
_Static_assert(sizeof(struct tls_crypto_info) == 4, "tls_crypto_info");
_Static_assert(sizeof(struct tls12_crypto_info_aes_gcm_128) == 40, "aes_gcm_128");
_Static_assert(sizeof(struct tls12_crypto_info_aes_gcm_256) == 56, "aes_gcm_256");
_Static_assert(sizeof(struct tls12_crypto_info_aes_ccm_128) == 40, "aes_ccm_128");
_Static_assert(sizeof(struct tls12_crypto_info_chacha20_poly1305) == 56, "chacha20_poly1305");

#define CHUNK   16384
#define TOTAL   (256 * 1024)
#define RECORD_TYPE_APPLICATION_DATA 23

struct pair {
    int tx;
    int rx;
};

static int connected_pair(struct pair *p)
{
    struct sockaddr_in addr = { .sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(addr);
    int lfd, ret = -1;

    p->tx = p->rx = -1;
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        return -1;
    if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(lfd, 1) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &len) < 0)
        goto out;
    p->tx = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->tx < 0 || connect(p->tx, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        goto out;
    p->rx = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (p->rx < 0)
        goto out;
    ret = 0;
out:
    close(lfd);
    return ret;
}

static void close_pair(struct pair *p)
{
    if (p->tx >= 0)
        close(p->tx);
    if (p->rx >= 0)
        close(p->rx);
    p->tx = p->rx = -1;
}

/* 0 when the kernel accepts the tls ULP, -errno otherwise. */
static int probe_ulp(void)
{
    struct pair p;
    int ret = 0;

    if (connected_pair(&p) < 0) {
        ret = -errno;
        close_pair(&p);
        return ret;
    }
    if (setsockopt(p.tx, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) < 0)
        ret = -errno;
    close_pair(&p);
    return ret;
}

/* Value of one counter of /proc/net/tls_stat, -1 when absent. */
static long tls_stat(const char *name)
{
    char key[64];
    long val, found = -1;
    FILE *f = fopen("/proc/net/tls_stat", "re");

    if (!f)
        return -1;
    while (fscanf(f, "%63s %ld", key, &val) == 2) {
        if (strcmp(key, name) == 0) {
            found = val;
            break;
        }
    }
    fclose(f);
    return found;
}

/* One case per cipher; the key is made up and the same bytes serve TX and RX. */
struct cipher_case {
    const char *name;
    uint16_t cipher;
};

static const struct cipher_case cases[] = {
    { "AES-128-GCM", TLS_CIPHER_AES_GCM_128 },
    { "AES-256-GCM", TLS_CIPHER_AES_GCM_256 },
    { "AES-128-CCM", TLS_CIPHER_AES_CCM_128 },
    { "CHACHA20-POLY1305", TLS_CIPHER_CHACHA20_POLY1305 },
};

/* Writes the uapi crypto_info struct for @c into @buf; returns its size. */
static size_t make_crypto_info(const struct cipher_case *c, unsigned char *buf, size_t cap)
{
    union {
        struct tls12_crypto_info_aes_gcm_128 g128;
        struct tls12_crypto_info_aes_gcm_256 g256;
        struct tls12_crypto_info_aes_ccm_128 c128;
        struct tls12_crypto_info_chacha20_poly1305 cc;
    } u;
    size_t size;

    memset(&u, 0, sizeof(u));
    switch (c->cipher) {
    case TLS_CIPHER_AES_GCM_128:
        memset(u.g128.key, 0x11, sizeof(u.g128.key));
        memset(u.g128.iv, 0x22, sizeof(u.g128.iv));
        memset(u.g128.salt, 0x33, sizeof(u.g128.salt));
        size = sizeof(u.g128);
        break;
    case TLS_CIPHER_AES_GCM_256:
        memset(u.g256.key, 0x44, sizeof(u.g256.key));
        memset(u.g256.iv, 0x55, sizeof(u.g256.iv));
        memset(u.g256.salt, 0x66, sizeof(u.g256.salt));
        size = sizeof(u.g256);
        break;
    case TLS_CIPHER_AES_CCM_128:
        memset(u.c128.key, 0x77, sizeof(u.c128.key));
        memset(u.c128.iv, 0x88, sizeof(u.c128.iv));
        memset(u.c128.salt, 0x99, sizeof(u.c128.salt));
        size = sizeof(u.c128);
        break;
    default:
        memset(u.cc.key, 0xaa, sizeof(u.cc.key));
        memset(u.cc.iv, 0xbb, sizeof(u.cc.iv));
        size = sizeof(u.cc);
        break;
    }
    /* rec_seq stays zero: a fresh TLS 1.3 traffic key starts at sequence 0. */
    u.g128.info.version = TLS_1_3_VERSION;
    u.g128.info.cipher_type = c->cipher;
    assert_true(size <= cap);
    memcpy(buf, &u, size);
    explicit_bzero(&u, sizeof(u));
    return size;
}

/* Reads exactly @len bytes of application data through kTLS RX, checking
 * each record's type via the control message. */
static void recv_all(int fd, unsigned char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        char cbuf[CMSG_SPACE(sizeof(unsigned char))];
        struct iovec iov = { .iov_base = buf + got, .iov_len = len - got };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                              .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
        struct cmsghdr *cmsg;
        ssize_t n = recvmsg(fd, &msg, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail_msg("recvmsg: %zd (%s)", n, n < 0 ? strerror(errno) : "EOF");
        cmsg = CMSG_FIRSTHDR(&msg);
        if (cmsg && cmsg->cmsg_level == SOL_TLS && cmsg->cmsg_type == TLS_GET_RECORD_TYPE)
            assert_int_equal(*CMSG_DATA(cmsg), RECORD_TYPE_APPLICATION_DATA);
        got += (size_t)n;
    }
}

static void send_all(int fd, const unsigned char *buf, size_t len)
{
    size_t sent = 0;

    while (sent < len) {
        ssize_t n = send(fd, buf + sent, len - sent, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail_msg("send: %s", strerror(errno));
        sent += (size_t)n;
    }
}

static void test_roundtrip(void **state)
{
    const struct cipher_case *c = *state;
    unsigned char info[64];
    static unsigned char out[CHUNK], in[CHUNK];
    long tx0 = tls_stat("TlsTxSw"), rx0 = tls_stat("TlsRxSw");
    long dec0 = tls_stat("TlsDecryptError");
    struct pair p;
    size_t size, done, i;

    assert_true(tx0 >= 0 && rx0 >= 0);
    assert_int_equal(connected_pair(&p), 0);
    assert_int_equal(setsockopt(p.tx, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")), 0);
    assert_int_equal(setsockopt(p.rx, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")), 0);

    size = make_crypto_info(c, info, sizeof(info));
    if (setsockopt(p.tx, SOL_TLS, TLS_TX, info, (socklen_t)size) < 0 ||
        setsockopt(p.rx, SOL_TLS, TLS_RX, info, (socklen_t)size) < 0) {
        int err = errno;

        explicit_bzero(info, sizeof(info));
        close_pair(&p);
        fail_msg("%s: setsockopt TLS_TX/TLS_RX: %s", c->name, strerror(err));
    }
    explicit_bzero(info, sizeof(info));

    /* Chunk by chunk, so one thread never blocks on a full socket buffer. */
    for (done = 0; done < TOTAL; done += CHUNK) {
        for (i = 0; i < CHUNK; i++)
            out[i] = (unsigned char)((done + i) * 131u + (done >> 14));
        send_all(p.tx, out, CHUNK);
        memset(in, 0, sizeof(in));
        recv_all(p.rx, in, CHUNK);
        assert_memory_equal(in, out, CHUNK);
    }
    close_pair(&p);

    assert_true(tls_stat("TlsTxSw") > tx0);
    assert_true(tls_stat("TlsRxSw") > rx0);
    assert_int_equal(tls_stat("TlsDecryptError"), dec0);
    printf("ok %s: %d KiB through kTLS, TlsTxSw %ld->%ld TlsRxSw %ld->%ld\n", c->name,
           TOTAL / 1024, tx0, tls_stat("TlsTxSw"), rx0, tls_stat("TlsRxSw"));
}

int main(void)
{
    const char *expect = getenv("TLSFLOW_EXPECT_KTLS");
    int is_expected = expect && strcmp(expect, "1") == 0;
    int ret = probe_ulp();
    struct CMUnitTest tests[sizeof(cases) / sizeof(cases[0])];
    size_t i;

    if (ret < 0) {
        fprintf(stderr, "kTLS unavailable: TCP_ULP \"tls\": %s\n", strerror(-ret));
        if (ret == -ENOENT && !is_expected)
            return TF_SKIP;
        return 1;   /* expected kTLS, or a failure that is not "no ULP" */
    }
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tests[i] = (struct CMUnitTest){ .name = cases[i].name,
                                        .test_func = test_roundtrip,
                                        .initial_state = (void *)&cases[i] };
    }
    return cmocka_run_group_tests_name("vm_ktls_smoke", tests, NULL, NULL);
}
