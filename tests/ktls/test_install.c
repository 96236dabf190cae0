/* ktls/install.c + handshake/export.c on a real kernel: a real GnuTLS handshake
 * between two sessions over loopback TCP; one side then exports both
 * directions, hands them to the kernel and talks plain send/recvmsg, while the
 * other stays a GnuTLS userspace peer.  1 MiB each way, byte-exact, then
 * close_notify both ways, for TLS 1.2 and 1.3 x four ciphers x kTLS on the
 * client or on the server; plus TLS 1.3 with session tickets, where the
 * sequence numbers are not 0 and the kernel hands us handshake records. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "handshake/handshake.h"
#include "ktls/ktls.h"
#include "ktls_test.h"
#include "tls_pair.h"

#define NBYTES (1u << 20)
#define SEED_UP 0x1234567u     /* kTLS side -> peer */
#define SEED_DOWN 0x7654321u   /* peer -> kTLS side */

struct tcase {
    char name[64];
    unsigned version;
    enum tf_ktls_cipher cipher;
    const char *gnutls_cipher;
    int ktls_is_server;
    int tickets;
};

/* One end of a case: its session, socket and what went wrong (empty = ok). */
struct side {
    const struct tcase *tc;
    gnutls_session_t s;
    int fd;
    uint8_t *buf;
    int tickets_seen;
    char err[256];
};

#define FAIL(sd, ...) do { snprintf((sd)->err, sizeof((sd)->err), __VA_ARGS__); goto out; } while (0)

/* Deterministic bytes, different per direction, so reordering shows. */
static void fill(uint8_t *b, size_t n, uint64_t x)
{
    size_t i;

    for (i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b[i] = (uint8_t)x;
    }
}

static int same(const uint8_t *b, size_t n, uint64_t seed)
{
    uint8_t *want = malloc(n);
    int eq;

    if (!want)
        return 0;
    fill(want, n, seed);
    eq = memcmp(b, want, n) == 0;
    free(want);
    return eq;
}

/* ---- the GnuTLS userspace peer (its own thread) ---- */

/* GnuTLS returns E_AGAIN from a blocking recv after it consumed a
 * post-handshake message (a TLS 1.3 NewSessionTicket); the socket's 30 s
 * timeout gives E_AGAIN too, so retry only within that time. */
static ssize_t peer_io(gnutls_session_t s, int is_send, void *buf, size_t n)
{
    time_t t0 = time(NULL);
    ssize_t r;

    do
        r = is_send ? gnutls_record_send(s, buf, n) : gnutls_record_recv(s, buf, n);
    while ((r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) && time(NULL) - t0 < 25);
    return r;
}

static void *peer_main(void *arg)
{
    struct side *p = arg;
    size_t got = 0, sent = 0;
    char tmp[64];
    ssize_t r;
    int ret;

    ret = tp_handshake(p->s);
    if (ret < 0)
        FAIL(p, "handshake: %s", gnutls_strerror(ret));
    while (got < NBYTES) {
        r = peer_io(p->s, 0, p->buf + got, NBYTES - got);
        if (r <= 0)
            FAIL(p, "recv after %zu bytes: %s", got, r ? gnutls_strerror((int)r) : "EOF");
        got += (size_t)r;
    }
    if (!same(p->buf, NBYTES, SEED_UP))
        FAIL(p, "data from the kTLS side differs");
    fill(p->buf, NBYTES, SEED_DOWN);
    while (sent < NBYTES) {
        r = peer_io(p->s, 1, p->buf + sent, NBYTES - sent);
        if (r < 0)
            FAIL(p, "send after %zu bytes: %s", sent, gnutls_strerror((int)r));
        sent += (size_t)r;
    }
    r = peer_io(p->s, 0, tmp, sizeof(tmp));
    if (r != 0)
        FAIL(p, "expected close_notify, got %zd (%s)", r, r < 0 ? gnutls_strerror((int)r) : "data");
    ret = gnutls_bye(p->s, GNUTLS_SHUT_WR);
    if (ret < 0)
        FAIL(p, "bye: %s", gnutls_strerror(ret));
    shutdown(p->fd, SHUT_WR);   /* the kTLS side expects EOF after close_notify */
out:
    if (p->err[0])   /* unblock the kTLS side */
        shutdown(p->fd, SHUT_RDWR);
    return NULL;
}

/* ---- the kTLS side (the test's thread) ---- */

