/* ktls/crypto_info.c — from an exported tf_ktls_secret to the kernel's
 * tls12_crypto_info_* (pure: no syscalls), plus the AEAD record limits.
 *
 * The kernel builds each record's nonce as salt || (iv XOR-or-advanced by the
 * record sequence), so the split of GnuTLS's IV differs by version:
 *   TLS 1.3, AES-GCM/CCM: GnuTLS gives the 12-byte static IV; salt = iv[0..3],
 *                         iv = iv[4..11]; the kernel XORs rec_seq in (RFC 8446 5.3).
 *   TLS 1.2, AES-GCM/CCM: GnuTLS gives the 4-byte implicit IV = salt; iv is the
 *                         8-byte explicit nonce of the next record, which GnuTLS
 *                         (and the kernel after it) set to the sequence number.
 *   ChaCha20-Poly1305:    both versions XOR the sequence into a 12-byte IV
 *                         (RFC 7905, RFC 8446): the whole IV goes in iv, no salt.
 * rec_seq is the big-endian sequence number exactly as GnuTLS exports it. */
#include <errno.h>
#include <string.h>

#include "ktls/ktls.h"

/* Layouts we copy into field by field: a uapi change must not go unnoticed. */
_Static_assert(sizeof(struct tls_crypto_info) == 4, "tls_crypto_info");
_Static_assert(sizeof(struct tls12_crypto_info_aes_gcm_128) == 4 + 8 + 16 + 4 + 8, "gcm128");
_Static_assert(sizeof(struct tls12_crypto_info_aes_gcm_256) == 4 + 8 + 32 + 4 + 8, "gcm256");
_Static_assert(sizeof(struct tls12_crypto_info_aes_ccm_128) == 4 + 8 + 16 + 4 + 8, "ccm128");
_Static_assert(sizeof(struct tls12_crypto_info_chacha20_poly1305) == 4 + 12 + 32 + 0 + 8, "chacha");
_Static_assert(TLS_1_2_VERSION == 0x0303 && TLS_1_3_VERSION == 0x0304, "versions");

#define TLS12_IMPLICIT_IV 4
#define FULL_IV 12

void tf_ktls_secret_wipe(tf_ktls_secret *s)
{
    if (s)
        explicit_bzero(s, sizeof(*s));
}

static int is_version(unsigned v)
{
    return v == TLS_1_2_VERSION || v == TLS_1_3_VERSION;
}

/* Key length the kernel expects for a cipher, 0 when it has none. */
static size_t key_len(enum tf_ktls_cipher c)
{
    switch (c) {
    case TF_CIPHER_AES_128_GCM:       return TLS_CIPHER_AES_GCM_128_KEY_SIZE;
    case TF_CIPHER_AES_256_GCM:       return TLS_CIPHER_AES_GCM_256_KEY_SIZE;
    case TF_CIPHER_CHACHA20_POLY1305: return TLS_CIPHER_CHACHA20_POLY1305_KEY_SIZE;
    case TF_CIPHER_AES_128_CCM:       return TLS_CIPHER_AES_CCM_128_KEY_SIZE;
    default:                          return 0;
    }
}

/* The IV length GnuTLS exports: only TLS 1.2's AES modes carry part of the
 * nonce in the record (explicit) and export just the 4-byte implicit part. */
static size_t iv_len(unsigned version, enum tf_ktls_cipher c)
{
    if (c == TF_CIPHER_CHACHA20_POLY1305 || version == TLS_1_3_VERSION)
        return FULL_IV;
    return TLS12_IMPLICIT_IV;
}

