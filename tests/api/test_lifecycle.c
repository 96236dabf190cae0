/* A flow's life through the public API: free with operations pending (canceled,
 * from the loop, exactly once), free from callbacks, sticky errors, closes from
 * either side and half-closed reads, ordered writes, writev and sendfile byte
 * for byte, truncation, IPv6, connect failures, resumption (TLS 1.3 and 1.2),
 * certificate rejections and client certificates. */
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
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tf_test.h"

#define TLS12 "NORMAL:-VERS-ALL:+VERS-TLS1.2"

/* ---- free with operations pending ---- */

TF_TEST(test_free_read_pending, 60)
{
    tf_env e;
    tf_done rd = { 0 }, srd = { 0 };
    tlsflow *s, *c;

    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    assert_int_equal(tlsflow_read(c, tf_on_done, &rd), 0);
    assert_int_equal(tlsflow_read(s, tf_on_done, &srd), 0);
    tf_run_for(e.loop, 30);   /* the receive is in the kernel's hands now */
    assert_int_equal(rd.n, 0);
    tlsflow_free(c);
    assert_int_equal(rd.n, 0);
    TF_RUN_UNTIL(e.loop, rd.n == 1 && srd.n == 1, 5000);
    tf_run_for(e.loop, 30);
    assert_int_equal(rd.n, 1);
    assert_ptr_equal(rd.flow, c);
    assert_int_equal(rd.status, TLSFLOW_ERROR);
    assert_int_equal(rd.error.code, TLSFLOW_E_CANCELED);
    /* The peer learns the flow was cut, not closed. */
    assert_int_equal(srd.status, TLSFLOW_ERROR);
    assert_int_equal(srd.error.code, TLSFLOW_E_TRUNCATED);
    tlsflow_free(s);
    tf_env_fini(&e);
}

/* The same without the loop running between the read and the free. */
TF_TEST(test_free_read_just_submitted, 60)
{
    tf_env e;
    tf_done rd = { 0 };
    tlsflow *s, *c;

    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    tf_run_for(e.loop, 30);
    assert_int_equal(tlsflow_read(c, tf_on_done, &rd), 0);
    tlsflow_free(c);
    TF_RUN_UNTIL(e.loop, rd.n == 1, 5000);
    tf_run_for(e.loop, 30);
    assert_int_equal(rd.n, 1);
    assert_int_equal(rd.error.code, TLSFLOW_E_CANCELED);
    tlsflow_free(s);
    tf_env_fini(&e);
}

static int norder;

static void on_ordered(tlsflow *f, const tlsflow_result *r, void *arg)
{
    tf_done *d = arg;

    tf_on_done(f, r, d);
    norder++;
}

TF_TEST(test_free_everything_pending, 60)
{
    tf_env e;
    tf_done w[3], cl, rd;
    static uint8_t big[256 * 1024];
    tlsflow *s, *c;

    memset(w, 0, sizeof(w));
    memset(&cl, 0, sizeof(cl));
    memset(&rd, 0, sizeof(rd));
    norder = 0;
    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    tf_run_for(e.loop, 20);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tlsflow_write(c, big, sizeof(big), on_ordered, &w[i]), 0);
    assert_int_equal(tlsflow_read(c, on_ordered, &rd), 0);
    assert_int_equal(tlsflow_close(c, on_ordered, &cl), 0);
    tlsflow_free(c);
    TF_RUN_UNTIL(e.loop, norder == 5, 5000);
    tf_run_for(e.loop, 30);
    assert_int_equal(norder, 5);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w[i].n, 1);
        assert_int_equal(w[i].error.code, TLSFLOW_E_CANCELED);
    }
    assert_int_equal(rd.n, 1);
    assert_int_equal(rd.error.code, TLSFLOW_E_CANCELED);
    assert_int_equal(cl.n, 1);
    assert_int_equal(cl.error.code, TLSFLOW_E_CANCELED);
    tlsflow_free(s);
    tf_env_fini(&e);
}

/* ---- free from inside callbacks ---- */

static void free_on_open(tlsflow *f, const tlsflow_result *r, void *arg)
{
    tf_on_done(f, r, arg);
    if (f)
        tlsflow_free(f);
}

struct wfree {
    tf_done first, rest[4], rd;
};

static void free_on_first_write(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct wfree *w = arg;

    tf_on_done(f, r, &w->first);
    tlsflow_free(f);
    tlsflow_free(f);   /* twice is harmless */
}

