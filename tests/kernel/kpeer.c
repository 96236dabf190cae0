/* See kpeer.h. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "kflow.h"
#include "kpeer.h"
#include "ktls/ktls.h"
#include "tf_test.h"

int kt_prelude(void)
{
    if (kflow_kernel_has_tls()) {
        /* The library's once-per-process probe makes kTLS sockets of its own:
         * run it now, so that tls_stat deltas count only the flows. */
        tf_ktls_probe_ulp();
        return 0;
    }
    if (kflow_expect_ktls()) {
        fprintf(stderr, "TLSFLOW_EXPECT_KTLS=1 but the tls ULP is missing\n");
        return 1;
    }
    fprintf(stderr, "skip: this kernel has no tls ULP\n");
    return TF_SKIP;
}

void kt_stat_read(kt_stat *s)
{
    FILE *f = fopen("/proc/net/tls_stat", "r");
    char name[32];
    long v;

    memset(s, 0, sizeof(*s));
    if (!f)
        return;
    while (s->n < KT_STAT_MAX && fscanf(f, "%31s %ld", name, &v) == 2) {
        snprintf(s->name[s->n], sizeof(s->name[0]), "%s", name);
        s->val[s->n++] = v;
    }
    fclose(f);
}

long kt_stat_get(const kt_stat *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->name[i], name) == 0)
            return s->val[i];
    return -1;
}

long kt_stat_delta(const kt_stat *before, const kt_stat *after, const char *name)
{
    long a = kt_stat_get(after, name), b = kt_stat_get(before, name);

    if (a < 0 || b < 0)
        fail_msg("/proc/net/tls_stat has no %s", name);
    return a - b;
}

void kt_stat_expect(const kt_stat *before, const kt_stat *after, const char *name, long lo, long hi)
{
    long d = kt_stat_delta(before, after, name);

    if (d < lo || d > hi)
        fail_msg("/proc/net/tls_stat %s moved by %ld; want %ld..%ld", name, d, lo, hi);
}

int kt_has_rekey(void)
{
    return tf_ktls_has_rekey(0x0304);
}

tlsflow_config *kt_client_config(const char *priority)
{
    tlsflow_config *cfg = tf_client_config(priority, TF_CA);

    assert_int_equal(tlsflow_config_set_ktls(cfg, TLSFLOW_KTLS_REQUIRE), 0);
    return cfg;
}

tlsflow_config *kt_server_config(const char *priority)
{
    tlsflow_config *cfg = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, priority);

    assert_int_equal(tlsflow_config_set_ktls(cfg, TLSFLOW_KTLS_REQUIRE), 0);
    return cfg;
}

static bool called(void *arg)
{
    return ((tf_done *)arg)->n > 0;
}

int kt_connect(tlsflow_loop *loop, const tlsflow_config *cfg, int port, tf_done *out)
{
    int fd = tf_tcp_connect(port), ret;

    memset(out, 0, sizeof(*out));
    if (fd < 0)
        fail_msg("connect to port %d: %s", port, strerror(-fd));
    ret = tlsflow_wrap_fd(loop, cfg, fd, "localhost", tf_on_done, out);
    if (ret)
        fail_msg("tlsflow_wrap_fd refused: %s", strerror(-ret));
    tf_run_until(loop, called, out, 15000, "the handshake");
    if (out->status == TLSFLOW_OK && !out->flow)
        fail_msg("open succeeded without a flow");
    return out->status == TLSFLOW_OK ? 0 : -1;
}

const char *kt_name(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    va_end(ap);
    return s;
}

int kt_kernel_rekeys(void)
{
    struct utsname u;
    unsigned major = 0, minor = 0;

    if (uname(&u) || sscanf(u.release, "%u.%u", &major, &minor) != 2)
        fail_msg("uname");
    return major > 6 || (major == 6 && minor >= 14);
}

void kt_read_one(tlsflow_loop *loop, tlsflow *flow, tf_done *out)
{
    memset(out, 0, sizeof(*out));
    assert_int_equal(tlsflow_read(flow, tf_on_done, out), 0);
    tf_run_until(loop, called, out, 15000, "a read");
}

/* ---- the GnuTLS server thread ---- */

static int fail_at(kpeer *kp, int ret, const char *where)
{
    if (!kp->gerr) {
        kp->gerr = ret;
        snprintf(kp->where, sizeof(kp->where), "%s", where);
    }
    return ret;
}

static int send_all(kpeer *kp, gnutls_session_t s, const uint8_t *buf, size_t len)
{
    while (len) {
        ssize_t n = gnutls_record_send(s, buf, len);

        if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
            continue;
        if (n < 0)
            return fail_at(kp, (int)n, "send");
        buf += n;
        len -= (size_t)n;
        kp->sent += (size_t)n;
    }
    return 0;
}

/* After an alert: half-close and read until the client goes, so that the
 * client's unread data never turns our close into a reset. */
static void drain(int fd)
{
    char buf[16384];

    shutdown(fd, SHUT_WR);
    while (recv(fd, buf, sizeof(buf), 0) > 0)
        ;
}

