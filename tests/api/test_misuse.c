/* Misuse of the public API: every call refuses bad arguments with -EINVAL (and
 * never calls back), one read at a time, no write after close, configs freeze
 * at first use (-EBUSY), bad policy is refused at configuration time, and
 * callbacks never run inside the call that submitted their operation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tf_test.h"

static tf_done never;   /* a callback that must not run */

TF_TEST(test_loop_calls, 60)
{
    assert_int_equal(tlsflow_loop_new(NULL, 0), -EINVAL);
    assert_int_equal(tlsflow_loop_run(NULL), -EINVAL);
    assert_int_equal(tlsflow_loop_run_once(NULL, 0), -EINVAL);
    tlsflow_loop_stop(NULL);
    tlsflow_loop_free(NULL);
}

TF_TEST(test_config_calls, 60)
{
    tlsflow_config *c = NULL;
    const char *one[] = { "h2" };

    assert_int_equal(tlsflow_config_new(NULL, TLSFLOW_CLIENT), -EINVAL);
    assert_int_equal(tlsflow_config_new(&c, (tlsflow_role)7), -EINVAL);
    assert_null(c);
    tlsflow_config_free(NULL);

    assert_int_equal(tlsflow_config_set_cert_file(NULL, TF_ECDSA_CERT, TF_ECDSA_KEY), -EINVAL);
    assert_int_equal(tlsflow_config_set_ca_file(NULL, TF_CA), -EINVAL);
    assert_int_equal(tlsflow_config_set_verify(NULL, TLSFLOW_VERIFY_NONE), -EINVAL);
    assert_int_equal(tlsflow_config_set_priority(NULL, "NORMAL"), -EINVAL);
    assert_int_equal(tlsflow_config_set_alpn(NULL, one, 1), -EINVAL);
    assert_int_equal(tlsflow_config_set_ktls(NULL, TLSFLOW_KTLS_OFF), -EINVAL);
    assert_int_equal(tlsflow_config_set_handshake_timeout(NULL, 1), -EINVAL);

    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_set_cert_file(c, NULL, TF_ECDSA_KEY), -EINVAL);
    assert_int_equal(tlsflow_config_set_cert_file(c, TF_ECDSA_CERT, NULL), -EINVAL);
    assert_int_equal(tlsflow_config_set_ca_file(c, NULL), -EINVAL);
    assert_int_equal(tlsflow_config_set_verify(c, (tlsflow_verify)3), -EINVAL);
    assert_int_equal(tlsflow_config_set_verify(c, (tlsflow_verify)-1), -EINVAL);
    assert_int_equal(tlsflow_config_set_ktls(c, (tlsflow_ktls_mode)3), -EINVAL);
    assert_int_equal(tlsflow_config_set_priority(c, NULL), -EINVAL);
    assert_int_equal(tlsflow_config_set_priority(c, "NORMAL:+NO-SUCH-THING"), -EINVAL);
    assert_int_equal(tlsflow_config_set_priority(c, ""), -EINVAL);
    assert_int_equal(tlsflow_config_set_alpn(c, NULL, 1), -EINVAL);
    tlsflow_config_free(c);
}

TF_TEST(test_files, 60)
{
    tlsflow_config *c;
    char empty[] = "/tmp/tlsflow-empty-XXXXXX";
    int fd;

    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    assert_true(tlsflow_config_set_ca_file(c, TF_CERT("no-such-ca.pem")) < 0);
    assert_true(tlsflow_config_set_cert_file(c, TF_CERT("no-such.pem"), TF_CLIENT_KEY) < 0);
    assert_true(tlsflow_config_set_cert_file(c, TF_CLIENT_CERT, TF_CERT("no-such-key.pem")) < 0);
    /* A key that is not the certificate's. */
    assert_true(tlsflow_config_set_cert_file(c, TF_CLIENT_CERT, TF_ECDSA_KEY) < 0);
    /* A file without a certificate. */
    fd = mkstemp(empty);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not a certificate\n", 18), 18);
    close(fd);
    assert_true(tlsflow_config_set_ca_file(c, empty) < 0);
    unlink(empty);
    /* Still usable with good files. */
    assert_int_equal(tlsflow_config_set_ca_file(c, TF_CA), 0);
    assert_int_equal(tlsflow_config_set_cert_file(c, TF_CLIENT_CERT, TF_CLIENT_KEY), 0);
    tlsflow_config_free(c);
}

