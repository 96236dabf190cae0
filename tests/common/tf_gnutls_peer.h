/* A GnuTLS peer in its own thread (gnutls_peer.c): a real GnuTLS session on a
 * blocking TCP socket, records in userspace, that handshakes as the server
 * (the test PKI's ECDSA certificate, no session tickets) or as the client
 * (trusting TF_CA, server name "localhost"), then runs a script: the test's
 * own, or tf_gnutls_peer_serve, which sources, echoes or sinks a checked
 * stream and can rekey, alert or hang up at a given byte.  Every wait in the
 * thread has a deadline (15 s, scaled by TF_TIME_SCALE), so a script always
 * ends; nothing in the thread calls cmocka.  The socket has TCP_NODELAY: each
 * record goes out as it is sent. */
#ifndef TF_GNUTLS_PEER_H
#define TF_GNUTLS_PEER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <gnutls/gnutls.h>

#include "tf_test.h"

typedef struct tf_gnutls_peer tf_gnutls_peer;
/* Runs in the peer's thread after a successful handshake. */
typedef void tf_gnutls_script(tf_gnutls_peer *p);

struct tf_gnutls_peer {
    /* set before starting */
    bool              server;             /* GnuTLS's role */
    const char       *priority;           /* NULL: GnuTLS's default */
    bool              one_byte_segments;  /* the handshake's flights one byte a TCP segment */
    tf_gnutls_script *script;             /* NULL: tf_gnutls_peer_serve */
    void             *arg;                /* the script's */

    /* what tf_gnutls_peer_serve does: first send `source` bytes of stream
     * `seed`, then (source and cut) hang up without close_notify or (source
     * and alert) send a fatal alert; else read until the other side's
     * close_notify (answered with one) checking what comes against the stream,
     * echoing it back (echo), sending a KeyUpdate(update_requested) once
     * ku_peer_at bytes came, a KeyUpdate(update_not_requested) at ku_at, and
     * the fatal alert at alert_at.  It hangs up at its end. */
    size_t            source;
    bool              cut;
    bool              echo;
    uint64_t          seed;
    unsigned          kind;               /* TF_DATA_* */
    size_t            ku_peer_at, ku_at, alert_at;
    int               alert;              /* gnutls_alert_description_t; 0: none */

    /* results: read once done (tf_gnutls_peer_done) */
    int               hs_ret;             /* the handshake's result (GnuTLS code) */
    int               gerr;               /* the first GnuTLS error (0: none) ... */
    char              where[64];          /* ... and what the peer was doing then */
    int               result;             /* the script's own */
    long              count;              /* the script's own */
    size_t            received, sent;     /* application bytes (serve, send, recv) */
    bool              mismatch;           /* serve: a byte that came differed ... */
    uint64_t          bad_offset;         /* ... the first at this offset */
    bool              close_notify;       /* serve: the other side's close_notify came */
    int               ku_done;            /* serve: KeyUpdates sent */

    /* the connection, for scripts */
    int               fd;                 /* -1 once hung up */
    int               port;               /* tf_gnutls_peer_listen: where it listens */
    gnutls_session_t  s;
    int               done;               /* set (atomically) as the thread ends */

    /* internal */
    gnutls_certificate_credentials_t cred;
    int               lfd;
    pthread_t         th;
    bool              started;
};

/* Starts the peer's thread on a connected socket; the peer owns fd. */
void tf_gnutls_peer_start(tf_gnutls_peer *p, int fd);
/* Listens on 127.0.0.1 (port in p->port) and starts the thread, which accepts
 * one connection.  Fails the test when it cannot. */
void tf_gnutls_peer_listen(tf_gnutls_peer *p);
/* Waits for the thread (fails the test after timeout_ms, scaled), closes the
 * socket if the script did not, frees the session.  Not started: nothing. */
void tf_gnutls_peer_join(tf_gnutls_peer *p, int timeout_ms);
/* The thread has ended: a tf_cond on the peer. */
bool tf_gnutls_peer_done(void *p);

/* ---- for scripts (in the peer's thread) ---- */
/* gnutls_record_send of everything: the bytes sent, or a GnuTLS error. */
long tf_gnutls_peer_send(tf_gnutls_peer *p, const void *buf, size_t len);
/* Reads and drops application data until max bytes came, or EOF, an error or
 * the deadline: the bytes read. */
long tf_gnutls_peer_recv(tf_gnutls_peer *p, size_t max);
/* Closes the socket without close_notify: a FIN, or with reset an RST. */
void tf_gnutls_peer_hangup(tf_gnutls_peer *p, bool reset);
/* The default script (see above). */
void tf_gnutls_peer_serve(tf_gnutls_peer *p);

#endif