static void free_on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    tf_on_done(f, r, arg);
    tlsflow_free(f);
}

TF_TEST(test_free_from_callbacks, 60)
{
    tf_env e;
    tf_done con = { 0 }, srd = { 0 };
    struct wfree w;
    tlsflow *s, *c;

    memset(&w, 0, sizeof(w));
    tf_env_init(&e);
    /* From the open callback. */
    assert_int_equal(tlsflow_connect(e.loop, e.ccfg, "localhost", e.port, free_on_open, &con), 0);
    TF_RUN_UNTIL(e.loop, con.n == 1 && e.acc.n == 1, 5000);
    assert_int_equal(con.status, TLSFLOW_OK);
    tlsflow_free(e.acc.flow);

    /* From a write callback, with more writes and a read pending. */
    tf_env_pair(&e, "localhost", &s, &c);
    assert_int_equal(tlsflow_write(c, "first", 5, free_on_first_write, &w), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(tlsflow_write(c, "more", 4, tf_on_done, &w.rest[i]), 0);
    assert_int_equal(tlsflow_read(c, tf_on_done, &w.rd), 0);
    TF_RUN_UNTIL(e.loop, w.first.n && w.rest[3].n && w.rd.n, 5000);
    tf_run_for(e.loop, 30);
    assert_int_equal(w.first.n, 1);
    assert_int_equal(w.first.status, TLSFLOW_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(w.rest[i].n, 1);
        /* Either out before the free or canceled by it. */
        assert_true(w.rest[i].status == TLSFLOW_OK || w.rest[i].error.code == TLSFLOW_E_CANCELED);
    }
    assert_int_equal(w.rd.n, 1);
    assert_int_equal(w.rd.error.code, TLSFLOW_E_CANCELED);

    /* From a read callback. */
    assert_int_equal(tlsflow_read(s, free_on_read, &srd), 0);
    TF_RUN_UNTIL(e.loop, srd.n == 1, 5000);
    tf_run_for(e.loop, 30);
    assert_int_equal(srd.n, 1);
    tf_env_fini(&e);
}

/* ---- sticky errors ---- */

TF_TEST(test_sticky_error, 60)
{
    /* An application-data record whose tag cannot authenticate. */
    static const uint8_t forged[] = {
        0x17, 0x03, 0x03, 0x00, 0x20,
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
    };
    tf_env e;
    tf_done rd = { 0 }, later[5];
    struct iovec iov = { (void *)"v", 1 };
    tlsflow *s, *c;
    int tmp;

    memset(later, 0, sizeof(later));
    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    assert_int_equal(tlsflow_get_info(s, &(tlsflow_info){ 0 }), 0);
    {
        tlsflow_info si;
        assert_int_equal(tlsflow_get_info(s, &si), 0);
        if (si.ktls_tx)
            TF_SKIP_TEST("the send key is in the kernel: raw bytes would go through its record layer");
    }
    assert_int_equal(send(tlsflow_fd(s), forged, sizeof(forged), MSG_NOSIGNAL), (ssize_t)sizeof(forged));
    assert_int_equal(tlsflow_read(c, tf_on_done, &rd), 0);
    TF_RUN_UNTIL(e.loop, rd.n == 1, 5000);
    assert_int_equal(rd.status, TLSFLOW_ERROR);
    assert_int_equal(rd.error.code, TLSFLOW_E_BAD_RECORD);

    tmp = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    assert_int_equal(tlsflow_read(c, tf_on_done, &later[0]), 0);
    assert_int_equal(tlsflow_write(c, "w", 1, tf_on_done, &later[1]), 0);
    assert_int_equal(tlsflow_writev(c, &iov, 1, tf_on_done, &later[2]), 0);
    assert_int_equal(tlsflow_sendfile(c, tmp, 0, 10, tf_on_done, &later[3]), 0);
    assert_int_equal(tlsflow_close(c, tf_on_done, &later[4]), 0);
    TF_RUN_UNTIL(e.loop, later[0].n && later[1].n && later[2].n && later[3].n && later[4].n, 5000);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(later[i].n, 1);
        assert_int_equal(later[i].status, TLSFLOW_ERROR);
        assert_int_equal(later[i].error.code, rd.error.code);
        assert_int_equal(later[i].error.detail, rd.error.detail);
    }
    close(tmp);
    tlsflow_free(c);
    tlsflow_free(s);
    tf_env_fini(&e);
}

