/* tlsflow_fd once both directions are in the kernel: plain write() and read()
 * on the socket exchange data with the peer — the kernel seals and opens the
 * records — and the flow goes on afterwards (tlsflow writes and reads, then
 * tlsflow_close with the peer answering close_notify).  The peer is an
 * in-process GnuTLS server (userspace records, no tickets) echoing a checked
 * stream, TLS 1.2 and 1.3. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "tf_gnutls_peer.h"

#define FLOW_PART  (128u << 10)
#define PLAIN_PART (256u << 10)

static const char *const prio[] = {
    "NORMAL:-VERS-ALL:+VERS-TLS1.2",
    "NORMAL:-VERS-ALL:+VERS-TLS1.3",
};

/* Plain syscalls: writes the stream from offset `from` while reading its echo. */
static void plain_echo(int fd, uint64_t seed, uint64_t from, size_t len)
{
    uint8_t *out = malloc(len), *in = malloc(len);
    size_t sent = 0, got = 0;
    long long end = tf_now_ms() + tf_ms(30000);

    assert_non_null(out);
    assert_non_null(in);
    tf_data_fill(out, len, seed, from, TF_DATA_BINARY);
    while (got < len) {
        struct pollfd p = { fd, (short)(POLLIN | (sent < len ? POLLOUT : 0)), 0 };
        ssize_t n;

        if (tf_now_ms() > end)
            fail_msg("plain echo: timed out with %zu sent, %zu back", sent, got);
        if (poll(&p, 1, 100) < 0)
            fail_msg("poll: %s", strerror(errno));
        if ((p.revents & POLLOUT) && sent < len) {
            n = send(fd, out + sent, len - sent < 65536 ? len - sent : 65536, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                fail_msg("write(tlsflow_fd) after %zu bytes: %s", sent, strerror(errno));
            if (n > 0)
                sent += (size_t)n;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            n = recv(fd, in + got, len - got, MSG_DONTWAIT);
            if (n == 0)
                fail_msg("read(tlsflow_fd): EOF after %zu bytes", got);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                fail_msg("read(tlsflow_fd) after %zu bytes: %s", got, strerror(errno));
            if (n > 0)
                got += (size_t)n;
        }
    }
    for (size_t i = 0; i < len; i++)
        if (in[i] != out[i])
            fail_msg("plain read: byte %zu differs", i);
    free(out);
    free(in);
}

/* Through the flow: the stream from offset `from`, its echo checked. */
static void xfer_from(tlsflow_loop *loop, tlsflow *f, uint64_t seed, uint64_t from, size_t len)
{
    tf_xfer x = { .len = len, .expect = len, .chunk = len, .seed = seed, .offset = from };

    tf_xfer_begin(&x, f);
    tf_run_until(loop, tf_xfer_cond, &x, 15000, "the echo");
    if (x.failed || x.eof)
        fail_msg("tlsflow_read after the plain syscalls: %s", x.eof ? "EOF" : x.message);
    assert_int_equal(x.received, len);
    assert_int_equal(x.writes, 1);
    tf_xfer_release(&x);
}

TF_TEST(plain_syscalls, 60)
{
    int v = (int)(uintptr_t)*state;
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_config_ktls(TLSFLOW_CLIENT, prio[v], TLSFLOW_KTLS_REQUIRE);
    tf_gnutls_peer kp = { .server = true };
    tf_done con, cl = { 0 };
    tf_xfer x;
    tlsflow_info info;

    kp.priority = prio[v];
    kp.echo = true;
    kp.seed = 0xfd + (uint64_t)v;
    tf_gnutls_peer_listen(&kp);
    if (tf_connect_fd_sync(loop, cfg, kp.port, &con, 15000))
        fail_msg("connect: %s", con.message);
    /* Through the flow first (checked), so both keys are surely in the kernel. */
    tf_xfer_start(&x, con.flow, FLOW_PART, FLOW_PART, kp.seed, TF_DATA_BINARY);
    tf_run_until(loop, tf_xfer_cond, &x, 20000, "the flow's echo");
    if (x.failed)
        fail_msg("flow echo: %s", x.message);
    tf_xfer_release(&x);
    assert_int_equal(tlsflow_get_info(con.flow, &info), 0);
    if (!info.ktls_tx || !info.ktls_rx)
        fail_msg("ktls_tx %d ktls_rx %d; want 1, 1", info.ktls_tx, info.ktls_rx);
    assert_true(tlsflow_fd(con.flow) >= 0);
    plain_echo(tlsflow_fd(con.flow), kp.seed, FLOW_PART, PLAIN_PART);
    /* And the flow again: the kernel's sequence numbers moved, not ours. */
    xfer_from(loop, con.flow, kp.seed, FLOW_PART + PLAIN_PART, 64u << 10);
    tf_close_sync(loop, con.flow, &cl, 15000);
    if (cl.status != TLSFLOW_OK)
        fail_msg("close: %s", cl.message);
    tlsflow_free(con.flow);
    tf_gnutls_peer_join(&kp, 15000);
    if (kp.gerr)
        fail_msg("GnuTLS peer: %s: %s", kp.where, gnutls_strerror(kp.gerr));
    if (kp.mismatch)
        fail_msg("the peer got a different byte at %llu", (unsigned long long)kp.bad_offset);
    assert_int_equal(kp.received, FLOW_PART + PLAIN_PART + (64u << 10));
    assert_true(kp.close_notify);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

int main(void)
{
    struct CMUnitTest tests[2];
    int pre = tf_kernel_prelude();

    if (pre)
        return pre;
    for (int v = 1; v >= 0; v--)
        tests[1 - v] = (struct CMUnitTest)TF_CASE_WITH(plain_syscalls,
                                                       tf_name("plain_syscalls_tls1%d", v ? 3 : 2),
                                                       (void *)(uintptr_t)v);
    return _cmocka_run_group_tests("kernel_fd", tests, 2, NULL, NULL);
}
