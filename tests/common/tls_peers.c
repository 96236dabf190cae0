/* Real TLS peers (gnutls-serv, socat, openssl s_server) started as servers,
 * the version x cipher matrix, and config shortcuts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "tf_test.h"

#define P12(c) "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+" c
#define P13(c) "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+" c

const tf_suite tf_suites[TF_NSUITES] = {
    { "TLS1.2-AES-128-GCM", 0x0303, "AES-128-GCM", P12("AES-128-GCM"),
      "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256", "TLS1.2" },
    { "TLS1.2-AES-256-GCM", 0x0303, "AES-256-GCM", P12("AES-256-GCM"),
      "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES256-GCM-SHA384", "TLS1.2" },
    { "TLS1.2-CHACHA20-POLY1305", 0x0303, "CHACHA20-POLY1305", P12("CHACHA20-POLY1305"),
      "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-CHACHA20-POLY1305", "TLS1.2" },
    { "TLS1.3-AES-128-GCM", 0x0304, "AES-128-GCM", P13("AES-128-GCM"), "TLS_AES_128_GCM_SHA256",
      "TLS1.3" },
    { "TLS1.3-AES-256-GCM", 0x0304, "AES-256-GCM", P13("AES-256-GCM"), "TLS_AES_256_GCM_SHA384",
      "TLS1.3" },
    { "TLS1.3-CHACHA20-POLY1305", 0x0304, "CHACHA20-POLY1305", P13("CHACHA20-POLY1305"),
      "TLS_CHACHA20_POLY1305_SHA256", "TLS1.3" },
};

const char *tf_fmt(const char *fmt, ...)
{
    static char ring[64][512];
    static unsigned next;
    char *buf = ring[next++ % 64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(ring[0]), fmt, ap);
    va_end(ap);
    return buf;
}

void tf_args_add(tf_args *a, const char *arg, ...)
{
    va_list ap;

    va_start(ap, arg);
    for (const char *s = arg; s; s = va_arg(ap, const char *)) {
        if (a->n >= TF_ARGS_MAX - 1)
            fail_msg("too many arguments");
        a->v[a->n++] = s;
    }
    va_end(ap);
    a->v[a->n] = NULL;
}

static void add_list(tf_args *a, const char *const *extra)
{
    for (; extra && *extra; extra++)
        tf_args_add(a, *extra, NULL);
}

tf_peer *tf_serve(tf_args *a, int port)
{
    tf_peer *p = tf_peer_startv(0, a->v);
    int ret = tf_wait_port(port, 10000, p);

    if (ret)
        fail_msg("%s does not listen on port %d: %s", a->v[0], port,
                 ret == -ESRCH ? "it exited" : "timed out");
    return p;
}

static int port_or_fail(void)
{
    int port = tf_free_port();

    if (port <= 0)
        fail_msg("no free port: %s", strerror(-port));
    return port;
}

tf_peer *tf_start_gnutls_echo(int *port, const char *cert, const char *key, const char *priority,
                              const char *const *extra)
{
    tf_args a = { .n = 0 };

    *port = port_or_fail();
    /* --crlf keeps CR LF as sent; the echo is line-based and stops at NUL, so
     * send it TF_DATA_TEXT. */
    tf_args_add(&a, "gnutls-serv", "--echo", "--crlf", "-a", "-p", tf_fmt("%d", *port),
                "--x509certfile", cert, "--x509keyfile", key, NULL);
    if (priority)
        tf_args_add(&a, "--priority", priority, NULL);
    add_list(&a, extra);
    return tf_serve(&a, *port);
}

tf_peer *tf_start_socat_server(int *port, const char *cert, const char *key, const char *opts,
                               const char *exec)
{
    tf_args a = { .n = 0 };

    *port = port_or_fail();
    tf_args_add(&a, "socat", "-d",
                tf_fmt("OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,cert=%s,key=%s,verify=0%s",
                       *port, cert, key, opts ? opts : ""),
                tf_fmt("EXEC:%s", exec ? exec : "cat"), NULL);
    return tf_serve(&a, *port);
}

tf_peer *tf_start_s_server(int *port, const char *cert, const char *key, const char *const *extra)
{
    tf_args a = { .n = 0 };

    *port = port_or_fail();
    tf_args_add(&a, "openssl", "s_server", "-rev", "-accept", tf_fmt("127.0.0.1:%d", *port),
                "-cert", cert, "-key", key, NULL);
    add_list(&a, extra);
    return tf_serve(&a, *port);
}

static void check(int ret, const char *what)
{
    if (ret)
        fail_msg("%s refused: %s", what, strerror(-ret));
}

tlsflow_config *tf_client_config(const char *priority, const char *ca)
{
    tlsflow_config *cfg = NULL;

    check(tlsflow_config_new(&cfg, TLSFLOW_CLIENT), "tlsflow_config_new");
    if (priority)
        check(tlsflow_config_set_priority(cfg, priority), "tlsflow_config_set_priority");
    if (ca)
        check(tlsflow_config_set_ca_file(cfg, ca), "tlsflow_config_set_ca_file");
    check(tlsflow_config_set_handshake_timeout(cfg, (unsigned)tf_ms(10000)),
          "tlsflow_config_set_handshake_timeout");
    return cfg;
}

tlsflow_config *tf_server_config(const char *cert, const char *key, const char *priority)
{
    tlsflow_config *cfg = NULL;

    check(tlsflow_config_new(&cfg, TLSFLOW_SERVER), "tlsflow_config_new");
    if (cert)
        check(tlsflow_config_set_cert_file(cfg, cert, key), "tlsflow_config_set_cert_file");
    if (priority)
        check(tlsflow_config_set_priority(cfg, priority), "tlsflow_config_set_priority");
    check(tlsflow_config_set_handshake_timeout(cfg, (unsigned)tf_ms(10000)),
          "tlsflow_config_set_handshake_timeout");
    return cfg;
}

tlsflow_config *tf_config(tlsflow_role role, const char *priority, unsigned handshake_ms)
{
    tlsflow_config *cfg = role == TLSFLOW_SERVER ? tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, priority)
                                                 : tf_client_config(priority, TF_CA);

    if (handshake_ms)
        check(tlsflow_config_set_handshake_timeout(cfg, (unsigned)tf_ms((int)handshake_ms)),
              "tlsflow_config_set_handshake_timeout");
    return cfg;
}

tlsflow_config *tf_config_ktls(tlsflow_role role, const char *priority, tlsflow_ktls_mode mode)
{
    tlsflow_config *cfg = tf_config(role, priority, 0);

    check(tlsflow_config_set_ktls(cfg, mode), "tlsflow_config_set_ktls");
    return cfg;
}

tlsflow_loop *tf_loop_new(void)
{
    tlsflow_loop *loop = NULL;

    check(tlsflow_loop_new(&loop, 0), "tlsflow_loop_new");
    return loop;
}