/* ---- closing ---- */

TF_TEST(test_close_from_server, 60)
{
    tf_env e;
    tf_done scl = { 0 }, ccl = { 0 };
    tf_sink cin;
    tlsflow *s, *c;

    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    tf_sink_start(c, &cin, 16);
    assert_int_equal(tlsflow_write(s, "bye soon", 8, tf_on_done, &(tf_done){ 0 }), 0);
    assert_int_equal(tlsflow_close(s, tf_on_done, &scl), 0);
    TF_RUN_UNTIL(e.loop, cin.eof || cin.errors, 5000);
    assert_int_equal(cin.errors, 0);
    assert_int_equal(cin.got, 8);
    assert_memory_equal(cin.buf, "bye soon", 8);
    assert_int_equal(scl.n, 0);   /* the server waits for the client's close */
    assert_int_equal(tlsflow_close(c, tf_on_done, &ccl), 0);
    TF_RUN_UNTIL(e.loop, scl.n && ccl.n, 5000);
    assert_int_equal(ccl.status, TLSFLOW_OK);
    assert_int_equal(scl.status, TLSFLOW_OK);
    /* After EOF, a read says EOF again. */
    {
        tf_done again = { 0 };
        assert_int_equal(tlsflow_read(c, tf_on_done, &again), 0);
        TF_RUN_UNTIL(e.loop, again.n, 5000);
        assert_int_equal(again.status, TLSFLOW_EOF);
    }
    tlsflow_free(c);
    tlsflow_free(s);
    free(cin.buf);
    tf_env_fini(&e);
}

struct half {
    tlsflow      *s;
    tf_sink sin;
    tf_done swr, scl;
};

static void half_srv_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct half *h = arg;

    if (r->status == TLSFLOW_EOF) {
        /* The client closed its side: this side may still talk. */
        assert_int_equal(tlsflow_write(f, "late data", 9, tf_on_done, &h->swr), 0);
        assert_int_equal(tlsflow_close(f, tf_on_done, &h->scl), 0);
        h->sin.eof++;
        return;
    }
    fail_msg("server read: status %d", r->status);
}

TF_TEST(test_read_after_close, 60)
{
    tf_env e;
    struct half h;
    tf_done ccl = { 0 };
    tf_sink cin;
    tlsflow *s, *c;

    memset(&h, 0, sizeof(h));
    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    assert_int_equal(tlsflow_read(s, half_srv_read, &h), 0);
    assert_int_equal(tlsflow_close(c, tf_on_done, &ccl), 0);
    tf_sink_start(c, &cin, 64);   /* reads stay allowed after close */
    TF_RUN_UNTIL(e.loop, (cin.eof || cin.errors) && ccl.n && h.scl.n, 5000);
    assert_int_equal(cin.errors, 0);
    assert_int_equal(cin.got, 9);
    assert_memory_equal(cin.buf, "late data", 9);
    assert_int_equal(h.swr.status, TLSFLOW_OK);
    assert_int_equal(ccl.status, TLSFLOW_OK);
    assert_int_equal(h.scl.status, TLSFLOW_OK);
    tlsflow_free(c);
    tlsflow_free(s);
    free(cin.buf);
    tf_env_fini(&e);
}

/* ---- writes ---- */

#define NW 16
static int wseq[NW], nwseq;

static void on_seq_write(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    assert_int_equal(r->status, TLSFLOW_OK);
    wseq[nwseq++] = (int)(intptr_t)arg;
}

TF_TEST(test_writes_in_order, 60)
{
    tf_env e;
    tf_sink sin;
    size_t sizes[NW], total = 0, off = 0;
    uint8_t *data;
    tlsflow *s, *c;

    for (int i = 0; i < NW; i++) {
        sizes[i] = (size_t)(i % 4 == 0 ? 1 : i * 7919 % 100000 + 1);
        total += sizes[i];
    }
    data = malloc(total);
    tf_data_fill(data, total, 7, 0, TF_DATA_BINARY);
    nwseq = 0;
    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    tf_sink_start(s, &sin, total);
    for (int i = 0; i < NW; i++) {
        assert_int_equal(tlsflow_write(c, data + off, sizes[i], on_seq_write, (void *)(intptr_t)i), 0);
        off += sizes[i];
    }
    TF_RUN_UNTIL(e.loop, nwseq == NW && sin.got == total, 10000);
    for (int i = 0; i < NW; i++)
        assert_int_equal(wseq[i], i);
    assert_memory_equal(sin.buf, data, total);
    tlsflow_free(c);
    tlsflow_free(s);
    free(sin.buf);
    free(data);
    tf_env_fini(&e);
}

