/* Client certificates for authorisation: a tlsflow server that asked for one
 * (OPTIONAL or REQUIRED) reads the client's chain with
 * tlsflow_get_peer_certificate and its status in tlsflow_info; trusted,
 * untrusted and absent certificates from openssl s_client -cert, gnutls-cli
 * --x509certfile and a tlsflow client. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tf_test.h"

enum client { S_CLIENT, GNUTLS_CLI, TLSFLOW };
enum kind { TRUSTED, UNTRUSTED, ABSENT };

struct run {
    tlsflow_verify mode;
    enum client    client;
    enum kind      kind;
};

static const char *const client_names[] = { "s_client", "gnutls-cli", "tlsflow" };
static const char *const kind_names[] = { "trusted", "untrusted", "absent" };
static const char *const mode_names[] = { "required", "optional", "none" };

/* The DER of the first certificate in a PEM file. */
static void leaf_der(const char *path, gnutls_datum_t *der)
{
    gnutls_datum_t pem = { NULL, 0 };
    gnutls_x509_crt_t *list = NULL;
    unsigned n = 0;

    assert_int_equal(gnutls_load_file(path, &pem), 0);
    assert_true(gnutls_x509_crt_list_import2(&list, &n, &pem, GNUTLS_X509_FMT_PEM, 0) >= 0);
    assert_true(n >= 1);
    assert_int_equal(gnutls_x509_crt_export2(list[0], GNUTLS_X509_FMT_DER, der), 0);
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(list[i]);
    gnutls_free(list);
    gnutls_free(pem.data);
}

static void connect_tlsflow(tlsflow_loop *loop, int port, const char *cert, const char *key, tf_done *con)
{
    tlsflow_config *c = tf_client_config(NULL, TF_CA);
    int fd = tf_tcp_connect(port);

    if (cert)
        assert_int_equal(tlsflow_config_set_cert_file(c, cert, key), 0);
    assert_true(fd >= 0);
    assert_int_equal(tlsflow_wrap_fd(loop, c, fd, "localhost", tf_on_done, con), 0);
    TF_RUN_UNTIL(loop, con->n > 0, 5000);
    if (con->status == TLSFLOW_OK)
        tlsflow_free(con->flow);
    tlsflow_config_free(c);   /* the flow kept its reference while it lived */
}

TF_TEST(client_auth, 30)
{
    const struct run *r0 = *state;
    /* A GnuTLS client sends no certificate whose issuer is not among the
     * CAs the server names in its CertificateRequest: for tlsflow clients
     * an untrusted certificate is an absent one. */
    struct run r1 = { r0->mode, r0->client,
                      r0->client == TLSFLOW && r0->kind == UNTRUSTED ? ABSENT : r0->kind };
    const struct run *r = &r1;
    const char *cert = r0->kind == TRUSTED ? TF_CLIENT_CERT : r0->kind == UNTRUSTED ? TF_UNTRUSTED_CLIENT_CERT : NULL;
    const char *key = r->kind == TRUSTED ? TF_CLIENT_KEY : TF_UNTRUSTED_CLIENT_KEY;
    /* Open: a trusted certificate, or none where none is demanded, or any
     * where none is asked for. */
    bool want_open = r->mode == TLSFLOW_VERIFY_NONE || r->kind == TRUSTED ||
                     (r->kind == ABSENT && r->mode == TLSFLOW_VERIFY_OPTIONAL);
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_server_config(TF_RSA_CERT, TF_RSA_KEY, NULL);
    tlsflow_listener *ls;
    tf_accepts acc = { 0 };
    tf_accepted *x;
    char *log = NULL;
    int port, st;

    assert_int_equal(tlsflow_config_set_ca_file(cfg, TF_CA), 0);
    assert_int_equal(tlsflow_config_set_verify(cfg, r->mode), 0);
    assert_int_equal(tlsflow_listen(loop, cfg, "127.0.0.1", "0", tf_accepts_on_flow, &acc, &ls), 0);
    port = tlsflow_listener_port(ls);
    if (r->client == TLSFLOW) {
        tf_done con = { 0 };
        connect_tlsflow(loop, port, cert, key, &con);
    } else {
        tf_args a = { .n = 0 };
        if (r->client == S_CLIENT) {
            tf_args_add(&a, "openssl", "s_client", "-connect", tf_fmt("127.0.0.1:%d", port), "-CAfile", TF_CA,
                        NULL);
            if (cert)
                tf_args_add(&a, "-cert", cert, "-key", key, NULL);
        } else {
            tf_args_add(&a, "gnutls-cli", "-p", tf_fmt("%d", port), "--x509cafile", TF_CA,
                        "--verify-hostname", "localhost", "127.0.0.1", NULL);
            if (cert)
                tf_args_add(&a, "--x509certfile", cert, "--x509keyfile", key, NULL);
        }
        log = tf_run_client(loop, a.v, 10000, &st);
    }
    TF_RUN_UNTIL(loop, acc.n > 0, 5000);
    x = &acc.a[0];
    if (!want_open) {
        if (x->ok)
            fail_msg("a client %s certificate was let in", kind_names[r->kind]);
        if (x->error.code != TLSFLOW_E_CERTIFICATE)
            fail_msg("code %d (%s); want TLSFLOW_E_CERTIFICATE", x->error.code, x->message);
        if (r->kind == UNTRUSTED && !strstr(x->message, "issuer is unknown"))
            fail_msg("\"%s\" does not say \"issuer is unknown\"", x->message);
    } else {
        if (!x->ok)
            fail_msg("refused: %s\n%s", x->message, log ? log : "");
        if (r->mode == TLSFLOW_VERIFY_NONE) {
            /* Not asked: no chain, no status. */
            assert_int_equal(x->nchain, 0);
            assert_int_equal(x->info.peer_verify_status, 0);
        } else if (r->kind == ABSENT) {
            assert_int_equal(x->nchain, 0);
            assert_int_equal(x->info.peer_verify_status, GNUTLS_CERT_INVALID);
        } else {
            gnutls_datum_t der;
            leaf_der(cert, &der);
            assert_int_equal(x->info.peer_verify_status, 0);
            assert_true(x->nchain >= 1);
            assert_int_equal(x->chain_len[0], der.size);
            assert_memory_equal(x->chain[0], der.data, der.size);
            gnutls_free(der.data);
        }
    }
    free(log);
    tlsflow_listener_close(ls);
    TF_RUN_UNTIL(loop, acc.closed == (x->ok ? 1 : 0), 5000);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    tf_accepts_free(&acc);
}

