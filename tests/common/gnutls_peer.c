/* The GnuTLS peer of tf_gnutls_peer.h. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tf_gnutls_peer.h"

#define DEADLINE_MS 15000

static int fail_at(tf_gnutls_peer *p, int ret, const char *where)
{
    if (!p->gerr) {
        p->gerr = ret;
        snprintf(p->where, sizeof(p->where), "%s", where);
    }
    return ret;
}

/* One byte per segment: TCP_NODELAY and a pause, so that the other side
 * really reads the flight in tiny pieces. */
static ssize_t byte_push(gnutls_transport_ptr_t ptr, const void *buf, size_t len)
{
    tf_gnutls_peer *p = ptr;
    const uint8_t *b = buf;

    for (size_t i = 0; i < len; i++) {
        if (send(p->fd, b + i, 1, MSG_NOSIGNAL) != 1)
            return i ? (ssize_t)i : -1;
        usleep(200);
    }
    return (ssize_t)len;
}

static ssize_t plain_push(gnutls_transport_ptr_t ptr, const void *buf, size_t len)
{
    tf_gnutls_peer *p = ptr;

    return send(p->fd, buf, len, MSG_NOSIGNAL);
}

static ssize_t plain_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
    tf_gnutls_peer *p = ptr;

    return recv(p->fd, buf, len, 0);
}