TF_TEST(test_writev_many, 60)
{
    tf_env e;
    tf_sink sin;
    tf_done wd = { 0 }, zd = { 0 };
    struct iovec iov[64];
    size_t total = 0, off = 0;
    uint8_t *data;
    tlsflow *s, *c;

    data = malloc(64 * 5000);
    tf_data_fill(data, 64 * 5000, 3, 0, TF_DATA_BINARY);
    for (int i = 0; i < 64; i++) {
        size_t n = i % 5 == 0 ? 0 : (size_t)(i * 131 % 5000) + 1;
        iov[i].iov_base = i % 5 == 0 ? (i % 10 ? NULL : data) : data + off;
        iov[i].iov_len = n;
        off += n;
        total += n;
    }
    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    tf_sink_start(s, &sin, total);
    assert_int_equal(tlsflow_writev(c, iov, 64, tf_on_done, &wd), 0);
    memset(iov, 0xA5, sizeof(iov));   /* the array was copied at the call */
    assert_int_equal(tlsflow_writev(c, iov, 0, tf_on_done, &zd), 0);   /* nothing: still completes */
    TF_RUN_UNTIL(e.loop, wd.n && zd.n && sin.got == total, 10000);
    assert_int_equal(wd.status, TLSFLOW_OK);
    assert_int_equal(wd.len, total);
    assert_int_equal(zd.status, TLSFLOW_OK);
    assert_int_equal(zd.len, 0);
    assert_memory_equal(sin.buf, data, total);
    tlsflow_free(c);
    tlsflow_free(s);
    free(sin.buf);
    free(data);
    tf_env_fini(&e);
}

TF_TEST(test_sendfile, 60)
{
    char path[] = "/tmp/tlsflow-sendfile-XXXXXX";
    const size_t size = 300000, off = 1234, len = 250001;
    tf_env e;
    tf_sink sin;
    tf_done sd = { 0 }, zd = { 0 };
    uint8_t *data;
    tlsflow *s, *c;
    int fd;

    data = malloc(size);
    tf_data_fill(data, size, 11, 0, TF_DATA_BINARY);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, data, size), (ssize_t)size);
    tf_env_init(&e);
    assert_int_equal(tlsflow_config_set_ktls(e.ccfg, TLSFLOW_KTLS_OFF), 0);   /* the userspace path */
    tf_env_pair(&e, "localhost", &s, &c);
    tf_sink_start(s, &sin, len);
    assert_int_equal(tlsflow_sendfile(c, fd, (off_t)off, len, tf_on_done, &sd), 0);
    assert_int_equal(tlsflow_sendfile(c, fd, 0, 0, tf_on_done, &zd), 0);
    TF_RUN_UNTIL(e.loop, sd.n && zd.n && sin.got == len, 10000);
    assert_int_equal(sd.status, TLSFLOW_OK);
    assert_int_equal(sd.len, len);
    assert_int_equal(zd.status, TLSFLOW_OK);
    assert_memory_equal(sin.buf, data + off, len);
    tlsflow_free(c);
    tlsflow_free(s);
    free(sin.buf);

    /* A file shorter than asked is an error, not a hang. */
    tf_env_pair(&e, "localhost", &s, &c);
    tf_sink_start(s, &sin, size);
    memset(&sd, 0, sizeof(sd));
    assert_int_equal(tlsflow_sendfile(c, fd, (off_t)(size - 10), 100, tf_on_done, &sd), 0);
    TF_RUN_UNTIL(e.loop, sd.n, 5000);
    assert_int_equal(sd.status, TLSFLOW_ERROR);
    tlsflow_free(c);
    tlsflow_free(s);
    free(sin.buf);
    close(fd);
    free(data);
    tf_env_fini(&e);
}

/* ---- truncation ---- */