/* One record's worth from the kernel: its type and length, or -errno. */
static ssize_t krecv(int fd, uint8_t *buf, size_t cap, int *type)
{
    union { struct cmsghdr align; unsigned char b[CMSG_SPACE(1)]; } cbuf;
    struct iovec iov = { .iov_base = buf, .iov_len = cap };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = cbuf.b, .msg_controllen = sizeof(cbuf.b) };
    ssize_t r;

    r = recvmsg(fd, &msg, 0);
    if (r < 0)
        return -errno;
    *type = tf_ktls_record_type(&msg);
    return r;
}

static int export_and_install(struct side *k)
{
    tf_ktls_secret tx, rx;
    int ret;

    ret = tf_hs_export_secret(k->s, TF_KTLS_TX, &tx);
    if (ret == 0)
        ret = tf_hs_export_secret(k->s, TF_KTLS_RX, &rx);
    if (ret < 0)
        goto out;
    print_message("    %s: tx seq %02x%02x, rx seq %02x%02x, iv %zu bytes\n", k->tc->name,
                  tx.seq[6], tx.seq[7], rx.seq[6], rx.seq[7], tx.iv_len);
    if (tx.version != k->tc->version || tx.cipher != k->tc->cipher ||
        rx.version != k->tc->version || rx.cipher != k->tc->cipher) {
        ret = -EPROTO;
        goto out;
    }
    ret = tf_ktls_attach(k->fd);
    if (ret == 0)
        ret = tf_ktls_install(k->fd, TF_KTLS_TX, &tx);
    if (ret == 0)
        ret = tf_ktls_install(k->fd, TF_KTLS_RX, &rx);
out:
    tf_ktls_secret_wipe(&tx);
    tf_ktls_secret_wipe(&rx);
    return ret;
}

static void ktls_side(struct side *k)
{
    static uint8_t rec[1 << 15];
    union { struct cmsghdr align; unsigned char b[CMSG_SPACE(1)]; } cbuf;
    static const uint8_t close_notify[2] = { 1, 0 };
    struct iovec iov = { .iov_base = (void *)close_notify, .iov_len = 2 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.b };
    tf_ktls_alert alert;
    size_t got = 0, sent = 0;
    ssize_t r;
    int ret, type = -1;

    ret = tp_handshake(k->s);
    if (ret < 0)
        FAIL(k, "handshake: %s", gnutls_strerror(ret));
    if (gnutls_record_check_pending(k->s))
        FAIL(k, "GnuTLS holds application data the kernel would never see");
    ret = export_and_install(k);
    if (ret < 0)
        FAIL(k, "export/install: %s", strerror(-ret));

    fill(k->buf, NBYTES, SEED_UP);
    while (sent < NBYTES) {
        r = send(k->fd, k->buf + sent, NBYTES - sent, MSG_NOSIGNAL);
        if (r < 0)
            FAIL(k, "send after %zu bytes: %s", sent, strerror(errno));
        sent += (size_t)r;
    }
    while (got < NBYTES) {
        r = krecv(k->fd, rec, sizeof(rec), &type);
        if (r <= 0)
            FAIL(k, "recv after %zu bytes: %s", got, r ? strerror((int)-r) : "EOF");
        if (type == TF_REC_HANDSHAKE) {   /* NewSessionTicket: not ours to parse here */
            k->tickets_seen++;
            continue;
        }
        if (type != TF_REC_DATA || (size_t)r > NBYTES - got)
            FAIL(k, "record type %d, %zd bytes after %zu", type, r, got);
        memcpy(k->buf + got, rec, (size_t)r);
        got += (size_t)r;
    }
    if (!same(k->buf, NBYTES, SEED_DOWN))
        FAIL(k, "data from the GnuTLS peer differs");

    msg.msg_controllen = tf_ktls_set_record_type_cmsg(cbuf.b, sizeof(cbuf.b), TF_REC_ALERT);
    if (sendmsg(k->fd, &msg, MSG_NOSIGNAL) != 2)
        FAIL(k, "sending close_notify: %s", strerror(errno));
    do
        r = krecv(k->fd, rec, sizeof(rec), &type);
    while (r > 0 && type == TF_REC_HANDSHAKE);
    if (r <= 0 || type != TF_REC_ALERT)
        FAIL(k, "expected the peer's close_notify, got %zd type %d", r, type);
    if (tf_ktls_parse_alert(rec, (size_t)r, &alert) < 0 || !alert.is_close_notify || alert.is_fatal)
        FAIL(k, "alert %d/%d is not close_notify", alert.level, alert.description);
    r = krecv(k->fd, rec, sizeof(rec), &type);
    if (r != 0)
        FAIL(k, "expected EOF after close_notify, got %zd", r);
out:
    if (k->err[0])
        shutdown(k->fd, SHUT_RDWR);
}

