/* Reload without dropping: tlsflow_listener_set_config gives new handshakes
 * the new config while flows already open keep theirs (configs are reference
 * counted: the caller frees both at once, the flows carry on); and
 * tlsflow-serve on SIGHUP, under 1,000 sequential requests and 16 concurrent
 * ones (each open 100 ms, a new one as one ends; in the VM 100 and 4): none
 * fails, every request after the reload gets the new
 * certificate, and a bad file on a later reload keeps the last good one
 * serving. */
#include <errno.h>
#include <fcntl.h>
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
#include <gnutls/x509.h>

#include "tf_test.h"

/* The public-key algorithm of the peer's leaf certificate. */
static int peer_pk(const tlsflow *flow)
{
    gnutls_x509_crt_t crt;
    gnutls_datum_t d;
    const void *der;
    size_t len;
    int pk;

    if (tlsflow_get_peer_certificate(flow, 0, &der, &len) != 0)
        return -1;
    d.data = (unsigned char *)(uintptr_t)der;
    d.size = (unsigned)len;
    if (gnutls_x509_crt_init(&crt) < 0)
        return -1;
    pk = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0 ? -1 : gnutls_x509_crt_get_pk_algorithm(crt, NULL);
    gnutls_x509_crt_deinit(crt);
    return pk;
}

/* ---- The library: set_config with flows open ---- */

TF_TEST(set_config_keeps_open_flows, 60)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *a = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, NULL);
    tlsflow_config *b = tf_server_config(TF_RSA_CERT, TF_RSA_KEY, NULL);
    tlsflow_config *c = tf_client_config(NULL, TF_CA);
    tf_echo e;
    tf_done old = { 0 }, fresh = { 0 };
    tf_xfer x;

    tf_echo_listen(&e, loop, a);
    tlsflow_config_free(a);       /* the listener keeps it */
    if (tf_connect_fd_sync(loop, c, e.port, &old, 5000))
        fail_msg("first connect: %s", old.message);
    assert_int_equal(peer_pk(old.flow), GNUTLS_PK_ECDSA);
    tf_xfer_start(&x, old.flow, 64 << 10, 64 << 10, 1, TF_DATA_BINARY);
    tf_run_until(loop, tf_xfer_cond, &x, 10000, "the first echo");
    tf_xfer_release(&x);

    assert_int_equal(tlsflow_listener_set_config(e.ls, b), 0);
    tlsflow_config_free(b);       /* the listener's reference is the last */
    /* The old config is now held by its open flow alone: it keeps working. */
    tf_xfer_start(&x, old.flow, 1 << 20, 1 << 20, 2, TF_DATA_BINARY);
    x.offset = 0;
    tf_run_until(loop, tf_xfer_cond, &x, 20000, "the echo across the reload");
    if (x.failed || x.received != (1u << 20))
        fail_msg("the open flow after set_config: %s", x.failed ? x.message : "EOF");
    tf_xfer_release(&x);
    if (tf_connect_fd_sync(loop, c, e.port, &fresh, 5000))
        fail_msg("connect after set_config: %s", fresh.message);
    assert_int_equal(peer_pk(fresh.flow), GNUTLS_PK_RSA);
    tlsflow_free(old.flow);
    tlsflow_free(fresh.flow);
    tf_run_for(loop, 50);
    tf_echo_close(&e);
    tlsflow_loop_free(loop);      /* the last flows drop the last references */
    tlsflow_config_free(c);
}

TF_TEST(set_config_misuse, 30)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *s = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, NULL);
    tlsflow_config *c = tf_client_config(NULL, TF_CA);
    tlsflow_config *empty;
    tlsflow_listener *ls;

    assert_int_equal(tlsflow_config_new(&empty, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_listen(loop, s, "127.0.0.1", "0", tf_accepts_on_flow, NULL, &ls), 0);
    assert_int_equal(tlsflow_listener_set_config(NULL, s), -EINVAL);
    assert_int_equal(tlsflow_listener_set_config(ls, NULL), -EINVAL);
    assert_int_equal(tlsflow_listener_set_config(ls, c), -EINVAL);      /* a client config */
    assert_int_equal(tlsflow_listener_set_config(ls, empty), -EINVAL);  /* no certificate */
    assert_int_equal(tlsflow_listener_set_config(ls, s), 0);            /* the same one again */
    tlsflow_listener_close(ls);
    tlsflow_loop_free(loop);
    tlsflow_config_free(s);
    tlsflow_config_free(c);
    tlsflow_config_free(empty);
}

/* ---- tlsflow-serve: SIGHUP under load ---- */

#ifdef TF_SERVE_BIN
static const char *serve_bin = TF_SERVE_BIN;   /* or argv[1] (the VM copies what the command names) */
/* In the VM (TCG: every handshake's crypto emulated) a tenth of it, on
 * the kernel path. */
#define NREQ 20000
static int nseq = 1000, nconc = 16;

struct driver;
struct req {
    struct driver *d;
    tlsflow       *flow;
    int            serial;
    bool           seq, hold;
    tlsflow_timer *pause;         /* concurrent: each stays open a while before its ping */
    char           buf[8];
    size_t         got;
};

