/* A forging TLS peer (forge.c): a real GnuTLS handshake on a blocking socket
 * in its own thread, after which the peer protects and opens records by hand
 * with the keys GnuTLS negotiated (gnutls_record_get_state and GnuTLS's AEAD
 * API).  Its script can so send records GnuTLS would never send (bad tags,
 * unknown types, oversized or empty alerts...) and read, decrypted, what the
 * other side answers: the first alert, or how the connection ended.
 *
 * AEAD suites only (AES-GCM, ChaCha20-Poly1305), TLS 1.2 and 1.3.  Nothing
 * here calls cmocka: results are returned, and the test asserts on them in
 * its own thread. */
#ifndef TF_FORGE_H
#define TF_FORGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tlsflow.h>

typedef struct tf_forge tf_forge;
/* Runs in the forge's thread after its handshake, once tf_forge_go was called. */
typedef void tf_forge_script(tf_forge *p, void *arg);

/* Starts a forge on one end of a fresh loopback TCP connection and gives the
 * other end in *dut_fd (for tlsflow_wrap_fd; the caller owns it).  role is the
 * forge's own; priority a GnuTLS priority string (NULL: NORMAL).  The server
 * uses TF_ECDSA_CERT/KEY, the client trusts TF_CA and sends SNI "localhost".
 * NULL when no socket could be made. */
tf_forge *tf_forge_start(tlsflow_role role, const char *priority, tf_forge_script *script,
                         void *arg, int *dut_fd);
/* The same on a connected socket of the caller's; the forge owns fd. */
tf_forge *tf_forge_start_fd(int fd, tlsflow_role role, const char *priority,
                            tf_forge_script *script, void *arg);
/* Lets the script run (its handshake may still be going on: it runs after). */
void tf_forge_go(tf_forge *p);
/* True once the forge's thread has finished (handshake failed or script
 * returned).  A tf_cond for tf_run_until. */
bool tf_forge_done(void *p);
/* Joins the thread (the script must end: every read here has a deadline),
 * closes the socket, frees.  NULL is fine. */
void tf_forge_free(tf_forge *p);

/* The negotiated version (0x0303, 0x0304; 0 before or without a handshake),
 * and, when the forge could not do its part (set-up, handshake, keys), why. */
unsigned    tf_forge_version(const tf_forge *p);
const char *tf_forge_error(const tf_forge *p);   /* "" when none */
int         tf_forge_fd(const tf_forge *p);

/* ---- sending (from the script) ---- */
#define TF_FORGE_TAMPER_TAG        0x1u  /* flip a bit of the AEAD tag */
#define TF_FORGE_TAMPER_CIPHERTEXT 0x2u  /* flip a bit of the first encrypted byte */
#define TF_FORGE_LENGTH_PLUS1      0x4u  /* the header claims one byte more; a zero byte follows */
#define TF_FORGE_PLAINTEXT         0x8u  /* no protection: outer_type (or inner_type) and body as they are */

/* One record with content type inner_type and the body.  TLS 1.3: the
 * inner plaintext is body || inner_type, the header's type outer_type
 * (0: application_data 0x17).  TLS 1.2: the header's type is inner_type
 * (outer_type, when not 0, overrides it).  Each protected record takes the
 * next sequence number.  0, or -errno when the socket refused it. */
int tf_forge_send_record(tf_forge *p, uint8_t outer_type, uint8_t inner_type, const void *body,
                         size_t len, unsigned flags);
/* Application data, protected as GnuTLS would. */
int tf_forge_send_data(tf_forge *p, const void *buf, size_t len);
/* An alert record (two bytes), protected. */
int tf_forge_send_alert(tf_forge *p, uint8_t level, uint8_t desc);

/* ---- reading what the other side sends (from the script) ---- */
typedef enum {
    TF_FORGE_ALERT,     /* an alert came: level and desc */
    TF_FORGE_CLOSED,    /* the connection ended (FIN) without an alert */
    TF_FORGE_RESET,     /* ... with a reset */
    TF_FORGE_TIMEOUT,   /* nothing decisive within the time */
    TF_FORGE_GARBAGE,   /* a record that does not decrypt or parse */
} tf_forge_end;

/* Reads and decrypts records until the first alert, the end of the
 * connection, garbage, or timeout_ms (scaled by TF_TIME_SCALE).  Application data on the way is kept
 * (tf_forge_data), handshake messages (tickets) are counted and skipped.
 * level and desc (may be NULL) are set for TF_FORGE_ALERT, else -1.
 * Later calls go on from there. */
tf_forge_end tf_forge_read_alert(tf_forge *p, int timeout_ms, int *level, int *desc);
/* The last tf_forge_read_alert in words: "fatal alert bad_record_mac (20)",
 * "closed without alert", "reset", "timeout: nothing for 1500 ms", ... plus
 * what came before it. */
const char *tf_forge_seen(const tf_forge *p);
/* Application data read so far: its length; *data (may be NULL) the first
 * bytes of it (up to 256). */
size_t tf_forge_data(const tf_forge *p, const uint8_t **data);
/* Records of application data read so far. */
unsigned tf_forge_data_records(const tf_forge *p);
/* Whether the last alert came unprotected (it must not, after the handshake). */
bool tf_forge_alert_was_plaintext(const tf_forge *p);

/* An alert description's RFC name ("bad_record_mac"), or "?" */
const char *tf_forge_alert_name(int desc);

#endif
