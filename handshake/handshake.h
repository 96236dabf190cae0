/* handshake/ — GnuTLS: configurations and credentials, session set-up, the
 * non-blocking handshake fed by ring I/O, record protection in userspace and
 * export of record secrets.  No I/O submission: bytes come in through `in`
 * and go out through `out`, buffers that ring/ owns and moves. */
#ifndef TF_HANDSHAKE_H
#define TF_HANDSHAKE_H

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf/buf.h"
#include "include/tlsflow.h"
#include "ktls/ktls.h"

/* Marks the definitions of the exported tlsflow_* calls. */
#define TLSFLOW_PUBLIC __attribute__((visibility("default")))

#define TF_ALPN_MAX 8
#define TF_CACHE_SLOTS 32

struct tf_ticket {
    char          *key;        /* "host:port" or the server name */
    gnutls_datum_t data;
    uint64_t       used;       /* for replacement */
};

/* What changes in a config once flows use it.  Flows hold the config const;
 * this part is reached through its `live` pointer, which points to mutable
 * memory by design, and is allocated with the config (config.c). */
struct tf_config_live {
    /* The caller's reference (tlsflow_config_new .. tlsflow_config_free), one
     * per flow, connect and listener using the config: the last drop frees it. */
    atomic_uint       refs;
    pthread_mutex_t   lock;        /* guards what follows; setters check and write under it */
    bool              frozen;      /* used by a flow: setters refuse with -EBUSY */
    /* Made at freeze when no priority was set: servers prefer by the server's
     * order (tf_hs_server_priority says which); clients use the first. */
    gnutls_priority_t default_priority;   /* AES-GCM first (clients, and servers on AES CPUs) */
    gnutls_priority_t chacha_priority;    /* servers: ChaCha20 first */
    gnutls_datum_t    ticket_key;  /* servers: made at freeze */
    struct tf_ticket  cache[TF_CACHE_SLOTS];   /* clients: the newest ticket per server */
    uint64_t          cache_clock;
};

struct tlsflow_config {
    tlsflow_role    role;
    tlsflow_verify  verify;
    tlsflow_ktls_mode ktls;
    unsigned        ktls_flags;
    bool            no_resumption;
    unsigned        handshake_timeout_ms;
    size_t          receive_budget;      /* bytes a flow holds before it stops receiving */
    /* Test seams, set only by tests through this header: the kernel takes the
     * send key only; a lower AEAD record limit on kTLS TX. */
    bool            test_ktls_tx_only;
    uint64_t        test_tx_record_limit;
    gnutls_certificate_credentials_t cred;
    bool            has_ca, has_cert;
    size_t          ncerts;              /* certificate/key pairs loaded */
    tlsflow_ocsp_mode ocsp;              /* clients: what a stapled OCSP response must be */
    char           *priority_str;
    gnutls_priority_t priority;          /* the one set; NULL: live->default_priority */
    gnutls_datum_t  alpn[TF_ALPN_MAX];
    size_t          nalpn;
    struct tf_config_live *live;
};

/* Setters: 0 with the config's lock held (the caller unlocks live->lock),
 * -EINVAL (NULL) or -EBUSY (used) without it.  certs.c has the certificate
 * setters. */
int  tf_hs_config_lock(tlsflow_config *cfg);
/* The priority a session of cfg starts with. */
gnutls_priority_t tf_hs_config_priority(const tlsflow_config *cfg);
/* config.c: called when a flow first uses the config (system trust, priority,
 * servers' ticket key). */
int  tf_hs_config_freeze(const tlsflow_config *cfg);
/* A flow, connect or listener keeps the config it started with: a reference
 * each; the last unref frees it (any thread). */
void tf_hs_config_ref(const tlsflow_config *cfg);
void tf_hs_config_unref(const tlsflow_config *cfg);
/* The CPU has AES instructions (AES-NI, ARMv8 AES): GnuTLS's AES-GCM is then
 * far faster than its ChaCha20. */
bool tf_hs_cpu_has_aes(void);
/* The kernel takes ChaCha20-Poly1305 keys in both directions for TLS 1.2 and
 * 1.3 (the probe of tlsflow_loop_new) and cfg lets keys go there. */