/* A resumed session: the server still knows who the client is. */
TF_TEST(client_auth_resumed, 30)
{
    static const tlsflow_verify modes[] = { TLSFLOW_VERIFY_OPTIONAL, TLSFLOW_VERIFY_REQUIRED };
    static const char *const prios[] = { "NORMAL:-VERS-ALL:+VERS-TLS1.3", "NORMAL:-VERS-ALL:+VERS-TLS1.2" };

    for (int m = 0; m < 2; m++)
        for (int v = 0; v < 2; v++) {
            tlsflow_loop *loop = tf_loop_new();
            tlsflow_config *cfg = tf_server_config(TF_RSA_CERT, TF_RSA_KEY, NULL);
            tlsflow_config *c = tf_client_config(prios[v], TF_CA);
            tlsflow_listener *ls;
            tf_accepts acc = { 0 };
            gnutls_datum_t der;

            assert_int_equal(tlsflow_config_set_ca_file(cfg, TF_CA), 0);
            assert_int_equal(tlsflow_config_set_verify(cfg, modes[m]), 0);
            assert_int_equal(tlsflow_config_set_cert_file(c, TF_CLIENT_CERT, TF_CLIENT_KEY), 0);
            assert_int_equal(tlsflow_listen(loop, cfg, "127.0.0.1", "0", tf_accepts_on_flow, &acc, &ls), 0);
            leaf_der(TF_CLIENT_CERT, &der);
            for (int i = 0; i < 2; i++) {
                tf_done con, rd, cl;
                tlsflow_info info;
                if (tf_connect_fd_sync(loop, c, tlsflow_listener_port(ls), &con, 5000))
                    fail_msg("connection %d: %s", i, con.message);
                assert_int_equal(tlsflow_get_info(con.flow, &info), 0);
                if (info.resumed != i)
                    fail_msg("%s, %s: connection %d resumed %d", m ? "required" : "optional", v ? "TLS 1.2" : "TLS 1.3",
                             i, info.resumed);
                tf_read_sync(loop, con.flow, &rd, 5000);   /* the ticket, then the server's close_notify */
                tf_close_sync(loop, con.flow, &cl, 5000);
                tlsflow_free(con.flow);
                TF_RUN_UNTIL(loop, acc.n > i, 5000);
                if (!acc.a[i].ok)
                    fail_msg("connection %d refused: %s", i, acc.a[i].message);
                if (acc.a[i].info.peer_verify_status != 0 || acc.a[i].nchain < 1 ||
                    acc.a[i].chain_len[0] != der.size || memcmp(acc.a[i].chain[0], der.data, der.size))
                    fail_msg("%s, %s, connection %d (resumed %d): status 0x%x, %zu certificates", m ? "required" : "optional",
                             v ? "TLS 1.2" : "TLS 1.3", i, acc.a[i].info.resumed, acc.a[i].info.peer_verify_status,
                             acc.a[i].nchain);
            }
            gnutls_free(der.data);
            tlsflow_listener_close(ls);
            tlsflow_loop_free(loop);
            tlsflow_config_free(cfg);
            tlsflow_config_free(c);
            tf_accepts_free(&acc);
        }
}

int main(void)
{
    static struct run runs[3 * 3 * 3];
    static struct CMUnitTest tests[3 * 3 * 3 + 1];   /* static: tf_name's names stay reachable */
    static const tlsflow_verify modes[] = { TLSFLOW_VERIFY_REQUIRED, TLSFLOW_VERIFY_OPTIONAL, TLSFLOW_VERIFY_NONE };
    size_t n = 0;

    tf_require_bins("openssl", "gnutls-cli", NULL);
    for (int m = 0; m < 3; m++)
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < 3; k++) {
                runs[n] = (struct run){ modes[m], (enum client)c, (enum kind)k };
                tests[n] = (struct CMUnitTest)TF_CASE_WITH(
                    client_auth, tf_name("client_auth/%s/%s/%s", mode_names[m], client_names[c], kind_names[k]),
                    &runs[n]);
                n++;
            }
    tests[n++] = (struct CMUnitTest)TF_CASE(client_auth_resumed);
    return _cmocka_run_group_tests("certs_client_auth", tests, n, NULL, NULL);
}
