/* tlsflow_sendfile on a kTLS flow (the splice path: file -> pipe -> socket):
 *   - 1 MiB temp file to an in-process GnuTLS server that checks every byte,
 *     sent as sendfile(0, 512 KiB) + a plain write + sendfile(rest), so the
 *     order of mixed writes is checked too;
 *   - 1 MiB (text) to socat OPENSSL-LISTEN EXEC:cat, the echo read back;
 * TLS 1.2 and 1.3, the tlsflow client KTLS_REQUIRE. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "tf_gnutls_peer.h"

#define FILE_LEN (1u << 20)
#define HEAD     (512u << 10)
#define MIDDLE   (64u << 10)

static const char *const prio[] = {
    "NORMAL:-VERS-ALL:+VERS-TLS1.2",
    "NORMAL:-VERS-ALL:+VERS-TLS1.3",
};
static const char *const ossl_ver[] = { "TLS1.2", "TLS1.3" };

/* A temp file holding the stream seed from offset 0, already unlinked. */
static int temp_file(uint64_t seed, unsigned kind, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    char path[256];
    uint8_t *buf = malloc(len);
    int fd;

    assert_non_null(buf);
    snprintf(path, sizeof(path), "%s/tf-sendfile-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        fail_msg("mkstemp: %s", strerror(errno));
    unlink(path);
    tf_data_fill(buf, len, seed, 0, kind);
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, buf + off, len - off);
        if (n <= 0)
            fail_msg("write temp file: %s", strerror(errno));
        off += (size_t)n;
    }
    free(buf);
    return fd;
}

static void expect_ok(const tf_done *d, size_t len, const char *what)
{
    if (d->status != TLSFLOW_OK)
        fail_msg("%s: status %d: %s", what, d->status, d->message);
    if (d->len != len)
        fail_msg("%s: %zu bytes accepted; want %zu", what, d->len, len);
}

TF_TEST(to_gnutls, 60)
{
    int v = (int)(uintptr_t)*state;
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_config_ktls(TLSFLOW_CLIENT, prio[v], TLSFLOW_KTLS_REQUIRE);
    tf_gnutls_peer kp = { .server = true };
    tf_done con, a = { 0 }, b = { 0 }, c = { 0 }, cl = { 0 };
    tlsflow_info info;
    uint8_t *middle = malloc(MIDDLE);
    tf_tls_stat s0, s1;
    int fd;

    kp.priority = prio[v];
    kp.seed = 0x5f + (uint64_t)v;
    fd = temp_file(kp.seed, TF_DATA_BINARY, FILE_LEN);
    tf_data_fill(middle, MIDDLE, kp.seed, HEAD, TF_DATA_BINARY);
    tf_tls_stat_read(&s0);
    tf_gnutls_peer_listen(&kp);
    if (tf_connect_fd_sync(loop, cfg, kp.port, &con, 15000))
        fail_msg("connect: %s", con.message);
    assert_int_equal(tlsflow_get_info(con.flow, &info), 0);
    if (!info.ktls_tx)
        fail_msg("ktls_tx %d at open; want 1", info.ktls_tx);
    assert_int_equal(tlsflow_sendfile(con.flow, fd, 0, HEAD, tf_on_done, &a), 0);
    assert_int_equal(tlsflow_write(con.flow, middle, MIDDLE, tf_on_done, &b), 0);
    assert_int_equal(tlsflow_sendfile(con.flow, fd, HEAD + MIDDLE, FILE_LEN - HEAD - MIDDLE,
                                      tf_on_done, &c), 0);
    tf_run_until(loop, tf_cond_done, &c, 30000, "the last sendfile");
    assert_int_equal(a.n, 1);
    assert_int_equal(b.n, 1);
    expect_ok(&a, HEAD, "sendfile(0, 512 KiB)");
    expect_ok(&b, MIDDLE, "the write between");
    expect_ok(&c, FILE_LEN - HEAD - MIDDLE, "sendfile(rest)");
    tf_close_sync(loop, con.flow, &cl, 15000);
    if (cl.status != TLSFLOW_OK)
        fail_msg("close: %s", cl.message);
    tlsflow_free(con.flow);
    tf_gnutls_peer_join(&kp, 15000);
    if (kp.gerr)
        fail_msg("GnuTLS peer: %s: %s (%zu bytes in)", kp.where, gnutls_strerror(kp.gerr), kp.received);
    if (kp.mismatch)
        fail_msg("the peer got a different byte at %llu", (unsigned long long)kp.bad_offset);
    assert_int_equal(kp.received, FILE_LEN);
    assert_true(kp.close_notify);
    tf_tls_stat_read(&s1);
    tf_tls_stat_expect(&s0, &s1, "TlsTxSw", 1, 1);
    close(fd);
    free(middle);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

TF_TEST(to_socat_echo, 60)
{
    int v = (int)(uintptr_t)*state;
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_config_ktls(TLSFLOW_CLIENT, prio[v], TLSFLOW_KTLS_REQUIRE);
    tf_done con, sf = { 0 }, cl = { 0 };
    tf_xfer back;
    int port, fd;

    fd = temp_file(0xca7, TF_DATA_TEXT, FILE_LEN);
    tf_start_socat_server(&port, TF_ECDSA_CERT, TF_ECDSA_KEY,
                          tf_fmt(",min-version=%s,max-version=%s", ossl_ver[v], ossl_ver[v]), NULL);
    if (tf_connect_sync(loop, cfg, "localhost", port, &con, 15000))
        fail_msg("connect: %s", con.message);
    /* Only reading: the file is what is sent. */
    tf_xfer_start(&back, con.flow, 0, FILE_LEN, 0xca7, TF_DATA_TEXT);
    assert_int_equal(tlsflow_sendfile(con.flow, fd, 0, FILE_LEN, tf_on_done, &sf), 0);
    tf_run_until(loop, tf_xfer_cond, &back, 40000, "the echo of the file");
    tf_run_until(loop, tf_cond_done, &sf, 10000, "the sendfile");
    expect_ok(&sf, FILE_LEN, "sendfile(1 MiB)");
    if (back.chk.bad)
        fail_msg("echo differs at byte %llu", (unsigned long long)back.chk.bad_offset);
    if (back.failed || back.received < FILE_LEN)
        fail_msg("reading the echo after %zu bytes: %s", back.received,
                 back.failed ? back.message : "EOF");
    assert_int_equal(back.received, FILE_LEN);
    tf_xfer_release(&back);
    tf_close_sync(loop, con.flow, &cl, 15000);
    if (cl.status != TLSFLOW_OK)
        fail_msg("close: %s", cl.message);
    tlsflow_free(con.flow);
    close(fd);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

int main(void)
{
    struct CMUnitTest tests[4];
    int n = 0, pre = tf_kernel_prelude();

    if (pre)
        return pre;
    tf_require_bins("socat", NULL);
    for (int v = 1; v >= 0; v--) {
        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(to_gnutls, tf_name("to_gnutls_tls1%d", v ? 3 : 2),
                                                     (void *)(uintptr_t)v);
        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(
            to_socat_echo, tf_name("to_socat_echo_tls1%d", v ? 3 : 2), (void *)(uintptr_t)v);
    }
    return _cmocka_run_group_tests("kernel_sendfile", tests, (size_t)n, NULL, NULL);
}