/* salt/iv/key/rec_seq of the three AES layouts; sizes are the caller's. */
static void fill_aes(const tf_ktls_secret *s, unsigned char *salt, unsigned char *iv,
                     unsigned char *key, unsigned char *rec_seq)
{
    if (s->version == TLS_1_3_VERSION) {
        memcpy(salt, s->iv, 4);
        memcpy(iv, s->iv + 4, 8);
    } else {
        memcpy(salt, s->iv, TLS12_IMPLICIT_IV);
        memcpy(iv, s->seq, 8);
    }
    memcpy(key, s->key, s->key_len);
    memcpy(rec_seq, s->seq, 8);
}

int tf_ktls_build_crypto_info(const tf_ktls_secret *s, tf_ktls_crypto_info *out, size_t *len)
{
    if (!out || !len)
        return -EINVAL;
    explicit_bzero(out, sizeof(*out));
    *len = 0;
    if (!s || !is_version(s->version) || key_len(s->cipher) == 0 ||
        s->key_len != key_len(s->cipher) || s->iv_len != iv_len(s->version, s->cipher))
        return -EINVAL;

    out->info.version = (uint16_t)s->version;
    switch (s->cipher) {
    case TF_CIPHER_AES_128_GCM:
        out->info.cipher_type = TLS_CIPHER_AES_GCM_128;
        fill_aes(s, out->gcm128.salt, out->gcm128.iv, out->gcm128.key, out->gcm128.rec_seq);
        *len = sizeof(out->gcm128);
        break;
    case TF_CIPHER_AES_256_GCM:
        out->info.cipher_type = TLS_CIPHER_AES_GCM_256;
        fill_aes(s, out->gcm256.salt, out->gcm256.iv, out->gcm256.key, out->gcm256.rec_seq);
        *len = sizeof(out->gcm256);
        break;
    case TF_CIPHER_AES_128_CCM:
        out->info.cipher_type = TLS_CIPHER_AES_CCM_128;
        fill_aes(s, out->ccm128.salt, out->ccm128.iv, out->ccm128.key, out->ccm128.rec_seq);
        *len = sizeof(out->ccm128);
        break;
    case TF_CIPHER_CHACHA20_POLY1305:
        out->info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
        memcpy(out->chacha.iv, s->iv, FULL_IV);
        memcpy(out->chacha.key, s->key, s->key_len);
        memcpy(out->chacha.rec_seq, s->seq, 8);
        *len = sizeof(out->chacha);
        break;
    default:   /* unreachable: key_len() rejected it */
        return -EINVAL;
    }
    return 0;
}

/* Records one key may protect.
 *
 * AES-GCM (128 and 256): RFC 8446 5.5 — 2^24.5 full-size records keep the
 *   confidentiality advantage under 2^-60; 2^24.5 = 23726566.
 * AES-128-CCM: CCM runs the cipher over each block twice (CBC-MAC and CTR), so
 *   the same 2^-60 bound allows half the blocks of GCM's simple bound:
 *   2^23 records (the draft-irtf-cfrg-aead-limits CCM formula with 2^10 blocks
 *   per record).  We round down rather than pick the looser 2^24.5.
 * ChaCha20-Poly1305: RFC 8446 5.5 notes the 64-bit sequence number wraps before
 *   any safety limit (QUIC, with 2^62 packet numbers, also disregards it); we
 *   return UINT64_MAX, i.e. "until the sequence space itself ends" — TLS forbids
 *   wrapping it anyway — so a caller's `records >= limit` never fires early.
 * TLS 1.2 uses the same AEADs with the same per-key bounds, so the same numbers.
 * Unknown version or cipher: 0, so a caller that checks fails closed. */
uint64_t tf_ktls_record_limit(unsigned version, enum tf_ktls_cipher cipher)
{
    if (!is_version(version))
        return 0;
    switch (cipher) {
    case TF_CIPHER_AES_128_GCM:
    case TF_CIPHER_AES_256_GCM:       return 23726566u;
    case TF_CIPHER_AES_128_CCM:       return UINT64_C(1) << 23;
    case TF_CIPHER_CHACHA20_POLY1305: return UINT64_MAX;
    default:                          return 0;
    }
}