TF_TEST(test_alpn_limits, 60)
{
    tlsflow_config *c;
    char long_name[300];
    const char *nine[] = { "a", "b", "c", "d", "e", "f", "g", "h", "i" };
    const char *empty[] = { "h2", "" };
    const char *null_name[] = { "h2", NULL };
    const char *too_long[] = { long_name };

    memset(long_name, 'x', 256);
    long_name[256] = 0;
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_alpn(c, nine, 9), -EINVAL);
    assert_int_equal(tlsflow_config_set_alpn(c, nine, 8), 0);
    assert_int_equal(tlsflow_config_set_alpn(c, empty, 2), -EINVAL);
    assert_int_equal(tlsflow_config_set_alpn(c, null_name, 2), -EINVAL);
    assert_int_equal(tlsflow_config_set_alpn(c, too_long, 1), -EINVAL);
    /* 31 bytes: the most GnuTLS 3.7.9 takes (RFC 7301 allows 255). */
    long_name[32] = 0;
    assert_int_equal(tlsflow_config_set_alpn(c, too_long, 1), -EINVAL);
    long_name[31] = 0;
    assert_int_equal(tlsflow_config_set_alpn(c, too_long, 1), 0);
    assert_int_equal(tlsflow_config_set_alpn(c, NULL, 0), 0);
    tlsflow_config_free(c);
}

/* ---- flows ---- */

