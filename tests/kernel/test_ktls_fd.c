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

#include "kpeer.h"
#include "tf_test.h"

#define FLOW_PART  (128u << 10)
#define PLAIN_PART (256u << 10)

static const char *const prio[] = {
    "NORMAL:-VERS-ALL:+VERS-TLS1.2",
    "NORMAL:-VERS-ALL:+VERS-TLS1.3",
};

static bool called(void *arg)
{
    return ((tf_done *)arg)->n > 0;
}

/* Plain syscalls: writes the stream from offset `from` while reading its echo. */
static void plain_echo(int fd, uint64_t seed, uint64_t from, size_t len)
{
    uint8_t *out = malloc(len), *in = malloc(len);
    size_t sent = 0, got = 0;
    long long end = tf_now_ms() + 30000;

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

struct back {
    uint8_t *buf;
    size_t   got, cap;
    int      status;
    bool     done;
    char     msg[256];
};

static void back_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct back *b = arg;

    b->status = r->status;
    if (r->status != TLSFLOW_OK) {
        snprintf(b->msg, sizeof(b->msg), "%s", r->status == TLSFLOW_EOF ? "EOF" : tlsflow_error_message(r->error));
        b->done = true;
        return;
    }
    if (b->got + r->len > b->cap)
        fail_msg("more came back than was sent");
    memcpy(b->buf + b->got, r->data, r->len);
    b->got += r->len;
    if (b->got == b->cap)
        b->done = true;
    else
        assert_int_equal(tlsflow_read(f, back_read, b), 0);
}

static bool back_done(void *arg)
{
    return ((struct back *)arg)->done;
}

/* Through the flow: the stream from offset `from`, its echo checked. */
static void xfer_from(tlsflow_loop *loop, tlsflow *f, uint64_t seed, uint64_t from, size_t len)
{
    uint8_t *buf = malloc(len);
    struct back b = { .buf = malloc(len), .cap = len };
    tf_done w = { 0 };

    assert_non_null(buf);
    assert_non_null(b.buf);
    tf_data_fill(buf, len, seed, from, TF_DATA_BINARY);
    assert_int_equal(tlsflow_read(f, back_read, &b), 0);
    assert_int_equal(tlsflow_write(f, buf, len, tf_on_done, &w), 0);
    tf_run_until(loop, back_done, &b, 15000, "the echo");
    if (b.status != TLSFLOW_OK)
        fail_msg("tlsflow_read after the plain syscalls: %s", b.msg);
    tf_run_until(loop, called, &w, 15000, "the write");
    assert_int_equal(w.status, TLSFLOW_OK);
    assert_memory_equal(b.buf, buf, len);
    free(buf);
    free(b.buf);
}

TF_TEST(plain_syscalls, 60)
{
    int v = (int)(uintptr_t)*state;
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = kt_client_config(prio[v]);
    kpeer kp = { 0 };
    tf_done con, cl = { 0 };
    tf_xfer x;
    tlsflow_info info;

    kp.priority = prio[v];
    kp.echo = true;
    kp.seed = 0xfd + (uint64_t)v;
    kpeer_start(&kp);
    if (kt_connect(loop, cfg, kp.port, &con))
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
    assert_int_equal(tlsflow_close(con.flow, tf_on_done, &cl), 0);
    tf_run_until(loop, called, &cl, 15000, "the close");
    if (cl.status != TLSFLOW_OK)
        fail_msg("close: %s", cl.message);
    tlsflow_free(con.flow);
    kpeer_join(&kp, 15000);
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
    int pre = kt_prelude();

    if (pre)
        return pre;
    for (int v = 1; v >= 0; v--)
        tests[1 - v] = (struct CMUnitTest)TF_CASE_WITH(plain_syscalls,
                                                       kt_name("plain_syscalls_tls1%d", v ? 3 : 2),
                                                       (void *)(uintptr_t)v);
    return _cmocka_run_group_tests("kernel_fd", tests, 2, NULL, NULL);
}
