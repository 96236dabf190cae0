/* A tlsflow client and a tlsflow server on one loop: the handshake, an echo of
 * binary data checked byte for byte, and a clean close from the client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <tlsflow.h>
#include "tf_test.h"

#define TOTAL (4u << 20)

struct side {
    tlsflow *flow;
    uint8_t *rx;
    size_t   got;
    int      eof, closed, write_done, errors;
    tlsflow_info info;
};

static struct side srv, cli;
static uint8_t *pattern;

static void on_srv_read(tlsflow *f, const tlsflow_result *r, void *arg);

static void on_srv_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    free(arg);
    if (r->status != TLSFLOW_OK)
        srv.errors++;
}

static void on_srv_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    assert_int_equal(r->status, TLSFLOW_OK);
    srv.closed = 1;
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
        srv.eof = 1;
        assert_int_equal(tlsflow_close(f, on_srv_closed, NULL), 0);
    } else {
        fail_msg("server read: %s", tlsflow_error_message(r->error));
    }
}

static void on_accept(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    assert_int_equal(r->status, TLSFLOW_OK);
    srv.flow = f;
    assert_int_equal(tlsflow_get_info(f, &srv.info), 0);
    assert_int_equal(tlsflow_read(f, on_srv_read, NULL), 0);
}

static void on_cli_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status != TLSFLOW_OK)
        fail_msg("client close: %s", tlsflow_error_message(r->error));
    cli.closed = 1;
    tlsflow_free(f);
}

static void on_cli_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status != TLSFLOW_OK)
        fail_msg("client read: status %d %s", r->status, tlsflow_error_message(r->error));
    assert_true(cli.got + r->len <= TOTAL);
    memcpy(cli.rx + cli.got, r->data, r->len);
    cli.got += r->len;
    if (cli.got < TOTAL)
        assert_int_equal(tlsflow_read(f, on_cli_read, NULL), 0);
    else
        assert_int_equal(tlsflow_close(f, on_cli_closed, NULL), 0);
}

static void on_cli_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    (void)arg;
    assert_int_equal(r->status, TLSFLOW_OK);
    cli.write_done += (int)(r->len > 0);
}

static void on_connect(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status != TLSFLOW_OK)
        fail_msg("connect: %s", tlsflow_error_message(r->error));
    cli.flow = f;
    assert_int_equal(tlsflow_get_info(f, &cli.info), 0);
    assert_string_equal(cli.info.server_name, "localhost");   /* valid while the flow lives */
    assert_int_equal(cli.info.ktls_tx, 0);
    assert_int_equal(cli.info.resumed, 0);
    /* Several writes in flight at once, in order. */
    for (size_t off = 0; off < TOTAL; off += TOTAL / 4)
        assert_int_equal(tlsflow_write(f, pattern + off, TOTAL / 4, on_cli_written, NULL), 0);
    assert_int_equal(tlsflow_read(f, on_cli_read, NULL), 0);
}

static void echo(const char *priority, unsigned version)
{
    tlsflow_loop *loop;
    tlsflow_config *scfg, *ccfg;
    tlsflow_listener *ls;
    char port[16];

    memset(&srv, 0, sizeof(srv));
    memset(&cli, 0, sizeof(cli));
    cli.rx = malloc(TOTAL);
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    assert_int_equal(tlsflow_config_new(&scfg, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_set_cert_file(scfg, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
    assert_int_equal(tlsflow_config_new(&ccfg, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_ca_file(ccfg, TF_CA), 0);
    if (priority)
        assert_int_equal(tlsflow_config_set_priority(ccfg, priority), 0);
    assert_int_equal(tlsflow_listen(loop, scfg, "127.0.0.1", "0", on_accept, NULL, &ls), 0);
    snprintf(port, sizeof(port), "%d", tlsflow_listener_port(ls));
    assert_int_equal(tlsflow_connect(loop, ccfg, "localhost", port, on_connect, NULL), 0);
    while (!(cli.closed && srv.closed))
        assert_true(tlsflow_loop_run_once(loop, 5000) > 0);
    tlsflow_listener_close(ls);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    assert_memory_equal(cli.rx, pattern, TOTAL);
    assert_int_equal(cli.write_done, 4);
    assert_true(srv.eof);
    assert_int_equal(srv.errors, 0);
    assert_int_equal(cli.info.tls_version, version);
    assert_int_equal(srv.info.tls_version, version);
    tlsflow_loop_free(loop);
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
    free(cli.rx);
}

static void test_echo_tls13(void **state)
{
    (void)state;
    echo(NULL, 0x0304);
    assert_string_equal(cli.info.cipher, "AES-128-GCM");   /* static strings from GnuTLS */
}

static void test_echo_tls12(void **state)
{
    (void)state;
    echo("NORMAL:-VERS-ALL:+VERS-TLS1.2", 0x0303);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_tls13),
        cmocka_unit_test(test_echo_tls12),
    };
    pattern = malloc(TOTAL);
    for (size_t i = 0; i < TOTAL; i++)
        pattern[i] = (uint8_t)(i * 2654435761u >> 13);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