TF_TEST(test_truncation, 60)
{
    tf_env e;
    tf_sink cin;
    tlsflow *s, *c;

    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    tf_sink_start(c, &cin, 16);
    assert_int_equal(tlsflow_write(s, "partial", 7, tf_on_done, &(tf_done){ 0 }), 0);
    TF_RUN_UNTIL(e.loop, cin.got == 7, 5000);
    assert_int_equal(shutdown(tlsflow_fd(s), SHUT_RDWR), 0);   /* no close_notify */
    TF_RUN_UNTIL(e.loop, cin.eof || cin.errors, 5000);
    assert_int_equal(cin.eof, 0);
    assert_int_equal(cin.errors, 1);
    assert_int_equal(cin.error.code, TLSFLOW_E_TRUNCATED);
    tlsflow_free(c);
    tlsflow_free(s);
    free(cin.buf);
    tf_env_fini(&e);
}

/* ---- addresses ---- */

static int has_ipv6_loopback(void)
{
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

    if (fd < 0)
        return 0;
    ok = bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
    close(fd);
    return ok;
}

TF_TEST(test_ipv6, 60)
{
    tf_env e;
    tf_sink sin;
    tlsflow_info info;
    tlsflow *s, *c;

    if (!has_ipv6_loopback())
        TF_SKIP_TEST("no IPv6 loopback");
    tf_env_configs(&e, NULL, NULL);
    tf_env_listen(&e, "::1");
    tf_env_pair(&e, "::1", &s, &c);
    assert_int_equal(tlsflow_get_info(c, &info), 0);
    assert_string_equal(info.server_name, "::1");
    tf_sink_start(s, &sin, 5);
    assert_int_equal(tlsflow_write(c, "six?6", 5, tf_on_done, &(tf_done){ 0 }), 0);
    TF_RUN_UNTIL(e.loop, sin.got == 5, 5000);
    assert_memory_equal(sin.buf, "six?6", 5);
    tlsflow_free(c);
    tlsflow_free(s);
    free(sin.buf);
    tf_env_fini(&e);
}

TF_TEST(test_connect_refused, 60)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t sl = sizeof(sin);
    tf_env e;
    tf_done d = { 0 };
    char port[16];
    int fd;

    tf_env_configs(&e, NULL, NULL);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    snprintf(port, sizeof(port), "%u", ntohs(sin.sin_port));
    /* Bound, not listening: a connect is refused. */
    assert_int_equal(tlsflow_connect(e.loop, e.ccfg, "127.0.0.1", port, tf_on_done, &d), 0);
    TF_RUN_UNTIL(e.loop, d.n, 5000);
    tf_run_for(e.loop, 20);
    assert_int_equal(d.n, 1);
    assert_null(d.flow);
    assert_int_equal(d.status, TLSFLOW_ERROR);
    assert_int_equal(d.error.code, TLSFLOW_E_SYSTEM);
    assert_int_equal(d.error.detail, ECONNREFUSED);
    close(fd);
    tf_env_fini(&e);
}

TF_TEST(test_resolve_failure, 60)
{
    tf_env e;
    tf_done d = { 0 };

    tf_env_configs(&e, NULL, NULL);
    assert_int_equal(tlsflow_connect(e.loop, e.ccfg, "no-such-host.invalid", "443", tf_on_done, &d), 0);
    TF_RUN_UNTIL(e.loop, d.n, 10000);
    assert_null(d.flow);
    assert_int_equal(d.status, TLSFLOW_ERROR);
    assert_int_equal(d.error.code, TLSFLOW_E_RESOLVE);
    assert_true(d.error.detail != 0);
    assert_non_null(strstr(tlsflow_error_message(d.error), gai_strerror(d.error.detail)));
    tf_env_fini(&e);
}

/* ---- resumption ---- */

