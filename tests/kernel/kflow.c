#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "kflow.h"
#include "tf_test.h"

struct echo_state {
    kflow_run *run;
    tlsflow   *srv, *cli;
    uint8_t   *pattern, *rx;
    size_t     sent, got;
    int        srv_done, cli_done;
};

static struct echo_state st;

int kflow_expect_ktls(void)
{
    const char *e = getenv("TLSFLOW_EXPECT_KTLS");
    return e && strcmp(e, "1") == 0;
}

int kflow_kernel_has_tls(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    int l, c, s, ok = 0;

    l = socket(AF_INET, SOCK_STREAM, 0);
    c = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(l, (void *)&a, sizeof(a)) == 0 && listen(l, 1) == 0 &&
        getsockname(l, (void *)&a, &al) == 0 && connect(c, (void *)&a, sizeof(a)) == 0) {
        s = accept(l, NULL, NULL);
        ok = setsockopt(c, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) == 0;
        if (s >= 0)
            close(s);
    }
    close(l);
    close(c);
    return ok;
}

static void on_srv_read(tlsflow *f, const tlsflow_result *r, void *arg);

static void on_srv_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    free(arg);
    assert_int_equal(r->status, TLSFLOW_OK);
}

static void on_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    int *done = arg;

    if (r->status != TLSFLOW_OK)
        fail_msg("close: %s", tlsflow_error_message(r->error));
    *done = 1;
    tlsflow_free(f);
}

static void on_srv_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status == TLSFLOW_OK) {
        void *copy = malloc(r->len);
        memcpy(copy, r->data, r->len);
        assert_int_equal(tlsflow_write(f, copy, r->len, on_srv_written, copy), 0);
        assert_int_equal(tlsflow_read(f, on_srv_read, NULL), 0);
    } else if (r->status == TLSFLOW_EOF) {
        if (!st.run->close_from_server)
            assert_int_equal(tlsflow_close(f, on_closed, &st.srv_done), 0);
    } else {
        fail_msg("server read: %s", tlsflow_error_message(r->error));
    }
}

static void on_accept(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    assert_int_equal(r->status, TLSFLOW_OK);
    st.srv = f;
    assert_int_equal(tlsflow_get_info(f, &st.run->srv), 0);
    assert_int_equal(tlsflow_read(f, on_srv_read, NULL), 0);
}

static void on_cli_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status == TLSFLOW_EOF && st.run->close_from_server && st.got == st.run->bytes) {
        assert_int_equal(tlsflow_close(f, on_closed, &st.cli_done), 0);
        return;
    }
    if (r->status != TLSFLOW_OK)
        fail_msg("client read: status %d: %s", r->status, tlsflow_error_message(r->error));
    assert_true(st.got + r->len <= st.run->bytes);
    memcpy(st.rx + st.got, r->data, r->len);
    st.got += r->len;
    if (st.got == st.run->bytes && !st.run->close_from_server) {
        assert_int_equal(tlsflow_close(f, on_closed, &st.cli_done), 0);
        return;
    }
    if (st.got == st.run->bytes && st.run->close_from_server)
        assert_int_equal(tlsflow_close(st.srv, on_closed, &st.srv_done), 0);
    assert_int_equal(tlsflow_read(f, on_cli_read, NULL), 0);
}

static void on_cli_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    (void)arg;
    assert_int_equal(r->status, TLSFLOW_OK);
}

static void on_connect(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status != TLSFLOW_OK) {
        st.run->open_error = r->error.code;
        st.cli_done = st.srv_done = 1;
        return;
    }
    st.cli = f;
    assert_int_equal(tlsflow_get_info(f, &st.run->cli), 0);
    snprintf(st.run->cipher, sizeof(st.run->cipher), "%s", st.run->cli.cipher);
    for (size_t off = 0; off < st.run->bytes; off += 256 * 1024) {
        size_t n = st.run->bytes - off < 256 * 1024 ? st.run->bytes - off : 256 * 1024;
        assert_int_equal(tlsflow_write(f, st.pattern + off, n, on_cli_written, NULL), 0);
    }
    assert_int_equal(tlsflow_read(f, on_cli_read, NULL), 0);
}

void kflow_echo(kflow_run *run)
{
    tlsflow_loop *loop;
    tlsflow_config *scfg, *ccfg;
    tlsflow_listener *ls;
    char port[16];

    memset(&st, 0, sizeof(st));
    st.run = run;
    st.pattern = malloc(run->bytes);
    st.rx = malloc(run->bytes);
    for (size_t i = 0; i < run->bytes; i++)
        st.pattern[i] = (uint8_t)((i * 2654435761u) >> 11);
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    assert_int_equal(tlsflow_config_new(&scfg, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_set_cert_file(scfg, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
    assert_int_equal(tlsflow_config_set_ktls(scfg, run->ktls), 0);
    assert_int_equal(tlsflow_config_new(&ccfg, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_ca_file(ccfg, TF_CA), 0);
    assert_int_equal(tlsflow_config_set_ktls(ccfg, run->ktls), 0);
    if (run->priority) {
        assert_int_equal(tlsflow_config_set_priority(ccfg, run->priority), 0);
        assert_int_equal(tlsflow_config_set_priority(scfg, run->priority), 0);
    }
    assert_int_equal(tlsflow_listen(loop, scfg, "127.0.0.1", "0", on_accept, NULL, &ls), 0);
    snprintf(port, sizeof(port), "%d", tlsflow_listener_port(ls));
    assert_int_equal(tlsflow_connect(loop, ccfg, "localhost", port, on_connect, NULL), 0);
    while (!(st.cli_done && st.srv_done))
        assert_true(tlsflow_loop_run_once(loop, 10000) > 0);
    tlsflow_listener_close(ls);
    if (!run->open_error) {
        assert_int_equal(tlsflow_loop_run(loop), 0);
        assert_int_equal(st.got, run->bytes);
        assert_memory_equal(st.rx, st.pattern, run->bytes);
        run->ok = 1;
    }
    tlsflow_loop_free(loop);
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
    free(st.pattern);
    free(st.rx);
}
