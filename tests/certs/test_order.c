/* The server's cipher order: a client that lists ChaCha20 first (as Safari
 * does) gets AES-GCM from a tlsflow server on a CPU with AES instructions
 * while records stay in userspace, and ChaCha20 where the kernel takes both
 * keys (the VM); a client that lists AES-GCM first gets it; a ChaCha20-only
 * client still gets ChaCha20; a priority the application set is left alone.
 * Peers: openssl s_client (TLS 1.3 -ciphersuites, TLS 1.2 -cipher) and
 * gnutls-cli. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "handshake/handshake.h"
#include "tf_test.h"

enum client { S_CLIENT, GNUTLS_CLI };

struct offer {
    const char *label;
    unsigned    version;          /* 0x0303 / 0x0304 */
    const char *ossl;             /* s_client's list, in order */
    const char *gnutls;           /* gnutls-cli's priority, in order */
    bool        chacha_first;     /* the client's first choice */
    bool        chacha_only;
};

#define G13 "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:"
#define G12 "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:"
static const struct offer offers[] = {
    { "tls13-chacha-first", 0x0304, "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384",
      G13 "+CHACHA20-POLY1305:+AES-128-GCM:+AES-256-GCM", true, false },
    { "tls13-aes-first", 0x0304, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256",
      G13 "+AES-128-GCM:+CHACHA20-POLY1305", false, false },
    { "tls13-chacha-only", 0x0304, "TLS_CHACHA20_POLY1305_SHA256", G13 "+CHACHA20-POLY1305", true, true },
    { "tls12-chacha-first", 0x0303, "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256",
      G12 "+CHACHA20-POLY1305:+AES-128-GCM", true, false },
    { "tls12-aes-first", 0x0303, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305",
      G12 "+AES-128-GCM:+CHACHA20-POLY1305", false, false },
};

struct run {
    const struct offer *o;
    enum client         client;
    tlsflow_ktls_mode   ktls;
};

/* What the server must choose: ours is AES-GCM first on an AES CPU, but a
 * ChaCha20-first client gets ChaCha20 where the kernel will run it. */
static bool want_chacha(const struct offer *o, const tlsflow_config *cfg)
{
    if (o->chacha_only)
        return true;
    if (!tf_hs_cpu_has_aes())
        return true;
    return o->chacha_first && tf_hs_kernel_chacha(cfg);
}

static tf_accepted *serve_one(tlsflow_loop *loop, tlsflow_config *cfg, tf_accepts *acc,
                              const struct offer *o, enum client client, char **log)
{
    tlsflow_listener *ls;
    tf_args a = { .n = 0 };
    int port, st;

    assert_int_equal(tlsflow_listen(loop, cfg, "127.0.0.1", "0", tf_accepts_on_flow, acc, &ls), 0);
    port = tlsflow_listener_port(ls);
    if (client == S_CLIENT) {
        tf_args_add(&a, "openssl", "s_client", "-connect", tf_fmt("127.0.0.1:%d", port), "-CAfile", TF_CA,
                    NULL);
        if (o->version == 0x0304)
            tf_args_add(&a, "-tls1_3", "-ciphersuites", o->ossl, NULL);
        else
            tf_args_add(&a, "-tls1_2", "-cipher", o->ossl, NULL);
    } else {
        tf_args_add(&a, "gnutls-cli", "-p", tf_fmt("%d", port), "--x509cafile", TF_CA, "--verify-hostname",
                    "localhost", "--priority", o->gnutls, "127.0.0.1", NULL);
    }
    *log = tf_run_client(loop, a.v, 10000, &st);
    TF_RUN_UNTIL(loop, acc->n > 0, 5000);
    TF_RUN_UNTIL(loop, acc->closed > 0 || !acc->a[0].ok, 5000);
    tlsflow_listener_close(ls);
    if (!acc->a[0].ok)
        fail_msg("%s: handshake failed: %s\n%s", o->label, acc->a[0].message, *log);
    return &acc->a[0];
}