bool tf_hs_kernel_chacha(const tlsflow_config *cfg);

/* One TLS session in the making or made. */
/* seal.c: bulk application data sealed by us with GnuTLS's write key.
 * UNTRIED until GnuTLS itself sent a full record (the peer takes 16 KiB
 * records), then READY (a cipher we seal) or NEVER. */
#define TF_SEAL_RECORD 16384
typedef enum { SEAL_UNTRIED, SEAL_READY, SEAL_NEVER } tf_seal_state;
typedef struct {
    tf_seal_state            state;
    gnutls_cipher_algorithm_t cipher;
    bool                     tls13;
    gnutls_aead_cipher_hd_t  aead;      /* for key[]; made again when GnuTLS's key changes */
    uint8_t                  key[32], iv[12];
    size_t                   key_len, iv_len;
} tf_seal;

typedef struct tf_session {
    gnutls_session_t s;
    const tlsflow_config *cfg;
    tf_buf          *in, *out;
    bool            *in_eof;       /* the transport reached EOF: pull reports it */
    char            *server_name;
    char            *cache_key;
    bool             ticket_saved;
    bool             handshake_done;
    bool             whole_records;  /* pull hands GnuTLS only complete records */
    size_t           granted;        /* bytes of the record being read that GnuTLS may take */
    unsigned         optional_status; /* clients with OPTIONAL: the server's certificate's verify
                                         status; servers that asked: the client's (why it failed) */
    bool             peer_cert_checked; /* servers that asked: the client's certificate was verified */
    int              ocsp_status;    /* clients: tlsflow_info.ocsp_status */
    bool             may_prefer_chacha; /* servers: our default order, and the kernel takes ChaCha20 */
    bool             chacha_first;   /* ... and the client listed ChaCha20 first */
    tf_buf          *post_out;       /* handshake messages GnuTLS sends after the handshake */
    tf_buf           post_in;        /* kernel path: handshake bytes not yet a whole message */
    unsigned         key_updates;    /* the peer's KeyUpdates since its last application data */
    bool             key_update_due; /* userspace: GnuTLS owes the peer a KeyUpdate before data */
    bool             kernel_rx;      /* the kernel holds the receive key */
    bool             no_renegotiation; /* a HelloRequest read: the warning is owed (kernel TX) */
    char             alpn[256];      /* the agreed protocol: ALPN names are 1..255 bytes (RFC 7301) */
    tf_seal          seal;           /* userspace bulk sends (seal.c) */
} tf_session;

/* session.c */
int  tf_hs_session_init(tf_session *hs, const tlsflow_config *cfg, const char *server_name,
                        const char *cache_key, tf_buf *in, tf_buf *out, bool *in_eof);
void tf_hs_session_deinit(tf_session *hs);
/* 0 when done, GNUTLS_E_AGAIN when it needs more input, else a GnuTLS error. */
int  tf_hs_handshake(tf_session *hs);
void tf_hs_info(const tf_session *hs, tlsflow_info *out);
bool tf_hs_gnutls_owns_ktls(const tf_session *hs);
int  tf_hs_peer_certificate(const tf_session *hs, size_t index, const void **der, size_t *len);
tlsflow_error tf_hs_error(const tf_session *hs, int gnutls_ret);

/* record.c: userspace records */
/* > 0: a packet (its bytes in data, len); 0: close_notify; GNUTLS_E_AGAIN; error. */
ssize_t tf_hs_recv_packet(tf_session *hs, gnutls_packet_t *pkt, const void **data, size_t *len);
void    tf_hs_packet_free(gnutls_packet_t pkt);
ssize_t tf_hs_send(tf_session *hs, const void *buf, size_t len);
int     tf_hs_bye(tf_session *hs);
/* false when corking would drop a KeyUpdate GnuTLS owes the peer (3.7.9's
 * gnutls_record_cork overwrites it): send this piece uncorked. */