static void resumption(const char *priority, unsigned version)
{
    tf_env e;
    tf_sink cin;
    tlsflow_info ci, si;
    tlsflow *s, *c;

    tf_env_configs(&e, NULL, NULL);
    if (priority)
        assert_int_equal(tlsflow_config_set_priority(e.ccfg, priority), 0);
    tf_env_listen(&e, "127.0.0.1");
    tf_env_pair(&e, "localhost", &s, &c);
    assert_int_equal(tlsflow_get_info(c, &ci), 0);
    assert_int_equal(ci.tls_version, version);
    assert_int_equal(ci.resumed, 0);
    /* A TLS 1.3 ticket follows the handshake: read past it. */
    tf_sink_start(c, &cin, 2);
    assert_int_equal(tlsflow_write(s, "hi", 2, tf_on_done, &(tf_done){ 0 }), 0);
    TF_RUN_UNTIL(e.loop, cin.got == 2, 5000);
    tlsflow_free(c);
    tlsflow_free(s);
    free(cin.buf);
    tf_run_for(e.loop, 20);

    tf_env_pair(&e, "localhost", &s, &c);
    assert_int_equal(tlsflow_get_info(c, &ci), 0);
    assert_int_equal(tlsflow_get_info(s, &si), 0);
    assert_int_equal(ci.tls_version, version);
    assert_int_equal(ci.resumed, 1);
    assert_int_equal(si.resumed, 1);
    /* The resumed flow works. */
    tf_sink_start(c, &cin, 3);
    assert_int_equal(tlsflow_write(s, "abc", 3, tf_on_done, &(tf_done){ 0 }), 0);
    TF_RUN_UNTIL(e.loop, cin.got == 3, 5000);
    tlsflow_free(c);
    tlsflow_free(s);
    free(cin.buf);
    tf_env_fini(&e);
}

TF_TEST(test_resumption_tls13, 60)
{
    resumption(NULL, 0x0304);
}

TF_TEST(test_resumption_tls12, 60)
{
    resumption(TLS12, 0x0303);
}

/* ---- certificates ---- */

/* Opens a flow expecting failure on the client; returns its error. */
static tlsflow_error try_connect(tf_env *e, const char *host)
{
    tf_done d = { 0 };

    memset(&e->acc, 0, sizeof(e->acc));
    assert_int_equal(tlsflow_connect(e->loop, e->ccfg, host, e->port, tf_on_done, &d), 0);
    TF_RUN_UNTIL(e->loop, d.n && e->acc.n, 5000);
    tf_run_for(e->loop, 20);
    assert_int_equal(d.n, 1);
    assert_int_equal(e->acc.n, 1);
    if (d.status == TLSFLOW_OK)
        fail_msg("the handshake with %s succeeded", host);
    assert_null(d.flow);
    /* The server learns of it too, and no flow is left behind. */
    assert_null(e->acc.flow);
    assert_int_equal(e->acc.status, TLSFLOW_ERROR);
    return d.error;
}

static tlsflow_error cert_case(const char *cert, const char *key, const char *host, char *msg,
                               size_t msgsz)
{
    tf_env e;
    tlsflow_error err;

    tf_env_configs(&e, cert, key);
    tf_env_listen(&e, "127.0.0.1");
    err = try_connect(&e, host);
    snprintf(msg, msgsz, "%s", tlsflow_error_message(err));
    tf_env_fini(&e);
    return err;
}

TF_TEST(test_certificate_errors, 60)
{
    char m1[512], m2[512], m3[512];
    tlsflow_error wrong, untrusted, expired;

    wrong = cert_case(TF_WRONGHOST_CERT, TF_WRONGHOST_KEY, "127.0.0.1", m1, sizeof(m1));
    untrusted = cert_case(TF_UNTRUSTED_CERT, TF_UNTRUSTED_KEY, "localhost", m2, sizeof(m2));
    expired = cert_case(TF_EXPIRED_CERT, TF_EXPIRED_KEY, "localhost", m3, sizeof(m3));
    print_message("wrong host: %s\nuntrusted: %s\nexpired: %s\n", m1, m2, m3);
    assert_int_equal(wrong.code, TLSFLOW_E_CERTIFICATE);
    assert_int_equal(untrusted.code, TLSFLOW_E_CERTIFICATE);
    assert_int_equal(expired.code, TLSFLOW_E_CERTIFICATE);
    assert_true(wrong.detail & GNUTLS_CERT_UNEXPECTED_OWNER);
    assert_true(untrusted.detail & GNUTLS_CERT_SIGNER_NOT_FOUND);
    assert_true(expired.detail & GNUTLS_CERT_EXPIRED);
    assert_string_not_equal(m1, m2);
    assert_string_not_equal(m2, m3);
    assert_string_not_equal(m1, m3);
}