static void peer_session(kpeer *kp, int fd)
{
    gnutls_certificate_credentials_t cred = NULL;
    gnutls_datum_t tkey = { NULL, 0 };
    gnutls_session_t s = NULL;
    tf_checker chk;
    uint8_t buf[16384];
    int ret;

    tf_checker_init(&chk, kp->seed, kp->kind);
    if ((ret = gnutls_certificate_allocate_credentials(&cred)) < 0 ||
        (ret = gnutls_certificate_set_x509_key_file(cred, TF_ECDSA_CERT, TF_ECDSA_KEY,
                                                    GNUTLS_X509_FMT_PEM)) < 0) {
        fail_at(kp, ret, "credentials");
        goto out;
    }
    ret = gnutls_init(&s, GNUTLS_SERVER | (kp->tickets ? 0 : GNUTLS_NO_TICKETS));
    if (ret == 0)
        ret = gnutls_priority_set_direct(s, kp->priority ? kp->priority : "NORMAL", NULL);
    if (ret == 0)
        ret = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    if (ret == 0 && kp->tickets) {
        ret = gnutls_session_ticket_key_generate(&tkey);
        if (ret == 0)
            ret = gnutls_session_ticket_enable_server(s, &tkey);
    }
    if (ret < 0) {
        fail_at(kp, ret, "session");
        goto out;
    }
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, 15000);
    do
        ret = gnutls_handshake(s);
    while (ret < 0 && !gnutls_error_is_fatal(ret));
    if (ret < 0) {
        fail_at(kp, ret, "handshake");
        goto out;
    }

    for (size_t off = 0; off < kp->source;) {
        size_t n = kp->source - off < sizeof(buf) ? kp->source - off : sizeof(buf);

        tf_data_fill(buf, n, kp->seed, off, kp->kind);
        if (send_all(kp, s, buf, n) < 0)
            goto out;
        off += n;
    }
    if (kp->source && kp->cut)
        goto out;                      /* a bare FIN: no close_notify */
    if (kp->source && kp->alert) {
        gnutls_alert_send(s, GNUTLS_AL_FATAL, (gnutls_alert_description_t)kp->alert);
        drain(fd);
        goto out;
    }

    for (;;) {
        long long t0 = tf_now_ms();
        ssize_t n = gnutls_record_recv(s, buf, sizeof(buf));
        size_t before = kp->received;

        if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN) {
            /* GnuTLS also answers AGAIN after a post-handshake message
             * (the client's KeyUpdate); only SO_RCVTIMEO's is a timeout. */
            if (n == GNUTLS_E_AGAIN && tf_now_ms() - t0 >= 14000) {
                fail_at(kp, (int)n, "receive (timed out)");
                goto out;
            }
            kp->agains++;
            continue;
        }
        if (n == 0) {
            kp->close_notify = true;
            gnutls_bye(s, GNUTLS_SHUT_WR);
            goto out;
        }
        if (n < 0) {
            fail_at(kp, (int)n, "receive");
            goto out;
        }
        tf_checker_feed(&chk, buf, (size_t)n);
        kp->received += (size_t)n;
        if (kp->echo && send_all(kp, s, buf, (size_t)n) < 0)
            goto out;
        if (kp->ku_peer_at && before < kp->ku_peer_at && kp->received >= kp->ku_peer_at) {
            if ((ret = gnutls_session_key_update(s, GNUTLS_KU_PEER)) < 0) {
                fail_at(kp, ret, "key update (peer)");
                goto out;
            }
            kp->ku_done++;
        }
        if (kp->ku_at && before < kp->ku_at && kp->received >= kp->ku_at) {
            if ((ret = gnutls_session_key_update(s, 0)) < 0) {
                fail_at(kp, ret, "key update");
                goto out;
            }
            kp->ku_done++;
        }
        if (kp->alert && !kp->source && kp->received >= kp->alert_at) {
            gnutls_alert_send(s, GNUTLS_AL_FATAL, (gnutls_alert_description_t)kp->alert);
            drain(fd);
            goto out;
        }
    }
out:
    kp->mismatch = chk.bad;
    kp->bad_offset = chk.bad_offset;
    if (s)
        gnutls_deinit(s);
    if (cred)
        gnutls_certificate_free_credentials(cred);
    if (tkey.data)
        gnutls_free(tkey.data);
}

static void *peer_main(void *arg)
{
    kpeer *kp = arg;
    struct pollfd p = { kp->lfd, POLLIN, 0 };
    struct timeval tv = { 15, 0 };
    int fd;

    if (poll(&p, 1, 15000) != 1 || (fd = accept4(kp->lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
        fail_at(kp, -1, "accept");
        return NULL;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    peer_session(kp, fd);
    close(fd);
    return NULL;
}

void kpeer_start(kpeer *kp)
{
    kp->lfd = tf_tcp_listen(&kp->port);
    if (kp->lfd < 0)
        fail_msg("listen: %s", strerror(-kp->lfd));
    if (pthread_create(&kp->thread, NULL, peer_main, kp))
        fail_msg("pthread_create failed");
    kp->started = true;
}

void kpeer_join(kpeer *kp, int timeout_ms)
{
    struct timespec ts;

    if (!kp->started)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    if (pthread_timedjoin_np(kp->thread, NULL, &ts))
        fail_msg("the GnuTLS peer thread did not end within %d ms", timeout_ms);
    kp->started = false;
    close(kp->lfd);
}
