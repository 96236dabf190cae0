/* Several certificates in one server config: each SNI name gets its own, an
 * ECDSA-only and an RSA-only client each get theirs for the same name, and
 * no or an unknown name gets the first pair.  Checked by what openssl
 * s_client, gnutls-cli and a tlsflow client receive; plus the errors of
 * tlsflow_config_add_cert_file. */
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

#include "tf_test.h"

struct server {
    tlsflow_loop     *loop;
    tlsflow_config   *cfg;
    tlsflow_listener *ls;
    tf_accepts        acc;
    int               port;
};

/* localhost (ECDSA, the default), alpha.test RSA and ECDSA, beta.test. */
static void server_start(struct server *s)
{
    memset(s, 0, sizeof(*s));
    s->loop = tf_loop_new();
    s->cfg = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, NULL);
    assert_int_equal(tlsflow_config_add_cert_file(s->cfg, TF_ALPHA_RSA_CERT, TF_ALPHA_RSA_KEY), 0);
    assert_int_equal(tlsflow_config_add_cert_file(s->cfg, TF_ALPHA_ECDSA_CERT, TF_ALPHA_ECDSA_KEY), 0);
    assert_int_equal(tlsflow_config_add_cert_file(s->cfg, TF_BETA_CERT, TF_BETA_KEY), 0);
    assert_int_equal(tlsflow_listen(s->loop, s->cfg, "127.0.0.1", "0", tf_accepts_on_flow, &s->acc,
                                    &s->ls), 0);
    s->port = tlsflow_listener_port(s->ls);
}

static void server_stop(struct server *s)
{
    tlsflow_listener_close(s->ls);
    tlsflow_loop_free(s->loop);
    tlsflow_config_free(s->cfg);
    tf_accepts_free(&s->acc);
}

struct pick {
    const char *sni;       /* NULL: none sent */
    const char *key;       /* "ecdsa", "rsa" or NULL (any) */
    const char *want_cn;
    const char *want_key;  /* the key type the leaf must have */
};

static const struct pick picks[] = {
    { "alpha.test", "ecdsa", "alpha.test", "ecdsa" },
    { "alpha.test", "rsa", "alpha.test", "rsa" },
    { "alpha.test", NULL, "alpha.test", NULL },
    { "beta.test", NULL, "beta.test", "ecdsa" },
    { "unknown.test", NULL, "localhost", "ecdsa" },
    { NULL, NULL, "localhost", "ecdsa" },
};

static const char *pick_name(const struct pick *p)
{
    return tf_fmt("%s/%s", p->sni ? p->sni : "no-sni", p->key ? p->key : "any");
}

/* The server saw the name the client sent. */
static void check_server_side(struct server *s, const struct pick *p)
{
    TF_RUN_UNTIL(s->loop, s->acc.n > 0, 5000);
    if (!s->acc.a[0].ok)
        fail_msg("%s: the handshake failed on the server: %s", pick_name(p), s->acc.a[0].message);
    assert_string_equal(s->acc.a[0].server_name, p->sni && strcmp(p->sni, "unknown.test") ? p->sni
                        : p->sni ? "unknown.test" : "");
}

TF_TEST(sni_s_client, 30)
{
    const struct pick *p = *state;
    struct server s;
    tf_args a = { .n = 0 };
    char *log;
    int st;

    server_start(&s);
    tf_args_add(&a, "openssl", "s_client", "-connect", tf_fmt("127.0.0.1:%d", s.port), "-CAfile", TF_CA,
                "-verify_return_error", NULL);
    if (p->sni)
        tf_args_add(&a, "-servername", p->sni, "-verify_hostname", strcmp(p->sni, "unknown.test") ? p->sni
                    : "localhost", NULL);
    else
        tf_args_add(&a, "-noservername", "-verify_hostname", "localhost", NULL);
    if (p->key)
        tf_args_add(&a, "-sigalgs", strcmp(p->key, "rsa") ? "ecdsa_secp256r1_sha256"
                                                         : "rsa_pss_rsae_sha256:rsa_pkcs1_sha256", NULL);
    log = tf_run_client(s.loop, a.v, 10000, &st);
    if (!strstr(log, tf_fmt("subject=O = tlsflow tests, CN = %s\n", p->want_cn)))
        fail_msg("%s: s_client did not get %s's certificate:\n%s", pick_name(p), p->want_cn, log);
    if (!strstr(log, "Verify return code: 0 (ok)"))
        fail_msg("%s: s_client did not verify the certificate:\n%s", pick_name(p), log);
    if (p->want_key && !strstr(log, strcmp(p->want_key, "rsa") ? "Peer signature type: ECDSA"
                                                               : "Peer signature type: RSA"))
        fail_msg("%s: s_client did not get the %s certificate:\n%s", pick_name(p), p->want_key, log);
    free(log);
    check_server_side(&s, p);
    server_stop(&s);
}