/* ---- cases ---- */

static void run_case(void **state)
{
    const struct tcase *tc = *state;
    struct side k = { .tc = tc }, p = { .tc = tc };
    gnutls_session_t srv = NULL, cli = NULL;
    pthread_t thr;
    int fds[2], rtx, rrx;

    rtx = tf_ktls_probe(tc->version, tc->cipher, TF_KTLS_TX);
    rrx = tf_ktls_probe(tc->version, tc->cipher, TF_KTLS_RX);
    if (rtx || rrx) {
        if (expect_ktls())
            fail_msg("%s: the kernel refuses TX %d / RX %d", tc->name, rtx, rrx);
        skip();
    }
    assert_int_equal(tcp_pair(fds), 0);
    k.fd = tc->ktls_is_server ? fds[1] : fds[0];
    p.fd = tc->ktls_is_server ? fds[0] : fds[1];
    assert_int_equal(tp_session(&srv, tc->version, tc->gnutls_cipher, 1, tc->tickets, fds[1]), 0);
    assert_int_equal(tp_session(&cli, tc->version, tc->gnutls_cipher, 0, 0, fds[0]), 0);
    k.s = tc->ktls_is_server ? srv : cli;
    p.s = tc->ktls_is_server ? cli : srv;
    k.buf = malloc(NBYTES);
    p.buf = malloc(NBYTES);
    assert_non_null(k.buf);
    assert_non_null(p.buf);

    assert_int_equal(pthread_create(&thr, NULL, peer_main, &p), 0);
    ktls_side(&k);
    pthread_join(thr, NULL);

    gnutls_deinit(srv);   /* never gnutls_bye on the kTLS side: the kernel owns its records */
    gnutls_deinit(cli);
    close(fds[0]);
    close(fds[1]);
    free(k.buf);
    free(p.buf);
    if (k.err[0] || p.err[0])
        fail_msg("%s: kTLS side: %s; GnuTLS peer: %s", tc->name, k.err[0] ? k.err : "ok",
                 p.err[0] ? p.err : "ok");
    /* kTLS on the client with tickets on: they reached us through the kernel. */
    if (tc->tickets && !tc->ktls_is_server)
        assert_true(k.tickets_seen >= 1);
}

static int setup(void **state)
{
    (void)state;
    return tp_creds_init() < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_creds_free();
    return 0;
}

#define NCASES (2 * 2 * 4 + 2)

int main(void)
{
    static const struct { enum tf_ktls_cipher c; const char *name; } ciphers[] = {
        { TF_CIPHER_AES_128_GCM, "AES-128-GCM" },
        { TF_CIPHER_AES_256_GCM, "AES-256-GCM" },
        { TF_CIPHER_CHACHA20_POLY1305, "CHACHA20-POLY1305" },
        { TF_CIPHER_AES_128_CCM, "AES-128-CCM" },
    };
    static struct tcase cases[NCASES];
    struct CMUnitTest tests[NCASES];
    int side, v, c, n = 0, r;

    signal(SIGPIPE, SIG_IGN);
    r = tf_ktls_probe_ulp();
    if (r < 0)
        skip_or_fail("kTLS: TCP_ULP \"tls\"", r);
    for (side = 0; side < 2; side++)
        for (v = 0; v < 2; v++)
            for (c = 0; c < 4; c++)
                cases[n++] = (struct tcase){ .version = v ? 0x0304 : 0x0303, .cipher = ciphers[c].c,
                                             .gnutls_cipher = ciphers[c].name, .ktls_is_server = side };
    /* TLS 1.3 with tickets: the server's TX sequence has moved when it
     * exports; kTLS on the client receives the tickets as type-22 records. */
    for (side = 0; side < 2; side++)
        cases[n++] = (struct tcase){ .version = 0x0304, .cipher = TF_CIPHER_AES_128_GCM,
                                     .gnutls_cipher = "AES-128-GCM", .ktls_is_server = side,
                                     .tickets = 1 };
    for (n = 0; n < NCASES; n++) {
        snprintf(cases[n].name, sizeof(cases[n].name), "tls1%d-%s-ktls-%s%s",
                 cases[n].version == 0x0304 ? 3 : 2, cases[n].gnutls_cipher,
                 cases[n].ktls_is_server ? "server" : "client", cases[n].tickets ? "-tickets" : "");
        tests[n] = (struct CMUnitTest){ .name = cases[n].name, .test_func = run_case,
                                        .initial_state = &cases[n] };
    }
    return _cmocka_run_group_tests("ktls_install", tests, NCASES, setup, teardown);
}