TF_TEST(test_opening_calls, 60)
{
    tf_env e;
    tlsflow_listener *ls = NULL;
    int sv[2], pfd[2], udp;

    tf_env_configs(&e, NULL, NULL);
    memset(&never, 0, sizeof(never));
    /* connect */
    assert_int_equal(tlsflow_connect(NULL, e.ccfg, "localhost", "1", tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_connect(e.loop, NULL, "localhost", "1", tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_connect(e.loop, e.ccfg, NULL, "1", tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_connect(e.loop, e.ccfg, "localhost", NULL, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_connect(e.loop, e.ccfg, "localhost", "1", NULL, &never), -EINVAL);
    assert_int_equal(tlsflow_connect(e.loop, e.scfg, "localhost", "1", tf_on_done, &never), -EINVAL);
    /* wrap_fd: the fd stays the caller's when refused */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(tlsflow_wrap_fd(NULL, e.ccfg, sv[0], "localhost", tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_wrap_fd(e.loop, NULL, sv[0], "localhost", tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_wrap_fd(e.loop, e.ccfg, -1, "localhost", tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_wrap_fd(e.loop, e.ccfg, sv[0], "localhost", NULL, &never), -EINVAL);
    assert_int_not_equal(fcntl(sv[0], F_GETFD), -1);
    assert_int_equal(pipe(pfd), 0);
    assert_int_equal(tlsflow_wrap_fd(e.loop, e.ccfg, pfd[0], "localhost", tf_on_done, &never), -EINVAL);
    assert_int_not_equal(fcntl(pfd[0], F_GETFD), -1);
    udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_int_equal(tlsflow_wrap_fd(e.loop, e.ccfg, udp, "localhost", tf_on_done, &never), -EINVAL);
    assert_int_not_equal(fcntl(udp, F_GETFD), -1);
    close(udp);
    close(pfd[0]);
    close(pfd[1]);
    close(sv[0]);
    close(sv[1]);
    /* listen */
    assert_int_equal(tlsflow_listen(NULL, e.scfg, "127.0.0.1", "0", tf_on_done, &never, &ls), -EINVAL);
    assert_int_equal(tlsflow_listen(e.loop, NULL, "127.0.0.1", "0", tf_on_done, &never, &ls), -EINVAL);
    assert_int_equal(tlsflow_listen(e.loop, e.scfg, "127.0.0.1", NULL, tf_on_done, &never, &ls), -EINVAL);
    assert_int_equal(tlsflow_listen(e.loop, e.scfg, "127.0.0.1", "0", NULL, &never, &ls), -EINVAL);
    assert_int_equal(tlsflow_listen(e.loop, e.scfg, "127.0.0.1", "0", tf_on_done, &never, NULL), -EINVAL);
    assert_int_equal(tlsflow_listen(e.loop, e.ccfg, "127.0.0.1", "0", tf_on_done, &never, &ls), -EINVAL);
    assert_null(ls);
    assert_int_equal(tlsflow_listener_port(NULL), -EINVAL);
    tlsflow_listener_close(NULL);
    /* Nothing was accepted: nothing is left to run, nobody is called. */
    tf_run_for(e.loop, 20);
    assert_int_equal(never.n, 0);
    tf_env_fini(&e);
}

TF_TEST(test_server_without_cert, 60)
{
    tlsflow_loop *loop;
    tlsflow_config *s;
    tlsflow_listener *ls = NULL;

    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    assert_int_equal(tlsflow_config_new(&s, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_listen(loop, s, "127.0.0.1", "0", tf_on_done, &never, &ls), -EINVAL);
    assert_null(ls);
    /* Refused use does not freeze the config. */
    assert_int_equal(tlsflow_config_set_cert_file(s, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
    assert_int_equal(tlsflow_listen(loop, s, "127.0.0.1", "0", tf_on_done, &never, &ls), 0);
    tlsflow_listener_close(ls);
    tlsflow_loop_free(loop);
    tlsflow_config_free(s);
}

TF_TEST(test_listen_used_port, 60)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t sl = sizeof(sin);
    tf_env e;
    tlsflow_listener *ls = NULL;
    char port[16];
    int fd;

    tf_env_configs(&e, NULL, NULL);
    /* A plain listening socket (no SO_REUSEPORT) holds the port. */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    snprintf(port, sizeof(port), "%u", ntohs(sin.sin_port));
    assert_int_equal(tlsflow_listen(e.loop, e.scfg, "127.0.0.1", port, tf_on_done, &never, &ls),
                     -EADDRINUSE);
    assert_null(ls);
    /* A port that is no number, a host that is not ours. */
    assert_true(tlsflow_listen(e.loop, e.scfg, "127.0.0.1", "no-such-service-x", tf_on_done, &never, &ls) < 0);
    assert_true(tlsflow_listen(e.loop, e.scfg, "192.0.2.1", "0", tf_on_done, &never, &ls) < 0);
    assert_null(ls);
    close(fd);
    tf_env_fini(&e);
}

/* Each way getaddrinfo fails has its own -errno (include/tlsflow.h), not one
 * -EADDRNOTAVAIL for all; none of these hosts reaches a DNS server (glibc
 * refuses their characters first). */
TF_TEST(test_listen_resolve_errors, 60)
{
    static const char *const bad_hosts[] = { "::zz", "not a host", "1.2.3.4:80" };
    tf_env e;
    tlsflow_listener *ls = NULL;

    tf_env_configs(&e, NULL, NULL);
    /* A port that is neither a number nor a TCP service. */
    assert_int_equal(tlsflow_listen(e.loop, e.scfg, "127.0.0.1", "no-such-service-x", tf_on_done,
                                    &never, &ls), -EINVAL);
    assert_int_equal(tlsflow_listen(e.loop, e.scfg, NULL, "no-such-service-x", tf_on_done, &never, &ls),
                     -EINVAL);
    assert_int_equal(tlsflow_listen(e.loop, e.scfg, "127.0.0.1", "-1", tf_on_done, &never, &ls),
                     -EINVAL);
    /* A host that is no address literal and no name. */
    for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
        int ret = tlsflow_listen(e.loop, e.scfg, bad_hosts[i], "0", tf_on_done, &never, &ls);
        if (ret != -ENOENT)
            fail_msg("listen on \"%s\": %d (%s); want -ENOENT", bad_hosts[i], ret, strerror(-ret));
    }
    /* An address that resolves but is not this host's: bind's own errno. */
    assert_int_equal(tlsflow_listen(e.loop, e.scfg, "192.0.2.1", "0", tf_on_done, &never, &ls),
                     -EADDRNOTAVAIL);
    /* Good ones still listen. */
    assert_int_equal(tlsflow_listen(e.loop, e.scfg, "127.0.0.1", "0", tf_on_done, &never, &ls), 0);
    tlsflow_listener_close(ls);
    assert_int_equal(never.n, 0);
    tf_env_fini(&e);
}

TF_TEST(test_flow_calls, 60)
{
    tf_env e;
    tlsflow *s, *c;
    struct iovec iov[2] = { { NULL, 1 }, { (void *)"x", 1 } };
    tlsflow_info info;
    tf_done rd = { 0 }, rd2 = { 0 };

    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    memset(&never, 0, sizeof(never));

    assert_int_equal(tlsflow_read(NULL, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_read(c, NULL, &never), -EINVAL);
    assert_int_equal(tlsflow_write(NULL, "x", 1, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_write(c, NULL, 1, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_write(c, "x", 1, NULL, &never), -EINVAL);
    assert_int_equal(tlsflow_writev(NULL, iov + 1, 1, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_writev(c, NULL, 1, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_writev(c, iov + 1, -1, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_writev(c, iov + 1, IOV_MAX + 1, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_writev(c, iov, 2, tf_on_done, &never), -EINVAL);   /* NULL base, len 1 */
    assert_int_equal(tlsflow_writev(c, iov + 1, 1, NULL, &never), -EINVAL);
    assert_int_equal(tlsflow_sendfile(NULL, 0, 0, 1, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_sendfile(c, -1, 0, 1, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_sendfile(c, 0, -1, 1, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_sendfile(c, 0, 0, 1, NULL, &never), -EINVAL);
    assert_int_equal(tlsflow_close(NULL, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_close(c, NULL, &never), -EINVAL);
    assert_int_equal(tlsflow_get_info(NULL, &info), -EINVAL);
    assert_int_equal(tlsflow_get_info(c, NULL), -EINVAL);
    assert_int_equal(tlsflow_fd(NULL), -EINVAL);
    assert_true(tlsflow_fd(c) >= 0);
    tlsflow_free(NULL);

    /* One read at a time. */
    assert_int_equal(tlsflow_read(c, tf_on_done, &rd), 0);
    assert_int_equal(tlsflow_read(c, tf_on_done, &rd2), -EINVAL);
    assert_int_equal(tlsflow_write(s, "ping", 4, tf_on_done, &never), 0);
    TF_RUN_UNTIL(e.loop, rd.n == 1 && never.n == 1, 5000);
    assert_int_equal(rd.status, TLSFLOW_OK);
    assert_int_equal(rd.len, 4);
    assert_int_equal(rd2.n, 0);
    never.n = 0;

    /* No write after close; no second close. */
    assert_int_equal(tlsflow_close(c, tf_on_done, &rd2), 0);
    assert_int_equal(tlsflow_write(c, "x", 1, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_writev(c, iov + 1, 1, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_sendfile(c, 0, 0, 1, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_close(c, tf_on_done, &never), -EINVAL);
    tf_run_for(e.loop, 50);
    assert_int_equal(never.n, 0);
    /* ... nor after the close completed. */
    assert_int_equal(tlsflow_close(s, tf_on_done, &rd), 0);
    TF_RUN_UNTIL(e.loop, rd2.n == 1, 5000);
    assert_int_equal(rd2.status, TLSFLOW_OK);
    assert_int_equal(tlsflow_write(c, "x", 1, tf_on_done, &never), -EINVAL);
    assert_int_equal(tlsflow_close(c, tf_on_done, &never), -EINVAL);
    tlsflow_free(c);
    tlsflow_free(s);
    tf_run_for(e.loop, 20);
    assert_int_equal(never.n, 0);
    tf_env_fini(&e);
}

TF_TEST(test_frozen_config, 60)
{
    tf_env e;
    const char *one[] = { "h2" };
    tlsflow *s, *c;

    tf_env_init(&e);   /* the listener used the server config */
    tf_env_pair(&e, "localhost", &s, &c);   /* the connect used the client config */
    for (int i = 0; i < 2; i++) {
        tlsflow_config *cfg = i ? e.ccfg : e.scfg;
        assert_int_equal(tlsflow_config_set_cert_file(cfg, TF_ECDSA_CERT, TF_ECDSA_KEY), -EBUSY);
        assert_int_equal(tlsflow_config_set_ca_file(cfg, TF_CA), -EBUSY);
        assert_int_equal(tlsflow_config_set_verify(cfg, TLSFLOW_VERIFY_NONE), -EBUSY);
        assert_int_equal(tlsflow_config_set_priority(cfg, "NORMAL"), -EBUSY);
        assert_int_equal(tlsflow_config_set_alpn(cfg, one, 1), -EBUSY);
        assert_int_equal(tlsflow_config_set_ktls(cfg, TLSFLOW_KTLS_OFF), -EBUSY);
        assert_int_equal(tlsflow_config_set_handshake_timeout(cfg, 1), -EBUSY);
    }
    tlsflow_free(c);
    tlsflow_free(s);
    /* Still frozen with no flow left. */
    assert_int_equal(tlsflow_config_set_handshake_timeout(e.ccfg, 1), -EBUSY);
    tf_env_fini(&e);
}

/* A config used by wrap_fd is frozen too. */
TF_TEST(test_frozen_by_wrap, 60)
{
    tlsflow_loop *loop;
    tlsflow_config *c;
    tf_done d = { 0 };
    int sv[2];

    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_ca_file(c, TF_CA), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(tlsflow_wrap_fd(loop, c, sv[0], "localhost", tf_on_done, &d), 0);
    assert_int_equal(tlsflow_config_set_verify(c, TLSFLOW_VERIFY_NONE), -EBUSY);
    close(sv[1]);
    TF_RUN_UNTIL(loop, d.n == 1, 5000);
    assert_null(d.flow);
    assert_int_equal(d.status, TLSFLOW_ERROR);
    tlsflow_loop_free(loop);
    tlsflow_config_free(c);
}

/* ---- callbacks run from the loop only ---- */

struct reent {
    tf_env  e;
    tf_done rd, wr, cl, sfree_rd;
    tlsflow      *c, *s;
};

TF_TEST(test_no_callback_inside_call, 60)
{
    struct reent r;
    tf_done bad = { 0 }, wrap = { 0 };
    int sv[2];

    memset(&r, 0, sizeof(r));
    tf_env_init(&r.e);
    /* Failing opens still call back later, from the loop. */
    assert_int_equal(TF_CALL(tlsflow_connect(r.e.loop, r.e.ccfg, "name.invalid", "443", tf_on_done, &bad)), 0);
    assert_int_equal(bad.n, 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    close(sv[1]);
    assert_int_equal(TF_CALL(tlsflow_wrap_fd(r.e.loop, r.e.ccfg, sv[0], "localhost", tf_on_done, &wrap)), 0);
    assert_int_equal(wrap.n, 0);
    assert_int_equal(TF_CALL(tlsflow_connect(r.e.loop, r.e.ccfg, "localhost", r.e.port, tf_on_done, &r.e.con)), 0);
    assert_int_equal(r.e.con.n, 0);
    TF_RUN_UNTIL(r.e.loop, bad.n && wrap.n && r.e.con.n && r.e.acc.n, 5000);
    assert_int_equal(bad.status, TLSFLOW_ERROR);
    assert_int_equal(wrap.status, TLSFLOW_ERROR);
    assert_int_equal(r.e.con.status, TLSFLOW_OK);
    r.c = r.e.con.flow;
    r.s = r.e.acc.flow;
    /* A write, a read with data already there, a close: none inside the call. */
    assert_int_equal(TF_CALL(tlsflow_write(r.s, "abc", 3, tf_on_done, &r.wr)), 0);
    TF_RUN_UNTIL(r.e.loop, r.wr.n == 1, 5000);
    tf_run_for(r.e.loop, 20);
    assert_int_equal(TF_CALL(tlsflow_read(r.c, tf_on_done, &r.rd)), 0);
    assert_int_equal(r.rd.n, 0);
    TF_RUN_UNTIL(r.e.loop, r.rd.n == 1, 5000);
    assert_int_equal(r.rd.len, 3);
    /* A read pending when the flow is freed: canceled, later. */
    assert_int_equal(tlsflow_read(r.s, tf_on_done, &r.sfree_rd), 0);
    tf_run_for(r.e.loop, 20);
    (void)TF_CALL((tlsflow_free(r.s), 0));
    assert_int_equal(r.sfree_rd.n, 0);
    TF_RUN_UNTIL(r.e.loop, r.sfree_rd.n == 1, 5000);
    assert_int_equal(r.sfree_rd.error.code, TLSFLOW_E_CANCELED);
    assert_int_equal(TF_CALL(tlsflow_close(r.c, tf_on_done, &r.cl)), 0);
    assert_int_equal(r.cl.n, 0);
    TF_RUN_UNTIL(r.e.loop, r.cl.n == 1, 5000);
    tlsflow_free(r.c);
    assert_false(bad.reentered || wrap.reentered || r.e.con.reentered || r.e.acc.reentered ||
                 r.wr.reentered || r.rd.reentered || r.sfree_rd.reentered || r.cl.reentered);
    tf_env_fini(&r.e);
}

/* A numeric port above 65535 is refused; getaddrinfo would keep its low 16
 * bits ("99999" is 34463, "65536" an ephemeral port). */
TF_TEST(test_listen_port_range, 60)
{
    static const char *const over[] = { "65536", "99999", "+99999", "4294967296",
                                        "99999999999999999999999" };
    tf_env e;
    tlsflow_listener *ls = NULL;

    tf_env_configs(&e, NULL, NULL);
    for (size_t i = 0; i < sizeof(over) / sizeof(over[0]); i++) {
        int ret = tlsflow_listen(e.loop, e.scfg, "127.0.0.1", over[i], tf_on_done, &never, &ls);
        if (ret != -EINVAL)
            fail_msg("listen on port \"%s\": %d; want -EINVAL", over[i], ret);
        assert_null(ls);
    }
    assert_int_equal(tlsflow_listen(e.loop, e.scfg, "127.0.0.1", "00000", tf_on_done, &never, &ls), 0);
    assert_true(tlsflow_listener_port(ls) > 0);
    tlsflow_listener_close(ls);
    assert_int_equal(never.n, 0);
    tf_env_fini(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_loop_calls),
        TF_CASE(test_config_calls),
        TF_CASE(test_files),
        TF_CASE(test_alpn_limits),
        TF_CASE(test_opening_calls),
        TF_CASE(test_server_without_cert),
        TF_CASE(test_listen_used_port),
        TF_CASE(test_listen_resolve_errors),
        TF_CASE(test_flow_calls),
        TF_CASE(test_frozen_config),
        TF_CASE(test_frozen_by_wrap),
        TF_CASE(test_no_callback_inside_call),
        TF_CASE(test_listen_port_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
