/* ktls/ — the kernel side: capability probe, crypto_info from exported record
 * state, setsockopt, control records.  No I/O submission, no GnuTLS calls:
 * handshake/ exports the record state as tf_ktls_secret and ring/ submits. */
#ifndef TF_KTLS_H
#define TF_KTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <linux/tls.h>

enum tf_ktls_dir { TF_KTLS_TX = 0, TF_KTLS_RX = 1 };

enum tf_ktls_cipher {
    TF_CIPHER_UNKNOWN = 0,
    TF_CIPHER_AES_128_GCM,
    TF_CIPHER_AES_256_GCM,
    TF_CIPHER_CHACHA20_POLY1305,
    TF_CIPHER_AES_128_CCM,
};

/* One direction's record protection state, as GnuTLS exports it
 * (gnutls_record_get_state).  Wipe with tf_ktls_secret_wipe. */
typedef struct {
    unsigned version;              /* 0x0303 or 0x0304 */
    enum tf_ktls_cipher cipher;
    uint8_t  key[32];  size_t key_len;
    uint8_t  iv[12];   size_t iv_len;   /* as GnuTLS gives it (4 for TLS 1.2 GCM/CCM, 12 otherwise) */
    uint8_t  seq[8];                     /* big-endian record sequence number */
} tf_ktls_secret;

void tf_ktls_secret_wipe(tf_ktls_secret *s);

/* The uapi argument of setsockopt(SOL_TLS, TLS_TX/TLS_RX), one member per
 * cipher; info.cipher_type says which.  Holds a key: wipe it after use. */
typedef union {
    struct tls_crypto_info                      info;
    struct tls12_crypto_info_aes_gcm_128        gcm128;
    struct tls12_crypto_info_aes_gcm_256        gcm256;
    struct tls12_crypto_info_chacha20_poly1305  chacha;
    struct tls12_crypto_info_aes_ccm_128        ccm128;
} tf_ktls_crypto_info;

/* Builds the crypto_info for s (no kernel involved, so unit-testable).
 * *len gets the size to pass to setsockopt.  0, or -EINVAL when the version,
 * cipher or key/IV lengths do not fit together (out is wiped then). */
int tf_ktls_build_crypto_info(const tf_ktls_secret *s, tf_ktls_crypto_info *out, size_t *len);

/* Record types as the kernel reports them (TLS_GET_RECORD_TYPE). */
enum { TF_REC_CCS = 20, TF_REC_ALERT = 21, TF_REC_HANDSHAKE = 22, TF_REC_DATA = 23 };

/* The per-process probe (run once, thread-safe): 0 when the kernel takes the
 * given version x cipher in that direction, else -errno (-ENOENT: no tls ULP,
 * or with the ULP present the kernel lacks that crypto algorithm;
 * -EINVAL/-ENOPROTOOPT: cipher or version unsupported).  A failure to make the
 * loopback pair itself (-EMFILE ...) is recorded too: the probe never reruns. */
int tf_ktls_probe(unsigned version, enum tf_ktls_cipher cipher, enum tf_ktls_dir dir);
/* 0 when the "tls" ULP can be attached at all, else -errno. */
int tf_ktls_probe_ulp(void);
/* Runs the probe now unless it has run (tlsflow_loop_new calls it, so that no
 * flow pays for it inside a callback).  tf_ktls_probe_is_done: its results
 * are in; tf_ktls_probe_runs: how many times it actually ran (0 or 1), for
 * the tests. */
void tf_ktls_probe_once(void);
bool tf_ktls_probe_is_done(void);
unsigned tf_ktls_probe_runs(void);

/* setsockopt(TCP_ULP, "tls") on an ESTABLISHED socket; 0 or -errno. */
int tf_ktls_attach(int fd);
/* Builds the tls12_crypto_info_* for s and sets TLS_TX/TLS_RX; wipes every copy.
 * 0 or -errno (-EBUSY: rekey not supported by this kernel). */
int tf_ktls_install(int fd, enum tf_ktls_dir dir, const tf_ktls_secret *s);

/* Opt-in socket options after the keys are in: 0 or -errno (-ENOPROTOOPT
 * where the kernel lacks them; TLS_RX_EXPECT_NO_PAD is TLS 1.3 only). */
enum tf_ktls_flag { TF_KTLS_FLAG_ZEROCOPY_RO, TF_KTLS_FLAG_RX_NO_PAD };
int tf_ktls_set_flag(int fd, enum tf_ktls_flag flag);

/* Control records on the receive path.  Returns the record type carried by a
 * recvmsg control buffer (SOL_TLS/TLS_GET_RECORD_TYPE), or TF_REC_DATA when the
 * buffer holds none, or -EINVAL when it is malformed. */
int tf_ktls_record_type(const struct msghdr *msg);
/* The same on a bare control area (cmsg headers back to back, any alignment),
 * e.g. the one io_uring_recvmsg_cmsg_firsthdr() points into. */
int tf_ktls_record_type_buf(const void *cbuf, size_t len);

/* What an alert record body means. */
typedef struct {
    int is_close_notify;
    int is_fatal;
    int level, description;
} tf_ktls_alert;
/* 0, or -EBADMSG when body is not a 2-byte alert. */
int tf_ktls_parse_alert(const uint8_t *body, size_t len, tf_ktls_alert *out);

/* Fills a control buffer for sendmsg with TLS_SET_RECORD_TYPE = type.
 * cbuf must be at least CMSG_SPACE(1) bytes; returns the control length
 * (CMSG_SPACE(1)), or 0 when cbuf is NULL or too small. */
size_t tf_ktls_set_record_type_cmsg(void *cbuf, size_t cap, uint8_t type);

/* The AEAD record limit (RFC 8446 5.5; the same AEAD bounds for TLS 1.2):
 * the number of records one key may protect before a rekey or close.
 * UINT64_MAX means "no limit short of the sequence number space" (ChaCha20);
 * 0 for an unknown cipher or version.  See ktls/crypto_info.c for the numbers. */
uint64_t tf_ktls_record_limit(unsigned version, enum tf_ktls_cipher cipher);

/* Kernel features probing cannot answer (see ktls/kver.c for the reasons):
 * whether TLS 1.3 rekey (a second TLS_TX/TLS_RX) is supported.  1 or 0. */
int tf_ktls_has_rekey(unsigned version);
/* "6.1.0-56-amd64" -> 6, 1.  0, or -EINVAL when release does not start with
 * <major>.<minor>.  Exposed for the unit test. */
int tf_ktls_kver_parse(const char *release, unsigned *major, unsigned *minor);

#endif
