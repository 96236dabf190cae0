/* handshake/export.c — gnutls_record_get_state() to tf_ktls_secret.
 *
 * GnuTLS exports, per direction, the AEAD key, the IV it would use (the 4-byte
 * implicit part for TLS 1.2 AES-GCM/CCM, the full 12 bytes for TLS 1.3 and for
 * ChaCha20 in either version) and the next record's sequence number,
 * big-endian.  The sequence number is read, never assumed: TLS 1.2 starts at 0
 * after Finished but TLS 1.3 keys may already have protected records (tickets). */
#include <errno.h>
#include <string.h>

#include "handshake/handshake.h"

static enum tf_ktls_cipher map_cipher(gnutls_cipher_algorithm_t c)
{
    switch (c) {
    case GNUTLS_CIPHER_AES_128_GCM:       return TF_CIPHER_AES_128_GCM;
    case GNUTLS_CIPHER_AES_256_GCM:       return TF_CIPHER_AES_256_GCM;
    case GNUTLS_CIPHER_CHACHA20_POLY1305: return TF_CIPHER_CHACHA20_POLY1305;
    case GNUTLS_CIPHER_AES_128_CCM:       return TF_CIPHER_AES_128_CCM;
    default:                              return TF_CIPHER_UNKNOWN;   /* CCM_8, CBC, ... */
    }
}

static unsigned map_version(gnutls_protocol_t v)
{
    switch (v) {
    case GNUTLS_TLS1_2: return 0x0303;
    case GNUTLS_TLS1_3: return 0x0304;
    default:            return 0;
    }
}

int tf_hs_export_secret(gnutls_session_t s, enum tf_ktls_dir dir, tf_ktls_secret *out)
{
    /* Views into the session's own state: copied, never wiped or freed here. */
    gnutls_datum_t mac = { 0 }, iv = { 0 }, key = { 0 };
    unsigned char seq[8];
    tf_ktls_crypto_info ci;   /* only to validate the lengths */
    size_t len;
    int ret;

    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if (!s || (dir != TF_KTLS_TX && dir != TF_KTLS_RX)) {
        ret = -EINVAL;
        goto out;
    }
    out->version = map_version(gnutls_protocol_get_version(s));
    out->cipher = map_cipher(gnutls_cipher_get(s));
    if (!out->version || out->cipher == TF_CIPHER_UNKNOWN) {
        ret = -EOPNOTSUPP;
        goto out;
    }
    if (gnutls_record_get_state(s, dir == TF_KTLS_RX, &mac, &iv, &key, seq) < 0 ||
        key.size > sizeof(out->key) || iv.size > sizeof(out->iv) || !key.data || !iv.data) {
        ret = -EIO;
        goto out;
    }
    memcpy(out->key, key.data, key.size);
    out->key_len = key.size;
    memcpy(out->iv, iv.data, iv.size);
    out->iv_len = iv.size;
    memcpy(out->seq, seq, sizeof(seq));
    /* Let ktls/ judge the lengths now, the same way it will at install. */
    ret = tf_ktls_build_crypto_info(out, &ci, &len) < 0 ? -EIO : 0;
out:
    explicit_bzero(&ci, sizeof(ci));
    explicit_bzero(seq, sizeof(seq));
    if (ret < 0)
        tf_ktls_secret_wipe(out);
    return ret;
}