/* gnutls-cli prints the leaf first: "- subject `CN=...', ..., EC/ECDSA key 256 bits, ..." */
static void check_gnutls_leaf(const struct pick *p, const char *log)
{
    const char *leaf = strstr(log, "- subject `");
    const char *end = leaf ? strchr(leaf, '\n') : NULL;
    char line[1024];

    if (!leaf || !end || (size_t)(end - leaf) >= sizeof(line))
        fail_msg("%s: no certificate in gnutls-cli's output:\n%s", pick_name(p), log);
    memcpy(line, leaf, (size_t)(end - leaf));
    line[end - leaf] = 0;
    if (strncmp(line, tf_fmt("- subject `CN=%s,", p->want_cn), strlen(tf_fmt("- subject `CN=%s,", p->want_cn))))
        fail_msg("%s: gnutls-cli got %s; want CN=%s", pick_name(p), line, p->want_cn);
    if (p->want_key && !strstr(line, strcmp(p->want_key, "rsa") ? "EC/ECDSA key" : "RSA key"))
        fail_msg("%s: gnutls-cli got %s; want a %s key", pick_name(p), line, p->want_key);
}

TF_TEST(sni_gnutls_cli, 30)
{
    const struct pick *p = *state;
    struct server s;
    tf_args a = { .n = 0 };
    char *log;
    int st;

    server_start(&s);
    /* To an address literal gnutls-cli sends no name unless told one. */
    tf_args_add(&a, "gnutls-cli", "-p", tf_fmt("%d", s.port), "--x509cafile", TF_CA, "--verify-hostname",
                p->sni && strcmp(p->sni, "unknown.test") ? p->sni : "localhost", NULL);
    if (p->sni)
        tf_args_add(&a, "--sni-hostname", p->sni, NULL);
    if (p->key)
        tf_args_add(&a, "--priority", strcmp(p->key, "rsa")
                        ? "NORMAL:-SIGN-ALL:+SIGN-ECDSA-SECP256R1-SHA256"
                        : "NORMAL:-SIGN-ALL:+SIGN-RSA-PSS-RSAE-SHA256:+SIGN-RSA-SHA256", NULL);
    tf_args_add(&a, "127.0.0.1", NULL);
    log = tf_run_client(s.loop, a.v, 10000, &st);
    check_gnutls_leaf(p, log);
    if (!strstr(log, "Handshake was completed"))
        fail_msg("%s: gnutls-cli did not complete the handshake:\n%s", pick_name(p), log);
    free(log);
    check_server_side(&s, p);
    server_stop(&s);
}

/* A tlsflow client verifies each name (REQUIRED): only that name's
 * certificate passes. */
TF_TEST(sni_tlsflow_client, 30)
{
    static const char *const names[] = { "alpha.test", "beta.test", "localhost" };
    struct server s;
    tlsflow_config *c = tf_client_config(NULL, TF_CA);

    server_start(&s);
    for (size_t i = 0; i < 3; i++) {
        tf_done con = { 0 };
        int fd = tf_tcp_connect(s.port);
        assert_true(fd >= 0);
        assert_int_equal(tlsflow_wrap_fd(s.loop, c, fd, names[i], tf_on_done, &con), 0);
        TF_RUN_UNTIL(s.loop, con.n > 0, 5000);
        if (con.status != TLSFLOW_OK)
            fail_msg("%s: %s", names[i], con.message);
        tlsflow_free(con.flow);
    }
    TF_RUN_UNTIL(s.loop, s.acc.n == 3, 5000);
    for (int i = 0; i < 3; i++)
        assert_string_equal(s.acc.a[i].server_name, names[i]);
    server_stop(&s);
    tlsflow_config_free(c);
}

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/tlsflow-certs-XXXXXX");
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

