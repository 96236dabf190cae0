/* Shared by the fault tests: configurations from the test PKI, a bounded loop
 * runner, descriptor and memory counts, raw TCP sockets, and an in-process
 * GnuTLS peer in a thread that can misbehave after (or instead of) its
 * handshake. */
#ifndef TF_FAULTS_H
#define TF_FAULTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <gnutls/gnutls.h>
#include <tlsflow.h>

#include "tf_test.h"

/* A server config with the ECDSA certificate, a client config trusting the
 * test CA; priority may be NULL.  ms: handshake timeout (0 = default). */
tlsflow_config *fx_server_config(const char *priority, unsigned ms);
tlsflow_config *fx_client_config(const char *priority, unsigned ms);

/* Runs the loop until *flag is set or ms pass; false on timeout. */
bool fx_run_until(tlsflow_loop *loop, volatile int *flag, int ms);
/* Runs the loop for ms (whatever happens). */
void fx_run_for(tlsflow_loop *loop, int ms);

int    fx_fd_count(void);            /* entries of /proc/self/fd */
size_t fx_heap_in_use(void);         /* mallinfo2 uordblks; 0 under ASan */
bool   fx_under_sanitizer(void);
double fx_cpu_seconds(void);         /* user + system of this process */
uint64_t fx_now_ms(void);

/* A listening TCP socket on 127.0.0.1 (any port); *port gets the port. */
int fx_tcp_listen(int *port);
/* A blocking connected socket to 127.0.0.1:port. */
int fx_tcp_connect(int port);
/* Both ends of a loopback TCP connection. */
void fx_tcp_pair(int *a, int *b);
/* RST instead of FIN: SO_LINGER 0 and close. */
void fx_reset(int fd);
/* Reads until EOF, error or ms pass: >= 0 bytes read before EOF, -errno, or
 * -ETIMEDOUT. */
long fx_drain(int fd, int ms);

/* A GnuTLS peer on a blocking socket, in its own thread. */
typedef struct fx_peer fx_peer;
struct fx_peer {
    int   fd;
    bool  server;
    const char *priority;                 /* NULL: GnuTLS NORMAL */
    void (*script)(fx_peer *p);           /* runs after a successful handshake */
    bool  one_byte_segments;
    gnutls_session_t s;
    gnutls_certificate_credentials_t cred;
    int   hs_ret;                         /* the handshake's result */
    int   result;                         /* set by the script */
    long  count;
    void *arg;
    pthread_t th;
    volatile int done;
};
void fx_peer_start(fx_peer *p);
void fx_peer_join(fx_peer *p);            /* closes fd and frees the session */
/* gnutls_record_send of everything; bytes sent or a GnuTLS error. */
long fx_peer_send(fx_peer *p, const void *buf, size_t len);

/* Fills buf with the stream of (seed) from offset off. */
void fx_pattern(uint8_t *buf, size_t len, uint32_t seed, uint64_t off);

#endif