static void check_log(const struct run *r, const char *log, bool chacha)
{
    const char *want;

    if (r->client == S_CLIENT)
        want = r->o->version == 0x0304 ? (chacha ? "Cipher is TLS_CHACHA20_POLY1305_SHA256"
                                                 : "Cipher is TLS_AES_128_GCM_SHA256")
                                       : (chacha ? "Cipher is ECDHE-ECDSA-CHACHA20-POLY1305"
                                                 : "Cipher is ECDHE-ECDSA-AES128-GCM-SHA256");
    else
        want = chacha ? "-(CHACHA20-POLY1305)" : "-(AES-128-GCM)";
    if (!strstr(log, want))
        fail_msg("%s: the client's log lacks \"%s\":\n%s", r->o->label, want, log);
}

TF_TEST(server_order, 30)
{
    const struct run *r = *state;
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_config_ktls(TLSFLOW_SERVER, NULL, r->ktls);
    tf_accepts acc = { 0 };
    tf_accepted *x;
    char *log;
    bool chacha = want_chacha(r->o, cfg);

    if (tf_expect_ktls() && r->ktls == TLSFLOW_KTLS_AUTO && !tf_hs_kernel_chacha(cfg))
        fail_msg("TLSFLOW_EXPECT_KTLS=1 but the kernel does not take ChaCha20 keys both ways");
    x = serve_one(loop, cfg, &acc, r->o, r->client, &log);
    assert_int_equal(x->info.tls_version, r->o->version);
    if (strcmp(x->cipher, chacha ? "CHACHA20-POLY1305" : "AES-128-GCM"))
        fail_msg("%s (%s, ktls %s): the server chose %s; want %s", r->o->label,
                 r->client == S_CLIENT ? "s_client" : "gnutls-cli", r->ktls == TLSFLOW_KTLS_OFF ? "off" : "auto",
                 x->cipher, chacha ? "CHACHA20-POLY1305" : "AES-128-GCM");
    check_log(r, log, chacha);
    /* Where the kernel takes ChaCha20 both ways, such a flow is on the kernel path. */
    if (r->ktls == TLSFLOW_KTLS_AUTO && tf_expect_ktls())
        assert_true(x->info.ktls_tx && x->info.ktls_rx);
    if (r->ktls == TLSFLOW_KTLS_OFF)
        assert_false(x->info.ktls_tx || x->info.ktls_rx);
    free(log);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    tf_accepts_free(&acc);
}

/* The application's priority is its own: no server order is added. */
TF_TEST(own_priority_untouched, 30)
{
    static const struct run r = { &offers[0], S_CLIENT, TLSFLOW_KTLS_OFF };
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_config_ktls(TLSFLOW_SERVER, "NORMAL:-VERS-ALL:+VERS-TLS1.3", TLSFLOW_KTLS_OFF);
    tf_accepts acc = { 0 };
    tf_accepted *x;
    char *log;

    x = serve_one(loop, cfg, &acc, r.o, r.client, &log);
    assert_string_equal(x->cipher, "CHACHA20-POLY1305");   /* the client's first */
    check_log(&r, log, true);
    free(log);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    tf_accepts_free(&acc);
}

int main(void)
{
    enum { NO = sizeof(offers) / sizeof(offers[0]) };
    static struct run runs[NO * 4];
    static struct CMUnitTest tests[NO * 4 + 1];   /* static: tf_name's names stay reachable */
    size_t n = 0;

    tf_require_bins("openssl", "gnutls-cli", NULL);
    for (size_t i = 0; i < NO; i++)
        for (int c = 0; c < 2; c++)
            for (int k = 0; k < 2; k++) {
                struct run *r = &runs[n];
                r->o = &offers[i];
                r->client = c ? GNUTLS_CLI : S_CLIENT;
                r->ktls = k ? TLSFLOW_KTLS_AUTO : TLSFLOW_KTLS_OFF;
                tests[n++] = (struct CMUnitTest)TF_CASE_WITH(
                    server_order, tf_name("server_order/%s/%s/ktls-%s", offers[i].label,
                                          c ? "gnutls-cli" : "s_client", k ? "auto" : "off"), r);
            }
    tests[n++] = (struct CMUnitTest)TF_CASE(own_priority_untouched);
    fprintf(stderr, "CPU AES instructions: %s\n", tf_hs_cpu_has_aes() ? "yes" : "no");
    return _cmocka_run_group_tests("certs_order", tests, n, NULL, NULL);
}