TF_TEST(add_cert_errors, 30)
{
    tlsflow_config *c;
    /* (A corrupted base64 block inside PEM markers is left to the fuzzer:
     * GnuTLS 3.7.9 leaks the certificate it was parsing, see
     * tests/fuzz/lsan.supp.) */
    char *text = write_tmp("hello\n");
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_listener *ls;

    assert_int_equal(tlsflow_config_add_cert_file(NULL, TF_ECDSA_CERT, TF_ECDSA_KEY), -EINVAL);
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_add_cert_file(c, NULL, TF_ECDSA_KEY), -EINVAL);
    assert_int_equal(tlsflow_config_add_cert_file(c, TF_ECDSA_CERT, NULL), -EINVAL);
    assert_int_equal(tlsflow_config_add_cert_file(c, "", TF_ECDSA_KEY), -EINVAL);
    assert_int_equal(tlsflow_config_add_cert_file(c, TF_CERT("missing.pem"), TF_ECDSA_KEY), -ENOENT);
    assert_int_equal(tlsflow_config_add_cert_file(c, TF_ECDSA_CERT, TF_CERT("missing.pem")), -ENOENT);
    assert_int_equal(tlsflow_config_add_cert_file(c, text, TF_ECDSA_KEY), -EBADMSG);
    assert_int_equal(tlsflow_config_add_cert_file(c, TF_ECDSA_CERT, text), -EBADMSG);
    assert_int_equal(tlsflow_config_add_cert_file(c, text, text), -EBADMSG);
    assert_int_equal(tlsflow_config_add_cert_file(c, TF_ECDSA_CERT, TF_RSA_KEY), -EKEYREJECTED);
    assert_int_equal(tlsflow_config_set_cert_file(c, TF_ALPHA_RSA_CERT, TF_ECDSA_KEY), -EKEYREJECTED);
    /* Nothing loaded yet: a listener refuses it. */
    assert_int_equal(tlsflow_listen(loop, c, "127.0.0.1", "0", tf_accepts_on_flow, NULL, &ls), -EINVAL);
    assert_int_equal(tlsflow_config_add_cert_file(c, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
    assert_int_equal(tlsflow_config_add_cert_file(c, TF_ALPHA_RSA_CERT, TF_ALPHA_RSA_KEY), 0);
    assert_int_equal(tlsflow_listen(loop, c, "127.0.0.1", "0", tf_accepts_on_flow, NULL, &ls), 0);
    assert_int_equal(tlsflow_config_add_cert_file(c, TF_BETA_CERT, TF_BETA_KEY), -EBUSY);
    tlsflow_listener_close(ls);
    tlsflow_loop_free(loop);
    tlsflow_config_free(c);
    unlink(text);
    free(text);
}

int main(void)
{
    static struct CMUnitTest tests[32];   /* static: the names tf_name made stay reachable */
    size_t n = 0, np = sizeof(picks) / sizeof(picks[0]);

    tf_require_bins("openssl", "gnutls-cli", NULL);
    for (size_t i = 0; i < np; i++)
        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(sni_s_client,
                                                     tf_name("sni_s_client/%s", pick_name(&picks[i])), &picks[i]);
    for (size_t i = 0; i < np; i++)
        tests[n++] = (struct CMUnitTest)TF_CASE_WITH(sni_gnutls_cli,
                                                     tf_name("sni_gnutls_cli/%s", pick_name(&picks[i])), &picks[i]);
    tests[n++] = (struct CMUnitTest)TF_CASE(sni_tlsflow_client);
    tests[n++] = (struct CMUnitTest)TF_CASE(add_cert_errors);
    return _cmocka_run_group_tests("certs_sni", tests, n, NULL, NULL);
}
