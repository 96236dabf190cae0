/* Helpers for the kernel-TLS tests against userspace peers: the skip-or-fail
 * prelude, /proc/net/tls_stat snapshots, and an in-process GnuTLS server in a
 * thread (blocking, userspace records) that echoes, sinks or sources a checked
 * stream and can rekey, alert or hang up at a given byte. */
#ifndef TF_KPEER_H
#define TF_KPEER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tlsflow.h>

#include "tf_test.h"

/* Call first in main(): returns 0 to run; otherwise the exit code (77 without
 * the tls ULP, 1 when TLSFLOW_EXPECT_KTLS=1 says it must be there). */
int kt_prelude(void);

/* /proc/net/tls_stat */
#define KT_STAT_MAX 32
typedef struct {
    int  n;
    char name[KT_STAT_MAX][32];
    long val[KT_STAT_MAX];
} kt_stat;
void kt_stat_read(kt_stat *s);
long kt_stat_get(const kt_stat *s, const char *name);     /* -1: absent */
long kt_stat_delta(const kt_stat *before, const kt_stat *after, const char *name);
/* Fails the test unless after - before of name is in [lo, hi]. */
void kt_stat_expect(const kt_stat *before, const kt_stat *after, const char *name, long lo, long hi);

/* 1 when this kernel takes a second TLS 1.3 key (6.14+). */
int kt_has_rekey(void);

/* A tlsflow client config: CA, priority, KTLS_REQUIRE. */
tlsflow_config *kt_client_config(const char *priority);
tlsflow_config *kt_server_config(const char *priority);

/* A tlsflow client on a TCP connection to 127.0.0.1:port (tlsflow_wrap_fd,
 * server name "localhost"), the loop run until it opens: 0, or -1 with out set. */
int kt_connect(tlsflow_loop *loop, const tlsflow_config *cfg, int port, tf_done *out);
/* "6.1.0-56-amd64" from uname: 1 when major.minor >= 6.14 (TLS 1.3 rekey). */
int kt_kernel_rekeys(void);
/* Runs the loop until the flow's next read completes; the result in *out. */
void kt_read_one(tlsflow_loop *loop, tlsflow *flow, tf_done *out);

/* A test name that lives as long as the process. */
const char *kt_name(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- In-process GnuTLS server ---- */
typedef struct {
    /* set before kpeer_start */
    const char *priority;
    bool        tickets;         /* TLS 1.3 NewSessionTickets after the handshake */
    bool        echo;            /* send back what comes */
    size_t      source;          /* first send this many bytes of stream `seed` */
    uint64_t    seed;            /* what comes is checked against stream `seed` */
    unsigned    kind;
    size_t      ku_peer_at;      /* after receiving this many: KeyUpdate(update_requested) */
    size_t      ku_at;           /* after receiving this many: KeyUpdate(not requested) */
    size_t      alert_at;        /* after receiving this many (or sourcing, if source): fatal alert */
    int         alert;
    bool        cut;             /* after `source`: close without close_notify */
    /* results, read after kpeer_join */
    size_t      received, sent;
    bool        mismatch;
    uint64_t    bad_offset;
    bool        close_notify;    /* the client's close_notify came */
    int         ku_done;         /* KeyUpdates sent */
    int         agains;          /* GNUTLS_E_AGAIN/INTERRUPTED without data */
    int         gerr;            /* first GnuTLS error (0: none) */
    char        where[64];       /* what it was doing then */
    /* internal */
    int         lfd, port;
    pthread_t   thread;
    bool        started;
} kpeer;

/* Listens on 127.0.0.1 (kp->port) and starts the thread; it accepts one client. */
void kpeer_start(kpeer *kp);
/* Waits for the thread (at most timeout_ms, then fails the test). */
void kpeer_join(kpeer *kp, int timeout_ms);

#endif