/* A client that does not verify takes any certificate, any name. */
TF_TEST(test_verify_none, 60)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    tf_env e;
    tf_done d = { 0 };
    tlsflow_info info;
    int fd;

    tf_env_configs(&e, TF_UNTRUSTED_CERT, TF_UNTRUSTED_KEY);
    assert_int_equal(tlsflow_config_set_verify(e.ccfg, TLSFLOW_VERIFY_NONE), 0);
    tf_env_listen(&e, "127.0.0.1");
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sin.sin_port = htons((uint16_t)atoi(e.port));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(tlsflow_wrap_fd(e.loop, e.ccfg, fd, "wrong.name.example", tf_on_done, &d), 0);
    TF_RUN_UNTIL(e.loop, d.n && e.acc.n, 5000);
    if (d.status != TLSFLOW_OK)
        fail_msg("client: %s", tlsflow_error_message(d.error));
    assert_int_equal(e.acc.status, TLSFLOW_OK);
    assert_int_equal(tlsflow_get_info(d.flow, &info), 0);
    assert_string_equal(info.server_name, "wrong.name.example");
    assert_int_equal(tlsflow_get_info(e.acc.flow, &info), 0);
    assert_non_null(info.server_name);   /* the SNI the client sent */
    assert_string_equal(info.server_name, "wrong.name.example");
    tlsflow_free(d.flow);
    tlsflow_free(e.acc.flow);
    tf_env_fini(&e);
}

static void client_cert(int with_cert, int tls12)
{
    tf_env e;
    tf_done d = { 0 }, rd = { 0 };

    tf_env_configs(&e, NULL, NULL);
    assert_int_equal(tlsflow_config_set_verify(e.scfg, TLSFLOW_VERIFY_REQUIRED), 0);
    assert_int_equal(tlsflow_config_set_ca_file(e.scfg, TF_CA), 0);
    if (with_cert)
        assert_int_equal(tlsflow_config_set_cert_file(e.ccfg, TF_CLIENT_CERT, TF_CLIENT_KEY), 0);
    if (tls12)
        assert_int_equal(tlsflow_config_set_priority(e.ccfg, TLS12), 0);
    tf_env_listen(&e, "127.0.0.1");
    assert_int_equal(tlsflow_connect(e.loop, e.ccfg, "localhost", e.port, tf_on_done, &d), 0);
    TF_RUN_UNTIL(e.loop, d.n && e.acc.n, 5000);
    if (with_cert) {
        if (d.status != TLSFLOW_OK || e.acc.status != TLSFLOW_OK)
            fail_msg("client %s / server %s", tlsflow_error_message(d.error),
                     tlsflow_error_message(e.acc.error));
        tlsflow_free(d.flow);
        tlsflow_free(e.acc.flow);
    } else {
        assert_null(e.acc.flow);
        assert_int_equal(e.acc.status, TLSFLOW_ERROR);
        if (e.acc.error.code != TLSFLOW_E_CERTIFICATE)
            fail_msg("server (TLS 1.%d): expected a certificate error, got %s", tls12 ? 2 : 3,
                     tlsflow_error_message(e.acc.error));
        if (d.status == TLSFLOW_OK) {
            /* TLS 1.3: the client finished first and learns on its next read. */
            assert_int_equal(tlsflow_read(d.flow, tf_on_done, &rd), 0);
            TF_RUN_UNTIL(e.loop, rd.n, 5000);
            assert_int_equal(rd.status, TLSFLOW_ERROR);
            if (rd.error.code != TLSFLOW_E_ALERT)
                fail_msg("client read: expected an alert, got %s", tlsflow_error_message(rd.error));
            tlsflow_free(d.flow);
        } else if (d.error.code != TLSFLOW_E_ALERT) {
            fail_msg("client: expected an alert, got %s", tlsflow_error_message(d.error));
        }
    }
    tf_env_fini(&e);
}

TF_TEST(test_client_cert_required, 60)
{
    client_cert(1, 0);
    client_cert(1, 1);
    client_cert(0, 0);
    client_cert(0, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_free_read_pending),
        TF_CASE(test_free_read_just_submitted),
        TF_CASE(test_free_everything_pending),
        TF_CASE(test_free_from_callbacks),
        TF_CASE(test_sticky_error),
        TF_CASE(test_close_from_server),
        TF_CASE(test_read_after_close),
        TF_CASE(test_writes_in_order),
        TF_CASE(test_writev_many),
        TF_CASE(test_sendfile),
        TF_CASE(test_truncation),
        TF_CASE(test_ipv6),
        TF_CASE(test_connect_refused),
        TF_CASE(test_resolve_failure),
        TF_CASE(test_resumption_tls13),
        TF_CASE(test_resumption_tls12),
        TF_CASE(test_certificate_errors),
        TF_CASE(test_verify_none),
        TF_CASE(test_client_cert_required),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
