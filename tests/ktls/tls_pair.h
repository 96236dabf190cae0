/* Two GnuTLS sessions for the kTLS tests: an in-memory ECDSA P-256 self-signed
 * certificate (no fixture files, so the VM needs no certtool), sessions pinned
 * to one version x cipher, and a blocking handshake. */
#ifndef TF_TLS_PAIR_H
#define TF_TLS_PAIR_H

#include <gnutls/gnutls.h>

/* GnuTLS codes (0 on success). */
int tp_creds_init(void);
void tp_creds_free(void);

/* version: 0x0303 or 0x0304; cipher: a GnuTLS priority name ("AES-128-GCM").
 * Servers send TLS 1.3 session tickets only when tickets is set. */
int tp_session(gnutls_session_t *s, unsigned version, const char *cipher, int server,
               int tickets, int fd);

/* gnutls_handshake until done; a blocking socket's timeout (E_AGAIN) fails. */
int tp_handshake(gnutls_session_t s);

/* Both handshakes at once (the server's in a thread); 0 or the first error. */
int tp_handshake_pair(gnutls_session_t client, gnutls_session_t server);

#endif