struct driver {
    tlsflow_loop   *loop;
    tlsflow_config *ccfg;
    char            port[16];
    int             seq_done, seq_target, conc, next_serial;
    bool            stop, hup_sent;
    int             failures;
    char            first_failure[320];
    int             pk[NREQ];            /* per serial: the leaf's key, 0 not opened */
    bool            before_hup[NREQ];
    struct req     *held;                /* open across the reload */
    bool            held_done;
};

static void start(struct driver *d, bool seq, bool hold);

static void failed(struct req *r, const char *what, const tlsflow_result *res)
{
    struct driver *d = r->d;

    if (!d->failures++)
        snprintf(d->first_failure, sizeof(d->first_failure), "request %d (%s): %s: %s", r->serial,
                 r->seq ? "sequential" : r->hold ? "held" : "concurrent", what,
                 tlsflow_error_message(res->error));
}

static void finished(struct req *r)
{
    struct driver *d = r->d;

    if (r->hold)
        d->held_done = true;
    else if (r->seq) {
        d->seq_done++;
        if (d->seq_done < d->seq_target)
            start(d, true, false);
    } else {
        d->conc--;
        if (!d->stop)
            start(d, false, false);
    }
    tlsflow_timer_free(r->pause);
    free(r);
}

static void on_closed(tlsflow *f, const tlsflow_result *res, void *arg)
{
    struct req *r = arg;

    if (res->status == TLSFLOW_ERROR)
        failed(r, "close", res);
    tlsflow_free(f);
    finished(r);
}

static void on_read(tlsflow *f, const tlsflow_result *res, void *arg)
{
    struct req *r = arg;

    if (res->status != TLSFLOW_OK) {
        failed(r, "read", res);
        tlsflow_free(f);
        finished(r);
        return;
    }
    if (res->len > sizeof(r->buf) - r->got)
        fail_msg("echo longer than the request");
    memcpy(r->buf + r->got, res->data, res->len);
    r->got += res->len;
    if (r->got < 5) {
        tlsflow_read(f, on_read, r);
        return;
    }
    if (memcmp(r->buf, "ping\n", 5))
        fail_msg("echo differs");
    if (tlsflow_close(f, on_closed, r)) {
        tlsflow_free(f);
        finished(r);
    }
}

static void on_written(tlsflow *f, const tlsflow_result *res, void *arg)
{
    struct req *r = arg;

    (void)f;
    if (res->status != TLSFLOW_OK)
        failed(r, "write", res);   /* the read fails too */
}

static void send_ping(struct req *r)
{
    if (tlsflow_write(r->flow, "ping\n", 5, on_written, r) || tlsflow_read(r->flow, on_read, r))
        fail_msg("write/read refused");
}

static void on_pause(tlsflow_timer *t, void *arg)
{
    (void)t;
    send_ping(arg);
}

static void on_open(tlsflow *f, const tlsflow_result *res, void *arg)
{
    struct req *r = arg;
    struct driver *d = r->d;

    if (res->status != TLSFLOW_OK) {
        failed(r, "open", res);
        finished(r);
        return;
    }
    r->flow = f;
    d->pk[r->serial] = peer_pk(f);
    d->before_hup[r->serial] = !d->hup_sent;
    if (r->hold)
        d->held = r;              /* pings once the reload is in */
    else if (r->seq)
        send_ping(r);
    else if (tlsflow_timer_new(d->loop, &r->pause) ||
             tlsflow_timer_start(r->pause, 100, 0, on_pause, r))
        fail_msg("timer refused");
}

static void start(struct driver *d, bool seq, bool hold)
{
    struct req *r = calloc(1, sizeof(*r));

    assert_non_null(r);
    if (d->next_serial >= NREQ)
        fail_msg("more than %d requests", NREQ);
    r->d = d;
    r->seq = seq;
    r->hold = hold;
    r->serial = d->next_serial++;
    if (!seq && !hold)
        d->conc++;
    if (tlsflow_connect(d->loop, d->ccfg, "127.0.0.1", d->port, on_open, r))
        fail_msg("tlsflow_connect refused");
}

static void install(const char *dir, const char *name, const char *src)
{
    char tmp[512], dst[512], cmd[1200];

    snprintf(tmp, sizeof(tmp), "%s/.%s.new", dir, name);
    snprintf(dst, sizeof(dst), "%s/%s", dir, name);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", src, tmp);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(rename(tmp, dst), 0);    /* atomic: the server reads one or the other */
}

static bool log_has(tf_peer *p, const char *s, int times)
{
    char *log = tf_peer_log(p);
    int n = 0;

    for (const char *q = log; (q = strstr(q, s)); q += strlen(s))
        n++;
    free(log);
    return n >= times;
}

/* Runs the sequential chain on until seq_target of them are done (the
 * concurrent ones run beside it). */