static int accept_one(tf_gnutls_peer *p)
{
    struct pollfd pl = { p->lfd, POLLIN, 0 };

    if (poll(&pl, 1, tf_ms(DEADLINE_MS)) != 1 ||
        (p->fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
        p->fd = -1;
        return fail_at(p, -1, "accept");
    }
    return 0;
}

static int session_init(tf_gnutls_peer *p)
{
    int ret;

    if ((ret = gnutls_certificate_allocate_credentials(&p->cred)) < 0)
        return fail_at(p, ret, "credentials");
    if (p->server)
        ret = gnutls_certificate_set_x509_key_file(p->cred, TF_ECDSA_CERT, TF_ECDSA_KEY,
                                                   GNUTLS_X509_FMT_PEM);
    else
        ret = gnutls_certificate_set_x509_trust_file(p->cred, TF_CA, GNUTLS_X509_FMT_PEM);
    if (ret < 0)
        return fail_at(p, ret, "credentials");
    /* A server without a ticket key sends no tickets anyway; the flag says so. */
    if ((ret = gnutls_init(&p->s, p->server ? GNUTLS_SERVER | GNUTLS_NO_TICKETS : GNUTLS_CLIENT)) < 0) {
        p->s = NULL;
        return fail_at(p, ret, "session");
    }
    ret = p->priority ? gnutls_priority_set_direct(p->s, p->priority, NULL)
                      : gnutls_set_default_priority(p->s);
    if (ret < 0)
        return fail_at(p, ret, "priority");
    if ((ret = gnutls_credentials_set(p->s, GNUTLS_CRD_CERTIFICATE, p->cred)) < 0)
        return fail_at(p, ret, "session");
    if (!p->server && (ret = gnutls_server_name_set(p->s, GNUTLS_NAME_DNS, "localhost", 9)) < 0)
        return fail_at(p, ret, "session");
    gnutls_transport_set_ptr(p->s, p);
    gnutls_transport_set_push_function(p->s, p->one_byte_segments ? byte_push : plain_push);
    gnutls_transport_set_pull_function(p->s, plain_pull);   /* SO_RCVTIMEO is the deadline */
    return 0;
}

static void *peer_main(void *arg)
{
    tf_gnutls_peer *p = arg;
    struct timeval tv = { tf_ms(DEADLINE_MS) / 1000, 0 };
    int one = 1, ret;

    p->hs_ret = GNUTLS_E_INTERNAL_ERROR;
    if (p->lfd >= 0 && accept_one(p) < 0)
        goto out;
    setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (session_init(p) < 0)
        goto out;
    do {
        ret = gnutls_handshake(p->s);
    } while (ret < 0 && !gnutls_error_is_fatal(ret) && ret != GNUTLS_E_AGAIN);
    p->hs_ret = ret;
    if (ret < 0) {
        fail_at(p, ret, "handshake");
        goto out;
    }
    gnutls_transport_set_push_function(p->s, plain_push);
    (p->script ? p->script : tf_gnutls_peer_serve)(p);
out:
    __atomic_store_n(&p->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void start(tf_gnutls_peer *p)
{
    p->done = 0;
    if (pthread_create(&p->th, NULL, peer_main, p))
        fail_msg("pthread_create failed");
    p->started = true;
}

void tf_gnutls_peer_start(tf_gnutls_peer *p, int fd)
{
    p->fd = fd;
    p->lfd = -1;
    start(p);
}

void tf_gnutls_peer_listen(tf_gnutls_peer *p)
{
    p->fd = -1;
    p->lfd = tf_tcp_listen(&p->port);
    if (p->lfd < 0)
        fail_msg("listen: %s", strerror(-p->lfd));
    start(p);
}

bool tf_gnutls_peer_done(void *p)
{
    return __atomic_load_n(&((tf_gnutls_peer *)p)->done, __ATOMIC_ACQUIRE) != 0;
}

void tf_gnutls_peer_join(tf_gnutls_peer *p, int timeout_ms)
{
    struct timespec ts;
    long ms = tf_ms(timeout_ms);

    if (!p->started)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    if (pthread_timedjoin_np(p->th, NULL, &ts))
        fail_msg("the GnuTLS peer thread did not end within %ld ms", ms);
    p->started = false;
    if (p->lfd >= 0)
        close(p->lfd);
    p->lfd = -1;
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    if (p->s)
        gnutls_deinit(p->s);
    p->s = NULL;
    if (p->cred)
        gnutls_certificate_free_credentials(p->cred);
    p->cred = NULL;
}

/* ---- for scripts ---- */

long tf_gnutls_peer_send(tf_gnutls_peer *p, const void *buf, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n = gnutls_record_send(p->s, (const char *)buf + off, len - off);

        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            continue;
        if (n < 0)
            return n;
        off += (size_t)n;
        p->sent += (size_t)n;
    }
    return (long)off;
}

long tf_gnutls_peer_recv(tf_gnutls_peer *p, size_t max)
{
    char buf[16384];
    size_t got = 0;

    while (got < max) {
        ssize_t n = gnutls_record_recv(p->s, buf, sizeof(buf));

        if (n <= 0)
            break;
        got += (size_t)n;
    }
    p->received += got;
    return (long)got;
}

void tf_gnutls_peer_hangup(tf_gnutls_peer *p, bool reset)
{
    if (p->fd < 0)
        return;
    if (reset)
        tf_tcp_reset(p->fd);
    else
        close(p->fd);
    p->fd = -1;
}

/* ---- the default script ---- */

static int send_all(tf_gnutls_peer *p, const uint8_t *buf, size_t len)
{
    long n = tf_gnutls_peer_send(p, buf, len);

    return n < 0 ? fail_at(p, (int)n, "send") : 0;
}

/* After an alert: half-close and read until the other side goes, so that
 * its unread data never turns our close into a reset. */
static void alert_and_drain(tf_gnutls_peer *p)
{
    char buf[16384];

    gnutls_alert_send(p->s, GNUTLS_AL_FATAL, (gnutls_alert_description_t)p->alert);
    shutdown(p->fd, SHUT_WR);
    while (recv(p->fd, buf, sizeof(buf), 0) > 0)
        ;
}

static int key_update(tf_gnutls_peer *p, size_t before, size_t at, unsigned flags, const char *what)
{
    int ret;

    if (!at || before >= at || p->received < at)
        return 0;
    if ((ret = gnutls_session_key_update(p->s, flags)) < 0)
        return fail_at(p, ret, what);
    p->ku_done++;
    return 0;
}

static void serve(tf_gnutls_peer *p, tf_checker *chk)
{
    uint8_t buf[16384];

    for (size_t off = 0; off < p->source;) {
        size_t n = p->source - off < sizeof(buf) ? p->source - off : sizeof(buf);

        tf_data_fill(buf, n, p->seed, off, p->kind);
        if (send_all(p, buf, n) < 0)
            return;
        off += n;
    }
    if (p->source && p->cut)
        return;                        /* a bare FIN: no close_notify */
    if (p->source && p->alert) {
        alert_and_drain(p);
        return;
    }
    for (;;) {
        long long t0 = tf_now_ms();
        ssize_t n = gnutls_record_recv(p->s, buf, sizeof(buf));
        size_t before = p->received;

        if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN) {
            /* GnuTLS also answers AGAIN after a post-handshake message
             * (the other side's KeyUpdate); only SO_RCVTIMEO's is a timeout. */
            if (n == GNUTLS_E_AGAIN && tf_now_ms() - t0 >= tf_ms(DEADLINE_MS) - 1000) {
                fail_at(p, (int)n, "receive (timed out)");
                return;
            }
            continue;
        }
        if (n == 0) {
            p->close_notify = true;
            gnutls_bye(p->s, GNUTLS_SHUT_WR);
            return;
        }
        if (n < 0) {
            fail_at(p, (int)n, "receive");
            return;
        }
        tf_checker_feed(chk, buf, (size_t)n);
        p->received += (size_t)n;
        if (p->echo && send_all(p, buf, (size_t)n) < 0)
            return;
        if (key_update(p, before, p->ku_peer_at, GNUTLS_KU_PEER, "key update (peer)") < 0 ||
            key_update(p, before, p->ku_at, 0, "key update") < 0)
            return;
        if (p->alert && p->received >= p->alert_at) {
            alert_and_drain(p);
            return;
        }
    }
}

void tf_gnutls_peer_serve(tf_gnutls_peer *p)
{
    tf_checker chk;

    tf_checker_init(&chk, p->seed, p->kind);
    serve(p, &chk);
    p->mismatch = chk.bad;
    p->bad_offset = chk.bad_offset;
    tf_gnutls_peer_hangup(p, false);
}
