/* OCSP stapling.  Responses come from openssl ocsp (tests/common/make-ocsp.sh:
 * good, revoked, expired, for another certificate, signed by an untrusted
 * CA).  A tlsflow server staples a good one (openssl s_client -status,
 * gnutls-cli --ocsp and a tlsflow client see it) and refuses the others with
 * their own error; tlsflow-serve reloads it on SIGHUP and says when one is
 * not stapled.  A tlsflow client against openssl s_server -status_file reads
 * each response as tlsflow_info.ocsp_status under TLSFLOW_OCSP_OFF, CHECK and
 * REQUIRE. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "tf_test.h"

static char dir[] = "/tmp/tlsflow-ocsp-XXXXXX";
static bool have_expired;

static const char *resp(const char *name)
{
    return tf_fmt("%s/%s.der", dir, name);
}

enum staple { NONE, GOOD, REVOKED, EXPIRED, OTHER, UNTRUSTED, NSTAPLES };
static const char *const staple_names[] = { "none", "good", "revoked", "expired", "other", "untrusted" };

/* ---- the tlsflow server side ---- */

TF_TEST(server_ocsp_file_errors, 30)
{
    tlsflow_config *s, *c;

    assert_int_equal(tlsflow_config_new(&s, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_ocsp_file(NULL, resp("good")), -EINVAL);
    assert_int_equal(tlsflow_config_set_ocsp_file(s, resp("good")), -EINVAL);   /* no certificate yet */
    assert_int_equal(tlsflow_config_set_cert_file(s, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
    assert_int_equal(tlsflow_config_set_ocsp_file(s, NULL), -EINVAL);
    assert_int_equal(tlsflow_config_set_ocsp_file(s, ""), -EINVAL);
    assert_int_equal(tlsflow_config_set_ocsp_file(c, resp("good")), -EINVAL);
    assert_int_equal(tlsflow_config_set_ocsp_file(s, resp("missing")), -ENOENT);
    assert_int_equal(tlsflow_config_set_ocsp_file(s, TF_CA), -EBADMSG);         /* PEM, not an OCSP response */
    assert_int_equal(tlsflow_config_set_ocsp_file(s, resp("other")), -EKEYREJECTED);
    assert_int_equal(tlsflow_config_set_ocsp_file(s, resp("revoked")), -EKEYREVOKED);
    if (have_expired)
        assert_int_equal(tlsflow_config_set_ocsp_file(s, resp("expired")), -ESTALE);
    assert_int_equal(tlsflow_config_set_ocsp_file(s, resp("good")), 0);
    assert_int_equal(tlsflow_config_set_ocsp(s, TLSFLOW_OCSP_CHECK), -EINVAL);  /* clients only */
    assert_int_equal(tlsflow_config_set_ocsp(c, (tlsflow_ocsp_mode)7), -EINVAL);
    assert_int_equal(tlsflow_config_set_ocsp(NULL, TLSFLOW_OCSP_CHECK), -EINVAL);
    tlsflow_config_free(s);
    tlsflow_config_free(c);
}

struct server {
    tlsflow_loop     *loop;
    tlsflow_config   *cfg;
    tlsflow_listener *ls;
    tf_accepts        acc;
    int               port;
};

static void server_start(struct server *s, bool staple)
{
    memset(s, 0, sizeof(*s));
    s->loop = tf_loop_new();
    s->cfg = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, NULL);
    if (staple)
        assert_int_equal(tlsflow_config_set_ocsp_file(s->cfg, resp("good")), 0);
    assert_int_equal(tlsflow_listen(s->loop, s->cfg, "127.0.0.1", "0", tf_accepts_on_flow, &s->acc, &s->ls), 0);
    s->port = tlsflow_listener_port(s->ls);
}

static void server_stop(struct server *s)
{
    tlsflow_listener_close(s->ls);
    tlsflow_loop_free(s->loop);
    tlsflow_config_free(s->cfg);
    tf_accepts_free(&s->acc);
}

TF_TEST(server_staples_s_client, 30)
{
    for (int staple = 0; staple < 2; staple++) {
        struct server s;
        tf_args a = { .n = 0 };
        char *log;

        server_start(&s, staple);
        tf_args_add(&a, "openssl", "s_client", "-connect", tf_fmt("127.0.0.1:%d", s.port), "-CAfile", TF_CA,
                    "-status", NULL);
        log = tf_run_client(s.loop, a.v, 10000, NULL);
        if (staple && (!strstr(log, "OCSP Response Status: successful") || !strstr(log, "Cert Status: good")))
            fail_msg("s_client saw no good OCSP response stapled:\n%s", log);
        if (!staple && !strstr(log, "OCSP response: no response sent"))
            fail_msg("s_client saw a response where none was configured:\n%s", log);
        free(log);
        server_stop(&s);
    }
}

TF_TEST(server_staples_gnutls_cli, 30)
{
    struct server s;
    tf_args a = { .n = 0 };
    char *log;
    int st;

    server_start(&s, true);
    /* --ocsp: the chain must verify with OCSP; without a staple it would
     * look for a responder the certificate does not name. */
    tf_args_add(&a, "gnutls-cli", "-p", tf_fmt("%d", s.port), "--x509cafile", TF_CA, "--ocsp",
                "--verify-hostname", "localhost", "127.0.0.1", NULL);
    log = tf_run_client(s.loop, a.v, 10000, &st);
    if (!strstr(log, "The certificate is trusted") || strstr(log, "Cannot find OCSP server URI") ||
        strstr(log, "failed"))
        fail_msg("gnutls-cli --ocsp did not take the stapled response:\n%s", log);
    free(log);
    server_stop(&s);
}

static int client_open(tlsflow_loop *loop, tlsflow_ocsp_mode mode, tlsflow_verify verify, int port,
                       tlsflow_info *info, tf_done *con)
{
    tlsflow_config *c = tf_client_config(NULL, TF_CA);
    int ret;

    assert_int_equal(tlsflow_config_set_ocsp(c, mode), 0);
    assert_int_equal(tlsflow_config_set_verify(c, verify), 0);
    ret = tf_connect_sync(loop, c, "localhost", port, con, 5000);
    if (ret == 0) {
        assert_int_equal(tlsflow_get_info(con->flow, info), 0);
        tlsflow_free(con->flow);
    }
    tlsflow_config_free(c);
    return ret;
}

TF_TEST(server_staples_tlsflow_client, 30)
{
    for (int staple = 0; staple < 2; staple++) {
        struct server s;
        tlsflow_info info;
        tf_done con;

        server_start(&s, staple);
        assert_int_equal(client_open(s.loop, TLSFLOW_OCSP_CHECK, TLSFLOW_VERIFY_REQUIRED, s.port, &info, &con), 0);
        assert_int_equal(info.ocsp_status, staple ? TLSFLOW_OCSP_STATUS_GOOD : TLSFLOW_OCSP_STATUS_NONE);
        if (staple) {
            assert_int_equal(client_open(s.loop, TLSFLOW_OCSP_REQUIRE, TLSFLOW_VERIFY_REQUIRED, s.port, &info, &con),
                             0);
            assert_int_equal(info.ocsp_status, TLSFLOW_OCSP_STATUS_GOOD);
        } else {
            assert_int_not_equal(client_open(s.loop, TLSFLOW_OCSP_REQUIRE, TLSFLOW_VERIFY_REQUIRED, s.port, &info,
                                             &con), 0);
            assert_int_equal(con.error.code, TLSFLOW_E_CERTIFICATE);
            assert_true(con.error.detail & GNUTLS_CERT_MISSING_OCSP_STATUS);
        }
        assert_int_equal(client_open(s.loop, TLSFLOW_OCSP_OFF, TLSFLOW_VERIFY_REQUIRED, s.port, &info, &con), 0);
        assert_int_equal(info.ocsp_status, TLSFLOW_OCSP_STATUS_NONE);   /* not reported */
        server_stop(&s);
    }
}

/* REQUIRE holds for the full handshake; the one resuming it has no
 * certificate exchange and opens. */
TF_TEST(require_then_resume, 30)
{
    struct server s;
    tlsflow_config *c = tf_client_config(NULL, TF_CA);
    tlsflow_info info;
    tf_done con, cl;

    server_start(&s, true);
    assert_int_equal(tlsflow_config_set_ocsp(c, TLSFLOW_OCSP_REQUIRE), 0);
    for (int i = 0; i < 2; i++) {
        tf_done rd;
        if (tf_connect_fd_sync(s.loop, c, s.port, &con, 5000))
            fail_msg("connection %d: %s", i, con.message);
        assert_int_equal(tlsflow_get_info(con.flow, &info), 0);
        assert_int_equal(info.resumed, i);
        assert_int_equal(info.ocsp_status, i ? TLSFLOW_OCSP_STATUS_NONE : TLSFLOW_OCSP_STATUS_GOOD);
        /* The read brings the TLS 1.3 ticket in, then the server's close_notify. */
        tf_read_sync(s.loop, con.flow, &rd, 5000);
        assert_int_equal(rd.status, TLSFLOW_EOF);
        tf_close_sync(s.loop, con.flow, &cl, 5000);
        tlsflow_free(con.flow);
    }
    server_stop(&s);
    tlsflow_config_free(c);
}

#ifdef TF_SERVE_BIN
static const char *serve_bin = TF_SERVE_BIN;

static bool log_has(tf_peer *p, const char *s, int times)
{
    char *log = tf_peer_log(p);
    int n = 0;

    for (const char *q = log; (q = strstr(q, s)); q += strlen(s))
        n++;
    free(log);
    return n >= times;
}

static int ocsp_of(tlsflow_loop *loop, int port)
{
    tlsflow_info info;
    tf_done con;

    assert_int_equal(client_open(loop, TLSFLOW_OCSP_CHECK, TLSFLOW_VERIFY_REQUIRED, port, &info, &con), 0);
    return info.ocsp_status;
}

/* tlsflow-serve --ocsp: stapled, refreshed on SIGHUP; one that does not
 * load is said and not stapled, the certificate still serves. */
TF_TEST(serve_ocsp_reload, 60)
{
    char path[256], cmd[2048];
    tf_args a = { .n = 0 };
    tlsflow_loop *loop = tf_loop_new();
    tf_peer *p;
    int port = tf_free_port();

    snprintf(path, sizeof(path), "%s/serve.der", dir);
    snprintf(cmd, sizeof(cmd), "cp %s %s", resp("good"), path);
    assert_int_equal(system(cmd), 0);
    tf_args_add(&a, serve_bin, "--cert", TF_ECDSA_CERT, "--key", TF_ECDSA_KEY, "--ocsp", path, "--echo", "--port",
                tf_fmt("%d", port), "--stats-interval", "0", NULL);
    p = tf_serve(&a, port);
    assert_int_equal(ocsp_of(loop, port), TLSFLOW_OCSP_STATUS_GOOD);
    snprintf(cmd, sizeof(cmd), "cp %s %s.new && mv %s.new %s", resp("other"), path, path, path);
    assert_int_equal(system(cmd), 0);
    tf_peer_kill(p, SIGHUP);
    if (tf_peer_wait_log(p, "reloaded certificate", 10000))
        fail_msg("no reload");
    if (!log_has(p, "a response for another certificate; not stapled", 1))
        fail_msg("tlsflow-serve did not say why the response was not stapled");
    tf_run_for(loop, 100);
    assert_int_equal(ocsp_of(loop, port), TLSFLOW_OCSP_STATUS_NONE);
    snprintf(cmd, sizeof(cmd), "cp %s %s.new && mv %s.new %s", resp("good"), path, path, path);
    assert_int_equal(system(cmd), 0);
    tf_peer_kill(p, SIGHUP);
    TF_RUN_UNTIL(loop, log_has(p, "reloaded certificate", 2), 10000);
    tf_run_for(loop, 100);
    assert_int_equal(ocsp_of(loop, port), TLSFLOW_OCSP_STATUS_GOOD);
    tlsflow_loop_free(loop);
    unlink(path);
}
#endif

/* ---- the tlsflow client side, against openssl s_server -status_file ---- */

struct client_case {
    enum staple       staple;
    tlsflow_ocsp_mode mode;
    tlsflow_verify    verify;
};

/* What a client must see: 0 when it opens with that ocsp_status, or -1 when
 * the handshake fails (TLSFLOW_E_CERTIFICATE). */
static int expect(const struct client_case *cc, int *status)
{
    static const int read_as[NSTAPLES] = { TLSFLOW_OCSP_STATUS_NONE, TLSFLOW_OCSP_STATUS_GOOD,
                                           TLSFLOW_OCSP_STATUS_REVOKED, TLSFLOW_OCSP_STATUS_INVALID,
                                           TLSFLOW_OCSP_STATUS_INVALID, TLSFLOW_OCSP_STATUS_INVALID };

    *status = cc->mode == TLSFLOW_OCSP_OFF ? TLSFLOW_OCSP_STATUS_NONE : read_as[cc->staple];
    if (cc->mode == TLSFLOW_OCSP_REQUIRE && *status != TLSFLOW_OCSP_STATUS_GOOD)
        return -1;
    /* A verifying client refuses a revoked certificate, and GnuTLS's own
     * check refuses a stapled response it cannot believe (OFF too: GnuTLS
     * 3.7 asks for one whatever we say). */
    if (cc->verify == TLSFLOW_VERIFY_REQUIRED && read_as[cc->staple] >= TLSFLOW_OCSP_STATUS_REVOKED)
        return -1;
    return 0;
}

static const char *const mode_names[] = { "off", "check", "require" };

TF_TEST(client_reads_staple, 30)
{
    const struct client_case *cc = *state;
    const char *extra[] = { "-status_file", resp(staple_names[cc->staple]), NULL };
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_info info;
    tf_done con;
    int port, want_status, want = expect(cc, &want_status), got;

    if (cc->staple == EXPIRED && !have_expired)
        TF_SKIP_TEST("faketime is missing: no expired response");
    tf_start_s_server(&port, TF_ECDSA_CERT, TF_ECDSA_KEY, cc->staple == NONE ? NULL : extra);
    got = client_open(loop, cc->mode, cc->verify, port, &info, &con);
    if (want == 0 && got != 0)
        fail_msg("refused: %s", con.message);
    if (want != 0 && got == 0)
        fail_msg("opened (ocsp_status %d, verify status 0x%x); want a refusal", info.ocsp_status,
                 info.peer_verify_status);
    if (want != 0) {
        assert_int_equal(con.error.code, TLSFLOW_E_CERTIFICATE);
        if (getenv("TF_VERBOSE"))
            fprintf(stderr, "refused: %s\n", con.message);
    } else {
        assert_int_equal(info.ocsp_status, want_status);
    }
    tlsflow_loop_free(loop);
}

int main(int argc, char **argv)
{
    static struct CMUnitTest tests[80];   /* static: tf_name's names stay reachable */
    static struct client_case cases[NSTAPLES * 5];
    static const struct { tlsflow_ocsp_mode m; tlsflow_verify v; } modes[] = {
        { TLSFLOW_OCSP_OFF, TLSFLOW_VERIFY_REQUIRED },
        { TLSFLOW_OCSP_CHECK, TLSFLOW_VERIFY_REQUIRED },
        { TLSFLOW_OCSP_CHECK, TLSFLOW_VERIFY_OPTIONAL },
        { TLSFLOW_OCSP_REQUIRE, TLSFLOW_VERIFY_REQUIRED },
        { TLSFLOW_OCSP_REQUIRE, TLSFLOW_VERIFY_OPTIONAL },
    };
    size_t n = 0, nc = 0;
    int ret;

    tf_require_bins("openssl", "gnutls-cli", NULL);
    if (!mkdtemp(dir) ||
        system(tf_fmt("%s/tests/common/make-ocsp.sh %s %s", TF_SOURCE_DIR, dir, TF_TEST_CERTS)) != 0) {
        fprintf(stderr, "make-ocsp.sh failed\n");
        return 1;
    }
    have_expired = access(resp("expired"), R_OK) == 0;
    tests[n++] = (struct CMUnitTest)TF_CASE(server_ocsp_file_errors);
    tests[n++] = (struct CMUnitTest)TF_CASE(server_staples_s_client);
    tests[n++] = (struct CMUnitTest)TF_CASE(server_staples_gnutls_cli);
    tests[n++] = (struct CMUnitTest)TF_CASE(server_staples_tlsflow_client);
    tests[n++] = (struct CMUnitTest)TF_CASE(require_then_resume);
#ifdef TF_SERVE_BIN
    if (argc > 1)
        serve_bin = argv[1];
    tests[n++] = (struct CMUnitTest)TF_CASE(serve_ocsp_reload);
#endif
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
        for (int s = 0; s < NSTAPLES; s++) {
            struct client_case *cc = &cases[nc++];
            cc->staple = (enum staple)s;
            cc->mode = modes[m].m;
            cc->verify = modes[m].v;
            tests[n++] = (struct CMUnitTest)TF_CASE_WITH(
                client_reads_staple,
                tf_name("client_reads_staple/%s/%s/verify-%s", staple_names[s], mode_names[modes[m].m],
                        modes[m].v == TLSFLOW_VERIFY_REQUIRED ? "required" : "optional"), cc);
        }
    (void)argc;
    (void)argv;
    ret = _cmocka_run_group_tests("certs_ocsp", tests, n, NULL, NULL);
    if (system(tf_fmt("rm -rf %s", dir)) != 0)
        ret = ret ? ret : 1;
    return ret;
}