static void run_phase(struct driver *d, tf_peer *serve, int target)
{
    tf_deadline dl = tf_deadline_in(120000);

    d->seq_target = target;
    start(d, true, false);

    while (d->seq_done < d->seq_target) {
        if (tf_now_ms() > dl.end)
            fail_msg("after %d ms: %d of %d sequential requests done (%d in all, %d failed)", dl.ms,
                     d->seq_done, target, d->next_serial, d->failures);
        tf_run_step(d->loop, &dl, "the sequential requests");
        if (tf_peer_exited(serve))
            fail_msg("tlsflow-serve exited");
    }
}

TF_TEST(serve_sighup_under_load, 240)
{
    struct driver *d = calloc(1, sizeof(*d));
    char dir[] = "/tmp/tlsflow-reload-XXXXXX";
    char cert[600], key[600];
    tf_args a = { .n = 0 };
    tf_peer *serve;
    int port = tf_free_port(), reload_serial, bad_serial, ecdsa_before = 0, rsa_after = 0;

    assert_non_null(d);
    assert_non_null(mkdtemp(dir));
    install(dir, "cert.pem", TF_ECDSA_CERT);
    install(dir, "key.pem", TF_ECDSA_KEY);
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    tf_args_add(&a, serve_bin, "--cert", cert, "--key", key, "--echo", "--threads", "2", "--port",
                tf_fmt("%d", port), "--stats-interval", "0", NULL);
    serve = tf_serve(&a, port);
    if (!log_has(serve, "loaded certificate", 1))
        fail_msg("tlsflow-serve did not say what it loaded");

    d->loop = tf_loop_new();
    d->ccfg = tf_client_config(NULL, TF_CA);
    /* Every request a full handshake: each shows the certificate served now. */
    assert_int_equal(tlsflow_config_set_resumption(d->ccfg, 0), 0);
    snprintf(d->port, sizeof(d->port), "%d", port);

    /* Phase 1: the first 400 sequential, 16 concurrent beside them, and one
     * connection that stays open across the reload. */
    start(d, false, true);
    for (int i = 0; i < nconc; i++)
        start(d, false, false);
    run_phase(d, serve, nseq * 2 / 5);
    TF_RUN_UNTIL(d->loop, d->held || d->failures, 10000);

    /* The reload: new files, then SIGHUP; requests go on meanwhile. */
    install(dir, "cert.pem", TF_RSA_CERT);
    install(dir, "key.pem", TF_RSA_KEY);
    d->hup_sent = true;
    tf_peer_kill(serve, SIGHUP);
    TF_RUN_UNTIL(d->loop, log_has(serve, "reloaded certificate", 1), 10000);
    /* Workers apply it through a post: give them a moment, then count. */
    tf_run_for(d->loop, 100);
    reload_serial = d->next_serial;
    /* The held connection started with the old config and still echoes. */
    send_ping(d->held);
    run_phase(d, serve, nseq * 4 / 5);
    TF_RUN_UNTIL(d->loop, d->held_done, 10000);

    /* A bad file: the reload fails, the last good certificate serves on. */
    install(dir, "cert.pem", TF_CERT("ca-key.pem"));
    tf_peer_kill(serve, SIGHUP);
    TF_RUN_UNTIL(d->loop, log_has(serve, "reload failed", 1), 10000);
    bad_serial = d->next_serial;
    run_phase(d, serve, nseq);
    d->stop = true;
    TF_RUN_UNTIL(d->loop, d->conc == 0, 20000);

    if (d->failures)
        fail_msg("%d of %d requests failed; the first: %s", d->failures, d->next_serial, d->first_failure);
    for (int i = 0; i < d->next_serial; i++) {
        if (d->before_hup[i] && d->pk[i] != GNUTLS_PK_ECDSA)
            fail_msg("request %d, opened before the SIGHUP, got key %d", i, d->pk[i]);
        if (i >= reload_serial && d->pk[i] != GNUTLS_PK_RSA)
            fail_msg("request %d, after the reload (from %d; bad file from %d), got key %d", i, reload_serial,
                     bad_serial, d->pk[i]);
        ecdsa_before += d->before_hup[i];
        rsa_after += i >= reload_serial;
    }
    assert_int_equal(d->pk[0], GNUTLS_PK_ECDSA);   /* the held one */
    fprintf(stderr, "%d requests (%d sequential): %d before the SIGHUP, %d after the reload\n", d->next_serial,
            d->seq_done, ecdsa_before, rsa_after);
    assert_true(d->seq_done == nseq && ecdsa_before > nconc && rsa_after > nconc);
    tf_peer_kill(serve, SIGTERM);
    assert_true(tf_peer_wait(serve, 10000) == 0);
    tlsflow_loop_free(d->loop);
    tlsflow_config_free(d->ccfg);
    unlink(cert);
    unlink(key);
    rmdir(dir);
    free(d);
}
#endif

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(set_config_keeps_open_flows),
        TF_CASE(set_config_misuse),
#ifdef TF_SERVE_BIN
        TF_CASE(serve_sighup_under_load),
#endif
    };

#ifdef TF_SERVE_BIN
    if (argc > 1)
        serve_bin = argv[1];
    if (tf_expect_ktls()) {
        nseq = 100;
        nconc = 4;
    }
#endif
    (void)argc;
    (void)argv;
    return cmocka_run_group_tests_name("certs_reload", tests, NULL, NULL);
}