bool    tf_hs_cork(tf_session *hs);
void    tf_hs_sent_uncorked(tf_session *hs);
/* seal.c: len bytes sealed as application-data records into `out` after
 * what is there, GnuTLS's write sequence moved past them: the bytes taken
 * (all of them, or fewer only when memory ran short), 0 when GnuTLS must send
 * them (not learnt yet that the peer takes full records, a cipher not sealed
 * here, a KeyUpdate due, data corked), or a GnuTLS error (nothing added). */
ssize_t tf_hs_seal(tf_session *hs, const void *buf, size_t len);
/* After GnuTLS sent `sent` of the `asked` bytes in one record. */
void    tf_hs_seal_note_sent(tf_session *hs, size_t asked, ssize_t sent);
/* Bulk data: sealed where it can be (all of len), else one record of it
 * through GnuTLS (into its cork when corked): the bytes taken, or a GnuTLS
 * error. */
ssize_t tf_hs_send_bulk(tf_session *hs, const void *buf, size_t len, bool corked);
void    tf_hs_seal_deinit(tf_session *hs);
/* Fatal alerts: the description GnuTLS names for its error (-1: none fits,
 * or none is to be sent), and sending one through GnuTLS's records. */
int     tf_hs_alert_for(int gnutls_err);
void    tf_hs_alert(tf_session *hs, int desc);
/* Application data came: the KeyUpdate count starts again. */
void    tf_hs_note_app_data(tf_session *hs);
/* Installs the session's handshake hook (KeyUpdates, the ClientHello). */
void    tf_hs_watch_key_updates(tf_session *hs);
/* session.c: a server read the client's ClientHello (msg: its body). */
void    tf_hs_client_hello(tf_session *hs, const gnutls_datum_t *msg);
/* A ClientHello (body, or with its 4-byte header) whose first cipher suite
 * that is not GREASE is a ChaCha20-Poly1305 one; false for anything cut short. */
bool    tf_hs_lists_chacha_first(const uint8_t *p, size_t len);
#define TF_MAX_KEY_UPDATES 32     /* in a row, without application data between them */
int     tf_hs_uncork(tf_session *hs);   /* 0 or a GnuTLS error */
bool    tf_hs_has_pending(const tf_session *hs);
void    tf_hs_note_ticket(tf_session *hs);
/* session.c: wipes d's bytes, frees them (gnutls_free) and empties d. */
void    tf_hs_datum_wipe(gnutls_datum_t *d);

/* post.c: post-handshake messages with the receive key in the kernel */
typedef struct {
    bool key_update;          /* the peer changed its sending key */
    bool update_requested;    /* ... and asks us to change ours */
    bool refuse_renegotiation;/* TLS 1.2 HelloRequest: answer no_renegotiation, go on */
} tf_post_event;
#define TF_POST_MSG_MAX (64 * 1024)   /* a post-handshake message larger than this is refused */
/* From the send key's move to the kernel on, GnuTLS writes no record: the
 * handshake messages it sends (a KeyUpdate) are captured into post_out. */
void   tf_hs_capture_handshake(tf_session *hs, tf_buf *post_out);
void   tf_hs_kernel_rx_begin(tf_session *hs, tf_buf *post_out);
void   tf_hs_whole_records(tf_session *hs, bool on);
/* Length of the complete records at the start of p; *missing: bytes the next
 * record still lacks (header included). */
size_t tf_hs_whole_prefix(const uint8_t *p, size_t len, size_t *missing);
int    tf_hs_feed_handshake(tf_session *hs, const uint8_t *msg, size_t len, tf_post_event *ev);
int    tf_hs_request_key_update_reply(tf_session *hs);

/* export.c: one direction's record state, in the form ktls/ installs.
 * Fills *out with the key, IV and next sequence number GnuTLS holds for dir
 * (TF_KTLS_RX: what we read, TF_KTLS_TX: what we write), after the handshake.
 * 0, -EOPNOTSUPP for a version or cipher the kernel has no form for
 * (TLS <= 1.1, CBC, AES-CCM-8 ...), -EINVAL for a bad argument, -EIO when GnuTLS
 * refuses or hands back sizes that do not match the cipher.  *out is wiped on
 * every error. */
int tf_hs_export_secret(gnutls_session_t s, enum tf_ktls_dir dir, tf_ktls_secret *out);

#endif
